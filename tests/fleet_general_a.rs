//! community.general's `ini_file`, `timezone`, `locale_gen`, `sudoers`,
//! `pam_limits`, `modprobe` and `ufw` under ansible-playbook and under
//! herd, on two fleet hosts put in the same start state: one playbook
//! using all seven, run first with `--check`, then twice for real. Both tools must
//! change as many tasks on each run, and leave the same files behind,
//! the registered results included (the playbook writes them under
//! `/root/parity`, one file per run).
//!
//! Known differences, asserted as such: in check mode the collection's
//! `locale_gen` reports no change for a locale it would generate, herd
//! reports the change. In the fleet's containers the kernel has no
//! `/proc/modules`, so every `modprobe` task fails, with the same message
//! under both tools (ignored by the play); loading and `persistent` are
//! covered by the module's unit tests.

use crate::support::fleet::fleet;
use crate::support::parity::{Parity, Round};
use crate::support::write_files;

const ANSIBLE_HOST: &str = "herd-39";
const HERD_HOST: &str = "herd-40";

/// The same start on both hosts: python3 (for ansible), the locales and
/// kmod packages, and what an earlier run of this test left undone.
const PREPARE: &str = r#"set -e
apt-get update -qq
DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq python3 locales kmod >/dev/null
[ -f /root/limits.conf.orig ] || cp /etc/security/limits.conf /root/limits.conf.orig
cp /root/limits.conf.orig /etc/security/limits.conf
[ -f /root/locale.gen.orig ] || cp /etc/locale.gen /root/locale.gen.orig
if ! cmp -s /root/locale.gen.orig /etc/locale.gen || [ -e /usr/lib/locale/locale-archive ]; then
  cp /root/locale.gen.orig /etc/locale.gen; rm -f /usr/lib/locale/locale-archive
fi
rm -rf /root/parity /etc/herd-parity-base.ini /etc/herd-parity-new.ini /etc/sudoers.d/herd-parity-*
timedatectl set-timezone Etc/UTC
# ufw as installed: off, no rules, default policies and logging (a
# purge removes ufw's files and leaves the application profiles other
# packages put in /etc/ufw, such as openssh-server's).
if command -v ufw >/dev/null; then ufw --force disable >/dev/null; fi
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ufw >/dev/null
DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq ufw >/dev/null
"#;

/// The files the play's modules write.
const PATHS: &[&str] = &[
    "/root/parity",
    "/etc/herd-parity-base.ini",
    "/etc/herd-parity-new.ini",
    "/etc/sudoers.d",
    "/etc/security/limits.conf",
    "/etc/locale.gen",
    "/usr/lib/locale",
    "/etc/timezone",
    "/etc/localtime",
    "/etc/modules-load.d",
    "/etc/modprobe.d",
    "/etc/ufw/user.rules",
    "/etc/ufw/user6.rules",
    "/etc/ufw/ufw.conf",
    "/etc/default/ufw",
];

/// What ufw itself reports, written where it is compared.
const COLLECT: &str = "ufw status verbose > /root/parity/ufw-status";

/// `locale_gen` tasks that change in a check run from the start state:
/// herd reports them, the collection does not.
const LOCALE_CHECK_CHANGES: u64 = 3;

