//! Inventories: Ansible INI and YAML files (or a directory of them), with
//! `group_vars/` and `host_vars/` beside them, resolved into hosts, groups and
//! each host's variables; plus host patterns (`--limit`, play `hosts:`).
//!
//! The model is Ansible's: every group is below `all`; `ungrouped` holds the
//! hosts that are in no other group; a host belongs to the groups it is listed
//! in and to all their ancestors. Files are parsed into this model first
//! (`ini`, `yaml`), then `reconcile` applies those rules once, after every
//! source is read, exactly when Ansible does.
//!
//! Variable precedence, lowest first (Ansible's order for these sources):
//! 1. inventory file group vars (`[g:vars]`, YAML `vars:`), parents before children, `all` first
//! 2. inventory `group_vars/all`, then playbook `group_vars/all`
//! 3. inventory `group_vars/<group>`, then playbook `group_vars/<group>` (parents before children)
//! 4. inventory file host vars (inline `k=v`, YAML host entries)
//! 5. inventory `host_vars/<host>`, then playbook `host_vars/<host>`
//!
//! Groups are ordered by depth (longest path from `all`), then
//! `ansible_group_priority`, then name, as Ansible does. Within step 3 each
//! directory is applied whole before the next, also as Ansible does. Merging
//! is shallow: a later value replaces an earlier one (`hash_behaviour=replace`).
//!
//! An executable inventory file (or one in an inventory directory) is an
//! inventory script, run with `--list` (`script.rs`). Not supported, each
//! reported rather than ignored: inventory plugin configurations
//! (`plugin: aws_ec2`), and vault-encrypted vars files.

pub mod ini;
pub mod pattern;
pub mod vars;
pub mod yaml;

mod dynamic;
pub use dynamic::parse_host_address;
mod hostname;
pub(crate) mod literal;
mod script;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;

/// Names that mean this machine. A pattern naming one of them matches an
/// implicit local host when the inventory does not define it (Ansible's
/// `C.LOCALHOST`).
pub const LOCALHOST: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// Inventory entries never tried as inventory files inside a directory
/// source (Ansible's `INVENTORY_IGNORE_EXTS` defaults).
const IGNORED_SUFFIXES: &[&str] = &[
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry",
];
const IGNORED_NAMES: &[&str] = &["group_vars", "host_vars", "vars_plugins"];

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Host {
    pub name: String,
    /// Vars from the inventory file itself (inline or YAML host entry).
    pub vars: Map<String, Value>,
    /// The inventory file the host was first found in, for the
    /// `inventory_file`/`inventory_dir` magic variables (none for `-i a,b`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    pub name: String,
    /// Hosts listed directly in this group, in file order.
    pub hosts: Vec<String>,
    /// Child groups, in file order.
    pub children: Vec<String>,
    /// Vars from the inventory file (`[g:vars]` or YAML `vars:`).
    pub vars: Map<String, Value>,
    /// Groups this one is a child of, in the order the links were made.
    pub parents: Vec<String>,
    /// `ansible_group_priority`: orders groups of equal depth when merging
    /// vars (higher wins). Like Ansible, it is taken from inventory files only
    /// and is not itself a variable.
    pub priority: i64,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            name: String::new(),
            hosts: Vec::new(),
            children: Vec::new(),
            vars: Map::new(),
            parents: Vec::new(),
            priority: 1,
        }
    }
}

/// A parent/child link that Ansible refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("group `{0}` cannot be a child of itself")]
    SelfChild(String),
    #[error("`all` cannot be a child group: every group is already below it")]
    AllIsRoot,
    #[error("making `{child}` a child of `{parent}` creates a loop: `{child}` is already an ancestor of `{parent}`")]
    Loop { parent: String, child: String },
}

#[derive(Debug, Clone)]
pub struct Inventory {
    /// Every host, in first-seen order.
    pub hosts: IndexMap<String, Host>,
    /// Every group, `all` and `ungrouped` included.
    pub groups: IndexMap<String, Group>,
    /// group/host name -> vars from `group_vars/` / `host_vars/` dirs, in load
    /// order (one merged map per directory that has vars for the name).
    pub group_vars_files: IndexMap<String, Vec<Map<String, Value>>>,
    pub host_vars_files: IndexMap<String, Vec<Map<String, Value>>>,
    /// Where the inventory came from (for `group_vars` lookup and messages).
    pub sources: Vec<PathBuf>,
    /// Every `group_vars/`/`host_vars/` directory read, in order; precedence
    /// is computed from these (inventory ones before playbook ones).
    pub vars_dirs: Vec<vars::VarsDir>,
    /// Problems that do not stop loading, where Ansible warns too (unknown
    /// keys in a YAML group, skipped files, a name used for a host and a group).
    pub warnings: Vec<Diagnostic>,
    /// The file being parsed, recorded as new hosts' `source`.
    current_source: Option<PathBuf>,
    /// (group, host) pairs already in `Group::hosts`, so adding a host is
    /// not a scan of its group (100,000 hosts took minutes).
    members: HashSet<(String, String)>,
    /// Group memberships and depths, computed on first use; every change
    /// to the group graph resets it.
    graph_cache: OnceLock<GraphCache>,
}

