//! Scheduled-job flags through the built binary, on local hosts:
//! `--lock`, `--log-file`, `--metrics-file`, `--notify`,
//! `--detailed-exitcode`. The notification tests run their HTTP server on
//! 127.0.0.1 only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{run_in, write_files};

const ONE_HOST: &str = "[one]\na ansible_connection=local\n";
const TWO_HOSTS: &str = "[pair]\na ansible_connection=local\nb ansible_connection=local\n";
const CHANGE: &str =
    "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: touch\n      command: 'true'\n";
const FAIL_ON_B: &str = "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: touch\n      command: 'true'\n    - name: break b\n      fail:\n        msg: disk full on b\n      when: inventory_hostname == 'b'\n";

/// Start `herd run site.yml -i inventory.ini` with `extra` in `dir`
/// without waiting for it.
fn spawn_in(dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_herd"))
        .args([
            "run",
            "site.yml",
            "-i",
            "inventory.ini",
            "--output",
            "jsonl",
        ])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start herd")
}

/// Wait (bounded) until `path` holds a `pid=` line.
fn wait_for_holder(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains("pid=")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no run took the lock {}", path.display());
}

fn wait_bounded(child: &mut Child, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("herd did not finish in {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SLEEP_2: &str =
    "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: hold\n      command: sleep 2\n";

#[test]
fn a_second_run_with_the_same_lock_exits_75_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", ONE_HOST), ("site.yml", SLEEP_2)],
    );
    let lock = dir.path().join("job.lock");
    let flag = format!("--lock={}", lock.display());
    let mut first = spawn_in(dir.path(), &[&flag]);
    wait_for_holder(&lock);
    let t = Instant::now();
    let second = run_in(dir.path(), ONE_HOST, SLEEP_2, &[&flag]).expect_code(75);
    assert!(t.elapsed() < Duration::from_secs(2), "refused at once");
    let err = second.stderr();
    assert!(
        err.contains(&format!("pid {}", first.id())) && err.contains("started 20"),
        "{err}"
    );
    assert!(
        second.stdout().is_empty(),
        "nothing ran: {}",
        second.stdout()
    );
    // --lock-wait waits for the holder to finish, then runs.
    let waited =
        run_in(dir.path(), ONE_HOST, SLEEP_2, &[&flag, "--lock-wait", "20"]).expect_code(0);
    assert_eq!(waited.stat("a", "changed"), 1);
    assert_eq!(wait_bounded(&mut first, 20), 0);
}

#[test]
fn a_killed_run_leaves_no_lock_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", ONE_HOST), ("site.yml", SLEEP_2)],
    );
    let lock = dir.path().join("job.lock");
    let flag = format!("--lock={}", lock.display());
    let mut first = spawn_in(dir.path(), &[&flag]);
    wait_for_holder(&lock);
    first.kill().expect("SIGKILL the holder");
    let _ = first.wait();
    run_in(dir.path(), ONE_HOST, CHANGE, &[&flag]).expect_code(0);
}

#[test]
fn lock_wait_gives_up_with_75_after_its_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", ONE_HOST), ("site.yml", SLEEP_2)],
    );
    let lock = dir.path().join("job.lock");
    let flag = format!("--lock={}", lock.display());
    let mut first = spawn_in(dir.path(), &[&flag]);
    wait_for_holder(&lock);
    let run = run_in(dir.path(), ONE_HOST, SLEEP_2, &[&flag, "--lock-wait", "0"]).expect_code(75);
    assert!(
        run.stderr().contains("after waiting 0 s"),
        "{}",
        run.stderr()
    );
    assert_eq!(wait_bounded(&mut first, 20), 0);
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("log file")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn log_file_appends_the_event_stream_with_a_run_id_while_stdout_stays_human() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", TWO_HOSTS), ("site.yml", FAIL_ON_B)],
    );
    let log = dir.path().join("runs.jsonl");
    let flag = log.display().to_string();
    for _ in 0..2 {
        let run = herd_in(dir.path(), &["--log-file", &flag]).expect_code(2);
        assert!(run.stdout().contains("PLAY RECAP"), "{}", run.stdout());
    }
    let lines = log_lines(&log);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["run_id"].as_str().unwrap())
        .collect();
    assert_ne!(ids[0], ids[ids.len() - 1], "each run has its own id");
    for l in &lines {
        assert!(l["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
    }
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events.iter().filter(|e| **e == "run_start").count(), 2);
    assert_eq!(events[0], "run_start");
    assert_eq!(*events.last().unwrap(), "run_end");
    let end = lines.last().unwrap();
    assert_eq!(end["exit_code"], 2);
    assert_eq!(end["success"], false);
    assert!(lines.iter().any(|l| l["event"] == "host_result"
        && l["host"] == "b"
        && l["status"] == "failed"
        && l["msg"] == "disk full on b"));
    assert!(lines.iter().any(|l| l["event"] == "recap"));
}

