//! Roles, resolved and expanded while a play loads, the way ansible-core
//! 2.18 does it: `roles:` entries, `meta/main.yml` dependencies (each role
//! instance once per play unless `allow_duplicates`), `import_role` and
//! `include_role`; the search path (`roles/` beside the playbook,
//! `roles_path`, the default folders, a path-like name, collection roles
//! `ns.coll.role`); the role layout (`tasks/`, `handlers/`, `defaults/`,
//! `vars/`, `meta/`, each `main.yml`/`main.yaml`/`main.json`/`main`, and
//! a `main/` folder for vars and defaults); and the variables each task
//! of a role sees ([`RoleInfo`]) and every task of the play sees
//! ([`PlayRoles`]).
//!
//! A role instance is its resolved path plus what it was invoked with
//! (params, `vars`, `when`, `tags`, `*_from`), as Ansible's role cache
//! keys it: the same role named twice with the same arguments runs once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{Map, Value};

use super::{Ctx, Inherited, Loader, Own};
use crate::playbook::model::{PlayRoles, RoleInfo, Task, TaskKind, TaskSpans};
use crate::template::is_template;
use crate::yaml::{Node, NodeValue, Span};

/// Where roles and collections are looked for besides the playbook's own
/// folders: ansible.cfg's / the environment's `roles_path` and
/// `collections_path` (set once per run, before any playbook loads).
#[derive(Debug, Clone, Default)]
struct SearchConfig {
    roles_path: Vec<PathBuf>,
    collections_path: Vec<PathBuf>,
}

fn search_config() -> &'static RwLock<SearchConfig> {
    static CONFIG: OnceLock<RwLock<SearchConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| RwLock::new(SearchConfig::default()))
}

/// Set `roles_path` and `collections_path` (from ansible.cfg or
/// `ANSIBLE_ROLES_PATH`/`ANSIBLE_COLLECTIONS_PATH`); empty means Ansible's
/// defaults.
pub fn configure_role_paths(roles_path: Vec<PathBuf>, collections_path: Vec<PathBuf>) {
    if let Ok(mut c) = search_config().write() {
        *c = SearchConfig {
            roles_path,
            collections_path,
        };
    }
}

/// `~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles`, or
/// the configured `roles_path`.
fn roles_path() -> Vec<PathBuf> {
    let configured = search_config()
        .read()
        .map(|c| c.roles_path.clone())
        .unwrap_or_default();
    if !configured.is_empty() {
        return configured;
    }
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        out.push(PathBuf::from(home).join(".ansible/roles"));
    }
    out.push(PathBuf::from("/usr/share/ansible/roles"));
    out.push(PathBuf::from("/etc/ansible/roles"));
    out
}

/// `~/.ansible/collections:/usr/share/ansible/collections`, or the
/// configured `collections_path`.
fn collections_path() -> Vec<PathBuf> {
    let configured = search_config()
        .read()
        .map(|c| c.collections_path.clone())
        .unwrap_or_default();
    if !configured.is_empty() {
        return configured;
    }
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        out.push(PathBuf::from(home).join(".ansible/collections"));
    }
    out.push(PathBuf::from("/usr/share/ansible/collections"));
    out
}

/// Keys of a role entry that are role keywords (Ansible's role field
/// attributes) and that herd applies to every task of the role.
const ROLE_TASK_KEYWORDS: &[&str] = &[
    "when",
    "tags",
    "become",
    "become_user",
    "remote_user",
    "port",
    "connection",
    "become_method",
    "environment",
    "no_log",
    "ignore_errors",
    "check_mode",
    "diff",
    "run_once",
    "delegate_to",
    "timeout",
    "throttle",
    "module_defaults",
    "become_flags",
    "become_exe",
    "ignore_unreachable",
    "delegate_facts",
    "any_errors_fatal",
];

/// Role keywords Ansible knows that herd does not run on a role.
const ROLE_UNSUPPORTED: &[&str] = &["debugger"];

/// `include_role`/`import_role` arguments.
const ROLE_ACTION_ARGS: &[&str] = &[
    "name",
    "role",
    "tasks_from",
    "vars_from",
    "defaults_from",
    "handlers_from",
    "public",
    "apply",
    "allow_duplicates",
    "rolespec_validate",
];

/// Whether a task key is `include_role`/`import_role` (any spelling).
pub(super) fn is_role_action(key: &str) -> bool {
    matches!(
        crate::actions::short_name(key),
        "include_role" | "import_role"
    )
}

