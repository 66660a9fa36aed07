//! The parameters of `docker_container`, and their normal forms: the
//! command split into words, memory in bytes, ports and volumes parsed.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::builtin::docker_common::{de_opt_list, de_string_map};
use crate::params::{de_bool, de_opt_bool, de_opt_f64, de_opt_u64, yes};

/// The container's wanted state.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Removed (stopped first).
    Absent,
    /// Exists with the configuration given; a new one is not started.
    Present,
    /// Exists and is stopped.
    Stopped,
    /// Exists and runs.
    #[default]
    Started,
}

/// Docker's restart policies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Restart when it exits non-zero.
    OnFailure,
    /// Always restart.
    Always,
    /// Always, unless it was stopped.
    UnlessStopped,
}

impl RestartPolicy {
    pub(crate) fn word(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// How an option is compared with the container's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Equal, or the container is recreated.
    Strict,
    /// Never compared.
    Ignore,
    /// Lists, sets and dicts: what the task gives must be there; more is fine.
    AllowMorePresent,
}

/// Which defaults apply to options not given.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DefaultBehavior {
    /// Options not given are not compared.
    #[default]
    NoDefaults,
    /// The collection's old defaults (`init`, `privileged`, `read_only`,
    /// `tty`, `interactive`, `auto_remove` false, `memory` 0) are compared.
    Compatibility,
}

/// A mount (`--mount`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// The path in the container.
    pub target: String,
    /// The volume name or host path; none for `tmpfs`.
    pub source: Option<String>,
    /// What kind of mount.
    #[serde(rename = "type", default)]
    pub kind: MountType,
    /// Mount read-only.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub read_only: Option<bool>,
}

/// The kinds of mount.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A host path.
    Bind,
    /// A named (or anonymous) volume.
    #[default]
    Volume,
    /// A tmpfs.
    Tmpfs,
}

impl MountType {
    pub(crate) fn word(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// A network the container is connected to.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The network's name.
    pub name: String,
    /// Aliases on this network.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub aliases: Option<Vec<String>>,
    /// A fixed IPv4 address on this network.
    pub ipv4_address: Option<String>,
}

/// A health check.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The command: a string runs with the shell (`CMD-SHELL`); a list
    /// starts with `CMD`, `CMD-SHELL` or `NONE`.
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub test: Option<Value>,
    /// Time between checks (`30s`, `1m30s`).
    pub interval: Option<String>,
    /// How long one check may take.
    pub timeout: Option<String>,
    /// Grace period after start.
    pub start_period: Option<String>,
    /// Failures in a row before `unhealthy`.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub retries: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_container`.
pub struct DockerContainerParams {
    /// The container's name (or ID, to find an existing one).
    pub name: String,
    /// The image, `repository[:tag]` (`latest` when no tag is given).
    pub image: Option<String>,
    /// The wanted state.
    #[serde(default)]
    pub state: ContainerState,
    /// The command: a string is split into words as a shell would; a list
    /// is taken as it is.
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub command: Option<Value>,
    /// The entrypoint, as a list of words.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables; values must be strings (quote `"1"`, `"true"`).
    pub env: Option<BTreeMap<String, String>>,
    /// A file on the host of `NAME=value` lines, read before `env` (which wins).
    pub env_file: Option<String>,
    /// Published ports: `8080:80`, `127.0.0.1:8080:80/udp`, `80` (any host port).
    #[serde(default, alias = "ports", deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub published_ports: Option<Vec<String>>,
    /// Ports exposed without publishing them (`8080`, `53/udp`).
    #[serde(
        default,
        alias = "exposed",
        alias = "expose",
        deserialize_with = "de_opt_list"
    )]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub exposed_ports: Option<Vec<String>>,
    /// Volumes: `/data` (anonymous), `name:/data`, `/host:/data:ro`.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub volumes: Option<Vec<String>>,
    /// Mounts (`--mount`).
    pub mounts: Option<Vec<MountSpec>>,
    /// Networks to connect; with `networks_cli_compatible` (the default) the
    /// first one is also the network mode.
    pub networks: Option<Vec<NetworkSpec>>,
    /// The network mode (`bridge`, `host`, `none`, a network's name).
    pub network_mode: Option<String>,
    /// Use the first of `networks` as the network mode, as `docker run` does.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub networks_cli_compatible: bool,
    /// The restart policy.
    pub restart_policy: Option<RestartPolicy>,
    /// Restarts at most this often with `on-failure`.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub restart_retries: Option<u64>,
    /// Labels the container must carry (those of the image are allowed).
    #[serde(default, deserialize_with = "de_string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// A health check.
    pub healthcheck: Option<Healthcheck>,
    /// The user (and group) the command runs as.
    pub user: Option<String>,
    /// The container's host name.
    pub hostname: Option<String>,
    /// The working directory of the command.
    pub working_dir: Option<String>,
    /// Run an init as PID 1 (signals reach the command).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub init: Option<bool>,
    /// Give the container every privilege.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub privileged: Option<bool>,
    /// Mount the root file system read-only.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub read_only: Option<bool>,
    /// Allocate a terminal.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub tty: Option<bool>,
    /// Keep standard input open.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub interactive: Option<bool>,
    /// Remove the container when its command exits.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub auto_remove: Option<bool>,
    /// Capabilities to add.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub capabilities: Option<Vec<String>>,
    /// Containers whose volumes this one mounts too (`NAME`, or `NAME:ro`).
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub volumes_from: Option<Vec<String>>,
    /// Capabilities to drop.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub cap_drop: Option<Vec<String>>,
    /// DNS servers.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub dns_servers: Option<Vec<String>>,
    /// Extra `/etc/hosts` entries, name to address.
    #[serde(default, deserialize_with = "de_string_map")]
    pub etc_hosts: Option<BTreeMap<String, String>>,
    /// The logging driver.
    pub log_driver: Option<String>,
    /// The logging driver's options.
    #[serde(default, alias = "log_opt", deserialize_with = "de_string_map")]
    pub log_options: Option<BTreeMap<String, String>>,
    /// The memory limit (`512m`, `1g`, bytes; `0` for none).
    #[serde(default, deserialize_with = "crate::params::de_opt_string")]
    pub memory: Option<String>,
    /// CPUs the container may use (`1.5`).
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub cpus: Option<f64>,
    /// Seconds to wait for the command to stop before it is killed.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub stop_timeout: Option<u64>,
    /// Remove and make the container again even when it matches.
    #[serde(default, deserialize_with = "de_bool")]
    pub recreate: bool,
    /// Restart a running container when nothing else changes.
    #[serde(default, deserialize_with = "de_bool")]
    pub restart: bool,
    /// Pull the image: `always` (or `true`), `missing` (or `false`, the
    /// default: only when it is not on the host), `never`.
    #[serde(default, deserialize_with = "de_pull")]
    #[schemars(with = "Option<String>")]
    pub pull: Pull,
    /// Keep anonymous volumes when the container is removed.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub keep_volumes: bool,
    /// Run detached; `false` is refused (herd does not wait for the output).
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub detach: bool,
    /// How options are compared with the container's: option name to
    /// `strict`, `ignore` or `allow_more_present`; `*` sets every option.
    pub comparisons: Option<BTreeMap<String, Comparison>>,
    /// Which defaults apply to options not given.
    #[serde(default)]
    pub container_default_behavior: DefaultBehavior,
}

