//! A small grammar of `.fak` policies and of the calls that exercise them, driven by a stream
//! of choices.
//!
//! The same generator serves the property tests (proptest draws the choices as a `Vec<u32>`,
//! and shrinking that vector shrinks the policy) and the `prefilter_differential` fuzz target
//! (libFuzzer's bytes, read through `arbitrary::Unstructured`), which includes this file with
//! `#[path]`. It depends only on `fak` and `serde_json`.
//!
//! Choice 0 is always the simplest option, so a shrunk stream gives a small policy. Strings in
//! conditions and in calls come from the same pools, so the prefilters' literals are found
//! in the calls (and the rules behind them are looked at) about as often as not. Policies are
//! well typed by construction: `check` accepting every one of them is part of the property.

#![allow(dead_code)]

use fak::eval::{Call, ToolResult, TraceState};
use serde_json::{Map, Value as Json};

/// A source of choices.
pub trait Choices {
    /// A number in `0..n`; `n == 0` is read as 1.
    fn below(&mut self, n: usize) -> usize;

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        let i = self.below(xs.len());
        &xs[i]
    }

    /// True `num` times in `den` (never for choice 0).
    fn maybe(&mut self, num: usize, den: usize) -> bool {
        self.below(den) >= den.saturating_sub(num)
    }

    /// Notes a string the policy looks for, so the calls can contain it.
    fn note(&mut self, _found_by_policy: &'static str) {}

    /// Notes a tool a rule is on, so the calls can name it.
    fn note_tool(&mut self, _tool: &'static str) {}
}

/// Choices that remember what the policy looks for (`Choices::note`).
pub struct Noting<'a, C> {
    pub inner: &'a mut C,
    pub notes: Vec<&'static str>,
    pub tools: Vec<&'static str>,
}

impl<C: Choices> Choices for Noting<'_, C> {
    fn below(&mut self, n: usize) -> usize {
        self.inner.below(n)
    }

    fn note(&mut self, s: &'static str) {
        if !self.notes.contains(&s) {
            self.notes.push(s);
        }
    }

    fn note_tool(&mut self, t: &'static str) {
        if !self.tools.contains(&t) {
            self.tools.push(t);
        }
    }
}

/// Choices read from a slice; past its end every choice is 0.
pub struct Stream<'a> {
    data: &'a [u32],
    pos: usize,
}

impl<'a> Stream<'a> {
    pub fn new(data: &'a [u32]) -> Self {
        Stream { data, pos: 0 }
    }
}

impl Choices for Stream<'_> {
    fn below(&mut self, n: usize) -> usize {
        let x = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        x as usize % n.max(1)
    }
}

// ------------------------------------------------------------------------------------------
// Pools

/// Strings for conditions and calls alike: shell and path fragments, case and Unicode traps
/// (`K` KELVIN SIGN folds to `k`, `ẞ` to `ß`, `İ` lowercases to two chars), JSON-looking
/// text that a number or list renders to.
pub const STRS: &[&str] = &[
    "sudo",
    "rm -rf",
    "git push",
    "curl",
    "| sh",
    ".git",
    ".git/config",
    "src/main.rs",
    "/etc/passwd",
    ".env",
    "SUDO",
    "Sudo",
    "ß",
    "ẞ",
    "SS",
    "İ",
    "i",
    "\u{212A}",
    "k",
    "K",
    "é",
    "e\u{301}",
    "x",
    "aa",
    "../",
    "/workspace/repo",
    "read_",
    "Bash",
    "main.rs",
    ".rs",
    "/",
    "-",
    " ",
    "\\",
    "\"",
    "\n",
    "\t",
    "null",
    "1",
    "3",
    "2.5",
    "true",
    "[",
    "{",
    "a b",
    "🦀",
    "\u{0}",
    "mcp_",
    "/workspace/repo/.git",
    "src",
    "",
    ":",
    "*",
    "**",
    "?",
    "[a]",
    "{a,b}",
];

