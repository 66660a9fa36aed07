//! The health gate: `${VAR}` substitution from the project's env, the
//! polling script (HTTP status and/or container health) and its verdict.

use std::collections::BTreeMap;

use crate::probe::tagged;
use crate::shell_quote::quote;
use crate::{Host, ModuleError};

use super::params::Health;
use super::run_ok;

/// `${VAR}` in `s` replaced from `env` (unknown names are left as they are).
pub(super) fn substitute(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if env.contains_key(&after[..j]) => {
                out.push_str(&env[&after[..j]]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A seconds value for `sleep` (which takes fractions on Debian's coreutils
/// and busybox).
pub(super) fn secs(x: f64) -> String {
    let s = format!("{:.3}", x.max(0.0));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One script that polls the gate until it passes or `retries` run out,
/// and prints `GATE ok N` or `GATE fail WHY`.
pub(super) fn gate_script(h: &Health, project: &str, env: &BTreeMap<String, String>) -> String {
    let retries = h.retries.unwrap_or(30).max(1);
    let delay = secs(h.delay.unwrap_or(1.0));
    let timeout = secs(h.timeout.unwrap_or(5.0).max(0.1));
    let mut s = format!("i=0; why=\nwhile [ $i -lt {retries} ]; do i=$((i+1)); ok=1\n");
    if let Some(url) = &h.url {
        let url = quote(&substitute(url, env));
        let want = h.status.unwrap_or(200);
        s.push_str(&format!(
            "  if command -v curl >/dev/null 2>&1; then code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time {timeout} -- {url} 2>/dev/null); \
             else code=$(wget -q -S -O /dev/null -T {timeout} -- {url} 2>&1 | awk '/HTTP\\//{{c=$2}} END{{print c}}'); fi\n\
             \x20 [ -n \"$code\" ] || code=000\n\
             \x20 if [ \"$code\" != {want} ]; then ok=0; why=\"{url_msg} answered $code, expected {want}\"; fi\n",
            url_msg = substitute(h.url.as_deref().unwrap_or(""), env).replace(['"', '$', '`', '\\'], "")
        ));
    }
    if h.containers {
        s.push_str(&format!(
            "  if [ $ok = 1 ]; then ids=$(docker ps -aq --filter label=com.docker.compose.project={p})\n\
             \x20   if [ -z \"$ids\" ]; then ok=0; why='no containers'; else\n\
             \x20   bad=$(docker inspect -f '{{{{.Name}}}} {{{{.State.Status}}}} {{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{else}}}}none{{{{end}}}}' $ids | awk '$2!=\"running\" || ($3!=\"healthy\" && $3!=\"none\") {{printf \"%s %s/%s; \", substr($1,2), $2, $3}}')\n\
             \x20   [ -z \"$bad\" ] || {{ ok=0; why=\"containers not healthy: $bad\"; }}; fi; fi\n",
            p = quote(project)
        ));
    }
    s.push_str(&format!(
        "  if [ $ok = 1 ]; then echo \"GATE ok $i\"; exit 0; fi\n\
         \x20 [ $i -lt {retries} ] && sleep {delay}\ndone\necho \"GATE fail $why\"\n"
    ));
    s
}

/// Run the gate: `Ok(None)` when it passed (or there is none), `Ok(Some(why))`
/// when it failed.
pub(super) fn gate(
    host: &mut dyn Host,
    h: Option<&Health>,
    project: &str,
    env: &BTreeMap<String, String>,
) -> Result<Option<String>, ModuleError> {
    let Some(h) = h else {
        return Ok(None);
    };
    let out = run_ok(host, "the health check", &gate_script(h, project, env))?;
    if tagged(&out, "GATE").is_some_and(|l| l.starts_with("ok")) {
        return Ok(None);
    }
    Ok(Some(
        tagged(&out, "GATE")
            .and_then(|l| l.strip_prefix("fail"))
            .map(|w| w.trim().trim_end_matches(';').to_string())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "the health check printed nothing".into()),
    ))
}
