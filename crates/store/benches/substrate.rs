//! # Substrate benchmark
//!
//! Measures what exo promises of its durable substrate, on a real SQLite
//! store (WAL, `synchronous=FULL`) in a temporary directory under
//! `<target>/bench-tmp`, so every number includes real fsyncs on the same
//! filesystem as the build:
//!
//! | metric | how | target |
//! |---|---|---|
//! | fsync baseline | write 100 B to a file, then `File::sync_all` | reference |
//! | durable `begin_turn` | `Store::begin_turn` only (the turn is finished untimed) | p50 ≤ 2 × fsync p50 |
//! | one-shot `begin_turn` | open the store, `begin_turn`, finish, close: what one `exo` command does | reported |
//! | single appends | one event per `Store::append` call | reported |
//! | batched appends | `Store::append` with 1000 events per call | ≥ 100k events/s |
//! | last-100 read | `Store::events` newest first, limit 100, on a 1M-event history | p50 ≤ 1 ms |
//! | fork | `Store::fork` at the middle event, 1k vs 1M events deep | p50 ≤ 2 ms, 1M/1k ≤ 2 |
//! | rewind | `Store::rewind` alternating middle event / abandoned head (undo, redo), 1k vs 1M | p50 ≤ 2 ms, 1M/1k ≤ 2 |
//!
//! Latencies are wall-clock times of single calls ([`Instant`]); p50 and p99
//! are nearest-rank percentiles of the sorted samples. A few warm-up calls
//! before each series (statement cache, page cache) are not counted.
//!
//! fsync latency on virtual and shared disks drifts by whole multiples
//! within seconds, so ratios are taken against fsyncs measured *in the same
//! loop*: each turn, and each round of forks or rewinds, is preceded by one
//! probe fsync. Likewise the 1k and 1M fork (and rewind) calls alternate in
//! one loop rather than running as two series.
//!
//! The steady-state `begin_turn` series runs after the append series, once
//! the write-ahead log has wrapped: while a fresh WAL grows (its first 1000
//! pages), each commit also extends the file, and that fsync costs more.
//! The one-shot series measures that case, since closing the last
//! connection deletes the WAL.
//!
//! # Running
//!
//! ```text
//! cargo bench -p exo-store --bench substrate                     # full: 1M-event history
//! EXO_BENCH_QUICK=1 cargo bench -p exo-store --bench substrate   # quick: 20k events, fewer samples
//! ```
//!
//! `EXO_BENCH_TMP=<dir>` puts the temporary store elsewhere, e.g. on
//! another filesystem (on tmpfs, fsync is free and the numbers show CPU
//! cost alone).
//!
//! The table goes to stdout, progress to stderr. The results are also
//! written as JSON to `$EXO_BENCH_OUT` (relative to the workspace root), or
//! `<target>/bench/substrate.json`.
//! The process exits successfully even when a target is missed: the bench
//! reports, it does not gate.

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exo_core::{EventData, EventId, TurnStatus};
use exo_store::{EventQuery, ForkOptions, OpenMode, Store};
use serde_json::{json, Map, Value};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// The agent every conversation of the bench belongs to.
const AGENT: &str = "bench";

/// How much work to do: full, or quick for a CI smoke run.
struct Plan {
    quick: bool,
    /// Calls made, and not counted, before each timed series.
    warmup: usize,
    fsync_samples: usize,
    turns: usize,
    /// Turns in the one-shot series, each with its own store handle.
    one_shot_turns: usize,
    single_appends: usize,
    /// Events per call in the batched-append series.
    batch: usize,
    batched_events: usize,
    /// Events in the shallow history that fork and rewind compare against.
    shallow_events: usize,
    /// Events in the deep history: 1M, or 20k when quick.
    deep_events: usize,
    /// Events per append call while building the histories.
    build_batch: usize,
    read_runs: usize,
    /// Calls per fork and per rewind series.
    history_runs: usize,
}

