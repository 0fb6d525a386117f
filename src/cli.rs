//! The command line: `fak policy`, `fak preflight`, and the state commands `fak quarantine`,
//! `fak trace` and `fak witness`, `fak hook`, `fak serve`, and `fak audit`.
//!
//! Exit status: `fak policy` exits 0 when the files are clean (warnings are shown), 1 on an
//! error in a policy (or an unreadable one) or a failing test, 2 on bad flags; `fak preflight`
//! exits 0 whatever the verdict and 2 when it could not decide (bad flags, an unreadable or
//! broken policy, a state directory it cannot use). The state commands exit 1 when the id
//! they are given is unknown; `fak audit verify` exits 1 when the log does not verify.

mod audit;
mod hook;
mod output;
mod policy;
mod preflight;
mod quarantine;
mod repl;
mod serve;
mod trace;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use output::verdict_line;

#[derive(Parser, Debug)]
#[command(name = "fak", version, about = "A tool-call firewall for AI coding agents", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check, format, test, dump or convert policies.
    Policy(policy::PolicyArgs),
    /// Decide one tool call (or a batch) against a policy and print the verdict.
    Preflight(preflight::PreflightArgs),
    /// List, show or release the results fak quarantined.
    Quarantine(quarantine::QuarantineArgs),
    /// List the traces whose taint is up, or reset one.
    Trace(trace::TraceArgs),
    /// List the witnesses of results models read, or revoke one.
    Witness(trace::WitnessArgs),
    /// Run as Claude Code's PreToolUse/PostToolUse hook; `install` / `uninstall` it.
    Hook(hook::HookArgs),
    /// Run the gateway Claude Code and the SDKs point at: every tool call and result decided.
    Serve(serve::ServeArgs),
    /// Verify or read the hash-chained audit log of decisions and admissions.
    Audit(audit::AuditArgs),
}

/// How diagnostics are printed.
#[derive(Clone, Copy, Debug, ValueEnum, Default, PartialEq, Eq)]
pub enum ErrorFormat {
    /// Graphical, coloured on a terminal.
    #[default]
    Human,
    /// Graphical without colour, ASCII only.
    Plain,
    /// One JSON object per diagnostic, per line.
    Json,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct DiagArgs {
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = ErrorFormat::Human, global = true)]
    pub error_format: ErrorFormat,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy(a) => policy::run(&a),
        Command::Preflight(a) => preflight::run(&a),
        Command::Quarantine(a) => quarantine::run(&a),
        Command::Trace(a) => trace::run_trace(&a),
        Command::Witness(a) => trace::run_witness(&a),
        Command::Hook(a) => hook::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Audit(a) => audit::run(&a),
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error worth a panic.
pub(crate) fn emit(s: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Writes to stdout and says whether it got there (the hook must not answer "nothing" when
/// its answer was lost).
pub(crate) fn try_emit(s: &str) -> bool {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).and_then(|()| out.flush()).is_ok()
}

/// Exit status 2: fak could not do what was asked.
pub(crate) fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("fak: {msg}");
    ExitCode::from(2)
}
