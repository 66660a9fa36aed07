//! `docker_container` (`community.docker.docker_container`): a container
//! made, changed, started, stopped or removed with the host's docker CLI.
//!
//! The plan inspects the container and the image (and reads `env_file`)
//! in one round trip, and compares the container with the task the way
//! the collection does (`compare.rs`): only what the task gives; the
//! image by ID, so a rebuilt or pulled tag recreates the container. A
//! difference that `docker update` can make (memory, CPUs, restart
//! policy) is made in place, networks are connected and disconnected in
//! place, anything else recreates the container (stopped, removed, made
//! again and started if it ran or `state: started`). Apply runs the
//! commands and the final `inspect` in one round trip; a pull comes first
//! and the decision is made again with the pulled image.

mod compare;
mod params;
mod spec;

use serde::Deserialize;
use serde_json::{json, Map, Value};

pub use params::{
    Comparison, ContainerState, DefaultBehavior, DockerContainerParams, Healthcheck, MountSpec,
    MountType, NetworkSpec, Pull, RestartPolicy,
};

use crate::builtin::docker_common::{self as dc, docker};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};
use compare::differences;
use spec::Spec;

/// The `docker_container` module.
pub struct DockerContainer;

/// What the plan decided, for apply.
#[derive(Debug, Default, Clone, serde::Serialize, Deserialize)]
struct Decision {
    /// Pull the image first, then decide again.
    pull: bool,
    /// The image was not on the host: pulling it is a change.
    pull_is_change: bool,
    /// Remove the existing container (to recreate it, or `absent`).
    remove: bool,
    /// It runs: stop it before removing it.
    stop_first: bool,
    create: bool,
    update: Vec<String>,
    disconnect: Vec<String>,
    connect: Vec<String>,
    start: bool,
    stop: bool,
    restart: bool,
    /// The env file's content as the probe read it (for the create).
    env_file: Option<String>,
}

impl Decision {
    fn acts(&self) -> bool {
        self.remove
            || self.create
            || !self.update.is_empty()
            || !self.disconnect.is_empty()
            || !self.connect.is_empty()
            || self.start
            || self.stop
            || self.restart
    }
}

