//! `exo acp`: exo as an ACP agent, driven by the official ACP SDK
//! (`@agentclientprotocol/sdk`, tests/acp/client.mjs) as the editor, one
//! step per client run, against the fake model.

use std::path::PathBuf;

use exo_fake_model::{Answer, Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{of_kind, transcript, Fixture, API_KEY, API_KEY_VAR};

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/acp/client.mjs")
}

/// The SDK's client, or `None` when its dependencies are not installed
/// (scripts/setup-node installs them; scripts/test requires them).
fn sdk_ready() -> bool {
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/acp/node_modules/@agentclientprotocol/sdk")
        .is_dir();
    if !installed {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "the ACP SDK is not installed: run scripts/setup-node"
        );
        eprintln!("skipped: the ACP SDK is not installed (scripts/setup-node installs it)");
    }
    installed
}

/// One step of the editor: `node client.mjs EXO ROOT STEP ARGS...`.
fn step(fixture: &Fixture, args: &[&str]) -> Value {
    let output = std::process::Command::new("node")
        .arg(client_script())
        .arg(env!("CARGO_BIN_EXE_exo"))
        .arg(&fixture.root)
        .args(args)
        .env(API_KEY_VAR, API_KEY)
        .env("HOME", fixture.env.dir())
        .env("XDG_CONFIG_HOME", fixture.env.config_dir())
        .env_remove("EXO_ROOT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client {args:?} failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains(API_KEY));
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("no result from {args:?}: {stdout}"));
    serde_json::from_str(line).unwrap()
}

fn kinds(updates: &Value) -> Vec<String> {
    updates
        .as_array()
        .unwrap()
        .iter()
        .map(|update| update["sessionUpdate"].as_str().unwrap().to_owned())
        .collect()
}

/// The text of the updates of one kind, joined.
fn text(updates: &Value, kind: &str) -> String {
    updates
        .as_array()
        .unwrap()
        .iter()
        .filter(|update| update["sessionUpdate"] == kind)
        .filter_map(|update| update["content"]["text"].as_str())
        .collect()
}

fn write_call(path: &str) -> Completion {
    Completion::text("Writing it.").with_tool_call(
        "call_1",
        "write_file",
        json!({"path": path, "content": "hello\n"}),
    )
}

#[test]
fn an_editor_runs_a_session_through_exo_acp() {
    if !sdk_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAi, "ask");
    let workspace = fixture.workspace.to_str().unwrap().to_owned();
    let new = step(&fixture, &["new", &workspace]);
    let session = new["result"]["sessionId"].as_str().unwrap().to_owned();

    // A prompt: text streams, the write asks permission, the file is written.
    fixture.model.push(write_call("a.txt"));
    fixture.model.push(Completion::deltas(["All ", "done."]));
    let prompt = step(&fixture, &["prompt", &session, "make a.txt", "allow_once"]);
    assert_eq!(prompt["result"]["stopReason"], "end_turn", "{prompt}");
    let updates = &prompt["updates"];
    assert!(text(updates, "agent_message_chunk").contains("All done."));
    let seen = kinds(updates);
    assert!(
        seen.contains(&"tool_call".to_owned()) && seen.contains(&"tool_call_update".to_owned()),
        "{seen:?}"
    );
    // The call shows its diff and where, with the path made absolute.
    let call = updates
        .as_array()
        .unwrap()
        .iter()
        .find(|update| update["sessionUpdate"] == "tool_call")
        .unwrap();
    let a_txt = fixture.workspace.join("a.txt").display().to_string();
    assert_eq!(
        call["content"],
        json!([{"type": "diff", "path": a_txt, "oldText": null, "newText": "hello\n"}]),
        "{call}"
    );
    assert_eq!(call["locations"], json!([{"path": a_txt}]));
    assert_eq!(prompt["permissions"].as_array().unwrap().len(), 1);
    assert_eq!(prompt["permissions"][0]["toolCall"]["toolCallId"], "call_1");
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("a.txt")).unwrap(),
        "hello\n"
    );
    let end_of_first = fixture.events(&session).last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Rejected: nothing written, the call fails.
    fixture.model.push(write_call("b.txt"));
    fixture.model.push(Completion::text("Fine, I won't."));
    let rejected = step(&fixture, &["prompt", &session, "make b.txt", "reject_once"]);
    assert_eq!(rejected["result"]["stopReason"], "end_turn");
    assert!(!fixture.workspace.join("b.txt").exists());
    let failed = rejected["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|update| update["sessionUpdate"] == "tool_call_update")
        .unwrap();
    assert_eq!(failed["status"], "failed");

    // The session is an exo conversation: the CLI sees both turns.
    let events = fixture.events(&session);
    assert_eq!(of_kind(&events, "turn_ended").len(), 2);

    // Loaded by another editor process: the replay is the history.
    let load = step(&fixture, &["load", &session, &workspace]);
    assert_eq!(load["result"], json!({}));
    let replay = &load["updates"];
    assert_eq!(text(replay, "user_message_chunk"), "make a.txtmake b.txt");
    assert_eq!(
        text(replay, "agent_message_chunk"),
        "Writing it.All done.Writing it.Fine, I won't."
    );
    assert_eq!(
        kinds(replay)
            .iter()
            .filter(|kind| *kind == "tool_call")
            .count(),
        2
    );
    let replayed_call = replay
        .as_array()
        .unwrap()
        .iter()
        .find(|update| update["sessionUpdate"] == "tool_call")
        .unwrap();
    assert_eq!(replayed_call["content"], call["content"]);

    // Listed, and resumed.
    let list = step(&fixture, &["list", &workspace]);
    let sessions = list["result"]["sessions"].as_array().unwrap();
    assert!(sessions
        .iter()
        .any(|s| s["sessionId"] == session.as_str() && s["cwd"] == workspace.as_str()));
    assert_eq!(
        step(&fixture, &["resume", &session, &workspace])["result"],
        json!({})
    );

    // Rewound to the end of the first turn, with its files: b.txt was
    // never written, a.txt stays; the next prompt's history is the first
    // turn's.
    let rewind = step(&fixture, &["rewind", &session, &end_of_first]);
    assert!(rewind["error"].is_null(), "{rewind}");
    fixture.model.push(Completion::text("Back again."));
    let again = step(
        &fixture,
        &["prompt", &session, "after the rewind", "allow_once"],
    );
    assert_eq!(again["result"]["stopReason"], "end_turn");
    let last = fixture.model.requests().last().unwrap().body.clone();
    let lines = transcript(Wire::OpenAi, &last);
    assert!(lines.contains(&"user: make a.txt".to_owned()), "{lines:?}");
    assert!(!lines.contains(&"user: make b.txt".to_owned()), "{lines:?}");
    assert!(
        lines.contains(&"user: after the rewind".to_owned()),
        "{lines:?}"
    );

    // Forked at the end of the first turn: a new session with that history.
    let fork = step(&fixture, &["fork", &session, &end_of_first]);
    let forked = fork["result"]["sessionId"].as_str().unwrap().to_owned();
    assert_ne!(forked, session);
    fixture.model.push(Completion::text("In the fork."));
    let in_fork = step(&fixture, &["prompt", &forked, "in the fork", "allow_once"]);
    assert_eq!(in_fork["result"]["stopReason"], "end_turn");
    let last = fixture.model.requests().last().unwrap().body.clone();
    let lines = transcript(Wire::OpenAi, &last);
    assert!(lines.contains(&"user: make a.txt".to_owned()), "{lines:?}");
    assert!(
        !lines.contains(&"user: after the rewind".to_owned()),
        "{lines:?}"
    );
}

