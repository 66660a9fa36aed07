//! `elasticsearch_cluster` on six fleet hosts (`herd-13`..`herd-18`),
//! through the example playbook `playbooks/elasticsearch-cluster.yml`, against
//! the Elasticsearch stand-in of `tests/fleet/es-standin/` (packaged like an
//! Elasticsearch tarball and served from the fleet's repository): a first
//! bootstrap fails on the hosts' limits, then three masters and two data
//! nodes bootstrap the cluster on the rerun, a sixth node joins with
//! `--limit`, and a heap change rolls through the cluster one node at a time.
//! Every step is checked on the hosts: the files, the processes' limits, the
//! cluster's own view of its nodes and health, and the stand-ins' event logs
//! (which say when each node stopped, started and joined, and when shard
//! allocation was switched).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::fleet::{fleet, Fleet};
use crate::support::repo;

const MASTERS: [&str; 3] = ["herd-13", "herd-14", "herd-15"];
const DATA: [&str; 2] = ["herd-16", "herd-17"];
const NEW: &str = "herd-18";
const VERSION: &str = "8.11.1";
const CLUSTER: &str = "herdtest-search";
const EVENTS: &str = "/var/log/elasticsearch/standin-events.log";

fn all_hosts() -> Vec<&'static str> {
    MASTERS
        .iter()
        .chain(DATA.iter())
        .copied()
        .chain([NEW])
        .collect()
}

const CLEAN: &str =
    "systemctl stop elasticsearch 2>/dev/null; systemctl disable elasticsearch 2>/dev/null; \
    rm -rf /opt/elasticsearch-* /opt/.herd-es.* /var/lib/elasticsearch /var/log/elasticsearch \
    /etc/systemd/system/elasticsearch.service /etc/sysctl.d/60-elasticsearch.conf /etc/es-standin.conf; \
    systemctl daemon-reload; userdel elasticsearch 2>/dev/null; true";

/// Stops and removes the cluster when dropped, even after a failed assertion.
struct Cleanup<'a>(&'a Fleet);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for h in all_hosts() {
            let _ = self.0.ssh(h, CLEAN);
        }
    }
}

fn served_dir(name: &str) -> PathBuf {
    let cache =
        std::env::var("HERD_FLEET_CACHE").unwrap_or_else(|_| "/var/cache/herd-fleet".into());
    let dir = PathBuf::from(cache).join("repo").join(name);
    std::fs::create_dir_all(&dir).expect("create served dir");
    dir
}

