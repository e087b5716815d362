//! The model gateway's cost, side by side in one run (spec/gateway.md).
//!
//! An upstream model server in this process (a Chat Completions stream,
//! sent as fast as the socket takes it: no pauses, so the gateway's own
//! cost is what differs) is called directly and through a real `exo
//! daemon`'s gateway, with the same request, alternately:
//!
//! | row | exo | reference | target |
//! |---|---|---|---|
//! | time to first byte | through the gateway | direct | ≤ +1 ms at p50 |
//! | whole streamed answer (64 events, ~8 KiB) | through the gateway | direct | ≤ +1 ms at p50 |
//! | throughput (a 16 MiB answer) | through the gateway | direct | ≥ 0.9× |
//!
//! The gateway's path includes everything a CLI's request costs in exo:
//! the token's look-up, the conversation's model resolved from the store
//! and its key opened, the body re-encoded with the upstream model, and
//! the exchange recorded (two artifacts and an event) after the answer.
//!
//! `cargo bench -p exo-daemon --bench gateway` (`EXO_BENCH_QUICK=1` for a
//! short run); `cargo test --all-targets` runs it once as a smoke test.

#![allow(clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::{
    exo_binary, scratch_dir, start_socket_daemon_with, BenchResult, Client, Mode, Report, Series,
    Stats, Target, Unit,
};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// The key the gateway must put on upstream requests.
const KEY: &str = "sk-bench-gateway-3f8a1c";
/// A 64-character hex encryption key, for the daemon.
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// How many of each measurement.
struct Plan {
    small: usize,
    large: usize,
    large_bytes: usize,
}

impl Plan {
    fn of(mode: &Mode) -> Plan {
        match mode.name {
            "full" => Plan {
                small: 2000,
                large: 12,
                large_bytes: 16 << 20,
            },
            "quick" => Plan {
                small: 300,
                large: 4,
                large_bytes: 16 << 20,
            },
            _ => Plan {
                small: 5,
                large: 1,
                large_bytes: 1 << 20,
            },
        }
    }
}

/// The upstream's answer: `events` server-sent events, or `bytes` of
/// them for a large one, each a Chat Completions chunk.
fn stream_of(request: &Value) -> Vec<Bytes> {
    let bytes = request["bench_bytes"].as_u64().unwrap_or(0) as usize;
    let chunk = |text: &str| {
        Bytes::from(format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})
        ))
    };
    let mut chunks = Vec::new();
    if bytes > 0 {
        let filler = "x".repeat(64 << 10);
        let piece = chunk(&filler);
        let mut sent = 0;
        while sent < bytes {
            sent += piece.len();
            chunks.push(piece.clone());
        }
    } else {
        for n in 0..64 {
            chunks.push(chunk(&format!("word{n} and some more text to carry ")));
        }
    }
    chunks.push(Bytes::from(format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 64}})
    )));
    chunks
}

/// Starts the upstream on a runtime of its own thread.
fn start_upstream() -> BenchResult<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            let router = Router::new().route(
                "/v1/chat/completions",
                post(|headers: axum::http::HeaderMap, body: Bytes| async move {
                    let authorized = headers
                        .get("authorization")
                        .and_then(|value| value.to_str().ok())
                        == Some(&format!("Bearer {KEY}"));
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let chunks = stream_of(&request);
                    let mut response = Response::new(Body::from_stream(
                        futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)),
                    ));
                    if !authorized {
                        *response.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
                    }
                    response.headers_mut().insert(
                        "content-type",
                        axum::http::HeaderValue::from_static("text/event-stream"),
                    );
                    response
                }),
            );
            let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
                let _ = stream.set_nodelay(true);
            });
            let _ = axum::serve(listener, router).await;
        });
    });
    Ok(addr)
}

/// One streamed request: its time to first byte and to the end, and its
/// size.
async fn exchange(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> BenchResult<(Duration, Duration, usize)> {
    let started = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()).into());
    }
    let mut stream = response.bytes_stream();
    let mut first = None;
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if first.is_none() {
            first = Some(started.elapsed());
        }
        size += chunk.len();
    }
    let total = started.elapsed();
    Ok((first.unwrap_or(total), total, size))
}

