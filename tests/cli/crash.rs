//! Real processes killed mid-write, and real processes writing at once.
//!
//! Nothing here depends on timing for its verdict: the kill lands wherever
//! it lands, and the assertions hold for every outcome.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{message, Env};

/// Batch number and index of a test event, if it is one.
fn batch_of(event: &Value) -> Option<(u64, u64)> {
    let payload = event.get("payload")?;
    Some((payload["batch"].as_u64()?, payload["i"].as_u64()?))
}

/// Checks every batch in the history is whole and contiguous, and returns
/// the batches present.
fn whole_batches(events: &[Value], size: u64) -> Vec<u64> {
    let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut previous_batch = None;
    for event in events {
        if let Some((batch, index)) = batch_of(event) {
            let indexes = seen.entry(batch).or_default();
            if !indexes.is_empty() {
                assert_eq!(
                    previous_batch,
                    Some(batch),
                    "batch {batch} is interleaved with another"
                );
            }
            indexes.push(index);
            previous_batch = Some(batch);
        }
    }
    for (batch, indexes) in &seen {
        assert_eq!(indexes.len() as u64, size, "batch {batch} is half-written");
        assert!(
            indexes.iter().copied().eq(0..size),
            "batch {batch} is out of order"
        );
    }
    seen.into_keys().collect()
}

fn batch_input(batch: u64, size: u64) -> String {
    (0..size)
        .map(|i| format!("{}\n", json!({"kind":"custom","type":"test.crash","payload":{"batch":batch,"i":i,"pad":"x".repeat(64)}})))
        .collect()
}

#[test]
fn killed_appends_are_all_or_nothing() {
    let env = Env::new();
    env.agent_and_conversation();
    const SIZE: u64 = 2000;
    let mut acknowledged = Vec::new();
    for batch in 0..16u64 {
        let mut child = env
            .command(&["conversation", "append", "a", "c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = batch_input(batch, SIZE);
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        // Spread the kills from "before the batch is read" to "after it
        // committed"; every outcome must leave whole batches only.
        std::thread::sleep(Duration::from_millis(batch * 9 % 120));
        let _ = child.kill();
        let status = child.wait().unwrap();
        writer.join().unwrap();
        if status.success() {
            acknowledged.push(batch);
        }
        let present = whole_batches(&env.events("a", "c"), SIZE);
        for batch in &acknowledged {
            assert!(
                present.contains(batch),
                "acknowledged batch {batch} is missing"
            );
        }
    }
    // The store still takes writes after all the kills.
    assert_eq!(env.append("a", "c", &[message("still alive")]).code, 0);
}

#[test]
fn concurrent_writers_never_interleave_a_batch() {
    let env = Env::new();
    env.agent_and_conversation();
    const SIZE: u64 = 40;
    let children: Vec<_> = (0..6u64)
        .map(|batch| {
            let mut child = env
                .command(&["conversation", "append", "a", "c"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(batch_input(batch, SIZE).as_bytes())
                .unwrap();
            child
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let events = env.events("a", "c");
    assert_eq!(events.len() as u64, 1 + 6 * SIZE);
    assert_eq!(whole_batches(&events, SIZE), (0..6).collect::<Vec<_>>());
}

#[test]
fn racing_writers_with_the_same_expected_head_one_wins() {
    let env = Env::new();
    env.agent_and_conversation();
    let head = env.event_ids("a", "c").pop().unwrap();
    let children: Vec<_> = (0..5)
        .map(|n| {
            let mut child = env
                .command(&["conversation", "append", "a", "c", "--expected-head", &head])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{}\n", message(&format!("writer {n}"))).as_bytes())
                .unwrap();
            child
        })
        .collect();
    let mut winners = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        if output.status.success() {
            winners += 1;
        } else {
            assert!(String::from_utf8_lossy(&output.stderr).contains("conflict"));
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(env.events("a", "c").len(), 2);
}
