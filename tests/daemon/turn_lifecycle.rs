//! A daemon that dies or stops with a turn running: after kill -9 the turn
//! is closed `interrupted` when the store is next opened, and the next turn
//! shows the model the call that never finished, answered as interrupted;
//! on SIGTERM running turns end `cancelled` and the daemon exits cleanly.

use exo_fake_model::{Answer, Completion, FakeModel, Wire};
use serde_json::{json, Value};

use crate::support::{
    agent_with_model, alive, history_ids, kinds, of_kind, turn, wait_until, watched_until,
    workspace, Conn, Root, Seen, Sleeper, Ticker, SLEEPER, TICKER, TIMEOUT,
};

/// Watches conversation `c` of agent `a` from its current head.
fn watch_from_head(conn: &mut Conn) -> u64 {
    let head = history_ids(conn, "a", "c").pop().unwrap();
    conn.ok(
        "events/watch",
        json!({"agent": "a", "conversation": "c", "after": head}),
    )["watch"]
        .as_u64()
        .unwrap()
}

/// After a restart: the turn is `interrupted`, its end and its session's
/// end recorded; returns the turn's events.
fn assert_interrupted(conn: &mut Conn, turn: &Value) -> Vec<Value> {
    assert_eq!(
        conn.ok("turn/get", json!({"turn": turn}))["status"],
        "interrupted"
    );
    let events = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "limit": 10000}),
    )["events"]
        .as_array()
        .unwrap()
        .clone();
    let ended = of_kind(&events, "turn_ended");
    assert_eq!(ended.len(), 1, "{events:?}");
    assert_eq!(ended[0]["status"], "interrupted");
    assert_eq!(&ended[0]["turn"], turn);
    assert_eq!(events.last().unwrap()["kind"], "session_ended");
    let conversation = conn.ok(
        "conversation/get",
        json!({"agent": "a", "conversation": "c"}),
    );
    assert!(conversation["open_turn"].is_null(), "{conversation}");
    events.into_iter().filter(|e| &e["turn"] == turn).collect()
}

/// The model's prompt, in the wire's own words, as a list of
/// `(role, what)`: a text, `call ID`, or `result ID: OUTPUT`.
fn transcript(wire: Wire, body: &Value) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let text = |value: &Value| value.as_str().unwrap().to_string();
    match wire {
        Wire::OpenAiChat => {
            for message in body["messages"].as_array().unwrap() {
                let role = text(&message["role"]);
                if role == "system" {
                    continue;
                }
                if role == "tool" {
                    let line = format!(
                        "result {}: {}",
                        text(&message["tool_call_id"]),
                        text(&message["content"])
                    );
                    lines.push((role, line));
                    continue;
                }
                if let Some(content) = message["content"].as_str() {
                    lines.push((role.clone(), content.to_string()));
                }
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    lines.push((role.clone(), format!("call {}", text(&call["id"]))));
                }
            }
        }
        Wire::OpenAi => {
            for item in body["input"].as_array().unwrap() {
                match item["type"].as_str().unwrap() {
                    "message" => {
                        for part in item["content"].as_array().unwrap() {
                            lines.push((text(&item["role"]), text(&part["text"])));
                        }
                    }
                    "function_call" => lines.push((
                        "assistant".into(),
                        format!("call {}", text(&item["call_id"])),
                    )),
                    "function_call_output" => lines.push((
                        "tool".into(),
                        format!(
                            "result {}: {}",
                            text(&item["call_id"]),
                            text(&item["output"])
                        ),
                    )),
                    other => panic!("unexpected input item {other}"),
                }
            }
        }
        Wire::Anthropic => {
            for message in body["messages"].as_array().unwrap() {
                let role = text(&message["role"]);
                for block in message["content"].as_array().unwrap() {
                    let line = match block["type"].as_str().unwrap() {
                        "text" => text(&block["text"]),
                        "tool_use" => format!("call {}", text(&block["id"])),
                        "tool_result" => {
                            assert_eq!(block["is_error"], true, "{block}");
                            format!(
                                "result {}: {}",
                                text(&block["tool_use_id"]),
                                text(&block["content"])
                            )
                        }
                        other => panic!("unexpected block {other}"),
                    };
                    lines.push((role.clone(), line));
                }
            }
        }
    }
    lines
}

