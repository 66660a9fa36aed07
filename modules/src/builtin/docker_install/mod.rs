//! `docker_install`: Docker Engine, the compose v2 plugin, the `docker`
//! group's members and `/etc/docker/daemon.json`, on Debian-family hosts.
//!
//! `source: distro` installs the distribution's `docker.io`, and compose v2
//! from `docker-compose` when its version is 2.x, else from
//! `docker-compose-plugin` or `docker-compose-v2`, whichever the package
//! lists have ("where available": none is a warning, not a failure).
//! `source: docker` writes Docker's signing key to
//! `/etc/apt/keyrings/docker.asc` and a deb822 source
//! `/etc/apt/sources.list.d/docker.sources` (rendered by
//! `deb822_repository`), then installs `docker-ce docker-ce-cli
//! containerd.io docker-compose-plugin`. Packages go through the `apt`
//! module (lists refreshed first), so its plan and failures are the same.
//!
//! `daemon.json` is `daemon` merged over the production defaults
//! ([`defaults`]; nested maps merge, `null` drops a key), plus
//! `registry_mirrors`, `insecure_registries` and `metrics_addr`, written
//! with sorted keys. It is compared as JSON, so reformatting the file by
//! hand is not a change. A new file is first checked by dockerd itself
//! with the service's own flags: `dockerd --validate` where it exists
//! (23.0 on); before that (Debian bookworm's 20.10) dockerd loads the
//! file and is stopped at its pid-file check by a pid file naming a live
//! process, which comes after every config check dockerd does before it
//! starts and before it touches anything. Only then is the file written and
//! the daemon restarted; if it does not answer again, the previous file is
//! put back (or removed), the daemon restarted on it, and the task fails
//! with the daemon's own error from the journal.
//!
//! The daemon restarts only when the file changed. The plan is one probe
//! script and never changes anything. `min_version` fails a host whose
//! engine (the running server, else the installed package) is older.

mod apply;
mod daemon;
mod packages;
mod params;
mod plan;
mod probe;
mod service;

use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

pub use daemon::{daemon_config, daemon_text, defaults};
pub use packages::{choose_compose, older_than, version_parts};
pub use params::{DockerInstallParams, Source};
use plan::decide;
use probe::{parse_probe, probe_script};
pub use service::exec_argv;

pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";
pub const KEYRING: &str = "/etc/apt/keyrings/docker.asc";
/// The deb822 source's `name`: the file is `/etc/apt/sources.list.d/docker.sources`.
const SOURCE_NAME: &str = "docker";
const GROUP: &str = "docker";
/// How long to wait for the daemon to answer after a restart, by default.
const DEFAULT_RESTART_TIMEOUT: u64 = 60;

pub struct DockerInstall;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: DockerInstall::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

