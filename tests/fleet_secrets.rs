//! Secrets never leave herd's control, on the test fleet (herd-05, users
//! and paths of this test's own): five distinct secrets (a looped item
//! under `no_log`, `ansible_become_password`, `ansible_password` for a
//! password login, file content written under `no_log` with `--diff`, and
//! the output of a failing registered command under `no_log`) go through a
//! run that loops, diffs, becomes, registers and fails, with `-vvv` in
//! both output formats (a task also prints both passwords on purpose:
//! they must come out masked). Neither output stream may show any of them, and
//! while herd runs neither the target's process list nor the controller's
//! command lines may hold one.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::fleet::{fleet, Fleet};
use crate::support::{write_files, Run};

const HOST: &str = "herd-05";
const LOGIN_USER: &str = "hsec_login";
const SUDO_USER: &str = "hsec_sudo";
const TEST_DIR: &str = "/tmp/herd-secrets-test";

/// This run's secrets: fresh ones each time, so nothing left over from an
/// earlier run can hide a leak or fake one.
struct Secrets {
    item: String,
    become_: String,
    login: String,
    copy: String,
    command: String,
}

impl Secrets {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let tag = format!("{:x}{:x}", nanos, std::process::id());
        Secrets {
            item: format!("Item-{tag}-q1"),
            become_: format!("Become-{tag}-q2"),
            login: format!("Login-{tag}-q3"),
            copy: format!("Copy-{tag}-q4"),
            command: format!("Cmd-{tag}-q5"),
        }
    }

    fn all(&self) -> [(&'static str, &str); 5] {
        [
            ("loop item", &self.item),
            ("ansible_become_password", &self.become_),
            ("ansible_password", &self.login),
            ("copy content", &self.copy),
            ("failing command output", &self.command),
        ]
    }
}

/// Run `command` as root on `host` with `input` on its stdin, so a secret
/// set up by the test is on no command line either.
fn ssh_with_input(f: &Fleet, host: &str, command: &str, input: &str) {
    let mut child = ssh_command(f, host, command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssh");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write ssh stdin");
    }
    let out = child.wait_with_output().expect("wait for ssh");
    assert!(
        out.status.success(),
        "`{command}` on {host}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ssh_command(f: &Fleet, host: &str, command: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-o",
        "BatchMode=yes",
        "-o",
        &format!("UserKnownHostsFile={}", f.known_hosts.display()),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=10",
        "-i",
    ])
    .arg(&f.key)
    .arg(format!("root@{}", f.address(host)))
    .arg(command);
    cmd
}

/// Two users of this test: one that logs in with a password only, one
/// that logs in with the fleet key and whose sudo asks for its password.
fn prepare_host(f: &Fleet, s: &Secrets) {
    let _host = f.lock(HOST);
    f.ssh_ok(
        HOST,
        &format!(
            "set -e
for u in {LOGIN_USER} {SUDO_USER}; do id $u >/dev/null 2>&1 || useradd -m -s /bin/sh $u; done
install -d -m 700 -o {SUDO_USER} -g {SUDO_USER} /home/{SUDO_USER}/.ssh
install -m 600 -o {SUDO_USER} -g {SUDO_USER} /root/.ssh/authorized_keys /home/{SUDO_USER}/.ssh/authorized_keys
echo '{SUDO_USER} ALL=(ALL) ALL' > /etc/sudoers.d/{SUDO_USER}
chmod 0440 /etc/sudoers.d/{SUDO_USER}
rm -rf {TEST_DIR}; install -d -m 1777 {TEST_DIR}"
        ),
    );
    ssh_with_input(
        f,
        HOST,
        "chpasswd",
        &format!("{LOGIN_USER}:{}\n{SUDO_USER}:{}\n", s.login, s.become_),
    );
}

