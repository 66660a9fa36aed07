//! `synchronize` under ansible-playbook and under herd, from the same
//! fresh start on two fleet hosts: a controller tree (files of several
//! modes, a symlink, nested directories) pushed plain, with `delete`, with
//! `rsync_opts` excludes and without `archive`; a host tree pulled back to
//! the controller. A `--check` run first, then two real runs: each changes
//! as many tasks under both tools (the second none), the registered
//! `changed`/`rc` of every run land in compared files, the hosts end in
//! the same state and the pulled controller trees are the same.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::fleet::fleet;
use crate::support::parity::{Parity, Round};
use crate::support::write_files;

const ANSIBLE_HOST: &str = "herd-43";
const HERD_HOST: &str = "herd-44";

/// Each synchronize task registers its result and writes `changed`, `rc`
/// and the itemized line count under /root/parity, named by the run
/// (`check`, `1`, `2`); the write runs in check mode too and is never
/// counted as a change, so the runs' counts are synchronize's alone.
const PLAYBOOK: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: push the tree
      ansible.posix.synchronize:
        src: "{{ src_dir }}/tree/"
        dest: /srv/push/
      register: r
    - name: record push
      vars: {label: push}
      copy:
        content: "{{ r.changed }} {{ r.rc }} {{ r.stdout_lines | length }}\n"
        dest: "/root/parity/{{ run }}-{{ label }}"
      check_mode: false
      changed_when: false

    - name: mirror the tree, deleting what it does not have
      synchronize:
        src: "{{ src_dir }}/tree/"
        dest: /srv/mirror
        delete: true
      register: r
    - name: record mirror
      vars: {label: mirror}
      copy:
        content: "{{ r.changed }} {{ r.rc }} {{ r.stdout_lines | length }}\n"
        dest: "/root/parity/{{ run }}-{{ label }}"
      check_mode: false
      changed_when: false

    - name: push without logs and caches
      synchronize:
        src: "{{ src_dir }}/tree"
        dest: /srv/filtered/
        rsync_opts:
          - "--exclude=*.log"
          - "--exclude"
          - "cache/"
      register: r
    - name: record filtered
      vars: {label: filtered}
      copy:
        content: "{{ r.changed }} {{ r.rc }} {{ r.stdout_lines | length }}\n"
        dest: "/root/parity/{{ run }}-{{ label }}"
      check_mode: false
      changed_when: false

    - name: push without archive, by checksum
      synchronize:
        src: "{{ src_dir }}/tree/"
        dest: /srv/plain/
        archive: false
        recursive: true
        links: true
        perms: true
        checksum: true
      register: r
    - name: record plain
      vars: {label: plain}
      copy:
        content: "{{ r.changed }} {{ r.rc }} {{ r.stdout_lines | length }}\n"
        dest: "/root/parity/{{ run }}-{{ label }}"
      check_mode: false
      changed_when: false

    - name: pull the host's data
      synchronize:
        mode: pull
        src: /srv/hostdata/
        dest: "{{ pull_dir }}/"
      register: r
    - name: record pull
      vars: {label: pull}
      copy:
        content: "{{ r.changed }} {{ r.rc }} {{ r.stdout_lines | length }}\n"
        dest: "/root/parity/{{ run }}-{{ label }}"
      check_mode: false
      changed_when: false
"#;

/// The same start on both hosts: python3 (for ansible) and rsync, the
/// directory the results go to, a stale file the `delete` push removes,
/// one the plain push keeps, and the tree the pull fetches.
const PREPARE: &str = "set -e; \
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq rsync >/dev/null; \
    rm -rf /srv/push /srv/mirror /srv/filtered /srv/plain /srv/hostdata /root/parity; \
    mkdir -p /root/parity /srv/mirror/old /srv/push /srv/hostdata/conf.d; \
    echo stale > /srv/mirror/stale.txt; echo older > /srv/mirror/old/x; \
    echo kept > /srv/push/extra.txt; \
    echo 'data' > /srv/hostdata/data.txt; chmod 0640 /srv/hostdata/data.txt; \
    echo 'port=1' > /srv/hostdata/conf.d/app.conf; chmod 0600 /srv/hostdata/conf.d/app.conf; \
    ln -s conf.d/app.conf /srv/hostdata/current; chmod 0750 /srv/hostdata/conf.d; \
    touch -d '2024-01-02 03:04:05' /srv/hostdata/data.txt /srv/hostdata/conf.d/app.conf";

