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
//! cargo bench -p exo-service --bench rpc                     # full
//! EXO_BENCH_QUICK=1 cargo bench -p exo-service --bench rpc   # quick: a few seconds
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

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};

type BenchResult<T> = Result<T, Box<dyn Error>>;

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
}

// ------------------------------------------------------------ statistics

/// A latency distribution.
#[derive(Clone, Copy, Debug)]
struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    min: Duration,
    max: Duration,
    mean: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        let n = samples.len();
        let total: Duration = samples.iter().sum();
        Stats {
            n,
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            min: samples[0],
            max: samples[n - 1],
            mean: total / n as u32,
        }
    }

    fn to_json(self) -> Value {
        json!({
            "n": self.n,
            "p50_us": us(self.p50),
            "p99_us": us(self.p99),
            "min_us": us(self.min),
            "max_us": us(self.max),
            "mean_us": us(self.mean),
        })
    }
}

/// The nearest-rank percentile `p` (0..=1) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Timed samples of one series, warm-up calls left out.
struct Series {
    warmup: usize,
    calls: usize,
    samples: Vec<Duration>,
}

impl Series {
    fn new(warmup: usize) -> Series {
        Series {
            warmup,
            calls: 0,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, elapsed: Duration) {
        if self.calls >= self.warmup {
            self.samples.push(elapsed);
        }
        self.calls += 1;
    }

    fn stats(self) -> Stats {
        Stats::of(self.samples)
    }
}

// ---------------------------------------------------------------- report

#[derive(Clone, Copy, Debug)]
enum Unit {
    Micros,
    RequestsPerSec,
    Millis,
    MiB,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "us",
            Unit::RequestsPerSec => "requests/s",
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::Micros if value >= 10_000.0 => format!("{:.2} ms", value / 1e3),
            Unit::Micros => format!("{value:.1} µs"),
            Unit::RequestsPerSec => format!("{} req/s", thousands(value.round() as u64)),
            Unit::Millis => format!("{value:.0} ms"),
            Unit::MiB => format!("{value:.1} MiB"),
        }
    }
}

/// What the ratio of exo to its reference should reach.
#[derive(Clone, Copy, Debug)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(bound) => value <= bound,
            Target::AtLeast(bound) => value >= bound,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtMost(bound) => format!("<= {bound:.2}x"),
            Target::AtLeast(bound) => format!(">= {bound:.2}x"),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Target::AtMost(bound) => json!({"op": "<=", "ratio": bound}),
            Target::AtLeast(bound) => json!({"op": ">=", "ratio": bound}),
        }
    }
}

