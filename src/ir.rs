//! The checked program: the compiler's and the reference interpreter's only input.
//!
//! Everything here is resolved: set names are expanded, regexes and globs are compiled,
//! reasons are in the vocabulary, types are settled (a path-typed value is wrapped in
//! `Value::Path`, taint comparisons are on ranks). Both front ends, `.fak` (`check`) and
//! `fak-policy/v1` JSON (`manifest`), produce this.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

pub use crate::ast::{Side, VerdictKind};
use crate::diag::Loc;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Program {
    pub rules: Vec<Rule>,
    /// Reasons the policy declared, with their dispositions.
    pub reasons: BTreeMap<String, Disposition>,
    pub posture: Posture,
    /// DENYs citing these reasons are admitted and logged as would-deny.
    pub advisory_reasons: BTreeSet<String>,
    pub tests: Vec<Test>,
    /// The detectors result rules read (`result.secrets`, `result.injections`), from every
    /// module.
    pub detectors: Vec<crate::secrets::Detector>,
    /// Where results come from (`source` declarations, a manifest's `sources`), for taint.
    pub sources: Vec<Source>,
    /// `fak-policy/v1` settings that later layers (taint, rate limits, egress) read; kept so
    /// a manifest loses nothing on the way in.
    #[serde(with = "json_text::opt_map")]
    pub manifest: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// `source untrusted on WebFetch;`: results of these tools raise a trace's taint to `level`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    /// A taint rank (`TAINT_LEVELS`).
    pub level: u8,
    pub tools: ToolSel,
    pub loc: Loc,
}

/// The rank of `untrusted`: what a result of a tool no `source` names raises its trace to.
pub const UNTRUSTED: u8 = 1;
/// The rank of `quarantined`: a trace that consumed a revoked witness.
pub const QUARANTINED: u8 = 2;

impl Program {
    /// The taint a result of `tool` raises its trace to: the highest level among the `source`
    /// declarations that name it, `untrusted` when none does.
    pub fn source_level(&self, tool: &str) -> u8 {
        self.sources.iter().filter(|s| s.tools.matches(tool)).map(|s| s.level).max().unwrap_or(UNTRUSTED)
    }

    /// The disposition of a reason: declared ones first, then DESIGN.md's table.
    pub fn disposition(&self, reason: &str) -> Disposition {
        self.reasons.get(reason).copied().unwrap_or_else(|| builtin_disposition(reason))
    }
}

/// The closed vocabulary of DESIGN.md; policies may declare more.
pub const BUILTIN_REASONS: &[&str] = &[
    "DEFAULT_DENY",
    "POLICY_BLOCK",
    "SELF_MODIFY",
    "LEASE_HELD",
    "TRUST_VIOLATION",
    "MALFORMED",
    "MISROUTE",
    "RATE_LIMITED",
    "SECRET_EXFIL",
    "UNWITNESSED",
    "OVERSIZE",
    "UNKNOWN_TOOL",
    "RESULT_SECRET_DISCOVERED",
];

/// The reason of an ALLOW.
pub const NONE: &str = "NONE";

pub fn is_builtin_reason(r: &str) -> bool {
    BUILTIN_REASONS.contains(&r)
}

pub fn builtin_disposition(reason: &str) -> Disposition {
    match reason {
        "MISROUTE" | "MALFORMED" => Disposition::Retryable,
        "RATE_LIMITED" | "LEASE_HELD" => Disposition::Wait,
        "SELF_MODIFY" | "TRUST_VIOLATION" => Disposition::Escalate,
        NONE => Disposition::None,
        _ => Disposition::Terminal,
    }
}

/// What the agent should do after a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Disposition {
    /// Not a refusal.
    None,
    Retryable,
    Wait,
    Escalate,
    Terminal,
}

