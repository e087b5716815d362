//! JSON-RPC 2.0 over both transports and both framings, and what the
//! daemon does with bad input.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::support::{exo, message, wait_with_timeout, Conn, Framing, Root};

fn check_basic_session(conn: &mut Conn) {
    let init = conn.ok(
        "initialize",
        json!({"protocol_versions": ["1"], "client": {"name": "conformance"}}),
    );
    assert_eq!(init["protocol_version"], "1");
    assert!(init["capabilities"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "events/watch"));
    assert_eq!(
        init["capabilities"]["framings"],
        json!(["ndjson", "content-length"])
    );
    conn.agent_and_conversation();
    let appended = conn.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c", "events": [message("hi")]}),
    );
    let events = conn.ok("events/list", json!({"agent": "a", "conversation": "c"}));
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    assert_eq!(events["events"][1]["id"], appended["head"]);
    assert!(events["next_cursor"].is_null());
}

#[test]
fn socket_speaks_ndjson() {
    let root = Root::new();
    let daemon = root.daemon();
    check_basic_session(&mut daemon.connect());
}

#[test]
fn socket_speaks_content_length() {
    let root = Root::new();
    let daemon = root.daemon();
    check_basic_session(&mut daemon.connect_lsp());
}

#[test]
fn stdio_speaks_ndjson() {
    let root = Root::new();
    check_basic_session(&mut Conn::stdio(&root, Framing::Ndjson));
}

#[test]
fn stdio_speaks_content_length() {
    let root = Root::new();
    check_basic_session(&mut Conn::stdio(&root, Framing::ContentLength));
}

#[test]
fn stdio_relays_to_a_running_daemon() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut socket = daemon.connect();
    socket.agent_and_conversation();
    // An editor's stdio client joins the same daemon and sees its data.
    let mut stdio = Conn::stdio(&root, Framing::ContentLength);
    let status = stdio.ok("daemon/status", json!({}));
    assert_eq!(status["pid"], daemon.pid());
    let conversations = stdio.ok("conversation/list", json!({"agent": "a"}));
    assert_eq!(conversations["conversations"][0]["slug"], "c");
}

/// An editor starts `exo daemon --stdio` with a socket pair as its stdin
/// and stdout (libuv's and Node's job control do) and keeps its input
/// open. When the daemon is stopped, the client sees the end of the
/// output while its input is still open: at once through a relay (which
/// used to wait for the input to close, forever), and well before the
/// runtime's 5 s shutdown grace when the stdio process is the daemon
/// (whose stdin reader used to hold it up for all of it).
#[test]
fn a_stopped_daemon_ends_its_stdio_clients_output() {
    use std::io::{BufRead, BufReader, Read};
    for relayed in [false, true] {
        let root = Root::new();
        let daemon = relayed.then(|| root.daemon());
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut child = exo()
            .arg("--root")
            .arg(root.path())
            .args(["daemon", "--stdio"])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(
                theirs.try_clone().unwrap(),
            )))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        (&ours)
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n")
            .unwrap();
        let mut reader = BufReader::new(ours.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n");
        let stopped = root.cli(&["daemon", "stop"]);
        assert!(stopped.status.success(), "{stopped:?}");
        ours.set_read_timeout(Some(std::time::Duration::from_secs(4)))
            .unwrap();
        let mut rest = Vec::new();
        let end = reader.read_to_end(&mut rest);
        assert!(
            end.is_ok(),
            "relayed: {relayed}: the output did not end while the input stayed open: {end:?}"
        );
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        let status = wait_with_timeout(&mut child);
        assert!(status.success(), "relayed: {relayed}: {status:?}");
        drop(ours);
        if let Some(mut daemon) = daemon {
            if let Some(child) = daemon.child.as_mut() {
                wait_with_timeout(child);
            }
        }
    }
}

