//! The kernel API: `/v1/fak/*`, for programs that ask fak directly, and `/metrics`.
//!
//! ```text
//! POST /v1/fak/adjudicate      {tool, arguments, trace_id?}            a call's verdict
//! POST /v1/fak/admit           {tool, result, trace_id?, tool_use_id?} a result's admission
//! POST /v1/fak/syscall         {tool, arguments, trace_id?}            decide, run, admit
//! GET|POST /v1/fak/changes     ?since=N&limit=L&wait=S                 writes and revocations
//! POST /v1/fak/revoke          {witness, note?}
//! POST /v1/fak/trace/reset     {trace_id}
//! POST /v1/fak/policy/reload   {}                                      check and swap the floor
//! GET  /metrics                                                        Prometheus text
//! ```
//!
//! A verdict is an answer, never an error: a DENY is HTTP 200. Errors (a body that is not
//! JSON, a missing field, a store that cannot be written) use the Anthropic error envelope.
//! Each operation is a plain async function over `App` and JSON, so `/mcp` (`mcp.rs`) serves
//! the same operations as tools.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value as Json};

use super::metrics::Side;
use super::{authorize, error, App};
use crate::audit;
use crate::eval::{kind_str, Call, ToolResult, TraceState, Verdict};
use crate::ir::VerdictKind;
use crate::store::{ChangeIn, StoreError};

/// The rule id of refusals the kernel makes itself (a malformed call, an engine that is off).
pub const BY_KERNEL: &str = "fak.kernel";

/// The longest a change long-poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/fak/adjudicate", post(adjudicate_route))
        .route("/v1/fak/admit", post(admit_route))
        .route("/v1/fak/syscall", post(syscall_route))
        .route("/v1/fak/changes", get(changes_route).post(changes_route))
        .route("/v1/fak/revoke", post(revoke_route))
        .route("/v1/fak/trace/reset", post(reset_route))
        .route("/v1/fak/policy/reload", post(reload_route))
        .route("/metrics", get(metrics_route))
}

// --- Errors ----------------------------------------------------------------------------------

/// Why an operation could not answer.
#[derive(Debug)]
pub struct KernelError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// Diagnostics of a refused policy.
    pub diagnostics: Option<Json>,
}

impl KernelError {
    pub fn bad(message: impl Into<String>) -> KernelError {
        KernelError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            diagnostics: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> KernelError {
        KernelError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "api_error",
            message: message.into(),
            diagnostics: None,
        }
    }

    fn not_found(message: impl Into<String>) -> KernelError {
        KernelError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found_error",
            message: message.into(),
            diagnostics: None,
        }
    }
}

impl From<StoreError> for KernelError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) | StoreError::NoWitness(_) => KernelError::not_found(e.to_string()),
            _ => KernelError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for KernelError {
    fn into_response(self) -> Response {
        match self.diagnostics {
            None => error(self.status, self.kind, &self.message),
            Some(d) => {
                let body =
                    json!({"type": "error", "error": {"type": self.kind, "message": self.message, "diagnostics": d}});
                (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
            }
        }
    }
}

// --- Shared pieces --------------------------------------------------------------------------

/// A string field: absent is `None`, present and not a string is an error.
fn opt_str<'a>(req: &'a Json, key: &str) -> Result<Option<&'a str>, KernelError> {
    match req.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(KernelError::bad(format!("`{key}` must be a string"))),
    }
}

fn req_str<'a>(req: &'a Json, key: &str) -> Result<&'a str, KernelError> {
    match opt_str(req, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(KernelError::bad(format!("`{key}` (a string) is required"))),
    }
}

/// The trace a request names, or a new one: a call outside any trace is its own trace.
fn trace_of(req: &Json) -> Result<String, KernelError> {
    Ok(match opt_str(req, "trace_id")? {
        Some(t) if !t.is_empty() => t.chars().take(200).collect(),
        _ => new_trace(),
    })
}

