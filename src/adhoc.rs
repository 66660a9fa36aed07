//! `herd adhoc PATTERN -m MODULE -a ARGS`: one module on the hosts of a
//! pattern, as the `ansible` command does. The command line becomes a
//! one-task playbook (written to a private temp dir, loaded and validated
//! like any other, with the current directory as its base for relative
//! paths and `group_vars/`) and runs through the same path as `herd run`,
//! so connections, become, check mode, exit codes and `--output jsonl` are
//! the same. What differs is the human output: one block (or with `-o`
//! one line) per host in ansible's shape, and each `host_result` carries
//! the module's whole result in `output`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::OnceLock;
use std::thread::JoinHandle;

use clap::{Args, FromArgMatches, ValueEnum};
use serde_json::{Map, Value};

use crate::app::{exit, AppError};
use crate::cli::{HostKeyCheckingArg, InventoryOpts, OutputFormat, RunArgs};
use crate::jobs::JobRun;
use crate::output::{Event, EventSink, HostResult, Status};
use crate::playbook::Playbook;

#[derive(Debug, Args)]
pub struct AdhocArgs {
    /// Host pattern (`all`, `web`, `web:&prod`, `db*`).
    #[arg(add = crate::completions::host_pattern_completer())]
    pub pattern: String,
    #[command(flatten)]
    pub inventory: InventoryOpts,
    /// Module to run.
    #[arg(short = 'm', long = "module-name", default_value = "command", add = crate::completions::module_completer())]
    pub module: String,
    /// The module's arguments: `k=v k2=v2`, a JSON/YAML mapping, or the
    /// command for command/shell/raw.
    #[arg(short = 'a', long = "args", allow_hyphen_values = true)]
    pub args: Option<String>,
    /// One line per host.
    #[arg(short = 'o', long = "one-line")]
    pub one_line: bool,
    /// Further limit the selected hosts to a pattern.
    #[arg(short = 'l', long = "limit", add = crate::completions::host_pattern_completer())]
    pub limit: Option<String>,
    /// Extra variables, as for `run` (repeatable).
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Hosts worked on at once.
    #[arg(short = 'f', long = "forks", value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: Option<u16>,
    /// Report what would change; change nothing.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Show file differences.
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// Run with become (sudo).
    #[arg(short = 'b', long = "become")]
    pub become_: bool,
    /// User to become.
    #[arg(long = "become-user")]
    pub become_user: Option<String>,
    /// Ask for the become (sudo) password.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
    /// Connect as this user.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// SSH private key file.
    #[arg(long = "private-key", alias = "key-file")]
    pub private_key: Option<PathBuf>,
    /// Ask for the SSH password.
    #[arg(short = 'k', long = "ask-pass")]
    pub ask_pass: bool,
    /// What to do with unknown and changed host keys.
    #[arg(long = "host-key-checking", value_enum)]
    pub host_key_checking: Option<HostKeyCheckingArg>,
    /// A known_hosts file read first (repeatable).
    #[arg(long = "known-hosts")]
    pub known_hosts: Vec<PathBuf>,
    /// Seconds to wait for a connection.
    #[arg(short = 'T', long = "timeout")]
    pub timeout: Option<u64>,
    /// Seconds the command may run before it is abandoned.
    #[arg(long = "command-timeout")]
    pub command_timeout: Option<u64>,
    /// Output format.
    #[arg(long = "output", value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// More detail (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// What the rest of the run needs to know about an ad-hoc run.
struct Mode {
    module: String,
    one_line: bool,
    cwd: PathBuf,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Whether this process runs an ad-hoc command (host results then carry
/// the module's result).
pub fn active() -> bool {
    MODE.get().is_some()
}

/// An ad-hoc playbook's base directory is the current one, as `ansible`'s.
pub fn relocate(pb: &mut Playbook) {
    if let Some(mode) = MODE.get() {
        pb.dir = mode.cwd.clone();
    }
}

/// The one-task playbook for the command line. Values go in as JSON
/// strings (valid YAML scalars), so no argument can break the YAML.
pub fn playbook_text(a: &AdhocArgs) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let args = match a.args.as_deref().map(str::trim) {
        None | Some("") => "{}".to_string(),
        Some(s) if s.starts_with('{') => s.to_string(),
        Some(s) => quote(s),
    };
    format!(
        "- name: Ad-hoc\n  hosts: {}\n  gather_facts: false\n  tasks:\n    - {}: {}\n",
        quote(&a.pattern),
        quote(&a.module),
        args
    )
}

/// The `herd run` arguments this command means, parsed by the same
/// definitions so every default is `run`'s.
fn run_args(a: &AdhocArgs, playbook: &Path) -> Result<RunArgs, AppError> {
    let mut argv: Vec<String> = vec!["herd-run".into(), playbook.display().to_string()];
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            argv.push(flag.into());
            argv.push(v);
        }
    };
    let inv = &a.inventory;
    inv.inventory
        .iter()
        .for_each(|i| opt("-i", Some(i.display().to_string())));
    inv.vault
        .vault_password_files
        .iter()
        .for_each(|f| opt("--vault-password-file", Some(f.display().to_string())));
    inv.vault
        .vault_ids
        .iter()
        .for_each(|v| opt("--vault-id", Some(v.clone())));
    a.extra_vars.iter().for_each(|e| opt("-e", Some(e.clone())));
    a.known_hosts
        .iter()
        .for_each(|k| opt("--known-hosts", Some(k.display().to_string())));
    opt("-l", a.limit.clone());
    opt("-f", a.forks.map(|f| f.to_string()));
    opt("--become-user", a.become_user.clone());
    opt("-u", a.user.clone());
    opt(
        "--private-key",
        a.private_key.as_ref().map(|p| p.display().to_string()),
    );
    let name = |v: Option<clap::builder::PossibleValue>| v.map(|v| v.get_name().to_string());
    opt(
        "--host-key-checking",
        name(a.host_key_checking.and_then(|h| h.to_possible_value())),
    );
    opt("--output", name(a.output.to_possible_value()));
    opt("-T", a.timeout.map(|t| t.to_string()));
    opt(
        "--command-timeout",
        a.command_timeout.map(|t| t.to_string()),
    );
    for (on, flag) in [
        (inv.vault.ask_vault_pass, "-J"),
        (a.check, "-C"),
        (a.diff, "-D"),
        (a.become_, "-b"),
        (a.ask_become_pass, "-K"),
        (a.ask_pass, "-k"),
    ] {
        if on {
            argv.push(flag.into());
        }
    }
    argv.extend((0..a.verbose).map(|_| "-v".to_string()));
    let cmd = <RunArgs as Args>::augment_args(clap::Command::new("herd-run"));
    let matches = cmd.try_get_matches_from(argv)?;
    Ok(RunArgs::from_arg_matches(&matches)?)
}

