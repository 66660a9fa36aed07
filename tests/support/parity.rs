//! One playbook run under ansible-playbook on one fleet host and under
//! herd on another, from the same fresh state, in rounds (by default a
//! first run, a second run and a `--check` run). Each round both tools
//! change as many tasks (less any difference the test states, with its
//! reason); afterwards both hosts are in the same state under the paths
//! the test names (registered results are compared by the playbook
//! writing them into files under those paths).
//!
//! Both tools know the host by the same inventory name (`target`), so
//! anything named after it (fetch's tree, templates) compares. Each gets
//! `-e` arguments of its own on top of the shared ones, for controller
//! paths that must not collide (fetch's destination), and each round may
//! add its own (a playbook that records results per round names the files
//! after it).

use std::path::{Path, PathBuf};

use crate::support::ansible::{ansible_cfg, require_collection, run_ansible, INSTALL_PYTHON};
use crate::support::fleet::fleet;
use crate::support::state::{assert_same_state, snapshot};

/// The inventory name both tools give their host.
pub(crate) const TARGET: &str = "target";

/// One run of the playbook under both tools, side by side.
#[derive(Clone, Copy)]
pub(crate) struct Round<'a> {
    /// What the messages call it: "first", "check", ...
    pub name: &'a str,
    /// A `--check` run.
    pub check: bool,
    /// `-e` arguments of this round only, for both tools.
    pub vars: &'a [&'a str],
    /// How many more tasks herd reports changed than ansible in this
    /// round: a difference kept on purpose (the test says which and why;
    /// COMPATIBILITY.md documents it). Zero everywhere else.
    pub herd_extra_changes: u64,
    /// The round must leave both hosts exactly as they were under the
    /// compared paths (a check run whose playbook records nothing).
    pub leaves_hosts_unchanged: bool,
}

impl<'a> Round<'a> {
    /// A run that applies.
    pub(crate) const fn apply(name: &'a str) -> Self {
        Round {
            name,
            check: false,
            vars: &[],
            herd_extra_changes: 0,
            leaves_hosts_unchanged: false,
        }
    }

    /// A `--check` run.
    pub(crate) const fn check(name: &'a str) -> Self {
        Round {
            check: true,
            ..Round::apply(name)
        }
    }

    pub(crate) const fn vars(self, vars: &'a [&'a str]) -> Self {
        Round { vars, ..self }
    }

    pub(crate) const fn herd_extra_changes(self, n: u64) -> Self {
        Round {
            herd_extra_changes: n,
            ..self
        }
    }

    pub(crate) const fn leaves_hosts_unchanged(self) -> Self {
        Round {
            leaves_hosts_unchanged: true,
            ..self
        }
    }
}

/// A first run, a second run, then a `--check` run.
pub(crate) const FIRST_SECOND_CHECK: &[Round<'static>] = &[
    Round::apply("first"),
    Round::apply("second"),
    Round::check("check"),
];

pub(crate) struct Parity<'a> {
    pub label: &'a str,
    pub playbook: PathBuf,
    pub ansible_host: &'a str,
    pub herd_host: &'a str,
    /// Shell run on both hosts (as root, over ssh) before either tool runs.
    pub prepare: &'a str,
    /// `-e` arguments both tools get.
    pub extra_vars: Vec<String>,
    /// `-e` arguments for ansible-playbook only, then for herd only.
    pub ansible_vars: Vec<String>,
    pub herd_vars: Vec<String>,
    /// Shell run on both hosts after each round, before the comparison
    /// (to write what a tool's own listing shows under a compared path).
    pub collect: &'a str,
    /// The paths whose files are compared.
    pub paths: &'a [&'a str],
    pub collections: &'a [&'a str],
    /// The runs, in order.
    pub rounds: &'a [Round<'a>],
    /// Called after each round's comparison, with the round, for what a
    /// test checks between rounds (the controller side of a round).
    pub after_round: Option<&'a (dyn Fn(&Round) + Sync)>,
}

impl Default for Parity<'_> {
    fn default() -> Self {
        Parity {
            label: "",
            playbook: PathBuf::new(),
            ansible_host: "",
            herd_host: "",
            prepare: "",
            extra_vars: Vec::new(),
            ansible_vars: Vec::new(),
            herd_vars: Vec::new(),
            collect: "",
            paths: &[],
            collections: &[],
            rounds: FIRST_SECOND_CHECK,
            after_round: None,
        }
    }
}

