//! `docker_volume` (`community.docker.docker_volume`): a Docker volume
//! made or removed with the host's docker CLI.
//!
//! The plan inspects the volume (one round trip) and compares the driver
//! and the options and labels the task gives, as the collection does; a
//! difference only recreates the volume with `recreate: options-changed`
//! (the default `never` leaves an existing volume as it is, data and all),
//! and `always` recreates it every run. Apply runs the commands and the
//! final `inspect` in one more round trip.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::docker_common::{self as dc, de_string_map, docker};
use super::docker_network::NetworkState;
use crate::{Host, Module, ModuleError, Outcome, Plan};

/// When an existing volume is removed and made again.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Recreate {
    /// Every run.
    Always,
    /// Never: an existing volume is kept whatever its settings.
    #[default]
    Never,
    /// When the driver, an option or a label given differs.
    OptionsChanged,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_volume`.
pub struct DockerVolumeParams {
    /// The volume's name.
    #[serde(alias = "name")]
    pub volume_name: String,
    /// The volume driver; `local` when not given.
    pub driver: Option<String>,
    /// Driver options (`docker volume create --opt`).
    #[serde(default, deserialize_with = "de_string_map")]
    pub driver_options: Option<BTreeMap<String, String>>,
    /// Labels the volume must carry (others are allowed).
    #[serde(default, deserialize_with = "de_string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// When an existing volume is made again (its data is lost).
    #[serde(default)]
    pub recreate: Recreate,
    /// Whether the volume exists.
    #[serde(default)]
    pub state: NetworkState,
}

/// The `docker_volume` module.
pub struct DockerVolume;

fn differences(p: &DockerVolumeParams, v: &Value) -> Vec<String> {
    let mut d = Vec::new();
    if v["Driver"].as_str() != Some(p.driver.as_deref().unwrap_or("local")) {
        d.push("driver".to_string());
    }
    for (what, want, path) in [
        ("driver_options", &p.driver_options, "Options"),
        ("labels", &p.labels, "Labels"),
    ] {
        if let Some(want) = want {
            let have = dc::string_map(v, path);
            d.extend(
                dc::missing_entries(want, &have)
                    .into_iter()
                    .map(|k| format!("{what}.{k}")),
            );
        }
    }
    d
}

fn create_argv(p: &DockerVolumeParams) -> Vec<String> {
    let mut a = docker(&["volume", "create"]);
    a.extend([
        "--driver".to_string(),
        p.driver.clone().unwrap_or_else(|| "local".into()),
    ]);
    for (k, v) in p.driver_options.iter().flatten() {
        a.extend(["--opt".into(), format!("{k}={v}")]);
    }
    for (k, v) in p.labels.iter().flatten() {
        a.extend(["--label".into(), format!("{k}={v}")]);
    }
    a.push(p.volume_name.clone());
    a
}

impl Module for DockerVolume {
    const NAME: &'static str = "docker_volume";
    const DOC_SHORT: &'static str = "Manage a Docker volume.";
    const DOC_LONG: &'static str = r##"Uses the host's `docker` CLI. An existing volume is compared with the
task's driver, options and labels (labels beyond the task's are allowed), but
only `recreate: options-changed` acts on a difference: the default `never`
keeps an existing volume and its data, as the collection does."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_volume:
    name: pgdata
    labels:
      app: shop
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "volume",
        "The volume's `docker volume inspect` data (absent after `state: absent`).",
    )];
    type Params = DockerVolumeParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let name = &p.volume_name;
        let found = dc::probe(host, &[docker(&["volume", "inspect", name])])?;
        let vol = found[0].inspected("inspect the volume")?;
        let mut plan = Plan::default();
        match (&vol, p.state) {
            (Some(_), NetworkState::Absent) => plan.changes.push(format!("remove volume {name}")),
            (None, NetworkState::Present) => plan.changes.push(format!("create volume {name}")),
            (Some(v), NetworkState::Present) => {
                let diff = differences(p, v);
                let why = match p.recreate {
                    Recreate::Always => Some("recreate: always".to_string()),
                    Recreate::OptionsChanged if !diff.is_empty() => Some(diff.join(", ")),
                    _ => None,
                };
                if let Some(why) = why {
                    plan.changes.push(format!("recreate volume {name} ({why})"));
                }
                plan.result.insert("volume".into(), v.clone());
            }
            (None, NetworkState::Absent) => {}
        }
        plan.state = json!({ "exists": vol.is_some() });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let mut cmds = Vec::new();
        if plan.state["exists"].as_bool().unwrap_or(false) {
            cmds.push(docker(&["volume", "rm", &p.volume_name]));
        }
        let mut result = Map::new();
        if p.state == NetworkState::Absent {
            dc::apply(host, "remove the volume", &cmds, None, None)?;
        } else {
            cmds.push(create_argv(p));
            let inspect = docker(&["volume", "inspect", &p.volume_name]);
            let out = dc::apply(host, "create the volume", &cmds, Some(&inspect), None)?;
            let v = dc::inspected("inspect the volume", &out)?.unwrap_or(Value::Null);
            result.insert("volume".into(), v);
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::docker_common::fake;
    use crate::DynModule;

    #[test]
    fn a_volume_is_made_then_left_alone() {
        let mut h = fake::host();
        let params = json!({"name": "data", "labels": {"app": "shop"}, "driver_options": {"type": "tmpfs", "device": "tmpfs"}});
        let (plan, out) = fake::converge(&DockerVolume, &mut h, &params);
        assert_eq!(plan.changes, ["create volume data"]);
        assert_eq!(out.result["volume"]["Labels"]["app"], "shop");
        assert_eq!(out.result["volume"]["Options"]["type"], "tmpfs");
    }

    #[test]
    fn a_changed_label_recreates_only_when_asked() {
        let mut h = fake::host();
        fake::converge(&DockerVolume, &mut h, &json!({"volume_name": "v"}));
        let changed = json!({"volume_name": "v", "labels": {"a": "1"}});
        assert!(fake::plan(&DockerVolume, &mut h, &changed).is_empty());
        let (plan, _) = fake::converge(
            &DockerVolume,
            &mut h,
            &json!({"volume_name": "v", "labels": {"a": "1"}, "recreate": "options-changed"}),
        );
        assert_eq!(plan.changes, ["recreate volume v (labels.a)"]);
        let always = json!({"volume_name": "v", "recreate": "always"});
        assert_eq!(fake::plan(&DockerVolume, &mut h, &always).changes.len(), 1);
    }

    #[test]
    fn check_mode_changes_nothing_and_absent_removes() {
        let mut h = fake::host();
        let plan = fake::plan(&DockerVolume, &mut h, &json!({"name": "v"}));
        assert_eq!(plan.changes, ["create volume v"]);
        assert!(h.volumes.is_empty());
        fake::converge(&DockerVolume, &mut h, &json!({"name": "v"}));
        fake::converge(
            &DockerVolume,
            &mut h,
            &json!({"name": "v", "state": "absent"}),
        );
        assert!(h.volumes.is_empty());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(DockerVolume
            .check_params(&json!({"name": "v", "recreate": "sometimes"}))
            .is_err());
        assert!(DockerVolume
            .check_params(&json!({"name": "v", "labels": {"a": [1]}}))
            .is_err());
    }
}