/// What the variable and pattern queries need from the group graph, computed
/// once instead of per host.
#[derive(Debug, Clone, Default)]
struct GraphCache {
    /// Host -> every group it is in, directly or through ancestors (`all` included).
    groups_of: HashMap<String, Vec<String>>,
    /// Group -> length of the longest path from `all`.
    depth: HashMap<String, usize>,
}

impl Default for Inventory {
    /// An empty inventory still has `all` with its child `ungrouped`.
    fn default() -> Self {
        let mut inv = Inventory {
            hosts: IndexMap::new(),
            groups: IndexMap::new(),
            group_vars_files: IndexMap::new(),
            host_vars_files: IndexMap::new(),
            sources: Vec::new(),
            vars_dirs: Vec::new(),
            warnings: Vec::new(),
            current_source: None,
            members: HashSet::new(),
            graph_cache: OnceLock::new(),
        };
        inv.ensure_group("all");
        inv.ensure_group("ungrouped");
        // Cannot fail: both exist and are unrelated.
        let _ = inv.add_child("all", "ungrouped");
        inv
    }
}

impl Inventory {
    /// Load inventory sources (files or directories), in order.
    ///
    /// A source that does not exist but contains a comma is a host list
    /// (`-i web1,web2:2222,`), as in Ansible. Every error found is returned,
    /// each with `path:line:col`; a broken file stops at its first error.
    pub fn load(sources: &[PathBuf]) -> Result<Inventory, Vec<Diagnostic>> {
        Self::load_sources(sources, true)
    }

    /// The hosts and groups of `sources` without their `group_vars/` and
    /// `host_vars/` (which add no names): what shell completion needs, with
    /// no vault password and no time spent on variables.
    pub fn load_names(sources: &[PathBuf]) -> Result<Inventory, Vec<Diagnostic>> {
        Self::load_sources(sources, false)
    }

    fn load_sources(sources: &[PathBuf], vars: bool) -> Result<Inventory, Vec<Diagnostic>> {
        let mut inv = Inventory::default();
        let mut errors = Vec::new();
        let mut vars_bases = Vec::new();
        for source in sources {
            if source.is_dir() {
                inv.load_dir(source, &mut errors);
                vars_bases.push(source.clone());
            } else if source.exists() {
                inv.load_file(source, true, &mut errors);
                let parent = source.parent().unwrap_or(Path::new(""));
                vars_bases.push(parent.to_path_buf());
            } else if source.to_string_lossy().contains(',') {
                inv.load_host_list(&source.to_string_lossy());
                continue;
            } else {
                errors.push(
                    Diagnostic::new(source, 0, 0, "inventory source not found")
                        .with_help("pass an inventory file or directory with -i"),
                );
                continue;
            }
            inv.sources.push(source.clone());
        }
        inv.reconcile();
        if vars && errors.is_empty() {
            for base in vars_bases {
                if let Err(mut e) = inv.read_vars_dir(&base, false) {
                    errors.append(&mut e);
                }
            }
        }
        if errors.is_empty() {
            Ok(inv)
        } else {
            Err(errors)
        }
    }

    /// Also read `group_vars/` and `host_vars/` in `dir` (the playbook's directory).
    pub fn add_vars_dir(&mut self, dir: &Path) -> Result<(), Vec<Diagnostic>> {
        self.read_vars_dir(dir, true)
    }