/// The `changed` counts of one round: (ansible, herd).
pub(crate) type Counts = (u64, u64);

impl Parity<'_> {
    /// Prepare both hosts, then run the rounds, asserting equal `changed`
    /// counts and equal state after each. Returns each round's counts, in
    /// the order of `rounds`.
    pub(crate) fn run(&self) -> Vec<Counts> {
        for c in self.collections {
            require_collection(c);
        }
        let f = fleet();
        let dir = tempfile::tempdir().expect("tempdir");
        std::thread::scope(|s| {
            let a = s.spawn(|| self.prepare_host(self.ansible_host));
            self.prepare_host(self.herd_host);
            a.join().expect("preparing the ansible host panicked");
        });
        let ansible_inv = f
            .inventory()
            .root(TARGET, self.ansible_host, "")
            .write(dir.path(), "ansible.ini");
        let herd_inv = f
            .inventory()
            .root(TARGET, self.herd_host, "")
            .write(dir.path(), "herd.ini");
        let cfg = ansible_cfg(f, dir.path(), "explicit");
        let cwd = self
            .playbook
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        let args = |own: &[String], round: &Round| -> Vec<String> {
            let mut v: Vec<String> = self
                .extra_vars
                .iter()
                .chain(own)
                .map(String::as_str)
                .chain(round.vars.iter().copied())
                .flat_map(|e| ["-e".to_string(), e.to_string()])
                .collect();
            if round.check {
                v.push("--check".into());
            }
            v
        };
        // One round: the counts, and the tasks herd changed (for the
        // message when the counts differ).
        let both = |round: &Round| -> (Counts, String) {
            let ansible_args = args(&self.ansible_vars, round);
            let herd = f
                .herd()
                .inventory(&herd_inv)
                .args(args(&self.herd_vars, round))
                .playbook(&self.playbook)
                .current_dir(&cwd);
            std::thread::scope(|s| {
                let a = s.spawn(|| {
                    run_ansible(
                        &cfg,
                        &ansible_inv,
                        &self.playbook,
                        &cwd,
                        &ansible_args,
                        &[],
                        TARGET,
                    )
                });
                let run = herd.run().expect_code(0);
                let changed: Vec<String> = run
                    .events()
                    .iter()
                    .filter(|e| e["event"] == "host_result" && e["changed"] == true)
                    .map(|e| e["task"].as_str().unwrap_or_default().to_string())
                    .collect();
                let h = run.stat(TARGET, "changed");
                (
                    (a.join().expect("ansible run panicked"), h),
                    changed.join("; "),
                )
            })
        };
        let mut out = Vec::with_capacity(self.rounds.len());
        for round in self.rounds {
            let before = round
                .leaves_hosts_unchanged
                .then(|| self.hosts().map(|h| snapshot(h, self.paths)));
            let ((ansible, herd), herd_changed) = both(round);
            let what = round.name;
            eprintln!(
                "{}: {what} run changed ansible={ansible} herd={herd}",
                self.label
            );
            if !self.collect.is_empty() {
                for host in self.hosts() {
                    f.ssh_ok(host, self.collect);
                }
            }
            if let Some(before) = before {
                for (host, was) in self.hosts().into_iter().zip(before) {
                    assert_eq!(
                        snapshot(host, self.paths),
                        was,
                        "{}: the {what} run changed {host}",
                        self.label
                    );
                }
            }
            assert_same_state(
                &format!("{} after the {what} run", self.label),
                self.ansible_host,
                self.herd_host,
                self.paths,
            );
            assert_eq!(
                herd,
                ansible + round.herd_extra_changes,
                "{}: a {what} run changes as many tasks with herd as with ansible{}; herd \
                 changed: {herd_changed}",
                self.label,
                if round.herd_extra_changes > 0 {
                    format!(" (and {} more, as stated)", round.herd_extra_changes)
                } else {
                    String::new()
                }
            );
            if let Some(after) = self.after_round {
                after(round);
            }
            out.push((ansible, herd));
        }
        out
    }

    fn hosts(&self) -> [&str; 2] {
        [self.ansible_host, self.herd_host]
    }

    fn prepare_host(&self, host: &str) {
        let f = fleet();
        f.ssh_ok(host, INSTALL_PYTHON);
        if !self.prepare.is_empty() {
            f.ssh_ok(host, self.prepare);
        }
    }
}

/// Every file under `dir` with its bytes, paths relative to `dir`, sorted;
/// for comparing what the two tools fetched to the controller.
pub(crate) fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
