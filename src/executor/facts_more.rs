//! The facts real roles read beyond the basics, built from the raw lines of
//! the facts script: distribution details and `ansible_pkg_mgr`,
//! virtualization, `ansible_lsb`, `ansible_selinux`, `ansible_date_time`,
//! `ansible_interfaces` with one `ansible_<iface>` each, `ansible_default_ipv6`,
//! the user, local facts (`facts.d`), and `gather_subset`. Names and value
//! shapes follow Ansible 2.18's setup output (strings where it has strings),
//! recorded in `tests/fixtures/keywords/facts/ansible-setup.json`.

use base64::Engine as _;
use serde_json::{Map, Value};

/// Lines of the facts script that need more than `key=value`.
#[derive(Default)]
pub(crate) struct RawFacts {
    /// Text facts Ansible keeps as strings even when they look numeric.
    text: Vec<(String, String)>,
    pkg_candidates: Vec<String>,
    /// Interface attributes: name, attribute (`flags`, `type`, `mtu`,
    /// `address`, `speed`, `bridge`), value; interfaces in order of appearance.
    ifaces: Vec<(String, String, String)>,
    /// dev, family, cidr, brd, scope
    addrs: Vec<Vec<String>>,
    date_local: Option<String>,
    date_utc: Option<String>,
    local: Vec<(String, String)>,
}

/// Keys kept as text (Ansible has `"12"`, not `12`).
const TEXT_KEYS: &[&str] = &[
    "debian_version",
    "os_name",
    "os_pretty",
    "user_gecos",
    "user_dir",
    "user_shell",
];

impl RawFacts {
    /// Take `key=value` if it is one of ours.
    pub(crate) fn take(&mut self, key: &str, value: &str) -> bool {
        let words = || value.split_whitespace().map(str::to_string).collect();
        match key {
            "pkg_candidate" => self.pkg_candidates.push(value.trim().to_string()),
            "netattr" => {
                // `/sys/class/net/<name>/<attribute>:<value>`
                let rest = value.strip_prefix("/sys/class/net/").unwrap_or(value);
                if let Some((path, v)) = rest.split_once(':') {
                    if let Some((name, attr)) = path.split_once('/') {
                        self.ifaces.push((
                            name.to_string(),
                            attr.to_string(),
                            v.trim().to_string(),
                        ));
                    }
                }
            }
            "addr" => self.addrs.push(words()),
            "date_time" => self.date_local = Some(value.to_string()),
            "date_utc" => self.date_utc = Some(value.to_string()),
            "local" => {
                let (name, data) = value.split_once(' ').unwrap_or((value, ""));
                self.local.push((name.to_string(), data.to_string()));
            }
            k if TEXT_KEYS.contains(&k) || k.starts_with("lsb.") || k.starts_with("selinux.") => {
                self.text.push((k.to_string(), value.trim().to_string()));
            }
            _ => return false,
        }
        true
    }