/// One row: exo's value next to its reference (the floor, or a paired
/// fsync), and the ratio between them.
struct Row {
    key: String,
    label: String,
    unit: Unit,
    exo: f64,
    reference: f64,
    /// What `reference` is: "floor" or "fsync".
    reference_kind: &'static str,
    target: Option<Target>,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.exo / self.reference
    }

    fn pass(&self) -> Option<bool> {
        self.target.map(|target| target.met(self.ratio()))
    }
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    distributions: Map<String, Value>,
    extra: Map<String, Value>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        key: &str,
        label: &str,
        unit: Unit,
        exo: f64,
        reference: f64,
        reference_kind: &'static str,
        target: Option<Target>,
    ) {
        self.rows.push(Row {
            key: key.to_string(),
            label: label.to_string(),
            unit,
            exo,
            reference,
            reference_kind,
            target,
        });
    }

    /// p50 and p99 rows of two distributions; the target applies to p50.
    fn latency(
        &mut self,
        key: &str,
        label: &str,
        (exo, reference): (Stats, Stats),
        reference_kind: &'static str,
        p50_target: Option<Target>,
    ) {
        self.distributions
            .insert(format!("{key}.exo"), exo.to_json());
        self.distributions
            .insert(format!("{key}.{reference_kind}"), reference.to_json());
        let (exo_p50, ref_p50) = (us(exo.p50), us(reference.p50));
        self.row(
            &format!("{key}.p50"),
            &format!("{label} p50"),
            Unit::Micros,
            exo_p50,
            ref_p50,
            reference_kind,
            p50_target,
        );
        let (exo_p99, ref_p99) = (us(exo.p99), us(reference.p99));
        self.row(
            &format!("{key}.p99"),
            &format!("{label} p99"),
            Unit::Micros,
            exo_p99,
            ref_p99,
            reference_kind,
            None,
        );
    }

    fn all_pass(&self) -> bool {
        self.rows.iter().all(|row| row.pass() != Some(false))
    }

    fn print_table(&self, plan: &Plan) {
        println!();
        println!(
            "exo RPC benchmark ({}: {} pings, {} pipelined requests with {} in flight, {} turns)",
            plan.mode,
            thousands(plan.ping_samples as u64),
            thousands(plan.throughput_requests() as u64),
            plan.window,
            plan.turns,
        );
        let width = self
            .rows
            .iter()
            .map(|row| row.label.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        println!(
            "{:<width$}  {:>15}  {:>15}  {:>6}  {:>9}  {:>8}  result",
            "metric", "exo", "reference", "ref", "exo/ref", "target"
        );
        println!(
            "{}",
            "-".repeat(width + 2 + 15 + 2 + 15 + 2 + 6 + 2 + 9 + 2 + 8 + 8)
        );
        for row in &self.rows {
            let result = match row.pass() {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "info",
            };
            println!(
                "{:<width$}  {:>15}  {:>15}  {:>6}  {:>9}  {:>8}  {result}",
                row.label,
                row.unit.format(row.exo),
                row.unit.format(row.reference),
                row.reference_kind,
                format!("{:.2}x", row.ratio()),
                row.target.map_or_else(|| "-".to_string(), Target::describe),
            );
        }
        let targets = self.rows.iter().filter(|row| row.target.is_some()).count();
        let missed = self
            .rows
            .iter()
            .filter(|row| row.pass() == Some(false))
            .count();
        println!("{} of {targets} targets met", targets - missed);
    }

    fn to_json(&self, plan: &Plan, exo: &Path) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                json!({
                    "key": row.key,
                    "label": row.label,
                    "unit": row.unit.name(),
                    "exo": row.exo,
                    "reference": row.reference,
                    "reference_kind": row.reference_kind,
                    "ratio": row.ratio(),
                    "target": row.target.map(Target::to_json),
                    "pass": row.pass(),
                })
            })
            .collect();
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        json!({
            "bench": "rpc",
            "mode": plan.mode,
            "unix_time": unix_time,
            "exo_binary": exo.display().to_string(),
            "plan": {
                "warmup": plan.warmup,
                "ping_samples": plan.ping_samples,
                "ping_block": plan.ping_block,
                "window": plan.window,
                "round_requests": plan.round_requests,
                "rounds": plan.rounds,
                "turns": plan.turns,
                "batch": plan.batch,
                "append_events": plan.append_events,
            },
            "all_pass": self.all_pass(),
            "metrics": rows,
            "distributions": self.distributions,
            "details": self.extra,
        })
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

// ----------------------------------------------------------------- paths

/// The directory of this benchmark's profile: the binary runs from
/// `<target>/<profile>/deps/`.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    deps.parent().map(Path::to_path_buf)
}

