//! `authorized_key`: SSH public keys in a user's `authorized_keys`.
//!
//! One probe looks up the user (home, uid, gid) and reads the key file;
//! the new content is computed in Rust with Ansible's rules and kept in
//! the plan, so apply is one directory fix-up and one atomic write.
//!
//! Ansible's rules: keys are known by their base64 blob. `present` adds a
//! missing key at the end; a key that is there with another type, options
//! or comment is moved to the end with the new ones. `exclusive` drops
//! every other line (comments too). `absent` drops the key whatever its
//! options. `key_options` and `comment` override those of every given key.
//! Whenever the file is written it is set to the user and mode 0600; with
//! `manage_dir` its directory is created if needed and set to the user
//! and 0700 too. Lines this module does not rewrite keep their
//! spelling (Ansible re-serializes every line). Keys from a URL are not
//! supported.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::Passwd;
use crate::host::FileAttrs;
use crate::params::{de_bool, yes};
use crate::probe::{stat_snippet, tagged, WantedAttrs};
use crate::shell_quote::{quote, quote_path};
use crate::textfile::{self, lines_of, run_checked, Read};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum KeyState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `authorized_key`: what `herd doc` shows, and what the parser takes.
pub struct AuthorizedKeyParams {
    /// The user whose `authorized_keys` file is edited.
    pub user: String,
    /// The public key line(s), as text (several keys one per line). A URL is refused: fetch it
    /// with a lookup on the controller.
    pub key: String,
    /// The file to edit instead of `~USER/.ssh/authorized_keys`.
    pub path: Option<String>,
    /// Create `~/.ssh` (mode 0700) and set the file's owner and mode.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub manage_dir: bool,
    /// `present`: the keys are in the file; `absent`: they are not.
    #[serde(default)]
    pub state: KeyState,
    /// Options written before each key (`no-port-forwarding,from="10.0.0.0/8"`).
    pub key_options: Option<String>,
    /// Remove every other key from the file.
    #[serde(default, deserialize_with = "de_bool")]
    pub exclusive: bool,
    /// Accepted for compatibility (keys are never fetched from URLs).
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub validate_certs: bool,
    /// Replace the keys' comment.
    pub comment: Option<String>,
    /// When the file is a symlink, edit the file it points to.
    #[serde(default, deserialize_with = "de_bool")]
    pub follow: bool,
}

/// The `authorized_key` module.
pub struct AuthorizedKey;

/// The key types OpenSSH accepts, as Ansible lists them.
const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed25519",
    "ssh-dss",
    "ssh-rsa",
    "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
];

/// One parsed key line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Options before the key type, in order.
    pub options: Vec<(String, Option<String>)>,
    /// The key type (`ssh-ed25519`).
    pub kind: String,
    /// The base64 key.
    pub blob: String,
    /// The comment after the key.
    pub comment: String,
}

/// Split `a,b="x,y",c` at the commas outside double quotes, into
/// `(name, value)` pairs (value with its quotes, as written).
pub fn parse_options(s: &str) -> Vec<(String, Option<String>)> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (p, None),
        })
        .collect()
}

impl Key {
    /// Ansible's `parsekey`: words split at whitespace; the first known key
    /// type splits options (before) from the blob and the comment (after).
    pub fn parse(line: &str) -> Option<Key> {
        let line = line.replace(r"\#", "#");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"#") {
            return None;
        }
        let at = words.iter().position(|w| KEY_TYPES.contains(w))?;
        let blob = words.get(at + 1)?;
        Some(Key {
            options: parse_options(&words[..at].join(" ")),
            kind: words[at].to_string(),
            blob: blob.to_string(),
            comment: words[at + 2..].join(" "),
        })
    }

    /// The key as an authorized_keys line.
    pub fn line(&self) -> String {
        let mut s = String::new();
        if !self.options.is_empty() {
            let opts: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            s.push_str(&opts.join(","));
            s.push(' ');
        }
        s.push_str(&format!("{} {}", self.kind, self.blob));
        if !self.comment.is_empty() {
            s.push(' ');
            s.push_str(&self.comment);
        }
        s.push('\n');
        s
    }
}

/// The keys `p.key` asks for, with `key_options` and `comment` applied.
fn wanted_keys(p: &AuthorizedKeyParams) -> Result<Vec<Key>, ModuleError> {
    let invalid = |reason: String| {
        ModuleError::Params(ParamError::Invalid {
            module: AuthorizedKey::NAME,
            path: "key".into(),
            reason,
        })
    };
    if p.key.starts_with("http://") || p.key.starts_with("https://") {
        return Err(invalid(
            "keys from a URL are not supported; fetch them on the controller (lookup) and pass the text".into(),
        ));
    }
    p.key
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut k = Key::parse(l).ok_or_else(|| invalid("invalid key specified".into()))?;
            if let Some(o) = &p.key_options {
                k.options = parse_options(o);
            }
            if let Some(c) = &p.comment {
                c.clone_into(&mut k.comment);
            }
            Ok(k)
        })
        .collect()
}