/// kill -9 while the model's shell command runs, restart, go on.
fn killed_during_a_shell_call_resumes_cleanly(wire: Wire) {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(wire);
    model.push(Completion::text("Let me wait. ").with_tool_call(
        "call_sleep",
        "shell",
        json!({"command": SLEEPER}),
    ));
    let mut daemon = root.daemon();
    let mut runner = daemon.connect();
    agent_with_model(&mut runner, &model, None, "auto", &workspace);
    let mut watcher = daemon.connect();
    let watch = watch_from_head(&mut watcher);
    runner.request("turn/run", turn("Wait a while."));
    let recorded = watched_until(&mut watcher, watch, |e| e["kind"] == "tool_call");
    let turn_id = recorded.last().unwrap()["turn"].clone();
    let sleeper = Sleeper::started(&workspace);
    assert!(!daemon.signal("-KILL").success());
    // The caller's connection ends without a response.
    while let Some(message) = runner.try_recv() {
        assert!(message.get("id").is_none(), "{message}");
    }

    // The command dies with the daemon.
    wait_until("the command died with the daemon", || !alive(sleeper.pid));
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    let events = assert_interrupted(&mut conn, &turn_id);
    drop(sleeper);
    assert_eq!(
        kinds(&events),
        [
            "turn_started",
            "workspace_snapshot",
            "message",
            "message",
            "tool_call",
            "custom",
            "turn_ended",
        ],
        "{events:?}"
    );
    assert!(of_kind(&events, "tool_result").is_empty());
    let cli = root.cli(&["conversation", "events", "a", "c"]);
    assert!(cli.status.success());
    let cli = String::from_utf8(cli.stdout).unwrap();
    assert!(
        cli.lines()
            .any(|line| line.contains("turn_ended") && line.contains("interrupted")),
        "{cli}"
    );

    // The conversation takes a new turn, and the model is told the call
    // was interrupted.
    model.push(Completion::text("Starting over."));
    let seen = conn.run_turn(turn("Try again."));
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["text"], "Starting over.");
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let prompt = transcript(wire, &requests[1].body);
    let strings: Vec<(&str, &str)> = prompt
        .iter()
        .map(|(role, what)| (role.as_str(), what.as_str()))
        .collect();
    let (result_role, result_text) = strings[3];
    assert_eq!(
        strings[..3],
        [
            ("user", "Wait a while."),
            ("assistant", "Let me wait. "),
            ("assistant", "call call_sleep"),
        ]
    );
    assert_eq!(
        result_role,
        if wire == Wire::Anthropic {
            "user"
        } else {
            "tool"
        }
    );
    assert!(
        result_text.starts_with("result call_sleep: ") && result_text.contains("interrupted"),
        "{result_text}"
    );
    assert_eq!(strings[4..], [("user", "Try again.")]);
}

#[test]
fn kill_9_during_a_shell_call_then_resume_openai_chat() {
    killed_during_a_shell_call_resumes_cleanly(Wire::OpenAiChat);
}

#[test]
fn kill_9_during_a_shell_call_then_resume_openai_responses() {
    killed_during_a_shell_call_resumes_cleanly(Wire::OpenAi);
}

#[test]
fn kill_9_during_a_shell_call_then_resume_anthropic() {
    killed_during_a_shell_call_resumes_cleanly(Wire::Anthropic);
}

#[test]
fn kill_9_while_the_model_streams_then_resume() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAiChat);
    model.push(Answer::opening("Half of an answer"));
    let mut daemon = root.daemon();
    let mut runner = daemon.connect();
    agent_with_model(&mut runner, &model, None, "auto", &workspace);
    runner.request("turn/run", turn("Tell me."));
    let read = runner.read_until(|m| m["method"] == "turn/delta");
    let turn_id = read.last().unwrap()["params"]["turn"].clone();
    assert!(!daemon.signal("-KILL").success());
    assert!(
        model.wait_for_disconnects(1, TIMEOUT),
        "the model saw the client go"
    );

    let daemon = root.daemon();
    let mut conn = daemon.connect();
    let events = assert_interrupted(&mut conn, &turn_id);
    // What streamed was never committed: the record ends at the input.
    assert_eq!(
        kinds(&events),
        [
            "turn_started",
            "workspace_snapshot",
            "message",
            "turn_ended"
        ]
    );
    model.push(Completion::text("Here it is."));
    let seen = conn.run_turn(turn("Tell me again."));
    assert_eq!(seen.result()["status"], "completed");
    let prompt = transcript(Wire::OpenAiChat, &model.requests()[1].body);
    assert_eq!(
        prompt,
        [
            ("user".to_string(), "Tell me.".to_string()),
            ("user".to_string(), "Tell me again.".to_string()),
        ]
    );
}

