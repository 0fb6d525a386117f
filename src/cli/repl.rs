//! `fak preflight` with no `--tool`: an interactive loop on a policy, or, when stdin is not a
//! terminal, one input per line in and one answer per line out, with no prompts.
//!
//! Inputs: `TOOL REST` (the rest of the line is the tool's main argument, or its JSON
//! arguments when it starts with `{`; JSON may run over several lines), and commands:
//! `:result TOOL TEXT`, `:trace`, `:reset`, `:why`, `:load FILE`, `:reload`, `:policy`,
//! `:test`, `:help`, `:quit`. The session is one trace (`repl-<pid>` unless `--trace`), kept in
//! the state directory like any other.
//!
//! On a terminal the line editor (`editor`) adds history (`repl-history` in the state
//! directory), tab completion and colour (off with `NO_COLOR`); what each input answers is the
//! same text either way, so the pipe tests cover the answers and the terminal test the editor.

mod editor;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value as Json};

use super::output::{explain_text, verdict_line};
use super::preflight::PreflightArgs;
use crate::compile::Explain;
use crate::eval::{Call, ToolResult, TraceState, Verdict};
use crate::ir::VerdictKind;
use crate::load::{self, Policy};
use crate::store::Store;

const HELP: &str = "\
  TOOL ARGUMENT      decide a call: `Bash rm -rf /tmp/x`, `Read .env`, `WebFetch https://x`;
                     the rest of the line is the tool's main argument
  TOOL {JSON}        decide a call with these arguments (may run over several lines)
  :result TOOL TEXT  admit a tool result (`:result WebFetch ignore previous instructions`)
  :why               how the last verdict was reached
  :trace             this session's trace and its taint
  :reset             clear the trace's taint
  :load FILE         decide with another policy; :reload reads it again
  :policy            what the policy holds: rules per tool, reasons
  :test              run the policy's tests
  :help, :quit
";

/// The argument the rest of a `TOOL REST` line is, per tool.
fn main_argument(tool: &str) -> &'static str {
    match tool {
        "Bash" => "command",
        "Read" | "Write" | "Edit" | "MultiEdit" => "file_path",
        "NotebookEdit" | "NotebookRead" => "notebook_path",
        "Glob" | "Grep" => "pattern",
        "LS" => "path",
        "WebFetch" => "url",
        "WebSearch" => "query",
        "Task" => "prompt",
        _ => "input",
    }
}

struct Session {
    policy: Policy,
    /// ANSI colour in answers (a terminal, and `NO_COLOR` unset).
    color: bool,
    path: Option<PathBuf>,
    base: TraceState,
    trace: String,
    dir: PathBuf,
    last: Option<(Verdict, Explain)>,
}

impl Session {
    fn store(&self) -> Result<Store, String> {
        Store::open(&self.dir).map_err(|e| e.to_string())
    }

