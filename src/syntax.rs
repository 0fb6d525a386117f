//! Text to `ast`: the only module that sees pest.
//!
//! `parse` runs the pest grammar (`grammar/fak.pest`) and lowers its pairs, one function per
//! grammar rule, into the spanned tree of `ast`. Comments are not in the grammar's output
//! (pest's `COMMENT` is silent), so a small scanner finds them and attaches them to items for
//! the formatter.

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;

use crate::ast::{self, Span};
use crate::diag::{Diag, FileId};

mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/fak.pest"]
    pub struct FakParser;
}

use grammar::{FakParser, Rule};

/// Deepest nesting of brackets, parentheses and operators a file may have. pest recurses
/// on nesting; past this the file is refused instead of overflowing the stack.
pub const MAX_NESTING: usize = 64;
/// Largest source file accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4 << 20;

/// Parses one file. A syntax error stops the parse: pest reports the first place where the
/// text stops making sense, and everything after it would be guesswork.
pub fn parse(text: &str, file: FileId) -> Result<ast::File, Diag> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(Diag::error("fak::syntax::too_large", file, Span::new(0, 0))
            .message(format!("policy file is {} bytes, more than the {} allowed", text.len(), MAX_SOURCE_BYTES))
            .help("split the policy into modules and import them"));
    }
    let scanned = scan(text);
    if let Some(at) = scanned.too_deep {
        return Err(Diag::error("fak::syntax::too_deep", file, Span::new(at, at + 1))
            .message(format!("nesting deeper than {MAX_NESTING} levels"))
            .label("this bracket is too deep")
            .help("split the condition into smaller rules or named sets"));
    }
    let pairs = FakParser::parse(Rule::file, text).map_err(|e| pest_error(e, text, file))?;
    let mut lower = Lower { file };
    let mut items = Vec::new();
    for pair in pairs.flatten().take(1) {
        for item in pair.into_inner() {
            if item.as_rule() == Rule::EOI {
                continue;
            }
            items.push(lower.item(item)?);
        }
    }
    Ok(attach_comments(text, items, scanned.comments))
}

/// Parses a condition on its own (the REPL and tests use it).
pub fn parse_expr(text: &str, file: FileId) -> Result<ast::Expr, Diag> {
    if let Some(at) = scan(text).too_deep {
        return Err(Diag::error("fak::syntax::too_deep", file, Span::new(at, at + 1))
            .message(format!("nesting deeper than {MAX_NESTING} levels")));
    }
    let mut pairs = FakParser::parse(Rule::expr, text).map_err(|e| pest_error(e, text, file))?;
    let Some(pair) = pairs.next() else {
        return Err(Diag::error("fak::syntax::unexpected", file, Span::new(0, 0)).message("expected a condition"));
    };
    if pair.as_span().end() != text.trim_end().len() {
        let at = pair.as_span().end();
        return Err(Diag::error("fak::syntax::unexpected", file, Span::new(at, text.len()))
            .message("unexpected text after the condition"));
    }
    Lower { file }.expr(pair)
}

/// What one pass of the scanner finds: where nesting first goes too deep, and the comments.
struct Scanned {
    too_deep: Option<usize>,
    comments: Vec<(usize, String)>,
}

/// Finds the first byte where brackets or `not`s nest deeper than `MAX_NESTING` (outside
/// strings and comments), and every comment, in one pass.
fn scan(text: &str) -> Scanned {
    let mut depth = 0usize;
    let mut nots = 0usize;
    let mut too_deep = None;
    let mut comments = Vec::new();
    let mut scan = Scanner::new(text);
    while let Some((at, tok)) = scan.next_token() {
        match tok {
            Tok::Open => {
                depth += 1;
                if depth > MAX_NESTING {
                    too_deep = too_deep.or(Some(at));
                }
            }
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Not => {
                nots += 1;
                if nots > MAX_NESTING {
                    too_deep = too_deep.or(Some(at));
                }
            }
            Tok::Other => nots = 0,
            Tok::Comment(c) => comments.push((at, c.trim_end().to_string())),
        }
        if too_deep.is_some() {
            break;
        }
    }
    Scanned { too_deep, comments }
}

