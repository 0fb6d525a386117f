//! `/v1/chat/completions` for OpenAI-style clients. No IO, like `openai`: the other direction
//! of the same translation, so that whatever the upstream speaks, the answer is adjudicated
//! as a Messages response (`messages::Adjudicator`, `messages::Stream`) and goes back to the
//! client as a chat completion (or chunks) with `_fak` on it.
//!
//! - `to_messages_request`: a chat request as a Messages request, for an Anthropic upstream
//!   (system messages → `system`, consecutive `tool` messages → one user turn of
//!   `tool_result` blocks, `tool_calls` → `tool_use` blocks, functions → tools);
//! - `to_chat_response`: an adjudicated Messages response as a chat completion (a refused call
//!   is already text by then);
//! - `ChunkWriter`: adjudicated Messages events as chat completion chunks, `[DONE]` last.

use serde_json::{json, Map, Value as Json};

use super::sse::Event;

/// The Anthropic `max_tokens` when a chat client sets none (Messages requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A content that is a string or a list of parts (or blocks) as text: the string, or the
/// parts' `text` joined by line breaks. Also what the detectors read of a tool result.
pub(super) fn content_text(content: &Json) -> String {
    match content {
        Json::String(s) => s.clone(),
        Json::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Json::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// A user message's content as Messages content: text, and images from `image_url` parts.
fn user_content(content: &Json) -> Json {
    let Json::Array(parts) = content else { return Json::from(content_text(content)) };
    let blocks: Vec<Json> = parts
        .iter()
        .filter_map(|p| match p.get("type").and_then(Json::as_str) {
            Some("text") => Some(json!({"type": "text", "text": p.get("text").and_then(Json::as_str).unwrap_or("")})),
            Some("image_url") => {
                let url = p.pointer("/image_url/url").and_then(Json::as_str)?;
                Some(match url.strip_prefix("data:").and_then(|r| r.split_once(";base64,")) {
                    Some((media, data)) => {
                        json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
                    }
                    None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                })
            }
            _ => None,
        })
        .collect();
    Json::Array(blocks)
}

/// A chat completions request as a Messages request.
pub fn to_messages_request(body: &Json, model: Option<&str>) -> Result<Json, String> {
    let messages = body.get("messages").and_then(Json::as_array).ok_or("`messages` must be a list")?;
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<Json> = Vec::new();
    let mut results: Vec<Json> = Vec::new();
    let flush = |results: &mut Vec<Json>, out: &mut Vec<Json>| {
        if !results.is_empty() {
            out.push(json!({"role": "user", "content": std::mem::take(results)}));
        }
    };
    for m in messages {
        let content = m.get("content").unwrap_or(&Json::Null);
        match m.get("role").and_then(Json::as_str).unwrap_or("") {
            "system" | "developer" => {
                if out.is_empty() {
                    system.push(content_text(content));
                } else {
                    flush(&mut results, &mut out);
                    out.push(json!({"role": "user", "content": format!("[system] {}", content_text(content))}));
                }
            }
            "tool" => results.push(json!({
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id").and_then(Json::as_str).unwrap_or(""),
                "content": content_text(content),
            })),
            "user" => {
                flush(&mut results, &mut out);
                out.push(json!({"role": "user", "content": user_content(content)}));
            }
            "assistant" => {
                flush(&mut results, &mut out);
                let mut blocks = Vec::new();
                let text = content_text(content);
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in m.get("tool_calls").and_then(Json::as_array).into_iter().flatten() {
                    let args = c.pointer("/function/arguments").and_then(Json::as_str).unwrap_or("{}");
                    let input = serde_json::from_str::<Json>(args).unwrap_or_else(|_| json!({}));
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": c.get("id").and_then(Json::as_str).unwrap_or(""),
                        "name": c.pointer("/function/name").and_then(Json::as_str).unwrap_or(""),
                        "input": input,
                    }));
                }
                out.push(json!({"role": "assistant", "content": blocks}));
            }
            other => return Err(format!("unknown message role `{other}`")),
        }
    }
    flush(&mut results, &mut out);
    let mut req = Map::new();
    let model = model.or_else(|| body.get("model").and_then(Json::as_str)).unwrap_or("");
    req.insert("model".into(), Json::from(model));
    let max = body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).and_then(Json::as_u64);
    req.insert("max_tokens".into(), Json::from(max.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        req.insert("system".into(), Json::from(system.join("\n")));
    }
    req.insert("messages".into(), Json::Array(out));
    if let Some(tools) = body.get("tools").and_then(Json::as_array) {
        let tools: Vec<Json> = tools
            .iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                let mut tool = json!({
                    "name": f.get("name").and_then(Json::as_str)?,
                    "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let (Some(d), Some(o)) = (f.get("description"), tool.as_object_mut()) {
                    o.insert("description".into(), d.clone());
                }
                Some(tool)
            })
            .collect();
        req.insert("tools".into(), Json::Array(tools));
    }
    if let Some(tc) = body.get("tool_choice") {
        let choice = match tc {
            Json::String(s) if s == "required" => Some(json!({"type": "any"})),
            Json::String(s) if s == "none" => Some(json!({"type": "none"})),
            Json::String(s) if s == "auto" => Some(json!({"type": "auto"})),
            Json::Object(_) => tc.pointer("/function/name").map(|n| json!({"type": "tool", "name": n})),
            _ => None,
        };
        if let Some(c) = choice {
            req.insert("tool_choice".into(), c);
        }
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p"), ("stream", "stream")] {
        if let Some(v) = body.get(from) {
            req.insert(to.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Json::String(s)) => {
            req.insert("stop_sequences".into(), json!([s]));
        }
        Some(v @ Json::Array(_)) => {
            req.insert("stop_sequences".into(), v.clone());
        }
        _ => {}
    }
    Ok(Json::Object(req))
}

fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

fn chat_usage(u: Option<&Json>) -> Json {
    let n = |k: &str| u.and_then(|u| u.get(k)).and_then(Json::as_u64).unwrap_or(0);
    let prompt = n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": n("output_tokens"),
        "total_tokens": prompt + n("output_tokens"),
        "prompt_tokens_details": {"cached_tokens": n("cache_read_input_tokens")},
    })
}

/// An adjudicated Messages response as a chat completion, `_fak` kept.
pub fn to_chat_response(msg: &Json, model: &str) -> Json {
    let blocks = msg.get("content").and_then(Json::as_array).cloned().unwrap_or_default();
    let text: Vec<&str> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Json::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Json::as_str))
        .collect();
    let calls: Vec<Json> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Json::as_str) == Some("tool_use"))
        .map(|b| {
            json!({"id": b.get("id"), "type": "function", "function": {
                "name": b.get("name"), "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string()}})
        })
        .collect();
    let mut message =
        json!({"role": "assistant", "content": if text.is_empty() { Json::Null } else { Json::from(text.join("\n")) }});
    let thinking: Vec<&str> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Json::as_str) == Some("thinking"))
        .filter_map(|b| b.get("thinking").and_then(Json::as_str))
        .collect();
    if let (false, Some(o)) = (thinking.is_empty(), message.as_object_mut()) {
        o.insert("reasoning_content".into(), Json::from(thinking.join("\n")));
    }
    if !calls.is_empty() {
        if let Some(o) = message.as_object_mut() {
            o.insert("tool_calls".into(), Json::Array(calls));
        }
    }
    let id = msg.get("id").and_then(Json::as_str).unwrap_or("fak");
    let mut out = json!({
        "id": format!("chatcmpl-{}", id.trim_start_matches("msg_")),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(msg.get("stop_reason").and_then(Json::as_str)), "logprobs": null}],
        "usage": chat_usage(msg.get("usage")),
    });
    if let (Some(f), Some(o)) = (msg.get("_fak"), out.as_object_mut()) {
        o.insert("_fak".into(), f.clone());
    }
    out
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Adjudicated Messages events → chat completion chunks (`data:` lines, `[DONE]` last).
pub struct ChunkWriter {
    id: String,
    model: String,
    created: u64,
    usage: bool,
    /// Messages block index → tool call index, for the blocks that are tool calls.
    calls: Vec<(u64, u64)>,
    input_tokens: Option<Json>,
    /// Whether a text block came before: the next one is set apart by a blank line.
    had_text: bool,
}

impl ChunkWriter {
    pub fn new(model: String, include_usage: bool) -> ChunkWriter {
        ChunkWriter {
            id: "chatcmpl-fak".into(),
            model,
            created: now(),
            usage: include_usage,
            calls: Vec::new(),
            input_tokens: None,
            had_text: false,
        }
    }

