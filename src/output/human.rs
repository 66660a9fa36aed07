//! Human output, shaped like ansible-playbook's so people read it at a
//! glance: `PLAY [..]`, `TASK [..]`, one line per host result, diffs with
//! `--diff`, and the PLAY RECAP. On a terminal a transient live line (see
//! `live.rs`) sits under the output while a task runs and is cleared
//! before the next banner, so what stays on screen is what a pipe gets;
//! without a terminal, plain lines with no escape codes (console turns
//! colours off when stdout is not a tty, or with `NO_COLOR`). `--step`
//! questions are asked here, between two printed lines.

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::output::event::{Event, HostResult, Status, TaskProfile};
use crate::output::live::Board;
use crate::output::recap::Recap;
use crate::output::step::Question;

pub struct HumanPrinter {
    verbosity: u8,
    progress: Option<ProgressBar>,
    /// What the live line shows; `None` without a terminal.
    board: Option<Arc<Board>>,
    /// `volume_backup` reports, printed after the recap.
    backups: Vec<crate::jobs::backup::BackupReport>,
}

/// A `TITLE [name] ****` banner padded to 80 columns like Ansible's.
fn banner(title: &str) -> String {
    let width = 79usize.saturating_sub(title.chars().count() + 1).max(3);
    format!("\n{} {}", title, "*".repeat(width))
}

impl HumanPrinter {
    pub fn new(verbosity: u8, board: Option<Arc<Board>>) -> Self {
        HumanPrinter {
            verbosity,
            progress: None,
            board,
            backups: Vec::new(),
        }
    }

    pub fn run(mut self, rx: Receiver<Event>) {
        let secrets = crate::secrets::global();
        for mut event in rx {
            event.redact(secrets);
            self.handle(event);
        }
        self.stop_progress();
    }

    fn line(&self, text: &str) {
        // Masked again as printed text, for what the event's own fields
        // could not show (a secret split by JSON pretty-printing).
        let text = crate::secrets::redact(text);
        match &self.progress {
            Some(pb) => pb.println(text),
            None => {
                let mut out = std::io::stdout().lock();
                // A closed stdout must not kill the run.
                let _ = writeln!(out, "{text}");
            }
        }
    }

    fn stop_progress(&mut self) {
        if let Some(pb) = self.progress.take() {
            pb.finish_and_clear();
        }
    }

    /// Show the live line under the banner just printed, while the
    /// board has hosts at work.
    fn start_progress(&mut self) {
        let Some(board) = self.board.clone() else {
            return;
        };
        if self.progress.is_some() || board.unfinished() == 0 {
            return;
        }
        let target = ProgressDrawTarget::stdout();
        if target.is_hidden() {
            return;
        }
        let pb = ProgressBar::with_draw_target(None, target);
        // Drawn from the board at each tick, so times move on their own.
        let live = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let columns = console::Term::stdout().size().1;
            let width = usize::from(columns).saturating_sub(3).max(10);
            let _ = w.write_str(&board.line(Instant::now(), width));
        };
        pb.set_style(
            ProgressStyle::with_template("{spinner} {live}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .with_key("live", live),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        self.progress = Some(pb);
    }

    /// `--step`: ask once everything before is printed and the live line
    /// is gone; then, as ansible-playbook, the question as a banner.
    fn ask(&mut self, question: &Question) {
        self.stop_progress();
        let _ = std::io::stdout().flush();
        let answer = question.ask();
        self.line(&banner(question.prompt.trim_end()));
        question.answer(answer);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::PlaybookStart { path, check } => {
                if self.verbosity > 0 {
                    let mode = if check { " (check mode)" } else { "" };
                    self.line(&format!("PLAYBOOK: {path}{mode}"));
                }
            }
            Event::PlayStart { name, hosts } => {
                self.stop_progress();
                self.line(&style(banner(&format!("PLAY [{name}]"))).bold().to_string());
                if hosts.is_empty() {
                    self.line(&style("skipping: no hosts matched").cyan().to_string());
                }
            }
            Event::TaskStart {
                name,
                location,
                handler,
                ..
            } => {
                self.stop_progress();
                let kind = if handler { "RUNNING HANDLER" } else { "TASK" };
                self.line(
                    &style(banner(&format!("{kind} [{name}]")))
                        .bold()
                        .to_string(),
                );
                if self.verbosity > 0 {
                    self.line(&format!("task path: {location}"));
                }
                self.start_progress();
            }
            Event::HostResult(r) => {
                self.print_result(&r);
                if self.board.as_ref().is_some_and(|b| b.unfinished() == 0) {
                    self.stop_progress();
                }
            }
            Event::Warning { message } => {
                self.line(&style(format!("[WARNING]: {message}")).magenta().to_string());
            }
            Event::Recap(recap) => {
                self.stop_progress();
                self.print_recap(&recap);
                self.print_backups();
            }
            Event::Profile { tasks } => {
                self.stop_progress();
                self.print_profile(&tasks);
            }
            Event::Backup(report) => self.backups.push(report),
            Event::Step(question) => self.ask(&question),
        }
    }

