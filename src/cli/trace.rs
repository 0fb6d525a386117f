//! `fak trace` and `fak witness`: what conversations have read, and taking it back.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{emit, fail};
use crate::store::{self, Store, StoreError, TraceRow, Witness};

/// List traces whose taint is up, or reset one.
///
/// A trace is one agent conversation (`fak preflight --trace ID`). A result from a source the
/// policy does not mark trusted raises its taint (trusted < untrusted < quarantined); rules
/// can refuse sinks while it is up. A trusted trace is not stored.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  fak trace list\n  fak trace show session-42\n  fak trace reset session-42")]
pub struct TraceArgs {
    #[command(subcommand)]
    pub action: TraceAction,
    /// The state directory. Default: `$XDG_STATE_HOME/fak` (`~/.local/state/fak`).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum TraceAction {
    /// Every trace whose taint is up, most recently raised first: id, taint, what raised it.
    List,
    /// One trace's taint (`trusted` when it was never raised or was reset).
    Show { id: String },
    /// Clear a trace's taint; the reset is recorded.
    Reset { id: String },
}

/// List witnesses (the results models read), or revoke one.
///
/// Revoking a witness says its content was wrong or hostile: every trace that read it is
/// raised to quarantined, and a later result with the same bytes is quarantined
/// (TRUST_VIOLATION, kind `revoked`).
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fak witness list\n  fak witness show w-1f3a9c0b2d4e5f60\n  fak witness revoke w-1f3a9c0b2d4e5f60 --note \"poisoned README\""
)]
pub struct WitnessArgs {
    #[command(subcommand)]
    pub action: WitnessAction,
    /// The state directory. Default: `$XDG_STATE_HOME/fak` (`~/.local/state/fak`).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum WitnessAction {
    /// Every witness, oldest first: id, tool, length, revoked, the traces that read it.
    List,
    /// One witness.
    Show { id: String },
    /// Revoke a witness: recorded; its readers are raised to quarantined; its bytes are
    /// quarantined from now on.
    Revoke {
        id: String,
        /// Why, kept with the revocation.
        #[arg(long)]
        note: Option<String>,
    },
}

fn open(dir: &Option<PathBuf>) -> Result<Store, StoreError> {
    Store::open(&dir.clone().unwrap_or_else(store::default_dir))
}

fn finish(result: Result<String, StoreError>) -> ExitCode {
    match result {
        Ok(out) => {
            emit(&out);
            ExitCode::SUCCESS
        }
        Err(e @ (StoreError::NotFound(_) | StoreError::NoWitness(_))) => {
            eprintln!("fak: {e}");
            ExitCode::from(1)
        }
        Err(e) => fail(e),
    }
}

fn level(rank: u8) -> &'static str {
    crate::ir::TAINT_LEVELS.get(usize::from(rank)).copied().unwrap_or("quarantined")
}

fn json_line<T: serde::Serialize>(v: &T) -> String {
    format!("{}\n", serde_json::to_string(v).unwrap_or_default())
}

pub fn run_trace(a: &TraceArgs) -> ExitCode {
    let mut s = match open(&a.state_dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let row = |t: &TraceRow| {
        if a.json {
            json_line(
                &serde_json::json!({"trace": t.id, "taint": level(t.taint), "source": t.source, "updated": t.updated}),
            )
        } else {
            format!("{} taint={} source={} updated={}\n", t.id, level(t.taint), t.source, t.updated)
        }
    };
    finish(match &a.action {
        TraceAction::List => s.traces().map(|ts| ts.iter().map(row).collect()),
        TraceAction::Show { id } => s.taint(id).map(|t| {
            if a.json {
                json_line(&serde_json::json!({"trace": id, "taint": level(t)}))
            } else {
                format!("{id} taint={}\n", level(t))
            }
        }),
        TraceAction::Reset { id } => s.reset(id).map(|was| {
            if a.json {
                json_line(&serde_json::json!({"trace": id, "reset": true, "was": level(was)}))
            } else {
                format!("{id} taint=trusted was={}\n", level(was))
            }
        }),
    })
}

pub fn run_witness(a: &WitnessArgs) -> ExitCode {
    let mut s = match open(&a.state_dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let row = |w: &Witness| {
        if a.json {
            return json_line(w);
        }
        let revoked = w.revoked.map_or(String::new(), |t| format!(" revoked={t}"));
        let traces = if w.traces.is_empty() { "-".to_string() } else { w.traces.join(",") };
        format!(
            "{} tool={} length={} created={}{revoked} traces={traces} digest={}\n",
            w.id, w.tool, w.length, w.created, w.digest
        )
    };
    finish(match &a.action {
        WitnessAction::List => s.witnesses().map(|ws| ws.iter().map(row).collect()),
        WitnessAction::Show { id } => s.witness(id).map(|w| row(&w)),
        WitnessAction::Revoke { id, note } => s.revoke(id, note.as_deref()).map(|w| row(&w)),
    })
}
