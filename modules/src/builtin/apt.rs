//! `apt` (and `package`, which maps to it and passes apt's parameters
//! through): install, upgrade and remove Debian packages with `apt-get`,
//! and refresh the package lists.
//!
//! The plan is one probe (`dpkg-query` for every named package, `apt-cache
//! policy` candidates for `latest`, the age of the package lists, and the
//! fields of a `deb` file), then, when something is to be installed, one
//! `apt-get -s` to list every package that would come with it, so check
//! mode names them. Apply refreshes the lists first when asked, probes again
//! if it did (candidates may have moved), and runs one `apt-get` per action.
//!
//! The steps and what each reports follow Ansible's order: `clean` first
//! (alone: always a change); then the lists (alone: changed when their time
//! moved, with `cache_updated` and `cache_update_time`); then `upgrade`
//! (`apt-get upgrade --with-new-pkgs` or `dist-upgrade`, or aptitude's
//! `safe-upgrade`/`full-upgrade` when aptitude is installed and
//! `force_apt_get` is not set; changed unless apt reports nothing to do),
//! or a `deb`, or, without packages, `autoclean` or else `autoremove`
//! (changed when apt deletes or removes something); then the packages, with
//! `--auto-remove` under `autoremove`.
//!
//! Differences from Ansible: `update_cache` (without a fresh enough
//! `cache_valid_time`) counts as a planned change, but the task reports
//! changed (check mode included) only when packages changed or, when
//! nothing else was asked for, when the lists' time moved (as Ansible
//! does); `build-dep` and `fixed` are
//! not supported; version wildcards (`pkg=1.*`) and `pkg>=1` are not
//! understood; `deb` takes a path on the host or an http(s) or ftp URL
//! fetched with curl or wget on the host; no `diff`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::params::{de_bool, de_opt_bool, de_opt_f64, de_opt_u64};
use crate::probe::tagged;
use crate::shell_quote::{join, quote};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` of `apt` and `package`.
pub enum PkgState {
    #[default]
    #[serde(alias = "installed")]
    /// Installed.
    Present,
    #[serde(alias = "removed")]
    /// Removed.
    Absent,
    /// Installed at the candidate version.
    Latest,
    #[serde(rename = "build-dep")]
    /// Not supported.
    BuildDep,
    /// Not supported.
    Fixed,
}

#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `apt`: what `herd doc` shows, and what the parser takes.
pub struct AptParams {
    /// Packages: a name, a list, or a comma-separated string; `name=version` pins a version.
    #[serde(alias = "package", alias = "pkg")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub name: Option<Value>,
    /// `present`: installed; `latest`: installed at the candidate version; `absent`: removed
    /// (`purge` for configuration too). `build-dep` and `fixed` are not supported.
    #[serde(default)]
    pub state: PkgState,
    /// Run `apt-get update` first (skipped while the lists are younger than
    /// `cache_valid_time`).
    #[serde(default, alias = "update-cache", deserialize_with = "de_bool")]
    pub update_cache: bool,
    /// Attempts at `apt-get update` (default 5).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub update_cache_retries: Option<u64>,
    /// The longest pause, in seconds, between those attempts (default 12).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub update_cache_retry_max_delay: Option<u64>,
    /// Seconds the package lists count as fresh for `update_cache`.
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub cache_valid_time: Option<f64>,
    /// A `.deb` to install: a path on the host or an http(s)/ftp URL (fetched on the host with
    /// curl or wget).
    pub deb: Option<String>,
    /// Install recommended packages (`--install-recommends`/`--no-install-recommends`); unset:
    /// apt's configuration decides.
    #[serde(
        default,
        alias = "install-recommends",
        deserialize_with = "de_opt_bool"
    )]
    pub install_recommends: Option<bool>,
    /// With `state: absent`, remove configuration files too.
    #[serde(default, deserialize_with = "de_bool")]
    pub purge: bool,
    /// Remove packages nothing depends on any more.
    #[serde(default, deserialize_with = "de_bool")]
    pub autoremove: bool,
    /// Remove package files that can no longer be downloaded from the cache.
    #[serde(default, deserialize_with = "de_bool")]
    pub autoclean: bool,
    /// Remove every package file from the cache.
    #[serde(default, deserialize_with = "de_bool")]
    pub clean: bool,
    /// Let apt install unauthenticated packages and downgrade (`--allow-unauthenticated
    /// --allow-downgrades`).
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Accepted; apt-get is always used.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub force_apt_get: Option<bool>,
    /// Options for dpkg, comma-separated (default `force-confdef,force-confold`).
    pub dpkg_options: Option<String>,
    /// The release to prefer (`-t`), e.g. `bookworm-backports`.
    #[serde(alias = "default-release")]
    pub default_release: Option<String>,
    /// Install packages that cannot be authenticated.
    #[serde(default, deserialize_with = "de_bool")]
    pub allow_unauthenticated: bool,
    /// Allow installing a lower version than the installed one.
    #[serde(
        default,
        alias = "allow-downgrade",
        alias = "allow_downgrades",
        deserialize_with = "de_bool"
    )]
    pub allow_downgrade: bool,
    /// Allow changing held packages.
    #[serde(default, deserialize_with = "de_bool")]
    pub allow_change_held_packages: bool,
    /// Only upgrade installed packages; never install a missing one.
    #[serde(default, deserialize_with = "de_bool")]
    pub only_upgrade: bool,
    /// Upgrade every installed package: `yes`/`safe` (`apt-get upgrade --with-new-pkgs`, or
    /// aptitude's `safe-upgrade` when it is installed), `full` (aptitude's `full-upgrade`, else
    /// `apt-get dist-upgrade`), `dist` (`apt-get dist-upgrade`), `no` (the default).
    pub upgrade: Option<Value>,
    /// Seconds to wait for the dpkg lock (default 60).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub lock_timeout: Option<u64>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub policy_rc_d: Option<bool>,
    /// Refuse an install or upgrade that would remove packages (`--no-remove`).
    #[serde(default, deserialize_with = "de_bool")]
    pub fail_on_autoremove: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `package`: what `herd doc` shows, and what the parser takes.
pub struct PackageParams {
    /// Packages: a name or a list.
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub name: Value,
    /// `present`, `latest` or `absent`, as for `apt`.
    pub state: PkgState,
    /// The package manager: `auto` or `apt` (anything else fails).
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// apt's own parameters (`update_cache`, `cache_valid_time`, ...),
    /// handed to apt as Ansible's package action hands every argument to
    /// the package manager's module; anything else is still an error.
    #[serde(flatten)]
    pub apt: AptParams,
    /// Parameters of other package managers: accepted when the task is
    /// loaded, refused when one is still set as the task runs.
    #[serde(flatten)]
    pub other: OtherManagerParams,
}

