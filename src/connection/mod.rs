//! Connections to hosts: `local` runs on the controller, `ssh` on one
//! persistent libssh2 session per host (`known_hosts` checks its host key,
//! `exec` drives its commands, `shell` frames them for the one remote shell
//! each session keeps, `ssh_config` reads `~/.ssh/config`, `jump`
//! shares one session per jump host among the targets behind it).
//! The engine wraps every transport in [`task_host::TaskHost`], which applies
//! `become` and the task's `environment` to every command.

pub mod exec;
pub mod jump;
pub mod known_hosts;
pub mod local;
pub mod open;
pub mod shell;
pub mod ssh;
pub mod ssh_config;
pub mod task_host;
