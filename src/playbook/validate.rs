//! Validation of a loaded playbook, before any host is contacted.
//!
//! This file owns the checks that need more than the YAML: module
//! parameters (`actions::check_params` on the unrendered arguments),
//! `notify` against the play's handlers, template syntax of every string
//! that holds `{{`/`{%` and of every condition, and the files a task names
//! statically (`template` sources, the controller files modules declare to
//! be checked before the run such as `copy`'s `src`, `include_tasks` files). Each
//! problem becomes a [`Diagnostic`] pointing at the parameter key, the
//! `notify` entry, or the line inside the template file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use herdsman_modules::capability::{ControllerInput, HostSide};
use herdsman_modules::{ParamError, Registry};
use serde_json::Value;

use crate::actions::{self, Action, EngineAction};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::playbook::load::task_file_candidates;
use crate::playbook::model::{CheckKind, Playbook, Task, TaskKind, TemplateCheck};
use crate::playbook::{
    file_search_paths, find_in, load_task_file_with, template_search_paths, SourceLines,
};
use crate::template::{is_template, single_expression, Templar, TemplateError};
use crate::yaml::Span;

/// Every problem found: module parameters, notify without a handler,
/// template syntax (inline and files). Empty when the playbook is valid.
pub fn validate(playbook: &Playbook, templar: &Templar) -> Vec<Diagnostic> {
    validate_with(playbook, templar, &Registry::builtin())
}

/// [`validate`] with the modules the playbook may name.
pub fn validate_with(
    playbook: &Playbook,
    templar: &Templar,
    modules: &Registry,
) -> Vec<Diagnostic> {
    validate_with_warnings(playbook, templar, modules).0
}

/// [`validate_with`], plus the warnings: modules Ansible knows that herd
/// does not implement (a host that reaches such a task fails).
pub fn validate_with_warnings(
    playbook: &Playbook,
    templar: &Templar,
    modules: &Registry,
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut v = Validator {
        templar,
        modules,
        playbook_dir: &playbook.dir,
        errors: Vec::new(),
        warnings: Vec::new(),
        sources: SourceLines::default(),
        seen_files: HashSet::new(),
    };
    for play in &playbook.plays {
        v.checks(&play.checks);
        v.vars_files(&play.vars_files);
        let mut handlers = Handlers::default();
        handlers.collect(&play.handlers);
        for task in play
            .pre_tasks
            .iter()
            .chain(&play.tasks)
            .chain(&play.post_tasks)
            .chain(&play.handlers)
        {
            v.task(task, &handlers);
        }
    }
    (dedup(v.errors), dedup(v.warnings))
}

