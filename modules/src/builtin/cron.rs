//! `cron`: one job (or one environment variable) in a user's crontab or in
//! a file under /etc/cron.d.
//!
//! Jobs are found as Ansible finds them: by the `#Ansible: NAME` comment
//! right above the job line, or, failing that, by an identical job line
//! (which then gets the comment). The plan reads the crontab (`crontab -l`,
//! one round trip) or the file, edits the lines in Rust with Ansible's
//! rules and keeps the new text in the plan; apply installs it with
//! `crontab -` or an atomic write. A cron file left without lines by
//! `state=absent` is removed, as Ansible does.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::params::{de_bool, de_opt_string};
use crate::shell_quote::{join, quote};
use crate::textfile::{self, run_checked};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum CronState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// `special_time`'s values.
pub enum SpecialTime {
    /// `@annually`.
    Annually,
    /// `@daily`.
    Daily,
    /// `@hourly`.
    Hourly,
    /// `@monthly`.
    Monthly,
    /// `@reboot`.
    Reboot,
    /// `@weekly`.
    Weekly,
    /// `@yearly`.
    Yearly,
}

impl SpecialTime {
    fn word(self) -> &'static str {
        match self {
            SpecialTime::Annually => "annually",
            SpecialTime::Daily => "daily",
            SpecialTime::Hourly => "hourly",
            SpecialTime::Monthly => "monthly",
            SpecialTime::Reboot => "reboot",
            SpecialTime::Weekly => "weekly",
            SpecialTime::Yearly => "yearly",
        }
    }
}

fn star() -> String {
    "*".into()
}

fn de_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_opt_string(d).map(|v| v.unwrap_or_else(star))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `cron`: what `herd doc` shows, and what the parser takes.
pub struct CronParams {
    /// The job's description; it is written as a `#Ansible: NAME` comment and identifies the
    /// job on later runs.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    /// Whose crontab to edit (default: the connection's user).
    pub user: Option<String>,
    /// The command to run (required for `state: present`, unless `env`).
    #[serde(default, alias = "value", deserialize_with = "de_opt_string")]
    pub job: Option<String>,
    /// `present`: the job is in the crontab; `absent`: it is not.
    #[serde(default)]
    pub state: CronState,
    /// A file in `/etc/cron.d` to edit instead of a user's crontab (then `user` is the user the
    /// job runs as).
    pub cron_file: Option<String>,
    /// Keep a timestamped copy of the file (`FILE.PID.YYYY-MM-DD@HH:MM:SS~`) before changing
    /// it; its path is returned as `backup_file`.
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
    /// Minute (`0-59`, `*`, `*/5`, ...).
    #[serde(default = "star", deserialize_with = "de_field")]
    pub minute: String,
    /// Hour (`0-23`, `*`, ...).
    #[serde(default = "star", deserialize_with = "de_field")]
    pub hour: String,
    /// Day of the month (`1-31`, `*`, ...).
    #[serde(default = "star", alias = "dom", deserialize_with = "de_field")]
    pub day: String,
    /// Month (`1-12`, `*`, ...).
    #[serde(default = "star", deserialize_with = "de_field")]
    pub month: String,
    /// Day of the week (`0-6` with Sunday 0, `*`, ...).
    #[serde(default = "star", alias = "dow", deserialize_with = "de_field")]
    pub weekday: String,
    /// Run at a special time instead of the five fields (`@reboot`, `@daily`, ...).
    pub special_time: Option<SpecialTime>,
    /// Deprecated in Ansible: the same as `special_time: reboot`.
    #[serde(default, deserialize_with = "de_bool")]
    pub reboot: bool,
    /// Write the job commented out.
    #[serde(default, deserialize_with = "de_bool")]
    pub disabled: bool,
    /// The entry is an environment variable (`name=job`) instead of a job.
    #[serde(default, deserialize_with = "de_bool")]
    pub env: bool,
    /// With `env`: put the variable after this one.
    pub insertafter: Option<String>,
    /// With `env`: put the variable before this one.
    pub insertbefore: Option<String>,
}

/// The `cron` module.
pub struct Cron;

const MARK: &str = "#Ansible: ";

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Cron::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// The crontab's lines, edited as Ansible's `CronTab` class does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronTab {
    /// The crontab's lines.
    pub lines: Vec<String>,
}

