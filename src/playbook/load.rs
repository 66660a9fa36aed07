//! Loading playbook and task files into the [`model`](crate::playbook::model).
//!
//! This file owns the reading of Ansible's playbook language: play and task
//! keywords, the one-action-per-task rule, action argument normalisation
//! (`k=v` free form, `args:`), blocks and the push-down of their keywords,
//! `import_playbook` and `import_tasks` (resolved here, statically), and the
//! error for every construct we do not run. It never stops at the first
//! problem: every error is collected with the span of the key (for a bad
//! keyword) or the value (for a bad value), so a user fixes a file in one go.

use std::path::{Path, PathBuf};

use herdsman_modules::Registry;
use serde_json::{Map, Value};

use crate::actions;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::playbook::model::{
    CheckKind, LoopControl, LoopKind, Play, Playbook, Serial, Strategy, Task, TaskKind, TaskSpans,
    TemplateCheck,
};
use crate::playbook::SourceLines;
use crate::template::is_template;
use crate::yaml::{self, Node, NodeValue, Span};

#[path = "role.rs"]
mod role;
pub use role::{configure_role_paths, load_included_role};

/// Load a playbook file: plays, tasks, `import_tasks` resolved, block
/// keywords pushed down. Every error is collected, each with path:line:col.
pub fn load_playbook(path: &Path) -> Result<Playbook, Vec<Diagnostic>> {
    load_playbook_with(path, &Registry::builtin())
}

/// [`load_playbook`] with the modules a task may name.
pub fn load_playbook_with(path: &Path, modules: &Registry) -> Result<Playbook, Vec<Diagnostic>> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loader = Loader::new(dir.clone());
    loader.modules = modules.clone();
    let plays = loader.playbook_file(path, None, 0);
    loader.finish(Playbook {
        path: path.to_path_buf(),
        dir,
        plays,
    })
}

/// Load a task file (for `include_tasks` at run time and `import_tasks`).
/// Relative `import_tasks` inside it are found from the file's directory.
pub fn load_task_file(path: &Path) -> Result<Vec<Task>, Vec<Diagnostic>> {
    load_task_file_with(path, &Registry::builtin())
}

/// [`load_task_file`] with the modules a task may name.
pub fn load_task_file_with(path: &Path, modules: &Registry) -> Result<Vec<Task>, Vec<Diagnostic>> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loader = Loader::new(dir.clone());
    loader.modules = modules.clone();
    let ctx = Ctx {
        dir,
        depth: 0,
        handlers: false,
    };
    let tasks = loader.task_file(path, &Inherited::default(), &ctx, None);
    loader.finish(tasks)
}

/// What a `become:` keyword holds: a boolean (or nothing usable), or a
/// template that each host decides at run time.
enum BecomeKeyword {
    Fixed(Option<bool>),
    Templated(String),
}

/// Play keywords we read.
const PLAY_KEYWORDS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "gather_facts",
    "fact_path",
    "connection",
    "remote_user",
    "port",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "serial",
    "strategy",
    "max_fail_percentage",
    "any_errors_fatal",
    "force_handlers",
    "environment",
    "tags",
    "check_mode",
    "no_log",
    "ignore_errors",
    "diff",
    "order",
    "timeout",
    "collections",
    "gather_subset",
    "vars_prompt",
    "module_defaults",
    "throttle",
    "ignore_unreachable",
    "run_once",
];

/// Ansible play keywords we know but do not run, with what to do instead.
const PLAY_UNSUPPORTED: &[(&str, &str)] = &[
    ("debugger", "the task debugger is not supported"),
    ("gather_timeout", "facts are gathered as a whole"),
    (
        "user",
        "this old keyword was removed from Ansible; use `remote_user`",
    ),
    (
        "sudo",
        "this old keyword was removed from Ansible; use `become`",
    ),
    (
        "sudo_user",
        "this old keyword was removed from Ansible; use `become_user`",
    ),
    ("include", "use `import_playbook` to include a playbook"),
];

/// Task keywords we read (actions are found through `actions::lookup`).
const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "loop",
    "with_items",
    "loop_control",
    "register",
    "notify",
    "listen",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "remote_user",
    "port",
    "connection",
    "any_errors_fatal",
    "tags",
    "retries",
    "until",
    "delay",
    "timeout",
    "run_once",
    "delegate_to",
    "environment",
    "no_log",
    "args",
    "vars",
    "check_mode",
    "diff",
    "block",
    "rescue",
    "always",
    "collections",
    "module_defaults",
    "throttle",
    "ignore_unreachable",
    "delegate_facts",
    "async",
    "poll",
];

/// Keywords that make no sense on a block (Ansible rejects them too).
const NOT_ON_BLOCK: &[&str] = &[
    "loop",
    "with_items",
    "loop_control",
    "register",
    "until",
    "retries",
    "delay",
    "changed_when",
    "failed_when",
    "args",
    "listen",
    "async",
    "poll",
];

/// Ansible task keywords we know but do not run, with what to do instead.
const TASK_UNSUPPORTED: &[(&str, &str)] = &[
    ("debugger", "the task debugger is not supported"),
    (
        "sudo",
        "this old keyword was removed from Ansible; use `become`",
    ),
    (
        "sudo_user",
        "this old keyword was removed from Ansible; use `become_user`",
    ),
    (
        "include",
        "use `include_tasks` (at run time) or `import_tasks` (at load time)",
    ),
    (
        "import_playbook",
        "`import_playbook` is only allowed at the top level of a playbook, beside plays",
    ),
];

/// Options that Ansible pulls out of a free-form command line (`chdir=/tmp ls`).
const FREE_FORM_OPTIONS: &[&str] = &[
    "chdir",
    "creates",
    "removes",
    "executable",
    "stdin",
    "warn",
    "stdin_add_newline",
    "strip_empty_ends",
];

const LOOP_CONTROL_KEYS: &[&str] = &[
    "loop_var",
    "index_var",
    "label",
    "pause",
    "extended",
    "extended_allitems",
];

const ORDERS: &[&str] = &[
    "inventory",
    "reverse_inventory",
    "sorted",
    "reverse_sorted",
    "shuffle",
];

/// Nested imports deeper than this are surely a mistake (cycles are caught
/// earlier, by path).
const MAX_IMPORT_DEPTH: usize = 32;

/// Keywords a block, an import or a play hands down to the tasks inside.
/// A child's own value wins; `when` and `tags` accumulate.
#[derive(Clone, Default)]
struct Inherited {
    when: Vec<String>,
    tags: Vec<String>,
    notify: Vec<(String, Span)>,
    become_: Option<bool>,
    /// A templated `become` (`"{{ x }}"`), decided per host at run time.
    become_expr: Option<String>,
    /// `module_defaults` from outside in (later entries win).
    module_defaults: Vec<ModuleDefaults>,
    become_method: Option<String>,
    become_flags: Option<String>,
    become_exe: Option<String>,
    become_user: Option<String>,
    remote_user: Option<String>,
    port: Option<String>,
    connection: Option<String>,
    ignore_errors: Option<String>,
    no_log: Option<String>,
    check_mode: Option<bool>,
    diff: Option<bool>,
    run_once: Option<bool>,
    any_errors_fatal: Option<bool>,
    delegate_to: Option<String>,
    timeout: Option<Value>,
    throttle: Option<Value>,
    ignore_unreachable: Option<bool>,
    delegate_facts: Option<bool>,
    vars: Map<String, Value>,
    environment: Map<String, Value>,
}

/// Where the tasks being read come from.
#[derive(Clone)]
struct Ctx {
    /// The directory of the file being read (imports are relative to it first).
    dir: PathBuf,
    depth: usize,
    /// Inside `handlers:` (where `listen` is allowed).
    handlers: bool,
}

/// One module's `module_defaults` entry: its short name, the parameters,
/// and where they were written (for errors about them).
#[derive(Clone)]
struct ModuleDefaults {
    module: String,
    args: Map<String, Value>,
    keys: Vec<(String, Span, Span)>,
}

/// A task's keys, sorted: keywords, `block`/`rescue`/`always`, and the
/// action(s) found (more than one is an error).
#[derive(Default)]
struct TaskKeys<'n> {
    keywords: Vec<(&'static str, &'n Node, &'n Node)>,
    actions: Vec<(String, &'n Node, &'n Node)>,
    block_parts: Vec<(&'static str, &'n Node, &'n Node)>,
    broken: bool,
}

impl TaskKeys<'_> {
    fn is_block(&self) -> bool {
        self.block_parts.iter().any(|(n, _, _)| *n == "block")
    }
}

/// What `include_task` needs from the task being read.
struct TaskInclude<'a, 'n> {
    short: &'a str,
    args: &'a Value,
    value: &'n Node,
    keywords: &'a [(&'static str, &'n Node, &'n Node)],
}

/// A task's own keyword values, before inheritance.
#[derive(Default)]
struct Own {
    name: Option<String>,
    when: Vec<String>,
    loop_items: Option<(Value, LoopKind)>,
    loop_control: Option<LoopControl>,
    register: Option<String>,
    notify: Vec<(String, Span)>,
    listen: Vec<String>,
    changed_when: Option<Vec<String>>,
    failed_when: Option<Vec<String>>,
    ignore_errors: Option<String>,
    become_: Option<bool>,
    become_expr: Option<String>,
    module_defaults: Vec<ModuleDefaults>,
    become_method: Option<String>,
    become_flags: Option<String>,
    become_exe: Option<String>,
    become_user: Option<String>,
    remote_user: Option<String>,
    port: Option<String>,
    connection: Option<String>,
    tags: Vec<String>,
    retries: Option<Value>,
    until: Option<Vec<String>>,
    delay: Option<Value>,
    timeout: Option<Value>,
    run_once: Option<bool>,
    any_errors_fatal: Option<bool>,
    throttle: Option<Value>,
    ignore_unreachable: Option<bool>,
    delegate_facts: Option<bool>,
    delegate_to: Option<String>,
    environment: Option<Map<String, Value>>,
    no_log: Option<String>,
    vars: Option<Map<String, Value>>,
    check_mode: Option<bool>,
    diff: Option<bool>,
    async_: Option<Value>,
    poll: Option<Value>,
}

