//! `turn/run` through a real daemon and a fake model API: what a client
//! sees while a turn runs (deltas, recorded events, all before the
//! response), what a refused turn records (nothing), where a model's key
//! goes (only to the model), and the stdio transport.

use exo_fake_model::{Completion, FakeModel, HttpError, Wire};
use serde_json::{json, Value};

use crate::support::{
    agent_with_model, history_ids, kinds, live_watch, of_kind, turn, watched, watched_events,
    workspace, Conn, Framing, Root, Seen,
};

#[test]
fn turn_run_streams_deltas_and_events_before_its_response() {
    let root = Root::new();
    let workspace = workspace(&root);
    std::fs::write(workspace.join("notes.txt"), "hello from the notes").unwrap();
    let model = FakeModel::start(Wire::OpenAiChat);
    model.push(Completion::text("Let me read them. ").with_tool_call(
        "call_1",
        "read_file",
        json!({"path": "notes.txt"}),
    ));
    model.push(Completion::text("The notes say hello."));
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    agent_with_model(&mut conn, &model, None, "ask", &workspace);
    let mut watcher = daemon.connect();
    let watch = live_watch(&mut conn, &mut watcher);
    let before = history_ids(&mut conn, "a", "c");

    let seen = conn.run_turn(turn("What do the notes say?"));
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["text"], "The notes say hello.");
    assert!(result.get("error").is_none(), "{result}");
    for notification in &seen.notifications {
        assert_eq!(
            notification["params"]["turn"], result["turn"],
            "{notification}"
        );
        assert!(
            ["turn/delta", "turn/events"].contains(&notification["method"].as_str().unwrap()),
            "{notification}"
        );
    }

    // The deltas are the answer as it streamed: both rounds' text, and
    // the start of the tool call.
    assert_eq!(
        seen.streamed_text(),
        "Let me read them. The notes say hello."
    );
    let calls: Vec<&Value> = seen
        .params("turn/delta")
        .into_iter()
        .filter_map(|params| params.get("tool_call"))
        .collect();
    assert_eq!(calls, [&json!({"call_id": "call_1", "name": "read_file"})]);
    // Each answer's deltas come before the batch that records it.
    let mut pending = String::new();
    let mut answers = Vec::new();
    for notification in &seen.notifications {
        let params = &notification["params"];
        if let Some(text) = params["text"].as_str() {
            pending.push_str(text);
        }
        for event in params["events"].as_array().into_iter().flatten() {
            if event["kind"] == "message" && event["role"] == "assistant" {
                assert_eq!(event["content"][0]["text"], pending.as_str());
                answers.push(std::mem::take(&mut pending));
            }
        }
    }
    assert_eq!(answers, ["Let me read them. ", "The notes say hello."]);

    // The event batches, joined, are the result's events, in order.
    let events = seen.events();
    assert_eq!(&events, result["events"].as_array().unwrap());
    assert_eq!(
        kinds(&events),
        [
            "session_started",
            "turn_started",
            "workspace_snapshot",
            "message",
            "message",
            "tool_call",
            "tool_result",
            "message",
            "workspace_snapshot",
            "turn_ended",
        ]
    );
    for event in &events {
        assert_eq!(event["session"], result["session"], "{event}");
        if event["kind"] != "session_started" {
            assert_eq!(event["turn"], result["turn"], "{event}");
        }
    }
    let messages = of_kind(&events, "message");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"][0]["text"], "What do the notes say?");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][0]["text"], "Let me read them. ");
    assert_eq!(messages[1]["model"], "fake-upstream");
    assert_eq!(messages[2]["content"][0]["text"], "The notes say hello.");
    let result_event = of_kind(&events, "tool_result")[0];
    assert_eq!(result_event["call_id"], "call_1");
    assert_eq!(result_event["is_error"], false);
    assert_eq!(result_event["output"]["content"], "hello from the notes");
    assert_eq!(of_kind(&events, "turn_ended")[0]["status"], "completed");

    // Nothing about the turn arrives after its response.
    conn.ok("ping", json!({}));
    assert!(conn.notifications.is_empty(), "{:?}", conn.notifications);

    // Another client watching the conversation saw the same events, and
    // the answer streaming; the history holds the events.
    let (watched_events, watched_text) = watched(&mut watcher, watch, events.len());
    assert_eq!(watched_events, events);
    assert_eq!(watched_text, "Let me read them. The notes say hello.");
    let history = history_ids(&mut conn, "a", "c");
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(history[before.len()..], ids);

    // The second model call carried the tool's result.
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].body["model"], "fake-upstream");
    let messages = requests[1].body["messages"].as_array().unwrap();
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], "call_1");
    assert!(
        tool["content"]
            .as_str()
            .unwrap()
            .contains("hello from the notes"),
        "{tool}"
    );
}

