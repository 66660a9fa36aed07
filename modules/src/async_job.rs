//! Background jobs for a task's `async:` and for `async_status`, without
//! Python on the host.
//!
//! A job is the one command of a [`AsyncSupport::Detached`] module, started
//! under `setsid` by a small `/bin/sh` runner that records its output and
//! exit status beside Ansible's results file, `~/.ansible_async/<jid>`:
//!
//! ```text
//! ~/.ansible_async/<jid>          Ansible's JSON status ({"started": 1, "finished": 0, ...})
//! ~/.ansible_async/<jid>.herd/    script, stdin, stdout, stderr, rc, start, end, pid,
//!                                 task.json (the module and its parameters)
//! ```
//!
//! The runner's watcher kills the job's process group when the `async`
//! limit passes (as Ansible's wrapper does) and leaves Ansible's
//! "Timeout exceeded" status. A finished job's result is made on the
//! controller by handing the recorded output to the module's `apply` again
//! ([`ReplayHost`]), so the registered fields are the module's own; only
//! `start`/`end`/`delta` come from the host's clock. Every read of a job is
//! one round trip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::capability::AsyncSupport;
use crate::shell_quote::quote;
use crate::{clock, ExecOutput, Host, HostError, ModuleError, Plan};

/// Where jobs live, under the (become) user's home, as in Ansible.
pub const ASYNC_DIR: &str = ".ansible_async";

/// A job id in Ansible's shape (`j<12 digits>.<pid>`), unique per run.
pub fn new_jid() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    // Mix the clock and a counter so two jobs of one run never collide.
    let n = nanos
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(seq.wrapping_mul(1_442_695_040_888_963_407))
        % 1_000_000_000_000;
    format!("j{n}.{}", std::process::id())
}

