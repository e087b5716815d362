//! # RPC benchmark
//!
//! Measures the real daemon (the `exo` binary) against a *floor*: a trivial
//! NDJSON echo server over the same transport, in the same run. The floor
//! reads a line, parses it with `serde_json` (as exo does), and writes back
//! `{"jsonrpc":"2.0","id":<id>,"result":{}}`, flushing every line. Whatever
//! exo costs above the floor is exo's: framing, dispatch, its task and
//! thread hand-offs, serialization.
//!
//! | metric | how | target |
//! |---|---|---|
//! | `ping` round trip, socket and stdio | one request in flight; p50 and p99 | exo p50 ≤ 1.5 × floor p50 |
//! | throughput, socket and stdio | `ping`s pipelined on one connection, 100 in flight; responses per second | exo ≥ 0.5 × floor |
//! | durable `turn/begin` over the socket | `turn/begin` timed, `turn/finish` untimed; each turn preceded by one probe fsync (100 B + `sync_all`) on the store's filesystem | reported, as a ratio to the paired fsync |
//! | `turn/run` over the socket | a whole turn of the built-in executor on a scripted one-line answer, beside `turn/begin` + `turn/finish` (the substrate's floor for a turn) in alternation | reported, as a ratio to the floor |
//!
//! - **Socket.** `exo --root <tmp>/socket daemon`; the floor is a thread per
//!   connection on a Unix socket in this process.
//! - **stdio.** `exo --root <tmp>/stdio daemon --stdio` (a root of its own,
//!   so it serves stdio itself rather than relaying to another daemon); the
//!   floor is this benchmark's own binary re-executed with
//!   `EXO_BENCH_RPC_ECHO=1`, echoing on stdin and stdout.
//!
//! exo and its floor run side by side and are measured in alternating
//! blocks (pings) and rounds (throughput), so drift on a shared machine
//! hits both alike. Latencies are wall-clock round trips seen by a blocking
//! client; p50 and p99 are nearest-rank percentiles. Warm-up requests are
//! not counted.
//!
//! The `exo` binary is the one of this benchmark's profile
//! (`<target>/release/exo` under `cargo bench`), built first with `cargo
//! build --bin exo` (a no-op when it is fresh); `EXO_BENCH_EXO=<path>` uses
//! another binary and skips the build.
//!
//! # Running
//!
//! ```text
//! cargo bench -p exo-daemon --bench rpc                     # full
//! EXO_BENCH_QUICK=1 cargo bench -p exo-daemon --bench rpc   # quick: a few seconds
//! ```
//!
//! `EXO_BENCH_TMP=<dir>` puts the temporary roots elsewhere (default
//! `<target>/bench-tmp`). The table goes to stdout, progress to stderr, and
//! the results as JSON to `$EXO_BENCH_OUT` (relative to the workspace root)
//! or `<target>/bench/rpc.json`. Run without `--bench` (as `cargo test
//! --all-targets` does), it makes a quick smoke run and writes JSON only to
//! `$EXO_BENCH_OUT`. The process exits successfully even when a target is
//! missed: the bench reports, it does not gate.

#![allow(clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use common::{
    exo_binary, exo_command, scratch_dir, start_socket_daemon, thousands, BenchResult, Client,
    Mode, Peer, Reply, Report, Series, Stats, Target, Unit,
};

/// Set in the environment of the re-executed benchmark that serves as the
/// stdio floor.
const ECHO_ENV: &str = "EXO_BENCH_RPC_ECHO";

/// The agent and conversation of the turn series.
const AGENT: &str = "bench";
const CONVERSATION: &str = "turns";