/// Block keywords are pushed into every child; report each problem once.
fn dedup(all: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for e in all {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

/// What `notify` can name in a play: handler names and `listen` topics.
#[derive(Default)]
struct Handlers {
    names: Vec<String>,
}

impl Handlers {
    fn collect(&mut self, tasks: &[Task]) {
        for t in tasks {
            if let Some(n) = &t.name {
                self.names.push(n.clone());
                if let Some(role) = &t.role {
                    // Role handlers also answer to `role : name`.
                    self.names.push(format!("{} : {}", role.name, n));
                }
            }
            self.names.extend(t.listen.iter().cloned());
            if let TaskKind::Block {
                block,
                rescue,
                always,
            } = &t.kind
            {
                self.collect(block);
                self.collect(rescue);
                self.collect(always);
            }
        }
    }
}

struct Validator<'a> {
    templar: &'a Templar,
    /// The modules the playbook may name.
    modules: &'a Registry,
    playbook_dir: &'a Path,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    sources: SourceLines,
    /// Template and task files already checked (each is reported once).
    seen_files: HashSet<PathBuf>,
}

impl Validator<'_> {
    fn task(&mut self, task: &Task, handlers: &Handlers) {
        self.checks(&task.spans.checks);
        self.notify(task, handlers);
        match &task.kind {
            TaskKind::Action { action, args } => {
                self.params(task, action, args);
                self.source_files(task, action, args);
            }
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                for t in block.iter().chain(rescue).chain(always) {
                    self.task(t, handlers);
                }
            }
            TaskKind::IncludeTasks { file } => self.include(task, file, handlers),
        }
    }

    /// `vars_files` are read when the play starts; a missing static one
    /// would stop the run there, so say it now.
    fn vars_files(&mut self, files: &[(String, Span)]) {
        for (name, span) in files {
            if is_template(name) {
                continue;
            }
            let path = self.playbook_dir.join(name);
            if !path.is_file() {
                self.errors.push(
                    span.diagnostic(format!("vars file `{name}` not found"))
                        .with_label(format!("looked in {}", shown_dir(self.playbook_dir))),
                );
            }
        }
    }

    fn notify(&mut self, task: &Task, handlers: &Handlers) {
        for (i, name) in task.notify.iter().enumerate() {
            if is_template(name) || handlers.names.iter().any(|h| h == name) {
                continue;
            }
            let span = task.spans.notify.get(i).unwrap_or(&task.span);
            let mut d = span
                .diagnostic(format!("the requested handler `{name}` was not found"))
                .with_label("no handler has this name or listens to it");
            if let Some(s) = did_you_mean(name, handlers.names.iter().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else if handlers.names.is_empty() {
                d = d.with_help("this play has no `handlers:` section");
            } else {
                d = d.with_help(format!(
                    "handlers in this play: {}",
                    handlers.names.join(", ")
                ));
            }
            self.errors.push(d);
        }
    }

    /// A module Ansible knows and herd does not implement (the loader let it
    /// through): a warning; its parameters stay unchecked.
    fn unimplemented(&mut self, task: &Task, action: &str) {
        let span = task.spans.action.as_ref().unwrap_or(&task.span);
        let fqcn = crate::known_modules::resolve(action, &[])
            .filter(|f| *f != action)
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        self.warnings.push(
            span.diagnostic(format!(
                "module `{action}`{fqcn} is not implemented in herd"
            ))
            .with_label("Ansible has this module; herd does not")
            .with_help("a host that reaches this task fails; one skipped by `when` does not"),
        );
    }

    /// Module parameters, checked before rendering: unknown names always
    /// (a template cannot fix a misspelt key), missing or invalid values only
    /// when no value is a template (a template may render to the right thing).
    fn params(&mut self, task: &Task, action: &str, args: &Value) {
        let Some(found) = actions::lookup(self.modules, action) else {
            self.unimplemented(task, action);
            return;
        };
        let action_span = task.spans.action.as_ref().unwrap_or(&task.span);
        let mut args = args.clone();
        // serde stops at the first unknown field: drop it and ask again, so
        // every misspelt parameter is reported at once.
        for _ in 0..64 {
            let err = match actions::check_params(found, &args) {
                Ok(()) => return,
                Err(e) => e,
            };
            match &err {
                ParamError::Unknown {
                    field, expected, ..
                } => {
                    let span = task.spans.arg_keys.get(field).unwrap_or(action_span);
                    let label = if expected.is_empty() {
                        "this module takes no parameters".to_string()
                    } else {
                        format!("expected one of: {}", expected.join(", "))
                    };
                    let mut d = span.diagnostic(err.to_string()).with_label(label);
                    if let Some(s) = did_you_mean(field, expected.iter().map(String::as_str)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.errors.push(d);
                    let removed = args
                        .as_object_mut()
                        .and_then(|m| m.shift_remove(field))
                        .is_some();
                    if !removed {
                        return;
                    }
                }
                ParamError::Missing { field, .. } => {
                    if !has_template(&args) {
                        let top = field.split('.').next().unwrap_or(field);
                        self.errors.push(
                            action_span
                                .diagnostic(err.to_string())
                                .with_help(format!("add `{top}: ...` to the task's parameters")),
                        );
                    }
                    return;
                }
                ParamError::Invalid { reason, .. } => {
                    if !has_template(&args) {
                        let span = err
                            .field()
                            .and_then(|f| task.spans.arg_values.get(f))
                            .unwrap_or(action_span);
                        let message = match err.field() {
                            Some(f) => format!("invalid value for `{f}` in module `{action}`"),
                            None => format!("invalid parameters for module `{action}`"),
                        };
                        let mut d = span.diagnostic(message).with_label(without_values(reason));
                        // `meta: flush_handler` names one of a fixed set.
                        if let (Some(word), Some(choices)) = (
                            actions::meta_argument(&args).filter(|_| action == "meta"),
                            reason.strip_prefix("expected one of: "),
                        ) {
                            if let Some(s) = did_you_mean(word.trim(), choices.split(", ")) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                        }
                        self.errors.push(d);
                    }
                    return;
                }
            }
        }
    }

    /// The controller files a task names: `template`'s `src`, and each
    /// file a module declares to be checked before the run (`copy`'s `src`).
    fn source_files(&mut self, task: &Task, action: &str, args: &Value) {
        match actions::lookup(self.modules, action) {
            Some(Action::Engine(EngineAction::Template)) => {
                self.source_file(task, args, "src", &[], true);
            }
            Some(Action::Module(m)) => {
                for input in m.controller_inputs() {
                    if let ControllerInput::File {
                        param,
                        host_side,
                        checked_before_run: true,
                        ..
                    } = input
                    {
                        self.source_file(task, args, param, host_side, false);
                    }
                }
            }
            _ => {}
        }
    }

    /// A task's static `param` naming a controller file: the file must
    /// exist (unless `host_side` says it is on the host), and a template
    /// must parse.
    fn source_file(
        &mut self,
        task: &Task,
        args: &Value,
        param: &str,
        host_side: &[HostSide],
        is_template_module: bool,
    ) {
        let Some(src) = args.get(param).and_then(Value::as_str) else {
            return;
        };
        if is_template(src) {
            return;
        }
        let on_host = |side: &HostSide| match side {
            HostSide::Set(flag) => args.get(*flag).and_then(Value::as_bool) == Some(true),
            HostSide::Unset(flag) => args.get(*flag).and_then(Value::as_bool) == Some(false),
            HostSide::Url => src.contains("://"),
        };
        if host_side.iter().any(on_host) {
            return;
        }
        let task_dir = task.span.path.parent().unwrap_or(Path::new(""));
        let search = |dir: &Path| {
            if is_template_module {
                template_search_paths(dir)
            } else {
                file_search_paths(dir)
            }
        };
        let mut paths = crate::executor::roles::role_dirs(
            task,
            if is_template_module {
                "templates"
            } else {
                "files"
            },
        );
        paths.extend(search(self.playbook_dir));
        if task_dir != self.playbook_dir {
            paths.extend(search(task_dir));
        }
        let span = task
            .spans
            .arg_values
            .get(param)
            .or(task.spans.action.as_ref())
            .unwrap_or(&task.span);
        let Some(found) = find_in(&paths, src) else {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            let what = if is_template_module {
                "template"
            } else {
                "file"
            };
            self.errors.push(
                span.diagnostic(format!("{what} `{src}` not found"))
                    .with_label(format!("searched: {}", shown.join(", "))),
            );
            return;
        };
        if !is_template_module || !self.seen_files.insert(found.clone()) {
            return;
        }
        let source = match std::fs::read_to_string(&found) {
            Ok(s) => s,
            Err(e) => {
                self.errors
                    .push(span.diagnostic(format!("cannot read template `{src}`: {e}")));
                return;
            }
        };
        let name = found.display().to_string();
        if let Err(err) = self.templar.check_syntax(&name, &source) {
            let (line, col, len) = match self.template_error_offset(&source, false) {
                Some((start, len)) => {
                    let before = &source[..start];
                    let line = before.matches('\n').count() + 1;
                    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
                    (line, before[line_start..].chars().count() + 1, len)
                }
                None => (reported_line(&err), 1, 1),
            };
            self.errors.push(
                Diagnostic::new(
                    &found,
                    line,
                    col,
                    format!("invalid template `{src}`: {}", reason(&err)),
                )
                .with_len(len)
                .with_help(format!("used by the task at {}", span)),
            );
        }
    }

    /// `include_tasks` with a static name: the file must exist, and its
    /// tasks are checked now rather than halfway through a run.
    fn include(&mut self, task: &Task, file: &str, handlers: &Handlers) {
        if is_template(file) {
            return;
        }
        let dir = task.span.path.parent().unwrap_or(Path::new(""));
        let candidates = task_file_candidates(file, dir, self.playbook_dir);
        let span = task
            .spans
            .arg_values
            .get("file")
            .or_else(|| task.spans.arg_values.get("_raw_params"))
            .unwrap_or(&task.span);
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            let looked: Vec<String> = candidates
                .iter()
                .map(|p| {
                    p.parent()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                })
                .map(|d| if d.is_empty() { ".".into() } else { d })
                .collect();
            self.errors.push(
                span.diagnostic(format!("task file `{file}` not found"))
                    .with_label(format!("looked in {}", looked.join(", "))),
            );
            return;
        };
        // Recursive includes are legal (guarded by `when`); check each file once.
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if !self.seen_files.insert(canonical) {
            return;
        }
        match load_task_file_with(path, self.modules) {
            Ok(tasks) => {
                for t in &tasks {
                    self.task(t, handlers);
                }
            }
            Err(errors) => self.errors.extend(errors),
        }
    }

    fn checks(&mut self, checks: &[TemplateCheck]) {
        for c in checks {
            self.check(c);
        }
    }

    fn check(&mut self, c: &TemplateCheck) {
        let as_template = c.kind == CheckKind::Template
            || (is_template(&c.text) && single_expression(c.text.trim()).is_none());
        if as_template {
            if let Err(err) = self.templar.check_syntax(&c.what, &c.text) {
                let offset = self.template_error_offset(&c.text, false);
                self.report_inline(c, &err, offset, "template");
            }
            return;
        }
        if let Err(err) = self.templar.check_expression(&c.what, &c.text) {
            // A condition written as "{{ x }}" is checked without the braces.
            let inner = single_expression(c.text.trim()).unwrap_or(&c.text);
            let base = c.text.find(inner).unwrap_or(0);
            let offset = self
                .template_error_offset(inner, true)
                .map(|(s, l)| (s + base, l));
            self.report_inline(c, &err, offset, "condition");
        }
    }

    fn report_inline(
        &mut self,
        c: &TemplateCheck,
        err: &TemplateError,
        offset: Option<(usize, usize)>,
        kind: &str,
    ) {
        let span = match offset {
            Some((start, len)) => {
                let start = floor_char_boundary(&c.text, start);
                let chars = c.text[..start].chars().count();
                self.sources.sub_span(&c.span, &c.text, chars, len.max(1))
            }
            None => c.span.clone(),
        };
        let reason = reason(err);
        let mut d = span.diagnostic(format!("invalid {kind} in `{}`: {reason}", c.what));
        if kind == "condition" {
            d = d.with_help(
                "conditions are bare expressions, e.g. `when: x is defined and x | bool`",
            );
        } else if reason.contains("unexpected end of input") {
            d = d.with_help("check that every `{{` has its `}}` and every `{%` its `%}`");
        }
        self.errors.push(d);
    }

    /// Where minijinja places a syntax error in `source`: (byte offset, length).
    fn template_error_offset(&self, source: &str, expression: bool) -> Option<(usize, usize)> {
        let env = self.templar.env();
        // What the guard refused must not reach minijinja's parser.
        let refused = if expression {
            crate::template::guard::unary_run_in_expression(source)
        } else {
            crate::template::guard::unary_run_in_template(source, env.syntax())
        };
        if refused.is_some() {
            return None;
        }
        let err = if expression {
            env.compile_expression(source).err()?
        } else {
            env.template_from_named_str("check", source).err()?
        };
        let range = err.range()?;
        let start = range.start.min(source.len());
        let end = range.end.clamp(start, source.len());
        let len = source
            .get(start..end)
            .map(|s| s.chars().count())
            .unwrap_or(1);
        Some((start, len.max(1)))
    }
}

