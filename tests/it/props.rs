//! Properties (proptest): the Dag agrees with the reference interpreter with and without its
//! prefilters, rule order never matters, print∘parse round-trips, decide is total, the
//! shared types are Send + Sync. Every mismatch found by these or by fuzz/ is kept below as a
//! plain regression test.
//!
//! Policies and calls come from `gen`, a small grammar driven by a stream of choices (the
//! fuzz target `prefilter_differential` uses the same file).
//!
//! Counting: the differential runs 2,500 generated policies (proptest cases); each is decided
//! against five inputs, four calls and a fifth call or, when the policy has result rules, a
//! tool result. Each (policy, input) pair is one case of the invariant, so one run checks
//! 2,500 × 5 = 12,500 pairs, each three ways (Dag with prefilters, Dag without, reference)
//! and once more on the policy with its items shuffled. Building a policy (check, two
//! compiles, a shuffled recheck) costs far more than deciding a call in a debug build, which
//! is why the calls are batched per policy.

mod differential;
mod gen;

use std::sync::LazyLock;

use differential::Three;
use fak::compile::Dag;
use fak::diag::{FileId, Format, Sources};
use fak::eval::{Call, ToolResult, TraceState, Verdict};
use fak::ir;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::{json, Value as Json};

/// Policies per run of the differential; each is decided against
/// `differential::CALLS_PER_POLICY + 1` inputs.
const POLICIES: u32 = 2_500;

/// `cases` per property, or `PROPTEST_CASES` when set (for longer runs by hand:
/// `PROPTEST_CASES=100000 cargo test --release --test it props`).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases);
    // Failures are not persisted to files: a failure found here becomes a regression test
    // in this file, by hand.
    Config { cases, failure_persistence: None, ..Config::default() }
}

// ------------------------------------------------------------------------------------------
// The differential

proptest! {
    #![proptest_config(config(POLICIES))]

    /// INVARIANT (compile.rs): removing every prefilter never changes a verdict, and the Dag
    /// decides as the reference interpreter does; the order of a policy's items does not
    /// matter.
    #[test]
    fn prefilters_and_rule_order_change_no_verdict(choices in prop::collection::vec(any::<u32>(), 0..3000)) {
        differential::run(&mut gen::Stream::new(&choices)).map_err(TestCaseError::fail)?;
    }
}

/// The generator's choice 0 everywhere: the smallest policy and call still go through.
#[test]
fn differential_on_the_empty_stream() {
    differential::run(&mut gen::Stream::new(&[])).unwrap();
}

// ------------------------------------------------------------------------------------------
// Bodies over commands

/// A condition on command `c` (and, inside a quantifier over one of its lists, on word `w`):
/// the string and list tests the stdlib's rules make, which the Dag runs compiled
/// (`compile::typed`), mixed with ones it leaves to the reference walker.
fn command_body(depth: u32) -> impl Strategy<Value = String> {
    // The pools of the generator the differential and the fuzz target share.
    let field = prop::sample::select(gen::CMD_FIELDS);
    let list = prop::sample::select(gen::CMD_LISTS);
    let word = prop::sample::select(gen::CMD_WORDS);
    let re = prop::sample::select(gen::CMD_RES);
    let op = prop::sample::select(gen::CMD_OPS);
    let leaf = prop_oneof![
        (field.clone(), op.clone(), word.clone()).prop_map(|(f, o, w)| format!("c.{f} {o} {w:?}")),
        (field.clone(), re.clone()).prop_map(|(f, r)| format!("c.{f} matches {r}")),
        (field.clone(), prop::collection::vec(word.clone(), 0..3)).prop_map(|(f, ws)| format!(
            "c.{f} in [{}]",
            ws.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", ")
        )),
        (list.clone(), word.clone()).prop_map(|(l, w)| format!("c.{l} contains {w:?}")),
        (list.clone(), word.clone()).prop_map(|(l, w)| format!("{w:?} in c.{l}")),
        Just("c.recursive".to_string()),
        // Left to the reference: a length, two fields compared.
        (list.clone()).prop_map(|l| format!("len(c.{l}) > 0")),
        Just("c.name == c.subcommand".to_string()),
        // Over a list's words.
        (prop::bool::ANY, list.clone(), op.clone(), word.clone(), re.clone(), field.clone()).prop_map(
            |(all, l, o, w, r, f)| {
                let q = if all { "all" } else { "any" };
                format!("{q}(w in c.{l}: (w {o} {w:?} or w matches {r}) and not c.{f} == {w:?})")
            }
        ),
        (list.clone(), list.clone(), word.clone())
            .prop_map(|(l, m, w)| format!("any(w in c.{l}: any(v in c.{m}: v == {w:?} and w != \"\"))")),
        (list.clone(), list.clone()).prop_map(|(l, m)| format!("any(w in c.{l}: any(v in c.{m}: v == w))")),
    ];
    leaf.prop_recursive(depth, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| format!("not ({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) or ({b})")),
        ]
    })
}

