//! `alternatives`: community.general's `alternatives`, through
//! `update-alternatives`: install an alternative for a generic name
//! (with its subcommands), select it, put the group back in auto mode, or
//! remove it.
//!
//! The plan reads `update-alternatives --display NAME` (with `LC_ALL=C`)
//! and decides as the collection does: reinstall when the path is not an
//! alternative yet or its priority or subcommands differ, `--set` when
//! `selected` and the link points elsewhere (a group in auto mode already
//! pointing at `path` is left alone), `--auto` when `auto` and the group is
//! manual, `--remove` when `absent` and the path is an alternative. The
//! result has `msg` and `diff` (`before`/`after`) as the collection's.
//!
//! `family` is a RHEL-only option and is refused by name (the hosts are
//! Debian's `update-alternatives`, which has no families).

use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::de_opt_string;
use crate::shell_quote::{join, quote};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// `state`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AltState {
    /// Install the alternative and select it.
    #[default]
    Selected,
    /// Install the alternative without selecting it.
    Present,
    /// Install the alternative and put the group in auto mode.
    Auto,
    /// Remove the alternative.
    Absent,
}

/// One subcommand (a follower link).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subcommand {
    /// The subcommand's generic name.
    pub name: String,
    /// The real file the subcommand points to.
    pub path: String,
    /// The symlink of the subcommand.
    pub link: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `alternatives`: what `herd doc` shows, and what the parser takes.
pub struct AlternativesParams {
    /// The generic name of the link.
    pub name: String,
    /// The real executable the link should point to.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub path: Option<String>,
    /// RHEL only: refused.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub family: Option<String>,
    /// The symlink (needed when the name is unknown to the system).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub link: Option<String>,
    /// The alternative's priority (50 for a new one).
    #[serde(default, deserialize_with = "crate::params::de_opt_u64")]
    pub priority: Option<u64>,
    /// What to do with the alternative.
    #[serde(default)]
    pub state: AltState,
    /// The subcommands (followers) of the alternative.
    #[serde(default, alias = "slaves")]
    pub subcommands: Option<Vec<Subcommand>>,
}

/// The `alternatives` module.
pub struct Alternatives;

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Alternatives::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// One installed alternative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Installed {
    priority: u64,
    subcommands: Vec<Subcommand>,
}

/// What `--display` says about a name.
#[derive(Debug, Default)]
struct Display {
    mode: Option<String>,
    current_path: Option<String>,
    current_link: Option<String>,
    alternatives: Vec<(String, Installed)>,
}

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap_or_else(|e| unreachable!("static regex {s}: {e}"))
}

fn parse_display(out: &str, wanted_subs: Option<&[Subcommand]>) -> Display {
    let mut d = Display::default();
    let Some(m) = re(r"(?m)\s-\s(?:status\sis\s)?(\w*)(?:\smode|.)$").captures(out) else {
        return d;
    };
    d.mode = Some(m[1].to_string());
    d.current_path = re(r"(?m)^\s*link currently points to (.*)$")
        .captures(out)
        .map(|c| c[1].to_string());
    d.current_link = re(r"(?m)^\s*link \w+ is (.*)$")
        .captures(out)
        .map(|c| c[1].to_string());
    let mut sub_links: Vec<(String, String)> = re(r"(?m)^\s*(?:slave|follower) (\S+) is (.*)$")
        .captures_iter(out)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect();
    if sub_links.is_empty() {
        if let Some(s) = wanted_subs {
            sub_links = s.iter().map(|s| (s.name.clone(), s.link.clone())).collect();
        }
    }
    let alt =
        re(r"(?m)^(/.*)\s-\s(?:family\s(\S+)\s)?priority\s(\d+)((?:\s+(?:slave|follower).*)*)");
    let sub = re(r"(?m)^\s+(?:slave|follower) (.*): (.*)$");
    for c in alt.captures_iter(out) {
        let subs = sub
            .captures_iter(c.get(4).map_or("", |m| m.as_str()))
            .filter(|s| &s[2] != "(null)")
            .map(|s| Subcommand {
                name: s[1].to_string(),
                path: s[2].to_string(),
                link: sub_links
                    .iter()
                    .find(|(n, _)| *n == s[1])
                    .map(|(_, l)| l.clone())
                    .unwrap_or_default(),
            })
            .collect();
        d.alternatives.push((
            c[1].to_string(),
            Installed {
                priority: c[3].parse().unwrap_or(0),
                subcommands: subs,
            },
        ));
    }
    d
}

