//! Shell completions. `herd completions bash|zsh|fish` prints a script that
//! registers a completion function; on each Tab that function calls `herd`
//! back (`COMPLETE=bash herd -- WORDS...`), and [`complete_if_asked`], run
//! first thing in `main`, answers from clap's own definitions
//! (`clap_complete`'s dynamic engine): subcommands, flags, enum values,
//! paths, and what the value completers here add: host and group names read
//! from the inventory of the command line being completed (its `-i`, else
//! ansible.cfg's `inventory`) for host patterns (`--limit`, `herd adhoc
//! PATTERN`, `herd inventory --host`), and module names (`herd doc`,
//! `herd adhoc -m`).
//!
//! Completion never fails loudly: an inventory that does not load gives no
//! names, and nothing is printed but candidates.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, CommandFactory as _, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter, CompletionCandidate};

use crate::app::exit;
use crate::inventory::Inventory;

/// The environment variable that turns a `herd` call into a completion
/// request (clap_complete's convention, as cargo and jj use it).
const VAR: &str = "COMPLETE";

/// `herd completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells `herd completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// Source it: `source <(herd completions bash)` in `~/.bashrc`.
    Bash,
    /// Source it: `source <(herd completions zsh)` in `~/.zshrc` (after compinit).
    Zsh,
    /// Save it as `~/.config/fish/completions/herd.fish`.
    Fish,
}

impl Shell {
    fn env_completer(self) -> &'static dyn clap_complete::env::EnvCompleter {
        match self {
            Shell::Bash => &clap_complete::env::Bash,
            Shell::Zsh => &clap_complete::env::Zsh,
            Shell::Fish => &clap_complete::env::Fish,
        }
    }
}

/// Answer a completion request (the shell's function calling back with
/// `COMPLETE=SHELL`) and exit; return at once on a normal run.
pub fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(crate::cli::Cli::command)
        .var(VAR)
        .complete();
}

/// Print the registration script for `args.shell`. The script calls back
/// the binary the way this one was called: `herd` when found on PATH, an
/// absolute path when run by path (`./target/release/herd`).
pub fn run(args: &CompletionsArgs) -> Result<u8, std::io::Error> {
    let completer = completer_path();
    let mut script = Vec::new();
    args.shell
        .env_completer()
        .write_registration(VAR, "herd", "herd", &completer, &mut script)?;
    std::io::stdout().lock().write_all(&script)?;
    Ok(exit::OK)
}

/// argv[0], made absolute when it is a relative path with a directory
/// (a bare `herd` stays a PATH lookup), as clap_complete's own `COMPLETE=bash
/// herd` registration does.
fn completer_path() -> String {
    let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_else(|| "herd".into()));
    let path = if argv0.is_relative() && argv0.components().count() > 1 {
        std::env::current_dir()
            .map(|d| d.join(&argv0))
            .unwrap_or(argv0)
    } else {
        argv0
    };
    path.to_string_lossy().into_owned()
}

/// `add = ...` for a host-pattern argument: groups and hosts.
pub fn host_pattern_completer() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| complete_names(current, true))
}

/// `add = ...` for an argument naming one host.
pub fn host_completer() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| complete_names(current, false))
}

/// `add = ...` for a module name.
pub fn module_completer() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        herdsman_modules::registry()
            .iter()
            .map(|m| CompletionCandidate::new(m.name()).help(Some(m.doc().short.into())))
            .collect::<Vec<_>>()
    })
}

/// Names from the inventory that continue `current`. In a pattern
/// (`web:&prod:!db1`) the last term is completed and the terms before it
/// are kept; groups come first, then hosts, each in inventory order.
fn complete_names(current: &OsStr, groups: bool) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let Some(inventory) = load_inventory(&command_words()) else {
        return Vec::new();
    };
    let (head, term) = if groups {
        split_pattern(current)
    } else {
        ("", current)
    };
    let group_names = inventory
        .groups
        .keys()
        .filter(|_| groups)
        .map(|g| (g, "group"));
    let host_names = inventory.hosts.keys().map(|h| (h, "host"));
    group_names
        .chain(host_names)
        .filter(|(name, _)| name.starts_with(term))
        .map(|(name, kind)| {
            CompletionCandidate::new(format!("{head}{name}")).help(Some(kind.into()))
        })
        .collect()
}

/// A pattern split before its last term: `("web:&", "pr")` for `web:&pr`.
/// Terms are separated by `:` or `,`; `&` and `!` prefix a term.
fn split_pattern(pattern: &str) -> (&str, &str) {
    let start = pattern.rfind([':', ',', '&', '!']).map_or(0, |i| i + 1);
    pattern.split_at(start)
}

/// The words of the command line being completed: what the shell's
/// function passed after `--` (`herd -- herd run -i inv.ini --limit we`).
fn command_words() -> Vec<OsString> {
    std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect()
}

/// The inventory that command line would use: its `-i`/`--inventory`
/// values, else ansible.cfg's. Only the inventory files are read (names
/// come from them; `group_vars/` adds none), so vaulted vars need no password.
fn load_inventory(words: &[OsString]) -> Option<Inventory> {
    let mut sources = inventory_args(words);
    if sources.is_empty() {
        sources = crate::config::AnsibleConfig::load().ok()?.inventory;
    }
    if sources.is_empty() {
        return None;
    }
    Inventory::load_names(&sources).ok()
}

/// `-i X`, `-iX`, `--inventory X`, `--inventory=X`, in order. A leading
/// `~/` is the home directory: the shell has not expanded it yet.
fn inventory_args(words: &[OsString]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut words = words.iter().map(|w| w.to_string_lossy());
    while let Some(word) = words.next() {
        let value = match word.as_ref() {
            "-i" | "--inventory" => words.next().map(std::borrow::Cow::into_owned),
            w => w
                .strip_prefix("--inventory=")
                .or_else(|| w.strip_prefix("-i"))
                .filter(|v| !v.is_empty())
                .map(str::to_string),
        };
        if let Some(v) = value {
            out.push(expand_home(&v));
        }
    }
    out
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn a_pattern_is_completed_in_its_last_term() {
        assert_eq!(split_pattern("we"), ("", "we"));
        assert_eq!(split_pattern("web:&pr"), ("web:&", "pr"));
        assert_eq!(split_pattern("web:!"), ("web:!", ""));
        assert_eq!(split_pattern("a,b"), ("a,", "b"));
        assert_eq!(split_pattern(""), ("", ""));
    }

    #[test]
    fn inventory_flags_are_read_in_every_spelling() {
        let w = words("herd run site.yml -i a.ini --inventory b -ic --inventory=d -l x --limit y");
        assert_eq!(
            inventory_args(&w),
            ["a.ini", "b", "c", "d"].map(PathBuf::from)
        );
        assert!(inventory_args(&words("herd adhoc web -m ping")).is_empty());
        // A flag at the end, its value not typed yet.
        assert!(inventory_args(&words("herd run -i")).is_empty());
    }

    #[test]
    fn every_shell_gets_a_script_that_calls_herd_back() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut buf = Vec::new();
            shell
                .env_completer()
                .write_registration(VAR, "herd", "herd", "/usr/bin/herd", &mut buf)
                .unwrap();
            let text = String::from_utf8(buf).unwrap();
            assert!(text.contains("COMPLETE="), "{text}");
            assert!(text.contains("/usr/bin/herd"), "{text}");
        }
    }
}
