//! `volume_backup` on a real Docker host, through the example playbooks
//! `playbooks/volume-backup.yml` and `playbooks/volume-restore.yml` as users
//! run them: the test writes an inventory of its own over the fleet host and
//! passes `-e` overrides.
//!
//! Everything runs on `herd-10` (the fleet's volume_backup host) with names
//! of its own (`herdtest_vb_*`, `/backup/herdtest`), cleaned before and
//! after, even when an assertion fails.

use serde_json::{json, Value};

use crate::support::fleet::{fleet, Fleet};

const HOST: &str = "herd-10";
const VOLUME: &str = "herdtest_vb_data";
const APP: &str = "herdtest-vb-app";
const BACKUP: &str = "/backup/herdtest";
const SMALL: &str = "/backup/herdtest-small";
const COMPOSE: &str = "/opt/herdtest-vb";

const CLEANUP: &str = "docker rm -f herdtest-vb-app >/dev/null 2>&1; \
    docker volume rm -f herdtest_vb_data herdtest_vb_other >/dev/null 2>&1; \
    umount /backup/herdtest-small 2>/dev/null; \
    rm -rf /backup/herdtest /backup/herdtest-small /opt/herdtest-vb; true";

struct Cleanup<'a>(&'a Fleet);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(HOST, CLEANUP);
    }
}

/// Every file's checksum, and every path's owner and mode, in the volume.
fn volume_sums(f: &Fleet) -> String {
    f.ssh_ok(
        HOST,
        &format!(
            "cd \"$(docker volume inspect -f '{{{{.Mountpoint}}}}' {VOLUME})\" && \
             find . -type f -exec sha256sum {{}} + | sort && find . -printf '%p %U:%G %m\\n' | sort"
        ),
    )
}

fn started_at(f: &Fleet) -> String {
    f.ssh_ok(
        HOST,
        &format!("docker inspect -f '{{{{.State.StartedAt}}}}' {APP}"),
    )
    .trim()
    .to_string()
}

fn running(f: &Fleet) -> String {
    f.ssh_ok(
        HOST,
        &format!("docker inspect -f '{{{{.State.Status}}}}' {APP}"),
    )
    .trim()
    .to_string()
}

fn archives(f: &Fleet, dir: &str) -> Vec<String> {
    f.ssh_ok(HOST, &format!("ls -1A {dir}/volumes 2>/dev/null; true"))
        .lines()
        .map(str::to_string)
        .collect()
}