fn same_set(a: &[Subcommand], b: &[Subcommand]) -> bool {
    a.iter().all(|s| b.contains(s)) && b.iter().all(|s| a.contains(s))
}

/// A plan's decisions: the commands, the messages and the diff.
type Decisions = (Vec<Vec<String>>, Vec<String>, Value);

/// The decisions of a plan.
fn decide(p: &AlternativesParams, d: &Display) -> Result<Decisions, ModuleError> {
    let ua = "update-alternatives".to_string();
    let current = |path: &str| {
        d.alternatives
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, i)| i)
    };
    let mut before = Map::new();
    let mut after = Map::new();
    if let Some(path) = &p.path {
        if let Some(inst) = current(path) {
            before.insert("state".into(), json!("present"));
            before.insert("path".into(), json!(path));
            before.insert("priority".into(), json!(inst.priority));
            before.insert("link".into(), json!(d.current_link));
            if !inst.subcommands.is_empty() {
                before.insert("subcommands".into(), json!(inst.subcommands));
            }
            if d.mode.as_deref() == Some("manual") && d.current_path.as_deref() != Some(path) {
                before.insert("state".into(), json!("selected"));
            }
        } else {
            before.insert("state".into(), json!("absent"));
        }
    }
    let mut cmds = Vec::new();
    let mut msgs = Vec::new();
    if p.state == AltState::Absent {
        if let Some(path) = p.path.as_ref().filter(|x| current(x).is_some()) {
            cmds.push(vec![
                ua.clone(),
                "--remove".into(),
                p.name.clone(),
                path.clone(),
            ]);
            msgs.push(format!("Remove alternative '{path}' from '{}'.", p.name));
            after.insert("state".into(), json!("absent"));
        }
    } else {
        if let Some(path) = &p.path {
            let inst = current(path);
            let reinstall = match inst {
                None => true,
                Some(i) => {
                    p.priority.is_some_and(|pr| pr != i.priority)
                        || p.subcommands
                            .as_ref()
                            .is_some_and(|s| !same_set(s, &i.subcommands))
                }
            };
            if reinstall {
                let link = p.link.clone().or_else(|| d.current_link.clone()).ok_or_else(|| {
                    ModuleError::failed(
                        "Needed to install the alternative, but unable to do so as we are missing the link",
                    )
                })?;
                let priority = p.priority.or(inst.map(|i| i.priority)).unwrap_or(50);
                let subs = p.subcommands.clone().or_else(|| {
                    inst.map(|i| i.subcommands.clone())
                        .filter(|s| !s.is_empty())
                });
                let mut c = vec![
                    ua.clone(),
                    "--install".into(),
                    link.clone(),
                    p.name.clone(),
                    path.clone(),
                    priority.to_string(),
                ];
                for s in subs.iter().flatten() {
                    c.extend([
                        "--slave".into(),
                        s.link.clone(),
                        s.name.clone(),
                        s.path.clone(),
                    ]);
                }
                cmds.push(c);
                msgs.push(format!("Install alternative '{path}' for '{}'.", p.name));
                after.insert("state".into(), json!("present"));
                after.insert("path".into(), json!(path));
                after.insert("family".into(), Value::Null);
                after.insert("priority".into(), json!(priority));
                after.insert("link".into(), json!(link));
                if let Some(s) = subs.filter(|s| !s.is_empty()) {
                    after.insert("subcommands".into(), json!(s));
                }
            }
        }
        let same_path = p.path.is_some() && d.current_path == p.path;
        if p.state == AltState::Selected && !same_path {
            if let Some(path) = &p.path {
                cmds.push(vec![
                    ua.clone(),
                    "--set".into(),
                    p.name.clone(),
                    path.clone(),
                ]);
                msgs.push(format!("Set alternative '{path}' for '{}'.", p.name));
                after.insert("state".into(), json!("selected"));
            }
        }
        if p.state == AltState::Auto && d.mode.as_deref() == Some("manual") {
            cmds.push(vec![ua, "--auto".into(), p.name.clone()]);
            msgs.push(format!("Set alternative to auto for '{}'.", p.name));
            after.insert("state".into(), json!("present"));
        }
    }
    Ok((cmds, msgs, json!({"before": before, "after": after})))
}

