//! `docker_install` on real hosts, through the example playbook
//! `playbooks/docker-install.yml` as users run it: the test writes an
//! inventory of its own over the fleet hosts and passes `-e` overrides.
//!
//! `herd-11` and `herd-12` belong to this test and start bare; with a
//! reused fleet (`HERD_FLEET_REUSE=1`) Docker from an earlier run is purged
//! first, so every run installs from nothing. Each host gets Debian's
//! docker.io 20.10 and compose v2 (`docker-compose` 2.26) from the fleet's
//! apt repository; then two daemon maps dockerd 20.10 rejects, one when it
//! loads the file (an unknown key, refused before anything is touched) and
//! one only when the daemon starts (an unknown storage driver, rolled
//! back), must each fail the task and leave Docker running on the old file.

use serde_json::{json, Value};

use crate::support::fleet::{fleet, Fleet};
use crate::support::Herd;

const HOSTS: [&str; 2] = ["herd-11", "herd-12"];
const TASK: &str = "Install Docker and configure its daemon";

/// The production defaults, as the module writes them.
const DEFAULT_DAEMON_JSON: &str = r#"{
  "default-ulimits": {
    "nofile": {
      "Hard": 64000,
      "Name": "nofile",
      "Soft": 64000
    }
  },
  "live-restore": true,
  "log-driver": "json-file",
  "log-opts": {
    "max-file": "3",
    "max-size": "10m"
  },
  "storage-driver": "overlay2",
  "userland-proxy": false
}
"#;

