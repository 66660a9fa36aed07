//! Roles behave as in ansible-core 2.18: play order (pre_tasks, roles with
//! their dependencies, tasks, post_tasks), a role instance running once
//! unless `allow_duplicates`, role params making a new instance, variable
//! precedence between role defaults, inventory, play vars, role vars,
//! task vars, set_fact, role params and `-e`, role magic variables,
//! handlers of roles notified by name and by `role : name`, `copy` and
//! `template` finding files in the role, `import_role`/`include_role`
//! with `*_from`, `argument_specs` checked before a role's first task.
//!
//! Every playbook in `tests/fixtures/roles/cases` was run by
//! ansible-playbook 2.18 and what it did is recorded in
//! `tests/fixtures/roles/ansible-2.18.json` (by `record/record.py`). Here
//! each runs through herd on `localhost ansible_connection=local` and is
//! compared: exit code, recap, each task's name and status in order,
//! what `debug` printed, and the files written.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{repo, Herd, Run};

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/roles")
}

fn recorded() -> Value {
    let path = fixtures().join("ansible-2.18.json");
    let text = std::fs::read_to_string(&path).expect("recorded Ansible results");
    serde_json::from_str(&text).expect("recorded results are JSON")
}

/// Tasks Ansible reports as results of their own that herd does not:
/// `include_tasks` itself (herd reports only the included tasks; Ansible
/// counts the include as `ok` in the recap too). Not a role matter: it is
/// how herd runs every `include_tasks`.
const INCLUDE_RESULTS: &[(&str, &str)] = &[(
    "import_include.yml",
    "entry : include from the role's tasks",
)];

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

/// Copy the cases (with their roles) into a fresh directory, run `case`.
fn run_case(case: &str) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("cases");
    copy_dir(&fixtures().join("cases"), &work);
    let mut args: Vec<String> = vec![
        "run".into(),
        case.into(),
        "-i".into(),
        "inventory.ini".into(),
        "--output".into(),
        "jsonl".into(),
    ];
    let extra = work
        .join(case.trim_end_matches(".yml"))
        .with_extension("args");
    if let Ok(text) = std::fs::read_to_string(extra) {
        args.extend(text.split_whitespace().map(str::to_string));
    }
    let run = Herd::new(args).current_dir(&work).run();
    (dir, run)
}

