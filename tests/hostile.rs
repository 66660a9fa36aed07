//! Hostile values on local hosts: names and values that reach the host's
//! shell, and the bounds that keep a command or template from exhausting
//! the controller.

use crate::support::{run_in, write_files, Herd};

const ONE_HOST: &str = "h1 ansible_connection=local\n";

/// An `environment:` name from a variable used to be pasted after `export`
/// unquoted, so `A=1; touch <file>; B` ran `touch` on the host.
#[test]
fn an_environment_name_cannot_inject_a_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("injected");
    let envname = format!("envname=\"A=1; touch {}; B\"", marker.display());
    let run = run_in(
        dir.path(),
        ONE_HOST,
        "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: with env\n      command: 'true'\n      environment:\n        \"{{ envname }}\": v\n",
        &["-e", &envname],
    )
    .expect_code(2);
    assert!(!marker.exists(), "the injected command ran");
    let r = run.results("with env");
    let msg = r[0]["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("invalid environment variable name")
            && msg.contains("task `with env`")
            && msg.contains("site.yml:4:7"),
        "{msg}"
    );
    assert!(!msg.contains("touch"), "the value is printed: {msg}");
    // A good name still reaches the command.
    let run = run_in(
        dir.path(),
        ONE_HOST,
        "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: with env\n      shell: 'test \"$GOOD_1\" = \"a b;c\"'\n      environment:\n        \"{{ envname }}\": \"a b;c\"\n",
        &["-e", "envname=GOOD_1"],
    );
    run.expect_code(0);
}

/// A literal bad name is a load error at its key, before anything runs.
#[test]
fn a_literal_bad_environment_name_is_a_load_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[(
            "site.yml",
            "- hosts: localhost\n  tasks:\n    - command: 'true'\n      environment:\n        \"1A; reboot\": x\n",
        )],
    );
    let run = Herd::new(["validate", "site.yml"])
        .current_dir(dir.path())
        .run()
        .expect_code(1);
    assert!(
        run.stderr()
            .contains("not a valid environment variable name")
            && run.stderr().contains("site.yml:5:9"),
        "{}",
        run.stderr()
    );
}

/// `command: cat /dev/zero` used to grow the controller's memory until it
/// died; it now fails the task at the limit, quickly.
#[test]
fn a_command_printing_without_end_fails_at_the_output_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let run = run_in(
        dir.path(),
        ONE_HOST,
        "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: flood\n      command: cat /dev/zero\n    - name: flood stderr\n      shell: cat /dev/zero >&2\n      ignore_errors: true\n",
        &["--max-command-output", "1048576"],
    )
    .expect_code(2);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let msg = run.results("flood")[0]["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("stdout passed the limit of 1048576 bytes")
            && msg.contains("--max-command-output"),
        "{msg}"
    );
    // Zero is not a limit.
    Herd::new(["run", "site.yml", "--max-command-output", "0"])
        .current_dir(dir.path())
        .run()
        .expect_code(1);
}

/// User numbers at their extremes: `delay: nan` (rendered from a string)
/// panicked in `Duration::from_secs_f64`; a huge serial batch and command
/// timeout are taken as "all" and "no deadline".
#[test]
fn extreme_numbers_in_keywords_neither_panic_nor_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let run = run_in(
        dir.path(),
        "a ansible_connection=local\nb ansible_connection=local\nc ansible_connection=local\n",
        "- hosts: all\n  gather_facts: no\n  serial: [1, 9223372036854775807]\n  tasks:\n    - name: retry\n      command: 'true'\n      register: r\n      until: false\n      retries: 2\n      delay: nan\n      ignore_errors: true\n",
        &["--command-timeout", "18446744073709551615"],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    run.expect_code(0);
}

/// Five local hosts creating directories under one missing parent raced:
/// runs failed with `mkdir: cannot create directory ...: File exists`
/// (3 in 5 on a loaded machine). Ten runs, each on a fresh parent.
#[test]
fn five_local_hosts_creating_under_one_parent_do_not_race() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory: String = (1..=5)
        .map(|i| format!("h{i} ansible_connection=local\n"))
        .collect();
    for round in 0..10 {
        let parent = dir.path().join(format!("r{round}"));
        let playbook = format!(
            "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: dirs\n      file:\n        path: '{}/{{{{ inventory_hostname }}}}/a/b'\n        state: directory\n",
            parent.display()
        );
        let run = run_in(dir.path(), &inventory, &playbook, &[]);
        assert!(
            !run.stdout().contains("File exists"),
            "round {round}: {}",
            run.stdout()
        );
        run.expect_code(0);
        for i in 1..=5 {
            assert!(parent.join(format!("h{i}/a/b")).is_dir(), "round {round}");
        }
    }
}

/// `copy: src=/dev/zero` read the device for ever on the controller.
#[test]
fn a_controller_source_must_be_a_regular_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("out");
    let run = run_in(
        dir.path(),
        ONE_HOST,
        &format!(
            "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: copy zero\n      copy:\n        src: /dev/zero\n        dest: {}\n",
            dest.display()
        ),
        &[],
    )
    .expect_code(2);
    let msg = run.results("copy zero")[0]["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("not a regular file"), "{msg}");
    assert!(!dest.exists());
}
