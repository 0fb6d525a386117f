//! `fak preflight`: decide one call, or a batch of them.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value as Json};

use super::output::{explain_text, print_diags, verdict_json, verdict_line};
use super::{fail, DiagArgs};
use crate::eval::{self, Call, ToolResult, TraceState, Verdict};
use crate::ir::VerdictKind;
use crate::load::{self, Policy};

/// Decide tool calls, and tool results, against a policy.
///
/// Prints `verdict=<ALLOW|TRANSFORM|DENY> reason=<REASON> by=<rule> disposition=<...>`; for a
/// result (`--result`), `verdict=<ALLOW|QUARANTINE|DENY> reason=<REASON> kind=<secret kind>
/// ...` when it holds a secret.
/// The exit status is 0 whatever the verdict; it is non-zero (2) only when fak itself could
/// not run: bad flags, an unreadable file, or a policy with errors. Arguments that are not
/// JSON are a verdict (`DENY MALFORMED`), not a failure.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fak preflight --tool Bash --args '{\"command\":\"rm -rf ~\"}'\n  fak preflight --tool Edit --args @call.json --policy policy.fak --explain\n  fak preflight --tool Read --result @.env\n  fak preflight --batch calls.jsonl --policy examples/dogfood-claude-policy.json"
)]
pub struct PreflightArgs {
    /// The tool name, e.g. `Bash`.
    #[arg(long, required_unless_present = "batch")]
    pub tool: Option<String>,
    /// The call's arguments: JSON, `@FILE`, or `-` for stdin. Default `{}`.
    #[arg(long)]
    pub args: Option<String>,
    /// Admit a tool result instead of deciding a call: the result's text, `@FILE`, or `-` for
    /// stdin.
    #[arg(long, conflicts_with = "args")]
    pub result: Option<String>,
    /// A policy: `.fak` or `fak-policy/v1` JSON. Default: the built-in floor.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Relative paths are resolved against this directory. Default: the current directory.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// The home directory `~` and `$HOME` stand for in commands and paths. Default: $HOME.
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Where quarantined results are kept (`fak quarantine`). Default: `$XDG_STATE_HOME/fak`
    /// (`~/.local/state/fak`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The trace's taint level: trusted, untrusted or quarantined.
    #[arg(long, default_value = "trusted")]
    pub taint: String,
    /// Who the call is made for (`principal` in rules).
    #[arg(long)]
    pub principal: Option<String>,
    /// Show the path through the rules.
    #[arg(long)]
    pub explain: bool,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read JSON lines `{"tool": ..., "args": {...}}` (a call) or `{"tool": ..., "result":
    /// "..."}` (a result) from FILE (`-` for stdin) and write one verdict JSON line for each.
    #[arg(long, conflicts_with_all = ["tool", "args", "result"])]
    pub batch: Option<String>,
    #[command(flatten)]
    pub diag: DiagArgs,
}

pub fn run(a: &PreflightArgs) -> ExitCode {
    let loaded = match &a.policy {
        Some(p) => load::from_path(p),
        None => load::builtin(),
    };
    let policy = match loaded.into_result() {
        Ok(p) => p,
        Err((sources, diags)) => {
            print_diags(&diags, &sources, a.diag.error_format);
            return fail("the policy has errors; nothing was decided");
        }
    };
    let Some(taint) = crate::ir::taint_rank(&a.taint) else {
        return fail(format!("unknown taint level `{}`: use trusted, untrusted or quarantined", a.taint));
    };
    let workspace = match &a.workspace {
        Some(w) => match std::path::absolute(w) {
            Ok(w) => w,
            Err(e) => return fail(format!("cannot resolve the workspace `{}`: {e}", w.display())),
        },
        None => match std::env::current_dir() {
            Ok(d) => d,
            Err(e) => return fail(format!("cannot read the current directory: {e}; pass --workspace")),
        },
    };
    let home =
        a.home.clone().or_else(|| std::env::var_os("HOME").map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("/"));
    let mut trace = TraceState::with_workspace(&workspace.to_string_lossy()).home(&home.to_string_lossy());
    trace.taint = taint;
    trace.principal = a.principal.clone();
    if let Some(batch) = &a.batch {
        return run_batch(&policy, batch, &trace, &mut Pager::new(a));
    }
    let tool = a.tool.clone().unwrap_or_default();
    if let Some(spec) = &a.result {
        let text = match read_args(Some(spec)) {
            Ok(text) => text,
            Err(e) => return fail(e.replace("the arguments", "the result")),
        };
        let result = ToolResult { tool, text };
        let (mut verdict, explain) = eval::admit_explained(&policy.dag, &result, &trace);
        let mut store = Pager::new(a);
        if let Err(e) = store.page_out(&result, &mut verdict) {
            let _ = print_verdict(a, &policy, &verdict, Some(explain));
            return fail(e);
        }
        return print_verdict(a, &policy, &verdict, Some(explain));
    }
    let args = match read_args(a.args.as_deref()) {
        Ok(text) => text,
        Err(e) => return fail(e),
    };
    let (verdict, explain) = match serde_json::from_str::<Json>(&args) {
        Ok(args) => {
            let call = Call { tool, args };
            let (v, ex) = eval::decide_explained(&policy.dag, &call, &trace);
            (v, Some(ex))
        }
        Err(e) => (malformed(&e), None),
    };
    print_verdict(a, &policy, &verdict, explain)
}