/// A fresh trace id: `fak-` and 16 hex digits from the clock and a counter.
pub fn new_trace() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let d = crate::store::Digest::of(&format!("{nanos}-{n}-{}", std::process::id()));
    format!("fak-{}", d.hex().get(..16).unwrap_or("0"))
}

/// A call's arguments: an object, or a JSON string holding one (an OpenAI-style call).
fn arguments(req: &Json) -> Result<Json, String> {
    match req.get("arguments") {
        None | Some(Json::Null) => Ok(json!({})),
        Some(o @ Json::Object(_)) => Ok(o.clone()),
        Some(Json::String(s)) => match serde_json::from_str::<Json>(s) {
            Ok(o @ Json::Object(_)) => Ok(o),
            Ok(_) => Err("`arguments` is a JSON string that does not hold an object".into()),
            Err(e) => Err(format!("`arguments` is a string that is not JSON: {e}")),
        },
        Some(_) => Err("`arguments` must be an object or a JSON string holding one".into()),
    }
}

/// A verdict as the kernel API shows it, serialised straight to the wire (a JSON tree built
/// first costs an allocation a key).
#[derive(serde::Serialize)]
pub struct VerdictOut<'a> {
    kind: &'static str,
    reason: &'a str,
    disposition: &'static str,
    by: &'a str,
    detail: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kinds: Vec<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    advisories: &'a [crate::eval::Advisory],
}

impl<'a> VerdictOut<'a> {
    pub fn of(v: &'a Verdict) -> VerdictOut<'a> {
        VerdictOut {
            kind: kind_str(v.verdict),
            reason: &v.reason,
            disposition: v.disposition.as_str(),
            by: &v.by.rule,
            detail: v.message.as_deref().map_or_else(|| std::borrow::Cow::Owned(v.why()), std::borrow::Cow::Borrowed),
            kinds: v.kinds.iter().map(|k| &**k).collect(),
            advisories: &v.advisories,
        }
    }
}

/// `/v1/fak/adjudicate`'s answer.
#[derive(serde::Serialize)]
pub struct AdjudicateOut<'a> {
    verdict: VerdictOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repaired_arguments: Option<&'a Json>,
    trace_id: &'a str,
}

pub fn verdict_json(v: &Verdict) -> Json {
    serde_json::to_value(VerdictOut::of(v)).unwrap_or(Json::Null)
}

/// Every file an admitted call writes, for the change feed: file tools' targets and the shell
/// view's, absolute and normalised (not case-folded: the names as the call spelt them).
/// `view` is the decision's own view of the call, when its rules computed one.
pub fn writes_of(call: &Call, st: &TraceState, view: Option<&crate::view::CallView>) -> Vec<String> {
    let arg = |k: &str| call.args.get(k).and_then(Json::as_str);
    let mut out = Vec::new();
    if crate::view::SHELL_TOOLS.contains(&call.tool.as_str()) {
        if let Some(c) = arg("command") {
            out = match view {
                Some(v) => v.shell().writes().to_vec(),
                None => crate::shell::view(c, &st.workspace, &st.home).writes().to_vec(),
            };
        }
    }
    for (t, key) in crate::view::FILE_WRITERS {
        if *t == call.tool {
            if let Some(p) = arg(key) {
                out.push(crate::path::normalize(&crate::view::expand_home(p, &st.home), &st.workspace));
            }
        }
    }
    out.dedup();
    out
}

/// A decided call, ready to be recorded: its audit entry, the changes it admits, and how long
/// deciding took.
pub struct Decision {
    pub entry: audit::Entry,
    pub verdict: &'static str,
    pub changes: Vec<ChangeIn>,
    pub took: Option<Duration>,
}

impl Decision {
    pub fn of(trace: &str, call: &Call, v: &Verdict, st: &TraceState, took: Option<Duration>) -> Decision {
        Decision::with_view(trace, call, v, st, took, None)
    }

