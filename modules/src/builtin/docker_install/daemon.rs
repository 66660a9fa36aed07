//! daemon.json: the production defaults with the task's settings merged
//! over them, written with sorted keys.

use serde_json::{json, Map, Value};

use crate::ModuleError;

use super::invalid;
use super::params::DockerInstallParams;

/// The production guide's daemon settings, under the user's `daemon` map.
pub fn defaults() -> Map<String, Value> {
    let v = json!({
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "storage-driver": "overlay2",
        "live-restore": true,
        "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},
        "userland-proxy": false,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Merge `over` into `base`: nested maps merge key by key, `null` removes.
pub(super) fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (_, Value::Null) => {
                base.remove(k);
            }
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The same value with every map's keys in sorted order, whatever order
/// the map type keeps, so the file is byte-for-byte stable.
pub(super) fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// daemon.json as the parameters want it.
pub fn daemon_config(p: &DockerInstallParams) -> Result<Value, ModuleError> {
    let mut cfg = defaults();
    match &p.daemon {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => merge(&mut cfg, m),
        Some(_) => {
            return Err(invalid(
                "daemon",
                "expected a mapping of daemon.json keys, e.g. {log-driver: local}",
            ))
        }
    }
    // dockerd takes log-opts as strings only; YAML makes `max-file: 3` a
    // number, which dockerd would refuse.
    if let Some(Value::Object(opts)) = cfg.get_mut("log-opts") {
        for v in opts.values_mut() {
            match v {
                Value::Number(n) => *v = Value::String(n.to_string()),
                Value::Bool(b) => *v = Value::String(b.to_string()),
                _ => {}
            }
        }
    }
    for (key, list) in [
        ("registry-mirrors", &p.registry_mirrors),
        ("insecure-registries", &p.insecure_registries),
    ] {
        // An empty list is the same as none: dockerd's default.
        if let Some(l) = list.as_ref().filter(|l| !l.is_empty()) {
            cfg.insert(key.into(), json!(l));
        }
    }
    if let Some(m) = p.metrics_addr.as_ref().filter(|m| !m.trim().is_empty()) {
        cfg.insert("metrics-addr".into(), json!(m.trim()));
    }
    if cfg.contains_key("pidfile") {
        // The check before a restart points dockerd at a pid file of its
        // own; one set in the file would conflict with it.
        return Err(invalid(
            "daemon.pidfile",
            "not supported: set the pid file with the service's -p flag",
        ));
    }
    Ok(sorted(&Value::Object(cfg)))
}

/// The file's text: two-space indented JSON, sorted keys, final newline.
pub fn daemon_text(cfg: &Value) -> String {
    let mut s = serde_json::to_string_pretty(cfg).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
