//! `docker_install`: Docker Engine, the compose v2 plugin, the `docker`
//! group's members and `/etc/docker/daemon.json`, on Debian-family hosts.
//!
//! `source: distro` installs the distribution's `docker.io`, and compose v2
//! from `docker-compose` when its version is 2.x, else from
//! `docker-compose-plugin` or `docker-compose-v2`, whichever the package
//! lists have ("where available": none is a warning, not a failure).
//! `source: docker` writes Docker's signing key to
//! `/etc/apt/keyrings/docker.asc` and a deb822 source
//! `/etc/apt/sources.list.d/docker.sources` (rendered by
//! `deb822_repository`), then installs `docker-ce docker-ce-cli
//! containerd.io docker-compose-plugin`. Packages go through the `apt`
//! module (lists refreshed first), so its plan and failures are the same.
//!
//! `daemon.json` is `daemon` merged over the production defaults
//! ([`defaults`]; nested maps merge, `null` drops a key), plus
//! `registry_mirrors`, `insecure_registries` and `metrics_addr`, written
//! with sorted keys. It is compared as JSON, so reformatting the file by
//! hand is not a change. A new file is first checked by dockerd itself
//! with the service's own flags: `dockerd --validate` where it exists
//! (23.0 on); before that (Debian bookworm's 20.10) dockerd loads the
//! file and is stopped at its pid-file check by a pid file naming a live
//! process, which comes after every config check dockerd does before it
//! starts and before it touches anything. Only then is the file written and
//! the daemon restarted; if it does not answer again, the previous file is
//! put back (or removed), the daemon restarted on it, and the task fails
//! with the daemon's own error from the journal.
//!
//! The daemon restarts only when the file changed. The plan is one probe
//! script and never changes anything. `min_version` fails a host whose
//! engine (the running server, else the installed package) is older.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::account::{de_opt_list, run_argv, tagged_all, Group, Passwd};
use crate::builtin::apt::{parse_dpkg, parse_policy, Apt, AptParams, Installed};
use crate::builtin::deb822_repository::{self, Deb822Params};
use crate::host::FileAttrs;
use crate::params::{de_bool, de_opt_string, de_opt_u64, yes};
use crate::probe::{tagged, tagged_file, tagged_line, ProbeError};
use crate::shell_quote::{join, quote};
use crate::textfile;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const KEYRING: &str = "/etc/apt/keyrings/docker.asc";
/// The deb822 source's `name`: the file is `/etc/apt/sources.list.d/docker.sources`.
const SOURCE_NAME: &str = "docker";
const GROUP: &str = "docker";
/// How long to wait for the daemon to answer after a restart, by default.
const DEFAULT_RESTART_TIMEOUT: u64 = 60;

/// Where the packages come from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Distro,
    Docker,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerInstallParams {
    /// `distro`: Debian's `docker.io` and a compose v2 package; `docker`: `docker-ce` and its
    /// plugins from Docker's repository.
    #[serde(default)]
    pub source: Source,
    /// Install the compose v2 plugin too.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub compose: bool,
    /// Users added to the `docker` group (they must exist).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub users: Option<Vec<String>>,
    /// daemon.json settings merged over the defaults (`log-driver: json-file`, `log-opts
    /// {max-size: 10m, max-file: "3"}`, `storage-driver: overlay2`, `live-restore: true`,
    /// `default-ulimits {nofile: 64000/64000}`, `userland-proxy: false`): maps merge key by
    /// key, `null` removes a key. `pidfile` is refused.
    #[serde(default)]
    pub daemon: Option<Value>,
    /// Written as daemon.json's `registry-mirrors` (empty: no key).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub registry_mirrors: Option<Vec<String>>,
    /// Written as daemon.json's `insecure-registries` (empty: no key).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub insecure_registries: Option<Vec<String>>,
    /// Written as daemon.json's `metrics-addr` (empty: no key).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub metrics_addr: Option<String>,
    /// E.g. `"20.10"`: an older engine fails the host.
    #[serde(default, deserialize_with = "de_opt_version")]
    pub min_version: Option<String>,
    /// `source: docker`: the repository (default
    /// `https://download.docker.com/linux/<os id>`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub repo_url: Option<String>,
    /// `source: docker`: the ASCII-armored signing key; without it the key
    /// is fetched from `<repo_url>/gpg` on the host when missing.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub repo_key: Option<String>,
    /// Seconds to wait for the daemon to answer after a restart.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub restart_timeout: Option<u64>,
}

/// A version as a string or a whole number; YAML reads `20.10` as the
/// number 20.1, which would silently mean another version, so a
/// fractional number is refused with the fix.
fn de_opt_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        Value::Number(n) if n.is_u64() => Ok(Some(n.to_string())),
        Value::Number(n) => Err(serde::de::Error::custom(format!(
            "YAML reads {n} as a number, which loses trailing zeros: quote the version, e.g. \"20.10\""
        ))),
        _ => Err(serde::de::Error::custom("expected a version such as \"20.10\"")),
    }
}

