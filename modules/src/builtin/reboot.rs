//! `reboot`: reboot the host and wait until it is back.
//!
//! Apply reads the boot id (`boot_time_command`, by default
//! `/proc/sys/kernel/random/boot_id`), asks systemd to reboot without
//! waiting for it (`systemctl reboot --no-block`, else `shutdown -r now`,
//! or `reboot_command`), then polls with `host.run` until the boot id
//! differs and `test_command` succeeds, bounded by `reboot_timeout`.
//!
//! The module never sees the transport: while the host is down every
//! `host.run` fails (`Unreachable` or a timeout) and is simply retried. The
//! SSH transport drops a dead session and connects afresh on the next
//! command, each attempt bounded by its connect timeout, so polling with
//! `host.run` is enough to get a new session once sshd is back.
//!
//! A reboot can't be predicted or skipped: the plan always has one change,
//! and check mode reports it without rebooting (as Ansible does).
//!
//! Differences from Ansible: `connect_timeout` bounds only the pause
//! between polls (the connection's own timeout comes from the inventory);
//! `pre_reboot_delay` waits on the controller instead of `shutdown +N`;
//! `search_paths` is accepted and ignored.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::de_opt_u64;
use crate::{Host, HostError, Module, ModuleError, Outcome, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `reboot`: what `herd doc` shows, and what the parser takes.
pub struct RebootParams {
    /// Seconds to wait for the host to come back and pass `test_command` (default 600).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub reboot_timeout: Option<u64>,
    /// Seconds between connection attempts while waiting (default 2, at most 5); the
    /// connection's own timeout comes from the inventory.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub connect_timeout: Option<u64>,
    /// Seconds to wait (on the controller) before rebooting.
    #[serde(
        default,
        alias = "pre_reboot_delay_sec",
        deserialize_with = "de_opt_u64"
    )]
    pub pre_reboot_delay: Option<u64>,
    /// Seconds to wait after the host is back before the test command.
    #[serde(
        default,
        alias = "post_reboot_delay_sec",
        deserialize_with = "de_opt_u64"
    )]
    pub post_reboot_delay: Option<u64>,
    /// The command that must succeed after the reboot (default `whoami`).
    pub test_command: Option<String>,
    /// The task's message in the output once the host is back.
    pub msg: Option<String>,
    /// The command that reboots, started in the background (default `systemctl reboot
    /// --no-block`, else `shutdown -r now`).
    pub reboot_command: Option<String>,
    /// A command whose output changes with each boot (default: the kernel's boot id).
    pub boot_time_command: Option<String>,
    /// Accepted and ignored.
    pub search_paths: Option<Value>,
}

/// The `reboot` module.
pub struct Reboot;

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

fn boot_id(host: &mut dyn Host, cmd: &str) -> Result<String, HostError> {
    let out = host.run(cmd, None)?;
    if !out.success() {
        return Err(HostError::Command {
            action: "read the boot id",
            rc: out.rc,
            stderr: out.stderr_str(),
        });
    }
    Ok(out.stdout_str().trim().to_string())
}

/// The command that starts the reboot and returns at once, so the session
/// ends cleanly before sshd goes away.
fn reboot_script(p: &RebootParams) -> String {
    match &p.reboot_command {
        Some(c) => format!("( {c} ) </dev/null >/dev/null 2>&1 &\nexit 0\n"),
        None => "if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
                 systemctl reboot --no-block; else (sleep 1; shutdown -r now) </dev/null >/dev/null 2>&1 & fi\n"
            .into(),
    }
}