    /// `view`: the decision's view of `call`, if it has one.
    pub fn with_view(
        trace: &str,
        call: &Call,
        v: &Verdict,
        st: &TraceState,
        took: Option<Duration>,
        view: Option<&crate::view::CallView>,
    ) -> Decision {
        let changes = match v.verdict {
            VerdictKind::Allow | VerdictKind::Transform => {
                // A repaired call writes what its new arguments say.
                let (run, view) = match &v.args {
                    Some(a) => (Call { tool: call.tool.clone(), args: a.clone() }, None),
                    None => (call.clone(), view),
                };
                writes_of(&run, st, view)
                    .into_iter()
                    .map(|path| ChangeIn::Write { path, tool: call.tool.clone(), trace: trace.to_string() })
                    .collect()
            }
            _ => Vec::new(),
        };
        Decision { entry: audit::Entry::decision(Some(trace), call, v), verdict: kind_str(v.verdict), changes, took }
    }
}

impl App {
    /// The state a request is decided in before its trace's taint is read.
    pub fn base_state(&self) -> TraceState {
        self.base.clone()
    }

    /// The state of `trace` now.
    pub fn trace_state(&self, trace: &str) -> Result<TraceState, KernelError> {
        self.state_in(trace, &self.base).map_err(KernelError::internal)
    }

    /// Counts and records decided calls; returns once their records are committed.
    pub async fn record(&self, ds: Vec<Decision>) -> Result<(), String> {
        let mut entries = Vec::with_capacity(ds.len());
        let mut changes = Vec::new();
        for d in ds {
            self.metrics.decision(Side::Call, &d.entry.tool, d.verdict, &d.entry.reason, &d.entry.rule, d.took);
            entries.push(d.entry);
            changes.extend(d.changes);
        }
        self.journal.write(entries, changes).await
    }
}

// --- adjudicate --------------------------------------------------------------------------------

/// Decides one call in its trace, records it, and says what was decided.
async fn decide_recorded(app: &App, tool: &str, req: &Json, trace: &str) -> Result<(Call, Verdict), KernelError> {
    let st = app.trace_state(trace)?;
    let started = Instant::now();
    let (call, v, view) = match arguments(req) {
        Ok(args) => {
            let call = Call { tool: tool.to_string(), args };
            let (v, view) = crate::compile::decide_with_view(&app.dag(), &call, &st);
            (call, v, view)
        }
        Err(why) => (
            Call { tool: tool.to_string(), args: Json::Null },
            Verdict::builtin(VerdictKind::Deny, "MALFORMED", BY_KERNEL, Some(why)),
            None,
        ),
    };
    let took = started.elapsed();
    let d = Decision::with_view(trace, &call, &v, &st, Some(took), view.as_ref());
    app.record(vec![d]).await.map_err(KernelError::internal)?;
    Ok((call, v))
}

pub async fn adjudicate(app: &App, req: &Json) -> Result<Json, KernelError> {
    let (v, trace) = adjudicated(app, req).await?;
    serde_json::to_value(AdjudicateOut {
        verdict: VerdictOut::of(&v),
        repaired_arguments: v.args.as_ref(),
        trace_id: &trace,
    })
    .map_err(|e| KernelError::internal(e.to_string()))
}

/// The verdict and the trace it was decided in.
async fn adjudicated(app: &App, req: &Json) -> Result<(Verdict, String), KernelError> {
    let tool = req_str(req, "tool")?;
    let trace = trace_of(req)?;
    let (_, v) = decide_recorded(app, tool, req, &trace).await?;
    Ok((v, trace))
}

// --- admit -------------------------------------------------------------------------------------

/// A result admitted through the ledger, with what the caller shows the model.
struct Admitted {
    verdict: Verdict,
    /// The text the model reads: the result, or the stub that replaces it.
    content: String,
    taint: u8,
}

