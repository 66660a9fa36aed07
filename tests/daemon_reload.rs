//! `systemd`/`service` with only `daemon_reload`: in check mode the task is
//! ok (no change, nothing run), as in Ansible. The real reload is covered by
//! the module's unit tests; it is not run on the test machine.

use crate::support::run_in;

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