#[test]
fn a_turn_stops_at_its_round_limit() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAi);
    for call in ["call_1", "call_2"] {
        model.push(Completion::text("").with_tool_call(call, "list_files", json!({})));
    }
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    agent_with_model(&mut conn, &model, None, "ask", &workspace);
    let seen = conn.run_turn(json!({"agent": "a", "conversation": "c",
        "input": "Look around.", "max_rounds": 2}));
    let result = seen.result();
    assert_eq!(result["status"], "max_rounds", "{result}");
    assert_eq!(result["text"], "");
    let events = result["events"].as_array().unwrap();
    assert_eq!(of_kind(events, "tool_result").len(), 2);
    let errors = of_kind(events, "error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], "max_rounds");
    assert_eq!(errors[0]["message"], result["error"]);
    assert_eq!(of_kind(events, "turn_ended")[0]["status"], "max_rounds");
    assert_eq!(model.requests().len(), 2);
    assert_eq!(model.unanswered(), 0);
}

#[test]
fn refused_turns_record_nothing_and_notify_nothing() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAiChat);
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    agent_with_model(&mut conn, &model, None, "auto", &workspace);
    conn.ok("agent/create", json!({"name": "Bare", "slug": "bare"}));
    conn.ok(
        "conversation/create",
        json!({"agent": "bare", "name": "C", "slug": "c"}),
    );
    // An agent whose model was deleted after it was created.
    conn.ok(
        "model/register",
        json!({"name": "gone", "provider": "openai-chat", "base_url": model.base_url()}),
    );
    conn.ok(
        "agent/create",
        json!({"name": "Ghost", "slug": "ghost", "model": "gone"}),
    );
    conn.ok(
        "conversation/create",
        json!({"agent": "ghost", "name": "C", "slug": "c"}),
    );
    conn.ok("model/delete", json!({"name": "gone"}));
    let lengths = |conn: &mut Conn| -> Vec<u64> {
        ["a", "bare", "ghost"]
            .iter()
            .map(|agent| conn.length(agent, "c"))
            .collect()
    };
    let before = lengths(&mut conn);

    let cases: &[(Value, i64, &str, &str)] = &[
        (
            json!({"agent": "nobody", "conversation": "c", "input": "hi"}),
            -32001,
            "not_found",
            "nobody",
        ),
        (
            json!({"agent": "a", "conversation": "nothing", "input": "hi"}),
            -32001,
            "not_found",
            "nothing",
        ),
        (
            json!({"agent": "bare", "conversation": "c", "input": "hi"}),
            -32602,
            "invalid_params",
            "agent bare has no model",
        ),
        (
            json!({"agent": "ghost", "conversation": "c", "input": "hi"}),
            -32001,
            "not_found",
            "model \"gone\" not found",
        ),
        (
            json!({"agent": "a", "conversation": "c"}),
            -32602,
            "invalid_params",
            "input",
        ),
        (
            json!({"agent": "a", "conversation": "c", "input": 42}),
            -32602,
            "invalid_params",
            "turn/run",
        ),
        (
            json!({"agent": "a", "conversation": "c", "input": "hi", "max_rounds": -1}),
            -32602,
            "invalid_params",
            "turn/run",
        ),
        (
            json!({"agent": "a", "conversation": "c", "input": "hi", "approvals": "yes"}),
            -32602,
            "invalid_params",
            "turn/run",
        ),
        (json!([]), -32602, "invalid_params", "turn/run"),
        (
            json!({"agent": "a", "conversation": "c", "input": "hi", "max_rounds": 0}),
            -32602,
            "invalid_params",
            "max_rounds must be at least 1",
        ),
        (
            json!({"agent": "a", "conversation": "c", "input": "  "}),
            -32602,
            "invalid_params",
            "input must not be empty",
        ),
        (
            json!({"agent": "a", "conversation": "c", "input": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "media_type": "image/png", "data": "not base64!"}
            ]}),
            -32602,
            "invalid_params",
            "content part 2: image data is not standard base64",
        ),
    ];
    for (params, code, name, words) in cases {
        let seen = conn.run_turn(params.clone());
        let error = &seen.response["error"];
        assert_eq!(error["code"], *code, "{params}: {}", seen.response);
        assert_eq!(error["data"]["code"], *name, "{params}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(words), "{params}: {message}");
        assert!(
            seen.notifications.is_empty(),
            "{params}: {:?}",
            seen.notifications
        );
    }
    // Params left out entirely.
    let id = json!("no-params");
    conn.send(&json!({"jsonrpc": "2.0", "id": id, "method": "turn/run"}));
    let reply = conn.response(&id);
    assert_eq!(reply["error"]["code"], -32602, "{reply}");

    assert_eq!(lengths(&mut conn), before, "a refused turn recorded events");
    assert!(model.requests().is_empty());
    let turns = conn.ok(
        "conversation/get",
        json!({"agent": "a", "conversation": "c"}),
    );
    assert!(turns["open_turn"].is_null(), "{turns}");
}

