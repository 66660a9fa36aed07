//! The live view on a terminal: one transient line under the output that
//! says what the current task is doing (hosts done, running and failed,
//! the hosts running longest by name, the time since the task started).
//!
//! The [`Board`] is fed by the run's own [`EventSink`](super::EventSink):
//! every event is shown to it as it is sent (so it is always in the order
//! the run sends them, however far behind the printer is), and the
//! executor tells it when a host starts and ends a task, which events
//! alone cannot say (under `--forks` a host may wait before it starts; a
//! loop reports items, never "done"). The human printer draws
//! [`Board::line`] with indicatif and clears it before anything else is
//! printed, so the final output is the same as without a terminal. Only a
//! terminal gets a board ([`wanted`]); without one nothing here runs.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use console::style;
use indexmap::IndexMap;

use crate::output::event::{Event, Status};

/// How many of the longest-running hosts the line names.
const NAMED: usize = 5;

/// Whether stdout gets a live view: a terminal that can move its cursor.
pub fn wanted() -> bool {
    console::Term::stdout().is_term() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

#[derive(Debug, Clone, Copy)]
enum HostState {
    /// In the task, not started yet (waiting for a worker, `throttle`).
    Queued,
    Running(Instant),
    Done {
        failed: bool,
    },
}

#[derive(Debug)]
struct HostEntry {
    /// The task the host is in (differs between hosts only under the
    /// `free` strategy).
    task: String,
    state: HostState,
}

#[derive(Debug, Default)]
struct State {
    /// The task started last.
    task: String,
    started: Option<Instant>,
    hosts: IndexMap<String, HostEntry>,
}

/// What the current task's hosts are doing.
#[derive(Debug, Default)]
pub struct Board {
    state: Mutex<State>,
}

/// The hosts of the board by what they are doing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    /// Finished, failed ones included.
    pub done: usize,
    /// Finished failed or unreachable.
    pub failed: usize,
    pub running: usize,
    pub queued: usize,
}

impl Board {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Take in an event the run is sending.
    pub fn observe(&self, event: &Event) {
        match event {
            Event::PlayStart { .. } | Event::Recap(_) => self.with(|s| *s = State::default()),
            Event::TaskStart { name, hosts, .. } => self.with(|s| {
                // A task that starts while other hosts still run theirs
                // (the `free` strategy) joins them; otherwise it is the
                // board's new task (`linear`: every host finished the last).
                let others_running = s
                    .hosts
                    .values()
                    .any(|h| matches!(h.state, HostState::Running(_)));
                if !others_running {
                    s.hosts.clear();
                    s.started = Some(Instant::now());
                }
                s.task.clone_from(name);
                for h in hosts {
                    s.hosts.insert(
                        h.clone(),
                        HostEntry {
                            task: name.clone(),
                            state: HostState::Queued,
                        },
                    );
                }
            }),
            // A loop's item: the host is at work, not done.
            Event::HostResult(r) if r.item.is_some() => self.host_started(&r.host),
            Event::HostResult(r) => self.host_finished(&r.host, r.status),
            _ => {}
        }
    }

    /// A host began its task.
    pub fn host_started(&self, host: &str) {
        self.with(|s| {
            if let Some(h) = s.hosts.get_mut(host) {
                if matches!(h.state, HostState::Queued) {
                    h.state = HostState::Running(Instant::now());
                }
            }
        });
    }

    /// A host ended its task with `status` (the first report wins).
    pub fn host_finished(&self, host: &str, status: Status) {
        self.with(|s| {
            if let Some(h) = s.hosts.get_mut(host) {
                if !matches!(h.state, HostState::Done { .. }) {
                    h.state = HostState::Done {
                        failed: matches!(status, Status::Failed | Status::Unreachable),
                    };
                }
            }
        });
    }

    pub fn counts(&self) -> Counts {
        self.with(|s| {
            let mut c = Counts {
                total: s.hosts.len(),
                ..Counts::default()
            };
            for h in s.hosts.values() {
                match h.state {
                    HostState::Queued => c.queued += 1,
                    HostState::Running(_) => c.running += 1,
                    HostState::Done { failed } => {
                        c.done += 1;
                        c.failed += usize::from(failed);
                    }
                }
            }
            c
        })
    }

    /// Hosts of the board that have not finished.
    pub fn unfinished(&self) -> usize {
        let c = self.counts();
        c.running + c.queued
    }

    /// The line at `now`, at most `width` columns:
    /// `TASK [name] 12.3s · 3/8 done · 1 failed · 4 running: web3 12.3s, web4 12.1s, +2 more`.
    pub fn line(&self, now: Instant, width: usize) -> String {
        let c = self.counts();
        let (task, started, running) = self.with(|s| {
            let mut running: Vec<(&String, &HostEntry, Instant)> = s
                .hosts
                .iter()
                .filter_map(|(name, h)| match h.state {
                    HostState::Running(t) => Some((name, h, t)),
                    _ => None,
                })
                .collect();
            // Longest running first; a stable sort keeps the play's host
            // order among hosts that started together.
            running.sort_by_key(|&(_, _, t)| t);
            let named: Vec<String> = running
                .iter()
                .take(NAMED)
                .map(|(name, h, t)| {
                    let task = if h.task == s.task {
                        String::new()
                    } else {
                        format!(" [{}]", h.task)
                    };
                    format!(
                        "{name}{task} {}",
                        elapsed(now.saturating_duration_since(*t))
                    )
                })
                .collect();
            (s.task.clone(), s.started, named)
        });
        let mut line = format!("TASK [{task}]");
        if let Some(t) = started {
            let _ = write!(line, " {}", elapsed(now.saturating_duration_since(t)));
        }
        let _ = write!(
            line,
            " · {}",
            style(format!("{}/{} done", c.done, c.total)).green()
        );
        if c.failed > 0 {
            let _ = write!(line, " · {}", style(format!("{} failed", c.failed)).red());
        }
        if c.running > 0 {
            let _ = write!(
                line,
                " · {}: {}",
                style(format!("{} running", c.running)).yellow(),
                running.join(", ")
            );
            if c.running > running.len() {
                let _ = write!(line, ", +{} more", c.running - running.len());
            }
        }
        if c.queued > 0 {
            let _ = write!(line, " · {} queued", c.queued);
        }
        // Masked as every printed line is: names come unmasked from the run.
        let line = crate::secrets::redact(&line);
        console::truncate_str(&line, width, "…").into_owned()
    }
}

