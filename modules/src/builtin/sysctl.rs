//! `sysctl`: a kernel parameter's line in a sysctl file, and its live value.
//!
//! The plan reads the file and the live value (`sysctl -n`) in one round
//! trip. The file needs a change when the key has no line, more than one
//! line, or a line with another value (values compare with whitespace
//! runs equal, as Ansible does); only that key's lines are touched, the
//! rest of the file is kept as it is. The live value needs a change when
//! `reload` or `sysctl_set` is on and it differs.
//!
//! Apply sets the live value first with `sysctl -w KEY=VALUE` (only this
//! key: `sysctl -p FILE` would re-apply every other line too, and fail on
//! keys this host cannot write), then writes the file. A key the host
//! cannot write (in a container only `net.*` is writable) fails the task
//! naming the key and why, before the file is touched; `ignoreerrors`
//! turns that into a warning and still writes the file.

use serde::Deserialize;
use serde_json::{json, Map};

use crate::host::FileAttrs;
use crate::params::{de_bool, de_opt_string, yes};
use crate::probe::tagged;
use crate::shell_quote::quote;
use crate::textfile::{self, lines_of};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum SysctlState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `sysctl`: what `herd doc` shows, and what the parser takes.
pub struct SysctlParams {
    /// The kernel parameter, dotted (`net.core.somaxconn`).
    #[serde(alias = "key")]
    pub name: String,
    /// The value to set. Boolean words (`yes`, `on`, `true`) become `1`, their opposites `0`.
    /// Required for `state: present`.
    #[serde(default, alias = "val", deserialize_with = "de_opt_string")]
    pub value: Option<String>,
    /// `present`: the key's line is in `sysctl_file`; `absent`: its lines are removed.
    #[serde(default)]
    pub state: SysctlState,
    /// A key the host cannot write, or does not have, is a warning instead of a failure (the
    /// file is still written).
    #[serde(default, deserialize_with = "de_bool")]
    pub ignoreerrors: bool,
    /// Set the live value too when it differs (`sysctl -w KEY=VALUE`, this key only).
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub reload: bool,
    /// The file that holds the line.
    #[serde(default = "default_file")]
    pub sysctl_file: String,
    /// Compare and set the live value even with `reload: false`.
    #[serde(default, deserialize_with = "de_bool")]
    pub sysctl_set: bool,
}

fn default_file() -> String {
    "/etc/sysctl.conf".into()
}

/// The `sysctl` module.
pub struct Sysctl;

/// Ansible's `_parse_value`: boolean words become `1`/`0`.
pub(crate) fn parse_value(v: &str) -> String {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "y" | "t" => "1".into(),
        "no" | "off" | "false" | "n" | "f" => "0".into(),
        _ => v.trim().to_string(),
    }
}

/// Whether two values are equal with whitespace runs counted as one
/// (`/proc` prints `4096\t87380`, files have `4096 87380`).
pub(crate) fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// `sysctl -w`'s error, with what it means in a container: a key the
/// namespace does not own is refused as "permission denied" or "read-only".
pub(crate) fn explain_write_error(err: &str) -> String {
    if is_read_only_error(err) {
        format!("{err} (the key is read-only in this namespace)")
    } else {
        err.to_string()
    }
}

/// Whether `sysctl -w`'s error says the key cannot be written here at all
/// (as opposed to a value the kernel refused).
pub(crate) fn is_read_only_error(err: &str) -> bool {
    let lower = err.to_ascii_lowercase();
    lower.contains("permission denied") || lower.contains("read-only")
}

/// A `key = value` line's key and value; `None` for blank lines, comments
/// and lines without `=`.
fn key_value(line: &str) -> Option<(&str, &str)> {
    let t = line.trim();
    if t.is_empty() || t.starts_with(['#', ';']) {
        return None;
    }
    let (k, v) = t.split_once('=')?;
    // `-key = value` tells sysctl to ignore errors for that key.
    Some((k.trim().trim_start_matches('-'), v.trim()))
}

