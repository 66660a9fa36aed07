//! `docker_image` (`community.docker.docker_image`): an image pulled,
//! built, loaded or removed with the host's docker CLI, and optionally
//! tagged into another repository, pushed and saved to an archive.
//!
//! The plan inspects the image (and the repository tag, and reads the
//! archive's `manifest.json` when `archive_path` is given) in one round
//! trip. An image that is there is left alone unless `force_source`; a
//! missing one comes from its `source`. Apply runs the commands and the
//! final `inspect` in one round trip; a pull or build that yields the
//! image already there (same ID) is no change.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::docker_common::{self as dc, de_string_map, docker};
use super::docker_network::NetworkState;
use crate::params::{de_bool, de_opt_bool};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

/// Where a missing image comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// `docker build` of `build.path`.
    Build,
    /// `docker load` of `load_path`.
    Load,
    /// `docker pull`.
    Pull,
    /// Only an image already on the host.
    Local,
}

/// How to build.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// The build context, a directory on the host.
    pub path: String,
    /// The Dockerfile, relative to `path`.
    pub dockerfile: Option<String>,
    /// Build arguments.
    #[serde(default, deserialize_with = "de_string_map")]
    pub args: Option<BTreeMap<String, String>>,
    /// Build without the cache.
    #[serde(default, deserialize_with = "de_bool")]
    pub nocache: bool,
    /// Pull newer base images.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub pull: Option<bool>,
    /// The stage to build.
    pub target: Option<String>,
    /// The network of the build's RUN steps.
    pub network: Option<String>,
    /// Labels for the image.
    #[serde(default, deserialize_with = "de_string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Remove intermediate containers (the default).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub rm: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_image`.
pub struct DockerImageParams {
    /// The image: `repository[:tag]`.
    pub name: String,
    /// The tag, when `name` has none; `latest` when not given.
    pub tag: Option<String>,
    /// Where a missing image comes from; needed with `state: present`.
    pub source: Option<ImageSource>,
    /// Whether the image is on the host.
    #[serde(default)]
    pub state: NetworkState,
    /// Pull, build or load even when the image is there.
    #[serde(default, deserialize_with = "de_bool")]
    pub force_source: bool,
    /// Remove the image even when containers use it (`docker rmi -f`).
    #[serde(default, deserialize_with = "de_bool")]
    pub force_absent: bool,
    /// Accepted for compatibility: the `repository` tag is always moved
    /// to this image.
    #[serde(default, deserialize_with = "de_bool")]
    pub force_tag: bool,
    /// How to build, with `source: build`.
    pub build: Option<BuildSpec>,
    /// An archive on the host to load, with `source: load`.
    pub load_path: Option<String>,
    /// Save the image to this archive on the host (`docker save`) when the
    /// archive does not hold it.
    pub archive_path: Option<String>,
    /// Also tag the image as this `repository[:tag]` (and push that with `push`).
    pub repository: Option<String>,
    /// Push the image (or the `repository` tag) to its registry.
    #[serde(default, deserialize_with = "de_bool")]
    pub push: bool,
}

/// The `docker_image` module.
pub struct DockerImage;

impl DockerImageParams {
    /// `name:tag`, the tag from `tag` when `name` has none.
    fn reference(&self) -> String {
        let last = self.name.rsplit('/').next().unwrap_or(&self.name);
        if self.name.contains('@') || last.contains(':') {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, self.tag.as_deref().unwrap_or("latest"))
        }
    }
    fn repository(&self) -> Option<String> {
        self.repository.as_ref().map(|r| {
            let last = r.rsplit('/').next().unwrap_or(r);
            if last.contains(':') {
                r.clone()
            } else {
                format!("{r}:{}", self.tag.as_deref().unwrap_or("latest"))
            }
        })
    }
}

#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct ImagePlan {
    /// Pull, build or load.
    fetch: bool,
    remove: bool,
    tag: bool,
    push: bool,
    save: bool,
    /// The image's ID before (to tell a rebuild of the same image).
    before: Option<String>,
}

fn invalid(path: &str, reason: &str) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: DockerImage::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

