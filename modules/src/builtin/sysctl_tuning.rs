//! `sysctl_tuning`: a kernel profile for a kind of host (Docker,
//! Elasticsearch, busy network servers) as one sysctl.d file, applied live.
//!
//! The task owns up to three files, all named after `priority` and `name`:
//! `/etc/sysctl.d/<priority>-<name>.conf` (every key, one line each),
//! `/etc/security/limits.d/<priority>-<name>.conf` (with `limits`) and
//! `/etc/modules-load.d/<name>.conf` (with the `docker` profile, which needs
//! `br_netfilter` for its `net.bridge.*` keys). Each file is rewritten whole,
//! so there is never a duplicate line; a file the task no longer needs (no
//! `limits`, no `docker`) is removed.
//!
//! The plan reads the three files and every key's live value from
//! `/proc/sys` in one script (one round trip) and never changes anything.
//!
//! `only_raise` (on by default for "limit" keys such as `fs.file-max`,
//! `vm.max_map_count`, `net.core.somaxconn`; the parameter overrides it for
//! every key) never lowers a live value that is already higher than the
//! profile's: the live value is kept and the file gets that higher value,
//! so a reboot does not drop the host below what it runs with now.
//!
//! Apply loads `br_netfilter` when needed, sets every live value that
//! differs with `sysctl -w KEY=VALUE` (one key at a time, never `sysctl -p`)
//! and reads each back from `/proc/sys`, all in one script. Any key the
//! kernel did not take (unknown key, read-only in this namespace, value out
//! of range) fails the task naming every such key and why; the live values
//! already changed are set back and no file is touched, so the previous
//! files stay as they were. The files are written only after every key took.
//!
//! `state: absent` removes the files; the live values stay as they are
//! (the kernel's defaults are not known; a reboot brings them back).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use crate::builtin::sysctl::{explain_write_error, is_read_only_error, parse_value, same_value};
use crate::host::FileAttrs;
use crate::params::{de_opt_bool, de_opt_u64};
use crate::probe::{tagged, tagged_file, tagged_line, ProbeError};
use crate::shell_quote::quote;
use crate::textfile;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// A named set of kernel parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Bridge netfilter keys and IP forwarding, for Docker hosts.
    Docker,
    /// `vm.max_map_count` and swappiness, for Elasticsearch.
    Elasticsearch,
    /// Backlogs, FIN timeout, keepalive and TIME-WAIT reuse, for busy servers.
    Network,
}

impl Profile {
    const ALL: [Profile; 3] = [Profile::Docker, Profile::Elasticsearch, Profile::Network];

    fn name(self) -> &'static str {
        match self {
            Profile::Docker => "docker",
            Profile::Elasticsearch => "elasticsearch",
            Profile::Network => "network",
        }
    }

    fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // Containers on a bridge need their traffic to pass iptables
            // (published ports, inter-container rules) and forwarding on.
            Profile::Docker => &[
                ("net.bridge.bridge-nf-call-iptables", "1"),
                ("net.bridge.bridge-nf-call-ip6tables", "1"),
                ("net.ipv4.ip_forward", "1"),
            ],
            // Elasticsearch refuses to start in production mode below
            // 262144 map areas, and wants the heap never swapped out.
            Profile::Elasticsearch => &[("vm.max_map_count", "262144"), ("vm.swappiness", "1")],
            Profile::Network => &[
                ("net.core.somaxconn", "32768"),
                ("net.ipv4.tcp_max_syn_backlog", "16384"),
                ("net.core.netdev_max_backlog", "16384"),
                ("net.ipv4.tcp_fin_timeout", "15"),
                ("net.ipv4.tcp_keepalive_time", "600"),
                ("net.ipv4.tcp_tw_reuse", "1"),
            ],
        }
    }
}

/// Keys that are capacities rather than tunings: raising them is always
/// safe, lowering one another tool raised would break that tool's workload.
const LIMIT_KEYS: &[&str] = &[
    "fs.file-max",
    "fs.nr_open",
    "fs.aio-max-nr",
    "fs.inotify.max_user_instances",
    "fs.inotify.max_user_watches",
    "fs.inotify.max_queued_events",
    "kernel.pid_max",
    "kernel.threads-max",
    "vm.max_map_count",
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.optmem_max",
    "net.ipv4.tcp_max_syn_backlog",
    "net.netfilter.nf_conntrack_max",
];

/// The pam_limits items `limits` accepts.
const LIMIT_ITEMS: &[&str] = &[
    "core",
    "data",
    "fsize",
    "memlock",
    "nofile",
    "rss",
    "stack",
    "cpu",
    "nproc",
    "as",
    "maxlogins",
    "maxsyslogins",
    "priority",
    "locks",
    "sigpending",
    "msgqueue",
    "nice",
    "rtprio",
];

/// `limits: true` means these.
const DEFAULT_LIMITS: &[(&str, &str)] = &[("nofile", "65536"), ("nproc", "32768")];

