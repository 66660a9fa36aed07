//! `ufw`: the Uncomplicated Firewall, as community.general's `ufw` drives
//! it: its state (`enabled`, `disabled`, `reloaded`, `reset`), a default
//! policy, logging, and one rule per task.
//!
//! The plan is one probe: `ufw status` (active or not), the default
//! policies from `/etc/default/ufw`, `LOGLEVEL` from `/etc/ufw/ufw.conf`,
//! and for a rule `ufw --dry-run RULE` with the current rule tuples. The
//! dry run says "Skipping ..." for a rule that is already there, and
//! otherwise prints the rules files as they would be: a change when their
//! tuples differ from the current ones (on the rule address's family when
//! it names one), as the collection's check mode decides. So deleting an
//! absent rule is no change. Policies
//! and logging are read from ufw's own files rather than from `ufw status
//! verbose`, which shows them only while the firewall is active.
//!
//! Apply runs the commands in Ansible's order (state, default, rule,
//! logging), each as ufw's argv with `LANG=C`, and reports a change when
//! `ufw status verbose` or the rule tuples of the user rules files differ
//! from before (or for `reloaded`/`reset`, which always count), as
//! Ansible's module decides.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::{de_bool, de_opt_string};
use crate::probe::tagged;
use crate::shell_quote::join;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// `state`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UfwState {
    /// The firewall is on and enabled at boot (`ufw --force enable`).
    Enabled,
    /// The firewall is off and disabled at boot (`ufw disable`).
    Disabled,
    /// Reload the firewall (always a change).
    Reloaded,
    /// Disable the firewall and reset it to the installation defaults (always a change).
    Reset,
}

/// `default`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Accept.
    Allow,
    /// Drop.
    Deny,
    /// Reject.
    Reject,
}

impl Policy {
    fn word(self) -> &'static str {
        match self {
            Policy::Allow => "allow",
            Policy::Deny => "deny",
            Policy::Reject => "reject",
        }
    }

    /// The iptables target `/etc/default/ufw` keeps for it.
    fn target(self) -> &'static str {
        match self {
            Policy::Allow => "ACCEPT",
            Policy::Deny => "DROP",
            Policy::Reject => "REJECT",
        }
    }
}

/// `rule`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Accept matching traffic.
    Allow,
    /// Drop it.
    Deny,
    /// Accept, but refuse addresses that connect too often.
    Limit,
    /// Refuse it with an error to the sender.
    Reject,
}

impl RuleAction {
    fn word(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
            RuleAction::Limit => "limit",
            RuleAction::Reject => "reject",
        }
    }
}

/// `logging`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Logging {
    /// Logging on, at whatever level it has (`low` when it was off).
    On,
    /// Logging off.
    Off,
    /// Level `low`.
    Low,
    /// Level `medium`.
    Medium,
    /// Level `high`.
    High,
    /// Level `full`.
    Full,
}

impl Logging {
    fn word(self) -> &'static str {
        match self {
            Logging::On => "on",
            Logging::Off => "off",
            Logging::Low => "low",
            Logging::Medium => "medium",
            Logging::High => "high",
            Logging::Full => "full",
        }
    }
}

/// `direction`'s values: `in`/`out` for rules, the long forms for `default`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Incoming traffic (rules).
    In,
    /// Incoming traffic (`default`).
    Incoming,
    /// Outgoing traffic (rules).
    Out,
    /// Outgoing traffic (`default`).
    Outgoing,
    /// Forwarded traffic (`default`).
    Routed,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Incoming => "incoming",
            Direction::Out => "out",
            Direction::Outgoing => "outgoing",
            Direction::Routed => "routed",
        }
    }
}

/// `insert_relative_to`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum InsertRelativeTo {
    /// `insert` is the rule number itself.
    #[default]
    Zero,
    /// Counted from the first IPv4 rule (not supported).
    FirstIpv4,
    /// Counted from the last IPv4 rule (not supported).
    LastIpv4,
    /// Counted from the first IPv6 rule (not supported).
    FirstIpv6,
    /// Counted from the last IPv6 rule (not supported).
    LastIpv6,
}

/// `proto`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Any protocol.
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// IPv6 encapsulation.
    Ipv6,
    /// IPsec ESP.
    Esp,
    /// IPsec AH.
    Ah,
    /// GRE.
    Gre,
    /// IGMP.
    Igmp,
}

