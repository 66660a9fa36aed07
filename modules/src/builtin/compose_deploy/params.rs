//! The parameters of `compose_deploy`: their enums and structs, the
//! deserializers of `files` and `env`, and the checks across them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::params::{de_bool, de_opt_f64, de_opt_u64};
use crate::ModuleError;

use super::invalid;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// When `compose_deploy` pulls images.
pub enum Pull {
    /// Pull every run.
    Always,
    #[default]
    /// Pull images the host lacks.
    Missing,
    /// Never pull; a missing image fails the plan.
    Never,
}

impl Pull {
    pub(super) fn word(self) -> &'static str {
        match self {
            Pull::Always => "always",
            Pull::Missing => "missing",
            Pull::Never => "never",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum DeployState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
    /// Restart the live project when nothing else changed.
    Restarted,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
/// How a new version replaces the old one.
pub enum Strategy {
    #[default]
    /// Update the project in place.
    Recreate,
    /// Start the idle color, gate it, switch, stop the old color.
    BlueGreen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// One of the two copies of a blue-green project.
pub enum Color {
    /// The blue copy of the project.
    Blue,
    /// The green copy of the project.
    Green,
}

impl Color {
    pub(super) fn word(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
    pub(super) fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
    pub(super) fn tag(self) -> &'static str {
        match self {
            Color::Blue => "B",
            Color::Green => "G",
        }
    }
}

/// A compose file as the engine passes it: its name in `dir` and its text.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderedFile {
    /// The file's name in `dir`.
    pub name: String,
    /// Its rendered content.
    pub content: String,
    /// The controller path, for messages.
    #[serde(default)]
    pub src: Option<String>,
}

/// The health gate: an HTTP status and/or every container healthy.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Fetched on the host; `${VAR}` is replaced from the project's env.
    pub url: Option<String>,
    /// The HTTP status `url` must answer with (default 200).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub status: Option<u64>,
    /// Every container of the project running, and healthy when it has a
    /// healthcheck.
    #[serde(default, deserialize_with = "de_bool")]
    pub containers: bool,
    /// Checks before the gate fails (default 30).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub retries: Option<u64>,
    /// Seconds between checks (default 1).
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub delay: Option<f64>,
    /// Seconds one HTTP request may take.
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub timeout: Option<f64>,
}

/// How traffic moves to the new color.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// Written (atomically) with `blue` or `green` text.
    pub file: Option<String>,
    /// The text `file` gets when blue goes live.
    pub blue: Option<String>,
    /// The text `file` gets when green goes live.
    pub green: Option<String>,
    /// Run after the file is written, with DEPLOY_COLOR and DEPLOY_PROJECT.
    pub command: Option<String>,
    /// Seconds between the switch and stopping the old color.
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub drain: Option<f64>,
}

