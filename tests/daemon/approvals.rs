//! Approvals over JSON-RPC: a turn whose agent asks before shell commands
//! and file writes sends `approval/request` to the client that runs it and
//! waits; `approval/respond` from any connection answers; a caller that
//! cannot answer gets its calls denied; a waiting turn can be cancelled.

use std::path::PathBuf;

use exo_fake_model::{Completion, FakeModel, Wire};
use serde_json::{json, Value};

use crate::support::{
    agent_with_model, history_ids, live_watch, of_kind, turn, watched_until, workspace, Conn,
    Daemon, Root, Seen,
};

/// A daemon, a fake model and agent `a` (approval `ask`) with conversation
/// `c` on a workspace.
struct Asking {
    workspace: PathBuf,
    model: FakeModel,
    daemon: Daemon,
    /// Dropped last (fields drop in order): the daemon runs in it.
    _root: Root,
}

impl Asking {
    fn new() -> Asking {
        let root = Root::new();
        let workspace = workspace(&root);
        let model = FakeModel::start(Wire::OpenAiChat);
        let daemon = root.daemon();
        agent_with_model(&mut daemon.connect(), &model, None, "ask", &workspace);
        Asking {
            workspace,
            model,
            daemon,
            _root: root,
        }
    }
}

/// A call that writes `file` in the workspace with `echo`.
fn echo_into(call_id: &str, file: &str) -> Completion {
    Completion::text("").with_tool_call(
        call_id,
        "shell",
        json!({"command": format!("echo {call_id} > {file}")}),
    )
}

/// The `exo.approval` decisions among `events`.
fn decisions(events: &[Value]) -> Vec<Value> {
    of_kind(events, "custom")
        .into_iter()
        .filter(|e| e["type"] == "exo.approval")
        .map(|e| e["payload"].clone())
        .collect()
}

fn tool_result<'a>(events: &'a [Value], call_id: &str) -> &'a Value {
    of_kind(events, "tool_result")
        .into_iter()
        .find(|e| e["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no result for {call_id} in {events:?}"))
}

#[test]
fn a_question_asked_on_one_connection_is_answered_from_another() {
    let asking = Asking::new();
    asking.model.push(echo_into("call_yes", "yes.txt"));
    asking.model.push(echo_into("call_no", "no.txt"));
    asking
        .model
        .push(Completion::text("One ran, one was refused."));
    let mut runner = asking.daemon.connect();
    let mut answerer = asking.daemon.connect();

    let id = runner.request("turn/run", turn("Write two files."));
    let mut read = runner.read_until(|m| m["method"] == "approval/request");
    let ask = read.last().unwrap()["params"].clone();
    let turn_id = ask["turn"].clone();
    assert_eq!(ask["call_id"], "call_yes");
    assert_eq!(ask["tool"], "shell");
    assert_eq!(
        ask["arguments"],
        json!({"command": "echo call_yes > yes.txt"})
    );
    assert!(
        !asking.workspace.join("yes.txt").exists(),
        "it ran before it was approved"
    );
    assert_eq!(
        answerer.ok(
            "approval/respond",
            json!({"turn": turn_id, "call_id": "call_yes", "approve": true}),
        ),
        json!({})
    );
    // A question is answered once.
    let again = answerer.err(
        "approval/respond",
        json!({"turn": turn_id, "call_id": "call_yes", "approve": false}),
    );
    assert_eq!(again["code"], -32001, "{again}");

    read.extend(runner.read_until(|m| m["method"] == "approval/request"));
    let ask = read.last().unwrap()["params"].clone();
    assert_eq!(ask["call_id"], "call_no");
    assert_eq!(ask["turn"], turn_id);
    answerer.ok(
        "approval/respond",
        json!({"turn": turn_id, "call_id": "call_no", "approve": false}),
    );
    read.extend(runner.read_until(|m| m.get("id") == Some(&id)));
    let seen = Seen::new(read, &id);
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["text"], "One ran, one was refused.");
    assert_eq!(seen.params("approval/request").len(), 2);

    let events = result["events"].as_array().unwrap();
    assert_eq!(
        decisions(events),
        [
            json!({"call_id": "call_yes", "tool": "shell", "approved": true, "decision": "allow_once", "by": "user"}),
            json!({"call_id": "call_no", "tool": "shell", "approved": false, "decision": "deny", "by": "user"}),
        ]
    );
    let yes = tool_result(events, "call_yes");
    assert_eq!(yes["is_error"], false, "{yes}");
    assert_eq!(yes["output"]["exit_code"], 0, "{yes}");
    assert_eq!(
        std::fs::read_to_string(asking.workspace.join("yes.txt")).unwrap(),
        "call_yes\n"
    );
    let no = tool_result(events, "call_no");
    assert_eq!(no["is_error"], true, "{no}");
    let refusal = no["output"]["error"].as_str().unwrap();
    assert!(refusal.starts_with("denied"), "{refusal}");
    assert!(!asking.workspace.join("no.txt").exists());

    // The model was told.
    let requests = asking.model.requests();
    assert_eq!(requests.len(), 3);
    let last = requests[2].body["messages"].as_array().unwrap().clone();
    let told = last
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == "call_no")
        .unwrap();
    assert!(
        told["content"].as_str().unwrap().contains("denied"),
        "{told}"
    );
}

