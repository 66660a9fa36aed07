//! `deb822_repository`: an apt source in the deb822 format, one
//! `/etc/apt/sources.list.d/<name>.sources` file per repository.
//!
//! The file's content follows from the parameters alone, so the plan is one
//! read of the file and a byte comparison; apply writes it atomically
//! (`mode`, default 0644) or deletes it for `absent`.
//!
//! Differences from Ansible: `signed_by` takes a key (inline, ASCII
//! armored) or a path on the host, not a URL (fetch the key with
//! `get_url` first); the file name is `name` with every character other
//! than letters, digits, `.`, `_` and `-` replaced by `_`;
//! `install_python_debian` is accepted and ignored.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::params::{de_opt_bool, de_opt_mode, mode_str, Mode};
use crate::shell_quote::quote;
use crate::{FileDiff, Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum SourceState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `deb822_repository`: what `herd doc` shows, and what the parser takes.
pub struct Deb822Params {
    /// The source's name; the file is `/etc/apt/sources.list.d/<name>.sources` (characters
    /// other than letters, digits, `.`, `_`, `-` become `_`).
    pub name: String,
    /// `present`: the file exists with these fields; `absent`: it does not.
    #[serde(default)]
    pub state: SourceState,
    /// `deb` and/or `deb-src` (a string or a list).
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub types: Option<Value>,
    /// The repository URIs (a string or a list).
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub uris: Option<Value>,
    /// Suites (a string or a list), e.g. `bookworm`.
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub suites: Option<Value>,
    /// Components (a string or a list), e.g. `main`.
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub components: Option<Value>,
    /// Architectures (a string or a list).
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub architectures: Option<Value>,
    /// Languages (a string or a list).
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub languages: Option<Value>,
    /// Targets (a string or a list).
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub targets: Option<Value>,
    /// The signing key: an inline ASCII-armored key or a path on the host (not a URL).
    pub signed_by: Option<String>,
    /// Writes `Enabled:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub enabled: Option<bool>,
    /// Writes `Trusted:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub trusted: Option<bool>,
    /// Writes `Allow-Insecure:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub allow_insecure: Option<bool>,
    /// Writes `Allow-Weak:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub allow_weak: Option<bool>,
    /// Writes `Allow-Downgrade-To-Insecure:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub allow_downgrade_to_insecure: Option<bool>,
    /// Writes `By-Hash:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub by_hash: Option<bool>,
    /// Writes `Check-Date:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub check_date: Option<bool>,
    /// Writes `Check-Valid-Until:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub check_valid_until: Option<bool>,
    /// Writes `Date-Max-Future:`.
    pub date_max: Option<Value>,
    /// Writes `Valid-Until-Max:`.
    pub valid_until_max: Option<Value>,
    /// Writes `InRelease-Path:`.
    pub inrelease_path: Option<String>,
    /// Writes `PDiffs:`.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub pdiffs: Option<bool>,
    /// The file's permissions (default 0644).
    #[serde(default, deserialize_with = "de_opt_mode")]
    pub mode: Option<Mode>,
    /// Accepted and ignored (nothing needs Python).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub install_python_debian: Option<bool>,
}

/// The `deb822_repository` module.
pub struct Deb822Repository;

const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Deb822Repository::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// A list parameter as words: a list, or a string of space-separated words.
fn words(field: &str, v: Option<&Value>) -> Result<Vec<String>, ModuleError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(invalid(field, "expected strings")),
            })
            .collect(),
        Some(_) => Err(invalid(field, "expected a list or a string")),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The file name for a source called `name`: characters other than letters, digits, `.`, `_`,
/// `-` become `_`.
pub fn file_name(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{SOURCES_DIR}/{n}.sources")
}

