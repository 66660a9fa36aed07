//! Fact gathering: one script, one round trip per host, printing
//! `key=value` lines that become `ansible_*` variables (and
//! `ansible_facts.*` without the prefix). Reads only local files and
//! commands on the host; sends no network traffic.

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::connection::task_host::TaskHost;
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
"#;

impl PlayRunner<'_> {
    pub fn gather_facts(&self, batch: &[usize]) {
        let active = self.active(batch);
        if active.is_empty() {
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
                let start = std::time::Instant::now();
                let (status, msg) = match self.gather_one(i) {
                    Ok(facts) => {
                        self.run.set_facts(&self.names[i], facts);
                        (Status::Ok, None)
                    }
                    Err((status, msg)) => (status, Some(msg)),
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
                }));
            })
        });
    }

    fn gather_one(&self, i: usize) -> Result<Map<String, Value>, (Status, String)> {
        let conn = self
            .connection(&self.names[i], &self.inventory_vars[i])
            .map_err(|e| (Status::Unreachable, e.to_string()))?;
        let mut guard = conn
            .lock()
            .map_err(|_| (Status::Failed, "connection lock poisoned".to_string()))?;
        let mut host = TaskHost::new(&mut **guard, None, &[]);
        let out =
            herdsman_modules::Host::run(&mut host, FACTS_SCRIPT, None).map_err(|e| match e {
                herdsman_modules::HostError::Unreachable(m) => (Status::Unreachable, m),
                other => (Status::Failed, other.to_string()),
            })?;
        Ok(parse_facts(&out.stdout_str()))
    }
}

/// `key=value` lines into facts; `a.b=v` nests; `all_*` lists split on commas.
pub fn parse_facts(text: &str) -> Map<String, Value> {
    let mut facts = Map::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
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
    let mut out = Map::new();
    for (k, v) in &facts {
        out.insert(format!("ansible_{k}"), v.clone());
    }
    out.insert("ansible_facts".into(), Value::Object(facts));
    out
}
