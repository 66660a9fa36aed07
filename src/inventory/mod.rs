//! Inventories: Ansible INI and YAML files (or a directory of them), with
//! `group_vars/` and `host_vars/` beside them, resolved into hosts, groups and
//! each host's variables; plus host patterns (`--limit`, play `hosts:`).
//!
//! Variable precedence, lowest first (Ansible's order for these sources):
//! 1. inventory file group vars (`[g:vars]`, YAML `vars:`), parents before children, `all` first
//! 2. inventory `group_vars/all`, then playbook `group_vars/all`
//! 3. inventory `group_vars/<group>`, then playbook `group_vars/<group>` (parents before children)
//! 4. inventory file host vars (inline `k=v`, YAML host entries)
//! 5. inventory `host_vars/<host>`, then playbook `host_vars/<host>`
//! Groups at the same depth merge in name order, as Ansible does.

pub mod ini;
pub mod pattern;
pub mod vars;
pub mod yaml;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Host {
    pub name: String,
    /// Vars from the inventory file itself (inline or YAML host entry).
    pub vars: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Group {
    pub name: String,
    /// Hosts listed directly in this group, in file order.
    pub hosts: Vec<String>,
    /// Child groups, in file order.
    pub children: Vec<String>,
    /// Vars from the inventory file (`[g:vars]` or YAML `vars:`).
    pub vars: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every host, in first-seen order.
    pub hosts: IndexMap<String, Host>,
    /// Every group, `all` and `ungrouped` included.
    pub groups: IndexMap<String, Group>,
    /// group/host name -> vars from `group_vars/` / `host_vars/` dirs, in load order.
    pub group_vars_files: IndexMap<String, Vec<Map<String, Value>>>,
    pub host_vars_files: IndexMap<String, Vec<Map<String, Value>>>,
    /// Where the inventory came from (for `group_vars` lookup and messages).
    pub sources: Vec<PathBuf>,
}

impl Inventory {
    /// Load inventory sources (files or directories), in order.
    pub fn load(_sources: &[PathBuf]) -> Result<Inventory, Vec<Diagnostic>> {
        Ok(Inventory::default())
    }

    /// Also read `group_vars/` and `host_vars/` in `dir` (the playbook's directory).
    pub fn add_vars_dir(&mut self, _dir: &Path) -> Result<(), Vec<Diagnostic>> {
        Ok(())
    }

    /// Hosts matching a pattern (`all`, `web:db`, `web:&prod`, `web:!web01`,
    /// `web*`, `~regex`), in inventory order. `localhost` matches an implicit
    /// local host when the inventory has none.
    pub fn select(&self, _pattern: &str) -> Result<Vec<String>, pattern::PatternError> {
        Ok(Vec::new())
    }

    /// A host's variables, merged in the precedence order above.
    pub fn host_vars(&self, _host: &str) -> Map<String, Value> {
        Map::new()
    }

    /// The groups a host belongs to (directly or through children), sorted, without `all`.
    pub fn group_names(&self, _host: &str) -> Vec<String> {
        Vec::new()
    }

    /// `groups` magic variable: every group with all its hosts (children included).
    pub fn groups_map(&self) -> IndexMap<String, Vec<String>> {
        IndexMap::new()
    }

    /// The JSON `ansible-inventory --list` prints.
    pub fn to_list_json(&self) -> Value {
        Value::Null
    }

    /// The text `ansible-inventory --graph` prints.
    pub fn graph(&self) -> String {
        String::new()
    }
}
