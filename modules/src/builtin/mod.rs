//! The built-in modules. Each file owns one module (or a family, like
//! command/shell/raw) and its idempotency test.

pub mod authorized_key;
pub mod blockinfile;
pub mod command;
pub mod copy;
pub mod cron;
pub mod file;
pub mod group;
pub mod hostname;
pub mod lineinfile;
pub mod mount;
pub mod stat;
pub mod sysctl;
pub mod user;
pub mod wait_for;