/// Whether `jid` is safe to paste into a path (it comes from the user for
/// `async_status`).
pub fn valid_jid(jid: &str) -> bool {
    !jid.is_empty()
        && jid != "."
        && jid != ".."
        && jid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The runner: records the start, runs the script in the background, has
/// a watcher kill the process group when the limit passes, then records
/// the end, the exit status and Ansible's finished status.
const RUNNER: &str = r#"w=$1; j=$2; limit=$3; jid=$4
date +%s.%N > "$w/start"
/bin/sh "$w/script" < "$w/stdin" > "$w/stdout" 2> "$w/stderr" &
c=$!
echo "$c" > "$w/pid"
(
  n=$limit
  while [ "$n" -gt 0 ] && kill -0 "$c" 2>/dev/null; do sleep 1; n=$((n - 1)); done
  if kill -0 "$c" 2>/dev/null; then
    : > "$w/timedout"
    printf '{"msg": "Timeout exceeded", "failed": true, "child_pid": %s}' "$c" > "$j"
    kill -KILL 0
  fi
) &
wait "$c"; rc=$?
date +%s.%N > "$w/end"
echo "$rc" > "$w/rc.tmp" && mv "$w/rc.tmp" "$w/rc"
printf '{"started": 1, "finished": 1, "ansible_job_id": "%s", "rc": %s}' "$jid" "$rc" > "$j"
"#;

/// The script that starts a job and prints the user's home (for
/// `results_file`). One round trip; `stdin` (when given) is fed to it and
/// kept for the job.
fn launch_script(jid: &str, limit: u64, script: &str, record: &str, has_stdin: bool) -> String {
    let status = format!(r#"{{"started": 1, "finished": 0, "ansible_job_id": "{jid}"}}"#);
    format!(
        "set -e\numask 077\nd=\"$HOME\"/{ASYNC_DIR}; j=\"$d\"/{jid}; w=\"$j\".herd\n\
         mkdir -p \"$w\"\n\
         printf '%s' {status} > \"$j\"\n\
         printf '%s' {record} > \"$w/task.json\"\n\
         printf '%s' {script} > \"$w/script\"\n\
         printf '%s' {runner} > \"$w/runner\"\n\
         {stdin}\n\
         command -v setsid >/dev/null || {{ echo 'setsid is not installed on the host' >&2; exit 1; }}\n\
         setsid /bin/sh \"$w/runner\" \"$w\" \"$j\" {limit} {jid} </dev/null >/dev/null 2>&1 &\n\
         printf '%s\\n' \"$HOME\"\n",
        status = quote(&status),
        record = quote(record),
        script = quote(script),
        runner = quote(RUNNER),
        stdin = if has_stdin {
            "cat > \"$w/stdin\""
        } else {
            ": > \"$w/stdin\""
        },
    )
}

/// A host that starts the first command a module runs as a background job
/// instead of waiting for it (and refuses a second one: a
/// [`AsyncSupport::Detached`] module runs exactly one).
pub struct LaunchHost<'a> {
    inner: &'a mut dyn Host,
    jid: &'a str,
    limit: u64,
    record: String,
    home: Option<String>,
}

impl<'a> LaunchHost<'a> {
    /// Launch `module`'s command with `params` as job `jid`, killed after
    /// `limit` seconds.
    pub fn new(
        inner: &'a mut dyn Host,
        jid: &'a str,
        limit: u64,
        module: &str,
        params: &Value,
    ) -> Self {
        let record = json!({"module": module, "params": params}).to_string();
        LaunchHost {
            inner,
            jid,
            limit,
            record,
            home: None,
        }
    }

    /// The results file, once the job started.
    pub fn results_file(&self) -> Option<String> {
        self.home
            .as_ref()
            .map(|h| results_file(h.trim_end_matches('/'), self.jid))
    }
}

fn results_file(home: &str, jid: &str) -> String {
    format!("{home}/{ASYNC_DIR}/{jid}")
}

impl Host for LaunchHost<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        if self.home.is_some() {
            return Err(HostError::Command {
                action: "starting a background job",
                rc: -1,
                stderr: "the module ran a second command; only one runs in the background".into(),
            });
        }
        let launch = launch_script(self.jid, self.limit, script, &self.record, stdin.is_some());
        let out = self.inner.run(&launch, stdin)?;
        if !out.success() {
            return Err(HostError::Command {
                action: "starting a background job",
                rc: out.rc,
                stderr: out.stderr_str().trim().to_string(),
            });
        }
        self.home = Some(out.stdout_str().trim().to_string());
        Ok(ExecOutput::default())
    }
}

/// A host that answers the one command a module runs with what a finished
/// job recorded, so `apply` builds the job's result without running it.
struct ReplayHost {
    name: String,
    output: Option<ExecOutput>,
}

impl Host for ReplayHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, _script: &str, _stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        self.output.take().ok_or(HostError::Command {
            action: "reading a background job",
            rc: -1,
            stderr: "the module ran a second command".into(),
        })
    }
}

/// What `async_status` found, shaped as Ansible reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    /// The registered result (`ansible_job_id`, `started`, `finished`,
    /// `results_file`, and the module's own fields once finished).
    pub result: Map<String, Value>,
    /// The job is done (`finished: 1`).
    pub finished: bool,
    /// The finished job changed something.
    pub changed: bool,
    /// The job failed, ran out of time, or cannot be found: the message.
    pub failed: Option<String>,
}

/// Files of one job, as the status script prints them.
#[derive(Default)]
struct JobFiles {
    home: String,
    state: String,
    files: Vec<(String, Vec<u8>)>,
}

impl JobFiles {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }
    fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|b| String::from_utf8_lossy(b).trim().to_string())
    }
}

