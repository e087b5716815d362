//! # Prompt-build benchmark
//!
//! What a built-in turn spends reading its history into the prompt
//! ([`exo_executor::prompt_items`], what a turn's prompt starts from), on a
//! real store (`exo-store`, SQLite in WAL mode) under `<target>/bench-tmp`:
//!
//! | series | history | target |
//! |---|---|---|
//! | shallow | 1k events, no compaction | reference |
//! | deep, compacted | 1M events, the newest compaction 1k events back | p50 ≤ 2 × shallow p50 |
//! | deep, uncompacted | the same history forked just before its compaction (what every turn read before compaction was automatic) | reported |
//!
//! The shallow and compacted deep builds alternate in one loop, so drift of
//! the machine hits both alike. Peak memory (`VmHWM`, reset through
//! `/proc/self/clear_refs` before each series) is reported where Linux
//! allows it.
//!
//! The histories are turns of four events: a question, an answer with
//! usage, a `shell` call and its result (about 300 bytes of JSON each).
//!
//! # Running
//!
//! ```text
//! cargo bench -p exo-executor --bench prompt                     # full: 1M-event history
//! EXO_BENCH_QUICK=1 cargo bench -p exo-executor --bench prompt   # quick: 20k events
//! ```
//!
//! Under `cargo test --all-targets` it runs in quick mode. The table goes
//! to stdout; the process exits successfully even when the target is
//! missed: the bench reports, it does not gate.

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exo_core::{
    ContentPart, ConversationId, Event, EventData, EventId, Role, TurnId, TurnStatus, Usage,
    COMPACTION_TYPE,
};
use exo_executor::{Begun, Setup, Substrate, SubstrateError};
use exo_store::{EventQuery, ForkOptions, OpenMode, Store, MAX_PAGE};
use serde_json::json;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const AGENT: &str = "bench";

struct Plan {
    quick: bool,
    deep_events: usize,
    shallow_events: usize,
    /// Events after the deep history's compaction.
    since_compaction: usize,
    warmup: usize,
    runs: usize,
    uncompacted_runs: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let under_test = !std::env::args().any(|arg| arg == "--bench");
        let quick =
            under_test || std::env::var("EXO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        Plan {
            quick,
            deep_events: if quick { 20_000 } else { 1_000_000 },
            shallow_events: 1_000,
            since_compaction: 1_000,
            warmup: 3,
            runs: if quick { 10 } else { 50 },
            uncompacted_runs: 3,
        }
    }
}

/// The substrate a service gives the built-in executor, over a store: the
/// reads a prompt build makes, done as `exo-service` does them (pages of
/// [`MAX_PAGE`] events, the compaction from the store's index).
struct Reads {
    store: Store,
}

impl Reads {
    fn conversation(&self, id: ConversationId) -> String {
        id.to_string()
    }
}

impl Substrate for Reads {
    fn setup(&self, _: &str, _: &str) -> Result<Setup, SubstrateError> {
        Err("not used by a prompt build".into())
    }

    fn events(
        &self,
        conversation: ConversationId,
        after: Option<EventId>,
    ) -> Result<Vec<Event>, SubstrateError> {
        let conversation = self.conversation(conversation);
        let mut events = Vec::new();
        let mut cursor = after;
        loop {
            let query = EventQuery {
                after: cursor,
                limit: MAX_PAGE,
                ..Default::default()
            };
            let page = self.store.events(AGENT, &conversation, &query)?;
            events.extend(page.events);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(events),
            }
        }
    }

    fn latest_compaction(
        &self,
        conversation: ConversationId,
        before: Option<EventId>,
    ) -> Result<Option<Event>, SubstrateError> {
        let conversation = self.conversation(conversation);
        Ok(self.store.latest_compaction(AGENT, &conversation, before)?)
    }

    fn begin_turn(&self, _: &str, _: &str, _: EventData) -> Result<Begun, SubstrateError> {
        Err("not used by a prompt build".into())
    }

    fn artifact(
        &self,
        conversation: ConversationId,
        path: &str,
        version: Option<u64>,
    ) -> Result<Vec<u8>, SubstrateError> {
        let conversation = self.conversation(conversation);
        Ok(self
            .store
            .get_artifact(AGENT, &conversation, path, version)?
            .1)
    }

    fn append(&self, _: TurnId, _: Vec<EventData>) -> Result<Vec<Event>, SubstrateError> {
        Err("not used by a prompt build".into())
    }

    fn finish_turn(&self, _: TurnId, _: TurnStatus) -> Result<TurnStatus, SubstrateError> {
        Err("not used by a prompt build".into())
    }

    fn allow_always(&self, _: &str, _: &str) -> Result<(), SubstrateError> {
        Err("not used by a prompt build".into())
    }
}

/// Event `n` of a history of turns of four events.
fn turn_event(n: usize) -> EventData {
    let round = n / 4;
    let call_id = format!("call_{round}");
    match n % 4 {
        0 => EventData::user_text(format!("Question {round}: what does src/lib.rs export?")),
        1 => EventData::Message {
            role: Role::Assistant,
            content: vec![ContentPart::Text {
                text: format!("Let me look at the file for question {round}."),
            }],
            usage: Some(Usage {
                input_tokens: 1_000 + round as u64,
                output_tokens: 20,
                cached_input_tokens: None,
            }),
            model: Some("bench-model".into()),
        },
        2 => EventData::ToolCall {
            call_id,
            name: "shell".into(),
            arguments: json!({"command": "grep -n 'pub fn' src/lib.rs"}),
        },
        _ => EventData::ToolResult {
            call_id,
            output: json!({"exit_code": 0, "stdout": "12:pub fn open()\n40:pub fn close()\n", "stderr": ""}),
            is_error: false,
        },
    }
}

