//! `--harness codex`: the real Codex CLI (`codex app-server`, the version
//! pinned in scripts/setup-agents) driven by exo against the fake model
//! behind exo's gateway. What the model received is read at the fake
//! server, so each test checks the agent's memory where it matters: in the
//! requests. These tests double as the contract check of a newer Codex.
//!
//! Without the CLI (EXO_CODEX_BIN unset and no `codex` on PATH) each test
//! says it is skipped, unless EXO_REQUIRE_AGENTS=1 (scripts/test), where
//! that is a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use exo_fake_model::{Answer, Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{kinds, of_kind, transcript, Fixture, API_KEY, API_KEY_VAR, TIMEOUT};

/// The Codex CLI, or `None` (after saying the test is skipped).
fn codex() -> Option<PathBuf> {
    let named = std::env::var_os("EXO_CODEX_BIN").map(PathBuf::from);
    let found = named.or_else(|| crate::export::find_in_path("codex"));
    if found.is_none() {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "the codex CLI is required (EXO_REQUIRE_AGENTS=1) but EXO_CODEX_BIN is unset and no codex is on PATH: run scripts/setup-agents"
        );
        eprintln!("skipped: the codex CLI is not installed (scripts/setup-agents installs it)");
    }
    found
}

/// A fixture whose agent runs on Codex, with this approval policy.
fn fixture(approval: &str) -> Option<Fixture> {
    codex()?;
    let fixture = Fixture::new(Wire::OpenAi, approval);
    fixture.ok(&["agent", "set", "coder", "--harness", "codex"]);
    Some(fixture)
}

/// The conversation in a request Codex sent: its own context (developer
/// messages, the environment) left out.
fn conversation_in(body: &Value) -> Vec<String> {
    transcript(Wire::OpenAi, body)
        .into_iter()
        .filter(|line| {
            !line.starts_with("developer:") && !line.starts_with("user: <environment_context>")
        })
        .collect()
}

/// A shell call as Codex's model makes it.
fn shell_call(call_id: &str, command: &str) -> Completion {
    Completion::text("").with_tool_call(call_id, "exec_command", json!({"cmd": command}))
}

/// The gateway found every request's history to be the log's.
fn assert_history_checked(fixture: &Fixture, conversation: &str) {
    let events = fixture.events(conversation);
    let mismatches: Vec<&Value> = of_kind(&events, "error")
        .into_iter()
        .filter(|event| event["code"] == "history_mismatch")
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert!(!of_kind(&events, "custom")
        .into_iter()
        .filter(|event| event["type"] == "exo.gateway.exchange")
        .collect::<Vec<_>>()
        .is_empty());
}

fn id_of(event: &Value) -> String {
    event["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_codex_turn_runs_its_tools_records_every_item_and_never_holds_the_key() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(shell_call(
        "call_1",
        "printf hello > made.txt; env; ls -a \"$CODEX_HOME\"",
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
    assert_eq!(call["name"], "exec_command");
    assert_eq!(call["call_id"], "call_1");
    let result = of_kind(&turn, "tool_result")[0];
    let output = result["output"].as_str().unwrap();
    // The command's environment has the token, never the key.
    assert!(output.contains("EXO_GATEWAY_TOKEN="), "{output}");
    assert!(
        !output.contains(API_KEY) && !output.contains(API_KEY_VAR),
        "{output}"
    );
    let customs: Vec<&str> = of_kind(&turn, "custom")
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    for wanted in ["codex.thread", "codex.item", "codex.usage", "exo.approval"] {
        assert!(customs.contains(&wanted), "no {wanted} in {customs:?}");
    }
    // Both model exchanges are recorded within the turn, before its end.
    let exchanges = customs
        .iter()
        .filter(|kind| **kind == "exo.gateway.exchange")
        .count();
    assert_eq!(exchanges, 2, "{customs:?}");
    // Items carry Codex's own ids: the thread, the turn, the item.
    let item = of_kind(&turn, "custom")
        .into_iter()
        .find(|event| event["payload"]["item_type"] == "commandExecution")
        .expect("the command's item");
    let payload = &item["payload"];
    assert_eq!(payload["item_id"], "call_1");
    assert!(payload["thread"].is_string() && payload["turn"].is_string());
    assert_eq!(payload["item"]["exitCode"], 0);
    // Order: the call, then its output, then the answer.
    let position = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    assert!(position("tool_call") < position("tool_result"));
    let answer = turn
        .iter()
        .rposition(|event| event["kind"] == "message")
        .unwrap();
    assert!(turn[answer]["content"][0]["text"] == "Made the file.");
    assert!(position("tool_result") < answer);
    assert_eq!(turn.last().unwrap()["status"], "completed");
    let snapshot = turn
        .iter()
        .rev()
        .find(|event| event["kind"] == "workspace_snapshot")
        .unwrap();
    assert_eq!(snapshot["reason"], "turn_end");

    // The upstream got the key from the gateway; Codex sent only its token.
    let requests = fixture.model.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.path, "/v1/responses");
        assert_eq!(request.header("authorization"), format!("Bearer {API_KEY}"));
        assert_eq!(request.body["model"], crate::agent::UPSTREAM);
    }
    // The second request carries the call and its output as structured
    // items, after the user's message.
    assert_eq!(
        conversation_in(&requests[1].body),
        [
            "user: make a file",
            "call call_1 exec_command",
            "result call_1"
        ]
    );
    // Nothing Codex can read holds the key: not its home, nor exo's root.
    assert!(!String::from_utf8_lossy(&fixture.root_bytes()).contains(API_KEY));
    assert_history_checked(&fixture, "work");
}

