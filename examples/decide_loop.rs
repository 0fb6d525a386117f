//! Decides one Bash command (or, given a tool and its JSON arguments, any call) on the warmed
//! built-in floor N times, for instruction counts:
//!
//!     cargo build --release --example decide_loop
//!     valgrind --tool=callgrind --toggle-collect='decide_loop::run' \
//!         target/release/examples/decide_loop 100 "$(cat command.sh)"
//!     valgrind --tool=callgrind --toggle-collect='decide_loop::run' \
//!         target/release/examples/decide_loop 100 - Edit '{"file_path": "src/main.rs"}'
//!
//! benches/README.md has the counts this gives for the benchmark calls.

#[global_allocator]
static ALLOC: fak::alloc::Mimalloc = fak::alloc::Mimalloc;

use fak::compile::{compile, CompileOptions};
use fak::eval::{decide, Call, TraceState};

#[inline(never)]
fn run(dag: &fak::compile::Dag, call: &Call, trace: &TraceState, n: usize) -> usize {
    (0..n).map(|_| decide(dag, call, trace).reason.len()).sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let command = args.next().unwrap_or_else(|| "ls -la".into());
    let Some(program) = fak::load::builtin().program else {
        eprintln!("the built-in floor does not load");
        std::process::exit(2);
    };
    let dag = compile(program, CompileOptions::default());
    dag.warm();
    let trace = TraceState::with_workspace("/workspace/repo").home("/home/dev");
    let call = match (args.next(), args.next()) {
        (Some(tool), Some(json)) => match serde_json::from_str(&json) {
            Ok(args) => Call { tool, args },
            Err(e) => {
                eprintln!("the arguments are not JSON: {e}");
                std::process::exit(2);
            }
        },
        _ => Call { tool: "Bash".into(), args: serde_json::json!({ "command": command }) },
    };
    let d = decide(&dag, &call, &trace);
    println!("{:?} {} ({} decisions: {})", d.verdict, d.reason, n, run(&dag, &call, &trace, n));
}
