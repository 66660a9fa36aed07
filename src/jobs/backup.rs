//! `volume_backup` results for people and log readers: after each backup
//! task on a host, a `backup` event with the archives it wrote (size,
//! SHA-256), what retention removed, what failed and how long it took.
//! Read from what the module registers (`archives`, `removed`,
//! `failures`, `backup_dir`); nothing is asked of the host again.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::playbook::{Task, TaskKind};

/// One archive the module wrote and verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Archive {
    /// `volume`, `config` or `image`.
    pub kind: String,
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// One `volume_backup` run on one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupReport {
    pub host: String,
    pub task: String,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<String>,
    pub archives: Vec<Archive>,
    /// Files retention removed (archives and emptied manifests).
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl BackupReport {
    pub fn total_size(&self) -> u64 {
        self.archives.iter().map(|a| a.size).sum()
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The report for a task's result on `host`, when the task's module
/// reports archives ([`herdsman_modules::Module::REPORTS_ARCHIVES`]) and
/// wrote some (not a restore, not check mode).
pub fn report(
    modules: &herdsman_modules::Registry,
    task: &Task,
    host: &str,
    name: &str,
    result: &Map<String, Value>,
    duration_ms: u64,
) -> Option<BackupReport> {
    let TaskKind::Action { action, .. } = &task.kind else {
        return None;
    };
    let short = crate::actions::short_name(action);
    if !modules
        .find(short)
        .is_some_and(herdsman_modules::DynModule::reports_archives)
    {
        return None;
    }
    let archives: Vec<Archive> = serde_json::from_value(result.get("archives")?.clone()).ok()?;
    Some(BackupReport {
        host: host.to_string(),
        task: name.to_string(),
        duration_ms,
        backup_dir: result
            .get("backup_dir")
            .and_then(Value::as_str)
            .map(str::to_string),
        archives,
        removed: strings(result.get("removed")),
        failures: strings(result.get("failures")),
    })
}

/// `1.5 MiB`: sizes for people.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The human lines for the reports, printed after the recap.
pub fn render(reports: &[BackupReport]) -> Vec<String> {
    let mut lines = Vec::new();
    for r in reports {
        lines.push(format!(
            "{}: {} archive(s), {}, {:.1} s; retention removed {}{}",
            r.host,
            r.archives.len(),
            human_size(r.total_size()),
            r.duration_ms as f64 / 1000.0,
            r.removed.len(),
            if r.failures.is_empty() {
                String::new()
            } else {
                format!("; {} FAILED", r.failures.len())
            }
        ));
        for a in &r.archives {
            lines.push(format!(
                "    {}  {}  sha256:{}",
                a.path,
                human_size(a.size),
                a.sha256
            ));
        }
        for f in &r.removed {
            lines.push(format!("    removed {f}"));
        }
        for f in &r.failures {
            lines.push(format!("    failed: {f}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> herdsman_modules::Registry {
        herdsman_modules::Registry::builtin()
    }
    use serde_json::json;

    fn task(action: &str) -> Task {
        Task::new(
            TaskKind::Action {
                action: action.into(),
                args: json!({}),
            },
            crate::yaml::Span {
                path: std::sync::Arc::new("site.yml".into()),
                line: 1,
                col: 1,
                len: 1,
            },
        )
    }

    #[test]
    fn reads_what_volume_backup_registers() {
        let result = json!({
            "backup_dir": "/backup/docker",
            "archives": [{"kind": "volume", "name": "app_db", "path": "/backup/docker/volumes/app_db_20261204_023000.tar.gz",
                          "sha256": "ab".repeat(32), "size": 1_572_864, "containers": ["db"]}],
            "removed": ["/backup/docker/volumes/app_db_20261001_023000.tar.gz"],
            "changed": true,
        });
        let m = result.as_object().unwrap();
        let r =
            report(&builtin(), &task("volume_backup"), "d1", "Back up", m, 2500).expect("a report");
        assert_eq!(r.archives[0].size, 1_572_864);
        assert_eq!(r.removed.len(), 1);
        insta::assert_snapshot!(render(&[r]).join("\n"));
        assert!(report(&builtin(), &task("copy"), "d1", "x", m, 0).is_none());
        let check_mode = json!({"volumes": ["app_db"], "backup_dir": "/b"});
        assert!(report(
            &builtin(),
            &task("volume_backup"),
            "d1",
            "x",
            check_mode.as_object().unwrap(),
            0
        )
        .is_none());
    }

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
