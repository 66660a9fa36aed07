//! The engine runs a module it was given rather than one it knows: a
//! module defined here (not in the built-in registry) declares a free-form
//! argument, a controller file, a controller directory and inventory
//! access, and the loader, the validator and the executor honour each
//! declaration by asking the module, never by its name.

use std::path::{Path, PathBuf};

use herdsman_modules::capability::{ControllerInput, HostSide, Ship};
use herdsman_modules::inventory::InventoryView;
use herdsman_modules::{Host, Module, ModuleError, Outcome, Plan, Registry};
use serde::Deserialize;

use crate::app::{load_project, load_project_with};
use crate::executor::RunOptions;
use crate::output::{Event, EventSink, Status};

/// Reports, as its plan's change lines, what the engine passed it.
struct Probe;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProbeParams {
    #[serde(rename = "_raw_params")]
    raw: Option<String>,
    /// Left here only when the file is on the host.
    src: Option<String>,
    content: Option<String>,
    #[serde(rename = "_content_b64")]
    content_b64: Option<String>,
    #[serde(rename = "_src_path")]
    src_path: Option<String>,
    #[serde(default)]
    remote_src: bool,
    into: Option<String>,
    #[serde(rename = "_inventory")]
    inventory: Option<InventoryView>,
}

impl Module for Probe {
    const NAME: &'static str = "capability_probe";
    type Params = ProbeParams;
    const FREE_FORM: bool = true;
    const NEEDS_INVENTORY: bool = true;
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[
        ControllerInput::File {
            param: "src",
            ship: Ship::Text {
                text: "content",
                binary: "_content_b64",
            },
            host_side: &[HostSide::Set("remote_src")],
            checked_before_run: true,
            decrypt: Some("decrypt"),
            tree: None,
        },
        ControllerInput::Directory { param: "into" },
    ];

    fn plan(&self, p: &ProbeParams, _host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        if let Some(raw) = &p.raw {
            plan = plan.change(format!("raw: {raw}"));
        }
        if let Some(content) = &p.content {
            plan = plan.change(format!("content: {}", content.trim_end()));
        }
        if let Some(b64) = &p.content_b64 {
            plan = plan.change(format!("content_b64: {b64}"));
        }
        if let Some(path) = &p.src_path {
            let name = Path::new(path).file_name().map(|n| n.to_string_lossy());
            plan = plan.change(format!("src_path: {}", name.unwrap_or_default()));
        }
        if let Some(into) = &p.into {
            plan = plan.change(format!("into absolute: {}", Path::new(into).is_absolute()));
        }
        if let Some(view) = &p.inventory {
            let groups: Vec<&str> = view.groups.keys().map(String::as_str).collect();
            plan = plan.change(format!("inventory: {} in {}", view.host, groups.join(",")));
        }
        if let Some(src) = &p.src {
            plan = plan.change(format!("src on the host: {src}"));
        }
        if p.remote_src {
            plan = plan.change("remote_src");
        }
        Ok(plan)
    }

    fn apply(
        &self,
        _p: &ProbeParams,
        _plan: Plan,
        _host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::changed(serde_json::Map::new()))
    }
}

static PROBE: Probe = Probe;

/// A playbook directory with `files/note.txt` and a local inventory.
fn project_dir(tasks: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("files")).expect("files/");
    std::fs::write(
        dir.path().join("files/note.txt"),
        "hello from the controller\n",
    )
    .expect("note");
    std::fs::write(dir.path().join("files/blob.bin"), [0u8, 1, 2, 255]).expect("blob");
    let inventory = dir.path().join("hosts.ini");
    std::fs::write(&inventory, "[web]\nlocalhost ansible_connection=local\n").expect("inv");
    let playbook = dir.path().join("site.yml");
    std::fs::write(
        &playbook,
        format!("- hosts: web\n  gather_facts: false\n  tasks:\n{tasks}"),
    )
    .expect("playbook");
    (dir, playbook, inventory)
}

/// Run the playbook with the built-ins plus the probe; every task's
/// change lines, in order.
fn run_with_probe(playbook: PathBuf, inventory: PathBuf) -> Vec<(Status, Vec<String>)> {
    run_with(&PROBE, playbook, inventory)
}

