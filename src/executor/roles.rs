//! What roles add at run time: their variable layers in a task's context
//! (defaults under the inventory, role vars over play vars, role params
//! over set_fact), the role magic variables (`role_name`, `role_path`,
//! `ansible_role_names`, ...), and the role's own `files/`, `templates/`
//! and `tasks/` searched before the playbook's, as Ansible's
//! `path_dwim_relative` does.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::executor::task::template_message;
use crate::executor::{vars, PlayRunner};
use crate::playbook::{self, RoleInfo, Task, TaskKind};

impl PlayRunner<'_> {
    /// Every public role's defaults, then the task's own role's (with its
    /// dependency chain) over them: the lowest layer of all.
    pub(crate) fn role_defaults(&self, role: Option<&RoleInfo>) -> Map<String, Value> {
        let mut all = self.play.roles.defaults.clone();
        if let Ok(included) = self.included_roles.read() {
            vars::overlay(&mut all, &included.defaults);
        }
        if let Some(role) = role {
            vars::overlay(&mut all, &role.defaults);
        }
        all
    }

    /// Role vars: every public role's `vars/`, then the task's own role's
    /// (its dependencies' and parents', its `vars:` on the invocation).
    pub(crate) fn overlay_role_vars(&self, all: &mut Map<String, Value>, role: Option<&RoleInfo>) {
        vars::overlay(all, &self.play.roles.exports);
        if let Ok(included) = self.included_roles.read() {
            vars::overlay(all, &included.exports);
        }
        if let Some(role) = role {
            vars::overlay(all, &role.vars);
        }
    }

    /// The role magic variables, over everything (they can't be set).
    pub(crate) fn overlay_role_magic(&self, all: &mut Map<String, Value>, role: Option<&RoleInfo>) {
        let roles = &self.play.roles;
        let mut names: Vec<String> = roles.dependent_role_names.clone();
        for n in &roles.play_role_names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        all.insert("ansible_role_names".into(), Value::from(names));
        all.insert(
            "ansible_play_role_names".into(),
            Value::from(roles.play_role_names.clone()),
        );
        all.insert(
            "role_names".into(),
            Value::from(roles.play_role_names.clone()),
        );
        all.insert(
            "ansible_dependent_role_names".into(),
            Value::from(roles.dependent_role_names.clone()),
        );
        if let Some(role) = role {
            all.insert("role_name".into(), Value::from(role.short_name.clone()));
            all.insert("ansible_role_name".into(), Value::from(role.name.clone()));
            all.insert(
                "role_path".into(),
                Value::from(role.path.display().to_string()),
            );
        }
    }

    /// Where `template` finds `src` for `task`: its role's `templates/`
    /// and the role itself (then its parents'), then the playbook's.
    pub(crate) fn template_search(&self, task: &Task) -> Vec<PathBuf> {
        let mut paths = role_dirs(task, "templates");
        paths.extend(playbook::template_search_paths(&self.playbook.dir));
        paths
    }
}

/// `<role>/<sub>` and `<role>` for the task's role and its parents.
pub fn role_dirs(task: &Task, sub: &str) -> Vec<PathBuf> {
    let Some(role) = &task.role else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dir in std::iter::once(&role.path).chain(role.parent_paths.iter().rev()) {
        out.push(dir.join(sub));
        out.push(dir.clone());
    }
    out
}

/// Give tasks loaded at run time (`include_tasks` inside a role) the role
/// of the task that included them.
pub fn inherit_role(tasks: &mut [Task], from: &Task) {
    let Some(role) = &from.role else {
        return;
    };
    for t in tasks {
        if t.role.is_none() {
            t.role = Some(role.clone());
        }
        if let TaskKind::Block {
            block,
            rescue,
            always,
        } = &mut t.kind
        {
            inherit_role(block, from);
            inherit_role(rescue, from);
            inherit_role(always, from);
        }
    }
}

/// A role handler also answers to `role : name`, as in Ansible.
pub fn role_handler_name(handler: &Task, rendered: &str) -> Option<String> {
    handler
        .role
        .as_ref()
        .map(|r| format!("{} : {}", r.name, rendered))
}