impl CronTab {
    /// Parse crontab text, dropping the header some crons add on `-l`.
    pub fn parse(text: &str) -> CronTab {
        let header = |l: &str| {
            l.starts_with("# DO NOT EDIT THIS FILE - edit the master and reinstall.")
                || (l.starts_with("# (/tmp/") && l.contains("installed on") && l.ends_with(')'))
                || (l.starts_with("# (") && l.contains("version") && l.ends_with(')'))
        };
        CronTab {
            lines: text
                .lines()
                .filter(|l| !header(l))
                .map(str::to_string)
                .collect(),
        }
    }

    /// The crontab's text.
    pub fn render(&self) -> String {
        let s = self.lines.join("\n");
        if s.is_empty() {
            s
        } else {
            format!("{}\n", s.trim_end_matches(['\r', '\n']))
        }
    }

    /// Ansible's `find_job`: `(comment index, job line)`; a job found only
    /// by its line gets its comment inserted.
    fn find_job(&mut self, name: &str, job: Option<&str>) -> Option<(usize, String)> {
        let comment = format!("{MARK}{name}");
        let mut i = 0;
        while i + 1 < self.lines.len() {
            if self.lines[i].starts_with(MARK) {
                if self.lines[i] == comment {
                    return Some((i, self.lines[i + 1].clone()));
                }
                // The line after a header is that header's job.
                i += 2;
            } else {
                i += 1;
            }
        }
        let job = job?;
        let at = self.lines.iter().position(|l| l == job)?;
        if at == 0 || !self.lines[at - 1].starts_with(MARK) {
            self.lines.insert(at, comment);
            return Some((at, job.to_string()));
        }
        // The line belongs to another name: Ansible adds a new job.
        None
    }

    /// Replace (with `Some`) or remove the job under the `name` comment.
    fn update_job(&mut self, name: &str, job: Option<&str>) {
        let comment = format!("{MARK}{name}");
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        let mut lines = std::mem::take(&mut self.lines).into_iter();
        while let Some(l) = lines.next() {
            if l == comment {
                // The old job line goes with its comment.
                lines.next();
                if let Some(job) = job {
                    out.push(comment.clone());
                    out.push(job.to_string());
                }
            } else {
                out.push(l);
            }
        }
        self.lines = out;
    }

    fn env_index(&self, name: &str) -> Option<usize> {
        let prefix = format!("{name}=");
        self.lines.iter().position(|l| l.starts_with(&prefix))
    }

    /// Names of the jobs (`#Ansible:` comments).
    pub fn job_names(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix(MARK))
            .map(str::to_string)
            .collect()
    }

    /// Names of the environment variables.
    pub fn env_names(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace))
            .map(str::to_string)
            .collect()
    }
}

impl Cron {
    /// Ansible's `get_cron_job`.
    fn job_line(p: &CronParams, job: &str) -> String {
        let job = job.trim_matches(['\r', '\n']);
        let off = if p.disabled { "#" } else { "" };
        let user = match (&p.cron_file, &p.user) {
            (Some(_), Some(u)) => format!("{u} "),
            _ => String::new(),
        };
        match Self::special(p) {
            Some(s) => format!("{off}@{} {user}{job}", s.word()),
            None => format!(
                "{off}{} {} {} {} {} {user}{job}",
                p.minute, p.hour, p.day, p.month, p.weekday
            ),
        }
    }

    fn special(p: &CronParams) -> Option<SpecialTime> {
        p.special_time.or(p.reboot.then_some(SpecialTime::Reboot))
    }

    fn check(p: &CronParams) -> Result<(), ModuleError> {
        let timed = [&p.minute, &p.hour, &p.day, &p.month, &p.weekday]
            .iter()
            .any(|f| f.as_str() != "*");
        if Self::special(p).is_some() && timed {
            return Err(invalid(
                "special_time",
                "You must specify time and date fields or special time.",
            ));
        }
        if p.state == CronState::Present && p.job.is_none() {
            return Err(invalid(
                "job",
                "You must specify 'job' to install a new cron job or variable",
            ));
        }
        if p.cron_file.as_deref() == Some("/etc/crontab") {
            return Err(invalid(
                "cron_file",
                "Will not manage /etc/crontab via cron_file, see documentation.",
            ));
        }
        if p.insertafter.is_some() && p.insertbefore.is_some() {
            return Err(invalid(
                "insertbefore",
                "parameters are mutually exclusive: insertafter|insertbefore",
            ));
        }
        if (p.insertafter.is_some() || p.insertbefore.is_some()) && !p.env {
            return Err(invalid(
                "insertafter",
                "Insertafter and insertbefore parameters are valid only with env=yes",
            ));
        }
        if p.cron_file.is_some() && p.state == CronState::Present && p.user.is_none() {
            return Err(invalid(
                "user",
                "To use cron_file=... parameter you must specify user=... as well",
            ));
        }
        if p.env {
            match &p.name {
                None => return Err(invalid("name", "name is required with env=yes")),
                Some(n) if n.contains(char::is_whitespace) || n.contains('=') => {
                    return Err(invalid("name", "Invalid name for environment variable"))
                }
                _ => {}
            }
        }
        if p.name.is_none() && p.job.is_none() {
            return Err(invalid("name", "one of name or job is required"));
        }
        Ok(())
    }