#[test]
fn memory_follows_the_log_through_rewind_fork_and_a_swap_of_executors() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(shell_call("c1", "printf one > one.txt"));
    fixture.model.push(Completion::text("first answer"));
    fixture.send_ok("work", "first question");
    let end_of_first = id_of(fixture.events("work").last().unwrap());
    fixture.model.push(shell_call("c2", "printf two > two.txt"));
    fixture.model.push(Completion::text("second answer"));
    fixture.send_ok("work", "second question");
    assert!(fixture.workspace.join("two.txt").exists());
    let requests = fixture.model.requests();
    assert_eq!(
        conversation_in(&requests[2].body),
        [
            "user: first question",
            "call c1 exec_command",
            "result c1",
            "assistant: first answer",
            "user: second question",
        ]
    );

    // Rewound to the end of the first turn: the files and the memory.
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
    let third = fixture.model.requests()[4].body.clone();
    assert_eq!(
        conversation_in(&third),
        [
            "user: first question",
            "call c1 exec_command",
            "result c1",
            "assistant: first answer",
            "user: third question",
        ]
    );

    // A fork at the end of the first turn, with its files, goes on under
    // Codex from that point.
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
    let fork = fixture.model.requests()[5].body.clone();
    assert_eq!(
        conversation_in(&fork),
        [
            "user: first question",
            "call c1 exec_command",
            "result c1",
            "assistant: first answer",
            "user: fork question",
        ]
    );
    assert_eq!(
        fork["input"][2]["content"][0]["text"]
            .as_str()
            .map(|t| t.contains(&*forked_dir.canonicalize().unwrap().to_string_lossy())),
        Some(true),
        "Codex works in the fork's directory: {}",
        fork["input"][2]
    );

    // Swapped to the built-in executor and back: each gets the whole
    // history, tool calls structured.
    fixture.ok(&["agent", "set", "coder", "--harness", "builtin"]);
    fixture.model.push(Completion::text("builtin answer"));
    fixture.send_ok("work", "builtin question");
    let builtin = fixture.model.requests()[6].body.clone();
    assert_eq!(
        transcript(Wire::OpenAi, &builtin),
        [
            "system: ".to_owned() + crate::agent::INSTRUCTIONS,
            "user: first question".into(),
            "call c1 exec_command".into(),
            "result c1".into(),
            "assistant: first answer".into(),
            "user: third question".into(),
            "assistant: third answer".into(),
            "user: builtin question".into(),
        ]
        .iter()
        .filter(|line| !line.starts_with("system: ") || builtin["input"][0]["role"] == "system")
        .cloned()
        .collect::<Vec<_>>()
    );
    fixture.ok(&["agent", "set", "coder", "--harness", "codex"]);
    fixture.model.push(Completion::text("codex again"));
    fixture.send_ok("work", "back on codex");
    let again = fixture.model.requests()[7].body.clone();
    assert_eq!(
        conversation_in(&again),
        [
            "user: first question",
            "call c1 exec_command",
            "result c1",
            "assistant: first answer",
            "user: third question",
            "assistant: third answer",
            "user: builtin question",
            "assistant: builtin answer",
            "user: back on codex",
        ]
    );
    assert_history_checked(&fixture, "work");
    assert_history_checked(&fixture, "fork");
}

