//! `acl`: ansible.posix's `acl`: set, remove or read a POSIX ACL entry on
//! a path, with the host's `setfacl` and `getfacl`.
//!
//! The plan runs the setfacl command the task would run with `--test`, as
//! the collection does: a line ending in `*,*` means the ACLs would not
//! change; anything else is a change. It also reads the ACL (`getfacl
//! --absolute-names --omit-header`) for the `acl` result, which apply
//! reads again after the change. `use_nfsv4_acls` is refused by name
//! (no `nfs4_setfacl` here).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::{de_bool, de_opt_string, yes};
use crate::shell_quote::{join, quote};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// `state`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AclState {
    /// Only read the ACL.
    #[default]
    Query,
    /// The entry is set.
    Present,
    /// The entry is removed.
    Absent,
}

/// `etype`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Etype {
    /// A user entry.
    User,
    /// A group entry.
    Group,
    /// The mask entry.
    Mask,
    /// The other entry.
    Other,
}

impl Etype {
    fn word(self) -> &'static str {
        match self {
            Etype::User => "user",
            Etype::Group => "group",
            Etype::Mask => "mask",
            Etype::Other => "other",
        }
    }
}

/// `recalculate_mask`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecalculateMask {
    /// setfacl's default behaviour.
    #[default]
    Default,
    /// Always recalculate the mask (`--mask`).
    Mask,
    /// Never recalculate it (`--no-mask`).
    NoMask,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `acl`: what `herd doc` shows, and what the parser takes.
pub struct AclParams {
    /// The file or directory.
    #[serde(alias = "name")]
    pub path: String,
    /// A whole entry (`[d[efault]:]etype:entity[:perms]`), instead of `etype`/`entity`/`permissions`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub entry: Option<String>,
    /// The user or group the entry is for (empty for the owner's, the mask and other).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub entity: Option<String>,
    /// The entry's type.
    pub etype: Option<Etype>,
    /// The permissions (`rwx` letters, `X`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub permissions: Option<String>,
    /// What to do.
    #[serde(default)]
    pub state: AclState,
    /// Follow a symlink `path` (unset: `--physical`).
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub follow: bool,
    /// The default ACL of a directory rather than its access ACL.
    #[serde(default, deserialize_with = "de_bool")]
    pub default: bool,
    /// Apply to everything under the directory too.
    #[serde(default, alias = "recurse", deserialize_with = "de_bool")]
    pub recursive: bool,
    /// Whether setfacl recalculates the mask.
    #[serde(default)]
    pub recalculate_mask: RecalculateMask,
    /// NFSv4 ACLs: not supported (refused when true).
    #[serde(default, deserialize_with = "de_bool")]
    pub use_nfsv4_acls: bool,
}

/// The `acl` module.
pub struct Acl;

fn refuse(msg: &str) -> ModuleError {
    ModuleError::failed(msg)
}

/// The collection's `split_entry`: (default flag, etype, entity, permissions).
fn split_entry(entry: &str) -> (Option<bool>, Option<&'static str>, String, Option<String>) {
    let mut a: Vec<&str> = entry.split(':').collect();
    let mut d = None;
    if entry.to_lowercase().starts_with('d') {
        d = Some(true);
        a.remove(0);
    }
    let t = a.first().map(|t| t.to_lowercase()).unwrap_or_default();
    let t = if t.starts_with('u') {
        Some("user")
    } else if t.starts_with('g') {
        Some("group")
    } else if t.starts_with('m') {
        Some("mask")
    } else if t.starts_with('o') {
        Some("other")
    } else {
        None
    };
    let e = a.get(1).map(|s| (*s).to_string()).unwrap_or_default();
    let p = a.get(2).map(|s| (*s).to_string());
    (d, t, e, p)
}

/// The resolved request: the setfacl mode, entry and default flag.
struct Request {
    /// `-m` (set), `-x` (remove) or none (query).
    op: Option<&'static str>,
    entry: String,
    default: bool,
}

