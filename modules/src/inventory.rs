//! What a module may know of the inventory beyond its own host: every
//! group's members and every host's address. Most modules never need it; a
//! module that sets up a cluster does (a new node must learn the masters'
//! addresses even when `--limit` leaves the masters out of the play).
//!
//! A module asks for it with [`crate::Module::NEEDS_INVENTORY`]; the engine
//! then passes this view as the `_inventory` parameter, built from the
//! inventory (not from the play's hosts), so it is the same whatever
//! `--limit` or `hosts:` selected. Only names and addresses are passed:
//! no other host's variables (they may hold secrets).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The parameter name the engine fills in.
pub const PARAM: &str = "_inventory";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// What a module that asks for the inventory (`Module::NEEDS_INVENTORY`) gets as `_inventory`:
/// every group's hosts and every host's address, no other variables.
pub struct InventoryView {
    /// The inventory name of the host the task runs for.
    pub host: String,
    /// Every group and its hosts (children included), in inventory order.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Every host's address: its `ansible_host`, or its name without one.
    pub addresses: BTreeMap<String, String>,
}

impl InventoryView {
    /// The hosts of `group`; `None` when the inventory has no such group.
    pub fn group(&self, group: &str) -> Option<&[String]> {
        self.groups.get(group).map(Vec::as_slice)
    }

    /// A host's address (its name when the view does not know it).
    pub fn address<'a>(&'a self, host: &'a str) -> &'a str {
        self.addresses.get(host).map(String::as_str).unwrap_or(host)
    }
}