/// Parameters only other package managers (dnf, yum) take. A role written
/// for several distributions passes them through `package`, often as
/// `"{{ x | default(omit) }}"`: they load, and fail a host only when one is
/// still set when its task runs, as Ansible's apt refuses them there.
#[derive(Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
pub struct OtherManagerParams {
    /// dnf/yum: repositories to enable for this run.
    pub enablerepo: Option<Value>,
    /// dnf/yum: repositories to disable for this run.
    pub disablerepo: Option<Value>,
    /// dnf/yum: skip the signature check.
    pub disable_gpg_check: Option<Value>,
    /// dnf/yum: packages to leave out.
    pub exclude: Option<Value>,
    /// dnf/yum: the release version to install from.
    pub releasever: Option<Value>,
    /// dnf/yum: another root to install into.
    pub installroot: Option<Value>,
    /// dnf/yum: another configuration file.
    pub conf_file: Option<Value>,
    /// dnf/yum: configured excludes to ignore.
    pub disable_excludes: Option<Value>,
    /// dnf/yum: plugins to enable for this run.
    pub enable_plugin: Option<Value>,
    /// dnf/yum: plugins to disable for this run.
    pub disable_plugin: Option<Value>,
    /// dnf/yum: only security updates.
    pub security: Option<Value>,
    /// dnf/yum: only bug-fix updates.
    pub bugfix: Option<Value>,
    /// dnf/yum: skip packages with broken dependencies.
    pub skip_broken: Option<Value>,
    /// dnf/yum: allow removing packages to resolve dependencies.
    pub allowerasing: Option<Value>,
    /// dnf/yum: allow a version other than the best.
    pub nobest: Option<Value>,
    /// dnf/yum: install weak dependencies.
    pub install_weak_deps: Option<Value>,
    /// dnf/yum: use only the local cache.
    pub cacheonly: Option<Value>,
    /// dnf/yum: where downloaded packages go.
    pub download_dir: Option<Value>,
    /// dnf/yum: verify the repositories' certificates.
    pub sslverify: Option<Value>,
}

impl OtherManagerParams {
    /// The names of those given.
    fn given(&self) -> Vec<String> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The `apt` module.
pub struct Apt;
/// The `package` module.
pub struct Package;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Apt::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// One requested package: `name` or `name=version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The package's name.
    pub name: String,
    /// The version asked for (`name=version`), if any.
    pub version: Option<String>,
}

impl Wanted {
    fn spec(&self) -> String {
        match &self.version {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `name` as a string, a comma-separated string or a list, as Ansible takes it.
pub fn wanted(name: Option<&Value>) -> Result<Vec<Wanted>, ModuleError> {
    let mut words = Vec::new();
    match name {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => words.extend(s.split(',').map(str::to_string)),
        Some(Value::Array(a)) => {
            for v in a {
                match v {
                    Value::String(s) => words.extend(s.split(',').map(str::to_string)),
                    Value::Number(n) => words.push(n.to_string()),
                    _ => return Err(invalid("name", "expected package names")),
                }
            }
        }
        Some(_) => return Err(invalid("name", "expected a package name or a list")),
    }
    let mut out = Vec::new();
    for w in words.iter().map(|w| w.trim()).filter(|w| !w.is_empty()) {
        if w.contains(['*', '?', '<', '>']) {
            return Err(invalid(
                "name",
                format!("{w}: wildcards and version comparisons are not supported"),
            ));
        }
        let (name, version) = match w.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (w.to_string(), None),
        };
        if name.starts_with('-') {
            return Err(invalid("name", format!("{name}: not a package name")));
        }
        out.push(Wanted { name, version });
    }
    Ok(out)
}

/// What dpkg knows about one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// `installed`, `config-files`, `half-installed`, `not-installed`, ...
    pub status: String,
    /// The installed version.
    pub version: String,
}

impl Installed {
    /// Whether dpkg says it is installed.
    pub fn is_installed(&self) -> bool {
        self.status == "installed"
    }
}

/// Parse `dpkg-query -W -f='PKG ${Package} ${Status} ${Version}\n'` lines
/// (Status is three words: want, error flag, state).
pub fn parse_dpkg(out: &str) -> std::collections::HashMap<String, Installed> {
    let mut m = std::collections::HashMap::new();
    for line in out.lines().filter_map(|l| l.strip_prefix("PKG ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        // An arch-qualified name (`libc6:amd64`) answers for the plain name too.
        let name = f[0].split(':').next().unwrap_or(f[0]).to_string();
        let inst = Installed {
            status: f[3].to_string(),
            version: f.get(4).copied().unwrap_or("").to_string(),
        };
        // Prefer an installed entry over a removed one for the same name.
        let keep = m
            .get(&name)
            .is_some_and(|old: &Installed| old.is_installed() && !inst.is_installed());
        if !keep {
            m.insert(name, inst);
        }
    }
    m
}

/// Candidate versions from `apt-cache policy` output: `pkg:` headers
/// followed by `  Candidate: v` (`(none)` when nothing can be installed).
pub fn parse_policy(out: &str) -> std::collections::HashMap<String, Option<String>> {
    let mut m = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            let name = line.trim_end_matches(':');
            current = Some(name.split(':').next().unwrap_or(name).to_string());
        } else if let (Some(c), Some(v)) = (&current, line.trim().strip_prefix("Candidate:")) {
            let v = v.trim();
            m.insert(c.clone(), (v != "(none)").then(|| v.to_string()));
        }
    }
    m
}

/// Package names `apt-get -s` would install (`Inst`) and remove (`Remv`).
pub fn parse_simulation(out: &str) -> (Vec<String>, Vec<String>) {
    let mut inst = Vec::new();
    let mut remv = Vec::new();
    for line in out.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("Inst"), Some(n)) => inst.push(n.to_string()),
            (Some("Remv"), Some(n)) => remv.push(n.to_string()),
            _ => {}
        }
    }
    (inst, remv)
}

/// Every probe fact the plan needs.
struct Facts {
    dpkg: std::collections::HashMap<String, Installed>,
    candidates: std::collections::HashMap<String, Option<String>>,
    cache_age: Option<f64>,
    /// The lists' time as Ansible reports `cache_update_time` (0: none).
    cache_time: u64,
    deb: Option<Wanted>,
    autoremove: Vec<String>,
    /// aptitude is installed (Ansible's `upgrade` prefers it).
    aptitude: bool,
}

/// What `upgrade` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeMode {
    /// `yes` or `safe`.
    Safe,
    /// `full`.
    Full,
    /// `dist`.
    Dist,
}

/// `upgrade` as Ansible takes it (`yes`/`no` also as booleans).
fn upgrade_mode(v: Option<&Value>) -> Result<Option<UpgradeMode>, ModuleError> {
    let word = match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(None),
        Some(Value::Bool(true)) => return Ok(Some(UpgradeMode::Safe)),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(other) => other.to_string(),
    };
    match word.as_str() {
        "no" | "false" => Ok(None),
        "yes" | "true" | "safe" => Ok(Some(UpgradeMode::Safe)),
        "full" => Ok(Some(UpgradeMode::Full)),
        "dist" => Ok(Some(UpgradeMode::Dist)),
        _ => Err(invalid(
            "upgrade",
            format!("value of upgrade must be one of: dist, full, no, safe, yes, got: {word}"),
        )),
    }
}