fn request(p: &AclParams) -> Result<Request, ModuleError> {
    if p.use_nfsv4_acls {
        return Err(ModuleError::Params(ParamError::Invalid {
            module: Acl::NAME,
            path: "use_nfsv4_acls".into(),
            reason: "NFSv4 ACLs are not supported".into(),
        }));
    }
    if p.state == AclState::Query {
        if p.recursive {
            return Err(refuse("'recursive' MUST NOT be set when 'state=query'."));
        }
        if p.recalculate_mask != RecalculateMask::Default {
            return Err(refuse(
                "'recalculate_mask' MUST NOT be set to 'mask' or 'no_mask' when 'state=query'.",
            ));
        }
    }
    let state_word = match p.state {
        AclState::Present => "present",
        AclState::Absent => "absent",
        AclState::Query => "query",
    };
    let entry = p.entry.as_deref().filter(|e| !e.is_empty());
    let mut default = p.default;
    let (etype, entity, perms) = match entry {
        None => {
            if p.state == AclState::Absent && p.permissions.is_some() {
                return Err(refuse("'permissions' MUST NOT be set when 'state=absent'."));
            }
            if p.state == AclState::Absent && p.entity.as_deref().unwrap_or("").is_empty() {
                return Err(refuse("'entity' MUST be set when 'state=absent'."));
            }
            if p.state != AclState::Query && p.etype.is_none() {
                return Err(refuse(&format!(
                    "'etype' MUST be set when 'state={state_word}'."
                )));
            }
            (
                p.etype.map(Etype::word),
                p.entity.clone().unwrap_or_default(),
                p.permissions.clone(),
            )
        }
        Some(e) => {
            if p.etype.is_some() || p.entity.is_some() || p.permissions.is_some() {
                return Err(refuse(
                    "'entry' MUST NOT be set when 'entity', 'etype' or 'permissions' are set.",
                ));
            }
            let colons = e.matches(':').count();
            if p.state == AclState::Present && !(2..=3).contains(&colons) {
                return Err(refuse(
                    "'entry' MUST have 3 or 4 sections divided by ':' when 'state=present'.",
                ));
            }
            if p.state == AclState::Absent && !(1..=2).contains(&colons) {
                return Err(refuse(
                    "'entry' MUST have 2 or 3 sections divided by ':' when 'state=absent'.",
                ));
            }
            if p.state == AclState::Query {
                return Err(refuse("'entry' MUST NOT be set when 'state=query'."));
            }
            let (d, t, ent, perm) = split_entry(e);
            if let Some(d) = d {
                default = d;
            }
            (t, ent, perm)
        }
    };
    let etype = etype.unwrap_or("None");
    Ok(match p.state {
        AclState::Query => Request {
            op: None,
            entry: String::new(),
            default,
        },
        AclState::Present => Request {
            op: Some("-m"),
            entry: match perms.filter(|s| !s.is_empty()) {
                Some(perm) => format!("{etype}:{entity}:{perm}"),
                None => format!("{etype}:{entity}"),
            },
            default,
        },
        AclState::Absent => Request {
            op: Some("-x"),
            entry: format!("{etype}:{entity}"),
            default,
        },
    })
}

/// The setfacl argv (with `--test` when `test`).
fn setfacl(p: &AclParams, r: &Request, op: &str, test: bool) -> Vec<String> {
    let mut c = vec!["setfacl".to_string()];
    if test {
        c.push("--test".into());
    }
    if r.default {
        c.push("-d".into());
    }
    c.extend([op.to_string(), r.entry.clone()]);
    if p.recursive {
        c.push("--recursive".into());
    }
    match p.recalculate_mask {
        RecalculateMask::Mask => c.push("--mask".into()),
        RecalculateMask::NoMask => c.push("--no-mask".into()),
        RecalculateMask::Default => {}
    }
    if !p.follow {
        c.push("--physical".into());
    }
    c.push(p.path.clone());
    c
}

fn getfacl(p: &AclParams, default: bool) -> Vec<String> {
    let mut c = vec!["getfacl".to_string()];
    if default {
        c.push("-d".into());
    }
    c.extend(["--absolute-names".into(), "--omit-header".into()]);
    if p.recursive {
        c.push("--recursive".into());
    }
    if !p.follow {
        c.push("--physical".into());
    }
    c.push(p.path.clone());
    c
}

