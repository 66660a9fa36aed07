//! Per-host counters and the PLAY RECAP they print as.

use indexmap::IndexMap;
use serde::Serialize;

use crate::output::event::Status;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostStats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

impl HostStats {
    /// Count one task result the way Ansible does: a changed task counts
    /// as both ok and changed; an ignored failure counts as ok and ignored.
    pub fn count(&mut self, status: Status) {
        match status {
            Status::Ok => self.ok += 1,
            Status::Changed => {
                self.ok += 1;
                self.changed += 1;
            }
            Status::Failed => self.failed += 1,
            Status::Skipped => self.skipped += 1,
            Status::Unreachable => self.unreachable += 1,
            Status::Ignored => {
                self.ok += 1;
                self.ignored += 1;
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Recap {
    pub hosts: IndexMap<String, HostStats>,
}

impl Recap {
    /// 0 all good, 2 some host failed, 4 some host unreachable (and none
    /// failed), as ansible-playbook does.
    pub fn exit_code(&self) -> u8 {
        if self.hosts.values().any(|s| s.failed > 0) {
            2
        } else if self.hosts.values().any(|s| s.unreachable > 0) {
            4
        } else {
            0
        }
    }

    pub fn merge(&mut self, other: &Recap) {
        for (host, s) in &other.hosts {
            let e = self.hosts.entry(host.clone()).or_default();
            e.ok += s.ok;
            e.changed += s.changed;
            e.unreachable += s.unreachable;
            e.failed += s.failed;
            e.skipped += s.skipped;
            e.rescued += s.rescued;
            e.ignored += s.ignored;
        }
    }
}