#[test]
fn ids_notifications_and_batches() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    // String and number ids come back as given.
    conn.send(&json!({"jsonrpc": "2.0", "id": "abc", "method": "ping"}));
    assert_eq!(
        conn.recv(),
        json!({"jsonrpc": "2.0", "id": "abc", "result": {}})
    );
    conn.send(&json!({"jsonrpc": "2.0", "id": -7, "method": "ping", "params": {}}));
    assert_eq!(conn.recv()["id"], -7);
    // A notification gets no reply: the next reply is the next request's.
    conn.send(&json!({"jsonrpc": "2.0", "method": "ping"}));
    conn.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    assert_eq!(conn.recv()["id"], 1);
    // A batch: one array of replies, notifications left out.
    conn.send(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "no/such/method"},
        {"jsonrpc": "2.0", "id": 3, "method": "agent/list"},
        17
    ]));
    let replies = conn.recv();
    let replies = replies.as_array().expect("a batch reply is an array");
    assert_eq!(replies.len(), 4);
    let by_id = |id: Value| {
        replies
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_id(json!(1))["result"], json!({}));
    assert_eq!(by_id(json!(2))["error"]["code"], -32601);
    assert!(by_id(json!(3))["result"]["agents"].is_array());
    assert_eq!(by_id(Value::Null)["error"]["code"], -32600);
    // A notification is carried out, just not answered.
    conn.send(&json!({"jsonrpc": "2.0", "method": "agent/create", "params": {"name": "Quiet", "slug": "quiet"}}));
    let deadline = std::time::Instant::now() + crate::support::TIMEOUT;
    while conn
        .call("agent/get", json!({"agent": "quiet"}))
        .get("result")
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the notification was not carried out"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A batch of notifications only: no reply at all.
    conn.send(&json!([{"jsonrpc": "2.0", "method": "ping"}]));
    conn.send(&json!({"jsonrpc": "2.0", "id": "after", "method": "ping"}));
    assert_eq!(conn.recv()["id"], "after");
}

#[test]
fn standard_errors() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    let cases: [(&[u8], i64, &str); 7] = [
        (b"{not json", -32700, "parse_error"),
        (b"\xff\xfe{}", -32700, "parse_error"),
        (b"[]", -32600, "invalid_request"),
        (b"\"just a string\"", -32600, "invalid_request"),
        (
            br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            -32600,
            "invalid_request",
        ),
        (
            br#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#,
            -32600,
            "invalid_request",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"nope/nope"}"#,
            -32601,
            "method_not_found",
        ),
    ];
    for (input, code, name) in cases {
        conn.send_frame(input);
        let reply = conn.recv();
        assert_eq!(reply["error"]["code"], code, "{input:?}: {reply}");
        assert_eq!(reply["error"]["data"]["code"], name, "{input:?}: {reply}");
    }
    // Wrong param types and missing params: -32602.
    let error = conn.err("agent/create", json!({"name": 42}));
    assert_eq!(error["code"], -32602);
    assert!(
        error["message"].as_str().unwrap().contains("agent/create"),
        "{error}"
    );
    assert_eq!(
        conn.err("events/list", json!({"agent": "a"}))["code"],
        -32602
    );
    assert_eq!(
        conn.err(
            "events/list",
            json!({"agent": "a", "conversation": "c", "limit": 0})
        )["code"],
        -32602
    );
    // The daemon is still fine.
    assert_eq!(conn.ok("ping", json!({})), json!({}));
}

