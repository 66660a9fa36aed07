//! Helpers for the modules' unit tests: drive a module through its JSON
//! face, as the engine does, on the local host.

use serde_json::Value;

use crate::local::LocalHost;
use crate::{DynModule, Outcome, Plan};

pub fn host() -> LocalHost {
    LocalHost::new("local")
}

pub fn plan(m: &dyn DynModule, params: &Value) -> Plan {
    m.plan(params, &mut host())
        .unwrap_or_else(|e| panic!("{} plan failed: {e}", m.name()))
}

pub fn apply(m: &dyn DynModule, params: &Value, plan: Plan) -> Outcome {
    m.apply(params, plan, &mut host())
        .unwrap_or_else(|e| panic!("{} apply failed: {e}", m.name()))
}

/// The invariant every module keeps: a plan with changes, applied, leaves
/// nothing to do. Returns the first plan and the outcome.
pub fn converge(m: &dyn DynModule, params: &Value) -> (Plan, Outcome) {
    let first = plan(m, params);
    assert!(!first.is_empty(), "{}: expected changes", m.name());
    let out = apply(m, params, first.clone());
    let again = plan(m, params);
    assert!(
        again.is_empty(),
        "{}: plan after apply is not empty: {:?}",
        m.name(),
        again.changes
    );
    (first, out)
}

/// A result value by key, `Null` when missing.
pub fn get<'a>(result: &'a serde_json::Map<String, Value>, k: &str) -> &'a Value {
    result.get(k).unwrap_or(&Value::Null)
}

/// A path inside a temp dir, as a string.
pub fn path_in(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}
