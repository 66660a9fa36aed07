//! Variables as templates see them. Ansible templates variables lazily: a
//! play var `url: "http://{{ host }}:{{ port }}"` is rendered when used, with
//! whatever `host` and `port` are for that host at that moment. [`LazyVars`]
//! does the same: it holds the merged JSON variables and renders a value
//! that contains a template only when a template reads it.
//! A variable whose template needs an undefined value is undefined to its
//! reader (`is defined` is false, `default` applies, and errors name the
//! missing variable); variables defined in terms of each other are an
//! error naming the cycle.
//!
//! Merge order, lowest first: inventory (group_vars, host_vars) < gathered
//! facts < play vars < play vars_files < task and block vars < set_fact and
//! registered results < extra vars < magic variables (which can't be
//! overridden: inventory_hostname, groups, hostvars, ...).

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use serde_json::{Map, Value};

use crate::template::{self, Templar};

thread_local! {
    /// The variables being rendered lazily on this thread, innermost last,
    /// each with the `LazyVars` it belongs to: a variable that is met again
    /// while it is being rendered (`a: "{{ b }}"`, `b: "{{ a }}"`) is a
    /// cycle, reported as an error naming it instead of overflowing the
    /// stack.
    static RESOLVING: RefCell<Vec<(usize, String)>> = const { RefCell::new(Vec::new()) };
}
/// Variables that nest deeper than this (a cycle through `hostvars`, which
/// builds new objects each time) are an error too.
const MAX_DEPTH: usize = 32;

/// One entry of `RESOLVING`, removed when dropped (even by a panic, so a
/// worker thread never keeps a stale entry that looks like a cycle).
struct Resolving;

impl Resolving {
    fn push(id: usize, key: &str) -> Resolving {
        RESOLVING.with(|r| r.borrow_mut().push((id, key.to_string())));
        Resolving
    }
}

impl Drop for Resolving {
    fn drop(&mut self) {
        RESOLVING.with(|r| {
            r.borrow_mut().pop();
        });
    }
}

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

    /// The value of `key` for templates. A template inside is rendered
    /// now; if that needs an undefined value, `key` is undefined to the
    /// reader (so `key is defined` and `key | default(...)` work as in
    /// Ansible) and the reader's error names what is really missing; any
    /// other failure, a cycle included, is an error for the reader.
    fn resolve(self: &Arc<Self>, key: &str, value: &Value) -> Option<minijinja::Value> {
        if !contains_template(value) {
            return Some(template::from_json(value));
        }
        let id = Arc::as_ptr(self) as *const () as usize;
        let cycle = RESOLVING.with(|r| {
            let r = r.borrow();
            if let Some(start) = r.iter().position(|(i, k)| *i == id && k == key) {
                let mut names: Vec<&str> = r[start..].iter().map(|(_, k)| k.as_str()).collect();
                names.push(key);
                return Some(format!(
                    "{}: variable `{key}` is defined in terms of itself ({})",
                    template::LOOP_PREFIX,
                    names.join(" -> ")
                ));
            }
            if r.len() >= MAX_DEPTH {
                return Some(format!(
                    "{}: variables nest more than {MAX_DEPTH} deep at `{key}`",
                    template::LOOP_PREFIX
                ));
            }
            None
        });
        if let Some(msg) = cycle {
            return Some(minijinja::Value::from(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            )));
        }
        let rendered = {
            let _resolving = Resolving::push(id, key);
            let ctx = minijinja::Value::from_dyn_object(self.clone());
            self.templar.render_value_raw(key, value, &ctx)
        };
        match rendered {
            Ok(v) => Some(template::from_json(&v)),
            Err(e) if e.kind() == minijinja::ErrorKind::UndefinedError => {
                template::note_undefined_variable(key, &e);
                None
            }
            // An invalid value fails the template that reads it, with
            // this error.
            Err(e) => Some(minijinja::Value::from(e)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(vars: Value) -> (Templar, minijinja::Value) {
        let templar = Templar::new(Vec::new());
        let Value::Object(vars) = vars else {
            panic!("vars must be a mapping")
        };
        let ctx = LazyVars {
            vars,
            native: IndexMap::new(),
            templar: templar.clone(),
        }
        .into_context();
        (templar, ctx)
    }

    #[test]
    fn variables_render_through_each_other() {
        let (t, c) =
            ctx(json!({"greeting": "hello {{ who }}", "who": "{{ name }}", "name": "ada"}));
        let v = t.render_value("msg", &json!("{{ greeting }}"), &c).unwrap();
        assert_eq!(v, json!("hello ada"));
    }

    /// The error names the variable that is missing and the way to it,
    /// not the variable the task used (which is defined).
    #[test]
    fn an_undefined_inner_variable_is_named() {
        let (t, c) = ctx(json!({
            "greeting": "hello {{ who }}",
            "who": "{{ first }} {{ last }}",
            "last": "lovelace",
            "password": "s3cr3t"
        }));
        let e = t
            .render_value("msg", &json!("{{ greeting }} {{ password }}"), &c)
            .unwrap_err();
        assert!(e.is_undefined(), "{e:?}");
        let reason = e.reason();
        assert!(reason.contains("`first` is undefined"), "{reason}");
        assert!(reason.contains("`greeting` -> `who`"), "{reason}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        // Whole values too.
        let (t, c) = ctx(json!({"broken": "{{ missing_inner }}"}));
        let e = t
            .render_value("msg", &json!("{{ broken }}"), &c)
            .unwrap_err();
        assert!(e.reason().contains("`missing_inner`"), "{e}");
    }

    /// As in Ansible, a variable whose template needs an undefined value
    /// is undefined to `is defined` and `default`.
    #[test]
    fn a_broken_variable_is_undefined_to_tests_and_default() {
        let (t, c) = ctx(json!({"broken": "{{ missing_inner }}"}));
        assert!(!t.eval_condition("when", "broken is defined", &c).unwrap());
        let v = t
            .render_value("msg", &json!("{{ broken | default('d') }}"), &c)
            .unwrap();
        assert_eq!(v, json!("d"));
    }

    /// `a: "{{ b }}"`, `b: "{{ a }}"` is an error naming the cycle, also
    /// under `default`, and never a stack overflow.
    #[test]
    fn a_cycle_is_an_error_naming_it() {
        let (t, c) = ctx(json!({"a": "{{ b }}", "b": "x{{ a }}", "c": "{{ c }}"}));
        for source in ["{{ a }}", "{{ a | default(1) }}", "{{ b }}"] {
            let e = t.render_value("msg", &json!(source), &c).unwrap_err();
            let reason = e.reason();
            assert!(reason.starts_with(template::LOOP_PREFIX), "{reason}");
            assert!(
                reason.contains("a -> b -> a") || reason.contains("b -> a -> b"),
                "{reason}"
            );
        }
        let e = t.eval_condition("when", "c", &c).unwrap_err();
        assert!(e.reason().contains("`c`"), "{e}");
    }
}
