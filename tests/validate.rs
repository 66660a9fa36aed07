//! `validate:` on the file-writing modules through the built binary: the
//! new content is checked on the host before it replaces the old file.

use crate::support::{run_in, write_files};

const ONE_HOST: &str = "[one]\na ansible_connection=local\n";

/// A `visudo -cf %s`-like check (the file must say `ok`), on `template`,
/// `copy`, `lineinfile` and `blockinfile`: a passing file is written, a
/// failing one fails the task with Ansible's message and the file stays.
#[test]
fn validate_gates_every_file_writing_module() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("templates/conf.j2", "{{ word }} rule\n")]);
    let check = r#"sh -c 'grep -q ok "$1" || { echo "$1: syntax error" >&2; exit 1; }' check %s"#;
    let playbook = format!(
        r#"- hosts: a
  gather_facts: no
  vars:
    f: "{{{{ playbook_dir }}}}/conf"
    check: {check:?}
  tasks:
    - name: template ok
      template: {{src: conf.j2, dest: "{{{{ f }}}}", validate: "{{{{ check }}}}"}}
      vars: {{word: ok}}
    - name: template bad
      template: {{src: conf.j2, dest: "{{{{ f }}}}", validate: "{{{{ check }}}}"}}
      vars: {{word: nope}}
      ignore_errors: true
      register: t
    - name: template bad registered
      assert:
        that:
          - t is failed
          - t.exit_status == 1
          - t.stdout == ''
          - "'syntax error' in t.stderr"
    - name: copy bad
      copy: {{content: "nope\n", dest: "{{{{ f }}}}", validate: "{{{{ check }}}}"}}
      ignore_errors: true
    - name: lineinfile bad
      lineinfile: {{path: "{{{{ f }}}}", regexp: "^ok", line: "nope", validate: "{{{{ check }}}}"}}
      ignore_errors: true
    - name: blockinfile ok
      blockinfile: {{path: "{{{{ f }}}}", block: "more", validate: "{{{{ check }}}}"}}
    - name: copy without %s
      copy: {{content: "ok 2\n", dest: "{{{{ f }}}}", validate: "true"}}
      ignore_errors: true
"#
    );
    let run = run_in(dir.path(), ONE_HOST, &playbook, &[]).expect_code(0);
    let one = |task: &str| run.results(task).into_iter().next().expect(task);
    assert_eq!(one("template ok")["status"], "changed", "{}", run.stdout());
    assert_eq!(
        one("template bad registered")["status"],
        "ok",
        "{}",
        run.stdout()
    );
    for task in ["template bad", "copy bad"] {
        let r = one(task);
        assert_eq!(r["msg"], "failed to validate", "{task}: {r}");
    }
    let r = one("lineinfile bad");
    let msg = r["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("failed to validate: rc:1 error:") && msg.ends_with(": syntax error\n"),
        "{r}"
    );
    assert_eq!(one("blockinfile ok")["status"], "changed");
    assert_eq!(
        one("copy without %s")["msg"],
        "validate must contain %s: true"
    );
    let text = std::fs::read_to_string(dir.path().join("conf")).unwrap_or_default();
    assert_eq!(
        text,
        "ok rule\n# BEGIN ANSIBLE MANAGED BLOCK\nmore\n# END ANSIBLE MANAGED BLOCK\n"
    );
}

/// Check mode never runs the command (Ansible only validates when it
/// writes), and still reports the change.
#[test]
fn check_mode_does_not_run_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let playbook = r#"- hosts: a
  gather_facts: no
  tasks:
    - name: copy
      copy:
        content: "x\n"
        dest: "{{ playbook_dir }}/conf"
        validate: "sh -c 'touch {{ playbook_dir }}/ran' check %s"
"#;
    let run = run_in(dir.path(), ONE_HOST, playbook, &["--check"]).expect_code(0);
    assert_eq!(
        run.results("copy")[0]["status"],
        "changed",
        "{}",
        run.stdout()
    );
    assert!(!dir.path().join("ran").exists());
    assert!(!dir.path().join("conf").exists());
}
