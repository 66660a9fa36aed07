//! One playbook run under ansible-playbook on one fleet host and under
//! herd on another, from the same fresh state, three times: a first run, a
//! second run and a `--check` run. Each time both tools change as many
//! tasks; afterwards both hosts are in the same state under the paths the
//! test names (registered results are compared by the playbook writing
//! them into files under those paths).
//!
//! Both tools know the host by the same inventory name (`target`), so
//! anything named after it (fetch's tree, templates) compares. Each gets
//! `-e` arguments of its own on top of the shared ones, for controller
//! paths that must not collide (fetch's destination).

use std::path::{Path, PathBuf};

use crate::support::ansible::{ansible_cfg, require_collection, run_ansible, INSTALL_PYTHON};
use crate::support::fleet::fleet;
use crate::support::state::assert_same_state;

/// The inventory name both tools give their host.
pub(crate) const TARGET: &str = "target";

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
}

/// The `changed` counts of one round: (ansible, herd).
pub(crate) type Counts = (u64, u64);

impl Parity<'_> {
    /// Prepare both hosts, then run the three rounds, asserting equal
    /// `changed` counts and equal state after each. Returns the counts of
    /// the first, second and check rounds.
    pub(crate) fn run(&self) -> [Counts; 3] {
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
        let args = |own: &[String], check: bool| -> Vec<String> {
            let mut v: Vec<String> = self
                .extra_vars
                .iter()
                .chain(own)
                .flat_map(|e| ["-e".to_string(), e.clone()])
                .collect();
            if check {
                v.push("--check".into());
            }
            v
        };
        let round = |check: bool| -> Counts {
            let ansible_args = args(&self.ansible_vars, check);
            let herd = f
                .herd()
                .inventory(&herd_inv)
                .args(args(&self.herd_vars, check))
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
                let h = herd.run().expect_code(0);
                let h = h.stat(TARGET, "changed");
                (a.join().expect("ansible run panicked"), h)
            })
        };
        let mut out = [(0, 0); 3];
        for (i, (what, check)) in [("first", false), ("second", false), ("check", true)]
            .into_iter()
            .enumerate()
        {
            let (ansible, herd) = round(check);
            eprintln!(
                "{}: {what} run changed ansible={ansible} herd={herd}",
                self.label
            );
            if !self.collect.is_empty() {
                for host in [self.ansible_host, self.herd_host] {
                    f.ssh_ok(host, self.collect);
                }
            }
            assert_same_state(
                &format!("{} after the {what} run", self.label),
                self.ansible_host,
                self.herd_host,
                self.paths,
            );
            assert_eq!(
                herd, ansible,
                "{}: a {what} run changes as many tasks with herd as with ansible",
                self.label
            );
            out[i] = (ansible, herd);
        }
        out
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
