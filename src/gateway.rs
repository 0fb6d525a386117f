//! `fak serve`: the gateway between an agent (Claude Code, an SDK) and its model.
//!
//! ```text
//! client ──POST /v1/messages──▶ admit every tool_result (stubs for what is held back)
//!                                 ──▶ upstream ──▶ decide every tool_use ──▶ client
//! ```
//!
//! The request side goes through `ledger::admit` like every front end (the trace's taint, the
//! witnesses, the pages); the response side through `messages::Adjudicator`, for a JSON body
//! and for a stream alike. A DENY is a value (HTTP 200 with the call replaced by a text
//! block); errors use the Anthropic envelope. Anthropic upstream errors pass through with their
//! status and body untouched.
//!
//! The upstream speaks the Anthropic wire (Anthropic itself, or a local server with
//! `/v1/messages`) or OpenAI chat completions (Ollama, llama-server, vLLM, ...): then
//! `openai` translates the request on the way out and the answer on the way back, and the
//! adjudication is the same.

pub mod chat;
pub mod journal;
pub mod kernel;
pub mod lift;
pub mod mcp;
pub mod messages;
pub mod metrics;
pub mod openai;
pub mod sse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::StreamExt as _;
use rustc_hash::FxHashMap;
use serde_json::{json, Value as Json};

use crate::compile::Dag;
use crate::eval::{kind_str, ToolResult, TraceState};
use crate::store::{Digest, Store};

/// The upstream's wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    OpenAi,
}

/// How `fak serve` was asked to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub provider: Provider,
    /// Merged into every OpenAI-wire upstream request (FAK_PROVIDER_EXTRA_BODY_JSON).
    pub extra_body: Option<serde_json::Map<String, Json>>,
    /// The upstream's base URL, without `/v1/...`.
    pub base_url: String,
    /// The model name `/healthz` and `/v1/models` report; requests keep their own.
    pub model: Option<String>,
    /// The key sent upstream (`x-api-key`); else the client's own headers go.
    pub upstream_key: Option<String>,
    /// The key clients must present (`x-api-key` or `Authorization: Bearer`).
    pub require_key: Option<String>,
    pub workspace: String,
    pub home: String,
    pub state_dir: PathBuf,
    /// How long the upstream may stay silent (between any two bytes of an answer).
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long a client may take to send a request's headers (`FAK_HEADER_TIMEOUT_SECS`).
    pub header_timeout: Duration,
    pub body_limit: usize,
    /// A `ping` goes to a streaming client after this much upstream silence.
    pub ping_interval: Duration,
    /// The most output tokens a request may ask the upstream for (`--max-tokens`): larger
    /// `max_tokens` are lowered to it (B32).
    pub max_tokens: Option<u64>,
    /// Where the floor came from (`--policy`), read again on reload; `None`: the built-in one.
    pub policy: Option<PathBuf>,
    /// Check the policy file for changes every second and reload it (`--watch`).
    pub watch: bool,
    /// The syscall engines turned on (`--engine`).
    pub engines: crate::engine::Engines,
}

/// What every request shares.
pub struct App {
    pub config: Config,
    /// The floor: read whole by each request, replaced whole by a reload.
    dag: arc_swap::ArcSwap<Dag>,
    client: reqwest::Client,
    store: Arc<Mutex<Store>>,
    /// Results already admitted by this process: a conversation resends every earlier result
    /// with each turn, and each is recorded once (`admit_one`).
    seen: Mutex<SeenCache>,
    pub metrics: metrics::Metrics,
    /// The audit log and change feed writer.
    pub journal: journal::Journal,
    /// Trace taints, read without the store (`journal::TaintCache`).
    taints: Arc<journal::TaintCache>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The policy's files as last loaded, and a fingerprint of their text (`--watch` compares
    /// it with the files on disk).
    loaded: Mutex<(Vec<std::path::PathBuf>, Option<u64>)>,
    /// Cancelled when the server stops: ends MCP sessions' open streams.
    pub cancel: tokio_util::sync::CancellationToken,
    /// The state every decision starts from (workspace and home normalised once).
    base: TraceState,
}

#[derive(Clone)]
struct Seen {
    /// The `_fak` record, serialized (a fraction of a `Json` tree's memory).
    record: Arc<str>,
    /// The stub the model reads instead, when the result was held back.
    replacement: Option<Arc<str>>,
}

/// Remembered admissions by (trace, tool, content): two generations of at most `SEEN_GEN`
/// each. A lookup reads both, an insert goes to the young one, and a full young generation
/// becomes the old one, dropping the previous old: what conversations keep resending stays,
/// memory stays bounded (about 3 MiB), and a forgotten result is recorded once more (the
/// store takes it as the same witness or page).
#[derive(Default)]
struct SeenCache {
    young: FxHashMap<u128, Seen>,
    old: FxHashMap<u128, Seen>,
}

const SEEN_GEN: usize = 8192;

impl SeenCache {
    fn get(&self, k: u128) -> Option<Seen> {
        self.young.get(&k).or_else(|| self.old.get(&k)).cloned()
    }

    fn insert(&mut self, k: u128, v: Seen) {
        if self.young.len() >= SEEN_GEN {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, v);
    }
}

fn seen_key(trace: &str, tool: &str, digest: &Digest) -> u128 {
    let d = Digest::of(&format!("{trace}\0{tool}\0{}", digest.hex()));
    u128::from_str_radix(d.hex().get(..32).unwrap_or("0"), 16).unwrap_or(0)
}

impl App {
    pub fn new(config: Config, dag: Arc<Dag>) -> Result<App, String> {
        let store = Arc::new(Mutex::new(Store::open(&config.state_dir).map_err(|e| e.to_string())?));
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.upstream_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let taints = Arc::new(journal::TaintCache::default());
        let journal = journal::Journal::start(store.clone(), taints.clone())?;
        // The root alone until `watching` names the files the policy was read from.
        let files: Vec<std::path::PathBuf> = config.policy.iter().cloned().collect();
        let loaded = (files.clone(), kernel::fingerprint(&files));
        let base = TraceState::with_workspace(&config.workspace).home(&config.home);
        Ok(App {
            config,
            dag: arc_swap::ArcSwap::new(dag),
            client,
            store,
            seen: Mutex::new(SeenCache::default()),
            metrics: metrics::Metrics::new(),
            journal,
            taints,
            reloading: tokio::sync::Mutex::new(()),
            loaded: Mutex::new(loaded),
            cancel: tokio_util::sync::CancellationToken::new(),
            base,
        })
    }

