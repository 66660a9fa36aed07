//! `service_facts`: the host's services as the fact `services`, keyed by
//! name, each with `name`, `state`, `status` and `source`, read as
//! Ansible reads them: `service --status-all` (sysv scripts, `source:
//! sysv`) where there is no chkconfig or OpenRC, then systemd's
//! `list-units` and `list-unit-files` (`source: systemd`).
//!
//! One probe runs all of them; a unit file with no loaded unit gets its
//! `ActiveState` from one more `systemctl show` for all such units
//! together (Ansible asks once per unit). It never changes anything: the
//! plan is empty and carries `ansible_facts`, which the engine makes the
//! host's facts.
//!
//! Differences from Ansible: upstart, chkconfig (Red Hat), OpenRC and the
//! BSD and AIX service managers are not read.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// `service_facts` takes no parameters.
pub struct ServiceFactsParams {}

/// The `service_facts` module.
pub struct ServiceFacts;

const PROBE: &str = "export LC_ALL=C\n\
if command -v service >/dev/null 2>&1 && ! command -v chkconfig >/dev/null 2>&1 && ! command -v rc-status >/dev/null 2>&1; then\n\
  echo '@@sysv'; service --status-all 2>/dev/null\n\
fi\n\
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then\n\
  echo '@@units'; systemctl list-units --no-pager --type service --all --plain\n\
  echo '@@files'; systemctl list-unit-files --no-pager --type service --all\n\
fi\n\
exit 0\n";

/// Systemd's states that say more than the unit's own state.
const BAD_STATES: [&str; 3] = ["not-found", "masked", "failed"];

/// The lines of the probe's section `name`.
fn section<'a>(out: &'a str, name: &str) -> Option<impl Iterator<Item = &'a str>> {
    let mark = format!("@@{name}\n");
    let start = out.find(&mark)? + mark.len();
    let rest = &out[start..];
    let end = rest.find("\n@@").map_or(rest.len(), |i| i + 1);
    Some(rest[..end].lines())
}

fn entry(name: &str, state: &str, status: Option<&str>, source: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("state".into(), json!(state));
    if let Some(s) = status {
        m.insert("status".into(), json!(s));
    }
    m.insert("source".into(), json!(source));
    Value::Object(m)
}

/// `service --status-all` lines: ` [ + ]  cron`.
fn sysv(out: &str, services: &mut Map<String, Value>) {
    for line in section(out, "sysv").into_iter().flatten() {
        let t = line.trim_start();
        let (state, rest) = if let Some(r) = t.strip_prefix("[ + ]") {
            ("running", r)
        } else if let Some(r) = t.strip_prefix("[ - ]") {
            ("stopped", r)
        } else {
            continue;
        };
        let name = rest.trim_start();
        if rest.len() == name.len() || name.is_empty() {
            continue;
        }
        services.insert(name.into(), entry(name, state, None, "sysv"));
    }
}

/// systemd's loaded units, then the unit files; returns the unit files
/// with no loaded unit (their state must be asked for).
fn systemd(out: &str, services: &mut Map<String, Value>) -> Vec<(String, String)> {
    for line in section(out, "units").into_iter().flatten() {
        if !line.contains(".service") {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let status = BAD_STATES
            .iter()
            .find(|b| f[..f.len() - 1].contains(b))
            .copied()
            .unwrap_or(f[2]);
        let state = if f[3] == "running" {
            "running"
        } else {
            "stopped"
        };
        services.insert(f[0].into(), entry(f[0], state, Some(status), "systemd"));
    }
    let mut unloaded = Vec::new();
    for line in section(out, "files").into_iter().flatten() {
        if !line.contains(".service") {
            continue;
        }
        let mut w = line.split_whitespace();
        let (Some(name), Some(status)) = (w.next(), w.next()) else {
            continue;
        };
        match services.get_mut(name) {
            None => unloaded.push((name.to_string(), status.to_string())),
            Some(Value::Object(s)) => {
                let bad = s
                    .get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|v| BAD_STATES.contains(&v));
                if !bad {
                    s.insert("status".into(), json!(status));
                }
            }
            Some(_) => {}
        }
    }
    unloaded
}

