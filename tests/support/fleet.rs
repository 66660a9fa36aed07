//! The shared test fleet: real Debian hosts (systemd-nspawn, each in its
//! own network namespace, reachable over SSH) brought up once per test run
//! by `tests/fleet/fleet.sh` and taken down when the test binary exits.
//!
//! Host roles, so parallel tests never step on each other:
//! - `herd-01`..`herd-06`: shared; tests there use names and paths of their
//!   own, and take [`Fleet::lock`] for host-wide state (apt's dpkg lock,
//!   hostname, sysctl keys).
//! - `herd-07`: exclusive tests that disturb the whole host (reboot).
//! - `herd-08`: the "host dies mid-run" test kills it.
//! - `herd-09`: `compose_deploy` (Docker from [`Fleet::ensure_docker`]).
//! - `herd-10`: `volume_backup` (Docker from [`Fleet::ensure_docker`]).
//! - `herd-11`, `herd-12`: `docker_install`, from bare hosts.
//! - `herd-13`..`herd-18`: `elasticsearch_cluster` (3 masters, 2 data, one
//!   node added later).
//! - `herd-19`..`herd-25`: fault tests (`fleet_faults.rs`), one fault each,
//!   so a cut link or a stopped sshd never stalls another test:
//!   `herd-19` link cut, `herd-20` sshd stopped (SIGSTOP), `herd-21` sshd
//!   killed, `herd-22` disk full and the `timeout:` keyword, `herd-23` and
//!   `herd-24` herd interrupted (SIGINT, SIGTERM), `herd-25` two `herd`
//!   runs at once. (The reboot fault uses `herd-07` under its lock.)
//! - `herd-26`: the scheduled-backup job's failing Docker host
//!   (`fleet_jobs.rs` stops its dockerd).
//! - `herd-27`, `herd-28`: `bootstrap-node.yml` (`fleet_bootstrap.rs`):
//!   `herd-27` is the new node, made fresh (root password login only) over
//!   its console ([`Fleet::console`]), then locked down to key logins as
//!   `deploy`; `herd-28` is the one-master Elasticsearch cluster it joins.
//! - `herd-29`: the ansible.builtin modules of `fleet_builtin_more.rs`
//!   (replace, find, fetch, script, git, pip, debconf, ...).
//! - `herd-30`: the `community.docker` modules (`fleet_docker_modules.rs`,
//!   Docker from [`Fleet::ensure_docker`]).
//! - `herd-31`..`herd-38`: Ansible corpus cases (`fleet_corpus.rs`), a
//!   pair per case: ansible-playbook on the odd host, herd on the even.
//! - `herd-39`..`herd-50`: module parity tests, ansible-playbook on the odd
//!   host of a pair and herd on the even: `herd-39`/`herd-40`
//!   community.general (timezone, locale_gen, sudoers, pam_limits,
//!   ini_file, modprobe), `herd-41`/`herd-42` archive, alternatives,
//!   ansible.posix acl and at, iptables, `herd-43`/`herd-44`
//!   ansible.posix.synchronize, `herd-45`/`herd-46` apt, user and copy
//!   additions, `herd-47`/`herd-48` the ansible.builtin parity playbook,
//!   `herd-49`/`herd-50` the community.docker parity playbook.
//!
//! With `HERD_FLEET_REUSE=1` a fleet that is already up is used and left
//! up (for development, where one fleet serves many test runs).
//! `HERD_FLEET_ID=N` picks fleet N (its own bridge, subnet and state dir,
//! see `tests/fleet/README.md`), so two checkouts can test side by side.
//!
//! There is no silent skip: if the fleet cannot come up, every test that
//! asked for it fails and says why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::Value;

use crate::support::{repo, write_files, Herd};

pub(crate) const FLEET_SIZE: usize = 50;

pub(crate) struct FleetHost {
    pub name: String,
    pub address: String,
}

// Not every test file uses every helper, and the unused ones depend on
// which test files are compiled in.
#[allow(dead_code)]
pub(crate) struct Fleet {
    /// fleet.sh's state directory (per-host pid files, keys, inventory).
    pub state: PathBuf,
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
    pub key: PathBuf,
    pub hosts: Vec<FleetHost>,
    /// The local apt repository's URL, e.g. `http://10.77.0.1:8080/`;
    /// fleet hosts can fetch anything put in its directory.
    pub repo_url: String,
    /// The test machine's address on the fleet bridge, e.g. `10.77.0.1`.
    pub bridge_address: String,
    locks: HashMap<String, Mutex<()>>,
    docker_ready: HashMap<String, OnceLock<Result<(), String>>>,
}

static FLEET: OnceLock<Result<Fleet, String>> = OnceLock::new();

fn fleet_script() -> PathBuf {
    repo().join("tests/fleet/fleet.sh")
}

extern "C" fn take_fleet_down() {
    // Runs at exit of the test binary; output goes where the tests' went.
    let _ = Command::new(fleet_script()).arg("down").output();
}

