//! herd over SSH on the test fleet: facts of other hosts in templates (the
//! Elasticsearch example on six hosts), become with and without a password,
//! host-key checking (accept-new, a changed key, strict), and a host that
//! dies in the middle of a run.

use crate::support::fleet::{fleet, Inventory};
use crate::support::{repo, write_files};

#[test]
fn elasticsearch_example_renders_each_hosts_role_from_gathered_facts() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    // (inventory name, fleet host)
    let masters = [
        ("es-master-1", "herd-01"),
        ("es-master-2", "herd-02"),
        ("es-master-3", "herd-03"),
    ];
    let data = [
        ("es-data-1", "herd-04"),
        ("es-data-2", "herd-05"),
        ("es-data-3", "herd-06"),
    ];
    let add = |inv: Inventory<'static>, (name, host): &(&str, &str)| inv.host(name, host, "");
    let inv = masters.iter().fold(f.inventory().group("es_masters"), add);
    let inv = data
        .iter()
        .fold(inv.group("es_data"), add)
        .text(
            "[elasticsearch:children]\nes_masters\nes_data\n\
             [elasticsearch:vars]\nansible_user=deploy\n",
        )
        .write(dir.path(), "inventory.ini");
    // A stand-in unit so the example's restart handler has a service to restart.
    for host in [
        "herd-01", "herd-02", "herd-03", "herd-04", "herd-05", "herd-06",
    ] {
        f.ssh_ok(
            host,
            "rm -rf /etc/elasticsearch && printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/elasticsearch.service && systemctl daemon-reload",
        );
    }
    let deploy = f
        .herd()
        .example("playbooks/deploy-elasticsearch.yml")
        .inventory(&inv)
        .current_dir(dir.path());
    let first = deploy.run().expect_code(0);
    for (name, host) in masters.iter().chain(data.iter()) {
        let conf = f.ssh_ok(host, "cat /etc/elasticsearch/elasticsearch.yml");
        let is_master = name.starts_with("es-master");
        let roles = if is_master {
            "node.roles: [ master ]"
        } else {
            "node.roles: [ data, ingest ]"
        };
        assert!(conf.contains(roles), "{name}: {conf}");
        assert!(
            conf.contains(&format!("node.name: {name}\n")),
            "{name}: {conf}"
        );
        assert!(
            conf.contains(&format!("network.host: {}\n", f.address(host))),
            "{name}: {conf}"
        );
        let seeds = format!(
            "discovery.seed_hosts:\n  - {}\n  - {}\n  - {}\n",
            f.address("herd-01"),
            f.address("herd-02"),
            f.address("herd-03")
        );
        assert!(conf.contains(&seeds), "{name}: {conf}");
        assert!(conf.contains("cluster.name: production-logs"), "{conf}");
        let owner = f.ssh_ok(
            host,
            "stat -c '%U:%G %a' /etc/elasticsearch/elasticsearch.yml",
        );
        assert_eq!(owner.trim(), "root:elasticsearch 640");
        assert!(first.stat(name, "changed") >= 3, "{}", first.stdout());
    }
    assert_eq!(
        first.results("restart elasticsearch").len(),
        6,
        "handler once per host"
    );
    let second = deploy.run().expect_code(0);
    for (name, _) in masters.iter().chain(data.iter()) {
        assert_eq!(second.stat(name, "changed"), 0, "{}", second.stdout());
    }
}

