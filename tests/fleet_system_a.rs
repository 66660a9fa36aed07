//! The system modules on real hosts: `user`, `group`, `authorized_key`,
//! `hostname`, `cron`, `sysctl`, `mount`. Each test converges a playbook
//! (changed), checks the host with plain ssh, runs it again (nothing
//! changed), runs a different change with `--check` (nothing happens) and
//! cleans up what it made. Names and paths carry `herdtest_a` so tests
//! sharing a host never meet; host-wide state is taken under `Fleet::lock`.

use std::path::PathBuf;

use crate::support::fleet::{fleet, Fleet};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn user_and_group_converge_and_clean_up() {
    let f = fleet();
    let h = "herd-01";
    let dir = tmp();
    // Start clean even after an interrupted earlier run.
    f.ssh(h, "userdel -r herdtest_a_u1 2>/dev/null; groupdel herdtest_a_g1 2>/dev/null; groupdel herdtest_a_g2 2>/dev/null; true");
    let book = f.play(
        dir.path(),
        "user.yml",
        h,
        "    - name: group\n      group:\n        name: herdtest_a_g1\n        gid: 42101\n\
         \x20   - name: group2\n      group:\n        name: herdtest_a_g2\n        system: yes\n\
         \x20   - name: user\n      user:\n        name: herdtest_a_u1\n        uid: 42101\n\
         \x20       group: herdtest_a_g1\n        groups: herdtest_a_g2, sudo\n\
         \x20       shell: /bin/bash\n        comment: Herd Test\n\
         \x20       password: '$6$salt$0123456789abcdef'\n\
         \x20       generate_ssh_key: yes\n        ssh_key_type: ed25519\n\
         \x20       ssh_key_file: .ssh/id_ed25519\n      register: u\n\
         \x20   - name: result\n      assert:\n        that:\n          - u.uid == 42101\n\
         \x20         - u.group == 42101\n          - u.home == '/home/herdtest_a_u1'\n\
         \x20         - u.shell == '/bin/bash'\n          - u.state == 'present'\n\
         \x20         - u.name == 'herdtest_a_u1'\n          - u.password == 'NOT_LOGGING_PASSWORD'\n\
         \x20         - u.ssh_public_key.startswith('ssh-ed25519 ')\n\
         \x20         - u.ssh_key_file == '/home/herdtest_a_u1/.ssh/id_ed25519'\n",
    );
    book.converge(h, 3);
    let pw = f.ssh_ok(h, "getent passwd herdtest_a_u1");
    assert_eq!(
        pw.trim(),
        "herdtest_a_u1:x:42101:42101:Herd Test:/home/herdtest_a_u1:/bin/bash"
    );
    let shadow = f.ssh_ok(h, "getent shadow herdtest_a_u1 | cut -d: -f2");
    assert_eq!(shadow.trim(), "$6$salt$0123456789abcdef");
    let groups = f.ssh_ok(h, "id -Gn herdtest_a_u1");
    let mut g: Vec<&str> = groups.split_whitespace().collect();
    g.sort();
    assert_eq!(g, ["herdtest_a_g1", "herdtest_a_g2", "sudo"]);
    f.ssh_ok(h, "test -d /home/herdtest_a_u1");
    assert_eq!(
        f.ssh_ok(
            h,
            "cd /home/herdtest_a_u1/.ssh && stat -c '%U %a %n' . id_ed25519 id_ed25519.pub"
        ),
        "herdtest_a_u1 700 .\nherdtest_a_u1 600 id_ed25519\nherdtest_a_u1 644 id_ed25519.pub\n"
    );
    assert!(f
        .ssh_ok(h, "cat /home/herdtest_a_u1/.ssh/id_ed25519.pub")
        .trim_end()
        .ends_with(" ansible-generated on herd-01"));
    let sys_gid = f.ssh_ok(h, "getent group herdtest_a_g2 | cut -d: -f3");
    assert!(
        sys_gid.trim().parse::<u32>().is_ok_and(|g| g < 1000),
        "{sys_gid}"
    );
    book.converge(h, 0);

    // A different change in check mode changes nothing.
    let change = f.play(
        dir.path(),
        "user-change.yml",
        h,
        "    - name: user\n      user:\n        name: herdtest_a_u1\n        shell: /bin/sh\n\
         \x20       groups: []\n\
         \x20   - name: group\n      group:\n        name: herdtest_a_g1\n        gid: 42102\n",
    );
    change.check().converge(h, 2);
    assert_eq!(f.ssh_ok(h, "getent passwd herdtest_a_u1").trim(), pw.trim());
    assert_eq!(f.ssh_ok(h, "id -Gn herdtest_a_u1"), groups);
    // Then for real: supplementary groups are emptied, the shell changes.
    change.converge(h, 2);
    assert_eq!(f.ssh_ok(h, "id -Gn herdtest_a_u1").trim(), "herdtest_a_g1");
    assert!(f
        .ssh_ok(h, "getent passwd herdtest_a_u1")
        .ends_with(":/bin/sh\n"));

    // A missing group fails the task and names the group.
    let bad = f.play(
        dir.path(),
        "user-bad.yml",
        h,
        "    - name: user\n      user:\n        name: herdtest_a_u1\n        groups: herdtest_a_nope\n",
    );
    let r = bad.run();
    assert_ne!(r.code(), 0);
    assert!(
        r.stdout().contains("Group herdtest_a_nope does not exist"),
        "{}",
        r.stdout()
    );

    let clean = f.play(
        dir.path(),
        "user-absent.yml",
        h,
        "    - name: user\n      user:\n        name: herdtest_a_u1\n        state: absent\n        remove: yes\n\
         \x20   - name: groups\n      group:\n        name: '{{ item }}'\n        state: absent\n\
         \x20     loop: [herdtest_a_g1, herdtest_a_g2]\n",
    );
    clean.check().converge(h, 2);
    f.ssh_ok(h, "getent passwd herdtest_a_u1");
    clean.converge(h, 2);
    assert!(!f.ssh(h, "getent passwd herdtest_a_u1").status.success());
    assert!(!f.ssh(h, "test -e /home/herdtest_a_u1").status.success());
    assert!(!f.ssh(h, "getent group herdtest_a_g1").status.success());
    clean.converge(h, 0);
}

