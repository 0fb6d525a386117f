//! `fak serve`: flags, environment, and the runtime the gateway runs on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::gateway::{self, App, Config};
use crate::load;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Provider {
    /// An upstream speaking the Anthropic Messages API: Anthropic, or a local server with
    /// `/v1/messages` (vLLM, llama-server). Requests pass through; fak decides in between.
    Anthropic,
    /// An OpenAI-compatible upstream (Ollama, llama-server, LM Studio, vLLM, SGLang):
    /// `/v1/messages` is translated to `/v1/chat/completions` and back.
    Openai,
}

/// Run the gateway Claude Code and the SDKs point at (`ANTHROPIC_BASE_URL`).
///
/// Every tool call the model proposes is decided before the client sees it; every tool result
/// the client sends is admitted before the model reads it.
#[derive(Args, Debug)]
#[command(after_help = "Environment:
  FAK_UPSTREAM_TIMEOUT_SECS  how long the upstream may stay silent, between any two bytes of
                             an answer (default 600); then the client gets an error
  FAK_UPSTREAM_CONNECT_SECS  how long connecting to the upstream may take (default 10)
  FAK_HEADER_TIMEOUT_SECS    how long a client may take to send a request's headers (default
                             30); then fak closes the connection
  FAK_BODY_LIMIT_BYTES       the largest request body accepted (default 33554432, 32 MiB)
  FAK_PING_SECS              a streaming client gets a ping after this much upstream silence
                             (default 10, at most 15)
  FAK_PROVIDER_EXTRA_BODY_JSON  a JSON object merged into every OpenAI-wire upstream request
                             (e.g. {\"top_k\": 20, \"chat_template_kwargs\": {\"enable_thinking\": false}})
  FAK_SHELL_TIMEOUT_SECS     how long the shell engine lets a command run (default 120)
  FAK_ENGINE_OUTPUT_BYTES    the most output a syscall engine keeps of a result (default 262144)
  FAK_ENGINE_FILE_BYTES      the largest file a shell engine command may write (default
                             1073741824, 1 GiB)
  FAK_WORKER_THREADS         threads answering requests (default: one fewer than the cores, at
                             least one)

Signals: SIGHUP reloads the policy (as POST /v1/fak/policy/reload); SIGINT and SIGTERM stop
the server after the requests in flight.

Examples:
  fak serve --provider anthropic --base-url https://api.anthropic.com
  fak serve --provider openai --base-url http://127.0.0.1:11434 --model qwen3-coder   # Ollama
  ANTHROPIC_BASE_URL=http://127.0.0.1:8080 claude")]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The upstream's wire.
    #[arg(long, value_enum, default_value_t = Provider::Anthropic)]
    pub provider: Provider,
    /// The upstream's base URL (a trailing `/v1` is dropped: fak adds the path).
    #[arg(long, default_value = "https://api.anthropic.com")]
    pub base_url: String,
    /// The model to report in `/healthz` and `/v1/models`; with `--provider openai`, the model
    /// every request asks the upstream for (a local server does not know `claude-...`).
    #[arg(long)]
    pub model: Option<String>,
    /// An environment variable holding the upstream's key; without it the client's own key
    /// headers are forwarded.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// An environment variable holding the key clients must send (`x-api-key` or
    /// `Authorization: Bearer`); every route but `/healthz` then needs it.
    #[arg(long)]
    pub require_key_env: Option<String>,
    /// A policy: `.fak` or `fak-policy/v1` JSON. Default: the built-in floor.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The workspace root paths are placed in. Default: the current directory.
    #[arg(long)]
    pub workspace: Option<String>,
    /// The most output tokens a request may ask the upstream for: a larger `max_tokens` is
    /// lowered to it (Claude Code asks for 32,000; a local model's window may be smaller).
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Where quarantined results, traces and witnesses are kept. Default: `$XDG_STATE_HOME/fak`.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Syscall engines `POST /v1/fak/syscall` may run: `fs` (file tools inside the workspace),
    /// `shell` (Bash in the workspace), both as `fs,shell`. Off unless named.
    #[arg(long, value_name = "LIST")]
    pub engine: Option<String>,
    /// Reload the policy when its file or a file it imports changes (checked every second); a
    /// policy with errors is refused and the old one keeps answering.
    #[arg(long)]
    pub watch: bool,
    /// Speak MCP on stdin and stdout instead of listening: the kernel's tools for an MCP client
    /// that starts fak itself.
    #[arg(long)]
    pub stdio: bool,
}

fn env_var(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("the environment variable {name} is not set")),
    }
}

