//! The `fak` binary: parse the command line and hand it to `fak::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    fak::cli::main()
}