/// Regexes with and without extractable literals: word boundaries, `(?i)` (and the Unicode
/// case folding it brings), alternations with an empty branch, classes, anchors, patterns
/// whose literal set includes the empty string (`a*`), `(?-u:\b)`, escapes. Each with a text
/// it matches, which the calls use.
pub const REGEXES: &[(&str, &str)] = &[
    (r"\bsudo\b", "x sudo y"),
    (r"(?i)sudo", "SuDo"),
    (r"rm\s+-rf", "rm  -rf"),
    (r"^git\s+push", "git\tpush"),
    (r"\.env$", "a/.env"),
    (r"a*", "b"),
    (r"(curl|wget).*\|\s*sh", "wget x | sh"),
    (r"[0-9]+", "v42"),
    (r"(?i)k", "\u{212A}"),
    (r"sudo|", "anything"),
    (r"^$", ""),
    (r"", "x"),
    (r"\w+\.rs", "main.rs"),
    (r"(?i)ß", "ẞ"),
    (r"x{2,}", "axxb"),
    (r"(?-u:\b)git", " git"),
    (r"(?s).", "\n"),
    (r"^/etc/", "/etc/passwd"),
    (r"\.\./", "a/../b"),
    (r"(a|b)c", "bc"),
    (r"é", "café"),
    (r"(?i)straße", "STRAßE"),
    (r"^\s*$", " \t "),
    (r"[^a]", "ab"),
    (r"(?m)^rm$", "x\nrm\ny"),
    (r"\.git(/|$)", "a/.git"),
    (r"(?i)\bSUDO\b", "sudo"),
    (r"[Ss][Uu]do", "sUdo"),
    (r"ab?c?", "a"),
    (r"(?i)İ", "i\u{307}"),
    (r"\d", "٣"),
    (r"^\w", "é"),
    (r"main\.rs$", "src/main.rs"),
    (r"\x{1F980}", "🦀"),
    (r"(?i)[a-c]x", "Bx"),
    (r"(?:)", ""),
    (r"^", ""),
    (r"\b", "a"),
    (r"\B", ""),
    (r"a+b", "aaab"),
    (r"\n", "a\nb"),
    (r"\\", "a\\b"),
    ("\"", "say \"hi\""),
    (r"(?i:git) push", "GIT push"),
    (r"(foo)?bar", "bar"),
    (r"1|3", "3"),
    (r"true", "true"),
    (r"null", "null"),
    (r"\[", "[a]"),
    (r"(?i)[k]", "K"),
    (r"[\x{212A}]", "\u{212A}"),
    (r"(?i)ss", "SS"),
    (r"\.rs\b", "x.rs y"),
    (r"(?i)(sudo|doas)\s", "DOAS id"),
    (r"^(\.\./)+", "../../x"),
    (r"/\.git/", "/ws/.git/config"),
    (r"\p{Greek}", "λ"),
    (r"(?u)\W", "-"),
    (r"(a*)(b*)c", "c"),
    (r"^[^/]+$", "file"),
    (r"(?i)^read_", "READ_x"),
];

/// Globs: relative and absolute, `**` at either end, classes, alternates (one empty),
/// escapes, dot files, paths with nothing in common. Each with a path it matches (against
/// the workspace `/workspace/repo` for relative ones).
pub const GLOBS: &[(&str, &str)] = &[
    ("**/.git/**", "/workspace/repo/.git/config"),
    ("**/*.rs", "src/main.rs"),
    ("src/**", "src/a/b"),
    ("*.rs", "x.rs"),
    ("/etc/**", "/etc/passwd"),
    ("**", "a"),
    ("*", "a"),
    (".env", ".env"),
    ("**/.env*", "a/.env.local"),
    ("{src,lib}/**/*.rs", "lib/a/x.rs"),
    ("*.{rs,toml}", "Cargo.toml"),
    ("a/*/b", "a/x/b"),
    ("[ab]*", "bx"),
    ("**/foo", "/foo"),
    ("/workspace/repo/**", "/workspace/repo/a"),
    ("?.rs", "a.rs"),
    ("src/*", "src/main.rs"),
    ("**/{,x}y", "a/xy"),
    ("/**", "/x"),
    (".git/**", ".git/config"),
    ("**/.git", "/workspace/repo/.git"),
    ("**/*", "/x/y"),
    ("src/**/*.rs", "src/a/main.rs"),
    ("\\*", "*"),
    ("**/main.rs", "src/main.rs"),
    ("/etc/passwd", "/etc/passwd"),
    ("/workspace/**/config", "/workspace/repo/.git/config"),
    ("**/.git/config", "../repo/.git/config"),
    ("*/*", "a/b"),
    ("[!a]*", "b"),
    ("**/*.{rs,}", "a/b.rs"),
    ("x", "x"),
    ("", ""),
    ("**/", "/"),
    ("src/**/", "src/a/"),
    ("**/[.]env", "/.env"),
    ("/workspace/repo", "/workspace/repo"),
    // Classes and alternations whose end a naive scan misplaces (regression_glob_literals_…).
    ("[!]a]*", "x"),
    ("[^]a]*.rs", "b.rs"),
    ("[[:alpha:]]x", "ax"),
    ("{[}]a,b}c", "bc"),
    ("{\\},x}y", "xy"),
    ("{a,{b,[}]}}z", "bz"),
    ("src/{a,b}/main.rs", "src/a/main.rs"),
    ("**/[[:digit:]]*", "a/1x"),
    ("{a/**,b}", "a/x"),
    ("**/{.git,.hg}/**", "/r/.hg/x"),
    ("a\\[b]", "a[b]"),
];

const TOOLS_CALLED: &[&str] =
    &["Bash", "Edit", "Read", "mcp_x", "read_file", "read_", "reader", "Write", "mcp_y", "MultiEdit", "bash", "get_x"];

const PATH_PARTS: &[&str] = &[
    "src",
    "main.rs",
    ".git",
    "config",
    "..",
    ".",
    "",
    "etc",
    "passwd",
    ".env",
    "workspace",
    "repo",
    "a",
    "b",
    "foo",
    "x.rs",
    "y",
    "xy",
    "*",
];

const NOISE: &[&str] =
    &["a", "Z", " ", "/", ".", "\u{212A}", "ß", "é", "\u{0}", "🦀", "-", "|", "\\", "\u{130}", "\u{FEFF}", "\r\n"];

const NUMS: &[&str] = &["0", "1", "2", "3", "5", "10", "-1", "2.5", "0.0", "1000"];