#[test]
fn sysctl_sets_file_and_live_value_and_reports_read_only_keys() {
    let f = fleet();
    let h = "herd-02";
    let _lock = f.lock(h);
    let dir = tmp();
    let conf = "/etc/sysctl.d/99-herdtest-a.conf";
    let orig_fin = f.ssh_ok(h, "sysctl -n net.ipv4.tcp_fin_timeout");
    let orig_max = f.ssh_ok(h, "sysctl -n net.core.somaxconn");
    f.ssh_ok(
        h,
        &format!("rm -f {conf}; sed -i '/^net.core.somaxconn/d' /etc/sysctl.conf"),
    );
    let book = f.play(
        dir.path(),
        "sysctl.yml",
        h,
        &format!(
            "    - name: fin\n      sysctl:\n        name: net.ipv4.tcp_fin_timeout\n        value: 23\n\
             \x20       sysctl_file: {conf}\n\
             \x20   - name: somaxconn\n      ansible.posix.sysctl:\n        name: net.core.somaxconn\n\
             \x20       value: '2048'\n"
        ),
    );
    book.converge(h, 2);
    assert_eq!(
        f.ssh_ok(h, "sysctl -n net.ipv4.tcp_fin_timeout").trim(),
        "23"
    );
    assert_eq!(f.ssh_ok(h, "sysctl -n net.core.somaxconn").trim(), "2048");
    assert_eq!(
        f.ssh_ok(h, &format!("cat {conf}")),
        "net.ipv4.tcp_fin_timeout=23\n"
    );
    assert_eq!(
        f.ssh_ok(h, "grep -c '^net.core.somaxconn=2048$' /etc/sysctl.conf")
            .trim(),
        "1"
    );
    book.converge(h, 0);

    // A live value changed behind our back is put back, the file is kept.
    f.ssh_ok(h, "sysctl -w net.ipv4.tcp_fin_timeout=31");
    book.converge(h, 1);
    assert_eq!(
        f.ssh_ok(h, "sysctl -n net.ipv4.tcp_fin_timeout").trim(),
        "23"
    );
    assert_eq!(
        f.ssh_ok(h, &format!("cat {conf}")),
        "net.ipv4.tcp_fin_timeout=23\n"
    );

    let change = f.play(
        dir.path(),
        "sysctl-change.yml",
        h,
        &format!(
            "    - name: fin\n      sysctl:\n        name: net.ipv4.tcp_fin_timeout\n        value: 24\n\
             \x20       sysctl_file: {conf}\n"
        ),
    );
    change.check().converge(h, 1);
    assert_eq!(
        f.ssh_ok(h, "sysctl -n net.ipv4.tcp_fin_timeout").trim(),
        "23"
    );
    assert_eq!(
        f.ssh_ok(h, &format!("cat {conf}")),
        "net.ipv4.tcp_fin_timeout=23\n"
    );

    // Outside net.* the kernel keys are read-only in a container host: the
    // task fails naming the key and why, and the file is left alone.
    let ro = f.play(
        dir.path(),
        "sysctl-ro.yml",
        h,
        &format!(
            "    - name: ro\n      sysctl:\n        name: vm.max_map_count\n        value: 262145\n\
             \x20       sysctl_file: {conf}\n"
        ),
    );
    let r = ro.run();
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert_eq!(r.stat(h, "failed"), 1);
    let out = r.stdout();
    assert!(
        out.contains("vm.max_map_count") && out.contains("read-only in this namespace"),
        "{out}"
    );
    assert_eq!(
        f.ssh_ok(h, &format!("cat {conf}")),
        "net.ipv4.tcp_fin_timeout=23\n"
    );
    // ignoreerrors: the file is written and the task succeeds.
    let ro_ok = f.play(
        dir.path(),
        "sysctl-ro-ok.yml",
        h,
        &format!(
            "    - name: ro\n      sysctl:\n        name: vm.max_map_count\n        value: 262145\n\
             \x20       sysctl_file: {conf}\n        ignoreerrors: yes\n"
        ),
    );
    ro_ok.converge(h, 1);
    assert_eq!(
        f.ssh_ok(h, &format!("cat {conf}")),
        "net.ipv4.tcp_fin_timeout=23\nvm.max_map_count=262145\n"
    );

    let clean = f.play(
        dir.path(),
        "sysctl-absent.yml",
        h,
        &format!(
            "    - name: fin\n      sysctl:\n        name: '{{{{ item }}}}'\n        state: absent\n\
             \x20       sysctl_file: {conf}\n      loop: [net.ipv4.tcp_fin_timeout, vm.max_map_count]\n\
             \x20   - name: somaxconn\n      sysctl:\n        name: net.core.somaxconn\n        state: absent\n"
        ),
    );
    clean.converge(h, 2);
    assert_eq!(f.ssh_ok(h, &format!("cat {conf}")), "");
    assert!(!f.ssh_ok(h, "cat /etc/sysctl.conf").contains("somaxconn"));
    clean.converge(h, 0);
    f.ssh_ok(
        h,
        &format!(
            "rm -f {conf}; sysctl -w net.ipv4.tcp_fin_timeout={} net.core.somaxconn={}",
            orig_fin.trim(),
            orig_max.trim()
        ),
    );
}