/// Run the playbook with the built-ins plus `module`; every task's
/// status and change lines, in order.
fn run_with(
    module: &'static dyn herdsman_modules::DynModule,
    playbook: PathBuf,
    inventory: PathBuf,
) -> Vec<(Status, Vec<String>)> {
    let modules = Registry::builtin().with(module);
    let project = match load_project_with(&[playbook], &[inventory], modules) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    let opts = RunOptions {
        forks: 1,
        ..RunOptions::default()
    };
    let (sink, events): (EventSink, _) = EventSink::collecting();
    let recap = crate::executor::run(&project, &opts, &sink).expect("runs");
    drop(sink);
    assert_eq!(recap.exit_code(), 0);
    events
        .try_iter()
        .filter_map(|e| match e {
            Event::HostResult(r) => Some((r.status, r.changes)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_module_from_outside_the_registry_declares_its_needs_and_runs() {
    let (_dir, playbook, inventory) = project_dir(
        "    - capability_probe: echo  'two  spaces'
      args:
        src: note.txt
        into: fetched
    - capability_probe:
        src: blob.bin
    - capability_probe:
        src: /nowhere/on/the/controller
        remote_src: true
",
    );
    let results = run_with_probe(playbook, inventory);
    let changes: Vec<Vec<String>> = results.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        changes,
        [
            vec![
                "raw: echo  'two  spaces'",
                "content: hello from the controller",
                "src_path: note.txt",
                "into absolute: true",
                "inventory: localhost in all,ungrouped,web",
            ],
            vec![
                "content_b64: AAEC/w==",
                "src_path: blob.bin",
                "inventory: localhost in all,ungrouped,web",
            ],
            vec![
                "inventory: localhost in all,ungrouped,web",
                "src on the host: /nowhere/on/the/controller",
                "remote_src",
            ],
        ]
        .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
    );
    assert!(
        results.iter().all(|(s, _)| *s == Status::Changed),
        "{results:?}"
    );
}

#[test]
fn the_builtin_registry_does_not_know_the_probe() {
    let (_dir, playbook, inventory) = project_dir("    - capability_probe: echo hi\n");
    let Err(errors) = load_project(&[playbook], &[inventory]) else {
        panic!("loaded a module that is not registered");
    };
    assert!(
        errors
            .iter()
            .any(|d| d.message.contains("capability_probe")),
        "{errors:?}"
    );
}

#[test]
fn a_declared_controller_file_is_checked_before_the_run() {
    let (_dir, playbook, inventory) =
        project_dir("    - capability_probe:\n        src: missing.txt\n");
    let modules = Registry::builtin().with(&PROBE);
    let Err(errors) = load_project_with(&[playbook], &[inventory], modules) else {
        panic!("a missing controller file passed validation");
    };
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages, ["file `missing.txt` not found"]);
}

/// A controller directory reaches `copy` as a tree: the directory itself
/// without a trailing slash, its contents with one; a second run changes
/// nothing.
#[test]
fn a_controller_directory_is_copied_whole() {
    let out = tempfile::tempdir().expect("tempdir");
    let (one, two) = (out.path().join("one"), out.path().join("two"));
    let (dir, playbook, inventory) = project_dir(&format!(
        "    - copy: src=site dest={}\n    - copy: src=site/ dest={}/ directory_mode=0750\n",
        one.display(),
        two.display()
    ));
    let site = dir.path().join("files/site");
    std::fs::create_dir_all(site.join("sub")).expect("mkdir");
    std::fs::write(site.join("a.txt"), "a\n").expect("write");
    std::fs::write(site.join("sub/b.txt"), "b\n").expect("write");
    let first = run_with_probe(playbook.clone(), inventory.clone());
    assert!(
        first.iter().all(|(s, _)| *s == Status::Changed),
        "{first:?}"
    );
    assert_eq!(
        std::fs::read_to_string(one.join("site/sub/b.txt"))
            .ok()
            .as_deref(),
        Some("b\n")
    );
    assert!(two.join("a.txt").exists() && !two.join("site").exists());
    let again = run_with_probe(playbook, inventory);
    assert!(again.iter().all(|(s, _)| *s == Status::Ok), "{again:?}");
}

/// Reports, as its plan's change lines, the controller context the engine
/// passed it for declaring `CONTROLLER_PROCESS`.
struct ControllerProbe;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ControllerProbeParams {
    #[serde(rename = "_controller")]
    controller: Option<herdsman_modules::relay::ControllerContext>,
}

impl Module for ControllerProbe {
    const NAME: &'static str = "controller_probe";
    type Params = ControllerProbeParams;
    const CONTROLLER_PROCESS: bool = true;

    fn plan(&self, p: &ControllerProbeParams, _host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let Some(cx) = &p.controller else {
            return Ok(Plan::empty().change("no controller context"));
        };
        let search: Vec<String> = cx
            .search
            .iter()
            .map(|d| {
                let d = Path::new(d);
                let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
                format!("{}:{}", d.is_absolute(), name.unwrap_or_default())
            })
            .collect();
        Ok(Plan::empty()
            .change(format!("relay: {}", cx.relay[1..].join(" ")))
            .change(format!("check: {}", cx.check_mode))
            .change(format!("sudo: {:?}", cx.become_user))
            .change(format!("delegated: {}", cx.delegated))
            .change(format!("search: {}", search.join(" "))))
    }

    fn apply(
        &self,
        _p: &ControllerProbeParams,
        _plan: Plan,
        _host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::default())
    }
}

static CONTROLLER_PROBE: ControllerProbe = ControllerProbe;

#[test]
fn a_controller_process_module_is_told_how_to_reach_the_host() {
    let (dir, playbook, inventory) = project_dir(
        "    - controller_probe: {}
      check_mode: true
    - controller_probe: {}
      become: true
      become_user: deploy
      delegate_to: localhost
",
    );
    let changes: Vec<Vec<String>> = run_with(&CONTROLLER_PROBE, playbook, inventory)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let relay = format!("relay: {}", herdsman_modules::relay::SUBCOMMAND);
    let search = format!(
        "search: true:files true:{}",
        dir.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    assert_eq!(
        changes,
        [
            vec![
                relay.clone(),
                "check: true".into(),
                "sudo: None".into(),
                "delegated: false".into(),
                search.clone(),
            ],
            vec![
                relay,
                "check: false".into(),
                "sudo: Some(\"deploy\")".into(),
                "delegated: true".into(),
                search,
            ],
        ]
    );
}
