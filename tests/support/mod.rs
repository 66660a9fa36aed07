//! The one builder every integration test runs `herd` with ([`Herd`]:
//! playbook, inventory, limit, vars, flags, environment), the readers and
//! assertions on what a run printed ([`Run`]: exit code, JSON lines, recap
//! counts), and the test fleet's additions to both ([`fleet`]).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub(crate) mod ansible;
pub(crate) mod fleet;
pub(crate) mod parity;
pub(crate) mod state;

/// The repository root: examples and fixtures are found from here.
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `herd` command line under construction, in the manner of just's
/// `Test` builder: `Herd::play().playbook(..).inventory(..).limit(..)
/// .vars(..).run().expect_code(0).expect_changed(host, n)`.
///
/// Every step takes `&self` and returns a new builder, so one preset
/// (a playbook and an inventory, say) serves many runs that differ in a
/// flag or two, and `run` can be called again on the same builder.
#[derive(Clone)]
pub(crate) struct Herd {
    args: Vec<OsString>,
    dir: PathBuf,
    /// `(key, Some(value))` sets, `(key, None)` removes, in order.
    env: Vec<(OsString, Option<OsString>)>,
}

pub(crate) struct Run {
    pub output: Output,
    pub label: String,
}

impl Herd {
    /// `herd ARGS...` in the repository root.
    pub(crate) fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Herd {
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            dir: repo(),
            env: Vec::new(),
        }
    }

    /// `herd run`, to be given a playbook, an inventory and flags.
    pub(crate) fn play() -> Self {
        Herd::new(["run"])
    }

    /// More arguments after those already given.
    pub(crate) fn args<I, S>(&self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut h = self.clone();
        h.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        h
    }

    /// `FLAG VALUE`, replacing the value if `FLAG` was given before
    /// (clap refuses most flags twice).
    pub(crate) fn option(&self, flag: &str, value: impl AsRef<OsStr>) -> Self {
        let mut h = self.clone();
        let value = value.as_ref().to_owned();
        match h.args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < h.args.len() => h.args[i + 1] = value,
            _ => h.args.extend([OsString::from(flag), value]),
        }
        h
    }

    /// The playbook to run (a path, relative to the working directory).
    pub(crate) fn playbook(&self, path: impl AsRef<OsStr>) -> Self {
        self.args([path])
    }

    /// One of the repository's example playbooks, by its path in the repo.
    pub(crate) fn example(&self, rel: &str) -> Self {
        self.playbook(repo().join(rel))
    }

    /// `-i INVENTORY`.
    pub(crate) fn inventory(&self, path: impl AsRef<OsStr>) -> Self {
        self.option("-i", path)
    }

    /// `--limit PATTERN`.
    pub(crate) fn limit(&self, pattern: &str) -> Self {
        self.option("--limit", pattern)
    }

    /// `-e VARS`: JSON (a `serde_json::Value`), `key=value` or `@file`.
    /// May be given more than once, as on the command line.
    pub(crate) fn vars(&self, vars: impl ToString) -> Self {
        self.args(["-e".to_string(), vars.to_string()])
    }

    /// `--check`.
    pub(crate) fn check(&self) -> Self {
        self.args(["--check"])
    }

    /// `--diff`.
    pub(crate) fn diff(&self) -> Self {
        self.args(["--diff"])
    }

    /// `--known-hosts FILE`.
    pub(crate) fn known_hosts(&self, path: impl AsRef<OsStr>) -> Self {
        self.option("--known-hosts", path)
    }

    /// `--output FORMAT`.
    pub(crate) fn output(&self, format: &str) -> Self {
        self.option("--output", format)
    }

    /// `--output jsonl`, for [`Run::events`] and the recap readers.
    pub(crate) fn jsonl(&self) -> Self {
        self.output("jsonl")
    }

    pub(crate) fn env_remove(&self, key: &str) -> Self {
        let mut h = self.clone();
        h.env.push((key.into(), None));
        h
    }

    pub(crate) fn env(&self, key: &str, value: impl AsRef<OsStr>) -> Self {
        let mut h = self.clone();
        h.env.push((key.into(), Some(value.as_ref().to_owned())));
        h
    }

    pub(crate) fn current_dir(&self, dir: &Path) -> Self {
        let mut h = self.clone();
        h.dir = dir.to_path_buf();
        h
    }

    /// The arguments, joined for messages.
    pub(crate) fn label(&self) -> String {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command, for a caller that starts it itself (in the
    /// background, with pipes of its own).
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
        cmd.args(&self.args)
            .current_dir(&self.dir)
            .env_remove("HERD_LOG");
        // The caller's ANSIBLE_* settings must not leak into a test run.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ANSIBLE_") {
                cmd.env_remove(key);
            }
        }
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// Run; it must exit 0 with `changed` tasks changed on `host`.
    pub(crate) fn converge(&self, host: &str, changed: u64) -> Run {
        self.run().expect_code(0).expect_changed(host, changed)
    }

    /// [`Herd::converge`] with the same count on each of `hosts`.
    pub(crate) fn converge_all(&self, hosts: &[&str], changed: u64) -> Run {
        self.run().expect_code(0).expect_changed_on(hosts, changed)
    }

    /// Run herd to its end and keep what it printed.
    pub(crate) fn run(&self) -> Run {
        let label = self.label();
        let output = self
            .command()
            .output()
            .unwrap_or_else(|e| panic!("cannot start herd {label}: {e}"));
        Run { output, label }
    }
}

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub(crate) fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    /// Assert the exit code, showing both streams when it differs.
    pub(crate) fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "herd {} exited {} (wanted {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.label,
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// Every JSON line of `--output jsonl`.
    pub(crate) fn events(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
    /// The recap event's per-host counters.
    pub(crate) fn recap(&self) -> serde_json::Map<String, Value> {
        self.events()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "recap")
            .and_then(|e| e["hosts"].as_object().cloned())
            .unwrap_or_else(|| {
                panic!(
                    "no recap in output of herd {}:\n{}",
                    self.label,
                    self.stdout()
                )
            })
    }
    /// Counter `key` of `host` in the recap.
    pub(crate) fn stat(&self, host: &str, key: &str) -> u64 {
        self.recap()[host][key].as_u64().unwrap_or(0)
    }
    /// Assert `host`'s `changed` count in the recap, showing the output
    /// when it differs.
    pub(crate) fn expect_changed(self, host: &str, changed: u64) -> Self {
        assert_eq!(
            self.stat(host, "changed"),
            changed,
            "{host}: changed count of herd {}:\n{}",
            self.label,
            self.stdout()
        );
        self
    }
    /// [`Run::expect_changed`] for each of `hosts`.
    pub(crate) fn expect_changed_on(self, hosts: &[&str], changed: u64) -> Self {
        hosts
            .iter()
            .fold(self, |run, host| run.expect_changed(host, changed))
    }
    /// `host`'s result of the task named `task`.
    pub(crate) fn result(&self, task: &str, host: &str) -> Value {
        self.results(task)
            .into_iter()
            .find(|r| r["host"] == host)
            .unwrap_or_else(|| panic!("no result of `{task}` for {host}:\n{}", self.stdout()))
    }
    /// Host results of the task named `task`.
    pub(crate) fn results(&self, task: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == "host_result" && e["task"] == task)
            .collect()
    }
}

/// Write `inventory.ini` and `site.yml` under `dir`, then `herd run` them
/// there with JSON lines output and `extra` arguments.
pub(crate) fn run_in(dir: &Path, inventory: &str, playbook: &str, extra: &[&str]) -> Run {
    write_files(dir, &[("inventory.ini", inventory), ("site.yml", playbook)]);
    Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .jsonl()
        .args(extra)
        .current_dir(dir)
        .run()
}

/// Write `files` (relative path, content) under `dir`.
pub(crate) fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir");
        }
        std::fs::write(&path, content).expect("write fixture file");
    }
}
