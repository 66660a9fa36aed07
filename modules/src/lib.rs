//! herdsman-modules: the `Host` and `Module` traits and every built-in module.
//!
//! Modules see only [`Host`]: no SSH, no templates. The engine renders every
//! parameter before a module sees it, so `Params` are plain, typed values.
//! A module first *plans* (looks at the host, says what would change, never
//! mutates) and then, outside check mode and only when the plan is not empty,
//! *applies*. That split gives check mode and diff mode for free and is what
//! the "apply, then plan is empty" idempotency tests exercise.

#![warn(missing_docs)]

pub mod account;
pub mod async_job;
pub mod cancel;
pub mod capability;
pub mod clock;
pub mod doc;
pub mod host;
pub mod http;
pub mod inventory;
pub mod local;
pub mod module;
pub mod params;
pub mod probe;
pub mod registry;
pub mod relay;
pub mod shell_quote;
#[cfg(test)]
mod testing;
pub mod textfile;

pub mod builtin;

pub use host::{ExecOutput, FetchFileError, FileAttrs, Host, HostError, DEFAULT_MAX_OUTPUT};
pub use module::{DynModule, FileDiff, Module, ModuleError, Outcome, ParamError, Plan};
pub use registry::{find, registry, Registry};
pub use shell_quote::quote;
