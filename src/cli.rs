//! Command-line interface: clap definitions with the ansible-playbook flags
//! people already type. Raw arguments become a validated [`RunConfig`] early.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "herd",
    version,
    about = "Run Ansible-style playbooks over SSH, fast"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run playbooks against an inventory.
    Run(Box<RunArgs>),
    /// Load playbooks, check every module's parameters and every template's
    /// syntax; connects to nothing.
    Validate(ValidateArgs),
    /// Show an inventory, like ansible-inventory.
    Inventory(InventoryArgs),
    /// Encrypt, decrypt, view and edit ansible-vault files, like ansible-vault.
    Vault(crate::vault_cli::VaultArgs),
    /// Run one module on the hosts of a pattern, like the `ansible` command.
    Adhoc(Box<crate::adhoc::AdhocArgs>),
    /// Show a module's documentation; without MODULE, list the modules.
    Doc(DocArgs),
    /// Print a shell completion script (bash, zsh, fish) that completes
    /// subcommands, flags and the inventory's host and group names.
    Completions(crate::completions::CompletionsArgs),
}

/// `herd doc [MODULE] [--format text|json|markdown]`.
#[derive(Debug, Args)]
pub struct DocArgs {
    /// The module, by short or long name (`copy`, `ansible.builtin.copy`).
    #[arg(add = crate::completions::module_completer())]
    pub module: Option<String>,
    /// How to print it.
    #[arg(long, value_enum, default_value_t = DocFormat::Text)]
    pub format: DocFormat,
}

/// `herd doc --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DocFormat {
    /// For the terminal.
    #[default]
    Text,
    /// The same facts as one JSON object (a list for every module).
    Json,
    /// The page under docs/modules/.
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Lines for people; live progress on a terminal.
    #[default]
    Human,
    /// One JSON event per line.
    Jsonl,
}

/// `--host-key-checking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostKeyCheckingArg {
    /// Unknown host keys are refused.
    Strict,
    /// Unknown keys are recorded; a changed key fails that host (default).
    AcceptNew,
    /// No checking.
    Off,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Playbook files, run in order.
    #[arg(required = true)]
    pub playbooks: Vec<PathBuf>,
    #[command(flatten)]
    pub inventory: InventoryOpts,
    /// Further limit the selected hosts to a pattern.
    #[arg(short = 'l', long = "limit", add = crate::completions::host_pattern_completer())]
    pub limit: Option<String>,
    /// Extra variables: `k=v k2=v2`, YAML/JSON, or `@file` (repeatable).
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Hosts worked on at once [default: ansible.cfg `forks`, else 20].
    #[arg(short = 'f', long = "forks", value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: Option<u16>,
    /// Report what would change; change nothing.
    #[arg(short = 'C', long = "check")]
    pub check: bool,
    /// Show file differences.
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,
    /// Run only tasks with these tags (comma-separated, repeatable).
    #[arg(short = 't', long = "tags", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with these tags.
    #[arg(long = "skip-tags", value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Run tasks with become (sudo).
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
    /// Ask for the SSH password (first contact with new nodes).
    #[arg(short = 'k', long = "ask-pass")]
    pub ask_pass: bool,
    /// Ask for the private key's passphrase.
    #[arg(long = "ask-key-pass")]
    pub ask_key_pass: bool,
    /// What to do with unknown and changed host keys.
    #[arg(long = "host-key-checking", value_enum)]
    pub host_key_checking: Option<HostKeyCheckingArg>,
    /// A known_hosts file read first (new keys are recorded in it; repeatable).
    #[arg(long = "known-hosts")]
    pub known_hosts: Vec<PathBuf>,
    /// Seconds to wait for a connection.
    #[arg(short = 'T', long = "timeout", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Seconds a single command may run before it is abandoned.
    #[arg(long = "command-timeout", value_parser = clap::value_parser!(u64).range(1..))]
    pub command_timeout: Option<u64>,
    /// Bytes a single command may print on each of stdout and stderr before
    /// it is stopped and its task fails [default: 67108864, 64 MiB].
    #[arg(long = "max-command-output", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_command_output: Option<u64>,
    /// Run handlers of hosts that failed later on.
    #[arg(long = "force-handlers")]
    pub force_handlers: bool,
    /// Output format.
    #[arg(long = "output", value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// After the recap, print per task the round trips to hosts and the
    /// time spent connecting, running commands and moving files.
    #[arg(long = "profile")]
    pub profile: bool,
    /// Before each task ask on the terminal whether to run it: (N)o skips
    /// it, (y)es runs it, (c)ontinue runs it and the rest of the play
    /// without asking. Needs a terminal.
    #[arg(long = "step")]
    pub step: bool,
    /// More detail (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Scheduled-job flags (lock, log file, metrics, notify).
    #[command(flatten)]
    pub jobs: crate::jobs::JobArgs,
    /// ansible-playbook's listing flags and --start-at-task.
    #[command(flatten)]
    pub list: crate::jobs::list::ListArgs,
}

#[derive(Debug, Args)]
pub struct InventoryOpts {
    /// Inventory file or directory (repeatable) [default: ansible.cfg
    /// `inventory`].
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Vec<PathBuf>,
    #[command(flatten)]
    pub vault: crate::vault_cli::VaultPasswordOpts,
}

impl InventoryOpts {
    /// Where this run's vault passwords come from.
    pub fn vault_sources(&self) -> crate::vault::PasswordSources {
        self.vault.sources()
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub playbooks: Vec<PathBuf>,
    #[command(flatten)]
    pub inventory: InventoryOpts,
    /// Extra variables, as for `run`.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub inventory: InventoryOpts,
    /// Print all hosts and groups as JSON.
    #[arg(long, conflicts_with = "graph", required_unless_present_any = ["graph", "host"])]
    pub list: bool,
    /// Print the group tree.
    #[arg(long)]
    pub graph: bool,
    /// Print one host's variables as JSON.
    #[arg(long, add = crate::completions::host_completer())]
    pub host: Option<String>,
    /// Only hosts matching this pattern.
    #[arg(short = 'l', long = "limit", add = crate::completions::host_pattern_completer())]
    pub limit: Option<String>,
}
