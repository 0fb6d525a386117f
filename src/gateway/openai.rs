//! Anthropic Messages ⇄ OpenAI chat completions, for OpenAI-compatible upstreams (Ollama,
//! llama-server, LM Studio, vLLM, SGLang). No IO: a request is translated before it goes
//! upstream, a response (or a stream of chunks) after it comes back, and the result is a
//! Messages response (or Messages events) that `messages::Adjudicator` / `messages::Stream`
//! decide exactly as they decide an Anthropic upstream's.
//!
//! What maps to what (../shared/gateway-cases.md has the bugs other proxies shipped here):
//!
//! - `system` (a string or text blocks) and mid-conversation `role: "system"` messages →
//!   `system` messages in place;
//! - a user turn's `tool_result` blocks → one `tool` message each, in order, then the turn's
//!   text and images as a `user` message (B25); a result's images degrade to a text marker,
//!   `is_error` to an `Error:` prefix;
//! - an assistant turn's text blocks → `content` (joined), `tool_use` → `tool_calls` with the
//!   same ids, thinking as `reasoning_content` (B21: what the upstream reasoned is handed back,
//!   as DeepSeek requires and as Qwen's `preserve_thinking` template reads; an upstream that
//!   never reasons never produced a thinking block to hand back); redacted thinking dropped;
//! - tools → functions (server tools, which have no `input_schema`, are dropped); names over
//!   64 bytes are shortened reversibly (`Names`), and the response carries the original (B28);
//! - `tool_choice` auto/any/tool/none → auto/required/function/none; `stop_sequences` →
//!   `stop`; `max_tokens`, `temperature`, `top_p` as they are; the rest (thinking, metadata,
//!   betas' body fields) dropped, never half-forwarded (B36, B40);
//! - responses: text → a text block, `tool_calls` → `tool_use` blocks (arguments that are not
//!   JSON stay a string, which the adjudicator refuses as MALFORMED), finish reasons → stop
//!   reasons, usage → usage (cached prompt tokens as `cache_read_input_tokens`).

use rustc_hash::FxHashMap;
use serde_json::{json, Map, Value as Json};

use super::sse::Event;

/// The longest function name OpenAI-style servers accept.
const MAX_NAME: usize = 64;

/// Tool names as sent upstream and back: long names shortened, reversibly.
#[derive(Default, Debug, Clone)]
pub struct Names {
    back: FxHashMap<String, String>,
}

impl Names {
    fn upstream(&mut self, name: &str) -> String {
        if name.len() <= MAX_NAME {
            return name.to_string();
        }
        let digest = crate::store::Digest::of(name);
        let hash = digest.hex().get(..8).unwrap_or("0").to_string();
        let mut cut = MAX_NAME - 9;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let short = format!("{}_{hash}", name.get(..cut).unwrap_or(""));
        self.back.insert(short.clone(), name.to_string());
        short
    }

    /// The client's name for an upstream one.
    pub fn client(&self, upstream: &str) -> String {
        self.back.get(upstream).cloned().unwrap_or_else(|| upstream.to_string())
    }
}

