//! The loaded playbook: plays and tasks as the executor runs them, every one
//! with the span it came from. Block keywords (`when`, `become`, `tags`,
//! `vars`, `environment`, `ignore_errors`, ...) are already pushed down into
//! the tasks they wrap by the loader, so the executor reads effective values.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
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
    /// A templated `become`, rendered per host (when `become_` is unset).
    pub become_expr: Option<String>,
    /// `become_method` (`sudo` or `su`) and `become_flags`.
    pub become_method: Option<String>,
    pub become_flags: Option<String>,
    /// `become_exe`: the sudo or su program to run (a path), when it is
    /// not the one on the host's PATH.
    pub become_exe: Option<String>,
    pub become_user: Option<String>,
    pub gather_facts: Option<bool>,
    /// `fact_path`: where the play's fact gathering reads local facts
    /// (`*.fact`) from, instead of `/etc/ansible/facts.d`.
    pub fact_path: Option<String>,
    /// `gather_subset` (empty: `all`).
    pub gather_subset: Vec<String>,
    /// `vars_prompt`: asked before the run, on the terminal.
    pub vars_prompt: Vec<VarPrompt>,
    pub connection: Option<String>,
    pub remote_user: Option<String>,
    /// `port`: the SSH port, below `ansible_port` and above ansible.cfg's
    /// `remote_port` (a number or a template).
    pub port: Option<String>,
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
    /// `no_log` for every task of the play, as for a task.
    pub no_log: Option<String>,
    /// `order:` as written (`inventory`, `reverse_inventory`, `sorted`,
    /// `reverse_sorted`, `shuffle`); `None` means inventory order.
    pub order: Option<String>,
    /// Strings of the play itself (name, vars, vars_files, environment) that
    /// the validator checks as templates; tasks carry their own.
    pub checks: Vec<TemplateCheck>,
    /// What the play's roles show to every task of the play.
    pub roles: PlayRoles,
}

/// The variables and names a play's roles give every task of the play,
/// in or out of a role (Ansible's role defaults and "exported" role vars).
#[derive(Debug, Clone, Default)]
pub struct PlayRoles {
    /// Defaults of every public role (lowest precedence of all).
    pub defaults: Map<String, Value>,
    /// `vars/main.yml` of every public role and its dependencies (above
    /// play vars and vars_files).
    pub exports: Map<String, Value>,
    /// `ansible_play_role_names`: the roles the play names itself.
    pub play_role_names: Vec<String>,
    /// `ansible_dependent_role_names`: roles pulled in as dependencies.
    pub dependent_role_names: Vec<String>,
}

/// The role a task belongs to, with the variables that role gives it (its
/// dependency chain already folded in, as Ansible's `get_vars(dep_chain)`).
#[derive(Debug, Clone, Default)]
pub struct RoleInfo {
    /// As Ansible names it in output: `geerlingguy.docker`, `ns.coll.role`.
    pub name: String,
    /// `role_name`: without the collection.
    pub short_name: String,
    /// `role_path`: absolute.
    pub path: PathBuf,
    /// Parent roles' paths (innermost last), searched after this one.
    pub parent_paths: Vec<PathBuf>,
    /// Role defaults for this role's tasks (under the inventory).
    pub defaults: Map<String, Value>,
    /// Role vars for this role's tasks (above play vars, under task vars).
    pub vars: Map<String, Value>,
    /// Role params (`- role: x` with `foo: 1`), above set_fact.
    pub params: Map<String, Value>,
    /// A public `include_role`: the defaults and vars it shows the play
    /// once it has run (empty otherwise).
    pub public_defaults: Map<String, Value>,
    pub public_vars: Map<String, Value>,
    /// The role's identity (path and invocation) when it runs once per
    /// host and play (no `allow_duplicates`): a host that completed it
    /// skips its later instances, as Ansible's play iterator does.
    pub once: Option<String>,
}

/// One `vars_prompt` entry.
#[derive(Debug, Clone)]
pub struct VarPrompt {
    pub name: String,
    pub prompt: String,
    pub default: Option<Value>,
    /// Asked without echo (Ansible's default).
    pub private: bool,
    /// Asked twice; the answers must match.
    pub confirm: bool,
    pub span: Span,
}

