//! Limits that hold the same way for every client: how deeply input may
//! nest, ids echoed exactly, batches that count against the in-flight
//! limit and cost time in proportion to their size, and memory bounded by
//! the size of a request rather than a hundred times it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::support::{exo, wait_until, Conn, Framing, Root, TIMEOUT};

/// Sends raw bytes and reads back one raw line.
fn raw_exchange(socket: &std::path::Path, request: &str) -> String {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(request.as_bytes()).unwrap();
    writer.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

#[test]
fn ids_come_back_exactly_as_they_were_sent() {
    let root = Root::new();
    let daemon = root.daemon();
    for id in [
        "123456789012345678901234567890",
        "18446744073709551616",
        "-98765432109876543210",
        "1.5e3",
        "0.1",
        r#""text""#,
    ] {
        let line = raw_exchange(
            &daemon.socket,
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#),
        );
        assert_eq!(
            line.trim_end(),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)
        );
    }
}

/// A custom event whose payload nests `levels` arrays (the event's object
/// is one more level).
fn nested_event(levels: usize) -> String {
    format!(
        r#"{{"kind":"custom","type":"test.deep","payload":{}1{}}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

#[test]
fn nesting_has_one_limit_whichever_way_an_event_comes_in() {
    let root = Root::new();
    for args in [
        &["agent", "create", "A", "--slug", "a"][..],
        &["conversation", "create", "a", "C", "--slug", "c"][..],
    ] {
        assert!(root.cli(args).status.success());
    }
    // Within the limit, in-process: readable through a daemon afterwards.
    let fits = root.cli_with_stdin(&["conversation", "append", "a", "c"], &nested_event(63));
    assert!(fits.status.success(), "{fits:?}");

    // Beyond it: the same refusal in-process and through a daemon, and
    // from a client that sends the request itself.
    let refusals = |root: &Root| -> Vec<String> {
        [100, 125, 200, 300]
            .iter()
            .map(|&levels| {
                let output = root
                    .cli_with_stdin(&["conversation", "append", "a", "c"], &nested_event(levels));
                assert!(!output.status.success(), "{levels} levels accepted");
                String::from_utf8(output.stderr).unwrap()
            })
            .collect()
    };
    let embedded = refusals(&root);
    assert!(
        embedded[0].contains("nested deeper than 64 levels"),
        "{embedded:?}"
    );
    let daemon = root.daemon();
    assert_eq!(refusals(&root), embedded);
    let mut conn = daemon.connect();
    for levels in [100, 125, 200] {
        let mut payload = json!(1);
        for _ in 0..levels {
            payload = json!([payload]);
        }
        let event = json!({"kind": "custom", "type": "test.deep", "payload": payload});
        let error = conn.err(
            "conversation/append",
            json!({"agent": "a", "conversation": "c", "events": [event]}),
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("nested deeper than 64 levels"),
            "{levels}: {error}"
        );
    }
    // Deeper than any request may be: an error tied to no id, which a
    // client takes as the answer to what it asked.
    let line = raw_exchange(
        &daemon.socket,
        &format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"conversation/append","params":{{"agent":"a","conversation":"c","events":[{}]}}}}"#,
            nested_event(300)
        ),
    );
    let reply: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["error"]["code"], -32700, "{reply}");

    // What was stored is readable, by every reader.
    let events = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "kind": "custom"}),
    );
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    let listed = root.cli(&["--json", "conversation", "events", "a", "c"]);
    assert!(listed.status.success(), "{listed:?}");
}

