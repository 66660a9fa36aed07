//! `systemd` (and its alias `systemd_service`) and `service`: start, stop,
//! restart, reload, enable, disable, mask and unmask systemd units.
//!
//! The plan is one probe: `systemctl show` of the unit (every property, so
//! the registered `status` is what Ansible returns) and `systemctl
//! is-enabled`. Apply runs the needed `systemctl` commands in Ansible's
//! order (daemon-reload, mask/unmask, enable/disable, then the state) in one
//! script.
//!
//! As in Ansible, `restarted` and `reloaded` always change, and a unit that
//! is not running is started rather than restarted or reloaded.
//!
//! Differences from Ansible: only the system scope is supported (`scope:
//! user`/`global` fail clearly); with a `name`, `daemon_reload` happens
//! only when something else changes or systemd says the unit file changed
//! on disk (`NeedDaemonReload`), and then counts as a change. On its own (no
//! `name`) it runs and reports no change, as in Ansible. A `static` unit counts as enabled and is left alone
//! by `enabled: false`. `service` only drives systemd: on a host without
//! systemd it fails and says so; `sleep`, `pattern`, `runlevel` and
//! `arguments` are accepted and ignored.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::{de_bool, de_opt_bool};
use crate::shell_quote::{join, quote};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// What state a unit should reach.
pub enum UnitState {
    /// Running (started if not).
    Started,
    /// Not running.
    Stopped,
    /// Restarted every run.
    Restarted,
    /// Reloaded every run.
    Reloaded,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `systemd` and `systemd_service`: what `herd doc` shows, and what the
/// parser takes.
pub struct SystemdParams {
    /// The unit (`nginx` means `nginx.service`).
    #[serde(alias = "service", alias = "unit")]
    pub name: Option<String>,
    /// `started`, `stopped`, `restarted` (always restarts) or `reloaded` (always reloads).
    pub state: Option<UnitState>,
    /// Start the unit at boot (`systemctl enable`/`disable`).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub enabled: Option<bool>,
    /// Mask or unmask the unit.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub masked: Option<bool>,
    /// Run `systemctl daemon-reload` first (with `name`: only when something else changes or
    /// the unit needs it).
    #[serde(default, alias = "daemon-reload", deserialize_with = "de_bool")]
    pub daemon_reload: bool,
    /// Run `systemctl daemon-reexec` first.
    #[serde(default, alias = "daemon-reexec", deserialize_with = "de_bool")]
    pub daemon_reexec: bool,
    /// Only `system` is supported.
    pub scope: Option<String>,
    /// Do not wait for the start or stop to finish (`--no-block`).
    #[serde(default, deserialize_with = "de_bool")]
    pub no_block: bool,
    /// Override existing symlinks when enabling (`--force`).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub force: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `service`: what `herd doc` shows, and what the parser takes.
pub struct ServiceParams {
    /// The service (none for `daemon_reload` alone).
    pub name: Option<String>,
    /// `started`, `stopped`, `restarted` or `reloaded`.
    pub state: Option<UnitState>,
    /// Start the service at boot.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub enabled: Option<bool>,
    /// Accepted and ignored.
    #[serde(alias = "args")]
    pub arguments: Option<String>,
    /// Accepted and ignored.
    pub pattern: Option<String>,
    /// Accepted and ignored.
    pub runlevel: Option<String>,
    /// Accepted and ignored.
    pub sleep: Option<Value>,
    /// The service manager: `auto` or `systemd` (anything else fails).
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// Run `systemctl daemon-reload` first; handed to systemd as Ansible's
    /// service action does on systemd hosts. Alone (no `name`), it is the
    /// whole task and reports no change.
    #[serde(default, alias = "daemon-reload", deserialize_with = "de_bool")]
    pub daemon_reload: bool,
}

impl From<&ServiceParams> for SystemdParams {
    fn from(p: &ServiceParams) -> Self {
        SystemdParams {
            name: p.name.clone(),
            state: p.state,
            enabled: p.enabled,
            masked: None,
            daemon_reload: p.daemon_reload,
            daemon_reexec: false,
            scope: None,
            no_block: false,
            force: None,
        }
    }
}

/// The `systemd` module.
pub struct Systemd;
/// The `systemd_service` module.
pub struct SystemdService;
/// The `service` module.
pub struct Service;

/// The unit as `systemctl` described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitInfo {
    /// `systemctl show`'s properties of the unit.
    pub props: Map<String, Value>,
    /// `systemctl is-enabled`'s word (`enabled`, `disabled`, `static`, ...).
    pub enabled_word: String,
    /// `systemctl is-enabled`'s exit status.
    pub enabled_rc: i32,
    /// Whether systemd runs the host (PID 1).
    pub systemd_running: bool,
}

impl UnitInfo {
    fn prop(&self, k: &str) -> &str {
        self.props.get(k).and_then(Value::as_str).unwrap_or("")
    }
    /// Ansible's `is_running_service`.
    pub fn running(&self) -> bool {
        matches!(self.prop("ActiveState"), "active" | "activating")
    }
    fn deactivating(&self) -> bool {
        self.prop("ActiveState") == "deactivating"
    }
    /// Whether the unit is masked.
    pub fn masked(&self) -> bool {
        self.prop("UnitFileState") == "masked"
            || self.prop("LoadState") == "masked"
            || self.enabled_word == "masked"
    }
    /// Whether systemd knows the unit.
    pub fn found(&self) -> bool {
        self.prop("LoadState") != "not-found" || self.masked()
    }
    /// `is-enabled` succeeds for enabled, static, alias, indirect, generated.
    pub fn enabled(&self) -> bool {
        self.enabled_rc == 0
    }
}

const SHOW_END: &str = "--herd-show-end--";

fn probe_script(name: &str) -> String {
    let n = quote(name);
    format!(
        "if [ -d /run/systemd/system ]; then echo SYSTEMD yes; fi\n\
         echo {SHOW_END}\n\
         systemctl show --no-pager -- {n} 2>/dev/null\n\
         echo {SHOW_END}\n\
         e=$(systemctl is-enabled -- {n} 2>/dev/null); echo \"IE $? $e\"\n"
    )
}

/// Parse the probe's output: `KEY=VALUE` lines of `systemctl show` between
/// two markers, then the `is-enabled` line.
pub fn parse_probe(out: &str) -> UnitInfo {
    let mut info = UnitInfo::default();
    let sep = format!("{SHOW_END}\n");
    let mut parts = out.split(sep.as_str());
    let head = parts.next().unwrap_or("");
    info.systemd_running = head.lines().any(|l| l == "SYSTEMD yes");
    let show = parts.next().unwrap_or("");
    for line in show.lines() {
        if let Some((k, v)) = line.split_once('=') {
            info.props.insert(k.to_string(), json!(v));
        }
    }
    let tail = parts.next().unwrap_or("");
    if let Some(rest) = tail.lines().find_map(|l| l.strip_prefix("IE ")) {
        let (rc, word) = rest.split_once(' ').unwrap_or((rest, ""));
        info.enabled_rc = rc.trim().parse().unwrap_or(1);
        info.enabled_word = word.trim().to_string();
    }
    info
}

fn invalid(module: &'static str, path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module,
        path: path.into(),
        reason: reason.into(),
    })
}

