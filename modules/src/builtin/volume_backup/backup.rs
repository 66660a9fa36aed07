//! `state: backed_up`: the probe of volumes, containers, images and the
//! archives already there; the items of a run and retention over them;
//! the archive scripts and the run that writes, verifies, prunes and
//! fetches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::probe::tagged;
use crate::shell_quote::quote;
use crate::{Host, HostError, ModuleError, Outcome, Plan};

use super::fetch::{fetch_dir, fetch_one};
use super::names::{glob_match, is_anonymous, is_pattern, name_for, parse_archive_name, parse_ts};
use super::params::{Consistency, Selection, VolumeBackupParams};
use super::{
    docker_check, invalid, parse_container, parse_volume, Container, Kind, Volume, COMPOSE_FIND,
    CTR_FMT, DEFAULT_KEEP_DAYS, VOL_FMT,
};

/// One thing to archive this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Item {
    pub(super) kind: Kind,
    /// The archive's name before `_<ts>.tar.gz`.
    pub(super) name: String,
    pub(super) source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source {
    Volume {
        volume: String,
        mountpoint: String,
        /// Running containers that use it: (id, name).
        containers: Vec<(String, String)>,
    },
    Dir {
        dir: String,
        /// Paths relative to `dir`; `None` for the whole directory.
        files: Option<Vec<String>>,
    },
    Image {
        image: String,
    },
}

impl Item {
    fn describe(&self) -> String {
        match &self.source {
            Source::Volume { volume, .. } => format!("volume {volume}"),
            Source::Dir {
                dir,
                files: Some(f),
            } => format!("compose files of {dir} ({} files)", f.len()),
            Source::Dir { dir, files: None } => dir.clone(),
            Source::Image { image } => format!("image {image}"),
        }
    }
}

/// An archive already in `backup_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Existing {
    pub(super) kind: Kind,
    pub(super) name: String,
    pub(super) ts: String,
    /// Path relative to `backup_dir`: `volumes/<file>`.
    pub(super) rel: String,
}

/// What the backup plan found on the host.
#[derive(Debug, Default)]
pub(super) struct BackupProbe {
    pub(super) now: String,
    pub(super) volumes: Vec<Volume>,
    pub(super) containers: Vec<Container>,
    pub(super) images: Vec<bool>,
    pub(super) compose: Vec<Option<Vec<String>>>,
    pub(super) etc_docker: bool,
    pub(super) archives: Vec<Existing>,
    /// Manifest file name -> paths (relative to `backup_dir`) it lists.
    pub(super) manifests: BTreeMap<String, Vec<String>>,
}

pub(super) fn backup_probe_script(p: &VolumeBackupParams) -> String {
    let bd = quote(&p.backup_dir);
    let mut s = docker_check();
    s.push_str("echo \"NOW $(date +%Y%m%d_%H%M%S)\"\n");
    if p.volumes != Selection::Nothing {
        s.push_str(&format!(
            "vols=$(docker volume ls -q) || exit 3\n\
             if [ -n \"$vols\" ]; then docker volume inspect -f {} $vols | sed 's/^/VOL /' || exit 3; fi\n\
             ids=$(docker ps -q) || exit 3\n\
             if [ -n \"$ids\" ]; then docker inspect -f {} $ids | sed 's/^/CTR /' || exit 3; fi\n",
            quote(VOL_FMT),
            quote(CTR_FMT)
        ));
    }
    for (i, img) in p.images.iter().enumerate() {
        s.push_str(&format!(
            "if docker image inspect {} >/dev/null 2>&1; then echo 'IMG{i} y'; else echo 'IMG{i} -'; fi\n",
            quote(img)
        ));
    }
    for (i, dir) in p.compose_dirs.iter().enumerate() {
        let d = quote(dir);
        s.push_str(&format!(
            "if [ -d {d} ]; then echo 'CD{i} y'; find {d} {COMPOSE_FIND} -printf 'CF{i} %P\\n' | sort; else echo 'CD{i} -'; fi\n"
        ));
    }
    s.push_str("if [ -d /etc/docker ]; then echo 'ETC y'; else echo 'ETC -'; fi\n");
    s.push_str(&format!(
        "for k in volumes configs images; do [ -d {bd}/$k ] && ls -1 {bd}/$k | sed \"s|^|ARC $k |\"; done\n\
         for m in {bd}/manifest_*.sha256; do [ -f \"$m\" ] || continue; b=${{m##*/}}; \
         while read -r sum path; do echo \"MAN $b $path\"; done < \"$m\"; done\n\
         echo END\n"
    ));
    s
}