    fn cron_path(p: &CronParams) -> Option<String> {
        p.cron_file.as_ref().map(|f| {
            if f.starts_with('/') {
                f.clone()
            } else {
                format!("/etc/cron.d/{f}")
            }
        })
    }

    /// Edit `tab` for `p`.
    fn edit(p: &CronParams, tab: &mut CronTab) -> Result<(), ModuleError> {
        let install = p.state == CronState::Present;
        if p.env {
            let name = p.name.as_deref().unwrap_or_default();
            let decl = format!("{name}=\"{}\"", p.job.as_deref().unwrap_or_default());
            match (install, tab.env_index(name)) {
                (true, None) => {
                    let at = match (&p.insertafter, &p.insertbefore) {
                        (Some(other), _) | (None, Some(other)) => {
                            let i = tab.env_index(other).ok_or_else(|| {
                                ModuleError::failed(format!("Variable named '{other}' not found."))
                            })?;
                            if p.insertafter.is_some() {
                                i + 1
                            } else {
                                i
                            }
                        }
                        (None, None) => 0,
                    };
                    tab.lines.insert(at, decl);
                }
                (true, Some(i)) if tab.lines[i] != decl => {
                    // Every line of the variable becomes the new one.
                    let prefix = format!("{name}=");
                    for l in tab.lines.iter_mut().filter(|l| l.starts_with(&prefix)) {
                        l.clone_from(&decl);
                    }
                }
                (true, Some(_)) => {}
                (false, Some(_)) => {
                    let prefix = format!("{name}=");
                    tab.lines.retain(|l| !l.starts_with(&prefix));
                }
                (false, None) => {}
            }
            return Ok(());
        }
        let job = p.job.as_deref().map(|j| Self::job_line(p, j));
        let name = p.name.clone().unwrap_or_default();
        // Removal finds the job by its name only, as Ansible does.
        let found = tab.find_job(&name, job.as_deref().filter(|_| install));
        match (install, found, job) {
            (true, None, Some(job)) => {
                tab.lines.push(format!("{MARK}{name}"));
                tab.lines.push(job);
            }
            (true, Some(_), Some(job)) => tab.update_job(&name, Some(&job)),
            (false, Some(_), _) => tab.update_job(&name, None),
            _ => {}
        }
        Ok(())
    }
}

/// What apply needs from the plan.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Planned {
    before: String,
    /// `None`: remove the cron file.
    after: Option<String>,
}

/// A user's crontab via `crontab -l`; `Ok("")` when they have none.
fn read_crontab(host: &mut dyn Host, user: Option<&str>) -> Result<String, ModuleError> {
    let mut argv = vec!["crontab"];
    if let Some(u) = user {
        argv.extend(["-u", u]);
    }
    argv.push("-l");
    let script = format!(
        "command -v crontab >/dev/null 2>&1 || exit 127\nexec {}",
        join(&argv)
    );
    let out = host.run(&script, None)?;
    match out.rc {
        0 => Ok(out.stdout_str()),
        127 => Err(ModuleError::failed(
            "Failed to find required executable \"crontab\" (install the cron package, or use cron_file)",
        )),
        1 if out.stderr_str().contains("no crontab for") => Ok(String::new()),
        rc => Err(ModuleError::failed(format!(
            "Unable to read crontab (rc={rc}): {}",
            out.stderr_str().trim_end()
        ))),
    }
}