/// A fresh ed25519 key pair in `dir`: (private key path, public key line).
fn keypair(dir: &tempfile::TempDir, name: &str) -> (PathBuf, String) {
    let path = dir.path().join(name);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public.trim().to_string())
}

/// Whether `user` can log in to `host` with `key`.
fn can_login(f: &Fleet, host: &str, user: &str, key: &std::path::Path) -> bool {
    std::process::Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", f.known_hosts.display()))
        .arg("-i")
        .arg(key)
        .arg(format!("{user}@{}", f.address(host)))
        .arg("true")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn authorized_key_lets_the_user_in() {
    let f = fleet();
    let h = "herd-03";
    let u = "herdtest_a_k1";
    let dir = tmp();
    f.ssh(h, &format!("userdel -r {u} 2>/dev/null; true"));
    let (key_a, pub_a) = keypair(&dir, "key_a");
    let (key_b, pub_b) = keypair(&dir, "key_b");
    let book = f.play(
        dir.path(),
        "keys.yml",
        h,
        &format!(
            "    - name: user\n      user:\n        name: {u}\n        shell: /bin/sh\n\
             \x20   - name: key\n      authorized_key:\n        user: {u}\n        key: '{pub_a}'\n"
        ),
    );
    book.converge(h, 2);
    assert_eq!(
        f.ssh_ok(
            h,
            &format!("stat -c '%U %G %a' /home/{u}/.ssh /home/{u}/.ssh/authorized_keys")
        ),
        format!("{u} {u} 700\n{u} {u} 600\n")
    );
    assert_eq!(
        f.ssh_ok(h, &format!("cat /home/{u}/.ssh/authorized_keys")),
        format!("{pub_a}\n")
    );
    assert!(can_login(f, h, u, &key_a));
    assert!(!can_login(f, h, u, &key_b));
    book.converge(h, 0);

    // Exclusive with only b, in check mode: nothing happens.
    let swap = f.play(
        dir.path(),
        "keys-swap.yml",
        h,
        &format!(
            "    - name: key\n      authorized_key:\n        user: {u}\n        key: '{pub_b}'\n\
             \x20       exclusive: yes\n        key_options: 'no-pty,no-agent-forwarding'\n"
        ),
    );
    swap.check().converge(h, 1);
    assert_eq!(
        f.ssh_ok(h, &format!("cat /home/{u}/.ssh/authorized_keys")),
        format!("{pub_a}\n")
    );
    swap.converge(h, 1);
    assert_eq!(
        f.ssh_ok(h, &format!("cat /home/{u}/.ssh/authorized_keys")),
        format!("no-pty,no-agent-forwarding {pub_b}\n")
    );
    assert!(can_login(f, h, u, &key_b));
    assert!(!can_login(f, h, u, &key_a));
    swap.converge(h, 0);

    let gone = f.play(
        dir.path(),
        "keys-absent.yml",
        h,
        &format!(
            "    - name: key\n      authorized_key:\n        user: {u}\n        key: '{pub_b}'\n        state: absent\n"
        ),
    );
    gone.converge(h, 1);
    assert_eq!(
        f.ssh_ok(h, &format!("cat /home/{u}/.ssh/authorized_keys")),
        ""
    );
    assert!(!can_login(f, h, u, &key_b));
    gone.converge(h, 0);
    f.ssh_ok(h, &format!("userdel -r {u}"));
}

/// Puts a host's name back even when a test fails half way.
struct RestoreHostname<'a> {
    f: &'a Fleet,
    host: &'a str,
    name: String,
}

