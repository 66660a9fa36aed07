//! `volume_backup`: backups of a Docker host's data, and restoring a volume.
//!
//! `state: backed_up` (the default) writes gzip'd tar archives into
//! `backup_dir` (default `/backup/docker`): named volumes into `volumes/`,
//! the compose files under `compose_dirs` and `/etc/docker` into `configs/`,
//! and `images` (`docker save`) into `images/`, each as
//! `<name>_<YYYYmmdd_HHMMSS>.tar.gz` (the host's local time).
//!
//! A volume is read on the host from its mountpoint (`docker volume
//! inspect`, under /var/lib/docker/volumes) with the host's tar: no helper
//! image is needed, which matters where no registry can be reached, and
//! ownership, modes and the volume root's own attributes come along
//! (`--numeric-owner`, so container uids are not mapped to host names).
//! That works for the `local` driver only; a volume of another driver
//! fails the plan naming it (reading it would need a container).
//!
//! Consistency: `stop` or `pause` stops (pauses) the running containers that
//! use a volume for the copy of that volume only, and starts (unpauses)
//! them again whatever happens: the volume's script restarts them as soon
//! as tar is done and from a shell trap on any exit, and if the script
//! itself is lost (timeout, connection) apply runs the restart once more.
//!
//! Every archive is written under a hidden temp name, checked with `gzip -t`
//! and a full `tar -t` listing, and only then renamed to its final name;
//! its SHA-256 goes into the run's manifest `manifest_<ts>.sha256`
//! (`sha256sum -c` format, paths relative to `backup_dir`). An archive
//! listed in a manifest is "verified".
//!
//! Retention runs only when every archive of this run verified. For each
//! name this task backs up it removes archives older than `keep_days`
//! (default 30) beyond the newest `keep_last`, and never the newest
//! verified archive of a name, so a host whose backups stopped for a month
//! still has its last good one. Manifests whose archives are all gone go
//! too. Names the task no longer backs up are never touched.
//!
//! Backing up is not convergent: every run writes new archives and reports
//! `changed` (check mode lists what would be written and removed).
//!
//! `fetch_to` copies this run's archives and manifest to the controller,
//! into `<fetch_to>/<inventory_hostname>/<kind>/`, in pieces
//! ([`Host::fetch_file`], bounded memory whatever the archive's size), and
//! checks each copy's SHA-256 there before it gets its final name.
//!
//! `state: restored` restores `archive` into `volume` (by default the name
//! the archive is named after): into a new volume, or an existing empty
//! one; a volume with data is refused unless `force`, which empties it
//! first. A marker `<backup_dir>/.restored/<volume>` records the
//! identity of the volume's directory (device and inode) and the archive's
//! SHA-256, so restoring the same archive into the same volume again plans
//! nothing. Not Docker's `CreatedAt`: for the local driver that is the
//! directory's ctime, which the restore itself moves. A volume removed and
//! made again is empty, and an empty volume is always restored, even if its
//! directory got the old inode back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::host::{FetchFileError, FileAttrs};
use crate::params::{de_bool, de_opt_u64};
use crate::probe::tagged;
use crate::shell_quote::quote;
use crate::{Host, HostError, Module, ModuleError, Outcome, ParamError, Plan};

pub struct VolumeBackup;

const DEFAULT_BACKUP_DIR: &str = "/backup/docker";
const DEFAULT_KEEP_DAYS: u64 = 30;
/// Under `backup_dir`: one marker per restored volume.
const MARKER_DIR: &str = ".restored";

/// `docker volume inspect` format: the mountpoint last, since only it could
/// hold a `|`.
const VOL_FMT: &str = "{{.Name}}|{{.Driver}}|{{.CreatedAt}}|{{.Mountpoint}}";
/// `docker inspect` format for a container and the named volumes it mounts.
const CTR_FMT: &str = "{{.Id}}|{{.Name}}|{{.State.Status}}|{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}},{{end}}{{end}}";

/// The compose files of a project directory (and its `.env`).
const COMPOSE_FIND: &str = "-maxdepth 3 -type f \\( -name 'docker-compose*.yml' -o -name 'docker-compose*.yaml' -o -name 'compose*.yml' -o -name 'compose*.yaml' -o -name '.env' \\)";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    #[default]
    BackedUp,
    Restored,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Stop,
    Pause,
    #[default]
    None,
}

/// Which volumes: every named volume, or names and glob patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    All,
    Some(Vec<String>),
    #[default]
    Nothing,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeBackupParams {
    /// `backed_up`: archive what is named; `restored`: restore `volume` from `archive`.
    #[serde(default)]
    pub state: BackupState,
    /// Named volumes to archive: `all`, a name or glob, or a list of them (anonymous volumes
    /// are left out of `all` and globs).
    #[serde(default, deserialize_with = "de_selection")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub volumes: Selection,
    /// Directories whose compose files (`compose*.y*ml`, `docker-compose*.y*ml`, `.env`, up to
    /// three levels down) are archived.
    #[serde(default, deserialize_with = "de_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub compose_dirs: Vec<String>,
    /// Archive `/etc/docker` (daemon.json, certificates).
    #[serde(default = "crate::params::yes", deserialize_with = "de_bool")]
    pub docker_config: bool,
    /// Images to archive with `docker save`.
    #[serde(default, deserialize_with = "de_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub images: Vec<String>,
    /// Where archives go on the host (`volumes/`, `configs/`, `images/` under it).
    #[serde(default = "default_backup_dir")]
    pub backup_dir: String,
    /// `stop` or `pause` the running containers that use a volume while it is copied (they are
    /// always started again); `none` copies live.
    #[serde(default, deserialize_with = "de_consistency")]
    pub consistency: Consistency,
    /// Retention: remove this task's archives older than this many days (default 30; `0` with
    /// `keep_last` keeps exactly the newest N).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub keep_days: Option<u64>,
    /// Retention: always keep the newest N archives of each name (default 0).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub keep_last: Option<u64>,
    /// Copy each archive to this controller directory (relative to the playbook), under
    /// `<host>/`, checked by SHA-256.
    #[serde(default, deserialize_with = "de_opt_path")]
    pub fetch_to: Option<String>,
    /// `state: restored`: the archive on the host, absolute or relative to
    /// `<backup_dir>/volumes`.
    #[serde(default, deserialize_with = "de_opt_path")]
    pub archive: Option<String>,
    /// `state: restored`: the volume to restore into.
    #[serde(default, deserialize_with = "de_opt_path")]
    pub volume: Option<String>,
    /// `state: restored`: empty a volume that has data before restoring (refused otherwise).
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
}

fn default_backup_dir() -> String {
    DEFAULT_BACKUP_DIR.into()
}

fn de_selection<'de, D: Deserializer<'de>>(d: D) -> Result<Selection, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Selection::Nothing),
        Value::String(s) if s.trim() == "all" => Ok(Selection::All),
        Value::String(s) if s.trim().is_empty() => Ok(Selection::Nothing),
        Value::String(s) => Ok(Selection::Some(vec![s.trim().to_string()])),
        Value::Array(a) => {
            let names = a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    other => Err(serde::de::Error::custom(format!(
                        "expected a volume name or pattern, got {other}"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if names.is_empty() {
                Selection::Nothing
            } else {
                Selection::Some(names)
            })
        }
        _ => Err(serde::de::Error::custom(
            "expected `all`, a volume name or pattern, or a list of them",
        )),
    }
}

fn de_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.trim().to_string()]),
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                other => Err(serde::de::Error::custom(format!(
                    "expected a string, got {other}"
                ))),
            })
            .collect(),
        _ => Err(serde::de::Error::custom("expected a list of strings")),
    }
}

/// `none` also arrives as YAML null from some templates.
fn de_consistency<'de, D: Deserializer<'de>>(d: D) -> Result<Consistency, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Consistency::None),
        Value::String(s) => match s.trim() {
            "stop" => Ok(Consistency::Stop),
            "pause" => Ok(Consistency::Pause),
            "none" | "" => Ok(Consistency::None),
            other => Err(serde::de::Error::custom(format!(
                "unknown consistency `{other}`, expected one of stop, pause, none"
            ))),
        },
        _ => Err(serde::de::Error::custom("expected stop, pause or none")),
    }
}

/// An optional string; an empty one (a template rendering nothing) is none.
fn de_opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        _ => Err(serde::de::Error::custom("expected a string")),
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: VolumeBackup::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_volume_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// Anonymous volumes are named by 64 hex digits; `all` leaves them out.
fn is_anonymous(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|c| c.is_ascii_hexdigit())
}

fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style glob match: `*`, `?` and `[...]` (with `!` or `^` negation).
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let mut class = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' && !class.is_empty() {
                        closed = true;
                        break;
                    }
                    class.push(c);
                }
                if !closed {
                    re.push_str(&regex::escape(&format!("[{class}")));
                    continue;
                }
                let (neg, body) = match class.strip_prefix(['!', '^']) {
                    Some(rest) => ("^", rest.to_string()),
                    None => ("", class),
                };
                let body = body.replace('\\', "\\\\").replace('[', "\\[");
                re.push_str(&format!("[{neg}{body}]"));
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(name))
}

/// What kind of thing an archive holds, and the subdirectory it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Volume,
    Config,
    Image,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Volume => "volumes",
            Kind::Config => "configs",
            Kind::Image => "images",
        }
    }
    fn from_dir(d: &str) -> Option<Kind> {
        match d {
            "volumes" => Some(Kind::Volume),
            "configs" => Some(Kind::Config),
            "images" => Some(Kind::Image),
            _ => None,
        }
    }
}

