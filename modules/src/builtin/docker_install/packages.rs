//! The packages: versions compared by their numbers, which compose v2
//! package to take, and installs through the `apt` module.

use std::collections::HashMap;

use serde_json::json;

use crate::builtin::apt::{parse_policy, Apt, AptParams};
use crate::shell_quote::join;
use crate::{Host, Module, ModuleError};

/// `20.10.24+dfsg1-1+deb12u1` -> [20, 10, 24]: the leading dotted numbers
/// after any epoch.
pub fn version_parts(v: &str) -> Vec<u64> {
    let v = v.trim();
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let mut out = Vec::new();
    for part in v.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse() {
            Ok(n) => out.push(n),
            Err(_) => break,
        }
        if digits.len() != part.len() {
            break;
        }
    }
    out
}

/// Whether `have` is older than `min`, component by component (missing
/// components count as 0).
pub fn older_than(have: &str, min: &str) -> bool {
    let (h, m) = (version_parts(have), version_parts(min));
    for i in 0..h.len().max(m.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or(0),
            m.get(i).copied().unwrap_or(0),
        );
        if a != b {
            return a < b;
        }
    }
    false
}

/// Distribution packages that give `docker compose` (v2), in preference order.
pub(super) const COMPOSE_PKGS: [&str; 3] = [
    "docker-compose",
    "docker-compose-plugin",
    "docker-compose-v2",
];
pub(super) const DOCKER_CE_PKGS: [&str; 4] = [
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-compose-plugin",
];

/// Whether a package (name, version) gives compose v2: `docker-compose`
/// only from version 2 (1.x is the old Python tool).
pub(super) fn is_compose_v2(name: &str, version: &str) -> bool {
    match name {
        "docker-compose" => version_parts(version).first().is_some_and(|m| *m >= 2),
        "docker-compose-plugin" | "docker-compose-v2" => true,
        _ => false,
    }
}

/// The compose v2 package to install from the candidates apt knows, as an
/// apt `name=version` spec: with the version, an installed
/// `docker-compose` 1.x is upgraded to the 2.x candidate, where the bare
/// name would count as already installed.
pub fn choose_compose(candidates: &HashMap<String, Option<String>>) -> Option<String> {
    COMPOSE_PKGS.iter().find_map(|n| {
        candidates
            .get(*n)
            .cloned()
            .flatten()
            .filter(|v| is_compose_v2(n, v))
            .map(|v| format!("{n}={v}"))
    })
}

/// The package name of an apt spec (`name=version`).
pub(super) fn spec_name(spec: &str) -> &str {
    spec.split_once('=').map_or(spec, |(n, _)| n)
}

pub(super) fn all_pkgs() -> Vec<&'static str> {
    let mut v = vec!["docker.io"];
    v.extend(COMPOSE_PKGS);
    v.extend(DOCKER_CE_PKGS);
    v.sort();
    v.dedup();
    v
}

/// Install `pkgs` with the `apt` module, package lists refreshed first.
pub(super) fn apt_install(host: &mut dyn Host, pkgs: &[String]) -> Result<(), ModuleError> {
    let p = AptParams {
        name: Some(json!(pkgs)),
        update_cache: true,
        ..AptParams::default()
    };
    let plan = Module::plan(&Apt, &p, host)?;
    if !plan.is_empty() {
        Module::apply(&Apt, &p, plan, host)?;
    }
    Ok(())
}

/// The candidates of the compose packages, from the current lists.
pub(super) fn compose_candidates(
    host: &mut dyn Host,
) -> Result<HashMap<String, Option<String>>, ModuleError> {
    let out = host.run(
        &format!(
            "# docker_install compose\napt-cache policy -- {} 2>/dev/null; true",
            join(&COMPOSE_PKGS)
        ),
        None,
    )?;
    Ok(parse_policy(&out.stdout_str()))
}
