//! `iptables`: ansible.builtin's `iptables`: one rule, a chain's policy,
//! a flush, or a user chain, in the host's iptables (or ip6tables).
//!
//! The rule's words are built in Ansible's order from the same parameters
//! (so `rule` in the result is the same text), and the rule is checked with
//! `iptables -t TABLE -C CHAIN RULE`, as the module does: present or not
//! is all that is compared, so `action: insert` with a `rule_num` does not
//! move a rule that is already elsewhere in the chain. A policy is read
//! from the first line of `iptables -t TABLE -L CHAIN`. The module's own
//! quirks are kept: `flush` is always a change; `state: absent` without
//! rule options reports a change whenever the chain exists, and `present`
//! without rule options whenever it does not, though only
//! `chain_management: true` makes them delete or create it.
//!
//! `wait` is passed as given (Ansible drops it for iptables older than
//! 1.6, which Debian has not shipped since 2016).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::de_opt_list;
use crate::params::{de_bool, de_opt_string};
use crate::shell_quote::join;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),+ }
        #[allow(dead_code)] // not every enum's word is printed
        impl $name {
            fn word(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }
    };
}

str_enum!(
    /// `table`'s values.
    Table { /// filter.
        Filter = "filter", /// nat.
        Nat = "nat", /// mangle.
        Mangle = "mangle", /// raw.
        Raw = "raw", /// security.
        Security = "security" }
);
str_enum!(
    /// `state`'s values.
    IptState { /// The rule (or chain) is there.
        Present = "present", /// It is not.
        Absent = "absent" }
);
str_enum!(
    /// `action`'s values.
    IptAction { /// Append a new rule.
        Append = "append", /// Insert a new rule (at `rule_num`).
        Insert = "insert" }
);
str_enum!(
    /// `ip_version`'s values.
    IpVersion { /// iptables.
        Ipv4 = "ipv4", /// ip6tables.
        Ipv6 = "ipv6" }
);
str_enum!(
    /// `syn`'s values.
    Syn { /// No `--syn`.
        Ignore = "ignore", /// `--syn`.
        Match = "match", /// `! --syn`.
        Negate = "negate" }
);
str_enum!(
    /// `policy`'s values.
    IptPolicy { /// ACCEPT.
        Accept = "ACCEPT", /// DROP.
        Drop = "DROP", /// QUEUE.
        Queue = "QUEUE", /// RETURN.
        Return = "RETURN" }
);
str_enum!(
    /// `log_level`'s values.
    LogLevel { /// 0.
        L0 = "0", /// 1.
        L1 = "1", /// 2.
        L2 = "2", /// 3.
        L3 = "3", /// 4.
        L4 = "4", /// 5.
        L5 = "5", /// 6.
        L6 = "6", /// 7.
        L7 = "7", /// emerg.
        Emerg = "emerg", /// alert.
        Alert = "alert", /// crit.
        Crit = "crit", /// error.
        Error = "error", /// warning.
        Warning = "warning", /// notice.
        Notice = "notice", /// info.
        Info = "info", /// debug.
        Debug = "debug" }
);
str_enum!(
    /// `match_set_flags`' values.
    MatchSetFlags { /// src.
        Src = "src", /// dst.
        Dst = "dst", /// src,dst.
        SrcDst = "src,dst", /// dst,src.
        DstSrc = "dst,src", /// src,src.
        SrcSrc = "src,src", /// dst,dst.
        DstDst = "dst,dst" }
);

/// `tcp_flags`: the flags examined and those that must be set.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpFlags {
    /// The flags examined.
    #[serde(default, deserialize_with = "de_opt_list")]
    pub flags: Option<Vec<String>>,
    /// The flags that must be set.
    #[serde(default, deserialize_with = "de_opt_list")]
    pub flags_set: Option<Vec<String>>,
}

