//! Any policy text, then arbitrary calls: loading never panics; a policy that checks clean
//! compiles, decides and admits anything without panicking (the Dag agreeing with the
//! reference interpreter), and runs its own tests.
//!
//! Input: the policy source, then optionally a NUL byte and bytes that `arbitrary` turns into
//! calls and tool results. A plain `.fak` file is a valid input (and the seeds are exactly
//! that); a source starting with `{` is loaded as a `fak-policy/v1` manifest.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use fak::compile::{compile, CompileOptions};
use fak::eval::{self, Call, ToolResult, TraceState};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};

const KEYS: &[&str] =
    &["command", "file_path", "edits", "n", "old_string", "new_string", "content", "path", "url", "pattern"];
const TOOLS: &[&str] =
    &["Bash", "Edit", "Write", "Read", "MultiEdit", "Grep", "WebFetch", "mcp_x", "read_file", "get_issue"];

fn json(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Json> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => Json::Null,
        1 => Json::Bool(u.arbitrary()?),
        2 => Json::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Json::Null, Json::Number),
        4 if depth > 0 => {
            let n = u.int_in_range(0..=4u8)?;
            Json::Array((0..n).map(|_| json(u, depth - 1)).collect::<Result<_, _>>()?)
        }
        5 if depth > 0 => object(u, depth - 1)?,
        _ => Json::String(u.arbitrary()?),
    })
}

fn object(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Json> {
    let mut m = Map::new();
    let n = u.int_in_range(0..=5u8)?;
    for _ in 0..n {
        let key = if u.ratio(3, 4)? { (*u.choose(KEYS)?).to_string() } else { u.arbitrary()? };
        m.insert(key, json(u, depth)?);
    }
    Ok(Json::Object(m))
}

fn tool(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(TOOLS)?).to_string())
    } else {
        String::arbitrary(u)
    }
}

fn call(u: &mut Unstructured<'_>) -> arbitrary::Result<Call> {
    let tool = tool(u)?;
    let args = if u.ratio(9, 10)? { object(u, 3)? } else { json(u, 3)? };
    Ok(Call { tool, args })
}

fuzz_target!(|data: &[u8]| {
    let (src, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(src) = std::str::from_utf8(src) else { return };
    let name = if src.trim_start().starts_with('{') { "fuzz.json" } else { "fuzz.fak" };
    let loaded = fak::load::from_source(name, src);
    // Diagnostics render without panicking, whatever their spans.
    for d in &loaded.diags {
        let _ = fak::diag::render(d, &loaded.sources, fak::diag::Format::Plain, false);
        let _ = fak::diag::render(d, &loaded.sources, fak::diag::Format::Json, false);
    }
    let Ok(policy) = loaded.compile(CompileOptions::default()) else { return };
    // The policy's own tests run (they may fail; they may not panic).
    let _ = fak::policytest::run(&policy);
    let program = policy.dag.program().clone();
    let without = compile(program.clone(), CompileOptions { prefilter: false });

    let mut u = Unstructured::new(rest);
    let mut calls: Vec<Call> = program
        .tests
        .iter()
        .filter_map(|t| match &t.input {
            fak::ir::TestInput::Call { tool, args } => Some(Call { tool: tool.clone(), args: args.clone() }),
            fak::ir::TestInput::Result { .. } => None,
        })
        .collect();
    for _ in 0..4 {
        match call(&mut u) {
            Ok(c) => calls.push(c),
            Err(_) => break,
        }
    }
    let trace = TraceState::with_workspace("/workspace/repo");
    for c in &calls {
        let a = eval::decide(&policy.dag, c, &trace);
        let b = eval::decide(&without, c, &trace);
        let r = eval::reference::decide(&program, c, &trace);
        assert!(a == b && b == r, "verdicts differ on {} {}:\n{a:?}\n{b:?}\n{r:?}\n--- policy\n{src}", c.tool, c.args);
        if !c.args.is_object() {
            assert_eq!(a.verdict, fak::ir::VerdictKind::Deny);
        }
        let _ = eval::decide_explained(&policy.dag, c, &trace);
    }
    let text: String = u.arbitrary().unwrap_or_default();
    let result = ToolResult { tool: tool(&mut u).unwrap_or_else(|_| "Bash".into()), text };
    let a = eval::admit(&policy.dag, &result, &trace);
    let b = eval::admit(&without, &result, &trace);
    let r = eval::reference::admit(&program, &result, &trace);
    assert!(a == b && b == r, "admit verdicts differ on {result:?}:\n{a:?}\n{b:?}\n{r:?}\n--- policy\n{src}");
});
