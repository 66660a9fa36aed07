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

mod apply;
mod cluster;
mod config;
mod layout;
mod params;
mod plan;
mod probe;

use crate::capability::{ControllerInput, Ship};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

pub use params::{EsParams, Health, ReadOnlyPolicy};

const HEADER: &str = "# Managed by herd (elasticsearch_cluster). Local changes are overwritten.\n";
const SYSCTL_FILE: &str = "/etc/sysctl.d/60-elasticsearch.conf";
const MAX_MAP_COUNT: u64 = 262_144;
const NOFILE: u64 = 65_535;
/// Compressed object pointers stop working above ~32g of heap.
const MAX_HEAP_MB: u64 = 31 * 1024;

const DEFAULT_WAIT: u64 = 300;

pub struct ElasticsearchCluster;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: ElasticsearchCluster::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

impl Module for ElasticsearchCluster {
    const NAME: &'static str = "elasticsearch_cluster";
    /// The install tarball `src` is always on the controller.
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[ControllerInput::File {
        param: "src",
        ship: Ship::Base64 { into: "_src_b64" },
        host_side: &[],
        checked_before_run: false,
        decrypt: None,
        tree: None,
    }];
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
        plan::plan(p, host)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        apply::apply(p, plan, host)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::{json, Value};

    use super::config::{
        default_heap, heap_text, parse_heap, sysctl_text, unit_text, without_bootstrap, yml_text,
    };
    use super::layout::layout;
    use super::*;
    use crate::module::parse_params;
    use crate::testing::{exec, ok, FakeHost, Match, Reply};
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

    /// A host's one-node view of the cluster, kept as the fake host's
    /// state: the probe is answered from it and the apply scripts change
    /// it, so the module can be driven from a bare host to converged and
    /// back.
    #[derive(Default)]
    struct Es {
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
        /// Every script but the probe, in order, shortened to its gist,
        /// and every file written.
        log: Vec<String>,
        probes: usize,
    }

    fn path_of(word: &str) -> String {
        word.trim_matches('\'').to_string()
    }

    /// The probe's answer: the files it asks for (by the paths in its
    /// call: `probe USER DATA_DIR LOG_DIR HOME CURRENT YML HEAP UNIT
    /// SYSCTL SERVICE URL...`) and the host's and nodes' state.
    fn probe(h: &FakeHost<Es>, script: &str) -> String {
        let mut out = String::new();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let call: Vec<String> = script
            .lines()
            .rfind(|l| l.starts_with("probe "))
            .expect("the probe's call")
            .split_whitespace()
            .skip(1)
            .map(path_of)
            .collect();
        let files = [
            ("YML", call[5].clone()),
            ("CYML", format!("{}/config/elasticsearch.yml", call[4])),
            ("HEAP", call[6].clone()),
            ("UNIT", call[7].clone()),
            ("SYSF", call[8].clone()),
        ];
        for (tag, path) in files {
            let path = path.replace("elasticsearch-current", "CURRENT");
            let path = match &h.link {
                Some(home) => path.replace("/opt/CURRENT", home),
                None => path.replace("CURRENT", "elasticsearch-current"),
            };
            match h.files.get(&path) {
                Some(c) => out.push_str(&format!("{tag} {}\n", b64(c))),
                None => out.push_str(&format!("{tag} -\n")),
            }
        }
        let yn = |b: bool| if b { "yes" } else { "no" };
        out.push_str(&format!(
            "USER {u}\nDIRS {u}\nINST {}\nCUR {}\nMMC {} {}\nMEM 8388608\nACT {}\nENA {}\nSTATE {}\nCURL yes\n",
            yn(h.installed),
            h.link.as_deref().unwrap_or("-"),
            if h.max_map_count.0 { "w" } else { "r" },
            h.max_map_count.1,
            if h.active { "active" } else { "inactive" },
            if h.enabled { "enabled" } else { "disabled" },
            yn(h.has_state),
            u = yn(h.user),
        ));
        let uuid = if h.formed { "abc" } else { "_na_" };
        for i in 0..4 {
            if h.only_answering.is_some_and(|only| only != i) {
                out.push_str(&format!("N{i}  000\n"));
                continue;
            }
            out.push_str(&format!(
                "N{i} {{\"cluster_name\": \"logs\", \"cluster_uuid\": \"{uuid}\"}} 200\n"
            ));
        }
        out
    }

    /// An apply step: the host's state changes, the log gets its gist.
    fn step(
        gist: &'static str,
        change: fn(&mut Es),
    ) -> impl FnMut(&mut FakeHost<Es>, &str, Option<&[u8]>) -> Reply + Send {
        move |h, _, _| {
            change(h);
            h.log.push(gist.into());
            ok("")
        }
    }

    fn bare() -> FakeHost<Es> {
        FakeHost::with_state(Es {
            max_map_count: (true, 65530),
            ..Es::default()
        })
        .handle(
            Match::prefix("# elasticsearch_cluster probe"),
            |h, script, _| {
                h.probes += 1;
                ok(probe(h, script))
            },
        )
        .handle(Match::contains("useradd"), step("user", |s| s.user = true))
        .handle(
            Match::contains("tar -xzf"),
            step("install", |s| s.installed = true),
        )
        .handle(
            Match::contains("ln -sfn"),
            step("link", |s| {
                s.link = Some("/opt/elasticsearch-8.11.1".into());
            }),
        )
        .handle(Match::prefix("sysctl -w"), |h, _, _| {
            if !h.max_map_count.0 {
                return Ok(exec(
                    255,
                    "sysctl: permission denied on key \"vm.max_map_count\"",
                    "",
                ));
            }
            h.max_map_count.1 = MAX_MAP_COUNT;
            h.log.push("sysctl".into());
            ok("")
        })
        .handle(
            Match::prefix("systemctl start"),
            step("start", |s| {
                s.active = true;
                s.has_state = true;
                s.formed = true;
            }),
        )
        .handle(Match::prefix("systemctl restart"), step("restart", |_| {}))
        .handle(
            Match::prefix("systemctl enable"),
            step("enable", |s| s.enabled = true),
        )
        .handle(
            Match::prefix("systemctl daemon-reload"),
            step("daemon-reload", |_| {}),
        )
        .answer(Match::prefix("mkdir -p"), 0, "", "")
        .answer(
            Match::contains("_cat/nodes"),
            0,
            "[{\"name\": \"m1\"}, {\"name\": \"m2\"}, {\"name\": \"m3\"}, {\"name\": \"d1\"}]\n200",
            "",
        )
        .handle(Match::contains("_cluster/health"), |h, script, _| {
            let want = if script.contains("wait_for_status=yellow") {
                "health yellow"
            } else {
                "health green"
            };
            h.log.push(want.into());
            ok("{\"status\": \"green\"}\n200")
        })
        .handle(Match::contains("_cluster/settings"), |h, script, _| {
            let v = if script.contains("-X PUT") {
                "PUT settings"
            } else {
                "GET settings"
            };
            h.log.push(v.into());
            ok("{\"acknowledged\": true}\n200")
        })
        .answer(
            Match::contains("curl"),
            0,
            "{\"version\": {\"number\": \"8.11.1\"}}\n200",
            "",
        )
        .handle(Match::Any, step("other", |_| {}))
        .on_write(|h, path, _| h.log.push(format!("write {path}")))
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
