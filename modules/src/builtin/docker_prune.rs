//! `docker_prune` (`community.docker.docker_prune`): unused containers,
//! images, networks, volumes and build cache removed with the host's
//! docker CLI (`docker <kind> prune --force`).
//!
//! What a prune removes cannot be known without running it (the engine
//! decides what is unused), so check mode skips the task, as the
//! collection (no check mode support) is skipped by Ansible. Apply runs
//! every prune asked for in one round trip and reads back what each
//! removed and the space reclaimed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::docker_common::{self as dc, docker};
use crate::params::de_bool;
use crate::{Host, Module, ModuleError, Outcome, Plan};

/// Filters, name to value (`until: 24h`, `label: app=x`, `dangling: false`).
type Filters = Option<BTreeMap<String, Value>>;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_prune`.
pub struct DockerPruneParams {
    /// Remove stopped containers.
    #[serde(default, deserialize_with = "de_bool")]
    pub containers: bool,
    /// Filters for the containers (`until`, `label`).
    pub containers_filters: Filters,
    /// Remove dangling images (all unused ones with the filter `dangling: false`).
    #[serde(default, deserialize_with = "de_bool")]
    pub images: bool,
    /// Filters for the images (`dangling`, `until`, `label`).
    pub images_filters: Filters,
    /// Remove unused networks.
    #[serde(default, deserialize_with = "de_bool")]
    pub networks: bool,
    /// Filters for the networks (`until`, `label`).
    pub networks_filters: Filters,
    /// Remove unused volumes.
    #[serde(default, deserialize_with = "de_bool")]
    pub volumes: bool,
    /// Filters for the volumes (`label`).
    pub volumes_filters: Filters,
    /// Remove the build cache.
    #[serde(default, deserialize_with = "de_bool")]
    pub builder_cache: bool,
}

/// The `docker_prune` module.
pub struct DockerPrune;

/// `until=24h` words for `--filter`; a `dangling` image filter is `--all`.
fn filter_args(kind: &str, f: &Filters) -> Vec<String> {
    let mut a = Vec::new();
    for (k, v) in f.iter().flatten() {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        if kind == "image" && k == "dangling" {
            if v == "false" || v == "False" {
                a.push("--all".into());
            }
            continue;
        }
        a.extend(["--filter".into(), format!("{k}={v}")]);
    }
    a
}

/// Docker's human sizes (`1.2MB`, `0B`; powers of 1000) as bytes.
fn reclaimed(text: &str) -> u64 {
    let Some(line) = text
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space:"))
    else {
        return 0;
    };
    let t = line.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..split].parse().unwrap_or(0.0);
    let mult = match t[split..].trim() {
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => 1.0,
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    {
        (n * mult).round() as u64
    }
}

/// The names or IDs listed under the `Deleted ...:` heading.
fn deleted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with("Deleted ") && l.ends_with(':') {
            inside = true;
        } else if l.trim().is_empty() || l.starts_with("Total reclaimed") {
            inside = false;
        } else if inside {
            out.push(l.trim().to_string());
        }
    }
    out
}

/// Images as the collection lists them: `{Untagged: ...}` / `{Deleted: ...}`.
fn image_entries(lines: &[String]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| match l.split_once(": ") {
                Some(("untagged", r)) => json!({"Untagged": r}),
                Some(("deleted", r)) => json!({"Deleted": r}),
                _ => json!({"Deleted": l}),
            })
            .collect(),
    )
}

impl DockerPruneParams {
    fn kinds(&self) -> Vec<(&'static str, Vec<String>)> {
        let mut k = Vec::new();
        for (on, kind, filters) in [
            (self.containers, "container", &self.containers_filters),
            (self.images, "image", &self.images_filters),
            (self.networks, "network", &self.networks_filters),
            (self.volumes, "volume", &self.volumes_filters),
        ] {
            if on {
                let mut a = docker(&[kind, "prune", "--force"]);
                a.extend(filter_args(kind, filters));
                k.push((kind, a));
            }
        }
        if self.builder_cache {
            k.push(("builder", docker(&["builder", "prune", "--force"])));
        }
        k
    }
}

impl Module for DockerPrune {
    const NAME: &'static str = "docker_prune";
    const DOC_SHORT: &'static str =
        "Remove unused Docker containers, images, networks, volumes and build cache.";
    const DOC_LONG: &'static str = r##"Runs `docker <kind> prune --force` for each kind asked for, with its
filters, in one round trip. The engine decides what is unused, so what would
go cannot be known beforehand: check mode skips the task (the collection has
no check mode either). The task changes when something was removed or space
was reclaimed."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_prune:
    containers: true
    images: true
    images_filters:
      dangling: false
      until: 72h
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("containers", "IDs of the containers removed."),
        (
            "containers_space_reclaimed",
            "Bytes reclaimed by removing containers.",
        ),
        (
            "images",
            "The images untagged and deleted (`{Untagged: ...}`, `{Deleted: ...}`).",
        ),
        (
            "images_space_reclaimed",
            "Bytes reclaimed by removing images.",
        ),
        ("networks", "Names of the networks removed."),
        ("volumes", "Names of the volumes removed."),
        (
            "volumes_space_reclaimed",
            "Bytes reclaimed by removing volumes.",
        ),
        (
            "builder_cache_space_reclaimed",
            "Bytes of build cache removed.",
        ),
    ];
    type Params = DockerPruneParams;

    fn plan(&self, p: &Self::Params, _host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let kinds = p.kinds();
        Ok(Plan {
            changes: kinds
                .iter()
                .map(|(k, _)| format!("prune unused {k}s"))
                .collect(),
            unknowable: true,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let kinds = p.kinds();
        let cmds: Vec<Vec<String>> = kinds.iter().map(|(_, a)| a.clone()).collect();
        let sections = dc::probe(host, &cmds)?;
        let mut r = Map::new();
        let mut changed = false;
        for ((kind, _), s) in kinds.iter().zip(&sections) {
            if s.rc != 0 {
                return Err(s.error("prune"));
            }
            let gone = deleted(&s.text);
            let space = reclaimed(&s.text);
            changed |= !gone.is_empty() || space > 0;
            match *kind {
                "container" => {
                    r.insert("containers".into(), json!(gone));
                    r.insert("containers_space_reclaimed".into(), json!(space));
                }
                "image" => {
                    r.insert("images".into(), image_entries(&gone));
                    r.insert("images_space_reclaimed".into(), json!(space));
                }
                "network" => {
                    r.insert("networks".into(), json!(gone));
                }
                "volume" => {
                    r.insert("volumes".into(), json!(gone));
                    r.insert("volumes_space_reclaimed".into(), json!(space));
                }
                _ => {
                    r.insert("builder_cache_space_reclaimed".into(), json!(space));
                }
            }
        }
        r.insert("changed".into(), json!(changed));
        Ok(Outcome::changed_if(changed, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHost, Match};
    use crate::DynModule;

    #[test]
    fn prunes_read_back_what_went() {
        let out = "@@herd-docker\nDeleted Containers:\nabc\ndef\n\nTotal reclaimed space: 1.5kB\n@@herd-docker-rc 0\n\
                   @@herd-docker\nDeleted Images:\nuntagged: app:1\ndeleted: sha256:12\n\nTotal reclaimed space: 2MB\n@@herd-docker-rc 0\n";
        let mut h = FakeHost::new().answer(Match::contains("prune"), 0, out, "");
        let p = json!({"containers": true, "images": "yes", "images_filters": {"dangling": false, "until": "24h"}});
        let plan = DynModule::plan(&DockerPrune, &p, &mut h).expect("plan");
        assert!(plan.unknowable, "check mode skips it");
        assert_eq!(
            plan.changes,
            ["prune unused containers", "prune unused images"]
        );
        let o = DynModule::apply(&DockerPrune, &p, plan, &mut h).expect("apply");
        assert!(o.changed);
        assert_eq!(o.result["containers"], json!(["abc", "def"]));
        assert_eq!(o.result["containers_space_reclaimed"], 1500);
        assert_eq!(o.result["images"][0]["Untagged"], "app:1");
        assert_eq!(o.result["images_space_reclaimed"], 2_000_000);
        assert!(
            h.scripts[0].contains("docker image prune --force --all --filter until=24h"),
            "{}",
            h.scripts[0]
        );
    }

    #[test]
    fn nothing_removed_is_no_change_and_nothing_asked_is_an_empty_plan() {
        let out = "@@herd-docker\nTotal reclaimed space: 0B\n@@herd-docker-rc 0\n";
        let mut h = FakeHost::new().answer(Match::Any, 0, out, "");
        let p = json!({"volumes": true});
        let plan = DynModule::plan(&DockerPrune, &p, &mut h).expect("plan");
        let o = DynModule::apply(&DockerPrune, &p, plan, &mut h).expect("apply");
        assert!(!o.changed);
        assert!(DynModule::plan(&DockerPrune, &json!({}), &mut h)
            .expect("plan")
            .is_empty());
        assert!(DockerPrune.check_params(&json!({"system": true})).is_err());
    }
}