// One fleet scenario, step by step, against hosts built once: tests are
// exempt from the 150-line limit.
#[allow(clippy::too_many_lines)]
#[test]
fn volume_backup_example_backs_up_restores_and_keeps_the_newest_archive() {
    let f = fleet();
    f.ensure_docker(HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = f
        .inventory()
        .group("docker_backup")
        .root(HOST, HOST, "")
        .write(dir.path(), "inventory.ini");
    let example = |playbook| f.herd().example(playbook).inventory(&inventory).limit(HOST);
    let backup_run = example("playbooks/volume-backup.yml");
    let restore_run = example("playbooks/volume-restore.yml");
    let fetched = dir.path().join("fetched");

    f.ssh_ok(HOST, CLEANUP);
    let _cleanup = Cleanup(f);
    // A volume with data of a container user (uid 1000, mode 0750), used by
    // a running container; a compose project; two archives from 2020.
    f.ssh_ok(
        HOST,
        &format!(
            "set -e; docker volume create {VOLUME} >/dev/null; \
             docker run --rm --network none -v {VOLUME}:/data herd/busybox:1 sh -c \
             'mkdir -p /data/sub && echo hello > /data/a.txt && head -c 300000 /dev/urandom > /data/sub/blob \
              && chown -R 1000:1000 /data/sub && chmod 0750 /data/sub'; \
             docker run -d --name {APP} --network none -v {VOLUME}:/data herd/busybox:1 sleep 100000 >/dev/null; \
             mkdir -p {COMPOSE} && echo 'services: {{}}' > {COMPOSE}/compose.yml && echo TAG=1 > {COMPOSE}/.env; \
             mkdir -p {BACKUP}/volumes && mp=$(docker volume inspect -f '{{{{.Mountpoint}}}}' {VOLUME}); \
             for t in 20200101_000000 20200201_000000; do \
               tar -czf {BACKUP}/volumes/{VOLUME}_$t.tar.gz -C \"$mp\" .; \
               (cd {BACKUP} && sha256sum volumes/{VOLUME}_$t.tar.gz > manifest_$t.sha256); done"
        ),
    );
    let before = volume_sums(f);
    let started = started_at(f);

    let vars = json!({
        "backup_volumes": ["herdtest_vb_*"],
        "backup_compose_dirs": [COMPOSE],
        "backup_images": ["herd/busybox:1"],
        "backup_dir": BACKUP,
        "backup_consistency": "stop",
        "backup_keep_days": 30,
        "backup_fetch_to": fetched.display().to_string(),
    });

    // Check mode: lists the archives and retention, writes nothing, leaves
    // the container alone.
    let r = backup_run.vars(&vars).check().converge(HOST, 1);
    let changes = r.results("Archive volumes, compose files, /etc/docker and images")[0]["changes"]
        .to_string();
    for want in [
        "back up volume herdtest_vb_data to /backup/herdtest/volumes/herdtest_vb_data_<timestamp>.tar.gz (stopping herdtest-vb-app)",
        "back up compose files of /opt/herdtest-vb (2 files)",
        "back up /etc/docker",
        "back up image herd/busybox:1",
        "remove /backup/herdtest/volumes/herdtest_vb_data_20200101_000000.tar.gz (retention)",
    ] {
        assert!(changes.contains(want), "{want}: {changes}");
    }
    assert_eq!(archives(f, BACKUP).len(), 2);
    assert_eq!(started_at(f), started);

    // The backup: the container was stopped and is running again, every
    // archive verifies against the manifest, the 2020 ones are gone.
    backup_run.vars(&vars).converge(HOST, 1);
    assert_eq!(running(f), "running");
    assert_ne!(
        started_at(f),
        started,
        "the container was stopped and started"
    );
    let check = f.ssh_ok(
        HOST,
        &format!("cd {BACKUP} && sha256sum -c manifest_*.sha256"),
    );
    assert_eq!(check.matches(": OK").count(), 4, "{check}");
    let vols = archives(f, BACKUP);
    assert_eq!(vols.len(), 1, "{vols:?}");
    assert!(
        vols[0].starts_with("herdtest_vb_data_2") && !vols[0].contains("2020"),
        "{vols:?}"
    );
    let archive = vols[0].clone();
    let configs = f.ssh_ok(HOST, &format!("ls -1 {BACKUP}/configs {BACKUP}/images"));
    assert!(
        configs.contains("compose-opt-herdtest-vb_")
            && configs.contains("etc-docker_")
            && configs.contains("herd-busybox-1_"),
        "{configs}"
    );
    let listed = f.ssh_ok(
        HOST,
        &format!("tar -tzf {BACKUP}/configs/compose-opt-herdtest-vb_*.tar.gz | sort"),
    );
    assert_eq!(listed, ".env\ncompose.yml\n");
    let copy = fetched.join(HOST).join("volumes").join(&archive);
    let remote_sum = f.ssh_ok(HOST, &format!("sha256sum < {BACKUP}/volumes/{archive}"));
    let local = std::process::Command::new("sha256sum")
        .arg(&copy)
        .output()
        .expect("sha256sum");
    assert_eq!(
        String::from_utf8_lossy(&local.stdout)
            .split_whitespace()
            .next(),
        remote_sum.split_whitespace().next(),
        "the controller's copy"
    );

    // An archive step that fails (a 64 KiB filesystem fills up) fails the
    // run, and the container runs again.
    f.ssh_ok(
        HOST,
        &format!("mkdir -p {SMALL} && mount -t tmpfs -o size=64k tmpfs {SMALL}"),
    );
    let mut small = vars.clone();
    small["backup_dir"] = json!(SMALL);
    small["backup_compose_dirs"] = json!([]);
    small["backup_images"] = json!([]);
    small["backup_docker_config"] = json!(false);
    small["backup_fetch_to"] = Value::Null;
    let before_fail = started_at(f);
    let r = backup_run.vars(&small).run();
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert_eq!(r.stat(HOST, "failed"), 1);
    assert!(r.stdout().contains("tar failed"), "{}", r.stdout());
    assert_eq!(running(f), "running");
    assert_ne!(
        started_at(f),
        before_fail,
        "stopped for the copy and started again"
    );
    assert!(archives(f, SMALL).is_empty(), "no partial archive left");

    // Destroy the volume and restore it from the archive.
    f.ssh_ok(
        HOST,
        &format!("docker rm -f {APP} >/dev/null && docker volume rm {VOLUME} >/dev/null"),
    );
    let restore = json!({"backup_dir": BACKUP, "restore_archive": archive});
    restore_run.vars(&restore).converge(HOST, 1);
    assert_eq!(
        volume_sums(f),
        before,
        "identical checksums, owners and modes"
    );
    let r = restore_run.vars(&restore).run().expect_code(0);
    assert_eq!(
        r.stat(HOST, "changed"),
        0,
        "restored already: {}",
        r.stdout()
    );
    // Into another volume that has data: refused without force, which
    // replaces its contents.
    f.ssh_ok(
        HOST,
        "docker volume create herdtest_vb_other >/dev/null && \
         docker run --rm --network none -v herdtest_vb_other:/d herd/busybox:1 sh -c 'echo x > /d/x'",
    );
    let other = json!({"backup_dir": BACKUP, "restore_archive": archive, "restore_volume": "herdtest_vb_other"});
    let r = restore_run.vars(&other).run();
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert!(r.stdout().contains("is not empty"), "{}", r.stdout());
    let mut forced = other.clone();
    forced["restore_force"] = json!(true);
    restore_run.vars(&forced).converge(HOST, 1);
    let x = f.ssh(
        HOST,
        "test -e \"$(docker volume inspect -f '{{.Mountpoint}}' herdtest_vb_other)/x\"",
    );
    assert!(!x.status.success(), "force emptied the volume first");

    // Retention with every archive older than keep_days (0): only the
    // newest verified archive of the volume stays.
    f.ssh_ok(HOST, "docker volume rm herdtest_vb_other >/dev/null");
    let mut zero = vars.clone();
    zero["backup_keep_days"] = json!(0);
    zero["backup_fetch_to"] = Value::Null;
    let r = backup_run.vars(&zero).run().expect_code(0);
    let newest = r.results("Report the archives written")[0]["output"]["backup.archives"][0]
        ["path"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(archives(f, BACKUP), [newest], "{}", r.stdout());
    let manifests = f.ssh_ok(HOST, &format!("ls {BACKUP}/manifest_*.sha256 | wc -l"));
    assert_eq!(
        manifests.trim(),
        "1",
        "the older manifest went with its archives"
    );
}