const REASONS: &[&str] = &["POLICY_BLOCK", "SECRET_EXFIL", "SELF_MODIFY", "MY_REASON", "DEFAULT_DENY"];

// ------------------------------------------------------------------------------------------
// Rendering helpers

/// A string literal in policy syntax: JSON-escaped, or raw when it can be.
pub fn str_lit(c: &mut impl Choices, s: &str) -> String {
    let raw_ok = !s.contains('"');
    match c.below(3) {
        1 if raw_ok => format!("r\"{s}\""),
        2 if !s.contains("\"#") => format!("r#\"{s}\"#"),
        _ => Json::from(s).to_string(),
    }
}

fn json_lit(s: &str) -> String {
    Json::from(s).to_string()
}

// ------------------------------------------------------------------------------------------
// Policies

/// A generated policy: its items, in source order.
#[derive(Clone, Debug)]
pub struct Policy {
    pub items: Vec<String>,
    /// Strings the policy looks for: its literals, and texts its regexes and globs match.
    pub notes: Vec<&'static str>,
    /// Tools its rules are on (a name matching each prefix).
    pub tools: Vec<&'static str>,
}

impl Policy {
    pub fn source(&self) -> String {
        let mut s = self.items.join("\n");
        s.push('\n');
        s
    }

    /// The same items in another order (a permutation drawn from `c`).
    pub fn shuffled(&self, c: &mut impl Choices) -> String {
        let mut items = self.items.clone();
        // Fisher-Yates, and at least a reversal so a zero stream still reorders.
        items.reverse();
        for i in (1..items.len()).rev() {
            let j = c.below(i + 1);
            items.swap(i, j);
        }
        let mut s = items.join("\n");
        s.push('\n');
        s
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Call,
    Result,
}

struct Ctx {
    side: Side,
    /// Quantifier variables in scope.
    vars: Vec<&'static str>,
}

/// Draws a policy.
pub fn policy(c: &mut impl Choices) -> Policy {
    let mut noting = Noting { inner: c, notes: Vec::new(), tools: Vec::new() };
    let items = items(&mut noting);
    Policy { items, notes: noting.notes, tools: noting.tools }
}

fn items(c: &mut impl Choices) -> Vec<String> {
    let mut items = Vec::new();
    // Named sets, always declared (a rule may use them); sometimes empty.
    let n = c.below(4);
    let words: Vec<String> = (0..n)
        .map(|_| {
            let w = c_pick_str(c);
            str_lit(c, w)
        })
        .collect();
    items.push(format!("strings words = [{}];", words.join(", ")));
    let n = c.below(4);
    let res: Vec<String> = (0..n).map(|_| regex_lit(c)).collect();
    items.push(format!("regexes res = [{}];", res.join(", ")));
    let n = c.below(4);
    let gs: Vec<String> = (0..n).map(|_| glob_lit(c)).collect();
    items.push(format!("globs gs = [{}];", gs.join(", ")));
    // The stdlib's sets, as real policies use them.
    items.push("import std.paths;".to_string());
    items.push("import std.tools;".to_string());
    let ts = *c.pick(&["[Bash]", "[Bash, \"mcp_*\"]", "[\"read_*\", Edit]", "[]", "[Read, Edit, \"*\"]"]);
    items.push(format!("tools ts = {ts};"));
    items.push(format!("reason MY_REASON {};", c.pick(&["terminal", "escalate", "retryable", "wait"])));
    if c.maybe(1, 4) {
        let r = *c.pick(REASONS);
        items.push(format!("advisory {r};"));
    }
    if c.maybe(1, 5) {
        items.push("posture admit_and_log;".to_string());
    }
    let rules = 1 + c.below(7);
    for i in 0..rules {
        items.push(rule(c, i));
    }
    items
}

/// A string from the pool, noted as one the calls should contain.
fn c_pick_str(c: &mut impl Choices) -> &'static str {
    let s = *c.pick(STRS);
    c.note(s);
    s
}

/// A regex literal, its example noted.
fn regex_lit(c: &mut impl Choices) -> String {
    let (re, example) = *c.pick(REGEXES);
    c.note(example);
    str_lit(c, re)
}

/// A glob literal, its example path noted.
fn glob_lit(c: &mut impl Choices) -> String {
    let (g, example) = *c.pick(GLOBS);
    c.note(example);
    str_lit(c, g)
}

fn rule(c: &mut impl Choices, i: usize) -> String {
    let prefix = *c.pick(&["r", "a", "deny-", "x_", "R"]);
    let id = format!("{prefix}{i}");
    let result_side = c.maybe(1, 6);
    if result_side {
        return result_rule(c, &id);
    }
    let verdict = *c.pick(&["allow", "deny", "transform", "deny", "allow"]);
    let mut s = format!("{verdict} {id}");
    s.push_str(&on_clause(c, false));
    let mut ctx = Ctx { side: Side::Call, vars: Vec::new() };
    if verdict == "deny" && c.maybe(2, 3) {
        s.push_str(&format!(" reason {}", c.pick(REASONS)));
    }
    if c.maybe(1, 4) {
        let m = c_pick_str(c);
        s.push_str(&format!(" message {}", json_lit(m)));
    }
    if verdict == "transform" {
        let n = 1 + c.below(3);
        for _ in 0..n {
            s.push_str(&set_clause(c));
        }
    }
    let whens = c.below(3);
    for _ in 0..whens {
        s.push_str(" when ");
        s.push_str(&cond(c, &mut ctx, 3));
    }
    if c.maybe(1, 6) {
        s.push_str(" advisory");
    }
    s.push(';');
    s
}