pub struct DockerInstall;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: DockerInstall::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// The production guide's daemon settings, under the user's `daemon` map.
pub fn defaults() -> Map<String, Value> {
    let v = json!({
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "storage-driver": "overlay2",
        "live-restore": true,
        "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},
        "userland-proxy": false,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Merge `over` into `base`: nested maps merge key by key, `null` removes.
fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (_, Value::Null) => {
                base.remove(k);
            }
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The same value with every map's keys in sorted order, whatever order
/// the map type keeps, so the file is byte-for-byte stable.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// daemon.json as the parameters want it.
pub fn daemon_config(p: &DockerInstallParams) -> Result<Value, ModuleError> {
    let mut cfg = defaults();
    match &p.daemon {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => merge(&mut cfg, m),
        Some(_) => {
            return Err(invalid(
                "daemon",
                "expected a mapping of daemon.json keys, e.g. {log-driver: local}",
            ))
        }
    }
    // dockerd takes log-opts as strings only; YAML makes `max-file: 3` a
    // number, which dockerd would refuse.
    if let Some(Value::Object(opts)) = cfg.get_mut("log-opts") {
        for v in opts.values_mut() {
            match v {
                Value::Number(n) => *v = Value::String(n.to_string()),
                Value::Bool(b) => *v = Value::String(b.to_string()),
                _ => {}
            }
        }
    }
    for (key, list) in [
        ("registry-mirrors", &p.registry_mirrors),
        ("insecure-registries", &p.insecure_registries),
    ] {
        // An empty list is the same as none: dockerd's default.
        if let Some(l) = list.as_ref().filter(|l| !l.is_empty()) {
            cfg.insert(key.into(), json!(l));
        }
    }
    if let Some(m) = p.metrics_addr.as_ref().filter(|m| !m.trim().is_empty()) {
        cfg.insert("metrics-addr".into(), json!(m.trim()));
    }
    if cfg.contains_key("pidfile") {
        // The check before a restart points dockerd at a pid file of its
        // own; one set in the file would conflict with it.
        return Err(invalid(
            "daemon.pidfile",
            "not supported: set the pid file with the service's -p flag",
        ));
    }
    Ok(sorted(&Value::Object(cfg)))
}

/// The file's text: two-space indented JSON, sorted keys, final newline.
pub fn daemon_text(cfg: &Value) -> String {
    let mut s = serde_json::to_string_pretty(cfg).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// `20.10.24+dfsg1-1+deb12u1` -> [20, 10, 24]: the leading dotted numbers
/// after any epoch.
pub fn version_parts(v: &str) -> Vec<u64> {
    let v = v.trim();
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let mut out = Vec::new();
    for part in v.split('.') {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        match digits.parse() {
            Ok(n) => out.push(n),
            Err(_) => break,
        }
        if digits.len() != part.len() {
            break;
        }
    }
    out
}

/// Whether `have` is older than `min`, component by component (missing
/// components count as 0).
pub fn older_than(have: &str, min: &str) -> bool {
    let (h, m) = (version_parts(have), version_parts(min));
    for i in 0..h.len().max(m.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or(0),
            m.get(i).copied().unwrap_or(0),
        );
        if a != b {
            return a < b;
        }
    }
    false
}

/// Distribution packages that give `docker compose` (v2), in preference order.
const COMPOSE_PKGS: [&str; 3] = [
    "docker-compose",
    "docker-compose-plugin",
    "docker-compose-v2",
];
const DOCKER_CE_PKGS: [&str; 4] = [
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-compose-plugin",
];

/// Whether a package (name, version) gives compose v2: `docker-compose`
/// only from version 2 (1.x is the old Python tool).
fn is_compose_v2(name: &str, version: &str) -> bool {
    match name {
        "docker-compose" => version_parts(version).first().is_some_and(|m| *m >= 2),
        "docker-compose-plugin" | "docker-compose-v2" => true,
        _ => false,
    }
}

/// The compose v2 package to install from the candidates apt knows, as an
/// apt `name=version` spec: with the version, an installed
/// `docker-compose` 1.x is upgraded to the 2.x candidate, where the bare
/// name would count as already installed.
pub fn choose_compose(candidates: &HashMap<String, Option<String>>) -> Option<String> {
    COMPOSE_PKGS.iter().find_map(|n| {
        candidates
            .get(*n)
            .cloned()
            .flatten()
            .filter(|v| is_compose_v2(n, v))
            .map(|v| format!("{n}={v}"))
    })
}

/// The package name of an apt spec (`name=version`).
fn spec_name(spec: &str) -> &str {
    spec.split_once('=').map_or(spec, |(n, _)| n)
}

/// The argv of a unit's `ExecStart` as `systemctl show -p ExecStart
/// --value` prints it (`{ path=... ; argv[]=/usr/sbin/dockerd -H fd://
/// $DOCKER_OPTS ; ... }`), without words that need the unit's environment.
pub fn exec_argv(show: &str) -> Vec<String> {
    let Some(rest) = show.split_once("argv[]=").map(|(_, r)| r) else {
        return Vec::new();
    };
    let argv = rest.split(" ;").next().unwrap_or("");
    argv.split_whitespace()
        .filter(|w| !w.contains('$'))
        .map(str::to_string)
        .collect()
}

/// What the probe found.
#[derive(Debug, Clone, Default)]
struct Facts {
    os_id: String,
    codename: String,
    arch: String,
    lists: bool,
    dpkg: HashMap<String, Installed>,
    candidates: HashMap<String, Option<String>>,
    daemon_json: Option<String>,
    key: Option<String>,
    sources: Option<String>,
    active: bool,
    enabled: bool,
    server: Option<String>,
    compose_version: Option<String>,
    group: Option<Group>,
    users: Vec<Passwd>,
}

impl Facts {
    fn installed(&self, name: &str) -> Option<&Installed> {
        self.dpkg.get(name).filter(|i| i.is_installed())
    }
}

fn all_pkgs() -> Vec<&'static str> {
    let mut v = vec!["docker.io"];
    v.extend(COMPOSE_PKGS);
    v.extend(DOCKER_CE_PKGS);
    v.sort();
    v.dedup();
    v
}

const FILE_FN: &str = "file() { if [ -f \"$2\" ]; then printf '%s ' \"$1\"; base64 -w0 < \"$2\" || exit 3; echo; else echo \"$1 -\"; fi; }\n";

fn probe_script(users: &[String]) -> String {
    let pkgs = join(&all_pkgs());
    let mut s = String::from("# docker_install probe\n");
    s.push_str(FILE_FN);
    s.push_str(
        ". /etc/os-release 2>/dev/null\n\
         echo \"OS ${ID:-unknown} ${VERSION_CODENAME:-unknown}\"\n\
         echo \"ARCH $(dpkg --print-architecture 2>/dev/null)\"\n\
         if ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then echo 'LISTS yes'; fi\n",
    );
    s.push_str(&format!(
        "dpkg-query -W -f='PKG ${{Package}} ${{Status}} ${{Version}}\\n' -- {pkgs} 2>/dev/null\n\
         echo POLICY\napt-cache policy -- {pkgs} 2>/dev/null\necho ENDPOLICY\n"
    ));
    s.push_str(&format!("file DJ {DAEMON_JSON}\nfile KEY {KEYRING}\n"));
    s.push_str(&format!(
        "file SRC {}\n",
        quote(&deb822_repository::file_name(SOURCE_NAME))
    ));
    s.push_str(
        "a=$(systemctl is-active docker.service 2>/dev/null); echo \"ACTIVE $a\"\n\
         echo \"ENABLED $(systemctl is-enabled docker.service 2>/dev/null)\"\n\
         if [ \"$a\" = active ] && command -v docker >/dev/null 2>&1; then\n\
         echo \"SERVER $(timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null)\"\n\
         echo \"COMPOSE $(timeout 15 docker compose version --short 2>/dev/null)\"\nfi\n",
    );
    s.push_str(&format!("getent group {GROUP} | sed 's/^/G /'\n"));
    if !users.is_empty() {
        s.push_str(&format!(
            "getent passwd -- {} | sed 's/^/U /'\n",
            join(users)
        ));
    }
    s.push_str("true\n");
    s
}

fn section<'a>(out: &'a str, start: &str, end: &str) -> &'a str {
    out.split_once(&format!("{start}\n"))
        .map(|(_, rest)| rest.split(end).next().unwrap_or(""))
        .unwrap_or("")
}

fn parse_probe(out: &str) -> Result<Facts, ProbeError> {
    let file = |tag: &str| tagged_file(out, tag);
    let word = |tag: &str| -> Option<String> {
        tagged(out, tag)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let os = tagged_line(out, "OS")?;
    let mut os = os.split_whitespace();
    Ok(Facts {
        os_id: os.next().unwrap_or("unknown").to_string(),
        codename: os.next().unwrap_or("unknown").to_string(),
        arch: word("ARCH").unwrap_or_default(),
        lists: tagged(out, "LISTS").is_some(),
        dpkg: parse_dpkg(out),
        candidates: parse_policy(section(out, "POLICY", "ENDPOLICY")),
        daemon_json: file("DJ")?,
        key: file("KEY")?,
        sources: file("SRC")?,
        active: word("ACTIVE").as_deref() == Some("active"),
        enabled: word("ENABLED").as_deref() == Some("enabled"),
        server: word("SERVER"),
        compose_version: word("COMPOSE"),
        group: tagged_all(out, "G")
            .filter_map(Group::parse)
            .find(|g| g.name == GROUP),
        users: tagged_all(out, "U").filter_map(Passwd::parse).collect(),
    })
}

/// How the signing key gets to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum KeyAction {
    Fetch(String),
    Write(String),
}

/// Which compose package apply installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
enum Compose {
    #[default]
    Nothing,
    Install(String),
    /// Chosen from the lists refreshed for the engine's install.
    ChooseAfterUpdate,
}

/// What the plan decided, for apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Planned {
    key: Option<KeyAction>,
    sources: Option<String>,
    install: Vec<String>,
    compose: Compose,
    users: Vec<String>,
    /// The new daemon.json, when it changes.
    daemon: Option<String>,
    /// What it replaces (`None`: there was no file), for the rollback.
    daemon_before: Option<String>,
    enable: bool,
    start: bool,
}

fn deb822_params(repo_url: &str, codename: &str, arch: &str) -> Result<Deb822Params, ModuleError> {
    let mut v = json!({
        "name": SOURCE_NAME,
        "types": ["deb"],
        "uris": [repo_url],
        "suites": [codename],
        "components": ["stable"],
        "signed_by": KEYRING,
    });
    if !arch.is_empty() {
        v["architectures"] = json!([arch]);
    }
    crate::module::parse_params::<Deb822Params>(DockerInstall::NAME, &v).map_err(Into::into)
}

fn repo_url(p: &DockerInstallParams, f: &Facts) -> Result<String, ModuleError> {
    if let Some(u) = p.repo_url.as_ref().filter(|u| !u.trim().is_empty()) {
        return Ok(u.trim().trim_end_matches('/').to_string());
    }
    match f.os_id.as_str() {
        "debian" | "ubuntu" | "raspbian" => {
            Ok(format!("https://download.docker.com/linux/{}", f.os_id))
        }
        other => Err(ModuleError::failed(format!(
            "source: docker needs Debian, Ubuntu or Raspbian (this host is `{other}`), or a repo_url"
        ))),
    }
}

