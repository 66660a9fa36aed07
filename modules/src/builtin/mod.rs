//! The built-in modules. Each file owns one module (or a family, like
//! command/shell/raw) and its idempotency test.

pub mod apt;
pub mod apt_key;
pub mod apt_repository;
pub mod authorized_key;
pub mod blockinfile;
pub mod command;
pub mod compose_deploy;
pub mod copy;
pub mod cron;
pub mod deb822_repository;
// Being split into a folder in parallel; its missing docs (the module
// struct, enums and plan types outside the Params) come with that split.
#[allow(missing_docs)]
pub mod docker_install;
// Being split into a folder in parallel; its missing docs (the module
// struct, enums and plan types outside the Params) come with that split.
#[allow(missing_docs)]
pub mod elasticsearch_cluster;
pub mod file;
pub mod get_url;
pub mod group;
pub mod hostname;
pub mod lineinfile;
pub mod mount;
pub mod ping;
pub mod reboot;
pub mod stat;
pub mod sysctl;
pub mod sysctl_tuning;
pub mod systemd;
pub mod ufw;
pub mod unarchive;
pub mod uri;
pub mod user;
// Being split into a folder in parallel; its missing docs (the module
// struct, enums and plan types outside the Params) come with that split.
#[allow(missing_docs)]
pub mod volume_backup;
pub mod wait_for;