#[test]
fn the_log_keeps_each_result_so_a_failed_command_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            ("inventory.ini", TWO_HOSTS),
            (
                "site.yml",
                "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: dump\n      \
                 shell: echo dumped {{ inventory_hostname }}; echo 'no space left' >&2; \
                 exit {{ 0 if inventory_hostname == 'a' else 3 }}\n    - name: secret\n      \
                 command: echo hidden-7f3c\n      no_log: true\n",
            ),
        ],
    );
    let log = dir.path().join("run.jsonl");
    let flag = log.display().to_string();
    herd_in(dir.path(), &["--log-file", &flag]).expect_code(2);
    let lines = log_lines(&log);
    let result = |host: &str, task: &str| -> Value {
        lines
            .iter()
            .find(|l| l["event"] == "host_result" && l["host"] == host && l["task"] == task)
            .unwrap_or_else(|| panic!("no result of {task} on {host}: {lines:?}"))
            .clone()
    };
    let failed = result("b", "dump");
    assert_eq!(failed["status"], "failed", "{failed}");
    let r = &failed["result"];
    assert_eq!(r["rc"], 3, "{failed}");
    assert_eq!(r["stdout"], "dumped b", "{failed}");
    assert_eq!(r["stderr"], "no space left", "{failed}");
    assert_eq!((&r["failed"], &r["changed"]), (&true.into(), &true.into()));
    assert_eq!(result("a", "dump")["result"]["rc"], 0);
    // no_log keeps the result out of the log.
    let hidden = result("a", "secret");
    assert_eq!(hidden["censored"], true, "{hidden}");
    assert!(hidden.get("result").is_none(), "{hidden}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.contains("hidden-7f3c"), "{text}");
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no `{line_start}` in\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn metrics_file_shows_success_then_failure_and_keeps_the_last_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prom = dir.path().join("herd.prom");
    let flag = prom.display().to_string();
    run_in(dir.path(), TWO_HOSTS, CHANGE, &["--metrics-file", &flag]).expect_code(0);
    let ok = std::fs::read_to_string(&prom).expect("metrics");
    assert_eq!(metric(&ok, "herd_job_last_run_success{job=\"site\"} "), 1.0);
    assert_eq!(
        metric(
            &ok,
            "herd_job_last_run_hosts{job=\"site\",status=\"changed\"} "
        ),
        2.0
    );
    assert_eq!(
        metric(&ok, "herd_job_last_run_changed_total{job=\"site\"} "),
        2.0
    );
    let end = metric(
        &ok,
        "herd_job_last_run_end_timestamp_seconds{job=\"site\"} ",
    );
    assert!(metric(&ok, "herd_job_last_run_duration_seconds{job=\"site\"} ") >= 0.0);
    assert_eq!(
        metric(
            &ok,
            "herd_job_last_success_timestamp_seconds{job=\"site\"} "
        ),
        end
    );

    run_in(dir.path(), TWO_HOSTS, FAIL_ON_B, &["--metrics-file", &flag]).expect_code(2);
    let bad = std::fs::read_to_string(&prom).expect("metrics");
    assert_eq!(
        metric(&bad, "herd_job_last_run_success{job=\"site\"} "),
        0.0
    );
    assert_eq!(
        metric(&bad, "herd_job_last_run_exit_code{job=\"site\"} "),
        2.0
    );
    assert_eq!(
        metric(
            &bad,
            "herd_job_last_run_hosts{job=\"site\",status=\"failed\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(
            &bad,
            "herd_job_last_run_hosts{job=\"site\",status=\"changed\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(
            &bad,
            "herd_job_last_success_timestamp_seconds{job=\"site\"} "
        ),
        end
    );

    // --job names the series; a playbook that does not load is a failure too.
    run_in(
        dir.path(),
        TWO_HOSTS,
        "- hosts: all\n  tasks: [",
        &["--metrics-file", &flag, "--job", "nightly"],
    )
    .expect_code(1);
    let broken = std::fs::read_to_string(&prom).expect("metrics");
    assert_eq!(
        metric(&broken, "herd_job_last_run_success{job=\"nightly\"} "),
        0.0
    );
    assert_eq!(
        metric(&broken, "herd_job_last_run_exit_code{job=\"nightly\"} "),
        1.0
    );
}

