//! The read-only `community.docker` info modules: `docker_container_info`,
//! `docker_image_info` and `docker_host_info`. Each asks the host's docker
//! CLI in one round trip and changes nothing, in check mode or not.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::docker_common::{self as dc, de_opt_list, docker};
use crate::params::de_bool;
use crate::{Host, HostError, Module, ModuleError, Outcome, Plan};

/// A plan that changes nothing and registers `result`.
fn looked(result: Map<String, Value>) -> Plan {
    Plan {
        result,
        ..Plan::default()
    }
}

/// Never called: the plans are empty.
fn nothing() -> Result<Outcome, ModuleError> {
    Ok(Outcome::default())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_container_info`.
pub struct DockerContainerInfoParams {
    /// The container's name or ID.
    pub name: String,
}

/// The `docker_container_info` module.
pub struct DockerContainerInfo;

impl Module for DockerContainerInfo {
    const NAME: &'static str = "docker_container_info";
    const DOC_SHORT: &'static str = "Inspect a Docker container, if it exists.";
    const DOC_LONG: &'static str =
        "Runs `docker container inspect` on the host; never changes anything.";
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_container_info:
    name: web
  register: web
- debug:
    msg: "{{ web.container.State.Status if web.exists else 'absent' }}"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("exists", "Whether the container exists."),
        ("container", "Its `docker inspect` data, or null."),
    ];
    type Params = DockerContainerInfoParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let s = dc::probe(host, &[docker(&["container", "inspect", &p.name])])?;
        let c = s[0].inspected("inspect the container")?;
        let mut r = Map::new();
        r.insert("exists".into(), json!(c.is_some()));
        r.insert("container".into(), c.unwrap_or(Value::Null));
        Ok(looked(r))
    }

    fn apply(&self, _: &Self::Params, _: Plan, _: &mut dyn Host) -> Result<Outcome, ModuleError> {
        nothing()
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_image_info`.
pub struct DockerImageInfoParams {
    /// Image names (`name[:tag]`, `latest` when no tag is given) or IDs;
    /// every image on the host when not given.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub name: Option<Vec<String>>,
}

/// The `docker_image_info` module.
pub struct DockerImageInfo;

impl Module for DockerImageInfo {
    const NAME: &'static str = "docker_image_info";
    const DOC_SHORT: &'static str = "Inspect Docker images on the host.";
    const DOC_LONG: &'static str = "Runs `docker image inspect` on the host; images that do not exist are left out of `images`. Never changes anything.";
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_image_info:
    name: [nginx:1.27, redis]
  register: found
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "images",
        "The `docker image inspect` data of each image found.",
    )];
    type Params = DockerImageInfoParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let names: Vec<String> = match &p.name {
            Some(n) => n
                .iter()
                .map(|i| {
                    // An ID (`sha256:...` or hex) is looked up as it is.
                    if i.starts_with("sha256:") || i.bytes().all(|b| b.is_ascii_hexdigit()) {
                        i.clone()
                    } else {
                        super::docker_container::image_ref(i)
                    }
                })
                .collect(),
            None => {
                let out = host.run("docker image ls -q --no-trunc", None)?;
                if !out.success() {
                    return Err(HostError::Command {
                        action: "list the images",
                        rc: out.rc,
                        stderr: out.stderr_str(),
                    }
                    .into());
                }
                let mut ids: Vec<String> = out.stdout_str().lines().map(str::to_string).collect();
                ids.dedup();
                ids
            }
        };
        let cmds: Vec<Vec<String>> = names
            .iter()
            .map(|n| docker(&["image", "inspect", n]))
            .collect();
        let mut images = Vec::new();
        for s in dc::probe(host, &cmds)? {
            if let Some(i) = s.inspected("inspect an image")? {
                images.push(i);
            }
        }
        let mut r = Map::new();
        r.insert("images".into(), Value::Array(images));
        Ok(looked(r))
    }

    fn apply(&self, _: &Self::Params, _: Plan, _: &mut dyn Host) -> Result<Outcome, ModuleError> {
        nothing()
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_host_info`.
pub struct DockerHostInfoParams {
    /// List the containers (`docker ps -a`).
    #[serde(default, deserialize_with = "de_bool")]
    pub containers: bool,
    /// List the images.
    #[serde(default, deserialize_with = "de_bool")]
    pub images: bool,
    /// List the networks.
    #[serde(default, deserialize_with = "de_bool")]
    pub networks: bool,
    /// List the volumes.
    #[serde(default, deserialize_with = "de_bool")]
    pub volumes: bool,
    /// Report disk usage (`docker system df`).
    #[serde(default, deserialize_with = "de_bool")]
    pub disk_usage: bool,
}

/// The `docker_host_info` module.
pub struct DockerHostInfo;

/// One JSON object per line, as `--format '{{json .}}'` prints them.
fn json_lines(text: &str) -> Value {
    Value::Array(
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .collect(),
    )
}

impl Module for DockerHostInfo {
    const NAME: &'static str = "docker_host_info";
    const DOC_SHORT: &'static str = "Facts about the Docker engine on the host, and its objects.";
    const DOC_LONG: &'static str = r##"Runs `docker info` (and the listings asked for) in one round trip; never
changes anything. A host whose docker cannot be reached fails the task, with
`can_talk_to_docker: false` registered. The listings are the docker CLI's
`--format '{{json .}}'` lines (keys such as `ID`, `Names`, `Image`,
`Status`), not the Engine API's summaries."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_host_info:
    containers: true
  register: docker
- debug:
    msg: "{{ docker.host_info.ServerVersion }}, {{ docker.containers | length }} containers"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("can_talk_to_docker", "Whether docker answered."),
        (
            "host_info",
            "`docker info` as a mapping (`ServerVersion`, `Containers`, ...).",
        ),
        (
            "containers",
            "With `containers: true`: one mapping per container.",
        ),
        ("images", "With `images: true`: one mapping per image."),
        (
            "networks",
            "With `networks: true`: one mapping per network.",
        ),
        ("volumes", "With `volumes: true`: one mapping per volume."),
        (
            "disk_usage",
            "With `disk_usage: true`: `docker system df` rows.",
        ),
    ];
    type Params = DockerHostInfoParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let json = "{{json .}}";
        let mut cmds = vec![docker(&["info", "--format", json])];
        let lists = [
            (
                "containers",
                p.containers,
                docker(&["ps", "-a", "--no-trunc", "--format", json]),
            ),
            (
                "images",
                p.images,
                docker(&["image", "ls", "--no-trunc", "--format", json]),
            ),
            (
                "networks",
                p.networks,
                docker(&["network", "ls", "--no-trunc", "--format", json]),
            ),
            (
                "volumes",
                p.volumes,
                docker(&["volume", "ls", "--format", json]),
            ),
            (
                "disk_usage",
                p.disk_usage,
                docker(&["system", "df", "--format", json]),
            ),
        ];
        cmds.extend(lists.iter().filter(|l| l.1).map(|l| l.2.clone()));
        let s = dc::probe(host, &cmds)?;
        let mut r = Map::new();
        let info: Option<Value> = (s[0].rc == 0)
            .then(|| serde_json::from_str(s[0].text.trim()).ok())
            .flatten();
        let Some(info) =
            info.filter(|i: &Value| i.get("ServerVersion").is_some_and(|v| !v.is_null()))
        else {
            r.insert("can_talk_to_docker".into(), json!(false));
            return Err(ModuleError::Failed {
                msg: format!("cannot talk to docker: {}", s[0].text.trim()),
                result: r,
            });
        };
        r.insert("can_talk_to_docker".into(), json!(true));
        r.insert("host_info".into(), info);
        for ((key, _, _), sec) in lists.iter().filter(|l| l.1).zip(&s[1..]) {
            if sec.rc != 0 {
                return Err(sec.error("list docker objects"));
            }
            r.insert((*key).into(), json_lines(&sec.text));
        }
        Ok(looked(r))
    }

    fn apply(&self, _: &Self::Params, _: Plan, _: &mut dyn Host) -> Result<Outcome, ModuleError> {
        nothing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::docker_common::fake;
    use crate::testing::{FakeHost, Match};
    use crate::DynModule;

    #[test]
    fn container_info_reports_existence_and_changes_nothing() {
        let mut h = fake::host();
        h.add_container("web");
        let plan = fake::plan(&DockerContainerInfo, &mut h, &json!({"name": "web"}));
        assert!(plan.is_empty());
        assert_eq!(plan.result["exists"], true);
        assert_eq!(plan.result["container"]["State"]["Running"], true);
        let plan = fake::plan(&DockerContainerInfo, &mut h, &json!({"name": "nope"}));
        assert_eq!(plan.result["exists"], false);
        assert_eq!(plan.result["container"], Value::Null);
    }

    #[test]
    fn image_info_leaves_out_missing_images() {
        let mut h = fake::host();
        let plan = fake::plan(
            &DockerImageInfo,
            &mut h,
            &json!({"name": ["herd/busybox:1", "nope"]}),
        );
        assert!(plan.is_empty());
        assert_eq!(plan.result["images"].as_array().map(Vec::len), Some(1));
        assert!(DockerImageInfo
            .check_params(&json!({"name": "x", "other": 1}))
            .is_err());
    }

    #[test]
    fn host_info_reads_docker_info_and_fails_without_docker() {
        let out = "@@herd-docker\n{\"ServerVersion\":\"20.10.24\",\"Containers\":2}\n@@herd-docker-rc 0\n\
                   @@herd-docker\n{\"ID\":\"abc\",\"Names\":\"web\"}\n@@herd-docker-rc 0\n";
        let mut h = FakeHost::new().answer(Match::contains("docker info"), 0, out, "");
        let plan =
            DynModule::plan(&DockerHostInfo, &json!({"containers": "yes"}), &mut h).expect("plan");
        assert!(plan.is_empty());
        assert_eq!(plan.result["host_info"]["ServerVersion"], "20.10.24");
        assert_eq!(plan.result["containers"][0]["Names"], "web");
        let down = "@@herd-docker\nCannot connect to the Docker daemon\n@@herd-docker-rc 1\n";
        let mut h = FakeHost::new().answer(Match::Any, 0, down, "");
        let err = DynModule::plan(&DockerHostInfo, &json!({}), &mut h).expect_err("down");
        assert!(err.to_string().contains("cannot talk to docker"), "{err}");
    }
}