    /// The files the policy was read from, so `--watch` sees a change to an import too.
    pub fn watching(&self, sources: &crate::diag::Sources) {
        let files = kernel::policy_files(sources);
        if let (false, Ok(mut l)) = (files.is_empty(), self.loaded.lock()) {
            *l = (files, kernel::fingerprint_loaded(sources));
        }
    }

    /// The floor as it is now.
    pub fn dag(&self) -> Arc<Dag> {
        self.dag.load_full()
    }

    /// The state a decision in `trace` is made in: `base` with the trace's taint, from the
    /// cache, else read from the store and remembered.
    pub fn state_in(&self, trace: &str, base: &TraceState) -> Result<TraceState, String> {
        let taint = match self.taints.get(trace) {
            Some(t) => t,
            None => {
                // Remembered under the store's lock, as every writer updates the cache: a read
                // cannot overwrite a raise committed after it.
                let store = self.store.lock().map_err(|_| poisoned())?;
                let t = store.taint(trace).map_err(|e| e.to_string())?;
                self.taints.set(trace, t);
                t
            }
        };
        let mut st = base.clone();
        st.taint = st.taint.max(taint);
        Ok(st)
    }
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.body_limit;
    Router::new()
        .route("/", any(root))
        .route("/api/hello", any(root))
        .route("/api/event_logging/{*rest}", any(quiet))
        .route("/healthz", get(healthz))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(messages_route))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/chat/completions", post(chat_route))
        .merge(kernel::routes())
        .merge(
            Router::new()
                .nest_service("/mcp", mcp::service(app.clone(), app.cancel.child_token()))
                .layer(axum::middleware::from_fn_with_state(app.clone(), require_key)),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), log_requests))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Runs until SIGINT or SIGTERM, then lets requests in flight finish.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let addr = app.config.addr;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if !local.ip().is_loopback() && app.config.require_key.is_none() {
        eprintln!(
            "fak serve: WARNING: listening on {local}, off loopback, with no key required: anyone who can reach \
             it can use the upstream model through it. Set --require-key-env."
        );
    }
    // The first line on stdout: scripts and tests read the port from it.
    println!("fak serve: listening on http://{local} (upstream {})", app.config.base_url);
    let mut background = Vec::new();
    if app.config.watch {
        background.push(tokio::spawn(kernel::watch(app.clone())));
    }
    #[cfg(unix)]
    background.push(tokio::spawn(reload_on_hangup(app.clone())));
    background.push(tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            flush_log();
        }
    }));
    let cancel = app.cancel.clone();
    let served = serve_connections(listener, router(app.clone()), app.config.header_timeout, async move {
        shutdown().await;
        // MCP sessions hold streams open: end them, or shutdown waits on their clients.
        cancel.cancel();
    })
    .await;
    for b in background {
        b.abort();
    }
    // Every record queued before the last answer is written before the process ends.
    app.journal.flush().await?;
    flush_log();
    served
}

/// Serves HTTP/1.1 on `listener` until `stop` resolves, then lets requests in flight finish.
///
/// Written out rather than `axum::serve`, which gives hyper no timer: without one, hyper waits
/// for a request's headers forever, and a client that opens connections and never finishes a
/// request (slowloris) holds each one, and a file descriptor, for good. Here a connection whose
/// request headers have not all arrived within `header_timeout` of it opening (or of the
/// previous answer, on a kept-alive one) is closed.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A connection reset before it was accepted: nothing to serve.
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) => continue,
                // Out of file descriptors and the like: wait, as `axum::serve` does, rather
                // than spin on an error that will repeat.
                Err(e) => {
                    eprintln!("fak serve: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Answers are written whole and a stream's events one at a time: no batching wanted.
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request, or one timed out, ends its connection; the
            // request log already has whatever it got to.
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// SIGHUP reloads the floor, as `POST /v1/fak/policy/reload` does.
#[cfg(unix)]
async fn reload_on_hangup(app: Arc<App>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        let _ = kernel::reload(&app, "SIGHUP").await;
    }
}

async fn shutdown() {
    let int = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = int => {},
        _ = term => {},
    }
}

// --- Small routes --------------------------------------------------------------------------

async fn root() -> StatusCode {
    StatusCode::OK
}

async fn quiet() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let engine = match app.config.provider {
        Provider::Anthropic => "anthropic",
        Provider::OpenAi => "openai",
    };
    axum::Json(json!({"ok": true, "model": app.config.model, "engine": engine, "upstream": app.config.base_url}))
        .into_response()
}

async fn models(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return r;
    }
    let data: Vec<Json> = app
        .config
        .model
        .iter()
        .map(|m| json!({"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"}))
        .collect();
    axum::Json(json!({"data": data, "has_more": false, "first_id": data.first().and_then(|m| m.get("id")), "last_id": data.last().and_then(|m| m.get("id"))}))
        .into_response()
}

/// Routes behind a path prefix (`/v1/anthropic/v1/messages`, a base URL with a path: B38) go
/// where their tail says, as if the prefix were not there; anything else is a 404.
async fn not_found(State(app): State<Arc<App>>, mut req: Request) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    const TAILS: &[&str] = &["/v1/messages/count_tokens", "/v1/messages", "/v1/chat/completions"];
    let tail = TAILS.iter().find(|t| path.ends_with(**t) && path.len() > t.len());
    if let (true, Some(tail)) = (method == Method::POST, tail) {
        let query = req.uri().query().map_or(String::new(), |q| format!("?{q}"));
        if let Ok(uri) = format!("{tail}{query}").parse::<Uri>() {
            *req.uri_mut() = uri;
            return match *tail {
                "/v1/messages" => messages_route(State(app), req).await,
                "/v1/messages/count_tokens" => count_tokens(State(app), req).await,
                _ => chat_route(State(app), req).await,
            };
        }
    }
    error(StatusCode::NOT_FOUND, "not_found_error", &format!("fak serve has no route {method} {path}"))
}