pub(super) fn parse_backup_probe(
    out: &str,
    p: &VolumeBackupParams,
) -> Result<BackupProbe, ModuleError> {
    if let Some(why) = tagged(out, "NODOCKER") {
        return Err(ModuleError::failed(why.to_string()));
    }
    if !out.lines().any(|l| l == "END") {
        return Err(ModuleError::failed(format!(
            "the probe stopped early: {}",
            out.trim()
        )));
    }
    let mut pr = BackupProbe {
        images: vec![false; p.images.len()],
        compose: vec![None; p.compose_dirs.len()],
        ..Default::default()
    };
    for line in out.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "NOW" => pr.now = rest.trim().to_string(),
            "VOL" => pr.volumes.extend(parse_volume(rest)),
            "CTR" => pr.containers.extend(parse_container(rest)),
            "ETC" => pr.etc_docker = rest == "y",
            "ARC" => {
                if let Some((k, file)) = rest.split_once(' ') {
                    if let (Some(kind), Some((name, ts))) =
                        (Kind::from_dir(k), parse_archive_name(file))
                    {
                        pr.archives.push(Existing {
                            kind,
                            name: name.to_string(),
                            ts: ts.to_string(),
                            rel: format!("{k}/{file}"),
                        });
                    }
                }
            }
            "MAN" => {
                if let Some((m, path)) = rest.split_once(' ') {
                    pr.manifests
                        .entry(m.to_string())
                        .or_default()
                        .push(path.to_string());
                }
            }
            t => {
                if let Some(i) = t.strip_prefix("IMG").and_then(|i| i.parse::<usize>().ok()) {
                    if let Some(slot) = pr.images.get_mut(i) {
                        *slot = rest == "y";
                    }
                } else if let Some(i) = t.strip_prefix("CD").and_then(|i| i.parse::<usize>().ok()) {
                    if let Some(slot) = pr.compose.get_mut(i) {
                        *slot = (rest == "y").then(Vec::new);
                    }
                } else if let Some(i) = t.strip_prefix("CF").and_then(|i| i.parse::<usize>().ok()) {
                    if let Some(Some(files)) = pr.compose.get_mut(i) {
                        files.push(rest.to_string());
                    }
                }
            }
        }
    }
    if parse_ts(&pr.now).is_none() {
        return Err(ModuleError::failed(format!(
            "cannot read the host's time from the probe: {:?}",
            pr.now
        )));
    }
    Ok(pr)
}

