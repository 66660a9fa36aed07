//! Fact gathering: one script, one round trip per host, printing
//! `key=value` lines that become `ansible_*` variables (and
//! `ansible_facts.*` without the prefix). Reads only local files and
//! commands on the host; sends no network traffic.

use herdsman_modules::shell_quote::QuoteError;
use herdsman_modules::HostError;
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::connection::task_host::TaskHost;
use crate::executor::facts_more::{apply_gather_subset, RawFacts};
use crate::executor::PlayRunner;
use crate::output::{Event, HostResult, Status};

const FACTS_SCRIPT: &str = r#"
h=$(hostname 2>/dev/null || cat /etc/hostname)
echo "hostname=${h%%.*}"
echo "nodename=$(uname -n)"
echo "fqdn=$(hostname -f 2>/dev/null || echo "$h")"
echo "kernel=$(uname -r)"
echo "architecture=$(uname -m)"
echo "system=$(uname -s)"
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "distribution=${NAME%% *}"
echo "distribution_version=${VERSION_ID:-}"
echo "distribution_release=${VERSION_CODENAME:-}"
echo "os_id=${ID:-}"
echo "os_id_like=${ID_LIKE:-}"
echo "processor_vcpus=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
echo "memtotal_mb=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)"
echo "service_mgr=$(cat /proc/1/comm 2>/dev/null)"
echo "user_id=$(id -un)"
if command -v ip >/dev/null 2>&1; then
  set -- $(ip -4 route show default 2>/dev/null | head -n1)
  gw=""; dev=""
  while [ $# -gt 0 ]; do case "$1" in via) gw=$2; shift;; dev) dev=$2; shift;; esac; shift; done
  [ -n "$dev" ] || dev=$(ip -4 -o addr show scope global 2>/dev/null | awk 'NR==1 {print $2}')
  echo "default_ipv4.interface=$dev"
  echo "default_ipv4.gateway=$gw"
  if [ -n "$dev" ]; then
    cidr=$(ip -4 -o addr show dev "$dev" scope global 2>/dev/null | awk 'NR==1 {print $4}')
    echo "default_ipv4.address=${cidr%/*}"
    echo "default_ipv4.prefix=${cidr#*/}"
  fi
  echo "all_ipv4_addresses=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4,a,"/"); printf "%s,", a[1]}')"
fi
awk '$1 ~ /^\// || $2 == "/" {print "mount=" $1 " " $2 " " $3 " " $4}' /proc/mounts 2>/dev/null
env | awk '/^[A-Za-z_][A-Za-z0-9_]*=/ {print "env." $0}'
echo "machine=$(uname -m)"
echo "debian_version=$(cat /etc/debian_version 2>/dev/null)"
echo "os_name=${NAME:-}"
echo "os_pretty=${PRETTY_NAME:-}"
u=$(id -u); echo "user_uid=$u"; echo "user_gid=$(id -g)"
pw=$(getent passwd "$u" 2>/dev/null || grep "^[^:]*:[^:]*:$u:" /etc/passwd | head -n1)
echo "user_dir=$(echo "$pw" | cut -d: -f6)"; echo "user_shell=$(echo "$pw" | cut -d: -f7)"
echo "user_gecos=$(echo "$pw" | cut -d: -f5)"
for m in apt-get dnf5 dnf yum zypper apk pacman pkg_add portage emerge swupd xbps-install; do
  if command -v $m >/dev/null 2>&1; then echo "pkg_candidate=$m"; fi
done
# Virtualization, as Ansible's Linux checks read it (files only).
vt=""; vr=""
if [ -f /.dockerenv ] || grep -qs docker /proc/1/cgroup; then vt=docker; vr=guest
elif [ -f /run/.containerenv ]; then vt=podman; vr=guest
elif [ -r /run/systemd/container ]; then vt=$(cat /run/systemd/container); vr=guest
elif tr '\0' '\n' </proc/1/environ 2>/dev/null | grep -qs '^container=lxc'; then vt=lxc; vr=guest
elif grep -qs '/lxc/' /proc/1/cgroup; then vt=lxc; vr=guest
elif [ -d /proc/vz ] && [ ! -d /proc/bc ]; then vt=openvz; vr=guest
elif grep -qs '^flags.* hypervisor' /proc/cpuinfo; then
  pn=$(cat /sys/class/dmi/id/product_name /sys/class/dmi/id/sys_vendor 2>/dev/null | tr '\n' ' ')
  case "$pn" in
    *KVM*|*QEMU*|*OpenStack*) vt=kvm;; *VMware*) vt=VMware;; *VirtualBox*) vt=virtualbox;;
    *Xen*|*HVM*) vt=xen;; *Microsoft*) vt=VirtualPC;; *Amazon*) vt=kvm;; *Google*) vt=kvm;; *) vt=kvm;;
  esac; vr=guest