/// An error in the Anthropic envelope.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `x-api-key` or `Authorization: Bearer`, compared in constant time, when a key is required.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Response> {
    let Some(want) = &app.config.require_key else { return Ok(()) };
    let given = headers.get("x-api-key").and_then(|v| v.to_str().ok()).or_else(|| {
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    });
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), want.as_bytes()) => Ok(()),
        _ => Err(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "fak serve: a valid key is required (x-api-key or Authorization: Bearer)",
        )),
    }
}

/// The key check as a layer, for services that are not handlers of ours (`/mcp`).
async fn require_key(State(app): State<Arc<App>>, req: Request, next: axum::middleware::Next) -> Response {
    match authorize(&app, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(r) => r,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// --- Traces --------------------------------------------------------------------------------

/// The trace a request belongs to: `X-Trace-Id`, else Claude Code's session id, else one
/// derived from the conversation's start (its system prompt and first message), so every turn
/// of one conversation lands in the same trace.
fn trace_id(headers: &HeaderMap, body: &Json) -> String {
    for h in ["x-trace-id", "x-claude-code-session-id"] {
        if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
            return v.chars().take(200).collect();
        }
    }
    let first = body.get("messages").and_then(Json::as_array).and_then(|m| m.first()).cloned().unwrap_or(Json::Null);
    let seed = json!([body.get("system").cloned().unwrap_or(Json::Null), first]).to_string();
    format!("conv-{}", &Digest::of(&seed).hex().get(..16).unwrap_or("0"))
}

// --- The request side: tool results ---------------------------------------------------------

/// Admits the result `holder` carries under `content` (a `tool_result` block or a `tool`
/// message) as the tool `tools` names for `id` (`unknown` when the conversation holds no such
/// call: judged untrusted); held-back content is replaced by its stub, the record kept for
/// `_fak.result_admissions`. The detectors read a string, or the text of its blocks.
fn admit_held(
    app: &App,
    tools: &FxHashMap<String, String>,
    holder: &mut Json,
    id: &str,
    trace: &str,
    base: &TraceState,
    records: &mut Vec<Json>,
) -> Result<(), String> {
    let tool = tools.get(id).map_or("unknown", String::as_str);
    let text = chat::content_text(holder.get("content").unwrap_or(&Json::Null));
    let seen = admit_one(app, tool, id, text, trace, base)?;
    if let (Some(stub), Some(o)) = (&seen.replacement, holder.as_object_mut()) {
        o.insert("content".into(), Json::from(&**stub));
    }
    records.push(seen.record);
    Ok(())
}

/// Admits every tool_result of the request before the upstream sees it; held-back content is
/// replaced by its stub. Returns the records for `_fak.result_admissions`.
fn admit_results(app: &App, body: &mut Json, trace: &str, base: &TraceState) -> Result<Vec<Json>, String> {
    let Some(messages) = body.get_mut("messages").and_then(Json::as_array_mut) else { return Ok(Vec::new()) };
    let mut tools: FxHashMap<String, String> = FxHashMap::default();
    let mut records = Vec::new();
    for m in messages.iter_mut() {
        let Some(content) = m.get_mut("content").and_then(Json::as_array_mut) else { continue };
        for block in content.iter_mut() {
            match block.get("type").and_then(Json::as_str) {
                Some("tool_use") => {
                    if let (Some(id), Some(name)) =
                        (block.get("id").and_then(Json::as_str), block.get("name").and_then(Json::as_str))
                    {
                        tools.insert(id.to_string(), name.to_string());
                    }
                }
                Some("tool_result") => {
                    let id = block.get("tool_use_id").and_then(Json::as_str).unwrap_or("").to_string();
                    admit_held(app, &tools, block, &id, trace, base, &mut records)?;
                }
                _ => {}
            }
        }
    }
    Ok(records)
}

/// Which API a request body is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Messages,
    Chat,
}

/// Whether the request carries tool results to admit.
fn has_results(body: &Json, wire: Wire) -> bool {
    let messages = body.get("messages").and_then(Json::as_array).map_or(&[][..], Vec::as_slice);
    messages.iter().any(|m| match wire {
        Wire::Chat => m.get("role").and_then(Json::as_str) == Some("tool"),
        Wire::Messages => m
            .get("content")
            .and_then(Json::as_array)
            .is_some_and(|c| c.iter().any(|b| b.get("type").and_then(Json::as_str) == Some("tool_result"))),
    })
}

/// Admits the request's tool results and reads the state its response is decided in. Writes
/// (a result to record) run on the blocking pool; a request with no results only reads the
/// trace's taint, inline: a thread hop would cost more than the read.
async fn admit_request(
    app: &Arc<App>,
    mut body: Json,
    trace: &str,
    base: &TraceState,
    wire: Wire,
) -> Result<Result<(Json, Vec<Json>, TraceState), String>, tokio::task::JoinError> {
    let read_state = |app: &App, trace: &str, base: &TraceState| app.state_in(trace, base);
    if !has_results(&body, wire) {
        return Ok(read_state(app, trace, base).map(|st| (body, Vec::new(), st)));
    }
    let (app, trace, base) = (app.clone(), trace.to_string(), base.clone());
    tokio::task::spawn_blocking(move || {
        let records = match wire {
            Wire::Messages => admit_results(&app, &mut body, &trace, &base)?,
            Wire::Chat => admit_chat_results(&app, &mut body, &trace, &base)?,
        };
        let state = read_state(&app, &trace, &base)?;
        Ok((body, records, state))
    })
    .await
}

/// Lowers `max_tokens` (and chat's `max_completion_tokens`) to the configured cap.
fn clamp_max_tokens(app: &App, body: &mut Json) {
    let Some(cap) = app.config.max_tokens else { return };
    for k in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = body.get_mut(k) {
            if v.as_u64().is_some_and(|n| n > cap) {
                *v = Json::from(cap);
            }
        }
    }
}

fn poisoned() -> String {
    "fak: a lock was poisoned (a request failed inside)".to_string()
}

/// One admitted result: its `_fak` record and, when held back, what the model reads instead.
struct Admitted {
    record: Json,
    replacement: Option<Arc<str>>,
}