/// The `systemctl` commands, in order, that bring the unit to `p`.
pub fn actions(p: &SystemdParams, name: &str, info: &UnitInfo) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = Vec::new();
    let mut cmd = |what: String, args: &[&str]| {
        let mut argv = vec!["systemctl".to_string()];
        if p.no_block
            && matches!(
                args.first(),
                Some(&("start" | "stop" | "restart" | "reload"))
            )
        {
            argv.push("--no-block".into());
        }
        if p.force == Some(true) && matches!(args.first(), Some(&("enable" | "disable" | "mask"))) {
            argv.push("--force".into());
        }
        argv.extend(args.iter().map(std::string::ToString::to_string));
        v.push((what, argv));
    };
    if let Some(m) = p.masked {
        if m != info.masked() {
            let verb = if m { "mask" } else { "unmask" };
            cmd(format!("{verb} {name}"), &[verb, "--", name]);
        }
    }
    // A masked unit (now or about to be) cannot be enabled or started.
    let will_be_masked = p.masked.unwrap_or(info.masked());
    if let Some(e) = p.enabled {
        let static_unit = matches!(
            info.enabled_word.as_str(),
            "static" | "indirect" | "generated" | "transient" | "alias"
        );
        let current = info.enabled() && !info.masked();
        // Static and masked units have nothing to disable.
        let nothing_to_disable = !e && (static_unit || will_be_masked);
        if e != current && !nothing_to_disable {
            let verb = if e { "enable" } else { "disable" };
            cmd(format!("{verb} {name}"), &[verb, "--", name]);
        }
    }
    if let Some(s) = p.state {
        let running = info.running() && !(p.masked == Some(false) && info.masked());
        match s {
            UnitState::Started if !running => cmd(format!("start {name}"), &["start", "--", name]),
            UnitState::Stopped if running || info.deactivating() => {
                cmd(format!("stop {name}"), &["stop", "--", name]);
            }
            UnitState::Restarted | UnitState::Reloaded if !running => {
                cmd(format!("start {name}"), &["start", "--", name]);
            }
            UnitState::Restarted => cmd(format!("restart {name}"), &["restart", "--", name]),
            UnitState::Reloaded => cmd(format!("reload {name}"), &["reload", "--", name]),
            _ => {}
        }
    }
    v
}