fn status_script(jid: &str) -> String {
    format!(
        "j=\"$HOME\"/{ASYNC_DIR}/{jid}; w=\"$j\".herd\n\
         printf 'home %s\\n' \"$HOME\"\n\
         show() {{ printf 'file %s %s\\n' \"$1\" \"$(wc -c < \"$2\" | tr -d ' ')\"; cat \"$2\"; echo; }}\n\
         if [ ! -e \"$j\" ]; then echo 'state missing'; exit 0; fi\n\
         if [ ! -d \"$w\" ]; then echo 'state foreign'; show results \"$j\"; exit 0; fi\n\
         if [ -e \"$w/timedout\" ]; then echo 'state timedout'; show pid \"$w/pid\"; exit 0; fi\n\
         if [ ! -e \"$w/rc\" ]; then echo 'state running'; exit 0; fi\n\
         echo 'state done'\n\
         for f in rc start end task.json stdout stderr; do [ -e \"$w/$f\" ] && show \"$f\" \"$w/$f\"; done\n\
         exit 0\n"
    )
}

/// Read `home`, `state` and the framed files (`file NAME SIZE`, the bytes,
/// a newline) the status script printed.
fn parse_status(out: &[u8]) -> JobFiles {
    let mut files = JobFiles::default();
    let mut rest = out;
    while !rest.is_empty() {
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = rest.get(end + 1..).unwrap_or_default();
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("home"), Some(h), more) => {
                files.home = match more {
                    Some(m) => format!("{h} {m}"),
                    None => h.to_string(),
                };
            }
            (Some("state"), Some(s), _) => files.state = s.to_string(),
            (Some("file"), Some(name), Some(size)) => {
                let n = size.trim().parse::<usize>().unwrap_or(0).min(rest.len());
                files.files.push((name.to_string(), rest[..n].to_vec()));
                rest = rest.get(n + 1..).unwrap_or_default();
            }
            _ => {}
        }
    }
    files
}

/// The fields `async_status` always reports (Ansible's action plugin
/// starts from these).
fn base_result(jid: &str, results_file: &str) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("ansible_job_id".into(), json!(jid));
    r.insert("started".into(), json!(1));
    r.insert("finished".into(), json!(0));
    r.insert("results_file".into(), json!(results_file));
    r.insert("stdout".into(), json!(""));
    r.insert("stderr".into(), json!(""));
    r.insert("stdout_lines".into(), json!([]));
    r.insert("stderr_lines".into(), json!([]));
    r
}