impl PlayRunner<'_> {
    /// `validate_argument_spec` (the check a role's `argument_specs` puts
    /// before its tasks): each option's value is the role param, else the
    /// variable of that name; `required`, `type` and `choices` are checked
    /// as Ansible's argument spec validator does; the error shows as
    /// Ansible's failure message.
    pub(crate) fn validate_argument_spec(
        &self,
        args: &Value,
        ctx: &minijinja::Value,
    ) -> Result<&'static str, ArgumentSpecError> {
        let spec = args
            .get("argument_spec")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let provided = args
            .get("provided_arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut missing = Vec::new();
        let mut errors = Vec::new();
        let mut choice_errors = Vec::new();
        for (name, option) in &spec {
            let value = match provided.get(name) {
                Some(v) => Some(v.clone()),
                None => self
                    .project
                    .templar
                    .eval("argument_spec", name, ctx)
                    .ok()
                    .filter(|v| !v.is_undefined())
                    .map(|v| crate::template::to_json(&v)),
            };
            let Some(value) = value else {
                if option.get("required").is_some_and(truthy) {
                    missing.push(name.clone());
                }
                continue;
            };
            let kind = option.get("type").and_then(Value::as_str).unwrap_or("str");
            let converted = match convert(&value, kind) {
                Ok(v) => v,
                Err(why) => {
                    errors.push(format!(
                        "argument '{name}' is of type {} and we were unable to convert to {kind}: {why}",
                        type_name(&value)
                    ));
                    continue;
                }
            };
            if let Some(Value::Array(choices)) = option.get("choices") {
                let items: Vec<&Value> = match &converted {
                    Value::Array(a) => a.iter().collect(),
                    v => vec![v],
                };
                let allowed: Vec<String> = choices.iter().map(scalar_text).collect();
                if let Some(bad) = items.iter().find(|i| !allowed.contains(&scalar_text(i))) {
                    choice_errors.push(format!(
                        "value of {name} must be one of: {}, got: {}",
                        allowed.join(", "),
                        scalar_text(bad)
                    ));
                }
            }
        }
        missing.sort();
        let mut messages = Vec::new();
        if !missing.is_empty() {
            messages.push(format!(
                "missing required arguments: {}",
                missing.join(", ")
            ));
        }
        messages.extend(errors);
        messages.extend(choice_errors);
        if messages.is_empty() {
            Ok("The arg spec validation passed")
        } else {
            Err(ArgumentSpecError { messages })
        }
    }
}

/// Role arguments that fail their `argument_specs`: one line per problem,
/// in Ansible's order (missing, then types, then choices).
#[derive(Debug, thiserror::Error)]
#[error("Validation of arguments failed:\n{}", messages.join("\n"))]
pub(crate) struct ArgumentSpecError {
    messages: Vec<String>,
}

/// Why a role argument cannot take its declared `type`; the messages are
/// Ansible's (its `check_type_*` helpers).
#[derive(Debug, thiserror::Error)]
enum ArgConversionError {
    #[error("invalid literal for int() with base 10: '{0}'")]
    IntLiteral(String),
    #[error("could not convert string to float: '{0}'")]
    FloatLiteral(String),
    #[error("The value '{0}' is not a valid boolean. Valid booleans include: 'yes', 'on', '1', 'true', 'no', 'off', '0', 'false'")]
    Bool(String),
    #[error("dictionary requested, could not parse JSON or key=value: {0}")]
    DictLiteral(String),
    #[error("{text} cannot be converted to {article} {kind}")]
    Kind {
        text: String,
        article: &'static str,
        kind: &'static str,
    },
}

impl ArgConversionError {
    fn kind(text: String, article: &'static str, kind: &'static str) -> Self {
        ArgConversionError::Kind {
            text,
            article,
            kind,
        }
    }
}

fn truthy(v: &Value) -> bool {
    crate::executor::task::truthy_json(v)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Ansible's `check_type_*` conversions for a role argument.
fn convert(v: &Value, kind: &str) -> Result<Value, ArgConversionError> {
    let text = scalar_text(v);
    match kind {
        "int" => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            Value::Bool(b) => Ok(Value::from(i64::from(*b))),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| ArgConversionError::IntLiteral(s.clone())),
            _ => Err(ArgConversionError::kind(text, "an", "int")),
        },
        "float" => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| ArgConversionError::FloatLiteral(s.clone())),
            _ => Err(ArgConversionError::kind(text, "a", "float")),
        },
        "bool" => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => match text.to_ascii_lowercase().as_str() {
                "yes" | "on" | "1" | "true" | "y" | "t" => Ok(Value::Bool(true)),
                "no" | "off" | "0" | "false" | "n" | "f" => Ok(Value::Bool(false)),
                _ => Err(ArgConversionError::Bool(text)),
            },
        },
        "list" => match v {
            Value::Array(_) => Ok(v.clone()),
            Value::String(s) => Ok(Value::from(
                s.split(',')
                    .map(|p| Value::from(p.to_string()))
                    .collect::<Vec<_>>(),
            )),
            Value::Number(_) => Ok(Value::from(vec![Value::from(text)])),
            _ => Err(ArgConversionError::kind(text, "a", "list")),
        },
        "dict" => match v {
            Value::Object(_) => Ok(v.clone()),
            Value::String(s) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| ArgConversionError::DictLiteral(s.clone())),
            _ => Err(ArgConversionError::kind(text, "a", "dict")),
        },
        "str" | "path" => match v {
            Value::Null => Ok(Value::from("None")),
            Value::String(_) => Ok(v.clone()),
            _ => Ok(Value::from(text)),
        },
        _ => Ok(v.clone()),
    }
}