fn target_dir() -> PathBuf {
    profile_dir()
        .and_then(|profile| profile.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root; cargo runs benches from the package's directory.
fn workspace_root() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    package.ancestors().nth(2).unwrap_or(package).to_path_buf()
}

/// The `exo` binary of this benchmark's profile, built first.
fn exo_binary() -> BenchResult<PathBuf> {
    if let Some(path) = std::env::var_os("EXO_BENCH_EXO").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let profile = profile_dir().unwrap_or_else(|| target_dir().join("release"));
    let binary = profile.join("exo");
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .args(["build", "--bin", "exo"])
        .current_dir(workspace_root());
    match profile.file_name().and_then(|name| name.to_str()) {
        Some("debug") => {}
        Some("release") | None => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
    }
    eprintln!("building the exo binary: {build:?}");
    match build.status() {
        Ok(status) if status.success() => {}
        Ok(status) if binary.exists() => {
            eprintln!("warning: `cargo build` failed ({status}); using the existing binary")
        }
        Ok(status) => return Err(format!("building exo failed: {status}").into()),
        Err(err) if binary.exists() => {
            eprintln!("warning: cannot run cargo ({err}); using the existing binary")
        }
        Err(err) => return Err(format!("cannot run cargo to build exo: {err}").into()),
    }
    if !binary.exists() {
        return Err(format!("no exo binary at {}", binary.display()).into());
    }
    Ok(binary)
}

/// Where the JSON results go, if anywhere.
fn output_path(bench_mode: bool) -> Option<PathBuf> {
    match std::env::var_os("EXO_BENCH_OUT") {
        Some(path) if !path.is_empty() => Some(workspace_root().join(path)),
        _ if bench_mode => Some(target_dir().join("bench").join("rpc.json")),
        _ => None,
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

/// A child process, killed if still running when dropped.
struct Peer {
    name: &'static str,
    child: Child,
    log: Option<PathBuf>,
}

impl Peer {
    fn log_tail(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| fs::read_to_string(log).ok())
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            })
            .unwrap_or_default()
    }

    fn exited(&mut self) -> BenchResult<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(format!(
                "{} exited early ({status}):\n{}",
                self.name,
                self.log_tail()
            )
            .into());
        }
        Ok(())
    }

    /// Waits for the process to end after it was asked to; then SIGTERM,
    /// then SIGKILL.
    fn wait(mut self, grace: Duration) {
        if wait_exit(&mut self.child, grace) {
            return;
        }
        eprintln!(
            "{} did not stop within {grace:?}; sending SIGTERM",
            self.name
        );
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if !wait_exit(&mut self.child, Duration::from_secs(5)) {
            eprintln!("{} ignored SIGTERM; killing it", self.name);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

fn exo_command(exo: &Path, root: &Path, log: &Path) -> BenchResult<Command> {
    let mut command = Command::new(exo);
    command
        .arg("--root")
        .arg(root)
        .arg("daemon")
        .env_remove("EXO_LOG")
        .env_remove("RUST_LOG")
        .current_dir(root.parent().unwrap_or(root))
        .stderr(File::create(log)?);
    Ok(command)
}

/// `exo --root <root> daemon`, once its socket accepts connections.
fn start_socket_daemon(exo: &Path, root: &Path) -> BenchResult<(Peer, PathBuf)> {
    let log = root.with_extension("log");
    let child = exo_command(exo, root, &log)?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    let mut peer = Peer {
        name: "exo daemon",
        child,
        log: Some(log),
    };
    let socket = root.join("exo.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        peer.exited()?;
        if UnixStream::connect(&socket).is_ok() {
            return Ok((peer, socket));
        }
        if Instant::now() > deadline {
            return Err(format!("exo daemon: no socket at {} after 30 s", socket.display()).into());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

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

// ---------------------------------------------------------------- client

#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    result: Option<IgnoredAny>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct FullReply {
    id: Option<u64>,
    result: Option<Value>,
    error: Option<Value>,
}

/// A blocking NDJSON client that can pipeline.
struct Client {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
    next_id: u64,
    line: Vec<u8>,
    out: Vec<u8>,
}

impl Client {
    fn new(reader: Box<dyn Read + Send>, writer: Box<dyn Write + Send>) -> Client {
        Client {
            reader: BufReader::with_capacity(64 << 10, reader),
            writer,
            next_id: 1,
            line: Vec::new(),
            out: Vec::new(),
        }
    }

    fn socket(path: &Path) -> BenchResult<Client> {
        let stream = UnixStream::connect(path)?;
        let reader = stream.try_clone()?;
        Ok(Client::new(Box::new(reader), Box::new(stream)))
    }

    fn of_child(child: &mut Child) -> BenchResult<Client> {
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        Ok(Client::new(Box::new(stdout), Box::new(stdin)))
    }

    fn queue_ping(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        self.out.extend_from_slice(id.to_string().as_bytes());
        self.out.extend_from_slice(b",\"method\":\"ping\"}\n");
        id
    }

    fn send_queued(&mut self) -> io::Result<()> {
        self.writer.write_all(&self.out)?;
        self.writer.flush()?;
        self.out.clear();
        Ok(())
    }

    fn read_line(&mut self) -> BenchResult<()> {
        self.line.clear();
        if self.reader.read_until(b'\n', &mut self.line)? == 0 {
            return Err("the server closed the connection".into());
        }
        Ok(())
    }

    fn read_reply(&mut self) -> BenchResult<u64> {
        self.read_line()?;
        let reply: Reply = serde_json::from_slice(&self.line)?;
        match reply {
            Reply {
                id: Some(id),
                result: Some(_),
                error: None,
            } => Ok(id),
            _ => Err(format!("unexpected reply: {}", String::from_utf8_lossy(&self.line)).into()),
        }
    }

    fn buffered_line(&self) -> bool {
        self.reader.buffer().contains(&b'\n')
    }

    /// One `ping` round trip.
    fn ping(&mut self) -> BenchResult<Duration> {
        let id = self.queue_ping();
        let start = Instant::now();
        self.send_queued()?;
        self.read_line()?;
        let elapsed = start.elapsed();
        let reply: Reply = serde_json::from_slice(&self.line)?;
        if reply.id != Some(id) || reply.result.is_none() {
            return Err(format!(
                "unexpected reply to ping {id}: {}",
                String::from_utf8_lossy(&self.line)
            )
            .into());
        }
        Ok(elapsed)
    }

    /// `total` pings with up to `window` in flight: new requests go out in
    /// one write whenever replies have made room. Returns the time from the
    /// first write to the last reply.
    fn pipelined(&mut self, total: usize, window: usize) -> BenchResult<Duration> {
        let first = self.next_id;
        let (mut sent, mut received, mut id_sum) = (0usize, 0usize, 0u64);
        let start = Instant::now();
        while received < total {
            let room = (window - (sent - received)).min(total - sent);
            if room > 0 {
                for _ in 0..room {
                    self.queue_ping();
                }
                sent += room;
                self.send_queued()?;
            }
            loop {
                id_sum += self.read_reply()?;
                received += 1;
                if !self.buffered_line() {
                    break;
                }
            }
        }
        let elapsed = start.elapsed();
        let expected: u64 = (first..first + total as u64).sum();
        if id_sum != expected {
            return Err("pipelined replies do not match their requests".into());
        }
        Ok(elapsed)
    }

    /// Calls `method` and returns its result.
    fn call(&mut self, method: &str, params: Value) -> BenchResult<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        serde_json::to_writer(&mut self.out, &request)?;
        self.out.push(b'\n');
        self.send_queued()?;
        loop {
            self.read_line()?;
            let reply: FullReply = serde_json::from_slice(&self.line)?;
            if reply.id != Some(id) {
                continue;
            }
            return match (reply.result, reply.error) {
                (Some(result), None) => Ok(result),
                (_, error) => Err(format!("{method} failed: {}", error.unwrap_or_default()).into()),
            };
        }
    }
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
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not,
    // and then a quick smoke run is enough.
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let quick = std::env::var("EXO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let plan = Plan::new(match (bench_mode, quick) {
        (false, _) => "smoke",
        (true, true) => "quick",
        (true, false) => "full",
    });
    let exo = exo_binary()?;

    let scratch = match std::env::var_os("EXO_BENCH_TMP") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("bench-tmp"),
    };
    fs::create_dir_all(&scratch)?;
    let mut tmp = tempfile::Builder::new()
        .prefix("rpc-")
        .tempdir_in(&scratch)?;
    // Unix socket paths are limited to 107 bytes.
    if tmp.path().join("socket/exo.sock").as_os_str().len() > 100 {
        tmp = tempfile::Builder::new().prefix("exo-rpc-").tempdir()?;
    }
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

    report.print_table(&plan);
    if let Some(out) = output_path(bench_mode) {
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)?;
        }
        let json = serde_json::to_string_pretty(&report.to_json(&plan, &exo))?;
        fs::write(&out, json + "\n")?;
        println!("results written to {}", out.display());
    }
    drop(probe);
    tmp.close()?;
    Ok(())
}