fn check_scope(module: &'static str, p: &SystemdParams) -> Result<(), ModuleError> {
    match p.scope.as_deref() {
        None | Some("system") => Ok(()),
        Some(_) => Err(invalid(
            module,
            "scope",
            "only `system` is supported (user and global units are not)",
        )),
    }
}

fn plan_systemd(
    module: &'static str,
    p: &SystemdParams,
    host: &mut dyn Host,
) -> Result<Plan, ModuleError> {
    check_scope(module, p)?;
    let Some(name) = p.name.as_deref() else {
        if p.state.is_some() || p.enabled.is_some() || p.masked.is_some() {
            return Err(ModuleError::failed(
                "name is required when state, enabled or masked is given",
            ));
        }
        if !(p.daemon_reload || p.daemon_reexec) {
            return Err(ModuleError::failed(
                "one of name, daemon_reload or daemon_reexec is required",
            ));
        }
        // Ansible runs these (outside check mode) and still reports no
        // change: there is no unit whose state could have changed.
        let mut plan = Plan {
            not_a_change: true,
            ..Plan::default()
        };
        if p.daemon_reexec {
            plan.changes.push("daemon-reexec".into());
        }
        if p.daemon_reload {
            plan.changes.push("daemon-reload".into());
        }
        plan.result.insert("name".into(), Value::Null);
        plan.result.insert("status".into(), json!({}));
        plan.state = json!({"commands": []});
        return Ok(plan);
    };
    let out = host.run(&probe_script(name), None)?;
    let info = parse_probe(&out.stdout_str());
    if !info.systemd_running {
        return Err(ModuleError::failed(format!(
            "{module}: the host does not run systemd (no /run/systemd/system); only systemd is supported"
        )));
    }
    if !info.found() && (p.state.is_some() || p.enabled.is_some() || p.masked == Some(false)) {
        return Err(ModuleError::failed(format!(
            "Could not find the requested service {name}: host"
        )));
    }
    let acts = actions(p, name, &info);
    let mut plan = Plan::default();
    let need_reload = info.prop("NeedDaemonReload") == "yes";
    if !acts.is_empty() || (p.daemon_reload && need_reload) {
        if p.daemon_reexec {
            plan.changes.push("daemon-reexec".into());
        }
        if p.daemon_reload {
            plan.changes.push("daemon-reload".into());
        }
    }
    plan.changes.extend(acts.iter().map(|(w, _)| w.clone()));
    let mut result = Map::new();
    result.insert("name".into(), json!(name));
    result.insert("status".into(), Value::Object(info.props.clone()));
    if let Some(s) = p.state {
        let word = match s {
            UnitState::Started | UnitState::Restarted | UnitState::Reloaded => "started",
            UnitState::Stopped => "stopped",
        };
        result.insert("state".into(), json!(word));
    }
    if let Some(e) = p.enabled {
        result.insert("enabled".into(), json!(e));
    }
    plan.result = result;
    plan.state = json!({
        "commands": acts.into_iter().map(|(_, argv)| argv).collect::<Vec<_>>(),
    });
    Ok(plan)
}