#[test]
fn a_second_turn_on_a_busy_conversation_is_refused() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAiChat);
    model.push(exo_fake_model::Answer::opening("Still thinking"));
    let daemon = root.daemon();
    let mut running = daemon.connect();
    agent_with_model(&mut running, &model, None, "auto", &workspace);
    let id = running.request("turn/run", turn("Think hard."));
    let read = running.read_until(|m| m["method"] == "turn/delta");
    let turn_id = read.last().unwrap()["params"]["turn"].clone();

    let mut other = daemon.connect();
    let length = other.length("a", "c");
    let seen = other.run_turn(turn("Me too."));
    let error = &seen.response["error"];
    assert_eq!(error["code"], -32003, "{}", seen.response);
    assert_eq!(error["data"]["code"], "busy");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("already in progress"),
        "{error}"
    );
    assert!(seen.notifications.is_empty(), "{:?}", seen.notifications);
    // The same through turn/begin, the API out-of-process executors use.
    assert_eq!(
        other.err("turn/begin", turn("Me too."))["code"],
        -32003,
        "turn/begin"
    );
    assert_eq!(
        other.length("a", "c"),
        length,
        "the refusal recorded events"
    );
    assert_eq!(model.requests().len(), 1);

    other.ok("turn/cancel", json!({"turn": turn_id}));
    let mut read = read;
    read.extend(running.read_until(|m| m.get("id") == Some(&id)));
    let seen = Seen::new(read, &id);
    assert_eq!(seen.result()["status"], "cancelled");
}

#[test]
fn a_model_nobody_listens_for_fails_the_turn() {
    let root = Root::new();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.ok(
        "model/register",
        json!({"name": "gone", "provider": "openai-chat", "base_url": format!("http://127.0.0.1:{port}/v1")}),
    );
    conn.ok(
        "agent/create",
        json!({"name": "A", "slug": "a", "model": "gone"}),
    );
    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "C", "slug": "c"}),
    );
    // The client retries a refused connection a few times, with backoff,
    // before it gives up.
    let seen = conn.run_turn(turn("Anyone there?"));
    let result = seen.result();
    assert_eq!(result["status"], "failed", "{result}");
    let message = result["error"].as_str().unwrap();
    let events = result["events"].as_array().unwrap();
    assert_eq!(&seen.events(), events);
    let errors = of_kind(events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0]["message"], message);
    assert_eq!(errors[0]["code"], "transport");
    assert_eq!(of_kind(events, "turn_ended")[0]["status"], "failed");
    assert_eq!(
        conn.ok("turn/get", json!({"turn": result["turn"]}))["status"],
        "failed"
    );
    assert!(of_kind(events, "message")
        .iter()
        .all(|m| m["role"] == "user"));
}

