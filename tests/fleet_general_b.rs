//! archive, alternatives, acl, at and iptables under ansible-playbook (on
//! herd-41) and under herd (on herd-42): one playbook using the five
//! modules, run from the same start on both hosts, twice and then with
//! `--check`, each run changing as many tasks with herd as with Ansible.
//! What they leave behind is compared: the files under the paths the
//! modules touch (archives excepted: Python's tarfile and zipfile write
//! other bytes than the host's tar and zip, so their member lists are
//! compared instead), the registered results the playbook writes under
//! `/root/parity`, the iptables rules (`iptables-save` without counters
//! and comments) and the `at` queue (how many jobs and what they run; job
//! times differ).

use crate::support::fleet::fleet;
use crate::support::parity::{Parity, Round};
use crate::support::write_files;

const ANSIBLE_HOST: &str = "herd-41";
const HERD_HOST: &str = "herd-42";

/// The packages the modules drive (unzip: herd compares zip members
/// with it) and python3 for Ansible, on both hosts alike.
const INSTALL: &str = "for t in setfacl atq iptables zip unzip bzip2 xz python3; do \
    command -v $t >/dev/null || missing=1; done; \
    [ -z \"$missing\" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 \
    apt-get install -y -qq acl at iptables zip unzip bzip2 xz-utils python3 >/dev/null; }; \
    systemctl start atd";

/// The same start on both hosts (also after an earlier run of this test
/// on a reused fleet): no test files, rules, jobs or alternatives, then
/// what the removing tasks remove.
const RESET: &str = r#"set -e
rm -rf /root/arch /root/acl /root/parity /root/at-script.sh
for n in herdtest herdtest2 herdold; do update-alternatives --remove-all $n >/dev/null 2>&1 || true; done
rm -f /usr/local/bin/herdtest /usr/local/bin/herdtest2 /usr/local/bin/herdtest2-sub /usr/local/bin/herdold
for t in filter nat; do iptables -t $t -F; done
iptables -X HERDCHAIN 2>/dev/null || true
iptables -P FORWARD ACCEPT
for j in $(atq | awk '{print $1}'); do atrm $j; done
update-alternatives --install /usr/local/bin/herdold herdold /usr/bin/true 1 >/dev/null
mkdir -p /root/acl && echo two > /root/acl/f2 && setfacl -m u:bin:rw /root/acl/f2
echo 'echo HERDAT-script' > /root/at-script.sh
echo 'echo HERDAT-old' | at now + 3 hours 2>/dev/null
iptables -A INPUT -p tcp --destination-port 9999 -j ACCEPT
"#;