fn text_of_blocks(content: &Json) -> String {
    match content {
        Json::String(s) => s.clone(),
        Json::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Json::as_str) {
                Some("text") => b.get("text").and_then(Json::as_str).map(str::to_string),
                Some("image") | Some("document") => Some("[image omitted: the upstream reads text only here]".into()),
                Some("tool_reference") => b.get("tool_name").and_then(Json::as_str).map(|t| format!("[tool {t}]")),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An image block as an OpenAI content part.
fn image_part(b: &Json) -> Option<Json> {
    let src = b.get("source")?;
    let url = match src.get("type").and_then(Json::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            src.get("media_type").and_then(Json::as_str).unwrap_or("image/png"),
            src.get("data").and_then(Json::as_str).unwrap_or("")
        ),
        Some("url") => src.get("url").and_then(Json::as_str)?.to_string(),
        _ => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Many chat templates accept system messages only at the start (and some servers reject two
/// user turns in a row): a system message after the conversation began becomes user text
/// (`[system] ...`), merged with a user turn next to it (B31).
fn fold_late_system(messages: Vec<Json>) -> Vec<Json> {
    let mut out: Vec<Json> = Vec::with_capacity(messages.len());
    let mut began = false;
    for mut m in messages {
        let role = m.get("role").and_then(Json::as_str).unwrap_or("").to_string();
        if role == "system" && began {
            let text = m.get("content").and_then(Json::as_str).unwrap_or("").to_string();
            m = json!({"role": "user", "content": format!("[system] {text}")});
        }
        began |= role != "system";
        let merge = match (out.last(), &m) {
            (Some(prev), cur) => {
                prev.get("role").and_then(Json::as_str) == Some("user")
                    && cur.get("role").and_then(Json::as_str) == Some("user")
                    && prev.get("content").is_some_and(Json::is_string)
                    && cur.get("content").is_some_and(Json::is_string)
            }
            _ => false,
        };
        if merge {
            let add = m.get("content").and_then(Json::as_str).unwrap_or("").to_string();
            if let Some(prev) = out.last_mut().and_then(|p| p.get_mut("content")) {
                let joined = format!("{}\n\n{add}", prev.as_str().unwrap_or(""));
                *prev = Json::from(joined);
            }
        } else {
            out.push(m);
        }
    }
    out
}

/// A Messages request as a chat completions request. `model` replaces the client's model name
/// when given (a local server does not know `claude-...`); `extra` is merged on top
/// (FAK_PROVIDER_EXTRA_BODY_JSON: `top_k`, `chat_template_kwargs`, ...).
pub fn request(body: &Json, model: Option<&str>, extra: Option<&Map<String, Json>>) -> Result<(Json, Names), String> {
    let mut names = Names::default();
    let mut out: Vec<Json> = Vec::new();
    match body.get("system") {
        None | Some(Json::Null) => {}
        Some(s) => {
            let t = text_of_blocks(s);
            if !t.is_empty() {
                out.push(json!({"role": "system", "content": t}));
            }
        }
    }
    let messages = body.get("messages").and_then(Json::as_array).ok_or("`messages` must be a list")?;
    for m in messages {
        let role = m.get("role").and_then(Json::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Json::Null);
        match role {
            "system" => out.push(json!({"role": "system", "content": text_of_blocks(content)})),
            "user" => match content {
                Json::String(s) => out.push(json!({"role": "user", "content": s})),
                Json::Array(blocks) => {
                    let mut parts: Vec<Json> = Vec::new();
                    for b in blocks {
                        match b.get("type").and_then(Json::as_str) {
                            Some("tool_result") => {
                                let mut text = text_of_blocks(b.get("content").unwrap_or(&Json::Null));
                                if b.get("is_error").and_then(Json::as_bool) == Some(true) {
                                    text = format!("Error: {text}");
                                }
                                out.push(json!({
                                    "role": "tool",
                                    "tool_call_id": b.get("tool_use_id").and_then(Json::as_str).unwrap_or(""),
                                    "content": text,
                                }));
                            }
                            Some("text") => parts.push(
                                json!({"type": "text", "text": b.get("text").and_then(Json::as_str).unwrap_or("")}),
                            ),
                            Some("image") => parts.extend(image_part(b)),
                            _ => {}
                        }
                    }
                    if parts.iter().all(|p| p.get("type").and_then(Json::as_str) == Some("text")) {
                        let text: Vec<&str> =
                            parts.iter().filter_map(|p| p.get("text").and_then(Json::as_str)).collect();
                        if !text.is_empty() {
                            out.push(json!({"role": "user", "content": text.join("\n")}));
                        }
                    } else {
                        out.push(json!({"role": "user", "content": parts}));
                    }
                }
                _ => return Err("a user message's content must be a string or a list of blocks".into()),
            },
            "assistant" => {
                let mut text = Vec::new();
                let mut reasoning = Vec::new();
                let mut calls = Vec::new();
                match content {
                    Json::String(s) => text.push(s.clone()),
                    Json::Array(blocks) => {
                        for b in blocks {
                            match b.get("type").and_then(Json::as_str) {
                                Some("text") => {
                                    text.push(b.get("text").and_then(Json::as_str).unwrap_or("").to_string())
                                }
                                Some("tool_use") => {
                                    let name = b.get("name").and_then(Json::as_str).unwrap_or("");
                                    calls.push(json!({
                                        "id": b.get("id").and_then(Json::as_str).unwrap_or(""),
                                        "type": "function",
                                        "function": {
                                            "name": names.upstream(name),
                                            "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                                        },
                                    }));
                                }
                                Some("thinking") => {
                                    if let Some(t) = b.get("thinking").and_then(Json::as_str).filter(|t| !t.is_empty())
                                    {
                                        reasoning.push(t.to_string());
                                    }
                                }
                                _ => {} // redacted_thinking: opaque, for Anthropic only
                            }
                        }
                    }
                    _ => {}
                }
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Json::Null } else { Json::from(text.join("\n")) }});
                if let Some(o) = msg.as_object_mut() {
                    if !calls.is_empty() {
                        o.insert("tool_calls".into(), Json::Array(calls));
                    }
                    if !reasoning.is_empty() {
                        o.insert("reasoning_content".into(), Json::from(reasoning.join("\n")));
                    }
                }
                out.push(msg);
            }
            other => return Err(format!("unknown message role `{other}`")),
        }
    }
    let out = fold_late_system(out);
    let mut req = Map::new();
    let model = model.map(str::to_string).or_else(|| body.get("model").and_then(Json::as_str).map(str::to_string));
    req.insert("model".into(), Json::from(model.unwrap_or_default()));
    req.insert("messages".into(), Json::Array(out));
    if let Some(tools) = body.get("tools").and_then(Json::as_array) {
        let fns: Vec<Json> = tools
            .iter()
            .filter_map(|t| {
                let schema = t.get("input_schema")?; // server tools have none
                let name = t.get("name").and_then(Json::as_str)?;
                let mut f = json!({"name": names.upstream(name), "parameters": sanitize_schema(schema)});
                if let (Some(d), Some(o)) = (t.get("description"), f.as_object_mut()) {
                    o.insert("description".into(), d.clone());
                }
                Some(json!({"type": "function", "function": f}))
            })
            .collect();
        if !fns.is_empty() {
            req.insert("tools".into(), Json::Array(fns));
        }
    }
    if let Some(tc) = body.get("tool_choice") {
        let choice = match tc.get("type").and_then(Json::as_str) {
            Some("any") => Some(json!("required")),
            Some("none") => Some(json!("none")),
            Some("tool") => tc
                .get("name")
                .and_then(Json::as_str)
                .map(|n| json!({"type": "function", "function": {"name": names.upstream(n)}})),
            Some("auto") => Some(json!("auto")),
            _ => None,
        };
        if let Some(c) = choice {
            req.insert("tool_choice".into(), c);
        }
        if tc.get("disable_parallel_tool_use").and_then(Json::as_bool) == Some(true) {
            req.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    for (from, to) in
        [("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"), ("stop_sequences", "stop")]
    {
        if let Some(v) = body.get(from) {
            req.insert(to.into(), v.clone());
        }
    }
    if body.get("stream").and_then(Json::as_bool) == Some(true) {
        req.insert("stream".into(), json!(true));
        req.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(extra) = extra {
        for (k, v) in extra {
            req.insert(k.clone(), v.clone());
        }
    }
    Ok((Json::Object(req), names))
}

/// A tool's input schema as OpenAI-style servers take it (B29): an object schema with
/// `properties` at its top, without the keywords some reject (`$schema`, `propertyNames`).
/// The client still validates the call against its own schema.
fn sanitize_schema(schema: &Json) -> Json {
    fn strip(v: &Json) -> Json {
        match v {
            Json::Object(m) => Json::Object(
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "propertyNames"))
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Json::Array(a) => Json::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    let mut out = match strip(schema) {
        Json::Object(m) => m,
        _ => Map::new(),
    };
    out.entry("type").or_insert_with(|| json!("object"));
    out.entry("properties").or_insert_with(|| json!({}));
    Json::Object(out)
}

fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// The stop reason of a message: `tool_use` when it has calls, but `max_tokens` when the
/// upstream ran out of room (its last call's arguments are likely cut short, B13).
fn final_stop(finish: Option<&str>, calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        _ if calls => "tool_use",
        f => stop_reason(f),
    }
}

fn usage(u: Option<&Json>) -> Json {
    let n = |k: &str| u.and_then(|u| u.get(k)).and_then(Json::as_u64).unwrap_or(0);
    let cached = u.and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens")).and_then(Json::as_u64).unwrap_or(0);
    json!({
        "input_tokens": n("prompt_tokens").saturating_sub(cached),
        "output_tokens": n("completion_tokens"),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

/// A tool call's arguments as the input of a tool_use: the JSON object they hold, or the raw
/// string when they are not one (which the adjudicator refuses as MALFORMED).
fn input_of(arguments: &str) -> Json {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Json>(arguments) {
        Ok(v @ Json::Object(_)) => v,
        _ => Json::from(arguments),
    }
}

/// A message's or delta's reasoning text, in whichever field the server puts it
/// (`reasoning_content`: DeepSeek, vLLM, llama-server; `reasoning`: Ollama, OpenRouter) (B20).
fn reasoning_of(v: &Json) -> Option<&str> {
    ["reasoning_content", "reasoning"].iter().find_map(|k| v.get(*k).and_then(Json::as_str)).filter(|r| !r.is_empty())
}

/// The error when a model's text claims tool calls of which none can be read.
pub const UNREADABLE_CALLS: &str =
    "the model wrote tool calls as text and none of them can be read; fak does not pass them on as text";

/// A chat completion as a Messages response. `tools` are the tools the request declared: with
/// some, calls the model wrote as text are lifted (`lift`).
pub fn response(body: &Json, names: &Names, model: &str, tools: &[String]) -> Result<Json, String> {
    let choice = body.pointer("/choices/0").ok_or("the upstream's answer has no choices")?;
    let msg = choice.get("message").ok_or("the upstream's choice has no message")?;
    let mut content = Vec::new();
    if let Some(r) = reasoning_of(msg) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    let has_native = msg.get("tool_calls").and_then(Json::as_array).is_some_and(|c| !c.is_empty());
    if let Some(t) = msg.get("content").and_then(Json::as_str).filter(|t| !t.is_empty()) {
        if !has_native && !tools.is_empty() {
            let l = super::lift::lift(t, tools);
            if l.claimed && l.calls.is_empty() {
                return Err(UNREADABLE_CALLS.into());
            }
            if !l.text.is_empty() {
                content.push(json!({"type": "text", "text": l.text}));
            }
            for (k, (name, input)) in l.calls.into_iter().enumerate() {
                content.push(
                    json!({"type": "tool_use", "id": format!("toolu_fak_text_{k}"), "name": name, "input": input}),
                );
            }
        } else {
            content.push(json!({"type": "text", "text": t}));
        }
    }
    for c in msg.get("tool_calls").and_then(Json::as_array).into_iter().flatten() {
        let name = c.pointer("/function/name").and_then(Json::as_str).unwrap_or("");
        let args = c.pointer("/function/arguments").and_then(Json::as_str).unwrap_or("");
        content.push(json!({
            "type": "tool_use",
            "id": c.get("id").and_then(Json::as_str).map_or_else(|| format!("toolu_fak_{}", content.len()), str::to_string),
            "name": names.client(name),
            "input": input_of(args),
        }));
    }
    let has_calls = content.iter().any(|b| b.get("type").and_then(Json::as_str) == Some("tool_use"));
    let stop = final_stop(choice.get("finish_reason").and_then(Json::as_str), has_calls);
    Ok(json!({
        "id": format!("msg_{}", body.get("id").and_then(Json::as_str).unwrap_or("fak")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage(body.get("usage")),
    }))
}

/// Where a streamed tool call goes: its Messages block index.
struct ToolSlot {
    index: u64,
    /// The id the upstream gave the call, when it gave one.
    id: Option<String>,
}

/// Chat completion chunks → Messages events, one chunk at a time.
pub struct StreamTranslator {
    names: Names,
    model: String,
    started: bool,
    next: u64,
    text: Option<u64>,
    /// The open thinking block (reasoning deltas), closed with an empty `signature_delta`.
    thinking: Option<u64>,
    tools: FxHashMap<u64, ToolSlot>,
    /// Calls already closed because a new id took their index.
    retired: usize,
    open: Vec<u64>,
    /// What `message_start` reports as input tokens before the upstream says (B22).
    input_estimate: u64,
    /// The declared tools, when calls written as text are lifted; then text from a possible
    /// marker on is held until the end (`lift::hold_from`).
    lift_tools: Vec<String>,
    held: Option<String>,
    /// Inside a code fence already let go as prose: text streams until its closing fence.
    plain_fence: bool,
    finish: Option<String>,
    usage: Option<Json>,
    ended: bool,
}

fn ev(data: Json) -> Event {
    let name = data.get("type").and_then(Json::as_str).unwrap_or("").to_string();
    Event::new(name, data.to_string())
}

impl StreamTranslator {
    /// Lifts the calls a model writes as text, for a request that declared `tools`.
    pub fn with_lifting(mut self, tools: Vec<String>) -> StreamTranslator {
        self.lift_tools = tools;
        self
    }

    /// `message_start` reports `tokens` as the input until the upstream's usage arrives.
    pub fn with_input_estimate(mut self, tokens: u64) -> StreamTranslator {
        self.input_estimate = tokens;
        self
    }

    pub fn new(names: Names, model: String) -> StreamTranslator {
        StreamTranslator {
            names,
            model,
            started: false,
            next: 0,
            text: None,
            thinking: None,
            tools: FxHashMap::default(),
            retired: 0,
            open: Vec::new(),
            input_estimate: 0,
            lift_tools: Vec::new(),
            held: None,
            plain_fence: false,
            finish: None,
            usage: None,
            ended: false,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(ev(json!({"type": "message_start", "message": {
                "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.input_estimate, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            }})));
        }
    }

    fn close_all(&mut self, out: &mut Vec<Event>) {
        self.close_thinking(out);
        for i in std::mem::take(&mut self.open) {
            out.push(ev(json!({"type": "content_block_stop", "index": i})));
        }
        self.text = None;
    }

    /// Ends the thinking block: a signature (empty: an OpenAI-wire upstream has none; fak
    /// never forges one) and its stop, as clients expect before the next block (B20).
    fn close_thinking(&mut self, out: &mut Vec<Event>) {
        if let Some(i) = self.thinking.take() {
            out.push(ev(json!({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": ""}})));
            out.push(ev(json!({"type": "content_block_stop", "index": i})));
            self.open.retain(|o| *o != i);
        }
    }

    fn thinking_delta(&mut self, r: &str, out: &mut Vec<Event>) {
        if let Some(t) = self.text.take() {
            self.open.retain(|i| *i != t);
            out.push(ev(json!({"type": "content_block_stop", "index": t})));
        }
        let i = match self.thinking {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next += 1;
                self.thinking = Some(i);
                self.open.push(i);
                out.push(ev(json!({"type": "content_block_start", "index": i,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
                i
            }
        };
        out.push(ev(
            json!({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": r}}),
        ));
    }

    /// The events one upstream `data:` line gives. `[DONE]` ends the message.
    pub fn feed(&mut self, data: &str) -> Result<Vec<Event>, String> {
        let mut out = Vec::new();
        if self.ended {
            return Ok(out);
        }
        if data.trim() == "[DONE]" {
            return Ok(self.end());
        }
        let chunk: Json = serde_json::from_str(data).map_err(|e| format!("an upstream chunk is not JSON: {e}"))?;
        if let Some(err) = chunk.get("error") {
            let msg = err.get("message").and_then(Json::as_str).unwrap_or("the upstream failed");
            return Err(format!("the upstream failed mid-stream: {msg}"));
        }
        let id = chunk.get("id").and_then(Json::as_str).unwrap_or("fak").to_string();
        self.start(&id, &mut out);
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else { return Ok(out) };
        let delta = choice.get("delta").cloned().unwrap_or(Json::Null);
        if let Some(r) = reasoning_of(&delta) {
            self.thinking_delta(r, &mut out);
        }
        let has_content = delta.get("content").and_then(Json::as_str).is_some_and(|t| !t.is_empty());
        if has_content || delta.get("tool_calls").is_some() {
            self.close_thinking(&mut out);
        }
        if let Some(t) = delta.get("content").and_then(Json::as_str).filter(|t| !t.is_empty()) {
            if self.lift_tools.is_empty() {
                self.text_delta(t, &mut out);
            } else {
                self.push_text(t, &mut out);
            }
        }
        for (pos, c) in delta.get("tool_calls").and_then(Json::as_array).into_iter().flatten().enumerate() {
            // Ollama omits `index`, or says 0 for every call: a missing index is the call's
            // position, and a new id on an index already used starts a new call (B16).
            let k = c.get("index").and_then(Json::as_u64).unwrap_or(pos as u64);
            let new_id = c.get("id").and_then(Json::as_str).filter(|i| !i.is_empty());
            if let (Some(slot), Some(id)) = (self.tools.get(&k), new_id) {
                if slot.id.as_deref().is_some_and(|old| old != id) {
                    let old = self.tools.remove(&k).map(|s| s.index);
                    if let Some(i) = old {
                        self.open.retain(|o| *o != i);
                        out.push(ev(json!({"type": "content_block_stop", "index": i})));
                    }
                    self.retired += 1;
                }
            }
            if !self.tools.contains_key(&k) {
                // A text block before a call is finished: the client's indexes stay in order.
                if let Some(t) = self.text.take() {
                    self.open.retain(|i| *i != t);
                    out.push(ev(json!({"type": "content_block_stop", "index": t})));
                }
                let i = self.next;
                self.next += 1;
                self.open.push(i);
                let name = c.pointer("/function/name").and_then(Json::as_str).unwrap_or("");
                let id = c.get("id").and_then(Json::as_str).map_or_else(|| format!("toolu_fak_{i}"), str::to_string);
                out.push(ev(json!({"type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": id, "name": self.names.client(name), "input": {}}})));
                self.tools.insert(k, ToolSlot { index: i, id: new_id.map(str::to_string) });
            }
            if let (Some(slot), Some(args)) =
                (self.tools.get(&k), c.pointer("/function/arguments").and_then(Json::as_str).filter(|a| !a.is_empty()))
            {
                out.push(ev(json!({"type": "content_block_delta", "index": slot.index,
                    "delta": {"type": "input_json_delta", "partial_json": args}})));
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Json::as_str) {
            self.finish = Some(f.to_string());
            self.release_held(&mut out)?;
            self.close_all(&mut out);
        }
        Ok(out)
    }

    /// Text of a request with tools: streamed, but held from where a written call may start
    /// (`lift::hold_from`) until it is known to be one or not. A held `<tool_call>` or
    /// `[TOOL_CALLS]` waits for the end of the turn; a code fence is let go as soon as its
    /// first line shows it is not JSON (then the block streams up to its closing fence), and a
    /// marker's beginning as soon as the next characters differ.
    fn push_text(&mut self, t: &str, out: &mut Vec<Event>) {
        let mut rest = t.to_string();
        loop {
            if let Some(mut h) = self.held.take() {
                h.push_str(&rest);
                match super::lift::held_verdict(&h) {
                    super::lift::Held::Wait => self.held = Some(h),
                    super::lift::Held::Plain(n) => {
                        // Not a call: out as text, and a plain fence streams to its close.
                        self.text_delta(h.get(..n).unwrap_or(""), out);
                        self.plain_fence = h.get(..n).is_some_and(|p| p.starts_with("```"));
                        rest = h.get(n..).unwrap_or("").to_string();
                        continue;
                    }
                }
                return;
            }
            if self.plain_fence {
                match rest.find("```") {
                    Some(i) => {
                        self.text_delta(rest.get(..i + 3).unwrap_or(""), out);
                        self.plain_fence = false;
                        rest = rest.get(i + 3..).unwrap_or("").to_string();
                        continue;
                    }
                    None => {
                        self.text_delta(&rest, out);
                        return;
                    }
                }
            }
            match super::lift::hold_from(&rest) {
                None => {
                    self.text_delta(&rest, out);
                    return;
                }
                Some(at) => {
                    self.text_delta(rest.get(..at).unwrap_or(""), out);
                    self.held = Some(String::new());
                    rest = rest.get(at..).unwrap_or("").to_string();
                }
            }
        }
    }

    fn text_delta(&mut self, t: &str, out: &mut Vec<Event>) {
        if t.is_empty() {
            return;
        }
        let i = match self.text {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next += 1;
                self.text = Some(i);
                self.open.push(i);
                out.push(ev(
                    json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                ));
                i
            }
        };
        out.push(ev(json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}})));
    }

    /// The held text, lifted: its prose as text, its calls as tool_use blocks; an error when it
    /// claims calls none of which can be read.
    fn release_held(&mut self, out: &mut Vec<Event>) -> Result<(), String> {
        let Some(held) = self.held.take() else { return Ok(()) };
        let l = super::lift::lift(&held, &self.lift_tools);
        if l.claimed && l.calls.is_empty() {
            return Err(UNREADABLE_CALLS.into());
        }
        if l.calls.is_empty() {
            // Nothing was a call: the text as it came.
            self.text_delta(&held, out);
            return Ok(());
        }
        self.text_delta(&l.text, out);
        for (name, input) in l.calls {
            if let Some(t) = self.text.take() {
                self.open.retain(|i| *i != t);
                out.push(ev(json!({"type": "content_block_stop", "index": t})));
            }
            let i = self.next;
            self.next += 1;
            let id = format!("toolu_fak_text_{i}");
            out.push(ev(json!({"type": "content_block_start", "index": i,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            out.push(ev(json!({"type": "content_block_delta", "index": i,
                "delta": {"type": "input_json_delta", "partial_json": input.to_string()}})));
            out.push(ev(json!({"type": "content_block_stop", "index": i})));
            self.retired += 1;
        }
        Ok(())
    }

    /// The message's end: its blocks closed, the stop reason, the usage, `message_stop` (or an
    /// `error` event when held text claimed calls that cannot be read).
    pub fn end(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.ended = true;
        self.start("fak", &mut out);
        if let Err(e) = self.release_held(&mut out) {
            out.push(ev(json!({"type": "error", "error": {"type": "api_error", "message": format!("fak: {e}")}})));
            return out;
        }
        self.close_all(&mut out);
        let calls = !self.tools.is_empty() || self.retired > 0;
        let stop = final_stop(self.finish.as_deref(), calls);
        out.push(ev(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": usage(self.usage.as_ref())})));
        out.push(ev(json!({"type": "message_stop"})));
        out
    }

    /// Whether the upstream said the message is over (`finish_reason` or `[DONE]`).
    pub fn finished(&self) -> bool {
        self.finish.is_some() || self.ended
    }
}

/// An OpenAI-style upstream error as the Anthropic error type for its status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The message of an OpenAI-style error body (`{"error": {"message"}}`, `{"detail"}`, text).
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Json>(body) {
        Ok(v) => v
            .pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("detail"))
            .or_else(|| v.get("message"))
            .map_or_else(
                || text.chars().take(500).collect(),
                |m| m.as_str().map_or_else(|| m.to_string(), str::to_string),
            ),
        Err(_) => text.chars().take(500).collect(),
    }
}

/// When an OpenAI-wire upstream's error says the request does not fit the model's window
/// (each server words it its own way), the message Anthropic gives for the same, which Claude
/// Code reads: `input length and `max_tokens` exceed context limit: I + M > L` when the prompt
/// fits and only the output it asked room for does not (Claude Code retries with a smaller
/// `max_tokens`), else `prompt is too long: N tokens > L maximum` (Claude Code compacts the
/// conversation). The numbers are there when the upstream gave them. `None` for any other
/// error.
pub fn context_overflow(body: &[u8]) -> Option<String> {
    let message = error_message(body);
    let lower = message.to_ascii_lowercase();
    let overflow = [
        "context length",
        "context_length_exceeded",
        "context size",
        "context window",
        "exceed_context_size",
        "prompt is too long",
        "too many tokens",
        "input is too long",
    ]
    .iter()
    .any(|k| lower.contains(k));
    if !overflow {
        return None;
    }
    let v: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    let field = |k: &str| v.pointer(&format!("/error/{k}")).and_then(Json::as_u64);
    // The first number after `phrase` in the message.
    let after = |phrase: &str| first_number(lower.get(lower.find(phrase)? + phrase.len()..)?);
    // llama-server sends the numbers as fields. vLLM and OpenAI write them into the message:
    // "maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in
    // the messages, 1000 in the completion)", or "... your messages resulted in 9000 tokens".
    let limit = field("n_ctx").or_else(|| after("maximum context length is"));
    let input = field("n_prompt_tokens").or_else(|| after("tokens ("));
    let output = after(" in the messages,");
    let total = after("you requested").or_else(|| after("resulted in")).or(input);
    Some(match (input, output, limit) {
        (Some(i), Some(m), Some(l)) if i < l => format!(
            "input length and `max_tokens` exceed context limit: {i} + {m} > {l}, decrease input length or `max_tokens` and try again (the upstream said: {message})"
        ),
        _ => match (total, limit) {
            (Some(n), Some(l)) => format!("prompt is too long: {n} tokens > {l} maximum (the upstream said: {message})"),
            _ => format!(
                "prompt is too long: the conversation does not fit the model's context window (the upstream said: {message})"
            ),
        },
    })
}

/// The first run of digits in `s`, as a number.
fn first_number(s: &str) -> Option<u64> {
    let digits: String = s.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn a_claude_code_conversation_translates() {
        let body = json!({
            "model": "claude-opus-4-8", "max_tokens": 32000, "stream": true,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc"}, {"type": "text", "text": "You are Claude Code."}],
            "thinking": {"type": "adaptive"}, "metadata": {"user_id": "u"}, "context_management": {},
            "tools": [
                {"name": "Bash", "description": "Run", "input_schema": {"type": "object"}},
                {"name": format!("mcp__{}__query", "a".repeat(70)), "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search"},
            ],
            "tool_choice": {"type": "any"},
            "messages": [
                {"role": "user", "content": "list it"},
                {"role": "system", "content": "mid-conversation note"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Listing."},
                    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}},
                    {"type": "tool_use", "id": "t2", "name": format!("mcp__{}__query", "a".repeat(70)), "input": {}},
                    {"type": "text", "text": "And more."},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "a\nb"},
                    {"type": "tool_result", "tool_use_id": "t2", "is_error": true, "content": [{"type": "text", "text": "boom"}]},
                    {"type": "text", "text": "now what?"},
                ]},
            ],
        });
        let (req, names) = request(&body, Some("qwen3"), None).unwrap();
        assert_eq!(req["model"], "qwen3");
        assert_eq!(req["stream_options"], json!({"include_usage": true}));
        assert_eq!(req["tool_choice"], "required");
        assert!(
            req.get("thinking").is_none() && req.get("metadata").is_none() && req.get("context_management").is_none()
        );
        let roles: Vec<&str> =
            req["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "tool", "user"]);
        assert_eq!(req["messages"][1]["content"], "list it\n\n[system] mid-conversation note", "B31: folded");
        assert_eq!(req["messages"][0]["content"], "x-anthropic-billing-header: cc\nYou are Claude Code.");
        let a = &req["messages"][2];
        assert_eq!(a["content"], "Listing.\nAnd more.");
        assert_eq!(a["reasoning_content"], "hmm", "B21: the reasoning goes back");
        assert!(req["messages"][1].get("reasoning_content").is_none());
        assert_eq!(a["tool_calls"][0]["function"]["arguments"], "{\"command\":\"ls\"}");
        let short = a["tool_calls"][1]["function"]["name"].as_str().unwrap();
        assert!(short.len() <= 64, "{short}");
        assert_eq!(names.client(short), format!("mcp__{}__query", "a".repeat(70)));
        assert_eq!(req["messages"][4]["content"], "Error: boom");
        assert_eq!(req["messages"][5]["content"], "now what?");
        let tools: Vec<&str> =
            req["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(tools.len(), 2, "the server tool is dropped: {tools:?}");
        assert_eq!(tools[1], short);
    }

    #[test]
    fn context_overflow_reads_every_servers_wording() {
        let llama = br#"{"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 40321, "n_ctx": 32768}}"#;
        let m = context_overflow(llama).unwrap();
        assert!(m.starts_with("prompt is too long: 40321 tokens > 32768 maximum"), "{m}");
        // The prompt fits; the output it asked room for does not: Claude Code lowers max_tokens.
        let vllm = br#"{"object": "error", "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.", "type": "BadRequestError", "code": 400}"#;
        let m = context_overflow(vllm).unwrap();
        assert!(m.starts_with("input length and `max_tokens` exceed context limit: 8000 + 1000 > 8192, "), "{m}");
        let vllm_prompt = br#"{"object": "error", "message": "This model's maximum context length is 8192 tokens. However, you requested 12000 tokens (9000 in the messages, 3000 in the completion).", "code": 400}"#;
        let m = context_overflow(vllm_prompt).unwrap();
        assert!(m.starts_with("prompt is too long: 12000 tokens > 8192 maximum"), "{m}");
        let openai = br#"{"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "code": "context_length_exceeded"}}"#;
        let m = context_overflow(openai).unwrap();
        assert!(m.starts_with("prompt is too long: 130512 tokens > 128000 maximum"), "{m}");
        let words_only = br#"{"error": "the input is too long for this model"}"#;
        assert!(context_overflow(words_only).unwrap().starts_with("prompt is too long: the conversation does not fit"));
        assert_eq!(context_overflow(br#"{"error": {"message": "model not found"}}"#), None);
        assert_eq!(context_overflow(b"upstream exploded"), None);
    }

    #[test]
    fn schemas_are_made_acceptable() {
        let body = json!({"messages": [], "tools": [
            {"name": "A", "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"m": {"type": "object", "propertyNames": {"pattern": "^x"}, "additionalProperties": {"type": "string"}}}}},
            {"name": "B", "input_schema": {}},
        ]});
        let (req, _) = request(&body, None, None).unwrap();
        let a = &req["tools"][0]["function"]["parameters"];
        assert!(a.get("$schema").is_none() && a["properties"]["m"].get("propertyNames").is_none());
        assert_eq!(a["properties"]["m"]["additionalProperties"], json!({"type": "string"}));
        assert_eq!(req["tools"][1]["function"]["parameters"], json!({"type": "object", "properties": {}}));
    }

    #[test]
    fn a_completion_becomes_a_message() {
        let (_, names) =
            request(&json!({"messages": [], "tools": [{"name": "Bash", "input_schema": {}}]}), None, None).unwrap();
        let body = json!({"id": "c1", "choices": [{"finish_reason": "tool_calls", "message": {"content": "Sure.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\": \"ls\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\": "}},
        ]}}], "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 40}}});
        let m = response(&body, &names, "claude-x", &[]).unwrap();
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"][1],
            json!({"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}})
        );
        assert_eq!(m["content"][2]["input"], "{\"command\": ", "not JSON: kept as a string for the adjudicator");
        assert_eq!(m["usage"]["input_tokens"], 60);
        assert_eq!(m["usage"]["cache_read_input_tokens"], 40);
        let stop =
            response(&json!({"choices": [{"finish_reason": "length", "message": {"content": "…"}}]}), &names, "m", &[])
                .unwrap();
        assert_eq!(stop["stop_reason"], "max_tokens");
        assert!(response(&json!({"choices": []}), &names, "m", &[]).is_err());
    }

    #[test]
    fn chunks_become_events_with_contiguous_indexes() {
        let mut t = StreamTranslator::new(Names::default(), "m".into());
        let chunks = [
            json!({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "Let me "}}]}),
            json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "look."}}]}),
            json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "Bash", "arguments": ""}}]}}]}),
            json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"command\":"}}]}}]}),
            json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"ls\"}"}}]}}]}),
            json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}),
        ];
        let mut events = Vec::new();
        for c in &chunks {
            events.extend(t.feed(&c.to_string()).unwrap());
        }
        events.extend(t.feed("[DONE]").unwrap());
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let data: Vec<Json> = events.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
        assert_eq!(data[5]["index"], 1);
        assert_eq!(data[5]["content_block"]["id"], "call_a");
        assert_eq!(data[9]["delta"]["stop_reason"], "tool_use");
        assert_eq!(data[9]["usage"]["output_tokens"], 3);
        // The translated events adjudicate like an Anthropic upstream's.
        let policy = crate::load::builtin().into_result().ok().unwrap();
        let adj = super::super::messages::Adjudicator::new(
            policy.dag,
            crate::eval::TraceState::with_workspace("/w"),
            "t".into(),
        );
        let mut s = super::super::messages::Stream::new(adj);
        let out: Vec<Event> = events.into_iter().flat_map(|e| s.feed(e)).collect();
        assert!(s.done() && out.iter().any(|e| e.data.contains("\"partial_json\":\"{\\\"command\\\":\\\"ls\\\"}\"")));
    }

    fn events_of(chunks: &[Json], done: bool) -> Vec<Json> {
        let mut t = StreamTranslator::new(Names::default(), "m".into()).with_input_estimate(77);
        let mut events = Vec::new();
        for c in chunks {
            events.extend(t.feed(&c.to_string()).unwrap());
        }
        if done {
            events.extend(t.feed("[DONE]").unwrap());
        } else if t.finished() {
            events.extend(t.end());
        }
        // Through the adjudicator, as the gateway sends them.
        let policy = crate::load::builtin().into_result().ok().unwrap();
        let adj = super::super::messages::Adjudicator::new(
            policy.dag,
            crate::eval::TraceState::with_workspace("/w"),
            "t".into(),
        );
        let mut s = super::super::messages::Stream::new(adj);
        let mut out: Vec<Event> = events.into_iter().flat_map(|e| s.feed(e)).collect();
        out.extend(s.finish());
        let out: Vec<Json> = out.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
        check_order(&out);
        out
    }

    /// B02–B05: one message_start first, one message_stop last (or an error), every delta and
    /// stop on a started, open block, indexes 0..n each started once.
    fn check_order(out: &[Json]) {
        let types: Vec<&str> = out.iter().map(|d| d["type"].as_str().unwrap()).collect();
        assert_eq!(types.first(), Some(&"message_start"), "{types:?}");
        let last = *types.last().unwrap();
        assert!(last == "message_stop" || last == "error", "{types:?}");
        assert_eq!(types.iter().filter(|t| **t == "message_start").count(), 1);
        let mut open = std::collections::BTreeSet::new();
        let mut started = 0u64;
        for d in out {
            let i = d["index"].as_u64();
            match d["type"].as_str().unwrap() {
                "content_block_start" => {
                    assert_eq!(i, Some(started), "contiguous indexes");
                    started += 1;
                    assert!(open.insert(i.unwrap()));
                }
                "content_block_delta" => assert!(open.contains(&i.unwrap()), "delta on an open block"),
                "content_block_stop" => assert!(open.remove(&i.unwrap()), "stop on an open block"),
                "message_delta" => assert!(open.is_empty(), "blocks closed before the end"),
                _ => {}
            }
        }
    }

    fn call_chunk(index: Option<u64>, id: Option<&str>, name: Option<&str>, args: &str) -> Json {
        let mut c = json!({"function": {"arguments": args}});
        if let Some(i) = index {
            c["index"] = json!(i);
        }
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(n) = name {
            c["function"]["name"] = json!(n);
        }
        json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [c]}}]})
    }

    fn finish(reason: &str) -> Json {
        json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    }

    fn calls_of(out: &[Json]) -> Vec<(String, Json)> {
        let mut calls: Vec<(u64, String, String)> = Vec::new();
        for d in out {
            if d["type"] == "content_block_start" && d["content_block"]["type"] == "tool_use" {
                calls.push((
                    d["index"].as_u64().unwrap(),
                    d["content_block"]["id"].as_str().unwrap().into(),
                    String::new(),
                ));
            }
            if d["delta"]["type"] == "input_json_delta" {
                let c = calls.iter_mut().find(|c| Some(c.0) == d["index"].as_u64()).unwrap();
                c.2.push_str(d["delta"]["partial_json"].as_str().unwrap());
            }
        }
        calls.into_iter().map(|(_, id, j)| (id, serde_json::from_str(&j).unwrap())).collect()
    }

    #[test]
    fn interleaved_parallel_calls_stay_apart() {
        // B15: fragments of two calls interleaved, 1 character at a time (B13).
        let a = r#"{"command": "ls -la"}"#;
        let b = r#"{"file_path": "README.md"}"#;
        let mut chunks = vec![
            call_chunk(Some(0), Some("call_a"), Some("Bash"), ""),
            call_chunk(Some(1), Some("call_b"), Some("Read"), ""),
        ];
        for k in 0..a.len().max(b.len()) {
            for (i, s) in [(0, a), (1, b)] {
                if let Some(ch) = s.get(k..k + 1) {
                    chunks.push(call_chunk(Some(i), None, None, ch));
                }
            }
        }
        chunks.push(finish("tool_calls"));
        let out = events_of(&chunks, true);
        assert_eq!(
            calls_of(&out),
            [
                ("call_a".to_string(), json!({"command": "ls -la"})),
                ("call_b".to_string(), json!({"file_path": "README.md"}))
            ]
        );
        assert_eq!(out[0]["message"]["usage"]["input_tokens"], 77, "B22: an estimate before the usage");
    }

    #[test]
    fn ollama_index_zero_for_every_call_and_no_index() {
        // B16: every call at index 0, told apart by their ids; then calls with no index.
        let chunks = [
            call_chunk(Some(0), Some("call_1"), Some("Bash"), r#"{"command": "pwd"}"#),
            call_chunk(Some(0), Some("call_2"), Some("Bash"), r#"{"command": "date"}"#),
            finish("tool_calls"),
        ];
        let out = events_of(&chunks, true);
        assert_eq!(
            calls_of(&out),
            [("call_1".into(), json!({"command": "pwd"})), ("call_2".into(), json!({"command": "date"}))]
        );
        let no_index = json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"id": "c1", "function": {"name": "Bash", "arguments": "{\"command\": \"ls\"}"}},
            {"id": "c2", "function": {"name": "Bash", "arguments": "{\"command\": \"id\"}"}}]}, "finish_reason": "tool_calls"}]});
        assert_eq!(calls_of(&events_of(&[no_index], false)).len(), 2);
    }

    #[test]
    fn one_chunk_with_everything_and_empty_arguments() {
        // B17 and B19: text, a zero-argument call, finish and usage in one chunk, no [DONE].
        let chunk = json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "Here.", "tool_calls": [
            {"index": 0, "id": "c0", "type": "function", "function": {"name": "TodoRead", "arguments": ""}}]},
            "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}});
        let out = events_of(&[chunk], false);
        let delta = out.iter().find(|d| d["type"] == "message_delta").unwrap();
        assert_eq!(delta["usage"]["output_tokens"], 2);
        assert_eq!(out.last().unwrap()["type"], "message_stop");
        let started: Vec<&str> = out
            .iter()
            .filter(|d| d["type"] == "content_block_start")
            .map(|d| d["content_block"]["type"].as_str().unwrap())
            .collect();
        assert_eq!(started[0], "text");
    }

    #[test]
    fn truncated_arguments_are_not_executable() {
        // B13: finish_reason length cuts the arguments: max_tokens, and no call goes out.
        let chunks = [call_chunk(Some(0), Some("c"), Some("Bash"), r#"{"command": "echo hel"#), finish("length")];
        let out = events_of(&chunks, true);
        assert!(calls_of(&out).is_empty());
        let delta = out.iter().find(|d| d["type"] == "message_delta").unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    }

    #[test]
    fn a_long_command_with_escapes_round_trips() {
        // B14: a 4 KiB command with quotes, backslashes, pipes and unicode, in 7-byte pieces.
        let mut cmd = String::new();
        while cmd.len() < 4096 {
            cmd.push_str(r#"grep -n "a"b" 'c\d' | sed 's/x/ü→/' && echo "$(date)" ; "#);
        }
        let args = json!({"command": cmd}).to_string();
        let mut chunks = vec![call_chunk(Some(0), Some("c"), Some("Bash"), "")];
        let bytes: Vec<char> = args.chars().collect();
        for piece in bytes.chunks(7) {
            chunks.push(call_chunk(Some(0), None, None, &piece.iter().collect::<String>()));
        }
        chunks.push(finish("tool_calls"));
        // The floor may refuse or allow it; either way the input it saw is byte-exact.
        let mut t = StreamTranslator::new(Names::default(), "m".into());
        let mut joined = String::new();
        for c in &chunks {
            for e in t.feed(&c.to_string()).unwrap() {
                let d: Json = serde_json::from_str(&e.data).unwrap();
                if let Some(p) = d["delta"]["partial_json"].as_str() {
                    joined.push_str(p);
                }
            }
        }
        assert_eq!(serde_json::from_str::<Json>(&joined).unwrap()["command"], cmd);
        events_of(&chunks, true);
    }

    #[test]
    fn a_mid_stream_error_ends_the_stream_in_its_words() {
        // B09: an error chunk after the start is an `error` event with the upstream's wording,
        // never a success; the call in flight is not sent.
        let mut t = StreamTranslator::new(Names::default(), "m".into());
        let policy = crate::load::builtin().into_result().ok().unwrap();
        let adj = super::super::messages::Adjudicator::new(
            policy.dag,
            crate::eval::TraceState::with_workspace("/w"),
            "t".into(),
        );
        let mut s = super::super::messages::Stream::new(adj);
        let mut out: Vec<Event> = Vec::new();
        for e in t.feed(&call_chunk(Some(0), Some("c"), Some("Bash"), r#"{"command": "ls"}"#).to_string()).unwrap() {
            out.extend(s.feed(e));
        }
        let err = t.feed(r#"{"error": {"message": "context length exceeded (8192)"}}"#).unwrap_err();
        out.extend(s.fail_with(&format!("fak: {err}")));
        out.extend(s.finish());
        let last: Json = serde_json::from_str(&out.last().unwrap().data).unwrap();
        assert_eq!(last["type"], "error");
        assert!(last["error"]["message"].as_str().unwrap().contains("context length exceeded (8192)"));
        assert!(!out.iter().any(|e| e.data.contains("tool_use")));
    }

    #[test]
    fn a_call_without_a_name_is_refused_and_one_without_an_id_gets_one() {
        // B18.
        let chunk = json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"name": "Bash", "arguments": "{\"command\": \"ls\"}"}},
            {"index": 1, "id": "c1", "function": {"name": "", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]});
        let out = events_of(&[chunk], true);
        let calls = calls_of(&out);
        assert_eq!(calls.len(), 1);
        assert!(calls[0].0.starts_with("toolu_fak_"), "{calls:?}");
        assert!(out.iter().any(|d| d["delta"]["text"].as_str().is_some_and(|t| t.contains("MALFORMED"))));
    }

    fn text_chunk(t: &str) -> Json {
        json!({"id": "x", "choices": [{"index": 0, "delta": {"content": t}}]})
    }

    fn lifted_events(chunks: &[Json]) -> Vec<Json> {
        let mut t = StreamTranslator::new(Names::default(), "m".into()).with_lifting(vec!["Bash".into()]);
        let mut events = Vec::new();
        for c in chunks {
            match t.feed(&c.to_string()) {
                Ok(e) => events.extend(e),
                Err(e) => events.push(ev(json!({"type": "error", "error": {"type": "api_error", "message": e}}))),
            }
        }
        events.extend(t.feed("[DONE]").unwrap_or_default());
        let policy = crate::load::builtin().into_result().ok().unwrap();
        let adj = super::super::messages::Adjudicator::new(
            policy.dag,
            crate::eval::TraceState::with_workspace("/w"),
            "t".into(),
        );
        let mut s = super::super::messages::Stream::new(adj);
        let mut out: Vec<Event> = events.into_iter().flat_map(|e| s.feed(e)).collect();
        out.extend(s.finish());
        out.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect()
    }

    #[test]
    fn calls_written_as_text_are_lifted_in_a_stream() {
        // The marker split across chunks; the prose before it streams live.
        let out = lifted_events(&[
            text_chunk("Checking. <tool_"),
            text_chunk("call>{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls -la\"}}</tool_call>"),
            text_chunk("<tool_call>{\"name\": \"Bash\", \"arguments\": {\"command\": \"rm -rf ~/\"}}</tool_call>"),
            finish("stop"),
        ]);
        check_order(&out);
        assert_eq!(out[2]["delta"]["text"], "Checking. ", "the prose before the marker");
        let calls = calls_of(&out);
        assert_eq!(calls.len(), 1, "ls lifted and allowed; rm lifted and refused: {calls:?}");
        assert_eq!(calls[0].1, json!({"command": "ls -la"}));
        assert!(out.iter().any(|d| d["delta"]["text"].as_str().is_some_and(|t| t.contains("POLICY_BLOCK"))));
        let delta = out.iter().find(|d| d["type"] == "message_delta").unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        // Prose with a code block that is not a call comes out whole.
        let out = lifted_events(&[text_chunk("Try:\n```sh\nls\n```\nok"), finish("stop")]);
        let text: String = out.iter().filter_map(|d| d["delta"]["text"].as_str()).collect();
        assert_eq!(text, "Try:\n```sh\nls\n```\nok");
        assert!(calls_of(&out).is_empty());
        // And streams: a fence whose first line says `sh` is let go at once, its body and its
        // closing fence stream as they come, and a `<b>` tag is not held either.
        let mut t = StreamTranslator::new(Names::default(), "m".into()).with_lifting(vec!["Bash".into()]);
        let mut streamed = String::new();
        for piece in ["Try:\n``", "`sh\nls -la\n", "```\nthen <b>", "look</b> at ``", "`py\nx\n```"] {
            for e in t.feed(&text_chunk(piece).to_string()).unwrap() {
                let d: Json = serde_json::from_str(&e.data).unwrap();
                streamed.push_str(d["delta"]["text"].as_str().unwrap_or(""));
            }
        }
        assert_eq!(streamed, "Try:\n```sh\nls -la\n```\nthen <b>look</b> at ```py\nx\n```", "all of it before the end");
        // A JSON fence naming a tool is still held, and lifted.
        let out = lifted_events(&[
            text_chunk("Run:\n```json\n{\"name\": \"Bash\", "),
            text_chunk("\"arguments\": {\"command\": \"ls\"}}\n```"),
            finish("stop"),
        ]);
        assert_eq!(calls_of(&out), [("toolu_fak_text_1".to_string(), json!({"command": "ls"}))]);
    }

    #[test]
    fn calls_claimed_in_text_that_cannot_be_read_are_an_error() {
        let out = lifted_events(&[text_chunk("[TOOL_CALLS] [{\"name\": \"Bash\", \"argu"), finish("stop")]);
        assert_eq!(out.last().unwrap()["type"], "error");
        assert!(out.last().unwrap()["error"]["message"].as_str().unwrap().contains("none of them can be read"));
        assert!(calls_of(&out).is_empty());
        let body =
            json!({"choices": [{"finish_reason": "stop", "message": {"content": "<tool_call>{oops</tool_call>"}}]});
        assert!(response(&body, &Names::default(), "m", &["Bash".into()]).is_err());
        let body = json!({"choices": [{"finish_reason": "stop", "message": {"content": "<tool_call>{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls\"}}</tool_call>"}}]});
        let m = response(&body, &Names::default(), "m", &["Bash".into()]).unwrap();
        assert_eq!(m["content"][0]["type"], "tool_use");
        assert_eq!(m["stop_reason"], "tool_use");
    }

    #[test]
    fn reasoning_becomes_thinking() {
        let chunks = [
            json!({"id": "x", "choices": [{"index": 0, "delta": {"reasoning_content": "The user wants "}}]}),
            json!({"id": "x", "choices": [{"index": 0, "delta": {"reasoning_content": "a listing."}}]}),
            json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "Listing."}}]}),
            finish("stop"),
        ];
        let out = events_of(&chunks, true);
        assert_eq!(out[1]["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
        assert_eq!(out[2]["delta"], json!({"type": "thinking_delta", "thinking": "The user wants "}));
        assert_eq!(out[4]["delta"]["type"], "signature_delta", "a signature before the thinking block stops");
        assert_eq!(out[5]["type"], "content_block_stop");
        assert_eq!(out[6]["content_block"]["type"], "text");
        let body = json!({"choices": [{"finish_reason": "stop", "message": {"reasoning": "hmm", "content": "ok"}}]});
        let m = response(&body, &Names::default(), "m", &[]).unwrap();
        assert_eq!(m["content"][0], json!({"type": "thinking", "thinking": "hmm", "signature": ""}));
        assert_eq!(m["content"][1]["text"], "ok");
    }

    #[test]
    fn upstream_errors_keep_their_message() {
        assert_eq!(error_message(br#"{"error": {"message": "model not found", "type": "x"}}"#), "model not found");
        assert_eq!(error_message(br#"{"detail": "bad"}"#), "bad");
        assert_eq!(error_message(b"<html>oops</html>"), "<html>oops</html>");
        assert_eq!(error_type(429), "rate_limit_error");
        assert_eq!(error_type(503), "overloaded_error");
    }
}