async fn admit_text(app: &Arc<App>, tool: &str, text: String, trace: &str) -> Result<Admitted, KernelError> {
    let tool_label = tool.to_string();
    let (app2, tool, trace) = (app.clone(), tool.to_string(), trace.to_string());
    let joined = tokio::task::spawn_blocking(move || -> Result<(Admitted, bool, Duration), KernelError> {
        let app = app2;
        let mut store = app.store.lock().map_err(|_| KernelError::internal(super::poisoned()))?;
        let before = store.taint(&trace)?;
        let started = Instant::now();
        let result = ToolResult { tool, text };
        let (v, _, rec) = crate::ledger::admit(&mut store, &app.dag(), &result, Some(&trace), &app.base)?;
        let took = started.elapsed();
        let content = if v.is_allow() {
            result.text
        } else {
            match v.page.as_deref().map(|p| store.get(p, false)) {
                Some(Ok(page)) => page.stub(),
                _ => format!("[fak: this tool result was withheld: {}]", v.reason),
            }
        };
        app.taints.set(&trace, rec.taint);
        let raised = rec.taint > before;
        Ok((Admitted { verdict: v, content, taint: rec.taint }, raised, took))
    })
    .await;
    let (a, raised, took) = joined.map_err(|e| KernelError::internal(format!("fak failed inside: {e}")))??;
    app.metrics.decision(
        Side::Result,
        &tool_label,
        kind_str(a.verdict.verdict),
        &a.verdict.reason,
        &a.verdict.by.rule,
        Some(took),
    );
    if raised {
        app.metrics.taint_raised();
    }
    Ok(a)
}

fn admission_json(a: &Admitted) -> Json {
    let mut out =
        json!({"verdict": verdict_json(&a.verdict), "content": a.content, "taint": crate::ir::taint_name(a.taint)});
    if let Some(o) = out.as_object_mut() {
        if let Some(p) = &a.verdict.page {
            o.insert("page".into(), Json::from(&**p));
        }
        if let Some(w) = &a.verdict.witness {
            o.insert("witness".into(), Json::from(&**w));
        }
    }
    out
}

pub async fn admit(app: &Arc<App>, req: &Json) -> Result<Json, KernelError> {
    let tool = req_str(req, "tool")?;
    let text = match req.get("result") {
        Some(Json::String(s)) => s.clone(),
        Some(c @ Json::Array(_)) => super::chat::content_text(c),
        _ => return Err(KernelError::bad("`result` (a string, or a list of content blocks) is required")),
    };
    let trace = trace_of(req)?;
    let a = admit_text(app, tool, text, &trace).await?;
    let mut out = admission_json(&a);
    if let Some(o) = out.as_object_mut() {
        o.insert("trace_id".into(), Json::from(trace));
        if let Some(id) = opt_str(req, "tool_use_id")? {
            o.insert("tool_use_id".into(), Json::from(id));
        }
    }
    Ok(out)
}

// --- syscall -------------------------------------------------------------------------------------

pub async fn syscall(app: &Arc<App>, req: &Json) -> Result<Json, KernelError> {
    let tool = req_str(req, "tool")?;
    let trace = trace_of(req)?;
    let engines = &app.config.engines;
    let off = match crate::engine::engine_of(tool) {
        None => Some(format!(
            "no syscall engine runs `{tool}` (the engines run Read, Write, Edit, MultiEdit, Glob, Grep, LS and Bash)"
        )),
        Some(e) if !crate::engine::is_on(engines, e) => {
            Some(format!("the `{e}` engine is off: start fak serve with `--engine {e}` to run `{tool}` here"))
        }
        Some(_) => None,
    };
    if let Some(why) = off {
        let v = Verdict::builtin(VerdictKind::Deny, "MISROUTE", BY_KERNEL, Some(why));
        let call = Call { tool: tool.to_string(), args: arguments(req).unwrap_or(Json::Null) };
        let st = app.base_state();
        app.record(vec![Decision::of(&trace, &call, &v, &st, None)]).await.map_err(KernelError::internal)?;
        return Ok(json!({"verdict": verdict_json(&v), "trace_id": trace}));
    }
    let (call, v) = decide_recorded(app, tool, req, &trace).await?;
    let mut out = json!({"verdict": verdict_json(&v), "trace_id": trace});
    if !matches!(v.verdict, VerdictKind::Allow | VerdictKind::Transform) {
        return Ok(out);
    }
    let args = v.args.clone().unwrap_or(call.args);
    let ws = app.config.workspace.clone();
    let cap = engines.output_cap;
    let ran = match crate::engine::engine_of(tool) {
        Some("shell") => match args.get("command").and_then(Json::as_str) {
            Some(c) => {
                crate::engine::shell::run(
                    &ws,
                    &app.config.home,
                    c,
                    crate::engine::shell::Limits {
                        timeout: engines.shell_timeout,
                        output_cap: cap,
                        file_bytes: engines.file_bytes,
                    },
                )
                .await
            }
            None => crate::engine::Output::error("the argument `command` (a string) is missing"),
        },
        _ => {
            let (tool, args2) = (tool.to_string(), args.clone());
            tokio::task::spawn_blocking(move || crate::engine::fs::run(&ws, &tool, &args2, cap))
                .await
                .map_err(|e| KernelError::internal(format!("fak failed inside: {e}")))?
        }
    };
    let a = admit_text(app, tool, ran.text, &trace).await?;
    if let Some(o) = out.as_object_mut() {
        if v.args.is_some() {
            o.insert("repaired_arguments".into(), args);
        }
        let mut result = admission_json(&a);
        if let Some(r) = result.as_object_mut() {
            r.insert("is_error".into(), Json::from(ran.is_error));
        }
        o.insert("result".into(), result);
    }
    Ok(out)
}

