//! `command`, `shell` and `raw`: run something on the host.
//!
//! Running a command is the change, so the plan only says "run ..." and is
//! `unknowable` (check mode cannot tell what it would do), unless `creates`
//! or `removes` says it is already done; that check is the plan's one probe.
//! `command` splits its free form like Python's `shlex` and quotes every word
//! again, so no shell feature (pipes, globs, `;`) ever applies; like Ansible
//! it still expands `$VAR`, `${VAR}` and a leading `~` in each word (unless
//! `expand_argument_vars: false`), leaving undefined variables as written.
//! `shell` hands its string to `/bin/sh -c` (or `executable`). A non-zero
//! exit is an `Outcome` with `failed` set, not an error, so `failed_when`
//! can judge it.
//!
//! Differences from Ansible: `start`/`end` are controller times in UTC.

use std::time::{Instant, SystemTime};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::capability::AsyncSupport;
use crate::clock;
use crate::params::{de_bool, yes};
use crate::shell_quote::{join, quote, quote_path, split};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// Printed (with exit 97) when `chdir` cannot be entered, so apply can tell
/// that apart from the command's own failure.
const CHDIR_FAILED: &str = "herd: cannot change directory";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `command`: what `herd doc` shows, and what the parser takes.
pub struct CommandParams {
    /// The command line, given after the module name (`command: ls -l`). It is split into words
    /// like a shell would (quotes respected) but not run through a shell: no pipes,
    /// redirections or `$VAR` expansion.
    #[serde(rename = "_raw_params")]
    pub raw_params: Option<String>,
    /// The command line, as a parameter instead of the free-form text.
    pub cmd: Option<String>,
    /// The command as a list of words, each passed as it is (no splitting); use it instead of
    /// `cmd` or the free form.
    pub argv: Option<Vec<Value>>,
    /// Change into this directory before running the command.
    pub chdir: Option<String>,
    /// A path (or glob) on the host: when it exists, the command is not run (and check mode
    /// knows it).
    pub creates: Option<String>,
    /// A path (or glob) on the host: when it does not exist, the command is not run.
    pub removes: Option<String>,
    /// Text given to the command on its standard input.
    pub stdin: Option<String>,
    /// Add a newline to the end of `stdin`.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub stdin_add_newline: bool,
    /// Strip empty lines from the end of `stdout` and `stderr` in the result.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub strip_empty_ends: bool,
    /// Expand `$VAR`/`${VAR}` in the words with the host's environment, as Python's
    /// `os.path.expandvars` does.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub expand_argument_vars: bool,
    /// Removed from Ansible in 2.14; accepted so old playbooks still load.
    pub warn: Option<Value>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `shell`: what `herd doc` shows, and what the parser takes.
pub struct ShellParams {
    /// The command line, given after the module name; it runs through `/bin/sh -c` (pipes,
    /// redirections and variables work).
    #[serde(rename = "_raw_params")]
    pub raw_params: Option<String>,
    /// The command line, as a parameter instead of the free-form text.
    pub cmd: Option<String>,
    /// Change into this directory before running the command.
    pub chdir: Option<String>,
    /// A path (or glob) on the host: when it exists, the command is not run (and check mode
    /// knows it).
    pub creates: Option<String>,
    /// A path (or glob) on the host: when it does not exist, the command is not run.
    pub removes: Option<String>,
    /// The shell to run the command with instead of `/bin/sh` (e.g. `/bin/bash`).
    pub executable: Option<String>,
    /// Text given to the command on its standard input.
    pub stdin: Option<String>,
    /// Add a newline to the end of `stdin`.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub stdin_add_newline: bool,
    /// Strip empty lines from the end of `stdout` and `stderr` in the result.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub strip_empty_ends: bool,
    /// Removed from Ansible in 2.14; accepted so old playbooks still load.
    pub warn: Option<Value>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `raw`: what `herd doc` shows, and what the parser takes.
pub struct RawParams {
    /// The command line, sent to the host's shell as it is (given after the module name: `raw:
    /// uptime`).
    #[serde(rename = "_raw_params")]
    pub raw_params: Option<String>,
    /// The shell to run the command with (`EXECUTABLE -c LINE`) instead of the login shell.
    pub executable: Option<String>,
}

/// What every runner needs, whichever module built it.
struct Run<'a> {
    /// Registered as `cmd`: the argv list for `command`, the string otherwise.
    cmd: Value,
    script: String,
    chdir: Option<&'a str>,
    stdin: Option<Vec<u8>>,
    strip: bool,
    /// `raw` registers no start/end/delta.
    timed: bool,
}

fn invalid(module: &'static str, path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module,
        path: path.into(),
        reason: reason.into(),
    })
}

