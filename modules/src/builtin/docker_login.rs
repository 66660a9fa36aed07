//! `docker_login` (`community.docker.docker_login`): the host's docker CLI
//! logged in to (or out of) a registry.
//!
//! The plan reads the docker config file (one round trip) and compares the
//! stored `auths` entry with the task's credentials, so a second run with
//! the same ones changes nothing; `reauthorize` logs in every run. Apply
//! checks the credentials with `docker login --password-stdin` (the
//! password goes on standard input, never on a command line) against a
//! throwaway config directory, then writes the config file itself as the
//! collection does: the file named by `config_path` (not a `config.json`
//! beside it), keys sorted, four-space indentation, mode 0600. Logging out
//! removes the entry from the file.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::docker_common::docker;
use super::docker_network::NetworkState;
use crate::params::de_bool;
use crate::shell_quote::{quote, quote_path};
use crate::{Host, HostError, Module, ModuleError, Outcome, ParamError, Plan};

const HUB: &str = "https://index.docker.io/v1/";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_login`.
pub struct DockerLoginParams {
    /// The registry; Docker Hub when not given.
    #[serde(alias = "registry", alias = "url")]
    pub registry_url: Option<String>,
    /// The user name; needed with `state: present`.
    pub username: Option<String>,
    /// The password or token; needed with `state: present`.
    pub password: Option<String>,
    /// Log in even when the stored credentials match.
    #[serde(default, alias = "reauth", deserialize_with = "de_bool")]
    pub reauthorize: bool,
    /// The docker config file on the host.
    #[serde(alias = "dockercfg_path")]
    pub config_path: Option<String>,
    /// `present` logs in, `absent` logs out.
    #[serde(default)]
    pub state: NetworkState,
}

/// The `docker_login` module.
pub struct DockerLogin;

impl DockerLoginParams {
    /// The key docker keeps the registry's credentials under.
    fn server(&self) -> String {
        match self.registry_url.as_deref() {
            None => HUB.to_string(),
            Some(u) if u.contains("index.docker.io") || u == "docker.io" => HUB.to_string(),
            Some(u) => u
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        }
    }
    fn config(&self) -> String {
        self.config_path
            .clone()
            .unwrap_or_else(|| "~/.docker/config.json".into())
    }
}

fn missing(field: &str) -> ModuleError {
    ModuleError::Params(ParamError::Missing {
        module: DockerLogin::NAME,
        field: field.into(),
    })
}

/// The stored `auths` entry's `auth` for `server`, if any.
fn stored_auth(config: &str, server: &str) -> Option<String> {
    let v: Value = serde_json::from_str(config).ok()?;
    let auths = v.get("auths")?;
    let entry = auths.get(server).or_else(|| {
        auths
            .as_object()?
            .iter()
            .find(|(k, _)| {
                k.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    == server
            })
            .map(|(_, e)| e)
    })?;
    Some(
        entry
            .get("auth")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

fn read_config(p: &DockerLoginParams, host: &mut dyn Host) -> Result<Option<String>, ModuleError> {
    let path = quote_path(&p.config());
    let out = host.run(
        &format!("if [ -e {path} ]; then cat {path}; else exit 66; fi"),
        None,
    )?;
    match out.rc {
        0 => Ok(Some(out.stdout_str())),
        66 => Ok(None),
        rc => Err(HostError::Command {
            action: "read the docker config",
            rc,
            stderr: out.stderr_str(),
        }
        .into()),
    }
}

impl Module for DockerLogin {
    const NAME: &'static str = "docker_login";
    const DOC_SHORT: &'static str = "Log the host's docker in to a registry, or out.";
    const DOC_LONG: &'static str = r##"Uses the host's `docker` CLI. The credentials stored in the docker config
file (`~/.docker/config.json` of the user the task runs as, or
`config_path`) are compared with the task's: the same ones are no change
unless `reauthorize: true`. The password reaches `docker login` on standard
input. Credentials kept by a credential helper are not read, so such a host
logs in every run."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_login:
    registry_url: registry.example.com:5000
    username: deploy
    password: "{{ registry_password }}"
  no_log: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "login_result",
        "`IdentityToken` and `Status` of a login; `serveraddress` and `username` when the stored credentials matched (never the password).",
    )];
    type Params = DockerLoginParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let server = p.server();
        let config = read_config(p, host)?;
        let stored = config.as_deref().and_then(|c| stored_auth(c, &server));
        // Apply rewrites the file from what was read here.
        let mut plan = Plan {
            state: json!({ "config": config }),
            ..Plan::default()
        };
        if p.state == NetworkState::Absent {
            if stored.is_some() {
                plan.changes.push(format!("log out of {server}"));
            }
            return Ok(plan);
        }
        let user = p.username.as_deref().ok_or_else(|| missing("username"))?;
        let pass = p.password.as_deref().ok_or_else(|| missing("password"))?;
        let want = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        if p.reauthorize || stored.as_deref() != Some(want.as_str()) {
            plan.changes.push(format!("log in to {server} as {user}"));
        }
        plan.result.insert(
            "login_result".into(),
            json!({"serveraddress": server, "username": user}),
        );
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let server = p.server();
        let mut result: Map<String, Value> = plan.result;
        let old = plan
            .state
            .get("config")
            .and_then(Value::as_str)
            .map(str::to_string);
        let auth = if p.state == NetworkState::Absent {
            None
        } else {
            let user = p.username.as_deref().ok_or_else(|| missing("username"))?;
            let pass = p.password.as_deref().ok_or_else(|| missing("password"))?;
            // The registry checks the credentials: `docker login` with a
            // config directory of its own, thrown away; the task's file is
            // written below, as the collection writes it.
            let mut login = docker(&["--config", "\"$d\"", "login", "--username"]);
            login.push(quote(user));
            login.extend(["--password-stdin".into(), quote(&server)]);
            let script = format!(
                "d=$(mktemp -d) || exit 1\n{} >/dev/null; rc=$?\nrm -rf \"$d\"\nexit $rc\n",
                login.join(" ")
            );
            let out = host.run(&script, Some(pass.as_bytes()))?;
            if !out.success() {
                return Err(ModuleError::failed(format!(
                    "Logging into {server} for user {user} failed - {}",
                    out.stderr_str().trim_end()
                )));
            }
            result.insert(
                "login_result".into(),
                json!({"IdentityToken": "", "Status": "Login Succeeded"}),
            );
            Some(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
        };
        let text = config_text(old.as_deref(), &server, auth);
        let path = quote_path(&p.config());
        let out = host.run(
            &format!(
                "set -e\nf={path}\nmkdir -p \"$(dirname -- \"$f\")\"\n\
                 t=$(mktemp \"$f.XXXXXX\")\ncat > \"$t\"\nchmod 0600 \"$t\"\nmv -f \"$t\" \"$f\"\n"
            ),
            Some(text.as_bytes()),
        )?;
        if !out.success() {
            return Err(HostError::Command {
                action: "write the docker config",
                rc: out.rc,
                stderr: out.stderr_str(),
            }
            .into());
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

/// The docker config with `server`'s `auths` entry set to `auth` (or
/// removed), as the collection writes it: what was there (an unreadable
/// file counts as empty) with `auths` always present, keys sorted,
/// indented by four spaces, no final newline.
fn config_text(old: Option<&str>, server: &str, auth: Option<String>) -> String {
    let mut config = match old.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Value::Object(auths) = auths {
        match auth {
            Some(a) => {
                auths.insert(server.to_string(), json!({ "auth": a }));
            }
            None => {
                auths.shift_remove(server);
            }
        }
    }
    let sorted = sorted_keys(Value::Object(config));
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a Value into memory cannot fail.
    let _ = serde::Serialize::serialize(&sorted, &mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

fn sorted_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHost, Match};
    use crate::DynModule;

    fn host_with(config: Option<&str>) -> FakeHost<()> {
        match config {
            Some(c) => FakeHost::new().answer(Match::contains("then cat"), 0, c, ""),
            None => FakeHost::new().answer(Match::contains("then cat"), 66, "", ""),
        }
        .answer(Match::contains("docker"), 0, "Login Succeeded\n", "")
    }

    #[test]
    fn the_same_credentials_are_no_change() {
        let auth = base64::engine::general_purpose::STANDARD.encode("deploy:s3cret");
        let config = format!(r#"{{"auths": {{"localhost:5000": {{"auth": "{auth}"}}}}}}"#);
        let p = json!({"registry_url": "http://localhost:5000/", "username": "deploy", "password": "s3cret"});
        let mut h = host_with(Some(&config));
        assert!(DynModule::plan(&DockerLogin, &p, &mut h)
            .expect("plan")
            .is_empty());
        let mut again = p.clone();
        again["reauthorize"] = json!(true);
        assert_eq!(
            DynModule::plan(&DockerLogin, &again, &mut h)
                .expect("plan")
                .changes
                .len(),
            1
        );
    }

    #[test]
    fn a_login_sends_the_password_on_stdin_only() {
        let p = json!({"registry": "localhost:5000", "username": "deploy", "password": "s3cret"});
        let mut h = host_with(None);
        let plan = DynModule::plan(&DockerLogin, &p, &mut h).expect("plan");
        assert_eq!(plan.changes, ["log in to localhost:5000 as deploy"]);
        let out = DynModule::apply(&DockerLogin, &p, plan, &mut h).expect("apply");
        assert!(out.changed);
        let at = h
            .scripts
            .iter()
            .position(|s| s.contains("login"))
            .expect("login");
        let login = &h.scripts[at];
        assert!(login.contains("--password-stdin localhost:5000"), "{login}");
        assert!(h.scripts.iter().all(|s| !s.contains("s3cret")));
        assert_eq!(h.inputs[at].as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(out.result["login_result"]["Status"], "Login Succeeded");
        // The file is written as the collection writes it.
        let written = h.inputs.last().and_then(Clone::clone).unwrap_or_default();
        let auth = base64::engine::general_purpose::STANDARD.encode("deploy:s3cret");
        assert_eq!(
            String::from_utf8_lossy(&written),
            format!("{{\n    \"auths\": {{\n        \"localhost:5000\": {{\n            \"auth\": \"{auth}\"\n        }}\n    }}\n}}")
        );
    }

    #[test]
    fn logout_keeps_the_other_entries_sorted() {
        let text = config_text(
            Some(r#"{"psFormat": "x", "auths": {"b": {"auth": "B"}, "a": {"auth": "A"}}}"#),
            "b",
            None,
        );
        assert_eq!(
            text,
            "{\n    \"auths\": {\n        \"a\": {\n            \"auth\": \"A\"\n        }\n    },\n    \"psFormat\": \"x\"\n}"
        );
        assert_eq!(
            config_text(Some("not json"), "b", None),
            "{\n    \"auths\": {}\n}"
        );
    }

    #[test]
    fn logout_only_when_logged_in_and_present_needs_credentials() {
        let mut h = host_with(None);
        let p = json!({"registry_url": "localhost:5000", "state": "absent"});
        assert!(DynModule::plan(&DockerLogin, &p, &mut h)
            .expect("plan")
            .is_empty());
        let err = DynModule::plan(&DockerLogin, &json!({"username": "u"}), &mut h)
            .expect_err("no password");
        assert!(err.to_string().contains("password"), "{err}");
    }
}