impl Plan {
    fn from_env() -> Plan {
        // `cargo test --all-targets` runs benches without `--bench`: a quick
        // smoke run then, so the test suite never builds a 1M-event store in
        // a debug build.
        let under_test = !std::env::args().any(|arg| arg == "--bench");
        let quick =
            under_test || std::env::var("EXO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Plan {
                quick,
                warmup: 3,
                fsync_samples: 50,
                turns: 50,
                one_shot_turns: 20,
                single_appends: 200,
                batch: 1_000,
                batched_events: 20_000,
                shallow_events: 1_000,
                deep_events: 20_000,
                build_batch: 10_000,
                read_runs: 50,
                history_runs: 30,
            }
        } else {
            Plan {
                quick,
                warmup: 10,
                fsync_samples: 200,
                turns: 300,
                one_shot_turns: 100,
                single_appends: 2_000,
                batch: 1_000,
                batched_events: 200_000,
                shallow_events: 1_000,
                deep_events: 1_000_000,
                build_batch: 10_000,
                read_runs: 200,
                history_runs: 100,
            }
        }
    }
}

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
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "min_ms": ms(self.min),
            "max_ms": ms(self.max),
            "mean_ms": ms(self.mean),
        })
    }
}

/// The nearest-rank percentile `p` (0..=1) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// A metric's unit, which also decides how its value is printed.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Millis,
    EventsPerSec,
    Ratio,
    Mebibytes,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::EventsPerSec => "events/s",
            Unit::Ratio => "x",
            Unit::Mebibytes => "MiB",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::Millis => format!("{value:.3} ms"),
            Unit::EventsPerSec => format!("{} ev/s", thousands(value.round() as u64)),
            Unit::Ratio => format!("{value:.2}x"),
            Unit::Mebibytes => format!("{value:.1} MiB"),
        }
    }
}

/// What a metric should reach.
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

    fn describe(self, unit: Unit) -> String {
        match self {
            Target::AtMost(bound) => format!("<= {}", unit.format(bound)),
            Target::AtLeast(bound) => format!(">= {}", unit.format(bound)),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Target::AtMost(bound) => json!({"op": "<=", "value": bound}),
            Target::AtLeast(bound) => json!({"op": ">=", "value": bound}),
        }
    }
}

/// One row of the results table.
struct Metric {
    key: String,
    label: String,
    value: f64,
    unit: Unit,
    target: Option<Target>,
}

impl Metric {
    fn pass(&self) -> Option<bool> {
        self.target.map(|target| target.met(self.value))
    }
}

/// Collects metrics and raw distributions; prints the table and the JSON.
#[derive(Default)]
struct Report {
    metrics: Vec<Metric>,
    distributions: Map<String, Value>,
}

impl Report {
    fn metric(
        &mut self,
        key: &str,
        label: impl Into<String>,
        value: f64,
        unit: Unit,
        target: Option<Target>,
    ) {
        self.metrics.push(Metric {
            key: key.to_string(),
            label: label.into(),
            value,
            unit,
            target,
        });
    }

    /// Records a distribution, and its p50 and p99 as metrics. The target,
    /// if any, applies to the p50.
    fn latency(&mut self, key: &str, label: &str, stats: Stats, p50_target: Option<Target>) {
        self.distributions.insert(key.to_string(), stats.to_json());
        self.metric(
            &format!("{key}.p50_ms"),
            format!("{label} p50"),
            ms(stats.p50),
            Unit::Millis,
            p50_target,
        );
        self.metric(
            &format!("{key}.p99_ms"),
            format!("{label} p99"),
            ms(stats.p99),
            Unit::Millis,
            None,
        );
    }

    fn all_pass(&self) -> bool {
        self.metrics
            .iter()
            .all(|metric| metric.pass() != Some(false))
    }

