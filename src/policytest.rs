//! Running a policy's `test` blocks (`fak policy --test`).

use crate::eval::{self, kind_str, Call, ToolResult, TraceState, Verdict};
use crate::ir;
use crate::load::Policy;

/// The workspace test calls are resolved against, so a test means the same on every machine.
pub const TEST_WORKSPACE: &str = "/workspace/repo";
/// The home directory of test calls (`~`, `$HOME`).
pub const TEST_HOME: &str = "/home/dev";

pub struct TestOutcome<'p> {
    pub test: &'p ir::Test,
    pub verdict: Verdict,
    /// What differs from the expectation; empty when the test passed.
    pub failures: Vec<String>,
}

impl TestOutcome<'_> {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What one detector's own examples showed.
pub struct SecretOutcome<'p> {
    pub detector: &'p crate::secrets::Detector,
    /// Each example that came out wrong, and how; empty when all passed.
    pub failures: Vec<String>,
}

/// Checks every detector against its examples: each `finds` text holds a finding of its kind,
/// and no `ignores` text does.
pub fn run_detectors(policy: &Policy) -> Vec<SecretOutcome<'_>> {
    let detectors = policy.dag.detectors();
    detectors
        .detectors()
        .iter()
        .map(|d| {
            let mut failures = Vec::new();
            let kinds = |text: &str| -> Result<Vec<String>, String> {
                let found = detectors.find(text).map_err(|e| e.0)?;
                Ok(found.of(d.class).map(|f| f.kind.to_string()).collect())
            };
            for text in &d.finds {
                match kinds(text) {
                    Ok(k) if k.contains(&d.kind) => {}
                    Ok(k) => failures.push(format!(
                        "finds {}: no `{}` found{}",
                        serde_json::Value::from(text.as_str()),
                        d.kind,
                        if k.is_empty() { String::new() } else { format!(" (found {})", k.join(", ")) }
                    )),
                    Err(e) => failures.push(e),
                }
            }
            for text in &d.ignores {
                match kinds(text) {
                    Ok(k) if k.contains(&d.kind) => failures.push(format!(
                        "ignores {}: a `{}` was found",
                        serde_json::Value::from(text.as_str()),
                        d.kind
                    )),
                    Ok(_) => {}
                    Err(e) => failures.push(e),
                }
            }
            SecretOutcome { detector: d, failures }
        })
        .collect()
}

pub fn run(policy: &Policy) -> Vec<TestOutcome<'_>> {
    let program = policy.dag.program();
    program.tests.iter().map(|t| run_one(policy, t)).collect()
}

fn run_one<'p>(policy: &'p Policy, t: &'p ir::Test) -> TestOutcome<'p> {
    let mut trace = TraceState::with_workspace(TEST_WORKSPACE).home(TEST_HOME);
    trace.taint = t.taint;
    let verdict = match &t.input {
        ir::TestInput::Call { tool, args } => {
            eval::decide(&policy.dag, &Call { tool: tool.clone(), args: args.clone() }, &trace)
        }
        ir::TestInput::Result { tool, text } => {
            eval::admit(&policy.dag, &ToolResult { tool: tool.clone(), text: text.clone() }, &trace)
        }
    };
    let e = &t.expect;
    let mut failures = Vec::new();
    if verdict.verdict != e.verdict {
        failures.push(format!("expected {}, got {}", kind_str(e.verdict), kind_str(verdict.verdict)));
    }
    if let Some(r) = &e.reason {
        if r.as_str() != &*verdict.reason {
            failures.push(format!("expected reason {r}, got {}", verdict.reason));
        }
    }
    if let Some(by) = &e.by {
        if by.as_str() != &*verdict.by.rule {
            failures.push(format!("expected it decided by `{by}`, got `{}`", verdict.by.rule));
        }
    }
    if let Some(with) = &e.with {
        if verdict.args.as_ref() != Some(with) {
            let got = verdict.args.as_ref().map_or_else(|| "no new arguments".to_string(), ToString::to_string);
            failures.push(format!("expected arguments {with}, got {got}"));
        }
    }
    TestOutcome { test: t, verdict, failures }
}
