//! The daemon: its unit's flags, dockerd's own check of a new daemon.json,
//! restarts that wait for it to answer, the journal's reason when it does
//! not, and the versions it reports.

use crate::account::tagged_all;
use crate::host::FileAttrs;
use crate::probe::tagged;
use crate::shell_quote::{join, quote};
use crate::textfile;
use crate::{Host, HostError, ModuleError};

use super::DAEMON_JSON;

/// The argv of a unit's `ExecStart` as `systemctl show -p ExecStart
/// --value` prints it (`{ path=... ; argv[]=/usr/sbin/dockerd -H fd://
/// $DOCKER_OPTS ; ... }`), without words that need the unit's environment.
pub fn exec_argv(show: &str) -> Vec<String> {
    let Some(rest) = show.split_once("argv[]=").map(|(_, r)| r) else {
        return Vec::new();
    };
    let argv = rest.split(" ;").next().unwrap_or("");
    argv.split_whitespace()
        .filter(|w| !w.contains('$'))
        .map(str::to_string)
        .collect()
}

/// What dockerd said about a candidate daemon.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validation {
    pub(super) ok: bool,
    /// `dockerd --validate` or the config load stopped at the pid file.
    pub(super) how: &'static str,
    /// dockerd's own words when it refused the file.
    pub(super) error: String,
}

pub(super) fn validate_script(argv: &[String]) -> String {
    let (bin, flags) = match argv.split_first() {
        Some((b, f)) if b.ends_with("dockerd") => (quote(b), join(f)),
        _ => ("dockerd".to_string(), String::new()),
    };
    format!(
        "# docker_install validate\n\
         command -v {bin} >/dev/null 2>&1 || {{ echo 'MODE none'; exit 0; }}\n\
         t=$(mktemp /tmp/.herd-daemon-json.XXXXXX) || exit 1\n\
         p=$(mktemp /tmp/.herd-dockerd-pid.XXXXXX) || {{ rm -f \"$t\"; exit 1; }}\n\
         trap 'rm -f \"$t\" \"$p\"' EXIT; trap 'exit 143' HUP INT TERM\n\
         cat > \"$t\"\n\
         echo $$ > \"$p\"\n\
         echo \"TMP $t\"\n\
         if {bin} --help 2>&1 | grep -q -e '--validate'; then\n\
         echo 'MODE validate'\n\
         out=$(timeout 60 {bin} {flags} --validate --config-file \"$t\" 2>&1) && echo 'VALID yes'\n\
         else\n\
         echo 'MODE load'\n\
         out=$(timeout 60 {bin} {flags} --config-file \"$t\" --pidfile \"$p\" 2>&1)\n\
         case \"$out\" in *'pid file found'*) echo 'VALID yes';; esac\n\
         fi\n\
         printf '%s\\n' \"$out\" | sed 's/^/OUT /'\n"
    )
}

pub(super) fn parse_validation(out: &str) -> Validation {
    let how = match tagged(out, "MODE").map(str::trim) {
        Some("validate") => "dockerd --validate",
        Some("load") => "dockerd's config load, stopped at its pid file check",
        _ => "none: dockerd is not installed",
    };
    let error: Vec<&str> = tagged_all(out, "OUT")
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("level=info") && !l.contains("pid file found"))
        .collect();
    // dockerd names the file it read: the temp copy, which is gone.
    let mut error = error.join("; ");
    if let Some(t) = tagged(out, "TMP").map(str::trim).filter(|t| !t.is_empty()) {
        error = error.replace(t, "the new daemon.json");
    }
    Validation {
        ok: tagged(out, "VALID").is_some(),
        how,
        error,
    }
}

