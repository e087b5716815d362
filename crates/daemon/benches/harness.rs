//! # Harness benchmark
//!
//! What a turn costs when its executor is a TypeScript runner
//! (spec/harness.md) rather than exo's built-in executor, measured on the
//! real daemon (the `exo` binary, `exo --root <tmp>/root daemon`, spoken to
//! over its socket), each figure beside a baseline measured in the same run,
//! in alternation, so drift on a shared machine hits both alike.
//!
//! | metric | how | target |
//! |---|---|---|
//! | warm turn, TypeScript vs built-in | `turn/run` round trips of agent `ts` (`examples/typescript/basic-harness.ts`, its runner warm) and agent `native` (the built-in executor) on conversations of the same depth, one after the other, the same scripted one-line answer; p50 and p99 | TypeScript p50 ≤ 1.5 × built-in p50 |
//! | runner cold start | the first turn of `ts` on fresh conversations, each starting a runner, against the warm TypeScript turn's p50; beside it, in alternation, the first turn of `native` on fresh conversations (a first turn without a runner) | cold p50 − warm p50 ≤ 300 ms |
//! | first turn at the cap | the first turn of `ts` on fresh conversations once 8 runners are warm, so exo stops one to start another, against the cold start above | reported |
//! | `model/complete`, JSON-RPC vs in-process | one request (a user message and instructions) to the scripted model, timed inside a runner around `await ctx.model.complete(...)` (with `record: false`) and, in this process, around `exo_model::Client::complete`, in alternating blocks; p50 and p99 | JSON-RPC p50 − in-process p50 ≤ 1 ms |
//!
//! - **The model.** One scripted model (`model/register`, provider
//!   `scripted`, a script file of `answer 0`, `answer 1`, ... and no
//!   delay). It answers a call with the response whose index is the number
//!   of model answers already in the call's history, so the n-th turn of a
//!   conversation gets `answer n` under either executor. Every turn's
//!   answer is checked.
//! - **No workspace.** No conversation has a workspace, so no turn takes a
//!   snapshot and no model is offered a tool: what is measured is the
//!   executor and the substrate, not git.
//! - **Warm turns.** A built-in turn: exo reads the history, calls the
//!   model, records the answer. A TypeScript turn adds the runner's round
//!   trips: `harness/turn` to the runner and, from it, `history/items` and
//!   `model/complete` back to exo, each carrying the whole history as JSON,
//!   so the difference grows with the conversation. To measure the same
//!   thing in every mode, conversations are 40 turns deep (4 in the smoke
//!   run), taken side by side in groups (6 conversations of each agent at
//!   a time, fewer in the quick run), and deleted after their group (which
//!   stops their runners). The first turn of each conversation (for `ts`,
//!   the one that starts its runner) is not counted. `details.
//!   warm_turn_by_depth` in the JSON gives the p50s by depth. A round trip
//!   is the time from writing the request to reading its response; the
//!   notifications in between (`turn/delta`, ...) are read and dropped.
//! - **First turns.** A cold TypeScript turn includes starting `node`,
//!   loading the runtime, loading tsx and compiling the module (tsx caches
//!   compiled modules on disk, and `agent/create` has loaded the module
//!   once already). Each such conversation is deleted after its turn, so a
//!   warm place is always free: exo keeps at most 8 runners warm
//!   (`EXO_HARNESS_WARM`, cleared for the daemon so the default holds), and
//!   starting another stops the least recently used one. The row "8
//!   runners warm" measures that case, after untimed first turns have
//!   filled the 8 places.
//! - **`model/complete`.** The JSON-RPC side is a module of this
//!   benchmark's own, `benches/model-complete-probe.mjs` (plain JavaScript,
//!   so no compiler runs when it loads), run by agent `probe`: one turn
//!   makes N calls (the turn's `max_rounds` is N, which also bounds
//!   unrecorded calls), times each with `process.hrtime.bigint()`, and
//!   records the times as a custom event `harness.probe.timings`, read back
//!   with `events/list`. A call's time includes the runtime's building and
//!   encoding of the request, the pipe to exo, exo's decoding, checks and
//!   dispatch, the model client's call, exo's encoding of the answer, the
//!   pipe back, and the runtime's decoding and promise resolution.
//!   `ctx.model.complete` asks for no streaming (`stream: false`), so no
//!   `model/delta` notifications are sent. The in-process side is the model
//!   client alone: the same request, built once, to an `exo_model::Client`
//!   for the same script, on a current-thread tokio runtime. The first
//!   block of each side is not counted.
//!
//! p50 and p99 are nearest-rank percentiles. The `exo` binary is the one of
//! this benchmark's profile (`<target>/release/exo` under `cargo bench`),
//! built first with `cargo build --bin exo` (a no-op when it is fresh);
//! `EXO_BENCH_EXO=<path>` uses another binary and skips the build.
//!
//! # Running
//!
//! The TypeScript runtime must be built (`typescript/harness/dist/runner.js`,
//! or `$EXO_HARNESS_RUNTIME/dist/runner.js` when that is set), and `node`
//! (20 or later) be on `PATH`; without the runtime the benchmark fails,
//! saying so.
//!
//! ```text
//! eval "$(scripts/setup-node --print-env)"
//! cargo bench -p exo-daemon --bench harness                     # full: about 20 s
//! EXO_BENCH_QUICK=1 cargo bench -p exo-daemon --bench harness   # quick: about 5 s
//! ```
//!
//! `EXO_BENCH_TMP=<dir>` puts the temporary root elsewhere (default
//! `<target>/bench-tmp`). The table goes to stdout, progress to stderr, and
//! the results as JSON to `$EXO_BENCH_OUT` (relative to the workspace root)
//! or `<target>/bench/harness.json`. Run without `--bench` (as `cargo test
//! --all-targets` does), it makes a smoke run of a few seconds and writes
//! JSON only to `$EXO_BENCH_OUT`. The process exits successfully even when
//! a target is missed: the bench reports, it does not gate.