/// An HTTP server on `addr` (127.0.0.1 here, the fleet bridge address in
/// the fleet test) answering each request with the next of `statuses`;
/// returns its port and the bodies it received. It stops after the last
/// status or 300 s, whichever comes first.
pub(crate) fn webhook_on(addr: &str, statuses: Vec<u16>) -> (u16, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind((addr, 0)).expect("bind the webhook address");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("local address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        for status in statuses {
            let mut conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break conn,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => return,
                }
            };
            conn.set_nonblocking(false).ok();
            conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).ok();
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
    });
    (port, rx)
}

/// [`webhook_on`] 127.0.0.1, with the URL of its hook.
fn webhook(statuses: Vec<u16>) -> (String, mpsc::Receiver<Value>) {
    let (port, rx) = webhook_on("127.0.0.1", statuses);
    (format!("http://127.0.0.1:{port}/hook/secret-token"), rx)
}

#[test]
fn notify_posts_a_summary_on_failure_retrying_a_server_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, rx) = webhook(vec![500, 200]);
    run_in(
        dir.path(),
        TWO_HOSTS,
        FAIL_ON_B,
        &["--notify", &url, "--job", "nightly"],
    )
    .expect_code(2);
    let first = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("first attempt");
    let body = rx.recv_timeout(Duration::from_secs(5)).expect("retried");
    assert_eq!(first, body, "the retry sends the same summary");
    assert_eq!(body["job"], "nightly");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["exit_code"], 2);
    assert_eq!(body["hosts"]["failed"], serde_json::json!(["b"]));
    assert_eq!(body["hosts"]["changed"], serde_json::json!(["a"]));
    assert_eq!(body["failed_tasks"][0]["task"], "break b");
    assert_eq!(body["failed_tasks"][0]["msg"], "disk full on b");
    assert!(body["duration_seconds"].as_f64().is_some());
}

#[test]
fn notify_stays_quiet_on_success_unless_asked_and_a_dead_hook_keeps_the_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, rx) = webhook(vec![204]);
    run_in(dir.path(), TWO_HOSTS, CHANGE, &["--notify", &url]).expect_code(0);
    run_in(
        dir.path(),
        TWO_HOSTS,
        CHANGE,
        &["--notify", &url, "--notify-on", "always"],
    )
    .expect_code(0);
    let body = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("one notification");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["changed"], 2);
    // Nothing listens on this port any more: reported, exit code unchanged,
    // and the URL's path (where tokens live) is not printed.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook/secret-token", l.local_addr().unwrap())
    };
    let run = run_in(dir.path(), TWO_HOSTS, FAIL_ON_B, &["--notify", &dead]).expect_code(2);
    let err = run.stderr();
    assert!(
        err.contains("notification to http://127.0.0.1:")
            && err.contains("failed after 3 attempts"),
        "{err}"
    );
    assert!(!err.contains("secret-token"), "{err}");
}

#[test]
fn detailed_exitcode_says_10_when_check_finds_changes_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("motd");
    let play = format!(
        "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: motd\n      copy:\n        dest: {}\n        content: hello\n",
        target.display()
    );
    run_in(
        dir.path(),
        ONE_HOST,
        &play,
        &["--check", "--detailed-exitcode"],
    )
    .expect_code(10);
    assert!(!target.exists(), "check mode changed nothing");
    run_in(dir.path(), ONE_HOST, &play, &[]).expect_code(0);
    run_in(
        dir.path(),
        ONE_HOST,
        &play,
        &["--check", "--detailed-exitcode"],
    )
    .expect_code(0);
    // Failures keep their own codes.
    run_in(
        dir.path(),
        TWO_HOSTS,
        FAIL_ON_B,
        &["--check", "--detailed-exitcode"],
    )
    .expect_code(2);
    // Without --check the flag is a usage error.
    run_in(dir.path(), ONE_HOST, &play, &["--detailed-exitcode"]).expect_code(1);
}

const LISTED: &str = "- name: Web things\n  hosts: web\n  gather_facts: no\n  tags: [webplay]\n  tasks:\n    - name: first\n      command: 'true'\n      tags: [a, b]\n    - command: echo hi\n    - name: blocky\n      block:\n        - name: inner\n          debug: msg=x\n          tags: inner\n- hosts: db\n  gather_facts: no\n  tasks:\n    - name: dbtask\n      debug: msg=y\n      tags: [b]\n";
const WEB_DB: &str = "[web]\nw1 ansible_connection=local\nw2 ansible_connection=local\n[db]\nd1 ansible_connection=local\n";

