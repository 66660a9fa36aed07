//! A small fluent runner for the `herd` binary and readers for its JSON lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod fleet;

/// The repository root: examples and fixtures are found from here.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Herd {
    cmd: Command,
    label: String,
}

pub struct Run {
    pub output: Output,
    pub label: String,
}

impl Herd {
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let label = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        cmd.args(&args).current_dir(repo()).env_remove("HERD_LOG");
        // The caller's ANSIBLE_* settings must not leak into a test run.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ANSIBLE_") {
                cmd.env_remove(key);
            }
        }
        Herd { cmd, label }
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn run(mut self) -> Run {
        let output = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot start herd {}: {e}", self.label));
        Run {
            output,
            label: self.label,
        }
    }
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    /// Assert the exit code, showing both streams when it differs.
    pub fn expect_code(self, code: i32) -> Self {
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
    pub fn events(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
    /// The recap event's per-host counters.
    pub fn recap(&self) -> serde_json::Map<String, Value> {
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
    pub fn stat(&self, host: &str, key: &str) -> u64 {
        self.recap()[host][key].as_u64().unwrap_or(0)
    }
    /// Host results of the task named `task`.
    pub fn results(&self, task: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == "host_result" && e["task"] == task)
            .collect()
    }
}

/// Write `inventory.ini` and `site.yml` under `dir`, then `herd run` them
/// there with JSON lines output and `extra` arguments.
pub fn run_in(dir: &Path, inventory: &str, playbook: &str, extra: &[&str]) -> Run {
    write_files(dir, &[("inventory.ini", inventory), ("site.yml", playbook)]);
    let mut args = vec![
        "run",
        "site.yml",
        "-i",
        "inventory.ini",
        "--output",
        "jsonl",
    ];
    args.extend_from_slice(extra);
    Herd::new(args).current_dir(dir).run()
}

/// Write `files` (relative path, content) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir");
        }
        std::fs::write(&path, content).expect("write fixture file");
    }
}