#![allow(clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use exo_model::{CancellationToken, Endpoint, Item, Provider, Role};
use serde_json::{json, Value};

use common::{
    exo_binary, scratch_dir, start_socket_daemon_with, us, workspace_root, BenchResult, Client,
    Mode, Report, Stats, Target, Unit,
};

/// The scripted model's binding.
const MODEL: &str = "scripted";

/// The agents: the built-in executor, the example TypeScript harness, and
/// this benchmark's probe of `model/complete`.
const NATIVE: &str = "native";
const TS: &str = "ts";
const PROBE: &str = "probe";

/// The module agent `ts` runs, from the workspace root.
const BASIC_HARNESS: &str = "examples/typescript/basic-harness.ts";

/// The module agent `probe` runs, beside this file.
const PROBE_MODULE: &str = "model-complete-probe.mjs";

/// The custom event the probe records its times in.
const PROBE_EVENT: &str = "harness.probe.timings";

/// The request timed by the `model/complete` series.
const PROMPT: &str = "What is 2 + 2? Answer with the number only.";
const INSTRUCTIONS: &str = "You are a terse assistant.";

/// exo's default number of warm runners (spec/harness.md, Lifetime).
const MAX_WARM: usize = 8;

/// How much work to do.
struct Plan {
    /// "full", "quick", or "smoke".
    mode: &'static str,
    /// Turns per conversation in the warm series; the first of each (which
    /// starts the runner) is not counted.
    depth: usize,
    /// Conversations of each agent taking turns side by side in the warm
    /// series.
    width: usize,
    /// Groups of `width` conversations, one after the other.
    groups: usize,
    /// First turns on fresh conversations, of each agent, with room for
    /// one more warm runner.
    cold: usize,
    /// First turns of agent `ts` on fresh conversations with 8 runners warm.
    at_cap: usize,
    /// `model/complete` calls per block (one probe turn).
    calls: usize,
    /// Blocks counted, of each side, after one not counted.
    blocks: usize,
}

