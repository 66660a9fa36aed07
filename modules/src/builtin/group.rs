//! `group`: make sure a local group exists with a given gid, or does not.
//!
//! The plan is one `getent group` round trip; apply runs `groupadd`,
//! `groupmod` or `groupdel`. Result keys as Ansible's: `name`, `state`,
//! `gid`, `system`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::{run_argv, tag_lines, tagged_all, Group};
use crate::params::{de_bool, de_opt_u64};
use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum GroupState {
    #[default]
    /// It should be there.
    Present,
    /// It should not be there.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `group`: what `herd doc` shows, and what the parser takes.
pub struct GroupParams {
    /// The group's name.
    pub name: String,
    /// The group's gid.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub gid: Option<u64>,
    /// `present`: the group exists; `absent`: it does not.
    #[serde(default)]
    pub state: GroupState,
    /// Create a system group (a gid from the system range).
    #[serde(default, deserialize_with = "de_bool")]
    pub system: bool,
    /// Allow a `gid` another group has.
    #[serde(default, deserialize_with = "de_bool")]
    pub non_unique: bool,
    /// With `state: absent`, remove the group even when it is a user's primary group.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Accepted; changes nothing (the shadow tools already edit the local files).
    #[serde(default, deserialize_with = "de_bool")]
    pub local: bool,
}

/// The `group` module.
pub struct GroupModule;

/// What `apply` does, decided by the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
enum Action {
    Create,
    SetGid,
    Delete,
}

/// The group named `name` from `getent group NAME` output, if it exists.
pub fn probe_group(host: &mut dyn Host, name: &str) -> Result<Option<Group>, ModuleError> {
    let out = host.run(
        &tag_lines("G", &format!("getent group -- {}", quote(name))),
        None,
    )?;
    let text = out.stdout_str();
    let group = tagged_all(&text, "G")
        .filter_map(Group::parse)
        .find(|g| g.name == name);
    Ok(group)
}

impl Module for GroupModule {
    const NAME: &'static str = "group";
    const DOC_SHORT: &'static str = "Manage a local group.";
    const DOC_EXAMPLE: &'static str = r##"- group:
    name: app
    gid: 2001
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "The group."),
        ("gid", "Its gid."),
        ("state", "`present` or `absent`."),
    ];
    type Params = GroupParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let current = probe_group(host, &p.name)?;
        let mut plan = Plan::default();
        let mut result = Map::new();
        result.insert("name".into(), json!(p.name));
        result.insert("system".into(), json!(p.system));
        let action = match (p.state, &current) {
            (GroupState::Present, None) => {
                plan.changes.push(format!("create group {}", p.name));
                Some(Action::Create)
            }
            (GroupState::Present, Some(g)) => {
                result.insert("gid".into(), json!(g.gid));
                match p.gid {
                    Some(want) if u64::from(g.gid) != want => {
                        plan.changes
                            .push(format!("gid {} -> {want} for group {}", g.gid, p.name));
                        Some(Action::SetGid)
                    }
                    _ => None,
                }
            }
            (GroupState::Absent, Some(_)) => {
                plan.changes.push(format!("remove group {}", p.name));
                Some(Action::Delete)
            }
            (GroupState::Absent, None) => None,
        };
        if let Some(gid) = p.gid.filter(|_| p.state == GroupState::Present) {
            result.insert("gid".into(), json!(gid));
        }
        result.insert(
            "state".into(),
            json!(match p.state {
                GroupState::Present => "present",
                GroupState::Absent => "absent",
            }),
        );
        plan.result = result;
        plan.state = json!(action);
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let action: Option<Action> = serde_json::from_value(plan.state.clone())
            .map_err(|_| ModuleError::failed("group: apply called without a plan"))?;
        let gid = p.gid.map(|g| g.to_string());
        let mut argv: Vec<&str> = Vec::new();
        match action {
            Some(Action::Create) => {
                argv.push("groupadd");
                if let Some(g) = &gid {
                    argv.extend(["-g", g]);
                    if p.non_unique {
                        argv.push("-o");
                    }
                }
                if p.system {
                    argv.push("-r");
                }
            }
            Some(Action::SetGid) => {
                argv.push("groupmod");
                if let Some(g) = &gid {
                    argv.extend(["-g", g]);
                    if p.non_unique {
                        argv.push("-o");
                    }
                }
            }
            Some(Action::Delete) => {
                argv.push("groupdel");
                if p.force {
                    argv.push("-f");
                }
            }
            None => return Ok(Outcome::default()),
        }
        argv.extend(["--", &p.name]);
        run_argv(host, &argv)?;
        let mut result: Map<String, Value> = plan.result;
        if action != Some(Action::Delete) {
            if let Some(g) = probe_group(host, &p.name)? {
                result.insert("gid".into(), json!(g.gid));
            }
        }
        result.insert("changed".into(), json!(true));
        Ok(Outcome {
            changed: true,
            result,
            msg: plan.changes.first().cloned(),
            failed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DynModule;

    #[test]
    fn parameters() {
        assert!(GroupModule
            .check_params(&json!({"name": "g", "gid": "1234", "system": "yes", "state": "absent"}))
            .is_ok());
        assert!(GroupModule
            .check_params(&json!({"name": "g", "state": "gone"}))
            .is_err());
        assert!(GroupModule.check_params(&json!({"gid": 1})).is_err());
    }

    #[test]
    fn plans_against_the_local_group_database() {
        // `root` exists everywhere with gid 0; a made-up group does not.
        let mut h = crate::testing::host();
        let pl = DynModule::plan(&GroupModule, &json!({"name": "root"}), &mut h).expect("plan");
        assert!(pl.is_empty());
        assert_eq!(pl.result.get("gid"), Some(&json!(0)));
        let pl = DynModule::plan(&GroupModule, &json!({"name": "root", "gid": 4321}), &mut h)
            .expect("plan");
        assert_eq!(pl.changes, ["gid 0 -> 4321 for group root"]);
        let none = json!({"name": "herd-no-such-group", "state": "absent"});
        assert!(DynModule::plan(&GroupModule, &none, &mut h)
            .expect("plan")
            .is_empty());
        let make = json!({"name": "herd-no-such-group"});
        let pl = DynModule::plan(&GroupModule, &make, &mut h).expect("plan");
        assert_eq!(pl.changes, ["create group herd-no-such-group"]);
    }
}