/// The plan, from the parameters and the facts alone (no host access), so
/// it can be unit-tested on any facts.
fn decide(p: &DockerInstallParams, f: &Facts) -> Result<(Plan, Planned), ModuleError> {
    let mut plan = Plan::default();
    let mut planned = Planned::default();
    let mut warnings: Vec<String> = Vec::new();
    let users: Vec<String> = p.users.clone().unwrap_or_default();

    // Packages.
    let mut install: Vec<String> = Vec::new();
    match p.source {
        Source::Distro => {
            if let Some(i) = f.installed("docker-ce") {
                return Err(ModuleError::failed(format!(
                    "docker-ce {} from Docker's repository is installed: use `source: docker`, \
                     or remove it before installing the distribution's docker.io",
                    i.version
                )));
            }
            if f.installed("docker.io").is_none() {
                install.push("docker.io".into());
            }
            if p.compose {
                let have = COMPOSE_PKGS.iter().find_map(|n| {
                    f.installed(n)
                        .filter(|i| is_compose_v2(n, &i.version))
                        .map(|_| n.to_string())
                });
                if have.is_none() {
                    match choose_compose(&f.candidates) {
                        Some(c) => {
                            install.push(c.clone());
                            planned.compose = Compose::Install(c);
                        }
                        None if !install.is_empty() || !f.lists => {
                            planned.compose = Compose::ChooseAfterUpdate;
                        }
                        None => warnings.push(
                            "no compose v2 package (docker-compose 2.x, docker-compose-plugin, \
                             docker-compose-v2) in the package lists: compose is not installed"
                                .into(),
                        ),
                    }
                }
            }
        }
        Source::Docker => {
            if let Some(i) = f.installed("docker.io") {
                return Err(ModuleError::failed(format!(
                    "the distribution's docker.io {} is installed: use `source: distro`, \
                     or remove it before installing docker-ce from Docker's repository",
                    i.version
                )));
            }
            let url = repo_url(p, f)?;
            if f.codename == "unknown" || f.codename.is_empty() {
                return Err(ModuleError::failed(
                    "the host's /etc/os-release has no VERSION_CODENAME for Docker's repository",
                ));
            }
            match &p.repo_key {
                Some(k) if !k.trim().is_empty() => {
                    let want = format!("{}\n", k.trim_end());
                    if f.key.as_deref() != Some(want.as_str()) {
                        plan.changes.push(format!(
                            "{} {KEYRING}",
                            if f.key.is_some() { "update" } else { "write" }
                        ));
                        planned.key = Some(KeyAction::Write(want));
                    }
                }
                _ => {
                    if f.key.is_none() {
                        let key_url = format!("{url}/gpg");
                        plan.changes.push(format!(
                            "fetch Docker's signing key from {key_url} to {KEYRING}"
                        ));
                        planned.key = Some(KeyAction::Fetch(key_url));
                    }
                }
            }
            let src = deb822_repository::render(&deb822_params(&url, &f.codename, &f.arch)?)?;
            let path = deb822_repository::file_name(SOURCE_NAME);
            if f.sources.as_deref() != Some(src.as_str()) {
                plan.changes.push(format!(
                    "{} {path}",
                    if f.sources.is_some() {
                        "update"
                    } else {
                        "write"
                    }
                ));
                if let Some(d) = textfile::diff(
                    &path,
                    f.sources.as_deref().unwrap_or("").as_bytes(),
                    src.as_bytes(),
                ) {
                    plan.diffs.push(d);
                }
                planned.sources = Some(src);
            }
            for pkg in DOCKER_CE_PKGS {
                if pkg == "docker-compose-plugin" && !p.compose {
                    continue;
                }
                if f.installed(pkg).is_none() {
                    install.push(pkg.into());
                }
            }
        }
    }
    if !install.is_empty() {
        let names: Vec<&str> = install.iter().map(|s| spec_name(s)).collect();
        plan.changes.push(format!("install {}", names.join(", ")));
    }
    if planned.compose == Compose::ChooseAfterUpdate {
        plan.changes.push(
            "install compose v2 (docker-compose 2.x, docker-compose-plugin or docker-compose-v2, \
             the first the refreshed package lists have)"
                .into(),
        );
    }
    let will_install = !install.is_empty() || planned.compose == Compose::ChooseAfterUpdate;
    planned.install = install;

    // The engine version, when one is already there.
    let engine_pkg = match p.source {
        Source::Distro => "docker.io",
        Source::Docker => "docker-ce",
    };
    let known = f
        .server
        .clone()
        .or_else(|| f.installed(engine_pkg).map(|i| i.version.clone()));
    if let (Some(min), Some(have)) = (&p.min_version, &known) {
        if version_parts(min).is_empty() {
            return Err(invalid("min_version", "expected a version such as 20.10"));
        }
        if older_than(have, min) {
            return Err(ModuleError::failed(format!(
                "the Docker engine on this host is {have}, older than min_version {min}"
            )));
        }
    }

    // Group members.
    for u in &users {
        let Some(pw) = f.users.iter().find(|pw| &pw.name == u) else {
            return Err(ModuleError::failed(format!(
                "user `{u}` does not exist on this host: create it before adding it to the {GROUP} group"
            )));
        };
        let member = f
            .group
            .as_ref()
            .is_some_and(|g| g.members.iter().any(|m| m == u) || g.gid == pw.gid);
        if !member && !planned.users.contains(u) {
            plan.changes.push(format!("add {u} to group {GROUP}"));
            planned.users.push(u.clone());
        }
    }

    // daemon.json.
    let cfg = daemon_config(p)?;
    let text = daemon_text(&cfg);
    let same = f
        .daemon_json
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .is_some_and(|have| have == cfg);
    if !same {
        plan.changes.push(format!(
            "{} {DAEMON_JSON}",
            if f.daemon_json.is_some() {
                "update"
            } else {
                "write"
            }
        ));
        if let Some(d) = textfile::diff(
            DAEMON_JSON,
            f.daemon_json.as_deref().unwrap_or("").as_bytes(),
            text.as_bytes(),
        ) {
            plan.diffs.push(d);
        }
        plan.changes.push("restart docker".into());
        planned.daemon = Some(text);
        planned.daemon_before = f.daemon_json.clone();
    }

    // The service: a fresh package enables and starts it itself.
    if !will_install {
        if !f.enabled {
            plan.changes.push("enable docker".into());
            planned.enable = true;
        }
        if !f.active && planned.daemon.is_none() {
            plan.changes.push("start docker".into());
            planned.start = true;
        }
    }

    plan.result.insert("source".into(), json!(p.source));
    plan.result.insert("daemon_file".into(), json!(DAEMON_JSON));
    plan.result.insert("daemon".into(), cfg);
    plan.result.insert("users".into(), json!(users));
    if let Some(v) = &f.server {
        plan.result.insert("version".into(), json!(v));
    }
    if let Some(v) = &f.compose_version {
        plan.result.insert("compose_version".into(), json!(v));
    }
    if !warnings.is_empty() {
        plan.result.insert("warnings".into(), json!(warnings));
    }
    Ok((plan, planned))
}

/// Install `pkgs` with the `apt` module, package lists refreshed first.
fn apt_install(host: &mut dyn Host, pkgs: &[String]) -> Result<(), ModuleError> {
    let p = AptParams {
        name: Some(json!(pkgs)),
        update_cache: true,
        ..AptParams::default()
    };
    let plan = Module::plan(&Apt, &p, host)?;
    if !plan.is_empty() {
        Module::apply(&Apt, &p, plan, host)?;
    }
    Ok(())
}

/// The candidates of the compose packages, from the current lists.
fn compose_candidates(host: &mut dyn Host) -> Result<HashMap<String, Option<String>>, ModuleError> {
    let out = host.run(
        &format!(
            "# docker_install compose\napt-cache policy -- {} 2>/dev/null; true",
            join(&COMPOSE_PKGS)
        ),
        None,
    )?;
    Ok(parse_policy(&out.stdout_str()))
}

/// What dockerd said about a candidate daemon.json.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Validation {
    ok: bool,
    /// `dockerd --validate` or the config load stopped at the pid file.
    how: &'static str,
    /// dockerd's own words when it refused the file.
    error: String,
}

fn validate_script(argv: &[String]) -> String {
    let (bin, flags) = match argv.split_first() {
        Some((b, f)) if b.ends_with("dockerd") => (quote(b), join(f)),
        _ => ("dockerd".to_string(), String::new()),
    };
    format!(
        "# docker_install validate\n\
         command -v {bin} >/dev/null 2>&1 || {{ echo 'MODE none'; exit 0; }}\n\
         t=$(mktemp /tmp/.herd-daemon-json.XXXXXX) || exit 1\n\
         p=$(mktemp /tmp/.herd-dockerd-pid.XXXXXX) || {{ rm -f \"$t\"; exit 1; }}\n\
         trap 'rm -f \"$t\" \"$p\"' EXIT; trap 'exit 143' HUP INT TERM\n\
         cat > \"$t\"\n\
         echo $$ > \"$p\"\n\
         echo \"TMP $t\"\n\
         if {bin} --help 2>&1 | grep -q -e '--validate'; then\n\
         echo 'MODE validate'\n\
         out=$(timeout 60 {bin} {flags} --validate --config-file \"$t\" 2>&1) && echo 'VALID yes'\n\
         else\n\
         echo 'MODE load'\n\
         out=$(timeout 60 {bin} {flags} --config-file \"$t\" --pidfile \"$p\" 2>&1)\n\
         case \"$out\" in *'pid file found'*) echo 'VALID yes';; esac\n\
         fi\n\
         printf '%s\\n' \"$out\" | sed 's/^/OUT /'\n"
    )
}