fn env_num(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn config(a: &ServeArgs) -> Result<Config, String> {
    let extra_body = match std::env::var("FAK_PROVIDER_EXTRA_BODY_JSON") {
        Ok(v) if !v.trim().is_empty() => match serde_json::from_str::<serde_json::Value>(&v) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => return Err("FAK_PROVIDER_EXTRA_BODY_JSON must be a JSON object".into()),
        },
        _ => None,
    };
    // `--base-url http://localhost:11434/v1` means the same as without the `/v1`.
    let base_url = a.base_url.trim_end_matches('/').trim_end_matches("/v1").to_string();
    let workspace = match &a.workspace {
        Some(w) => w.clone(),
        None => {
            std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?.to_string_lossy().into_owned()
        }
    };
    Ok(Config {
        addr: a.addr,
        provider: match a.provider {
            Provider::Anthropic => gateway::Provider::Anthropic,
            Provider::Openai => gateway::Provider::OpenAi,
        },
        extra_body,
        base_url,
        model: a.model.clone(),
        upstream_key: a.api_key_env.as_deref().map(env_var).transpose()?,
        require_key: a.require_key_env.as_deref().map(env_var).transpose()?,
        workspace,
        home: std::env::var("HOME").unwrap_or_else(|_| "/".into()),
        state_dir: a.state_dir.clone().unwrap_or_else(crate::store::default_dir),
        upstream_timeout: Duration::from_secs(env_num("FAK_UPSTREAM_TIMEOUT_SECS", 600)?),
        connect_timeout: Duration::from_secs(env_num("FAK_UPSTREAM_CONNECT_SECS", 10)?),
        header_timeout: Duration::from_secs(env_num("FAK_HEADER_TIMEOUT_SECS", 30)?.max(1)),
        body_limit: usize::try_from(env_num("FAK_BODY_LIMIT_BYTES", 32 << 20)?).unwrap_or(usize::MAX),
        ping_interval: Duration::from_secs(env_num("FAK_PING_SECS", 10)?.clamp(1, 15)),
        max_tokens: a.max_tokens,
        policy: a.policy.clone(),
        watch: a.watch,
        engines: {
            let mut e = match &a.engine {
                Some(list) => crate::engine::Engines::parse(list)?,
                None => crate::engine::Engines::default(),
            };
            e.shell_timeout = Duration::from_secs(env_num("FAK_SHELL_TIMEOUT_SECS", 120)?.max(1));
            e.output_cap =
                usize::try_from(env_num("FAK_ENGINE_OUTPUT_BYTES", 256 * 1024)?.max(1024)).unwrap_or(usize::MAX);
            e.file_bytes = env_num("FAK_ENGINE_FILE_BYTES", 1 << 30)?.max(1);
            e
        },
    })
}

pub fn run(a: &ServeArgs) -> ExitCode {
    let config = match config(a) {
        Ok(c) => c,
        Err(e) => return super::fail(e),
    };
    let loaded = match &a.policy {
        Some(p) => load::from_path(p),
        None => load::builtin(),
    };
    let policy = match loaded.into_result() {
        Ok(p) => p,
        Err((sources, diags)) => {
            super::output::print_diags(&diags, &sources, super::ErrorFormat::Human);
            return super::fail("the policy has errors; not serving");
        }
    };
    // A server decides many calls: build every automaton now, not on the first request.
    policy.dag.warm();
    let app = match App::new(config, Arc::clone(&policy.dag)) {
        Ok(a) => Arc::new(a),
        Err(e) => return super::fail(e),
    };
    if a.policy.is_some() {
        app.watching(&policy.sources);
    }
    // Blocking work is the store's (one connection behind a mutex): two threads are all it can
    // use, and each idle one would keep its allocator heap (RSS, benches/README.md).
    // One core fewer than the machine has for request handling: the audit writer, the blocking
    // pool and the log have threads of their own doing real work, and on two cores a second
    // worker cost more in cross-thread wake-ups than it gave (benches/README.md, issue 7).
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let workers = match env_num("FAK_WORKER_THREADS", 0) {
        Ok(0) => cores.saturating_sub(1).max(1),
        Ok(n) => usize::try_from(n).unwrap_or(1).max(1),
        Err(e) => return super::fail(e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail(format!("cannot start the runtime: {e}")),
    };
    if a.stdio {
        return match rt.block_on(gateway::mcp::serve_stdio(app)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => super::fail(e),
        };
    }
    if a.watch && a.policy.is_none() {
        return super::fail("--watch needs --policy: the built-in floor is not a file");
    }
    match rt.block_on(gateway::serve(app)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(e),
    }
}