#[test]
fn a_script_that_is_a_fifo_never_freezes_the_daemon() {
    let root = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("script.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.ok(
        "model/register",
        json!({"name": "piped", "provider": "scripted", "base_url": format!("file://{}", fifo.display())}),
    );
    conn.ok(
        "agent/create",
        json!({"name": "A", "slug": "a", "model": "piped"}),
    );
    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "C", "slug": "c"}),
    );
    let before = conn.length("a", "c");
    // Nobody ever writes to the FIFO: the turn is refused, at once, and
    // records nothing.
    let error = conn.err("turn/run", turn("Hello"));
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("not a regular file"), "{error}");
    assert_eq!(conn.length("a", "c"), before);
    // Endless or huge scripts are refused as well, without reading them whole.
    let huge = dir.path().join("huge.json");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(17 << 20).unwrap();
    for (name, path, why) in [
        (
            "zero",
            std::path::PathBuf::from("/dev/zero"),
            "not a regular file",
        ),
        ("huge", huge, "limit"),
    ] {
        conn.ok(
            "model/register",
            json!({"name": name, "provider": "scripted", "base_url": format!("file://{}", path.display())}),
        );
        conn.ok(
            "agent/create",
            json!({"name": name, "slug": name, "model": name}),
        );
        conn.ok(
            "conversation/create",
            json!({"agent": name, "name": "C", "slug": "c"}),
        );
        let mut params = turn("Hello");
        params["agent"] = json!(name);
        let error = conn.err("turn/run", params);
        assert!(error["message"].as_str().unwrap().contains(why), "{error}");
    }
    // Other clients, and shutdown, are unaffected.
    daemon.connect().ok("ping", json!({}));
    let status = daemon.signal("-TERM");
    assert!(status.success(), "{status:?}");
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    files
}

#[test]
fn the_api_key_reaches_the_model_and_nothing_else() {
    const KEY: &str = "sk-test-5b9d1c0e7a3f4e21a8c6d2b0f1e9a7c3";
    let root = Root::new();
    let workspace = workspace(&root);
    let log = root.dir.path().join("daemon.log");
    let model = FakeModel::start(Wire::OpenAiChat);
    model.push(Completion::text("Running it. ").with_tool_call(
        "call_1",
        "shell",
        json!({"command": "echo hi"}),
    ));
    model.push(Completion::text("It said hi."));
    // Providers echo a wrong key in their error messages.
    model.push(HttpError::new(
        401,
        &format!("Incorrect API key provided: {KEY}. Find your key in your account settings."),
    ));
    let mut daemon = root.daemon_with(
        &["--log-file", log.to_str().unwrap()],
        &[("EXO_LOG", "debug")],
    );
    let mut conn = daemon.connect();
    agent_with_model(&mut conn, &model, Some(KEY), "auto", &workspace);
    let mut watcher = daemon.connect();
    let watch = watcher.ok("events/watch", json!({"agent": "a", "conversation": "c"}))["watch"]
        .as_u64()
        .unwrap();

    let mut everything = String::new();
    let first = conn.run_turn(turn("Say hi."));
    assert_eq!(first.result()["status"], "completed", "{}", first.response);
    let second = conn.run_turn(turn("Again."));
    let failed = second.result();
    assert_eq!(failed["status"], "failed", "{failed}");
    let message = failed["error"].as_str().unwrap();
    assert!(
        message.contains("Incorrect API key provided"),
        "the provider's message is kept: {message}"
    );
    for seen in [&first, &second] {
        for message in seen.notifications.iter().chain([&seen.response]) {
            everything.push_str(&message.to_string());
        }
    }
    let history = history_ids(&mut conn, "a", "c");
    let watched = watched_events(&mut watcher, watch, history.len());
    everything.push_str(&Value::Array(watched).to_string());
    for (method, params) in [
        (
            "events/list",
            json!({"agent": "a", "conversation": "c", "limit": 10000}),
        ),
        ("turn/get", json!({"turn": first.result()["turn"]})),
        ("model/get", json!({"name": "fake"})),
        ("model/list", json!({})),
        ("secret/list", json!({})),
        ("secret/get", json!({"name": "fake-key"})),
        ("agent/get", json!({"agent": "a"})),
        (
            "conversation/get",
            json!({"agent": "a", "conversation": "c"}),
        ),
    ] {
        everything.push_str(&conn.call(method, params).to_string());
    }
    assert!(
        everything.contains("It said hi."),
        "the check saw the turns"
    );
    assert!(!everything.contains(KEY), "the key was sent to a client");

    // Every model call carried it, in the header.
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.header("authorization"), format!("Bearer {KEY}"));
        assert!(!request.body.to_string().contains(KEY));
    }

    // The log, at debug level, and every file under the root.
    assert!(daemon.signal("-TERM").success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("DEBUG"), "debug logging was on: {log}");
    assert!(!log.contains(KEY), "the key is in the daemon's log");
    let mut scanned = 0;
    for (path, bytes) in files_under(&root.path()) {
        scanned += 1;
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the key is in {} in plaintext",
            path.display()
        );
    }
    assert!(scanned > 1);
}

