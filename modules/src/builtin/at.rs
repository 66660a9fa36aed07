//! `at`: ansible.posix's `at`: queue a command or script file with `at`
//! to run once, some minutes, hours, days or weeks from now, or remove the
//! queued jobs that run it.
//!
//! A job matches when `at -c JOB` (the job as at stored it) contains the
//! command (or the script file's content), stripped, as the collection
//! matches. The plan reads `atq` and every job's `at -c` in one round
//! trip: `absent` removes the matching jobs, `unique` adds nothing when
//! one matches, and otherwise a new job is always added (so such a task
//! changes on every run, as in Ansible). A command is queued from a temp
//! file `/tmp/atXXXXXXXX`, removed afterwards, whose path is returned as
//! `script_file`, as the collection does.
//!
//! The collection has no check mode: check mode skips a task that would
//! change something (one that would not reports ok, where Ansible skips it
//! too).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::{de_bool, de_opt_string};
use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// `units`' values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Days.
    Days,
    /// Weeks.
    Weeks,
}

impl Units {
    fn word(self) -> &'static str {
        match self {
            Units::Minutes => "minutes",
            Units::Hours => "hours",
            Units::Days => "days",
            Units::Weeks => "weeks",
        }
    }
}

/// `state`'s values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AtState {
    /// Queue the job.
    #[default]
    Present,
    /// Remove the matching jobs.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `at`: what `herd doc` shows, and what the parser takes.
pub struct AtParams {
    /// A shell command to run later.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub command: Option<String>,
    /// A script file on the host to run later (instead of `command`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub script_file: Option<String>,
    /// How many `units` from now.
    #[serde(default, deserialize_with = "crate::params::de_opt_u64")]
    pub count: Option<u64>,
    /// The unit of `count`.
    pub units: Option<Units>,
    /// Queue the job or remove the matching ones.
    #[serde(default)]
    pub state: AtState,
    /// Add no job when a matching one is queued.
    #[serde(default, deserialize_with = "de_bool")]
    pub unique: bool,
}

/// The `at` module.
pub struct At;

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: At::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// What apply does.
#[derive(Debug, serde::Serialize, Deserialize)]
enum Action {
    Remove(Vec<String>),
    Add,
}