/// What apt-get (and aptitude) print when an upgrade has nothing to do.
const APT_GET_ZERO: &str = "\n0 upgraded, 0 newly installed, 0 to remove";
const APTITUDE_ZERO: &str = "\n0 packages upgraded, 0 newly installed, 0 to remove";

/// The upgrade command, as Ansible builds it; `simulate` for the plan.
fn upgrade_argv(p: &AptParams, mode: UpgradeMode, aptitude: bool, simulate: bool) -> Vec<String> {
    let use_aptitude = aptitude && p.force_apt_get != Some(true) && mode != UpgradeMode::Dist;
    let mut v = vec![if use_aptitude { "aptitude" } else { "apt-get" }.to_string()];
    v.extend(common_opts(p));
    if use_aptitude {
        if p.force {
            v.extend(["--assume-yes".into(), "--allow-untrusted".into()]);
        }
    } else {
        if p.force {
            v.extend([
                "--allow-unauthenticated".into(),
                "--allow-downgrades".into(),
            ]);
        }
        if p.fail_on_autoremove {
            v.push("--no-remove".into());
        }
        if p.allow_downgrade && !p.force {
            v.push("--allow-downgrades".into());
        }
    }
    if p.allow_unauthenticated && !p.force {
        v.push("--allow-unauthenticated".into());
    }
    if simulate {
        v.push("--simulate".into());
    }
    match (mode, use_aptitude) {
        (UpgradeMode::Safe, true) => v.push("safe-upgrade".into()),
        (UpgradeMode::Full, true) => v.push("full-upgrade".into()),
        (UpgradeMode::Safe, false) => v.extend(["upgrade".into(), "--with-new-pkgs".into()]),
        (UpgradeMode::Full | UpgradeMode::Dist, false) => v.push("dist-upgrade".into()),
        (UpgradeMode::Dist, true) => unreachable!("dist always uses apt-get"),
    }
    if p.autoremove && !use_aptitude {
        v.push("--auto-remove".into());
    }
    if let Some(r) = &p.default_release {
        v.extend(["-t".into(), r.clone()]);
    }
    v
}

/// Whether an upgrade's output says it changed something.
fn upgrade_changed(out: &str) -> bool {
    !out.contains(APT_GET_ZERO) && !out.contains(APTITUDE_ZERO)
}

/// `apt-get autoclean` or `autoremove`, as Ansible's cleanup runs them.
fn cleanup_argv(p: &AptParams, op: &str, simulate: bool) -> Vec<String> {
    let mut v = vec!["apt-get".to_string()];
    v.extend(common_opts(p));
    if p.purge {
        v.push("--purge".into());
    }
    if p.force {
        v.extend([
            "--allow-unauthenticated".into(),
            "--allow-downgrades".into(),
        ]);
    }
    v.push(op.into());
    if simulate {
        v.push("--simulate".into());
    }
    v
}

/// Whether a cleanup's output says it deleted or removed something.
fn cleanup_changed(op: &str, out: &str) -> bool {
    if op == "autoclean" {
        out.lines().any(|l| l.starts_with("Del "))
    } else {
        out.contains("The following packages will be REMOVED")
            || out.lines().any(|l| l.starts_with("Remv "))
    }
}

fn fetch_snippet(url: &str) -> String {
    let u = quote(url);
    format!(
        "if command -v curl >/dev/null 2>&1; then curl -fsSL --max-time 300 -o \"$d\" {u}; \
         elif command -v wget >/dev/null 2>&1; then wget -q -T 300 -O \"$d\" {u}; \
         else echo 'neither curl nor wget is installed on the host' >&2; exit 69; fi || exit 70\n"
    )
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("ftp://")
}

/// The time the lists were last updated, as Ansible reads it: apt's
/// success stamp when there is one, else the lists directory's mtime.
fn lists_mtime(host: &mut dyn Host) -> Result<String, ModuleError> {
    let out = host.run(
        "for f in /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists; do \
         if [ -e \"$f\" ]; then stat -c %Y \"$f\"; break; fi; done\n",
        None,
    )?;
    Ok(out.stdout_str().trim().to_string())
}

fn probe(host: &mut dyn Host, p: &AptParams, names: &[Wanted]) -> Result<Facts, ModuleError> {
    let mut s = String::from("echo NOW $(date +%s)\n");
    s.push_str(
        "for f in /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists; do \
         if [ -e \"$f\" ]; then echo CTIME $(stat -c %Y \"$f\"); break; fi; done\n",
    );
    if p.upgrade.is_some() {
        s.push_str("if command -v aptitude >/dev/null 2>&1; then echo APTITUDE yes; fi\n");
    }
    // The lists' age counts only when there are lists: a fresh image has an
    // empty, recently touched lists directory, which would pass any
    // `cache_valid_time` while apt knows no package at all.
    s.push_str(
        "if ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then \
         for f in /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists; do \
         if [ -e \"$f\" ]; then echo CACHE $(stat -c %Y \"$f\"); break; fi; done; fi\n",
    );
    if let Some(deb) = &p.deb {
        if is_url(deb) {
            s.push_str(
                "d=$(mktemp) || exit 1; trap 'rm -f \"$d\"' EXIT; trap 'exit 143' HUP INT TERM\n",
            );
            s.push_str(&fetch_snippet(deb));
        } else {
            s.push_str(&format!("d={}\n", quote(deb)));
            s.push_str("[ -f \"$d\" ] || { echo \"no such file: $d\" >&2; exit 71; }\n");
        }
        s.push_str("echo DEB $(dpkg-deb -W --showformat='${Package} ${Version}' \"$d\")\n");
    }
    let mut all: Vec<String> = names.iter().map(|w| w.name.clone()).collect();
    s.push_str("echo DPKG\n");
    if !all.is_empty() || p.deb.is_some() {
        let deb_name = if p.deb.is_some() {
            " $(dpkg-deb -f \"$d\" Package)"
        } else {
            ""
        };
        all.sort();
        all.dedup();
        s.push_str(&format!(
            "dpkg-query -W -f='PKG ${{Package}} ${{Status}} ${{Version}}\\n' -- {}{deb_name} 2>/dev/null\n",
            join(&all)
        ));
    }
    if p.state == PkgState::Latest && !all.is_empty() {
        s.push_str("echo POLICY\n");
        s.push_str(&format!("apt-cache policy -- {} 2>/dev/null\n", join(&all)));
        s.push_str("echo ENDPOLICY\n");
    }
    if p.autoremove && names.is_empty() {
        s.push_str(
            "apt-get -s -q autoremove 2>/dev/null | sed -n 's/^Remv \\([^ ]*\\).*/AUTORM \\1/p'\n",
        );
    }
    s.push_str("exit 0\n");
    let out = host.run(&s, None)?;
    if !out.success() {
        let msg = match out.rc {
            69 => "neither curl nor wget is installed on the host; cannot fetch deb".to_string(),
            70 => format!("failed to download {}", p.deb.as_deref().unwrap_or("")),
            _ => format!("probing packages failed: {}", out.stderr_str().trim_end()),
        };
        return Err(ModuleError::failed(msg));
    }
    let text = out.stdout_str();
    let now = tagged(&text, "NOW").and_then(|v| v.trim().parse::<f64>().ok());
    let cache = tagged(&text, "CACHE").and_then(|v| v.trim().parse::<f64>().ok());
    let policy_text = text
        .split_once("POLICY\n")
        .map(|(_, rest)| rest.split("ENDPOLICY").next().unwrap_or(""))
        .unwrap_or("");
    let deb = tagged(&text, "DEB").and_then(|l| {
        let mut f = l.split_whitespace();
        Some(Wanted {
            name: f.next()?.to_string(),
            version: f.next().map(str::to_string),
        })
    });
    if p.deb.is_some() && deb.is_none() {
        return Err(ModuleError::failed(format!(
            "{} is not a readable Debian package",
            p.deb.as_deref().unwrap_or("")
        )));
    }
    Ok(Facts {
        dpkg: parse_dpkg(&text),
        candidates: parse_policy(policy_text),
        cache_age: match (now, cache) {
            (Some(n), Some(c)) => Some(n - c),
            _ => None,
        },
        cache_time: tagged(&text, "CTIME")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        aptitude: tagged(&text, "APTITUDE").is_some(),
        deb,
        autoremove: text
            .lines()
            .filter_map(|l| l.strip_prefix("AUTORM "))
            .map(str::to_string)
            .collect(),
    })
}

