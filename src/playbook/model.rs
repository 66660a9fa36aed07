//! The loaded playbook: plays and tasks as the executor runs them, every one
//! with the span it came from. Block keywords (`when`, `become`, `tags`,
//! `vars`, `environment`, `ignore_errors`, ...) are already pushed down into
//! the tasks they wrap by the loader, so the executor reads effective values.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::yaml::Span;

#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    /// The playbook's directory: relative paths (`vars_files`, `src`,
    /// `include_tasks`, `group_vars/`) are looked up from here.
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Linear,
    Free,
}

/// One batch size of `serial:` (a list of them is allowed, the last repeats).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// Host pattern; a YAML list of patterns is joined with `:`.
    pub hosts: String,
    pub span: Span,
    pub vars: Map<String, Value>,
    /// Paths as written (may contain templates), relative to the playbook dir.
    pub vars_files: Vec<(String, Span)>,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    pub gather_facts: Option<bool>,
    pub connection: Option<String>,
    pub remote_user: Option<String>,
    pub pre_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub serial: Vec<Serial>,
    pub strategy: Strategy,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    pub force_handlers: Option<bool>,
    pub environment: Map<String, Value>,
    pub tags: Vec<String>,
    pub check_mode: Option<bool>,
    pub no_log: Option<bool>,
}

#[derive(Debug, Clone)]
pub enum TaskKind {
    /// A module or engine action, by its short name (`copy`, `debug`, ...).
    Action { action: String, args: Value },
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    /// `include_tasks`: loaded when reached, the file name may be a template.
    /// (`import_tasks` is resolved by the loader into a `Block`.)
    IncludeTasks { file: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoopKind {
    /// `loop:` items as given.
    Loop,
    /// `with_items:` flattens one level, as Ansible does.
    WithItems,
}

#[derive(Debug, Clone)]
pub struct LoopControl {
    pub loop_var: String,
    pub index_var: Option<String>,
    /// Template shown instead of the whole item.
    pub label: Option<String>,
    pub pause: Option<f64>,
    pub extended: bool,
}

impl Default for LoopControl {
    fn default() -> Self {
        LoopControl {
            loop_var: "item".into(),
            index_var: None,
            label: None,
            pause: None,
            extended: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<String>,
    pub kind: TaskKind,
    /// The task's first key.
    pub span: Span,
    /// Conditions, all must hold; literal booleans become "true"/"false".
    pub when: Vec<String>,
    pub loop_items: Option<Value>,
    pub loop_kind: LoopKind,
    pub loop_control: LoopControl,
    pub register: Option<String>,
    pub notify: Vec<String>,
    /// Handlers only: topics this handler also answers to.
    pub listen: Vec<String>,
    pub changed_when: Option<Vec<String>>,
    pub failed_when: Option<Vec<String>>,
    /// An expression ("true", "{{ x }}").
    pub ignore_errors: Option<String>,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    pub tags: Vec<String>,
    pub retries: Option<Value>,
    pub until: Option<Vec<String>>,
    pub delay: Option<Value>,
    pub run_once: bool,
    pub delegate_to: Option<String>,
    pub environment: Map<String, Value>,
    pub no_log: bool,
    pub vars: Map<String, Value>,
    pub check_mode: Option<bool>,
    pub diff: Option<bool>,
}

impl Task {
    /// The name shown in output: `name:` or the action's name.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.kind {
            TaskKind::Action { action, .. } => action.clone(),
            TaskKind::Block { .. } => "block".into(),
            TaskKind::IncludeTasks { file } => format!("include_tasks {file}"),
        }
    }

    /// A task with all keywords at their defaults (for the loader and tests).
    pub fn new(kind: TaskKind, span: Span) -> Self {
        Task {
            name: None,
            kind,
            span,
            when: Vec::new(),
            loop_items: None,
            loop_kind: LoopKind::Loop,
            loop_control: LoopControl::default(),
            register: None,
            notify: Vec::new(),
            listen: Vec::new(),
            changed_when: None,
            failed_when: None,
            ignore_errors: None,
            become_: None,
            become_user: None,
            tags: Vec::new(),
            retries: None,
            until: None,
            delay: None,
            run_once: false,
            delegate_to: None,
            environment: Map::new(),
            no_log: false,
            vars: Map::new(),
            check_mode: None,
            diff: None,
        }
    }
}