/// Each queued job's number and whether its stored job contains `text`.
fn matching_jobs(out: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for chunk in out.split("\n@@JOB ").skip(1) {
        let (id, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        if body.contains(text) {
            found.push(id.trim().to_string());
        }
    }
    found
}

impl Module for At {
    const NAME: &'static str = "at";
    const DOC_SHORT: &'static str =
        "Queue a command or script with at, or remove the queued jobs running it.";
    const DOC_LONG: &'static str = r##"ansible.posix's `at`; the host needs `at` (and its `atd`). A new job is added on
every run unless `unique` finds a queued job that runs the same text."##;
    const DOC_EXAMPLE: &'static str = r##"- at:
    command: ls -d / >/dev/null
    count: 20
    units: minutes
    unique: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("state", "The task's `state`."),
        (
            "script_file",
            "The file queued (a temp file for `command`).",
        ),
        ("count", "The task's `count`."),
        ("units", "The task's `units`."),
    ];
    type Params = AtParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        match (&p.command, &p.script_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "command",
                    "parameters are mutually exclusive: command|script_file",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "command",
                    "one of the following is required: command, script_file",
                ))
            }
            _ => {}
        }
        let present = p.state == AtState::Present;
        if present && (p.count.unwrap_or(0) == 0 || p.units.is_none()) {
            return Err(ModuleError::failed(
                "present state requires count and units",
            ));
        }
        let mut plan = Plan::default();
        plan.result.insert(
            "state".into(),
            json!(if present { "present" } else { "absent" }),
        );
        let mut script = String::from(
            "command -v at >/dev/null 2>&1 || { echo NOAT; exit 0; }\n\
             command -v atq >/dev/null 2>&1 || { echo NOATQ; exit 0; }\n",
        );
        if let Some(f) = &p.script_file {
            script.push_str(&format!(
                "if [ -r {f} ]; then echo '@@FILE'; cat {f}; else echo NOFILE; exit 0; fi\n",
                f = quote(f)
            ));
        }
        script.push_str(
            "q=$(atq) || exit 3\necho '@@JOBS'\n\
             for j in $(printf '%s\\n' \"$q\" | awk '{print $1}'); do printf '\\n@@JOB %s\\n' \"$j\"; at -c \"$j\"; done\n",
        );
        let out = host.run(&script, None)?;
        if out.rc == 3 {
            return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
        }
        let text = out.stdout_str();
        if text.starts_with("NOAT") {
            let tool = if text.starts_with("NOATQ") {
                "atq"
            } else {
                "at"
            };
            return Err(ModuleError::failed(format!(
                "Failed to find required executable \"{tool}\" in paths: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            )));
        }
        if text.starts_with("NOFILE") {
            return Err(ModuleError::failed(format!(
                "[Errno 2] No such file or directory: '{}'",
                p.script_file.as_deref().unwrap_or_default()
            )));
        }
        let (head, jobs) = text.split_once("@@JOBS\n").unwrap_or((&text, ""));
        let wanted = match &p.command {
            Some(c) => c.trim().to_string(),
            None => head
                .split_once("@@FILE\n")
                .map(|(_, f)| f.trim().to_string())
                .unwrap_or_default(),
        };
        let jobs = format!("\n{jobs}");
        let matching = if present && !p.unique {
            Vec::new()
        } else {
            matching_jobs(&jobs, &wanted)
        };
        let action = if !present {
            if matching.is_empty() {
                None
            } else {
                plan.changes
                    .push(format!("remove at job(s) {}", matching.join(", ")));
                Some(Action::Remove(matching))
            }
        } else if p.unique && !matching.is_empty() {
            None
        } else {
            let (count, units) = (p.count.unwrap_or(0), p.units.map_or("", Units::word));
            plan.changes
                .push(format!("queue a job now + {count} {units}"));
            plan.result.insert("count".into(), json!(p.count));
            plan.result
                .insert("units".into(), json!(p.units.map(Units::word)));
            Some(Action::Add)
        };
        if let Some(a) = action {
            plan.unknowable = true;
            plan.keep_state(&a)?;
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let action: Action = plan.state_as()?;
        let mut result = plan.result;
        match action {
            Action::Remove(ids) => {
                for id in ids {
                    let out = host.run(&format!("at -r {}", quote(&id)), None)?;
                    if !out.success() {
                        return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
                    }
                }
            }
            Action::Add => {
                let when = format!(
                    "now + {} {}",
                    p.count.unwrap_or(0),
                    p.units.map_or("", Units::word)
                );
                let (script, stdin) = match (&p.command, &p.script_file) {
                    (Some(c), _) => (
                        format!(
                            "f=$(mktemp /tmp/atXXXXXXXX) || exit 2\ncat > \"$f\"\necho \"FILE $f\"\n\
                             at -f \"$f\" {when}; rc=$?\nrm -f \"$f\"\nexit $rc\n"
                        ),
                        Some(format!("{c}\n").into_bytes()),
                    ),
                    (None, Some(f)) => (
                        format!("echo FILE {q}\nat -f {q} {when}\n", q = quote(f)),
                        None,
                    ),
                    (None, None) => return Err(ModuleError::failed("no command or script_file")),
                };
                let out = host.run(&script, stdin.as_deref())?;
                if !out.success() {
                    return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
                }
                let text = out.stdout_str();
                let file = crate::probe::tagged(&text, "FILE")
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                result.insert("script_file".into(), json!(file));
            }
        }
        result.insert("changed".into(), Value::Bool(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exec, FakeHost, Match};
    use crate::DynModule;

    /// The queue: (job number, command).
    #[derive(Default)]
    struct Queue {
        jobs: Vec<(u32, String)>,
        next: u32,
    }

    fn fake() -> FakeHost<Queue> {
        FakeHost::with_state(Queue {
            jobs: Vec::new(),
            next: 1,
        })
        .handle(Match::contains("@@JOBS"), |h, _, _| {
            let mut out = String::from("@@JOBS\n");
            for (id, cmd) in &h.jobs {
                out.push_str(&format!("\n@@JOB {id}\n#!/bin/sh\nexport X=1\n{cmd}\n"));
            }
            Ok(exec(0, out, ""))
        })
        .handle(Match::contains("at -f"), |h, _, stdin| {
            let cmd = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
            let id = h.next;
            h.next += 1;
            h.jobs.push((id, cmd));
            Ok(exec(
                0,
                "FILE /tmp/atabcdefgh\n",
                "job 1 at Sat Dec  5 07:00:00 2026\n",
            ))
        })
        .handle(Match::prefix("at -r"), |h, script, _| {
            let id: u32 = script
                .rsplit(' ')
                .next()
                .and_then(|s| s.trim_matches('\'').parse().ok())
                .unwrap_or(0);
            h.jobs.retain(|(j, _)| *j != id);
            Ok(exec(0, "", ""))
        })
    }

    #[test]
    fn a_unique_job_is_queued_once_then_removed() {
        let mut h = fake();
        let p = json!({"command": "touch /tmp/x", "count": 20, "units": "minutes", "unique": true});
        let plan = DynModule::plan(&At, &p, &mut h).expect("plan");
        assert!(plan.unknowable, "no check mode in the collection");
        assert!(h.jobs.is_empty(), "plan queued nothing");
        let out = DynModule::apply(&At, &p, plan, &mut h).expect("apply");
        assert_eq!(out.result["script_file"], "/tmp/atabcdefgh");
        assert_eq!(out.result["units"], "minutes");
        assert!(DynModule::plan(&At, &p, &mut h).expect("again").is_empty());
        // Without unique a job is added on every run.
        let q = json!({"command": "touch /tmp/x", "count": 1, "units": "hours"});
        assert!(!DynModule::plan(&At, &q, &mut h).expect("plan").is_empty());
        let absent = json!({"command": "touch /tmp/x", "state": "absent"});
        let plan = DynModule::plan(&At, &absent, &mut h).expect("plan");
        assert_eq!(plan.changes, ["remove at job(s) 1"]);
        DynModule::apply(&At, &absent, plan, &mut h).expect("apply");
        assert!(h.jobs.is_empty());
        assert!(DynModule::plan(&At, &absent, &mut h)
            .expect("again")
            .is_empty());
    }

    #[test]
    fn present_needs_count_and_units() {
        let mut h = fake();
        let e = DynModule::plan(&At, &json!({"command": "x"}), &mut h).expect_err("refused");
        assert_eq!(e.to_string(), "present state requires count and units");
        let e = DynModule::plan(
            &At,
            &json!({"command": "x", "script_file": "/y", "state": "absent"}),
            &mut h,
        )
        .expect_err("exclusive");
        assert!(matches!(e, ModuleError::Params(_)));
    }
}
