//! Fleet tests of the system modules: apt/package, apt_key,
//! apt_repository, deb822_repository, systemd/service, get_url, uri,
//! unarchive and reboot. Each playbook runs against one fleet host; the
//! first run changes, what it did is checked with the ssh client, the
//! second run changes nothing, and a `--check` run of another change
//! changes nothing. HTTP fetches go only to the fleet's repo server on its
//! bridge (`fleet().repo_url`), from files the tests put in its directory;
//! playbooks name it `REPO/`.

use std::path::PathBuf;

use crate::support::fleet::fleet;

/// The fleet's repo URL where a test text says `REPO/`.
fn with_repo(text: &str) -> String {
    text.replace("REPO/", &fleet().repo_url)
}

/// curl on the host for get_url and uri, from the fleet's local repo.
fn ensure_curl(host: &str) {
    let f = fleet();
    let _g = f.lock(host);
    f.ssh_ok(
        host,
        "{ command -v curl && command -v unzip; } >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl unzip >/dev/null; }",
    );
}

#[test]
fn systemd_starts_enables_and_stops_a_unit() {
    let f = fleet();
    let host = "herd-02";
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = "[Unit]\\nDescription=herd test b\\n[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n";
    let up = f.play(
        dir.path(),
        "up.yml",
        host,
        &with_repo(&format!(
            "    - name: unit
      copy:
        dest: /etc/systemd/system/herdtest-b.service
        content: \"{unit}\"
    - name: start
      systemd:
        name: herdtest-b
        state: started
        enabled: true
        daemon_reload: true
      register: s
"
        )),
    );
    up.converge(host, 2);
    assert_eq!(
        f.ssh_ok(host, "systemctl is-active herdtest-b").trim(),
        "active"
    );
    assert_eq!(
        f.ssh_ok(host, "systemctl is-enabled herdtest-b").trim(),
        "enabled"
    );
    up.converge(host, 0);

    let down = f.play(
        dir.path(),
        "down.yml",
        host,
        &with_repo(
            "    - name: stop
      service:
        name: herdtest-b
        state: stopped
        enabled: false
",
        ),
    );
    down.check().converge(host, 1);
    assert_eq!(
        f.ssh_ok(host, "systemctl is-active herdtest-b").trim(),
        "active"
    );
    down.converge(host, 1);
    let out = f.ssh(
        host,
        "systemctl is-active herdtest-b; systemctl is-enabled herdtest-b",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "inactive\ndisabled\n");
    down.converge(host, 0);

    let restart = f.play(
        dir.path(),
        "restart.yml",
        host,
        &with_repo(
            "    - name: restart
      systemd_service:
        name: herdtest-b.service
        state: restarted
    - name: missing
      systemd:
        name: herdtest-nope
        state: started
      ignore_errors: true
",
        ),
    );
    let r = restart.converge(host, 1);
    let miss = r.result("missing", host);
    assert!(
        miss.to_string()
            .contains("Could not find the requested service"),
        "{miss}"
    );
    f.ssh_ok(
        host,
        "systemctl disable --now herdtest-b; rm -f /etc/systemd/system/herdtest-b.service; systemctl daemon-reload",
    );
}

