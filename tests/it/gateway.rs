//! Golden SSE transcripts of the gateway's stream side: what a client receives for a scripted
//! upstream stream, byte for byte (tests/it/snapshots/gateway). The upstream streams are fed
//! through the same pieces `fak serve` chains: the SSE reader, the OpenAI translator when the
//! upstream speaks chat completions, the adjudicator, and the chunk writer for chat clients.

use fak::eval::TraceState;
use fak::gateway::chat::ChunkWriter;
use fak::gateway::messages::{Adjudicator, Stream};
use fak::gateway::openai::{Names, StreamTranslator};
use fak::gateway::sse::{Event, Reader};
use serde_json::{json, Value as Json};

use crate::util;

fn adjudicator() -> Adjudicator {
    let policy = fak::load::builtin().into_result().ok().unwrap();
    Adjudicator::new(policy.dag, TraceState::with_workspace("/work/repo").home("/home/dev"), "golden".into())
}

fn wire(events: &[Event]) -> String {
    events.iter().map(|e| String::from_utf8(e.to_bytes()).unwrap()).collect()
}

/// Reads `upstream` (SSE bytes) in pieces of `piece` bytes, optionally translates it, and
/// adjudicates it: the client's events.
fn through(upstream: &str, piece: usize, mut translate: Option<StreamTranslator>) -> Vec<Event> {
    let mut reader = Reader::default();
    let mut s = Stream::new(adjudicator());
    let mut out = Vec::new();
    let bytes = upstream.as_bytes();
    let mut feed = |evs: Vec<Event>, s: &mut Stream, out: &mut Vec<Event>| {
        for e in evs {
            let evs = match &mut translate {
                Some(t) => match t.feed(&e.data) {
                    Ok(evs) => evs,
                    Err(err) => s.fail_with(&err),
                },
                None => vec![e],
            };
            for e in evs {
                out.extend(s.feed(e));
            }
        }
    };
    for chunk in bytes.chunks(piece) {
        let evs = reader.feed(chunk).unwrap();
        feed(evs, &mut s, &mut out);
    }
    feed(reader.finish().into_iter().collect(), &mut s, &mut out);
    out.extend(s.finish());
    out
}

fn anthropic_upstream() -> String {
    let ev = |d: Json| Event::new(d["type"].as_str().unwrap(), d.to_string());
    let mut evs = vec![
        ev(
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ),
        ev(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Clean, then look."}}),
        ),
        ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}),
        ),
        ev(json!({"type": "content_block_stop", "index": 0})),
        ev(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})),
        ev(
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Cleaning up ü."}}),
        ),
        ev(json!({"type": "content_block_stop", "index": 1})),
        ev(json!({"type": "ping"})),
    ];
    for (i, id, cmd) in [(2, "toolu_rm", "rm -rf ~/"), (3, "toolu_ls", "ls -la")] {
        evs.push(ev(json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": id, "name": "Bash", "input": {}}})));
        let args = json!({"command": cmd}).to_string();
        let (a, b) = args.split_at(5);
        for p in [a, b] {
            evs.push(ev(json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": p}})));
        }
        evs.push(ev(json!({"type": "content_block_stop", "index": i})));
    }
    evs.push(ev(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 40}})));
    evs.push(ev(json!({"type": "message_stop"})));
    wire(&evs)
}

fn openai_upstream() -> String {
    let data = |d: Json| format!("data: {d}\n\n");
    let c = |delta: Json, finish: Json| json!({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let mut s = String::new();
    s.push_str(&data(c(json!({"role": "assistant", "content": ""}), Json::Null)));
    s.push_str(&data(c(json!({"reasoning_content": "Clean, then look."}), Json::Null)));
    s.push_str(&data(c(json!({"content": "Cleaning up ü."}), Json::Null)));
    for (k, id, cmd) in [(0, "call_rm", "rm -rf ~/"), (1, "call_ls", "ls -la")] {
        s.push_str(&data(c(json!({"tool_calls": [{"index": k, "id": id, "type": "function", "function": {"name": "Bash", "arguments": ""}}]}), Json::Null)));
        s.push_str(&data(c(
            json!({"tool_calls": [{"index": k, "function": {"arguments": json!({"command": cmd}).to_string()}}]}),
            Json::Null,
        )));
    }
    s.push_str(&data(c(json!({}), json!("tool_calls"))));
    s.push_str(&data(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 40}})));
    s.push_str("data: [DONE]\n\n");
    s
}

#[test]
fn golden_anthropic_upstream_to_messages_client() {
    let upstream = anthropic_upstream();
    let out = wire(&through(&upstream, usize::MAX, None));
    // Split anywhere (inside `data:`, inside `ü`), the client gets the same bytes (B01).
    for piece in [1, 2, 3, 7, 64] {
        assert_eq!(wire(&through(&upstream, piece, None)), out, "pieces of {piece}");
    }
    util::snapshot("gateway", "anthropic_to_messages", None, &out);
}

#[test]
fn golden_openai_upstream_to_messages_client() {
    let upstream = openai_upstream();
    let t = || Some(StreamTranslator::new(Names::default(), "claude-test".into()).with_input_estimate(12));
    let out = wire(&through(&upstream, usize::MAX, t()));
    for piece in [1, 5, 64] {
        assert_eq!(wire(&through(&upstream, piece, t())), out, "pieces of {piece}");
    }
    util::snapshot("gateway", "openai_to_messages", None, &out);
}

#[test]
fn golden_openai_upstream_to_chat_client() {
    let events =
        through(&openai_upstream(), usize::MAX, Some(StreamTranslator::new(Names::default(), "gpt-test".into())));
    let mut w = ChunkWriter::new("gpt-test".into(), true);
    let chunks: Vec<Event> = events.iter().flat_map(|e| w.write(e)).collect();
    // `created` is the clock's: pinned for the transcript.
    let out = regex::Regex::new(r#""created":\d+"#).unwrap().replace_all(&wire(&chunks), r#""created":0"#).into_owned();
    util::snapshot("gateway", "openai_to_chat", None, &out);
}
