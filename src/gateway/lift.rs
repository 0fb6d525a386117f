//! Tool calls a local model writes as text instead of as `tool_calls`: lifted into real calls,
//! so they are decided (and run) like any other, or refused when they cannot be read.
//!
//! Shapes: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes, Qwen),
//! `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]` (Mistral), and a fenced JSON block
//! holding `{"name": <a declared tool>, "arguments" | "parameters" | "input": {...}}`. A fenced
//! block that names no declared tool is an example in prose and stays text. A turn whose text
//! claims calls (a tag, the Mistral marker, a fenced call naming a tool) of which none can be
//! read is an error to the client: passing it on as text would hide a call the model meant.
//!
//! Written here: no crate parses these shapes, and the parsing is a few string searches and
//! serde_json.

use serde_json::Value as Json;

/// What a model's text held.
#[derive(Debug, Default, PartialEq)]
pub struct Lifted {
    /// The text with the calls taken out.
    pub text: String,
    /// The calls: tool name and input object.
    pub calls: Vec<(String, Json)>,
    /// Whether the text claimed calls at all.
    pub claimed: bool,
}

/// Markers that may start a written call: a streamed text is held from the first of them.
pub const MARKERS: &[&str] = &["<tool_call>", "[TOOL_CALLS]", "```"];

/// `(name, input)` of one call object, when it is one.
fn call_of(v: &Json) -> Option<(String, Json)> {
    let name = v.get("name").and_then(Json::as_str)?.to_string();
    let args = v.get("arguments").or_else(|| v.get("parameters")).or_else(|| v.get("input"));
    let input = match args {
        None => Json::Object(Default::default()),
        Some(Json::String(s)) => serde_json::from_str(s).ok()?,
        Some(a @ Json::Object(_)) => a.clone(),
        Some(_) => return None,
    };
    input.is_object().then_some((name, input))
}

/// The calls in a JSON text: one object or a list of them.
fn calls_in(json: &str) -> Option<Vec<(String, Json)>> {
    match serde_json::from_str::<Json>(json.trim()).ok()? {
        Json::Array(items) => items.iter().map(call_of).collect(),
        v => call_of(&v).map(|c| vec![c]),
    }
}

/// Lifts the calls out of `text`; `tools` are the tools the request declared.
pub fn lift(text: &str, tools: &[String]) -> Lifted {
    let mut out = Lifted::default();
    let mut rest = text;
    let mut kept = String::new();
    loop {
        let next = MARKERS.iter().filter_map(|m| rest.find(m).map(|i| (i, *m))).min_by_key(|(i, _)| *i);
        let Some((at, marker)) = next else {
            kept.push_str(rest);
            break;
        };
        kept.push_str(rest.get(..at).unwrap_or(""));
        let after = rest.get(at + marker.len()..).unwrap_or("");
        match marker {
            "<tool_call>" => {
                out.claimed = true;
                let (body, tail) = after.split_once("</tool_call>").unwrap_or((after, ""));
                out.calls.extend(calls_in(body).unwrap_or_default());
                rest = tail;
            }
            "[TOOL_CALLS]" => {
                out.claimed = true;
                // The JSON runs to the end of the text (Mistral puts nothing after it).
                out.calls.extend(calls_in(after).unwrap_or_default());
                rest = "";
            }
            _ => {
                // A fenced block: a call only when it names a declared tool.
                let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
                let (lang, body) = after.split_at(body_start);
                let Some((body, tail)) = body.split_once("```") else {
                    kept.push_str(rest.get(at..).unwrap_or(""));
                    break;
                };
                let lang = lang.trim();
                let names_tool = serde_json::from_str::<Json>(body.trim())
                    .ok()
                    .and_then(|v| v.get("name").and_then(Json::as_str).map(str::to_string))
                    .is_some_and(|n| tools.contains(&n));
                if (lang.is_empty() || lang == "json") && names_tool {
                    out.claimed = true;
                    out.calls.extend(calls_in(body).unwrap_or_default());
                } else {
                    kept.push_str("```");
                    kept.push_str(lang);
                    kept.push('\n');
                    kept.push_str(body);
                    kept.push_str("```");
                }
                rest = tail;
            }
        }
    }
    out.text = kept.trim().to_string();
    out
}

/// Where text may start a written call: the first marker, or a marker's beginning at the very
/// end (`<tool_` of a chunk whose next chunk finishes `<tool_call>`).
pub fn hold_from(text: &str) -> Option<usize> {
    if let Some(i) = MARKERS.iter().filter_map(|m| text.find(m)).min() {
        return Some(i);
    }
    MARKERS
        .iter()
        .filter_map(|m| (1..m.len()).rev().find(|k| text.ends_with(m.get(..*k).unwrap_or(""))))
        .max()
        .map(|k| text.len() - k)
}

