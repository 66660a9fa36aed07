//! `add_host` and `group_by`: the run's inventory changes, as Ansible's
//! strategy applies these actions' results. `add_host` runs once for the
//! task (on the first host, looped or not); `group_by` on every host. A
//! change is reported as `changed`, and later tasks and plays see the new
//! hosts and groups (`groups`, `group_names`, `hostvars`, host patterns).

use serde_json::{Map, Value};

use crate::executor::task::{value_text, ItemOutcome};
use crate::executor::PlayRunner;
use crate::output::Status;

/// Keys of `add_host` that are not host variables (as in Ansible, where
/// `host` and `group` also become variables of the new host).
const NOT_HOST_VARS: &[&str] = &["name", "hostname", "groupname", "groups"];

/// `groups:` given as something other than a list or a text.
#[derive(Debug, thiserror::Error)]
#[error("Groups must be specified as a list.")]
struct GroupsNotAList;

/// `groups:` as a list, or a comma-separated text.
fn group_list(v: Option<&Value>) -> Result<Vec<String>, GroupsNotAList> {
    let names: Vec<String> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().map(value_text).collect(),
        Some(_) => return Err(GroupsNotAList),
    };
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim().to_string();
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

impl PlayRunner<'_> {
    pub(crate) fn run_add_host(&self, args: &Value) -> ItemOutcome {
        let Some(args) = args.as_object() else {
            return ItemOutcome::failed("add_host needs a mapping of parameters");
        };
        let Some(given) = ["name", "hostname", "host"]
            .iter()
            .find_map(|k| args.get(*k))
            .map(value_text)
        else {
            return ItemOutcome::failed("name, host or hostname needs to be provided");
        };
        let (name, port) = crate::inventory::parse_host_address(&given);
        let groups = match group_list(
            args.get("groupname")
                .or_else(|| args.get("groups"))
                .or_else(|| args.get("group")),
        ) {
            Ok(g) => g,
            Err(e) => return ItemOutcome::failed(e.to_string()),
        };
        let mut vars: Map<String, Value> = args
            .iter()
            .filter(|(k, _)| !NOT_HOST_VARS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(port) = port {
            vars.insert("ansible_ssh_port".into(), Value::from(port));
        }
        let changed = self
            .run
            .change_inventory(|inv| inv.add_dynamic_host(&name, &groups, &vars));
        self.refresh_inventory_view(&name);
        let mut o = ItemOutcome::new(if changed { Status::Changed } else { Status::Ok });
        let mut added = Map::new();
        added.insert("host_name".into(), Value::from(name));
        added.insert("groups".into(), Value::from(groups));
        added.insert("host_vars".into(), Value::Object(vars));
        o.result.insert("add_host".into(), Value::Object(added));
        o
    }

    pub(crate) fn run_group_by(&self, args: &Value, i: usize) -> ItemOutcome {
        let Some(key) = args.get("key").map(value_text) else {
            return ItemOutcome::failed("the 'key' param is required when using group_by");
        };
        let parents: Vec<String> = match args.get("parents") {
            None | Some(Value::Null) => vec!["all".into()],
            Some(Value::Array(a)) => a.iter().map(value_text).collect(),
            Some(other) => vec![value_text(other)],
        };
        // As in Ansible: spaces are not allowed in group names.
        let group = key.replace(' ', "-");
        let parents: Vec<String> = parents.iter().map(|p| p.replace(' ', "-")).collect();
        let host = self.names[i].clone();
        let changed = self
            .run
            .change_inventory(|inv| inv.add_dynamic_group(&host, &group, &parents));
        self.refresh_inventory_view(&host);
        let mut o = ItemOutcome::new(if changed { Status::Changed } else { Status::Ok });
        o.result.insert("add_group".into(), Value::from(group));
        o.result
            .insert("parent_groups".into(), Value::from(parents));
        o
    }
}
