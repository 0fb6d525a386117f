//! The canonical formatter (`fak policy --fmt`).
//!
//! One way to write each thing: four-space indents, a rule on one line when it fits in
//! `WIDTH` columns and one clause per line when it does not, long `when` conditions filled to
//! the width and broken only before an `and` / `or` (at any depth), set items filled to the
//! width, JSON written `{"k": v}` with invisible characters escaped. Strings keep their spelling;
//! comments are kept (a comment written inside an item moves above it), and so are single
//! blank lines between items and comment paragraphs. Parsing the output gives the same tree
//! as parsing the input, and formatting is idempotent.

use std::fmt::Write as _;

use super::*;

pub const WIDTH: usize = 100;
const INDENT: &str = "    ";

/// Formats a whole file.
pub fn file(f: &File) -> String {
    let mut out = String::new();
    for (i, item) in f.items.iter().enumerate() {
        if i > 0 && item.blank_before {
            out.push('\n');
        }
        comments(&mut out, &item.leading);
        let body = self::item(&item.kind);
        out.push_str(&body);
        if let Some(c) = &item.trailing {
            let _ = write!(out, " #{c}");
        }
        out.push('\n');
    }
    if !f.trailing_comments.is_empty() && !f.items.is_empty() {
        out.push('\n');
    }
    comments(&mut out, &f.trailing_comments);
    out
}

/// Comment lines; `crate::syntax::BLANK` entries are the blank lines between them.
fn comments(out: &mut String, lines: &[String]) {
    for c in lines {
        if c == crate::syntax::BLANK {
            out.push('\n');
        } else {
            let _ = writeln!(out, "#{c}");
        }
    }
}

pub fn item(k: &ItemKind) -> String {
    match k {
        ItemKind::Import(i) => {
            let mut s = String::from("import ");
            match &i.target {
                ImportTarget::Std(path, _) => {
                    s.push_str("std");
                    for p in path {
                        s.push('.');
                        s.push_str(p);
                    }
                }
                ImportTarget::File(f) => s.push_str(&f.raw),
            }
            if let Some(a) = &i.alias {
                let _ = write!(s, " as {}", a.name);
            }
            s.push(';');
            s
        }
        ItemKind::Set(d) => {
            let items: Vec<String> = d.items.iter().map(lit).collect();
            let head = format!("{} {} = ", d.kind.keyword(), d.name.name);
            let one = format!("{head}[{}];", items.join(", "));
            if one.len() <= WIDTH && !one.contains('\n') {
                one
            } else {
                // Filled: as many items per line as fit.
                let mut s = format!("{head}[\n");
                let mut line = String::new();
                for i in items {
                    if !line.is_empty() && INDENT.len() + line.len() + 1 + i.len() + 1 > WIDTH {
                        let _ = writeln!(s, "{INDENT}{line}");
                        line.clear();
                    }
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(&i);
                    line.push(',');
                }
                if !line.is_empty() {
                    let _ = writeln!(s, "{INDENT}{line}");
                }
                s.push_str("];");
                s
            }
        }
        ItemKind::Reason(r) => format!("reason {} {};", r.name.name, r.disposition.name),
        ItemKind::Posture(p) => format!("posture {};", p.name),
        ItemKind::Advisory(names) => {
            let names: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
            format!("advisory {};", names.join(", "))
        }
        ItemKind::Rule(r) => rule(r),
        ItemKind::Source(d) => source(d),
        ItemKind::Secret(d) => secret(d),
        ItemKind::Test(t) => test(t),
    }
}

/// A `secret` declaration: on one line when it fits, else one clause per line.
pub fn secret(d: &SecretDecl) -> String {
    let list = |items: &[Lit]| format!("[{}]", items.iter().map(lit).collect::<Vec<_>>().join(", "));
    let clauses: Vec<String> = d
        .clauses
        .iter()
        .map(|c| match c {
            SecretClause::Keywords(items, _) => format!("keywords {}", list(items)),
            SecretClause::Pattern(s) => format!("pattern {}", s.raw),
            SecretClause::Entropy(_, raw, _) => format!("entropy {raw}"),
            SecretClause::Except(items, _) => format!("except {}", list(items)),
            SecretClause::Finds(s) => format!("finds {}", s.raw),
            SecretClause::Ignores(s) => format!("ignores {}", s.raw),
        })
        .collect();
    let kw = d.class.keyword();
    let one = format!("{kw} {} {};", d.name.name, clauses.join(" "));
    if one.len() <= WIDTH && !one.contains('\n') {
        return one;
    }
    let mut s = format!("{kw} {}", d.name.name);
    for c in &clauses {
        let _ = write!(s, "\n{INDENT}{c}");
    }
    s.push(';');
    s
}

