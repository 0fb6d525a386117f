//! Criterion benchmarks: compiling the shipped policies, and deciding representative calls
//! on the built-in floor and on synthetic policies of 1, 100 and 1,000 rules, with the
//! prefilters on and off. benches/README.md has the figures and how to reproduce them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fak::compile::{compile, CompileOptions, Dag};
use fak::eval::{decide, Call, TraceState};
use serde_json::json;

/// The allocator the `fak` binary uses (src/main.rs), so the figures are what ships.
#[global_allocator]
static ALLOC: fak::alloc::Mimalloc = fak::alloc::Mimalloc;

fn program(name: &str, src: &str) -> fak::ir::Program {
    let loaded = fak::load::from_source(name, src);
    assert!(!loaded.has_errors(), "{name}: {:?}", loaded.diags);
    loaded.program.unwrap()
}

/// A policy of `n` rules shaped like real ones: most deny a command or a path pattern the
/// typical calls do not contain, a few allow whole tools.
pub fn synthetic(n: usize) -> String {
    let mut s = String::from("allow shell on Bash;\nallow edit on Edit, Write;\nallow read on Read;\n");
    for i in 0..n.saturating_sub(3) {
        match i % 5 {
            0 => s.push_str(&format!("deny bash-{i} on Bash when args.command matches r\"\\btool{i}\\s+--(force|yes)\\b\";\n")),
            1 => s.push_str(&format!("deny bash-{i} on Bash when args.command contains \"secret-{i}\";\n")),
            2 => s.push_str(&format!("deny edit-{i} on Edit, Write when args.file_path glob \"**/protected{i}/**\";\n")),
            3 => s.push_str(&format!("deny edit-{i} on Edit, Write when args.file_path glob \"vendor{i}/*.rs\";\n")),
            _ => s.push_str(&format!(
                "deny bash-{i} on Bash when lower(args.command) starts_with \"deploy{i} \" and args.command matches r\"--env\\s+prod{i}\";\n"
            )),
        }
    }
    s
}

fn calls() -> Vec<(&'static str, Call)> {
    vec![
        ("bash_ls", Call { tool: "Bash".into(), args: json!({"command": "ls -la"}) }),
        (
            "edit_main",
            Call {
                tool: "Edit".into(),
                args: json!({"file_path": "src/main.rs", "old_string": "a", "new_string": "b"}),
            },
        ),
        ("bash_rm", Call { tool: "Bash".into(), args: json!({"command": "rm -rf /tmp/x"}) }),
        (
            "bash_git_cargo",
            Call { tool: "Bash".into(), args: json!({"command": "git status && cargo test 2>&1 | tail -5"}) },
        ),
        ("bash_4k_chain", Call { tool: "Bash".into(), args: json!({"command": chain_4k()}) }),
        ("bash_4k_heredoc", Call { tool: "Bash".into(), args: json!({"command": heredoc_4k()}) }),
        ("bash_4k_commit", Call { tool: "Bash".into(), args: json!({"command": commit_4k()}) }),
        ("bash_4k_python", Call { tool: "Bash".into(), args: json!({"command": python_4k()}) }),
    ]
}

/// `start`, then `piece(0)`, `piece(1)`, ... until it is `below` bytes long or longer.
fn grow(start: &str, below: usize, piece: impl Fn(usize) -> String) -> String {
    let mut s = String::from(start);
    let mut i = 0;
    while s.len() < below {
        s.push_str(&piece(i));
        i += 1;
    }
    s
}

/// A 4 KiB command line of the kind agents write: a long `&&` chain of ordinary commands.
pub fn chain_4k() -> String {
    grow("cd /workspace/repo", 4096 - 80, |i| match i % 4 {
        0 => format!(" && cargo test -p crate_{i} -- --nocapture 2>&1 | tail -n 20"),
        1 => format!(" && git add src/module_{i}.rs tests/module_{i}.rs"),
        2 => format!(" && grep -rn \"fn handler_{i}\" src/ | head -5"),
        _ => format!(" && echo \"step {i} done\" >> /tmp/progress.log"),
    })
}