fn apply_systemd(
    p: &SystemdParams,
    plan: Plan,
    host: &mut dyn Host,
) -> Result<Outcome, ModuleError> {
    let mut script = String::from("set -e\n");
    if p.daemon_reexec {
        script.push_str("systemctl daemon-reexec\n");
    }
    if p.daemon_reload {
        script.push_str("systemctl daemon-reload\n");
    }
    let commands: Vec<Vec<String>> = plan
        .state
        .get("commands")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    for argv in &commands {
        script.push_str(&join(argv));
        script.push('\n');
    }
    let out = host.run(&script, None)?;
    if !out.success() {
        let mut result = plan.result.clone();
        result.insert("rc".into(), json!(out.rc));
        result.insert("stderr".into(), json!(out.stderr_str()));
        let msg = if plan.not_a_change && commands.is_empty() {
            // Ansible's words for a daemon-reload/-reexec of its own.
            let what = if p.daemon_reexec && !p.daemon_reload {
                "daemon-reexec"
            } else {
                "daemon-reload"
            };
            format!("failure {} during {what}: {}", out.rc, out.stderr_str())
        } else {
            format!(
                "systemctl failed ({}): {}",
                plan.changes.join(", "),
                out.stderr_str().trim_end()
            )
        };
        return Err(ModuleError::Failed { msg, result });
    }
    Ok(Outcome::changed_if(!plan.not_a_change, plan.result))
}

impl Module for Systemd {
    const NAME: &'static str = "systemd";
    const DOC_SHORT: &'static str = "Start, stop, restart, enable and mask systemd units.";
    const DOC_LONG: &'static str =
        r##"System scope only. The plan reads the unit's properties with one `systemctl show`."##;
    const DOC_EXAMPLE: &'static str = r##"- systemd:
    name: nginx
    state: started
    enabled: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "The unit."),
        ("state", "Its state after the task."),
        ("enabled", "Whether it is enabled."),
        (
            "status",
            "systemd's properties of the unit (`ActiveState`, `UnitFileState`, ...).",
        ),
    ];
    type Params = SystemdParams;
    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        plan_systemd(Self::NAME, p, host)
    }
    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        apply_systemd(p, plan, host)
    }
}

impl Module for SystemdService {
    const NAME: &'static str = "systemd_service";
    const DOC_SHORT: &'static str = "The same module as `systemd`, by its newer name.";
    const DOC_EXAMPLE: &'static str = r##"- systemd_service:
    name: nginx
    state: restarted
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "The unit."),
        ("state", "Its state after the task."),
        ("enabled", "Whether it is enabled."),
        (
            "status",
            "systemd's properties of the unit (`ActiveState`, `UnitFileState`, ...).",
        ),
    ];
    type Params = SystemdParams;
    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        plan_systemd(Self::NAME, p, host)
    }
    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        apply_systemd(p, plan, host)
    }
}