    /// Hosts matching a pattern (`all`, `web:db`, `web:&prod`, `web:!web01`,
    /// `web*`, `~regex`, `web[0:2]`), in Ansible's "inventory" order: the
    /// hosts of each union term in turn, first occurrence kept. `localhost`
    /// matches an implicit local host when the inventory has none.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, pattern::PatternError> {
        pattern::select(self, pattern)
    }

    /// Whether `name` is the implicit local host: named like `localhost` and
    /// not defined in the inventory. It is in no group, not even `all`.
    pub fn is_implicit_localhost(&self, name: &str) -> bool {
        !self.hosts.contains_key(name) && LOCALHOST.contains(&name)
    }

    /// A host's variables, merged in the precedence order above. Magic
    /// variables (`inventory_hostname`, `groups`, ...) are not included.
    pub fn host_vars(&self, host: &str) -> Map<String, Value> {
        let implicit = self.is_implicit_localhost(host);
        let mut out = Map::new();
        if !implicit && !self.hosts.contains_key(host) {
            return out;
        }
        let groups = if implicit {
            Vec::new()
        } else {
            self.sorted_groups_of(host)
        };
        let inventory_dirs = self.vars_dirs.iter().filter(|d| !d.from_playbook);
        let playbook_dirs = self.vars_dirs.iter().filter(|d| d.from_playbook);
        let dirs: Vec<&vars::VarsDir> = inventory_dirs.chain(playbook_dirs).collect();

        if let Some(all) = self.groups.get("all") {
            merge(&mut out, &all.vars);
        }
        for g in &groups {
            merge(&mut out, &self.groups[g.as_str()].vars);
        }
        for d in &dirs {
            if let Some(v) = d.groups.get("all") {
                merge(&mut out, v);
            }
        }
        for d in &dirs {
            for g in &groups {
                if let Some(v) = d.groups.get(g.as_str()) {
                    merge(&mut out, v);
                }
            }
        }
        if implicit {
            out.insert("ansible_connection".into(), Value::from("local"));
        } else {
            merge(&mut out, &self.hosts[host].vars);
        }
        for d in &dirs {
            if let Some(v) = d.hosts.get(host) {
                merge(&mut out, v);
            }
        }
        out
    }

    /// The groups a host belongs to (directly or through children), sorted, without `all`.
    /// `ungrouped` is included for hosts in no other group, as in Ansible.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups_of(host)
            .into_iter()
            .filter(|g| g != "all")
            .collect();
        names.sort();
        names
    }

    /// `groups` magic variable: every group with all its hosts (children included).
    pub fn groups_map(&self) -> IndexMap<String, Vec<String>> {
        self.groups
            .keys()
            .map(|g| (g.clone(), self.group_hosts(g)))
            .collect()
    }

    /// Every host of a group and its descendants, in Ansible's order: the
    /// group's own hosts, then its children's, then grandchildren's (breadth
    /// first), each host once. For `all` that is simply every host in the
    /// order first seen: Ansible makes every host a direct member of `all`.
    /// (Below the children Ansible visits each level in hash-set order; here
    /// it is file order, so results are deterministic.)
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        if group == "all" {
            return self.hosts.keys().cloned().collect();
        }
        let Some(start) = self.groups.get(group) else {
            return Vec::new();
        };
        let mut ordered: Vec<&str> = vec![group];
        ordered.extend(start.children.iter().map(String::as_str));
        let mut seen: HashSet<&str> = HashSet::new();
        let mut level: Vec<&str> = ordered.clone();
        while !level.is_empty() {
            seen.extend(level.iter().copied());
            let mut next: Vec<&str> = Vec::new();
            for g in &level {
                for c in &self.groups[*g].children {
                    if !seen.contains(c.as_str()) && !next.contains(&c.as_str()) {
                        next.push(c);
                        ordered.push(c);
                    }
                }
            }
            level = next;
        }
        let mut hosts = Vec::new();
        let mut have: HashSet<&str> = HashSet::new();
        for g in ordered {
            for h in &self.groups[g].hosts {
                if have.insert(h) {
                    hosts.push(h.clone());
                }
            }
        }
        hosts
    }

    /// The JSON `ansible-inventory --list` prints.
    ///
    /// Same shape and choices as ansible-core 2.15+: `all` lists only its
    /// children (always starting with `ungrouped`); other groups have `hosts`
    /// (direct members) and `children` keys only when non-empty and are left
    /// out when both are empty; `_meta.hostvars` has every host's merged vars,
    /// leaving out hosts that have none. Keys are sorted at every level, as
    /// `json.dumps(sort_keys=True)` does; lists keep inventory order.
    pub fn to_list_json(&self) -> Value {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        self.list_group("all", &mut out, &mut seen);
        let mut hostvars = Map::new();
        for host in self.group_hosts("all") {
            let vars = self.host_vars(&host);
            if !vars.is_empty() {
                hostvars.insert(host, Value::Object(vars));
            }
        }
        let mut meta = Map::new();
        meta.insert("hostvars".into(), Value::Object(hostvars));
        out.insert("_meta".into(), Value::Object(meta));
        sort_keys(Value::Object(out))
    }

    fn list_group(&self, name: &str, out: &mut Map<String, Value>, seen: &mut HashSet<String>) {
        let group = &self.groups[name];
        let mut entry = Map::new();
        if name != "all" && !group.hosts.is_empty() {
            entry.insert("hosts".into(), Value::from(group.hosts.clone()));
        }
        if !group.children.is_empty() {
            entry.insert("children".into(), Value::from(group.children.clone()));
        }
        if !entry.is_empty() {
            out.insert(name.to_string(), Value::Object(entry));
        }
        for child in &group.children {
            if seen.insert(child.clone()) {
                self.list_group(child, out, seen);
            }
        }
    }

    /// The text `ansible-inventory --graph` prints (with a final newline):
    /// child groups first, then the group's own hosts, in inventory order.
    pub fn graph(&self) -> String {
        let mut out = String::new();
        self.graph_group("all", 0, &mut out);
        out
    }

    fn graph_group(&self, name: &str, depth: usize, out: &mut String) {
        let line = |out: &mut String, text: &str, depth: usize| {
            if depth > 0 {
                out.push_str(&"  |".repeat(depth));
                out.push_str("--");
            }
            out.push_str(text);
            out.push('\n');
        };
        line(out, &format!("@{name}:"), depth);
        let group = &self.groups[name];
        for child in &group.children {
            self.graph_group(child, depth + 1, out);
        }
        if name != "all" {
            for host in &group.hosts {
                line(out, host, depth + 1);
            }
        }
    }

    // ---- building (used by the ini and yaml parsers) ----

    pub(crate) fn ensure_group(&mut self, name: &str) {
        if !self.groups.contains_key(name) {
            self.groups.insert(
                name.to_string(),
                Group {
                    name: name.to_string(),
                    ..Group::default()
                },
            );
        }
    }

    /// Add a host (if new) as a member of `group`, which must exist. A port
    /// from `host:port` becomes the host var `ansible_port`.
    pub(crate) fn add_host(&mut self, name: &str, group: &str, port: Option<i64>) {
        self.graph_cache = OnceLock::new();
        let source = self.current_source.clone();
        let host = self.hosts.entry(name.to_string()).or_insert_with(|| Host {
            name: name.to_string(),
            vars: Map::new(),
            source,
        });
        if let Some(port) = port {
            host.vars.insert("ansible_port".into(), Value::from(port));
        }
        if let Some(g) = self.groups.get_mut(group) {
            if self.members.insert((group.to_string(), name.to_string())) {
                g.hosts.push(name.to_string());
            }
        }
    }

    /// Link `child` below `parent` (both must exist), refusing loops.
    pub(crate) fn add_child(&mut self, parent: &str, child: &str) -> Result<(), LinkError> {
        if parent == child {
            return Err(LinkError::SelfChild(child.to_string()));
        }
        if child == "all" {
            return Err(LinkError::AllIsRoot);
        }
        if self.groups[parent].children.iter().any(|c| c == child) {
            return Ok(());
        }
        if self.has_ancestor(parent, child) {
            return Err(LinkError::Loop {
                parent: parent.to_string(),
                child: child.to_string(),
            });
        }
        self.graph_cache = OnceLock::new();
        if let Some(p) = self.groups.get_mut(parent) {
            p.children.push(child.to_string());
        }
        if let Some(c) = self.groups.get_mut(child) {
            if !c.parents.iter().any(|p| p == parent) {
                c.parents.push(parent.to_string());
            }
        }
        Ok(())
    }

    pub(crate) fn set_group_var(&mut self, group: &str, key: String, value: Value) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if key == "ansible_group_priority" {
            let priority = match &value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            if let Some(p) = priority {
                g.priority = p;
                return;
            }
        }
        g.vars.insert(key, value);
    }

    pub(crate) fn set_host_var(&mut self, host: &str, key: String, value: Value) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.vars.insert(key, value);
        }
    }

    /// Ansible's rules applied once every source is read: groups without a
    /// parent go below `all`; hosts listed in a real group leave `ungrouped`,
    /// hosts in none join it.
    fn reconcile(&mut self) {
        let roots: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.name != "all" && g.parents.is_empty())
            .map(|g| g.name.clone())
            .collect();
        for g in roots {
            // A group without parents cannot be an ancestor of `all`.
            let _ = self.add_child("all", &g);
        }
        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for g in self.groups.values() {
            for h in &g.hosts {
                direct.entry(h).or_default().push(&g.name);
            }
        }
        let mut leave = HashSet::new();
        let mut join = Vec::new();
        for h in self.hosts.keys() {
            let groups = direct.get(h.as_str()).cloned().unwrap_or_default();
            let real = groups.iter().any(|g| *g != "all" && *g != "ungrouped");
            if groups.contains(&"ungrouped") {
                if real {
                    leave.insert(h.clone());
                }
            } else if !real {
                join.push(h.clone());
            }
        }
        if let Some(u) = self.groups.get_mut("ungrouped") {
            u.hosts.retain(|h| !leave.contains(h));
            for h in &leave {
                self.members.remove(&("ungrouped".to_string(), h.clone()));
            }
            for h in &join {
                self.members.insert(("ungrouped".to_string(), h.clone()));
            }
            u.hosts.extend(join);
        }
        self.graph_cache = OnceLock::new();
        for name in self.hosts.keys() {
            if self.groups.contains_key(name) {
                let source = self.sources.first().cloned().unwrap_or_default();
                self.warnings.push(Diagnostic::new(
                    source,
                    0,
                    0,
                    format!("found both a group and a host named `{name}`"),
                ));
            }
        }
    }

    fn load_dir(&mut self, dir: &Path, errors: &mut Vec<Diagnostic>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(Diagnostic::new(
                    dir,
                    0,
                    0,
                    format!("cannot read inventory directory: {e}"),
                ));
                return;
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(std::result::Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            if name.ends_with(".ini") {
                // ansible-core's INVENTORY_IGNORE_EXTS includes `.ini`: inside
                // a directory such a file is not inventory to Ansible, and
                // reading it would target hosts Ansible would not. Say so.
                self.warnings.push(
                    Diagnostic::new(
                        dir.join(&name),
                        0,
                        0,
                        "skipped: Ansible ignores `.ini` files inside an inventory directory",
                    )
                    .with_help("pass it with -i, or drop the `.ini` extension"),
                );
                continue;
            }
            let ignored = name.starts_with('.')
                || IGNORED_NAMES.contains(&name.as_str())
                || IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s));
            if ignored {
                continue;
            }
            let path = dir.join(&name);
            if path.is_dir() {
                self.load_dir(&path, errors);
            } else {
                self.load_file(&path, false, errors);
            }
        }
    }

    /// One inventory file. `.yml`/`.yaml`/`.json` are YAML; `.ini` and files
    /// without an extension are YAML when they parse as a YAML mapping and INI
    /// otherwise (Ansible tries its yaml plugin before its ini plugin). Other
    /// extensions are read the same way when named on the command line and
    /// skipped with a warning inside a directory.
    fn load_file(&mut self, path: &Path, explicit: bool, errors: &mut Vec<Diagnostic>) {
        let kind = script::kind(path);
        if matches!(kind, script::Kind::Shebang | script::Kind::Executable) {
            self.current_source = Some(path.to_path_buf());
            let loaded = script::load(self, path, kind);
            self.current_source = None;
            match loaded {
                Ok(true) => return,
                Ok(false) => {}
                Err(d) => {
                    errors.push(d);
                    return;
                }
            }
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let yaml_ext = matches!(ext, "yml" | "yaml" | "json");
        if !explicit && !yaml_ext && !ext.is_empty() && ext != "ini" {
            self.warnings.push(Diagnostic::new(
                path,
                0,
                0,
                format!("skipped: `.{ext}` files are not inventory files"),
            ));
            return;
        }
        let text = match crate::diagnostic::read_source(path, "inventory file") {
            Ok(t) => t,
            Err(d) => {
                errors.push(d);
                return;
            }
        };
        if text.starts_with("#!") {
            let d = Diagnostic::new(path, 1, 1, "this inventory script is not executable")
                .with_len(2)
                .with_help("make it executable (`chmod +x`) to have it run with `--list`");
            if explicit {
                errors.push(d);
            } else {
                self.warnings.push(d);
            }
            return;
        }
        self.current_source = Some(path.to_path_buf());
        let parsed = crate::yaml::parse(path, &text);
        let result = match parsed {
            Ok(node) if yaml_ext || node.as_map().is_some() => yaml::load(self, &node),
            Err(d) if yaml_ext => Err(d),
            // A broken YAML inventory without an extension: the YAML error
            // says more than the INI parser's complaint about `all:`.
            Err(yaml_error) => ini::parse(self, path, &text).map_err(|ini_error| {
                if looks_like_yaml(&text) {
                    yaml_error
                } else {
                    ini_error
                }
            }),
            Ok(_) => ini::parse(self, path, &text),
        };
        self.current_source = None;
        if let Err(d) = result {
            errors.push(d);
        }
    }

    /// `-i web1,web2:2222,`: hosts in `ungrouped`, without range expansion.
    fn load_host_list(&mut self, list: &str) {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, port) = match hostname::parse_address(item) {
                Some((name, port)) if !name.contains('[') => (name, port),
                _ => (item.to_string(), None),
            };
            self.add_host(&name, "ungrouped", port);
        }
    }

    fn read_vars_dir(&mut self, base: &Path, from_playbook: bool) -> Result<(), Vec<Diagnostic>> {
        let groups: Vec<String> = self.groups.keys().cloned().collect();
        let mut hosts: Vec<String> = self.hosts.keys().cloned().collect();
        for name in LOCALHOST {
            if !self.hosts.contains_key(name) {
                hosts.push(name.to_string());
            }
        }
        let dir = vars::read(base, &groups, &hosts, from_playbook)?;
        for (name, v) in &dir.groups {
            self.group_vars_files
                .entry(name.clone())
                .or_default()
                .push(v.clone());
        }
        for (name, v) in &dir.hosts {
            self.host_vars_files
                .entry(name.clone())
                .or_default()
                .push(v.clone());
        }
        self.vars_dirs.push(dir);
        Ok(())
    }

    // ---- queries on the group graph ----

    /// Every ancestor of a group, nearest first.
    fn ancestors(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        // A set beside the list: a deep chain of groups made this, and so
        // loading, cubic (2,000 nested groups took 39 s).
        let mut seen: HashSet<&str> = HashSet::new();
        let mut queue: Vec<&str> = vec![group];
        while let Some(g) = queue.pop() {
            if let Some(g) = self.groups.get(g) {
                for p in &g.parents {
                    if seen.insert(p) {
                        out.push(p.clone());
                        queue.push(p);
                    }
                }
            }
        }
        out
    }

    /// Whether `wanted` is above `group`: `ancestors` without the copies.
    fn has_ancestor(&self, group: &str, wanted: &str) -> bool {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut queue: Vec<&str> = vec![group];
        while let Some(g) = queue.pop() {
            if let Some(g) = self.groups.get(g) {
                for p in &g.parents {
                    if p == wanted {
                        return true;
                    }
                    if seen.insert(p) {
                        queue.push(p);
                    }
                }
            }
        }
        false
    }

    fn cache(&self) -> &GraphCache {
        self.graph_cache.get_or_init(|| {
            let mut cache = GraphCache::default();
            let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
            for g in self.groups.keys() {
                self.depth(g, &mut cache.depth);
            }
            for g in self.groups.values() {
                let mut lineage = self.ancestors(&g.name);
                lineage.reverse();
                lineage.push(g.name.clone());
                for h in &g.hosts {
                    let groups = cache.groups_of.entry(h.clone()).or_default();
                    let known = seen.entry(h.clone()).or_default();
                    for name in &lineage {
                        if known.insert(name.clone()) {
                            groups.push(name.clone());
                        }
                    }
                }
            }
            cache
        })
    }

    /// The groups a host is in, directly or through ancestors, `all` included.
    fn groups_of(&self, host: &str) -> Vec<String> {
        self.cache()
            .groups_of
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// A host's groups without `all`, in merge order: by depth, then
    /// priority, then name (Ansible's `sort_groups`).
    fn sorted_groups_of(&self, host: &str) -> Vec<String> {
        let cache = self.cache();
        let mut groups: Vec<(usize, i64, String)> = self
            .groups_of(host)
            .into_iter()
            .filter(|g| g != "all")
            .map(|g| {
                let depth = cache.depth.get(&g).copied().unwrap_or(0);
                (depth, self.groups[&g].priority, g)
            })
            .collect();
        groups.sort();
        groups.into_iter().map(|(_, _, g)| g).collect()
    }

    /// Length of the longest path from `all` down to the group. With an
    /// explicit stack: a chain of nested groups as deep as the file is long
    /// must not overflow the thread's stack. (Links never form loops.)
    fn depth(&self, group: &str, cache: &mut HashMap<String, usize>) -> usize {
        let mut stack: Vec<&str> = vec![group];
        while let Some(&g) = stack.last() {
            if cache.contains_key(g) {
                stack.pop();
                continue;
            }
            let parents: &[String] = self.groups.get(g).map_or(&[], |g| &g.parents);
            let pending: Vec<&str> = parents
                .iter()
                .filter(|p| !cache.contains_key(p.as_str()))
                .map(String::as_str)
                .collect();
            if pending.is_empty() {
                let d = parents
                    .iter()
                    .map(|p| cache[p.as_str()] + 1)
                    .max()
                    .unwrap_or(0);
                cache.insert(g.to_string(), d);
                stack.pop();
            } else {
                stack.extend(pending);
            }
        }
        cache.get(group).copied().unwrap_or(0)
    }
}