impl Plan {
    fn new(mode: &'static str) -> Plan {
        match mode {
            "full" => Plan {
                mode,
                depth: 40,
                width: 6,
                groups: 4,
                cold: 40,
                at_cap: 16,
                calls: 200,
                blocks: 20,
            },
            "quick" => Plan {
                mode,
                depth: 40,
                width: 3,
                groups: 1,
                cold: 10,
                at_cap: 4,
                calls: 100,
                blocks: 6,
            },
            _ => Plan {
                mode,
                depth: 4,
                width: 1,
                groups: 1,
                cold: 2,
                at_cap: 1,
                calls: 20,
                blocks: 1,
            },
        }
    }

    /// Warm turns counted, of each agent.
    fn warm_turns(&self) -> usize {
        self.groups * self.width * (self.depth - 1)
    }

    fn to_json(&self) -> Value {
        json!({
            "depth": self.depth,
            "width": self.width,
            "groups": self.groups,
            "cold": self.cold,
            "at_cap": self.at_cap,
            "calls": self.calls,
            "blocks": self.blocks,
        })
    }
}

// ----------------------------------------------------------------- setup

/// The runtime's runner exo will start, or an error saying how to build it.
fn harness_runtime() -> BenchResult<PathBuf> {
    let runner = match std::env::var_os("EXO_HARNESS_RUNTIME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("dist/runner.js"),
        None => workspace_root().join("typescript/harness/dist/runner.js"),
    };
    if !runner.is_file() {
        return Err(format!(
            "the TypeScript harness runtime is not built (no {}): run scripts/setup-node, or eval \"$(scripts/setup-node --print-env)\"",
            runner.display()
        )
        .into());
    }
    Ok(runner)
}

/// `node --version`, for the record.
fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn answer(n: usize) -> String {
    format!("answer {n}")
}

/// Writes the script, registers the model, and creates the three agents
/// (the two TypeScript ones have their module loaded once by exo's check).
/// Returns the script's path.
fn set_up(client: &mut Client, dir: &Path, plan: &Plan) -> BenchResult<PathBuf> {
    // One answer per turn of a conversation.
    let responses: Vec<Value> = (0..plan.depth.max(1))
        .map(|n| json!({ "text": answer(n) }))
        .collect();
    let script = dir.join("script.json");
    fs::write(&script, json!({ "responses": responses }).to_string())?;
    client.call(
        "model/register",
        json!({"name": MODEL, "provider": "scripted", "base_url": format!("file://{}", script.display())}),
    )?;
    let basic = workspace_root().join(BASIC_HARNESS);
    let probe = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(PROBE_MODULE);
    for module in [&basic, &probe] {
        if !module.is_file() {
            return Err(format!("no module at {}", module.display()).into());
        }
    }
    client.call(
        "agent/create",
        json!({"name": "Native", "slug": NATIVE, "model": MODEL, "approval": "auto"}),
    )?;
    for (slug, module) in [(TS, &basic), (PROBE, &probe)] {
        client.call(
            "agent/create",
            json!({
                "name": slug, "slug": slug, "model": MODEL, "approval": "auto",
                "harness": "typescript", "module": module.display().to_string(),
            }),
        )?;
    }
    Ok(script)
}

fn create_conversation(client: &mut Client, agent: &str, slug: &str) -> BenchResult<()> {
    client.call(
        "conversation/create",
        json!({"agent": agent, "name": slug, "slug": slug}),
    )?;
    Ok(())
}

fn delete_conversation(client: &mut Client, agent: &str, slug: &str) -> BenchResult<()> {
    client.call(
        "conversation/delete",
        json!({"agent": agent, "conversation": slug}),
    )?;
    Ok(())
}

/// The daemon's runners: its child processes running the runtime's
/// `runner.js` (a killed one that is not reaped yet has no command line).
fn runner_count(daemon: u32) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .filter(|pid| pid.bytes().all(|byte| byte.is_ascii_digit()))
        .filter(|pid| parent_of(pid) == Some(daemon))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.windows(9).any(|window| window == b"runner.js"))
        })
        .count()
}

