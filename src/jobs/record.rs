//! The recorder: sits between the workers and the printer. Every event goes
//! on to the printer unchanged; on the way it is appended to `--log-file`
//! (JSON lines with the run id and a timestamp) and folded into the
//! [`Summary`] that metrics and notifications are made from.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::output::{Event, EventSink, HostStats, Status};

/// A failed or unreachable task, for the notification.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTask {
    pub host: String,
    pub task: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
}

/// What the run did, folded from its events (already masked).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub hosts: IndexMap<String, HostStats>,
    pub failed_tasks: Vec<FailedTask>,
    /// `volume_backup` results, in the order they came.
    pub backups: Vec<Value>,
    /// Whether a recap arrived (the run got as far as running plays).
    pub ran: bool,
}

impl Summary {
    fn fold(&mut self, event: &Event) {
        match event {
            Event::HostResult(r) if matches!(r.status, Status::Failed | Status::Unreachable) => {
                self.failed_tasks.push(FailedTask {
                    host: r.host.clone(),
                    task: r.task.clone(),
                    status: r.status,
                    msg: r.msg.clone(),
                });
            }
            Event::Backup(b) => {
                if let Ok(v) = serde_json::to_value(b) {
                    self.backups.push(v);
                }
            }
            Event::Recap(recap) => {
                self.ran = true;
                self.hosts = recap.hosts.clone();
            }
            _ => {}
        }
    }

    /// Each host's overall status: `failed`, `unreachable`, `changed` or
    /// `ok`, the worst thing that happened to it.
    pub fn host_status(stats: &HostStats) -> &'static str {
        if stats.failed > 0 {
            "failed"
        } else if stats.unreachable > 0 {
            "unreachable"
        } else if stats.changed > 0 {
            "changed"
        } else {
            "ok"
        }
    }

    /// Host names by overall status, every status present (empty lists too).
    pub fn hosts_by_status(&self) -> IndexMap<&'static str, Vec<String>> {
        let mut out: IndexMap<&'static str, Vec<String>> =
            ["ok", "changed", "failed", "unreachable"]
                .into_iter()
                .map(|s| (s, Vec::new()))
                .collect();
        for (host, stats) in &self.hosts {
            out.entry(Self::host_status(stats))
                .or_default()
                .push(host.clone());
        }
        out
    }

    /// Changed task results over all hosts (the recap's `changed` sum).
    pub fn changed(&self) -> u64 {
        self.hosts.values().map(|s| u64::from(s.changed)).sum()
    }
}

/// `2026-12-04T02:30:00.123456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    format!(
        "{}Z",
        herdsman_modules::clock::timestamp(t).replacen(' ', "T", 1)
    )
}

/// Seconds since the epoch, with fractions.
pub fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A fresh run id: 16 random hex digits.
pub fn new_run_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: the time and the PID still tell runs apart.
        let n = epoch_secs(SystemTime::now()) as u64 ^ u64::from(std::process::id()) << 40;
        b = n.to_be_bytes();
    }
    hex::encode(b)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the log file {path}: {source}")]
pub struct LogFileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The `--log-file`: JSON lines appended, each written whole in one
/// `write` on an `O_APPEND` file so runs sharing a log do not cut into
/// each other's lines.
pub struct LogFile {
    file: File,
    run_id: String,
}

impl LogFile {
    pub fn open(path: &Path, run_id: &str) -> Result<LogFile, LogFileError> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .map_err(|source| LogFileError {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(LogFile {
            file,
            run_id: run_id.to_string(),
        })
    }

    /// Append one line: `run_id`, `ts`, then the object's own fields.
    pub fn write(&mut self, fields: Value) {
        let mut line = Map::new();
        line.insert("run_id".into(), Value::from(self.run_id.as_str()));
        line.insert("ts".into(), Value::from(rfc3339(SystemTime::now())));
        if let Value::Object(m) = fields {
            line.extend(m);
        }
        if let Ok(mut text) = serde_json::to_string(&Value::Object(line)) {
            text.push('\n');
            // A full disk must not stop the run; the terminal still shows it.
            let _ = self.file.write_all(text.as_bytes());
        }
    }
}

/// Start the recorder in front of `printer`: returns the sink the run
/// sends to. The thread ends when every clone of that sink is dropped and
/// hands back the log file, for the run's last line.
pub fn start(
    mut printer: EventSink,
    mut log: Option<LogFile>,
    summary: Arc<Mutex<Summary>>,
) -> (EventSink, JoinHandle<Option<LogFile>>) {
    let (sink, rx): (EventSink, Receiver<Event>) = printer.relay();
    let handle = std::thread::spawn(move || {
        let secrets = crate::secrets::global();
        for event in rx {
            if matches!(event, Event::Step(_)) {
                // A question for the terminal, not something the run did.
                printer.send(event);
                continue;
            }
            let mut masked = event.clone();
            masked.redact(secrets);
            if let Some(log) = log.as_mut() {
                if let Ok(v) = serde_json::to_value(&masked) {
                    log.write(v);
                }
            }
            if let Ok(mut s) = summary.lock() {
                s.fold(&masked);
            }
            printer.send(event);
        }
        log
    });
    (sink, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_764_815_400_250);
        assert_eq!(rfc3339(t), "2025-12-04T02:30:00.250000Z");
    }

    #[test]
    fn hosts_are_grouped_by_their_worst_status() {
        let mut s = Summary::default();
        let st = |ok, changed, failed, unreachable| HostStats {
            ok,
            changed,
            failed,
            unreachable,
            ..HostStats::default()
        };
        s.hosts.insert("a".into(), st(3, 0, 0, 0));
        s.hosts.insert("b".into(), st(3, 2, 0, 0));
        s.hosts.insert("c".into(), st(1, 1, 1, 0));
        s.hosts.insert("d".into(), st(0, 0, 0, 1));
        let by = s.hosts_by_status();
        assert_eq!(by["ok"], ["a"]);
        assert_eq!(by["changed"], ["b"]);
        assert_eq!(by["failed"], ["c"]);
        assert_eq!(by["unreachable"], ["d"]);
        assert_eq!(s.changed(), 3);
    }
}