impl Disposition {
    pub fn parse(s: &str) -> Option<Disposition> {
        Some(match s {
            "retryable" => Disposition::Retryable,
            "wait" => Disposition::Wait,
            "escalate" => Disposition::Escalate,
            "terminal" => Disposition::Terminal,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "NONE",
            Disposition::Retryable => "RETRYABLE",
            Disposition::Wait => "WAIT",
            Disposition::Escalate => "ESCALATE",
            Disposition::Terminal => "TERMINAL",
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Retryable => "retryable",
            Disposition::Wait => "wait",
            Disposition::Escalate => "escalate",
            Disposition::Terminal => "terminal",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Posture {
    /// A call no rule allows is refused.
    #[default]
    FailClosed,
    /// A DEFAULT_DENY of a read-shaped tool is admitted and logged as a would-deny.
    AdmitAndLog,
}

impl Posture {
    pub fn parse(s: &str) -> Option<Posture> {
        match s {
            "fail_closed" => Some(Posture::FailClosed),
            "admit_and_log" => Some(Posture::AdmitAndLog),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Posture::FailClosed => "fail_closed",
            Posture::AdmitAndLog => "admit_and_log",
        }
    }
}

/// Verdict kinds from least to most restrictive; `Ord` is restrictiveness.
pub fn rank(v: VerdictKind) -> u8 {
    match v {
        VerdictKind::Allow => 0,
        VerdictKind::Transform => 1,
        VerdictKind::Quarantine => 2,
        VerdictKind::Deny => 3,
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    /// Unique in the program; rules of an imported module are prefixed with its name.
    pub id: Arc<str>,
    pub verdict: VerdictKind,
    pub side: Side,
    pub tools: ToolSel,
    pub reason: Arc<str>,
    pub message: Option<Arc<str>>,
    pub cond: Expr,
    /// `transform` rules: argument paths and their new values, applied in order.
    #[serde(with = "json_text::sets")]
    pub set: Vec<(Vec<String>, serde_json::Value)>,
    /// Notes a would-be verdict instead of deciding.
    pub advisory: bool,
    pub loc: Loc,
}

/// Which tools a rule is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolSel {
    pub any: bool,
    pub exact: BTreeSet<String>,
    pub prefixes: BTreeSet<String>,
}

impl ToolSel {
    pub fn any() -> ToolSel {
        ToolSel { any: true, ..ToolSel::default() }
    }

    pub fn matches(&self, tool: &str) -> bool {
        self.any || self.exact.contains(tool) || self.prefixes.iter().any(|p| tool.starts_with(p.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// A condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Expr {
    True,
    False,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Atom(Atom),
    /// `any(x in list: body)` / `all(...)`; the variable is `Value::Var(var)` in the body.
    Quant {
        all: bool,
        var: u32,
        list: Value,
        /// Shared: the compiler keeps quantifiers in its nodes and list filters, and a
        /// clone is then a count, not a copy of the body.
        body: Arc<Expr>,
    },
}

/// A test on values, the unit the prefilters reason about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Atom {
    /// A boolean value used as a condition: true only when it is `true`.
    Truthy(Value),
    Cmp(CmpOp, Value, Value),
    /// Membership in a list.
    In(Value, Value),
    /// Substring of a string, or membership when the left side is a list.
    Contains(Value, Value),
    Matches(Value, Pattern<Regex>),
    /// The left side is always a `Value::Path`.
    Glob(Value, Pattern<Glob>),
    StartsWith(Value, Value),
    EndsWith(Value, Value),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A value a condition reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Lit(Lit),
    List(Vec<Value>),
    /// The tool name.
    Tool,
    /// `args.a.b` (`[]` is the whole argument object).
    Args(Vec<String>),
    /// The trace's taint as a rank: trusted 0, untrusted 1, quarantined 2.
    TaintRank,
    Principal,
    ResultText,
    /// A quantifier variable, then fields inside it.
    Var(u32, Vec<String>),
    /// Length of a string (characters), list or object.
    Len(Box<Value>),
    /// Length of a value's text in UTF-8 bytes.
    Bytes(Box<Value>),
    Lower(Box<Value>),
    /// The value as a path: absolute against the workspace, normalised.
    Path(Box<Value>),
    /// Whether the value is present.
    Has(Box<Value>),
    /// A view of the call (`shell.commands`, `writes`, ...; see `crate::view`).
    View(crate::view::Field),
}

impl Value {
    /// Whether the value depends on a quantifier variable.
    pub fn uses_var(&self) -> bool {
        match self {
            Value::Var(..) => true,
            Value::List(items) => items.iter().any(Value::uses_var),
            Value::Len(v) | Value::Bytes(v) | Value::Lower(v) | Value::Path(v) | Value::Has(v) => v.uses_var(),
            _ => false,
        }
    }
}

/// A JSON literal that can be hashed (numbers by their bits).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lit(#[serde(with = "json_text::value")] pub serde_json::Value);

impl Eq for Lit {}

impl std::hash::Hash for Lit {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Structural, without printing: equal values (serde_json's `PartialEq`) hash alike.
        fn walk<H: std::hash::Hasher>(j: &serde_json::Value, state: &mut H) {
            use serde_json::Value as J;
            match j {
                J::Null => 0u8.hash(state),
                J::Bool(b) => (1u8, *b).hash(state),
                J::Number(n) => {
                    2u8.hash(state);
                    // A number equals another only in the same representation.
                    if let Some(u) = n.as_u64() {
                        (0u8, u).hash(state);
                    } else if let Some(i) = n.as_i64() {
                        (1u8, i).hash(state);
                    } else {
                        (2u8, n.as_f64().map(f64::to_bits)).hash(state);
                    }
                }
                J::String(s) => (3u8, s).hash(state),
                J::Array(items) => {
                    (4u8, items.len()).hash(state);
                    items.iter().for_each(|i| walk(i, state));
                }
                // Objects compare without regard to order: their size alone is hashed.
                J::Object(o) => (5u8, o.len()).hash(state),
            }
        }
        walk(&self.0, state);
    }
}

/// A compiled regex or glob with its source text; equal when the sources are.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Pattern<T> {
    pub src: Arc<str>,
    pub compiled: T,
}

impl<T> PartialEq for Pattern<T> {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}
impl<T> Eq for Pattern<T> {}
impl<T> std::hash::Hash for Pattern<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.src.hash(state);
    }
}
impl<T> fmt::Debug for Pattern<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.src)
    }
}

