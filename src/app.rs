//! Top-level flow (being written).

use std::process::ExitCode;

use clap::Parser;

pub fn main() -> ExitCode {
    let _cli = crate::cli::Cli::parse();
    ExitCode::SUCCESS
}