impl Drop for RestoreHostname<'_> {
    fn drop(&mut self) {
        let n = &self.name;
        self.f.ssh(
            self.host,
            &format!("[ \"$(hostname)\" = {n} ] || {{ echo {n} > /etc/hostname; hostname {n}; }}"),
        );
    }
}

#[test]
fn hostname_sets_running_and_saved_name_then_restores() {
    let f = fleet();
    let h = "herd-06";
    let _lock = f.lock(h);
    let dir = tmp();
    let orig = f.ssh_ok(h, "hostname").trim().to_string();
    let _restore = RestoreHostname {
        f,
        host: h,
        name: orig.clone(),
    };
    let book = |name: &str, file: &str| {
        f.play(
            dir.path(),
            &format!("{file}.yml"),
            h,
            &format!("    - name: hostname\n      hostname:\n        name: {name}\n"),
        )
    };
    let set = book("herdtest-a-06", "set");
    set.converge(h, 1);
    assert_eq!(f.ssh_ok(h, "hostname").trim(), "herdtest-a-06");
    assert_eq!(f.ssh_ok(h, "cat /etc/hostname"), "herdtest-a-06\n");
    set.converge(h, 0);
    // The debian strategy (file + hostname command) on a changed name.
    let deb = f.play(
        dir.path(),
        "deb.yml",
        h,
        "    - name: hostname\n      hostname:\n        name: herdtest-a-06b\n        use: debian\n",
    );
    deb.check().converge(h, 1);
    assert_eq!(f.ssh_ok(h, "hostname").trim(), "herdtest-a-06");
    deb.converge(h, 1);
    assert_eq!(f.ssh_ok(h, "hostname").trim(), "herdtest-a-06b");
    assert_eq!(f.ssh_ok(h, "cat /etc/hostname"), "herdtest-a-06b\n");
    deb.converge(h, 0);
    let restore = book(&orig, "restore");
    restore.converge(h, 1);
    assert_eq!(f.ssh_ok(h, "hostname").trim(), orig);
    assert_eq!(f.ssh_ok(h, "cat /etc/hostname").trim(), orig);
}

