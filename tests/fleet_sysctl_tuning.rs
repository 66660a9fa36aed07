//! `sysctl_tuning` on a real host, through the example playbook
//! `playbooks/sysctl-tuning.yml` as users run it: the test writes an
//! inventory of its own over the fleet host and passes `-e` overrides.
//!
//! Kernel keys are host-wide state, so everything runs on `herd-05` under
//! `Fleet::lock`, and the original live values and files are put back at
//! the end, even when an assertion fails.

use serde_json::json;

use crate::support::fleet::{fleet, Fleet};

const HOST: &str = "herd-05";
const NAME: &str = "herdtest-tuning";
const SYSCTL_FILE: &str = "/etc/sysctl.d/60-herdtest-tuning.conf";
const LIMITS_FILE: &str = "/etc/security/limits.d/60-herdtest-tuning.conf";

/// The network profile's keys a container host has (net.core.netdev_max_backlog
/// is machine-wide and absent from a container's network namespace).
const KEYS: [&str; 5] = [
    "net.core.somaxconn",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_tw_reuse",
];

/// Puts the host back as it was when dropped: live values, and no files.
struct Restore<'a> {
    f: &'a Fleet,
    cmd: String,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = self.f.ssh(HOST, &self.cmd);
    }
}

fn live(f: &Fleet, key: &str) -> String {
    f.ssh_ok(HOST, &format!("sysctl -n {key}"))
        .trim()
        .to_string()
}

#[test]
fn sysctl_tuning_example_applies_checks_and_removes_a_profile() {
    let f = fleet();
    let _lock = f.lock(HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = f
        .inventory()
        .group("tuned")
        .root(HOST, HOST, "")
        .write(dir.path(), "inventory.ini");
    let tuning = f
        .herd()
        .example("playbooks/sysctl-tuning.yml")
        .inventory(&inventory);

    let originals: Vec<(&str, String)> = KEYS.iter().map(|k| (*k, live(f, k))).collect();
    let mut cmd = format!("rm -f {SYSCTL_FILE} {LIMITS_FILE}");
    for (k, v) in &originals {
        cmd.push_str(&format!("; sysctl -w {k}='{v}' >/dev/null"));
    }
    let _restore = Restore {
        f,
        cmd: cmd.clone(),
    };
    f.ssh_ok(HOST, &format!("rm -f {SYSCTL_FILE} {LIMITS_FILE}"));
    // somaxconn already above the profile's 32768: only_raise keeps it.
    f.ssh_ok(HOST, "sysctl -w net.core.somaxconn=40000");

    let vars = json!({
        "tuning_name": NAME,
        "tuning_profiles": ["network"],
        "tuning_params": {
            "net.core.netdev_max_backlog": null,
            "net.ipv4.tcp_fin_timeout": 20,
            "net.ipv4.tcp_keepalive_time": 300,
        },
        "tuning_limits": true,
    });
    let r = tuning.vars(&vars).converge(HOST, 1);
    let report = r.results("Report each key's value before and after");
    let keys = &report[0]["output"]["tuning['keys']"];
    let fin_before = originals[1].1.clone();
    assert_eq!(
        keys["net.ipv4.tcp_fin_timeout"],
        json!({"before": fin_before, "after": "20"}),
        "{}",
        r.stdout()
    );
    assert_eq!(
        keys["net.core.somaxconn"],
        json!({"before": "40000", "after": "40000"})
    );
    assert_eq!(
        f.ssh_ok(HOST, &format!("cat {SYSCTL_FILE}")),
        "# Managed by herd (sysctl_tuning). Local changes are overwritten.\n\
         net.core.somaxconn = 40000\n\
         net.ipv4.tcp_fin_timeout = 20\n\
         net.ipv4.tcp_keepalive_time = 300\n\
         net.ipv4.tcp_max_syn_backlog = 16384\n\
         net.ipv4.tcp_tw_reuse = 1\n"
    );
    assert_eq!(
        f.ssh_ok(HOST, &format!("cat {LIMITS_FILE}")),
        "# Managed by herd (sysctl_tuning). Local changes are overwritten.\n\
         * soft nofile 65536\n* hard nofile 65536\n* soft nproc 32768\n* hard nproc 32768\n"
    );
    for (k, want) in [
        ("net.core.somaxconn", "40000"),
        ("net.ipv4.tcp_fin_timeout", "20"),
        ("net.ipv4.tcp_keepalive_time", "300"),
        ("net.ipv4.tcp_max_syn_backlog", "16384"),
        ("net.ipv4.tcp_tw_reuse", "1"),
    ] {
        assert_eq!(live(f, k), want, "{k}");
    }

    // Idempotent: the second run changes nothing.
    tuning.vars(&vars).converge(HOST, 0);

    // A different value in check mode is reported with its change line and
    // diff, and changes nothing.
    let mut other = vars.clone();
    other["tuning_params"]["net.ipv4.tcp_fin_timeout"] = json!(25);
    let r = tuning.vars(&other).check().diff().converge(HOST, 1);
    let applied = r.results("Apply the kernel profile");
    let changes = applied[0]["changes"].to_string();
    assert!(
        changes.contains("net.ipv4.tcp_fin_timeout 20 -> 25"),
        "{changes}"
    );
    assert!(
        r.stdout().contains("net.ipv4.tcp_fin_timeout = 25"),
        "{}",
        r.stdout()
    );
    assert_eq!(live(f, "net.ipv4.tcp_fin_timeout"), "20");
    let file = f.ssh_ok(HOST, &format!("cat {SYSCTL_FILE}"));
    assert!(file.contains("net.ipv4.tcp_fin_timeout = 20\n"), "{file}");

    // Outside net.* the keys are read-only in a container host: the task
    // fails naming both keys and why, and the previous file stays.
    let es = json!({
        "tuning_name": NAME,
        "tuning_profiles": ["elasticsearch"],
        "tuning_params": {},
        "tuning_only_raise": false,
    });
    let r = tuning.vars(&es).run();
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert_eq!(r.stat(HOST, "failed"), 1);
    let out = r.stdout();
    for key in ["vm.max_map_count", "vm.swappiness"] {
        assert!(
            out.contains(&format!("{key} (read-only in this namespace")),
            "{key}: {out}"
        );
    }
    assert_eq!(f.ssh_ok(HOST, &format!("cat {SYSCTL_FILE}")), file);
    assert_eq!(live(f, "net.ipv4.tcp_fin_timeout"), "20");

    // state: absent removes both files; a second time there is nothing to do.
    let absent = json!({"tuning_name": NAME, "tuning_state": "absent"});
    tuning.vars(&absent).converge(HOST, 1);
    assert!(!f
        .ssh(
            HOST,
            &format!("test -e {SYSCTL_FILE} || test -e {LIMITS_FILE}")
        )
        .status
        .success());
    tuning.vars(&absent).converge(HOST, 0);

    f.ssh_ok(HOST, &cmd);
    for (k, v) in &originals {
        assert_eq!(&live(f, k), v, "{k} restored");
    }
}