/// The command string from the free form or `cmd`, whichever is given.
fn free_form<'a>(
    module: &'static str,
    raw: &'a Option<String>,
    cmd: &'a Option<String>,
) -> Result<Option<&'a str>, ModuleError> {
    match (raw, cmd) {
        (Some(_), Some(_)) => Err(invalid(
            module,
            "cmd",
            "give the command either as the free form or as `cmd`, not both",
        )),
        (Some(s), None) | (None, Some(s)) => Ok(Some(s.as_str())),
        (None, None) => Ok(None),
    }
}

fn stdin_bytes(stdin: &Option<String>, add_newline: bool) -> Option<Vec<u8>> {
    stdin.as_ref().map(|s| {
        let mut b = s.as_bytes().to_vec();
        // Ansible appends the newline only to non-empty data.
        if add_newline && !b.is_empty() {
            b.push(b'\n');
        }
        b
    })
}

/// The plan shared by `command` and `shell`: skip when `creates` exists or
/// `removes` does not (both relative to `chdir`, globs allowed), else "run".
fn guarded_plan(
    host: &mut dyn Host,
    display: &str,
    chdir: Option<&str>,
    creates: Option<&str>,
    removes: Option<&str>,
) -> Result<Plan, ModuleError> {
    let mut plan = Plan {
        unknowable: true,
        ..Plan::default()
    }
    .change(format!("run {display}"));
    if creates.is_none() && removes.is_none() {
        return Ok(plan);
    }
    let mut script = String::new();
    if let Some(d) = chdir {
        script.push_str(&format!("cd -- {} 2>/dev/null\n", quote_path(d)));
    }
    // An unquoted expansion with an empty IFS globs but never splits, runs
    // nothing and leaves a pattern that matches nothing as it is.
    script.push_str("IFS=\n");
    for (tag, pat) in [("C", creates), ("R", removes)] {
        if let Some(p) = pat {
            script.push_str(&format!(
                "p={}; set -- $p; if [ -e \"$1\" ] || [ -L \"$1\" ]; then echo {tag} yes; else echo {tag} no; fi\n",
                quote_path(p)
            ));
        }
    }
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    let exists = |tag: &str| crate::probe::tagged(&text, tag) == Some("yes");
    let skip = if let Some(c) = creates.filter(|_| exists("C")) {
        Some(format!("skipped, since {c} exists"))
    } else {
        removes
            .filter(|_| !exists("R"))
            .map(|r| format!("skipped, since {r} does not exist"))
    };
    if let Some(msg) = skip {
        plan = Plan::empty();
        plan.result.insert("cmd".into(), json!(display));
        plan.result.insert("rc".into(), json!(0));
        plan.result.insert("stdout".into(), json!(msg));
        plan.result.insert("stdout_lines".into(), json!([msg]));
        plan.result.insert("stderr".into(), json!(""));
        plan.result.insert("stderr_lines".into(), json!([]));
        plan.result.insert("msg".into(), json!(msg));
    }
    Ok(plan)
}

fn lines(s: &str) -> Value {
    json!(s.lines().collect::<Vec<_>>())
}