fn filter() -> Table {
    Table::Filter
}
fn present() -> IptState {
    IptState::Present
}
fn append() -> IptAction {
    IptAction::Append
}
fn ipv4() -> IpVersion {
    IpVersion::Ipv4
}
fn ignore() -> Syn {
    Syn::Ignore
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `iptables`: what `herd doc` shows, and what the parser takes.
pub struct IptablesParams {
    /// The table.
    #[serde(default = "filter")]
    pub table: Table,
    /// Whether the rule (or chain) is there.
    #[serde(default = "present")]
    pub state: IptState,
    /// Append or insert a new rule.
    #[serde(default = "append")]
    pub action: IptAction,
    /// iptables or ip6tables.
    #[serde(default = "ipv4")]
    pub ip_version: IpVersion,
    /// The chain.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub chain: Option<String>,
    /// Where `insert` puts the rule.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub rule_num: Option<String>,
    /// `-p`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub protocol: Option<String>,
    /// `-w`: wait this many seconds for the xtables lock.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub wait: Option<String>,
    /// `-s`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub source: Option<String>,
    /// `--to-source` (SNAT).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub to_source: Option<String>,
    /// `-d`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub destination: Option<String>,
    /// `--to-destination` (DNAT).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub to_destination: Option<String>,
    /// `-m` modules.
    #[serde(default, rename = "match", deserialize_with = "de_opt_list")]
    pub match_: Option<Vec<String>>,
    /// `--tcp-flags`.
    pub tcp_flags: Option<TcpFlags>,
    /// `-j`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub jump: Option<String>,
    /// `--gateway` (with `jump: TEE`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub gateway: Option<String>,
    /// `--log-prefix` (LOG).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub log_prefix: Option<String>,
    /// `--log-level` (LOG).
    pub log_level: Option<LogLevel>,
    /// `-g`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub goto: Option<String>,
    /// `-i`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub in_interface: Option<String>,
    /// `-o`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub out_interface: Option<String>,
    /// `-f`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub fragment: Option<String>,
    /// `-c PACKETS BYTES`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub set_counters: Option<String>,
    /// `--source-port`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub source_port: Option<String>,
    /// `--destination-port`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub destination_port: Option<String>,
    /// `-m multiport --dports`.
    #[serde(default, deserialize_with = "de_opt_list")]
    pub destination_ports: Option<Vec<String>>,
    /// `--to-ports`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub to_ports: Option<String>,
    /// `--set-dscp`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub set_dscp_mark: Option<String>,
    /// `--set-dscp-class`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub set_dscp_mark_class: Option<String>,
    /// `-m comment --comment`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub comment: Option<String>,
    /// Connection states (`-m conntrack --ctstate`).
    #[serde(default, deserialize_with = "de_opt_list")]
    pub ctstate: Option<Vec<String>>,
    /// `-m iprange --src-range`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub src_range: Option<String>,
    /// `-m iprange --dst-range`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub dst_range: Option<String>,
    /// `-m set --match-set`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub match_set: Option<String>,
    /// The flags after `--match-set NAME`.
    pub match_set_flags: Option<MatchSetFlags>,
    /// `-m limit --limit`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub limit: Option<String>,
    /// `-m limit --limit-burst`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub limit_burst: Option<String>,
    /// `-m owner --uid-owner`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub uid_owner: Option<String>,
    /// `-m owner --gid-owner`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub gid_owner: Option<String>,
    /// `--reject-with` (and `-j REJECT` without `jump`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub reject_with: Option<String>,
    /// `--icmp-type` (`--icmpv6-type`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub icmp_type: Option<String>,
    /// `--syn` matching.
    #[serde(default = "ignore")]
    pub syn: Syn,
    /// Flush the chain (or every chain of the table).
    #[serde(default, deserialize_with = "de_bool")]
    pub flush: bool,
    /// The chain's policy.
    pub policy: Option<IptPolicy>,
    /// Create (`present`) or delete (`absent`) a user chain given without rule options.
    #[serde(default, deserialize_with = "de_bool")]
    pub chain_management: bool,
    /// `--numeric` when listing a chain.
    #[serde(default, deserialize_with = "de_bool")]
    pub numeric: bool,
}

/// The `iptables` module.
pub struct Iptables;

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Iptables::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// Ansible's `append_param`: `FLAG VALUE`, or `! FLAG VALUE` for a value
/// starting with `!`.
fn param(rule: &mut Vec<String>, value: Option<&str>, flag: &str) {
    if let Some(v) = value {
        match v.strip_prefix('!') {
            Some(rest) => rule.extend(["!".into(), flag.into(), rest.into()]),
            None => rule.extend([flag.to_string(), v.to_string()]),
        }
    }
}

fn push(rule: &mut Vec<String>, words: &[&str]) {
    rule.extend(words.iter().map(|w| (*w).to_string()));
}

/// Ansible's `append_match_flag` for a parameter whose value is tested
/// against `match`/`negate`.
fn match_flag(rule: &mut Vec<String>, value: Option<&str>, flag: &str, negatable: bool) {
    match value {
        Some("match") => push(rule, &[flag]),
        Some("negate") if negatable => push(rule, &["!", flag]),
        _ => {}
    }
}

/// The rule's words, in the order and with the quirks of Ansible's
/// `construct_rule`. `jump` is the effective jump (LOG for log options).
fn construct_rule(p: &IptablesParams, jump: Option<&str>) -> Vec<String> {
    let mut r = Vec::new();
    let o = |s: &Option<String>| s.clone();
    if let Some(w) = p.wait.as_deref().filter(|w| !w.is_empty()) {
        push(&mut r, &["-w", w]);
    }
    param(&mut r, o(&p.protocol).as_deref(), "-p");
    param(&mut r, o(&p.source).as_deref(), "-s");
    param(&mut r, o(&p.destination).as_deref(), "-d");
    let matches = p.match_.clone().unwrap_or_default();
    for m in &matches {
        param(&mut r, Some(m), "-m");
    }
    if let Some(tf) = &p.tcp_flags {
        if let (Some(f), Some(s)) = (&tf.flags, &tf.flags_set) {
            r.extend(["--tcp-flags".into(), f.join(","), s.join(",")]);
        }
    }
    param(&mut r, jump, "-j");
    if jump.is_some_and(|j| j.eq_ignore_ascii_case("tee")) {
        param(&mut r, o(&p.gateway).as_deref(), "--gateway");
    }
    param(&mut r, o(&p.log_prefix).as_deref(), "--log-prefix");
    param(&mut r, p.log_level.map(LogLevel::word), "--log-level");
    param(&mut r, o(&p.to_destination).as_deref(), "--to-destination");
    let dports = p.destination_ports.clone().unwrap_or_default();
    if !dports.is_empty() {
        r.extend([
            "-m".into(),
            "multiport".into(),
            "--dports".into(),
            dports.join(","),
        ]);
    }
    param(&mut r, o(&p.to_source).as_deref(), "--to-source");
    param(&mut r, o(&p.goto).as_deref(), "-g");
    param(&mut r, o(&p.in_interface).as_deref(), "-i");
    param(&mut r, o(&p.out_interface).as_deref(), "-o");
    param(&mut r, o(&p.fragment).as_deref(), "-f");
    param(&mut r, o(&p.set_counters).as_deref(), "-c");
    param(&mut r, o(&p.source_port).as_deref(), "--source-port");
    param(
        &mut r,
        o(&p.destination_port).as_deref(),
        "--destination-port",
    );
    param(&mut r, o(&p.to_ports).as_deref(), "--to-ports");
    let not_dscp = !jump.is_some_and(|j| j.eq_ignore_ascii_case("dscp"));
    param(&mut r, o(&p.set_dscp_mark).as_deref(), "--set-dscp");
    if p.set_dscp_mark.is_some() && not_dscp {
        push(&mut r, &["-j", "DSCP"]);
    }
    param(
        &mut r,
        o(&p.set_dscp_mark_class).as_deref(),
        "--set-dscp-class",
    );
    if p.set_dscp_mark_class.is_some() && not_dscp {
        push(&mut r, &["-j", "DSCP"]);
    }
    match_flag(&mut r, Some(p.syn.word()), "--syn", true);
    let ctstate = p.ctstate.clone().unwrap_or_default();
    let has = |m: &str| matches.iter().any(|x| x == m);
    if !ctstate.is_empty() {
        if has("conntrack") {
            r.extend(["--ctstate".into(), ctstate.join(",")]);
        } else if has("state") {
            r.extend(["--state".into(), ctstate.join(",")]);
        } else {
            r.extend([
                "-m".into(),
                "conntrack".into(),
                "--ctstate".into(),
                ctstate.join(","),
            ]);
        }
    }
    if has("iprange") || p.src_range.is_some() || p.dst_range.is_some() {
        if !has("iprange") {
            push(&mut r, &["-m", "iprange"]);
        }
        param(&mut r, o(&p.src_range).as_deref(), "--src-range");
        param(&mut r, o(&p.dst_range).as_deref(), "--dst-range");
    }
    if has("set") || p.match_set.is_some() {
        if !has("set") {
            push(&mut r, &["-m", "set"]);
        }
        param(&mut r, o(&p.match_set).as_deref(), "--match-set");
        if let Some(f) = p.match_set_flags {
            push(&mut r, &[f.word()]);
        }
    }
    if p.limit.is_some() || p.limit_burst.is_some() {
        push(&mut r, &["-m", "limit"]);
    }
    param(&mut r, o(&p.limit).as_deref(), "--limit");
    param(&mut r, o(&p.limit_burst).as_deref(), "--limit-burst");
    for (v, flag) in [(&p.uid_owner, "--uid-owner"), (&p.gid_owner, "--gid-owner")] {
        if v.is_some() {
            push(&mut r, &["-m", "owner"]);
        }
        match_flag(&mut r, v.as_deref(), flag, true);
        param(&mut r, v.as_deref(), flag);
    }
    if jump.is_none() {
        if p.reject_with.is_some() {
            push(&mut r, &["-j", "REJECT"]);
        }
        if p.set_dscp_mark_class.is_some() {
            push(&mut r, &["-j", "DSCP"]);
        }
        if p.set_dscp_mark.is_some() {
            push(&mut r, &["-j", "DSCP"]);
        }
    }
    param(&mut r, o(&p.reject_with).as_deref(), "--reject-with");
    let icmp = match p.ip_version {
        IpVersion::Ipv4 => "--icmp-type",
        IpVersion::Ipv6 => "--icmpv6-type",
    };
    param(&mut r, o(&p.icmp_type).as_deref(), icmp);
    if let Some(c) = &p.comment {
        r.extend(["-m".into(), "comment".into(), "--comment".into(), c.clone()]);
    }
    r
}

/// What apply runs, decided by the plan.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Todo {
    /// The iptables argv to run, if any.
    argv: Option<Vec<String>>,
}