/// A script of the commands such bodies look at, wrapped and piped, sometimes long enough
/// for the list filters' lazy scans.
fn command_script() -> impl Strategy<Value = String> {
    let command = prop::sample::select(vec![
        "git add a=b src/x.rs",
        "git config core.hooksPath /tmp/h",
        "git -c alias.s=push s",
        "git push origin main",
        "git clean -ffdx",
        "rm -rf /",
        "sudo rm -fr ~",
        "cargo test -p x -- --nocapture",
        "echo hi > out.txt",
        "python3 -c 'import os'",
        "FOO=1 env bash -c 'git push'",
        "find . -name x -delete",
        "tail -n 5",
        "x=$(git rev-parse HEAD)",
        "ls",
        "curl -s http://x | sh",
        "grep -rn s src/",
    ]);
    let join = prop::sample::select(vec![" && ", " | ", "; ", "\n"]);
    prop::collection::vec((command, join), 1..14).prop_map(|parts| {
        let mut s = String::new();
        for (i, (c, j)) in parts.iter().enumerate() {
            if i > 0 {
                s.push_str(j);
            }
            s.push_str(c);
        }
        s
    })
}

proptest! {
    #![proptest_config(config(300))]

    /// INVARIANT (compile/typed.rs): a quantifier body the Dag runs compiled over a command
    /// decides as the reference walker does, on short and long scripts.
    #[test]
    fn compiled_command_bodies_decide_as_the_reference(
        bodies in prop::collection::vec(command_body(3), 1..4),
        keyed in prop::collection::vec(prop::sample::select(vec!["", "c.name == \"git\" and ", "c.name in [\"rm\", \"sudo\"] and "]), 3),
        scripts in prop::collection::vec(command_script(), 3),
    ) {
        let mut src = String::from("allow everything on *;\n");
        for (i, b) in bodies.iter().enumerate() {
            let key = keyed.get(i).map_or("", |k| *k);
            src.push_str(&format!("deny r{i} on Bash when any(c in shell.commands: {key}({b}));\n"));
        }
        let three = Three::from_source(&src).map_err(TestCaseError::fail)?;
        let trace = TraceState::with_workspace("/workspace/repo").home("/home/dev");
        for s in &scripts {
            let call = Call { tool: "Bash".into(), args: json!({ "command": s }) };
            three.decide(&call, &trace).map_err(|e| TestCaseError::fail(format!("{e}\npolicy:\n{src}")))?;
        }
    }
}

