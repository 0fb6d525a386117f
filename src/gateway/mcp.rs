//! `/mcp` and `fak serve --stdio`: the kernel's operations as MCP tools.
//!
//! The official Rust SDK (rmcp) speaks the protocol: Streamable HTTP with session ids at
//! `/mcp`, or stdio. This module only says which tools there are and hands each call to the
//! same function its `/v1/fak/*` route calls (`kernel.rs`). A verdict is a tool's normal result
//! — a DENY included — with the answer as structured content and as text; a request fak cannot
//! answer (a missing field, a store that fails) is a tool error (`isError`), which the client's
//! model can read; an unknown tool is a protocol error.
//!
//! Protocol versions 2025-06-18 and 2025-11-25 are offered: those with the `initialize`
//! handshake and sessions this server is tested with.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{json, Value as Json};
use tokio_util::sync::CancellationToken;

use super::kernel;
use super::App;

/// The MCP server over one `App`.
#[derive(Clone)]
pub struct FakMcp {
    app: Arc<App>,
}

fn schema(v: Json) -> Arc<JsonObject> {
    match v {
        Json::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

const TRACE: &str = "The trace (conversation) this belongs to; its taint is read and raised. A new one when absent.";

/// The tools, with their input schemas.
pub fn tools() -> Vec<Tool> {
    let args = json!({"description": "The call's arguments: an object, or a JSON string holding one",
        "anyOf": [{"type": "object"}, {"type": "string"}]});
    vec![
        Tool::new(
            "fak_adjudicate",
            "Decide a tool call before it runs: ALLOW, DENY (with a reason), or TRANSFORM (with repaired arguments). Nothing runs.",
            schema(json!({"type": "object", "properties": {
                "tool": {"type": "string", "description": "The tool's name, e.g. Bash"},
                "arguments": args,
                "trace_id": {"type": "string", "description": TRACE}},
                "required": ["tool"]})),
        ),
        Tool::new(
            "fak_admit",
            "Admit a tool result before a model reads it: ALLOW, or QUARANTINE (the text is paged out and a stub returned).",
            schema(json!({"type": "object", "properties": {
                "tool": {"type": "string", "description": "The tool that produced the result"},
                "result": {"description": "The result: a string, or a list of content blocks", "anyOf": [{"type": "string"}, {"type": "array"}]},
                "trace_id": {"type": "string", "description": TRACE},
                "tool_use_id": {"type": "string"}},
                "required": ["tool", "result"]})),
        ),
        Tool::new(
            "fak_syscall",
            "Decide a tool call, run it on fak's engine (fs: Read/Write/Edit/MultiEdit/Glob/Grep/LS in the workspace; shell: Bash), and admit its result.",
            schema(json!({"type": "object", "properties": {
                "tool": {"type": "string"},
                "arguments": args,
                "trace_id": {"type": "string", "description": TRACE}},
                "required": ["tool"]})),
        ),
        Tool::new(
            "fak_changes",
            "Files admitted calls wrote and witnesses revoked, after a cursor; waits up to `wait` seconds for one.",
            schema(json!({"type": "object", "properties": {
                "since": {"type": "integer", "minimum": 0, "description": "The last `seq` already read (0: from the start)"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
                "wait": {"type": "integer", "minimum": 0, "maximum": 60}}})),
        ),
        Tool::new(
            "fak_revoke",
            "Revoke a witness: later results with the same bytes are quarantined, and every trace that read it is raised to quarantined.",
            schema(json!({"type": "object", "properties": {
                "witness": {"type": "string", "description": "The witness id (w-...)"},
                "note": {"type": "string"}},
                "required": ["witness"]})),
        ),
    ]
}

impl ServerHandler for FakMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("fak", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_instructions(
                "fak is a tool-call firewall. Ask fak_adjudicate before running a tool call and fak_admit before \
                 reading a tool result; a DENY is an answer, not an error.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&[ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25])
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Json::Object(request.arguments.unwrap_or_default());
        let app = &self.app;
        let started = std::time::Instant::now();
        let r = match request.name.as_ref() {
            "fak_adjudicate" => kernel::adjudicate(app, &args).await,
            "fak_admit" => kernel::admit(app, &args).await,
            "fak_syscall" => kernel::syscall(app, &args).await,
            "fak_changes" => kernel::changes(app, &args).await,
            "fak_revoke" => kernel::revoke(app, &args).await,
            other => return Err(ErrorData::invalid_params(format!("fak has no tool `{other}`"), None)),
        };
        let status = r.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
        app.metrics.request("/mcp tools/call", status, started.elapsed());
        Ok(match r {
            Ok(answer) => CallToolResult::structured(answer),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("fak: {}", e.message))]),
        }
        .into())
    }
}

/// `/mcp` over Streamable HTTP, for the router.
pub fn service(app: Arc<App>, cancel: CancellationToken) -> StreamableHttpService<FakMcp, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(cancel);
    if app.config.require_key.is_some() {
        // Clients prove who they are with the key: the Host header check (against DNS
        // rebinding of an open loopback server) has nothing to add.
        config = config.disable_allowed_hosts();
    } else {
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        hosts.push(app.config.addr.ip().to_string());
        config = config.with_allowed_hosts(hosts);
    }
    StreamableHttpService::new(
        move || Ok(FakMcp { app: app.clone() }),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// `fak serve --stdio`: MCP on stdin and stdout until the client closes them. Logs go to stderr.
pub async fn serve_stdio(app: Arc<App>) -> Result<(), String> {
    let running = FakMcp { app: app.clone() }
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP over stdio could not start: {e}"))?;
    running.waiting().await.map_err(|e| format!("MCP over stdio: {e}"))?;
    app.journal.flush().await
}
