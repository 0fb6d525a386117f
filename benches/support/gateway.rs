//! What the gateway benchmarks share: a zero-latency upstream answering both wires with a
//! canned two-tool turn, and fak's router in front of it, both in the calling process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use fak::gateway::{App, Config, Provider};
use serde_json::{json, Value as Json};

/// The canned answer: text and two tool calls, one the floor allows and one it refuses.
pub fn anthropic_answer() -> Json {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "tool_use",
    "stop_sequence": null, "usage": {"input_tokens": 900, "output_tokens": 60},
    "content": [
        {"type": "text", "text": "I'll check the tree and then clean the build directory."},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "git status && cargo test 2>&1 | tail -5"}},
        {"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {"command": "rm -rf ~/"}},
    ]})
}

pub fn openai_answer() -> Json {
    json!({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": "I'll check the tree and then clean the build directory.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\": \"git status && cargo test 2>&1 | tail -5\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\": \"rm -rf ~/\"}"}}]}}]})
}

/// A request shaped like a small Claude Code turn.
pub fn request() -> Json {
    json!({"model": "m", "max_tokens": 1024, "system": "You are a coding agent.",
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "Check the tree, then clean up."}]})
}

/// A zero-latency upstream answering both wires with the canned answers.
pub async fn upstream() -> SocketAddr {
    let a = anthropic_answer().to_string();
    let o = openai_answer().to_string();
    let app = axum::Router::new()
        .route(
            "/v1/messages",
            post(move || {
                let a = a.clone();
                async move { ([("content-type", "application/json")], a) }
            }),
        )
        .route(
            "/v1/chat/completions",
            post(move || {
                let o = o.clone();
                async move { ([("content-type", "application/json")], o) }
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// fak's router in front of `upstream`, on its own port, with a throw-away state directory.
pub async fn gateway(upstream: SocketAddr, provider: Provider, state: &std::path::Path) -> SocketAddr {
    let policy = fak::load::builtin().into_result().ok().unwrap();
    policy.dag.warm();
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        provider,
        extra_body: None,
        base_url: format!("http://{upstream}"),
        model: Some("m".into()),
        upstream_key: None,
        require_key: None,
        workspace: "/work/repo".into(),
        home: "/home/dev".into(),
        state_dir: state.to_path_buf(),
        upstream_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        header_timeout: Duration::from_secs(30),
        body_limit: 32 << 20,
        ping_interval: Duration::from_secs(10),
        max_tokens: None,
        policy: None,
        watch: false,
        engines: Default::default(),
    };
    let app = Arc::new(App::new(config, policy.dag).unwrap());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, fak::gateway::router(app)).await.unwrap() });
    addr
}