// --- changes -------------------------------------------------------------------------------------

fn num(req: &Json, key: &str) -> Result<Option<u64>, KernelError> {
    match req.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => {
            n.as_u64().map(Some).ok_or_else(|| KernelError::bad(format!("`{key}` must be a whole number ≥ 0")))
        }
        Some(Json::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| KernelError::bad(format!("`{key}` must be a whole number ≥ 0, not {s:?}"))),
        Some(_) => Err(KernelError::bad(format!("`{key}` must be a whole number ≥ 0"))),
    }
}

/// `{since, limit, wait}`: the changes after `since`; with `wait`, held until there is one or
/// `wait` seconds (at most 60) pass.
pub async fn changes(app: &Arc<App>, req: &Json) -> Result<Json, KernelError> {
    let since = i64::try_from(num(req, "since")?.unwrap_or(0)).unwrap_or(i64::MAX);
    let limit = u32::try_from(num(req, "limit")?.unwrap_or(1000).clamp(1, 10_000)).unwrap_or(10_000);
    let wait = Duration::from_secs(num(req, "wait")?.unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let mut changed = app.journal.changed.clone();
    loop {
        let found = {
            let store = app.store.lock().map_err(|_| KernelError::internal(super::poisoned()))?;
            store.changes(since, limit)?
        };
        let now = Instant::now();
        if !found.is_empty() || now >= deadline {
            let next = found.last().map_or(since, |c| c.seq);
            return Ok(json!({"changes": found, "next": next}));
        }
        // Woken by this server's writes; every second the database is read again for changes
        // another process made (`fak witness revoke`, a hook).
        let step = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(step, changed.changed()).await;
    }
}

// --- revoke, reset, reload ----------------------------------------------------------------------

pub async fn revoke(app: &Arc<App>, req: &Json) -> Result<Json, KernelError> {
    let witness = req_str(req, "witness")?.to_string();
    let note = opt_str(req, "note")?.map(str::to_string);
    let app2 = app.clone();
    let (w, head) = tokio::task::spawn_blocking(move || -> Result<_, KernelError> {
        let mut store = app2.store.lock().map_err(|_| KernelError::internal(super::poisoned()))?;
        let w = store.revoke(&witness, note.as_deref())?;
        // Every reader of the witness was raised.
        app2.taints.clear();
        Ok((w, store.changes_head()?))
    })
    .await
    .map_err(|e| KernelError::internal(format!("fak failed inside: {e}")))??;
    app.journal.changed_to(head);
    Ok(json!({"witness": w}))
}

pub async fn reset(app: &Arc<App>, req: &Json) -> Result<Json, KernelError> {
    let trace = req_str(req, "trace_id")?.to_string();
    let app2 = app.clone();
    let t = trace.clone();
    let was = tokio::task::spawn_blocking(move || -> Result<u8, KernelError> {
        let mut store = app2.store.lock().map_err(|_| KernelError::internal(super::poisoned()))?;
        let was = store.reset(&t)?;
        app2.taints.set(&t, 0);
        Ok(was)
    })
    .await
    .map_err(|e| KernelError::internal(format!("fak failed inside: {e}")))??;
    Ok(json!({"trace_id": trace, "was": crate::ir::taint_name(was), "taint": crate::ir::taint_name(0)}))
}

/// The sources of a policy that are files: its root, then every file it imports (stdlib
/// modules, named `std.*`, are in the binary).
fn file_sources(sources: &crate::diag::Sources) -> impl Iterator<Item = &crate::diag::SourceFile> {
    sources.files().iter().filter(|f| !f.name.starts_with("std."))
}

/// The files a policy was read from. `--watch` reads them all.
pub fn policy_files(sources: &crate::diag::Sources) -> Vec<std::path::PathBuf> {
    file_sources(sources).map(|f| f.name.clone().into()).collect()
}

/// A fingerprint of the policy's files as they are on disk now: `None` when the root cannot be
/// read (an editor saving it, say). An import that cannot be read counts as changed.
pub fn fingerprint(files: &[std::path::PathBuf]) -> Option<u64> {
    let mut all = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match std::fs::read(f) {
            Ok(bytes) => all.extend_from_slice(&bytes),
            Err(_) if i > 0 => all.extend_from_slice(b"\0unreadable"),
            Err(_) => return None,
        }
        all.extend_from_slice(b"\0");
    }
    fold(&all)
}