/// Run `herd run site.yml -i inventory.ini` with `extra` (human output).
fn herd_in(dir: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["run", "site.yml", "-i", "inventory.ini"];
    args.extend_from_slice(extra);
    crate::support::Herd::new(args).current_dir(dir).run()
}

/// Recorded from ansible-playbook 2.18 on the same inventory and playbook.
#[test]
fn listing_flags_print_what_ansible_playbook_prints_and_run_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", WEB_DB), ("site.yml", LISTED)],
    );
    let hosts = herd_in(dir.path(), &["--list-hosts"]).expect_code(0);
    assert_eq!(
        hosts.stdout(),
        "\nplaybook: site.yml\n\n  play #1 (web): Web things\tTAGS: [webplay]\n    pattern: ['web']\n    hosts (2):\n      w1\n      w2\n\n  play #2 (db): db\tTAGS: []\n    pattern: ['db']\n    hosts (1):\n      d1\n"
    );
    let tasks = herd_in(dir.path(), &["--list-tasks"]).expect_code(0);
    assert_eq!(
        tasks.stdout(),
        "\nplaybook: site.yml\n\n  play #1 (web): Web things\tTAGS: [webplay]\n    tasks:\n      first\tTAGS: [a, b, webplay]\n      command\tTAGS: [webplay]\n      inner\tTAGS: [inner, webplay]\n\n  play #2 (db): db\tTAGS: []\n    tasks:\n      dbtask\tTAGS: [b]\n"
    );
    let tags = herd_in(dir.path(), &["--list-tags"]).expect_code(0);
    assert_eq!(
        tags.stdout(),
        "\nplaybook: site.yml\n\n  play #1 (web): Web things\tTAGS: [webplay]\n      TASK TAGS: [a, b, inner, webplay]\n\n  play #2 (db): db\tTAGS: []\n      TASK TAGS: [b]\n"
    );
    let both = herd_in(
        dir.path(),
        &["--list-hosts", "--list-tasks", "-l", "w1", "--tags", "b"],
    )
    .expect_code(0);
    assert_eq!(
        both.stdout(),
        "\nplaybook: site.yml\n\n  play #1 (web): Web things\tTAGS: [webplay]\n    pattern: ['web']\n    hosts (1):\n      w1\n    tasks:\n      first\tTAGS: [a, b, webplay]\n\n  play #2 (db): db\tTAGS: []\n    pattern: ['db']\n    hosts (0):\n    tasks:\n      dbtask\tTAGS: [b]\n"
    );
    let syntax = herd_in(dir.path(), &["--syntax-check"]).expect_code(0);
    assert_eq!(syntax.stdout(), "\nplaybook: site.yml\n");
    // A broken playbook fails the syntax check with its location.
    write_files(
        dir.path(),
        &[(
            "site.yml",
            "- hosts: all\n  tasks:\n    - name: x\n      copy:\n        dets: /tmp/x\n",
        )],
    );
    let bad = herd_in(dir.path(), &["--syntax-check"]).expect_code(1);
    assert!(bad.stderr().contains("site.yml:5:"), "{}", bad.stderr());
}

#[test]
fn start_at_task_skips_the_tasks_before_the_match_across_plays() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", WEB_DB), ("site.yml", LISTED)],
    );
    let run = run_in(dir.path(), WEB_DB, LISTED, &["--start-at-task", "inn*"]).expect_code(0);
    let ran: Vec<String> = run
        .events()
        .into_iter()
        .filter(|e| e["event"] == "task_start")
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ran, ["inner", "dbtask"]);
    assert_eq!(run.stat("w1", "ok"), 1);
    let none = run_in(dir.path(), WEB_DB, LISTED, &["--start-at-task", "nothere"]).expect_code(1);
    assert!(
        none.stderr()
            .contains("no task matches --start-at-task `nothere`"),
        "{}",
        none.stderr()
    );
    assert!(none.events().is_empty(), "nothing ran");
}

