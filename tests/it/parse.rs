//! The parser, data-driven: `tests/data/parse/ok/*.fak` parse and format back to the same
//! tree; `tests/data/parse/err/*.fak` fail with a diagnostic. One snapshot per file, in
//! `snapshots/parse/{ok,err}`: the formatted text for ok files, the plain rendering of the
//! diagnostic for err files.

use fak::diag::Sources;

use crate::util::{self, Cases};

#[test]
fn parse() {
    let mut cases = Cases::new();
    for path in util::files(&util::data("parse/ok"), "fak") {
        let name = util::rel(&path);
        cases.case(&name, || {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut sources = Sources::new();
            let id = sources.add(name.clone(), text.as_str());
            let ast = match fak::syntax::parse(&text, id) {
                Ok(ast) => ast,
                Err(d) => panic!("does not parse:\n{}", util::render(&[d], &sources)),
            };
            let formatted = fak::ast::print::file(&ast);
            util::snapshot("parse/ok", &util::stem(&path), Some(&path), &formatted);
            let again = match fak::syntax::parse(&formatted, id) {
                Ok(ast) => ast,
                Err(d) => {
                    let mut s = Sources::new();
                    s.add("<formatted>", formatted.as_str());
                    panic!("the formatted text does not parse:\n{}\n{formatted}", util::render(&[d], &s))
                }
            };
            assert!(
                again == ast,
                "parsing the formatted text gives another tree: {}\n--- formatted:\n{formatted}",
                first_difference(&ast, &again)
            );
            let twice = fak::ast::print::file(&again);
            assert_eq!(twice, formatted, "formatting is not idempotent");
        });
    }
    for path in util::files(&util::data("parse/err"), "fak") {
        let name = util::rel(&path);
        cases.case(&name, || {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut sources = Sources::new();
            let id = sources.add(name.clone(), text.as_str());
            let d = match fak::syntax::parse(&text, id) {
                Ok(ast) => panic!("parses, but should not:\n{ast:#?}"),
                Err(d) => d,
            };
            assert!(d.code.starts_with("fak::syntax::"), "code {}", d.code);
            assert!(d.is_error());
            assert!(!d.message.is_empty(), "no message");
            assert!(d.span.start <= d.span.end && d.span.end <= text.len(), "span {:?} outside the text", d.span);
            assert!(!d.message.ends_with('.'), "a message has no final period: {}", d.message);
            util::snapshot("parse/err", &util::stem(&path), Some(&path), &util::render(&[d], &sources));
        });
    }
    cases.finish("parse");
}

/// Where two trees first differ, briefly.
fn first_difference(a: &fak::ast::File, b: &fak::ast::File) -> String {
    if a.items.len() != b.items.len() {
        return format!("{} items, then {}", a.items.len(), b.items.len());
    }
    for (i, (x, y)) in a.items.iter().zip(&b.items).enumerate() {
        let what = fak::ast::print::item(&x.kind);
        let what = what.lines().next().unwrap_or("");
        if x.kind != y.kind {
            return format!("item {i} (`{what}`): {:?}\n  became {:?}", x.kind, y.kind);
        }
        if x.leading != y.leading || x.trailing != y.trailing {
            return format!(
                "item {i} (`{what}`): comments {:?} {:?} became {:?} {:?}",
                x.leading, x.trailing, y.leading, y.trailing
            );
        }
        if x.blank_before != y.blank_before {
            return format!("item {i} (`{what}`): blank_before {} became {}", x.blank_before, y.blank_before);
        }
    }
    format!("trailing comments {:?} became {:?}", a.trailing_comments, b.trailing_comments)
}

/// An empty file is a valid, empty policy.
#[test]
fn empty_file_is_an_empty_policy() {
    for text in ["", "\n", "   \n\t\n", "# only a comment\n"] {
        let ast = fak::syntax::parse(text, fak::diag::FileId(0)).unwrap();
        assert!(ast.items.is_empty(), "{text:?}");
        let loaded = fak::load::from_source("empty.fak", text);
        assert!(loaded.diags.is_empty(), "{text:?}: {:?}", loaded.diags);
        assert!(loaded.program.is_some());
    }
}

/// Nesting up to the limit parses; one more is refused with `too_deep`, not a stack overflow.
#[test]
fn nesting_limit() {
    let max = fak::syntax::MAX_NESTING;
    let nested = |n: usize| format!("deny x on Bash when {}true{};", "(".repeat(n), ")".repeat(n));
    assert!(fak::syntax::parse(&nested(max), fak::diag::FileId(0)).is_ok());
    let d = fak::syntax::parse(&nested(max + 1), fak::diag::FileId(0)).unwrap_err();
    assert_eq!(d.code, "fak::syntax::too_deep");
    let d = fak::syntax::parse(&nested(10_000), fak::diag::FileId(0)).unwrap_err();
    assert_eq!(d.code, "fak::syntax::too_deep");
    let deep_json = format!("test \"t\" {{ call Bash {}{}; expect allow; }}", "[".repeat(max + 1), "]".repeat(max + 1));
    assert_eq!(fak::syntax::parse(&deep_json, fak::diag::FileId(0)).unwrap_err().code, "fak::syntax::too_deep");
}

/// Operator precedence and associativity, read off the tree: `or` < `and` < `not` <
/// comparisons, all left-associative.
#[test]
fn precedence() {
    use fak::ast::{Expr, ExprKind};
    fn sexp(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Binary(op, l, r) => format!("({} {} {})", op.symbol(), sexp(l), sexp(r)),
            ExprKind::Not(x) => format!("(not {})", sexp(x)),
            ExprKind::Paren(x) => format!("[{}]", sexp(x)),
            ExprKind::Quant(q, v, l, b) => format!("({q:?} {} {} {})", v.name, sexp(l), sexp(b)),
            ExprKind::Call(f, args) => format!("{}({})", f.name, args.iter().map(sexp).collect::<Vec<_>>().join(",")),
            _ => fak::ast::print::expr(e),
        }
    }
    let cases = [
        ("a or b and c", "(or a (and b c))"),
        ("a and b or c", "(or (and a b) c)"),
        ("a or b or c", "(or (or a b) c)"),
        ("a and b and c", "(and (and a b) c)"),
        ("not a and b", "(and (not a) b)"),
        ("not a or b", "(or (not a) b)"),
        ("not a == 1", "(not (== a 1))"),
        ("not x.y contains \"z\" and b", "(and (not (contains x.y \"z\")) b)"),
        ("not not a", "(not (not a))"),
        ("not (a and b)", "(not [(and a b)])"),
        ("(a or b) and c", "(and [(or a b)] c)"),
        ("a == 1 and b != 2 or c < 3 and d >= 4", "(or (and (== a 1) (!= b 2)) (and (< c 3) (>= d 4)))"),
        ("a in [1, 2] or b matches \"x\"", "(or (in a [1, 2]) (matches b \"x\"))"),
        ("any(e in a: e.x and not e.y) or b", "(or (Any e a (and e.x (not e.y))) b)"),
        ("len(a) > 3", "(> len(a) 3)"),
        (
            "a glob \"x\" and b starts_with \"y\" and c ends_with \"z\"",
            "(and (and (glob a \"x\") (starts_with b \"y\")) (ends_with c \"z\"))",
        ),
    ];
    let mut bad = Vec::new();
    for (src, want) in cases {
        let e = fak::syntax::parse_expr(src, fak::diag::FileId(0)).unwrap_or_else(|d| panic!("{src}: {}", d.message));
        let got = sexp(&e);
        if got != want {
            bad.push(format!("{src}\n  want {want}\n  got  {got}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