elif [ -e /dev/kvm ]; then vt=kvm; vr=host
fi
echo "virtualization_type=${vt:-NA}"; echo "virtualization_role=${vr:-NA}"
if [ -r /etc/lsb-release ]; then
  . /etc/lsb-release
  echo "lsb.id=${DISTRIB_ID:-}"; echo "lsb.release=${DISTRIB_RELEASE:-}"
  echo "lsb.codename=${DISTRIB_CODENAME:-}"; echo "lsb.description=${DISTRIB_DESCRIPTION:-}"
elif command -v lsb_release >/dev/null 2>&1; then
  echo "lsb.release=${VERSION_ID:-}"; echo "lsb.codename=${VERSION_CODENAME:-}"
  echo "lsb.description=${PRETTY_NAME:-}"; echo "lsb.from_os_release=1"
fi
if [ -r /sys/fs/selinux/enforce ]; then
  echo "selinux.status=enabled"; echo "selinux.enforce=$(cat /sys/fs/selinux/enforce)"
  echo "selinux.policyvers=$(cat /sys/fs/selinux/policyvers 2>/dev/null)"
  sed -n 's/^SELINUX=/selinux.config_mode=/p; s/^SELINUXTYPE=/selinux.type=/p' /etc/selinux/config 2>/dev/null
fi
date +'date_time=%Y-%m-%d|%d|%s|%H|%Y%m%dT%H%M%S|%M|%m|%S|%H:%M:%S|%Z|%z|%A|%w|%W|%Y|%N'
date -u +'date_utc=%Y-%m-%dT%H:%M:%S|%N'
if [ -d /sys/class/net ]; then
  # One grep per attribute, not one cat per interface and attribute.
  for a in flags type mtu address speed; do grep -Hs . /sys/class/net/*/$a | sed 's/^/netattr=/'; done
  for b in /sys/class/net/*/bridge; do [ -d "$b" ] && echo "netattr=$b:bridge"; done
fi
if command -v ip >/dev/null 2>&1; then
  ip -o addr show 2>/dev/null | awk '{dev=$2; sub(/@.*/, "", dev); brd="-"; scope="-";
    for (i = 5; i < NF; i++) { if ($i == "brd") brd = $(i+1); if ($i == "scope") scope = $(i+1) }
    print "addr=" dev " " $3 " " $4 " " brd " " scope}'
  set -- $(ip -6 route show default 2>/dev/null | head -n1)
  gw=""; dev=""
  while [ $# -gt 0 ]; do case "$1" in via) gw=$2; shift;; dev) dev=$2; shift;; esac; shift; done
  echo "default_ipv6.interface=$dev"; echo "default_ipv6.gateway=$gw"
fi
"#;

/// Local facts (`/etc/ansible/facts.d/*.fact`, or setup's `fact_path`):
/// an executable's output, else the file's text, base64 so any text fits
/// on one line.
const LOCAL_FACTS_SCRIPT: &str = r#"
for f in "$fact_path"/*.fact; do
  [ -f "$f" ] || continue
  n=${f##*/}; n=${n%.fact}
  if [ -x "$f" ]; then out=$("$f" 2>/dev/null | base64 | tr -d '\n'); else out=$(base64 <"$f" | tr -d '\n'); fi
  echo "local=$n $out"
done
"#;