impl PlayRunner<'_> {
    /// `include_role`: a task of its own, `ok` where its `when` holds and
    /// `skipped` elsewhere (as Ansible reports it), then the role's tasks
    /// on the hosts where it ran.
    pub(crate) fn run_role_include(&self, task: &Task, block: &[Task], active: &[usize]) {
        use crate::output::{Event, HostResult, Status};
        if !self.tags_match(task)
            || !self.take_step(&format!("TASK: {}", task.display_name()), None)
        {
            return;
        }
        self.sink.send(Event::TaskStart {
            name: task.display_name(),
            location: format!("{}:{}", task.span.path.display(), task.span.line),
            hosts: active.iter().map(|&i| self.names[i].clone()).collect(),
            handler: false,
        });
        let mut included = Vec::new();
        for &i in active {
            let ctx = self.task_context(i, task, &Map::new());
            let status = match self.when_holds(task, &ctx) {
                Ok(true) => {
                    included.push(i);
                    Status::Ok
                }
                Ok(false) => Status::Skipped,
                Err(e) => {
                    self.fail_host(i, task, &template_message(task, "when", &e));
                    continue;
                }
            };
            self.count(i, status);
            self.sink.send(Event::HostResult(HostResult {
                host: self.names[i].clone(),
                task: task.display_name(),
                status,
                changed: false,
                duration_ms: 0,
                msg: None,
                item: None,
                delegated_to: None,
                diffs: Vec::new(),
                output: None,
                changes: Vec::new(),
                censored: false,
                result: None,
            }));
        }
        if !included.is_empty() {
            self.publish_included_role(block);
            self.run_list(block, &included);
        }
    }
}

