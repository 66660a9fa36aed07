//! `playbooks/bootstrap-node.yml` from a fresh node, with the commands of
//! the README's "Bootstrapping a new node" section: `herd-27` is made fresh
//! over its console (no SSH): root logs in with a password only, no
//! `deploy` user, no keys, and herd gets a known_hosts file that has never
//! seen the host. `herd-28` is a one-node Elasticsearch cluster, master and
//! data (the stand-in of `tests/fleet/es-standin/`, set up with the same
//! inventory and `elasticsearch-cluster.yml`); the new node makes it green.
//!
//! 1. A bootstrap with a sudoers line visudo refuses fails before sshd is
//!    touched, says which variable to fix, and the node still takes the root
//!    password; its host key was recorded on first contact.
//! 2. The bootstrap as the README gives it: afterwards sshd refuses
//!    passwords and root (even with a key), `deploy` logs in with its key
//!    and has sudo, Docker runs, the node is in the cluster.
//! 3. A second run changes nothing.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::fleet::{fleet, Fleet};
use crate::support::{repo, write_files, Herd};

const NEW: &str = "herd-27";
const MASTER: &str = "herd-28";
const VERSION: &str = "8.11.1";
const CLUSTER: &str = "herdtest-bootstrap";
const ROOT_PASSWORD: &str = "herdtest-root-pw";
const VAULT_PASSWORD: &str = "herdtest-vault-pw";

/// The node as a provider hands it over: root with a password and nothing
/// else (what an earlier run of this test left is taken away again).
const FRESH: &str = "set -e
systemctl stop elasticsearch 2>/dev/null || true
systemctl disable elasticsearch 2>/dev/null || true
rm -rf /opt/elasticsearch-* /opt/.herd-es.* /var/lib/elasticsearch /var/log/elasticsearch \
  /etc/systemd/system/elasticsearch.service /etc/sysctl.d/60-elasticsearch.conf
userdel elasticsearch 2>/dev/null || true
rm -f /etc/sysctl.d/60-herd.conf
systemctl daemon-reload
userdel -r deploy 2>/dev/null || true
rm -f /etc/sudoers.d/herd /etc/sudoers.d/90-deploy /etc/ssh/sshd_config.d/00-hardening.conf
rm -f /root/.ssh/authorized_keys
echo 'root:herdtest-root-pw' | chpasswd
cat >/etc/ssh/sshd_config.d/herd.conf <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin yes
PasswordAuthentication yes
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
EOF
# The fleet's Elasticsearch stand-in only warns about the container's limits.
echo 'limit_checks = warn' >/etc/es-standin.conf
systemctl reload ssh";

/// Back to a fleet host like the others (root's key, deploy with sudo), so
/// a later test run starts from the same place.
const RESTORE: &str = "set -e
systemctl stop elasticsearch 2>/dev/null || true
rm -f /etc/ssh/sshd_config.d/00-hardening.conf
sed -i 's/^PermitRootLogin yes/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config.d/herd.conf
systemctl reload ssh";

const MASTER_CLEAN: &str =
    "systemctl stop elasticsearch 2>/dev/null; systemctl disable elasticsearch 2>/dev/null; \
    rm -rf /opt/elasticsearch-* /opt/.herd-es.* /var/lib/elasticsearch /var/log/elasticsearch \
    /etc/systemd/system/elasticsearch.service /etc/sysctl.d/60-elasticsearch.conf /etc/es-standin.conf; \
    systemctl daemon-reload; userdel elasticsearch 2>/dev/null; true";

/// Puts both hosts back when dropped, even after a failed assertion.
struct Cleanup<'a>(&'a Fleet, PathBuf);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(MASTER, MASTER_CLEAN);
        let key = std::fs::read_to_string(self.1.with_extension("pub")).unwrap_or_default();
        let _ = self.0.console(
            NEW,
            &format!(
                "{RESTORE}\ninstall -d -m 0700 /root/.ssh\nprintf '%s' '{}' >/root/.ssh/authorized_keys\n\
                 chmod 0600 /root/.ssh/authorized_keys\nrm -rf /opt/elasticsearch-* /var/lib/elasticsearch",
                key.trim_end().replace('\'', "")
            ),
        );
    }
}

