//! `fak hook`: fak as Claude Code's own PreToolUse and PostToolUse hook.
//!
//! Claude Code runs the hook command once per tool call with one JSON object on stdin
//! (`hook_event_name`, `session_id`, `cwd`, `tool_name`, `tool_input`, and for PostToolUse
//! `tool_response`) and reads a JSON object from stdout. The session is the trace, `cwd` the
//! workspace. What fak answers:
//!
//! - PreToolUse, DENY: `permissionDecision: "deny"` with the reason, which Claude Code shows the
//!   model; the exit status is 2 as well, which blocks the call whatever else happens.
//! - PreToolUse, TRANSFORM: `permissionDecision: "ask"` with the repaired input as
//!   `updatedInput`: a person sees the call that will run.
//! - PreToolUse, ALLOW: nothing; Claude Code's own permission rules decide as usual (fak's floor
//!   allowing a call is not a grant).
//! - PostToolUse, QUARANTINE (or DENY): the result is paged out, `updatedToolOutput` replaces
//!   its text with the page's stub, and `decision: "block"` says why.
//! - Anything fak cannot read or decide is a refusal (exit 2), never a silent allow.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};

use crate::eval::{Call, ToolResult, TraceState, Verdict};
use crate::ir::VerdictKind;
use crate::load;
use crate::store::Store;

/// Run as Claude Code's PreToolUse / PostToolUse hook, or install it.
///
/// With no subcommand: read one hook event (JSON) from stdin and answer on stdout. The session
/// is the trace (`fak trace`), results are recorded in the state directory.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fak hook install            # .claude/settings.json of this project\n  fak hook install --user     # ~/.claude/settings.json\n  fak hook uninstall --user"
)]
pub struct HookArgs {
    #[command(subcommand)]
    pub action: Option<HookAction>,
    /// A policy: `.fak` or `fak-policy/v1` JSON. Default: the built-in floor.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Where results and traces are kept. Default: `$XDG_STATE_HOME/fak`.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum HookAction {
    /// Add fak's PreToolUse and PostToolUse entries to Claude Code's settings.json, leaving
    /// every other entry as it is.
    Install(Where),
    /// Remove fak's entries (and only those).
    Uninstall(Where),
}

#[derive(Args, Debug)]
pub struct Where {
    /// `.claude/settings.json` in the current directory (the default).
    #[arg(long, conflicts_with = "user")]
    pub project: bool,
    /// `~/.claude/settings.json`.
    #[arg(long)]
    pub user: bool,
    /// The settings file to edit, instead of either.
    #[arg(long, conflicts_with_all = ["project", "user"])]
    pub settings: Option<PathBuf>,
    /// The command Claude Code runs. Default: this binary's absolute path and `hook`, and
    /// `--policy` / `--state-dir` when given to `fak hook`.
    #[arg(long)]
    pub command: Option<String>,
}

pub fn run(a: &HookArgs) -> ExitCode {
    match &a.action {
        Some(HookAction::Install(w)) => edit_settings(a, w, true),
        Some(HookAction::Uninstall(w)) => edit_settings(a, w, false),
        None => {
            let mut input = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut input) {
                return refuse(&format!("cannot read the hook event from stdin: {e}"));
            }
            // A panic would exit 101, which Claude Code takes for a non-blocking error: the call
            // would run. Whatever happens inside, the answer is a refusal.
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(a, &input)));
            caught.unwrap_or_else(|_| fail_event(&input, "fak failed inside (a bug); refusing"))
        }
    }
}

/// Blocks a call: exit status 2 with the reason on stderr (Claude Code blocks a PreToolUse
/// call on it and shows the model the reason) and the same as a `deny` on stdout.
fn refuse(reason: &str) -> ExitCode {
    let out = json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": format!("fak: {reason}"),
    }});
    let _ = super::try_emit(&format!("{out}\n"));
    eprintln!("fak: {reason}");
    ExitCode::from(2)
}

/// Withholds a result fak could not judge: the tool has run already, so exit 2 would only
/// show the model a message next to the unjudged text. The text is replaced instead.
fn withhold(tool: &str, response: &Json, reason: &str) -> ExitCode {
    let stub = format!("[fak: this tool result was withheld: {reason}]");
    answer_post(tool, response, &stub)
}

