//! Apply: `up -d`, writing a project's files, pruning, and the three
//! ways to deploy (`absent`, `recreate`, `blue_green` with its switch).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::probe::{tagged, tagged_file};
use crate::shell_quote::quote;
use crate::{Host, ModuleError, Outcome, Plan};

use super::gate::{gate, secs};
use super::params::{Color, ComposeDeployParams, Pull, Strategy, Switch};
use super::probe::{parse_containers, Probed, PROBE_FUNCTIONS};
use super::project::{compose_cmd, manifest_names, parse_env, Want};
use super::{
    docker_available, invalid, last_lines, run_ok, ComposeDeploy, Planned, LIVE, MANIFEST, PREVIOUS,
};

fn up_script(w: &Want, names: &[&str], pull: Pull, remove_orphans: bool) -> String {
    format!(
        "{} up -d --pull {}{} 2>&1",
        compose_cmd(&w.project, &w.dir, names),
        pull.word(),
        if remove_orphans {
            " --remove-orphans"
        } else {
            ""
        }
    )
}

/// Write the project's files, `.env` and manifest, and remove `stale` ones.
fn write_project(host: &mut dyn Host, w: &Want, stale: &[String]) -> Result<(), ModuleError> {
    run_ok(
        host,
        "creating the project directory",
        &format!("mkdir -p -- {}", quote(&w.dir)),
    )?;
    for (n, c) in &w.files {
        host.write_file(&w.path(n), c.as_bytes(), &FileAttrs::default())?;
    }
    let secret = FileAttrs::with_mode("0600");
    host.write_file(&w.path(".env"), w.env_text.as_bytes(), &secret)?;
    host.write_file(
        &w.path(MANIFEST),
        w.manifest.as_bytes(),
        &FileAttrs::default(),
    )?;
    if !stale.is_empty() {
        let rm: Vec<String> = stale.iter().map(|n| quote(&w.path(n))).collect();
        run_ok(
            host,
            "removing old files",
            &format!("rm -f -- {}", rm.join(" ")),
        )?;
    }
    Ok(())
}

pub(super) fn prune(
    host: &mut dyn Host,
    result: &mut Map<String, Value>,
) -> Result<(), ModuleError> {
    // Dangling images only: never `-a` (no registry may hold the previous
    // version), never volumes.
    let out = run_ok(host, "docker image prune", "docker image prune -f 2>&1")?;
    result.insert("pruned".into(), json!(last_lines(&out, 1)));
    Ok(())
}

pub(super) fn services_result(got: &Probed) -> Value {
    let m: Map<String, Value> = got
        .hashes
        .iter()
        .map(|(s, h)| {
            (
                s.clone(),
                json!({"config_hash": h, "image": got.images.get(s)}),
            )
        })
        .collect();
    Value::Object(m)
}

impl ComposeDeploy {
    pub(super) fn plan_absent(
        &self,
        p: &ComposeDeployParams,
        ws: &[(Option<Color>, Want)],
        host: &mut dyn Host,
    ) -> Result<Plan, ModuleError> {
        let live = (p.strategy == Strategy::BlueGreen)
            .then(|| format!("{}/{LIVE}", p.dir.trim_end_matches('/')));
        let mut s = String::from(PROBE_FUNCTIONS);
        if let Some(l) = &live {
            s.push_str(&format!("file LIVE {}\n", quote(l)));
        }
        for (c, w) in ws {
            let x = c.map_or("P", Color::tag);
            s.push_str(&format!("file {x}MAN {}\n", quote(&w.path(MANIFEST))));
            s.push_str(&format!(
                "if [ -e {} ]; then echo {x}ENV y; else echo {x}ENV -; fi\n",
                quote(&w.path(".env"))
            ));
            s.push_str(&format!("containers {x} {}\n", quote(&w.project)));
        }
        s.push_str("true\n");
        let out = run_ok(host, "reading the project", &s)?;
        docker_available(&out)?;
        let mut plan = Plan::default();
        let mut projects = Vec::new();
        for (c, w) in ws {
            let x = c.map_or("P", Color::tag);
            let cs = parse_containers(&out, x);
            let man = tagged_file(&out, &format!("{x}MAN"))?;
            let mut files: Vec<String> = man.as_deref().map(manifest_names).unwrap_or_default();
            if tagged(&out, &format!("{x}ENV")) == Some("y") {
                files.push(".env".into());
            }
            if man.is_some() {
                files.push(MANIFEST.into());
            }
            if cs.is_empty() && files.is_empty() {
                continue;
            }
            if !cs.is_empty() {
                plan.changes.push(format!(
                    "{}: stop and remove {} container(s), keep volumes",
                    w.project,
                    cs.len()
                ));
            }
            for f in &files {
                plan.changes.push(format!("remove {}", w.path(f)));
            }
            projects.push((w.dir.clone(), w.project.clone(), files));
        }
        let live_exists = tagged(&out, "LIVE").is_some_and(|l| l.trim() != "-");
        if live_exists {
            if let Some(l) = &live {
                plan.changes.push(format!("remove {l}"));
            }
        }
        plan.keep_state(&Planned::Absent {
            projects,
            live: live.filter(|_| live_exists),
        })?;
        Ok(plan)
    }

