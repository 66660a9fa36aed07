//! `compose_deploy`: deploys a Docker Compose (v2) project from files
//! uploaded from the controller, with a health gate, rollback and an
//! optional blue-green switch.
//!
//! The task owns, in `dir`: the compose files (named after their source,
//! `.j2` dropped: the engine renders those as templates and passes every
//! file as `_files`), the project's `.env` (from `env`), and a manifest
//! `.herd-compose` naming the files of the deployed version, so a later run
//! knows what to roll back to and what to remove. With `strategy:
//! blue_green` each color has its own directory (`dir/blue`, `dir/green`)
//! and project (`<project>-blue`, `<project>-green`), and `dir/.herd-live`
//! names the color that serves.
//!
//! The plan is one script: it prints the files on the host, renders the
//! new configuration in a temp dir with `docker compose config --hash '*'`
//! (plus the services' images and their local IDs), and lists the
//! project's containers with their `com.docker.compose.config-hash` label
//! and image ID. A task changes only when a file differs, a service's hash
//! or image differs from its running container, or a container is missing
//! or not running, so a second run reports `changed=0`.
//!
//! Apply (`strategy: recreate`) saves the previous files and `.env` in
//! `dir/.herd-previous`, writes the new ones, runs `up -d`, then waits for
//! the `health` gate (an HTTP status fetched on the host with curl, and/or
//! every container running and healthy) with `retries` and `delay`. When the
//! gate fails, the previous files come back, `up -d` brings the previous
//! version back, and the task fails saying why and whether the old version
//! is healthy again. `blue_green` brings the new version up as the idle
//! color, gates it, switches (writes `switch.file` with the color's text
//! and/or runs `switch.command`), waits `switch.drain` seconds for requests
//! in flight, then stops the old color; a failed gate takes the new color
//! down and never switches.
//!
//! Volumes are never removed (`down` has no `-v`); `prune` runs
//! `docker image prune -f`, which removes dangling images only.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use crate::capability::ControllerInput;
use crate::host::FileAttrs;
use crate::params::{de_bool, de_opt_f64, de_opt_u64};
use crate::probe::{decode_b64, tagged, tagged_file, tagged_line, ProbeError};
use crate::shell_quote::quote;
use crate::textfile;
use crate::{FileDiff, Host, Module, ModuleError, Outcome, ParamError, Plan};

