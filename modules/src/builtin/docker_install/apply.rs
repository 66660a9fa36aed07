//! Apply: Docker's repository, the packages, the group's members, then
//! daemon.json checked by dockerd, the restart and its rollback, and the
//! versions the daemon reports.

use serde_json::{json, Map, Value};

use crate::account::run_argv;
use crate::builtin::apt::{Apt, AptParams};
use crate::builtin::deb822_repository;
use crate::host::FileAttrs;
use crate::shell_quote::quote;
use crate::textfile;
use crate::{Host, Module, ModuleError, Outcome, Plan};

use super::packages::{apt_install, choose_compose, compose_candidates, older_than, spec_name};
use super::params::DockerInstallParams;
use super::plan::{Compose, KeyAction, Planned};
use super::service::{
    bounce, exec_argv, parse_validation, validate_script, versions, write_daemon, BounceError,
};
use super::{DAEMON_JSON, DEFAULT_RESTART_TIMEOUT, GROUP, KEYRING, SOURCE_NAME};

pub(super) fn apply(
    p: &DockerInstallParams,
    plan: Plan,
    host: &mut dyn Host,
) -> Result<Outcome, ModuleError> {
    let planned: Planned = plan.state_as()?;
    let mut result = plan.result.clone();
    let mut warnings: Vec<Value> = result
        .get("warnings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let timeout = p.restart_timeout.unwrap_or(DEFAULT_RESTART_TIMEOUT).max(1);

    add_repository(&planned, host)?;
    let installed = install_packages(&planned, host, &mut warnings)?;
    result.insert("installed".into(), json!(installed));
    add_members(&planned, host)?;
    let restarted = match &planned.daemon {
        Some(text) => {
            replace_daemon_json(&planned, text, host, timeout, &mut result)?;
            true
        }
        None => false,
    };
    if planned.enable {
        run_argv(host, &["systemctl", "enable", "docker.service"])?;
    }
    if planned.start && !restarted {
        match bounce(host, "start", timeout) {
            Ok(_) => {}
            Err(BounceError::Host(e)) => return Err(e.into()),
            Err(BounceError::Down { reason: why }) => {
                return Err(ModuleError::Failed {
                    msg: format!("docker did not start: {why}"),
                    result,
                })
            }
        }
    }
    result.insert("restarted".into(), json!(restarted));
    finish(p, host, result, warnings)
}

/// Docker's repository: the key, then the source that names it.
fn add_repository(planned: &Planned, host: &mut dyn Host) -> Result<(), ModuleError> {
    let readable = FileAttrs::with_mode("0644");
    match &planned.key {
        Some(KeyAction::Write(k)) => {
            textfile::run_checked(
                host,
                "create /etc/apt/keyrings",
                "install -d -m 0755 /etc/apt/keyrings",
            )?;
            host.write_file(KEYRING, k.as_bytes(), &readable)?;
        }
        Some(KeyAction::Fetch(url)) => fetch_key(url, host)?,
        None => {}
    }
    if let Some(src) = &planned.sources {
        host.write_file(
            &deb822_repository::file_name(SOURCE_NAME),
            src.as_bytes(),
            &readable,
        )?;
    }
    Ok(())
}

/// The signing key, fetched by the host (curl or wget) into place.
fn fetch_key(url: &str, host: &mut dyn Host) -> Result<(), ModuleError> {
    let u = quote(url);
    let script = format!(
        "# docker_install key\nset -e\ninstall -d -m 0755 /etc/apt/keyrings\n\
         t=$(mktemp /etc/apt/keyrings/.docker.XXXXXX); trap 'rm -f \"$t\"' EXIT; trap 'exit 143' HUP INT TERM\n\
         if command -v curl >/dev/null 2>&1; then curl -fsSL --max-time 60 -o \"$t\" {u}; \
         elif command -v wget >/dev/null 2>&1; then wget -q -T 60 -O \"$t\" {u}; \
         else echo 'neither curl nor wget is installed on the host' >&2; exit 69; fi\n\
         grep -q 'BEGIN PGP PUBLIC KEY BLOCK' \"$t\" || {{ echo 'not an ASCII-armored key' >&2; exit 70; }}\n\
         chmod 0644 \"$t\"; mv -f \"$t\" {KEYRING}; trap - EXIT\n"
    );
    let out = host.run(&script, None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "fetching Docker's signing key from {url} failed: {}",
            out.stderr_str().trim_end()
        )));
    }
    Ok(())
}

