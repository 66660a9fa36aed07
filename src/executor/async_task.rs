//! A task's `async:` and `poll:`, as Ansible runs them.
//!
//! A module whose change is one host command ([`AsyncSupport::Detached`]:
//! `command`, `shell`) is started as a background job on the host
//! ([`herdsman_modules::async_job`]): with `poll: 0` the task returns at
//! once (`ansible_job_id`, `started: 1`, `finished: 0`, `results_file`,
//! changed) and `async_status` follows the job later; with `poll: N` herd
//! looks at the job every N seconds over the open connection until it is
//! done or the `async` limit has been used up, then fails with Ansible's
//! message (the job's watcher on the host kills it at the limit). Other
//! modules run in the foreground within the limit when `poll` > 0, and
//! `poll: 0` names the module as unsupported; actions Ansible refuses
//! `async` for (`raw`, `copy`, `template`, `debug`, ...) fail with
//! Ansible's words. Check mode runs the task as it would run without
//! `async`.

use herdsman_modules::async_job::{self, JobReport, LaunchHost};
use herdsman_modules::cancel::{self, TaskDeadline};
use herdsman_modules::capability::AsyncSupport;
use herdsman_modules::{DynModule, Host, ModuleError};
use serde_json::{json, Value};

use crate::executor::task::{error_outcome, module_outcome, ItemOutcome};
use crate::executor::PlayRunner;
use crate::output::Status;
use crate::playbook::Task;

/// Ansible's default `poll`.
const DEFAULT_POLL: u64 = 10;

/// A task's `async` limit and `poll` interval, rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AsyncSpec {
    pub(crate) limit: u64,
    pub(crate) poll: u64,
}

/// The outcome for an action that cannot run under `async`, in Ansible's
/// words.
pub(crate) fn refused(action: &str) -> ItemOutcome {
    ItemOutcome::failed(format!("This action ({action}) does not support async."))
}

impl PlayRunner<'_> {
    /// The task's `async`/`poll`, or `None` when it runs in the foreground
    /// (no `async`, or 0).
    pub(crate) fn async_spec(
        &self,
        task: &Task,
        ctx: &minijinja::Value,
    ) -> Result<Option<AsyncSpec>, Box<ItemOutcome>> {
        let Some(limit) = &task.async_ else {
            return Ok(None);
        };
        let limit = self.whole_seconds(task, "async", limit, ctx)?;
        if limit == 0 {
            return Ok(None);
        }
        let poll = match &task.poll {
            Some(p) => self.whole_seconds(task, "poll", p, ctx)?,
            None => DEFAULT_POLL,
        };
        Ok(Some(AsyncSpec { limit, poll }))
    }

    fn whole_seconds(
        &self,
        task: &Task,
        field: &str,
        v: &Value,
        ctx: &minijinja::Value,
    ) -> Result<u64, Box<ItemOutcome>> {
        let v = self
            .project
            .templar
            .render_value(field, v, ctx)
            .map_err(|e| Box::new(ItemOutcome::template_failed(task, field, &e)))?;
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| {
                Box::new(ItemOutcome::failed(format!(
                    "`{field}` must be a whole number of seconds"
                )))
            })
    }
}

/// Run module `m` under `spec` on `host` (already seen through the task's
/// become and environment).
pub(crate) fn run(
    m: &dyn DynModule,
    params: &Value,
    host: &mut dyn Host,
    check: bool,
    spec: AsyncSpec,
) -> ItemOutcome {
    if check {
        return checked(m, params, host, spec);
    }
    match m.async_support() {
        AsyncSupport::Refused => refused(m.name()),
        AsyncSupport::Foreground if spec.poll == 0 => ItemOutcome::failed(format!(
            "`async` with `poll: 0` (fire and forget) runs only `command` and `shell` in herd; \
             `{}` can run with `async` only when `poll` is above 0 (it then runs in the foreground within the limit)",
            m.name()
        )),
        AsyncSupport::Foreground => foreground(m, params, host, spec),
        AsyncSupport::Detached => detached(m, params, host, spec),
    }
}

/// Check mode, as Ansible reports it: the module's own check result
/// (`skipped` for a command), marked finished when polled; with `poll: 0`
/// the task says a job started (nothing runs on the host in herd).
fn checked(m: &dyn DynModule, params: &Value, host: &mut dyn Host, spec: AsyncSpec) -> ItemOutcome {
    if m.async_support() == AsyncSupport::Refused {
        return refused(m.name());
    }
    let jid = async_job::new_jid();
    if spec.poll == 0 {
        let mut o = ItemOutcome::new(Status::Changed);
        o.result.insert("ansible_job_id".into(), json!(jid));
        o.result.insert("started".into(), json!(1));
        o.result.insert("finished".into(), json!(0));
        return o;
    }
    let mut o = module_outcome(m, params, host, true);
    mark_finished(&mut o, &jid);
    o
}