/// An archive name for a path or an image reference: `/opt/deploy/prod`
/// becomes `opt-deploy-prod`, `herd/busybox:1` `herd-busybox-1`.
fn name_for(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim_matches('/').chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `<name>_<YYYYmmdd_HHMMSS>.tar.gz` split into name and timestamp.
fn parse_archive_name(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(".tar.gz")?;
    if stem.len() < 17 {
        return None;
    }
    // The name is the host's: the cut may fall inside a multi-byte
    // character, which is then simply not one of our archives.
    let cut = stem.len() - 16;
    let (name, ts) = (stem.get(..cut)?, stem.get(cut..)?);
    let ts = ts.strip_prefix('_')?;
    (!name.is_empty() && parse_ts(ts).is_some()).then_some((name, ts))
}

/// Seconds since the epoch of a `YYYYmmdd_HHMMSS` stamp, read as UTC (both
/// sides of every comparison are the host's local time, so the offset
/// cancels out; a DST change shifts an age by at most an hour).
fn parse_ts(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() != 15
        || b[8] != b'_'
        || !ts[..8]
            .bytes()
            .chain(ts[9..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// One thing to archive this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    kind: Kind,
    /// The archive's name before `_<ts>.tar.gz`.
    name: String,
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source {
    Volume {
        volume: String,
        mountpoint: String,
        /// Running containers that use it: (id, name).
        containers: Vec<(String, String)>,
    },
    Dir {
        dir: String,
        /// Paths relative to `dir`; `None` for the whole directory.
        files: Option<Vec<String>>,
    },
    Image {
        image: String,
    },
}

impl Item {
    fn describe(&self) -> String {
        match &self.source {
            Source::Volume { volume, .. } => format!("volume {volume}"),
            Source::Dir {
                dir,
                files: Some(f),
            } => format!("compose files of {dir} ({} files)", f.len()),
            Source::Dir { dir, files: None } => dir.clone(),
            Source::Image { image } => format!("image {image}"),
        }
    }
}

/// A volume as `docker volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Volume {
    name: String,
    driver: String,
    created: String,
    mountpoint: String,
}

fn parse_volume(line: &str) -> Option<Volume> {
    let mut f = line.splitn(4, '|');
    Some(Volume {
        name: f.next()?.to_string(),
        driver: f.next()?.to_string(),
        created: f.next()?.to_string(),
        mountpoint: f.next()?.to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    id: String,
    name: String,
    status: String,
    volumes: Vec<String>,
}

fn parse_container(line: &str) -> Option<Container> {
    let mut f = line.splitn(4, '|');
    Some(Container {
        id: f.next()?.to_string(),
        name: f.next()?.trim_start_matches('/').to_string(),
        status: f.next()?.to_string(),
        volumes: f
            .next()?
            .split(',')
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// An archive already in `backup_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Existing {
    kind: Kind,
    name: String,
    ts: String,
    /// Path relative to `backup_dir`: `volumes/<file>`.
    rel: String,
}

/// What the backup plan found on the host.
#[derive(Debug, Default)]
struct BackupProbe {
    now: String,
    volumes: Vec<Volume>,
    containers: Vec<Container>,
    images: Vec<bool>,
    compose: Vec<Option<Vec<String>>>,
    etc_docker: bool,
    archives: Vec<Existing>,
    /// Manifest file name -> paths (relative to `backup_dir`) it lists.
    manifests: BTreeMap<String, Vec<String>>,
}

/// Lines that start with `tag ` mean docker is missing or not answering.
fn docker_check() -> String {
    "command -v docker >/dev/null 2>&1 || { echo 'NODOCKER docker is not installed'; exit 0; }\n\
     if ! err=$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then \
     printf 'NODOCKER the Docker daemon does not answer: %s\\n' \"$(echo \"$err\" | tail -n 1)\"; exit 0; fi\n"
        .to_string()
}

fn backup_probe_script(p: &VolumeBackupParams) -> String {
    let bd = quote(&p.backup_dir);
    let mut s = docker_check();
    s.push_str("echo \"NOW $(date +%Y%m%d_%H%M%S)\"\n");
    if p.volumes != Selection::Nothing {
        s.push_str(&format!(
            "vols=$(docker volume ls -q) || exit 3\n\
             if [ -n \"$vols\" ]; then docker volume inspect -f {} $vols | sed 's/^/VOL /' || exit 3; fi\n\
             ids=$(docker ps -q) || exit 3\n\
             if [ -n \"$ids\" ]; then docker inspect -f {} $ids | sed 's/^/CTR /' || exit 3; fi\n",
            quote(VOL_FMT),
            quote(CTR_FMT)
        ));
    }
    for (i, img) in p.images.iter().enumerate() {
        s.push_str(&format!(
            "if docker image inspect {} >/dev/null 2>&1; then echo 'IMG{i} y'; else echo 'IMG{i} -'; fi\n",
            quote(img)
        ));
    }
    for (i, dir) in p.compose_dirs.iter().enumerate() {
        let d = quote(dir);
        s.push_str(&format!(
            "if [ -d {d} ]; then echo 'CD{i} y'; find {d} {COMPOSE_FIND} -printf 'CF{i} %P\\n' | sort; else echo 'CD{i} -'; fi\n"
        ));
    }
    s.push_str("if [ -d /etc/docker ]; then echo 'ETC y'; else echo 'ETC -'; fi\n");
    s.push_str(&format!(
        "for k in volumes configs images; do [ -d {bd}/$k ] && ls -1 {bd}/$k | sed \"s|^|ARC $k |\"; done\n\
         for m in {bd}/manifest_*.sha256; do [ -f \"$m\" ] || continue; b=${{m##*/}}; \
         while read -r sum path; do echo \"MAN $b $path\"; done < \"$m\"; done\n\
         echo END\n"
    ));
    s
}

fn parse_backup_probe(out: &str, p: &VolumeBackupParams) -> Result<BackupProbe, ModuleError> {
    if let Some(why) = tagged(out, "NODOCKER") {
        return Err(ModuleError::failed(why.to_string()));
    }
    if !out.lines().any(|l| l == "END") {
        return Err(ModuleError::failed(format!(
            "the probe stopped early: {}",
            out.trim()
        )));
    }
    let mut pr = BackupProbe {
        images: vec![false; p.images.len()],
        compose: vec![None; p.compose_dirs.len()],
        ..Default::default()
    };
    for line in out.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "NOW" => pr.now = rest.trim().to_string(),
            "VOL" => pr.volumes.extend(parse_volume(rest)),
            "CTR" => pr.containers.extend(parse_container(rest)),
            "ETC" => pr.etc_docker = rest == "y",
            "ARC" => {
                if let Some((k, file)) = rest.split_once(' ') {
                    if let (Some(kind), Some((name, ts))) =
                        (Kind::from_dir(k), parse_archive_name(file))
                    {
                        pr.archives.push(Existing {
                            kind,
                            name: name.to_string(),
                            ts: ts.to_string(),
                            rel: format!("{k}/{file}"),
                        });
                    }
                }
            }
            "MAN" => {
                if let Some((m, path)) = rest.split_once(' ') {
                    pr.manifests
                        .entry(m.to_string())
                        .or_default()
                        .push(path.to_string());
                }
            }
            t => {
                if let Some(i) = t.strip_prefix("IMG").and_then(|i| i.parse::<usize>().ok()) {
                    if let Some(slot) = pr.images.get_mut(i) {
                        *slot = rest == "y";
                    }
                } else if let Some(i) = t.strip_prefix("CD").and_then(|i| i.parse::<usize>().ok()) {
                    if let Some(slot) = pr.compose.get_mut(i) {
                        *slot = (rest == "y").then(Vec::new);
                    }
                } else if let Some(i) = t.strip_prefix("CF").and_then(|i| i.parse::<usize>().ok()) {
                    if let Some(Some(files)) = pr.compose.get_mut(i) {
                        files.push(rest.to_string());
                    }
                }
            }
        }
    }
    if parse_ts(&pr.now).is_none() {
        return Err(ModuleError::failed(format!(
            "cannot read the host's time from the probe: {:?}",
            pr.now
        )));
    }
    Ok(pr)
}

/// The items of this run, in a fixed order: volumes by name, compose dirs
/// and images as given, /etc/docker.
fn select_items(p: &VolumeBackupParams, pr: &BackupProbe) -> Result<Vec<Item>, ModuleError> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    match &p.volumes {
        Selection::Nothing => {}
        Selection::All => names.extend(
            pr.volumes
                .iter()
                .map(|v| v.name.as_str())
                .filter(|n| !is_anonymous(n)),
        ),
        Selection::Some(list) => {
            for want in list {
                if is_pattern(want) {
                    names.extend(
                        pr.volumes
                            .iter()
                            .map(|v| v.name.as_str())
                            .filter(|n| !is_anonymous(n) && glob_match(want, n)),
                    );
                } else if pr.volumes.iter().any(|v| &v.name == want) {
                    names.insert(want);
                } else {
                    return Err(ModuleError::failed(format!(
                        "volume `{want}` does not exist on this host"
                    )));
                }
            }
        }
    }
    let mut items = Vec::new();
    for n in names {
        let Some(v) = pr.volumes.iter().find(|v| v.name == n) else {
            continue;
        };
        if v.driver != "local" {
            return Err(ModuleError::failed(format!(
                "volume `{n}` uses the `{}` driver: only a `local` volume's mountpoint can be read on the host",
                v.driver
            )));
        }
        let containers = pr
            .containers
            .iter()
            .filter(|c| c.status == "running" && c.volumes.iter().any(|cv| cv == n))
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        items.push(Item {
            kind: Kind::Volume,
            name: n.to_string(),
            source: Source::Volume {
                volume: n.to_string(),
                mountpoint: v.mountpoint.clone(),
                containers,
            },
        });
    }
    for (dir, found) in p.compose_dirs.iter().zip(&pr.compose) {
        let Some(files) = found else {
            return Err(ModuleError::failed(format!(
                "compose directory `{dir}` does not exist on this host"
            )));
        };
        if files.is_empty() {
            return Err(ModuleError::failed(format!(
                "no compose files (compose*.y*ml, docker-compose*.y*ml, .env) under `{dir}`"
            )));
        }
        items.push(Item {
            kind: Kind::Config,
            name: format!("compose-{}", name_for(dir)),
            source: Source::Dir {
                dir: dir.clone(),
                files: Some(files.clone()),
            },
        });
    }
    if p.docker_config && pr.etc_docker {
        items.push(Item {
            kind: Kind::Config,
            name: "etc-docker".into(),
            source: Source::Dir {
                dir: "/etc/docker".into(),
                files: None,
            },
        });
    }
    for (img, present) in p.images.iter().zip(&pr.images) {
        if !present {
            return Err(ModuleError::failed(format!(
                "image `{img}` is not on this host"
            )));
        }
        items.push(Item {
            kind: Kind::Image,
            name: name_for(img),
            source: Source::Image { image: img.clone() },
        });
    }
    let mut seen = BTreeSet::new();
    for it in &items {
        if it.name.is_empty() || !seen.insert((it.kind, it.name.clone())) {
            return Err(ModuleError::failed(format!(
                "two things to back up would share the archive name `{}`",
                it.name
            )));
        }
    }
    Ok(items)
}

/// Archives retention removes: per (kind, name) in `managed`, those older
/// than `keep_days` and not among the newest `keep_last`, never the newest
/// verified one. Returns relative paths, sorted.
fn retention(
    archives: &[Existing],
    verified: &BTreeSet<String>,
    managed: &BTreeSet<(Kind, String)>,
    now: &str,
    keep_days: u64,
    keep_last: u64,
) -> Vec<String> {
    let Some(now) = parse_ts(now) else {
        return Vec::new();
    };
    let mut groups: BTreeMap<(Kind, &str), Vec<&Existing>> = BTreeMap::new();
    for a in archives {
        if managed.contains(&(a.kind, a.name.clone())) {
            groups.entry((a.kind, &a.name)).or_default().push(a);
        }
    }
    let max_age = i64::try_from(keep_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for list in groups.values_mut() {
        list.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.rel.cmp(&a.rel)));
        let newest_verified = list.iter().position(|a| verified.contains(&a.rel));
        for (i, a) in list.iter().enumerate() {
            let young = parse_ts(&a.ts).is_none_or(|t| now - t < max_age);
            if (i as u64) < keep_last || Some(i) == newest_verified || young {
                continue;
            }
            out.push(a.rel.clone());
        }
    }
    out.sort();
    out
}

/// Manifests none of whose archives will be left.
fn stale_manifests(
    manifests: &BTreeMap<String, Vec<String>>,
    remaining: &BTreeSet<String>,
) -> Vec<String> {
    manifests
        .iter()
        .filter(|(_, paths)| !paths.iter().any(|p| remaining.contains(p)))
        .map(|(m, _)| m.clone())
        .collect()
}

/// The plan's state for apply.
#[derive(Debug, Serialize, Deserialize)]
struct BackupPlanState {
    items: Vec<Item>,
    archives: Vec<Existing>,
    manifests: BTreeMap<String, Vec<String>>,
}

fn plan_backup(p: &VolumeBackupParams, host: &mut dyn Host) -> Result<Plan, ModuleError> {
    let out = host.run(&backup_probe_script(p), None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "looking at the host failed (rc={}): {}",
            out.rc,
            out.stderr_str().trim()
        )));
    }
    let pr = parse_backup_probe(&out.stdout_str(), p)?;
    let items = select_items(p, &pr)?;
    if items.is_empty() && p.volumes == Selection::Nothing {
        return Err(invalid(
            "volumes",
            "nothing to back up: give volumes, compose_dirs, images or docker_config",
        ));
    }
    let bd = p.backup_dir.trim_end_matches('/');
    let mut plan = Plan::empty();
    for it in &items {
        let mut line = format!(
            "back up {} to {bd}/{}/{}_<timestamp>.tar.gz",
            it.describe(),
            it.kind.dir(),
            it.name
        );
        if let Source::Volume { containers, .. } = &it.source {
            if !containers.is_empty() && p.consistency != Consistency::None {
                let names: Vec<&str> = containers.iter().map(|(_, n)| n.as_str()).collect();
                let verb = if p.consistency == Consistency::Stop {
                    "stopping"
                } else {
                    "pausing"
                };
                line.push_str(&format!(" ({verb} {})", names.join(", ")));
            }
        }
        plan.changes.push(line);
    }
    // Retention as it would run after this run's archives verified: the
    // new ones count as the newest verified.
    let mut archives = pr.archives.clone();
    let mut verified: BTreeSet<String> = pr.manifests.values().flatten().cloned().collect();
    for it in &items {
        let rel = format!("{}/{}_{}.tar.gz", it.kind.dir(), it.name, pr.now);
        verified.insert(rel.clone());
        archives.push(Existing {
            kind: it.kind,
            name: it.name.clone(),
            ts: pr.now.clone(),
            rel,
        });
    }
    let managed: BTreeSet<(Kind, String)> =
        items.iter().map(|i| (i.kind, i.name.clone())).collect();
    let keep_days = p.keep_days.unwrap_or(DEFAULT_KEEP_DAYS);
    let removed = retention(
        &archives,
        &verified,
        &managed,
        &pr.now,
        keep_days,
        p.keep_last.unwrap_or(0),
    );
    for r in &removed {
        plan.changes.push(format!("remove {bd}/{r} (retention)"));
    }
    if let Some(to) = &p.fetch_to {
        if !items.is_empty() {
            plan.changes.push(format!(
                "fetch {} archives to {}",
                items.len(),
                fetch_dir(to, host.name()).display()
            ));
        }
    }
    plan.result.insert(
        "volumes".into(),
        json!(items
            .iter()
            .filter_map(|i| match &i.source {
                Source::Volume { volume, .. } => Some(volume.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()),
    );
    plan.result.insert("backup_dir".into(), json!(bd));
    plan.keep_state(&BackupPlanState {
        items,
        archives: pr.archives,
        manifests: pr.manifests,
    })?;
    Ok(plan)
}

fn fetch_dir(to: &str, host: &str) -> PathBuf {
    Path::new(to).join(host)
}

/// The script that archives one item into `final_` via a temp name; prints
/// `OK <sha256> <size>` on success.
fn archive_script(it: &Item, consistency: Consistency, bd: &str, ts: &str) -> String {
    let dir = format!("{bd}/{}", it.kind.dir());
    let file = format!("{}_{ts}.tar.gz", it.name);
    let mut s = format!(
        "umask 077\nfinal={}\ntmp={}\nrm -f \"$tmp\"\n",
        quote(&format!("{dir}/{file}")),
        quote(&format!("{dir}/.{file}.partial")),
    );
    s.push_str("fail() { rm -f \"$tmp\"; echo \"FAIL $1\"; exit 1; }\n");
    // The directory first, so a failure here leaves the containers alone.
    s.push_str(&format!(
        "mkdir -p {} || fail 'cannot create the directory'\n",
        quote(&dir)
    ));
    let create = match &it.source {
        Source::Volume {
            mountpoint,
            containers,
            ..
        } => {
            let ids: Vec<String> = containers.iter().map(|(id, _)| quote(id)).collect();
            let (down, up) = match consistency {
                Consistency::Stop => ("stop", "start"),
                Consistency::Pause => ("pause", "unpause"),
                Consistency::None => ("", ""),
            };
            if !ids.is_empty() && !down.is_empty() {
                // Only the containers actually stopped are started again;
                // `restart` does its work once, from the trap or after tar.
                s.push_str(&format!(
                    "downed=''\n\
                     restart() {{ trap - EXIT; for id in $downed; do \
                     docker {up} \"$id\" >/dev/null 2>&1 || echo \"RESTART_FAILED $id\"; done; downed=''; }}\n\
                     trap restart EXIT\ntrap 'exit 129' HUP INT TERM\n\
                     for id in {}; do if docker {down} \"$id\" >/dev/null; then downed=\"$downed $id\"; \
                     else restart; fail \"cannot {down} container $id\"; fi; done\n",
                    ids.join(" ")
                ));
            } else {
                s.push_str("restart() { :; }\n");
            }
            format!(
                "tar --numeric-owner -czf \"$tmp\" -C {} . 2>\"$tmp.err\"; rc=$?\nrestart\n\
                 if [ $rc -ne 0 ]; then e=$(tail -n 3 \"$tmp.err\" | tr '\\n' ' '); rm -f \"$tmp.err\"; \
                 fail \"tar failed (rc=$rc): $e\"; fi\nrm -f \"$tmp.err\"\n",
                quote(mountpoint)
            )
        }
        Source::Dir { dir, files } => {
            let what = match files {
                Some(f) => f.iter().map(|f| quote(f)).collect::<Vec<_>>().join(" "),
                None => ".".into(),
            };
            format!(
                "e=$(tar --numeric-owner -czf \"$tmp\" -C {} {what} 2>&1) || fail \"tar failed: $(echo \"$e\" | tail -n 3 | tr '\\n' ' ')\"\n",
                quote(dir)
            )
        }
        Source::Image { image } => {
            // docker save writes a tar; gzip makes it the same format as
            // the rest. The save's own status is checked through a file,
            // since sh has no pipefail.
            format!(
                "{{ docker save {} 2>\"$tmp.err\" || echo failed > \"$tmp.rc\"; }} | gzip -c > \"$tmp\"\n\
                 e=$(tail -n 3 \"$tmp.err\" | tr '\\n' ' '); rm -f \"$tmp.err\"\n\
                 if [ -e \"$tmp.rc\" ]; then rm -f \"$tmp.rc\"; fail \"docker save failed: $e\"; fi\n\
                 [ -s \"$tmp\" ] || fail 'docker save wrote nothing'\n",
                quote(image)
            )
        }
    };
    s.push_str(&create);
    s.push_str(
        "gzip -t \"$tmp\" 2>/dev/null || fail 'the archive is not valid gzip'\n\
         tar -tzf \"$tmp\" >/dev/null 2>&1 || fail 'the archive cannot be listed'\n\
         sum=$(sha256sum \"$tmp\" | cut -c1-64) || fail 'sha256sum failed'\n\
         size=$(stat -c %s \"$tmp\")\n\
         mv -f \"$tmp\" \"$final\" || fail 'cannot rename the archive into place'\n\
         echo \"OK $sum $size\"\n",
    );
    s
}

/// A result line for one archive.
#[derive(Debug, Clone, Serialize)]
struct Written {
    kind: Kind,
    name: String,
    path: String,
    sha256: String,
    size: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    containers: Vec<String>,
}

fn apply_backup(
    p: &VolumeBackupParams,
    plan: Plan,
    host: &mut dyn Host,
) -> Result<Outcome, ModuleError> {
    let st: BackupPlanState = plan.state_as()?;
    let bd = p.backup_dir.trim_end_matches('/').to_string();
    let qbd = quote(&bd);
    // A timestamp no archive of this task uses yet (two runs within one
    // second wait for the next), and the directories, private to root.
    let names: Vec<String> = st
        .items
        .iter()
        .map(|i| format!("{}/{}_", i.kind.dir(), i.name))
        .collect();
    let mut s = format!(
        "umask 077\nmkdir -p {qbd} || exit 3\n\
         for i in 1 2 3; do ts=$(date +%Y%m%d_%H%M%S); clash=''\n\
         for n in {}; do [ -e {qbd}/\"$n$ts.tar.gz\" ] && clash=y; done\n\
         [ -z \"$clash\" ] && break; sleep 1; done\n\
         [ -z \"$clash\" ] || {{ echo 'no free timestamp' >&2; exit 4; }}\necho \"TS $ts\"\n",
        names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ")
    );
    if names.is_empty() {
        s = "echo \"TS $(date +%Y%m%d_%H%M%S)\"\n".into();
    }
    let out = host.run(&s, None)?;
    let ts = tagged(&out.stdout_str(), "TS")
        .map(|t| t.trim().to_string())
        .filter(|t| out.success() && parse_ts(t).is_some())
        .ok_or_else(|| {
            ModuleError::failed(format!(
                "cannot prepare {bd} (rc={}): {}",
                out.rc,
                out.stderr_str().trim()
            ))
        })?;

    let mut written: Vec<Written> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for it in &st.items {
        let script = archive_script(it, p.consistency, &bd, &ts);
        let res = host.run(&script, None);
        let containers: Vec<(String, String)> = match &it.source {
            Source::Volume { containers, .. } if p.consistency != Consistency::None => {
                containers.clone()
            }
            _ => Vec::new(),
        };
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                // The script may have died with the containers down: bring
                // them up from here (starting a running one is a no-op).
                let again = restart_containers(host, p.consistency, &containers);
                failures.push(format!("{}: {e}{again}", it.describe()));
                if matches!(e, HostError::Unreachable(_)) {
                    return Err(e.into());
                }
                continue;
            }
        };
        let text = out.stdout_str();
        let restart_failed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("RESTART_FAILED "))
            .collect();
        if !restart_failed.is_empty() {
            failures.push(format!(
                "{}: containers not started again: {}",
                it.describe(),
                restart_failed.join(", ")
            ));
        }
        match (tagged(&text, "OK"), tagged(&text, "FAIL")) {
            (Some(ok), None) => {
                let mut f = ok.split_whitespace();
                let sha = f.next().unwrap_or_default().to_string();
                let size = f.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                written.push(Written {
                    kind: it.kind,
                    name: it.name.clone(),
                    path: format!("{bd}/{}/{}_{ts}.tar.gz", it.kind.dir(), it.name),
                    sha256: sha,
                    size,
                    containers: containers.iter().map(|(_, n)| n.clone()).collect(),
                });
            }
            (_, Some(why)) => failures.push(format!("{}: {why}", it.describe())),
            _ => failures.push(format!(
                "{}: the script ended without a verdict (rc={}): {}",
                it.describe(),
                out.rc,
                out.stderr_str().trim()
            )),
        }
    }

    let mut result = Map::new();
    result.insert("timestamp".into(), json!(ts));
    result.insert("backup_dir".into(), json!(bd));
    // The manifest lists what verified, even when something else failed.
    let manifest = format!("manifest_{ts}.sha256");
    if !written.is_empty() {
        let text: String = written
            .iter()
            .map(|w| format!("{}  {}/{}_{ts}.tar.gz\n", w.sha256, w.kind.dir(), w.name))
            .collect();
        host.write_file(
            &format!("{bd}/{manifest}"),
            text.as_bytes(),
            &FileAttrs {
                mode: Some("0600".into()),
                ..Default::default()
            },
        )?;
        result.insert("manifest".into(), json!(format!("{bd}/{manifest}")));
    }
    result.insert(
        "archives".into(),
        serde_json::to_value(&written).unwrap_or(Value::Null),
    );
    result.insert("changed".into(), json!(!written.is_empty()));
    if !failures.is_empty() {
        result.insert("failures".into(), json!(failures));
        return Err(ModuleError::Failed {
            msg: format!(
                "{} of {} backups failed, retention skipped: {}",
                failures.len(),
                st.items.len(),
                failures.join("; ")
            ),
            result,
        });
    }

    // Retention, now that every archive of this run verified.
    let mut archives = st.archives.clone();
    let mut manifests = st.manifests.clone();
    for w in &written {
        let rel = format!("{}/{}_{ts}.tar.gz", w.kind.dir(), w.name);
        archives.push(Existing {
            kind: w.kind,
            name: w.name.clone(),
            ts: ts.clone(),
            rel: rel.clone(),
        });
        manifests.entry(manifest.clone()).or_default().push(rel);
    }
    let verified: BTreeSet<String> = manifests.values().flatten().cloned().collect();
    let managed: BTreeSet<(Kind, String)> =
        st.items.iter().map(|i| (i.kind, i.name.clone())).collect();
    let removed = retention(
        &archives,
        &verified,
        &managed,
        &ts,
        p.keep_days.unwrap_or(DEFAULT_KEEP_DAYS),
        p.keep_last.unwrap_or(0),
    );
    let removed_set: BTreeSet<&String> = removed.iter().collect();
    let remaining: BTreeSet<String> = archives
        .iter()
        .map(|a| a.rel.clone())
        .filter(|r| !removed_set.contains(r))
        .collect();
    let mut to_remove: Vec<String> = removed.clone();
    if !removed.is_empty() {
        to_remove.extend(stale_manifests(&manifests, &remaining));
    }
    if !to_remove.is_empty() {
        let files: Vec<String> = to_remove
            .iter()
            .map(|r| quote(&format!("{bd}/{r}")))
            .collect();
        let out = host.run(&format!("rm -f -- {}", files.join(" ")), None)?;
        if !out.success() {
            return Err(ModuleError::Failed {
                msg: format!(
                    "retention could not remove old archives: {}",
                    out.stderr_str().trim()
                ),
                result,
            });
        }
    }
    result.insert(
        "removed".into(),
        json!(to_remove
            .iter()
            .map(|r| format!("{bd}/{r}"))
            .collect::<Vec<_>>()),
    );

    if let Some(to) = &p.fetch_to {
        let dest = fetch_dir(to, host.name());
        let mut fetched = Vec::new();
        let mut files: Vec<(String, Option<String>, PathBuf)> = written
            .iter()
            .map(|w| {
                let file = format!("{}_{ts}.tar.gz", w.name);
                (
                    w.path.clone(),
                    Some(w.sha256.clone()),
                    dest.join(w.kind.dir()).join(file),
                )
            })
            .collect();
        files.push((format!("{bd}/{manifest}"), None, dest.join(&manifest)));
        for (remote, sha, local) in files {
            fetch_one(host, &remote, &local, sha.as_deref()).map_err(|e| ModuleError::Failed {
                msg: format!("fetching {remote}: {e}"),
                result: result.clone(),
            })?;
            fetched.push(local.display().to_string());
        }
        result.insert("fetched".into(), json!(fetched));
    }
    let msg = format!(
        "{} archives written to {bd}, {} old files removed",
        written.len(),
        to_remove.len()
    );
    result.insert("msg".into(), json!(msg));
    Ok(Outcome {
        changed: true,
        result,
        msg: Some(msg),
        failed: false,
    })
}

