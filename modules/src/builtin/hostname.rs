//! `hostname`: the host's name, both the running (transient) one and the
//! one kept for the next boot in `/etc/hostname`.
//!
//! The plan reads `uname -n` and `/etc/hostname` in one round trip. Apply
//! uses `hostnamectl set-hostname` when the host has it and `use` is unset
//! or `systemd`; otherwise, or when hostnamectl fails (no D-Bus, no
//! hostnamed), it writes `/etc/hostname` atomically and runs `hostname`.
//! Every Linux strategy Ansible knows is accepted; all but `systemd` do the
//! `/etc/hostname` + `hostname` dance (`redhat`/`sles` files under
//! /etc/sysconfig are not edited). Non-Linux strategies are refused.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::host::FileAttrs;
use crate::probe::tagged;
use crate::shell_quote::{join, quote};
use crate::textfile::run_checked;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// How `hostname` sets the name.
pub enum Strategy {
    /// `hostnamectl set-hostname`.
    Systemd,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `debian` strategy).
    Debian,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `generic` strategy).
    Generic,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `alpine` strategy).
    Alpine,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `openrc` strategy).
    Openrc,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `redhat` strategy).
    Redhat,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `sles` strategy).
    Sles,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `freebsd` strategy).
    Freebsd,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `macos` strategy).
    Macos,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `macosx` strategy).
    Macosx,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `darwin` strategy).
    Darwin,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `openbsd` strategy).
    Openbsd,
    /// Write `/etc/hostname` and run `hostname` (Ansible's `solaris` strategy).
    Solaris,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `hostname`: what `herd doc` shows, and what the parser takes.
pub struct HostnameParams {
    /// The host name to set.
    pub name: String,
    /// The strategy: `systemd` (or unset) runs `hostnamectl set-hostname` where the host has
    /// it; the others write `/etc/hostname` and run `hostname`.
    #[serde(rename = "use")]
    pub use_: Option<Strategy>,
}

/// The `hostname` module.
pub struct Hostname;

const FILE: &str = "/etc/hostname";

/// What the probe found: the running name and the saved one.
fn probe(host: &mut dyn Host) -> Result<(String, String, bool), ModuleError> {
    let out = host.run(
        &format!(
            "echo \"RUN $(uname -n)\"\n\
             if [ -r {FILE} ]; then echo \"SAVED $(head -n 1 {FILE})\"; fi\n\
             command -v hostnamectl >/dev/null 2>&1 && echo HCTL yes\n"
        ),
        None,
    )?;
    let text = out.stdout_str();
    let running = tagged(&text, "RUN").unwrap_or_default().trim().to_string();
    let saved = tagged(&text, "SAVED")
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok((running, saved, tagged(&text, "HCTL").is_some()))
}

fn facts(name: &str) -> Value {
    json!({
        "ansible_hostname": name.split('.').next().unwrap_or(name),
        "ansible_nodename": name,
    })
}

impl Module for Hostname {
    const NAME: &'static str = "hostname";
    const DOC_SHORT: &'static str = "Set the host's name.";
    const DOC_LONG: &'static str = r##"Linux only."##;
    const DOC_EXAMPLE: &'static str = r##"- hostname:
    name: "{{ inventory_hostname }}"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "ansible_facts",
        "`ansible_hostname` and `ansible_nodename`.",
    )];
    type Params = HostnameParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let name = p.name.trim();
        let bad_name = name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        let non_linux = matches!(
            p.use_,
            Some(
                Strategy::Freebsd
                    | Strategy::Macos
                    | Strategy::Macosx
                    | Strategy::Darwin
                    | Strategy::Openbsd
                    | Strategy::Solaris
            )
        );
        if bad_name || non_linux {
            return Err(ModuleError::Params(ParamError::Invalid {
                module: Self::NAME,
                path: if bad_name { "name" } else { "use" }.into(),
                reason: if bad_name {
                    "not a valid host name".into()
                } else {
                    "only Linux strategies are supported".into()
                },
            }));
        }
        let (running, saved, hctl) = probe(host)?;
        let mut plan = Plan::default();
        if running != name {
            plan.changes
                .push(format!("running hostname {running} -> {name}"));
        }
        if saved != name {
            plan.changes.push(format!("{FILE}: {saved} -> {name}"));
        }
        let mut result = Map::new();
        result.insert("name".into(), json!(name));
        result.insert("ansible_facts".into(), facts(name));
        plan.result = result;
        plan.state = json!({
            "hostnamectl": hctl && matches!(p.use_, None | Some(Strategy::Systemd)),
        });
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let name = p.name.trim();
        let use_hctl = plan.state["hostnamectl"].as_bool().unwrap_or(false);
        let done = use_hctl
            && host
                .run(&join(&["hostnamectl", "set-hostname", name]), None)?
                .success();
        if !done {
            host.write_file(
                FILE,
                format!("{name}\n").as_bytes(),
                &FileAttrs::with_mode("0644"),
            )?;
            run_checked(
                host,
                "set the hostname",
                &format!("hostname {}", quote(name)),
            )?;
        }
        let (running, saved, _) = probe(host)?;
        if running != name || saved != name {
            return Err(ModuleError::failed(format!(
                "setting the hostname to {name} did not stick: running {running}, {FILE} {saved}"
            )));
        }
        let mut result = plan.result;
        result.insert("changed".into(), json!(true));
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DynModule;

    #[test]
    fn parameters_and_plan() {
        assert!(Hostname
            .check_params(&json!({"name": "web-1", "use": "systemd"}))
            .is_ok());
        assert!(Hostname
            .check_params(&json!({"name": "web-1", "use": "nope"}))
            .is_err());
        let mut h = crate::testing::host();
        for bad in [
            json!({"name": "a b"}),
            json!({"name": "x", "use": "freebsd"}),
        ] {
            assert!(matches!(
                DynModule::plan(&Hostname, &bad, &mut h),
                Err(ModuleError::Params(_))
            ));
        }
        // The local machine's own name: the running one is there; the plan
        // only asks for /etc/hostname to change if it disagrees.
        let (running, saved, _) = probe(&mut h).expect("probe");
        let pl = DynModule::plan(&Hostname, &json!({"name": running}), &mut h).expect("plan");
        assert_eq!(pl.is_empty(), saved == running, "{:?}", pl.changes);
    }
}