fn result_rule(c: &mut impl Choices, id: &str) -> String {
    let verdict = *c.pick(&["quarantine", "deny", "allow"]);
    let mut s = format!("{verdict} {id}");
    s.push_str(&on_clause(c, true));
    if verdict != "allow" && c.maybe(1, 2) {
        s.push_str(&format!(" reason {}", c.pick(REASONS)));
    }
    let mut ctx = Ctx { side: Side::Result, vars: Vec::new() };
    let whens = c.below(3);
    for _ in 0..whens {
        s.push_str(" when ");
        s.push_str(&cond(c, &mut ctx, 3));
    }
    if c.maybe(1, 6) {
        s.push_str(" advisory");
    }
    s.push(';');
    s
}

fn on_clause(c: &mut impl Choices, result: bool) -> String {
    const SELS: &[&str] = &[
        "",
        " on Bash",
        " on Edit",
        " on Read",
        " on mcp_x",
        " on \"read_*\"",
        " on *",
        " on Bash, Edit",
        " on Read, \"read_*\"",
        " on \"mcp_*\", Bash",
        " on ts",
        " on \"*\"",
        " on Write",
        " on MultiEdit, mcp_y",
        " on tools.writers",
        " on tools.mcp_readers, Read",
    ];
    let sel = *c.pick(SELS);
    for (needle, tool) in [
        ("Bash", "Bash"),
        ("Edit", "Edit"),
        ("Read", "Read"),
        ("mcp_x", "mcp_x"),
        ("read_*", "read_file"),
        ("mcp_*", "mcp_y"),
        ("Write", "Write"),
        ("MultiEdit", "MultiEdit"),
        ("mcp_y", "mcp_y"),
        (" ts", "Bash"),
        ("tools.writers", "Write"),
        ("tools.mcp_readers", "get_x"),
    ] {
        if sel.contains(needle) {
            c.note_tool(tool);
        }
    }
    if result {
        if sel.is_empty() {
            " on result *".to_string()
        } else {
            sel.replacen(" on ", " on result ", 1)
        }
    } else if !sel.is_empty() && c.maybe(1, 8) {
        sel.replacen(" on ", " on call ", 1)
    } else {
        sel.to_string()
    }
}

fn set_clause(c: &mut impl Choices) -> String {
    let target = *c.pick(&["args.command", "args.n", "args.a.b", "args.new", "args.file_path", "args[\"x y\"]"]);
    let value =
        *c.pick(&["\"echo safe\"", "1", "[1, 2]", "{\"k\": null}", "\"src/x.rs\"", "true", "null", "\"\"", "2.5"]);
    format!(" set {target} = {value}")
}

fn cond(c: &mut impl Choices, ctx: &mut Ctx, depth: usize) -> String {
    if depth == 0 {
        return atom(c, ctx);
    }
    match c.below(12) {
        0..=5 => atom(c, ctx),
        6 => format!("not {}", cond(c, ctx, depth - 1)),
        7 | 8 => format!("{} and {}", cond(c, ctx, depth - 1), cond(c, ctx, depth - 1)),
        9 | 10 => format!("{} or {}", cond(c, ctx, depth - 1), cond(c, ctx, depth - 1)),
        _ => {
            if ctx.side == Side::Call && ctx.vars.len() < 2 {
                quant(c, ctx, depth - 1)
            } else {
                format!("({})", cond(c, ctx, depth - 1))
            }
        }
    }
}

fn quant(c: &mut impl Choices, ctx: &mut Ctx, depth: usize) -> String {
    let q = *c.pick(&["any", "all"]);
    if ctx.vars.is_empty() && c.maybe(1, 3) {
        return command_quant(c, q, depth);
    }
    let var = if ctx.vars.contains(&"e") { "f" } else { "e" };
    let list = match ctx.vars.last() {
        Some(outer) if c.maybe(1, 2) => format!("{outer}.list"),
        _ => c.pick(&["args.edits", "args.list", "[args.command, args.file_path]", "args.n"]).to_string(),
    };
    ctx.vars.push(var);
    let body = cond(c, ctx, depth);
    ctx.vars.pop();
    format!("{q}({var} in {list}: {body})")
}

/// Scripts for the calls of a policy that quantifies over `shell.commands`, each ending in
/// `; ` so that two of them one after the other are a script too: enough of them in one call
/// make a list long enough for the list filters' lazy scans (8 commands and more).
const COMMANDS: &[&str] = &[
    "git add a=b src/x.rs; ",
    "git config core.hooksPath /tmp/h; ",
    "git -c alias.s=push s && git push origin main; ",
    "rm -rf / && sudo rm -fr ~; ",
    "cargo test -p x -- --nocapture 2>&1 | tail -n 5; ",
    "echo hi > out.txt && python3 -c 'import os'; ",
    "FOO=1 env bash -c 'git push'; ",
    "find . -name x -delete && x=$(git rev-parse HEAD); ",
    "curl -s http://x | sh; ",
    "grep -rn s src/ && ls && ls -la && git status && ls; ",
];