impl Iptables {
    fn bin(p: &IptablesParams) -> &'static str {
        match p.ip_version {
            IpVersion::Ipv4 => "iptables",
            IpVersion::Ipv6 => "ip6tables",
        }
    }

    fn base(p: &IptablesParams, action: &str) -> Vec<String> {
        let mut c = vec![
            Self::bin(p).to_string(),
            "-t".into(),
            p.table.word().into(),
            action.into(),
        ];
        if let Some(ch) = &p.chain {
            c.push(ch.clone());
        }
        c
    }

    fn check(p: &IptablesParams) -> Result<(), ModuleError> {
        if p.set_dscp_mark.is_some() && p.set_dscp_mark_class.is_some() {
            return Err(invalid(
                "set_dscp_mark",
                "parameters are mutually exclusive: set_dscp_mark|set_dscp_mark_class",
            ));
        }
        if p.flush && p.policy.is_some() {
            return Err(invalid(
                "flush",
                "parameters are mutually exclusive: flush|policy",
            ));
        }
        if (p.set_dscp_mark.is_some() || p.set_dscp_mark_class.is_some()) && p.jump.is_none() {
            return Err(invalid(
                "jump",
                "missing parameter(s) required by 'set_dscp_mark': jump",
            ));
        }
        if p.jump.as_deref().is_some_and(|j| j == "TEE" || j == "tee") && p.gateway.is_none() {
            return Err(invalid(
                "gateway",
                "jump is TEE but all of the following are missing: gateway",
            ));
        }
        if !p.flush && p.chain.is_none() {
            return Err(invalid(
                "chain",
                "flush is False but all of the following are missing: chain",
            ));
        }
        Ok(())
    }
}