/// The fleet, brought up on first use.
pub(crate) fn fleet() -> &'static Fleet {
    match FLEET.get_or_init(bring_up) {
        Ok(f) => f,
        Err(e) => panic!("the test fleet is not available: {e}"),
    }
}

/// fleet.sh's state directory, by the same rule fleet.sh uses.
fn state_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HERD_FLEET_STATE") {
        return PathBuf::from(dir);
    }
    match std::env::var("HERD_FLEET_ID").ok().filter(|id| id != "0") {
        Some(id) => PathBuf::from(format!("/run/herd-fleet-{id}")),
        None => PathBuf::from("/run/herd-fleet"),
    }
}

fn bring_up() -> Result<Fleet, String> {
    let state = state_dir();
    let reuse = std::env::var("HERD_FLEET_REUSE").is_ok_and(|v| v == "1");
    let already_up = reuse && read_hosts(&state).is_ok_and(|h| h.len() >= FLEET_SIZE);
    if !already_up {
        let out = Command::new(fleet_script())
            .args(["up", &FLEET_SIZE.to_string()])
            .output()
            .map_err(|e| format!("cannot run fleet.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "fleet.sh up {FLEET_SIZE} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if !reuse {
            // SAFETY: registering a plain extern "C" fn with no captured state.
            unsafe {
                libc::atexit(take_fleet_down);
            }
        }
    }
    let hosts = read_hosts(&state)?;
    let info = read_hosts_json(&state)?;
    let repo_url = info["apt_repo"].as_str().unwrap_or_default().to_string();
    let bridge_address = info["bridge_address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let locks = hosts
        .iter()
        .map(|h| (h.name.clone(), Mutex::new(())))
        .collect();
    let docker_ready = hosts
        .iter()
        .map(|h| (h.name.clone(), OnceLock::new()))
        .collect();
    Ok(Fleet {
        inventory: state.join("inventory.ini"),
        known_hosts: state.join("known_hosts"),
        key: state.join("id_ed25519"),
        state,
        hosts,
        repo_url,
        bridge_address,
        locks,
        docker_ready,
    })
}

fn read_hosts_json(state: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(state.join("hosts.json"))
        .map_err(|e| format!("no fleet state in {}: {e}", state.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("bad hosts.json: {e}"))
}

fn read_hosts(state: &Path) -> Result<Vec<FleetHost>, String> {
    let v = read_hosts_json(state)?;
    Ok(v["hosts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| FleetHost {
                    name: h["name"].as_str().unwrap_or_default().to_string(),
                    address: h["address"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default())
}

#[allow(dead_code)]
impl Fleet {
    pub(crate) fn address(&self, host: &str) -> &str {
        self.hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.address.as_str())
            .unwrap_or_else(|| panic!("no fleet host {host}"))
    }

    /// Exclusive use of a host's host-wide state for the guard's lifetime.
    pub(crate) fn lock(&self, host: &str) -> MutexGuard<'_, ()> {
        self.locks
            .get(host)
            .unwrap_or_else(|| panic!("no fleet host {host}"))
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `herd run` against this fleet: its known_hosts, JSON lines output,
    /// the fleet's whole inventory until [`Herd::inventory`] says otherwise.
    pub(crate) fn herd(&self) -> Herd {
        Herd::play()
            .inventory(&self.inventory)
            .known_hosts(&self.known_hosts)
            .jsonl()
    }

    /// Write `dir/name`, a one-play playbook running `tasks` (YAML task
    /// list items, indented by four spaces) on `host` without gathering
    /// facts, and return `herd run` of it limited to `host`.
    pub(crate) fn play(&self, dir: &Path, name: &str, host: &str, tasks: &str) -> Herd {
        let text = format!("- hosts: {host}\n  gather_facts: no\n  tasks:\n{tasks}");
        write_files(dir, &[(name, &text)]);
        self.herd().playbook(dir.join(name)).limit(host)
    }

    /// An inventory file of fleet hosts, built line by line.
    pub(crate) fn inventory(&self) -> Inventory<'_> {
        Inventory {
            fleet: self,
            text: String::new(),
        }
    }

    /// Run a shell command on a host as root with the ssh client, to check
    /// what a playbook did independently of herd's own transport.
    pub(crate) fn ssh(&self, host: &str, command: &str) -> Output {
        Command::new("ssh")
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                &format!("UserKnownHostsFile={}", self.known_hosts.display()),
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=10",
                "-i",
            ])
            .arg(&self.key)
            .arg(format!("root@{}", self.address(host)))
            .arg(command)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ssh: {e}"))
    }

    /// Run a shell script as root inside a host without SSH, as on its
    /// console: in every namespace of the host's init (nsenter), so it
    /// works whatever the host's sshd accepts (a test that locks root out,
    /// or one that needs a host as it was before any key was installed).
    pub(crate) fn console(&self, host: &str, script: &str) -> Output {
        let init = self
            .init_pid(host)
            .unwrap_or_else(|| panic!("no running init found for {host}"));
        Command::new("nsenter")
            .args(["-t", &init.to_string(), "-m", "-u", "-i", "-n", "-p", "--"])
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap_or_else(|e| panic!("cannot run nsenter: {e}"))
    }

    /// stdout of [`Fleet::console`], asserting the script succeeded.
    pub(crate) fn console_ok(&self, host: &str, script: &str) -> String {
        let out = self.console(host, script);
        assert!(
            out.status.success(),
            "`{script}` on {host}'s console failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The PID (on the test machine) of `host`'s init: the child of the
    /// systemd-nspawn that runs that host's directory. Looked up each time,
    /// since a reboot starts a new nspawn.
    fn init_pid(&self, host: &str) -> Option<u32> {
        let directory = format!("--directory={}/hosts/{host}/root", self.state.display());
        let machine = format!("--machine={host}");
        let procs: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // The fields after the command name, which may hold spaces.
                let rest = &stat[stat.rfind(')')? + 1..];
                let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                Some((pid, ppid, cmdline))
            })
            .collect();
        let nspawn = procs.iter().find(|(_, _, cmd)| {
            cmd.starts_with("systemd-nspawn ")
                && cmd.split(' ').any(|w| w == machine)
                && cmd.split(' ').any(|w| w == directory)
        })?;
        procs
            .iter()
            .find(|(_, ppid, _)| *ppid == nspawn.0)
            .map(|(pid, _, _)| *pid)
    }

    /// stdout of [`Fleet::ssh`], asserting the command succeeded.
    pub(crate) fn ssh_ok(&self, host: &str, command: &str) -> String {
        let out = self.ssh(host, command);
        assert!(
            out.status.success(),
            "`{command}` on {host} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Docker Engine and the compose v2 plugin installed and running on
    /// `host` (from the fleet's apt repository), with the image
    /// `herd/busybox:1` built by `docker import` of a busybox-static rootfs
    /// (sh, httpd, wget, sleep, ...). Done once per host per test run; for
    /// tests that need Docker, not the ones that test installing it.
    pub(crate) fn ensure_docker(&self, host: &str) {
        let ready = self
            .docker_ready
            .get(host)
            .unwrap_or_else(|| panic!("no fleet host {host}"))
            .get_or_init(|| {
                let out = self.ssh(host, ENSURE_DOCKER_SCRIPT);
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            });
        if let Err(e) = ready {
            panic!("Docker did not come up on {host}: {e}");
        }
    }
}

/// Installs Docker from the fleet repository and builds `herd/busybox:1`.
/// Bounded: apt has its own timeouts, the daemon wait is 30 x 1 s.
const ENSURE_DOCKER_SCRIPT: &str = r#"set -eu
export DEBIAN_FRONTEND=noninteractive
if ! command -v dockerd >/dev/null || ! docker compose version >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq docker.io docker-compose busybox-static >/dev/null
fi
systemctl start docker
for i in $(seq 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info >/dev/null 2>&1 || { docker info; exit 1; }
if ! docker image inspect herd/busybox:1 >/dev/null 2>&1; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/var/www"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - herd/busybox:1 >/dev/null
  rm -rf "$root"
fi
"#;

/// An INI inventory over fleet hosts: `[group]` headers, host lines that
/// reach a fleet host with the fleet's key, and any raw text.
pub(crate) struct Inventory<'f> {
    fleet: &'f Fleet,
    text: String,
}

#[allow(dead_code)]
impl Inventory<'_> {
    /// A `[name]` header (`[name:vars]`, `[name:children]` too).
    pub(crate) fn group(mut self, name: &str) -> Self {
        self.text.push_str(&format!("[{name}]\n"));
        self
    }

    /// `name` reaching `fleet_host` with the fleet's key; `vars` (INI
    /// `key=value` pairs, may be empty) follow, so they win over nothing.
    pub(crate) fn host(mut self, name: &str, fleet_host: &str, vars: &str) -> Self {
        self.text.push_str(&format!(
            "{name} ansible_host={} ansible_ssh_private_key_file={}",
            self.fleet.address(fleet_host),
            self.fleet.key.display()
        ));
        if !vars.is_empty() {
            self.text.push(' ');
            self.text.push_str(vars);
        }
        self.text.push('\n');
        self
    }

    /// [`Inventory::host`] as root; `ansible_user` in `vars` still wins,
    /// as the later setting on an INI line does.
    pub(crate) fn root(self, name: &str, fleet_host: &str, vars: &str) -> Self {
        let vars = format!("ansible_user=root {vars}");
        self.host(name, fleet_host, vars.trim_end())
    }

    /// Raw inventory text (group variables, children, comments).
    pub(crate) fn text(mut self, text: &str) -> Self {
        self.text.push_str(text);
        self
    }

    /// Write the inventory as `dir/file` and return its path.
    pub(crate) fn write(self, dir: &Path, file: &str) -> PathBuf {
        write_files(dir, &[(file, &self.text)]);
        dir.join(file)
    }
}
