//! A bounded loopback load test of the `fak serve` binary (not run in CI; `cargo test` only
//! builds it):
//!
//! ```sh
//! cargo bench --bench gateway_load                      # 1,000,000 requests, at most 600 s
//! FAK_LOAD_REQUESTS=200000 FAK_LOAD_SECONDS=120 cargo bench --bench gateway_load
//! ```
//!
//! 1. Latency: 20,000 requests of a non-streaming two-tool turn to a zero-latency upstream
//!    (in this process), alternately direct and through `fak serve` (a child process), one at
//!    a time; the median and p99 of each, and their differences: what fak adds.
//! 2. Memory: `FAK_LOAD_REQUESTS` requests, each with its own `X-Trace-Id` and a tool result
//!    to admit, 8 at a time, the child's RSS (VmRSS) sampled as they go. Every request goes to
//!    127.0.0.1 only, and the run stops at `FAK_LOAD_SECONDS` whatever the count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::BufRead as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

#[path = "support/gateway.rs"]
#[allow(dead_code)]
mod shared;

#[global_allocator]
static ALLOC: fak::alloc::Mimalloc = fak::alloc::Mimalloc;

#[path = "support/load.rs"]
mod load;
use load::{env_num, rss_kib};

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "gateway_load: a load test, run by `cargo bench --bench gateway_load`; nothing to do under `cargo test`"
        );
        return;
    }
    let requests = env_num("FAK_LOAD_REQUESTS", 1_000_000);
    let seconds = env_num("FAK_LOAD_SECONDS", 600);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let up = rt.block_on(shared::upstream());
    let state = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fak"))
        .args(["serve", "--addr", "127.0.0.1:0", "--base-url", &format!("http://{up}"), "--workspace", "/work/repo"])
        .arg("--state-dir")
        .arg(state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let fak = line.split("listening on ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    println!("fak serve pid {pid} at {fak}, upstream http://{up}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(16).build().unwrap();
    let body = shared::request().to_string();

    // 1. Latency, one request at a time.
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for i in 0..20_000 {
            for (url, out) in
                [(format!("http://{up}/v1/messages"), &mut direct), (format!("{fak}/v1/messages"), &mut through)]
            {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
                if i >= 1000 {
                    out.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
    });
    direct.sort_by(f64::total_cmp);
    through.sort_by(f64::total_cmp);
    let (dm, d99, tm, t99) = (pct(&direct, 0.5), pct(&direct, 0.99), pct(&through, 0.5), pct(&through, 0.99));
    println!(
        "latency (µs, {} each): direct median {dm:.0} p99 {d99:.0}; through fak median {tm:.0} p99 {t99:.0}",
        direct.len()
    );
    println!("added by fak: median {:.0} µs, p99 {:.0} µs", tm - dm, t99 - d99);

    // 2. Memory over many traces, each admitting a result.
    let start_rss = rss_kib(pid);
    println!("RSS before: {} KiB", start_rss);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut samples = Vec::new();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let (client, fak, sent) = (client.clone(), fak.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                let mut k = w;
                while k < requests && Instant::now() < deadline {
                    let mut req: Json = shared::request();
                    req["messages"] = json!([
                        {"role": "user", "content": "list it"},
                        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "Bash", "input": {"command": "ls"}}]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": format!("file-{k}.txt\nREADME.md")}]},
                    ]);
                    let r = client
                        .post(format!("{fak}/v1/messages"))
                        .header("content-type", "application/json")
                        .header("x-trace-id", format!("load-{k}"))
                        .body(req.to_string())
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap();
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    k += 8;
                }
            }));
        }
        let started = Instant::now();
        let mut last = 0;
        while tasks.iter().any(|t| !t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let n = sent.load(std::sync::atomic::Ordering::Relaxed);
            if n / 100_000 > last / 100_000 || tasks.iter().all(|t| t.is_finished()) {
                let rss = rss_kib(pid);
                println!("{n:>9} requests, {:>6.1} s, RSS {rss} KiB", started.elapsed().as_secs_f64());
                samples.push((n, rss));
                last = n;
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let n = sent.load(std::sync::atomic::Ordering::Relaxed);
    let end_rss = rss_kib(pid);
    println!(
        "{n} requests with distinct traces; RSS {start_rss} KiB before, {end_rss} KiB after ({:.1} MiB)",
        end_rss as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