#[test]
fn cron_file_jobs_and_variables() {
    let f = fleet();
    let h = "herd-04";
    let dir = tmp();
    let file = "/etc/cron.d/herdtest_a";
    f.ssh(h, &format!("rm -f {file}"));
    let book = f.play(
        dir.path(),
        "cron-file.yml",
        h,
        "    - name: var\n      cron:\n        name: HERDTEST_A_VAR\n        job: hello world\n\
         \x20       env: yes\n        cron_file: herdtest_a\n        user: root\n\
         \x20   - name: job\n      ansible.builtin.cron:\n        name: herdtest_a job\n\
         \x20       minute: 5\n        hour: '3'\n        job: echo hi > /dev/null\n\
         \x20       cron_file: herdtest_a\n        user: root\n",
    );
    book.converge(h, 2);
    assert_eq!(
        f.ssh_ok(h, &format!("cat {file}")),
        "HERDTEST_A_VAR=\"hello world\"\n#Ansible: herdtest_a job\n5 3 * * * root echo hi > /dev/null\n"
    );
    assert_eq!(f.ssh_ok(h, &format!("stat -c %a {file}")).trim(), "644");
    book.converge(h, 0);

    let change = f.play(
        dir.path(),
        "cron-file-change.yml",
        h,
        "    - name: job\n      cron:\n        name: herdtest_a job\n        special_time: hourly\n\
         \x20       job: echo hi > /dev/null\n        cron_file: herdtest_a\n        user: root\n",
    );
    change.check().converge(h, 1);
    assert!(f
        .ssh_ok(h, &format!("cat {file}"))
        .contains("5 3 * * * root"));
    change.converge(h, 1);
    assert!(f
        .ssh_ok(h, &format!("cat {file}"))
        .ends_with("#Ansible: herdtest_a job\n@hourly root echo hi > /dev/null\n"));

    // Removing the last job removes the file (as in Ansible, removing a
    // variable never does, so it goes first).
    let gone = f.play(
        dir.path(),
        "cron-file-absent.yml",
        h,
        "    - name: var\n      cron:\n        name: HERDTEST_A_VAR\n        env: yes\n\
         \x20       cron_file: herdtest_a\n        state: absent\n\
         \x20   - name: job\n      cron:\n        name: herdtest_a job\n        cron_file: herdtest_a\n        state: absent\n",
    );
    gone.converge(h, 2);
    assert!(!f.ssh(h, &format!("test -e {file}")).status.success());
    gone.converge(h, 0);
}