impl Play {
    /// A play with every keyword at its default (for the loader and tests).
    pub fn new(hosts: impl Into<String>, span: Span) -> Self {
        let hosts = hosts.into();
        Play {
            name: hosts.clone(),
            hosts,
            span,
            vars: Map::new(),
            vars_files: Vec::new(),
            become_: None,
            become_expr: None,
            become_method: None,
            become_flags: None,
            become_exe: None,
            become_user: None,
            gather_facts: None,
            fact_path: None,
            gather_subset: Vec::new(),
            vars_prompt: Vec::new(),
            connection: None,
            remote_user: None,
            port: None,
            pre_tasks: Vec::new(),
            tasks: Vec::new(),
            post_tasks: Vec::new(),
            handlers: Vec::new(),
            serial: Vec::new(),
            strategy: Strategy::Linear,
            max_fail_percentage: None,
            any_errors_fatal: false,
            force_handlers: None,
            environment: Map::new(),
            tags: Vec::new(),
            check_mode: None,
            no_log: None,
            order: None,
            checks: Vec::new(),
            roles: PlayRoles::default(),
        }
    }
}

/// How the validator reads a string that the loader saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Text that may contain `{{ }}`/`{% %}` (names, arguments, vars).
    Template,
    /// A bare expression (`when`, `changed_when`, `failed_when`, `until`).
    Condition,
}

/// A string from the playbook to check for template syntax, with where it
/// was written. Only the task or play that wrote the string holds it, so a
/// block's `when:` is checked once even though its children inherit it.
#[derive(Debug, Clone)]
pub struct TemplateCheck {
    /// What the string is, for the message: `name`, `when`, `vars.x`, `msg`.
    pub what: String,
    pub text: String,
    /// The scalar's span (its opening quote when quoted).
    pub span: Span,
    pub kind: CheckKind,
}

/// Where a task's parts were written, so the validator can put its caret on
/// the exact parameter or `notify` entry. The executor does not need these.
///
/// Argument spans are kept by name beside `TaskKind::Action::args`: a key
/// given as `k=v` text points into that text when it can be found on the
/// line (otherwise at the whole text); a key that came from `args:` points
/// there.
#[derive(Debug, Clone, Default)]
pub struct TaskSpans {
    /// The action key (`copy:`, `ansible.builtin.template:`, `block:`,
    /// `include_tasks:`, `import_tasks:`).
    pub action: Option<Span>,
    /// The action's value (mapping or free-form text).
    pub action_value: Option<Span>,
    /// Each argument's key, by argument name.
    pub arg_keys: IndexMap<String, Span>,
    /// Each argument's value, by argument name.
    pub arg_values: IndexMap<String, Span>,
    /// One span per `Task::notify` entry, in the same order.
    pub notify: Vec<Span>,
    /// Strings written on this task to check as templates or conditions.
    pub checks: Vec<TemplateCheck>,
}