#[test]
fn a_caller_that_will_not_answer_gets_calls_denied_without_a_question() {
    let asking = Asking::new();
    asking.model.push(echo_into("call_1", "made.txt"));
    asking.model.push(Completion::text("I was not allowed."));
    let mut conn = asking.daemon.connect();
    let seen = conn.run_turn(json!({"agent": "a", "conversation": "c",
        "input": "Make a file.", "approvals": false}));
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert!(seen.params("approval/request").is_empty());
    let events = result["events"].as_array().unwrap();
    assert_eq!(
        decisions(events),
        [
            json!({"call_id": "call_1", "tool": "shell", "approved": false, "decision": "deny", "by": "no_client"})
        ]
    );
    let denied = tool_result(events, "call_1");
    assert_eq!(denied["is_error"], true);
    assert!(
        denied["output"]["error"]
            .as_str()
            .unwrap()
            .starts_with("denied"),
        "{denied}"
    );
    assert!(!asking.workspace.join("made.txt").exists());
}

#[test]
fn answering_a_question_nobody_asked_is_not_found() {
    let asking = Asking::new();
    let mut conn = asking.daemon.connect();
    let nobody = json!({"turn": "0190c7d8-8f6e-7000-8000-000000000000", "call_id": "call_1", "approve": true});
    let error = conn.err("approval/respond", nobody);
    assert_eq!(error["code"], -32001, "{error}");
    assert_eq!(error["data"]["code"], "not_found");
    assert_eq!(error["data"]["what"], "approval");
    for bad in [
        json!({"turn": "not-an-id", "call_id": "call_1", "approve": true}),
        json!({"turn": "0190c7d8-8f6e-7000-8000-000000000000", "call_id": "call_1"}),
        json!({}),
    ] {
        assert_eq!(
            conn.err("approval/respond", bad.clone())["code"],
            -32602,
            "{bad}"
        );
    }

    // A turn waits on call_1: an answer about another call of it is not
    // taken for this one.
    asking.model.push(echo_into("call_1", "made.txt"));
    asking.model.push(Completion::text("Refused."));
    let mut runner = asking.daemon.connect();
    let id = runner.request("turn/run", turn("Make a file."));
    let mut read = runner.read_until(|m| m["method"] == "approval/request");
    let turn_id = read.last().unwrap()["params"]["turn"].clone();
    let error = conn.err(
        "approval/respond",
        json!({"turn": turn_id, "call_id": "call_2", "approve": true}),
    );
    assert_eq!(error["code"], -32001, "{error}");
    conn.ok(
        "approval/respond",
        json!({"turn": turn_id, "call_id": "call_1", "approve": false}),
    );
    read.extend(runner.read_until(|m| m.get("id") == Some(&id)));
    let seen = Seen::new(read, &id);
    assert_eq!(seen.result()["status"], "completed");
    assert!(!asking.workspace.join("made.txt").exists());
}

