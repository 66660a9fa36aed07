//! `wait_for`: wait for a path or a TCP port to reach a state, or just wait.
//!
//! The whole wait is one shell script on the host: a loop bounded by
//! `timeout` (counted from the start, `delay` included) that checks, sleeps
//! `sleep` seconds and checks again. One round trip however long it waits.
//!
//! Waiting only reads, so it happens in `plan`: the plan is always empty
//! (Ansible reports wait_for as ok, never changed), its result carries
//! `elapsed`, and a timeout is `ModuleError::Failed` naming what was awaited.
//! Check mode therefore waits too (Ansible skips wait_for in check mode).
//!
//! Port checks use bash's `/dev/tcp` under `timeout` when bash is there,
//! else `nc -z`, else (for a local host only) a listening socket in
//! `/proc/net/tcp*`; `drained` reads `/proc/net/tcp*` for connections to the
//! local port. `search_regex` uses `grep -P` when grep has it, else `grep -E`,
//! and is matched line by line. Differences from Ansible: `exclude_hosts` is
//! accepted and ignored; `match_groups` and `match_groupdict` are filled
//! from the first matching line of a file (Rust regex syntax), and are empty
//! for a port.

use serde::Deserialize;
use serde_json::{json, Map};

use crate::params::{de_opt_f64, de_opt_u64};
use crate::shell_quote::{quote, quote_path};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// What `wait_for` waits for.
pub enum WaitState {
    #[default]
    /// The port answers or the file exists.
    Started,
    /// The same as `started`.
    Present,
    /// The port no longer answers.
    Stopped,
    /// The file no longer exists.
    Absent,
    /// No active connections on the port.
    Drained,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `wait_for`: what `herd doc` shows, and what the parser takes.
pub struct WaitForParams {
    /// The address to check a `port` on, from the host (default `127.0.0.1`).
    pub host: Option<String>,
    /// A TCP port to wait for.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub port: Option<u64>,
    /// A file to wait for (or for `search_regex` in it).
    pub path: Option<String>,
    /// `started`/`present`: the port answers or the file exists; `stopped`/`absent`: it no
    /// longer does; `drained`: no active connections on the port.
    #[serde(default)]
    pub state: WaitState,
    /// Seconds to wait before the task fails (default 300).
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub timeout: Option<f64>,
    /// Seconds to wait before the first check.
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub delay: Option<f64>,
    /// Seconds between checks (default 1).
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub sleep: Option<f64>,
    /// Seconds one connection attempt may take (default 5).
    #[serde(default, deserialize_with = "de_opt_f64")]
    pub connect_timeout: Option<f64>,
    /// With `path`: wait until a line matches this regular expression.
    pub search_regex: Option<String>,
    /// The failure message instead of the default one.
    pub msg: Option<String>,
    /// Accepted and ignored (for `drained`).
    pub exclude_hosts: Option<Vec<String>>,
    /// The TCP states that count as active for `drained`.
    pub active_connection_states: Option<Vec<String>>,
}

/// The `wait_for` module.
pub struct WaitFor;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: WaitFor::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// `/proc/net/tcp`'s hex code for a TCP state name.
fn tcp_state_code(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_uppercase().as_str() {
        "ESTABLISHED" => "01",
        "SYN_SENT" => "02",
        "SYN_RECV" => "03",
        "FIN_WAIT1" => "04",
        "FIN_WAIT2" => "05",
        "TIME_WAIT" => "06",
        "CLOSE" => "07",
        "CLOSE_WAIT" => "08",
        "LAST_ACK" => "09",
        "LISTEN" => "0A",
        "CLOSING" => "0B",
        _ => return None,
    })
}