/// A 4 KiB command that writes a file through a here-document, as agents often do.
pub fn heredoc_4k() -> String {
    let body =
        grow("", 4096 - 80, |i| format!("def handler_{i}(request):\n    return {{'status': 200, 'id': {i}}}\n\n"));
    format!("cat > src/handlers.py <<'EOF'\n{body}EOF\npython3 -m py_compile src/handlers.py")
}

/// A 4 KiB commit the way Claude Code writes every commit: the message in a here-document
/// inside a command substitution.
pub fn commit_4k() -> String {
    let body = grow("Rework the handler registry\n\n", 4096 - 120, |i| {
        format!("- handler_{i}: return the request id and a 200 status (tests cover the empty body)\n")
    });
    format!(
        "git add -A && git commit -m \"$(cat <<'EOF'\n{body}\nCo-Authored-By: Claude <noreply@anthropic.com>\nEOF\n)\""
    )
}

/// A 4 KiB program given to an interpreter on the command line.
pub fn python_4k() -> String {
    let body = grow("import json, sys\n", 4096 - 40, |i| {
        format!("def handler_{i}(request):\n    return {{'status': 200, 'id': {i}}}\n")
    });
    format!("python3 -c \"{body}print('ok')\"")
}

fn bench_shell(c: &mut Criterion) {
    let mut g = c.benchmark_group("shell/view");
    let cases: Vec<(&str, String)> = vec![
        ("ls", "ls -la".into()),
        ("git_cargo", "git status && cargo test 2>&1 | tail -5".into()),
        ("4k_chain", chain_4k()),
        ("4k_heredoc", heredoc_4k()),
        ("4k_commit", commit_4k()),
        ("4k_python", python_4k()),
    ];
    for (name, script) in cases {
        g.bench_function(name, |b| {
            b.iter(|| black_box(fak::shell::view(black_box(&script), "/workspace/repo", "/home/dev")))
        });
    }
    g.finish();
}

pub fn bench_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    // Everything shipped, checked and compiled with every bucket built (`Dag::warm`), as a
    // server does at start-up. A one-shot `preflight` builds only its tool's bucket.
    // The floor imports every stdlib module, so this parses and checks each once.
    g.bench_function("stdlib+policies", |b| {
        b.iter(|| {
            let mut dags: Vec<Dag> = Vec::new();
            let floor = fak::load::builtin_from_source();
            dags.push(compile(floor.program.unwrap(), CompileOptions::default()));
            let example = include_str!("../examples/dogfood-claude-policy.json");
            dags.push(compile(program("examples/dogfood-claude-policy.json", example), CompileOptions::default()));
            for d in &dags {
                d.warm();
            }
            black_box(dags)
        })
    });
    g.bench_function("check floor", |b| b.iter(|| black_box(fak::load::builtin_from_source())));
    // What `fak serve` does at start-up with the built-in floor: load the snapshot checked at
    // build time, compile it, build every bucket.
    g.bench_function("serve start (floor snapshot)", |b| {
        b.iter(|| {
            let dag = compile(fak::load::builtin().program.unwrap(), CompileOptions::default());
            dag.warm();
            black_box(dag)
        })
    });
    // What `preflight` does: the floor from the snapshot checked at build time.
    g.bench_function("load floor snapshot", |b| b.iter(|| black_box(fak::load::builtin())));
    g.finish();
}