impl ServiceFacts {
    fn result(host: &mut dyn Host) -> Result<Map<String, Value>, ModuleError> {
        let out = host.run(PROBE, None)?;
        let text = out.stdout_str();
        let mut services = Map::new();
        sysv(&text, &mut services);
        let unloaded = systemd(&text, &mut services);
        if !unloaded.is_empty() {
            let names: Vec<String> = unloaded.iter().map(|(n, _)| quote(n)).collect();
            let out = host.run(
                &format!(
                    "LC_ALL=C systemctl show --property=Id,ActiveState -- {}",
                    names.join(" ")
                ),
                None,
            )?;
            let shown = out.stdout_str();
            // Blocks in the order asked, separated by blank lines.
            let states: Vec<Option<String>> = shown
                .split("\n\n")
                .map(|b| {
                    b.lines()
                        .find_map(|l| l.strip_prefix("ActiveState="))
                        .map(str::to_string)
                })
                .collect();
            for (i, (name, status)) in unloaded.iter().enumerate() {
                let state = states
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|s| !s.is_empty() && out.success())
                    .unwrap_or_else(|| "unknown".into());
                services.insert(name.clone(), entry(name, &state, Some(status), "systemd"));
            }
        }
        let mut result = Map::new();
        if services.is_empty() {
            result.insert("skipped".into(), json!(true));
            result.insert(
                "msg".into(),
                json!("Failed to find any services. This can be due to privileges or some other configuration issue."),
            );
            return Ok(result);
        }
        let mut facts = Map::new();
        facts.insert("services".into(), Value::Object(services));
        result.insert("ansible_facts".into(), Value::Object(facts));
        Ok(result)
    }
}

impl Module for ServiceFacts {
    const NAME: &'static str = "service_facts";
    const DOC_SHORT: &'static str =
        "Read the host's services (systemd and sysv) into the fact `services`.";
    const DOC_LONG: &'static str = r##"Never changes the host. `services` is keyed by the name the service manager uses (`cron.service` for systemd, `cron` for a sysv script), each with `name`, `state` (`running`, `stopped`, or systemd's active state for a unit that is not loaded), `status` (systemd's enablement: `enabled`, `disabled`, `static`, `masked`, ...) and `source` (`systemd` or `sysv`)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Read the services
  service_facts:
- name: Is nginx running?
  debug:
    msg: "{{ services['nginx.service'].state }}"
  when: "'nginx.service' in services"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "ansible_facts",
        "`services`: by name, `name`, `state`, `status`, `source` (also set as a fact of the host)",
    )];
    type Params = ServiceFactsParams;

    fn plan(&self, _p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Ok(Plan {
            result: Self::result(host)?,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        _host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::read_in_plan(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, FakeHost, Match};
    use crate::DynModule;

    const OUT: &str = "@@sysv\n [ + ]  cron\n [ - ]  procps\n@@units\n\
cron.service             loaded    active   running Regular background program processing daemon\n\
ssh.service              loaded    failed   failed  OpenBSD Secure Shell server\n\
gone.service             not-found inactive dead    gone.service\n\
\n\
3 loaded units listed.\n\
@@files\n\
UNIT FILE                 STATE           VENDOR PRESET\n\
cron.service              enabled         enabled\n\
ssh.service               enabled         enabled\n\
fstrim.service            static          -\n\
rescue.service            masked          enabled\n\
\n\
4 unit files listed.\n";

    #[test]
    fn reads_sysv_and_systemd_like_ansible() {
        let mut h = FakeHost::new()
            .answer(Match::contains("@@units"), 0, OUT, "")
            .answer(
                Match::contains("systemctl show"),
                0,
                "Id=fstrim.service\nActiveState=inactive\n\nId=rescue.service\nActiveState=\n",
                "",
            );
        let pl = DynModule::plan(&ServiceFacts, &json!({}), &mut h).expect("plan");
        assert!(pl.is_empty(), "never a change, in check mode too");
        assert_eq!(h.scripts.len(), 2);
        assert!(h.scripts[1].ends_with("-- fstrim.service rescue.service"));
        let s = &get(&pl.result, "ansible_facts")["services"];
        assert_eq!(
            s["cron"],
            json!({"name": "cron", "state": "running", "source": "sysv"})
        );
        assert_eq!(s["procps"]["state"], "stopped");
        assert_eq!(
            s["cron.service"],
            json!({"name": "cron.service", "state": "running", "status": "enabled", "source": "systemd"})
        );
        // A bad state wins over the unit file's.
        assert_eq!(s["ssh.service"]["status"], "failed");
        assert_eq!(s["ssh.service"]["state"], "stopped");
        assert_eq!(s["gone.service"]["status"], "not-found");
        assert_eq!(s["fstrim.service"]["state"], "inactive");
        assert_eq!(s["fstrim.service"]["status"], "static");
        assert_eq!(s["rescue.service"]["state"], "unknown");
    }

    #[test]
    fn nothing_found_is_skipped_with_ansibles_message() {
        let mut h = FakeHost::new().answer(Match::contains("@@units"), 0, "", "");
        let pl = DynModule::plan(&ServiceFacts, &json!(null), &mut h).expect("plan");
        assert_eq!(get(&pl.result, "skipped"), true);
        assert!(get(&pl.result, "ansible_facts").is_null());
        let e = ServiceFacts.check_params(&json!({"name": "x"}));
        assert!(matches!(e, Err(crate::ParamError::Unknown { .. })));
    }
}