/// The items of this run, in a fixed order: volumes by name, compose dirs
/// and images as given, /etc/docker.
pub(super) fn select_items(
    p: &VolumeBackupParams,
    pr: &BackupProbe,
) -> Result<Vec<Item>, ModuleError> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    match &p.volumes {
        Selection::Nothing => {}
        Selection::All => names.extend(
            pr.volumes
                .iter()
                .map(|v| v.name.as_str())
                .filter(|n| !is_anonymous(n)),
        ),
        Selection::Some(list) => {
            for want in list {
                if is_pattern(want) {
                    names.extend(
                        pr.volumes
                            .iter()
                            .map(|v| v.name.as_str())
                            .filter(|n| !is_anonymous(n) && glob_match(want, n)),
                    );
                } else if pr.volumes.iter().any(|v| &v.name == want) {
                    names.insert(want);
                } else {
                    return Err(ModuleError::failed(format!(
                        "volume `{want}` does not exist on this host"
                    )));
                }
            }
        }
    }
    let mut items = Vec::new();
    for n in names {
        let Some(v) = pr.volumes.iter().find(|v| v.name == n) else {
            continue;
        };
        if v.driver != "local" {
            return Err(ModuleError::failed(format!(
                "volume `{n}` uses the `{}` driver: only a `local` volume's mountpoint can be read on the host",
                v.driver
            )));
        }
        let containers = pr
            .containers
            .iter()
            .filter(|c| c.status == "running" && c.volumes.iter().any(|cv| cv == n))
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        items.push(Item {
            kind: Kind::Volume,
            name: n.to_string(),
            source: Source::Volume {
                volume: n.to_string(),
                mountpoint: v.mountpoint.clone(),
                containers,
            },
        });
    }
    for (dir, found) in p.compose_dirs.iter().zip(&pr.compose) {
        let Some(files) = found else {
            return Err(ModuleError::failed(format!(
                "compose directory `{dir}` does not exist on this host"
            )));
        };
        if files.is_empty() {
            return Err(ModuleError::failed(format!(
                "no compose files (compose*.y*ml, docker-compose*.y*ml, .env) under `{dir}`"
            )));
        }
        items.push(Item {
            kind: Kind::Config,
            name: format!("compose-{}", name_for(dir)),
            source: Source::Dir {
                dir: dir.clone(),
                files: Some(files.clone()),
            },
        });
    }
    if p.docker_config && pr.etc_docker {
        items.push(Item {
            kind: Kind::Config,
            name: "etc-docker".into(),
            source: Source::Dir {
                dir: "/etc/docker".into(),
                files: None,
            },
        });
    }
    for (img, present) in p.images.iter().zip(&pr.images) {
        if !present {
            return Err(ModuleError::failed(format!(
                "image `{img}` is not on this host"
            )));
        }
        items.push(Item {
            kind: Kind::Image,
            name: name_for(img),
            source: Source::Image { image: img.clone() },
        });
    }
    let mut seen = BTreeSet::new();
    for it in &items {
        if it.name.is_empty() || !seen.insert((it.kind, it.name.clone())) {
            return Err(ModuleError::failed(format!(
                "two things to back up would share the archive name `{}`",
                it.name
            )));
        }
    }
    Ok(items)
}

/// Archives retention removes: per (kind, name) in `managed`, those older
/// than `keep_days` and not among the newest `keep_last`, never the newest
/// verified one. Returns relative paths, sorted.
pub(super) fn retention(
    archives: &[Existing],
    verified: &BTreeSet<String>,
    managed: &BTreeSet<(Kind, String)>,
    now: &str,
    keep_days: u64,
    keep_last: u64,
) -> Vec<String> {
    let Some(now) = parse_ts(now) else {
        return Vec::new();
    };
    let mut groups: BTreeMap<(Kind, &str), Vec<&Existing>> = BTreeMap::new();
    for a in archives {
        if managed.contains(&(a.kind, a.name.clone())) {
            groups.entry((a.kind, &a.name)).or_default().push(a);
        }
    }
    let max_age = i64::try_from(keep_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for list in groups.values_mut() {
        list.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.rel.cmp(&a.rel)));
        let newest_verified = list.iter().position(|a| verified.contains(&a.rel));
        for (i, a) in list.iter().enumerate() {
            let young = parse_ts(&a.ts).is_none_or(|t| now - t < max_age);
            if (i as u64) < keep_last || Some(i) == newest_verified || young {
                continue;
            }
            out.push(a.rel.clone());
        }
    }
    out.sort();
    out
}

/// Manifests none of whose archives will be left.
pub(super) fn stale_manifests(
    manifests: &BTreeMap<String, Vec<String>>,
    remaining: &BTreeSet<String>,
) -> Vec<String> {
    manifests
        .iter()
        .filter(|(_, paths)| !paths.iter().any(|p| remaining.contains(p)))
        .map(|(m, _)| m.clone())
        .collect()
}

/// The plan's state for apply.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct BackupPlanState {
    pub(super) items: Vec<Item>,
    pub(super) archives: Vec<Existing>,
    pub(super) manifests: BTreeMap<String, Vec<String>>,
}