/// The file as it should be for `name`: the first line of the key gets
/// `name=value` (or every line goes, when `value` is `None`), later
/// duplicates go, and a missing key is appended. `None` when the file is
/// already right.
fn edit(text: &str, name: &str, value: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let mut seen = 0;
    let mut right = true;
    for line in lines_of(text.as_bytes()) {
        let line = String::from_utf8_lossy(&line).into_owned();
        match key_value(&line) {
            Some((k, v)) if k == name => {
                seen += 1;
                match value {
                    Some(want) if seen == 1 => {
                        if !same_value(v, want) {
                            right = false;
                            out.push_str(&format!("{name}={want}\n"));
                        } else {
                            out.push_str(&line);
                            if !line.ends_with('\n') {
                                out.push('\n');
                            }
                        }
                    }
                    _ => right = false,
                }
            }
            _ => out.push_str(&line),
        }
    }
    if let (Some(want), 0) = (value, seen) {
        right = false;
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{name}={want}\n"));
    }
    (!right).then_some(out)
}

/// What a plan decided, for apply.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Planned {
    /// The new file content, when the file changes.
    file: Option<String>,
    /// Set the live value.
    live: bool,
}

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Sysctl::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

impl Module for Sysctl {
    const NAME: &'static str = "sysctl";
    const DOC_SHORT: &'static str =
        "Set a kernel parameter in a sysctl file and, live, on the host.";
    const DOC_LONG: &'static str = r##"Only the key's own lines in the file are touched (duplicates removed, other lines kept as they are). The live value is set before the file is written, so a key the host cannot write fails the task naming the key and leaves the file alone; inside a container only the container's own keys (`net.*`) can be written."##;
    const DOC_EXAMPLE: &'static str = r##"- name: A longer listen backlog
  sysctl:
    name: net.core.somaxconn
    value: "4096"
    sysctl_file: /etc/sysctl.d/60-net.conf
"##;
    type Params = SysctlParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let name = p.name.trim();
        if name.is_empty() || name.contains(['=', '\n', ' ']) {
            return Err(invalid("name", "not a sysctl key"));
        }
        let value = match (p.state, &p.value) {
            (SysctlState::Present, None) => {
                return Err(invalid("value", "value is required with state=present"))
            }
            (SysctlState::Present, Some(v)) => Some(parse_value(v)),
            (SysctlState::Absent, _) => None,
        };
        let f = quote(&p.sysctl_file);
        let script = format!(
            "if v=$(sysctl -n -- {} 2>&1); then echo \"LIVE $v\"; else echo \"NOKEY $v\"; fi | head -n 1\n\
             if [ -f {f} ]; then echo FILE; cat -- {f}; fi\n",
            quote(name)
        );
        let out = host.run(&script, None)?;
        let text = out.stdout_str();
        let (head, content) = match text.split_once("FILE\n") {
            Some((h, c)) => (h.to_string(), Some(c.to_string())),
            None => (text.clone(), None),
        };
        let live = tagged(&head, "LIVE").map(str::to_string);
        let mut plan = Plan::default();
        let mut warnings = Vec::new();
        let before = content.clone().unwrap_or_default();
        let file = edit(&before, name, value.as_deref());
        if let Some(after) = &file {
            plan.changes.push(match &value {
                Some(v) => format!("{name}={v} in {}", p.sysctl_file),
                None => format!("remove {name} from {}", p.sysctl_file),
            });
            if let Some(d) = textfile::diff(&p.sysctl_file, before.as_bytes(), after.as_bytes()) {
                plan.diffs.push(d);
            }
        }
        let mut set_live = false;
        if let (Some(want), true) = (&value, p.reload || p.sysctl_set) {
            match &live {
                Some(have) if same_value(have, want) => {}
                Some(have) => {
                    plan.changes
                        .push(format!("live {name}: {} -> {want}", have.trim()));
                    set_live = true;
                }
                None if p.ignoreerrors => {
                    warnings.push(format!("{name} is not a kernel parameter on this host"));
                }
                None => {
                    let why = tagged(&head, "NOKEY")
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    return Err(ModuleError::failed(format!(
                        "{name} is not a kernel parameter on this host: {why}"
                    )));
                }
            }
        }
        plan.result.insert("name".into(), json!(name));
        if let Some(v) = &value {
            plan.result.insert("value".into(), json!(v));
        }
        plan.result
            .insert("sysctl_file".into(), json!(p.sysctl_file));
        if !warnings.is_empty() {
            plan.result.insert("warnings".into(), json!(warnings));
        }
        plan.state = json!(Planned {
            file,
            live: set_live
        });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let planned: Planned = serde_json::from_value(plan.state.clone())
            .map_err(|_| ModuleError::failed("sysctl: apply called without a plan"))?;
        let name = p.name.trim();
        let mut result: Map<String, serde_json::Value> = plan.result.clone();
        let mut warnings: Vec<serde_json::Value> = result
            .get("warnings")
            .and_then(|w| w.as_array().cloned())
            .unwrap_or_default();
        if planned.live {
            let value = p.value.as_deref().map(parse_value).unwrap_or_default();
            let out = host.run(
                &format!("sysctl -w {}", quote(&format!("{name}={value}"))),
                None,
            )?;
            if !out.success() {
                let why = explain_write_error(out.stderr_str().trim());
                let msg = format!("setting {name} to {value} failed: {why}");
                if !p.ignoreerrors {
                    return Err(ModuleError::failed(msg));
                }
                warnings.push(json!(msg));
            }
        }
        if let Some(content) = &planned.file {
            // A new file gets 0644; a rewritten one keeps its owner and mode.
            host.write_file(&p.sysctl_file, content.as_bytes(), &FileAttrs::default())?;
        }
        if !warnings.is_empty() {
            result.insert("warnings".into(), json!(warnings));
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{host, path_in};
    use crate::DynModule;

    #[test]
    fn edits_only_the_key_and_never_duplicates() {
        let text = "# comment\nnet.a = 1\nvm.x=2\n";
        assert_eq!(edit(text, "net.a", Some("1")), None);
        assert_eq!(
            edit(text, "net.a", Some("3")).as_deref(),
            Some("# comment\nnet.a=3\nvm.x=2\n")
        );
        assert_eq!(
            edit("a=1\nb=2\na=1\n", "a", Some("1")).as_deref(),
            Some("a=1\nb=2\n")
        );
        assert_eq!(edit("b=2", "a", Some("1")).as_deref(), Some("b=2\na=1\n"));
        assert_eq!(edit("", "a", Some("1")).as_deref(), Some("a=1\n"));
        assert_eq!(edit("a=1\nb=2\n", "a", None).as_deref(), Some("b=2\n"));
        assert_eq!(edit("b=2\n# a=1\n", "a", None), None);
        assert_eq!(
            edit("net.r = 4096  87380\n", "net.r", Some("4096 87380")),
            None
        );
        assert_eq!(parse_value(" yes "), "1");
        assert!(same_value("4096\t87380", "4096 87380"));
    }

    #[test]
    fn file_only_plan_and_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "99-test.conf");
        std::fs::write(&f, "x.y=1\n").expect("write");
        let params = json!({"name": "herd.test.key", "value": 5, "sysctl_file": f, "reload": "no"});
        let pl = DynModule::plan(&Sysctl, &params, &mut host()).expect("plan");
        assert_eq!(pl.changes.len(), 1);
        DynModule::apply(&Sysctl, &params, pl, &mut host()).expect("apply");
        assert_eq!(
            std::fs::read_to_string(&f).ok().as_deref(),
            Some("x.y=1\nherd.test.key=5\n")
        );
        assert!(DynModule::plan(&Sysctl, &params, &mut host())
            .expect("plan")
            .is_empty());
        // With reload, a key the kernel does not have fails the plan.
        let params = json!({"name": "herd.test.key", "value": 5, "sysctl_file": f});
        let err = DynModule::plan(&Sysctl, &params, &mut host()).expect_err("no such key");
        assert!(err.to_string().contains("not a kernel parameter"), "{err}");
        assert!(Sysctl
            .check_params(&json!({"key": "a", "val": "1"}))
            .is_ok());
    }
}