/// `source LEVEL on A, B;`, the tools filled onto indented lines when one line is too long.
fn source(d: &SourceDecl) -> String {
    let one = format!("source {}{};", d.level.name, on_clause(&d.on));
    if one.len() <= WIDTH {
        return one;
    }
    let mut s = format!("source {} on", d.level.name);
    let mut line = String::new();
    let n = d.on.tools.len();
    for (i, t) in d.on.tools.iter().enumerate() {
        let mut t = tool_item(t);
        t.push(if i + 1 == n { ';' } else { ',' });
        if !line.is_empty() && INDENT.len() + line.len() + 1 + t.len() > WIDTH {
            let _ = write!(s, "\n{INDENT}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&t);
    }
    let _ = write!(s, "\n{INDENT}{line}");
    s
}

fn tool_item(t: &ToolItem) -> String {
    match t {
        ToolItem::Star(_) => "*".to_string(),
        ToolItem::Str(s) => s.raw.clone(),
        ToolItem::Name(n) => n.name.clone(),
    }
}

/// ` on [call|result] A, B, "c*"`.
fn on_clause(on: &On) -> String {
    let mut s = String::from(" on");
    if let Some((side, _)) = on.side {
        s.push_str(match side {
            Side::Call => " call",
            Side::Result => " result",
        });
    }
    let tools: Vec<String> = on.tools.iter().map(tool_item).collect();
    s.push(' ');
    s.push_str(&tools.join(", "));
    s
}

pub fn rule(r: &Rule) -> String {
    let mut head = format!("{} {}", r.verdict.keyword(), r.id.name);
    if let Some(on) = &r.on {
        head.push_str(&on_clause(on));
    }
    let clauses: Vec<String> = r.clauses.iter().map(|c| clause(c, None)).collect();
    let mut one = head.clone();
    for c in &clauses {
        one.push(' ');
        one.push_str(c);
    }
    one.push(';');
    if one.len() <= WIDTH && !one.contains('\n') {
        return one;
    }
    let mut s = head;
    for c in &r.clauses {
        s.push('\n');
        s.push_str(INDENT);
        s.push_str(&clause(c, Some(INDENT.len())));
    }
    s.push(';');
    s
}

fn clause(c: &Clause, broken_at: Option<usize>) -> String {
    match c {
        Clause::Reason(r) => format!("reason {}", r.name),
        Clause::Message(m) => format!("message {}", m.raw),
        Clause::When(e) => {
            let flat = format!("when {}", expr(e));
            match broken_at {
                Some(indent) if indent + flat.len() > WIDTH => {
                    format!("when {}", expr_broken(e, indent + INDENT.len()))
                }
                _ => flat,
            }
        }
        Clause::Set(p, v) => format!("set {} = {}", path(p), json(&v.value)),
        Clause::Advisory(_) => "advisory".to_string(),
    }
}

/// Lays out a long condition: a chain of `and` / `or` that does not fit is broken before
/// each operator, one operand per line; an operand that still does not fit (a parenthesised
/// chain, a quantifier's body) is broken the same way, one step further in. `indent` is the
/// continuation indent; the first line starts after `when `.
fn expr_broken(e: &Expr, indent: usize) -> String {
    layout(e, indent, indent - INDENT.len() + "when ".len())
}

/// `e` laid out starting at column `col`, continuation lines at `indent`.
fn layout(e: &Expr, indent: usize, col: usize) -> String {
    let flat = expr(e);
    if col + flat.len() <= WIDTH {
        return flat;
    }
    match &e.kind {
        ExprKind::Binary(op @ (BinOp::And | BinOp::Or), _, _) => {
            let mut operands = Vec::new();
            flatten(e, *op, &mut operands);
            let pad = " ".repeat(indent);
            let mut s = String::new();
            for (i, o) in operands.iter().enumerate() {
                let start = if i == 0 {
                    col
                } else {
                    let _ = write!(s, "\n{pad}{} ", op.symbol());
                    indent + op.symbol().len() + 1
                };
                if needs_parens(o, *op, i > 0) {
                    let _ = write!(s, "({})", layout(o, indent + INDENT.len(), start + 1));
                } else {
                    s.push_str(&layout(o, indent + INDENT.len(), start));
                }
            }
            s
        }
        ExprKind::Paren(inner) => format!("({})", layout(inner, indent, col + 1)),
        ExprKind::Not(inner) if matches!(inner.kind, ExprKind::Binary(BinOp::And | BinOp::Or, _, _)) => {
            format!("not ({})", layout(inner, indent, col + "not (".len()))
        }
        ExprKind::Quant(q, var, list, body) => {
            let q = match q {
                Quant::Any => "any",
                Quant::All => "all",
            };
            let head = format!("{q}({} in {}: ", var.name, expr(list));
            format!("{head}{})", layout(body, indent, col + head.len()))
        }
        _ => flat,
    }
}

fn flatten<'a>(e: &'a Expr, op: BinOp, out: &mut Vec<&'a Expr>) {
    match &e.kind {
        ExprKind::Binary(o, l, r) if *o == op => {
            flatten(l, op, out);
            out.push(r);
        }
        _ => out.push(e),
    }
}

pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Lit(l) => lit(l),
        ExprKind::List(items) => {
            let items: Vec<String> = items.iter().map(expr).collect();
            format!("[{}]", items.join(", "))
        }
        ExprKind::Path(p) => path(p),
        ExprKind::Call(f, args) => {
            let args: Vec<String> = args.iter().map(expr).collect();
            format!("{}({})", f.name, args.join(", "))
        }
        ExprKind::Not(inner) => {
            let needs = matches!(inner.kind, ExprKind::Binary(BinOp::And | BinOp::Or, _, _));
            if needs {
                format!("not ({})", expr(inner))
            } else {
                format!("not {}", expr(inner))
            }
        }
        ExprKind::Binary(op, l, r) => format!("{} {} {}", operand(l, *op, false), op.symbol(), operand(r, *op, true)),
        ExprKind::Quant(q, var, list, body) => {
            let q = match q {
                Quant::Any => "any",
                Quant::All => "all",
            };
            format!("{q}({} in {}: {})", var.name, expr(list), expr(body))
        }
        ExprKind::Paren(inner) => format!("({})", expr(inner)),
    }
}

