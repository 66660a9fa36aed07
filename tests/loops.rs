//! Loops, lookups and the inventory-changing actions against ansible-core
//! 2.18: every playbook in `tests/fixtures/loops/cases` was run by
//! ansible-playbook and what it did is recorded in
//! `tests/fixtures/loops/ansible-2.18.json` (by `record/record.py`). Here
//! each runs through herd on the same local hosts and is compared, host
//! by host: exit code, recap counters, each task's status, its loop items
//! in order (status, label, what `debug` printed), and what `debug`
//! printed for tasks without a loop.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::support::{repo, Herd, Run};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/loops")
}

fn recorded() -> Value {
    let path = fixtures().join("ansible-2.18.json");
    let text = std::fs::read_to_string(&path).expect("recorded Ansible results");
    serde_json::from_str(&text).expect("recorded results are JSON")
}

/// The inventory and environment `record.py` gives ansible-playbook.
const INVENTORY: &str = "[web]\nh1 ansible_connection=local\nh2 ansible_connection=local\n";
const ENV: (&str, &str) = ("LOOPS_FIXTURE_ENV", "from-env");

/// Tasks whose items herd gives in another order on purpose: Python's
/// glob lists files in directory order, herd sorts them so runs repeat.
const UNORDERED_ITEMS: &[&str] = &["with_fileglob"];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Copy the cases into a fresh `cases` directory and run `case` there.
fn run_case(case: &str) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("cases");
    copy_dir(&fixtures().join("cases"), &work);
    std::fs::write(dir.path().join("inventory.ini"), INVENTORY).expect("inventory");
    let run = Herd::new(["run", case, "-i", "../inventory.ini", "--output", "jsonl"])
        .env(ENV.0, ENV.1)
        .current_dir(&work)
        .run();
    (dir, run)
}

/// One task's result on one host, shaped like the recording.
#[derive(Debug, Default)]
struct TaskResult {
    task: String,
    status: String,
    /// (status, label, debug's `msg`)
    items: Vec<(String, String, Value)>,
    output: Option<Value>,
}

/// A path under some run's `cases` directory, written the same for both.
fn normalize(label: &str) -> String {
    let re = regex::Regex::new(r"/[^\s'\x22]*/cases/").expect("valid pattern");
    re.replace_all(label, "<cases>/").into_owned()
}