impl PlayRunner<'_> {
    /// A looped or templated `include_role`: per host and item, its `when`
    /// is checked and its arguments rendered; each distinct role is loaded
    /// then and run on the hosts (and with the item) that asked for it.
    pub(crate) fn run_dynamic_role(&self, task: &Task, args: &Value, active: &[usize]) {
        use crate::output::{Event, Status};
        if !self.tags_match(task)
            || !self.take_step(&format!("TASK: {}", task.display_name()), None)
        {
            return;
        }
        self.sink.send(Event::TaskStart {
            name: task.display_name(),
            location: format!("{}:{}", task.span.path.display(), task.span.line),
            hosts: active.iter().map(|&i| self.names[i].clone()).collect(),
            handler: false,
        });
        let loop_var = task.loop_control.loop_var.clone();
        let mut groups: indexmap::IndexMap<String, (Value, Option<Value>, Vec<usize>)> =
            indexmap::IndexMap::new();
        for &i in active {
            let items = match self.include_items(task, i) {
                Ok(items) => items,
                Err(e) => {
                    self.fail_host(i, task, &e.to_string());
                    continue;
                }
            };
            // Ansible counts a looped include `ok` once per item included.
            let mut included = 0;
            for item in items {
                let mut extra = Map::new();
                if let Some(item) = &item {
                    extra.insert(loop_var.clone(), item.clone());
                }
                let ctx = self.task_context(i, task, &extra);
                match self.when_holds(task, &ctx) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.fail_host(i, task, &template_message(task, "when", &e));
                        break;
                    }
                }
                let rendered = match self
                    .project
                    .templar
                    .render_value("include_role", args, &ctx)
                {
                    Ok(v) => v,
                    Err(e) => {
                        let msg = crate::executor::task::template_message(task, "include_role", &e);
                        self.fail_host(i, task, &msg);
                        break;
                    }
                };
                included += 1;
                let key = format!("{rendered}\u{0}{}", serde_json::json!(item));
                groups
                    .entry(key)
                    .or_insert_with(|| (rendered, item.clone(), Vec::new()))
                    .2
                    .push(i);
            }
            let alive = self.hosts[i].lock().map(|h| h.active()).unwrap_or(false);
            if alive {
                let status = if included > 0 {
                    Status::Ok
                } else {
                    Status::Skipped
                };
                for _ in 0..included.max(1) {
                    self.count(i, status);
                }
                self.sink.send(Event::HostResult(simple_result(
                    &self.names[i],
                    task,
                    status,
                )));
            }
        }
        for (_, (rendered, item, hosts)) in groups {
            match playbook::load::load_included_role(&self.playbook.dir, &rendered, &task.span) {
                Ok((mut tasks, handlers)) => {
                    let mut vars = task.vars.clone();
                    if let Some(item) = item {
                        vars.insert(loop_var.clone(), item);
                    }
                    add_vars(&mut tasks, &vars);
                    self.publish_included_role(&tasks);
                    if let Ok(mut d) = self.dynamic_handlers.lock() {
                        d.extend(handlers);
                    }
                    self.run_list(&tasks, &hosts);
                }
                Err(diags) => {
                    let msg = diags
                        .iter()
                        .map(std::string::ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    for i in hosts {
                        self.fail_host(i, task, &format!("include_role: {msg}"));
                    }
                }
            }
        }
    }

    /// The items of a looped `include_role` for host `i` (`[None]` without
    /// a loop): `loop` as given, `with_items` flattened one level.
    fn include_items(&self, task: &Task, i: usize) -> Result<Vec<Option<Value>>, IncludeLoopError> {
        let Some(items) = &task.loop_items else {
            return Ok(vec![None]);
        };
        let ctx = self.task_context(i, task, &Map::new());
        let flatten = task.loop_kind == crate::playbook::LoopKind::WithItems;
        match self.project.templar.render_value("loop", items, &ctx) {
            Ok(Value::Array(a)) => Ok(a
                .into_iter()
                .flat_map(|v| match v {
                    Value::Array(inner) if flatten => inner,
                    other => vec![other],
                })
                .map(Some)
                .collect()),
            Ok(_) => Err(IncludeLoopError::NotAList {
                task: task.display_name(),
                at: task.span.to_string(),
            }),
            Err(e) => Err(IncludeLoopError::Template(
                crate::executor::task::template_message(task, "loop", &e),
            )),
        }
    }
}

/// Why a looped `include_role` has no items for a host.
#[derive(Debug, thiserror::Error)]
enum IncludeLoopError {
    #[error("the loop of `include_role` needs a list (task `{task}` at {at})")]
    NotAList { task: String, at: String },
    /// The loop's template failed; the message names task and keyword.
    #[error("{0}")]
    Template(String),
}

/// Variables of the `include_role` task (and its loop item) for every
/// task of the role, under the tasks' own.
fn add_vars(tasks: &mut [Task], vars: &Map<String, Value>) {
    for t in tasks {
        for (k, v) in vars {
            t.vars.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let TaskKind::Block {
            block,
            rescue,
            always,
        } = &mut t.kind
        {
            add_vars(block, vars);
            add_vars(rescue, vars);
            add_vars(always, vars);
        }
    }
}

fn simple_result(
    host: &str,
    task: &Task,
    status: crate::output::Status,
) -> crate::output::HostResult {
    crate::output::HostResult {
        host: host.to_string(),
        task: task.display_name(),
        status,
        changed: false,
        duration_ms: 0,
        msg: None,
        item: None,
        delegated_to: None,
        diffs: Vec::new(),
        output: None,
        changes: Vec::new(),
        censored: false,
        result: None,
    }
}

impl PlayRunner<'_> {
    /// A public `include_role` that runs shows the rest of the play its
    /// defaults and vars (the role's block is the last of its tasks).
    fn publish_included_role(&self, tasks: &[Task]) {
        let Some(info) = tasks.last().and_then(|t| t.role.as_ref()) else {
            return;
        };
        if info.public_defaults.is_empty() && info.public_vars.is_empty() {
            return;
        }
        if let Ok(mut included) = self.included_roles.write() {
            vars::overlay(&mut included.defaults, &info.public_defaults);
            vars::overlay(&mut included.exports, &info.public_vars);
        }
    }
}