#[test]
fn sigterm_cancels_running_turns_and_exits_cleanly() {
    let root = Root::new();
    let workspace = workspace(&root);
    let streaming = FakeModel::start(Wire::OpenAiChat);
    streaming.push(Answer::opening("Interrupted by"));
    let shelling = FakeModel::start(Wire::Anthropic);
    shelling.push(Completion::text("").with_tool_call(
        "call_sleep",
        "shell",
        json!({"command": SLEEPER}),
    ));
    let mut daemon = root.daemon();
    let mut streamer = daemon.connect();
    agent_with_model(&mut streamer, &streaming, None, "auto", &workspace);
    streamer.ok(
        "model/register",
        json!({"name": "other", "provider": "anthropic", "base_url": shelling.base_url()}),
    );
    streamer.ok(
        "agent/create",
        // On the host, as agent_with_model's: the test watches pids.
        json!({"name": "B", "slug": "b", "model": "other", "approval": "auto", "sandbox": "none"}),
    );
    streamer.ok(
        "conversation/create",
        json!({"agent": "b", "name": "C", "slug": "c", "workspace": workspace}),
    );

    let streaming_id = streamer.request("turn/run", turn("Talk."));
    let mut streamed = streamer.until_streamed("Interrupted by");
    let mut sheller = daemon.connect();
    let shell_id = sheller.request(
        "turn/run",
        json!({"agent": "b", "conversation": "c", "input": "Sleep."}),
    );
    let mut shelled = sheller.read_until(|m| m["method"] == "turn/events");
    let sleeper = Sleeper::started(&workspace);

    let status = daemon.signal("-TERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(!daemon.socket.exists(), "the socket is removed");

    // Both callers got their answer before the daemon exited.
    streamed.extend(streamer.read_until(|m| m.get("id") == Some(&streaming_id)));
    let seen = Seen::new(streamed, &streaming_id);
    let talk = seen.result().clone();
    assert_eq!(talk["status"], "cancelled", "{talk}");
    assert_eq!(talk["text"], "Interrupted by");
    assert!(streaming.wait_for_disconnects(1, TIMEOUT));
    shelled.extend(sheller.read_until(|m| m.get("id") == Some(&shell_id)));
    let seen = Seen::new(shelled, &shell_id);
    let sleep = seen.result().clone();
    assert_eq!(sleep["status"], "cancelled", "{sleep}");
    let events = sleep["events"].as_array().unwrap();
    assert_eq!(
        of_kind(events, "tool_result")[0]["output"]["cancelled"],
        true
    );
    wait_until("the command was stopped", || !alive(sleeper.pid));
    drop(sleeper);

    // On restart both turns are recorded as cancelled, not interrupted.
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    for (result, agent) in [(&talk, "a"), (&sleep, "b")] {
        assert_eq!(
            conn.ok("turn/get", json!({"turn": result["turn"]}))["status"],
            "cancelled"
        );
        let last = conn.ok(
            "events/list",
            json!({"agent": agent, "conversation": "c", "desc": true, "limit": 2}),
        );
        assert_eq!(
            kinds(last["events"].as_array().unwrap()),
            ["session_ended", "turn_ended"]
        );
    }
}

/// kill -9 of the daemon kills the shell commands it started, a
/// background grandchild included: nothing goes on changing the workspace
/// of a turn that is recorded as interrupted.
#[test]
fn kill_9_of_the_daemon_kills_its_shell_commands() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAiChat);
    model.push(Completion::text("Ticking. ").with_tool_call(
        "call_tick",
        "shell",
        json!({"command": TICKER}),
    ));
    let mut daemon = root.daemon();
    let mut runner = daemon.connect();
    agent_with_model(&mut runner, &model, None, "auto", &workspace);
    let turn_id = runner.request("turn/run", turn("Tick."));
    let ticker = Ticker::started(&workspace);
    assert!(ticker.processes().len() >= 2, "the shell and its subshell");
    assert!(!daemon.signal("-KILL").success());
    while let Some(message) = runner.try_recv() {
        assert_ne!(message.get("id"), Some(&turn_id), "{message}");
    }

    ticker.wait_until_still();
    wait_until("no process of the command's group is left", || {
        ticker.processes().is_empty()
    });
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    let turns = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "limit": 10000}),
    )["events"]
        .as_array()
        .unwrap()
        .clone();
    let ended = of_kind(&turns, "turn_ended");
    assert_eq!(ended.len(), 1, "{turns:?}");
    assert_eq!(ended[0]["status"], "interrupted");
}
