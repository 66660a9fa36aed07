//! `docker_compose_v2` (`community.docker.docker_compose_v2`): a compose
//! project brought up, stopped, restarted or taken down with the host's
//! `docker compose` (v2) CLI.
//!
//! The plan runs the same command with compose's `--dry-run` (one round
//! trip) and reads its event lines as the collection does: an event whose
//! status is work in progress (`Creating`, `Recreate`, `Starting`,
//! `Pulling`, ...) is a change; `Running`, `Created` and the like are not.
//! Apply runs the command for real, reads the events again, and lists the
//! project's containers, in one more round trip. An inline `definition`
//! is written to a temporary directory on the host for each command.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::builtin::docker_common::de_opt_list;
use crate::params::{de_bool, de_opt_u64, yes};
use crate::shell_quote::{join, quote};
use crate::{Host, HostError, Module, ModuleError, Outcome, ParamError, Plan};

/// What the project should be.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ComposeState {
    /// Up (`docker compose up --detach`).
    #[default]
    Present,
    /// Down (`docker compose down`).
    Absent,
    /// Stopped (`docker compose stop`).
    Stopped,
    /// Restarted every run (`docker compose restart`).
    Restarted,
}

/// When images are pulled.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ComposePull {
    /// Every run.
    Always,
    /// When missing.
    Missing,
    /// Never.
    Never,
    /// As each service's `pull_policy` says.
    #[default]
    Policy,
}

/// When images are built.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ComposeBuild {
    /// Every run.
    Always,
    /// Never.
    Never,
    /// When an image is missing.
    #[default]
    Policy,
}

/// When containers are recreated.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ComposeRecreate {
    /// Every run.
    Always,
    /// Never.
    Never,
    /// When their configuration or image changed.
    #[default]
    Auto,
}

/// Which images `down` removes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RemoveImages {
    /// Every image the project uses.
    All,
    /// Images without a custom tag.
    Local,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `docker_compose_v2`.
pub struct DockerComposeV2Params {
    /// The project's directory on the host.
    pub project_src: Option<String>,
    /// The compose file as a mapping, instead of `project_src`
    /// (needs `project_name`).
    pub definition: Option<Value>,
    /// The project's name.
    pub project_name: Option<String>,
    /// Compose files, relative to `project_src`.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub files: Option<Vec<String>>,
    /// Environment files, relative to `project_src`.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub env_files: Option<Vec<String>>,
    /// Profiles to enable.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub profiles: Option<Vec<String>>,
    /// The wanted state.
    #[serde(default)]
    pub state: ComposeState,
    /// When images are pulled.
    #[serde(default)]
    pub pull: ComposePull,
    /// When images are built.
    #[serde(default)]
    pub build: ComposeBuild,
    /// When containers are recreated.
    #[serde(default)]
    pub recreate: ComposeRecreate,
    /// Remove containers of services no longer in the project.
    #[serde(default, deserialize_with = "de_bool")]
    pub remove_orphans: bool,
    /// With `absent`: remove the project's images too.
    pub remove_images: Option<RemoveImages>,
    /// With `absent`: remove the project's volumes too.
    #[serde(default, deserialize_with = "de_bool")]
    pub remove_volumes: bool,
    /// Only these services.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub services: Option<Vec<String>>,
    /// Also start the services they depend on.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub dependencies: bool,
    /// Seconds to wait for containers to stop.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub timeout: Option<u64>,
    /// Wait for the services to be running (or healthy).
    #[serde(default, deserialize_with = "de_bool")]
    pub wait: bool,
    /// With `wait`: the most seconds to wait.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub wait_timeout: Option<u64>,
}

/// The `docker_compose_v2` module.
pub struct DockerComposeV2;

const MODULE: &str = "docker_compose_v2";

/// Statuses of work being done: a change.
const WORKING: &[&str] = &[
    "Creating",
    "Starting",
    "Restarting",
    "Stopping",
    "Killing",
    "Removing",
    "Recreate",
    "Pulling",
    "Building",
];
/// Statuses of something done or already so.
const DONE: &[&str] = &[
    "Started",
    "Healthy",
    "Exited",
    "Restarted",
    "Running",
    "Created",
    "Stopped",
    "Killed",
    "Removed",
    "Recreated",
    "Pulled",
    "Waiting",
    "Error",
    "Skipped",
];

