//! `fak audit`: read and check the audit log.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{emit, fail};
use crate::audit::Row;
use crate::store::Store;

/// Check or read the audit log: every decision and admission, hash-chained.
///
/// Each row holds the time, the trace, the tool, the verdict, the reason, the rule and the
/// SHA-256 of the arguments or result — never the arguments or the result — and the hash of
/// its contents and the row before it. A row changed, inserted or removed breaks every hash
/// after it.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fak audit verify\n  fak audit tail -n 20\n  fak audit tail -f --json\n  fak audit tail --after 1200 --json   # every row after seq 1200"
)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
    /// The state directory. Default: `$XDG_STATE_HOME/fak` (`~/.local/state/fak`).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// Walk the whole chain; exit 0 and print the row count and the last hash when every row
    /// verifies, exit 1 naming the first row that does not.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the last rows, oldest first; with `-f`, keep printing rows as they are written.
    Tail {
        /// How many rows.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u32,
        /// Follow: wait for new rows (checked every 200 ms) until interrupted.
        #[arg(short = 'f', long)]
        follow: bool,
        /// One JSON object per row.
        #[arg(long)]
        json: bool,
        /// Every row after this sequence number instead of the last `-n` (a script notes the
        /// newest `seq` before a run and reads what the run added).
        #[arg(long, value_name = "SEQ", conflicts_with = "lines")]
        after: Option<i64>,
    },
}

fn line(r: &Row, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string(r).unwrap_or_default());
    }
    let e = &r.entry;
    let at = e.at;
    let mut s = format!("{:>6} {}.{:03} {:<6}", r.seq, at / 1000, at % 1000, e.kind.as_str());
    for (k, v) in
        [("verdict", &e.verdict), ("reason", &e.reason), ("by", &e.rule), ("tool", &e.tool), ("trace", &e.trace)]
    {
        if !v.is_empty() {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    if !e.digest.is_empty() {
        s.push_str(&format!(" digest={}", e.digest.get(..16).unwrap_or(&e.digest)));
    }
    s.push('\n');
    s
}

pub fn run(a: &AuditArgs) -> ExitCode {
    let dir = a.state_dir.clone().unwrap_or_else(crate::store::default_dir);
    let store = match Store::open_existing(&dir) {
        Ok(Some(s)) => s,
        Ok(None) => return fail(format!("no state database in {}: nothing was recorded there", dir.display())),
        Err(e) => return fail(e),
    };
    match &a.action {
        AuditAction::Verify { json } => match store.verify_audit() {
            Ok(Ok(v)) => {
                if *json {
                    emit(&format!("{}\n", serde_json::json!({"ok": true, "rows": v.rows, "head": v.head})));
                } else {
                    emit(&format!("audit log ok: {} rows, last hash {}\n", v.rows, v.head));
                }
                ExitCode::SUCCESS
            }
            Ok(Err(broken)) => {
                if *json {
                    emit(&format!("{}\n", serde_json::json!({"ok": false, "error": broken.to_string()})));
                } else {
                    eprintln!("fak: the audit log does not verify: {broken}");
                }
                ExitCode::from(1)
            }
            Err(e) => fail(e),
        },
        AuditAction::Tail { lines, follow, json, after } => {
            let head = match store.audit_head() {
                Ok(h) => h,
                Err(e) => return fail(e),
            };
            let mut after = after.unwrap_or(head - i64::from(*lines)).max(0);
            loop {
                let rows = match store.audit_rows(after, 1000) {
                    Ok(r) => r,
                    Err(e) => return fail(e),
                };
                if let Some(last) = rows.last() {
                    after = last.seq;
                }
                let out: String = rows.iter().map(|r| line(r, *json)).collect();
                if !super::try_emit(&out) {
                    // The reader went away (`| head`).
                    return ExitCode::SUCCESS;
                }
                if rows.is_empty() && !*follow {
                    return ExitCode::SUCCESS;
                }
                if rows.is_empty() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}