const HEADER: &str = "# Managed by herd (sysctl_tuning). Local changes are overwritten.\n";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum TuningState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `sysctl_tuning`: what `herd doc` shows, and what the parser takes.
pub struct SysctlTuningParams {
    /// Names the files: `<priority>-<name>.conf`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The files' number prefix, 0 to 999 (default 60).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub priority: Option<u64>,
    /// Profiles to apply: `docker` (bridge netfilter keys with `br_netfilter` loaded,
    /// `net.ipv4.ip_forward`), `elasticsearch` (`vm.max_map_count`, `vm.swappiness`), `network`
    /// (backlogs, FIN timeout, keepalive, `tcp_tw_reuse`). A name or a list.
    #[serde(default, deserialize_with = "de_profiles")]
    pub profiles: Vec<Profile>,
    /// Free keys; they override the profiles' values, and `null` drops a
    /// profile's key (one the host does not have, say).
    #[serde(default, deserialize_with = "de_params")]
    pub params: BTreeMap<String, Option<String>>,
    /// pam_limits items for every user, written as both soft and hard limits to
    /// `/etc/security/limits.d/<priority>-<name>.conf`; `true` means `{nofile: 65536, nproc:
    /// 32768}`.
    #[serde(default, deserialize_with = "de_limits")]
    #[schemars(with = "crate::doc::shapes::BoolOrMapping")]
    pub limits: BTreeMap<String, String>,
    /// Never lower a live value that is already higher (it is kept and written to the file).
    /// Unset: on for the limit keys (`fs.file-max`, `vm.max_map_count`, `net.core.somaxconn`,
    /// ...), off for the rest; `true`/`false` sets it for every key.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub only_raise: Option<bool>,
    /// `present`: the files and live values are set; `absent`: the files are removed (live
    /// values are left as they are).
    #[serde(default)]
    pub state: TuningState,
}

fn default_name() -> String {
    "herd".into()
}

const DEFAULT_PRIORITY: u64 = 60;

/// A list of profile names, or one comma-separated string of them.
fn de_profiles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Profile>, D::Error> {
    let names: Vec<String> = match Value::deserialize(d)? {
        Value::Null => Vec::new(),
        Value::String(s) => s
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_string()),
                other => Err(serde::de::Error::custom(format!(
                    "expected a profile name, got {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(serde::de::Error::custom("expected a list of profile names")),
    };
    let mut out = Vec::new();
    for n in names {
        let p = Profile::ALL
            .into_iter()
            .find(|p| p.name() == n)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown profile `{n}`, expected one of docker, elasticsearch, network"
                ))
            })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// A mapping of sysctl keys to scalar values (numbers, strings, booleans),
/// or `null` to leave a key out.
fn de_params<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    let map = match Value::deserialize(d)? {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(m) => m,
        _ => {
            return Err(serde::de::Error::custom(
                "expected a mapping of sysctl keys to values",
            ))
        }
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Null => return Ok((k.trim().to_string(), None)),
                Value::String(s) => parse_value(&s),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "the value of `{k}` must be a number or a string"
                    )))
                }
            };
            if v.is_empty() || v.contains(['\n', '\r']) {
                return Err(serde::de::Error::custom(format!(
                    "the value of `{k}` must be one line and not empty"
                )));
            }
            Ok((k.trim().to_string(), Some(v)))
        })
        .collect()
}

/// `true` (the defaults), `false`, or a mapping of pam_limits items to
/// numbers or `unlimited`.
fn de_limits<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = match Value::deserialize(d)? {
        Value::Null | Value::Bool(false) => return Ok(BTreeMap::new()),
        Value::Bool(true) => {
            return Ok(DEFAULT_LIMITS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect())
        }
        Value::Object(m) => m,
        _ => {
            return Err(serde::de::Error::custom(
                "expected true or a mapping like {nofile: 65536, nproc: 32768}",
            ))
        }
    };
    map.into_iter()
        .map(|(k, v)| {
            if !LIMIT_ITEMS.contains(&k.as_str()) {
                return Err(serde::de::Error::custom(format!(
                    "unknown limit `{k}`, expected one of {}",
                    LIMIT_ITEMS.join(", ")
                )));
            }
            let v = match v {
                Value::Number(n) if n.is_i64() => n.to_string(),
                Value::String(s)
                    if s.trim().parse::<i64>().is_ok()
                        || matches!(s.trim(), "unlimited" | "infinity") =>
                {
                    s.trim().to_string()
                }
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "the value of limit `{k}` must be a number or `unlimited`"
                    )))
                }
            };
            Ok((k, v))
        })
        .collect()
}

/// The `sysctl_tuning` module.
pub struct SysctlTuning;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: SysctlTuning::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// A sysctl key in dotted form, safe to turn into a `/proc/sys` path.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(['.', '-'])
        && !k.ends_with('.')
        && !k.contains("..")
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Where the kernel shows a key. Dotted keys only (`valid_key`).
fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// The paths a task owns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Paths {
    sysctl: String,
    limits: String,
    modules: String,
}

