//! Fleet tests of the ansible.builtin modules added for real playbooks:
//! `replace`, `find`, `slurp`, `fetch`, `tempfile`, `getent`, `script`,
//! `git`, `pip`, `debconf`, `dpkg_selections`, `known_hosts`,
//! `service_facts` and `package_facts`, through `herd run` over SSH on
//! `herd-29` (a host no other test uses). Changing modules run three ways:
//! `--check` changes nothing, the first run changes, a second changes
//! nothing; what they did is checked with the ssh client. git and
//! python3-venv come from the fleet's apt repository.

use crate::support::fleet::fleet;
use crate::support::write_files;

const HOST: &str = "herd-29";

#[test]
fn replace_edits_converges_and_checks() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    f.ssh_ok(
        HOST,
        "rm -rf /srv/herd-replace && mkdir -p /srv/herd-replace && printf 'db_host = old\\n# BEGIN\\nport=1\\nport=1\\n# END\\nport=1\\n' > /srv/herd-replace/app.conf",
    );
    let edit = f.play(
        dir.path(),
        "replace.yml",
        HOST,
        r#"    - name: host
      replace:
        path: /srv/herd-replace/app.conf
        regexp: '^(db_host\s*=\s*).*$'
        replace: '\g<1>db-2'
        backup: true
      register: r
    - name: section
      replace:
        dest: /srv/herd-replace/app.conf
        after: '# BEGIN'
        before: '# END'
        regexp: '^port=1$'
        replace: 'port=2'
"#,
    );
    let check = edit.check().converge(HOST, 2);
    assert_eq!(
        check.result("host", HOST)["status"],
        "changed",
        "{}",
        check.stdout()
    );
    assert!(f
        .ssh_ok(HOST, "cat /srv/herd-replace/app.conf")
        .starts_with("db_host = old\n"));
    let first = edit.converge(HOST, 2);
    let r = first.result("host", HOST);
    assert_eq!(r["msg"], "1 replacements made", "{r}");
    assert_eq!(
        f.ssh_ok(HOST, "cat /srv/herd-replace/app.conf"),
        "db_host = db-2\n# BEGIN\nport=2\nport=2\n# END\nport=1\n"
    );
    let backups = f.ssh_ok(HOST, "ls /srv/herd-replace | grep -c '~$'");
    assert_eq!(backups.trim(), "1");
    edit.converge(HOST, 0);
}

#[test]
fn find_lists_what_ansible_lists() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    f.ssh_ok(
        HOST,
        "rm -rf /srv/herd-find && mkdir -p /srv/herd-find/sub/deeper && cd /srv/herd-find && \
         printf 'error: x\\n' > a.log && echo ok > b.txt && echo x > .h.log && \
         printf 'warn\\nerror: y\\n' > sub/c.log && : > sub/deeper/d.log && \
         touch -d '10 days ago' sub/c.log",
    );
    let play = f.play(
        dir.path(),
        "find.yml",
        HOST,
        r#"    - name: logs
      find:
        paths: /srv/herd-find
        patterns: "*.log"
        recurse: true
        depth: 2
      register: logs
    - name: old errors
      find:
        paths: [/srv/herd-find, /srv/herd-none]
        recurse: yes
        contains: "error:.*"
        age: 5d
        get_checksum: true
      register: old
    - name: check
      assert:
        that:
          - logs.matched == 2
          - (logs.files | map(attribute='path') | sort | list) == ['/srv/herd-find/a.log', '/srv/herd-find/sub/c.log']
          - logs.files[0].pw_name == 'root'
          - logs.files[0].isreg
          - old.matched == 1
          - old.files[0].path == '/srv/herd-find/sub/c.log'
          - old.files[0].checksum == sum
          - old.msg == 'Not all paths examined, check warnings for details'
          - old.skipped_paths['/srv/herd-none'] is string
"#,
    );
    let sum = f.ssh_ok(HOST, "sha1sum < /srv/herd-find/sub/c.log");
    let sum = format!("sum={}", sum.split(' ').next().unwrap_or_default());
    play.vars(&sum).converge(HOST, 0);
    // Check mode reads the same.
    play.vars(&sum).check().converge(HOST, 0);
}