impl Module for Cron {
    const NAME: &'static str = "cron";
    const DOC_SHORT: &'static str = "Manage cron jobs and cron environment variables.";
    const DOC_LONG: &'static str = r##"Jobs are found by their `#Ansible: NAME` comment, as Ansible writes them, so crontabs written by Ansible are taken over as they are."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Nightly cleanup
  cron:
    name: cleanup
    hour: "3"
    minute: "15"
    job: /usr/local/bin/cleanup --quiet
"##;
    type Params = CronParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Self::check(p)?;
        let path = Self::cron_path(p);
        let (before, file_exists) = match &path {
            Some(f) => match host.read_file(f)? {
                Some(b) => (String::from_utf8_lossy(&b).into_owned(), true),
                None => (String::new(), false),
            },
            None => (read_crontab(host, p.user.as_deref())?, false),
        };
        let old = CronTab::parse(&before);
        let mut tab = old.clone();
        Self::edit(p, &mut tab)?;
        let mut plan = Plan::default();
        let mut result = Map::new();
        result.insert("jobs".into(), json!(tab.job_names()));
        result.insert("envs".into(), json!(tab.env_names()));
        if let Some(f) = &p.cron_file {
            result.insert("cron_file".into(), json!(f));
        }
        plan.result = result;
        let unterminated = !before.is_empty() && !before.ends_with(['\n', '\r']);
        // A cron file whose last job went is removed (not for variables).
        let remove_file = file_exists
            && p.state == CronState::Absent
            && !p.env
            && tab != old
            && tab.lines.iter().all(|l| l.trim().is_empty());
        let where_ = path.clone().unwrap_or_else(|| match &p.user {
            Some(u) => format!("crontab of {u}"),
            None => "crontab".into(),
        });
        if remove_file {
            plan.changes.push(format!("remove {where_}"));
            plan.state = json!(Planned {
                before,
                after: None
            });
            return Ok(plan);
        }
        if tab == old && !unterminated {
            return Ok(plan);
        }
        let what = if p.env { "variable" } else { "job" };
        let name = p.name.as_deref().unwrap_or_default();
        plan.changes.push(match p.state {
            CronState::Present => format!("{what} {name:?} in {where_}"),
            CronState::Absent => format!("remove {what} {name:?} from {where_}"),
        });
        let after = tab.render();
        if let Some(d) = textfile::diff(&where_, before.as_bytes(), after.as_bytes()) {
            plan.diffs.push(d);
        }
        plan.state = json!(Planned {
            before,
            after: Some(after)
        });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let pl: Planned = serde_json::from_value(plan.state.clone())
            .map_err(|_| ModuleError::failed("cron: apply called without a plan"))?;
        let mut result: Map<String, Value> = plan.result;
        if p.backup {
            let out = host.run(
                "t=$(mktemp /tmp/crontabXXXXXXXX) && cat > \"$t\" && printf '%s\\n' \"$t\"",
                Some(pl.before.as_bytes()),
            )?;
            if !out.success() {
                return Err(ModuleError::failed(format!(
                    "could not back up the crontab: {}",
                    out.stderr_str().trim_end()
                )));
            }
            result.insert("backup_file".into(), json!(out.stdout_str().trim_end()));
        }
        match (Self::cron_path(p), &pl.after) {
            (Some(f), None) => run_checked(
                host,
                "remove the cron file",
                &format!("rm -f -- {}", quote(&f)),
            )?,
            (Some(f), Some(text)) => {
                // cron ignores files in cron.d that others can write.
                let attrs = FileAttrs {
                    mode: (pl.before.is_empty()).then(|| "0644".to_string()),
                    ..FileAttrs::default()
                };
                host.write_file(&f, text.as_bytes(), &attrs)?;
            }
            (None, text) => {
                let mut argv = vec!["crontab"];
                if let Some(u) = &p.user {
                    argv.extend(["-u", u]);
                }
                argv.push("-");
                let text = text.as_deref().unwrap_or_default();
                let out = host.run(&join(&argv), Some(text.as_bytes()))?;
                if !out.success() {
                    return Err(ModuleError::failed(format!(
                        "crontab failed to install the new crontab (rc={}): {}",
                        out.rc,
                        out.stderr_str().trim_end()
                    )));
                }
            }
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, host, path_in};
    use crate::DynModule;

    fn params(v: Value) -> CronParams {
        crate::module::parse_params(Cron::NAME, &v).expect("params")
    }