#[test]
fn a_conversation_stored_with_deep_events_stays_readable() {
    // Stores written before the limit may hold events nested as deep as
    // serde_json's own limit allowed (127 levels): put one there by hand.
    let root = Root::new();
    for args in [
        &["agent", "create", "A", "--slug", "a"][..],
        &["conversation", "create", "a", "C", "--slug", "c"][..],
    ] {
        assert!(root.cli(args).status.success());
    }
    let marker = root.cli_with_stdin(
        &["conversation", "append", "a", "c"],
        r#"{"kind":"custom","type":"test.deep","payload":0}"#,
    );
    assert!(marker.status.success());
    let deep = format!(
        r#"{{"kind":"custom","type":"test.deep","payload":{}1{}}}"#,
        "[".repeat(126),
        "]".repeat(126)
    );
    let db = rusqlite::Connection::open(root.path().join("exo.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE events SET body = ?1 WHERE kind = 'custom'",
            [deep.as_str()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let embedded = root.cli(&["--json", "conversation", "events", "a", "c"]);
    assert!(embedded.status.success(), "{embedded:?}");
    let daemon = root.daemon();
    let through_daemon = root.cli(&["--json", "conversation", "events", "a", "c"]);
    assert!(through_daemon.status.success(), "{through_daemon:?}");
    assert_eq!(embedded.stdout, through_daemon.stdout);
    let line = raw_exchange(
        &daemon.socket,
        r#"{"jsonrpc":"2.0","id":1,"method":"events/list","params":{"agent":"a","conversation":"c","kind":"custom"}}"#,
    );
    assert!(line.contains(r#""result""#), "{line}");
}

#[test]
fn a_large_batch_is_answered_whole_and_in_order() {
    let root = Root::new();
    let daemon = root.daemon();
    let count = 100_000;
    let batch: Vec<Value> = (0..count)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))
        .collect();
    let mut conn = daemon.connect();
    conn.send(&Value::Array(batch));
    let replies = conn.recv();
    let replies = replies.as_array().expect("one array of replies");
    assert_eq!(replies.len(), count);
    for (expected, reply) in replies.iter().enumerate() {
        assert_eq!(reply["id"], expected, "{reply}");
        assert_eq!(reply["result"], json!({}));
    }
}

/// A daemon, a scripted model whose first answer is one shell call, an
/// agent that asks before running it, and `turns` conversations.
fn asking_conversations(root: &Root, turns: usize) -> crate::support::Daemon {
    let workspace = root.dir.path().join("work");
    std::fs::create_dir(&workspace).unwrap();
    let script = root.dir.path().join("script.json");
    std::fs::write(
        &script,
        json!({"responses": [
            {"tool_calls": [{"name": "shell", "arguments": {"command": "true"}}]},
            {"text": "done"}
        ]})
        .to_string(),
    )
    .unwrap();
    let daemon = root.daemon();
    let mut setup = daemon.connect();
    setup.ok(
        "model/register",
        json!({"name": "script", "provider": "scripted", "base_url": format!("file://{}", script.display())}),
    );
    setup.ok(
        "agent/create",
        json!({"name": "A", "slug": "a", "model": "script", "approval": "ask"}),
    );
    for i in 0..turns {
        setup.ok(
            "conversation/create",
            json!({"agent": "a", "name": format!("C{i}"), "slug": format!("c{i}"), "workspace": workspace}),
        );
    }
    daemon
}

fn turn_batch(turns: usize) -> Value {
    Value::Array(
        (0..turns)
            .map(|i| {
                json!({"jsonrpc": "2.0", "id": i, "method": "turn/run",
                       "params": {"agent": "a", "conversation": format!("c{i}"), "input": "go"}})
            })
            .collect(),
    )
}

fn deny(question: &Value) -> Value {
    json!({"turn": question["turn"], "call_id": question["call_id"], "approve": false})
}

/// Reads until `count` approval questions have come; returns them.
fn questions(conn: &mut Conn, count: usize) -> Vec<Value> {
    let mut questions = Vec::new();
    while questions.len() < count {
        let message = conn.recv();
        if message["method"] == "approval/request" {
            questions.push(message["params"].clone());
        }
    }
    questions
}

#[test]
fn batch_items_count_against_the_in_flight_limit_without_wedging_the_connection() {
    // Every item of this batch waits for an approval. At most 64 requests
    // run per connection, batch items included: the 65th starts only when
    // one of the first 64 ends. The answers come on the very connection
    // that runs the turns: store-free requests never wait for a place.
    let root = Root::new();
    let turns = 65;
    let daemon = asking_conversations(&root, turns);
    let mut runner = daemon.connect();
    runner.send(&turn_batch(turns));
    let asked = questions(&mut runner, 64);
    // Nothing more starts while all 64 wait, so no 65th question comes.
    runner.set_read_timeout(std::time::Duration::from_millis(500));
    let probe = std::time::Instant::now();
    while probe.elapsed() < std::time::Duration::from_secs(1) {
        if let Some(message) = runner.try_recv() {
            assert_ne!(
                message["method"], "approval/request",
                "a 65th request ran while 64 were in flight"
            );
        }
    }
    runner.set_read_timeout(TIMEOUT);
    let answer = runner.request("approval/respond", deny(&asked[0]));
    let mut last = Vec::new();
    loop {
        let message = runner.recv();
        if message["method"] == "approval/request" {
            last.push(message["params"].clone());
            break;
        }
        if message["id"] == answer {
            assert!(message.get("result").is_some(), "{message}");
        }
    }
    for question in asked[1..].iter().chain(&last) {
        runner.request("approval/respond", deny(question));
    }
    let replies = loop {
        let message = runner.recv();
        if message.is_array() {
            break message;
        }
    };
    assert_eq!(replies.as_array().unwrap().len(), turns);
}

#[test]
fn a_client_that_leaves_with_turns_waiting_for_places_ends_them() {
    let root = Root::new();
    let turns = 70;
    let daemon = asking_conversations(&root, turns);
    let mut runner = daemon.connect();
    runner.send(&turn_batch(turns));
    questions(&mut runner, 64);
    // The client goes away: its questions are denied, the turns end, and
    // the ones still waiting for a place run and end the same way.
    drop(runner);
    let mut checker = daemon.connect();
    wait_until("every turn has ended", || {
        (0..turns).all(|i| {
            let conversation = checker.ok(
                "conversation/get",
                json!({"agent": "a", "conversation": format!("c{i}")}),
            );
            conversation["open_turn"].is_null()
        })
    });
    assert_eq!(
        checker.ok("daemon/status", json!({}))["connections"],
        1,
        "the departed connection is gone"
    );
}

#[test]
fn a_batch_costs_memory_in_proportion_to_its_answer_bound() {
    // Events of 7 MB: a page holds at most 16 MiB of them (two), and a
    // batch's answers at most 64 MiB: the items past it are answered with
    // an error saying to send them on their own.
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    let big = "x".repeat(7 << 20);
    for _ in 0..3 {
        conn.ok(
            "conversation/append",
            json!({"agent": "a", "conversation": "c", "return_events": false,
                   "events": [{"kind": "custom", "type": "test.big", "payload": big}]}),
        );
    }
    let page = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "kind": "custom", "limit": 10}),
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].clone();
    assert!(!cursor.is_null());
    let rest = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "kind": "custom", "limit": 10, "after": cursor}),
    );
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    let batch: Vec<Value> = (0..6)
        .map(|id| {
            json!({"jsonrpc": "2.0", "id": id, "method": "events/list",
                   "params": {"agent": "a", "conversation": "c", "kind": "custom", "limit": 10}})
        })
        .collect();
    conn.send(&Value::Array(batch));
    let replies = conn.recv();
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 6);
    let refused: Vec<&Value> = replies
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(
        !refused.is_empty(),
        "every answer of 6 x 14 MB fit in 64 MiB"
    );
    assert!(refused[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("send this request on its own"));
    let answered = replies.len() - refused.len();
    assert!(answered >= 4, "only {answered} answers fit");
}