fn paths(p: &SysctlTuningParams) -> Result<Paths, ModuleError> {
    let name = p.name.trim();
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(invalid(
            "name",
            "must be letters, digits, `.`, `_` or `-` (it names the files)",
        ));
    }
    let prio = p.priority.unwrap_or(DEFAULT_PRIORITY);
    if prio > 999 {
        return Err(invalid("priority", "must be between 0 and 999"));
    }
    Ok(Paths {
        sysctl: format!("/etc/sysctl.d/{prio}-{name}.conf"),
        limits: format!("/etc/security/limits.d/{prio}-{name}.conf"),
        modules: format!("/etc/modules-load.d/{name}.conf"),
    })
}

/// Every key and its wanted value: the profiles in order, then `params`.
fn wanted(p: &SysctlTuningParams) -> Result<BTreeMap<String, String>, ModuleError> {
    let mut out = BTreeMap::new();
    for prof in &p.profiles {
        for (k, v) in prof.keys() {
            out.insert(k.to_string(), v.to_string());
        }
    }
    for (k, v) in &p.params {
        if !valid_key(k) {
            return Err(invalid(
                &format!("params.{k}"),
                "not a sysctl key (dotted form like net.core.somaxconn)",
            ));
        }
        match v {
            Some(v) => out.insert(k.clone(), v.clone()),
            None => out.remove(k),
        };
    }
    Ok(out)
}

fn only_raise_for(param: Option<bool>, key: &str) -> bool {
    param.unwrap_or_else(|| LIMIT_KEYS.contains(&key))
}

/// The value a key gets: `want`, unless `only_raise` and the live value is
/// a higher single integer, which is then kept.
fn effective(want: &str, live: Option<&str>, only_raise: bool) -> String {
    if only_raise {
        if let (Ok(w), Some(Ok(l))) = (
            want.trim().parse::<i64>(),
            live.map(|l| l.trim().parse::<i64>()),
        ) {
            if l > w {
                return l.to_string();
            }
        }
    }
    want.to_string()
}

fn sysctl_text(values: &BTreeMap<String, String>) -> String {
    let mut s = String::from(HEADER);
    for (k, v) in values {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

fn limits_text(limits: &BTreeMap<String, String>) -> String {
    let mut s = String::from(HEADER);
    for (item, v) in limits {
        s.push_str(&format!("* soft {item} {v}\n* hard {item} {v}\n"));
    }
    s
}

fn modules_text() -> String {
    format!("{HEADER}br_netfilter\n")
}

/// One key as the probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LiveKey {
    /// `None` when the kernel has no such key.
    value: Option<String>,
    /// `/proc/sys` lets us write it (false in a container outside `net.*`).
    writable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Probed {
    sysctl: Option<String>,
    limits: Option<String>,
    modules: Option<String>,
    keys: Vec<LiveKey>,
    bridge: bool,
}

/// The probe's shell; the call with this run's paths follows it.
const PROBE: &str = include_str!("sysctl_tuning/probe.sh");

/// One script that prints the three files (base64, so any content survives
/// the line protocol) and each key's live value and writability.
fn probe_script(paths: &Paths, keys: &[&str]) -> String {
    let mut s = format!(
        "{PROBE}probe {} {} {}",
        quote(&paths.sysctl),
        quote(&paths.limits),
        quote(&paths.modules)
    );
    for k in keys {
        s.push(' ');
        s.push_str(&quote(&proc_path(k)));
    }
    s.push('\n');
    s
}

fn parse_probe(out: &str, n_keys: usize) -> Result<Probed, ProbeError> {
    let file = |tag: &str| tagged_file(out, tag);
    let mut keys = Vec::with_capacity(n_keys);
    for i in 0..n_keys {
        let tag = format!("K{i}");
        let line = tagged_line(out, &tag)?;
        keys.push(match line.split_once(' ') {
            Some((w @ ("w" | "r"), v)) => LiveKey {
                value: Some(v.trim().to_string()),
                writable: w == "w",
            },
            None if matches!(line, "w" | "r") => LiveKey {
                value: Some(String::new()),
                writable: line == "w",
            },
            _ if line.trim() == "-" => LiveKey {
                value: None,
                writable: false,
            },
            _ => {
                return Err(ProbeError::BadLine {
                    tag,
                    line: line.to_string(),
                })
            }
        });
    }
    Ok(Probed {
        sysctl: file("SF")?,
        limits: file("LF")?,
        modules: file("MF")?,
        keys,
        bridge: tagged(out, "BR").is_some(),
    })
}

/// A live value to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SetKey {
    key: String,
    value: String,
    before: Option<String>,
}

/// What a plan decided, for apply.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Planned {
    modprobe: bool,
    set: Vec<SetKey>,
    /// (path, new content); `None` removes the file.
    files: Vec<(String, Option<String>)>,
    /// key -> (before, after) as planned.
    keys: BTreeMap<String, (Option<String>, String)>,
}