fn pest_error(e: pest::error::Error<Rule>, text: &str, file: FileId) -> Diag {
    use pest::error::{ErrorVariant, InputLocation};
    let (start, end) = match e.location {
        InputLocation::Pos(p) => (p, next_boundary(text, p)),
        InputLocation::Span((s, e)) => (s, e),
    };
    let message = match &e.variant {
        ErrorVariant::ParsingError { positives, negatives } => {
            let mut wanted: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            wanted.sort_unstable();
            wanted.dedup();
            let found = found_at(text, start);
            if wanted.is_empty() && !negatives.is_empty() {
                let mut unwanted: Vec<&str> = negatives.iter().filter_map(|r| rule_name(*r)).collect();
                unwanted.sort_unstable();
                unwanted.dedup();
                format!("unexpected {}", unwanted.join(", "))
            } else if wanted.is_empty() {
                format!("unexpected {found}")
            } else {
                format!("expected {}, found {found}", one_of(&wanted))
            }
        }
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let help = syntax_help(text, start);
    let mut d = Diag::error("fak::syntax::unexpected", file, Span::new(start, end)).message(message).label("here");
    if let Some(h) = help {
        d = d.help(h);
    }
    d
}

fn next_boundary(text: &str, p: usize) -> usize {
    let mut e = (p + 1).min(text.len());
    while e < text.len() && !text.is_char_boundary(e) {
        e += 1;
    }
    e.max(p)
}

fn found_at(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or("");
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-').take(24).collect();
    if rest.is_empty() {
        "end of file".to_string()
    } else if !word.is_empty() {
        format!("`{word}`")
    } else {
        let c = rest.chars().next().unwrap_or(' ');
        format!("`{}`", c.escape_debug())
    }
}

fn one_of(items: &[&str]) -> String {
    match items {
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
        [] => String::new(),
    }
}

/// Hints for the mistakes people make most.
fn syntax_help(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at).unwrap_or("").trim_end();
    let rest = text.get(at..).unwrap_or("");
    if rest.starts_with('\'') {
        return Some("strings use double quotes: `\"...\"`, or `r\"...\"` for a raw string".into());
    }
    if rest.starts_with("&&") || rest.starts_with("||") {
        return Some("write `and` / `or` instead of `&&` / `||`".into());
    }
    if rest.starts_with('!') && !rest.starts_with("!=") {
        return Some("write `not` instead of `!`".into());
    }
    if rest.starts_with('=') && !rest.starts_with("==") {
        return Some("compare with `==`".into());
    }
    if before.ends_with(')') || before.ends_with('"') || before.ends_with(']') {
        let line_end = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.get(line_end..).unwrap_or("");
        if !line.trim_start().starts_with('#') && rest.trim_start().starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Some("a rule ends with `;`; did you forget one?".into());
        }
    }
    if before.ends_with(|c: char| c.is_alphanumeric() || c == '"' || c == ')') && rest.trim_start().is_empty() {
        return Some("every item ends with `;`".into());
    }
    None
}

/// How pest's rule names read in a message; `None` hides a rule that is noise.
fn rule_name(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::EOI => "end of file",
        Rule::import_decl | Rule::kw_import => "`import`",
        Rule::set_decl | Rule::set_kind => "an item",
        Rule::kw_tools | Rule::kw_strings | Rule::kw_globs | Rule::kw_regexes => "an item",
        Rule::reason_decl | Rule::kw_reason => "`reason`",
        Rule::posture_decl | Rule::kw_posture => "`posture`",
        Rule::advisory_decl | Rule::kw_advisory | Rule::advisory_flag => "`advisory`",
        Rule::rule_decl | Rule::verdict => "an item",
        Rule::secret_decl | Rule::kw_secret | Rule::kw_injection => "an item",
        Rule::source_decl | Rule::kw_source => "`source`",
        Rule::keywords_clause | Rule::kw_keywords => "`keywords`",
        Rule::pattern_clause | Rule::kw_pattern => "`pattern`",
        Rule::entropy_clause | Rule::kw_entropy => "`entropy`",
        Rule::except_clause | Rule::kw_except => "`except`",
        Rule::finds_clause | Rule::kw_finds => "`finds`",
        Rule::ignores_clause | Rule::kw_ignores => "`ignores`",
        Rule::kw_allow | Rule::kw_deny | Rule::kw_transform | Rule::kw_quarantine => "an item",
        Rule::test_decl | Rule::kw_test => "an item",
        Rule::on_clause | Rule::kw_on => "`on`",
        Rule::side | Rule::kw_result | Rule::kw_call => "`call` or `result`",
        Rule::tool_item | Rule::star | Rule::tool_ref => "a tool",
        Rule::reason_clause => "`reason`",
        Rule::message_clause | Rule::kw_message => "`message`",
        Rule::when_clause | Rule::kw_when => "`when`",
        Rule::set_clause | Rule::kw_set => "`set`",
        Rule::expr | Rule::paren | Rule::quantifier | Rule::call | Rule::list_expr => "a condition",
        Rule::value_path => "a value such as `args.command`",
        Rule::field => "a field name",
        Rule::op_or | Rule::op_and => "`and` or `or`",
        Rule::op_not | Rule::kw_not => "`not`",
        Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_in
        | Rule::op_contains
        | Rule::op_matches
        | Rule::op_glob
        | Rule::op_starts_with
        | Rule::op_ends_with => "an operator",
        Rule::list_lit => "a list `[...]`",
        Rule::boolean | Rule::kw_true | Rule::kw_false => "`true` or `false`",
        Rule::number => "a number",
        Rule::string | Rule::cooked | Rule::raw_string => "a string",
        Rule::escape => "an escape such as `\\n`",
        Rule::json_value | Rule::json_object | Rule::json_array | Rule::json_null => "a JSON value",
        Rule::json_pair => "a JSON member `\"key\": value`",
        Rule::call_stmt => "`call`",
        Rule::result_stmt => "`result`",
        Rule::taint_stmt | Rule::kw_taint => "`taint`",
        Rule::expect_stmt | Rule::kw_expect => "`expect`",
        Rule::kw_by => "`by`",
        Rule::kw_with => "`with`",
        Rule::kw_as => "`as`",
        Rule::tool_name => "a tool name",
        Rule::rule_ref | Rule::rule_id => "a rule id",
        Rule::std_module => "a module such as `std.shell`",
        Rule::name | Rule::ident => "a name",
        Rule::reason_name => "a REASON in capitals",
        Rule::reserved => "a reserved word",
        _ => return None,
    })
}