/// Runs `exo ARGS` with stdin from `input`, its data segment limited.
fn limited(
    root: &Root,
    limit_bytes: u64,
    args: &[&str],
    input: &std::path::Path,
) -> std::process::Output {
    Command::new("prlimit")
        .arg(format!("--data={limit_bytes}"))
        .arg(env!("CARGO_BIN_EXE_exo"))
        .arg("--root")
        .arg(root.path())
        .args(args)
        .env_remove("EXO_ROOT")
        .env(
            "EXO_ENCRYPTION_KEY",
            "4444444444444444444444444444444444444444444444444444444444444444",
        )
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn appending_many_small_events_costs_memory_in_proportion_to_them() {
    // 150,000 small events: 4.5 MB of input. exo used to hold them as
    // trees of values several times over (about 500 MB in each process); a
    // bound of 256 MB on the data segment of the command line and of the
    // daemon leaves a wide margin above what they need now and catches
    // that. (The benchmark measures a million: spec/protocol.md, "Limits".)
    let root = Root::new();
    for args in [
        &["agent", "create", "A", "--slug", "a"][..],
        &["conversation", "create", "a", "C", "--slug", "c"][..],
    ] {
        assert!(root.cli(args).status.success());
    }
    let input = root.dir.path().join("events.ndjson");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for _ in 0..150_000 {
        writeln!(file, r#"{{"kind":"custom","type":"a.b"}}"#).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let limit = 256 << 20;

    let embedded = limited(&root, limit, &["conversation", "append", "a", "c"], &input);
    assert!(embedded.status.success(), "in-process: {embedded:?}");

    let mut daemon = Command::new("prlimit")
        .arg(format!("--data={limit}"))
        .arg(env!("CARGO_BIN_EXE_exo"))
        .arg("--root")
        .arg(root.path())
        .arg("daemon")
        .env_remove("EXO_ROOT")
        .env(
            "EXO_ENCRYPTION_KEY",
            "4444444444444444444444444444444444444444444444444444444444444444",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the daemon answers", || {
        Conn::try_socket(&root.socket(), Framing::Ndjson).is_ok()
    });
    // A watcher, so the daemon also keeps the events for it.
    let mut watcher = Conn::socket(&root.socket(), Framing::Ndjson);
    let watch = watcher.ok("events/watch", json!({"agent": "a", "conversation": "c"}))["watch"]
        .as_u64()
        .unwrap();
    crate::support::watched_events(&mut watcher, watch, 150_001);
    let through_daemon = limited(&root, limit, &["conversation", "append", "a", "c"], &input);
    assert!(
        through_daemon.status.success(),
        "through the daemon: {through_daemon:?}"
    );
    crate::support::watched_events(&mut watcher, watch, 150_000);
    let stopped = exo()
        .arg("--root")
        .arg(root.path())
        .args(["daemon", "stop"])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    let status = daemon.wait().unwrap();
    assert!(status.success(), "the daemon failed: {status:?}");
    let events = root.cli(&["--json", "conversation", "show", "a", "c"]);
    assert!(events.status.success(), "{events:?}");
    let conversation: Value = serde_json::from_slice(&events.stdout).unwrap();
    assert!(
        conversation["length"].as_u64().unwrap() >= 300_000,
        "{conversation}"
    );
}