/// A private directory for the generated playbook, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, AppError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!(
            "herd-adhoc-{}-{}",
            std::process::id(),
            crate::jobs::record::new_run_id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| AppError::AdhocFile {
                path: dir.clone(),
                source,
            })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the ad-hoc command through `inner` (the `herd run` path).
pub fn run<F>(a: AdhocArgs, inner: F) -> Result<u8, AppError>
where
    F: FnOnce(RunArgs, &JobRun) -> Result<u8, AppError>,
{
    let text = playbook_text(&a);
    let tmp = TempDir::new()?;
    let path = tmp.0.join("adhoc.yml");
    std::fs::write(&path, &text).map_err(|source| AppError::AdhocFile {
        path: path.clone(),
        source,
    })?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let _ = MODE.set(Mode {
        module: crate::actions::short_name(&a.module).to_string(),
        one_line: a.one_line,
        cwd,
    });
    let args = run_args(&a, &path)?;
    match crate::jobs::run(args, inner) {
        // Point at the generated task, not at a temp file that is gone.
        Err(AppError::Load(diags)) => {
            for mut d in diags {
                if d.path == path {
                    d.path = PathBuf::from("(herd adhoc)");
                    eprint!(
                        "{}",
                        crate::secrets::redact(&d.render_with_source(Some(&text)))
                    );
                } else {
                    eprint!("{}", crate::secrets::redact(&d.render()));
                }
            }
            eprintln!("error: nothing was run");
            Ok(exit::USAGE_OR_LOAD)
        }
        other => other,
    }
}

/// The human printer for ad-hoc runs (JSON lines use the usual one).
pub fn start_printer() -> (EventSink, JoinHandle<()>) {
    let (sink, rx) = EventSink::collecting();
    let handle = std::thread::spawn(move || print_events(rx));
    (sink, handle)
}

fn print_events(rx: Receiver<Event>) {
    let secrets = crate::secrets::global();
    let (module, one_line) = MODE
        .get()
        .map(|m| (m.module.as_str(), m.one_line))
        .unwrap_or(("command", false));
    for mut event in rx {
        event.redact(secrets);
        let text = match &event {
            Event::HostResult(r) => render(r, module, one_line),
            Event::Warning { message } => {
                eprintln!("[WARNING]: {}", crate::secrets::redact(message));
                continue;
            }
            _ => continue,
        };
        let mut out = std::io::stdout().lock();
        // A closed stdout must not kill the run.
        let _ = writeln!(out, "{}", crate::secrets::redact(&text));
    }
}

/// `{"a": 1,"b": 2}`: ansible's one-line JSON (`separators=(',', ': ')`).
struct OneLine;

impl serde_json::ser::Formatter for OneLine {
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn to_json(v: &Value, one_line: bool) -> String {
    let mut buf = Vec::new();
    let res = if one_line {
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, OneLine);
        serde::Serialize::serialize(v, &mut ser)
    } else {
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        serde::Serialize::serialize(v, &mut ser)
    };
    match res {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => "{}".into(),
    }
}

