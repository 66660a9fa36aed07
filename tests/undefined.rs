//! Undefined variables behave as in Ansible 2.18 everywhere: module
//! arguments, `when`, loops, `changed_when`/`failed_when`/`until`,
//! `notify`, includes, `debug`, lookups, `set_fact`, `environment`,
//! `become_user`, lazy and cyclic variables, `default`/`omit`, under
//! `ignore_errors`, in loops, blocks and handlers.
//!
//! Every playbook in `tests/fixtures/undefined/cases` was run by
//! ansible-playbook 2.18 and what it did is recorded in
//! `tests/fixtures/undefined/ansible-2.18.json` (by `record/record.py`).
//! Here each runs through herd, on `localhost ansible_connection=local`,
//! and is compared: exit code, recap counters, each task's status (and its
//! loop items'), what `debug` printed, the files left behind, and that a
//! failure message names the missing variable and the task's
//! `file:line:col` without printing any variable's value.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::support::{repo, Herd, Run};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/undefined")
}

fn recorded() -> Value {
    let path = fixtures().join("ansible-2.18.json");
    let text = std::fs::read_to_string(&path).expect("recorded Ansible results");
    serde_json::from_str(&text).expect("recorded results are JSON")
}

/// The value every case that must not leak defines (see the cases).
const SECRET: &str = "s3cr3t";

/// Where herd differs from ansible-core 2.18 on purpose: the case, herd's
/// exit code, the variable herd's message must name, and why.
const KNOWN_DIFFERENCES: &[(&str, i32, &str, &str)] = &[
    (
        "meta_when.yml",
        2,
        "nosuch_end",
        "ansible-core stops the whole run (exit 1) when the `when` of a meta \
         task fails; herd fails the host, as for any other task",
    ),
    (
        "vars_files_undefined.yml",
        2,
        "nosuch_dir",
        "ansible-core skips a vars_files entry it cannot render and says so \
         only with -vvv; herd fails the play's hosts, naming the variable",
    ),
];

/// A known difference: herd's own expectation, checked as strictly.
fn compare_known(case: &str, rc: i32, name: &str) -> Vec<String> {
    let (_dir, run) = run_case(case);
    let text = format!("{}{}", run.stdout(), run.stderr());
    let mut diffs = Vec::new();
    if run.code() != rc {
        diffs.push(format!(
            "{case}: exit code {} (herd's own {rc})",
            run.code()
        ));
    }
    if !text.contains(&format!("`{name}` is undefined")) {
        diffs.push(format!("{case}: output does not name `{name}`: {text}"));
    }
    if !text.contains(&format!("{case}:")) {
        diffs.push(format!("{case}: output does not say where: {text}"));
    }
    if text.contains(SECRET) {
        diffs.push(format!("{case}: a variable's value was printed"));
    }
    diffs
}

/// Copy the cases into a fresh directory and run `case` there.
fn run_case(case: &str) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("cases");
    std::fs::create_dir_all(&work).expect("mkdir");
    for entry in std::fs::read_dir(fixtures().join("cases")).expect("cases dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), work.join(entry.file_name())).expect("copy case");
    }
    std::fs::write(
        dir.path().join("inventory.ini"),
        "localhost ansible_connection=local\n",
    )
    .expect("inventory");
    let run = Herd::play()
        .playbook(case)
        .inventory("../inventory.ini")
        .jsonl()
        .current_dir(&work)
        .run();
    (dir, run)
}

/// One task's result as herd reported it, shaped like the recording:
/// loop items gathered under their task.
#[derive(Debug)]
struct TaskResult {
    task: String,
    status: String,
    msg: Option<String>,
    items: Vec<(String, Option<String>)>,
    output: Option<Value>,
}

fn herd_results(run: &Run) -> Vec<TaskResult> {
    let mut out: Vec<TaskResult> = Vec::new();
    // Whether the last result is a loop whose items are still arriving.
    let mut open_loop = false;
    for e in run.events() {
        match e["event"].as_str() {
            Some("task_start") => open_loop = false,
            Some("host_result") => {}
            _ => continue,
        }
        if e["event"] != "host_result" {
            continue;
        }
        let task = e["task"].as_str().unwrap_or_default().to_string();
        let status = e["status"].as_str().unwrap_or_default().to_string();
        let msg = e["msg"].as_str().map(str::to_string);
        let output = e.get("output").cloned();
        let is_item = e.get("item").is_some();
        match out.last_mut() {
            Some(last) if open_loop && last.task == task => {
                if is_item {
                    last.items.push((status, msg));
                } else {
                    // A loop ended early by an error: the task's own result.
                    last.status = status;
                    last.msg = msg;
                    open_loop = false;
                }
                continue;
            }
            _ => {}
        }
        if is_item {
            open_loop = true;
            out.push(TaskResult {
                task,
                status: String::new(),
                msg: None,
                items: vec![(status, msg)],
                output: None,
            });
        } else {
            out.push(TaskResult {
                task,
                status,
                msg,
                items: Vec::new(),
                output,
            });
        }
    }
    // A loop that ran to the end has no result of its own: its status is
    // what its items add up to, as in Ansible.
    for r in &mut out {
        if r.status.is_empty() {
            let has = |s: &str| r.items.iter().any(|(st, _)| st == s);
            r.status = if has("failed") {
                "failed"
            } else if has("ignored") {
                "ignored"
            } else if r.items.iter().all(|(st, _)| st == "skipped") {
                "skipped"
            } else if has("changed") {
                "changed"
            } else {
                "ok"
            }
            .to_string();
        }
    }
    out
}