/// Takes Docker off a host that has it from an earlier run on a reused
/// fleet, so the test always starts from a bare host.
const PURGE: &str = "export DEBIAN_FRONTEND=noninteractive
if command -v dockerd >/dev/null 2>&1 || [ -e /etc/docker ]; then
  systemctl stop docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  apt-get purge -y -q docker.io docker-compose containerd runc tini >/dev/null 2>&1 || true
  apt-get autoremove -y -q >/dev/null 2>&1 || true
  rm -rf /etc/docker /var/lib/docker/* /var/lib/containerd
fi
gpasswd -d deploy docker >/dev/null 2>&1 || true
groupdel docker >/dev/null 2>&1 || true
true";

/// dockerd's process id, to tell whether the daemon was restarted.
fn main_pid(f: &Fleet, host: &str) -> String {
    f.ssh_ok(host, "systemctl show -p MainPID --value docker.service")
        .trim()
        .to_string()
}

fn docker_info(f: &Fleet, host: &str) -> String {
    f.ssh_ok(
        host,
        "docker info --format '{{.ServerVersion}} {{.Driver}} {{.LoggingDriver}} {{.LiveRestoreEnabled}}'",
    )
    .trim()
    .to_string()
}

/// A bad daemon map fails the task on every host with `expect` in its
/// message, and each host keeps the previous file and a working daemon.
fn bad_map_fails_and_keeps_docker(f: &Fleet, install: &Herd, daemon: Value, expect: &[&str]) {
    let r = install.vars(json!({"docker_daemon": daemon})).run();
    assert_ne!(r.code(), 0, "{}", r.stdout());
    let out = r.stdout();
    for h in HOSTS {
        assert_eq!(r.stat(h, "failed"), 1, "{h}: {out}");
        assert_eq!(
            f.ssh_ok(h, "cat /etc/docker/daemon.json"),
            DEFAULT_DAEMON_JSON,
            "{h}: the previous daemon.json stays"
        );
        assert_eq!(
            docker_info(f, h),
            "20.10.24+dfsg1 overlay2 json-file true",
            "{h}: Docker runs on the old config"
        );
        assert_eq!(
            f.ssh_ok(h, "systemctl is-active docker.service").trim(),
            "active"
        );
    }
    for e in expect {
        assert!(out.contains(e), "expected {e:?} in:\n{out}");
    }
}

#[test]
fn docker_install_example_installs_on_bare_hosts_and_survives_bad_daemon_maps() {
    let f = fleet();
    let _locks: Vec<_> = HOSTS.iter().map(|h| f.lock(h)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = HOSTS
        .iter()
        .fold(f.inventory().group("docker_hosts"), |inv, h| {
            inv.root(h, h, "")
        })
        .write(dir.path(), "inventory.ini");
    let install = f
        .herd()
        .example("playbooks/docker-install.yml")
        .inventory(&inventory);

    for h in HOSTS {
        f.ssh_ok(h, PURGE);
        assert!(
            !f.ssh(h, "command -v dockerd || command -v docker")
                .status
                .success(),
            "{h} is not bare"
        );
    }

    // Check mode on bare hosts names what would be installed, changes nothing.
    let r = install.check().diff().converge_all(&HOSTS, 1);
    let planned = r.results(TASK);
    let changes = planned[0]["changes"].to_string();
    assert!(changes.contains("install docker.io"), "{changes}");
    assert!(changes.contains("add deploy to group docker"), "{changes}");
    assert_eq!(
        planned[0]["diffs"][0]["after"],
        DEFAULT_DAEMON_JSON,
        "{}",
        r.stdout()
    );
    for h in HOSTS {
        assert!(!f.ssh(h, "command -v dockerd").status.success(), "{h}");
    }

    // From bare hosts to a working `docker info`.
    let r = install.converge_all(&HOSTS, 1);
    let reports = r.results("Report the engine");
    assert_eq!(reports.len(), 2, "{}", r.stdout());
    for rep in &reports {
        assert_eq!(
            rep["output"]["msg"], "Docker 20.10.24+dfsg1, compose 2.26.1-4",
            "{rep}"
        );
    }
    for h in HOSTS {
        assert_eq!(docker_info(f, h), "20.10.24+dfsg1 overlay2 json-file true");
        assert_eq!(
            f.ssh_ok(h, "cat /etc/docker/daemon.json"),
            DEFAULT_DAEMON_JSON
        );
        assert_eq!(
            f.ssh_ok(h, "docker compose version --short").trim(),
            "2.26.1-4"
        );
        assert!(
            f.ssh_ok(h, "id -nG deploy")
                .split_whitespace()
                .any(|g| g == "docker"),
            "{h}: deploy in group docker"
        );
        // The group works: deploy reaches the daemon without sudo.
        assert_eq!(
            f.ssh_ok(
                h,
                "runuser -u deploy -- docker version --format '{{.Server.Version}}'"
            )
            .trim(),
            "20.10.24+dfsg1"
        );
    }

    // Idempotent: the second run changes nothing and restarts nothing.
    let pids: Vec<String> = HOSTS.iter().map(|h| main_pid(f, h)).collect();
    install.converge_all(&HOSTS, 0);

    // A different setting in check mode: reported with its diff, not made.
    let bigger = json!({"docker_daemon": {"log-opts": {"max-size": "50m"}}});
    let r = install.vars(&bigger).check().diff().converge_all(&HOSTS, 1);
    let changes = r.results(TASK)[0]["changes"].to_string();
    assert!(
        changes.contains("update /etc/docker/daemon.json"),
        "{changes}"
    );
    assert!(changes.contains("restart docker"), "{changes}");
    let after = r.results(TASK)[0]["diffs"][0]["after"].to_string();
    assert!(after.contains(r#"\"max-size\": \"50m\""#), "{after}");
    for (h, pid) in HOSTS.iter().zip(&pids) {
        assert_eq!(&main_pid(f, h), pid, "{h}: not restarted");
        assert_eq!(
            f.ssh_ok(h, "cat /etc/docker/daemon.json"),
            DEFAULT_DAEMON_JSON
        );
    }

    // An unknown key: dockerd refuses the file when it loads it, before
    // anything is written or restarted.
    bad_map_fails_and_keeps_docker(
        f,
        &install,
        json!({"log-levels": "debug"}),
        &[
            "dockerd refused the new /etc/docker/daemon.json",
            "don't match any configuration option: log-levels",
        ],
    );
    for (h, pid) in HOSTS.iter().zip(&pids) {
        assert_eq!(&main_pid(f, h), pid, "{h}: not restarted");
    }

    // An unknown storage driver passes the config load and fails only when
    // the daemon starts: the old file comes back and the daemon with it.
    bad_map_fails_and_keeps_docker(
        f,
        &install,
        json!({"storage-driver": "bogus"}),
        &[
            "dockerd did not come back after the restart",
            "error initializing graphdriver: driver not supported",
            "the previous daemon.json was restored and docker 20.10.24+dfsg1 is running on it again",
        ],
    );

    // Still converged afterwards.
    install.converge_all(&HOSTS, 0);
}
