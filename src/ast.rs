//! The syntax tree of a `.fak` file: data only, every node spanned.
//!
//! The tree is what the programmer wrote, nothing resolved: names are strings, sets are not
//! looked up, strings keep their original spelling so that the formatter (`print`) can give
//! them back. `check` turns a tree into `ir`.
//!
//! Spans are byte offsets into the file's text. They are not part of a node's identity:
//! `Span`'s `PartialEq` always says equal, so "parsing the formatted text gives the same
//! tree" is a plain `==`.

pub mod print;

use std::fmt;

/// A byte range in one source file.
#[derive(Clone, Copy, Default, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

impl PartialEq for Span {
    /// Spans never make two nodes different; see the module docs.
    fn eq(&self, _other: &Span) -> bool {
        true
    }
}

impl std::hash::Hash for Span {
    /// Consistent with `PartialEq`: every span hashes alike.
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    /// Comments after the last item.
    pub trailing_comments: Vec<String>,
}

/// A top-level item with the comments written around it. Comments are kept for the
/// formatter only; they carry no meaning.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
    /// Comment lines (without `#`) directly above the item, or inside it.
    pub leading: Vec<String>,
    /// A comment on the item's last line.
    pub trailing: Option<String>,
    /// There is a blank line between this item and the previous one.
    pub blank_before: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    Import(Import),
    Set(SetDecl),
    Reason(ReasonDecl),
    Posture(Ident),
    Advisory(Vec<Ident>),
    /// `source untrusted on WebFetch;`: the taint level of a tool's results.
    Source(SourceDecl),
    Secret(SecretDecl),
    Rule(Rule),
    Test(Test),
}

/// `source LEVEL on TOOLS;`
#[derive(Clone, Debug, PartialEq)]
pub struct SourceDecl {
    pub level: Ident,
    pub on: On,
}

/// A name as written, with its place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A string literal: its value and how it was spelled (`"a\tb"`, `r"a\b"`, `r#"..."#`).
#[derive(Clone, Debug, PartialEq)]
pub struct Str {
    pub value: String,
    pub raw: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub target: ImportTarget,
    pub alias: Option<Ident>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ImportTarget {
    /// `std.shell`: the path after `std`, e.g. `["shell"]`.
    Std(Vec<String>, Span),
    /// `"sibling.fak"`, relative to the importing file.
    File(Str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetKind {
    Tools,
    Strings,
    Globs,
    Regexes,
}

impl SetKind {
    pub fn keyword(self) -> &'static str {
        match self {
            SetKind::Tools => "tools",
            SetKind::Strings => "strings",
            SetKind::Globs => "globs",
            SetKind::Regexes => "regexes",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SetDecl {
    pub kind: SetKind,
    pub name: Ident,
    pub items: Vec<Lit>,
    pub span_list: Span,
}

/// `secret NAME keywords [...] pattern r"..." ...;`: a kind of secret (or, declared with
/// `injection`, of injection).
#[derive(Clone, Debug, PartialEq)]
pub struct SecretDecl {
    /// `secret` or `injection`.
    pub class: crate::secrets::Class,
    pub name: Ident,
    pub clauses: Vec<SecretClause>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SecretClause {
    /// The list and its span.
    Keywords(Vec<Lit>, Span),
    Pattern(Str),
    /// The number as written, its value and its span.
    Entropy(f64, String, Span),
    Except(Vec<Lit>, Span),
    Finds(Str),
    Ignores(Str),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReasonDecl {
    pub name: Ident,
    pub disposition: Ident,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum VerdictKind {
    Allow,
    Transform,
    Quarantine,
    Deny,
}

impl VerdictKind {
    pub fn keyword(self) -> &'static str {
        match self {
            VerdictKind::Allow => "allow",
            VerdictKind::Transform => "transform",
            VerdictKind::Quarantine => "quarantine",
            VerdictKind::Deny => "deny",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Side {
    Call,
    Result,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub verdict: VerdictKind,
    pub verdict_span: Span,
    pub id: Ident,
    pub on: Option<On>,
    pub clauses: Vec<Clause>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct On {
    pub side: Option<(Side, Span)>,
    pub tools: Vec<ToolItem>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ToolItem {
    /// `*`: every tool.
    Star(Span),
    /// `"mcp__github__get_issue"`, or `"read_*"`: a prefix.
    Str(Str),
    /// `Bash`, or the name of a `tools` set.
    Name(Ident),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Clause {
    Reason(Ident),
    Message(Str),
    When(Expr),
    Set(ValuePath, Json),
    Advisory(Span),
}

/// A JSON value written inline (tests, `set`).
#[derive(Clone, Debug, PartialEq)]
pub struct Json {
    pub value: serde_json::Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    Str(Str),
    /// The number and its spelling.
    Num(f64, String, Span),
    Bool(bool, Span),
    /// A bare name in a set list: a tool name.
    Name(Ident),
}

impl Lit {
    pub fn span(&self) -> Span {
        match self {
            Lit::Str(s) => s.span,
            Lit::Num(_, _, span) | Lit::Bool(_, span) => *span,
            Lit::Name(i) => i.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Lit(Lit),
    List(Vec<Expr>),
    Path(ValuePath),
    Call(Ident, Vec<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Quant(Quant, Ident, Box<Expr>, Box<Expr>),
    /// Kept so that the formatter gives back the programmer's parentheses.
    Paren(Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quant {
    Any,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    Matches,
    Glob,
    StartsWith,
    EndsWith,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Contains => "contains",
            BinOp::Matches => "matches",
            BinOp::Glob => "glob",
            BinOp::StartsWith => "starts_with",
            BinOp::EndsWith => "ends_with",
        }
    }

    /// Binding power: `or` < `and` < `not` < comparisons.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            _ => 4,
        }
    }
}

/// `args.command`, `args["-i"]`, `trace.taint`, `shell.danger`, `e.file_path`.
#[derive(Clone, Debug, PartialEq)]
pub struct ValuePath {
    pub root: Ident,
    pub segs: Vec<Seg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Seg {
    Field(Ident),
    Index(Str),
}

impl Seg {
    pub fn name(&self) -> &str {
        match self {
            Seg::Field(i) => &i.name,
            Seg::Index(s) => &s.value,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Seg::Field(i) => i.span,
            Seg::Index(s) => s.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    pub name: Str,
    pub stmts: Vec<TestStmt>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TestStmt {
    Call { tool: ToolName, args: Json },
    Result { tool: ToolName, text: Str },
    Taint(Ident),
    Expect(Expect),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ToolName {
    Name(Ident),
    Str(Str),
}

impl ToolName {
    pub fn name(&self) -> &str {
        match self {
            ToolName::Name(i) => &i.name,
            ToolName::Str(s) => &s.value,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            ToolName::Name(i) => i.span,
            ToolName::Str(s) => s.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub verdict: VerdictKind,
    pub reason: Option<Ident>,
    pub by: Option<Ident>,
    pub with: Option<Json>,
    pub span: Span,
}