fn needs_parens(e: &Expr, op: BinOp, right: bool) -> bool {
    match &e.kind {
        ExprKind::Binary(inner, _, _) => {
            let (pi, po) = (inner.precedence(), op.precedence());
            pi < po || (right && pi == po && pi == 4)
        }
        ExprKind::Not(_) => op.precedence() == 4,
        _ => false,
    }
}

/// An operand of `op`, parenthesised when the tree could not be read back otherwise (only
/// trees built by a program, such as `--convert`, lack the parentheses).
fn operand(e: &Expr, op: BinOp, right: bool) -> String {
    if needs_parens(e, op, right) {
        format!("({})", expr(e))
    } else {
        expr(e)
    }
}

pub fn path(p: &ValuePath) -> String {
    let mut s = p.root.name.clone();
    for seg in &p.segs {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(&f.name);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{}]", i.raw);
            }
        }
    }
    s
}

pub fn lit(l: &Lit) -> String {
    match l {
        Lit::Str(s) => s.raw.clone(),
        Lit::Num(_, text, _) => text.clone(),
        Lit::Bool(b, _) => b.to_string(),
        Lit::Name(n) => n.name.clone(),
    }
}

/// JSON with a space after `:` and `,`, on one line.
pub fn json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let members: Vec<String> = m.iter().map(|(k, v)| format!("{}: {}", json_str(k), json(v))).collect();
            format!("{{{}}}", members.join(", "))
        }
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(json).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::String(s) => json_str(s),
        other => other.to_string(),
    }
}

/// A JSON string with the characters a reader cannot see escaped (`\u200c`, no-break and
/// other odd spaces, bidi controls): a test about `.g\u200cit` must say so.
fn json_str(s: &str) -> String {
    let plain = serde_json::Value::String(s.to_string()).to_string();
    if !plain.chars().any(invisible) {
        return plain;
    }
    let mut out = String::with_capacity(plain.len() + 8);
    for c in plain.chars() {
        if invisible(c) {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn invisible(c: char) -> bool {
    crate::path::is_ignorable(c)
        || matches!(c, '\u{00a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}'
            | '\u{205f}' | '\u{3000}' | '\u{fff9}'..='\u{fffb}' | '\u{180e}')
}

fn test(t: &Test) -> String {
    let mut s = format!("test {} {{\n", t.name.raw);
    for st in &t.stmts {
        s.push_str(INDENT);
        match st {
            TestStmt::Call { tool, args } => {
                let _ = write!(s, "call {} {}", tool_name(tool), json(&args.value));
            }
            TestStmt::Result { tool, text } => {
                let _ = write!(s, "result {} {}", tool_name(tool), text.raw);
            }
            TestStmt::Taint(t) => {
                let _ = write!(s, "taint {}", t.name);
            }
            TestStmt::Expect(e) => {
                let _ = write!(s, "expect {}", e.verdict.keyword());
                if let Some(r) = &e.reason {
                    let _ = write!(s, " {}", r.name);
                }
                if let Some(b) = &e.by {
                    let _ = write!(s, " by {}", b.name);
                }
                if let Some(w) = &e.with {
                    let _ = write!(s, " with {}", json(&w.value));
                }
            }
        }
        s.push_str(";\n");
    }
    s.push('}');
    s
}

fn tool_name(t: &ToolName) -> String {
    match t {
        ToolName::Name(n) => n.name.clone(),
        ToolName::Str(s) => s.raw.clone(),
    }
}
