//! Top-level flow: turn a parsed command line into loaded, validated inputs
//! and hand them to the executor or the inventory printer. Exit codes:
//! 0 success, 1 usage or load error, 2 some host failed, 4 some host unreachable,
//! 10 changes pending (`--check --detailed-exitcode`), 75 `--lock` held
//! by another run, 99 interrupted by SIGINT, 143 stopped by SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use herdsman_modules::Registry;
use serde_json::{Map, Value};

use crate::cli::{Cli, Command, InventoryArgs, RunArgs};
use crate::config::AnsibleConfig;
use crate::connection::open::ConnectSettings;
use crate::executor::RunOptions;

use crate::diagnostic::Diagnostic;
use crate::inventory::Inventory;
use crate::playbook::{self, Playbook};
use crate::template::Templar;

/// Everything loaded and validated before any connection opens.
pub struct Project {
    pub inventory: Inventory,
    pub playbooks: Vec<Playbook>,
    pub templar: Templar,
    /// Problems that do not stop a run (modules herd does not implement).
    pub warnings: Vec<Diagnostic>,
    /// The modules tasks may name; the engine asks them what they need.
    pub modules: Registry,
}

/// Load inventories and playbooks and validate them. All problems found are
/// returned together, each with path:line:col.
pub fn load_project(
    playbook_paths: &[PathBuf],
    inventories: &[PathBuf],
) -> Result<Project, Vec<Diagnostic>> {
    load_project_with(playbook_paths, inventories, Registry::builtin())
}

