//! What exo's benchmarks share: the modes, latency statistics, the report
//! (a table on stdout, JSON in a file), the `exo` binary of the benchmark's
//! profile, a daemon started on a socket, and a blocking NDJSON client.
//!
//! Each benchmark includes this file as a module of its own
//! (`#[path = "common/mod.rs"] mod common;`) and uses a part of it.

// Each benchmark uses a part of this module; the rest is dead code there.
#![allow(dead_code)]

use std::error::Error;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub type BenchResult<T> = Result<T, Box<dyn Error>>;

// ----------------------------------------------------------------- modes

/// How the benchmark was started.
pub struct Mode {
    /// Run by `cargo bench` (which passes `--bench`), rather than by `cargo
    /// test --all-targets` (which does not, and then a quick smoke run is
    /// enough).
    pub bench: bool,
    /// "full", "quick" (`EXO_BENCH_QUICK=1`), or "smoke" (run without
    /// `--bench`, in whatever profile `cargo test` built).
    pub name: &'static str,
}

impl Mode {
    pub fn from_env() -> Mode {
        let bench = std::env::args().any(|arg| arg == "--bench");
        let quick = std::env::var("EXO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let name = match (bench, quick) {
            (false, _) => "smoke",
            (true, true) => "quick",
            (true, false) => "full",
        };
        Mode { bench, name }
    }
}

// ------------------------------------------------------------ statistics

/// A latency distribution.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub min: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
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

    pub fn to_json(self) -> Value {
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
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Timed samples of one series, warm-up calls left out.
pub struct Series {
    pub warmup: usize,
    pub calls: usize,
    pub samples: Vec<Duration>,
}

impl Series {
    pub fn new(warmup: usize) -> Series {
        Series {
            warmup,
            calls: 0,
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, elapsed: Duration) {
        if self.calls >= self.warmup {
            self.samples.push(elapsed);
        }
        self.calls += 1;
    }

    pub fn stats(self) -> Stats {
        Stats::of(self.samples)
    }
}

// ---------------------------------------------------------------- report

#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Micros,
    RequestsPerSec,
    Millis,
    MiB,
    MiBPerSec,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "us",
            Unit::RequestsPerSec => "requests/s",
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
            Unit::MiBPerSec => "MiB/s",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::Micros if value.abs() >= 10_000.0 => format!("{:.2} ms", value / 1e3),
            Unit::Micros => format!("{value:.1} µs"),
            Unit::RequestsPerSec => format!("{} req/s", thousands(value.round() as u64)),
            Unit::Millis => format!("{value:.0} ms"),
            Unit::MiB => format!("{value:.1} MiB"),
            Unit::MiBPerSec => format!("{value:.1} MiB/s"),
        }
    }

    /// A difference, with its sign.
    fn format_signed(self, value: f64) -> String {
        let sign = if value < 0.0 { '-' } else { '+' };
        format!("{sign}{}", self.format(value.abs()))
    }

    /// A bound given in a target: as short as it was written.
    fn format_bound(self, value: f64) -> String {
        match self {
            Unit::Micros if value >= 1_000.0 => format!("{} ms", value / 1e3),
            Unit::Micros => format!("{value} µs"),
            _ => self.format(value),
        }
    }
}

/// What exo's value should reach, next to its reference.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The ratio exo / reference at most this.
    AtMost(f64),
    /// The ratio exo / reference at least this.
    AtLeast(f64),
    /// The difference exo − reference at most this, in the row's unit.
    AddedAtMost(f64),
}

impl Target {
    fn met(self, row: &Row) -> bool {
        match self {
            Target::AtMost(bound) => row.ratio() <= bound,
            Target::AtLeast(bound) => row.ratio() >= bound,
            Target::AddedAtMost(bound) => row.difference() <= bound,
        }
    }

    fn describe(self, unit: Unit) -> String {
        match self {
            Target::AtMost(bound) => format!("<= {bound:.2}x"),
            Target::AtLeast(bound) => format!(">= {bound:.2}x"),
            Target::AddedAtMost(bound) => format!("<= +{}", unit.format_bound(bound)),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Target::AtMost(bound) => json!({"op": "<=", "ratio": bound}),
            Target::AtLeast(bound) => json!({"op": ">=", "ratio": bound}),
            Target::AddedAtMost(bound) => json!({"op": "<=", "difference": bound}),
        }
    }
}

