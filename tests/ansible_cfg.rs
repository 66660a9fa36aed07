//! A project directory with an `ansible.cfg`, run through the built binary
//! from inside it: the file's `inventory`, `remote_user`, `forks`, `gathering`
//! apply without flags, `ANSIBLE_*` override the file, and flags override both.

use std::path::Path;

use crate::support::{write_files, Herd};

const CFG: &str = "\
# project settings
[defaults]
inventory = inventory/hosts.ini
remote_user = deploy
forks = 3
gathering = explicit
retry_files_enabled = False

[ssh_connection]
pipelining = True
";

const HOSTS: &str = "\
[local]
box ansible_connection=local

[web]
web1 ansible_host=127.0.0.1 ansible_port=1
";

const OTHER_HOSTS: &str = "[other]\nother1 ansible_connection=local\n";

const PLAYBOOK: &str = "\
- hosts: local
  tasks:
    - name: say
      debug:
        msg: from the project
";

fn project() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    // A world-writable directory is skipped as an ansible.cfg source.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    write_files(
        tmp.path(),
        &[
            ("ansible.cfg", CFG),
            ("inventory/hosts.ini", HOSTS),
            ("other.ini", OTHER_HOSTS),
            ("site.yml", PLAYBOOK),
        ],
    );
    tmp
}

fn list_hosts(run: &crate::support::Run) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    let mut hosts: Vec<String> = v["_meta"]["hostvars"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    hosts.sort();
    hosts
}

fn herd_in(dir: &Path, args: &[&str]) -> Herd {
    Herd::new(args)
        .current_dir(dir)
        .env("HOME", dir.join("home"))
}

#[test]
fn inventory_list_uses_the_cfg_inventory_without_dash_i() {
    let p = project();
    let run = herd_in(p.path(), &["inventory", "--list"])
        .run()
        .expect_code(0);
    assert_eq!(list_hosts(&run), ["box", "web1"]);
    // Settings herd does not act on are named once, with the file.
    let stderr = run.stderr();
    assert_eq!(stderr.matches("retry_files_enabled").count(), 1, "{stderr}");
    assert!(stderr.contains("ansible.cfg:7"), "{stderr}");
}

#[test]
fn env_overrides_the_file_and_dash_i_overrides_both() {
    let p = project();
    let run = herd_in(p.path(), &["inventory", "--list"])
        .env("ANSIBLE_INVENTORY", "other.ini")
        .run()
        .expect_code(0);
    assert_eq!(list_hosts(&run), ["other1"]);
    let run = herd_in(
        p.path(),
        &["inventory", "--list", "-i", "inventory/hosts.ini"],
    )
    .env("ANSIBLE_INVENTORY", "other.ini")
    .run()
    .expect_code(0);
    assert_eq!(list_hosts(&run), ["box", "web1"]);
}

#[test]
fn a_world_writable_project_dir_is_not_a_cfg_source() {
    use std::os::unix::fs::PermissionsExt;
    let p = project();
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = herd_in(p.path(), &["inventory", "--list"]).run();
    assert!(run.stderr().contains("world writable"), "{}", run.stderr());
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).expect("json");
    assert!(
        v["_meta"]["hostvars"].get("box").is_none(),
        "the cfg inventory was not used"
    );
}

#[test]
fn run_uses_the_cfg_inventory_and_gathering() {
    let p = project();
    let run = herd_in(p.path(), &["run", "site.yml", "--output", "jsonl"])
        .run()
        .expect_code(0);
    let results = run.results("say");
    assert_eq!(results.len(), 1, "{}", run.stdout());
    assert!(
        !run.stdout().contains("Gathering Facts"),
        "gathering = explicit: no facts task\n{}",
        run.stdout()
    );
    let validate = herd_in(p.path(), &["validate", "site.yml"])
        .run()
        .expect_code(0);
    assert!(
        validate.stdout().contains("2 host(s)"),
        "{}",
        validate.stdout()
    );
}

#[test]
fn forks_come_from_the_file_then_the_env_then_the_flag() {
    let p = project();
    write_files(
        p.path(),
        &[(
            "forks.yml",
            "- hosts: local\n  tasks:\n    - name: forks\n      debug:\n        var: ansible_forks\n",
        )],
    );
    let forks = |run: crate::support::Run| -> serde_json::Value {
        let results = run.results("forks");
        assert_eq!(results.len(), 1, "{}", run.stdout());
        results[0]["output"]["ansible_forks"].clone()
    };
    let base = || herd_in(p.path(), &["run", "forks.yml", "--output", "jsonl"]);
    assert_eq!(forks(base().run().expect_code(0)), 3);
    assert_eq!(
        forks(base().env("ANSIBLE_FORKS", "4").run().expect_code(0)),
        4
    );
    let flag = herd_in(
        p.path(),
        &["run", "forks.yml", "--output", "jsonl", "-f", "5"],
    )
    .env("ANSIBLE_FORKS", "4")
    .run()
    .expect_code(0);
    assert_eq!(forks(flag), 5);
    // Without a config, herd's own default.
    std::fs::remove_file(p.path().join("ansible.cfg")).expect("rm");
    let run = herd_in(
        p.path(),
        &[
            "run",
            "forks.yml",
            "--output",
            "jsonl",
            "-i",
            "inventory/hosts.ini",
        ],
    )
    .run()
    .expect_code(0);
    assert_eq!(forks(run), 20);
}

#[test]
fn a_bad_cfg_line_is_a_load_error_with_its_position() {
    let p = project();
    write_files(
        p.path(),
        &[("ansible.cfg", "[defaults]\nforks = 3\njunk\n")],
    );
    let run = herd_in(p.path(), &["inventory", "--list"])
        .run()
        .expect_code(1);
    assert!(run.stderr().contains("ansible.cfg:3:1"), "{}", run.stderr());
}

#[test]
fn forks_from_env_must_be_valid_even_when_the_file_is_fine() {
    let p = project();
    let run = herd_in(p.path(), &["run", "site.yml"])
        .env("ANSIBLE_FORKS", "many")
        .run()
        .expect_code(1);
    assert!(run.stderr().contains("ANSIBLE_FORKS"), "{}", run.stderr());
}

#[test]
fn a_become_method_other_than_sudo_fails_when_become_is_used() {
    let p = project();
    write_files(
        p.path(),
        &[(
            "b.yml",
            "- hosts: local\n  become: true\n  tasks:\n    - command: /bin/true\n",
        )],
    );
    let run = herd_in(p.path(), &["run", "b.yml"])
        .env("ANSIBLE_BECOME_METHOD", "su")
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("become_method `su`"),
        "{}",
        run.stderr()
    );
    // Without become the setting does no harm.
    herd_in(p.path(), &["run", "site.yml"])
        .env("ANSIBLE_BECOME_METHOD", "su")
        .run()
        .expect_code(0);
}