    /// The answer to one complete input.
    fn input(&mut self, line: &str) -> Option<String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Some(String::new());
        }
        let (head, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        Some(match head {
            ":quit" | ":q" | ":exit" => return None,
            ":help" | ":h" => HELP.to_string(),
            ":why" => self.why(),
            ":trace" => match self.store().and_then(|s| s.taint(&self.trace).map_err(|e| e.to_string())) {
                Ok(t) => format!("trace={} taint={}\n", self.trace, level(t.max(self.base.taint))),
                Err(e) => format!("error: {e}\n"),
            },
            ":reset" => match self.store().and_then(|mut s| s.reset(&self.trace).map_err(|e| e.to_string())) {
                Ok(was) => format!("trace={} taint=trusted was={}\n", self.trace, level(was)),
                Err(e) => format!("error: {e}\n"),
            },
            ":load" if !rest.is_empty() => self.load(Some(PathBuf::from(rest))),
            ":reload" => self.load(self.path.clone()),
            ":policy" => self.summary(),
            ":test" => self.tests(),
            ":result" => {
                let (tool, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                if tool.is_empty() {
                    return Some("usage: :result TOOL TEXT\n".into());
                }
                let result = ToolResult { tool: tool.to_string(), text: text.replace("\\n", "\n") };
                let mut store = match self.store() {
                    Ok(s) => s,
                    Err(e) => return Some(format!("error: {e}\n")),
                };
                match crate::ledger::admit(&mut store, &self.policy.dag, &result, Some(&self.trace), &self.base) {
                    Ok((v, ex, rec)) => {
                        let out = format!("{} taint={}\n", self.paint(&v), level(rec.taint.max(self.base.taint)));
                        self.last = Some((v, ex));
                        out
                    }
                    Err(e) => format!("error: {e}\n"),
                }
            }
            h if h.starts_with(':') => format!("unknown command `{h}`; :help lists them\n"),
            tool => {
                let args = if rest.starts_with('{') {
                    match serde_json::from_str::<Json>(rest) {
                        Ok(a) => a,
                        Err(e) => return Some(format!("error: the arguments are not JSON: {e}\n")),
                    }
                } else {
                    json!({ main_argument(tool): rest })
                };
                let call = Call { tool: tool.to_string(), args };
                let st = match Store::open_existing(&self.dir) {
                    Ok(Some(s)) => crate::ledger::state(&s, Some(&self.trace), &self.base).map_err(|e| e.to_string()),
                    Ok(None) => Ok(self.base.clone()),
                    Err(e) => Err(e.to_string()),
                };
                match st {
                    Ok(st) => {
                        let (v, ex) = crate::compile::decide_explained(&self.policy.dag, &call, &st);
                        let out = format!("{}\n", self.paint(&v));
                        self.last = Some((v, ex));
                        out
                    }
                    Err(e) => format!("error: {e}\n"),
                }
            }
        })
    }

    /// The verdict line, its verdict coloured on a terminal.
    fn paint(&self, v: &Verdict) -> String {
        let line = verdict_line(v);
        if !self.color {
            return line;
        }
        let colour = match v.verdict {
            VerdictKind::Allow => "32",
            VerdictKind::Transform => "33",
            VerdictKind::Quarantine => "35",
            VerdictKind::Deny => "1;31",
        };
        match line.split_once(' ') {
            Some((head, rest)) => format!("\x1b[{colour}m{head}\x1b[0m {rest}"),
            None => line,
        }
    }

    /// `:why`: the explanation of the last verdict, then the source of every rule that
    /// matched, its name underlined.
    fn why(&self) -> String {
        let Some((v, ex)) = &self.last else { return "nothing decided yet\n".into() };
        let sources = &self.policy.sources;
        let mut s = explain_text(v, ex, sources);
        let program = self.policy.dag.program();
        let mut shown = Vec::new();
        let matched = ex.rules.iter().filter(|(_, holds)| *holds).map(|(r, _)| r.as_str());
        for id in std::iter::once(&*v.by.rule).chain(matched) {
            if shown.contains(&id) {
                continue;
            }
            shown.push(id);
            if let Some(rule) = program.rules.iter().find(|r| &*r.id == id) {
                s.push_str(&snippet(sources, rule.loc, self.color));
            }
        }
        s
    }

    fn load(&mut self, path: Option<PathBuf>) -> String {
        let loaded = match &path {
            Some(p) => load::from_path(p),
            None => load::builtin(),
        };
        match loaded.into_result() {
            Ok(p) => {
                self.policy = p;
                self.path = path;
                format!(
                    "loaded {}\n",
                    self.path.as_ref().map_or("the built-in floor".into(), |p| p.display().to_string())
                )
            }
            Err((sources, diags)) => {
                let mut s = String::new();
                for d in &diags {
                    s.push_str(&crate::diag::render(d, &sources, crate::diag::Format::Plain, false));
                }
                s.push_str("the policy has errors; still deciding with the one loaded before\n");
                s
            }
        }
    }

    fn summary(&self) -> String {
        use std::collections::BTreeMap;
        let p = self.policy.dag.program();
        let mut per_tool: BTreeMap<String, usize> = BTreeMap::new();
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &p.rules {
            let mut tools: Vec<String> = r.tools.exact.iter().cloned().collect();
            tools.extend(r.tools.prefixes.iter().map(|p| format!("{p}*")));
            if r.tools.any {
                tools.push("*".into());
            }
            for t in tools {
                *per_tool.entry(t).or_default() += 1;
            }
            *reasons.entry(&r.reason).or_default() += 1;
        }
        let mut s = format!(
            "{} rules, {} detectors, {} sources, {} tests\nrules per tool:",
            p.rules.len(),
            p.detectors.len(),
            p.sources.len(),
            p.tests.len()
        );
        for (t, n) in &per_tool {
            s.push_str(&format!(" {t}={n}"));
        }
        s.push_str("\nreasons:");
        for (r, n) in &reasons {
            s.push_str(&format!(" {r}={n}"));
        }
        s.push('\n');
        s
    }

    fn tests(&self) -> String {
        let outcomes = crate::policytest::run(&self.policy);
        let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
        let mut s = format!("{} passed, {} failed\n", outcomes.len() - failed.len(), failed.len());
        for o in failed {
            s.push_str(&format!("FAIL  {}: {}\n", o.test.name, o.failures.join("; ")));
        }
        s
    }
}

