//! How one task reaches its host, as Ansible decides it for every task:
//! the connection and become variables (`ansible_user`, `ansible_port`,
//! `ansible_password`, `ansible_ssh_private_key_file`, `ansible_become_*`,
//! ...) as they stand for this task, whichever level set them (inventory,
//! play/block/task `vars`, `vars_files`, `include_vars`, `set_fact`, `-e`),
//! and the `connection`/`remote_user`/`port` keywords of the task, its
//! blocks and roles, and the play. The connection table keys sessions by what this yields (see
//! [`crate::connection::open::session_key`]), so a task that connects
//! differently from the open session gets a session of its own, and after
//! `meta: reset_connection` the next task connects with the variables then
//! in force.

use serde_json::{Map, Value};

use super::{PlayRunner, OMIT};
use crate::connection::open::PlayConnection;
use crate::playbook::Task;
use crate::template::TemplateError;

/// Variables that say how to connect or become. Only these are taken from
/// the task's whole variable context; every other inventory variable is
/// left as the inventory has it.
pub(crate) const CONNECTION_VARS: &[&str] = &[
    "ansible_connection",
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_become",
    "ansible_become_user",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_become_method",
    "ansible_become_flags",
    "ansible_become_exe",
];

/// Where a task connects: the host's connection variables, rendered, and
/// the `connection`/`remote_user` keywords in force (the task's or a
/// block's over the play's), rendered.
pub(crate) struct Reach {
    pub vars: Map<String, Value>,
    pub connection: Option<String>,
    pub remote_user: Option<String>,
    pub port: Option<u16>,
}

impl Reach {
    pub(crate) fn play_connection(&self) -> PlayConnection<'_> {
        PlayConnection {
            connection: self.connection.as_deref(),
            remote_user: self.remote_user.as_deref(),
            port: self.port,
        }
    }
}

/// `vars` with each connection variable replaced by its value in `ctx`
/// (rendered, at the precedence `ctx` was merged with), or removed when
/// `ctx` leaves it undefined or omitted. A variable the inventory set to a
/// template that needs an undefined value is rendered once more, so the
/// error names what is missing instead of the setting silently going away.
fn from_context(
    mut vars: Map<String, Value>,
    ctx: &minijinja::Value,
    templar: &crate::template::Templar,
) -> Result<Map<String, Value>, TemplateError> {
    for name in CONNECTION_VARS {
        let value = ctx.get_attr(name).ok().filter(|v| !v.is_undefined());
        let value = match (value, vars.get(*name)) {
            (Some(v), _) => serde_json::to_value(&v).ok(),
            (None, Some(Value::String(raw))) => {
                Some(Value::String(templar.render_str(name, raw, ctx)?))
            }
            (None, _) => None,
        }
        .filter(|v| !v.is_null() && v.as_str() != Some(OMIT));
        match value {
            Some(v) => {
                vars.insert((*name).to_string(), v);
            }
            None => {
                vars.remove(*name);
            }
        }
    }
    Ok(vars)
}