/// When the image is pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Pull {
    /// Every run.
    Always,
    /// When it is not on the host.
    #[default]
    Missing,
    /// Never.
    Never,
}

fn de_pull<'de, D: Deserializer<'de>>(d: D) -> Result<Pull, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Pull::Missing),
        Value::String(s) if s == "always" => Ok(Pull::Always),
        Value::String(s) if s == "missing" => Ok(Pull::Missing),
        Value::String(s) if s == "never" => Ok(Pull::Never),
        v => match crate::params::de_bool(v) {
            Ok(true) => Ok(Pull::Always),
            Ok(false) => Ok(Pull::Missing),
            Err(_) => Err(serde::de::Error::custom(
                "expected always, missing, never or a boolean",
            )),
        },
    }
}

/// `512m`, `1g`, `1.5GB`, `1024` as bytes (Ansible's `human_to_bytes`,
/// where a bare `k`/`m`/`g` is a power of 1024).
pub(crate) fn human_to_bytes(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let pow = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    // Whole bytes: the limit docker stores.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((n * 1024f64.powi(pow)) as u64)
}

/// `30s`, `1m30s`, `500ms`, `1h` as nanoseconds (Docker's durations).
pub(crate) fn duration_ns(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut chars = s.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        // `ms`, `us`, `ns`: a unit of two letters.
        if matches!(c, 'm' | 'u' | 'n') && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let mult: u64 = match unit.as_str() {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        any = true;
    }
    if !num.is_empty() {
        // A bare number is seconds, as the collection reads it.
        total = total.checked_add(num.parse::<u64>().ok()?.checked_mul(1_000_000_000)?)?;
        any = true;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human_to_bytes("512m"), Some(512 * 1024 * 1024));
        assert_eq!(human_to_bytes("1G"), Some(1 << 30));
        assert_eq!(human_to_bytes("2048"), Some(2048));
        assert_eq!(human_to_bytes("lots"), None);
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("10"), Some(10_000_000_000));
        assert_eq!(duration_ns("x"), None);
    }
}
