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
//! Differences from Ansible: `update_cache` (without a fresh enough
//! `cache_valid_time`) counts as a planned change, but the task reports
//! changed (check mode included) only when packages changed or, when
//! nothing else was asked for, when the lists' time moved (as Ansible does); `upgrade`, `build-dep` and `fixed` are
//! not supported; version wildcards (`pkg=1.*`) and `pkg>=1` are not
//! understood; `deb` takes a path on the host or an http(s) or ftp URL
//! fetched with curl or wget on the host.

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
    /// Not supported (an error when set to anything but `no`).
    pub upgrade: Option<Value>,
    /// Seconds to wait for the dpkg lock (default 60).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub lock_timeout: Option<u64>,
    /// Accepted and ignored.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub policy_rc_d: Option<bool>,
    /// Accepted and ignored.
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
    deb: Option<Wanted>,
    autoremove: Vec<String>,
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
    if p.autoremove {
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

fn plan_apt(p: &AptParams, host: &mut dyn Host) -> Result<Plan, ModuleError> {
    if let Some(u) = p.upgrade.as_ref().filter(|u| {
        !matches!(u, Value::Bool(false) | Value::Null)
            && !matches!(u.as_str(), Some("no" | "false"))
    }) {
        return Err(invalid("upgrade", format!("upgrade={u} is not supported")));
    }
    let names = wanted(p.name.as_ref())?;
    if names.is_empty() && p.deb.is_none() && !p.update_cache && !p.autoremove {
        return Err(ModuleError::failed(
            "one of the following is required: name, package, deb, update_cache, autoremove",
        ));
    }
    let facts = probe(host, p, &names)?;
    let acts = decide(p, &names, &facts)?;
    let mut plan = Plan::default();
    let update = p.update_cache && !cache_valid(p, &facts);
    if update {
        plan.changes.push("update the package lists".into());
    }
    if !acts.install.is_empty() {
        // Name everything that would come along, for check mode.
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
        // Name everything that would go with them (reverse dependencies).
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
    if p.autoremove && !facts.autoremove.is_empty() {
        plan.changes
            .push(format!("autoremove {}", facts.autoremove.join(", ")));
    }
    let mut result = Map::new();
    result.insert("cache_updated".into(), json!(false));
    plan.result = result;
    plan.state =
        json!({"update": update, "actions": acts, "autoremove": !facts.autoremove.is_empty()});
    // With packages asked for, Ansible counts only what happens to them:
    // the lists' update alone is no change in check mode either.
    plan.not_a_change = update && plan.changes.len() == 1 && (!names.is_empty() || p.deb.is_some());
    Ok(plan)
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

fn apply_apt(p: &AptParams, plan: Plan, host: &mut dyn Host) -> Result<Outcome, ModuleError> {
    let names = wanted(p.name.as_ref())?;
    let st = &plan.state;
    let update = st.get("update").and_then(Value::as_bool).unwrap_or(false);
    let mut acts: Actions = st
        .get("actions")
        .cloned()
        .and_then(|a| serde_json::from_value(a).ok())
        .ok_or_else(|| ModuleError::failed("apt: apply called without a plan"))?;
    let mut log = (String::new(), String::new());
    let mut result = Map::new();
    let mut autoremove = st
        .get("autoremove")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut cache_updated = false;
    if update {
        let before = lists_mtime(host)?;
        let tries = p.update_cache_retries.unwrap_or(5).max(1);
        let max_delay = p.update_cache_retry_max_delay.unwrap_or(12);
        let mut last = Ok(());
        for i in 0..tries {
            last = run_apt(
                host,
                &["apt-get".into(), "update".into(), "-q".into()],
                &mut log,
            );
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
        cache_updated = lists_mtime(host)? != before;
        result.insert("cache_updated".into(), json!(cache_updated));
        // The new lists may change what `latest` means; look again.
        let facts = probe(host, p, &names)?;
        acts = decide(p, &names, &facts)?;
        autoremove = !facts.autoremove.is_empty();
    }
    let mut changed = false;
    if !acts.install.is_empty() {
        run_apt(host, &install_argv(p, &acts.install, false), &mut log)?;
        changed = true;
    }
    if acts.deb {
        if let Some(deb) = &p.deb {
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
                    run_apt(host, &argv, &mut log)?;
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
                }
            }
            changed = true;
        }
    }
    if !acts.remove.is_empty() {
        run_apt(host, &remove_argv(p, &acts.remove), &mut log)?;
        changed = true;
    }
    if p.autoremove && autoremove {
        let mut argv = vec!["apt-get".to_string()];
        argv.extend(common_opts(p));
        if p.purge {
            argv.push("--purge".into());
        }
        argv.push("autoremove".into());
        run_apt(host, &argv, &mut log)?;
        changed = true;
    }
    if p.autoclean || p.clean {
        let verb = if p.clean { "clean" } else { "autoclean" };
        run_apt(host, &["apt-get".into(), verb.into()], &mut log)?;
    }
    // Ansible: refreshing the lists alone is a change only when nothing
    // else was asked for, and only when they did change.
    if cache_updated && names.is_empty() && p.deb.is_none() && !p.autoremove {
        changed = true;
    }
    result.insert(
        "stdout_lines".into(),
        json!(log.0.lines().collect::<Vec<_>>()),
    );
    result.insert(
        "stderr_lines".into(),
        json!(log.1.lines().collect::<Vec<_>>()),
    );
    result.insert("stdout".into(), json!(log.0));
    result.insert("stderr".into(), json!(log.1));
    Ok(Outcome {
        changed,
        result,
        msg: None,
        failed: false,
    })
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
        ("stdout", "apt-get's output."),
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
            deb: None,
            autoremove: vec![],
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
}
