//! `ping`: proves herd can reach the host and run a command there (the
//! login, the shell, become when asked), and answers `ping: pong`. There
//! is no Python to test on the host; one `echo` is the round trip.

use serde::Deserialize;
use serde_json::{json, Map};

use crate::{Host, Module, ModuleError, Outcome, Plan};

/// The `ping` module.
pub struct Ping;

/// The parameters of `ping`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingParams {
    /// What to answer; `crash` fails the task, as Ansible's raises.
    #[serde(default = "pong")]
    pub data: String,
}

fn pong() -> String {
    "pong".into()
}

impl Ping {
    fn result(
        &self,
        p: &PingParams,
        host: &mut dyn Host,
    ) -> Result<Map<String, serde_json::Value>, ModuleError> {
        if p.data == "crash" {
            return Err(ModuleError::failed("boom"));
        }
        let out = host.run("echo pong", None)?;
        if !out.success() || out.stdout_str().trim() != "pong" {
            return Err(ModuleError::failed(format!(
                "the host did not answer (rc={}): {}",
                out.rc,
                out.stderr_str().trim()
            )));
        }
        let mut result = Map::new();
        result.insert("ping".into(), json!(p.data));
        Ok(result)
    }
}

impl Module for Ping {
    const NAME: &'static str = "ping";
    const DOC_SHORT: &'static str = "Check that herd can reach the host and run a command there.";
    const DOC_LONG: &'static str = r##"One `echo` on the host proves the login, the shell and, when asked, become. The answer is `ping: pong` (or `data`). There is no Python to test on the host. `data: crash` fails the task, as Ansible's raises."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Are the hosts there?
  ping:
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] =
        &[("ping", "`pong`, or the `data` given.")];
    type Params = PingParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Ok(Plan {
            result: self.result(p, host)?,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::unchanged(self.result(p, host)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, plan};

    #[test]
    fn answers_pong_changes_nothing_and_crashes_on_request() {
        let pl = plan(&Ping, &json!({}));
        assert!(pl.is_empty());
        assert_eq!(get(&pl.result, "ping"), "pong");
        let pl = plan(&Ping, &json!({"data": "hello"}));
        assert_eq!(get(&pl.result, "ping"), "hello");
        let mut host = crate::testing::host();
        let e = crate::DynModule::plan(&Ping, &json!({"data": "crash"}), &mut host);
        assert!(e.is_err());
    }
}
