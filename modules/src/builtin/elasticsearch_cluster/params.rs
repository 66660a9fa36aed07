//! `elasticsearch_cluster`'s parameters: the cluster, its groups, the
//! tarball, the node's paths and the waits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inventory::InventoryView;
use crate::params::{de_bool, de_opt_u64, yes};

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
    pub(super) fn word(self) -> &'static str {
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

pub(super) fn default_user() -> String {
    "elasticsearch".into()
}
pub(super) fn default_root() -> String {
    "/opt".into()
}
pub(super) fn default_data_dir() -> String {
    "/var/lib/elasticsearch".into()
}
pub(super) fn default_log_dir() -> String {
    "/var/log/elasticsearch".into()
}
pub(super) fn default_service() -> String {
    "elasticsearch".into()
}
