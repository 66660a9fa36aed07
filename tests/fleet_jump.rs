//! ProxyJump on the test fleet: herd-01 is the bastion and herd-02..04 are
//! reached only through it. The targets must see the bastion as their
//! client, and the bastion must carry all three over ONE connection from
//! the controller (one sshd session forwarding three channels).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::fleet::{fleet, Fleet, Inventory};
use crate::support::{write_files, Run};

const BASTION: &str = "herd-01";
const TARGETS: [&str; 3] = ["herd-02", "herd-03", "herd-04"];
const TEST_DIR: &str = "/tmp/herd-jump-test";

/// The tests here count the bastion's connections, so they take turns.
fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Each target spells the jump differently; all three name the same
/// bastion, so they must share it.
fn behind(f: &Fleet) -> Inventory<'_> {
    let bastion = f.address(BASTION);
    let jumps = [
        format!("'-o ProxyJump=root@{bastion}'"),
        format!("'-J root@{bastion}'"),
        format!("'-o ProxyJump=ssh://root@{bastion}:22 -o ConnectTimeout=5'"),
    ];
    TARGETS
        .iter()
        .zip(jumps)
        .fold(f.inventory().group("behind"), |inv, (host, jump)| {
            let vars = format!("ansible_ssh_common_args={jump}");
            inv.root(&format!("j-{host}"), host, &vars)
        })
}

/// (sshd pid, local address, peer address) of established TCP connections
/// on `host` matching the `ss` filter.
fn connections(f: &Fleet, host: &str, filter: &str) -> Vec<(String, String, String)> {
    let out = f.ssh_ok(host, &format!("ss -Htnp state established '{filter}'"));
    out.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let pid = l.split("pid=").nth(1)?.split(',').next()?.to_string();
            Some((pid, cols.get(2)?.to_string(), cols.get(3)?.to_string()))
        })
        .collect()
}

#[test]
fn targets_behind_a_bastion_share_one_connection_to_it() {
    let _turn = serial();
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = behind(f).write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[(
            "play.yml",
            &format!(
                "- hosts: behind\n  gather_facts: no\n  tasks:\n    - name: through\n      shell: mkdir -p {TEST_DIR} && echo \"$SSH_CONNECTION\" > {TEST_DIR}/ssh_connection && sleep 4\n"
            ),
        )],
    );
    let bastion = f.address(BASTION).to_string();
    let target_addrs: BTreeSet<String> = TARGETS
        .iter()
        .map(|h| format!("{}:22", f.address(h)))
        .collect();

    let command = f
        .herd()
        .playbook("play.yml")
        .inventory(&inv)
        .args(["--host-key-checking", "strict"])
        .current_dir(dir.path());
    let runner = std::thread::spawn(move || command.run());
    // While the targets sleep, look at the bastion: its sshd connections
    // to the targets' port 22. Bounded: 25 s.
    let started = Instant::now();
    let mut forwarded = Vec::new();
    while started.elapsed() < Duration::from_secs(25) {
        forwarded = connections(f, BASTION, "( dport = :22 )")
            .into_iter()
            .filter(|(_, local, peer)| {
                local.starts_with(&format!("{bastion}:")) && target_addrs.contains(peer)
            })
            .collect();
        if forwarded.len() >= TARGETS.len() || runner.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // The controller's connection to the bastion, by the pid of the sshd
    // that forwards (a check ssh like ours is another pid).
    let inbound = connections(f, BASTION, "( sport = :22 )");
    let run: Run = runner.join().expect("runner thread").expect_code(0);
    assert_eq!(run.results("through").len(), 3, "{}", run.stdout());

    assert_eq!(
        forwarded.len(),
        TARGETS.len(),
        "one forwarded connection per target: {forwarded:?}"
    );
    let pids: BTreeSet<&str> = forwarded.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        pids.len(),
        1,
        "all targets through one bastion session: {forwarded:?}"
    );
    let pid = pids.into_iter().next().unwrap_or_default();
    let carriers: Vec<_> = inbound.iter().filter(|(p, _, _)| p == pid).collect();
    assert_eq!(
        carriers.len(),
        1,
        "one controller connection carries them: {inbound:?}"
    );
    assert!(
        carriers[0]
            .2
            .starts_with(&format!("{}:", fleet().bridge_address)),
        "from the controller: {carriers:?}"
    );

    // Each target saw the bastion as its client.
    for host in TARGETS {
        let conn = f.ssh_ok(host, &format!("cat {TEST_DIR}/ssh_connection"));
        let client = conn.split_whitespace().next().unwrap_or_default();
        assert_eq!(client, bastion, "{host}: SSH_CONNECTION={conn}");
    }
}

#[test]
fn a_target_the_bastion_cannot_reach_is_unreachable_and_the_others_run() {
    let _turn = serial();
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 1 on herd-02 is closed: the bastion refuses the channel.
    let closed = format!(
        "ansible_port=1 ansible_ssh_common_args='-J root@{}'",
        f.address(BASTION)
    );
    let inv = behind(f)
        .root("closed", "herd-02", &closed)
        .write(dir.path(), "inventory.ini");
    write_files(
        dir.path(),
        &[(
            "play.yml",
            "- hosts: behind\n  gather_facts: no\n  tasks:\n    - name: ping\n      command: 'true'\n",
        )],
    );
    let run = f
        .herd()
        .playbook("play.yml")
        .inventory(&inv)
        .args(["--host-key-checking", "strict"])
        .current_dir(dir.path())
        .run()
        .expect_code(4);
    assert_eq!(run.stat("closed", "unreachable"), 1, "{}", run.stdout());
    for host in TARGETS {
        assert_eq!(run.stat(&format!("j-{host}"), "ok"), 1, "{}", run.stdout());
    }
}