/// The pids of processes whose command line has `needle` and whose
/// environment names `root`.
fn processes_with(needle: &str, root: &Path) -> Vec<i32> {
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
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle)
            && String::from_utf8_lossy(&environ).contains(&root)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn codex_killed_mid_stream_leaves_the_turn_interrupted_and_the_next_turn_remembers() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(Answer::opening("I was saying"));
    let mut send = send_in_background(&fixture, "never ends", 1);
    // exo has the streamed text when Codex dies.
    read_until(&mut send, "I was saying");
    let deadline = Instant::now() + TIMEOUT;
    let pids = loop {
        let pids = processes_with("app-server", &fixture.root);
        if !pids.is_empty() {
            break pids;
        }
        assert!(Instant::now() < deadline, "no codex app-server found");
        std::thread::sleep(Duration::from_millis(20));
    };
    for pid in pids {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    let output = send.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("codex app-server exited"), "{stderr}");
    let turn = fixture.last_turn("work");
    assert_eq!(turn.last().unwrap()["status"], "interrupted");

    fixture.model.push(Completion::text("picking up"));
    fixture.send_ok("work", "where were we?");
    let next = fixture.model.requests().last().unwrap().body.clone();
    assert_eq!(
        conversation_in(&next),
        [
            "user: never ends",
            "assistant: I was saying",
            "user: where were we?"
        ]
    );
}

#[test]
fn a_denied_command_does_not_run_and_the_model_is_told() {
    let Some(fixture) = fixture("deny") else {
        return;
    };
    fixture
        .model
        .push(shell_call("c1", "printf no > denied.txt"));
    fixture.model.push(Completion::text("understood"));
    fixture.send_ok("work", "try it");
    assert!(!fixture.workspace.join("denied.txt").exists());
    let turn = fixture.last_turn("work");
    let approval = of_kind(&turn, "custom")
        .into_iter()
        .find(|event| event["type"] == "exo.approval")
        .expect("an approval");
    assert_eq!(approval["payload"]["approved"], false);
    assert_eq!(approval["payload"]["by"], "policy");
    assert_eq!(approval["payload"]["tool"], "shell");
}

