//! The scheduled backup job end to end, as the README's "Scheduled backups
//! with systemd" section sets it up: `herd-04` is the backup controller
//! (the herd binary, the fleet key and known_hosts copied in), with a
//! systemd service and timer that back up the volumes of the two Docker
//! hosts `herd-09` and `herd-10`. The test starts the service, starts the
//! same job again while it runs (the lock refuses it, exit 75), checks the
//! archives verify and the metrics show success, then adds `herd-26`, whose
//! Docker daemon is stopped: the run fails, the metrics say so, and an HTTP
//! server on the fleet bridge (the test machine's address there, nothing
//! else) receives the notification.
//!
//! Names of its own everywhere (`herdtest_job_*` volumes,
//! `/backup/herdtest-job`, `/etc/herd-backup`), cleaned before and after.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fleet::{fleet, Fleet};

const CONTROLLER: &str = "herd-04";
const DOCKER: [&str; 2] = ["herd-09", "herd-10"];
const STOPPED: &str = "herd-26";
const BACKUP_DIR: &str = "/backup/herdtest-job";

const PLAYBOOK: &str = "\
- name: Back up Docker volumes
  hosts: docker_hosts
  gather_facts: no
  tasks:
    - name: Hold (tests only, to make a second start overlap this run)
      wait_for:
        path: /run/herdtest-job.hold
        state: absent
        timeout: 60
      when: hold | default(false) | bool

    - name: Archive the volumes
      volume_backup:
        volumes: \"herdtest_job_*\"
        docker_config: false
        backup_dir: /backup/herdtest-job
        keep_last: 7
";

fn service(bridge: &str, port: u16) -> String {
    format!(
        "[Unit]
Description=herd: back up the Docker hosts' volumes
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/herd run /etc/herd-backup/backup.yml \\
    -i /etc/herd-backup/inventory.ini --known-hosts /etc/herd-backup/known_hosts \\
    --lock=/run/lock/herd-backup.lock --job docker-backup \\
    --log-file /var/log/herd-backup.jsonl \\
    --metrics-file /var/lib/node-exporter/herd-backup.prom \\
    --notify http://{bridge}:{port}/hook -e @/etc/herd-backup/vars.yml
"
    )
}

const TIMER: &str = "[Unit]
Description=Nightly Docker volume backup

[Timer]
OnCalendar=*-*-* 02:30
Persistent=true

[Install]
WantedBy=timers.target
";

fn inventory(f: &Fleet, hosts: &[&str]) -> String {
    let mut s = String::from("[docker_hosts]\n");
    for h in hosts {
        s.push_str(&format!("{h} ansible_host={}\n", f.address(h)));
    }
    s.push_str("\n[docker_hosts:vars]\nansible_user=root\nansible_ssh_private_key_file=/etc/herd-backup/id_ed25519\n");
    s
}

/// Write `content` to `path` on `host` (mode `mode`), through ssh's stdin.
fn put(f: &Fleet, host: &str, path: &str, mode: &str, content: &mut dyn Read) {
    let mut child = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", f.known_hosts.display()))
        .arg("-i")
        .arg(&f.key)
        .arg(format!("root@{}", f.address(host)))
        .arg(format!(
            "mkdir -p \"$(dirname {path})\" && cat > {path}.tmp && chmod {mode} {path}.tmp && mv -f {path}.tmp {path}"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::copy(content, &mut stdin).expect("send the file");
    drop(stdin);
    let out = child.wait_with_output().expect("ssh");
    assert!(
        out.status.success(),
        "cannot write {path} on {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn put_text(f: &Fleet, host: &str, path: &str, mode: &str, text: &str) {
    put(f, host, path, mode, &mut text.as_bytes());
}

const DOCKER_CLEANUP: &str = "docker volume rm -f herdtest_job_a herdtest_job_b >/dev/null 2>&1; \
    rm -rf /backup/herdtest-job /run/herdtest-job.hold; true";
const CONTROLLER_CLEANUP: &str = "systemctl disable --now herd-backup.timer >/dev/null 2>&1; \
    systemctl stop herd-backup.service >/dev/null 2>&1; \
    rm -f /etc/systemd/system/herd-backup.service /etc/systemd/system/herd-backup.timer; \
    systemctl daemon-reload; systemctl reset-failed herd-backup.service >/dev/null 2>&1; \
    rm -rf /etc/herd-backup /var/log/herd-backup.jsonl /var/lib/node-exporter/herd-backup.prom \
      /usr/local/bin/herd /run/lock/herd-backup.lock; true";

struct Cleanup<'a>(&'a Fleet);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(CONTROLLER, CONTROLLER_CLEANUP);
        for h in DOCKER {
            let _ = self.0.ssh(h, DOCKER_CLEANUP);
        }
        let _ = self.0.ssh(
            STOPPED,
            "systemctl start docker.socket docker.service; true",
        );
    }
}

