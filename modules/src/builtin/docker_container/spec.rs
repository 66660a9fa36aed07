//! The task as the container should be: parameters turned into the forms
//! `docker inspect` shows (`Spec`), and the `docker create` / `docker
//! update` command lines that make them so.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::compare::health_test;
use super::params::{duration_ns, human_to_bytes, DockerContainerParams, Healthcheck};
use crate::builtin::docker_common::docker;
use crate::shell_quote::split;
use crate::ParamError;

const MODULE: &str = "docker_container";

/// The wanted values, normalized; `None` where the task gives nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spec {
    pub(crate) command: Option<Vec<String>>,
    pub(crate) entrypoint: Option<Vec<String>>,
    /// `NAME=value`, the env file's first, then `env`.
    pub(crate) env: Option<Vec<String>>,
    /// Container port (`80/tcp`) to host bindings (`0.0.0.0:8080`).
    pub(crate) ports: Option<BTreeMap<String, Vec<String>>>,
    /// `80/tcp`, published ports included.
    pub(crate) exposed: Option<Vec<String>>,
    /// Binds as `src:dst:mode`, anonymous volumes as their path.
    pub(crate) volumes: Option<Vec<String>>,
    /// Mounts as `type:source:target:rw|ro`.
    pub(crate) mounts: Option<Vec<String>>,
    pub(crate) network_mode: Option<String>,
    pub(crate) healthcheck: Option<Value>,
    pub(crate) memory: Option<u64>,
    pub(crate) nano_cpus: Option<u64>,
}

fn invalid(path: &str, reason: impl Into<String>) -> ParamError {
    ParamError::Invalid {
        module: MODULE,
        path: path.into(),
        reason: reason.into(),
    }
}

/// `NAME=value` lines of an env file; blank lines and `#` comments skipped.
pub(crate) fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

fn command_words(v: &Value) -> Result<Vec<String>, ParamError> {
    match v {
        Value::String(s) => split(s).map_err(|e| invalid("command", e.to_string())),
        Value::Array(a) => a
            .iter()
            .map(|w| match w {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(invalid("command", "a list of strings")),
            })
            .collect(),
        _ => Err(invalid("command", "a string or a list of strings")),
    }
}