const PLAYBOOK: &str = r#"- hosts: secrets
  gather_facts: no
  vars:
    dir: "{{ test_dir }}/{{ run }}-{{ inventory_hostname }}"
  tasks:
    - name: own directory
      file:
        path: "{{ dir }}"
        state: directory
    - name: loop over a secret
      debug:
        msg: "using {{ item }}"
      loop: ["{{ loop_secret }}", "plain"]
      loop_control:
        label: "{{ item }}"
      no_log: true
    - name: secret file with a diff
      copy:
        content: "{{ copy_secret }}\n"
        dest: "{{ dir }}/copied.txt"
        mode: "0600"
      no_log: true
    - name: become with a password
      command: id -un
      become: true
      register: who
      when: inventory_hostname == 'sec-sudo'
    - name: become worked
      assert:
        that: who.stdout == 'root'
      when: inventory_hostname == 'sec-sudo'
    - name: passwords are masked
      debug:
        msg: "login {{ ansible_password | default('none') }} sudo {{ ansible_become_password | default('none') }}"
    - name: command input
      copy:
        content: "{{ command_secret }}\n"
        dest: "{{ dir }}/input.txt"
        mode: "0600"
      no_log: true
    - name: failing command
      command: cat {{ dir }}/input.txt {{ dir }}/missing
      register: failed_cmd
      no_log: true
    - name: never reached
      debug:
        msg: after
"#;

/// Watches a process list until stopped: the lines it saw, by sample.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<BTreeSet<String>>,
    child: Option<Child>,
}

