//! The daemon's life: graceful SIGTERM, kill -9 and restart, and the CLI
//! going through a running daemon with the same output as without one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::support::{history_ids, Root};

#[test]
fn sigterm_finishes_what_is_running_and_exits_zero() {
    let root = Root::new();
    let mut daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    let turn = conn.ok(
        "turn/begin",
        json!({"agent": "a", "conversation": "c", "input": "left open"}),
    )["turn"]
        .clone();
    let acknowledged = conn.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c",
        "events": [crate::support::message("acknowledged before SIGTERM")]}),
    );
    let status = daemon.signal("-TERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(!daemon.socket.exists(), "the socket is removed");

    // A new daemon starts on the same root; nothing acknowledged is lost and
    // the conversation is resumable: the open turn was closed.
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    let ids = history_ids(&mut conn, "a", "c");
    assert!(ids.contains(&acknowledged["head"].as_str().unwrap().to_string()));
    assert_eq!(
        conn.ok("turn/get", json!({"turn": turn}))["status"],
        "interrupted"
    );
    let events = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "desc": true, "limit": 1}),
    );
    assert_eq!(events["events"][0]["kind"], "session_ended");
    conn.ok(
        "turn/begin",
        json!({"agent": "a", "conversation": "c", "input": "resumed"}),
    );
}