/// What to do with the packages, decided from the facts.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actions {
    /// Packages to install (with their versions).
    pub install: Vec<String>,
    /// Packages to remove.
    pub remove: Vec<String>,
    /// Whether a `deb` file is to be installed.
    pub deb: bool,
}

fn decide(p: &AptParams, names: &[Wanted], f: &Facts) -> Result<Actions, ModuleError> {
    let mut a = Actions::default();
    for w in names {
        let cur = f.dpkg.get(&w.name);
        let installed = cur.filter(|i| i.is_installed());
        match p.state {
            PkgState::Present => {
                let ok = match (&w.version, installed) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(v), Some(i)) => &i.version == v,
                };
                // only_upgrade never installs what is missing.
                let skip = p.only_upgrade && installed.is_none();
                if !ok && !skip {
                    a.install.push(w.spec());
                }
            }
            PkgState::Latest => {
                if w.version.is_some() {
                    return Err(invalid(
                        "name",
                        "a version can't be given with state=latest",
                    ));
                }
                let cand = f.candidates.get(&w.name).cloned().flatten();
                match (installed, cand) {
                    (None, _) if p.only_upgrade => {}
                    (None, _) => a.install.push(w.spec()),
                    (Some(i), Some(c)) if i.version != c => a.install.push(w.spec()),
                    _ => {}
                }
            }
            PkgState::Absent => {
                let present = match (&w.version, cur) {
                    (_, None) => false,
                    (Some(v), Some(i)) => i.is_installed() && &i.version == v,
                    (None, Some(i)) => i.is_installed() || (p.purge && i.status == "config-files"),
                };
                if present {
                    a.remove.push(w.name.clone());
                }
            }
            PkgState::BuildDep | PkgState::Fixed => {
                return Err(invalid("state", "build-dep and fixed are not supported"))
            }
        }
    }
    if let Some(d) = &f.deb {
        let cur = f.dpkg.get(&d.name).filter(|i| i.is_installed());
        let same = cur.is_some_and(|i| Some(&i.version) == d.version.as_ref());
        if !same || p.force {
            a.deb = true;
        }
    }
    Ok(a)
}

fn env_prefix() -> &'static str {
    "DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "
}

fn common_opts(p: &AptParams) -> Vec<String> {
    let mut v = vec!["-y".to_string(), "-q".to_string()];
    let dpkg = p
        .dpkg_options
        .clone()
        .unwrap_or_else(|| "force-confdef,force-confold".into());
    for o in dpkg.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        v.push("-o".into());
        v.push(format!("Dpkg::Options::=--{o}"));
    }
    if let Some(t) = p.lock_timeout.or(Some(60)) {
        v.push("-o".into());
        v.push(format!("DPkg::Lock::Timeout={t}"));
    }
    v
}

fn install_argv(p: &AptParams, pkgs: &[String], simulate: bool) -> Vec<String> {
    let mut v = vec!["apt-get".to_string()];
    if simulate {
        v.push("-s".into());
    }
    v.extend(common_opts(p));
    match p.install_recommends {
        Some(true) => v.extend(["-o".into(), "APT::Install-Recommends=yes".into()]),
        Some(false) => v.push("--no-install-recommends".into()),
        None => {}
    }
    if let Some(r) = &p.default_release {
        v.extend(["-t".into(), r.clone()]);
    }
    if p.allow_unauthenticated || p.force {
        v.push("--allow-unauthenticated".into());
    }
    if p.allow_downgrade || p.force {
        v.push("--allow-downgrades".into());
    }
    if p.allow_change_held_packages || p.force {
        v.push("--allow-change-held-packages".into());
    }
    if p.only_upgrade {
        v.push("--only-upgrade".into());
    }
    if p.autoremove {
        v.push("--auto-remove".into());
    }
    if p.fail_on_autoremove {
        v.push("--no-remove".into());
    }
    v.push("install".into());
    v.push("--".into());
    v.extend(pkgs.iter().cloned());
    v
}

fn remove_argv(p: &AptParams, pkgs: &[String]) -> Vec<String> {
    let mut v = vec!["apt-get".to_string()];
    v.extend(common_opts(p));
    if p.purge {
        v.push("--purge".into());
    }
    if p.autoremove {
        v.push("--auto-remove".into());
    }
    if p.allow_change_held_packages || p.force {
        v.push("--allow-change-held-packages".into());
    }
    v.push("remove".into());
    v.push("--".into());
    v.extend(pkgs.iter().cloned());
    v
}

fn cache_valid(p: &AptParams, f: &Facts) -> bool {
    match (p.cache_valid_time, f.cache_age) {
        (Some(valid), Some(age)) => age <= valid,
        _ => false,
    }
}

/// The steps a task takes, in Ansible's order, decided by the plan.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Steps {
    /// `apt-get clean` first.
    clean: bool,
    /// Refresh the lists.
    update: bool,
    /// The task ends after `clean` (nothing but cleaning was asked for).
    clean_only: bool,
    /// The task ends after the lists (nothing but them was asked for).
    lists_only: bool,
    /// Upgrade every package, and the task ends there.
    upgrade: Option<UpgradeMode>,
    /// aptitude runs the upgrade.
    aptitude: bool,
    /// `autoclean` or `autoremove` without packages, and the task ends there.
    cleanup: Option<String>,
    /// What to do with the named packages (or the `deb`).
    actions: Actions,
    /// The lists' time before anything ran.
    cache_time: u64,
}