/// herd's results of `host`, loop items gathered under their task.
fn herd_results(run: &Run, host: &str) -> Vec<TaskResult> {
    let mut out: Vec<TaskResult> = Vec::new();
    let mut open_loop = false;
    for e in run.events() {
        if e["event"] == "task_start" {
            open_loop = false;
        }
        if e["event"] != "host_result" || e["host"] != host {
            continue;
        }
        let task = e["task"].as_str().unwrap_or_default().to_string();
        let status = e["status"].as_str().unwrap_or_default().to_string();
        let msg = e["output"]["msg"].clone();
        if let Some(label) = e["item"].as_str() {
            let item = (status, normalize(label), msg);
            match out.last_mut() {
                Some(last) if open_loop && last.task == task => last.items.push(item),
                _ => {
                    open_loop = true;
                    out.push(TaskResult {
                        task,
                        items: vec![item],
                        ..TaskResult::default()
                    });
                }
            }
            continue;
        }
        match out.last_mut() {
            // A loop ended early by an error: the task's own result.
            Some(last) if open_loop && last.task == task => last.status = status,
            _ => out.push(TaskResult {
                task,
                status,
                output: e.get("output").map(|o| o["msg"].clone()),
                ..TaskResult::default()
            }),
        }
        open_loop = false;
    }
    // A loop that ran to the end has no result of its own: its status is
    // what its items add up to, as in Ansible.
    for r in &mut out {
        if r.status.is_empty() {
            let has = |s: &str| r.items.iter().any(|(st, _, _)| st == s);
            r.status = if has("failed") {
                "failed"
            } else if has("ignored") {
                "ignored"
            } else if r.items.iter().all(|(st, _, _)| st == "skipped") {
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

fn recap_of(run: &Run) -> Map<String, Value> {
    run.events()
        .into_iter()
        .rev()
        .find(|e| e["event"] == "recap")
        .and_then(|e| e["hosts"].as_object().cloned())
        .unwrap_or_default()
}

fn compare_items(task: &str, ours: &TaskResult, theirs: &Value, d: &mut Vec<String>) {
    let mut want: Vec<(String, String, Value)> = theirs["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let label = i["label"].as_str().unwrap_or_default();
            (
                i["status"].as_str().unwrap_or_default().to_string(),
                normalize(label),
                i["output"]["msg"].clone(),
            )
        })
        .collect();
    let mut got: Vec<(String, String, Value)> = ours
        .items
        .iter()
        .map(|(s, l, m)| {
            let s = if s == "ignored" { "failed" } else { s };
            (s.to_string(), l.clone(), m.clone())
        })
        .collect();
    if UNORDERED_ITEMS.contains(&task) {
        want.sort_by(|a, b| a.1.cmp(&b.1));
        got.sort_by(|a, b| a.1.cmp(&b.1));
    }
    if got != want {
        d.push(format!("task `{task}`: items {got:?}\n  Ansible {want:?}"));
    }
}

/// Compare one case; every difference found is returned.
fn compare(case: &str, ansible: &Value) -> Vec<String> {
    let (_dir, run) = run_case(case);
    let mut d = Vec::new();
    let want_rc = match ansible["rc"].as_i64() {
        Some(4) => 1,
        Some(rc) => rc,
        None => -1,
    };
    if i64::from(run.code()) != want_rc {
        d.push(format!(
            "exit code {} (Ansible {}); stderr: {}",
            run.code(),
            ansible["rc"],
            run.stderr()
        ));
    }
    let recap = recap_of(&run);
    let want_recap = ansible["recap"].as_object().cloned().unwrap_or_default();
    for (host, counters) in &want_recap {
        for (ours, theirs) in [
            ("ok", "ok"),
            ("changed", "changed"),
            ("failed", "failures"),
            ("skipped", "skipped"),
            ("ignored", "ignored"),
        ] {
            let got = recap.get(host).and_then(|h| h.get(ours)).cloned();
            if got.as_ref() != counters.get(theirs) {
                d.push(format!(
                    "{host}: recap {ours}={} (Ansible {})",
                    got.unwrap_or(Value::Null),
                    counters[theirs]
                ));
            }
        }
    }
    let results = ansible["results"].as_array().cloned().unwrap_or_default();
    for host in want_recap.keys() {
        let theirs: Vec<&Value> = results.iter().filter(|r| r["host"] == *host).collect();
        let ours = herd_results(&run, host);
        let names = |v: Vec<String>| v.join(", ");
        if ours.len() != theirs.len() {
            d.push(format!(
                "{host}: {} task results [{}] (Ansible {} [{}])",
                ours.len(),
                names(
                    ours.iter()
                        .map(|r| format!("{}={}", r.task, r.status))
                        .collect()
                ),
                theirs.len(),
                names(
                    theirs
                        .iter()
                        .map(|r| format!("{}={}", r["task"], r["status"]))
                        .collect()
                )
            ));
        }
        for (o, t) in ours.iter().zip(theirs) {
            let task = t["task"].as_str().unwrap_or_default();
            if o.task != task {
                d.push(format!(
                    "{host}: task `{}` where Ansible ran `{task}`",
                    o.task
                ));
                continue;
            }
            if o.status != t["status"] {
                d.push(format!(
                    "{host}: task `{task}`: {} (Ansible {})",
                    o.status, t["status"]
                ));
            }
            compare_items(task, o, t, &mut d);
            if let (Some(want), Some(got)) = (t.get("output"), &o.output) {
                if want["msg"] != *got {
                    d.push(format!(
                        "{host}: task `{task}`: debug printed {got} (Ansible {})",
                        want["msg"]
                    ));
                }
            }
        }
    }
    d.into_iter().map(|s| format!("{case}: {s}")).collect()
}

fn check(case: &str) {
    let data = recorded();
    let ansible = &data["cases"][case];
    assert!(ansible.is_object(), "{case} is not recorded");
    let diffs = compare(case, ansible);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn every_case_is_recorded() {
    let data = recorded();
    let cases = data["cases"].as_object().expect("cases");
    assert!(cases.len() >= 12, "the recording has {} cases", cases.len());
}

#[test]
fn with_items_and_with_list() {
    check("with_items.yml");
}

#[test]
fn with_dict() {
    check("with_dict.yml");
}

#[test]
fn with_nested_and_together() {
    check("with_nested.yml");
}

#[test]
fn with_sequence() {
    check("with_sequence.yml");
}

#[test]
fn with_subelements() {
    check("with_subelements.yml");
}

#[test]
fn with_file_lookups() {
    check("with_files.yml");
}

#[test]
fn loop_control_in_full() {
    check("loop_control.yml");
}

#[test]
fn lookup_and_query_forms() {
    check("lookups.yml");
}

#[test]
fn loop_errors() {
    check("errors.yml");
}

#[test]
fn include_vars() {
    check("include_vars.yml");
}

#[test]
fn add_host() {
    check("add_host.yml");
}

#[test]
fn group_by() {
    check("group_by.yml");
}