/// The new content of the key file, or `None` when it is already right.
pub fn edit(before: &str, wanted: &[Key], state: KeyState, exclusive: bool) -> Option<String> {
    let lines: Vec<String> = lines_of(before.as_bytes())
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let mut keep: Vec<(String, Option<Key>)> = lines
        .into_iter()
        .map(|l| {
            let k = Key::parse(&l);
            (l, k)
        })
        .collect();
    let mut changed = false;
    let mut appended = Vec::new();
    for w in wanted {
        let at = keep
            .iter()
            .position(|(_, k)| k.as_ref().is_some_and(|k| k.blob == w.blob));
        match (state, at) {
            (KeyState::Present, Some(i)) => {
                if keep[i].1.as_ref() != Some(w) {
                    keep.remove(i);
                    appended.push(w.line());
                    changed = true;
                }
            }
            (KeyState::Present, None) => {
                appended.push(w.line());
                changed = true;
            }
            (KeyState::Absent, Some(_)) => {
                let n = keep.len();
                keep.retain(|(_, k)| k.as_ref().is_none_or(|k| k.blob != w.blob));
                changed |= keep.len() != n;
            }
            (KeyState::Absent, None) => {}
        }
    }
    if exclusive && state == KeyState::Present {
        let n = keep.len();
        keep.retain(|(_, k)| {
            k.as_ref()
                .is_some_and(|k| wanted.iter().any(|w| w.blob == k.blob))
        });
        changed |= keep.len() != n;
    }
    if !changed {
        return None;
    }
    let mut out = String::new();
    for (l, _) in keep {
        out.push_str(&l);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out.extend(appended);
    Some(out)
}

/// What apply needs from the plan.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Planned {
    write_path: String,
    dir: String,
    content: String,
    uid: u32,
    gid: u32,
}

