//! `fak preflight` with no `--tool`: an interactive loop on a policy, or, when stdin is not a
//! terminal, one input per line in and one answer per line out, with no prompts.
//!
//! Inputs: `TOOL REST` (the rest of the line is the tool's main argument, or its JSON
//! arguments when it starts with `{`; JSON may run over several lines), and commands:
//! `:result TOOL TEXT`, `:trace`, `:reset`, `:why`, `:load FILE`, `:reload`, `:policy`,
//! `:test`, `:help`, `:quit`. The session is one trace (`repl-<pid>` unless `--trace`), kept in
//! the state directory like any other.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value as Json};

use super::output::{explain_text, verdict_line};
use super::preflight::PreflightArgs;
use crate::compile::Explain;
use crate::eval::{Call, ToolResult, TraceState, Verdict};
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
            ":why" => match &self.last {
                Some((v, ex)) => explain_text(v, ex, &self.policy.sources),
                None => "nothing decided yet\n".into(),
            },
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
                        let out = format!("{} taint={}\n", verdict_line(&v), level(rec.taint.max(self.base.taint)));
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
                        let out = format!("{}\n", verdict_line(&v));
                        self.last = Some((v, ex));
                        out
                    }
                    Err(e) => format!("error: {e}\n"),
                }
            }
        })
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
    let mut s = Session { policy, path: a.policy.clone(), base, trace, dir, last: None };
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprintln!(
            "fak preflight: decide calls against {}; :help for help",
            a.policy.as_ref().map_or("the built-in floor".into(), |p| p.display().to_string())
        );
    }
    let mut out = std::io::stdout().lock();
    let mut buf = String::new();
    let mut lines = stdin.lock().lines();
    loop {
        if tty {
            eprint!("{}", if buf.is_empty() { "fak> " } else { "...> " });
        }
        let Some(line) = lines.next() else { break };
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
