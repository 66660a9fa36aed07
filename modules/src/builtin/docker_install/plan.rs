//! The plan, decided from the parameters and the probe's facts alone (no
//! host access), so it can be unit-tested on any facts.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::builtin::deb822_repository::{self, Deb822Params};
use crate::textfile;
use crate::{Module, ModuleError, Plan};

use super::daemon::{daemon_config, daemon_text};
use super::packages::{
    choose_compose, is_compose_v2, older_than, spec_name, version_parts, COMPOSE_PKGS,
    DOCKER_CE_PKGS,
};
use super::params::{DockerInstallParams, Source};
use super::probe::Facts;
use super::{invalid, DockerInstall, DAEMON_JSON, GROUP, KEYRING, SOURCE_NAME};

/// How the signing key gets to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum KeyAction {
    Fetch(String),
    Write(String),
}

/// Which compose package apply installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(super) enum Compose {
    #[default]
    Nothing,
    Install(String),
    /// Chosen from the lists refreshed for the engine's install.
    ChooseAfterUpdate,
}

/// What the plan decided, for apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Planned {
    pub(super) key: Option<KeyAction>,
    pub(super) sources: Option<String>,
    pub(super) install: Vec<String>,
    pub(super) compose: Compose,
    pub(super) users: Vec<String>,
    /// The new daemon.json, when it changes.
    pub(super) daemon: Option<String>,
    /// What it replaces (`None`: there was no file), for the rollback.
    pub(super) daemon_before: Option<String>,
    pub(super) enable: bool,
    pub(super) start: bool,
}

pub(super) fn deb822_params(
    repo_url: &str,
    codename: &str,
    arch: &str,
) -> Result<Deb822Params, ModuleError> {
    let mut v = json!({
        "name": SOURCE_NAME,
        "types": ["deb"],
        "uris": [repo_url],
        "suites": [codename],
        "components": ["stable"],
        "signed_by": KEYRING,
    });
    if !arch.is_empty() {
        v["architectures"] = json!([arch]);
    }
    crate::module::parse_params::<Deb822Params>(DockerInstall::NAME, &v).map_err(Into::into)
}

pub(super) fn repo_url(p: &DockerInstallParams, f: &Facts) -> Result<String, ModuleError> {
    if let Some(u) = p.repo_url.as_ref().filter(|u| !u.trim().is_empty()) {
        return Ok(u.trim().trim_end_matches('/').to_string());
    }
    match f.os_id.as_str() {
        "debian" | "ubuntu" | "raspbian" => {
            Ok(format!("https://download.docker.com/linux/{}", f.os_id))
        }
        other => Err(ModuleError::failed(format!(
            "source: docker needs Debian, Ubuntu or Raspbian (this host is `{other}`), or a repo_url"
        ))),
    }
}

/// The plan, from the parameters and the facts alone (no host access), so
/// it can be unit-tested on any facts.
pub(super) fn decide(p: &DockerInstallParams, f: &Facts) -> Result<(Plan, Planned), ModuleError> {
    let mut plan = Plan::default();
    let mut planned = Planned::default();
    let mut warnings: Vec<String> = Vec::new();
    let users: Vec<String> = p.users.clone().unwrap_or_default();

    // Packages.
    let mut install: Vec<String> = Vec::new();
    match p.source {
        Source::Distro => decide_distro(p, f, &mut install, &mut planned, &mut warnings)?,
        Source::Docker => decide_docker(p, f, &mut install, &mut plan, &mut planned)?,
    }
    if !install.is_empty() {
        let names: Vec<&str> = install.iter().map(|s| spec_name(s)).collect();
        plan.changes.push(format!("install {}", names.join(", ")));
    }
    if planned.compose == Compose::ChooseAfterUpdate {
        plan.changes.push(
            "install compose v2 (docker-compose 2.x, docker-compose-plugin or docker-compose-v2, \
             the first the refreshed package lists have)"
                .into(),
        );
    }
    let will_install = !install.is_empty() || planned.compose == Compose::ChooseAfterUpdate;
    planned.install = install;

    check_min_version(p, f)?;
    decide_members(&users, f, &mut plan, &mut planned)?;
    let cfg = decide_daemon(p, f, &mut plan, &mut planned)?;

    // The service: a fresh package enables and starts it itself.
    if !will_install {
        if !f.enabled {
            plan.changes.push("enable docker".into());
            planned.enable = true;
        }
        if !f.active && planned.daemon.is_none() {
            plan.changes.push("start docker".into());
            planned.start = true;
        }
    }

    plan.result.insert("source".into(), json!(p.source));
    plan.result.insert("daemon_file".into(), json!(DAEMON_JSON));
    plan.result.insert("daemon".into(), cfg);
    plan.result.insert("users".into(), json!(users));
    if let Some(v) = &f.server {
        plan.result.insert("version".into(), json!(v));
    }
    if let Some(v) = &f.compose_version {
        plan.result.insert("compose_version".into(), json!(v));
    }
    if !warnings.is_empty() {
        plan.result.insert("warnings".into(), json!(warnings));
    }
    Ok((plan, planned))
}