/// A regex checked for syntax when the policy is checked and compiled on first use, so
/// loading a policy does not pay for regexes a decision never reaches.
#[derive(Clone)]
pub struct Regex {
    src: Arc<str>,
    compiled: Arc<std::sync::OnceLock<Result<regex::Regex, String>>>,
    /// Literals one of which every match contains (see `compile::prefilter`), extracted when
    /// a prefilter first asks: most regexes (a secret's pattern, its exceptions) never feed
    /// one, and extracting is a third of what checking a regex costs.
    literals: Arc<std::sync::OnceLock<Option<Arc<[Vec<u8>]>>>>,
}

impl Regex {
    /// A regex this binary's checker has already accepted (`snapshot::known_regex`): compiled
    /// on first use, as `compile_regex` leaves one under the size limit.
    pub(crate) fn checked_before(src: &str) -> Regex {
        Regex { src: Arc::from(src), compiled: Arc::default(), literals: Arc::default() }
    }

    pub fn literals(&self) -> Option<&[Vec<u8>]> {
        self.literals.get_or_init(|| crate::compile::regex_literals(&self.src).map(Arc::from)).as_deref()
    }

    /// The compiled regex; `Err` when it is over the size limit.
    pub fn get(&self) -> Result<&regex::Regex, &str> {
        self.compiled.get_or_init(|| build_regex(&self.src)).as_ref().map_err(String::as_str)
    }

    pub fn is_match(&self, text: &str) -> Result<bool, &str> {
        self.get().map(|re| re.is_match(text))
    }
}

/// A regex travels as its source and its literals; it is compiled on first use, as when
/// checked. Only `snapshot` stores programs, and only ones that checked clean.
impl serde::Serialize for Regex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&*self.src, self.literals()).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Regex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (src, literals) = <(String, Option<Vec<Vec<u8>>>)>::deserialize(d)?;
        Ok(Regex { src: Arc::from(src), compiled: Arc::default(), literals: Arc::new(literals.map(Arc::from).into()) })
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.src)
    }
}