/// Restart (or start) the daemon and wait until it answers; prints `SINCE`
/// (for the journal), `UP <version>` or the failure.
pub(super) fn restart_script(verb: &str, timeout: u64) -> String {
    format!(
        "# docker_install restart\n\
         echo \"SINCE $(date +%s)\"\n\
         systemctl reset-failed docker.service docker.socket >/dev/null 2>&1\n\
         r=$(timeout 120 systemctl {verb} docker.service 2>&1); rc=$?\n\
         [ -z \"$r\" ] || printf '%s\\n' \"$r\" | sed 's/^/ERR /'\n\
         if [ $rc -ne 0 ]; then echo \"STATE $(systemctl is-active docker.service 2>/dev/null)\"; exit 1; fi\n\
         i=0\n\
         while [ $i -lt {timeout} ]; do\n\
         if [ \"$(systemctl is-active docker.service 2>/dev/null)\" = failed ]; then break; fi\n\
         v=$(timeout 10 docker version --format '{{{{.Server.Version}}}}' 2>/dev/null) && {{ echo \"UP $v\"; exit 0; }}\n\
         i=$((i+1)); sleep 1\n\
         done\n\
         echo \"STATE $(systemctl is-active docker.service 2>/dev/null)\"\n\
         exit 1\n"
    )
}

/// The daemon's own reason, from the journal since `since` and the unit's status.
pub(super) fn why_script(since: &str) -> String {
    let since = if since.chars().all(|c| c.is_ascii_digit()) && !since.is_empty() {
        format!("--since @{since}")
    } else {
        "-n 50".into()
    };
    format!(
        "# docker_install why\n\
         journalctl -u docker.service {since} -o cat --no-pager 2>/dev/null | \
         grep -i -e 'failed to start daemon' -e 'unable to configure' -e 'level=fatal' -e 'level=error' | \
         tail -n 5 | sed 's/^/J /'\n\
         systemctl status docker.service --no-pager -n 0 2>/dev/null | grep 'Active:' | sed 's/^ */S /'\n\
         true\n"
    )
}

pub(super) fn parse_why(out: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for l in tagged_all(out, "J").map(str::trim) {
        if !l.is_empty() && !lines.contains(&l) {
            lines.push(l);
        }
    }
    // dockerd's final word is what users search for; keep at most three.
    let start = lines.len().saturating_sub(3);
    let mut why = lines[start..].join("; ");
    if let Some(s) = tagged(out, "S") {
        if !why.is_empty() {
            why.push_str("; ");
        }
        why.push_str(&format!("systemctl status: {}", s.trim()));
    }
    if why.is_empty() {
        why = "the journal has no error from dockerd".into();
    }
    why
}

/// Why the daemon is not answering after a restart or start.
#[derive(Debug, thiserror::Error)]
pub(super) enum BounceError {
    /// The host could not run the restart, or the look at the journal.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The daemon did not come back; the reason, from its journal.
    #[error("{reason}")]
    Down { reason: String },
}

/// Restart or start the daemon and wait for it to answer; its version.
pub(super) fn bounce(host: &mut dyn Host, verb: &str, timeout: u64) -> Result<String, BounceError> {
    let out = host.run(&restart_script(verb, timeout), None)?;
    let text = out.stdout_str();
    if out.success() {
        if let Some(v) = tagged(&text, "UP") {
            return Ok(v.trim().to_string());
        }
    }
    let since = tagged(&text, "SINCE").unwrap_or("").trim().to_string();
    let why = host.run(&why_script(&since), None)?;
    let mut reason = parse_why(&why.stdout_str());
    let errs: Vec<&str> = tagged_all(&text, "ERR").map(str::trim).collect();
    if !errs.is_empty() && reason.starts_with("the journal has no error") {
        reason = errs.join("; ");
    }
    Err(BounceError::Down { reason })
}

pub(super) fn write_daemon(host: &mut dyn Host, text: Option<&str>) -> Result<(), ModuleError> {
    match text {
        Some(t) => {
            textfile::run_checked(host, "create /etc/docker", "mkdir -p /etc/docker")?;
            let attrs = FileAttrs::with_mode("0644");
            host.write_file(DAEMON_JSON, t.as_bytes(), &attrs)?;
        }
        None => textfile::run_checked(
            host,
            "remove daemon.json",
            &format!("rm -f -- {DAEMON_JSON}"),
        )?,
    }
    Ok(())
}

pub(super) fn versions(
    host: &mut dyn Host,
) -> Result<(Option<String>, Option<String>), ModuleError> {
    let out = host.run(
        "# docker_install version\n\
         echo \"SERVER $(timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null)\"\n\
         echo \"COMPOSE $(timeout 15 docker compose version --short 2>/dev/null)\"\n",
        None,
    )?;
    let text = out.stdout_str();
    let get = |t: &str| {
        tagged(&text, t)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Ok((get("SERVER"), get("COMPOSE")))
}
