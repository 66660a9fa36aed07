//! Real public Ansible projects (the corpus in `../shared/corpus/cases`,
//! beside the repository; test input, never copied in) run end to end on
//! fleet hosts under ansible-playbook and under herd from the same fresh
//! state, and leave the same state behind: packages (`dpkg-query`), users
//! and groups (`getent`), services enabled and running (`systemctl`), and
//! kind, mode, owner, group, link target and sha256 of every file under
//! the paths the case manages. Both tools change as many tasks on a first
//! run and on a second.
//!
//! Each case gets two fleet hosts of its own (ansible on one, herd on the
//! other; hosts are overlays over one base, so two fresh hosts start
//! identical), so the cases run side by side, and each tool's run of a
//! case runs beside the other's. The inventories are written here, one
//! host named as in the case's own inventory, in the group its plays
//! target; the case's own addresses are never contacted. The case is run
//! from its own directory, unedited; what a case needs from Debian beyond
//! that (a group a RedHat-minded play assumes) is done on both hosts
//! first, and said in `modules/COMPATIBILITY.md`.
//!
//! A missing corpus fails the test and says where it was looked for
//! (`HERD_CORPUS` names another place for a checkout that is not beside
//! it).

use std::path::{Path, PathBuf};

use crate::support::ansible::{ansible_cfg, require_collection, run_ansible, INSTALL_PYTHON};
use crate::support::fleet::fleet;
use crate::support::state::{assert_same_state, snapshot, ACCOUNT_FILES};
use crate::support::{repo, write_files};

/// One corpus case and what the comparison needs to know about it.
struct Case {
    /// Its directory under `cases/`; its `entry` file names the playbook.
    name: &'static str,
    /// The inventory name both tools use (the case inventory's first).
    host: &'static str,
    /// The group the case's plays target, `None` for `hosts: all`.
    group: Option<&'static str>,
    ansible_host: &'static str,
    herd_host: &'static str,
    /// `-e` arguments, the same for both tools.
    extra_vars: &'static [&'static str],
    /// Shell run on both hosts before either tool runs.
    prepare: &'static str,
    /// The paths whose files are compared.
    paths: &'static [&'static str],
    /// Collections the case's modules come from (Ansible needs them).
    collections: &'static [&'static str],
    /// The case reads `~/.ssh/id_rsa.pub` on the controller: both tools
    /// run with `HOME` at a temp dir holding the fleet's public key there.
    reads_home_key: bool,
}

/// The corpus's cases directory: `../shared/corpus/cases` from the
/// repository root, or `$HERD_CORPUS/cases` for a checkout kept elsewhere
/// (a worktree); fails (never skips) when it is missing.
fn corpus() -> PathBuf {
    let root = std::env::var_os("HERD_CORPUS")
        .map_or_else(|| repo().join("../shared/corpus"), PathBuf::from);
    let dir = root.join("cases");
    assert!(
        dir.is_dir(),
        "the Ansible corpus is missing: no directory {} (the corpus lives beside the repository, \
         at ../shared/corpus, in CI as here)",
        dir.display()
    );
    dir
}

/// The playbook a case runs: the first line of its `entry` file.
fn entry_playbook(case_dir: &Path) -> PathBuf {
    let entry = case_dir.join("entry");
    let text = std::fs::read_to_string(&entry)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", entry.display()));
    let first = text.lines().next().unwrap_or_default().trim();
    assert!(!first.is_empty(), "{} names no playbook", entry.display());
    case_dir.join(first)
}