/// One glob, or every glob of a `globs` set (`p glob paths.vcs` is one atom), and which form
/// of a path each is matched against: patterns starting with `/` or `**` see the absolute
/// path, others the path relative to the workspace root. Matching runs one globset
/// `GlobSet` per form, built on first use, so a set of globs costs one match, not one per
/// glob.
#[derive(Clone, Debug)]
pub struct Glob {
    pub globs: Vec<globset::Glob>,
    /// Per glob: matched against the absolute path.
    pub absolute: Vec<bool>,
    sets: Arc<std::sync::OnceLock<Result<(globset::GlobSet, globset::GlobSet), String>>>,
}

impl Glob {
    /// Whether a glob matches the canonical absolute path `abs` or, for relative globs, `rel`
    /// (the path inside the workspace, when it is inside). `Err` when the globs could not be
    /// built into a set (the regex size limit): the caller refuses, never reads it as "no".
    pub fn is_match(&self, abs: &str, rel: Option<&str>) -> Result<bool, &str> {
        let sets = self.sets.get_or_init(|| {
            let mut a = globset::GlobSetBuilder::new();
            let mut r = globset::GlobSetBuilder::new();
            for (g, absolute) in self.globs.iter().zip(&self.absolute) {
                if *absolute {
                    a.add(g.clone());
                } else {
                    r.add(g.clone());
                }
            }
            match (a.build(), r.build()) {
                (Ok(a), Ok(r)) => Ok((a, r)),
                (Err(e), _) | (_, Err(e)) => Err(format!("the globs cannot be matched together: {e}")),
            }
        });
        match sets {
            Ok((a, r)) => Ok(a.is_match(abs) || rel.is_some_and(|rel| r.is_match(rel))),
            Err(e) => Err(e.as_str()),
        }
    }

    /// The source text of each glob.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.globs.iter().map(globset::Glob::glob)
    }
}

/// A glob travels as its source texts and is parsed again (cheap, and it never fails for a
/// source that checked clean).
impl serde::Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sources().collect::<Vec<_>>().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let srcs = <Vec<String>>::deserialize(d)?;
        compile_globs(&srcs).map_err(serde::de::Error::custom)
    }
}

/// Largest compiled regex, in bytes (the regex crate's size limit).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn build_regex(src: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(src).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| {
        match e {
            regex::Error::Syntax(s) => s,
            regex::Error::CompiledTooBig(n) => format!("the compiled regex is larger than the limit of {n} bytes"),
            other => other.to_string(),
        }
    })
}

/// Checks a regex's syntax (with the regex crate's own parser and message); compiling waits
/// for first use.
pub fn compile_regex(src: &str) -> Result<Regex, String> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(src).map_err(|e| e.to_string())?;
    let re = Regex { src: Arc::from(src), compiled: Arc::default(), literals: Arc::default() };
    // A regex that might be over the size limit is compiled now, so that a policy that
    // checks clean never meets a regex it cannot run; the others wait for first use.
    // The bound is a few instructions a class range; the exact count walks each range's UTF-8
    // sequences (a third of what checking the stdlib's regexes cost), so it runs only for a
    // regex the bound cannot clear.
    if size_estimate(&hir, class_bound) > EAGER_COMPILE_ABOVE && size_estimate(&hir, class_exact) > EAGER_COMPILE_ABOVE
    {
        re.get().map_err(str::to_string)?;
    }
    Ok(re)
}

/// Estimated size units above which a regex is compiled when checked. Calibrated against the
/// regex crate's 1 MiB limit: the smallest estimate of a regex over the limit is about 26,000
/// (`(?i)k{4443}`; `.{1049}` is 30,000, `\w{21}` 71,000), so below 16,000 compiling cannot fail.
const EAGER_COMPILE_ABOVE: u64 = 16_000;

