//! Faults on the fleet: a host's link cut mid-task, its sshd stopped (a
//! silent peer) or killed, its disk full under `copy`/`template`, a host
//! rebooted mid-play, `herd` itself interrupted with SIGINT and SIGTERM,
//! two `herd` runs against the same host at once, and the `timeout:` task
//! keyword. Each test has hosts of its own (see `support::fleet`), bounds
//! every wait, and checks that the other hosts finish and that the recap
//! and exit code say what happened.
//!
//! One test runs on the controller alone (`ansible_connection=local`), so
//! SIGINT handling is covered without the fleet too.
//!
//! Faults are injected inside the host only: its own network namespace
//! (`nsenter -n`) or its own processes, found as descendants of the
//! launcher fleet.sh recorded for it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fleet::{fleet, Fleet};
use crate::support::{write_files, Herd, Run};

/// A `herd run` in the background, its JSON lines collected as they come.
struct Background {
    pid: libc::pid_t,
    label: String,
    lines: Arc<Mutex<Vec<String>>>,
    done: mpsc::Receiver<Output>,
}

impl Background {
    fn start(herd: &Herd) -> Background {
        let label = herd.label();
        let mut child = herd
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start herd {label}: {e}"));
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let collected = lines.clone();
        std::thread::spawn(move || {
            let mut stderr_pipe = child.stderr.take();
            let stderr = std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = stderr_pipe.as_mut() {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            });
            let mut stdout = Vec::new();
            if let Some(out) = child.stdout.take() {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    stdout.extend_from_slice(line.as_bytes());
                    stdout.push(b'\n');
                    if let Ok(mut l) = collected.lock() {
                        l.push(line);
                    }
                }
            }
            let status = child.wait().expect("wait for herd");
            let stderr = stderr.join().unwrap_or_default();
            let _ = tx.send(Output {
                status,
                stdout,
                stderr,
            });
        });
        Background {
            pid,
            label,
            lines,
            done,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .map(|l| {
                l.iter()
                    .filter_map(|s| serde_json::from_str(s).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait (bounded) until an event satisfies `pred`.
    fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.events().iter().any(&pred) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "herd never got to {what} in {within:?}; output so far:\n{}",
            self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
        );
    }

    /// Wait until the task named `task` has started.
    fn wait_task(&self, task: &str, within: Duration) {
        self.wait_for(&format!("task `{task}`"), within, |e| {
            e["event"] == "task_start" && e["name"] == task
        });
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: a signal to the herd process this test started.
        unsafe {
            libc::kill(self.pid, signal);
        }
    }

    /// The finished run; a run still going after `within` is killed and
    /// the test fails (nothing may hang past its bound).
    fn finish(self, within: Duration) -> Run {
        match self.done.recv_timeout(within) {
            Ok(output) => Run {
                output,
                label: self.label.clone(),
            },
            Err(_) => {
                self.signal(libc::SIGKILL);
                panic!(
                    "herd {} still running after {within:?}; output so far:\n{}",
                    self.label,
                    self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
                );
            }
        }
    }
}

/// A test that fails half-way does not leave its `herd` running.
impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.done.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            self.signal(libc::SIGKILL);
        }
    }
}