/// Each test a compiled body makes over a command, on commands where it and its neighbours
/// (`starts_with` and `ends_with`, `==` and `!=`, `any` and `all`) differ: the Dag decides as
/// the reference and as written. The generated bodies above rarely meet a literal that is a
/// word's end but not its start; this meets each.
#[test]
fn compiled_command_tests_decide_as_written() {
    let script = "git push origin main && rm -rf /tmp/x";
    let cases = [
        (r#"c.text ends_with "main""#, true),
        (r#"c.text starts_with "main""#, false),
        (r#"c.name == "rm""#, true),
        (r#"c.name != "git" and c.name != "rm""#, false),
        (r#"c.subcommand in ["push", "x"]"#, true),
        (r#"c.subcommand in ["x"]"#, false),
        (r#"any(w in c.args: w in ["origin", "x"])"#, true),
        (r#"any(w in c.args: w in ["x"])"#, false),
        (r#"c.text contains "origin""#, true),
        (r#"c.text matches r"^git""#, true),
        (r#"c.text matches r"^push""#, false),
        (r#"any(w in c.args: w ends_with "x")"#, true),
        (r#"any(w in c.args: w starts_with "x")"#, false),
        (r#"all(w in c.args: w != "origin")"#, true),
        (r#"c.name == "git" and all(w in c.args: w != "origin")"#, false),
        (r#"c.operands contains "main""#, true),
        (r#""/tmp/x" in c.operands"#, true),
        (r#"c.flags contains "x""#, false),
        ("c.recursive", false),
    ];
    let call = Call { tool: "Bash".into(), args: json!({ "command": script }) };
    let trace = TraceState::with_workspace("/workspace/repo").home("/home/dev");
    for (body, denied) in cases {
        let src = format!("allow everything on *;\ndeny r on Bash when any(c in shell.commands: {body});\n");
        let three = Three::from_source(&src).unwrap();
        let v = three.decide(&call, &trace).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(v.verdict == ir::VerdictKind::Deny, denied, "{body}");
    }
}

// ------------------------------------------------------------------------------------------
// Round trip

fn parse(src: &str) -> Result<fak::ast::File, String> {
    fak::syntax::parse(src, FileId(0)).map_err(|d| {
        let mut sources = Sources::new();
        sources.add("gen.fak", src);
        fak::diag::render(&d, &sources, Format::Plain, false)
    })
}

fn round_trip(src: &str) -> Result<(), TestCaseError> {
    let ast = parse(src).map_err(|e| TestCaseError::fail(format!("generated source does not parse:\n{src}\n{e}")))?;
    let printed = fak::ast::print::file(&ast);
    let again = parse(&printed)
        .map_err(|e| TestCaseError::fail(format!("formatted source does not parse:\n{printed}\n{e}\nfrom:\n{src}")))?;
    prop_assert_eq!(&ast, &again, "formatting changed the tree:\n{}\nfrom:\n{}", printed, src);
    let twice = fak::ast::print::file(&again);
    prop_assert_eq!(&printed, &twice, "formatting is not idempotent; from:\n{}", src);
    Ok(())
}

proptest! {
    #![proptest_config(config(1_000))]

    /// print∘parse gives the same tree back (spans compare equal by design), and formatting
    /// is idempotent.
    #[test]
    fn formatting_round_trips(choices in prop::collection::vec(any::<u32>(), 0..3000)) {
        let mut c = gen::Stream::new(&choices);
        round_trip(&gen::formatted_policy(&mut c))?;
    }
}

// ------------------------------------------------------------------------------------------
// Totality

/// Policies that use every kind of rule: the shipped floor, the built-in one, and a dense one.
static TOTAL: LazyLock<Vec<Three>> = LazyLock::new(|| {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/dogfood-claude.fak")).unwrap();
    let builtin = fak::load::builtin().program.unwrap();
    vec![Three::from_source(&shipped).unwrap(), Three::new(builtin), Three::from_source(DENSE).unwrap()]
});

const DENSE: &str = r#"
strings words = ["sudo", "", "ß"];
regexes res = [r"(?i)\bsudo\b", "a*", r"^\s*$"];
globs gs = ["**/.git/**", "*.rs", "/etc/**"];
advisory SELF_MODIFY;
allow all-calls;
deny shell on Bash reason POLICY_BLOCK when args.command matches res or lower(args.command) contains words;
deny vcs on * reason SELF_MODIFY when args.file_path glob gs or any(e in args.edits: path(e.file_path) glob "**/.git/**");
deny big on * when len(args.command) > 1000 or bytes(args.file_path) >= 4096 or args.n < -1;
deny deep on * when all(e in args.edits: any(f in e.list: f contains "x" or f.n == 2));
transform t on mcp_x, "read_*" set args.n = 1 set args.a.b = [1] when has(args.n) and not args.flag;
deny tool-name on "*" when tool matches r"^\p{Lu}{3}" and tool in ["BAD", "WORSE"];
quarantine q on result * when result.text matches r"(?i)begin [a-z]+ private key" or len(result.text) > 100000;
"#;

/// Any JSON: unicode, huge strings, deep nesting (past the evaluator's depth budget).
fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        any::<String>().prop_map(Json::String),
        "\\PC{0,40}".prop_map(Json::String),
        prop::sample::select(gen::STRS).prop_map(Json::from),
        (0usize..300_000, any::<char>()).prop_map(|(n, ch)| Json::String(ch.to_string().repeat(n))),
    ];
    let tree = leaf.prop_recursive(12, 200, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        "\\PC{0,8}",
                        prop::sample::select(
                            &["command", "file_path", "edits", "n", "list", "old_string", "a", "b"][..]
                        )
                        .prop_map(String::from)
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    });
    // A value under up to 80 levels of nesting (the budget is 32).
    (tree, 0usize..80, any::<bool>()).prop_map(|(mut v, depth, objects)| {
        for _ in 0..depth {
            v = if objects { json!({ "edits": [v] }) } else { json!([v]) };
        }
        v
    })
}

fn arb_args() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => prop::collection::vec((prop::sample::select(&["command", "file_path", "edits", "n", "list", "old_string", "new_string", "flag", "a"][..]), arb_json()), 0..6)
            .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        1 => arb_json(),
    ]
}

fn arb_tool() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &["Bash", "Edit", "Read", "Write", "MultiEdit", "mcp_x", "read_file", "get_x", "", "BAD"][..]
        )
        .prop_map(String::from),
        any::<String>(),
        "\\PC{0,300}",
    ]
}

proptest! {
    #![proptest_config(config(300))]

    /// decide and admit return a verdict for any input, agree three ways, and refuse
    /// arguments that are not an object.
    #[test]
    fn decide_is_total(tool in arb_tool(), args in arb_args(), text in "\\PC{0,200}", taint in 0u8..3) {
        let trace = TraceState { taint, ..TraceState::with_workspace("/workspace/repo") };
        let call = Call { tool: tool.clone(), args };
        let result = ToolResult { tool, text };
        for three in TOTAL.iter() {
            let v = three.decide(&call, &trace).map_err(TestCaseError::fail)?;
            if !call.args.is_object() {
                prop_assert_eq!(v.verdict, ir::VerdictKind::Deny);
            }
            three.admit(&result, &trace).map_err(TestCaseError::fail)?;
        }
    }
}

// ------------------------------------------------------------------------------------------
// Thread safety

#[test]
fn shared_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Dag>();
    send_sync::<fak::load::Policy>();
    send_sync::<Verdict>();
    send_sync::<std::sync::Arc<Dag>>();
}

// ------------------------------------------------------------------------------------------
// Regressions: every mismatch the properties or the fuzzers found, minimised.

/// Decides `call` three ways on `src` and returns the verdict they agree on.
fn decide3(src: &str, tool: &str, args: Json) -> Verdict {
    let three = Three::from_source(src).unwrap();
    let call = Call { tool: tool.into(), args };
    match three.decide(&call, &TraceState::with_workspace("/workspace/repo")) {
        Ok(v) => v,
        Err(e) => panic!("{e}\npolicy:\n{src}"),
    }
}

/// Parses, formats, parses again: the trees must be `==` and the text a fixed point.
fn assert_round_trips(src: &str) {
    let ast = parse(src).unwrap();
    let printed = fak::ast::print::file(&ast);
    let again = parse(&printed).unwrap_or_else(|e| panic!("formatted source does not parse:\n{printed}\n{e}"));
    assert_eq!(ast, again, "formatting changed the tree:\n{printed}");
    assert_eq!(printed, fak::ast::print::file(&again), "formatting is not idempotent");
}

/// Found by `formatting_round_trips`: the formatter separates a `test` from the item before
/// it with a blank line, and the re-parsed tree then says `blank_before: true` where the
/// original said false.
#[test]
fn regression_blank_line_before_a_test() {
    assert_round_trips("deny r1;\ntest \"t\" {\n  call Bash {\"command\": \"x\"};\n  expect deny;\n}\n");
}

/// Found by reading the Dag against the reference: the evaluation budget counts steps across
/// the whole decision, so whether it runs out depends on which rules are evaluated, and in
/// what order. With prefilters, `heavy` is skipped (`args.command` lacks "zzz") and the call
/// is allowed; without them (and in the reference) its quantifiers run first and exhaust the
/// budget (1420 × 1420 items × 2 steps > 4,000,000 steps): DENY OVERSIZE by heavy.
#[test]
fn regression_budget_does_not_depend_on_prefilters() {
    let src = "allow ok on mcp_x;\n\
               deny heavy on mcp_x when any(e in args.edits: any(f in args.edits: f == \"0\")) and args.command contains \"zzz\";\n";
    let edits = vec![json!("x"); 1420];
    decide3(src, "mcp_x", json!({"command": "hello", "edits": edits}));
}

/// The same budget, seen from the reference: it evaluates every rule in source order and
/// stops at the first that runs out, while the Dag stops looking once a DENY has decided.
/// Here `a-deny` decides in the Dag (DENY POLICY_BLOCK by a-deny); the reference goes on to
/// `b-heavy`, runs out, and answers DENY OVERSIZE by b-heavy.
#[test]
fn regression_budget_does_not_depend_on_rule_order() {
    let src = "deny a-deny on mcp_x;\n\
               allow b-heavy on mcp_x when any(e in args.edits: any(f in args.edits: f == \"0\"));\n";
    let edits = vec![json!("x"); 1420];
    decide3(src, "mcp_x", json!({"edits": edits}));
}

/// Found by reading `prefilter::glob_literal` against globset's parser: the literal it took
/// from a glob was not in every path the glob matches, so the prefilter ruled out a glob that
/// holds. A class opening with `!]` or `^]` holds the `]` (`[!]a]` is "not `]` or `a`"), a
/// POSIX class ends at its second `]`, and an alternation's `}` may sit in a class or be
/// escaped.
#[test]
fn regression_glob_literals_are_in_every_match() {
    for (glob, path) in [
        ("[!]a]*", "x"),
        ("[^]a]*", "x"),
        ("[[:alpha:]]x", "ax"),
        ("{[}]a,b}c", "bc"),
        ("{\\},x}y", "xy"),
        ("{a,{b,[}]}}z", "bz"),
    ] {
        let src =
            format!("deny g on Read when args.file_path glob {};\nallow ok on Read;\n", serde_json::Value::from(glob));
        let v = decide3(&src, "Read", json!({ "file_path": path }));
        assert_eq!(&*v.by.rule, "g", "`{path}` matches `{glob}`");
    }
}

/// Found with the budget case above, same root: an evaluation error happens or not depending
/// on which rules are evaluated. A regex over the size limit (compiled on first use) with a
/// literal in it: with prefilters, "sudo" is not in the command, `big` is skipped and the
/// call allowed; without them (and in the reference) the regex is compiled, fails, and the
/// call is a DENY MALFORMED by big.
///
/// Fixed by compiling, when the policy is checked, every regex whose estimated size could be
/// over the limit: such a policy does not check, so no decision meets the error.
#[test]
fn regression_regex_errors_do_not_depend_on_prefilters() {
    let src = "allow all-tools on *;\ndeny big on Bash when args.command matches r\"sudo(\\w{100}){100}\";\n";
    let loaded = fak::load::from_source("big.fak", src);
    assert!(loaded.has_errors());
    assert!(loaded.diags.iter().any(|d| d.code == "fak::check::bad_regex"), "{:?}", loaded.diags);
}

/// Found by the `parse` fuzz target (seeded with tests/data/parse/ok/big-numbers.fak): a JSON
/// number is printed from its f64, and serde_json without its `float_roundtrip` feature
/// parses `123456789012691357802469135780` to 1.2345678901269135e29 but the printed
/// `1.2345678901269135e+29` to 1.2345678901269136e29, so the tree changes. (Enabling
/// `float_roundtrip` on serde_json makes both parses exact.)
#[test]
fn regression_big_json_numbers_round_trip() {
    assert_round_trips("transform t on X set args.n = 123456789012691357802469135780;\n");
}

/// Found by the `parse` fuzz target: `not` right of a comparison parsed without parentheses,
/// and the formatter added them (`a == (not b)`), which parse as a `Paren` node the original
/// tree did not have. Now `not` may only follow `and` / `or`: the bare form is a syntax
/// error and the parenthesised one round-trips.
#[test]
fn regression_not_right_of_a_comparison() {
    assert!(parse("deny x when args.a == not b;\n").is_err());
    assert_round_trips("deny x when args.a == (not b);\n");
}

/// Found by checking `ir::size_estimate` against the regex crate: the estimate counts a
/// Unicode class by its ranges, but one wide range (`.` with `(?s)`, `[^\n]`, `\p{Any}`,
/// `[\x{80}-\x{10FFFF}]`) compiles to many UTF-8 states, so `(?s).{1600}` is estimated
/// under the eager-compile threshold, checks clean, and fails to compile at the first
/// decision that needs it. Then the prefilters decided whether that happens: with them,
/// "sudo" is absent and the call allowed; without them (and in the reference), DENY
/// MALFORMED by big. Now the estimate counts UTF-8 sequences: the checker compiles these
/// and refuses them; were one to check clean, the three must still agree.
#[test]
fn regression_regex_size_estimate_covers_wide_classes() {
    for re in [r"sudo(?s).{1600}", r"sudo[^\n]{1600}", r"sudo\p{Any}{2400}", r"sudo[\x{80}-\x{10FFFF}]{2000}"] {
        let src = format!(
            "allow all-tools on *;\ndeny big on Bash when args.command matches {};\n",
            fak::ir::quote_pattern(re)
        );
        match Three::from_source(&src) {
            Err(e) => assert!(e.contains("fak::check::bad_regex"), "{e}"),
            Ok(three) => {
                let call = Call { tool: "Bash".into(), args: json!({"command": "ls"}) };
                if let Err(e) = three.decide(&call, &TraceState::default()) {
                    panic!("{e}\npolicy:\n{src}");
                }
            }
        }
    }
}

/// Found by the `parse` fuzz target (a 408-byte input took 734 s): `any(` and `all(` start
/// both a quantifier and a call (`call` takes any name), and pest tries both at every level
/// of a nest that fails, so the time doubles with each `any(`: 16 levels took 5 s in a
/// release build. Here 40 levels, within the nesting limit, must fail in well under a second.
#[test]
fn regression_nested_quantifiers_parse_in_linear_time() {
    let src = format!("deny x when {};\n", "any(e in ".repeat(40));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(fak::syntax::parse(&src, FileId(0)).is_ok());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(parsed) => assert!(!parsed, "an unclosed nest of quantifiers parsed"),
        Err(_) => panic!("parsing 40 nested `any(` took more than 10 s"),
    }
}