    fn print_table(&self, plan: &Plan) {
        let mode = if plan.quick { "quick" } else { "full" };
        println!();
        println!(
            "exo-store substrate benchmark ({mode}: deep history {} events, shallow {})",
            count(plan.deep_events),
            count(plan.shallow_events)
        );
        let width = self
            .metrics
            .iter()
            .map(|m| m.label.len())
            .max()
            .unwrap_or(0)
            .max(6);
        println!(
            "{:<width$}  {:>18}  {:>18}  result",
            "metric", "value", "target"
        );
        println!("{}", "-".repeat(width + 2 + 18 + 2 + 18 + 2 + 6));
        for metric in &self.metrics {
            let target = metric
                .target
                .map_or_else(|| "-".to_string(), |t| t.describe(metric.unit));
            let result = match metric.pass() {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "info",
            };
            println!(
                "{:<width$}  {:>18}  {:>18}  {result}",
                metric.label,
                metric.unit.format(metric.value),
                target
            );
        }
        let missed = self
            .metrics
            .iter()
            .filter(|m| m.pass() == Some(false))
            .count();
        let targets = self.metrics.iter().filter(|m| m.target.is_some()).count();
        println!("{} of {targets} targets met", targets - missed);
    }

    fn to_json(&self, plan: &Plan, store_dir: &Path) -> Value {
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|metric| {
                json!({
                    "key": metric.key,
                    "label": metric.label,
                    "value": metric.value,
                    "unit": metric.unit.name(),
                    "target": metric.target.map(Target::to_json),
                    "pass": metric.pass(),
                })
            })
            .collect();
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        json!({
            "bench": "substrate",
            "mode": if plan.quick { "quick" } else { "full" },
            "unix_time": unix_time,
            "store_dir": store_dir.display().to_string(),
            "plan": {
                "fsync_samples": plan.fsync_samples,
                "turns": plan.turns,
                "one_shot_turns": plan.one_shot_turns,
                "single_appends": plan.single_appends,
                "batch": plan.batch,
                "batched_events": plan.batched_events,
                "shallow_events": plan.shallow_events,
                "deep_events": plan.deep_events,
                "build_batch": plan.build_batch,
                "read_runs": plan.read_runs,
                "history_runs": plan.history_runs,
            },
            "all_pass": self.all_pass(),
            "metrics": metrics,
            "distributions": self.distributions,
        })
    }
}

/// `1000000` as `1M`, `20000` as `20k`.
fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
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

/// The build's target directory: the bench binary runs from
/// `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    fn from_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        deps.parent()?.parent().map(Path::to_path_buf)
    }
    from_exe().unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root; cargo runs benches from the package's directory.
fn workspace_root() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    package.ancestors().nth(2).unwrap_or(package).to_path_buf()
}

/// A small appendable event.
fn message(n: usize) -> EventData {
    EventData::user_text(format!("bench event {n}"))
}

fn messages(from: usize, len: usize) -> Vec<EventData> {
    (from..from + len).map(message).collect()
}

/// Times `f` alone.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
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

/// A file on the store's filesystem to time one fsync with: append 100
/// bytes, then `File::sync_all`.
struct FsyncProbe {
    file: File,
    path: PathBuf,
}

impl FsyncProbe {
    fn new(dir: &Path) -> BenchResult<FsyncProbe> {
        let path = dir.join("fsync-probe");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(FsyncProbe { file, path })
    }

    fn fsync(&mut self) -> BenchResult<Duration> {
        let start = Instant::now();
        self.file.write_all(&[b'x'; 100])?;
        self.file.sync_all()?;
        Ok(start.elapsed())
    }
}