#[test]
fn become_with_and_without_a_password() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = f
        .inventory()
        .group("users")
        .host("nopasswd", "herd-02", "ansible_user=deploy")
        .host(
            "withpasswd",
            "herd-03",
            "ansible_user=deploy_pw ansible_become_password=deploy_pw",
        )
        // The password as a template over another variable, the
        // way a vault-backed inventory gives it.
        .host(
            "templated",
            "herd-04",
            "ansible_user=deploy_pw ansible_become_password='{{ sudo_secret }}' sudo_secret=deploy_pw",
        )
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[(
            "become.yml",
            "- hosts: users\n  gather_facts: no\n  become: yes\n  tasks:\n    - name: who\n      command: id -un\n      register: who\n    - name: root only file\n      copy:\n        content: \"{{ inventory_hostname }}\\n\"\n        dest: /root/herd-become-test\n        mode: '0600'\n    - assert:\n        that: who.stdout == 'root'\n",
        )],
    );
    let become_ = f.herd().playbook("become.yml").current_dir(dir.path());
    become_.inventory(&inv).run().expect_code(0);
    assert_eq!(
        f.ssh_ok("herd-02", "cat /root/herd-become-test"),
        "nopasswd\n"
    );
    assert_eq!(
        f.ssh_ok("herd-03", "cat /root/herd-become-test"),
        "withpasswd\n"
    );
    assert_eq!(
        f.ssh_ok("herd-04", "cat /root/herd-become-test"),
        "templated\n"
    );
    assert_eq!(
        f.ssh_ok("herd-03", "stat -c '%U %a' /root/herd-become-test")
            .trim(),
        "root 600"
    );

    // Without the password sudo must fail at once and say why, not hang.
    let inv = f
        .inventory()
        .group("users")
        .host("nopw", "herd-03", "ansible_user=deploy_pw")
        .write(dir.path(), "inventory.ini");
    let failed = become_.inventory(&inv).run().expect_code(2);
    let who = failed.results("who");
    let msg = who[0]["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("sudo needs a password"), "{msg}");
    assert!(!failed.stdout().contains("deploy_pw\n"), "password leaked");
}

#[test]
fn host_keys_accept_new_then_a_changed_key_fails_only_that_host() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = f
        .inventory()
        .group("keys")
        .host("k1", "herd-01", "ansible_user=root")
        .host("k2", "herd-02", "ansible_user=root")
        .write(dir.path(), "inventory.ini");
    write_files(dir.path(), &[("ping.yml", "- hosts: keys\n  gather_facts: no\n  tasks:\n    - name: ping\n      command: 'true'\n")]);
    let known = dir.path().join("known_hosts");
    let ping = f
        .herd()
        .playbook("ping.yml")
        .inventory(&inv)
        .known_hosts(&known)
        .current_dir(dir.path());

    // Strict with no recorded keys refuses both hosts.
    let strict = ping
        .args(["--host-key-checking", "strict"])
        .run()
        .expect_code(4);
    assert_eq!(strict.stat("k1", "unreachable"), 1);

    // accept-new records both keys and runs.
    ping.run().expect_code(0);
    let recorded = std::fs::read_to_string(&known).expect("known_hosts written");
    assert!(
        recorded.contains(f.address("herd-01")) && recorded.contains(f.address("herd-02")),
        "{recorded}"
    );
    ping.args(["--host-key-checking", "strict"])
        .run()
        .expect_code(0);

    // Give herd-02's address herd-03's key: a changed key is a hard failure
    // naming the host, both fingerprints and the known_hosts line; k1 goes on.
    let other_key = f.ssh_ok("herd-03", "cat /etc/ssh/ssh_host_ed25519_key.pub");
    let other_key: Vec<&str> = other_key.split_whitespace().collect();
    let tampered: String = recorded
        .lines()
        .map(|l| {
            if l.starts_with(f.address("herd-02")) {
                format!(
                    "{} {} {}\n",
                    f.address("herd-02"),
                    other_key[0],
                    other_key[1]
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&known, &tampered).expect("tamper");
    let changed = ping.run().expect_code(4);
    assert_eq!(changed.stat("k1", "changed"), 1);
    assert_eq!(changed.stat("k2", "unreachable"), 1);
    let msg = changed
        .results("ping")
        .iter()
        .find(|r| r["host"] == "k2")
        .expect("k2 result")["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("SHA256:"), "{msg}");
    assert!(
        msg.contains(&format!("{}:", known.display())),
        "names the file and line: {msg}"
    );
    // The tampered file was not "fixed" behind the user's back.
    assert_eq!(std::fs::read_to_string(&known).expect("known"), tampered);
}

#[test]
fn a_host_that_dies_mid_run_is_unreachable_and_the_others_finish() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = f
        .inventory()
        .group("pair")
        .host("survivor", "herd-01", "ansible_user=root")
        .host(
            "victim",
            "herd-08",
            "ansible_user=root ansible_ssh_common_args='-o ServerAliveInterval=1'",
        )
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[(
            "long.yml",
            "- hosts: pair\n  gather_facts: no\n  tasks:\n    - name: first\n      command: 'true'\n    - name: slow\n      command: sleep 4\n    - name: after\n      command: 'true'\n",
        )],
    );
    let long = f
        .herd()
        .playbook("long.yml")
        .inventory(&inv)
        .current_dir(dir.path());
    let runner = std::thread::spawn(move || long.run());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = std::process::Command::new(repo().join("tests/fleet/fleet.sh"))
        .args(["kill", "herd-08"])
        .output()
        .expect("fleet.sh kill");
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
    let run = runner.join().expect("runner thread").expect_code(4);
    assert_eq!(run.stat("victim", "unreachable"), 1, "{}", run.stdout());
    assert_eq!(run.stat("survivor", "changed"), 3, "{}", run.stdout());
    assert_eq!(run.results("after").len(), 1);
}

#[test]
fn password_first_contact_and_sftp_writes_keep_the_owner() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    // A host the controller has no key for: the deploy user's password.
    let inv = f
        .inventory()
        .group("newnode")
        .text(&format!(
            "fresh ansible_host={} ansible_user=deploy ansible_password=deploy\n",
            f.address("herd-04")
        ))
        .group("rootnode")
        .root("r", "herd-04", "")
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[
            (
                "first.yml",
                "- hosts: newnode\n  gather_facts: no\n  tasks:\n    - name: who\n      command: id -un\n      register: who\n    - assert:\n        that: who.stdout == 'deploy'\n",
            ),
            (
                "owner.yml",
                "- hosts: rootnode\n  gather_facts: no\n  tasks:\n    - name: replace\n      copy:\n        content: \"new\\n\"\n        dest: /tmp/herd-owner-test\n",
            ),
        ],
    );
    let herd = f.herd().inventory(&inv).current_dir(dir.path());
    // No agent and no default keys may stand in for the password.
    let run1 = herd
        .playbook("first.yml")
        .env_remove("SSH_AUTH_SOCK")
        .run()
        .expect_code(0);
    assert_eq!(run1.results("who").len(), 1);

    f.ssh_ok("herd-04", "echo old > /tmp/herd-owner-test && chown deploy:deploy /tmp/herd-owner-test && chmod 0640 /tmp/herd-owner-test");
    herd.playbook("owner.yml").run().expect_code(0);
    assert_eq!(f.ssh_ok("herd-04", "cat /tmp/herd-owner-test"), "new\n");
    assert_eq!(
        f.ssh_ok("herd-04", "stat -c '%U:%G %a' /tmp/herd-owner-test")
            .trim(),
        "deploy:deploy 640"
    );
}