/// A provider that rejects the key and echoes it back, encoded, cut short
/// or inside a `Basic` header: every form is redacted in the turn's
/// result, its notifications, the recorded `error` events, what a watcher
/// sees and the daemon's log (which warns of the retried failures).
#[test]
fn an_echoed_key_is_redacted_in_every_form() {
    // Characters that percent-encoding, JSON and the two base64 alphabets
    // each write differently.
    const KEY: &str = "sk-d+/=:~~~0123456789?>abcdWXYZ01";
    let root = Root::new();
    let workspace = workspace(&root);
    let log = root.dir.path().join("daemon.log");
    let model = FakeModel::start(Wire::Anthropic);
    let daemon = root.daemon_with(
        &["--log-file", log.to_str().unwrap()],
        &[("EXO_LOG", "debug")],
    );
    let mut conn = daemon.connect();
    agent_with_model(&mut conn, &model, Some(KEY), "auto", &workspace);
    let mut watcher = daemon.connect();
    let watch = watcher.ok("events/watch", json!({"agent": "a", "conversation": "c"}))["watch"]
        .as_u64()
        .unwrap();

    let echoes = exo_fake_model::key_echoes(KEY);
    let mut seen_by_clients = String::new();
    for (name, echo) in &echoes {
        // A 500 is retried, with a warning in the log, then a 401 fails
        // the turn; both echo the key.
        let message = format!("Incorrect API key provided: {echo}. Check it.");
        model.push(HttpError::new(500, &message).with_header("retry-after-ms", "1"));
        model.push(HttpError::new(401, &message));
        let seen = conn.run_turn(turn("Hello."));
        let result = seen.result();
        assert_eq!(result["status"], "failed", "{name}: {result}");
        let message = result["error"].as_str().unwrap();
        assert!(
            message.contains("Incorrect API key provided: ") && message.contains("<redacted>"),
            "{name}: {message}"
        );
        for message in seen.notifications.iter().chain([&seen.response]) {
            seen_by_clients.push_str(&message.to_string());
        }
    }
    assert_eq!(model.requests().len(), 2 * echoes.len());
    assert_eq!(model.requests()[0].header("x-api-key"), KEY);
    let history = history_ids(&mut conn, "a", "c");
    let watched = watched_events(&mut watcher, watch, history.len());
    let errors = of_kind(&watched, "error");
    assert_eq!(errors.len(), echoes.len());
    for error in errors {
        assert!(
            error["message"].as_str().unwrap().contains("<redacted>"),
            "{error}"
        );
    }
    seen_by_clients.push_str(&Value::Array(watched).to_string());

    drop(conn);
    drop(watcher);
    let mut daemon = daemon;
    assert!(daemon.signal("-TERM").success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("DEBUG"), "debug logging was on: {log}");
    assert_eq!(
        log.matches("retrying").count(),
        echoes.len(),
        "the log holds the retried errors: {log}"
    );
    for (name, echo) in &echoes {
        assert!(
            !exo_fake_model::shows_echo(&seen_by_clients, echo),
            "{name} ({echo}) reached a client: {seen_by_clients}"
        );
        assert!(
            !exo_fake_model::shows_echo(&log, echo),
            "{name} ({echo}) is in the daemon's log"
        );
    }
}

