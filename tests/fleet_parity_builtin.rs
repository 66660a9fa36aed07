//! The ansible.builtin parity playbook (`tests/fixtures/parity/builtin`)
//! under ansible-playbook on `herd-47` and under herd on `herd-48`, from
//! the same fresh state: a first run, a second and a `--check` run change
//! as many tasks with both tools, and leave the same state behind:
//! packages (with the hold of `dpkg_selections`), accounts, every file under `/root/parity` (the registered results of
//! file, copy, template, the line editors, find, stat, slurp, fetch,
//! tempfile, getent, command, shell, script, user, group, apt, systemd,
//! service, cron, the fact modules, known_hosts, get_url, uri, unarchive,
//! git, pip, set_fact and assert are written there by the playbook), the
//! git checkout's files and the trees each tool fetched to the controller.
//!
//! What the playbook works on is made on both hosts first: a tarball and
//! a zip, a bare git repository whose commit has fixed dates (so both
//! hosts' commits have the same id) and a hand-built wheel for pip to
//! install with no index. get_url and uri read the fleet's apt repository.

use crate::support::fleet::fleet;
use crate::support::parity::{tree, Parity};
use crate::support::repo;
use crate::support::state::ACCOUNT_FILES;

const PREPARE: &str = r#"set -e
export DEBIAN_FRONTEND=noninteractive
dpkg -s python3-apt git python3-venv unzip >/dev/null 2>&1 || {
  apt-get update -qq && timeout 300 apt-get install -y -qq python3-apt git python3-venv unzip >/dev/null
}
# What an earlier run on a reused fleet left.
userdel -r parityuser 2>/dev/null || true
groupdel paritygrp 2>/dev/null || true
crontab -r 2>/dev/null || true
echo 'hello install' | dpkg --set-selections
apt-get purge -y -qq cron cron-daemon-common hello tree >/dev/null 2>&1 || true
echo 'debconf debconf/priority select high' | debconf-set-selections
rm -rf /root/parity /root/parity-src /root/parity-git /root/parity-venv
mkdir -p /root/parity-src/bundle/sub /root/parity-src/wheels
cd /root/parity-src
echo one > bundle/one.txt
echo two > bundle/sub/two.txt
touch -d '2024-01-01 00:00:00' bundle/one.txt bundle/sub/two.txt bundle/sub bundle
tar -C bundle --owner=0 --group=0 --mtime='2024-01-01 00:00:00' -czf bundle.tar.gz one.txt sub
python3 - <<'PY'
import zipfile
with zipfile.ZipFile('/root/parity-src/bundle.zip', 'w') as z:
    z.writestr(zipfile.ZipInfo('zipped.txt', (2024, 1, 1, 0, 0, 0)), 'zipped\n')
name = '/root/parity-src/wheels/paritypkg-1.0-py3-none-any.whl'
with zipfile.ZipFile(name, 'w') as z:
    z.writestr('paritypkg/__init__.py', 'VERSION = 1\n')
    z.writestr('paritypkg-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\nName: paritypkg\nVersion: 1.0\n')
    z.writestr('paritypkg-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\nGenerator: parity\nRoot-Is-Purelib: true\nTag: py3-none-any\n')
    z.writestr('paritypkg-1.0.dist-info/RECORD', '')
PY
mkdir work && cd work
git init -q -b main
echo 'parity readme' > README
git add README
GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z' \
  git -c user.name=parity -c user.email=parity@example.com commit -qm one
git clone -q --bare . /root/parity-src/up.git
"#;

#[test]
fn builtin_playbook_leaves_the_same_state_as_ansible() {
    let f = fleet();
    let _a = f.lock("herd-47");
    let _h = f.lock("herd-48");
    let controller = tempfile::tempdir().expect("tempdir");
    let fetch_ansible = controller.path().join("ansible");
    let fetch_herd = controller.path().join("herd");
    let mut paths: Vec<&str> = vec!["/root/parity", "/root/parity-git/checkout/README"];
    paths.extend_from_slice(ACCOUNT_FILES);
    let counts = Parity {
        label: "builtin",
        playbook: repo().join("tests/fixtures/parity/builtin/site.yml"),
        ansible_host: "herd-47",
        herd_host: "herd-48",
        prepare: PREPARE,
        extra_vars: vec![format!("repo_url={}", f.repo_url)],
        ansible_vars: vec![format!("fetch_dest={}", fetch_ansible.display())],
        herd_vars: vec![format!("fetch_dest={}", fetch_herd.display())],
        paths: &paths,
        ..Parity::default()
    }
    .run();
    let ansible_tree = tree(&fetch_ansible);
    assert!(!ansible_tree.is_empty(), "ansible fetched nothing");
    assert_eq!(
        tree(&fetch_herd),
        ansible_tree,
        "herd fetched what ansible fetched"
    );
    // Where ansible's second run changes nothing, herd's does not either
    // (the counts are equal, asserted by the rounds).
    assert_eq!(counts[1].0, counts[1].1);
}