impl PlayRunner<'_> {
    /// How `task` (or, without one, the play's fact gathering) reaches
    /// host `i`, or the delegate `delegate` when the task is delegated
    /// (the delegate's own inventory variables, rendered for this task).
    pub(crate) fn reach(
        &self,
        task: Option<&Task>,
        i: usize,
        delegate: Option<&str>,
        ctx: &minijinja::Value,
    ) -> Result<Reach, TemplateError> {
        let templar = &self.project.templar;
        let vars = match delegate {
            None => from_context(self.inventory_vars_of(i), ctx, templar)?,
            Some(d) => {
                let layered = self.delegate_vars(d, task);
                let mut vars = self.run.inventory().host_vars(d);
                for name in CONNECTION_VARS {
                    let value = match layered.get(*name) {
                        Some(Value::String(text)) => {
                            Some(Value::String(templar.render_str(name, text, ctx)?))
                        }
                        other => other.cloned(),
                    }
                    .filter(|v| !v.is_null() && v.as_str() != Some(OMIT));
                    match value {
                        Some(v) => {
                            vars.insert((*name).to_string(), v);
                        }
                        None => {
                            vars.remove(*name);
                        }
                    }
                }
                vars
            }
        };
        let keyword = |what: &str,
                       own: Option<&String>,
                       play: Option<&String>|
         -> Result<Option<String>, TemplateError> {
            match own.or(play) {
                Some(text) => templar
                    .render_str(what, text, ctx)
                    .map(|s| Some(s).filter(|s| !s.is_empty() && s != OMIT)),
                None => Ok(None),
            }
        };
        // A delegate takes its port from its own variables, else from
        // ansible.cfg: Ansible resets the keyword's port for a delegate so
        // it never inherits the original host's.
        let port_keyword = if delegate.is_some() {
            None
        } else {
            keyword(
                "port",
                task.and_then(|t| t.port.as_ref()),
                self.play.port.as_ref(),
            )?
        };
        let port = match port_keyword {
            Some(text) => Some(
                text.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| TemplateError::Render {
                        name: "port".into(),
                        line: 0,
                        reason: format!("`port` must be a port number (1 to 65535), not `{text}`"),
                    })?,
            ),
            None => None,
        };
        Ok(Reach {
            vars,
            port,
            connection: keyword(
                "connection",
                task.and_then(|t| t.connection.as_ref()),
                self.play.connection.as_ref(),
            )?,
            remote_user: keyword(
                "remote_user",
                task.and_then(|t| t.remote_user.as_ref()),
                self.play.remote_user.as_ref(),
            )?,
        })
    }

    /// The variables of delegate `d` for `task`, layered as Ansible layers
    /// a delegated host's: its own inventory variables, facts, included
    /// variables and `set_fact`s, with the play's, role's and task's
    /// variables and `-e` at their places. So `ansible_user` in the task's
    /// `vars` (or `-e`) reaches the delegate, and the original host's
    /// inventory variables do not.
    fn delegate_vars(&self, d: &str, task: Option<&Task>) -> Map<String, Value> {
        let role = task.and_then(|t| t.role.as_deref());
        let mut all = self.role_defaults(role);
        super::vars::overlay(&mut all, &self.run.inventory().host_vars(d));
        if let Ok(pv) = self.play_vars.read() {
            super::vars::overlay(&mut all, &pv);
        }
        self.overlay_role_vars(&mut all, role);
        if let Some(t) = task {
            super::vars::overlay(&mut all, &t.vars);
        }
        super::vars::overlay(&mut all, &self.run.included_vars_of(d));
        // Gathered facts carry no connection variable names, so every fact
        // can sit where `set_fact` does.
        super::vars::overlay(&mut all, &self.run.facts_of(d));
        if let Some(role) = role {
            super::vars::overlay(&mut all, &role.params);
        }
        super::vars::overlay(&mut all, &self.opts.extra_vars);
        all
    }

    /// [`PlayRunner::reach`] for the play's own fact gathering: play-level
    /// variables, no task.
    pub(crate) fn play_reach(&self, i: usize) -> Result<Reach, TemplateError> {
        let ctx = self.context_in_role(i, &Map::new(), None, &Map::new());
        self.reach(None, i, None, &ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connection_variables_come_from_the_context_and_others_stay() {
        let inventory = json!({"ansible_user": "root", "ansible_port": 22, "ansible_password": "pw", "app": "x"});
        let ctx = crate::template::from_json(
            &json!({"ansible_user": "deploy", "ansible_port": 2222, "ansible_password": OMIT, "app": "y"}),
        );
        let templar = crate::template::Templar::new(Vec::new());
        let vars = from_context(
            inventory.as_object().cloned().unwrap_or_default(),
            &ctx,
            &templar,
        )
        .expect("renders");
        assert_eq!(vars.get("ansible_user"), Some(&json!("deploy")));
        assert_eq!(vars.get("ansible_port"), Some(&json!(2222)));
        assert_eq!(vars.get("ansible_password"), None, "omitted");
        assert_eq!(
            vars.get("app"),
            Some(&json!("x")),
            "not a connection variable"
        );
    }
}