/// Ansible's message for a job that ran out of its `async` time.
fn out_of_time(spec: AsyncSpec) -> ItemOutcome {
    ItemOutcome::failed(format!(
        "async task did not complete within the requested time - {}s",
        spec.limit
    ))
}

/// The fields a finished async task reports besides the module's own.
fn mark_finished(o: &mut ItemOutcome, jid: &str) {
    o.result.insert("ansible_job_id".into(), json!(jid));
    o.result.insert("started".into(), json!(1));
    o.result.insert("finished".into(), json!(1));
}

fn foreground(
    m: &dyn DynModule,
    params: &Value,
    host: &mut dyn Host,
    spec: AsyncSpec,
) -> ItemOutcome {
    let deadline = TaskDeadline::start(spec.limit);
    let mut o = module_outcome(m, params, host, false);
    if deadline.expired() && o.status != Status::Unreachable {
        return out_of_time(spec);
    }
    mark_finished(&mut o, &async_job::new_jid());
    o
}

fn detached(
    m: &dyn DynModule,
    params: &Value,
    host: &mut dyn Host,
    spec: AsyncSpec,
) -> ItemOutcome {
    let jid = async_job::new_jid();
    let plan = match m.plan(params, host) {
        Ok(p) => p,
        Err(e) => return error_outcome(e),
    };
    if plan.is_empty() {
        // `creates`/`removes` settled it: nothing to start.
        let mut o = ItemOutcome::new(Status::Ok);
        o.result = plan.result;
        mark_finished(&mut o, &jid);
        return o;
    }
    let results_file = {
        let mut launch = LaunchHost::new(host, &jid, spec.limit, m.name(), params);
        if let Err(e) = m.apply(params, plan, &mut launch) {
            return error_outcome(e);
        }
        launch.results_file().unwrap_or_default()
    };
    if spec.poll == 0 {
        let mut o = ItemOutcome::new(Status::Changed);
        o.result.insert("ansible_job_id".into(), json!(jid));
        o.result.insert("started".into(), json!(1));
        o.result.insert("finished".into(), json!(0));
        o.result.insert("results_file".into(), json!(results_file));
        return o;
    }
    poll_until_done(host, &jid, spec)
}

/// Look at the job every `poll` seconds while the `async` time lasts, as
/// Ansible's loop does (a sleep, a look, the time taken off).
fn poll_until_done(host: &mut dyn Host, jid: &str, spec: AsyncSpec) -> ItemOutcome {
    let mut left = spec.limit;
    let mut last: Option<JobReport> = None;
    while left > 0 {
        if let Err(c) = cancel::sleep(std::time::Duration::from_secs(spec.poll)) {
            return error_outcome(ModuleError::Host(c.into_error()));
        }
        left = left.saturating_sub(spec.poll);
        let report = match async_job::status(host, jid) {
            Ok(r) => r,
            Err(e) => return error_outcome(e),
        };
        let settled = report.finished || report.failed.is_some();
        last = Some(report);
        if settled {
            break;
        }
    }
    match last {
        Some(report) if report.finished => {
            // Done: its files go, as Ansible cleans up after polling.
            let _ = async_job::cleanup(host, jid);
            report_outcome(report)
        }
        Some(report) => {
            let mut o = out_of_time(spec);
            o.result
                .insert("async_result".into(), Value::Object(report.result));
            o
        }
        None => out_of_time(spec),
    }
}

/// A job's report as the task's outcome.
fn report_outcome(report: JobReport) -> ItemOutcome {
    let status = if report.failed.is_some() {
        Status::Failed
    } else if report.changed {
        Status::Changed
    } else {
        Status::Ok
    };
    let mut o = ItemOutcome::new(status);
    // A failed job that changed the host counts as changed when its
    // failure is ignored, as in Ansible.
    o.also_changed = report.changed;
    if let Some(msg) = report.failed {
        let stderr = report
            .result
            .get("stderr")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string();
        o.msg = Some(if stderr.is_empty() {
            msg
        } else {
            format!("{msg}: {stderr}")
        });
    }
    o.result = report.result;
    o
}
