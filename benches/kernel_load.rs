//! A bounded loopback load of `POST /v1/fak/adjudicate` on the `fak serve` binary (not run in
//! CI; `cargo test` only builds it):
//!
//! ```sh
//! apt-get install wrk                               # the load generator (Debian's package)
//! cargo bench --bench kernel_load                    # 30 s, 64 connections, 2 wrk threads
//! FAK_LOAD_SECONDS=10 FAK_LOAD_CONNECTIONS=32 cargo bench --bench kernel_load
//! FAK_LOAD_TRACES=0 cargo bench --bench kernel_load  # every request a trace of its own
//! ```
//!
//! fak serve (the built-in floor, its state in a throw-away directory) and wrk share the
//! machine's cores. Each request is one of four calls — `ls -la`, `git status && cargo test`,
//! `rm -rf ~` (refused), an Edit — in one of `FAK_LOAD_TRACES` traces (1,000; 0: a new trace
//! each request, so every taint read misses the cache and goes to SQLite), and every answer
//! waits for its audit row. Prints requests per second, wrk's latency percentiles, and fak's RSS
//! each five seconds (flat memory is the point), then checks the audit chain it left.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::BufRead as _;
use std::time::Duration;

#[path = "support/load.rs"]
mod load;
use load::{env_num, rss_kib};

/// wrk's request script: four bodies in turn, in `TRACES` traces (0: each its own).
const SCRIPT: &str = r#"
local traces = TRACES
local bodies = {
  '{"tool":"Bash","arguments":{"command":"ls -la"},"trace_id":"load-%d"}',
  '{"tool":"Bash","arguments":{"command":"git status && cargo test 2>&1 | tail -5"},"trace_id":"load-%d"}',
  '{"tool":"Bash","arguments":{"command":"rm -rf ~"},"trace_id":"load-%d"}',
  '{"tool":"Edit","arguments":{"file_path":"src/main.rs","old_string":"a","new_string":"b"},"trace_id":"load-%d"}',
}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local t = n
  if traces > 0 then t = n % traces end
  return wrk.format(nil, "/v1/fak/adjudicate", nil, string.format(bodies[(n % 4) + 1], t))
end
"#;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "kernel_load: a load test, run by `cargo bench --bench kernel_load`; nothing to do under `cargo test`"
        );
        return;
    }
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("kernel_load: needs wrk (apt-get install wrk)");
        std::process::exit(2);
    }
    let seconds = env_num("FAK_LOAD_SECONDS", 30).min(120);
    let conns = env_num("FAK_LOAD_CONNECTIONS", 64);
    let threads = env_num("FAK_LOAD_THREADS", 2);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let script = dir.path().join("adjudicate.lua");
    let traces = env_num("FAK_LOAD_TRACES", 1000);
    std::fs::write(&script, SCRIPT.replace("TRACES", &traces.to_string())).unwrap();
    println!(
        "{conns} connections, {threads} wrk threads, {seconds} s, traces: {}",
        if traces == 0 { "one per request".to_string() } else { traces.to_string() }
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fak"))
        .args(["serve", "--addr", "127.0.0.1:0", "--base-url", "http://127.0.0.1:9", "--workspace", "/work/repo"])
        .arg("--state-dir")
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    println!("fak serve {url}: RSS {} KiB at start", rss_kib(pid));

    let sampler = std::thread::spawn(move || {
        let mut out = Vec::new();
        for _ in 0..(seconds / 5 + 1) {
            std::thread::sleep(Duration::from_secs(5));
            out.push(rss_kib(pid));
        }
        out
    });
    let wrk = std::process::Command::new("wrk")
        .args(["--latency", "-t", &threads.to_string(), "-c", &conns.to_string(), "-d", &format!("{seconds}s")])
        .arg("-s")
        .arg(&script)
        .arg(&url)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&wrk.stdout));
    eprint!("{}", String::from_utf8_lossy(&wrk.stderr));
    let rss = sampler.join().unwrap();
    println!("fak serve RSS every 5 s (KiB): {rss:?}");
    let _ = child.kill();
    let _ = child.wait();
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_fak"))
        .args(["audit", "verify", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&verify.stdout));
    eprint!("{}", String::from_utf8_lossy(&verify.stderr));
}
