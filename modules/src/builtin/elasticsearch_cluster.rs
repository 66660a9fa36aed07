//! `elasticsearch_cluster`: one Elasticsearch node per host, its role and
//! its peers taken from the inventory, installed from a tarball and run by
//! systemd; then gated on the node joining and on cluster health.
//!
//! Topology: hosts of the `masters` group are master-eligible
//! (`node.roles: ["master"]`), hosts of the `data` group hold data
//! (`["data", "ingest"]`), a host in both is both. `discovery.seed_hosts`
//! lists the masters' inventory addresses. The module reads them from the
//! engine's inventory view (`_inventory`, see [`crate::inventory`]), which
//! covers the whole inventory, so a node added later with `--limit` still
//! finds the masters.
//!
//! Bootstrap: `cluster.initial_master_nodes` goes only into a master's
//! config while the cluster has not formed: when no node of the cluster
//! (masters and data nodes of the inventory) answers `GET /` with a
//! committed `cluster_uuid` of this cluster name. What the nodes say is the
//! only evidence: Elasticsearch writes `<path.data>/_state` at its first
//! start, so a first bootstrap that failed leaves one behind, and reading
//! that directory as "already in a cluster" dropped the setting on the rerun
//! and the cluster could never form. (A formed cluster with every node down
//! looks new too; its nodes hold cluster state and ignore the setting, and
//! it is removed again once the cluster is healthy.) Once the cluster is
//! healthy the setting is taken out of the file again (no restart: it is
//! read only at the first start), as Elasticsearch's guide asks, so the
//! next run plans nothing.
//!
//! The plan looks at the host and asks the nodes over HTTP in one script
//! (one round trip) and changes nothing. Apply, in order: system user and
//! directories; download (`url` + `checksum`, fetched by the host's curl)
//! or upload (`src`, read on the controller by the engine) and unpack into
//! `<install_root>/elasticsearch-<version>`; the `elasticsearch-current`
//! link; `vm.max_map_count`; `config/elasticsearch.yml`,
//! `config/jvm.options.d/heap.options` and the systemd unit (nofile 65535,
//! memlock unlimited); then the service.
//!
//! Service: a stopped node is started. A running node whose config,
//! version or unit changed is restarted as one step of a rolling restart:
//! wait for the wanted health, disable replica allocation
//! (`cluster.routing.allocation.enable: primaries`), restart, wait for the
//! node to rejoin and for at least yellow, re-enable allocation, wait for
//! the wanted health. Restarts are one node at a time across the hosts of a
//! run: each takes a lock per cluster name held by this process (the hosts
//! of a play run in one `herd` process), and the health gate before the
//! restart also holds off while another node of the cluster is away.
//!
//! `vm.max_map_count`: the sysctl.d file is always written; the live value
//! is raised only when lower. A kernel that refuses (read-only in a
//! container) fails the task unless `max_map_count_read_only: warn`.
//!
//! The module talks plain HTTP without credentials to the node's
//! `network.host` (use `settings: {xpack.security.enabled: false}` or a
//! node reachable without TLS).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::builtin::get_url::parse_checksum;
use crate::host::FileAttrs;
use crate::inventory::InventoryView;
use crate::params::{de_bool, de_opt_u64, yes};
use crate::probe::{tagged, tagged_file, tagged_line, ProbeError};
use crate::shell_quote::quote;
use crate::textfile;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

const HEADER: &str = "# Managed by herd (elasticsearch_cluster). Local changes are overwritten.\n";
const SYSCTL_FILE: &str = "/etc/sysctl.d/60-elasticsearch.conf";
const MAX_MAP_COUNT: u64 = 262_144;
const NOFILE: u64 = 65_535;
/// Compressed object pointers stop working above ~32g of heap.
const MAX_HEAP_MB: u64 = 31 * 1024;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Green,
    Yellow,
}

impl Health {
    fn word(self) -> &'static str {
        match self {
            Health::Green => "green",
            Health::Yellow => "yellow",
        }
    }
}

/// What a kernel that refuses `vm.max_map_count` means for the task.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ReadOnlyPolicy {
    #[default]
    Fail,
    Warn,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EsParams {
    /// `cluster.name`; also the name of the lock that makes the hosts of one run restart one at
    /// a time.
    pub cluster_name: String,
    /// The Elasticsearch version; it is installed under
    /// `<install_root>/elasticsearch-<version>`.
    pub version: String,
    /// Group of the master-eligible nodes.
    pub masters: String,
    /// Group of the data nodes.
    pub data: String,
    /// Tarball URL, fetched by the host (with `checksum`).
    pub url: Option<String>,
    /// `sha256:HEX` or `sha512:HEX` of the tarball.
    pub checksum: Option<String>,
    /// A tarball on the controller; the engine reads it into `_src_b64`.
    pub src: Option<String>,
    /// Set by the engine: the controller tarball, base64.
    #[serde(rename = "_src_b64")]
    pub src_b64: Option<String>,
    /// Set by the engine: the controller path of the tarball.
    #[serde(rename = "_src_path")]
    pub src_path: Option<String>,
    /// `-Xms`/`-Xmx`, e.g. `4g`; default half the RAM, at most 31g.
    pub heap: Option<String>,
    /// `http.port` (default 9200).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub http_port: Option<u64>,
    /// Default: the host's inventory address.
    pub network_host: Option<String>,
    /// The system user the node runs as (created when missing).
    #[serde(default = "default_user")]
    pub user: String,
    /// Where versions are installed, with the link `elasticsearch-current`.
    #[serde(default = "default_root")]
    pub install_root: String,
    /// `path.data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// `path.logs`.
    #[serde(default = "default_log_dir")]
    pub log_dir: String,
    /// The systemd unit's name.
    #[serde(default = "default_service")]
    pub service: String,
    /// More `elasticsearch.yml` keys (flat, dotted), e.g.
    /// `xpack.security.enabled: false`.
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
    /// `bootstrap.memory_lock` (the unit gets `LimitMEMLOCK=infinity`).
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub memory_lock: bool,
    /// When the kernel refuses to raise `vm.max_map_count` (a container): `fail` the task or
    /// `warn` and go on.
    #[serde(default)]
    pub max_map_count_read_only: ReadOnlyPolicy,
    /// The cluster health to wait for after each start and before each restart.
    #[serde(default)]
    pub wait_for_status: Health,
    /// Seconds for each wait (node joined, health).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub wait_timeout: Option<u64>,
    /// Set by the engine: the inventory's groups and addresses.
    #[serde(rename = "_inventory")]
    pub inventory: Option<InventoryView>,
}

fn default_user() -> String {
    "elasticsearch".into()
}
fn default_root() -> String {
    "/opt".into()
}
fn default_data_dir() -> String {
    "/var/lib/elasticsearch".into()
}
fn default_log_dir() -> String {
    "/var/log/elasticsearch".into()
}
fn default_service() -> String {
    "elasticsearch".into()
}

const DEFAULT_WAIT: u64 = 300;

