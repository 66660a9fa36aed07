//! The benchmark playbook (`bench/playbook.yml`, unmodified) leaves the same
//! state whether ansible-playbook or herd runs it: ansible on `herd-05`, herd
//! on `herd-06`, then every path under /tmp/herd-bench is compared (kind,
//! mode, owner, group, link target, sha256 of contents) along with the
//! sysctl the playbook sets, and both report the same changes on a first
//! run and none on a second.
//!
//! ansible-playbook is found and run by `support::ansible`.

use crate::support::ansible::{ansible_cfg, run_ansible, INSTALL_PYTHON};
use crate::support::fleet::fleet;
use crate::support::repo;

const ANSIBLE_HOST: &str = "herd-05";
const HERD_HOST: &str = "herd-06";
/// The inventory name both tools use, so templates that print
/// `inventory_hostname` render the same on both hosts.
const INVENTORY_NAME: &str = "parity";

/// Everything the playbook leaves behind on a host, one line per fact, in a
/// stable order.
const STATE_SCRIPT: &str = "set -e; cd /tmp/herd-bench; \
    find . -printf 'path %p %y %m %u %g %l\\n' | sort; \
    find . -type f -exec sha256sum {} + | sort -k2 | sed 's/^/sha256 /'; \
    echo \"sysctl net.ipv4.tcp_keepalive_probes $(sysctl -n net.ipv4.tcp_keepalive_probes)\"";

/// A fresh start: no bench directory and the sysctl at the kernel default.
const RESET_SCRIPT: &str = "rm -rf /tmp/herd-bench && sysctl -qw net.ipv4.tcp_keepalive_probes=9";

#[test]
fn bench_playbook_leaves_the_same_state_with_ansible_and_with_herd() {
    let f = fleet();
    // Always in this order, so two tests taking both locks cannot deadlock.
    let _ansible_host = f.lock(ANSIBLE_HOST);
    let _herd_host = f.lock(HERD_HOST);
    let dir = tempfile::tempdir().expect("tempdir");

    f.ssh_ok(ANSIBLE_HOST, INSTALL_PYTHON);
    f.ssh_ok(ANSIBLE_HOST, RESET_SCRIPT);
    f.ssh_ok(HERD_HOST, RESET_SCRIPT);

    let cfg = ansible_cfg(f, dir.path(), "explicit");
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

    let playbook = repo().join("bench/playbook.yml");
    let ansible = || {
        run_ansible(
            &cfg,
            &ansible_inv,
            &playbook,
            dir.path(),
            &[],
            &[],
            INVENTORY_NAME,
        )
    };
    let ansible_first = ansible();
    let herd_first = run_herd();
    assert_eq!(
        herd_first, ansible_first,
        "a first run changes as many tasks with herd as with ansible"
    );
    let ansible_second = ansible();
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
