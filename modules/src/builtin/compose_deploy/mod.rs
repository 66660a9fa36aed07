//! `compose_deploy`: deploys a Docker Compose (v2) project from files
//! uploaded from the controller, with a health gate, rollback and an
//! optional blue-green switch.
//!
//! The task owns, in `dir`: the compose files (named after their source,
//! `.j2` dropped: the engine renders those as templates and passes every
//! file as `_files`), the project's `.env` (from `env`), and a manifest
//! `.herd-compose` naming the files of the deployed version, so a later run
//! knows what to roll back to and what to remove. With `strategy:
//! blue_green` each color has its own directory (`dir/blue`, `dir/green`)
//! and project (`<project>-blue`, `<project>-green`), and `dir/.herd-live`
//! names the color that serves.
//!
//! The plan is one script: it prints the files on the host, renders the
//! new configuration in a temp dir with `docker compose config --hash '*'`
//! (plus the services' images and their local IDs), and lists the
//! project's containers with their `com.docker.compose.config-hash` label
//! and image ID. A task changes only when a file differs, a service's hash
//! or image differs from its running container, or a container is missing
//! or not running, so a second run reports `changed=0`.
//!
//! Apply (`strategy: recreate`) saves the previous files and `.env` in
//! `dir/.herd-previous`, writes the new ones, runs `up -d`, then waits for
//! the `health` gate (an HTTP status fetched on the host with curl, and/or
//! every container running and healthy) with `retries` and `delay`. When the
//! gate fails, the previous files come back, `up -d` brings the previous
//! version back, and the task fails saying why and whether the old version
//! is healthy again. `blue_green` brings the new version up as the idle
//! color, gates it, switches (writes `switch.file` with the color's text
//! and/or runs `switch.command`), waits `switch.drain` seconds for requests
//! in flight, then stops the old color; a failed gate takes the new color
//! down and never switches.
//!
//! Volumes are never removed (`down` has no `-v`); `prune` runs
//! `docker image prune -f`, which removes dangling images only.

mod deploy;
mod gate;
mod params;
mod probe;
mod project;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map};

use crate::capability::ControllerInput;
use crate::probe::tagged_file;
use crate::textfile;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

use deploy::services_result;
use gate::gate;
use params::check_params;
pub use params::{
    Color, Colors, ComposeDeployParams, DeployState, Health, Pull, RenderedFile, Strategy, Switch,
};
use probe::{delta, parse_project, probe_script, Probed};
use project::{compose_cmd, manifest_names, wants, Want};

const HEADER: &str = "# Managed by herd (compose_deploy). Local changes are overwritten.\n";
const MANIFEST: &str = ".herd-compose";
const PREVIOUS: &str = ".herd-previous";
const LIVE: &str = ".herd-live";

/// The `compose_deploy` module.
pub struct ComposeDeploy;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: ComposeDeploy::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// What the plan decided, for apply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum Planned {
    /// Recreate in place; `previous` when a deployed version can come back.
    Deploy {
        previous: bool,
        old_names: Vec<String>,
        stale: Vec<String>,
    },
    /// Blue-green: bring up `target`, switch, stop `old`.
    Deploy2 {
        target: Color,
        old: Option<Color>,
        stale: Vec<String>,
    },
    /// Blue-green: the live color is right; only the switch file is not.
    SwitchOnly {
        live: Color,
    },
    Restart {
        color: Option<Color>,
    },
    Absent {
        /// (dir, project, files to remove)
        projects: Vec<(String, String, Vec<String>)>,
        live: Option<String>,
    },
}

