//! Ansible YAML (and JSON) inventories:
//!
//! ```yaml
//! all:
//!   hosts: {h1: {ansible_host: 10.0.0.1}}
//!   vars: {ntp: time.example.com}
//!   children:
//!     web: {hosts: {"web[01:03]": null}, vars: {http_port: 80}}
//! ```
//!
//! Top-level keys are groups (usually just `all`). A group is a mapping with
//! `hosts`, `children` and `vars`, or nothing; host keys may carry ranges and
//! `:port`. A section given as a single string (`hosts: web1`) means a
//! one-entry mapping, as Ansible allows. Wrong shapes are errors at the
//! node; unknown keys in a group are skipped with a warning, as in Ansible.
//! (Ansible only warns about a group whose value is a list or a string and
//! drops it; here that is an error, since dropping hosts silently is worse.)
//! A file with a top-level `plugin:` key configures an Ansible inventory
//! plugin; those are not supported and the file is skipped with a warning.

use serde_json::Value;

use super::hostname;
use super::Inventory;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::yaml::{Node, NodeValue};

const SECTIONS: [&str; 3] = ["hosts", "children", "vars"];

/// Add the groups and hosts of a parsed YAML inventory to `inv`.
pub fn load(inv: &mut Inventory, root: &Node) -> Result<(), Diagnostic> {
    let entries = match &root.value {
        NodeValue::Map(entries) => entries,
        NodeValue::Null => {
            inv.warnings
                .push(root.span.diagnostic("empty inventory file").with_len(0));
            return Ok(());
        }
        _ => {
            return Err(root
                .span
                .diagnostic(format!(
                    "a YAML inventory must be a mapping of group names, found {}",
                    root.kind()
                ))
                .with_help(
                    "start with `all:` and list groups under `children:`, hosts under `hosts:`",
                ))
        }
    };
    if let Some(plugin) = root.get("plugin") {
        inv.warnings.push(
            plugin
                .span
                .diagnostic("skipped: inventory plugin configurations are not supported")
                .with_help("export the hosts with `ansible-inventory --list -y` and use that file"),
        );
        return Ok(());
    }
    for (key, value) in entries {
        group(inv, key, value)?;
    }
    Ok(())
}

/// One group entry; returns the group's name.
fn group(inv: &mut Inventory, key: &Node, data: &Node) -> Result<String, Diagnostic> {
    let name = match &key.value {
        NodeValue::Str(s) if !s.is_empty() => s.clone(),
        _ => {
            return Err(key
                .span
                .diagnostic(format!(
                    "a group name must be a string, found {}",
                    key.kind()
                ))
                .with_help("quote names that look like numbers: \"2024\":"))
        }
    };
    let entries = match &data.value {
        NodeValue::Null => {
            inv.ensure_group(&name);
            return Ok(name);
        }
        NodeValue::Map(entries) => entries,
        _ => {
            return Err(data
                .span
                .diagnostic(format!(
                    "group `{name}` must be a mapping, found {}",
                    data.kind()
                ))
                .with_help(format!(
                    "write `{name}:` with `hosts:`, `children:` and/or `vars:` below it"
                )))
        }
    };
    inv.ensure_group(&name);
    for (k, v) in entries {
        let section = k.key_text().unwrap_or_default();
        if !SECTIONS.contains(&section.as_str()) {
            let mut w = k
                .span
                .diagnostic(format!(
                    "skipped unexpected key `{section}` in group `{name}`: only `hosts`, `children` and `vars` are read"
                ));
            if let Some(s) = did_you_mean(&section, SECTIONS) {
                w = w.with_help(format!("did you mean `{s}`?"));
            }
            inv.warnings.push(w);
            continue;
        }
        // `hosts: web1` is short for `hosts: {web1: }`.
        let single;
        let items: &[(Node, Node)] = match &v.value {
            NodeValue::Null => &[],
            NodeValue::Map(items) => items,
            NodeValue::Str(_) => {
                let null = Node {
                    value: NodeValue::Null,
                    span: v.span.clone(),
                };
                single = [(v.clone(), null)];
                &single
            }
            _ => return Err(shape_error(&name, &section, v)),
        };
        for (ik, iv) in items {
            match section.as_str() {
                "vars" => {
                    let var = ik.key_text().ok_or_else(|| {
                        ik.span
                            .diagnostic("a variable name must be a string")
                            .with_help("variables are `name: value` pairs")
                    })?;
                    inv.set_group_var(&name, var, iv.to_json());
                }
                "children" => {
                    let child = group(inv, ik, iv)?;
                    inv.add_child(&name, &child)
                        .map_err(|e| ik.span.diagnostic(e.to_string()))?;
                }
                _ => host(inv, &name, ik, iv)?,
            }
        }
    }
    Ok(name)
}