    pub(super) fn apply_absent(
        &self,
        p: &ComposeDeployParams,
        projects: Vec<(String, String, Vec<String>)>,
        live: Option<String>,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        for (dir, project, files) in &projects {
            // `down` without files finds the containers by their project
            // label; no `-v`: volumes hold data and stay.
            let mut s = format!(
                "docker compose -p {} down{} 2>&1",
                quote(project),
                if p.remove_orphans {
                    " --remove-orphans"
                } else {
                    ""
                }
            );
            for f in files {
                s.push_str(&format!(" && rm -f -- {}", quote(&format!("{dir}/{f}"))));
            }
            s.push_str(&format!(
                " && rm -rf -- {}",
                quote(&format!("{dir}/{PREVIOUS}"))
            ));
            run_ok(host, &format!("removing {project}"), &s)?;
        }
        if let Some(l) = live {
            run_ok(
                host,
                "removing the live marker",
                &format!("rm -f -- {}", quote(&l)),
            )?;
        }
        Ok(Outcome::changed(Map::from_iter([(
            "changed".to_string(),
            json!(true),
        )])))
    }

    pub(super) fn apply_recreate(
        &self,
        p: &ComposeDeployParams,
        w: &Want,
        previous: bool,
        old_names: &[String],
        stale: &[String],
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let dir = quote(&w.dir);
        let prev = quote(&w.path(PREVIOUS));
        let mut result = Map::new();
        result.insert("project".into(), json!(w.project));
        if previous {
            let mut s = format!("set -e; rm -rf -- {prev}; mkdir -p -- {prev}; cd -- {dir}\n");
            for n in old_names
                .iter()
                .map(String::as_str)
                .chain([".env", MANIFEST])
            {
                s.push_str(&format!(
                    "if [ -f {n} ]; then cp -p -- {n} {prev}/; fi\n",
                    n = quote(n)
                ));
            }
            run_ok(host, "saving the previous files", &s)?;
        }
        write_project(host, w, stale)?;
        let names = w.names();
        let up = host.run(&up_script(w, &names, p.pull, p.remove_orphans), None)?;
        let why = if up.success() {
            gate(host, p.health.as_ref(), &w.project, &w.env)?
                .map(|why| format!("the health gate failed: {why}"))
        } else {
            Some(format!(
                "docker compose up failed (rc={}): {}",
                up.rc,
                last_lines(&up.stdout_str(), 4)
            ))
        };
        let Some(why) = why else {
            if previous {
                run_ok(
                    host,
                    "removing the saved files",
                    &format!("rm -rf -- {prev}"),
                )?;
            }
            if p.prune {
                prune(host, &mut result)?;
            }
            result.insert("changed".into(), json!(true));
            return Ok(Outcome::changed(result));
        };
        if !previous {
            result.insert("rolled_back".into(), json!(false));
            return Err(ModuleError::Failed {
                msg: format!("{why}; there is no previous version to roll back to"),
                result,
            });
        }
        // Roll back: the previous files and .env, and the previous version up.
        let mut s = format!("set -e; cd -- {dir}\n");
        for n in &names {
            s.push_str(&format!("rm -f -- {}\n", quote(n)));
        }
        for n in old_names
            .iter()
            .map(String::as_str)
            .chain([".env", MANIFEST])
        {
            s.push_str(&format!(
                "if [ -f {prev}/{n} ]; then cp -p -- {prev}/{n} {n}; fi\n",
                n = quote(n)
            ));
        }
        s.push_str(&format!("rm -rf -- {prev}\n"));
        run_ok(host, "restoring the previous files", &s)?;
        let old: Vec<&str> = old_names.iter().map(String::as_str).collect();
        let old_env = match host.read_file(&w.path(".env"))? {
            Some(b) => parse_env(&String::from_utf8_lossy(&b)),
            None => BTreeMap::new(),
        };
        let up = host.run(&up_script(w, &old, Pull::Never, true), None)?;
        result.insert("rolled_back".into(), json!(true));
        let back = if !up.success() {
            format!(
                "bringing the previous version back failed (rc={}): {}",
                up.rc,
                last_lines(&up.stdout_str(), 4)
            )
        } else {
            match gate(host, p.health.as_ref(), &w.project, &old_env)? {
                None => "the previous version is running and healthy again".to_string(),
                Some(w) => format!("the previous version is running but not healthy: {w}"),
            }
        };
        Err(ModuleError::Failed {
            msg: format!("{why}; rolled back to the previous files and .env: {back}"),
            result,
        })
    }