/// The README section's shell block: the commands, continuation lines
/// joined.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("## Bootstrapping a new node\n")
        .nth(1)
        .expect("the README has a section `Bootstrapping a new node`");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in the section");
    block
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A README command as herd arguments, its placeholders pointed at this
/// test's files (the words are plain: no quoting in the README commands).
fn herd_args(command: &str, files: &[(&str, String)]) -> Vec<String> {
    let mut text = command.to_string();
    for (from, to) in files {
        text = text.replace(from, to);
    }
    let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    assert_eq!(words.first().map(String::as_str), Some("herd"), "{command}");
    words.remove(0);
    words
}

/// The README's inventory with this fleet's addresses and key.
fn inventory(f: &Fleet, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("inventories/bootstrap-node.ini"))
        .expect("inventories/bootstrap-node.ini")
        .replace("10.77.0.37", f.address(NEW))
        .replace("10.77.0.38", f.address(MASTER))
        .replace("/run/herd-fleet/id_ed25519", &f.key.display().to_string());
    write_files(dir, &[("bootstrap-node.ini", &text)]);
    dir.join("bootstrap-node.ini")
}

fn served_dir(name: &str) -> PathBuf {
    let cache =
        std::env::var("HERD_FLEET_CACHE").unwrap_or_else(|_| "/var/cache/herd-fleet".into());
    let dir = PathBuf::from(cache).join("repo").join(name);
    std::fs::create_dir_all(&dir).expect("create served dir");
    dir
}

/// The stand-in packaged as an Elasticsearch tarball, served from the
/// fleet's repository; the `-e` variables that point the playbook at it.
fn es_vars(f: &Fleet) -> serde_json::Value {
    let served = served_dir(CLUSTER);
    let tarball = served.join(format!("elasticsearch-{VERSION}-linux-x86_64.tar.gz"));
    let status = std::process::Command::new(repo().join("tests/fleet/es-standin/build.sh"))
        .arg(VERSION)
        .arg(&tarball)
        .status()
        .expect("build.sh");
    assert!(status.success(), "packaging the stand-in failed");
    let out = std::process::Command::new("sha512sum")
        .arg(&tarball)
        .output()
        .expect("sha512sum");
    let sum = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    json!({
        "es_cluster_name": CLUSTER,
        "es_version": VERSION,
        "es_url": format!("{}/{CLUSTER}/elasticsearch-{VERSION}-linux-x86_64.tar.gz",
            f.repo_url.trim_end_matches('/')),
        "es_checksum": format!("sha512:{sum}"),
        "es_heap": "256m",
        "bootstrap_packages": ["python3"],
    })
}

/// `ssh USER@new-node COMMAND` with the system ssh client, key only, the
/// host key checked against the known_hosts file herd wrote.
fn ssh_as(f: &Fleet, user: &str, known_hosts: &Path, command: &str) -> std::process::Output {
    std::process::Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(&f.key)
        .arg(format!("{user}@{}", f.address(NEW)))
        .arg(command)
        .output()
        .expect("ssh")
}

/// A one-task ping of the new node as root with the vault's password.
fn root_password_ping(dir: &Path, inv: &Path, known_hosts: &Path) -> crate::support::Run {
    write_files(
        dir,
        &[(
            "ping.yml",
            "- hosts: new_nodes\n  gather_facts: no\n  tasks:\n    - include_vars: root-password.yml\n      no_log: true\n    - ping:\n",
        )],
    );
    Herd::play()
        .playbook(dir.join("ping.yml"))
        .inventory(inv)
        .known_hosts(known_hosts)
        .limit("new-node")
        .option("--vault-password-file", dir.join("vault-pass"))
        .jsonl()
        .current_dir(dir)
        .run()
}

