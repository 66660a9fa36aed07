//! What roles add at run time: their variable layers in a task's context
//! (defaults under the inventory, role vars over play vars, role params
//! over set_fact), the role magic variables (`role_name`, `role_path`,
//! `ansible_role_names`, ...), and the role's own `files/`, `templates/`
//! and `tasks/` searched before the playbook's, as Ansible's
//! `path_dwim_relative` does.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::executor::{vars, PlayRunner};
use crate::playbook::{self, RoleInfo, Task, TaskKind};

impl PlayRunner<'_> {
    /// Every public role's defaults, then the task's own role's (with its
    /// dependency chain) over them: the lowest layer of all.
    pub(crate) fn role_defaults(&self, role: Option<&RoleInfo>) -> Map<String, Value> {
        let mut all = self.play.roles.defaults.clone();
        if let Some(role) = role {
            vars::overlay(&mut all, &role.defaults);
        }
        all
    }

    /// Role vars: every public role's `vars/`, then the task's own role's
    /// (its dependencies' and parents', its `vars:` on the invocation).
    pub(crate) fn overlay_role_vars(&self, all: &mut Map<String, Value>, role: Option<&RoleInfo>) {
        vars::overlay(all, &self.play.roles.exports);
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

    /// `copy`/`unarchive` in a role: a relative `src` found in the role's
    /// `files/` (or the role, or a parent role's) becomes that absolute
    /// path; otherwise the playbook's folders are searched as before.
    pub(crate) fn role_relative_src(&self, params: &mut Value, task: &Task) {
        let Value::Object(map) = params else {
            return;
        };
        let remote = ["remote_src"]
            .iter()
            .any(|k| map.get(*k).is_some_and(crate::executor::task::truthy_json));
        let Some(src) = map.get("src").and_then(Value::as_str) else {
            return;
        };
        if remote {
            return;
        }
        if std::path::Path::new(src).is_absolute() || src.contains("://") {
            return;
        }
        if let Some(found) = playbook::find_in(&role_dirs(task, "files"), src) {
            let found = found.display().to_string();
            map.insert("src".into(), Value::from(found));
        }
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