/// How much work to do.
struct Plan {
    /// "full", "quick", or "smoke" (run without `--bench`, in whatever
    /// profile `cargo test` built).
    mode: &'static str,
    /// Requests made, and not counted, before each series.
    warmup: usize,
    ping_samples: usize,
    /// Pings per block; exo and the floor alternate blocks.
    ping_block: usize,
    /// Requests in flight in the throughput series.
    window: usize,
    /// Requests per throughput round; exo and the floor alternate rounds.
    round_requests: usize,
    rounds: usize,
    turns: usize,
    /// Pings in the one large batch.
    batch: usize,
    /// Small events in the one large `conversation append`.
    append_events: usize,
}

impl Plan {
    fn new(mode: &'static str) -> Plan {
        if mode != "full" {
            Plan {
                mode,
                warmup: 20,
                ping_samples: 200,
                ping_block: 50,
                window: 100,
                round_requests: 1_000,
                rounds: 2,
                turns: 30,
                batch: 10_000,
                append_events: 50_000,
            }
        } else {
            Plan {
                mode,
                warmup: 100,
                ping_samples: 2_000,
                ping_block: 100,
                window: 100,
                round_requests: 5_000,
                rounds: 4,
                turns: 300,
                batch: 100_000,
                append_events: 1_000_000,
            }
        }
    }

    fn throughput_requests(&self) -> usize {
        self.round_requests * self.rounds
    }

    fn to_json(&self) -> Value {
        json!({
            "warmup": self.warmup,
            "ping_samples": self.ping_samples,
            "ping_block": self.ping_block,
            "window": self.window,
            "round_requests": self.round_requests,
            "rounds": self.rounds,
            "turns": self.turns,
            "batch": self.batch,
            "append_events": self.append_events,
        })
    }
}

// ------------------------------------------------------------- the floor

#[derive(Deserialize)]
struct EchoRequest {
    #[serde(default)]
    id: Value,
}

/// The floor: answers each NDJSON request line with an empty result and
/// its id, flushing every line.
fn echo(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut reader = BufReader::new(input);
    let mut writer = BufWriter::new(output);
    let (mut line, mut reply) = (Vec::new(), Vec::new());
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return writer.flush();
        }
        let Ok(request) = serde_json::from_slice::<EchoRequest>(&line) else {
            continue;
        };
        reply.clear();
        reply.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        serde_json::to_writer(&mut reply, &request.id)?;
        reply.extend_from_slice(b",\"result\":{}}\n");
        writer.write_all(&reply)?;
        writer.flush()?;
    }
}

/// The socket floor: a thread per connection, in this process, for the
/// rest of its life.
fn spawn_socket_floor(path: &Path) -> BenchResult<()> {
    let listener = UnixListener::bind(path)?;
    thread::Builder::new()
        .name("floor-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let Ok(reader) = stream.try_clone() else {
                    continue;
                };
                thread::spawn(move || echo(reader, stream));
            }
        })?;
    Ok(())
}

// -------------------------------------------------------------- children

