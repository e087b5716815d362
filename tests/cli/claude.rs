//! `--harness claude-code`: the real Claude Code CLI (`claude -p` with
//! stream-json, the version pinned in scripts/setup-agents) driven by exo
//! against the fake model behind exo's gateway. What the model received is
//! read at the fake server, so each test checks the agent's memory where it
//! matters: in the requests. These tests double as the contract check of a
//! newer Claude Code.
//!
//! Without the CLI (EXO_CLAUDE_BIN unset and no `claude` on PATH) each test
//! says it is skipped, unless EXO_REQUIRE_AGENTS=1 (scripts/test), where
//! that is a failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use exo_fake_model::{Answer, Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{kinds, of_kind, Fixture, API_KEY, API_KEY_VAR, TIMEOUT};

/// The Claude Code CLI, or `None` (after saying the test is skipped).
fn claude() -> Option<PathBuf> {
    let named = std::env::var_os("EXO_CLAUDE_BIN").map(PathBuf::from);
    let found = named.or_else(|| crate::export::find_in_path("claude"));
    if found.is_none() {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "the claude CLI is required (EXO_REQUIRE_AGENTS=1) but EXO_CLAUDE_BIN is unset and no claude is on PATH: run scripts/setup-agents"
        );
        eprintln!("skipped: the claude CLI is not installed (scripts/setup-agents installs it)");
    }
    found
}

/// A fixture whose agent runs on Claude Code, with this approval policy.
fn fixture(approval: &str) -> Option<Fixture> {
    claude()?;
    let fixture = Fixture::new(Wire::Anthropic, approval);
    fixture.ok(&["agent", "set", "coder", "--harness", "claude-code"]);
    Some(fixture)
}

/// The conversation in a request Claude Code sent: its own reminders and
/// system messages left out. One line per block: `user: TEXT`,
/// `assistant: TEXT`, `call ID NAME`, `result ID`.
fn conversation_in(body: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for message in body["messages"].as_array().unwrap() {
        let role = message["role"].as_str().unwrap();
        if role == "system" {
            continue;
        }
        let blocks = match &message["content"] {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(blocks) => blocks.clone(),
            other => panic!("odd content {other}"),
        };
        for block in blocks {
            match block["type"].as_str().unwrap() {
                "text" => {
                    let text = block["text"].as_str().unwrap();
                    if !text.starts_with("<system-reminder>") {
                        lines.push(format!("{role}: {text}"));
                    }
                }
                "tool_use" => lines.push(format!(
                    "call {} {}",
                    block["id"].as_str().unwrap(),
                    block["name"].as_str().unwrap()
                )),
                "tool_result" => {
                    lines.push(format!("result {}", block["tool_use_id"].as_str().unwrap()))
                }
                _ => {}
            }
        }
    }
    lines
}

/// A Bash call as Claude's model makes it.
fn bash(call_id: &str, command: &str) -> Completion {
    Completion::text("").with_tool_call(call_id, "Bash", json!({"command": command}))
}

fn id_of(event: &Value) -> String {
    event["id"].as_str().unwrap().to_owned()
}