fn plan_apt(p: &AptParams, host: &mut dyn Host) -> Result<Plan, ModuleError> {
    let upgrade = upgrade_mode(p.upgrade.as_ref())?;
    let names = wanted(p.name.as_ref())?;
    let given_upgrade = p.upgrade.as_ref().is_some_and(|u| !u.is_null());
    let exclusive = [
        ("deb", p.deb.is_some()),
        ("package", !names.is_empty()),
        ("upgrade", given_upgrade),
    ];
    if exclusive.iter().filter(|(_, set)| *set).count() > 1 {
        return Err(ModuleError::failed(
            "parameters are mutually exclusive: deb|package|upgrade",
        ));
    }
    if names.is_empty() && p.deb.is_none() && !p.update_cache && !p.autoremove && !given_upgrade {
        return Err(ModuleError::failed(
            "one of the following is required: autoremove, deb, package, update_cache, upgrade",
        ));
    }
    if p.deb.is_some() && p.state != PkgState::Present {
        return Err(ModuleError::failed("deb only supports state=present"));
    }
    let facts = probe(host, p, &names)?;
    let mut steps = Steps {
        cache_time: facts.cache_time,
        ..Steps::default()
    };
    let mut plan = Plan::default();
    let nothing_else = names.is_empty() && upgrade.is_none() && p.deb.is_none();
    if p.clean {
        steps.clean = true;
        steps.clean_only = nothing_else;
        plan.changes.push("clean the package cache".into());
    }
    let lists_asked = p.update_cache || p.cache_valid_time.is_some_and(|t| t > 0.0);
    if !steps.clean_only && lists_asked {
        steps.update = !cache_valid(p, &facts);
        steps.lists_only = nothing_else;
        if steps.update {
            plan.changes.push("update the package lists".into());
        }
    }
    let mut result = Map::new();
    if steps.clean_only {
    } else if steps.lists_only {
        result.insert("cache_updated".into(), json!(steps.update));
        result.insert("cache_update_time".into(), json!(steps.cache_time));
    } else if let Some(mode) = upgrade {
        steps.upgrade = Some(mode);
        steps.aptitude = facts.aptitude;
        let argv = upgrade_argv(p, mode, facts.aptitude, true);
        let sim = host.run(&format!("{}{}", env_prefix(), join(&argv)), None)?;
        if !sim.success() {
            return Err(ModuleError::failed(format!(
                "'{}' failed: {}",
                join(&argv),
                sim.stderr_str().trim_end()
            )));
        }
        let out = sim.stdout_str();
        // Nothing to upgrade: Ansible still returns apt's output.
        result.insert("msg".into(), json!(out));
        output_result(&mut result, &(out.clone(), sim.stderr_str()));
        if upgrade_changed(&out) {
            let (inst, remv) = parse_simulation(&out);
            let mut line = format!("upgrade ({})", join(&argv[..1]));
            if !inst.is_empty() {
                line.push_str(&format!(": install {}", inst.join(", ")));
            }
            if !remv.is_empty() {
                line.push_str(&format!("; remove {}", remv.join(", ")));
            }
            plan.changes.push(line);
        }
    } else if p.deb.is_none() && names.is_empty() {
        if p.autoclean {
            let argv = cleanup_argv(p, "autoclean", true);
            let sim = host.run(&join(&argv), None)?;
            let out = sim.stdout_str();
            output_result(&mut result, &(out.clone(), sim.stderr_str()));
            if sim.success() && cleanup_changed("autoclean", &out) {
                plan.changes.push(
                    "autoclean: delete package files that can no longer be downloaded".into(),
                );
            }
            steps.cleanup = Some("autoclean".into());
        } else if p.autoremove {
            // Ansible returns apt's output even when nothing was removed.
            output_result(&mut result, &Default::default());
            if !facts.autoremove.is_empty() {
                plan.changes
                    .push(format!("autoremove {}", facts.autoremove.join(", ")));
            }
            steps.cleanup = Some("autoremove".into());
        }
    } else {
        let acts = decide(p, &names, &facts)?;
        plan_packages(p, host, &facts, &acts, &mut plan)?;
        // With packages asked for, Ansible counts only what happens to
        // them: the lists' update alone is no change in check mode either.
        plan.not_a_change = steps.update && plan.changes.len() == 1;
        if p.deb.is_none() && p.state != PkgState::Absent {
            result.insert("cache_updated".into(), json!(steps.update));
            result.insert("cache_update_time".into(), json!(steps.cache_time));
        }
        steps.actions = acts;
    }
    plan.result = result;
    plan.keep_state(&steps)?;
    Ok(plan)
}

/// The change lines for the named packages (and the `deb`): everything that
/// would come or go with them, for check mode.
fn plan_packages(
    p: &AptParams,
    host: &mut dyn Host,
    facts: &Facts,
    acts: &Actions,
    plan: &mut Plan,
) -> Result<(), ModuleError> {
    if !acts.install.is_empty() {
        let sim = host.run(&join(&install_argv(p, &acts.install, true)), None)?;
        let (inst, _) = parse_simulation(&sim.stdout_str());
        if sim.success() && !inst.is_empty() {
            plan.changes.push(format!("install {}", inst.join(", ")));
        } else {
            plan.changes
                .push(format!("install {}", acts.install.join(", ")));
        }
    }
    if let Some(d) = facts.deb.as_ref().filter(|_| acts.deb) {
        plan.changes.push(format!(
            "install {} {} from {}",
            d.name,
            d.version.as_deref().unwrap_or(""),
            p.deb.as_deref().unwrap_or("")
        ));
    }
    if !acts.remove.is_empty() {
        let mut argv = remove_argv(p, &acts.remove);
        argv.insert(1, "-s".into());
        let sim = host.run(&join(&argv), None)?;
        let (_, remv) = parse_simulation(&sim.stdout_str());
        let names = if sim.success() && !remv.is_empty() {
            remv
        } else {
            acts.remove.clone()
        };
        let verb = if p.purge { "purge" } else { "remove" };
        plan.changes.push(format!("{verb} {}", names.join(", ")));
    }
    Ok(())
}

fn run_apt(
    host: &mut dyn Host,
    argv: &[String],
    log: &mut (String, String),
) -> Result<(), ModuleError> {
    let out = host.run(&format!("{}{}", env_prefix(), join(argv)), None)?;
    log.0.push_str(&out.stdout_str());
    log.1.push_str(&out.stderr_str());
    if out.success() {
        return Ok(());
    }
    let mut result = Map::new();
    result.insert("rc".into(), json!(out.rc));
    result.insert("stdout".into(), json!(log.0));
    result.insert("stderr".into(), json!(log.1));
    Err(ModuleError::Failed {
        msg: format!("'{}' failed: {}", join(argv), out.stderr_str().trim_end()),
        result,
    })
}

/// `stdout`, `stderr` and their `_lines`, as Ansible registers them.
fn output_result(result: &mut Map<String, Value>, log: &(String, String)) {
    result.insert("stdout".into(), json!(log.0));
    result.insert("stderr".into(), json!(log.1));
    result.insert(
        "stdout_lines".into(),
        json!(log.0.lines().collect::<Vec<_>>()),
    );
    result.insert(
        "stderr_lines".into(),
        json!(log.1.lines().collect::<Vec<_>>()),
    );
}

fn done(changed: bool, result: Map<String, Value>) -> Result<Outcome, ModuleError> {
    Ok(Outcome::changed_if(changed, result))
}