/// An estimate of a regex's compiled size: literals by length, Unicode classes as `class`
/// counts them, repetitions by their bound.
fn size_estimate(h: &regex_syntax::hir::Hir, class: fn(&regex_syntax::hir::ClassUnicode) -> u64) -> u64 {
    use regex_syntax::hir::{Class, HirKind};
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(l) => l.0.len() as u64,
        HirKind::Class(Class::Unicode(c)) => class(c),
        HirKind::Class(Class::Bytes(c)) => c.ranges().len() as u64 + 1,
        HirKind::Repetition(r) => {
            let n = u64::from(r.max.unwrap_or(r.min).max(r.min).max(1)) + 1;
            size_estimate(&r.sub, class).saturating_mul(n)
        }
        HirKind::Capture(c) => size_estimate(&c.sub, class),
        HirKind::Concat(items) | HirKind::Alternation(items) => {
            items.iter().map(|h| size_estimate(h, class)).fold(0u64, u64::saturating_add)
        }
    }
}

/// What the regex crate compiles a Unicode class to: the bytes of its ranges' UTF-8 sequences.
fn class_exact(c: &regex_syntax::hir::ClassUnicode) -> u64 {
    c.ranges()
        .iter()
        .map(|r| regex_syntax::utf8::Utf8Sequences::new(r.start(), r.end()).map(|s| s.len() as u64).sum::<u64>())
        .fold(1, u64::saturating_add)
}

/// An upper bound of `class_exact` without walking sequences: within one UTF-8 length `L` (the
/// 3-byte one split at the surrogates, as `Utf8Sequences` splits it), a range is at most
/// `2L - 1` sequences of `L` bytes (a partial first and last byte at each of the `L - 1`
/// continuation levels, and the full middle).
fn class_bound(c: &regex_syntax::hir::ClassUnicode) -> u64 {
    const PARTS: [(u32, u32, u64); 5] = [
        (0, 0x7f, 1),
        (0x80, 0x7ff, 3 * 2),
        (0x800, 0xd7ff, 5 * 3),
        (0xe000, 0xffff, 5 * 3),
        (0x1_0000, 0x10_ffff, 7 * 4),
    ];
    c.ranges()
        .iter()
        .map(|r| {
            let (lo, hi) = (u32::from(r.start()), u32::from(r.end()));
            PARTS.iter().filter(|&&(a, b, _)| lo <= b && a <= hi).map(|&(_, _, most)| most).sum::<u64>()
        })
        .fold(1, u64::saturating_add)
}

/// Compiles a regex now: `fak policy --check` does, to report regexes over the size limit.
pub fn compile_regex_now(src: &str) -> Result<Regex, String> {
    let re = compile_regex(src)?;
    re.get().map_err(str::to_string)?;
    Ok(re)
}

pub fn compile_glob(src: &str) -> Result<Glob, String> {
    compile_globs(&[src])
}

/// Compiles several globs into one `Glob` that matches when any of them does.
pub fn compile_globs<S: AsRef<str>>(srcs: &[S]) -> Result<Glob, String> {
    let mut globs = Vec::with_capacity(srcs.len());
    let mut absolute = Vec::with_capacity(srcs.len());
    for src in srcs {
        let src = src.as_ref();
        // Case-insensitive: rules compare paths in canonical, case-folded form (`path::canonical`).
        let glob = globset::GlobBuilder::new(src)
            .case_insensitive(true)
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        globs.push(glob);
        absolute.push(src.starts_with('/') || src.starts_with("**"));
    }
    Ok(Glob { globs, absolute, sets: Arc::new(std::sync::OnceLock::new()) })
}

/// The `Pattern::src` of several globs: a NUL, then their JSON array. The NUL keeps it apart
/// from any single glob a policy could match a path with (no path holds a NUL).
pub fn globs_src<S: AsRef<str>>(srcs: &[S]) -> String {
    let list: Vec<&str> = srcs.iter().map(AsRef::as_ref).collect();
    format!("\u{0}{}", serde_json::Value::from(list))
}