/// A process's parent, from `/proc/<pid>/stat`: `pid (comm) state ppid
/// ...`, where `comm` may hold spaces and parentheses.
fn parent_of(pid: &str) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until the daemon has at most `n` runners: one whose conversation
/// was deleted is killed, and reaped, in the background, and one stopped to
/// make room may exit after the turn that stopped it.
fn wait_for_runners(daemon: u32, n: usize) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while runner_count(daemon) > n {
        if Instant::now() > deadline {
            return Err(format!(
                "exo still has {} runners after 10 s, not at most {n}",
                runner_count(daemon)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// One `turn/run`, timed from the request to its response. The turn must
/// complete; with `expected`, its answer must be that.
fn run_turn(
    client: &mut Client,
    agent: &str,
    conversation: &str,
    input: &str,
    max_rounds: Option<usize>,
    expected: Option<&str>,
) -> BenchResult<(Duration, Value)> {
    let mut params = json!({"agent": agent, "conversation": conversation, "input": input});
    if let Some(max_rounds) = max_rounds {
        params["max_rounds"] = json!(max_rounds);
    }
    let start = Instant::now();
    let ran = client.call("turn/run", params)?;
    let elapsed = start.elapsed();
    if ran["status"] != "completed" {
        return Err(format!(
            "turn/run of {agent}/{conversation} ended {} ({})",
            ran["status"], ran["error"]
        )
        .into());
    }
    if let Some(expected) = expected {
        if ran["text"] != expected {
            return Err(format!(
                "turn/run of {agent}/{conversation} answered {} instead of {expected:?}",
                ran["text"]
            )
            .into());
        }
    }
    Ok((elapsed, ran))
}

// -------------------------------------------------------------- measures

/// Warm turns of `ts` and `native`, the same conversation depths side by
/// side.
struct Warm {
    ts: Stats,
    native: Stats,
    /// p50s by the number of turns before (tens), in ms.
    by_depth: Value,
}

/// The warm series: in each group, `plan.width` conversations of each
/// agent take `plan.depth` turns, round-robin, a turn of `ts` and one of
/// `native` on conversations of the same depth one after the other (which
/// goes first flips every time). The first turn of each conversation is
/// not counted. A group's conversations are deleted after it, which stops
/// its runners.
fn bench_warm(client: &mut Client, daemon: u32, plan: &Plan) -> BenchResult<Warm> {
    // Each counted turn's depth (the turns before it) and time.
    let mut ts: Vec<(usize, Duration)> = Vec::new();
    let mut native: Vec<(usize, Duration)> = Vec::new();
    for group in 0..plan.groups {
        let slugs: Vec<String> = (0..plan.width)
            .map(|c| format!("warm-{group}-{c}"))
            .collect();
        for slug in &slugs {
            create_conversation(client, TS, slug)?;
            create_conversation(client, NATIVE, slug)?;
        }
        for depth in 0..plan.depth {
            let input = format!("turn {depth}");
            let expected = answer(depth);
            for (c, slug) in slugs.iter().enumerate() {
                let order = if (depth + c) % 2 == 0 {
                    [TS, NATIVE]
                } else {
                    [NATIVE, TS]
                };
                for agent in order {
                    let (elapsed, _) =
                        run_turn(client, agent, slug, &input, None, Some(&expected))?;
                    if depth > 0 {
                        let series = if agent == TS { &mut ts } else { &mut native };
                        series.push((depth, elapsed));
                    }
                }
            }
        }
        for slug in &slugs {
            delete_conversation(client, TS, slug)?;
            delete_conversation(client, NATIVE, slug)?;
        }
        wait_for_runners(daemon, 0)?;
    }
    let mut by_depth = serde_json::Map::new();
    for first in (1..plan.depth).step_by(10) {
        let last = (first + 9).min(plan.depth - 1);
        let p50 = |series: &[(usize, Duration)]| {
            p50_ms(
                series
                    .iter()
                    .filter(|(depth, _)| (first..=last).contains(depth))
                    .map(|(_, elapsed)| *elapsed),
            )
        };
        by_depth.insert(
            format!("{first}-{last}"),
            json!({"ts_p50_ms": p50(&ts), "builtin_p50_ms": p50(&native)}),
        );
    }
    let times =
        |series: Vec<(usize, Duration)>| series.into_iter().map(|(_, elapsed)| elapsed).collect();
    Ok(Warm {
        ts: Stats::of(times(ts)),
        native: Stats::of(times(native)),
        by_depth: Value::Object(by_depth),
    })
}

/// The `model/complete` series: probe turns of `plan.calls` calls each
/// beside blocks of as many in-process calls, the order flipped every
/// block; the first block of each is not counted. Returns the JSON-RPC
/// side's stats and the in-process side's.
fn bench_complete(client: &mut Client, script: &Path, plan: &Plan) -> BenchResult<(Stats, Stats)> {
    create_conversation(client, PROBE, "probe")?;
    let request = json!({
        "items": [{"type": "message", "role": "user", "content": PROMPT}],
        "instructions": INSTRUCTIONS,
    });
    let input = json!({"calls": plan.calls, "request": request}).to_string();
    let expected = answer(0);

    let in_process = InProcess::new(script)?;
    let (mut rpc, mut local) = (Vec::new(), Vec::new());
    for block in 0..1 + plan.blocks {
        for rpc_turn in [block % 2 == 0, block % 2 != 0] {
            let samples = if rpc_turn {
                probe_turn(client, &input, plan.calls, &expected)?
            } else {
                in_process.block(plan.calls, &expected)?
            };
            let side = if rpc_turn { &mut rpc } else { &mut local };
            if block > 0 {
                side.extend(samples);
            }
        }
    }
    Ok((Stats::of(rpc), Stats::of(local)))
}

/// One probe turn: its `calls` times, read back from its event.
fn probe_turn(
    client: &mut Client,
    input: &str,
    calls: usize,
    expected: &str,
) -> BenchResult<Vec<Duration>> {
    let (_, ran) = run_turn(client, PROBE, "probe", input, Some(calls), None)?;
    let listed = client.call(
        "events/list",
        json!({"agent": PROBE, "conversation": "probe", "turn": ran["turn"], "kind": "custom"}),
    )?;
    let event = listed["events"]
        .as_array()
        .and_then(|events| events.iter().find(|event| event["type"] == PROBE_EVENT))
        .ok_or_else(|| format!("the probe's turn recorded no {PROBE_EVENT}: {listed}"))?;
    let payload = &event["payload"];
    if payload["text"] != expected {
        return Err(format!(
            "the probe's model answered {} instead of {expected:?}",
            payload["text"]
        )
        .into());
    }
    let times: Vec<Duration> = payload["ns"]
        .as_array()
        .ok_or("the probe's event has no times")?
        .iter()
        .filter_map(Value::as_u64)
        .map(Duration::from_nanos)
        .collect();
    if times.len() != calls {
        return Err(format!("the probe timed {} calls, not {calls}", times.len()).into());
    }
    Ok(times)
}

/// The model client exo builds for the scripted binding, called in this
/// process.
struct InProcess {
    runtime: tokio::runtime::Runtime,
    client: exo_model::Client,
    request: exo_model::Request,
}

impl InProcess {
    fn new(script: &Path) -> BenchResult<InProcess> {
        let endpoint =
            Endpoint::for_binding(Provider::Scripted, &format!("file://{}", script.display()));
        Ok(InProcess {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            client: exo_model::Client::new(endpoint)?,
            request: exo_model::Request {
                model: MODEL.to_string(),
                instructions: Some(INSTRUCTIONS.to_string()),
                items: vec![Item::text(Role::User, PROMPT)],
                ..exo_model::Request::default()
            },
        })
    }

    /// `calls` calls, each timed.
    fn block(&self, calls: usize, expected: &str) -> BenchResult<Vec<Duration>> {
        let cancel = CancellationToken::new();
        self.runtime.block_on(async {
            let mut times = Vec::with_capacity(calls);
            for _ in 0..calls {
                let start = Instant::now();
                let response = self
                    .client
                    .complete(&self.request, &cancel, &mut |_| {})
                    .await?;
                times.push(start.elapsed());
                if response.text != expected {
                    return Err(format!(
                        "the model answered {:?} instead of {expected:?}",
                        response.text
                    )
                    .into());
                }
            }
            Ok(times)
        })
    }
}

/// First turns on fresh conversations.
struct Cold {
    ts: Stats,
    native: Stats,
    /// `ts`'s with 8 runners warm.
    at_cap: Stats,
}

/// The first turn of `ts` and of `native` on `plan.cold` fresh
/// conversations each (which goes first flips every time), each
/// conversation deleted after its turn, so a warm place is always free;
/// then, once 8 runners are warm, `plan.at_cap` first turns of `ts`, each
/// of which stops the least recently used runner before it starts its own.
fn bench_cold(client: &mut Client, daemon: u32, plan: &Plan) -> BenchResult<Cold> {
    let expected = answer(0);
    let warm_before = runner_count(daemon);
    let (mut ts, mut native) = (Vec::new(), Vec::new());
    for i in 0..plan.cold {
        let slug = format!("cold-{i}");
        create_conversation(client, TS, &slug)?;
        create_conversation(client, NATIVE, &slug)?;
        let order = if i % 2 == 0 {
            [TS, NATIVE]
        } else {
            [NATIVE, TS]
        };
        for agent in order {
            let (elapsed, _) = run_turn(client, agent, &slug, "hello", None, Some(&expected))?;
            let series = if agent == TS { &mut ts } else { &mut native };
            series.push(elapsed);
        }
        delete_conversation(client, TS, &slug)?;
        delete_conversation(client, NATIVE, &slug)?;
        wait_for_runners(daemon, warm_before)?;
    }

    let mut filled = 0;
    while runner_count(daemon) < MAX_WARM {
        if filled == MAX_WARM {
            return Err(format!(
                "exo keeps {} runners warm, not {MAX_WARM}",
                runner_count(daemon)
            )
            .into());
        }
        let slug = format!("fill-{filled}");
        create_conversation(client, TS, &slug)?;
        run_turn(client, TS, &slug, "hello", None, Some(&expected))?;
        filled += 1;
    }
    let mut at_cap = Vec::new();
    for i in 0..plan.at_cap {
        let slug = format!("cap-{i}");
        create_conversation(client, TS, &slug)?;
        let (elapsed, _) = run_turn(client, TS, &slug, "hello", None, Some(&expected))?;
        at_cap.push(elapsed);
        // The runner it stopped may exit after the turn: the next first
        // turn starts once it has.
        wait_for_runners(daemon, MAX_WARM)?;
    }
    Ok(Cold {
        ts: Stats::of(ts),
        native: Stats::of(native),
        at_cap: Stats::of(at_cap),
    })
}

// ------------------------------------------------------------------ main

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The p50 of some samples, in ms, if there are any.
fn p50_ms(samples: impl Iterator<Item = Duration>) -> Option<f64> {
    let samples: Vec<Duration> = samples.collect();
    (!samples.is_empty()).then(|| ms(Stats::of(samples).p50))
}

fn run() -> BenchResult<()> {
    let mode = Mode::from_env();
    let plan = Plan::new(mode.name);
    let runner = harness_runtime()?;
    let exo = exo_binary()?;
    let tmp = scratch_dir("harness", "root/exo.sock")?;
    let mut report = Report::with_differences();

    eprintln!(
        "starting exo ({}) in {}",
        exo.display(),
        tmp.path().display()
    );
    let (daemon, socket) = start_socket_daemon_with(&exo, &tmp.path().join("root"), |command| {
        // exo's defaults for warm runners, whatever this shell says.
        command
            .env_remove("EXO_HARNESS_WARM")
            .env_remove("EXO_HARNESS_IDLE_SECS");
    })?;
    let daemon_pid = daemon.child.id();
    let mut client = Client::socket(&socket)?;
    let started = Instant::now();
    let script = set_up(&mut client, tmp.path(), &plan)?;
    eprintln!(
        "agents created, their modules checked, in {:.0} ms",
        ms(started.elapsed())
    );

    eprintln!(
        "warm turns: {} groups of {} conversations of each agent, {} turns deep (the first not counted)",
        plan.groups, plan.width, plan.depth
    );
    let warm = bench_warm(&mut client, daemon_pid, &plan)?;
    report.latency(
        "warm_turn",
        "warm turn, TypeScript vs built-in",
        (warm.ts, warm.native),
        "builtin",
        Some(Target::AtMost(1.5)),
    );
    report
        .extra
        .insert("warm_turn_by_depth".into(), warm.by_depth);

    eprintln!(
        "model/complete: {} blocks of {} calls (+1 not counted) through a runner and in-process",
        plan.blocks, plan.calls
    );
    let complete = bench_complete(&mut client, &script, &plan)?;
    report.latency(
        "model_complete",
        "model/complete, JSON-RPC vs in-process",
        complete,
        "in-proc",
        Some(Target::AddedAtMost(1_000.0)),
    );

    eprintln!(
        "first turns: {} fresh conversations of each agent, then {} of ts with {MAX_WARM} runners warm",
        plan.cold, plan.at_cap
    );
    let cold = bench_cold(&mut client, daemon_pid, &plan)?;
    report.row(
        "cold_turn.p50",
        "first turn, TypeScript (runner start) vs warm p50",
        Unit::Micros,
        us(cold.ts.p50),
        us(warm.ts.p50),
        "warm",
        Some(Target::AddedAtMost(300_000.0)),
    );
    report.row(
        "cold_turn.builtin.p50",
        "first turn, built-in vs warm p50",
        Unit::Micros,
        us(cold.native.p50),
        us(warm.native.p50),
        "warm",
        None,
    );
    report.row(
        "cold_turn.vs_builtin.p50",
        "first turn, TypeScript vs built-in p50",
        Unit::Micros,
        us(cold.ts.p50),
        us(cold.native.p50),
        "builtin",
        None,
    );
    report.row(
        "cold_turn.at_cap.p50",
        &format!("first turn, TypeScript, {MAX_WARM} runners warm vs fewer p50"),
        Unit::Micros,
        us(cold.at_cap.p50),
        us(cold.ts.p50),
        "cold",
        None,
    );
    for (key, stats) in [
        ("cold_turn.ts", cold.ts),
        ("cold_turn.builtin", cold.native),
        ("cold_turn.at_cap", cold.at_cap),
    ] {
        report.distributions.insert(key.into(), stats.to_json());
    }
    report.extra.insert(
        "setup".into(),
        json!({
            "node": node_version(),
            "runner": runner.display().to_string(),
            "ts_module": BASIC_HARNESS,
            "probe_module": format!("crates/daemon/benches/{PROBE_MODULE}"),
            "workspace": null,
            "max_warm": MAX_WARM,
        }),
    );

    client.call("daemon/stop", json!({}))?;
    drop(client);
    daemon.wait(Duration::from_secs(30));

    report.print_table(&format!(
        "exo harness benchmark ({}: {} warm turns and {} first turns of each executor, {} × {} model/complete calls of each side)",
        plan.mode,
        plan.warm_turns(),
        plan.cold,
        plan.blocks,
        plan.calls,
    ));
    report.write_json(&mode, "harness", &exo, plan.to_json())?;
    tmp.close()?;
    Ok(())
}

fn main() {
    if let Err(err) = run() {
        eprintln!("harness benchmark: {err}");
        std::process::exit(1);
    }
}
