//! `docker_install`'s parameters: where the packages come from, compose,
//! the group's members, daemon.json's settings and the engine's minimum.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account::de_opt_list;
use crate::params::{de_bool, de_opt_string, de_opt_u64, yes};

/// Where the packages come from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Distro,
    Docker,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerInstallParams {
    /// `distro`: Debian's `docker.io` and a compose v2 package; `docker`: `docker-ce` and its
    /// plugins from Docker's repository.
    #[serde(default)]
    pub source: Source,
    /// Install the compose v2 plugin too.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub compose: bool,
    /// Users added to the `docker` group (they must exist).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub users: Option<Vec<String>>,
    /// daemon.json settings merged over the defaults (`log-driver: json-file`, `log-opts
    /// {max-size: 10m, max-file: "3"}`, `storage-driver: overlay2`, `live-restore: true`,
    /// `default-ulimits {nofile: 64000/64000}`, `userland-proxy: false`): maps merge key by
    /// key, `null` removes a key. `pidfile` is refused.
    #[serde(default)]
    pub daemon: Option<Value>,
    /// Written as daemon.json's `registry-mirrors` (empty: no key).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub registry_mirrors: Option<Vec<String>>,
    /// Written as daemon.json's `insecure-registries` (empty: no key).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub insecure_registries: Option<Vec<String>>,
    /// Written as daemon.json's `metrics-addr` (empty: no key).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub metrics_addr: Option<String>,
    /// E.g. `"20.10"`: an older engine fails the host.
    #[serde(default, deserialize_with = "de_opt_version")]
    pub min_version: Option<String>,
    /// `source: docker`: the repository (default
    /// `https://download.docker.com/linux/<os id>`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub repo_url: Option<String>,
    /// `source: docker`: the ASCII-armored signing key; without it the key
    /// is fetched from `<repo_url>/gpg` on the host when missing.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub repo_key: Option<String>,
    /// Seconds to wait for the daemon to answer after a restart.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub restart_timeout: Option<u64>,
}

/// A version as a string or a whole number; YAML reads `20.10` as the
/// number 20.1, which would silently mean another version, so a
/// fractional number is refused with the fix.
pub(super) fn de_opt_version<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        Value::Number(n) if n.is_u64() => Ok(Some(n.to_string())),
        Value::Number(n) => Err(serde::de::Error::custom(format!(
            "YAML reads {n} as a number, which loses trailing zeros: quote the version, e.g. \"20.10\""
        ))),
        _ => Err(serde::de::Error::custom("expected a version such as \"20.10\"")),
    }
}
