//! Apply: user, directories, the install, the link, `vm.max_map_count`,
//! the files, then the service: started, or restarted as one gated step
//! of a rolling restart.

use base64::Engine;
use serde_json::{json, Map, Value};
use std::time::Duration;

use crate::builtin::get_url::parse_checksum;
use crate::host::FileAttrs;
use crate::shell_quote::quote;
use crate::{Host, ModuleError, Outcome, Plan};

use super::cluster::{check_version, cluster_lock, set_allocation, wait_health, wait_joined};
use super::config::yml_text;
use super::layout::{api_base, Layout};
use super::params::{EsParams, Health, ReadOnlyPolicy};
use super::plan::{Planned, ServiceAction};
use super::{invalid, DEFAULT_WAIT, MAX_MAP_COUNT, SYSCTL_FILE};

/// Added to a failure after allocation went to `primaries`: how to undo it.
const ALLOCATION_LEFT: &str = "; shard allocation is still `primaries`: once the node is back, PUT /_cluster/settings {\"persistent\": {\"cluster.routing.allocation.enable\": null}}";

pub(super) fn apply(p: &EsParams, plan: Plan, host: &mut dyn Host) -> Result<Outcome, ModuleError> {
    let planned: Planned = plan.state_as()?;
    let l = &planned.layout;
    let mut result = plan.result.clone();
    let mut warnings: Vec<Value> = result
        .get("warnings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();

    set_up(p, &planned, host)?;
    max_map_count(p, &planned, host, &result, &mut warnings)?;
    if planned.link {
        let s = format!(
            "set -e\nln -sfn {home} {cur}.herd-new\nmv -T -f {cur}.herd-new {cur}\n",
            home = quote(&l.home),
            cur = quote(&l.current)
        );
        run_ok(host, &s, None, "switching the current link")?;
    }
    let conf_attrs = FileAttrs {
        owner: Some("root".into()),
        group: Some(p.user.clone()),
        mode: Some("0640".into()),
    };
    write_files(p, &planned, host, &conf_attrs)?;

    let base = api_base(l, p);
    let mut steps: Vec<String> = Vec::new();
    match planned.service {
        ServiceAction::None => {}
        ServiceAction::Start => start(p, l, &base, host, &mut steps, &mut result)?,
        ServiceAction::RollingRestart => {
            rolling_restart(p, l, &base, host, &mut steps, &mut result)?;
        }
    }
    if planned.service != ServiceAction::None {
        check_version(host, &base, &p.version).map_err(|m| failed(m, &result))?;
    }

    // The cluster formed: the bootstrap setting has done its work and
    // must not be there when the node starts again.
    if planned.bootstrap && planned.service != ServiceAction::None {
        let text = yml_text(p, l, false);
        host.write_file(&l.yml, text.as_bytes(), &conf_attrs)?;
        steps.push("cluster.initial_master_nodes removed".into());
    }

    result.insert("steps".into(), json!(steps));
    if !warnings.is_empty() {
        result.insert("warnings".into(), Value::Array(warnings));
    }
    result.insert("changed".into(), json!(true));
    Ok(Outcome::changed(result))
}

/// The task fails with what it has found so far in its result.
fn failed(msg: impl std::fmt::Display, result: &Map<String, Value>) -> ModuleError {
    ModuleError::Failed {
        msg: msg.to_string(),
        result: result.clone(),
    }
}

/// The system user, the data and log directories, and the install.
fn set_up(p: &EsParams, planned: &Planned, host: &mut dyn Host) -> Result<(), ModuleError> {
    if planned.create_user || planned.make_dirs {
        let u = quote(&p.user);
        let s = format!(
            "set -e\n\
             getent passwd -- {u} >/dev/null || useradd --system --user-group --no-create-home \
             --home-dir {root} --shell /usr/sbin/nologin -- {u}\n\
             mkdir -p -- {dd} {ld}\nchown -- {u}:{u} {dd} {ld}\nchmod 0750 -- {dd} {ld}\n",
            root = quote(&p.install_root),
            dd = quote(&p.data_dir),
            ld = quote(&p.log_dir),
        );
        run_ok(host, &s, None, "creating the user and directories")?;
    }
    if planned.install {
        install(p, &planned.layout, host)?;
    }
    Ok(())
}

/// vm.max_map_count: the file first (always), then the live value; a
/// kernel that refuses fails the task or, by choice, warns.
fn max_map_count(
    p: &EsParams,
    planned: &Planned,
    host: &mut dyn Host,
    result: &Map<String, Value>,
    warnings: &mut Vec<Value>,
) -> Result<(), ModuleError> {
    for (path, content) in &planned.files {
        if path == SYSCTL_FILE {
            host.write_file(path, content.as_bytes(), &FileAttrs::default())?;
        }
    }
    if !planned.raise_max_map_count {
        return Ok(());
    }
    let out = host.run(
        &format!("sysctl -w vm.max_map_count={MAX_MAP_COUNT} 2>&1 >/dev/null"),
        None,
    )?;
    if !out.success() {
        let why = format!(
            "the kernel refused vm.max_map_count={MAX_MAP_COUNT} ({}); {SYSCTL_FILE} is written \
             for the next boot",
            out.stdout_str().trim()
        );
        if p.max_map_count_read_only == ReadOnlyPolicy::Fail {
            return Err(failed(
                format!("{why}. Raise it on the machine, or set max_map_count_read_only: warn on hosts that cannot (containers)"),
                result,
            ));
        }
        warnings.push(json!(why));
    }
    Ok(())
}

/// The config files and the unit (the sysctl file is written earlier),
/// then daemon-reload and enable as planned.
fn write_files(
    p: &EsParams,
    planned: &Planned,
    host: &mut dyn Host,
    conf_attrs: &FileAttrs,
) -> Result<(), ModuleError> {
    for (path, content) in &planned.files {
        if path == SYSCTL_FILE {
            continue;
        }
        if *path == planned.layout.unit {
            host.write_file(path, content.as_bytes(), &FileAttrs::default())?;
        } else {
            run_ok(
                host,
                &format!("mkdir -p -- \"$(dirname -- {})\"", quote(path)),
                None,
                "creating the config directory",
            )?;
            host.write_file(path, content.as_bytes(), conf_attrs)?;
        }
    }
    if planned.unit_changed {
        run_ok(
            host,
            "systemctl daemon-reload",
            None,
            "systemctl daemon-reload",
        )?;
    }
    if planned.enable {
        run_ok(
            host,
            &format!("systemctl enable -- {} 2>&1", quote(&p.service)),
            None,
            "enabling the service",
        )?;
    }
    Ok(())
}

fn wait_timeout(p: &EsParams) -> Duration {
    Duration::from_secs(p.wait_timeout.unwrap_or(DEFAULT_WAIT).max(1))
}

/// A stopped node: start it, wait for it to join and for the health.
fn start(
    p: &EsParams,
    l: &Layout,
    base: &str,
    host: &mut dyn Host,
    steps: &mut Vec<String>,
    result: &mut Map<String, Value>,
) -> Result<(), ModuleError> {
    let (timeout, want) = (wait_timeout(p), p.wait_for_status);
    run_ok(
        host,
        &format!("systemctl start -- {} 2>&1", quote(&p.service)),
        None,
        "starting the service",
    )?;
    steps.push("started".into());
    wait_joined(host, p, l, base, timeout).map_err(|m| failed(m, result))?;
    steps.push("joined".into());
    let h = wait_health(host, base, want, timeout).map_err(|m| failed(m, result))?;
    steps.push(format!("health {}", want.word()));
    result.insert("health".into(), h);
    Ok(())
}

/// One step of a rolling restart, holding the cluster's lock: health,
/// allocation `primaries`, restart, the node back and at least yellow,
/// allocation back, health.
fn rolling_restart(
    p: &EsParams,
    l: &Layout,
    base: &str,
    host: &mut dyn Host,
    steps: &mut Vec<String>,
    result: &mut Map<String, Value>,
) -> Result<(), ModuleError> {
    let (timeout, want) = (wait_timeout(p), p.wait_for_status);
    let lock = cluster_lock(p.cluster_name.trim());
    let _turn = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Never take a node away from a cluster that is not at the
    // wanted health (another node may still be recovering).
    wait_health(host, base, want, timeout).map_err(|m| {
        failed(
            format!(
                "not restarting {}: the cluster is not healthy before the restart: {m}",
                l.node
            ),
            result,
        )
    })?;
    steps.push(format!("health {} before", want.word()));
    set_allocation(host, base, Some("primaries")).map_err(|m| failed(m, result))?;
    steps.push("allocation primaries".into());
    run_ok(
        host,
        &format!("systemctl restart -- {} 2>&1", quote(&p.service)),
        None,
        "restarting the service",
    )?;
    steps.push("restarted".into());
    let left = ALLOCATION_LEFT;
    wait_joined(host, p, l, base, timeout).map_err(|m| failed(format!("{m}{left}"), result))?;
    steps.push("joined".into());
    wait_health(host, base, Health::Yellow, timeout)
        .map_err(|m| failed(format!("{m}{left}"), result))?;
    steps.push("health yellow".into());
    set_allocation(host, base, None).map_err(|m| failed(format!("{m}{left}"), result))?;
    steps.push("allocation all".into());
    let h = wait_health(host, base, want, timeout).map_err(|m| failed(m, result))?;
    steps.push(format!("health {}", want.word()));
    result.insert("health".into(), h);
    Ok(())
}

pub(super) fn run_ok(
    host: &mut dyn Host,
    script: &str,
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<String, ModuleError> {
    let out = host.run(script, stdin)?;
    if out.success() {
        Ok(out.stdout_str())
    } else {
        let mut err = out.stderr_str().trim().to_string();
        if err.is_empty() {
            err = out.stdout_str().trim().to_string();
        }
        Err(ModuleError::failed(format!(
            "{what} failed (rc={}): {err}",
            out.rc
        )))
    }
}

/// Fetch (or take from stdin) the tarball, verify it, and unpack it next
/// to its final place, which it takes by one rename.
pub(super) fn install(p: &EsParams, l: &Layout, host: &mut dyn Host) -> Result<(), ModuleError> {
    let root = p.install_root.trim_end_matches('/');
    let top = format!("elasticsearch-{}", p.version);
    let checksum = match &p.checksum {
        Some(c) => parse_checksum(c).map_err(|e| invalid("checksum", e.to_string()))?,
        None => None,
    };
    let mut s = format!(
        "set -e\nmkdir -p {root}\nt=$(mktemp -d {tmp})\ntrap 'rm -rf \"$t\"' EXIT; trap 'exit 143' HUP INT TERM\n",
        root = quote(root),
        tmp = quote(&format!("{root}/.herd-es.XXXXXX"))
    );
    let stdin = match (&p.src_b64, &p.url) {
        (Some(b64), _) => {
            s.push_str("cat > \"$t/es.tar.gz\"\n");
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| invalid("_src_b64", e.to_string()))?,
            )
        }
        (None, Some(url)) => {
            if checksum.is_none() {
                return Err(invalid(
                    "checksum",
                    "a download needs `checksum` (sha256:... or sha512:...)",
                ));
            }
            s.push_str(&format!(
                "curl -fsSL --retry 2 -m 1800 -o \"$t/es.tar.gz\" {} || {{ echo 'download failed' >&2; exit 4; }}\n",
                quote(url)
            ));
            None
        }
        (None, None) => return Err(invalid("url", "give `url` (with `checksum`) or `src`")),
    };
    if let Some(c) = &checksum {
        s.push_str(&format!(
            "have=$({} \"$t/es.tar.gz\" | cut -d' ' -f1)\n\
             [ \"$have\" = {} ] || {{ echo \"checksum mismatch: {}:$have\" >&2; exit 5; }}\n",
            c.tool,
            quote(&c.value),
            c.alg
        ));
    }
    s.push_str(&format!(
        "mkdir \"$t/x\"\ntar -xzf \"$t/es.tar.gz\" -C \"$t/x\"\n\
         [ -x \"$t/x/\"{top}/bin/elasticsearch ] || {{ echo 'the tarball has no '{top}'/bin/elasticsearch' >&2; exit 6; }}\n\
         chown -R -- {u}:{u} \"$t/x/\"{top}\n\
         rm -rf {home}\nmv \"$t/x/\"{top} {home}\n",
        top = quote(&top),
        u = quote(&p.user),
        home = quote(&l.home)
    ));
    run_ok(host, &s, stdin.as_deref(), "installing Elasticsearch")?;
    Ok(())
}
