//! `apt_key`: install or remove an apt signing key as a keyring file.
//!
//! `apt-key` is deprecated and gnupg is often missing (it is on the fleet),
//! so keys are files: the key (from `data`, a host `file`, or a `url`
//! fetched on the host with curl or wget) is written to `keyring`, or to
//! `/etc/apt/trusted.gpg.d/<id>.asc` (`.gpg` for a binary key), where apt
//! reads it. The plan reads the key and the current file in one trip (two
//! with a `url`) and compares their bytes, so a second run changes nothing.
//! `absent` deletes the keyring file (given `keyring`) or the
//! `trusted.gpg.d` file named after `id`.
//!
//! Differences from Ansible: keys are never added to the legacy
//! `/etc/apt/trusted.gpg` and `id` is not checked against the key's
//! fingerprint (that needs gpg); `keyserver` is not supported; without
//! `id`, the file is named after the key's sha1.

use serde::Deserialize;
use serde_json::{json, Map};

use crate::host::FileAttrs;
use crate::http::{fetch_script, Request, NO_CLIENT_RC};
use crate::params::de_opt_bool;
use crate::probe::tagged;
use crate::shell_quote::{quote, quote_path};
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
/// The parameters of `apt_key`: what `herd doc` shows, and what the parser takes.
pub struct AptKeyParams {
    /// The key's id; with `state: absent`, the key to remove. Not checked against the key's
    /// content (no gpg).
    #[serde(default, deserialize_with = "de_key_id")]
    pub id: Option<String>,
    /// Fetch the key from this URL (on the host, with curl or wget).
    pub url: Option<String>,
    /// Read the key from this file on the host.
    pub file: Option<String>,
    /// The key itself (ASCII-armored or binary).
    pub data: Option<String>,
    /// The keyring file to write (default `/etc/apt/trusted.gpg.d/<id>.asc` or `.gpg`).
    pub keyring: Option<String>,
    /// Not supported (an error when set).
    pub keyserver: Option<String>,
    /// `present`: the keyring file exists; `absent`: it does not.
    #[serde(default)]
    pub state: KeyState,
    /// Verify the TLS certificate when fetching `url`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub validate_certs: Option<bool>,
}

/// The `apt_key` module.
pub struct AptKey;

/// YAML reads an unquoted `0xB0B0B0B0` as a number: take it back as hex.
fn de_key_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(|n| Some(format!("{n:X}")))
            .ok_or_else(|| serde::de::Error::custom("expected a key id")),
        _ => Err(serde::de::Error::custom("expected a key id")),
    }
}

const TRUSTED_DIR: &str = "/etc/apt/trusted.gpg.d";

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: AptKey::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

fn is_armored(key: &[u8]) -> bool {
    String::from_utf8_lossy(&key[..key.len().min(200)])
        .trim_start()
        .starts_with("-----BEGIN PGP")
}

/// A key id that is not hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a hexadecimal key id")]
pub struct BadKeyId(pub String);

/// An id as Ansible takes it: hex, maybe `0x`-prefixed, compared upper-case.
pub fn clean_id(id: &str) -> Result<String, BadKeyId> {
    let id = id.trim();
    let id = id
        .strip_prefix("0x")
        .or_else(|| id.strip_prefix("0X"))
        .unwrap_or(id);
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadKeyId(id.to_string()));
    }
    Ok(id.to_ascii_uppercase())
}

/// Where the key goes for `present`, given its bytes.
fn target(p: &AptKeyParams, key: &[u8]) -> Result<String, ModuleError> {
    if let Some(k) = &p.keyring {
        return Ok(k.clone());
    }
    let ext = if is_armored(key) { "asc" } else { "gpg" };
    let name = match &p.id {
        Some(id) => clean_id(id).map_err(|e| invalid("id", e.to_string()))?,
        None => crate::textfile::sha1_hex(key)[..16].to_string(),
    };
    Ok(format!("{TRUSTED_DIR}/{name}.{ext}"))
}

const KEY_MARK: &str = "--herd-key--";

impl AptKey {
    /// The key's bytes: from `data`, or read/fetched on the host.
    fn key(p: &AptKeyParams, host: &mut dyn Host) -> Result<Vec<u8>, ModuleError> {
        if let Some(d) = &p.data {
            return Ok(d.clone().into_bytes());
        }
        if let Some(f) = &p.file {
            return host
                .read_file(f)?
                .ok_or_else(|| ModuleError::failed(format!("key file {f} does not exist")));
        }
        let Some(url) = &p.url else {
            return Err(ModuleError::failed(
                "one of data, file or url is required with state=present (keyserver is not supported)",
            ));
        };
        let req = Request {
            url: url.clone(),
            method: "GET".into(),
            timeout: 30,
            validate_certs: p.validate_certs.unwrap_or(true),
            follow_redirects: true,
            ..Request::default()
        };
        let (s, stdin) = fetch_script(&req, "\"$o\"")?;
        let script = format!(
            "o=$(mktemp) || exit 1\n{s}echo \"FETCH $rc $code\"; echo {KEY_MARK}; cat \"$o\"\n"
        );
        let out = host.run(&script, Some(&stdin))?;
        if out.rc == NO_CLIENT_RC {
            return Err(crate::http::no_client_error(Self::NAME));
        }
        let mark = format!("{KEY_MARK}\n");
        let i = out
            .stdout
            .windows(mark.len())
            .position(|w| w == mark.as_bytes())
            .ok_or_else(|| ModuleError::failed(format!("failed to fetch {url}")))?;
        let head = String::from_utf8_lossy(&out.stdout[..i]).into_owned();
        let status = tagged(&head, "FETCH").unwrap_or("");
        let ok = status == "0 200" || (status.starts_with("0 2") && status.len() == 5);
        if !ok {
            return Err(ModuleError::failed(format!(
                "Failed to download key at {url}: {status} {}",
                out.stderr_str().trim_end()
            )));
        }
        Ok(out.stdout[i + mark.len()..].to_vec())
    }
}