const PLAYBOOK: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: results directory
      file: {path: /root/parity, state: directory, mode: "0755"}
      check_mode: false

    - name: an ini file to edit
      copy:
        dest: /etc/herd-parity-base.ini
        force: false
        content: |
          # top comment
          top = 1
          [server]
          # workers = 4
          host = 0.0.0.0
          bind=127.0.0.1

          [old]
          x = 1
          keep = yes
          [drop]
          y = 2
    - name: ini new file
      community.general.ini_file:
        path: /etc/herd-parity-new.ini
        section: db
        option: port
        value: 5432
        mode: "0640"
      register: ini1
    - name: ini no extra spaces
      ini_file:
        dest: /etc/herd-parity-new.ini
        section: db
        option: host
        value: localhost
        no_extra_spaces: true
      register: ini2
    - name: ini commented option
      community.general.ini_file:
        path: /etc/herd-parity-base.ini
        section: server
        option: workers
        value: "8"
      register: ini3
    - name: ini ignore spaces
      community.general.ini_file:
        path: /etc/herd-parity-base.ini
        section: server
        option: bind
        value: 127.0.0.1
        ignore_spaces: true
      register: ini4
    - name: ini before the first section
      community.general.ini_file:
        path: /etc/herd-parity-base.ini
        option: top
        value: "2"
      register: ini5
    - name: ini values
      community.general.ini_file:
        path: /etc/herd-parity-new.ini
        section: multi
        option: v
        values: [a, b]
      register: ini6
    - name: ini absent option
      community.general.ini_file:
        path: /etc/herd-parity-base.ini
        section: old
        option: x
        state: absent
      register: ini7
    - name: ini absent section
      community.general.ini_file:
        path: /etc/herd-parity-base.ini
        section: drop
        state: absent
      register: ini8
    - name: ini option without value
      community.general.ini_file:
        path: /etc/herd-parity-new.ini
        section: flags
        option: debug
        allow_no_value: true
      register: ini9
    - name: ini section has values
      community.general.ini_file:
        path: /etc/herd-parity-new.ini
        section: user
        option: role
        value: admin
        section_has_values:
          - option: name
            value: bob
      register: ini10
    - name: ini missing file without create
      community.general.ini_file:
        path: /etc/herd-parity-none.ini
        option: a
        value: "1"
        create: false
      register: ini11
      ignore_errors: true

    - name: timezone
      community.general.timezone:
        name: Europe/Paris
      register: tz1
    - name: timezone again
      timezone:
        name: Europe/Paris
      register: tz2
    - name: timezone unknown
      community.general.timezone:
        name: Mars/Phobos
      register: tz3
      ignore_errors: true

    - name: locale
      community.general.locale_gen:
        name: de_DE.UTF-8
      register: lg1
    - name: locales
      locale_gen:
        name: [de_DE.UTF-8, fr_FR.UTF-8]
      register: lg2
    - name: locale generated then removed
      community.general.locale_gen:
        name: es_ES.UTF-8
      register: lg3
    - name: locale removed
      community.general.locale_gen:
        name: es_ES.UTF-8
        state: absent
      register: lg4
    - name: locale unknown
      community.general.locale_gen:
        name: xx_XX.UTF-8
      register: lg5
      ignore_errors: true

    - name: sudoers user rule
      community.general.sudoers:
        name: herd-parity-deploy
        user: deploy
        commands: ALL
      register: su1
    - name: sudoers group rule
      community.general.sudoers:
        name: herd-parity-ops
        group: sudo
        commands: [/usr/bin/ls, /usr/bin/cat]
        nopassword: false
        runas: root
        setenv: true
        noexec: true
      register: su2
    - name: sudoers absent
      community.general.sudoers:
        name: herd-parity-none
        state: absent
      register: su3
    - name: sudoers rejected by visudo
      community.general.sudoers:
        name: herd-parity-bad
        user: deploy
        host: "bad host"
        commands: ALL
      register: su4
      ignore_errors: true

    - name: limit
      community.general.pam_limits:
        domain: herdparity
        limit_type: soft
        limit_item: nofile
        value: 4096
      register: pl1
    - name: limit with comment
      pam_limits:
        domain: herdparity
        limit_type: hard
        limit_item: nofile
        value: "8192"
        comment: parity
      register: pl2
    - name: limit use_max
      community.general.pam_limits:
        domain: "@herdgrp"
        limit_type: "-"
        limit_item: nproc
        value: "100"
        use_max: true
      register: pl3
    - name: limit use_min keeps the smaller
      community.general.pam_limits:
        domain: herdparity
        limit_type: soft
        limit_item: nofile
        value: "8192"
        use_min: true
      register: pl4
    - name: limit unlimited
      community.general.pam_limits:
        domain: herdparity
        limit_type: soft
        limit_item: core
        value: unlimited
      register: pl5
    - name: limit invalid
      community.general.pam_limits:
        domain: herdparity
        limit_type: soft
        limit_item: nice
        value: "40"
      register: pl6
      ignore_errors: true

    - name: modprobe persistent
      community.general.modprobe:
        name: overlay
        persistent: present
      register: mp1
      ignore_errors: true
    - name: modprobe absent
      modprobe:
        name: dummy
        state: absent
      register: mp2
      ignore_errors: true

    - name: ufw lets ssh in before it is enabled
      community.general.ufw: {rule: allow, port: "22", proto: tcp}
      register: uf1
    - name: ufw rate-limits a port, with a comment
      community.general.ufw: {rule: limit, port: "2222", proto: tcp, comment: herd parity}
      register: uf2
    - name: ufw denies a network one port
      ufw: {rule: deny, from_ip: 10.99.0.0/16, to_port: "5432", proto: udp}
      register: uf3
    - name: ufw rejects outgoing smtp on an interface
      ufw: {rule: reject, direction: out, interface: lo, port: "25", proto: tcp}
      register: uf4
    - name: ufw allows an application profile
      ufw: {rule: allow, name: OpenSSH}
      register: uf5
    - name: ufw deletes a rule that is not there
      ufw: {rule: allow, port: "8080", proto: tcp, delete: true}
      register: uf6
    - name: ufw enabled
      ufw: {state: enabled}
      register: uf7
    - name: ufw rejects what else comes in
      ufw: {default: reject, direction: incoming}
      register: uf8
    - name: ufw logs more
      ufw: {logging: medium}
      register: uf9

    - name: results
      check_mode: false
      copy:
        dest: "/root/parity/{{ tag }}"
        content: |
          ini1 {{ ini1.changed }} {{ ini1.msg }} {{ ini1.path }} {{ ini1.state | default('-') }} {{ ini1.mode | default('-') }} {{ ini1.size | default('-') }} {{ ini1.owner | default('-') }}
          ini2 {{ ini2.changed }} {{ ini2.msg }}
          ini3 {{ ini3.changed }} {{ ini3.msg }}
          ini4 {{ ini4.changed }} {{ ini4.msg }} {{ ini4.state | default('-') }} {{ ini4.mode | default('-') }} {{ ini4.size | default('-') }} {{ ini4.group | default('-') }} {{ ini4.uid | default('-') }}
          ini5 {{ ini5.changed }} {{ ini5.msg }}
          ini6 {{ ini6.changed }} {{ ini6.msg }}
          ini7 {{ ini7.changed }} {{ ini7.msg }}
          ini8 {{ ini8.changed }} {{ ini8.msg }}
          ini9 {{ ini9.changed }} {{ ini9.msg }}
          ini10 {{ ini10.changed }} {{ ini10.msg }}
          ini11 {{ ini11.failed }} {{ ini11.msg }} {{ ini11.rc }}
          tz1 {{ tz1.changed }} {{ tz1.diff.before.name }} {{ tz1.diff.after.name }} {{ tz1.msg | default('-') }}
          tz2 {{ tz2.changed }} {{ tz2.diff.before.name }} {{ tz2.diff.after.name }} {{ tz2.msg | default('-') }}
          tz3 {{ tz3.failed }} {{ tz3.msg }}
          {% if tag != 'check' %}
          lg1 {{ lg1.changed }} {{ lg1.name | join(',') }} {{ lg1.mechanism }} {{ lg1.ubuntu_mode }}
          lg2 {{ lg2.changed }} {{ lg2.name | join(',') }}
          lg3 {{ lg3.changed }}
          lg4 {{ lg4.changed }}
          {% endif %}
          lg5 {{ lg5.failed }} {{ lg5.msg }} {{ lg5.mechanism }} {{ lg5.name | join(',') }}
          su1 {{ su1.changed }}
          su2 {{ su2.changed }}
          su3 {{ su3.changed }}
          su4 {{ su4.failed }} {{ su4.msg }}
          pl1 {{ pl1.changed }} {{ pl1.msg }}
          pl2 {{ pl2.changed }} {{ pl2.msg }}
          pl3 {{ pl3.changed }} {{ pl3.msg }}
          pl4 {{ pl4.changed }} {{ pl4.msg }}
          pl5 {{ pl5.changed }} {{ pl5.msg }}
          pl6 {{ pl6.failed }} {{ pl6.msg }}
          mp1 {{ mp1.failed }} {{ mp1.msg }} {{ mp1.name }} {{ mp1.state }}
          mp2 {{ mp2.failed }} {{ mp2.msg }} {{ mp2.name }} {{ mp2.state }}
          uf {{ uf1.changed }} {{ uf2.changed }} {{ uf3.changed }} {{ uf4.changed }} {{ uf5.changed }} {{ uf6.changed }} {{ uf7.changed }} {{ uf8.changed }} {{ uf9.changed }}
"#;

#[test]
fn community_general_system_modules_match_ansible() {
    let f = fleet();
    let _a = f.lock(ANSIBLE_HOST);
    let _h = f.lock(HERD_HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("play.yml", PLAYBOOK)]);
    Parity {
        label: "general_a",
        playbook: dir.path().join("play.yml"),
        ansible_host: ANSIBLE_HOST,
        herd_host: HERD_HOST,
        prepare: PREPARE,
        paths: PATHS,
        collect: COLLECT,
        collections: &["community.general"],
        rounds: &[
            // From the start, herd reports the locale_gen changes the
            // collection does not.
            Round::check("check")
                .vars(&["tag=check"])
                .herd_extra_changes(LOCALE_CHECK_CHANGES),
            Round::apply("first").vars(&["tag=first"]),
            Round::apply("second").vars(&["tag=second"]),
        ],
        ..Parity::default()
    }
    .run();
}