fn execute(run: Run<'_>, host: &mut dyn Host) -> Result<Outcome, ModuleError> {
    let mut script = String::new();
    if let Some(d) = run.chdir {
        script.push_str(&format!(
            "cd -- {} 2>/dev/null || {{ echo {} >&2; exit 97; }}\n",
            quote_path(d),
            quote(CHDIR_FAILED)
        ));
    }
    script.push_str(&run.script);
    let start = SystemTime::now();
    let clock = Instant::now();
    let out = host.run(&script, run.stdin.as_deref())?;
    let elapsed = clock.elapsed();
    let end = SystemTime::now();

    if let (Some(d), 97) = (run.chdir, out.rc) {
        if out.stderr_str().trim_end() == CHDIR_FAILED {
            return Err(ModuleError::failed(format!(
                "Unable to change directory before execution: {d}"
            )));
        }
    }
    let (mut stdout, mut stderr) = (out.stdout_str(), out.stderr_str());
    if run.strip {
        stdout.truncate(stdout.trim_end_matches(['\r', '\n']).len());
        stderr.truncate(stderr.trim_end_matches(['\r', '\n']).len());
    }
    let mut result = Map::new();
    result.insert("cmd".into(), run.cmd);
    result.insert("rc".into(), json!(out.rc));
    result.insert("stdout_lines".into(), lines(&stdout));
    result.insert("stderr_lines".into(), lines(&stderr));
    result.insert("stdout".into(), json!(stdout));
    result.insert("stderr".into(), json!(stderr));
    if run.timed {
        result.insert("start".into(), json!(clock::timestamp(start)));
        result.insert("end".into(), json!(clock::timestamp(end)));
        result.insert("delta".into(), json!(clock::delta(elapsed)));
    }
    let failed = out.rc != 0;
    let msg = if failed { "non-zero return code" } else { "" };
    result.insert("msg".into(), json!(msg));
    Ok(Outcome {
        changed: true,
        result,
        msg: failed.then(|| msg.to_string()),
        failed,
    })
}

/// One argv word as a shell word that expands `$NAME`, `${NAME}` and a
/// leading `~` the way Python's `expandvars`/`expanduser` do (an undefined
/// variable stays as written) and nothing else: the literal parts are quoted.
/// The text an undefined variable leaves is put in a helper variable by a
/// line appended to `prelude`, as `${NAME-...}`'s default word cannot hold
/// an arbitrary literal portably.
fn expand_word(word: &str, prelude: &mut String) -> String {
    let mut out = String::new();
    let mut lit = String::new();
    let mut rest = word;
    if rest == "~" || rest.starts_with("~/") {
        out.push_str("\"$HOME\"");
        rest = &rest[1..];
    }
    let flush = |out: &mut String, lit: &mut String| {
        if !lit.is_empty() {
            out.push_str(&quote(lit));
            lit.clear();
        }
    };
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, skip) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(end) => (&b[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            flush(&mut out, &mut lit);
            let written = &rest[i..i + 1 + skip];
            let n = prelude.lines().count();
            prelude.push_str(&format!("herd_lit{n}={}\n", quote(written)));
            out.push_str(&format!("\"${{{name}-$herd_lit{n}}}\""));
            rest = &after[skip..];
        } else {
            lit.push('$');
            rest = after;
        }
    }
    lit.push_str(rest);
    flush(&mut out, &mut lit);
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

/// The `command` module.
pub struct Command;

impl Command {
    fn argv(p: &CommandParams) -> Result<Vec<String>, ModuleError> {
        let line = free_form(Self::NAME, &p.raw_params, &p.cmd)?;
        let argv = match (&p.argv, line) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    Self::NAME,
                    "argv",
                    "give either `argv` or a command string, not both",
                ))
            }
            (Some(list), None) => list
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(if *b { "True" } else { "False" }.into()),
                    _ => Err(invalid(
                        Self::NAME,
                        &format!("argv[{i}]"),
                        "expected a string",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            (None, Some(line)) => {
                split(line).map_err(|e| invalid(Self::NAME, "cmd", &e.to_string()))?
            }
            (None, None) => Vec::new(),
        };
        if argv.is_empty() {
            return Err(ModuleError::failed("no command given"));
        }
        Ok(argv)
    }
}