fn bench_floor(c: &mut Criterion) {
    let trace = TraceState::with_workspace("/workspace/repo").home("/home/dev");
    let mut g = c.benchmark_group("decide/floor");
    for prefilter in [true, false] {
        let dag = compile(fak::load::builtin().program.unwrap(), CompileOptions { prefilter });
        // Built as `fak serve` builds it at start-up (a one-shot `preflight` is measured as
        // a whole process).
        dag.warm();
        for (name, call) in calls() {
            if name.starts_with("bash_4k") {
                // What is measured: 4 KiB commands the floor reads through and allows.
                let len = call.args.get("command").and_then(|c| c.as_str()).map_or(0, str::len);
                assert!((4000..=4200).contains(&len), "{name} is {len} bytes");
                let d = decide(&dag, &call, &trace);
                assert_eq!(d.verdict, fak::ast::VerdictKind::Allow, "{name}: {}", d.reason);
            }
            let id = format!("{name}/prefilter={}", if prefilter { "on" } else { "off" });
            g.bench_function(id, |b| b.iter(|| black_box(decide(&dag, black_box(&call), &trace))));
        }
    }
    g.finish();
}

fn bench_synthetic(c: &mut Criterion) {
    let trace = TraceState::with_workspace("/workspace/repo");
    let mut g = c.benchmark_group("decide/synthetic");
    for n in [1usize, 100, 1000] {
        let src = synthetic(n.max(3));
        for prefilter in [true, false] {
            let dag = compile(program("synthetic.fak", &src), CompileOptions { prefilter });
            for (name, call) in calls().into_iter().take(2) {
                let id = BenchmarkId::new(format!("{name}/prefilter={}", if prefilter { "on" } else { "off" }), n);
                g.bench_with_input(id, &call, |b, call| b.iter(|| black_box(decide(&dag, black_box(call), &trace))));
            }
        }
    }
    g.finish();
}

/// Benign text of about `len` bytes: this crate's own Rust sources, repeated (but for
/// src/secrets.rs, src/normalize.rs and a line of src/manifest.rs, whose tests hold fake
/// secrets and injections).
pub fn source_text(len: usize) -> String {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && !p.ends_with("secrets.rs")
                && !p.ends_with("normalize.rs")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    let all: String = files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(|l| format!("{l}\n")).collect::<Vec<_>>())
        .filter(|l| !l.contains("AKIA"))
        .collect();
    cut(all.repeat(len / all.len() + 1), len)
}

/// Benign text of about `len` bytes: a service's log, with URLs, ids, hashes and durations.
pub fn log_text(len: usize) -> String {
    let s = grow("", len, |i| {
        format!(
            "2026-11-25T10:{:02}:{:02}.{:03}Z INFO http request method=GET path=/v1/orders/{i} status=200 \
             duration_ms={} trace_id={:032x} user_agent=\"curl/8.5.0\" upstream=https://orders.internal:8443/api\n",
            i / 60 % 60,
            i % 60,
            i % 1000,
            i % 97,
            (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
        )
    });
    cut(s, len)
}

/// `s` cut to at most `len` bytes, at a character boundary.
fn cut(mut s: String, len: usize) -> String {
    let mut end = len.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// The result side: the floor's detectors (every secret kind) over benign results, which they
/// admit, the size of a tool result (2 KiB) and large (1 MiB), as `fak serve` builds the Dag.
fn bench_admit(c: &mut Criterion) {
    use fak::eval::{admit, ToolResult};
    let trace = TraceState::with_workspace("/workspace/repo").home("/home/dev");
    let dag = compile(fak::load::builtin().program.unwrap(), CompileOptions { prefilter: true });
    dag.warm();
    let mut g = c.benchmark_group("admit/floor");
    for (name, len) in [("2k", 2048usize), ("1m", 1 << 20)] {
        for (kind, text) in [("source", source_text(len)), ("log", log_text(len))] {
            let r = ToolResult { tool: "Read".into(), text };
            let v = admit(&dag, &r, &trace);
            assert_eq!(v.verdict, fak::ast::VerdictKind::Allow, "{kind}/{name}: {v:?}");
            g.throughput(criterion::Throughput::Bytes(r.text.len() as u64));
            g.bench_function(format!("{kind}_{name}"), |b| b.iter(|| black_box(admit(&dag, black_box(&r), &trace))));
        }
    }
    g.finish();
}

criterion_group!(benches, bench_compile, bench_floor, bench_shell, bench_synthetic, bench_admit);
criterion_main!(benches);