fn epoch(text: Option<String>) -> Option<SystemTime> {
    let secs: f64 = text?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// Look at job `jid` on the host (one round trip).
pub fn status(host: &mut dyn Host, jid: &str) -> Result<JobReport, ModuleError> {
    if !valid_jid(jid) {
        return Err(ModuleError::failed(
            "`jid` may hold only letters, digits, `.`, `_` and `-`",
        ));
    }
    let out = host.run(&status_script(jid), None)?;
    if !out.success() {
        return Err(ModuleError::Host(HostError::Command {
            action: "reading a background job",
            rc: out.rc,
            stderr: out.stderr_str().trim().to_string(),
        }));
    }
    let files = parse_status(&out.stdout);
    let path = results_file(files.home.trim_end_matches('/'), jid);
    let mut report = JobReport {
        result: base_result(jid, &path),
        finished: false,
        changed: false,
        failed: None,
    };
    match files.state.as_str() {
        "running" => {}
        "missing" => {
            report.result.insert("finished".into(), json!(1));
            report.finished = true;
            report.failed = Some("could not find job".into());
        }
        "timedout" => {
            report.result.insert("finished".into(), json!(0));
            report.result.insert("failed".into(), json!(true));
            if let Some(pid) = files.text("pid").and_then(|p| p.parse::<i64>().ok()) {
                report.result.insert("child_pid".into(), json!(pid));
            }
            report.failed = Some("Timeout exceeded".into());
        }
        "foreign" => foreign(&files, &mut report),
        "done" => finished(host.name(), &files, &mut report)?,
        _ => {
            return Err(ModuleError::failed(
                "the job's status could not be read from the host",
            ))
        }
    }
    if let Some(msg) = &report.failed {
        report.result.insert("msg".into(), json!(msg));
    }
    Ok(report)
}

/// A results file herd's runner did not leave (Ansible's own job, say):
/// read as Ansible's `async_status` reads it.
fn foreign(files: &JobFiles, report: &mut JobReport) {
    let text = files.text("results").unwrap_or_default();
    match serde_json::from_str::<Map<String, Value>>(&text) {
        Ok(data) => {
            let finished = !data.contains_key("started")
                || data.get("finished").is_some_and(|f| f.as_i64() == Some(1));
            for (k, v) in data {
                report.result.insert(k, v);
            }
            report
                .result
                .insert("finished".into(), json!(i32::from(finished)));
            report.finished = finished;
            report.changed = report.result.get("changed") == Some(&Value::Bool(true));
            if report.result.get("failed").is_some_and(truthy) {
                report.failed = Some(
                    report
                        .result
                        .get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("the job failed")
                        .to_string(),
                );
            }
        }
        Err(_) if text.is_empty() => {}
        Err(_) => {
            report.result.insert("finished".into(), json!(1));
            report.failed = Some("Could not parse job output".into());
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => false,
    }
}

/// A finished job: its module's `apply`, replayed on the recorded output.
fn finished(name: &str, files: &JobFiles, report: &mut JobReport) -> Result<(), ModuleError> {
    let record: Value = files
        .text("task.json")
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let module = record.get("module").and_then(Value::as_str).unwrap_or("");
    let Some(m) = crate::find(module).filter(|m| m.async_support() == AsyncSupport::Detached)
    else {
        return Err(ModuleError::failed(
            "the job's record on the host is unreadable or names no module that runs in the background",
        ));
    };
    let rc = files
        .text("rc")
        .and_then(|t| t.parse::<i32>().ok())
        .unwrap_or(-1);
    let output = ExecOutput {
        rc,
        stdout: files.get("stdout").unwrap_or_default().to_vec(),
        stderr: files.get("stderr").unwrap_or_default().to_vec(),
    };
    let mut replay = ReplayHost {
        name: name.to_string(),
        output: Some(output),
    };
    let params = record.get("params").cloned().unwrap_or(Value::Null);
    report.result.insert("finished".into(), json!(1));
    report.finished = true;
    match m.apply(&params, Plan::default(), &mut replay) {
        Ok(out) => {
            for (k, v) in out.result {
                report.result.insert(k, v);
            }
            report.changed = out.changed;
            if out.failed {
                report.failed = Some(out.msg.unwrap_or_else(|| "module failed".into()));
            }
        }
        Err(ModuleError::Failed { msg, result }) => {
            for (k, v) in result {
                report.result.insert(k, v);
            }
            report.failed = Some(msg);
        }
        Err(e) => return Err(e),
    }
    // The host's clock, not the moment of this read.
    let (start, end) = (epoch(files.text("start")), epoch(files.text("end")));
    if let (Some(s), Some(e)) = (start, end) {
        if report.result.contains_key("start") {
            report
                .result
                .insert("start".into(), json!(clock::timestamp(s)));
            report
                .result
                .insert("end".into(), json!(clock::timestamp(e)));
            let took = e.duration_since(s).unwrap_or_default();
            report
                .result
                .insert("delta".into(), json!(clock::delta(took)));
        }
    }
    Ok(())
}

/// Remove job `jid`'s files (`async_status` with `mode: cleanup`). Fails
/// as Ansible does when there is no such job.
pub fn cleanup(host: &mut dyn Host, jid: &str) -> Result<Map<String, Value>, ModuleError> {
    if !valid_jid(jid) {
        return Err(ModuleError::failed(
            "`jid` may hold only letters, digits, `.`, `_` and `-`",
        ));
    }
    let script = format!(
        "j=\"$HOME\"/{ASYNC_DIR}/{jid}\nprintf '%s\\n' \"$j\"\n\
         [ -e \"$j\" ] || exit 3\nrm -rf -- \"$j\".herd; rm -f -- \"$j\"\n"
    );
    let out = host.run(&script, None)?;
    let path = out.stdout_str().trim().to_string();
    let mut r = Map::new();
    r.insert("ansible_job_id".into(), json!(jid));
    r.insert("started".into(), json!(0));
    r.insert("finished".into(), json!(0));
    r.insert("stdout".into(), json!(""));
    r.insert("stderr".into(), json!(""));
    r.insert("stdout_lines".into(), json!([]));
    r.insert("stderr_lines".into(), json!([]));
    r.insert("erased".into(), json!(path));
    match out.rc {
        0 => Ok(r),
        3 => {
            r.insert("started".into(), json!(1));
            r.insert("finished".into(), json!(1));
            Err(ModuleError::Failed {
                msg: "could not find job".into(),
                result: r,
            })
        }
        rc => Err(ModuleError::Host(HostError::Command {
            action: "removing a background job",
            rc,
            stderr: out.stderr_str().trim().to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;

    fn wait_done(host: &mut dyn Host, jid: &str) -> JobReport {
        for _ in 0..100 {
            let r = status(host, jid).unwrap();
            if r.finished || r.failed.is_some() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("job {jid} did not finish in 10 s");
    }

    #[test]
    fn a_shell_job_runs_detached_and_its_result_is_the_modules() {
        let mut host = LocalHost::new("local");
        let jid = new_jid();
        let params = json!({"_raw_params": "echo out; echo err >&2; exit 3"});
        let shell = crate::find("shell").unwrap();
        let mut launch = LaunchHost::new(&mut host, &jid, 30, "shell", &params);
        shell.apply(&params, Plan::default(), &mut launch).unwrap();
        let file = launch.results_file().unwrap();
        assert!(file.ends_with(&format!("/.ansible_async/{jid}")), "{file}");
        let r = wait_done(&mut host, &jid);
        assert!(r.finished);
        assert_eq!(r.failed.as_deref(), Some("non-zero return code"));
        assert_eq!(r.result["rc"], json!(3));
        assert_eq!(r.result["stdout"], json!("out"));
        assert_eq!(r.result["stderr"], json!("err"));
        assert_eq!(r.result["finished"], json!(1));
        assert_eq!(r.result["results_file"], json!(file));
        assert!(r.result["delta"].as_str().unwrap().starts_with("0:00:0"));
        let erased = cleanup(&mut host, &jid).unwrap();
        assert_eq!(erased["erased"], json!(file));
        assert!(!std::path::Path::new(&file).exists());
        let gone = status(&mut host, &jid).unwrap();
        assert_eq!(gone.failed.as_deref(), Some("could not find job"));
        assert!(cleanup(&mut host, &jid).is_err());
    }

    #[test]
    fn a_job_past_its_limit_is_killed_with_ansibles_status() {
        let mut host = LocalHost::new("local");
        let jid = new_jid();
        let params = json!({"_raw_params": "sleep 30"});
        let shell = crate::find("shell").unwrap();
        let mut launch = LaunchHost::new(&mut host, &jid, 1, "shell", &params);
        shell.apply(&params, Plan::default(), &mut launch).unwrap();
        let r = wait_done(&mut host, &jid);
        assert_eq!(r.failed.as_deref(), Some("Timeout exceeded"));
        assert_eq!(r.result["finished"], json!(0));
        assert!(r.result["child_pid"].as_i64().is_some());
        cleanup(&mut host, &jid).unwrap();
    }

    #[test]
    fn stdin_reaches_the_job_and_a_bad_jid_is_refused() {
        let mut host = LocalHost::new("local");
        let jid = new_jid();
        let params = json!({"_raw_params": "cat", "stdin": "fed"});
        let command = crate::find("command").unwrap();
        let mut launch = LaunchHost::new(&mut host, &jid, 30, "command", &params);
        command
            .apply(&params, Plan::default(), &mut launch)
            .unwrap();
        let r = wait_done(&mut host, &jid);
        assert_eq!(r.result["stdout"], json!("fed"));
        assert_eq!(r.result["cmd"], json!(["cat"]));
        assert!(r.changed && r.failed.is_none());
        cleanup(&mut host, &jid).unwrap();
        assert!(status(&mut host, "../etc").is_err());
    }
}