/// The gateway found every request's history to be the log's.
fn assert_history_checked(fixture: &Fixture, conversation: &str) {
    let events = fixture.events(conversation);
    let mismatches: Vec<&Value> = of_kind(&events, "error")
        .into_iter()
        .filter(|event| event["code"] == "history_mismatch")
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// The requests that were model turns (Claude Code may make other calls).
fn turns_of(fixture: &Fixture) -> Vec<Value> {
    fixture
        .model
        .requests()
        .into_iter()
        .filter(|request| request.body["stream"] == true)
        .map(|request| request.body)
        .collect()
}

#[test]
fn a_claude_turn_runs_its_tools_records_every_entry_and_never_holds_the_key() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(bash(
        "toolu_1",
        "printf hello > made.txt; env; ls -a \"$CLAUDE_CONFIG_DIR\"",
    ));
    fixture
        .model
        .push(Completion::deltas(["Made ", "the file."]));
    let run = fixture.send_ok("work", "make a file");
    assert!(run.stdout.contains("Made the file."), "{}", run.stdout);
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("made.txt")).unwrap(),
        "hello"
    );

    let turn = fixture.last_turn("work");
    let kinds = kinds(&turn);
    let call = of_kind(&turn, "tool_call")[0];
    assert_eq!(call["name"], "Bash");
    assert_eq!(call["call_id"], "toolu_1");
    let result = of_kind(&turn, "tool_result")[0];
    let output = result["output"].as_str().unwrap();
    assert!(
        output.contains("ANTHROPIC_BASE_URL=http://127.0.0.1"),
        "{output}"
    );
    assert!(
        !output.contains(API_KEY) && !output.contains(API_KEY_VAR),
        "{output}"
    );
    let customs: Vec<&str> = of_kind(&turn, "custom")
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    for wanted in [
        "claude.session",
        "claude.entry",
        "claude.result",
        "exo.approval",
    ] {
        assert!(customs.contains(&wanted), "no {wanted} in {customs:?}");
    }
    let exchanges = customs
        .iter()
        .filter(|kind| **kind == "exo.gateway.exchange")
        .count();
    assert!(exchanges >= 2, "{customs:?}");
    // Entries carry their transcript uuid.
    let entry = of_kind(&turn, "custom")
        .into_iter()
        .find(|event| event["type"] == "claude.entry" && event["payload"]["entry_type"] == "user")
        .expect("the tool result's entry");
    assert!(entry["payload"]["uuid"].is_string());
    assert!(entry["payload"]["session"].is_string());
    let position = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    assert!(position("tool_call") < position("tool_result"));
    let answer = turn
        .iter()
        .rposition(|event| event["kind"] == "message")
        .unwrap();
    assert_eq!(turn[answer]["content"][0]["text"], "Made the file.");
    assert!(turn[answer]["usage"]["output_tokens"].is_u64());
    assert!(position("tool_result") < answer);
    assert_eq!(turn.last().unwrap()["status"], "completed");

    for request in fixture.model.requests() {
        assert_eq!(request.header("x-api-key"), API_KEY);
    }
    let turns = turns_of(&fixture);
    assert_eq!(
        conversation_in(&turns[1]),
        ["user: make a file", "call toolu_1 Bash", "result toolu_1"]
    );
    assert!(!String::from_utf8_lossy(&fixture.root_bytes()).contains(API_KEY));
    assert_history_checked(&fixture, "work");
}

#[test]
fn memory_follows_the_log_through_rewind_fork_and_swaps_of_executors() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(bash("t1", "printf one > one.txt"));
    fixture.model.push(Completion::text("first answer"));
    fixture.send_ok("work", "first question");
    let end_of_first = id_of(fixture.events("work").last().unwrap());
    fixture.model.push(bash("t2", "printf two > two.txt"));
    fixture.model.push(Completion::text("second answer"));
    fixture.send_ok("work", "second question");
    assert!(fixture.workspace.join("two.txt").exists());
    assert_eq!(
        conversation_in(turns_of(&fixture).last().unwrap()),
        [
            "user: first question",
            "call t1 Bash",
            "result t1",
            "assistant: first answer",
            "user: second question",
            "call t2 Bash",
            "result t2",
        ]
    );

    fixture.ok(&[
        "conversation",
        "rewind",
        "coder",
        "work",
        "--at",
        &end_of_first,
    ]);
    assert!(!fixture.workspace.join("two.txt").exists());
    fixture.model.push(Completion::text("third answer"));
    fixture.send_ok("work", "third question");
    assert_eq!(
        conversation_in(turns_of(&fixture).last().unwrap()),
        [
            "user: first question",
            "call t1 Bash",
            "result t1",
            "assistant: first answer",
            "user: third question",
        ]
    );

    let forked_dir = fixture.env.dir().join("forked");
    fixture.ok(&[
        "conversation",
        "fork",
        "coder",
        "work",
        "Fork",
        "--slug",
        "fork",
        "--at",
        &end_of_first,
        "--workspace",
        forked_dir.to_str().unwrap(),
    ]);
    fixture.model.push(Completion::text("fork answer"));
    fixture.send_ok("fork", "fork question");
    assert_eq!(
        conversation_in(turns_of(&fixture).last().unwrap()),
        [
            "user: first question",
            "call t1 Bash",
            "result t1",
            "assistant: first answer",
            "user: fork question",
        ]
    );
    assert!(forked_dir.join("one.txt").exists());

    // Swapped to the built-in executor and back.
    fixture.ok(&["agent", "set", "coder", "--harness", "builtin"]);
    fixture.model.push(Completion::text("builtin answer"));
    fixture.send_ok("work", "builtin question");
    fixture.ok(&["agent", "set", "coder", "--harness", "claude-code"]);
    fixture.model.push(Completion::text("claude again"));
    fixture.send_ok("work", "back on claude");
    assert_eq!(
        conversation_in(turns_of(&fixture).last().unwrap()),
        [
            "user: first question",
            "call t1 Bash",
            "result t1",
            "assistant: first answer",
            "user: third question",
            "assistant: third answer",
            "user: builtin question",
            "assistant: builtin answer",
            "user: back on claude",
        ]
    );
    assert_history_checked(&fixture, "work");
    assert_history_checked(&fixture, "fork");
}