fn admit_one(
    app: &App,
    tool: &str,
    id: &str,
    text: String,
    trace: &str,
    base: &TraceState,
) -> Result<Admitted, String> {
    let digest = Digest::of(&text);
    let key = seen_key(trace, tool, &digest);
    let remembered = app.seen.lock().map_err(|_| poisoned())?.get(key);
    let mut store = app.store.lock().map_err(|_| poisoned())?;
    if let Some(s) = remembered {
        // A result read before stays read unless its bytes were revoked since.
        if s.replacement.is_some() || !store.revoked(&digest).map_err(|e| e.to_string())? {
            let mut record: Json = serde_json::from_str(&s.record).map_err(|e| e.to_string())?;
            if let Some(o) = record.as_object_mut() {
                o.insert("tool_use_id".into(), Json::from(id));
            }
            return Ok(Admitted { record, replacement: s.replacement });
        }
    }
    let result = ToolResult { tool: tool.to_string(), text };
    let before = store.taint(trace).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (v, _, rec) =
        crate::ledger::admit(&mut store, &app.dag(), &result, Some(trace), base).map_err(|e| e.to_string())?;
    app.metrics.decision(
        metrics::Side::Result,
        tool,
        kind_str(v.verdict),
        &v.reason,
        &v.by.rule,
        Some(started.elapsed()),
    );
    app.taints.set(trace, rec.taint);
    if rec.taint > before {
        app.metrics.taint_raised();
    }
    let mut record = json!({
        "tool": tool, "tool_use_id": id, "verdict": kind_str(v.verdict), "reason": &*v.reason,
        "disposition": v.disposition.as_str(), "by": &*v.by.rule, "trace_id": trace,
    });
    if let Some(o) = record.as_object_mut() {
        if let Some(k) = v.kinds.first() {
            o.insert("kind".into(), Json::from(&**k));
        }
        if let Some(p) = &v.page {
            o.insert("page".into(), Json::from(&**p));
        }
        if let Some(w) = &v.witness {
            o.insert("witness".into(), Json::from(&**w));
        }
    }
    let replacement: Option<Arc<str>> = (!v.is_allow()).then(|| {
        Arc::from(match v.page.as_deref().map(|p| store.get(p, false)) {
            Some(Ok(page)) => page.stub(),
            _ => format!("[fak: this tool result was withheld: {}]", v.reason),
        })
    });
    drop(store);
    let seen = Seen { record: Arc::from(record.to_string()), replacement: replacement.clone() };
    app.seen.lock().map_err(|_| poisoned())?.insert(key, seen);
    Ok(Admitted { record, replacement })
}

// --- /v1/messages ------------------------------------------------------------------------------

async fn count_tokens(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Err(r) = authorize(&app, req.headers()) {
        return r;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, app.config.body_limit).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", "the request body is too large"),
    };
    let upstream = match app.config.provider {
        Provider::Anthropic => forward(&app, &parts.headers, &parts.uri, bytes.clone()).await,
        Provider::OpenAi => Err("an OpenAI-wire upstream counts no tokens".to_string()),
    };
    match upstream {
        Ok(up) if up.status() != reqwest::StatusCode::NOT_FOUND => pass_through(up).await,
        // No count_tokens upstream: a local estimate over what /v1/messages would send.
        Ok(_) | Err(_) => match serde_json::from_slice::<Json>(&bytes) {
            Ok(body) => axum::Json(json!({"input_tokens": estimate_tokens(&body)})).into_response(),
            Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request_error", &format!("the body is not JSON: {e}")),
        },
    }
}

/// About four bytes a token over the system prompt, the tools and the messages.
fn estimate_tokens(body: &Json) -> u64 {
    let part = |k: &str| body.get(k).map_or(0, |v| v.to_string().len());
    ((part("system") + part("tools") + part("messages")) as u64).div_ceil(4)
}

async fn messages_route(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    if let Err(r) = authorize(&app, req.headers()) {
        return r;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, app.config.body_limit).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", "the request body is too large"),
    };
    let mut body: Json = match serde_json::from_slice(&bytes) {
        Ok(b @ Json::Object(_)) => b,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", "the body is not a JSON object"),
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", &format!("the body is not JSON: {e}"))
        }
    };
    clamp_max_tokens(&app, &mut body);
    let trace = trace_id(&parts.headers, &body);
    let base = app.base_state();
    let stream = body.get("stream").and_then(Json::as_bool) == Some(true);

    // The request side, then the state the response is decided in (the results may raise it).
    let admitted = admit_request(&app, body, &trace, &base, Wire::Messages).await;
    let (body, records, state) = match admitted {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                &format!("fak could not admit the tool results: {e}"),
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", &format!("fak failed inside: {e}")),
    };
    let mut adj = messages::Adjudicator::new(app.dag(), state, trace.clone());
    adj.result_admissions = records;

    if app.config.provider == Provider::OpenAi {
        return via_openai(&app, body, adj, stream, trace, started).await;
    }
    let up = match forward(&app, &parts.headers, &parts.uri, Bytes::from(body.to_string())).await {
        Ok(up) => up,
        Err(e) => return upstream_error(&e),
    };
    let status = up.status();
    if !status.is_success() {
        log(&app.metrics, &trace, "/v1/messages", status.as_u16(), started, &adj);
        return logged(pass_through(up).await);
    }
    let kept = upstream_headers(up.headers());
    let streamed = is_sse(up.headers());
    let mut r = if stream && streamed {
        stream_response(app.clone(), up, adj, trace, started, None, None, app.config.ping_interval)
    } else {
        let bytes = match up.bytes().await {
            Ok(b) => b,
            Err(e) => return upstream_error(&e.to_string()),
        };
        let msg: Json = match serde_json::from_slice(&bytes) {
            Ok(m @ Json::Object(_)) => m,
            _ => {
                return error(StatusCode::BAD_GATEWAY, "api_error", "fak: the upstream's answer is not a JSON message")
            }
        };
        if stream {
            // Asked to stream, answered whole: the client still gets the stream it asked for.
            stream_whole(&app, msg, adj, trace, started).await
        } else {
            json_response(&app, msg, adj, &trace, started).await
        }
    };
    r.headers_mut().extend(kept);
    r
}

/// The headers of an Anthropic upstream's answer that a client reads: its request id and
/// rate-limit state (`anthropic-ratelimit-*`, `retry-after`).
fn upstream_headers(h: &reqwest::header::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in h {
        let n = name.as_str();
        if n.starts_with("anthropic-") || matches!(n, "request-id" | "x-request-id" | "retry-after") {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_str().as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                out.append(n, v);
            }
        }
    }
    out
}