fn parse_validation(out: &str) -> Validation {
    let how = match tagged(out, "MODE").map(str::trim) {
        Some("validate") => "dockerd --validate",
        Some("load") => "dockerd's config load, stopped at its pid file check",
        _ => "none: dockerd is not installed",
    };
    let error: Vec<&str> = tagged_all(out, "OUT")
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("level=info") && !l.contains("pid file found"))
        .collect();
    // dockerd names the file it read: the temp copy, which is gone.
    let mut error = error.join("; ");
    if let Some(t) = tagged(out, "TMP").map(str::trim).filter(|t| !t.is_empty()) {
        error = error.replace(t, "the new daemon.json");
    }
    Validation {
        ok: tagged(out, "VALID").is_some(),
        how,
        error,
    }
}

/// Restart (or start) the daemon and wait until it answers; prints `SINCE`
/// (for the journal), `UP <version>` or the failure.
fn restart_script(verb: &str, timeout: u64) -> String {
    format!(
        "# docker_install restart\n\
         echo \"SINCE $(date +%s)\"\n\
         systemctl reset-failed docker.service docker.socket >/dev/null 2>&1\n\
         r=$(timeout 120 systemctl {verb} docker.service 2>&1); rc=$?\n\
         [ -z \"$r\" ] || printf '%s\\n' \"$r\" | sed 's/^/ERR /'\n\
         if [ $rc -ne 0 ]; then echo \"STATE $(systemctl is-active docker.service 2>/dev/null)\"; exit 1; fi\n\
         i=0\n\
         while [ $i -lt {timeout} ]; do\n\
         if [ \"$(systemctl is-active docker.service 2>/dev/null)\" = failed ]; then break; fi\n\
         v=$(timeout 10 docker version --format '{{{{.Server.Version}}}}' 2>/dev/null) && {{ echo \"UP $v\"; exit 0; }}\n\
         i=$((i+1)); sleep 1\n\
         done\n\
         echo \"STATE $(systemctl is-active docker.service 2>/dev/null)\"\n\
         exit 1\n"
    )
}

/// The daemon's own reason, from the journal since `since` and the unit's status.
fn why_script(since: &str) -> String {
    let since = if since.chars().all(|c| c.is_ascii_digit()) && !since.is_empty() {
        format!("--since @{since}")
    } else {
        "-n 50".into()
    };
    format!(
        "# docker_install why\n\
         journalctl -u docker.service {since} -o cat --no-pager 2>/dev/null | \
         grep -i -e 'failed to start daemon' -e 'unable to configure' -e 'level=fatal' -e 'level=error' | \
         tail -n 5 | sed 's/^/J /'\n\
         systemctl status docker.service --no-pager -n 0 2>/dev/null | grep 'Active:' | sed 's/^ */S /'\n\
         true\n"
    )
}

fn parse_why(out: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for l in tagged_all(out, "J").map(str::trim) {
        if !l.is_empty() && !lines.contains(&l) {
            lines.push(l);
        }
    }
    // dockerd's final word is what users search for; keep at most three.
    let start = lines.len().saturating_sub(3);
    let mut why = lines[start..].join("; ");
    if let Some(s) = tagged(out, "S") {
        if !why.is_empty() {
            why.push_str("; ");
        }
        why.push_str(&format!("systemctl status: {}", s.trim()));
    }
    if why.is_empty() {
        why = "the journal has no error from dockerd".into();
    }
    why
}

/// Restart or start the daemon; `Err(reason)` when it did not come back.
fn bounce(
    host: &mut dyn Host,
    verb: &str,
    timeout: u64,
) -> Result<Result<String, String>, ModuleError> {
    let out = host.run(&restart_script(verb, timeout), None)?;
    let text = out.stdout_str();
    if out.success() {
        if let Some(v) = tagged(&text, "UP") {
            return Ok(Ok(v.trim().to_string()));
        }
    }
    let since = tagged(&text, "SINCE").unwrap_or("").trim().to_string();
    let why = host.run(&why_script(&since), None)?;
    let mut reason = parse_why(&why.stdout_str());
    let errs: Vec<&str> = tagged_all(&text, "ERR").map(str::trim).collect();
    if !errs.is_empty() && reason.starts_with("the journal has no error") {
        reason = errs.join("; ");
    }
    Ok(Err(reason))
}

fn write_daemon(host: &mut dyn Host, text: Option<&str>) -> Result<(), ModuleError> {
    match text {
        Some(t) => {
            textfile::run_checked(host, "create /etc/docker", "mkdir -p /etc/docker")?;
            let attrs = FileAttrs {
                mode: Some("0644".into()),
                ..FileAttrs::default()
            };
            host.write_file(DAEMON_JSON, t.as_bytes(), &attrs)?;
        }
        None => textfile::run_checked(
            host,
            "remove daemon.json",
            &format!("rm -f -- {DAEMON_JSON}"),
        )?,
    }
    Ok(())
}