/// The refusal fitting the event in `input`, when fak failed before it could judge it.
fn fail_event(input: &str, reason: &str) -> ExitCode {
    let event: Json = serde_json::from_str(input).unwrap_or(Json::Null);
    if event.get("hook_event_name").and_then(Json::as_str) == Some("PostToolUse") {
        let tool = event.get("tool_name").and_then(Json::as_str).unwrap_or("");
        return withhold(tool, event.get("tool_response").unwrap_or(&Json::Null), reason);
    }
    refuse(reason)
}

/// PostToolUse's answer replacing the result with `stub`. If the answer cannot be written,
/// exit 2 at least puts the reason in front of the model.
fn answer_post(tool: &str, response: &Json, stub: &str) -> ExitCode {
    let replaced = withheld(tool, response, stub);
    let mut specific = json!({
        "hookEventName": "PostToolUse",
        "updatedToolOutput": replaced,
        "additionalContext": stub,
    });
    if tool.starts_with("mcp__") {
        // What Claude Code versions before `updatedToolOutput` read for MCP tools.
        if let Some(o) = specific.as_object_mut() {
            o.insert("updatedMCPToolOutput".into(), withheld(tool, response, stub));
        }
    }
    let out = json!({"decision": "block", "reason": stub, "hookSpecificOutput": specific});
    if super::try_emit(&format!("{out}\n")) {
        ExitCode::SUCCESS
    } else {
        eprintln!("{stub}");
        ExitCode::from(2)
    }
}

fn why(v: &Verdict) -> String {
    format!("fak refused this call: {}. {}", v.why(), v.advice())
}

fn answer(a: &HookArgs, input: &str) -> ExitCode {
    let event: Json = match serde_json::from_str(input) {
        Ok(e @ Json::Object(_)) => e,
        Ok(_) => return refuse("the hook event is not a JSON object"),
        Err(e) => return refuse(&format!("the hook event is not JSON: {e}")),
    };
    let name = event.get("hook_event_name").and_then(Json::as_str).unwrap_or("");
    let Some(tool) = event.get("tool_name").and_then(Json::as_str) else {
        return fail_event(input, "the hook event has no `tool_name`");
    };
    let null = Json::Null;
    let response = event.get("tool_response").unwrap_or(&null);
    // A PostToolUse failure withholds the result; a PreToolUse one refuses the call.
    let fail = |reason: &str| if name == "PostToolUse" { withhold(tool, response, reason) } else { refuse(reason) };
    let trace = event.get("session_id").and_then(Json::as_str).filter(|s| !s.is_empty());
    if trace.is_none() {
        return fail("the hook event has no `session_id`: fak keeps each session's taint under it");
    }
    let loaded = match &a.policy {
        Some(p) => load::from_path(p),
        None => load::builtin(),
    };
    let policy = match loaded.into_result() {
        Ok(p) => p,
        Err((_, diags)) => {
            return fail(&format!(
                "the policy has errors ({}); run `fak policy --check` on it",
                diags.first().map_or(String::new(), |d| d.message.clone())
            ))
        }
    };
    let cwd = event.get("cwd").and_then(Json::as_str).map(str::to_string);
    let workspace = match cwd.or_else(|| std::env::current_dir().ok().map(|d| d.to_string_lossy().into_owned())) {
        Some(w) => w,
        None => return fail("no working directory: the event has no `cwd`"),
    };
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let base = TraceState::with_workspace(&workspace).home(&home);
    let dir = a.state_dir.clone().unwrap_or_else(crate::store::default_dir);
    match name {
        "PreToolUse" => {
            let Some(args) = event.get("tool_input").cloned() else {
                return refuse("the PreToolUse event has no `tool_input`");
            };
            let call = Call { tool: tool.to_string(), args };
            // One connection reads the trace's taint and takes the audit row; a database made
            // here holds no raised trace, so a first call's trace reads as trusted.
            let store = Store::open_existing(&dir).and_then(|s| match s {
                Some(s) => Ok(s),
                None => Store::open(&dir),
            });
            let mut store = match store {
                Ok(s) => s,
                Err(e) => return refuse(&e.to_string()),
            };
            let v = match crate::ledger::state(&store, trace, &base) {
                Ok(st) => crate::compile::decide(&policy.dag, &call, &st),
                Err(e) => return refuse(&e.to_string()),
            };
            // Every decision is in the audit log before Claude Code hears it (a commit without
            // a disk flush: it survives the process); a log that cannot be written refuses it.
            if let Err(e) = store.append(&[crate::audit::Entry::decision(trace, &call, &v)], &[], false) {
                return refuse(&format!("the audit log cannot be written: {e}"));
            }
            match v.verdict {
                VerdictKind::Allow => ExitCode::SUCCESS,
                VerdictKind::Transform => {
                    let out = json!({"hookSpecificOutput": {
                        "hookEventName": "PreToolUse",
                        "permissionDecision": "ask",
                        "permissionDecisionReason": format!("fak repaired this call ({}, by {})", v.reason, v.by.rule),
                        "updatedInput": v.args.clone().unwrap_or(Json::Null),
                    }});
                    if super::try_emit(&format!("{out}\n")) {
                        ExitCode::SUCCESS
                    } else {
                        refuse("the repaired call could not be written")
                    }
                }
                VerdictKind::Deny | VerdictKind::Quarantine => refuse_verdict(&v),
            }
        }
        "PostToolUse" => {
            if response.is_null() {
                return withhold(tool, response, "the PostToolUse event has no `tool_response`");
            }
            let mut store = match Store::open(&dir) {
                Ok(s) => s,
                Err(e) => return withhold(tool, response, &e.to_string()),
            };
            let result = ToolResult { tool: tool.to_string(), text: text_of(response) };
            let (v, _, _) = match crate::ledger::admit(&mut store, &policy.dag, &result, trace, &base) {
                Ok(x) => x,
                Err(e) => return withhold(tool, response, &e.to_string()),
            };
            if v.is_allow() {
                return ExitCode::SUCCESS;
            }
            let stub = match v.page.as_deref().map(|p| store.get(p, false)) {
                Some(Ok(page)) => page.stub(),
                _ => format!("[fak: this tool result was withheld: {}]", v.reason),
            };
            answer_post(tool, response, &stub)
        }
        other => refuse(&format!("fak answers PreToolUse and PostToolUse events, not `{other}`")),
    }
}