/// A `test` block, checked.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Test {
    pub name: String,
    pub loc: Loc,
    pub input: TestInput,
    pub taint: u8,
    pub expect: Expect,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum TestInput {
    Call {
        tool: String,
        #[serde(with = "json_text::value")]
        args: serde_json::Value,
    },
    Result {
        tool: String,
        text: String,
    },
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Expect {
    pub verdict: VerdictKind,
    pub reason: Option<String>,
    pub by: Option<String>,
    #[serde(with = "json_text::opt_value")]
    pub with: Option<serde_json::Value>,
    pub loc: Loc,
}

pub const TAINT_LEVELS: &[&str] = &["trusted", "untrusted", "quarantined"];

/// A taint rank's name (`quarantined` for anything above).
pub fn taint_name(rank: u8) -> &'static str {
    TAINT_LEVELS.get(usize::from(rank)).copied().unwrap_or("quarantined")
}

pub fn taint_rank(s: &str) -> Option<u8> {
    TAINT_LEVELS.iter().position(|t| *t == s).and_then(|p| u8::try_from(p).ok())
}

/// An atom in policy syntax, for explanations and dumps.
pub fn describe_atom(a: &Atom) -> String {
    let s = |v: &Value| describe_value(v);
    match a {
        Atom::Truthy(v) => s(v),
        Atom::Cmp(op, l, r) => {
            let op = match op {
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            };
            if matches!(l, Value::TaintRank) {
                if let Value::Lit(Lit(n)) = r {
                    let level = n.as_u64().and_then(|i| TAINT_LEVELS.get(i as usize)).copied().unwrap_or("trusted");
                    return format!("trace.taint {op} {}", serde_json::Value::from(level));
                }
            }
            format!("{} {op} {}", s(l), s(r))
        }
        Atom::In(l, r) => format!("{} in {}", s(l), s(r)),
        Atom::Contains(l, r) => format!("{} contains {}", s(l), s(r)),
        Atom::Matches(l, re) => format!("{} matches {}", s(l), quote_pattern(&re.src)),
        Atom::Glob(l, g) => {
            // The checker reads the left side of `glob` as a path itself.
            let l = match l {
                Value::Path(inner) => s(inner),
                other => s(other),
            };
            let right = match g.compiled.globs.as_slice() {
                [_] => quote_pattern(&g.src),
                _ => format!("[{}]", g.compiled.sources().map(quote_pattern).collect::<Vec<_>>().join(", ")),
            };
            format!("{l} glob {right}")
        }
        Atom::StartsWith(l, r) => format!("{} starts_with {}", s(l), s(r)),
        Atom::EndsWith(l, r) => format!("{} ends_with {}", s(l), s(r)),
    }
}

/// A regex or glob as a policy string: raw when that reads better.
pub fn quote_pattern(src: &str) -> String {
    if src.contains('\\') && !src.contains('"') {
        format!("r\"{src}\"")
    } else if src.contains('\\') && !src.contains("\"#") {
        format!("r#\"{src}\"#")
    } else {
        serde_json::Value::from(src).to_string()
    }
}

/// A value in policy syntax.
pub fn describe_value(v: &Value) -> String {
    fn path(root: &str, segs: &[String]) -> String {
        let mut s = root.to_string();
        for seg in segs {
            let plain = seg.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !RESERVED.contains(&seg.as_str());
            if plain {
                s.push('.');
                s.push_str(seg);
            } else {
                s.push('[');
                s.push_str(&serde_json::Value::from(seg.as_str()).to_string());
                s.push(']');
            }
        }
        s
    }
    match v {
        Value::Lit(l) => crate::ast::print::json(&l.0),
        Value::List(items) => format!("[{}]", items.iter().map(describe_value).collect::<Vec<_>>().join(", ")),
        Value::Tool => "tool".into(),
        Value::Args(segs) => path("args", segs),
        Value::TaintRank => "trace.taint".into(),
        Value::Principal => "principal".into(),
        Value::ResultText => "result.text".into(),
        // `u32::MAX` is the variable a list filter renames every quantifier's to.
        Value::Var(u32::MAX, segs) => path("x", segs),
        Value::Var(id, segs) => path(&format!("v{id}"), segs),
        Value::Len(inner) => format!("len({})", describe_value(inner)),
        Value::Bytes(inner) => format!("bytes({})", describe_value(inner)),
        Value::Lower(inner) => format!("lower({})", describe_value(inner)),
        Value::Path(inner) => format!("path({})", describe_value(inner)),
        Value::Has(inner) => format!("has({})", describe_value(inner)),
        Value::View(f) => f.name().to_string(),
    }
}