pub(super) fn plan_backup(
    p: &VolumeBackupParams,
    host: &mut dyn Host,
) -> Result<Plan, ModuleError> {
    let out = host.run(&backup_probe_script(p), None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "looking at the host failed (rc={}): {}",
            out.rc,
            out.stderr_str().trim()
        )));
    }
    let pr = parse_backup_probe(&out.stdout_str(), p)?;
    let items = select_items(p, &pr)?;
    if items.is_empty() && p.volumes == Selection::Nothing {
        return Err(invalid(
            "volumes",
            "nothing to back up: give volumes, compose_dirs, images or docker_config",
        ));
    }
    let bd = p.backup_dir.trim_end_matches('/');
    let mut plan = Plan::empty();
    for it in &items {
        let mut line = format!(
            "back up {} to {bd}/{}/{}_<timestamp>.tar.gz",
            it.describe(),
            it.kind.dir(),
            it.name
        );
        if let Source::Volume { containers, .. } = &it.source {
            if !containers.is_empty() && p.consistency != Consistency::None {
                let names: Vec<&str> = containers.iter().map(|(_, n)| n.as_str()).collect();
                let verb = if p.consistency == Consistency::Stop {
                    "stopping"
                } else {
                    "pausing"
                };
                line.push_str(&format!(" ({verb} {})", names.join(", ")));
            }
        }
        plan.changes.push(line);
    }
    // Retention as it would run after this run's archives verified: the
    // new ones count as the newest verified.
    let mut archives = pr.archives.clone();
    let mut verified: BTreeSet<String> = pr.manifests.values().flatten().cloned().collect();
    for it in &items {
        let rel = format!("{}/{}_{}.tar.gz", it.kind.dir(), it.name, pr.now);
        verified.insert(rel.clone());
        archives.push(Existing {
            kind: it.kind,
            name: it.name.clone(),
            ts: pr.now.clone(),
            rel,
        });
    }
    let managed: BTreeSet<(Kind, String)> =
        items.iter().map(|i| (i.kind, i.name.clone())).collect();
    let keep_days = p.keep_days.unwrap_or(DEFAULT_KEEP_DAYS);
    let removed = retention(
        &archives,
        &verified,
        &managed,
        &pr.now,
        keep_days,
        p.keep_last.unwrap_or(0),
    );
    for r in &removed {
        plan.changes.push(format!("remove {bd}/{r} (retention)"));
    }
    if let Some(to) = &p.fetch_to {
        if !items.is_empty() {
            plan.changes.push(format!(
                "fetch {} archives to {}",
                items.len(),
                fetch_dir(to, host.name()).display()
            ));
        }
    }
    plan.result.insert(
        "volumes".into(),
        json!(items
            .iter()
            .filter_map(|i| match &i.source {
                Source::Volume { volume, .. } => Some(volume.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()),
    );
    plan.result.insert("backup_dir".into(), json!(bd));
    plan.keep_state(&BackupPlanState {
        items,
        archives: pr.archives,
        manifests: pr.manifests,
    })?;
    Ok(plan)
}

/// The script that archives one item into `final_` via a temp name; prints
/// `OK <sha256> <size>` on success.
pub(super) fn archive_script(it: &Item, consistency: Consistency, bd: &str, ts: &str) -> String {
    let dir = format!("{bd}/{}", it.kind.dir());
    let file = format!("{}_{ts}.tar.gz", it.name);
    let mut s = format!(
        "umask 077\nfinal={}\ntmp={}\nrm -f \"$tmp\"\n",
        quote(&format!("{dir}/{file}")),
        quote(&format!("{dir}/.{file}.partial")),
    );
    s.push_str("fail() { rm -f \"$tmp\"; echo \"FAIL $1\"; exit 1; }\n");
    // The directory first, so a failure here leaves the containers alone.
    s.push_str(&format!(
        "mkdir -p {} || fail 'cannot create the directory'\n",
        quote(&dir)
    ));
    let create = match &it.source {
        Source::Volume {
            mountpoint,
            containers,
            ..
        } => {
            let ids: Vec<String> = containers.iter().map(|(id, _)| quote(id)).collect();
            let (down, up) = match consistency {
                Consistency::Stop => ("stop", "start"),
                Consistency::Pause => ("pause", "unpause"),
                Consistency::None => ("", ""),
            };
            if !ids.is_empty() && !down.is_empty() {
                // Only the containers actually stopped are started again;
                // `restart` does its work once, from the trap or after tar.
                s.push_str(&format!(
                    "downed=''\n\
                     restart() {{ trap - EXIT; for id in $downed; do \
                     docker {up} \"$id\" >/dev/null 2>&1 || echo \"RESTART_FAILED $id\"; done; downed=''; }}\n\
                     trap restart EXIT\ntrap 'exit 129' HUP INT TERM\n\
                     for id in {}; do if docker {down} \"$id\" >/dev/null; then downed=\"$downed $id\"; \
                     else restart; fail \"cannot {down} container $id\"; fi; done\n",
                    ids.join(" ")
                ));
            } else {
                s.push_str("restart() { :; }\n");
            }
            format!(
                "tar --numeric-owner -czf \"$tmp\" -C {} . 2>\"$tmp.err\"; rc=$?\nrestart\n\
                 if [ $rc -ne 0 ]; then e=$(tail -n 3 \"$tmp.err\" | tr '\\n' ' '); rm -f \"$tmp.err\"; \
                 fail \"tar failed (rc=$rc): $e\"; fi\nrm -f \"$tmp.err\"\n",
                quote(mountpoint)
            )
        }
        Source::Dir { dir, files } => {
            let what = match files {
                Some(f) => f.iter().map(|f| quote(f)).collect::<Vec<_>>().join(" "),
                None => ".".into(),
            };
            format!(
                "e=$(tar --numeric-owner -czf \"$tmp\" -C {} {what} 2>&1) || fail \"tar failed: $(echo \"$e\" | tail -n 3 | tr '\\n' ' ')\"\n",
                quote(dir)
            )
        }
        Source::Image { image } => {
            // docker save writes a tar; gzip makes it the same format as
            // the rest. The save's own status is checked through a file,
            // since sh has no pipefail.
            format!(
                "{{ docker save {} 2>\"$tmp.err\" || echo failed > \"$tmp.rc\"; }} | gzip -c > \"$tmp\"\n\
                 e=$(tail -n 3 \"$tmp.err\" | tr '\\n' ' '); rm -f \"$tmp.err\"\n\
                 if [ -e \"$tmp.rc\" ]; then rm -f \"$tmp.rc\"; fail \"docker save failed: $e\"; fi\n\
                 [ -s \"$tmp\" ] || fail 'docker save wrote nothing'\n",
                quote(image)
            )
        }
    };
    s.push_str(&create);
    s.push_str(
        "gzip -t \"$tmp\" 2>/dev/null || fail 'the archive is not valid gzip'\n\
         tar -tzf \"$tmp\" >/dev/null 2>&1 || fail 'the archive cannot be listed'\n\
         sum=$(sha256sum \"$tmp\" | cut -c1-64) || fail 'sha256sum failed'\n\
         size=$(stat -c %s \"$tmp\")\n\
         mv -f \"$tmp\" \"$final\" || fail 'cannot rename the archive into place'\n\
         echo \"OK $sum $size\"\n",
    );
    s
}

/// A result line for one archive.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Written {
    pub(super) kind: Kind,
    pub(super) name: String,
    pub(super) path: String,
    pub(super) sha256: String,
    pub(super) size: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) containers: Vec<String>,
}