/// One row: exo's value next to its reference (a floor, a paired fsync, a
/// baseline), their ratio and their difference.
pub struct Row {
    key: String,
    label: String,
    unit: Unit,
    exo: f64,
    reference: f64,
    /// What `reference` is, in a word: "floor", "fsync", "builtin", ...
    reference_kind: &'static str,
    target: Option<Target>,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.exo / self.reference
    }

    fn difference(&self) -> f64 {
        self.exo - self.reference
    }

    fn pass(&self) -> Option<bool> {
        self.target.map(|target| target.met(self))
    }

    fn describe_target(&self) -> String {
        self.target
            .map_or_else(|| "-".to_string(), |target| target.describe(self.unit))
    }
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    pub distributions: Map<String, Value>,
    pub extra: Map<String, Value>,
    /// Whether the table and the JSON show exo − reference beside the
    /// ratio.
    differences: bool,
}

impl Report {
    /// A report that shows exo − reference beside the ratio.
    pub fn with_differences() -> Report {
        Report {
            differences: true,
            ..Report::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn row(
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
    pub fn latency(
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

    pub fn all_pass(&self) -> bool {
        self.rows.iter().all(|row| row.pass() != Some(false))
    }

    /// The table, under `title`, on stdout.
    pub fn print_table(&self, title: &str) {
        let widest = |min: usize, of: &dyn Fn(&Row) -> String| {
            self.rows
                .iter()
                .map(|row| of(row).chars().count())
                .max()
                .unwrap_or(0)
                .max(min)
        };
        let width = widest(6, &|row| row.label.clone());
        let kind_width = widest(6, &|row| row.reference_kind.to_string());
        let target_width = widest(8, &Row::describe_target);
        let diff_width = widest(12, &|row| row.unit.format_signed(row.difference()));
        println!();
        println!("{title}");
        let mut header = format!(
            "{:<width$}  {:>15}  {:>15}  {:>kind_width$}  {:>9}",
            "metric", "exo", "reference", "ref", "exo/ref"
        );
        let mut rule = width + 2 + 15 + 2 + 15 + 2 + kind_width + 2 + 9;
        if self.differences {
            header.push_str(&format!("  {:>diff_width$}", "exo-ref"));
            rule += 2 + diff_width;
        }
        println!("{header}  {:>target_width$}  result", "target");
        println!("{}", "-".repeat(rule + 2 + target_width + 8));
        for row in &self.rows {
            let result = match row.pass() {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "info",
            };
            let mut line = format!(
                "{:<width$}  {:>15}  {:>15}  {:>kind_width$}  {:>9}",
                row.label,
                row.unit.format(row.exo),
                row.unit.format(row.reference),
                row.reference_kind,
                format!("{:.2}x", row.ratio()),
            );
            if self.differences {
                line.push_str(&format!(
                    "  {:>diff_width$}",
                    row.unit.format_signed(row.difference())
                ));
            }
            println!("{line}  {:>target_width$}  {result}", row.describe_target());
        }
        let targets = self.rows.iter().filter(|row| row.target.is_some()).count();
        let missed = self
            .rows
            .iter()
            .filter(|row| row.pass() == Some(false))
            .count();
        println!("{} of {targets} targets met", targets - missed);
    }

    /// The results as JSON: `bench`, `mode`, `unix_time`, `exo_binary`,
    /// `plan`, `all_pass`, `metrics` (the rows), `distributions`, `details`.
    pub fn to_json(&self, bench: &str, mode: &str, exo: &Path, plan: Value) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut fields = Map::new();
                fields.insert("key".into(), json!(row.key));
                fields.insert("label".into(), json!(row.label));
                fields.insert("unit".into(), json!(row.unit.name()));
                fields.insert("exo".into(), json!(row.exo));
                fields.insert("reference".into(), json!(row.reference));
                fields.insert("reference_kind".into(), json!(row.reference_kind));
                fields.insert("ratio".into(), json!(row.ratio()));
                if self.differences {
                    fields.insert("difference".into(), json!(row.difference()));
                }
                fields.insert("target".into(), json!(row.target.map(Target::to_json)));
                fields.insert("pass".into(), json!(row.pass()));
                Value::Object(fields)
            })
            .collect();
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        json!({
            "bench": bench,
            "mode": mode,
            "unix_time": unix_time,
            "exo_binary": exo.display().to_string(),
            "plan": plan,
            "all_pass": self.all_pass(),
            "metrics": rows,
            "distributions": self.distributions,
            "details": self.extra,
        })
    }

    /// Writes the JSON to `$EXO_BENCH_OUT` or, under `cargo bench`,
    /// `<target>/bench/<bench>.json`, and says where on stdout.
    pub fn write_json(&self, mode: &Mode, bench: &str, exo: &Path, plan: Value) -> BenchResult<()> {
        if let Some(out) = output_path(mode.bench, bench) {
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent)?;
            }
            let json = serde_json::to_string_pretty(&self.to_json(bench, mode.name, exo, plan))?;
            fs::write(&out, json + "\n")?;
            println!("results written to {}", out.display());
        }
        Ok(())
    }
}