fn main() -> BenchResult<()> {
    let mode = Mode::from_env();
    let plan = Plan::of(&mode);
    let exo = exo_binary()?;
    let dir = scratch_dir("gateway", "gateway")?;
    let root = dir.path().join("root");
    let upstream = start_upstream()?;
    let direct_base = format!("http://{upstream}/v1");
    let (daemon, socket) = start_socket_daemon_with(&exo, &root, |command| {
        command.env("EXO_ENCRYPTION_KEY", ENCRYPTION_KEY);
    })?;
    let mut client = Client::socket(&socket)?;
    client.call("secret/set", json!({"name": "k", "value": KEY}))?;
    client.call(
        "model/register",
        json!({"name": "m", "provider": "openai-chat", "base_url": direct_base, "upstream": "up", "secret": "k"}),
    )?;
    client.call(
        "agent/create",
        json!({"name": "B", "slug": "b", "model": "m", "approval": "auto"}),
    )?;
    client.call(
        "conversation/create",
        json!({"agent": "b", "name": "C", "slug": "c"}),
    )?;
    // Held open: the token lives as long as this connection.
    let granted = client.call("gateway/token", json!({"agent": "b", "conversation": "c"}))?;
    let token = granted["token"].as_str().ok_or("no token")?.to_string();
    let gateway_base = granted["openai_base_url"]
        .as_str()
        .ok_or("no base URL")?
        .to_string();
    println!(
        "upstream at {direct_base}, gateway at {gateway_base}; {} small and {} large ({} MiB) exchanges each way",
        plan.small,
        plan.large,
        plan.large_bytes >> 20
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder().build()?;
    let direct_url = format!("{direct_base}/chat/completions");
    let gateway_url = format!("{gateway_base}/chat/completions");
    let small = json!({"model": "cli-model", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let large = json!({"model": "cli-model", "messages": [{"role": "user", "content": "hi"}], "stream": true, "bench_bytes": plan.large_bytes});

    let warmup = (plan.small / 20).max(1);
    let (mut ttfb_direct, mut ttfb_gateway) = (Series::new(warmup), Series::new(warmup));
    let (mut whole_direct, mut whole_gateway) = (Series::new(warmup), Series::new(warmup));
    let (mut bytes_direct, mut bytes_gateway) = (0usize, 0usize);
    let (mut time_direct, mut time_gateway) = (Duration::ZERO, Duration::ZERO);
    runtime.block_on(async {
        for n in 0..plan.small + warmup {
            // Alternate which goes first, so neither always follows the
            // other's recording.
            let order = if n % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for through_gateway in order {
                let url = if through_gateway {
                    &gateway_url
                } else {
                    &direct_url
                };
                let key = if through_gateway { token.as_str() } else { KEY };
                let (first, total, _) = exchange(&http, url, key, &small).await?;
                if through_gateway {
                    ttfb_gateway.push(first);
                    whole_gateway.push(total);
                } else {
                    ttfb_direct.push(first);
                    whole_direct.push(total);
                }
            }
        }
        for n in 0..plan.large {
            let order = if n % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for through_gateway in order {
                let url = if through_gateway {
                    &gateway_url
                } else {
                    &direct_url
                };
                let key = if through_gateway { token.as_str() } else { KEY };
                let (_, total, size) = exchange(&http, url, key, &large).await?;
                if through_gateway {
                    time_gateway += total;
                    bytes_gateway += size;
                } else {
                    time_direct += total;
                    bytes_direct += size;
                }
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;

    let mib_per_s =
        |bytes: usize, time: Duration| bytes as f64 / (1 << 20) as f64 / time.as_secs_f64();
    let mut report = Report::with_differences();
    let stats = |series: Series| -> Stats { series.stats() };
    report.latency(
        "ttfb",
        "time to first byte, gateway vs direct",
        (stats(ttfb_gateway), stats(ttfb_direct)),
        "direct",
        Some(Target::AddedAtMost(1000.0)),
    );
    report.latency(
        "whole",
        "whole streamed answer, gateway vs direct",
        (stats(whole_gateway), stats(whole_direct)),
        "direct",
        Some(Target::AddedAtMost(1000.0)),
    );
    report.row(
        "throughput",
        "throughput of a large answer, gateway vs direct",
        Unit::MiBPerSec,
        mib_per_s(bytes_gateway, time_gateway),
        mib_per_s(bytes_direct, time_direct),
        "direct",
        Some(Target::AtLeast(0.9)),
    );
    report.print_table(&format!("exo model gateway benchmark ({})", mode.name));
    report.write_json(
        &mode,
        "gateway",
        &exo,
        json!({"small": plan.small, "large": plan.large, "large_bytes": plan.large_bytes}),
    )?;
    client.call("daemon/stop", json!({}))?;
    drop(client);
    daemon.wait(Duration::from_secs(30));
    Ok(())
}