/// The names of the tools a Messages request declares (those a written call may name).
fn declared_tools(body: &Json) -> Vec<String> {
    body.get("tools")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Json::as_str).map(str::to_string))
        .collect()
}

fn is_sse(headers: &reqwest::header::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"))
}

/// Writes the audit records of the calls `adj` decided; the answer waits for them, and a
/// record that cannot be written fails the request (the calls never reach the client).
async fn record_decided(app: &App, adj: &mut messages::Adjudicator) -> Result<(), String> {
    let decided = std::mem::take(&mut adj.decided);
    app.record(decided).await.map_err(|e| format!("fak could not record its decisions, so none is given: {e}"))
}

/// A whole Messages response, adjudicated, with `_fak` and the trace header.
async fn json_response(
    app: &App,
    mut msg: Json,
    mut adj: messages::Adjudicator,
    trace: &str,
    started: Instant,
) -> Response {
    adj.message(&mut msg);
    if let Err(e) = record_decided(app, &mut adj).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", &e);
    }
    log(&app.metrics, trace, "/v1/messages", 200, started, &adj);
    let mut r = axum::Json(msg).into_response();
    if let Ok(v) = HeaderValue::from_str(trace) {
        r.headers_mut().insert("x-trace-id", v);
    }
    logged(r)
}

/// `/v1/messages` to an OpenAI-wire upstream: translated there and back.
async fn via_openai(
    app: &Arc<App>,
    body: Json,
    adj: messages::Adjudicator,
    stream: bool,
    trace: String,
    started: Instant,
) -> Response {
    let client_model = body.get("model").and_then(Json::as_str).unwrap_or("").to_string();
    let estimate = estimate_tokens(&body);
    // Server tools (web search and the like) run at Anthropic; an OpenAI upstream has no such
    // thing, so they are dropped, and said so (B30).
    let server_tools: Vec<&str> = body
        .get("tools")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("input_schema").is_none())
        .filter_map(|t| t.get("name").and_then(Json::as_str))
        .collect();
    if !server_tools.is_empty() {
        eprintln!(
            "{}",
            json!({"warning": "server tools have no equivalent on an OpenAI upstream and were dropped", "tools": server_tools, "trace": trace})
        );
    }
    let (req, names) = match openai::request(&body, app.config.model.as_deref(), app.config.extra_body.as_ref()) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", &e),
    };
    let url = format!("{}/v1/chat/completions", app.config.base_url.trim_end_matches('/'));
    let mut r = app.client.post(&url).header(header::CONTENT_TYPE, "application/json").body(req.to_string());
    if let Some(k) = &app.config.upstream_key {
        r = r.bearer_auth(k);
    }
    let sent = Instant::now();
    let up = r.send().await;
    app.metrics.upstream(sent.elapsed());
    let up = match up {
        Ok(up) => up,
        Err(e) => return upstream_error(&format!("the upstream could not be reached: {e}")),
    };
    let status = up.status();
    if !status.is_success() {
        let code = status.as_u16();
        let bytes = up.bytes().await.unwrap_or_default();
        log(&app.metrics, &trace, "/v1/messages", code, started, &adj);
        // A request past the model's window is a 400 whatever status the server chose (some
        // answer 500), worded as Anthropic words it: Claude Code then compacts the
        // conversation, or asks for less output, and retries.
        if let Some(m) = openai::context_overflow(&bytes) {
            return logged(error(StatusCode::BAD_REQUEST, "invalid_request_error", &m));
        }
        let s = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        return logged(error(s, openai::error_type(code), &openai::error_message(&bytes)));
    }
    if stream && is_sse(up.headers()) {
        return stream_response(
            app.clone(),
            up,
            adj,
            trace,
            started,
            Some(
                openai::StreamTranslator::new(names, client_model)
                    .with_input_estimate(estimate)
                    .with_lifting(declared_tools(&body)),
            ),
            None,
            app.config.ping_interval,
        );
    }
    let bytes = match up.bytes().await {
        Ok(b) => b,
        Err(e) => return upstream_error(&e.to_string()),
    };
    let msg = serde_json::from_slice::<Json>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|b| openai::response(&b, &names, &client_model, &declared_tools(&body)));
    match msg {
        Ok(m) if !stream => json_response(app, m, adj, &trace, started).await,
        // The client asked for a stream and the upstream answered whole: stream it.
        Ok(m) => stream_whole(app, m, adj, trace, started).await,
        Err(e) => {
            error(StatusCode::BAD_GATEWAY, "api_error", &format!("fak: the upstream's answer cannot be read: {e}"))
        }
    }
}

/// A whole message as the events of a stream, adjudicated like any stream.
async fn stream_whole(app: &App, msg: Json, adj: messages::Adjudicator, trace: String, started: Instant) -> Response {
    let mut s = messages::Stream::new(adj);
    let mut out = Vec::new();
    for e in message_events(&msg) {
        out.extend(s.feed(e));
    }
    out.extend(s.finish());
    if let Err(e) = record_decided(app, &mut s.adj).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", &e);
    }
    log(&app.metrics, &trace, "/v1/messages (stream)", 200, started, &s.adj);
    let bytes: Vec<u8> = out.iter().flat_map(sse::Event::to_bytes).collect();
    logged(sse_response(Body::from(bytes), &trace))
}

/// The events a Messages stream would have carried for `msg`.
fn message_events(msg: &Json) -> Vec<sse::Event> {
    let ev = |d: Json| sse::Event::new(d.get("type").and_then(Json::as_str).unwrap_or(""), d.to_string());
    let mut start = msg.clone();
    if let Some(o) = start.as_object_mut() {
        o.insert("content".into(), json!([]));
        o.insert("stop_reason".into(), Json::Null);
    }
    let mut out = vec![ev(json!({"type": "message_start", "message": start}))];
    for (i, b) in msg.get("content").and_then(Json::as_array).into_iter().flatten().enumerate() {
        let delta = match b.get("type").and_then(Json::as_str) {
            Some("text") => json!({"type": "text_delta", "text": b.get("text").cloned().unwrap_or_default()}),
            Some("tool_use") => {
                json!({"type": "input_json_delta", "partial_json": b.get("input").cloned().unwrap_or_default().to_string()})
            }
            _ => continue,
        };
        let mut empty = b.clone();
        if let Some(o) = empty.as_object_mut() {
            if o.contains_key("text") {
                o.insert("text".into(), json!(""));
            }
            if o.contains_key("input") {
                o.insert("input".into(), json!({}));
            }
        }
        out.push(ev(json!({"type": "content_block_start", "index": i, "content_block": empty})));
        out.push(ev(json!({"type": "content_block_delta", "index": i, "delta": delta})));
        out.push(ev(json!({"type": "content_block_stop", "index": i})));
    }
    out.push(ev(
        json!({"type": "message_delta", "delta": {"stop_reason": msg.get("stop_reason"), "stop_sequence": null},
        "usage": {"output_tokens": msg.pointer("/usage/output_tokens").cloned().unwrap_or(json!(0))}}),
    ));
    out.push(ev(json!({"type": "message_stop"})));
    out
}