struct Lower {
    file: FileId,
}

fn span(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

impl Lower {
    fn bug(&self, at: Span, what: &str) -> Diag {
        // The grammar and this lowering disagree: a bug in fak, reported, not panicked.
        Diag::error("fak::syntax::internal", self.file, at)
            .message(format!("internal error: unexpected shape of {what}"))
            .help("this is a bug in fak; please report it with the policy that caused it")
    }

    fn next<'i>(
        &self,
        it: &mut impl Iterator<Item = Pair<'i, Rule>>,
        at: Span,
        what: &str,
    ) -> Result<Pair<'i, Rule>, Diag> {
        it.next().ok_or_else(|| self.bug(at, what))
    }

    fn item(&mut self, p: Pair<'_, Rule>) -> Result<ast::Item, Diag> {
        let sp = span(&p);
        let kind = match p.as_rule() {
            Rule::import_decl => ast::ItemKind::Import(self.import(p)?),
            Rule::set_decl => ast::ItemKind::Set(self.set_decl(p)?),
            Rule::reason_decl => {
                let mut it = p.into_inner();
                let _kw = self.next(&mut it, sp, "reason")?;
                let name = self.ident(self.next(&mut it, sp, "reason")?);
                let disposition = self.ident(self.next(&mut it, sp, "reason")?);
                ast::ItemKind::Reason(ast::ReasonDecl { name, disposition })
            }
            Rule::posture_decl => {
                let mut it = p.into_inner();
                let _kw = self.next(&mut it, sp, "posture")?;
                ast::ItemKind::Posture(self.ident(self.next(&mut it, sp, "posture")?))
            }
            Rule::advisory_decl => {
                let names = p.into_inner().skip(1).map(|p| self.ident(p)).collect();
                ast::ItemKind::Advisory(names)
            }
            Rule::rule_decl => ast::ItemKind::Rule(self.rule(p)?),
            Rule::secret_decl => ast::ItemKind::Secret(self.secret(p)?),
            Rule::source_decl => {
                let mut it = p.into_inner();
                let _kw = self.next(&mut it, sp, "source")?;
                let level = self.ident(self.next(&mut it, sp, "source")?);
                let on = self.on(self.next(&mut it, sp, "source")?)?;
                ast::ItemKind::Source(ast::SourceDecl { level, on })
            }
            Rule::test_decl => ast::ItemKind::Test(self.test(p)?),
            _ => return Err(self.bug(sp, "an item")),
        };
        Ok(ast::Item { kind, span: sp, leading: Vec::new(), trailing: None, blank_before: false })
    }

    fn ident(&self, p: Pair<'_, Rule>) -> ast::Ident {
        ast::Ident { name: p.as_str().to_string(), span: span(&p) }
    }

    fn import(&mut self, p: Pair<'_, Rule>) -> Result<ast::Import, Diag> {
        let sp = span(&p);
        let mut it = p.into_inner();
        let _kw = self.next(&mut it, sp, "import")?;
        let target = self.next(&mut it, sp, "import")?;
        let target = match target.as_rule() {
            Rule::std_module => {
                let path = target.as_str().split('.').skip(1).map(str::to_string).collect();
                ast::ImportTarget::Std(path, span(&target))
            }
            _ => ast::ImportTarget::File(self.string(target)?),
        };
        let alias = match it.next() {
            Some(_as) => Some(self.ident(self.next(&mut it, sp, "import alias")?)),
            None => None,
        };
        Ok(ast::Import { target, alias })
    }

    fn set_decl(&mut self, p: Pair<'_, Rule>) -> Result<ast::SetDecl, Diag> {
        let sp = span(&p);
        let mut it = p.into_inner();
        let kind_pair = self.next(&mut it, sp, "set kind")?;
        let kind = match kind_pair.into_inner().next().map(|k| k.as_rule()) {
            Some(Rule::kw_tools) => ast::SetKind::Tools,
            Some(Rule::kw_strings) => ast::SetKind::Strings,
            Some(Rule::kw_globs) => ast::SetKind::Globs,
            Some(Rule::kw_regexes) => ast::SetKind::Regexes,
            _ => return Err(self.bug(sp, "set kind")),
        };
        let name = self.ident(self.next(&mut it, sp, "set name")?);
        let list = self.next(&mut it, sp, "set list")?;
        let span_list = span(&list);
        let items = list.into_inner().map(|p| self.lit(p)).collect::<Result<_, _>>()?;
        Ok(ast::SetDecl { kind, name, items, span_list })
    }

    fn lit(&self, p: Pair<'_, Rule>) -> Result<ast::Lit, Diag> {
        let sp = span(&p);
        Ok(match p.as_rule() {
            Rule::string => ast::Lit::Str(self.string(p)?),
            Rule::number => {
                let n: f64 = p.as_str().parse().map_err(|_| {
                    Diag::error("fak::syntax::bad_number", self.file, sp)
                        .message(format!("`{}` is not a number fak can represent", p.as_str()))
                })?;
                if !n.is_finite() {
                    return Err(Diag::error("fak::syntax::bad_number", self.file, sp)
                        .message(format!("`{}` is too large", p.as_str())));
                }
                ast::Lit::Num(n, p.as_str().to_string(), sp)
            }
            Rule::boolean => ast::Lit::Bool(p.as_str() == "true", sp),
            Rule::ident => ast::Lit::Name(self.ident(p)),
            _ => return Err(self.bug(sp, "a literal")),
        })
    }

    fn string(&self, p: Pair<'_, Rule>) -> Result<ast::Str, Diag> {
        let sp = span(&p);
        let raw = p.as_str();
        let inner = p.into_inner().next().ok_or_else(|| self.bug(sp, "a string"))?;
        let value = match inner.as_rule() {
            Rule::raw_string => {
                let hashes = raw.get(1..).unwrap_or("").chars().take_while(|c| *c == '#').count();
                raw.get(2 + hashes..raw.len().saturating_sub(1 + hashes)).unwrap_or("").to_string()
            }
            _ => serde_json::from_str::<String>(raw).map_err(|e| {
                Diag::error("fak::syntax::bad_string", self.file, sp)
                    .message(format!("invalid string literal: {e}"))
                    .help("strings follow JSON's rules; a lone surrogate escape such as `\\ud800` is not a character")
            })?,
        };
        Ok(ast::Str { value, raw: raw.to_string(), span: sp })
    }

    fn rule(&mut self, p: Pair<'_, Rule>) -> Result<ast::Rule, Diag> {
        let sp = span(&p);
        let mut it = p.into_inner();
        let vp = self.next(&mut it, sp, "verdict")?;
        let verdict_span = span(&vp);
        let verdict = self.verdict(vp)?;
        let id = self.ident(self.next(&mut it, sp, "rule id")?);
        let mut on = None;
        let mut clauses = Vec::new();
        for c in it {
            let csp = span(&c);
            match c.as_rule() {
                Rule::on_clause => on = Some(self.on(c)?),
                Rule::reason_clause => {
                    let name = c.into_inner().nth(1).ok_or_else(|| self.bug(csp, "reason clause"))?;
                    clauses.push(ast::Clause::Reason(self.ident(name)));
                }
                Rule::message_clause => {
                    let s = c.into_inner().nth(1).ok_or_else(|| self.bug(csp, "message clause"))?;
                    clauses.push(ast::Clause::Message(self.string(s)?));
                }
                Rule::when_clause => {
                    let e = c.into_inner().nth(1).ok_or_else(|| self.bug(csp, "when clause"))?;
                    clauses.push(ast::Clause::When(self.expr(e)?));
                }
                Rule::set_clause => {
                    let mut ci = c.into_inner().skip(1);
                    let path = self.value_path(self.next(&mut ci, csp, "set clause")?)?;
                    let value = self.json(self.next(&mut ci, csp, "set clause")?)?;
                    clauses.push(ast::Clause::Set(path, value));
                }
                Rule::advisory_flag => clauses.push(ast::Clause::Advisory(csp)),
                _ => return Err(self.bug(csp, "a rule clause")),
            }
        }
        Ok(ast::Rule { verdict, verdict_span, id, on, clauses })
    }

    fn secret(&mut self, p: Pair<'_, Rule>) -> Result<ast::SecretDecl, Diag> {
        let sp = span(&p);
        let mut it = p.into_inner();
        let kw = self.next(&mut it, sp, "secret")?;
        let class = match kw.as_rule() {
            Rule::kw_injection => crate::secrets::Class::Injection,
            _ => crate::secrets::Class::Secret,
        };
        let name = self.ident(self.next(&mut it, sp, "secret name")?);
        let mut clauses = Vec::new();
        for c in it {
            let csp = span(&c);
            let rule = c.as_rule();
            let value = c.into_inner().nth(1).ok_or_else(|| self.bug(csp, "a secret clause"))?;
            let list = |s: &Self, v: Pair<'_, Rule>| -> Result<(Vec<ast::Lit>, Span), Diag> {
                let vsp = span(&v);
                Ok((v.into_inner().map(|p| s.lit(p)).collect::<Result<_, _>>()?, vsp))
            };
            clauses.push(match rule {
                Rule::keywords_clause => {
                    let (items, at) = list(self, value)?;
                    ast::SecretClause::Keywords(items, at)
                }
                Rule::except_clause => {
                    let (items, at) = list(self, value)?;
                    ast::SecretClause::Except(items, at)
                }
                Rule::pattern_clause => ast::SecretClause::Pattern(self.string(value)?),
                Rule::finds_clause => ast::SecretClause::Finds(self.string(value)?),
                Rule::ignores_clause => ast::SecretClause::Ignores(self.string(value)?),
                Rule::entropy_clause => match self.lit(value)? {
                    ast::Lit::Num(n, raw, at) => ast::SecretClause::Entropy(n, raw, at),
                    _ => return Err(self.bug(csp, "an entropy clause")),
                },
                _ => return Err(self.bug(csp, "a secret clause")),
            });
        }
        Ok(ast::SecretDecl { class, name, clauses })
    }

    fn verdict(&self, p: Pair<'_, Rule>) -> Result<ast::VerdictKind, Diag> {
        let sp = span(&p);
        Ok(match p.as_str() {
            "allow" => ast::VerdictKind::Allow,
            "deny" => ast::VerdictKind::Deny,
            "transform" => ast::VerdictKind::Transform,
            "quarantine" => ast::VerdictKind::Quarantine,
            _ => return Err(self.bug(sp, "a verdict")),
        })
    }

    fn on(&self, p: Pair<'_, Rule>) -> Result<ast::On, Diag> {
        let mut side = None;
        let mut tools = Vec::new();
        for c in p.into_inner() {
            let sp = span(&c);
            match c.as_rule() {
                Rule::kw_on => {}
                Rule::side => {
                    let s = if c.as_str() == "result" { ast::Side::Result } else { ast::Side::Call };
                    side = Some((s, sp));
                }
                Rule::tool_item => {
                    let inner = c.into_inner().next().ok_or_else(|| self.bug(sp, "a tool"))?;
                    tools.push(match inner.as_rule() {
                        Rule::star => ast::ToolItem::Star(sp),
                        Rule::string => ast::ToolItem::Str(self.string(inner)?),
                        _ => ast::ToolItem::Name(self.ident(inner)),
                    });
                }
                _ => return Err(self.bug(sp, "an `on` clause")),
            }
        }
        Ok(ast::On { side, tools })
    }

    fn json(&self, p: Pair<'_, Rule>) -> Result<ast::Json, Diag> {
        let sp = span(&p);
        // The grammar accepts exactly JSON (plus raw strings, refused here), so serde_json
        // gives the value; its own error is the message if it disagrees.
        let value = serde_json::from_str(p.as_str()).map_err(|e| {
            Diag::error("fak::syntax::bad_json", self.file, sp)
                .message(format!("invalid JSON value: {e}"))
                .help("JSON inside a policy is plain JSON: double-quoted strings, no raw strings, no trailing commas")
        })?;
        Ok(ast::Json { value, span: sp })
    }

    fn value_path(&self, p: Pair<'_, Rule>) -> Result<ast::ValuePath, Diag> {
        let sp = span(&p);
        let mut it = p.into_inner();
        let root = self.ident(self.next(&mut it, sp, "a value")?);
        let mut segs = Vec::new();
        for s in it {
            match s.as_rule() {
                Rule::field => segs.push(ast::Seg::Field(self.ident(s))),
                Rule::string => segs.push(ast::Seg::Index(self.string(s)?)),
                _ => return Err(self.bug(span(&s), "a value path")),
            }
        }
        Ok(ast::ValuePath { root, segs, span: sp })
    }

    fn expr(&self, p: Pair<'_, Rule>) -> Result<ast::Expr, Diag> {
        let pratt = PrattParser::new()
            .op(Op::infix(Rule::op_or, Assoc::Left))
            .op(Op::infix(Rule::op_and, Assoc::Left))
            .op(Op::prefix(Rule::op_not))
            .op(Op::infix(Rule::op_eq, Assoc::Left)
                | Op::infix(Rule::op_ne, Assoc::Left)
                | Op::infix(Rule::op_lt, Assoc::Left)
                | Op::infix(Rule::op_le, Assoc::Left)
                | Op::infix(Rule::op_gt, Assoc::Left)
                | Op::infix(Rule::op_ge, Assoc::Left)
                | Op::infix(Rule::op_in, Assoc::Left)
                | Op::infix(Rule::op_contains, Assoc::Left)
                | Op::infix(Rule::op_matches, Assoc::Left)
                | Op::infix(Rule::op_glob, Assoc::Left)
                | Op::infix(Rule::op_starts_with, Assoc::Left)
                | Op::infix(Rule::op_ends_with, Assoc::Left));
        pratt
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, rhs| {
                let rhs = rhs?;
                let sp = span(&op).to(rhs.span);
                Ok(ast::Expr { kind: ast::ExprKind::Not(Box::new(rhs)), span: sp })
            })
            .map_infix(|lhs, op, rhs| {
                let (lhs, rhs) = (lhs?, rhs?);
                let bin = match op.as_rule() {
                    Rule::op_or => ast::BinOp::Or,
                    Rule::op_and => ast::BinOp::And,
                    Rule::op_eq => ast::BinOp::Eq,
                    Rule::op_ne => ast::BinOp::Ne,
                    Rule::op_lt => ast::BinOp::Lt,
                    Rule::op_le => ast::BinOp::Le,
                    Rule::op_gt => ast::BinOp::Gt,
                    Rule::op_ge => ast::BinOp::Ge,
                    Rule::op_in => ast::BinOp::In,
                    Rule::op_contains => ast::BinOp::Contains,
                    Rule::op_matches => ast::BinOp::Matches,
                    Rule::op_glob => ast::BinOp::Glob,
                    Rule::op_starts_with => ast::BinOp::StartsWith,
                    Rule::op_ends_with => ast::BinOp::EndsWith,
                    _ => return Err(self.bug(span(&op), "an operator")),
                };
                let sp = lhs.span.to(rhs.span);
                Ok(ast::Expr { kind: ast::ExprKind::Binary(bin, Box::new(lhs), Box::new(rhs)), span: sp })
            })
            .parse(p.into_inner())
    }

    fn primary(&self, p: Pair<'_, Rule>) -> Result<ast::Expr, Diag> {
        let sp = span(&p);
        let kind = match p.as_rule() {
            Rule::paren => {
                let inner = p.into_inner().next().ok_or_else(|| self.bug(sp, "parentheses"))?;
                ast::ExprKind::Paren(Box::new(self.expr(inner)?))
            }
            Rule::quantifier => {
                let mut it = p.into_inner();
                let q = if self.next(&mut it, sp, "quantifier")?.as_rule() == Rule::kw_any {
                    ast::Quant::Any
                } else {
                    ast::Quant::All
                };
                let var = self.ident(self.next(&mut it, sp, "quantifier")?);
                let _in = self.next(&mut it, sp, "quantifier")?;
                let list = self.expr(self.next(&mut it, sp, "quantifier")?)?;
                let body = self.expr(self.next(&mut it, sp, "quantifier")?)?;
                ast::ExprKind::Quant(q, var, Box::new(list), Box::new(body))
            }
            Rule::call => {
                let mut it = p.into_inner();
                let name = self.ident(self.next(&mut it, sp, "call")?);
                let args = it.map(|a| self.expr(a)).collect::<Result<_, _>>()?;
                ast::ExprKind::Call(name, args)
            }
            Rule::list_expr => {
                let items = p.into_inner().map(|a| self.expr(a)).collect::<Result<_, _>>()?;
                ast::ExprKind::List(items)
            }
            Rule::value_path => ast::ExprKind::Path(self.value_path(p)?),
            Rule::string | Rule::number | Rule::boolean => ast::ExprKind::Lit(self.lit(p)?),
            _ => return Err(self.bug(sp, "a condition")),
        };
        Ok(ast::Expr { kind, span: sp })
    }

    fn test(&mut self, p: Pair<'_, Rule>) -> Result<ast::Test, Diag> {
        let sp = span(&p);
        let mut it = p.into_inner();
        let _kw = self.next(&mut it, sp, "test")?;
        let name = self.string(self.next(&mut it, sp, "test name")?)?;
        let mut stmts = Vec::new();
        for s in it {
            let ssp = span(&s);
            match s.as_rule() {
                Rule::call_stmt => {
                    let mut si = s.into_inner().skip(1);
                    let tool = self.tool_name(self.next(&mut si, ssp, "call")?)?;
                    let args = self.json(self.next(&mut si, ssp, "call")?)?;
                    stmts.push(ast::TestStmt::Call { tool, args });
                }
                Rule::result_stmt => {
                    let mut si = s.into_inner().skip(1);
                    let tool = self.tool_name(self.next(&mut si, ssp, "result")?)?;
                    let text = self.string(self.next(&mut si, ssp, "result")?)?;
                    stmts.push(ast::TestStmt::Result { tool, text });
                }
                Rule::taint_stmt => {
                    let name = s.into_inner().nth(1).ok_or_else(|| self.bug(ssp, "taint"))?;
                    stmts.push(ast::TestStmt::Taint(self.ident(name)));
                }
                Rule::expect_stmt => {
                    let mut e =
                        ast::Expect { verdict: ast::VerdictKind::Allow, reason: None, by: None, with: None, span: ssp };
                    let mut by_next = false;
                    let mut with_next = false;
                    for c in s.into_inner() {
                        match c.as_rule() {
                            Rule::kw_expect => {}
                            Rule::verdict => e.verdict = self.verdict(c)?,
                            Rule::reason_name => e.reason = Some(self.ident(c)),
                            Rule::kw_by => by_next = true,
                            Rule::kw_with => with_next = true,
                            Rule::rule_ref if by_next => e.by = Some(self.ident(c)),
                            Rule::json_value if with_next => e.with = Some(self.json(c)?),
                            _ => return Err(self.bug(span(&c), "expect")),
                        }
                    }
                    stmts.push(ast::TestStmt::Expect(e));
                }
                _ => return Err(self.bug(ssp, "a test statement")),
            }
        }
        Ok(ast::Test { name, stmts })
    }

    fn tool_name(&self, p: Pair<'_, Rule>) -> Result<ast::ToolName, Diag> {
        let sp = span(&p);
        let inner = p.into_inner().next().ok_or_else(|| self.bug(sp, "a tool name"))?;
        Ok(match inner.as_rule() {
            Rule::string => ast::ToolName::Str(self.string(inner)?),
            _ => ast::ToolName::Name(self.ident(inner)),
        })
    }
}