const PLAYBOOK: &str = r#"- hosts: all
  gather_facts: false
  tasks:
    - name: sources
      file: {path: "{{ item }}", state: directory}
      loop: [/root/arch/src/sub, /root/arch/out, /root/parity]
    - name: source files
      copy: {dest: "{{ item.d }}", content: "{{ item.c }}\n"}
      loop:
        - {d: /root/arch/src/a.txt, c: alpha}
        - {d: /root/arch/src/b.log, c: log line}
        - {d: /root/arch/src/sub/c.txt, c: gamma}
        - {d: /root/arch/single.txt, c: single}
    - name: was the removed tree archived
      stat: {path: /root/arch/out/rm.tar}
      register: rmtar
    - name: a tree to archive and remove
      file: {path: /root/arch/rm/sub, state: directory}
      when: not rmtar.stat.exists
    - name: a file in it
      copy: {dest: /root/arch/rm/sub/x.txt, content: "x\n"}
      when: not rmtar.stat.exists

    - name: a tree as tar.gz without logs
      archive:
        path: /root/arch/src
        dest: /root/arch/out/src.tgz
        exclusion_patterns: ["*.log"]
      register: a1
    - name: two paths as zip
      community.general.archive:
        path: [/root/arch/src/a.txt, /root/arch/src/sub]
        dest: /root/arch/out/two.zip
        format: zip
        mode: "0640"
      register: a2
    - name: one file compressed
      archive: {path: /root/arch/single.txt, format: bz2, mode: "0600"}
      register: a3
    - name: a glob as tar.xz
      archive:
        path: /root/arch/src/*.t?t
        dest: /root/arch/out/glob.tar.xz
        format: xz
        exclude_path: [/root/arch/src/b.log]
      register: a4
    - name: a tree archived and removed
      archive: {path: /root/arch/rm, dest: /root/arch/out/rm.tar, format: tar, remove: true}
      register: a5
    - name: one path missing
      archive:
        path: [/root/arch/src/a.txt, /root/arch/nope]
        dest: /root/arch/out/inc.tgz
      register: a6

    - name: an alternative, present
      alternatives: {name: herdtest, path: /usr/bin/true, link: /usr/local/bin/herdtest, priority: 10, state: present}
      register: l1
    - name: another, selected
      community.general.alternatives: {name: herdtest, path: /usr/bin/false, priority: 20}
      register: l2
    - name: with a subcommand, auto
      alternatives:
        name: herdtest2
        path: /usr/bin/true
        link: /usr/local/bin/herdtest2
        priority: 30
        state: auto
        subcommands:
          - {name: herdtest2-sub, link: /usr/local/bin/herdtest2-sub, path: /usr/bin/false}
      register: l3
    - name: a second one of the group, present
      alternatives:
        name: herdtest2
        path: /usr/bin/false
        link: /usr/local/bin/herdtest2
        priority: 5
        state: present
        slaves:
          - {name: herdtest2-sub, link: /usr/local/bin/herdtest2-sub, path: /usr/bin/true}
      register: l4
    - name: an old one removed
      alternatives: {name: herdold, path: /usr/bin/true, state: absent}
      register: l5

    - name: acl files
      copy: {dest: /root/acl/f, content: "one\n"}
    - name: acl dir
      file: {path: /root/acl/d/sub, state: directory}
    - name: a user entry
      acl: {path: /root/acl/f, entity: nobody, etype: user, permissions: r, state: present}
      register: c1
    - name: a default group entry
      ansible.posix.acl: {path: /root/acl/d, entity: nogroup, etype: group, permissions: rx, default: true, state: present}
      register: c2
    - name: a recursive entry
      acl: {path: /root/acl/d, entry: "user:daemon:rwX", recursive: true, state: present}
      register: c3
    - name: an entry removed
      acl: {path: /root/acl/f2, entity: bin, etype: user, state: absent}
      register: c4
    - name: the acl read
      acl: {path: /root/acl/f}
      register: c5

    - name: a unique job
      at: {command: "echo HERDAT-a > /tmp/herdat-a", count: 20, units: minutes, unique: true}
      register: t1
    - name: another unique job
      ansible.posix.at: {command: "echo HERDAT-b", count: 2, units: hours, unique: true}
      register: t2
    - name: a script file job
      at: {script_file: /root/at-script.sh, count: 1, units: days, unique: true}
      register: t3
    - name: a job removed
      at: {command: "echo HERDAT-old", state: absent}
      register: t4

    - name: a rule appended
      iptables: {chain: INPUT, protocol: tcp, destination_port: "2222", jump: ACCEPT, comment: herd alt ssh}
      register: i1
    - name: a rule inserted
      ansible.builtin.iptables: {chain: INPUT, source: 192.0.2.0/24, jump: DROP, action: insert, rule_num: "1"}
      register: i2
    - name: a chain
      iptables: {chain: HERDCHAIN, chain_management: true}
      register: i3
    - name: a rule in it
      iptables:
        chain: HERDCHAIN
        protocol: udp
        destination_ports: ["53", "5353"]
        ctstate: [NEW, ESTABLISHED]
        jump: RETURN
      register: i4
    - name: a policy
      iptables: {chain: FORWARD, policy: DROP}
      register: i5
    - name: limits and icmp
      iptables: {chain: INPUT, protocol: icmp, icmp_type: echo-request, limit: 10/second, limit_burst: "20", jump: ACCEPT}
      register: i6
    - name: owner and reject
      iptables: {chain: OUTPUT, protocol: tcp, destination_port: "25", uid_owner: "0", jump: REJECT, reject_with: tcp-reset}
      register: i7
    - name: syn logged
      iptables: {chain: INPUT, protocol: tcp, syn: match, destination_port: "80", log_prefix: "HERD ", log_level: info}
      register: i8
    - name: nat redirect
      iptables: {table: nat, chain: PREROUTING, protocol: tcp, in_interface: host0, destination_port: "8080", jump: REDIRECT, to_ports: "80"}
      register: i9
    - name: a rule removed
      iptables: {chain: INPUT, protocol: tcp, destination_port: "9999", jump: ACCEPT, state: absent}
      register: i10

    - name: what the modules registered, the same on every run
      when: not ansible_check_mode
      copy:
        dest: /root/parity/stable
        content: |
          a1 {{ a1.dest_state }} {{ a1.archived | sort }} {{ a1.missing }} {{ a1.arcroot }} {{ a1.expanded_paths }} {{ a1.expanded_exclude_paths }} {{ a1.dest }} {{ a1.state }}
          a2 {{ a2.dest_state }} {{ a2.archived | sort }} {{ a2.arcroot }} {{ a2.mode }}
          a3 {{ a3.dest_state }} {{ a3.archived }} {{ a3.dest }} {{ a3.mode }}
          a4 {{ a4.dest_state }} {{ a4.archived | sort }} {{ a4.expanded_paths | sort }} {{ a4.expanded_exclude_paths }}
          a5 {{ a5.dest_state }} {{ a5.expanded_paths }} {{ a5.arcroot }}
          a6 {{ a6.dest_state }} {{ a6.archived }} {{ a6.missing }}
          c {{ c1.msg }} {{ c1.acl }} | {{ c2.msg }} {{ c2.acl }} | {{ c3.msg }} {{ c3.acl }} | {{ c4.msg }} {{ c4.acl }} | {{ c5.msg }} {{ c5.acl }}
          t {{ t1.state }} {{ t4.state }}
          {% for i in [i1, i2, i3, i4, i5, i6, i7, i8, i9, i10] %}
          i {{ i.rule }} {{ i.table }} {{ i.chain }} {{ i.state }} {{ i.flush }} {{ i.ip_version }} {{ i.chain_management }}
          {% endfor %}
    - name: what the modules registered on this run
      when: not ansible_check_mode
      copy:
        dest: "/root/parity/run-{{ run }}"
        content: |
          {% for r in [a1, a2, a3, a4, a5, a6, l1, l2, l3, l4, l5, c1, c2, c3, c4, c5, t1, t2, t3, t4, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10] %}
          {{ loop.index }} {{ r.changed }}
          {% endfor %}
          a5 {{ a5.archived | sort }} {{ a5.missing }}
          l {{ l1.msg }} | {{ l2.msg }} | {{ l3.msg }} | {{ l4.msg }} | {{ l5.msg }}
          t {{ t1.count | default('-') }} {{ t1.units | default('-') }} {{ t3.count | default('-') }} {{ t2.script_file is defined }}
"#;

/// Member lists of the archives, the rules and the at queue, as text
/// that does not depend on which tool wrote them or when.
const OBSERVE: &str = r#"cd /root/arch/out
for f in src.tgz glob.tar.xz rm.tar inc.tgz; do echo "== $f"; tar -tvf $f | awk '{print $1, $2, $3, $6}' | sort; done
echo "== two.zip"; unzip -Z1 two.zip | sort
echo "== single"; bzip2 -dc /root/arch/single.txt.bz2
echo "== iptables"; iptables-save | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'
echo "== iptables nat"; iptables-save -t nat | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'
echo "== atq"; atq | wc -l
for j in $(atq | awk '{print $1}'); do at -c $j | grep HERDAT; done | sort
echo "== acl"; getfacl -R --absolute-names /root/acl
echo "== alternatives"; for n in herdtest herdtest2 herdold; do update-alternatives --query $n 2>&1 || echo "no $n"; done
"#;

/// The paths compared file by file (archives are compared by their
/// members in [`OBSERVE`]).
const PATHS: &[&str] = &[
    "/root/arch/src",
    "/root/arch/rm",
    "/root/arch/single.txt",
    "/root/acl",
    "/root/parity",
    "/etc/alternatives",
    "/var/lib/dpkg/alternatives",
    "/usr/local/bin",
];

#[test]
fn general_b_modules_leave_the_same_state_with_ansible_and_herd() {
    let f = fleet();
    let _a = f.lock(ANSIBLE_HOST);
    let _h = f.lock(HERD_HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("play.yml", PLAYBOOK)]);
    let prepare = format!("{INSTALL}\n{RESET}");
    Parity {
        label: "general-b",
        playbook: dir.path().join("play.yml"),
        ansible_host: ANSIBLE_HOST,
        herd_host: HERD_HOST,
        prepare: &prepare,
        paths: PATHS,
        collections: &["community.general", "ansible.posix"],
        rounds: &[
            Round::apply("first").vars(&["run=1"]),
            Round::apply("second").vars(&["run=2"]),
            Round::check("check").vars(&["run=3"]),
        ],
        ..Parity::default()
    }
    .run();
    let seen_a = f.ssh_ok(ANSIBLE_HOST, OBSERVE);
    let seen_h = f.ssh_ok(HERD_HOST, OBSERVE);
    assert!(seen_a.contains("HERDAT-a"), "{seen_a}");
    assert_eq!(
        seen_h, seen_a,
        "archives, rules, jobs, ACLs and alternatives"
    );
}