pub fn thousands(n: u64) -> String {
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

pub fn target_dir() -> PathBuf {
    profile_dir()
        .and_then(|profile| profile.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root; cargo runs benches from the package's directory.
pub fn workspace_root() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    package.ancestors().nth(2).unwrap_or(package).to_path_buf()
}

/// The `exo` binary of this benchmark's profile, built first.
pub fn exo_binary() -> BenchResult<PathBuf> {
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

/// Where the JSON results of `bench` go, if anywhere.
fn output_path(bench_mode: bool, bench: &str) -> Option<PathBuf> {
    match std::env::var_os("EXO_BENCH_OUT") {
        Some(path) if !path.is_empty() => Some(workspace_root().join(path)),
        _ if bench_mode => Some(target_dir().join("bench").join(format!("{bench}.json"))),
        _ => None,
    }
}

/// A temporary directory for `bench`'s roots: under `$EXO_BENCH_TMP`
/// (default `<target>/bench-tmp`), or under the system's when `longest`, a
/// socket path inside it, would be too long there (Unix socket paths are
/// limited to 107 bytes).
pub fn scratch_dir(bench: &str, longest: &str) -> BenchResult<tempfile::TempDir> {
    let scratch = match std::env::var_os("EXO_BENCH_TMP") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("bench-tmp"),
    };
    fs::create_dir_all(&scratch)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{bench}-"))
        .tempdir_in(&scratch)?;
    if tmp.path().join(longest).as_os_str().len() > 100 {
        tmp = tempfile::Builder::new()
            .prefix(&format!("exo-{bench}-"))
            .tempdir()?;
    }
    Ok(tmp)
}

// -------------------------------------------------------------- children

/// A child process, killed if still running when dropped.
pub struct Peer {
    pub name: &'static str,
    pub child: Child,
    pub log: Option<PathBuf>,
}

impl Peer {
    pub fn log_tail(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| fs::read_to_string(log).ok())
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            })
            .unwrap_or_default()
    }

    pub fn exited(&mut self) -> BenchResult<()> {
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
    pub fn wait(mut self, grace: Duration) {
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

/// `exo --root <root> daemon`, its log in `log`.
pub fn exo_command(exo: &Path, root: &Path, log: &Path) -> BenchResult<Command> {
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
pub fn start_socket_daemon(exo: &Path, root: &Path) -> BenchResult<(Peer, PathBuf)> {
    start_socket_daemon_with(exo, root, |_| {})
}

/// [`start_socket_daemon`], with its command changed by `configure` (its
/// environment, say) before it starts.
pub fn start_socket_daemon_with(
    exo: &Path,
    root: &Path,
    configure: impl FnOnce(&mut Command),
) -> BenchResult<(Peer, PathBuf)> {
    let log = root.with_extension("log");
    let mut command = exo_command(exo, root, &log)?;
    command.stdin(Stdio::null()).stdout(Stdio::null());
    configure(&mut command);
    let child = command.spawn()?;
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

// ---------------------------------------------------------------- client

#[derive(Deserialize)]
pub struct Reply {
    pub id: Option<u64>,
    pub result: Option<IgnoredAny>,
    pub error: Option<Value>,
}

#[derive(Deserialize)]
struct FullReply {
    id: Option<u64>,
    result: Option<Value>,
    error: Option<Value>,
}

/// A blocking NDJSON client that can pipeline.
pub struct Client {
    reader: BufReader<Box<dyn Read + Send>>,
    pub writer: Box<dyn Write + Send>,
    next_id: u64,
    pub line: Vec<u8>,
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

    pub fn socket(path: &Path) -> BenchResult<Client> {
        let stream = UnixStream::connect(path)?;
        let reader = stream.try_clone()?;
        Ok(Client::new(Box::new(reader), Box::new(stream)))
    }

    pub fn of_child(child: &mut Child) -> BenchResult<Client> {
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

    /// Reads one line into [`Client::line`].
    pub fn read_line(&mut self) -> BenchResult<()> {
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
    pub fn ping(&mut self) -> BenchResult<Duration> {
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
    pub fn pipelined(&mut self, total: usize, window: usize) -> BenchResult<Duration> {
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

    /// Calls `method` and returns its result; lines that are not its
    /// response (notifications, say) are read and dropped.
    pub fn call(&mut self, method: &str, params: Value) -> BenchResult<Value> {
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
