//! The built-in modules. Each file owns one module (or a family, like
//! command/shell/raw) and its idempotency test.

pub mod apt;
pub mod apt_key;
pub mod apt_repository;
pub mod blockinfile;
pub mod command;
pub mod copy;
pub mod deb822_repository;
pub mod file;
pub mod get_url;
pub mod lineinfile;
pub mod reboot;
pub mod stat;
pub mod systemd;
pub mod unarchive;
pub mod uri;
pub mod wait_for;
