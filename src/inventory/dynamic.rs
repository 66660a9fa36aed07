//! The inventory changing while a run goes on, as Ansible's inventory
//! manager changes it: `add_host` (a new or updated host, its groups and
//! variables) and `group_by` (a host joins a group made on the fly), each
//! saying whether anything changed; and an inventory rebuilt from a
//! `groups` mapping, for host patterns in `lookup('inventory_hostnames')`.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::Inventory;

/// `host:port` (or `[v6]:port`) as a name and a port, as `add_host`
/// reads its `name`; anything else is the name as given.
pub fn parse_host_address(text: &str) -> (String, Option<i64>) {
    super::hostname::parse_address(text).unwrap_or_else(|| (text.to_string(), None))
}

impl Inventory {
    /// An inventory holding `groups` (name -> hosts) and nothing else.
    pub fn from_groups(groups: &IndexMap<String, Vec<String>>) -> Inventory {
        let mut inv = Inventory::default();
        for (group, hosts) in groups {
            inv.ensure_group(group);
            for h in hosts {
                inv.add_host(h, group, None);
            }
        }
        inv.reconcile();
        inv
    }

    /// `add_host`: `name` (new or known) joins `groups` (made when new)
    /// and gets `vars` over its own. True when anything changed.
    pub fn add_dynamic_host(
        &mut self,
        name: &str,
        groups: &[String],
        vars: &Map<String, Value>,
    ) -> bool {
        let mut changed = !self.hosts.contains_key(name);
        if changed {
            self.add_host(name, "ungrouped", None);
            self.read_vars_files(&[], &[name.to_string()]);
        }
        for g in groups {
            changed |= self.join_group(name, g);
        }
        for (k, v) in vars {
            if self.hosts.get(name).and_then(|h| h.vars.get(k)) != Some(v) {
                self.set_host_var(name, k.clone(), v.clone());
                changed = true;
            }
        }
        if changed {
            self.reconcile();
        }
        changed
    }

    /// `group_by`: `host` joins `group`, which becomes a child of each of
    /// `parents` (all made when new). True when anything changed.
    pub fn add_dynamic_group(&mut self, host: &str, group: &str, parents: &[String]) -> bool {
        let mut changed = false;
        self.make_group(group);
        for p in parents {
            changed |= self.make_group(p);
            let linked = self
                .groups
                .get(p)
                .is_some_and(|g| g.children.iter().any(|c| c == group));
            // A link that would make a loop is refused, as in Ansible.
            if !linked && p != group && self.add_child(p, group).is_ok() {
                changed = true;
            }
        }
        changed |= self.join_group(host, group);
        if changed {
            self.reconcile();
        }
        changed
    }

    /// Make `group` below `all` unless it exists. True when it was made.
    fn make_group(&mut self, group: &str) -> bool {
        if self.groups.contains_key(group) {
            return false;
        }
        self.ensure_group(group);
        // A new group has no children, so it cannot be an ancestor of `all`.
        let _ = self.add_child("all", group);
        self.read_vars_files(&[group.to_string()], &[]);
        true
    }

    /// `group_vars/`/`host_vars/` files of groups and hosts made during the
    /// run, from every vars directory the inventory read, as Ansible's
    /// vars plugin reads them when asked. A file that can't be read is left
    /// out with a warning in the log.
    fn read_vars_files(&mut self, groups: &[String], hosts: &[String]) {
        for d in &mut self.vars_dirs {
            let found = match super::vars::read(&d.dir, groups, hosts, d.from_playbook) {
                Ok(found) => found,
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("{e}");
                    }
                    continue;
                }
            };
            for (name, v) in found.groups {
                self.group_vars_files
                    .entry(name.clone())
                    .or_default()
                    .push(v.clone());
                d.groups.insert(name, v);
            }
            for (name, v) in found.hosts {
                self.host_vars_files
                    .entry(name.clone())
                    .or_default()
                    .push(v.clone());
                d.hosts.insert(name, v);
            }
        }
    }

    /// `host` becomes a direct member of `group` (made when new).
    fn join_group(&mut self, host: &str, group: &str) -> bool {
        let made = self.make_group(group);
        if self
            .members
            .contains(&(group.to_string(), host.to_string()))
        {
            return made;
        }
        self.add_host(host, group, None);
        // Hosts of a group stay in inventory order, whichever host of a
        // parallel `group_by` came first.
        let order: std::collections::HashMap<String, usize> = self
            .hosts
            .keys()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect();
        if let Some(g) = self.groups.get_mut(group) {
            g.hosts
                .sort_by_key(|h| order.get(h).copied().unwrap_or(usize::MAX));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        let mut groups = IndexMap::new();
        groups.insert("web".to_string(), vec!["h1".to_string(), "h2".to_string()]);
        Inventory::from_groups(&groups)
    }

    #[test]
    fn add_host_makes_groups_and_says_when_it_changed() {
        let mut inv = inv();
        let mut vars = Map::new();
        vars.insert("color".into(), Value::from("blue"));
        let groups = vec!["fresh".to_string(), "web".to_string()];
        assert!(inv.add_dynamic_host("new", &groups, &vars));
        assert!(!inv.add_dynamic_host("new", &groups, &vars));
        assert_eq!(inv.group_hosts("fresh"), ["new"]);
        assert_eq!(inv.group_hosts("web"), ["h1", "h2", "new"]);
        assert_eq!(inv.host_vars("new")["color"], "blue");
        assert_eq!(inv.group_names("new"), ["fresh", "web"]);
        assert!(inv.add_dynamic_host("bare", &[], &Map::new()));
        assert_eq!(inv.group_names("bare"), ["ungrouped"]);
        assert_eq!(inv.select("all").unwrap(), ["h1", "h2", "new", "bare"]);
    }

    #[test]
    fn group_by_links_parents_and_says_when_it_changed() {
        let mut inv = inv();
        let parents = vec!["grouped".to_string()];
        assert!(inv.add_dynamic_group("h1", "kind_a", &parents));
        assert!(!inv.add_dynamic_group("h1", "kind_a", &parents));
        assert!(inv.add_dynamic_group("h2", "kind_b", &parents));
        assert_eq!(inv.group_hosts("grouped"), ["h1", "h2"]);
        assert_eq!(inv.group_names("h1"), ["grouped", "kind_a", "web"]);
        assert_eq!(inv.select("grouped:!kind_b").unwrap(), ["h1"]);
    }
}