impl Switch {
    pub(super) fn text(&self, c: Color) -> Option<&str> {
        match c {
            Color::Blue => self.blue.as_deref(),
            Color::Green => self.green.as_deref(),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `compose_deploy`: what `herd doc` shows, and what the parser takes.
pub struct ComposeDeployParams {
    /// The compose project name.
    pub project: String,
    /// The project directory on the host; the files, `.env` and the manifest `.herd-compose` go
    /// there.
    pub dir: String,
    /// Compose files on the controller (a path or a list). Each lands in `dir` under its base
    /// name; a `.j2` file is rendered as a template first and loses the `.j2` (compose's own
    /// `${VAR}` passes through).
    #[serde(default, deserialize_with = "de_names")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub files: Vec<String>,
    /// Set by the engine: the `files`, read (and rendered) on the controller.
    #[serde(default, rename = "_files")]
    pub rendered: Option<Vec<RenderedFile>>,
    /// Variables written to the project's `.env` (mode 0600); values may not contain `'` or a
    /// newline.
    #[serde(default, deserialize_with = "de_env")]
    pub env: BTreeMap<String, String>,
    /// `always`: pull every run (always a planned change); `missing`: pull images the host
    /// lacks; `never`: fail when the host lacks an image.
    #[serde(default)]
    pub pull: Pull,
    /// `present`: deployed and up; `absent`: `docker compose down` (volumes kept) and the files
    /// removed; `restarted`: restart the live project when nothing else changed.
    #[serde(default)]
    pub state: DeployState,
    /// Remove containers of services no longer in the files (`--remove-orphans`).
    #[serde(default, deserialize_with = "de_bool")]
    pub remove_orphans: bool,
    /// The health gate run after a change; when it fails the previous version is brought back
    /// and the task fails.
    #[serde(default)]
    pub health: Option<Health>,
    /// `recreate`: update in place; `blue_green`: start the new version as the idle color, gate
    /// it, switch, stop the old color.
    #[serde(default)]
    pub strategy: Strategy,
    /// Per-color env added to `env` (ports, say) with `blue_green`.
    #[serde(default)]
    pub colors: Option<Colors>,
    /// How traffic moves to the new color with `blue_green`.
    #[serde(default)]
    pub switch: Option<Switch>,
    /// Run `docker image prune -f` after a deploy (dangling images only).
    #[serde(default, deserialize_with = "de_bool")]
    pub prune: bool,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// Per-color env for `blue_green`.
pub struct Colors {
    /// Env for the blue color.
    #[serde(default, deserialize_with = "de_env")]
    pub blue: BTreeMap<String, String>,
    /// Env for the green color.
    #[serde(default, deserialize_with = "de_env")]
    pub green: BTreeMap<String, String>,
}

/// A list of names, or one name.
fn de_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(serde::de::Error::custom(format!(
                    "expected a file name, got {other}"
                ))),
            })
            .collect(),
        _ => Err(serde::de::Error::custom("expected a list of file names")),
    }
}

/// A mapping of variable names to scalars, as `.env` holds them.
fn de_env<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = match Value::deserialize(d)? {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(m) => m,
        _ => {
            return Err(serde::de::Error::custom(
                "expected a mapping of variable names to values",
            ))
        }
    };
    map.into_iter()
        .map(|(k, v)| {
            if !valid_var(&k) {
                return Err(serde::de::Error::custom(format!(
                    "`{k}` is not a variable name (letters, digits, `_`)"
                )));
            }
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "the value of `{k}` must be a string or a number"
                    )))
                }
            };
            if v.contains(['\n', '\r', '\'']) {
                return Err(serde::de::Error::custom(format!(
                    "the value of `{k}` must be one line without `'`"
                )));
            }
            Ok((k, v))
        })
        .collect()
}

fn valid_var(k: &str) -> bool {
    let mut b = k.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

pub(super) fn check_params(p: &ComposeDeployParams) -> Result<(), ModuleError> {
    // Compose's own rule for project names.
    let ok = p.project.bytes().enumerate().all(|(i, b)| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b"_-".contains(&b))
    });
    if p.project.is_empty() || !ok {
        return Err(invalid(
            "project",
            "must be lowercase letters, digits, `_` or `-`, starting with a letter or digit",
        ));
    }
    if !p.dir.starts_with('/') || p.dir.split('/').any(|s| s == "..") || p.dir == "/" {
        return Err(invalid("dir", "must be an absolute path below `/`"));
    }
    if p.strategy == Strategy::BlueGreen {
        let Some(sw) = &p.switch else {
            return Err(invalid(
                "switch",
                "blue_green needs a `switch` (a file with `blue`/`green` text, or a command)",
            ));
        };
        if sw.file.is_none() && sw.command.is_none() {
            return Err(invalid(
                "switch",
                "give `file` (with `blue` and `green`) or `command`",
            ));
        }
        if sw.file.is_some() && (sw.blue.is_none() || sw.green.is_none()) {
            return Err(invalid(
                "switch",
                "`file` needs both `blue` and `green` text",
            ));
        }
        if sw.file.as_deref().is_some_and(|f| !f.starts_with('/')) {
            return Err(invalid("switch.file", "must be an absolute path"));
        }
    } else if p.switch.is_some() || p.colors.is_some() {
        return Err(invalid(
            "strategy",
            "`switch` and `colors` need `strategy: blue_green`",
        ));
    }
    if let Some(h) = &p.health {
        if h.url.is_none() && !h.containers {
            return Err(invalid("health", "give `url` and/or `containers: true`"));
        }
        if let Some(u) = &h.url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(invalid("health.url", "must be an http:// or https:// URL"));
            }
        }
    }
    Ok(())
}