    fn edited(text: &str, v: Value) -> String {
        let mut tab = CronTab::parse(text);
        Cron::edit(&params(v), &mut tab).expect("edit");
        tab.render()
    }

    #[test]
    fn job_lines_as_ansible_writes_them() {
        let p = params(json!({"name": "a", "job": "ls\n", "minute": 0, "hour": "5,2"}));
        assert_eq!(Cron::job_line(&p, "ls\n"), "0 5,2 * * * ls");
        let p = params(json!({"name": "a", "job": "x", "special_time": "reboot",
            "cron_file": "f", "user": "root", "disabled": true}));
        assert_eq!(Cron::job_line(&p, "x"), "#@reboot root x");
        let p = params(
            json!({"name": "a", "job": "x", "weekday": "1", "cron_file": "f", "user": "bob"}),
        );
        assert_eq!(Cron::job_line(&p, "x"), "* * * * 1 bob x");
    }

    #[test]
    fn adds_replaces_and_removes_by_name() {
        let add = json!({"name": "check dirs", "minute": "0", "hour": "5,2", "job": "ls -alh > /dev/null"});
        let one = "#Ansible: check dirs\n0 5,2 * * * ls -alh > /dev/null\n";
        assert_eq!(edited("", add.clone()), one);
        assert_eq!(edited(one, add), one);
        let other = "MAILTO=x\n#Ansible: check dirs\n1 * * * * old\n# mine\n";
        assert_eq!(
            edited(other, json!({"name": "check dirs", "job": "new"})),
            "MAILTO=x\n#Ansible: check dirs\n* * * * * new\n# mine\n"
        );
        assert_eq!(
            edited(other, json!({"name": "check dirs", "state": "absent"})),
            "MAILTO=x\n# mine\n"
        );
        // Removal goes by name only: a job line without the comment stays.
        assert_eq!(
            edited(
                "* * * * * x\n",
                json!({"name": "n", "job": "x", "state": "absent"})
            ),
            "* * * * * x\n"
        );
        // Found by its line alone: it gets the comment.
        assert_eq!(
            edited("* * * * * x\n", json!({"name": "n", "job": "x"})),
            "#Ansible: n\n* * * * * x\n"
        );
    }

    #[test]
    fn environment_variables() {
        assert_eq!(
            edited(
                "#Ansible: j\n* * * * * x\n",
                json!({"name": "PATH", "job": "/bin", "env": true})
            ),
            "PATH=\"/bin\"\n#Ansible: j\n* * * * * x\n"
        );
        assert_eq!(
            edited(
                "A=\"1\"\n",
                json!({"name": "B", "value": "2", "env": true, "insertafter": "A"})
            ),
            "A=\"1\"\nB=\"2\"\n"
        );
        assert_eq!(
            edited(
                "A=\"1\"\nB=\"2\"\n",
                json!({"name": "A", "env": true, "state": "absent"})
            ),
            "B=\"2\"\n"
        );
        let mut tab = CronTab::parse("");
        let p = params(json!({"name": "B", "job": "2", "env": true, "insertbefore": "Z"}));
        assert!(Cron::edit(&p, &mut tab).is_err());
    }

    #[test]
    fn header_lines_are_dropped_and_params_checked() {
        let tab = CronTab::parse(
            "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n# (/tmp/crontab.x installed on Thu)\n# (Cron version -- $Id$)\n* * * * * x\n",
        );
        assert_eq!(tab.lines, ["* * * * * x"]);
        for bad in [
            json!({"name": "a", "job": "x", "special_time": "daily", "hour": 1}),
            json!({"name": "a"}),
            json!({"name": "a", "job": "x", "cron_file": "f"}),
            json!({"name": "A B", "job": "x", "env": true}),
        ] {
            assert!(Cron::check(&params(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_file_converges_and_is_removed_when_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "herd-test");
        let p = json!({"name": "t", "job": "true", "cron_file": f, "user": "root", "hour": 3});
        converge(&Cron, &p);
        assert_eq!(
            std::fs::read_to_string(&f).ok().as_deref(),
            Some("#Ansible: t\n* 3 * * * root true\n")
        );
        let gone = json!({"name": "t", "cron_file": f, "state": "absent"});
        converge(&Cron, &gone);
        assert!(!std::path::Path::new(&f).exists());
        let pl = DynModule::plan(&Cron, &gone, &mut host()).expect("plan");
        assert!(pl.is_empty());
    }
}