/// The pids of `claude` processes whose environment names `root`.
fn claude_processes(root: &std::path::Path) -> Vec<i32> {
    let root = root.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        if environ.contains("CLAUDE_CONFIG_DIR=") && environ.contains(&root) {
            pids.push(pid);
        }
    }
    pids
}

/// Reads `child`'s stdout until `text` has appeared.
fn read_until(child: &mut std::process::Child, text: &str) {
    use std::io::Read;
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(text) {
        seen.extend(rx.recv_timeout(TIMEOUT).expect("the streamed text"));
    }
}

fn send_in_background(fixture: &Fixture, prompt: &str) -> std::process::Child {
    fixture
        .env
        .command(&fixture.args(&["conversation", "send", "coder", "work", prompt]))
        .env(API_KEY_VAR, API_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn claude_killed_mid_stream_leaves_the_turn_interrupted_and_the_next_turn_remembers() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(Answer::opening("I was saying"));
    let mut send = send_in_background(&fixture, "never ends");
    read_until(&mut send, "I was saying");
    for pid in claude_processes(&fixture.root) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    let output = send.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(
        fixture.last_turn("work").last().unwrap()["status"],
        "interrupted"
    );

    fixture.model.push(Completion::text("picking up"));
    fixture.send_ok("work", "where were we?");
    assert_eq!(
        conversation_in(turns_of(&fixture).last().unwrap()),
        [
            "user: never ends",
            "assistant: I was saying",
            "user: where were we?"
        ]
    );
    assert_history_checked(&fixture, "work");
}

#[test]
fn a_turn_cancelled_through_the_daemon_interrupts_claude_and_keeps_what_streamed() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    let daemon = fixture.daemon();
    fixture.model.push(Answer::opening("partial words"));
    let mut send = send_in_background(&fixture, "long job");
    read_until(&mut send, "partial words");
    fixture.ok(&["turn", "cancel", "coder", "work"]);
    let status = send.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let turn = fixture.last_turn("work");
    assert_eq!(turn.last().unwrap()["status"], "cancelled");
    let answer = of_kind(&turn, "message")
        .into_iter()
        .find(|event| event["role"] == "assistant")
        .expect("the partial answer");
    assert_eq!(answer["content"][0]["text"], "partial words");
    let deadline = Instant::now() + TIMEOUT;
    while !claude_processes(&fixture.root).is_empty() {
        assert!(Instant::now() < deadline, "claude outlived its turn");
        std::thread::sleep(Duration::from_millis(20));
    }
    fixture.stop(daemon);
}