#[test]
fn kill_9_mid_stream_loses_nothing_acknowledged() {
    let root = Root::new();
    {
        let daemon = root.daemon();
        daemon.connect().agent_and_conversation();
    }
    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut next_batch = 0u64;
    for round in 0..5u64 {
        let mut daemon = root.daemon();
        let mut conn = daemon.connect();
        let turn = conn.ok(
            "turn/begin",
            json!({"agent": "a", "conversation": "c", "input": format!("round {round}")}),
        )["turn"]
            .clone();
        let stop_after = 20 + round * 15;
        let writer = {
            let mut conn = daemon.connect();
            let acknowledged = Arc::clone(&acknowledged);
            let first = next_batch;
            std::thread::spawn(move || {
                for batch in first.. {
                    let events: Vec<Value> = (0..10)
                        .map(|i| json!({"kind": "custom", "type": "test.batch", "payload": {"batch": batch, "i": i}}))
                        .collect();
                    let request = json!({"jsonrpc": "2.0", "id": batch, "method": "conversation/append",
                        "params": {"agent": "a", "conversation": "c", "events": events}});
                    // The daemon may be killed under this write.
                    if conn.try_send(&request).is_err() {
                        return batch;
                    }
                    match conn.try_recv() {
                        Some(reply) if reply.get("result").is_some() => {
                            acknowledged.lock().unwrap().push(batch)
                        }
                        _ => return batch,
                    }
                }
                unreachable!()
            })
        };
        while (acknowledged.lock().unwrap().len() as u64) < next_batch + stop_after {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let status = daemon.signal("-KILL");
        assert!(!status.success());
        next_batch = writer.join().unwrap() + 1;

        // Restart: every acknowledged batch is there, whole; the turn the
        // dead daemon had open is closed as interrupted.
        let daemon = root.daemon();
        let mut conn = daemon.connect();
        let mut batches: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut after: Option<Value> = None;
        loop {
            let mut params =
                json!({"agent": "a", "conversation": "c", "kind": "custom", "limit": 10000});
            if let Some(after) = &after {
                params["after"] = after.clone();
            }
            let page = conn.ok("events/list", params);
            for event in page["events"].as_array().unwrap() {
                let payload = &event["payload"];
                batches
                    .entry(payload["batch"].as_u64().unwrap())
                    .or_default()
                    .push(payload["i"].as_u64().unwrap());
            }
            if page["next_cursor"].is_null() {
                break;
            }
            after = Some(page["next_cursor"].clone());
        }
        for (batch, indexes) in &batches {
            assert_eq!(
                indexes,
                &(0..10).collect::<Vec<_>>(),
                "batch {batch} is half-written"
            );
        }
        for batch in acknowledged.lock().unwrap().iter() {
            assert!(
                batches.contains_key(batch),
                "acknowledged batch {batch} was lost"
            );
        }
        assert_eq!(
            conn.ok("turn/get", json!({"turn": turn}))["status"],
            "interrupted",
            "round {round}"
        );
    }
}

#[test]
fn the_cli_goes_through_a_running_daemon_with_identical_output() {
    let root = Root::new();
    let run = |args: &[&str]| -> (i32, String, String) {
        let output = root.cli(args);
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(run(&["agent", "create", "Sandbox Example"]).0, 0);
    assert_eq!(
        run(&["conversation", "create", "sandbox-example", "Local Dev"]).0,
        0
    );
    let appended = root.cli_with_stdin(
        &["conversation", "append", "sandbox-example", "local-dev"],
        "{\"kind\":\"message\",\"role\":\"user\",\"content\":\"hi\"}\n{\"kind\":\"custom\",\"type\":\"ns.x\",\"payload\":{}}\n",
    );
    assert!(appended.status.success());
    let reads: &[&[&str]] = &[
        &["agent", "list"],
        &["--json", "agent", "list"],
        &["agent", "show", "sandbox-example"],
        &["conversation", "list", "sandbox-example"],
        &[
            "--json",
            "conversation",
            "show",
            "sandbox-example",
            "local-dev",
        ],
        &["conversation", "events", "sandbox-example", "local-dev"],
        &[
            "--json",
            "conversation",
            "events",
            "sandbox-example",
            "local-dev",
            "--desc",
            "--limit",
            "2",
        ],
        &["secret", "list"],
        &["model", "list"],
        &["agent", "show", "nobody"],
        &["conversation", "events", "sandbox-example", "nothing"],
    ];
    let embedded: Vec<_> = reads.iter().map(|args| run(args)).collect();
    let daemon = root.daemon();
    let through_daemon: Vec<_> = reads.iter().map(|args| run(args)).collect();
    for ((args, embedded), through_daemon) in reads.iter().zip(&embedded).zip(&through_daemon) {
        assert_eq!(
            embedded, through_daemon,
            "exo {args:?} differs with a daemon running"
        );
    }
    assert_eq!(embedded[9].0, 1, "errors are errors both ways");

    // Writes go through the daemon too: a watcher sees them live.
    let mut watcher = daemon.connect();
    let head = watcher.ok(
        "conversation/get",
        json!({"agent": "sandbox-example", "conversation": "local-dev"}),
    )["head"]
        .clone();
    let id = watcher.ok(
        "events/watch",
        json!({"agent": "sandbox-example", "conversation": "local-dev", "after": head}),
    )["watch"]
        .as_u64()
        .unwrap();
    let appended = root.cli_with_stdin(
        &["conversation", "append", "sandbox-example", "local-dev"],
        "{\"kind\":\"message\",\"role\":\"user\",\"content\":\"via the daemon\"}\n",
    );
    assert!(
        appended.status.success(),
        "{}",
        String::from_utf8_lossy(&appended.stderr)
    );
    let seen = watcher.watched_ids(id, 1);
    assert_eq!(seen.len(), 1);

    // A session the daemon holds is ended before `daemon stop` returns.
    let turn = watcher.ok(
        "turn/begin",
        json!({"agent": "sandbox-example", "conversation": "local-dev", "input": "before stopping"}),
    )["turn"]
        .clone();
    watcher.ok("turn/finish", json!({"turn": turn, "status": "completed"}));
    let stop = run(&["daemon", "stop"]);
    assert_eq!(stop.0, 0, "{}", stop.2);
    assert!(stop.1.starts_with("stopped exo daemon"));
    let last = run(&[
        "--json",
        "conversation",
        "events",
        "sandbox-example",
        "local-dev",
        "--desc",
        "--limit",
        "1",
    ]);
    let last: Value = serde_json::from_str(&last.1).unwrap();
    assert_eq!(
        last["events"][0]["kind"], "session_ended",
        "the store was closed before the lock was released"
    );
    let status = run(&["daemon", "status"]);
    assert_eq!(status.0, 1);
    assert!(
        status.2.contains("no exo daemon is running"),
        "{}",
        status.2
    );
    // And the CLI is back to embedded, with the same data.
    assert_eq!(run(&["agent", "list"]), embedded[0]);
    drop(daemon);
}