fn run_or_fail(host: &mut dyn Host, argv: &[String]) -> Result<String, ModuleError> {
    let cmd = join(argv);
    let out = host.run(&format!("LC_ALL=C {cmd}"), None)?;
    if !out.success() {
        let mut result = Map::new();
        result.insert("cmd".into(), json!(cmd));
        result.insert("rc".into(), json!(out.rc));
        result.insert("stdout".into(), json!(out.stdout_str()));
        result.insert("stderr".into(), json!(out.stderr_str()));
        return Err(ModuleError::Failed {
            msg: out.stderr_str().trim_end().to_string(),
            result,
        });
    }
    Ok(out.stdout_str())
}

impl Module for Iptables {
    const NAME: &'static str = "iptables";
    const DOC_SHORT: &'static str =
        "Manage one iptables rule, a chain's policy, a flush or a user chain.";
    const DOC_LONG: &'static str = r##"ansible.builtin's `iptables`, with the host's `iptables`/`ip6tables`. A rule is
checked with `iptables -C` and appended (`-A`), inserted (`-I`) or deleted (`-D`). Nothing is
saved: use `iptables-save` to keep rules across reboots."##;
    const DOC_EXAMPLE: &'static str = r##"- iptables:
    chain: INPUT
    protocol: tcp
    destination_port: "22"
    ctstate: NEW
    jump: ACCEPT
    comment: ssh
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("rule", "The rule's iptables words."),
        ("table", "The table."),
        ("chain", "The chain."),
        ("state", "The task's `state`."),
        ("flush", "Whether the task flushed."),
        ("ip_version", "`ipv4` or `ipv6`."),
        ("chain_management", "The task's `chain_management`."),
    ];
    type Params = IptablesParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Self::check(p)?;
        let as_given = construct_rule(p, p.jump.as_deref());
        let mut plan = Plan::default();
        let r = &mut plan.result;
        r.insert("ip_version".into(), json!(p.ip_version.word()));
        r.insert("table".into(), json!(p.table.word()));
        r.insert("chain".into(), json!(p.chain));
        r.insert("flush".into(), json!(p.flush));
        r.insert("rule".into(), json!(as_given.join(" ")));
        r.insert("state".into(), json!(p.state.word()));
        r.insert("chain_management".into(), json!(p.chain_management));
        let bin = Self::bin(p);
        let found = host.run(&format!("command -v {bin}"), None)?;
        if !found.success() {
            return Err(ModuleError::failed(format!(
                "Failed to find required executable \"{bin}\" in paths: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            )));
        }
        let jump = if p.log_prefix.is_some() || p.log_level.is_some() {
            match p.jump.as_deref() {
                None => Some("LOG"),
                Some("LOG") => Some("LOG"),
                Some(_) => {
                    return Err(ModuleError::failed(
                        "Logging options can only be used with the LOG jump target.",
                    ))
                }
            }
        } else {
            p.jump.as_deref()
        };
        let rule = construct_rule(p, jump);
        let mut list = Self::base(p, "-L");
        if p.numeric {
            list.push("--numeric".into());
        }
        let chain = p.chain.clone().unwrap_or_default();
        let todo: Option<Vec<String>>;
        if p.flush {
            plan.changes.push(match &p.chain {
                Some(c) => format!("flush chain {c} of table {}", p.table.word()),
                None => format!("flush table {}", p.table.word()),
            });
            todo = Some(Self::base(p, "-F"));
        } else if let Some(policy) = p.policy {
            let out = run_or_fail(host, &list)?;
            let first = out.lines().next().unwrap_or_default();
            let current = first
                .split_once("(policy ")
                .and_then(|(_, rest)| rest.split_once(|c: char| !c.is_ascii_uppercase()))
                .map(|(w, _)| w.to_string())
                .filter(|w| !w.is_empty());
            let Some(current) = current else {
                return Err(ModuleError::failed("Can't detect current policy"));
            };
            if current != policy.word() {
                plan.changes
                    .push(format!("policy of {chain}: {current} -> {}", policy.word()));
                let mut c = Self::base(p, "-P");
                c.push(policy.word().into());
                todo = Some(c);
            } else {
                todo = None;
            }
        } else if as_given.is_empty() {
            let there = host
                .run(
                    &format!("LC_ALL=C {} >/dev/null 2>&1", join(list.as_slice())),
                    None,
                )?
                .success();
            let wanted = p.state == IptState::Present;
            if there != wanted {
                let verb = if wanted { "create" } else { "delete" };
                plan.changes.push(format!("{verb} chain {chain}"));
                todo = p
                    .chain_management
                    .then(|| Self::base(p, if wanted { "-N" } else { "-X" }));
            } else {
                todo = None;
            }
        } else {
            let mut check = Self::base(p, "-C");
            check.extend(rule.iter().cloned());
            let present = host
                .run(
                    &format!("LC_ALL=C {} >/dev/null 2>&1", join(check.as_slice())),
                    None,
                )?
                .success();
            let wanted = p.state == IptState::Present;
            if present != wanted {
                let words = rule.join(" ");
                let c = if !wanted {
                    plan.changes
                        .push(format!("delete rule from {chain}: {words}"));
                    Self::base(p, "-D")
                } else if p.action == IptAction::Insert {
                    plan.changes
                        .push(format!("insert rule into {chain}: {words}"));
                    let mut c = Self::base(p, "-I");
                    if let Some(n) = p.rule_num.as_ref().filter(|n| !n.is_empty()) {
                        c.push(n.clone());
                    }
                    c
                } else {
                    plan.changes
                        .push(format!("append rule to {chain}: {words}"));
                    Self::base(p, "-A")
                };
                let mut c = c;
                c.extend(rule);
                todo = Some(c);
            } else {
                todo = None;
            }
        }
        plan.keep_state(&Todo { argv: todo })?;
        Ok(plan)
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let todo: Todo = plan.state_as()?;
        if let Some(argv) = &todo.argv {
            run_or_fail(host, argv)?;
        }
        let mut result = plan.result;
        result.insert("changed".into(), Value::Bool(true));
        result.insert("failed".into(), Value::Bool(false));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exec, FakeHost, Match};
    use crate::DynModule;

    /// A chain's rules (as their words after the chain) and policies.
    #[derive(Default)]
    struct Fw {
        rules: Vec<String>,
        policy: String,
        chains: Vec<String>,
    }

    fn fake() -> FakeHost<Fw> {
        FakeHost::with_state(Fw {
            policy: "ACCEPT".into(),
            chains: vec!["INPUT".into()],
            ..Fw::default()
        })
        .handle(Match::prefix("command -v"), |_, _, _| {
            Ok(exec(0, "/usr/sbin/iptables\n", ""))
        })
        .handle(Match::prefix("LC_ALL=C iptables"), |h, script, _| {
            let line = script
                .trim_start_matches("LC_ALL=C ")
                .split(" >/dev/null")
                .next()
                .unwrap_or_default();
            let w = crate::shell_quote::split(line).unwrap_or_default();
            let rest = w.get(5..).map(crate::shell_quote::join).unwrap_or_default();
            let chain = w.get(4).cloned().unwrap_or_default();
            let rc = match w[3].as_str() {
                "-C" => i32::from(!h.rules.contains(&rest)),
                "-A" => {
                    h.rules.push(rest);
                    0
                }
                "-I" => {
                    let rest = w.get(6..).map(crate::shell_quote::join).unwrap_or_default();
                    h.rules.insert(0, rest);
                    0
                }
                "-D" => {
                    h.rules.retain(|r| *r != rest);
                    0
                }
                "-F" => {
                    h.rules.clear();
                    0
                }
                "-P" => {
                    h.policy = w[5].clone();
                    0
                }
                "-N" => {
                    h.chains.push(chain);
                    0
                }
                "-X" => {
                    h.chains.retain(|c| *c != chain);
                    0
                }
                "-L" => {
                    if !h.chains.contains(&chain) {
                        return Ok(exec(
                            1,
                            "",
                            "iptables: No chain/target/match by that name.\n",
                        ));
                    }
                    return Ok(exec(
                        0,
                        format!(
                            "Chain {chain} (policy {})\ntarget prot opt source destination\n",
                            h.policy
                        ),
                        "",
                    ));
                }
                _ => 1,
            };
            Ok(exec(rc, "", ""))
        })
    }

    fn converge(params: &Value, h: &mut FakeHost<Fw>) -> Outcome {
        let plan = DynModule::plan(&Iptables, params, h).expect("plan");
        assert!(!plan.is_empty());
        let out = DynModule::apply(&Iptables, params, plan, h).expect("apply");
        let again = DynModule::plan(&Iptables, params, h).expect("plan again");
        assert!(again.is_empty(), "{:?}", again.changes);
        out
    }

    #[test]
    fn the_rule_words_are_ansibles() {
        let p: IptablesParams = serde_json::from_value(json!({
            "chain": "INPUT", "protocol": "tcp", "source": "!10.0.0.0/8", "destination_port": "22",
            "ctstate": ["NEW", "ESTABLISHED"], "jump": "ACCEPT", "comment": "ssh in", "in_interface": "eth0",
            "limit": "5/min", "syn": "match"})).expect("params");
        assert_eq!(
            construct_rule(&p, p.jump.as_deref()).join(" "),
            "-p tcp ! -s 10.0.0.0/8 -j ACCEPT -i eth0 --destination-port 22 --syn -m conntrack --ctstate NEW,ESTABLISHED -m limit --limit 5/min -m comment --comment ssh in"
        );
        let p: IptablesParams = serde_json::from_value(json!({
            "chain": "INPUT", "protocol": "tcp", "reject_with": "tcp-reset", "destination_ports": ["80", "443"],
            "uid_owner": "0", "match": "state", "ctstate": "NEW"})).expect("params");
        assert_eq!(
            construct_rule(&p, None).join(" "),
            "-p tcp -m state -m multiport --dports 80,443 --state NEW -m owner --uid-owner 0 -j REJECT --reject-with tcp-reset"
        );
    }

    #[test]
    fn a_rule_is_added_once_and_removed() {
        let mut h = fake();
        let p =
            json!({"chain": "INPUT", "protocol": "tcp", "destination_port": 22, "jump": "ACCEPT"});
        let out = converge(&p, &mut h);
        assert_eq!(out.result["rule"], "-p tcp -j ACCEPT --destination-port 22");
        assert_eq!(h.rules.len(), 1);
        let absent = json!({"chain": "INPUT", "protocol": "tcp", "destination_port": 22, "jump": "ACCEPT", "state": "absent"});
        converge(&absent, &mut h);
        assert!(h.rules.is_empty());
        let ins = json!({"chain": "INPUT", "source": "1.2.3.4", "jump": "DROP", "action": "insert", "rule_num": "1"});
        converge(&ins, &mut h);
        // Check mode: the plan alone changes nothing.
        let plan = DynModule::plan(
            &Iptables,
            &json!({"chain": "INPUT", "jump": "LOG", "log_prefix": "x "}),
            &mut h,
        )
        .expect("plan");
        assert!(!plan.is_empty());
        assert_eq!(h.rules.len(), 1);
    }

    #[test]
    fn policy_flush_and_chains() {
        let mut h = fake();
        converge(&json!({"chain": "INPUT", "policy": "DROP"}), &mut h);
        assert_eq!(h.policy, "DROP");
        converge(&json!({"chain": "WEB", "chain_management": true}), &mut h);
        assert!(h.chains.contains(&"WEB".to_string()));
        converge(
            &json!({"chain": "WEB", "chain_management": true, "state": "absent"}),
            &mut h,
        );
        assert!(!h.chains.contains(&"WEB".to_string()));
        let flush = json!({"chain": "INPUT", "flush": true});
        let plan = DynModule::plan(&Iptables, &flush, &mut h).expect("plan");
        assert!(!plan.is_empty(), "a flush is always a change");
        let e = DynModule::plan(&Iptables, &json!({"flush": true, "policy": "DROP"}), &mut h)
            .expect_err("exclusive");
        assert!(matches!(e, ModuleError::Params(_)));
        let e = DynModule::plan(
            &Iptables,
            &json!({"chain": "INPUT", "jump": "DROP", "log_prefix": "x"}),
            &mut h,
        )
        .expect_err("log needs LOG");
        assert_eq!(
            e.to_string(),
            "Logging options can only be used with the LOG jump target."
        );
    }
}
