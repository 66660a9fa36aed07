//! Parameters real playbooks pass that herd once refused: `systemd`/
//! `service` with only `daemon_reload`, `package` with apt's parameters.

use crate::support::{run_in, write_files, Herd};

/// `daemon_reload` alone: in check mode the task is ok (no change, nothing
/// run), as in Ansible. The real reload is covered by the module's unit
/// tests; it is not run on the test machine.
#[test]
fn daemon_reload_alone_is_ok_in_check_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let playbook = "- hosts: a\n  gather_facts: no\n  tasks:\n    - name: sd\n      systemd:\n        daemon_reload: true\n      register: r\n    - name: svc\n      service:\n        daemon_reload: yes\n    - name: seen\n      assert:\n        that:\n          - r is not changed\n          - r.name is none\n";
    let run = run_in(
        dir.path(),
        "[one]\na ansible_connection=local\n",
        playbook,
        &["--check"],
    )
    .expect_code(0);
    for task in ["sd", "svc", "seen"] {
        assert_eq!(run.results(task)[0]["status"], "ok", "{}", run.stdout());
    }
    assert_eq!(run.stat("a", "changed"), 0);
}

/// `package` accepts apt's parameters, as Ansible's package action hands
/// them to apt; a misspelt one is still refused before anything runs.
#[test]
fn package_takes_apt_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let task = "- hosts: localhost\n  tasks:\n    - package:\n        name: tree\n        state: present\n        update_cache: true\n        cache_valid_time: 3600\n        install_recommends: false\n";
    write_files(
        dir.path(),
        &[
            ("ok.yml", task),
            ("bad.yml", &task.replace("update_cache", "update_cach")),
        ],
    );
    Herd::new(["validate", "ok.yml"])
        .current_dir(dir.path())
        .run()
        .expect_code(0);
    let run = Herd::new(["validate", "bad.yml"])
        .current_dir(dir.path())
        .run()
        .expect_code(1);
    assert!(run.stderr().contains("`update_cach`"), "{}", run.stderr());
}