/// `busybox` is `busybox:latest`; a digest or a tag is kept.
pub(crate) fn image_ref(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// What the probe found.
struct Found {
    container: Option<Value>,
    image: Option<Value>,
    env_file: Option<String>,
}

fn probe(p: &DockerContainerParams, host: &mut dyn Host) -> Result<Found, ModuleError> {
    let mut cmds = vec![docker(&["container", "inspect", &p.name])];
    let image = p.image.as_deref().map(image_ref);
    if let Some(i) = &image {
        cmds.push(docker(&["image", "inspect", i]));
    }
    if let Some(f) = &p.env_file {
        cmds.push(vec!["cat".into(), "--".into(), f.clone()]);
    }
    let s = dc::probe(host, &cmds)?;
    let container = s[0].inspected("inspect the container")?;
    let image = match image {
        Some(_) => s[1].inspected("inspect the image")?,
        None => None,
    };
    let env_file = match &p.env_file {
        Some(_) => {
            let sec = s
                .last()
                .ok_or_else(|| ModuleError::failed("internal: no env file answer"))?;
            if sec.rc != 0 {
                return Err(sec.error("read env_file"));
            }
            Some(sec.text.clone())
        }
        None => None,
    };
    Ok(Found {
        container,
        image,
        env_file,
    })
}

fn stop_argv(p: &DockerContainerParams, verb: &str) -> Vec<String> {
    let mut a = docker(&[verb]);
    if let Some(t) = p.stop_timeout {
        a.extend(["--time".into(), t.to_string()]);
    }
    a.push(p.name.clone());
    a
}

fn connect_argv(p: &DockerContainerParams, n: &NetworkSpec) -> Vec<String> {
    let mut a = docker(&["network", "connect"]);
    for al in n.aliases.iter().flatten() {
        a.extend(["--alias".into(), al.clone()]);
    }
    if let Some(ip) = &n.ipv4_address {
        a.extend(["--ip".into(), ip.clone()]);
    }
    a.extend([n.name.clone(), p.name.clone()]);
    a
}

/// What to do, and the plan's lines for it. `pulled`: the pull is done.
fn decide(
    p: &DockerContainerParams,
    found: &Found,
    pulled: bool,
) -> Result<(Decision, Vec<String>), ModuleError> {
    let mut d = Decision {
        env_file: found.env_file.clone(),
        ..Decision::default()
    };
    let mut changes = Vec::new();
    let name = &p.name;
    let running = |c: &Value| dc::at(c, "State.Running").as_bool().unwrap_or(false);
    if p.state == ContainerState::Absent {
        if let Some(c) = &found.container {
            d.remove = true;
            d.stop_first = running(c);
            changes.push(format!("remove container {name}"));
        }
        return Ok((d, changes));
    }
    let image = p.image.as_deref().map(image_ref);
    if let Some(i) = &image {
        if found.image.is_none() && !pulled {
            if p.pull == Pull::Never {
                return Err(ModuleError::failed(format!(
                    "image {i} is not on the host and pull is never"
                )));
            }
            d.pull = true;
            d.pull_is_change = true;
            changes.push(format!("pull image {i}"));
        } else if p.pull == Pull::Always && !pulled {
            d.pull = true;
            changes.push(format!("pull image {i}"));
        }
    }
    let spec = Spec::new(p, d.env_file.as_deref())?;
    let Some(c) = &found.container else {
        let Some(i) = &image else {
            return Err(ModuleError::Params(ParamError::Missing {
                module: DockerContainer::NAME,
                field: "image".into(),
            }));
        };
        d.create = true;
        d.start = p.state == ContainerState::Started;
        changes.push(format!("create container {name} from {i}"));
        if d.start {
            changes.push(format!("start container {name}"));
        }
        return Ok((d, changes));
    };
    let diff = differences(p, &spec, c);
    let mut recreate = diff.recreate.clone();
    let image_ignored = p
        .comparisons
        .as_ref()
        .and_then(|m| m.get("image").or_else(|| m.get("*")))
        == Some(&Comparison::Ignore);
    if let Some(img) = &found.image {
        if !image_ignored && img["Id"] != c["Image"] {
            recreate.insert(0, "image".into());
        }
    }
    if p.recreate && recreate.is_empty() {
        recreate.push("recreate: true".into());
    }
    let is_running = running(c);
    if !recreate.is_empty() {
        d.remove = true;
        d.stop_first = is_running;
        d.create = true;
        d.start = p.state == ContainerState::Started
            || (p.state == ContainerState::Present && is_running);
        changes.push(format!(
            "recreate container {name} ({})",
            recreate.join(", ")
        ));
        return Ok((d, changes));
    }
    if !diff.update.is_empty() {
        changes.push(format!(
            "update container {name} ({})",
            diff.update.join(", ")
        ));
        d.update = diff.update;
    }
    for n in &diff.disconnect {
        changes.push(format!("disconnect container {name} from network {n}"));
    }
    for n in &diff.connect {
        changes.push(format!("connect container {name} to network {}", n.name));
    }
    d.disconnect = diff.disconnect;
    d.connect = diff.connect.into_iter().map(|n| n.name).collect();
    match p.state {
        ContainerState::Started if !is_running => {
            d.start = true;
            changes.push(format!("start container {name}"));
        }
        ContainerState::Started if p.restart => {
            d.restart = true;
            changes.push(format!("restart container {name}"));
        }
        ContainerState::Stopped if is_running => {
            d.stop = true;
            changes.push(format!("stop container {name}"));
        }
        _ => {}
    }
    Ok((d, changes))
}

/// The commands that carry out `d`.
fn commands(p: &DockerContainerParams, d: &Decision) -> Result<Vec<Vec<String>>, ModuleError> {
    let mut cmds = Vec::new();
    let network = |name: &str| -> NetworkSpec {
        p.networks
            .iter()
            .flatten()
            .find(|n| n.name == name)
            .cloned()
            .unwrap_or(NetworkSpec {
                name: name.to_string(),
                aliases: None,
                ipv4_address: None,
            })
    };
    if d.remove {
        if d.stop_first {
            cmds.push(stop_argv(p, "stop"));
        }
        let mut rm = docker(&["rm"]);
        if !p.keep_volumes {
            rm.push("--volumes".into());
        }
        rm.push(p.name.clone());
        cmds.push(rm);
    }
    if d.create {
        let spec = Spec::new(p, d.env_file.as_deref())?;
        let image = p.image.as_deref().map(image_ref).unwrap_or_default();
        cmds.push(spec.create_argv(p, &image));
        for n in p.networks.iter().flatten() {
            if spec.network_mode.as_deref() != Some(n.name.as_str()) {
                cmds.push(connect_argv(p, n));
            }
        }
    }
    if !d.update.is_empty() {
        let spec = Spec::new(p, d.env_file.as_deref())?;
        cmds.push(spec.update_argv(p, &d.update));
    }
    for n in &d.disconnect {
        cmds.push(docker(&["network", "disconnect", "--force", n, &p.name]));
    }
    for n in &d.connect {
        cmds.push(connect_argv(p, &network(n)));
    }
    if d.start {
        cmds.push(docker(&["start", &p.name]));
    }
    if d.stop {
        cmds.push(stop_argv(p, "stop"));
    }
    if d.restart {
        cmds.push(stop_argv(p, "restart"));
    }
    Ok(cmds)
}

impl Module for DockerContainer {
    const NAME: &'static str = "docker_container";
    const DOC_SHORT: &'static str = "Manage a Docker container's configuration and state.";
    const DOC_LONG: &'static str = r##"Uses the host's `docker` CLI. An existing container is compared with the
task as `community.docker.docker_container` compares it: only the options the
task gives; the image by ID (a rebuilt or newly pulled tag recreates the
container); scalars and lists (`command`, `entrypoint`, `user`, `memory`,
`network_mode`, ...) must be equal; sets and dicts (`env`, `labels`,
`volumes`, `mounts`, `published_ports`, `capabilities`, `log_options`,
`healthcheck`) only need what the task gives, as the image adds its own.
`comparisons` overrides that per option (`strict`, `ignore`,
`allow_more_present`, and `*` for every option); `stop_timeout` is ignored
unless asked.

Memory, CPUs and the restart policy are changed with `docker update`;
`networks` are connected and disconnected in place (with
`comparisons: {networks: strict}`, networks not listed are disconnected);
any other difference, or `recreate: true`, stops and removes the container
and makes it again. A new container is started with `state: started` (the
default); a recreated one also when it ran before.

`pull: missing` (the default) pulls an image that is not on the host;
`pull: always` pulls every run, and the task changes only when the pulled
image differs (check mode reports the pull as no change, like the
collection's `pull_check_mode_behavior: image_not_present`)."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_container:
    name: web
    image: nginx:1.27
    published_ports: ["8080:80"]
    env:
      TZ: UTC
    volumes: ["/srv/www:/usr/share/nginx/html:ro"]
    restart_policy: unless-stopped
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost/"]
      interval: 30s
  register: web
- debug:
    msg: "{{ web.container.State.Running }}"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "container",
        "The container's `docker inspect` data (`container.State.Running`, ...); absent after `state: absent`.",
    )];
    type Params = DockerContainerParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        check(p)?;
        let found = probe(p, host)?;
        let (d, changes) = decide(p, &found, false)?;
        // The collection updates limits (memory, CPUs, restart policy)
        // only outside check mode and reports the update only when it
        // runs: a task whose only difference is one of those is no change
        // in check mode, and a change when applied.
        let only_update = !d.update.is_empty() && {
            let mut rest = d.clone();
            rest.update.clear();
            !rest.acts()
        };
        let mut plan = Plan {
            changes,
            not_a_change: (d.pull && !d.pull_is_change && !d.acts()) || only_update,
            ..Plan::default()
        };
        if let Some(c) = &found.container {
            if p.state != ContainerState::Absent {
                plan.result.insert("container".into(), c.clone());
            }
        }
        plan.keep_state(&d)?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let mut d: Decision = plan.state_as()?;
        let mut changed = d.pull_is_change;
        if d.pull {
            let image = p.image.as_deref().map(image_ref).unwrap_or_default();
            dc::apply(
                host,
                "pull the image",
                &[docker(&["pull", &image])],
                None,
                None,
            )?;
            // The pulled image may differ from the one compared.
            d = decide(p, &probe(p, host)?, true)?.0;
        }
        changed |= d.acts();
        let cmds = commands(p, &d)?;
        let mut result = Map::new();
        if p.state == ContainerState::Absent {
            dc::apply(host, "remove the container", &cmds, None, None)?;
        } else {
            let inspect = docker(&["container", "inspect", &p.name]);
            let out = dc::apply(host, "change the container", &cmds, Some(&inspect), None)?;
            let c = dc::inspected("inspect the container", &out)?.unwrap_or(Value::Null);
            result.insert("container".into(), c);
        }
        result.insert("changed".into(), json!(changed));
        Ok(Outcome::changed_if(changed, result))
    }
}