const PATHS: &[&str] = &[
    "/srv/push",
    "/srv/mirror",
    "/srv/filtered",
    "/srv/plain",
    "/root/parity",
];

/// The controller tree both tools push.
fn make_tree(dir: &Path) {
    let tree = dir.join("tree");
    write_files(
        &tree,
        &[
            ("a.txt", "alpha\n"),
            ("secret.txt", "s3cret\n"),
            ("run.sh", "#!/bin/sh\necho hi\n"),
            ("nested/deeper/c.txt", "gamma\n"),
            ("nested/app.log", "log line\n"),
            ("cache/blob.bin", "cached\n"),
        ],
    );
    for (path, mode) in [
        ("a.txt", 0o644),
        ("secret.txt", 0o600),
        ("run.sh", 0o755),
        ("nested/deeper/c.txt", 0o640),
        ("nested/app.log", 0o644),
        ("cache/blob.bin", 0o644),
        ("nested", 0o750),
        ("nested/deeper", 0o755),
        ("cache", 0o755),
        ("", 0o755),
    ] {
        std::fs::set_permissions(tree.join(path), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
    std::os::unix::fs::symlink("a.txt", tree.join("link")).expect("symlink");
    // Fixed times: the tree is the same whenever the test runs.
    let status = Command::new("find")
        .arg(&tree)
        .args([
            "-exec",
            "touch",
            "-h",
            "-d",
            "2024-05-06 07:08:09",
            "{}",
            "+",
        ])
        .status()
        .expect("touch");
    assert!(status.success());
}

/// A controller tree as `kind mode link-target sha256`, one line per path.
fn listing(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "cd \"$1\" && find . -printf '%p %y %m %l\\n' | sort && \
             find . -type f -exec sha256sum {} + | sort",
        )
        .arg("listing")
        .arg(dir)
        .output()
        .expect("find");
    assert!(out.status.success(), "cannot list {}", dir.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn synchronize_pushes_and_pulls_as_ansible_does() {
    let f = fleet();
    let _a = f.lock(ANSIBLE_HOST);
    let _h = f.lock(HERD_HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path());
    write_files(dir.path(), &[("site.yml", PLAYBOOK)]);
    let pull = |tool: &str| dir.path().join(format!("pulled-{tool}"));
    let src_dir = format!("src_dir={}", dir.path().display());
    let pull_var = |tool: &str| format!("pull_dir={}", pull(tool).display());
    let check_pulled_nothing = |round: &Round| {
        if round.check {
            for tool in ["ansible", "herd"] {
                assert!(!pull(tool).exists(), "check mode pulled nothing ({tool})");
            }
        }
    };
    let counts = Parity {
        label: "synchronize",
        playbook: dir.path().join("site.yml"),
        ansible_host: ANSIBLE_HOST,
        herd_host: HERD_HOST,
        prepare: PREPARE,
        extra_vars: vec![src_dir],
        ansible_vars: vec![pull_var("ansible")],
        herd_vars: vec![pull_var("herd")],
        paths: PATHS,
        collections: &["ansible.posix"],
        rounds: &[
            Round::check("check").vars(&["run=check"]),
            Round::apply("first").vars(&["run=1"]),
            Round::apply("second").vars(&["run=2"]),
        ],
        after_round: Some(&check_pulled_nothing),
        ..Parity::default()
    }
    .run();
    assert_eq!(
        counts,
        [(5, 5), (5, 5), (0, 0)],
        "every synchronize has something to do at first, and nothing on a second run"
    );

    let by_ansible = listing(&pull("ansible"));
    assert!(
        by_ansible.contains("./current l 777 conf.d/app.conf"),
        "{by_ansible}"
    );
    assert_eq!(
        listing(&pull("herd")),
        by_ansible,
        "the pulled trees are the same"
    );
    // What the tools did, seen directly: excludes held, the stale file
    // went, the plain push kept its extra file.
    let filtered = f.ssh_ok(HERD_HOST, "cd /srv && find filtered mirror push | sort");
    assert!(
        !filtered.contains("filtered/tree/nested/app.log"),
        "{filtered}"
    );
    assert!(!filtered.contains("filtered/tree/cache"), "{filtered}");
    assert!(!filtered.contains("mirror/stale.txt"), "{filtered}");
    assert!(filtered.contains("push/extra.txt"), "{filtered}");
}