// ------------------------------------------------------------------------------------------
// Comments

#[derive(Debug)]
enum Tok<'a> {
    Open,
    Close,
    Not,
    Other,
    Comment(&'a str),
}

/// A scanner that knows just enough of the lexical syntax (strings, raw strings, comments,
/// brackets) to find comments and measure nesting. Written by hand because pest drops
/// comments, and re-running the grammar to find them would cost a second parse.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn next_token(&mut self) -> Option<(usize, Tok<'a>)> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            let at = self.pos;
            match b {
                b'#' => {
                    let end = self.text.get(at..).and_then(|r| r.find('\n')).map_or(self.text.len(), |i| at + i);
                    self.pos = end;
                    return Some((at, Tok::Comment(self.text.get(at + 1..end).unwrap_or(""))));
                }
                b'"' => {
                    self.pos += 1;
                    while let Some(&c) = bytes.get(self.pos) {
                        self.pos += 1;
                        if c == b'\\' {
                            self.pos += 1;
                        } else if c == b'"' || c == b'\n' {
                            break;
                        }
                    }
                    return Some((at, Tok::Other));
                }
                b'r' if self.raw_start(at) => {
                    let hashes = bytes.get(at + 1..).map_or(0, |r| r.iter().take_while(|c| **c == b'#').count());
                    let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                    let body = at + 2 + hashes;
                    self.pos = self
                        .text
                        .get(body..)
                        .and_then(|r| r.find(&close))
                        .map_or(self.text.len(), |i| body + i + close.len());
                    return Some((at, Tok::Other));
                }
                b'(' | b'[' | b'{' => {
                    self.pos += 1;
                    return Some((at, Tok::Open));
                }
                b')' | b']' | b'}' => {
                    self.pos += 1;
                    return Some((at, Tok::Close));
                }
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                _ => {
                    let word_end = self.text.get(at..).map_or(self.text.len(), |r| {
                        at + r.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(r.len())
                    });
                    if word_end > at {
                        self.pos = word_end;
                        let w = self.text.get(at..word_end).unwrap_or("");
                        return Some((at, if w == "not" { Tok::Not } else { Tok::Other }));
                    }
                    self.pos += self.text.get(at..).and_then(|r| r.chars().next()).map_or(1, char::len_utf8);
                    return Some((at, Tok::Other));
                }
            }
        }
        None
    }

    /// `r"` or `r#...#"` at a word start.
    fn raw_start(&self, at: usize) -> bool {
        let bytes = self.text.as_bytes();
        let word_start =
            at == 0 || bytes.get(at - 1).is_some_and(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-'));
        word_start && bytes.get(at + 1..).is_some_and(|r| r.iter().find(|c| **c != b'#') == Some(&b'"'))
    }
}