/// `exo --root <root> daemon --stdio`, and a client on its stdio.
fn start_stdio_daemon(exo: &Path, root: &Path) -> BenchResult<(Peer, Client)> {
    let log = root.with_extension("log");
    let mut child = exo_command(exo, root, &log)?
        .arg("--stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let client = Client::of_child(&mut child)?;
    let peer = Peer {
        name: "exo daemon --stdio",
        child,
        log: Some(log),
    };
    Ok((peer, client))
}

/// This benchmark re-executed as the stdio floor.
fn start_stdio_floor() -> BenchResult<(Peer, Client)> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(ECHO_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let client = Client::of_child(&mut child)?;
    let peer = Peer {
        name: "stdio floor",
        child,
        log: None,
    };
    Ok((peer, client))
}

// -------------------------------------------------------------- measures

/// Ping latency of exo and the floor, in alternating blocks.
fn bench_ping(exo: &mut Client, floor: &mut Client, plan: &Plan) -> BenchResult<(Stats, Stats)> {
    let (mut at_exo, mut at_floor) = (Series::new(plan.warmup), Series::new(plan.warmup));
    let total = plan.warmup + plan.ping_samples;
    let mut block = 0;
    while at_exo.calls < total {
        let n = plan.ping_block.min(total - at_exo.calls);
        let order: [(&mut Client, &mut Series); 2] = if block % 2 == 0 {
            [(&mut *exo, &mut at_exo), (&mut *floor, &mut at_floor)]
        } else {
            [(&mut *floor, &mut at_floor), (&mut *exo, &mut at_exo)]
        };
        for (client, series) in order {
            for _ in 0..n {
                series.push(client.ping()?);
            }
        }
        block += 1;
    }
    Ok((at_exo.stats(), at_floor.stats()))
}

/// Pipelined throughput of exo and the floor, in alternating rounds, after
/// one warm-up round each. Returns requests per second and the per-round
/// rates.
fn bench_throughput(
    exo: &mut Client,
    floor: &mut Client,
    plan: &Plan,
) -> BenchResult<((f64, f64), Value)> {
    let warmup = (plan.round_requests / 5).max(plan.window);
    exo.pipelined(warmup, plan.window)?;
    floor.pipelined(warmup, plan.window)?;
    let (mut exo_time, mut floor_time) = (Duration::ZERO, Duration::ZERO);
    let (mut exo_rounds, mut floor_rounds) = (Vec::new(), Vec::new());
    let rate = |elapsed: Duration| plan.round_requests as f64 / elapsed.as_secs_f64();
    for round in 0..plan.rounds {
        for exo_turn in [round % 2 == 0, round % 2 != 0] {
            if exo_turn {
                let elapsed = exo.pipelined(plan.round_requests, plan.window)?;
                exo_time += elapsed;
                exo_rounds.push(rate(elapsed));
            } else {
                let elapsed = floor.pipelined(plan.round_requests, plan.window)?;
                floor_time += elapsed;
                floor_rounds.push(rate(elapsed));
            }
        }
    }
    let total = plan.throughput_requests() as f64;
    Ok((
        (
            total / exo_time.as_secs_f64(),
            total / floor_time.as_secs_f64(),
        ),
        json!({"exo_rounds": exo_rounds, "floor_rounds": floor_rounds}),
    ))
}

/// A file on the store's filesystem to time one fsync with: append 100
/// bytes, then `File::sync_all`.
struct FsyncProbe {
    file: File,
}

impl FsyncProbe {
    fn new(path: &Path) -> BenchResult<FsyncProbe> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FsyncProbe { file })
    }

    fn fsync(&mut self) -> BenchResult<Duration> {
        let start = Instant::now();
        self.file.write_all(&[b'x'; 100])?;
        self.file.sync_all()?;
        Ok(start.elapsed())
    }
}

/// Durable `turn/begin` round trips, each preceded by a probe fsync and
/// followed by an untimed `turn/finish`.
fn bench_turns(
    client: &mut Client,
    probe: &mut FsyncProbe,
    plan: &Plan,
) -> BenchResult<(Stats, Stats)> {
    client.call("agent/create", json!({"name": "Bench", "slug": AGENT}))?;
    client.call(
        "conversation/create",
        json!({"agent": AGENT, "name": "Turns", "slug": CONVERSATION}),
    )?;
    // The first turn also opens the session.
    let warmup = plan.warmup.clamp(1, 10);
    let (mut turns, mut fsyncs) = (Series::new(warmup), Series::new(warmup));
    for n in 0..warmup + plan.turns {
        fsyncs.push(probe.fsync()?);
        let params =
            json!({"agent": AGENT, "conversation": CONVERSATION, "input": format!("turn {n}")});
        let start = Instant::now();
        let begun = client.call("turn/begin", params)?;
        turns.push(start.elapsed());
        let turn = begun
            .get("turn")
            .cloned()
            .ok_or("turn/begin returned no turn")?;
        client.call("turn/finish", json!({"turn": turn, "status": "completed"}))?;
    }
    Ok((turns.stats(), fsyncs.stats()))
}