#[test]
fn turn_run_over_stdio_served_alone_and_relayed_to_a_daemon() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::Anthropic);
    model.push(Completion::text("Served by the stdio process itself."));
    model.push(Completion::text("Relayed through the running daemon."));

    // No daemon runs: `exo daemon --stdio` serves the root itself.
    let mut alone = Conn::stdio(&root, Framing::Ndjson);
    agent_with_model(&mut alone, &model, None, "auto", &workspace);
    let seen = alone.run_turn(turn("Who serves you?"));
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["text"], "Served by the stdio process itself.");
    assert_eq!(seen.streamed_text(), "Served by the stdio process itself.");
    assert_eq!(&seen.events(), result["events"].as_array().unwrap());
    let status = alone.close().unwrap();
    assert!(status.success(), "{status:?}");

    // A daemon runs: the stdio process relays to it, in either framing.
    let daemon = root.daemon();
    let mut relayed = Conn::stdio(&root, Framing::ContentLength);
    assert_eq!(
        relayed.ok("daemon/status", json!({}))["pid"],
        daemon.pid(),
        "the stdio process relays to the daemon"
    );
    let seen = relayed.run_turn(turn("And now?"));
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["text"], "Relayed through the running daemon.");
    assert_eq!(seen.streamed_text(), "Relayed through the running daemon.");
    assert_eq!(&seen.events(), result["events"].as_array().unwrap());
    // The second request carried the first turn.
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/v1/messages");
    let texts: Vec<&str> = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().unwrap())
        .filter_map(|block| block["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "Who serves you?",
            "Served by the stdio process itself.",
            "And now?"
        ]
    );
    relayed.close();
}

/// A shell command the model runs in `exo daemon --stdio` cannot read the
/// master key or an API key from the daemon's `/proc/PID/environ` (nor its
/// `cmdline`), not even as root: the daemon started itself again without
/// them. (tests/cli/isolation.rs has the same for `conversation send` and
/// `exo daemon`, also as an unprivileged user.)
#[test]
fn a_shell_command_cannot_read_the_keys_in_the_environment_of_exo_daemon_stdio() {
    const API_KEY: &str = "sk-stdio-environ-6c1f0e9a2b7d4c3e8f5a1b0c9d8e7f6a";
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAiChat);
    let exo_root = root.path();
    let script = format!(
        r#"p=$PPID
echo "== exo $p: $(tr '\0' ' ' < /proc/$p/cmdline)"
tr '\0' '\n' < /proc/$p/environ
case "$(tr '\0' ' ' < /proc/$p/cmdline)" in *"{}"*) echo "== the daemon of this test" ;; esac"#,
        exo_root.display()
    );
    model.push(Completion::text("Looking. ").with_tool_call(
        "call_spy",
        "shell",
        json!({"command": script}),
    ));
    model.push(Completion::text("Seen."));
    let mut conn = Conn::stdio_with(
        &root,
        Framing::Ndjson,
        &[("EXO_STDIO_TEST_API_KEY", API_KEY)],
    );
    agent_with_model(&mut conn, &model, None, "auto", &workspace);
    let seen = conn.run_turn(turn("Look around."));
    assert_eq!(seen.result()["status"], "completed", "{}", seen.response);
    let events = seen.events();
    let output = &of_kind(&events, "tool_result")[0]["output"];
    let stdout = output["stdout"].as_str().unwrap();
    let stderr = output["stderr"].as_str().unwrap();
    assert!(
        stdout.contains("== the daemon of this test"),
        "the script did not find the daemon: {stderr}"
    );
    // The daemon inherits the test's whole environment: failures name the
    // variables seen, never their values.
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    let root_user = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"));
    if root_user {
        // Root reads any process's environment: what is there was read.
        assert!(names.contains(&"PATH"), "{names:?}\n{stderr}");
    } else {
        // Another user: non-dumpable, so not even that.
        assert!(stderr.contains("Permission denied"), "{names:?}\n{stderr}");
    }
    let everything = format!(
        "{stdout}{stderr}{}{}",
        Value::Array(events.clone()),
        Value::Array(model.requests().iter().map(|r| r.body.clone()).collect())
    );
    let master_key = "4444444444444444444444444444444444444444444444444444444444444444";
    assert!(
        !everything.contains(master_key),
        "the master key reached the command: {names:?}"
    );
    assert!(
        !everything.contains(API_KEY),
        "the API key reached the command: {names:?}"
    );
    conn.close();
}
