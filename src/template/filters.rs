//! Ansible's filters on top of minijinja's builtins (being written).

use minijinja::Environment;

pub fn register(_env: &mut Environment<'static>) {}

/// Python truthiness, as Ansible's conditionals use it.
pub fn truthy(v: &minijinja::Value) -> bool {
    v.is_true()
}
