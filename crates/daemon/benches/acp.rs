//! `session/load` of a long conversation through `exo acp` against reading
//! the same history with `events/list` through the daemon, side by side
//! in one run, in alternation (spec/acp.md):
//!
//! | row | exo | reference | target |
//! |---|---|---|---|
//! | `session/load` of 10k events | `exo acp` (a client of the running daemon): the request until its answer, every `session/update` of the replay written before it | `events/list` of the same 10k events over the daemon's socket, every page | ≤ 2× at p50 |
//!
//! The conversation holds 10 000 message events (user and assistant
//! alternating, short texts), appended untimed. Both sides read the same
//! history from the same daemon; the ACP side adds `exo acp`'s own
//! decoding, the mapping to ACP updates and writing them to its stdout
//! (read and dropped by this process).
//!
//! `cargo bench -p exo-daemon --bench acp` (`EXO_BENCH_QUICK=1` for a
//! short run); `cargo test --all-targets` runs it once as a smoke test.

#![allow(clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::{
    exo_binary, scratch_dir, start_socket_daemon, workspace_root, BenchResult, Client, Mode,
    Report, Series, Target,
};
use serde_json::{json, Value};

fn main() -> BenchResult<()> {
    let mode = Mode::from_env();
    let (events, rounds) = match mode.name {
        "full" => (10_000, 20),
        "quick" => (10_000, 6),
        _ => (500, 1),
    };
    let exo = exo_binary()?;
    let dir = scratch_dir("acp", "root/exo.sock")?;
    let root = dir.path().join("root");
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(&workspace)?;
    let (daemon, socket) = start_socket_daemon(&exo, &root)?;
    let mut client = Client::socket(&socket)?;
    let script = workspace_root().join("examples/demo/script.json");
    client.call(
        "model/register",
        json!({"name": "m", "provider": "scripted", "base_url": format!("file://{}", script.display())}),
    )?;
    client.call("agent/create", json!({"name": "a", "model": "m"}))?;
    let created = client.call(
        "conversation/create",
        json!({"agent": "a", "name": "long", "workspace": workspace}),
    )?;
    let session = created["id"].as_str().unwrap_or_default().to_owned();
    let size = events.min(1000);
    for batch in 0..events / size {
        let lines: Vec<Value> = (0..size)
            .map(|n| {
                let role = if n % 2 == 0 { "user" } else { "assistant" };
                json!({"kind": "message", "role": role, "content": format!("message {batch}-{n}: some words to carry")})
            })
            .collect();
        client.call(
            "conversation/append",
            json!({"agent": "a", "conversation": session, "events": lines}),
        )?;
    }

    let mut acp = Command::new(&exo)
        .arg("--root")
        .arg(&root)
        .arg("acp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut editor = Client::of_child(&mut acp)?;
    editor.call("initialize", json!({"protocolVersion": 1}))?;

    let (mut load, mut list) = (Series::new(1), Series::new(1));
    for _ in 0..=rounds {
        let start = Instant::now();
        let loaded = editor.call(
            "session/load",
            json!({"sessionId": session, "cwd": workspace, "mcpServers": []}),
        )?;
        load.push(start.elapsed());
        if loaded != json!({}) {
            return Err(format!("session/load answered {loaded}").into());
        }
        let start = Instant::now();
        let mut read = 0;
        let mut after: Option<Value> = None;
        loop {
            let mut params = json!({"agent": "a", "conversation": session, "limit": 10000});
            if let Some(after) = &after {
                params["after"] = after.clone();
            }
            let page = client.call("events/list", params)?;
            read += page["events"].as_array().map_or(0, Vec::len);
            match &page["next_cursor"] {
                Value::Null => break,
                next => after = Some(next.clone()),
            }
        }
        list.push(start.elapsed());
        if read < events {
            return Err(format!("events/list read {read} events, not {events}").into());
        }
    }
    drop(editor);
    let _ = acp.kill();
    let _ = acp.wait();

    let mut report = Report::with_differences();
    report.latency(
        "session_load",
        &format!("session/load of {events} events vs events/list"),
        (load.stats(), list.stats()),
        "list",
        Some(Target::AtMost(2.0)),
    );
    report.print_table("exo acp: replaying a long session");
    report.write_json(
        &mode,
        "acp",
        &exo,
        json!({"events": events, "rounds": rounds}),
    )?;
    client.call("daemon/stop", json!({}))?;
    daemon.wait(std::time::Duration::from_secs(30));
    Ok(())
}