#[test]
fn exo_errors_carry_machine_readable_data() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    let error = conn.err("agent/get", json!({"agent": "ghost"}));
    assert_eq!(error["code"], -32001);
    assert_eq!(
        error["data"],
        json!({"code": "not_found", "what": "agent", "key": "ghost"})
    );
    assert_eq!(error["message"], "agent \"ghost\" not found");
    let error = conn.err("agent/create", json!({"name": "A", "slug": "a"}));
    assert_eq!(error["code"], -32005);
    assert_eq!(error["data"]["code"], "already_exists");

    let head = conn.ok(
        "conversation/get",
        json!({"agent": "a", "conversation": "c"}),
    )["head"]
        .clone();
    conn.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c", "events": [message("moves the head")]}),
    );
    let error = conn.err(
        "conversation/append",
        json!({"agent": "a", "conversation": "c", "events": [message("stale")], "expected_head": head}),
    );
    assert_eq!(error["code"], -32002);
    assert_eq!(error["data"]["code"], "conflict");
    assert_eq!(error["data"]["expected_head"], head);
    assert!(error["data"]["actual_head"].is_string());

    let turn = conn.ok(
        "turn/begin",
        json!({"agent": "a", "conversation": "c", "input": "go"}),
    );
    let error = conn.err(
        "turn/begin",
        json!({"agent": "a", "conversation": "c", "input": "again"}),
    );
    assert_eq!(error["code"], -32003);
    assert_eq!(error["data"]["code"], "busy");
    let error = conn.err("agent/delete", json!({"agent": "a"}));
    assert_eq!(
        error["data"]["code"], "busy",
        "an agent with a turn in progress stays: {error}"
    );
    conn.ok(
        "turn/finish",
        json!({"turn": turn["turn"], "status": "completed"}),
    );

    let error = conn.err("initialize", json!({"protocol_versions": ["99"]}));
    assert_eq!(error["code"], -32006);
    assert_eq!(error["data"]["supported"], json!(["1"]));

    let error = conn.err(
        "conversation/append",
        json!({"agent": "a", "conversation": "c", "events": [{"kind": "forked"}]}),
    );
    assert_eq!(error["code"], -32602);
    assert!(
        error["message"].as_str().unwrap().starts_with("event 1:"),
        "{error}"
    );
}

#[test]
fn turn_lifecycle_over_rpc() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    let begun = conn.ok(
        "turn/begin",
        json!({"agent": "a", "conversation": "c", "input": [{"type": "text", "text": "hello"}]}),
    );
    let kinds: Vec<&str> = begun["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["session_started", "turn_started", "message"]);
    let turn = begun["turn"].clone();
    let appended = conn.ok(
        "turn/append",
        json!({"turn": turn, "events": [{"kind": "message", "role": "assistant", "content": "hi there"}]}),
    );
    assert_eq!(appended["events"][0]["turn"], turn);
    assert_eq!(
        conn.ok("turn/finish", json!({"turn": turn, "status": "completed"}))["status"],
        "completed"
    );
    // Idempotent: a second finish reports the first status.
    assert_eq!(
        conn.ok("turn/finish", json!({"turn": turn, "status": "failed"}))["status"],
        "completed"
    );
    let record = conn.ok("turn/get", json!({"turn": turn}));
    assert_eq!(record["status"], "completed");
    assert_eq!(
        conn.err(
            "turn/get",
            json!({"turn": "01a1fd15-0000-7000-8000-000000000000"})
        )["code"],
        -32001
    );
    assert_eq!(
        conn.err("turn/finish", json!({"turn": turn, "status": "done"}))["code"],
        -32602
    );
}