/// What is known of held text: wait for more, or the first `n` bytes are plain text.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    Wait,
    Plain(usize),
}

/// Whether text held from a possible marker can be let go. A `<tool_call>` or `[TOOL_CALLS]`
/// is held to the end; a code fence until its first line shows a language other than JSON or
/// its body starts with something other than `{` or `[`; a marker's beginning (`<tool_`)
/// until the next characters differ from the marker's.
pub fn held_verdict(h: &str) -> Held {
    if h.starts_with("<tool_call>") || h.starts_with("[TOOL_CALLS]") {
        return Held::Wait;
    }
    if let Some(after) = h.strip_prefix("```") {
        let Some(nl) = after.find('\n') else {
            // The language so far: only a JSON fence (or none) may be a call.
            let lang = after.trim();
            return if "json".starts_with(lang) || lang.is_empty() { Held::Wait } else { Held::Plain(h.len()) };
        };
        let lang = after.get(..nl).unwrap_or("").trim();
        if !(lang.is_empty() || lang == "json") {
            return Held::Plain(3);
        }
        return match after.get(nl + 1..).unwrap_or("").trim_start().chars().next() {
            None => Held::Wait,
            Some('{') | Some('[') => Held::Wait,
            Some(_) => Held::Plain(3),
        };
    }
    if MARKERS.iter().any(|m| m.starts_with(h)) {
        return Held::Wait;
    }
    // Not a marker after all: its first character is text; the rest is looked at again.
    Held::Plain(h.chars().next().map_or(0, char::len_utf8))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<String> {
        vec!["Bash".into(), "Read".into()]
    }

    #[test]
    fn hermes_mistral_and_fenced_calls_are_lifted() {
        let l = lift(
            "Let me look.\n<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls\"}}\n</tool_call>",
            &tools(),
        );
        assert_eq!(l.text, "Let me look.");
        assert_eq!(l.calls, [("Bash".into(), json!({"command": "ls"}))]);
        let l = lift("[TOOL_CALLS][{\"name\": \"Read\", \"arguments\": \"{\\\"file_path\\\": \\\"a\\\"}\"}, {\"name\": \"Bash\", \"arguments\": {\"command\": \"pwd\"}}]", &tools());
        assert_eq!(l.calls.len(), 2);
        assert_eq!(l.calls[0], ("Read".into(), json!({"file_path": "a"})));
        let l = lift(
            "Running:\n```json\n{\"name\": \"Bash\", \"parameters\": {\"command\": \"rm -rf ~\"}}\n```\nDone.",
            &tools(),
        );
        assert_eq!(l.calls, [("Bash".into(), json!({"command": "rm -rf ~"}))]);
        assert_eq!(l.text, "Running:\n\nDone.");
    }

    #[test]
    fn prose_examples_stay_text() {
        let t = "Use this config:\n```json\n{\"name\": \"my-app\", \"version\": 1}\n```\nand run `ls`.";
        let l = lift(t, &tools());
        assert!(!l.claimed && l.calls.is_empty());
        assert_eq!(l.text, t);
        let l = lift("```python\nprint('hi')\n```", &tools());
        assert!(!l.claimed);
    }

    #[test]
    fn claimed_calls_that_do_not_parse_are_noticed() {
        let l = lift("<tool_call>{\"name\": \"Bash\", \"arguments\": {\"command\": </tool_call>", &tools());
        assert!(l.claimed && l.calls.is_empty());
        let l = lift("[TOOL_CALLS] not json at all", &tools());
        assert!(l.claimed && l.calls.is_empty());
    }

    #[test]
    fn held_text_is_let_go_once_it_cannot_be_a_call() {
        assert_eq!(held_verdict("<tool_call>{"), Held::Wait);
        assert_eq!(held_verdict("<tool_"), Held::Wait);
        assert_eq!(held_verdict("<tox"), Held::Plain(1));
        assert_eq!(held_verdict("``"), Held::Wait);
        assert_eq!(held_verdict("```js"), Held::Wait, "still maybe `json`");
        assert_eq!(held_verdict("```py"), Held::Plain(5));
        assert_eq!(held_verdict("```sh\nls"), Held::Plain(3));
        assert_eq!(held_verdict("```\n  {\"name\""), Held::Wait);
        assert_eq!(held_verdict("```\nls -la"), Held::Plain(3));
        assert_eq!(held_verdict("```json\n"), Held::Wait);
    }

    #[test]
    fn text_is_held_from_a_possible_marker() {
        assert_eq!(hold_from("plain text"), None);
        assert_eq!(hold_from("ab<tool_call>{"), Some(2));
        assert_eq!(hold_from("ab<tool_"), Some(2));
        assert_eq!(hold_from("ab`"), Some(2));
        assert_eq!(hold_from("x [TOOL"), Some(2));
    }
}
