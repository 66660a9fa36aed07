//! `herd inventory --list` against the real `ansible-inventory --list`
//! (ansible-core from PyPI, installed by `bench/setup-ansible.sh`): the same
//! JSON for every fixture inventory and the repo's example inventories.
//! A missing ansible-inventory fails the test; it is never skipped.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::{repo, Herd};

/// `HERD_ANSIBLE_INVENTORY`, else beside `HERD_ANSIBLE_PLAYBOOK`, else the
/// venv `bench/setup-ansible.sh` makes.
fn ansible_inventory() -> PathBuf {
    if let Ok(p) = std::env::var("HERD_ANSIBLE_INVENTORY") {
        return PathBuf::from(p);
    }
    let playbook = std::env::var("HERD_ANSIBLE_PLAYBOOK")
        .unwrap_or_else(|_| "/var/cache/herd-bench/venv/bin/ansible-playbook".into());
    PathBuf::from(playbook).with_file_name("ansible-inventory")
}

#[test]
fn inventory_list_matches_ansible_inventory() {
    let ansible = ansible_inventory();
    assert!(
        ansible.exists(),
        "{} is missing: run bench/setup-ansible.sh (or set HERD_ANSIBLE_INVENTORY)",
        ansible.display()
    );
    let mut sources: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/inventory/ok"))
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    sources.sort();
    sources.push(repo().join("inventories/elasticsearch.ini"));
    sources.push(repo().join("inventories/local.ini"));
    for source in sources {
        let theirs = Command::new(&ansible)
            .arg("-i")
            .arg(&source)
            .arg("--list")
            .env("ANSIBLE_LOCALHOST_WARNING", "false")
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
            .output()
            .expect("run ansible-inventory");
        assert!(
            theirs.status.success(),
            "ansible-inventory failed on {}: {}",
            source.display(),
            String::from_utf8_lossy(&theirs.stderr)
        );
        let theirs: Value = serde_json::from_slice(&theirs.stdout).expect("ansible json");
        let ours = Herd::new([
            "inventory".to_string(),
            "-i".into(),
            source.display().to_string(),
            "--list".into(),
        ])
        .run()
        .expect_code(0);
        let ours: Value = serde_json::from_str(&ours.stdout()).expect("herd json");
        assert_eq!(ours, theirs, "inventory {}", source.display());
    }
}