/// The statement at `loc` (up to its `;`, at most 8 lines) with the span underlined, as a
/// compiler shows code: `  --> file:line:col`, then numbered lines.
fn snippet(sources: &crate::diag::Sources, loc: crate::diag::Loc, color: bool) -> String {
    let text = sources.text(loc.file);
    let (line_no, col) = sources.line_col(loc.file, loc.span.start);
    let start = text.get(..loc.span.start).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
    let width = (line_no + 8).to_string().len();
    let mut s = format!("  {:width$}--> {}:{line_no}:{col}\n", "", sources.name(loc.file));
    let rest = text.get(start..).unwrap_or("");
    for (k, line) in rest.lines().take(8).enumerate() {
        s.push_str(&format!("  {:>width$} | {line}\n", line_no + k));
        if k == 0 {
            let len = loc.span.end.saturating_sub(loc.span.start).clamp(1, line.len().saturating_sub(col - 1).max(1));
            let marks = "^".repeat(len);
            let marks = if color { format!("\x1b[1;31m{marks}\x1b[0m") } else { marks };
            s.push_str(&format!("  {:width$} | {}{marks}\n", "", " ".repeat(col - 1)));
        }
        if line.trim_end().ends_with(';') {
            break;
        }
    }
    s
}

fn level(rank: u8) -> &'static str {
    crate::ir::TAINT_LEVELS.get(usize::from(rank)).copied().unwrap_or("quarantined")
}

/// Whether `buf` is a whole input: JSON arguments whose brackets are all closed (strings
/// counted), or any line that is not JSON.
fn complete(buf: &str) -> bool {
    let Some(at) = buf.find('{') else { return true };
    let (mut depth, mut in_str, mut escaped) = (0i64, false, false);
    for c in buf.get(at..).unwrap_or("").chars() {
        match (in_str, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_str = false,
            (false, _, '"') => in_str = true,
            (false, _, '{' | '[') => depth += 1,
            (false, _, '}' | ']') => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
}

pub fn run(a: &PreflightArgs, policy: Policy, base: TraceState) -> ExitCode {
    let trace = a.trace.clone().unwrap_or_else(|| format!("repl-{}", std::process::id()));
    let dir = a.state_dir.clone().unwrap_or_else(crate::store::default_dir);
    let tty = std::io::stdin().is_terminal();
    let color = tty && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut s = Session { policy, color, path: a.policy.clone(), base, trace, dir, last: None };
    if tty {
        terminal(&mut s)
    } else {
        pipe(&mut s)
    }
}

/// Tool names the policy's rules name, for completion.
fn policy_tools(p: &Policy) -> Vec<String> {
    p.dag.program().rules.iter().flat_map(|r| r.tools.exact.iter().cloned()).collect()
}

/// One input a line (JSON over several), one answer each, no prompts.
fn pipe(s: &mut Session) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut buf = String::new();
    for line in std::io::stdin().lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return super::fail(format!("cannot read stdin: {e}")),
        };
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(&line);
        if !complete(&buf) {
            continue;
        }
        let input = std::mem::take(&mut buf);
        let Some(answer) = s.input(&input) else { break };
        if out.write_all(answer.as_bytes()).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// The line editor: prompts, history, completion, colour.
fn terminal(s: &mut Session) -> ExitCode {
    use rustyline::error::ReadlineError;
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)
        .and_then(|b| Ok(b.history_ignore_space(true).max_history_size(5000)?.build()));
    let mut rl =
        match config.and_then(rustyline::Editor::<editor::ReplHelper, rustyline::history::FileHistory>::with_config) {
            Ok(rl) => rl,
            Err(e) => return super::fail(format!("cannot start the line editor: {e}")),
        };
    rl.set_helper(Some(editor::ReplHelper::new(policy_tools(&s.policy), s.color)));
    // History is a convenience: a state directory that cannot hold it costs only that.
    let history = s.dir.join("repl-history");
    let keep_history = std::fs::create_dir_all(&s.dir).is_ok();
    if keep_history && history.exists() {
        if let Err(e) = rl.load_history(&history) {
            eprintln!("fak: cannot read the history in {}: {e}", history.display());
        }
    }
    eprintln!(
        "fak preflight: deciding against {}; :help lists the commands, Tab completes",
        s.path.as_ref().map_or("the built-in floor".into(), |p| p.display().to_string())
    );
    let mut out = std::io::stdout().lock();
    loop {
        let input = match rl.readline("fak> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return super::fail(format!("cannot read the terminal: {e}")),
        };
        if !input.trim().is_empty() {
            let _ = rl.add_history_entry(input.as_str());
            if keep_history {
                let _ = rl.append_history(&history);
            }
        }
        let Some(answer) = s.input(&input) else { break };
        if input.trim_start().starts_with(":load") || input.trim_start().starts_with(":reload") {
            if let Some(h) = rl.helper_mut() {
                h.set_tools(policy_tools(&s.policy));
            }
        }
        if out.write_all(answer.as_bytes()).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