#[test]
fn a_codex_agent_without_an_openai_model_or_workspace_is_refused_before_the_turn() {
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

/// Waits until no `codex app-server` of this root runs.
fn wait_for_no_codex(root: &Path) {
    let deadline = Instant::now() + TIMEOUT;
    while !processes_with("app-server", root).is_empty() {
        assert!(Instant::now() < deadline, "codex outlived exo");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `exo conversation send coder work PROMPT` and waits until the
/// model has its request.
fn send_in_background(fixture: &Fixture, prompt: &str, requests: usize) -> std::process::Child {
    let send = fixture
        .env
        .command(&fixture.args(&["conversation", "send", "coder", "work", prompt]))
        .env(API_KEY_VAR, API_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(fixture.model.wait_for_requests(requests, TIMEOUT));
    send
}

#[test]
fn exo_killed_mid_turn_takes_codex_with_it_and_the_next_turn_remembers() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(Completion::text("noted"));
    fixture.send_ok("work", "remember violet");
    fixture.model.push(Answer::opening("thinking"));
    let mut send = send_in_background(&fixture, "never ends", 2);
    assert!(!processes_with("app-server", &fixture.root).is_empty());
    send.kill().unwrap();
    send.wait().unwrap();
    wait_for_no_codex(&fixture.root);

    fixture.model.push(Completion::text("still here"));
    fixture.send_ok("work", "what did I ask you to remember?");
    let events = fixture.events("work");
    let ended: Vec<&Value> = of_kind(&events, "turn_ended");
    assert_eq!(ended[1]["status"], "interrupted");
    let next = fixture.model.requests().last().unwrap().body.clone();
    assert_eq!(
        conversation_in(&next),
        [
            "user: remember violet",
            "assistant: noted",
            "user: never ends",
            "user: what did I ask you to remember?",
        ]
    );
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

#[test]
fn a_turn_cancelled_through_the_daemon_interrupts_codex_and_keeps_what_streamed() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    let daemon = fixture.daemon();
    fixture.model.push(Answer::opening("partial words"));
    let mut send = send_in_background(&fixture, "long job", 1);
    // The text streams to the client before the cancel.
    read_until(&mut send, "partial words");
    fixture.ok(&["turn", "cancel", "coder", "work"]);
    let status = send.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let turn = fixture.last_turn("work");
    assert_eq!(turn.last().unwrap()["status"], "cancelled");
    // What streamed is kept as the answer's part.
    let answer = of_kind(&turn, "message")
        .into_iter()
        .find(|event| event["role"] == "assistant")
        .expect("the partial answer");
    assert_eq!(answer["content"][0]["text"], "partial words");
    wait_for_no_codex(&fixture.root);
    // The fake server saw the client leave.
    assert!(fixture.model.wait_for_disconnects(1, TIMEOUT));
    fixture.stop(daemon);
}

#[test]
fn a_rewind_into_the_middle_of_a_turn_gives_codex_exactly_that_prefix() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(shell_call("c1", "printf one > one.txt"));
    fixture.model.push(shell_call("c2", "printf two > two.txt"));
    fixture.model.push(Completion::text("both written"));
    fixture.send_ok("work", "write two files");
    let events = fixture.events("work");
    // The head goes back to the first call's output: the second call
    // and the answer are no longer in the conversation.
    let first_output = events
        .iter()
        .find(|event| event["kind"] == "tool_result" && event["call_id"] == "c1")
        .unwrap();
    fixture.ok(&[
        "conversation",
        "rewind",
        "coder",
        "work",
        "--no-files",
        "--at",
        &id_of(first_output),
    ]);
    fixture.model.push(Completion::text("from the middle"));
    fixture.send_ok("work", "go on");
    let next = fixture.model.requests().last().unwrap().body.clone();
    assert_eq!(
        conversation_in(&next),
        [
            "user: write two files",
            "call c1 exec_command",
            "result c1",
            "user: go on"
        ]
    );
    assert_history_checked(&fixture, "work");
}

#[test]
fn codex_reads_its_own_history_through_exos_mcp_server() {
    let Some(fixture) = fixture("auto") else {
        return;
    };
    fixture.model.push(Completion::text("noted"));
    fixture.send_ok("work", "remember the word zebra");
    // Codex offers exo's MCP tools in the namespace mcp__exo.
    fixture
        .model
        .push(Completion::text("").with_namespaced_tool_call(
            "c1",
            "mcp__exo",
            "events",
            json!({"kind": "message"}),
        ));
    fixture.model.push(Completion::text("It was zebra."));
    let run = fixture.send_ok("work", "what was the word? look it up");
    assert!(run.stdout.contains("It was zebra."), "{}", run.stdout);
    let requests = fixture.model.requests();
    let offered = requests[requests.len() - 2].body["tools"].to_string();
    assert!(offered.contains("\"mcp__exo\""), "{offered}");
    let last = &requests.last().unwrap().body;
    let output = last["input"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "function_call_output" && item["call_id"] == "c1")
        .expect("the MCP tool's output");
    let text = output["output"].to_string();
    assert!(text.contains("remember the word zebra"), "{text}");
    let turn = fixture.last_turn("work");
    assert_eq!(of_kind(&turn, "tool_call")[0]["name"], "mcp__exo__events");
}

/// With `--sandbox docker`, Codex itself runs in the conversation's
/// container (made from `exo/codex:VERSION`), so the commands it runs do
/// too: they see the container, write the shared workspace, and reach
/// neither the network nor exo's root nor the key; Codex reaches its model
/// only through the gateway, relayed into the container, with its token.
#[test]
fn a_codex_turn_runs_inside_the_conversations_container() {
    if !crate::sandbox::docker_ready() {
        return;
    }
    let Some(fixture) = fixture("auto") else {
        return;
    };
    let image = std::process::Command::new("docker")
        .args(["image", "inspect", "exo/codex:0.169.0"])
        .output()
        .unwrap();
    assert!(
        image.status.success(),
        "no exo/codex image: run containers/build with EXO_CODEX_BIN set"
    );
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let _container = crate::sandbox::container_of(&fixture);
    let key_file = fixture.env.config_dir().join("exo/key");
    fixture.model.push(shell_call(
        "call_1",
        &format!(
            "echo \"host: $(hostname)\"; echo \"codex: $(cat /proc/1/cmdline | tr '\\0' ' ')\"; \
             echo \"key: $(cat {} 2>&1 | head -c 60)\"; echo \"root: $(ls {} 2>&1 | head -c 60)\"; \
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
    let output = of_kind(&turn, "tool_result")[0]["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(output.contains("host: exo-sandbox"), "{output}");
    assert!(output.contains("No such file"), "{output}");
    assert!(output.contains("env: 0"), "{output}");
    assert!(!output.contains(API_KEY), "{output}");
    // The model was reached through the gateway, with the key added there.
    let requests = fixture.model.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.header("authorization"), format!("Bearer {API_KEY}"));
    }
    assert_eq!(turn.last().unwrap()["status"], "completed");
    // No Codex is left running on the host.
    assert!(processes_with("app-server", &fixture.root).is_empty());
    assert_history_checked(&fixture, "work");
}