/// Why a fetched copy could not be made.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Fetch(#[from] FetchFileError),
    #[error("not found on the host")]
    Missing,
    #[error("cannot write {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("the copy's SHA-256 {got} differs from the host's {want}")]
    Checksum { got: String, want: String },
}

/// Writes into a file and hashes what went through, so an archive of any
/// size is copied and checked in one pass with bounded memory.
struct HashingWriter {
    file: std::fs::File,
    hash: Sha256,
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Copy one file from the host to `local` (temp name, then rename), and
/// check its SHA-256 when known. The copy streams in pieces
/// ([`Host::fetch_file`]): archives may be larger than memory.
fn fetch_one(
    host: &mut dyn Host,
    remote: &str,
    local: &Path,
    sha: Option<&str>,
) -> Result<(), FetchError> {
    let local_err = |source| FetchError::Local {
        path: local.display().to_string(),
        source,
    };
    let dir = local.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(local_err)?;
    let tmp = dir.join(format!(
        ".{}.partial",
        local
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    ));
    let result = (|| {
        let mut out = HashingWriter {
            file: std::fs::File::create(&tmp).map_err(local_err)?,
            hash: Sha256::new(),
        };
        host.fetch_file(remote, &mut out)?
            .ok_or(FetchError::Missing)?;
        out.file.sync_all().map_err(local_err)?;
        if let Some(want) = sha {
            let got = hex::encode(out.hash.finalize());
            if got != want {
                return Err(FetchError::Checksum {
                    got,
                    want: want.to_string(),
                });
            }
        }
        std::fs::rename(&tmp, local).map_err(local_err)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Start or unpause containers once more after a lost volume script; an
/// empty string when all came up, else what did not.
fn restart_containers(
    host: &mut dyn Host,
    consistency: Consistency,
    containers: &[(String, String)],
) -> String {
    let up = match consistency {
        Consistency::Stop => "start",
        Consistency::Pause => "unpause",
        Consistency::None => return String::new(),
    };
    if containers.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    for (id, _) in containers {
        // Unpausing a container that is not paused fails; only a paused
        // one needs it.
        let cond = if up == "unpause" {
            format!(
                "[ \"$(docker inspect -f '{{{{.State.Status}}}}' {0})\" = paused ] && ",
                quote(id)
            )
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{{ {cond}docker {up} {0} >/dev/null 2>&1; }} ; \
             [ \"$(docker inspect -f '{{{{.State.Running}}}}' {0} 2>/dev/null)\" = true ] || echo {0}\n",
            quote(id)
        ));
    }
    match host.run(&s, None) {
        Ok(o) if o.stdout_str().trim().is_empty() => String::new(),
        Ok(o) => format!(
            "; containers not running afterwards: {}",
            o.stdout_str()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("; could not start the containers again: {e}"),
    }
}

/// What the restore plan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RestoreProbe {
    archive_sha: Option<String>,
    manifest_sha: Option<String>,
    volume: Option<(String, String)>,
    empty: bool,
    users: Vec<String>,
    marker: Option<String>,
    /// `device:inode` of the volume's directory.
    identity: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RestoreState {
    archive: String,
    marker: String,
    volume: String,
    create: bool,
    wipe: bool,
    sha: String,
}

/// The archive's path on the host and the volume it goes into.
fn restore_target(p: &VolumeBackupParams) -> Result<(String, String), ModuleError> {
    let Some(archive) = &p.archive else {
        return Err(ModuleError::Params(ParamError::Missing {
            module: VolumeBackup::NAME,
            field: "archive".into(),
        }));
    };
    let path = if archive.starts_with('/') {
        archive.clone()
    } else {
        format!("{}/volumes/{archive}", p.backup_dir.trim_end_matches('/'))
    };
    let file = path.rsplit('/').next().unwrap_or_default();
    let volume = match &p.volume {
        Some(v) => v.clone(),
        None => parse_archive_name(file)
            .map(|(n, _)| n.to_string())
            .ok_or_else(|| {
                invalid(
                    "volume",
                    format!(
                        "`{file}` is not named <volume>_<YYYYmmdd_HHMMSS>.tar.gz: give `volume`"
                    ),
                )
            })?,
    };
    if !valid_volume_name(&volume) {
        return Err(invalid(
            "volume",
            format!("`{volume}` is not a valid volume name"),
        ));
    }
    Ok((path, volume))
}

fn restore_probe_script(archive: &str, volume: &str, marker: &str) -> String {
    let a = quote(archive);
    let v = quote(volume);
    let file = archive.rsplit('/').next().unwrap_or_default();
    let mut s = docker_check();
    s.push_str(&format!(
        "if [ -f {a} ]; then echo \"ASHA $(sha256sum < {a} | cut -c1-64)\"; else echo 'ASHA -'; fi\n\
         d=$(dirname -- {a})\n\
         for m in \"$d\"/manifest_*.sha256 \"$d\"/../manifest_*.sha256; do [ -f \"$m\" ] || continue; \
         while read -r sum path; do [ \"${{path##*/}}\" = {f} ] && echo \"MSHA $sum\"; done < \"$m\"; done\n\
         if info=$(docker volume inspect -f {fmt} {v} 2>/dev/null); then echo \"VOL $info\"; \
         mp=${{info##*|}}; if [ -z \"$(ls -A \"$mp\" 2>/dev/null)\" ]; then echo 'EMPTY y'; else echo 'EMPTY n'; fi; \
         echo \"IDENT $(stat -c %d:%i \"$mp\" 2>/dev/null)\"; \
         echo \"USERS $(docker ps -q --filter volume={v} | tr '\\n' ' ')\"; else echo 'VOL -'; fi\n\
         if [ -f {marker} ]; then echo \"MARK $(cat {marker})\"; else echo 'MARK -'; fi\n\
         echo END\n",
        f = quote(file),
        fmt = quote(VOL_FMT),
        marker = quote(marker),
    ));
    s
}

fn parse_restore_probe(out: &str) -> Result<RestoreProbe, ModuleError> {
    if let Some(why) = tagged(out, "NODOCKER") {
        return Err(ModuleError::failed(why.to_string()));
    }
    if !out.lines().any(|l| l == "END") {
        return Err(ModuleError::failed(format!(
            "the probe stopped early: {}",
            out.trim()
        )));
    }
    let opt = |t: &str| {
        tagged(out, t)
            .map(str::trim)
            .filter(|v| *v != "-" && !v.is_empty())
            .map(str::to_string)
    };
    let volume = opt("VOL")
        .and_then(|l| parse_volume(&l))
        .map(|v| (v.created, v.mountpoint));
    Ok(RestoreProbe {
        archive_sha: opt("ASHA"),
        manifest_sha: opt("MSHA"),
        empty: tagged(out, "EMPTY").is_none_or(|e| e.trim() == "y"),
        users: tagged(out, "USERS")
            .map(|u| u.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        marker: opt("MARK"),
        identity: opt("IDENT"),
        volume,
    })
}

fn marker_path(p: &VolumeBackupParams, volume: &str) -> String {
    format!(
        "{}/{MARKER_DIR}/{volume}",
        p.backup_dir.trim_end_matches('/')
    )
}

/// The marker's text: the volume directory's identity and the archive's
/// SHA-256.
fn marker_text(identity: &str, sha: &str) -> String {
    format!("{identity}|{sha}")
}

fn plan_restore(p: &VolumeBackupParams, host: &mut dyn Host) -> Result<Plan, ModuleError> {
    let (archive, volume) = restore_target(p)?;
    let marker = marker_path(p, &volume);
    let out = host.run(&restore_probe_script(&archive, &volume, &marker), None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "looking at the host failed (rc={}): {}",
            out.rc,
            out.stderr_str().trim()
        )));
    }
    let pr = parse_restore_probe(&out.stdout_str())?;
    let mut plan = Plan::empty();
    plan.result.insert("volume".into(), json!(volume));
    plan.result.insert("archive".into(), json!(archive));
    let Some(sha) = pr.archive_sha.clone() else {
        return Err(ModuleError::failed(format!(
            "archive `{archive}` does not exist on the host"
        )));
    };
    plan.result.insert("sha256".into(), json!(sha));
    if let (Some(_), Some(identity), false) = (&pr.volume, &pr.identity, pr.empty) {
        if pr.marker.as_deref() == Some(marker_text(identity, &sha).as_str()) {
            return Ok(plan);
        }
    }
    if let Some(want) = &pr.manifest_sha {
        if want != &sha {
            return Err(ModuleError::failed(format!(
                "archive `{archive}` does not match its manifest (SHA-256 {sha}, manifest {want})"
            )));
        }
    }
    let mut wipe = false;
    match &pr.volume {
        None => plan.changes.push(format!("create volume {volume}")),
        Some(_) => {
            if !pr.users.is_empty() {
                return Err(ModuleError::failed(format!(
                    "volume `{volume}` is used by running containers ({}): stop them first",
                    pr.users.join(", ")
                )));
            }
            if !pr.empty {
                if !p.force {
                    return Err(ModuleError::failed(format!(
                        "volume `{volume}` is not empty: restore into a new or empty volume, or set force: true to replace its contents"
                    )));
                }
                wipe = true;
                plan.changes.push(format!("empty volume {volume} (force)"));
            }
        }
    }
    plan.changes
        .push(format!("restore volume {volume} from {archive}"));
    plan.keep_state(&RestoreState {
        archive,
        marker,
        volume,
        create: pr.volume.is_none(),
        wipe,
        sha,
    })?;
    Ok(plan)
}

fn apply_restore(plan: Plan, host: &mut dyn Host) -> Result<Outcome, ModuleError> {
    let st: RestoreState = plan.state_as()?;
    let a = quote(&st.archive);
    let v = quote(&st.volume);
    let mut s = format!(
        "fail() {{ echo \"FAIL $1\"; exit 1; }}\n\
         gzip -t {a} 2>/dev/null || fail 'the archive is not valid gzip'\n\
         tar -tzf {a} >/dev/null 2>&1 || fail 'the archive cannot be listed'\n\
         [ \"$(sha256sum < {a} | cut -c1-64)\" = {sha} ] || fail 'the archive changed since the plan'\n",
        sha = quote(&st.sha),
    );
    if st.create {
        s.push_str(&format!(
            "docker volume create {v} >/dev/null || fail 'docker volume create failed'\n"
        ));
    }
    s.push_str(&format!(
        "info=$(docker volume inspect -f {fmt} {v}) || fail 'the volume is gone'\n\
         mp=${{info##*|}}\n\
         [ -d \"$mp\" ] || fail \"no mountpoint $mp\"\n",
        fmt = quote(VOL_FMT)
    ));
    if st.wipe {
        s.push_str("find \"$mp\" -mindepth 1 -delete || fail 'cannot empty the volume'\n");
    } else {
        s.push_str("[ -z \"$(ls -A \"$mp\")\" ] || fail 'the volume is no longer empty'\n");
    }
    s.push_str(&format!(
        "e=$(tar --numeric-owner -xzf {a} -C \"$mp\" 2>&1) || fail \"tar failed: $(echo \"$e\" | tail -n 3 | tr '\\n' ' ')\"\n\
         identity=$(stat -c %d:%i \"$mp\") || fail 'cannot stat the volume'\n\
         mkdir -p \"$(dirname -- {m})\" && printf '%s|%s\\n' \"$identity\" {sha} > {m} || fail 'cannot write the marker'\n\
         echo OK\n",
        m = quote(&st.marker),
        sha = quote(&st.sha),
    ));
    let out = host.run(&s, None)?;
    let text = out.stdout_str();
    let mut result = plan.result.clone();
    if let Some(why) = tagged(&text, "FAIL") {
        return Err(ModuleError::Failed {
            msg: format!("restoring volume `{}` failed: {why}", st.volume),
            result,
        });
    }
    if !out.success() || !text.lines().any(|l| l == "OK") {
        return Err(ModuleError::Failed {
            msg: format!(
                "restoring volume `{}` failed (rc={}): {}",
                st.volume,
                out.rc,
                out.stderr_str().trim()
            ),
            result,
        });
    }
    result.insert("changed".into(), json!(true));
    let msg = format!("volume {} restored from {}", st.volume, st.archive);
    Ok(Outcome {
        changed: true,
        result,
        msg: Some(msg),
        failed: false,
    })
}

impl Module for VolumeBackup {
    const NAME: &'static str = "volume_backup";
    const DOC_SHORT: &'static str = "Back up Docker volumes, compose files, /etc/docker and images into verified archives, or restore a volume.";
    const DOC_LONG: &'static str = r##"`volume_backup` archives a Docker host's data into `backup_dir` (default
`/backup/docker`): named volumes into `volumes/`, the compose files of the
projects under `compose_dirs` and `/etc/docker` into `configs/`, and
`images` (`docker save`) into `images/`, each as
`<name>_<YYYYmmdd_HHMMSS>.tar.gz`, with a SHA-256 manifest per run
(`manifest_<ts>.sha256`, `sha256sum -c` format). `state: restored` brings a
volume back from an archive.

- A volume is read from its mountpoint on the host (`docker volume inspect`)
  with the host's tar, `--numeric-owner`: no helper image, so nothing is
  pulled. Only the `local` driver can be read that way; a volume of another
  driver fails the plan naming it.
- `consistency: stop|pause` stops (pauses) the running containers that use a
  volume for that volume's copy only, and always starts (unpauses) them
  again: right after tar, from a shell trap on any exit, and once more from
  herd if the script was lost. A failed backup reports which containers
  could not be started.
- Each archive is written to a hidden temp name, checked with `gzip -t` and a
  full `tar -t` listing, and only then renamed into place. Retention runs
  only when every archive of the run verified; it removes archives of the
  names this task backs up that are older than `keep_days` and not among the
  newest `keep_last`, and never the newest verified archive of a name (so a
  host whose backups failed for a month keeps its last good one).
  `keep_days: 0` with `keep_last: N` keeps exactly the newest N.
- A backup is not convergent: every run writes new archives and reports
  `changed`. `--check` lists what would be archived, which containers would
  be stopped, and which old archives retention would remove.
- A restore checks the archive against its manifest, gzip and tar first,
  creates the volume when it is missing, and refuses a volume with data
  (unless `force`) or one used by running containers. It records the
  volume directory's device and inode and the archive's SHA-256 in
  `<backup_dir>/.restored/<volume>`, so running it again changes nothing
  (a volume removed and made again is empty and is restored again).
- Scheduled runs: backups are a job for cron or a systemd timer on the
  controller. herd's exit code says how it went (0 every host backed up,
  2 a host failed, 4 a host was unreachable) and `--output jsonl` gives one
  `host_result` line per host and task for a log or an alert:

  ```
  # /etc/cron.d/docker-backup
  30 2 * * * backup  herd run /srv/ops/playbooks/volume-backup.yml -i /srv/ops/inventories/prod.ini --output jsonl >>/var/log/herd-backup.jsonl 2>&1 || logger -t herd-backup "docker backup failed: exit $?"
  ```

  With systemd, a `Type=oneshot` service running the same command and an
  `OnCalendar=*-*-* 02:30` timer; `OnFailure=` fires on any non-zero exit.
- `playbooks/volume-backup.yml` and `playbooks/volume-restore.yml` with
  `inventories/volume-backup.ini` are runnable examples against the test
  fleet."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Back up the app's data
  volume_backup:
    volumes: [pgdata, "app_*"]          # or `all` (named volumes), or one name/glob
    compose_dirs: [/opt/deploy/prod]    # compose*.y*ml, docker-compose*.y*ml, .env
    images: [registry.local/app:1.4]
    consistency: stop                   # stop | pause | none (default)
    keep_days: 30                       # default 30
    keep_last: 7                        # always keep the newest 7
    fetch_to: backups/                  # controller copy: backups/<host>/volumes/...
    # docker_config: true (/etc/docker), backup_dir: /backup/docker
  register: backup   # backup.archives: [{kind, name, path, sha256, size}], backup.removed

- name: Restore a volume
  volume_backup:
    state: restored
    archive: pgdata_20250601_020000.tar.gz  # under <backup_dir>/volumes, or absolute
    volume: pgdata_restored                 # default: the name in the archive's name
    # force: true empties a volume that has data (refused otherwise)
"##;
    type Params = VolumeBackupParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if !p.backup_dir.starts_with('/') {
            return Err(invalid("backup_dir", "must be an absolute path"));
        }
        match p.state {
            BackupState::BackedUp => {
                if p.archive.is_some() || p.volume.is_some() || p.force {
                    return Err(invalid(
                        "archive",
                        "archive, volume and force are for state: restored",
                    ));
                }
                plan_backup(p, host)
            }
            BackupState::Restored => plan_restore(p, host),
        }
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        match p.state {
            BackupState::BackedUp => apply_backup(p, plan, host),
            BackupState::Restored => apply_restore(plan, host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::module::parse_params;
    use crate::DynModule;

    fn params(v: Value) -> VolumeBackupParams {
        parse_params::<VolumeBackupParams>(VolumeBackup::NAME, &v).expect("params")
    }

    #[test]
    fn parses_selection_and_consistency() {
        assert_eq!(params(json!({"volumes": "all"})).volumes, Selection::All);
        assert_eq!(
            params(json!({"volumes": "app_*"})).volumes,
            Selection::Some(vec!["app_*".into()])
        );
        assert_eq!(
            params(json!({"volumes": ["a", "b"]})).volumes,
            Selection::Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(params(json!({})).volumes, Selection::Nothing);
        let p = params(json!({"consistency": "pause", "keep_days": "7", "keep_last": 3}));
        assert_eq!(p.consistency, Consistency::Pause);
        assert_eq!((p.keep_days, p.keep_last), (Some(7), Some(3)));
        assert_eq!(p.backup_dir, "/backup/docker");
        assert!(p.docker_config);
        let e = parse_params::<VolumeBackupParams>("t", &json!({"consistency": "freeze"}))
            .expect_err("bad consistency");
        assert!(e.to_string().contains("stop, pause, none"), "{e}");
        assert!(parse_params::<VolumeBackupParams>("t", &json!({"volume": 3})).is_err());
    }

    #[test]
    fn names_and_timestamps() {
        assert_eq!(
            parse_archive_name("app_data_20240131_235959.tar.gz"),
            Some(("app_data", "20240131_235959"))
        );
        assert_eq!(parse_archive_name("x_20241301_000000.tar.gz"), None);
        assert_eq!(parse_archive_name("_20240101_000000.tar.gz"), None);
        assert_eq!(parse_archive_name("x_20240101_000000.tar"), None);
        // Host-listed names with multi-byte characters where the timestamp
        // would start used to panic the controller (a byte-index split).
        assert_eq!(parse_archive_name("€€€€€€.tar.gz"), None);
        assert_eq!(parse_archive_name("x€€€€€€.tar.gz"), None);
        assert_eq!(
            parse_archive_name("dé_20240101_000000.tar.gz"),
            Some(("dé", "20240101_000000"))
        );
        for n in 0..40 {
            let _ = parse_archive_name(&format!("{}.tar.gz", "é".repeat(n)));
            let _ = parse_archive_name(&format!("a{}.tar.gz", "☃".repeat(n)));
        }
        assert_eq!(
            parse_archive_name(".x_20240101_000000.tar.gz.partial"),
            None
        );
        assert_eq!(parse_ts("19700101_000000"), Some(0));
        assert_eq!(parse_ts("20000301_000000"), Some(951_868_800));
        assert_eq!(
            parse_ts("20240101_000000").map(|a| parse_ts("20240131_000000").unwrap_or(0) - a),
            Some(30 * 86_400)
        );
        assert_eq!(name_for("/opt/deploy/prod/"), "opt-deploy-prod");
        assert_eq!(name_for("herd/busybox:1"), "herd-busybox-1");
        assert!(glob_match("app_*", "app_db"));
        assert!(!glob_match("app_*", "web_app_db"));
        assert!(glob_match("db?", "db1"));
        assert!(glob_match("db[12]", "db2") && !glob_match("db[!12]", "db2"));
        assert!(glob_match("a.b", "a.b") && !glob_match("a.b", "axb"));
        assert!(is_anonymous(&"ab".repeat(32)) && !is_anonymous("pgdata"));
        assert!(valid_volume_name("pg_data-1.x") && !valid_volume_name("../x"));
    }

    fn ex(kind: Kind, name: &str, ts: &str) -> Existing {
        Existing {
            kind,
            name: name.into(),
            ts: ts.into(),
            rel: format!("{}/{name}_{ts}.tar.gz", kind.dir()),
        }
    }

    #[test]
    fn retention_keeps_the_newest_verified_archive() {
        let now = "20250601_120000";
        let archives = vec![
            ex(Kind::Volume, "db", "20250101_000000"),
            ex(Kind::Volume, "db", "20250201_000000"),
            ex(Kind::Volume, "db", "20250301_000000"),
            ex(Kind::Volume, "db", "20250531_000000"),
            ex(Kind::Volume, "other", "20200101_000000"),
        ];
        let managed: BTreeSet<(Kind, String)> = [(Kind::Volume, "db".to_string())].into();
        let all: BTreeSet<String> = archives.iter().map(|a| a.rel.clone()).collect();
        // A young one exists: every old one goes; `other` is not managed.
        assert_eq!(
            retention(&archives, &all, &managed, now, 30, 0),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250201_000000.tar.gz",
                "volumes/db_20250301_000000.tar.gz"
            ]
        );
        // All older than keep_days: the newest verified one stays.
        let old = &archives[..3];
        assert_eq!(
            retention(old, &all, &managed, now, 30, 0),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250201_000000.tar.gz"
            ]
        );
        // ... even when the newest is not verified: the newest verified
        // one is kept, the unverified newer one may go.
        let verified: BTreeSet<String> = [archives[1].rel.clone()].into();
        assert_eq!(
            retention(old, &verified, &managed, now, 30, 0),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250301_000000.tar.gz"
            ]
        );
        // keep_last keeps the newest N whatever their age.
        assert_eq!(
            retention(old, &all, &managed, now, 30, 2),
            ["volumes/db_20250101_000000.tar.gz"]
        );
        // keep_days: 0 with keep_last is count-based retention.
        assert_eq!(
            retention(&archives, &all, &managed, now, 0, 1),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250201_000000.tar.gz",
                "volumes/db_20250301_000000.tar.gz"
            ]
        );
        let manifests: BTreeMap<String, Vec<String>> = [
            (
                "manifest_a.sha256".to_string(),
                vec![archives[0].rel.clone()],
            ),
            (
                "manifest_b.sha256".to_string(),
                vec![archives[0].rel.clone(), archives[3].rel.clone()],
            ),
        ]
        .into();
        let remaining: BTreeSet<String> = [archives[3].rel.clone()].into();
        assert_eq!(
            stale_manifests(&manifests, &remaining),
            ["manifest_a.sha256"]
        );
    }

    /// A `docker` that keeps volumes, containers and images as files under
    /// a state directory, so the module's real scripts (tar, gzip, sha256sum,
    /// traps) run on this machine without a Docker engine.
    const FAKE_DOCKER: &str = r#"#!/bin/sh
S="$FAKE_DOCKER_STATE"
echo "$*" >> "$S/log"
case "$1" in
version) echo 20.10.24 ;;
volume)
  case "$2" in
  ls) ls "$S/volumes" ;;
  inspect)
    shift 4
    for n in "$@"; do
      [ -d "$S/volumes/$n" ] || { echo "Error: No such volume: $n" >&2; exit 1; }
      echo "$n|local|$(cat "$S/volumes/$n/created")|$S/volumes/$n/_data"
    done ;;
  create) mkdir -p "$S/volumes/$3/_data"; date +%s%N > "$S/volumes/$3/created"; echo "$3" ;;
  esac ;;