impl Drop for FsyncProbe {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The fsync baseline: fsyncs alone, back to back.
fn bench_fsync(probe: &mut FsyncProbe, plan: &Plan) -> BenchResult<Stats> {
    let mut fsyncs = Series::new(plan.warmup);
    for _ in 0..plan.warmup + plan.fsync_samples {
        fsyncs.push(probe.fsync()?);
    }
    Ok(fsyncs.stats())
}

/// `begin_turn` latency; each turn is finished, untimed, before the next.
/// Each turn is preceded by one probe fsync, so that the ratio compares
/// turns with fsyncs made under the same disk conditions: on shared or
/// virtual disks fsync latency drifts by multiples within seconds.
fn bench_begin_turn(
    store: &Store,
    probe: &mut FsyncProbe,
    plan: &Plan,
) -> BenchResult<(Stats, Stats)> {
    let conv = "turns";
    store.create_conversation(AGENT, "Turns", Some(conv), None)?;
    // The first turn also opens the session (and its lock file).
    let warmup = plan.warmup.max(1);
    let (mut turns, mut fsyncs) = (Series::new(warmup), Series::new(warmup));
    for n in 0..warmup + plan.turns {
        fsyncs.push(probe.fsync()?);
        let input = EventData::user_text(format!("turn {n}"));
        let (elapsed, handle) = timed(|| store.begin_turn(AGENT, conv, input));
        turns.push(elapsed);
        handle?.finish(TurnStatus::Completed)?;
    }
    Ok((turns.stats(), fsyncs.stats()))
}

/// `begin_turn` as a one-shot `exo` command runs it, in a store of its
/// own: open the store, begin the turn (timed), finish it, close the store.
/// Every turn so opens a new session, and, since closing the last
/// connection checkpoints and deletes the WAL, starts a fresh WAL.
fn bench_one_shot_turns(
    dir: &Path,
    probe: &mut FsyncProbe,
    plan: &Plan,
) -> BenchResult<(Stats, Stats)> {
    let root = dir.join("one-shot");
    let conv = "one-shot";
    {
        let store = Store::open(&root, OpenMode::Create)?;
        store.create_agent("Bench", Some(AGENT), Map::new())?;
        store.create_conversation(AGENT, "One shot", Some(conv), None)?;
    }
    let warmup = plan.warmup.min(3);
    let (mut turns, mut fsyncs) = (Series::new(warmup), Series::new(warmup));
    for n in 0..warmup + plan.one_shot_turns {
        fsyncs.push(probe.fsync()?);
        let store = Store::open(&root, OpenMode::Existing)?;
        let input = EventData::user_text(format!("turn {n}"));
        let (elapsed, handle) = timed(|| store.begin_turn(AGENT, conv, input));
        turns.push(elapsed);
        handle?.finish(TurnStatus::Completed)?;
    }
    Ok((turns.stats(), fsyncs.stats()))
}

/// Appends `calls` batches of `batch` events; returns events per second
/// over the time spent inside `Store::append`.
fn bench_append(
    store: &Store,
    conv: &str,
    warmup: usize,
    calls: usize,
    batch: usize,
) -> BenchResult<(f64, Stats)> {
    store.create_conversation(AGENT, conv, Some(conv), None)?;
    let mut series = Series::new(warmup);
    for n in 0..warmup + calls {
        let events = messages(n * batch, batch);
        let (elapsed, appended) = timed(|| store.append(AGENT, conv, events, None));
        assert_eq!(appended?.len(), batch);
        series.push(elapsed);
    }
    let spent: Duration = series.samples.iter().sum();
    Ok(((calls * batch) as f64 / spent.as_secs_f64(), series.stats()))
}

/// A conversation whose history holds `events` events after its
/// `conversation_created`: the ids of the event at the middle and of the
/// head, and the build rate in events per second.
struct History {
    slug: String,
    middle: EventId,
    head: EventId,
    build_rate: f64,
}

fn build_history(store: &Store, slug: &str, events: usize, plan: &Plan) -> BenchResult<History> {
    store.create_conversation(AGENT, slug, Some(slug), None)?;
    let middle_depth = events / 2;
    let (mut middle, mut head) = (None, None);
    let mut spent = Duration::ZERO;
    let mut done = 0;
    while done < events {
        let len = plan.build_batch.min(events - done);
        let batch = messages(done, len);
        let (elapsed, appended) = timed(|| store.append(AGENT, slug, batch, None));
        let appended = appended?;
        spent += elapsed;
        // The event at depth d (conversation_created is depth 0) is the
        // (d - 1)th appended.
        if (done..done + len).contains(&(middle_depth - 1)) {
            middle = Some(appended[middle_depth - 1 - done].id);
        }
        head = appended.last().map(|event| event.id);
        done += len;
        if events >= 100_000 && done.is_multiple_of(events / 10) {
            eprintln!("  {slug}: {} / {} events", count(done), count(events));
        }
    }
    let conversation = store.conversation(AGENT, slug)?;
    assert_eq!(conversation.length(), events as u64 + 1);
    assert_eq!(Some(conversation.head), head);
    Ok(History {
        slug: slug.to_string(),
        middle: middle.ok_or("no middle event")?,
        head: head.ok_or("no head event")?,
        build_rate: events as f64 / spent.as_secs_f64(),
    })
}

/// The newest 100 events, newest first.
fn bench_last_100(store: &Store, history: &History, plan: &Plan) -> BenchResult<Stats> {
    let query = EventQuery {
        desc: true,
        limit: 100,
        ..Default::default()
    };
    let mut reads = Series::new(plan.warmup);
    for _ in 0..plan.warmup + plan.read_runs {
        let (elapsed, page) = timed(|| store.events(AGENT, &history.slug, &query));
        let page = page?;
        assert_eq!(page.events.len(), 100);
        assert_eq!(page.events[0].id, history.head);
        reads.push(elapsed);
    }
    Ok(reads.stats())
}

/// Forks at the middle event; each fork is a new conversation.
fn fork(store: &Store, history: &History, n: usize) -> BenchResult<Duration> {
    let options = ForkOptions {
        at: Some(history.middle),
        name: None,
        slug: Some(format!("{}-fork-{n}", history.slug)),
        workspace: None,
    };
    let (elapsed, forked) = timed(|| store.fork(AGENT, &history.slug, options));
    assert_eq!(forked?.forked_from.map(|(_, at)| at), Some(history.middle));
    Ok(elapsed)
}

/// Rewinds to the middle event on even runs and forward to the abandoned
/// head (redo) on odd ones: every call moves the head and records a
/// `rewound` event.
fn rewind(store: &Store, history: &History, n: usize) -> BenchResult<Duration> {
    let to = if n.is_multiple_of(2) {
        history.middle
    } else {
        history.head
    };
    let (elapsed, outcome) = timed(|| store.rewind(AGENT, &history.slug, to, None));
    assert!(
        outcome?.event.is_some(),
        "rewind to {to} did not move the head"
    );
    Ok(elapsed)
}

/// Runs `op` on the shallow and the deep history in alternation (which goes
/// first alternates too), after one probe fsync per round, so the two
/// series, and the fsyncs they are compared with, see the same disk.
fn shallow_vs_deep(
    plan: &Plan,
    probe: &mut FsyncProbe,
    fsyncs: &mut Series,
    [shallow, deep]: [&History; 2],
    mut op: impl FnMut(&History, usize) -> BenchResult<Duration>,
) -> BenchResult<(Stats, Stats)> {
    let (mut at_shallow, mut at_deep) = (Series::new(plan.warmup), Series::new(plan.warmup));
    for n in 0..plan.warmup + plan.history_runs {
        fsyncs.push(probe.fsync()?);
        if n.is_multiple_of(2) {
            at_shallow.push(op(shallow, n)?);
            at_deep.push(op(deep, n)?);
        } else {
            at_deep.push(op(deep, n)?);
            at_shallow.push(op(shallow, n)?);
        }
    }
    Ok((at_shallow.stats(), at_deep.stats()))
}

/// Where the JSON results go.
fn output_path() -> PathBuf {
    match std::env::var_os("EXO_BENCH_OUT") {
        Some(path) if !path.is_empty() => workspace_root().join(path),
        _ => target_dir().join("bench").join("substrate.json"),
    }
}

fn main() -> BenchResult<()> {
    let plan = Plan::from_env();
    let scratch = match std::env::var_os("EXO_BENCH_TMP") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("bench-tmp"),
    };
    fs::create_dir_all(&scratch)?;
    let tmp = tempfile::Builder::new()
        .prefix("substrate-")
        .tempdir_in(&scratch)?;
    let store_dir = tmp.path().join("store");
    let store = Store::open(&store_dir, OpenMode::Create)?;
    store.create_agent("Bench", Some(AGENT), Map::new())?;
    let mut probe = FsyncProbe::new(tmp.path())?;
    let mut report = Report::default();
    let deep = count(plan.deep_events);
    let shallow = count(plan.shallow_events);

