//! `state: restored`: one archive into one volume, with a marker that
//! makes restoring it again a no-op.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::probe::tagged;
use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

use super::names::{parse_archive_name, valid_volume_name};
use super::params::VolumeBackupParams;
use super::{docker_check, invalid, parse_volume, VolumeBackup, MARKER_DIR, VOL_FMT};

/// What the restore plan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RestoreProbe {
    pub(super) archive_sha: Option<String>,
    pub(super) manifest_sha: Option<String>,
    pub(super) volume: Option<(String, String)>,
    pub(super) empty: bool,
    pub(super) users: Vec<String>,
    pub(super) marker: Option<String>,
    /// `device:inode` of the volume's directory.
    pub(super) identity: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RestoreState {
    pub(super) archive: String,
    pub(super) marker: String,
    pub(super) volume: String,
    pub(super) create: bool,
    pub(super) wipe: bool,
    pub(super) sha: String,
}

/// The archive's path on the host and the volume it goes into.
pub(super) fn restore_target(p: &VolumeBackupParams) -> Result<(String, String), ModuleError> {
    let Some(archive) = &p.archive else {
        return Err(ModuleError::Params(ParamError::Missing {
            module: VolumeBackup::NAME,
            field: "archive".into(),
        }));
    };
    let path = if archive.starts_with('/') {
        archive.clone()
    } else {
        format!("{}/volumes/{archive}", p.backup_dir.trim_end_matches('/'))
    };
    let file = path.rsplit('/').next().unwrap_or_default();
    let volume = match &p.volume {
        Some(v) => v.clone(),
        None => parse_archive_name(file)
            .map(|(n, _)| n.to_string())
            .ok_or_else(|| {
                invalid(
                    "volume",
                    format!(
                        "`{file}` is not named <volume>_<YYYYmmdd_HHMMSS>.tar.gz: give `volume`"
                    ),
                )
            })?,
    };
    if !valid_volume_name(&volume) {
        return Err(invalid(
            "volume",
            format!("`{volume}` is not a valid volume name"),
        ));
    }
    Ok((path, volume))
}

pub(super) fn restore_probe_script(archive: &str, volume: &str, marker: &str) -> String {
    let a = quote(archive);
    let v = quote(volume);
    let file = archive.rsplit('/').next().unwrap_or_default();
    let mut s = docker_check();
    s.push_str(&format!(
        "if [ -f {a} ]; then echo \"ASHA $(sha256sum < {a} | cut -c1-64)\"; else echo 'ASHA -'; fi\n\
         d=$(dirname -- {a})\n\
         for m in \"$d\"/manifest_*.sha256 \"$d\"/../manifest_*.sha256; do [ -f \"$m\" ] || continue; \
         while read -r sum path; do [ \"${{path##*/}}\" = {f} ] && echo \"MSHA $sum\"; done < \"$m\"; done\n\
         if info=$(docker volume inspect -f {fmt} {v} 2>/dev/null); then echo \"VOL $info\"; \
         mp=${{info##*|}}; if [ -z \"$(ls -A \"$mp\" 2>/dev/null)\" ]; then echo 'EMPTY y'; else echo 'EMPTY n'; fi; \
         echo \"IDENT $(stat -c %d:%i \"$mp\" 2>/dev/null)\"; \
         echo \"USERS $(docker ps -q --filter volume={v} | tr '\\n' ' ')\"; else echo 'VOL -'; fi\n\
         if [ -f {marker} ]; then echo \"MARK $(cat {marker})\"; else echo 'MARK -'; fi\n\
         echo END\n",
        f = quote(file),
        fmt = quote(VOL_FMT),
        marker = quote(marker),
    ));
    s
}