/// What the module refuses before looking at the host.
fn check(p: &DockerContainerParams) -> Result<(), ModuleError> {
    let invalid = |path: &str, reason: &str| {
        ModuleError::Params(ParamError::Invalid {
            module: DockerContainer::NAME,
            path: path.into(),
            reason: reason.into(),
        })
    };
    if !p.detach {
        return Err(invalid("detach", "only detached containers are supported"));
    }
    if p.restart_retries.is_some() && p.restart_policy.is_none() {
        return Err(invalid("restart_retries", "needs restart_policy"));
    }
    if p.log_options.is_some() && p.log_driver.is_none() {
        return Err(invalid("log_options", "needs log_driver"));
    }
    if p.networks.is_some()
        && p.network_mode
            .as_deref()
            .is_some_and(|m| m == "host" || m == "none")
    {
        return Err(invalid(
            "networks",
            "cannot be used with network_mode host or none",
        ));
    }
    for (name, mode) in p.comparisons.iter().flatten() {
        if !compare::COMPARABLE.contains(&name.as_str()) {
            return Err(invalid(
                &format!("comparisons.{name}"),
                "not an option compared with the container",
            ));
        }
        if name == "*" && *mode == Comparison::AllowMorePresent {
            return Err(invalid(
                "comparisons.*",
                "the wildcard takes strict or ignore",
            ));
        }
    }
    // The spec's own checks (ports, volumes, sizes) without an env file.
    Spec::new(p, None)?;
    Ok(())
}

#[cfg(test)]
mod tests;