#[test]
fn slurp_fetch_and_getent_read_the_host() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    f.ssh_ok(
        HOST,
        "mkdir -p /srv/herd-fetch && printf 'token-1\\n' > /srv/herd-fetch/token && head -c 3000 /dev/urandom > /srv/herd-fetch/blob",
    );
    let play = f.play(
        dir.path(),
        "read.yml",
        HOST,
        r#"    - name: slurp
      slurp:
        src: /srv/herd-fetch/token
      register: token
    - name: decoded
      assert:
        that: (token.content | b64decode) == "token-1\n"
    - name: fetch tree
      fetch:
        src: /srv/herd-fetch/blob
        dest: collected
    - name: fetch flat
      fetch:
        src: /srv/herd-fetch/token
        dest: flat/
        flat: true
    - name: getent
      getent:
        database: passwd
        key: root
    - name: home from the fact
      assert:
        that: getent_passwd.root[4] == "/root"
"#,
    );
    // Check mode skips fetch, as Ansible does.
    let check = play.check().converge(HOST, 0);
    assert_eq!(check.results("fetch tree")[0]["status"], "skipped");
    assert!(!dir.path().join("collected").exists(), "{}", check.stdout());
    play.converge(HOST, 2);
    let blob = std::fs::read(
        dir.path()
            .join(format!("collected/{HOST}/srv/herd-fetch/blob")),
    )
    .expect("fetched blob");
    let remote = f.ssh(HOST, "cat /srv/herd-fetch/blob").stdout;
    assert_eq!(blob, remote);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("flat/token"))
            .ok()
            .as_deref(),
        Some("token-1\n")
    );
    play.converge(HOST, 0);
}

#[test]
fn tempfile_and_script_run_on_the_host() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    f.ssh_ok(HOST, "rm -rf /srv/herd-script && mkdir -p /srv/herd-script");
    write_files(
        dir.path(),
        &[(
            "files/prepare.sh",
            "#!/bin/sh\nset -e\necho \"args: $*\"\npwd\ntouch /srv/herd-script/prepared\n",
        )],
    );
    let play = f.play(
        dir.path(),
        "script.yml",
        HOST,
        r#"    - name: scratch
      tempfile:
        state: directory
        suffix: .herd
      register: scratch
    - name: prepare
      script: prepare.sh one "two words" creates=/srv/herd-script/prepared
      args:
        chdir: /srv/herd-script
      register: prep
    - name: output
      assert:
        that: "prep is skipped or prep.stdout_lines == ['args: one two words', '/srv/herd-script']"
    - name: cleanup
      file:
        path: "{{ scratch.path }}"
        state: absent
"#,
    );
    let script_dirs = || f.ssh_ok(HOST, "ls -d /tmp/tmp.* 2>/dev/null | wc -l");
    let before = script_dirs();
    // Check mode: the script (with `creates`) reports changed and does
    // not run; tempfile is skipped, its name being unknowable.
    let check = f.play(
        dir.path(),
        "check.yml",
        HOST,
        "    - name: prepare\n      script: prepare.sh creates=/srv/herd-script/prepared\n    - name: scratch\n      tempfile:\n",
    );
    let run = check.check().converge(HOST, 1);
    assert_eq!(run.result("scratch", HOST)["status"], "skipped");
    assert!(!f
        .ssh(HOST, "test -e /srv/herd-script/prepared")
        .status
        .success());
    play.converge(HOST, 3);
    assert!(f
        .ssh(HOST, "test -e /srv/herd-script/prepared")
        .status
        .success());
    // No copy of the script is left behind.
    assert_eq!(script_dirs(), before);
    // Again: a new temp directory (changed, as in Ansible) and its
    // cleanup; the script is skipped by `creates`.
    let again = play.converge(HOST, 2);
    assert_eq!(again.result("prepare", HOST)["status"], "skipped");
}

/// A package from the fleet's apt repository, installed once.
fn ensure_package(package: &str) {
    let f = fleet();
    let _g = f.lock(HOST);
    f.ssh_ok(
        HOST,
        &format!(
            "dpkg -s {package} >/dev/null 2>&1 || {{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package} >/dev/null; }}"
        ),
    );
}

#[test]
fn git_clones_follows_tags_and_refuses_local_changes() {
    let f = fleet();
    ensure_package("git");
    let dir = tempfile::tempdir().expect("tempdir");
    f.ssh_ok(
        HOST,
        "rm -rf /srv/herd-git && mkdir -p /srv/herd-git/work && cd /srv/herd-git/work && \
         git init -q -b main && echo 1 > a && git add a && \
         git -c user.name=t -c user.email=t@t commit -qm one && git tag v1 && \
         echo 2 > a && git -c user.name=t -c user.email=t@t commit -qam two && \
         git clone -q --bare . /srv/herd-git/up.git",
    );
    let head = f.play(
        dir.path(),
        "git.yml",
        HOST,
        "    - name: clone\n      git:\n        repo: /srv/herd-git/up.git\n        dest: /srv/herd-git/co\n      register: g\n    - name: after\n      assert:\n        that: g.after == two and (g.before is none or g.before == two)\n",
    );
    let two = f.ssh_ok(HOST, "git -C /srv/herd-git/up.git rev-parse main");
    let head = head.vars(format!("two={}", two.trim()));
    head.check().converge(HOST, 1);
    assert!(!f.ssh(HOST, "test -d /srv/herd-git/co").status.success());
    head.converge(HOST, 1);
    assert_eq!(
        f.ssh_ok(HOST, "git -C /srv/herd-git/co rev-parse HEAD"),
        two
    );
    head.converge(HOST, 0);
    let tag = f.play(
        dir.path(),
        "tag.yml",
        HOST,
        "    - name: tag\n      git:\n        repo: /srv/herd-git/up.git\n        dest: /srv/herd-git/co\n        version: v1\n",
    );
    tag.converge(HOST, 1);
    assert_eq!(f.ssh_ok(HOST, "cat /srv/herd-git/co/a"), "1\n");
    tag.converge(HOST, 0);
    f.ssh_ok(HOST, "echo mine > /srv/herd-git/co/a");
    let run = head.run();
    assert_ne!(run.code(), 0);
    let msg = run.result("clone", HOST)["msg"].to_string();
    assert!(msg.contains("Local modifications exist"), "{msg}");
}