ps)
  filt=''; [ "$3" = --filter ] && filt=${4#volume=}
  for c in $(ls "$S/ctr"); do
    case "$(cat "$S/ctr/$c/status")" in running|paused) ;; *) continue ;; esac
    [ -z "$filt" ] || grep -qx "$filt" "$S/ctr/$c/volumes" || continue
    echo "$c"
  done ;;
inspect)
  fmt=$3; shift 3
  for c in "$@"; do
    st=$(cat "$S/ctr/$c/status")
    case "$fmt" in
    *Mounts*) echo "$c|/$c-name|$st|$(tr '\n' ',' < "$S/ctr/$c/volumes")" ;;
    *State.Running*) [ "$st" = running ] && echo true || echo false ;;
    *) echo "$st" ;;
    esac
  done ;;
stop) echo exited > "$S/ctr/$2/status" ;;
start) echo running > "$S/ctr/$2/status" ;;
pause) echo paused > "$S/ctr/$2/status" ;;
unpause) echo running > "$S/ctr/$2/status" ;;
image) [ -f "$S/images/$(echo "$3" | tr '/:' '__')" ] ;;
save) cat "$S/images/$(echo "$2" | tr '/:' '__')" ;;
*) echo "fake docker: $*" >&2; exit 2 ;;
esac
"#;

    /// The local host with the fake `docker` first on PATH.
    struct Fake {
        dir: tempfile::TempDir,
        local: LocalHost,
    }

    impl Fake {
        fn new() -> Fake {
            let dir = tempfile::tempdir().expect("tempdir");
            let bin = dir.path().join("bin");
            std::fs::create_dir_all(&bin).expect("bin");
            std::fs::write(bin.join("docker"), FAKE_DOCKER).expect("docker");
            for d in ["state/volumes", "state/ctr", "state/images", "backup"] {
                std::fs::create_dir_all(dir.path().join(d)).expect("dirs");
            }
            let f = Fake {
                dir,
                local: LocalHost::new("fakehost"),
            };
            f.sh(&format!("chmod +x {}/bin/docker", f.root()));
            f
        }
        fn root(&self) -> String {
            self.dir.path().display().to_string()
        }
        fn backup_dir(&self) -> String {
            format!("{}/backup", self.root())
        }
        fn sh(&self, script: &str) -> String {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("S={}/state; {script}", self.root()))
                .output()
                .expect("sh");
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        fn volume(&self, name: &str) {
            self.sh(&format!(
                "mkdir -p $S/volumes/{name}/_data/sub && echo 1 > $S/volumes/{name}/created && \
                 echo hello-{name} > $S/volumes/{name}/_data/a.txt && \
                 head -c 5000 /dev/urandom > $S/volumes/{name}/_data/sub/blob && \
                 chmod 0751 $S/volumes/{name}/_data/sub"
            ));
        }
        fn container(&self, id: &str, volume: &str) {
            self.sh(&format!(
                "mkdir -p $S/ctr/{id} && echo running > $S/ctr/{id}/status && echo {volume} > $S/ctr/{id}/volumes"
            ));
        }
        fn status(&self, id: &str) -> String {
            self.sh(&format!("cat $S/ctr/{id}/status"))
                .trim()
                .to_string()
        }
        /// Every file's checksum and every path's mode, relative to the volume.
        fn sums(&self, name: &str) -> String {
            self.sh(&format!(
                "cd $S/volumes/{name}/_data && find . -type f -exec sha256sum {{}} + | sort && find . -printf '%p %m\\n' | sort"
            ))
        }
    }

    impl Host for Fake {
        fn name(&self) -> &str {
            "fakehost"
        }
        fn run(
            &mut self,
            script: &str,
            stdin: Option<&[u8]>,
        ) -> Result<crate::ExecOutput, HostError> {
            let root = self.root();
            self.local.run(
                &format!("export PATH={root}/bin:$PATH FAKE_DOCKER_STATE={root}/state\n{script}"),
                stdin,
            )
        }
    }

    fn backup_params(f: &Fake, extra: Value) -> Value {
        let mut p = json!({"volumes": "all", "docker_config": false, "consistency": "stop",
                           "backup_dir": f.backup_dir()});
        if let (Value::Object(m), Value::Object(e)) = (&mut p, extra) {
            m.extend(e);
        }
        p
    }

    #[test]
    fn backs_up_stops_and_restarts_and_writes_a_manifest() {
        let mut f = Fake::new();
        f.volume("app_db");
        f.volume("cache");
        f.sh(&format!(
            "mkdir -p $S/volumes/{0}/_data && echo 1 > $S/volumes/{0}/created",
            "ab".repeat(32)
        ));
        f.container("c1", "app_db");
        let p = backup_params(&f, json!({"volumes": "app_*"}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(pl.changes.len(), 1, "{:?}", pl.changes);
        assert!(
            pl.changes[0].starts_with("back up volume app_db to ")
                && pl.changes[0].ends_with("/volumes/app_db_<timestamp>.tar.gz (stopping c1-name)"),
            "{:?}",
            pl.changes
        );
        // The plan changed nothing: one probe, no stop.
        assert!(!f.sh("cat $S/log").contains("stop"));
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("apply");
        assert!(out.changed);
        assert_eq!(f.status("c1"), "running");
        let log = f.sh("cat $S/log");
        assert!(
            log.contains("stop c1\n") && log.contains("start c1\n"),
            "{log}"
        );
        let archives = out.result["archives"].as_array().expect("archives");
        assert_eq!(archives.len(), 1);
        assert_eq!(archives[0]["containers"], json!(["c1-name"]));
        let manifest = out.result["manifest"].as_str().expect("manifest");
        let check = f.sh(&format!("cd {} && sha256sum -c {manifest}", f.backup_dir()));
        assert!(check.contains(": OK"), "{check}");
        assert!(f
            .sh(&format!("ls -A {}/volumes", f.backup_dir()))
            .lines()
            .all(|l| !l.starts_with('.')));
        // `all` leaves out the anonymous volume and takes both named ones.
        let p = backup_params(&f, json!({}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(pl.result["volumes"], json!(["app_db", "cache"]));
        let e = DynModule::plan(
            &VolumeBackup,
            &backup_params(&f, json!({"volumes": ["nope"]})),
            &mut f,
        )
        .expect_err("missing volume");
        assert!(
            e.to_string().contains("volume `nope` does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_archive_restarts_the_containers_and_skips_retention() {
        for consistency in ["stop", "pause"] {
            let mut f = Fake::new();
            f.volume("db");
            f.container("c1", "db");
            // An old verified archive that retention would remove.
            f.sh(&format!(
                "mkdir -p {0}/volumes && tar -czf {0}/volumes/db_20200101_000000.tar.gz -C $S/volumes/db/_data . && \
                 cd {0} && sha256sum volumes/db_20200101_000000.tar.gz > manifest_20200101_000000.sha256",
                f.backup_dir()
            ));
            let p = backup_params(&f, json!({"consistency": consistency}));
            let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
            // The volume's data goes away between plan and apply: tar fails
            // while the container is down.
            f.sh("rm -rf $S/volumes/db/_data");
            let e = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect_err("must fail");
            assert!(e.to_string().contains("tar failed"), "{e}");
            assert!(e.to_string().contains("retention skipped"), "{e}");
            assert_eq!(f.status("c1"), "running", "{consistency}");
            let log = f.sh("cat $S/log");
            let (down, up) = if consistency == "stop" {
                ("stop", "start")
            } else {
                ("pause", "unpause")
            };
            assert!(log.contains(&format!("{down} c1\n{up} c1\n")), "{log}");
            let left = f.sh(&format!("ls -A {}/volumes", f.backup_dir()));
            assert_eq!(
                left, "db_20200101_000000.tar.gz\n",
                "no partial file, old archive kept"
            );
        }
    }

    #[test]
    fn retention_after_a_good_run_keeps_the_new_archive_and_drops_old_manifests() {
        let mut f = Fake::new();
        f.volume("db");
        let bd = f.backup_dir();
        f.sh(&format!(
            "mkdir -p {bd}/volumes && for t in 20200101_000000 20200201_000000; do \
             tar -czf {bd}/volumes/db_$t.tar.gz -C $S/volumes/db/_data . && \
             (cd {bd} && sha256sum volumes/db_$t.tar.gz > manifest_$t.sha256); done && \
             touch {bd}/volumes/other_20200101_000000.tar.gz"
        ));
        let p = backup_params(&f, json!({"keep_days": 30}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(
            pl.changes[1..],
            [
                format!("remove {bd}/volumes/db_20200101_000000.tar.gz (retention)"),
                format!("remove {bd}/volumes/db_20200201_000000.tar.gz (retention)"),
            ]
        );
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("apply");
        let ts = out.result["timestamp"].as_str().expect("ts").to_string();
        assert_eq!(
            f.sh(&format!("cd {bd} && ls volumes/ *.sha256")),
            format!(
                "manifest_{ts}.sha256\n\nvolumes/:\ndb_{ts}.tar.gz\nother_20200101_000000.tar.gz\n"
            )
        );
    }

    #[test]
    fn restores_a_destroyed_volume_and_then_plans_nothing() {
        let mut f = Fake::new();
        f.volume("db");
        let before = f.sums("db");
        let fetch = tempfile::tempdir().expect("fetch dir");
        let p = backup_params(&f, json!({"fetch_to": fetch.path().display().to_string()}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("backup");
        let archive = out.result["archives"][0]["path"]
            .as_str()
            .expect("path")
            .to_string();
        let fetched: Vec<String> =
            serde_json::from_value(out.result["fetched"].clone()).expect("fetched");
        assert_eq!(fetched.len(), 2);
        assert!(fetched[0].ends_with(&format!(
            "fakehost/volumes/{}",
            archive.rsplit('/').next().unwrap_or_default()
        )));
        assert_eq!(
            std::fs::read(&fetched[0]).expect("copy"),
            std::fs::read(&archive).expect("archive")
        );

        f.sh("rm -rf $S/volumes/db");
        let file = archive.rsplit('/').next().unwrap_or_default().to_string();
        let r = json!({"state": "restored", "archive": file, "backup_dir": f.backup_dir()});
        let pl = DynModule::plan(&VolumeBackup, &r, &mut f).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "create volume db".to_string(),
                format!("restore volume db from {archive}")
            ]
        );
        DynModule::apply(&VolumeBackup, &r, pl, &mut f).expect("restore");
        assert_eq!(f.sums("db"), before);
        let again = DynModule::plan(&VolumeBackup, &r, &mut f).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);

        // Into another, non-empty volume: refused without force.
        f.volume("copy");
        f.sh("echo other > $S/volumes/copy/_data/a.txt");
        let r2 = json!({"state": "restored", "archive": archive, "volume": "copy", "backup_dir": f.backup_dir()});
        let e = DynModule::plan(&VolumeBackup, &r2, &mut f).expect_err("not empty");
        assert!(e.to_string().contains("is not empty"), "{e}");
        let mut forced = r2.clone();
        forced["force"] = json!(true);
        let pl = DynModule::plan(&VolumeBackup, &forced, &mut f).expect("plan");
        assert_eq!(pl.changes[0], "empty volume copy (force)");
        DynModule::apply(&VolumeBackup, &forced, pl, &mut f).expect("restore");
        assert_eq!(f.sums("copy"), before);
        assert!(DynModule::plan(&VolumeBackup, &forced, &mut f)
            .expect("plan")
            .is_empty());

        // A running container on the volume: refused.
        f.sh("mkdir -p $S/volumes/third/_data && echo 3 > $S/volumes/third/created");
        f.container("c9", "third");
        let mut r3 = r2.clone();
        r3["volume"] = json!("third");
        let e = DynModule::plan(&VolumeBackup, &r3, &mut f).expect_err("in use");
        assert!(e.to_string().contains("used by running containers"), "{e}");
    }

    #[test]
    fn a_tampered_archive_is_refused() {
        let mut f = Fake::new();
        f.volume("db");
        let p = backup_params(&f, json!({}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("backup");
        let archive = out.result["archives"][0]["path"]
            .as_str()
            .expect("path")
            .to_string();
        f.sh(&format!("echo x >> {archive}; rm -rf $S/volumes/db"));
        let r = json!({"state": "restored", "archive": archive, "backup_dir": f.backup_dir()});
        let e = DynModule::plan(&VolumeBackup, &r, &mut f).expect_err("tampered");
        assert!(e.to_string().contains("does not match its manifest"), "{e}");
    }

    #[test]
    fn backs_up_compose_files_and_images() {
        let mut f = Fake::new();
        let proj = format!("{}/proj", f.root());
        f.sh(&format!(
            "mkdir -p {proj}/sub && echo 'services: {{}}' > {proj}/compose.yml && echo A=1 > {proj}/.env && \
             echo x > {proj}/notes.txt && echo 'services: {{}}' > {proj}/sub/docker-compose.override.yml && \
             mkdir -p $S/imgsrc && echo layer > $S/imgsrc/l && tar -cf $S/images/herd_busybox_1 -C $S/imgsrc ."
        ));
        let p = json!({"compose_dirs": [proj], "images": ["herd/busybox:1"], "docker_config": false,
                       "backup_dir": f.backup_dir()});
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(pl.changes.len(), 2, "{:?}", pl.changes);
        assert!(pl.changes[0].contains("compose files of") && pl.changes[0].contains("(3 files)"));
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("apply");
        let a = &out.result["archives"];
        let listing = f.sh(&format!(
            "tar -tzf {} | sort",
            a[0]["path"].as_str().unwrap_or_default()
        ));
        assert_eq!(
            listing,
            ".env\ncompose.yml\nsub/docker-compose.override.yml\n"
        );
        assert!(a[1]["path"]
            .as_str()
            .unwrap_or_default()
            .contains("/images/herd-busybox-1_"));
        let e = DynModule::plan(
            &VolumeBackup,
            &json!({"images": ["nope:1"], "docker_config": false,
                       "backup_dir": f.backup_dir()}),
            &mut f,
        )
        .expect_err("no image");
        assert!(
            e.to_string().contains("image `nope:1` is not on this host"),
            "{e}"
        );
    }

    #[test]
    fn without_docker_the_plan_says_so() {
        let mut h = LocalHost::new("local");
        let p = json!({"volumes": "all", "backup_dir": "/nonexistent-herd-test"});
        let r = DynModule::plan(
            &VolumeBackup,
            &json!({"state": "restored", "backup_dir": "/x"}),
            &mut h,
        );
        assert!(r.is_err_and(|e| e
            .to_string()
            .contains("missing required parameter `archive`")));
        let mut empty = Fake::new();
        std::fs::write(
            empty.dir.path().join("bin/docker"),
            "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2; exit 1\n",
        )
        .expect("w");
        let e = DynModule::plan(&VolumeBackup, &p, &mut empty).expect_err("no daemon");
        assert!(
            e.to_string().contains("does not answer: Cannot connect"),
            "{e}"
        );
    }
}
