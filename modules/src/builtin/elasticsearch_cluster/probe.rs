//! The plan's one round trip: `probe.sh` looks at the host and asks every
//! node of the cluster whether it formed; its answer, parsed.

use serde_json::Value;

use crate::probe::{tagged, tagged_file, tagged_line, ProbeError};
use crate::shell_quote::quote;

use super::layout::Layout;
use super::params::EsParams;
use super::SYSCTL_FILE;

/// What the probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Probed {
    pub(super) user: bool,
    pub(super) dirs: bool,
    pub(super) installed: bool,
    pub(super) current: Option<String>,
    pub(super) yml: Option<String>,
    pub(super) current_yml: Option<String>,
    pub(super) heap: Option<String>,
    pub(super) unit: Option<String>,
    pub(super) sysctl: Option<String>,
    /// (writable, live value)
    pub(super) max_map_count: Option<(bool, u64)>,
    pub(super) mem_kb: u64,
    pub(super) active: bool,
    pub(super) enabled: bool,
    pub(super) curl: bool,
    /// Per node of the cluster: `GET /`'s (HTTP status, body); status 0
    /// when it did not answer.
    pub(super) nodes: Vec<(u16, String)>,
}

/// The probe's shell; the call with this node's paths and the nodes'
/// URLs follows it.
const PROBE: &str = include_str!("probe.sh");

pub(super) fn probe_script(p: &EsParams, l: &Layout) -> String {
    let mut args: Vec<String> = vec![
        quote(&p.user),
        quote(&p.data_dir),
        quote(&p.log_dir),
        quote(&l.home),
        quote(&l.current),
        quote(&l.yml),
        quote(&l.heap_file),
        quote(&l.unit),
        quote(SYSCTL_FILE),
        quote(&p.service),
    ];
    args.extend(
        l.node_addresses
            .iter()
            .map(|addr| quote(&format!("http://{addr}:{}/", l.port))),
    );
    format!("{PROBE}probe {}\n", args.join(" "))
}

pub(super) fn parse_probe(out: &str, n_nodes: usize) -> Result<Probed, ProbeError> {
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
pub(super) fn formed_cluster(status: u16, body: &str, cluster: &str) -> Option<String> {
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(body).ok()?;
    let uuid = v.get("cluster_uuid")?.as_str()?;
    let name = v.get("cluster_name")?.as_str()?;
    (uuid != "_na_" && !uuid.is_empty() && name == cluster).then(|| uuid.to_string())
}
