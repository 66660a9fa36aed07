//! The plan: what the probe found against what the parameters and the
//! inventory want, kept as [`Planned`] for apply.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::builtin::get_url::parse_checksum;
use crate::textfile;
use crate::{Host, ModuleError, Plan};

use super::config::{
    default_heap, heap_text, parse_heap, sysctl_text, unit_text, without_bootstrap, yml_text,
};
use super::layout::{layout, Layout};
use super::params::{EsParams, ReadOnlyPolicy};
use super::probe::{formed_cluster, parse_probe, probe_script, Probed};
use super::{invalid, MAX_MAP_COUNT, SYSCTL_FILE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum ServiceAction {
    None,
    Start,
    RollingRestart,
}

/// What the plan decided, for apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Planned {
    pub(super) layout: Layout,
    pub(super) create_user: bool,
    pub(super) make_dirs: bool,
    pub(super) install: bool,
    pub(super) link: bool,
    /// (path, content)
    pub(super) files: Vec<(String, String)>,
    pub(super) unit_changed: bool,
    pub(super) raise_max_map_count: bool,
    pub(super) max_map_count_read_only: bool,
    pub(super) enable: bool,
    pub(super) service: ServiceAction,
    pub(super) bootstrap: bool,
    pub(super) heap: String,
}

pub(super) fn plan_file(
    plan: &mut Plan,
    planned: &mut Planned,
    path: &str,
    have: Option<&str>,
    want: String,
) {
    if have == Some(want.as_str()) {
        return;
    }
    plan.changes.push(format!(
        "{} {path}",
        if have.is_some() { "update" } else { "create" }
    ));
    if let Some(d) = textfile::diff(path, have.unwrap_or("").as_bytes(), want.as_bytes()) {
        plan.diffs.push(d);
    }
    planned.files.push((path.to_string(), want));
}

pub(super) fn plan(p: &EsParams, host: &mut dyn Host) -> Result<Plan, ModuleError> {
    let l = layout(p)?;
    let heap = p.heap.as_deref().map(parse_heap).transpose()?;
    if let Some(c) = &p.checksum {
        match parse_checksum(c).map_err(|e| invalid("checksum", e.to_string()))? {
            Some(c) if c.value.contains("://") => {
                return Err(invalid("checksum", "give the digest itself, not a URL"))
            }
            _ => {}
        }
    }
    let probed = probe_host(p, &l, host)?;
    let heap = heap.unwrap_or_else(|| default_heap(probed.mem_kb));
    let formed = probed
        .nodes
        .iter()
        .find_map(|(st, body)| formed_cluster(*st, body, p.cluster_name.trim()));
    // Only the nodes' answer decides, never a data directory (see the
    // module doc).
    let bootstrap = l.master && formed.is_none();

    let mut plan = Plan::default();
    let mut warnings = Vec::new();
    let mut planned = Planned {
        layout: l.clone(),
        create_user: !probed.user,
        make_dirs: !probed.dirs,
        install: !probed.installed,
        link: probed.current.as_deref() != Some(l.home.as_str()),
        files: Vec::new(),
        unit_changed: false,
        raise_max_map_count: false,
        max_map_count_read_only: false,
        enable: !probed.enabled,
        service: ServiceAction::None,
        bootstrap,
        heap: heap.clone(),
    };
    plan_install(p, &probed, &mut plan, &planned)?;
    plan_max_map_count(p, &probed, &mut plan, &mut planned, &mut warnings);
    let needs_restart = plan_config(p, &probed, &mut plan, &mut planned);
    planned.service = plan_service(p, &probed, needs_restart, &mut plan, &planned);

    plan.result.insert("node_name".into(), json!(l.node));
    plan.result.insert("roles".into(), json!(l.roles));
    plan.result.insert("seed_hosts".into(), json!(l.seed_hosts));
    plan.result.insert("heap".into(), json!(heap));
    plan.result.insert("bootstrap".into(), json!(bootstrap));
    plan.result.insert("cluster_uuid".into(), json!(formed));
    plan.result.insert("home".into(), json!(l.home));
    if !warnings.is_empty() {
        plan.result.insert("warnings".into(), json!(warnings));
    }
    plan.keep_state(&planned)?;
    Ok(plan)
}

/// The probe's one round trip, read; curl is needed for the cluster API.
fn probe_host(p: &EsParams, l: &Layout, host: &mut dyn Host) -> Result<Probed, ModuleError> {
    let out = host.run(&probe_script(p, l), None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "looking at the host failed (rc={}): {}",
            out.rc,
            out.stderr_str().trim_end()
        )));
    }
    let probed = parse_probe(&out.stdout_str(), l.node_addresses.len())?;
    if !probed.curl {
        return Err(ModuleError::failed(
            "elasticsearch_cluster needs curl on the host for the cluster API (install curl)",
        ));
    }
    Ok(probed)
}