/// The same fingerprint of the texts a load read, so the first look after a reload sees no
/// change unless a file changed while it loaded.
pub fn fingerprint_loaded(sources: &crate::diag::Sources) -> Option<u64> {
    let mut all = Vec::new();
    for f in file_sources(sources) {
        all.extend_from_slice(f.text.as_bytes());
        all.extend_from_slice(b"\0");
    }
    fold(&all)
}

fn fold(bytes: &[u8]) -> Option<u64> {
    let d = audit::sha256_hex(bytes);
    u64::from_str_radix(d.get(..16)?, 16).ok()
}

/// Loads the floor again from where it came from, checks it, and swaps it in whole; a policy
/// with errors is refused with its diagnostics and the old floor keeps answering.
pub async fn reload(app: &Arc<App>, why: &str) -> Result<Json, KernelError> {
    let _one = app.reloading.lock().await;
    let path = app.config.policy.clone();
    let source = path.as_ref().map_or_else(|| "built-in floor".to_string(), |p| p.display().to_string());
    let joined = tokio::task::spawn_blocking(move || {
        let loaded = match &path {
            Some(p) => crate::load::from_path(p),
            None => crate::load::builtin(),
        };
        // What was read, to watch: a refused policy too, so fixing any of its files reloads.
        let watched = path.is_some().then(|| (policy_files(&loaded.sources), fingerprint_loaded(&loaded.sources)));
        let r = match loaded.into_result() {
            Ok(p) => {
                p.dag.warm();
                Ok((p.dag, p.warnings.len()))
            }
            Err((sources, diags)) => {
                let text: String =
                    diags.iter().map(|d| crate::diag::render(d, &sources, crate::diag::Format::Plain, false)).collect();
                let json: Vec<Json> = diags
                    .iter()
                    .filter_map(|d| {
                        serde_json::from_str(&crate::diag::render(d, &sources, crate::diag::Format::Json, false)).ok()
                    })
                    .collect();
                Err((text, json))
            }
        };
        (r, watched)
    })
    .await
    .map_err(|e| KernelError::internal(format!("fak failed inside: {e}")))?;
    let (r, watched) = joined;
    if let (Some(w), Ok(mut l)) = (watched, app.loaded.lock()) {
        // A refused text is not tried again until one of its files changes.
        *l = w;
    }
    let ok = r.is_ok();
    app.metrics.reload(ok);
    let entry =
        audit::Entry::new(audit::Kind::Reload, "", &source, "", if ok { "ok" } else { "refused" }, why, String::new());
    app.journal.write(vec![entry], Vec::new()).await.map_err(KernelError::internal)?;
    match r {
        Ok((dag, warnings)) => {
            let rules = dag.program().rules.len();
            app.dag.store(dag);
            super::log_line(&json!({"reload": "ok", "source": source, "why": why, "rules": rules}));
            Ok(json!({"reloaded": true, "source": source, "rules": rules, "warnings": warnings}))
        }
        Err((text, diags)) => {
            super::log_line(&json!({"reload": "refused", "source": source, "why": why}));
            super::log_text(text.clone());
            Err(KernelError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "invalid_request_error",
                message: format!("the policy {source} has errors; the floor loaded before keeps answering\n{text}"),
                diagnostics: Some(Json::from(diags)),
            })
        }
    }
}

