//! The one integration-test binary: every test drives the built `herd`
//! binary the way a user or a cron job would, and checks exit codes, output
//! and what ended up on disk.

mod support;

mod ansible_cfg;
mod ansible_inventory;
mod builtin_more_local;
mod cli;
mod completions;
mod doc;
mod engine;
mod fleet_ansible_parity;
mod fleet_async;
mod fleet_bootstrap;
mod fleet_builtin_gaps;
mod fleet_builtin_more;
mod fleet_compose_deploy;
mod fleet_connection_vars;
mod fleet_corpus;
mod fleet_docker_install;
mod fleet_docker_modules;
mod fleet_elasticsearch_cluster;
mod fleet_faults;
mod fleet_general_a;
mod fleet_general_b;
mod fleet_jobs;
mod fleet_jump;
mod fleet_package;
mod fleet_parity_builtin;
mod fleet_parity_docker;
mod fleet_secrets;
mod fleet_ssh;
mod fleet_synchronize;
mod fleet_sysctl_tuning;
mod fleet_system_a;
mod fleet_system_b;
mod fleet_volume_backup;
mod hostile;
mod jobs;
mod keywords;
mod local_example;
mod loops;
mod module_gaps;
mod no_log;
mod roles;
mod terminal;
mod undefined;
mod validate;
mod vault;
mod vault_cli;
