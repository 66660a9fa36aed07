//! herd over SSH on the test fleet: facts of other hosts in templates (the
//! Elasticsearch example on six hosts), become with and without a password,
//! host-key checking (accept-new, a changed key, strict), and a host that
//! dies in the middle of a run.

use std::path::Path;

use crate::support::fleet::{fleet, Fleet};
use crate::support::{repo, write_files, Herd, Run};

/// One inventory host over a fleet host: `(inventory name, fleet host, extra vars)`.
type HostSpec<'a> = (&'a str, &'a str, &'a str);

/// An inventory of groups of fleet hosts.
fn inventory(f: &Fleet, dir: &Path, groups: &[(&str, &[HostSpec])]) -> std::path::PathBuf {
    let mut text = String::new();
    for (group, hosts) in groups {
        text.push_str(&format!("[{group}]\n"));
        for (name, fleet_host, extra) in *hosts {
            text.push_str(&format!(
                "{name} ansible_host={} ansible_ssh_private_key_file={} {extra}\n",
                f.address(fleet_host),
                f.key.display()
            ));
        }
    }
    let path = dir.join("inventory.ini");
    write_files(dir, &[("inventory.ini", &text)]);
    path
}

fn run(dir: &Path, playbook: &str, inventory: &Path, known_hosts: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "run".into(),
        playbook.into(),
        "-i".into(),
        inventory.display().to_string(),
        "--known-hosts".into(),
        known_hosts.display().to_string(),
        "--output".into(),
        "jsonl".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Herd::new(args).current_dir(dir).run()
}

#[test]
fn elasticsearch_example_renders_each_hosts_role_from_gathered_facts() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let masters: &[HostSpec] = &[
        ("es-master-1", "herd-01", ""),
        ("es-master-2", "herd-02", ""),
        ("es-master-3", "herd-03", ""),
    ];
    let data: &[HostSpec] = &[
        ("es-data-1", "herd-04", ""),
        ("es-data-2", "herd-05", ""),
        ("es-data-3", "herd-06", ""),
    ];
    let inv = inventory(f, dir.path(), &[("es_masters", masters), ("es_data", data)]);
    let mut text = std::fs::read_to_string(&inv).expect("inventory");
    text.push_str("[elasticsearch:children]\nes_masters\nes_data\n[elasticsearch:vars]\nansible_user=deploy\n");
    std::fs::write(&inv, text).expect("write inventory");
    // A stand-in unit so the example's restart handler has a service to restart.
    for host in [
        "herd-01", "herd-02", "herd-03", "herd-04", "herd-05", "herd-06",
    ] {
        f.ssh_ok(
            host,
            "rm -rf /etc/elasticsearch && printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/elasticsearch.service && systemctl daemon-reload",
        );
    }
    let playbook = repo().join("playbooks/deploy-elasticsearch.yml");
    let playbook = playbook.display().to_string();
    let first = run(dir.path(), &playbook, &inv, &f.known_hosts, &[]).expect_code(0);
    for (name, host, _) in masters.iter().chain(data.iter()) {
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
    let second = run(dir.path(), &playbook, &inv, &f.known_hosts, &[]).expect_code(0);
    for (name, _, _) in masters.iter().chain(data.iter()) {
        assert_eq!(second.stat(name, "changed"), 0, "{}", second.stdout());
    }
}

#[test]
fn become_with_and_without_a_password() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = inventory(
        f,
        dir.path(),
        &[(
            "users",
            &[
                ("nopasswd", "herd-02", "ansible_user=deploy"),
                (
                    "withpasswd",
                    "herd-03",
                    "ansible_user=deploy_pw ansible_become_password=deploy_pw",
                ),
                // The password as a template over another variable, the
                // way a vault-backed inventory gives it.
                (
                    "templated",
                    "herd-04",
                    "ansible_user=deploy_pw ansible_become_password='{{ sudo_secret }}' sudo_secret=deploy_pw",
                ),
            ],
        )],
    );
    write_files(
        dir.path(),
        &[(
            "become.yml",
            "- hosts: users\n  gather_facts: no\n  become: yes\n  tasks:\n    - name: who\n      command: id -un\n      register: who\n    - name: root only file\n      copy:\n        content: \"{{ inventory_hostname }}\\n\"\n        dest: /root/herd-become-test\n        mode: '0600'\n    - assert:\n        that: who.stdout == 'root'\n",
        )],
    );
    run(dir.path(), "become.yml", &inv, &f.known_hosts, &[]).expect_code(0);
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
    let inv = inventory(
        f,
        dir.path(),
        &[("users", &[("nopw", "herd-03", "ansible_user=deploy_pw")])],
    );
    let failed = run(dir.path(), "become.yml", &inv, &f.known_hosts, &[]).expect_code(2);
    let who = failed.results("who");
    let msg = who[0]["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("sudo needs a password"), "{msg}");
    assert!(!failed.stdout().contains("deploy_pw\n"), "password leaked");
}