#[test]
fn a_client_leaving_mid_turn_leaves_it_interrupted() {
    let root = Root::new();
    let daemon = root.daemon();
    let turn = {
        let mut conn = daemon.connect();
        conn.agent_and_conversation();
        conn.ok(
            "turn/begin",
            json!({"agent": "a", "conversation": "c", "input": "go"}),
        )["turn"]
            .clone()
    };
    // The connection is gone; the daemon closes its turn.
    let mut other = daemon.connect();
    let deadline = std::time::Instant::now() + crate::support::TIMEOUT;
    loop {
        let record = other.ok("turn/get", json!({"turn": turn}));
        if record["status"] == "interrupted" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "turn not closed: {record}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // And the conversation takes a new turn.
    other.ok(
        "turn/begin",
        json!({"agent": "a", "conversation": "c", "input": "again"}),
    );
}

#[test]
fn a_huge_line_is_refused_and_the_connection_goes_on() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut other = daemon.connect();
    // 100 MB in one line, written in pieces from another thread; the
    // daemon never buffers it whole.
    let stream = UnixStream::connect(&daemon.socket).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        writer
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"pad\":\"")
            .unwrap();
        for _ in 0..100 {
            writer.write_all(&chunk).unwrap();
        }
        writer
            .write_all(b"\"}}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n")
            .unwrap();
    });
    // Others are served while it streams in.
    assert_eq!(other.ok("ping", json!({})), json!({}));
    let mut big = Conn::from_stream(stream, Framing::Ndjson);
    let first = big.recv();
    assert_eq!(first["error"]["code"], -32600, "{first}");
    assert!(
        first["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{first}"
    );
    assert_eq!(big.recv(), json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
    writing.join().unwrap();
    assert_eq!(other.ok("ping", json!({})), json!({}));
}

#[test]
fn clients_that_vanish_and_thousands_of_connections() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    // Disconnect in the middle of a request (half a frame), and right after
    // sending one.
    for partial in [
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"meth"[..],
        b"Content-Length: 500\r\n\r\n{\"jsonrpc\"",
    ] {
        let mut stream = UnixStream::connect(&daemon.socket).unwrap();
        stream.write_all(partial).unwrap();
    }
    for n in 0..20 {
        let mut stream = UnixStream::connect(&daemon.socket).unwrap();
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "conversation/append",
            "params": {"agent": "a", "conversation": "c", "events": [message(&format!("fire and forget {n}"))]}});
        stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    }
    // Thousands of connections opening and closing.
    for _ in 0..2000 {
        drop(UnixStream::connect(&daemon.socket).unwrap());
    }
    // Requests already received were carried out, whole.
    let deadline = std::time::Instant::now() + crate::support::TIMEOUT;
    loop {
        let ids = crate::support::history_ids(&mut conn, "a", "c");
        if ids.len() == 21 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} events", ids.len());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Every closed connection is let go of.
    loop {
        let status = conn.ok("daemon/status", json!({}));
        if status["connections"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn socket_is_private_and_one_daemon_per_root() {
    let root = Root::new();
    let daemon = root.daemon();
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let root_mode = std::fs::metadata(root.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(root_mode, 0o700);
    let second = root.cli(&["daemon"]);
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already running") && stderr.contains(&daemon.pid().to_string()),
        "{stderr}"
    );
    let status = root.cli(&["--json", "daemon", "status"]);
    assert!(status.status.success());
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["pid"], daemon.pid());
    assert_eq!(status["socket"], daemon.socket.display().to_string());
}

#[test]
fn cancel_request() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    // A big write holds the store; a read queued behind it is cancelled
    // before it runs. The write is never cancelled once it has started.
    let events: Vec<Value> = (0..20_000).map(|n| message(&format!("bulk {n}"))).collect();
    conn.send(
        &json!({"jsonrpc": "2.0", "id": "bulk", "method": "conversation/append",
        "params": {"agent": "a", "conversation": "c", "events": events}}),
    );
    conn.send(
        &json!({"jsonrpc": "2.0", "id": "read", "method": "events/list",
        "params": {"agent": "a", "conversation": "c", "limit": 10000}}),
    );
    conn.send(&json!({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "read"}}));
    conn.send(&json!({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "bulk"}}));
    let read = conn.response(&json!("read"));
    let bulk = conn.response(&json!("bulk"));
    // A write is cancelled only before it starts: all of it or none of it.
    let stored = crate::support::history_ids(&mut conn, "a", "c").len();
    match bulk.get("error") {
        Some(error) => {
            assert_eq!(error["code"], -32800, "{error}");
            assert_eq!(stored, 1, "a cancelled write wrote nothing");
        }
        None => {
            assert_eq!(
                bulk["result"]["events"].as_array().map(Vec::len),
                Some(20_000)
            );
            assert_eq!(stored, 20_001);
        }
    }
    match read.get("error") {
        Some(error) => {
            assert_eq!(error["code"], -32800);
            assert_eq!(error["data"]["code"], "request_cancelled");
        }
        // The read won the race with its cancel: a whole, correct page.
        None => assert!(read["result"]["events"].is_array(), "{read}"),
    }
    // Cancelling an unknown id is harmless.
    conn.send(&json!({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 999}}));
    assert_eq!(conn.ok("ping", json!({})), json!({}));
}

/// Refused over JSON-RPC with `-32602`, in a message that names what is
/// wrong without command-line wording.
fn refused(conn: &mut Conn, method: &str, params: Value, words: &str) {
    let error = conn.err(method, params.clone());
    assert_eq!(error["code"], -32602, "{method} {params}: {error}");
    assert_eq!(error["data"]["code"], "invalid_params", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(words), "{method} {params}: {message}");
    assert!(
        !message.contains("--") && !message.contains('`'),
        "{message}"
    );
}