/// Refresh the lists with Ansible's retries; whether their time moved, and
/// the time after.
fn update_lists(
    p: &AptParams,
    host: &mut dyn Host,
    log: &mut (String, String),
) -> Result<(bool, u64), ModuleError> {
    let before = lists_mtime(host)?;
    let tries = p.update_cache_retries.unwrap_or(5).max(1);
    let max_delay = p.update_cache_retry_max_delay.unwrap_or(12);
    let mut last = Ok(());
    for i in 0..tries {
        last = run_apt(host, &["apt-get".into(), "update".into(), "-q".into()], log);
        if last.is_ok() {
            break;
        }
        if i + 1 < tries {
            let delay = (1u64 << i.min(6)).min(max_delay);
            crate::cancel::sleep(std::time::Duration::from_secs(delay))
                .map_err(super::super::cancel::Cancel::into_error)?;
        }
    }
    last?;
    // As Ansible: the lists were updated when their time moved (apt
    // leaves them alone when the repositories have nothing new).
    let after = lists_mtime(host)?;
    Ok((after != before, after.parse().unwrap_or(0)))
}

fn apply_apt(p: &AptParams, plan: Plan, host: &mut dyn Host) -> Result<Outcome, ModuleError> {
    let names = wanted(p.name.as_ref())?;
    let steps: Steps = plan.state_as()?;
    let mut log = (String::new(), String::new());
    let mut result = Map::new();
    if steps.clean {
        run_apt(host, &["apt-get".into(), "clean".into()], &mut log)?;
        if steps.clean_only {
            result.insert("msg".into(), json!(log.0));
            output_result(&mut result, &log);
            return done(true, result);
        }
    }
    let (mut cache_updated, mut cache_time) = (false, steps.cache_time);
    if steps.update {
        (cache_updated, cache_time) = update_lists(p, host, &mut log)?;
    }
    if steps.lists_only {
        result.insert("cache_updated".into(), json!(cache_updated));
        result.insert("cache_update_time".into(), json!(cache_time));
        return done(cache_updated, result);
    }
    if let Some(mode) = steps.upgrade {
        log = Default::default();
        run_apt(
            host,
            &upgrade_argv(p, mode, steps.aptitude, false),
            &mut log,
        )?;
        let changed = upgrade_changed(&log.0);
        result.insert("msg".into(), json!(log.0));
        output_result(&mut result, &log);
        return done(changed, result);
    }
    if let Some(op) = &steps.cleanup {
        log = Default::default();
        run_apt(host, &cleanup_argv(p, op, false), &mut log)?;
        output_result(&mut result, &log);
        return done(cleanup_changed(op, &log.0), result);
    }
    let mut acts = steps.actions;
    if steps.update {
        // The new lists may change what `latest` means; look again.
        let facts = probe(host, p, &names)?;
        acts = decide(p, &names, &facts)?;
    }
    // Ansible reports the output of the package step only.
    log = Default::default();
    let mut changed = false;
    if !acts.install.is_empty() {
        run_apt(host, &install_argv(p, &acts.install, false), &mut log)?;
        changed = true;
    }
    if acts.deb {
        install_deb(p, host, &mut log)?;
        changed = true;
    }
    if !acts.remove.is_empty() {
        run_apt(host, &remove_argv(p, &acts.remove), &mut log)?;
        changed = true;
    }
    if changed {
        output_result(&mut result, &log);
    }
    if p.deb.is_none() && p.state != PkgState::Absent {
        result.insert("cache_updated".into(), json!(cache_updated));
        result.insert("cache_update_time".into(), json!(cache_time));
    }
    done(changed, result)
}

fn install_deb(
    p: &AptParams,
    host: &mut dyn Host,
    log: &mut (String, String),
) -> Result<(), ModuleError> {
    let Some(deb) = &p.deb else {
        return Ok(());
    };
    let path = if is_url(deb) {
        None
    } else if deb.starts_with('/') {
        Some(deb.clone())
    } else {
        Some(format!("./{deb}"))
    };
    let mut argv = install_argv(p, &[], false);
    argv.pop();
    match path {
        Some(path) => {
            argv.push(path);
            run_apt(host, &argv, log)
        }
        None => {
            let script = format!(
                "set -e\nd=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; trap 'exit 143' HUP INT TERM; d=\"$d/package.deb\"\n{}{}{} \"$d\"\n",
                fetch_snippet(deb),
                env_prefix(),
                join(&argv)
            );
            let out = host.run(&script, None)?;
            log.0.push_str(&out.stdout_str());
            log.1.push_str(&out.stderr_str());
            if !out.success() {
                return Err(ModuleError::failed(format!(
                    "installing {deb} failed: {}",
                    out.stderr_str().trim_end()
                )));
            }
            Ok(())
        }
    }
}

impl Module for Apt {
    const NAME: &'static str = "apt";
    const DOC_SHORT: &'static str =
        "Install, upgrade and remove Debian packages, and refresh the package lists.";
    const DOC_LONG: &'static str = r##"One probe finds what is installed and what would come with it, so check mode names every package that would be installed. Apply runs one `apt-get` per action."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Web server
  apt:
    name: [nginx, curl]
    update_cache: true
    cache_valid_time: 3600
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("cache_updated", "Whether the lists were refreshed."),
        (
            "cache_update_time",
            "The lists' time (seconds since the epoch), as apt's success stamp or the lists directory says.",
        ),
        ("stdout", "apt-get's output."),
        ("stderr", "apt-get's error output."),
    ];
    type Params = AptParams;
    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        plan_apt(p, host)
    }
    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        apply_apt(p, plan, host)
    }
}

impl From<&PackageParams> for AptParams {
    fn from(p: &PackageParams) -> Self {
        AptParams {
            name: Some(p.name.clone()),
            state: p.state,
            ..p.apt.clone()
        }
    }
}

fn check_use(p: &PackageParams) -> Result<(), ModuleError> {
    let other = p.other.given();
    if !other.is_empty() {
        return Err(ModuleError::Params(ParamError::Invalid {
            module: Package::NAME,
            path: other.join(", "),
            reason: "unsupported parameters for this host's package manager (apt); they belong to dnf/yum".into(),
        }));
    }
    match p.use_.as_deref() {
        None | Some("auto" | "apt") => Ok(()),
        Some(u) => Err(ModuleError::Params(ParamError::Invalid {
            module: Package::NAME,
            path: "use".into(),
            reason: format!("only apt is supported, not {u}"),
        })),
    }
}

