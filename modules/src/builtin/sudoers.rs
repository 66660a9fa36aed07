//! `sudoers` (community.general): one rule in its own file,
//! `<sudoers_path>/<name>`.
//!
//! The rule is one line, spelled as the collection spells it:
//! `OWNER HOST=(RUNAS)NOEXEC:NOPASSWD:SETENV: CMD, CMD` (`OWNER` is the
//! user or `%group`). The plan reads the file and its mode, and, unless
//! `validation: absent`, checks the rule with `visudo -c -f -` (the rule on
//! stdin; check mode too, as the collection does); `required` fails when
//! the host has no visudo. The file needs writing when its text or its
//! mode (0440) differs; `state: absent` removes it. The result holds only
//! `changed`, as the collection's does.

use serde::Deserialize;
use serde_json::json;

use crate::account::de_opt_list;
use crate::host::FileAttrs;
use crate::params::{de_bool, de_opt_string};
use crate::probe::tagged;
use crate::shell_quote::quote;
use crate::textfile::run_checked;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum SudoersState {
    #[default]
    /// The rule's file is there.
    Present,
    /// The rule's file is not there.
    Absent,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `validation` parameter's values.
pub enum Validation {
    /// Never check the rule.
    Absent,
    #[default]
    /// Check it with visudo when the host has it.
    Detect,
    /// Check it with visudo; fail without it.
    Required,
}

fn default_host() -> String {
    "ALL".into()
}

fn default_path() -> String {
    "/etc/sudoers.d".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `sudoers`: what `herd doc` shows, and what the parser takes.
pub struct SudoersParams {
    /// The rule's name: its file in `sudoers_path`.
    pub name: String,
    /// The commands the rule allows (`ALL` for all). Required with `state: present`.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub commands: Option<Vec<String>>,
    /// The user the rule is for.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub user: Option<String>,
    /// The group the rule is for.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub group: Option<String>,
    /// Commands may not start further commands (`NOEXEC:`).
    #[serde(default, deserialize_with = "de_bool")]
    pub noexec: bool,
    /// No password is asked (`NOPASSWD:`).
    #[serde(default = "crate::params::yes", deserialize_with = "de_bool")]
    pub nopassword: bool,
    /// The caller may keep the environment (`SETENV:`).
    #[serde(default, deserialize_with = "de_bool")]
    pub setenv: bool,
    /// The host the rule is for.
    #[serde(default = "default_host")]
    pub host: String,
    /// The user the commands run as.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub runas: Option<String>,
    /// The directory of the rule files.
    #[serde(default = "default_path")]
    pub sudoers_path: String,
    /// `present` or `absent`.
    #[serde(default)]
    pub state: SudoersState,
    /// Whether the rule is checked with `visudo` first.
    #[serde(default)]
    pub validation: Validation,
}

/// The `sudoers` module.
pub struct Sudoers;

/// The mode the collection gives a rule file.
const FILE_MODE: u32 = 0o440;

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Sudoers::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

impl Sudoers {
    /// The rule's file, joined as Python's `os.path.join` does.
    fn file(p: &SudoersParams) -> String {
        if p.name.starts_with('/') || p.sudoers_path.is_empty() {
            p.name.clone()
        } else if p.sudoers_path.ends_with('/') {
            format!("{}{}", p.sudoers_path, p.name)
        } else {
            format!("{}/{}", p.sudoers_path, p.name)
        }
    }

    /// The rule's line.
    fn content(p: &SudoersParams) -> Result<String, ModuleError> {
        let owner = match (&p.user, &p.group) {
            (Some(u), None) => u.clone(),
            (None, Some(g)) => format!("%{g}"),
            (Some(_), Some(_)) => return Err(invalid("group", "mutually exclusive with user")),
            (None, None) => return Err(invalid("user", "one of user or group is required")),
        };
        let commands = match &p.commands {
            Some(c) => c.join(", "),
            None => {
                return Err(invalid(
                    "commands",
                    "state is present but all of the following are missing: commands",
                ))
            }
        };
        let runas = p
            .runas
            .as_ref()
            .map(|r| format!("({r})"))
            .unwrap_or_default();
        Ok(format!(
            "{owner} {}={runas}{}{}{} {commands}\n",
            p.host,
            if p.noexec { "NOEXEC:" } else { "" },
            if p.nopassword { "NOPASSWD:" } else { "" },
            if p.setenv { "SETENV:" } else { "" },
        ))
    }

    /// `visudo -c -f -` on the rule; a rejection fails as the collection does.
    fn validate(p: &SudoersParams, host: &mut dyn Host, content: &str) -> Result<(), ModuleError> {
        let script = "v=$(command -v visudo) || { echo HERD_NO_VISUDO; exit 0; }\n\"$v\" -c -f -";
        let out = host.run(script, Some(content.as_bytes()))?;
        let stdout = out.stdout_str();
        if stdout.trim_end() == "HERD_NO_VISUDO" {
            if p.validation == Validation::Required {
                return Err(ModuleError::failed(
                    "Failed to find required executable \"visudo\" in paths: $PATH",
                ));
            }
            return Ok(());
        }
        if out.success() {
            return Ok(());
        }
        let stderr = out.stderr_str();
        let shown = if stdout.is_empty() { &stderr } else { &stdout };
        let mut result = serde_json::Map::new();
        result.insert("stdout".into(), json!(stdout));
        result.insert("stderr".into(), json!(stderr));
        Err(ModuleError::Failed {
            msg: format!("Failed to validate sudoers rule:\n{shown}"),
            result,
        })
    }
}

impl Module for Sudoers {
    const NAME: &'static str = "sudoers";
    const DOC_SHORT: &'static str = "Keep a sudoers rule in its own file under /etc/sudoers.d.";
    const DOC_LONG: &'static str = r##"community.general's `sudoers`: the file `<sudoers_path>/<name>` holds the one rule line, mode 0440, checked with `visudo -c` before it is written (unless `validation: absent`)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Deploy may restart the app
  community.general.sudoers:
    name: deploy-app
    user: deploy
    commands:
      - /usr/bin/systemctl restart app
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[];
    type Params = SudoersParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.user.is_some() && p.group.is_some() {
            return Err(invalid("group", "mutually exclusive with user"));
        }
        let file = Self::file(p);
        let f = quote(&file);
        let mut plan = Plan::default();
        if p.state == SudoersState::Absent {
            let out = host.run(&format!("[ -e {f} ] || [ -L {f} ] && echo EXISTS"), None)?;
            if out.stdout_str().lines().any(|l| l == "EXISTS") {
                plan.changes.push(format!("remove {file}"));
            }
            return Ok(plan);
        }
        let content = Self::content(p)?;
        if p.validation != Validation::Absent {
            Self::validate(p, host, &content)?;
        }
        let out = host.run(
            &format!(
                "if [ -e {f} ]; then echo \"MODE $(stat -L -c %a -- {f})\"; echo --herd-content--; cat -- {f}; fi"
            ),
            None,
        )?;
        let text = out.stdout_str();
        let (head, current) = match text.split_once("--herd-content--\n") {
            Some((h, c)) => (h.to_string(), Some(c.to_string())),
            None => (text.clone(), None),
        };
        let mode = tagged(&head, "MODE").and_then(|m| u32::from_str_radix(m.trim(), 8).ok());
        match (&current, mode) {
            (Some(c), Some(m)) if *c == content && m == FILE_MODE => {}
            (None, _) => plan.changes.push(format!("create {file}")),
            (Some(c), _) => {
                if *c != content {
                    plan.changes.push(format!("rewrite {file}"));
                    plan.diffs.push(crate::FileDiff {
                        path: file.clone(),
                        before: c.clone(),
                        after: content.clone(),
                    });
                } else {
                    plan.changes.push(format!("mode of {file} -> 0440"));
                }
            }
        }
        if current.is_none() {
            plan.diffs.push(crate::FileDiff {
                path: file.clone(),
                before: String::new(),
                after: content,
            });
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let file = Self::file(p);
        if p.state == SudoersState::Absent {
            run_checked(
                host,
                "remove the rule file",
                &format!("rm -f -- {}", quote(&file)),
            )?;
        } else {
            let content = Self::content(p)?;
            host.write_file(&file, content.as_bytes(), &FileAttrs::with_mode("0440"))?;
        }
        let mut result = serde_json::Map::new();
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, host, path_in, plan, FakeHost, Match};
    use crate::DynModule;

    fn params(v: serde_json::Value) -> SudoersParams {
        crate::module::parse_params("sudoers", &v).expect("params")
    }

    #[test]
    fn the_rule_is_spelled_as_the_collection_spells_it() {
        let c = |v| Sudoers::content(&params(v)).expect("content");
        assert_eq!(
            c(json!({"name": "a", "user": "deploy", "commands": "/bin/ls"})),
            "deploy ALL=NOPASSWD: /bin/ls\n"
        );
        assert_eq!(
            c(
                json!({"name": "a", "group": "ops", "commands": ["/bin/a", "/bin/b"], "nopassword": false,
                     "runas": "app", "host": "web1", "noexec": true, "setenv": true})
            ),
            "%ops web1=(app)NOEXEC:SETENV: /bin/a, /bin/b\n"
        );
        assert!(Sudoers::content(&params(json!({"name": "a", "user": "x"}))).is_err());
        assert!(Sudoers::content(&params(json!({"name": "a", "commands": "ALL"}))).is_err());
    }

    #[test]
    fn apply_then_plan_is_empty_and_check_mode_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = path_in(&dir, "");
        let p = json!({"name": "herd", "user": "deploy", "commands": "ALL",
                       "sudoers_path": base, "validation": "absent"});
        let f = path_in(&dir, "herd");
        let first = plan(&Sudoers, &p);
        assert_eq!(first.changes, [format!("create {f}")]);
        assert!(!std::path::Path::new(&f).exists());
        converge(&Sudoers, &p);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap_or_default(),
            "deploy ALL=NOPASSWD: ALL\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o440));
        // A mode changed behind our back is put back.
        let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644));
        converge(&Sudoers, &p);
        let absent = json!({"name": "herd", "sudoers_path": base, "state": "absent"});
        converge(&Sudoers, &absent);
        assert!(!std::path::Path::new(&f).exists());
    }

    #[test]
    fn visudo_checks_the_rule_before_anything_is_written() {
        let mut h = FakeHost::new()
            .answer(
                Match::contains("command -v visudo"),
                1,
                "",
                "visudo: syntax error near line 1\n",
            )
            .over(host(), "");
        let p =
            json!({"name": "bad", "user": "x", "commands": "ALL", "sudoers_path": "/nonexistent"});
        let e = DynModule::plan(&Sudoers, &p, &mut h).expect_err("rejected");
        assert_eq!(
            e.to_string(),
            "Failed to validate sudoers rule:\nvisudo: syntax error near line 1\n"
        );
        let mut h = FakeHost::new()
            .answer(
                Match::contains("command -v visudo"),
                0,
                "HERD_NO_VISUDO\n",
                "",
            )
            .over(host(), "");
        let req = json!({"name": "x", "user": "x", "commands": "ALL", "validation": "required", "sudoers_path": "/nonexistent"});
        let e = DynModule::plan(&Sudoers, &req, &mut h).expect_err("no visudo");
        assert!(e.to_string().contains("visudo"), "{e}");
        let detect =
            json!({"name": "x", "user": "x", "commands": "ALL", "sudoers_path": "/nonexistent"});
        let pl = DynModule::plan(&Sudoers, &detect, &mut h).expect("plan without visudo");
        assert_eq!(pl.changes.len(), 1);
    }
}