/// A role as loaded from its folder: the data every instance shares.
struct RoleData {
    /// Cache key: path and invocation.
    key: String,
    name: String,
    short_name: String,
    path: PathBuf,
    defaults: Map<String, Value>,
    role_vars: Map<String, Value>,
    /// `vars:` on the invocation.
    invocation_vars: Map<String, Value>,
    params: Map<String, Value>,
    deps: Vec<Rc<RoleData>>,
    /// The dependency entries as written, index-aligned with `deps`.
    dep_specs: Vec<RoleSpec>,
    allow_duplicates: bool,
    argument_specs: Option<Value>,
}

impl RoleData {
    /// Every dependency, recursively, deepest first (Ansible's
    /// `get_all_dependencies`).
    fn all_deps(&self) -> Vec<Rc<RoleData>> {
        let mut out = Vec::new();
        for d in &self.deps {
            out.extend(d.all_deps());
            out.push(d.clone());
        }
        out
    }

    /// Defaults of the dependencies, then its own.
    fn default_vars(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for d in self.all_deps() {
            overlay(&mut out, &d.default_vars());
        }
        overlay(&mut out, &self.defaults);
        out
    }

    /// What a role shows the whole play: its dependencies' `vars/` and
    /// its own.
    fn exported_vars(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut seen: Vec<String> = Vec::new();
        for d in self.all_deps() {
            if !seen.contains(&d.key) {
                overlay(&mut out, &d.exported_vars());
                seen.push(d.key.clone());
            }
        }
        overlay(&mut out, &self.role_vars);
        out
    }

    /// The layers a task of this role sees, `chain` being its parents
    /// (outermost first) and the role itself last.
    fn info(&self, chain: &[Rc<RoleData>]) -> RoleInfo {
        let mut defaults = Map::new();
        for d in self.all_deps() {
            overlay(&mut defaults, &d.default_vars());
        }
        let mut vars = Map::new();
        let mut params = Map::new();
        for parent in chain {
            overlay(&mut defaults, &parent.defaults);
            overlay(&mut vars, &parent.invocation_vars);
            overlay(&mut vars, &parent.role_vars);
            overlay(&mut params, &parent.params);
        }
        overlay(&mut defaults, &self.defaults);
        let mut seen: Vec<String> = Vec::new();
        for d in self.all_deps() {
            if !seen.contains(&d.key) {
                overlay(&mut vars, &d.exported_vars());
                seen.push(d.key.clone());
            }
        }
        overlay(&mut vars, &self.role_vars);
        overlay(&mut vars, &self.invocation_vars);
        overlay(&mut params, &self.params);
        RoleInfo {
            name: self.name.clone(),
            short_name: self.short_name.clone(),
            path: self.path.clone(),
            parent_paths: chain
                .iter()
                .filter(|p| p.key != self.key)
                .map(|p| p.path.clone())
                .collect(),
            defaults,
            vars,
            params,
            public_defaults: Map::new(),
            public_vars: Map::new(),
            once: None,
        }
    }
}

fn overlay(base: &mut Map<String, Value>, top: &Map<String, Value>) {
    for (k, v) in top {
        base.insert(k.clone(), v.clone());
    }
}

/// One role invocation, as written in `roles:`, `dependencies:` or the
/// arguments of `import_role`/`include_role`.
#[derive(Clone)]
struct RoleSpec {
    name: String,
    span: Span,
    /// Keyword entries (`when`, `tags`, `become`, ...) by key, value node.
    keywords: Vec<(&'static str, Node, Node)>,
    vars: Map<String, Value>,
    params: Map<String, Value>,
    /// `tasks_from` etc. by folder (`tasks`, `vars`, `defaults`, `handlers`).
    from: Vec<(String, String)>,
    from_include: bool,
    public: Option<bool>,
    allow_duplicates: Option<bool>,
}

impl RoleSpec {
    fn new(span: Span) -> Self {
        RoleSpec {
            name: String::new(),
            span,
            keywords: Vec::new(),
            vars: Map::new(),
            params: Map::new(),
            from: Vec::new(),
            from_include: false,
            public: None,
            allow_duplicates: None,
        }
    }

    /// The part of Ansible's role cache key that is not the path.
    fn invocation_key(&self) -> String {
        let kw: Vec<(String, Value)> = self
            .keywords
            .iter()
            .filter(|(k, _, _)| matches!(*k, "when" | "tags"))
            .map(|(k, _, v)| (k.to_string(), v.to_json()))
            .collect();
        serde_json::json!({
            "params": self.params,
            "vars": self.vars,
            "kw": kw,
            "from": self.from,
            "include": self.from_include,
        })
        .to_string()
    }

