//! `volume_backup`: backups of a Docker host's data, and restoring a volume.
//!
//! `state: backed_up` (the default) writes gzip'd tar archives into
//! `backup_dir` (default `/backup/docker`): named volumes into `volumes/`,
//! the compose files under `compose_dirs` and `/etc/docker` into `configs/`,
//! and `images` (`docker save`) into `images/`, each as
//! `<name>_<YYYYmmdd_HHMMSS>.tar.gz` (the host's local time).
//!
//! A volume is read on the host from its mountpoint (`docker volume
//! inspect`, under /var/lib/docker/volumes) with the host's tar: no helper
//! image is needed, which matters where no registry can be reached, and
//! ownership, modes and the volume root's own attributes come along
//! (`--numeric-owner`, so container uids are not mapped to host names).
//! That works for the `local` driver only; a volume of another driver
//! fails the plan naming it (reading it would need a container).
//!
//! Consistency: `stop` or `pause` stops (pauses) the running containers that
//! use a volume for the copy of that volume only, and starts (unpauses)
//! them again whatever happens: the volume's script restarts them as soon
//! as tar is done and from a shell trap on any exit, and if the script
//! itself is lost (timeout, connection) apply runs the restart once more.
//!
//! Every archive is written under a hidden temp name, checked with `gzip -t`
//! and a full `tar -t` listing, and only then renamed to its final name;
//! its SHA-256 goes into the run's manifest `manifest_<ts>.sha256`
//! (`sha256sum -c` format, paths relative to `backup_dir`). An archive
//! listed in a manifest is "verified".
//!
//! Retention runs only when every archive of this run verified. For each
//! name this task backs up it removes archives older than `keep_days`
//! (default 30) beyond the newest `keep_last`, and never the newest
//! verified archive of a name, so a host whose backups stopped for a month
//! still has its last good one. Manifests whose archives are all gone go
//! too. Names the task no longer backs up are never touched.
//!
//! Backing up is not convergent: every run writes new archives and reports
//! `changed` (check mode lists what would be written and removed).
//!
//! `fetch_to` copies this run's archives and manifest to the controller,
//! into `<fetch_to>/<inventory_hostname>/<kind>/`, in pieces
//! ([`Host::fetch_file`], bounded memory whatever the archive's size), and
//! checks each copy's SHA-256 there before it gets its final name.
//!
//! `state: restored` restores `archive` into `volume` (by default the name
//! the archive is named after): into a new volume, or an existing empty
//! one; a volume with data is refused unless `force`, which empties it
//! first. A marker `<backup_dir>/.restored/<volume>` records the
//! identity of the volume's directory (device and inode) and the archive's
//! SHA-256, so restoring the same archive into the same volume again plans
//! nothing. Not Docker's `CreatedAt`: for the local driver that is the
//! directory's ctime, which the restore itself moves. A volume removed and
//! made again is empty, and an empty volume is always restored, even if its
//! directory got the old inode back.

mod backup;
mod fetch;
mod names;
mod params;
mod restore;

use serde::{Deserialize, Serialize};

use crate::capability::ControllerInput;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

use backup::{apply_backup, plan_backup};
pub use params::{BackupState, Consistency, Selection, VolumeBackupParams};
use restore::{apply_restore, plan_restore};

pub struct VolumeBackup;

const DEFAULT_BACKUP_DIR: &str = "/backup/docker";
const DEFAULT_KEEP_DAYS: u64 = 30;
/// Under `backup_dir`: one marker per restored volume.
const MARKER_DIR: &str = ".restored";

/// `docker volume inspect` format: the mountpoint last, since only it could
/// hold a `|`.
const VOL_FMT: &str = "{{.Name}}|{{.Driver}}|{{.CreatedAt}}|{{.Mountpoint}}";
/// `docker inspect` format for a container and the named volumes it mounts.
const CTR_FMT: &str = "{{.Id}}|{{.Name}}|{{.State.Status}}|{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}},{{end}}{{end}}";