fn sha512_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha512sum")
        .arg(path)
        .output()
        .expect("sha512sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The cluster's inventory: three masters, the data nodes (`NEW` among
/// them when `with_new`), and the group's variables.
fn inventory(f: &Fleet, dir: &Path, with_new: bool) -> PathBuf {
    let data = DATA.iter().chain(with_new.then_some(&NEW));
    let inv = MASTERS
        .iter()
        .fold(f.inventory().group("es_masters"), |i, h| i.host(h, h, ""));
    data.fold(inv.text("\n").group("es_data"), |i, h| i.host(h, h, ""))
        .text(&format!(
            "\n[elasticsearch:children]\nes_masters\nes_data\n\n[elasticsearch:vars]\n\
             ansible_user=root\nansible_ssh_private_key_file={}\n\
             # container hosts: vm.max_map_count is read-only in them\n\
             es_max_map_count_read_only=warn\n",
            f.key.display()
        ))
        .write(dir, if with_new { "six.ini" } else { "five.ini" })
}

/// The cluster as a node's API sees it, asked from the host itself.
fn api(f: &Fleet, host: &str, path: &str) -> Value {
    let out = f.ssh_ok(
        host,
        &format!("curl -s -m 10 'http://{}:9200{path}'", f.address(host)),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{host} {path}: {e}: {out}"))
}

fn node_names(f: &Fleet, host: &str) -> Vec<String> {
    let nodes = api(f, host, "/_cat/nodes?format=json&h=name,heap.max");
    let mut names: Vec<String> = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// Every stand-in's events after `since` (epoch seconds), by time.
fn events(f: &Fleet, since: f64) -> Vec<(f64, String, String)> {
    let mut out = Vec::new();
    for h in all_hosts() {
        let text = f.ssh_ok(h, &format!("cat {EVENTS} 2>/dev/null || true"));
        for line in text.lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(t), Some(node), Some(what)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let t: f64 = t.parse().unwrap_or(0.0);
            if t >= since {
                out.push((t, node.to_string(), what.to_string()));
            }
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Python for the stand-in, from the fleet's repository, on every host at
/// once (a real Elasticsearch tarball brings its own JDK instead).
fn prepare_hosts(f: &Fleet) {
    std::thread::scope(|s| {
        for h in all_hosts() {
            s.spawn(move || {
                f.ssh_ok(h, CLEAN);
                // Fleet hosts are containers without CAP_SYS_RESOURCE: the
                // unit cannot raise nofile/memlock above the machine's hard
                // limits, so the stand-in only warns about them here.
                f.ssh_ok(h, "echo 'limit_checks = warn' > /etc/es-standin.conf");
                f.ssh_ok(
                    h,
                    "command -v python3 >/dev/null || { apt-get update -qq && \
                     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; }",
                );
            });
        }
    });
}

// One fleet scenario, step by step, against hosts built once: tests are
// exempt from the 150-line limit.
#[allow(clippy::too_many_lines)]
#[test]
fn elasticsearch_cluster_bootstraps_grows_with_limit_and_rolls_a_restart() {
    let f = fleet();
    let _locks: Vec<_> = all_hosts().into_iter().map(|h| f.lock(h)).collect();
    let _cleanup = Cleanup(f);
    prepare_hosts(f);
    let max_map_before: Vec<String> = all_hosts()
        .iter()
        .map(|h| f.ssh_ok(h, "cat /proc/sys/vm/max_map_count"))
        .collect();

    let served = served_dir("herdtest-es");
    let tarball = served.join(format!("elasticsearch-{VERSION}-linux-x86_64.tar.gz"));
    let status = std::process::Command::new(repo().join("tests/fleet/es-standin/build.sh"))
        .arg(VERSION)
        .arg(&tarball)
        .status()
        .expect("build.sh");
    assert!(status.success(), "packaging the stand-in failed");
    let url = format!(
        "{}/herdtest-es/elasticsearch-{VERSION}-linux-x86_64.tar.gz",
        f.repo_url.trim_end_matches('/')
    );
    let vars = json!({
        "es_cluster_name": CLUSTER,
        "es_version": VERSION,
        "es_url": url,
        "es_checksum": format!("sha512:{}", sha512_hex(&tarball)),
        "es_heap": "256m",
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = f.herd().example("playbooks/elasticsearch-cluster.yml");
    let five = cluster.inventory(inventory(f, dir.path(), false));
    let six = cluster.inventory(inventory(f, dir.path(), true));

    // 0. A first bootstrap that fails: without /etc/es-standin.conf the
    // stand-ins refuse to start on the fleet's nofile limit, as
    // Elasticsearch's bootstrap checks would, after writing `_state` as
    // Elasticsearch does. The run of step 1 must still bootstrap.
    for h in MASTERS.iter().chain(DATA.iter()) {
        f.ssh_ok(h, "rm -f /etc/es-standin.conf");
    }
    let r = five.vars(&vars).run().expect_code(2);
    for h in MASTERS.iter().chain(DATA.iter()) {
        assert_eq!(r.stat(h, "failed"), 1, "{h}:\n{}", r.stdout());
        assert!(
            f.ssh(h, "test -d /var/lib/elasticsearch/_state")
                .status
                .success(),
            "{h}: the failed first start left no _state"
        );
    }
    for h in MASTERS {
        let yml = f.ssh_ok(
            h,
            &format!("cat /opt/elasticsearch-{VERSION}/config/elasticsearch.yml"),
        );
        assert!(yml.contains("cluster.initial_master_nodes"), "{h}: {yml}");
    }
    for h in MASTERS.iter().chain(DATA.iter()) {
        f.ssh_ok(h, "echo 'limit_checks = warn' > /etc/es-standin.conf");
    }

    // 1. Three masters and two data nodes bootstrap the cluster (on hosts
    // where that failed once).
    let r = five.vars(&vars).run().expect_code(0);
    for h in MASTERS.iter().chain(DATA.iter()) {
        assert_eq!(r.stat(h, "changed"), 1, "{h}:\n{}", r.stdout());
        assert_eq!(r.stat(h, "failed"), 0, "{h}:\n{}", r.stdout());
    }
    let five_names: Vec<String> = MASTERS
        .iter()
        .chain(DATA.iter())
        .map(std::string::ToString::to_string)
        .collect();
    for h in MASTERS.iter().chain(DATA.iter()) {
        let home = format!("/opt/elasticsearch-{VERSION}");
        assert_eq!(
            f.ssh_ok(h, "readlink /opt/elasticsearch-current").trim(),
            home
        );
        assert_eq!(
            f.ssh_ok(h, "systemctl is-active elasticsearch").trim(),
            "active"
        );
        assert_eq!(
            f.ssh_ok(h, "systemctl is-enabled elasticsearch").trim(),
            "enabled"
        );
        let yml = f.ssh_ok(h, &format!("cat {home}/config/elasticsearch.yml"));
        assert!(
            !yml.contains("initial_master_nodes"),
            "the bootstrap setting is gone once the cluster formed: {yml}"
        );
        let seeds = MASTERS
            .iter()
            .map(|m| format!("\"{}\"", f.address(m)))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            yml.contains(&format!("discovery.seed_hosts: [{seeds}]")),
            "{yml}"
        );
        let roles = if MASTERS.contains(h) {
            "[\"master\"]"
        } else {
            "[\"data\", \"ingest\"]"
        };
        assert!(yml.contains(&format!("node.roles: {roles}")), "{yml}");
        assert!(f
            .ssh_ok(h, &format!("cat {home}/config/jvm.options.d/heap.options"))
            .ends_with("-Xms256m\n-Xmx256m\n"));
        // The unit's limits reached the running process.
        let limits = f.ssh_ok(
            h,
            "cat /proc/$(systemctl show -p MainPID --value elasticsearch)/limits",
        );
        // LimitNOFILE=65535 took effect up to the container's hard limit
        // (systemd's default soft limit is 1024); memlock cannot be raised
        // in these hosts, so only the unit is checked for it.
        let unit = f.ssh_ok(h, "cat /etc/systemd/system/elasticsearch.service");
        assert!(
            unit.contains("LimitNOFILE=65535\nLimitMEMLOCK=infinity\n"),
            "{unit}"
        );
        let files: Vec<&str> = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| l.split_whitespace().skip(3).take(2).collect())
            .unwrap_or_default();
        assert!(
            files.len() == 2
                && files[0] == files[1]
                && files[0].parse::<u64>().is_ok_and(|n| n > 1024),
            "{limits}"
        );
        assert_eq!(
            f.ssh_ok(h, "cat /etc/sysctl.d/60-elasticsearch.conf"),
            "# Managed by herd (elasticsearch_cluster). Local changes are overwritten.\n\
             vm.max_map_count = 262144\n"
        );
        assert_eq!(
            f.ssh_ok(
                h,
                "id -u elasticsearch >/dev/null && stat -c %U /var/lib/elasticsearch"
            )
            .trim(),
            "elasticsearch"
        );
        assert_eq!(node_names(f, h), five_names, "{h}'s view of the cluster");
    }
    let health = api(f, "herd-16", "/_cluster/health");
    assert_eq!(health["status"], "green", "{health}");
    assert_eq!(health["number_of_nodes"], 5);
    assert_eq!(health["number_of_data_nodes"], 2);
    let root = api(f, "herd-14", "/");
    assert_eq!(root["cluster_name"], CLUSTER);
    assert_eq!(root["version"]["number"], VERSION);
    assert_ne!(root["cluster_uuid"], "_na_");

    // Converged: nothing to do the second time.
    let r = five.vars(&vars).run().expect_code(0);
    for h in MASTERS.iter().chain(DATA.iter()) {
        assert_eq!(r.stat(h, "changed"), 0, "{h}:\n{}", r.stdout());
    }

    // 2. A sixth node, added to the inventory, joins with --limit: it finds
    // the masters (not in the play) through the inventory.
    let r = six.vars(&vars).limit(NEW).run().expect_code(0);
    assert_eq!(r.stat(NEW, "changed"), 1, "{}", r.stdout());
    let yml = f.ssh_ok(
        NEW,
        &format!("cat /opt/elasticsearch-{VERSION}/config/elasticsearch.yml"),
    );
    assert!(!yml.contains("initial_master_nodes"), "{yml}");
    let mut six_names = five_names.clone();
    six_names.push(NEW.to_string());
    assert_eq!(node_names(f, "herd-13"), six_names);
    let health = api(f, NEW, "/_cluster/health");
    assert_eq!(health["status"], "green", "{health}");
    assert_eq!(health["number_of_data_nodes"], 3);
    assert_eq!(
        f.ssh_ok(NEW, &format!("grep -c ' joined master=' {EVENTS}"))
            .trim(),
        "1"
    );
    let r = six.vars(&vars).run().expect_code(0);
    for h in all_hosts() {
        assert_eq!(r.stat(h, "changed"), 0, "{h}:\n{}", r.stdout());
    }

    // 3. Check mode shows the config change and changes nothing.
    let mut bigger = vars.clone();
    bigger["es_heap"] = json!("320m");
    let r = six.vars(&bigger).check().diff().run().expect_code(0);
    for h in all_hosts() {
        assert_eq!(r.stat(h, "changed"), 1, "{h}:\n{}", r.stdout());
    }
    assert!(r.stdout().contains("-Xms320m\\n-Xmx320m"), "{}", r.stdout());
    assert!(f
        .ssh_ok(
            "herd-13",
            &format!("cat /opt/elasticsearch-{VERSION}/config/jvm.options.d/heap.options")
        )
        .contains("-Xmx256m"));

    // 4. A heap change rolls through the cluster one node at a time.
    let since = now();
    let r = six.vars(&bigger).run().expect_code(0);
    for h in all_hosts() {
        assert_eq!(r.stat(h, "changed"), 1, "{h}:\n{}", r.stdout());
    }
    let ev = events(f, since);
    let log: Vec<String> = ev
        .iter()
        .map(|(t, n, w)| format!("{t:.3} {n} {w}"))
        .collect();
    let log = log.join("\n");
    // Per node: allocation to primaries, stop, start, join (a node that was
    // the master is elected again or joins the new one), allocation back.
    let mut down: Option<String> = None;
    let mut restarted = Vec::new();
    let mut allocation = "all".to_string();
    for (_, node, what) in &ev {
        if what.starts_with("settings ") {
            allocation = if what.contains("\"primaries\"") {
                "primaries"
            } else {
                "all"
            }
            .into();
            if allocation == "all" {
                assert!(
                    down.is_none(),
                    "allocation back while a node is away:\n{log}"
                );
            }
        } else if what == "stop" {
            assert!(
                down.is_none(),
                "{node} stopped while {down:?} was away:\n{log}"
            );
            assert_eq!(
                allocation, "primaries",
                "{node} stopped with allocation on:\n{log}"
            );
            down = Some(node.clone());
            restarted.push(node.clone());
        } else if (what.starts_with("joined ") || what.starts_with("elected "))
            && down.as_deref() == Some(node.as_str())
        {
            down = None;
        }
    }
    assert!(down.is_none(), "a node did not come back:\n{log}");
    assert_eq!(allocation, "all", "allocation left off:\n{log}");
    restarted.sort();
    assert_eq!(restarted, six_names, "each node restarted once:\n{log}");
    let nodes = api(f, "herd-17", "/_cat/nodes?format=json&h=name,heap.max");
    assert!(
        nodes
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["heap.max"] == "320m"),
        "{nodes}"
    );
    assert_eq!(nodes.as_array().map(Vec::len), Some(6));
    let health = api(f, "herd-15", "/_cluster/health");
    assert_eq!(health["status"], "green", "{health}");
    let settings = api(f, "herd-15", "/_cluster/settings?flat_settings=true");
    assert_eq!(settings["persistent"], json!({}), "{settings}");
    let r = six.vars(&bigger).run().expect_code(0);
    for h in all_hosts() {
        assert_eq!(r.stat(h, "changed"), 0, "{h}:\n{}", r.stdout());
    }

    // The machine's vm.max_map_count was never touched.
    for (h, before) in all_hosts().iter().zip(&max_map_before) {
        assert_eq!(
            &f.ssh_ok(h, "cat /proc/sys/vm/max_map_count"),
            before,
            "{h}"
        );
    }
}
