//! `exo mcp`: one conversation's history served over MCP, driven by the
//! official MCP SDK's client (`@modelcontextprotocol/sdk`,
//! tests/mcp/client.mjs) against the real binary.

use std::path::PathBuf;

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{Fixture, API_KEY, API_KEY_VAR};

fn sdk_ready() -> bool {
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp/node_modules/@modelcontextprotocol/sdk")
        .is_dir();
    if !installed {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "the MCP SDK is not installed: run scripts/setup-node"
        );
        eprintln!("skipped: the MCP SDK is not installed (scripts/setup-node installs it)");
    }
    installed
}

/// Runs the steps against `exo mcp SERVER_ARGS`; their outcomes.
fn client(fixture: &Fixture, steps: Value, server_args: &[&str]) -> Vec<Value> {
    let output = std::process::Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.mjs"))
        .arg(env!("CARGO_BIN_EXE_exo"))
        .arg(&fixture.root)
        .arg(steps.to_string())
        .arg("--")
        .args(server_args)
        .env(API_KEY_VAR, API_KEY)
        .env("HOME", fixture.env.dir())
        .env("XDG_CONFIG_HOME", fixture.env.config_dir())
        .env_remove("EXO_ROOT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains(API_KEY));
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap();
    let value: Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["server"]["name"], "exo");
    value["outcomes"].as_array().unwrap().clone()
}

/// A tool's structured result.
fn structured(outcome: &Value) -> &Value {
    assert_eq!(outcome["result"]["isError"], false, "{outcome}");
    &outcome["result"]["structuredContent"]["result"]
}

fn tool_names(outcome: &Value) -> Vec<String> {
    outcome["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_mcp_client_reads_this_conversation_and_nothing_else() {
    if !sdk_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    fixture.model.push(Completion::text("The answer is 42."));
    fixture.send_ok("work", "what is the answer?");
    fixture.ok(&[
        "conversation",
        "create",
        "coder",
        "Other",
        "--slug",
        "other",
    ]);
    let other_event = fixture.events("other")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = fixture.env.run_with(
        &fixture.args(&["artifact", "put", "coder", "work", "notes/plan.md", "-"]),
        b"step one",
        &[],
    );
    assert_eq!(put.code, 0, "{}", put.stderr);
    let session = ["--agent", "coder", "--conversation", "work"];

    let outcomes = client(
        &fixture,
        json!([
            {"list": "tools"},
            {"tool": "events", "arguments": {"kind": "message"}},
            {"tool": "events", "arguments": {"search": "ANSWER IS", "limit": 5}},
            {"tool": "artifact", "arguments": {"path": "notes/plan.md"}},
            {"tool": "artifacts"},
            {"tool": "snapshots"},
            {"tool": "tree"},
            {"tool": "event", "arguments": {"id": other_event}},
            {"tool": "events", "arguments": {"conversation": "other", "agent": "coder"}},
            {"tool": "put_artifact", "arguments": {"path": "x.md", "content": "no"}},
            {"tool": "no_such_tool"},
            {"list": "resources"},
            {"read": "exo://artifact/notes/plan.md"},
        ]),
        &session,
    );
    let tools = tool_names(&outcomes[0]);
    assert_eq!(
        tools,
        [
            "events",
            "event",
            "artifacts",
            "artifact",
            "snapshots",
            "snapshot_diff",
            "tree"
        ]
    );
    let messages = structured(&outcomes[1])["events"].as_array().unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .map(|event| event["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["what is the answer?", "The answer is 42."]);
    let found = structured(&outcomes[2])["events"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["role"], "assistant");
    assert_eq!(structured(&outcomes[3])["text"], "step one");
    assert!(structured(&outcomes[4])
        .to_string()
        .contains("notes/plan.md"));
    assert!(!structured(&outcomes[5])["snapshots"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(structured(&outcomes[6]).is_object());
    // Another conversation's event is not found from here, and naming
    // another conversation changes nothing.
    assert_eq!(outcomes[7]["result"]["isError"], true, "{}", outcomes[7]);
    let work = fixture.events("work");
    let listed = structured(&outcomes[8])["events"].as_array().unwrap();
    assert_eq!(listed.len(), work.len().min(100));
    assert!(listed
        .iter()
        .all(|event| event["conversation"] == work[0]["conversation"]));
    // No writing without --allow-write; an unknown tool is an error result.
    assert_eq!(outcomes[9]["result"]["isError"], true);
    assert!(outcomes[9]["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("--allow-write"));
    assert_eq!(outcomes[10]["result"]["isError"], true);
    let resources = outcomes[11]["result"]["resources"].to_string();
    assert!(
        resources.contains("exo://conversation")
            && resources.contains("exo://artifact/notes/plan.md")
    );
    assert_eq!(outcomes[12]["result"]["contents"][0]["text"], "step one");

    // With --allow-write, an artifact is written into this conversation.
    let outcomes = client(
        &fixture,
        json!([
            {"list": "tools"},
            {"tool": "put_artifact", "arguments": {"path": "notes/agent.md", "content": "from the agent"}},
        ]),
        &[
            "--agent",
            "coder",
            "--conversation",
            "work",
            "--allow-write",
        ],
    );
    assert!(tool_names(&outcomes[0]).contains(&"put_artifact".to_owned()));
    structured(&outcomes[1]);
    let got = fixture.ok(&["artifact", "get", "coder", "work", "notes/agent.md"]);
    assert_eq!(got.stdout, "from the agent");
}

#[test]
fn exo_mcp_refuses_an_unknown_conversation_or_half_a_scope() {
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let run = fixture.run(&["mcp", "--agent", "coder", "--conversation", "nope"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);
    let run = fixture.run(&["mcp", "--agent", "coder"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn a_malformed_message_is_answered_and_the_server_goes_on() {
    use std::io::{BufRead, BufReader, Write};
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let mut child = fixture
        .env
        .command(&fixture.args(&["mcp", "--agent", "coder", "--conversation", "work"]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut read = || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    };
    writeln!(stdin, "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":").unwrap();
    assert_eq!(read()["error"]["code"], -32700);
    writeln!(
        stdin,
        "{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"no/such\"}}"
    )
    .unwrap();
    assert_eq!(read()["error"]["code"], -32601);
    writeln!(
        stdin,
        "{{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{{\"name\":\"event\",\"arguments\":{{\"id\":\"not-an-id\"}}}}}}"
    )
    .unwrap();
    assert_eq!(read()["result"]["isError"], true);
    writeln!(
        stdin,
        "{{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"t\",\"version\":\"0\"}}}}}}"
    )
    .unwrap();
    let init = read();
    assert_eq!(init["id"], 4);
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
