//! Scheduled jobs (cron, systemd timers): what wraps a `herd run` so that a
//! nightly job can run unattended. `--lock` keeps runs of a job from
//! overlapping, `--log-file` keeps the event stream, `--metrics-file`
//! tells monitoring how the last run went, `--notify` tells a webhook when
//! it failed, and `--detailed-exitcode` gives a drift check its own exit
//! code. The run itself is `app::cmd_run`; this module runs around it.

pub mod backup;
pub mod list;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod record;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::app::{exit, AppError};
use crate::cli::{OutputFormat, RunArgs};
use crate::output::{EventSink, Recap};
use record::{LogFile, Summary};

/// When `--notify` posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum NotifyOn {
    /// Only when the run did not succeed (exit code other than 0, or 10
    /// with `--detailed-exitcode`).
    #[default]
    Failure,
    /// After every run.
    Always,
}

/// The flags of `herd run` for scheduled jobs.
#[derive(Debug, Clone, Default, Args)]
pub struct JobArgs {
    /// Run only if no other run holds this lock (flock); without PATH a
    /// per-job file under /run/lock (root), $XDG_RUNTIME_DIR or /tmp.
    /// A run that finds it held exits 75 naming the holder.
    #[arg(long = "lock", value_name = "PATH", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub lock: Option<PathBuf>,
    /// With --lock: wait up to SECONDS for the lock instead of exiting at once.
    #[arg(long = "lock-wait", value_name = "SECONDS", requires = "lock")]
    pub lock_wait: Option<u64>,
    /// Append the JSON event stream to this file (with a run id and a
    /// timestamp per line); the terminal keeps the chosen --output.
    #[arg(long = "log-file", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Write the run's outcome to this file in node_exporter's
    /// textfile-collector format (atomically).
    #[arg(long = "metrics-file", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// The job's name in metrics, notifications and the default lock
    /// [default: the first playbook's file name without extension].
    #[arg(long = "job", value_name = "NAME")]
    pub job: Option<String>,
    /// POST a JSON summary to this URL when the run fails (http:// direct,
    /// https:// through curl); never changes the exit code.
    #[arg(long = "notify", value_name = "URL")]
    pub notify: Option<String>,
    /// When to --notify.
    #[arg(long = "notify-on", value_enum, default_value_t = NotifyOn::Failure, requires = "notify")]
    pub notify_on: NotifyOn,
    /// With --check: exit 10 when some host has changes pending (and none
    /// failed or was unreachable), 0 when nothing would change.
    #[arg(long = "detailed-exitcode", requires = "check")]
    pub detailed_exitcode: bool,
}

/// One job run: its identity, times, the recorder's state and the lock.
pub struct JobRun {
    pub job: String,
    pub run_id: String,
    started: SystemTime,
    clock: Instant,
    args: JobArgs,
    summary: Arc<Mutex<Summary>>,
    log: Mutex<Option<LogFile>>,
    recorder: Mutex<Option<JoinHandle<Option<LogFile>>>>,
    _lock: Option<lock::JobLock>,
}

impl JobRun {
    /// The printer for `format`, behind the recorder: returns the sink the
    /// run sends to and the printer's handle (it ends after the recorder).
    pub fn start_output(&self, format: OutputFormat, verbosity: u8) -> (EventSink, JoinHandle<()>) {
        let (printer_sink, printer) = if crate::adhoc::active() && format == OutputFormat::Human {
            crate::adhoc::start_printer()
        } else {
            crate::output::start_printer(format, verbosity)
        };
        let log = self.log.lock().ok().and_then(|mut l| l.take());
        let (sink, handle) = record::start(printer_sink, log, self.summary.clone());
        if let Ok(mut r) = self.recorder.lock() {
            *r = Some(handle);
        }
        (sink, printer)
    }

    /// The exit code for a finished run: the recap's, or with
    /// `--detailed-exitcode` 10 when changes are pending and nothing failed.
    pub fn exit_code(&self, recap: &Recap) -> u8 {
        let code = recap.exit_code();
        if code == exit::OK
            && self.args.detailed_exitcode
            && recap.hosts.values().any(|s| s.changed > 0)
        {
            exit::CHANGES_PENDING
        } else {
            code
        }
    }
}

/// The job name: `--job`, else the first playbook's file stem.
fn job_name(args: &RunArgs) -> String {
    args.jobs.job.clone().unwrap_or_else(|| {
        args.playbooks
            .first()
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "herd".into())
    })
}