impl PlayRunner<'_> {
    pub fn gather_facts(&self, batch: &[usize]) {
        let active = self.active(batch);
        if active.is_empty() || !self.take_step("TASK: Gathering Facts", None) {
            return;
        }
        self.sink.send(Event::TaskStart {
            name: "Gathering Facts".into(),
            location: format!("{}:{}", self.play.span.path.display(), self.play.span.line),
            hosts: active.iter().map(|&i| self.names[i].clone()).collect(),
            handler: false,
        });
        self.pool.install(|| {
            active.par_iter().for_each(|&i| {
                self.sink.host_started(&self.names[i]);
                let start = std::time::Instant::now();
                let (status, msg) = match self.gather_one(i) {
                    Ok(facts) => {
                        self.run.set_facts(&self.names[i], facts);
                        (Status::Ok, None)
                    }
                    Err(e) => (e.status(), Some(e.to_string())),
                };
                self.count(i, status);
                if status == Status::Unreachable {
                    if let Ok(mut h) = self.hosts[i].lock() {
                        h.unreachable = true;
                    }
                } else if status == Status::Failed {
                    if let Ok(mut h) = self.hosts[i].lock() {
                        h.failed = true;
                    }
                }
                self.sink.send(Event::HostResult(HostResult {
                    host: self.names[i].clone(),
                    task: "Gathering Facts".into(),
                    status,
                    changed: false,
                    duration_ms: start.elapsed().as_millis() as u64,
                    msg,
                    item: None,
                    delegated_to: None,
                    diffs: Vec::new(),
                    output: None,
                    changes: Vec::new(),
                    censored: false,
                    result: None,
                }));
            });
        });
    }

    /// Facts of host `i` for the play's `gather_subset` and `fact_path`
    /// (rendered with the play's variables; default `facts.d`), over the
    /// connection the play's variables give.
    pub fn gather_one(&self, i: usize) -> Result<Map<String, Value>, GatherError> {
        let reach = self.play_reach(i).map_err(GatherError::Template)?;
        let fact_path = match &self.play.fact_path {
            Some(text) => {
                let ctx = self.context_in_role(i, &Map::new(), None, &Map::new());
                Some(
                    self.project
                        .templar
                        .render_str("fact_path", text, &ctx)
                        .map_err(GatherError::Template)?,
                )
            }
            None => None,
        };
        self.gather_from(
            &self.names[i],
            &reach,
            &self.play.gather_subset,
            fact_path.as_deref(),
        )
    }

    /// Facts of the host named `name` (any inventory host: a delegated
    /// `setup` gathers from the delegate), reached as `reach` says:
    /// `subset` as `gather_subset`, local facts from `fact_path` (default
    /// `/etc/ansible/facts.d`). One round trip.
    pub(crate) fn gather_from(
        &self,
        name: &str,
        reach: &super::reach::Reach,
        subset: &[String],
        fact_path: Option<&str>,
    ) -> Result<Map<String, Value>, GatherError> {
        let conn = self
            .connection(name, &reach.vars, reach.play_connection())
            .map_err(GatherError::Connect)?;
        let mut guard = conn.lock().map_err(|_| GatherError::LockPoisoned)?;
        let mut host = TaskHost::new(&mut **guard, None, &[])?;
        let script = format!(
            "{FACTS_SCRIPT}fact_path={}\n{LOCAL_FACTS_SCRIPT}",
            herdsman_modules::shell_quote::quote(fact_path.unwrap_or("/etc/ansible/facts.d"))
        );
        let out = herdsman_modules::Host::run(&mut host, &script, None).map_err(|e| match e {
            HostError::Unreachable(m) => GatherError::Lost(m),
            other => GatherError::Script(other),
        })?;
        Ok(parse_facts_with(&out.stdout_str(), subset))
    }
}

/// Why facts could not be gathered from a host; [`GatherError::status`]
/// says whether the host counts as failed or unreachable.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Connect(HostError),
    #[error("connection lock poisoned")]
    LockPoisoned,
    /// A connection variable or keyword did not render.
    #[error(transparent)]
    Template(crate::template::TemplateError),
    #[error(transparent)]
    Session(#[from] QuoteError),
    /// The connection dropped while the facts script ran.
    #[error("{0}")]
    Lost(String),
    #[error(transparent)]
    Script(HostError),
}

impl GatherError {
    /// The task status for this error.
    pub fn status(&self) -> Status {
        match self {
            GatherError::Connect(_) | GatherError::Lost(_) => Status::Unreachable,
            _ => Status::Failed,
        }
    }
}

/// `key=value` lines into facts; `a.b=v` nests; `all_*` lists split on commas.
pub fn parse_facts(text: &str) -> Map<String, Value> {
    parse_facts_with(text, &[])
}