/// 0-based line numbers of byte offsets, by binary search over the line starts.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        Lines(std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }

    fn of(&self, at: usize) -> usize {
        self.0.partition_point(|start| *start <= at).saturating_sub(1)
    }
}

/// A leading-comment entry that stands for a blank line between comments (a comment's text
/// never contains a newline).
pub const BLANK: &str = "\n";

fn attach_comments(text: &str, mut items: Vec<ast::Item>, comments: Vec<(usize, String)>) -> ast::File {
    let lines = Lines::new(text);
    let line_of = |_: &str, at: usize| lines.of(at);
    let mut comments = comments.into_iter().peekable();
    let mut prev_end = 0usize;
    let mut prev_line: Option<usize> = None;
    let mut trailing_comments = Vec::new();
    let blank_between = |a: usize, b: usize| text.get(a..b).is_some_and(|g| g.matches('\n').count() >= 2);
    let comment_end = |at: usize| text.get(at..).and_then(|r| r.find('\n')).map_or(text.len(), |i| at + i);
    for idx in 0..items.len() {
        let (start, end) = match items.get(idx) {
            Some(it) => (it.span.start, it.span.end),
            None => break,
        };
        let mut leading = Vec::new();
        let mut first_start = start;
        let mut last_end: Option<usize> = None;
        while let Some((at, _)) = comments.peek() {
            if *at >= end {
                break;
            }
            let Some((at, c)) = comments.next() else { break };
            // A comment on the same line as the end of the previous item belongs to it.
            if at < start && prev_line == Some(line_of(text, at)) && idx > 0 {
                if let Some(prev) = items.get_mut(idx - 1) {
                    prev.trailing = Some(c);
                    prev_end = comment_end(at);
                    continue;
                }
            }
            if leading.is_empty() && at < first_start {
                first_start = at;
            }
            if let Some(le) = last_end {
                if at < start && blank_between(le, at) {
                    leading.push(BLANK.to_string());
                }
            }
            leading.push(c);
            last_end = Some(comment_end(at));
        }
        if let Some(le) = last_end {
            if le < start && blank_between(le, start) {
                leading.push(BLANK.to_string());
            }
        }
        let blank = idx > 0 && blank_between(prev_end, first_start);
        if let Some(it) = items.get_mut(idx) {
            it.leading = leading;
            it.blank_before = blank;
        }
        prev_end = end;
        prev_line = Some(line_of(text, end.saturating_sub(1)));
    }
    let mut last_end = prev_end;
    for (at, c) in comments {
        if prev_line == Some(line_of(text, at)) {
            if let Some(last) = items.last_mut() {
                if last.trailing.is_none() {
                    last.trailing = Some(c);
                    last_end = comment_end(at);
                    continue;
                }
            }
        }
        if !trailing_comments.is_empty() && blank_between(last_end, at) {
            trailing_comments.push(BLANK.to_string());
        }
        last_end = comment_end(at);
        trailing_comments.push(c);
    }
    ast::File { items, trailing_comments }
}