impl Module for Command {
    const NAME: &'static str = "command";
    const FREE_FORM: bool = true;
    const ASYNC: AsyncSupport = AsyncSupport::Detached;
    const DOC_SHORT: &'static str = "Run a command on the host, without a shell.";
    const DOC_LONG: &'static str = r##"The command is split into words and run directly, so shell syntax (pipes, `>`, `&&`, `$VAR` of the shell) is not interpreted: use `shell` for that. A command cannot be predicted, so check mode reports the task as skipped unless `creates`/`removes` settle it. A non-zero exit status fails the task (`failed_when`/`ignore_errors` still judge it)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Show the kernel
  command: uname -r
  register: kernel

- name: Initialise once
  command:
    argv: [/opt/app/bin/init, --data, /srv/app]
    creates: /srv/app/.initialised
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "cmd",
            "The command as run: the argv list for `command`, the line for `shell` and `raw`.",
        ),
        ("rc", "The exit status."),
        (
            "stdout",
            "Standard output (empty lines at the end stripped unless `strip_empty_ends: false`).",
        ),
        ("stdout_lines", "`stdout` split into lines."),
        ("stderr", "Standard error."),
        ("stderr_lines", "`stderr` split into lines."),
        ("start", "When the command started (controller time, UTC)."),
        ("end", "When it ended."),
        ("delta", "How long it ran (`H:MM:SS.ffffff`)."),
    ];
    type Params = CommandParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let argv = Self::argv(p)?;
        guarded_plan(
            host,
            &join(&argv),
            p.chdir.as_deref(),
            p.creates.as_deref(),
            p.removes.as_deref(),
        )
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let argv = Self::argv(p)?;
        let run = Run {
            script: if p.expand_argument_vars {
                let mut prelude = String::new();
                let words: Vec<String> =
                    argv.iter().map(|w| expand_word(w, &mut prelude)).collect();
                format!("{prelude}exec {}", words.join(" "))
            } else {
                format!("exec {}", join(&argv))
            },
            cmd: json!(argv),
            chdir: p.chdir.as_deref(),
            stdin: stdin_bytes(&p.stdin, p.stdin_add_newline),
            strip: p.strip_empty_ends,
            timed: true,
        };
        execute(run, host)
    }
}

/// The `shell` module.
pub struct Shell;

impl Shell {
    fn line(p: &ShellParams) -> Result<&str, ModuleError> {
        free_form(Self::NAME, &p.raw_params, &p.cmd)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ModuleError::failed("no command given"))
    }
}

impl Module for Shell {
    const NAME: &'static str = "shell";
    const FREE_FORM: bool = true;
    const ASYNC: AsyncSupport = AsyncSupport::Detached;
    const DOC_SHORT: &'static str = "Run a command line through the host's shell.";
    const DOC_LONG: &'static str = r##"Like `command`, but the line runs through `/bin/sh -c` (or `executable`), so pipes, redirections, globbing and variables work. Check mode reports the task as skipped unless `creates`/`removes` settle it."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Count the listening sockets
  shell: ss -tln | wc -l
  register: sockets
  changed_when: false
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "cmd",
            "The command as run: the argv list for `command`, the line for `shell` and `raw`.",
        ),
        ("rc", "The exit status."),
        (
            "stdout",
            "Standard output (empty lines at the end stripped unless `strip_empty_ends: false`).",
        ),
        ("stdout_lines", "`stdout` split into lines."),
        ("stderr", "Standard error."),
        ("stderr_lines", "`stderr` split into lines."),
        ("start", "When the command started (controller time, UTC)."),
        ("end", "When it ended."),
        ("delta", "How long it ran (`H:MM:SS.ffffff`)."),
    ];
    type Params = ShellParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let line = Self::line(p)?;
        guarded_plan(
            host,
            line,
            p.chdir.as_deref(),
            p.creates.as_deref(),
            p.removes.as_deref(),
        )
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let line = Self::line(p)?;
        let shell = p.executable.as_deref().unwrap_or("/bin/sh");
        let run = Run {
            script: format!("exec {} -c {}", quote(shell), quote(line)),
            cmd: json!(line),
            chdir: p.chdir.as_deref(),
            stdin: stdin_bytes(&p.stdin, p.stdin_add_newline),
            strip: p.strip_empty_ends,
            timed: true,
        };
        execute(run, host)
    }
}

/// The `raw` module.
pub struct Raw;