#[test]
fn apt_installs_removes_and_installs_debs() {
    let f = fleet();
    let host = "herd-03";
    ensure_curl(host);
    let _g = f.lock(host);
    f.ssh_ok(host, "dpkg -P tree hello >/dev/null 2>&1; true");
    let dir = tempfile::tempdir().expect("tempdir");
    let install = f.play(
        dir.path(),
        "install.yml",
        host,
        &with_repo(
            "    - name: tree
      apt:
        name: tree
        update_cache: true
        cache_valid_time: 3600
",
        ),
    );
    install.converge(host, 1);
    assert!(f
        .ssh_ok(host, "dpkg -s tree")
        .contains("Status: install ok installed"));
    install.converge(host, 0);

    let remove = f.play(
        dir.path(),
        "remove.yml",
        host,
        &with_repo(
            "    - name: remove
      package:
        name: [tree]
        state: absent
",
        ),
    );
    remove.check().converge(host, 1);
    assert!(f
        .ssh_ok(host, "dpkg -s tree")
        .contains("install ok installed"));
    remove.converge(host, 1);
    assert!(!f.ssh(host, "dpkg -s tree").status.success());
    remove.converge(host, 0);

    // A .deb by URL from the local repo, then the same package by path.
    let deb = f.play(
        dir.path(),
        "deb.yml",
        host,
        &with_repo(
            "    - name: deb
      apt:
        deb: REPO/hello_2.10-3_amd64.deb
",
        ),
    );
    deb.check().converge(host, 1);
    assert!(!f.ssh(host, "dpkg -s hello").status.success());
    deb.converge(host, 1);
    assert!(f.ssh_ok(host, "dpkg -s hello").contains("Version: 2.10-3"));
    f.ssh_ok(host, "cd /tmp && apt-get download -qq hello");
    let local = f.play(
        dir.path(),
        "local.yml",
        host,
        &with_repo(
            "    - name: local deb
      apt:
        deb: /tmp/hello_2.10-3_amd64.deb
    - name: latest
      apt:
        name: hello
        state: latest
",
        ),
    );
    local.converge(host, 0);
    f.ssh_ok(
        host,
        "dpkg -P hello >/dev/null; rm -f /tmp/hello_2.10-3_amd64.deb",
    );
}

/// A directory of this test's own inside the fleet's served repo, so the
/// hosts can fetch files from `REPO/<name>/`.
fn served_dir(name: &str) -> PathBuf {
    let cache =
        std::env::var("HERD_FLEET_CACHE").unwrap_or_else(|_| "/var/cache/herd-fleet".into());
    let dir = PathBuf::from(cache).join("repo").join(name);
    std::fs::create_dir_all(&dir).expect("create served dir");
    dir
}

fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().map(|mut s| s.write_all(data)).transpose()?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn get_url_downloads_verifies_and_skips_when_present() {
    let f = fleet();
    let host = "herd-04";
    ensure_curl(host);
    let served = served_dir("herdtest-b-get");
    let payload = b"herd get_url payload\n";
    std::fs::write(served.join("payload.txt"), payload).expect("write payload");
    let sum = sha256_hex(payload);
    std::fs::write(
        served.join("SHA256SUMS"),
        format!("{sum}  payload.txt\n0000  other\n"),
    )
    .expect("write sums");
    f.ssh_ok(
        host,
        "rm -rf /tmp/herdtest-b-get && mkdir -p /tmp/herdtest-b-get",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = f.play(
        dir.path(),
        "get.yml",
        host,
        &with_repo(&format!(
            "    - name: by digest
      get_url:
        url: REPO/herdtest-b-get/payload.txt
        dest: /tmp/herdtest-b-get/a.txt
        checksum: sha256:{sum}
        mode: '0640'
    - name: by sums file into a dir
      get_url:
        url: REPO/herdtest-b-get/payload.txt
        dest: /tmp/herdtest-b-get/
        checksum: sha256:REPO/herdtest-b-get/SHA256SUMS
    - name: file url
      get_url:
        url: file:///etc/hostname
        dest: /tmp/herdtest-b-get/hostname
"
        )),
    );
    pb.converge(host, 3);
    let out = f.ssh_ok(
        host,
        "cd /tmp/herdtest-b-get && sha256sum a.txt payload.txt && stat -c %a a.txt && cat hostname",
    );
    assert!(out.contains(&format!("{sum}  a.txt")), "{out}");
    assert!(out.contains(&format!("{sum}  payload.txt")), "{out}");
    assert!(out.contains("640\nherd-04\n"), "{out}");
    pb.converge(host, 0);

    // A wrong checksum fails and leaves nothing behind; check mode of a
    // new download changes nothing.
    let bad = f.play(
        dir.path(),
        "bad.yml",
        host,
        &with_repo(
            "    - name: wrong sum
      get_url:
        url: REPO/herdtest-b-get/payload.txt
        dest: /tmp/herdtest-b-get/bad.txt
        checksum: sha1:0000000000000000000000000000000000000000
      ignore_errors: true
    - name: missing
      get_url:
        url: REPO/herdtest-b-get/nope.txt
        dest: /tmp/herdtest-b-get/nope.txt
      ignore_errors: true
",
        ),
    );
    let r = bad.run().expect_code(0);
    assert_eq!(r.stat(host, "ignored"), 2, "{}", r.stdout());
    let check = f.play(
        dir.path(),
        "check.yml",
        host,
        &with_repo(
            "    - name: new
      get_url:
        url: REPO/herdtest-b-get/payload.txt
        dest: /tmp/herdtest-b-get/new.txt
",
        ),
    );
    check.check().converge(host, 1);
    assert_eq!(
        f.ssh_ok(host, "ls -A /tmp/herdtest-b-get | sort | tr '\\n' ' '"),
        "a.txt hostname payload.txt "
    );
    f.ssh_ok(host, "rm -rf /tmp/herdtest-b-get");
}

#[test]
fn uri_reads_json_checks_status_and_writes_dest() {
    let f = fleet();
    let host = "herd-05";
    ensure_curl(host);
    let served = served_dir("herdtest-b-uri");
    std::fs::write(served.join("data.json"), r#"{"name": "herd", "n": 3}"#).expect("write json");
    f.ssh_ok(host, "rm -f /tmp/herdtest-b-uri.json");
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = f.play(
        dir.path(),
        "uri.yml",
        host,
        &with_repo(
            "    - name: get json
      uri:
        url: REPO/herdtest-b-uri/data.json
        return_content: true
        url_username: herd
        url_password: s3cret-b
        headers:
          X-Herd: b
      register: r
    - name: check it
      # uri has no check mode (as in Ansible): under --check it is
      # skipped and there is nothing to check.
      when: r is not skipped
      assert:
        that:
          - r.status == 200
          - r.json.n == 3
          - r.content_type == 'application/json'
          - \"'herd' in r.content\"
    - name: not found is fine when asked
      uri:
        url: REPO/herdtest-b-uri/missing
        status_code: [404]
    - name: save
      uri:
        url: REPO/herdtest-b-uri/data.json
        dest: /tmp/herdtest-b-uri.json
",
        ),
    );
    let r = pb.args(["-v"]).run().expect_code(0);
    assert_eq!(r.stat(host, "changed"), 1, "{}", r.stdout());
    assert!(
        !r.stdout().contains("s3cret-b") && !r.stderr().contains("s3cret-b"),
        "the password was logged"
    );
    assert_eq!(
        f.ssh_ok(host, "cat /tmp/herdtest-b-uri.json"),
        r#"{"name": "herd", "n": 3}"#
    );
    pb.converge(host, 0);
    pb.check().converge(host, 0);

    let bad = f.play(
        dir.path(),
        "bad.yml",
        host,
        &with_repo(
            "    - name: missing
      uri:
        url: REPO/herdtest-b-uri/missing
",
        ),
    );
    let r = bad.run().expect_code(2);
    assert!(r.stdout().contains("Status code was 404"), "{}", r.stdout());
    f.ssh_ok(host, "rm -f /tmp/herdtest-b-uri.json");
}

/// Run a local command, asserting it succeeded.
fn local(cmd: &str) {
    let ok = std::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "`{cmd}` failed");
}

#[test]
fn unarchive_extracts_tarballs_and_zips_once() {
    let f = fleet();
    let host = "herd-06";
    ensure_curl(host);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    local(&format!(
        "mkdir -p {d}/src/app/bin && echo one > {d}/src/app/one.txt && echo two > {d}/src/app/bin/two \
         && tar -czf {d}/app.tgz -C {d}/src app"
    ));
    let served = served_dir("herdtest-b-un");
    let zip = served.join("app.zip");
    let _ = std::fs::remove_file(&zip);
    local(&format!("cd {d}/src && zip -qr {} app", zip.display()));
    f.ssh_ok(host, "rm -rf /tmp/herdtest-b-un");
    let pb = f.play(
        dir.path(),
        "un.yml",
        host,
        &with_repo(
            "    - name: dirs
      file:
        path: /tmp/herdtest-b-un/{{ item }}
        state: directory
      loop: [t, z]
    - name: tarball
      unarchive:
        src: app.tgz
        dest: /tmp/herdtest-b-un/t
        mode: u=rwX,go=rX
    - name: zip by url
      unarchive:
        src: REPO/herdtest-b-un/app.zip
        dest: /tmp/herdtest-b-un/z
        remote_src: true
",
        ),
    );
    pb.converge(host, 3);
    let out = f.ssh_ok(
        host,
        "cd /tmp/herdtest-b-un && cat t/app/one.txt t/app/bin/two z/app/one.txt && stat -c %a t/app/one.txt t/app/bin",
    );
    assert_eq!(out, "one\ntwo\none\n644\n755\n");
    pb.converge(host, 0);

    // A changed file is put back. Check mode skips a tarball, as Ansible
    // does (its gtar handler has no check mode), and changes nothing.
    f.ssh_ok(host, "echo edited > /tmp/herdtest-b-un/t/app/one.txt");
    pb.check().converge(host, 0);
    assert_eq!(
        f.ssh_ok(host, "cat /tmp/herdtest-b-un/t/app/one.txt"),
        "edited\n"
    );
    pb.converge(host, 1);
    assert_eq!(
        f.ssh_ok(host, "cat /tmp/herdtest-b-un/t/app/one.txt"),
        "one\n"
    );

    let creates = f.play(
        dir.path(),
        "creates.yml",
        host,
        &with_repo(
            "    - name: creates
      unarchive:
        src: app.tgz
        dest: /tmp/herdtest-b-un/nowhere
        creates: /tmp/herdtest-b-un/t/app
",
        ),
    );
    creates.converge(host, 0);
    f.ssh_ok(host, "rm -rf /tmp/herdtest-b-un");
}

/// Whether the fleet's launcher for `host` restarts nspawn after a reboot
/// (fleet.sh SCRIPT_VERSION 6 and later); an older one would lose the host.
fn launcher_survives_reboot(host: &str) -> bool {
    let f = fleet();
    let text =
        std::fs::read_to_string(f.state.join("hosts").join(host).join("pid")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", text.trim())).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains("HERD_REBOOT_STATUS")
}

#[test]
fn reboot_comes_back_with_a_new_boot_id() {
    let f = fleet();
    let host = "herd-07";
    assert!(
        launcher_survives_reboot(host),
        "the fleet was started by a fleet.sh whose launcher does not restart a rebooted host; \
         re-create the fleet (fleet.sh down && fleet.sh up 8) to run this test"
    );
    let _g = f.lock(host);
    let before = f.ssh_ok(host, "cat /proc/sys/kernel/random/boot_id");
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = f.play(
        dir.path(),
        "reboot.yml",
        host,
        &with_repo(
            "    - name: reboot
      reboot:
        reboot_timeout: 120
        connect_timeout: 2
        test_command: systemctl is-system-running --wait || true
",
        ),
    );
    pb.check().converge(host, 1);
    assert_eq!(
        f.ssh_ok(host, "cat /proc/sys/kernel/random/boot_id"),
        before
    );
    pb.converge(host, 1);
    let after = f.ssh_ok(host, "cat /proc/sys/kernel/random/boot_id");
    assert_ne!(after, before, "boot id unchanged");
}

#[test]
fn apt_repository_adds_and_removes_a_source() {
    let f = fleet();
    let host = "herd-01";
    let _g = f.lock(host);
    f.ssh_ok(host, "rm -f /etc/apt/sources.list.d/herdtest-b.list");
    let dir = tempfile::tempdir().expect("tempdir");
    let line = with_repo("deb [trusted=yes] REPO/ ./");
    let add = f.play(
        dir.path(),
        "add.yml",
        host,
        &with_repo(&format!(
            "    - name: add
      apt_repository:
        repo: \"{line}\"
        filename: herdtest-b
"
        )),
    );
    add.converge(host, 1);
    assert_eq!(
        f.ssh_ok(host, "cat /etc/apt/sources.list.d/herdtest-b.list; stat -c %a /etc/apt/sources.list.d/herdtest-b.list"),
        format!("{line}\n644\n")
    );
    add.converge(host, 0);

    let remove = f.play(
        dir.path(),
        "remove.yml",
        host,
        &with_repo(&format!(
            "    - name: remove
      apt_repository:
        repo: \"{line}\"
        state: absent
        update_cache: false
"
        )),
    );
    remove.check().converge(host, 1);
    f.ssh_ok(host, "test -f /etc/apt/sources.list.d/herdtest-b.list");
    remove.converge(host, 1);
    assert!(!f
        .ssh(host, "test -e /etc/apt/sources.list.d/herdtest-b.list")
        .status
        .success());
    // The fleet's own source is untouched.
    f.ssh_ok(
        host,
        &format!(
            "grep -q {} /etc/apt/sources.list.d/herd-local.list && apt-get update -qq",
            f.bridge_address
        ),
    );
}

#[test]
fn apt_key_writes_a_keyring_from_a_url_and_removes_it() {
    let f = fleet();
    let host = "herd-01";
    ensure_curl(host);
    let key =
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nherdtest-b\n-----END PGP PUBLIC KEY BLOCK-----\n";
    let served = served_dir("herdtest-b-key");
    std::fs::write(served.join("key.asc"), key).expect("write key");
    f.ssh_ok(
        host,
        "rm -f /etc/apt/keyrings/herdtest-b.asc /etc/apt/trusted.gpg.d/B0B0B0B0.asc",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = f.play(
        dir.path(),
        "key.yml",
        host,
        &with_repo(&format!(
            "    - name: by url
      apt_key:
        url: REPO/herdtest-b-key/key.asc
        keyring: /etc/apt/keyrings/herdtest-b.asc
    - name: by data
      apt_key:
        id: 0xB0B0B0B0
        data: \"{}\"
",
            key.replace('\n', "\\n")
        )),
    );
    pb.converge(host, 2);
    let sums = f.ssh_ok(
        host,
        "sha256sum < /etc/apt/keyrings/herdtest-b.asc; sha256sum < /etc/apt/trusted.gpg.d/B0B0B0B0.asc",
    );
    let want = format!("{}  -\n", sha256_hex(key.as_bytes()));
    assert_eq!(sums, format!("{want}{want}"));
    pb.converge(host, 0);

    let rm = f.play(
        dir.path(),
        "rm.yml",
        host,
        &with_repo(
            "    - name: rm ring
      apt_key:
        keyring: /etc/apt/keyrings/herdtest-b.asc
        state: absent
    - name: rm id
      apt_key:
        id: B0B0B0B0
        state: absent
",
        ),
    );
    rm.check().converge(host, 2);
    f.ssh_ok(host, "test -f /etc/apt/keyrings/herdtest-b.asc");
    rm.converge(host, 2);
    rm.converge(host, 0);
    f.ssh_ok(host, "! test -e /etc/apt/keyrings/herdtest-b.asc && ! test -e /etc/apt/trusted.gpg.d/B0B0B0B0.asc");
}

#[test]
fn deb822_repository_writes_a_sources_file_apt_can_read() {
    let f = fleet();
    let host = "herd-01";
    let _g = f.lock(host);
    f.ssh_ok(host, "rm -f /etc/apt/sources.list.d/herdtest-b.sources");
    let dir = tempfile::tempdir().expect("tempdir");
    let add = f.play(
        dir.path(),
        "add.yml",
        host,
        &with_repo(
            "    - name: add
      deb822_repository:
        name: herdtest-b
        uris: REPO/
        suites: ./
        trusted: true
",
        ),
    );
    add.converge(host, 1);
    assert_eq!(
        f.ssh_ok(host, "cat /etc/apt/sources.list.d/herdtest-b.sources"),
        with_repo(
            "X-Repolib-Name: herdtest-b\nTypes: deb\nURIs: REPO/\nSuites: ./\nTrusted: yes\n"
        )
    );
    f.ssh_ok(host, "apt-get update -qq");
    add.converge(host, 0);
    let rm = f.play(
        dir.path(),
        "rm.yml",
        host,
        &with_repo(
            "    - name: rm
      deb822_repository:
        name: herdtest-b
        state: absent
",
        ),
    );
    rm.check().converge(host, 1);
    f.ssh_ok(host, "test -f /etc/apt/sources.list.d/herdtest-b.sources");
    rm.converge(host, 1);
    f.ssh_ok(
        host,
        "! test -e /etc/apt/sources.list.d/herdtest-b.sources && apt-get update -qq",
    );
}