#[test]
fn cron_user_crontab() {
    let f = fleet();
    let h = "herd-04";
    let u = "herdtest_a_c1";
    let dir = tmp();
    {
        // apt's dpkg lock is host-wide.
        let _lock = f.lock(h);
        f.ssh_ok(
            h,
            "command -v crontab >/dev/null || { timeout 120 apt-get update -qq; \
             DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq cron >/dev/null; }",
        );
    }
    f.ssh(
        h,
        &format!("crontab -u {u} -r 2>/dev/null; userdel -r {u} 2>/dev/null; useradd -m {u}"),
    );
    let book = f.play(
        dir.path(),
        "cron-user.yml",
        h,
        &format!(
            "    - name: job\n      cron:\n        name: herdtest_a daily\n        user: {u}\n\
             \x20       special_time: daily\n        job: /bin/true\n\
             \x20   - name: path\n      cron:\n        name: PATH\n        env: yes\n        user: {u}\n\
             \x20       value: /usr/bin:/bin\n"
        ),
    );
    book.converge(h, 2);
    let tab = f.ssh_ok(h, &format!("crontab -u {u} -l"));
    assert_eq!(
        tab,
        "PATH=\"/usr/bin:/bin\"\n#Ansible: herdtest_a daily\n@daily /bin/true\n"
    );
    book.converge(h, 0);

    let off = f.play(
        dir.path(),
        "cron-user-off.yml",
        h,
        &format!(
            "    - name: job\n      cron:\n        name: herdtest_a daily\n        user: {u}\n\
             \x20       special_time: daily\n        job: /bin/true\n        disabled: yes\n        backup: yes\n"
        ),
    );
    off.check().converge(h, 1);
    assert_eq!(f.ssh_ok(h, &format!("crontab -u {u} -l")), tab);
    off.converge(h, 1);
    assert!(f
        .ssh_ok(h, &format!("crontab -u {u} -l"))
        .ends_with("#Ansible: herdtest_a daily\n#@daily /bin/true\n"));
    off.converge(h, 0);

    let gone = f.play(
        dir.path(),
        "cron-user-absent.yml",
        h,
        &format!("    - name: job\n      cron:\n        name: herdtest_a daily\n        user: {u}\n        state: absent\n"),
    );
    gone.converge(h, 1);
    assert_eq!(
        f.ssh_ok(h, &format!("crontab -u {u} -l")),
        "PATH=\"/usr/bin:/bin\"\n"
    );
    gone.converge(h, 0);
    f.ssh_ok(
        h,
        &format!("crontab -u {u} -r; userdel -r {u}; rm -f /tmp/crontab????????"),
    );
}

