//! The events a run produces, in the order the printer receives them. The
//! JSON form (`--output jsonl`) is documented in the README; field names are
//! stable.

use serde::Serialize;
use serde_json::Value;

use herdsman_modules::FileDiff;

use crate::output::recap::Recap;
use crate::secrets::Secrets;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
    /// Failed, but `ignore_errors` let the host go on.
    Ignored,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    pub task: String,
    pub status: Status,
    pub changed: bool,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// The loop item's label, for results of one loop iteration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated_to: Option<String>,
    /// Shown with `--diff`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<FileDiff>,
    /// What a `debug` task prints (already rendered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The change lines of the plan (what would change in check mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// `no_log` hid this result: `msg` is the notice, `item` is `None`,
    /// and nothing else of the result is here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub censored: bool,
    /// The module's result as `register:` stores it (`rc`, `stdout`,
    /// `stderr`, ...), for machine-read logs: a cron job's log keeps why
    /// a command failed. Absent when `no_log` hid the result and for
    /// results decided before the task ran (a skip by tag, an unreachable
    /// host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PlaybookStart {
        path: String,
        check: bool,
    },
    PlayStart {
        name: String,
        hosts: Vec<String>,
    },
    TaskStart {
        name: String,
        /// `file:line` of the task.
        location: String,
        hosts: Vec<String>,
        handler: bool,
    },
    HostResult(HostResult),
    Warning {
        message: String,
    },
    Recap(Recap),
    /// With `--profile`, after the recap: what each task cost.
    Profile {
        tasks: Vec<TaskProfile>,
    },
    /// After a `volume_backup` task on a host: archives, retention, time.
    Backup(crate::jobs::backup::BackupReport),
    /// `--step`: a question for the terminal, asked by the printer; not
    /// an event of the run (never written as JSON, nor to the log file).
    #[serde(skip)]
    Step(crate::output::step::Question),
}

impl Event {
    /// Every text of the event with the values marked secret masked.
    pub fn redact(&mut self, secrets: &Secrets) {
        if secrets.is_empty() {
            return;
        }
        let s = |text: &mut String| secrets.redact_string(text);
        match self {
            Event::PlaybookStart { path, .. } => s(path),
            Event::PlayStart { name, hosts } => {
                s(name);
                hosts.iter_mut().for_each(s);
            }
            Event::TaskStart {
                name,
                location,
                hosts,
                ..
            } => {
                s(name);
                s(location);
                hosts.iter_mut().for_each(s);
            }
            Event::HostResult(r) => {
                s(&mut r.host);
                s(&mut r.task);
                r.msg.iter_mut().for_each(s);
                r.item.iter_mut().for_each(s);
                r.delegated_to.iter_mut().for_each(s);
                for d in &mut r.diffs {
                    s(&mut d.path);
                    s(&mut d.before);
                    s(&mut d.after);
                }
                if let Some(o) = &mut r.output {
                    secrets.redact_value(o);
                }
                if let Some(v) = &mut r.result {
                    secrets.redact_value(v);
                }
                r.changes.iter_mut().for_each(s);
            }
            Event::Warning { message } => s(message),
            Event::Recap(recap) => {
                let hosts = std::mem::take(&mut recap.hosts);
                for (mut h, stats) in hosts {
                    s(&mut h);
                    recap.hosts.insert(h, stats);
                }
            }
            Event::Profile { tasks } => {
                for t in tasks {
                    s(&mut t.task);
                    s(&mut t.location);
                }
            }
            Event::Backup(b) => {
                s(&mut b.host);
                s(&mut b.task);
                b.backup_dir.iter_mut().for_each(s);
                for a in &mut b.archives {
                    s(&mut a.name);
                    s(&mut a.path);
                }
                b.removed.iter_mut().for_each(s);
                b.failures.iter_mut().for_each(s);
            }
            Event::Step(q) => s(&mut q.prompt),
        }
    }
}

/// One task's round trips and time, summed over the hosts it ran on
/// (`--profile`). Times are wall time on the workers, so with many hosts
/// in parallel they add up to more than the run took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskProfile {
    pub task: String,
    /// `file:line` of the task.
    pub location: String,
    /// Host runs of a module (a loop counts each item).
    pub runs: u64,
    /// Commands sent to hosts: one round trip each (with become, file
    /// reads and writes are commands too).
    pub execs: u64,
    /// Connections opened by this task (the first task on a host opens it).
    pub connects: u64,
    pub connect_ms: f64,
    pub exec_ms: f64,
    /// Whole-file reads and writes over the transport's own file channel
    /// (SFTP), and their time.
    pub transfers: u64,
    pub transfer_ms: f64,
}