/// One host's result in the `ansible` command's shape.
pub fn render(r: &HostResult, module: &str, one_line: bool) -> String {
    let host = &r.host;
    let failed = matches!(r.status, Status::Failed | Status::Ignored);
    let caption = match r.status {
        Status::Skipped => return format!("{host} | SKIPPED"),
        Status::Ok => "SUCCESS",
        Status::Changed => "CHANGED",
        Status::Failed | Status::Ignored => "FAILED",
        Status::Unreachable => "UNREACHABLE!",
    };
    let mut result: std::collections::BTreeMap<String, Value> = match (&r.output, r.censored) {
        (Some(Value::Object(m)), false) => m.clone().into_iter().collect(),
        _ => Default::default(),
    };
    result.remove("failed");
    result.insert("changed".into(), Value::Bool(r.changed));
    if let Some(msg) = &r.msg {
        result
            .entry("msg".into())
            .or_insert_with(|| Value::from(msg.as_str()));
    }
    let text = |k: &str| {
        result
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let command_like = matches!(module, "command" | "shell" | "raw")
        && result.contains_key("rc")
        && r.status != Status::Unreachable;
    if command_like && !(one_line && failed) {
        let rc = result.get("rc").map(Value::to_string).unwrap_or_default();
        let (stdout, stderr) = (text("stdout"), text("stderr"));
        if one_line {
            let mut line = format!(
                "{host} | {caption} | rc={rc} | (stdout) {}",
                stdout.replace('\n', "\\n")
            );
            if !stderr.is_empty() {
                line.push_str(&format!(" (stderr) {}", stderr.replace('\n', "\\n")));
            }
            return line;
        }
        let msg = if failed { text("msg") } else { String::new() };
        return format!("{host} | {caption} | rc={rc} >>\n{stdout}{stderr}{msg}");
    }
    let caption = if failed { "FAILED!" } else { caption };
    let json = to_json(
        &Value::Object(result.into_iter().collect::<Map<_, _>>()),
        one_line,
    );
    format!("{host} | {caption} => {json}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(status: Status, output: Value) -> HostResult {
        HostResult {
            host: "w1".into(),
            task: "ping".into(),
            status,
            changed: status == Status::Changed,
            duration_ms: 1,
            msg: None,
            item: None,
            delegated_to: None,
            diffs: Vec::new(),
            output: Some(output),
            changes: Vec::new(),
            censored: false,
            result: None,
        }
    }

    /// The shapes recorded from ansible 2.18's `ansible` command.
    #[test]
    fn renders_like_the_ansible_command() {
        let ping = result(
            Status::Ok,
            json!({"ping": "pong", "changed": false, "failed": false}),
        );
        assert_eq!(
            render(&ping, "ping", true),
            r#"w1 | SUCCESS => {"changed": false,"ping": "pong"}"#
        );
        assert_eq!(
            render(&ping, "ping", false),
            "w1 | SUCCESS => {\n    \"changed\": false,\n    \"ping\": \"pong\"\n}"
        );
        let sh = result(
            Status::Changed,
            json!({"rc": 0, "stdout": "hi", "stderr": "err"}),
        );
        assert_eq!(render(&sh, "shell", false), "w1 | CHANGED | rc=0 >>\nhierr");
        assert_eq!(
            render(&sh, "shell", true),
            "w1 | CHANGED | rc=0 | (stdout) hi (stderr) err"
        );
        let mut bad = result(
            Status::Failed,
            json!({"rc": 3, "stdout": "a", "stderr": ""}),
        );
        bad.msg = Some("non-zero return code".into());
        assert_eq!(
            render(&bad, "shell", false),
            "w1 | FAILED | rc=3 >>\nanon-zero return code"
        );
        assert!(render(&bad, "shell", true).starts_with(
            r#"w1 | FAILED! => {"changed": false,"msg": "non-zero return code","rc": 3,"#
        ));
        assert_eq!(
            render(&result(Status::Skipped, json!({})), "shell", true),
            "w1 | SKIPPED"
        );
    }

    #[test]
    fn arguments_are_quoted_into_the_playbook() {
        let a = AdhocArgs::augment_args(clap::Command::new("t"))
            .try_get_matches_from(["t", "web:&prod", "-m", "shell", "-a", "echo \"x\": y"])
            .map(|m| AdhocArgs::from_arg_matches(&m).unwrap())
            .unwrap();
        let text = playbook_text(&a);
        let yaml = crate::yaml::parse(Path::new("t.yml"), &text)
            .unwrap()
            .to_json();
        assert_eq!(yaml[0]["hosts"], "web:&prod");
        assert_eq!(yaml[0]["tasks"][0]["shell"], "echo \"x\": y");
    }
}