impl Proto {
    fn word(self) -> &'static str {
        match self {
            Proto::Any => "any",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Ipv6 => "ipv6",
            Proto::Esp => "esp",
            Proto::Ah => "ah",
            Proto::Gre => "gre",
            Proto::Igmp => "igmp",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `ufw`: what `herd doc` shows, and what the parser takes.
pub struct UfwParams {
    /// The firewall's state. At least one of `state`, `default`, `rule` and `logging` is given.
    pub state: Option<UfwState>,
    /// The default policy for `direction` (incoming when unset).
    #[serde(alias = "policy")]
    pub default: Option<Policy>,
    /// Logging on, off, or at a level.
    pub logging: Option<Logging>,
    /// For `default`: `incoming`, `outgoing` or `routed`; for a rule: `in` or `out`.
    pub direction: Option<Direction>,
    /// Delete the rule instead of adding it.
    #[serde(default, deserialize_with = "de_bool")]
    pub delete: bool,
    /// A routed (forwarding) rule.
    #[serde(default, deserialize_with = "de_bool")]
    pub route: bool,
    /// Insert the rule as this rule number instead of appending it.
    #[serde(default, deserialize_with = "crate::params::de_opt_u64")]
    pub insert: Option<u64>,
    /// What `insert` counts from; only `zero` is supported.
    #[serde(default)]
    pub insert_relative_to: InsertRelativeTo,
    /// A rule: what to do with the traffic it matches.
    pub rule: Option<RuleAction>,
    /// The interface the rule applies to (needs `direction`).
    #[serde(default, alias = "if", deserialize_with = "de_opt_string")]
    pub interface: Option<String>,
    /// The incoming interface (not with `direction`).
    #[serde(default, alias = "if_in", deserialize_with = "de_opt_string")]
    pub interface_in: Option<String>,
    /// The outgoing interface (not with `direction`).
    #[serde(default, alias = "if_out", deserialize_with = "de_opt_string")]
    pub interface_out: Option<String>,
    /// Log new connections the rule matches.
    #[serde(default, deserialize_with = "de_bool")]
    pub log: bool,
    /// Source address or network; `any` when unset.
    #[serde(
        default,
        alias = "from",
        alias = "src",
        deserialize_with = "de_opt_string"
    )]
    pub from_ip: Option<String>,
    /// Source port or range.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub from_port: Option<String>,
    /// Destination address or network; `any` when unset.
    #[serde(
        default,
        alias = "to",
        alias = "dest",
        deserialize_with = "de_opt_string"
    )]
    pub to_ip: Option<String>,
    /// Destination port or range.
    #[serde(default, alias = "port", deserialize_with = "de_opt_string")]
    pub to_port: Option<String>,
    /// The protocol.
    #[serde(alias = "protocol")]
    pub proto: Option<Proto>,
    /// An application profile (`/etc/ufw/applications.d`), e.g. `OpenSSH`.
    #[serde(default, alias = "app", deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    /// A comment kept with the rule.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub comment: Option<String>,
}

/// The `ufw` module.
pub struct Ufw;

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Ufw::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// The combinations Ansible's argument spec and module refuse.
fn check(p: &UfwParams) -> Result<(), ModuleError> {
    if p.state.is_none() && p.default.is_none() && p.rule.is_none() && p.logging.is_none() {
        return Err(invalid(
            "state",
            "one of state, default, rule or logging is required",
        ));
    }
    let exclusive = [p.name.is_some(), p.proto.is_some(), p.logging.is_some()];
    if exclusive.iter().filter(|b| **b).count() > 1 {
        return Err(invalid(
            "name",
            "name, proto and logging are mutually exclusive",
        ));
    }
    if p.direction.is_some() && (p.interface_in.is_some() || p.interface_out.is_some()) {
        return Err(invalid(
            "direction",
            "direction is mutually exclusive with interface_in and interface_out",
        ));
    }
    if p.interface.is_some() && p.direction.is_none() {
        return Err(invalid("interface", "interface needs direction"));
    }
    if p.default.is_some() && matches!(p.direction, Some(Direction::In | Direction::Out)) {
        return Err(invalid(
            "direction",
            "for default, direction must be incoming, outgoing or routed",
        ));
    }
    if p.rule.is_some() {
        if matches!(
            p.direction,
            Some(Direction::Incoming | Direction::Outgoing | Direction::Routed)
        ) {
            return Err(invalid(
                "direction",
                "for rules, direction must be in or out",
            ));
        }
        if !p.route && p.interface_in.is_some() && p.interface_out.is_some() {
            return Err(invalid(
                "interface_in",
                "only route rules can combine interface_in and interface_out",
            ));
        }
        if p.insert.is_some() && p.insert_relative_to != InsertRelativeTo::Zero {
            return Err(invalid("insert_relative_to", "only `zero` is supported"));
        }
    }
    Ok(())
}