/// The built-in executor's cost for a turn: `turn/run` of an agent on a
/// scripted model answering one line (no network, no tools), beside the
/// substrate's own floor for a turn, `turn/begin` then `turn/finish`, in
/// alternation. Neither conversation has a workspace, so neither takes
/// snapshots. What `turn/run` adds: resolving the agent and model, reading
/// the history into a prompt, the model call, recording the answer, and the
/// notifications.
fn bench_turn_run(client: &mut Client, dir: &Path, plan: &Plan) -> BenchResult<(Stats, Stats)> {
    let warmup = plan.warmup.clamp(1, 10);
    let answers: Vec<Value> = (0..warmup + plan.turns)
        .map(|n| json!({"text": format!("answer {n}")}))
        .collect();
    let script = dir.join("script.json");
    fs::write(&script, json!({ "responses": answers }).to_string())?;
    client.call(
        "model/register",
        json!({"name": "scripted", "provider": "scripted", "base_url": format!("file://{}", script.display())}),
    )?;
    client.call(
        "agent/create",
        json!({"name": "Runner", "slug": "runner", "model": "scripted", "approval": "auto"}),
    )?;
    client.call(
        "conversation/create",
        json!({"agent": "runner", "name": "Run", "slug": "run"}),
    )?;
    let (mut runs, mut floors) = (Series::new(warmup), Series::new(warmup));
    for n in 0..warmup + plan.turns {
        let input = format!("turn {n}");
        let start = Instant::now();
        let begun = client.call(
            "turn/begin",
            json!({"agent": AGENT, "conversation": CONVERSATION, "input": input}),
        )?;
        let turn = begun
            .get("turn")
            .cloned()
            .ok_or("turn/begin returned no turn")?;
        client.call("turn/finish", json!({"turn": turn, "status": "completed"}))?;
        floors.push(start.elapsed());

        let start = Instant::now();
        let ran = client.call(
            "turn/run",
            json!({"agent": "runner", "conversation": "run", "input": input}),
        )?;
        runs.push(start.elapsed());
        if ran["status"] != "completed" {
            return Err(format!("turn/run ended {}", ran["status"]).into());
        }
    }
    Ok((runs.stats(), floors.stats()))
}

/// Fan-out latency of `events/watch`: three watchers on the socket, one
/// writer appending one event at a time. A sample is the time from sending
/// the append to the last of the three watchers reading its notification,
/// so it bounds commit-to-delivery from above (it includes the commit's
/// fsync, which the reference column, a paired fsync, shows). Every
/// watcher must see every event, in order.
fn bench_watch(
    socket: &Path,
    writer: &mut Client,
    probe: &mut FsyncProbe,
    plan: &Plan,
) -> BenchResult<(Stats, Stats)> {
    let head = writer.call(
        "conversation/get",
        json!({"agent": AGENT, "conversation": CONVERSATION}),
    )?["head"]
        .clone();
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let mut watcher = Client::socket(socket)?;
        watcher.call(
            "events/watch",
            json!({"agent": AGENT, "conversation": CONVERSATION, "after": head}),
        )?;
        watchers.push(watcher);
    }
    let warmup = plan.warmup.clamp(1, 10);
    let (mut delivered, mut fsyncs) = (Series::new(warmup), Series::new(warmup));
    for n in 0..warmup + plan.turns {
        fsyncs.push(probe.fsync()?);
        let event = json!({"kind": "custom", "type": "bench.watch", "payload": {"n": n}});
        let start = Instant::now();
        let appended = writer.call(
            "conversation/append",
            json!({"agent": AGENT, "conversation": CONVERSATION, "events": [event]}),
        )?;
        let id = appended["head"].clone();
        let mut last = Duration::ZERO;
        for watcher in &mut watchers {
            watcher.read_line()?;
            let notification: Value = serde_json::from_slice(&watcher.line)?;
            if notification["params"]["events"][0]["id"] != id {
                return Err(format!("a watcher saw {notification} instead of {id}").into());
            }
            last = last.max(start.elapsed());
        }
        delivered.push(last);
    }
    Ok((delivered.stats(), fsyncs.stats()))
}

