//! `async_status`: how a job started by a task's `async:` is doing, or
//! (`mode: cleanup`) remove its files. The job's files and how its result
//! is made are [`crate::async_job`]'s; this module is its task face.
//!
//! Plan reads the job (one round trip) and is the whole answer: a job
//! still running, or finished without a change, is an empty plan; a
//! finished job that changed the host plans that change so the task
//! reports `changed` (in check mode too, as the job already ran); a
//! failed, timed-out or unknown job fails the task with the job's result.

use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::async_job;
use crate::{Host, Module, ModuleError, Outcome, Plan};

/// The `async_status` module.
pub struct AsyncStatus;

/// What `async_status` does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StatusMode {
    /// Report the job's status (and its result once finished).
    #[default]
    Status,
    /// Remove the job's files.
    Cleanup,
}

/// The parameters of `async_status`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AsyncStatusParams {
    /// The job id a task with `async:` returned (`ansible_job_id`).
    pub jid: String,
    /// Whether to report the job or remove its files.
    #[serde(default)]
    pub mode: StatusMode,
}

impl Module for AsyncStatus {
    const NAME: &'static str = "async_status";
    // An action plugin in Ansible that refuses `async`.
    const ASYNC: crate::capability::AsyncSupport = crate::capability::AsyncSupport::Refused;
    const DOC_SHORT: &'static str = "Check on a job started in the background by `async`.";
    const DOC_LONG: &'static str = r##"Reads the job's files under `~/.ansible_async/` on the host (one round trip): while it runs, `finished` is 0; once it is done, the result is the one the module would have registered in the foreground (`rc`, `stdout`, ... for `command` and `shell`) plus `finished: 1`, and the task is `changed` or failed as that module would be. A job that ran past its `async` limit was killed and fails with `Timeout exceeded`; an unknown `jid` fails with `could not find job`. Loop with `until: job.finished` to wait. `mode: cleanup` removes the job's files."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Start the long job
  command: /usr/local/bin/reindex
  async: 600
  poll: 0
  register: reindex

- name: Wait for it
  async_status:
    jid: "{{ reindex.ansible_job_id }}"
  register: job
  until: job.finished
  retries: 60
  delay: 10
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("ansible_job_id", "The job id."),
        ("started", "1 once the job was started."),
        ("finished", "1 when the job is done, else 0."),
        (
            "results_file",
            "The job's status file on the host (`~/.ansible_async/<jid>`).",
        ),
        ("erased", "`mode: cleanup`: the status file removed."),
        (
            "stdout",
            "Once finished, the job's own result: `rc`, `stdout`, `stderr`, ... as its module registers them.",
        ),
    ];
    type Params = AsyncStatusParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if p.mode == StatusMode::Cleanup {
            return Ok(Plan {
                not_a_change: true,
                ..Plan::default()
            }
            .change(format!("remove job {}", p.jid)));
        }
        let report = async_job::status(host, &p.jid)?;
        if let Some(msg) = report.failed {
            return Err(ModuleError::Failed {
                msg,
                result: report.result,
            });
        }
        let plan = Plan {
            result: report.result,
            ..Plan::default()
        };
        Ok(if report.changed {
            plan.change(format!("job {} changed the host", p.jid))
        } else {
            plan
        })
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        match p.mode {
            StatusMode::Cleanup => Ok(Outcome::unchanged(async_job::cleanup(host, &p.jid)?)),
            // The plan's result is the report; the change is the job's.
            StatusMode::Status => Ok(Outcome::changed(Map::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;
    use crate::DynModule;
    use serde_json::json;

    #[test]
    fn an_unknown_job_fails_and_cleanup_plans_without_a_change() {
        let mut host = LocalHost::new("local");
        let m: &dyn DynModule = &AsyncStatus;
        let err = m.plan(&json!({"jid": "j1.2"}), &mut host).unwrap_err();
        assert!(err.to_string().contains("could not find job"), "{err}");
        let plan = m
            .plan(&json!({"jid": "j1.2", "mode": "cleanup"}), &mut host)
            .unwrap();
        assert!(plan.not_a_change && !plan.is_empty());
        assert!(m
            .check_params(&json!({"jid": "x", "mode": "kill"}))
            .is_err());
    }

    #[test]
    fn a_finished_changed_job_plans_its_change_then_converges_on_cleanup() {
        let mut host = LocalHost::new("local");
        let jid = async_job::new_jid();
        let params = json!({"_raw_params": "true"});
        let shell = crate::find("shell").unwrap();
        let mut launch = async_job::LaunchHost::new(&mut host, &jid, 30, "shell", &params);
        shell.apply(&params, Plan::default(), &mut launch).unwrap();
        let m: &dyn DynModule = &AsyncStatus;
        let mut plan = Plan::default();
        for _ in 0..100 {
            plan = m.plan(&json!({"jid": jid}), &mut host).unwrap();
            if plan.result["finished"] == json!(1) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(plan.result["finished"], json!(1));
        assert!(!plan.is_empty(), "a finished shell job changed the host");
        assert_eq!(plan.result["rc"], json!(0));
        let cleanup = json!({"jid": jid, "mode": "cleanup"});
        let plan = m.plan(&cleanup, &mut host).unwrap();
        let out = m.apply(&cleanup, plan, &mut host).unwrap();
        assert!(!out.changed);
        assert!(m.plan(&json!({"jid": jid}), &mut host).is_err());
    }
}
