//! Validation of a loaded playbook (being written).

use crate::diagnostic::Diagnostic;
use crate::playbook::model::Playbook;
use crate::template::Templar;

/// Every problem found: module parameters, notify without a handler,
/// template syntax (inline and files). Empty when the playbook is valid.
pub fn validate(_playbook: &Playbook, _templar: &Templar) -> Vec<Diagnostic> {
    Vec::new()
}