/// A workspace in exo's root (the root itself, a directory in it, or a
/// fork's new directory there) is refused, creating and writing nothing.
#[test]
fn a_workspace_in_the_root_is_refused() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    std::fs::create_dir(root.path().join("inside")).unwrap();
    for workspace in [root.path(), root.path().join("inside")] {
        refused(
            &mut conn,
            "conversation/create",
            json!({"agent": "a", "name": "W", "workspace": workspace}),
            "is exo's root directory or inside it",
        );
    }
    let listed = conn.ok("conversation/list", json!({"agent": "a"}));
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 1);

    let outside = root.dir.path().join("ws");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("file.txt"), "x").unwrap();
    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "W", "slug": "w", "workspace": outside}),
    );
    conn.ok("snapshot/take", json!({"agent": "a", "conversation": "w"}));
    refused(
        &mut conn,
        "conversation/fork",
        json!({"agent": "a", "conversation": "w", "workspace": root.path().join("fork")}),
        "is exo's root directory or inside it",
    );
    assert!(!root.path().join("fork").exists());
    let listed = conn.ok("conversation/list", json!({"agent": "a"}));
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 2);
}

/// An image part that is not base64, or not an image type, is refused in
/// a turn's input and in an appended message, recording nothing.
#[test]
fn invalid_image_parts_are_refused() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.agent_and_conversation();
    let before = conn.length("a", "c");
    let bad_images = [
        (
            json!([{"type": "image", "media_type": "image/png", "data": "not base64!"}]),
            "content part 1: image data is not standard base64",
        ),
        (
            json!([{"type": "text", "text": "see"}, {"type": "image", "media_type": "image/png\",x", "data": "aGk="}]),
            "content part 2: image media_type",
        ),
    ];
    for (content, words) in &bad_images {
        refused(
            &mut conn,
            "turn/begin",
            json!({"agent": "a", "conversation": "c", "input": content}),
            words,
        );
        refused(
            &mut conn,
            "conversation/append",
            json!({"agent": "a", "conversation": "c", "events": [
                {"kind": "message", "role": "user", "content": content}
            ]}),
            words,
        );
    }
    assert_eq!(conn.length("a", "c"), before);
    let conversation = conn.ok(
        "conversation/get",
        json!({"agent": "a", "conversation": "c"}),
    );
    assert!(conversation["open_turn"].is_null(), "{conversation}");
}

/// `--socket` naming a file that is not a socket: the daemon does not
/// start, and the file is left as it was. (A socket a dead daemon left
/// behind is still replaced: see `lifecycle`.)
#[test]
fn a_socket_path_that_is_not_a_socket_is_left_alone() {
    let root = Root::new();
    root.cli(&["agent", "create", "A"]);
    let db = root.path().join("exo.db");
    let before = std::fs::read(&db).unwrap();
    let other = root.dir.path().join("notes.txt");
    std::fs::write(&other, "keep me").unwrap();
    for path in [&db, &other] {
        let mut child = exo()
            .arg("--root")
            .arg(root.path())
            .args(["daemon", "--socket", path.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A daemon that started would serve until killed.
        let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_with_timeout(&mut child)
        }))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started on {}", path.display())
        });
        assert_eq!(status.code(), Some(1));
        let run = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(
            stderr.trim_end(),
            format!(
                "exo: cannot listen on {}: it exists and is not a socket",
                path.display()
            )
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert_eq!(std::fs::read(&other).unwrap(), b"keep me");
    let listed = root.cli(&["agent", "list"]);
    assert!(listed.status.success());
}

#[test]
fn a_huge_method_name_is_not_echoed_whole_and_a_cancel_sent_as_a_request_is_answered() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    let name = "x".repeat(1 << 20);
    let error = conn.err(&name, json!({}));
    let message = error["message"].as_str().unwrap();
    assert!(message.len() < 300, "{} bytes", message.len());
    assert!(message.starts_with("method not found: xxx"), "{message}");
    // `$/cancelRequest` is a notification; sent with an id, it is answered
    // all the same, so the client does not wait for ever.
    let answer = conn.call("$/cancelRequest", json!({"id": 12345}));
    assert!(
        answer["result"].is_null() && answer.get("error").is_none(),
        "{answer}"
    );
}