impl Module for Package {
    const NAME: &'static str = "package";
    const DOC_SHORT: &'static str =
        "Install or remove packages with the host's package manager (apt).";
    const DOC_LONG: &'static str = r##"Maps to `apt`; only Debian-family hosts are supported."##;
    const DOC_EXAMPLE: &'static str = r##"- package:
    name: tree
    state: present
"##;
    type Params = PackageParams;
    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        check_use(p)?;
        plan_apt(&AptParams::from(p), host)
    }
    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        apply_apt(&AptParams::from(p), plan, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_managers_parameters_load_and_fail_only_when_set_at_run_time() {
        let parse = |v: Value| crate::module::parse_params::<PackageParams>("package", &v);
        // Left out (`default(omit)` rendered away): the task runs.
        let p = parse(json!({"name": "git", "state": "present"})).expect("loads");
        assert!(check_use(&p).is_ok());
        // Still set when the task runs: refused, naming the parameter.
        let p =
            parse(json!({"name": "git", "state": "present", "enablerepo": "epel"})).expect("loads");
        let e = check_use(&p).expect_err("refused").to_string();
        assert!(e.contains("enablerepo") && e.contains("apt"), "{e}");
        // A name no package manager takes is still an error at load.
        assert!(parse(json!({"name": "git", "state": "present", "enablerepoo": "x"})).is_err());
    }

    #[test]
    fn names_in_every_spelling() {
        let w = wanted(Some(&json!("a, b=1.2-3"))).expect("names");
        assert_eq!(w[0].spec(), "a");
        assert_eq!(w[1].version.as_deref(), Some("1.2-3"));
        assert_eq!(
            wanted(Some(&json!(["x", "y,z"]))).map(|v| v.len()).ok(),
            Some(3)
        );
        assert!(wanted(Some(&json!("nginx*"))).is_err());
    }

    #[test]
    fn parses_dpkg_policy_and_simulation() {
        let d = parse_dpkg(
            "PKG hello install ok installed 2.10-3\nPKG cron deinstall ok config-files 3.0pl1-162\nPKG tree unknown ok not-installed \n",
        );
        assert!(d["hello"].is_installed());
        assert_eq!(d["hello"].version, "2.10-3");
        assert_eq!(d["cron"].status, "config-files");
        assert!(!d["tree"].is_installed());
        let p = parse_policy(
            "hello:\n  Installed: 2.10-3\n  Candidate: 2.10-3\n  Version table:\n *** 2.10-3 500\ntree:\n  Installed: (none)\n  Candidate: (none)\n",
        );
        assert_eq!(p["hello"].as_deref(), Some("2.10-3"));
        assert_eq!(p["tree"], None);
        let (i, r) = parse_simulation(
            "NOTE: x\nInst cron-daemon-common (3.0pl1-162 local [all])\nInst cron (3.0pl1-162 local [amd64])\nConf cron\nRemv tree [2.1.0-1]\n",
        );
        assert_eq!(i, ["cron-daemon-common", "cron"]);
        assert_eq!(r, ["tree"]);
    }

    #[test]
    fn decides_like_ansible() {
        let facts = Facts {
            dpkg: parse_dpkg(
                "PKG hello install ok installed 2.10-3\nPKG cron deinstall ok config-files 1\n",
            ),
            candidates: parse_policy("hello:\n  Candidate: 2.10-4\n"),
            cache_age: Some(10.0),
            cache_time: 990,
            deb: None,
            autoremove: vec![],
            aptitude: false,
        };
        let p = |v: Value| crate::module::parse_params::<AptParams>("apt", &v).expect("params");
        let names = |p: &AptParams| wanted(p.name.as_ref()).expect("names");
        let q = p(json!({"name": ["hello", "tree"]}));
        assert_eq!(
            decide(&q, &names(&q), &facts).map(|a| a.install).ok(),
            Some(vec!["tree".into()])
        );
        let q = p(json!({"name": "hello", "state": "latest"}));
        assert_eq!(
            decide(&q, &names(&q), &facts).map(|a| a.install).ok(),
            Some(vec!["hello".into()])
        );
        let q = p(json!({"name": "hello,cron", "state": "absent"}));
        assert_eq!(
            decide(&q, &names(&q), &facts).map(|a| a.remove).ok(),
            Some(vec!["hello".into()])
        );
        let q = p(json!({"name": "hello,cron", "state": "absent", "purge": true}));
        assert_eq!(
            decide(&q, &names(&q), &facts).map(|a| a.remove.len()).ok(),
            Some(2)
        );
        let q = p(json!({"name": "hello=2.10-3"}));
        assert!(decide(&q, &names(&q), &facts)
            .map(|a| a.install.is_empty())
            .unwrap_or(false));
        let q = p(json!({"update_cache": true, "cache_valid_time": 3600}));
        assert!(cache_valid(&q, &facts));
    }

    /// `package` takes apt's parameters (in any spelling apt takes) and
    /// hands them on; a parameter neither module knows is still an error.
    #[test]
    fn update_cache_alone_changes_only_when_the_lists_time_moves() {
        use crate::testing::{ok, FakeHost};
        use crate::DynModule;
        struct Lists {
            mtime: u64,
            update_moves_it: bool,
        }
        let run = |update_moves_it: bool| {
            let mut h = FakeHost::with_state(Lists {
                mtime: 100,
                update_moves_it,
            })
            .handle(crate::testing::Match::Any, |h, script, _| {
                if script.starts_with("for f in /var/lib/apt/periodic") {
                    return ok(format!("{}\n", h.mtime));
                }
                if script.contains("apt-get update") && h.update_moves_it {
                    h.mtime += 1;
                }
                if script.starts_with("echo NOW") {
                    return ok("NOW 1000\n");
                }
                ok("")
            });
            let params = json!({"update_cache": true});
            let plan = DynModule::plan(&Apt, &params, &mut h).expect("plan");
            assert_eq!(plan.changes, ["update the package lists"]);
            let out = DynModule::apply(&Apt, &params, plan, &mut h).expect("apply");
            (out.changed, out.result["cache_updated"].clone())
        };
        assert_eq!(run(true), (true, json!(true)));
        assert_eq!(run(false), (false, json!(false)));
    }

    #[test]
    fn package_passes_apt_parameters_through() {
        use crate::module::parse_params;
        let p: PackageParams = parse_params(
            "package",
            &json!({"name": "tree", "state": "present", "update_cache": "yes",
                "cache_valid_time": 3600, "install-recommends": false, "use": "apt"}),
        )
        .expect("params");
        let a = AptParams::from(&p);
        assert!(a.update_cache);
        assert_eq!(a.cache_valid_time, Some(3600.0));
        assert_eq!(a.install_recommends, Some(false));
        assert_eq!(a.name, Some(json!("tree")));
        assert_eq!(a.state, PkgState::Present);
        let err = parse_params::<PackageParams>(
            "package",
            &json!({"name": "tree", "state": "present", "update_cach": true}),
        )
        .expect_err("unknown");
        assert!(err.to_string().contains("update_cach"), "{err}");
        assert!(parse_params::<PackageParams>("package", &json!({"name": "tree"})).is_err());
    }

    /// A host with a model of dpkg: packages and their status, one upgrade
    /// pending, orphans `autoremove` would take.
    #[derive(Default)]
    struct Dpkg {
        pkgs: std::collections::BTreeMap<String, &'static str>,
        upgradable: bool,
        orphans: Vec<String>,
    }

    fn dpkg_host(d: Dpkg) -> crate::testing::FakeHost<Dpkg> {
        use crate::testing::{ok, FakeHost, Match};
        FakeHost::with_state(d)
            .handle(Match::prefix("echo NOW"), |h, script, _| {
                let mut out = String::from("NOW 1000\nCTIME 990\nDPKG\n");
                for (name, status) in &h.pkgs {
                    out.push_str(&format!("PKG {name} install ok {status} 1.0\n"));
                }
                if script.contains("autoremove") {
                    for o in &h.orphans {
                        out.push_str(&format!("AUTORM {o}\n"));
                    }
                }
                ok(out)
            })
            .handle(Match::contains("upgrade"), |h, script, _| {
                let out = if h.upgradable {
                    "Inst hello [1.0] (1.1 local [amd64])\n1 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
                } else {
                    "Reading package lists...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
                };
                if !script.contains("--simulate") {
                    h.upgradable = false;
                }
                ok(out)
            })
            .handle(Match::contains(" autoremove"), |h, script, _| {
                let gone = std::mem::take(&mut h.orphans);
                let out = if gone.is_empty() {
                    String::new()
                } else {
                    format!("The following packages will be REMOVED:\n  {}\n", gone.join(" "))
                };
                if script.contains("--simulate") {
                    h.orphans = gone;
                } else {
                    for g in gone {
                        h.pkgs.remove(&g);
                    }
                }
                ok(out)
            })
            .handle(Match::contains(" remove -- "), |h, script, _| {
                let w = crate::shell_quote::split(script).unwrap_or_default();
                let simulate = w.iter().any(|a| a == "-s");
                let purge = w.iter().any(|a| a == "--purge");
                let names: Vec<String> =
                    w.iter().skip_while(|a| *a != "--").skip(1).cloned().collect();
                let mut out = String::new();
                for n in names {
                    out.push_str(&format!("Remv {n} [1.0]\n"));
                    if !simulate {
                        if purge {
                            h.pkgs.remove(&n);
                        } else {
                            h.pkgs.insert(n, "config-files");
                        }
                    }
                }
                ok(out)
            })
            .handle(Match::contains(" install -- "), |h, script, _| {
                let w = crate::shell_quote::split(script).unwrap_or_default();
                let simulate = w.iter().any(|a| a == "-s");
                let names: Vec<String> =
                    w.iter().skip_while(|a| *a != "--").skip(1).cloned().collect();
                let mut out = String::new();
                for n in names {
                    out.push_str(&format!("Inst {n} (1.0 local [amd64])\n"));
                    if !simulate {
                        h.pkgs.insert(n, "installed");
                    }
                }
                ok(out)
            })
    }

    fn converge(h: &mut crate::testing::FakeHost<Dpkg>, params: Value) -> (Plan, Outcome) {
        use crate::DynModule;
        let plan = DynModule::plan(&Apt, &params, h).expect("plan");
        let out = DynModule::apply(&Apt, &params, plan.clone(), h).expect("apply");
        assert!(
            DynModule::plan(&Apt, &params, h).expect("plan").is_empty(),
            "plan after apply"
        );
        (plan, out)
    }

    #[test]
    fn upgrade_changes_until_apt_has_nothing_left() {
        use crate::DynModule;
        let mut h = dpkg_host(Dpkg {
            upgradable: true,
            ..Dpkg::default()
        });
        // Check mode: the simulation names what would come, the host is as it was.
        let params = json!({"upgrade": "dist"});
        let plan = DynModule::plan(&Apt, &params, &mut h).expect("plan");
        assert_eq!(plan.changes, ["upgrade (apt-get): install hello"]);
        assert!(h.upgradable);
        let (_, out) = converge(&mut h, params);
        assert!(out.changed);
        assert!(out.result["stdout"]
            .as_str()
            .is_some_and(|s| s.contains("1 upgraded")));
        assert!(out.result.contains_key("msg"));
        let ran = h
            .scripts
            .iter()
            .find(|s| s.contains("dist-upgrade") && !s.contains("--simulate"));
        assert!(ran.is_some(), "{:?}", h.scripts);
        // `yes` is apt-get's upgrade with new packages, as Ansible runs it
        // without aptitude; `no` asks for nothing else.
        let p = |v: Value| crate::module::parse_params::<AptParams>("apt", &v).expect("params");
        let argv = upgrade_argv(
            &p(json!({"upgrade": true, "autoremove": true})),
            UpgradeMode::Safe,
            false,
            false,
        );
        assert!(
            join(&argv).ends_with("upgrade --with-new-pkgs --auto-remove"),
            "{argv:?}"
        );
        let argv = upgrade_argv(
            &p(json!({"upgrade": "full"})),
            UpgradeMode::Full,
            true,
            true,
        );
        assert!(
            join(&argv).ends_with("--simulate full-upgrade") && argv[0] == "aptitude",
            "{argv:?}"
        );
        assert!(upgrade_mode(Some(&json!("no"))).ok() == Some(None));
        assert!(upgrade_mode(Some(&json!("sideways"))).is_err());
        let e = DynModule::plan(&Apt, &json!({"upgrade": "yes", "name": "x"}), &mut h)
            .expect_err("exclusive");
        assert!(e.to_string().contains("mutually exclusive"), "{e}");
    }

    #[test]
    fn autoremove_and_purge_converge() {
        use crate::DynModule;
        let mut pkgs = std::collections::BTreeMap::new();
        pkgs.insert("hello".to_string(), "installed");
        pkgs.insert("tree".to_string(), "installed");
        pkgs.insert("libold".to_string(), "installed");
        let mut h = dpkg_host(Dpkg {
            pkgs,
            orphans: vec!["libold".into()],
            ..Dpkg::default()
        });
        let params = json!({"autoremove": true});
        let plan = DynModule::plan(&Apt, &params, &mut h).expect("plan");
        assert_eq!(plan.changes, ["autoremove libold"]);
        assert!(h.pkgs.contains_key("libold"), "check mode leaves it");
        let (_, out) = converge(&mut h, params);
        assert!(out.changed && !h.pkgs.contains_key("libold"));
        assert!(out.result.contains_key("stdout") && !out.result.contains_key("cache_updated"));
        // Purge takes the configuration too; a removed package's
        // leftover configuration is purged on a later purge.
        let (_, out) = converge(&mut h, json!({"name": "hello", "state": "absent"}));
        assert!(out.changed);
        assert_eq!(h.pkgs.get("hello"), Some(&"config-files"));
        let (plan, _) = converge(
            &mut h,
            json!({"name": ["hello", "tree"], "state": "absent", "purge": true}),
        );
        assert_eq!(plan.changes, ["purge hello, tree"]);
        assert!(h.pkgs.is_empty());
        // Installing reports the lists' time, as Ansible does, and without
        // recommends when asked.
        let (_, out) = converge(&mut h, json!({"name": "tree", "install_recommends": false}));
        assert_eq!(out.result["cache_update_time"], json!(990));
        assert_eq!(out.result["cache_updated"], json!(false));
        assert!(h
            .scripts
            .iter()
            .any(|s| s.contains("--no-install-recommends install -- tree")));
        // Nothing to install: no output keys, the lists' keys still there.
        let plan = DynModule::plan(&Apt, &json!({"name": "tree"}), &mut h).expect("plan");
        assert!(plan.is_empty());
        assert_eq!(plan.result["cache_update_time"], json!(990));
        assert!(!plan.result.contains_key("stdout"));
    }
}