/// (task, status, debug output) in the order herd reported them.
fn herd_results(run: &Run) -> Vec<(String, String, Option<Value>)> {
    run.events()
        .into_iter()
        .filter(|e| e["event"] == "host_result")
        .map(|e| {
            (
                e["task"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
                e.get("output").cloned(),
            )
        })
        .collect()
}

fn compare(case: &str, ansible: &Value) -> Vec<String> {
    let (dir, run) = run_case(case);
    let mut diffs = Vec::new();
    let mut d = |what: String| diffs.push(format!("{case}: {what}"));
    if i64::from(run.code()) != ansible["rc"].as_i64().unwrap_or(-1) {
        d(format!(
            "exit code {} (Ansible {}); stderr: {}",
            run.code(),
            ansible["rc"],
            run.stderr()
        ));
    }
    let skipped_includes = INCLUDE_RESULTS.iter().filter(|(c, _)| *c == case).count() as u64;
    if let Some(recap) = ansible["recap"].as_object() {
        let got = run
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
        ] {
            let mut want = recap[theirs].as_u64().unwrap_or(0);
            if ours == "ok" {
                want -= skipped_includes;
            }
            if got.get(ours).and_then(Value::as_u64) != Some(want) {
                d(format!(
                    "recap {ours}={} (Ansible {want})",
                    got.get(ours).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    let ours = herd_results(&run);
    let theirs: Vec<Value> = ansible["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| {
            !INCLUDE_RESULTS
                .iter()
                .any(|(c, n)| *c == case && t["task"] == *n)
        })
        .collect();
    let shown: Vec<String> = ours.iter().map(|(t, s, _)| format!("{t}={s}")).collect();
    if ours.len() != theirs.len() {
        d(format!(
            "{} results (Ansible {}): {shown:?}",
            ours.len(),
            theirs.len()
        ));
    }
    for ((task, status, output), t) in ours.iter().zip(&theirs) {
        if t["task"] != *task.as_str() || t["status"] != *status.as_str() {
            d(format!(
                "{task}={status} where Ansible has {}={}",
                t["task"], t["status"]
            ));
        }
        if let (Some(want), Some(got)) = (t.get("output"), output) {
            if want != got {
                d(format!("`{task}` printed {got} (Ansible {want})"));
            }
        }
    }
    if let Some(files) = ansible["files"].as_object() {
        for (name, content) in files {
            let path = dir.path().join("cases/out").join(name);
            let got = std::fs::read_to_string(&path).unwrap_or_default();
            if Some(got.as_str()) != content.as_str() {
                d(format!("out/{name} holds {got:?} (Ansible {content})"));
            }
        }
    }
    diffs
}

fn check(case: &str) {
    let all = recorded();
    let ansible = &all["cases"][case];
    assert!(ansible.is_object(), "{case} is not recorded");
    let diffs = compare(case, ansible);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn order_dependencies_duplicates_and_handler_flushes_match_ansible() {
    check("order.yml");
}

#[test]
fn variable_precedence_with_role_defaults_vars_and_params_matches_ansible() {
    check("precedence.yml");
}

#[test]
fn role_handlers_by_name_and_role_qualified_name_match_ansible() {
    check("handlers.yml");
}

#[test]
fn import_role_and_include_role_with_from_files_match_ansible() {
    check("import_include.yml");
}

#[test]
fn copy_and_template_find_sources_in_the_role_like_ansible() {
    check("files.yml");
}

#[test]
fn argument_specs_are_checked_before_the_role_like_ansible() {
    check("argspec.yml");
    // The whole message, as Ansible words it (the recording keeps its
    // first line only).
    let (_dir, run) = run_case("argspec.yml");
    let msgs: Vec<String> = run
        .events()
        .into_iter()
        .filter_map(|e| e["msg"].as_str().map(str::to_string))
        .collect();
    let want = "Validation of arguments failed:\nmissing required arguments: listen_port\nvalue of mode must be one of: a, b, got: c";
    assert!(msgs.iter().any(|m| m == want), "{msgs:#?}");
    assert!(
        msgs.iter().any(|m| m.starts_with(
            "Validation of arguments failed:\nargument 'listen_port' is of type str and we were unable to convert to int"
        )),
        "{msgs:#?}"
    );
}

#[test]
fn roles_are_found_in_collections_roles_path_and_by_path_like_ansible() {
    check("search.yml");
}

#[test]
fn include_role_with_a_loop_or_a_templated_name_runs_per_item_like_ansible() {
    check("dynamic.yml");
}

#[test]
fn tags_select_role_tasks_and_include_role_like_ansible() {
    check("tags.yml");
}

#[test]
fn include_role_vars_reach_its_dependency_chain_and_the_play_only_when_public() {
    check("private.yml");
}

/// Every recorded case has a test above.
#[test]
fn role_templates_extend_import_and_include_along_ansibles_search_path() {
    check("template_includes.yml");
}

#[test]
fn a_repeated_role_runs_again_only_where_its_first_instance_ran_nothing() {
    check("dedup.yml");
}

#[test]
fn every_recorded_case_is_tested() {
    let all = recorded();
    let cases: Vec<&String> = all["cases"].as_object().expect("cases").keys().collect();
    assert_eq!(
        cases,
        [
            "argspec.yml",
            "dedup.yml",
            "dynamic.yml",
            "files.yml",
            "handlers.yml",
            "import_include.yml",
            "order.yml",
            "precedence.yml",
            "private.yml",
            "search.yml",
            "tags.yml",
            "template_includes.yml"
        ]
    );
}