/// The variable (or attribute) Ansible's message says is missing.
fn missing_names(ansible_msg: &str) -> Vec<String> {
    let patterns = [
        r#""(hostvars\['[^']+'\])" is undefined"#,
        r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined",
        r"has no attribute '([A-Za-z_][A-Za-z0-9_]*)'",
        r"No variable found with this name: ([A-Za-z_][A-Za-z0-9_]*)",
    ];
    for p in patterns {
        let re = regex::Regex::new(p).expect("valid pattern");
        let names: Vec<String> = re
            .captures_iter(ansible_msg)
            .map(|c| c[1].to_string())
            .collect();
        if !names.is_empty() {
            return names;
        }
    }
    Vec::new()
}

/// `file:line:` of the task named `task` in the case file (the line of its
/// `- name:` entry, or of the `- ...` entry holding it).
fn task_line(case_file: &Path, task: &str) -> Option<usize> {
    let text = std::fs::read_to_string(case_file).ok()?;
    text.lines()
        .position(|l| l.trim_start() == format!("- name: {task}"))
        .map(|i| i + 1)
}

/// Ansible's debug output as herd prints it: Ansible's text rendering
/// turns `1` into `"1"` for `var=`; herd keeps the number.
fn same_output(ansible: &Value, herd: &Value) -> bool {
    match (ansible, herd) {
        (Value::String(a), Value::Number(n)) => *a == n.to_string(),
        (Value::Object(a), Value::Object(h)) => {
            a.len() == h.len()
                && a.iter()
                    .all(|(k, v)| h.get(k).is_some_and(|hv| same_output(v, hv)))
        }
        (a, h) => a == h,
    }
}

