//! Connections to hosts. `local` runs on the controller; SSH comes next.
//! The engine wraps every transport in [`task_host::TaskHost`], which applies
//! `become` and the task's `environment` to every command.

pub mod local;
pub mod task_host;
