//! The container compared with the task, as `community.docker` compares
//! it: only the options the task gives; scalars and lists must be equal
//! (`strict`); sets and dicts (env, labels, volumes, mounts, ports,
//! capabilities, log options, the health check) only need what the task
//! gives (`allow_more_present`), since the image adds its own; the
//! `comparisons` parameter overrides either, per option or with `*`.
//! Networks are connected and disconnected in place, never a reason to
//! recreate; memory, CPUs and the restart policy are changed with
//! `docker update`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::params::{Comparison, DefaultBehavior, DockerContainerParams, NetworkSpec};
use super::spec::Spec;
use crate::builtin::docker_common::at;

/// How an option's values are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    List,
    Set,
    Dict,
}

/// The names `comparisons` takes.
pub(crate) const COMPARABLE: &[&str] = &[
    "*",
    "image",
    "networks",
    "command",
    "entrypoint",
    "env",
    "labels",
    "published_ports",
    "exposed_ports",
    "volumes",
    "mounts",
    "network_mode",
    "restart_policy",
    "restart_retries",
    "healthcheck",
    "user",
    "hostname",
    "working_dir",
    "init",
    "privileged",
    "read_only",
    "tty",
    "interactive",
    "auto_remove",
    "capabilities",
    "cap_drop",
    "volumes_from",
    "dns_servers",
    "etc_hosts",
    "log_driver",
    "log_options",
    "memory",
    "cpus",
    "stop_timeout",
    "ports",
    "exposed",
    "expose",
    "log_opt",
];

/// The aliases `comparisons` may name an option by.
fn aliases(name: &str) -> &'static [&'static str] {
    match name {
        "published_ports" => &["ports"],
        "exposed_ports" => &["exposed", "expose"],
        "log_options" => &["log_opt"],
        _ => &[],
    }
}

/// Options `docker update` changes without recreating the container.
const UPDATABLE: &[&str] = &["memory", "cpus", "restart_policy", "restart_retries"];

/// What differs, and what to do about it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Differences {
    /// Options whose difference needs a new container.
    pub(crate) recreate: Vec<String>,
    /// Options `docker update` changes.
    pub(crate) update: Vec<String>,
    /// Networks to connect (again, when their settings differ).
    pub(crate) connect: Vec<NetworkSpec>,
    /// Networks to disconnect first.
    pub(crate) disconnect: Vec<String>,
}

fn mode_for(p: &DockerContainerParams, name: &str, kind: Kind) -> Comparison {
    let given = p.comparisons.as_ref();
    if let Some(c) = std::iter::once(&name)
        .chain(aliases(name))
        .find_map(|n| given.and_then(|c| c.get(*n)))
    {
        return *c;
    }
    if let Some(c) = given.and_then(|c| c.get("*")) {
        return *c;
    }
    if name == "stop_timeout" {
        return Comparison::Ignore;
    }
    match kind {
        Kind::Value | Kind::List => Comparison::Strict,
        Kind::Set | Kind::Dict => Comparison::AllowMorePresent,
    }
}

fn same(kind: Kind, mode: Comparison, want: &Value, have: &Value) -> bool {
    match (mode, kind) {
        (Comparison::Ignore, _) => true,
        (_, Kind::Value | Kind::List) => want == have,
        (Comparison::Strict, Kind::Set) => {
            let w = set(want);
            let h = set(have);
            w.iter().all(|x| h.contains(x)) && h.iter().all(|x| w.contains(x))
        }
        (Comparison::AllowMorePresent, Kind::Set) => {
            let h = set(have);
            set(want).iter().all(|x| h.contains(x))
        }
        (Comparison::Strict, Kind::Dict) => dict(want) == dict(have),
        (Comparison::AllowMorePresent, Kind::Dict) => {
            let h = dict(have);
            dict(want).iter().all(|(k, v)| h.get(k) == Some(v))
        }
    }
}