/// Plan one owned file: `want` is its new content, `None` for "should not
/// exist". Pushes the change line, diff and the write.
fn plan_file(
    plan: &mut Plan,
    planned: &mut Planned,
    path: &str,
    have: Option<&str>,
    want: Option<String>,
) {
    match (have, want) {
        (None, None) => {}
        (Some(h), Some(w)) if h == w => {}
        (Some(h), None) => {
            plan.changes.push(format!("remove {path}"));
            if let Some(d) = textfile::diff(path, h.as_bytes(), b"") {
                plan.diffs.push(d);
            }
            planned.files.push((path.to_string(), None));
        }
        (h, Some(w)) => {
            plan.changes.push(format!(
                "{} {path}",
                if h.is_some() { "update" } else { "create" }
            ));
            if let Some(d) = textfile::diff(path, h.unwrap_or("").as_bytes(), w.as_bytes()) {
                plan.diffs.push(d);
            }
            planned.files.push((path.to_string(), Some(w)));
        }
    }
}

fn keys_result(keys: &BTreeMap<String, (Option<String>, String)>) -> Value {
    let m: Map<String, Value> = keys
        .iter()
        .map(|(k, (b, a))| (k.clone(), json!({"before": b, "after": a})))
        .collect();
    Value::Object(m)
}

/// Why the kernel did not take a key, from the apply script's lines.
fn why_not_taken(
    key: &str,
    want: &str,
    write: Option<&str>,
    read_back: Option<&str>,
    modprobe_err: Option<&str>,
) -> Option<String> {
    match write {
        None | Some("-") => Some(match (key.starts_with("net.bridge."), modprobe_err) {
            (true, Some(e)) => format!("unknown key: br_netfilter is not loaded ({})", e.trim()),
            (_, _) if key.starts_with("net.") => "unknown key: not in this host's network namespace \
                 (a container's namespace has no machine-wide keys such as net.core.netdev_max_backlog; \
                 drop it with `params: {KEY: null}`)"
                .to_string(),
            _ => "unknown key: the kernel has no such parameter here".to_string(),
        }),
        Some(line) => match line.strip_prefix("err") {
            Some(err) => {
                let err = err.trim();
                Some(if is_read_only_error(err) {
                    format!("read-only in this namespace ({err})")
                } else if err.to_ascii_lowercase().contains("invalid argument") {
                    format!("value {want} out of range ({err})")
                } else {
                    explain_write_error(err)
                })
            }
            None => match read_back {
                Some(have) if same_value(have, want) => None,
                Some(have) => Some(format!(
                    "value {want} out of range: the kernel kept {}",
                    have.trim()
                )),
                None => Some("the value could not be read back".to_string()),
            },
        },
    }
}

impl Module for SysctlTuning {
    const NAME: &'static str = "sysctl_tuning";
    const DOC_SHORT: &'static str = "Apply kernel tuning profiles (sysctl keys, limits) as one file per task, live and persistent.";
    const DOC_LONG: &'static str = r##"Ops modules: `sysctl_tuning` applies a kernel profile as one file,
`/etc/sysctl.d/<priority>-<name>.conf`, sets the live values and reads them
back. Profiles: `docker` (bridge netfilter keys, with `br_netfilter` loaded
and listed in `/etc/modules-load.d/<name>.conf`; `net.ipv4.ip_forward`),
`elasticsearch` (`vm.max_map_count=262144`, `vm.swappiness=1`) and `network`
(`somaxconn`, SYN and device backlogs, FIN timeout, keepalive, `tcp_tw_reuse`).

- One file per task, rewritten whole: no duplicate lines, a second run
  reports `changed=0`. `--check` prints `net.core.somaxconn 4096 -> 32768`
  per key, `--diff` the file diff. The plan reads the files and every live
  value in one round trip.
- A key the kernel does not take (unknown key, read-only in this namespace,
  value out of range) fails the task naming every such key and why; the
  live values it changed are set back and the files are not touched.
- `only_raise` (default on for limit keys such as `fs.file-max`,
  `fs.nr_open`, `vm.max_map_count`, `net.core.somaxconn`; `only_raise:
  true|false` sets it for every key) never lowers a live value that is
  already higher: that higher value is kept and written to the file, so a
  reboot does not lower it either.
- `limits` writes `* soft ITEM N` / `* hard ITEM N` lines to
  `/etc/security/limits.d/<priority>-<name>.conf`. `state: absent` removes
  the files and leaves the live values as they are.
- In a container only the container's own keys can be set (in the test
  fleet: `net.*`, and not the machine-wide `net.core.netdev_max_backlog`).
  `playbooks/sysctl-tuning.yml` with `inventories/sysctl-tuning.ini` is a
  runnable example against the test fleet."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Tune the search nodes
  sysctl_tuning:
    profiles: [elasticsearch, network]
    params:
      net.ipv4.tcp_fin_timeout: 20        # overrides the profile
      net.core.netdev_max_backlog: null   # leaves a profile key out
    limits: {nofile: 65536, nproc: 32768} # or `limits: true` for these two
    # name: herd, priority: 60, only_raise: (per key), state: present|absent
  register: tuning   # tuning['keys']: {key: {before, after}}