impl Module for DockerInstall {
    const NAME: &'static str = "docker_install";
    const DOC_SHORT: &'static str =
        "Install Docker Engine and compose v2, add users to the docker group, manage daemon.json.";
    const DOC_LONG: &'static str = r##"Ops modules: `docker_install` installs Docker Engine and the compose v2
plugin, adds `users` to the `docker` group and manages
`/etc/docker/daemon.json`. `source: distro` (the default) installs the
distribution's `docker.io`, and compose v2 from `docker-compose` when its
version is 2.x, else `docker-compose-plugin` or `docker-compose-v2`, whichever
the package lists have (none: a warning). `source: docker` writes Docker's
signing key to `/etc/apt/keyrings/docker.asc` and a deb822 source
`/etc/apt/sources.list.d/docker.sources`, then installs `docker-ce
docker-ce-cli containerd.io docker-compose-plugin` from download.docker.com.

- The defaults, from our production guide: `log-driver: json-file`,
  `log-opts {max-size: 10m, max-file: "3"}`, `storage-driver: overlay2`,
  `live-restore: true`, `default-ulimits {nofile: 64000/64000}`,
  `userland-proxy: false`. The file is written with sorted keys and
  compared as JSON (a hand-reformatted file with the same settings is no
  change); `--diff` shows it.
- The daemon restarts only when the file changed. dockerd checks a new file
  before it is written, with the service's own flags (so `hosts` in the file
  next to the unit's `-H fd://` is caught): `dockerd --validate` from 23.0;
  on 20.10 (Debian bookworm), which has no `--validate`, dockerd loads the
  file and is stopped at its pid-file check, which comes after all of its
  configuration checks (JSON, unknown keys, conflicts with the flags, the
  value checks it makes on load)
  and before it touches anything. A refused file fails the task with
  dockerd's message and nothing is changed.
- Some settings pass that check and fail only when the daemon starts (on
  20.10: an unknown `storage-driver`, say). If dockerd does not answer
  within `restart_timeout` after the restart, the previous daemon.json is
  put back (or removed, if there was none), the daemon restarted on it, and
  the task fails with dockerd's error from the journal and `systemctl
  status`. Settings dockerd accepts at start but that break containers later
  (an unknown `log-driver` on 20.10) are not caught.
- The result has `version` (the server's) and `compose_version`;
  `min_version` fails a host whose engine is older, in the plan when an
  engine is already there. A second run reports `changed=0`.
- `playbooks/docker-install.yml` with `inventories/docker-install.ini` is a
  runnable example against the test fleet (herd-11 and herd-12, which start
  without Docker and install it from the fleet's apt repository)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Docker with our production daemon settings
  docker_install:
    users: [deploy]
    daemon:                              # merged over the defaults below
      log-opts: {max-size: 50m}          # nested maps merge key by key
      userland-proxy: null               # null drops a default
    registry_mirrors: ["http://10.0.0.5:5000"]
    insecure_registries: ["10.0.0.5:5000"]
    metrics_addr: 127.0.0.1:9323
    min_version: "20.10"                 # quoted: YAML reads 20.10 as 20.1
    # source: distro|docker, compose: true, repo_url, repo_key, restart_timeout: 60
  register: docker   # docker.version, docker.compose_version, docker.daemon
"##;
    type Params = DockerInstallParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        // Parameter mistakes first, before looking at the host.
        daemon_config(p)?;
        if let Some(min) = &p.min_version {
            if version_parts(min).is_empty() {
                return Err(invalid("min_version", "expected a version such as 20.10"));
            }
        }
        let users = p.users.clone().unwrap_or_default();
        if let Some(u) = users
            .iter()
            .find(|u| u.starts_with('-') || u.contains([':', '\n']))
        {
            return Err(invalid("users", format!("`{u}` is not a user name")));
        }
        let out = host.run(&probe_script(&users), None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "looking at the host's Docker failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        let facts = parse_probe(&out.stdout_str())?;
        let (mut plan, planned) = decide(p, &facts)?;
        plan.keep_state(&planned)?;
        Ok(plan)
    }
    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        apply::apply(p, plan, host)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde_json::{json, Value};

    use super::packages::{all_pkgs, spec_name, COMPOSE_PKGS};
    use super::service::{parse_validation, parse_why, validate_script};
    use super::*;
    use crate::module::parse_params;
    use crate::testing::{exec, ok, FakeHost, Match, Reply};
    use crate::DynModule;

    fn params(v: Value) -> DockerInstallParams {
        parse_params::<DockerInstallParams>(DockerInstall::NAME, &v).expect("params")
    }

    const DEFAULT_FILE: &str = r#"{
  "default-ulimits": {
    "nofile": {
      "Hard": 64000,
      "Name": "nofile",
      "Soft": 64000
    }
  },
  "live-restore": true,
  "log-driver": "json-file",
  "log-opts": {
    "max-file": "3",
    "max-size": "10m"
  },
  "storage-driver": "overlay2",
  "userland-proxy": false
}
"#;

    #[test]
    fn daemon_json_is_the_defaults_with_the_map_merged_over_sorted() {
        let cfg = daemon_config(&params(json!({}))).expect("cfg");
        assert_eq!(daemon_text(&cfg), DEFAULT_FILE);
        let p = params(json!({
            "daemon": {"log-opts": {"max-size": "50m", "max-file": 5}, "userland-proxy": null,
                       "iptables": false, "default-ulimits": {"nproc": {"Name": "nproc", "Hard": 1, "Soft": 1}}},
            "registry_mirrors": ["http://10.0.0.1:5000"],
            "insecure_registries": "10.0.0.1:5000",
            "metrics_addr": "127.0.0.1:9323",
        }));
        let cfg = daemon_config(&p).expect("cfg");
        assert_eq!(cfg["log-opts"], json!({"max-file": "5", "max-size": "50m"}));
        assert!(cfg.get("userland-proxy").is_none());
        assert_eq!(cfg["iptables"], json!(false));
        assert_eq!(cfg["default-ulimits"]["nofile"]["Hard"], json!(64000));
        assert_eq!(cfg["default-ulimits"]["nproc"]["Name"], json!("nproc"));
        assert_eq!(cfg["registry-mirrors"], json!(["http://10.0.0.1:5000"]));
        assert_eq!(cfg["insecure-registries"], json!(["10.0.0.1:5000"]));
        assert_eq!(cfg["metrics-addr"], json!("127.0.0.1:9323"));
        let keys: Vec<&String> = cfg.as_object().expect("map").keys().collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        assert_eq!(keys, sorted_keys);
        // The same map in another order is the same file.
        let q = params(
            json!({"daemon": {"iptables": false, "default-ulimits": {"nproc": {"Soft": 1, "Hard": 1, "Name": "nproc"}},
            "userland-proxy": null, "log-opts": {"max-file": "5", "max-size": "50m"}},
            "metrics_addr": "127.0.0.1:9323", "insecure_registries": ["10.0.0.1:5000"],
            "registry_mirrors": "http://10.0.0.1:5000"}),
        );
        assert_eq!(
            daemon_text(&daemon_config(&q).expect("cfg")),
            daemon_text(&cfg)
        );
        let empty = params(
            json!({"registry_mirrors": [], "insecure_registries": null, "metrics_addr": ""}),
        );
        assert_eq!(
            daemon_text(&daemon_config(&empty).expect("cfg")),
            DEFAULT_FILE
        );
        assert!(daemon_config(&params(json!({"daemon": ["x"]}))).is_err());
        let e = daemon_config(&params(json!({"daemon": {"pidfile": "/x"}}))).expect_err("pidfile");
        assert!(e.to_string().contains("daemon.pidfile"), "{e}");
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert_eq!(version_parts("20.10.24+dfsg1-1+deb12u1+b6"), [20, 10, 24]);
        assert_eq!(version_parts("5:24.0.7-1~debian.12~bookworm"), [24, 0, 7]);
        assert_eq!(version_parts("2.26.1-4"), [2, 26, 1]);
        assert!(older_than("19.03.15", "20.10"));
        assert!(older_than("20.9", "20.10"));
        assert!(!older_than("20.10.24+dfsg1", "20.10"));
        assert!(!older_than("24.0.7", "20.10"));
        assert!(!older_than("20.10", "20.10.0"));
        let e = parse_params::<DockerInstallParams>("t", &json!({"min_version": 20.10}))
            .expect_err("float");
        assert!(e.to_string().contains("quote the version"), "{e}");
        assert_eq!(
            params(json!({"min_version": 20})).min_version.as_deref(),
            Some("20")
        );
    }

    #[test]
    fn compose_v2_comes_from_docker_compose_2_or_a_plugin_package() {
        let c = |pairs: &[(&str, Option<&str>)]| -> HashMap<String, Option<String>> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect()
        };
        assert_eq!(
            choose_compose(&c(&[
                ("docker-compose", Some("2.26.1-4")),
                ("docker-compose-plugin", Some("2.20"))
            ]))
            .as_deref(),
            Some("docker-compose=2.26.1-4")
        );
        assert_eq!(
            choose_compose(&c(&[
                ("docker-compose", Some("1.29.2-3")),
                ("docker-compose-v2", Some("2.24.6"))
            ]))
            .as_deref(),
            Some("docker-compose-v2=2.24.6")
        );
        assert_eq!(
            choose_compose(&c(&[("docker-compose", Some("1.29.2-3"))])),
            None
        );
        assert_eq!(choose_compose(&c(&[("docker-compose-plugin", None)])), None);
    }

    #[test]
    fn reads_the_units_flags_and_dockerds_verdict() {
        let show = "{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS ; ignore_errors=no ; start_time=[n/a] }";
        assert_eq!(
            exec_argv(show),
            [
                "/usr/sbin/dockerd",
                "-H",
                "fd://",
                "--containerd=/run/containerd/containerd.sock"
            ]
        );
        assert!(exec_argv("").is_empty());
        let script = validate_script(&exec_argv(show));
        assert!(script.contains("/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock --config-file \"$t\" --pidfile \"$p\""), "{script}");
        let ok = parse_validation("MODE load\nVALID yes\nOUT time=\"x\" level=info msg=\"Starting up\"\nOUT failed to start daemon: pid file found, ensure docker is not running or delete /tmp/p\n");
        assert!(ok.ok && ok.error.is_empty(), "{ok:?}");
        let bad = parse_validation("MODE load\nTMP /tmp/t\nOUT unable to configure the Docker daemon with file /tmp/t: the following directives don't match any configuration option: bogus-key\n");
        assert!(!bad.ok);
        assert!(
            bad.error.starts_with(
                "unable to configure the Docker daemon with file the new daemon.json: "
            ),
            "{bad:?}"
        );
        assert!(bad.error.contains("bogus-key"), "{bad:?}");
        assert_eq!(
            parse_validation("MODE validate\nVALID yes\nOUT configuration OK\n").how,
            "dockerd --validate"
        );
        let why = parse_why("J level=error msg=\"Failed to GetDriver graph\"\nJ failed to start daemon: error initializing graphdriver: driver not supported\nJ failed to start daemon: error initializing graphdriver: driver not supported\nS Active: failed (Result: exit-code)\n");
        assert_eq!(why, "level=error msg=\"Failed to GetDriver graph\"; failed to start daemon: error initializing graphdriver: driver not supported; systemctl status: Active: failed (Result: exit-code)");
    }

    /// A Debian host in memory, kept as the fake host's state: packages,
    /// the docker service and group (the files are the fake host's). It
    /// answers the scripts this module and the apt module send (recognized
    /// by how they start) and changes its state as they would, so plan ->
    /// apply -> plan can run without touching this machine.
    struct Debian {
        installed: BTreeMap<String, String>,
        /// What `apt-get update` makes available.
        repo: BTreeMap<String, String>,
        lists: bool,
        active: bool,
        enabled: bool,
        members: Option<Vec<String>>,
        users: Vec<String>,
        has_validate: bool,
        /// daemon.json text dockerd refuses when it loads the file.
        reject_load: Option<&'static str>,
        /// ... and when the daemon starts.
        reject_start: Option<&'static str>,
        restarts: usize,
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    impl Debian {
        fn engine(&self) -> Option<&String> {
            self.installed
                .get("docker.io")
                .or_else(|| self.installed.get("docker-ce"))
        }

        fn dpkg_lines(&self) -> String {
            self.installed
                .iter()
                .map(|(n, v)| format!("PKG {n} install ok installed {v}\n"))
                .collect()
        }

        fn policy(&self, names: &[&str]) -> String {
            if !self.lists {
                return String::new();
            }
            names
                .iter()
                .filter_map(|n| {
                    self.repo
                        .get(*n)
                        .map(|v| format!("{n}:\n  Installed: (none)\n  Candidate: {v}\n"))
                })
                .collect()
        }

        fn server(&self) -> String {
            self.engine()
                .map(|v| {
                    let v = v.split_once(':').map_or(v.as_str(), |(_, r)| r);
                    v.split('-').next().unwrap_or(v).to_string()
                })
                .unwrap_or_default()
        }

        fn install(&mut self, script: &str) -> (i32, String) {
            let pkgs: Vec<String> = script
                .split(" -- ")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .map(|w| spec_name(w.trim_matches('\'')).to_string())
                .collect();
            for p in &pkgs {
                let Some(v) = self.repo.get(p).filter(|_| self.lists).cloned() else {
                    return (100, format!("E: Unable to locate package {p}"));
                };
                self.installed.insert(p.clone(), v);
                if p == "docker.io" || p == "docker-ce" {
                    self.active = true;
                    self.enabled = true;
                    self.members.get_or_insert_with(Vec::new);
                }
            }
            (0, String::new())
        }
    }

    fn file(h: &FakeHost<Debian>, tag: &str, path: &str) -> String {
        match h.files.get(path) {
            Some(c) => format!("{tag} {}\n", b64(c)),
            None => format!("{tag} -\n"),
        }
    }

    fn probe(h: &FakeHost<Debian>) -> String {
        let mut o = String::from("OS debian bookworm\nARCH amd64\n");
        if h.lists {
            o.push_str("LISTS yes\n");
        }
        o.push_str(&h.dpkg_lines());
        o.push_str("POLICY\n");
        o.push_str(&h.policy(&all_pkgs()));
        o.push_str("ENDPOLICY\n");
        o.push_str(&file(h, "DJ", DAEMON_JSON));
        o.push_str(&file(h, "KEY", KEYRING));
        o.push_str(&file(h, "SRC", "/etc/apt/sources.list.d/docker.sources"));
        o.push_str(&format!(
            "ACTIVE {}\n",
            if h.active { "active" } else { "inactive" }
        ));
        o.push_str(&format!(
            "ENABLED {}\n",
            if h.enabled { "enabled" } else { "disabled" }
        ));
        if h.active {
            o.push_str(&format!("SERVER {}\n", h.server()));
            o.push_str("COMPOSE 2.26.1-4\n");
        }
        if let Some(m) = &h.members {
            o.push_str(&format!("G docker:x:998:{}\n", m.join(",")));
        }
        for (i, u) in h.users.iter().enumerate() {
            o.push_str(&format!(
                "U {u}:x:{}:{}::/home/{u}:/bin/bash\n",
                1000 + i,
                1000 + i
            ));
        }
        o
    }

    fn validate(h: &mut FakeHost<Debian>, _: &str, stdin: Option<&[u8]>) -> Reply {
        let text = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
        let refused = h.reject_load.is_some_and(|r| text.contains(r));
        let mode = if h.has_validate { "validate" } else { "load" };
        ok(if refused {
            format!("MODE {mode}\nOUT unable to configure the Docker daemon with file /tmp/.herd-daemon-json.x: the following directives don't match any configuration option: {}\n",
                h.reject_load.unwrap_or_default())
        } else if h.has_validate {
            "MODE validate\nVALID yes\nOUT configuration OK\n".into()
        } else {
            "MODE load\nVALID yes\nOUT failed to start daemon: pid file found, ensure docker is not running or delete /tmp/p\n".into()
        })
    }

    fn restart(h: &mut FakeHost<Debian>, _: &str, _: Option<&[u8]>) -> Reply {
        h.restarts += 1;
        let text = h.files.get(DAEMON_JSON).cloned().unwrap_or_default();
        if h.reject_start.is_some_and(|r| text.contains(r)) {
            h.active = false;
            return Ok(exec(1, "SINCE 1700000000\nSTATE failed\n", ""));
        }
        h.active = true;
        ok(format!("SINCE 1700000000\nUP {}\n", h.server()))
    }

    fn bare() -> FakeHost<Debian> {
        let repo = [
            ("docker.io", "20.10.24+dfsg1-1+deb12u1+b6"),
            ("docker-compose", "2.26.1-4"),
            ("docker-ce", "5:24.0.7-1~debian.12~bookworm"),
            ("docker-ce-cli", "5:24.0.7-1~debian.12~bookworm"),
            ("containerd.io", "1.6.25-1"),
            ("docker-compose-plugin", "2.21.0-1~debian.12~bookworm"),
        ];
        FakeHost::with_state(Debian {
            installed: BTreeMap::new(),
            repo: repo
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            lists: false,
            active: false,
            enabled: false,
            members: None,
            users: vec!["deploy".into()],
            has_validate: false,
            reject_load: None,
            reject_start: None,
            restarts: 0,
        })
        .handle(Match::prefix("# docker_install probe"), |h, _, _| ok(probe(h)))
        .handle(Match::prefix("echo NOW"), |h, _, _| {
            let cache = if h.lists { "CACHE 1000\n" } else { "" };
            ok(format!("NOW 1000\n{cache}DPKG\n{}", h.dpkg_lines()))
        })
        .answer(Match::prefix("apt-get -s"), 0, "", "")
        .handle(Match::contains("apt-get update"), |h, _, _| {
            h.lists = true;
            ok("")
        })
        .handle(
            Match::when(|s| s.starts_with("DEBIAN_FRONTEND") && s.contains(" install ")),
            |h, script, _| {
                let (rc, err) = h.install(script);
                Ok(exec(rc, "", err))
            },
        )
        .handle(Match::prefix("# docker_install compose"), |h, _, _| {
            ok(h.policy(&COMPOSE_PKGS))
        })
        .answer(
            Match::prefix("systemctl show -p ExecStart"),
            0,
            "{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS ; ignore_errors=no }\n",
            "",
        )
        .handle(Match::prefix("# docker_install validate"), validate)
        .handle(Match::prefix("# docker_install restart"), restart)
        .answer(
            Match::prefix("# docker_install why"),
            0,
            "J failed to start daemon: error initializing graphdriver: driver not supported\nS Active: failed (Result: exit-code)\n",
            "",
        )
        .handle(Match::prefix("# docker_install version"), |h, _, _| {
            ok(if h.active {
                format!("SERVER {}\nCOMPOSE 2.26.1-4\n", h.server())
            } else {
                "SERVER \nCOMPOSE \n".into()
            })
        })
        .handle(Match::prefix("# docker_install key"), |h, _, _| {
            h.files.insert(
                KEYRING.into(),
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\nfetched\n".into(),
            );
            ok("")
        })
        .handle(Match::contains(format!("rm -f -- {DAEMON_JSON}")), |h, _, _| {
            h.files.remove(DAEMON_JSON);
            ok("")
        })
        .handle(Match::contains("groupadd --system docker"), |h, _, _| {
            h.members.get_or_insert_with(Vec::new);
            ok("")
        })
        .handle(Match::prefix("usermod -a -G docker -- "), |h, script, _| {
            let rest = script
                .strip_prefix("usermod -a -G docker -- ")
                .unwrap_or_default();
            if let Some(m) = h.members.as_mut() {
                m.push(rest.trim().to_string());
            }
            ok("")
        })
        .handle(Match::prefix("systemctl enable"), |h, _, _| {
            h.enabled = true;
            ok("")
        })
    }

    /// Plan, apply, plan again: the second plan must be empty.
    fn converge(h: &mut FakeHost<Debian>, p: &Value) -> (Plan, Outcome) {
        let first = DynModule::plan(&DockerInstall, p, h).expect("plan");
        assert!(!first.is_empty());
        let out = DynModule::apply(&DockerInstall, p, first.clone(), h).expect("apply");
        assert!(out.changed);
        let again = DynModule::plan(&DockerInstall, p, h).expect("plan again");
        assert!(again.is_empty(), "plan after apply: {:?}", again.changes);
        (first, out)
    }

    #[test]
    fn a_bare_host_converges_and_then_plans_nothing() {
        let mut h = bare();
        let p = json!({"users": ["deploy"], "min_version": "20.10"});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        assert_eq!(h.scripts.len(), 1, "the plan is one round trip");
        assert_eq!(
            pl.changes,
            [
                "install docker.io",
                "install compose v2 (docker-compose 2.x, docker-compose-plugin or docker-compose-v2, the first the refreshed package lists have)",
                "add deploy to group docker",
                "write /etc/docker/daemon.json",
                "restart docker",
            ]
        );
        assert_eq!(pl.diffs.len(), 1);
        assert_eq!(pl.diffs[0].after, DEFAULT_FILE);
        assert!(
            h.files.is_empty() && h.installed.is_empty(),
            "the plan changed nothing"
        );

        let (_, out) = converge(&mut h, &p);
        assert_eq!(
            h.installed.keys().collect::<Vec<_>>(),
            ["docker-compose", "docker.io"]
        );
        assert_eq!(h.files[DAEMON_JSON], DEFAULT_FILE);
        assert_eq!(h.members.as_deref(), Some(&["deploy".to_string()][..]));
        assert_eq!(h.restarts, 1);
        assert_eq!(out.result["version"], "20.10.24+dfsg1");
        assert_eq!(out.result["compose_version"], "2.26.1-4");
        assert_eq!(
            out.result["installed"],
            json!(["docker.io", "docker-compose"])
        );
        assert_eq!(out.result["restarted"], json!(true));
        assert_eq!(
            out.result["validation"],
            "dockerd's config load, stopped at its pid file check"
        );
        let validate = h
            .scripts
            .iter()
            .find(|s| s.starts_with("# docker_install validate"))
            .expect("validated");
        assert!(
            validate.contains("/usr/sbin/dockerd -H fd://"),
            "{validate}"
        );

        // A hand-reformatted file with the same settings is no change.
        h.files.insert(
            DAEMON_JSON.into(),
            serde_json::to_string(&daemon_config(&params(json!({}))).expect("cfg")).expect("json"),
        );
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        assert!(pl.is_empty(), "{:?}", pl.changes);

        // A changed setting rewrites the file and restarts, nothing else.
        let q = json!({"users": ["deploy"], "daemon": {"log-opts": {"max-size": "50m"}}});
        let (pl, _) = converge(&mut h, &q);
        assert_eq!(
            pl.changes,
            ["update /etc/docker/daemon.json", "restart docker"]
        );
        assert!(
            pl.diffs[0].unified().contains("+    \"max-size\": \"50m\""),
            "{}",
            pl.diffs[0].unified()
        );
        assert_eq!(h.restarts, 2);
    }

    #[test]
    fn a_config_dockerd_refuses_is_never_written() {
        let mut h = bare();
        converge(&mut h, &json!({}));
        let before = h.files[DAEMON_JSON].clone();
        h.reject_load = Some("bogus-key");
        let p = json!({"daemon": {"bogus-key": 1}});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        let e = DynModule::apply(&DockerInstall, &p, pl, &mut h).expect_err("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("dockerd refused the new /etc/docker/daemon.json"),
            "{msg}"
        );
        assert!(
            msg.contains("don't match any configuration option: bogus-key"),
            "{msg}"
        );
        assert!(msg.contains("left as they were"), "{msg}");
        assert_eq!(h.files[DAEMON_JSON], before);
        assert_eq!(h.restarts, 1, "only the first run restarted");
        assert!(h.active);
    }

    #[test]
    fn a_daemon_that_does_not_come_back_gets_the_old_file_back() {
        let mut h = bare();
        h.has_validate = true;
        converge(&mut h, &json!({}));
        let before = h.files[DAEMON_JSON].clone();
        h.reject_start = Some("bogus-driver");
        let p = json!({"daemon": {"storage-driver": "bogus-driver"}});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        let e = DynModule::apply(&DockerInstall, &p, pl, &mut h).expect_err("rolled back");
        let msg = e.to_string();
        assert!(
            msg.contains("dockerd did not come back after the restart"),
            "{msg}"
        );
        assert!(
            msg.contains("error initializing graphdriver: driver not supported"),
            "{msg}"
        );
        assert!(msg.contains("the previous daemon.json was restored and docker 20.10.24+dfsg1 is running on it again"), "{msg}");
        assert_eq!(h.files[DAEMON_JSON], before);
        assert!(h.active);
        assert_eq!(h.restarts, 3);

        // With no file before, the rollback removes the new one.
        let mut h = bare();
        h.lists = true;
        h.installed
            .insert("docker.io".into(), "20.10.24+dfsg1-1".into());
        h.installed
            .insert("docker-compose".into(), "2.26.1-4".into());
        h.active = true;
        h.enabled = true;
        h.reject_start = Some("bogus-driver");
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        let e = DynModule::apply(&DockerInstall, &p, pl, &mut h).expect_err("rolled back");
        assert!(e.to_string().contains("removed (there was none)"), "{e}");
        assert!(!h.files.contains_key(DAEMON_JSON));
    }

    #[test]
    fn docker_source_writes_the_key_and_a_deb822_source_then_installs_docker_ce() {
        let mut h = bare();
        let p = json!({"source": "docker"});
        let pl = DynModule::plan(&DockerInstall, &p, &mut h).expect("plan");
        assert_eq!(
            pl.changes[..3],
            [
                "fetch Docker's signing key from https://download.docker.com/linux/debian/gpg to /etc/apt/keyrings/docker.asc",
                "write /etc/apt/sources.list.d/docker.sources",
                "install docker-ce, docker-ce-cli, containerd.io, docker-compose-plugin",
            ]
        );
        let (_, out) = converge(&mut h, &p);
        assert_eq!(
            h.files["/etc/apt/sources.list.d/docker.sources"],
            "X-Repolib-Name: docker\nTypes: deb\nURIs: https://download.docker.com/linux/debian\n\
             Suites: bookworm\nComponents: stable\nArchitectures: amd64\n\
             Signed-By: /etc/apt/keyrings/docker.asc\n"
        );
        let key = h
            .scripts
            .iter()
            .find(|s| s.starts_with("# docker_install key"))
            .expect("key fetched");
        assert!(
            key.contains(
                "curl -fsSL --max-time 60 -o \"$t\" https://download.docker.com/linux/debian/gpg"
            ),
            "{key}"
        );
        assert!(h.files.contains_key(KEYRING));
        assert_eq!(
            h.installed.keys().collect::<Vec<_>>(),
            [
                "containerd.io",
                "docker-ce",
                "docker-ce-cli",
                "docker-compose-plugin"
            ]
        );
        assert_eq!(out.result["version"], "24.0.7");

        // A key given inline is written, not fetched; another repo_url
        // rewrites the source.
        let mut h = bare();
        let p = json!({"source": "docker", "compose": false, "repo_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nk\n-----END PGP PUBLIC KEY BLOCK-----",
            "repo_url": "http://mirror.example/docker/"});
        converge(&mut h, &p);
        assert!(!h
            .scripts
            .iter()
            .any(|s| s.starts_with("# docker_install key")));
        assert!(h.files[KEYRING].ends_with("-----END PGP PUBLIC KEY BLOCK-----\n"));
        assert!(h.files["/etc/apt/sources.list.d/docker.sources"]
            .contains("URIs: http://mirror.example/docker\n"));
        assert!(!h.installed.contains_key("docker-compose-plugin"));
    }

    #[test]
    fn refuses_mixing_sources_missing_users_and_old_engines() {
        let mut h = bare();
        h.installed.insert("docker-ce".into(), "5:24.0.7-1".into());
        let e = DynModule::plan(&DockerInstall, &json!({}), &mut h).expect_err("docker-ce");
        assert!(e.to_string().contains("use `source: docker`"), "{e}");

        let mut h = bare();
        let e = DynModule::plan(&DockerInstall, &json!({"users": ["nobody-here"]}), &mut h)
            .expect_err("user");
        assert!(
            e.to_string().contains("user `nobody-here` does not exist"),
            "{e}"
        );

        let mut h = bare();
        h.installed
            .insert("docker.io".into(), "19.03.15+dfsg1-1".into());
        h.active = true;
        let e = DynModule::plan(&DockerInstall, &json!({"min_version": "20.10"}), &mut h)
            .expect_err("old");
        assert_eq!(
            e.to_string(),
            "the Docker engine on this host is 19.03.15+dfsg1, older than min_version 20.10"
        );
    }

    #[test]
    fn an_old_python_docker_compose_is_upgraded_to_v2() {
        let mut h = bare();
        h.lists = true;
        h.installed
            .insert("docker-compose".into(), "1.29.2-3".into());
        let (pl, _) = converge(&mut h, &json!({}));
        assert_eq!(pl.changes[0], "install docker.io, docker-compose");
        assert_eq!(h.installed["docker-compose"], "2.26.1-4");
        assert!(h
            .scripts
            .iter()
            .any(|s| s.contains(" install -- docker.io docker-compose=2.26.1-4")));
    }

    #[test]
    fn a_stopped_engine_is_started_without_a_restart() {
        let mut h = bare();
        converge(&mut h, &json!({}));
        h.active = false;
        let (pl, out) = converge(&mut h, &json!({}));
        assert_eq!(pl.changes, ["start docker"]);
        assert_eq!(out.result["restarted"], json!(false));
        assert!(h
            .scripts
            .iter()
            .any(|s| s.contains("systemctl start docker.service")));
    }
}
