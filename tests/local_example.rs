//! The bundled local example (`playbooks/local-demo.yml`) run for real on
//! the controller: every core module, loops, when, register, handlers,
//! block/rescue, tags, check and diff mode, and idempotency.

use std::fs;
use std::path::Path;

use crate::support::Herd;

/// `herd run` of the example on the controller, writing under `target`.
fn demo(target: &Path) -> Herd {
    Herd::play()
        .playbook("playbooks/local-demo.yml")
        .inventory("inventories/local.ini")
        .vars(format!("target_dir={}", target.display()))
}

#[test]
fn first_run_changes_second_run_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("demo");
    let first = demo(&target).jsonl().run().expect_code(0);
    assert!(first.stat("localhost", "changed") > 5, "{}", first.stdout());
    assert_eq!(first.stat("localhost", "failed"), 0);
    assert_eq!(first.stat("localhost", "rescued"), 1);
    assert_eq!(first.stat("localhost", "ignored"), 1);
    let reloaded = first.results("the handler already ran");
    let flushed: Vec<String> = first
        .events()
        .iter()
        .filter(|e| e["event"] == "task_start")
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let handler_at = flushed
        .iter()
        .position(|n| n == "reload app")
        .expect("handler ran");
    let check_at = flushed
        .iter()
        .position(|n| n == "the handler already ran")
        .expect("task ran");
    assert!(
        handler_at < check_at,
        "meta: flush_handlers ran the handler first: {flushed:?}"
    );
    assert_eq!(reloaded.len(), 1);
    let ignored = first.results("a failure that is ignored");
    assert_eq!(ignored[0]["status"], "ignored");
    assert!(ignored[0]["msg"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Linux is fine"));

    let conf = fs::read_to_string(target.join("etc/app.conf")).expect("app.conf");
    assert!(conf.contains("port = 8080"), "{conf}");
    assert!(conf.contains("url = http://localhost:8080/"), "{conf}");
    assert!(conf.contains("cache = on\nmetrics = off\n"), "{conf}");
    assert_eq!(
        fs::read_to_string(target.join("etc/banner.txt")).expect("banner"),
        "demo listens on 8080\n"
    );
    assert!(fs::read_to_string(target.join("etc/settings.ini"))
        .expect("settings")
        .contains("max_connections=512"));
    assert!(fs::read_to_string(target.join("etc/hosts.extra"))
        .expect("hosts.extra")
        .contains("# BEGIN ANSIBLE MANAGED BLOCK\n10.0.0.1 es-master-1\n"));
    assert_eq!(
        fs::read_link(target.join("current.conf")).expect("link"),
        target.join("etc/app.conf")
    );
    assert!(target.join("data/initialized").exists());
    assert!(target.join("data/rescued.txt").exists());
    assert!(target.join("data/reloaded").exists(), "handler ran");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(target.join("bin/demo-script.sh"))
        .expect("script")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let mode = fs::metadata(target.join("etc/app.conf"))
        .expect("conf")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    let debug = first.results("show the enabled features");
    assert_eq!(debug[0]["output"]["msg"], "enabled: cache");
    let skipped = first.results("metrics are off, so this is skipped");
    assert_eq!(skipped[0]["status"], "skipped");
    assert!(
        first.results("only with --tags extra").is_empty(),
        "never-tagged task ran"
    );

    let second = demo(&target).jsonl().run().expect_code(0);
    assert_eq!(
        second.stat("localhost", "changed"),
        0,
        "{}",
        second.stdout()
    );
    assert_eq!(second.stat("localhost", "failed"), 0);
    assert!(
        second.results("reload app").is_empty(),
        "handler ran without a change"
    );
}

#[test]
fn check_mode_on_a_fresh_target_changes_nothing_and_reports_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("fresh");
    let run = demo(&target).jsonl().check().diff().run().expect_code(0);
    assert!(!target.exists(), "check mode created {}", target.display());
    assert!(run.stat("localhost", "changed") > 5, "{}", run.stdout());
    let template = run.results("app config from a template");
    assert_eq!(template[0]["status"], "changed");
    let diff = &template[0]["diffs"][0];
    assert!(
        diff["after"].as_str().unwrap_or("").contains("port = 8080"),
        "{template:?}"
    );
    let command = run.results("initialise once");
    assert_eq!(
        command[0]["status"], "skipped",
        "commands can't be predicted: {command:?}"
    );
}

#[test]
fn diff_mode_shows_a_unified_diff_in_human_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("diff");
    demo(&target).jsonl().run().expect_code(0);
    fs::write(target.join("etc/settings.ini"), "max_connections=10\n").expect("edit");
    let run = demo(&target).diff().run().expect_code(0);
    let out = run.stdout();
    assert!(out.contains("-max_connections=10"), "{out}");
    assert!(out.contains("+max_connections=512"), "{out}");
    assert!(out.contains("PLAY RECAP"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "escape codes without a terminal: {out:?}"
    );
}

#[test]
fn tags_select_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("tags");
    let run = demo(&target)
        .jsonl()
        .args(["--tags", "files,extra"])
        .run()
        .expect_code(0);
    assert!(target.join("etc").is_dir());
    assert!(
        !target.join("etc/app.conf").exists(),
        "config task is not tagged files"
    );
    assert_eq!(run.results("only with --tags extra").len(), 1);
    let run = demo(&target)
        .jsonl()
        .args(["--skip-tags", "config"])
        .run()
        .expect_code(0);
    assert!(!target.join("etc/app.conf").exists());
    assert!(run.results("app config from a template").is_empty());
}
