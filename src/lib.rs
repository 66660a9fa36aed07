//! herdsman: runs Ansible-style playbooks over SSH (and locally) from one
//! binary. Files are loaded and validated before any connection opens; the
//! executor runs tasks on a pool of `--forks` workers and reports through
//! `Event`s to one printer.

pub mod actions;
pub mod adhoc;
pub mod app;
pub mod cli;
pub mod completions;
pub mod config;
pub mod connection;
pub mod diagnostic;
pub mod doc_cmd;
pub mod executor;
pub mod fuzz;
pub mod inventory;
pub mod jobs;
pub mod known_modules;
pub mod kv;
pub mod output;
pub mod playbook;
pub mod secrets;
pub mod template;
pub mod vars_prompt;
pub mod vault;
pub mod vault_cli;
pub mod yaml;