impl Module for AptKey {
    const NAME: &'static str = "apt_key";
    const DOC_SHORT: &'static str = "Add or remove an apt signing key as a keyring file.";
    const DOC_LONG: &'static str =
        r##"Keys are written as their own keyring files, never into the legacy `trusted.gpg`."##;
    const DOC_EXAMPLE: &'static str = r##"- apt_key:
    url: https://packages.example.com/key.asc
    keyring: /etc/apt/keyrings/example.asc
"##;
    type Params = AptKeyParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.keyserver.is_some() {
            return Err(invalid(
                "keyserver",
                "keyservers are not supported; use url or data",
            ));
        }
        if let Some(id) = &p.id {
            clean_id(id).map_err(|e| invalid("id", e.to_string()))?;
        }
        let mut plan = Plan::default();
        let mut result = Map::new();
        match p.state {
            KeyState::Present => {
                let key = Self::key(p, host)?;
                if key.is_empty() {
                    return Err(ModuleError::failed("the key is empty"));
                }
                let path = target(p, &key)?;
                let current = host.read_file(&path)?;
                if current.as_deref() != Some(key.as_slice()) {
                    plan.changes.push(format!("write key to {path}"));
                }
                result.insert("keyring".into(), json!(path));
                plan.state = json!({"path": path, "key_sha1": crate::textfile::sha1_hex(&key)});
            }
            KeyState::Absent => {
                let paths: Vec<String> = match (&p.keyring, &p.id) {
                    (Some(k), _) => vec![k.clone()],
                    (None, Some(id)) => {
                        let id = clean_id(id).map_err(|e| invalid("id", e.to_string()))?;
                        vec![
                            format!("{TRUSTED_DIR}/{id}.asc"),
                            format!("{TRUSTED_DIR}/{id}.gpg"),
                        ]
                    }
                    (None, None) => {
                        return Err(ModuleError::failed(
                            "id or keyring is required with state=absent",
                        ))
                    }
                };
                let script: String = paths
                    .iter()
                    .map(|f| format!("[ -e {0} ] && echo \"EXISTS {f}\"\n", quote_path(f)))
                    .collect();
                let out = host.run(&format!("{script}exit 0\n"), None)?;
                let text = out.stdout_str();
                let existing: Vec<String> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("EXISTS "))
                    .map(str::to_string)
                    .collect();
                plan.changes
                    .extend(existing.iter().map(|f| format!("remove {f}")));
                plan.state = json!({"remove": existing});
            }
        }
        plan.result = result;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        match p.state {
            KeyState::Present => {
                let key = Self::key(p, host)?;
                let path = target(p, &key)?;
                // The key fetched again must be the one the plan saw.
                let planned = plan.state.get("key_sha1").and_then(|v| v.as_str());
                if planned.is_some_and(|s| s != crate::textfile::sha1_hex(&key)) {
                    return Err(ModuleError::failed(
                        "the key changed between plan and apply",
                    ));
                }
                let dir = path.rsplit_once('/').map_or(".", |(d, _)| d).to_string();
                crate::textfile::run_checked(
                    host,
                    "create keyring directory",
                    &format!(
                        "mkdir -p -m 0755 -- {}",
                        quote(if dir.is_empty() { "/" } else { &dir })
                    ),
                )?;
                let attrs = FileAttrs::with_mode("0644");
                host.write_file(&path, &key, &attrs)?;
            }
            KeyState::Absent => {
                let files: Vec<String> = plan
                    .state
                    .get("remove")
                    .cloned()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                let words: Vec<String> = files.iter().map(|f| quote_path(f)).collect();
                crate::textfile::run_checked(
                    host,
                    "remove key",
                    &format!("rm -f -- {}", words.join(" ")),
                )?;
            }
        }
        Ok(Outcome::changed(plan.result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, path_in, plan};

    #[test]
    fn ids_and_targets() {
        assert_eq!(clean_id("0xabcd1234"), Ok("ABCD1234".into()));
        assert!(clean_id("xyz").is_err());
        let p: AptKeyParams =
            crate::module::parse_params("apt_key", &json!({"id": 0xB0B0, "state": "absent"}))
                .expect("p");
        assert_eq!(p.id.as_deref(), Some("B0B0"));
        let p: AptKeyParams =
            crate::module::parse_params("apt_key", &json!({"id": "0xA1", "data": "x"})).expect("p");
        assert_eq!(
            target(&p, b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
                .ok()
                .as_deref(),
            Some("/etc/apt/trusted.gpg.d/A1.asc")
        );
    }

    #[test]
    fn writes_a_keyring_once_and_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = path_in(&dir, "keys/k.asc");
        let key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n";
        converge(&AptKey, &json!({"data": key, "keyring": ring}));
        assert_eq!(std::fs::read_to_string(&ring).ok().as_deref(), Some(key));
        let absent = json!({"keyring": ring, "state": "absent"});
        converge(&AptKey, &absent);
        assert!(plan(&AptKey, &absent).is_empty());
    }
}