/// The compose files of a project directory (and its `.env`).
const COMPOSE_FIND: &str = "-maxdepth 3 -type f \\( -name 'docker-compose*.yml' -o -name 'docker-compose*.yaml' -o -name 'compose*.yml' -o -name 'compose*.yaml' -o -name '.env' \\)";

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: VolumeBackup::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// What kind of thing an archive holds, and the subdirectory it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Volume,
    Config,
    Image,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Volume => "volumes",
            Kind::Config => "configs",
            Kind::Image => "images",
        }
    }
    fn from_dir(d: &str) -> Option<Kind> {
        match d {
            "volumes" => Some(Kind::Volume),
            "configs" => Some(Kind::Config),
            "images" => Some(Kind::Image),
            _ => None,
        }
    }
}

/// A volume as `docker volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Volume {
    name: String,
    driver: String,
    created: String,
    mountpoint: String,
}

fn parse_volume(line: &str) -> Option<Volume> {
    let mut f = line.splitn(4, '|');
    Some(Volume {
        name: f.next()?.to_string(),
        driver: f.next()?.to_string(),
        created: f.next()?.to_string(),
        mountpoint: f.next()?.to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    id: String,
    name: String,
    status: String,
    volumes: Vec<String>,
}

fn parse_container(line: &str) -> Option<Container> {
    let mut f = line.splitn(4, '|');
    Some(Container {
        id: f.next()?.to_string(),
        name: f.next()?.trim_start_matches('/').to_string(),
        status: f.next()?.to_string(),
        volumes: f
            .next()?
            .split(',')
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// Lines that start with `tag ` mean docker is missing or not answering.
fn docker_check() -> String {
    "command -v docker >/dev/null 2>&1 || { echo 'NODOCKER docker is not installed'; exit 0; }\n\
     if ! err=$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then \
     printf 'NODOCKER the Docker daemon does not answer: %s\\n' \"$(echo \"$err\" | tail -n 1)\"; exit 0; fi\n"
        .to_string()
}

impl Module for VolumeBackup {
    const NAME: &'static str = "volume_backup";
    const REPORTS_ARCHIVES: bool = true;
    /// `fetch_to` is a controller directory, made absolute from the playbook's.
    const CONTROLLER_INPUTS: &'static [ControllerInput] =
        &[ControllerInput::Directory { param: "fetch_to" }];
    const DOC_SHORT: &'static str = "Back up Docker volumes, compose files, /etc/docker and images into verified archives, or restore a volume.";
    const DOC_LONG: &'static str = r##"`volume_backup` archives a Docker host's data into `backup_dir` (default
`/backup/docker`): named volumes into `volumes/`, the compose files of the
projects under `compose_dirs` and `/etc/docker` into `configs/`, and
`images` (`docker save`) into `images/`, each as
`<name>_<YYYYmmdd_HHMMSS>.tar.gz`, with a SHA-256 manifest per run
(`manifest_<ts>.sha256`, `sha256sum -c` format). `state: restored` brings a
volume back from an archive.

- A volume is read from its mountpoint on the host (`docker volume inspect`)
  with the host's tar, `--numeric-owner`: no helper image, so nothing is
  pulled. Only the `local` driver can be read that way; a volume of another
  driver fails the plan naming it.
- `consistency: stop|pause` stops (pauses) the running containers that use a
  volume for that volume's copy only, and always starts (unpauses) them
  again: right after tar, from a shell trap on any exit, and once more from
  herd if the script was lost. A failed backup reports which containers
  could not be started.
- Each archive is written to a hidden temp name, checked with `gzip -t` and a
  full `tar -t` listing, and only then renamed into place. Retention runs
  only when every archive of the run verified; it removes archives of the
  names this task backs up that are older than `keep_days` and not among the
  newest `keep_last`, and never the newest verified archive of a name (so a
  host whose backups failed for a month keeps its last good one).
  `keep_days: 0` with `keep_last: N` keeps exactly the newest N.
- A backup is not convergent: every run writes new archives and reports
  `changed`. `--check` lists what would be archived, which containers would
  be stopped, and which old archives retention would remove.
- A restore checks the archive against its manifest, gzip and tar first,
  creates the volume when it is missing, and refuses a volume with data
  (unless `force`) or one used by running containers. It records the
  volume directory's device and inode and the archive's SHA-256 in
  `<backup_dir>/.restored/<volume>`, so running it again changes nothing
  (a volume removed and made again is empty and is restored again).
- The human output ends with a BACKUPS section after the recap: per host
  the archives written (path, size, SHA-256), what retention removed, and
  the task's time; `--output jsonl` and `--log-file` carry the same as a
  `backup` event per host.
- Scheduled runs: see [Scheduled jobs](../../README.md#scheduled-jobs) for
  the lock, log, metrics and notification flags. Backups are a job for cron
  or a systemd timer on the controller. herd's exit code says how it went (0 every host backed up,
  2 a host failed, 4 a host was unreachable) and `--output jsonl` gives one
  `host_result` line per host and task for a log or an alert:

  ```
  # /etc/cron.d/docker-backup
  30 2 * * * backup  herd run /srv/ops/playbooks/volume-backup.yml -i /srv/ops/inventories/prod.ini --output jsonl >>/var/log/herd-backup.jsonl 2>&1 || logger -t herd-backup "docker backup failed: exit $?"
  ```

  With systemd, a `Type=oneshot` service running the same command and an
  `OnCalendar=*-*-* 02:30` timer; `OnFailure=` fires on any non-zero exit.
- `playbooks/volume-backup.yml` and `playbooks/volume-restore.yml` with
  `inventories/volume-backup.ini` are runnable examples against the test
  fleet."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Back up the app's data
  volume_backup:
    volumes: [pgdata, "app_*"]          # or `all` (named volumes), or one name/glob
    compose_dirs: [/opt/deploy/prod]    # compose*.y*ml, docker-compose*.y*ml, .env
    images: [registry.local/app:1.4]
    consistency: stop                   # stop | pause | none (default)
    keep_days: 30                       # default 30
    keep_last: 7                        # always keep the newest 7
    fetch_to: backups/                  # controller copy: backups/<host>/volumes/...
    # docker_config: true (/etc/docker), backup_dir: /backup/docker
  register: backup   # backup.archives: [{kind, name, path, sha256, size}], backup.removed

- name: Restore a volume
  volume_backup:
    state: restored
    archive: pgdata_20250601_020000.tar.gz  # under <backup_dir>/volumes, or absolute
    volume: pgdata_restored                 # default: the name in the archive's name
    # force: true empties a volume that has data (refused otherwise)
"##;
    type Params = VolumeBackupParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        if !p.backup_dir.starts_with('/') {
            return Err(invalid("backup_dir", "must be an absolute path"));
        }
        match p.state {
            BackupState::BackedUp => {
                if p.archive.is_some() || p.volume.is_some() || p.force {
                    return Err(invalid(
                        "archive",
                        "archive, volume and force are for state: restored",
                    ));
                }
                plan_backup(p, host)
            }
            BackupState::Restored => plan_restore(p, host),
        }
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        match p.state {
            BackupState::BackedUp => apply_backup(p, plan, host),
            BackupState::Restored => apply_restore(plan, host),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::local::LocalHost;
    use crate::testing::FakeHost;
    use crate::DynModule;

    /// A `docker` that keeps volumes, containers and images as files under
    /// a state directory, so the module's real scripts (tar, gzip, sha256sum,
    /// traps) run on this machine without a Docker engine.
    const FAKE_DOCKER: &str = r#"#!/bin/sh
S="$FAKE_DOCKER_STATE"
echo "$*" >> "$S/log"
case "$1" in
version) echo 20.10.24 ;;
volume)
  case "$2" in
  ls) ls "$S/volumes" ;;
  inspect)
    shift 4
    for n in "$@"; do
      [ -d "$S/volumes/$n" ] || { echo "Error: No such volume: $n" >&2; exit 1; }
      echo "$n|local|$(cat "$S/volumes/$n/created")|$S/volumes/$n/_data"
    done ;;
  create) mkdir -p "$S/volumes/$3/_data"; date +%s%N > "$S/volumes/$3/created"; echo "$3" ;;
  esac ;;
ps)
  filt=''; [ "$3" = --filter ] && filt=${4#volume=}
  for c in $(ls "$S/ctr"); do
    case "$(cat "$S/ctr/$c/status")" in running|paused) ;; *) continue ;; esac
    [ -z "$filt" ] || grep -qx "$filt" "$S/ctr/$c/volumes" || continue
    echo "$c"
  done ;;