/// Whether the first meaningful line is a YAML document start or a
/// `key:` / `key: value` line, which no INI inventory line can be.
fn looks_like_yaml(text: &str) -> bool {
    let Some(line) = text
        .lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with(['#', ';']))
    else {
        return false;
    };
    if line.starts_with("---") {
        return true;
    }
    match line.split_once(':') {
        Some((key, rest)) => {
            !key.is_empty()
                && !key.contains(['[', '=', ' ', '\t'])
                && (rest.is_empty() || rest.starts_with([' ', '\t']))
        }
        None => false,
    }
}

/// Shallow merge: later values replace earlier ones.
fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

/// Objects with keys in sorted order, recursively.
fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    /// Found while fuzzing: every link scanned lists of ancestors (cubic
    /// time: 2,000 nested groups took 39 s in release) and depth recursed once per
    /// level (a deep enough chain overflows the stack).
    #[test]
    fn a_deep_chain_of_groups_loads_quickly() {
        let n = 2000;
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!("[g{i}:children]\ng{}\n", i + 1));
        }
        text.push_str(&format!("[g{n}]\nh1\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.ini");
        std::fs::write(&path, text).unwrap();
        let start = std::time::Instant::now();
        let inv = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                let inv = super::Inventory::load(&[path]).unwrap();
                let vars = inv.host_vars("h1");
                (inv.group_names("h1").len(), vars.len())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(inv.0, n + 1);
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
    }

    /// Found by the fuzzer: each host added scanned its group's list, so
    /// `web[0:99999]` took minutes to load.
    #[test]
    fn a_hundred_thousand_hosts_load_in_linear_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.ini");
        std::fs::write(&path, "[web]\nweb[0:99999]\n[db]\nweb[0:99999]\n").unwrap();
        let start = std::time::Instant::now();
        let inv = super::Inventory::load(&[path]).unwrap();
        assert_eq!(inv.group_hosts("web").len(), 100_000);
        assert_eq!(inv.groups["db"].hosts.len(), 100_000);
        assert!(inv.groups["ungrouped"].hosts.is_empty());
        // Minutes before; well under a second in release, a few in debug.
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    use super::*;
    use serde_json::json;

    /// Patterns evaluated against every fixture.
    const PATTERNS: &[&str] = &[
        "all",
        "*",
        "ungrouped",
        "web",
        "prod",
        "web:db",
        "db,web",
        "prod:&db",
        "prod:!web",
        "!db",
        "web*",
        "*.example.com",
        "~db-[ab]",
        "web[0:1]",
        "web[-1]",
        "es_*",
        "es_masters:es_data",
        "elasticsearch:&es_data:!es-data-05",
        "localhost",
        "nothing",
    ];

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory")
    }

    /// Everything the rest of the program asks of an inventory, as JSON.
    fn model(inv: &Inventory) -> Value {
        let mut hostvars = Map::new();
        let mut group_names = Map::new();
        for host in inv.hosts.keys() {
            hostvars.insert(host.clone(), Value::Object(inv.host_vars(host)));
            group_names.insert(host.clone(), json!(inv.group_names(host)));
        }
        let mut groups = Map::new();
        for g in inv.groups.values() {
            groups.insert(
                g.name.clone(),
                json!({"hosts": g.hosts, "children": g.children, "parents": g.parents, "vars": g.vars}),
            );
        }
        let mut patterns = Map::new();
        for p in PATTERNS {
            let result = match inv.select(p) {
                Ok(hosts) => json!(hosts),
                Err(e) => json!({ "error": e.to_string() }),
            };
            patterns.insert(p.to_string(), result);
        }
        let base = fixtures();
        let warnings: Vec<String> = inv
            .warnings
            .iter()
            .map(|w| w.clone().relative_to(&base).to_string())
            .collect();
        json!({
            "hosts": inv.hosts.keys().collect::<Vec<_>>(),
            "groups": groups,
            "host_vars": hostvars,
            "group_names": group_names,
            "groups_map": inv.groups_map(),
            "patterns": patterns,
            "warnings": warnings,
        })
    }

    #[test]
    fn fixtures_resolve() {
        insta::glob!("../../tests/fixtures/inventory", "ok/*", |path| {
            let inv = Inventory::load(&[path.to_path_buf()]).unwrap_or_else(|e| {
                panic!("{}: {:?}", path.display(), e);
            });
            insta::assert_json_snapshot!("model", model(&inv));
            insta::assert_json_snapshot!("list", inv.to_list_json());
            insta::assert_snapshot!("graph", inv.graph());
        });
    }

    #[test]
    fn broken_inventories_point_at_the_problem() {
        insta::glob!("../../tests/fixtures/inventory", "bad/*", |path| {
            let Err(errors) = Inventory::load(&[path.to_path_buf()]) else {
                panic!("{} loaded without error", path.display())
            };
            let base = Path::new(env!("CARGO_MANIFEST_DIR"));
            let rendered: String = errors
                .into_iter()
                .map(|d| {
                    let source = std::fs::read_to_string(&d.path).ok();
                    d.relative_to(base).render_with_source(source.as_deref())
                })
                .collect();
            insta::assert_snapshot!(rendered);
        });
    }

    #[test]
    fn missing_source_is_an_error() {
        let e = Inventory::load(&[PathBuf::from("no/such/inventory")]).unwrap_err();
        assert_eq!(e[0].message, "inventory source not found");
        assert_eq!(e[0].line, 0);
    }

    #[test]
    fn no_sources_is_an_empty_inventory_with_localhost() {
        let inv = Inventory::load(&[]).unwrap();
        assert!(inv.hosts.is_empty());
        assert_eq!(inv.select("localhost").unwrap(), ["localhost"]);
        assert!(inv.select("all").unwrap().is_empty());
        assert_eq!(
            inv.to_list_json(),
            json!({"_meta": {"hostvars": {}}, "all": {"children": ["ungrouped"]}})
        );
        assert_eq!(inv.graph(), "@all:\n  |--@ungrouped:\n");
    }

    #[test]
    fn hosts_remember_their_file_and_odd_lines_warn() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hosts");
        std::fs::write(&path, "[web]\nweb1\nhttp_port=80\n").unwrap();
        let inv = Inventory::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(inv.hosts["web1"].source.as_deref(), Some(path.as_path()));
        assert_eq!(inv.warnings.len(), 1);
        let w = &inv.warnings[0];
        assert_eq!((w.line, w.col), (3, 1));
        assert_eq!(w.message, "host name `http_port` contains `=`");
    }

    #[test]
    fn directory_sources_skip_what_ansible_skips() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "inv/10-hosts", "[web]\nweb1\n");
        write(root, "inv/20-more.yaml", "db:\n  hosts: {db1: }\n");
        write(root, "inv/sub/30-nested.ini", "[cache]\nredis1\n");
        write(root, "inv/aws_ec2.yml", "plugin: amazon.aws.aws_ec2\n");
        write(root, "inv/inventory.toml", "[web.hosts]\n");
        write(root, "inv/script", "#!/bin/sh\necho '{}'\n");
        write(root, "inv/notes.txt", "not parsed\n");
        write(root, "inv/old.retry", "not parsed\n");
        write(root, "inv/.hidden", "[broken\n");
        write(root, "inv/host_vars/web1.yml", "x: 1\n");
        let inv = Inventory::load(&[root.join("inv")]).unwrap();
        // `.ini` inside a directory is skipped, as ansible-core does.
        assert_eq!(inv.hosts.keys().collect::<Vec<_>>(), ["web1", "db1"]);
        assert_eq!(inv.host_vars("web1")["x"], json!(1));
        let warned: Vec<String> = inv
            .warnings
            .iter()
            .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            warned,
            ["aws_ec2.yml", "inventory.toml", "script", "30-nested.ini"]
        );

        // Named on the command line, any extension is read; a script is an error.
        write(root, "hosts.cfg", "[web]\nweb9\n");
        let inv = Inventory::load(&[root.join("hosts.cfg")]).unwrap();
        assert!(inv.hosts.contains_key("web9"));
        let e = Inventory::load(&[root.join("inv/script")]).unwrap_err();
        assert_eq!(e[0].message, "this inventory script is not executable");
        // An executable one is run with `--list`.
        {
            use std::os::unix::fs::PermissionsExt;
            let script = root.join("inv/script");
            write(
                root,
                "inv/script",
                "#!/bin/sh\necho '{\"app\": [\"app1\"], \"_meta\": {\"hostvars\": {}}}'\n",
            );
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            let inv = Inventory::load(&[script]).unwrap();
            assert_eq!(inv.group_hosts("app"), ["app1"]);
        }
    }

    #[test]
    fn vault_files_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "hosts", "web1\n");
        write(
            root,
            "group_vars/all.yml",
            "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n",
        );
        let e = Inventory::load(&[root.join("hosts")]).unwrap_err();
        assert_eq!((e[0].line, e[0].col), (1, 1));
        assert!(e[0].message.contains("vault"), "{}", e[0].message);
    }

    #[test]
    fn yaml_sniffing() {
        assert!(looks_like_yaml("# c\nall:\n  hosts:\n"));
        assert!(looks_like_yaml("---\n"));
        assert!(looks_like_yaml("web: {hosts: x}\n"));
        assert!(!looks_like_yaml("; c\n[web]\nweb1\n"));
        assert!(!looks_like_yaml("web1:2222\n"));
        assert!(!looks_like_yaml("web1 ansible_host=a:b\n"));
    }

    #[test]
    fn host_list_source() {
        let inv = Inventory::load(&[PathBuf::from("web1,web2:2222,")]).unwrap();
        assert_eq!(inv.groups["ungrouped"].hosts, ["web1", "web2"]);
        assert_eq!(inv.host_vars("web2")["ansible_port"], json!(2222));
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn precedence_follows_ansible() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "inv/hosts",
            "[parent:children]\nchild\n[child]\nh1 from_host=inline\n[zeta]\nh1\n\
             [all:vars]\na=all\nb=all\nc=all\nd=all\ne=all\nf=all\n\
             [parent:vars]\na=parent\nb=parent\n[child:vars]\na=child\n[zeta:vars]\nb=zeta\n",
        );
        write(
            root,
            "inv/group_vars/all.yml",
            "c: gv_all\nd: gv_all\ne: gv_all\n",
        );
        write(
            root,
            "inv/group_vars/parent.yml",
            "d: gv_parent\na: gv_parent\n",
        );
        write(
            root,
            "inv/host_vars/h1.yml",
            "e: hv_inventory\nfrom_host: hv_inventory\n",
        );
        write(root, "play/group_vars/all.yml", "c: play_all\n");
        write(root, "play/host_vars/h1.yml", "from_host: hv_playbook\n");
        let mut inv = Inventory::load(&[root.join("inv/hosts")]).unwrap();
        inv.add_vars_dir(&root.join("play")).unwrap();
        assert_eq!(
            Value::Object(inv.host_vars("h1")),
            json!({
                // group_vars/parent beats every inventory-file group var.
                "a": "gv_parent",
                // zeta (depth 1, name after "parent") beats parent; child is depth 2 but has no `b`.
                "b": "zeta",
                // playbook group_vars/all beats inventory group_vars/all.
                "c": "play_all",
                "d": "gv_parent",
                "e": "hv_inventory",
                "f": "all",
                "from_host": "hv_playbook",
            })
        );
        assert_eq!(inv.group_names("h1"), ["child", "parent", "zeta"]);
    }

    #[test]
    fn group_priority_orders_groups_of_equal_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hosts");
        std::fs::write(
            &path,
            "[a]\nh\n[b]\nh\n[a:vars]\nx=a\nansible_group_priority=10\n[b:vars]\nx=b\n",
        )
        .unwrap();
        let inv = Inventory::load(&[path]).unwrap();
        assert_eq!(inv.host_vars("h")["x"], json!("a"));
        assert!(!inv.host_vars("h").contains_key("ansible_group_priority"));
    }
}