impl Watch {
    /// The controller's command lines, from `/proc/*/cmdline`, as often
    /// as it can read them, at most 120 s and 100 000 samples.
    fn controller() -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let started = Instant::now();
            for _ in 0..100_000 {
                if flag.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(120) {
                    break;
                }
                if let Ok(dir) = std::fs::read_dir("/proc") {
                    for entry in dir.flatten() {
                        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
                            let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
                            if !line.is_empty() {
                                seen.insert(line);
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        });
        Watch {
            stop,
            thread,
            child: None,
        }
    }

    /// The target's `ps -eww -o args`, every 50 ms over its own ssh
    /// connection, at most 1200 samples (a minute); returns once the first
    /// sample is in, so the watch covers the whole run.
    fn target(f: &Fleet) -> Watch {
        let mut child = ssh_command(
            f,
            HOST,
            "for i in $(seq 1200); do ps -eww -o args; echo @@sample@@; sleep 0.05; done",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ps watcher");
        let stdout = child.stdout.take().expect("watcher stdout");
        let (first_tx, first_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let mut first = Some(first_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "@@sample@@" {
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                } else {
                    seen.insert(line);
                }
            }
            seen
        });
        first_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the process watcher on the target never reported");
        Watch {
            stop,
            thread,
            child: Some(child),
        }
    }

    fn finish(mut self) -> BTreeSet<String> {
        // One more sample after the run, then stop.
        std::thread::sleep(Duration::from_millis(150));
        self.stop.store(true, Ordering::Relaxed);
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.thread.join().expect("watcher thread")
    }
}

#[test]
fn secrets_appear_in_no_output_and_on_no_command_line() {
    let f = fleet();
    let s = Secrets::new();
    prepare_host(f, &s);
    let dir = tempfile::tempdir().expect("tempdir");
    // sec-login has no key: its password is what logs it in.
    let inventory = f
        .inventory()
        .group("secrets")
        .text(&format!(
            "sec-login ansible_host={} ansible_user={LOGIN_USER} ansible_password={}\n",
            f.address(HOST),
            s.login
        ))
        .host(
            "sec-sudo",
            HOST,
            &format!(
                "ansible_user={SUDO_USER} ansible_become_password={}",
                s.become_
            ),
        )
        .write(dir.path(), "inventory.ini");
    let vars = format!(
        "test_dir: {TEST_DIR}\nloop_secret: {}\ncopy_secret: {}\ncommand_secret: {}\n",
        s.item, s.copy, s.command
    );
    write_files(
        dir.path(),
        &[("secrets.yml", &vars), ("site.yml", PLAYBOOK)],
    );

    let herd = f
        .herd()
        .playbook("site.yml")
        .inventory(&inventory)
        .diff()
        .args(["-vvv"])
        .vars(format!("@{}", dir.path().join("secrets.yml").display()))
        .current_dir(dir.path())
        // Only the password may log in the password user.
        .env_remove("SSH_AUTH_SOCK");
    let mut leaks = Vec::new();
    let mut runs = Vec::new();
    for output in ["human", "jsonl"] {
        let target = Watch::target(f);
        let controller = Watch::controller();
        let run = herd
            .output(output)
            .vars(format!("run={output}"))
            .run()
            .expect_code(2);
        let controller = controller.finish();
        let target = target.finish();
        // The watches saw the run: herd itself, and its sessions on the host.
        assert!(
            controller
                .iter()
                .any(|l| l.contains("site.yml") && l.contains(output)),
            "the controller watch missed herd"
        );
        assert!(
            target.iter().any(|l| l.contains(LOGIN_USER)),
            "the target watch missed herd's sessions: {target:?}"
        );

        for (what, secret) in s.all() {
            for (channel, text) in [("stdout", run.stdout()), ("stderr", run.stderr())] {
                if text.contains(secret) {
                    leaks.push(format!("{what} in {output} {channel}"));
                }
            }
            if let Some(line) = target.iter().find(|l| l.contains(secret)) {
                leaks.push(format!("{what} on {HOST}'s command line: {line}"));
            }
            if let Some(line) = controller.iter().find(|l| l.contains(secret)) {
                leaks.push(format!("{what} on the controller's command line: {line}"));
            }
        }
        runs.push((output, run));
    }
    let known_hosts = std::fs::read_to_string(&f.known_hosts).unwrap_or_default();
    for (what, secret) in s.all() {
        if known_hosts.contains(secret) {
            leaks.push(format!("{what} in the known_hosts file"));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));

    for (output, run) in &runs {
        // The run did what the secrets are there for.
        if *output == "jsonl" {
            check_jsonl_run(run);
        } else {
            let out = run.stdout();
            assert!(out.contains("(item=None)"), "{out}");
            assert!(out.contains("TASK [become worked]"), "{out}");
            assert!(out.contains("\"login ******** sudo none\""), "{out}");
            assert!(!out.contains("TASK [never reached]"), "{out}");
        }
    }

    // The secrets did their work on the host.
    let copied = f.ssh_ok(HOST, &format!("cat {TEST_DIR}/jsonl-sec-login/copied.txt"));
    assert_eq!(copied.trim(), s.copy);
}

fn check_jsonl_run(run: &Run) {
    let stdout = run.stdout();
    let loop_results = run.results("loop over a secret");
    assert_eq!(loop_results.len(), 4, "two items on two hosts: {stdout}");
    for r in &loop_results {
        assert_eq!(
            (&r["item"], &r["censored"]),
            (&Value::from("None"), &Value::from(true)),
            "{r}"
        );
    }
    for r in run.results("secret file with a diff") {
        assert_eq!(r["status"], "changed", "{r}");
        assert!(r.get("diffs").is_none(), "{r}");
    }
    let become_ = run.results("become worked");
    assert_eq!(become_.len(), 2, "{stdout}");
    assert!(
        become_
            .iter()
            .any(|r| r["host"] == "sec-sudo" && r["status"] == "ok"),
        "{stdout}"
    );
    // Printed on purpose, and still masked.
    let mut shown: Vec<String> = run
        .results("passwords are masked")
        .iter()
        .map(|r| r["output"]["msg"].as_str().unwrap_or_default().to_string())
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        ["login ******** sudo none", "login none sudo ********"],
        "{stdout}"
    );
    let failed = run.results("failing command");
    assert_eq!(failed.len(), 2, "{stdout}");
    for r in failed {
        assert_eq!(
            (&r["status"], &r["censored"]),
            (&Value::from("failed"), &Value::from(true)),
            "{r}"
        );
    }
    assert_eq!(run.stat("sec-login", "failed"), 1, "{stdout}");
    assert_eq!(run.stat("sec-sudo", "failed"), 1, "{stdout}");
}
