//! The local transport lives with the modules (their tests use it too);
//! re-exported here where the engine looks for connections.

pub use herdsman_modules::local::LocalHost;
