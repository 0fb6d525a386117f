//! Deciding calls and admitting results: total, bounded, no IO.
//!
//! `decide` and `admit` run a compiled `Dag`; `reference` is a plain tree-walking interpreter
//! of the `ir::Program` that the tests hold the Dag to. Both share the value semantics in
//! this module, so they can differ only in which rules they look at, never in what a
//! condition means.
//!
//! Semantics (DESIGN.md): every matching rule contributes and the most restrictive verdict
//! wins (DENY > QUARANTINE > TRANSFORM > ALLOW), ties broken by the smaller rule id, so rule
//! order never matters. A call no rule permits is DENY DEFAULT_DENY; a result no rule
//! catches is admitted. An input over budget or of the wrong shape is a DENY, never an ALLOW.

pub mod reference;

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

use crate::diag::Loc;
use crate::ir::{self, Atom, CmpOp, Disposition, Value, VerdictKind};

pub use crate::compile::{admit, admit_explained, decide, decide_explained};

/// A proposed tool call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub tool: String,
    pub args: Json,
}

/// A tool's result on its way back to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    pub tool: String,
    pub text: String,
}

/// What fak knows of the conversation a call belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceState {
    /// Taint high-water mark: 0 trusted, 1 untrusted, 2 quarantined.
    pub taint: u8,
    pub principal: Option<String>,
    /// The workspace root relative paths are resolved against, normalised.
    pub workspace: String,
    /// The home directory `~` and `$HOME` stand for in commands and paths, normalised.
    pub home: String,
}

impl Default for TraceState {
    fn default() -> Self {
        TraceState { taint: 0, principal: None, workspace: "/".to_string(), home: "/root".to_string() }
    }
}

impl TraceState {
    pub fn with_workspace(workspace: &str) -> TraceState {
        TraceState { workspace: crate::path::normalize(workspace, "/"), ..TraceState::default() }
    }

    /// The same state with another home directory.
    pub fn home(mut self, home: &str) -> TraceState {
        self.home = crate::path::normalize(home, "/");
        self
    }
}

/// Who decided: a rule and where it is written, or fak itself (`default`, `budget`, ...).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct By {
    pub rule: Arc<str>,
    #[serde(skip)]
    pub loc: Option<Loc>,
}

/// The answer for one call or result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    #[serde(serialize_with = "ser_kind")]
    pub verdict: VerdictKind,
    pub reason: Arc<str>,
    pub disposition: Disposition,
    pub by: By,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Arc<str>>,
    /// TRANSFORM: the arguments to run instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Json>,
    /// Would-be refusals that were only noted (advisory rules, advisory reasons, posture).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advisories: Vec<Advisory>,
    /// The kinds of secret and injection a result holds, when a rule looked for them: each
    /// kind once, secrets first, in the order found. Never the secrets themselves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Arc<str>>,
    /// A quarantined result's page in the store (`crate::store`), once it is paged out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<Arc<str>>,
    /// An admitted result's witness (`crate::store`): the digest of what the model read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Arc<str>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advisory {
    pub rule: Arc<str>,
    #[serde(serialize_with = "ser_kind")]
    pub verdict: VerdictKind,
    pub reason: Arc<str>,
}

fn ser_kind<S: serde::Serializer>(k: &VerdictKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind_str(*k))
}

pub fn kind_str(k: VerdictKind) -> &'static str {
    match k {
        VerdictKind::Allow => "ALLOW",
        VerdictKind::Transform => "TRANSFORM",
        VerdictKind::Quarantine => "QUARANTINE",
        VerdictKind::Deny => "DENY",
    }
}

impl Verdict {
    /// A verdict fak reaches itself, with no rule behind it.
    pub fn builtin(verdict: VerdictKind, reason: &str, by: &str, message: Option<String>) -> Verdict {
        Verdict {
            verdict,
            reason: Arc::from(reason),
            disposition: ir::builtin_disposition(reason),
            by: By { rule: Arc::from(by), loc: None },
            message: message.map(Arc::from),
            args: None,
            advisories: Vec::new(),
            kinds: Vec::new(),
            page: None,
            witness: None,
        }
    }

    /// A refusal in words for the agent: `REASON (by RULE, KINDS): MESSAGE`, never the
    /// refused content itself. The hook and the gateway put it in front of the model.
    pub fn why(&self) -> String {
        let mut s = format!("{} (by {}", self.reason, self.by.rule);
        if !self.kinds.is_empty() {
            let kinds: Vec<&str> = self.kinds.iter().map(|k| &**k).collect();
            s.push_str(&format!(", {}", kinds.join(", ")));
        }
        s.push(')');
        if let Some(m) = &self.message {
            s.push_str(&format!(": {m}"));
        }
        s
    }

    /// What the agent should do after this refusal, by its disposition.
    pub fn advice(&self) -> &'static str {
        match self.disposition {
            ir::Disposition::Escalate => "A person must decide; do not retry it another way.",
            ir::Disposition::Retryable => "Fix the call and retry.",
            ir::Disposition::Wait => "Wait before retrying.",
            _ => "Do not retry it another way.",
        }
    }

    pub fn is_allow(&self) -> bool {
        self.verdict == VerdictKind::Allow
    }
}

// ------------------------------------------------------------------------------------------
// Budgets

/// Limits on what one decision may cost. Over a limit is a DENY with a reason.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Total bytes of strings and keys in a call's arguments.
    pub max_input_bytes: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Most JSON values in a call's arguments.
    pub max_nodes: usize,
    /// Longest tool result text.
    pub max_result_bytes: usize,
    /// Most atom evaluations (quantifiers multiply them).
    pub max_steps: u64,
}