/// `herd adhoc` with `args` in `dir` (inventory.ini there).
fn adhoc_in(dir: &Path, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["adhoc"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-i", "inventory.ini"]);
    crate::support::Herd::new(all).current_dir(dir).run()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// setup returns the facts by their `ansible_` names, in ad-hoc output and
/// in a registered result; what ansible-core 2.18 printed for the same
/// commands on a Debian 12 host: `"ansible_distribution_major_version":
/// "12"` in both.
#[test]
fn setup_returns_its_facts_by_their_ansible_names_like_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            ("inventory.ini", "box ansible_connection=local\n"),
            (
                "site.yml",
                "- hosts: box\n  gather_facts: no\n  tasks:\n    - setup:\n        filter: ansible_distribution_major*\n      register: r\n    - assert:\n        that:\n          - r.ansible_facts.ansible_distribution_major_version is defined\n          - r.ansible_facts | length == 1\n          - ansible_facts.distribution_major_version is defined\n",
            ),
        ],
    );
    let adhoc = adhoc_in(
        dir.path(),
        &[
            "box",
            "-m",
            "setup",
            "-a",
            "filter=ansible_distribution_major*",
        ],
    )
    .expect_code(0);
    assert!(
        adhoc
            .stdout()
            .contains("\"ansible_distribution_major_version\": "),
        "{}",
        adhoc.stdout()
    );
    crate::support::Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .current_dir(dir.path())
        .run()
        .expect_code(0);
}

#[test]
fn adhoc_ping_and_shell_print_one_line_per_host_like_ansible() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("inventory.ini", WEB_DB)]);
    let ping = adhoc_in(dir.path(), &["web", "-m", "ping", "-o"]).expect_code(0);
    assert_eq!(
        sorted_lines(&ping.stdout()),
        [
            r#"w1 | SUCCESS => {"changed": false,"ping": "pong"}"#,
            r#"w2 | SUCCESS => {"changed": false,"ping": "pong"}"#
        ]
    );
    let up = adhoc_in(
        dir.path(),
        &["all", "-m", "shell", "-a", "uptime", "-f", "1", "-l", "d1"],
    )
    .expect_code(0);
    let out = up.stdout();
    assert!(
        out.starts_with("d1 | CHANGED | rc=0 >>\n") && out.contains("load average"),
        "{out}"
    );
    let one = adhoc_in(
        dir.path(),
        &["web", "-m", "shell", "-a", "echo hi; echo err >&2", "-o"],
    )
    .expect_code(0);
    assert_eq!(
        sorted_lines(&one.stdout()),
        [
            "w1 | CHANGED | rc=0 | (stdout) hi (stderr) err",
            "w2 | CHANGED | rc=0 | (stdout) hi (stderr) err"
        ]
    );
    // The default module is command; a failure on one host exits 2.
    let bad = adhoc_in(
        dir.path(),
        &["web", "-a", "test {{ inventory_hostname }} = w1"],
    )
    .expect_code(2);
    assert!(
        bad.stdout().contains("w2 | FAILED | rc=1 >>"),
        "{}",
        bad.stdout()
    );
    assert!(
        bad.stdout().contains("w1 | CHANGED | rc=0 >>"),
        "{}",
        bad.stdout()
    );
}

#[test]
fn adhoc_check_become_and_jsonl() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[("inventory.ini", WEB_DB), ("motd.txt", "hello\n")],
    );
    let dest = dir.path().join("motd");
    let copy_args = format!("src=motd.txt dest={}", dest.display());
    // A relative src is found from the current directory, as with `ansible`.
    let check = adhoc_in(
        dir.path(),
        &["w1", "-m", "copy", "-a", &copy_args, "--check", "-o"],
    )
    .expect_code(0);
    assert!(
        check.stdout().starts_with("w1 | CHANGED => {"),
        "{}",
        check.stdout()
    );
    assert!(!dest.exists(), "check mode wrote nothing");
    adhoc_in(dir.path(), &["w1", "-m", "copy", "-a", &copy_args]).expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).expect("copied"), "hello\n");
    let id = adhoc_in(
        dir.path(),
        &["w1", "-b", "-m", "command", "-a", "id -u", "-o"],
    )
    .expect_code(0);
    assert_eq!(id.stdout(), "w1 | CHANGED | rc=0 | (stdout) 0\n");
    let jsonl = adhoc_in(dir.path(), &["db", "-m", "ping", "--output", "jsonl"]).expect_code(0);
    let results = jsonl.results("ping");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["host"], "d1");
    assert_eq!(results[0]["output"]["ping"], "pong");
    assert_eq!(jsonl.stat("d1", "ok"), 1);
    // A bad argument is a load error that points at the generated task.
    let typo = adhoc_in(dir.path(), &["w1", "-m", "copy", "-a", "dets=/tmp/x"]).expect_code(1);
    assert!(
        typo.stderr().contains("(herd adhoc)") && typo.stderr().contains("dets"),
        "{}",
        typo.stderr()
    );
}