/// Over real SSH (the persistent shell, then an exec channel for a
/// command with stdin): a command printing without end fails its task at
/// `--max-command-output`, is not left running on the host, and the host
/// carries on with the next task.
#[test]
fn a_flooding_command_is_stopped_at_the_output_limit() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = f
        .inventory()
        .group("flood")
        .host("flooder", "herd-18", "")
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[(
            "flood.yml",
            "- hosts: flood\n  gather_facts: no\n  tasks:\n    - name: flood\n      command: cat /dev/zero\n      ignore_errors: true\n    - name: flood stderr\n      shell: cat /dev/zero >&2\n      ignore_errors: true\n    - name: flood with stdin\n      command: cat /dev/zero\n      args:\n        stdin: x\n      ignore_errors: true\n    - name: nothing left running\n      shell: sleep 1; if pgrep -a -x cat; then exit 1; fi\n",
        )],
    );
    let started = std::time::Instant::now();
    let r = f
        .herd()
        .playbook("flood.yml")
        .inventory(&inv)
        .args(["--max-command-output", "1048576"])
        .current_dir(dir.path())
        .run()
        .expect_code(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    for (task, stream) in [
        ("flood", "stdout"),
        ("flood stderr", "stderr"),
        ("flood with stdin", "stdout"),
    ] {
        let res = r.results(task);
        let msg = res[0]["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("{stream} passed the limit of 1048576 bytes")),
            "{task}: {msg}"
        );
    }
    // Exit 0: the floods' failures are ignored and `nothing left running`
    // found no `cat` still going on the host.
    assert_eq!(r.results("nothing left running").len(), 1);
}
