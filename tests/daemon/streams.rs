//! `events/watch`: replay, then live events; no gap and no duplicate
//! across the switch; every watcher sees the same order; a watcher that
//! cannot keep up is told where to resume.

use serde_json::{json, Value};

use crate::support::{history_ids, message, Conn, Framing, Root};

fn watch(conn: &mut Conn, params: Value) -> u64 {
    conn.ok("events/watch", params)["watch"].as_u64().unwrap()
}

#[test]
fn replay_then_live_without_gap_or_duplicate_under_concurrent_appends() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut setup = daemon.connect();
    setup.agent_and_conversation();
    let lines: Vec<Value> = (0..300).map(|n| message(&format!("stored {n}"))).collect();
    setup.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c", "events": lines}),
    );

    // Writers keep committing while the watch replays and switches to live.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let mut conn = daemon.connect();
            std::thread::spawn(move || {
                for n in 0..150 {
                    conn.ok(
                        "conversation/append",
                        json!({"agent": "a", "conversation": "c",
                        "events": [message(&format!("writer {w} event {n}"))]}),
                    );
                }
            })
        })
        .collect();
    let mut watcher = daemon.connect();
    let id = watch(&mut watcher, json!({"agent": "a", "conversation": "c"}));
    for writer in writers {
        writer.join().unwrap();
    }
    let total = 1 + 300 + 2 * 150;
    let seen = watcher.watched_ids(id, total);
    assert_eq!(
        seen,
        history_ids(&mut setup, "a", "c"),
        "the watcher saw the history, in order, once"
    );
}

#[test]
fn three_writers_three_watchers_see_one_sequence() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut setup = daemon.connect();
    setup.agent_and_conversation();
    let head = setup.ok(
        "conversation/get",
        json!({"agent": "a", "conversation": "c"}),
    )["head"]
        .clone();
    // Three kinds of client: NDJSON socket, Content-Length socket, and an
    // editor-style stdio process relayed to the daemon.
    let mut watchers = [
        daemon.connect(),
        daemon.connect_lsp(),
        Conn::stdio(&root, Framing::ContentLength),
    ];
    let ids: Vec<u64> = watchers
        .iter_mut()
        .map(|w| watch(w, json!({"agent": "a", "conversation": "c", "after": head})))
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let mut conn = daemon.connect();
            std::thread::spawn(move || {
                for n in 0..60 {
                    let batch: Vec<Value> = (0..=(n % 3))
                        .map(|k| message(&format!("w{w} n{n} k{k}")))
                        .collect();
                    conn.ok(
                        "conversation/append",
                        json!({"agent": "a", "conversation": "c", "events": batch}),
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let total = 3 * (20 * (1 + 2 + 3));
    let sequences: Vec<Vec<String>> = watchers
        .iter_mut()
        .zip(&ids)
        .map(|(watcher, id)| watcher.watched_ids(*id, total))
        .collect();
    let history = history_ids(&mut setup, "a", "c");
    assert_eq!(sequences[0], history[1..].to_vec());
    assert_eq!(sequences[0], sequences[1]);
    assert_eq!(sequences[0], sequences[2]);
}

#[test]
fn watch_from_a_cursor_and_what_it_sees() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    let appended = conn.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c",
        "events": [message("one"), message("two"), message("three")]}),
    );
    let second = appended["events"][1]["id"].clone();
    let id = watch(
        &mut conn,
        json!({"agent": "a", "conversation": "c", "after": second}),
    );
    let replay = conn.notification();
    assert_eq!(
        replay["params"]["conversation"],
        conn.ok(
            "conversation/get",
            json!({"agent": "a", "conversation": "c"})
        )["id"]
    );
    let texts: Vec<&str> = replay["params"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["three"]);

    // A rewind is seen as its `rewound` event; a fork's events are the
    // fork's, not this conversation's.
    conn.ok(
        "conversation/fork",
        json!({"agent": "a", "conversation": "c", "slug": "f"}),
    );
    conn.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "f", "events": [message("in the fork")]}),
    );
    conn.ok(
        "conversation/rewind",
        json!({"agent": "a", "conversation": "c", "to": second}),
    );
    let live = conn.notification();
    assert_eq!(live["params"]["watch"], id);
    assert_eq!(live["params"]["events"][0]["kind"], "rewound");

    // The event rewound away from is no cursor to replay from.
    let abandoned = appended["events"][2]["id"].clone();
    let error = conn.err(
        "events/watch",
        json!({"agent": "a", "conversation": "c", "after": abandoned}),
    );
    assert_eq!(error["code"], -32001, "{error}");

    // After unwatch nothing more arrives.
    conn.ok("events/unwatch", json!({"watch": id}));
    conn.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c", "events": [message("unwatched")]}),
    );
    assert_eq!(conn.ok("ping", json!({})), json!({}));
    assert!(conn.notifications.is_empty(), "{:?}", conn.notifications);
    assert_eq!(
        conn.err("events/unwatch", json!({"watch": id}))["code"],
        -32001
    );

    let foreign = conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "Other"}),
    )["head"]
        .clone();
    let error = conn.err(
        "events/watch",
        json!({"agent": "a", "conversation": "c", "after": foreign}),
    );
    assert_eq!(error["code"], -32001);
    assert_eq!(
        conn.err(
            "events/watch",
            json!({"agent": "a", "conversation": "nope"})
        )["code"],
        -32001
    );
}

#[test]
fn a_watcher_that_does_not_read_is_told_it_lagged() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut writer = daemon.connect();
    writer.agent_and_conversation();
    let head = writer.ok(
        "conversation/get",
        json!({"agent": "a", "conversation": "c"}),
    )["head"]
        .clone();
    let mut slow = daemon.connect();
    let id = watch(
        &mut slow,
        json!({"agent": "a", "conversation": "c", "after": head}),
    );
    // The slow watcher reads nothing while thousands of commits happen;
    // the writer is never held up by it.
    let padding = "p".repeat(1000);
    for n in 0..4000 {
        writer.ok("conversation/append", json!({"agent": "a", "conversation": "c",
            "events": [{"kind": "custom", "type": "test.fill", "payload": {"n": n, "pad": padding}}]}));
    }
    let mut delivered = Vec::new();
    let cursor = loop {
        let notification = slow.notification();
        match notification["method"].as_str() {
            Some("events/appended") => {
                for event in notification["params"]["events"].as_array().unwrap() {
                    delivered.push(event["id"].as_str().unwrap().to_string());
                }
            }
            Some("events/lagged") => {
                assert_eq!(notification["params"]["watch"], id);
                break notification["params"]["cursor"].clone();
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    let history = history_ids(&mut writer, "a", "c");
    assert!(delivered.len() < 4000, "it did fall behind");
    assert_eq!(
        delivered,
        history[1..1 + delivered.len()].to_vec(),
        "what it got is a gap-free prefix"
    );
    assert_eq!(cursor.as_str(), delivered.last().map(String::as_str));
    // Resuming from the cursor delivers exactly the rest.
    let mut resumed = daemon.connect();
    let after = if cursor.is_null() { head } else { cursor };
    let again = watch(
        &mut resumed,
        json!({"agent": "a", "conversation": "c", "after": after}),
    );
    let rest = resumed.watched_ids(again, history.len() - 1 - delivered.len());
    assert_eq!(rest, history[1 + delivered.len()..].to_vec());
}