#[test]
fn mount_fstab_entries_and_tmpfs_mounts() {
    let f = fleet();
    let h = "herd-05";
    let _lock = f.lock(h);
    let dir = tmp();
    let (p, m) = ("/mnt/herdtest_a_p", "/mnt/herdtest_a_m");
    f.ssh(
        h,
        &format!(
            "umount {m} 2>/dev/null; rmdir {p} {m} 2>/dev/null; sed -i '/herdtest_a/d' /etc/fstab"
        ),
    );
    let fstab_lines = || f.ssh_ok(h, "grep herdtest_a /etc/fstab || true");

    // present/absent: fstab only.
    let present = f.play(
        dir.path(),
        "present.yml",
        h,
        &format!(
            "    - name: fstab\n      mount:\n        path: {p}\n        src: tmpfs\n        fstype: tmpfs\n\
             \x20       opts: size=1m\n        state: present\n"
        ),
    );
    present.converge(h, 1);
    assert_eq!(fstab_lines(), format!("tmpfs {p} tmpfs size=1m 0 0\n"));
    assert!(!f.ssh(h, &format!("findmnt {p}")).status.success());
    present.converge(h, 0);
    let opts = f.play(
        dir.path(),
        "present-opts.yml",
        h,
        &format!(
            "    - name: fstab\n      ansible.posix.mount:\n        path: {p}\n        src: tmpfs\n        fstype: tmpfs\n\
             \x20       opts: size=2m\n        dump: 1\n        state: present\n        backup: yes\n"
        ),
    );
    opts.check().converge(h, 1);
    assert_eq!(fstab_lines(), format!("tmpfs {p} tmpfs size=1m 0 0\n"));
    opts.converge(h, 1);
    assert_eq!(fstab_lines(), format!("tmpfs {p} tmpfs size=2m 1 0\n"));
    let absent = f.play(
        dir.path(),
        "absent-p.yml",
        h,
        &format!("    - name: fstab\n      mount:\n        path: {p}\n        state: absent\n"),
    );
    absent.converge(h, 1);
    assert_eq!(fstab_lines(), "");
    absent.converge(h, 0);

    // mounted: a tmpfs mounts inside a fleet host (nspawn keeps
    // CAP_SYS_ADMIN in the container's own mount namespace).
    let mounted = |size: &str, file: &str| {
        f.play(
            dir.path(),
            &format!("{file}.yml"),
            h,
            &format!(
                "    - name: mount\n      mount:\n        path: {m}\n        src: tmpfs\n        fstype: tmpfs\n\
                 \x20       opts: size={size}\n        state: mounted\n"
            ),
        )
    };
    let two = mounted("2m", "mounted");
    two.converge(h, 1);
    assert_eq!(fstab_lines(), format!("tmpfs {m} tmpfs size=2m 0 0\n"));
    let opts_now = || f.ssh_ok(h, &format!("findmnt -n -o FSTYPE,OPTIONS {m}"));
    assert!(opts_now().contains("size=2048k"), "{}", opts_now());
    two.converge(h, 0);
    let three = mounted("3m", "mounted-3m");
    three.check().converge(h, 1);
    assert!(opts_now().contains("size=2048k"));
    three.converge(h, 1);
    assert!(opts_now().contains("size=3072k"), "{}", opts_now());
    let unmounted = f.play(
        dir.path(),
        "unmounted.yml",
        h,
        &format!("    - name: mount\n      mount:\n        path: {m}\n        state: unmounted\n"),
    );
    unmounted.converge(h, 1);
    assert!(!f.ssh(h, &format!("findmnt {m}")).status.success());
    assert_eq!(fstab_lines(), format!("tmpfs {m} tmpfs size=3m 0 0\n"));
    unmounted.converge(h, 0);
    three.converge(h, 1);
    let gone = f.play(
        dir.path(),
        "absent-m.yml",
        h,
        &format!("    - name: mount\n      mount:\n        path: {m}\n        state: absent\n"),
    );
    gone.converge(h, 1);
    assert!(!f.ssh(h, &format!("findmnt {m}")).status.success());
    assert!(!f.ssh(h, &format!("test -e {m}")).status.success());
    assert_eq!(fstab_lines(), "");

    // A mount that cannot work fails the task with mount's own message.
    let bad = f.play(
        dir.path(),
        "bad.yml",
        h,
        &format!(
            "    - name: mount\n      mount:\n        path: {m}\n        src: /dev/herdtest_a_nodev\n\
             \x20       fstype: ext4\n        state: mounted\n"
        ),
    );
    let r = bad.run();
    assert_ne!(r.code(), 0);
    assert!(
        r.stdout().contains(&format!("Error mounting {m}: mount:")),
        "{}",
        r.stdout()
    );
    // ... and, as Ansible does, takes back the fstab line and the mount
    // point it made, so a reboot does not meet a broken entry.
    assert_eq!(fstab_lines(), "");
    assert!(!f.ssh(h, &format!("test -e {m}")).status.success());
    f.ssh_ok(h, "rm -f /etc/fstab.*~");
}
