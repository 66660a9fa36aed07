//! What a fleet host looks like after a run, for the tests that run the
//! same playbook under ansible-playbook and under herd on two fresh hosts
//! and compare what each leaves behind: packages (`dpkg-query`), users and
//! groups (`getent`), services enabled and running (`systemctl`), and kind,
//! mode, owner, group, link target and sha256 of every file under the
//! paths a test names.
//!
//! Registered results are compared the same way: a playbook writes the
//! fields it wants compared into a file under a compared path (say
//! `copy: content="{{ r.changed }} {{ r.rc }}" dest=/root/parity/r`), so a
//! field that differs shows as a differing file.

use crate::support::fleet::fleet;

/// Everything a run may leave behind, one line per fact, in a stable
/// order; the paths to list follow as arguments.
///
/// systemd's time, locale and host-name daemons are left out of the
/// running services: D-Bus starts them for each `timedatectl` (or
/// `localectl`, `hostnamectl`) call and they exit after 30 idle seconds,
/// so whether one still runs says how long ago a tool called, not what
/// state it left.
const STATE_SCRIPT: &str = r#"set -e
echo '# packages'
dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' | sort
echo '# users'
getent passwd | sort
echo '# groups'
getent group | sort
echo '# enabled'
systemctl list-unit-files --state=enabled --no-legend --plain | awk '{print $1}' | sort
echo '# running'
systemctl list-units --type=service --state=running --no-legend --plain | awk '{print $1}' \
  | grep -vxE 'systemd-(timedated|localed|hostnamed)\.service' | sort
echo '# files'
for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ]; then
    find "$p" -printf 'path %p %y %m %u %g %l\n'
    find "$p" -type f -exec sha256sum {} + | sed 's/^/sha256 /'
  else
    echo "absent $p"
  fi
done | sort
"#;

/// Files `user`/`group` tasks write.
pub(crate) const ACCOUNT_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/subuid",
    "/etc/subgid",
    "/home",
    "/var/mail",
];

/// The state listing of `host`, for `paths`.
pub(crate) fn snapshot(host: &str, paths: &[&str]) -> String {
    let quoted: Vec<String> = paths.iter().map(|p| format!("'{p}'")).collect();
    let script = STATE_SCRIPT.replace('\'', r"'\''");
    fleet().ssh_ok(
        host,
        &format!("sh -c '{script}' state {}", quoted.join(" ")),
    )
}

/// Lines of `a` not in `b`.
fn only_in<'a>(a: &'a str, b: &str) -> Vec<&'a str> {
    a.lines().filter(|l| !b.lines().any(|o| o == *l)).collect()
}

/// Asserts that `ansible_host` and `herd_host` are in the same state under
/// `paths`; the message lists the lines only one of them has.
pub(crate) fn assert_same_state(label: &str, ansible_host: &str, herd_host: &str, paths: &[&str]) {
    let by_ansible = snapshot(ansible_host, paths);
    let by_herd = snapshot(herd_host, paths);
    assert!(
        by_ansible.contains("# files"),
        "{label}: the state listing looks empty:\n{by_ansible}"
    );
    let (only_ansible, only_herd) = (
        only_in(&by_ansible, &by_herd),
        only_in(&by_herd, &by_ansible),
    );
    assert!(
        only_ansible.is_empty() && only_herd.is_empty(),
        "{label}: state differs\n--- only with ansible ({ansible_host})\n{}\n--- only with herd \
         ({herd_host})\n{}",
        only_ansible.join("\n"),
        only_herd.join("\n")
    );
}