/// [`load_project`] with the modules tasks may name (the built-ins, or a
/// test's set).
pub fn load_project_with(
    playbook_paths: &[PathBuf],
    inventories: &[PathBuf],
    modules: Registry,
) -> Result<Project, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut inventory = match Inventory::load(inventories) {
        Ok(inv) => inv,
        Err(mut e) => {
            errors.append(&mut e);
            Inventory::default()
        }
    };
    let mut playbooks = Vec::new();
    for path in playbook_paths {
        match playbook::load_playbook_with(path, &modules) {
            Ok(mut pb) => {
                crate::adhoc::relocate(&mut pb);
                if let Err(mut e) = inventory.add_vars_dir(&pb.dir) {
                    errors.append(&mut e);
                }
                playbooks.push(pb);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    let search: Vec<PathBuf> = playbooks
        .first()
        .map(|pb| playbook::template_search_paths(&pb.dir))
        .unwrap_or_default();
    let templar = Templar::new(search);
    let mut warnings = Vec::new();
    for pb in &playbooks {
        let (e, w) = playbook::validate_with_warnings(pb, &templar, &modules);
        errors.extend(e);
        warnings.extend(w);
    }
    if errors.is_empty() {
        Ok(Project {
            inventory,
            playbooks,
            templar,
            warnings,
            modules,
        })
    } else {
        Err(errors)
    }
}

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const USAGE_OR_LOAD: u8 = 1;
    pub const HOST_FAILED: u8 = 2;
    pub const HOST_UNREACHABLE: u8 = 4;
    /// SIGINT (Ctrl-C): ansible-playbook's "User interrupted execution" code.
    pub const INTERRUPTED: u8 = 99;
    /// SIGTERM: 128 + 15, what a shell reports for ansible-playbook killed
    /// by it (herd stops its commands and prints the recap first).
    pub const TERMINATED: u8 = 143;
    /// `--check --detailed-exitcode`: some host has changes pending and
    /// none failed or was unreachable.
    pub const CHANGES_PENDING: u8 = 10;
    /// `--lock`: another run holds the lock (EX_TEMPFAIL: try again later).
    pub const LOCKED: u8 = 75;

    /// The exit code for a run stopped by `signal`.
    pub fn for_signal(signal: i32) -> u8 {
        if signal == libc::SIGTERM {
            TERMINATED
        } else {
            INTERRUPTED
        }
    }
}

/// SIGINT and SIGTERM stop the run cleanly: the first one is recorded (see
/// `herdsman_modules::cancel`), every command in flight is stopped on its
/// host, no new task starts, and the recap is printed. A second one means
/// "now": herd exits at once with the same code.
fn install_signal_handlers() {
    extern "C" fn on_signal(signal: libc::c_int) {
        if herdsman_modules::cancel::interrupted().is_some() {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(i32::from(exit::for_signal(signal))) }
        }
        herdsman_modules::cancel::interrupt(signal);
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only does an
        // atomic store or _exit, both async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Why `herd` stopped before running anything.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{} error(s) found", .0.len())]
    Load(Vec<Diagnostic>),
    #[error("bad --extra-vars `{arg}`: {reason}")]
    ExtraVars { arg: String, reason: String },
    #[error("cannot read --extra-vars file {path}: {reason}")]
    ExtraVarsFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Run(#[from] crate::executor::RunError),
    #[error("cannot ask for the {prompt} ({reason}); without a terminal, set it in the inventory (ansible_password, ansible_become_password)")]
    Prompt { prompt: String, reason: String },
    #[error("host `{0}` is not in the inventory")]
    UnknownHost(String),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error(transparent)]
    VaultCommand(#[from] crate::vault_cli::VaultCliError),
    #[error(transparent)]
    Pattern(#[from] crate::inventory::pattern::PatternError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `--lock` could not take its lock file.
    #[error(transparent)]
    Lock(#[from] crate::jobs::lock::LockError),
    /// `--log-file` could not be opened.
    #[error(transparent)]
    LogFile(#[from] crate::jobs::record::LogFileError),
    /// `--start-at-task` named no task.
    #[error(transparent)]
    StartAt(#[from] crate::jobs::list::NoSuchTask),
    /// `herd adhoc`'s arguments did not make a run.
    #[error("{0}")]
    AdhocArgs(#[from] clap::Error),
    /// `herd adhoc` could not write its playbook.
    #[error("cannot write {}: {source}", .path.display())]
    AdhocFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    VarsPrompt(#[from] crate::vars_prompt::VarsPromptError),
    /// `--step` without a terminal to ask on.
    #[error("--step asks before each task on the terminal, but stdin is not a terminal; run without --step")]
    StepWithoutTerminal,
    #[error(transparent)]
    Doc(#[from] crate::doc_cmd::DocError),
    /// `herd completions` could not write its script.
    #[error("cannot write the completion script: {0}")]
    Completions(std::io::Error),
}

pub fn main() -> ExitCode {
    // Before anything is printed: a shell asking for completions gets
    // only candidates, and the process ends there.
    crate::completions::complete_if_asked();
    // A controller program's remote shell (synchronize's rsync): a relay
    // to the host's session, not a run.
    if let Some(code) = herdsman_modules::relay::run_if_asked() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; usage errors exit 1, as
            // documented (clap's own default would be 2, which means
            // "a host failed" here).
            let code = if e.use_stderr() {
                exit::USAGE_OR_LOAD
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(&cli);
    match run_command(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(AppError::Load(diags)) => {
            for d in &diags {
                eprint!("{}", crate::secrets::redact(&d.render()));
            }
            eprintln!("error: {} problem(s) found; nothing was run", diags.len());
            ExitCode::from(exit::USAGE_OR_LOAD)
        }
        Err(e) => {
            eprintln!("error: {}", crate::secrets::redact(&e.to_string()));
            ExitCode::from(exit::USAGE_OR_LOAD)
        }
    }
}

fn init_tracing(cli: &Cli) {
    let verbosity = match &cli.command {
        Command::Run(r) => r.verbose,
        Command::Adhoc(a) => a.verbose,
        _ => 0,
    };
    let default = match verbosity {
        0..=2 => "warn",
        3 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only for a person at a terminal: a cron job's or a pipe's
    // stderr gets plain lines, and NO_COLOR (set, not empty) turns them off.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| crate::secrets::RedactingStderr)
        .try_init();
}

pub fn run_command(command: Command) -> Result<u8, AppError> {
    // ansible.cfg and ANSIBLE_* first: they are the defaults the flags override.
    let config = AnsibleConfig::load()?;
    crate::playbook::load::configure_role_paths(
        config.roles_path.clone(),
        config.collections_path.clone(),
    );
    let inventory = match &command {
        Command::Run(a) => Some(&a.inventory),
        Command::Validate(a) => Some(&a.inventory),
        Command::Inventory(a) => Some(&a.inventory),
        Command::Adhoc(a) => Some(&a.inventory),
        // `herd vault` reads its passwords itself, per subcommand.
        Command::Vault(_) => None,
        // Documentation reads no configuration, inventory or vault.
        Command::Doc(a) => return Ok(crate::doc_cmd::run(a)?),
        // Neither does printing a completion script.
        Command::Completions(a) => {
            return crate::completions::run(a).map_err(AppError::Completions)
        }
    };
    if let Some(inventory) = inventory {
        // Before anything is loaded: every YAML loader decrypts with these.
        let vault_sources = crate::vault::PasswordSources {
            configured: config.vault_password_file.clone(),
            ..inventory.vault_sources()
        };
        crate::vault::keyring().set(crate::vault::load_secrets(&vault_sources)?);
    }
    match command {
        Command::Run(args) => crate::jobs::run(*args, |args, job| cmd_run(args, &config, job)),
        Command::Validate(args) => {
            let _extra = parse_extra_vars(&args.extra_vars)?;
            print_config_warnings(&config);
            let inventories = inventory_paths(&args.inventory.inventory, &config);
            let project = load_project(&args.playbooks, &inventories).map_err(AppError::Load)?;
            print_warnings(&project);
            for w in &project.warnings {
                eprint!("{}", crate::secrets::redact(&w.render_as_warning()));
            }
            let plays: usize = project.playbooks.iter().map(|p| p.plays.len()).sum();
            println!(
                "ok: {} playbook(s), {} play(s), {} host(s) in the inventory",
                project.playbooks.len(),
                plays,
                project.inventory.hosts.len()
            );
            Ok(exit::OK)
        }
        Command::Inventory(args) => {
            print_config_warnings(&config);
            cmd_inventory(args, &config)
        }
        Command::Vault(args) => {
            print_config_warnings(&config);
            crate::vault_cli::run(&args, config.vault_password_file.clone())?;
            Ok(exit::OK)
        }
        Command::Adhoc(a) => crate::adhoc::run(*a, |args, job| cmd_run(args, &config, job)),
        Command::Doc(args) => Ok(crate::doc_cmd::run(&args)?),
        Command::Completions(args) => crate::completions::run(&args).map_err(AppError::Completions),
    }
}

/// `-i` paths, else ansible.cfg's `inventory`.
fn inventory_paths(cli: &[PathBuf], config: &AnsibleConfig) -> Vec<PathBuf> {
    if cli.is_empty() {
        config.inventory.clone()
    } else {
        cli.to_vec()
    }
}

fn print_config_warnings(config: &AnsibleConfig) {
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
}

/// Whether any play or task of the run asks for become (for the
/// become_method check).
fn uses_become(project: &Project) -> bool {
    fn tasks(list: &[crate::playbook::model::Task]) -> bool {
        list.iter().any(|t| {
            t.become_ == Some(true)
                || match &t.kind {
                    crate::playbook::model::TaskKind::Block {
                        block,
                        rescue,
                        always,
                    } => tasks(block) || tasks(rescue) || tasks(always),
                    _ => false,
                }
        })
    }
    project.playbooks.iter().flat_map(|pb| &pb.plays).any(|p| {
        p.become_ == Some(true)
            || tasks(&p.pre_tasks)
            || tasks(&p.tasks)
            || tasks(&p.post_tasks)
            || tasks(&p.handlers)
    })
}

/// Non-fatal load problems, on stderr so stdout stays clean for tools.
fn print_warnings(project: &Project) {
    for w in &project.inventory.warnings {
        eprintln!("warning: {w}");
    }
}

fn cmd_run(
    args: RunArgs,
    config: &AnsibleConfig,
    job: &crate::jobs::JobRun,
) -> Result<u8, AppError> {
    let extra_vars = parse_extra_vars(&args.extra_vars)?;
    let inventories = inventory_paths(&args.inventory.inventory, config);
    let mut project = load_project(&args.playbooks, &inventories).map_err(AppError::Load)?;
    if let Some(code) = crate::jobs::list::before_run(&args, &mut project)? {
        return Ok(code);
    }
    if args.step && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(AppError::StepWithoutTerminal);
    }
    crate::vars_prompt::ask_all(&mut project.playbooks, &extra_vars)?;
    let become_ = args.become_ || config.become_ == Some(true);
    config.check_become_method(become_ || uses_become(&project))?;
    let connect = connect_settings(&args, config)?;
    let ask_become_pass = args.ask_become_pass || config.become_ask_pass == Some(true);
    let opts = RunOptions {
        forks: usize::from(args.forks.or(config.forks).unwrap_or(20)),
        check: args.check,
        diff: args.diff,
        tags: args.tags,
        skip_tags: args.skip_tags,
        become_,
        become_user: args.become_user.or_else(|| config.become_user.clone()),
        limit: args.limit,
        extra_vars,
        force_handlers: args.force_handlers,
        verbosity: args.verbose,
        profile: args.profile,
        step: args.step,
        connect,
        become_password: if ask_become_pass {
            Some(ask("BECOME password: ")?)
        } else {
            None
        },
        gather_explicit: config.gathering.is_some_and(|g| !g.gathers_by_default()),
    };
    install_signal_handlers();
    let (sink, printer) = job.start_output(args.output, args.verbose);
    for w in &config.warnings {
        sink.send(crate::output::Event::Warning { message: w.clone() });
    }
    for w in &project.inventory.warnings {
        sink.send(crate::output::Event::Warning {
            message: w.to_string(),
        });
    }
    let result = crate::executor::run(&project, &opts, &sink);
    drop(sink);
    let _ = printer.join();
    let recap = result?;
    if let Some(signal) = herdsman_modules::cancel::interrupted() {
        eprintln!(
            "error: interrupted by {}",
            herdsman_modules::host::signal_name(signal)
        );
        return Ok(exit::for_signal(signal));
    }
    Ok(job.exit_code(&recap))
}

fn cmd_inventory(args: InventoryArgs, config: &AnsibleConfig) -> Result<u8, AppError> {
    let inventories = inventory_paths(&args.inventory.inventory, config);
    let mut inventory = Inventory::load(&inventories).map_err(AppError::Load)?;
    for w in &inventory.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(limit) = &args.limit {
        let keep: indexmap::IndexSet<String> = inventory.select(limit)?.into_iter().collect();
        inventory.hosts.retain(|h, _| keep.contains(h));
        for g in inventory.groups.values_mut() {
            g.hosts.retain(|h| keep.contains(h));
        }
    }
    if let Some(host) = &args.host {
        if !inventory.hosts.contains_key(host) {
            return Err(AppError::UnknownHost(host.clone()));
        }
        let vars = serde_json::Value::Object(inventory.host_vars(host));
        println!(
            "{}",
            serde_json::to_string_pretty(&vars).unwrap_or_default()
        );
    } else if args.graph {
        print!("{}", inventory.graph());
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&inventory.to_list_json()).unwrap_or_default()
        );
    }
    Ok(exit::OK)
}

/// Connection settings: flags over ansible.cfg/ANSIBLE_* over herd's defaults.
/// ansible.cfg `host_key_checking = True` maps to `strict` (Ansible would
/// ask about an unknown key; herd cannot ask, so it refuses), `False` to `off`.
fn connect_settings(args: &RunArgs, config: &AnsibleConfig) -> Result<ConnectSettings, AppError> {
    use crate::cli::HostKeyCheckingArg;
    use crate::connection::ssh::HostKeyChecking;
    let ssh_config = crate::connection::ssh_config::default_path()
        .filter(|p| p.exists())
        .and_then(|p| crate::connection::ssh_config::SshConfig::load(&p).ok());
    Ok(ConnectSettings {
        remote_user: args.user.clone(),
        config_remote_user: config.remote_user.clone(),
        config_remote_port: config.remote_port,
        ssh_args: config.ssh_args.clone(),
        private_key: args
            .private_key
            .clone()
            .or_else(|| config.private_key_file.clone()),
        host_key_checking: args
            .host_key_checking
            .map(|h| match h {
                HostKeyCheckingArg::Strict => HostKeyChecking::Strict,
                HostKeyCheckingArg::AcceptNew => HostKeyChecking::AcceptNew,
                HostKeyCheckingArg::Off => HostKeyChecking::Off,
            })
            .or(config.host_key_checking.map(|strict| {
                if strict {
                    HostKeyChecking::Strict
                } else {
                    HostKeyChecking::Off
                }
            })),
        known_hosts: args.known_hosts.clone(),
        password: if args.ask_pass {
            Some(ask("SSH password: ")?)
        } else {
            None
        },
        key_passphrase: if args.ask_key_pass {
            Some(ask("Private key passphrase: ")?)
        } else {
            None
        },
        connect_timeout: args
            .timeout
            .or(config.timeout)
            .map(std::time::Duration::from_secs),
        command_timeout: args.command_timeout.map(std::time::Duration::from_secs),
        max_output: args.max_command_output,
        ssh_config,
        jumps: Default::default(),
    })
}

/// Ask on the terminal, without echo. Without a terminal (cron, CI) this
/// fails at once instead of hanging.
fn ask(prompt: &str) -> Result<String, AppError> {
    rpassword::prompt_password(prompt).map_err(|e| AppError::Prompt {
        prompt: prompt.trim_end_matches([':', ' ']).to_string(),
        reason: e.to_string(),
    })
}

/// `-e` values, later ones overriding earlier ones: `@file` (YAML/JSON),
/// an inline YAML/JSON mapping, or `k=v` pairs.
pub fn parse_extra_vars(args: &[String]) -> Result<Map<String, Value>, AppError> {
    let mut out = Map::new();
    for arg in args {
        let trimmed = arg.trim();
        let value = if let Some(file) = trimmed.strip_prefix('@') {
            let path = PathBuf::from(file);
            let node = crate::yaml::parse_file(&path).map_err(|d| AppError::ExtraVarsFile {
                path: path.clone(),
                reason: d.message,
            })?;
            node.to_json()
        } else if trimmed.starts_with('{') {
            crate::yaml::parse(std::path::Path::new("--extra-vars"), trimmed)
                .map_err(|d| AppError::ExtraVars {
                    arg: arg.clone(),
                    reason: d.message,
                })?
                .to_json()
        } else {
            Value::Object(
                crate::kv::parse_kv(trimmed).map_err(|e| AppError::ExtraVars {
                    arg: arg.clone(),
                    reason: e.to_string(),
                })?,
            )
        };
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k, v);
                }
            }
            Value::Null => {}
            _ => {
                return Err(AppError::ExtraVars {
                    arg: arg.clone(),
                    reason: "expected a mapping of variables".into(),
                })
            }
        }
    }
    Ok(out)
}