pub const BUDGET: Budget = Budget {
    max_input_bytes: 1 << 20,
    max_depth: 32,
    max_nodes: 100_000,
    max_result_bytes: 16 << 20,
    // The bound is static and loose (a command's lists are bounded by the whole view's size),
    // so the floor's forty-odd command rules put a 4 KiB script of 127 commands near 2.2 M
    // while deciding it takes some 20 µs; 4 M keeps such scripts in and still caps what an
    // input can make a policy do.
    max_steps: 4_000_000,
};

/// Checks what every decision checks before any rule runs: size, nesting, shape, the tool
/// schema. `Ok` is the number of JSON values in the arguments; `Err` the refusal.
pub(crate) fn precheck(call: &Call) -> Result<u64, Verdict> {
    if call.tool.is_empty() || call.tool.len() > 256 || call.tool.chars().any(char::is_control) {
        return Err(Verdict::builtin(
            VerdictKind::Deny,
            "MALFORMED",
            "fak.input",
            Some("the tool name is empty, too long or has control characters".into()),
        ));
    }
    let mut m = Measure::default();
    if let Err(what) = m.walk_args(&call.args) {
        return Err(Verdict::builtin(VerdictKind::Deny, "OVERSIZE", "fak.budget", Some(what)));
    }
    if !call.args.is_object() {
        return Err(Verdict::builtin(
            VerdictKind::Deny,
            "MALFORMED",
            "fak.input",
            Some("tool arguments must be a JSON object".into()),
        ));
    }
    if let Err(what) = crate::tools::validate(&call.tool, &call.args) {
        return Err(Verdict::builtin(VerdictKind::Deny, "MALFORMED", "fak.schema", Some(what)));
    }
    Ok(m.nodes as u64)
}

/// An upper bound on the steps evaluating `e` can take on this input: one per atom, and per
/// quantifier its list's length times its body. A list that depends on a quantifier variable
/// is bounded by the number of values in the input, or the number of items in the call's
/// views when it has a shell view (`Input::var_list_bound`).
///
/// Deciding checks the bound of every applicable rule before evaluating any, so going over
/// the budget is a property of the policy and the input, not of which rules the prefilters
/// let run or in which order: the Dag and the reference agree on it.
pub(crate) fn cost<'a>(e: &'a ir::Expr, scope: &Scope<'a>) -> u64 {
    match e {
        ir::Expr::True | ir::Expr::False => 0,
        ir::Expr::Atom(_) => 1,
        ir::Expr::And(items) | ir::Expr::Or(items) => items.iter().map(|i| cost(i, scope)).fold(0, u64::saturating_add),
        ir::Expr::Not(inner) => cost(inner, scope),
        ir::Expr::Quant { list, body, .. } => {
            let n = if list.uses_var() {
                scope.input.var_list_bound()
            } else {
                scope.value(list).list_len().map_or(0, |n| n as u64)
            };
            n.saturating_mul(cost(body, scope).saturating_add(1))
        }
    }
}

/// The refusal when the evaluation bound is over the budget.
pub(crate) fn over_budget(bound: u64) -> Option<Verdict> {
    (bound > BUDGET.max_steps).then(|| {
        Verdict::builtin(
            VerdictKind::Deny,
            "OVERSIZE",
            "fak.budget",
            Some(format!(
                "evaluating the policy on these arguments could take {bound} steps, more than the {} allowed",
                BUDGET.max_steps
            )),
        )
    })
}

pub(crate) fn precheck_result(r: &ToolResult) -> Result<u64, Verdict> {
    if r.text.len() > BUDGET.max_result_bytes {
        let m = format!("result is {} bytes, more than the {} allowed", r.text.len(), BUDGET.max_result_bytes);
        return Err(Verdict::builtin(VerdictKind::Deny, "OVERSIZE", "fak.budget", Some(m)));
    }
    Ok(1)
}

#[derive(Default)]
struct Measure {
    bytes: usize,
    nodes: usize,
}

impl Measure {
    /// `walk`, without recursing into the values that cannot nest: a tool's arguments are
    /// mostly a flat object of strings.
    fn walk_args(&mut self, v: &Json) -> Result<(), String> {
        let Json::Object(o) = v else { return self.walk(v, 0) };
        self.nodes += 1;
        for (k, x) in o {
            self.bytes += k.len();
            match x {
                Json::String(s) => {
                    self.nodes += 1;
                    self.bytes += s.len();
                }
                Json::Array(_) | Json::Object(_) => self.walk(x, 1)?,
                _ => {
                    self.nodes += 1;
                    self.bytes += 8;
                }
            }
        }
        if self.nodes > BUDGET.max_nodes {
            return Err(format!("arguments have more than {} values", BUDGET.max_nodes));
        }
        if self.bytes > BUDGET.max_input_bytes {
            return Err(format!("arguments are larger than {} bytes", BUDGET.max_input_bytes));
        }
        Ok(())
    }

