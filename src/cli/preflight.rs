//! `fak preflight`: decide one call, or a batch of them.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value as Json};

use super::output::{explain_text, print_diags, verdict_json, verdict_line};
use super::{fail, DiagArgs};
use crate::eval::{Call, ToolResult, TraceState, Verdict};
use crate::ir::VerdictKind;
use crate::ledger;
use crate::load::{self, Policy};
use crate::store::Store;

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
    /// The tool name, e.g. `Bash`. Without it (and without `--batch`): an interactive loop, or
    /// one input per line when stdin is not a terminal (`:help` lists the inputs).
    #[arg(long)]
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
    /// The trace (conversation) the call or result belongs to. Its taint is read from the
    /// state directory before deciding, and a result raises it (`fak trace`).
    #[arg(long)]
    pub trace: Option<String>,
    /// The trace's taint level at least: trusted, untrusted or quarantined.
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
    /// "..."}` (a result), each with an optional `"trace"` (default `--trace`), from FILE
    /// (`-` for stdin) and write one verdict JSON line for each, in order: a result raises its
    /// trace before the next line is decided.
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
        return run_batch(&policy, batch, &trace, a.trace.as_deref(), &mut State::new(a));
    }
    let Some(tool) = a.tool.clone() else {
        if a.result.is_some() || a.args.is_some() {
            return fail("--args and --result need --tool");
        }
        return super::repl::run(a, policy, trace);
    };
    let mut state = State::new(a);
    if let Some(spec) = &a.result {
        let text = match read_args(Some(spec)) {
            Ok(text) => text,
            Err(e) => return fail(e.replace("the arguments", "the result")),
        };
        let result = ToolResult { tool, text };
        return match state.admit(&policy, &result, a.trace.as_deref(), &trace) {
            Ok((verdict, explain, taint)) => print_verdict(a, &policy, &verdict, Some(explain), taint),
            Err(e) => fail(e),
        };
    }
    let args = match read_args(a.args.as_deref()) {
        Ok(text) => text,
        Err(e) => return fail(e),
    };
    let (verdict, explain, taint) = match serde_json::from_str::<Json>(&args) {
        Ok(args) => match state.decide(&policy, &Call { tool, args }, a.trace.as_deref(), &trace) {
            Ok((v, ex, taint)) => (v, Some(ex), taint),
            Err(e) => return fail(e),
        },
        Err(e) => (malformed(&e), None, None),
    };
    print_verdict(a, &policy, &verdict, explain, taint)
}

fn print_verdict(
    a: &PreflightArgs,
    policy: &Policy,
    verdict: &Verdict,
    explain: Option<crate::compile::Explain>,
    taint: Option<(&str, u8)>,
) -> ExitCode {
    let verdict = verdict.clone();
    let mut out = String::new();
    if a.json {
        let mut j = verdict_json(&verdict, &policy.sources);
        if let Some(obj) = j.as_object_mut() {
            if let (true, Some(ex)) = (a.explain, &explain) {
                obj.insert("explain".into(), serde_json::to_value(ex).unwrap_or(Json::Null));
            }
            add_trace(obj, taint);
        }
        out.push_str(&j.to_string());
        out.push('\n');
    } else {
        out.push_str(&verdict_line(&verdict));
        if let Some((id, rank)) = taint {
            out.push_str(&format!(" trace={id} taint={}", level(rank)));
        }
        out.push('\n');
        if a.explain {
            out.push_str(&explain_text(&verdict, &explain.unwrap_or_default(), &policy.sources));
        }
    }
    super::emit(&out.to_string());
    ExitCode::SUCCESS
}

fn level(rank: u8) -> &'static str {
    crate::ir::TAINT_LEVELS.get(usize::from(rank)).copied().unwrap_or("quarantined")
}

fn add_trace(obj: &mut serde_json::Map<String, Json>, taint: Option<(&str, u8)>) {
    if let Some((id, rank)) = taint {
        obj.insert("trace".into(), Json::from(id));
        obj.insert("taint".into(), Json::from(level(rank)));
    }
}

/// The store, opened on first need: a call without a trace never touches it.
struct State {
    dir: PathBuf,
    store: Option<Store>,
}

