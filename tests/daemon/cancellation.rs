//! Cancelling a running turn: `turn/cancel` from any connection and
//! `$/cancelRequest` on the `turn/run` request, while the model streams and
//! while a shell command runs. A cancelled turn keeps what streamed, hangs
//! up on the model, and stops the command.

use exo_fake_model::{Answer, Completion, FakeModel, Wire};
use serde_json::{json, Value};

use crate::support::{
    agent_with_model, alive, of_kind, turn, wait_until, workspace, Root, Seen, Sleeper, SLEEPER,
    TIMEOUT,
};

const PARTIAL: &str = "The first half of an answer that never";

/// Checks a turn cancelled while the model streamed [`PARTIAL`].
fn assert_cancelled_with_partial_text(seen: &Seen, model: &FakeModel) {
    let result = seen.result();
    assert_eq!(result["status"], "cancelled", "{result}");
    assert_eq!(result["text"], PARTIAL);
    let events = result["events"].as_array().unwrap();
    assert_eq!(&seen.events(), events);
    let answers: Vec<&Value> = of_kind(events, "message")
        .into_iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(answers.len(), 1, "{events:?}");
    assert_eq!(
        answers[0]["content"],
        json!([{"type": "text", "text": PARTIAL}])
    );
    assert!(of_kind(events, "tool_call").is_empty());
    assert!(of_kind(events, "error").is_empty(), "{events:?}");
    assert_eq!(of_kind(events, "turn_ended")[0]["status"], "cancelled");
    assert!(
        model.wait_for_disconnects(1, TIMEOUT),
        "the model's stream was not closed"
    );
    assert_eq!(model.requests().len(), 1);
}

#[test]
fn turn_cancel_from_another_connection_keeps_the_partial_answer() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAi);
    model.push(Answer::opening(PARTIAL));
    let daemon = root.daemon();
    let mut runner = daemon.connect();
    agent_with_model(&mut runner, &model, None, "auto", &workspace);

    let id = runner.request("turn/run", turn("Tell me everything."));
    let mut read = runner.read_until(|m| m["method"] == "turn/events");
    let turn_id = read.last().unwrap()["params"]["turn"].clone();
    read.extend(runner.until_streamed(PARTIAL));
    let mut other = daemon.connect();
    assert_eq!(other.ok("turn/cancel", json!({"turn": turn_id})), json!({}));
    read.extend(runner.read_until(|m| m.get("id") == Some(&id)));
    let seen = Seen::new(read, &id);
    assert_cancelled_with_partial_text(&seen, &model);
    assert_eq!(
        other.ok("turn/get", json!({"turn": turn_id}))["status"],
        "cancelled"
    );
    assert_eq!(
        other.err("turn/cancel", json!({"turn": turn_id}))["code"],
        -32001,
        "a finished turn is no longer running"
    );

    // The conversation goes on, and the model sees the partial answer.
    model.push(Completion::text("Starting again."));
    let next = runner.run_turn(turn("Go on."));
    assert_eq!(next.result()["status"], "completed");
    let input = model.requests()[1].body["input"]
        .as_array()
        .unwrap()
        .clone();
    let texts: Vec<(&str, &str)> = input
        .iter()
        .map(|item| {
            (
                item["role"].as_str().unwrap(),
                item["content"][0]["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            ("user", "Tell me everything."),
            ("assistant", PARTIAL),
            ("user", "Go on.")
        ]
    );
}

#[test]
fn cancel_request_on_the_turn_run_request_cancels_the_turn() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::Anthropic);
    model.push(Answer::opening(PARTIAL));
    let daemon = root.daemon();
    let mut runner = daemon.connect();
    agent_with_model(&mut runner, &model, None, "auto", &workspace);

    let id = runner.request("turn/run", turn("Tell me everything."));
    let mut read = runner.until_streamed(PARTIAL);
    runner.send(&json!({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": id}}));
    read.extend(runner.read_until(|m| m.get("id") == Some(&id)));
    let seen = Seen::new(read, &id);
    assert_cancelled_with_partial_text(&seen, &model);
}

#[test]
fn turn_cancel_of_a_turn_not_running_is_not_found() {
    let root = Root::new();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    let error = conn.err(
        "turn/cancel",
        json!({"turn": "0190c7d8-8f6e-7000-8000-000000000000"}),
    );
    assert_eq!(error["code"], -32001, "{error}");
    assert_eq!(error["data"]["what"], "turn");
    assert_eq!(error["data"]["key"], "0190c7d8-8f6e-7000-8000-000000000000");
    // A turn begun with turn/begin runs in its caller, not here.
    conn.agent_and_conversation();
    let begun = conn.ok("turn/begin", turn("elsewhere"))["turn"].clone();
    assert_eq!(
        conn.err("turn/cancel", json!({"turn": begun}))["code"],
        -32001
    );
    for bad in [json!({"turn": "nope"}), json!({})] {
        assert_eq!(
            conn.err("turn/cancel", bad.clone())["code"],
            -32602,
            "{bad}"
        );
    }
}

#[test]
fn cancelling_during_a_long_shell_command_stops_it() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAiChat);
    model.push(Completion::text("Waiting. ").with_tool_call(
        "call_sleep",
        "shell",
        json!({"command": SLEEPER}),
    ));
    let daemon = root.daemon();
    let mut runner = daemon.connect();
    agent_with_model(&mut runner, &model, None, "auto", &workspace);

    let id = runner.request("turn/run", turn("Wait for me."));
    let mut read = runner.read_until(|m| m["method"] == "turn/events");
    let turn_id = read.last().unwrap()["params"]["turn"].clone();
    let sleeper = Sleeper::started(&workspace);
    daemon.connect().ok("turn/cancel", json!({"turn": turn_id}));
    read.extend(runner.read_until(|m| m.get("id") == Some(&id)));
    let seen = Seen::new(read, &id);
    let result = seen.result();
    assert_eq!(result["status"], "cancelled", "{result}");
    assert_eq!(result["text"], "Waiting. ");
    let events = result["events"].as_array().unwrap();
    let output = &of_kind(events, "tool_result")[0];
    assert_eq!(output["call_id"], "call_sleep");
    assert_eq!(output["is_error"], true);
    assert_eq!(output["output"]["cancelled"], true, "{output}");
    assert_eq!(output["output"]["exit_code"], Value::Null);
    assert_eq!(of_kind(events, "turn_ended")[0]["status"], "cancelled");
    wait_until("the cancelled command has been killed", || {
        !alive(sleeper.pid)
    });
    assert_eq!(model.requests().len(), 1, "no model call after the cancel");
}
