//! Parity of the `apt`, `user` and `copy` features that closed gaps with
//! Ansible: `upgrade`, `autoremove`, `autoclean`, `purge`,
//! `install_recommends`, `only_upgrade`, `force`; a user's expiry, lock and
//! password ageing; directory copies from the controller (with and without
//! a trailing slash, one file) and on the host (`remote_src`). One
//! playbook runs under ansible-playbook on `herd-45` and under herd on
//! `herd-46` from the same start: in check mode, then twice (equal
//! `changed` counts; the second run changes only the file the results are
//! written to), and the hosts end in the same state (packages, users, the
//! copied trees, the registered results).

use std::path::Path;

use crate::support::fleet::fleet;
use crate::support::parity::{Parity, Round};
use crate::support::write_files;

const ANSIBLE_HOST: &str = "herd-45";
const HERD_HOST: &str = "herd-46";

/// The same start on both hosts: python3 and python3-apt for Ansible,
/// fresh lists, `tree` and `cron` installed (to purge, and to leave an
/// orphan for `autoremove`), what the playbook installs removed, a locked
/// user with an expiry to clear, the host-side source tree.
const PREPARE: &str = r#"set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
timeout 300 apt-get install -y -qq python3 python3-apt tree cron >/dev/null
apt-get purge -y -qq hello zip unzip >/dev/null
apt-get autoremove -y -qq >/dev/null
for u in bgu1 bgu2; do if getent passwd $u >/dev/null; then userdel -r $u 2>/dev/null || userdel $u; fi; done
useradd -m -p '$6$bg$Vb1n0bSBQ2bPjmxkQUO1oG4yqi/6zZ6SMW9N8Z0xtEe9bRhSdy6/Ew2ff6m6PQvIRVvlnQHxGZmkVzK/OcsGd.' -e 2031-01-01 bgu2
usermod -L bgu2
rm -rf /root/parity /srv/bg /srv/bg-src
mkdir -p /root/parity /srv/bg/remote1 /srv/bg-src/sub/deep
printf 'a\n' > /srv/bg-src/a.txt
printf 'b\n' > /srv/bg-src/sub/b.txt
printf '#!/bin/sh\n' > /srv/bg-src/sub/deep/c.sh
chmod 0755 /srv/bg-src/sub/deep/c.sh
"#;