impl State {
    fn new(a: &PreflightArgs) -> State {
        State { dir: a.state_dir.clone().unwrap_or_else(crate::store::default_dir), store: None }
    }

    fn store(&mut self) -> Result<&mut Store, String> {
        match self.store {
            Some(ref mut s) => Ok(s),
            None => Ok(self.store.insert(Store::open(&self.dir).map_err(|e| e.to_string())?)),
        }
    }

    /// Decides a call; in a trace, its stored taint counts. Returns the trace and its taint
    /// when there is one.
    fn decide<'t>(
        &mut self,
        policy: &Policy,
        call: &Call,
        trace: Option<&'t str>,
        base: &TraceState,
    ) -> Result<(Verdict, crate::compile::Explain, Option<(&'t str, u8)>), String> {
        let Some(id) = trace else {
            let (v, ex) = crate::compile::decide_explained(&policy.dag, call, base);
            return Ok((v, ex, None));
        };
        // Reading a taint needs no schema work, and no database at all for a trusted trace.
        let st = match &self.store {
            Some(store) => ledger::state(store, Some(id), base),
            None => match Store::open_existing(&self.dir) {
                Ok(Some(store)) => ledger::state(self.store.insert(store), Some(id), base),
                Ok(None) => Ok(base.clone()),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| e.to_string())?;
        let (v, ex) = crate::compile::decide_explained(&policy.dag, call, &st);
        Ok((v, ex, Some((id, st.taint))))
    }

    /// Admits a result: a quarantined one is paged out, a read one witnessed, the trace raised,
    /// all committed before the verdict is returned.
    fn admit<'t>(
        &mut self,
        policy: &Policy,
        result: &ToolResult,
        trace: Option<&'t str>,
        base: &TraceState,
    ) -> Result<(Verdict, crate::compile::Explain, Option<(&'t str, u8)>), String> {
        let store = self.store()?;
        let (v, ex, rec) = ledger::admit(store, &policy.dag, result, trace, base)
            .map_err(|e| format!("the result could not be recorded: {e}"))?;
        Ok((v, ex, trace.map(|id| (id, rec.taint.max(base.taint)))))
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

fn run_batch(
    policy: &Policy,
    spec: &str,
    base: &TraceState,
    default_trace: Option<&str>,
    state: &mut State,
) -> ExitCode {
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
        let mut line_trace: Option<String> = default_trace.map(str::to_string);
        let mut taint = None;
        let verdict = match serde_json::from_str::<Json>(&line) {
            Ok(Json::Object(mut o)) => match (o.remove("tool"), o.remove("trace")) {
                (_, Some(t)) if !t.is_string() => Verdict::builtin(
                    VerdictKind::Deny,
                    "MALFORMED",
                    "fak.input",
                    Some("a line's `trace` is a string".into()),
                ),
                (Some(Json::String(tool)), t) if o.contains_key("result") => match o.remove("result") {
                    Some(Json::String(text)) => {
                        if let Some(Json::String(t)) = t {
                            line_trace = Some(t);
                        }
                        let r = ToolResult { tool, text };
                        match state.admit(policy, &r, line_trace.as_deref(), base) {
                            Ok((v, _, t)) => {
                                taint = t.map(|(_, rank)| rank);
                                v
                            }
                            Err(e) => return fail(e),
                        }
                    }
                    _ => Verdict::builtin(
                        VerdictKind::Deny,
                        "MALFORMED",
                        "fak.input",
                        Some("a result line's `result` is a string".into()),
                    ),
                },
                (Some(Json::String(tool)), t) => {
                    if let Some(Json::String(t)) = t {
                        line_trace = Some(t);
                    }
                    let args = o.remove("args").unwrap_or_else(|| json!({}));
                    match state.decide(policy, &Call { tool, args }, line_trace.as_deref(), base) {
                        Ok((v, _, t)) => {
                            taint = t.map(|(_, rank)| rank);
                            v
                        }
                        Err(e) => return fail(e),
                    }
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
            add_trace(obj, line_trace.as_deref().zip(taint));
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