impl Module for AuthorizedKey {
    const NAME: &'static str = "authorized_key";
    const DOC_SHORT: &'static str = "Add or remove SSH public keys in a user's authorized_keys.";
    const DOC_LONG: &'static str =
        r##"Lines the task does not add or rewrite keep their spelling."##;
    const DOC_EXAMPLE: &'static str = r##"- authorized_key:
    user: deploy
    key: "{{ lookup('file', 'keys/deploy.pub') }}"
"##;
    type Params = AuthorizedKeyParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let wanted = wanted_keys(p)?;
        let path = match &p.path {
            Some(path) => quote_path(path),
            None => "\"$h\"/.ssh/authorized_keys".to_string(),
        };
        let setup = format!(
            "if ent=$(getent passwd -- {u}); then echo \"PW $ent\"; h=$(printf '%s' \"$ent\" | cut -d: -f6); \
             else echo NOUSER -; h=/nonexistent; fi\np={path}",
            u = quote(&p.user)
        );
        let extra = format!(
            "d=$(dirname -- \"$p\")\n{}",
            stat_snippet("SD", "\"$d\"", true)
        );
        let dest = textfile::probe(
            host,
            &setup,
            p.follow,
            &WantedAttrs::default(),
            Read::All,
            &extra,
        )?;
        let user = tagged(&dest.text, "PW")
            .and_then(Passwd::parse)
            .ok_or_else(|| {
                ModuleError::failed(format!("Failed to lookup user {}: no such user", p.user))
            })?;
        if dest.is_dir() {
            return Err(ModuleError::failed(format!("{} is a directory", dest.path)));
        }
        let dir = dest
            .path
            .rsplit_once('/')
            .map(|(d, _)| if d.is_empty() { "/" } else { d })
            .unwrap_or(".")
            .to_string();
        let before =
            String::from_utf8_lossy(dest.content.as_deref().unwrap_or_default()).into_owned();
        let mut plan = Plan::default();
        let mut result = Map::new();
        for (k, v) in [
            ("user", json!(p.user)),
            ("key", json!(p.key)),
            ("key_options", json!(p.key_options)),
            ("keyfile", json!(dest.path)),
            ("path", json!(p.path)),
            ("manage_dir", json!(p.manage_dir)),
            (
                "state",
                json!(if p.state == KeyState::Present {
                    "present"
                } else {
                    "absent"
                }),
            ),
            ("exclusive", json!(p.exclusive)),
            ("follow", json!(p.follow)),
            ("validate_certs", json!(p.validate_certs)),
            ("comment", json!(p.comment)),
            ("unique", json!(false)),
        ] {
            result.insert(k.into(), v);
        }
        plan.result = result;
        let Some(after) = edit(&before, &wanted, p.state, p.exclusive) else {
            return Ok(plan);
        };
        if !p.manage_dir && tagged(&dest.text, "SD").is_some_and(|s| s.trim() == "-") {
            return Err(ModuleError::failed(format!(
                "Failed to write to file {}: directory {dir} does not exist and manage_dir is off",
                dest.path
            )));
        }
        plan.changes.push(match p.state {
            KeyState::Present => format!("update keys in {}", dest.path),
            KeyState::Absent => format!("remove keys from {}", dest.path),
        });
        if let Some(d) = textfile::diff(&dest.path, before.as_bytes(), after.as_bytes()) {
            plan.diffs.push(d);
        }
        plan.state = json!(Planned {
            write_path: dest.write_path.clone(),
            dir,
            content: after,
            uid: user.uid,
            gid: user.gid,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let pl: Planned = serde_json::from_value(plan.state.clone())
            .map_err(|_| ModuleError::failed("authorized_key: apply called without a plan"))?;
        let d = quote(&pl.dir);
        let mut script = format!("mkdir -p -- {d}\n");
        if p.manage_dir {
            script.push_str(&format!(
                "chown {}:{} -- {d}\nchmod 0700 -- {d}\n",
                pl.uid, pl.gid
            ));
        }
        run_checked(host, "create the key directory", &script)?;
        // Ansible sets the file to the user and 0600 whenever it writes.
        let attrs = FileAttrs {
            owner: Some(pl.uid.to_string()),
            group: Some(pl.gid.to_string()),
            mode: Some("0600".into()),
        };
        host.write_file(&pl.write_path, pl.content.as_bytes(), &attrs)?;
        let mut result: Map<String, Value> = plan.result;
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@x";
    const B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob@y";

    fn keys(s: &[&str]) -> Vec<Key> {
        s.iter().filter_map(|l| Key::parse(l)).collect()
    }

    #[test]
    fn parses_options_type_blob_and_comment() {
        let k = Key::parse(r#"from="10.0.0.1,10.0.0.2",no-pty ssh-ed25519 AAAA c d"#).expect("key");
        assert_eq!(
            k.options,
            [
                (
                    "from".to_string(),
                    Some("\"10.0.0.1,10.0.0.2\"".to_string())
                ),
                ("no-pty".to_string(), None)
            ]
        );
        assert_eq!(
            (k.kind.as_str(), k.blob.as_str(), k.comment.as_str()),
            ("ssh-ed25519", "AAAA", "c d")
        );
        assert_eq!(
            k.line(),
            "from=\"10.0.0.1,10.0.0.2\",no-pty ssh-ed25519 AAAA c d\n"
        );
        assert_eq!(Key::parse("# a comment"), None);
        assert_eq!(Key::parse("garbage"), None);
    }

    #[test]
    fn edits_like_ansible() {
        let file = format!("# keep me\n{A}\n");
        assert_eq!(edit(&file, &keys(&[A]), KeyState::Present, false), None);
        assert_eq!(
            edit(&file, &keys(&[B]), KeyState::Present, false),
            Some(format!("# keep me\n{A}\n{B}\n"))
        );
        // Another comment or options: the key moves to the end, rewritten.
        let other = format!("{} other", &A[..A.len() - 8]);
        assert_eq!(
            edit(
                &format!("{A}\n{B}\n"),
                &keys(&[&other]),
                KeyState::Present,
                false
            ),
            Some(format!("{B}\n{other}\n"))
        );
        assert_eq!(
            edit(&file, &keys(&[B]), KeyState::Present, true),
            Some(format!("{B}\n"))
        );
        assert_eq!(
            edit(&file, &keys(&[A]), KeyState::Absent, false),
            Some("# keep me\n".into())
        );
        assert_eq!(edit(&file, &keys(&[B]), KeyState::Absent, false), None);
        assert_eq!(
            edit("", &keys(&[A]), KeyState::Present, false),
            Some(format!("{A}\n"))
        );
    }

    #[test]
    fn options_and_comment_override() {
        let p: AuthorizedKeyParams = crate::module::parse_params(
            AuthorizedKey::NAME,
            &json!({"user": "u", "key": format!("{A}\n\n{B}\n"), "key_options": "no-pty", "comment": "c"}),
        )
        .expect("params");
        let w = wanted_keys(&p).expect("keys");
        assert_eq!(w.len(), 2);
        assert!(w
            .iter()
            .all(|k| k.comment == "c" && k.options == [("no-pty".into(), None)]));
        let p: AuthorizedKeyParams = crate::module::parse_params(
            AuthorizedKey::NAME,
            &json!({"user": "u", "key": "https://github.com/u.keys"}),
        )
        .expect("params");
        assert!(wanted_keys(&p).is_err());
    }
}