/// `8080:80`, `127.0.0.1:8080:80/udp`, `80` as (`80/tcp`, `ip:hostport`).
fn port(spec: &str) -> Result<(String, String), ParamError> {
    if spec.contains('[') {
        return Err(invalid(
            "published_ports",
            "IPv6 bind addresses are not supported",
        ));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, host, cport) = match parts.as_slice() {
        [c] => ("0.0.0.0", "", *c),
        [h, c] => ("0.0.0.0", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => {
            return Err(invalid(
                "published_ports",
                format!("`{spec}`: expected 1 to 3 colon-separated parts"),
            ))
        }
    };
    let (num, proto) = cport.split_once('/').unwrap_or((cport, "tcp"));
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(num) || !(host.is_empty() || numeric(host)) {
        return Err(invalid(
            "published_ports",
            format!("`{spec}`: ports must be numbers (ranges are not supported)"),
        ));
    }
    if !ip.split('.').all(numeric) || ip.split('.').count() != 4 {
        return Err(invalid(
            "published_ports",
            format!("`{spec}`: the bind address must be an IPv4 address"),
        ));
    }
    Ok((format!("{num}/{proto}"), format!("{ip}:{host}")))
}

fn exposed_port(spec: &str) -> String {
    let s = spec.trim();
    if s.contains('/') {
        s.to_string()
    } else {
        format!("{s}/tcp")
    }
}

const VOLUME_MODES: &[&str] = &[
    "rw",
    "ro",
    "z",
    "Z",
    "consistent",
    "delegated",
    "cached",
    "rprivate",
    "private",
    "rshared",
    "shared",
    "rslave",
    "slave",
    "nocopy",
];

fn volume(v: &str) -> Result<String, ParamError> {
    let parts: Vec<&str> = v.split(':').collect();
    let mode_ok = |m: &str| m.split(',').all(|p| VOLUME_MODES.contains(&p));
    match parts.as_slice() {
        [_] => Ok(v.to_string()),
        [src, dst] => Ok(format!("{src}:{dst}:rw")),
        [_, _, mode] if mode_ok(mode) => Ok(v.to_string()),
        [_, _, mode] => Err(invalid("volumes", format!("invalid volume mode `{mode}`"))),
        _ => Err(invalid(
            "volumes",
            format!("`{v}`: expected at most 3 colon-separated parts"),
        )),
    }
}

fn healthcheck(h: &Healthcheck) -> Result<Value, ParamError> {
    let mut out = serde_json::Map::new();
    if let Some(t) = &h.test {
        let test = health_test(t);
        if test.is_null() {
            return Err(invalid("healthcheck.test", "a string or a list of strings"));
        }
        out.insert("test".into(), test);
    }
    for (name, v) in [
        ("interval", &h.interval),
        ("timeout", &h.timeout),
        ("start_period", &h.start_period),
    ] {
        if let Some(v) = v {
            let ns = duration_ns(v).ok_or_else(|| {
                invalid(
                    &format!("healthcheck.{name}"),
                    "a duration like 30s or 1m30s",
                )
            })?;
            out.insert(name.into(), json!(ns));
        }
    }
    if let Some(r) = h.retries {
        out.insert("retries".into(), json!(r));
    }
    Ok(Value::Object(out))
}

impl Spec {
    /// The task's values in inspect's forms; `env_file` is the content of
    /// the task's env file, read from the host.
    pub(crate) fn new(
        p: &DockerContainerParams,
        env_file: Option<&str>,
    ) -> Result<Spec, ParamError> {
        let mut s = Spec {
            command: p.command.as_ref().map(command_words).transpose()?,
            entrypoint: p.entrypoint.clone(),
            ..Spec::default()
        };
        // The CLI sets a one-word entrypoint; the words after the first
        // go in front of the command, where `docker inspect` shows them.
        if let Some(ep) = &s.entrypoint {
            if ep.len() > 1 {
                let mut cmd = ep[1..].to_vec();
                cmd.extend(s.command.clone().unwrap_or_default());
                s.command = Some(cmd);
                s.entrypoint = Some(ep[..1].to_vec());
            }
        }
        if env_file.is_some() || p.env.is_some() {
            let mut env: BTreeMap<String, String> = env_file
                .map(parse_env_file)
                .unwrap_or_default()
                .into_iter()
                .collect();
            env.extend(p.env.clone().unwrap_or_default());
            s.env = Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect());
        }
        if let Some(ports) = &p.published_ports {
            let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for spec in ports {
                let (k, b) = port(spec)?;
                m.entry(k).or_default().push(b);
            }
            m.values_mut().for_each(|v| v.sort());
            s.ports = Some(m);
        }
        if p.exposed_ports.is_some() || s.ports.is_some() {
            let mut e: Vec<String> = p
                .exposed_ports
                .iter()
                .flatten()
                .map(|x| exposed_port(x))
                .collect();
            e.extend(s.ports.iter().flat_map(|m| m.keys().cloned()));
            e.sort();
            e.dedup();
            s.exposed = Some(e);
        }
        s.volumes = p
            .volumes
            .as_ref()
            .map(|v| v.iter().map(|x| volume(x)).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        s.mounts = p.mounts.as_ref().map(|ms| {
            ms.iter()
                .map(|m| {
                    format!(
                        "{}:{}:{}:{}",
                        m.kind.word(),
                        m.source.as_deref().unwrap_or(""),
                        m.target,
                        if m.read_only == Some(true) {
                            "ro"
                        } else {
                            "rw"
                        }
                    )
                })
                .collect()
        });
        s.network_mode = p.network_mode.clone().or_else(|| {
            p.networks
                .as_ref()
                .filter(|_| p.networks_cli_compatible)
                .and_then(|n| n.first())
                .map(|n| n.name.clone())
        });
        s.healthcheck = p.healthcheck.as_ref().map(healthcheck).transpose()?;
        s.memory = p
            .memory
            .as_deref()
            .map(|m| human_to_bytes(m).ok_or_else(|| invalid("memory", "a size like 512m or 1g")))
            .transpose()?;
        // Docker keeps CPUs as billionths.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        {
            s.nano_cpus = p.cpus.map(|c| (c * 1e9).round() as u64);
        }
        Ok(s)
    }

    /// `docker create` for this task, `image` the reference to run.
    pub(crate) fn create_argv(&self, p: &DockerContainerParams, image: &str) -> Vec<String> {
        let mut a = docker(&["create", "--name", &p.name]);
        let mut opt = |flag: &str, v: &str| {
            a.push(flag.to_string());
            a.push(v.to_string());
        };
        if let Some(ep) = &self.entrypoint {
            opt("--entrypoint", ep.first().map_or("", String::as_str));
        }
        for e in self.env.iter().flatten() {
            opt("--env", e);
        }
        for (k, v) in p.labels.iter().flatten() {
            opt("--label", &format!("{k}={v}"));
        }
        for (cport, binds) in self.ports.iter().flatten() {
            for b in binds {
                opt("--publish", &format!("{b}:{cport}"));
            }
        }
        for e in p.exposed_ports.iter().flatten() {
            opt("--expose", &exposed_port(e));
        }
        for v in self.volumes.iter().flatten() {
            opt("--volume", v);
        }
        for m in p.mounts.iter().flatten() {
            let mut spec = format!("type={},target={}", m.kind.word(), m.target);
            if let Some(src) = &m.source {
                spec.push_str(&format!(",source={src}"));
            }
            if m.read_only == Some(true) {
                spec.push_str(",readonly");
            }
            opt("--mount", &spec);
        }
        if let Some(mode) = &self.network_mode {
            opt("--network", mode);
            // The first network's settings go with the create, as
            // `docker run --network` takes them.
            if let Some(n) = p.networks.iter().flatten().find(|n| &n.name == mode) {
                for al in n.aliases.iter().flatten() {
                    opt("--network-alias", al);
                }
                if let Some(ip) = &n.ipv4_address {
                    opt("--ip", ip);
                }
            }
        }
        if let Some(r) = p.restart_policy {
            let word = match p.restart_retries {
                Some(n) if r.word() == "on-failure" => format!("on-failure:{n}"),
                _ => r.word().to_string(),
            };
            opt("--restart", &word);
        }
        if let Some(h) = &self.healthcheck {
            health_flags(h, &mut opt);
        }
        for (flag, v) in [
            ("--user", &p.user),
            ("--hostname", &p.hostname),
            ("--workdir", &p.working_dir),
            ("--log-driver", &p.log_driver),
        ] {
            if let Some(v) = v {
                opt(flag, v);
            }
        }
        for (k, v) in p.log_options.iter().flatten() {
            opt("--log-opt", &format!("{k}={v}"));
        }
        for c in p.capabilities.iter().flatten() {
            opt("--cap-add", c);
        }
        for c in p.cap_drop.iter().flatten() {
            opt("--cap-drop", c);
        }
        for v in p.volumes_from.iter().flatten() {
            opt("--volumes-from", v);
        }
        for d in p.dns_servers.iter().flatten() {
            opt("--dns", d);
        }
        for (h, ip) in p.etc_hosts.iter().flatten() {
            opt("--add-host", &format!("{h}:{ip}"));
        }
        if let Some(m) = self.memory {
            opt("--memory", &m.to_string());
        }
        if let Some(c) = p.cpus {
            opt("--cpus", &c.to_string());
        }
        if let Some(t) = p.stop_timeout {
            opt("--stop-timeout", &t.to_string());
        }
        let no_health = self
            .healthcheck
            .as_ref()
            .is_some_and(|h| h["test"][0] == "NONE");
        for (flag, on) in [
            ("--no-healthcheck", Some(no_health)),
            ("--init", p.init),
            ("--privileged", p.privileged),
            ("--read-only", p.read_only),
            ("--tty", p.tty),
            ("--interactive", p.interactive),
            ("--rm", p.auto_remove),
        ] {
            if on == Some(true) {
                a.push(flag.to_string());
            }
        }
        a.push(image.to_string());
        a.extend(self.command.iter().flatten().cloned());
        a
    }

    /// `docker update` for the options that differ and it can change.
    pub(crate) fn update_argv(&self, p: &DockerContainerParams, what: &[String]) -> Vec<String> {
        let mut a = docker(&["update"]);
        let has = |n: &str| what.iter().any(|w| w == n);
        if has("memory") {
            if let Some(m) = self.memory {
                // Swap unlimited: a new limit above the old swap limit is
                // refused otherwise.
                a.extend([
                    "--memory".into(),
                    m.to_string(),
                    "--memory-swap".into(),
                    "-1".into(),
                ]);
            }
        }
        if has("cpus") {
            if let Some(c) = p.cpus {
                a.extend(["--cpus".into(), c.to_string()]);
            }
        }
        if has("restart_policy") || has("restart_retries") {
            if let Some(r) = p.restart_policy {
                let word = match p.restart_retries {
                    Some(n) if r.word() == "on-failure" => format!("on-failure:{n}"),
                    _ => r.word().to_string(),
                };
                a.extend(["--restart".into(), word]);
            }
        }
        a.push(p.name.clone());
        a
    }
}

fn health_flags(h: &Value, opt: &mut impl FnMut(&str, &str)) {
    let test: Vec<&str> = h["test"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match test.as_slice() {
        ["NONE", ..] => return,
        ["CMD-SHELL", line, ..] => opt("--health-cmd", line),
        _ => {}
    }
    for (key, flag) in [
        ("interval", "--health-interval"),
        ("timeout", "--health-timeout"),
        ("start_period", "--health-start-period"),
    ] {
        if let Some(ns) = h[key].as_u64() {
            opt(flag, &format!("{ns}ns"));
        }
    }
    if let Some(r) = h["retries"].as_u64() {
        opt("--health-retries", &r.to_string());
    }
}