impl Own {
    /// What the children of a block (or import) with these keywords inherit.
    fn pushed_down(&self, inh: &Inherited) -> Inherited {
        let mut vars = inh.vars.clone();
        vars.extend(self.vars.clone().unwrap_or_default());
        let mut environment = inh.environment.clone();
        environment.extend(self.environment.clone().unwrap_or_default());
        let mut notify = self.notify.clone();
        for n in &inh.notify {
            if !notify.iter().any(|(m, _)| *m == n.0) {
                notify.push(n.clone());
            }
        }
        Inherited {
            when: inh.when.iter().chain(&self.when).cloned().collect(),
            tags: union(&inh.tags, &self.tags),
            notify,
            // `become` set here (plain or templated) wins as a whole.
            become_: if self.become_expr.is_some() {
                None
            } else {
                self.become_.or(inh.become_)
            },
            become_expr: if self.become_.is_some() {
                None
            } else {
                self.become_expr.clone().or_else(|| inh.become_expr.clone())
            },
            become_method: self
                .become_method
                .clone()
                .or_else(|| inh.become_method.clone()),
            become_flags: self
                .become_flags
                .clone()
                .or_else(|| inh.become_flags.clone()),
            become_exe: self.become_exe.clone().or_else(|| inh.become_exe.clone()),
            module_defaults: inh
                .module_defaults
                .iter()
                .chain(&self.module_defaults)
                .cloned()
                .collect(),
            become_user: self.become_user.clone().or_else(|| inh.become_user.clone()),
            remote_user: self.remote_user.clone().or_else(|| inh.remote_user.clone()),
            port: self.port.clone().or_else(|| inh.port.clone()),
            connection: self.connection.clone().or_else(|| inh.connection.clone()),
            ignore_errors: self
                .ignore_errors
                .clone()
                .or_else(|| inh.ignore_errors.clone()),
            no_log: self.no_log.clone().or_else(|| inh.no_log.clone()),
            check_mode: self.check_mode.or(inh.check_mode),
            diff: self.diff.or(inh.diff),
            run_once: self.run_once.or(inh.run_once),
            any_errors_fatal: self.any_errors_fatal.or(inh.any_errors_fatal),
            throttle: self.throttle.clone().or_else(|| inh.throttle.clone()),
            ignore_unreachable: self.ignore_unreachable.or(inh.ignore_unreachable),
            delegate_facts: self.delegate_facts.or(inh.delegate_facts),
            delegate_to: self.delegate_to.clone().or_else(|| inh.delegate_to.clone()),
            timeout: self.timeout.clone().or_else(|| inh.timeout.clone()),
            vars,
            environment,
        }
    }

    /// Build the task: inherited keywords first, the task's own on top.
    fn into_task(self, kind: TaskKind, span: Span, inh: &Inherited, spans: TaskSpans) -> Task {
        let eff = self.pushed_down(inh);
        let mut task = Task::new(kind, span);
        task.name = self.name;
        task.when = eff.when;
        if let Some((items, kind)) = self.loop_items {
            task.loop_items = Some(items);
            task.loop_kind = kind;
        }
        task.loop_control = self.loop_control.unwrap_or_default();
        task.register = self.register;
        task.notify = eff.notify.iter().map(|(n, _)| n.clone()).collect();
        task.listen = self.listen;
        task.changed_when = self.changed_when;
        task.failed_when = self.failed_when;
        task.ignore_errors = eff.ignore_errors;
        task.become_ = eff.become_;
        task.become_expr = eff.become_expr;
        task.become_method = eff.become_method;
        task.become_flags = eff.become_flags;
        task.become_exe = eff.become_exe;
        task.become_user = eff.become_user;
        task.remote_user = eff.remote_user;
        task.port = eff.port;
        task.connection = eff.connection;
        task.tags = eff.tags;
        task.retries = self.retries;
        task.until = self.until;
        task.delay = self.delay;
        task.run_once = eff.run_once.unwrap_or(false);
        task.any_errors_fatal = eff.any_errors_fatal;
        task.throttle = eff.throttle;
        task.ignore_unreachable = eff.ignore_unreachable.unwrap_or(false);
        task.delegate_facts = eff.delegate_facts.unwrap_or(false);
        task.delegate_to = eff.delegate_to;
        task.timeout = eff.timeout;
        task.async_ = self.async_;
        task.poll = self.poll;
        task.environment = eff.environment;
        task.no_log = eff.no_log;
        task.vars = eff.vars;
        task.check_mode = eff.check_mode;
        task.diff = eff.diff;
        task.spans = spans;
        task.spans.notify = eff.notify.into_iter().map(|(_, s)| s).collect();
        task
    }
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for t in b {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

struct Loader {
    errors: Vec<Diagnostic>,
    playbook_dir: PathBuf,
    /// Files being loaded, outermost first: (canonical path, path as shown).
    stack: Vec<(PathBuf, PathBuf)>,
    sources: SourceLines,
    /// The play's `collections` keyword: where short module names are looked up.
    collections: Vec<String>,
    /// The roles of the play being loaded (see `role.rs`).
    roles: role::RoleState,
    /// The modules a task may name.
    modules: Registry,
}

impl Loader {
    fn new(playbook_dir: PathBuf) -> Self {
        Loader {
            errors: Vec::new(),
            playbook_dir,
            stack: Vec::new(),
            sources: SourceLines::default(),
            collections: Vec::new(),
            roles: role::RoleState::default(),
            modules: Registry::builtin(),
        }
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<Diagnostic>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            let mut errors: Vec<Diagnostic> = Vec::new();
            for e in self.errors {
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
            Err(errors)
        }
    }

    fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// Read and parse one YAML file, remembering its lines for sub-spans.
    /// `from` is the span that named the file (an import), if any.
    fn parse(&mut self, path: &Path, from: Option<&Span>) -> Option<Node> {
        let text = match crate::diagnostic::read_source(path, "file") {
            Ok(t) => t,
            // Not UTF-8: the error points into the file itself.
            Err(d) if d.line > 0 => {
                self.error(d);
                return None;
            }
            Err(d) => {
                let d = match from {
                    Some(span) => span.diagnostic(format!(
                        "cannot read `{}`: {}",
                        path.display(),
                        d.message.trim_start_matches("cannot read file: ")
                    )),
                    None => d,
                };
                self.error(d);
                return None;
            }
        };
        self.sources.insert(path, &text);
        match yaml::parse(path, &text) {
            Ok(node) => {
                let before = self.errors.len();
                self.unquoted_templates(&node);
                (self.errors.len() == before).then_some(node)
            }
            Err(d) => {
                self.error(tidy_yaml_error(d, &text));
                None
            }
        }
    }

    /// `msg: {{ x }}` parses as a mapping whose key is a mapping: Ansible's
    /// most common YAML mistake. Say so instead of "expected a string".
    fn unquoted_templates(&mut self, node: &Node) {
        match &node.value {
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    if matches!(k.value, NodeValue::Map(_) | NodeValue::Seq(_)) {
                        self.error(
                            node.span
                                .diagnostic("a value starting with `{{` must be quoted")
                                .with_label("YAML reads this as a mapping")
                                .with_help("write the whole value in quotes: \"{{ ... }}\""),
                        );
                        return;
                    }
                    self.unquoted_templates(v);
                }
            }
            NodeValue::Seq(items) => {
                for i in items {
                    self.unquoted_templates(i);
                }
            }
            _ => {}
        }
    }

    /// Enter a file for an import; false (with an error at `from`) on a cycle.
    fn enter(&mut self, path: &Path, from: Option<&Span>, depth: usize) -> bool {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(i) = self.stack.iter().position(|(c, _)| *c == canonical) {
            let chain: Vec<String> = self.stack[i..]
                .iter()
                .map(|(_, shown)| shown.display().to_string())
                .chain(std::iter::once(path.display().to_string()))
                .collect();
            let msg = format!("import cycle: {}", chain.join(" -> "));
            match from {
                Some(span) => self.error(
                    span.diagnostic(msg)
                        .with_help("a file cannot import itself, directly or through other files"),
                ),
                None => self.error(Diagnostic::new(path, 0, 0, msg)),
            }
            return false;
        }
        if depth > MAX_IMPORT_DEPTH {
            if let Some(span) = from {
                self.error(
                    span.diagnostic(format!("imports nested more than {MAX_IMPORT_DEPTH} deep")),
                );
            }
            return false;
        }
        self.stack.push((canonical, path.to_path_buf()));
        true
    }

    // ----- plays -----

    fn playbook_file(&mut self, path: &Path, from: Option<&Span>, depth: usize) -> Vec<Play> {
        if !self.enter(path, from, depth) {
            return Vec::new();
        }
        let plays = self.playbook_file_inner(path, from, depth);
        self.stack.pop();
        plays
    }

