//! The list of built-in modules, by their short names. Ansible's long names
//! (`ansible.builtin.copy`, `ansible.posix.sysctl`) are mapped by the engine.

use crate::builtin;
use crate::module::DynModule;

static MODULES: &[&dyn DynModule] = &[
    &builtin::command::Command,
    &builtin::command::Shell,
    &builtin::command::Raw,
    &builtin::copy::Copy,
    &builtin::file::File,
    &builtin::lineinfile::LineInFile,
    &builtin::blockinfile::BlockInFile,
    &builtin::stat::Stat,
    &builtin::wait_for::WaitFor,
];

/// Every built-in module, in a stable order.
pub fn registry() -> &'static [&'static dyn DynModule] {
    MODULES
}

/// A module by short name.
pub fn find(name: &str) -> Option<&'static dyn DynModule> {
    MODULES.iter().copied().find(|m| m.name() == name)
}