/// Compare one case; every difference found is returned, not just the first.
fn compare(case: &str, ansible: &Value) -> Vec<String> {
    let (dir, run) = run_case(case);
    let mut diffs = Vec::new();
    let stdout = run.stdout();
    let stderr = run.stderr();
    let mut d = |what: String| diffs.push(format!("{case}: {what}"));
    if stdout.contains(SECRET) || stderr.contains(SECRET) {
        d("a variable's value was printed".into());
    }
    // Ansible's 4 is a playbook that did not load; herd says 1 for that.
    let want_rc = match ansible["rc"].as_i64() {
        Some(4) => 1,
        Some(rc) => rc,
        None => -1,
    };
    if i64::from(run.code()) != want_rc {
        d(format!(
            "exit code {} (Ansible {}); stderr: {stderr}",
            run.code(),
            ansible["rc"]
        ));
    }
    if let Some(recap) = ansible["recap"].as_object() {
        let got: Map<String, Value> = run
            .events()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "recap")
            .and_then(|e| e["hosts"]["localhost"].as_object().cloned())
            .unwrap_or_default();
        for (ours, theirs) in [
            ("ok", "ok"),
            ("changed", "changed"),
            ("failed", "failures"),
            ("skipped", "skipped"),
            ("rescued", "rescued"),
            ("ignored", "ignored"),
        ] {
            if got.get(ours) != recap.get(theirs) {
                d(format!(
                    "recap {ours}={} (Ansible {})",
                    got.get(ours).unwrap_or(&Value::Null),
                    recap[theirs]
                ));
            }
        }
    }
    let ours = herd_results(&run);
    let theirs = ansible["results"].as_array().cloned().unwrap_or_default();
    if ours.len() != theirs.len() {
        d(format!(
            "{} task results (Ansible {}): {:?}",
            ours.len(),
            theirs.len(),
            ours.iter()
                .map(|r| format!("{}={}", r.task, r.status))
                .collect::<Vec<_>>()
        ));
    }
    let case_file = dir.path().join("cases").join(case);
    for (o, t) in ours.iter().zip(theirs.iter()) {
        let task = t["task"].as_str().unwrap_or_default();
        if o.task != task {
            d(format!("task `{}` where Ansible ran `{task}`", o.task));
            continue;
        }
        if o.status != t["status"] {
            d(format!(
                "task `{task}`: {} (Ansible {}); msg: {:?}",
                o.status, t["status"], o.msg
            ));
        }
        let their_items = t["items"].as_array().cloned().unwrap_or_default();
        let our_items: Vec<&str> = o
            .items
            .iter()
            .map(|(s, _)| if s == "ignored" { "failed" } else { s.as_str() })
            .collect();
        let want_items: Vec<&str> = their_items
            .iter()
            .map(|i| i["status"].as_str().unwrap_or_default())
            .collect();
        if our_items != want_items {
            d(format!(
                "task `{task}`: items {our_items:?} (Ansible {want_items:?})"
            ));
        }
        if let (Some(want), Some(got)) = (t.get("output"), &o.output) {
            if !same_output(want, got) {
                d(format!(
                    "task `{task}`: debug printed {got} (Ansible {want})"
                ));
            }
        }
        // A failure names what is missing, and where the task is.
        let failures = std::iter::once((t["msg"].as_str(), o.msg.as_deref())).chain(
            their_items
                .iter()
                .zip(o.items.iter())
                .map(|(ti, (_, m))| (ti["msg"].as_str(), m.as_deref())),
        );
        for (want, got) in failures {
            let Some(want) = want else { continue };
            let mut names = missing_names(want);
            if want.contains("recursive loop detected") {
                names = vec!["cycle_a".into(), "cycle_b".into()];
            }
            if names.is_empty() {
                continue;
            }
            let got = got.unwrap_or_default();
            for n in &names {
                if !got.contains(n.as_str()) {
                    d(format!("task `{task}`: message does not name `{n}`: {got}"));
                }
            }
            if let Some(line) = task_line(&case_file, task) {
                let at = format!("{case}:{line}:");
                if !got.contains(&at) {
                    d(format!("task `{task}`: message does not say `{at}`: {got}"));
                }
            }
        }
    }
    let out_dir = dir.path().join("cases/out");
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .map(|rd| {
            rd.filter_map(std::result::Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let want_files: Vec<String> = ansible["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if files != want_files {
        d(format!(
            "files {files:?} left in out/ (Ansible {want_files:?})"
        ));
    }
    diffs
}

fn check(case: &str) {
    if let Some((_, rc, name, _)) = KNOWN_DIFFERENCES.iter().find(|k| k.0 == case) {
        let diffs = compare_known(case, *rc, name);
        assert!(diffs.is_empty(), "{}", diffs.join("\n"));
        return;
    }
    let data = recorded();
    let ansible = &data["cases"][case];
    assert!(ansible.is_object(), "{case} is not recorded");
    let diffs = compare(case, ansible);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// Every recorded case, with all differences listed at once.
#[test]
fn every_case_matches_ansible() {
    let data = recorded();
    let cases = data["cases"].as_object().expect("cases");
    assert!(cases.len() >= 30, "the recording has {} cases", cases.len());
    let diffs: Vec<String> = cases
        .iter()
        .flat_map(
            |(case, ansible)| match KNOWN_DIFFERENCES.iter().find(|k| k.0 == case) {
                Some((_, rc, name, _)) => compare_known(case, *rc, name),
                None => compare(case, ansible),
            },
        )
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// `debug: msg="{{ nosuch }}"` printed "Hello world!" (the value became null).
#[test]
fn whole_value_argument_fails() {
    check("debug_msg_whole.yml");
}

/// `file: ... mode="{{ secret_mode }}"` created the file 0644, changed.
#[test]
fn undefined_mode_fails_and_touches_nothing() {
    check("file_mode_undefined.yml");
}

/// `loop: "{{ pkgs_typo }}"` ran zero times without a word.
#[test]
fn loop_over_undefined_fails() {
    check("loop_undefined.yml");
}

/// `when: deploy_enabeld` skipped the task.
#[test]
fn when_on_undefined_fails() {
    check("when_undefined.yml");
}

/// A failing `when` on a meta task fails the host (see KNOWN_DIFFERENCES).
#[test]
fn meta_when_on_undefined_fails_the_host() {
    check("meta_when.yml");
}

/// `a: "{{ b }}"`, `b: "{{ a }}"` is an error naming both, at once.
#[test]
fn variable_cycle_is_named() {
    check("cycle.yml");
}

/// `herd validate` needs no variable values: every case but the one with a
/// templated `import_tasks` (which nothing can load) validates.
#[test]
fn validate_does_not_need_variable_values() {
    let data = recorded();
    for (case, ansible) in data["cases"].as_object().expect("cases") {
        let dir = fixtures().join("cases");
        let run = Herd::new([
            "validate",
            case.as_str(),
            "-i",
            repo()
                .join("inventories/local.ini")
                .to_str()
                .expect("utf-8"),
        ])
        .current_dir(&dir)
        .run();
        let want = if ansible["rc"] == 4 { 1 } else { 0 };
        assert_eq!(
            run.code(),
            want,
            "validate {case}:\n{}\n{}",
            run.stdout(),
            run.stderr()
        );
    }
}