/// A number of seconds as `sleep` and `timeout` take it.
fn secs(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// An awk program over `/proc/net/tcp*` that exits 0 when some socket on
/// local port `hex` is in one of `states`, 1 otherwise.
fn proc_tcp(hex: &str, states: &[&str]) -> String {
    let cond = states
        .iter()
        .map(|s| format!("$4==\"{s}\""))
        .collect::<Vec<_>>()
        .join("||");
    let prog = format!(
        "FNR>1 {{ n=split($2,a,\":\"); if (a[n]==\"{hex}\" && ({cond})) f=1 }} END {{ exit !f }}"
    );
    format!(
        "awk {} /proc/net/tcp /proc/net/tcp6 2>/dev/null",
        quote(&prog)
    )
}

/// Python's `match.groups()` and `match.groupdict()` for `line`; empty when
/// the pattern is not valid Rust regex syntax or does not match.
fn match_groups(re: &str, line: &str) -> (serde_json::Value, serde_json::Value) {
    let Some(caps) = regex::Regex::new(re).ok().and_then(|r| {
        let caps = r.captures(line)?;
        let names: Vec<Option<String>> = r.capture_names().map(|n| n.map(str::to_string)).collect();
        Some((
            caps.iter()
                .skip(1)
                .map(|m| m.map(|m| m.as_str().to_string()))
                .collect::<Vec<_>>(),
            names,
        ))
    }) else {
        return (json!([]), json!({}));
    };
    let (groups, names) = caps;
    let mut dict = Map::new();
    for (i, name) in names.iter().enumerate().skip(1) {
        if let Some(n) = name {
            dict.insert(n.clone(), json!(groups.get(i - 1).cloned().flatten()));
        }
    }
    (json!(groups), serde_json::Value::Object(dict))
}

impl WaitFor {
    /// The shell test for the awaited condition and the timeout message.
    fn condition(&self, p: &WaitForParams, host: &str) -> Result<(String, String), ModuleError> {
        let grep = "$G -q -- ";
        let absent = matches!(p.state, WaitState::Stopped | WaitState::Absent);
        let ct = secs(p.connect_timeout.unwrap_or(5.0));
        if let Some(path) = &p.path {
            if p.port.is_some() {
                return Err(invalid("port", "give either `port` or `path`, not both"));
            }
            let pw = quote_path(path);
            return Ok(match (p.state, &p.search_regex) {
                (WaitState::Drained, _) => {
                    return Err(invalid("state", "drained applies to a port, not a path"))
                }
                _ if absent => (
                    format!("[ ! -e {pw} ] && [ ! -L {pw} ]"),
                    format!("Timeout when waiting for {path} to be absent."),
                ),
                (_, Some(re)) => (
                    format!("[ -r {pw} ] && {grep}{} {pw} 2>/dev/null", quote(re)),
                    format!("Timeout when waiting for search string {re} in {path}"),
                ),
                (_, None) => (
                    format!("[ -e {pw} ]"),
                    format!("Timeout when waiting for file {path}"),
                ),
            });
        }
        let Some(port) = p.port else {
            return Ok((String::new(), String::new()));
        };
        if port == 0 || port > 65_535 {
            return Err(invalid("port", format!("{port} is not a TCP port")));
        }
        let hex = format!("{port:04X}");
        let target = format!("{host}:{port}");
        if p.state == WaitState::Drained {
            let states: Vec<&str> = match &p.active_connection_states {
                Some(names) => names
                    .iter()
                    .map(|n| {
                        tcp_state_code(n).ok_or_else(|| {
                            invalid(
                                "active_connection_states",
                                format!("unknown TCP state {n:?}"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                None => vec!["01", "02", "03", "04", "05", "06"],
            };
            return Ok((
                format!("! {}", proc_tcp(&hex, &states)),
                format!("Timeout when waiting for {target} to drain"),
            ));
        }
        let (hw, pw) = (quote(host), quote(&port.to_string()));
        let local = matches!(host, "127.0.0.1" | "localhost" | "::1" | "0.0.0.0" | "::");
        let fallback = if local {
            proc_tcp(&hex, &["0A"])
        } else {
            "{ echo NOTOOL; exit 0; }".to_string()
        };
        // Reading a banner for search_regex needs the socket's data, which
        // only the bash path can give; nc -z only says "open".
        let open = match (&p.search_regex, absent) {
            (Some(re), false) => format!(
                "if [ -n \"$B\" ]; then timeout {ct} bash -c 'exec 3<>\"/dev/tcp/$0/$1\"; cat <&3' {hw} {pw} 2>/dev/null | {grep}{}; else {{ echo NOTOOL; exit 0; }}; fi",
                quote(re)
            ),
            _ => format!(
                "if [ -n \"$B\" ]; then timeout {ct} bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {hw} {pw} >/dev/null 2>&1; \
                 elif command -v nc >/dev/null 2>&1; then nc -z -w {ct} {hw} {pw} >/dev/null 2>&1; \
                 else {fallback}; fi"
            ),
        };
        let msg = match (&p.search_regex, absent) {
            (_, true) => format!("Timeout when waiting for {target} to stop."),
            (Some(re), false) => {
                format!("Timeout when waiting for search string {re} in {target}")
            }
            (None, false) => format!("Timeout when waiting for {target}"),
        };
        let check = if absent {
            format!("! {{ {open}; }}")
        } else {
            open
        };
        Ok((check, msg))
    }
}

impl Module for WaitFor {
    const NAME: &'static str = "wait_for";
    const DOC_SHORT: &'static str = "Wait for a port, a file or a line in a file.";
    const DOC_LONG: &'static str = r##"Checks run on the host in one script, so a wait costs one round trip however long it takes."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Wait for the app
  wait_for:
    port: 8080
    timeout: 60

- name: Wait for the ready line
  wait_for:
    path: /var/log/app.log
    search_regex: "ready in \\d+ ms"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("elapsed", "Seconds waited."),
        ("match_groups", "The groups of `search_regex`'s match."),
        ("match_groupdict", "Its named groups."),
    ];
    type Params = WaitForParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let target_host = p.host.as_deref().unwrap_or("127.0.0.1");
        let timeout = p.timeout.unwrap_or(300.0);
        let delay = p.delay.unwrap_or(0.0);
        let sleep = p.sleep.unwrap_or(1.0).max(0.01);
        let (check, timeout_msg) = self.condition(p, target_host)?;

        let mut script = String::from(
            "ms() { t=$(date +%s%N 2>/dev/null); case \"$t\" in ''|*N*) echo $(( $(date +%s) * 1000 ));; *) echo $(( t / 1000000 ));; esac; }\n\
             start=$(ms)\n\
             B=; command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1 && B=1\n\
             if echo x | grep -qP x 2>/dev/null; then G='grep -P'; else G='grep -E'; fi\n",
        );
        script.push_str(&format!(
            "deadline=$(( start + {} ))\n",
            (timeout * 1000.0).round() as u64
        ));
        if delay > 0.0 {
            script.push_str(&format!("sleep {}\n", secs(delay)));
        }
        // The matching line, for match_groups.
        let on_ok = match (&p.path, &p.search_regex) {
            (Some(path), Some(re))
                if p.state != WaitState::Absent && p.state != WaitState::Stopped =>
            {
                format!(
                    "printf 'M %s\\n' \"$($G -m1 -- {} {} 2>/dev/null)\"; ",
                    quote(re),
                    quote_path(path)
                )
            }
            _ => String::new(),
        };
        if check.is_empty() {
            // Neither port nor path: Ansible just sleeps for `timeout`.
            script.push_str(&format!(
                "sleep {}\necho OK $(( $(ms) - start ))\n",
                secs(timeout)
            ));
        } else {
            script.push_str(&format!(
                "while :; do\n\
                 if {check}; then {on_ok}echo OK $(( $(ms) - start )); exit 0; fi\n\
                 now=$(ms); if [ \"$now\" -ge \"$deadline\" ]; then echo TIMEOUT $(( now - start )); exit 0; fi\n\
                 left=$(( deadline - now )); s={}; [ \"$left\" -lt {} ] && s=$(( left / 1000 )).$(( left % 1000 / 100 ))$(( left % 100 / 10 ))$(( left % 10 ))\n\
                 sleep \"$s\"\n\
                 done\n",
                secs(sleep),
                (sleep * 1000.0).round() as u64,
                on_ok = on_ok,
            ));
        }
        let out = host.run(&script, None)?;
        let text = out.stdout_str();
        let mut result = Map::new();
        if let Some(path) = &p.path {
            result.insert("path".into(), json!(path));
        }
        if let Some(port) = p.port {
            result.insert("port".into(), json!(port));
        }
        let state = match p.state {
            WaitState::Started => "started",
            WaitState::Present => "present",
            WaitState::Stopped => "stopped",
            WaitState::Absent => "absent",
            WaitState::Drained => "drained",
        };
        result.insert("state".into(), json!(state));
        if let Some(re) = &p.search_regex {
            result.insert("search_regex".into(), json!(re));
            result.insert("match_groups".into(), json!([]));
            result.insert("match_groupdict".into(), json!({}));
        }
        let elapsed = |v: &str| v.trim().parse::<u64>().map(|ms| ms / 1000).unwrap_or(0);
        for line in text.lines() {
            if line == "NOTOOL" {
                return Err(ModuleError::failed(format!(
                    "cannot check {target_host}:{}: the host has neither bash with timeout nor nc{}",
                    p.port.unwrap_or(0),
                    if p.search_regex.is_some() { " (search_regex needs bash)" } else { "" }
                )));
            }
            if let (Some(m), Some(re)) = (line.strip_prefix("M "), &p.search_regex) {
                let (groups, dict) = match_groups(re, m);
                result.insert("match_groups".into(), groups);
                result.insert("match_groupdict".into(), dict);
            }
            if let Some(ms) = line.strip_prefix("OK ") {
                result.insert("elapsed".into(), json!(elapsed(ms)));
                return Ok(Plan {
                    result,
                    ..Plan::default()
                });
            }
            if let Some(ms) = line.strip_prefix("TIMEOUT ") {
                result.insert("elapsed".into(), json!(elapsed(ms)));
                return Err(ModuleError::Failed {
                    msg: p.msg.clone().unwrap_or(timeout_msg),
                    result,
                });
            }
        }
        Err(ModuleError::failed(format!(
            "wait_for script ended without a verdict (rc={}): {}",
            out.rc,
            out.stderr_str().trim_end()
        )))
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        // Never reached through the engine (the plan is always empty).
        let plan = Module::plan(self, p, host)?;
        Ok(Outcome::read_in_plan(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, host, path_in, plan};
    use crate::DynModule;
    use std::time::{Duration, Instant};

    #[test]
    fn path_appears_while_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "ready");
        let f2 = f.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(f2, "service started\n").expect("write");
        });
        let t = Instant::now();
        let pl = plan(&WaitFor, &json!({"path": f, "timeout": 5, "sleep": "0.1"}));
        let _ = writer.join();
        assert!(pl.is_empty());
        assert!(t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(3));
        assert_eq!(get(&pl.result, "elapsed"), 0);
        assert_eq!(get(&pl.result, "path"), &json!(f));
        let pl = plan(
            &WaitFor,
            &json!({"path": f, "search_regex": "(?P<what>\\w+) (started)$", "timeout": 1}),
        );
        assert_eq!(
            get(&pl.result, "match_groups"),
            &json!(["service", "started"])
        );
        assert_eq!(
            get(&pl.result, "match_groupdict"),
            &json!({"what": "service"})
        );
    }

    #[test]
    fn timeout_fails_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "never");
        let t = Instant::now();
        let err = DynModule::plan(
            &WaitFor,
            &json!({"path": f, "timeout": 1, "sleep": 0.2}),
            &mut host(),
        )
        .expect_err("timeout");
        assert!(
            t.elapsed() < Duration::from_millis(1900),
            "{:?}",
            t.elapsed()
        );
        match err {
            ModuleError::Failed { msg, result } => {
                assert_eq!(msg, format!("Timeout when waiting for file {f}"));
                assert_eq!(result.get("elapsed"), Some(&json!(1)));
            }
            other => panic!("{other:?}"),
        }
        let err = DynModule::plan(
            &WaitFor,
            &json!({"path": f, "search_regex": "x", "timeout": "0.3", "msg": "custom"}),
            &mut host(),
        )
        .expect_err("timeout");
        assert_eq!(err.to_string(), "custom");
    }

    #[test]
    fn path_absent_and_plain_sleep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = path_in(&dir, "gone");
        assert!(plan(
            &WaitFor,
            &json!({"path": gone, "state": "absent", "timeout": 1})
        )
        .is_empty());
        let t = Instant::now();
        plan(&WaitFor, &json!({"timeout": 0.3}));
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn ports_started_stopped_drained() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let pl = plan(&WaitFor, &json!({"port": port, "timeout": 2}));
        assert_eq!(get(&pl.result, "port"), port);
        plan(
            &WaitFor,
            &json!({"port": port.to_string(), "state": "drained", "timeout": 2, "sleep": 0.1}),
        );
        let err = DynModule::plan(
            &WaitFor,
            &json!({"port": port, "state": "stopped", "timeout": "0.5", "sleep": 0.1}),
            &mut host(),
        )
        .expect_err("still open");
        assert_eq!(
            err.to_string(),
            format!("Timeout when waiting for 127.0.0.1:{port} to stop.")
        );
        drop(listener);
        plan(
            &WaitFor,
            &json!({"port": port, "state": "stopped", "timeout": 2}),
        );
        assert!(DynModule::plan(&WaitFor, &json!({"port": 70000}), &mut host()).is_err());
    }
}
