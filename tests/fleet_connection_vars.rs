//! Task-level connection settings against ansible-playbook on a real host
//! (`herd-05`, read only: every task is `raw: id -un`): the `remote_user`
//! keyword on tasks, blocks and the play (over `-u`), `ansible_user` and
//! the become variables in task `vars`, `include_vars` and `set_fact`,
//! `meta: reset_connection`, the `port` keyword between `ansible_port` and
//! ansible.cfg's `remote_port` (2999, where nothing listens), and a
//! delegate's user from its inventory and from task `vars` (a delegate
//! takes its port from its own variables or ansible.cfg, never from the
//! `port` keyword). Both tools run the same playbook; the users
//! each task ran as must be the same, and are what ansible-core 2.18 gave
//! when this test was written ([`ANSIBLE_USERS`]).

use std::path::Path;
use std::process::Command;

use crate::support::fleet::{fleet, Fleet};
use crate::support::{write_files, Herd};

const HOST: &str = "herd-05";
const DEFAULT_ANSIBLE: &str = "/var/cache/herd-bench/venv/bin/ansible-playbook";

const PLAYBOOK: &str = r#"- hosts: target
  gather_facts: no
  remote_user: root
  port: 22
  tasks:
    - name: play keyword over -u
      raw: id -un
      register: a
    - name: task keyword
      raw: id -un
      remote_user: deploy
      register: b
    - name: block
      remote_user: deploy
      block:
        - name: block keyword
          raw: id -un
          register: c
        - name: task variable over the keyword
          raw: id -un
          vars:
            ansible_user: deploy_pw
          register: d
    - name: include_vars
      include_vars: conn.yml
    - name: included variable over the play keyword
      raw: id -un
      register: e
    - name: included variable over a task variable
      raw: id -un
      vars:
        ansible_user: root
      register: f
    - name: set_fact
      set_fact:
        ansible_user: root
    - name: fact over the included variable
      raw: id -un
      register: g
    - name: become from task variables
      raw: id -un
      vars:
        ansible_become: true
        ansible_become_user: deploy
      register: h
    - name: switch to a user whose sudo asks for its password
      set_fact:
        ansible_user: deploy_pw
        ansible_become_password: deploy_pw
    - meta: reset_connection
    - name: after reset_connection
      raw: id -un
      register: i
    - name: become with the password from set_fact
      raw: id -un
      become: true
      register: j
    - name: delegated, the delegate's inventory user
      raw: id -un
      delegate_to: helper
      register: k
    - name: delegated, a task variable reaches the delegate
      raw: id -un
      delegate_to: helper
      vars:
        ansible_user: root
      register: l
    - name: ansible_port over the task's port
      raw: id -un
      port: 2999
      vars:
        ansible_port: 22
      register: m
    - name: task port over the play's
      raw: id -un
      port: 2999
      ignore_unreachable: true
      register: n
    - name: delegated, the play's port does not reach the delegate
      raw: id -un
      delegate_to: helper_no_port
      ignore_unreachable: true
      register: o
    - name: users
      debug:
        msg: "{{ [a, b, c, d, e, f, g, h, i, j, k, l, m] | map(attribute='stdout') | map('trim') | map('replace', 'deploy_pw', 'deploy-pw') | join(' ') }} {{ n.unreachable | default(false) }} {{ o.unreachable | default(false) }}"
"#;

/// The users ansible-playbook 2.18 ran tasks `a`..`m` as, then whether
/// `n` and `o` were unreachable (`deploy_pw` is
/// also that user's password, which herd would censor in the output, so
/// the playbook prints it as `deploy-pw`).
const ANSIBLE_USERS: &str =
    "root deploy deploy deploy-pw deploy deploy root deploy deploy-pw root deploy root deploy-pw True True";

fn setup(f: &Fleet, dir: &Path) {
    let inventory = format!(
        "target ansible_host={addr} ansible_ssh_private_key_file={key}\n\
         helper ansible_host={addr} ansible_ssh_private_key_file={key} ansible_user=deploy \
         ansible_port=22\n\
         helper_no_port ansible_host={addr} ansible_ssh_private_key_file={key}\n",
        addr = f.address(HOST),
        key = f.key.display()
    );
    let cfg = format!(
        "[defaults]\nhost_key_checking = True\nretry_files_enabled = False\nremote_port = 2999\n\n\
         [ssh_connection]\nssh_args = -o ControlMaster=auto -o ControlPersist=60s \
         -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o ConnectTimeout=10\n\
         control_path_dir = {}\n",
        f.known_hosts.display(),
        dir.join("cp").display()
    );
    write_files(
        dir,
        &[
            ("inventory.ini", &inventory),
            ("site.yml", PLAYBOOK),
            ("conn.yml", "ansible_user: deploy\n"),
            ("ansible.cfg", &cfg),
        ],
    );
}

fn herd_users(f: &Fleet, dir: &Path) -> String {
    let r = Herd::play()
        .playbook("site.yml")
        .inventory("inventory.ini")
        .known_hosts(&f.known_hosts)
        .args(["-u", "deploy_pw"])
        .jsonl()
        .current_dir(dir)
        .run()
        .expect_code(0);
    r.result("users", "target")["output"]["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ansible_users(dir: &Path) -> String {
    let ansible = std::env::var("HERD_ANSIBLE_PLAYBOOK").unwrap_or_else(|_| DEFAULT_ANSIBLE.into());
    assert!(
        Path::new(&ansible).is_file(),
        "ansible-playbook not found at {ansible}: run bench/setup-ansible.sh or set HERD_ANSIBLE_PLAYBOOK"
    );
    let out = Command::new("timeout")
        .args([
            "300",
            &ansible,
            "-i",
            "inventory.ini",
            "site.yml",
            "-u",
            "deploy_pw",
        ])
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(dir)
        .output()
        .expect("ansible-playbook");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"msg\": \""))
        .map(|m| m.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("no msg in:\n{stdout}"))
}

#[test]
fn task_connection_settings_pick_the_same_users_as_ansible() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    setup(f, dir.path());
    assert_eq!(herd_users(f, dir.path()), ANSIBLE_USERS);
    assert_eq!(ansible_users(dir.path()), ANSIBLE_USERS);
}
