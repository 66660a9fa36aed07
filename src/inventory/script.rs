//! Inventory scripts: an executable inventory file (named with `-i` or
//! found in an inventory directory) is run with `--list`, and with
//! `--host NAME` for each host when its JSON has no `_meta.hostvars`, as
//! Ansible's `script` inventory plugin does. The JSON is read the way that
//! plugin reads it (a group is a list of hosts, or a mapping with `hosts`,
//! `vars`, `children`, or else a mapping of variables for a host named
//! like the group) and handed to the YAML inventory loader in its shape.
//!
//! Each run is bounded ([`SCRIPT_TIMEOUT`]); a failure names the script and
//! shows what it printed on stderr.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;
use crate::inventory::Inventory;

/// How long one run of an inventory script may take.
pub(crate) const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a file looks as an inventory source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Executable and starts with `#!`: a script.
    Shebang,
    /// Starts with `#!` but cannot be run (Ansible fails on it too).
    NotExecutable,
    /// Executable without `#!`: run it, and read it as a file when it
    /// cannot be run (as Ansible falls back to its other plugins).
    Executable,
    /// A plain file.
    Plain,
}

pub(crate) fn kind(path: &Path) -> Kind {
    let mut head = [0u8; 2];
    let shebang = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"#!";
    #[cfg(unix)]
    let executable = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    #[cfg(not(unix))]
    let executable = false;
    match (shebang, executable) {
        (true, true) => Kind::Shebang,
        (true, false) => Kind::NotExecutable,
        (false, true) => Kind::Executable,
        (false, false) => Kind::Plain,
    }
}

/// Why a script gave no inventory.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScriptError {
    #[error("problem running {cmd} ({source})")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("inventory script {path} did not finish within {secs} s and was stopped")]
    Timeout { path: String, secs: u64 },
    #[error("inventory script {path} had an execution error (exit status {code}): {stderr}")]
    Failed {
        path: String,
        code: String,
        stderr: String,
    },
    #[error("failed to parse executable inventory script results from {path}: {reason}{stderr}")]
    Parse {
        path: String,
        reason: String,
        stderr: String,
    },
    #[error("inventory script {path}: group `{group}` has bad data for its {what}")]
    BadGroup {
        path: String,
        group: String,
        what: &'static str,
    },
}

/// Run `path` with `args`, within [`SCRIPT_TIMEOUT`]: (stdout, stderr).
fn run(path: &Path, args: &[&str]) -> Result<(Vec<u8>, String), ScriptError> {
    let shown = path.display().to_string();
    let cmd = std::iter::once(shown.as_str())
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ScriptError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    // Drain both pipes while waiting, so a chatty script never blocks.
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut b);
        }
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut b);
        }
        b
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() >= SCRIPT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ScriptError::Timeout {
                    path: shown,
                    secs: SCRIPT_TIMEOUT.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(ScriptError::Spawn { cmd, source }),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(ScriptError::Failed {
            path: shown,
            code: status
                .code()
                .map_or_else(|| "killed by a signal".into(), |c| c.to_string()),
            stderr: stderr.trim_end().to_string(),
        });
    }
    Ok((stdout, stderr))
}

fn parse_error(path: &Path, reason: impl Into<String>, stderr: &str) -> ScriptError {
    ScriptError::Parse {
        path: path.display().to_string(),
        reason: reason.into(),
        stderr: if stderr.trim().is_empty() {
            String::new()
        } else {
            format!("\n{}", stderr.trim_end())
        },
    }
}