    fn entry_file(&self, folder: &str) -> Option<&str> {
        self.from
            .iter()
            .find(|(f, _)| f == folder)
            .map(|(_, v)| v.as_str())
    }
}

/// The roles of the play being loaded.
#[derive(Default)]
pub(super) struct RoleState {
    /// Roles being expanded, outermost first (a dependency's parents).
    chain: Vec<Rc<RoleData>>,
    cache: HashMap<String, Rc<RoleData>>,
    /// Role instances already expanded in this play.
    ran: HashSet<String>,
    /// Instances whose handlers are already in the play.
    handled: HashSet<String>,
    /// Handlers of `roles:` and their dependencies (before the play's own).
    handlers: Vec<Task>,
    /// Handlers of `import_role`/`include_role` (after the play's own).
    late_handlers: Vec<Task>,
    play: PlayRoles,
    /// Roles being loaded (a dependency cycle is an error, not a hang).
    loading: Vec<PathBuf>,
}

impl Loader {
    /// Start a play: roles of another play do not count.
    pub(super) fn begin_play_roles(&mut self) {
        self.roles = RoleState::default();
    }

    /// The tasks of a play's `roles:`, in order, each role's dependencies
    /// first; duplicates left out as Ansible does.
    pub(super) fn play_roles(&mut self, v: &Node, inh: &Inherited, ctx: &Ctx) -> Vec<Task> {
        let items: Vec<&Node> = match &v.value {
            NodeValue::Null => return Vec::new(),
            NodeValue::Seq(items) => items.iter().collect(),
            _ => {
                self.wrong_type(v, "roles", "a list of roles");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            let Some(spec) = self.role_spec(item, false) else {
                continue;
            };
            self.roles.play.play_role_names.push(spec.name.clone());
            if let Some(tasks) = self.expand_role(&spec, inh, ctx, true) {
                out.extend(tasks);
            }
        }
        out
    }

    /// Put what the roles gave into the play: role tasks before `tasks:`
    /// (one handler flush after both, as in Ansible), role handlers
    /// around the play's own, and the play-wide variables.
    pub(super) fn end_play_roles(
        &mut self,
        play: &mut crate::playbook::model::Play,
        role_tasks: Vec<Task>,
    ) {
        let state = std::mem::take(&mut self.roles);
        if !role_tasks.is_empty() {
            let mut tasks = role_tasks;
            tasks.append(&mut play.tasks);
            play.tasks = tasks;
        }
        let mut handlers = state.handlers;
        handlers.append(&mut play.handlers);
        handlers.extend(state.late_handlers);
        play.handlers = handlers;
        play.roles = state.play;
    }

    /// Read one role entry: a name, or a mapping with `role:`/`name:`.
    fn role_spec(&mut self, item: &Node, dependency: bool) -> Option<RoleSpec> {
        let what = if dependency { "dependency" } else { "role" };
        let mut spec = RoleSpec::new(item.span.clone());
        match &item.value {
            NodeValue::Str(s) => {
                spec.name = s.trim().to_string();
            }
            NodeValue::Map(entries) => {
                let mut name = None;
                let mut role = None;
                for (k, v) in entries {
                    let key = k.key_text().unwrap_or_default();
                    match key.as_str() {
                        "role" => role = Some((self.text(v, "role")?, v.span.clone())),
                        "name" => name = Some((self.text(v, "name")?, v.span.clone())),
                        "vars" => spec.vars = self.vars(v, "vars", &mut Vec::new()),
                        // A role keyword, so not a role parameter; Ansible
                        // 2.18 resolves the role's module names from the
                        // role's own meta, not from it (recorded in
                        // tests/fixtures/keywords/role-entry-collections),
                        // and herd knows its modules by short name anyway.
                        "collections" => {}
                        _ => {
                            if let Some(kw) = ROLE_TASK_KEYWORDS.iter().find(|s| **s == key) {
                                spec.keywords.push((kw, k.clone(), v.clone()));
                            } else if ROLE_UNSUPPORTED.contains(&key.as_str()) {
                                self.error(
                                    k.span
                                        .diagnostic(format!(
                                            "unsupported keyword `{key}` on a {what}"
                                        ))
                                        .with_label(
                                            "Ansible knows this role keyword; herd does not run it",
                                        )
                                        .with_help("set it on the play or in the inventory"),
                                );
                            } else {
                                // Anything else is a role parameter (a
                                // variable for the role's tasks).
                                spec.params.insert(key, v.to_json());
                            }
                        }
                    }
                }
                let Some((n, span)) = role.or(name) else {
                    self.error(
                        item.span
                            .diagnostic(format!("a {what} entry needs `role:` (or `name:`)"))
                            .with_help("write `- role: rolename`, or just `- rolename`"),
                    );
                    return None;
                };
                spec.name = n.trim().to_string();
                spec.span = span;
            }
            _ => {
                self.wrong_type(item, what, "a role name or a mapping with `role:`");
                return None;
            }
        }
        if spec.name.is_empty() {
            self.error(spec.span.diagnostic(format!("the {what} name is empty")));
            return None;
        }
        if is_template(&spec.name) {
            self.error(
                spec.span
                    .diagnostic("role names with templates are not supported")
                    .with_help("roles are resolved before any variable is known; name the role"),
            );
            return None;
        }
        Some(spec)
    }

    /// Find a role's folder, as Ansible does; an error listing every place
    /// looked when it is nowhere.
    fn resolve_role(&mut self, spec: &RoleSpec) -> Option<(PathBuf, String, String)> {
        let name = spec.name.as_str();
        let mut looked: Vec<PathBuf> = Vec::new();
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() >= 3 && !name.contains('/') && parts.iter().all(|p| !p.is_empty()) {
            // `ns.coll.role` (the role part may itself hold dots? no: the
            // last part is the role, the first two the collection).
            let (ns, coll, role) = (parts[0], parts[1], parts[2..].join("."));
            let mut roots = vec![self.playbook_dir.join("collections")];
            roots.extend(collections_path());
            for root in roots {
                let dir = root
                    .join("ansible_collections")
                    .join(ns)
                    .join(coll)
                    .join("roles")
                    .join(&role);
                if dir.is_dir() {
                    return Some((absolute(&dir), name.to_string(), role));
                }
                looked.push(dir);
            }
        }
        let mut dirs = vec![self.playbook_dir.join("roles")];
        dirs.extend(roles_path());
        if let Some(parent) = self.roles.chain.last() {
            // A dependency is also looked for beside the role naming it.
            if let Some(up) = parent.path.parent() {
                dirs.push(up.to_path_buf());
            }
        }
        dirs.push(self.playbook_dir.clone());
        for d in &dirs {
            let dir = d.join(name);
            if dir.is_dir() {
                return Some((absolute(&dir), name.to_string(), name.to_string()));
            }
            looked.push(dir);
        }
        let as_path = Path::new(name);
        if as_path.is_dir() {
            let short = as_path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_else(|| name.to_string());
            return Some((absolute(as_path), short.clone(), short));
        }
        let shown: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
        self.error(
            spec.span
                .diagnostic(format!("the role `{name}` was not found"))
                .with_label(format!("looked in: {}", shown.join(", ")))
                .with_help(
                    "put the role in `roles/` beside the playbook, set `roles_path` in ansible.cfg \
                     or ANSIBLE_ROLES_PATH, or install it with ansible-galaxy",
                ),
        );
        None
    }

    /// Load (or find in the play's cache) the role instance `spec` names.
    fn load_role(&mut self, spec: &RoleSpec) -> Option<Rc<RoleData>> {
        let (path, name, short_name) = self.resolve_role(spec)?;
        let key = format!("{}\u{0}{}", path.display(), spec.invocation_key());
        if let Some(r) = self.roles.cache.get(&key) {
            return Some(r.clone());
        }
        if self.roles.loading.contains(&path) || self.roles.loading.len() > super::MAX_IMPORT_DEPTH
        {
            self.error(
                spec.span
                    .diagnostic(format!("role `{name}` depends on itself"))
                    .with_help("a role's dependencies cannot lead back to the role"),
            );
            return None;
        }
        self.roles.loading.push(path.clone());
        let data = self.load_role_files(spec, key.clone(), path.clone(), name, short_name);
        self.roles.loading.pop();
        let data = Rc::new(data?);
        self.roles.cache.insert(key, data.clone());
        Some(data)
    }

    fn load_role_files(
        &mut self,
        spec: &RoleSpec,
        key: String,
        path: PathBuf,
        name: String,
        short_name: String,
    ) -> Option<RoleData> {
        let defaults = self.role_vars_file(&path, "defaults", spec.entry_file("defaults"), spec)?;
        let role_vars = self.role_vars_file(&path, "vars", spec.entry_file("vars"), spec)?;
        let mut data = RoleData {
            key,
            name,
            short_name,
            path: path.clone(),
            defaults,
            role_vars,
            invocation_vars: spec.vars.clone(),
            params: spec.params.clone(),
            deps: Vec::new(),
            dep_specs: Vec::new(),
            allow_duplicates: false,
            argument_specs: None,
        };
        let Some(meta_path) = role_file(&path, "meta", None) else {
            return Some(data);
        };
        let meta = self.parse(&meta_path, Some(&spec.span))?;
        if let Some(v) = meta.get("allow_duplicates") {
            data.allow_duplicates = self.boolean(v, "allow_duplicates").unwrap_or(false);
        }
        data.argument_specs = meta.get("argument_specs").map(Node::to_json);
        if let Some(deps) = meta.get("dependencies") {
            let items: Vec<&Node> = match &deps.value {
                NodeValue::Seq(items) => items.iter().collect(),
                NodeValue::Null => Vec::new(),
                _ => {
                    self.wrong_type(deps, "dependencies", "a list of roles");
                    Vec::new()
                }
            };
            // The dependency's own folder is searched beside this role.
            self.roles.chain.push(Rc::new(RoleData {
                key: String::new(),
                name: String::new(),
                short_name: String::new(),
                path: path.clone(),
                defaults: Map::new(),
                role_vars: Map::new(),
                invocation_vars: Map::new(),
                params: Map::new(),
                deps: Vec::new(),
                dep_specs: Vec::new(),
                allow_duplicates: false,
                argument_specs: None,
            }));
            for item in items {
                if let Some(dep_spec) = self.role_spec(item, true) {
                    if let Some(dep) = self.load_role(&dep_spec) {
                        data.deps.push(dep);
                        data.dep_specs.push(dep_spec);
                    }
                }
            }
            self.roles.chain.pop();
        }
        Some(data)
    }

    /// `defaults/` or `vars/`: `main` (or `*_from`) as a file, or a
    /// folder of files merged in name order.
    fn role_vars_file(
        &mut self,
        role: &Path,
        folder: &str,
        from: Option<&str>,
        spec: &RoleSpec,
    ) -> Option<Map<String, Value>> {
        let mut files = Vec::new();
        if let Some(f) = role_file(role, folder, from) {
            files.push(f);
        } else {
            let dir = role.join(folder).join(from.unwrap_or("main"));
            if dir.is_dir() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default();
                entries.sort();
                files.extend(entries.into_iter().filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yml" | "yaml" | "json")
                        )
                }));
            } else if let Some(f) = from {
                self.error(
                    spec.span
                        .diagnostic(format!("`{folder}_from` file `{f}` not found"))
                        .with_label(format!("looked in {}", role.join(folder).display())),
                );
                return None;
            }
        }
        let mut out = Map::new();
        for file in files {
            let node = self.parse(&file, Some(&spec.span))?;
            match node.to_json() {
                Value::Object(m) => overlay(&mut out, &m),
                Value::Null => {}
                _ => {
                    self.error(
                        node.span
                            .diagnostic(format!(
                                "the {folder} file of role `{}` must be a mapping of variables",
                                spec.name
                            ))
                            .with_label(format!("found {}", node.kind())),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Ansible's role "compile": dependencies' tasks, then the role's own,
    /// each carrying the role it belongs to; `None` when it can't load.
    /// `from_roles` is true for `roles:` and dependencies, whose
    /// duplicates are skipped (and whose handlers come before the play's).
    fn expand_role(
        &mut self,
        spec: &RoleSpec,
        inh: &Inherited,
        ctx: &Ctx,
        from_roles: bool,
    ) -> Option<Vec<Task>> {
        let data = self.load_role(spec)?;
        let allow_duplicates = spec.allow_duplicates.unwrap_or(data.allow_duplicates);
        // A repeated role is kept: whether it runs again is decided per
        // host at run time (`RoleInfo::once`), as in Ansible, where a host
        // on which the first instance ran no task still runs the second.
        // Within its own dependency chain it would never end.
        let repeated = !self.roles.ran.insert(data.key.clone());
        if repeated && self.roles.chain.iter().any(|r| r.key == data.key) {
            return Some(Vec::new());
        }
        // A public role shows the play its defaults and vars (its
        // dependencies' included): `roles:` and `import_role` from the
        // start, a public `include_role` from when it runs.
        let public = spec.public.unwrap_or(!spec.from_include);
        if public && !spec.from_include {
            overlay(&mut self.roles.play.defaults, &data.default_vars());
            overlay(&mut self.roles.play.exports, &data.exported_vars());
        }
        let mut checks = Vec::new();
        let keywords: Vec<(&str, &Node, &Node)> =
            spec.keywords.iter().map(|(k, n, v)| (*k, n, v)).collect();
        let (own, _) = self.own_keywords(&keywords, ctx, &mut checks);
        let inh = own.pushed_down(inh);
        self.roles.chain.push(data.clone());
        let mut out = Vec::new();
        for (dep, dep_spec) in data.deps.iter().zip(&data.dep_specs) {
            if !self.roles.play.dependent_role_names.contains(&dep.name) {
                self.roles.play.dependent_role_names.push(dep.name.clone());
            }
            // A dependency shows the play nothing of its own: the role
            // that pulls it in shows its variables, if it is public.
            let mut dep_spec = dep_spec.clone();
            dep_spec.public = Some(false);
            if let Some(tasks) = self.expand_role(&dep_spec, &inh, ctx, from_roles) {
                out.extend(tasks);
            }
        }
        let chain = self.roles.chain.clone();
        let mut info = data.info(&chain);
        info.once = (!allow_duplicates).then(|| data.key.clone());
        if public && spec.from_include {
            info.public_defaults = data.default_vars();
            info.public_vars = data.exported_vars();
        }
        let info = Arc::new(info);
        let mut tasks = Vec::new();
        if let Some(check) = self.argument_spec_task(&data, spec, &inh) {
            tasks.push(check);
        }
        if let Some(file) = role_file(&data.path, "tasks", spec.entry_file("tasks")) {
            tasks.extend(self.task_file(&file, &inh, ctx, Some(&spec.span)));
        } else if let Some(f) = spec.entry_file("tasks") {
            self.error(
                spec.span
                    .diagnostic(format!("`tasks_from` file `{f}` not found"))
                    .with_label(format!("looked in {}", data.path.join("tasks").display())),
            );
        }
        set_role(&mut tasks, &info);
        if self.roles.handled.insert(data.key.clone()) {
            let mut handlers = Vec::new();
            if let Some(file) = role_file(&data.path, "handlers", spec.entry_file("handlers")) {
                let hctx = Ctx {
                    handlers: true,
                    ..ctx.clone()
                };
                handlers = self.task_file(&file, &Inherited::default(), &hctx, Some(&spec.span));
            }
            set_role(&mut handlers, &info);
            if from_roles {
                self.roles.handlers.extend(handlers);
            } else {
                self.roles.late_handlers.extend(handlers);
            }
        }
        self.roles.chain.pop();
        if !tasks.is_empty() {
            let mut block = Task::new(
                TaskKind::Block {
                    block: tasks,
                    rescue: Vec::new(),
                    always: Vec::new(),
                },
                spec.span.clone(),
            );
            block.name = Some(data.name.clone());
            block.tags = inh.tags.clone();
            block.role = Some(info);
            out.push(block);
        }
        Some(out)
    }

    /// `import_role`/`include_role` as a task: the role's tasks in place
    /// of the task, with the task's keywords on each of them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn role_task(
        &mut self,
        short: &str,
        args: &Value,
        keywords: &[(&str, &Node, &Node)],
        own: Own,
        span: Span,
        inh: &Inherited,
        ctx: &Ctx,
        spans: TaskSpans,
    ) -> Option<Task> {
        if let Some((kw, k, _)) = keywords
            .iter()
            .find(|(kw, _, _)| short == "import_role" && is_loop_keyword(kw))
        {
            self.error(
                k.span
                    .diagnostic(format!("`{kw}` cannot be used on `{short}`"))
                    .with_help("use `include_role` to run a role for each item"),
            );
            return None;
        }
        if short == "include_role" && needs_run_time(args, keywords) {
            // A loop or a templated name: loaded when reached, per host.
            self.role_action_spec(short, &untemplated(args), &spans, &span)?;
            let kind = TaskKind::Action {
                action: "include_role".into(),
                args: args.clone(),
            };
            let mut task = own.into_task(kind, span, inh, spans);
            task.role_include = true;
            return Some(task);
        }
        let spec = self.role_action_spec(short, args, &spans, &span)?;
        let mut pushed = own.pushed_down(inh);
        if spec.from_include {
            // The include's own `when` is decided once, on the include, and
            // its tags select the include only (its tasks need their own,
            // or `apply`), as for Ansible's dynamic includes.
            pushed.when = inh.when.clone();
            pushed.tags = inh.tags.clone();
        }
        let tasks = self.expand_role(&spec, &pushed, ctx, false)?;
        let kind = TaskKind::Block {
            block: tasks,
            rescue: Vec::new(),
            always: Vec::new(),
        };
        let mut task = own.into_task(kind, span, inh, spans);
        task.role_include = spec.from_include;
        Some(task)
    }

    /// The arguments of `import_role`/`include_role` as a role entry.
    fn role_action_spec(
        &mut self,
        short: &str,
        args: &Value,
        spans: &TaskSpans,
        span: &Span,
    ) -> Option<RoleSpec> {
        let map = args.as_object().cloned().unwrap_or_default();
        let at = |key: &str| spans.arg_keys.get(key).unwrap_or(span).clone();
        let mut spec = RoleSpec::new(span.clone());
        spec.from_include = short == "include_role";
        let mut ok = true;
        for (key, value) in &map {
            match key.as_str() {
                "name" | "role" => match value.as_str() {
                    Some(s) if !is_template(s) => {
                        spec.name = s.trim().to_string();
                        spec.span = spans.arg_values.get(key).unwrap_or(span).clone();
                    }
                    Some(_) => {
                        self.error(
                            at(key)
                                .diagnostic(format!(
                                    "`{short}` needs a role name without templates"
                                ))
                                .with_help("herd resolves roles when the playbook loads"),
                        );
                        ok = false;
                    }
                    None => {
                        self.error(at(key).diagnostic(format!("`{key}` must be a role name")));
                        ok = false;
                    }
                },
                "tasks_from" | "vars_from" | "defaults_from" | "handlers_from" => {
                    match value.as_str() {
                        Some(s) if !is_template(s) => {
                            let folder = key.trim_end_matches("_from").to_string();
                            spec.from.push((folder, s.to_string()));
                        }
                        _ => {
                            self.error(at(key).diagnostic(format!(
                                "`{key}` must be a file name without templates"
                            )));
                            ok = false;
                        }
                    }
                }
                "public" => spec.public = json_bool(value),
                "allow_duplicates" => spec.allow_duplicates = json_bool(value),
                "rolespec_validate" => {}
                "apply" if short == "import_role" => {
                    self.error(
                        at(key)
                            .diagnostic("`apply` is only valid on `include_role`")
                            .with_help("keywords on `import_role` itself apply to every task"),
                    );
                    ok = false;
                }
                "apply" => match value {
                    Value::Object(m) => self.apply_keywords(m, &at(key), &mut spec),
                    _ => {
                        self.error(
                            at(key).diagnostic("`apply` must be a mapping of task keywords"),
                        );
                        ok = false;
                    }
                },
                _ => {
                    let mut d = at(key)
                        .diagnostic(format!("invalid option `{key}` for `{short}`"))
                        .with_label(format!("expected one of: {}", ROLE_ACTION_ARGS.join(", ")));
                    if let Some(s) =
                        crate::diagnostic::did_you_mean(key, ROLE_ACTION_ARGS.iter().copied())
                    {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.error(d);
                    ok = false;
                }
            }
        }
        if spec.name.is_empty() && ok {
            self.error(
                span.diagnostic(format!("`{short}` needs `name`"))
                    .with_help(format!("write `{short}: {{name: rolename}}`")),
            );
            return None;
        }
        // `allow_duplicates` defaults to yes for `include_role` and
        // `import_role` (Ansible sets it on the role from the task).
        if spec.allow_duplicates.is_none() {
            spec.allow_duplicates = Some(true);
        }
        ok.then_some(spec)
    }

    /// `apply:` keywords become keywords of every task of the role.
    fn apply_keywords(&mut self, m: &Map<String, Value>, at: &Span, spec: &mut RoleSpec) {
        for (k, v) in m {
            let Some(kw) = ROLE_TASK_KEYWORDS.iter().find(|s| **s == k.as_str()) else {
                self.error(
                    at.diagnostic(format!("`apply` keyword `{k}` is not supported"))
                        .with_label(format!(
                            "expected one of: {}",
                            ROLE_TASK_KEYWORDS.join(", ")
                        )),
                );
                continue;
            };
            let key_node = json_node(at, &Value::String(k.clone()));
            let value_node = json_node(at, v);
            spec.keywords.push((kw, key_node, value_node));
        }
    }

    /// `meta/main.yml` (or `meta/argument_specs.yml`) `argument_specs` for
    /// the entry point: a check task before the role's first task.
    fn argument_spec_task(
        &mut self,
        data: &RoleData,
        spec: &RoleSpec,
        inh: &Inherited,
    ) -> Option<Task> {
        let specs = match role_file(&data.path, "meta", Some("argument_specs")) {
            Some(f) => crate::yaml::parse_file(&f)
                .ok()
                .map(|n| n.to_json())
                .and_then(|v| v.get("argument_specs").cloned()),
            None => data.argument_specs.clone(),
        }?;
        let entry = spec.entry_file("tasks").unwrap_or("main");
        let entry = entry
            .trim_end_matches(".yml")
            .trim_end_matches(".yaml")
            .to_string();
        let entry_spec = specs.get(&entry)?.clone();
        let options = entry_spec
            .get("options")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let mut task = Own::default().into_task(
            TaskKind::Action {
                action: "validate_argument_spec".into(),
                args: serde_json::json!({
                    "argument_spec": options,
                    "provided_arguments": data.params,
                }),
            },
            spec.span.clone(),
            inh,
            TaskSpans::default(),
        );
        let mut name = format!("Validating arguments against arg spec '{entry}'");
        if let Some(short) = entry_spec.get("short_description").and_then(Value::as_str) {
            name = format!("{name} - {short}");
        }
        task.name = Some(name);
        // Ansible's validation task is tagged `always`.
        if !task.tags.iter().any(|t| t == "always") {
            task.tags.push("always".into());
        }
        Some(task)
    }
}

fn is_loop_keyword(kw: &str) -> bool {
    kw == "loop" || kw == "loop_control" || kw.starts_with("with_")
}

/// `include_role` that can only be resolved per host: looped, or with a
/// templated role or file name.
fn needs_run_time(args: &Value, keywords: &[(&str, &Node, &Node)]) -> bool {
    keywords.iter().any(|(kw, _, _)| is_loop_keyword(kw))
        || args.as_object().is_some_and(|m| {
            [
                "name",
                "role",
                "tasks_from",
                "vars_from",
                "defaults_from",
                "handlers_from",
            ]
            .iter()
            .any(|k| m.get(*k).and_then(Value::as_str).is_some_and(is_template))
        })
}

/// The arguments with templated strings replaced by a plain placeholder,
/// so their shape is checked when the playbook loads (not the role itself).
fn untemplated(args: &Value) -> Value {
    let mut out = args.clone();
    if let Some(m) = out.as_object_mut() {
        for v in m.values_mut() {
            if v.as_str().is_some_and(is_template) {
                *v = Value::from("__templated__");
            }
        }
        m.remove("name");
        m.remove("role");
        m.insert("name".into(), Value::from("__templated__"));
    }
    out
}

/// Load the role an `include_role` names once its arguments are rendered
/// (a looped or templated `include_role`): its tasks and its handlers,
/// resolved from `playbook_dir` like any role.
pub fn load_included_role(
    playbook_dir: &Path,
    args: &Value,
    span: &Span,
) -> Result<(Vec<Task>, Vec<Task>), Vec<crate::diagnostic::Diagnostic>> {
    let mut loader = Loader::new(playbook_dir.to_path_buf());
    let ctx = Ctx {
        dir: playbook_dir.to_path_buf(),
        depth: 0,
        handlers: false,
    };
    let spans = TaskSpans::default();
    let tasks = match loader.role_action_spec("include_role", args, &spans, span) {
        Some(spec) => loader
            .expand_role(&spec, &Inherited::default(), &ctx, false)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let handlers = std::mem::take(&mut loader.roles.late_handlers);
    loader.finish((tasks, handlers))
}

fn json_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Some(true),
            "no" | "false" | "off" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// `<role>/<folder>/<name>` with `.yml`, `.yaml`, `.json` or as is.
fn role_file(role: &Path, folder: &str, from: Option<&str>) -> Option<PathBuf> {
    let name = from.unwrap_or("main");
    let dir = role.join(folder);
    for candidate in [
        format!("{name}.yml"),
        format!("{name}.yaml"),
        format!("{name}.json"),
        name.to_string(),
    ] {
        let p = dir.join(&candidate);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Mark tasks (and the blocks inside) as belonging to a role, where an
/// inner role (`import_role` inside a role) has not already.
fn set_role(tasks: &mut [Task], info: &Arc<RoleInfo>) {
    for t in tasks {
        if t.role.is_none() {
            t.role = Some(info.clone());
        }
        if let TaskKind::Block {
            block,
            rescue,
            always,
        } = &mut t.kind
        {
            set_role(block, info);
            set_role(rescue, info);
            set_role(always, info);
        }
    }
}

/// A YAML node for a value that came from JSON (`apply:` keywords), all
/// of it placed at `span`.
fn json_node(span: &Span, v: &Value) -> Node {
    let value = match v {
        Value::Null => NodeValue::Null,
        Value::Bool(b) => NodeValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => NodeValue::Int(i),
            None => NodeValue::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => NodeValue::Str(s.clone()),
        Value::Array(a) => NodeValue::Seq(a.iter().map(|x| json_node(span, x)).collect()),
        Value::Object(m) => NodeValue::Map(
            m.iter()
                .map(|(k, x)| {
                    (
                        json_node(span, &Value::String(k.clone())),
                        json_node(span, x),
                    )
                })
                .collect(),
        ),
    };
    Node {
        value,
        span: span.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// The errors of loading `tests/fixtures/roles/errors/<case>`, rendered
    /// with their source lines.
    fn errors(case: &str) -> String {
        // Fixed search folders, so the "looked in" lists do not depend on
        // the machine's home directory.
        super::configure_role_paths(
            vec![PathBuf::from("/etc/herd-test/roles")],
            vec![PathBuf::from("/etc/herd-test/collections")],
        );
        let path = PathBuf::from("tests/fixtures/roles/errors").join(case);
        let cwd = std::env::current_dir()
            .map(|d| format!("{}/", d.display()))
            .unwrap_or_default();
        match crate::playbook::load_playbook(&path) {
            Ok(_) => "loaded without errors".into(),
            Err(errors) => errors
                .iter()
                .map(|d| d.render().replace(&cwd, ""))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn a_missing_role_lists_every_place_looked() {
        insta::assert_snapshot!(errors("missing.yml"));
    }

    #[test]
    fn bad_role_entries_and_role_tasks() {
        insta::assert_snapshot!(errors("entries.yml"));
    }

    #[test]
    fn a_dependency_cycle_is_an_error() {
        insta::assert_snapshot!(errors("cycle.yml"));
    }
}