const PLAYBOOK: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: install hello
      apt:
        name: [hello]
        update_cache: yes
        cache_valid_time: 3600
        dpkg_options: force-confdef,force-confold
      register: a_install
    - name: zip without its recommended unzip
      apt:
        name: zip
        install_recommends: no
      register: a_zip
    - name: only upgrade what is installed
      apt:
        name: unzip
        only_upgrade: yes
      register: a_only
    - name: purge tree
      apt:
        name: tree
        state: absent
        purge: yes
      register: a_purge
    - name: remove cron, leaving its dependency
      apt:
        name: cron
        state: absent
        purge: yes
      register: a_cron
    - name: autoremove
      apt:
        autoremove: yes
        purge: yes
      register: a_autoremove
    - name: dist upgrade
      apt:
        upgrade: dist
      register: a_dist
    - name: safe upgrade
      apt:
        upgrade: yes
        autoremove: yes
      register: a_safe
    - name: autoclean
      apt:
        autoclean: yes
        autoremove: yes
      register: a_autoclean
    - name: lists only
      apt:
        update_cache: yes
        cache_valid_time: 3600
      register: a_lists
    - name: user with expiry, lock and ageing
      user:
        name: bgu1
        shell: /bin/bash
        password: "$6$bg$Vb1n0bSBQ2bPjmxkQUO1oG4yqi/6zZ6SMW9N8Z0xtEe9bRhSdy6/Ew2ff6m6PQvIRVvlnQHxGZmkVzK/OcsGd."
        expires: 1893499200.5
        password_lock: yes
        password_expire_max: 90
        password_expire_min: 1
        password_expire_warn: 10
      register: u1
    - name: clear expiry and unlock
      user:
        name: bgu2
        expires: -1
        password_lock: no
      register: u2
    - name: controller directory itself
      copy:
        src: site
        dest: /srv/bg/local1
      register: c1
    - name: controller directory contents
      copy:
        src: site/
        dest: /srv/bg/local2/
        mode: "0640"
        directory_mode: "0750"
        group: adm
      register: c2
    - name: controller directory of one file
      copy:
        src: one/
        dest: /srv/bg/one/
      register: c3
    - name: host directory itself
      copy:
        src: /srv/bg-src
        dest: /srv/bg/remote1
        remote_src: yes
        mode: "0750"
      register: c4
    - name: host directory contents
      copy:
        src: /srv/bg-src/
        dest: /srv/bg/remote2
        remote_src: yes
        group: adm
      register: c5
    - name: results
      copy:
        dest: "/root/parity/run-{{ run }}"
        content: |
          {% for n, r in [('a_install', a_install), ('a_zip', a_zip), ('a_only', a_only), ('a_purge', a_purge), ('a_cron', a_cron), ('a_autoremove', a_autoremove), ('a_dist', a_dist), ('a_safe', a_safe), ('a_autoclean', a_autoclean), ('a_lists', a_lists)] %}
          {{ n }} changed={{ r.changed }} stdout={{ 'stdout' in r }} stderr={{ 'stderr' in r }} msg={{ 'msg' in r }} cache_updated={{ r.cache_updated | default('-') }} cache_time={{ (r.cache_update_time | default(-1)) > 0 if 'cache_update_time' in r else '-' }}
          {% endfor %}
          u1 changed={{ u1.changed }} name={{ u1.name | default('-') }} uid={{ u1.uid | default('-') }} shell={{ u1.shell | default('-') }}
          u2 changed={{ u2.changed }}
          c1 changed={{ c1.changed }} dest={{ c1.dest | default('-') }} src={{ c1.src | default('-') | basename }}
          c2 changed={{ c2.changed }} dest={{ c2.dest | default('-') }}
          c3 changed={{ c3.changed }} dest={{ c3.dest | default('-') }} checksum={{ c3.checksum | default('-') }}
          c4 changed={{ c4.changed }} dest={{ c4.dest | default('-') }} src={{ c4.src | default('-') }}
          c5 changed={{ c5.changed }} dest={{ c5.dest | default('-') }} src={{ c5.src | default('-') }}
"#;

fn project(dir: &Path) {
    write_files(
        dir,
        &[
            ("site.yml", PLAYBOOK),
            ("files/site/a.txt", "a\n"),
            ("files/site/run.sh", "#!/bin/sh\necho hi\n"),
            ("files/site/sub/b.txt", "b\n"),
            ("files/site/sub/deeper/c.txt", "c\n"),
            ("files/one/only.conf", "only\n"),
        ],
    );
    std::fs::create_dir_all(dir.join("files/site/empty")).expect("empty dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("files/site/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
}

#[test]
fn apt_user_and_directory_copies_match_ansible() {
    let f = fleet();
    let _a = f.lock(ANSIBLE_HOST);
    let _h = f.lock(HERD_HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    project(dir.path());
    let counts = Parity {
        label: "builtin gaps",
        playbook: dir.path().join("site.yml"),
        ansible_host: ANSIBLE_HOST,
        herd_host: HERD_HOST,
        prepare: PREPARE,
        paths: &[
            "/etc/passwd",
            "/etc/group",
            "/etc/shadow",
            "/home",
            "/srv/bg",
            "/root/parity",
        ],
        rounds: &[
            // Check mode from the fresh start changes as many tasks, and
            // nothing on the hosts.
            Round::check("check")
                .vars(&["run=check"])
                .leaves_hosts_unchanged(),
            Round::apply("first").vars(&["run=1"]),
            Round::apply("second").vars(&["run=2"]),
        ],
        ..Parity::default()
    }
    .run();
    assert_eq!(
        counts[2],
        (1, 1),
        "a second run changes only the results file"
    );
}
