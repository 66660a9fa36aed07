//! `wait_for_connection`: wait until the host answers commands again
//! (after a reboot, a network change, a host that is still booting).
//!
//! After `delay`, a trivial command is run every `sleep` seconds until one
//! succeeds or `timeout` passes; a dropped or refused connection counts as
//! "not yet" (the transport connects afresh on the next command, as
//! `reboot` relies on). The plan cannot know how long it takes and is
//! marked unknowable, so check mode skips the task, as Ansible does. The
//! task never reports a change.
//!
//! Differences from Ansible: a host that could not be reached when the
//! play first connected to it is unreachable before this task runs;
//! `connect_timeout` is accepted but each try uses the transport's own
//! connect timeout.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map};

use crate::params::de_opt_u64;
use crate::{Host, HostError, Module, ModuleError, Outcome, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `wait_for_connection`: what `herd doc` shows, and what the parser takes.
pub struct WaitForConnectionParams {
    /// Seconds a try may take to connect; accepted (the transport's connect timeout applies).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub connect_timeout: Option<u64>,
    /// Seconds to wait before the first try (0 when unset).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub delay: Option<u64>,
    /// Seconds between tries (1 when unset).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub sleep: Option<u64>,
    /// Seconds to wait in all before failing (600 when unset).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub timeout: Option<u64>,
}

/// The `wait_for_connection` module.
pub struct WaitForConnection;

/// The try: what Ansible's ping module answers.
const PING: &str = "echo pong";

impl Module for WaitForConnection {
    const NAME: &'static str = "wait_for_connection";
    const DOC_SHORT: &'static str = "Wait until the host answers commands again.";
    const DOC_LONG: &'static str = r##"Tries a trivial command every `sleep` seconds, after `delay`, until it succeeds or `timeout` passes (then the task fails). Dropped and refused connections are retried. In check mode the task is skipped, as in Ansible; it never reports a change. A host that was unreachable when the play first connected to it does not reach this task."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Restart the network
  shell: systemctl restart systemd-networkd
- name: Wait for the host to answer again
  wait_for_connection:
    delay: 5
    timeout: 120
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[("elapsed", "seconds waited")];
    type Params = WaitForConnectionParams;

    fn plan(&self, _p: &Self::Params, _host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty().change("wait for the connection");
        plan.unknowable = true;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let start = Instant::now();
        // Every wait gives way to an interrupted run or the task's `timeout:`.
        let pause_for =
            |d: Duration| crate::cancel::sleep(d).map_err(crate::cancel::Cancel::into_error);
        if let Some(d) = p.delay.filter(|d| *d > 0) {
            pause_for(Duration::from_secs(d))?;
        }
        let timeout = Duration::from_secs(p.timeout.unwrap_or(600));
        let sleep = Duration::from_secs(p.sleep.unwrap_or(1));
        let mut last_error;
        loop {
            match host.run(PING, None) {
                Ok(out) if out.success() && out.stdout_str().trim() == "pong" => {
                    let mut result = Map::new();
                    result.insert("elapsed".into(), json!(start.elapsed().as_secs()));
                    return Ok(Outcome::unchanged(result));
                }
                Ok(_) => last_error = "ping test failed".to_string(),
                Err(e @ (HostError::TaskTimeout { .. } | HostError::Interrupted { .. })) => {
                    return Err(e.into())
                }
                Err(e) => last_error = e.to_string(),
            }
            if start.elapsed() + sleep >= timeout {
                break;
            }
            pause_for(sleep)?;
        }
        let mut result = Map::new();
        result.insert("elapsed".into(), json!(start.elapsed().as_secs()));
        Err(ModuleError::Failed {
            msg: format!("timed out waiting for ping module test: {last_error}"),
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, ok, FakeHost, Match};
    use crate::DynModule;

    /// A host that refuses `down` commands, then answers.
    fn coming_back(down: u32) -> FakeHost<u32> {
        FakeHost::with_state(down).handle(Match::exact(PING), |h, _, _| {
            if h.state > 0 {
                h.state -= 1;
                return Err(HostError::Unreachable("connection refused".into()));
            }
            ok("pong\n")
        })
    }

    #[test]
    fn waits_through_refused_connections() {
        let mut h = coming_back(2);
        let params = json!({"sleep": 0, "timeout": 30});
        let pl = DynModule::plan(&WaitForConnection, &params, &mut h).expect("plan");
        // Check mode skips it: the plan asks the host nothing.
        assert!(pl.unknowable && h.scripts.is_empty());
        let out = DynModule::apply(&WaitForConnection, &params, pl, &mut h).expect("apply");
        assert!(!out.changed);
        assert_eq!(get(&out.result, "elapsed"), 0);
        assert_eq!(h.scripts.len(), 3);
        // A host that answers: nothing more to wait for.
        let pl = DynModule::plan(&WaitForConnection, &params, &mut h).expect("plan");
        DynModule::apply(&WaitForConnection, &params, pl, &mut h).expect("apply");
        assert_eq!(h.scripts.len(), 4);
    }

    #[test]
    fn gives_up_after_the_timeout() {
        let mut h = coming_back(u32::MAX);
        let params = json!({"sleep": 1, "timeout": 2, "connect_timeout": 5});
        let started = Instant::now();
        let pl = DynModule::plan(&WaitForConnection, &params, &mut h).expect("plan");
        let err = DynModule::apply(&WaitForConnection, &params, pl, &mut h).expect_err("timeout");
        assert_eq!(
            err.to_string(),
            "timed out waiting for ping module test: host unreachable: connection refused"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
        let bad = WaitForConnection.check_params(&json!({"port": 22}));
        assert!(matches!(bad, Err(crate::ParamError::Unknown { .. })));
    }
}
