//! The benchmark playbook (`bench/playbook.yml`, unmodified) leaves the same
//! state whether ansible-playbook or herd runs it: ansible on `herd-05`, herd
//! on `herd-06`, then every path under /tmp/herd-bench is compared (kind,
//! mode, owner, group, link target, sha256 of contents) along with the
//! sysctl the playbook sets, and both report the same changes on a first
//! run and none on a second.
//!
//! ansible-playbook comes from `HERD_ANSIBLE_PLAYBOOK` (default: the venv
//! `bench/setup-ansible.sh` makes). Without it the test fails and says how
//! to install it: CI runs that script first.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fleet::{fleet, Fleet};
use crate::support::{repo, write_files};

const ANSIBLE_HOST: &str = "herd-05";
const HERD_HOST: &str = "herd-06";
/// The inventory name both tools use, so templates that print
/// `inventory_hostname` render the same on both hosts.
const INVENTORY_NAME: &str = "parity";
const DEFAULT_ANSIBLE: &str = "/var/cache/herd-bench/venv/bin/ansible-playbook";

/// Everything the playbook leaves behind on a host, one line per fact, in a
/// stable order.
const STATE_SCRIPT: &str = "set -e; cd /tmp/herd-bench; \
    find . -printf 'path %p %y %m %u %g %l\\n' | sort; \
    find . -type f -exec sha256sum {} + | sort -k2 | sed 's/^/sha256 /'; \
    echo \"sysctl net.ipv4.tcp_keepalive_probes $(sysctl -n net.ipv4.tcp_keepalive_probes)\"";

/// A fresh start: no bench directory and the sysctl at the kernel default.
const RESET_SCRIPT: &str = "rm -rf /tmp/herd-bench && sysctl -qw net.ipv4.tcp_keepalive_probes=9";

/// python3 for ansible's modules, from the fleet's local apt repository.
const INSTALL_PYTHON: &str = "command -v python3 >/dev/null || { apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq python3 >/dev/null; }";

fn ansible_playbook() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("HERD_ANSIBLE_PLAYBOOK").unwrap_or_else(|_| DEFAULT_ANSIBLE.into()),
    );
    assert!(
        path.is_file(),
        "ansible-playbook not found at {}: run bench/setup-ansible.sh (it installs ansible-core \
         into {}), or point HERD_ANSIBLE_PLAYBOOK at one",
        path.display(),
        Path::new(DEFAULT_ANSIBLE)
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"))
            .display()
    );
    path
}

/// ansible.cfg as bench/run.sh writes it: pipelining, persistent
/// connections, strict host keys from the fleet's known_hosts.
fn ansible_cfg(f: &Fleet, dir: &Path) -> PathBuf {
    let text = format!(
        "[defaults]\nhost_key_checking = True\ngathering = explicit\n\
         interpreter_python = auto_silent\nretry_files_enabled = False\n\n\
         [ssh_connection]\npipelining = True\n\
         ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={} \
         -o StrictHostKeyChecking=yes -o ConnectTimeout=10\ncontrol_path_dir = {}\n",
        f.known_hosts.display(),
        dir.join("cp").display()
    );
    write_files(dir, &[("ansible.cfg", &text)]);
    dir.join("ansible.cfg")
}

/// Run ansible-playbook on the bench playbook (bounded: 10 minutes) and
/// return the `changed=` count of its recap.
fn run_ansible(ansible: &Path, cfg: &Path, inventory: &Path, dir: &Path) -> u64 {
    let out = Command::new("timeout")
        .arg("600")
        .arg(ansible)
        .arg("-i")
        .arg(inventory)
        .arg(repo().join("bench/playbook.yml"))
        .env("ANSIBLE_CONFIG", cfg)
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ansible.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ansible-playbook failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    recap_changed(&stdout).unwrap_or_else(|| panic!("no recap for {INVENTORY_NAME}:\n{stdout}"))
}

/// `changed=N` from ansible's `PLAY RECAP` line for [`INVENTORY_NAME`].
fn recap_changed(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .find(|l| l.starts_with(INVENTORY_NAME) && l.contains(" ok="))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("changed="))?
        .parse()
        .ok()
}

#[test]
fn bench_playbook_leaves_the_same_state_with_ansible_and_with_herd() {
    let ansible = ansible_playbook();
    let f = fleet();
    // Always in this order, so two tests taking both locks cannot deadlock.
    let _ansible_host = f.lock(ANSIBLE_HOST);
    let _herd_host = f.lock(HERD_HOST);
    let dir = tempfile::tempdir().expect("tempdir");

    f.ssh_ok(ANSIBLE_HOST, INSTALL_PYTHON);
    f.ssh_ok(ANSIBLE_HOST, RESET_SCRIPT);
    f.ssh_ok(HERD_HOST, RESET_SCRIPT);

    let cfg = ansible_cfg(f, dir.path());
    // One host named INVENTORY_NAME in each tool's inventory.
    let named = |fleet_host| {
        f.inventory()
            .group("bench")
            .root(INVENTORY_NAME, fleet_host, "")
    };
    let ansible_inv = named(ANSIBLE_HOST).write(dir.path(), "ansible.ini");
    let herd = f
        .herd()
        .example("bench/playbook.yml")
        .inventory(named(HERD_HOST).write(dir.path(), "herd.ini"));
    let run_herd = || herd.run().expect_code(0).stat(INVENTORY_NAME, "changed");

    let ansible_first = run_ansible(&ansible, &cfg, &ansible_inv, dir.path());
    let herd_first = run_herd();
    assert_eq!(
        herd_first, ansible_first,
        "a first run changes as many tasks with herd as with ansible"
    );
    let ansible_second = run_ansible(&ansible, &cfg, &ansible_inv, dir.path());
    let herd_second = run_herd();
    assert_eq!(
        (ansible_second, herd_second),
        (0, 0),
        "a second run changes nothing"
    );

    let by_ansible = f.ssh_ok(ANSIBLE_HOST, STATE_SCRIPT);
    let by_herd = f.ssh_ok(HERD_HOST, STATE_SCRIPT);
    // Guard against comparing two empty listings.
    for expected in [
        "path ./current.ini l 777 root root /tmp/herd-bench/etc/app.ini",
        "path ./data/token f 440 daemon daemon",
        "sysctl net.ipv4.tcp_keepalive_probes 7",
    ] {
        assert!(
            // `%l` is empty for all but links: other lines end in a space.
            by_ansible.lines().any(|l| l.trim_end() == expected),
            "ansible's result lacks `{expected}`:\n{by_ansible}"
        );
    }
    let only_ansible: Vec<&str> = by_ansible
        .lines()
        .filter(|l| !by_herd.lines().any(|h| h == *l))
        .collect();
    let only_herd: Vec<&str> = by_herd
        .lines()
        .filter(|l| !by_ansible.lines().any(|a| a == *l))
        .collect();
    assert!(
        only_ansible.is_empty() && only_herd.is_empty(),
        "state differs\n--- only with ansible ({ANSIBLE_HOST})\n{}\n--- only with herd ({HERD_HOST})\n{}",
        only_ansible.join("\n"),
        only_herd.join("\n")
    );

    f.ssh_ok(ANSIBLE_HOST, RESET_SCRIPT);
    f.ssh_ok(HERD_HOST, RESET_SCRIPT);
}
