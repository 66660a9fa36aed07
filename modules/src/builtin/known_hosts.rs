//! `known_hosts`: add or remove a host's key in an SSH `known_hosts` file
//! on the host (`~/.ssh/known_hosts` by default).
//!
//! The plan reads the file in its one probe and finds the host's lines as
//! `ssh-keygen -F` finds them (comma-separated names, `*`/`?` patterns,
//! `!` negations, `[host]:port`, and hashed `|1|salt|hash` names, checked
//! with HMAC-SHA1), so no `ssh-keygen` is needed on the host. Then
//! Ansible's rules: an identical key is left alone; another key of the
//! same type is replaced (the new line goes at the end); a new key is
//! appended; `state: absent` removes the host's line of the key's type, or
//! every line of the host without `key`. Apply writes the file atomically.
//!
//! Differences from Ansible: removing every line of a host writes no
//! `known_hosts.old` backup (`ssh-keygen -R` does).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::de_bool;
use crate::probe::WantedAttrs;
use crate::shell_quote::quote_path;
use crate::textfile::{self, lines_of, Edit, Read};
use crate::{FileDiff, Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum KnownState {
    #[default]
    /// The key should be in the file.
    Present,
    /// The key (or every key of the host) should not be.
    Absent,
}

fn default_path() -> String {
    "~/.ssh/known_hosts".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `known_hosts`: what `herd doc` shows, and what the parser takes.
pub struct KnownHostsParams {
    /// The host, as SSH looks it up (`github.com`, `[git.example.com]:2222`); one name only.
    #[serde(alias = "host")]
    pub name: String,
    /// The known_hosts line (`github.com ssh-ed25519 AAAA...`), whose host field must match
    /// `name`; required with `state: present`.
    pub key: Option<String>,
    /// The known_hosts file.
    #[serde(default = "default_path")]
    pub path: String,
    /// Write the host field hashed (`|1|salt|hash`), as `HashKnownHosts` does.
    #[serde(default, deserialize_with = "de_bool")]
    pub hash_host: bool,
    /// Whether the key should be there.
    #[serde(default)]
    pub state: KnownState,
}

/// The `known_hosts` module.
pub struct KnownHosts;

/// HMAC-SHA1, as OpenSSH hashes known_hosts names.
fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha1::{Digest, Sha1};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// OpenSSH's `match_pattern`: `*` and `?`, case-insensitively for names.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob(rest, name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some((b'?', rest)), Some((_, n))) => glob(rest, n),
        (Some((p, rest)), Some((c, n))) => p.eq_ignore_ascii_case(c) && glob(rest, n),
        _ => false,
    }
}

/// Whether a known_hosts host field names `host`, as `ssh-keygen -F` decides.
fn field_matches(field: &str, host: &str) -> bool {
    use base64::Engine as _;
    if let Some(rest) = field.strip_prefix("|1|") {
        let b64 = base64::engine::general_purpose::STANDARD;
        let Some((salt, hash)) = rest.split_once('|') else {
            return false;
        };
        return match (b64.decode(salt), b64.decode(hash)) {
            (Ok(salt), Ok(hash)) => hmac_sha1(&salt, host.as_bytes()) == hash,
            _ => false,
        };
    }
    let mut hit = false;
    for pat in field.split(',') {
        match pat.strip_prefix('!') {
            Some(neg) if glob(neg.as_bytes(), host.as_bytes()) => return false,
            Some(_) => {}
            None => hit |= glob(pat.as_bytes(), host.as_bytes()),
        }
    }
    hit
}

/// A known_hosts line in Ansible's normalized form: marker, host, type, key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    marker: Option<String>,
    host: String,
    kind: String,
    key: String,
}

fn normalize(line: &str) -> Option<Entry> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let (marker, rest) = match w.first() {
        Some(m) if m.starts_with('@') => (Some((*m).to_string()), &w[1..]),
        _ => (None, &w[..]),
    };
    match rest {
        [host, kind, key, ..] => Some(Entry {
            marker,
            host: (*host).to_string(),
            kind: (*kind).to_string(),
            key: (*key).to_string(),
        }),
        _ => None,
    }
}

/// The 1-based numbers of the lines that name `host`, as `ssh-keygen -F`.
fn host_lines(lines: &[String], host: &str) -> Vec<(usize, Entry)> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .filter_map(|(i, l)| normalize(l).map(|e| (i + 1, e)))
        .filter(|(_, e)| field_matches(&e.host, host))
        .collect()
}

