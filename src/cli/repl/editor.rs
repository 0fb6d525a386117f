//! The REPL on a terminal: rustyline's line editor with fak's completion, multi-line JSON and
//! a persistent history.
//!
//! Completion knows three things: the first word (tool names: those the policy's rules name
//! and those fak has schemas for; the `:` commands), an argument key inside `{...}` (the
//! tool's keys from `crate::tools`), and a file after `:load`. Enter on JSON whose brackets
//! are still open starts a new line instead of deciding (`super::complete`).

use std::borrow::Cow;
use std::collections::BTreeSet;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

/// The `:` commands, for completion.
pub(super) const COMMANDS: &[&str] =
    &[":help", ":quit", ":why", ":trace", ":reset", ":result", ":load", ":reload", ":policy", ":test"];

pub(super) struct ReplHelper {
    /// Tool names to complete, sorted.
    tools: Vec<String>,
    files: FilenameCompleter,
    color: bool,
}

impl ReplHelper {
    pub(super) fn new(policy_tools: impl IntoIterator<Item = String>, color: bool) -> ReplHelper {
        let mut tools: BTreeSet<String> = policy_tools.into_iter().collect();
        tools.extend(crate::tools::KNOWN_TOOLS.iter().map(|t| t.name.to_string()));
        ReplHelper { tools: tools.into_iter().collect(), files: FilenameCompleter::new(), color }
    }

    pub(super) fn set_tools(&mut self, policy_tools: impl IntoIterator<Item = String>) {
        let color = self.color;
        *self = ReplHelper::new(policy_tools, color);
    }
}

/// Candidates from `words` that start with `prefix`.
fn matching<'a>(words: impl IntoIterator<Item = &'a str>, prefix: &str, suffix: &str) -> Vec<Pair> {
    words
        .into_iter()
        .filter(|w| w.starts_with(prefix))
        .map(|w| Pair { display: w.to_string(), replacement: format!("{w}{suffix}") })
        .collect()
}

/// The argument keys of `tool` that could start at `pos`, when `pos` is where a key of a JSON
/// object goes: right after `{` or `,`, with an optional `"` typed.
fn key_completion(line: &str, pos: usize, tool: &str) -> Option<(usize, Vec<Pair>)> {
    let before = line.get(..pos)?;
    let start = before.rfind(['{', ',']).map(|i| i + 1)?;
    let typed = before.get(start..)?.trim_start();
    let typed = typed.strip_prefix('"').unwrap_or(typed);
    if typed.contains(|c: char| c == '"' || c == ':' || c.is_whitespace()) {
        return None;
    }
    let schema = crate::tools::schema(tool)?;
    let keys = schema.args.iter().map(|(k, _, _)| *k).filter(|k| k.starts_with(typed));
    let from = pos - typed.len() - usize::from(before.get(..pos - typed.len())?.ends_with('"'));
    let pairs = keys.map(|k| Pair { display: k.to_string(), replacement: format!("\"{k}\": ") }).collect();
    Some((from, pairs))
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        let Some((head, rest)) = before.split_once(char::is_whitespace) else {
            // The first word: a tool or a command.
            let tools = self.tools.iter().map(String::as_str);
            let words: Vec<&str> = if before.starts_with(':') { COMMANDS.to_vec() } else { tools.collect() };
            return Ok((0, matching(words, before, " ")));
        };
        match head {
            ":load" => self.files.complete(line, pos, ctx),
            ":result" if !rest.trim_start().contains(char::is_whitespace) => {
                let typed = rest.trim_start();
                Ok((pos - typed.len(), matching(self.tools.iter().map(String::as_str), typed, " ")))
            }
            h if !h.starts_with(':') => Ok(key_completion(line, pos, h).unwrap_or((pos, Vec::new()))),
            _ => Ok((pos, Vec::new())),
        }
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if super::complete(ctx.input()) { ValidationResult::Valid(None) } else { ValidationResult::Incomplete })
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        if self.color {
            Cow::Owned(format!("\x1b[1;36m{prompt}\x1b[0m"))
        } else {
            Cow::Borrowed(prompt)
        }
    }

    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        // The first word in bold: the tool (or command) the line is for.
        if !self.color {
            return Cow::Borrowed(line);
        }
        let end = line.find(char::is_whitespace).unwrap_or(line.len());
        match (line.get(..end), line.get(end..)) {
            (Some(head), Some(rest)) if !head.is_empty() => Cow::Owned(format!("\x1b[1m{head}\x1b[0m{rest}")),
            _ => Cow::Borrowed(line),
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.color && kind != CmdKind::MoveCursor
    }
}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn complete(line: &str) -> Vec<String> {
        let h = ReplHelper::new(["mcp__db__read_rows".to_string()], false);
        let history = rustyline::history::DefaultHistory::new();
        let ctx = Context::new(&history);
        let (start, pairs) = h.complete(line, line.len(), &ctx).unwrap();
        pairs.into_iter().map(|p| format!("{}{}", &line[..start], p.replacement)).collect()
    }

    #[test]
    fn completes_tools_commands_and_keys() {
        assert_eq!(complete("Bas"), ["Bash ", "BashOutput "]);
        assert_eq!(complete("Mult"), ["MultiEdit "]);
        assert!(complete("mcp").contains(&"mcp__db__read_rows ".to_string()));
        assert_eq!(complete(":wh"), [":why "]);
        assert_eq!(complete(":result WebF"), [":result WebFetch "]);
        assert_eq!(complete("Edit {\"file"), ["Edit {\"file_path\": "]);
        assert_eq!(complete("Edit {\"file_path\": \"a\", old"), ["Edit {\"file_path\": \"a\", \"old_string\": "]);
        assert!(complete("Bash {").contains(&"Bash {\"command\": ".to_string()));
        // Inside a value there is nothing to offer.
        assert!(complete("Bash {\"command\": \"ls ").is_empty());
        assert!(complete("Bash rm -rf").is_empty());
    }
}
