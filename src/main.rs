//! The `fak` binary: parse the command line and hand it to `fak::cli`.

use std::process::ExitCode;

/// mimalloc rather than the system allocator: a decision builds its views from many small
/// strings and lists, and glibc's malloc spent about a third of a long command's decision
/// (benches/README.md, session 11). The benchmarks use it too, to measure what ships.
#[global_allocator]
static ALLOC: fak::alloc::Mimalloc = fak::alloc::Mimalloc;

fn main() -> ExitCode {
    fak::cli::main()
}