#[test]
fn a_denied_command_does_not_run_and_the_model_is_told() {
    let Some(fixture) = fixture("deny") else {
        return;
    };
    fixture.model.push(bash("t1", "printf no > denied.txt"));
    fixture.model.push(Completion::text("understood"));
    fixture.send_ok("work", "try it");
    assert!(!fixture.workspace.join("denied.txt").exists());
    let turn = fixture.last_turn("work");
    let approval = of_kind(&turn, "custom")
        .into_iter()
        .find(|event| event["type"] == "exo.approval")
        .expect("an approval");
    assert_eq!(approval["payload"]["approved"], false);
    assert_eq!(approval["payload"]["tool"], "shell");
    let result = of_kind(&turn, "tool_result")[0];
    assert_eq!(result["is_error"], true);
}

#[test]
fn a_claude_agent_without_an_anthropic_model_or_workspace_is_refused_before_the_turn() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.ok(&["conversation", "create", "coder", "Bare", "--slug", "bare"]);
    let error = fixture.send("bare", "hello", &[]);
    assert_eq!(error.code, 1, "{}", error.stderr);
    assert!(
        error.stderr.contains("needs a workspace"),
        "{}",
        error.stderr
    );
    assert!(of_kind(&fixture.events("bare"), "turn_started").is_empty());
    assert_eq!(fixture.model.requests().len(), 0);
}

#[test]
fn one_conversation_goes_from_codex_to_claude_code_and_back_with_its_whole_history() {
    let Some(_) = claude() else { return };
    if std::env::var_os("EXO_CODEX_BIN").is_none() && crate::export::find_in_path("codex").is_none()
    {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "the codex CLI is required (EXO_REQUIRE_AGENTS=1)"
        );
        eprintln!("skipped: the codex CLI is not installed (scripts/setup-agents installs it)");
        return;
    }
    // The agent starts on Codex against an OpenAI-wire model...
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    fixture.ok(&["agent", "set", "coder", "--harness", "codex"]);
    let anthropic = exo_fake_model::FakeModel::start(Wire::Anthropic);
    fixture.ok(&[
        "model",
        "register",
        "claude-model",
        "--provider",
        "anthropic",
        "--base-url",
        &anthropic.base_url(),
        "--upstream",
        "fake-claude",
        "--secret",
        "provider-key",
    ]);
    fixture.model.push(Completion::text("").with_tool_call(
        "c1",
        "exec_command",
        json!({"cmd": "printf 1 > a"}),
    ));
    fixture.model.push(Completion::text("codex did it"));
    fixture.send_ok("work", "on codex");
    // ... then on Claude Code, which sees Codex's call as a structured
    // tool use, and its files.
    fixture.ok(&[
        "agent",
        "set",
        "coder",
        "--harness",
        "claude-code",
        "--model",
        "claude-model",
    ]);
    anthropic.push(bash("t1", "cat a"));
    anthropic.push(Completion::text("claude read it"));
    fixture.send_ok("work", "on claude");
    let claude_turn: Vec<Value> = anthropic
        .requests()
        .into_iter()
        .filter(|request| request.body["stream"] == true)
        .map(|request| request.body)
        .collect();
    assert_eq!(
        conversation_in(&claude_turn[0]),
        [
            "user: on codex",
            "call c1 exec_command",
            "result c1",
            "assistant: codex did it",
            "user: on claude",
        ]
    );
    let turn = fixture.last_turn("work");
    let result = of_kind(&turn, "tool_result")[0];
    assert_eq!(result["output"], "1");
    // ... and the CLIs' own files are a cache: deleted, nothing is lost.
    std::fs::remove_dir_all(fixture.root.join("executors")).unwrap();
    fixture.ok(&[
        "agent",
        "set",
        "coder",
        "--harness",
        "codex",
        "--model",
        "m",
    ]);
    fixture.model.push(Completion::text("codex again"));
    fixture.send_ok("work", "back on codex");
    let last = fixture.model.requests().last().unwrap().body.clone();
    let lines: Vec<String> = crate::agent::transcript(Wire::OpenAi, &last)
        .into_iter()
        .filter(|line| {
            !line.starts_with("developer:") && !line.starts_with("user: <environment_context>")
        })
        .collect();
    assert_eq!(
        lines,
        [
            "user: on codex",
            "call c1 exec_command",
            "result c1",
            "assistant: codex did it",
            "user: on claude",
            "call t1 Bash",
            "result t1",
            "assistant: claude read it",
            "user: back on codex",
        ]
    );
    assert_history_checked(&fixture, "work");
}