/// A random `|1|salt|hash` host field for `host`.
fn hashed(host: &str) -> String {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    // Twenty bytes of salt from the clock, the process and a counter: it
    // needs to be unpredictable only as OpenSSH's is (not secret).
    let seed = format!(
        "{:?}{}{:p}",
        std::time::SystemTime::now(),
        std::process::id(),
        &host
    );
    let salt = Sha1::digest(seed.as_bytes()).to_vec();
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "|1|{}|{}",
        b64.encode(&salt),
        b64.encode(hmac_sha1(&salt, host.as_bytes()))
    )
}

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: KnownHosts::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// The key line to write: the user's, hashed when asked, one line.
fn key_line(p: &KnownHostsParams, host: &str) -> Result<Option<String>, ModuleError> {
    let Some(key) = p.key.as_deref().filter(|k| !k.trim().is_empty()) else {
        return Ok(None);
    };
    let entry = normalize(key).ok_or_else(|| invalid("key", "not a known_hosts line"))?;
    if host.contains(',') {
        return Err(ModuleError::failed(
            "Comma separated list of names is not supported. Please pass a single name to lookup in the known_hosts file.",
        ));
    }
    if !field_matches(&entry.host, host) {
        return Err(ModuleError::failed(
            "Host parameter does not match hashed host field in supplied key",
        ));
    }
    let mut words: Vec<String> = key.split_whitespace().map(str::to_string).collect();
    if p.hash_host {
        let i = usize::from(entry.marker.is_some());
        words[i] = hashed(host);
    }
    Ok(Some(format!("{}\n", words.join(" "))))
}

/// Ansible's search: `(found, replace_or_add, found_line)`.
fn search(lines: &[String], host: &str, key: Option<&str>) -> (bool, bool, Option<usize>) {
    let found = host_lines(lines, host);
    if found.is_empty() {
        return (false, false, None);
    }
    let Some(new) = key.and_then(normalize) else {
        return (true, false, None);
    };
    for (n, f) in &found {
        let mut new = new.clone();
        let plain = f.marker.is_none();
        if plain && new.host.starts_with("|1|") && f.host.starts_with("|1|") {
            new.host.clone_from(&f.host);
        }
        if new == *f {
            return (true, false, Some(*n));
        }
        if plain && new.kind == f.kind {
            return (true, true, Some(*n));
        }
    }
    (true, true, None)
}