/// `source: distro`: docker.io, and a compose v2 package when asked.
fn decide_distro(
    p: &DockerInstallParams,
    f: &Facts,
    install: &mut Vec<String>,
    planned: &mut Planned,
    warnings: &mut Vec<String>,
) -> Result<(), ModuleError> {
    if let Some(i) = f.installed("docker-ce") {
        return Err(ModuleError::failed(format!(
            "docker-ce {} from Docker's repository is installed: use `source: docker`, \
             or remove it before installing the distribution's docker.io",
            i.version
        )));
    }
    if f.installed("docker.io").is_none() {
        install.push("docker.io".into());
    }
    if !p.compose {
        return Ok(());
    }
    let have = COMPOSE_PKGS.iter().find_map(|n| {
        f.installed(n)
            .filter(|i| is_compose_v2(n, &i.version))
            .map(|_| n.to_string())
    });
    if have.is_some() {
        return Ok(());
    }
    match choose_compose(&f.candidates) {
        Some(c) => {
            install.push(c.clone());
            planned.compose = Compose::Install(c);
        }
        None if !install.is_empty() || !f.lists => {
            planned.compose = Compose::ChooseAfterUpdate;
        }
        None => warnings.push(
            "no compose v2 package (docker-compose 2.x, docker-compose-plugin, \
             docker-compose-v2) in the package lists: compose is not installed"
                .into(),
        ),
    }
    Ok(())
}

/// `source: docker`: the signing key, the deb822 source and docker-ce's
/// packages.
fn decide_docker(
    p: &DockerInstallParams,
    f: &Facts,
    install: &mut Vec<String>,
    plan: &mut Plan,
    planned: &mut Planned,
) -> Result<(), ModuleError> {
    if let Some(i) = f.installed("docker.io") {
        return Err(ModuleError::failed(format!(
            "the distribution's docker.io {} is installed: use `source: distro`, \
             or remove it before installing docker-ce from Docker's repository",
            i.version
        )));
    }
    let url = repo_url(p, f)?;
    if f.codename == "unknown" || f.codename.is_empty() {
        return Err(ModuleError::failed(
            "the host's /etc/os-release has no VERSION_CODENAME for Docker's repository",
        ));
    }
    match &p.repo_key {
        Some(k) if !k.trim().is_empty() => {
            let want = format!("{}\n", k.trim_end());
            if f.key.as_deref() != Some(want.as_str()) {
                plan.changes.push(format!(
                    "{} {KEYRING}",
                    if f.key.is_some() { "update" } else { "write" }
                ));
                planned.key = Some(KeyAction::Write(want));
            }
        }
        _ => {
            if f.key.is_none() {
                let key_url = format!("{url}/gpg");
                plan.changes.push(format!(
                    "fetch Docker's signing key from {key_url} to {KEYRING}"
                ));
                planned.key = Some(KeyAction::Fetch(key_url));
            }
        }
    }
    let src = deb822_repository::render(&deb822_params(&url, &f.codename, &f.arch)?)?;
    let path = deb822_repository::file_name(SOURCE_NAME);
    if f.sources.as_deref() != Some(src.as_str()) {
        plan.changes.push(format!(
            "{} {path}",
            if f.sources.is_some() {
                "update"
            } else {
                "write"
            }
        ));
        if let Some(d) = textfile::diff(
            &path,
            f.sources.as_deref().unwrap_or("").as_bytes(),
            src.as_bytes(),
        ) {
            plan.diffs.push(d);
        }
        planned.sources = Some(src);
    }
    for pkg in DOCKER_CE_PKGS {
        if pkg == "docker-compose-plugin" && !p.compose {
            continue;
        }
        if f.installed(pkg).is_none() {
            install.push(pkg.into());
        }
    }
    Ok(())
}

/// The engine already there (the running server, else the package) is
/// not older than `min_version`.
fn check_min_version(p: &DockerInstallParams, f: &Facts) -> Result<(), ModuleError> {
    let engine_pkg = match p.source {
        Source::Distro => "docker.io",
        Source::Docker => "docker-ce",
    };
    let known = f
        .server
        .clone()
        .or_else(|| f.installed(engine_pkg).map(|i| i.version.clone()));
    if let (Some(min), Some(have)) = (&p.min_version, &known) {
        if version_parts(min).is_empty() {
            return Err(invalid("min_version", "expected a version such as 20.10"));
        }
        if older_than(have, min) {
            return Err(ModuleError::failed(format!(
                "the Docker engine on this host is {have}, older than min_version {min}"
            )));
        }
    }
    Ok(())
}

/// The users to add to the group (they must exist).
fn decide_members(
    users: &[String],
    f: &Facts,
    plan: &mut Plan,
    planned: &mut Planned,
) -> Result<(), ModuleError> {
    for u in users {
        let Some(pw) = f.users.iter().find(|pw| &pw.name == u) else {
            return Err(ModuleError::failed(format!(
                "user `{u}` does not exist on this host: create it before adding it to the {GROUP} group"
            )));
        };
        let member = f
            .group
            .as_ref()
            .is_some_and(|g| g.members.iter().any(|m| m == u) || g.gid == pw.gid);
        if !member && !planned.users.contains(u) {
            plan.changes.push(format!("add {u} to group {GROUP}"));
            planned.users.push(u.clone());
        }
    }
    Ok(())
}

/// daemon.json, compared as JSON; a change restarts the daemon. Returns
/// the wanted settings.
fn decide_daemon(
    p: &DockerInstallParams,
    f: &Facts,
    plan: &mut Plan,
    planned: &mut Planned,
) -> Result<Value, ModuleError> {
    let cfg = daemon_config(p)?;
    let text = daemon_text(&cfg);
    let same = f
        .daemon_json
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .is_some_and(|have| have == cfg);
    if !same {
        plan.changes.push(format!(
            "{} {DAEMON_JSON}",
            if f.daemon_json.is_some() {
                "update"
            } else {
                "write"
            }
        ));
        if let Some(d) = textfile::diff(
            DAEMON_JSON,
            f.daemon_json.as_deref().unwrap_or("").as_bytes(),
            text.as_bytes(),
        ) {
            plan.diffs.push(d);
        }
        plan.changes.push("restart docker".into());
        planned.daemon = Some(text);
        planned.daemon_before = f.daemon_json.clone();
    }
    Ok(cfg)
}