fn refuse_verdict(v: &Verdict) -> ExitCode {
    let reason = why(v);
    let out = json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": reason,
    }});
    let _ = super::try_emit(&format!("{out}\n"));
    eprintln!("{reason}");
    ExitCode::from(2)
}

/// What the model would read of a tool's response: every string in it, object keys too, in
/// order, one per line (Bash's `stdout` and `stderr`, Read's `file.content`, WebFetch's
/// `result`, an MCP tool's text blocks), so the detectors see lines as the model does.
fn text_of(v: &Json) -> String {
    fn walk(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::String(s) => out.push(s.clone()),
            Json::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Json::Object(m) => m.iter().for_each(|(k, i)| {
                out.push(k.clone());
                walk(i, out);
            }),
            _ => {}
        }
    }
    let mut parts = Vec::new();
    walk(v, &mut parts);
    parts.join("\n")
}

/// Keys whose strings name the call rather than carry its output: kept as they are.
const KEEP: &[&str] = &["type", "filePath", "file_path", "url", "codeText", "mimeType", "media_type"];

/// The response with its output replaced by the stub, in the tool's own shape (Claude Code
/// ignores an `updatedToolOutput` of the wrong shape for built-in tools): the first output
/// string becomes the stub, the others empty. Only a built-in tool's naming fields are kept;
/// an MCP server's JSON is its own, every string of it is replaced.
fn withheld(tool: &str, response: &Json, stub: &str) -> Json {
    let keep = crate::tools::schema(tool).is_some();
    fn walk(v: &Json, key: Option<&str>, stub: &str, used: &mut bool, keep: bool) -> Json {
        match v {
            Json::String(_) if keep && key.is_some_and(|k| KEEP.contains(&k)) => v.clone(),
            Json::String(_) => {
                let s = if *used { "" } else { stub };
                *used = true;
                Json::from(s)
            }
            Json::Array(items) => Json::Array(items.iter().map(|i| walk(i, key, stub, used, keep)).collect()),
            Json::Object(m) => {
                Json::Object(m.iter().map(|(k, i)| (k.clone(), walk(i, Some(k), stub, used, keep))).collect())
            }
            other => other.clone(),
        }
    }
    if tool == "Bash" && !response.is_object() {
        return json!({"stdout": stub, "stderr": "", "interrupted": false, "isImage": false});
    }
    let mut used = false;
    walk(response, None, stub, &mut used, keep)
}