inspect)
  fmt=$3; shift 3
  for c in "$@"; do
    st=$(cat "$S/ctr/$c/status")
    case "$fmt" in
    *Mounts*) echo "$c|/$c-name|$st|$(tr '\n' ',' < "$S/ctr/$c/volumes")" ;;
    *State.Running*) [ "$st" = running ] && echo true || echo false ;;
    *) echo "$st" ;;
    esac
  done ;;
stop) echo exited > "$S/ctr/$2/status" ;;
start) echo running > "$S/ctr/$2/status" ;;
pause) echo paused > "$S/ctr/$2/status" ;;
unpause) echo running > "$S/ctr/$2/status" ;;
image) [ -f "$S/images/$(echo "$3" | tr '/:' '__')" ] ;;
save) cat "$S/images/$(echo "$2" | tr '/:' '__')" ;;
*) echo "fake docker: $*" >&2; exit 2 ;;
esac
"#;

    /// The docker state directory and the fake `docker` on it; the host
    /// runs the module's scripts on this machine with that `docker` first
    /// on PATH.
    struct DockerDir {
        dir: tempfile::TempDir,
    }

    type Fake = FakeHost<DockerDir>;

    fn fake() -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::write(bin.join("docker"), FAKE_DOCKER).expect("docker");
        for d in ["state/volumes", "state/ctr", "state/images", "backup"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("dirs");
        }
        let state = DockerDir { dir };
        state.sh(&format!("chmod +x {}/bin/docker", state.root()));
        let root = state.root();
        FakeHost::with_state(state).named("fakehost").over(
            LocalHost::new("fakehost"),
            format!("export PATH={root}/bin:$PATH FAKE_DOCKER_STATE={root}/state"),
        )
    }

    impl DockerDir {
        fn root(&self) -> String {
            self.dir.path().display().to_string()
        }
        fn backup_dir(&self) -> String {
            format!("{}/backup", self.root())
        }
        fn sh(&self, script: &str) -> String {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("S={}/state; {script}", self.root()))
                .output()
                .expect("sh");
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        fn volume(&self, name: &str) {
            self.sh(&format!(
                "mkdir -p $S/volumes/{name}/_data/sub && echo 1 > $S/volumes/{name}/created && \
                 echo hello-{name} > $S/volumes/{name}/_data/a.txt && \
                 head -c 5000 /dev/urandom > $S/volumes/{name}/_data/sub/blob && \
                 chmod 0751 $S/volumes/{name}/_data/sub"
            ));
        }
        fn container(&self, id: &str, volume: &str) {
            self.sh(&format!(
                "mkdir -p $S/ctr/{id} && echo running > $S/ctr/{id}/status && echo {volume} > $S/ctr/{id}/volumes"
            ));
        }
        fn status(&self, id: &str) -> String {
            self.sh(&format!("cat $S/ctr/{id}/status"))
                .trim()
                .to_string()
        }
        /// Every file's checksum and every path's mode, relative to the volume.
        fn sums(&self, name: &str) -> String {
            self.sh(&format!(
                "cd $S/volumes/{name}/_data && find . -type f -exec sha256sum {{}} + | sort && find . -printf '%p %m\\n' | sort"
            ))
        }
    }

    fn backup_params(f: &Fake, extra: Value) -> Value {
        let mut p = json!({"volumes": "all", "docker_config": false, "consistency": "stop",
                           "backup_dir": f.backup_dir()});
        if let (Value::Object(m), Value::Object(e)) = (&mut p, extra) {
            m.extend(e);
        }
        p
    }

    #[test]
    fn backs_up_stops_and_restarts_and_writes_a_manifest() {
        let mut f = fake();
        f.volume("app_db");
        f.volume("cache");
        f.sh(&format!(
            "mkdir -p $S/volumes/{0}/_data && echo 1 > $S/volumes/{0}/created",
            "ab".repeat(32)
        ));
        f.container("c1", "app_db");
        let p = backup_params(&f, json!({"volumes": "app_*"}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(pl.changes.len(), 1, "{:?}", pl.changes);
        assert!(
            pl.changes[0].starts_with("back up volume app_db to ")
                && pl.changes[0].ends_with("/volumes/app_db_<timestamp>.tar.gz (stopping c1-name)"),
            "{:?}",
            pl.changes
        );
        // The plan changed nothing: one probe, no stop.
        assert!(!f.sh("cat $S/log").contains("stop"));
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("apply");
        assert!(out.changed);
        assert_eq!(f.status("c1"), "running");
        let log = f.sh("cat $S/log");
        assert!(
            log.contains("stop c1\n") && log.contains("start c1\n"),
            "{log}"
        );
        let archives = out.result["archives"].as_array().expect("archives");
        assert_eq!(archives.len(), 1);
        assert_eq!(archives[0]["containers"], json!(["c1-name"]));
        let manifest = out.result["manifest"].as_str().expect("manifest");
        let check = f.sh(&format!("cd {} && sha256sum -c {manifest}", f.backup_dir()));
        assert!(check.contains(": OK"), "{check}");
        assert!(f
            .sh(&format!("ls -A {}/volumes", f.backup_dir()))
            .lines()
            .all(|l| !l.starts_with('.')));
        // `all` leaves out the anonymous volume and takes both named ones.
        let p = backup_params(&f, json!({}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(pl.result["volumes"], json!(["app_db", "cache"]));
        let e = DynModule::plan(
            &VolumeBackup,
            &backup_params(&f, json!({"volumes": ["nope"]})),
            &mut f,
        )
        .expect_err("missing volume");
        assert!(
            e.to_string().contains("volume `nope` does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_archive_restarts_the_containers_and_skips_retention() {
        for consistency in ["stop", "pause"] {
            let mut f = fake();
            f.volume("db");
            f.container("c1", "db");
            // An old verified archive that retention would remove.
            f.sh(&format!(
                "mkdir -p {0}/volumes && tar -czf {0}/volumes/db_20200101_000000.tar.gz -C $S/volumes/db/_data . && \
                 cd {0} && sha256sum volumes/db_20200101_000000.tar.gz > manifest_20200101_000000.sha256",
                f.backup_dir()
            ));
            let p = backup_params(&f, json!({"consistency": consistency}));
            let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
            // The volume's data goes away between plan and apply: tar fails
            // while the container is down.
            f.sh("rm -rf $S/volumes/db/_data");
            let e = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect_err("must fail");
            assert!(e.to_string().contains("tar failed"), "{e}");
            assert!(e.to_string().contains("retention skipped"), "{e}");
            assert_eq!(f.status("c1"), "running", "{consistency}");
            let log = f.sh("cat $S/log");
            let (down, up) = if consistency == "stop" {
                ("stop", "start")
            } else {
                ("pause", "unpause")
            };
            assert!(log.contains(&format!("{down} c1\n{up} c1\n")), "{log}");
            let left = f.sh(&format!("ls -A {}/volumes", f.backup_dir()));
            assert_eq!(
                left, "db_20200101_000000.tar.gz\n",
                "no partial file, old archive kept"
            );
        }
    }

    #[test]
    fn retention_after_a_good_run_keeps_the_new_archive_and_drops_old_manifests() {
        let mut f = fake();
        f.volume("db");
        let bd = f.backup_dir();
        f.sh(&format!(
            "mkdir -p {bd}/volumes && for t in 20200101_000000 20200201_000000; do \
             tar -czf {bd}/volumes/db_$t.tar.gz -C $S/volumes/db/_data . && \
             (cd {bd} && sha256sum volumes/db_$t.tar.gz > manifest_$t.sha256); done && \
             touch {bd}/volumes/other_20200101_000000.tar.gz"
        ));
        let p = backup_params(&f, json!({"keep_days": 30}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(
            pl.changes[1..],
            [
                format!("remove {bd}/volumes/db_20200101_000000.tar.gz (retention)"),
                format!("remove {bd}/volumes/db_20200201_000000.tar.gz (retention)"),
            ]
        );
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("apply");
        let ts = out.result["timestamp"].as_str().expect("ts").to_string();
        assert_eq!(
            f.sh(&format!("cd {bd} && ls volumes/ *.sha256")),
            format!(
                "manifest_{ts}.sha256\n\nvolumes/:\ndb_{ts}.tar.gz\nother_20200101_000000.tar.gz\n"
            )
        );
    }

    #[test]
    fn restores_a_destroyed_volume_and_then_plans_nothing() {
        let mut f = fake();
        f.volume("db");
        let before = f.sums("db");
        let fetch = tempfile::tempdir().expect("fetch dir");
        let p = backup_params(&f, json!({"fetch_to": fetch.path().display().to_string()}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("backup");
        let archive = out.result["archives"][0]["path"]
            .as_str()
            .expect("path")
            .to_string();
        let fetched: Vec<String> =
            serde_json::from_value(out.result["fetched"].clone()).expect("fetched");
        assert_eq!(fetched.len(), 2);
        assert!(fetched[0].ends_with(&format!(
            "fakehost/volumes/{}",
            archive.rsplit('/').next().unwrap_or_default()
        )));
        assert_eq!(
            std::fs::read(&fetched[0]).expect("copy"),
            std::fs::read(&archive).expect("archive")
        );

        f.sh("rm -rf $S/volumes/db");
        let file = archive.rsplit('/').next().unwrap_or_default().to_string();
        let r = json!({"state": "restored", "archive": file, "backup_dir": f.backup_dir()});
        let pl = DynModule::plan(&VolumeBackup, &r, &mut f).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "create volume db".to_string(),
                format!("restore volume db from {archive}")
            ]
        );
        DynModule::apply(&VolumeBackup, &r, pl, &mut f).expect("restore");
        assert_eq!(f.sums("db"), before);
        let again = DynModule::plan(&VolumeBackup, &r, &mut f).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);

        // Into another, non-empty volume: refused without force.
        f.volume("copy");
        f.sh("echo other > $S/volumes/copy/_data/a.txt");
        let r2 = json!({"state": "restored", "archive": archive, "volume": "copy", "backup_dir": f.backup_dir()});
        let e = DynModule::plan(&VolumeBackup, &r2, &mut f).expect_err("not empty");
        assert!(e.to_string().contains("is not empty"), "{e}");
        let mut forced = r2.clone();
        forced["force"] = json!(true);
        let pl = DynModule::plan(&VolumeBackup, &forced, &mut f).expect("plan");
        assert_eq!(pl.changes[0], "empty volume copy (force)");
        DynModule::apply(&VolumeBackup, &forced, pl, &mut f).expect("restore");
        assert_eq!(f.sums("copy"), before);
        assert!(DynModule::plan(&VolumeBackup, &forced, &mut f)
            .expect("plan")
            .is_empty());

        // A running container on the volume: refused.
        f.sh("mkdir -p $S/volumes/third/_data && echo 3 > $S/volumes/third/created");
        f.container("c9", "third");
        let mut r3 = r2.clone();
        r3["volume"] = json!("third");
        let e = DynModule::plan(&VolumeBackup, &r3, &mut f).expect_err("in use");
        assert!(e.to_string().contains("used by running containers"), "{e}");
    }

    #[test]
    fn a_tampered_archive_is_refused() {
        let mut f = fake();
        f.volume("db");
        let p = backup_params(&f, json!({}));
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("backup");
        let archive = out.result["archives"][0]["path"]
            .as_str()
            .expect("path")
            .to_string();
        f.sh(&format!("echo x >> {archive}; rm -rf $S/volumes/db"));
        let r = json!({"state": "restored", "archive": archive, "backup_dir": f.backup_dir()});
        let e = DynModule::plan(&VolumeBackup, &r, &mut f).expect_err("tampered");
        assert!(e.to_string().contains("does not match its manifest"), "{e}");
    }

    #[test]
    fn backs_up_compose_files_and_images() {
        let mut f = fake();
        let proj = format!("{}/proj", f.root());
        f.sh(&format!(
            "mkdir -p {proj}/sub && echo 'services: {{}}' > {proj}/compose.yml && echo A=1 > {proj}/.env && \
             echo x > {proj}/notes.txt && echo 'services: {{}}' > {proj}/sub/docker-compose.override.yml && \
             mkdir -p $S/imgsrc && echo layer > $S/imgsrc/l && tar -cf $S/images/herd_busybox_1 -C $S/imgsrc ."
        ));
        let p = json!({"compose_dirs": [proj], "images": ["herd/busybox:1"], "docker_config": false,
                       "backup_dir": f.backup_dir()});
        let pl = DynModule::plan(&VolumeBackup, &p, &mut f).expect("plan");
        assert_eq!(pl.changes.len(), 2, "{:?}", pl.changes);
        assert!(pl.changes[0].contains("compose files of") && pl.changes[0].contains("(3 files)"));
        let out = DynModule::apply(&VolumeBackup, &p, pl, &mut f).expect("apply");
        let a = &out.result["archives"];
        let listing = f.sh(&format!(
            "tar -tzf {} | sort",
            a[0]["path"].as_str().unwrap_or_default()
        ));
        assert_eq!(
            listing,
            ".env\ncompose.yml\nsub/docker-compose.override.yml\n"
        );
        assert!(a[1]["path"]
            .as_str()
            .unwrap_or_default()
            .contains("/images/herd-busybox-1_"));
        let e = DynModule::plan(
            &VolumeBackup,
            &json!({"images": ["nope:1"], "docker_config": false,
                       "backup_dir": f.backup_dir()}),
            &mut f,
        )
        .expect_err("no image");
        assert!(
            e.to_string().contains("image `nope:1` is not on this host"),
            "{e}"
        );
    }

    #[test]
    fn without_docker_the_plan_says_so() {
        let mut h = LocalHost::new("local");
        let p = json!({"volumes": "all", "backup_dir": "/nonexistent-herd-test"});
        let r = DynModule::plan(
            &VolumeBackup,
            &json!({"state": "restored", "backup_dir": "/x"}),
            &mut h,
        );
        assert!(r.is_err_and(|e| e
            .to_string()
            .contains("missing required parameter `archive`")));
        let mut empty = fake();
        std::fs::write(
            empty.dir.path().join("bin/docker"),
            "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2; exit 1\n",
        )
        .expect("w");
        let e = DynModule::plan(&VolumeBackup, &p, &mut empty).expect_err("no daemon");
        assert!(
            e.to_string().contains("does not answer: Cannot connect"),
            "{e}"
        );
    }
}
