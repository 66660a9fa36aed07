//! What the parameters and the inventory decide before the host is looked
//! at: the node's roles, its peers, its paths and where its API answers.

use serde::{Deserialize, Serialize};

use crate::ModuleError;

use super::invalid;
use super::params::EsParams;

/// Keys the module writes itself; `settings` may not set them.
pub(super) const OWNED_KEYS: &[&str] = &[
    "cluster.name",
    "node.name",
    "node.roles",
    "path.data",
    "path.logs",
    "network.host",
    "http.port",
    "discovery.seed_hosts",
    "cluster.initial_master_nodes",
    "bootstrap.memory_lock",
];

pub(super) fn plain_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub(super) fn abs_path(path: &str, v: &str) -> Result<(), ModuleError> {
    if !v.starts_with('/') || v.contains("..") || v.contains(['\n', '\'', '"']) {
        return Err(invalid(path, "must be an absolute path"));
    }
    Ok(())
}

/// Everything the parameters and the inventory decide, before looking at
/// the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Layout {
    pub(super) node: String,
    pub(super) master: bool,
    pub(super) data: bool,
    pub(super) roles: Vec<String>,
    pub(super) address: String,
    pub(super) port: u64,
    pub(super) seed_hosts: Vec<String>,
    /// Every node's address (masters, then the other data nodes): who is
    /// asked whether the cluster has formed.
    pub(super) node_addresses: Vec<String>,
    pub(super) initial_masters: Vec<String>,
    pub(super) home: String,
    pub(super) current: String,
    pub(super) yml: String,
    pub(super) heap_file: String,
    pub(super) unit: String,
}

pub(super) fn layout(p: &EsParams) -> Result<Layout, ModuleError> {
    if !plain_word(&p.version) {
        return Err(invalid("version", "must be like 8.11.1"));
    }
    if p.cluster_name.trim().is_empty() || p.cluster_name.contains(['\n', '"', '\\']) {
        return Err(invalid("cluster_name", "must be one line without quotes"));
    }
    if !plain_word(&p.user) {
        return Err(invalid("user", "must be a plain user name"));
    }
    if !plain_word(&p.service) {
        return Err(invalid("service", "must be a plain unit name"));
    }
    abs_path("install_root", &p.install_root)?;
    abs_path("data_dir", &p.data_dir)?;
    abs_path("log_dir", &p.log_dir)?;
    let inv = p.inventory.as_ref().ok_or_else(|| {
        invalid(
            "masters",
            "the inventory was not passed to the module (run it through herd)",
        )
    })?;
    let masters = inv.group(&p.masters).ok_or_else(|| {
        invalid(
            "masters",
            format!("no group `{}` in the inventory", p.masters),
        )
    })?;
    let data = inv
        .group(&p.data)
        .ok_or_else(|| invalid("data", format!("no group `{}` in the inventory", p.data)))?;
    if masters.is_empty() {
        return Err(invalid(
            "masters",
            format!("group `{}` has no hosts", p.masters),
        ));
    }
    let node = inv.host.clone();
    let master = masters.contains(&node);
    let is_data = data.contains(&node);
    if !master && !is_data {
        return Err(invalid(
            "masters",
            format!(
                "{node} is in neither `{}` nor `{}`: it has no role in the cluster",
                p.masters, p.data
            ),
        ));
    }
    let mut roles = Vec::new();
    if master {
        roles.push("master".to_string());
    }
    if is_data {
        roles.push("data".to_string());
        roles.push("ingest".to_string());
    }
    let port = p.http_port.unwrap_or(9200);
    if port == 0 || port > 65535 {
        return Err(invalid("http_port", "must be a TCP port"));
    }
    let address = match &p.network_host {
        Some(h) if !h.trim().is_empty() => h.trim().to_string(),
        _ => inv.address(&node).to_string(),
    };
    if address.contains(['\n', '"', ' ', '/']) {
        return Err(invalid("network_host", "must be an address or host name"));
    }
    for k in p.settings.keys() {
        if OWNED_KEYS.contains(&k.as_str()) {
            return Err(invalid(
                &format!("settings.{k}"),
                "is written by the module from its own parameters and the inventory",
            ));
        }
        if !plain_word(k) {
            return Err(invalid(
                &format!("settings.{k}"),
                "not a flat, dotted settings key",
            ));
        }
    }
    let home = format!(
        "{}/elasticsearch-{}",
        p.install_root.trim_end_matches('/'),
        p.version
    );
    Ok(Layout {
        master,
        data: is_data,
        roles,
        port,
        seed_hosts: masters.iter().map(|m| inv.address(m).to_string()).collect(),
        node_addresses: masters
            .iter()
            .chain(data.iter().filter(|d| !masters.contains(d)))
            .map(|n| inv.address(n).to_string())
            .collect(),
        initial_masters: masters.to_vec(),
        current: format!(
            "{}/elasticsearch-current",
            p.install_root.trim_end_matches('/')
        ),
        yml: format!("{home}/config/elasticsearch.yml"),
        heap_file: format!("{home}/config/jvm.options.d/heap.options"),
        unit: format!("/etc/systemd/system/{}.service", p.service),
        home,
        address,
        node,
    })
}

/// The address the module's API calls go to: the node's own bind address,
/// or its inventory address when it binds a wildcard.
pub(super) fn api_base(l: &Layout, p: &EsParams) -> String {
    let host = if l.address == "0.0.0.0" || l.address.starts_with('_') {
        p.inventory
            .as_ref()
            .map(|i| i.address(&l.node).to_string())
            .unwrap_or_else(|| "127.0.0.1".into())
    } else {
        l.address.clone()
    };
    format!("http://{host}:{}", l.port)
}