/// [`parse_facts`], keeping what `gather_subset` asks for.
pub fn parse_facts_with(text: &str, subset: &[String]) -> Map<String, Value> {
    let mut facts = Map::new();
    let mut mounts = Vec::new();
    let mut raw = RawFacts::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if raw.take(key, value) {
            continue;
        }
        if key == "mount" {
            let parts: Vec<&str> = value.splitn(4, ' ').collect();
            if let [device, mount, fstype, options] = parts[..] {
                let mut m = Map::new();
                m.insert("device".into(), Value::from(device));
                m.insert("mount".into(), Value::from(mount));
                m.insert("fstype".into(), Value::from(fstype));
                m.insert("options".into(), Value::from(options));
                mounts.push(Value::Object(m));
            }
            continue;
        }
        if let Some(name) = key.strip_prefix("env.") {
            // Environment values stay text, whatever they look like.
            if let Value::Object(env) = facts
                .entry("env".to_string())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                env.insert(name.to_string(), Value::from(value));
            }
            continue;
        }
        let value = value.trim();
        let json = if key.starts_with("all_") {
            Value::Array(
                value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(Value::from)
                    .collect(),
            )
        } else if let Ok(n) = value.parse::<i64>().map_err(|_| ()).and_then(|n| {
            if key == "distribution_version" {
                Err(())
            } else {
                Ok(n)
            }
        }) {
            Value::from(n)
        } else {
            Value::from(value)
        };
        match key.split_once('.') {
            Some((outer, inner)) => {
                if let Value::Object(m) = facts
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    m.insert(inner.to_string(), json);
                }
            }
            None => {
                facts.insert(key.to_string(), json);
            }
        }
    }
    facts.insert("mounts".into(), Value::Array(mounts));
    if let Some(Value::Object(ipv4)) = facts.get_mut("default_ipv4") {
        let prefix = ipv4.get("prefix").and_then(Value::as_u64);
        if let Some(p) = prefix.filter(|p| *p <= 32) {
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            ipv4.insert(
                "netmask".into(),
                Value::from(std::net::Ipv4Addr::from(mask).to_string()),
            );
        }
    }
    if let Some(Value::String(id_like)) = facts.get("os_id_like").cloned() {
        let family =
            if id_like.contains("debian") || facts.get("os_id") == Some(&Value::from("debian")) {
                "Debian"
            } else if id_like.contains("rhel") || id_like.contains("fedora") {
                "RedHat"
            } else {
                "Linux"
            };
        facts.insert("os_family".into(), Value::from(family));
    } else if facts.get("os_id") == Some(&Value::from("debian")) {
        facts.insert("os_family".into(), Value::from("Debian"));
    }
    raw.finish(&mut facts);
    apply_gather_subset(&mut facts, subset);
    let mut out = Map::new();
    for (k, v) in &facts {
        out.insert(format!("ansible_{k}"), v.clone());
    }
    out.insert("ansible_facts".into(), Value::Object(facts));
    out
}

/// `setup`'s `filter`: shell-style globs (`ansible_distribution*`) over the
/// fact names; an empty filter keeps everything.
pub fn filter_facts(facts: Map<String, Value>, patterns: &[String]) -> Map<String, Value> {
    if patterns.is_empty() {
        return facts;
    }
    let matchers: Vec<globset::GlobMatcher> = patterns
        .iter()
        .filter_map(|p| globset::Glob::new(p).ok().map(|g| g.compile_matcher()))
        .collect();
    let keep = |k: &str| matchers.iter().any(|m| m.is_match(k));
    let mut out: Map<String, Value> = facts
        .iter()
        .filter(|(k, _)| k.as_str() != "ansible_facts" && keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let inner: Map<String, Value> = out
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("ansible_")
                .map(|s| (s.to_string(), v.clone()))
        })
        .collect();
    out.insert("ansible_facts".into(), Value::Object(inner));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_facts_with_nesting_lists_mounts_and_netmask() {
        let text = "hostname=web1\nprocessor_vcpus=2\ndistribution_version=12\ndefault_ipv4.address=10.77.0.11\ndefault_ipv4.prefix=24\nall_ipv4_addresses=10.77.0.11,\nmount=/dev/vda1 / ext4 rw,relatime\nenv.HOME=/root\nos_id=debian\n";
        let f = parse_facts(text);
        assert_eq!(f["ansible_hostname"], "web1");
        assert_eq!(f["ansible_processor_vcpus"], 2);
        assert_eq!(f["ansible_distribution_version"], "12");
        assert_eq!(f["ansible_default_ipv4"]["netmask"], "255.255.255.0");
        assert_eq!(
            f["ansible_all_ipv4_addresses"],
            serde_json::json!(["10.77.0.11"])
        );
        assert_eq!(f["ansible_mounts"][0]["mount"], "/");
        assert_eq!(f["ansible_env"]["HOME"], "/root");
        assert_eq!(f["ansible_os_family"], "Debian");
        assert_eq!(f["ansible_facts"]["hostname"], "web1");
    }

    #[test]
    fn filter_keeps_matching_facts() {
        let f = parse_facts("hostname=a\ndistribution=Debian\ndistribution_version=12\n");
        let kept = filter_facts(f, &["ansible_distribution*".to_string()]);
        assert!(kept.contains_key("ansible_distribution_version"));
        assert!(!kept.contains_key("ansible_hostname"));
        assert_eq!(kept["ansible_facts"]["distribution"], "Debian");
    }
}