/// The rule's words after `ufw [--dry-run]`, in the long form Ansible
/// builds: `[route] [delete] [insert N] ACTION [in|out] [on IF] [in on IF]
/// [out on IF] [log] from ADDR [port P] to ADDR [port P] [proto P] [app
/// NAME] [comment C]`.
fn rule_words(p: &UfwParams, action: RuleAction) -> Vec<String> {
    let mut w: Vec<String> = Vec::new();
    let mut push = |words: &[&str]| w.extend(words.iter().map(|s| (*s).to_string()));
    if p.route {
        push(&["route"]);
    }
    if p.delete {
        push(&["delete"]);
    } else if let Some(n) = p.insert {
        push(&["insert", n.to_string().as_str()]);
    }
    push(&[action.word()]);
    if let Some(d) = p.direction {
        push(&[d.word()]);
    }
    if let Some(i) = &p.interface {
        push(&["on", i.as_str()]);
    }
    if let Some(i) = &p.interface_in {
        push(&["in", "on", i.as_str()]);
    }
    if let Some(i) = &p.interface_out {
        push(&["out", "on", i.as_str()]);
    }
    if p.log {
        push(&["log"]);
    }
    push(&["from", p.from_ip.as_deref().unwrap_or("any")]);
    if let Some(port) = &p.from_port {
        push(&["port", port.as_str()]);
    }
    push(&["to", p.to_ip.as_deref().unwrap_or("any")]);
    if let Some(port) = &p.to_port {
        push(&["port", port.as_str()]);
    }
    if let Some(proto) = p.proto {
        push(&["proto", proto.word()]);
    }
    if let Some(app) = &p.name {
        push(&["app", app.as_str()]);
    }
    if let Some(c) = &p.comment {
        push(&["comment", c.as_str()]);
    }
    w
}

/// The commands apply runs, in Ansible's order: state, default, rule, logging.
fn commands(p: &UfwParams) -> Vec<Vec<String>> {
    let ufw = |words: &[&str]| -> Vec<String> {
        std::iter::once("ufw")
            .chain(words.iter().copied())
            .map(str::to_string)
            .collect()
    };
    let mut cmds = Vec::new();
    if let Some(s) = p.state {
        cmds.push(match s {
            UfwState::Enabled => ufw(&["-f", "enable"]),
            UfwState::Disabled => ufw(&["-f", "disable"]),
            UfwState::Reloaded => ufw(&["-f", "reload"]),
            UfwState::Reset => ufw(&["-f", "reset"]),
        });
    }
    if let Some(d) = p.default {
        let mut c = ufw(&["default", d.word()]);
        if let Some(dir) = p.direction {
            c.push(dir.word().to_string());
        }
        cmds.push(c);
    }
    if let Some(r) = p.rule {
        let mut c = ufw(&[]);
        c.extend(rule_words(p, r));
        cmds.push(c);
    }
    if let Some(l) = p.logging {
        cmds.push(ufw(&["logging", l.word()]));
    }
    cmds
}

/// What the probe found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    active: bool,
    /// `/etc/default/ufw`'s targets: incoming, outgoing, routed.
    policies: [String; 3],
    /// `LOGLEVEL` of ufw.conf (`off`, `low`, ...).
    loglevel: String,
    /// `ufw --dry-run RULE`'s output, when the task has a rule.
    dry_run: Option<String>,
    /// The rule tuples of the user rules files now, when the task has a
    /// rule (what its dry run is compared with).
    tuples: Vec<String>,
}

fn value_of(file: &str, key: &str) -> String {
    format!(
        "sed -n 's/^{key}=\"\\{{0,1\\}}\\([^\"]*\\)\"\\{{0,1\\}}[[:space:]]*$/\\1/p' {file} 2>/dev/null | tail -n 1"
    )
}