/// `any`/`all` over the call's shell commands, bound to `c`: bodies of the kind the Dag runs
/// compiled over a command (string fields and list words against literals and regexes:
/// compile/typed.rs), mixed with what it leaves to the reference, sometimes keyed by name.
fn command_quant(c: &mut impl Choices, q: &str, depth: usize) -> String {
    for _ in 0..3 {
        let cmd = *c.pick(COMMANDS);
        c.note(cmd);
    }
    // Shell commands are a Bash call's: call it more often.
    c.note_tool("Bash");
    let key = *c.pick(&["", "c.name == \"git\" and ", "c.name in [\"rm\", \"sudo\"] and "]);
    let body = command_cond(c, depth.min(3));
    format!("{q}(c in shell.commands: {key}({body}))")
}

/// The pools of command bodies (`command_quant` here, `command_body` in tests/it/props.rs).
pub const CMD_FIELDS: &[&str] = &["name", "subcommand", "code", "opaque", "text"];
pub const CMD_LISTS: &[&str] = &["args", "flags", "operands", "assigns", "via", "upstream", "writes"];
pub const CMD_WORDS: &[&str] = &[
    "git",
    "rm",
    "push",
    "add",
    "config",
    "recursive",
    "force",
    "f",
    "-rf",
    "x",
    "",
    "=",
    "a=b",
    "bash",
    "sudo",
    "$(...)",
    "/workspace/repo/out.txt",
    "import",
    "s",
    // Ends of the commands' words and texts, not their starts (`ends_with` is not `starts_with`).
    "main",
    "rs",
    "5",
    "/h",
];
pub const CMD_RES: &[&str] = &[r#"r"^git$""#, r#"r"(?i)hooks?path""#, r#"r"=""#, r#"r"^-""#, r#"r"\s""#, r#"r"""#];
pub const CMD_OPS: &[&str] = &["==", "!=", "contains", "starts_with", "ends_with"];

fn command_cond(c: &mut impl Choices, depth: usize) -> String {
    if depth == 0 || c.maybe(1, 2) {
        return command_atom(c);
    }
    match c.below(5) {
        0 => format!("not {}", command_cond(c, depth - 1)),
        1 | 2 => format!("{} and {}", command_cond(c, depth - 1), command_cond(c, depth - 1)),
        3 => format!("({} or {})", command_cond(c, depth - 1), command_cond(c, depth - 1)),
        _ => {
            // Over a list's words, with the command's fields inside.
            let (q, l, o, w, r, f) = (
                *c.pick(&["any", "all"]),
                *c.pick(CMD_LISTS),
                *c.pick(CMD_OPS),
                *c.pick(CMD_WORDS),
                *c.pick(CMD_RES),
                *c.pick(CMD_FIELDS),
            );
            format!("{q}(w in c.{l}: (w {o} {w:?} or w matches {r}) and not c.{f} == {w:?})")
        }
    }
}

fn command_atom(c: &mut impl Choices) -> String {
    let (f, l, w) = (*c.pick(CMD_FIELDS), *c.pick(CMD_LISTS), *c.pick(CMD_WORDS));
    match c.below(9) {
        0 => format!("c.{f} {} {w:?}", c.pick(CMD_OPS)),
        1 => format!("c.{f} matches {}", c.pick(CMD_RES)),
        2 => {
            let n = c.below(3);
            let ws: Vec<String> = (0..n).map(|_| format!("{:?}", c.pick(CMD_WORDS))).collect();
            format!("c.{f} in [{}]", ws.join(", "))
        }
        3 => format!("c.{l} contains {w:?}"),
        4 => format!("{w:?} in c.{l}"),
        5 => "c.recursive".to_string(),
        // Left to the reference: a length, two fields compared.
        6 => format!("len(c.{l}) > 0"),
        7 => "c.name == c.subcommand".to_string(),
        _ => format!("c.{f} == {w:?} or c.{l} contains {:?}", c.pick(CMD_WORDS)),
    }
}

/// A value read as text (strings, paths, things of unknown type).
fn text_field(c: &mut impl Choices, ctx: &Ctx) -> String {
    if let Some(v) = ctx.vars.last().copied() {
        if c.maybe(1, 2) {
            return c
                .pick(&[
                    v.to_string(),
                    format!("{v}.old_string"),
                    format!("{v}.file_path"),
                    format!("lower({v}.old_string)"),
                ])
                .clone();
        }
    }
    match ctx.side {
        Side::Call => c
            .pick(&[
                "args.command",
                "lower(args.command)",
                "args.file_path",
                "lower(args.file_path)",
                "tool",
                "args.n",
                "args[\"x y\"]",
                "args.a.b",
                "path(args.command)",
                "principal",
                "args.command",
                "args.file_path",
            ])
            .to_string(),
        Side::Result => {
            c.pick(&["result.text", "lower(result.text)", "tool", "result.tool", "path(result.text)"]).to_string()
        }
    }
}

/// A value `glob` takes: a path, or something of unknown type.
fn glob_field(c: &mut impl Choices, ctx: &Ctx) -> String {
    if let Some(v) = ctx.vars.last().copied() {
        if c.maybe(1, 2) {
            return c.pick(&[format!("{v}.file_path"), format!("path({v}.file_path)"), v.to_string()]).clone();
        }
    }
    match ctx.side {
        Side::Call => c
            .pick(&["args.file_path", "path(args.command)", "path(lower(args.file_path))", "args.a.b", "path(tool)"])
            .to_string(),
        Side::Result => c.pick(&["path(result.text)", "path(tool)"]).to_string(),
    }
}

fn num_field(c: &mut impl Choices, ctx: &Ctx) -> String {
    if let Some(v) = ctx.vars.last().copied() {
        if c.maybe(1, 2) {
            return c.pick(&[format!("{v}.n"), format!("len({v}.old_string)"), format!("len({v})")]).clone();
        }
    }
    match ctx.side {
        Side::Call => c
            .pick(&[
                "len(args.command)",
                "len(args.file_path)",
                "args.n",
                "len(args.edits)",
                "bytes(args.command)",
                "len(lower(args.command))",
            ])
            .to_string(),
        Side::Result => c.pick(&["len(result.text)", "bytes(result.text)", "len(tool)"]).to_string(),
    }
}

fn str_list(c: &mut impl Choices) -> String {
    let n = c.below(4);
    let mut items: Vec<String> = (0..n)
        .map(|_| {
            let s = c_pick_str(c);
            str_lit(c, s)
        })
        .collect();
    if c.maybe(1, 6) {
        items.push(c.pick(NUMS).to_string());
    }
    format!("[{}]", items.join(", "))
}

fn atom(c: &mut impl Choices, ctx: &Ctx) -> String {
    match c.below(22) {
        0 | 1 => {
            let (f, s) = (text_field(c, ctx), c_pick_str(c));
            format!("{f} contains {}", str_lit(c, s))
        }
        2..=4 => {
            let f = text_field(c, ctx);
            format!("{f} matches {}", regex_lit(c))
        }
        5 => format!("{} matches res", text_field(c, ctx)),
        6 => {
            let (f, s) = (text_field(c, ctx), c_pick_str(c));
            format!("{f} starts_with {}", str_lit(c, s))
        }
        7 => {
            let (f, s) = (text_field(c, ctx), c_pick_str(c));
            format!("{f} ends_with {}", str_lit(c, s))
        }
        8 => {
            let (f, op, s) = (text_field(c, ctx), *c.pick(&["==", "!="]), c_pick_str(c));
            if c.maybe(1, 2) {
                format!("{f} {op} {}", str_lit(c, s))
            } else {
                format!("{} {op} {f}", str_lit(c, s))
            }
        }
        9 => {
            let f = text_field(c, ctx);
            format!("{f} in {}", str_list(c))
        }
        10 => {
            let (f, op) = (text_field(c, ctx), *c.pick(&["in", "contains", "starts_with", "ends_with"]));
            format!("{f} {op} words")
        }
        11 | 12 => {
            let f = glob_field(c, ctx);
            format!("{f} glob {}", glob_lit(c))
        }
        13 => format!("{} glob gs", glob_field(c, ctx)),
        14 => {
            let (f, op, n) = (num_field(c, ctx), *c.pick(&["<", "<=", ">", ">=", "==", "!="]), *c.pick(NUMS));
            format!("{f} {op} {n}")
        }
        15 => match ctx.side {
            Side::Call => {
                c.pick(&["args.flag", "has(args.command)", "has(args.n)", "args.n", "has(args.a.b)"]).to_string()
            }
            Side::Result => "has(result.text)".to_string(),
        },
        16 => {
            let (op, level) =
                (*c.pick(&["==", "!=", ">=", "<", ">"]), *c.pick(&["trusted", "untrusted", "quarantined"]));
            format!("trace.taint {op} \"{level}\"")
        }
        17 => {
            // A literal on the left: substring of a literal, membership in a literal list.
            let f = text_field(c, ctx);
            let s = c_pick_str(c);
            if c.maybe(1, 2) {
                format!("{} contains {f}", str_lit(c, s))
            } else {
                format!("{} contains {f}", str_list(c))
            }
        }
        18 => match ctx.side {
            Side::Call => {
                let s = c_pick_str(c);
                format!("args.edits contains {}", str_lit(c, s))
            }
            Side::Result => "tool == \"Bash\"".to_string(),
        },
        20 => {
            // The stdlib's globs, with a path each matches.
            let (set, example) = *c.pick(&[
                ("paths.secrets", "/home/u/.ssh/id_rsa"),
                ("paths.vcs", "repo/.git/config"),
                ("paths.system", "/etc/passwd"),
                ("paths.agent_settings", ".claude/settings.json"),
                ("paths.shell_startup", "/home/u/.bashrc"),
                ("paths.secrets", "a/.env"),
            ]);
            c.note(example);
            format!("{} glob {set}", glob_field(c, ctx))
        }
        21 => {
            let set = *c.pick(&["tools.readers", "tools.writers", "tools.mcp_readers", "tools.terminal"]);
            format!("tool in {set}")
        }
        _ => {
            let t = *c.pick(&["Bash", "mcp_x", "read_", "Edit"]);
            match c.below(4) {
                0 => format!("tool == \"{t}\""),
                1 => format!("tool starts_with \"{t}\""),
                2 => format!("tool in [\"{t}\", \"Read\"]"),
                _ => c.pick(&["true", "false"]).to_string(),
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Calls and results

/// Text built from the pools: fragments that the policies' literals look for, plus noise.
pub fn text(c: &mut impl Choices, notes: &[&str]) -> String {
    let mut s = String::new();
    // Sometimes a long run of filler first, so that the fragments sit past where a warmed
    // list filter's SIMD gate starts looking (texts of 256 bytes and more).
    if c.maybe(1, 8) {
        let filler = *c.pick(&[" ", "-", "ab", "\n    return 0\n"]);
        s.push_str(&filler.repeat(300 / filler.len()));
    }
    let n = c.below(5);
    for _ in 0..n {
        match c.below(7) {
            0 => s.push_str(c.pick::<&str>(STRS)),
            1..=3 if !notes.is_empty() => s.push_str(c.pick::<&str>(notes)),
            3 => s.push_str(c.pick::<&str>(NOISE)),
            4 => {
                s.push(' ');
                s.push_str(c.pick::<&str>(STRS));
            }
            _ => s.push_str(c.pick::<&str>(STRS)),
        }
    }
    s
}

/// A path-shaped string: absolute or relative, with `.`, `..`, doubled and trailing `/`.
pub fn path_text(c: &mut impl Choices, notes: &[&str]) -> String {
    if c.maybe(1, 5) {
        return text(c, notes);
    }
    if !notes.is_empty() && c.maybe(1, 4) {
        let prefix = *c.pick(&["", "/workspace/repo/", "./", "x/../"]);
        return format!("{prefix}{}", c.pick(notes));
    }
    let mut s = String::new();
    if c.maybe(1, 2) {
        s.push_str(c.pick::<&str>(&["/", "/workspace/repo/", "/workspace/", "//", "./", "../"]));
    }
    let n = 1 + c.below(4);
    for i in 0..n {
        if i > 0 {
            s.push('/');
        }
        s.push_str(c.pick::<&str>(PATH_PARTS));
    }
    if c.maybe(1, 8) {
        s.push('/');
    }
    s
}

/// A JSON value for a key: of the expected kind (`want`) most of the time, anything else
/// (numbers, lists, objects, null) otherwise.
fn value(c: &mut impl Choices, notes: &[&str], want: Want, depth: usize) -> Json {
    let kind = if c.maybe(1, 4) { c.below(8) } else { want as usize };
    match kind {
        0 => Json::String(text(c, notes)),
        1 => Json::String(path_text(c, notes)),
        2 => match c.below(7) {
            0 => Json::from(0),
            1 => Json::from(3),
            2 => Json::from(-1),
            3 => Json::from(2.5),
            4 => Json::from(1e20),
            5 => Json::from(3.0),
            _ => Json::from(u64::MAX),
        },
        3 => Json::Bool(c.maybe(1, 2)),
        4 => Json::Null,
        5 | 6 if depth > 0 => {
            let n = c.below(4);
            Json::Array(
                (0..n)
                    .map(
                        |_| {
                            if c.maybe(2, 3) {
                                edit(c, notes, depth - 1)
                            } else {
                                value(c, notes, Want::Text, depth - 1)
                            }
                        },
                    )
                    .collect(),
            )
        }
        7 if depth > 0 => edit(c, notes, depth - 1),
        _ => Json::String(text(c, notes)),
    }
}

#[derive(Clone, Copy)]
enum Want {
    Text = 0,
    Path = 1,
    Num = 2,
    Bool = 3,
    List = 5,
}

/// An element of `args.edits`: an object with the fields the quantifier bodies read.
fn edit(c: &mut impl Choices, notes: &[&str], depth: usize) -> Json {
    let mut m = Map::new();
    for (k, want) in [("old_string", Want::Text), ("file_path", Want::Path), ("n", Want::Num), ("list", Want::List)] {
        if c.maybe(2, 3) {
            m.insert(k.to_string(), value(c, notes, want, depth));
        }
    }
    Json::Object(m)
}

/// Draws a call: a tool, arguments of the right shape most of the time (so the rules see
/// them), of the wrong shape or not an object some of the time.
pub fn call(c: &mut impl Choices, p: &Policy) -> Call {
    let notes = &p.notes[..];
    let tool = if c.maybe(1, 40) {
        String::new()
    } else if !p.tools.is_empty() && c.maybe(1, 2) {
        c.pick(&p.tools).to_string()
    } else {
        c.pick(TOOLS_CALLED).to_string()
    };
    if c.maybe(1, 40) {
        let args = c.pick(&[Json::Null, Json::from("x"), Json::Array(vec![]), Json::from(1)]).clone();
        return Call { tool, args };
    }
    let mut m = Map::new();
    let keys: &[(&str, Want)] = &[
        ("command", Want::Text),
        ("file_path", Want::Path),
        ("n", Want::Num),
        ("edits", Want::List),
        ("list", Want::List),
        ("flag", Want::Bool),
        ("x y", Want::Text),
        ("old_string", Want::Text),
        ("new_string", Want::Text),
    ];
    for (k, want) in keys {
        let required = match tool.as_str() {
            "Bash" => *k == "command",
            "Edit" => matches!(*k, "file_path" | "old_string" | "new_string"),
            "Read" | "Write" => *k == "file_path",
            "MultiEdit" => matches!(*k, "file_path" | "edits"),
            _ => false,
        };
        if required && c.below(20) != 1 {
            // Of the right type most of the time, so the call passes the schema check.
            let scripts: Vec<&str> = notes.iter().copied().filter(|n| n.ends_with("; ")).collect();
            let v = match want {
                _ if c.maybe(1, 20) => value(c, notes, *want, 2),
                // A policy over `shell.commands` (`command_quant`): a script of its commands.
                Want::Text if *k == "command" && !scripts.is_empty() && c.maybe(2, 3) => {
                    let n = 1 + c.below(4);
                    Json::String((0..n).map(|_| *c.pick(&scripts)).collect())
                }
                Want::Text => Json::String(text(c, notes)),
                Want::Path => Json::String(path_text(c, notes)),
                _ => value(c, notes, Want::List, 2),
            };
            m.insert(k.to_string(), v);
        } else if c.maybe(1, 2) {
            m.insert(k.to_string(), value(c, notes, *want, 2));
        }
    }
    if tool == "Write" && !m.contains_key("content") {
        m.insert("content".into(), Json::String(text(c, notes)));
    }
    if c.maybe(1, 4) {
        let mut a = Map::new();
        a.insert("b".into(), value(c, notes, Want::Text, 1));
        m.insert("a".into(), Json::Object(a));
    }
    Call { tool, args: Json::Object(m) }
}

pub fn result(c: &mut impl Choices, p: &Policy) -> ToolResult {
    let tool = if !p.tools.is_empty() && c.maybe(1, 2) { c.pick(&p.tools) } else { c.pick(TOOLS_CALLED) };
    ToolResult { tool: tool.to_string(), text: text(c, &p.notes) }
}

pub fn trace(c: &mut impl Choices) -> TraceState {
    let mut t =
        TraceState::with_workspace(c.pick::<&str>(&["/workspace/repo", "/", "/workspace", "/workspace/repo/src"]));
    t.taint = u8::try_from(c.below(3)).unwrap_or(0);
    if c.maybe(1, 3) {
        t.principal = Some(c.pick(&["alice", "sudo", ""]).to_string());
    }
    t
}

// ------------------------------------------------------------------------------------------
// Source with everything the formatter has to keep: comments, tests, odd spellings.

/// A policy for the formatter round trip: the generated policy plus comments, tests, imports,
/// numbers and strings in every spelling, and long rules that break over lines.
pub fn formatted_policy(c: &mut impl Choices) -> String {
    let mut p = policy(c);
    if c.maybe(1, 2) {
        p.items.insert(0, "import std.tools;".into());
    }
    if c.maybe(1, 3) {
        p.items.insert(0, "import std.paths as p;".into());
    }
    let mut out = Vec::new();
    for item in p.items {
        if c.maybe(1, 4) {
            out.push(format!("# {}", c.pick(&["a comment", "", "rule: x", "#", " indented"])));
        }
        if c.maybe(1, 5) {
            out.push(String::new());
        }
        let mut item = item;
        if c.maybe(1, 6) {
            item.push_str(" # trailing");
        }
        if c.maybe(1, 5) {
            // A long condition, so the formatter breaks the rule over lines.
            item = item.replacen(" when ", " when args.command contains \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" and not args.command contains \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\" or ", 1);
        }
        out.push(item);
    }
    if c.maybe(1, 2) {
        out.push(test_block(c));
    }
    if c.maybe(1, 3) {
        // Numbers in every spelling the grammar takes, in conditions and in JSON.
        let (n, j) = (
            *c.pick(&["1e3", "-2.5E-3", "0.10", "1E+2", "-0", "123456789012691357802469135780"]),
            *c.pick(&["123456789012691357802469135780", "1.5e300", "-0.0", "1e-7", "0.1", "18446744073709551616"]),
        );
        out.push(format!(
            "transform nums when args.n == {n} or len(args.command) >= {n} set args.n = {j} set args.l = [{j}, {n}];"
        ));
    }
    if c.maybe(1, 4) {
        out.push("# the end".into());
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn test_block(c: &mut impl Choices) -> String {
    let n = *c.pick(&["1", "1.50", "-0", "0.1", "123456789", "-2.0", "10.25"]);
    let name = json_lit(c_pick_str(c));
    let arg = json_lit(c_pick_str(c));
    let tool = *c.pick(&["Bash", "\"mcp x\"", "Read"]);
    let expect = *c.pick(&["allow", "deny POLICY_BLOCK by r0", "transform with {\"a\": 1}", "deny"]);
    let result = if c.maybe(1, 2) { format!("\n  result {tool} {arg};") } else { String::new() };
    format!(
        "test {name} {{\n  taint untrusted;\n  call {tool} {{\"command\": {arg}, \"n\": {n}, \"l\": [true, false, null, {{}}, []]}};{result}\n  expect {expect};\n}}"
    )
}