/// One backup run: its parameters, where it writes and its timestamp.
struct Run<'a> {
    p: &'a VolumeBackupParams,
    /// `backup_dir` without a trailing slash.
    bd: String,
    ts: String,
    /// The run's manifest file name, relative to `bd`.
    manifest: String,
}

pub(super) fn apply_backup(
    p: &VolumeBackupParams,
    plan: Plan,
    host: &mut dyn Host,
) -> Result<Outcome, ModuleError> {
    let st: BackupPlanState = plan.state_as()?;
    let bd = p.backup_dir.trim_end_matches('/').to_string();
    let ts = prepare(host, &st.items, &bd)?;
    let run = Run {
        p,
        manifest: format!("manifest_{ts}.sha256"),
        bd,
        ts,
    };
    let (written, failures) = write_archives(&run, &st.items, host)?;
    let (bd, ts, manifest) = (&run.bd, &run.ts, &run.manifest);

    let mut result = Map::new();
    result.insert("timestamp".into(), json!(ts));
    result.insert("backup_dir".into(), json!(bd));
    // The manifest lists what verified, even when something else failed.
    if !written.is_empty() {
        write_manifest(&run, host, &written)?;
        result.insert("manifest".into(), json!(format!("{bd}/{manifest}")));
    }
    result.insert(
        "archives".into(),
        serde_json::to_value(&written).unwrap_or(Value::Null),
    );
    result.insert("changed".into(), json!(!written.is_empty()));
    if !failures.is_empty() {
        result.insert("failures".into(), json!(failures));
        return Err(ModuleError::Failed {
            msg: format!(
                "{} of {} backups failed, retention skipped: {}",
                failures.len(),
                st.items.len(),
                failures.join("; ")
            ),
            result,
        });
    }

    let to_remove = prune(&run, &st, host, &written, &result)?;
    result.insert(
        "removed".into(),
        json!(to_remove
            .iter()
            .map(|r| format!("{bd}/{r}"))
            .collect::<Vec<_>>()),
    );
    if let Some(to) = &p.fetch_to {
        let fetched = fetch_written(&run, to, host, &written, &result)?;
        result.insert("fetched".into(), json!(fetched));
    }
    let msg = format!(
        "{} archives written to {bd}, {} old files removed",
        written.len(),
        to_remove.len()
    );
    result.insert("msg".into(), json!(msg));
    Ok(Outcome {
        changed: true,
        result,
        msg: Some(msg),
        failed: false,
    })
}