impl Module for Alternatives {
    const NAME: &'static str = "alternatives";
    const DOC_SHORT: &'static str =
        "Manage alternative programs for common commands (update-alternatives).";
    const DOC_LONG: &'static str = r##"community.general's `alternatives`, through `update-alternatives`.
`selected` installs and selects `path`, `present` only installs it, `auto` installs it and puts
the group in auto mode, `absent` removes it. `link` is needed when the name is new."##;
    const DOC_EXAMPLE: &'static str = r##"- alternatives:
    name: editor
    path: /usr/bin/vim.basic
    link: /usr/bin/editor
    priority: 60
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("msg", "What was done, one sentence per command."),
        ("diff", "`before` and `after` of the alternative."),
    ];
    type Params = AlternativesParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.family.is_some() {
            return Err(invalid(
                "family",
                "family is only available on RHEL-based distributions",
            ));
        }
        if p.path.is_none() {
            return Err(invalid(
                "path",
                "one of the following is required: path, family",
            ));
        }
        let script = format!(
            "export LC_ALL=C\ncommand -v update-alternatives >/dev/null 2>&1 || {{ echo NOTOOL; exit 0; }}\n\
             update-alternatives --display {} 2>/dev/null || echo '(none)'\n",
            quote(&p.name)
        );
        let out = host.run(&script, None)?.stdout_str();
        if out.starts_with("NOTOOL") {
            return Err(ModuleError::failed(
                "Failed to find required executable \"update-alternatives\"",
            ));
        }
        let d = parse_display(&out, p.subcommands.as_deref());
        let (cmds, msgs, diff) = decide(p, &d)?;
        // The collection checks the path exists only when it installs.
        let installs = cmds.iter().any(|c| c[1] == "--install");
        if installs {
            if let Some(path) = &p.path {
                let there = host.run(&format!("[ -e {} ]", quote(path)), None)?;
                if !there.success() {
                    return Err(ModuleError::failed(format!(
                        "Specified path {path} does not exist"
                    )));
                }
            }
        }
        let mut plan = Plan {
            changes: msgs.clone(),
            ..Plan::default()
        };
        plan.result.insert("msg".into(), json!(msgs.join(" ")));
        plan.result.insert("diff".into(), diff);
        plan.keep_state(&cmds)?;
        Ok(plan)
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let cmds: Vec<Vec<String>> = plan.state_as()?;
        for c in &cmds {
            let cmd = join(c.as_slice());
            let out = host.run(&format!("LC_ALL=C {cmd}"), None)?;
            if !out.success() {
                let mut result = plan.result.clone();
                result.insert("cmd".into(), json!(cmd));
                result.insert("rc".into(), json!(out.rc));
                result.insert("stdout".into(), json!(out.stdout_str()));
                result.insert("stderr".into(), json!(out.stderr_str()));
                return Err(ModuleError::Failed {
                    msg: out.stderr_str().trim_end().to_string(),
                    result,
                });
            }
        }
        let mut result = plan.result;
        result.insert("changed".into(), Value::Bool(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exec, FakeHost, Match};
    use crate::DynModule;

    /// A fake update-alternatives for one name: its alternatives
    /// (path, priority), the selected path and the mode.
    #[derive(Default)]
    struct Alt {
        alts: Vec<(String, u64)>,
        current: Option<String>,
        manual: bool,
    }

    fn display(a: &Alt) -> String {
        if a.alts.is_empty() {
            return "(none)\n".into();
        }
        let mut s = format!(
            "editor - {} mode\n  link best version is /x\n  link currently points to {}\n  link editor is /usr/bin/editor\n",
            if a.manual { "manual" } else { "auto" },
            a.current.clone().unwrap_or_default()
        );
        for (p, pr) in &a.alts {
            s.push_str(&format!("{p} - priority {pr}\n"));
        }
        s
    }

    fn fake(a: Alt) -> FakeHost<Alt> {
        FakeHost::with_state(a)
            .handle(Match::contains("--display"), |h, _, _| {
                Ok(exec(0, display(h), ""))
            })
            .handle(
                Match::prefix("LC_ALL=C update-alternatives"),
                |h, script, _| {
                    let w = crate::shell_quote::split(script.trim_start_matches("LC_ALL=C "))
                        .unwrap_or_default();
                    match w[1].as_str() {
                        "--install" => {
                            let pr: u64 = w[5].parse().unwrap_or(0);
                            h.alts.retain(|(p, _)| *p != w[4]);
                            h.alts.push((w[4].clone(), pr));
                            if !h.manual {
                                h.current = h
                                    .alts
                                    .iter()
                                    .max_by_key(|(_, p)| *p)
                                    .map(|(p, _)| p.clone());
                            }
                        }
                        "--set" => {
                            h.current = Some(w[3].clone());
                            h.manual = true;
                        }
                        "--auto" => {
                            h.manual = false;
                            h.current = h
                                .alts
                                .iter()
                                .max_by_key(|(_, p)| *p)
                                .map(|(p, _)| p.clone());
                        }
                        "--remove" => h.alts.retain(|(p, _)| *p != w[3]),
                        _ => {}
                    }
                    Ok(exec(0, "", ""))
                },
            )
            .answer(Match::Any, 0, "", "")
    }

    fn converge(params: &Value, h: &mut FakeHost<Alt>) -> Outcome {
        let plan = DynModule::plan(&Alternatives, params, h).expect("plan");
        assert!(!plan.is_empty());
        let out = DynModule::apply(&Alternatives, params, plan, h).expect("apply");
        let again = DynModule::plan(&Alternatives, params, h).expect("plan again");
        assert!(again.is_empty(), "{:?}", again.changes);
        out
    }

    #[test]
    fn install_select_auto_and_remove() {
        let mut h = fake(Alt::default());
        let p = json!({"name": "editor", "path": "/usr/bin/vim", "link": "/usr/bin/editor", "priority": 10});
        let out = converge(&p, &mut h);
        assert_eq!(
            out.result["msg"],
            "Install alternative '/usr/bin/vim' for 'editor'. Set alternative '/usr/bin/vim' for 'editor'."
        );
        assert!(h.manual);
        let p2 = json!({"name": "editor", "path": "/bin/nano", "state": "present", "priority": 40});
        converge(&p2, &mut h);
        assert_eq!(h.current.as_deref(), Some("/usr/bin/vim"));
        converge(
            &json!({"name": "editor", "path": "/bin/nano", "state": "auto"}),
            &mut h,
        );
        assert_eq!(h.current.as_deref(), Some("/bin/nano"));
        converge(
            &json!({"name": "editor", "path": "/usr/bin/vim", "state": "absent"}),
            &mut h,
        );
        assert_eq!(h.alts.len(), 1);
    }

    #[test]
    fn check_mode_runs_nothing_and_family_is_refused() {
        let mut h = fake(Alt::default());
        let p = json!({"name": "editor", "path": "/usr/bin/vim", "link": "/usr/bin/editor"});
        let plan = DynModule::plan(&Alternatives, &p, &mut h).expect("plan");
        assert_eq!(plan.changes.len(), 2);
        assert!(h.alts.is_empty());
        assert_eq!(plan.result["diff"]["before"], json!({"state": "absent"}));
        let e = DynModule::plan(
            &Alternatives,
            &json!({"name": "java", "family": "x"}),
            &mut h,
        )
        .expect_err("family");
        assert!(matches!(e, ModuleError::Params(_)));
        let e = DynModule::plan(&Alternatives, &json!({"name": "x", "path": "/y"}), &mut h)
            .expect_err("no link");
        assert!(e.to_string().contains("missing the link"), "{e}");
    }
}