impl Module for Raw {
    const NAME: &'static str = "raw";
    const FREE_FORM: bool = true;
    const ASYNC: AsyncSupport = AsyncSupport::Refused;
    const DOC_SHORT: &'static str = "Send a command line to the host as it is.";
    const DOC_LONG: &'static str = r##"No argument processing and no `creates`/`removes`: the line goes to the host's shell in one exec. Useful before anything else is installed. Check mode reports the task as skipped."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Bootstrap
  raw: test -e /usr/bin/curl || (apt-get update && apt-get install -y curl)
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "cmd",
            "The command as run: the argv list for `command`, the line for `shell` and `raw`.",
        ),
        ("rc", "The exit status."),
        (
            "stdout",
            "Standard output (empty lines at the end stripped unless `strip_empty_ends: false`).",
        ),
        ("stdout_lines", "`stdout` split into lines."),
        ("stderr", "Standard error."),
        ("stderr_lines", "`stderr` split into lines."),
        ("start", "When the command started (controller time, UTC)."),
        ("end", "When it ended."),
        ("delta", "How long it ran (`H:MM:SS.ffffff`)."),
    ];
    type Params = RawParams;

    fn plan(&self, p: &Self::Params, _host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let line = p
            .raw_params
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ModuleError::failed("no command given"))?;
        Ok(Plan {
            unknowable: true,
            ..Plan::default()
        }
        .change(format!("run {line}")))
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let line = p
            .raw_params
            .as_deref()
            .ok_or_else(|| ModuleError::failed("no command given"))?;
        // raw is the one module that sends the user's text as the script
        // itself: that is its documented purpose (bootstrapping hosts).
        let script = match &p.executable {
            Some(sh) => format!("exec {} -c {}", quote(sh), quote(line)),
            None => line.to_string(),
        };
        let run = Run {
            script,
            cmd: json!(line),
            chdir: None,
            stdin: None,
            strip: false,
            timed: false,
        };
        execute(run, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, get, host, path_in};
    use crate::DynModule;
    use serde_json::json;

    const CMD: &dyn DynModule = &Command;

    fn run(m: &dyn DynModule, params: Value) -> (Plan, Option<Outcome>) {
        let mut h = host();
        let plan = m.plan(&params, &mut h).expect("plan");
        if plan.is_empty() {
            return (plan, None);
        }
        let out = m.apply(&params, plan.clone(), &mut h).expect("apply");
        (plan, Some(out))
    }

    fn s<'a>(o: &'a Outcome, k: &str) -> &'a Value {
        o.result.get(k).unwrap_or(&Value::Null)
    }

    #[test]
    fn command_runs_without_a_shell() {
        let (plan, out) = run(
            &Command,
            json!({"_raw_params": "echo 'a  b' * | wc ; `id`"}),
        );
        assert!(plan.unknowable);
        let out = out.expect("ran");
        assert!(out.changed && !out.failed);
        assert_eq!(s(&out, "stdout"), "a  b * | wc ; `id`");
        assert_eq!(
            s(&out, "cmd"),
            &json!(["echo", "a  b", "*", "|", "wc", ";", "`id`"])
        );
        assert_eq!(s(&out, "rc"), 0);
        assert_eq!(s(&out, "stdout_lines"), &json!(["a  b * | wc ; `id`"]));
        for k in ["start", "end", "delta"] {
            assert!(s(&out, k).is_string(), "{k}");
        }
    }

    #[test]
    fn command_expands_variables_like_ansible() {
        let home = std::env::var("HOME").unwrap_or_default();
        let (_, out) = run(
            &Command,
            json!({"argv": ["echo", "$HOME/x", "${HOME}", "~/y", "$NO_SUCH_VAR_X", "$(id)", "a$", "${x"]}),
        );
        assert_eq!(
            s(&out.expect("ran"), "stdout"),
            &json!(format!(
                "{home}/x {home} {home}/y $NO_SUCH_VAR_X $(id) a$ ${{x"
            ))
        );
        let (_, out) = run(
            &Command,
            json!({"_raw_params": "echo $HOME ~", "expand_argument_vars": false}),
        );
        assert_eq!(s(&out.expect("ran"), "stdout"), "$HOME ~");
        assert_eq!(expand_word("", &mut String::new()), "''");
    }

    #[test]
    fn command_argv_and_cmd() {
        let (_, out) = run(&Command, json!({"argv": ["printf", "%s-%s", "x y", 1]}));
        assert_eq!(s(&out.expect("ran"), "stdout"), "x y-1");
        let (_, out) = run(&Command, json!({"cmd": "echo hi"}));
        assert_eq!(s(&out.expect("ran"), "stdout"), "hi");
        let mut h = host();
        assert!(CMD
            .plan(&json!({"cmd": "a", "argv": ["b"]}), &mut h)
            .is_err());
        assert!(CMD.plan(&json!({"cmd": "echo 'x"}), &mut h).is_err());
        assert!(Command
            .check_params(&json!({"cmd": "x", "chdirr": "/"}))
            .is_err());
    }

    #[test]
    fn creates_and_removes_skip_and_plan_never_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_string_lossy().to_string();
        let marker = format!("{d}/marker");
        let p = json!({"_raw_params": format!("touch {marker}"), "creates": "mark*", "chdir": d});
        let mut h = host();
        let plan = CMD.plan(&p, &mut h).expect("plan");
        assert!(!plan.is_empty());
        assert!(
            !std::path::Path::new(&marker).exists(),
            "plan ran the command"
        );
        let out = CMD.apply(&p, plan, &mut h).expect("apply");
        assert!(out.changed);
        // Apply, then plan is empty: the glob in `creates` now matches.
        let again = CMD.plan(&p, &mut h).expect("plan");
        assert!(again.is_empty());
        assert_eq!(
            again.result.get("msg"),
            Some(&json!("skipped, since mark* exists"))
        );

        let p = json!({"_raw_params": format!("rm {marker}"), "removes": marker});
        let plan = CMD.plan(&p, &mut h).expect("plan");
        assert!(!plan.is_empty());
        CMD.apply(&p, plan, &mut h).expect("apply");
        let again = CMD.plan(&p, &mut h).expect("plan");
        assert!(again.is_empty());
        assert_eq!(
            again.result.get("msg"),
            Some(&json!(format!("skipped, since {marker} does not exist")))
        );
    }

    #[test]
    fn chdir_and_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_string_lossy().to_string();
        let (_, out) = run(&Command, json!({"_raw_params": "pwd", "chdir": d}));
        assert_eq!(s(&out.expect("ran"), "stdout"), &json!(d));
        let (_, out) = run(&Command, json!({"_raw_params": "od -c", "stdin": "x"}));
        assert!(s(&out.expect("ran"), "stdout")
            .as_str()
            .is_some_and(|o| o.contains("x  \\n")));
        let (_, out) = run(
            &Command,
            json!({"_raw_params": "wc -c", "stdin": "abc", "stdin_add_newline": "no"}),
        );
        assert_eq!(
            s(&out.expect("ran"), "stdout").as_str().map(str::trim),
            Some("3")
        );
        let mut h = host();
        let p = json!({"_raw_params": "pwd", "chdir": format!("{d}/missing")});
        let plan = CMD.plan(&p, &mut h).expect("plan");
        let err = CMD.apply(&p, plan, &mut h).expect_err("no such dir");
        assert!(err.to_string().contains("Unable to change directory"));
    }

    #[test]
    fn non_zero_rc_is_a_failed_outcome() {
        let (_, out) = run(
            &Command,
            json!({"_raw_params": "sh -c 'echo oops >&2; exit 3'"}),
        );
        let out = out.expect("ran");
        assert!(out.failed && out.changed);
        assert_eq!(out.msg.as_deref(), Some("non-zero return code"));
        assert_eq!(s(&out, "rc"), 3);
        assert_eq!(s(&out, "stderr"), "oops");
    }

    #[test]
    fn shell_pipes_and_executable() {
        let (_, out) = run(
            &Shell,
            json!({"_raw_params": "printf 'a\\nb\\n\\n' | tr a-z A-Z"}),
        );
        let out = out.expect("ran");
        assert_eq!(s(&out, "stdout"), "A\nB");
        assert_eq!(s(&out, "stdout_lines"), &json!(["A", "B"]));
        assert_eq!(s(&out, "cmd"), "printf 'a\\nb\\n\\n' | tr a-z A-Z");
        let (_, out) = run(
            &Shell,
            json!({"cmd": "echo $0", "executable": "/bin/bash", "strip_empty_ends": false}),
        );
        assert_eq!(s(&out.expect("ran"), "stdout"), "/bin/bash\n");
        let (_, out) = run(&Shell, json!({"_raw_params": "exit 2"}));
        assert!(out.expect("ran").failed);
    }

    #[test]
    fn shell_creates_invariant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "made");
        let p = json!({"_raw_params": format!("echo x > {}", quote(&f)), "creates": f});
        let (_, out) = converge(&Shell, &p);
        assert_eq!(get(&out.result, "rc"), 0);
    }

    #[test]
    fn raw_runs_the_text() {
        let (plan, out) = run(&Raw, json!({"_raw_params": "echo raw; exit 4"}));
        assert!(plan.unknowable);
        let out = out.expect("ran");
        assert!(out.failed);
        assert_eq!(s(&out, "stdout"), "raw\n");
        assert!(out.result.get("start").is_none());
    }
}
