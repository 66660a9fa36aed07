//! `no_log` and secret values on a local host: what is hidden, in which
//! shape (`tests/fixtures/no_log/` holds what ansible-playbook 2.18 prints
//! for the same playbook), and that passwords from the inventory are masked
//! wherever they would be printed.

use std::path::Path;

use crate::support::{repo, write_files, Herd, Run};

/// Every value `tests/fixtures/no_log/site.yml` hides.
const HIDDEN: &[&str] = &[
    "nolog-item-3fa1",
    "nolog-label-77c2",
    "nolog-copy-c0d5",
    "nolog-stdout-91be",
    "nolog-stderr-4d07",
    "nolog-fail-5e6b",
];

const NOTICE: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

fn fixture(name: &str) -> String {
    let path = repo().join("tests/fixtures/no_log").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Write the fixture play and a local inventory into `dir`; `herd run`
/// of them there with `--diff`.
fn fixture_run(dir: &Path) -> Herd {
    write_files(
        dir,
        &[
            ("inventory.ini", "localhost ansible_connection=local\n"),
            ("site.yml", &fixture("site.yml")),
        ],
    );
    Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .diff()
        .vars(format!("out_dir={}", dir.display()))
        .current_dir(dir)
}

fn assert_hidden(run: &Run) {
    for secret in HIDDEN {
        assert!(
            !run.stdout().contains(secret) && !run.stderr().contains(secret),
            "`{secret}` printed by herd {}:\n{}\n{}",
            run.label,
            run.stdout(),
            run.stderr()
        );
    }
}

#[test]
fn no_log_hides_items_labels_diffs_errors_as_ansible_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = fixture_run(dir.path()).run().expect_code(2);
    assert_hidden(&run);
    let out = run.stdout();
    let ansible = fixture("ansible-2.18.txt");
    // Loop items show as `(item=None)`, and a failure as the notice.
    for line in ansible.lines().filter(|l| l.contains("(item=")) {
        let want = ansible.lines().filter(|l| *l == line).count();
        let got = out.lines().filter(|l| *l == line).count();
        assert_eq!(got, want, "`{line}` in\n{out}");
    }
    let fatal = ansible
        .lines()
        .find(|l| l.starts_with("fatal:") && l.contains("\"changed\": false"))
        .expect("ansible's play-level no_log failure");
    assert!(out.lines().any(|l| l == fatal), "`{fatal}` in\n{out}");
    // The play-level no_log covers the play's tasks.
    assert!(out.contains("TASK [play-level no_log]"), "{out}");
    // The registered result is still the task's whole result, as in
    // Ansible: only its display is hidden.
    assert!(out.contains("\"msg\": \"rc=3\""), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copied.txt")).expect("copied"),
        "nolog-copy-c0d5\n"
    );
}

#[test]
fn no_log_with_verbose_prints_only_the_notice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = fixture_run(dir.path()).args(["-vvv"]).run().expect_code(2);
    assert_hidden(&run);
    let out = run.stdout();
    let ansible = fixture("ansible-2.18-v.txt");
    // ansible-playbook leaves out `changed` for results that have none
    // (debug); herd always says it.
    for line in ansible.lines().filter(|l| l.contains("(item=")) {
        let prefix = line.trim_end_matches('}');
        assert!(
            out.lines().any(|l| l.starts_with(prefix)),
            "`{prefix}` in\n{out}"
        );
    }
    let changed = ansible
        .lines()
        .find(|l| l.starts_with("changed:"))
        .expect("ansible's copy line");
    assert!(out.lines().any(|l| l == changed), "`{changed}` in\n{out}");
}

#[test]
fn no_log_in_json_lines_marks_results_censored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = fixture_run(dir.path())
        .args(["--output", "jsonl", "-vvv"])
        .run()
        .expect_code(2);
    assert_hidden(&run);
    for task in ["loop item", "loop label", "templated no_log"] {
        let results = run.results(task);
        assert_eq!(results.len(), 1, "{task}: {}", run.stdout());
        let r = &results[0];
        assert_eq!(r["item"], "None", "{r}");
        assert_eq!(r["censored"], true, "{r}");
        assert_eq!(r["msg"], NOTICE, "{r}");
    }
    let diff = &run.results("diff")[0];
    assert_eq!(diff["status"], "changed", "{diff}");
    assert!(diff.get("diffs").is_none(), "{diff}");
    let failed = &run.results("play-level no_log")[0];
    assert_eq!(
        (&failed["status"], &failed["censored"]),
        (&"failed".into(), &true.into())
    );
}

#[test]
fn inventory_passwords_are_masked_wherever_they_would_be_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            (
                "inventory.ini",
                "localhost ansible_connection=local ansible_password=login-pw-8d2e ansible_become_password=become-pw-61aa\n",
            ),
            (
                "site.yml",
                "- hosts: localhost\n  gather_facts: no\n  tasks:\n    - name: show\n      debug:\n        msg: \"{{ ansible_password }} / {{ ansible_become_password }}\"\n    - name: loop\n      debug: msg=x\n      loop: [\"{{ ansible_password }}\"]\n    - name: fail\n      fail:\n        msg: \"bad {{ ansible_become_password }}\"\n",
            ),
        ],
    );
    for output in ["human", "jsonl"] {
        let run = Herd::play()
            .playbook("site.yml")
            .inventory("inventory.ini")
            .args(["-vvv"])
            .output(output)
            .current_dir(dir.path())
            .run()
            .expect_code(2);
        let all = format!("{}{}", run.stdout(), run.stderr());
        for secret in ["login-pw-8d2e", "become-pw-61aa"] {
            assert!(!all.contains(secret), "{output}: `{secret}` in\n{all}");
        }
        assert!(all.contains("******** / ********"), "{output}:\n{all}");
        assert!(all.contains("bad ********"), "{output}:\n{all}");
    }
}

/// Masking works on values, not on printed JSON: a password that is also
/// a key or a status word leaves every line valid JSON with its fields.
#[test]
fn a_password_that_looks_like_json_keys_keeps_json_lines_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            (
                "inventory.ini",
                "localhost ansible_connection=local ansible_password=status\n",
            ),
            (
                "site.yml",
                "- hosts: localhost\n  gather_facts: no\n  tasks:\n    - name: show\n      debug:\n        msg: \"{{ ansible_password }}\"\n",
            ),
        ],
    );
    let run = Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .jsonl()
        .current_dir(dir.path())
        .run()
        .expect_code(0);
    let shown = run.results("show");
    assert_eq!(shown[0]["status"], "ok", "{}", run.stdout());
    assert_eq!(shown[0]["output"]["msg"], "********", "{}", run.stdout());
}