/// Appends events `from..from + len` of the turn history.
fn append_turns(store: &Store, conversation: &str, from: usize, len: usize) -> BenchResult<()> {
    const BATCH: usize = 10_000;
    let mut start = from;
    while start < from + len {
        let end = (start + BATCH).min(from + len);
        store.append(
            AGENT,
            conversation,
            (start..end).map(turn_event).collect(),
            None,
        )?;
        start = end;
    }
    Ok(())
}

/// Times `calls` prompt builds of each conversation, alternating, after
/// `warmup` untimed rounds. Returns the samples, one vector per
/// conversation, and the number of items each build gave.
fn alternate(
    reads: &Reads,
    conversations: &[ConversationId],
    warmup: usize,
    calls: usize,
) -> BenchResult<(Vec<Vec<Duration>>, Vec<usize>)> {
    let mut samples = vec![Vec::with_capacity(calls); conversations.len()];
    let mut items = vec![0; conversations.len()];
    for round in 0..warmup + calls {
        for (index, conversation) in conversations.iter().enumerate() {
            let start = Instant::now();
            let built = exo_executor::prompt_items(reads, *conversation)?;
            let elapsed = start.elapsed();
            items[index] = built.len();
            if round >= warmup {
                samples[index].push(elapsed);
            }
        }
    }
    Ok((samples, items))
}

fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() - 1) / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Resets the peak resident set size of this process, if Linux allows.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak resident set size since the last reset, in MiB.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The build's target directory: the bench binary runs from
/// `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    let from_exe = || -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        deps.parent()?.parent().map(Path::to_path_buf)
    };
    from_exe().unwrap_or_else(|| PathBuf::from("target"))
}

fn main() -> BenchResult<()> {
    let plan = Plan::from_env();
    let base = std::env::var_os("EXO_BENCH_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("bench-tmp"));
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix("exo-prompt-bench-")
        .tempdir_in(&base)?;
    let store = Store::open(dir.path().join("root"), OpenMode::Create)?;
    store.create_agent("Bench", Some(AGENT), Default::default())?;

    eprintln!(
        "building a {}-event history and a {}-event one...",
        plan.deep_events, plan.shallow_events
    );
    let shallow = store.create_conversation(AGENT, "Shallow", Some("shallow"), None)?;
    append_turns(&store, "shallow", 0, plan.shallow_events - 1)?;
    let deep = store.create_conversation(AGENT, "Deep", Some("deep"), None)?;
    let before_compaction = plan.deep_events - plan.since_compaction - 2;
    append_turns(&store, "deep", 0, before_compaction)?;
    let last_summarised = store
        .events(
            AGENT,
            "deep",
            &EventQuery {
                desc: true,
                limit: 1,
                ..Default::default()
            },
        )?
        .events[0]
        .id;
    store.append(
        AGENT,
        "deep",
        vec![EventData::Custom {
            custom_type: COMPACTION_TYPE.to_owned(),
            payload: json!({
                "summary": "The user asked what src/lib.rs exports, many times over.",
                "through": last_summarised,
            }),
        }],
        None,
    )?;
    append_turns(&store, "deep", before_compaction, plan.since_compaction)?;
    let uncompacted = store.fork(
        AGENT,
        "deep",
        ForkOptions {
            at: Some(last_summarised),
            name: Some("Uncompacted".into()),
            slug: Some("uncompacted".into()),
            workspace: None,
        },
    )?;
    let reads = Reads { store };

    let measured_peak = reset_peak();
    let (mut samples, items) = alternate(&reads, &[shallow.id, deep.id], plan.warmup, plan.runs)?;
    let compacted_peak = if measured_peak { peak_mib() } else { None };
    let shallow_p50 = p50(&mut samples[0]);
    let deep_p50 = p50(&mut samples[1]);
    let ratio = deep_p50.as_secs_f64() / shallow_p50.as_secs_f64();

    reset_peak();
    let (mut uncompacted_samples, uncompacted_items) =
        alternate(&reads, &[uncompacted.id], 0, plan.uncompacted_runs)?;
    let uncompacted_peak = if measured_peak { peak_mib() } else { None };
    let uncompacted_p50 = p50(&mut uncompacted_samples[0]);

    let mode = if plan.quick { "quick" } else { "full" };
    let deep_label = if plan.deep_events.is_multiple_of(1_000_000) {
        format!("{}M", plan.deep_events / 1_000_000)
    } else {
        format!("{}k", plan.deep_events / 1_000)
    };
    println!();
    println!("exo-executor prompt-build benchmark ({mode})");
    println!(
        "{:<44}  {:>7}  {:>12}  {:>10}",
        "series", "items", "p50", "peak RSS"
    );
    let peak = |mib: Option<f64>| mib.map_or_else(|| "-".to_owned(), |mib| format!("{mib:.0} MiB"));
    println!(
        "{:<44}  {:>7}  {:>9.3} ms  {:>10}",
        "shallow: 1k events",
        items[0],
        ms(shallow_p50),
        "-"
    );
    println!(
        "{:<44}  {:>7}  {:>9.3} ms  {:>10}",
        format!("deep: {deep_label} events, compaction 1k back"),
        items[1],
        ms(deep_p50),
        peak(compacted_peak)
    );
    println!(
        "{:<44}  {:>7}  {:>9.3} ms  {:>10}",
        format!("deep, uncompacted: {deep_label} events (before)"),
        uncompacted_items[0],
        ms(uncompacted_p50),
        peak(uncompacted_peak)
    );
    println!(
        "deep compacted / shallow: {ratio:.2}x (target <= 2x): {}",
        if ratio <= 2.0 { "PASS" } else { "MISS" }
    );
    Ok(())
}