    fn playbook_file_inner(&mut self, path: &Path, from: Option<&Span>, depth: usize) -> Vec<Play> {
        let Some(root) = self.parse(path, from) else {
            return Vec::new();
        };
        let items = match &root.value {
            NodeValue::Seq(items) => items,
            NodeValue::Null => {
                self.error(
                    // At the top of the file: editors and CI annotations
                    // need a line to point at.
                    Diagnostic::new(path, 1, 1, "the playbook is empty").with_help(
                        "a playbook is a list of plays, each starting with `- hosts: ...`",
                    ),
                );
                return Vec::new();
            }
            _ => {
                self.error(
                    root.span
                        .diagnostic(format!(
                            "a playbook must be a list of plays, found {}",
                            root.kind()
                        ))
                        .with_help("start each play with `- hosts: ...`"),
                );
                return Vec::new();
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut plays = Vec::new();
        for item in items {
            if item.as_map().is_none() {
                self.error(
                    item.span
                        .diagnostic(format!("a play must be a mapping, found {}", item.kind()))
                        .with_help("a play looks like `- hosts: all` followed by `tasks:`"),
                );
                continue;
            }
            if item.get("import_playbook").is_some() {
                plays.extend(self.import_playbook(item, &dir, depth));
            } else if let Some(play) = self.play(item, &dir, depth) {
                plays.push(play);
            }
        }
        plays
    }

    fn import_playbook(&mut self, node: &Node, dir: &Path, depth: usize) -> Vec<Play> {
        let mut file: Option<(String, Span)> = None;
        let mut vars = Map::new();
        let mut tags = Vec::new();
        for (k, v) in node.as_map().unwrap_or_default() {
            let key = k.key_text().unwrap_or_default();
            match key.as_str() {
                "import_playbook" => match v.as_str() {
                    Some(s) if is_template(s) => self.error(
                        v.span
                            .diagnostic("`import_playbook` needs a file name without templates")
                            .with_help("imports are resolved before any variable is known"),
                    ),
                    Some(s) => file = Some((s.to_string(), v.span.clone())),
                    None => self.wrong_type(v, "import_playbook", "a file name"),
                },
                "name" => {}
                "vars" => vars = self.vars(v, "vars", &mut Vec::new()),
                "tags" => tags = self.tags(v),
                _ => self.error(
                    k.span
                        .diagnostic(format!("`{key}` is not supported on `import_playbook`"))
                        .with_label("expected one of: import_playbook, name, vars, tags"),
                ),
            }
        }
        let Some((name, span)) = file else {
            return Vec::new();
        };
        let path = dir.join(&name);
        if !path.is_file() {
            self.error(
                span.diagnostic(format!("playbook `{name}` not found"))
                    .with_label(format!("looked in {}", shown_dir(dir))),
            );
            return Vec::new();
        }
        let mut plays = self.playbook_file(&path, Some(&span), depth + 1);
        for play in &mut plays {
            // Ansible lets the import's vars override the imported plays' own.
            play.vars.extend(vars.clone());
            play.tags = union(&play.tags, &tags);
        }
        plays
    }

    fn play(&mut self, node: &Node, dir: &Path, depth: usize) -> Option<Play> {
        self.collections.clear();
        let entries = node.as_map().unwrap_or_default();
        let first = entries
            .first()
            .map(|(k, _)| k.span.clone())
            .unwrap_or(node.span.clone());
        let mut play = Play::new(String::new(), first.clone());
        let mut name = None;
        let mut hosts = None;
        let mut inherited = Inherited::default();
        let mut sections: Vec<(&str, &Node)> = Vec::new();
        let mut checks = Vec::new();
        let mut roles_node = None;
        for (k, v) in entries {
            let key = k.key_text().unwrap_or_default();
            match key.as_str() {
                "name" => {
                    name = self.text(v, "name");
                    collect_checks(v, "name", &mut checks);
                }
                "hosts" => {
                    hosts = self.hosts(v);
                    collect_checks(v, "hosts", &mut checks);
                }
                "vars" => play.vars = self.vars(v, "vars", &mut checks),
                "vars_files" => play.vars_files = self.vars_files(v, &mut checks),
                "become" => match self.become_flag(v, &mut checks) {
                    BecomeKeyword::Templated(expr) => play.become_expr = Some(expr),
                    BecomeKeyword::Fixed(b) => play.become_ = b,
                },
                "become_user" => {
                    play.become_user = self.text(v, "become_user");
                    collect_checks(v, "become_user", &mut checks);
                }
                "become_method" => play.become_method = self.become_method(v),
                "become_flags" => {
                    play.become_flags = self.text(v, "become_flags");
                    collect_checks(v, "become_flags", &mut checks);
                }
                "become_exe" => {
                    play.become_exe = self.text(v, "become_exe");
                    collect_checks(v, "become_exe", &mut checks);
                }
                "gather_facts" => play.gather_facts = self.boolean(v, "gather_facts"),
                "fact_path" => play.fact_path = self.text(v, "fact_path"),
                "connection" => {
                    play.connection = self.choice(v, "connection", &["ssh", "local", "smart"]);
                }
                "remote_user" => {
                    play.remote_user = self.text(v, "remote_user");
                    collect_checks(v, "remote_user", &mut checks);
                }
                "port" => {
                    play.port = self.text(v, "port");
                    collect_checks(v, "port", &mut checks);
                }
                "pre_tasks" | "tasks" | "post_tasks" | "handlers" => sections.push((
                    PLAY_KEYWORDS
                        .iter()
                        .copied()
                        .find(|s| *s == key)
                        .unwrap_or("tasks"),
                    v,
                )),
                "serial" => play.serial = self.serial(v),
                "strategy" => {
                    play.strategy = match self.choice(v, "strategy", &["linear", "free"]).as_deref()
                    {
                        Some("free") => Strategy::Free,
                        _ => Strategy::Linear,
                    }
                }
                "max_fail_percentage" => play.max_fail_percentage = self.percentage(v),
                "any_errors_fatal" => {
                    play.any_errors_fatal = self.boolean(v, "any_errors_fatal").unwrap_or(false);
                }
                "force_handlers" => play.force_handlers = self.boolean(v, "force_handlers"),
                "environment" => play.environment = self.environment(v, &mut checks),
                "tags" => play.tags = self.tags(v),
                "check_mode" => play.check_mode = self.boolean(v, "check_mode"),
                "no_log" => {
                    // Ansible applies a play's no_log to every task in it.
                    play.no_log = self.expression_flag(v, "no_log");
                    inherited.no_log = play.no_log.clone();
                }
                "ignore_errors" => {
                    inherited.ignore_errors = self.expression_flag(v, "ignore_errors");
                }
                "diff" => inherited.diff = self.boolean(v, "diff"),
                "timeout" => inherited.timeout = self.number_or_template(v, "timeout", &mut checks),
                "order" => play.order = self.choice(v, "order", ORDERS),
                "collections" => self.collections = task_collections(entries),
                "gather_subset" => play.gather_subset = string_list(v),
                "module_defaults" => {
                    inherited.module_defaults = self.module_defaults(v, &mut checks);
                }
                "throttle" => {
                    inherited.throttle = self.number_or_template(v, "throttle", &mut checks);
                }
                // A play's `run_once` is every task's, as in Ansible.
                "run_once" => inherited.run_once = self.boolean(v, "run_once"),
                "ignore_unreachable" => {
                    inherited.ignore_unreachable = self.boolean(v, "ignore_unreachable");
                }
                "vars_prompt" => play.vars_prompt = self.vars_prompt(v),
                "roles" => roles_node = Some(v),
                _ => self.bad_play_keyword(k, &key),
            }
        }
        let ctx = Ctx {
            dir: dir.to_path_buf(),
            depth,
            handlers: false,
        };
        self.begin_play_roles();
        let role_tasks = roles_node
            .map(|v| self.play_roles(v, &inherited, &ctx))
            .unwrap_or_default();
        for (section, v) in sections {
            let ctx = Ctx {
                handlers: section == "handlers",
                ..ctx.clone()
            };
            let tasks = self.tasks(v, section, &inherited, &ctx);
            match section {
                "pre_tasks" => play.pre_tasks = tasks,
                "post_tasks" => play.post_tasks = tasks,
                "handlers" => play.handlers = tasks,
                _ => play.tasks = tasks,
            }
        }
        self.end_play_roles(&mut play, role_tasks);
        play.checks = checks;
        let Some(hosts) = hosts else {
            if !entries
                .iter()
                .any(|(k, _)| k.key_text().as_deref() == Some("hosts"))
            {
                self.error(
                    first
                        .diagnostic("play has no `hosts`")
                        .with_label("this play")
                        .with_help("every play needs a host pattern, e.g. `hosts: all`"),
                );
            }
            return None;
        };
        play.name = name.unwrap_or_else(|| hosts.clone());
        play.hosts = hosts;
        Some(play)
    }

    fn bad_play_keyword(&mut self, k: &Node, key: &str) {
        if let Some((_, help)) = PLAY_UNSUPPORTED.iter().find(|(n, _)| *n == key) {
            self.error(
                k.span
                    .diagnostic(format!("unsupported keyword `{key}`"))
                    .with_label("Ansible knows this play keyword; herd does not run it")
                    .with_help(*help),
            );
            return;
        }
        let mut d = k.span.diagnostic(format!("unknown play keyword `{key}`"));
        if let Some(s) = did_you_mean(key, PLAY_KEYWORDS.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if actions::lookup(&self.modules, key).is_some() {
            d = d.with_help("modules go in a task under `tasks:`");
        }
        self.error(d);
    }

    fn hosts(&mut self, v: &Node) -> Option<String> {
        let pattern = match &v.value {
            NodeValue::Str(s) => Some(s.trim().to_string()),
            NodeValue::Seq(items) => {
                let mut parts = Vec::new();
                for i in items {
                    match i.as_str() {
                        Some(s) => parts.push(s.trim().to_string()),
                        None => {
                            self.wrong_type(i, "hosts", "a host pattern");
                            return None;
                        }
                    }
                }
                Some(parts.join(":"))
            }
            _ => {
                self.wrong_type(v, "hosts", "a host pattern or a list of them");
                return None;
            }
        };
        match pattern {
            Some(p) if p.is_empty() => {
                self.error(
                    v.span
                        .diagnostic("`hosts` is empty")
                        .with_help("use e.g. `hosts: all`"),
                );
                None
            }
            p => p,
        }
    }

    fn vars_files(&mut self, v: &Node, checks: &mut Vec<TemplateCheck>) -> Vec<(String, Span)> {
        collect_checks(v, "vars_files", checks);
        match &v.value {
            NodeValue::Str(s) => vec![(s.clone(), v.span.clone())],
            NodeValue::Null => Vec::new(),
            NodeValue::Seq(items) => items
                .iter()
                .filter_map(|i| match i.as_str() {
                    Some(s) => Some((s.to_string(), i.span.clone())),
                    None => {
                        self.wrong_type(i, "vars_files", "a file name");
                        None
                    }
                })
                .collect(),
            _ => {
                self.wrong_type(v, "vars_files", "a list of file names");
                Vec::new()
            }
        }
    }

    /// `become`: a boolean, or a template decided per host at run time, as
    /// Ansible templates every keyword.
    fn become_flag(&mut self, v: &Node, checks: &mut Vec<TemplateCheck>) -> BecomeKeyword {
        if let NodeValue::Str(s) = &v.value {
            if is_template(s) {
                collect_checks(v, "become", checks);
                return BecomeKeyword::Templated(s.clone());
            }
        }
        BecomeKeyword::Fixed(self.boolean(v, "become"))
    }

    /// `vars_prompt`: a list of `{name, prompt, default, private, confirm}`.
    fn vars_prompt(&mut self, v: &Node) -> Vec<crate::playbook::model::VarPrompt> {
        const KEYS: &[&str] = &[
            "name",
            "prompt",
            "default",
            "private",
            "confirm",
            "encrypt",
            "salt_size",
            "salt",
            "unsafe",
        ];
        let NodeValue::Seq(items) = &v.value else {
            self.wrong_type(v, "vars_prompt", "a list of prompts");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(entries) = item.as_map() else {
                self.wrong_type(item, "vars_prompt", "a mapping with `name` and `prompt`");
                continue;
            };
            let mut p = crate::playbook::model::VarPrompt {
                name: String::new(),
                prompt: String::new(),
                default: None,
                private: true,
                confirm: false,
                span: item.span.clone(),
            };
            for (k, val) in entries {
                let key = k.key_text().unwrap_or_default();
                match key.as_str() {
                    "name" => p.name = self.text(val, "name").unwrap_or_default(),
                    "prompt" => p.prompt = self.text(val, "prompt").unwrap_or_default(),
                    "default" => p.default = Some(val.to_json()),
                    "private" => p.private = self.boolean(val, "private").unwrap_or(true),
                    "confirm" => p.confirm = self.boolean(val, "confirm").unwrap_or(false),
                    k2 if KEYS.contains(&k2) => {
                        self.error(
                            k.span
                                .diagnostic(format!("unsupported `vars_prompt` option `{k2}`"))
                                .with_help("hash the value with the `password_hash` filter where it is used"),
                        );
                    }
                    _ => {
                        let mut d = k
                            .span
                            .diagnostic(format!("unknown `vars_prompt` option `{key}`"));
                        if let Some(s) = did_you_mean(&key, KEYS.iter().copied()) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        self.error(d);
                    }
                }
            }
            if p.name.is_empty() {
                self.error(item.span.diagnostic("a `vars_prompt` entry needs a `name`"));
                continue;
            }
            if p.prompt.is_empty() {
                p.prompt = p.name.clone();
            }
            out.push(p);
        }
        out
    }

    /// `module_defaults: {module: {param: value}}` (`group/...` names are
    /// not supported and reported).
    fn module_defaults(
        &mut self,
        v: &Node,
        checks: &mut Vec<TemplateCheck>,
    ) -> Vec<ModuleDefaults> {
        // Ansible also takes a list of such mappings.
        let maps: Vec<&Node> = match &v.value {
            NodeValue::Map(_) => vec![v],
            NodeValue::Seq(items) => items.iter().collect(),
            NodeValue::Null => Vec::new(),
            _ => {
                self.wrong_type(
                    v,
                    "module_defaults",
                    "a mapping of module names to parameters",
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for m in maps {
            let Some(entries) = m.as_map() else {
                self.wrong_type(
                    m,
                    "module_defaults",
                    "a mapping of module names to parameters",
                );
                continue;
            };
            for (k, params) in entries {
                let name = k.key_text().unwrap_or_default();
                if name.starts_with("group/") {
                    self.error(
                        k.span
                            .diagnostic(format!("unsupported `module_defaults` group `{name}`"))
                            .with_help("name each module instead"),
                    );
                    continue;
                }
                let Some(pairs) = params.as_map() else {
                    self.wrong_type(params, &name, "a mapping of parameters");
                    continue;
                };
                let mut d = ModuleDefaults {
                    module: actions::short_name(&name).to_string(),
                    args: Map::new(),
                    keys: Vec::new(),
                };
                for (pk, pv) in pairs {
                    let key = pk.key_text().unwrap_or_default();
                    collect_checks(pv, &key, checks);
                    d.keys.push((key.clone(), pk.span.clone(), pv.span.clone()));
                    d.args.insert(key, pv.to_json());
                }
                out.push(d);
            }
        }
        out
    }

    fn become_method(&mut self, v: &Node) -> Option<String> {
        match v.as_str() {
            Some(m @ ("sudo" | "su")) => Some(m.to_string()),
            Some(m) if is_template(m) => Some(m.to_string()),
            Some(other) => {
                self.error(
                    v.span
                        .diagnostic(format!("unsupported become_method `{other}`"))
                        .with_label("expected: sudo or su"),
                );
                None
            }
            None => {
                self.wrong_type(v, "become_method", "a method name");
                None
            }
        }
    }

    fn serial(&mut self, v: &Node) -> Vec<Serial> {
        match &v.value {
            NodeValue::Seq(items) => items
                .iter()
                .filter_map(|i| self.serial_one(i, true))
                .collect(),
            _ => self.serial_one(v, false).into_iter().collect(),
        }
    }

    fn serial_one(&mut self, v: &Node, in_list: bool) -> Option<Serial> {
        let bad = |this: &mut Self| {
            this.error(v.span.diagnostic("invalid `serial`").with_label(
                "expected a number of hosts, a percentage like \"30%\", or a list of them",
            ));
            None
        };
        match &v.value {
            NodeValue::Int(n) if *n > 0 => Some(Serial::Count(*n as usize)),
            // `serial: 0` means "all hosts at once", as in Ansible.
            NodeValue::Int(0) if !in_list => None,
            NodeValue::Str(s) => {
                let s = s.trim();
                if let Some(p) = s.strip_suffix('%') {
                    match p.trim().parse::<f64>() {
                        Ok(p) if p > 0.0 && p <= 100.0 => Some(Serial::Percent(p)),
                        _ => bad(self),
                    }
                } else {
                    match s.parse::<usize>() {
                        Ok(n) if n > 0 => Some(Serial::Count(n)),
                        _ => bad(self),
                    }
                }
            }
            _ => bad(self),
        }
    }

    fn percentage(&mut self, v: &Node) -> Option<f64> {
        let n = match &v.value {
            NodeValue::Int(i) => Some(*i as f64),
            NodeValue::Float(f) => Some(*f),
            NodeValue::Str(s) => s.trim().trim_end_matches('%').parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (0.0..=100.0).contains(&n) => Some(n),
            _ => {
                self.error(
                    v.span
                        .diagnostic("invalid `max_fail_percentage`")
                        .with_label("expected a number from 0 to 100"),
                );
                None
            }
        }
    }

    // ----- tasks -----

    fn tasks(&mut self, v: &Node, section: &str, inh: &Inherited, ctx: &Ctx) -> Vec<Task> {
        match &v.value {
            NodeValue::Null => Vec::new(),
            NodeValue::Seq(items) => items
                .iter()
                .filter_map(|item| match &item.value {
                    NodeValue::Map(entries) if !entries.is_empty() => self.task(item, inh, ctx),
                    _ => {
                        self.error(
                            item.span
                                .diagnostic(format!("a task must be a mapping, found {}", item.kind()))
                                .with_help("a task looks like `- name: ...` followed by a module, e.g. `debug: msg=hi`"),
                        );
                        None
                    }
                })
                .collect(),
            _ => {
                self.error(
                    v.span
                        .diagnostic(format!("`{section}` must be a list of tasks, found {}", v.kind()))
                        .with_help("write each task as a list item starting with `- `"),
                );
                Vec::new()
            }
        }
    }

    /// A task file for `import_tasks` / `load_task_file`.
    fn task_file(
        &mut self,
        path: &Path,
        inh: &Inherited,
        ctx: &Ctx,
        from: Option<&Span>,
    ) -> Vec<Task> {
        if !self.enter(path, from, ctx.depth) {
            return Vec::new();
        }
        let tasks = match self.parse(path, from) {
            Some(root) => {
                let ctx = Ctx {
                    dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                    ..ctx.clone()
                };
                match &root.value {
                    NodeValue::Seq(_) | NodeValue::Null => {
                        self.tasks(&root, "task file", inh, &ctx)
                    }
                    _ => {
                        self.error(
                            root.span
                                .diagnostic(format!(
                                    "a task file must be a list of tasks, found {}",
                                    root.kind()
                                ))
                                .with_help("write each task as a list item starting with `- `"),
                        );
                        Vec::new()
                    }
                }
            }
            None => Vec::new(),
        };
        self.stack.pop();
        tasks
    }

    fn task(&mut self, node: &Node, inh: &Inherited, ctx: &Ctx) -> Option<Task> {
        let entries = node.as_map().unwrap_or_default();
        let span = entries
            .first()
            .map(|(k, _)| k.span.clone())
            .unwrap_or(node.span.clone());
        // `action:` and `local_action:` become the module key they name.
        let expanded = self.action_keywords(entries);
        let entries: &[(Node, Node)] = expanded.as_deref().unwrap_or(entries);
        let mut keys = self.classify_task_keys(entries);
        self.check_task_shape(&mut keys, &span);

        let mut checks = Vec::new();
        let (own, args_node) = self.own_keywords(&keys.keywords, ctx, &mut checks);

        if keys.is_block() {
            let pushed = own.pushed_down(inh);
            let mut parts: [Vec<Task>; 3] = Default::default();
            let mut block_key = None;
            for (name, k, v) in &keys.block_parts {
                let i = match *name {
                    "block" => {
                        block_key = Some(k.span.clone());
                        0
                    }
                    "rescue" => 1,
                    _ => 2,
                };
                parts[i] = self.tasks(v, name, &pushed, ctx);
            }
            let [block, rescue, always] = parts;
            let spans = TaskSpans {
                action: block_key,
                checks,
                ..TaskSpans::default()
            };
            let kind = TaskKind::Block {
                block,
                rescue,
                always,
            };
            return (!keys.broken).then(|| own.into_task(kind, span, inh, spans));
        }
        if keys.broken {
            return None;
        }
        let (name, key, value) = keys.actions.pop()?;
        let short = actions::short_name(&name).to_string();
        let mut spans = TaskSpans {
            action: Some(key.span.clone()),
            action_value: Some(value.span.clone()),
            checks,
            ..TaskSpans::default()
        };
        let mut args = self.action_args(&short, value, args_node, &mut spans)?;
        apply_module_defaults(
            &short,
            &own.pushed_down(inh).module_defaults,
            &mut args,
            &mut spans,
        );
        match short.as_str() {
            "import_role" | "include_role" => {
                self.role_task(&short, &args, &keys.keywords, own, span, inh, ctx, spans)
            }
            "import_tasks" | "include_tasks" => {
                let include = TaskInclude {
                    short: &short,
                    args: &args,
                    value,
                    keywords: &keys.keywords,
                };
                self.include_task(include, own, span, inh, spans, ctx)
            }
            _ => Some(own.into_task(
                TaskKind::Action {
                    action: short,
                    args,
                },
                span,
                inh,
                spans,
            )),
        }
    }

    /// `action: module k=v` / `action: {module: m, k: v}` and the same for
    /// `local_action`, rewritten as the task key `module` with its
    /// arguments (and `delegate_to: localhost` for `local_action`), as
    /// Ansible's argument parser does. `None` when the task has neither.
    fn action_keywords(&mut self, entries: &[(Node, Node)]) -> Option<Vec<(Node, Node)>> {
        let is_action =
            |k: &Node| matches!(k.key_text().as_deref(), Some("action" | "local_action"));
        if !entries.iter().any(|(k, _)| is_action(k)) {
            return None;
        }
        let mut out = Vec::with_capacity(entries.len() + 1);
        for (k, v) in entries {
            if !is_action(k) {
                out.push((k.clone(), v.clone()));
                continue;
            }
            let local = k.key_text().as_deref() == Some("local_action");
            if local {
                let delegated = entries
                    .iter()
                    .find(|(k, _)| k.key_text().as_deref() == Some("delegate_to"));
                if let Some((d, _)) = delegated {
                    self.error(
                        d.span
                            .diagnostic("`delegate_to` and `local_action` are mutually exclusive")
                            .with_help("`local_action` already runs the module on localhost"),
                    );
                }
                let localhost = |text: &str| Node {
                    value: NodeValue::Str(text.to_string()),
                    span: k.span.clone(),
                };
                out.push((localhost("delegate_to"), localhost("localhost")));
            }
            match self.action_module(k, v) {
                Some(pair) => out.push(pair),
                // Keep the key: it is reported as having no module.
                None => out.push((k.clone(), v.clone())),
            }
        }
        Some(out)
    }

    /// The (module key, arguments) an `action`/`local_action` value names.
    fn action_module(&mut self, k: &Node, v: &Node) -> Option<(Node, Node)> {
        let name = k.key_text().unwrap_or_default();
        match &v.value {
            NodeValue::Str(text) => {
                let start = text.len() - text.trim_start().len();
                let module: String = text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                if module.is_empty() {
                    self.error(v.span.diagnostic(format!("`{name}` names no module")));
                    return None;
                }
                let module_span = self.sources.sub_span(
                    &v.span,
                    text,
                    text[..start].chars().count(),
                    module.chars().count(),
                );
                let rest_at = start + module.len();
                let rest = text[rest_at..].trim_start();
                let rest_offset = text.len() - rest.len();
                let rest_span = self.sources.sub_span(
                    &v.span,
                    text,
                    text[..rest_offset].chars().count(),
                    rest.chars().count(),
                );
                let args = if rest.is_empty() {
                    NodeValue::Null
                } else {
                    NodeValue::Str(rest.to_string())
                };
                Some((
                    Node {
                        value: NodeValue::Str(module),
                        span: module_span,
                    },
                    Node {
                        value: args,
                        span: rest_span,
                    },
                ))
            }
            NodeValue::Map(entries) => {
                let module = entries
                    .iter()
                    .find(|(mk, _)| mk.key_text().as_deref() == Some("module"));
                let Some((_, m)) = module.filter(|(_, m)| m.as_str().is_some()) else {
                    self.error(
                        k.span
                            .diagnostic(format!("`{name}` names no module"))
                            .with_help("add `module: <name>` beside its parameters"),
                    );
                    return None;
                };
                let rest: Vec<(Node, Node)> = entries
                    .iter()
                    .filter(|(mk, _)| mk.key_text().as_deref() != Some("module"))
                    .cloned()
                    .collect();
                let args = if rest.is_empty() {
                    NodeValue::Null
                } else {
                    NodeValue::Map(rest)
                };
                Some((
                    m.clone(),
                    Node {
                        value: args,
                        span: v.span.clone(),
                    },
                ))
            }
            _ => {
                self.wrong_type(
                    v,
                    &name,
                    "`module key=value` text or a mapping with `module:`",
                );
                None
            }
        }
    }

    /// Sort a task's keys into keywords, block parts and actions; an
    /// unknown key is reported here.
    fn classify_task_keys<'n>(&mut self, entries: &'n [(Node, Node)]) -> TaskKeys<'n> {
        let mut keys = TaskKeys::default();
        for (k, v) in entries {
            let key = k.key_text().unwrap_or_default();
            if let Some(kw) = TASK_KEYWORDS.iter().find(|s| **s == key) {
                if matches!(*kw, "block" | "rescue" | "always") {
                    keys.block_parts.push((kw, k, v));
                } else {
                    keys.keywords.push((kw, k, v));
                }
            } else if let Some(l) = crate::template::lookups::for_loop_keyword(&key) {
                keys.keywords.push((l.with_keyword, k, v));
            } else if actions::lookup(&self.modules, &key).is_some()
                || role::is_role_action(&key)
                || self.known_module(&key, entries)
            {
                keys.actions.push((key, k, v));
            } else if matches!(key.as_str(), "action" | "local_action") {
                // Its value named no module; `action_keywords` said so.
                keys.broken = true;
            } else {
                self.bad_task_key(k, &key);
                keys.broken = true;
            }
        }
        keys
    }

    /// The one-action-per-task rule and what a block may carry.
    fn check_task_shape(&mut self, keys: &mut TaskKeys<'_>, span: &Span) {
        let is_block = keys.is_block();
        if !is_block {
            if let Some((n, k, _)) = keys.block_parts.first() {
                self.error(
                    k.span
                        .diagnostic(format!("`{n}` is only valid together with `block`"))
                        .with_help("put the tasks to protect under `block:`"),
                );
                keys.broken = true;
            }
        }
        if is_block {
            if let Some((name, k, _)) = keys.actions.first() {
                self.error(
                    k.span
                        .diagnostic(format!("a block cannot also run an action (`{name}`)"))
                        .with_help("move the action into the block's task list"),
                );
                keys.broken = true;
            }
            for (kw, k, _) in &keys.keywords {
                if NOT_ON_BLOCK.contains(kw) || kw.starts_with("with_") {
                    self.error(
                        k.span
                            .diagnostic(format!("`{kw}` is not valid on a block"))
                            .with_help("set it on the tasks inside the block"),
                    );
                    keys.broken = true;
                }
            }
        } else if keys.actions.len() > 1 {
            let names: Vec<&str> = keys.actions.iter().map(|(n, _, _)| n.as_str()).collect();
            let (_, first_key, _) = &keys.actions[0];
            let (_, second_key, _) = &keys.actions[1];
            self.error(
                second_key
                    .span
                    .diagnostic(format!(
                        "conflicting action statements: {}",
                        names.join(", ")
                    ))
                    .with_label(format!(
                        "`{}` is already at {}",
                        names[0],
                        short_location(&first_key.span)
                    ))
                    .with_help("a task runs exactly one module; split it into separate tasks"),
            );
            keys.broken = true;
        } else if keys.actions.is_empty() && !keys.broken {
            self.error(
                span.diagnostic("task has no action")
                    .with_label("this task")
                    .with_help("add a module to run, e.g. `debug: msg=hello`"),
            );
            keys.broken = true;
        }
    }

    /// `include_tasks` (resolved at run time) and `import_tasks` (read now).
    fn include_task(
        &mut self,
        inc: TaskInclude<'_, '_>,
        own: Own,
        span: Span,
        inh: &Inherited,
        spans: TaskSpans,
        ctx: &Ctx,
    ) -> Option<Task> {
        let file = self.include_file(inc.short, inc.args, &spans, inc.value)?;
        if inc.short == "include_tasks" {
            return Some(own.into_task(TaskKind::IncludeTasks { file }, span, inh, spans));
        }
        if let Some((kw, k, _)) = inc
            .keywords
            .iter()
            .find(|(kw, _, _)| matches!(*kw, "loop" | "loop_control") || kw.starts_with("with_"))
        {
            self.error(
                k.span
                    .diagnostic(format!("`{kw}` cannot be used on `import_tasks`"))
                    .with_help("use `include_tasks` to loop over a task file"),
            );
            return None;
        }
        let file_span = spans
            .arg_values
            .get("file")
            .or_else(|| spans.arg_values.get("_raw_params"))
            .cloned()
            .unwrap_or(inc.value.span.clone());
        let block = self.import_tasks(&file, &file_span, &own.pushed_down(inh), ctx)?;
        let kind = TaskKind::Block {
            block,
            rescue: Vec::new(),
            always: Vec::new(),
        };
        Some(own.into_task(kind, span, inh, spans))
    }

    /// A module Ansible knows (in its `ansible.builtin` list or a common
    /// collection) that herd does not implement: the task loads, `validate`
    /// warns, and it fails only on a host that reaches it. The task's own
    /// `collections` keyword and the play's are searched for short names.
    fn known_module(&self, key: &str, entries: &[(Node, Node)]) -> bool {
        let mut collections = task_collections(entries);
        collections.extend(self.collections.iter().cloned());
        crate::known_modules::resolve(key, &collections).is_some()
    }

    fn bad_task_key(&mut self, k: &Node, key: &str) {
        if let Some((_, help)) = TASK_UNSUPPORTED.iter().find(|(n, _)| *n == key) {
            self.error(
                k.span
                    .diagnostic(format!("unsupported keyword `{key}`"))
                    .with_label("Ansible knows this keyword; herd does not run it")
                    .with_help(*help),
            );
            return;
        }
        if let Some(name) = key.strip_prefix("with_") {
            let known: Vec<&str> = crate::template::lookups::LOOKUPS
                .iter()
                .map(|l| l.with_keyword)
                .collect();
            let mut d = k
                .span
                .diagnostic(format!("unknown loop keyword `{key}`"))
                .with_label(format!("herd has no `{name}` lookup to loop over"));
            d = match did_you_mean(key, known.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("loops herd knows: loop, {}", known.join(", "))),
            };
            self.error(d);
            return;
        }
        let short = actions::short_name(key);
        let prefix = &key[..key.len() - short.len()];
        let modules = actions::all_names(&self.modules);
        let keyword = did_you_mean(key, TASK_KEYWORDS.iter().copied());
        let module = did_you_mean(
            short,
            modules
                .iter()
                .copied()
                .chain(crate::known_modules::short_names()),
        );
        let closer_keyword = match (keyword, module) {
            (Some(kw), Some(m)) => {
                strsim::damerau_levenshtein(key, kw) <= strsim::damerau_levenshtein(short, m)
            }
            (Some(_), None) => true,
            _ => false,
        };
        let d = if closer_keyword && prefix.is_empty() {
            k.span
                .diagnostic(format!("unknown task keyword `{key}`"))
                .with_help(format!("did you mean `{}`?", keyword.unwrap_or_default()))
        } else if let Some(m) = module {
            k.span
                .diagnostic(format!("unknown module or keyword `{key}`"))
                .with_help(format!("did you mean `{prefix}{m}`?"))
        } else if key.split('.').count() >= 3 {
            k.span
                .diagnostic(format!("unknown module `{key}`"))
                .with_label("neither herd nor Ansible's common collections have this module")
                .with_help(format!("built-in modules: {}", modules.join(", ")))
        } else {
            k.span
                .diagnostic(format!("unknown module or keyword `{key}`"))
                .with_label("neither a task keyword nor a known module")
        };
        self.error(d);
    }

    /// Read the task's keywords (not the action). Returns them and the
    /// `args:` node, which is merged into the action's arguments.
    fn own_keywords<'n>(
        &mut self,
        keywords: &[(&'static str, &'n Node, &'n Node)],
        ctx: &Ctx,
        checks: &mut Vec<TemplateCheck>,
    ) -> (Own, Option<&'n Node>) {
        let mut own = Own::default();
        let mut args = None;
        let mut loop_key: Option<&str> = None;
        for (kw, k, v) in keywords {
            let kw = *kw;
            match kw {
                "name" => {
                    own.name = self.text(v, "name");
                    collect_checks(v, "name", checks);
                }
                "when" => own.when = self.conditions(v, "when", checks).unwrap_or_default(),
                "changed_when" => own.changed_when = self.conditions(v, "changed_when", checks),
                "failed_when" => own.failed_when = self.conditions(v, "failed_when", checks),
                "until" => own.until = self.conditions(v, "until", checks),
                _ if kw == "loop" || kw.starts_with("with_") => {
                    if let Some(other) = loop_key {
                        self.error(
                            k.span
                                .diagnostic(format!("conflicting loops: `{other}` and `{kw}`"))
                                .with_help("a task has one loop"),
                        );
                        continue;
                    }
                    loop_key = Some(kw);
                    match &v.value {
                        NodeValue::Map(_) if kw.starts_with("with_") && kw != "with_items" => {
                            collect_checks(v, kw, checks);
                            own.loop_items = Some((v.to_json(), LoopKind::Lookup(kw)));
                        }
                        NodeValue::Seq(_) | NodeValue::Str(_) => {
                            collect_checks(v, kw, checks);
                            let kind = match kw {
                                "loop" => LoopKind::Loop,
                                "with_items" => LoopKind::WithItems,
                                other => LoopKind::Lookup(other),
                            };
                            own.loop_items = Some((v.to_json(), kind));
                        }
                        _ => self.wrong_type(v, kw, "a list or a template like \"{{ items }}\""),
                    }
                }
                "loop_control" => own.loop_control = self.loop_control(v, checks),
                "register" => own.register = self.identifier(v, "register"),
                "notify" => {
                    own.notify = self.string_list(v, "notify", checks);
                }
                "listen" => {
                    if !ctx.handlers {
                        self.error(
                            k.span
                                .diagnostic("`listen` is only valid in handlers")
                                .with_help("move this task under `handlers:`, or use `notify` to trigger a handler"),
                        );
                    }
                    own.listen = self
                        .string_list(v, "listen", checks)
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect();
                }
                "ignore_errors" => own.ignore_errors = self.expression_flag(v, "ignore_errors"),
                "module_defaults" => own.module_defaults = self.module_defaults(v, checks),
                "become" => match self.become_flag(v, checks) {
                    BecomeKeyword::Templated(expr) => own.become_expr = Some(expr),
                    BecomeKeyword::Fixed(b) => own.become_ = b,
                },
                "become_user" => {
                    own.become_user = self.text(v, "become_user");
                    collect_checks(v, "become_user", checks);
                }
                "become_method" => own.become_method = self.become_method(v),
                "become_flags" => {
                    own.become_flags = self.text(v, "become_flags");
                    collect_checks(v, "become_flags", checks);
                }
                "become_exe" => {
                    own.become_exe = self.text(v, "become_exe");
                    collect_checks(v, "become_exe", checks);
                }
                "remote_user" => {
                    own.remote_user = self.text(v, "remote_user");
                    collect_checks(v, "remote_user", checks);
                }
                "port" => {
                    own.port = self.text(v, "port");
                    collect_checks(v, "port", checks);
                }
                "connection" => {
                    own.connection = self.text(v, "connection");
                    collect_checks(v, "connection", checks);
                }
                "tags" => own.tags = self.tags(v),
                "retries" => own.retries = self.number_or_template(v, "retries", checks),
                "delay" => own.delay = self.number_or_template(v, "delay", checks),
                "timeout" => own.timeout = self.number_or_template(v, "timeout", checks),
                "async" => own.async_ = self.number_or_template(v, "async", checks),
                "poll" => own.poll = self.number_or_template(v, "poll", checks),
                "run_once" => own.run_once = self.boolean(v, "run_once"),
                "any_errors_fatal" => {
                    own.any_errors_fatal = self.boolean(v, "any_errors_fatal");
                }
                "throttle" => own.throttle = self.number_or_template(v, "throttle", checks),
                "ignore_unreachable" => {
                    own.ignore_unreachable = self.boolean(v, "ignore_unreachable");
                }
                "delegate_facts" => own.delegate_facts = self.boolean(v, "delegate_facts"),
                "delegate_to" => {
                    own.delegate_to = self.text(v, "delegate_to");
                    collect_checks(v, "delegate_to", checks);
                }
                "environment" => own.environment = Some(self.environment(v, checks)),
                "no_log" => own.no_log = self.expression_flag(v, "no_log"),
                "args" => match &v.value {
                    NodeValue::Map(_) => args = Some(*v),
                    NodeValue::Null => {}
                    _ => self.wrong_type(v, "args", "a mapping of parameters"),
                },
                "vars" => own.vars = Some(self.vars(v, "vars", checks)),
                "check_mode" => own.check_mode = self.boolean(v, "check_mode"),
                "diff" => own.diff = self.boolean(v, "diff"),
                _ => {}
            }
        }
        (own, args)
    }

    fn loop_control(&mut self, v: &Node, checks: &mut Vec<TemplateCheck>) -> Option<LoopControl> {
        let Some(entries) = v.as_map() else {
            self.wrong_type(v, "loop_control", "a mapping");
            return None;
        };
        let mut lc = LoopControl::default();
        for (k, val) in entries {
            let key = k.key_text().unwrap_or_default();
            match key.as_str() {
                "loop_var" => {
                    if let Some(s) = self.identifier(val, "loop_var") {
                        lc.loop_var = s;
                    }
                }
                "index_var" => lc.index_var = self.identifier(val, "index_var"),
                "label" => {
                    lc.label = self.text(val, "label");
                    collect_checks(val, "loop_control.label", checks);
                }
                "pause" => match &val.value {
                    NodeValue::Int(i) if *i >= 0 => lc.pause = Some(*i as f64),
                    NodeValue::Float(f) if *f >= 0.0 => lc.pause = Some(*f),
                    _ => self.wrong_type(val, "pause", "a number of seconds"),
                },
                "extended" => lc.extended = self.boolean(val, "extended").unwrap_or(false),
                "extended_allitems" => {
                    lc.extended_allitems = self.boolean(val, "extended_allitems").unwrap_or(true);
                }
                _ => {
                    let mut d = k
                        .span
                        .diagnostic(format!("unknown loop_control key `{key}`"))
                        .with_label(format!("expected one of: {}", LOOP_CONTROL_KEYS.join(", ")));
                    if let Some(s) = did_you_mean(&key, LOOP_CONTROL_KEYS.iter().copied()) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.error(d);
                }
            }
        }
        Some(lc)
    }

    /// Normalise an action's arguments into a JSON object, keeping spans.
    fn action_args(
        &mut self,
        short: &str,
        value: &Node,
        args_node: Option<&Node>,
        spans: &mut TaskSpans,
    ) -> Option<Value> {
        let mut args = Map::new();
        match &value.value {
            NodeValue::Null => {}
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    let key = k.key_text().unwrap_or_default();
                    if short == "assert" && key == "that" {
                        // `that:` holds bare expressions, like `when:`.
                        collect_conditions(v, "that", &mut spans.checks);
                    } else {
                        collect_checks(v, &key, &mut spans.checks);
                    }
                    spans.arg_keys.insert(key.clone(), k.span.clone());
                    spans.arg_values.insert(key.clone(), v.span.clone());
                    args.insert(key, v.to_json());
                }
            }
            NodeValue::Str(text) => {
                collect_checks(value, short, &mut spans.checks);
                // A module herd does not implement keeps its text unchecked.
                let free_form = actions::takes_free_form(&self.modules, short)
                    || actions::lookup(&self.modules, short).is_none();
                let parsed = match parse_kv(
                    text,
                    free_form && !matches!(short, "include_tasks" | "import_tasks" | "meta"),
                ) {
                    Ok(p) => p,
                    Err(reason) => {
                        self.error(
                            value
                                .span
                                .diagnostic(format!(
                                    "cannot split the arguments of `{short}`: {reason}"
                                ))
                                .with_help("check that every quote and `{{`/`{%` is closed"),
                        );
                        return None;
                    }
                };
                if matches!(short, "include_tasks" | "import_tasks" | "meta") {
                    // The whole text is the file name or meta action.
                    let raw = text.trim().to_string();
                    spans
                        .arg_keys
                        .insert("_raw_params".into(), value.span.clone());
                    spans
                        .arg_values
                        .insert("_raw_params".into(), value.span.clone());
                    args.insert("_raw_params".into(), Value::String(raw));
                } else {
                    for opt in parsed.options {
                        let key_span = self.sources.sub_span(
                            &value.span,
                            text,
                            opt.key_offset,
                            opt.key.chars().count(),
                        );
                        let value_span = self.sources.sub_span(
                            &value.span,
                            text,
                            opt.value_offset,
                            opt.value_len,
                        );
                        spans.arg_keys.insert(opt.key.clone(), key_span);
                        spans.arg_values.insert(opt.key.clone(), value_span);
                        args.insert(opt.key, opt.value);
                    }
                    if let Some(raw) = parsed.raw {
                        if !free_form {
                            self.error(
                                value
                                    .span
                                    .diagnostic(format!("`{short}` does not take free-form text"))
                                    .with_label("expected `key=value` pairs")
                                    .with_help(format!("write the parameters as `key=value` or as a mapping under `{short}:`")),
                            );
                            return None;
                        }
                        spans
                            .arg_keys
                            .insert("_raw_params".into(), value.span.clone());
                        spans
                            .arg_values
                            .insert("_raw_params".into(), value.span.clone());
                        args.insert("_raw_params".into(), Value::String(raw));
                    }
                }
            }
            _ => {
                self.error(
                    value
                        .span
                        .diagnostic(format!(
                            "invalid arguments for `{short}`: found {}",
                            value.kind()
                        ))
                        .with_label("expected a mapping of parameters or `key=value` text"),
                );
                return None;
            }
        }
        // `args:` fills in what the module's own arguments do not set.
        if let Some(extra) = args_node.and_then(Node::as_map) {
            for (k, v) in extra {
                let key = k.key_text().unwrap_or_default();
                if args.contains_key(&key) {
                    continue;
                }
                collect_checks(v, &key, &mut spans.checks);
                spans.arg_keys.insert(key.clone(), k.span.clone());
                spans.arg_values.insert(key.clone(), v.span.clone());
                args.insert(key, v.to_json());
            }
        }
        Some(Value::Object(args))
    }

    /// The file named by `include_tasks`/`import_tasks` (`file:` or free form).
    fn include_file(
        &mut self,
        short: &str,
        args: &Value,
        spans: &TaskSpans,
        value: &Node,
    ) -> Option<String> {
        let map = args.as_object()?;
        for key in map.keys() {
            if key != "file" && key != "_raw_params" {
                let span = spans.arg_keys.get(key).unwrap_or(&value.span);
                let mut d = span
                    .diagnostic(format!("unknown parameter `{key}` for `{short}`"))
                    .with_label("expected: file");
                if key == "apply" {
                    d = d.with_help("`apply` is not supported; set keywords on the included tasks");
                }
                self.error(d);
                return None;
            }
        }
        match map.get("file").or_else(|| map.get("_raw_params")) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => {
                self.error(
                    value
                        .span
                        .diagnostic(format!("`{short}` needs a task file"))
                        .with_help(format!("write `{short}: file.yml`")),
                );
                None
            }
        }
    }

    fn import_tasks(
        &mut self,
        file: &str,
        span: &Span,
        inh: &Inherited,
        ctx: &Ctx,
    ) -> Option<Vec<Task>> {
        if is_template(file) {
            self.error(
                span.diagnostic("`import_tasks` needs a file name without templates")
                    .with_help("imports are resolved before any variable is known; use `include_tasks` for a templated name"),
            );
            return None;
        }
        let candidates = task_file_candidates(file, &ctx.dir, &self.playbook_dir);
        let Some(path) = candidates.iter().find(|p| p.is_file()).cloned() else {
            let looked: Vec<String> = candidates
                .iter()
                .map(|p| shown_dir(p.parent().unwrap_or(Path::new(""))))
                .collect();
            self.error(
                span.diagnostic(format!("task file `{file}` not found"))
                    .with_label(format!("looked in {}", looked.join(", "))),
            );
            return None;
        };
        let ctx = Ctx {
            depth: ctx.depth + 1,
            ..ctx.clone()
        };
        Some(self.task_file(&path, inh, &ctx, Some(span)))
    }

    // ----- values -----

    fn wrong_type(&mut self, v: &Node, what: &str, expected: &str) {
        self.error(
            v.span
                .diagnostic(format!("invalid value for `{what}`: found {}", v.kind()))
                .with_label(format!("expected {expected}")),
        );
    }

    /// A scalar as text (numbers and booleans become their text).
    fn text(&mut self, v: &Node, what: &str) -> Option<String> {
        match &v.value {
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::Int(_) | NodeValue::Float(_) | NodeValue::Bool(_) => v.key_text(),
            _ => {
                self.wrong_type(v, what, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, v: &Node, what: &str) -> Option<bool> {
        match &v.value {
            NodeValue::Bool(b) => Some(*b),
            NodeValue::Str(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" | "1" => Some(true),
                "no" | "false" | "off" | "0" => Some(false),
                _ => {
                    let mut d = v
                        .span
                        .diagnostic(format!("invalid value for `{what}`"))
                        .with_label("expected a boolean (yes/no, true/false)");
                    if is_template(s) {
                        d = d.with_help(format!(
                            "`{what}` cannot be a template here; write yes or no"
                        ));
                    }
                    self.error(d);
                    None
                }
            },
            NodeValue::Int(i @ (0 | 1)) => Some(*i == 1),
            _ => {
                self.wrong_type(v, what, "a boolean (yes/no, true/false)");
                None
            }
        }
    }

    /// `ignore_errors`, `no_log`: a boolean or a template, kept as an
    /// expression.
    fn expression_flag(&mut self, v: &Node, what: &str) -> Option<String> {
        match &v.value {
            NodeValue::Bool(b) => Some(b.to_string()),
            NodeValue::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(v, what, "a boolean or a template");
                None
            }
        }
    }

    fn choice(&mut self, v: &Node, what: &str, allowed: &[&str]) -> Option<String> {
        let Some(s) = v.as_str() else {
            self.wrong_type(v, what, &format!("one of: {}", allowed.join(", ")));
            return None;
        };
        if allowed.contains(&s) {
            return Some(s.to_string());
        }
        let mut d = v
            .span
            .diagnostic(format!("invalid {what} `{s}`"))
            .with_label(format!("expected {}", allowed.join("|")));
        if let Some(m) = did_you_mean(s, allowed.iter().copied()) {
            d = d.with_help(format!("did you mean `{m}`?"));
        }
        self.error(d);
        None
    }

    fn identifier(&mut self, v: &Node, what: &str) -> Option<String> {
        let Some(s) = v.as_str() else {
            self.wrong_type(v, what, "a variable name");
            return None;
        };
        if is_identifier(s) {
            Some(s.to_string())
        } else {
            self.error(
                v.span
                    .diagnostic(format!("invalid variable name `{s}` in `{what}`"))
                    .with_label("expected letters, digits and `_`, not starting with a digit"),
            );
            None
        }
    }

    /// `when`-like keywords: one condition or a list; booleans become text.
    fn conditions(
        &mut self,
        v: &Node,
        what: &str,
        checks: &mut Vec<TemplateCheck>,
    ) -> Option<Vec<String>> {
        let items: Vec<&Node> = match &v.value {
            NodeValue::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            match &item.value {
                NodeValue::Str(s) => {
                    checks.push(TemplateCheck {
                        what: what.to_string(),
                        text: s.clone(),
                        span: item.span.clone(),
                        kind: CheckKind::Condition,
                    });
                    out.push(s.clone());
                }
                NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => {
                    out.push(item.key_text().unwrap_or_default());
                }
                _ => {
                    self.wrong_type(
                        item,
                        what,
                        "a condition (a string, a boolean, or a list of them)",
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn string_list(
        &mut self,
        v: &Node,
        what: &str,
        checks: &mut Vec<TemplateCheck>,
    ) -> Vec<(String, Span)> {
        let items: Vec<&Node> = match &v.value {
            NodeValue::Seq(items) => items.iter().collect(),
            NodeValue::Null => Vec::new(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            match &item.value {
                NodeValue::Str(s) => {
                    collect_checks(item, what, checks);
                    out.push((s.clone(), item.span.clone()));
                }
                _ => self.wrong_type(item, what, "a name or a list of names"),
            }
        }
        out
    }

    /// `tags`: a string (comma-separated), or a list.
    fn tags(&mut self, v: &Node) -> Vec<String> {
        let items: Vec<&Node> = match &v.value {
            NodeValue::Seq(items) => items.iter().collect(),
            NodeValue::Null => Vec::new(),
            _ => vec![v],
        };
        let mut out: Vec<String> = Vec::new();
        for item in items {
            match &item.value {
                NodeValue::Str(s) => {
                    for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        if !out.iter().any(|o| o == t) {
                            out.push(t.to_string());
                        }
                    }
                }
                NodeValue::Int(_) | NodeValue::Float(_) => {
                    out.push(item.key_text().unwrap_or_default());
                }
                _ => self.wrong_type(item, "tags", "a tag name or a list of them"),
            }
        }
        out
    }

    fn number_or_template(
        &mut self,
        v: &Node,
        what: &str,
        checks: &mut Vec<TemplateCheck>,
    ) -> Option<Value> {
        match &v.value {
            NodeValue::Int(i) if *i >= 0 => Some(Value::from(*i)),
            NodeValue::Float(f) if *f >= 0.0 => Some(v.to_json()),
            NodeValue::Str(s) if is_template(s) || s.trim().parse::<f64>().is_ok() => {
                collect_checks(v, what, checks);
                Some(Value::String(s.clone()))
            }
            _ => {
                self.wrong_type(v, what, "a number or a template");
                None
            }
        }
    }

    fn vars(
        &mut self,
        v: &Node,
        what: &str,
        checks: &mut Vec<TemplateCheck>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        match &v.value {
            NodeValue::Null => {}
            NodeValue::Map(entries) => {
                for (k, val) in entries {
                    let name = k.key_text().unwrap_or_default();
                    if !is_identifier(&name) {
                        self.error(
                            k.span
                                .diagnostic(format!("invalid variable name `{name}`"))
                                .with_label(
                                    "expected letters, digits and `_`, not starting with a digit",
                                ),
                        );
                        continue;
                    }
                    collect_checks(val, &format!("{what}.{name}"), checks);
                    out.insert(name, val.to_json());
                }
            }
            _ => self.wrong_type(v, what, "a mapping of variable names to values"),
        }
        out
    }

    fn environment(&mut self, v: &Node, checks: &mut Vec<TemplateCheck>) -> Map<String, Value> {
        match &v.value {
            NodeValue::Null => Map::new(),
            NodeValue::Map(entries) => {
                let mut out = Map::new();
                for (k, val) in entries {
                    let name = k.key_text().unwrap_or_default();
                    // A name is pasted after `export`, so it must be a shell
                    // variable name; a templated one is checked once rendered.
                    if !is_template(&name) && !herdsman_modules::shell_quote::is_env_name(&name) {
                        self.error(
                            k.span
                                .diagnostic(format!(
                                    "`{name}` is not a valid environment variable name"
                                ))
                                .with_label("not a shell variable name")
                                .with_help(
                                    "names are letters, digits and `_`, and do not start with a digit",
                                ),
                        );
                        continue;
                    }
                    collect_checks(val, &format!("environment.{name}"), checks);
                    out.insert(name, val.to_json());
                }
                out
            }
            NodeValue::Str(s) if is_template(s) => {
                self.error(
                    v.span
                        .diagnostic("`environment` from a template is not supported")
                        .with_label("expected a mapping of variable names to values")
                        .with_help(
                            "write each variable: `environment: {HTTP_PROXY: \"{{ proxy }}\"}`",
                        ),
                );
                Map::new()
            }
            _ => {
                self.wrong_type(v, "environment", "a mapping of variable names to values");
                Map::new()
            }
        }
    }
}

/// Every template-looking string under `node`, to check later.
fn collect_checks(node: &Node, what: &str, out: &mut Vec<TemplateCheck>) {
    match &node.value {
        NodeValue::Str(s) if is_template(s) => out.push(TemplateCheck {
            what: what.to_string(),
            text: s.clone(),
            span: node.span.clone(),
            kind: CheckKind::Template,
        }),
        NodeValue::Seq(items) => items.iter().for_each(|i| collect_checks(i, what, out)),
        NodeValue::Map(entries) => entries
            .iter()
            .for_each(|(_, v)| collect_checks(v, what, out)),
        _ => {}
    }
}

/// Every string under `node` as a condition (a bare expression) to check.
fn collect_conditions(node: &Node, what: &str, out: &mut Vec<TemplateCheck>) {
    match &node.value {
        NodeValue::Str(s) => out.push(TemplateCheck {
            what: what.to_string(),
            text: s.clone(),
            span: node.span.clone(),
            kind: CheckKind::Condition,
        }),
        NodeValue::Seq(items) => items.iter().for_each(|i| collect_conditions(i, what, out)),
        _ => {}
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `line:col`, for pointing at a second place in one message.
fn short_location(span: &Span) -> String {
    format!("line {}, column {}", span.line, span.col)
}

/// A directory as shown in messages (`.` for the current one).
fn shown_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir.display().to_string()
    }
}

/// Where a task file named in `dir` is looked for: beside the including
/// file, then in the playbook's directory (as Ansible does).
pub(crate) fn task_file_candidates(file: &str, dir: &Path, playbook_dir: &Path) -> Vec<PathBuf> {
    let p = Path::new(file);
    if p.is_absolute() {
        return vec![p.to_path_buf()];
    }
    let mut out = vec![dir.join(file)];
    if playbook_dir != dir {
        out.push(playbook_dir.join(file));
    }
    out
}

/// serde-saphyr's messages repeat the location and name its own options;
/// say what is wrong in the user's terms instead.
fn tidy_yaml_error(mut d: Diagnostic, text: &str) -> Diagnostic {
    if let Some(i) = d.message.rfind(" at line ") {
        d.message.truncate(i);
    }
    if let Some(rest) = d
        .message
        .strip_prefix("invalid YAML: duplicate mapping key: ")
    {
        let key = rest.split(',').next().unwrap_or(rest).trim().to_string();
        d.message = format!("invalid YAML: duplicate key `{key}`");
        d = d.with_help("each key may appear once in a mapping");
    }
    if d.message.contains("mapping values are not allowed") {
        d = d.with_help("check this line's indentation against the lines above, or quote a value that contains `: `");
    }
    if !d.message.contains("unclosed") {
        if let Some((line, col, open)) = unclosed_flow(text, d.line) {
            let stopped = format!(
                "the parser stopped at line {}, column {}: {}",
                d.line,
                d.col,
                d.message.trim_start_matches("invalid YAML: ")
            );
            return Diagnostic::new(
                &d.path,
                line,
                col,
                format!("invalid YAML: `{open}` is never closed"),
            )
            .with_label("opened here")
            .with_help(stopped);
        }
    }
    if d.message.contains("found a tab")
        || d.message.contains("tab") && d.message.contains("indent")
    {
        // The parser reports where the scanner stopped; point at the tab.
        if let Some((i, line)) = text.lines().enumerate().find(|(_, l)| {
            l.chars()
                .take_while(|c| c.is_whitespace())
                .any(|c| c == '\t')
        }) {
            d.line = i + 1;
            d.col = line.chars().position(|c| c == '\t').unwrap_or(0) + 1;
            d.len = 1;
        }
        d.message = "invalid YAML: tab character used for indentation".into();
        d = d.with_help("indent with spaces; YAML does not allow tabs for indentation");
    }
    d
}

/// A flow collection (`[` or `{`) opened before `error_line` and still open
/// there: the usual cause of a confusing YAML error a few lines further
/// down. Quoted text and comments are skipped.
fn unclosed_flow(text: &str, error_line: usize) -> Option<(usize, usize, char)> {
    let mut stack: Vec<(usize, usize, char)> = Vec::new();
    for (i, line) in text.lines().enumerate().take(error_line.saturating_sub(1)) {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (col, c) in line.chars().enumerate() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    // A quote opens a quoted scalar only where a scalar starts.
                    '\'' | '"' if matches!(prev, ' ' | ':' | '-' | '[' | '{' | ',') => {
                        quote = Some(c);
                    }
                    '#' if prev == ' ' => break,
                    '[' | '{' => stack.push((i + 1, col + 1, c)),
                    ']' | '}' => {
                        stack.pop();
                    }
                    _ => {}
                },
            }
            prev = c;
        }
    }
    stack.first().copied()
}

/// One `k=v` option of free-form arguments.
struct KvOption {
    key: String,
    value: Value,
    /// Character offsets into the argument text, for carets.
    key_offset: usize,
    value_offset: usize,
    value_len: usize,
}

struct Kv {
    options: Vec<KvOption>,
    /// The rest (`_raw_params`), with its original spacing kept.
    raw: Option<String>,
}

/// Why a task's `k=v` argument text cannot be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum SplitError {
    #[error("unbalanced quotes")]
    UnbalancedQuotes,
    #[error("unclosed template block")]
    UnclosedTemplate,
}

/// Split arguments as Ansible's `split_args` does: on whitespace, but not
/// inside quotes or `{{ }}`/`{% %}`/`{# #}`. Returns byte ranges.
fn split_args(s: &str) -> Result<Vec<(usize, usize)>, SplitError> {
    let mut tokens = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut jinja: Vec<char> = Vec::new();
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if start.is_none() {
            if c.is_whitespace() {
                continue;
            }
            start = Some(i);
        }
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        let next = iter.peek().map(|(_, n)| *n);
        match (c, next) {
            ('"' | '\'', _) => quote = Some(c),
            ('{', Some(n @ ('{' | '%' | '#'))) => {
                jinja.push(if n == '{' { '}' } else { n });
                iter.next();
            }
            (c @ ('}' | '%' | '#'), Some('}')) if jinja.last() == Some(&c) => {
                jinja.pop();
                iter.next();
            }
            (c, _) if c.is_whitespace() && jinja.is_empty() => {
                if let Some(b) = start.take() {
                    tokens.push((b, i));
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(SplitError::UnbalancedQuotes);
    }
    if !jinja.is_empty() {
        return Err(SplitError::UnclosedTemplate);
    }
    if let Some(b) = start {
        tokens.push((b, s.len()));
    }
    Ok(tokens)
}

/// Ansible's `parse_kv`: `k=v` pairs into options (quotes removed, `\`
/// escapes decoded), the rest into `_raw_params`. With `check_raw` (free-form
/// modules) only the command options in [`FREE_FORM_OPTIONS`] are pulled out.
fn parse_kv(s: &str, check_raw: bool) -> Result<Kv, SplitError> {
    let tokens = split_args(s)?;
    let mut options = Vec::new();
    // Raw tokens as byte ranges, to rebuild the text with its own spacing.
    let mut raw: Vec<(usize, usize)> = Vec::new();
    let mut raw_text = String::new();
    let mut last_raw_index: Option<usize> = None;
    for (index, &(b, e)) in tokens.iter().enumerate() {
        let orig = &s[b..e];
        let eq = find_unescaped_eq(orig);
        let is_option = match eq {
            Some(pos) => !check_raw || FREE_FORM_OPTIONS.contains(&orig[..pos].trim()),
            None => false,
        };
        if let (true, Some(pos)) = (is_option, eq) {
            let key = orig[..pos].trim().to_string();
            let raw_value = &orig[pos + 1..];
            let decoded = decode_escapes(raw_value.trim());
            let (value, quoted) = unquote(&decoded);
            let value = if quoted {
                Value::String(value)
            } else {
                typed(&value)
            };
            let key_offset = s[..b].chars().count();
            options.push(KvOption {
                key,
                value,
                key_offset,
                value_offset: key_offset + orig[..pos + 1].chars().count(),
                value_len: raw_value.chars().count(),
            });
            continue;
        }
        let piece = if eq.is_none() && orig.contains("\\=") {
            orig.replace("\\=", "=")
        } else {
            orig.to_string()
        };
        match (last_raw_index, raw.last()) {
            (Some(li), Some(&(_, pe))) if li + 1 == index => raw_text.push_str(&s[pe..b]),
            (Some(_), _) => raw_text.push(' '),
            _ => {}
        }
        raw_text.push_str(&piece);
        raw.push((b, e));
        last_raw_index = Some(index);
    }
    Ok(Kv {
        options,
        raw: (!raw.is_empty()).then_some(raw_text),
    })
}

/// The first `=` (not at the start, not escaped) outside quotes.
fn find_unescaped_eq(token: &str) -> Option<usize> {
    let bytes = token.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &c) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q && (i == 0 || bytes[i - 1] != b'\\') => quote = None,
            Some(_) => {}
            None if (c == b'"' || c == b'\'') && (i == 0 || bytes[i - 1] != b'\\') => {
                quote = Some(c);
            }
            None if c == b'=' && i > 0 && bytes[i - 1] != b'\\' => return Some(i),
            None => {}
        }
    }
    None
}

/// Python's string escapes, as Ansible decodes them in `k=v` values.
fn decode_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = chars[i + 1];
        let simple = match n {
            '\\' => Some('\\'),
            '\'' => Some('\''),
            '"' => Some('"'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            _ => None,
        };
        if let Some(d) = simple {
            out.push(d);
            i += 2;
            continue;
        }
        let hex_len = match n {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => 0,
        };
        if hex_len > 0 && i + 2 + hex_len <= chars.len() {
            let hex: String = chars[i + 2..i + 2 + hex_len].iter().collect();
            if let Some(d) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                out.push(d);
                i += 2 + hex_len;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Remove one pair of matching outer quotes; says whether there were any.
fn unquote(s: &str) -> (String, bool) {
    let b = s.as_bytes();
    if b.len() >= 2
        && (b[0] == b'"' || b[0] == b'\'')
        && b[b.len() - 1] == b[0]
        && b[b.len() - 2] != b'\\'
    {
        (s[1..s.len() - 1].to_string(), true)
    } else {
        (s.to_string(), false)
    }
}

/// An unquoted `k=v` value typed as the mapping form would type it, except
/// that numbers with a leading zero stay text (file modes like `0644`).
fn typed(s: &str) -> Value {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Value::Bool(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Value::Bool(false)
        }
        _ => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            let plain_int = !digits.is_empty()
                && digits.bytes().all(|c| c.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            match s.parse::<i64>() {
                Ok(i) if plain_int => Value::from(i),
                _ => Value::String(s.to_string()),
            }
        }
    }
}

/// Fill in what a task's own arguments leave unset from the
/// `module_defaults` for its module (the innermost setting wins).
fn apply_module_defaults(
    short: &str,
    defaults: &[ModuleDefaults],
    args: &mut Value,
    spans: &mut TaskSpans,
) {
    let Value::Object(map) = args else {
        return;
    };
    for d in defaults.iter().rev().filter(|d| d.module == short) {
        for (key, key_span, value_span) in &d.keys {
            if map.contains_key(key) {
                continue;
            }
            if let Some(v) = d.args.get(key) {
                map.insert(key.clone(), v.clone());
                spans.arg_keys.insert(key.clone(), key_span.clone());
                spans.arg_values.insert(key.clone(), value_span.clone());
            }
        }
    }
}

/// A list of strings, or one string (comma-separated, as Ansible splits
/// `gather_subset: network,!hardware`).
fn string_list(v: &Node) -> Vec<String> {
    match &v.value {
        NodeValue::Seq(items) => items
            .iter()
            .filter_map(super::super::yaml::Node::key_text)
            .collect(),
        NodeValue::Str(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The names in a task's `collections:` keyword (a list or one name).
fn task_collections(entries: &[(Node, Node)]) -> Vec<String> {
    let Some((_, v)) = entries
        .iter()
        .find(|(k, _)| k.key_text().as_deref() == Some("collections"))
    else {
        return Vec::new();
    };
    match &v.value {
        NodeValue::Seq(items) => items
            .iter()
            .filter_map(super::super::yaml::Node::key_text)
            .collect(),
        NodeValue::Str(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(s: &str, check_raw: bool) -> (Value, Option<String>) {
        let r = parse_kv(s, check_raw).unwrap();
        let m: Map<String, Value> = r.options.into_iter().map(|o| (o.key, o.value)).collect();
        (Value::Object(m), r.raw)
    }

    #[test]
    fn empty_and_non_utf8_playbooks_point_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pb.yml");
        std::fs::write(&p, "# nothing\n").unwrap();
        let e = load_playbook(&p).unwrap_err();
        assert_eq!((e[0].line, e[0].col), (1, 1), "{}", e[0]);
        std::fs::write(&p, b"- hosts: all\n  name: \xff\n").unwrap();
        let e = load_playbook(&p).unwrap_err();
        assert_eq!((e[0].line, e[0].col), (2, 9), "{}", e[0]);
        assert_eq!(e[0].message, "file is not valid UTF-8");
    }

    #[test]
    fn parse_kv_like_ansible() {
        assert_eq!(
            kv(r#"msg="a b=c" verbosity=2 x='it''s'"#, false).0,
            json!({"msg": "a b=c", "verbosity": 2, "x": "it''s"})
        );
        assert_eq!(
            kv(r#"msg="say \"hi\"""#, false).0,
            json!({"msg": "say \"hi\""})
        );
        assert_eq!(
            kv("src=a.j2 dest=/etc/a mode=0644 backup=yes", false).0,
            json!({"src": "a.j2", "dest": "/etc/a", "mode": "0644", "backup": true})
        );
        assert_eq!(
            kv("msg={{ a | default('x y') }}", false).0,
            json!({"msg": "{{ a | default('x y') }}"})
        );
    }

    #[test]
    fn free_form_keeps_the_command() {
        let (opts, raw) = kv("chdir=/tmp ls -l  /var foo=bar creates=/x", true);
        assert_eq!(opts, json!({"chdir": "/tmp", "creates": "/x"}));
        assert_eq!(raw.as_deref(), Some("ls -l  /var foo=bar"));
        let (_, raw) = kv("set -e\necho \"a b\"\n", true);
        assert_eq!(raw.as_deref(), Some("set -e\necho \"a b\""));
        assert!(parse_kv("echo \"unclosed", true).is_err());
        assert!(parse_kv("echo {{ x", true).is_err());
    }

    #[test]
    fn escapes_and_typing() {
        assert_eq!(decode_escapes(r"a\nb\tc\\d\x41\u00e9"), "a\nb\tc\\dA\u{e9}");
        assert_eq!(typed("0755"), json!("0755"));
        assert_eq!(typed("-3"), json!(-3));
        assert_eq!(typed("no"), json!(false));
        assert_eq!(typed("1.5"), json!("1.5"));
    }
}