fn sse_response(body: Body, trace: &str) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(trace) {
        h.insert("x-trace-id", v);
    }
    r
}

/// Streams the upstream's answer to the client through the adjudicator; `translate` turns an
/// OpenAI-wire upstream's chunks into Messages events first.
fn stream_response(
    app: Arc<App>,
    up: reqwest::Response,
    adj: messages::Adjudicator,
    trace: String,
    started: Instant,
    mut translate: Option<openai::StreamTranslator>,
    write: Option<chat::ChunkWriter>,
    ping_interval: Duration,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let trace2 = trace.clone();
    let route = if write.is_some() { "/v1/chat/completions (stream)" } else { "/v1/messages (stream)" };
    let write = std::sync::Arc::new(Mutex::new(write));
    let ping = ping_interval;
    tokio::spawn(async move {
        let mut s = messages::Stream::new(adj);
        let mut reader = sse::Reader::default();
        let mut upstream = up.bytes_stream();
        let send = |evs: Vec<sse::Event>| {
            let tx = tx.clone();
            // Chat clients get chunks: the adjudicated events through the writer.
            let evs: Vec<sse::Event> = match write.lock() {
                Ok(mut w) => match w.as_mut() {
                    Some(w) => evs.iter().flat_map(|e| w.write(e)).collect(),
                    None => evs,
                },
                Err(_) => vec![messages::error_event("api_error", "fak: a lock was poisoned")],
            };
            async move {
                for e in evs {
                    if tx.send(Ok(Bytes::from(e.to_bytes()))).await.is_err() {
                        return false;
                    }
                }
                true
            }
        };
        loop {
            // A ping whenever the upstream is quiet (a held tool call, a slow model).
            let next = tokio::time::timeout(ping, upstream.next()).await;
            let out = match next {
                Err(_) => vec![sse::Event::new("ping", r#"{"type": "ping"}"#)],
                Ok(Some(Ok(chunk))) => match reader.feed(&chunk) {
                    Ok(evs) => match translated(&mut translate, evs) {
                        Ok(evs) => evs.into_iter().flat_map(|e| s.feed(e)).collect(),
                        Err(e) => s.fail_with(&format!("fak: {e}")),
                    },
                    Err(e) => s.fail_with(&format!("fak: {e}")),
                },
                Ok(Some(Err(e))) => {
                    let mut out: Vec<sse::Event> = Vec::new();
                    if !s.done() {
                        out.push(messages::error_event(
                            "api_error",
                            &format!("fak: the upstream failed mid-stream: {e}"),
                        ));
                    }
                    let _ = send(out).await;
                    break;
                }
                Ok(None) => {
                    let last: Vec<sse::Event> = reader.finish().into_iter().collect();
                    let mut out: Vec<sse::Event> = match translated(&mut translate, last) {
                        Ok(evs) => evs.into_iter().flat_map(|e| s.feed(e)).collect(),
                        Err(e) => s.fail_with(&format!("fak: {e}")),
                    };
                    // An OpenAI-wire upstream that said it finished but sent no [DONE]: end it.
                    if let Some(t) = translate.as_mut().filter(|t| t.finished()) {
                        out.extend(t.end().into_iter().flat_map(|e| s.feed(e)));
                    }
                    out.extend(s.finish());
                    let _ = send(out).await;
                    break;
                }
            };
            let out = if s.adj.decided.is_empty() {
                out
            } else {
                match record_decided(&app, &mut s.adj).await {
                    Ok(()) => out,
                    Err(e) => {
                        let _ = send(s.fail_with(&e)).await;
                        break;
                    }
                }
            };
            if !send(out).await || s.done() {
                break;
            }
        }
        log(&app.metrics, &trace2, route, 200, started, &s.adj);
    });
    // The stream task writes the log line when the stream ends.
    logged(sse_response(Body::from_stream(tokio_stream_from(rx)), &trace))
}

/// Upstream events as Messages events: as they are, or through the OpenAI translator.
fn translated(t: &mut Option<openai::StreamTranslator>, evs: Vec<sse::Event>) -> Result<Vec<sse::Event>, String> {
    let Some(t) = t else { return Ok(evs) };
    let mut out = Vec::new();
    for e in evs {
        out.extend(t.feed(&e.data)?);
    }
    Ok(out)
}

/// The receiving end of a channel as a stream (what tokio-stream's wrapper does).
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Marks a response whose request wrote its own log line (with its verdicts): the
/// `log_requests` layer writes one for every other response.
#[derive(Clone, Copy)]
struct Logged;

fn logged(mut r: Response) -> Response {
    r.extensions_mut().insert(Logged);
    r
}

/// The route a path is counted under in `/metrics`: one of the routes served, so a client
/// cannot grow the page by inventing paths.
fn route_label(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/v1/messages/count_tokens",
        "/v1/messages",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/fak/adjudicate",
        "/v1/fak/admit",
        "/v1/fak/syscall",
        "/v1/fak/changes",
        "/v1/fak/revoke",
        "/v1/fak/trace/reset",
        "/v1/fak/policy/reload",
        "/metrics",
        "/healthz",
        "/mcp",
        "/api/hello",
        "/",
    ];
    if path.starts_with("/api/event_logging/") {
        return "/api/event_logging";
    }
    // A route behind a path prefix (B38) counts as its tail.
    ROUTES.iter().find(|r| path == **r || (r.len() > 1 && path.ends_with(**r))).copied().unwrap_or("other")
}

/// Counts every request in `/metrics` and writes the log line of those no handler logged
/// (probes, errors before the upstream, 404s, the kernel API): route, status, milliseconds and
/// the trace header when there is one. A stream's duration is taken when it ends (`log`).
async fn log_requests(State(app): State<Arc<App>>, req: Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let _in_flight = app.metrics.begin();
    let route = req.uri().path().to_string();
    let trace = req.headers().get("x-trace-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let r = next.run(req).await;
    let streamed =
        r.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streamed {
        app.metrics.request(route_label(&route), r.status().as_u16(), started.elapsed());
    }
    // Telemetry Claude Code posts every few seconds is answered, not logged.
    if r.extensions().get::<Logged>().is_none() && !route.starts_with("/api/event_logging/") {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            route: &'a str,
            status: u16,
            ms: f64,
            trace: Option<&'a str>,
        }
        let line = Line {
            route: &route,
            status: r.status().as_u16(),
            ms: started.elapsed().as_secs_f64() * 1000.0,
            trace: trace.as_deref(),
        };
        if let Ok(mut s) = serde_json::to_string(&line) {
            s.push('\n');
            log_text(s);
        }
    }
    r
}

/// Logs one line to stderr, through a buffer written out when full and every 50 ms: a system
/// call a line was a few percent of a loaded server's time (and `eprintln!` of a JSON value
/// makes one a piece).
pub(crate) fn log_line(line: &Json) {
    let mut s = line.to_string();
    s.push('\n');
    log_text(s);
}

/// Appends text to the log buffer, in order with the log lines; a full buffer (32 KiB) is
/// written out at once, and `serve` flushes it every 50 ms.
pub(crate) fn log_text(s: String) {
    let Ok(mut buf) = LOG.lock() else {
        eprint!("{s}");
        return;
    };
    buf.push_str(&s);
    if buf.len() >= 32 << 10 {
        write_log(&mut buf);
    }
}

static LOG: Mutex<String> = Mutex::new(String::new());

fn write_log(buf: &mut String) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
    buf.clear();
}