fn probe(p: &UfwParams, host: &mut dyn Host) -> Result<Found, ModuleError> {
    let mut script = String::from(
        "export LANG=C\n\
         command -v ufw >/dev/null 2>&1 || { echo NOUFW yes; exit 0; }\n\
         echo \"STATUS $(ufw status | head -n 1)\"\n",
    );
    for (tag, key) in [
        ("IN", "DEFAULT_INPUT_POLICY"),
        ("OUT", "DEFAULT_OUTPUT_POLICY"),
        ("FWD", "DEFAULT_FORWARD_POLICY"),
    ] {
        script.push_str(&format!(
            "echo \"{tag} $({})\"\n",
            value_of("/etc/default/ufw", key)
        ));
    }
    script.push_str(&format!(
        "echo \"LOG $({})\"\n",
        value_of("/etc/ufw/ufw.conf", "LOGLEVEL")
    ));
    if let Some(action) = p.rule {
        let mut argv = vec!["ufw".to_string(), "--dry-run".to_string()];
        argv.extend(rule_words(p, action));
        script.push_str(&format!(
            "echo DRY\n{} 2>&1 | sed 's/^/| /'\n{RULE_TUPLES} | sed 's/^/~ /'\n",
            join(argv.as_slice())
        ));
    }
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    if tagged(&text, "NOUFW").is_some() {
        return Err(ModuleError::failed(
            "ufw is not installed on the host (no `ufw` in PATH)",
        ));
    }
    let get = |tag: &str| tagged(&text, tag).unwrap_or_default().trim().to_string();
    let dry_run = p.rule.map(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("| ").or_else(|| (l == "|").then_some("")))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let tuples = text
        .lines()
        .filter_map(|l| l.strip_prefix("~ "))
        .map(str::to_string)
        .collect();
    Ok(Found {
        // "Status: inactive" also contains "active": compare the word.
        active: get("STATUS") == "Status: active",
        policies: [get("IN"), get("OUT"), get("FWD")],
        loglevel: get("LOG"),
        dry_run,
        tuples,
    })
}

/// Whether a dry run of a rule says ufw would change nothing: every line
/// it printed is a "Skipping ..." (the rule is there) or, for `delete`,
/// "Could not delete non-existent rule".
fn dry_run_is_noop(out: &str) -> bool {
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    !lines.is_empty()
        && lines.iter().all(|l| {
            l.starts_with("Skipping") || l.starts_with("Could not delete non-existent rule")
        })
}

/// An address family, as the collection tells one from an address or a
/// rule tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of a rule's `from_ip`/`to_ip` (`any` has none).
    fn of_address(addr: Option<&str>) -> Option<Family> {
        let ip = addr?.split('/').next()?;
        if ip.parse::<std::net::Ipv4Addr>().is_ok() {
            Some(Family::V4)
        } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
            Some(Family::V6)
        } else {
            None
        }
    }

    /// Whether a rule tuple names an address of this family.
    fn in_tuple(self, tuple: &str) -> bool {
        tuple
            .split_whitespace()
            .any(|w| Family::of_address(Some(w)) == Some(self))
    }
}

/// Whether a rule's dry run shows a change, decided as the collection's
/// check mode decides: not when ufw only skipped it; otherwise when the
/// rule tuples the dry run prints (the rules files as they would be)
/// differ from the current ones, compared only on the family of the
/// rule's address when it names one. So deleting an absent rule, whose
/// dry run prints the rules unchanged, is no change.
fn dry_run_changes(p: &UfwParams, dry: &str, current: &[String]) -> bool {
    if dry_run_is_noop(dry) {
        return false;
    }
    // An IPv4 address on either side wins, as in the collection.
    let named = [p.from_ip.as_deref(), p.to_ip.as_deref()].map(Family::of_address);
    let family = [Family::V4, Family::V6]
        .into_iter()
        .find(|f| named.contains(&Some(*f)));
    let keep = |t: &&str| family.is_none_or(|f| f.in_tuple(t));
    let would: Vec<&str> = dry
        .lines()
        .filter(|l| l.starts_with("### tuple"))
        .filter(keep)
        .collect();
    let now: Vec<&str> = current.iter().map(String::as_str).filter(keep).collect();
    would != now
}

