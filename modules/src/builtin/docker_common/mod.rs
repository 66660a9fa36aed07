//! The docker CLI as the `community.docker` modules use it: every docker
//! command goes to the host through here, so a module's probes cost one
//! round trip and its changes one more.
//!
//! A probe runs several `docker ...` commands in one script, each framed by
//! marker lines carrying its exit status, and [`Section`]s come back in the
//! same order; an apply runs its commands one after the other and stops at
//! the first that fails. `inspect` output (a JSON array) is parsed here;
//! "No such ..." from docker means the object is absent, anything else
//! non-zero is the host's error. The modules talk to the docker CLI only
//! (no SDK, no Python), so what the host's `docker` can do is what they do.

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod fake_container;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::shell_quote::join;
use crate::{Host, HostError, ModuleError};

const START: &str = "@@herd-docker";
const END: &str = "@@herd-docker-rc";

/// What one command of a probe printed (stdout and stderr together) and
/// how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub(crate) rc: i32,
    pub(crate) text: String,
}

impl Section {
    /// The first object of an `inspect` answer; `None` when docker says
    /// there is no such object.
    pub(crate) fn inspected(&self, action: &'static str) -> Result<Option<Value>, ModuleError> {
        if self.rc != 0 {
            if self.text.contains("No such") {
                return Ok(None);
            }
            return Err(self.error(action));
        }
        let v: Value = serde_json::from_str(self.text.trim()).map_err(|e| HostError::Command {
            action,
            rc: 0,
            stderr: format!("docker printed what is not JSON: {e}"),
        })?;
        Ok(match v {
            Value::Array(mut a) if !a.is_empty() => Some(a.swap_remove(0)),
            Value::Array(_) => None,
            other => Some(other),
        })
    }

    /// The section as the host's error.
    pub(crate) fn error(&self, action: &'static str) -> ModuleError {
        ModuleError::Host(HostError::Command {
            action,
            rc: self.rc,
            stderr: self.text.trim().to_string(),
        })
    }
}

/// The probe script for `cmds`: each command framed by marker lines.
fn probe_script(cmds: &[Vec<String>]) -> String {
    let mut s = String::new();
    for c in cmds {
        s.push_str(&format!(
            "echo {START}\n{} 2>&1\nprintf '\\n{END} %s\\n' \"$?\"\n",
            join(c)
        ));
    }
    s
}

/// Read a probe's output back into one [`Section`] per command.
fn parse_sections(out: &str, want: usize) -> Result<Vec<Section>, HostError> {
    let mut sections = Vec::new();
    let mut rest = out;
    while let Some(i) = rest.find(&format!("{START}\n")) {
        let body = &rest[i + START.len() + 1..];
        let Some(j) = body.find(&format!("\n{END} ")) else {
            break;
        };
        let text = body[..j].to_string();
        let after = &body[j + END.len() + 2..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let rc = after[..line_end].trim().parse().unwrap_or(-1);
        sections.push(Section { rc, text });
        rest = &after[line_end..];
    }
    if sections.len() == want {
        Ok(sections)
    } else {
        Err(HostError::Command {
            action: "probe docker",
            rc: -1,
            stderr: format!(
                "expected {want} answers from docker, read {}",
                sections.len()
            ),
        })
    }
}

/// Run `cmds` (each a docker argv) in one round trip; every command runs,
/// whatever the others did.
pub(crate) fn probe(
    host: &mut dyn Host,
    cmds: &[Vec<String>],
) -> Result<Vec<Section>, ModuleError> {
    if cmds.is_empty() {
        return Ok(Vec::new());
    }
    let out = host.run(&probe_script(cmds), None)?;
    Ok(parse_sections(&out.stdout_str(), cmds.len())?)
}

/// Run `cmds` in order in one round trip, stopping at the first that
/// fails (its stderr is the error); then `then` (an `inspect`, say), whose
/// output is what this returns, so a change and the state it left cost
/// one round trip.
pub(crate) fn apply(
    host: &mut dyn Host,
    action: &'static str,
    cmds: &[Vec<String>],
    then: Option<&[String]>,
    stdin: Option<&[u8]>,
) -> Result<String, ModuleError> {
    let mut script: String = cmds
        .iter()
        .map(|c| format!("{} >/dev/null || exit $?\n", join(c)))
        .collect();
    if let Some(then) = then {
        script.push_str(&format!("{}\n", join(then)));
    }
    if script.is_empty() {
        return Ok(String::new());
    }
    let out = host.run(&script, stdin)?;
    if out.success() {
        Ok(out.stdout_str())
    } else {
        Err(ModuleError::Host(HostError::Command {
            action,
            rc: out.rc,
            stderr: out.stderr_str().trim().to_string(),
        }))
    }
}

/// The first object of an `inspect` answer [`apply`] returned.
pub(crate) fn inspected(action: &'static str, text: &str) -> Result<Option<Value>, ModuleError> {
    Section {
        rc: 0,
        text: text.to_string(),
    }
    .inspected(action)
}

/// An argv starting with `docker`.
pub(crate) fn docker(args: &[&str]) -> Vec<String> {
    std::iter::once("docker")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// A scalar Ansible would turn into a string (labels, options: `1` and
/// `true` arrive typed from YAML).
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

/// A mapping whose values are strings (labels, driver options); numbers
/// and booleans are turned into strings as Ansible's `dict` of `str` does.
pub(crate) fn de_string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let v = Option::<BTreeMap<String, Value>>::deserialize(d)?;
    v.map(|m| {
        m.into_iter()
            .map(|(k, v)| {
                scalar_string(&v).map(|s| (k.clone(), s)).ok_or_else(|| {
                    serde::de::Error::custom(format!("the value of `{k}` must be a string"))
                })
            })
            .collect()
    })
    .transpose()
}

/// A string or a list of strings, kept as a list.
pub(crate) fn de_opt_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(a) => a
            .iter()
            .map(|v| {
                scalar_string(v)
                    .ok_or_else(|| serde::de::Error::custom("expected a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        v => scalar_string(&v)
            .map(|s| Some(vec![s]))
            .ok_or_else(|| serde::de::Error::custom("expected a string or a list of strings")),
    }
}

/// A value at a path of keys in an inspect document (`Config.Labels`).
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// The string map at `path` of an inspect document (labels, options).
pub(crate) fn string_map(v: &Value, path: &str) -> BTreeMap<String, String> {
    at(v, path)
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), scalar_string(v).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every key of `want` present in `have` with the same value (Ansible's
/// `allow_more_present` for dicts); the keys that differ, for the plan.
pub(crate) fn missing_entries(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> Vec<String> {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_come_back_in_order_with_their_status() {
        let out = format!(
            "{START}\n[{{\"Name\":\"a\"}}]\n{END} 0\n{START}\nError: No such network: b\n{END} 1\n"
        );
        let s = parse_sections(&out, 2).expect("two");
        assert_eq!(s[0].rc, 0);
        assert_eq!(
            s[0].inspected("x").expect("ok").expect("found")["Name"],
            "a"
        );
        assert_eq!(s[1].inspected("x").expect("ok"), None);
        assert!(parse_sections(&out, 3).is_err());
    }

    #[test]
    fn an_inspect_failing_otherwise_is_the_hosts_error() {
        let s = Section {
            rc: 127,
            text: "sh: docker: not found".into(),
        };
        assert!(s.inspected("inspect").is_err());
    }

    #[test]
    fn the_probe_script_frames_every_command() {
        let script = probe_script(&[docker(&["network", "inspect", "a b"])]);
        assert!(
            script.contains("docker network inspect 'a b' 2>&1\n"),
            "{script}"
        );
    }
}
