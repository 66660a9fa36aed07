//! `pause`: wait a number of seconds or minutes, or until the operator
//! answers a prompt on the controller's terminal.
//!
//! It runs once for all the play's hosts ([`Module::BYPASS_HOST_LOOP`]),
//! as in Ansible, and waits in `plan` (the wait is the whole task, so check
//! mode waits too, as Ansible's does); the plan is empty and carries the
//! result. A timed pause needs nothing from the host; a prompt is read from
//! the controller's terminal (`/dev/tty`), and without a terminal the task
//! fails instead of waiting for an answer that cannot come.
//!
//! Differences from Ansible: a timed pause shows no prompt and cannot be
//! ended early with ctrl+C then `C` (ctrl+C interrupts the run).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::{de_opt_f64, yes};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `pause`: what `herd doc` shows, and what the parser takes.
pub struct PauseParams {
    /// Minutes to wait (whole minutes, as Ansible takes them).
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub minutes: Option<f64>,
    /// Seconds to wait (whole seconds, at least 1).
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub seconds: Option<f64>,
    /// The question to ask; without `seconds` or `minutes` the task waits for an answer on the
    /// controller's terminal.
    #[serde(default, deserialize_with = "crate::params::de_opt_string")]
    pub prompt: Option<String>,
    /// Show what the operator types.
    #[serde(default = "yes", deserialize_with = "crate::params::de_bool")]
    pub echo: bool,
}

/// The `pause` module.
pub struct Pause;

/// Read one line from the controller's terminal after showing `prompt`,
/// with echo off when asked.
fn ask(prompt: &str, echo: bool) -> Result<String, ModuleError> {
    use std::os::fd::AsRawFd as _;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| ModuleError::failed(format!("pause: cannot open the terminal: {e}")))?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is the open terminal; saved is a valid termios to fill.
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if !echo && have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: fd is the open terminal; quiet is a valid termios.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut w = &tty;
    let shown = write!(w, "{prompt}").and_then(|()| w.flush());
    let mut line = String::new();
    let read = shown.and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    if !echo && have_termios {
        // SAFETY: restores what tcgetattr read from the same fd.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        let _ = writeln!(w);
    }
    read.map_err(|e| ModuleError::failed(format!("pause: cannot read the answer: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

impl Pause {
    fn result(p: &PauseParams, task_name: &str) -> Result<Map<String, Value>, ModuleError> {
        if p.minutes.is_some() && p.seconds.is_some() {
            return Err(ModuleError::Params(ParamError::Invalid {
                module: Self::NAME,
                path: "seconds".into(),
                reason: "mutually exclusive with minutes".into(),
            }));
        }
        let (wait, unit) = match (p.minutes, p.seconds) {
            (Some(m), _) => (Some(m.trunc() * 60.0), "minutes"),
            (None, Some(s)) => (Some(s.trunc()), "seconds"),
            (None, None) => (None, "minutes"),
        };
        let start_at = SystemTime::now();
        let start = Instant::now();
        let mut user_input = String::new();
        match wait {
            Some(secs) => {
                let secs = secs.max(1.0);
                crate::cancel::sleep(Duration::from_secs_f64(secs))
                    .map_err(|c| ModuleError::Host(c.into_error()))?;
            }
            None => {
                if !std::io::stdin().is_terminal() {
                    return Err(ModuleError::failed(
                        "pause: a prompt needs a terminal to answer it, and herd's standard input is not one; give `seconds` or `minutes` instead",
                    ));
                }
                let hidden = if p.echo { "" } else { " (output is hidden)" };
                let question = p
                    .prompt
                    .as_deref()
                    .unwrap_or("Press enter to continue, Ctrl+C to interrupt");
                user_input = ask(&format!("[{task_name}]\n{question}{hidden}:"), p.echo)?;
            }
        }
        let took = start.elapsed();
        let shown = match unit {
            "minutes" => (took.as_secs_f64() / 60.0 * 100.0).round() / 100.0,
            _ => (took.as_secs_f64() * 100.0).round() / 100.0,
        };
        let mut r = Map::new();
        r.insert("rc".into(), json!(0));
        r.insert("stderr".into(), json!(""));
        r.insert("stdout".into(), json!(format!("Paused for {shown} {unit}")));
        r.insert("start".into(), json!(crate::clock::timestamp(start_at)));
        r.insert(
            "stop".into(),
            json!(crate::clock::timestamp(SystemTime::now())),
        );
        r.insert("delta".into(), json!(took.as_secs()));
        r.insert("echo".into(), json!(p.echo));
        r.insert("user_input".into(), json!(user_input));
        Ok(r)
    }
}

impl Module for Pause {
    const NAME: &'static str = "pause";
    const BYPASS_HOST_LOOP: bool = true;
    const DOC_SHORT: &'static str =
        "Wait some seconds or minutes, or for an answer on the controller's terminal.";
    const DOC_LONG: &'static str = r##"Runs once for all the play's hosts, as in Ansible, and waits in check mode too. With `seconds` or `minutes` it waits that long; otherwise it shows `prompt` on the controller's terminal and waits for a line, returned as `user_input`. Without a terminal (a cron job, CI) a prompt fails the task rather than hang."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Let the cluster settle
  pause:
    seconds: 30
- name: Ask before the dangerous part
  pause:
    prompt: "Type yes to migrate the database"
  register: answer
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("user_input", "the answer typed (empty for a timed pause)"),
        ("stdout", "`Paused for N seconds` (or minutes)"),
        ("start", "when the pause started"),
        ("stop", "when it ended"),
        ("delta", "whole seconds paused"),
        ("echo", "the `echo` parameter"),
    ];
    type Params = PauseParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let name = format!("pause on {}", host.name());
        Ok(Plan {
            result: Self::result(p, &name)?,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        _host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::read_in_plan(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, FakeHost};
    use crate::DynModule;

    #[test]
    fn a_timed_pause_waits_and_changes_nothing() {
        let mut h = FakeHost::new().strict();
        let started = Instant::now();
        let pl = DynModule::plan(&Pause, &json!({"seconds": "0"}), &mut h).expect("plan");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "at least a second, as Ansible"
        );
        assert!(pl.is_empty(), "never a change; check mode waits the same");
        assert!(h.scripts.is_empty(), "the host is not asked anything");
        assert!(get(&pl.result, "stdout")
            .as_str()
            .is_some_and(|s| s.starts_with("Paused for 1") && s.ends_with(" seconds")));
        assert_eq!(get(&pl.result, "delta"), 1);
        assert_eq!(get(&pl.result, "user_input"), "");
    }

    #[test]
    fn a_prompt_without_a_terminal_fails_and_bad_params_are_refused() {
        if std::io::stdin().is_terminal() {
            return;
        }
        let mut h = FakeHost::new();
        let err = DynModule::plan(&Pause, &json!({"prompt": "Continue?"}), &mut h)
            .expect_err("no terminal");
        assert!(err.to_string().contains("needs a terminal"), "{err}");
        let err = DynModule::plan(&Pause, &json!({"minutes": 1, "seconds": 1}), &mut h)
            .expect_err("both");
        assert!(matches!(err, ModuleError::Params(ref e) if e.field() == Some("seconds")));
        assert!(Pause.check_params(&json!({"seconds": "soon"})).is_err());
        assert!(Pause.bypasses_host_loop());
    }
}