    eprintln!(
        "fsync baseline ({} samples) in {}",
        plan.fsync_samples,
        tmp.path().display()
    );
    let fsync = bench_fsync(&mut probe, &plan)?;
    report.latency("fsync", "fsync baseline (100 B + sync_all)", fsync, None);

    eprintln!("append, one event per call ({} calls)", plan.single_appends);
    let (single_rate, single) =
        bench_append(&store, "single", plan.warmup, plan.single_appends, 1)?;
    report
        .distributions
        .insert("append_single".into(), single.to_json());
    report.metric(
        "append_single.events_per_s",
        "append, 1 event/call",
        single_rate,
        Unit::EventsPerSec,
        None,
    );

    let batches = plan.batched_events.div_ceil(plan.batch);
    eprintln!(
        "append, {} events per call ({} events)",
        plan.batch,
        count(batches * plan.batch)
    );
    let (batched_rate, batched) =
        bench_append(&store, "batched", plan.warmup.min(3), batches, plan.batch)?;
    report
        .distributions
        .insert("append_batched".into(), batched.to_json());
    report.metric(
        "append_batched.events_per_s",
        format!("append, {} events/call", count(plan.batch)),
        batched_rate,
        Unit::EventsPerSec,
        Some(Target::AtLeast(100_000.0)),
    );