/// Wait (bounded) until the service is no longer activating; its Result.
fn wait_service(f: &Fleet) -> String {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let state = f.ssh_ok(
            CONTROLLER,
            "systemctl show -p ActiveState --value herd-backup.service",
        );
        if state.trim() != "activating" {
            return f
                .ssh_ok(
                    CONTROLLER,
                    "systemctl show -p Result --value herd-backup.service",
                )
                .trim()
                .to_string();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("herd-backup.service still running after 180 s");
}

fn metric(text: &str, name: &str) -> String {
    let prefix = format!("{name}{{job=\"docker-backup\"");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .to_string()
}

fn install_controller(f: &Fleet, port: u16) {
    let mut bin = std::fs::File::open(env!("CARGO_BIN_EXE_herd")).expect("the herd binary");
    put(f, CONTROLLER, "/usr/local/bin/herd", "0755", &mut bin);
    let mut key = std::fs::File::open(&f.key).expect("fleet key");
    put(
        f,
        CONTROLLER,
        "/etc/herd-backup/id_ed25519",
        "0600",
        &mut key,
    );
    let mut kh = std::fs::File::open(&f.known_hosts).expect("known_hosts");
    put(
        f,
        CONTROLLER,
        "/etc/herd-backup/known_hosts",
        "0644",
        &mut kh,
    );
    put_text(
        f,
        CONTROLLER,
        "/etc/herd-backup/backup.yml",
        "0644",
        PLAYBOOK,
    );
    put_text(
        f,
        CONTROLLER,
        "/etc/herd-backup/inventory.ini",
        "0644",
        &inventory(f, &DOCKER),
    );
    put_text(
        f,
        CONTROLLER,
        "/etc/herd-backup/vars.yml",
        "0644",
        "hold: true\n",
    );
    put_text(
        f,
        CONTROLLER,
        "/etc/systemd/system/herd-backup.service",
        "0644",
        &service(&f.bridge_address, port),
    );
    put_text(
        f,
        CONTROLLER,
        "/etc/systemd/system/herd-backup.timer",
        "0644",
        TIMER,
    );
    f.ssh_ok(
        CONTROLLER,
        "systemctl daemon-reload && systemctl enable --now herd-backup.timer && \
         systemctl is-active herd-backup.timer && mkdir -p /var/lib/node-exporter",
    );
}

#[test]
fn a_systemd_timer_backs_up_two_docker_hosts_with_lock_metrics_and_notification() {
    let f = fleet();
    std::thread::scope(|s| {
        for h in DOCKER.into_iter().chain([STOPPED]) {
            s.spawn(move || f.ensure_docker(h));
        }
    });
    let _stopped = f.lock(STOPPED);
    let _cleanup = Cleanup(f);
    let _ = f.ssh(CONTROLLER, CONTROLLER_CLEANUP);
    for h in DOCKER {
        f.ssh_ok(h, DOCKER_CLEANUP);
        f.ssh_ok(
            h,
            "set -e; for v in herdtest_job_a herdtest_job_b; do docker volume create $v >/dev/null; \
             docker run --rm --network none -v $v:/data herd/busybox:1 sh -c \"echo $v > /data/name; \
             head -c 100000 /dev/urandom > /data/blob\"; done",
        );
    }
    let (port, notes) = crate::jobs::webhook_on(&f.bridge_address, vec![200; 5]);
    install_controller(f, port);
    let timers = f.ssh_ok(CONTROLLER, "systemctl list-timers --all herd-backup.timer");
    assert!(timers.contains("herd-backup.timer"), "{timers}");

    // The timer's service, held inside its run; a second start of the job
    // meanwhile is refused by the lock.
    f.ssh_ok(DOCKER[0], "touch /run/herdtest-job.hold");
    f.ssh_ok(CONTROLLER, "systemctl start --no-block herd-backup.service");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f
        .ssh_ok(
            CONTROLLER,
            "cat /run/lock/herd-backup.lock 2>/dev/null; true",
        )
        .contains("pid=")
    {
        assert!(Instant::now() < deadline, "the service never took the lock");
        std::thread::sleep(Duration::from_millis(200));
    }
    let main_pid = f.ssh_ok(
        CONTROLLER,
        "systemctl show -p MainPID --value herd-backup.service",
    );
    let second = f.ssh(
        CONTROLLER,
        "/usr/local/bin/herd run /etc/herd-backup/backup.yml -i /etc/herd-backup/inventory.ini \
         --known-hosts /etc/herd-backup/known_hosts --lock=/run/lock/herd-backup.lock --job docker-backup",
    );
    let err = String::from_utf8_lossy(&second.stderr).into_owned();
    assert_eq!(second.status.code(), Some(75), "{err}");
    assert!(
        err.contains(&format!("pid {}", main_pid.trim())),
        "{err} (service pid {main_pid})"
    );
    f.ssh_ok(DOCKER[0], "rm -f /run/herdtest-job.hold");
    assert_eq!(wait_service(f), "success");

    // The archives verify, the metrics say success, the log has the backups.
    for h in DOCKER {
        let listing = f.ssh_ok(
            h,
            &format!("cd {BACKUP_DIR} && sha256sum -c manifest_*.sha256"),
        );
        assert_eq!(listing.matches(": OK").count(), 2, "{h}: {listing}");
    }
    let prom = f.ssh_ok(CONTROLLER, "cat /var/lib/node-exporter/herd-backup.prom");
    assert_eq!(metric(&prom, "herd_job_last_run_success"), "1", "{prom}");
    let log = f.ssh_ok(CONTROLLER, "cat /var/log/herd-backup.jsonl");
    let backups: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "backup")
        .collect();
    assert_eq!(backups.len(), 2, "{log}");
    for b in &backups {
        assert_eq!(b["archives"].as_array().map(Vec::len), Some(2), "{b}");
        assert_eq!(
            b["archives"][0]["sha256"].as_str().map(str::len),
            Some(64),
            "{b}"
        );
    }
    assert!(notes.try_recv().is_err(), "no notification for a success");

    // A Docker host whose daemon is stopped: the run fails, the metrics
    // say so, and the notification arrives.
    f.ssh_ok(STOPPED, "systemctl stop docker.socket docker.service");
    let mut hosts = DOCKER.to_vec();
    hosts.push(STOPPED);
    put_text(
        f,
        CONTROLLER,
        "/etc/herd-backup/inventory.ini",
        "0644",
        &inventory(f, &hosts),
    );
    put_text(
        f,
        CONTROLLER,
        "/etc/herd-backup/vars.yml",
        "0644",
        "hold: false\n",
    );
    let failed = f.ssh(CONTROLLER, "systemctl start herd-backup.service");
    assert!(!failed.status.success(), "the service reports the failure");
    assert_eq!(wait_service(f), "exit-code");
    let prom = f.ssh_ok(CONTROLLER, "cat /var/lib/node-exporter/herd-backup.prom");
    assert_eq!(metric(&prom, "herd_job_last_run_success"), "0", "{prom}");
    assert_eq!(metric(&prom, "herd_job_last_run_exit_code"), "2", "{prom}");
    assert!(
        prom.contains("herd_job_last_run_hosts{job=\"docker-backup\",status=\"failed\"} 1"),
        "{prom}"
    );
    let note = notes
        .recv_timeout(Duration::from_secs(30))
        .expect("the notification");
    assert_eq!(note["job"], "docker-backup");
    assert_eq!(note["status"], "failed");
    assert_eq!(note["hosts"]["failed"], serde_json::json!([STOPPED]));
    assert_eq!(note["failed_tasks"][0]["host"], STOPPED);
    assert!(
        note["failed_tasks"][0]["msg"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{note}"
    );
}
