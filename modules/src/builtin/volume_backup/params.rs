//! `volume_backup`'s parameters and how they are read: the selection of
//! volumes, the consistency mode, lists and optional paths.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::params::{de_bool, de_opt_u64};

use super::DEFAULT_BACKUP_DIR;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    #[default]
    BackedUp,
    Restored,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Stop,
    Pause,
    #[default]
    None,
}

/// Which volumes: every named volume, or names and glob patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    All,
    Some(Vec<String>),
    #[default]
    Nothing,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeBackupParams {
    /// `backed_up`: archive what is named; `restored`: restore `volume` from `archive`.
    #[serde(default)]
    pub state: BackupState,
    /// Named volumes to archive: `all`, a name or glob, or a list of them (anonymous volumes
    /// are left out of `all` and globs).
    #[serde(default, deserialize_with = "de_selection")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub volumes: Selection,
    /// Directories whose compose files (`compose*.y*ml`, `docker-compose*.y*ml`, `.env`, up to
    /// three levels down) are archived.
    #[serde(default, deserialize_with = "de_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub compose_dirs: Vec<String>,
    /// Archive `/etc/docker` (daemon.json, certificates).
    #[serde(default = "crate::params::yes", deserialize_with = "de_bool")]
    pub docker_config: bool,
    /// Images to archive with `docker save`.
    #[serde(default, deserialize_with = "de_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub images: Vec<String>,
    /// Where archives go on the host (`volumes/`, `configs/`, `images/` under it).
    #[serde(default = "default_backup_dir")]
    pub backup_dir: String,
    /// `stop` or `pause` the running containers that use a volume while it is copied (they are
    /// always started again); `none` copies live.
    #[serde(default, deserialize_with = "de_consistency")]
    pub consistency: Consistency,
    /// Retention: remove this task's archives older than this many days (default 30; `0` with
    /// `keep_last` keeps exactly the newest N).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub keep_days: Option<u64>,
    /// Retention: always keep the newest N archives of each name (default 0).
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub keep_last: Option<u64>,
    /// Copy each archive to this controller directory (relative to the playbook), under
    /// `<host>/`, checked by SHA-256.
    #[serde(default, deserialize_with = "de_opt_path")]
    pub fetch_to: Option<String>,
    /// `state: restored`: the archive on the host, absolute or relative to
    /// `<backup_dir>/volumes`.
    #[serde(default, deserialize_with = "de_opt_path")]
    pub archive: Option<String>,
    /// `state: restored`: the volume to restore into.
    #[serde(default, deserialize_with = "de_opt_path")]
    pub volume: Option<String>,
    /// `state: restored`: empty a volume that has data before restoring (refused otherwise).
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
}

pub(super) fn default_backup_dir() -> String {
    DEFAULT_BACKUP_DIR.into()
}

pub(super) fn de_selection<'de, D: Deserializer<'de>>(d: D) -> Result<Selection, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Selection::Nothing),
        Value::String(s) if s.trim() == "all" => Ok(Selection::All),
        Value::String(s) if s.trim().is_empty() => Ok(Selection::Nothing),
        Value::String(s) => Ok(Selection::Some(vec![s.trim().to_string()])),
        Value::Array(a) => {
            let names = a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    other => Err(serde::de::Error::custom(format!(
                        "expected a volume name or pattern, got {other}"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if names.is_empty() {
                Selection::Nothing
            } else {
                Selection::Some(names)
            })
        }
        _ => Err(serde::de::Error::custom(
            "expected `all`, a volume name or pattern, or a list of them",
        )),
    }
}

pub(super) fn de_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.trim().to_string()]),
        Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                other => Err(serde::de::Error::custom(format!(
                    "expected a string, got {other}"
                ))),
            })
            .collect(),
        _ => Err(serde::de::Error::custom("expected a list of strings")),
    }
}

/// `none` also arrives as YAML null from some templates.
pub(super) fn de_consistency<'de, D: Deserializer<'de>>(d: D) -> Result<Consistency, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Consistency::None),
        Value::String(s) => match s.trim() {
            "stop" => Ok(Consistency::Stop),
            "pause" => Ok(Consistency::Pause),
            "none" | "" => Ok(Consistency::None),
            other => Err(serde::de::Error::custom(format!(
                "unknown consistency `{other}`, expected one of stop, pause, none"
            ))),
        },
        _ => Err(serde::de::Error::custom("expected stop, pause or none")),
    }
}

/// An optional string; an empty one (a template rendering nothing) is none.
pub(super) fn de_opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        _ => Err(serde::de::Error::custom("expected a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::VolumeBackup;
    use super::*;
    use crate::module::parse_params;
    use crate::Module;
    use serde_json::json;

    fn params(v: Value) -> VolumeBackupParams {
        parse_params::<VolumeBackupParams>(VolumeBackup::NAME, &v).expect("params")
    }

    #[test]
    fn parses_selection_and_consistency() {
        assert_eq!(params(json!({"volumes": "all"})).volumes, Selection::All);
        assert_eq!(
            params(json!({"volumes": "app_*"})).volumes,
            Selection::Some(vec!["app_*".into()])
        );
        assert_eq!(
            params(json!({"volumes": ["a", "b"]})).volumes,
            Selection::Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(params(json!({})).volumes, Selection::Nothing);
        let p = params(json!({"consistency": "pause", "keep_days": "7", "keep_last": 3}));
        assert_eq!(p.consistency, Consistency::Pause);
        assert_eq!((p.keep_days, p.keep_last), (Some(7), Some(3)));
        assert_eq!(p.backup_dir, "/backup/docker");
        assert!(p.docker_config);
        let e = parse_params::<VolumeBackupParams>("t", &json!({"consistency": "freeze"}))
            .expect_err("bad consistency");
        assert!(e.to_string().contains("stop, pause, none"), "{e}");
        assert!(parse_params::<VolumeBackupParams>("t", &json!({"volume": 3})).is_err());
    }
}