    pub(crate) fn finish(self, facts: &mut Map<String, Value>) {
        let text = |k: &str| {
            self.text
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        distribution(facts, &text("debian_version"));
        for k in ["user_dir", "user_shell", "user_gecos"] {
            facts.insert(k.into(), Value::from(text(k)));
        }
        let family = facts
            .get("os_family")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        facts.insert(
            "pkg_mgr".into(),
            Value::from(pkg_mgr(&family, &self.pkg_candidates)),
        );
        facts.insert("lsb".into(), Value::Object(lsb(&self.text, facts)));
        facts.insert("selinux".into(), Value::Object(selinux(&self.text)));
        facts.insert("selinux_python_present".into(), Value::Bool(true));
        if let Some(d) = date_time(self.date_local.as_deref(), self.date_utc.as_deref()) {
            facts.insert("date_time".into(), Value::Object(d));
        }
        interfaces(facts, &self.ifaces, &self.addrs);
        let mut local = Map::new();
        for (name, data) in &self.local {
            local.insert(name.clone(), local_fact(data));
        }
        facts.insert("local".into(), Value::Object(local));
    }
}

/// Ansible's names by os-release `ID`, and its OS families.
const DISTRIBUTIONS: &[(&str, &str, &str)] = &[
    ("debian", "Debian", "Debian"),
    ("ubuntu", "Ubuntu", "Debian"),
    ("linuxmint", "Linux Mint", "Debian"),
    ("raspbian", "Debian", "Debian"),
    ("devuan", "Devuan", "Debian"),
    ("kali", "Kali", "Debian"),
    ("rhel", "RedHat", "RedHat"),
    ("centos", "CentOS", "RedHat"),
    ("rocky", "Rocky", "RedHat"),
    ("almalinux", "AlmaLinux", "RedHat"),
    ("fedora", "Fedora", "RedHat"),
    ("ol", "OracleLinux", "RedHat"),
    ("amzn", "Amazon", "RedHat"),
    ("sles", "SLES", "Suse"),
    ("opensuse-leap", "openSUSE Leap", "Suse"),
    ("opensuse-tumbleweed", "openSUSE Tumbleweed", "Suse"),
    ("arch", "Archlinux", "Archlinux"),
    ("alpine", "Alpine", "Alpine"),
    ("gentoo", "Gentoo", "Gentoo"),
];

fn distribution(facts: &mut Map<String, Value>, debian_version: &str) {
    let id = facts
        .get("os_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some((_, name, family)) = DISTRIBUTIONS.iter().find(|(i, _, _)| *i == id) {
        facts.insert("distribution".into(), Value::from(*name));
        facts.insert("os_family".into(), Value::from(*family));
    }
    // Debian's point release is in /etc/debian_version, as Ansible reads it.
    if id == "debian" && debian_version.starts_with(|c: char| c.is_ascii_digit()) {
        facts.insert("distribution_version".into(), Value::from(debian_version));
    }
    let version = facts
        .get("distribution_version")
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    facts.insert("distribution_version".into(), Value::from(version.clone()));
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or_default();
    facts.insert(
        "distribution_major_version".into(),
        Value::from(if major.is_empty() { "NA" } else { major }),
    );
    if let Some(minor) = parts.next() {
        facts.insert("distribution_minor_version".into(), Value::from(minor));
    }
}

/// The package manager Ansible would name, from the tools on the host.
fn pkg_mgr(family: &str, found: &[String]) -> String {
    let has = |n: &str| found.iter().any(|f| f == n);
    let pick = |order: &[(&str, &str)]| {
        order
            .iter()
            .find(|(tool, _)| has(tool))
            .map(|(_, name)| name.to_string())
    };
    let preferred = match family {
        "Debian" => pick(&[("apt-get", "apt")]),
        "RedHat" => pick(&[("dnf5", "dnf5"), ("dnf", "dnf"), ("yum", "yum")]),
        "Suse" => pick(&[("zypper", "zypper")]),
        "Alpine" => pick(&[("apk", "apk")]),
        "Archlinux" => pick(&[("pacman", "pacman")]),
        "Gentoo" => pick(&[("emerge", "portage")]),
        _ => None,
    };
    preferred
        .or_else(|| {
            pick(&[
                ("apt-get", "apt"),
                ("dnf5", "dnf5"),
                ("dnf", "dnf"),
                ("yum", "yum"),
                ("zypper", "zypper"),
                ("apk", "apk"),
                ("pacman", "pacman"),
                ("pkg_add", "openbsd_pkg"),
                ("swupd", "swupd"),
                ("xbps-install", "xbps"),
            ])
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn lsb(text: &[(String, String)], facts: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let from_os_release = text.iter().any(|(k, _)| k == "lsb.from_os_release");
    for (k, v) in text {
        if let Some(name) = k.strip_prefix("lsb.") {
            if name != "from_os_release" {
                out.insert(name.to_string(), Value::from(v.as_str()));
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    if from_os_release {
        // `lsb_release -i` prints the distribution's own name.
        let id = facts.get("distribution").cloned().unwrap_or(Value::Null);
        out.insert("id".into(), id);
    }
    if let Some(release) = out.get("release").and_then(Value::as_str) {
        let major = release.split('.').next().unwrap_or_default().to_string();
        out.insert("major_release".into(), Value::from(major));
    }
    out.sort_keys();
    out
}

fn selinux(text: &[(String, String)]) -> Map<String, Value> {
    let get = |k: &str| text.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut out = Map::new();
    if get("selinux.status") != Some("enabled") {
        out.insert("status".into(), Value::from("disabled"));
        return out;
    }
    out.insert("status".into(), Value::from("enabled"));
    let mode = if get("selinux.enforce") == Some("1") {
        "enforcing"
    } else {
        "permissive"
    };
    out.insert("mode".into(), Value::from(mode));
    if let Some(m) = get("selinux.config_mode") {
        out.insert("config_mode".into(), Value::from(m));
    }
    if let Some(t) = get("selinux.type") {
        out.insert("type".into(), Value::from(t));
    }
    if let Some(p) = get("selinux.policyvers").and_then(|p| p.parse::<i64>().ok()) {
        out.insert("policyvers".into(), Value::from(p));
    }
    out
}

/// `ansible_date_time`: every value a string, as Ansible gives them.
fn date_time(local: Option<&str>, utc: Option<&str>) -> Option<Map<String, Value>> {
    let l: Vec<&str> = local?.split('|').collect();
    let u: Vec<&str> = utc?.split('|').collect();
    if l.len() < 16 || u.len() < 2 {
        return None;
    }
    // `%N` is nanoseconds where `date` has it; Ansible shows microseconds.
    let micro = |n: &str| {
        if n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()) {
            n[..6].to_string()
        } else {
            "000000".to_string()
        }
    };
    let names = [
        "date",
        "day",
        "epoch",
        "hour",
        "iso8601_basic_short",
        "minute",
        "month",
        "second",
        "time",
        "tz",
        "tz_offset",
        "weekday",
        "weekday_number",
        "weeknumber",
        "year",
    ];
    let mut out = Map::new();
    for (name, value) in names.iter().zip(&l) {
        out.insert((*name).into(), Value::from(*value));
    }
    out.insert("epoch_int".into(), Value::from(l[2]));
    out.insert(
        "iso8601_basic".into(),
        Value::from(format!("{}{}", l[4], micro(l[15]))),
    );
    out.insert("tz_dst".into(), Value::from(l[9]));
    out.insert("iso8601".into(), Value::from(format!("{}Z", u[0])));
    out.insert(
        "iso8601_micro".into(),
        Value::from(format!("{}.{}Z", u[0], micro(u[1]))),
    );
    out.sort_keys();
    Some(out)
}

/// The fact name of an interface (`eth0.100` -> `eth0_100`).
fn iface_fact(name: &str) -> String {
    name.replace(['-', ':', '.'], "_")
}

fn ipv4_of(cidr: &str, brd: &str) -> Map<String, Value> {
    let (address, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let mut m = Map::new();
    m.insert("address".into(), Value::from(address));
    m.insert(
        "broadcast".into(),
        Value::from(if brd == "-" { "" } else { brd }),
    );
    if let (Ok(a), Ok(p)) = (address.parse::<std::net::Ipv4Addr>(), prefix.parse::<u32>()) {
        let mask = if p == 0 {
            0
        } else {
            u32::MAX << (32 - p.min(32))
        };
        m.insert(
            "netmask".into(),
            Value::from(std::net::Ipv4Addr::from(mask).to_string()),
        );
        m.insert(
            "network".into(),
            Value::from(std::net::Ipv4Addr::from(u32::from(a) & mask).to_string()),
        );
    }
    m.insert("prefix".into(), Value::from(prefix));
    m
}

/// `ansible_interfaces`, `ansible_<iface>`, and the details Ansible adds to
/// `ansible_default_ipv4`/`_ipv6` from the default route's interface.
fn interfaces(
    facts: &mut Map<String, Value>,
    attrs: &[(String, String, String)],
    addrs: &[Vec<String>],
) {
    let mut names = Vec::new();
    let mut all_ipv6 = Vec::new();
    let mut by_name: Map<String, Value> = Map::new();
    let mut order: Vec<&str> = Vec::new();
    for (name, _, _) in attrs {
        if !order.contains(&name.as_str()) {
            order.push(name);
        }
    }
    for name in order {
        let attr = |a: &str| {
            attrs
                .iter()
                .find(|(n, k, _)| n == name && k == a)
                .map(|(_, _, v)| v.as_str())
                .unwrap_or("-")
        };
        let name = &name.to_string();
        let (kind, mtu, mac, bridge, speed) = (
            attr("type"),
            attr("mtu"),
            attr("address"),
            attr("bridge"),
            attr("speed"),
        );
        let flags = u32::from_str_radix(attr("flags").trim_start_matches("0x"), 16).unwrap_or(0);
        let mut m = Map::new();
        m.insert("device".into(), Value::from(name.as_str()));
        m.insert("active".into(), Value::Bool(flags & 1 == 1));
        m.insert("promisc".into(), Value::Bool(flags & 0x100 != 0));
        let kind = match (bridge, kind) {
            ("bridge", _) => "bridge",
            (_, "772") => "loopback",
            (_, "1") => "ether",
            (_, "32") => "infiniband",
            _ => "unknown",
        };
        m.insert("type".into(), Value::from(kind));
        if let Ok(mtu) = mtu.parse::<i64>() {
            m.insert("mtu".into(), Value::from(mtu));
        }
        if kind != "loopback" && mac != "-" {
            m.insert("macaddress".into(), Value::from(mac));
        }
        if let Ok(speed) = speed.parse::<i64>() {
            m.insert("speed".into(), Value::from(speed));
        }
        let mut ipv6 = Vec::new();
        for a in addrs.iter().filter(|a| a.first() == Some(name)) {
            let [_, family, cidr, brd, scope] = &a[..] else {
                continue;
            };
            if family == "inet" && !m.contains_key("ipv4") {
                m.insert("ipv4".into(), Value::Object(ipv4_of(cidr, brd)));
            } else if family == "inet6" {
                let (address, prefix) = cidr.split_once('/').unwrap_or((cidr, "128"));
                let mut v6 = Map::new();
                v6.insert("address".into(), Value::from(address));
                v6.insert("prefix".into(), Value::from(prefix));
                v6.insert("scope".into(), Value::from(scope.as_str()));
                if scope == "global" {
                    all_ipv6.push(Value::from(address));
                }
                ipv6.push(Value::Object(v6));
            }
        }
        if !ipv6.is_empty() {
            m.insert("ipv6".into(), Value::Array(ipv6));
        }
        m.sort_keys();
        names.push(Value::from(name.as_str()));
        by_name.insert(name.clone(), Value::Object(m));
    }
    if attrs.is_empty() {
        return;
    }
    facts.insert("interfaces".into(), Value::Array(names));
    facts.insert("all_ipv6_addresses".into(), Value::Array(all_ipv6));
    for family in ["default_ipv4", "default_ipv6"] {
        let dev = facts
            .get(family)
            .and_then(|d| d.get("interface"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Some(Value::Object(iface)) = by_name.get(&dev) else {
            facts.insert(family.into(), Value::Object(Map::new()));
            continue;
        };
        let Some(Value::Object(d)) = facts.get_mut(family) else {
            continue;
        };
        for k in ["macaddress", "mtu", "type"] {
            if let Some(v) = iface.get(k) {
                d.insert(k.into(), v.clone());
            }
        }
        if family == "default_ipv4" {
            if let Some(Value::Object(v4)) = iface.get("ipv4") {
                d.extend(v4.clone());
            }
            d.insert("alias".into(), Value::from(dev.as_str()));
        } else if let Some(Value::Array(v6)) = iface.get("ipv6") {
            if let Some(Value::Object(g)) = v6.iter().find(|a| a["scope"] == "global") {
                d.extend(g.clone());
            }
        }
        d.sort_keys();
    }
    for (name, v) in by_name {
        facts.insert(iface_fact(&name), v);
    }
}

/// One `facts.d` file: JSON, else INI sections, else Ansible's error text.
fn local_fact(data: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    let mut out = Map::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            out.insert(name.to_string(), Value::Object(Map::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Value::from("error loading facts as JSON or ini - please check content");
        };
        let Some(Value::Object(sec)) = section.as_ref().and_then(|s| out.get_mut(s)) else {
            return Value::from("error loading facts as JSON or ini - please check content");
        };
        sec.insert(k.trim().to_lowercase(), Value::from(v.trim()));
    }
    Value::Object(out)
}

/// The facts in each `gather_subset` group other than the minimal set.
fn subset_of(fact: &str, ifaces: &[String]) -> &'static str {
    match fact {
        "interfaces" | "default_ipv4" | "default_ipv6" | "all_ipv4_addresses"
        | "all_ipv6_addresses" => "network",
        "processor_vcpus" | "memtotal_mb" | "mounts" => "hardware",
        "virtualization_type" | "virtualization_role" => "virtual",
        "local" => "local",
        f if ifaces.iter().any(|i| iface_fact(i) == f) => "network",
        _ => "min",
    }
}

/// Keep the facts `gather_subset` asks for (`all`, `min`, `network`,
/// `hardware`, `virtual`, `local`, `!name` to leave one out; the minimal
/// facts are always kept, as in Ansible) and record the subset as the
/// `gather_subset` fact.
pub(crate) fn apply_gather_subset(facts: &mut Map<String, Value>, subset: &[String]) {
    let subset: Vec<String> = if subset.is_empty() {
        vec!["all".to_string()]
    } else {
        subset.to_vec()
    };
    let groups = ["network", "hardware", "virtual", "local"];
    let mut wanted: Vec<&str> = Vec::new();
    for s in &subset {
        let s = s.trim();
        match s {
            "all" => wanted.extend(groups),
            "!all" | "min" | "!min" => {
                if s == "!all" {
                    wanted.clear();
                }
            }
            _ => {
                if let Some(not) = s.strip_prefix('!') {
                    wanted.retain(|g| *g != not);
                } else if let Some(g) = groups.iter().find(|g| **g == s) {
                    wanted.push(g);
                }
            }
        }
    }
    // `!x` anywhere removes x even when `all` comes later.
    for s in &subset {
        if let Some(not) = s.trim().strip_prefix('!') {
            wanted.retain(|g| *g != not);
        }
    }
    let ifaces: Vec<String> = facts
        .get("interfaces")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    facts.retain(|k, _| {
        let group = subset_of(k, &ifaces);
        group == "min" || wanted.contains(&group)
    });
    facts.insert(
        "gather_subset".into(),
        Value::Array(subset.into_iter().map(Value::from).collect()),
    );
    facts.insert("module_setup".into(), Value::Bool(true));
}

#[cfg(test)]
mod tests {
    use crate::executor::facts::{parse_facts, parse_facts_with};

    const LINES: &str = "os_id=debian\ndistribution_version=12\ndebian_version=12.11\n\
pkg_candidate=apt-get\nvirtualization_type=docker\nvirtualization_role=guest\n\
lsb.release=12\nlsb.codename=bookworm\nlsb.description=Debian GNU/Linux 12 (bookworm)\nlsb.from_os_release=1\n\
date_time=2026-12-04|04|1796427906|23|20261204T234506|45|12|06|23:45:06|UTC|+0000|Friday|5|48|2026|477203123\n\
date_utc=2026-12-04T23:45:06|477203123\n\
netattr=/sys/class/net/eth0/flags:0x1003\nnetattr=/sys/class/net/eth0/type:1\nnetattr=/sys/class/net/eth0/mtu:1400\n\
netattr=/sys/class/net/eth0/address:02:fc:00:00:00:01\nnetattr=/sys/class/net/lo/flags:0x9\nnetattr=/sys/class/net/lo/type:772\n\
addr=eth0 inet 192.0.2.2/24 192.0.2.255 global\naddr=eth0 inet6 fd00::2/64 - global\naddr=lo inet 127.0.0.1/8 - host\n\
default_ipv4.interface=eth0\ndefault_ipv4.gateway=192.0.2.1\ndefault_ipv6.interface=eth0\ndefault_ipv6.gateway=fd00::1\n\
local=app eyJhIjogMX0=\n";

    #[test]
    fn facts_take_ansibles_names_and_shapes() {
        let f = parse_facts(LINES);
        assert_eq!(f["ansible_distribution"], "Debian");
        assert_eq!(f["ansible_distribution_version"], "12.11");
        assert_eq!(f["ansible_distribution_major_version"], "12");
        assert_eq!(f["ansible_os_family"], "Debian");
        assert_eq!(f["ansible_pkg_mgr"], "apt");
        assert_eq!(f["ansible_lsb"]["id"], "Debian");
        assert_eq!(f["ansible_lsb"]["major_release"], "12");
        assert_eq!(f["ansible_selinux"]["status"], "disabled");
        assert_eq!(
            f["ansible_date_time"]["iso8601_micro"],
            "2026-12-04T23:45:06.477203Z"
        );
        assert_eq!(
            f["ansible_date_time"]["iso8601_basic"],
            "20261204T234506477203"
        );
        assert_eq!(f["ansible_interfaces"], serde_json::json!(["eth0", "lo"]));
        assert_eq!(f["ansible_eth0"]["ipv4"]["network"], "192.0.2.0");
        assert_eq!(f["ansible_eth0"]["type"], "ether");
        assert_eq!(f["ansible_lo"]["type"], "loopback");
        assert_eq!(f["ansible_default_ipv4"]["prefix"], "24");
        assert_eq!(f["ansible_default_ipv4"]["macaddress"], "02:fc:00:00:00:01");
        assert_eq!(f["ansible_default_ipv6"]["address"], "fd00::2");
        assert_eq!(f["ansible_local"]["app"]["a"], 1);
        assert_eq!(f["ansible_gather_subset"], serde_json::json!(["all"]));
    }

    #[test]
    fn gather_subset_keeps_min_and_the_groups_asked_for() {
        let subset = ["!all".to_string(), "network".to_string()];
        let f = parse_facts_with(LINES, &subset);
        assert!(f.contains_key("ansible_interfaces"));
        assert!(f.contains_key("ansible_eth0"));
        assert!(f.contains_key("ansible_distribution"));
        assert!(!f.contains_key("ansible_virtualization_type"));
        assert!(!f.contains_key("ansible_local"));
    }
}