    eprintln!("begin_turn ({} turns)", plan.turns);
    let (turn, turn_fsync) = bench_begin_turn(&store, &mut probe, &plan)?;
    report.latency("begin_turn", "begin_turn (durable)", turn, None);
    report
        .distributions
        .insert("fsync_paired_with_turns".into(), turn_fsync.to_json());
    report.metric(
        "begin_turn.fsync_paired_p50_ms",
        "fsync paired with turns p50",
        ms(turn_fsync.p50),
        Unit::Millis,
        None,
    );
    report.metric(
        "begin_turn.p50_over_fsync_p50",
        "begin_turn p50 / paired fsync p50",
        ms(turn.p50) / ms(turn_fsync.p50),
        Unit::Ratio,
        Some(Target::AtMost(2.0)),
    );
    report.metric(
        "begin_turn.p50_over_baseline_fsync_p50",
        "begin_turn p50 / baseline fsync p50",
        ms(turn.p50) / ms(fsync.p50),
        Unit::Ratio,
        None,
    );

    eprintln!(
        "one-shot begin_turn ({} turns, a store handle each)",
        plan.one_shot_turns
    );
    let (one_shot, one_shot_fsync) = bench_one_shot_turns(tmp.path(), &mut probe, &plan)?;
    report.latency(
        "begin_turn_one_shot",
        "begin_turn, one-shot (open/turn/close)",
        one_shot,
        None,
    );
    report.distributions.insert(
        "fsync_paired_with_one_shot_turns".into(),
        one_shot_fsync.to_json(),
    );
    report.metric(
        "begin_turn_one_shot.p50_over_fsync_p50",
        "one-shot begin_turn p50 / paired fsync p50",
        ms(one_shot.p50) / ms(one_shot_fsync.p50),
        Unit::Ratio,
        None,
    );

