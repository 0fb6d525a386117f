//! `ir::Program` back to `.fak` source: `fak policy --convert` for manifests, and
//! `fak policy --dump --format ir` for any policy (imports inlined, sets expanded).
//!
//! The output checks clean and decides every call as the program does; the tests hold it to
//! that on every shipped manifest.

use std::fmt::Write as _;

use crate::ir::{self, describe_atom, describe_value, Side, VerdictKind};

pub fn to_source(p: &ir::Program, header: &str) -> String {
    let out = unformatted(p, header);
    // The canonical layout (long conditions broken over lines) is the formatter's; the text
    // always parses, and if it ever did not, the unformatted text is still the answer.
    match crate::syntax::parse(&out, crate::diag::FileId(0)) {
        Ok(ast) => crate::ast::print::file(&ast),
        Err(_) => out,
    }
}

fn unformatted(p: &ir::Program, header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    if !header.is_empty() {
        out.push('\n');
    }
    let mut wrote = false;
    if p.posture != ir::Posture::FailClosed {
        let _ = writeln!(out, "posture {};", p.posture.as_str());
        wrote = true;
    }
    for (name, d) in &p.reasons {
        let _ = writeln!(out, "reason {name} {};", d.keyword());
        wrote = true;
    }
    if !p.advisory_reasons.is_empty() {
        let names: Vec<&str> = p.advisory_reasons.iter().map(String::as_str).collect();
        let _ = writeln!(out, "advisory {};", names.join(", "));
        wrote = true;
    }
    for src in &p.sources {
        let level = ir::TAINT_LEVELS.get(usize::from(src.level)).copied().unwrap_or("quarantined");
        let _ = writeln!(out, "source {level} on {};", tool_list(&src.tools).join(", "));
        wrote = true;
    }
    if let Some(m) = &p.manifest {
        let kept: Vec<(&String, &serde_json::Value)> =
            m.iter().filter(|(k, _)| matches!(k.as_str(), "rate_limit" | "egress")).collect();
        if !kept.is_empty() {
            if wrote {
                out.push('\n');
            }
            out.push_str("# These fak-policy/v1 settings have no .fak form yet; keep the JSON manifest for them:\n");
            for (k, v) in kept {
                let _ = writeln!(out, "#   \"{k}\": {v}");
            }
            wrote = true;
        }
    }
    for r in &p.rules {
        if wrote {
            out.push('\n');
        }
        wrote = true;
        out.push_str(&rule(r));
        out.push('\n');
    }
    out
}

fn is_ident(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !ir::RESERVED.contains(&s)
        && !KEYWORDS.contains(&s)
}

/// Words that start a clause; a bare tool name cannot be one of them.
const KEYWORDS: &[&str] = &["reason", "message", "when", "set", "advisory", "on", "call", "result"];

/// The items of an `on` clause.
fn tool_list(sel: &ir::ToolSel) -> Vec<String> {
    let mut tools: Vec<String> = Vec::new();
    if sel.any {
        tools.push("*".into());
    }
    for t in &sel.exact {
        // Names fak knows are written bare; others quoted, which also says "not a typo".
        let bare = is_ident(t) && crate::tools::schema(t).is_some();
        tools.push(if bare { t.clone() } else { serde_json::Value::from(t.as_str()).to_string() });
    }
    for p in &sel.prefixes {
        tools.push(serde_json::Value::from(format!("{p}*")).to_string());
    }
    tools
}

pub fn rule(r: &ir::Rule) -> String {
    let mut s = format!("{} {}", r.verdict.keyword(), r.id);
    let tools = tool_list(&r.tools);
    let side_kw = match (r.side, r.verdict) {
        (Side::Result, VerdictKind::Quarantine) => "",
        (Side::Result, _) => " result",
        (Side::Call, _) => "",
    };
    if !tools.is_empty() {
        let _ = write!(s, " on{side_kw} {}", tools.join(", "));
    }
    let mut clauses = Vec::new();
    if r.verdict != VerdictKind::Allow && !(r.verdict == VerdictKind::Transform && &*r.reason == ir::NONE) {
        clauses.push(format!("reason {}", r.reason));
    }
    if let Some(m) = &r.message {
        clauses.push(format!("message {}", serde_json::Value::from(m.as_ref())));
    }
    if r.cond != ir::Expr::True {
        clauses.push(format!("when {}", expr(&r.cond, 0)));
    }
    for (path, v) in &r.set {
        let target = describe_value(&ir::Value::Args(path.clone()));
        clauses.push(format!("set {target} = {}", crate::ast::print::json(v)));
    }
    if r.advisory {
        clauses.push("advisory".into());
    }
    let one = format!("{s} {};", clauses.join(" "));
    if clauses.is_empty() {
        format!("{s};")
    } else if one.len() <= crate::ast::print::WIDTH {
        one
    } else {
        let mut m = s;
        for c in clauses {
            let _ = write!(m, "\n    {c}");
        }
        m.push(';');
        m
    }
}

/// A condition; `parent` is the binding power of the enclosing operator (1 `or`, 2 `and`,
/// 3 `not`).
pub fn expr(e: &ir::Expr, parent: u8) -> String {
    let wrap = |s: String, mine: u8| if mine < parent { format!("({s})") } else { s };
    match e {
        ir::Expr::True => "true".into(),
        ir::Expr::False => "false".into(),
        ir::Expr::And(items) => wrap(items.iter().map(|i| expr(i, 2)).collect::<Vec<_>>().join(" and "), 2),
        ir::Expr::Or(items) => wrap(items.iter().map(|i| expr(i, 1)).collect::<Vec<_>>().join(" or "), 1),
        ir::Expr::Not(inner) => wrap(format!("not {}", expr(inner, 3)), 3),
        ir::Expr::Atom(a) => {
            // Comparisons bind tighter than `not`, so an atom never needs parentheses.
            describe_atom(a)
        }
        ir::Expr::Quant { all, var, list, body } => {
            let q = if *all { "all" } else { "any" };
            format!("{q}(v{var} in {}: {})", describe_value(list), expr(body, 0))
        }
    }
}