/// `4.2s`, `3m05s`, `1h02m`.
fn elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::event::HostResult;

    fn task(name: &str, hosts: &[&str]) -> Event {
        Event::TaskStart {
            name: name.into(),
            location: "site.yml:3".into(),
            hosts: hosts.iter().map(|h| (*h).to_string()).collect(),
            handler: false,
        }
    }

    fn result(host: &str, status: Status, item: Option<&str>) -> Event {
        Event::HostResult(HostResult {
            host: host.into(),
            task: "t".into(),
            status,
            changed: false,
            duration_ms: 0,
            msg: None,
            item: item.map(str::to_string),
            delegated_to: None,
            diffs: Vec::new(),
            output: None,
            changes: Vec::new(),
            censored: false,
            result: None,
        })
    }

    #[test]
    fn hosts_go_from_queued_to_running_to_done() {
        let b = Board::default();
        b.observe(&task("slow", &["a", "b", "c", "d"]));
        assert_eq!(b.counts().queued, 4);
        for h in ["a", "b", "c"] {
            b.host_started(h);
        }
        b.observe(&result("a", Status::Ok, None));
        b.observe(&result("b", Status::Failed, None));
        // A result for a host the task does not have changes nothing.
        b.observe(&result("zz", Status::Ok, None));
        let c = b.counts();
        assert_eq!(
            c,
            Counts {
                total: 4,
                done: 2,
                failed: 1,
                running: 1,
                queued: 1
            }
        );
        assert_eq!(b.unfinished(), 2);
        // The first word counts: the executor's late "finished" does not
        // turn a failure into a success.
        b.host_finished("b", Status::Ok);
        assert_eq!(b.counts().failed, 1);
    }

    #[test]
    fn a_loop_item_is_work_in_progress_until_the_host_finishes() {
        let b = Board::default();
        b.observe(&task("loop", &["a"]));
        b.observe(&result("a", Status::Changed, Some("one")));
        assert_eq!(b.counts().running, 1);
        b.host_finished("a", Status::Changed);
        assert_eq!(b.unfinished(), 0);
    }

    #[test]
    fn the_line_names_the_longest_running_hosts_first() {
        let b = Board::default();
        b.observe(&task("Slow task", &["fast", "s1", "s2"]));
        b.host_started("s2");
        std::thread::sleep(Duration::from_millis(5));
        b.host_started("s1");
        b.host_started("fast");
        b.observe(&result("fast", Status::Ok, None));
        let now = Instant::now() + Duration::from_secs(3);
        let line = plain(&b, now, 500);
        assert!(line.starts_with("TASK [Slow task] 3."), "{line}");
        assert!(line.contains(" · 1/3 done · 2 running: s2 3."), "{line}");
        assert!(line.contains("s, s1 3."), "{line}");
        assert!(!line.contains("failed"), "{line}");
    }

    #[test]
    fn the_line_fits_the_terminal_and_counts_the_hosts_it_does_not_name() {
        let b = Board::default();
        let hosts: Vec<String> = (0..9).map(|i| format!("web{i}")).collect();
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        b.observe(&task("t", &names));
        for h in &names {
            b.host_started(h);
        }
        let line = plain(&b, Instant::now(), 500);
        assert!(line.contains("9 running: web0 "), "{line}");
        assert!(line.ends_with(", +4 more"), "{line}");
        assert!(console::measure_text_width(&b.line(Instant::now(), 40)) <= 40);
    }

    #[test]
    fn a_task_started_beside_running_hosts_joins_them_under_free() {
        let b = Board::default();
        b.observe(&task("one", &["a"]));
        b.host_started("a");
        b.observe(&task("two", &["b"]));
        b.host_started("b");
        assert_eq!(b.counts().running, 2);
        let line = plain(&b, Instant::now(), 500);
        assert!(line.starts_with("TASK [two]"), "{line}");
        assert!(line.contains("a [one] "), "{line}");
        // Once nobody runs, the next task replaces the board.
        b.host_finished("a", Status::Ok);
        b.host_finished("b", Status::Ok);
        b.observe(&task("three", &["a", "b"]));
        assert_eq!(b.counts().total, 2);
        assert_eq!(b.counts().done, 0);
    }

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(elapsed(Duration::from_millis(4200)), "4.2s");
        assert_eq!(elapsed(Duration::from_secs(185)), "3m05s");
        assert_eq!(elapsed(Duration::from_secs(3720)), "1h02m");
    }

    /// The line as plain text, whatever the terminal the tests run on.
    fn plain(b: &Board, now: Instant, width: usize) -> String {
        console::strip_ansi_codes(&b.line(now, width)).into_owned()
    }
}