#[test]
fn claude_reads_its_own_history_through_exos_mcp_server() {
    let Some(fixture) = fixture("ask") else {
        return;
    };
    fixture.model.push(Completion::text("noted"));
    fixture.send_ok("work", "remember the word zebra");
    // The model asks exo's MCP server for the conversation's messages;
    // reading needs no approval, even under the `ask` policy.
    fixture.model.push(Completion::text("").with_tool_call(
        "t1",
        "mcp__exo__events",
        json!({"kind": "message"}),
    ));
    fixture.model.push(Completion::text("It was zebra."));
    let run = fixture.send_ok("work", "what was the word? look it up");
    assert!(run.stdout.contains("It was zebra."), "{}", run.stdout);
    let turns = turns_of(&fixture);
    let last = turns.last().unwrap();
    // The tool's result, as the model received it, holds the first turn.
    let result = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|message| message["content"].as_array().cloned().unwrap_or_default())
        .find(|block| block["type"] == "tool_result" && block["tool_use_id"] == "t1")
        .expect("the MCP tool's result");
    let text = result["content"].to_string();
    assert!(text.contains("remember the word zebra"), "{text}");
    assert_ne!(result["is_error"], true, "{result}");
    let turn = fixture.last_turn("work");
    assert_eq!(of_kind(&turn, "tool_call")[0]["name"], "mcp__exo__events");
}

/// With `--sandbox docker`, Claude Code itself runs in the conversation's
/// container (made from `exo/claude:VERSION`), so its commands do too;
/// it reaches its model only through the gateway, relayed into the
/// container, with its token, and remembers the conversation across turns.
#[test]
fn a_claude_turn_runs_inside_the_conversations_container() {
    if !crate::sandbox::docker_ready() {
        return;
    }
    let Some(fixture) = fixture("auto") else {
        return;
    };
    let image = std::process::Command::new("docker")
        .args(["image", "inspect", "exo/claude:2.1.332"])
        .output()
        .unwrap();
    assert!(
        image.status.success(),
        "no exo/claude image: run containers/build with EXO_CLAUDE_BIN set"
    );
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let _container = crate::sandbox::container_of(&fixture);
    let key_file = fixture.env.config_dir().join("exo/key");
    fixture.model.push(bash(
        "toolu_1",
        &format!(
            "echo \"host: $(hostname)\"; echo \"key: $(cat {} 2>&1 | head -c 60)\"; \
             echo \"root: $(ls {} 2>&1 | head -c 60)\"; \
             K={head}; echo \"env: $(env | grep -c \"${{K}}{tail}\")\"; printf inside > made.txt",
            key_file.display(),
            fixture.root.display(),
            head = &API_KEY[..10],
            tail = &API_KEY[10..],
        ),
    ));
    fixture
        .model
        .push(Completion::text("Done in the container."));
    let run = fixture.send_ok("work", "make a file");
    assert!(
        run.stdout.contains("Done in the container."),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("made.txt")).unwrap(),
        "inside"
    );
    let turn = fixture.last_turn("work");
    let output = of_kind(&turn, "tool_result")[0]["output"].to_string();
    assert!(output.contains("host: exo-sandbox"), "{output}");
    assert!(output.contains("No such file"), "{output}");
    assert!(output.contains("env: 0"), "{output}");
    assert!(!output.contains(API_KEY), "{output}");
    assert_eq!(turn.last().unwrap()["status"], "completed");
    for request in fixture.model.requests() {
        assert_eq!(request.header("x-api-key"), API_KEY);
    }
    // A second turn in the container remembers the first.
    fixture.model.push(Completion::text("Still here."));
    let again = fixture.send_ok("work", "and now?");
    assert!(again.stdout.contains("Still here."), "{}", again.stdout);
    let last = fixture.model.requests().pop().unwrap();
    let transcript = conversation_in(&last.body).join("\n");
    assert!(transcript.contains("make a file"), "{transcript}");
    assert_history_checked(&fixture, "work");
}