/// The user, the directories, the install and the current link.
fn plan_install(
    p: &EsParams,
    probed: &Probed,
    plan: &mut Plan,
    planned: &Planned,
) -> Result<(), ModuleError> {
    let l = &planned.layout;
    if planned.create_user {
        plan.changes.push(format!("create system user {}", p.user));
    }
    if planned.make_dirs {
        plan.changes.push(format!(
            "create {} and {} owned by {}",
            p.data_dir, p.log_dir, p.user
        ));
    }
    if planned.install {
        let from = match (&p.src_path, &p.url) {
            (Some(s), _) => s.clone(),
            (None, Some(u)) => crate::http::redact(u),
            (None, None) if p.src_b64.is_some() => "the controller".into(),
            (None, None) => {
                return Err(invalid(
                    "url",
                    format!(
                        "{} is not installed: give `url` (with `checksum`) or `src`",
                        l.home
                    ),
                ))
            }
        };
        plan.changes.push(format!(
            "install Elasticsearch {} into {} from {from}",
            p.version, l.home
        ));
    }
    if planned.link {
        plan.changes.push(format!(
            "link {} -> {} (was {})",
            l.current,
            l.home,
            probed.current.as_deref().unwrap_or("absent")
        ));
    }
    Ok(())
}

/// vm.max_map_count: the file always, the live value when lower.
fn plan_max_map_count(
    p: &EsParams,
    probed: &Probed,
    plan: &mut Plan,
    planned: &mut Planned,
    warnings: &mut Vec<String>,
) {
    plan_file(
        plan,
        planned,
        SYSCTL_FILE,
        probed.sysctl.as_deref(),
        sysctl_text(),
    );
    let Some((writable, live)) = probed.max_map_count else {
        return;
    };
    if live >= MAX_MAP_COUNT {
        return;
    }
    if writable {
        plan.changes
            .push(format!("vm.max_map_count {live} -> {MAX_MAP_COUNT}"));
        planned.raise_max_map_count = true;
    } else if p.max_map_count_read_only == ReadOnlyPolicy::Fail {
        plan.changes
            .push(format!("vm.max_map_count {live} -> {MAX_MAP_COUNT}"));
        planned.raise_max_map_count = true;
        planned.max_map_count_read_only = true;
        warnings.push(format!(
            "vm.max_map_count is read-only here ({live}): applying will fail \
             (max_map_count_read_only: warn accepts it)"
        ));
    } else {
        warnings.push(format!(
            "vm.max_map_count is {live} and read-only here (a container?): \
             Elasticsearch wants {MAX_MAP_COUNT}; the host's kernel must be raised"
        ));
    }
}

/// `elasticsearch.yml`, the heap options and the unit; `true` when the
/// node must restart for them (or for a new install or link).
fn plan_config(p: &EsParams, probed: &Probed, plan: &mut Plan, planned: &mut Planned) -> bool {
    let l = planned.layout.clone();
    let want_yml = yml_text(p, &l, planned.bootstrap);
    // A new version's config starts from nothing; diff it against the
    // running version's so the change is readable.
    let have_yml = probed.yml.as_deref().or(if probed.installed {
        None
    } else {
        probed.current_yml.as_deref()
    });
    let config_differs = match have_yml {
        Some(h) => without_bootstrap(h) != without_bootstrap(&want_yml),
        None => true,
    };
    // Without a real change, an old bootstrap line is only dropped
    // from the file (config_differs ignores it): no restart for it.
    let yml_to_write = want_yml;
    if probed.yml.as_deref() != Some(yml_to_write.as_str()) {
        plan.changes.push(format!(
            "{} {}",
            if probed.yml.is_some() {
                "update"
            } else {
                "create"
            },
            l.yml
        ));
        if let Some(d) = textfile::diff(
            &l.yml,
            have_yml.unwrap_or("").as_bytes(),
            yml_to_write.as_bytes(),
        ) {
            plan.diffs.push(d);
        }
        planned.files.push((l.yml.clone(), yml_to_write));
    }
    let heap_before = planned.files.len();
    let heap = heap_text(&planned.heap);
    plan_file(plan, planned, &l.heap_file, probed.heap.as_deref(), heap);
    let heap_changed = planned.files.len() > heap_before;
    let unit_before = planned.files.len();
    plan_file(
        plan,
        planned,
        &l.unit,
        probed.unit.as_deref(),
        unit_text(p, &l),
    );
    planned.unit_changed = planned.files.len() > unit_before;
    if planned.enable {
        plan.changes.push(format!("enable {}", p.service));
    }
    config_differs || heap_changed || planned.unit_changed || planned.link || planned.install
}

/// Start a stopped node; restart a running one that needs it, as one
/// step of a rolling restart.
fn plan_service(
    p: &EsParams,
    probed: &Probed,
    needs_restart: bool,
    plan: &mut Plan,
    planned: &Planned,
) -> ServiceAction {
    let l = &planned.layout;
    if !probed.active {
        plan.changes.push(format!(
            "start {} and wait for {} to join and for health {}",
            p.service,
            l.node,
            p.wait_for_status.word()
        ));
        ServiceAction::Start
    } else if needs_restart {
        plan.changes.push(format!(
            "rolling restart of {}: allocation primaries, restart, wait for the node and health, allocation back",
            l.node
        ));
        ServiceAction::RollingRestart
    } else {
        ServiceAction::None
    }
}