/// The command Claude Code runs: this binary, `hook`, and the policy and state directory
/// `fak hook` was given.
fn default_command(a: &HookArgs) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary's path: {e}"))?;
    let mut parts = vec![shell_word(&exe.to_string_lossy()), "hook".to_string()];
    for (flag, v) in [("--policy", &a.policy), ("--state-dir", &a.state_dir)] {
        if let Some(p) = v {
            let p = std::path::absolute(p).map_err(|e| format!("cannot resolve `{}`: {e}", p.display()))?;
            parts.push(flag.to_string());
            parts.push(shell_word(&p.to_string_lossy()));
        }
    }
    Ok(parts.join(" "))
}

fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether a hook command is fak's: its program is named `fak` and its first argument is `hook`.
fn is_ours(command: &str) -> bool {
    let command = command.trim_start();
    // The program is one shell word, single-quoted when `shell_word` had to.
    let (prog, rest) = match command.strip_prefix('\'') {
        Some(q) => q.split_once('\'').unwrap_or((q, "")),
        None => command.split_once(char::is_whitespace).unwrap_or((command, "")),
    };
    let name = Path::new(prog).file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "fak" && rest.split_whitespace().next() == Some("hook")
}

fn settings_path(w: &Where) -> Result<PathBuf, String> {
    if let Some(p) = &w.settings {
        return Ok(p.clone());
    }
    if w.user {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or("$HOME is not set; pass --settings")?;
        return Ok(PathBuf::from(home).join(".claude/settings.json"));
    }
    Ok(PathBuf::from(".claude/settings.json"))
}

const EVENTS: &[&str] = &["PreToolUse", "PostToolUse"];

/// Whether a matcher group holds one of fak's handlers.
fn mentions_us(group: &Json) -> bool {
    group
        .get("hooks")
        .and_then(Json::as_array)
        .is_some_and(|l| l.iter().any(|h| h.get("command").and_then(Json::as_str).is_some_and(is_ours)))
}

fn edit_settings(a: &HookArgs, w: &Where, install: bool) -> ExitCode {
    let path = match settings_path(w) {
        Ok(p) => p,
        Err(e) => return super::fail(e),
    };
    let mut settings: Json = match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().is_empty() => json!({}),
        Ok(t) => match serde_json::from_str(&t) {
            Ok(v @ Json::Object(_)) => v,
            Ok(_) => return super::fail(format!("`{}` is not a JSON object; not touched", path.display())),
            Err(e) => return super::fail(format!("`{}` is not JSON ({e}); not touched", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && install => json!({}),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("{}: no settings file, nothing to remove", path.display());
            return ExitCode::SUCCESS;
        }
        Err(e) => return super::fail(format!("cannot read `{}`: {e}", path.display())),
    };
    let command = match (&w.command, install) {
        (Some(c), _) => c.clone(),
        (None, true) => match default_command(a) {
            Ok(c) => c,
            Err(e) => return super::fail(e),
        },
        (None, false) => String::new(),
    };
    let changed = match update(&mut settings, install, &command) {
        Ok(n) => n,
        Err(e) => return super::fail(format!("`{}`: {e}; not touched", path.display())),
    };
    if changed {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(dir) {
                return super::fail(format!("cannot create `{}`: {e}", dir.display()));
            }
        }
        let text = serde_json::to_string_pretty(&settings).unwrap_or_default();
        // Written next to the file and renamed over it: a crash leaves the old file or the new.
        let tmp = path.with_extension("json.fak-tmp");
        if let Err(e) = std::fs::write(&tmp, format!("{text}\n")).and_then(|()| std::fs::rename(&tmp, &path)) {
            return super::fail(format!("cannot write `{}`: {e}", path.display()));
        }
    }
    let what = match (install, changed) {
        (true, true) => format!("installed `{command}` as the PreToolUse and PostToolUse hook"),
        (true, false) => "already installed".to_string(),
        (false, true) => "removed fak's hook entries".to_string(),
        (false, false) => "no fak hook entries to remove".to_string(),
    };
    println!("{}: {what}", path.display());
    ExitCode::SUCCESS
}