// ------------------------------------------------------------------ main

// ------------------------------------------------------- large requests

/// One batch of `plan.batch` pings, timed until its one array of replies
/// has arrived and been read, beside the same number of pings pipelined
/// singly (100 in flight) on the same connection. Returns both times.
fn bench_batch(client: &mut Client, plan: &Plan) -> BenchResult<(Duration, Duration)> {
    let pipelined = client.pipelined(plan.batch, plan.window)?;
    let mut batch = Vec::with_capacity(plan.batch * 40);
    batch.push(b'[');
    for id in 0..plan.batch {
        if id > 0 {
            batch.push(b',');
        }
        batch.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        batch.extend_from_slice(id.to_string().as_bytes());
        batch.extend_from_slice(br#","method":"ping"}"#);
    }
    batch.extend_from_slice(b"]\n");
    let start = Instant::now();
    client.writer.write_all(&batch)?;
    client.writer.flush()?;
    client.read_line()?;
    let elapsed = start.elapsed();
    let replies: Vec<Reply> = serde_json::from_slice(&client.line)?;
    if replies.len() != plan.batch
        || replies
            .iter()
            .enumerate()
            .any(|(i, reply)| reply.id != Some(i as u64) || reply.result.is_none())
    {
        return Err("the batch's replies do not match its requests".into());
    }
    Ok((elapsed, pipelined))
}

/// A process's peak resident set so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `command` to completion, sampling its peak resident set until it
/// exits (the last sample is taken at most a few milliseconds before the
/// end, and the peak never decreases). Returns the wall time and the peak.
fn run_measured(command: &mut Command) -> BenchResult<(Duration, u64)> {
    let start = Instant::now();
    let mut child = command.spawn()?;
    let mut peak = 0;
    let status = loop {
        if let Some(rss) = peak_rss(child.id()) {
            peak = peak.max(rss);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("{command:?} failed: {status}").into());
    }
    Ok((elapsed, peak))
}

/// What one large append cost.
struct AppendCost {
    embedded: (Duration, u64),
    through_daemon: (Duration, u64),
    daemon_peak: u64,
}

/// `exo conversation append` of `plan.append_events` small events (30
/// bytes a line) in one batch: in-process, then through a daemon that has
/// a watcher on the conversation (so it keeps the events for it too).
fn bench_append(exo: &Path, dir: &Path, plan: &Plan) -> BenchResult<(AppendCost, u64)> {
    let input = dir.join("events.ndjson");
    {
        let mut file = BufWriter::new(File::create(&input)?);
        for _ in 0..plan.append_events {
            file.write_all(b"{\"kind\":\"custom\",\"type\":\"a.b\"}\n")?;
        }
        file.flush()?;
    }
    let input_bytes = fs::metadata(&input)?.len();
    let cli = |root: &Path, args: &[&str]| -> BenchResult<Command> {
        let mut command = Command::new(exo);
        command
            .arg("--root")
            .arg(root)
            .args(args)
            .env_remove("EXO_LOG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Ok(command)
    };
    let prepare = |root: &Path| -> BenchResult<()> {
        for args in [
            &["agent", "create", "Bench", "--slug", "bench"][..],
            &[
                "conversation",
                "create",
                "bench",
                "Append",
                "--slug",
                "append",
            ][..],
        ] {
            let status = cli(root, args)?.stdin(Stdio::null()).status()?;
            if !status.success() {
                return Err(format!("exo {args:?} failed").into());
            }
        }
        Ok(())
    };
    let append = ["conversation", "append", "bench", "append"];

    let embedded_root = dir.join("append-embedded");
    prepare(&embedded_root)?;
    let embedded = run_measured(cli(&embedded_root, &append)?.stdin(File::open(&input)?))?;

    let daemon_root = dir.join("append-daemon");
    prepare(&daemon_root)?;
    let (daemon, socket) = start_socket_daemon(exo, &daemon_root)?;
    let mut watcher = Client::socket(&socket)?;
    watcher.call(
        "events/watch",
        json!({"agent": "bench", "conversation": "append"}),
    )?;
    let through_daemon = run_measured(cli(&daemon_root, &append)?.stdin(File::open(&input)?))?;
    let daemon_peak = peak_rss(daemon.child.id()).unwrap_or(0);
    drop(watcher);
    let mut stopper = Client::socket(&socket)?;
    stopper.call("daemon/stop", json!({}))?;
    daemon.wait(Duration::from_secs(60));
    fs::remove_file(&input)?;
    Ok((
        AppendCost {
            embedded,
            through_daemon,
            daemon_peak,
        },
        input_bytes,
    ))
}

fn main() -> BenchResult<()> {
    if std::env::var_os(ECHO_ENV).is_some() {
        return Ok(echo(io::stdin().lock(), io::stdout().lock())?);
    }
    let mode = Mode::from_env();
    let plan = Plan::new(mode.name);
    let exo = exo_binary()?;
    let tmp = scratch_dir("rpc", "socket/exo.sock")?;
    let mut report = Report::default();

    // ------------------------------------------------ socket
    eprintln!(
        "socket: starting exo ({}) and the floor in {}",
        exo.display(),
        tmp.path().display()
    );
    let (daemon, socket) = start_socket_daemon(&exo, &tmp.path().join("socket"))?;
    let floor_socket = tmp.path().join("floor.sock");
    spawn_socket_floor(&floor_socket)?;
    let mut exo_client = Client::socket(&socket)?;
    let mut floor_client = Client::socket(&floor_socket)?;

    eprintln!("socket: ping ({} samples each)", plan.ping_samples);
    let ping = bench_ping(&mut exo_client, &mut floor_client, &plan)?;
    report.latency(
        "socket.ping",
        "socket ping",
        ping,
        "floor",
        Some(Target::AtMost(1.5)),
    );

    eprintln!(
        "socket: throughput ({} requests each, {} in flight)",
        plan.throughput_requests(),
        plan.window
    );
    let ((exo_rate, floor_rate), rounds) =
        bench_throughput(&mut exo_client, &mut floor_client, &plan)?;
    report.extra.insert("socket.throughput".into(), rounds);
    report.row(
        "socket.throughput",
        &format!("socket throughput, {} in flight", plan.window),
        Unit::RequestsPerSec,
        exo_rate,
        floor_rate,
        "floor",
        Some(Target::AtLeast(0.5)),
    );

    eprintln!("socket: turn/begin ({} turns)", plan.turns);
    let mut probe = FsyncProbe::new(&tmp.path().join("fsync-probe"))?;
    let turns = bench_turns(&mut exo_client, &mut probe, &plan)?;
    report.latency(
        "socket.turn_begin",
        "socket turn/begin (durable)",
        turns,
        "fsync",
        None,
    );

    eprintln!(
        "socket: turn/run with a scripted model ({} turns)",
        plan.turns
    );
    let runs = bench_turn_run(&mut exo_client, tmp.path(), &plan)?;
    report.latency(
        "socket.turn_run",
        "socket turn/run vs begin+finish",
        runs,
        "floor",
        None,
    );

    eprintln!(
        "socket: events/watch fan-out to 3 watchers ({} events)",
        plan.turns
    );
    let watch = bench_watch(&socket, &mut exo_client, &mut probe, &plan)?;
    report.latency(
        "socket.watch",
        "append to 3 watchers notified",
        watch,
        "fsync",
        None,
    );

    eprintln!("socket: one batch of {} pings", plan.batch);
    let (batch, pipelined) = bench_batch(&mut exo_client, &plan)?;
    report.row(
        "socket.batch",
        &format!(
            "batch of {} pings vs pipelined",
            thousands(plan.batch as u64)
        ),
        Unit::Millis,
        batch.as_secs_f64() * 1e3,
        pipelined.as_secs_f64() * 1e3,
        "pipe",
        None,
    );
    if let Some(rss) = peak_rss(daemon.child.id()) {
        report
            .extra
            .insert("socket.daemon_peak_rss_bytes".into(), json!(rss));
    }

    exo_client.call("daemon/stop", json!({}))?;
    drop(exo_client);
    drop(floor_client);
    daemon.wait(Duration::from_secs(30));

    eprintln!(
        "append: {} small events in one batch, in-process and through a daemon",
        plan.append_events
    );
    let (append, input_bytes) = bench_append(&exo, tmp.path(), &plan)?;
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let events = thousands(plan.append_events as u64);
    report.row(
        "append.embedded.peak_rss",
        &format!("append {events}, in-process: peak RSS vs input"),
        Unit::MiB,
        mib(append.embedded.1),
        mib(input_bytes),
        "input",
        None,
    );
    report.row(
        "append.cli.peak_rss",
        &format!("append {events}, CLI via daemon: peak RSS vs input"),
        Unit::MiB,
        mib(append.through_daemon.1),
        mib(input_bytes),
        "input",
        None,
    );
    report.row(
        "append.daemon.peak_rss",
        &format!("append {events}, daemon (1 watcher): peak RSS vs input"),
        Unit::MiB,
        mib(append.daemon_peak),
        mib(input_bytes),
        "input",
        None,
    );
    report.extra.insert(
        "append.seconds".into(),
        json!({
            "embedded": append.embedded.0.as_secs_f64(),
            "through_daemon": append.through_daemon.0.as_secs_f64(),
        }),
    );
    eprintln!(
        "append: {:.2} s in-process, {:.2} s through the daemon",
        append.embedded.0.as_secs_f64(),
        append.through_daemon.0.as_secs_f64()
    );

    // ------------------------------------------------ stdio
    eprintln!("stdio: starting exo and the floor");
    let (mut daemon, mut exo_client) = start_stdio_daemon(&exo, &tmp.path().join("stdio"))?;
    if let Err(err) = exo_client.call("ping", json!({})) {
        daemon.exited()?;
        return Err(err);
    }
    let (floor, mut floor_client) = start_stdio_floor()?;

    eprintln!("stdio: ping ({} samples each)", plan.ping_samples);
    let ping = bench_ping(&mut exo_client, &mut floor_client, &plan)?;
    report.latency(
        "stdio.ping",
        "stdio ping",
        ping,
        "floor",
        Some(Target::AtMost(1.5)),
    );

    eprintln!(
        "stdio: throughput ({} requests each, {} in flight)",
        plan.throughput_requests(),
        plan.window
    );
    let ((exo_rate, floor_rate), rounds) =
        bench_throughput(&mut exo_client, &mut floor_client, &plan)?;
    report.extra.insert("stdio.throughput".into(), rounds);
    report.row(
        "stdio.throughput",
        &format!("stdio throughput, {} in flight", plan.window),
        Unit::RequestsPerSec,
        exo_rate,
        floor_rate,
        "floor",
        Some(Target::AtLeast(0.5)),
    );

    exo_client.call("daemon/stop", json!({}))?;
    drop(exo_client);
    drop(floor_client);
    daemon.wait(Duration::from_secs(30));
    floor.wait(Duration::from_secs(5));

    report.print_table(&format!(
        "exo RPC benchmark ({}: {} pings, {} pipelined requests with {} in flight, {} turns)",
        plan.mode,
        thousands(plan.ping_samples as u64),
        thousands(plan.throughput_requests() as u64),
        plan.window,
        plan.turns,
    ));
    report.write_json(&mode, "rpc", &exo, plan.to_json())?;
    drop(probe);
    tmp.close()?;
    Ok(())
}