impl Module for Reboot {
    const NAME: &'static str = "reboot";
    // An action plugin in Ansible that refuses `async`.
    const ASYNC: crate::capability::AsyncSupport = crate::capability::AsyncSupport::Refused;
    const DOC_SHORT: &'static str = "Reboot the host and wait for it to come back.";
    const DOC_LONG: &'static str = r##"The boot id is read before and after, so a host that did not really reboot is told apart. Check mode reports changed without rebooting."##;
    const DOC_EXAMPLE: &'static str = r##"- reboot:
    reboot_timeout: 300
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("rebooted", "`true`."),
        (
            "elapsed",
            "Seconds from the reboot to the host answering again.",
        ),
    ];
    type Params = RebootParams;

    fn plan(&self, _p: &Self::Params, _host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let mut plan = Plan::default().change("reboot");
        let mut r = Map::new();
        r.insert("rebooted".into(), json!(true));
        r.insert("elapsed".into(), json!(0));
        plan.result = r;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let start = Instant::now();
        let id_cmd = p.boot_time_command.as_deref().unwrap_or(BOOT_ID);
        let before = boot_id(host, id_cmd)?;
        // Every wait gives way to an interrupted run or the task's
        // `timeout:`: the polls below treat host errors as "not back yet".
        let pause_for =
            |d: Duration| crate::cancel::sleep(d).map_err(super::super::cancel::Cancel::into_error);
        if let Some(d) = p.pre_reboot_delay.filter(|d| *d > 0) {
            pause_for(Duration::from_secs(d))?;
        }
        match host.run(&reboot_script(p), None) {
            Ok(out) if !out.success() => {
                return Err(ModuleError::failed(format!(
                    "Reboot command failed: {}",
                    out.stderr_str().trim_end()
                )))
            }
            // The session may drop as the host goes down: that is the point.
            Ok(_) | Err(HostError::Unreachable(_) | HostError::Timeout { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let timeout = Duration::from_secs(p.reboot_timeout.unwrap_or(600));
        let pause = Duration::from_secs(p.connect_timeout.unwrap_or(2).clamp(1, 5));
        let test = p.test_command.as_deref().unwrap_or("whoami");
        let mut last_error = String::from("the host did not come back");
        let mut back = false;
        while start.elapsed() < timeout {
            pause_for(pause)?;
            match boot_id(host, id_cmd) {
                Ok(id) if !id.is_empty() && id != before => {}
                Ok(_) => {
                    last_error = "the boot id has not changed yet".into();
                    continue;
                }
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            }
            match host.run(test, None) {
                Ok(out) if out.success() => {
                    back = true;
                    break;
                }
                Ok(out) => {
                    last_error = format!(
                        "test command failed (rc={}): {}",
                        out.rc,
                        out.stderr_str().trim_end()
                    );
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        if !back {
            let mut result = Map::new();
            result.insert("rebooted".into(), json!(true));
            result.insert("elapsed".into(), json!(start.elapsed().as_secs()));
            return Err(ModuleError::Failed {
                msg: format!(
                    "Timed out waiting for the host to come back after reboot ({}s): {last_error}",
                    timeout.as_secs()
                ),
                result,
            });
        }
        if let Some(d) = p.post_reboot_delay.filter(|d| *d > 0) {
            pause_for(Duration::from_secs(d))?;
        }
        let mut result = Map::new();
        result.insert("rebooted".into(), json!(true));
        result.insert("elapsed".into(), json!(start.elapsed().as_secs()));
        Ok(Outcome {
            changed: true,
            result,
            msg: p.msg.clone(),
            failed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ok, FakeHost, Match};

    /// The boot a fake host is in: rebooted yet, and how many more polls
    /// it stays down for after the reboot.
    struct Boot {
        rebooted: bool,
        down_for: u32,
    }

    /// A host that "reboots": the boot id changes after `down_for` failed
    /// polls.
    fn rebooting(down_for: u32) -> FakeHost<Boot> {
        FakeHost::with_state(Boot {
            rebooted: false,
            down_for,
        })
        .handle(Match::contains("reboot"), |h, _, _| {
            h.rebooted = true;
            Err(HostError::Unreachable("session lost".into()))
        })
        .handle(Match::Any, |h, script, _| {
            if h.rebooted && h.down_for > 0 {
                h.down_for -= 1;
                return Err(HostError::Unreachable("connection refused".into()));
            }
            if script == BOOT_ID {
                return ok(if h.rebooted { "new\n" } else { "old\n" });
            }
            ok("root\n")
        })
    }

    #[test]
    fn waits_through_unreachable_until_the_boot_id_changes() {
        let p: RebootParams = crate::module::parse_params(
            "reboot",
            &json!({"connect_timeout": 1, "reboot_timeout": 30}),
        )
        .expect("params");
        let mut h = rebooting(2);
        let out = Reboot.apply(&p, Plan::default(), &mut h).expect("rebooted");
        assert!(out.changed);
        assert_eq!(out.result["rebooted"], true);
        // boot id, reboot, 2 failed polls, boot id, test command.
        assert_eq!(h.scripts.len(), 6);
    }

    #[test]
    fn the_wait_for_the_host_ends_with_the_task_timeout() {
        let p: RebootParams = crate::module::parse_params(
            "reboot",
            &json!({"connect_timeout": 1, "reboot_timeout": 600}),
        )
        .expect("params");
        // Never comes back.
        let mut h = rebooting(u32::MAX);
        let started = std::time::Instant::now();
        let err = {
            let _deadline = crate::cancel::TaskDeadline::start(2);
            Reboot
                .apply(&p, Plan::default(), &mut h)
                .expect_err("gives up")
        };
        assert!(
            matches!(
                err,
                ModuleError::Host(HostError::TaskTimeout { seconds: 2 })
            ),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
}