fn run_case(case: &Case) {
    let case_dir = corpus().join(case.name);
    let playbook = entry_playbook(&case_dir);
    for c in case.collections {
        require_collection(c);
    }
    let f = fleet();
    // Always in this order, so two tests taking both locks cannot deadlock.
    let _ansible_host = f.lock(case.ansible_host);
    let _herd_host = f.lock(case.herd_host);
    let dir = tempfile::tempdir().expect("tempdir");

    // The same start on both hosts: python3 (ansible needs it; installed
    // on both so the package lists compare) and the case's preparation.
    for host in [case.ansible_host, case.herd_host] {
        f.ssh_ok(host, INSTALL_PYTHON);
        if !case.prepare.is_empty() {
            f.ssh_ok(host, case.prepare);
        }
    }

    let inventory = |fleet_host| {
        let inv = f.inventory();
        let inv = match case.group {
            Some(group) => inv.group(group),
            None => inv,
        };
        inv.root(case.host, fleet_host, "")
    };
    let ansible_inv = inventory(case.ansible_host).write(dir.path(), "ansible.ini");
    let herd_inv = inventory(case.herd_host).write(dir.path(), "herd.ini");
    let cfg = ansible_cfg(f, dir.path(), "implicit");
    let extra: Vec<String> = case
        .extra_vars
        .iter()
        .flat_map(|v| ["-e".to_string(), (*v).to_string()])
        .collect();
    let mut env = Vec::new();
    if case.reads_home_key {
        let home = dir.path().join("home");
        let key = std::fs::read_to_string(f.key.with_extension("pub")).expect("fleet public key");
        write_files(&home, &[(".ssh/id_rsa.pub", &key)]);
        env.push(("HOME", home));
    }
    let mut herd = f
        .herd()
        .inventory(&herd_inv)
        .args(&extra)
        .playbook(&playbook)
        .current_dir(&case_dir);
    for (k, v) in &env {
        herd = herd.env(k, v);
    }
    let ansible = || {
        run_ansible(
            &cfg,
            &ansible_inv,
            &playbook,
            &case_dir,
            &extra,
            &env,
            case.host,
        )
    };
    let herd_run = || herd.run().expect_code(0).stat(case.host, "changed");

    // Each tool on its own host, both at once.
    let both = || {
        std::thread::scope(|s| {
            let a = s.spawn(ansible);
            let h = herd_run();
            (a.join().expect("ansible run panicked"), h)
        })
    };
    let (ansible_first, herd_first) = both();
    assert_eq!(
        herd_first, ansible_first,
        "{}: a first run changes as many tasks with herd as with ansible",
        case.name
    );
    let (ansible_second, herd_second) = both();
    assert_eq!(
        herd_second, ansible_second,
        "{}: a second run changes as many tasks with herd as with ansible",
        case.name
    );

    let by_ansible = snapshot(case.ansible_host, case.paths);
    assert!(
        by_ansible.contains("ii  python3 "),
        "{}: the state listing looks empty:\n{by_ansible}",
        case.name
    );
    assert_same_state(case.name, case.ansible_host, case.herd_host, case.paths);
}

#[test]
fn corpus_conditionals_part2_runs_the_same_with_ansible_and_herd() {
    run_case(&Case {
        name: "ex-lf-conditionals-part2",
        host: "web1",
        group: None,
        ansible_host: "herd-31",
        herd_host: "herd-32",
        extra_vars: &[],
        prepare: "",
        paths: &[],
        collections: &[],
        reads_home_key: false,
    });
}

#[test]
fn corpus_loop_nested_runs_the_same_with_ansible_and_herd() {
    run_case(&Case {
        name: "ex-lf-loop-nested",
        host: "web1",
        group: None,
        ansible_host: "herd-33",
        herd_host: "herd-34",
        extra_vars: &[],
        prepare: "",
        paths: &[],
        collections: &[],
        reads_home_key: false,
    });
}

#[test]
fn corpus_user_commands_runs_the_same_with_ansible_and_herd() {
    run_case(&Case {
        name: "ex-lf-user-commands",
        host: "web1",
        group: None,
        ansible_host: "herd-35",
        herd_host: "herd-36",
        extra_vars: &[],
        // The play adds its user to `wheel`, which RedHat has and Debian
        // has not: both tools fail there without it.
        prepare: "getent group wheel >/dev/null || groupadd wheel",
        paths: ACCOUNT_FILES,
        collections: &[],
        reads_home_key: false,
    });
}

#[test]
fn corpus_do_setup_runs_the_same_with_ansible_and_herd() {
    run_case(&Case {
        name: "do-setup",
        host: "server1",
        group: Some("servers"),
        ansible_host: "herd-37",
        herd_host: "herd-38",
        extra_vars: &[],
        // Ansible's apt module needs python3-apt on the host (it installs
        // it itself otherwise, on its host only).
        prepare: "DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq python3-apt >/dev/null",
        paths: &[
            "/etc/passwd",
            "/etc/group",
            "/etc/shadow",
            "/etc/gshadow",
            "/home",
            "/etc/sudoers",
            "/etc/ssh/sshd_config",
            "/etc/ufw",
            "/etc/default/ufw",
        ],
        collections: &["ansible.posix", "community.general"],
        reads_home_key: true,
    });
}