    fn print_result(&self, r: &HostResult) {
        let host = match &r.delegated_to {
            Some(d) => format!("[{} -> {}]", r.host, d),
            None => format!("[{}]", r.host),
        };
        let item = r
            .item
            .as_ref()
            .map(|i| format!(" => (item={i})"))
            .unwrap_or_default();
        let painted = match r.status {
            Status::Ok => style(format!("ok: {host}{item}")).green(),
            Status::Changed => style(format!("changed: {host}{item}")).yellow(),
            Status::Skipped => style(format!("skipping: {host}{item}")).cyan(),
            Status::Failed => style(format!("fatal: {host}{item}: FAILED!")).red(),
            Status::Unreachable => style(format!("fatal: {host}: UNREACHABLE!")).red(),
            Status::Ignored => style(format!("failed: {host}{item} (ignored)")).red(),
        };
        let mut text = painted.to_string();
        let failed = matches!(
            r.status,
            Status::Failed | Status::Unreachable | Status::Ignored
        );
        if r.censored {
            // ansible-playbook's shape for a `no_log` result: the notice
            // as JSON, on failures always and otherwise with -v.
            if failed || self.verbosity > 0 {
                let notice =
                    serde_json::to_string(r.msg.as_deref().unwrap_or_default()).unwrap_or_default();
                text.push_str(&format!(
                    " => {{\"censored\": {notice}, \"changed\": {}}}",
                    r.changed
                ));
            }
        } else if let Some(output) = &r.output {
            let pretty = serde_json::to_string_pretty(output).unwrap_or_default();
            text.push_str(&format!(" => {pretty}"));
        } else if let Some(msg) = &r.msg {
            if failed || self.verbosity > 0 {
                text.push_str(&format!(" => {msg}"));
            }
        }
        if self.verbosity > 0 && !r.changes.is_empty() {
            for c in &r.changes {
                text.push_str(&format!("\n    {c}"));
            }
        }
        self.line(&text);
        for d in &r.diffs {
            let mut body = String::new();
            for line in d.unified().lines() {
                let painted = if line.starts_with('+') && !line.starts_with("+++") {
                    style(line).green().to_string()
                } else if line.starts_with('-') && !line.starts_with("---") {
                    style(line).red().to_string()
                } else if line.starts_with("@@") {
                    style(line).cyan().to_string()
                } else {
                    line.to_string()
                };
                body.push_str(&painted);
                body.push('\n');
            }
            self.line(body.trim_end());
        }
    }

    fn print_recap(&self, recap: &Recap) {
        self.line(&style(banner("PLAY RECAP")).bold().to_string());
        let width = recap
            .hosts
            .keys()
            .map(std::string::String::len)
            .max()
            .unwrap_or(0)
            .max(26);
        for (host, s) in &recap.hosts {
            let name = format!("{host:<width$}");
            let name = if s.failed > 0 || s.unreachable > 0 {
                style(name).red()
            } else if s.changed > 0 {
                style(name).yellow()
            } else {
                style(name).green()
            };
            self.line(&format!(
                "{name} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={}",
                s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.rescued, s.ignored
            ));
        }
    }

    /// The `volume_backup` section after the recap: per host the archives
    /// (path, size, SHA-256), what retention removed, and failures.
    fn print_backups(&self) {
        if self.backups.is_empty() {
            return;
        }
        self.line(&style(banner("BACKUPS")).bold().to_string());
        for line in crate::jobs::backup::render(&self.backups) {
            self.line(&line);
        }
    }

    /// `--profile`: per task, round trips and where the time went, summed
    /// over hosts; round trips (execs + transfers) per run show which
    /// modules need more than one.
    fn print_profile(&self, tasks: &[TaskProfile]) {
        self.line(
            &style(banner("PROFILE (summed over hosts)"))
                .bold()
                .to_string(),
        );
        let width = tasks
            .iter()
            .map(|t| t.task.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(10, 40);
        self.line(&format!(
            "{:<width$}  {:>5}  {:>6}  {:>9}  {:>9}  {:>8}  {:>10}  {:>8}  {:>11}",
            "task",
            "runs",
            "execs",
            "transfers",
            "trips/run",
            "connects",
            "connect ms",
            "exec ms",
            "transfer ms"
        ));
        let mut total = TaskProfile {
            task: "TOTAL".into(),
            ..TaskProfile::default()
        };
        for t in tasks {
            self.line(&profile_row(t, width));
            total.runs += t.runs;
            total.execs += t.execs;
            total.connects += t.connects;
            total.connect_ms += t.connect_ms;
            total.exec_ms += t.exec_ms;
            total.transfers += t.transfers;
            total.transfer_ms += t.transfer_ms;
        }
        self.line(&profile_row(&total, width));
    }
}

fn profile_row(t: &TaskProfile, width: usize) -> String {
    let name: String = t.task.chars().take(width).collect();
    let per_run = if t.runs == 0 {
        0.0
    } else {
        (t.execs + t.transfers) as f64 / t.runs as f64
    };
    format!(
        "{name:<width$}  {:>5}  {:>6}  {:>9}  {:>9.1}  {:>8}  {:>10.1}  {:>8.1}  {:>11.1}",
        t.runs, t.execs, t.transfers, per_run, t.connects, t.connect_ms, t.exec_ms, t.transfer_ms
    )
}