/// One line per change the task would make, from what the probe found.
fn changes(p: &UfwParams, found: &Found) -> Vec<String> {
    let mut changes = Vec::new();
    match p.state {
        Some(UfwState::Enabled) if !found.active => changes.push("enable the firewall".into()),
        Some(UfwState::Disabled) if found.active => changes.push("disable the firewall".into()),
        Some(UfwState::Reloaded) => changes.push("reload the firewall".into()),
        Some(UfwState::Reset) => changes.push("reset the firewall".into()),
        _ => {}
    }
    if let Some(d) = p.default {
        let (i, name) = match p.direction {
            Some(Direction::Outgoing) => (1, "outgoing"),
            Some(Direction::Routed) => (2, "routed"),
            _ => (0, "incoming"),
        };
        if found.policies[i] != d.target() {
            changes.push(format!("default {name} policy -> {}", d.word()));
        }
    }
    if let (Some(action), Some(dry)) = (p.rule, &found.dry_run) {
        if dry_run_changes(p, dry, &found.tuples) {
            let what = if p.delete { "delete" } else { "add" };
            changes.push(format!("{what} rule: {}", rule_words(p, action).join(" ")));
        }
    }
    if let Some(l) = p.logging {
        let off = found.loglevel.is_empty() || found.loglevel == "off";
        let differs = match l {
            Logging::On => off,
            Logging::Off => !off,
            level => found.loglevel != level.word(),
        };
        if differs {
            changes.push(format!("logging -> {}", l.word()));
        }
    }
    changes
}

/// The command listing the rule tuples of every user rules file ufw may
/// keep, in the collection's order (a macro, so both scripts below are
/// built at compile time).
macro_rules! rule_tuples {
    () => {
        "grep -h '^### tuple' /lib/ufw/user.rules /lib/ufw/user6.rules /etc/ufw/user.rules \
         /etc/ufw/user6.rules /var/lib/ufw/user.rules /var/lib/ufw/user6.rules 2>/dev/null"
    };
}
const RULE_TUPLES: &str = rule_tuples!();

/// `ufw status verbose` and the rule tuples: what Ansible compares before
/// and after to decide `changed`.
const SNAPSHOT: &str = concat!(
    "export LANG=C\nufw status verbose\necho '--- rules'\n",
    rule_tuples!(),
    "\nexit 0\n"
);