    fn chunk(&self, delta: Json, finish: Option<&str>) -> Event {
        let c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]});
        Event::new("", c.to_string())
    }

    /// The chunks for one adjudicated Messages event.
    pub fn write(&mut self, e: &Event) -> Vec<Event> {
        let Ok(d) = serde_json::from_str::<Json>(&e.data) else { return Vec::new() };
        let index = d.get("index").and_then(Json::as_u64);
        match d.get("type").and_then(Json::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(id) = d.pointer("/message/id").and_then(Json::as_str) {
                    self.id = format!("chatcmpl-{}", id.trim_start_matches("msg_"));
                }
                self.input_tokens = d.pointer("/message/usage").cloned();
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "content_block_start" if d.pointer("/content_block/type").and_then(Json::as_str) == Some("text") => {
                let first = !self.had_text;
                self.had_text = true;
                if first {
                    Vec::new()
                } else {
                    vec![self.chunk(json!({"content": "\n\n"}), None)]
                }
            }
            "content_block_start" if d.pointer("/content_block/type").and_then(Json::as_str) == Some("tool_use") => {
                let k = self.calls.len() as u64;
                self.calls.push((index.unwrap_or(0), k));
                let b = d.get("content_block").unwrap_or(&Json::Null);
                vec![self.chunk(
                    json!({"tool_calls": [{"index": k, "id": b.get("id"), "type": "function",
                        "function": {"name": b.get("name"), "arguments": ""}}]}),
                    None,
                )]
            }
            "content_block_delta" => match d.pointer("/delta/type").and_then(Json::as_str) {
                Some("text_delta") => vec![self.chunk(json!({"content": d.pointer("/delta/text")}), None)],
                Some("thinking_delta") => {
                    vec![self.chunk(json!({"reasoning_content": d.pointer("/delta/thinking")}), None)]
                }
                Some("input_json_delta") => {
                    let Some(k) = self.calls.iter().find(|(i, _)| Some(*i) == index).map(|(_, k)| *k) else {
                        return Vec::new();
                    };
                    vec![self.chunk(
                        json!({"tool_calls": [{"index": k, "function": {"arguments": d.pointer("/delta/partial_json")}}]}),
                        None,
                    )]
                }
                _ => Vec::new(),
            },
            "message_delta" => {
                let stop = finish_reason(d.pointer("/delta/stop_reason").and_then(Json::as_str));
                let mut last = self.chunk(json!({}), Some(stop));
                let mut out = Vec::new();
                let fak = d.get("_fak").cloned();
                let usage = {
                    // message_start's usage, updated by what message_delta reports.
                    let mut u = self.input_tokens.clone().unwrap_or_else(|| json!({}));
                    if let (Some(o), Some(Json::Object(late))) = (u.as_object_mut(), d.get("usage")) {
                        for (k, v) in late {
                            o.insert(k.clone(), v.clone());
                        }
                    }
                    chat_usage(Some(&u))
                };
                if let Ok(mut c) = serde_json::from_str::<Json>(&last.data) {
                    if let (Some(f), Some(o)) = (fak, c.as_object_mut()) {
                        o.insert("_fak".into(), f);
                    }
                    last = Event::new("", c.to_string());
                }
                out.push(last);
                if self.usage {
                    let c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage});
                    out.push(Event::new("", c.to_string()));
                }
                out
            }
            "message_stop" => vec![Event::new("", "[DONE]")],
            "error" => {
                let msg = d.pointer("/error/message").and_then(Json::as_str).unwrap_or("the upstream failed");
                let kind = d.pointer("/error/type").and_then(Json::as_str).unwrap_or("api_error");
                vec![Event::new(
                    "",
                    json!({"error": {"message": msg, "type": kind, "param": null, "code": null}}).to_string(),
                )]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn a_chat_request_becomes_a_messages_request() {
        let body = json!({"model": "gpt-x", "stream": true, "stop": "END", "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "Bash", "description": "run", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"pwd\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
            {"role": "tool", "tool_call_id": "c2", "content": "/w"},
            {"role": "user", "content": "and?"},
        ]});
        let m = to_messages_request(&body, None).unwrap();
        assert_eq!(m["system"], "be brief");
        assert_eq!(m["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(m["stop_sequences"], json!(["END"]));
        assert_eq!(m["tool_choice"], json!({"type": "any"}));
        assert_eq!(m["tools"][0]["input_schema"], json!({"type": "object"}));
        let roles: Vec<&str> = m["messages"].as_array().unwrap().iter().map(|x| x["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "user"]);
        assert_eq!(m["messages"][0]["content"][1]["source"]["media_type"], "image/png");
        assert_eq!(m["messages"][1]["content"][1]["input"], json!({"command": "pwd"}));
        assert_eq!(m["messages"][2]["content"].as_array().unwrap().len(), 2, "two results, one turn");
    }

    #[test]
    fn an_adjudicated_message_becomes_a_completion() {
        let msg = json!({"id": "msg_1", "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 2},
            "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "[fak] refused"}, {"type": "tool_use", "id": "t", "name": "Read", "input": {"file_path": "a"}}],
            "_fak": {"version": "fak/v1"}});
        let c = to_chat_response(&msg, "m");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["choices"][0]["message"]["content"], "[fak] refused");
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"file_path\":\"a\"}");
        assert_eq!(c["usage"]["total_tokens"], 7);
        assert_eq!(c["_fak"]["version"], "fak/v1");
        assert_eq!(c["choices"][0]["message"]["reasoning_content"], "hm");
    }
}
