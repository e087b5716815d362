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

/// The texts of a Responses request's tool outputs.
fn tool_outputs(body: &Value) -> Vec<String> {
    body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(body["messages"].as_array().into_iter().flatten())
        .filter(|item| item["type"] == "function_call_output" || item["role"] == "tool")
        .map(|item| {
            item["output"]
                .as_str()
                .or(item["content"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The built-in executor and a TypeScript harness offer exo's own tools
/// over the history; a model that calls one gets its own history back,
/// recorded as any tool call is.
#[test]
fn an_agent_reads_its_own_history_through_exos_tools() {
    let builtin = Fixture::new(Wire::OpenAi, "deny");
    let typescript = crate::harness::typescript(
        Wire::OpenAiChat,
        "deny",
        "examples/typescript/basic-harness.ts",
    );
    for fixture in [builtin, typescript] {
        fixture.model.push(Completion::text("The answer is 42."));
        fixture.send_ok("work", "what is the answer?");
        std::fs::write(fixture.workspace.join("draft.txt"), "draft\n").unwrap();
        fixture.model.push(
            Completion::text("")
                .with_tool_call("call_h", "mcp__exo__events", json!({"kind": "message"}))
                .with_tool_call("call_d", "mcp__exo__snapshot_diff", json!({}))
                .with_tool_call("call_t", "mcp__exo__tree", json!({})),
        );
        fixture
            .model
            .push(Completion::text("You asked what the answer is."));
        let run = fixture.send_ok("work", "what did I ask before?");
        assert!(run.stdout.contains("You asked"), "{}", run.stdout);
        // Reads need no approval, even under a deny policy.
        let results = results(&fixture);
        for result in results.values() {
            assert_eq!(result["is_error"], false, "{result}");
        }
        // The files on disk against the latest snapshot (the turn's start,
        // which has draft.txt), while the turn runs: nothing changed.
        let diff = &results["call_d"]["output"];
        assert!(diff["from"].is_string(), "{diff}");
        assert_eq!(diff["changes"], json!([]), "{diff}");
        assert!(results["call_t"]["output"].is_object());
        let result = &results["call_h"];
        let texts: Vec<&str> = result["output"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|event| event["content"][0]["text"].as_str())
            .collect();
        assert_eq!(
            texts,
            [
                "what is the answer?",
                "The answer is 42.",
                "what did I ask before?"
            ]
        );
        // The model got that output.
        let outputs = tool_outputs(&fixture.request(2).body);
        assert_eq!(outputs.len(), 3, "{}", fixture.request(2).body);
        assert!(outputs[0].contains("The answer is 42."), "{}", outputs[0]);
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn server_script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp/server.mjs")
        .display()
        .to_string()
}

/// The secret the bound servers are given; it must appear nowhere else.
const DOCS_SECRET: &str = "docs-secret-7f3a9c1e55";

/// The tool results of the last turn, by call id.
fn results(fixture: &Fixture) -> std::collections::HashMap<String, Value> {
    fixture
        .last_turn("work")
        .into_iter()
        .filter(|event| event["kind"] == "tool_result")
        .map(|event| (event["call_id"].as_str().unwrap().to_owned(), event))
        .collect()
}

fn text_of_result(result: &Value) -> String {
    result["output"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A server exo starts (stdio) and one it calls (Streamable HTTP), both
/// written with the official SDK: their tools are offered as
/// `mcp__NAME__TOOL`, the secret reaches each server only (its
/// environment, its header), a result that echoes it is redacted, and
/// the secret is nowhere in the events, the model's requests or the store.
#[test]
fn bound_mcp_servers_get_their_secret_at_the_boundary_only() {
    if !sdk_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    fixture.ok(&["secret", "set", "docs-token", "--value", DOCS_SECRET]);
    let digest = sha256_hex(DOCS_SECRET);
    let script = server_script();
    fixture.ok(&[
        "binding",
        "mcp",
        "docs",
        "--secret",
        "docs-token",
        "--env",
        "DOCS_TOKEN",
        "--agent",
        "coder",
        "--",
        "node",
        &script,
        "stdio",
        &digest,
    ]);
    let mut http = std::process::Command::new("node")
        .args([&script, "http", &digest, "X-Docs-Key"])
        .env("NODE_PATH", "")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(http.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        serde_json::from_str::<Value>(&line).unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    fixture.ok(&[
        "binding",
        "mcp",
        "web",
        "--url",
        &url,
        "--secret",
        "docs-token",
        "--header",
        "X-Docs-Key",
    ]);
    let listed = fixture.ok(&["binding", "list", "--agent", "coder"]).stdout;
    assert!(
        listed.contains("secret=docs-token in $DOCS_TOKEN"),
        "{listed}"
    );

    fixture.model.push(
        Completion::text("")
            .with_tool_call("call_1", "mcp__docs__lookup", json!({"topic": "rust"}))
            .with_tool_call("call_2", "mcp__web__lookup", json!({"topic": "http"}))
            .with_tool_call("call_3", "mcp__docs__leak", json!({}))
            .with_tool_call("call_4", "mcp__web__leak", json!({}))
            .with_tool_call("call_5", "mcp__docs__remember", json!({"note": "hello"})),
    );
    fixture.model.push(Completion::text("Done."));
    fixture.send_ok("work", "look things up");
    let _ = http.kill();
    let _ = http.wait();

    let offered = crate::agent::tool_names(Wire::OpenAi, &fixture.request(0).body);
    // The description that held the secret is offered without it.
    assert!(fixture
        .request(0)
        .body
        .to_string()
        .contains("the token is [redacted]"));
    for name in [
        "mcp__docs__lookup",
        "mcp__docs__remember",
        "mcp__web__lookup",
        "mcp__web__leak",
    ] {
        assert!(offered.iter().any(|o| o == name), "{offered:?}");
    }
    let results = results(&fixture);
    assert_eq!(
        text_of_result(&results["call_1"]),
        "docs about rust; authorized: yes"
    );
    assert_eq!(
        text_of_result(&results["call_2"]),
        "docs about http; authorized: yes"
    );
    assert_eq!(
        text_of_result(&results["call_3"]),
        "the secret is [redacted]"
    );
    assert_eq!(
        text_of_result(&results["call_4"]),
        "the secret is [redacted]"
    );
    // A started server runs in the conversation's executor directory,
    // never in the workspace the agent's commands can write.
    assert_eq!(text_of_result(&results["call_5"]), "remembered");
    assert!(!fixture.workspace.join("notes.txt").exists());
    let conversation = fixture.json(&["conversation", "show", "coder", "work"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(
            fixture
                .root
                .join("executors")
                .join(conversation)
                .join("mcp/notes.txt")
        )
        .unwrap(),
        "hello\n"
    );

    let events = serde_json::to_string(&fixture.events("work")).unwrap();
    assert!(!events.contains(DOCS_SECRET), "the secret is in the events");
    for n in 0..2 {
        let body = fixture.request(n).body.to_string();
        assert!(!body.contains(DOCS_SECRET), "the secret reached the model");
    }
    let store = fixture.root_bytes();
    assert!(
        !store
            .windows(DOCS_SECRET.len())
            .any(|w| w == DOCS_SECRET.as_bytes()),
        "the secret is in the store in plaintext"
    );
}

/// A bound server that cannot start is an `error` event and the turn goes
/// on without its tools; a deny policy refuses a server's tools that may
/// change things, but not its reads.
#[test]
fn a_broken_server_is_reported_and_a_deny_policy_holds() {
    if !sdk_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAi, "deny");
    let script = server_script();
    let digest = sha256_hex("");
    fixture.ok(&[
        "binding", "mcp", "docs", "--", "node", &script, "stdio", &digest,
    ]);
    fixture.ok(&["binding", "mcp", "gone", "--", "/nonexistent/mcp-server"]);
    fixture.model.push(
        Completion::text("")
            .with_tool_call("call_1", "mcp__docs__lookup", json!({"topic": "x"}))
            .with_tool_call("call_2", "mcp__docs__remember", json!({"note": "no"}))
            .with_tool_call("call_3", "mcp__gone__anything", json!({})),
    );
    fixture.model.push(Completion::text("Done."));
    fixture.send_ok("work", "try");
    let turn = fixture.last_turn("work");
    let errors: Vec<&Value> = turn
        .iter()
        .filter(|event| event["kind"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["code"], "mcp_server");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot start MCP server gone"),
        "{}",
        errors[0]
    );
    let results = results(&fixture);
    assert_eq!(
        text_of_result(&results["call_1"]),
        "docs about x; authorized: yes"
    );
    assert_eq!(results["call_2"]["is_error"], true);
    assert!(results["call_2"]["output"]["error"]
        .as_str()
        .unwrap()
        .contains("refuses MCP tools"));
    assert!(!fixture.workspace.join("notes.txt").exists());
    assert_eq!(results["call_3"]["is_error"], true);
}
