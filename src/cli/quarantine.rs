//! `fak quarantine`: the results fak paged out of the model's context.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{emit, fail};
use crate::store::{self, Page, Store};

/// List, show or release quarantined results.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fak quarantine list\n  fak quarantine show q-1f3a9c0b2d4e5f60\n  fak quarantine release q-1f3a9c0b2d4e5f60"
)]
pub struct QuarantineArgs {
    #[command(subcommand)]
    pub action: Action,
    /// The state directory. Default: `$XDG_STATE_HOME/fak` (`~/.local/state/fak`).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Every quarantined result, oldest first: id, when, tool, reason, kinds, length.
    List,
    /// One result, with its text.
    Show { id: String },
    /// Release a result: recorded, and its text printed for whoever asked.
    Release { id: String },
}

pub fn run(a: &QuarantineArgs) -> ExitCode {
    let dir = a.state_dir.clone().unwrap_or_else(store::default_dir);
    let mut s = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let result = match &a.action {
        Action::List => s.list().map(|pages| {
            if a.json {
                pages.iter().map(|p| format!("{}\n", serde_json::to_string(p).unwrap_or_default())).collect()
            } else {
                pages.iter().map(|p| format!("{}\n", summary(p))).collect()
            }
        }),
        Action::Show { id } => s.get(id, true).map(|p| shown(&p, a.json)),
        Action::Release { id } => s.release(id).map(|p| shown(&p, a.json)),
    };
    match result {
        Ok(out) => {
            emit(&out);
            ExitCode::SUCCESS
        }
        Err(e @ store::StoreError::NotFound(_)) => {
            eprintln!("fak: {e}");
            ExitCode::from(1)
        }
        Err(e) => fail(e),
    }
}

fn summary(p: &Page) -> String {
    let released = p.released.map_or(String::new(), |t| format!(" released={t}"));
    format!(
        "{} created={} tool={} reason={} kinds={} length={}{released}",
        p.id,
        p.created,
        p.tool,
        p.reason,
        if p.kinds.is_empty() { "-".to_string() } else { p.kinds.join(",") },
        p.length
    )
}

fn shown(p: &Page, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string(p).unwrap_or_default());
    }
    let mut s = format!("{}\n", summary(p));
    s.push_str(p.text.as_deref().unwrap_or(""));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
