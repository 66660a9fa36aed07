//! Keywords, action forms and module names Ansible projects use, each run
//! by `herd` and compared with what ansible-playbook 2.18 did on the same
//! files (recorded under `tests/fixtures/keywords/<case>/` by `record.sh`
//! there: `ansible.jsonl`, `ansible.rc`). Parser errors and `validate`
//! warnings are insta snapshots.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{repo, Herd, Run};

fn case_dir(case: &str) -> PathBuf {
    repo().join("tests/fixtures/keywords").join(case)
}

/// `herd run` on a recorded case (local connection), with the case's `args`.
fn run_case(case: &str) -> Run {
    let dir = case_dir(case);
    let mut args: Vec<String> = [
        "run",
        "site.yml",
        "-i",
        "inventory.ini",
        "--output",
        "jsonl",
    ]
    .iter()
    .map(std::string::ToString::to_string)
    .collect();
    if let Ok(extra) = std::fs::read_to_string(dir.join("args")) {
        args.extend(extra.split_whitespace().map(str::to_string));
    }
    Herd::new(args).current_dir(&dir).run()
}

/// (host, task, status, changed) of every host result, in order per host,
/// so that the interleaving of hosts (which differs by design) is ignored.
fn outcomes(events: &[Value]) -> Vec<(String, String, String, bool)> {
    let mut out: Vec<(String, String, String, bool)> = events
        .iter()
        .filter(|e| e["event"] == "host_result")
        .map(|e| {
            (
                e["host"].as_str().unwrap_or_default().to_string(),
                e["task"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
                e["changed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn recorded(case: &str) -> (Vec<Value>, i32) {
    let dir = case_dir(case);
    let text = std::fs::read_to_string(dir.join("ansible.jsonl")).expect("recorded ansible.jsonl");
    let events = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("recorded JSON line"))
        .collect();
    let rc = std::fs::read_to_string(dir.join("ansible.rc"))
        .expect("recorded ansible.rc")
        .trim()
        .parse()
        .expect("exit code");
    (events, rc)
}

fn recap_of(events: &[Value]) -> Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "recap")
        .map(|e| e["hosts"].clone())
        .unwrap_or(Value::Null)
}

/// Run `case` under herd and assert the same outcomes per host, the same
/// recap and the same exit code as the recorded ansible-playbook run.
fn same_as_ansible(case: &str) -> Run {
    let run = run_case(case);
    let (ansible, rc) = recorded(case);
    let herd = run.events();
    assert_eq!(
        outcomes(&herd),
        outcomes(&ansible),
        "{case}: per-host outcomes differ\n--- herd stderr\n{}",
        run.stderr()
    );
    assert_eq!(recap_of(&herd), recap_of(&ansible), "{case}: recap differs");
    assert_eq!(
        run.code(),
        rc,
        "{case}: exit code differs\n{}",
        run.stderr()
    );
    run
}

/// The `msg` of `host`'s result for `task` under herd.
fn msg(run: &Run, host: &str, task: &str) -> String {
    run.results(task)
        .iter()
        .find(|e| e["host"] == host)
        .and_then(|e| e["msg"].as_str())
        .unwrap_or_default()
        .to_string()
}

// ---- module names -------------------------------------------------------

#[test]
fn unimplemented_module_fails_only_the_host_that_reaches_it() {
    let run = same_as_ansible("unimplemented-module");
    assert_eq!(
        msg(&run, "one", "reached"),
        "module `yum` (ansible.builtin.dnf) is not implemented in herd"
    );
}

#[test]
fn unimplemented_module_is_a_validate_warning() {
    let run = Herd::new(["validate", "site.yml", "-i", "inventory.ini"])
        .current_dir(&case_dir("unimplemented-module"))
        .run()
        .expect_code(0);
    insta::assert_snapshot!(run.stderr());
}

// ---- action and local_action --------------------------------------------

#[test]
fn local_action_runs_on_localhost_and_action_on_the_host() {
    let run = same_as_ansible("local-action");
    for task in [
        "local_action free form",
        "local_action mapping",
        "local_action with args",
    ] {
        assert_eq!(
            run.results(task)[0]["delegated_to"],
            "localhost",
            "{task} was not delegated"
        );
    }
    assert_eq!(run.results("show")[0]["output"]["msg"], "one ghost two");
}

// ---- facts ----------------------------------------------------------------

/// The JSON type of a value, and for a mapping its keys: the "shape" two
/// machines share when their values differ.
fn shape(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
            keys.sort_unstable();
            format!("object{keys:?}")
        }
        Value::Array(a) => format!("array of {}", a.first().map(shape).unwrap_or_default()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

#[test]
fn facts_have_the_names_and_shapes_of_ansible_setup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = crate::support::run_in(
        dir.path(),
        "localhost ansible_connection=local\n",
        "- hosts: all\n  tasks:\n    - name: facts\n      debug: var=ansible_facts\n",
        &[],
    )
    .expect_code(0);
    let facts = run.results("facts")[0]["output"]["ansible_facts"].clone();
    let text = std::fs::read_to_string(case_dir("facts").join("ansible-setup.json"))
        .expect("recorded setup facts");
    let recorded: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("JSON");
    // Interface details vary by driver (`pciid`, `speed`, bridge members):
    // compare the keys every interface of that kind has.
    let optional = ["pciid", "speed", "id", "interfaces", "stp", "features"];
    for (key, want) in &recorded {
        let name = key.strip_prefix("ansible_").unwrap_or(key);
        let got = &facts[name];
        let (mut want, mut got) = (want.clone(), got.clone());
        for v in [&mut want, &mut got] {
            if let Value::Object(m) = v {
                m.retain(|k, _| !optional.contains(&k.as_str()));
            }
        }
        assert_eq!(shape(&got), shape(&want), "fact {key}: {got} vs {want}");
    }
    // Values that are the same on every Debian 12 machine.
    for key in [
        "distribution",
        "distribution_major_version",
        "pkg_mgr",
        "os_family",
        "system",
    ] {
        assert_eq!(facts[key], recorded[&format!("ansible_{key}")], "{key}");
    }
    assert_eq!(facts["lo"], recorded["ansible_lo"]);
    assert_eq!(facts["selinux"], recorded["ansible_selinux"]);
}

#[test]
fn gather_subset_and_local_facts_match_ansible() {
    same_as_ansible("facts");
    let run = run_case("facts");
    let (ansible, _) = recorded("facts");
    for task in ["network subset", "show local", "shapes"] {
        let want = ansible
            .iter()
            .find(|e| e["task"] == task)
            .map(|e| e["debug"].clone())
            .unwrap_or_default();
        assert_eq!(run.results(task)[0]["output"]["msg"], want, "{task}");
    }
}

// ---- meta -------------------------------------------------------------------

#[test]
fn meta_reset_connection_refresh_inventory_and_end_batch_match_ansible() {
    let run = same_as_ansible("meta");
    // Host `one` ended its batch before `end`; `two` (the next batch) did not.
    assert!(run.results("end").iter().all(|e| e["host"] == "two"));
}

// ---- become -------------------------------------------------------------------

#[test]
fn templated_become_is_decided_per_task_block_and_play() {
    let run = same_as_ansible("become");
    // The tasks that became tried sudo; the others ran as the connecting user.
    assert!(msg(&run, "localhost", "become true").contains("sudo"));
    assert_eq!(run.results("from play")[0]["status"], "ok");
}

// ---- vars_prompt ----------------------------------------------------------------

#[test]
fn vars_prompt_takes_defaults_and_extra_vars_without_a_terminal() {
    let run = same_as_ansible("vars-prompt");
    assert_eq!(run.results("show")[0]["output"]["msg"], "1.0 s3");
}

#[test]
fn vars_prompt_without_a_terminal_or_default_is_an_error_naming_it() {
    let run = Herd::new(["run", "site.yml", "-i", "inventory.ini"])
        .current_dir(&case_dir("vars-prompt"))
        .run()
        .expect_code(1);
    insta::assert_snapshot!(run.stderr());
}

// ---- module_defaults ------------------------------------------------------------

#[test]
fn module_defaults_fill_in_unset_arguments_innermost_first() {
    let run = same_as_ansible("module-defaults");
    assert_eq!(
        run.results("show")[0]["output"]["msg"],
        serde_json::json!(["/tmp", "/usr", "/", "/var"])
    );
    assert_eq!(
        run.results("debug default")[0]["output"]["msg"],
        "from the play"
    );
}

// ---- throttle and ignore_unreachable ---------------------------------------------

#[test]
fn collections_on_a_role_entry_is_a_keyword_not_a_parameter() {
    let run = same_as_ansible("role-entry-collections");
    let shown = &run.results("shelf : the role's parameter and no collections variable")[0];
    assert_eq!(
        shown["output"]["msg"], "books no collections variable",
        "{shown}"
    );
}

#[test]
fn throttle_and_ignore_unreachable_match_ansible() {
    let run = same_as_ansible("throttle-unreachable");
    assert_eq!(run.stat("ghost", "ignored"), 1);
    assert_eq!(run.stat("ghost", "unreachable"), 1);
    for host in ["one", "two"] {
        let r = run.results("one at a time");
        let status = r
            .iter()
            .find(|e| e["host"] == host)
            .map(|e| e["status"].clone());
        assert_eq!(
            status,
            Some(Value::from("ok")),
            "{host} ran alongside the other"
        );
    }
}

#[test]
fn task_and_block_any_errors_fatal_match_ansible() {
    // A failure inside a block with a rescue sends every host to the
    // rescue (only the failed one counts as rescued); a failure outside
    // one fails every host and ends the run, the next play included.
    let run = same_as_ansible("any-errors-fatal");
    assert_eq!(run.stat("one", "rescued"), 1);
    assert_eq!(run.stat("two", "rescued"), 0);
    assert!(run.results("after the failure").is_empty());
    assert_eq!(run.results("everyone goes on").len(), 3);
    assert!(run.results("the next play").is_empty());
}

#[test]
fn play_run_once_applies_to_every_task_of_the_play() {
    let run = same_as_ansible("play-run-once");
    assert_eq!(run.results("once for the play").len(), 1);
    assert_eq!(run.results("a task can still run everywhere").len(), 3);
}

// ---- delegate_facts -----------------------------------------------------------------

#[test]
fn delegate_facts_sends_delegated_facts_to_the_delegate() {
    let run = same_as_ansible("delegate-facts");
    let (ansible, _) = recorded("delegate-facts");
    let want = ansible
        .iter()
        .find(|e| e["task"] == "show")
        .map(|e| e["debug"].clone())
        .unwrap_or_default();
    assert_eq!(run.results("show")[0]["output"]["msg"], want);
}

#[test]
fn become_method_su_and_become_flags_match_ansible() {
    let run = same_as_ansible("become-su");
    assert_eq!(run.results("show")[0]["output"]["msg"], "nobody");
}

#[test]
fn play_fact_path_is_where_gathering_reads_local_facts() {
    let run = same_as_ansible("fact-path");
    assert_eq!(
        run.results("show")[0]["output"]["msg"],
        recorded_debug("fact-path", "show")
    );
}

#[test]
fn become_exe_from_play_task_and_variable_matches_ansible() {
    let run = same_as_ansible("become-exe");
    assert_eq!(
        run.results("show")[0]["output"]["msg"],
        recorded_debug("become-exe", "show")
    );
}

#[test]
fn become_variables_beat_become_keywords_as_in_ansible() {
    let run = same_as_ansible("become-vars");
    assert_eq!(
        run.results("show")[0]["output"]["msg"],
        recorded_debug("become-vars", "show")
    );
}

// ---- async, poll and async_status ------------------------------------------

/// What ansible-playbook's `debug` printed for `task` in `case`.
fn recorded_debug(case: &str, task: &str) -> Value {
    let (events, _) = recorded(case);
    events
        .iter()
        .find(|e| e["event"] == "host_result" && e["task"] == task)
        .map(|e| e["debug"].clone())
        .unwrap_or(Value::Null)
}

fn same_debug(run: &Run, case: &str, tasks: &[&str]) {
    for task in tasks {
        assert_eq!(
            run.results(task)[0]["output"]["msg"],
            recorded_debug(case, task),
            "{case}: debug of `{task}` differs"
        );
    }
}

#[test]
fn async_poll_and_async_status_run_as_in_ansible() {
    let run = same_as_ansible("async");
    same_debug(
        &run,
        "async",
        &[
            "polled result",
            "started",
            "finished",
            "erased",
            "failing rc",
            "stat result",
        ],
    );
    assert_eq!(
        msg(&run, "one", "too slow"),
        "async task did not complete within the requested time - 2s"
    );
    assert_eq!(msg(&run, "one", "gone"), "could not find job");
    assert_eq!(
        msg(&run, "one", "debug refuses async"),
        "This action (debug) does not support async."
    );
}

#[test]
fn async_in_check_mode_runs_as_in_ansible() {
    let run = same_as_ansible("async-check");
    same_debug(&run, "async-check", &["polled result", "job result"]);
}