impl Module for KnownHosts {
    const NAME: &'static str = "known_hosts";
    const DOC_SHORT: &'static str = "Add or remove a host's key in an SSH known_hosts file.";
    const DOC_LONG: &'static str = r##"Lines are matched as `ssh-keygen -F` matches them (patterns, `[host]:port`, hashed names), without needing `ssh-keygen` on the host. A different key of the same type replaces the old line; `state: absent` with a key removes the line of that key's type, without a key every line of the host. The file is written atomically; its directory must exist."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Trust the git server
  known_hosts:
    name: git.example.com
    key: "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheExample"
    hash_host: true
- name: Forget an old host
  known_hosts:
    name: old.example.com
    state: absent
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "the host"),
        ("key", "the key line given"),
        ("path", "the file"),
        ("hash_host", "whether the name was hashed"),
        ("state", "the state asked for"),
    ];
    type Params = KnownHostsParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let name = p.name.to_lowercase();
        if p.key.as_deref().is_none_or(|k| k.trim().is_empty()) && p.state == KnownState::Present {
            return Err(ModuleError::failed("No key specified when adding a host"));
        }
        let key = key_line(p, &name)?;
        let want = WantedAttrs::default();
        let setup = format!("p={}", quote_path(&p.path));
        let dest = textfile::probe(host, &setup, true, &want, Read::All, "")?;
        let before = dest.content.clone().unwrap_or_default();
        let lines: Vec<String> = lines_of(&before)
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let (found, replace, found_line) = search(&lines, &name, key.as_deref());
        let mut plan = Plan::default();
        let r = &mut plan.result;
        r.insert("name".into(), json!(p.name));
        r.insert("key".into(), json!(p.key));
        r.insert("path".into(), json!(p.path));
        r.insert("hash_host".into(), json!(p.hash_host));
        r.insert("state".into(), json!(p.state));
        // Ansible's check mode returns `changed` alone.
        plan.check_result = Some(Map::new());
        let present = p.state == KnownState::Present;
        if !replace && found == present {
            return Ok(plan);
        }
        if !present && found_line.is_none() && key.is_some() {
            return Ok(plan);
        }
        let mut out: Vec<String> = if !present && key.is_none() {
            // Every line of the host, as `ssh-keygen -R`.
            let gone: Vec<usize> = host_lines(&lines, &name).iter().map(|(n, _)| *n).collect();
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| !gone.contains(&(i + 1)))
                .map(|(_, l)| l.clone())
                .collect()
        } else {
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| !(found_line == Some(i + 1) && (replace || !present)))
                .map(|(_, l)| l.clone())
                .collect()
        };
        if present {
            if let Some(last) = out.last_mut() {
                if !last.ends_with('\n') {
                    last.push('\n');
                }
            }
            out.push(key.clone().unwrap_or_default());
        }
        let after = out.concat();
        if !dest.parent_exists {
            return Err(ModuleError::failed(format!(
                "Failed to write to file {}: [Errno 2] No such file or directory",
                p.path
            )));
        }
        let what = match (present, replace && found_line.is_some()) {
            (true, true) => "replace",
            (true, false) => "add",
            (false, _) => "remove",
        };
        plan.changes
            .push(format!("{what} the key of {} in {}", p.name, dest.path));
        plan.diffs.push(FileDiff {
            path: dest.path.clone(),
            before: String::from_utf8_lossy(&before).into_owned(),
            after: after.clone(),
        });
        plan.state = Edit::new(&dest, Some(after.as_bytes()), None).to_state();
        Ok(plan)
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let edit = Edit::from_state(Self::NAME, &plan.state)?;
        edit.apply(host, Self::NAME, &WantedAttrs::default(), false, None)?;
        let result: Map<String, Value> = plan.result;
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, host, path_in, plan};
    use crate::DynModule;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";

    fn file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "known_hosts");
        std::fs::write(&f, text).expect("write");
        (dir, f)
    }

    fn read(f: &str) -> String {
        std::fs::read_to_string(f).unwrap_or_default()
    }

    #[test]
    fn adds_replaces_and_leaves_identical_keys() {
        let (_d, f) = file(&format!("other ssh-rsa {RSA}\n"));
        let add = json!({"path": f, "name": "git.example.com", "key": format!("git.example.com ssh-ed25519 {ED}")});
        // The plan alone (check mode) changes nothing.
        let pl = plan(&KnownHosts, &add);
        assert_eq!(pl.changes.len(), 1);
        assert_eq!(read(&f), format!("other ssh-rsa {RSA}\n"));
        converge(&KnownHosts, &add);
        assert_eq!(
            read(&f),
            format!("other ssh-rsa {RSA}\ngit.example.com ssh-ed25519 {ED}\n")
        );
        // A new key of the same type replaces the old line (at the end).
        std::fs::write(
            &f,
            format!("git.example.com ssh-ed25519 {ED2}\nother ssh-rsa {RSA}\n"),
        )
        .expect("write");
        converge(&KnownHosts, &add);
        assert_eq!(
            read(&f),
            format!("other ssh-rsa {RSA}\ngit.example.com ssh-ed25519 {ED}\n")
        );
    }

    #[test]
    fn hashed_names_match_and_converge() {
        let (_d, f) = file("");
        let add = json!({"path": f, "host": "Db.Example.Com", "key": format!("db.example.com ssh-ed25519 {ED}"), "hash_host": true});
        converge(&KnownHosts, &add);
        let text = read(&f);
        assert!(
            text.starts_with("|1|") && text.ends_with(&format!(" ssh-ed25519 {ED}\n")),
            "{text}"
        );
        let field = text.split(' ').next().unwrap_or_default();
        assert!(field_matches(field, "db.example.com"));
        assert!(!field_matches(field, "db2.example.com"));
        // Absent without a key removes every line of the host, hashed too.
        let gone = json!({"path": f, "name": "db.example.com", "state": "absent"});
        converge(&KnownHosts, &gone);
        assert_eq!(read(&f), "");
    }

    #[test]
    fn patterns_ports_and_markers() {
        assert!(field_matches(
            "*.example.com,!bad.example.com",
            "a.example.com"
        ));
        assert!(!field_matches(
            "*.example.com,!bad.example.com",
            "bad.example.com"
        ));
        assert!(field_matches(
            "[git.example.com]:2222",
            "[git.example.com]:2222"
        ));
        assert!(!field_matches("git.example.com", "[git.example.com]:2222"));
        assert!(field_matches("h?st", "host"));
        // A known (OpenSSH-generated) hash of "example.com".
        let salt = [7u8; 20];
        let field = {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD;
            format!(
                "|1|{}|{}",
                b.encode(salt),
                b.encode(hmac_sha1(&salt, b"example.com"))
            )
        };
        assert!(field_matches(&field, "example.com"));
        // HMAC-SHA1 test vector (RFC 2202, case 2).
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn absent_with_a_key_and_errors() {
        let (_d, f) = file(&format!("h ssh-ed25519 {ED}\nh ssh-rsa {RSA}\n"));
        let gone = json!({"path": f, "name": "h", "key": format!("h ssh-ed25519 {ED}"), "state": "absent"});
        converge(&KnownHosts, &gone);
        assert_eq!(read(&f), format!("h ssh-rsa {RSA}\n"));
        let no_key = json!({"path": f, "name": "h"});
        let err = DynModule::plan(&KnownHosts, &no_key, &mut host()).expect_err("no key");
        assert_eq!(err.to_string(), "No key specified when adding a host");
        let wrong = json!({"path": f, "name": "h", "key": format!("other ssh-rsa {RSA}")});
        let err = DynModule::plan(&KnownHosts, &wrong, &mut host()).expect_err("mismatch");
        assert_eq!(
            err.to_string(),
            "Host parameter does not match hashed host field in supplied key"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let nodir = json!({"path": path_in(&dir, "none/known_hosts"), "name": "h", "key": format!("h ssh-rsa {RSA}")});
        assert!(DynModule::plan(&KnownHosts, &nodir, &mut host()).is_err());
    }
}