impl Module for Ufw {
    const NAME: &'static str = "ufw";
    const DOC_SHORT: &'static str =
        "Manage the Uncomplicated Firewall: state, default policies, logging and rules.";
    const DOC_LONG: &'static str = r##"community.general's `ufw`. `ufw` must be installed on the host.
A task may set the state, a default policy, a rule and logging at once; they run in that order.

A rule is planned with `ufw --dry-run`: ufw's "Skipping adding existing rule" means there is
nothing to do, and otherwise the rule tuples it prints are compared with the current ones (so
deleting an absent rule is nothing to do). The task reports a change when `ufw status verbose` or the rules files' rule
tuples differ afterwards; `reloaded` and `reset` always report one."##;
    const DOC_EXAMPLE: &'static str = r##"- ufw:
    rule: allow
    name: OpenSSH
- ufw:
    rule: allow
    port: "443"
    proto: tcp
- ufw:
    state: enabled
    policy: deny
    direction: incoming
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("commands", "The ufw commands run."),
        ("msg", "`ufw status verbose` after the change."),
    ];
    type Params = UfwParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        check(p)?;
        let found = probe(p, host)?;
        let cmds: Vec<String> = commands(p).iter().map(|c| join(c.as_slice())).collect();
        let mut plan = Plan {
            changes: changes(p, &found),
            ..Plan::default()
        };
        plan.result.insert("commands".into(), json!(cmds));
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let before = host.run(SNAPSHOT, None)?.stdout_str();
        let mut ran = Vec::new();
        for argv in commands(p) {
            let cmd = join(argv.as_slice());
            let out = host.run(&format!("LANG=C {cmd}"), None)?;
            ran.push(cmd);
            if !out.success() {
                let err = out.stderr_str();
                let msg = if err.trim().is_empty() {
                    out.stdout_str()
                } else {
                    err
                };
                let mut result = Map::new();
                result.insert("commands".into(), json!(ran));
                return Err(ModuleError::Failed {
                    msg: msg.trim_end().to_string(),
                    result,
                });
            }
        }
        let after = host.run(SNAPSHOT, None)?.stdout_str();
        let changed =
            before != after || matches!(p.state, Some(UfwState::Reloaded | UfwState::Reset));
        let status = after
            .split("--- rules")
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_string();
        let mut result = plan.result;
        result.insert("commands".into(), json!(ran));
        result.insert("changed".into(), Value::Bool(changed));
        result.insert("msg".into(), json!(status));
        Ok(Outcome::changed_if(changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHost, Match};
    use crate::DynModule;

    fn dplan(p: &Value, h: &mut dyn Host) -> Result<Plan, ModuleError> {
        DynModule::plan(&Ufw, p, h)
    }

    fn dapply(p: &Value, plan: Plan, h: &mut dyn Host) -> Result<Outcome, ModuleError> {
        DynModule::apply(&Ufw, p, plan, h)
    }

    /// A ufw as far as this module sees it: active or not, the three
    /// policies, the log level and the rules (as their argv after the
    /// action's options).
    #[derive(Default)]
    struct Fw {
        active: bool,
        policies: [&'static str; 3],
        loglevel: &'static str,
        added: Vec<String>,
    }

    /// The rule's identity: its words without route/delete/insert and
    /// without the dry-run flag.
    fn rule_key(words: &[String]) -> String {
        let mut w: Vec<&str> = words.iter().map(String::as_str).collect();
        w.retain(|s| *s != "--dry-run" && *s != "delete");
        if w.first() == Some(&"insert") {
            w.drain(..2);
        }
        w.join(" ")
    }

    fn ufw_fake(fw: Fw) -> FakeHost<Fw> {
        FakeHost::with_state(fw).handle(Match::contains("ufw"), |h, script, _| {
            let mut out = String::new();
            if script.contains("echo \"STATUS") {
                out.push_str(&format!(
                    "STATUS Status: {}\nIN {}\nOUT {}\nFWD {}\nLOG {}\n",
                    if h.active { "active" } else { "inactive" },
                    h.policies[0],
                    h.policies[1],
                    h.policies[2],
                    h.loglevel
                ));
                if let Some(dry) = script.lines().find(|l| l.starts_with("ufw --dry-run")) {
                    let words = crate::shell_quote::split(dry.split(" 2>&1").next().unwrap_or(""))
                        .unwrap_or_default();
                    let key = rule_key(&words[2..]);
                    let delete = words.contains(&"delete".to_string());
                    out.push_str("DRY\n");
                    // As ufw's dry run: a skip for a rule that is there,
                    // else the rules as they would be (for deleting an
                    // absent rule, as they are).
                    if !delete && h.added.contains(&key) {
                        out.push_str("| Skipping adding existing rule\n");
                    } else {
                        let mut would = h.added.clone();
                        would.retain(|r| !delete || *r != key);
                        if !delete {
                            would.push(key);
                        }
                        for r in would {
                            out.push_str(&format!("| ### tuple ### {r}\n| Rules updated\n"));
                        }
                    }
                    for r in &h.added {
                        out.push_str(&format!("~ ### tuple ### {r}\n"));
                    }
                }
                return Ok(crate::testing::exec(0, out, ""));
            }
            if script.contains("ufw status verbose") {
                out.push_str(&format!(
                    "Status: {}\nLogging: {}\nDefault: {:?}\n--- rules\n",
                    if h.active { "active" } else { "inactive" },
                    h.loglevel,
                    h.policies
                ));
                for r in &h.added {
                    out.push_str(&format!("### tuple ### {r}\n"));
                }
                return Ok(crate::testing::exec(0, out, ""));
            }
            let cmd = script.strip_prefix("LANG=C ").unwrap_or(script);
            let words = crate::shell_quote::split(cmd).unwrap_or_default();
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            match words.as_slice() {
                ["ufw", "-f", "enable"] => h.active = true,
                ["ufw", "-f", "disable"] => h.active = false,
                ["ufw", "default", policy, rest @ ..] => {
                    let i = match rest.first() {
                        Some(&"outgoing") => 1,
                        Some(&"routed") => 2,
                        _ => 0,
                    };
                    h.policies[i] = match *policy {
                        "allow" => "ACCEPT",
                        "reject" => "REJECT",
                        _ => "DROP",
                    };
                }
                ["ufw", "logging", level] => {
                    h.loglevel = match *level {
                        "on" => "low",
                        "low" => "low",
                        "medium" => "medium",
                        "high" => "high",
                        "full" => "full",
                        _ => "off",
                    };
                }
                ["ufw", rest @ ..] => {
                    let words: Vec<String> = rest.iter().map(|s| (*s).to_string()).collect();
                    let key = rule_key(&words);
                    if words.iter().any(|w| w == "delete") {
                        h.added.retain(|r| *r != key);
                    } else if !h.added.contains(&key) {
                        h.added.push(key);
                    }
                }
                _ => {}
            }
            Ok(crate::testing::exec(0, "", ""))
        })
    }

    fn fresh() -> Fw {
        Fw {
            active: false,
            policies: ["DROP", "ACCEPT", "DROP"],
            loglevel: "low",
            added: Vec::new(),
        }
    }

    fn converge(params: &Value, fw: Fw) -> (Plan, Outcome, FakeHost<Fw>) {
        let mut h = ufw_fake(fw);
        let first = dplan(params, &mut h).expect("plan");
        assert!(!first.is_empty(), "expected changes");
        let out = dapply(params, first.clone(), &mut h).expect("apply");
        let again = dplan(params, &mut h).expect("plan again");
        assert!(again.is_empty(), "plan after apply: {:?}", again.changes);
        (first, out, h)
    }

    #[test]
    fn an_app_rule_is_added_once() {
        let params = json!({"rule": "allow", "name": "OpenSSH"});
        let (plan, out, h) = converge(&params, fresh());
        assert_eq!(
            plan.changes,
            ["add rule: allow from any to any app OpenSSH"]
        );
        assert!(out.changed);
        assert_eq!(h.added, ["allow from any to any app OpenSSH"]);
        assert_eq!(
            out.result["commands"],
            json!(["ufw allow from any to any app OpenSSH"])
        );
    }

    #[test]
    fn enabling_with_a_default_policy_enables_only() {
        // Debian's install default is already `deny` incoming.
        let params = json!({"state": "enabled", "policy": "deny", "direction": "incoming"});
        let (plan, out, h) = converge(&params, fresh());
        assert_eq!(plan.changes, ["enable the firewall"]);
        assert!(out.changed && h.active);
        let params = json!({"default": "allow", "direction": "outgoing"});
        let mut h = ufw_fake(fresh());
        let plan = dplan(&params, &mut h).expect("plan");
        assert!(plan.is_empty(), "{:?}", plan.changes);
        let params = json!({"default": "reject", "direction": "routed"});
        let (plan, ..) = converge(&params, fresh());
        assert_eq!(plan.changes, ["default routed policy -> reject"]);
    }

    #[test]
    fn a_port_rule_with_proto_and_comment_and_its_deletion() {
        let params = json!({"rule": "limit", "port": 22, "proto": "tcp", "comment": "ssh in",
                            "from": "10.0.0.0/8", "direction": "in", "interface": "eth0"});
        let (plan, ..) = converge(&params, fresh());
        assert_eq!(
            plan.changes,
            ["add rule: limit in on eth0 from 10.0.0.0/8 to any port 22 proto tcp comment ssh in"]
        );
        let mut fw = fresh();
        fw.added
            .push("allow from any to any port 80 proto tcp".into());
        let del = json!({"rule": "allow", "port": "80", "proto": "tcp", "delete": true});
        let (_, out, h) = converge(&del, fw);
        assert!(out.changed && h.added.is_empty());
    }

    #[test]
    fn deleting_an_absent_rule_is_no_change_even_in_check_mode() {
        // ufw's dry run of such a delete prints the rules unchanged and
        // "Rules updated", not "Could not delete ..." (ufw 0.36).
        let del = json!({"rule": "allow", "port": "8080", "proto": "tcp", "delete": true});
        for start in [
            Vec::new(),
            vec!["allow from any to any port 22 proto tcp".to_string()],
        ] {
            let mut fw = fresh();
            fw.added = start.clone();
            let mut h = ufw_fake(fw);
            let plan = dplan(&del, &mut h).expect("plan");
            assert!(plan.is_empty(), "{start:?}: {:?}", plan.changes);
        }
    }

    #[test]
    fn a_dry_run_is_compared_on_the_rule_address_family() {
        let v4 = "### tuple ### deny udp 5432 0.0.0.0/0 any 10.99.0.0/16 in";
        let v6 = "### tuple ### allow tcp 22 ::/0 any ::/0 in";
        assert_eq!(Family::of_address(Some("10.99.0.0/16")), Some(Family::V4));
        assert_eq!(Family::of_address(Some("fd00::1")), Some(Family::V6));
        assert_eq!(Family::of_address(Some("any")), None);
        assert!(Family::V4.in_tuple(v4) && !Family::V4.in_tuple(v6));
        assert!(Family::V6.in_tuple(v6) && !Family::V6.in_tuple(v4));
        let p = |v: Value| serde_json::from_value::<UfwParams>(v).expect("params");
        let from_v4 = p(json!({"rule": "deny", "from_ip": "10.99.0.0/16", "port": "5432"}));
        // A v4 rule whose dry run lists only the v4 file: the v6 tuple
        // now in place is not a difference, the new v4 tuple is.
        let current = [v6.to_string()];
        assert!(!dry_run_changes(&from_v4, "Rules updated\n", &current));
        assert!(dry_run_changes(
            &from_v4,
            &format!("{v4}\nRules updated\n"),
            &current
        ));
        assert!(!dry_run_changes(
            &from_v4,
            &format!("{v4}\nRules updated\n"),
            &[v4.to_string(), v6.to_string()]
        ));
        // Without an address every tuple counts.
        let any = p(json!({"rule": "allow", "port": "22", "proto": "tcp"}));
        assert!(dry_run_changes(&any, "Rules updated\n", &current));
        assert!(!dry_run_changes(
            &any,
            "Skipping adding existing rule\nSkipping adding existing rule (v6)\n",
            &[]
        ));
    }

    #[test]
    fn logging_levels_compare_with_ufw_conf() {
        let mut h = ufw_fake(fresh());
        let on = dplan(&json!({"logging": "on"}), &mut h).expect("plan");
        assert!(on.is_empty(), "low is on: {:?}", on.changes);
        let (plan, ..) = converge(&json!({"logging": "high"}), fresh());
        assert_eq!(plan.changes, ["logging -> high"]);
        let (plan, ..) = converge(&json!({"logging": "off"}), fresh());
        assert_eq!(plan.changes, ["logging -> off"]);
    }

    #[test]
    fn reloaded_always_changes_and_check_mode_changes_nothing() {
        let mut fw = fresh();
        fw.active = true;
        let mut h = ufw_fake(fw);
        let params = json!({"state": "reloaded"});
        let plan = dplan(&params, &mut h).expect("plan");
        assert_eq!(plan.changes, ["reload the firewall"]);
        let out = dapply(&params, plan, &mut h).expect("apply");
        assert!(out.changed);
        // A plan alone (check mode) runs no ufw command that changes anything.
        let mut h = ufw_fake(fresh());
        let plan = dplan(
            &json!({"rule": "allow", "name": "OpenSSH", "state": "enabled"}),
            &mut h,
        )
        .expect("plan");
        assert_eq!(plan.changes.len(), 2);
        assert!(h.added.is_empty() && !h.active);
        assert!(h.scripts.iter().all(|s| !s.starts_with("LANG=C ufw")));
    }

    #[test]
    fn refused_combinations_and_a_failing_command() {
        let mut h = ufw_fake(fresh());
        for bad in [
            json!({}),
            json!({"rule": "allow", "name": "OpenSSH", "proto": "tcp"}),
            json!({"rule": "allow", "interface": "eth0"}),
            json!({"rule": "allow", "direction": "incoming"}),
            json!({"default": "deny", "direction": "in"}),
            json!({"rule": "allow", "if_in": "a", "if_out": "b"}),
            json!({"rule": "allow", "insert": 1, "insert_relative_to": "last-ipv4"}),
        ] {
            let err = dplan(&bad, &mut h).expect_err("refused");
            assert!(matches!(err, ModuleError::Params(_)), "{bad}: {err}");
        }
        assert!(dplan(
            &json!({"rule": "allow", "if_in": "a", "if_out": "b", "route": true}),
            &mut h
        )
        .is_ok());
        let mut none = FakeHost::new().answer(Match::Any, 0, "NOUFW yes\n", "");
        let err = dplan(&json!({"state": "enabled"}), &mut none).expect_err("no ufw");
        assert!(err.to_string().contains("not installed"), "{err}");
        let mut failing = FakeHost::new()
            .answer(
                Match::prefix("LANG=C ufw allow"),
                1,
                "",
                "ERROR: Could not find a profile matching 'x'\n",
            )
            .answer(Match::Any, 0, "", "");
        let err = dapply(
            &json!({"rule": "allow", "name": "x"}),
            Plan::default(),
            &mut failing,
        )
        .expect_err("fails");
        assert_eq!(
            err.to_string(),
            "ERROR: Could not find a profile matching 'x'"
        );
    }
}
