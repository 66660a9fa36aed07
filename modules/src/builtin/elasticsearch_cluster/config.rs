//! The files the module writes: `elasticsearch.yml`, the heap options,
//! the systemd unit and the sysctl.d file.

use serde_json::{json, Value};

use crate::ModuleError;

use super::layout::Layout;
use super::params::EsParams;
use super::{invalid, HEADER, MAX_HEAP_MB, MAX_MAP_COUNT, NOFILE};

pub(super) fn yaml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| json!(s).to_string()).collect();
    format!("[{}]", quoted.join(", "))
}

/// `elasticsearch.yml`; `bootstrap` adds `cluster.initial_master_nodes`.
pub(super) fn yml_text(p: &EsParams, l: &Layout, bootstrap: bool) -> String {
    let mut s = String::from(HEADER);
    let line = |s: &mut String, k: &str, v: String| s.push_str(&format!("{k}: {v}\n"));
    line(
        &mut s,
        "cluster.name",
        json!(p.cluster_name.trim()).to_string(),
    );
    line(&mut s, "node.name", json!(l.node).to_string());
    line(&mut s, "node.roles", yaml_list(&l.roles));
    line(&mut s, "path.data", json!(p.data_dir).to_string());
    line(&mut s, "path.logs", json!(p.log_dir).to_string());
    line(&mut s, "network.host", json!(l.address).to_string());
    line(&mut s, "http.port", l.port.to_string());
    line(&mut s, "bootstrap.memory_lock", p.memory_lock.to_string());
    line(&mut s, "discovery.seed_hosts", yaml_list(&l.seed_hosts));
    if bootstrap {
        line(
            &mut s,
            "cluster.initial_master_nodes",
            yaml_list(&l.initial_masters),
        );
    }
    for (k, v) in &p.settings {
        let v = match v {
            Value::String(x) => json!(x).to_string(),
            Value::Null => "null".into(),
            other => other.to_string(),
        };
        line(&mut s, k, v);
    }
    s
}

/// The text without the bootstrap line: two configs that differ only
/// there need no restart (the setting is read at the first start only).
pub(super) fn without_bootstrap(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("cluster.initial_master_nodes:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

pub(super) fn parse_heap(s: &str) -> Result<String, ModuleError> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: u64 = num
        .parse()
        .map_err(|_| invalid("heap", "must be a size like 512m or 4g"))?;
    let unit = unit.to_ascii_lowercase();
    let mb = match unit.as_str() {
        "g" => n * 1024,
        "m" => n,
        _ => return Err(invalid("heap", "must be a size like 512m or 4g")),
    };
    if mb == 0 || mb > MAX_HEAP_MB {
        return Err(invalid(
            "heap",
            "must be above 0 and at most 31g (compressed object pointers)",
        ));
    }
    Ok(format!("{n}{unit}"))
}

/// Half the RAM, at most 31g.
pub(super) fn default_heap(mem_kb: u64) -> String {
    let mb = (mem_kb / 2 / 1024).clamp(128, MAX_HEAP_MB);
    if mb % 1024 == 0 {
        format!("{}g", mb / 1024)
    } else {
        format!("{mb}m")
    }
}

pub(super) fn heap_text(heap: &str) -> String {
    format!("{HEADER}-Xms{heap}\n-Xmx{heap}\n")
}

pub(super) fn unit_text(p: &EsParams, l: &Layout) -> String {
    format!(
        "{HEADER}[Unit]\n\
         Description=Elasticsearch node {node} of cluster {cluster}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\n\
         [Service]\n\
         Type=simple\n\
         User={user}\n\
         Group={user}\n\
         Environment=ES_HOME={cur}\n\
         Environment=ES_PATH_CONF={cur}/config\n\
         WorkingDirectory={cur}\n\
         ExecStart={cur}/bin/elasticsearch\n\
         LimitNOFILE={NOFILE}\n\
         LimitMEMLOCK=infinity\n\
         LimitNPROC=4096\n\
         TimeoutStopSec=120\n\
         SuccessExitStatus=143\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        node = l.node,
        cluster = p.cluster_name.trim(),
        user = p.user,
        cur = l.current,
    )
}

pub(super) fn sysctl_text() -> String {
    format!("{HEADER}vm.max_map_count = {MAX_MAP_COUNT}\n")
}