#[test]
fn a_cancelled_prompt_stops_with_cancelled_and_bad_input_is_refused() {
    if !sdk_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let workspace = fixture.workspace.to_str().unwrap().to_owned();
    let session = step(&fixture, &["new", &workspace])["result"]["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    fixture.model.push(Answer::opening("thinking out loud"));
    let cancelled = step(&fixture, &["cancel", &session, "never ends"]);
    assert_eq!(
        cancelled["result"]["stopReason"], "cancelled",
        "{cancelled}"
    );
    assert_eq!(
        fixture.last_turn(&session).last().unwrap()["status"],
        "cancelled"
    );

    // An unknown session, a relative cwd: errors, and the agent goes on.
    let unknown = step(
        &fixture,
        &["prompt", "01a244d8-0000-7000-8000-000000000000", "hi"],
    );
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no session"),
        "{unknown}"
    );
    let relative = step(&fixture, &["new", "relative/dir"]);
    assert_eq!(relative["error"]["code"], -32602, "{relative}");
    // A malformed line first: answered, and the agent still serves.
    let raw = step(
        &fixture,
        &["raw", "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":"],
    );
    assert_eq!(raw["result"]["protocolVersion"], 1, "{raw}");
    // Nothing was recorded by the refusals: one turn, the cancelled one.
    assert_eq!(of_kind(&fixture.events(&session), "turn_started").len(), 1);
}

#[test]
fn an_editor_that_vanishes_mid_permission_leaves_a_denied_call_and_a_usable_session() {
    if !sdk_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAi, "ask");
    let workspace = fixture.workspace.to_str().unwrap().to_owned();
    let session = step(&fixture, &["new", &workspace])["result"]["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    fixture.model.push(write_call("gone.txt"));
    fixture.model.push(Completion::text("Nobody answered."));
    let vanished = step(&fixture, &["vanish", &session, "make gone.txt"]);
    assert_eq!(vanished["vanished"], true, "{vanished}");
    // exo finishes the turn without its editor: the write was denied.
    let deadline = std::time::Instant::now() + crate::agent::TIMEOUT;
    while crate::agent::of_kind(&fixture.events(&session), "turn_ended").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the turn never ended");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!fixture.workspace.join("gone.txt").exists());
    let approvals: Vec<Value> = fixture
        .events(&session)
        .into_iter()
        .filter(|event| event["type"] == "exo.approval")
        .collect();
    assert_eq!(approvals[0]["payload"]["approved"], false, "{approvals:?}");
    // The session goes on in another editor.
    fixture.model.push(Completion::text("Here again."));
    let again = step(&fixture, &["prompt", &session, "hello again", "allow_once"]);
    assert_eq!(again["result"]["stopReason"], "end_turn", "{again}");
}