/// Writes out what the log buffer holds.
pub fn flush_log() {
    if let Ok(mut buf) = LOG.lock() {
        if !buf.is_empty() {
            write_log(&mut buf);
        }
    }
}

/// One JSON line per request on stderr: never a body or an argument.
fn log(
    metrics: &metrics::Metrics,
    trace: &str,
    route: &str,
    status: u16,
    started: Instant,
    adj: &messages::Adjudicator,
) {
    if let Some(r) = route.strip_suffix(" (stream)") {
        // A stream's request ends with its last event: the layer left its duration to here.
        metrics.request(route_label(r), status, started.elapsed());
    }
    let mut counts: FxHashMap<&str, u32> = FxHashMap::default();
    for a in &adj.admissions {
        *counts.entry(a.get("verdict").and_then(Json::as_str).unwrap_or("?")).or_default() += 1;
    }
    let held =
        adj.result_admissions.iter().filter(|r| r.get("verdict").and_then(Json::as_str) != Some("ALLOW")).count();
    let line = json!({
        "route": route, "status": status, "ms": started.elapsed().as_secs_f64() * 1000.0, "trace": trace,
        "verdicts": counts, "results": adj.result_admissions.len(), "results_held": held,
    });
    log_line(&line);
}

/// Sends the request upstream: the same path and query, the client's headers less the ones
/// that belong to this hop, and the upstream key when fak has one.
async fn forward(app: &App, headers: &HeaderMap, uri: &Uri, body: Bytes) -> Result<reqwest::Response, String> {
    let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{}", app.config.base_url.trim_end_matches('/'), path_and_query);
    let mut req = app.client.post(&url).body(body);
    for (name, value) in headers {
        let n = name.as_str();
        let hop = matches!(
            n,
            "host"
                | "content-length"
                | "connection"
                | "transfer-encoding"
                | "keep-alive"
                | "upgrade"
                | "te"
                | "trailer"
                | "proxy-authorization"
                | "accept-encoding"
        );
        let auth = matches!(n, "x-api-key" | "authorization");
        // The client's key goes upstream only when fak neither has its own nor checks theirs.
        if hop || (auth && (app.config.upstream_key.is_some() || app.config.require_key.is_some())) {
            continue;
        }
        req = req.header(name, value);
    }
    if let Some(k) = &app.config.upstream_key {
        req = req.header("x-api-key", k);
    }
    let sent = Instant::now();
    let r = req.send().await;
    app.metrics.upstream(sent.elapsed());
    r.map_err(|e| {
        if e.is_timeout() {
            format!("the upstream did not answer in time: {e}")
        } else {
            format!("the upstream could not be reached: {e}")
        }
    })
}

fn upstream_error(e: &str) -> Response {
    error(StatusCode::BAD_GATEWAY, "api_error", &format!("fak: {e}"))
}