/// Run `inner` (the playbook run) as a job: take the lock, open the log,
/// and afterwards write metrics and notify, whatever `inner` returned.
pub fn run<F>(args: RunArgs, inner: F) -> Result<u8, AppError>
where
    F: FnOnce(RunArgs, &JobRun) -> Result<u8, AppError>,
{
    let started = SystemTime::now();
    let job = job_name(&args);
    let run_id = record::new_run_id();
    let jobs = args.jobs.clone();
    let listing = args.list.is_listing();
    let lock = match (&jobs.lock, listing) {
        (Some(path), false) => {
            let path = if path.as_os_str().is_empty() {
                lock::default_path(&job)
            } else {
                path.clone()
            };
            let wait = jobs.lock_wait.map(std::time::Duration::from_secs);
            match lock::acquire(&path, wait, &record::rfc3339(started)) {
                Ok(l) => Some(l),
                Err(e @ lock::LockError::Busy { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(exit::LOCKED);
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let mut log = match (&jobs.log_file, listing) {
        (Some(p), false) => Some(LogFile::open(p, &run_id)?),
        _ => None,
    };
    if let Some(log) = log.as_mut() {
        log.write(json!({"event": "run_start", "job": job, "pid": std::process::id(),
            "playbooks": args.playbooks.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()}));
    }
    let run = JobRun {
        job,
        run_id,
        started,
        clock: Instant::now(),
        args: jobs,
        summary: Arc::new(Mutex::new(Summary::default())),
        log: Mutex::new(log),
        recorder: Mutex::new(None),
        _lock: lock,
    };
    let result = inner(args, &run);
    if !listing {
        finish(&run, &result);
    }
    result
}

/// After the run: metrics, notification, and the log's last line. None of
/// these change the exit code; their failures are reported on stderr.
fn finish(run: &JobRun, result: &Result<u8, AppError>) {
    let ended = SystemTime::now();
    let recorder = run.recorder.lock().ok().and_then(|mut r| r.take());
    let mut log = match recorder {
        Some(h) => h.join().ok().flatten(),
        None => run.log.lock().ok().and_then(|mut l| l.take()),
    };
    let summary = run.summary.lock().map(|s| s.clone()).unwrap_or_default();
    let (code, error) = match result {
        Ok(code) => (*code, None),
        Err(e) => (exit::USAGE_OR_LOAD, Some(error_text(e))),
    };
    let success = code == exit::OK || code == exit::CHANGES_PENDING;
    if let Some(path) = &run.args.metrics_file {
        let facts = metrics::RunFacts {
            job: &run.job,
            start: record::epoch_secs(run.started),
            end: record::epoch_secs(ended),
            exit_code: code,
            success,
            summary: &summary,
        };
        if let Err(e) = metrics::write(path, &facts) {
            eprintln!("error: {e}");
        }
    }
    let duration = run.clock.elapsed().as_secs_f64();
    let mut notified = Value::Null;
    if let Some(url) = &run.args.notify {
        if !success || run.args.notify_on == NotifyOn::Always {
            let body = notification(
                run,
                &summary,
                code,
                success,
                duration,
                ended,
                error.as_deref(),
            );
            notified = match notify::send(url, &body.to_string()) {
                Ok(attempts) => json!({"ok": true, "attempts": attempts}),
                Err(e) => {
                    eprintln!(
                        "warning: the notification to {} failed after {} attempts: {e} (the exit code is unchanged)",
                        notify::display_url(url),
                        notify::ATTEMPTS
                    );
                    json!({"ok": false, "error": e.to_string()})
                }
            };
        }
    }
    if let Some(log) = log.as_mut() {
        log.write(
            json!({"event": "run_end", "job": run.job, "exit_code": code,
            "success": success, "duration_ms": (duration * 1000.0) as u64,
            "error": error, "notify": notified}),
        );
    }
}

/// What the webhook receives.
fn notification(
    run: &JobRun,
    summary: &Summary,
    code: u8,
    success: bool,
    duration: f64,
    ended: SystemTime,
    error: Option<&str>,
) -> Value {
    json!({
        "job": run.job,
        "run_id": run.run_id,
        "status": if success { "succeeded" } else { "failed" },
        "exit_code": code,
        "started": record::rfc3339(run.started),
        "ended": record::rfc3339(ended),
        "duration_seconds": (duration * 1000.0).round() / 1000.0,
        "hosts": summary.hosts_by_status(),
        "changed": summary.changed(),
        "failed_tasks": summary.failed_tasks,
        "backups": summary.backups,
        "error": error,
        "controller": hostname(),
    })
}

/// Why the run stopped before running, as text safe to send (masked).
fn error_text(e: &AppError) -> String {
    let text = match e {
        AppError::Load(diags) => diags
            .iter()
            .map(|d| format!("{}:{}:{}: {}", d.path.display(), d.line, d.col, d.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    crate::secrets::redact(&text).into_owned()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