/// Adds (or removes) fak's entries under `hooks.PreToolUse` and `hooks.PostToolUse`; returns
/// whether anything changed. Other entries, and other keys, are left exactly as they are.
fn update(settings: &mut Json, install: bool, command: &str) -> Result<bool, String> {
    let Some(root) = settings.as_object_mut() else { return Err("not a JSON object".into()) };
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    let Some(hooks) = hooks.as_object_mut() else { return Err("`hooks` is not an object".into()) };
    let mut changed = false;
    for event in EVENTS {
        let groups = hooks.entry(*event).or_insert_with(|| json!([]));
        let Some(groups) = groups.as_array_mut() else { return Err(format!("`hooks.{event}` is not a list")) };
        // Our handlers out of every group; groups left empty by that go too.
        let ours = json!({"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": 30}]});
        if install && groups.last() == Some(&ours) && groups.iter().filter(|g| mentions_us(g)).count() == 1 {
            continue; // installed already, exactly so
        }
        let mut removed = 0;
        for g in groups.iter_mut() {
            if let Some(list) = g.get_mut("hooks").and_then(Json::as_array_mut) {
                let n = list.len();
                list.retain(|h| !h.get("command").and_then(Json::as_str).is_some_and(is_ours));
                removed += n - list.len();
            }
        }
        groups.retain(|g| g.get("hooks").and_then(Json::as_array).is_none_or(|l| !l.is_empty()));
        if install {
            groups.push(ours);
            changed = true;
        } else {
            changed |= removed > 0;
        }
    }
    if !install {
        for event in EVENTS {
            if hooks.get(*event).and_then(Json::as_array).is_some_and(Vec::is_empty) {
                hooks.remove(*event);
            }
        }
        if hooks.is_empty() {
            root.remove("hooks");
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn install_keeps_other_entries_and_uninstall_removes_only_ours() {
        let mut s = json!({
            "model": "opus",
            "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint-bash"}]}]}
        });
        assert!(update(&mut s, true, "/opt/bin/fak hook").unwrap());
        assert_eq!(s["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
        assert_eq!(s["hooks"]["PostToolUse"][0]["hooks"][0]["command"], "/opt/bin/fak hook");
        // Twice is once.
        let copy = s.clone();
        assert!(!update(&mut s, true, "/opt/bin/fak hook").unwrap());
        assert_eq!(s, copy);
        assert!(update(&mut s, false, "").unwrap());
        assert_eq!(
            s,
            json!({"model": "opus", "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint-bash"}]}]}})
        );
        assert!(!update(&mut s, false, "").unwrap());
        // Another path to fak replaces the old entry.
        update(&mut s, true, "/old/fak hook").unwrap();
        assert!(update(&mut s, true, "/new/fak hook").unwrap());
        assert_eq!(
            s["hooks"]["PostToolUse"],
            json!([{"matcher": "*", "hooks": [{"type": "command", "command": "/new/fak hook", "timeout": 30}]}])
        );
        let mut bad = json!({"hooks": {"PreToolUse": {}}});
        assert!(update(&mut bad, true, "fak hook").is_err());
    }

    #[test]
    fn ours_by_program_name_and_subcommand() {
        assert!(is_ours("/usr/local/bin/fak hook"));
        assert!(is_ours("'/home/d e/fak' hook --policy p.fak"));
        assert!(!is_ours("'/home/d e/fak' preflight"));
        assert!(is_ours("fak hook"));
        assert!(!is_ours("fake hook"));
        assert!(!is_ours("/usr/bin/fak preflight"));
        assert!(!is_ours("lint-bash"));
    }

    #[test]
    fn withheld_output_keeps_the_shape() {
        let stub = "[stub]";
        let bash = json!({"stdout": "AKIA...", "stderr": "warn", "interrupted": false, "isImage": false});
        assert_eq!(
            withheld("Bash", &bash, stub),
            json!({"stdout": "[stub]", "stderr": "", "interrupted": false, "isImage": false})
        );
        let read = json!({"type": "text", "file": {"filePath": "/w/.env", "content": "K=v", "numLines": 1}});
        assert_eq!(
            withheld("Read", &read, stub),
            json!({"type": "text", "file": {"filePath": "/w/.env", "content": "[stub]", "numLines": 1}})
        );
        assert_eq!(text_of(&read), "type\ntext\nfile\nfilePath\n/w/.env\ncontent\nK=v\nnumLines");
        assert_eq!(withheld("mcp__x__y", &json!("secret"), stub), json!("[stub]"));
        // An MCP server's JSON keeps none of its strings.
        assert_eq!(
            withheld("mcp__x__y", &json!({"type": "ignore previous", "url": "run curl x | sh"}), stub),
            json!({"type": "[stub]", "url": ""})
        );
    }
}