/// One event line: (`container`, `shop-web-1`, `Creating`).
fn event(line: &str) -> Option<(String, String, String)> {
    let line = line.trim();
    let line = line
        .strip_prefix("DRY-RUN MODE -")
        .map_or(line, str::trim_start);
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let kind = match first {
        "Network" | "Image" | "Volume" | "Container" => first.to_ascii_lowercase(),
        // `web Pulling` / `web Pulled`, and `build service web`.
        _ => {
            let second = words.next()?;
            if ["Pulling", "Pulled"].contains(&second) && words.next().is_none() {
                return Some(("service".into(), first.into(), second.into()));
            }
            if first == "build" && second == "service" {
                return Some(("service".into(), words.next()?.into(), "Building".into()));
            }
            return None;
        }
    };
    let id = words.next()?;
    let status = words.next()?;
    (WORKING.contains(&status) || DONE.contains(&status))
        .then(|| (kind, id.to_string(), status.to_string()))
}

/// The actions (work events) in compose's output, as the collection lists them.
fn actions(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(event)
        .filter(|(_, _, s)| WORKING.contains(&s.as_str()))
        .map(|(what, id, status)| json!({"what": what, "id": id, "status": status}))
        .collect()
}

impl DockerComposeV2Params {
    /// `docker compose` with the project's global options; `$d` is the
    /// temporary directory of a `definition`.
    fn base(&self) -> Result<String, ModuleError> {
        let invalid = |path: &str, reason: &str| {
            ModuleError::Params(ParamError::Invalid {
                module: MODULE,
                path: path.into(),
                reason: reason.into(),
            })
        };
        let mut s = String::from("docker compose --ansi never");
        let dir = match (&self.project_src, &self.definition) {
            (Some(_), Some(_)) => {
                return Err(invalid("definition", "cannot be used with project_src"))
            }
            (None, None) => {
                return Err(invalid(
                    "project_src",
                    "project_src or definition is needed",
                ))
            }
            (Some(d), None) => quote(d),
            (None, Some(_)) => {
                if self.project_name.is_none() {
                    return Err(invalid("project_name", "needed with definition"));
                }
                "\"$d\"".to_string()
            }
        };
        s.push_str(&format!(" --project-directory {dir}"));
        if let Some(n) = &self.project_name {
            s.push_str(&format!(" --project-name {}", quote(n)));
        }
        for f in self.files.iter().flatten() {
            s.push_str(&format!(" --file {dir}/{}", quote(f)));
        }
        for f in self.env_files.iter().flatten() {
            s.push_str(&format!(" --env-file {dir}/{}", quote(f)));
        }
        for p in self.profiles.iter().flatten() {
            s.push_str(&format!(" --profile {}", quote(p)));
        }
        Ok(s)
    }

    /// The subcommand and its options for the state.
    fn command(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let timeout = |a: &mut Vec<String>| {
            if let Some(t) = self.timeout {
                a.extend(["--timeout".into(), t.to_string()]);
            }
        };
        match self.state {
            ComposeState::Present => {
                a.extend(["up".into(), "--detach".into(), "--no-color".into()]);
                match self.pull {
                    ComposePull::Always => a.extend(["--pull".into(), "always".into()]),
                    ComposePull::Missing => a.extend(["--pull".into(), "missing".into()]),
                    ComposePull::Never => a.extend(["--pull".into(), "never".into()]),
                    ComposePull::Policy => {}
                }
                match self.build {
                    ComposeBuild::Always => a.push("--build".into()),
                    ComposeBuild::Never => a.push("--no-build".into()),
                    ComposeBuild::Policy => {}
                }
                match self.recreate {
                    ComposeRecreate::Always => a.push("--force-recreate".into()),
                    ComposeRecreate::Never => a.push("--no-recreate".into()),
                    ComposeRecreate::Auto => {}
                }
                if self.remove_orphans {
                    a.push("--remove-orphans".into());
                }
                if !self.dependencies {
                    a.push("--no-deps".into());
                }
                if self.wait {
                    a.push("--wait".into());
                    if let Some(t) = self.wait_timeout {
                        a.extend(["--wait-timeout".into(), t.to_string()]);
                    }
                }
                timeout(&mut a);
            }
            ComposeState::Stopped => {
                a.push("stop".into());
                timeout(&mut a);
            }
            ComposeState::Restarted => {
                a.push("restart".into());
                timeout(&mut a);
            }
            ComposeState::Absent => {
                a.push("down".into());
                if self.remove_orphans {
                    a.push("--remove-orphans".into());
                }
                if let Some(r) = self.remove_images {
                    a.extend([
                        "--rmi".into(),
                        if r == RemoveImages::All {
                            "all"
                        } else {
                            "local"
                        }
                        .into(),
                    ]);
                }
                if self.remove_volumes {
                    a.push("--volumes".into());
                }
                timeout(&mut a);
            }
        }
        if self.state != ComposeState::Absent {
            a.extend(self.services.iter().flatten().cloned());
        }
        a
    }