    pub(super) fn switch_to(
        &self,
        sw: &Switch,
        c: Color,
        project: &str,
        host: &mut dyn Host,
    ) -> Result<(), ModuleError> {
        if let (Some(f), Some(text)) = (&sw.file, sw.text(c)) {
            host.write_file(f, text.as_bytes(), &FileAttrs::default())?;
        }
        if let Some(cmd) = &sw.command {
            run_ok(
                host,
                "the switch command",
                &format!(
                    "DEPLOY_COLOR={}; DEPLOY_PROJECT={}; export DEPLOY_COLOR DEPLOY_PROJECT\n{cmd}",
                    c.word(),
                    quote(project)
                ),
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_blue_green(
        &self,
        p: &ComposeDeployParams,
        ws: &[(Option<Color>, Want)],
        target: Color,
        old: Option<Color>,
        stale: &[String],
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let sw = p
            .switch
            .as_ref()
            .ok_or_else(|| invalid("switch", "missing"))?;
        let want = |c: Color| {
            ws.iter()
                .find(|(wc, _)| *wc == Some(c))
                .map(|(_, w)| w.clone())
                .ok_or_else(|| ModuleError::failed("no project for the color"))
        };
        let w = want(target)?;
        let mut result = Map::new();
        result.insert("project".into(), json!(w.project));
        result.insert("color".into(), json!(target.word()));
        write_project(host, &w, stale)?;
        let up = host.run(&up_script(&w, &w.names(), p.pull, true), None)?;
        let why = if up.success() {
            gate(host, p.health.as_ref(), &w.project, &w.env)?
                .map(|why| format!("the health gate of {} failed: {why}", w.project))
        } else {
            Some(format!(
                "docker compose up of {} failed (rc={}): {}",
                w.project,
                up.rc,
                last_lines(&up.stdout_str(), 4)
            ))
        };
        if let Some(why) = why {
            // Never switched: the old color still serves. Free the new
            // color's ports and resources.
            let down = host.run(
                &format!("docker compose -p {} down 2>&1", quote(&w.project)),
                None,
            )?;
            let serving = match old {
                Some(o) => format!(
                    "{}-{} still serves, nothing was switched",
                    p.project,
                    o.word()
                ),
                None => "there was no previous version".to_string(),
            };
            let down_msg = if down.success() {
                String::new()
            } else {
                format!("; taking {} down failed too", w.project)
            };
            return Err(ModuleError::Failed {
                msg: format!("{why}; {serving}{down_msg}"),
                result,
            });
        }
        if let Err(e) = self.switch_to(sw, target, &w.project, host) {
            if let Some(o) = old {
                let _ = self.switch_to(sw, o, &want(o)?.project, host);
            }
            let _ = host.run(
                &format!("docker compose -p {} down 2>&1", quote(&w.project)),
                None,
            );
            return Err(ModuleError::Failed {
                msg: format!("switching to {} failed: {e}", target.word()),
                result,
            });
        }
        let live = format!("{}/{LIVE}", p.dir.trim_end_matches('/'));
        host.write_file(
            &live,
            format!("{}\n", target.word()).as_bytes(),
            &FileAttrs::default(),
        )?;
        if let Some(o) = old {
            let ow = want(o)?;
            let drain = secs(sw.drain.unwrap_or(2.0));
            run_ok(
                host,
                &format!("stopping {}", ow.project),
                &format!(
                    "sleep {drain}; docker compose -p {} stop 2>&1",
                    quote(&ow.project)
                ),
            )?;
            result.insert("stopped".into(), json!(ow.project));
        }
        if p.prune {
            prune(host, &mut result)?;
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}
