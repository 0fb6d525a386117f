//! What the CLI prints: diagnostics, verdict lines, verdict JSON.

use std::io::IsTerminal as _;

use serde_json::{json, Value as Json};

use super::ErrorFormat;
use crate::compile::Explain;
use crate::diag::{self, Diag, Sources};
use crate::eval::{kind_str, Verdict};

/// Prints diagnostics to stderr; returns (errors, warnings).
pub fn print_diags(diags: &[Diag], sources: &Sources, format: ErrorFormat) -> (usize, usize) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let f = match format {
        ErrorFormat::Human => diag::Format::Human,
        ErrorFormat::Plain => diag::Format::Plain,
        ErrorFormat::Json => diag::Format::Json,
    };
    let mut out = String::new();
    for d in diags {
        out.push_str(&diag::render(d, sources, f, color));
    }
    eprint!("{out}");
    let errors = diags.iter().filter(|d| d.is_error()).count();
    (errors, diags.len() - errors)
}

/// `verdict=DENY reason=POLICY_BLOCK by=rule disposition=TERMINAL`, the shape the Go fak
/// printed (its first three fields, in order), then what is new.
pub fn verdict_line(v: &Verdict) -> String {
    let mut s = format!(
        "verdict={} reason={} by={} disposition={}",
        kind_str(v.verdict),
        v.reason,
        v.by.rule,
        v.disposition.as_str()
    );
    // A refused or quarantined result says what it holds (never the secret itself).
    if let (false, Some(kind)) = (v.is_allow(), v.kinds.first()) {
        let at = s.find(" by=").unwrap_or(s.len());
        let page = v.page.as_ref().map_or(String::new(), |p| format!(" id={p}"));
        s.insert_str(at, &format!(" kind={kind}{page}"));
    }
    if let Some(w) = &v.witness {
        s.push_str(&format!(" witness={w}"));
    }
    if let Some(args) = &v.args {
        s.push_str(&format!(" args={args}"));
    }
    for a in &v.advisories {
        s.push_str(&format!(" advisory={}:{}:{}", a.rule, kind_str(a.verdict), a.reason));
    }
    if let Some(m) = &v.message {
        s.push_str(&format!(" message={}", Json::from(m.as_ref())));
    }
    s
}

/// The verdict as JSON, with the deciding rule's location.
pub fn verdict_json(v: &Verdict, sources: &Sources) -> Json {
    let mut j = serde_json::to_value(v).unwrap_or_else(|_| json!({"verdict": "DENY", "reason": "MALFORMED"}));
    if let (Some(loc), Some(obj)) = (v.by.loc, j.get_mut("by").and_then(Json::as_object_mut)) {
        let (line, column) = sources.line_col(loc.file, loc.span.start);
        obj.insert("file".into(), Json::from(sources.name(loc.file)));
        obj.insert("line".into(), Json::from(line));
        obj.insert("column".into(), Json::from(column));
    }
    j
}

/// `--explain`: the path through the rules, indented under the verdict line.
pub fn explain_text(v: &Verdict, ex: &Explain, sources: &Sources) -> String {
    let mut s = String::new();
    match v.by.loc {
        Some(loc) => {
            let (line, col) = sources.line_col(loc.file, loc.span.start);
            s.push_str(&format!("  decided by rule `{}` at {}:{line}:{col}\n", v.by.rule, sources.name(loc.file)));
        }
        None => s.push_str(&format!("  decided by fak itself (`{}`)\n", v.by.rule)),
    }
    if ex.bucket.is_empty() {
        s.push_str("  no rule was consulted: the input was refused before the rules ran\n");
        return s;
    }
    for f in &ex.found {
        s.push_str(&format!("  found: {f}\n"));
    }
    if let Some(view) = &ex.view {
        for c in &view.commands {
            s.push_str(&format!("  command: {c}\n"));
        }
        for o in &view.opaque {
            s.push_str(&format!("  opaque: {o}\n"));
        }
        for w in &view.writes {
            s.push_str(&format!("  writes: {w}\n"));
        }
        for u in &view.urls {
            s.push_str(&format!("  reaches: {u}\n"));
        }
    }
    let bucket =
        if ex.bucket == "*" { "the rules for any tool".to_string() } else { format!("the rules for `{}`", ex.bucket) };
    s.push_str(&format!("  looked at {bucket}; prefilters ruled out {} without evaluating them\n", ex.skipped));
    for h in &ex.prefilter_hits {
        s.push_str(&format!("  prefilter hit: {h}\n"));
    }
    for (rule, holds) in &ex.rules {
        s.push_str(&format!("  rule {rule}: {}\n", if *holds { "matches" } else { "does not match" }));
    }
    for a in &v.advisories {
        s.push_str(&format!("  advisory: `{}` would {} ({})\n", a.rule, kind_str(a.verdict).to_lowercase(), a.reason));
    }
    s
}