/// An upstream answer passed on as it is: status, content type, body.
async fn pass_through(up: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(up.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let ctype = up.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let rid = up.headers().get("request-id").cloned();
    match up.bytes().await {
        Ok(b) => {
            let mut r = (status, b).into_response();
            if let Some(c) = ctype.and_then(|c| HeaderValue::from_bytes(c.as_bytes()).ok()) {
                r.headers_mut().insert(header::CONTENT_TYPE, c);
            }
            if let Some(v) = rid.and_then(|c| HeaderValue::from_bytes(c.as_bytes()).ok()) {
                r.headers_mut().insert("request-id", v);
            }
            r
        }
        Err(e) => upstream_error(&format!("the upstream's answer could not be read: {e}")),
    }
}

// --- /v1/chat/completions ------------------------------------------------------------------

/// An error in the OpenAI envelope.
fn oai_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Admits every `tool` message of a chat request (the tool named by the assistant's
/// `tool_calls` with the same id), replacing what is held back by its stub.
fn admit_chat_results(app: &App, body: &mut Json, trace: &str, base: &TraceState) -> Result<Vec<Json>, String> {
    let Some(messages) = body.get_mut("messages").and_then(Json::as_array_mut) else { return Ok(Vec::new()) };
    let mut tools: FxHashMap<String, String> = FxHashMap::default();
    let mut records = Vec::new();
    for m in messages.iter_mut() {
        match m.get("role").and_then(Json::as_str) {
            Some("assistant") => {
                for c in m.get("tool_calls").and_then(Json::as_array).into_iter().flatten() {
                    if let (Some(id), Some(name)) =
                        (c.get("id").and_then(Json::as_str), c.pointer("/function/name").and_then(Json::as_str))
                    {
                        tools.insert(id.to_string(), name.to_string());
                    }
                }
            }
            Some("tool") => {
                let id = m.get("tool_call_id").and_then(Json::as_str).unwrap_or("").to_string();
                admit_held(app, &tools, m, &id, trace, base, &mut records)?;
            }
            _ => {}
        }
    }
    Ok(records)
}

async fn chat_route(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    if authorize(&app, req.headers()).is_err() {
        return oai_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "fak serve: a valid key is required (Authorization: Bearer or x-api-key)",
        );
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, app.config.body_limit).await {
        Ok(b) => b,
        Err(_) => {
            return oai_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "the request body is too large")
        }
    };
    let mut body: Json = match serde_json::from_slice(&bytes) {
        Ok(b @ Json::Object(_)) => b,
        Ok(_) => return oai_error(StatusCode::BAD_REQUEST, "invalid_request_error", "the body is not a JSON object"),
        Err(e) => {
            return oai_error(StatusCode::BAD_REQUEST, "invalid_request_error", &format!("the body is not JSON: {e}"))
        }
    };
    clamp_max_tokens(&app, &mut body);
    let trace = trace_id(&parts.headers, &body);
    let base = app.base_state();
    let stream = body.get("stream").and_then(Json::as_bool) == Some(true);
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Json::as_bool) == Some(true);
    let client_model = body.get("model").and_then(Json::as_str).unwrap_or("").to_string();
    if let (Some(m), Some(o)) = (&app.config.model, body.as_object_mut()) {
        o.insert("model".into(), Json::from(m.as_str()));
    }

    let admitted = admit_request(&app, body, &trace, &base, Wire::Chat).await;
    let (body, records, state) = match admitted {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            return oai_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &format!("fak could not admit the tool results: {e}"),
            )
        }
        Err(e) => {
            return oai_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &format!("fak failed inside: {e}"))
        }
    };
    let mut adj = messages::Adjudicator::new(app.dag(), state, trace.clone());
    adj.result_admissions = records;
    let base_url = app.config.base_url.trim_end_matches('/');
    let tools: Vec<String> = body
        .get("tools")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/function/name").and_then(Json::as_str).map(str::to_string))
        .collect();

    let (up, translate) = match app.config.provider {
        Provider::OpenAi => {
            let mut req = body;
            if let (Some(extra), Some(o)) = (&app.config.extra_body, req.as_object_mut()) {
                for (k, v) in extra {
                    o.insert(k.clone(), v.clone());
                }
            }
            let mut r = app
                .client
                .post(format!("{base_url}/v1/chat/completions"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(req.to_string());
            if let Some(k) = &app.config.upstream_key {
                r = r.bearer_auth(k);
            }
            let translate = openai::StreamTranslator::new(openai::Names::default(), client_model.clone())
                .with_lifting(tools.clone());
            let sent = Instant::now();
            let r = r.send().await;
            app.metrics.upstream(sent.elapsed());
            (r, Some(translate))
        }
        Provider::Anthropic => {
            let req = match chat::to_messages_request(&body, None) {
                Ok(r) => r,
                Err(e) => return oai_error(StatusCode::BAD_REQUEST, "invalid_request_error", &e),
            };
            let mut r = app
                .client
                .post(format!("{base_url}/v1/messages"))
                .header(header::CONTENT_TYPE, "application/json")
                .header("anthropic-version", "2023-06-01")
                .body(req.to_string());
            let bearer = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match (&app.config.upstream_key, &app.config.require_key, bearer) {
                (Some(k), _, _) => r = r.header("x-api-key", k),
                (None, None, Some(k)) => r = r.header("x-api-key", k),
                _ => {}
            }
            let sent = Instant::now();
            let r = r.send().await;
            app.metrics.upstream(sent.elapsed());
            (r, None)
        }
    };
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            return oai_error(
                StatusCode::BAD_GATEWAY,
                "server_error",
                &format!("fak: the upstream could not be reached: {e}"),
            )
        }
    };
    let status = up.status();
    if !status.is_success() {
        let code = status.as_u16();
        let s = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        log(&app.metrics, &trace, "/v1/chat/completions", code, started, &adj);
        let bytes = up.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<Json>(&bytes)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(Json::as_str).map(str::to_string))
            .unwrap_or_else(|| openai::error_message(&bytes));
        return logged(oai_error(s, openai::error_type(code), &message));
    }
    if stream && is_sse(up.headers()) {
        return stream_response(
            app.clone(),
            up,
            adj,
            trace,
            started,
            translate,
            Some(chat::ChunkWriter::new(client_model, include_usage)),
            app.config.ping_interval,
        );
    }
    let bytes = match up.bytes().await {
        Ok(b) => b,
        Err(e) => return oai_error(StatusCode::BAD_GATEWAY, "server_error", &format!("fak: {e}")),
    };
    let msg =
        serde_json::from_slice::<Json>(&bytes).map_err(|e| e.to_string()).and_then(|b| match app.config.provider {
            Provider::OpenAi => openai::response(&b, &openai::Names::default(), &client_model, &tools),
            Provider::Anthropic if b.is_object() => Ok(b),
            Provider::Anthropic => Err("not a message".into()),
        });
    let mut msg = match msg {
        Ok(m) => m,
        Err(e) => {
            return oai_error(
                StatusCode::BAD_GATEWAY,
                "server_error",
                &format!("fak: the upstream's answer cannot be read: {e}"),
            )
        }
    };
    adj.message(&mut msg);
    if let Err(e) = record_decided(&app, &mut adj).await {
        return oai_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e);
    }
    log(&app.metrics, &trace, "/v1/chat/completions", 200, started, &adj);
    let out = chat::to_chat_response(&msg, &client_model);
    if stream {
        // Asked to stream, answered whole: the completion as chunks.
        let mut w = chat::ChunkWriter::new(client_model, include_usage);
        let evs: Vec<sse::Event> = message_events(&msg).iter().flat_map(|e| w.write(e)).collect();
        let bytes: Vec<u8> = evs.iter().flat_map(sse::Event::to_bytes).collect();
        return logged(sse_response(Body::from(bytes), &trace));
    }
    let mut r = axum::Json(out).into_response();
    if let Ok(v) = HeaderValue::from_str(&trace) {
        r.headers_mut().insert("x-trace-id", v);
    }
    logged(r)
}