#[test]
fn a_turn_waiting_for_approval_is_cancelled_by_turn_cancel() {
    let asking = Asking::new();
    asking.model.push(echo_into("call_1", "made.txt"));
    let mut runner = asking.daemon.connect();
    let mut other = asking.daemon.connect();
    let id = runner.request("turn/run", turn("Make a file."));
    let mut read = runner.read_until(|m| m["method"] == "approval/request");
    let turn_id = read.last().unwrap()["params"]["turn"].clone();
    assert_eq!(other.ok("turn/cancel", json!({"turn": turn_id})), json!({}));
    read.extend(runner.read_until(|m| m.get("id") == Some(&id)));
    let seen = Seen::new(read, &id);
    let result = seen.result();
    assert_eq!(result["status"], "cancelled", "{result}");
    let events = result["events"].as_array().unwrap();
    let cancelled = tool_result(events, "call_1");
    assert_eq!(cancelled["is_error"], true);
    assert!(
        cancelled["output"]["error"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{cancelled}"
    );
    assert!(decisions(events).is_empty(), "no one decided: {events:?}");
    assert_eq!(of_kind(events, "turn_ended")[0]["status"], "cancelled");
    assert!(!asking.workspace.join("made.txt").exists());
    assert_eq!(asking.model.requests().len(), 1);

    // Nothing waits any more.
    let late = other.err(
        "approval/respond",
        json!({"turn": turn_id, "call_id": "call_1", "approve": true}),
    );
    assert_eq!(late["code"], -32001, "{late}");
    assert_eq!(
        other.err("turn/cancel", json!({"turn": turn_id}))["code"],
        -32001
    );
}

#[test]
fn a_caller_that_leaves_gets_its_waiting_call_denied_and_the_turn_goes_on() {
    let asking = Asking::new();
    asking.model.push(echo_into("call_1", "made.txt"));
    asking.model.push(Completion::text("No one approved it."));
    let mut watcher = asking.daemon.connect();
    let before = history_ids(&mut watcher, "a", "c");
    let watch = watcher.ok(
        "events/watch",
        json!({"agent": "a", "conversation": "c", "after": before.last().unwrap()}),
    )["watch"]
        .as_u64()
        .unwrap();

    let mut runner: Conn = asking.daemon.connect();
    runner.request("turn/run", turn("Make a file."));
    runner.read_until(|m| m["method"] == "approval/request");
    drop(runner);

    // The turn is the daemon's: it goes on without its caller, denying
    // what it can no longer ask about.
    let events = watched_until(&mut watcher, watch, |e| e["kind"] == "turn_ended");
    assert_eq!(of_kind(&events, "turn_ended")[0]["status"], "completed");
    assert_eq!(
        decisions(&events),
        [
            json!({"call_id": "call_1", "tool": "shell", "approved": false, "decision": "deny", "by": "no_client"})
        ]
    );
    assert!(!asking.workspace.join("made.txt").exists());
    assert_eq!(asking.model.requests().len(), 2);
}

/// A client watching the conversation (an editor showing it) is asked too,
/// with its watch's id, and its answer counts.
#[test]
fn a_watcher_is_asked_and_may_answer() {
    let asking = Asking::new();
    asking.model.push(echo_into("call_w", "watched.txt"));
    asking.model.push(Completion::text("Done."));
    let mut runner = asking.daemon.connect();
    let mut watcher = asking.daemon.connect();
    let watch = live_watch(&mut runner, &mut watcher);

    let id = runner.request("turn/run", turn("Write a file."));
    let from_watcher = loop {
        let notification = watcher.notification();
        assert_eq!(notification["params"]["watch"], watch, "{notification}");
        if notification["method"] == "approval/request" {
            break notification["params"].clone();
        }
    };
    assert_eq!(from_watcher["call_id"], "call_w");
    assert_eq!(from_watcher["tool"], "shell");
    assert!(!asking.workspace.join("watched.txt").exists());
    watcher.ok(
        "approval/respond",
        json!({"turn": from_watcher["turn"], "call_id": "call_w", "approve": true}),
    );
    let read = runner.read_until(|m| m.get("id") == Some(&id));
    let seen = Seen::new(read, &id);
    assert_eq!(seen.result()["status"], "completed", "{}", seen.result());
    // The runner was asked the same question, without a watch id.
    let asked = seen.params("approval/request");
    assert_eq!(asked.len(), 1);
    assert!(asked[0].get("watch").is_none(), "{}", asked[0]);
    assert_eq!(asked[0]["turn"], from_watcher["turn"]);
    assert!(asking.workspace.join("watched.txt").exists());
    assert_eq!(decisions(&seen.events())[0]["by"], "user");
}

/// Runs a turn on `runner`, answering each `approval/request` from
/// `answers` (by call id) with its decision; returns what was seen and the
/// call ids that were asked about.
fn run_answering(runner: &mut Conn, input: &str, answers: &[(&str, &str)]) -> (Seen, Vec<String>) {
    let id = runner.request("turn/run", turn(input));
    let mut read = Vec::new();
    let mut asked = Vec::new();
    loop {
        let message = runner.recv();
        if message.get("id") == Some(&id) {
            read.push(message);
            break;
        }
        if message["method"] == "approval/request" {
            let ask = message["params"].clone();
            let call_id = ask["call_id"].as_str().unwrap().to_string();
            let decision = answers
                .iter()
                .find(|(call, _)| *call == call_id)
                .unwrap_or_else(|| panic!("{call_id} was asked about"))
                .1;
            runner.ok(
                "approval/respond",
                json!({"turn": ask["turn"], "call_id": call_id, "decision": decision}),
            );
            asked.push(call_id);
        }
        read.push(message);
    }
    (Seen::new(read, &id), asked)
}

#[test]
fn allow_turn_lets_the_same_tool_run_for_the_rest_of_the_turn_only() {
    let asking = Asking::new();
    asking.model.push(echo_into("call_1", "one.txt"));
    asking.model.push(echo_into("call_2", "two.txt"));
    asking.model.push(Completion::text("Both."));
    asking.model.push(echo_into("call_3", "three.txt"));
    asking.model.push(Completion::text("Not this one."));
    let mut runner = asking.daemon.connect();

    let (seen, asked) = run_answering(&mut runner, "Two files.", &[("call_1", "allow_turn")]);
    assert_eq!(asked, ["call_1"]);
    let events = seen.result()["events"].as_array().unwrap().clone();
    assert_eq!(
        decisions(&events),
        [
            json!({"call_id": "call_1", "tool": "shell", "approved": true, "decision": "allow_turn", "by": "user"}),
            json!({"call_id": "call_2", "tool": "shell", "approved": true, "decision": "allow_once", "by": "permission"}),
        ]
    );
    assert!(asking.workspace.join("two.txt").exists());

    // The next turn asks again.
    let (seen, asked) = run_answering(&mut runner, "One more.", &[("call_3", "deny")]);
    assert_eq!(asked, ["call_3"]);
    assert_eq!(seen.result()["status"], "completed");
    assert!(!asking.workspace.join("three.txt").exists());
    let agent = runner.ok("agent/get", json!({"agent": "a"}));
    assert!(agent["config"].get("allow").is_none(), "{agent}");
}

#[test]
fn allow_always_is_a_standing_permission_until_revoked() {
    let asking = Asking::new();
    asking.model.push(echo_into("call_1", "one.txt"));
    asking.model.push(Completion::text("One."));
    asking.model.push(echo_into("call_2", "two.txt"));
    asking.model.push(Completion::text("Two."));
    asking.model.push(echo_into("call_3", "three.txt"));
    asking.model.push(Completion::text("Three."));
    let mut runner = asking.daemon.connect();

    let (_, asked) = run_answering(&mut runner, "One.", &[("call_1", "allow_always")]);
    assert_eq!(asked, ["call_1"]);
    let agent = runner.ok("agent/get", json!({"agent": "a"}));
    assert_eq!(agent["config"]["allow"], json!(["shell"]), "{agent}");

    // Another turn, on another connection: not asked.
    let mut other = asking.daemon.connect();
    let (seen, asked) = run_answering(&mut other, "Two.", &[]);
    assert!(asked.is_empty());
    let events = seen.result()["events"].as_array().unwrap().clone();
    assert_eq!(
        decisions(&events),
        [
            json!({"call_id": "call_2", "tool": "shell", "approved": true, "decision": "allow_once", "by": "permission"})
        ]
    );
    assert!(asking.workspace.join("two.txt").exists());

    // Revoking something it does not have is refused, and changes nothing.
    let error = other.err("agent/set", json!({"agent": "a", "revoke": ["write_file"]}));
    assert_eq!(error["code"], -32602, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("no standing permission for \"write_file\" (it has: shell)"),
        "{message}"
    );
    // Another change keeps it.
    let agent = other.ok(
        "agent/set",
        json!({"agent": "a", "instructions": "Be brief."}),
    );
    assert_eq!(agent["config"]["allow"], json!(["shell"]), "{agent}");
    let agent = other.ok("agent/set", json!({"agent": "a", "revoke": ["shell"]}));
    assert!(agent["config"].get("allow").is_none(), "{agent}");
    let (_, asked) = run_answering(&mut other, "Three.", &[("call_3", "deny")]);
    assert_eq!(asked, ["call_3"]);
    assert!(!asking.workspace.join("three.txt").exists());
}
