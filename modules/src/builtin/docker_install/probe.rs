//! The plan's one round trip: `probe.sh` reports the OS, the packages and
//! their candidates, the files, the service and the group; its answer,
//! parsed into [`Facts`].

use std::collections::HashMap;

use crate::account::{tagged_all, Group, Passwd};
use crate::builtin::apt::{parse_dpkg, parse_policy, Installed};
use crate::builtin::deb822_repository;
use crate::probe::{tagged, tagged_file, tagged_line, ProbeError};
use crate::shell_quote::quote;

use super::packages::all_pkgs;
use super::{DAEMON_JSON, GROUP, KEYRING, SOURCE_NAME};

/// What the probe found.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    pub(super) os_id: String,
    pub(super) codename: String,
    pub(super) arch: String,
    pub(super) lists: bool,
    pub(super) dpkg: HashMap<String, Installed>,
    pub(super) candidates: HashMap<String, Option<String>>,
    pub(super) daemon_json: Option<String>,
    pub(super) key: Option<String>,
    pub(super) sources: Option<String>,
    pub(super) active: bool,
    pub(super) enabled: bool,
    pub(super) server: Option<String>,
    pub(super) compose_version: Option<String>,
    pub(super) group: Option<Group>,
    pub(super) users: Vec<Passwd>,
}

impl Facts {
    pub(super) fn installed(&self, name: &str) -> Option<&Installed> {
        self.dpkg.get(name).filter(|i| i.is_installed())
    }
}

/// The probe's shell; the call with the packages, the paths and the users
/// follows it.
const PROBE: &str = include_str!("probe.sh");

pub(super) fn probe_script(users: &[String]) -> String {
    let mut args = vec![
        quote(&all_pkgs().join(" ")),
        quote(DAEMON_JSON),
        quote(KEYRING),
        quote(&deb822_repository::file_name(SOURCE_NAME)),
        quote(GROUP),
    ];
    args.extend(users.iter().map(|u| quote(u)));
    format!("{PROBE}probe {}\n", args.join(" "))
}

pub(super) fn section<'a>(out: &'a str, start: &str, end: &str) -> &'a str {
    out.split_once(&format!("{start}\n"))
        .map(|(_, rest)| rest.split(end).next().unwrap_or(""))
        .unwrap_or("")
}

pub(super) fn parse_probe(out: &str) -> Result<Facts, ProbeError> {
    let file = |tag: &str| tagged_file(out, tag);
    let word = |tag: &str| -> Option<String> {
        tagged(out, tag)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let os = tagged_line(out, "OS")?;
    let mut os = os.split_whitespace();
    Ok(Facts {
        os_id: os.next().unwrap_or("unknown").to_string(),
        codename: os.next().unwrap_or("unknown").to_string(),
        arch: word("ARCH").unwrap_or_default(),
        lists: tagged(out, "LISTS").is_some(),
        dpkg: parse_dpkg(out),
        candidates: parse_policy(section(out, "POLICY", "ENDPOLICY")),
        daemon_json: file("DJ")?,
        key: file("KEY")?,
        sources: file("SRC")?,
        active: word("ACTIVE").as_deref() == Some("active"),
        enabled: word("ENABLED").as_deref() == Some("enabled"),
        server: word("SERVER"),
        compose_version: word("COMPOSE"),
        group: tagged_all(out, "G")
            .filter_map(Group::parse)
            .find(|g| g.name == GROUP),
        users: tagged_all(out, "U").filter_map(Passwd::parse).collect(),
    })
}
