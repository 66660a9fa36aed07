//! herd installed as a tool: `packaging/build.sh` builds the release binary
//! with OpenSSL and zlib linked in and its `.deb`; herd's own `copy` and
//! `apt deb=` put it on a fleet host (`herd-06`), where `ldd` shows it needs
//! only glibc, `herd --version` answers, the bash completion script is where
//! bash-completion looks, and a small playbook runs on the host itself (a
//! second run changing nothing). The build is incremental: the first run
//! after a change rebuilds herd in release mode (with OpenSSL from source
//! on a cold build, several minutes); later runs package in seconds.
//!
//! Names of its own on the host (`/root/herdtest-pkg`), and the package is
//! purged after, so the host is as it was.

use std::path::PathBuf;
use std::process::Command;

use crate::support::fleet::{fleet, Fleet};

const HOST: &str = "herd-06";
const DIR: &str = "/root/herdtest-pkg";

/// `packaging/build.sh`, returning the `.deb` it built.
fn build_deb() -> PathBuf {
    let out = Command::new(crate::support::repo().join("packaging/build.sh"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run packaging/build.sh: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "packaging/build.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default());
    assert!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "packaging/build.sh named no .deb: {stdout}"
    );
    deb
}

/// The host's playbook: a directory and a file written from a variable,
/// read back.
const LOCAL_PLAYBOOK: &str = "\
- hosts: localhost
  gather_facts: no
  vars:
    greeting: hello from the packaged herd
  tasks:
    - name: Its directory
      file:
        path: /root/herdtest-pkg/out
        state: directory
    - name: Write the greeting
      copy:
        dest: /root/herdtest-pkg/out/greeting.txt
        content: \"{{ greeting }}\\n\"
        mode: \"0644\"
    - name: Read it back
      command: cat /root/herdtest-pkg/out/greeting.txt
      register: read
      changed_when: false
    - name: It is what was written
      assert:
        that: read.stdout == greeting
";

struct Cleanup<'a>(&'a Fleet);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(
            HOST,
            &format!("dpkg --purge herdsman >/dev/null 2>&1; rm -rf {DIR}; true"),
        );
    }
}

/// The last `recap` line of `herd run --output jsonl` run on the host.
fn host_run(f: &Fleet) -> serde_json::Value {
    let out = f.ssh_ok(
        HOST,
        &format!("cd {DIR} && herd run local.yml -i inventory.ini --output jsonl"),
    );
    let recap = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|e| e["event"] == "recap")
        .unwrap_or_else(|| panic!("no recap from herd on {HOST}:\n{out}"));
    recap["hosts"]["localhost"].clone()
}

#[test]
fn the_deb_installs_on_a_fleet_host_and_runs_a_playbook_there() {
    let deb = build_deb();
    let f = fleet();
    // dpkg's lock is host-wide.
    let _lock = f.lock(HOST);
    let _cleanup = Cleanup(f);
    let _ = f.ssh(
        HOST,
        &format!("dpkg --purge herdsman >/dev/null 2>&1; rm -rf {DIR}"),
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let tasks = format!(
        "    - name: Its directory
      file: {{ path: {DIR}, state: directory }}
    - name: Copy the package
      copy: {{ src: {deb}, dest: {DIR}/herd.deb }}
    - name: Install it
      apt: {{ deb: {DIR}/herd.deb }}
    - name: A playbook for the host itself
      copy: {{ dest: {DIR}/local.yml, content: {playbook} }}
    - name: Its inventory
      copy: {{ dest: {DIR}/inventory.ini, content: \"localhost ansible_connection=local\\n\" }}
",
        deb = deb.display(),
        // Raw: the playbook's own `{{ greeting }}` is for the host's herd.
        playbook = serde_json::to_string(&format!("{{% raw %}}{LOCAL_PLAYBOOK}{{% endraw %}}"))
            .expect("JSON string"),
    );
    let install = f.play(dir.path(), "install.yml", HOST, &tasks);
    install.converge(HOST, 5);
    install.converge(HOST, 0);

    // The host's own view: its dynamic loader resolves only glibc.
    let ldd = f.ssh_ok(HOST, "ldd /usr/bin/herd");
    for line in ldd.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let lib = line.split_whitespace().next().unwrap_or_default();
        let lib = lib.rsplit('/').next().unwrap_or_default();
        assert!(
            [
                "linux-vdso.so",
                "ld-linux",
                "libc.so",
                "libm.so",
                "libgcc_s.so",
                "libpthread.so",
                "libdl.so",
                "librt.so"
            ]
            .iter()
            .any(|ok| lib.starts_with(ok)),
            "/usr/bin/herd on {HOST} links {lib}:\n{ldd}"
        );
    }
    let version = f.ssh_ok(HOST, "herd --version");
    assert_eq!(
        version.trim(),
        format!("herd {}", env!("CARGO_PKG_VERSION")),
        "herd --version on {HOST}"
    );
    let script = f.ssh_ok(HOST, "cat /usr/share/bash-completion/completions/herd");
    assert!(
        script.contains("complete ") && script.contains("COMPLETE=\"bash\""),
        "bash completion script on {HOST}:\n{script}"
    );

    let first = host_run(f);
    assert_eq!(
        (&first["changed"], &first["failed"]),
        (&2.into(), &0.into()),
        "{first}"
    );
    assert_eq!(
        f.ssh_ok(HOST, &format!("cat {DIR}/out/greeting.txt")),
        "hello from the packaged herd\n"
    );
    let second = host_run(f);
    assert_eq!(
        (&second["changed"], &second["failed"], &second["ok"]),
        (&0.into(), &0.into(), &4.into()),
        "{second}"
    );
}