/// A timestamp no archive of this task uses yet (two runs within one
/// second wait for the next), and the directories, private to root.
fn prepare(host: &mut dyn Host, items: &[Item], bd: &str) -> Result<String, ModuleError> {
    let qbd = quote(bd);
    let names: Vec<String> = items
        .iter()
        .map(|i| format!("{}/{}_", i.kind.dir(), i.name))
        .collect();
    let mut s = format!(
        "umask 077\nmkdir -p {qbd} || exit 3\n\
         for i in 1 2 3; do ts=$(date +%Y%m%d_%H%M%S); clash=''\n\
         for n in {}; do [ -e {qbd}/\"$n$ts.tar.gz\" ] && clash=y; done\n\
         [ -z \"$clash\" ] && break; sleep 1; done\n\
         [ -z \"$clash\" ] || {{ echo 'no free timestamp' >&2; exit 4; }}\necho \"TS $ts\"\n",
        names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ")
    );
    if names.is_empty() {
        s = "echo \"TS $(date +%Y%m%d_%H%M%S)\"\n".into();
    }
    let out = host.run(&s, None)?;
    tagged(&out.stdout_str(), "TS")
        .map(|t| t.trim().to_string())
        .filter(|t| out.success() && parse_ts(t).is_some())
        .ok_or_else(|| {
            ModuleError::failed(format!(
                "cannot prepare {bd} (rc={}): {}",
                out.rc,
                out.stderr_str().trim()
            ))
        })
}

/// Every item's archive: what was written, and what failed (one line
/// each). Only a host gone unreachable stops the run.
fn write_archives(
    run: &Run,
    items: &[Item],
    host: &mut dyn Host,
) -> Result<(Vec<Written>, Vec<String>), ModuleError> {
    let mut written: Vec<Written> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for it in items {
        let script = archive_script(it, run.p.consistency, &run.bd, &run.ts);
        let res = host.run(&script, None);
        let containers: Vec<(String, String)> = match &it.source {
            Source::Volume { containers, .. } if run.p.consistency != Consistency::None => {
                containers.clone()
            }
            _ => Vec::new(),
        };
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                // The script may have died with the containers down: bring
                // them up from here (starting a running one is a no-op).
                let again = restart_containers(host, run.p.consistency, &containers);
                failures.push(format!("{}: {e}{again}", it.describe()));
                if matches!(e, HostError::Unreachable(_)) {
                    return Err(e.into());
                }
                continue;
            }
        };
        let verdict = read_verdict(run, it, &out, &containers);
        failures.extend(verdict.failures);
        written.extend(verdict.written);
    }
    Ok((written, failures))
}

/// What one archive script printed: the archive it wrote, and a line
/// for each thing that went wrong (containers not started again, the
/// archive failing).
struct Verdict {
    written: Option<Written>,
    failures: Vec<String>,
}