fn fetch_argv(p: &DockerImageParams, reference: &str) -> Result<Vec<String>, ModuleError> {
    match p.source {
        Some(ImageSource::Pull) => Ok(docker(&["pull", reference])),
        Some(ImageSource::Load) => {
            let path = p
                .load_path
                .as_deref()
                .ok_or_else(|| invalid("load_path", "needed with source: load"))?;
            Ok(docker(&["load", "--input", path]))
        }
        Some(ImageSource::Build) => {
            let b = p
                .build
                .as_ref()
                .ok_or_else(|| invalid("build", "needed with source: build"))?;
            let mut a = docker(&["build", "--tag", reference]);
            if let Some(f) = &b.dockerfile {
                a.extend([
                    "--file".into(),
                    format!("{}/{f}", b.path.trim_end_matches('/')),
                ]);
            }
            for (k, v) in b.args.iter().flatten() {
                a.extend(["--build-arg".into(), format!("{k}={v}")]);
            }
            for (k, v) in b.labels.iter().flatten() {
                a.extend(["--label".into(), format!("{k}={v}")]);
            }
            if b.nocache {
                a.push("--no-cache".into());
            }
            if b.pull == Some(true) {
                a.push("--pull".into());
            }
            if b.rm == Some(false) {
                a.push("--rm=false".into());
            }
            if let Some(t) = &b.target {
                a.extend(["--target".into(), t.clone()]);
            }
            if let Some(n) = &b.network {
                a.extend(["--network".into(), n.clone()]);
            }
            a.push(b.path.clone());
            Ok(a)
        }
        Some(ImageSource::Local) => Err(ModuleError::failed(format!(
            "image {reference} is not on the host (source: local)"
        ))),
        None => Err(invalid(
            "source",
            "needed to make an image that is not on the host",
        )),
    }
}

/// The image ID an archive of `docker save` holds, from its manifest.
fn archive_id(manifest: &str) -> Option<String> {
    let v: Value = serde_json::from_str(manifest.trim()).ok()?;
    let config = v.get(0)?.get("Config")?.as_str()?;
    let file = config.rsplit('/').next()?;
    Some(format!("sha256:{}", file.trim_end_matches(".json")))
}