#[test]
fn pip_installs_into_a_virtualenv_from_a_local_wheel() {
    let f = fleet();
    ensure_package("python3-venv");
    let dir = tempfile::tempdir().expect("tempdir");
    // A wheel built by hand: the host has no index to install from.
    f.ssh_ok(
        HOST,
        "rm -rf /srv/herd-pip && mkdir -p /srv/herd-pip/wheels && python3 - <<'PY'\n\
import zipfile\n\
name = '/srv/herd-pip/wheels/herdpkg-1.0-py3-none-any.whl'\n\
with zipfile.ZipFile(name, 'w') as z:\n\
\x20   z.writestr('herdpkg/__init__.py', 'VERSION = 1\\n')\n\
\x20   z.writestr('herdpkg-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: herdpkg\\nVersion: 1.0\\n')\n\
\x20   z.writestr('herdpkg-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: herd\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
\x20   z.writestr('herdpkg-1.0.dist-info/RECORD', '')\n\
PY",
    );
    let play = f.play(
        dir.path(),
        "pip.yml",
        HOST,
        "    - name: pip\n      pip:\n        name: herdpkg==1.0\n        virtualenv: /srv/herd-pip/venv\n        virtualenv_command: python3 -m venv\n      environment:\n        PIP_NO_INDEX: \"1\"\n        PIP_FIND_LINKS: /srv/herd-pip/wheels\n",
    );
    play.check().converge(HOST, 1);
    assert!(!f.ssh(HOST, "test -d /srv/herd-pip/venv").status.success());
    play.converge(HOST, 1);
    assert_eq!(
        f.ssh_ok(
            HOST,
            "/srv/herd-pip/venv/bin/python -c 'import herdpkg; print(herdpkg.VERSION)'"
        ),
        "1\n"
    );
    play.converge(HOST, 0);
}

#[test]
fn debconf_dpkg_selections_and_known_hosts_converge() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    f.ssh_ok(
        HOST,
        "rm -rf /srv/herd-kh && mkdir -p /srv/herd-kh && echo 'other ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7' > /srv/herd-kh/known_hosts",
    );
    let key = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let play = f.play(
        dir.path(),
        "sys.yml",
        HOST,
        &format!(
            "    - name: priority\n      debconf:\n        name: debconf\n        question: debconf/priority\n        vtype: select\n        value: critical\n\
             \x20   - name: hold\n      dpkg_selections:\n        name: less\n        selection: hold\n\
             \x20   - name: known\n      known_hosts:\n        path: /srv/herd-kh/known_hosts\n        name: git.example.com\n        key: \"{key}\"\n        hash_host: true\n"
        ),
    );
    play.check().converge(HOST, 3);
    assert_eq!(
        f.ssh_ok(HOST, "dpkg --get-selections less")
            .split_whitespace()
            .nth(1),
        Some("install")
    );
    play.converge(HOST, 3);
    assert!(f
        .ssh_ok(HOST, "debconf-show debconf")
        .contains("debconf/priority: critical"));
    assert_eq!(
        f.ssh_ok(HOST, "dpkg --get-selections less")
            .split_whitespace()
            .nth(1),
        Some("hold")
    );
    let kh = f.ssh_ok(
        HOST,
        "ssh-keygen -F git.example.com -f /srv/herd-kh/known_hosts | grep -v '^#'",
    );
    assert!(kh.starts_with("|1|") && kh.contains("ssh-ed25519"), "{kh}");
    play.converge(HOST, 0);
    f.ssh_ok(
        HOST,
        "echo 'less install' | dpkg --set-selections && echo 'debconf debconf/priority select high' | debconf-set-selections",
    );
}

#[test]
fn facts_modules_wait_and_pause() {
    let f = fleet();
    let dir = tempfile::tempdir().expect("tempdir");
    let play = f.play(
        dir.path(),
        "facts.yml",
        HOST,
        "    - name: wait\n      wait_for_connection:\n        timeout: 30\n    - name: pause\n      pause:\n        seconds: 1\n    - name: services\n      service_facts:\n    - name: packages\n      package_facts:\n    - name: check\n      assert:\n        that:\n          - services['ssh.service'].state == 'running'\n          - services['ssh.service'].source == 'systemd'\n          - packages['less'][0].source == 'apt'\n",
    );
    play.converge(HOST, 0);
    play.check().converge(HOST, 0);
}
