//! `herd`: parse arguments, run, exit with the documented code.

use std::process::ExitCode;

fn main() -> ExitCode {
    herdsman::app::main()
}
