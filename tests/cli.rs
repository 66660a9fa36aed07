//! Command-line behaviour: exit codes, usage errors, `validate`, `inventory`.

use crate::support::Herd;

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let run = Herd::new(["run"]).run().expect_code(1);
    assert!(run.stderr().contains("PLAYBOOKS"), "{}", run.stderr());
    Herd::new(["--help"]).run().expect_code(0);
    Herd::new(["run", "x.yml", "--forks", "0"])
        .run()
        .expect_code(1);
}

#[test]
fn a_missing_playbook_is_a_load_error() {
    let run = Herd::new(["run", "no-such-playbook.yml"])
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("no-such-playbook.yml"),
        "{}",
        run.stderr()
    );
}

#[test]
fn validate_accepts_the_examples() {
    Herd::new([
        "validate",
        "playbooks/local-demo.yml",
        "-i",
        "inventories/local.ini",
    ])
    .run()
    .expect_code(0);
    let run = Herd::new([
        "validate",
        "playbooks/deploy-elasticsearch.yml",
        "-i",
        "inventories/elasticsearch.ini",
    ])
    .run()
    .expect_code(0);
    assert!(run.stdout().starts_with("ok:"), "{}", run.stdout());
    let run = Herd::new([
        "validate",
        "playbooks/bootstrap-node.yml",
        "-i",
        "inventories/bootstrap-node.ini",
    ])
    .run()
    .expect_code(0);
    assert!(run.stdout().starts_with("ok:"), "{}", run.stdout());
}

#[test]
fn validate_rejects_an_unknown_parameter_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::write_files(
        dir.path(),
        &[(
            "bad.yml",
            "- hosts: localhost\n  tasks:\n    - debug:\n        mesg: hi\n",
        )],
    );
    let run = Herd::new(["validate", "bad.yml"])
        .current_dir(dir.path())
        .run()
        .expect_code(1);
    let err = run.stderr();
    assert!(err.contains("bad.yml:4:9"), "{err}");
    assert!(err.contains("`mesg`"), "{err}");
    assert!(err.contains("did you mean `msg`"), "{err}");
}

#[test]
fn inventory_list_has_the_ansible_shape() {
    let run = Herd::new(["inventory", "-i", "inventories/elasticsearch.ini", "--list"])
        .run()
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    assert!(v["_meta"]["hostvars"].is_object(), "{v}");
    let children = v["all"]["children"].as_array().expect("all.children");
    assert!(children.iter().any(|c| c == "ungrouped"), "{v}");
    assert!(children.iter().any(|c| c == "elasticsearch"), "{v}");
    assert_eq!(
        v["es_masters"]["hosts"].as_array().map(std::vec::Vec::len),
        Some(3),
        "{v}"
    );
    let graph = Herd::new([
        "inventory",
        "-i",
        "inventories/elasticsearch.ini",
        "--graph",
    ])
    .run()
    .expect_code(0);
    assert!(graph.stdout().starts_with("@all:"), "{}", graph.stdout());
}

/// ansible-playbook 2.18 stops with status 1 when `--limit` matches none of
/// the inventory's hosts (recorded in the fixture); herd used to run the
/// plays on nobody and exit 0.
#[test]
fn a_limit_matching_no_host_is_an_error_like_ansible() {
    let fixture = crate::support::repo().join("tests/fixtures/ansible/limit-matches-nothing");
    let read = |name: &str| std::fs::read_to_string(fixture.join(name)).unwrap_or_default();
    let ansible_rc: i32 = read("ansible-2.18.rc").trim().parse().unwrap_or(-1);
    assert_eq!(ansible_rc, 1);
    assert!(read("ansible-2.18.stderr").contains("leaves us with no hosts to target"));
    let run = Herd::new([
        "run",
        "-i",
        "inventory.ini",
        "--limit",
        "nosuchhost",
        "site.yml",
    ])
    .current_dir(&fixture)
    .run()
    .expect_code(ansible_rc);
    assert!(
        run.stderr()
            .contains("--limit `nosuchhost` leaves no hosts to target"),
        "{}",
        run.stderr()
    );
    assert!(!run.stdout().contains("never reached"), "{}", run.stdout());
    // The implicit localhost is not an inventory host: ansible-playbook
    // 2.18 exits 1 for `--limit localhost` here too.
    Herd::new([
        "run",
        "-i",
        "inventory.ini",
        "--limit",
        "localhost",
        "site.yml",
    ])
    .current_dir(&fixture)
    .run()
    .expect_code(1);
    // A limit that matches a host still runs.
    Herd::new(["run", "-i", "inventory.ini", "--limit", "h1", "site.yml"])
        .current_dir(&fixture)
        .run()
        .expect_code(0);
}

/// `-vvv` adds a line per connection and `-vvvv` a line per command, on
/// stderr; a stderr that is not a terminal (a pipe here, a cron job's log
/// in production) gets them without colour codes.
#[test]
fn the_verbose_levels_log_connections_and_commands_without_colour_codes_in_a_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::write_files(
        dir.path(),
        &[
            ("inventory.ini", "box ansible_connection=local\n"),
            (
                "site.yml",
                "- hosts: box\n  gather_facts: no\n  tasks:\n    - command: \"true\"\n",
            ),
        ],
    );
    let run_at = |level: &str| {
        Herd::play()
            .playbook("site.yml")
            .inventory("inventory.ini")
            .args([level])
            .env_remove("HERD_LOG")
            .current_dir(dir.path())
            .run()
            .expect_code(0)
            .stderr()
    };
    let v = run_at("-v");
    assert!(!v.contains("local connection"), "{v}");
    let vvv = run_at("-vvv");
    assert!(vvv.contains("local connection"), "{vvv}");
    let vvvv = run_at("-vvvv");
    assert!(vvvv.contains("local connection"), "{vvvv}");
    assert!(
        vvvv.lines().count() > vvv.lines().count(),
        "{vvv}\n---\n{vvvv}"
    );
    for err in [&vvv, &vvvv] {
        assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
    }
}