/// Every process under a fleet host's launcher, with its parent and
/// command line, read from /proc.
fn host_processes(f: &Fleet, host: &str) -> Vec<(i32, String)> {
    let launcher: i32 = std::fs::read_to_string(f.state.join("hosts").join(host).join("pid"))
        .expect("launcher pid")
        .trim()
        .parse()
        .expect("launcher pid");
    let mut parent = HashMap::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The fields after the command name, which may hold spaces.
        let Some(rest) = stat.rfind(") ").map(|i| &stat[i + 2..]) else {
            continue;
        };
        if let Some(ppid) = rest.split(' ').nth(1).and_then(|p| p.parse::<i32>().ok()) {
            parent.insert(pid, ppid);
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![launcher];
    // One visit per process of the host; bounded anyway.
    for _ in 0..parent.len() {
        let Some(p) = frontier.pop() else { break };
        for (&child, &pp) in &parent {
            if pp == p {
                frontier.push(child);
                let cmdline = std::fs::read(format!("/proc/{child}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default();
                out.push((child, cmdline.trim().to_string()));
            }
        }
    }
    out
}

/// The PID of the host's init: the first process under its launcher in
/// a network namespace other than the test machine's.
fn host_init(f: &Fleet, host: &str) -> i32 {
    let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    host_processes(f, host)
        .into_iter()
        .map(|(pid, _)| pid)
        .find(|pid| std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|ns| ns != ours))
        .unwrap_or_else(|| panic!("no process of {host} in its own network namespace"))
}

/// `ip ...` inside the host's network namespace.
fn ip_in_host(f: &Fleet, host: &str, args: &[&str]) {
    let out = Command::new("nsenter")
        .args(["-t", &host_init(f, host).to_string(), "-n", "ip"])
        .args(args)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "ip {args:?} in {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PIDs of the host's sshd processes: the listener, and those serving
/// connections (`sshd: root@notty`, `sshd: root [priv]`).
fn sshd_pids(f: &Fleet, host: &str, listener: bool) -> Vec<i32> {
    host_processes(f, host)
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("sshd:") || cmd.starts_with("/usr/sbin/sshd"))
        .filter(|(_, cmd)| listener || !(cmd.contains("listener") || cmd.contains("-D")))
        .map(|(pid, _)| pid)
        .collect()
}

fn signal_all(pids: &[i32], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: processes of a fleet host this test disturbs on purpose.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Wait (bounded) until the host answers ssh again, after a fault.
fn await_ssh(f: &Fleet, host: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f.ssh(host, "true").status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{host} did not answer ssh again within {within:?}");
}

/// The one host result of `task` for `host`.
/// A play of `tasks` (YAML, indented for a task list) on group `faults`.
fn play(tasks: &str) -> String {
    format!("- hosts: faults\n  gather_facts: no\n  tasks:\n{tasks}")
}

/// Common shape of the connection-fault tests: `victim` and a survivor on
/// a shared host run `first`, a slow task and `after`; `fault` strikes
/// while the slow task runs. The victim must be unreachable, the survivor
/// must finish every task, the exit code is 4, and the victim's slow task
/// must end within `detect` of the fault. Returns the run and the time
/// from the fault to the victim's result.
fn connection_fault(
    victim: &str,
    victim_vars: &str,
    slow: &str,
    fault: impl FnOnce(),
    detect: Duration,
) -> (Run, Duration) {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = f
        .inventory()
        .group("faults")
        .root("victim", victim, victim_vars)
        .root("survivor", "herd-02", "")
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[(
            "pb.yml",
            &play(&format!(
                "    - name: first\n      command: 'true'\n    - name: slow\n      command: {slow}\n    - name: after\n      command: 'true'\n"
            )),
        )],
    );
    let bg = Background::start(
        &f.herd()
            .playbook(dir.path().join("pb.yml"))
            .inventory(&inv)
            .current_dir(dir.path()),
    );
    bg.wait_task("slow", Duration::from_secs(30));
    // Let the slow command start on the host.
    std::thread::sleep(Duration::from_millis(700));
    let struck = Instant::now();
    fault();
    bg.wait_for("the victim's slow result", detect, |e| {
        e["event"] == "host_result" && e["host"] == "victim" && e["task"] == "slow"
    });
    let detected = struck.elapsed();
    let run = bg.finish(Duration::from_secs(60)).expect_code(4);
    assert_eq!(
        run.result("slow", "victim")["status"],
        "unreachable",
        "{}",
        run.stdout()
    );
    assert_eq!(run.stat("victim", "unreachable"), 1, "{}", run.stdout());
    assert_eq!(run.stat("victim", "failed"), 0, "{}", run.stdout());
    assert_eq!(run.stat("survivor", "changed"), 3, "{}", run.stdout());
    assert_eq!(run.stat("survivor", "unreachable"), 0, "{}", run.stdout());
    assert!(run.results("after").iter().all(|r| r["host"] == "survivor"));
    eprintln!("{victim}: unreachable {detected:?} after the fault");
    (run, detected)
}

#[test]
fn a_link_cut_mid_task_makes_the_host_unreachable_within_the_keepalive_limit() {
    let f = fleet();
    let host = "herd-19";
    struct LinkBack(&'static str);
    impl Drop for LinkBack {
        fn drop(&mut self) {
            ip_in_host(fleet(), self.0, &["link", "set", "host0", "up"]);
        }
    }
    let _back = LinkBack(host);
    // 1 s x 2 keepalives: the victim is given up about 2 s after the cut.
    let (run, detected) = connection_fault(
        host,
        "ansible_ssh_common_args='-o ServerAliveInterval=1 -o ServerAliveCountMax=2'",
        "sleep 8",
        || ip_in_host(f, host, &["link", "set", "host0", "down"]),
        Duration::from_secs(6),
    );
    assert!(detected >= Duration::from_secs(1), "{detected:?}");
    let msg = run.result("slow", "victim")["msg"].to_string();
    assert!(msg.contains("keepalive"), "{msg}");
}

#[test]
fn a_stopped_sshd_is_a_silent_peer_given_up_after_interval_times_count() {
    let f = fleet();
    let host = "herd-20";
    struct Continue(Vec<i32>);
    impl Drop for Continue {
        fn drop(&mut self) {
            signal_all(&self.0, libc::SIGCONT);
        }
    }
    let stopped = Arc::new(Mutex::new(Continue(Vec::new())));
    let s = stopped.clone();
    let (run, detected) = connection_fault(
        host,
        "ansible_ssh_common_args='-o ServerAliveInterval=1 -o ServerAliveCountMax=3'",
        "sleep 10",
        move || {
            // Every sshd of the host: the connection stays open (the
            // kernel still answers TCP), nothing answers SSH.
            let pids = sshd_pids(f, host, true);
            assert!(pids.len() >= 2, "sshd processes of {host}: {pids:?}");
            signal_all(&pids, libc::SIGSTOP);
            if let Ok(mut c) = s.lock() {
                c.0 = pids;
            }
        },
        Duration::from_secs(8),
    );
    // 1 s x 3, give or take a keepalive period.
    assert!(detected >= Duration::from_secs(2), "{detected:?}");
    let msg = run.result("slow", "victim")["msg"].to_string();
    assert!(msg.contains("no answer to 3 keepalives"), "{msg}");
    drop(stopped);
    await_ssh(f, host, Duration::from_secs(20));
}

#[test]
fn sshd_killed_mid_run_makes_the_host_unreachable_at_once() {
    let f = fleet();
    let host = "herd-21";
    let (_run, detected) = connection_fault(
        host,
        "",
        "sleep 8",
        || {
            let pids = sshd_pids(f, host, false);
            assert!(!pids.is_empty(), "no sshd serving herd on {host}");
            signal_all(&pids, libc::SIGKILL);
        },
        Duration::from_secs(4),
    );
    assert!(detected < Duration::from_secs(3), "{detected:?}");
    // The listener was left alone: the host takes new connections.
    await_ssh(f, host, Duration::from_secs(10));
    f.ssh_ok(host, "pkill -x -f 'sleep 8' || true");
}

#[test]
fn a_full_disk_under_copy_and_template_keeps_the_old_file_and_no_temp_file() {
    let f = fleet();
    let host = "herd-22";
    let _g = f.lock(host);
    let mnt = "/mnt/herdtest-faults-full";
    f.ssh_ok(
        host,
        &format!(
            "mkdir -p {mnt} && {{ mountpoint -q {mnt} || mount -t tmpfs -o size=1m herdfull {mnt}; }} \
             && rm -rf {mnt}/* {mnt}/.[!.]* && for n in a b c d; do echo old > {mnt}/$n.conf; done \
             && {{ dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null; true; }}"
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // 300 KB, more than is left; `sftp` writes over SFTP, `sudo` through a
    // command under become.
    let big = "x".repeat(300_000);
    let inv = f
        .inventory()
        .group("faults")
        .root("sftp", host, "c=a t=b")
        .root(
            "sudo",
            host,
            "ansible_user=deploy ansible_become=true c=c t=d",
        )
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[
            ("big.txt", &big),
            ("big.j2", &big),
            (
                "pb.yml",
                &play(&format!(
                    "    - name: copy\n      copy: {{src: big.txt, dest: '{mnt}/{{{{ c }}}}.conf'}}\n      ignore_errors: true\n\
                     \x20   - name: template\n      template: {{src: big.j2, dest: '{mnt}/{{{{ t }}}}.conf'}}\n      ignore_errors: true\n"
                )),
            ),
        ],
    );
    let bg = Background::start(
        &f.herd()
            .playbook(dir.path().join("pb.yml"))
            .inventory(&inv)
            .current_dir(dir.path()),
    );
    let run = bg.finish(Duration::from_secs(60)).expect_code(0);
    for task in ["copy", "template"] {
        for h in ["sftp", "sudo"] {
            let r = run.result(task, h);
            assert_eq!(r["status"], "ignored", "{task} on {h}: {r}");
            let msg = r["msg"].as_str().unwrap_or_default();
            assert!(
                msg.contains("No space left on device"),
                "{task} on {h}: {msg}"
            );
        }
    }
    assert_eq!(run.stat("sftp", "unreachable"), 0);
    // The old files are whole, and nothing else was left in the directory.
    assert_eq!(
        f.ssh_ok(
            host,
            &format!("cd {mnt} && ls -A && cat a.conf b.conf c.conf d.conf")
        ),
        "a.conf\nb.conf\nc.conf\nd.conf\nfill\nold\nold\nold\nold\n"
    );
    f.ssh_ok(host, &format!("umount {mnt} && rmdir {mnt}"));
}

#[test]
fn a_host_rebooted_mid_play_leaves_the_play_and_the_others_finish() {
    let f = fleet();
    let host = "herd-07";
    let _g = f.lock(host);
    let before = f.ssh_ok(host, "cat /proc/sys/kernel/random/boot_id");
    let (run, detected) = connection_fault(
        host,
        "ansible_ssh_common_args='-o ServerAliveInterval=1 -o ServerAliveCountMax=3'",
        "sleep 15",
        || {
            // From a transient unit: the reboot may take this ssh session
            // down before it returns.
            let _ = f.ssh(host, "systemd-run --on-active=0 systemctl reboot");
        },
        // A shutdown on a busy machine takes its time to reach the link.
        Duration::from_secs(14),
    );
    // sshd is stopped with the rest: the connection ends (no keepalive
    // wait), and the command's end is not taken for its result.
    let msg = run.result("slow", "victim")["msg"].to_string();
    assert!(msg.contains("connection lost"), "{msg}");
    eprintln!("reboot noticed after {detected:?}");
    await_ssh(f, host, Duration::from_secs(90));
    let after = f.ssh_ok(host, "cat /proc/sys/kernel/random/boot_id");
    assert_ne!(after, before, "the host did not reboot");
}

/// SIGINT or SIGTERM to a run with `sleep` in flight on two hosts (one
/// over SFTP as root, one with become), after files were written: the
/// sleeps are gone from the hosts, a process an earlier task left in the
/// background is not, the recap is printed with the hosts' counts, the
/// exit code is `code`, and each file is whole (old or new) with no temp
/// file beside it. `during` is the task the signal lands in.
fn interrupted(signal: libc::c_int, code: i32, during: &str, sleep: &str) {
    let f = fleet();
    let tag = format!("/tmp/herdtest-faults-sig{signal}");
    // Left running in the background by an earlier task, as a daemon
    // started with `nohup ... &` is: the interrupt must not take it.
    let daemon = format!("{sleep}9");
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = f
        .inventory()
        .group("faults")
        .root("root23", "herd-23", "")
        .root(
            "become24",
            "herd-24",
            "ansible_user=deploy ansible_become=true",
        )
        .write(dir.path(), "inventory.ini");
    for h in ["herd-23", "herd-24"] {
        f.ssh_ok(
            h,
            &format!("rm -rf {tag} && mkdir -p {tag} && echo old > {tag}/data"),
        );
    }
    let a = "a".repeat(2 << 20);
    let b = "b".repeat(2 << 20);
    write_files(
        dir.path(),
        &[
            ("a.txt", &a),
            ("b.txt", &b),
            (
                "pb.yml",
                &play(&format!(
                    "    - name: background\n      shell: nohup {daemon} >/dev/null 2>&1 &\n\
                     \x20   - name: write\n      copy: {{src: '{{{{ item }}}}', dest: {tag}/data}}\n      loop: [a.txt, b.txt, a.txt, b.txt, a.txt, b.txt, a.txt, b.txt]\n\
                     \x20   - name: long\n      command: {sleep}\n\
                     \x20   - name: never\n      command: 'true'\n"
                )),
            ),
        ],
    );
    let bg = Background::start(
        &f.herd()
            .playbook(dir.path().join("pb.yml"))
            .inventory(&inv)
            .current_dir(dir.path()),
    );
    bg.wait_task(during, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(if during == "long" {
        1000
    } else {
        150
    }));
    let sent = Instant::now();
    bg.signal(signal);
    let run = bg.finish(Duration::from_secs(15)).expect_code(code);
    let took = sent.elapsed();
    eprintln!("signal {signal} during `{during}`: exit {code} after {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // The recap came, with both hosts, and nothing ran after the signal.
    let recap = run.recap();
    assert!(recap.contains_key("root23") && recap.contains_key("become24"));
    for h in ["root23", "become24"] {
        // The task the signal cut short counts as failed, not as done
        // (a loop stopped between items too).
        assert_eq!(run.stat(h, "failed"), 1, "{}", run.stdout());
    }
    assert!(run.results("never").is_empty(), "{}", run.stdout());
    if during == "long" {
        for h in ["root23", "become24"] {
            let r = run.result("long", h);
            assert_eq!(r["status"], "failed", "{r}");
            let msg = r["msg"].as_str().unwrap_or_default();
            assert!(msg.contains("interrupted by SIG"), "{msg}");
        }
    }
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    assert!(
        run.stderr().contains(&format!("interrupted by {name}")),
        "{}",
        run.stderr()
    );
    for h in ["herd-23", "herd-24"] {
        // The command was stopped on the host, not left to run out.
        let left = f.ssh(h, &format!("pgrep -x -f '{sleep}'"));
        assert!(
            !left.status.success(),
            "`{sleep}` still runs on {h}: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        let bg = f.ssh(h, &format!("pkill -x -f '{daemon}'"));
        assert!(
            bg.status.success(),
            "the background `{daemon}` on {h} was stopped too"
        );
        let listing = f.ssh_ok(h, &format!("ls -A {tag}; sha1sum < {tag}/data"));
        let (names, sum) = listing.rsplit_once("data\n").expect("data in listing");
        assert_eq!(names, "", "temp files left on {h}: {listing}");
        let whole = ["old\n".to_string(), a.clone(), b.clone()]
            .iter()
            .map(|c| sha1_hex(c.as_bytes()))
            .any(|s| sum.starts_with(&s));
        assert!(whole, "{h}: {tag}/data is neither old nor new ({sum})");
        f.ssh_ok(h, &format!("rm -rf {tag}"));
    }
}

/// SHA-1 in hex, with the host's sha1sum program as the reference.
fn sha1_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha1sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha1sum");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(data).expect("feed sha1sum");
    }
    let out = child.wait_with_output().expect("sha1sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn sigint_stops_the_remote_commands_prints_the_recap_and_exits_99() {
    interrupted(libc::SIGINT, 99, "long", "sleep 31");
}

#[test]
fn sigterm_mid_write_leaves_files_whole_prints_the_recap_and_exits_143() {
    interrupted(libc::SIGTERM, 143, "write", "sleep 33");
}

#[test]
fn two_runs_against_the_same_host_at_once_both_finish_whole() {
    let f = fleet();
    let host = "herd-25";
    let tag = "/tmp/herdtest-faults-two";
    f.ssh_ok(host, &format!("rm -rf {tag} && mkdir -p {tag}"));
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let contents = ["1".repeat(1 << 20), "2".repeat(1 << 20)];
    let mut runs = Vec::new();
    for (n, dir) in dirs.iter().enumerate() {
        let inv = f
            .inventory()
            .group("faults")
            .root("two", host, "")
            .write(dir.path(), "inventory.ini");
        write_files(
            dir.path(),
            &[
                ("data.txt", &contents[n]),
                (
                    "pb.yml",
                    &play(&format!(
                        "    - name: write\n      copy: {{src: data.txt, dest: {tag}/data}}\n      loop: [1, 2, 3, 4, 5, 6]\n\
                         \x20   - name: template\n      template: {{src: data.txt, dest: {tag}/t}}\n\
                         \x20   - name: line\n      lineinfile: {{path: {tag}/lines, line: 'run {n}', create: true}}\n\
                         \x20   - name: sleep\n      command: sleep 1\n"
                    )),
                ),
            ],
        );
        runs.push(Background::start(
            &f.herd()
                .playbook(dir.path().join("pb.yml"))
                .inventory(&inv)
                .current_dir(dir.path()),
        ));
    }
    for bg in runs {
        let run = bg.finish(Duration::from_secs(60)).expect_code(0);
        assert_eq!(run.stat("two", "failed"), 0, "{}", run.stdout());
        assert_eq!(run.stat("two", "ok"), 4, "{}", run.stdout());
    }
    let sums: Vec<String> = contents.iter().map(|c| sha1_hex(c.as_bytes())).collect();
    for file in ["data", "t"] {
        let sum = f.ssh_ok(host, &format!("sha1sum < {tag}/{file}"));
        assert!(
            sums.iter().any(|s| sum.starts_with(s)),
            "{file} is neither run's content"
        );
    }
    // lineinfile of both runs: whole lines, each at most once. The runs
    // are not coordinated, so one may write over the other's edit (a lost
    // update, as with two ansible-playbook runs), never a torn file.
    let lines = f.ssh_ok(host, &format!("sort {tag}/lines"));
    assert!(
        ["run 0\n", "run 1\n", "run 0\nrun 1\n"].contains(&lines.as_str()),
        "{lines:?}"
    );
    // And no temp file of either run is left.
    assert_eq!(f.ssh_ok(host, &format!("ls -A {tag}")), "data\nlines\nt\n");
    f.ssh_ok(host, &format!("rm -rf {tag}"));
}

#[test]
fn the_timeout_keyword_fails_the_task_as_ansible_does_and_stops_the_command() {
    let f = fleet();
    let host = "herd-22";
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = f
        .inventory()
        .group("faults")
        .root("root22", host, "")
        .root("local", host, "ansible_connection=local")
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[(
            "pb.yml",
            &play(
                "    - name: slow\n      command: sleep 27\n      timeout: 1\n      register: r\n      ignore_errors: true\n\
                 \x20   - name: same session\n      command: 'true'\n      timeout: 10\n\
                 \x20   - name: shown\n      debug: {var: r.timedout}\n",
            ),
        )],
    );
    let started = Instant::now();
    let run = f
        .herd()
        .playbook(dir.path().join("pb.yml"))
        .inventory(&inv)
        .args(["--profile"])
        .current_dir(dir.path())
        .run()
        .expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    for h in ["root22", "local"] {
        let r = run.result("slow", h);
        assert_eq!(r["status"], "ignored", "{r}");
        assert_eq!(
            r["msg"],
            "The command action failed to execute in the expected time frame (1) and was terminated"
        );
        assert!(r["duration_ms"].as_u64().unwrap_or(0) < 5000, "{r}");
        assert_eq!(run.result("same session", h)["status"], "changed");
        assert_eq!(run.result("shown", h)["output"]["r.timedout"]["period"], 1);
    }
    let left = f.ssh(host, "pgrep -x -f 'sleep 27'");
    assert!(!left.status.success(), "the timed-out command still runs");
    let local = Command::new("pgrep")
        .args(["-x", "-f", "sleep 27"])
        .output()
        .expect("pgrep");
    assert!(
        !local.status.success(),
        "the timed-out local command still runs"
    );
}

/// The same on the controller itself (`ansible_connection=local`), without
/// the fleet: SIGINT mid-command stops the command and its children, the
/// recap is printed, exit 99; a second task never starts.
#[test]
fn sigint_on_a_local_run_stops_the_command_and_exits_99() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[
            ("inventory.ini", "box ansible_connection=local\n"),
            (
                "pb.yml",
                "- hosts: box\n  gather_facts: no\n  tasks:\n    - name: long\n      shell: sleep 44 & sleep 43; wait\n    - name: never\n      command: 'true'\n",
            ),
        ],
    );
    let bg = Background::start(
        &Herd::play()
            .playbook("pb.yml")
            .inventory("inventory.ini")
            .jsonl()
            .current_dir(dir.path()),
    );
    bg.wait_task("long", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    bg.signal(libc::SIGINT);
    let run = bg.finish(Duration::from_secs(10)).expect_code(99);
    assert_eq!(run.stat("box", "failed"), 1, "{}", run.stdout());
    assert!(run.results("never").is_empty());
    let msg = run.result("long", "box")["msg"].to_string();
    assert!(msg.contains("interrupted by SIGINT"), "{msg}");
    for pattern in ["sleep 44", "sleep 43"] {
        let left = Command::new("pgrep")
            .args(["-x", "-f", pattern])
            .output()
            .expect("pgrep");
        assert!(!left.status.success(), "`{pattern}` still runs");
    }
}