pub(super) fn parse_restore_probe(out: &str) -> Result<RestoreProbe, ModuleError> {
    if let Some(why) = tagged(out, "NODOCKER") {
        return Err(ModuleError::failed(why.to_string()));
    }
    if !out.lines().any(|l| l == "END") {
        return Err(ModuleError::failed(format!(
            "the probe stopped early: {}",
            out.trim()
        )));
    }
    let opt = |t: &str| {
        tagged(out, t)
            .map(str::trim)
            .filter(|v| *v != "-" && !v.is_empty())
            .map(str::to_string)
    };
    let volume = opt("VOL")
        .and_then(|l| parse_volume(&l))
        .map(|v| (v.created, v.mountpoint));
    Ok(RestoreProbe {
        archive_sha: opt("ASHA"),
        manifest_sha: opt("MSHA"),
        empty: tagged(out, "EMPTY").is_none_or(|e| e.trim() == "y"),
        users: tagged(out, "USERS")
            .map(|u| u.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        marker: opt("MARK"),
        identity: opt("IDENT"),
        volume,
    })
}

pub(super) fn marker_path(p: &VolumeBackupParams, volume: &str) -> String {
    format!(
        "{}/{MARKER_DIR}/{volume}",
        p.backup_dir.trim_end_matches('/')
    )
}

/// The marker's text: the volume directory's identity and the archive's
/// SHA-256.
pub(super) fn marker_text(identity: &str, sha: &str) -> String {
    format!("{identity}|{sha}")
}

pub(super) fn plan_restore(
    p: &VolumeBackupParams,
    host: &mut dyn Host,
) -> Result<Plan, ModuleError> {
    let (archive, volume) = restore_target(p)?;
    let marker = marker_path(p, &volume);
    let out = host.run(&restore_probe_script(&archive, &volume, &marker), None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "looking at the host failed (rc={}): {}",
            out.rc,
            out.stderr_str().trim()
        )));
    }
    let pr = parse_restore_probe(&out.stdout_str())?;
    let mut plan = Plan::empty();
    plan.result.insert("volume".into(), json!(volume));
    plan.result.insert("archive".into(), json!(archive));
    let Some(sha) = pr.archive_sha.clone() else {
        return Err(ModuleError::failed(format!(
            "archive `{archive}` does not exist on the host"
        )));
    };
    plan.result.insert("sha256".into(), json!(sha));
    if let (Some(_), Some(identity), false) = (&pr.volume, &pr.identity, pr.empty) {
        if pr.marker.as_deref() == Some(marker_text(identity, &sha).as_str()) {
            return Ok(plan);
        }
    }
    if let Some(want) = &pr.manifest_sha {
        if want != &sha {
            return Err(ModuleError::failed(format!(
                "archive `{archive}` does not match its manifest (SHA-256 {sha}, manifest {want})"
            )));
        }
    }
    let mut wipe = false;
    match &pr.volume {
        None => plan.changes.push(format!("create volume {volume}")),
        Some(_) => {
            if !pr.users.is_empty() {
                return Err(ModuleError::failed(format!(
                    "volume `{volume}` is used by running containers ({}): stop them first",
                    pr.users.join(", ")
                )));
            }
            if !pr.empty {
                if !p.force {
                    return Err(ModuleError::failed(format!(
                        "volume `{volume}` is not empty: restore into a new or empty volume, or set force: true to replace its contents"
                    )));
                }
                wipe = true;
                plan.changes.push(format!("empty volume {volume} (force)"));
            }
        }
    }
    plan.changes
        .push(format!("restore volume {volume} from {archive}"));
    plan.keep_state(&RestoreState {
        archive,
        marker,
        volume,
        create: pr.volume.is_none(),
        wipe,
        sha,
    })?;
    Ok(plan)
}

pub(super) fn apply_restore(plan: Plan, host: &mut dyn Host) -> Result<Outcome, ModuleError> {
    let st: RestoreState = plan.state_as()?;
    let a = quote(&st.archive);
    let v = quote(&st.volume);
    let mut s = format!(
        "fail() {{ echo \"FAIL $1\"; exit 1; }}\n\
         gzip -t {a} 2>/dev/null || fail 'the archive is not valid gzip'\n\
         tar -tzf {a} >/dev/null 2>&1 || fail 'the archive cannot be listed'\n\
         [ \"$(sha256sum < {a} | cut -c1-64)\" = {sha} ] || fail 'the archive changed since the plan'\n",
        sha = quote(&st.sha),
    );
    if st.create {
        s.push_str(&format!(
            "docker volume create {v} >/dev/null || fail 'docker volume create failed'\n"
        ));
    }
    s.push_str(&format!(
        "info=$(docker volume inspect -f {fmt} {v}) || fail 'the volume is gone'\n\
         mp=${{info##*|}}\n\
         [ -d \"$mp\" ] || fail \"no mountpoint $mp\"\n",
        fmt = quote(VOL_FMT)
    ));
    if st.wipe {
        s.push_str("find \"$mp\" -mindepth 1 -delete || fail 'cannot empty the volume'\n");
    } else {
        s.push_str("[ -z \"$(ls -A \"$mp\")\" ] || fail 'the volume is no longer empty'\n");
    }
    s.push_str(&format!(
        "e=$(tar --numeric-owner -xzf {a} -C \"$mp\" 2>&1) || fail \"tar failed: $(echo \"$e\" | tail -n 3 | tr '\\n' ' ')\"\n\
         identity=$(stat -c %d:%i \"$mp\") || fail 'cannot stat the volume'\n\
         mkdir -p \"$(dirname -- {m})\" && printf '%s|%s\\n' \"$identity\" {sha} > {m} || fail 'cannot write the marker'\n\
         echo OK\n",
        m = quote(&st.marker),
        sha = quote(&st.sha),
    ));
    let out = host.run(&s, None)?;
    let text = out.stdout_str();
    let mut result = plan.result.clone();
    if let Some(why) = tagged(&text, "FAIL") {
        return Err(ModuleError::Failed {
            msg: format!("restoring volume `{}` failed: {why}", st.volume),
            result,
        });
    }
    if !out.success() || !text.lines().any(|l| l == "OK") {
        return Err(ModuleError::Failed {
            msg: format!(
                "restoring volume `{}` failed (rc={}): {}",
                st.volume,
                out.rc,
                out.stderr_str().trim()
            ),
            result,
        });
    }
    result.insert("changed".into(), json!(true));
    let msg = format!("volume {} restored from {}", st.volume, st.archive);
    Ok(Outcome {
        changed: true,
        result,
        msg: Some(msg),
        failed: false,
    })
}
