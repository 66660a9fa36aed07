//! `--metrics-file`: the run's outcome in node_exporter's textfile-collector
//! format, labelled by job. The file is written to a temp name in the same
//! directory (not ending in `.prom`, so the collector never reads half a
//! file) and renamed over the old one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::jobs::record::Summary;

/// One finished run, as the metrics show it.
pub struct RunFacts<'a> {
    pub job: &'a str,
    pub start: f64,
    pub end: f64,
    pub exit_code: u8,
    pub success: bool,
    pub summary: &'a Summary,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the metrics file {path}: {source}")]
pub struct MetricsError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

const LAST_SUCCESS: &str = "herd_job_last_success_timestamp_seconds";

/// A label value as the exposition format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The last success time recorded in an earlier file for this job, so a
/// failed run keeps it (alerts on "no success for 26 h" need it).
fn previous_success(old: &str, job_label: &str) -> Option<f64> {
    let prefix = format!("{LAST_SUCCESS}{{job=\"{job_label}\"}} ");
    old.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The file's text.
pub fn render(facts: &RunFacts, old: &str) -> String {
    let job = label(facts.job);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{job=\"{job}\"{labels}}} {value}");
        }
    };
    let one = |v: String| vec![(String::new(), v)];
    gauge(
        "herd_job_last_run_start_timestamp_seconds",
        "Unix time the job's last run started.",
        &one(format!("{:.3}", facts.start)),
    );
    gauge(
        "herd_job_last_run_end_timestamp_seconds",
        "Unix time the job's last run ended.",
        &one(format!("{:.3}", facts.end)),
    );
    gauge(
        "herd_job_last_run_duration_seconds",
        "How long the job's last run took.",
        &one(format!("{:.3}", (facts.end - facts.start).max(0.0))),
    );
    gauge(
        "herd_job_last_run_success",
        "1 if the job's last run succeeded on every host, else 0.",
        &one(u8::from(facts.success).to_string()),
    );
    gauge(
        "herd_job_last_run_exit_code",
        "herd's exit code for the job's last run.",
        &one(facts.exit_code.to_string()),
    );
    let by = facts.summary.hosts_by_status();
    let rows: Vec<(String, String)> = by
        .iter()
        .map(|(status, hosts)| (format!(",status=\"{status}\""), hosts.len().to_string()))
        .collect();
    gauge(
        "herd_job_last_run_hosts",
        "Hosts of the job's last run by their worst status.",
        &rows,
    );
    gauge(
        "herd_job_last_run_changed_total",
        "Task results that changed something in the job's last run.",
        &one(facts.summary.changed().to_string()),
    );
    let last_success = if facts.success {
        Some(facts.end)
    } else {
        previous_success(old, &job)
    };
    if let Some(t) = last_success {
        gauge(
            LAST_SUCCESS,
            "Unix time the job last ended successfully.",
            &one(format!("{t:.3}")),
        );
    }
    out
}

/// Write the metrics for `facts` to `path`, atomically.
pub fn write(path: &Path, facts: &RunFacts) -> Result<(), MetricsError> {
    let err = |source| MetricsError {
        path: path.to_path_buf(),
        source,
    };
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let text = render(facts, &old);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::HostStats;

    fn summary() -> Summary {
        let mut s = Summary::default();
        s.hosts.insert(
            "web1".into(),
            HostStats {
                ok: 2,
                changed: 1,
                ..HostStats::default()
            },
        );
        s.hosts.insert(
            "web2".into(),
            HostStats {
                failed: 1,
                ..HostStats::default()
            },
        );
        s
    }

    #[test]
    fn renders_the_textfile_format() {
        let s = summary();
        let facts = RunFacts {
            job: "nightly \"backup\"",
            start: 1000.0,
            end: 1012.5,
            exit_code: 2,
            success: false,
            summary: &s,
        };
        let old =
            "herd_job_last_success_timestamp_seconds{job=\"nightly \\\"backup\\\"\"} 900.000\n";
        insta::assert_snapshot!(render(&facts, old));
    }

    #[test]
    fn writes_atomically_and_keeps_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herd.prom");
        let s = summary();
        let facts = RunFacts {
            job: "j",
            start: 1.0,
            end: 2.0,
            exit_code: 0,
            success: true,
            summary: &s,
        };
        write(&path, &facts).unwrap();
        write(&path, &facts).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["herd.prom"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("herd_job_last_run_success{job=\"j\"} 1\n"));
        assert!(text.contains("herd_job_last_success_timestamp_seconds{job=\"j\"} 2.000\n"));
    }
}