fn reason(err: &TemplateError) -> String {
    err.reason().to_string()
}

fn reported_line(err: &TemplateError) -> usize {
    err.line().max(1)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// True when any string in the arguments is a template.
fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(m) => m.iter().any(|(k, v)| is_template(k) || has_template(v)),
        _ => false,
    }
}

/// serde quotes the offending value (`invalid type: string "hunter2"`);
/// arguments may hold secrets, so keep only the kind.
fn without_values(reason: &str) -> String {
    let mut out = String::new();
    let mut rest = reason;
    while let Some(i) = rest.find('"') {
        out.push_str(rest[..i].trim_end());
        match rest[i + 1..].find('"') {
            Some(j) => rest = &rest[i + 1 + j + 1..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A directory as shown in messages (`.` for the current one).
fn shown_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::load_playbook;

    /// Validate a playbook written to a temporary directory, with `files`
    /// beside it. Errors from built-in modules whose parameters are not
    /// written yet are left out (see `playbook::tests`).
    fn check(playbook: &str, files: &[(&str, &str)]) -> Vec<Diagnostic> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let path = dir.path().join("playbook.yml");
        std::fs::write(&path, playbook).expect("write");
        let pb = load_playbook(&path).expect("loads");
        let templar = Templar::new(template_search_paths(&pb.dir));
        validate(&pb, &templar)
            .into_iter()
            .filter(|d| d.label.as_deref() != Some("this module takes no parameters"))
            .collect()
    }

    fn messages(errors: &[Diagnostic]) -> Vec<String> {
        errors.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn every_unknown_parameter_is_reported() {
        let errors = check(
            "- hosts: all\n  tasks:\n    - debug:\n        mesg: a\n        verbosty: 1\n",
            &[],
        );
        assert_eq!(
            messages(&errors),
            [
                "unknown parameter `mesg` for module `debug`",
                "unknown parameter `verbosty` for module `debug`"
            ]
        );
        assert_eq!((errors[1].line, errors[1].col), (5, 9));
    }

    #[test]
    fn missing_parameters_wait_for_templates() {
        // `dest` may come from a template at run time: `src` cannot be judged
        // missing until then; the unknown key is still reported.
        let errors = check(
            "- hosts: all\n  tasks:\n    - template:\n        dest: \"{{ d }}\"\n        bogus: 1\n",
            &[],
        );
        assert_eq!(
            messages(&errors),
            ["unknown parameter `bogus` for module `template`"]
        );
    }

    #[test]
    fn copy_sources_are_looked_up() {
        let play = "- hosts: all\n  tasks:\n    - copy: src=app.conf dest=/etc/app.conf\n    - copy: src=/nowhere/x dest=/y remote_src=yes\n    - copy: src={{ f }} dest=/z\n";
        let errors = check(play, &[]);
        assert_eq!(messages(&errors), ["file `app.conf` not found"]);
        assert_eq!((errors[0].line, errors[0].col), (3, 17));
        assert!(check(play, &[("files/app.conf", "x")]).is_empty());
    }

    /// The check follows the module's declaration, not the name written:
    /// the long name of `copy` is checked too, and `unarchive`, whose
    /// controller file is read only when the task runs, is not.
    #[test]
    fn declared_sources_are_looked_up_under_any_name() {
        let play = "- hosts: all\n  tasks:\n    - ansible.builtin.copy: src=app.conf dest=/etc/app.conf\n    - unarchive: src=a.tgz dest=/opt\n";
        let errors = check(play, &[]);
        assert_eq!(messages(&errors), ["file `app.conf` not found"]);
    }

    #[test]
    fn templates_are_found_beside_imported_task_files() {
        let play = "- hosts: all\n  tasks:\n    - import_tasks: sub/tasks.yml\n";
        let tasks = "- template: src=t.j2 dest=/t\n";
        let errors = check(play, &[("sub/tasks.yml", tasks)]);
        assert_eq!(messages(&errors), ["template `t.j2` not found"]);
        assert!(check(
            play,
            &[("sub/tasks.yml", tasks), ("sub/templates/t.j2", "{{ x }}")]
        )
        .is_empty());
    }

    #[test]
    fn handlers_are_found_by_listen_and_templated_notify_is_left_alone() {
        let play = "- hosts: all\n  tasks:\n    - debug: msg=a\n      notify: [web changed, \"{{ h }}\"]\n  handlers:\n    - name: restart web\n      listen: web changed\n      debug: msg=r\n";
        assert!(check(play, &[]).is_empty());
    }

    #[test]
    fn argument_values_are_not_echoed() {
        assert_eq!(
            without_values(r#"invalid type: string "hunter2", expected a boolean"#),
            "invalid type: string, expected a boolean"
        );
    }
}
