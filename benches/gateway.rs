//! What `fak serve` adds to a request: a non-streaming response with two tool calls from a
//! zero-latency upstream, fetched directly and through fak (both over loopback TCP, in this
//! process), for both upstream wires. The difference of the medians is fak's added latency;
//! `benches/gateway_load.rs` gives the tail and the memory. benches/README.md has the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion};
use fak::gateway::Provider;
use serde_json::Value as Json;

#[path = "support/gateway.rs"]
mod support;
use support::{gateway, request, upstream};

#[global_allocator]
static ALLOC: fak::alloc::Mimalloc = fak::alloc::Mimalloc;

fn bench_gateway(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let state = tempfile::tempdir().unwrap();
    let (up, via_anthropic, via_openai) = rt.block_on(async {
        let up = upstream().await;
        (up, gateway(up, Provider::Anthropic, state.path()).await, gateway(up, Provider::OpenAi, state.path()).await)
    });
    let client = reqwest::Client::new();
    let body = request().to_string();
    let send = |url: String| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let r = client.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap()
        }
    };
    // What the client gets through fak: the allowed call, the refused one as text.
    let through = rt.block_on(send(format!("http://{via_anthropic}/v1/messages")));
    let msg: Json = serde_json::from_slice(&through).unwrap();
    assert_eq!(msg["_fak"]["admissions"].as_array().unwrap().len(), 2, "{msg}");
    let mut g = c.benchmark_group("gateway/two_tools");
    g.bench_function("direct_anthropic", |b| b.iter(|| rt.block_on(send(format!("http://{up}/v1/messages")))));
    g.bench_function("through_fak_anthropic", |b| {
        b.iter(|| rt.block_on(send(format!("http://{via_anthropic}/v1/messages"))))
    });
    g.bench_function("direct_openai", |b| b.iter(|| rt.block_on(send(format!("http://{up}/v1/chat/completions")))));
    g.bench_function("through_fak_openai", |b| {
        b.iter(|| rt.block_on(send(format!("http://{via_openai}/v1/messages"))))
    });
    g.finish();
}

criterion_group!(benches, bench_gateway);
criterion_main!(benches);