/// The collection's `run_acl` lines: comments dropped, lines stripped, a
/// last empty line dropped.
fn acl_lines(out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.trim().to_string())
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

fn run_checked(host: &mut dyn Host, argv: &[String]) -> Result<String, ModuleError> {
    let cmd = join(argv);
    let out = host.run(&format!("LC_ALL=C {cmd}"), None)?;
    if !out.success() {
        let mut result = serde_json::Map::new();
        result.insert("cmd".into(), json!(cmd));
        result.insert("rc".into(), json!(out.rc));
        result.insert("stdout".into(), json!(out.stdout_str()));
        result.insert("stderr".into(), json!(out.stderr_str()));
        return Err(ModuleError::Failed {
            msg: out.stderr_str().trim_end().to_string(),
            result,
        });
    }
    Ok(out.stdout_str())
}

impl Module for Acl {
    const NAME: &'static str = "acl";
    const DOC_SHORT: &'static str = "Set, remove or read POSIX ACL entries (setfacl/getfacl).";
    const DOC_LONG: &'static str = r##"ansible.posix's `acl`, with the host's `setfacl` and `getfacl` (Debian's `acl`
package). A change is decided by `setfacl --test`, as the collection does."##;
    const DOC_EXAMPLE: &'static str = r##"- acl:
    path: /srv/data
    entity: deploy
    etype: user
    permissions: rwX
    state: present
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("acl", "The ACL's lines (getfacl) after the task."),
        (
            "msg",
            "`ENTRY is present`, `ENTRY is absent` or `current acl`.",
        ),
    ];
    type Params = AclParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let r = request(p)?;
        let there = host.run(&format!("[ -e {} ]", quote(&p.path)), None)?;
        if !there.success() {
            return Err(refuse("Path not found or not accessible."));
        }
        let mut plan = Plan::default();
        let msg = match (p.state, r.op) {
            (AclState::Present, Some(op)) | (AclState::Absent, Some(op)) => {
                let test = run_checked(host, &setfacl(p, &r, op, true))?;
                let unchanged = acl_lines(&test).iter().any(|l| l.ends_with("*,*"));
                let word = if op == "-m" { "present" } else { "absent" };
                if !unchanged {
                    plan.changes
                        .push(format!("{} {word} on {}", r.entry, p.path));
                }
                format!("{} is {word}", r.entry)
            }
            _ => "current acl".to_string(),
        };
        let acl = acl_lines(&run_checked(host, &getfacl(p, r.default))?);
        plan.result.insert("msg".into(), json!(msg));
        plan.result.insert("acl".into(), json!(acl));
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let r = request(p)?;
        if let Some(op) = r.op {
            let argv = setfacl(p, &r, op, false);
            if op == "-m" {
                run_checked(host, &argv)?;
            } else {
                // The collection ignores a failing removal.
                host.run(&format!("LC_ALL=C {}", join(argv.as_slice())), None)?;
            }
        }
        let acl = acl_lines(&run_checked(host, &getfacl(p, r.default))?);
        let mut result = plan.result;
        result.insert("acl".into(), json!(acl));
        result.insert("changed".into(), Value::Bool(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exec, FakeHost, Match};
    use crate::DynModule;

    /// A file's access ACL as setfacl sees it: named user entries.
    #[derive(Default)]
    struct Facl {
        users: Vec<(String, String)>,
    }

    fn text(f: &Facl) -> String {
        let mut s = String::from("user::rw-\n");
        for (u, p) in &f.users {
            s.push_str(&format!("user:{u}:{p}\n"));
        }
        s.push_str("group::r--\nother::r--\n\n");
        s
    }

    fn fake() -> FakeHost<Facl> {
        FakeHost::with_state(Facl::default())
            .handle(Match::prefix("LC_ALL=C getfacl"), |h, _, _| {
                Ok(exec(0, text(h), ""))
            })
            .handle(Match::prefix("LC_ALL=C setfacl"), |h, script, _| {
                let w = crate::shell_quote::split(script.trim_start_matches("LC_ALL=C "))
                    .unwrap_or_default();
                let test = w.contains(&"--test".to_string());
                let i = w.iter().position(|x| x == "-m" || x == "-x").unwrap_or(0);
                let entry: Vec<&str> = w[i + 1].split(':').collect();
                let (user, perm) = (entry[1].to_string(), entry.get(2).map(|s| (*s).to_string()));
                let now = h
                    .users
                    .iter()
                    .find(|(u, _)| *u == user)
                    .map(|(_, p)| p.clone());
                let same = match (w[i].as_str(), &perm) {
                    ("-m", Some(p)) => now.as_deref() == Some(p.as_str()),
                    _ => now.is_none(),
                };
                if test {
                    let line = if same { "/f: *,*" } else { "/f: user::rw-,*" };
                    return Ok(exec(0, format!("{line}\n"), ""));
                }
                h.users.retain(|(u, _)| *u != user);
                if let ("-m", Some(p)) = (w[i].as_str(), perm) {
                    h.users.push((user, p));
                }
                Ok(exec(0, "", ""))
            })
            .answer(Match::Any, 0, "", "")
    }

    fn converge(params: &Value, h: &mut FakeHost<Facl>) -> Outcome {
        let plan = DynModule::plan(&Acl, params, h).expect("plan");
        assert!(!plan.is_empty());
        let out = DynModule::apply(&Acl, params, plan, h).expect("apply");
        let again = DynModule::plan(&Acl, params, h).expect("plan again");
        assert!(again.is_empty(), "{:?}", again.changes);
        out
    }

    #[test]
    fn an_entry_is_set_then_removed() {
        let mut h = fake();
        let p = json!({"path": "/f", "entity": "nobody", "etype": "user", "permissions": "r--", "state": "present"});
        let out = converge(&p, &mut h);
        assert_eq!(out.result["msg"], "user:nobody:r-- is present");
        assert_eq!(out.result["acl"][1], "user:nobody:r--");
        let out = converge(
            &json!({"path": "/f", "entry": "u:nobody", "state": "absent"}),
            &mut h,
        );
        assert_eq!(out.result["msg"], "user:nobody is absent");
        assert!(h.users.is_empty());
    }

    #[test]
    fn check_mode_and_query_change_nothing() {
        let mut h = fake();
        let p = json!({"path": "/f", "entity": "nobody", "etype": "user", "permissions": "rw", "state": "present"});
        let plan = DynModule::plan(&Acl, &p, &mut h).expect("plan");
        assert!(!plan.is_empty() && h.users.is_empty());
        let q = DynModule::plan(&Acl, &json!({"path": "/f"}), &mut h).expect("query");
        assert!(q.is_empty());
        assert_eq!(q.result["msg"], "current acl");
        assert_eq!(
            q.result["acl"],
            json!(["user::rw-", "group::r--", "other::r--"])
        );
    }

    #[test]
    fn refusals_say_what_the_collection_says() {
        let mut h = fake();
        for (p, msg) in [
            (
                json!({"path": "/f", "state": "present", "entity": "x"}),
                "'etype' MUST be set when 'state=present'.",
            ),
            (
                json!({"path": "/f", "state": "absent", "etype": "user"}),
                "'entity' MUST be set when 'state=absent'.",
            ),
            (
                json!({"path": "/f", "recursive": true}),
                "'recursive' MUST NOT be set when 'state=query'.",
            ),
            (
                json!({"path": "/f", "entry": "u:x:r", "etype": "user", "state": "present"}),
                "'entry' MUST NOT be set when 'entity', 'etype' or 'permissions' are set.",
            ),
        ] {
            let e = DynModule::plan(&Acl, &p, &mut h).expect_err("refused");
            assert_eq!(e.to_string(), msg);
        }
        let e = DynModule::plan(&Acl, &json!({"path": "/f", "use_nfsv4_acls": true}), &mut h)
            .expect_err("nfs");
        assert!(matches!(e, ModuleError::Params(_)));
    }
}
