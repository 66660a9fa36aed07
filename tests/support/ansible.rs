//! Running the real `ansible-playbook` against fleet hosts, for the tests
//! that compare what it leaves behind with what `herd` leaves: where it is
//! found, the ansible.cfg those tests give it, one bounded run, and the
//! `changed=` count of its recap.
//!
//! ansible-playbook comes from `HERD_ANSIBLE_PLAYBOOK` (default: the venv
//! `bench/setup-ansible.sh` makes), the ansible.posix and community.general
//! collections from `HERD_ANSIBLE_COLLECTIONS` (default: `collections`
//! beside that venv, where the same script puts them). Without them a test
//! fails and says how to install them: CI runs that script first.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fleet::Fleet;
use crate::support::write_files;

const DEFAULT_ANSIBLE: &str = "/var/cache/herd-bench/venv/bin/ansible-playbook";

/// python3 for ansible's modules, from the fleet's local apt repository.
pub(crate) const INSTALL_PYTHON: &str = "command -v python3 >/dev/null || { apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq python3 >/dev/null; }";

/// The ansible-playbook to run, asserting it is installed.
pub(crate) fn ansible_playbook() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("HERD_ANSIBLE_PLAYBOOK").unwrap_or_else(|_| DEFAULT_ANSIBLE.into()),
    );
    assert!(
        path.is_file(),
        "ansible-playbook not found at {}: run bench/setup-ansible.sh (it installs ansible-core \
         into {}), or point HERD_ANSIBLE_PLAYBOOK at one",
        path.display(),
        Path::new(DEFAULT_ANSIBLE)
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"))
            .display()
    );
    path
}

/// Where the collections are: `HERD_ANSIBLE_COLLECTIONS`, else
/// `collections` beside the venv of [`ansible_playbook`].
pub(crate) fn collections_path() -> PathBuf {
    if let Ok(dir) = std::env::var("HERD_ANSIBLE_COLLECTIONS") {
        return PathBuf::from(dir);
    }
    let playbook = ansible_playbook();
    // .../venv/bin/ansible-playbook -> .../collections
    playbook
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"))
        .join("collections")
}

/// Assert the collection `ns.name` is installed where [`collections_path`] says.
pub(crate) fn require_collection(name: &str) {
    let dir = collections_path()
        .join("ansible_collections")
        .join(name.replace('.', "/"));
    assert!(
        dir.join("MANIFEST.json").is_file(),
        "the Ansible collection {name} is not installed in {}: run bench/setup-ansible.sh (it \
         unpacks ansible.posix and community.general there), or point HERD_ANSIBLE_COLLECTIONS \
         at a directory holding ansible_collections/",
        dir.display()
    );
}

/// `dir/ansible.cfg` as bench/run.sh writes it (pipelining, persistent
/// connections, strict host keys from the fleet's known_hosts), with
/// `gathering` as given: `explicit` for playbooks that gather nothing,
/// `implicit` for real projects that rely on Ansible's default. Collections
/// are looked for in [`collections_path`] only.
pub(crate) fn ansible_cfg(f: &Fleet, dir: &Path, gathering: &str) -> PathBuf {
    let text = format!(
        "[defaults]\nhost_key_checking = True\ngathering = {gathering}\n\
         collections_path = {}\n\
         interpreter_python = auto_silent\nretry_files_enabled = False\n\n\
         [ssh_connection]\npipelining = True\n\
         ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={} \
         -o StrictHostKeyChecking=yes -o ConnectTimeout=10\ncontrol_path_dir = {}\n",
        collections_path().display(),
        f.known_hosts.display(),
        dir.join("cp").display()
    );
    write_files(dir, &[("ansible.cfg", &text)]);
    dir.join("ansible.cfg")
}

/// Run `ansible-playbook -i inventory playbook extra...` in `cwd` with the
/// config `cfg` and the environment `env` (bounded: 10 minutes); it must
/// succeed. Returns the `changed=` count of `host` in its recap.
pub(crate) fn run_ansible(
    cfg: &Path,
    inventory: &Path,
    playbook: &Path,
    cwd: &Path,
    extra: &[String],
    env: &[(&str, PathBuf)],
    host: &str,
) -> u64 {
    let ansible = ansible_playbook();
    let out = Command::new("timeout")
        .arg("600")
        .arg(&ansible)
        .arg("-i")
        .arg(inventory)
        .args(extra)
        .arg(playbook)
        .env("ANSIBLE_CONFIG", cfg)
        .env("ANSIBLE_NOCOLOR", "1")
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ansible.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ansible-playbook {} failed ({}):\n{stdout}\n{}",
        playbook.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    recap_changed(&stdout, host).unwrap_or_else(|| panic!("no recap for {host}:\n{stdout}"))
}

/// `changed=N` from ansible's `PLAY RECAP` line for `host`.
pub(crate) fn recap_changed(stdout: &str, host: &str) -> Option<u64> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host) && l.contains(" ok="))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("changed="))?
        .parse()
        .ok()
}
