//! The `fak` binary: parse the command line and hand it to `fak::cli`.

use std::process::ExitCode;

/// mimalloc: a decision allocates many small strings and frees them at once (the shell view's
/// words and commands), where it is several times faster than the system allocator
/// (benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    fak::cli::main()
}