fn set(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn dict(v: &Value) -> BTreeMap<String, Value> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// `Null` read as what docker means by it for this kind.
fn or_empty(kind: Kind, v: &Value) -> Value {
    match (kind, v) {
        (Kind::List | Kind::Set, Value::Null) => json!([]),
        (Kind::Dict, Value::Null) => json!({}),
        _ => v.clone(),
    }
}

/// `net_admin` and `CAP_NET_ADMIN` are the same capability.
fn capability(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn caps(v: &Value) -> Value {
    Value::Array(
        set(v)
            .iter()
            .filter_map(Value::as_str)
            .map(|c| json!(capability(c)))
            .collect(),
    )
}

/// `src:dst` binds read as `src:dst:rw`.
fn binds(container: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = set(at(container, "HostConfig.Binds"))
        .iter()
        .filter_map(Value::as_str)
        .map(|b| {
            if b.split(':').count() == 2 {
                json!(format!("{b}:rw"))
            } else {
                json!(b)
            }
        })
        .collect();
    if let Some(m) = at(container, "Config.Volumes").as_object() {
        out.extend(m.keys().map(|k| json!(k)));
    }
    out
}

fn mounts(container: &Value) -> Vec<Value> {
    set(at(container, "HostConfig.Mounts"))
        .iter()
        .map(|m| {
            json!(format!(
                "{}:{}:{}:{}",
                m["Type"].as_str().unwrap_or("volume"),
                m["Source"].as_str().unwrap_or(""),
                m["Target"].as_str().unwrap_or(""),
                if m["ReadOnly"].as_bool().unwrap_or(false) {
                    "ro"
                } else {
                    "rw"
                }
            ))
        })
        .collect()
}

/// Port bindings as `{"80/tcp": ["0.0.0.0:8080"]}`, an empty host address
/// read as `0.0.0.0`.
fn port_bindings(container: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(m) = at(container, "HostConfig.PortBindings").as_object() {
        for (port, binds) in m {
            let mut list: Vec<String> = set(binds)
                .iter()
                .map(|b| {
                    let ip = b["HostIp"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .unwrap_or("0.0.0.0");
                    format!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""))
                })
                .collect();
            list.sort();
            out.insert(port.clone(), json!(list));
        }
    }
    Value::Object(out)
}

/// A health check's test as a list, `CMD a b` read as the shell line
/// `CMD-SHELL a b` (the docker CLI can only give the shell form).
pub(crate) fn health_test(test: &Value) -> Value {
    let words: Vec<String> = match test {
        Value::String(s) => vec!["CMD-SHELL".into(), s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return Value::Null,
    };
    match words.split_first() {
        Some((first, rest)) if first == "CMD" => {
            json!(["CMD-SHELL", crate::shell_quote::join(rest)])
        }
        _ => json!(words),
    }
}

fn healthcheck(container: &Value) -> Value {
    let h = at(container, "Config.Healthcheck");
    if h.is_null() {
        return json!({});
    }
    let mut out = serde_json::Map::new();
    out.insert("test".into(), health_test(&h["Test"]));
    for (key, name) in [
        ("Interval", "interval"),
        ("Timeout", "timeout"),
        ("StartPeriod", "start_period"),
        ("Retries", "retries"),
    ] {
        if let Some(n) = h[key].as_u64().filter(|n| *n != 0) {
            out.insert(name.into(), json!(n));
        }
    }
    Value::Object(out)
}

/// Every option the task gives: (name, kind, wanted, the container's).
fn options(
    p: &DockerContainerParams,
    s: &Spec,
    c: &Value,
) -> Vec<(&'static str, Kind, Value, Value)> {
    let mut o: Vec<(&'static str, Kind, Value, Value)> = Vec::new();
    let mut add = |name, kind, want: Option<Value>, have: Value| {
        if let Some(w) = want {
            o.push((name, kind, w, or_empty(kind, &have)));
        }
    };
    add(
        "command",
        Kind::List,
        s.command.clone().map(|c| json!(c)),
        at(c, "Config.Cmd").clone(),
    );
    add(
        "entrypoint",
        Kind::List,
        s.entrypoint.clone().map(|c| json!(c)),
        at(c, "Config.Entrypoint").clone(),
    );
    add(
        "env",
        Kind::Set,
        s.env.as_ref().map(|e| json!(e)),
        at(c, "Config.Env").clone(),
    );
    add(
        "labels",
        Kind::Dict,
        p.labels.as_ref().map(|l| json!(l)),
        at(c, "Config.Labels").clone(),
    );
    add(
        "published_ports",
        Kind::Dict,
        s.ports.as_ref().map(|pb| json!(pb)),
        port_bindings(c),
    );
    add(
        "exposed_ports",
        Kind::Set,
        s.exposed.as_ref().map(|e| json!(e)),
        json!(at(c, "Config.ExposedPorts")
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()),
    );
    add(
        "volumes",
        Kind::Set,
        s.volumes.as_ref().map(|v| json!(v)),
        json!(binds(c)),
    );
    add(
        "mounts",
        Kind::Set,
        s.mounts.as_ref().map(|m| json!(m)),
        json!(mounts(c)),
    );
    add(
        "network_mode",
        Kind::Value,
        s.network_mode.clone().map(Value::String),
        at(c, "HostConfig.NetworkMode").clone(),
    );
    add(
        "restart_policy",
        Kind::Value,
        p.restart_policy.map(|r| json!(r.word())),
        at(c, "HostConfig.RestartPolicy.Name").clone(),
    );
    add(
        "restart_retries",
        Kind::Value,
        p.restart_retries.map(|r| json!(r)),
        at(c, "HostConfig.RestartPolicy.MaximumRetryCount").clone(),
    );
    add(
        "healthcheck",
        Kind::Dict,
        s.healthcheck.clone(),
        healthcheck(c),
    );
    add(
        "user",
        Kind::Value,
        p.user.clone().map(Value::String),
        at(c, "Config.User").clone(),
    );
    add(
        "hostname",
        Kind::Value,
        p.hostname.clone().map(Value::String),
        at(c, "Config.Hostname").clone(),
    );
    add(
        "working_dir",
        Kind::Value,
        p.working_dir.clone().map(Value::String),
        at(c, "Config.WorkingDir").clone(),
    );
    host_options(p, s, c, &mut o);
    o
}

/// The options of the host config and the flags (see [`options`]).
fn host_options(
    p: &DockerContainerParams,
    s: &Spec,
    c: &Value,
    o: &mut Vec<(&'static str, Kind, Value, Value)>,
) {
    let mut add = |name, kind, want: Option<Value>, have: Value| {
        if let Some(w) = want {
            o.push((name, kind, w, or_empty(kind, &have)));
        }
    };
    let compat = p.container_default_behavior == DefaultBehavior::Compatibility;
    let flag = |v: Option<bool>| v.or(compat.then_some(false)).map(Value::Bool);
    let bool_at = |path: &str| json!(at(c, path).as_bool().unwrap_or(false));
    add(
        "init",
        Kind::Value,
        flag(p.init),
        bool_at("HostConfig.Init"),
    );
    add(
        "privileged",
        Kind::Value,
        flag(p.privileged),
        bool_at("HostConfig.Privileged"),
    );
    add(
        "read_only",
        Kind::Value,
        flag(p.read_only),
        bool_at("HostConfig.ReadonlyRootfs"),
    );
    add("tty", Kind::Value, flag(p.tty), bool_at("Config.Tty"));
    add(
        "interactive",
        Kind::Value,
        flag(p.interactive),
        bool_at("Config.OpenStdin"),
    );
    add(
        "auto_remove",
        Kind::Value,
        flag(p.auto_remove),
        bool_at("HostConfig.AutoRemove"),
    );
    add(
        "capabilities",
        Kind::Set,
        p.capabilities.as_ref().map(|v| caps(&json!(v))),
        caps(at(c, "HostConfig.CapAdd")),
    );
    add(
        "cap_drop",
        Kind::Set,
        p.cap_drop.as_ref().map(|v| caps(&json!(v))),
        caps(at(c, "HostConfig.CapDrop")),
    );
    add(
        "volumes_from",
        Kind::Set,
        p.volumes_from.as_ref().map(|v| json!(v)),
        at(c, "HostConfig.VolumesFrom").clone(),
    );
    add(
        "dns_servers",
        Kind::List,
        p.dns_servers.as_ref().map(|v| json!(v)),
        at(c, "HostConfig.Dns").clone(),
    );
    add(
        "etc_hosts",
        Kind::Set,
        p.etc_hosts.as_ref().map(|m| {
            json!(m
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>())
        }),
        at(c, "HostConfig.ExtraHosts").clone(),
    );
    add(
        "log_driver",
        Kind::Value,
        p.log_driver.clone().map(Value::String),
        at(c, "HostConfig.LogConfig.Type").clone(),
    );
    add(
        "log_options",
        Kind::Dict,
        p.log_options.as_ref().map(|m| json!(m)),
        at(c, "HostConfig.LogConfig.Config").clone(),
    );
    add(
        "memory",
        Kind::Value,
        s.memory.or(compat.then_some(0)).map(|m| json!(m)),
        json!(at(c, "HostConfig.Memory").as_u64().unwrap_or(0)),
    );
    add(
        "cpus",
        Kind::Value,
        s.nano_cpus.map(|n| json!(n)),
        json!(at(c, "HostConfig.NanoCpus").as_u64().unwrap_or(0)),
    );
    add(
        "stop_timeout",
        Kind::Value,
        p.stop_timeout.map(|t| json!(t)),
        at(c, "Config.StopTimeout").clone(),
    );
}

/// What differs between the container `c` and the task.
pub(crate) fn differences(p: &DockerContainerParams, s: &Spec, c: &Value) -> Differences {
    let mut d = Differences::default();
    for (name, kind, want, have) in options(p, s, c) {
        if !same(kind, mode_for(p, name, kind), &want, &have) {
            if UPDATABLE.contains(&name) {
                d.update.push(name.to_string());
            } else {
                d.recreate.push(name.to_string());
            }
        }
    }
    networks(p, s, c, &mut d);
    d
}

/// Networks to connect or disconnect in place.
fn networks(p: &DockerContainerParams, s: &Spec, c: &Value, d: &mut Differences) {
    let Some(wanted) = &p.networks else {
        return;
    };
    let have = at(c, "NetworkSettings.Networks");
    for n in wanted {
        // The network mode's network is the container's from its creation.
        if s.network_mode.as_deref() == Some(n.name.as_str())
            && d.recreate.iter().any(|r| r == "network_mode")
        {
            continue;
        }
        let Some(h) = have.get(&n.name) else {
            d.connect.push(n.clone());
            continue;
        };
        let aliases: Vec<&str> = h["Aliases"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let alias_ok = n
            .aliases
            .iter()
            .flatten()
            .all(|a| aliases.contains(&a.as_str()));
        let ip_ok = n
            .ipv4_address
            .as_ref()
            .is_none_or(|ip| at(h, "IPAMConfig.IPv4Address").as_str() == Some(ip.as_str()));
        if !(alias_ok && ip_ok) {
            d.disconnect.push(n.name.clone());
            d.connect.push(n.clone());
        }
    }
    if mode_for(p, "networks", Kind::Set) == Comparison::Strict {
        if let Some(m) = have.as_object() {
            for name in m.keys() {
                if !wanted.iter().any(|n| &n.name == name) {
                    d.disconnect.push(name.clone());
                }
            }
        }
    }
}