#[derive(Debug, Clone)]
pub enum TaskKind {
    /// A module or engine action, by its short name (`copy`, `debug`, ...).
    Action { action: String, args: Value },
    /// `block`/`rescue`/`always`, and `import_tasks` (as a block of the
    /// imported tasks). The children already carry the block's keywords
    /// (pushed down by the loader); the block's own `Task` keeps the same
    /// effective values for display and for judging the block as a whole.
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
    /// `with_<lookup>:` (the keyword, e.g. `with_nested`): the value's
    /// terms go to that lookup, whose results are the items.
    Lookup(&'static str),
}

#[derive(Debug, Clone)]
pub struct LoopControl {
    pub loop_var: String,
    pub index_var: Option<String>,
    /// Template shown instead of the whole item.
    pub label: Option<String>,
    pub pause: Option<f64>,
    pub extended: bool,
    /// With `extended`, whether `ansible_loop.allitems` is set.
    pub extended_allitems: bool,
}

impl Default for LoopControl {
    fn default() -> Self {
        LoopControl {
            loop_var: "item".into(),
            index_var: None,
            label: None,
            pause: None,
            extended: false,
            extended_allitems: true,
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
    /// A templated `become`, rendered per host (when `become_` is unset).
    pub become_expr: Option<String>,
    /// `become_method` (`sudo` or `su`) and `become_flags`.
    pub become_method: Option<String>,
    pub become_flags: Option<String>,
    /// `become_exe`: the sudo or su program to run (a path), when it is
    /// not the one on the host's PATH.
    pub become_exe: Option<String>,
    pub become_user: Option<String>,
    /// `remote_user` on the task or a block around it: the user to
    /// connect as, below `ansible_user` and above the play's `remote_user`.
    pub remote_user: Option<String>,
    /// `port` on the task or a block or role around it, as for
    /// `remote_user`: below `ansible_port`, above the play's `port`.
    pub port: Option<String>,
    /// `connection` on the task or a block around it (`ssh`, `local`),
    /// below `ansible_connection` and above the play's `connection`.
    pub connection: Option<String>,
    pub tags: Vec<String>,
    pub retries: Option<Value>,
    pub until: Option<Vec<String>>,
    pub delay: Option<Value>,
    /// `timeout:` seconds (a number or a template); 0 or none: no limit.
    pub timeout: Option<Value>,
    /// `async:` seconds (a number or a template): run in the background
    /// for at most this long; none or 0: in the foreground.
    pub async_: Option<Value>,
    /// `poll:` seconds between status checks of an `async` task (default
    /// 10); 0: start it and go on (fire and forget).
    pub poll: Option<Value>,
    /// `any_errors_fatal` on the task or a block or role around it; `None`
    /// follows the play's.
    pub any_errors_fatal: Option<bool>,
    pub run_once: bool,
    /// `throttle`: at most this many hosts run the task at once (a number
    /// or a template); none or 0: `forks`.
    pub throttle: Option<Value>,
    /// `ignore_unreachable`: an unreachable result does not take the host
    /// out of the play (counted ok and ignored, as in Ansible).
    pub ignore_unreachable: bool,
    pub delegate_to: Option<String>,
    /// `delegate_facts`: facts a delegated `setup`/`set_fact` produces go
    /// to the delegated host, not the current one.
    pub delegate_facts: bool,
    pub environment: Map<String, Value>,
    /// `no_log`: an expression ("true", "{{ quiet }}"), from the task, a
    /// block or the play; `None` logs.
    pub no_log: Option<String>,
    pub vars: Map<String, Value>,
    pub check_mode: Option<bool>,
    pub diff: Option<bool>,
    /// Where things were written (for the validator's messages).
    pub spans: TaskSpans,
    /// The role this task came from (`roles:`, `import_role`, a dependency).
    pub role: Option<Arc<RoleInfo>>,
    /// This block is an `include_role`: it is a task of its own (reported
    /// `ok` or `skipped` per host, its `when` decided once), and the role's
    /// tasks run on the hosts where it ran.
    pub role_include: bool,
}

impl Task {
    /// The name shown in output: `name:` or the action's name.
    pub fn display_name(&self) -> String {
        if let Some(role) = &self.role {
            // As Ansible shows role tasks: `role : name`.
            return format!("{} : {}", role.name, self.own_display_name());
        }
        self.own_display_name()
    }

    /// The name without the role prefix.
    pub fn own_display_name(&self) -> String {
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
            become_expr: None,
            become_method: None,
            become_flags: None,
            become_exe: None,
            become_user: None,
            remote_user: None,
            port: None,
            connection: None,
            tags: Vec::new(),
            retries: None,
            until: None,
            delay: None,
            timeout: None,
            async_: None,
            poll: None,
            throttle: None,
            ignore_unreachable: false,
            delegate_facts: false,
            run_once: false,
            any_errors_fatal: None,
            delegate_to: None,
            environment: Map::new(),
            no_log: None,
            vars: Map::new(),
            check_mode: None,
            diff: None,
            spans: TaskSpans::default(),
            role: None,
            role_include: false,
        }
    }
}