"##;
    type Params = SysctlTuningParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let paths = paths(p)?;
        let present = p.state == TuningState::Present;
        let want = if present { wanted(p)? } else { BTreeMap::new() };
        if present && want.is_empty() && p.limits.is_empty() {
            return Err(invalid(
                "profiles",
                "give at least one of `profiles`, `params` or `limits`",
            ));
        }
        let keys: Vec<&str> = want.keys().map(String::as_str).collect();
        let out = host.run(&probe_script(&paths, &keys), None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "reading the current tuning failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        let probed = parse_probe(&out.stdout_str(), keys.len())?;

        let mut plan = Plan::default();
        let mut planned = Planned::default();
        let mut file_values = BTreeMap::new();
        let mut warnings = Vec::new();
        let docker = p.profiles.contains(&Profile::Docker);
        if present && docker && !probed.bridge {
            plan.changes.push("modprobe br_netfilter".into());
            planned.modprobe = true;
        }
        for ((key, want), live) in want.iter().zip(&probed.keys) {
            let raise = only_raise_for(p.only_raise, key);
            let eff = effective(want, live.value.as_deref(), raise);
            let differs = live.value.as_deref().is_none_or(|l| !same_value(l, &eff));
            if differs {
                plan.changes.push(format!(
                    "{key} {} -> {eff}",
                    live.value.as_deref().unwrap_or("(absent)")
                ));
                if live.value.is_some() && !live.writable {
                    warnings.push(format!(
                        "{key} is read-only in this namespace: applying will fail"
                    ));
                }
                // The bridge keys appear once br_netfilter is loaded.
                if live.value.is_none() && !(docker && key.starts_with("net.bridge.")) {
                    warnings.push(format!(
                        "{key} does not exist on this host: applying will fail"
                    ));
                }
                planned.set.push(SetKey {
                    key: key.clone(),
                    value: eff.clone(),
                    before: live.value.clone(),
                });
            }
            planned
                .keys
                .insert(key.clone(), (live.value.clone(), eff.clone()));
            file_values.insert(key.clone(), eff);
        }
        plan_file(
            &mut plan,
            &mut planned,
            &paths.sysctl,
            probed.sysctl.as_deref(),
            present.then(|| sysctl_text(&file_values)),
        );
        plan_file(
            &mut plan,
            &mut planned,
            &paths.limits,
            probed.limits.as_deref(),
            (present && !p.limits.is_empty()).then(|| limits_text(&p.limits)),
        );
        plan_file(
            &mut plan,
            &mut planned,
            &paths.modules,
            probed.modules.as_deref(),
            (present && docker).then(modules_text),
        );

        plan.result
            .insert("sysctl_file".into(), json!(paths.sysctl));
        if present && !p.limits.is_empty() {
            plan.result
                .insert("limits_file".into(), json!(paths.limits));
        }
        plan.result
            .insert("keys".into(), keys_result(&planned.keys));
        if !warnings.is_empty() {
            plan.result.insert("warnings".into(), json!(warnings));
        }
        plan.keep_state(&planned)?;
        Ok(plan)
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let planned: Planned = plan.state_as()?;
        let mut result = plan.result.clone();
        let mut keys = planned.keys.clone();

        // The bridge keys exist only once br_netfilter is loaded; a failure
        // here is reported with those keys, which then cannot be set.
        let mut modprobe_err = None;
        if planned.modprobe {
            let out = host.run("modprobe br_netfilter", None)?;
            if !out.success() {
                let err = out.stderr_str().trim().to_string();
                modprobe_err = Some(if err.is_empty() {
                    format!("modprobe br_netfilter exited {}", out.rc)
                } else {
                    err
                });
            }
        }

        if !planned.set.is_empty() {
            let mut s = String::new();
            for (i, k) in planned.set.iter().enumerate() {
                let pp = quote(&proc_path(&k.key));
                let kv = quote(&format!("{}={}", k.key, k.value));
                s.push_str(&format!(
                    "if [ -e {pp} ]; then \
                     if e=$(sysctl -w {kv} 2>&1 >/dev/null); then echo 'W{i} ok'; \
                     else printf 'W{i} err %s\\n' \"$(printf '%s' \"$e\" | tr '\\n' ' ')\"; fi; \
                     printf 'R{i} %s\\n' \"$(tr '\\n\\t' '  ' < {pp})\"; \
                     else echo 'W{i} -'; fi\n"
                ));
            }
            let out = host.run(&s, None)?;
            let text = out.stdout_str();
            let mut failed = Vec::new();
            let mut restore = String::new();
            for (i, k) in planned.set.iter().enumerate() {
                let w = tagged(&text, &format!("W{i}"));
                let r = tagged(&text, &format!("R{i}")).map(str::trim);
                if let Some(r) = r {
                    keys.insert(k.key.clone(), (k.before.clone(), r.to_string()));
                }
                if let Some(why) = why_not_taken(&k.key, &k.value, w, r, modprobe_err.as_deref()) {
                    failed.push(format!("{} ({why})", k.key));
                }
                // A write that went through (even one the kernel clamped)
                // changed the live value: it is set back if the task fails.
                if let (Some("ok"), Some(before)) = (w, &k.before) {
                    restore.push_str(&format!(
                        "sysctl -w {} >/dev/null\n",
                        quote(&format!("{}={before}", k.key))
                    ));
                }
            }
            if !failed.is_empty() {
                // Put back what this task changed, so a failed run leaves
                // the host as it found it (the files were not touched yet).
                let mut restored = "no live value was changed".to_string();
                if !restore.is_empty() {
                    let out = host.run(&restore, None)?;
                    restored = if out.success() {
                        for k in &planned.set {
                            if let Some(before) = &k.before {
                                keys.insert(k.key.clone(), (k.before.clone(), before.clone()));
                            }
                        }
                        "the live values it changed were set back".to_string()
                    } else {
                        format!(
                            "setting the changed live values back failed: {}",
                            out.stderr_str().trim()
                        )
                    };
                }
                result.insert("keys".into(), keys_result(&keys));
                result.insert("failed_keys".into(), json!(failed));
                let file = result
                    .get("sysctl_file")
                    .and_then(Value::as_str)
                    .unwrap_or("the sysctl file")
                    .to_string();
                return Err(ModuleError::Failed {
                    msg: format!(
                        "the kernel did not take {} key(s): {}; {restored} and {file} was left as it was",
                        failed.len(),
                        failed.join(", ")
                    ),
                    result,
                });
            }
        }

        // Files last: only a profile the kernel took is persisted.
        let mut prep = String::new();
        for (path, content) in &planned.files {
            match content {
                None => prep.push_str(&format!("rm -f -- {}\n", quote(path))),
                Some(_) => {
                    prep.push_str(&format!("mkdir -p -- \"$(dirname -- {})\"\n", quote(path)));
                }
            }
        }
        if !prep.is_empty() {
            let out = host.run(&prep, None)?;
            if !out.success() {
                return Err(ModuleError::failed(format!(
                    "preparing the files failed (rc={}): {}",
                    out.rc,
                    out.stderr_str().trim()
                )));
            }
        }
        for (path, content) in &planned.files {
            if let Some(c) = content {
                host.write_file(path, c.as_bytes(), &FileAttrs::default())?;
            }
        }
        result.insert("keys".into(), keys_result(&keys));
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::parse_params;
    use crate::testing::{host, FakeHost, Match};
    use crate::DynModule;

    fn params(v: Value) -> SysctlTuningParams {
        parse_params::<SysctlTuningParams>(SysctlTuning::NAME, &v).expect("params")
    }

    #[test]
    fn profiles_expand_and_params_override() {
        let p = params(json!({"profiles": ["network", "elasticsearch"],
            "params": {"net.ipv4.tcp_fin_timeout": 20, "net.ipv4.tcp_tw_reuse": "no",
                       "kernel.pid_max": "4194304"}}));
        let w = wanted(&p).expect("wanted");
        assert_eq!(w.len(), 9);
        assert_eq!(w["net.ipv4.tcp_fin_timeout"], "20");
        assert_eq!(w["net.ipv4.tcp_tw_reuse"], "0");
        assert_eq!(w["net.core.somaxconn"], "32768");
        assert_eq!(w["vm.max_map_count"], "262144");
        assert_eq!(w["kernel.pid_max"], "4194304");
        let p = params(json!({"profiles": ["network"],
            "params": {"net.core.netdev_max_backlog": null, "net.nope": null}}));
        let w = wanted(&p).expect("wanted");
        assert_eq!(w.len(), 5);
        assert!(!w.contains_key("net.core.netdev_max_backlog"));
        let p = params(json!({"profiles": "docker, docker"}));
        assert_eq!(p.profiles, [Profile::Docker]);
        assert_eq!(wanted(&p).expect("wanted")["net.ipv4.ip_forward"], "1");
        assert!(wanted(&params(json!({"params": {"../x": 1}}))).is_err());
        let e = parse_params::<SysctlTuningParams>("t", &json!({"profiles": ["redis"]}))
            .expect_err("unknown profile");
        assert!(e.to_string().contains("unknown profile `redis`"), "{e}");
        assert_eq!(e.field(), Some("profiles"));
    }

    #[test]
    fn limits_paths_and_defaults() {
        let p = params(json!({"limits": true}));
        assert_eq!(p.limits["nofile"], "65536");
        assert_eq!(p.limits["nproc"], "32768");
        assert_eq!(
            limits_text(&p.limits),
            format!("{HEADER}* soft nofile 65536\n* hard nofile 65536\n* soft nproc 32768\n* hard nproc 32768\n")
        );
        let p = params(json!({"limits": {"memlock": "unlimited"}, "name": "es", "priority": 70}));
        assert_eq!(p.limits["memlock"], "unlimited");
        let ps = paths(&p).expect("paths");
        assert_eq!(ps.sysctl, "/etc/sysctl.d/70-es.conf");
        assert_eq!(ps.limits, "/etc/security/limits.d/70-es.conf");
        assert_eq!(ps.modules, "/etc/modules-load.d/es.conf");
        assert_eq!(
            paths(&params(json!({}))).expect("paths").sysctl,
            "/etc/sysctl.d/60-herd.conf"
        );
        assert!(paths(&params(json!({"name": "../x"}))).is_err());
        assert!(parse_params::<SysctlTuningParams>("t", &json!({"limits": {"files": 1}})).is_err());
        assert!(
            parse_params::<SysctlTuningParams>("t", &json!({"limits": {"nofile": "lots"}}))
                .is_err()
        );
    }

    #[test]
    fn only_raise_keeps_a_higher_limit() {
        assert!(only_raise_for(None, "net.core.somaxconn"));
        assert!(only_raise_for(None, "vm.max_map_count"));
        assert!(!only_raise_for(None, "vm.swappiness"));
        assert!(!only_raise_for(Some(false), "fs.file-max"));
        assert!(only_raise_for(Some(true), "vm.swappiness"));
        assert_eq!(effective("32768", Some("65535"), true), "65535");
        assert_eq!(effective("32768", Some("4096"), true), "32768");
        assert_eq!(effective("32768", Some("65535"), false), "32768");
        assert_eq!(effective("32768", None, true), "32768");
        // Multi-value keys are never compared as numbers.
        assert_eq!(
            effective("4096 87380", Some("8192 87380"), true),
            "4096 87380"
        );
    }

    #[test]
    fn file_text_is_one_line_per_key() {
        let mut v = BTreeMap::new();
        v.insert("net.core.somaxconn".to_string(), "32768".to_string());
        v.insert("net.ipv4.tcp_fin_timeout".to_string(), "15".to_string());
        assert_eq!(
            sysctl_text(&v),
            "# Managed by herd (sysctl_tuning). Local changes are overwritten.\n\
             net.core.somaxconn = 32768\nnet.ipv4.tcp_fin_timeout = 15\n"
        );
        assert_eq!(modules_text(), format!("{HEADER}br_netfilter\n"));
    }

    #[test]
    fn parses_the_probe() {
        let out = "SF bmV0LmEgPSAxCg==\nLF -\nMF \nK0 w 4096\nK1 r 65530 \nK2 -\nK3 w 4096 16384 4194304 \n";
        let p = parse_probe(out, 4).expect("parse");
        assert_eq!(p.sysctl.as_deref(), Some("net.a = 1\n"));
        assert_eq!(p.limits, None);
        assert_eq!(p.modules.as_deref(), Some(""));
        assert_eq!(
            p.keys,
            [
                LiveKey {
                    value: Some("4096".into()),
                    writable: true
                },
                LiveKey {
                    value: Some("65530".into()),
                    writable: false
                },
                LiveKey {
                    value: None,
                    writable: false
                },
                LiveKey {
                    value: Some("4096 16384 4194304".into()),
                    writable: true
                },
            ]
        );
        assert!(!p.bridge);
        assert!(parse_probe("SF -\nLF -\nMF -\n", 1).is_err());
        assert!(parse_probe("SF !!\nLF -\nMF -\n", 0).is_err());
    }

    #[test]
    fn names_why_the_kernel_did_not_take_a_key() {
        let ro = why_not_taken(
            "vm.swappiness",
            "1",
            Some("err sysctl: permission denied on key \"vm.swappiness\""),
            Some("60"),
            None,
        );
        assert!(ro.is_some_and(|w| w.starts_with("read-only in this namespace")));
        let range = why_not_taken("net.x", "99", Some("ok"), Some("3"), None);
        assert_eq!(
            range.as_deref(),
            Some("value 99 out of range: the kernel kept 3")
        );
        let inval = why_not_taken(
            "net.x",
            "-5",
            Some("err sysctl: setting key \"net.x\": Invalid argument"),
            Some("3"),
            None,
        );
        assert!(inval.is_some_and(|w| w.contains("out of range")));
        assert_eq!(
            why_not_taken("net.x", "1", Some("ok"), Some("1"), None),
            None
        );
        let unknown = why_not_taken(
            "net.bridge.bridge-nf-call-iptables",
            "1",
            Some("-"),
            None,
            Some("modprobe: FATAL"),
        );
        assert!(unknown.is_some_and(|w| w.contains("br_netfilter is not loaded")));
        let unknown = why_not_taken("net.nope", "1", Some("-"), None, None);
        assert!(unknown.is_some_and(|w| w.starts_with("unknown key")));
    }

    /// A host that answers the probe with three keys' values and the set
    /// script with `set_answer`, and records scripts and file writes, so
    /// apply can be tested without touching this machine's kernel.
    fn fake(set_answer: &str) -> FakeHost {
        FakeHost::new()
            .answer(
                Match::prefix("file()"),
                0,
                "SF -\nLF -\nMF -\nK0 w 60\nK1 r 65530\nK2 r 60\n",
                "",
            )
            .answer(Match::prefix("if [ -e"), 0, set_answer, "")
    }

    #[test]
    fn apply_fails_on_every_key_not_taken_and_sets_back_the_rest() {
        let p = json!({"profiles": ["elasticsearch"], "params": {"net.ipv4.tcp_fin_timeout": 20}});
        let mut h = fake(
            "W0 ok\nR0 20\n\
             W1 err sysctl: permission denied on key \"vm.max_map_count\"\nR1 65530\n\
             W2 err sysctl: permission denied on key \"vm.swappiness\"\nR2 60\n",
        );
        let pl = DynModule::plan(&SysctlTuning, &p, &mut h).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "net.ipv4.tcp_fin_timeout 60 -> 20",
                "vm.max_map_count 65530 -> 262144",
                "vm.swappiness 60 -> 1",
                "create /etc/sysctl.d/60-herd.conf"
            ]
        );
        assert_eq!(h.scripts.len(), 1, "the plan is one round trip");
        let e = DynModule::apply(&SysctlTuning, &p, pl, &mut h).expect_err("must fail");
        let msg = e.to_string();
        assert!(
            msg.contains("vm.max_map_count (read-only in this namespace")
                && msg.contains("vm.swappiness (read-only in this namespace")
                && !msg.contains("tcp_fin_timeout ("),
            "{msg}"
        );
        assert!(h.uploads.is_empty(), "no file written on failure");
        assert_eq!(
            h.scripts.last().map(String::as_str),
            Some("sysctl -w net.ipv4.tcp_fin_timeout=60 >/dev/null\n")
        );
        let ModuleError::Failed { result, .. } = e else {
            panic!("not a task failure")
        };
        assert_eq!(result["keys"]["net.ipv4.tcp_fin_timeout"]["after"], "60");
    }

    #[test]
    fn apply_writes_the_file_once_every_key_took() {
        let p = json!({"profiles": ["elasticsearch"], "params": {"net.ipv4.tcp_fin_timeout": 20}});
        let mut h = fake("W0 ok\nR0 20\nW1 ok\nR1 262144\nW2 ok\nR2 1\n");
        let pl = DynModule::plan(&SysctlTuning, &p, &mut h).expect("plan");
        let out = DynModule::apply(&SysctlTuning, &p, pl, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(
            h.writes(),
            [(
                "/etc/sysctl.d/60-herd.conf".to_string(),
                format!(
                    "{HEADER}net.ipv4.tcp_fin_timeout = 20\nvm.max_map_count = 262144\nvm.swappiness = 1\n"
                )
            )]
        );
        assert_eq!(
            out.result["keys"]["vm.swappiness"],
            json!({"before": "60", "after": "1"})
        );
    }

    #[test]
    fn only_raise_and_a_converged_host_plan_nothing() {
        let p = json!({"params": {"net.core.somaxconn": 32768, "vm.swappiness": 10}});
        let text = format!("{HEADER}net.core.somaxconn = 65535\nvm.swappiness = 10\n");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &text);
        let mut h = FakeHost::new().answer(
            Match::prefix("file()"),
            0,
            format!("SF {b64}\nLF -\nMF -\nK0 w 65535\nK1 r 10\n"),
            "",
        );
        let pl = DynModule::plan(&SysctlTuning, &p, &mut h).expect("plan");
        assert!(pl.is_empty(), "{:?}", pl.changes);
        assert_eq!(
            pl.result["keys"]["net.core.somaxconn"],
            json!({"before": "65535", "after": "65535"})
        );
        // only_raise off lowers it, and the file follows.
        let p = json!({"params": {"net.core.somaxconn": 32768, "vm.swappiness": 10}, "only_raise": false});
        let pl = DynModule::plan(&SysctlTuning, &p, &mut h).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "net.core.somaxconn 65535 -> 32768",
                "update /etc/sysctl.d/60-herd.conf"
            ]
        );
        assert_eq!(pl.diffs.len(), 1);
    }

    #[test]
    fn plans_locally_in_one_script_without_changing_anything() {
        // Reads only: the local /proc/sys and the (absent) files of a name
        // no one uses.
        let p = json!({"name": "herd-unit-test-nonexistent", "priority": 7,
            "params": {"net.ipv4.tcp_fin_timeout": 15, "herd.no.such.key": 1}});
        let pl = DynModule::plan(&SysctlTuning, &p, &mut host()).expect("plan");
        assert!(
            pl.changes
                .contains(&"herd.no.such.key (absent) -> 1".to_string()),
            "{:?}",
            pl.changes
        );
        assert!(pl
            .changes
            .contains(&"create /etc/sysctl.d/7-herd-unit-test-nonexistent.conf".to_string()));
        assert_eq!(pl.diffs.len(), 1);
        let keys = &pl.result["keys"];
        assert_eq!(keys["herd.no.such.key"]["before"], Value::Null);
        assert_eq!(keys["net.ipv4.tcp_fin_timeout"]["after"], "15");
        let absent = json!({"name": "herd-unit-test-nonexistent", "state": "absent"});
        assert!(DynModule::plan(&SysctlTuning, &absent, &mut host())
            .expect("plan")
            .is_empty());
        let e = DynModule::plan(&SysctlTuning, &json!({}), &mut host()).expect_err("nothing to do");
        assert!(e.to_string().contains("at least one"), "{e}");
    }
}