    eprintln!("building histories: {shallow} and {deep} events");
    let shallow_history = build_history(&store, "shallow", plan.shallow_events, &plan)?;
    let deep_history = build_history(&store, "deep", plan.deep_events, &plan)?;
    report.metric(
        "build_deep.events_per_s",
        format!(
            "build {deep} history, {} events/call",
            count(plan.build_batch)
        ),
        deep_history.build_rate,
        Unit::EventsPerSec,
        None,
    );
    let store_bytes: u64 = ["exo.db", "exo.db-wal"]
        .iter()
        .filter_map(|file| fs::metadata(store_dir.join(file)).ok())
        .map(|meta| meta.len())
        .sum();
    report.metric(
        "store.mib_after_build",
        "store size (db + wal) after builds",
        store_bytes as f64 / f64::from(1 << 20),
        Unit::Mebibytes,
        None,
    );

    eprintln!("last-100 reads ({} runs each)", plan.read_runs);
    let read_shallow = bench_last_100(&store, &shallow_history, &plan)?;
    let read_deep = bench_last_100(&store, &deep_history, &plan)?;
    report.latency(
        "read_last_100_shallow",
        &format!("last-100 read @ {shallow}"),
        read_shallow,
        None,
    );
    report.latency(
        "read_last_100_deep",
        &format!("last-100 read @ {deep}"),
        read_deep,
        Some(Target::AtMost(1.0)),
    );

    eprintln!(
        "fork and rewind ({} runs each, {shallow} and {deep} interleaved)",
        plan.history_runs
    );
    let histories = [&shallow_history, &deep_history];
    let mut history_fsyncs = Series::new(plan.warmup);
    let forks = shallow_vs_deep(&plan, &mut probe, &mut history_fsyncs, histories, |h, n| {
        fork(&store, h, n)
    })?;
    let rewinds = shallow_vs_deep(&plan, &mut probe, &mut history_fsyncs, histories, |h, n| {
        rewind(&store, h, n)
    })?;
    let history_fsync = history_fsyncs.stats();
    report.distributions.insert(
        "fsync_paired_with_fork_rewind".into(),
        history_fsync.to_json(),
    );
    for (op, (at_shallow, at_deep)) in [("fork", forks), ("rewind", rewinds)] {
        let two_ms = Some(Target::AtMost(2.0));
        report.latency(
            &format!("{op}_shallow"),
            &format!("{op} @ {shallow}"),
            at_shallow,
            two_ms,
        );
        report.latency(
            &format!("{op}_deep"),
            &format!("{op} @ {deep}"),
            at_deep,
            two_ms,
        );
        report.metric(
            &format!("{op}.deep_over_shallow_p50"),
            format!("{op} p50 {deep}/{shallow}"),
            ms(at_deep.p50) / ms(at_shallow.p50),
            Unit::Ratio,
            Some(Target::AtMost(2.0)),
        );
        report.metric(
            &format!("{op}.deep_p50_over_fsync_p50"),
            format!("{op} @ {deep} p50 / paired fsync p50"),
            ms(at_deep.p50) / ms(history_fsync.p50),
            Unit::Ratio,
            None,
        );
    }
    report.metric(
        "fork_rewind.fsync_paired_p50_ms",
        "fsync paired with fork/rewind p50",
        ms(history_fsync.p50),
        Unit::Millis,
        None,
    );

    report.print_table(&plan);
    // A smoke run under `cargo test` keeps earlier results unless asked to
    // write (EXO_BENCH_OUT).
    let smoke = !std::env::args().any(|arg| arg == "--bench")
        && std::env::var_os("EXO_BENCH_OUT").is_none();
    if !smoke {
        let out = output_path();
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)?;
        }
        let json = serde_json::to_string_pretty(&report.to_json(&plan, &store_dir))?;
        fs::write(&out, json + "\n")?;
        println!("results written to {}", out.display());
    }
    // Close the store (ending the bench's session) before removing its files.
    drop(probe);
    drop(store);
    tmp.close()?;
    Ok(())
}