// One fleet scenario, step by step: tests are exempt from the 150-line limit.
#[allow(clippy::too_many_lines)]
#[test]
fn bootstrap_node_takes_a_root_password_host_to_a_hardened_cluster_node() {
    let f = fleet();
    let _locks = (f.lock(NEW), f.lock(MASTER));
    let _cleanup = Cleanup(f, f.key.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    f.console_ok(NEW, FRESH);

    // The one-master cluster the node joins, with the same inventory.
    let inv = inventory(f, d);
    let vars = es_vars(f);
    f.ssh_ok(MASTER, MASTER_CLEAN);
    f.ssh_ok(
        MASTER,
        "echo 'limit_checks = warn' > /etc/es-standin.conf; command -v python3 >/dev/null || \
         { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; }",
    );
    // Alone, its shards have no second data node to replicate to: yellow.
    f.herd()
        .example("playbooks/elasticsearch-cluster.yml")
        .inventory(&inv)
        .limit("es-master")
        .vars(&vars)
        .vars("es_wait_for_status=yellow")
        .run()
        .expect_code(0);

    // The README's commands, with this test's files.
    write_files(
        d,
        &[
            ("vault-pass", &format!("{VAULT_PASSWORD}\n")),
            (
                "root-password.yml",
                &format!("ansible_password: {ROOT_PASSWORD}\n"),
            ),
        ],
    );
    let known_hosts = d.join("known_hosts");
    let files = [
        ("~/.vault-pass", d.join("vault-pass").display().to_string()),
        ("$HOME/.ssh/id_ed25519", f.key.display().to_string()),
        ("inventories/bootstrap-node.ini", inv.display().to_string()),
        (
            "root-password.yml",
            d.join("root-password.yml").display().to_string(),
        ),
    ];
    let commands = readme_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    // In the repository, as the README's paths are.
    Herd::new(herd_args(&commands[0], &files))
        .run()
        .expect_code(0);
    assert!(std::fs::read_to_string(d.join("root-password.yml"))
        .expect("vault file")
        .starts_with("$ANSIBLE_VAULT;1.1;AES256"));
    let bootstrap = Herd::new(herd_args(&commands[1], &files))
        .known_hosts(&known_hosts)
        .jsonl()
        .vars(&vars);

    // 1. A sudoers line visudo refuses: the run stops there and says what
    // to fix; sshd is untouched and root's password still works.
    let r = bootstrap
        .vars(json!({"deploy_sudoers": "deploy ALL=(ALL NOPASSWD ALL"}))
        .run()
        .expect_code(2);
    assert_eq!(r.stat("new-node", "failed"), 1, "{}", r.stdout());
    let why = r.result("Say what to fix", "new-node");
    let msg = why["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("visudo") && msg.contains("fix deploy_sudoers"),
        "{msg}"
    );
    let kh = std::fs::read_to_string(&known_hosts).expect("known_hosts written");
    assert!(
        kh.contains(f.address(NEW)) && kh.contains("ssh-ed25519"),
        "first contact recorded the host key: {kh}"
    );
    assert_eq!(
        f.console_ok(
            NEW,
            "ls /etc/sudoers.d /etc/ssh/sshd_config.d | tr '\\n' ' '"
        )
        .split_whitespace()
        .filter(|n| n.contains("deploy") || n.contains("hardening"))
        .count(),
        0,
        "nothing installed"
    );
    root_password_ping(d, &inv, &known_hosts).expect_code(0);

    // 2. The bootstrap as the README gives it.
    let r = bootstrap.run().expect_code(0);
    assert!(r.stat("new-node", "changed") > 5, "{}", r.stdout());
    let effective = f.console_ok(
        NEW,
        "sshd -T | grep -Ei '^(passwordauthentication|permitrootlogin) '",
    );
    assert!(
        effective.contains("passwordauthentication no") && effective.contains("permitrootlogin no"),
        "{effective}"
    );
    // Password logins are refused (the server no longer offers them)...
    let r = root_password_ping(d, &inv, &known_hosts);
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert_eq!(r.stat("new-node", "unreachable"), 1, "{}", r.stdout());
    // ... and so is root with a key it has authorized.
    f.console_ok(
        NEW,
        &format!(
            "install -d -m 0700 /root/.ssh && printf '%s\\n' '{}' >/root/.ssh/authorized_keys",
            std::fs::read_to_string(f.key.with_extension("pub"))
                .expect("public key")
                .trim_end()
        ),
    );
    let root = ssh_as(f, "root", &known_hosts, "true");
    assert!(!root.status.success(), "root logged in");
    // deploy logs in with its key (the host key herd recorded checks out)
    // and has sudo.
    let deploy = ssh_as(f, "deploy", &known_hosts, "id -un; sudo -n id -un");
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&deploy.stdout), "deploy\nroot\n");
    assert_eq!(
        f.console_ok(NEW, "systemctl is-active docker").trim(),
        "active"
    );
    let nodes = f.ssh_ok(
        MASTER,
        &format!(
            "curl -s -m 10 'http://{}:9200/_cat/nodes?h=name'",
            f.address(MASTER)
        ),
    );
    let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["es-master", "new-node"], "the cluster's nodes");

    // 3. Converged: the second run logs in as deploy and changes nothing.
    let r = bootstrap.run().expect_code(0);
    assert_eq!(r.stat("new-node", "changed"), 0, "{}", r.stdout());
    assert_eq!(r.stat("new-node", "unreachable"), 0, "{}", r.stdout());
}
