//! Crash safety: a child process appends batches to one conversation and is
//! killed with SIGKILL at a seeded pseudo-random moment, again and again,
//! against the same store. After every kill the store must open, every
//! acknowledged batch must be there, and no batch may be there in part.

mod common;

use std::collections::BTreeSet;

use common::{
    child_role, history, new_conversation, new_store, reopen, say, spawn_self, SplitMix, AGENT,
};
use exo_core::{Event, EventData, EventId, EventKind};
use exo_store::{OpenMode, Store};
use serde_json::json;

const CONV: &str = "crash";
/// Set (to the store's root) when this binary runs as the crash child.
const CHILD_ROOT_ENV: &str = "EXO_STORE_TEST_CRASH_ROOT";
/// The child's run number, which also seeds its batch sizes.
const CHILD_RUN_ENV: &str = "EXO_STORE_TEST_CRASH_RUN";
const RUNS: u64 = 25;
const CUSTOM_TYPE: &str = "test.batch";

fn batch_event(run: u64, batch: u64, index: u64, count: u64) -> EventData {
    EventData::Custom {
        custom_type: CUSTOM_TYPE.into(),
        payload: json!({"run": run, "batch": batch, "index": index, "count": count}),
    }
}

/// Not a test on its own: the child process of
/// [`acknowledged_batches_survive_sigkill_and_no_batch_is_torn`]. Appends
/// batches until it is killed, acknowledging each once `append` returned.
#[test]
fn crash_child_appends_batches() {
    let Some(root) = child_role(CHILD_ROOT_ENV) else {
        return;
    };
    let run: u64 = std::env::var(CHILD_RUN_ENV).unwrap().parse().unwrap();
    let store = Store::open(&root, OpenMode::Existing).unwrap();
    say("READY");
    let mut rng = SplitMix(0xC0FFEE ^ run);
    for batch in 0..1_000_000 {
        let count = rng.range(1, 50);
        let events = (0..count)
            .map(|index| batch_event(run, batch, index, count))
            .collect();
        store.append(AGENT, CONV, events, None).unwrap();
        say(&format!("ACK {batch} {count}"));
    }
}

/// One batch as found in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Batch {
    run: u64,
    batch: u64,
    count: u64,
}

fn field(event: &Event, name: &str) -> u64 {
    match &event.data {
        EventData::Custom {
            custom_type,
            payload,
        } if custom_type == CUSTOM_TYPE => payload[name]
            .as_u64()
            .unwrap_or_else(|| panic!("event {} has no {name}: {payload}", event.id)),
        other => panic!("unexpected event {other:?}"),
    }
}

/// Splits the history into batches, failing on any batch that is not
/// complete and contiguous.
fn batches(events: &[Event]) -> Vec<Batch> {
    assert_eq!(events[0].kind(), EventKind::ConversationCreated);
    let mut found = Vec::new();
    let mut at = 1;
    while at < events.len() {
        let first = &events[at];
        let batch = Batch {
            run: field(first, "run"),
            batch: field(first, "batch"),
            count: field(first, "count"),
        };
        assert_eq!(
            field(first, "index"),
            0,
            "batch {batch:?} does not start with its first event"
        );
        assert!(
            at + batch.count as usize <= events.len(),
            "batch {batch:?} is torn: only {} of its {} events are present",
            events.len() - at,
            batch.count
        );
        for (index, event) in events[at..at + batch.count as usize].iter().enumerate() {
            let this = Batch {
                run: field(event, "run"),
                batch: field(event, "batch"),
                count: field(event, "count"),
            };
            assert_eq!(
                this, batch,
                "event {index} of batch {batch:?} belongs to another batch: torn or interleaved"
            );
            assert_eq!(
                field(event, "index"),
                index as u64,
                "batch {batch:?} is out of order"
            );
        }
        found.push(batch);
        at += batch.count as usize;
    }
    found
}

#[test]
fn acknowledged_batches_survive_sigkill_and_no_batch_is_torn() {
    let (dir, store) = new_store();
    new_conversation(&store, CONV);
    let root = store.root().to_path_buf();
    drop(store);

    let mut rng = SplitMix(0x5EED_C4A5);
    let mut previous: Vec<EventId> = Vec::new();
    let mut acked: BTreeSet<Batch> = BTreeSet::new();
    let mut unacked_present = 0;
    for run in 0..RUNS {
        // 0: kill at once (during start-up or opening); 1: right after
        // opening, likely inside the first commit; n: after n-1 acks, while
        // the child is already writing the next batch.
        let mode = rng.range(0, 12);
        let mut child = spawn_self(
            "crash_child_appends_batches",
            &[
                (CHILD_ROOT_ENV, root.display().to_string()),
                (CHILD_RUN_ENV, run.to_string()),
            ],
        );
        if mode >= 1 {
            child
                .next_marked("READY")
                .expect("the child died before opening the store");
        }
        for _ in 1..mode {
            let ack = child
                .next_marked("ACK ")
                .expect("the child died before it was killed");
            let mut parts = ack.split(' ').map(|part| part.parse::<u64>().unwrap());
            let (batch, count) = (parts.next().unwrap(), parts.next().unwrap());
            acked.insert(Batch { run, batch, count });
        }
        child.kill();

        // The store must open, and hold every acknowledged batch, whole.
        let store = reopen(dir.path());
        let events = history(&store, AGENT, CONV);
        let conv = store.conversation(AGENT, CONV).unwrap();
        assert_eq!(
            conv.length(),
            events.len() as u64,
            "the head's depth matches the history"
        );
        assert_eq!(conv.head, events.last().unwrap().id);
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        assert_eq!(
            &ids[..previous.len()],
            &previous[..],
            "run {run}: earlier events changed"
        );
        let found = batches(&events);
        // Batches appear in the order they were written: runs in order, and
        // each run's batches numbered 0, 1, 2, ... with no gap.
        let mut expected_next = (0, 0);
        for batch in &found {
            if batch.run != expected_next.0 {
                assert!(
                    batch.run > expected_next.0,
                    "run {} appears after run {}",
                    batch.run,
                    expected_next.0
                );
                expected_next = (batch.run, 0);
            }
            assert_eq!(
                batch.batch, expected_next.1,
                "run {run}: batch {batch:?} follows a gap"
            );
            expected_next.1 += 1;
        }
        let present: BTreeSet<Batch> = found.iter().copied().collect();
        assert_eq!(present.len(), found.len(), "a batch appears twice");
        let lost: Vec<&Batch> = acked.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "run {run} (mode {mode}): acknowledged batches lost: {lost:?}"
        );
        unacked_present += found
            .iter()
            .filter(|b| b.run == run && !acked.contains(b))
            .count();
        previous = ids;
        drop(store);
    }
    assert!(
        !acked.is_empty(),
        "the seed must let some runs acknowledge batches"
    );

    // The store still takes writes after all that.
    let store = reopen(dir.path());
    let more = store
        .append(AGENT, CONV, vec![batch_event(RUNS, 0, 0, 1)], None)
        .unwrap();
    assert_eq!(history(&store, AGENT, CONV).last().unwrap().id, more[0].id);
    // Not an assertion (timing decides it), but worth seeing in the log.
    let mut out = std::io::stderr();
    let _ = std::io::Write::write_fmt(
        &mut out,
        format_args!(
            "crash test: {} acknowledged batches, {unacked_present} unacknowledged but committed\n",
            acked.len()
        ),
    );
}