fn versions(host: &mut dyn Host) -> Result<(Option<String>, Option<String>), ModuleError> {
    let out = host.run(
        "# docker_install version\n\
         echo \"SERVER $(timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null)\"\n\
         echo \"COMPOSE $(timeout 15 docker compose version --short 2>/dev/null)\"\n",
        None,
    )?;
    let text = out.stdout_str();
    let get = |t: &str| {
        tagged(&text, t)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Ok((get("SERVER"), get("COMPOSE")))
}

impl Module for DockerInstall {
    const NAME: &'static str = "docker_install";
    const DOC_SHORT: &'static str =
        "Install Docker Engine and compose v2, add users to the docker group, manage daemon.json.";
    const DOC_LONG: &'static str = r##"Ops modules: `docker_install` installs Docker Engine and the compose v2
plugin, adds `users` to the `docker` group and manages
`/etc/docker/daemon.json`. `source: distro` (the default) installs the
distribution's `docker.io`, and compose v2 from `docker-compose` when its
version is 2.x, else `docker-compose-plugin` or `docker-compose-v2`, whichever
the package lists have (none: a warning). `source: docker` writes Docker's
signing key to `/etc/apt/keyrings/docker.asc` and a deb822 source
`/etc/apt/sources.list.d/docker.sources`, then installs `docker-ce
docker-ce-cli containerd.io docker-compose-plugin` from download.docker.com.

- The defaults, from our production guide: `log-driver: json-file`,
  `log-opts {max-size: 10m, max-file: "3"}`, `storage-driver: overlay2`,
  `live-restore: true`, `default-ulimits {nofile: 64000/64000}`,
  `userland-proxy: false`. The file is written with sorted keys and
  compared as JSON (a hand-reformatted file with the same settings is no
  change); `--diff` shows it.
- The daemon restarts only when the file changed. dockerd checks a new file
  before it is written, with the service's own flags (so `hosts` in the file
  next to the unit's `-H fd://` is caught): `dockerd --validate` from 23.0;
  on 20.10 (Debian bookworm), which has no `--validate`, dockerd loads the
  file and is stopped at its pid-file check, which comes after all of its
  configuration checks (JSON, unknown keys, conflicts with the flags, the
  value checks it makes on load)
  and before it touches anything. A refused file fails the task with
  dockerd's message and nothing is changed.
- Some settings pass that check and fail only when the daemon starts (on
  20.10: an unknown `storage-driver`, say). If dockerd does not answer
  within `restart_timeout` after the restart, the previous daemon.json is
  put back (or removed, if there was none), the daemon restarted on it, and
  the task fails with dockerd's error from the journal and `systemctl
  status`. Settings dockerd accepts at start but that break containers later
  (an unknown `log-driver` on 20.10) are not caught.
- The result has `version` (the server's) and `compose_version`;
  `min_version` fails a host whose engine is older, in the plan when an
  engine is already there. A second run reports `changed=0`.
- `playbooks/docker-install.yml` with `inventories/docker-install.ini` is a
  runnable example against the test fleet (herd-11 and herd-12, which start
  without Docker and install it from the fleet's apt repository)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Docker with our production daemon settings
  docker_install:
    users: [deploy]
    daemon:                              # merged over the defaults below
      log-opts: {max-size: 50m}          # nested maps merge key by key
      userland-proxy: null               # null drops a default
    registry_mirrors: ["http://10.0.0.5:5000"]
    insecure_registries: ["10.0.0.5:5000"]
    metrics_addr: 127.0.0.1:9323
    min_version: "20.10"                 # quoted: YAML reads 20.10 as 20.1
    # source: distro|docker, compose: true, repo_url, repo_key, restart_timeout: 60
  register: docker   # docker.version, docker.compose_version, docker.daemon
"##;
    type Params = DockerInstallParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        // Parameter mistakes first, before looking at the host.
        daemon_config(p)?;
        if let Some(min) = &p.min_version {
            if version_parts(min).is_empty() {
                return Err(invalid("min_version", "expected a version such as 20.10"));
            }
        }
        let users = p.users.clone().unwrap_or_default();
        if let Some(u) = users
            .iter()
            .find(|u| u.starts_with('-') || u.contains([':', '\n']))
        {
            return Err(invalid("users", format!("`{u}` is not a user name")));
        }
        let out = host.run(&probe_script(&users), None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "looking at the host's Docker failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        let facts = parse_probe(&out.stdout_str())?;
        let (mut plan, planned) = decide(p, &facts)?;
        plan.keep_state(&planned)?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let planned: Planned = plan.state_as()?;
        let mut result = plan.result.clone();
        let mut warnings: Vec<Value> = result
            .get("warnings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let timeout = p.restart_timeout.unwrap_or(DEFAULT_RESTART_TIMEOUT).max(1);

        // Docker's repository: key, then the source that names it.
        match &planned.key {
            Some(KeyAction::Write(k)) => {
                textfile::run_checked(
                    host,
                    "create /etc/apt/keyrings",
                    "install -d -m 0755 /etc/apt/keyrings",
                )?;
                host.write_file(
                    KEYRING,
                    k.as_bytes(),
                    &FileAttrs {
                        mode: Some("0644".into()),
                        ..FileAttrs::default()
                    },
                )?;
            }
            Some(KeyAction::Fetch(url)) => {
                let u = quote(url);
                let script = format!(
                    "# docker_install key\nset -e\ninstall -d -m 0755 /etc/apt/keyrings\n\
                     t=$(mktemp /etc/apt/keyrings/.docker.XXXXXX); trap 'rm -f \"$t\"' EXIT; trap 'exit 143' HUP INT TERM\n\
                     if command -v curl >/dev/null 2>&1; then curl -fsSL --max-time 60 -o \"$t\" {u}; \
                     elif command -v wget >/dev/null 2>&1; then wget -q -T 60 -O \"$t\" {u}; \
                     else echo 'neither curl nor wget is installed on the host' >&2; exit 69; fi\n\
                     grep -q 'BEGIN PGP PUBLIC KEY BLOCK' \"$t\" || {{ echo 'not an ASCII-armored key' >&2; exit 70; }}\n\
                     chmod 0644 \"$t\"; mv -f \"$t\" {KEYRING}; trap - EXIT\n"
                );
                let out = host.run(&script, None)?;
                if !out.success() {
                    return Err(ModuleError::failed(format!(
                        "fetching Docker's signing key from {url} failed: {}",
                        out.stderr_str().trim_end()
                    )));
                }
            }
            None => {}
        }
        if let Some(src) = &planned.sources {
            host.write_file(
                &deb822_repository::file_name(SOURCE_NAME),
                src.as_bytes(),
                &FileAttrs {
                    mode: Some("0644".into()),
                    ..FileAttrs::default()
                },
            )?;
        }

        // Packages: the apt module refreshes the lists and installs.
        let mut installed: Vec<String> = Vec::new();
        if !planned.install.is_empty() {
            apt_install(host, &planned.install)?;
            installed.extend(planned.install.iter().map(|s| spec_name(s).to_string()));
        }
        if planned.compose == Compose::ChooseAfterUpdate {
            if planned.install.is_empty() {
                // No engine install refreshed the lists; the apt module
                // does, for the compose package alone.
                let p = AptParams {
                    update_cache: true,
                    ..AptParams::default()
                };
                let pl = Module::plan(&Apt, &p, host)?;
                Module::apply(&Apt, &p, pl, host)?;
            }
            match choose_compose(&compose_candidates(host)?) {
                Some(c) => {
                    apt_install(host, std::slice::from_ref(&c))?;
                    installed.push(spec_name(&c).to_string());
                }
                None => warnings.push(json!(
                    "no compose v2 package (docker-compose 2.x, docker-compose-plugin, \
                     docker-compose-v2) in the package lists: compose is not installed"
                )),
            }
        }
        result.insert("installed".into(), json!(installed));

        // Group members; the package made the group, unless it was a
        // package without one.
        if !planned.users.is_empty() {
            textfile::run_checked(
                host,
                "create the docker group",
                &format!("getent group {GROUP} >/dev/null || groupadd --system {GROUP}"),
            )?;
            for u in &planned.users {
                run_argv(host, &["usermod", "-a", "-G", GROUP, "--", u])?;
            }
        }

        // daemon.json: dockerd checks it first; the running daemon is only
        // touched once it said yes.
        let mut restarted = false;
        if let Some(text) = &planned.daemon {
            let show = host.run(
                "systemctl show -p ExecStart --value docker.service 2>/dev/null; true",
                None,
            )?;
            let argv = exec_argv(&show.stdout_str());
            let out = host.run(&validate_script(&argv), Some(text.as_bytes()))?;
            let v = parse_validation(&out.stdout_str());
            result.insert("validation".into(), json!(v.how));
            if !v.ok && v.how.starts_with("none") {
                return Err(ModuleError::Failed {
                    msg: "dockerd is not installed on this host, so the new daemon.json cannot be checked".into(),
                    result,
                });
            }
            if !v.ok {
                return Err(ModuleError::Failed {
                    msg: format!(
                        "dockerd refused the new {DAEMON_JSON} ({}): {}; the file and the running daemon were left as they were",
                        v.how,
                        if v.error.is_empty() { "no output" } else { &v.error }
                    ),
                    result,
                });
            }
            write_daemon(host, Some(text))?;
            match bounce(host, "restart", timeout)? {
                Ok(_) => restarted = true,
                Err(why) => {
                    write_daemon(host, planned.daemon_before.as_deref())?;
                    let back = match bounce(host, "restart", timeout)? {
                        Ok(v) => format!(
                            "the previous daemon.json was {} and docker {v} is running on it again",
                            if planned.daemon_before.is_some() {
                                "restored"
                            } else {
                                "removed (there was none)"
                            }
                        ),
                        Err(again) => format!(
                            "the previous daemon.json was put back, but docker did not come back on it either: {again}"
                        ),
                    };
                    result.insert("restarted".into(), json!(true));
                    return Err(ModuleError::Failed {
                        msg: format!(
                            "dockerd did not come back after the restart with the new {DAEMON_JSON}: {why}; {back}"
                        ),
                        result,
                    });
                }
            }
        }
        if planned.enable {
            run_argv(host, &["systemctl", "enable", "docker.service"])?;
        }
        if planned.start && !restarted {
            if let Err(why) = bounce(host, "start", timeout)? {
                return Err(ModuleError::Failed {
                    msg: format!("docker did not start: {why}"),
                    result,
                });
            }
        }
        result.insert("restarted".into(), json!(restarted));

        let (server, compose) = versions(host)?;
        if let Some(c) = &compose {
            result.insert("compose_version".into(), json!(c));
        }
        if !warnings.is_empty() {
            result.insert("warnings".into(), json!(warnings));
        }
        match &server {
            Some(v) => {
                result.insert("version".into(), json!(v));
            }
            None => {
                return Err(ModuleError::Failed {
                    msg: "the Docker daemon does not answer (`docker version` has no server)"
                        .into(),
                    result,
                })
            }
        }
        if let (Some(min), Some(have)) = (&p.min_version, &server) {
            if older_than(have, min) {
                return Err(ModuleError::Failed {
                    msg: format!(
                        "the Docker engine on this host is {have}, older than min_version {min}"
                    ),
                    result,
                });
            }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::module::parse_params;
    use crate::DynModule;

    fn params(v: Value) -> DockerInstallParams {
        parse_params::<DockerInstallParams>(DockerInstall::NAME, &v).expect("params")
    }

    const DEFAULT_FILE: &str = r#"{
  "default-ulimits": {
    "nofile": {
      "Hard": 64000,
      "Name": "nofile",
      "Soft": 64000
    }
  },
  "live-restore": true,
  "log-driver": "json-file",
  "log-opts": {
    "max-file": "3",
    "max-size": "10m"
  },
  "storage-driver": "overlay2",
  "userland-proxy": false
}
"#;

    #[test]
    fn daemon_json_is_the_defaults_with_the_map_merged_over_sorted() {
        let cfg = daemon_config(&params(json!({}))).expect("cfg");
        assert_eq!(daemon_text(&cfg), DEFAULT_FILE);
        let p = params(json!({
            "daemon": {"log-opts": {"max-size": "50m", "max-file": 5}, "userland-proxy": null,
                       "iptables": false, "default-ulimits": {"nproc": {"Name": "nproc", "Hard": 1, "Soft": 1}}},
            "registry_mirrors": ["http://10.0.0.1:5000"],
            "insecure_registries": "10.0.0.1:5000",
            "metrics_addr": "127.0.0.1:9323",
        }));
        let cfg = daemon_config(&p).expect("cfg");
        assert_eq!(cfg["log-opts"], json!({"max-file": "5", "max-size": "50m"}));
        assert!(cfg.get("userland-proxy").is_none());
        assert_eq!(cfg["iptables"], json!(false));
        assert_eq!(cfg["default-ulimits"]["nofile"]["Hard"], json!(64000));
        assert_eq!(cfg["default-ulimits"]["nproc"]["Name"], json!("nproc"));
        assert_eq!(cfg["registry-mirrors"], json!(["http://10.0.0.1:5000"]));
        assert_eq!(cfg["insecure-registries"], json!(["10.0.0.1:5000"]));
        assert_eq!(cfg["metrics-addr"], json!("127.0.0.1:9323"));
        let keys: Vec<&String> = cfg.as_object().expect("map").keys().collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        assert_eq!(keys, sorted_keys);
        // The same map in another order is the same file.
        let q = params(
            json!({"daemon": {"iptables": false, "default-ulimits": {"nproc": {"Soft": 1, "Hard": 1, "Name": "nproc"}},
            "userland-proxy": null, "log-opts": {"max-file": "5", "max-size": "50m"}},
            "metrics_addr": "127.0.0.1:9323", "insecure_registries": ["10.0.0.1:5000"],
            "registry_mirrors": "http://10.0.0.1:5000"}),
        );
        assert_eq!(
            daemon_text(&daemon_config(&q).expect("cfg")),
            daemon_text(&cfg)
        );
        let empty = params(
            json!({"registry_mirrors": [], "insecure_registries": null, "metrics_addr": ""}),
        );
        assert_eq!(
            daemon_text(&daemon_config(&empty).expect("cfg")),
            DEFAULT_FILE
        );
        assert!(daemon_config(&params(json!({"daemon": ["x"]}))).is_err());
        let e = daemon_config(&params(json!({"daemon": {"pidfile": "/x"}}))).expect_err("pidfile");
        assert!(e.to_string().contains("daemon.pidfile"), "{e}");
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert_eq!(version_parts("20.10.24+dfsg1-1+deb12u1+b6"), [20, 10, 24]);
        assert_eq!(version_parts("5:24.0.7-1~debian.12~bookworm"), [24, 0, 7]);
        assert_eq!(version_parts("2.26.1-4"), [2, 26, 1]);
        assert!(older_than("19.03.15", "20.10"));
        assert!(older_than("20.9", "20.10"));
        assert!(!older_than("20.10.24+dfsg1", "20.10"));
        assert!(!older_than("24.0.7", "20.10"));
        assert!(!older_than("20.10", "20.10.0"));
        let e = parse_params::<DockerInstallParams>("t", &json!({"min_version": 20.10}))
            .expect_err("float");
        assert!(e.to_string().contains("quote the version"), "{e}");
        assert_eq!(
            params(json!({"min_version": 20})).min_version.as_deref(),
            Some("20")
        );
    }

    #[test]
    fn compose_v2_comes_from_docker_compose_2_or_a_plugin_package() {
        let c = |pairs: &[(&str, Option<&str>)]| -> HashMap<String, Option<String>> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect()
        };
        assert_eq!(
            choose_compose(&c(&[
                ("docker-compose", Some("2.26.1-4")),
                ("docker-compose-plugin", Some("2.20"))
            ]))
            .as_deref(),
            Some("docker-compose=2.26.1-4")
        );
        assert_eq!(
            choose_compose(&c(&[
                ("docker-compose", Some("1.29.2-3")),
                ("docker-compose-v2", Some("2.24.6"))
            ]))
            .as_deref(),
            Some("docker-compose-v2=2.24.6")
        );
        assert_eq!(
            choose_compose(&c(&[("docker-compose", Some("1.29.2-3"))])),
            None
        );
        assert_eq!(choose_compose(&c(&[("docker-compose-plugin", None)])), None);
    }

    #[test]
    fn reads_the_units_flags_and_dockerds_verdict() {
        let show = "{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS ; ignore_errors=no ; start_time=[n/a] }";
        assert_eq!(
            exec_argv(show),
            [
                "/usr/sbin/dockerd",
                "-H",
                "fd://",
                "--containerd=/run/containerd/containerd.sock"
            ]
        );
        assert!(exec_argv("").is_empty());
        let script = validate_script(&exec_argv(show));
        assert!(script.contains("/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock --config-file \"$t\" --pidfile \"$p\""), "{script}");
        let ok = parse_validation("MODE load\nVALID yes\nOUT time=\"x\" level=info msg=\"Starting up\"\nOUT failed to start daemon: pid file found, ensure docker is not running or delete /tmp/p\n");
        assert!(ok.ok && ok.error.is_empty(), "{ok:?}");
        let bad = parse_validation("MODE load\nTMP /tmp/t\nOUT unable to configure the Docker daemon with file /tmp/t: the following directives don't match any configuration option: bogus-key\n");
        assert!(!bad.ok);
        assert!(
            bad.error.starts_with(
                "unable to configure the Docker daemon with file the new daemon.json: "
            ),
            "{bad:?}"
        );
        assert!(bad.error.contains("bogus-key"), "{bad:?}");
        assert_eq!(
            parse_validation("MODE validate\nVALID yes\nOUT configuration OK\n").how,
            "dockerd --validate"
        );
        let why = parse_why("J level=error msg=\"Failed to GetDriver graph\"\nJ failed to start daemon: error initializing graphdriver: driver not supported\nJ failed to start daemon: error initializing graphdriver: driver not supported\nS Active: failed (Result: exit-code)\n");
        assert_eq!(why, "level=error msg=\"Failed to GetDriver graph\"; failed to start daemon: error initializing graphdriver: driver not supported; systemctl status: Active: failed (Result: exit-code)");
    }

    /// A Debian host in memory: packages, files, the docker service and
    /// group. It answers the scripts this module and the apt module send
    /// (recognized by how they start) and changes its state as they would,
    /// so plan -> apply -> plan can run without touching this machine.
    struct FakeHost {
        files: BTreeMap<String, String>,
        installed: BTreeMap<String, String>,
        /// What `apt-get update` makes available.
        repo: BTreeMap<String, String>,
        lists: bool,
        active: bool,
        enabled: bool,
        members: Option<Vec<String>>,
        users: Vec<String>,
        has_validate: bool,
        /// daemon.json text dockerd refuses when it loads the file.
        reject_load: Option<&'static str>,
        /// ... and when the daemon starts.
        reject_start: Option<&'static str>,
        scripts: Vec<String>,
        restarts: usize,
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    impl FakeHost {
        fn bare() -> FakeHost {
            let repo = [
                ("docker.io", "20.10.24+dfsg1-1+deb12u1+b6"),
                ("docker-compose", "2.26.1-4"),
                ("docker-ce", "5:24.0.7-1~debian.12~bookworm"),
                ("docker-ce-cli", "5:24.0.7-1~debian.12~bookworm"),
                ("containerd.io", "1.6.25-1"),
                ("docker-compose-plugin", "2.21.0-1~debian.12~bookworm"),
            ];
            FakeHost {
                files: BTreeMap::new(),
                installed: BTreeMap::new(),
                repo: repo
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                lists: false,
                active: false,
                enabled: false,
                members: None,
                users: vec!["deploy".into()],
                has_validate: false,
                reject_load: None,
                reject_start: None,
                scripts: Vec::new(),
                restarts: 0,
            }
        }

        fn engine(&self) -> Option<&String> {
            self.installed
                .get("docker.io")
                .or_else(|| self.installed.get("docker-ce"))
        }

        fn file(&self, tag: &str, path: &str) -> String {
            match self.files.get(path) {
                Some(c) => format!("{tag} {}\n", b64(c)),
                None => format!("{tag} -\n"),
            }
        }

        fn dpkg_lines(&self) -> String {
            self.installed
                .iter()
                .map(|(n, v)| format!("PKG {n} install ok installed {v}\n"))
                .collect()
        }

        fn policy(&self, names: &[&str]) -> String {
            if !self.lists {
                return String::new();
            }
            names
                .iter()
                .filter_map(|n| {
                    self.repo
                        .get(*n)
                        .map(|v| format!("{n}:\n  Installed: (none)\n  Candidate: {v}\n"))
                })
                .collect()
        }

        fn probe(&self) -> String {
            let mut o = String::from("OS debian bookworm\nARCH amd64\n");
            if self.lists {
                o.push_str("LISTS yes\n");
            }
            o.push_str(&self.dpkg_lines());
            o.push_str("POLICY\n");
            o.push_str(&self.policy(&all_pkgs()));
            o.push_str("ENDPOLICY\n");
            o.push_str(&self.file("DJ", DAEMON_JSON));
            o.push_str(&self.file("KEY", KEYRING));
            o.push_str(&self.file("SRC", "/etc/apt/sources.list.d/docker.sources"));
            o.push_str(&format!(
                "ACTIVE {}\n",
                if self.active { "active" } else { "inactive" }
            ));
            o.push_str(&format!(
                "ENABLED {}\n",
                if self.enabled { "enabled" } else { "disabled" }
            ));
            if self.active {
                o.push_str(&format!("SERVER {}\n", self.server()));
                o.push_str("COMPOSE 2.26.1-4\n");
            }
            if let Some(m) = &self.members {
                o.push_str(&format!("G docker:x:998:{}\n", m.join(",")));
            }
            for (i, u) in self.users.iter().enumerate() {
                o.push_str(&format!(
                    "U {u}:x:{}:{}::/home/{u}:/bin/bash\n",
                    1000 + i,
                    1000 + i
                ));
            }
            o
        }

        fn server(&self) -> String {
            self.engine()
                .map(|v| {
                    let v = v.split_once(':').map_or(v.as_str(), |(_, r)| r);
                    v.split('-').next().unwrap_or(v).to_string()
                })
                .unwrap_or_default()
        }

        fn install(&mut self, script: &str) -> (i32, String) {
            let pkgs: Vec<String> = script
                .split(" -- ")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .map(|w| spec_name(w.trim_matches('\'')).to_string())
                .collect();
            for p in &pkgs {
                let Some(v) = self.repo.get(p).filter(|_| self.lists).cloned() else {
                    return (100, format!("E: Unable to locate package {p}"));
                };
                self.installed.insert(p.clone(), v);
                if p == "docker.io" || p == "docker-ce" {
                    self.active = true;
                    self.enabled = true;
                    self.members.get_or_insert_with(Vec::new);
                }
            }
            (0, String::new())
        }

        fn run_script(&mut self, script: &str, stdin: Option<&[u8]>) -> (i32, String, String) {
            let ok = |o: String| (0, o, String::new());
            if script.starts_with("# docker_install probe") {
                return ok(self.probe());
            }
            if script.starts_with("echo NOW") {
                let cache = if self.lists { "CACHE 1000\n" } else { "" };
                return ok(format!("NOW 1000\n{cache}DPKG\n{}", self.dpkg_lines()));
            }
            if script.starts_with("apt-get -s") {
                return ok(String::new());
            }
            if script.contains("apt-get update") {
                self.lists = true;
                return ok(String::new());
            }
            if script.starts_with("DEBIAN_FRONTEND") && script.contains(" install ") {
                let (rc, err) = self.install(script);
                return (rc, String::new(), err);
            }
            if script.starts_with("# docker_install compose") {
                return ok(self.policy(&COMPOSE_PKGS));
            }
            if script.starts_with("systemctl show -p ExecStart") {
                return ok("{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS ; ignore_errors=no }\n".into());
            }
            if script.starts_with("# docker_install validate") {
                let text = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
                let refused = self.reject_load.is_some_and(|r| text.contains(r));
                let mode = if self.has_validate {
                    "validate"
                } else {
                    "load"
                };
                return ok(if refused {
                    format!("MODE {mode}\nOUT unable to configure the Docker daemon with file /tmp/.herd-daemon-json.x: the following directives don't match any configuration option: {}\n",
                        self.reject_load.unwrap_or_default())
                } else if self.has_validate {
                    "MODE validate\nVALID yes\nOUT configuration OK\n".into()
                } else {
                    "MODE load\nVALID yes\nOUT failed to start daemon: pid file found, ensure docker is not running or delete /tmp/p\n".into()
                });
            }
            if script.starts_with("# docker_install restart") {
                self.restarts += 1;
                let text = self.files.get(DAEMON_JSON).cloned().unwrap_or_default();
                if self.reject_start.is_some_and(|r| text.contains(r)) {
                    self.active = false;
                    return (1, "SINCE 1700000000\nSTATE failed\n".into(), String::new());
                }
                self.active = true;
                return ok(format!("SINCE 1700000000\nUP {}\n", self.server()));
            }
            if script.starts_with("# docker_install why") {
                return ok("J failed to start daemon: error initializing graphdriver: driver not supported\nS Active: failed (Result: exit-code)\n".into());
            }
            if script.starts_with("# docker_install version") {
                return ok(if self.active {
                    format!("SERVER {}\nCOMPOSE 2.26.1-4\n", self.server())
                } else {
                    "SERVER \nCOMPOSE \n".into()
                });
            }
            if script.starts_with("# docker_install key") {
                self.files.insert(
                    KEYRING.into(),
                    "-----BEGIN PGP PUBLIC KEY BLOCK-----\nfetched\n".into(),
                );
                return ok(String::new());
            }
            if script.contains(&format!("rm -f -- {DAEMON_JSON}")) {
                self.files.remove(DAEMON_JSON);
                return ok(String::new());
            }
            if script.contains("groupadd --system docker") {
                self.members.get_or_insert_with(Vec::new);
                return ok(String::new());
            }
            if let Some(rest) = script.strip_prefix("usermod -a -G docker -- ") {
                if let Some(m) = self.members.as_mut() {
                    m.push(rest.trim().to_string());
                }
                return ok(String::new());
            }
            if script.starts_with("systemctl enable") {
                self.enabled = true;
            }
            ok(String::new())
        }
    }

    impl Host for FakeHost {
        fn name(&self) -> &str {
            "fake"
        }
        fn run(
            &mut self,
            script: &str,
            stdin: Option<&[u8]>,
        ) -> Result<crate::ExecOutput, crate::HostError> {
            self.scripts.push(script.to_string());
            let (rc, stdout, stderr) = self.run_script(script, stdin);
            Ok(crate::ExecOutput {
                rc,
                stdout: stdout.into_bytes(),
                stderr: stderr.into_bytes(),
            })
        }
        fn write_file(
            &mut self,
            path: &str,
            content: &[u8],
            _attrs: &FileAttrs,
        ) -> Result<(), crate::HostError> {
            self.files
                .insert(path.into(), String::from_utf8_lossy(content).into_owned());
            Ok(())
        }
    }

    /// Plan, apply, plan again: the second plan must be empty.
    fn converge(h: &mut FakeHost, p: &Value) -> (Plan, Outcome) {
        let first = DynModule::plan(&DockerInstall, p, h).expect("plan");
        assert!(!first.is_empty());
        let out = DynModule::apply(&DockerInstall, p, first.clone(), h).expect("apply");
        assert!(out.changed);
        let again = DynModule::plan(&DockerInstall, p, h).expect("plan again");
        assert!(again.is_empty(), "plan after apply: {:?}", again.changes);
        (first, out)
    }

    #[test]
    fn a_bare_host_converges_and_then_plans_nothing() {
        let mut h = FakeHost::bare();
        let p = json!({"users": ["deploy"], "min_version": "20.10"});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        assert_eq!(h.scripts.len(), 1, "the plan is one round trip");
        assert_eq!(
            pl.changes,
            [
                "install docker.io",
                "install compose v2 (docker-compose 2.x, docker-compose-plugin or docker-compose-v2, the first the refreshed package lists have)",
                "add deploy to group docker",
                "write /etc/docker/daemon.json",
                "restart docker",
            ]
        );
        assert_eq!(pl.diffs.len(), 1);
        assert_eq!(pl.diffs[0].after, DEFAULT_FILE);
        assert!(
            h.files.is_empty() && h.installed.is_empty(),
            "the plan changed nothing"
        );

        let (_, out) = converge(&mut h, &p);
        assert_eq!(
            h.installed.keys().collect::<Vec<_>>(),
            ["docker-compose", "docker.io"]
        );
        assert_eq!(h.files[DAEMON_JSON], DEFAULT_FILE);
        assert_eq!(h.members.as_deref(), Some(&["deploy".to_string()][..]));
        assert_eq!(h.restarts, 1);
        assert_eq!(out.result["version"], "20.10.24+dfsg1");
        assert_eq!(out.result["compose_version"], "2.26.1-4");
        assert_eq!(
            out.result["installed"],
            json!(["docker.io", "docker-compose"])
        );
        assert_eq!(out.result["restarted"], json!(true));
        assert_eq!(
            out.result["validation"],
            "dockerd's config load, stopped at its pid file check"
        );
        let validate = h
            .scripts
            .iter()
            .find(|s| s.starts_with("# docker_install validate"))
            .expect("validated");
        assert!(
            validate.contains("/usr/sbin/dockerd -H fd://"),
            "{validate}"
        );

        // A hand-reformatted file with the same settings is no change.
        h.files.insert(
            DAEMON_JSON.into(),
            serde_json::to_string(&daemon_config(&params(json!({}))).expect("cfg")).expect("json"),
        );
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        assert!(pl.is_empty(), "{:?}", pl.changes);

        // A changed setting rewrites the file and restarts, nothing else.
        let q = json!({"users": ["deploy"], "daemon": {"log-opts": {"max-size": "50m"}}});
        let (pl, _) = converge(&mut h, &q);
        assert_eq!(
            pl.changes,
            ["update /etc/docker/daemon.json", "restart docker"]
        );
        assert!(
            pl.diffs[0].unified().contains("+    \"max-size\": \"50m\""),
            "{}",
            pl.diffs[0].unified()
        );
        assert_eq!(h.restarts, 2);
    }

    #[test]
    fn a_config_dockerd_refuses_is_never_written() {
        let mut h = FakeHost::bare();
        converge(&mut h, &json!({}));
        let before = h.files[DAEMON_JSON].clone();
        h.reject_load = Some("bogus-key");
        let p = json!({"daemon": {"bogus-key": 1}});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        let e = DynModule::apply(&DockerInstall, &p, pl, &mut h).expect_err("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("dockerd refused the new /etc/docker/daemon.json"),
            "{msg}"
        );
        assert!(
            msg.contains("don't match any configuration option: bogus-key"),
            "{msg}"
        );
        assert!(msg.contains("left as they were"), "{msg}");
        assert_eq!(h.files[DAEMON_JSON], before);
        assert_eq!(h.restarts, 1, "only the first run restarted");
        assert!(h.active);
    }

    #[test]
    fn a_daemon_that_does_not_come_back_gets_the_old_file_back() {
        let mut h = FakeHost::bare();
        h.has_validate = true;
        converge(&mut h, &json!({}));
        let before = h.files[DAEMON_JSON].clone();
        h.reject_start = Some("bogus-driver");
        let p = json!({"daemon": {"storage-driver": "bogus-driver"}});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        let e = DynModule::apply(&DockerInstall, &p, pl, &mut h).expect_err("rolled back");
        let msg = e.to_string();
        assert!(
            msg.contains("dockerd did not come back after the restart"),
            "{msg}"
        );
        assert!(
            msg.contains("error initializing graphdriver: driver not supported"),
            "{msg}"
        );
        assert!(msg.contains("the previous daemon.json was restored and docker 20.10.24+dfsg1 is running on it again"), "{msg}");
        assert_eq!(h.files[DAEMON_JSON], before);
        assert!(h.active);
        assert_eq!(h.restarts, 3);

        // With no file before, the rollback removes the new one.
        let mut h = FakeHost::bare();
        h.lists = true;
        h.installed
            .insert("docker.io".into(), "20.10.24+dfsg1-1".into());
        h.installed
            .insert("docker-compose".into(), "2.26.1-4".into());
        h.active = true;
        h.enabled = true;
        h.reject_start = Some("bogus-driver");
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        let e = DynModule::apply(&DockerInstall, &p, pl, &mut h).expect_err("rolled back");
        assert!(e.to_string().contains("removed (there was none)"), "{e}");
        assert!(!h.files.contains_key(DAEMON_JSON));
    }

    #[test]
    fn docker_source_writes_the_key_and_a_deb822_source_then_installs_docker_ce() {
        let mut h = FakeHost::bare();
        let p = json!({"source": "docker"});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        assert_eq!(
            pl.changes[..3],
            [
                "fetch Docker's signing key from https://download.docker.com/linux/debian/gpg to /etc/apt/keyrings/docker.asc",
                "write /etc/apt/sources.list.d/docker.sources",
                "install docker-ce, docker-ce-cli, containerd.io, docker-compose-plugin",
            ]
        );
        let (_, out) = converge(&mut h, &p);
        assert_eq!(
            h.files["/etc/apt/sources.list.d/docker.sources"],
            "X-Repolib-Name: docker\nTypes: deb\nURIs: https://download.docker.com/linux/debian\n\
             Suites: bookworm\nComponents: stable\nArchitectures: amd64\n\
             Signed-By: /etc/apt/keyrings/docker.asc\n"
        );
        let key = h
            .scripts
            .iter()
            .find(|s| s.starts_with("# docker_install key"))
            .expect("key fetched");
        assert!(
            key.contains(
                "curl -fsSL --max-time 60 -o \"$t\" https://download.docker.com/linux/debian/gpg"
            ),
            "{key}"
        );
        assert!(h.files.contains_key(KEYRING));
        assert_eq!(
            h.installed.keys().collect::<Vec<_>>(),
            [
                "containerd.io",
                "docker-ce",
                "docker-ce-cli",
                "docker-compose-plugin"
            ]
        );
        assert_eq!(out.result["version"], "24.0.7");

        // A key given inline is written, not fetched; another repo_url
        // rewrites the source.
        let mut h = FakeHost::bare();
        let p = json!({"source": "docker", "compose": false, "repo_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nk\n-----END PGP PUBLIC KEY BLOCK-----",
            "repo_url": "http://mirror.example/docker/"});
        converge(&mut h, &p);
        assert!(!h
            .scripts
            .iter()
            .any(|s| s.starts_with("# docker_install key")));
        assert!(h.files[KEYRING].ends_with("-----END PGP PUBLIC KEY BLOCK-----\n"));
        assert!(h.files["/etc/apt/sources.list.d/docker.sources"]
            .contains("URIs: http://mirror.example/docker\n"));
        assert!(!h.installed.contains_key("docker-compose-plugin"));
    }

    #[test]
    fn refuses_mixing_sources_missing_users_and_old_engines() {
        let mut h = FakeHost::bare();
        h.installed.insert("docker-ce".into(), "5:24.0.7-1".into());
        let e = DynModule::plan(&DockerInstall, &json!({}), &mut h).expect_err("docker-ce");
        assert!(e.to_string().contains("use `source: docker`"), "{e}");

        let mut h = FakeHost::bare();
        let e = DynModule::plan(&DockerInstall, &json!({"users": ["nobody-here"]}), &mut h)
            .expect_err("user");
        assert!(
            e.to_string().contains("user `nobody-here` does not exist"),
            "{e}"
        );

        let mut h = FakeHost::bare();
        h.installed
            .insert("docker.io".into(), "19.03.15+dfsg1-1".into());
        h.active = true;
        let e = DynModule::plan(&DockerInstall, &json!({"min_version": "20.10"}), &mut h)
            .expect_err("old");
        assert_eq!(
            e.to_string(),
            "the Docker engine on this host is 19.03.15+dfsg1, older than min_version 20.10"
        );
    }

    #[test]
    fn an_old_python_docker_compose_is_upgraded_to_v2() {
        let mut h = FakeHost::bare();
        h.lists = true;
        h.installed
            .insert("docker-compose".into(), "1.29.2-3".into());
        let (pl, _) = converge(&mut h, &json!({}));
        assert_eq!(pl.changes[0], "install docker.io, docker-compose");
        assert_eq!(h.installed["docker-compose"], "2.26.1-4");
        assert!(h
            .scripts
            .iter()
            .any(|s| s.contains(" install -- docker.io docker-compose=2.26.1-4")));
    }

    #[test]
    fn a_stopped_engine_is_started_without_a_restart() {
        let mut h = FakeHost::bare();
        converge(&mut h, &json!({}));
        h.active = false;
        let (pl, out) = converge(&mut h, &json!({}));
        assert_eq!(pl.changes, ["start docker"]);
        assert_eq!(out.result["restarted"], json!(false));
        assert!(h
            .scripts
            .iter()
            .any(|s| s.contains("systemctl start docker.service")));
    }
}