fn read_verdict(
    run: &Run,
    it: &Item,
    out: &crate::ExecOutput,
    containers: &[(String, String)],
) -> Verdict {
    let (bd, ts) = (&run.bd, &run.ts);
    let text = out.stdout_str();
    let restart_failed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("RESTART_FAILED "))
        .collect();
    let mut v = Verdict {
        written: None,
        failures: Vec::new(),
    };
    if !restart_failed.is_empty() {
        v.failures.push(format!(
            "{}: containers not started again: {}",
            it.describe(),
            restart_failed.join(", ")
        ));
    }
    match (tagged(&text, "OK"), tagged(&text, "FAIL")) {
        (Some(ok), None) => {
            let mut f = ok.split_whitespace();
            let sha = f.next().unwrap_or_default().to_string();
            let size = f.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            v.written = Some(Written {
                kind: it.kind,
                name: it.name.clone(),
                path: format!("{bd}/{}/{}_{ts}.tar.gz", it.kind.dir(), it.name),
                sha256: sha,
                size,
                containers: containers.iter().map(|(_, n)| n.clone()).collect(),
            });
        }
        (_, Some(why)) => v.failures.push(format!("{}: {why}", it.describe())),
        _ => v.failures.push(format!(
            "{}: the script ended without a verdict (rc={}): {}",
            it.describe(),
            out.rc,
            out.stderr_str().trim()
        )),
    }
    v
}

/// The run's manifest: what verified, in `sha256sum -c` format.
fn write_manifest(run: &Run, host: &mut dyn Host, written: &[Written]) -> Result<(), ModuleError> {
    let ts = &run.ts;
    let text: String = written
        .iter()
        .map(|w| format!("{}  {}/{}_{ts}.tar.gz\n", w.sha256, w.kind.dir(), w.name))
        .collect();
    host.write_file(
        &format!("{}/{}", run.bd, run.manifest),
        text.as_bytes(),
        &FileAttrs::with_mode("0600"),
    )?;
    Ok(())
}

/// Retention, once every archive of this run verified: removes the old
/// archives and the manifests left with none, and returns them (relative
/// to `bd`).
fn prune(
    run: &Run,
    st: &BackupPlanState,
    host: &mut dyn Host,
    written: &[Written],
    result: &Map<String, Value>,
) -> Result<Vec<String>, ModuleError> {
    let (bd, ts) = (&run.bd, &run.ts);
    let mut archives = st.archives.clone();
    let mut manifests = st.manifests.clone();
    for w in written {
        let rel = format!("{}/{}_{ts}.tar.gz", w.kind.dir(), w.name);
        archives.push(Existing {
            kind: w.kind,
            name: w.name.clone(),
            ts: ts.clone(),
            rel: rel.clone(),
        });
        manifests.entry(run.manifest.clone()).or_default().push(rel);
    }
    let verified: BTreeSet<String> = manifests.values().flatten().cloned().collect();
    let managed: BTreeSet<(Kind, String)> =
        st.items.iter().map(|i| (i.kind, i.name.clone())).collect();
    let removed = retention(
        &archives,
        &verified,
        &managed,
        ts,
        run.p.keep_days.unwrap_or(DEFAULT_KEEP_DAYS),
        run.p.keep_last.unwrap_or(0),
    );
    let removed_set: BTreeSet<&String> = removed.iter().collect();
    let remaining: BTreeSet<String> = archives
        .iter()
        .map(|a| a.rel.clone())
        .filter(|r| !removed_set.contains(r))
        .collect();
    let mut to_remove: Vec<String> = removed.clone();
    if !removed.is_empty() {
        to_remove.extend(stale_manifests(&manifests, &remaining));
    }
    if !to_remove.is_empty() {
        let files: Vec<String> = to_remove
            .iter()
            .map(|r| quote(&format!("{bd}/{r}")))
            .collect();
        let out = host.run(&format!("rm -f -- {}", files.join(" ")), None)?;
        if !out.success() {
            return Err(ModuleError::Failed {
                msg: format!(
                    "retention could not remove old archives: {}",
                    out.stderr_str().trim()
                ),
                result: result.clone(),
            });
        }
    }
    Ok(to_remove)
}

/// `fetch_to`: the run's archives and manifest to the controller; returns
/// the local paths.
fn fetch_written(
    run: &Run,
    to: &str,
    host: &mut dyn Host,
    written: &[Written],
    result: &Map<String, Value>,
) -> Result<Vec<String>, ModuleError> {
    let (bd, ts, manifest) = (&run.bd, &run.ts, &run.manifest);
    let dest = fetch_dir(to, host.name());
    let mut fetched = Vec::new();
    let mut files: Vec<(String, Option<String>, PathBuf)> = written
        .iter()
        .map(|w| {
            let file = format!("{}_{ts}.tar.gz", w.name);
            (
                w.path.clone(),
                Some(w.sha256.clone()),
                dest.join(w.kind.dir()).join(file),
            )
        })
        .collect();
    files.push((format!("{bd}/{manifest}"), None, dest.join(manifest)));
    for (remote, sha, local) in files {
        fetch_one(host, &remote, &local, sha.as_deref()).map_err(|e| ModuleError::Failed {
            msg: format!("fetching {remote}: {e}"),
            result: result.clone(),
        })?;
        fetched.push(local.display().to_string());
    }
    Ok(fetched)
}