/// Words a field name cannot be written bare with.
pub const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "contains",
    "matches",
    "glob",
    "starts_with",
    "ends_with",
    "any",
    "all",
    "true",
    "false",
];

/// JSON values inside the IR travel as JSON text, so that formats that are not self-describing
/// (the snapshot's postcard) can carry them.
mod json_text {
    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};
    use serde_json::Value;

    fn parse<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(text: &str) -> Result<T, D::Error> {
        serde_json::from_str(text).map_err(serde::de::Error::custom)
    }

    pub mod value {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
            v.to_string().serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
            parse::<D, _>(&std::borrow::Cow::<str>::deserialize(d)?)
        }
    }

    pub mod opt_value {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
            v.as_ref().map(Value::to_string).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
            Option::<String>::deserialize(d)?.map(|t| parse::<D, _>(&t)).transpose()
        }
    }

    pub mod opt_map {
        use super::*;
        use std::sync::Arc;

        type Map = serde_json::Map<String, Value>;

        pub fn serialize<S: Serializer>(v: &Option<Arc<Map>>, s: S) -> Result<S::Ok, S::Error> {
            v.as_ref().map(|m| Value::Object(Map::clone(m)).to_string()).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<Map>>, D::Error> {
            Option::<String>::deserialize(d)?.map(|t| parse::<D, Map>(&t).map(Arc::new)).transpose()
        }
    }

    pub mod sets {
        use super::*;

        type Sets = Vec<(Vec<String>, Value)>;

        pub fn serialize<S: Serializer>(v: &Sets, s: S) -> Result<S::Ok, S::Error> {
            let texts: Vec<(&[String], String)> = v.iter().map(|(p, v)| (p.as_slice(), v.to_string())).collect();
            texts.serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sets, D::Error> {
            Vec::<(Vec<String>, String)>::deserialize(d)?
                .into_iter()
                .map(|(p, t)| parse::<D, Value>(&t).map(|v| (p, v)))
                .collect()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn class(src: &str) -> regex_syntax::hir::ClassUnicode {
        let hir = regex_syntax::ParserBuilder::new().build().parse(src).unwrap();
        match hir.into_kind() {
            regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(c)) => c,
            other => panic!("{src} is not a class: {other:?}"),
        }
    }

    /// The eager-compile check trusts the bound to clear a regex only when its exact count
    /// would too: the bound must never be below it.
    #[test]
    fn the_class_bound_is_never_below_the_exact_count() {
        for src in [
            r"\w",
            r"\s",
            r"\d",
            r"(?i)k",
            r"(?i)[a-z]",
            r"(?s).",
            r"[^\n]",
            r"\p{Any}",
            r"[\x{80}-\x{10FFFF}]",
            r"\p{Greek}",
            r"[\x{7f}-\x{80}]",
            r"[\x{7ff}-\x{800}]",
            r"[\x{d7ff}-\x{e000}]",
            r"[\x{ffff}-\x{10000}]",
            r"[\x{801}-\x{fffe}]",
            r"[\x{10001}-\x{10fffe}]",
            r"[a-c\x{3b1}-\x{3c9}\x{4e00}-\x{9fff}]",
        ] {
            let c = class(src);
            assert!(class_bound(&c) >= class_exact(&c), "{src}: bound {} < exact {}", class_bound(&c), class_exact(&c));
        }
        proptest::proptest!(|(a in 0u32..0x11_0000, b in 0u32..0x11_0000)| {
            let (lo, hi) = (a.min(b), a.max(b));
            if let (Some(lo), Some(hi)) = (char::from_u32(lo), char::from_u32(hi)) {
                let c = regex_syntax::hir::ClassUnicode::new([regex_syntax::hir::ClassUnicodeRange::new(lo, hi)]);
                proptest::prop_assert!(class_bound(&c) >= class_exact(&c), "{lo:?}-{hi:?}");
            }
        });
    }
}