    fn walk(&mut self, v: &Json, depth: usize) -> Result<(), String> {
        self.nodes += 1;
        if depth > BUDGET.max_depth {
            return Err(format!("arguments nest deeper than {} levels", BUDGET.max_depth));
        }
        if self.nodes > BUDGET.max_nodes {
            return Err(format!("arguments have more than {} values", BUDGET.max_nodes));
        }
        match v {
            Json::String(s) => self.bytes += s.len(),
            Json::Array(a) => {
                for x in a {
                    self.walk(x, depth + 1)?;
                }
            }
            Json::Object(o) => {
                for (k, x) in o {
                    self.bytes += k.len();
                    self.walk(x, depth + 1)?;
                }
            }
            _ => self.bytes += 8,
        }
        if self.bytes > BUDGET.max_input_bytes {
            return Err(format!("arguments are larger than {} bytes", BUDGET.max_input_bytes));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// Values

/// What a condition is evaluated against.
pub(crate) struct Input<'a> {
    /// JSON values in the arguments (bounds quantifiers over lists inside them).
    pub nodes: u64,
    pub tool: &'a str,
    pub args: &'a Json,
    pub result_text: Option<&'a str>,
    pub trace: &'a TraceState,
    /// The call's views, computed on first use and shared by every rule.
    view: std::cell::OnceCell<crate::view::CallView>,
    /// The detectors `result.secrets` and `result.injections` run, and whether to run them
    /// the slow way (the reference interpreter).
    detectors: Option<(&'a crate::secrets::Detectors, bool)>,
    /// `None` when the trace's workspace is canonical already (the common case).
    workspace_key: std::cell::OnceCell<Option<String>>,
    view_size: std::cell::OnceCell<u64>,
}

impl<'a> Input<'a> {
    /// The views, if a rule computed them.
    pub(crate) fn into_view(self) -> Option<crate::view::CallView> {
        self.view.into_inner()
    }

    pub(crate) fn new(
        nodes: u64,
        tool: &'a str,
        args: &'a Json,
        result_text: Option<&'a str>,
        trace: &'a TraceState,
    ) -> Input<'a> {
        Input {
            nodes,
            tool,
            args,
            result_text,
            trace,
            view: std::cell::OnceCell::new(),
            detectors: None,
            workspace_key: std::cell::OnceCell::new(),
            view_size: std::cell::OnceCell::new(),
        }
    }

    /// The same input, finding `result.secrets` and `result.injections` with `detectors`
    /// (`naive`: the slow way).
    pub(crate) fn with_detectors(mut self, detectors: &'a crate::secrets::Detectors, naive: bool) -> Input<'a> {
        self.detectors = Some((detectors, naive));
        self
    }

    /// An upper bound on the length of any list a quantifier variable can lead to: one inside
    /// the arguments, or one inside the views (`c.operands`, `c.writes`, ...).
    pub(crate) fn var_list_bound(&self) -> u64 {
        if self.result_text.is_none() && crate::view::SHELL_TOOLS.contains(&self.tool) {
            self.nodes.max(*self.view_size.get_or_init(|| self.view().size()))
        } else {
            self.nodes
        }
    }

    /// The workspace in canonical form: what relative globs are matched inside.
    pub(crate) fn workspace_key(&self) -> &str {
        let ws = self.trace.workspace.as_str();
        let key = self
            .workspace_key
            .get_or_init(|| (!crate::path::is_canonical(ws)).then(|| crate::path::canonical(ws, "/")));
        key.as_deref().unwrap_or(ws)
    }

    /// The kinds of secret and injection the result holds, each once, secrets first, when a
    /// rule looked for them.
    pub(crate) fn found_kinds(&self) -> Vec<Arc<str>> {
        let mut kinds: Vec<Arc<str>> = Vec::new();
        let view = self.view.get();
        let all = view
            .map_or(&[][..], |v| v.secrets.as_slice())
            .iter()
            .chain(view.map_or(&[][..], |v| v.injections.as_slice()));
        for f in all {
            if !kinds.contains(&f.kind) {
                kinds.push(f.kind.clone());
            }
        }
        kinds
    }

    /// The views, when a rule has already asked for them.
    pub(crate) fn view_if_computed(&self) -> Option<&crate::view::CallView> {
        self.view.get()
    }

    /// The call's views (shell, writes, URLs), computed once.
    pub(crate) fn view(&self) -> &crate::view::CallView {
        self.view.get_or_init(|| {
            if let Some(text) = self.result_text {
                let found = match self.detectors {
                    Some((d, naive)) => {
                        let found = if naive { d.find_naive(text) } else { d.find(text) };
                        // A detector that cannot run finds the result suspect: rules that
                        // hold secrets out hold this one out too (fail closed).
                        found.unwrap_or_else(|_| {
                            let failed =
                                crate::secrets::Finding { kind: Arc::from("detector-failed"), offset: 0, length: 0 };
                            crate::secrets::Found { secrets: vec![(0, failed.clone())], injections: vec![(0, failed)] }
                        })
                    }
                    None => crate::secrets::Found::default(),
                };
                let strip = |l: Vec<(usize, crate::secrets::Finding)>| l.into_iter().map(|(_, f)| f).collect();
                return crate::view::CallView {
                    secrets: strip(found.secrets),
                    injections: strip(found.injections),
                    ..crate::view::CallView::default()
                };
            }
            let env = crate::view::Env {
                workspace: &self.trace.workspace,
                workspace_key: self.workspace_key(),
                home: &self.trace.home,
            };
            crate::view::of(self.tool, self.args, &env)
        })
    }
}

/// What follows the home directory in `~`, `~/x`, `$HOME/x` or `${HOME}/x` (`path(o)` reads
/// them as the shell does, as the views read a command's paths); `None` for any other text.
fn home_relative(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("${HOME}").or_else(|| s.strip_prefix("$HOME")).or_else(|| s.strip_prefix('~'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[derive(Debug)]
pub(crate) enum EvalError {
    /// Over `BUDGET.max_steps`.
    Budget,
    /// A regex, or a set of globs, that could not be compiled (over the size limit).
    Pattern(String),
}

/// A field of a command, named once when a policy is compiled so that a rule scanning a long
/// list of commands reads it without matching its name per command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmdField {
    Name,
    Args,
    Flags,
    Operands,
    Subcommand,
    Assigns,
    Redirects,
    Via,
    Code,
    Opaque,
    Upstream,
    Writes,
    Recursive,
    Text,
}

impl CmdField {
    /// The field called `key`; `None` when a command has no such field.
    pub(crate) fn of(key: &str) -> Option<CmdField> {
        Some(match key {
            "name" => CmdField::Name,
            "args" => CmdField::Args,
            "flags" => CmdField::Flags,
            "operands" => CmdField::Operands,
            "subcommand" => CmdField::Subcommand,
            "assigns" => CmdField::Assigns,
            "redirects" => CmdField::Redirects,
            "via" => CmdField::Via,
            "code" => CmdField::Code,
            "opaque" => CmdField::Opaque,
            "upstream" => CmdField::Upstream,
            "writes" => CmdField::Writes,
            "recursive" => CmdField::Recursive,
            "text" => CmdField::Text,
            _ => return None,
        })
    }

    /// Whether `str_of` reads this field.
    pub(crate) fn is_str(self) -> bool {
        matches!(self, CmdField::Name | CmdField::Subcommand | CmdField::Code | CmdField::Opaque | CmdField::Text)
    }

    /// This field of `c` when it is a string field: `Some(None)` when `c` has none (no
    /// `code`), `None` when the field is not a string (`args`, `recursive`).
    #[inline]
    pub(crate) fn str_of<'a>(self, c: crate::shell::Command<'a>) -> Option<Option<&'a str>> {
        match self {
            CmdField::Name => Some(Some(c.name())),
            CmdField::Subcommand => Some(c.subcommand()),
            CmdField::Code => Some(c.code()),
            CmdField::Opaque => Some(c.opaque()),
            CmdField::Text => Some(Some(c.text())),
            _ => None,
        }
    }

    /// This field of `c`.
    #[inline]
    pub(crate) fn of_command<'a>(self, c: crate::shell::Command<'a>) -> V<'a> {
        let s = |x: &'a str| V::S(Cow::Borrowed(x));
        match self {
            CmdField::Name => s(c.name()),
            CmdField::Args => V::Words(c.args()),
            CmdField::Flags => V::Words(c.flags()),
            CmdField::Operands => V::Words(c.operands()),
            CmdField::Subcommand => c.subcommand().map_or(V::Absent, s),
            CmdField::Assigns => V::Words(c.assigns()),
            CmdField::Redirects => V::Redirs(c.redirects()),
            CmdField::Via => V::Words(c.via()),
            CmdField::Code => c.code().map_or(V::Absent, s),
            CmdField::Opaque => c.opaque().map_or(V::Absent, s),
            CmdField::Upstream => V::Words(c.upstream()),
            CmdField::Writes => V::Strs(c.writes()),
            CmdField::Recursive => V::B(c.recursive()),
            CmdField::Text => s(c.text()),
        }
    }
}

/// A run-time value: borrowed from the input or the program where it can be.
#[derive(Clone, Debug)]
pub(crate) enum V<'a> {
    Absent,
    J(&'a Json),
    S(Cow<'a, str>),
    N(f64),
    B(bool),
    L(Vec<V<'a>>),
    /// Lists and records of the call's views, borrowed.
    Strs(&'a [String]),
    /// A command's words (`c.args`, `c.flags`, ...).
    Words(crate::shell::Words<'a>),
    /// A view's commands.
    Cmds(&'a crate::shell::View),
    Cmd(crate::shell::Command<'a>),
    Redirs(&'a [crate::shell::Redirect]),
    Redir(&'a crate::shell::Redirect),
    Urls(&'a [crate::view::Url]),
    Url(&'a crate::view::Url),
    Findings(&'a [crate::secrets::Finding]),
    Finding(&'a crate::secrets::Finding),
}

impl<'a> V<'a> {
    /// The text a string operator sees: strings as they are, other scalars and containers as
    /// compact JSON, nothing when absent.
    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            V::Absent | V::J(Json::Null) => None,
            V::J(Json::String(s)) => Some(Cow::Borrowed(s.as_str())),
            V::J(j) => Some(Cow::Owned(j.to_string())),
            V::S(s) => Some(Cow::Borrowed(s.as_ref())),
            V::N(n) => Some(Cow::Owned(num_text(*n))),
            V::B(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            V::L(_) | V::Strs(_) | V::Words(_) | V::Cmds(_) | V::Redirs(_) | V::Urls(_) | V::Findings(_) => {
                Some(Cow::Owned(self.to_json().to_string()))
            }
            // A finding reads as its kind: never the secret.
            V::Finding(f) => Some(Cow::Borrowed(&*f.kind)),
            // A record reads as its text: a command's source, a redirection's target, a URL.
            V::Cmd(c) => Some(Cow::Borrowed(c.text())),
            V::Redir(r) => Some(Cow::Borrowed(r.target.as_str())),
            V::Url(u) => Some(Cow::Borrowed(u.url.as_str())),
        }
    }

    /// Whether the value is `true` (what a bare condition `x` tests).
    pub(crate) fn is_true(&self) -> bool {
        matches!(self, V::B(true) | V::J(Json::Bool(true)))
    }

    /// The value when it is a string.
    fn as_str(&self) -> Option<&str> {
        match self {
            V::J(Json::String(s)) => Some(s),
            V::S(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the value is a string (the only kind prefilters see into).
    pub(crate) fn is_str(&self) -> bool {
        matches!(self, V::J(Json::String(_)) | V::S(_))
    }

    fn num(&self) -> Option<f64> {
        match self {
            V::J(Json::Number(n)) => n.as_f64(),
            V::N(n) => Some(*n),
            _ => None,
        }
    }

    fn to_json(&self) -> Json {
        match self {
            V::Absent => Json::Null,
            V::J(j) => (*j).clone(),
            V::S(s) => Json::String(s.to_string()),
            V::N(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
            V::B(b) => Json::Bool(*b),
            V::L(items) => Json::Array(items.iter().map(V::to_json).collect()),
            V::Strs(s) => Json::Array(s.iter().map(|x| Json::String(x.clone())).collect()),
            V::Words(s) => Json::Array(s.iter().map(|x| Json::String(x.to_string())).collect()),
            V::Cmds(_) | V::Redirs(_) | V::Urls(_) | V::Findings(_) => {
                Json::Array(self.items().unwrap_or_default().iter().map(V::to_json).collect())
            }
            V::Cmd(_) | V::Redir(_) | V::Url(_) | V::Finding(_) => {
                self.text().map_or(Json::Null, |t| Json::String(t.into_owned()))
            }
        }
    }

    /// The number of elements when the value is a list.
    pub(crate) fn list_len(&self) -> Option<usize> {
        Some(match self {
            V::J(Json::Array(a)) => a.len(),
            V::L(items) => items.len(),
            V::Strs(s) => s.len(),
            V::Words(s) => s.len(),
            V::Cmds(v) => v.len(),
            V::Redirs(r) => r.len(),
            V::Urls(u) => u.len(),
            V::Findings(f) => f.len(),
            _ => return None,
        })
    }

    /// Whether `f` holds for some element; `None` when the value is not a list. Does not
    /// allocate.
    pub(crate) fn any_item(&self, mut f: impl FnMut(&V<'a>) -> bool) -> Option<bool> {
        Some(match self {
            V::J(Json::Array(a)) => a.iter().any(|j| f(&V::J(j))),
            V::L(items) => items.iter().any(f),
            V::Strs(s) => s.iter().any(|x| f(&V::S(Cow::Borrowed(x.as_str())))),
            V::Words(s) => s.iter().any(|x| f(&V::S(Cow::Borrowed(x)))),
            V::Cmds(v) => v.commands().any(|x| f(&V::Cmd(x))),
            V::Redirs(r) => r.iter().any(|x| f(&V::Redir(x))),
            V::Urls(u) => u.iter().any(|x| f(&V::Url(x))),
            V::Findings(s) => s.iter().any(|x| f(&V::Finding(x))),
            _ => return None,
        })
    }

    /// Element `i` when the value is a list that long.
    pub(crate) fn nth(&self, i: usize) -> Option<V<'a>> {
        match self {
            V::J(Json::Array(a)) => a.get(i).map(V::J),
            V::L(items) => items.get(i).cloned(),
            V::Strs(s) => s.get(i).map(|x| V::S(Cow::Borrowed(x.as_str()))),
            V::Words(s) => s.get(i).map(|x| V::S(Cow::Borrowed(x))),
            V::Cmds(v) => v.command(i).map(V::Cmd),
            V::Redirs(r) => r.get(i).map(V::Redir),
            V::Urls(u) => u.get(i).map(V::Url),
            V::Findings(f) => f.get(i).map(V::Finding),
            _ => None,
        }
    }

    /// Elements when the value is a list.
    pub(crate) fn items(&self) -> Option<Vec<V<'a>>> {
        match self {
            V::J(Json::Array(a)) => Some(a.iter().map(V::J).collect()),
            V::L(items) => Some(items.clone()),
            V::Strs(s) => Some(s.iter().map(|x| V::S(Cow::Borrowed(x.as_str()))).collect()),
            V::Words(s) => Some(s.iter().map(|x| V::S(Cow::Borrowed(x))).collect()),
            V::Cmds(v) => Some(v.commands().map(V::Cmd).collect()),
            V::Redirs(r) => Some(r.iter().map(V::Redir).collect()),
            V::Urls(u) => Some(u.iter().map(V::Url).collect()),
            V::Findings(f) => Some(f.iter().map(V::Finding).collect()),
            _ => None,
        }
    }

    /// A field of a record (a view's command, redirection or URL).
    fn field(&self, key: &str) -> V<'a> {
        let s = |x: &'a str| V::S(Cow::Borrowed(x));
        match *self {
            V::Cmd(c) => CmdField::of(key).map_or(V::Absent, |f| f.of_command(c)),
            V::Redir(r) => match key {
                "op" => s(r.op),
                "fd" => r.fd.map_or(V::Absent, |n| V::N(f64::from(n))),
                "target" => s(&r.target),
                "body" => r.body.as_ref().map_or(V::Absent, |b| s(&b.text)),
                _ => V::Absent,
            },
            V::Url(u) => match key {
                "url" => s(&u.url),
                "scheme" => s(&u.scheme),
                "host" => s(&u.host),
                "port" => u.port.map_or(V::Absent, |p| V::N(f64::from(p))),
                "path" => s(&u.path),
                "by" => s(&u.by),
                _ => V::Absent,
            },
            V::Finding(f) => match key {
                "kind" => s(&f.kind),
                "offset" => V::N(f.offset as f64),
                "length" => V::N(f.length as f64),
                _ => V::Absent,
            },
            _ => V::Absent,
        }
    }
}

fn num_text(n: f64) -> String {
    serde_json::Number::from_f64(n).map_or_else(|| n.to_string(), |n| n.to_string())
}

/// JSON equality with numbers compared by value (`1 == 1.0`).
fn equal(a: &V<'_>, b: &V<'_>) -> bool {
    // Two strings, the common case (`c.name == "git"`, `c.name in escalators`): compared as
    // they are, without the general path's number and text conversions.
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.num(), b.num()) {
        return x == y;
    }
    match (a, b) {
        (V::Absent, _) | (_, V::Absent) => false,
        _ if a.is_str() && b.is_str() => a.text() == b.text(),
        (V::B(x), V::J(Json::Bool(y))) | (V::J(Json::Bool(y)), V::B(x)) => x == y,
        (V::B(x), V::B(y)) => x == y,
        _ => match (a.items(), b.items()) {
            (Some(x), Some(y)) => x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| equal(p, q)),
            (None, None) => a.to_json() == b.to_json(),
            _ => false,
        },
    }
}

/// Evaluates values and atoms for one input; `vars` holds the bound quantifier variables.
pub(crate) struct Scope<'a> {
    pub input: &'a Input<'a>,
    /// Inline: quantifiers nest a few deep, and most decisions bind one.
    pub vars: smallvec::SmallVec<[(u32, V<'a>); 4]>,
    pub steps: u64,
    /// For explanations: the items for which an `any` held, described.
    pub witnesses: Option<Vec<String>>,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(input: &'a Input<'a>) -> Scope<'a> {
        Scope { input, vars: smallvec::SmallVec::new(), steps: 0, witnesses: None }
    }

    pub(crate) fn step(&mut self) -> Result<(), EvalError> {
        self.steps += 1;
        if self.steps > BUDGET.max_steps {
            Err(EvalError::Budget)
        } else {
            Ok(())
        }
    }

    pub(crate) fn value(&self, v: &'a Value) -> V<'a> {
        match v {
            Value::Lit(l) => V::J(&l.0),
            Value::List(items) => V::L(items.iter().map(|i| self.value(i)).collect()),
            Value::Tool => V::S(Cow::Borrowed(self.input.tool)),
            Value::Args(path) => lookup(V::J(self.input.args), path),
            Value::TaintRank => V::N(f64::from(self.input.trace.taint)),
            Value::Principal => self.input.trace.principal.as_deref().map_or(V::Absent, |p| V::S(Cow::Borrowed(p))),
            Value::ResultText => self.input.result_text.map_or(V::Absent, |t| V::S(Cow::Borrowed(t))),
            Value::Var(id, path) => {
                let Some((_, bound)) = self.vars.iter().rev().find(|(v, _)| v == id) else { return V::Absent };
                match (bound, path.as_slice()) {
                    // A field of a view's record (`c.name`), read without copying the record.
                    (V::Cmd(_) | V::Redir(_) | V::Url(_) | V::Finding(_), [key]) => bound.field(key),
                    // The element itself (`a` in `any(a in c.args: ...)`): a string borrowed
                    // from the view, copied without the general clone.
                    (V::S(Cow::Borrowed(s)), []) => V::S(Cow::Borrowed(s)),
                    _ => lookup(bound.clone(), path),
                }
            }
            Value::Len(inner) => {
                let x = self.value(inner);
                match &x {
                    V::Absent | V::J(Json::Null) => V::Absent,
                    V::J(Json::Object(o)) => V::N(o.len() as f64),
                    _ => match x.items() {
                        Some(items) => V::N(items.len() as f64),
                        None => x.text().map_or(V::Absent, |t| V::N(t.chars().count() as f64)),
                    },
                }
            }
            Value::Bytes(inner) => self.value(inner).text().map_or(V::Absent, |t| V::N(t.len() as f64)),
            Value::Lower(inner) => match self.value(inner).text() {
                Some(t) => V::S(Cow::Owned(t.to_lowercase())),
                None => V::Absent,
            },
            Value::Path(inner) => {
                let x = self.value(inner);
                let home = self.input.trace.home.as_str();
                let ws = self.input.workspace_key();
                match &x {
                    V::J(Json::String(s)) => match home_relative(s) {
                        Some(rest) => V::S(Cow::Owned(crate::path::canonical(&format!("{home}{rest}"), "/"))),
                        None => V::S(crate::path::canonical_in(s, ws)),
                    },
                    V::S(Cow::Borrowed(s)) => match home_relative(s) {
                        Some(rest) => V::S(Cow::Owned(crate::path::canonical(&format!("{home}{rest}"), "/"))),
                        None => V::S(crate::path::canonical_in(s, ws)),
                    },
                    V::S(Cow::Owned(s)) => V::S(Cow::Owned(match home_relative(s) {
                        Some(rest) => crate::path::canonical(&format!("{home}{rest}"), "/"),
                        None => crate::path::canonical_in(s, ws).into_owned(),
                    })),
                    _ => V::Absent,
                }
            }
            Value::Has(inner) => V::B(!matches!(self.value(inner), V::Absent | V::J(Json::Null))),
            Value::View(f) => {
                let view = self.input.view();
                match f {
                    crate::view::Field::Commands => V::Cmds(view.shell()),
                    crate::view::Field::Opaque => V::Strs(&view.shell().opaque),
                    crate::view::Field::Writes => V::Strs(&view.writes),
                    crate::view::Field::Urls => V::Urls(&view.urls),
                    crate::view::Field::Secrets => V::Findings(&view.secrets),
                    crate::view::Field::Injections => V::Findings(&view.injections),
                }
            }
        }
    }

    /// Evaluates an atom; `field` is the left side's value when the caller already has it.
    pub(crate) fn atom(&mut self, a: &'a Atom, field: Option<&V<'a>>) -> Result<bool, EvalError> {
        self.step()?;
        let left_of = |s: &Self, v: &'a Value| field.cloned().unwrap_or_else(|| s.value(v));
        Ok(match a {
            Atom::Truthy(v) => left_of(self, v).is_true(),
            Atom::Cmp(op, l, r) => {
                let (x, y) = (left_of(self, l), self.value(r));
                match op {
                    CmpOp::Eq => equal(&x, &y),
                    CmpOp::Ne => !matches!(x, V::Absent) && !equal(&x, &y),
                    _ => match (x.num(), y.num()) {
                        (Some(p), Some(q)) => match op {
                            CmpOp::Lt => p < q,
                            CmpOp::Le => p <= q,
                            CmpOp::Gt => p > q,
                            _ => p >= q,
                        },
                        _ => false,
                    },
                }
            }
            Atom::In(l, r) => {
                let x = left_of(self, l);
                self.value(r).any_item(|i| equal(&x, i)).unwrap_or(false)
            }
            Atom::Contains(l, r) => {
                let x = left_of(self, l);
                let y = self.value(r);
                match x.any_item(|i| equal(i, &y)) {
                    Some(found) => found,
                    None => match (x.text(), y.text()) {
                        // One character (`a contains "="`): a byte search, without setting
                        // up a substring searcher for each element of a list.
                        (Some(h), Some(n)) => match n.as_bytes() {
                            [b] if b.is_ascii() => memchr::memchr(*b, h.as_bytes()).is_some(),
                            _ => h.contains(n.as_ref()),
                        },
                        _ => false,
                    },
                }
            }
            Atom::Matches(l, re) => match left_of(self, l).text() {
                Some(t) => re.compiled.is_match(&t).map_err(|e| EvalError::Pattern(e.to_string()))?,
                None => false,
            },
            Atom::Glob(l, g) => match left_of(self, l) {
                V::S(p) => g
                    .compiled
                    .is_match(&p, crate::path::relative(&p, self.input.workspace_key()))
                    .map_err(|e| EvalError::Pattern(e.to_string()))?,
                _ => false,
            },
            Atom::StartsWith(l, r) => {
                let path_mode = matches!(l, Value::Path(_));
                match (left_of(self, l).text(), self.value(r).text()) {
                    (Some(h), Some(n)) if path_mode => crate::path::starts_with(&h, &n),
                    (Some(h), Some(n)) => h.starts_with(n.as_ref()),
                    _ => false,
                }
            }
            Atom::EndsWith(l, r) => match (left_of(self, l).text(), self.value(r).text()) {
                (Some(h), Some(n)) => h.ends_with(n.as_ref()),
                _ => false,
            },
        })
    }

    /// Evaluates a condition by walking it (the reference semantics; the Dag walks its own
    /// nodes but calls `atom` for every leaf).
    pub(crate) fn expr(&mut self, e: &'a ir::Expr) -> Result<bool, EvalError> {
        Ok(match e {
            ir::Expr::True => true,
            ir::Expr::False => false,
            ir::Expr::And(items) => {
                for i in items {
                    if !self.expr(i)? {
                        return Ok(false);
                    }
                }
                true
            }
            ir::Expr::Or(items) => {
                for i in items {
                    if self.expr(i)? {
                        return Ok(true);
                    }
                }
                false
            }
            ir::Expr::Not(inner) => !self.expr(inner)?,
            ir::Expr::Atom(a) => self.atom(a, None)?,
            ir::Expr::Quant { all, var, list, body } => {
                let items = self.value(list);
                let Some(n) = items.list_len() else { return Ok(false) };
                let mut result = *all;
                for i in 0..n {
                    let Some(item) = items.nth(i) else { break };
                    self.step()?;
                    self.vars.push((*var, item));
                    let r = self.expr(body);
                    let r = match r {
                        Ok(true) if !*all && self.witnesses.is_some() => {
                            if let (Some(w), Some((_, item))) = (self.witnesses.as_mut(), self.vars.last()) {
                                w.push(describe(item));
                            }
                            Ok(true)
                        }
                        other => other,
                    };
                    self.vars.pop();
                    if r? != *all {
                        result = !*all;
                        break;
                    }
                }
                result
            }
        })
    }
}

/// An item a quantifier found, for explanations: a command with the wrappers it was found
/// in, a URL, a path.
pub(crate) fn describe(v: &V<'_>) -> String {
    match v {
        V::Cmd(c) => {
            // Arguments that would not read back as one word are single-quoted.
            let quote = |a: &str| -> String {
                let plain =
                    !a.is_empty() && a.chars().all(|ch| ch.is_alphanumeric() || "-_./=:,+@%^~{}[]*?$#!".contains(ch));
                if plain {
                    a.to_string()
                } else {
                    format!("'{}'", a.replace('\'', "'\\''"))
                }
            };
            let mut s =
                std::iter::once(c.name().to_string()).chain(c.args().iter().map(quote)).collect::<Vec<_>>().join(" ");
            if !c.via().is_empty() {
                s.push_str(&format!(" (inside {})", c.via().join(" → ")));
            }
            if let Some(o) = c.opaque() {
                s.push_str(&format!(" [opaque: {o}]"));
            }
            s
        }
        other => other.text().map_or_else(String::new, |t| t.into_owned()),
    }
}

fn lookup<'a>(mut v: V<'a>, path: &[String]) -> V<'a> {
    for key in path {
        v = match v {
            // A tool's arguments are a handful of keys: comparing them costs less than
            // hashing one (the map keeps insertion order, so it hashes with SipHash).
            V::J(Json::Object(o)) if o.len() <= 8 => {
                o.iter().find(|(k, _)| *k == key).map_or(V::Absent, |(_, x)| V::J(x))
            }
            V::J(Json::Object(o)) => o.get(key).map_or(V::Absent, V::J),
            V::J(Json::Array(a)) => key.parse::<usize>().ok().and_then(|i| a.get(i)).map_or(V::Absent, V::J),
            V::Cmd(_) | V::Redir(_) | V::Url(_) | V::Finding(_) => v.field(key),
            _ => V::Absent,
        };
    }
    v
}

/// Applies a TRANSFORM rule's `set` clauses to a copy of the arguments, creating the path
/// where it is missing.
pub(crate) fn apply_set(args: &mut Json, set: &[(Vec<String>, Json)]) {
    for (path, value) in set {
        let mut cur: &mut Json = args;
        for key in path {
            // A value in the way of the path is replaced: a `set` that redacts must land,
            // never be skipped and leave the verdict carrying what it was meant to hide.
            if !cur.is_object() {
                *cur = Json::Object(serde_json::Map::new());
            }
            let Json::Object(o) = cur else { break };
            cur = o.entry(key.clone()).or_insert(Json::Null);
        }
        *cur = value.clone();
    }
}

/// Folds the rules that matched into a verdict; shared by the Dag and the reference.
pub(crate) struct Outcome<'p> {
    pub deny: Option<&'p ir::Rule>,
    pub quarantine: Option<&'p ir::Rule>,
    pub transforms: Vec<&'p ir::Rule>,
    pub allow: Option<&'p ir::Rule>,
    pub advisories: Vec<&'p ir::Rule>,
    pub error: Option<(&'p ir::Rule, EvalError)>,
}

impl<'p> Outcome<'p> {
    pub(crate) fn new() -> Self {
        Outcome {
            deny: None,
            quarantine: None,
            transforms: Vec::new(),
            allow: None,
            advisories: Vec::new(),
            error: None,
        }
    }

    /// Records a matching rule. Rules arrive in any order; the smaller id wins a tie.
    pub(crate) fn add(&mut self, r: &'p ir::Rule, advisory: bool) {
        fn keep<'p>(slot: &mut Option<&'p ir::Rule>, r: &'p ir::Rule) {
            if slot.is_none_or(|s| r.id < s.id) {
                *slot = Some(r);
            }
        }
        if advisory {
            self.advisories.push(r);
            return;
        }
        match r.verdict {
            VerdictKind::Deny => keep(&mut self.deny, r),
            VerdictKind::Quarantine => keep(&mut self.quarantine, r),
            VerdictKind::Transform => self.transforms.push(r),
            VerdictKind::Allow => keep(&mut self.allow, r),
        }
    }

    pub(crate) fn finish(mut self, program: &ir::Program, side: ir::Side, tool: &str, args: &Json) -> Verdict {
        self.advisories.sort_by(|a, b| a.id.cmp(&b.id));
        self.advisories.dedup_by(|a, b| a.id == b.id);
        let mut advisories: Vec<Advisory> = self
            .advisories
            .iter()
            .map(|r| Advisory { rule: r.id.clone(), verdict: r.verdict, reason: r.reason.clone() })
            .collect();
        let from_rule = |r: &ir::Rule, kind: VerdictKind| Verdict {
            verdict: kind,
            reason: r.reason.clone(),
            disposition: if kind == VerdictKind::Allow { Disposition::None } else { program.disposition(&r.reason) },
            by: By { rule: r.id.clone(), loc: Some(r.loc) },
            message: r.message.clone(),
            args: None,
            advisories: Vec::new(),
            kinds: Vec::new(),
            page: None,
            witness: None,
        };
        let mut v = if let Some((r, e)) = &self.error {
            let (reason, m) = match e {
                EvalError::Budget => {
                    ("OVERSIZE", format!("evaluating rule `{}` went over the evaluation budget", r.id))
                }
                EvalError::Pattern(p) => ("MALFORMED", format!("rule `{}` has a pattern fak cannot run: {p}", r.id)),
            };
            let mut v = Verdict::builtin(VerdictKind::Deny, reason, "fak.budget", Some(m));
            v.by = By { rule: r.id.clone(), loc: Some(r.loc) };
            v
        } else if let Some(r) = self.deny {
            from_rule(r, VerdictKind::Deny)
        } else if let Some(r) = self.quarantine {
            from_rule(r, VerdictKind::Quarantine)
        } else if !self.transforms.is_empty() {
            self.transforms.sort_by(|a, b| a.id.cmp(&b.id));
            self.transforms.dedup_by(|a, b| a.id == b.id);
            let mut new_args = args.clone();
            for t in &self.transforms {
                apply_set(&mut new_args, &t.set);
            }
            let first = self.transforms.first().copied();
            match first {
                Some(r) => {
                    let mut v = from_rule(r, VerdictKind::Transform);
                    v.disposition = Disposition::None;
                    v.args = Some(new_args);
                    v
                }
                None => Verdict::builtin(VerdictKind::Deny, "DEFAULT_DENY", "default", None),
            }
        } else if let Some(r) = self.allow {
            from_rule(r, VerdictKind::Allow)
        } else if side == ir::Side::Result {
            Verdict::builtin(VerdictKind::Allow, ir::NONE, "default", None)
        } else if program.posture == ir::Posture::AdmitAndLog && crate::tools::is_read_shaped(tool)
            || program.advisory_reasons.contains("DEFAULT_DENY")
        {
            advisories.push(Advisory {
                rule: Arc::from("default"),
                verdict: VerdictKind::Deny,
                reason: Arc::from("DEFAULT_DENY"),
            });
            Verdict::builtin(
                VerdictKind::Allow,
                ir::NONE,
                "default",
                Some("admitted and logged: no rule allows this call".into()),
            )
        } else {
            Verdict::builtin(VerdictKind::Deny, "DEFAULT_DENY", "default", Some(format!("no rule allows `{tool}`")))
        };
        v.advisories = advisories;
        v
    }
}

/// Whether a matching rule only notes its verdict: declared `advisory`, or a DENY citing
/// a reason the policy lists as advisory.
pub(crate) fn is_advisory(program: &ir::Program, r: &ir::Rule) -> bool {
    r.advisory || (r.verdict == VerdictKind::Deny && program.advisory_reasons.contains(r.reason.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_lands_through_a_value_in_the_way() {
        let mut args = serde_json::json!({"auth": "Bearer secret", "keep": 1});
        apply_set(&mut args, &[(vec!["auth".into(), "token".into()], serde_json::json!("[REDACTED]"))]);
        assert_eq!(args, serde_json::json!({"auth": {"token": "[REDACTED]"}, "keep": 1}));
        apply_set(&mut args, &[(vec!["new".into()], serde_json::json!(2))]);
        assert_eq!(args.get("new"), Some(&serde_json::json!(2)));
    }
}