/// Keys the module writes itself; `settings` may not set them.
const OWNED_KEYS: &[&str] = &[
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

pub struct ElasticsearchCluster;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: ElasticsearchCluster::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

fn plain_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn abs_path(path: &str, v: &str) -> Result<(), ModuleError> {
    if !v.starts_with('/') || v.contains("..") || v.contains(['\n', '\'', '"']) {
        return Err(invalid(path, "must be an absolute path"));
    }
    Ok(())
}

/// Everything the parameters and the inventory decide, before looking at
/// the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Layout {
    node: String,
    master: bool,
    data: bool,
    roles: Vec<String>,
    address: String,
    port: u64,
    seed_hosts: Vec<String>,
    /// Every node's address (masters, then the other data nodes): who is
    /// asked whether the cluster has formed.
    node_addresses: Vec<String>,
    initial_masters: Vec<String>,
    home: String,
    current: String,
    yml: String,
    heap_file: String,
    unit: String,
}

fn layout(p: &EsParams) -> Result<Layout, ModuleError> {
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
fn api_base(l: &Layout, p: &EsParams) -> String {
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

fn yaml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| json!(s).to_string()).collect();
    format!("[{}]", quoted.join(", "))
}

/// `elasticsearch.yml`; `bootstrap` adds `cluster.initial_master_nodes`.
fn yml_text(p: &EsParams, l: &Layout, bootstrap: bool) -> String {
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
fn without_bootstrap(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("cluster.initial_master_nodes:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn parse_heap(s: &str) -> Result<String, ModuleError> {
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
fn default_heap(mem_kb: u64) -> String {
    let mb = (mem_kb / 2 / 1024).clamp(128, MAX_HEAP_MB);
    if mb % 1024 == 0 {
        format!("{}g", mb / 1024)
    } else {
        format!("{mb}m")
    }
}

fn heap_text(heap: &str) -> String {
    format!("{HEADER}-Xms{heap}\n-Xmx{heap}\n")
}

fn unit_text(p: &EsParams, l: &Layout) -> String {
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

fn sysctl_text() -> String {
    format!("{HEADER}vm.max_map_count = {MAX_MAP_COUNT}\n")
}

/// What the probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Probed {
    user: bool,
    dirs: bool,
    installed: bool,
    current: Option<String>,
    yml: Option<String>,
    current_yml: Option<String>,
    heap: Option<String>,
    unit: Option<String>,
    sysctl: Option<String>,
    /// (writable, live value)
    max_map_count: Option<(bool, u64)>,
    mem_kb: u64,
    active: bool,
    enabled: bool,
    curl: bool,
    /// Per node of the cluster: `GET /`'s (HTTP status, body); status 0
    /// when it did not answer.
    nodes: Vec<(u16, String)>,
}

fn probe_script(p: &EsParams, l: &Layout) -> String {
    let q = |s: &str| quote(s);
    let mut s = String::from(
        "file() { if [ -f \"$2\" ]; then printf '%s ' \"$1\"; base64 -w0 < \"$2\" || exit 3; echo; else echo \"$1 -\"; fi; }\n\
         yn() { if \"$@\" >/dev/null 2>&1; then echo yes; else echo no; fi; }\n",
    );
    s.push_str(&format!(
        "echo \"USER $(yn getent passwd {})\"\n",
        q(&p.user)
    ));
    s.push_str(&format!(
        "d=no; if [ \"$(stat -c %U {dd} 2>/dev/null)\" = {u} ] && [ \"$(stat -c %U {ld} 2>/dev/null)\" = {u} ]; then d=yes; fi; echo \"DIRS $d\"\n",
        dd = q(&p.data_dir),
        ld = q(&p.log_dir),
        u = q(&p.user)
    ));
    s.push_str(&format!(
        "echo \"INST $(yn test -x {})\"\n",
        q(&format!("{}/bin/elasticsearch", l.home))
    ));
    s.push_str(&format!(
        "if [ -L {c} ]; then echo \"CUR $(readlink {c})\"; else echo 'CUR -'; fi\n",
        c = q(&l.current)
    ));
    s.push_str(&format!("file YML {}\n", q(&l.yml)));
    s.push_str(&format!(
        "file CYML {}\n",
        q(&format!("{}/config/elasticsearch.yml", l.current))
    ));
    s.push_str(&format!("file HEAP {}\n", q(&l.heap_file)));
    s.push_str(&format!("file UNIT {}\n", q(&l.unit)));
    s.push_str(&format!("file SYSF {}\n", q(SYSCTL_FILE)));
    s.push_str(
        "m=/proc/sys/vm/max_map_count; if [ -e $m ]; then if [ -w $m ]; then w=w; else w=r; fi; echo \"MMC $w $(cat $m)\"; else echo 'MMC -'; fi\n\
         echo \"MEM $(awk '/^MemTotal:/ {print $2}' /proc/meminfo)\"\n",
    );
    s.push_str(&format!(
        "echo \"ACT $(systemctl is-active -- {svc} 2>/dev/null || true)\"\n\
         echo \"ENA $(systemctl is-enabled -- {svc} 2>/dev/null || true)\"\n",
        svc = q(&p.service)
    ));
    s.push_str("echo \"CURL $(yn command -v curl)\"\n");
    s.push_str("if command -v curl >/dev/null; then\n");
    for (i, addr) in l.node_addresses.iter().enumerate() {
        let url = format!("http://{addr}:{}/", l.port);
        s.push_str(&format!(
            "r=$(curl -s -m 3 -w ' %{{http_code}}' {} 2>/dev/null | tr -d '\\n'); echo \"N{i} ${{r:- 000}}\"\n",
            q(&url)
        ));
    }
    s.push_str("fi\ntrue\n");
    s
}

fn parse_probe(out: &str, n_nodes: usize) -> Result<Probed, ProbeError> {
    let get = |tag: &str| tagged_line(out, tag);
    let yes = |tag: &str| -> Result<bool, ProbeError> { Ok(get(tag)?.trim() == "yes") };
    let file = |tag: &str| tagged_file(out, tag);
    let curl = yes("CURL")?;
    let mut nodes = Vec::with_capacity(n_nodes);
    for i in 0..n_nodes {
        let tag = format!("N{i}");
        nodes.push(match tagged(out, &tag) {
            Some(line) => {
                let (body, code) = line.rsplit_once(' ').unwrap_or(("", line));
                (code.trim().parse().unwrap_or(0), body.trim().to_string())
            }
            None => (0, String::new()),
        });
    }
    let mmc = get("MMC")?.trim();
    let max_map_count = mmc
        .split_once(' ')
        .map(|(w, v)| (w == "w", v.trim().parse().unwrap_or(0)));
    let cur = get("CUR")?.trim();
    Ok(Probed {
        user: yes("USER")?,
        dirs: yes("DIRS")?,
        installed: yes("INST")?,
        current: (cur != "-").then(|| cur.to_string()),
        yml: file("YML")?,
        current_yml: file("CYML")?,
        heap: file("HEAP")?,
        unit: file("UNIT")?,
        sysctl: file("SYSF")?,
        max_map_count,
        mem_kb: get("MEM")?.trim().parse().unwrap_or(0),
        active: get("ACT")?.trim() == "active",
        enabled: get("ENA")?.trim() == "enabled",
        curl,
        nodes,
    })
}

/// The cluster a node reports from `GET /`, when one has formed: its
/// committed UUID (`_na_` until then) under this cluster name.
fn formed_cluster(status: u16, body: &str, cluster: &str) -> Option<String> {
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(body).ok()?;
    let uuid = v.get("cluster_uuid")?.as_str()?;
    let name = v.get("cluster_name")?.as_str()?;
    (uuid != "_na_" && !uuid.is_empty() && name == cluster).then(|| uuid.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum ServiceAction {
    None,
    Start,
    RollingRestart,
}

/// What the plan decided, for apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Planned {
    layout: Layout,
    create_user: bool,
    make_dirs: bool,
    install: bool,
    link: bool,
    /// (path, content)
    files: Vec<(String, String)>,
    unit_changed: bool,
    raise_max_map_count: bool,
    max_map_count_read_only: bool,
    enable: bool,
    service: ServiceAction,
    bootstrap: bool,
    heap: String,
}

fn plan_file(plan: &mut Plan, planned: &mut Planned, path: &str, have: Option<&str>, want: String) {
    if have == Some(want.as_str()) {
        return;
    }
    plan.changes.push(format!(
        "{} {path}",
        if have.is_some() { "update" } else { "create" }
    ));
    if let Some(d) = textfile::diff(path, have.unwrap_or("").as_bytes(), want.as_bytes()) {
        plan.diffs.push(d);
    }
    planned.files.push((path.to_string(), want));
}

impl Module for ElasticsearchCluster {
    const NAME: &'static str = "elasticsearch_cluster";
    const DOC_SHORT: &'static str =
        "Install and configure one Elasticsearch node per host, form the cluster, roll restarts.";
    const DOC_LONG: &'static str = r##"`elasticsearch_cluster` sets up one Elasticsearch node per host and grows
the cluster from the inventory: hosts of the `masters` group are
master-eligible, hosts of the `data` group hold data, and every node gets
the masters' inventory addresses as `discovery.seed_hosts`.

- Installs under `/opt/elasticsearch-<version>` with the link
  `/opt/elasticsearch-current`, a system user, `config/elasticsearch.yml`
  (`node.roles`, seed hosts, paths, `bootstrap.memory_lock`),
  `config/jvm.options.d/heap.options` and a systemd unit with
  `LimitNOFILE=65535` and `LimitMEMLOCK=infinity`; writes
  `vm.max_map_count = 262144` to `/etc/sysctl.d/60-elasticsearch.conf` and
  raises the live value when lower. A kernel that refuses fails the task,
  unless `max_map_count_read_only: warn` (containers, where `/proc/sys/vm`
  is read-only).
- Bootstrap: `cluster.initial_master_nodes` is written only on masters of a
  cluster that has not formed: no node of it (masters and data nodes of
  the inventory) answers `GET /` with a committed cluster UUID. A data
  directory is no evidence (Elasticsearch writes `_state` at its first
  start, so a failed first bootstrap leaves one), and a rerun after a
  failed bootstrap keeps the setting. It is taken out of the file once the
  cluster is healthy. The masters must start together (one task for all hosts, not
  `serial: 1`): a majority of them forms the cluster.
- Then each node must join (`_cat/nodes`) and the cluster must reach
  `wait_for_status` (`/_cluster/health`) before the task is done.
- Growing: add a host to `data` and run with `--limit <host>`: the module
  learns the masters from the inventory even when they are not in the play
  (the engine passes modules that ask for it every group and address of
  the inventory, no other host variables).
- A changed config, heap, unit or version on a running node is a rolling
  restart, one node at a time: wait for the wanted health, set
  `cluster.routing.allocation.enable: primaries`, restart, wait for the
  node to rejoin and for yellow, remove the setting, wait for the wanted
  health. The hosts of one run take turns through a lock per cluster name
  inside the `herd` process, so the task needs no `serial`; the health
  gate before each restart also waits while any other node is away. Two
  `herd` runs against one cluster at the same time are not coordinated.
- `--check --diff` shows the `elasticsearch.yml` and heap diffs and whether
  the node would be started or restarted, without touching anything.
- The module talks plain HTTP without credentials to each node's
  `network.host` (through the host's `curl`). `playbooks/elasticsearch-cluster.yml`
  with `inventories/elasticsearch-cluster.ini` is the runnable example; the
  fleet test runs it against a stand-in server (`tests/fleet/es-standin/`),
  because no Elasticsearch can be installed on the test machine. The
  stand-in is installed from a tarball shaped like Elasticsearch's, reads
  the same config files and refuses to start on a few of Elasticsearch's
  startup checks only: an unknown setting or `node.roles` value, a
  non-numeric `http.port`, `-Xms` different from `-Xmx`, running as root,
  and, bound to a non-loopback address, nofile below 65535 or
  `bootstrap.memory_lock` without an unlimited memlock limit (those two
  can be made warnings); `vm.max_map_count` below 262144 only warns, and
  Elasticsearch's other bootstrap checks (heap against RAM, threads,
  virtual memory and file size limits, system call filter, JVM checks,
  discovery settings) are not made at all. It answers
  `/`, `/_cluster/health`, `/_cat/nodes` and `/_cluster/settings` from the
  nodes that are really running (they find each other through the seed
  hosts; a cluster forms only with a majority of the initial masters). It
  does not cover indices, shards or recovery, the transport protocol
  (9300), TLS and security, real master election, plugins, or heap use;
  see its README. On the fleet hosts the nofile/memlock limits of the unit
  cannot be raised past the test machine's, so the test runs the stand-in
  with those checks as warnings and checks the unit's limits instead."##;
    const DOC_EXAMPLE: &'static str = r##"# One task for every host of both groups (a play on `es_masters:es_data`):
- elasticsearch_cluster:
    cluster_name: search
    version: 8.11.1
    masters: es_masters            # group names in the inventory
    data: es_data
    url: https://artifacts.elastic.co/downloads/elasticsearch/elasticsearch-8.11.1-linux-x86_64.tar.gz
    checksum: sha512:...           # or src: a tarball on the controller
    heap: 4g                       # default: half the RAM, at most 31g
    settings: {xpack.security.enabled: false}
    # wait_for_status: green|yellow, wait_timeout: 300, http_port: 9200,
    # network_host: (inventory address), max_map_count_read_only: fail|warn
  register: es                     # es.health, es.steps, es.roles, es.bootstrap
"##;
    type Params = EsParams;
    const NEEDS_INVENTORY: bool = true;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let l = layout(p)?;
        let heap = p.heap.as_deref().map(parse_heap).transpose()?;
        if let Some(c) = &p.checksum {
            match parse_checksum(c).map_err(|e| invalid("checksum", e))? {
                Some(c) if c.value.contains("://") => {
                    return Err(invalid("checksum", "give the digest itself, not a URL"))
                }
                _ => {}
            }
        }
        let out = host.run(&probe_script(p, &l), None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "looking at the host failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        let probed = parse_probe(&out.stdout_str(), l.node_addresses.len())?;
        if !probed.curl {
            return Err(ModuleError::failed(
                "elasticsearch_cluster needs curl on the host for the cluster API (install curl)",
            ));
        }
        let heap = heap.unwrap_or_else(|| default_heap(probed.mem_kb));
        let formed = probed
            .nodes
            .iter()
            .find_map(|(st, body)| formed_cluster(*st, body, p.cluster_name.trim()));
        // Only the nodes' answer decides, never a data directory (see the
        // module doc).
        let bootstrap = l.master && formed.is_none();

        let mut plan = Plan::default();
        let mut warnings = Vec::new();
        let mut planned = Planned {
            layout: l.clone(),
            create_user: !probed.user,
            make_dirs: !probed.dirs,
            install: !probed.installed,
            link: probed.current.as_deref() != Some(l.home.as_str()),
            files: Vec::new(),
            unit_changed: false,
            raise_max_map_count: false,
            max_map_count_read_only: false,
            enable: !probed.enabled,
            service: ServiceAction::None,
            bootstrap,
            heap: heap.clone(),
        };
        if planned.create_user {
            plan.changes.push(format!("create system user {}", p.user));
        }
        if planned.make_dirs {
            plan.changes.push(format!(
                "create {} and {} owned by {}",
                p.data_dir, p.log_dir, p.user
            ));
        }
        if planned.install {
            let from = match (&p.src_path, &p.url) {
                (Some(s), _) => s.clone(),
                (None, Some(u)) => crate::http::redact(u),
                (None, None) if p.src_b64.is_some() => "the controller".into(),
                (None, None) => {
                    return Err(invalid(
                        "url",
                        format!(
                            "{} is not installed: give `url` (with `checksum`) or `src`",
                            l.home
                        ),
                    ))
                }
            };
            plan.changes.push(format!(
                "install Elasticsearch {} into {} from {from}",
                p.version, l.home
            ));
        }
        if planned.link {
            plan.changes.push(format!(
                "link {} -> {} (was {})",
                l.current,
                l.home,
                probed.current.as_deref().unwrap_or("absent")
            ));
        }

        // vm.max_map_count: the file always, the live value when lower.
        plan_file(
            &mut plan,
            &mut planned,
            SYSCTL_FILE,
            probed.sysctl.as_deref(),
            sysctl_text(),
        );
        if let Some((writable, live)) = probed.max_map_count {
            if live < MAX_MAP_COUNT {
                if writable {
                    plan.changes
                        .push(format!("vm.max_map_count {live} -> {MAX_MAP_COUNT}"));
                    planned.raise_max_map_count = true;
                } else if p.max_map_count_read_only == ReadOnlyPolicy::Fail {
                    plan.changes
                        .push(format!("vm.max_map_count {live} -> {MAX_MAP_COUNT}"));
                    planned.raise_max_map_count = true;
                    planned.max_map_count_read_only = true;
                    warnings.push(format!(
                        "vm.max_map_count is read-only here ({live}): applying will fail \
                         (max_map_count_read_only: warn accepts it)"
                    ));
                } else {
                    warnings.push(format!(
                        "vm.max_map_count is {live} and read-only here (a container?): \
                         Elasticsearch wants {MAX_MAP_COUNT}; the host's kernel must be raised"
                    ));
                }
            }
        }

        let want_yml = yml_text(p, &l, bootstrap);
        // A new version's config starts from nothing; diff it against the
        // running version's so the change is readable.
        let have_yml = probed.yml.as_deref().or(if probed.installed {
            None
        } else {
            probed.current_yml.as_deref()
        });
        let config_differs = match have_yml {
            Some(h) => without_bootstrap(h) != without_bootstrap(&want_yml),
            None => true,
        };
        // Without a real change, an old bootstrap line is only dropped
        // from the file (config_differs ignores it): no restart for it.
        let yml_to_write = want_yml;
        if probed.yml.as_deref() != Some(yml_to_write.as_str()) {
            plan.changes.push(format!(
                "{} {}",
                if probed.yml.is_some() {
                    "update"
                } else {
                    "create"
                },
                l.yml
            ));
            if let Some(d) = textfile::diff(
                &l.yml,
                have_yml.unwrap_or("").as_bytes(),
                yml_to_write.as_bytes(),
            ) {
                plan.diffs.push(d);
            }
            planned.files.push((l.yml.clone(), yml_to_write));
        }
        let heap_before = planned.files.len();
        plan_file(
            &mut plan,
            &mut planned,
            &l.heap_file,
            probed.heap.as_deref(),
            heap_text(&heap),
        );
        let heap_changed = planned.files.len() > heap_before;
        let unit_before = planned.files.len();
        plan_file(
            &mut plan,
            &mut planned,
            &l.unit,
            probed.unit.as_deref(),
            unit_text(p, &l),
        );
        planned.unit_changed = planned.files.len() > unit_before;
        if planned.enable {
            plan.changes.push(format!("enable {}", p.service));
        }
        let needs_restart = config_differs
            || heap_changed
            || planned.unit_changed
            || planned.link
            || planned.install;
        planned.service = if !probed.active {
            plan.changes.push(format!(
                "start {} and wait for {} to join and for health {}",
                p.service,
                l.node,
                p.wait_for_status.word()
            ));
            ServiceAction::Start
        } else if needs_restart {
            plan.changes.push(format!(
                "rolling restart of {}: allocation primaries, restart, wait for the node and health, allocation back",
                l.node
            ));
            ServiceAction::RollingRestart
        } else {
            ServiceAction::None
        };

        plan.result.insert("node_name".into(), json!(l.node));
        plan.result.insert("roles".into(), json!(l.roles));
        plan.result.insert("seed_hosts".into(), json!(l.seed_hosts));
        plan.result.insert("heap".into(), json!(heap));
        plan.result.insert("bootstrap".into(), json!(bootstrap));
        plan.result.insert("cluster_uuid".into(), json!(formed));
        plan.result.insert("home".into(), json!(l.home));
        if !warnings.is_empty() {
            plan.result.insert("warnings".into(), json!(warnings));
        }
        plan.keep_state(&planned)?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let planned: Planned = plan.state_as()?;
        let l = &planned.layout;
        let mut result = plan.result.clone();
        let mut warnings: Vec<Value> = result
            .get("warnings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let fail = |msg: String, result: &Map<String, Value>| ModuleError::Failed {
            msg,
            result: result.clone(),
        };

        if planned.create_user || planned.make_dirs {
            let u = quote(&p.user);
            let s = format!(
                "set -e\n\
                 getent passwd -- {u} >/dev/null || useradd --system --user-group --no-create-home \
                 --home-dir {root} --shell /usr/sbin/nologin -- {u}\n\
                 mkdir -p -- {dd} {ld}\nchown -- {u}:{u} {dd} {ld}\nchmod 0750 -- {dd} {ld}\n",
                root = quote(&p.install_root),
                dd = quote(&p.data_dir),
                ld = quote(&p.log_dir),
            );
            run_ok(host, &s, None, "creating the user and directories")?;
        }

        if planned.install {
            install(p, l, host)?;
        }

        // vm.max_map_count: the file first (always), then the live value.
        for (path, content) in &planned.files {
            if path == SYSCTL_FILE {
                host.write_file(path, content.as_bytes(), &FileAttrs::default())?;
            }
        }
        if planned.raise_max_map_count {
            let out = host.run(
                &format!("sysctl -w vm.max_map_count={MAX_MAP_COUNT} 2>&1 >/dev/null"),
                None,
            )?;
            if !out.success() {
                let why = format!(
                    "the kernel refused vm.max_map_count={MAX_MAP_COUNT} ({}); {SYSCTL_FILE} is written \
                     for the next boot",
                    out.stdout_str().trim()
                );
                if p.max_map_count_read_only == ReadOnlyPolicy::Fail {
                    return Err(fail(
                        format!("{why}. Raise it on the machine, or set max_map_count_read_only: warn on hosts that cannot (containers)"),
                        &result,
                    ));
                }
                warnings.push(json!(why));
            }
        }

        if planned.link {
            let s = format!(
                "set -e\nln -sfn {home} {cur}.herd-new\nmv -T -f {cur}.herd-new {cur}\n",
                home = quote(&l.home),
                cur = quote(&l.current)
            );
            run_ok(host, &s, None, "switching the current link")?;
        }

        let conf_attrs = FileAttrs {
            owner: Some("root".into()),
            group: Some(p.user.clone()),
            mode: Some("0640".into()),
        };
        for (path, content) in &planned.files {
            if path == SYSCTL_FILE {
                continue;
            }
            if *path == l.unit {
                host.write_file(path, content.as_bytes(), &FileAttrs::default())?;
            } else {
                run_ok(
                    host,
                    &format!("mkdir -p -- \"$(dirname -- {})\"", quote(path)),
                    None,
                    "creating the config directory",
                )?;
                host.write_file(path, content.as_bytes(), &conf_attrs)?;
            }
        }
        let svc = quote(&p.service);
        if planned.unit_changed {
            run_ok(
                host,
                "systemctl daemon-reload",
                None,
                "systemctl daemon-reload",
            )?;
        }
        if planned.enable {
            run_ok(
                host,
                &format!("systemctl enable -- {svc} 2>&1"),
                None,
                "enabling the service",
            )?;
        }

        let base = api_base(l, p);
        let timeout = Duration::from_secs(p.wait_timeout.unwrap_or(DEFAULT_WAIT).max(1));
        let want = p.wait_for_status;
        let mut steps: Vec<String> = Vec::new();
        match planned.service {
            ServiceAction::None => {}
            ServiceAction::Start => {
                run_ok(
                    host,
                    &format!("systemctl start -- {svc} 2>&1"),
                    None,
                    "starting the service",
                )?;
                steps.push("started".into());
                wait_joined(host, p, l, &base, timeout).map_err(|m| fail(m, &result))?;
                steps.push("joined".into());
                let h = wait_health(host, &base, want, timeout).map_err(|m| fail(m, &result))?;
                steps.push(format!("health {}", want.word()));
                result.insert("health".into(), h);
            }
            ServiceAction::RollingRestart => {
                let lock = cluster_lock(p.cluster_name.trim());
                let _turn = lock.lock().unwrap_or_else(|e| e.into_inner());
                // Never take a node away from a cluster that is not at the
                // wanted health (another node may still be recovering).
                wait_health(host, &base, want, timeout).map_err(|m| {
                    fail(
                        format!(
                            "not restarting {}: the cluster is not healthy before the restart: {m}",
                            l.node
                        ),
                        &result,
                    )
                })?;
                steps.push(format!("health {} before", want.word()));
                set_allocation(host, &base, Some("primaries")).map_err(|m| fail(m, &result))?;
                steps.push("allocation primaries".into());
                run_ok(
                    host,
                    &format!("systemctl restart -- {svc} 2>&1"),
                    None,
                    "restarting the service",
                )?;
                steps.push("restarted".into());
                let left = "; shard allocation is still `primaries`: once the node is back, \
                            PUT /_cluster/settings {\"persistent\": {\"cluster.routing.allocation.enable\": null}}";
                wait_joined(host, p, l, &base, timeout)
                    .map_err(|m| fail(format!("{m}{left}"), &result))?;
                steps.push("joined".into());
                wait_health(host, &base, Health::Yellow, timeout)
                    .map_err(|m| fail(format!("{m}{left}"), &result))?;
                steps.push("health yellow".into());
                set_allocation(host, &base, None)
                    .map_err(|m| fail(format!("{m}{left}"), &result))?;
                steps.push("allocation all".into());
                let h = wait_health(host, &base, want, timeout).map_err(|m| fail(m, &result))?;
                steps.push(format!("health {}", want.word()));
                result.insert("health".into(), h);
            }
        }
        if planned.service != ServiceAction::None {
            check_version(host, &base, &p.version).map_err(|m| fail(m, &result))?;
        }

        // The cluster formed: the bootstrap setting has done its work and
        // must not be there when the node starts again.
        if planned.bootstrap && planned.service != ServiceAction::None {
            let text = yml_text(p, l, false);
            host.write_file(&l.yml, text.as_bytes(), &conf_attrs)?;
            steps.push("cluster.initial_master_nodes removed".into());
        }

        result.insert("steps".into(), json!(steps));
        if !warnings.is_empty() {
            result.insert("warnings".into(), Value::Array(warnings));
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome {
            changed: true,
            result,
            msg: None,
            failed: false,
        })
    }
}

fn run_ok(
    host: &mut dyn Host,
    script: &str,
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<String, ModuleError> {
    let out = host.run(script, stdin)?;
    if out.success() {
        Ok(out.stdout_str())
    } else {
        let mut err = out.stderr_str().trim().to_string();
        if err.is_empty() {
            err = out.stdout_str().trim().to_string();
        }
        Err(ModuleError::failed(format!(
            "{what} failed (rc={}): {err}",
            out.rc
        )))
    }
}

/// Fetch (or take from stdin) the tarball, verify it, and unpack it next
/// to its final place, which it takes by one rename.
fn install(p: &EsParams, l: &Layout, host: &mut dyn Host) -> Result<(), ModuleError> {
    let root = p.install_root.trim_end_matches('/');
    let top = format!("elasticsearch-{}", p.version);
    let checksum = match &p.checksum {
        Some(c) => parse_checksum(c).map_err(|e| invalid("checksum", e))?,
        None => None,
    };
    let mut s = format!(
        "set -e\nmkdir -p {root}\nt=$(mktemp -d {tmp})\ntrap 'rm -rf \"$t\"' EXIT; trap 'exit 143' HUP INT TERM\n",
        root = quote(root),
        tmp = quote(&format!("{root}/.herd-es.XXXXXX"))
    );
    let stdin = match (&p.src_b64, &p.url) {
        (Some(b64), _) => {
            s.push_str("cat > \"$t/es.tar.gz\"\n");
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| invalid("_src_b64", e.to_string()))?,
            )
        }
        (None, Some(url)) => {
            if checksum.is_none() {
                return Err(invalid(
                    "checksum",
                    "a download needs `checksum` (sha256:... or sha512:...)",
                ));
            }
            s.push_str(&format!(
                "curl -fsSL --retry 2 -m 1800 -o \"$t/es.tar.gz\" {} || {{ echo 'download failed' >&2; exit 4; }}\n",
                quote(url)
            ));
            None
        }
        (None, None) => return Err(invalid("url", "give `url` (with `checksum`) or `src`")),
    };
    if let Some(c) = &checksum {
        s.push_str(&format!(
            "have=$({} \"$t/es.tar.gz\" | cut -d' ' -f1)\n\
             [ \"$have\" = {} ] || {{ echo \"checksum mismatch: {}:$have\" >&2; exit 5; }}\n",
            c.tool,
            quote(&c.value),
            c.alg
        ));
    }
    s.push_str(&format!(
        "mkdir \"$t/x\"\ntar -xzf \"$t/es.tar.gz\" -C \"$t/x\"\n\
         [ -x \"$t/x/\"{top}/bin/elasticsearch ] || {{ echo 'the tarball has no '{top}'/bin/elasticsearch' >&2; exit 6; }}\n\
         chown -R -- {u}:{u} \"$t/x/\"{top}\n\
         rm -rf {home}\nmv \"$t/x/\"{top} {home}\n",
        top = quote(&top),
        u = quote(&p.user),
        home = quote(&l.home)
    ));
    run_ok(host, &s, stdin.as_deref(), "installing Elasticsearch")?;
    Ok(())
}

/// One lock per cluster name for this process: rolling restarts of the
/// hosts of one run take turns.
fn cluster_lock(cluster: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<BTreeMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    m.entry(cluster.to_string()).or_default().clone()
}

/// One API call from the host: (HTTP status, body); status 0 when the
/// node did not answer.
fn api(
    host: &mut dyn Host,
    method: &str,
    url: &str,
    body: Option<&str>,
    timeout_s: u64,
) -> Result<(u16, String), ModuleError> {
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
fn wait_joined(
    host: &mut dyn Host,
    p: &EsParams,
    l: &Layout,
    base: &str,
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let url = format!("{base}/_cat/nodes?format=json&h=name");
    loop {
        let (st, body) = api(host, "GET", &url, None, 5).map_err(|e| e.to_string())?;
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
            )
            .map_err(|e| e.to_string())?;
        let o = out.stdout_str();
        if let Some(log) = o.strip_prefix("DEAD") {
            return Err(format!(
                "{} is not running: it stopped or refused to start:\n{}",
                p.service,
                log.trim()
            ));
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "{} did not join the cluster within {}s (last answer {st}: {})",
                l.node,
                timeout.as_secs(),
                body.trim()
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn health_rank(s: &str) -> u8 {
    match s {
        "green" => 2,
        "yellow" => 1,
        _ => 0,
    }
}

/// Until `/_cluster/health` reports `want` or better (the server waits
/// with `wait_for_status`, in slices, so a lost node shows as an error).
fn wait_health(
    host: &mut dyn Host,
    base: &str,
    want: Health,
    timeout: Duration,
) -> Result<Value, String> {
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
        let (st, body) = api(host, "GET", &url, None, left + 5).map_err(|e| e.to_string())?;
        if let Ok(v) = serde_json::from_str::<Value>(&body) {
            let status = v.get("status").and_then(Value::as_str).unwrap_or("");
            if st == 200 && health_rank(status) >= health_rank(want.word()) {
                return Ok(v);
            }
        }
        let last = format!("{st} {}", body.trim());
        if start.elapsed() >= timeout {
            return Err(format!(
                "cluster health did not reach {} within {}s (last answer {last})",
                want.word(),
                timeout.as_secs()
            ));
        }
        if st != 408 {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// `cluster.routing.allocation.enable`: `primaries` for a restart,
/// `None` (the default, `all`) afterwards.
fn set_allocation(host: &mut dyn Host, base: &str, value: Option<&str>) -> Result<(), String> {
    let body = json!({"persistent": {"cluster.routing.allocation.enable": value}}).to_string();
    let (st, resp) = api(
        host,
        "PUT",
        &format!("{base}/_cluster/settings"),
        Some(&body),
        30,
    )
    .map_err(|e| e.to_string())?;
    if st == 200 {
        Ok(())
    } else {
        Err(format!(
            "setting cluster.routing.allocation.enable to {} failed: {st} {}",
            value.unwrap_or("null"),
            resp.trim()
        ))
    }
}

/// The node now runs the wanted version.
fn check_version(host: &mut dyn Host, base: &str, version: &str) -> Result<(), String> {
    let (st, body) = api(host, "GET", &format!("{base}/"), None, 10).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match v.pointer("/version/number").and_then(Value::as_str) {
        Some(n) if n == version => Ok(()),
        Some(n) => Err(format!("the node runs version {n}, not {version}")),
        None => Err(format!(
            "the node did not say its version: {st} {}",
            body.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::parse_params;
    use crate::DynModule;

    fn view(host: &str) -> Value {
        json!({
            "host": host,
            "groups": {"all": ["m1", "m2", "m3", "d1"], "es_masters": ["m1", "m2", "m3"], "es_data": ["d1"], "web": ["w1"]},
            "addresses": {"m1": "10.0.0.1", "m2": "10.0.0.2", "m3": "10.0.0.3", "d1": "10.0.0.4", "w1": "10.0.0.9"}
        })
    }

    fn params_for(host: &str, extra: Value) -> Value {
        let mut p = json!({"cluster_name": "logs", "version": "8.11.1", "masters": "es_masters",
            "data": "es_data", "url": "http://repo/es.tar.gz", "checksum": "sha512:abcd",
            "heap": "256m", "wait_timeout": 3, "_inventory": view(host)});
        if let (Value::Object(m), Value::Object(e)) = (&mut p, extra) {
            m.extend(e);
        }
        p
    }

    fn typed(v: &Value) -> EsParams {
        parse_params::<EsParams>(ElasticsearchCluster::NAME, v).expect("params")
    }

    #[test]
    fn topology_comes_from_the_inventory() {
        let l = layout(&typed(&params_for("m2", json!({})))).expect("layout");
        assert!(l.master && !l.data);
        assert_eq!(l.roles, ["master"]);
        assert_eq!(l.seed_hosts, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(l.address, "10.0.0.2");
        assert_eq!(l.home, "/opt/elasticsearch-8.11.1");
        assert_eq!(l.current, "/opt/elasticsearch-current");
        assert_eq!(l.yml, "/opt/elasticsearch-8.11.1/config/elasticsearch.yml");
        let d = layout(&typed(&params_for("d1", json!({"http_port": "9201"})))).expect("layout");
        assert_eq!(d.roles, ["data", "ingest"]);
        assert_eq!(d.port, 9201);
        let e = layout(&typed(&params_for("w1", json!({})))).expect_err("no role");
        assert!(e.to_string().contains("w1 is in neither"), "{e}");
        let e = layout(&typed(&params_for("m1", json!({"masters": "nope"})))).expect_err("group");
        assert!(e.to_string().contains("no group `nope`"), "{e}");
        let e = layout(&typed(&params_for(
            "m1",
            json!({"settings": {"node.roles": ["data"]}}),
        )))
        .expect_err("owned key");
        assert!(e.to_string().contains("settings.node.roles"), "{e}");
        let mut no_inv = params_for("m1", json!({}));
        no_inv.as_object_mut().map(|m| m.remove("_inventory"));
        assert!(layout(&typed(&no_inv)).is_err());
    }

    #[test]
    fn heap_defaults_to_half_the_ram_at_most_31g() {
        assert_eq!(default_heap(8 * 1024 * 1024), "4g");
        assert_eq!(default_heap(3 * 1024 * 1024), "1536m");
        assert_eq!(default_heap(256 * 1024 * 1024), "31g");
        assert_eq!(parse_heap("512M").expect("heap"), "512m");
        assert!(parse_heap("32g").is_err());
        assert!(parse_heap("lots").is_err());
        assert_eq!(heap_text("2g"), format!("{HEADER}-Xms2g\n-Xmx2g\n"));
    }

    #[test]
    fn config_lists_roles_seeds_and_bootstrap_masters() {
        let p = typed(&params_for(
            "m1",
            json!({"settings": {"xpack.security.enabled": false, "node.attr.zone": "a"}}),
        ));
        let l = layout(&p).expect("layout");
        let text = yml_text(&p, &l, true);
        assert_eq!(
            text,
            format!(
                "{HEADER}cluster.name: \"logs\"\nnode.name: \"m1\"\nnode.roles: [\"master\"]\n\
                 path.data: \"/var/lib/elasticsearch\"\npath.logs: \"/var/log/elasticsearch\"\n\
                 network.host: \"10.0.0.1\"\nhttp.port: 9200\nbootstrap.memory_lock: true\n\
                 discovery.seed_hosts: [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"]\n\
                 cluster.initial_master_nodes: [\"m1\", \"m2\", \"m3\"]\n\
                 node.attr.zone: \"a\"\nxpack.security.enabled: false\n"
            )
        );
        assert_eq!(without_bootstrap(&text), yml_text(&p, &l, false));
        let unit = unit_text(&p, &l);
        assert!(
            unit.contains("LimitNOFILE=65535\nLimitMEMLOCK=infinity\n"),
            "{unit}"
        );
        assert!(unit.contains("ExecStart=/opt/elasticsearch-current/bin/elasticsearch\n"));
    }

    /// A host and its one-node view of the cluster, kept as state: the
    /// probe is answered from it and the apply scripts change it, so the
    /// module can be driven from a bare host to converged and back.
    #[derive(Default)]
    struct FakeHost {
        files: BTreeMap<String, String>,
        user: bool,
        installed: bool,
        link: Option<String>,
        active: bool,
        enabled: bool,
        /// `<path.data>/_state` exists: Elasticsearch writes it at its
        /// first start, whether or not a cluster formed.
        has_state: bool,
        /// The nodes answer `GET /` with a formed cluster.
        formed: bool,
        /// Only this node (0..3 masters, 3 the data node) answers `GET /`.
        only_answering: Option<usize>,
        max_map_count: (bool, u64),
        /// Every script but the probe, in order, shortened to its gist.
        log: Vec<String>,
        probes: usize,
    }

    fn path_of(word: &str) -> String {
        word.trim_matches('\'').to_string()
    }

    impl FakeHost {
        fn probe(&self, script: &str) -> String {
            let mut out = String::new();
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
            for line in script.lines() {
                if let Some(rest) = line.strip_prefix("file ") {
                    let (tag, path) = rest.split_once(' ').expect("file line");
                    let path = path_of(path);
                    let path = path.replace("elasticsearch-current", "CURRENT");
                    let path = match &self.link {
                        Some(home) => path.replace("/opt/CURRENT", home),
                        None => path.replace("CURRENT", "elasticsearch-current"),
                    };
                    match self.files.get(&path) {
                        Some(c) => out.push_str(&format!("{tag} {}\n", b64(c))),
                        None => out.push_str(&format!("{tag} -\n")),
                    }
                }
            }
            let yn = |b: bool| if b { "yes" } else { "no" };
            out.push_str(&format!(
                "USER {u}\nDIRS {u}\nINST {}\nCUR {}\nMMC {} {}\nMEM 8388608\nACT {}\nENA {}\nSTATE {}\nCURL yes\n",
                yn(self.installed),
                self.link.as_deref().unwrap_or("-"),
                if self.max_map_count.0 { "w" } else { "r" },
                self.max_map_count.1,
                if self.active { "active" } else { "inactive" },
                if self.enabled { "enabled" } else { "disabled" },
                yn(self.has_state),
                u = yn(self.user),
            ));
            let uuid = if self.formed { "abc" } else { "_na_" };
            for i in 0..4 {
                if self.only_answering.is_some_and(|only| only != i) {
                    out.push_str(&format!("N{i}  000\n"));
                    continue;
                }
                out.push_str(&format!(
                    "N{i} {{\"cluster_name\": \"logs\", \"cluster_uuid\": \"{uuid}\"}} 200\n"
                ));
            }
            out
        }
    }

    impl Host for FakeHost {
        fn name(&self) -> &str {
            "fake"
        }
        fn run(
            &mut self,
            script: &str,
            _stdin: Option<&[u8]>,
        ) -> Result<crate::ExecOutput, crate::HostError> {
            let ok = |s: String| {
                Ok(crate::ExecOutput {
                    rc: 0,
                    stdout: s.into_bytes(),
                    stderr: Vec::new(),
                })
            };
            if script.starts_with("file()") {
                self.probes += 1;
                return ok(self.probe(script));
            }
            let gist = if script.contains("useradd") {
                self.user = true;
                "user"
            } else if script.contains("tar -xzf") {
                self.installed = true;
                "install"
            } else if script.contains("ln -sfn") {
                self.link = Some("/opt/elasticsearch-8.11.1".into());
                "link"
            } else if script.starts_with("sysctl -w") {
                if !self.max_map_count.0 {
                    return Ok(crate::ExecOutput {
                        rc: 255,
                        stdout: b"sysctl: permission denied on key \"vm.max_map_count\"".to_vec(),
                        stderr: Vec::new(),
                    });
                }
                self.max_map_count.1 = MAX_MAP_COUNT;
                "sysctl"
            } else if script.starts_with("systemctl start") {
                self.active = true;
                self.has_state = true;
                self.formed = true;
                "start"
            } else if script.starts_with("systemctl restart") {
                "restart"
            } else if script.starts_with("systemctl enable") {
                self.enabled = true;
                "enable"
            } else if script.starts_with("systemctl daemon-reload") {
                "daemon-reload"
            } else if script.starts_with("mkdir -p") {
                return ok(String::new());
            } else if script.contains("_cat/nodes") {
                return ok(
                    "[{\"name\": \"m1\"}, {\"name\": \"m2\"}, {\"name\": \"m3\"}, {\"name\": \"d1\"}]\n200"
                        .into(),
                );
            } else if script.contains("_cluster/health") {
                let want = if script.contains("wait_for_status=yellow") {
                    "health yellow"
                } else {
                    "health green"
                };
                self.log.push(want.into());
                return ok("{\"status\": \"green\"}\n200".into());
            } else if script.contains("_cluster/settings") {
                let v = if script.contains("-X PUT") {
                    "PUT settings"
                } else {
                    "GET settings"
                };
                self.log.push(v.into());
                return ok("{\"acknowledged\": true}\n200".into());
            } else if script.contains("curl") {
                return ok("{\"version\": {\"number\": \"8.11.1\"}}\n200".into());
            } else {
                "other"
            };
            self.log.push(gist.into());
            ok(String::new())
        }
        fn write_file(
            &mut self,
            path: &str,
            content: &[u8],
            _attrs: &FileAttrs,
        ) -> Result<(), crate::HostError> {
            self.log.push(format!("write {path}"));
            self.files
                .insert(path.into(), String::from_utf8_lossy(content).into_owned());
            Ok(())
        }
    }

    fn bare() -> FakeHost {
        FakeHost {
            max_map_count: (true, 65530),
            ..FakeHost::default()
        }
    }

    const YML: &str = "/opt/elasticsearch-8.11.1/config/elasticsearch.yml";

    #[test]
    fn bootstraps_a_bare_master_then_plans_nothing() {
        let p = params_for("m1", json!({}));
        let mut h = bare();
        let m = &ElasticsearchCluster;
        let plan = DynModule::plan(m, &p, &mut h).expect("plan");
        assert_eq!(h.probes, 1, "the plan is one round trip");
        assert!(h.log.is_empty(), "the plan changes nothing: {:?}", h.log);
        assert_eq!(plan.result["bootstrap"], json!(true));
        for c in [
            "create system user elasticsearch",
            "install Elasticsearch 8.11.1 into /opt/elasticsearch-8.11.1 from http://repo/es.tar.gz",
            "vm.max_map_count 65530 -> 262144",
            "create /opt/elasticsearch-8.11.1/config/elasticsearch.yml",
            "create /etc/systemd/system/elasticsearch.service",
            "enable elasticsearch",
            "start elasticsearch and wait for m1 to join and for health green",
        ] {
            assert!(plan.changes.contains(&c.to_string()), "{c}: {:?}", plan.changes);
        }
        let yml_diff = plan
            .diffs
            .iter()
            .find(|d| d.path == YML)
            .expect("a diff of elasticsearch.yml");
        assert!(yml_diff
            .unified()
            .contains("+cluster.initial_master_nodes: [\"m1\", \"m2\", \"m3\"]"));

        let out = DynModule::apply(m, &p, plan, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(
            out.result["steps"],
            json!([
                "started",
                "joined",
                "health green",
                "cluster.initial_master_nodes removed"
            ])
        );
        assert!(!h.files[YML].contains("initial_master_nodes"));
        assert_eq!(h.files[SYSCTL_FILE], sysctl_text());
        let again = DynModule::plan(m, &p, &mut h).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);
        assert_eq!(again.result["bootstrap"], json!(false));
    }

    /// A first bootstrap that failed (the masters started, wrote
    /// `_state`, and no cluster formed) is retried with the bootstrap
    /// setting: the directory says nothing about a cluster.
    #[test]
    fn a_failed_first_bootstrap_keeps_the_bootstrap_setting_on_the_rerun() {
        let p = params_for("m1", json!({}));
        let mut h = bare();
        let m = &ElasticsearchCluster;
        let first = DynModule::plan(m, &p, &mut h).expect("plan");
        let yml = first
            .diffs
            .iter()
            .find(|d| d.path == YML)
            .expect("yml")
            .after
            .clone();
        assert!(yml.contains("cluster.initial_master_nodes"), "{yml}");
        // What the failed run left: the files, an installed and running
        // node with its `_state`, and no cluster.
        h.files.insert(YML.into(), yml.clone());
        h.user = true;
        h.installed = true;
        h.link = Some("/opt/elasticsearch-8.11.1".into());
        h.active = true;
        h.enabled = true;
        h.has_state = true;
        h.formed = false;
        let rerun = DynModule::plan(m, &p, &mut h).expect("plan");
        assert_eq!(rerun.result["bootstrap"], json!(true));
        assert!(
            !rerun.diffs.iter().any(|d| d.path == YML),
            "the rerun must not take cluster.initial_master_nodes out: {:?}",
            rerun.diffs
        );
    }

    /// Any node of the cluster that reports it formed is enough, a data
    /// node included (the masters may all be down).
    #[test]
    fn a_cluster_formed_as_any_node_reports_gets_no_bootstrap_setting() {
        let mut h = bare();
        h.formed = true;
        h.only_answering = Some(3);
        let plan = DynModule::plan(&ElasticsearchCluster, &params_for("m2", json!({})), &mut h)
            .expect("plan");
        assert_eq!(plan.result["bootstrap"], json!(false));
        assert_eq!(plan.result["cluster_uuid"], json!("abc"));
    }

    #[test]
    fn a_node_joining_a_formed_cluster_gets_no_bootstrap_setting() {
        let p = params_for("m3", json!({}));
        let mut h = bare();
        h.formed = true;
        let plan = DynModule::plan(&ElasticsearchCluster, &p, &mut h).expect("plan");
        assert_eq!(plan.result["bootstrap"], json!(false));
        assert_eq!(plan.result["cluster_uuid"], json!("abc"));
        let d = plan.diffs.iter().find(|d| d.path == YML).expect("diff");
        assert!(!d.after.contains("initial_master_nodes"), "{}", d.after);
        // A data node never gets it, even for a cluster not formed yet.
        let mut h = bare();
        let plan = DynModule::plan(&ElasticsearchCluster, &params_for("d1", json!({})), &mut h)
            .expect("plan");
        assert_eq!(plan.result["bootstrap"], json!(false));
    }

    #[test]
    fn a_config_change_on_a_running_node_is_one_gated_rolling_step() {
        let p = params_for("d1", json!({}));
        let mut h = bare();
        h.formed = true;
        let m = &ElasticsearchCluster;
        let plan = DynModule::plan(m, &p, &mut h).expect("plan");
        DynModule::apply(m, &p, plan, &mut h).expect("apply");
        assert!(DynModule::plan(m, &p, &mut h).expect("plan").is_empty());

        // Check mode is the plan: it shows the change and the diff, and
        // touches nothing.
        let bigger = params_for("d1", json!({"heap": "512m"}));
        h.log.clear();
        let plan = DynModule::plan(m, &bigger, &mut h).expect("plan");
        assert!(h.log.is_empty());
        assert_eq!(
            plan.changes,
            [
                "update /opt/elasticsearch-8.11.1/config/jvm.options.d/heap.options",
                "rolling restart of d1: allocation primaries, restart, wait for the node and health, allocation back"
            ]
        );
        assert!(plan.diffs[0].unified().contains("+-Xmx512m"));
        DynModule::apply(m, &bigger, plan, &mut h).expect("apply");
        assert_eq!(
            h.log,
            [
                "write /opt/elasticsearch-8.11.1/config/jvm.options.d/heap.options",
                "health green",
                "PUT settings",
                "restart",
                "health yellow",
                "PUT settings",
                "health green",
            ]
        );
        assert!(DynModule::plan(m, &bigger, &mut h)
            .expect("plan")
            .is_empty());
    }

    #[test]
    fn a_read_only_max_map_count_fails_unless_warn() {
        let p = params_for("m1", json!({}));
        let mut h = bare();
        h.max_map_count = (false, 65530);
        h.formed = true;
        let m = &ElasticsearchCluster;
        let plan = DynModule::plan(m, &p, &mut h).expect("plan");
        assert!(plan
            .changes
            .contains(&"vm.max_map_count 65530 -> 262144".to_string()));
        let e = DynModule::apply(m, &p, plan, &mut h).expect_err("read-only");
        assert!(
            e.to_string()
                .contains("the kernel refused vm.max_map_count=262144")
                && e.to_string().contains("max_map_count_read_only: warn"),
            "{e}"
        );
        assert_eq!(
            h.files[SYSCTL_FILE],
            sysctl_text(),
            "the file is written anyway"
        );
        assert!(!h.active, "nothing started after the failure");

        let warn = params_for("m1", json!({"max_map_count_read_only": "warn"}));
        let plan = DynModule::plan(m, &warn, &mut h).expect("plan");
        assert!(!plan
            .changes
            .iter()
            .any(|c| c.starts_with("vm.max_map_count")));
        assert!(plan.result["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("read-only")));
        DynModule::apply(m, &warn, plan, &mut h).expect("apply");
        assert!(DynModule::plan(m, &warn, &mut h).expect("plan").is_empty());
        assert_eq!(h.max_map_count.1, 65530);
    }

    #[test]
    fn a_download_needs_a_checksum() {
        let p = params_for("m1", json!({"checksum": null}));
        let mut h = bare();
        let plan = DynModule::plan(&ElasticsearchCluster, &p, &mut h).expect("plan");
        let e = DynModule::apply(&ElasticsearchCluster, &p, plan, &mut h).expect_err("checksum");
        assert!(e.to_string().contains("needs `checksum`"), "{e}");
        let p = params_for("m1", json!({"url": null, "checksum": null}));
        let e = DynModule::plan(&ElasticsearchCluster, &p, &mut bare()).expect_err("source");
        assert!(e.to_string().contains("give `url`"), "{e}");
    }
}