/// The `.sources` file for the parameters, fields in Ansible's order.
pub fn render(p: &Deb822Params) -> Result<String, ModuleError> {
    let mut out = format!("X-Repolib-Name: {}\n", p.name);
    let mut types = words("types", p.types.as_ref())?;
    if types.is_empty() {
        types.push("deb".into());
    }
    if let Some(t) = types
        .iter()
        .find(|t| !matches!(t.as_str(), "deb" | "deb-src"))
    {
        return Err(invalid("types", format!("{t} is not deb or deb-src")));
    }
    let mut field = |k: &str, v: String| {
        if v.contains('\n') {
            out.push_str(&format!("{k}:"));
            for line in v.lines() {
                out.push_str(if line.trim().is_empty() {
                    "\n ."
                } else {
                    "\n "
                });
                out.push_str(line.trim_end());
            }
            out.push('\n');
        } else {
            out.push_str(&format!("{k}: {v}\n"));
        }
    };
    field("Types", types.join(" "));
    for (k, name, v) in [
        ("URIs", "uris", &p.uris),
        ("Suites", "suites", &p.suites),
        ("Components", "components", &p.components),
        ("Architectures", "architectures", &p.architectures),
        ("Languages", "languages", &p.languages),
        ("Targets", "targets", &p.targets),
    ] {
        let w = words(name, v.as_ref())?;
        if !w.is_empty() {
            field(k, w.join(" "));
        }
    }
    if let Some(s) = &p.signed_by {
        if s.contains("://") {
            return Err(invalid(
                "signed_by",
                "a key URL is not supported; fetch the key with get_url and give its path",
            ));
        }
        field("Signed-By", s.trim_end().to_string());
    }
    for (k, v) in [
        ("Allow-Downgrade-To-Insecure", p.allow_downgrade_to_insecure),
        ("Allow-Insecure", p.allow_insecure),
        ("Allow-Weak", p.allow_weak),
        ("By-Hash", p.by_hash),
        ("Check-Date", p.check_date),
        ("Check-Valid-Until", p.check_valid_until),
        ("Enabled", p.enabled),
        ("PDiffs", p.pdiffs),
        ("Trusted", p.trusted),
    ] {
        if let Some(b) = v {
            field(k, yes_no(b).into());
        }
    }
    for (k, v) in [
        ("Date-Max", &p.date_max),
        ("Valid-Until-Max", &p.valid_until_max),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_null()) {
            field(
                k,
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            );
        }
    }
    if let Some(i) = &p.inrelease_path {
        field("InRelease-Path", i.clone());
    }
    Ok(out)
}

impl Module for Deb822Repository {
    const NAME: &'static str = "deb822_repository";
    const DOC_SHORT: &'static str = "Write an apt source in the deb822 format (`.sources`).";
    const DOC_EXAMPLE: &'static str = r##"- deb822_repository:
    name: docker
    types: deb
    uris: https://download.docker.com/linux/debian
    suites: bookworm
    components: stable
    signed_by: /etc/apt/keyrings/docker.asc
"##;
    type Params = Deb822Params;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let path = file_name(&p.name);
        let current = host.read_file(&path)?;
        let mut plan = Plan::default();
        let mut result = Map::new();
        result.insert("dest".into(), json!(path));
        match p.state {
            SourceState::Present => {
                if words("uris", p.uris.as_ref())?.is_empty()
                    || words("suites", p.suites.as_ref())?.is_empty()
                {
                    return Err(ModuleError::failed(
                        "uris and suites are required with state=present",
                    ));
                }
                let text = render(p)?;
                result.insert("repo".into(), json!(text));
                if current.as_deref() != Some(text.as_bytes()) {
                    plan.changes.push(format!("write {path}"));
                    plan.diffs.push(FileDiff {
                        path: path.clone(),
                        before: current
                            .as_deref()
                            .map(|c| String::from_utf8_lossy(c).into_owned())
                            .unwrap_or_default(),
                        after: text,
                    });
                }
            }
            SourceState::Absent => {
                if let Some(c) = current {
                    plan.changes.push(format!("remove {path}"));
                    plan.diffs.push(FileDiff {
                        path: path.clone(),
                        before: String::from_utf8_lossy(&c).into_owned(),
                        after: String::new(),
                    });
                }
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
        let path = file_name(&p.name);
        match p.state {
            SourceState::Present => {
                let mode = match &p.mode {
                    Some(Mode::Octal(m)) => mode_str(*m),
                    Some(Mode::Symbolic(s)) => crate::params::symbolic_for_chmod(s),
                    _ => "0644".into(),
                };
                let attrs = FileAttrs {
                    mode: Some(mode),
                    ..FileAttrs::default()
                };
                host.write_file(&path, render(p)?.as_bytes(), &attrs)?;
            }
            SourceState::Absent => crate::textfile::run_checked(
                host,
                "remove source file",
                &format!("rm -f -- {}", quote(&path)),
            )?,
        }
        Ok(Outcome::changed(plan.result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_deb822() {
        let p: Deb822Params = crate::module::parse_params(
            "deb822_repository",
            &json!({
                "name": "docker ce",
                "uris": "https://download.docker.com/linux/debian",
                "suites": ["bookworm"],
                "components": "stable",
                "trusted": "yes",
                "signed_by": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n",
            }),
        )
        .expect("params");
        assert_eq!(
            file_name(&p.name),
            "/etc/apt/sources.list.d/docker_ce.sources"
        );
        assert_eq!(
            render(&p).expect("render"),
            "X-Repolib-Name: docker ce\nTypes: deb\nURIs: https://download.docker.com/linux/debian\n\
             Suites: bookworm\nComponents: stable\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n \
             -----END PGP PUBLIC KEY BLOCK-----\nTrusted: yes\n"
        );
    }
}
