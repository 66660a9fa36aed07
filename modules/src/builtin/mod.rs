//! The built-in modules. Each file owns one module (or a family, like
//! command/shell/raw) and its idempotency test.

pub mod acl;
pub mod alternatives;
pub mod apt;
pub mod apt_key;
pub mod apt_repository;
pub mod archive;
pub mod async_status;
pub mod at;
pub mod authorized_key;
pub mod blockinfile;
pub mod command;
pub mod compose_deploy;
pub mod copy;
pub mod copy_tree;
pub mod cron;
pub mod deb822_repository;
pub mod debconf;
pub(crate) mod docker_common;
pub mod docker_compose_v2;
pub mod docker_container;
pub mod docker_image;
pub mod docker_info;
pub mod dpkg_selections;
// Being split into a folder in parallel; its missing docs (the module
// struct, enums and plan types outside the Params) come with that split.
#[allow(missing_docs)]
pub mod docker_install;
pub mod docker_login;
pub mod docker_network;
pub mod docker_prune;
pub mod docker_volume;
// Being split into a folder in parallel; its missing docs (the module
// struct, enums and plan types outside the Params) come with that split.
#[allow(missing_docs)]
pub mod elasticsearch_cluster;
pub mod fetch;
pub mod file;
pub mod find;
pub mod get_url;
pub mod getent;
pub mod git;
pub mod group;
pub mod hostname;
pub mod ini_file;
pub mod iptables;
pub mod known_hosts;
pub mod lineinfile;
pub mod locale_gen;
pub mod modprobe;
pub mod mount;
pub mod package_facts;
pub mod pam_limits;
pub mod pause;
pub mod ping;
pub mod pip;
pub mod reboot;
pub mod replace;
pub mod script;
pub mod service_facts;
pub mod slurp;
pub mod stat;
pub mod sudoers;
pub mod synchronize;
pub mod sysctl;
pub mod sysctl_tuning;
pub mod systemd;
pub mod tempfile;
pub mod timezone;
pub mod ufw;
pub mod unarchive;
pub mod uri;
pub mod user;
// Being split into a folder in parallel; its missing docs (the module
// struct, enums and plan types outside the Params) come with that split.
#[allow(missing_docs)]
pub mod volume_backup;
pub mod wait_for;
pub mod wait_for_connection;