fn shape_error(group: &str, section: &str, v: &Node) -> Diagnostic {
    let d = v.span.diagnostic(format!(
        "`{section}` of group `{group}` must be a mapping, found {}",
        v.kind()
    ));
    let example: String = match (section, v.as_seq()) {
        ("hosts", Some(items)) => {
            let names: Vec<String> = items
                .iter()
                .take(2)
                .filter_map(super::super::yaml::Node::key_text)
                .collect();
            let names = if names.is_empty() {
                vec!["web01".to_string()]
            } else {
                names
            };
            format!(
                "hosts are mapping keys, not list items: `hosts: {{{}}}` or one `name:` per line",
                names
                    .iter()
                    .map(|n| format!("{n}: "))
                    .collect::<Vec<_>>()
                    .join(", ")
                    .trim_end()
            )
        }
        ("hosts", None) => {
            "write `hosts:` with one `host_name:` per line, each optionally with its variables"
                .into()
        }
        ("children", _) => {
            "child groups are mapping keys: `children: {web: , db: }` or one `group:` per line"
                .into()
        }
        _ => "variables are a mapping: `vars: {name: value}` or one `name: value` per line".into(),
    };
    d.with_help(example)
}

/// One `hosts:` entry: a host name (or range) mapped to its vars or nothing.
fn host(inv: &mut Inventory, group: &str, key: &Node, data: &Node) -> Result<(), Diagnostic> {
    let Some(pattern) = key.as_str() else {
        return Err(key
            .span
            .diagnostic(format!(
                "a host name must be a string, found {}",
                key.kind()
            ))
            .with_help("quote host names that look like numbers"));
    };
    let (names, port) = hostname::expand(pattern).map_err(|e| {
        key.span
            .diagnostic(format!("invalid host range: {e}"))
            .with_help("ranges look like `web[01:10]`, `db-[a:c]` or `node[1:9:2]`")
    })?;
    let vars: &[(Node, Node)] = match &data.value {
        NodeValue::Null => &[],
        NodeValue::Map(vars) => vars,
        _ => {
            return Err(data
                .span
                .diagnostic(format!(
                "host `{pattern}` must map to its variables (a mapping) or to nothing, found {}",
                data.kind()
            ))
                .with_help(format!(
                    "write `{pattern}:` alone, or `{pattern}: {{name: value}}`"
                )))
        }
    };
    let mut values: Vec<(String, Value)> = Vec::new();
    for (k, v) in vars {
        let name = k.key_text().ok_or_else(|| {
            k.span
                .diagnostic("a variable name must be a string")
                .with_help("variables are `name: value` pairs")
        })?;
        values.push((name, v.to_json()));
    }
    for name in &names {
        inv.add_host(name, group, port);
        for (k, v) in &values {
            inv.set_host_var(name, k.clone(), v.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn parse(text: &str) -> Result<Inventory, Diagnostic> {
        let node = crate::yaml::parse(Path::new("inv.yml"), text)?;
        let mut inv = Inventory::default();
        load(&mut inv, &node)?;
        inv.reconcile();
        Ok(inv)
    }

    #[test]
    fn groups_hosts_children_vars() {
        let inv = parse(
            "all:\n  hosts:\n    solo:\n  vars: {ntp: t}\n  children:\n    web:\n      hosts:\n        web[1:2]:2222: {role: w}\n      children:\n        nginx: {hosts: n1}\n",
        )
        .unwrap();
        assert_eq!(inv.groups["web"].hosts, ["web1", "web2"]);
        assert_eq!(inv.groups["web"].children, ["nginx"]);
        assert_eq!(inv.groups["nginx"].hosts, ["n1"]);
        assert_eq!(inv.groups["all"].children, ["ungrouped", "web"]);
        assert_eq!(inv.groups["ungrouped"].hosts, ["solo"]);
        assert_eq!(
            Value::Object(inv.hosts["web2"].vars.clone()),
            json!({"ansible_port": 2222, "role": "w"})
        );
        assert_eq!(inv.groups["all"].vars["ntp"], json!("t"));
    }

    #[test]
    fn wrong_shapes_point_at_the_node() {
        let e =
            parse("all:\n  children:\n    web:\n      hosts:\n        - web1\n        - web2\n")
                .err()
                .unwrap();
        assert_eq!((e.line, e.col), (5, 9));
        assert!(e
            .message
            .contains("`hosts` of group `web` must be a mapping, found a list"));
        assert!(e.help.unwrap().contains("web1: , web2:"));

        let e = parse("all:\n  hosts:\n    h1: 3\n").err().unwrap();
        assert_eq!((e.line, e.col), (3, 9));

        let e = parse("- all\n").err().unwrap();
        assert_eq!((e.line, e.col), (1, 1));

        let e = parse("web:\n  hosts:\n    w[3:1]:\n").err().unwrap();
        assert_eq!((e.line, e.col), (3, 5));

        let e = parse("all:\n  hosts:\n    1:\n").err().unwrap();
        assert_eq!((e.line, e.col), (3, 5));

        let e = parse("a:\n  children:\n    b:\n      children:\n        a:\n")
            .err()
            .unwrap();
        // As in Ansible, the link that closes the loop is `a -> b`.
        assert_eq!((e.line, e.col), (3, 5));
        assert!(e.message.contains("loop"), "{}", e.message);
    }

    #[test]
    fn unknown_keys_warn() {
        let inv = parse("all:\n  host:\n    h1:\n").unwrap();
        assert_eq!(inv.warnings.len(), 1);
        assert_eq!(
            inv.warnings[0].help.as_deref(),
            Some("did you mean `hosts`?")
        );
        assert!(inv.hosts.is_empty());
    }
}