fn print_verdict(
    a: &PreflightArgs,
    policy: &Policy,
    verdict: &Verdict,
    explain: Option<crate::compile::Explain>,
) -> ExitCode {
    let verdict = verdict.clone();
    let mut out = String::new();
    if a.json {
        let mut j = verdict_json(&verdict, &policy.sources);
        if let (true, Some(ex), Some(obj)) = (a.explain, &explain, j.as_object_mut()) {
            obj.insert("explain".into(), serde_json::to_value(ex).unwrap_or(Json::Null));
        }
        out.push_str(&j.to_string());
        out.push('\n');
    } else {
        out.push_str(&verdict_line(&verdict));
        out.push('\n');
        if a.explain {
            out.push_str(&explain_text(&verdict, &explain.unwrap_or_default(), &policy.sources));
        }
    }
    super::emit(&out.to_string());
    ExitCode::SUCCESS
}

/// Pages quarantined results out to the store, opened on first need.
struct Pager {
    dir: PathBuf,
    store: Option<crate::store::Store>,
}

impl Pager {
    fn new(a: &PreflightArgs) -> Pager {
        Pager { dir: a.state_dir.clone().unwrap_or_else(crate::store::default_dir), store: None }
    }

    /// Stores a quarantined result and sets the verdict's page; the page is committed before
    /// this returns. Anything else passes untouched.
    fn page_out(&mut self, r: &ToolResult, v: &mut Verdict) -> Result<(), String> {
        if v.verdict != VerdictKind::Quarantine {
            return Ok(());
        }
        let store = match &mut self.store {
            Some(s) => s,
            None => self.store.insert(crate::store::Store::open(&self.dir).map_err(|e| e.to_string())?),
        };
        let kinds: Vec<String> = v.kinds.iter().map(|k| k.to_string()).collect();
        let page = store
            .quarantine(&r.tool, &v.reason, &kinds, &r.text)
            .map_err(|e| format!("the result could not be paged out: {e}"))?;
        v.page = Some(page.id.into());
        Ok(())
    }
}

fn malformed(e: &serde_json::Error) -> Verdict {
    Verdict::builtin(VerdictKind::Deny, "MALFORMED", "fak.input", Some(format!("the arguments are not JSON: {e}")))
}

fn read_args(spec: Option<&str>) -> Result<String, String> {
    match spec {
        None => Ok("{}".into()),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read the arguments from stdin: {e}"))?;
            Ok(s)
        }
        Some(s) if s.starts_with('@') => {
            let path = s.get(1..).unwrap_or("");
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the arguments from `{path}`: {e}"))
        }
        Some(s) => Ok(s.to_string()),
    }
}

fn run_batch(policy: &Policy, spec: &str, trace: &TraceState, pager: &mut Pager) -> ExitCode {
    let reader: Box<dyn std::io::BufRead> = if spec == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(spec) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => return fail(format!("cannot read `{spec}`: {e}")),
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(format!("cannot read line {} of `{spec}`: {e}", n + 1)),
        };
        if line.trim().is_empty() {
            continue;
        }
        let verdict = match serde_json::from_str::<Json>(&line) {
            Ok(Json::Object(mut o)) => match o.remove("tool") {
                Some(Json::String(tool)) if o.contains_key("result") => match o.remove("result") {
                    Some(Json::String(text)) => {
                        let r = ToolResult { tool, text };
                        let mut v = eval::admit(&policy.dag, &r, trace);
                        if let Err(e) = pager.page_out(&r, &mut v) {
                            return fail(e);
                        }
                        v
                    }
                    _ => Verdict::builtin(
                        VerdictKind::Deny,
                        "MALFORMED",
                        "fak.input",
                        Some("a result line's `result` is a string".into()),
                    ),
                },
                Some(Json::String(tool)) => {
                    let args = o.remove("args").unwrap_or_else(|| json!({}));
                    eval::decide(&policy.dag, &Call { tool, args }, trace)
                }
                _ => Verdict::builtin(
                    VerdictKind::Deny,
                    "MALFORMED",
                    "fak.input",
                    Some("each line needs a string `tool`".into()),
                ),
            },
            Ok(_) => {
                Verdict::builtin(VerdictKind::Deny, "MALFORMED", "fak.input", Some("each line is a JSON object".into()))
            }
            Err(e) => Verdict::builtin(
                VerdictKind::Deny,
                "MALFORMED",
                "fak.input",
                Some(format!("the line is not JSON: {e}")),
            ),
        };
        let mut j = verdict_json(&verdict, &policy.sources);
        if let Some(obj) = j.as_object_mut() {
            obj.insert("line".into(), Json::from(n + 1));
        }
        if writeln!(out, "{j}").is_err() {
            return ExitCode::SUCCESS; // the reader went away
        }
        // From stdin, a caller waits for each verdict before it sends the next line.
        if spec == "-" && out.flush().is_err() {
            return ExitCode::SUCCESS;
        }
    }
    if out.flush().is_err() {
        return ExitCode::SUCCESS;
    }
    ExitCode::SUCCESS
}