impl Module for DockerImage {
    const NAME: &'static str = "docker_image";
    const DOC_SHORT: &'static str = "Pull, build, load, tag, push, save or remove a Docker image.";
    const DOC_LONG: &'static str = r##"Uses the host's `docker` CLI. With `state: present` an image already on
the host is left as it is unless `force_source: true`; a missing one is
pulled, built from `build.path` (a directory on the host) or loaded from
`load_path`, as `source` says (`local` only accepts one already there). A
forced pull or build that gives the same image ID is no change.
`repository` tags the image under another name too, `push` pushes it, and
`archive_path` saves it with `docker save` when the archive there does not
hold this image (read from the archive's `manifest.json`)."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_image:
    name: app
    tag: v2
    source: build
    build:
      path: /opt/app
      args:
        VERSION: "2"
- docker_image:
    name: localhost:5000/app:v2
    source: pull
    force_source: true
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "image",
        "The image's `docker image inspect` data (absent after `state: absent`).",
    )];
    type Params = DockerImageParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let reference = p.reference();
        let mut cmds = vec![docker(&["image", "inspect", &reference])];
        let repo = p.repository();
        if let Some(r) = &repo {
            cmds.push(docker(&["image", "inspect", r]));
        }
        if let Some(a) = &p.archive_path {
            cmds.push(vec![
                "tar".into(),
                "-xOf".into(),
                a.clone(),
                "manifest.json".into(),
            ]);
        }
        let s = dc::probe(host, &cmds)?;
        let image = s[0].inspected("inspect the image")?;
        let mut st = ImagePlan {
            before: image
                .as_ref()
                .and_then(|i| i["Id"].as_str().map(str::to_string)),
            ..ImagePlan::default()
        };
        let mut plan = Plan::default();
        if p.state == NetworkState::Absent {
            if image.is_some() {
                st.remove = true;
                plan.changes.push(format!("remove image {reference}"));
            }
            plan.keep_state(&st)?;
            return Ok(plan);
        }
        if image.is_none() || p.force_source {
            fetch_argv(p, &reference)?;
            st.fetch = true;
            let how = match p.source {
                Some(ImageSource::Build) => "build",
                Some(ImageSource::Load) => "load",
                _ => "pull",
            };
            plan.changes.push(format!("{how} image {reference}"));
        }
        if let Some(r) = &repo {
            let tagged = s[1].inspected("inspect the repository tag")?;
            let same = tagged.as_ref().map(|t| &t["Id"]) == image.as_ref().map(|i| &i["Id"]);
            if tagged.is_none() || st.fetch || !same {
                st.tag = true;
                plan.changes.push(format!("tag image {reference} as {r}"));
            }
        }
        if p.push {
            st.push = true;
            plan.changes.push(format!(
                "push image {}",
                repo.as_deref().unwrap_or(&reference)
            ));
        }
        if let Some(a) = &p.archive_path {
            let sec = s
                .last()
                .ok_or_else(|| ModuleError::failed("internal: no archive answer"))?;
            let held = (sec.rc == 0).then(|| archive_id(&sec.text)).flatten();
            if st.fetch || held.is_none() || held != st.before {
                st.save = true;
                plan.changes.push(format!("save image {reference} to {a}"));
            }
        }
        if let Some(i) = image {
            plan.result.insert("image".into(), i);
        }
        plan.keep_state(&st)?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let st: ImagePlan = plan.state_as()?;
        let reference = p.reference();
        let mut result = Map::new();
        if st.remove {
            let mut a = docker(&["rmi"]);
            if p.force_absent {
                a.push("--force".into());
            }
            a.push(reference);
            dc::apply(host, "remove the image", &[a], None, None)?;
            result.insert("changed".into(), json!(true));
            return Ok(Outcome::changed(result));
        }
        let mut cmds = Vec::new();
        if st.fetch {
            cmds.push(fetch_argv(p, &reference)?);
        }
        let repo = p.repository();
        if let (true, Some(r)) = (st.tag, &repo) {
            cmds.push(docker(&["tag", &reference, r]));
        }
        if st.push {
            cmds.push(docker(&["push", repo.as_deref().unwrap_or(&reference)]));
        }
        if let (true, Some(a)) = (st.save, &p.archive_path) {
            cmds.push(docker(&["save", "--output", a, &reference]));
        }
        let inspect = docker(&["image", "inspect", &reference]);
        let out = dc::apply(host, "make the image", &cmds, Some(&inspect), None)?;
        let image = dc::inspected("inspect the image", &out)?.unwrap_or(Value::Null);
        // A forced pull or build of the image already there is no change,
        // and neither is a push of it.
        let same = st.before.is_some() && image["Id"].as_str() == st.before.as_deref();
        let changed = st.tag || st.save || ((st.fetch || st.push) && !same);
        result.insert("image".into(), image);
        result.insert("changed".into(), json!(changed));
        Ok(Outcome::changed_if(changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::docker_common::fake::{self, image_doc};
    use crate::DynModule;

    #[test]
    fn a_missing_image_is_pulled_then_left_alone() {
        let mut h = fake::host();
        h.registry
            .insert("reg/app:v1".into(), image_doc("reg/app:v1", "one"));
        let p = json!({"name": "reg/app", "tag": "v1", "source": "pull"});
        let (plan, out) = fake::converge(&DockerImage, &mut h, &p);
        assert_eq!(plan.changes, ["pull image reg/app:v1"]);
        assert_eq!(out.result["image"]["Id"], "sha256:one");
    }

    #[test]
    fn a_forced_pull_of_the_same_image_is_no_change() {
        let mut h = fake::host();
        h.registry
            .insert("reg/app:v1".into(), image_doc("reg/app:v1", "one"));
        let p = json!({"name": "reg/app:v1", "source": "pull", "force_source": true});
        fake::plan(&DockerImage, &mut h, &p);
        let plan = fake::plan(&DockerImage, &mut h, &p);
        let out = DynModule::apply(&DockerImage, &p, plan, &mut h).expect("apply");
        assert!(out.changed, "the first pull brings it");
        let plan = fake::plan(&DockerImage, &mut h, &p);
        let out = DynModule::apply(&DockerImage, &p, plan, &mut h).expect("apply");
        assert!(!out.changed);
    }

    #[test]
    fn check_mode_and_absent() {
        let mut h = fake::host();
        let p = json!({"name": "herd/busybox", "tag": "1", "state": "absent"});
        let plan = fake::plan(&DockerImage, &mut h, &p);
        assert_eq!(plan.changes, ["remove image herd/busybox:1"]);
        assert!(h.images.contains_key("herd/busybox:1"));
    }

    #[test]
    fn refused_without_a_source() {
        let mut h = fake::host();
        let p = json!({"name": "nope:1"});
        assert!(DynModule::plan(&DockerImage, &p, &mut h).is_err());
        let local = json!({"name": "nope:1", "source": "local"});
        assert!(DynModule::plan(&DockerImage, &local, &mut h).is_err());
        assert!(DockerImage
            .check_params(&json!({"name": "x", "source": "magic"}))
            .is_err());
    }

    #[test]
    fn archive_ids_come_from_the_manifest() {
        let m = r#"[{"Config":"0123abcd.json","RepoTags":["a:1"],"Layers":[]}]"#;
        assert_eq!(archive_id(m).as_deref(), Some("sha256:0123abcd"));
        let oci = r#"[{"Config":"blobs/sha256/0123abcd","RepoTags":["a:1"]}]"#;
        assert_eq!(archive_id(oci).as_deref(), Some("sha256:0123abcd"));
    }
}
