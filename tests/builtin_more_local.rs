//! The new ansible.builtin modules on the local host, against what
//! ansible-core 2.18 registered for the same playbook and the same files
//! (recorded with the venv of `bench/setup-ansible.sh`, paths under the
//! test's directory written as `D`): `find`'s order, `examined`, `limit`
//! and `skipped_paths`, `replace`'s message and `getent`'s fact.

use crate::support::{run_in, write_files};

/// What ansible-playbook printed for the `show` task below.
const ANSIBLE: &str = r#"{"a": [3, 9, "All paths examined", ["D/t/a.log", "D/t/sub/c.log", "D/t/.dot/e.log"]], "b": [1, 5, "Not all paths examined, check warnings for details", {"D/none": "'D/none' is not a directory"}], "c": ["1 replacements made", 0, true], "d": ["x", "0", "0", "root", "/root", "/bin/bash"]}"#;

#[test]
fn find_replace_and_getent_register_what_ansible_registers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    write_files(
        dir.path(),
        &[
            ("t/a.log", "error: x\n"),
            ("t/b.txt", "ok\n"),
            ("t/.h.log", "x\n"),
            ("t/sub/c.log", "warn\nerror: y\n"),
            ("t/sub/deeper/d.log", ""),
            ("t/.dot/e.log", "x\n"),
            ("app.conf", "db_host = old\nport=1\n"),
        ],
    );
    let playbook = format!(
        r#"- hosts: localhost
  gather_facts: no
  tasks:
    - find: {{paths: {d}/t, patterns: "*.log", recurse: true, depth: 2}}
      register: a
    - find: {{paths: [{d}/t, {d}/none], recurse: yes, contains: "error:.*", limit: 1}}
      register: b
    - replace: {{path: {d}/app.conf, regexp: '^(db_host\s*=\s*).*$', replace: '\g<1>db-2'}}
      register: c
    - getent: {{database: passwd, key: root}}
      register: d
    - name: show
      debug:
        msg: "{{{{ {{'a': [a.matched, a.examined, a.msg, a.files|map(attribute='path')|list], 'b': [b.matched, b.examined, b.msg, b.skipped_paths], 'c': [c.msg, c.rc|default('none'), c.changed], 'd': d.ansible_facts.getent_passwd.root }} | to_json }}}}"
"#
    );
    let run = run_in(
        dir.path(),
        "localhost ansible_connection=local\n",
        &playbook,
        &[],
    )
    .expect_code(0);
    let msg = run.results("show")[0]["output"]["msg"]
        .as_str()
        .unwrap_or_default()
        .replace(&d, "D");
    // root's shell differs between machines; the rest must not.
    let got: serde_json::Value = serde_json::from_str(&msg).expect("json");
    let mut want: serde_json::Value = serde_json::from_str(ANSIBLE).expect("json");
    want["d"][5] = got["d"][5].clone();
    assert_eq!(got, want);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app.conf"))
            .ok()
            .as_deref(),
        Some("db_host = db-2\nport=1\n")
    );
}