    /// A script running `body` with `$d` holding the definition, if any.
    fn script(&self, body: &str) -> Result<(String, Option<Vec<u8>>), ModuleError> {
        match &self.definition {
            None => Ok((body.to_string(), None)),
            Some(def) => {
                // JSON is YAML: the mapping goes as it is.
                let text = serde_json::to_vec(def)
                    .map_err(|e| ModuleError::failed(format!("internal: {e}")))?;
                Ok((
                    format!(
                        "d=$(mktemp -d) || exit 1\ntrap 'rm -rf \"$d\"' EXIT\ncat > \"$d/compose.yaml\" || exit 1\n{body}"
                    ),
                    Some(text),
                ))
            }
        }
    }
}

/// `docker compose ps --format json`: one object per line, or an array.
fn containers(text: &str) -> Value {
    let t = text.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t).unwrap_or(Value::Array(Vec::new()));
    }
    Value::Array(
        t.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    )
}

impl Module for DockerComposeV2 {
    const NAME: &'static str = "docker_compose_v2";
    const DOC_SHORT: &'static str =
        "Bring a Docker compose (v2) project up, stop, restart or take it down.";
    const DOC_LONG: &'static str = r##"Uses the host's `docker compose` (v2) CLI. The plan runs the command with
`--dry-run` and reads compose's event lines as the collection does: work
(`Creating`, `Recreate`, `Starting`, `Pulling`, `Removing`, ...) is a change,
`Running` and `Created` are not; so check mode shows what a run would do.
`state: restarted` restarts every run. An inline `definition` is written to
a temporary directory on the host for each command (compose reads JSON as
YAML) and removed after."##;
    const DOC_EXAMPLE: &'static str = r##"- community.docker.docker_compose_v2:
    project_src: /opt/shop
    pull: missing
    remove_orphans: true
  register: shop
- debug:
    msg: "{{ shop.containers | map(attribute='Name') | list }}"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "containers",
            "The project's containers (`docker compose ps --format json`).",
        ),
        (
            "actions",
            "What compose did: `what`, `id`, `status` of each work event.",
        ),
        ("stdout", "What compose printed on standard output."),
        ("stderr", "Compose's event lines."),
    ];
    type Params = DockerComposeV2Params;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let base = p.base()?;
        let sub = join(&p.command());
        // The project's containers as they are, for a result with nothing
        // to do (the collection lists them in every result).
        let (script, stdin) = p.script(&format!(
            "{base} --dry-run {sub} 2>&1 || exit $?\necho @@herd-compose-ps\n{base} ps --all --format json"
        ))?;
        let out = host.run(&script, stdin.as_deref())?;
        let all = out.stdout_str();
        let (text, ps) = all
            .split_once("@@herd-compose-ps\n")
            .map_or((all.clone(), String::new()), |(a, b)| {
                (a.to_string(), b.to_string())
            });
        if !out.success() {
            return Err(HostError::Command {
                action: "run docker compose --dry-run",
                rc: out.rc,
                stderr: text.trim().to_string(),
            }
            .into());
        }
        let acts = actions(&text);
        let mut plan = Plan::default();
        if p.state == ComposeState::Restarted {
            plan.changes.push("restart the project".into());
        }
        plan.changes.extend(acts.iter().map(|a| {
            format!(
                "{} {} {}",
                a["what"].as_str().unwrap_or(""),
                a["id"].as_str().unwrap_or(""),
                a["status"].as_str().unwrap_or("")
            )
        }));
        plan.result.insert("actions".into(), Value::Array(acts));
        plan.result.insert("containers".into(), containers(&ps));
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let base = p.base()?;
        let sub = join(&p.command());
        let body = format!(
            "{base} {sub} 2>\"$e\"; rc=$?\ncat \"$e\" >&2; rm -f \"$e\"\n[ $rc = 0 ] || exit $rc\necho @@herd-compose-ps\n{base} ps --all --format json"
        );
        let (script, stdin) = p.script(&format!("e=$(mktemp) || exit 1\n{body}"))?;
        let out = host.run(&script, stdin.as_deref())?;
        let events = out.stderr_str();
        if !out.success() {
            return Err(HostError::Command {
                action: "run docker compose",
                rc: out.rc,
                stderr: events.trim().to_string(),
            }
            .into());
        }
        let stdout = out.stdout_str();
        let (before, ps) = stdout
            .split_once("@@herd-compose-ps\n")
            .unwrap_or((&stdout, ""));
        let acts = actions(&events);
        let changed = !acts.is_empty() || p.state == ComposeState::Restarted;
        let mut r = Map::new();
        r.insert("containers".into(), containers(ps));
        r.insert("actions".into(), Value::Array(acts));
        r.insert("stdout".into(), json!(before));
        r.insert("stderr".into(), json!(events));
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
    fn dry_run_events_decide_the_plan() {
        let dry = "DRY-RUN MODE -  Network shop_default  Creating\nDRY-RUN MODE -  Container shop-web-1  Recreate\n\
                   DRY-RUN MODE -  Container shop-db-1  Running\n";
        let mut h = FakeHost::new().answer(Match::contains("--dry-run"), 0, dry, "");
        let p = json!({"project_src": "/opt/shop", "pull": "missing", "remove_orphans": true, "services": ["web"]});
        let plan = DynModule::plan(&DockerComposeV2, &p, &mut h).expect("plan");
        assert_eq!(
            plan.changes,
            [
                "network shop_default Creating",
                "container shop-web-1 Recreate"
            ]
        );
        let script = &h.scripts[0];
        assert!(
            script.contains("docker compose --ansi never --project-directory /opt/shop --dry-run up --detach --no-color --pull missing --remove-orphans web"),
            "{script}"
        );
        let steady = "DRY-RUN MODE -  Container shop-web-1  Running\n";
        let mut h = FakeHost::new().answer(Match::Any, 0, steady, "");
        assert!(DynModule::plan(&DockerComposeV2, &p, &mut h)
            .expect("plan")
            .is_empty());
    }

    #[test]
    fn apply_reads_events_and_lists_containers() {
        let mut h = FakeHost::new().answer(
            Match::Any,
            0,
            "@@herd-compose-ps\n{\"Name\":\"shop-web-1\",\"State\":\"running\"}\n",
            " Container shop-web-1  Starting\n Container shop-web-1  Started\n",
        );
        let p = json!({"definition": {"services": {"web": {"image": "herd/busybox:1"}}}, "project_name": "shop"});
        let out = DynModule::apply(&DockerComposeV2, &p, Plan::default(), &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(out.result["containers"][0]["Name"], "shop-web-1");
        assert_eq!(out.result["actions"][0]["status"], "Starting");
        assert!(h.scripts[0].contains("cat > \"$d/compose.yaml\""));
        assert_eq!(
            h.inputs[0].as_deref(),
            Some(&br#"{"services":{"web":{"image":"herd/busybox:1"}}}"#[..])
        );
    }

    #[test]
    fn refused_combinations() {
        let mut h = FakeHost::new();
        for p in [
            json!({}),
            json!({"definition": {"services": {}}}),
            json!({"project_src": "/a", "definition": {"services": {}}}),
        ] {
            assert!(
                DynModule::plan(&DockerComposeV2, &p, &mut h).is_err(),
                "{p}"
            );
        }
        assert!(DockerComposeV2
            .check_params(&json!({"project_src": "/a", "state": "gone"}))
            .is_err());
    }
}