fn host_failed(what: &str, out: &crate::ExecOutput) -> ModuleError {
    let mut text = out.stderr_str();
    if text.trim().is_empty() {
        text = out.stdout_str();
    }
    ModuleError::failed(format!(
        "{what} failed (rc={}): {}",
        out.rc,
        last_lines(&text, 6)
    ))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn run_ok(host: &mut dyn Host, what: &str, script: &str) -> Result<String, ModuleError> {
    let out = host.run(script, None)?;
    if out.success() {
        Ok(out.stdout_str())
    } else {
        Err(host_failed(what, &out))
    }
}

fn docker_available(out: &str) -> Result<(), ModuleError> {
    if out.lines().any(|l| l == "NODOCKER") {
        return Err(ModuleError::failed("docker is not installed on the host"));
    }
    if out.lines().any(|l| l == "NOCOMPOSE") {
        return Err(ModuleError::failed(
            "the Docker Compose v2 plugin (`docker compose`) is not installed on the host",
        ));
    }
    Ok(())
}

impl Module for ComposeDeploy {
    const NAME: &'static str = "compose_deploy";
    /// `files` are read (`.j2` rendered) on the controller and arrive as
    /// `_files`, so `${VAR}` and `$${VAR}` reach compose untouched.
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[ControllerInput::RenderedFiles {
        param: "files",
        into: "_files",
        noun: "compose file",
    }];
    const DOC_SHORT: &'static str = "Deploy a Docker Compose project from controller files, gated by a health check, optionally blue-green.";
    const DOC_LONG: &'static str = r##"`compose_deploy` deploys a Docker Compose (v2 plugin) project into `dir` on
the host: the compose `files` come from the controller (a `.j2` file is
rendered as a template, as `template` does; compose's own `${VAR}` and
`$${VAR}` pass through untouched), `env` is written to the project's `.env`
(mode 0600), then `docker compose up -d` runs.

- Changed only when something differs: a file or `.env`, or a service whose
  `docker compose config --hash` differs from its container's
  `com.docker.compose.config-hash` label, whose image ID is not the one its
  tag names now, or whose container is missing or stopped. A second run
  reports `changed=0`. The plan is one round trip (the new configuration is
  hashed in a temp dir on the host); `--check --diff` shows the file and
  `.env` diffs and lines like `web: recreate (configuration changed)`.
- The health gate runs after a change. When it fails, the previous files and
  `.env` (kept in `dir/.herd-previous` during the deploy) come back, `up -d`
  brings the previous version back, and the task fails saying why and
  whether the previous version is healthy again.
- `strategy: blue_green` runs the new version as the idle color
  (`<project>-blue` / `<project>-green`, in `dir/blue` / `dir/green`, with
  `colors: {blue: {WEB_PORT: 8081}, green: {WEB_PORT: 8082}}` added to its
  `.env` and `DEPLOY_COLOR`), gates it, then switches: `switch.file` gets the
  color's text (`switch: {file: /etc/nginx/upstream.conf, blue: "server
  127.0.0.1:8081;", green: "server 127.0.0.1:8082;"}`) and/or
  `switch.command` runs (with `DEPLOY_COLOR`, `DEPLOY_PROJECT`), and after
  `switch.drain` seconds (default 2) the old color is stopped. A color that
  fails its gate is taken down and never switched to. `dir/.herd-live` names
  the live color.
- Volumes are never removed: `state: absent` runs `docker compose down`
  without `-v`, and pruning removes dangling images only (not `docker system
  prune -af --volumes`).
- `playbooks/compose-deploy.yml` (with the template
  `playbooks/compose/app.yml.j2` and `inventories/compose-deploy.ini`) is a
  runnable example on the test fleet: `-e app_tag=v2` rolls forward,
  `-e app_strategy=blue_green` deploys blue-green."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Deploy the shop
  compose_deploy:
    project: shop
    dir: /opt/deploy/prod
    files: [compose/app.yml.j2]          # -> /opt/deploy/prod/app.yml
    env: {IMAGE_TAG: v2, WEB_PORT: 8081}
    pull: missing                        # always | missing | never
    remove_orphans: yes
    prune: yes                           # docker image prune -f: dangling images only
    health:
      url: "http://127.0.0.1:${WEB_PORT}/health"   # fetched on the host (curl)
      status: 200
      containers: yes                    # every container running, and healthy if it has a healthcheck
      retries: 20
      delay: 0.5
    # state: present | absent | restarted
  register: deploy
"##;
    type Params = ComposeDeployParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        check_params(p)?;
        let ws = wants(p)?;
        if p.state == DeployState::Absent {
            return self.plan_absent(p, &ws, host);
        }
        let dir = p.dir.trim_end_matches('/');
        let live_path = format!("{dir}/{LIVE}");
        let bg = p.strategy == Strategy::BlueGreen;
        let switch_file = p.switch.as_ref().and_then(|s| s.file.as_deref());
        let script = probe_script(
            &ws,
            bg.then_some(live_path.as_str()),
            switch_file.filter(|_| bg),
        );
        let out = run_ok(host, "reading the project", &script)?;
        docker_available(&out)?;
        let mut plan = Plan::default();
        if !bg {
            let (_, w) = &ws[0];
            let got = parse_project(&out, "P", w.files.len())?;
            let d = delta(w, &got, p)?;
            plan.result.insert("project".into(), json!(w.project));
            plan.result.insert("services".into(), services_result(&got));
            let old_names = got
                .manifest
                .as_deref()
                .map(manifest_names)
                .unwrap_or_default();
            if d.is_empty() {
                if p.state == DeployState::Restarted {
                    plan.changes.push(format!("{}: restart", w.project));
                    plan.keep_state(&Planned::Restart { color: None })?;
                }
                return Ok(plan);
            }
            plan.changes = d.changes;
            plan.diffs = d.diffs;
            plan.keep_state(&Planned::Deploy {
                previous: got.manifest.is_some() && !old_names.is_empty(),
                old_names,
                stale: d.stale,
            })?;
            return Ok(plan);
        }
        let live = match tagged_file(&out, "LIVE")? {
            None => None,
            Some(t) => match t.trim() {
                "blue" => Some(Color::Blue),
                "green" => Some(Color::Green),
                other => {
                    return Err(ModuleError::failed(format!(
                        "{live_path} names no color (`{other}`); remove it to start over with blue"
                    )))
                }
            },
        };
        let probed: Vec<(Color, &Want, Probed)> = ws
            .iter()
            .filter_map(|(c, w)| c.map(|c| (c, w)))
            .map(|(c, w)| {
                parse_project(&out, c.tag(), w.files.len())
                    .map(|got| (c, w, got))
                    .map_err(ModuleError::from)
            })
            .collect::<Result<_, _>>()?;
        let cur = live.unwrap_or(Color::Blue);
        let (_, cw, cgot) = probed
            .iter()
            .find(|(c, _, _)| *c == cur)
            .ok_or_else(|| ModuleError::failed("no project for the live color"))?;
        let cd = delta(cw, cgot, p)?;
        plan.result
            .insert("color".into(), json!(live.map(Color::word)));
        plan.result.insert("project".into(), json!(cw.project));
        plan.result.insert("services".into(), services_result(cgot));
        if let Some(l) = live.filter(|_| cd.is_empty()) {
            let sw = p.switch.as_ref();
            let want_text = sw.and_then(|s| s.text(l));
            let have = tagged_file(&out, "SWITCH")?;
            if let (Some(f), Some(t)) = (switch_file, want_text) {
                if have.as_deref() != Some(t) {
                    plan.changes.push(format!("switch {f} to {}", l.word()));
                    if let Some(d) =
                        textfile::diff(f, have.unwrap_or_default().as_bytes(), t.as_bytes())
                    {
                        plan.diffs.push(d);
                    }
                    plan.keep_state(&Planned::SwitchOnly { live: l })?;
                    return Ok(plan);
                }
            }
            if p.state == DeployState::Restarted {
                plan.changes.push(format!("{}: restart", cw.project));
                plan.keep_state(&Planned::Restart { color: Some(l) })?;
            }
            return Ok(plan);
        }
        let target = if live.is_some() {
            cur.other()
        } else {
            Color::Blue
        };
        let (_, tw, tgot) = probed
            .iter()
            .find(|(c, _, _)| *c == target)
            .ok_or_else(|| ModuleError::failed("no project for the target color"))?;
        let td = delta(tw, tgot, p)?;
        plan.changes
            .push(format!("deploy {} ({})", tw.project, target.word()));
        plan.changes.extend(td.changes);
        plan.diffs = td.diffs;
        match switch_file {
            Some(f) => plan
                .changes
                .push(format!("switch {f} to {}", target.word())),
            None => plan
                .changes
                .push(format!("switch to {} (command)", target.word())),
        }
        if let Some(l) = live {
            plan.changes
                .push(format!("stop {}-{}", p.project, l.word()));
        }
        plan.keep_state(&Planned::Deploy2 {
            target,
            old: live,
            stale: td.stale,
        })?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let planned: Planned = plan.state_as()?;
        let ws = wants(p)?;
        let mut out = match planned {
            Planned::Absent { projects, live } => {
                return self.apply_absent(p, projects, live, host)
            }
            Planned::Deploy {
                previous,
                old_names,
                stale,
            } => self.apply_recreate(p, &ws[0].1, previous, &old_names, &stale, host)?,
            Planned::Deploy2 { target, old, stale } => {
                self.apply_blue_green(p, &ws, target, old, &stale, host)?
            }
            Planned::SwitchOnly { live } => {
                let sw = p
                    .switch
                    .as_ref()
                    .ok_or_else(|| invalid("switch", "missing"))?;
                let project = format!("{}-{}", p.project, live.word());
                self.switch_to(sw, live, &project, host)?;
                Outcome::changed(Map::from_iter([
                    ("changed".to_string(), json!(true)),
                    ("color".to_string(), json!(live.word())),
                ]))
            }
            Planned::Restart { color } => {
                let w = &ws
                    .iter()
                    .find(|(c, _)| *c == color)
                    .ok_or_else(|| ModuleError::failed("no project to restart"))?
                    .1;
                run_ok(
                    host,
                    &format!("restarting {}", w.project),
                    &format!(
                        "{} restart 2>&1",
                        compose_cmd(&w.project, &w.dir, &w.names())
                    ),
                )?;
                if let Some(why) = gate(host, p.health.as_ref(), &w.project, &w.env)? {
                    return Err(ModuleError::failed(format!(
                        "the health gate failed after the restart: {why}"
                    )));
                }
                Outcome::changed(Map::from_iter([("changed".to_string(), json!(true))]))
            }
        };
        for (k, v) in plan.result {
            out.result.entry(k).or_insert(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::gate::{gate_script, secs, substitute};
    use super::project::{b64, env_text, parse_env};
    use super::*;
    use crate::module::parse_params;
    use crate::probe::decode_b64;
    use crate::testing::{ok, FakeHost, Match};
    use crate::DynModule;
    use serde_json::Value;
    use std::collections::hash_map::DefaultHasher;
    use std::collections::BTreeMap;
    use std::hash::{Hash, Hasher};

    fn params(v: Value) -> ComposeDeployParams {
        parse_params::<ComposeDeployParams>(ComposeDeploy::NAME, &v).expect("params")
    }

    fn base() -> Value {
        json!({"project": "shop", "dir": "/opt/deploy/prod",
            "files": ["compose/app.yml.j2"],
            "_files": [{"name": "app.yml", "content": "services:\n  web:\n    image: app:${IMAGE_TAG}\n"}],
            "env": {"IMAGE_TAG": "v1", "PORT": 8081},
            "health": {"url": "http://127.0.0.1:${PORT}/health", "retries": 3, "delay": 0.1}})
    }

    #[test]
    fn parameters_are_checked() {
        assert!(check_params(&params(base())).is_ok());
        let bad = |patch: Value| {
            let mut v = base();
            for (k, x) in patch.as_object().expect("object") {
                v[k] = x.clone();
            }
            check_params(&params(v))
                .expect_err("must be refused")
                .to_string()
        };
        assert!(bad(json!({"project": "Shop"})).contains("project"));
        assert!(bad(json!({"dir": "opt/x"})).contains("dir"));
        assert!(bad(json!({"dir": "/opt/../etc"})).contains("dir"));
        assert!(bad(json!({"strategy": "blue_green"})).contains("switch"));
        assert!(
            bad(json!({"strategy": "blue_green", "switch": {"file": "/x", "blue": "a"}}))
                .contains("green")
        );
        assert!(bad(json!({"switch": {"command": "true"}})).contains("blue_green"));
        assert!(bad(json!({"health": {"retries": 3}})).contains("health"));
        assert!(bad(json!({"health": {"url": "ftp://x/"}})).contains("health.url"));
        for env in [
            json!({"1X": "a"}),
            json!({"A": "it's"}),
            json!({"A": "a\nb"}),
        ] {
            let mut v = base();
            v["env"] = env;
            let e = parse_params::<ComposeDeployParams>("t", &v).expect_err("bad env");
            assert_eq!(e.field(), Some("env"));
        }
        // Without the engine's `_files` a present deploy cannot go on.
        let mut v = base();
        v.as_object_mut().map(|m| m.remove("_files"));
        assert!(wants(&params(v)).is_err());
    }

    #[test]
    fn env_text_and_substitution() {
        let mut env = BTreeMap::new();
        env.insert("IMAGE_TAG".to_string(), "v1.2".to_string());
        env.insert("GREETING".to_string(), "hello ${USER} $$x".to_string());
        assert_eq!(
            env_text(&env),
            format!("{HEADER}GREETING='hello ${{USER}} $$x'\nIMAGE_TAG=v1.2\n")
        );
        assert_eq!(parse_env(&env_text(&env)), env);
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "8082".to_string());
        assert_eq!(
            substitute("http://127.0.0.1:${PORT}/h?${NOPE}${", &env),
            "http://127.0.0.1:8082/h?${NOPE}${"
        );
        assert_eq!(secs(0.5), "0.5");
        assert_eq!(secs(2.0), "2");
    }

    #[test]
    fn blue_green_projects_get_their_colors_env() {
        let mut v = base();
        v["strategy"] = json!("blue_green");
        v["colors"] = json!({"blue": {"PORT": 8081}, "green": {"PORT": 8082}});
        v["switch"] = json!({"file": "/opt/deploy/prod/upstream", "blue": "a", "green": "b"});
        let ws = wants(&params(v)).expect("wants");
        assert_eq!(ws.len(), 2);
        let (c, g) = &ws[1];
        assert_eq!(*c, Some(Color::Green));
        assert_eq!(g.project, "shop-green");
        assert_eq!(g.dir, "/opt/deploy/prod/green");
        assert_eq!(g.env["PORT"], "8082");
        assert_eq!(g.env["DEPLOY_COLOR"], "green");
        assert_eq!(g.env["IMAGE_TAG"], "v1");
    }

    #[test]
    fn parses_the_probe() {
        let json = b64(r#"{"services": {"web": {"image": "app:v1"}, "db": {"build": "."}}}"#);
        let out = format!(
            "PF0 {}\nPENV -\nPMAN -\nPH web abc\nPH db def\nPJSON {json}\nPI app:v1 sha256:1\n\
             PC web abc sha256:1 running /shop-web-1\nPC old xyz sha256:9 exited /shop-old-1\n",
            b64("services: {}\n")
        );
        let p = parse_project(&out, "P", 1).expect("parse");
        assert_eq!(p.files, [Some("services: {}\n".to_string())]);
        assert_eq!(p.env, None);
        assert_eq!(p.hashes["db"], "def");
        assert_eq!(p.images.get("db"), None);
        assert_eq!(p.image_ids["app:v1"].as_deref(), Some("sha256:1"));
        assert_eq!(p.containers.len(), 2);
        assert_eq!(p.containers[0].name, "shop-old-1");
        let err = format!("PF0 -\nPENV -\nPMAN -\nPCFGERR {}\n", b64("yaml: bad"));
        let p = parse_project(&err, "P", 1).expect("parse");
        assert_eq!(p.config_error.as_deref(), Some("yaml: bad"));
        assert!(parse_project("PF0 -\n", "P", 1).is_err());
    }

    #[test]
    fn gate_script_checks_url_and_containers() {
        let h: Health = serde_json::from_value(
            json!({"url": "http://127.0.0.1:${PORT}/health", "status": 204, "containers": true, "retries": 5, "delay": 0.2}),
        )
        .expect("health");
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "8081".to_string());
        let s = gate_script(&h, "shop", &env);
        assert!(
            s.contains("--max-time 5 -- http://127.0.0.1:8081/health"),
            "{s}"
        );
        assert!(s.contains("[ \"$code\" != 204 ]"), "{s}");
        assert!(s.contains("label=com.docker.compose.project=shop"), "{s}");
        assert!(
            s.contains("while [ $i -lt 5 ]") && s.contains("sleep 0.2"),
            "{s}"
        );
    }

    /// A Docker host in miniature: images and containers, beside the
    /// files the fake host holds. A service's config hash is a hash of the
    /// compose files and `.env` it was rendered from; `up` makes every
    /// service's container from the project directory's files.
    #[derive(Default)]
    struct Docker {
        images: BTreeMap<String, String>,
        /// project -> (service, hash, image id, state)
        containers: BTreeMap<String, Vec<(String, String, String, String)>>,
        healthy_tags: Vec<String>,
    }

    type FakeDocker = FakeHost<Docker>;

    fn hash_of(parts: &[&str]) -> String {
        let mut h = DefaultHasher::new();
        parts.hash(&mut h);
        format!("{:x}", h.finish())
    }

    fn tag_of(env: &str) -> String {
        parse_env(env).get("IMAGE_TAG").cloned().unwrap_or_default()
    }

    /// The probe's answer: the files it asks for, and per project the
    /// services' hashes, images and containers.
    fn probe(h: &FakeDocker, script: &str) -> String {
        let mut out = String::new();
        let mut rendered: Vec<String> = Vec::new();
        for line in script.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["file", tag, path] = words.as_slice() {
                let path = path.trim_matches('\'');
                match h.files.get(path) {
                    Some(c) => out.push_str(&format!("{tag} {}\n", b64(c))),
                    None => out.push_str(&format!("{tag} -\n")),
                }
            } else if let Some(rest) = line.strip_prefix("printf '%s' '") {
                let enc = rest.split('\'').next().unwrap_or_default();
                rendered.push(decode_b64("test", enc).expect("b64"));
            } else if let ["containers", x, p] = words.as_slice() {
                let project = p.to_string();
                let env = rendered.last().cloned().unwrap_or_default();
                let parts: Vec<&str> = rendered.iter().map(String::as_str).collect();
                let img = format!("app:{}", tag_of(&env));
                out.push_str(&format!("{x}H web {}\n", hash_of(&parts)));
                out.push_str(&format!(
                    "{x}JSON {}\n",
                    b64(&json!({"services": {"web": {"image": img}}}).to_string())
                ));
                let id = h.images.get(&img).map_or("-", String::as_str);
                out.push_str(&format!("{x}I {img} {id}\n"));
                for (s, hash, i, st) in h.containers.get(&project).into_iter().flatten() {
                    out.push_str(&format!("{x}C {s} {hash} {i} {st} /{project}-{s}-1\n"));
                }
                rendered.clear();
            }
        }
        out
    }

    /// `docker compose up -d`: the project's one service from its files.
    fn up(h: &mut FakeDocker, script: &str) {
        let words: Vec<&str> = script.split_whitespace().collect();
        let arg = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .map(|i| words[i + 1].trim_matches('\'').to_string())
        };
        let project = arg("-p").expect("project");
        let dir = arg("--project-directory").expect("dir");
        let names: Vec<String> = words
            .windows(2)
            .filter(|w| w[0] == "-f")
            .map(|w| w[1].trim_matches('\'').to_string())
            .collect();
        let env = h
            .files
            .get(&format!("{dir}/.env"))
            .cloned()
            .unwrap_or_default();
        let mut parts: Vec<String> = names
            .iter()
            .map(|n| h.files.get(n).cloned().unwrap_or_default())
            .collect();
        parts.push(env.clone());
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let id = h
            .images
            .get(&format!("app:{}", tag_of(&env)))
            .cloned()
            .unwrap_or_default();
        h.containers.insert(
            project,
            vec![("web".into(), hash_of(&parts), id, "running".into())],
        );
    }

    /// The health gate: passes while a container runs a healthy tag's image.
    fn gate(h: &FakeDocker) -> &'static str {
        let live = h.containers.values().flatten().any(|(_, _, id, _)| {
            h.healthy_tags
                .iter()
                .any(|t| h.images.get(&format!("app:{t}")) == Some(id))
        });
        if live {
            "GATE ok 1\n"
        } else {
            "GATE fail answered 404\n"
        }
    }

    fn fake() -> FakeDocker {
        let mut docker = Docker::default();
        docker.images.insert("app:v1".into(), "sha256:1".into());
        docker.images.insert("app:v2".into(), "sha256:2".into());
        docker.images.insert("app:broken".into(), "sha256:3".into());
        docker.healthy_tags = vec!["v1".into(), "v2".into()];
        FakeHost::with_state(docker)
            .handle(Match::prefix("file() {"), |h, script, _| {
                ok(probe(h, script))
            })
            .handle(Match::contains(" up -d "), |h, script, _| {
                up(h, script);
                ok("")
            })
            .handle(Match::prefix("i=0;"), |h, _, _| ok(gate(h)))
    }

    fn with_tag(tag: &str) -> Value {
        let mut v = base();
        v["env"]["IMAGE_TAG"] = json!(tag);
        v
    }

    #[test]
    fn apply_then_plan_is_empty_and_a_new_tag_or_image_is_a_change() {
        let mut h = fake();
        let p = with_tag("v1");
        let pl = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "create /opt/deploy/prod/app.yml",
                "create /opt/deploy/prod/.env",
                "record the files in /opt/deploy/prod/.herd-compose",
                "web: create"
            ]
        );
        assert_eq!(pl.diffs.len(), 2);
        assert_eq!(h.scripts.len(), 1, "the plan is one round trip");
        let out = DynModule::apply(&ComposeDeploy, &p, pl, &mut h).expect("apply");
        assert!(out.changed);
        let again = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);

        let pl = DynModule::plan(&ComposeDeploy, &with_tag("v2"), &mut h).expect("plan");
        assert_eq!(
            pl.changes,
            [
                "update /opt/deploy/prod/.env",
                "web: recreate (configuration changed)"
            ]
        );
        // The same tag now naming another image recreates the container.
        h.images.insert("app:v1".into(), "sha256:11".into());
        let pl = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        assert_eq!(pl.changes, ["web: recreate (image app:v1 changed)"]);
        // pull: never refuses an image the host does not have.
        let mut v = with_tag("v9");
        v["pull"] = json!("never");
        let e = DynModule::plan(&ComposeDeploy, &v, &mut h).expect_err("no image");
        assert!(e.to_string().contains("pull is `never`"), "{e}");
    }

    #[test]
    fn a_failed_health_gate_rolls_back_to_the_previous_files() {
        let mut h = fake();
        let p = with_tag("v1");
        let pl = DynModule::plan(&ComposeDeploy, &p, &mut h).expect("plan");
        DynModule::apply(&ComposeDeploy, &p, pl, &mut h).expect("apply");
        let broken = with_tag("broken");
        let pl = DynModule::plan(&ComposeDeploy, &broken, &mut h).expect("plan");
        h.scripts.clear();
        let e = DynModule::apply(&ComposeDeploy, &broken, pl, &mut h).expect_err("gate");
        let msg = e.to_string();
        assert!(
            msg.starts_with("the health gate failed: answered 404; rolled back"),
            "{msg}"
        );
        let s = h.scripts.join("\n---\n");
        assert!(
            s.contains("cp -p -- .env /opt/deploy/prod/.herd-previous/"),
            "{s}"
        );
        assert!(
            s.contains("cp -p -- /opt/deploy/prod/.herd-previous/.env .env"),
            "{s}"
        );
        assert!(s.contains("up -d --pull never --remove-orphans"), "{s}");
        assert!(
            !s.contains(" down") && !s.contains("prune"),
            "nothing removed: {s}"
        );
        let ModuleError::Failed { result, .. } = e else {
            panic!("not a task failure")
        };
        assert_eq!(result["rolled_back"], json!(true));
    }

    #[test]
    fn blue_green_deploys_the_idle_color_and_switches() {
        let mut h = fake();
        let mut v = with_tag("v1");
        v["strategy"] = json!("blue_green");
        v["colors"] = json!({"blue": {"PORT": 8081}, "green": {"PORT": 8082}});
        v["switch"] = json!({"file": "/opt/deploy/prod/upstream", "blue": "127.0.0.1:8081\n", "green": "127.0.0.1:8082\n", "drain": 0});
        let (first, _) = {
            let pl = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
            let c = pl.changes.clone();
            (
                c,
                DynModule::apply(&ComposeDeploy, &v, pl, &mut h).expect("apply"),
            )
        };
        assert_eq!(first[0], "deploy shop-blue (blue)");
        assert_eq!(h.files["/opt/deploy/prod/upstream"], "127.0.0.1:8081\n");
        assert_eq!(h.files["/opt/deploy/prod/.herd-live"], "blue\n");
        let again = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);

        v["env"]["IMAGE_TAG"] = json!("v2");
        let pl = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
        assert_eq!(
            pl.changes.first().map(String::as_str),
            Some("deploy shop-green (green)")
        );
        assert_eq!(
            pl.changes.last().map(String::as_str),
            Some("stop shop-blue")
        );
        DynModule::apply(&ComposeDeploy, &v, pl, &mut h).expect("apply");
        assert_eq!(h.files["/opt/deploy/prod/upstream"], "127.0.0.1:8082\n");
        assert!(h
            .scripts
            .last()
            .is_some_and(|s| s.contains("-p shop-blue stop")));
        assert!(DynModule::plan(&ComposeDeploy, &v, &mut h)
            .expect("plan")
            .is_empty());

        // A switch file changed by hand is put back, without a deploy.
        h.files.insert(
            "/opt/deploy/prod/upstream".into(),
            "127.0.0.1:8081\n".into(),
        );
        let pl = DynModule::plan(&ComposeDeploy, &v, &mut h).expect("plan");
        assert_eq!(pl.changes, ["switch /opt/deploy/prod/upstream to green"]);
    }
}