/// Start or unpause containers once more after a lost volume script; an
/// empty string when all came up, else what did not.
pub(super) fn restart_containers(
    host: &mut dyn Host,
    consistency: Consistency,
    containers: &[(String, String)],
) -> String {
    let up = match consistency {
        Consistency::Stop => "start",
        Consistency::Pause => "unpause",
        Consistency::None => return String::new(),
    };
    if containers.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    for (id, _) in containers {
        // Unpausing a container that is not paused fails; only a paused
        // one needs it.
        let cond = if up == "unpause" {
            format!(
                "[ \"$(docker inspect -f '{{{{.State.Status}}}}' {0})\" = paused ] && ",
                quote(id)
            )
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{{ {cond}docker {up} {0} >/dev/null 2>&1; }} ; \
             [ \"$(docker inspect -f '{{{{.State.Running}}}}' {0} 2>/dev/null)\" = true ] || echo {0}\n",
            quote(id)
        ));
    }
    match host.run(&s, None) {
        Ok(o) if o.stdout_str().trim().is_empty() => String::new(),
        Ok(o) => format!(
            "; containers not running afterwards: {}",
            o.stdout_str()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("; could not start the containers again: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(kind: Kind, name: &str, ts: &str) -> Existing {
        Existing {
            kind,
            name: name.into(),
            ts: ts.into(),
            rel: format!("{}/{name}_{ts}.tar.gz", kind.dir()),
        }
    }

    #[test]
    fn retention_keeps_the_newest_verified_archive() {
        let now = "20250601_120000";
        let archives = vec![
            ex(Kind::Volume, "db", "20250101_000000"),
            ex(Kind::Volume, "db", "20250201_000000"),
            ex(Kind::Volume, "db", "20250301_000000"),
            ex(Kind::Volume, "db", "20250531_000000"),
            ex(Kind::Volume, "other", "20200101_000000"),
        ];
        let managed: BTreeSet<(Kind, String)> = [(Kind::Volume, "db".to_string())].into();
        let all: BTreeSet<String> = archives.iter().map(|a| a.rel.clone()).collect();
        // A young one exists: every old one goes; `other` is not managed.
        assert_eq!(
            retention(&archives, &all, &managed, now, 30, 0),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250201_000000.tar.gz",
                "volumes/db_20250301_000000.tar.gz"
            ]
        );
        // All older than keep_days: the newest verified one stays.
        let old = &archives[..3];
        assert_eq!(
            retention(old, &all, &managed, now, 30, 0),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250201_000000.tar.gz"
            ]
        );
        // ... even when the newest is not verified: the newest verified
        // one is kept, the unverified newer one may go.
        let verified: BTreeSet<String> = [archives[1].rel.clone()].into();
        assert_eq!(
            retention(old, &verified, &managed, now, 30, 0),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250301_000000.tar.gz"
            ]
        );
        // keep_last keeps the newest N whatever their age.
        assert_eq!(
            retention(old, &all, &managed, now, 30, 2),
            ["volumes/db_20250101_000000.tar.gz"]
        );
        // keep_days: 0 with keep_last is count-based retention.
        assert_eq!(
            retention(&archives, &all, &managed, now, 0, 1),
            [
                "volumes/db_20250101_000000.tar.gz",
                "volumes/db_20250201_000000.tar.gz",
                "volumes/db_20250301_000000.tar.gz"
            ]
        );
        let manifests: BTreeMap<String, Vec<String>> = [
            (
                "manifest_a.sha256".to_string(),
                vec![archives[0].rel.clone()],
            ),
            (
                "manifest_b.sha256".to_string(),
                vec![archives[0].rel.clone(), archives[3].rel.clone()],
            ),
        ]
        .into();
        let remaining: BTreeSet<String> = [archives[3].rel.clone()].into();
        assert_eq!(
            stale_manifests(&manifests, &remaining),
            ["manifest_a.sha256"]
        );
    }
}