/// The script's answer to `--list` in the YAML inventory's shape.
fn list(path: &Path) -> Result<Map<String, Value>, ScriptError> {
    let (stdout, stderr) = run(path, &["--list"])?;
    let text = String::from_utf8(stdout).map_err(|e| parse_error(path, e.to_string(), &stderr))?;
    let data: Value =
        serde_json::from_str(&text).map_err(|e| parse_error(path, e.to_string(), &stderr))?;
    let Value::Object(data) = data else {
        return Err(parse_error(path, "needs to be a json dict", &stderr));
    };
    let hostvars = data.get("_meta").and_then(|m| m.get("hostvars")).cloned();
    let mut groups = Map::new();
    // Hosts in the order they first appear, for `--host` and host vars.
    let mut hosts: Vec<(String, String)> = Vec::new();
    for (name, gdata) in &data {
        if name == "_meta" {
            continue;
        }
        let gdata = match gdata {
            Value::Object(m)
                if ["hosts", "vars", "children"]
                    .iter()
                    .any(|k| m.contains_key(*k)) =>
            {
                m.clone()
            }
            // Ansible's shorthand: variables of a host named like the group.
            Value::Object(m) => {
                let mut g = Map::new();
                g.insert(
                    "hosts".into(),
                    Value::Array(vec![Value::from(name.clone())]),
                );
                g.insert("vars".into(), Value::Object(m.clone()));
                g
            }
            other => {
                let mut g = Map::new();
                g.insert("hosts".into(), other.clone());
                g
            }
        };
        let bad = |what| ScriptError::BadGroup {
            path: path.display().to_string(),
            group: name.clone(),
            what,
        };
        let mut group = Map::new();
        if let Some(h) = gdata.get("hosts") {
            let Value::Array(list) = h else {
                return Err(bad("host list"));
            };
            let mut members = Map::new();
            for host in list {
                let host = match host {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if !hosts.iter().any(|(h, _)| *h == host) {
                    hosts.push((host.clone(), name.clone()));
                }
                members.insert(host, Value::Object(Map::new()));
            }
            group.insert("hosts".into(), Value::Object(members));
        }
        if let Some(v) = gdata.get("vars") {
            if !v.is_object() {
                return Err(bad("variables"));
            }
            group.insert("vars".into(), v.clone());
        }
        if let Some(c) = gdata.get("children") {
            let Value::Array(list) = c else {
                return Err(bad("children"));
            };
            let children: Map<String, Value> = list
                .iter()
                .map(|c| {
                    (
                        c.as_str().map_or_else(|| c.to_string(), str::to_string),
                        Value::Null,
                    )
                })
                .collect();
            group.insert("children".into(), Value::Object(children));
        }
        groups.insert(name.clone(), Value::Object(group));
    }
    // Host variables go on the host's entry in the first group naming it.
    for (host, first_group) in &hosts {
        let vars = match &hostvars {
            Some(Value::Object(all)) => all.get(host).cloned().unwrap_or(Value::Null),
            Some(_) => {
                return Err(parse_error(
                    path,
                    format!("improperly formatted host information for {host}"),
                    "",
                ))
            }
            None => host_vars(path, host)?,
        };
        if let Value::Object(v) = vars {
            if let Some(entry) = groups
                .get_mut(first_group)
                .and_then(|g| g.get_mut("hosts"))
                .and_then(|h| h.get_mut(host.as_str()))
            {
                *entry = Value::Object(v);
            }
        }
    }
    Ok(groups)
}

/// `script --host NAME`: that host's variables (empty output: none).
fn host_vars(path: &Path, host: &str) -> Result<Value, ScriptError> {
    let (stdout, stderr) = run(path, &["--host", host])?;
    let text = String::from_utf8_lossy(&stdout);
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(&text).map_err(|e| {
        parse_error(
            path,
            format!("could not parse the variables of host {host}: {e}"),
            &stderr,
        )
    })
}

/// Load the inventory script at `path` into `inv`. `Ok(false)`: the file
/// could not be run at all and is `Kind::Executable` only, so the caller
/// reads it as a plain file instead.
pub(crate) fn load(inv: &mut Inventory, path: &Path, kind: Kind) -> Result<bool, Diagnostic> {
    let groups = match list(path) {
        Ok(g) => g,
        Err(ScriptError::Spawn { .. }) if kind == Kind::Executable => return Ok(false),
        Err(e) => {
            return Err(Diagnostic::new(path, 1, 1, e.to_string())
                .with_help("run the script with `--list` to see what it prints"))
        }
    };
    // JSON is YAML: the YAML loader reads the groups and reports problems
    // in their own terms.
    let text = serde_json::to_string_pretty(&Value::Object(groups)).unwrap_or_default();
    let node = crate::yaml::parse(path, &text)?;
    crate::inventory::yaml::load(inv, &node)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn list_reads_groups_children_shorthand_and_meta_hostvars() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "inv.sh",
            r#"#!/bin/sh
[ "$1" = --list ] || exit 9
cat <<'EOF'
{"web": {"hosts": ["w1", "w2"], "vars": {"port": 80}, "children": ["db"]},
 "db": ["d1"],
 "solo": {"answer": 42},
 "_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1"}}}}
EOF
"#,
        );
        assert_eq!(kind(&p), Kind::Shebang);
        let g = list(&p).unwrap();
        assert_eq!(g["web"]["hosts"]["w1"]["ansible_host"], "10.0.0.1");
        assert_eq!(g["web"]["vars"]["port"], 80);
        assert!(g["web"]["children"].get("db").is_some());
        assert!(g["db"]["hosts"].get("d1").is_some());
        assert_eq!(
            g["solo"]["hosts"].get("solo"),
            Some(&Value::Object(Map::new()))
        );
        assert_eq!(g["solo"]["vars"]["answer"], 42);
    }

    #[test]
    fn without_meta_each_host_is_asked_with_host() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "inv.sh",
            "#!/bin/sh\nif [ \"$1\" = --list ]; then echo '{\"g\": [\"a\", \"b\"]}'; \
             elif [ \"$2\" = a ]; then echo '{\"v\": 1}'; fi\n",
        );
        let g = list(&p).unwrap();
        assert_eq!(g["g"]["hosts"]["a"]["v"], 1);
        assert_eq!(g["g"]["hosts"]["b"], Value::Object(Map::new()));
    }

    #[test]
    fn failures_name_the_script_and_show_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "bad.sh",
            "#!/bin/sh\necho 'no cloud creds' >&2\nexit 3\n",
        );
        let e = list(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.sh") && e.contains("no cloud creds") && e.contains('3'),
            "{e}"
        );
        let p = script(
            dir.path(),
            "junk.sh",
            "#!/bin/sh\necho 'not json'; echo warn >&2\n",
        );
        let e = list(&p).unwrap_err().to_string();
        assert!(
            e.contains("failed to parse") && e.contains("junk.sh") && e.contains("warn"),
            "{e}"
        );
        let p = script(dir.path(), "list.sh", "#!/bin/sh\necho '[1]'\n");
        assert!(list(&p).unwrap_err().to_string().contains("json dict"));
    }
}
