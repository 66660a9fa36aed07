//! The cluster's HTTP API, called through the host's curl: the waits for
//! the node and for health, shard allocation, the version check, and the
//! per-cluster lock that makes restarts take turns.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::shell_quote::quote;
use crate::{Host, HostError};

use super::layout::Layout;
use super::params::{EsParams, Health};

/// Why a call to the cluster's API, or a wait on it, did not end well.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{service} is not running: it stopped or refused to start:\n{log}")]
    Dead { service: String, log: String },
    #[error("{node} did not join the cluster within {seconds}s (last answer {status}: {body})")]
    NotJoined {
        node: String,
        seconds: u64,
        status: u16,
        body: String,
    },
    #[error("cluster health did not reach {want} within {seconds}s (last answer {status} {body})")]
    Health {
        want: &'static str,
        seconds: u64,
        status: u16,
        body: String,
    },
    #[error("setting cluster.routing.allocation.enable to {value} failed: {status} {body}")]
    Allocation {
        value: String,
        status: u16,
        body: String,
    },
    #[error("the node runs version {runs}, not {want}")]
    Version { runs: String, want: String },
    #[error("the node did not say its version: {status} {body}")]
    NoVersion { status: u16, body: String },
}

/// One lock per cluster name for this process: rolling restarts of the
/// hosts of one run take turns.
pub(super) fn cluster_lock(cluster: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<BTreeMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.entry(cluster.to_string()).or_default().clone()
}

/// One API call from the host: (HTTP status, body); status 0 when the
/// node did not answer.
pub(super) fn api(
    host: &mut dyn Host,
    method: &str,
    url: &str,
    body: Option<&str>,
    timeout_s: u64,
) -> Result<(u16, String), HostError> {
    let data = if body.is_some() {
        " -H 'Content-Type: application/json' --data-binary @-"
    } else {
        ""
    };
    let s = format!(
        "curl -s -m {timeout_s} -X {method}{data} -w '\\n%{{http_code}}' {} 2>/dev/null || true",
        quote(url)
    );
    let out = host.run(&s, body.map(str::as_bytes))?;
    let text = out.stdout_str();
    let (b, code) = text
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", text.trim()));
    Ok((code.trim().parse().unwrap_or(0), b.to_string()))
}

/// Until the node answers and lists itself in `_cat/nodes`; a service that
/// died fails at once with the end of its journal.
pub(super) fn wait_joined(
    host: &mut dyn Host,
    p: &EsParams,
    l: &Layout,
    base: &str,
    timeout: Duration,
) -> Result<(), ApiError> {
    let start = Instant::now();
    let url = format!("{base}/_cat/nodes?format=json&h=name");
    loop {
        let (st, body) = api(host, "GET", &url, None, 5)?;
        if st == 200 {
            let names: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
            if names
                .iter()
                .any(|n| n.get("name").and_then(Value::as_str) == Some(l.node.as_str()))
            {
                return Ok(());
            }
        }
        let svc = quote(&p.service);
        let out = host
            .run(
                &format!(
                    "if ! systemctl is-active -q {svc}; then echo DEAD; journalctl -u {svc} -n 15 --no-pager -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID --value {svc}) 2>/dev/null; fi"
                ),
                None,
            )?;
        let o = out.stdout_str();
        if let Some(log) = o.strip_prefix("DEAD") {
            return Err(ApiError::Dead {
                service: p.service.clone(),
                log: log.trim().to_string(),
            });
        }
        if start.elapsed() >= timeout {
            return Err(ApiError::NotJoined {
                node: l.node.clone(),
                seconds: timeout.as_secs(),
                status: st,
                body: body.trim().to_string(),
            });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub(super) fn health_rank(s: &str) -> u8 {
    match s {
        "green" => 2,
        "yellow" => 1,
        _ => 0,
    }
}

/// Until `/_cluster/health` reports `want` or better (the server waits
/// with `wait_for_status`, in slices, so a lost node shows as an error).
pub(super) fn wait_health(
    host: &mut dyn Host,
    base: &str,
    want: Health,
    timeout: Duration,
) -> Result<Value, ApiError> {
    let start = Instant::now();
    loop {
        let left = timeout
            .saturating_sub(start.elapsed())
            .as_secs()
            .clamp(1, 10);
        let url = format!(
            "{base}/_cluster/health?wait_for_status={}&timeout={left}s",
            want.word()
        );
        let (st, body) = api(host, "GET", &url, None, left + 5)?;
        if let Ok(v) = serde_json::from_str::<Value>(&body) {
            let status = v.get("status").and_then(Value::as_str).unwrap_or("");
            if st == 200 && health_rank(status) >= health_rank(want.word()) {
                return Ok(v);
            }
        }
        if start.elapsed() >= timeout {
            return Err(ApiError::Health {
                want: want.word(),
                seconds: timeout.as_secs(),
                status: st,
                body: body.trim().to_string(),
            });
        }
        if st != 408 {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// `cluster.routing.allocation.enable`: `primaries` for a restart,
/// `None` (the default, `all`) afterwards.
pub(super) fn set_allocation(
    host: &mut dyn Host,
    base: &str,
    value: Option<&str>,
) -> Result<(), ApiError> {
    let body = json!({"persistent": {"cluster.routing.allocation.enable": value}}).to_string();
    let (st, resp) = api(
        host,
        "PUT",
        &format!("{base}/_cluster/settings"),
        Some(&body),
        30,
    )?;
    if st == 200 {
        Ok(())
    } else {
        Err(ApiError::Allocation {
            value: value.unwrap_or("null").to_string(),
            status: st,
            body: resp.trim().to_string(),
        })
    }
}

/// The node now runs the wanted version.
pub(super) fn check_version(
    host: &mut dyn Host,
    base: &str,
    version: &str,
) -> Result<(), ApiError> {
    let (st, body) = api(host, "GET", &format!("{base}/"), None, 10)?;
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match v.pointer("/version/number").and_then(Value::as_str) {
        Some(n) if n == version => Ok(()),
        Some(n) => Err(ApiError::Version {
            runs: n.to_string(),
            want: version.to_string(),
        }),
        None => Err(ApiError::NoVersion {
            status: st,
            body: body.trim().to_string(),
        }),
    }
}