const HEADER: &str = "# Managed by herd (compose_deploy). Local changes are overwritten.\n";
const MANIFEST: &str = ".herd-compose";
const PREVIOUS: &str = ".herd-previous";
const LIVE: &str = ".herd-live";

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
    fn word(self) -> &'static str {
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
    fn word(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
    fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
    fn tag(self) -> &'static str {
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
    fn text(&self, c: Color) -> Option<&str> {
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

/// The `compose_deploy` module.
pub struct ComposeDeploy;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: ComposeDeploy::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

fn check_params(p: &ComposeDeployParams) -> Result<(), ModuleError> {
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

/// One compose project as it should be on the host.
#[derive(Debug, Clone)]
struct Want {
    project: String,
    dir: String,
    /// (name in dir, content)
    files: Vec<(String, String)>,
    env: BTreeMap<String, String>,
    env_text: String,
    manifest: String,
}

impl Want {
    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }
    fn names(&self) -> Vec<&str> {
        self.files.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// `.env` text: a header and `KEY=value` lines, single-quoted (literal to
/// compose) unless plain.
fn env_text(env: &BTreeMap<String, String>) -> String {
    let mut s = String::from(HEADER);
    for (k, v) in env {
        let plain = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@,+-".contains(&b));
        if plain {
            s.push_str(&format!("{k}={v}\n"));
        } else {
            s.push_str(&format!("{k}='{v}'\n"));
        }
    }
    s
}

fn manifest_text(names: &[&str]) -> String {
    let mut s = String::from(HEADER);
    for n in names {
        s.push_str(n);
        s.push('\n');
    }
    s
}

fn manifest_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| valid_file_name(l))
        .map(str::to_string)
        .collect()
}

fn valid_file_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The projects this task wants: one, or one per color.
fn wants(p: &ComposeDeployParams) -> Result<Vec<(Option<Color>, Want)>, ModuleError> {
    let files =
        match (&p.rendered, p.state) {
            (Some(f), _) => f.clone(),
            (None, DeployState::Absent) => Vec::new(),
            (None, _) if p.files.is_empty() => {
                return Err(invalid("files", "give at least one compose file"))
            }
            (None, _) => return Err(invalid(
                "files",
                "the files were not read on the controller (the engine passes them as `_files`)",
            )),
        };
    if files.is_empty() && p.state != DeployState::Absent {
        return Err(invalid("files", "give at least one compose file"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &files {
        if !valid_file_name(&f.name) || f.name == MANIFEST {
            return Err(invalid(
                "files",
                format!("`{}` cannot be a file name in `dir`", f.name),
            ));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(invalid(
                "files",
                format!("two files would both be `{}` in `dir`", f.name),
            ));
        }
    }
    let files: Vec<(String, String)> = files.into_iter().map(|f| (f.name, f.content)).collect();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let manifest = manifest_text(&names);
    let dir = p.dir.trim_end_matches('/').to_string();
    Ok(match p.strategy {
        Strategy::Recreate => vec![(
            None,
            Want {
                project: p.project.clone(),
                dir,
                env_text: env_text(&p.env),
                env: p.env.clone(),
                files,
                manifest,
            },
        )],
        Strategy::BlueGreen => [Color::Blue, Color::Green]
            .into_iter()
            .map(|c| {
                let mut env = p.env.clone();
                let extra = p.colors.as_ref().map(|cs| match c {
                    Color::Blue => &cs.blue,
                    Color::Green => &cs.green,
                });
                if let Some(extra) = extra {
                    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                env.insert("DEPLOY_COLOR".into(), c.word().into());
                (
                    Some(c),
                    Want {
                        project: format!("{}-{}", p.project, c.word()),
                        dir: format!("{dir}/{}", c.word()),
                        env_text: env_text(&env),
                        env,
                        files: files.clone(),
                        manifest: manifest.clone(),
                    },
                )
            })
            .collect(),
    })
}

/// `docker compose` with the project's directory, name, files and env file.
fn compose_cmd(project: &str, dir: &str, names: &[&str]) -> String {
    let mut s = format!(
        "docker compose --project-directory {} -p {}",
        quote(dir),
        quote(project)
    );
    for n in names {
        s.push_str(&format!(" -f {}", quote(&format!("{dir}/{n}"))));
    }
    s.push_str(&format!(" --env-file {}", quote(&format!("{dir}/.env"))));
    s
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

const PROBE_FUNCTIONS: &str = r#"file() { if [ -f "$2" ]; then printf '%s ' "$1"; base64 -w0 < "$2" || exit 3; echo; else echo "$1 -"; fi; }
b64() { printf '%s ' "$1"; base64 -w0 < "$2"; echo; }
containers() { ids=$(docker ps -aq --filter "label=com.docker.compose.project=$2") || exit 3
  if [ -n "$ids" ]; then docker inspect -f "$1C {{index .Config.Labels \"com.docker.compose.service\"}} {{index .Config.Labels \"com.docker.compose.config-hash\"}} {{.Image}} {{.State.Status}} {{.Name}}" $ids || exit 3; fi; }
command -v docker >/dev/null 2>&1 || { echo NODOCKER; exit 0; }
docker compose version >/dev/null 2>&1 || { echo NOCOMPOSE; exit 0; }
"#;

/// The probe of one project, tagged `x`: its files in `dir`, the new
/// configuration's hashes and images (rendered in `$T/x`), its containers.
fn probe_project(x: &str, w: &Want) -> String {
    let mut s = String::new();
    for (i, (n, _)) in w.files.iter().enumerate() {
        s.push_str(&format!("file {x}F{i} {}\n", quote(&w.path(n))));
    }
    s.push_str(&format!("file {x}ENV {}\n", quote(&w.path(".env"))));
    s.push_str(&format!("file {x}MAN {}\n", quote(&w.path(MANIFEST))));
    s.push_str(&format!("mkdir \"$T/{x}\" || exit 3\n"));
    for (n, c) in &w.files {
        s.push_str(&format!(
            "printf '%s' '{}' | base64 -d > \"$T/{x}/{n}\" || exit 3\n",
            b64(c)
        ));
    }
    s.push_str(&format!(
        "printf '%s' '{}' | base64 -d > \"$T/{x}/.env\" || exit 3\n",
        b64(&w.env_text)
    ));
    let mut cfg = format!(
        "docker compose --project-directory {} -p {}",
        quote(&w.dir),
        quote(&w.project)
    );
    for (n, _) in &w.files {
        cfg.push_str(&format!(" -f \"$T/{x}/{n}\""));
    }
    cfg.push_str(&format!(" --env-file \"$T/{x}/.env\""));
    s.push_str(&format!(
        "if {cfg} config --hash '*' > \"$T/{x}.h\" 2> \"$T/{x}.e\" && {cfg} config --format json > \"$T/{x}.j\" 2>> \"$T/{x}.e\"; then\n\
         \x20 sed 's/^/{x}H /' \"$T/{x}.h\"; b64 {x}JSON \"$T/{x}.j\"\n\
         \x20 {cfg} config --images 2>/dev/null | sort -u | while read -r i; do printf '{x}I %s %s\\n' \"$i\" \"$(docker image inspect -f '{{{{.Id}}}}' \"$i\" 2>/dev/null || echo -)\"; done\n\
         else b64 {x}CFGERR \"$T/{x}.e\"; fi\n"
    ));
    s.push_str(&format!("containers {x} {}\n", quote(&w.project)));
    s
}

fn probe_script(
    wants: &[(Option<Color>, Want)],
    live: Option<&str>,
    switch: Option<&str>,
) -> String {
    let mut s = String::from(PROBE_FUNCTIONS);
    s.push_str(
        "T=$(mktemp -d) || exit 3; trap 'rm -rf \"$T\"' EXIT; trap 'exit 143' HUP INT TERM\n",
    );
    if let Some(l) = live {
        s.push_str(&format!("file LIVE {}\n", quote(l)));
    }
    if let Some(f) = switch {
        s.push_str(&format!("file SWITCH {}\n", quote(f)));
    }
    for (c, w) in wants {
        s.push_str(&probe_project(c.map_or("P", Color::tag), w));
    }
    s.push_str("true\n");
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    service: String,
    hash: String,
    image: String,
    state: String,
    name: String,
}

/// What the probe saw of one project.
#[derive(Debug, Clone, Default)]
struct Probed {
    files: Vec<Option<String>>,
    env: Option<String>,
    manifest: Option<String>,
    config_error: Option<String>,
    /// service -> config hash of the new configuration
    hashes: BTreeMap<String, String>,
    /// service -> image reference
    images: BTreeMap<String, String>,
    /// image reference -> local image ID (`None`: not on the host)
    image_ids: BTreeMap<String, Option<String>>,
    containers: Vec<Container>,
}

fn lines_of<'a>(out: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    out.lines()
        .filter_map(move |l| l.strip_prefix(tag)?.strip_prefix(' '))
}

fn parse_containers(out: &str, x: &str) -> Vec<Container> {
    let mut v: Vec<Container> = lines_of(out, &format!("{x}C"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5).then(|| Container {
                service: f[0].to_string(),
                hash: f[1].to_string(),
                image: f[2].to_string(),
                state: f[3].to_string(),
                name: f[4].trim_start_matches('/').to_string(),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn parse_project(out: &str, x: &str, n_files: usize) -> Result<Probed, ProbeError> {
    let mut p = Probed::default();
    for i in 0..n_files {
        p.files.push(tagged_file(out, &format!("{x}F{i}"))?);
    }
    p.env = tagged_file(out, &format!("{x}ENV"))?;
    p.manifest = tagged_file(out, &format!("{x}MAN"))?;
    let cfgerr = format!("{x}CFGERR");
    if let Some(e) = tagged(out, &cfgerr) {
        p.config_error = Some(decode_b64(&cfgerr, e)?.trim().to_string());
    } else {
        for l in lines_of(out, &format!("{x}H")) {
            if let Some((svc, h)) = l.split_once(' ') {
                p.hashes
                    .insert(svc.trim().to_string(), h.trim().to_string());
            }
        }
        let tag = format!("{x}JSON");
        let json = decode_b64(&tag, tagged_line(out, &tag)?)?;
        let cfg: Value = serde_json::from_str(&json).map_err(|e| ProbeError::BadJson {
            what: "docker compose config",
            reason: e.to_string(),
        })?;
        if let Some(svcs) = cfg.get("services").and_then(Value::as_object) {
            for (name, svc) in svcs {
                if let Some(img) = svc.get("image").and_then(Value::as_str) {
                    p.images.insert(name.clone(), img.to_string());
                }
            }
        }
        for l in lines_of(out, &format!("{x}I")) {
            if let Some((img, id)) = l.rsplit_once(' ') {
                let id = id.trim();
                p.image_ids.insert(
                    img.to_string(),
                    (id != "-" && !id.is_empty()).then(|| id.to_string()),
                );
            }
        }
    }
    p.containers = parse_containers(out, x);
    Ok(p)
}

/// What deploying `w` over what `got` saw would change.
#[derive(Debug, Default)]
struct Delta {
    changes: Vec<String>,
    diffs: Vec<FileDiff>,
    /// Containers would change (`up` has work to do).
    services: bool,
    /// Files on the host that the new version no longer has.
    stale: Vec<String>,
}

impl Delta {
    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

fn delta(w: &Want, got: &Probed, p: &ComposeDeployParams) -> Result<Delta, ModuleError> {
    if let Some(e) = &got.config_error {
        return Err(ModuleError::failed(format!(
            "docker compose rejected the configuration of {}: {e}",
            w.project
        )));
    }
    let mut d = Delta::default();
    let file = |d: &mut Delta, path: String, have: Option<&str>, want: &str| {
        if have == Some(want) {
            return;
        }
        d.changes.push(format!(
            "{} {path}",
            if have.is_some() { "update" } else { "create" }
        ));
        if let Some(diff) = textfile::diff(&path, have.unwrap_or("").as_bytes(), want.as_bytes()) {
            d.diffs.push(diff);
        }
    };
    for ((n, c), have) in w.files.iter().zip(&got.files) {
        file(&mut d, w.path(n), have.as_deref(), c);
    }
    file(&mut d, w.path(".env"), got.env.as_deref(), &w.env_text);
    if got.manifest.as_deref() != Some(w.manifest.as_str()) {
        d.changes
            .push(format!("record the files in {}", w.path(MANIFEST)));
    }
    let names = w.names();
    for old in got
        .manifest
        .as_deref()
        .map(manifest_names)
        .unwrap_or_default()
    {
        if !names.contains(&old.as_str()) {
            d.changes.push(format!("remove {}", w.path(&old)));
            d.stale.push(old);
        }
    }
    let before = d.changes.len();
    if p.pull == Pull::Always {
        d.changes
            .push(format!("{}: pull images (pull: always)", w.project));
    }
    for (svc, hash) in &got.hashes {
        let img = got.images.get(svc);
        let want_id = img.and_then(|i| got.image_ids.get(i));
        if let (Some(img), Some(None)) = (img, want_id) {
            if p.pull == Pull::Never {
                return Err(ModuleError::failed(format!(
                    "image {img} of service {svc} is not on the host and pull is `never`"
                )));
            }
            if p.pull == Pull::Missing {
                d.changes.push(format!("{svc}: pull {img}"));
            }
        }
        let want_id = want_id.and_then(Option::as_deref);
        let cs: Vec<&Container> = got
            .containers
            .iter()
            .filter(|c| &c.service == svc)
            .collect();
        if cs.is_empty() {
            d.changes.push(format!("{svc}: create"));
            continue;
        }
        let why = cs.iter().find_map(|c| {
            if &c.hash != hash {
                Some("recreate (configuration changed)".to_string())
            } else if want_id.is_some_and(|id| id != c.image) {
                Some(format!(
                    "recreate (image {} changed)",
                    img.map(String::as_str).unwrap_or("?")
                ))
            } else if c.state != "running" {
                Some(format!("start ({})", c.state))
            } else {
                None
            }
        });
        if let Some(why) = why {
            d.changes.push(format!("{svc}: {why}"));
        }
    }
    if p.remove_orphans {
        for c in &got.containers {
            if !got.hashes.contains_key(&c.service) {
                d.changes
                    .push(format!("remove orphan container {}", c.name));
            }
        }
    }
    d.services = d.changes.len() > before;
    Ok(d)
}

/// What the plan decided, for apply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum Planned {
    /// Recreate in place; `previous` when a deployed version can come back.
    Deploy {
        previous: bool,
        old_names: Vec<String>,
        stale: Vec<String>,
    },
    /// Blue-green: bring up `target`, switch, stop `old`.
    Deploy2 {
        target: Color,
        old: Option<Color>,
        stale: Vec<String>,
    },
    /// Blue-green: the live color is right; only the switch file is not.
    SwitchOnly {
        live: Color,
    },
    Restart {
        color: Option<Color>,
    },
    Absent {
        /// (dir, project, files to remove)
        projects: Vec<(String, String, Vec<String>)>,
        live: Option<String>,
    },
}

fn host_failed(what: &str, out: &crate::ExecOutput) -> ModuleError {
    let mut text = out.stderr_str();
    if text.trim().is_empty() {
        text = out.stdout_str();
    }
    ModuleError::failed(format!(
        "{what} failed (rc={}): {}",
        out.rc,
        last_lines(&text, 6)
    ))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn run_ok(host: &mut dyn Host, what: &str, script: &str) -> Result<String, ModuleError> {
    let out = host.run(script, None)?;
    if out.success() {
        Ok(out.stdout_str())
    } else {
        Err(host_failed(what, &out))
    }
}

fn docker_available(out: &str) -> Result<(), ModuleError> {
    if out.lines().any(|l| l == "NODOCKER") {
        return Err(ModuleError::failed("docker is not installed on the host"));
    }
    if out.lines().any(|l| l == "NOCOMPOSE") {
        return Err(ModuleError::failed(
            "the Docker Compose v2 plugin (`docker compose`) is not installed on the host",
        ));
    }
    Ok(())
}

/// `${VAR}` in `s` replaced from `env` (unknown names are left as they are).
fn substitute(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if env.contains_key(&after[..j]) => {
                out.push_str(&env[&after[..j]]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A seconds value for `sleep` (which takes fractions on Debian's coreutils
/// and busybox).
fn secs(x: f64) -> String {
    let s = format!("{:.3}", x.max(0.0));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One script that polls the gate until it passes or `retries` run out,
/// and prints `GATE ok N` or `GATE fail WHY`.
fn gate_script(h: &Health, project: &str, env: &BTreeMap<String, String>) -> String {
    let retries = h.retries.unwrap_or(30).max(1);
    let delay = secs(h.delay.unwrap_or(1.0));
    let timeout = secs(h.timeout.unwrap_or(5.0).max(0.1));
    let mut s = format!("i=0; why=\nwhile [ $i -lt {retries} ]; do i=$((i+1)); ok=1\n");
    if let Some(url) = &h.url {
        let url = quote(&substitute(url, env));
        let want = h.status.unwrap_or(200);
        s.push_str(&format!(
            "  if command -v curl >/dev/null 2>&1; then code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time {timeout} -- {url} 2>/dev/null); \
             else code=$(wget -q -S -O /dev/null -T {timeout} -- {url} 2>&1 | awk '/HTTP\\//{{c=$2}} END{{print c}}'); fi\n\
             \x20 [ -n \"$code\" ] || code=000\n\
             \x20 if [ \"$code\" != {want} ]; then ok=0; why=\"{url_msg} answered $code, expected {want}\"; fi\n",
            url_msg = substitute(h.url.as_deref().unwrap_or(""), env).replace(['"', '$', '`', '\\'], "")
        ));
    }
    if h.containers {
        s.push_str(&format!(
            "  if [ $ok = 1 ]; then ids=$(docker ps -aq --filter label=com.docker.compose.project={p})\n\
             \x20   if [ -z \"$ids\" ]; then ok=0; why='no containers'; else\n\
             \x20   bad=$(docker inspect -f '{{{{.Name}}}} {{{{.State.Status}}}} {{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{else}}}}none{{{{end}}}}' $ids | awk '$2!=\"running\" || ($3!=\"healthy\" && $3!=\"none\") {{printf \"%s %s/%s; \", substr($1,2), $2, $3}}')\n\
             \x20   [ -z \"$bad\" ] || {{ ok=0; why=\"containers not healthy: $bad\"; }}; fi; fi\n",
            p = quote(project)
        ));
    }
    s.push_str(&format!(
        "  if [ $ok = 1 ]; then echo \"GATE ok $i\"; exit 0; fi\n\
         \x20 [ $i -lt {retries} ] && sleep {delay}\ndone\necho \"GATE fail $why\"\n"
    ));
    s
}

/// Run the gate: `Ok(None)` when it passed (or there is none), `Ok(Some(why))`
/// when it failed.
fn gate(
    host: &mut dyn Host,
    h: Option<&Health>,
    project: &str,
    env: &BTreeMap<String, String>,
) -> Result<Option<String>, ModuleError> {
    let Some(h) = h else {
        return Ok(None);
    };
    let out = run_ok(host, "the health check", &gate_script(h, project, env))?;
    if tagged(&out, "GATE").is_some_and(|l| l.starts_with("ok")) {
        return Ok(None);
    }
    Ok(Some(
        tagged(&out, "GATE")
            .and_then(|l| l.strip_prefix("fail"))
            .map(|w| w.trim().trim_end_matches(';').to_string())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "the health check printed nothing".into()),
    ))
}

fn up_script(w: &Want, names: &[&str], pull: Pull, remove_orphans: bool) -> String {
    format!(
        "{} up -d --pull {}{} 2>&1",
        compose_cmd(&w.project, &w.dir, names),
        pull.word(),
        if remove_orphans {
            " --remove-orphans"
        } else {
            ""
        }
    )
}

/// Write the project's files, `.env` and manifest, and remove `stale` ones.
fn write_project(host: &mut dyn Host, w: &Want, stale: &[String]) -> Result<(), ModuleError> {
    run_ok(
        host,
        "creating the project directory",
        &format!("mkdir -p -- {}", quote(&w.dir)),
    )?;
    for (n, c) in &w.files {
        host.write_file(&w.path(n), c.as_bytes(), &FileAttrs::default())?;
    }
    let secret = FileAttrs {
        mode: Some("0600".into()),
        ..FileAttrs::default()
    };
    host.write_file(&w.path(".env"), w.env_text.as_bytes(), &secret)?;
    host.write_file(
        &w.path(MANIFEST),
        w.manifest.as_bytes(),
        &FileAttrs::default(),
    )?;
    if !stale.is_empty() {
        let rm: Vec<String> = stale.iter().map(|n| quote(&w.path(n))).collect();
        run_ok(
            host,
            "removing old files",
            &format!("rm -f -- {}", rm.join(" ")),
        )?;
    }
    Ok(())
}

fn prune(host: &mut dyn Host, result: &mut Map<String, Value>) -> Result<(), ModuleError> {
    // Dangling images only: never `-a` (no registry may hold the previous
    // version), never volumes.
    let out = run_ok(host, "docker image prune", "docker image prune -f 2>&1")?;
    result.insert("pruned".into(), json!(last_lines(&out, 1)));
    Ok(())
}

fn services_result(got: &Probed) -> Value {
    let m: Map<String, Value> = got
        .hashes
        .iter()
        .map(|(s, h)| {
            (
                s.clone(),
                json!({"config_hash": h, "image": got.images.get(s)}),
            )
        })
        .collect();
    Value::Object(m)
}

impl ComposeDeploy {
    fn plan_absent(
        &self,
        p: &ComposeDeployParams,
        ws: &[(Option<Color>, Want)],
        host: &mut dyn Host,
    ) -> Result<Plan, ModuleError> {
        let live = (p.strategy == Strategy::BlueGreen)
            .then(|| format!("{}/{LIVE}", p.dir.trim_end_matches('/')));
        let mut s = String::from(PROBE_FUNCTIONS);
        if let Some(l) = &live {
            s.push_str(&format!("file LIVE {}\n", quote(l)));
        }
        for (c, w) in ws {
            let x = c.map_or("P", Color::tag);
            s.push_str(&format!("file {x}MAN {}\n", quote(&w.path(MANIFEST))));
            s.push_str(&format!(
                "if [ -e {} ]; then echo {x}ENV y; else echo {x}ENV -; fi\n",
                quote(&w.path(".env"))
            ));
            s.push_str(&format!("containers {x} {}\n", quote(&w.project)));
        }
        s.push_str("true\n");
        let out = run_ok(host, "reading the project", &s)?;
        docker_available(&out)?;
        let mut plan = Plan::default();
        let mut projects = Vec::new();
        for (c, w) in ws {
            let x = c.map_or("P", Color::tag);
            let cs = parse_containers(&out, x);
            let man = tagged_file(&out, &format!("{x}MAN"))?;
            let mut files: Vec<String> = man.as_deref().map(manifest_names).unwrap_or_default();
            if tagged(&out, &format!("{x}ENV")) == Some("y") {
                files.push(".env".into());
            }
            if man.is_some() {
                files.push(MANIFEST.into());
            }
            if cs.is_empty() && files.is_empty() {
                continue;
            }
            if !cs.is_empty() {
                plan.changes.push(format!(
                    "{}: stop and remove {} container(s), keep volumes",
                    w.project,
                    cs.len()
                ));
            }
            for f in &files {
                plan.changes.push(format!("remove {}", w.path(f)));
            }
            projects.push((w.dir.clone(), w.project.clone(), files));
        }
        let live_exists = tagged(&out, "LIVE").is_some_and(|l| l.trim() != "-");
        if live_exists {
            if let Some(l) = &live {
                plan.changes.push(format!("remove {l}"));
            }
        }
        plan.keep_state(&Planned::Absent {
            projects,
            live: live.filter(|_| live_exists),
        })?;
        Ok(plan)
    }

    fn apply_absent(
        &self,
        p: &ComposeDeployParams,
        projects: Vec<(String, String, Vec<String>)>,
        live: Option<String>,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        for (dir, project, files) in &projects {
            // `down` without files finds the containers by their project
            // label; no `-v`: volumes hold data and stay.
            let mut s = format!(
                "docker compose -p {} down{} 2>&1",
                quote(project),
                if p.remove_orphans {
                    " --remove-orphans"
                } else {
                    ""
                }
            );
            for f in files {
                s.push_str(&format!(" && rm -f -- {}", quote(&format!("{dir}/{f}"))));
            }
            s.push_str(&format!(
                " && rm -rf -- {}",
                quote(&format!("{dir}/{PREVIOUS}"))
            ));
            run_ok(host, &format!("removing {project}"), &s)?;
        }
        if let Some(l) = live {
            run_ok(
                host,
                "removing the live marker",
                &format!("rm -f -- {}", quote(&l)),
            )?;
        }
        Ok(Outcome {
            changed: true,
            result: Map::from_iter([("changed".to_string(), json!(true))]),
            msg: None,
            failed: false,
        })
    }

    fn apply_recreate(
        &self,
        p: &ComposeDeployParams,
        w: &Want,
        previous: bool,
        old_names: &[String],
        stale: &[String],
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let dir = quote(&w.dir);
        let prev = quote(&w.path(PREVIOUS));
        let mut result = Map::new();
        result.insert("project".into(), json!(w.project));
        if previous {
            let mut s = format!("set -e; rm -rf -- {prev}; mkdir -p -- {prev}; cd -- {dir}\n");
            for n in old_names
                .iter()
                .map(String::as_str)
                .chain([".env", MANIFEST])
            {
                s.push_str(&format!(
                    "if [ -f {n} ]; then cp -p -- {n} {prev}/; fi\n",
                    n = quote(n)
                ));
            }
            run_ok(host, "saving the previous files", &s)?;
        }
        write_project(host, w, stale)?;
        let names = w.names();
        let up = host.run(&up_script(w, &names, p.pull, p.remove_orphans), None)?;
        let why = if up.success() {
            gate(host, p.health.as_ref(), &w.project, &w.env)?
                .map(|why| format!("the health gate failed: {why}"))
        } else {
            Some(format!(
                "docker compose up failed (rc={}): {}",
                up.rc,
                last_lines(&up.stdout_str(), 4)
            ))
        };
        let Some(why) = why else {
            if previous {
                run_ok(
                    host,
                    "removing the saved files",
                    &format!("rm -rf -- {prev}"),
                )?;
            }
            if p.prune {
                prune(host, &mut result)?;
            }
            result.insert("changed".into(), json!(true));
            return Ok(Outcome {
                changed: true,
                result,
                msg: None,
                failed: false,
            });
        };
        if !previous {
            result.insert("rolled_back".into(), json!(false));
            return Err(ModuleError::Failed {
                msg: format!("{why}; there is no previous version to roll back to"),
                result,
            });
        }
        // Roll back: the previous files and .env, and the previous version up.
        let mut s = format!("set -e; cd -- {dir}\n");
        for n in &names {
            s.push_str(&format!("rm -f -- {}\n", quote(n)));
        }
        for n in old_names
            .iter()
            .map(String::as_str)
            .chain([".env", MANIFEST])
        {
            s.push_str(&format!(
                "if [ -f {prev}/{n} ]; then cp -p -- {prev}/{n} {n}; fi\n",
                n = quote(n)
            ));
        }
        s.push_str(&format!("rm -rf -- {prev}\n"));
        run_ok(host, "restoring the previous files", &s)?;
        let old: Vec<&str> = old_names.iter().map(String::as_str).collect();
        let old_env = match host.read_file(&w.path(".env"))? {
            Some(b) => parse_env(&String::from_utf8_lossy(&b)),
            None => BTreeMap::new(),
        };
        let up = host.run(&up_script(w, &old, Pull::Never, true), None)?;
        result.insert("rolled_back".into(), json!(true));
        let back = if !up.success() {
            format!(
                "bringing the previous version back failed (rc={}): {}",
                up.rc,
                last_lines(&up.stdout_str(), 4)
            )
        } else {
            match gate(host, p.health.as_ref(), &w.project, &old_env)? {
                None => "the previous version is running and healthy again".to_string(),
                Some(w) => format!("the previous version is running but not healthy: {w}"),
            }
        };
        Err(ModuleError::Failed {
            msg: format!("{why}; rolled back to the previous files and .env: {back}"),
            result,
        })
    }

    fn switch_to(
        &self,
        sw: &Switch,
        c: Color,
        project: &str,
        host: &mut dyn Host,
    ) -> Result<(), ModuleError> {
        if let (Some(f), Some(text)) = (&sw.file, sw.text(c)) {
            host.write_file(f, text.as_bytes(), &FileAttrs::default())?;
        }
        if let Some(cmd) = &sw.command {
            run_ok(
                host,
                "the switch command",
                &format!(
                    "DEPLOY_COLOR={}; DEPLOY_PROJECT={}; export DEPLOY_COLOR DEPLOY_PROJECT\n{cmd}",
                    c.word(),
                    quote(project)
                ),
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_blue_green(
        &self,
        p: &ComposeDeployParams,
        ws: &[(Option<Color>, Want)],
        target: Color,
        old: Option<Color>,
        stale: &[String],
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let sw = p
            .switch
            .as_ref()
            .ok_or_else(|| invalid("switch", "missing"))?;
        let want = |c: Color| {
            ws.iter()
                .find(|(wc, _)| *wc == Some(c))
                .map(|(_, w)| w.clone())
                .ok_or_else(|| ModuleError::failed("no project for the color"))
        };
        let w = want(target)?;
        let mut result = Map::new();
        result.insert("project".into(), json!(w.project));
        result.insert("color".into(), json!(target.word()));
        write_project(host, &w, stale)?;
        let up = host.run(&up_script(&w, &w.names(), p.pull, true), None)?;
        let why = if up.success() {
            gate(host, p.health.as_ref(), &w.project, &w.env)?
                .map(|why| format!("the health gate of {} failed: {why}", w.project))
        } else {
            Some(format!(
                "docker compose up of {} failed (rc={}): {}",
                w.project,
                up.rc,
                last_lines(&up.stdout_str(), 4)
            ))
        };
        if let Some(why) = why {
            // Never switched: the old color still serves. Free the new
            // color's ports and resources.
            let down = host.run(
                &format!("docker compose -p {} down 2>&1", quote(&w.project)),
                None,
            )?;
            let serving = match old {
                Some(o) => format!(
                    "{}-{} still serves, nothing was switched",
                    p.project,
                    o.word()
                ),
                None => "there was no previous version".to_string(),
            };
            let down_msg = if down.success() {
                String::new()
            } else {
                format!("; taking {} down failed too", w.project)
            };
            return Err(ModuleError::Failed {
                msg: format!("{why}; {serving}{down_msg}"),
                result,
            });
        }
        if let Err(e) = self.switch_to(sw, target, &w.project, host) {
            if let Some(o) = old {
                let _ = self.switch_to(sw, o, &want(o)?.project, host);
            }
            let _ = host.run(
                &format!("docker compose -p {} down 2>&1", quote(&w.project)),
                None,
            );
            return Err(ModuleError::Failed {
                msg: format!("switching to {} failed: {e}", target.word()),
                result,
            });
        }
        let live = format!("{}/{LIVE}", p.dir.trim_end_matches('/'));
        host.write_file(
            &live,
            format!("{}\n", target.word()).as_bytes(),
            &FileAttrs::default(),
        )?;
        if let Some(o) = old {
            let ow = want(o)?;
            let drain = secs(sw.drain.unwrap_or(2.0));
            run_ok(
                host,
                &format!("stopping {}", ow.project),
                &format!(
                    "sleep {drain}; docker compose -p {} stop 2>&1",
                    quote(&ow.project)
                ),
            )?;
            result.insert("stopped".into(), json!(ow.project));
        }
        if p.prune {
            prune(host, &mut result)?;
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome {
            changed: true,
            result,
            msg: None,
            failed: false,
        })
    }
}

/// `.env` lines back into a map (for the rolled-back version's health URL).
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

impl Module for ComposeDeploy {
    const NAME: &'static str = "compose_deploy";
    /// `files` are read (`.j2` rendered) on the controller and arrive as
    /// `_files`, so `${VAR}` and `$${VAR}` reach compose untouched.
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[ControllerInput::RenderedFiles {
        param: "files",
        into: "_files",
        noun: "compose file",
    }];
    const DOC_SHORT: &'static str = "Deploy a Docker Compose project from controller files, gated by a health check, optionally blue-green.";
    const DOC_LONG: &'static str = r##"`compose_deploy` deploys a Docker Compose (v2 plugin) project into `dir` on
the host: the compose `files` come from the controller (a `.j2` file is
rendered as a template, as `template` does; compose's own `${VAR}` and
`$${VAR}` pass through untouched), `env` is written to the project's `.env`
(mode 0600), then `docker compose up -d` runs.

- Changed only when something differs: a file or `.env`, or a service whose
  `docker compose config --hash` differs from its container's
  `com.docker.compose.config-hash` label, whose image ID is not the one its
  tag names now, or whose container is missing or stopped. A second run
  reports `changed=0`. The plan is one round trip (the new configuration is
  hashed in a temp dir on the host); `--check --diff` shows the file and
  `.env` diffs and lines like `web: recreate (configuration changed)`.
- The health gate runs after a change. When it fails, the previous files and
  `.env` (kept in `dir/.herd-previous` during the deploy) come back, `up -d`
  brings the previous version back, and the task fails saying why and
  whether the previous version is healthy again.
- `strategy: blue_green` runs the new version as the idle color
  (`<project>-blue` / `<project>-green`, in `dir/blue` / `dir/green`, with
  `colors: {blue: {WEB_PORT: 8081}, green: {WEB_PORT: 8082}}` added to its
  `.env` and `DEPLOY_COLOR`), gates it, then switches: `switch.file` gets the
  color's text (`switch: {file: /etc/nginx/upstream.conf, blue: "server
  127.0.0.1:8081;", green: "server 127.0.0.1:8082;"}`) and/or
  `switch.command` runs (with `DEPLOY_COLOR`, `DEPLOY_PROJECT`), and after
  `switch.drain` seconds (default 2) the old color is stopped. A color that
  fails its gate is taken down and never switched to. `dir/.herd-live` names
  the live color.
- Volumes are never removed: `state: absent` runs `docker compose down`
  without `-v`, and pruning removes dangling images only (not `docker system
  prune -af --volumes`).
- `playbooks/compose-deploy.yml` (with the template
  `playbooks/compose/app.yml.j2` and `inventories/compose-deploy.ini`) is a
  runnable example on the test fleet: `-e app_tag=v2` rolls forward,
  `-e app_strategy=blue_green` deploys blue-green."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Deploy the shop
  compose_deploy:
    project: shop
    dir: /opt/deploy/prod
    files: [compose/app.yml.j2]          # -> /opt/deploy/prod/app.yml
    env: {IMAGE_TAG: v2, WEB_PORT: 8081}
    pull: missing                        # always | missing | never
    remove_orphans: yes
    prune: yes                           # docker image prune -f: dangling images only
    health:
      url: "http://127.0.0.1:${WEB_PORT}/health"   # fetched on the host (curl)
      status: 200
      containers: yes                    # every container running, and healthy if it has a healthcheck
      retries: 20
      delay: 0.5
    # state: present | absent | restarted
  register: deploy
"##;
    type Params = ComposeDeployParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        check_params(p)?;
        let ws = wants(p)?;
        if p.state == DeployState::Absent {
            return self.plan_absent(p, &ws, host);
        }
        let dir = p.dir.trim_end_matches('/');
        let live_path = format!("{dir}/{LIVE}");
        let bg = p.strategy == Strategy::BlueGreen;
        let switch_file = p.switch.as_ref().and_then(|s| s.file.as_deref());
        let script = probe_script(
            &ws,
            bg.then_some(live_path.as_str()),
            switch_file.filter(|_| bg),
        );
        let out = run_ok(host, "reading the project", &script)?;
        docker_available(&out)?;
        let mut plan = Plan::default();
        if !bg {
            let (_, w) = &ws[0];
            let got = parse_project(&out, "P", w.files.len())?;
            let d = delta(w, &got, p)?;
            plan.result.insert("project".into(), json!(w.project));
            plan.result.insert("services".into(), services_result(&got));
            let old_names = got
                .manifest
                .as_deref()
                .map(manifest_names)
                .unwrap_or_default();
            if d.is_empty() {
                if p.state == DeployState::Restarted {
                    plan.changes.push(format!("{}: restart", w.project));
                    plan.keep_state(&Planned::Restart { color: None })?;
                }
                return Ok(plan);
            }
            plan.changes = d.changes;
            plan.diffs = d.diffs;
            plan.keep_state(&Planned::Deploy {
                previous: got.manifest.is_some() && !old_names.is_empty(),
                old_names,
                stale: d.stale,
            })?;
            return Ok(plan);
        }
        let live = match tagged_file(&out, "LIVE")? {
            None => None,
            Some(t) => match t.trim() {
                "blue" => Some(Color::Blue),
                "green" => Some(Color::Green),
                other => {
                    return Err(ModuleError::failed(format!(
                        "{live_path} names no color (`{other}`); remove it to start over with blue"
                    )))
                }
            },
        };
        let probed: Vec<(Color, &Want, Probed)> = ws
            .iter()
            .filter_map(|(c, w)| c.map(|c| (c, w)))
            .map(|(c, w)| {
                parse_project(&out, c.tag(), w.files.len())
                    .map(|got| (c, w, got))
                    .map_err(ModuleError::from)
            })
            .collect::<Result<_, _>>()?;
        let cur = live.unwrap_or(Color::Blue);
        let (_, cw, cgot) = probed
            .iter()
            .find(|(c, _, _)| *c == cur)
            .ok_or_else(|| ModuleError::failed("no project for the live color"))?;
        let cd = delta(cw, cgot, p)?;
        plan.result
            .insert("color".into(), json!(live.map(Color::word)));
        plan.result.insert("project".into(), json!(cw.project));
        plan.result.insert("services".into(), services_result(cgot));
        if let Some(l) = live.filter(|_| cd.is_empty()) {
            let sw = p.switch.as_ref();
            let want_text = sw.and_then(|s| s.text(l));
            let have = tagged_file(&out, "SWITCH")?;
            if let (Some(f), Some(t)) = (switch_file, want_text) {
                if have.as_deref() != Some(t) {
                    plan.changes.push(format!("switch {f} to {}", l.word()));
                    if let Some(d) =
                        textfile::diff(f, have.unwrap_or_default().as_bytes(), t.as_bytes())
                    {
                        plan.diffs.push(d);
                    }
                    plan.keep_state(&Planned::SwitchOnly { live: l })?;
                    return Ok(plan);
                }
            }
            if p.state == DeployState::Restarted {
                plan.changes.push(format!("{}: restart", cw.project));
                plan.keep_state(&Planned::Restart { color: Some(l) })?;
            }
            return Ok(plan);
        }
        let target = if live.is_some() {
            cur.other()
        } else {
            Color::Blue
        };
        let (_, tw, tgot) = probed
            .iter()
            .find(|(c, _, _)| *c == target)
            .ok_or_else(|| ModuleError::failed("no project for the target color"))?;
        let td = delta(tw, tgot, p)?;
        plan.changes
            .push(format!("deploy {} ({})", tw.project, target.word()));
        plan.changes.extend(td.changes);
        plan.diffs = td.diffs;
        match switch_file {
            Some(f) => plan
                .changes
                .push(format!("switch {f} to {}", target.word())),
            None => plan
                .changes
                .push(format!("switch to {} (command)", target.word())),
        }
        if let Some(l) = live {
            plan.changes
                .push(format!("stop {}-{}", p.project, l.word()));
        }
        plan.keep_state(&Planned::Deploy2 {
            target,
            old: live,
            stale: td.stale,
        })?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let planned: Planned = plan.state_as()?;
        let ws = wants(p)?;
        let mut out = match planned {
            Planned::Absent { projects, live } => {
                return self.apply_absent(p, projects, live, host)
            }
            Planned::Deploy {
                previous,
                old_names,
                stale,
            } => self.apply_recreate(p, &ws[0].1, previous, &old_names, &stale, host)?,
            Planned::Deploy2 { target, old, stale } => {
                self.apply_blue_green(p, &ws, target, old, &stale, host)?
            }
            Planned::SwitchOnly { live } => {
                let sw = p
                    .switch
                    .as_ref()
                    .ok_or_else(|| invalid("switch", "missing"))?;
                let project = format!("{}-{}", p.project, live.word());
                self.switch_to(sw, live, &project, host)?;
                Outcome {
                    changed: true,
                    result: Map::from_iter([
                        ("changed".to_string(), json!(true)),
                        ("color".to_string(), json!(live.word())),
                    ]),
                    msg: None,
                    failed: false,
                }
            }
            Planned::Restart { color } => {
                let w = &ws
                    .iter()
                    .find(|(c, _)| *c == color)
                    .ok_or_else(|| ModuleError::failed("no project to restart"))?
                    .1;
                run_ok(
                    host,
                    &format!("restarting {}", w.project),
                    &format!(
                        "{} restart 2>&1",
                        compose_cmd(&w.project, &w.dir, &w.names())
                    ),
                )?;
                if let Some(why) = gate(host, p.health.as_ref(), &w.project, &w.env)? {
                    return Err(ModuleError::failed(format!(
                        "the health gate failed after the restart: {why}"
                    )));
                }
                Outcome {
                    changed: true,
                    result: Map::from_iter([("changed".to_string(), json!(true))]),
                    msg: None,
                    failed: false,
                }
            }
        };
        for (k, v) in plan.result {
            out.result.entry(k).or_insert(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::parse_params;
    use crate::testing::{ok, FakeHost, Match};
    use crate::DynModule;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn params(v: Value) -> ComposeDeployParams {
        parse_params::<ComposeDeployParams>(ComposeDeploy::NAME, &v).expect("params")
    }

    fn base() -> Value {
        json!({"project": "shop", "dir": "/opt/deploy/prod",
            "files": ["compose/app.yml.j2"],
            "_files": [{"name": "app.yml", "content": "services:\n  web:\n    image: app:${IMAGE_TAG}\n"}],
            "env": {"IMAGE_TAG": "v1", "PORT": 8081},
            "health": {"url": "http://127.0.0.1:${PORT}/health", "retries": 3, "delay": 0.1}})
    }

    #[test]
    fn parameters_are_checked() {
        assert!(check_params(&params(base())).is_ok());
        let bad = |patch: Value| {
            let mut v = base();
            for (k, x) in patch.as_object().expect("object") {
                v[k] = x.clone();
            }
            check_params(&params(v))
                .expect_err("must be refused")
                .to_string()
        };
        assert!(bad(json!({"project": "Shop"})).contains("project"));
        assert!(bad(json!({"dir": "opt/x"})).contains("dir"));
        assert!(bad(json!({"dir": "/opt/../etc"})).contains("dir"));
        assert!(bad(json!({"strategy": "blue_green"})).contains("switch"));
        assert!(
            bad(json!({"strategy": "blue_green", "switch": {"file": "/x", "blue": "a"}}))
                .contains("green")
        );
        assert!(bad(json!({"switch": {"command": "true"}})).contains("blue_green"));
        assert!(bad(json!({"health": {"retries": 3}})).contains("health"));
        assert!(bad(json!({"health": {"url": "ftp://x/"}})).contains("health.url"));
        for env in [
            json!({"1X": "a"}),
            json!({"A": "it's"}),
            json!({"A": "a\nb"}),
        ] {
            let mut v = base();
            v["env"] = env;
            let e = parse_params::<ComposeDeployParams>("t", &v).expect_err("bad env");
            assert_eq!(e.field(), Some("env"));
        }
        // Without the engine's `_files` a present deploy cannot go on.
        let mut v = base();
        v.as_object_mut().map(|m| m.remove("_files"));
        assert!(wants(&params(v)).is_err());
    }

    #[test]
    fn env_text_and_substitution() {
        let mut env = BTreeMap::new();
        env.insert("IMAGE_TAG".to_string(), "v1.2".to_string());
        env.insert("GREETING".to_string(), "hello ${USER} $$x".to_string());
        assert_eq!(
            env_text(&env),
            format!("{HEADER}GREETING='hello ${{USER}} $$x'\nIMAGE_TAG=v1.2\n")
        );
        assert_eq!(parse_env(&env_text(&env)), env);
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "8082".to_string());
        assert_eq!(
            substitute("http://127.0.0.1:${PORT}/h?${NOPE}${", &env),
            "http://127.0.0.1:8082/h?${NOPE}${"
        );
        assert_eq!(secs(0.5), "0.5");
        assert_eq!(secs(2.0), "2");
    }

    #[test]
    fn blue_green_projects_get_their_colors_env() {
        let mut v = base();
        v["strategy"] = json!("blue_green");
        v["colors"] = json!({"blue": {"PORT": 8081}, "green": {"PORT": 8082}});
        v["switch"] = json!({"file": "/opt/deploy/prod/upstream", "blue": "a", "green": "b"});
        let ws = wants(&params(v)).expect("wants");
        assert_eq!(ws.len(), 2);
        let (c, g) = &ws[1];
        assert_eq!(*c, Some(Color::Green));
        assert_eq!(g.project, "shop-green");
        assert_eq!(g.dir, "/opt/deploy/prod/green");
        assert_eq!(g.env["PORT"], "8082");
        assert_eq!(g.env["DEPLOY_COLOR"], "green");
        assert_eq!(g.env["IMAGE_TAG"], "v1");
    }

    #[test]
    fn parses_the_probe() {
        let json = b64(r#"{"services": {"web": {"image": "app:v1"}, "db": {"build": "."}}}"#);
        let out = format!(
            "PF0 {}\nPENV -\nPMAN -\nPH web abc\nPH db def\nPJSON {json}\nPI app:v1 sha256:1\n\
             PC web abc sha256:1 running /shop-web-1\nPC old xyz sha256:9 exited /shop-old-1\n",
            b64("services: {}\n")
        );
        let p = parse_project(&out, "P", 1).expect("parse");
        assert_eq!(p.files, [Some("services: {}\n".to_string())]);
        assert_eq!(p.env, None);
        assert_eq!(p.hashes["db"], "def");
        assert_eq!(p.images.get("db"), None);
        assert_eq!(p.image_ids["app:v1"].as_deref(), Some("sha256:1"));
        assert_eq!(p.containers.len(), 2);
        assert_eq!(p.containers[0].name, "shop-old-1");
        let err = format!("PF0 -\nPENV -\nPMAN -\nPCFGERR {}\n", b64("yaml: bad"));
        let p = parse_project(&err, "P", 1).expect("parse");
        assert_eq!(p.config_error.as_deref(), Some("yaml: bad"));
        assert!(parse_project("PF0 -\n", "P", 1).is_err());
    }

    #[test]
    fn gate_script_checks_url_and_containers() {
        let h: Health = serde_json::from_value(
            json!({"url": "http://127.0.0.1:${PORT}/health", "status": 204, "containers": true, "retries": 5, "delay": 0.2}),
        )
        .expect("health");
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "8081".to_string());
        let s = gate_script(&h, "shop", &env);
        assert!(
            s.contains("--max-time 5 -- http://127.0.0.1:8081/health"),
            "{s}"
        );
        assert!(s.contains("[ \"$code\" != 204 ]"), "{s}");
        assert!(s.contains("label=com.docker.compose.project=shop"), "{s}");
        assert!(
            s.contains("while [ $i -lt 5 ]") && s.contains("sleep 0.2"),
            "{s}"
        );
    }

    /// A Docker host in miniature: images and containers, beside the
    /// files the fake host holds. A service's config hash is a hash of the
    /// compose files and `.env` it was rendered from; `up` makes every
    /// service's container from the project directory's files.
    #[derive(Default)]
    struct Docker {
        images: BTreeMap<String, String>,
        /// project -> (service, hash, image id, state)
        containers: BTreeMap<String, Vec<(String, String, String, String)>>,
        healthy_tags: Vec<String>,
    }

    type FakeDocker = FakeHost<Docker>;

    fn hash_of(parts: &[&str]) -> String {
        let mut h = DefaultHasher::new();
        parts.hash(&mut h);
        format!("{:x}", h.finish())
    }

    fn tag_of(env: &str) -> String {
        parse_env(env).get("IMAGE_TAG").cloned().unwrap_or_default()
    }

    /// The probe's answer: the files it asks for, and per project the
    /// services' hashes, images and containers.
    fn probe(h: &FakeDocker, script: &str) -> String {
        let mut out = String::new();
        let mut rendered: Vec<String> = Vec::new();
        for line in script.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["file", tag, path] = words.as_slice() {
                let path = path.trim_matches('\'');
                match h.files.get(path) {
                    Some(c) => out.push_str(&format!("{tag} {}\n", b64(c))),
                    None => out.push_str(&format!("{tag} -\n")),
                }
            } else if let Some(rest) = line.strip_prefix("printf '%s' '") {
                let enc = rest.split('\'').next().unwrap_or_default();
                rendered.push(decode_b64("test", enc).expect("b64"));
            } else if let ["containers", x, p] = words.as_slice() {
                let project = p.to_string();
                let env = rendered.last().cloned().unwrap_or_default();
                let parts: Vec<&str> = rendered.iter().map(String::as_str).collect();
                let img = format!("app:{}", tag_of(&env));
                out.push_str(&format!("{x}H web {}\n", hash_of(&parts)));
                out.push_str(&format!(
                    "{x}JSON {}\n",
                    b64(&json!({"services": {"web": {"image": img}}}).to_string())
                ));
                let id = h.images.get(&img).map_or("-", String::as_str);
                out.push_str(&format!("{x}I {img} {id}\n"));
                for (s, hash, i, st) in h.containers.get(&project).into_iter().flatten() {
                    out.push_str(&format!("{x}C {s} {hash} {i} {st} /{project}-{s}-1\n"));
                }
                rendered.clear();
            }
        }
        out
    }

    /// `docker compose up -d`: the project's one service from its files.
    fn up(h: &mut FakeDocker, script: &str) {
        let words: Vec<&str> = script.split_whitespace().collect();
        let arg = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .map(|i| words[i + 1].trim_matches('\'').to_string())
        };
        let project = arg("-p").expect("project");
        let dir = arg("--project-directory").expect("dir");
        let names: Vec<String> = words
            .windows(2)
            .filter(|w| w[0] == "-f")
            .map(|w| w[1].trim_matches('\'').to_string())
            .collect();
        let env = h
            .files
            .get(&format!("{dir}/.env"))
            .cloned()
            .unwrap_or_default();
        let mut parts: Vec<String> = names
            .iter()
            .map(|n| h.files.get(n).cloned().unwrap_or_default())
            .collect();
        parts.push(env.clone());
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let id = h
            .images
            .get(&format!("app:{}", tag_of(&env)))
            .cloned()
            .unwrap_or_default();
        h.containers.insert(
            project,
            vec![("web".into(), hash_of(&parts), id, "running".into())],
        );
    }

    /// The health gate: passes while a container runs a healthy tag's image.
    fn gate(h: &FakeDocker) -> &'static str {
        let live = h.containers.values().flatten().any(|(_, _, id, _)| {
            h.healthy_tags
                .iter()
                .any(|t| h.images.get(&format!("app:{t}")) == Some(id))
        });
        if live {
            "GATE ok 1\n"
        } else {
            "GATE fail answered 404\n"
        }
    }

    fn fake() -> FakeDocker {
        let mut docker = Docker::default();
        docker.images.insert("app:v1".into(), "sha256:1".into());
        docker.images.insert("app:v2".into(), "sha256:2".into());
        docker.images.insert("app:broken".into(), "sha256:3".into());
        docker.healthy_tags = vec!["v1".into(), "v2".into()];
        FakeHost::with_state(docker)
            .handle(Match::prefix("file() {"), |h, script, _| {
                ok(probe(h, script))
            })
            .handle(Match::contains(" up -d "), |h, script, _| {
                up(h, script);
                ok("")
            })
            .handle(Match::prefix("i=0;"), |h, _, _| ok(gate(h)))
    }

    fn with_tag(tag: &str) -> Value {
        let mut v = base();
        v["env"]["IMAGE_TAG"] = json!(tag);
        v
    }

    #[test]
    fn apply_then_plan_is_empty_and_a_new_tag_or_image_is_a_change() {
        let mut h = fake();
        let p = with_tag("v1");
        let pl = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "create /opt/deploy/prod/app.yml",
                "create /opt/deploy/prod/.env",
                "record the files in /opt/deploy/prod/.herd-compose",
                "web: create"
            ]
        );
        assert_eq!(pl.diffs.len(), 2);
        assert_eq!(h.scripts.len(), 1, "the plan is one round trip");
        let out = DynModule::apply(&ComposeDeploy, &p, pl, &mut h).expect("apply");
        assert!(out.changed);
        let again = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);

        let pl = DynModule::plan(&ComposeDeploy, &with_tag("v2"), &mut h).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "update /opt/deploy/prod/.env",
                "web: recreate (configuration changed)"
            ]
        );
        // The same tag now naming another image recreates the container.
        h.images.insert("app:v1".into(), "sha256:11".into());
        let pl = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        assert_eq!(pl.changes, ["web: recreate (image app:v1 changed)"]);
        // pull: never refuses an image the host does not have.
        let mut v = with_tag("v9");
        v["pull"] = json!("never");
        let e = DynModule::plan(&ComposeDeploy, &v, &mut h).expect_err("no image");
        assert!(e.to_string().contains("pull is `never`"), "{e}");
    }

    #[test]
    fn a_failed_health_gate_rolls_back_to_the_previous_files() {
        let mut h = fake();
        let p = with_tag("v1");
        let pl = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        DynModule::apply(&ComposeDeploy, &p, pl, &mut h).expect("apply");
        let broken = with_tag("broken");
        let pl = DynModule::plan(&ComposeDeploy, &broken, &mut h).expect("plan");
        h.scripts.clear();
        let e = DynModule::apply(&ComposeDeploy, &broken, pl, &mut h).expect_err("gate");
        let msg = e.to_string();
        assert!(
            msg.starts_with("the health gate failed: answered 404; rolled back"),
            "{msg}"
        );
        let s = h.scripts.join("\n---\n");
        assert!(
            s.contains("cp -p -- .env /opt/deploy/prod/.herd-previous/"),
            "{s}"
        );
        assert!(
            s.contains("cp -p -- /opt/deploy/prod/.herd-previous/.env .env"),
            "{s}"
        );
        assert!(s.contains("up -d --pull never --remove-orphans"), "{s}");
        assert!(
            !s.contains(" down") && !s.contains("prune"),
            "nothing removed: {s}"
        );
        let ModuleError::Failed { result, .. } = e else {
            panic!("not a task failure")
        };
        assert_eq!(result["rolled_back"], json!(true));
    }

    #[test]
    fn blue_green_deploys_the_idle_color_and_switches() {
        let mut h = fake();
        let mut v = with_tag("v1");
        v["strategy"] = json!("blue_green");
        v["colors"] = json!({"blue": {"PORT": 8081}, "green": {"PORT": 8082}});
        v["switch"] = json!({"file": "/opt/deploy/prod/upstream", "blue": "127.0.0.1:8081\n", "green": "127.0.0.1:8082\n", "drain": 0});
        let (first, _) = {
            let pl = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
            let c = pl.changes.clone();
            (
                c,
                DynModule::apply(&ComposeDeploy, &v, pl, &mut h).expect("apply"),
            )
        };
        assert_eq!(first[0], "deploy shop-blue (blue)");
        assert_eq!(h.files["/opt/deploy/prod/upstream"], "127.0.0.1:8081\n");
        assert_eq!(h.files["/opt/deploy/prod/.herd-live"], "blue\n");
        let again = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);

        v["env"]["IMAGE_TAG"] = json!("v2");
        let pl = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
        assert_eq!(
            pl.changes.first().map(String::as_str),
            Some("deploy shop-green (green)")
        );
        assert_eq!(
            pl.changes.last().map(String::as_str),
            Some("stop shop-blue")
        );
        DynModule::apply(&ComposeDeploy, &v, pl, &mut h).expect("apply");
        assert_eq!(h.files["/opt/deploy/prod/upstream"], "127.0.0.1:8082\n");
        assert!(h
            .scripts
            .last()
            .is_some_and(|s| s.contains("-p shop-blue stop")));
        assert!(DynModule::plan(&ComposeDeploy, &v, &mut h)
            .expect("plan")
            .is_empty());

        // A switch file changed by hand is put back, without a deploy.
        h.files.insert(
            "/opt/deploy/prod/upstream".into(),
            "127.0.0.1:8081\n".into(),
        );
        let pl = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
        assert_eq!(pl.changes, ["switch /opt/deploy/prod/upstream to green"]);
    }
}