/// Reloads when the bytes of the policy's files change, its imports included: checked every
/// second (a stat and a read of each small file). Polling rather than inotify: editors save by
/// renaming a new file over the old one, which a watch on the file itself misses, and network
/// file systems send no events.
pub async fn watch(app: Arc<App>) {
    if app.config.policy.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (files, before) = match app.loaded.lock() {
            Ok(l) => l.clone(),
            Err(_) => continue,
        };
        let now = tokio::task::spawn_blocking(move || fingerprint(&files)).await.ok().flatten();
        if now.is_some() && now != before {
            let _ = reload(&app, "a policy file changed").await;
        }
    }
}

// --- HTTP ------------------------------------------------------------------------------------------

/// The body of a kernel request as a JSON object, after the key check.
async fn body_of(app: &App, req: Request) -> Result<Json, Response> {
    authorize(app, req.headers())?;
    let bytes = axum::body::to_bytes(req.into_body(), app.config.body_limit)
        .await
        .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", "the request body is too large"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice(&bytes) {
        Ok(b @ Json::Object(_)) => Ok(b),
        Ok(_) => Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", "the body is not a JSON object")),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", &format!("the body is not JSON: {e}"))),
    }
}

fn answer(r: Result<Json, KernelError>) -> Response {
    match r {
        Ok(j) => axum::Json(j).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn adjudicate_route(State(app): State<Arc<App>>, req: Request) -> Response {
    let b = match body_of(&app, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match adjudicated(&app, &b).await {
        Ok((v, trace)) => {
            let out =
                AdjudicateOut { verdict: VerdictOut::of(&v), repaired_arguments: v.args.as_ref(), trace_id: &trace };
            match serde_json::to_vec(&out) {
                Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
                Err(e) => KernelError::internal(e.to_string()).into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

/// A route whose answer is one operation on the body.
macro_rules! route {
    ($name:ident, $op:path) => {
        async fn $name(State(app): State<Arc<App>>, req: Request) -> Response {
            match body_of(&app, req).await {
                Ok(b) => answer($op(&app, &b).await),
                Err(r) => r,
            }
        }
    };
}

route!(admit_route, admit);
route!(syscall_route, syscall);
route!(revoke_route, revoke);
route!(reset_route, reset);
route!(reload_route, reload_requested);

async fn reload_requested(app: &Arc<App>, _req: &Json) -> Result<Json, KernelError> {
    reload(app, "POST /v1/fak/policy/reload").await
}

async fn changes_route(State(app): State<Arc<App>>, req: Request) -> Response {
    // The query's fields, then the body's (a POST) over them.
    let mut q = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        q.insert(k.into_owned(), Json::from(v.into_owned()));
    }
    match body_of(&app, req).await {
        Ok(Json::Object(b)) => {
            q.extend(b);
            answer(changes(&app, &Json::Object(q)).await)
        }
        Ok(_) => answer(changes(&app, &Json::Object(q)).await),
        Err(r) => r,
    }
}

async fn metrics_route(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    match app.metrics.render(accept) {
        Ok((ty, page)) => ([(header::CONTENT_TYPE, ty)], page).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "the metrics page could not be written"),
    }
}
