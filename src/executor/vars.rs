//! Variables as templates see them. Ansible templates variables lazily: a
//! play var `url: "http://{{ host }}:{{ port }}"` is rendered when used, with
//! whatever `host` and `port` are for that host at that moment. [`LazyVars`]
//! does the same: it holds the merged JSON variables and renders a value
//! that contains a template only when a template reads it.
//!
//! Merge order, lowest first: inventory (group_vars, host_vars) < gathered
//! facts < play vars < play vars_files < task and block vars < set_fact and
//! registered results < extra vars < magic variables (which can't be
//! overridden: inventory_hostname, groups, hostvars, ...).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use serde_json::{Map, Value};

use crate::template::{self, Templar};

thread_local! {
    /// How deep lazy rendering has recursed on this thread. A variable
    /// defined in terms of itself (`a: "{{ a }}"`) stops here instead of
    /// overflowing the stack.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}
const MAX_DEPTH: usize = 32;

/// Merged variables of one host for one task, rendered on access.
pub struct LazyVars {
    pub vars: Map<String, Value>,
    /// Values that are already template values (hostvars, groups).
    pub native: IndexMap<String, minijinja::Value>,
    pub templar: Templar,
}

impl fmt::Debug for LazyVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print values: they may be secrets.
        f.debug_struct("LazyVars")
            .field("keys", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LazyVars {
    pub fn into_context(self) -> minijinja::Value {
        minijinja::Value::from_object(self)
    }

    fn resolve(self: &Arc<Self>, key: &str, value: &Value) -> Option<minijinja::Value> {
        if !contains_template(value) {
            return Some(template::from_json(value));
        }
        let depth = DEPTH.with(|d| d.get());
        if depth >= MAX_DEPTH {
            return None;
        }
        DEPTH.with(|d| d.set(depth + 1));
        let ctx = minijinja::Value::from_dyn_object(self.clone());
        let rendered = self.templar.render_value(key, value, &ctx);
        DEPTH.with(|d| d.set(depth));
        // A variable whose template fails is undefined for the reader; the
        // reader's own error then names it.
        rendered.ok().map(|v| template::from_json(&v))
    }
}

impl Object for LazyVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let key = key.as_str()?;
        if let Some(v) = self.native.get(key) {
            return Some(v.clone());
        }
        if key == "vars" {
            return Some(minijinja::Value::from_dyn_object(self.clone()));
        }
        let value = self.vars.get(key)?;
        self.resolve(key, value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<minijinja::Value> = self
            .vars
            .keys()
            .chain(self.native.keys())
            .map(|k| minijinja::Value::from(k.as_str()))
            .collect();
        Enumerator::Values(keys)
    }
}

/// True when a value has a template anywhere inside.
pub fn contains_template(v: &Value) -> bool {
    match v {
        Value::String(s) => template::is_template(s),
        Value::Array(a) => a.iter().any(contains_template),
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| template::is_template(k) || contains_template(v)),
        _ => false,
    }
}

/// Finds one host's variables (inventory and facts) by inventory name.
pub type HostVarsLookup = Arc<dyn Fn(&str) -> Option<Map<String, Value>> + Send + Sync>;

/// `hostvars`: every host's variables, looked up when a template asks.
pub struct HostVars {
    pub hosts: HostVarsLookup,
    pub names: Vec<String>,
    pub templar: Templar,
}

impl fmt::Debug for HostVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostVars")
            .field("hosts", &self.names)
            .finish()
    }
}

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        let mut vars = (self.hosts)(name)?;
        vars.insert("inventory_hostname".into(), Value::from(name));
        vars.insert(
            "inventory_hostname_short".into(),
            Value::from(short_hostname(name)),
        );
        Some(
            LazyVars {
                vars,
                native: IndexMap::new(),
                templar: self.templar.clone(),
            }
            .into_context(),
        )
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.names
                .iter()
                .map(|n| minijinja::Value::from(n.as_str()))
                .collect(),
        )
    }
}

/// `web01.example.com` -> `web01`.
pub fn short_hostname(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Overlay `top` onto `base` (shallow, like Ansible's default `replace`).
pub fn overlay(base: &mut Map<String, Value>, top: &Map<String, Value>) {
    for (k, v) in top {
        base.insert(k.clone(), v.clone());
    }
}