impl Module for Service {
    const NAME: &'static str = "service";
    const DOC_SHORT: &'static str = "Start, stop and enable services (systemd only).";
    const DOC_LONG: &'static str = r##"Maps to `systemd`."##;
    const DOC_EXAMPLE: &'static str = r##"- service:
    name: cron
    state: started
    enabled: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "The unit."),
        ("state", "Its state after the task."),
        ("enabled", "Whether it is enabled."),
        (
            "status",
            "systemd's properties of the unit (`ActiveState`, `UnitFileState`, ...).",
        ),
    ];
    type Params = ServiceParams;
    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if let Some(u) = p
            .use_
            .as_deref()
            .filter(|u| !matches!(*u, "auto" | "systemd"))
        {
            return Err(invalid(
                Self::NAME,
                "use",
                &format!("only systemd is supported, not {u}"),
            ));
        }
        plan_systemd(Self::NAME, &SystemdParams::from(p), host)
    }
    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        apply_systemd(&SystemdParams::from(p), plan, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(active: &str, ufs: &str, ie: &str, rc: i32) -> UnitInfo {
        parse_probe(&format!(
            "SYSTEMD yes\n{SHOW_END}\nId=x.service\nLoadState=loaded\nActiveState={active}\nUnitFileState={ufs}\nExecStart={{ path=/bin/sleep ; argv[]=/bin/sleep a=b }}\n{SHOW_END}\nIE {rc} {ie}\n"
        ))
    }

    fn params(v: Value) -> SystemdParams {
        crate::module::parse_params::<SystemdParams>("systemd", &v).expect("params")
    }

    fn verbs(p: &SystemdParams, i: &UnitInfo) -> Vec<String> {
        actions(p, "x", i).into_iter().map(|(w, _)| w).collect()
    }

    #[test]
    fn parses_show_and_is_enabled() {
        let i = info("active", "enabled", "enabled", 0);
        assert!(i.systemd_running && i.running() && i.enabled() && !i.masked() && i.found());
        assert_eq!(
            i.prop("ExecStart"),
            "{ path=/bin/sleep ; argv[]=/bin/sleep a=b }"
        );
        let i = info("inactive", "masked", "masked", 1);
        assert!(i.masked() && !i.running() && !i.enabled());
    }

    #[test]
    fn plans_like_ansible() {
        let stopped = info("inactive", "disabled", "disabled", 1);
        let running = info("active", "enabled", "enabled", 0);
        let p = params(json!({"name": "x", "state": "started", "enabled": "yes"}));
        assert_eq!(verbs(&p, &stopped), ["enable x", "start x"]);
        assert!(verbs(&p, &running).is_empty());
        let p = params(json!({"name": "x", "state": "restarted"}));
        assert_eq!(verbs(&p, &running), ["restart x"]);
        assert_eq!(verbs(&p, &stopped), ["start x"]);
        let p = params(json!({"name": "x", "state": "stopped", "enabled": false}));
        assert_eq!(verbs(&p, &running), ["disable x", "stop x"]);
        assert!(verbs(&p, &stopped).is_empty());
        let p = params(json!({"name": "x", "masked": true}));
        assert_eq!(verbs(&p, &stopped), ["mask x"]);
        let st = info("inactive", "static", "static", 0);
        let p = params(json!({"name": "x", "enabled": false}));
        assert!(verbs(&p, &st).is_empty());
        let p = params(json!({"unit": "x", "state": "reloaded", "no_block": true}));
        assert_eq!(
            actions(&p, "x", &running)[0].1,
            ["systemctl", "--no-block", "reload", "--", "x"]
        );
    }

    /// Records scripts; `systemctl` fails when `rc` is not 0.
    struct Recorder {
        scripts: Vec<String>,
        rc: i32,
    }

    impl Host for Recorder {
        fn name(&self) -> &str {
            "rec"
        }
        fn run(
            &mut self,
            script: &str,
            _stdin: Option<&[u8]>,
        ) -> Result<crate::ExecOutput, crate::HostError> {
            self.scripts.push(script.to_string());
            Ok(crate::ExecOutput {
                rc: self.rc,
                stdout: Vec::new(),
                stderr: if self.rc == 0 {
                    Vec::new()
                } else {
                    b"no bus\n".to_vec()
                },
            })
        }
    }

    /// `daemon_reload` alone, on `systemd` and on `service` (which hands
    /// it to systemd as Ansible's service action does): one
    /// `systemctl daemon-reload` and no change reported, as in Ansible;
    /// the plan, which is all check mode does, runs nothing.
    #[test]
    fn daemon_reload_alone_runs_and_is_not_a_change() {
        use crate::DynModule;
        let params = json!({"daemon_reload": true});
        for m in [&Systemd as &dyn DynModule, &Service, &SystemdService] {
            let mut h = Recorder {
                scripts: Vec::new(),
                rc: 0,
            };
            let plan = m.plan(&params, &mut h).expect("plan");
            assert!(h.scripts.is_empty(), "plan ran {:?}", h.scripts);
            assert!(plan.not_a_change);
            assert_eq!(plan.changes, ["daemon-reload"]);
            let out = m.apply(&params, plan, &mut h).expect("apply");
            assert!(!out.changed, "{}", m.name());
            assert_eq!(out.result.get("name"), Some(&Value::Null));
            assert_eq!(out.result.get("status"), Some(&json!({})));
            assert_eq!(h.scripts.len(), 1);
            assert!(h.scripts[0].contains("systemctl daemon-reload\n"));
        }
        // A failing reload says so in Ansible's words.
        let mut h = Recorder {
            scripts: Vec::new(),
            rc: 1,
        };
        let plan = DynModule::plan(&Systemd, &params, &mut h).expect("plan");
        let err = DynModule::apply(&Systemd, &params, plan, &mut h).expect_err("fails");
        assert_eq!(err.to_string(), "failure 1 during daemon-reload: no bus\n");
        // Nothing to do at all is still an error.
        let none = json!({"daemon_reload": false});
        assert!(DynModule::plan(&Service, &none, &mut h).is_err());
    }
}
