//! What the account and system modules (`user`, `group`, `authorized_key`,
//! `cron`, `sysctl`, `mount`, `hostname`) share: parsing `getent` lines,
//! sections of one probe's output, and running one argv with a failure
//! that names the command and its stderr.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::shell_quote::join;
use crate::{ExecOutput, Host, ModuleError};

/// One `passwd` entry, as `getent passwd` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The GECOS (comment) field.
    pub gecos: String,
    /// The home directory.
    pub home: String,
    /// The login shell.
    pub shell: String,
}

impl Passwd {
    /// Read one `passwd` line (`name:x:uid:gid:gecos:home:shell`); `None` when it is not one.
    pub fn parse(line: &str) -> Option<Passwd> {
        let f: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(':').collect();
        if f.len() != 7 {
            return None;
        }
        Some(Passwd {
            name: f[0].to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            gecos: f[4].to_string(),
            home: f[5].to_string(),
            shell: f[6].to_string(),
        })
    }
}

/// One `group` entry, as `getent group` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// The group id.
    pub gid: u32,
    /// The members listed in the line (not the users whose primary group it is).
    pub members: Vec<String>,
}

impl Group {
    /// Read one `group` line (`name:x:gid:members`); `None` when it is not one.
    pub fn parse(line: &str) -> Option<Group> {
        let f: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(':').collect();
        if f.len() != 4 {
            return None;
        }
        Some(Group {
            name: f[0].to_string(),
            gid: f[2].parse().ok()?,
            members: f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    /// Whether `wanted` (a name or a numeric gid) is this group.
    pub fn is(&self, wanted: &str) -> bool {
        self.name == wanted || wanted.parse::<u32>().ok() == Some(self.gid)
    }
}

/// The password field of a `getent shadow` line.
pub fn shadow_password(line: &str) -> Option<String> {
    line.split(':').nth(1).map(str::to_string)
}

/// The lines of `out` that start with `TAG ` (several, unlike
/// [`crate::probe::tagged`]), without the tag.
pub fn tagged_all<'a>(out: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    out.lines().filter_map(move |l| {
        l.strip_prefix(tag)
            .and_then(|r| r.strip_prefix(' ').or((r.is_empty()).then_some("")))
    })
}

/// A shell snippet that prints every line of `cmd`'s output prefixed with
/// `TAG `, so several listings can share one probe's output.
pub fn tag_lines(tag: &str, cmd: &str) -> String {
    format!("{cmd} 2>/dev/null | sed 's/^/{tag} /'\n")
}

/// Run `argv` on the host; a non-zero exit fails the task with the
/// command and what it printed on stderr.
pub fn run_argv<S: AsRef<str>>(host: &mut dyn Host, argv: &[S]) -> Result<ExecOutput, ModuleError> {
    let out = host.run(&join(argv), None)?;
    if out.success() {
        return Ok(out);
    }
    let cmd = argv
        .first()
        .map(std::convert::AsRef::as_ref)
        .unwrap_or_default();
    Err(ModuleError::failed(format!(
        "{cmd} failed (rc={}): {}",
        out.rc,
        out.stderr_str().trim_end()
    )))
}

/// A list given as a YAML list or as a comma-separated string (`groups`),
/// items trimmed, empty items dropped. `None` when not given.
pub fn de_opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let item = |v: &Value| match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("expected a list of names")),
    };
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
        )),
        Value::Array(a) => a
            .iter()
            .map(item)
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(v.into_iter().filter(|x| !x.is_empty()).collect())),
        _ => Err(serde::de::Error::custom(
            "expected a list or a comma-separated string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_getent_lines() {
        let p = Passwd::parse("bob:x:1001:1001:Bob B,,,:/home/bob:/bin/bash\n");
        assert_eq!(
            p,
            Some(Passwd {
                name: "bob".into(),
                uid: 1001,
                gid: 1001,
                gecos: "Bob B,,,".into(),
                home: "/home/bob".into(),
                shell: "/bin/bash".into(),
            })
        );
        assert_eq!(Passwd::parse("bad:x:1"), None);
        let g = Group::parse("sudo:x:27:deploy,bob").expect("group");
        assert_eq!(g.members, ["deploy", "bob"]);
        assert!(g.is("27") && g.is("sudo") && !g.is("adm"));
        assert_eq!(Group::parse("empty:x:5:").map(|g| g.members.len()), Some(0));
        assert_eq!(
            shadow_password("bob:$6$x:19000:0:99999:7:::").as_deref(),
            Some("$6$x")
        );
    }

    #[test]
    fn tagged_lines_and_lists() {
        let out = "G a:x:1:\nP x\nG b:x:2:\nG\n";
        assert_eq!(
            tagged_all(out, "G").collect::<Vec<_>>(),
            ["a:x:1:", "b:x:2:", ""]
        );
        #[derive(Deserialize)]
        struct P {
            #[serde(default, deserialize_with = "de_opt_list")]
            groups: Option<Vec<String>>,
        }
        let p = |v: Value| serde_json::from_value::<P>(v).ok().and_then(|p| p.groups);
        assert_eq!(
            p(serde_json::json!({"groups": "a, b,"})),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            p(serde_json::json!({"groups": ["a", ""]})),
            Some(vec!["a".into()])
        );
        assert_eq!(p(serde_json::json!({"groups": ""})), Some(vec![]));
        assert_eq!(p(serde_json::json!({})), None);
    }
}