#[test]
fn host_keys_accept_new_then_a_changed_key_fails_only_that_host() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = inventory(
        f,
        dir.path(),
        &[(
            "keys",
            &[
                ("k1", "herd-01", "ansible_user=root"),
                ("k2", "herd-02", "ansible_user=root"),
            ],
        )],
    );
    write_files(dir.path(), &[("ping.yml", "- hosts: keys\n  gather_facts: no\n  tasks:\n    - name: ping\n      command: 'true'\n")]);
    let known = dir.path().join("known_hosts");

    // Strict with no recorded keys refuses both hosts.
    let strict = run(
        dir.path(),
        "ping.yml",
        &inv,
        &known,
        &["--host-key-checking", "strict"],
    )
    .expect_code(4);
    assert_eq!(strict.stat("k1", "unreachable"), 1);

    // accept-new records both keys and runs.
    run(dir.path(), "ping.yml", &inv, &known, &[]).expect_code(0);
    let recorded = std::fs::read_to_string(&known).expect("known_hosts written");
    assert!(
        recorded.contains(f.address("herd-01")) && recorded.contains(f.address("herd-02")),
        "{recorded}"
    );
    run(
        dir.path(),
        "ping.yml",
        &inv,
        &known,
        &["--host-key-checking", "strict"],
    )
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
    let changed = run(dir.path(), "ping.yml", &inv, &known, &[]).expect_code(4);
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
    let inv = inventory(
        f,
        dir.path(),
        &[(
            "pair",
            &[
                ("survivor", "herd-01", "ansible_user=root"),
                (
                    "victim",
                    "herd-08",
                    "ansible_user=root ansible_ssh_common_args='-o ServerAliveInterval=1'",
                ),
            ],
        )],
    );
    write_files(
        dir.path(),
        &[(
            "long.yml",
            "- hosts: pair\n  gather_facts: no\n  tasks:\n    - name: first\n      command: 'true'\n    - name: slow\n      command: sleep 4\n    - name: after\n      command: 'true'\n",
        )],
    );
    let known = f.known_hosts.clone();
    let inv2 = inv.clone();
    let cwd = dir.path().to_path_buf();
    let runner = std::thread::spawn(move || run(&cwd, "long.yml", &inv2, &known, &[]));
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
    let text = format!(
        "[newnode]\nfresh ansible_host={} ansible_user=deploy ansible_password=deploy\n[rootnode]\nr ansible_host={} ansible_user=root ansible_ssh_private_key_file={}\n",
        f.address("herd-04"),
        f.address("herd-04"),
        f.key.display()
    );
    write_files(
        dir.path(),
        &[
            ("inventory.ini", &text),
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
    let inv = dir.path().join("inventory.ini");
    // No agent and no default keys may stand in for the password.
    let run1 = Herd::new([
        "run",
        "first.yml",
        "-i",
        &inv.display().to_string(),
        "--known-hosts",
        &f.known_hosts.display().to_string(),
        "--output",
        "jsonl",
    ])
    .current_dir(dir.path())
    .env_remove("SSH_AUTH_SOCK")
    .run()
    .expect_code(0);
    assert_eq!(run1.results("who").len(), 1);

    f.ssh_ok("herd-04", "echo old > /tmp/herd-owner-test && chown deploy:deploy /tmp/herd-owner-test && chmod 0640 /tmp/herd-owner-test");
    run(dir.path(), "owner.yml", &inv, &f.known_hosts, &[]).expect_code(0);
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
    let inv = inventory(f, dir.path(), &[("flood", &[("flooder", "herd-18", "")])]);
    write_files(
        dir.path(),
        &[(
            "flood.yml",
            "- hosts: flood\n  gather_facts: no\n  tasks:\n    - name: flood\n      command: cat /dev/zero\n      ignore_errors: true\n    - name: flood stderr\n      shell: cat /dev/zero >&2\n      ignore_errors: true\n    - name: flood with stdin\n      command: cat /dev/zero\n      args:\n        stdin: x\n      ignore_errors: true\n    - name: nothing left running\n      shell: sleep 1; if pgrep -a -x cat; then exit 1; fi\n",
        )],
    );
    let started = std::time::Instant::now();
    let r = run(
        dir.path(),
        "flood.yml",
        &inv,
        &f.known_hosts,
        &["--max-command-output", "1048576"],
    )
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