/// Packages: the apt module refreshes the lists and installs. Returns
/// the names installed.
fn install_packages(
    planned: &Planned,
    host: &mut dyn Host,
    warnings: &mut Vec<Value>,
) -> Result<Vec<String>, ModuleError> {
    let mut installed: Vec<String> = Vec::new();
    if !planned.install.is_empty() {
        apt_install(host, &planned.install)?;
        installed.extend(planned.install.iter().map(|s| spec_name(s).to_string()));
    }
    if planned.compose == Compose::ChooseAfterUpdate {
        if planned.install.is_empty() {
            // No engine install refreshed the lists; the apt module
            // does, for the compose package alone.
            let p = AptParams {
                update_cache: true,
                ..AptParams::default()
            };
            let pl = Module::plan(&Apt, &p, host)?;
            Module::apply(&Apt, &p, pl, host)?;
        }
        match choose_compose(&compose_candidates(host)?) {
            Some(c) => {
                apt_install(host, std::slice::from_ref(&c))?;
                installed.push(spec_name(&c).to_string());
            }
            None => warnings.push(json!(
                "no compose v2 package (docker-compose 2.x, docker-compose-plugin, \
                 docker-compose-v2) in the package lists: compose is not installed"
            )),
        }
    }
    Ok(installed)
}

/// Group members; the package made the group, unless it was a package
/// without one.
fn add_members(planned: &Planned, host: &mut dyn Host) -> Result<(), ModuleError> {
    if planned.users.is_empty() {
        return Ok(());
    }
    textfile::run_checked(
        host,
        "create the docker group",
        &format!("getent group {GROUP} >/dev/null || groupadd --system {GROUP}"),
    )?;
    for u in &planned.users {
        run_argv(host, &["usermod", "-a", "-G", GROUP, "--", u])?;
    }
    Ok(())
}

/// daemon.json: dockerd checks it first, and the running daemon is only
/// touched once it said yes; a daemon that does not come back on the new
/// file gets the previous one back.
fn replace_daemon_json(
    planned: &Planned,
    text: &str,
    host: &mut dyn Host,
    timeout: u64,
    result: &mut Map<String, Value>,
) -> Result<(), ModuleError> {
    let show = host.run(
        "systemctl show -p ExecStart --value docker.service 2>/dev/null; true",
        None,
    )?;
    let argv = exec_argv(&show.stdout_str());
    let out = host.run(&validate_script(&argv), Some(text.as_bytes()))?;
    let v = parse_validation(&out.stdout_str());
    result.insert("validation".into(), json!(v.how));
    if !v.ok && v.how.starts_with("none") {
        return Err(ModuleError::Failed {
            msg: "dockerd is not installed on this host, so the new daemon.json cannot be checked"
                .into(),
            result: result.clone(),
        });
    }
    if !v.ok {
        return Err(ModuleError::Failed {
            msg: format!(
                "dockerd refused the new {DAEMON_JSON} ({}): {}; the file and the running daemon were left as they were",
                v.how,
                if v.error.is_empty() { "no output" } else { &v.error }
            ),
            result: result.clone(),
        });
    }
    write_daemon(host, Some(text))?;
    let why = match bounce(host, "restart", timeout) {
        Ok(_) => return Ok(()),
        Err(BounceError::Host(e)) => return Err(e.into()),
        Err(BounceError::Down { reason }) => reason,
    };
    write_daemon(host, planned.daemon_before.as_deref())?;
    let back = match bounce(host, "restart", timeout) {
        Ok(v) => format!(
            "the previous daemon.json was {} and docker {v} is running on it again",
            if planned.daemon_before.is_some() {
                "restored"
            } else {
                "removed (there was none)"
            }
        ),
        Err(BounceError::Host(e)) => return Err(e.into()),
        Err(BounceError::Down { reason: again }) => format!(
            "the previous daemon.json was put back, but docker did not come back on it either: {again}"
        ),
    };
    result.insert("restarted".into(), json!(true));
    Err(ModuleError::Failed {
        msg: format!(
            "dockerd did not come back after the restart with the new {DAEMON_JSON}: {why}; {back}"
        ),
        result: result.clone(),
    })
}

/// The versions the daemon reports now; a daemon that does not answer, or
/// one older than `min_version`, fails the task.
fn finish(
    p: &DockerInstallParams,
    host: &mut dyn Host,
    mut result: Map<String, Value>,
    warnings: Vec<Value>,
) -> Result<Outcome, ModuleError> {
    let (server, compose) = versions(host)?;
    if let Some(c) = &compose {
        result.insert("compose_version".into(), json!(c));
    }
    if !warnings.is_empty() {
        result.insert("warnings".into(), json!(warnings));
    }
    match &server {
        Some(v) => {
            result.insert("version".into(), json!(v));
        }
        None => {
            return Err(ModuleError::Failed {
                msg: "the Docker daemon does not answer (`docker version` has no server)".into(),
                result,
            })
        }
    }
    if let (Some(min), Some(have)) = (&p.min_version, &server) {
        if older_than(have, min) {
            return Err(ModuleError::Failed {
                msg: format!(
                    "the Docker engine on this host is {have}, older than min_version {min}"
                ),
                result,
            });
        }
    }
    result.insert("changed".into(), json!(true));
    Ok(Outcome::changed(result))
}
