//! The built-in executor end to end: `exo conversation send` against a
//! fake model server speaking each vendor's wire (exo-fake-model), so the
//! requests exo sends are checked field by field in each wire's own format
//! and the answers go through the real streaming parsers. Every scenario
//! runs once per wire, with the same assertions.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use exo_fake_model::{Completion, FakeModel, HttpError, Recorded, Wire};
use serde_json::{json, Value};

use crate::util::{contains, Env, Run};

/// The provider's API key: it must never be printed nor stored in plain
/// text anywhere under the root.
pub const API_KEY: &str = "sk-e2e-test-7f3a9c1d5b2e4f60a8c7";
/// The environment variable `exo secret set --env` reads the key from.
/// Every `exo` run gets it, so a shell tool inheriting it would leak it
/// into the log.
pub const API_KEY_VAR: &str = "EXO_E2E_PROVIDER_KEY";
/// The agent's instructions; a marker easy to find in a request.
pub const INSTRUCTIONS: &str = "Keep answers short. Marker: violet-otter.";
/// The model's name at the provider, as the binding says.
pub const UPSTREAM: &str = "fake-upstream-model";
/// The tools, in the order exo offers them: its six coding tools, then
/// its own over the conversation's history (spec/mcp.md).
pub const TOOLS: [&str; 13] = [
    "shell",
    "read_file",
    "write_file",
    "edit_file",
    "list_files",
    "grep",
    "mcp__exo__events",
    "mcp__exo__event",
    "mcp__exo__artifacts",
    "mcp__exo__artifact",
    "mcp__exo__snapshots",
    "mcp__exo__snapshot_diff",
    "mcp__exo__tree",
];

/// How long a wait may take before the test fails; a guard, never a
/// timing assertion.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a scenario once per wire: a module named after the scenario with
/// one test per wire.
macro_rules! for_each_wire {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use exo_fake_model::Wire;

                #[test]
                fn openai() {
                    super::$name(Wire::OpenAi);
                }

                #[test]
                fn openai_chat() {
                    super::$name(Wire::OpenAiChat);
                }

                #[test]
                fn anthropic() {
                    super::$name(Wire::Anthropic);
                }
            }
        )*
    };
}
pub(crate) use for_each_wire;

/// An exo root with a model served by a fake server, an agent using it and
/// a conversation `coder/work` bound to a workspace directory.
pub struct Fixture {
    pub env: Env,
    pub model: FakeModel,
    pub wire: Wire,
    pub root: PathBuf,
    pub workspace: PathBuf,
}

/// Where the root lives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RootAt {
    /// Beside the workspace.
    Beside,
    /// Inside the workspace (`ws/.exo`), as when exo runs in a project.
    InsideWorkspace,
}

impl Fixture {
    /// A fixture whose agent has this approval policy.
    pub fn new(wire: Wire, approval: &str) -> Fixture {
        Fixture::with_root(wire, approval, RootAt::Beside)
    }

    pub fn with_root(wire: Wire, approval: &str, root_at: RootAt) -> Fixture {
        let env = Env::new();
        let workspace = env.dir().join("ws");
        std::fs::create_dir(&workspace).unwrap();
        let root = match root_at {
            RootAt::Beside => env.root(),
            RootAt::InsideWorkspace => workspace.join(".exo"),
        };
        let fixture = Fixture {
            model: FakeModel::start(wire),
            env,
            wire,
            root,
            workspace: workspace.canonicalize().unwrap(),
        };
        fixture.ok(&["secret", "set", "provider-key", "--env", API_KEY_VAR]);
        fixture.ok(&[
            "model",
            "register",
            "m",
            "--provider",
            wire.name(),
            "--base-url",
            &fixture.model.base_url(),
            "--upstream",
            UPSTREAM,
            "--secret",
            "provider-key",
        ]);
        fixture.ok(&[
            "agent",
            "create",
            "Coder",
            "--slug",
            "coder",
            "--model",
            "m",
            "--approval",
            approval,
            "--instructions",
            INSTRUCTIONS,
        ]);
        fixture.ok(&[
            "conversation",
            "create",
            "coder",
            "Work",
            "--slug",
            "work",
            "--workspace",
            fixture.workspace.to_str().unwrap(),
        ]);
        fixture
    }

    pub fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--root", self.root.to_str().unwrap()];
        all.extend_from_slice(args);
        all
    }

    /// Runs `exo --root ROOT ARGS` with `stdin` (never a terminal); the key
    /// must appear in neither output.
    pub fn run_with(&self, args: &[&str], stdin: &[u8]) -> Run {
        let run = self
            .env
            .run_with(&self.args(args), stdin, &[(API_KEY_VAR, API_KEY)]);
        assert_key_absent(&run.stdout, "stdout");
        assert_key_absent(&run.stderr, "stderr");
        run
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, b"")
    }

    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "exo {args:?} failed:\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok(&all).json()
    }

    /// `exo conversation send coder CONV PROMPT EXTRA...`.
    pub fn send(&self, conversation: &str, prompt: &str, extra: &[&str]) -> Run {
        let mut args = vec!["conversation", "send", "coder", conversation, prompt];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Like [`Fixture::send`], requiring success.
    pub fn send_ok(&self, conversation: &str, prompt: &str) -> Run {
        let run = self.send(conversation, prompt, &[]);
        assert_eq!(
            run.code, 0,
            "send failed:\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run
    }

    /// The whole history of `coder/CONV`.
    pub fn events(&self, conversation: &str) -> Vec<Value> {
        let page = self.json(&["conversation", "events", "coder", conversation]);
        assert!(page["next_cursor"].is_null());
        page["events"].as_array().unwrap().clone()
    }

    /// The events of the last turn of `coder/CONV`, from its
    /// `turn_started` on.
    pub fn last_turn(&self, conversation: &str) -> Vec<Value> {
        let events = self.events(conversation);
        let start = events
            .iter()
            .rposition(|event| event["kind"] == "turn_started")
            .expect("a turn");
        let turn = events[start]["turn"].clone();
        events[start..]
            .iter()
            .filter(|event| event["turn"] == turn)
            .cloned()
            .collect()
    }

    /// The `n`th request the model server saw (from 0).
    pub fn request(&self, n: usize) -> Recorded {
        let requests = self.model.requests();
        assert!(
            requests.len() > n,
            "request {n} wanted, the server saw {}",
            requests.len()
        );
        requests[n].clone()
    }

    /// Every byte under the root, for "never on disk" checks.
    pub fn root_bytes(&self) -> Vec<u8> {
        crate::util::bytes_under(&self.root)
    }

    /// Starts `exo daemon` on the root and waits until it answers.
    pub fn daemon(&self) -> Daemon {
        let log = self.env.dir().join("daemon.log");
        let mut command = self.env.command(&self.args(&["daemon"]));
        command
            .env(API_KEY_VAR, API_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().expect("spawn exo daemon");
        let mut daemon = Daemon {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + TIMEOUT;
        while self.run(&["daemon", "status"]).code != 0 {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited with {status}: {}", daemon.log_text());
            }
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// Stops the daemon with `exo daemon stop` and waits for it to exit.
    pub fn stop(&self, mut daemon: Daemon) -> String {
        self.ok(&["daemon", "stop"]);
        let mut child = daemon.child.take().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = daemon.log_text();
        assert!(status.success(), "the daemon exited with {status}: {log}");
        log
    }
}

/// A running `exo daemon`; killed if the test ends without stopping it.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn assert_key_absent(text: &str, what: &str) {
    assert!(!text.contains(API_KEY), "the API key is in {what}: {text}");
}

/// The kinds of these events, with the type of custom ones
/// (`custom:exo.approval`).
pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event["kind"].as_str().unwrap() {
            "custom" => format!("custom:{}", event["type"].as_str().unwrap()),
            kind => kind.to_owned(),
        })
        .collect()
}

/// The events of this kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["kind"] == kind)
        .collect()
}

/// The text of a message event.
pub fn text_of(event: &Value) -> String {
    event["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|part| part["type"] == "text")
        .map(|part| part["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n\n")
}

// What the requests say, read in each wire's own format.

/// The path each wire posts to.
fn path(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "/v1/responses",
        Wire::OpenAiChat => "/v1/chat/completions",
        Wire::Anthropic => "/v1/messages",
    }
}

/// The system prompt of a request.
pub fn instructions(wire: Wire, body: &Value) -> String {
    let text = match wire {
        Wire::OpenAi => &body["instructions"],
        Wire::OpenAiChat => {
            assert_eq!(body["messages"][0]["role"], "system", "{body}");
            &body["messages"][0]["content"]
        }
        Wire::Anthropic => &body["system"],
    };
    text.as_str()
        .unwrap_or_else(|| panic!("no instructions in {body}"))
        .to_owned()
}

/// The names of the tools a request offers.
pub fn tool_names(wire: Wire, body: &Value) -> Vec<String> {
    let Some(tools) = body["tools"].as_array() else {
        return Vec::new();
    };
    tools
        .iter()
        .map(|tool| {
            let name = match wire {
                Wire::OpenAi => {
                    assert_eq!(tool["type"], "function");
                    assert_eq!(tool["strict"], false);
                    assert!(tool["parameters"]["properties"].is_object(), "{tool}");
                    &tool["name"]
                }
                Wire::OpenAiChat => {
                    assert_eq!(tool["type"], "function");
                    assert!(tool["function"]["parameters"]["properties"].is_object());
                    &tool["function"]["name"]
                }
                Wire::Anthropic => {
                    assert!(tool["input_schema"]["properties"].is_object(), "{tool}");
                    &tool["name"]
                }
            };
            name.as_str().unwrap().to_owned()
        })
        .collect()
}

/// The conversation a request carries, one line per entry, the same for
/// every wire: `user: TEXT`, `assistant: TEXT`, `call ID NAME`,
/// `result ID`.
pub fn transcript(wire: Wire, body: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    match wire {
        Wire::OpenAi => {
            for item in body["input"].as_array().unwrap() {
                match item["type"].as_str().unwrap() {
                    "message" => {
                        let text: Vec<&str> = item["content"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|part| part["text"].as_str().unwrap())
                            .collect();
                        lines.push(format!(
                            "{}: {}",
                            item["role"].as_str().unwrap(),
                            text.join("")
                        ));
                    }
                    "function_call" => lines.push(format!(
                        "call {} {}",
                        item["call_id"].as_str().unwrap(),
                        item["name"].as_str().unwrap()
                    )),
                    "function_call_output" => {
                        lines.push(format!("result {}", item["call_id"].as_str().unwrap()))
                    }
                    other => panic!("unexpected input item {other}: {item}"),
                }
            }
        }
        Wire::OpenAiChat => {
            for message in &body["messages"].as_array().unwrap()[1..] {
                let role = message["role"].as_str().unwrap();
                if role == "tool" {
                    lines.push(format!(
                        "result {}",
                        message["tool_call_id"].as_str().unwrap()
                    ));
                    continue;
                }
                if let Some(text) = message["content"].as_str() {
                    lines.push(format!("{role}: {text}"));
                }
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    lines.push(format!(
                        "call {} {}",
                        call["id"].as_str().unwrap(),
                        call["function"]["name"].as_str().unwrap()
                    ));
                }
            }
        }
        Wire::Anthropic => {
            for message in body["messages"].as_array().unwrap() {
                let role = message["role"].as_str().unwrap();
                for block in message["content"].as_array().unwrap() {
                    match block["type"].as_str().unwrap() {
                        "text" => {
                            lines.push(format!("{role}: {}", block["text"].as_str().unwrap()))
                        }
                        "tool_use" => lines.push(format!(
                            "call {} {}",
                            block["id"].as_str().unwrap(),
                            block["name"].as_str().unwrap()
                        )),
                        "tool_result" => {
                            lines.push(format!("result {}", block["tool_use_id"].as_str().unwrap()))
                        }
                        other => panic!("unexpected block {other}: {block}"),
                    }
                }
            }
        }
    }
    lines
}

/// Checks what every request to the fake server has: method, path,
/// headers with the key, the upstream model, the instructions, the six
/// tools, streaming.
pub fn assert_request_basics(wire: Wire, request: &Recorded, workspace: &Path) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, path(wire));
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("accept"), "text/event-stream");
    assert!(request.header("user-agent").starts_with("exo/"));
    match wire {
        Wire::OpenAi | Wire::OpenAiChat => {
            assert_eq!(request.header("authorization"), format!("Bearer {API_KEY}"));
            assert!(request.headers.get("x-api-key").is_none());
        }
        Wire::Anthropic => {
            assert_eq!(request.header("x-api-key"), API_KEY);
            assert_eq!(request.header("anthropic-version"), "2023-06-01");
            assert!(request.headers.get("authorization").is_none());
        }
    }
    let body = &request.body;
    assert_eq!(body["model"], UPSTREAM);
    assert_eq!(body["stream"], true);
    match wire {
        Wire::OpenAi => assert_eq!(body["store"], false),
        Wire::OpenAiChat => assert_eq!(body["stream_options"], json!({"include_usage": true})),
        Wire::Anthropic => assert_eq!(body["max_tokens"], 8192),
    }
    let instructions = instructions(wire, body);
    assert!(
        instructions.starts_with(&format!(
            "You are a coding agent working in the directory {}.",
            workspace.display()
        )),
        "{instructions}"
    );
    assert!(
        instructions.ends_with(&format!("\n\n{INSTRUCTIONS}")),
        "{instructions}"
    );
    assert_eq!(tool_names(wire, body), TOOLS);
}

/// The request's history after the first round of the coding turn: the
/// prompt, the assistant's text with its `write_file` call, and the call's
/// result, exactly as the wire writes them. `arguments` and `output` are
/// what exo recorded for the call and its result.
fn assert_first_round_history(wire: Wire, body: &Value, arguments: &Value, output: &Value) {
    // Argument and output texts are JSON; compare them as values, since
    // the key order is not part of any contract.
    let parsed = |text: &Value| -> Value {
        serde_json::from_str(text.as_str().expect("JSON text")).expect("valid JSON")
    };
    match wire {
        Wire::OpenAi => {
            let input = body["input"].as_array().unwrap();
            assert_eq!(input.len(), 4, "{body}");
            assert_eq!(
                input[0],
                json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Create hello.txt"}]})
            );
            assert_eq!(
                input[1],
                json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "I will write the file."}]})
            );
            let mut call = input[2].clone();
            assert_eq!(parsed(&call["arguments"]), *arguments);
            call["arguments"] = json!("<checked>");
            assert_eq!(
                call,
                json!({"type": "function_call", "call_id": "call_write", "name": "write_file", "arguments": "<checked>"})
            );
            let mut result = input[3].clone();
            assert_eq!(parsed(&result["output"]), *output);
            result["output"] = json!("<checked>");
            assert_eq!(
                result,
                json!({"type": "function_call_output", "call_id": "call_write", "output": "<checked>"})
            );
        }
        Wire::OpenAiChat => {
            let messages = body["messages"].as_array().unwrap();
            assert_eq!(messages.len(), 4, "{body}");
            assert_eq!(messages[0]["role"], "system");
            assert_eq!(
                messages[1],
                json!({"role": "user", "content": "Create hello.txt"})
            );
            let mut assistant = messages[2].clone();
            let function = &mut assistant["tool_calls"][0]["function"];
            assert_eq!(parsed(&function["arguments"]), *arguments);
            function["arguments"] = json!("<checked>");
            assert_eq!(
                assistant,
                json!({
                    "role": "assistant",
                    "content": "I will write the file.",
                    "tool_calls": [{
                        "id": "call_write",
                        "type": "function",
                        "function": {"name": "write_file", "arguments": "<checked>"}
                    }]
                })
            );
            let mut result = messages[3].clone();
            assert_eq!(parsed(&result["content"]), *output);
            result["content"] = json!("<checked>");
            assert_eq!(
                result,
                json!({"role": "tool", "tool_call_id": "call_write", "content": "<checked>"})
            );
        }
        Wire::Anthropic => {
            let messages = body["messages"].as_array().unwrap();
            assert_eq!(messages.len(), 3, "{body}");
            assert_eq!(
                messages[0],
                json!({"role": "user", "content": [{"type": "text", "text": "Create hello.txt"}]})
            );
            assert_eq!(
                messages[1],
                json!({"role": "assistant", "content": [
                    {"type": "text", "text": "I will write the file."},
                    {"type": "tool_use", "id": "call_write", "name": "write_file", "input": arguments},
                ]})
            );
            let mut result = messages[2].clone();
            let block = &mut result["content"][0];
            assert_eq!(parsed(&block["content"]), *output);
            block["content"] = json!("<checked>");
            assert_eq!(
                result,
                json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_write", "content": "<checked>", "is_error": false},
                ]})
            );
        }
    }
}

// The scenarios.

for_each_wire!(coding_turn, coding_turn_with_a_daemon);

/// Queues the coding turn's three answers: text and a `write_file`, a
/// `shell` that reads the file back, and a final text.
fn push_coding_turn(model: &FakeModel) {
    model.push(
        Completion::text("I will write the file.")
            .with_tool_call(
                "call_write",
                "write_file",
                json!({"path": "hello.txt", "content": "hello from the model\n"}),
            )
            .with_usage(120, 30),
    );
    model.push(Completion::text("").with_tool_call(
        "call_cat",
        "shell",
        json!({"command": "cat hello.txt; echo \"run by $PPID\"; env"}),
    ));
    model.push(Completion::text("Done: hello.txt holds a greeting.").with_usage(200, 9));
}

/// A turn that writes a file and reads it back with the shell, checked in
/// what it prints, what it records, the files, and every request.
fn coding_turn(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    push_coding_turn(&fixture.model);
    let run = fixture.send_ok("work", "Create hello.txt");
    check_coding_turn(&fixture, &run);
}

/// The same turn with `exo daemon` running: `send` asks the daemon, which
/// runs the executor, and everything observable is the same.
fn coding_turn_with_a_daemon(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    // On the host, so the command sees the daemon as its parent.
    fixture.ok(&["agent", "set", "coder", "--sandbox", "none"]);
    let daemon = fixture.daemon();
    push_coding_turn(&fixture.model);
    let run = fixture.send_ok("work", "Create hello.txt");
    let pid = daemon.pid();
    let log = fixture.stop(daemon);
    check_coding_turn(&fixture, &run);
    // The daemon ran the tools, so it ran the turn.
    let turn = fixture.last_turn("work");
    let shell = turn[10]["output"]["stdout"].as_str().unwrap();
    assert!(shell.contains(&format!("run by {pid}\n")), "{shell}");
    assert_key_absent(&log, "the daemon's log");
}

fn check_coding_turn(fixture: &Fixture, run: &Run) {
    let wire = fixture.wire;
    // The answer streams to stdout, the tool activity to stderr.
    assert_eq!(
        run.stdout,
        "I will write the file.\nDone: hello.txt holds a greeting.\n"
    );
    assert!(
        run.stderr.contains("• write_file: hello.txt\n  ok\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("• shell: cat hello.txt; echo \"run by $PPID\"; env\n  exit 0\n"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("hello.txt")).unwrap(),
        "hello from the model\n"
    );

    let turn = fixture.last_turn("work");
    assert_eq!(
        kinds(&turn),
        [
            "turn_started",
            "workspace_snapshot",
            "message",
            "message",
            "tool_call",
            "custom:exo.approval",
            "tool_result",
            "message",
            "tool_call",
            "custom:exo.approval",
            "tool_result",
            "message",
            "workspace_snapshot",
            "turn_ended",
        ],
        "{turn:#?}"
    );
    assert_eq!(turn[1]["reason"], "turn_start");
    assert_eq!(turn[12]["reason"], "turn_end");
    assert_eq!(turn[13]["status"], "completed");
    let user = &turn[2];
    assert_eq!(user["role"], "user");
    assert_eq!(text_of(user), "Create hello.txt");
    let first = &turn[3];
    assert_eq!(first["role"], "assistant");
    assert_eq!(text_of(first), "I will write the file.");
    assert_eq!(first["model"], UPSTREAM);
    assert_eq!(first["usage"]["input_tokens"], 120);
    assert_eq!(first["usage"]["output_tokens"], 30);
    assert_eq!(turn[4]["call_id"], "call_write");
    assert_eq!(turn[4]["name"], "write_file");
    assert_eq!(
        turn[4]["arguments"],
        json!({"path": "hello.txt", "content": "hello from the model\n"})
    );
    assert_eq!(
        turn[5]["payload"],
        json!({"call_id": "call_write", "tool": "write_file", "approved": true, "decision": "allow_once", "by": "policy"})
    );
    assert_eq!(turn[6]["call_id"], "call_write");
    assert_eq!(turn[6]["is_error"], false);
    assert_eq!(
        turn[6]["output"],
        json!({"path": "hello.txt", "bytes_written": 21, "created": true})
    );
    // The second answer has no text: its message is recorded for its usage.
    assert_eq!(turn[7]["content"], json!([]));
    assert_eq!(turn[7]["model"], UPSTREAM);
    assert_eq!(turn[8]["name"], "shell");
    assert_eq!(turn[10]["call_id"], "call_cat");
    assert_eq!(turn[10]["is_error"], false);
    let shell = &turn[10]["output"];
    assert_eq!(shell["exit_code"], 0);
    let stdout = shell["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("hello from the model\n"), "{stdout}");
    // The shell's environment is built from nothing: exo's own variables
    // (the provider key's among them) are not passed on.
    assert!(!stdout.contains(API_KEY_VAR), "{stdout}");
    assert_eq!(text_of(&turn[11]), "Done: hello.txt holds a greeting.");
    assert_eq!(turn[11]["usage"]["input_tokens"], 200);

    // Three requests, each complete; each carries the history so far.
    let requests = fixture.model.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_request_basics(wire, request, &fixture.workspace);
    }
    assert_eq!(
        transcript(wire, &requests[0].body),
        ["user: Create hello.txt"]
    );
    assert_first_round_history(
        wire,
        &requests[1].body,
        &turn[4]["arguments"],
        &turn[6]["output"],
    );
    assert_eq!(
        transcript(wire, &requests[2].body),
        [
            "user: Create hello.txt",
            "assistant: I will write the file.",
            "call call_write write_file",
            "result call_write",
            "call call_cat shell",
            "result call_cat",
        ]
    );

    // The key is on disk only sealed.
    assert!(!contains(&fixture.root_bytes(), API_KEY.as_bytes()));
}

for_each_wire!(
    history_after_rewind_and_fork,
    a_429_is_retried,
    a_failing_model_fails_the_turn,
    a_request_error_is_not_retried,
    an_echoed_key_is_redacted_in_every_form,
    paths_outside_the_workspace_are_refused,
    writes_need_a_terminal_to_ask,
    a_deny_policy_refuses_writes_but_not_reads,
    the_round_limit_stops_a_looping_model,
);

/// After two turns, rewinding to the end of the first leaves the model
/// seeing only the first (and the files as they were then); a fork at
/// the same point sees the first turn and its own prompt.
fn history_after_rewind_and_fork(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    let model = &fixture.model;
    model.push(Completion::text("Writing a.").with_tool_call(
        "call_a",
        "write_file",
        json!({"path": "a.txt", "content": "a\n"}),
    ));
    model.push(Completion::text("First answer."));
    fixture.send_ok("work", "first prompt");
    model.push(Completion::text("Writing b.").with_tool_call(
        "call_b",
        "write_file",
        json!({"path": "b.txt", "content": "b\n"}),
    ));
    model.push(Completion::text("Second answer."));
    fixture.send_ok("work", "second prompt");
    assert!(fixture.workspace.join("b.txt").exists());
    let first_turn = [
        "user: first prompt",
        "assistant: Writing a.",
        "call call_a write_file",
        "result call_a",
        "assistant: First answer.",
    ];
    let mut both_turns = first_turn.to_vec();
    both_turns.extend([
        "user: second prompt",
        "assistant: Writing b.",
        "call call_b write_file",
        "result call_b",
    ]);
    assert_eq!(transcript(wire, &fixture.request(3).body), both_turns);

    let events = fixture.events("work");
    let first_end = of_kind(&events, "turn_ended")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    fixture.ok(&[
        "conversation",
        "rewind",
        "coder",
        "work",
        "--to",
        &first_end,
    ]);
    assert!(fixture.workspace.join("a.txt").exists());
    assert!(
        !fixture.workspace.join("b.txt").exists(),
        "the rewind restored the files of the first turn's end"
    );
    model.push(Completion::text("Third answer."));
    let run = fixture.send_ok("work", "third prompt");
    assert_eq!(run.stdout, "Third answer.\n");
    let mut expected = first_turn.to_vec();
    expected.push("user: third prompt");
    assert_eq!(transcript(wire, &fixture.request(4).body), expected);

    let side = fixture.env.dir().join("side");
    fixture.ok(&[
        "conversation",
        "fork",
        "coder",
        "work",
        "--at",
        &first_end,
        "--slug",
        "side",
        "--workspace",
        side.to_str().unwrap(),
    ]);
    model.push(Completion::text("Fork answer."));
    let run = fixture.send_ok("side", "fork prompt");
    assert_eq!(run.stdout, "Fork answer.\n");
    let request = fixture.request(5);
    let mut expected = first_turn.to_vec();
    expected.push("user: fork prompt");
    assert_eq!(transcript(wire, &request.body), expected);
    // The fork works in its own directory, holding the first turn's files.
    assert_request_basics(wire, &request, &side.canonicalize().unwrap());
    assert!(side.join("a.txt").exists() && !side.join("b.txt").exists());
    assert_eq!(model.requests().len(), 6);
}

/// A 429 with `retry-after-ms` is retried after that delay, and the turn
/// completes as if nothing happened.
fn a_429_is_retried(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    fixture
        .model
        .push(HttpError::new(429, "slow down").with_header("retry-after-ms", "10"));
    fixture.model.push(Completion::text("Made it."));
    let run = fixture.send_ok("work", "hello");
    assert_eq!(run.stdout, "Made it.\n");
    let requests = fixture.model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body, "the same request again");
    let turn = fixture.last_turn("work");
    assert!(of_kind(&turn, "error").is_empty(), "{turn:#?}");
    assert_eq!(turn.last().unwrap()["status"], "completed");
}

/// A model that keeps failing with 500: five attempts (four retries), then
/// the turn fails, recorded with an `error` event, and `send` exits 1 with
/// one line saying why.
fn a_failing_model_fails_the_turn(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    for _ in 0..5 {
        fixture.model.push(
            HttpError::new(500, "the fake server is down").with_header("retry-after-ms", "10"),
        );
    }
    let run = fixture.send("work", "hello", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    // After the retries' warnings, one line says why the turn failed.
    assert!(
        !run.stderr.contains('\x1b'),
        "no colours off a terminal: {}",
        run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    let n = lines.len();
    assert!(n >= 1, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("HTTP 500").count(),
        1 + run.stderr.matches("retrying").count(),
        "the failure is said once: {}",
        run.stderr
    );
    assert!(
        lines[n - 1].starts_with("exo: turn failed: model API returned HTTP 500: ")
            && lines[n - 1].ends_with("the fake server is down"),
        "{}",
        run.stderr
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.starts_with("exo: "))
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(fixture.model.requests().len(), 5);
    assert_eq!(fixture.model.queued(), 0);

    let turn = fixture.last_turn("work");
    assert_eq!(
        kinds(&turn),
        [
            "turn_started",
            "workspace_snapshot",
            "message",
            "error",
            "workspace_snapshot",
            "turn_ended"
        ]
    );
    assert_eq!(turn[3]["code"], "http");
    assert!(
        turn[3]["message"]
            .as_str()
            .unwrap()
            .starts_with("model API returned HTTP 500: "),
        "{}",
        turn[3]
    );
    assert_eq!(turn[5]["status"], "failed");
}

/// A 400 is not retried. With `--json` the result is printed (status
/// failed, the error) and stderr holds the one line only.
fn a_request_error_is_not_retried(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    fixture
        .model
        .push(HttpError::new(400, "bad request: no such model"));
    let run = fixture.send("work", "hello", &["--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    crate::util::assert_one_line_failure(&run, &["conversation", "send"]);
    assert!(
        run.stderr
            .starts_with("exo: turn failed: model API returned HTTP 400: "),
        "{}",
        run.stderr
    );
    let result = run.json();
    assert_eq!(result["status"], "failed");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .ends_with("bad request: no such model"),
        "{result}"
    );
    // The result holds the turn's events (with the session it opened).
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let returned = ids(result["events"].as_array().unwrap());
    let events = fixture.events("work");
    // Then the process left, closing its session.
    assert_eq!(
        kinds(&events[events.len() - 2..]),
        ["turn_ended", "session_ended"]
    );
    assert_eq!(returned, ids(&events[1..events.len() - 1]));
    assert_eq!(
        kinds(result["events"].as_array().unwrap()),
        [
            "session_started",
            "turn_started",
            "workspace_snapshot",
            "message",
            "error",
            "workspace_snapshot",
            "turn_ended"
        ]
    );
    assert_eq!(fixture.model.requests().len(), 1);
}

/// A key with characters that percent-encoding, JSON and the two base64
/// alphabets each write differently.
pub const ODD_KEY: &str = "sk-e2e+/=:~~~0123456789?>abcdXYZ";

/// A provider that rejects the key and echoes it back, in each form
/// providers and proxies echo keys in (encoded, cut short, inside a
/// `Basic` header): the turn fails with the provider's message, the key
/// shown as `<redacted>`, and no form of it is printed or recorded.
fn an_echoed_key_is_redacted_in_every_form(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    fixture.ok(&["secret", "set", "odd-key", "--value", ODD_KEY]);
    fixture.ok(&[
        "model",
        "register",
        "odd",
        "--provider",
        wire.name(),
        "--base-url",
        &fixture.model.base_url(),
        "--upstream",
        UPSTREAM,
        "--secret",
        "odd-key",
    ]);
    fixture.ok(&["agent", "create", "Odd", "--slug", "odd", "--model", "odd"]);
    fixture.ok(&["conversation", "create", "odd", "Echo", "--slug", "echo"]);
    let echoes = exo_fake_model::key_echoes(ODD_KEY);
    let mut printed = String::new();
    for (name, echo) in &echoes {
        fixture.model.push(HttpError::new(
            401,
            &format!("Incorrect API key provided: {echo}. Check it."),
        ));
        let run = fixture.run(&["conversation", "send", "odd", "echo", "hello"]);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains("Incorrect API key provided: ")
                && last.contains("<redacted>")
                && last.ends_with(". Check it."),
            "{name}: {}",
            run.stderr
        );
        printed.push_str(&run.stdout);
        printed.push_str(&run.stderr);
    }
    let requests = fixture.model.requests();
    assert_eq!(requests.len(), echoes.len());
    let sent = match wire {
        Wire::Anthropic => requests[0].header("x-api-key"),
        _ => requests[0].header("authorization"),
    };
    assert!(sent.ends_with(ODD_KEY), "the key was sent as it is: {sent}");

    let events = {
        let page = fixture.json(&["conversation", "events", "odd", "echo"]);
        page["events"].as_array().unwrap().clone()
    };
    let errors = of_kind(&events, "error");
    assert_eq!(errors.len(), echoes.len(), "{events:#?}");
    for error in &errors {
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("Incorrect API key provided: ")
                && message.contains("<redacted>")
                && message.ends_with(". Check it."),
            "{message}"
        );
    }
    let recorded = Value::Array(events).to_string();
    for (name, echo) in &echoes {
        assert!(
            !exo_fake_model::shows_echo(&printed, echo),
            "{name} ({echo}) was printed: {printed}"
        );
        assert!(
            !exo_fake_model::shows_echo(&recorded, echo),
            "{name} ({echo}) was recorded: {recorded}"
        );
    }
    assert!(!contains(&fixture.root_bytes(), ODD_KEY.as_bytes()));
}

/// The file tools stay in the workspace and out of exo's own state, even
/// when the root lies inside the workspace; refusals are results the
/// model sees, and nothing outside is touched.
fn paths_outside_the_workspace_are_refused(wire: Wire) {
    let fixture = Fixture::with_root(wire, "auto", RootAt::InsideWorkspace);
    let outside = fixture.env.dir().join("outside.txt");
    std::fs::write(&outside, "not for the model\n").unwrap();
    let outside_dir = fixture.env.dir().join("outside-dir");
    std::fs::create_dir(&outside_dir).unwrap();
    std::os::unix::fs::symlink(&outside_dir, fixture.workspace.join("out")).unwrap();
    std::fs::write(fixture.workspace.join("inside.txt"), "in\n").unwrap();
    let absolute = fixture.env.dir().join("absolute.txt");
    let calls = [
        ("c1", "read_file", json!({"path": "../outside.txt"})),
        (
            "c2",
            "write_file",
            json!({"path": absolute.to_str().unwrap(), "content": "x"}),
        ),
        (
            "c3",
            "write_file",
            json!({"path": "out/through-link.txt", "content": "x"}),
        ),
        ("c4", "read_file", json!({"path": "out/../../outside.txt"})),
        ("c5", "read_file", json!({"path": ".exo/exo.db"})),
        (
            "c6",
            "write_file",
            json!({"path": ".exo/planted.txt", "content": "x"}),
        ),
        ("c7", "list_files", json!({})),
    ];
    let mut completion = Completion::text("Let me look around.");
    for (id, name, arguments) in &calls {
        completion = completion.with_tool_call(id, name, arguments.clone());
    }
    fixture.model.push(completion);
    fixture
        .model
        .push(Completion::text("I cannot reach those."));
    fixture.send_ok("work", "Read everything you can");

    let turn = fixture.last_turn("work");
    let result = |id: &str| -> Value {
        turn.iter()
            .find(|event| event["kind"] == "tool_result" && event["call_id"] == id)
            .unwrap_or_else(|| panic!("no result for {id}"))
            .clone()
    };
    let refused = |id: &str, message: &str| {
        let result = result(id);
        assert_eq!(result["is_error"], true, "{result}");
        assert_eq!(result["output"], json!({"error": message}), "{result}");
    };
    refused("c1", "path escapes the workspace: ../outside.txt");
    refused(
        "c2",
        &format!("path escapes the workspace: {}", absolute.display()),
    );
    refused("c3", "path escapes the workspace: out/through-link.txt");
    refused("c4", "path escapes the workspace: out/../../outside.txt");
    refused("c5", "refusing to touch exo's state directory: .exo/exo.db");
    refused(
        "c6",
        "refusing to touch exo's state directory: .exo/planted.txt",
    );
    let listing = result("c7");
    assert_eq!(listing["is_error"], false);
    // Neither the root's files nor the symlinked directory are listed.
    assert_eq!(
        listing["output"]["files"],
        json!(["inside.txt"]),
        "{listing}"
    );

    // Nothing outside the workspace, nor in the root, was touched.
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "not for the model\n"
    );
    assert!(!absolute.exists());
    assert_eq!(std::fs::read_dir(&outside_dir).unwrap().count(), 0);
    assert!(!fixture.root.join("planted.txt").exists());
    // The model saw the refusals, not the files.
    let second = &fixture.request(1).body;
    assert!(!second.to_string().contains("not for the model"));
    assert!(!contains(&fixture.root_bytes(), API_KEY.as_bytes()));
}

/// The default policy asks before a write; `send` without a terminal has
/// no one to ask, so the write is denied, the model is told, and the
/// turn goes on.
fn writes_need_a_terminal_to_ask(wire: Wire) {
    let fixture = Fixture::new(wire, "ask");
    fixture.model.push(Completion::text("").with_tool_call(
        "call_w",
        "write_file",
        json!({"path": "denied.txt", "content": "x"}),
    ));
    fixture.model.push(Completion::text("I was not allowed."));
    let run = fixture.send_ok("work", "Write denied.txt");
    assert_eq!(run.stdout, "I was not allowed.\n");
    assert!(
        run.stderr.contains(
            "• write_file: denied.txt\n  error: denied: approval was needed and no one was there to give it\n"
        ),
        "{}",
        run.stderr
    );
    assert!(!fixture.workspace.join("denied.txt").exists());
    let turn = fixture.last_turn("work");
    let approval = of_kind(&turn, "custom")[0];
    assert_eq!(approval["type"], "exo.approval");
    assert_eq!(
        approval["payload"],
        json!({"call_id": "call_w", "tool": "write_file", "approved": false, "decision": "deny", "by": "no_client"})
    );
    let result = of_kind(&turn, "tool_result")[0];
    assert_eq!(result["is_error"], true);
    let error = result["output"]["error"].as_str().unwrap();
    assert!(error.starts_with("denied: "), "{error}");
    assert_eq!(turn.last().unwrap()["status"], "completed");
    // The model was told.
    assert!(transcript(wire, &fixture.request(1).body).contains(&"result call_w".to_owned()));
    assert!(fixture.request(1).body.to_string().contains("denied: "));
}

/// `--approval deny` refuses shell commands and writes by policy; reads
/// need no approval and run.
fn a_deny_policy_refuses_writes_but_not_reads(wire: Wire) {
    let fixture = Fixture::new(wire, "deny");
    std::fs::write(fixture.workspace.join("notes.txt"), "readable\n").unwrap();
    fixture.model.push(
        Completion::text("")
            .with_tool_call("call_r", "read_file", json!({"path": "notes.txt"}))
            .with_tool_call("call_s", "shell", json!({"command": "touch made-by-shell"})),
    );
    fixture
        .model
        .push(Completion::text("Read it; could not run the shell."));
    let run = fixture.send_ok("work", "Read and touch");
    // Each call's line is followed by what happened to it, though the
    // model asked for both at once.
    assert_eq!(
        run.stderr,
        "• read_file: notes.txt\n  ok\n\
         • shell: touch made-by-shell\n  \
         error: denied: this agent's approval policy refuses shell commands and file writes\n"
    );
    assert!(!fixture.workspace.join("made-by-shell").exists());
    let turn = fixture.last_turn("work");
    let approvals = of_kind(&turn, "custom");
    assert_eq!(approvals.len(), 1, "reads are not asked about");
    assert_eq!(
        approvals[0]["payload"],
        json!({"call_id": "call_s", "tool": "shell", "approved": false, "decision": "deny", "by": "policy"})
    );
    let results = of_kind(&turn, "tool_result");
    assert_eq!(results[0]["call_id"], "call_r");
    assert_eq!(results[0]["is_error"], false);
    assert_eq!(results[0]["output"]["content"], "readable\n");
    assert_eq!(results[1]["call_id"], "call_s");
    assert_eq!(results[1]["is_error"], true);
    assert!(results[1]["output"]["error"]
        .as_str()
        .unwrap()
        .starts_with("denied: "));
}

/// A model that never stops calling tools is stopped by `--max-rounds`:
/// the turn ends `max_rounds` with an `error` event saying so, and `send`
/// fails.
fn the_round_limit_stops_a_looping_model(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    for n in 0..2 {
        fixture.model.push(Completion::text("").with_tool_call(
            &format!("call_{n}"),
            "list_files",
            json!({}),
        ));
    }
    let run = fixture.send("work", "Loop", &["--max-rounds", "2"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.trim_end().ends_with(
            "\nexo: turn max_rounds: stopped after 2 model calls: the turn's round limit"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(fixture.model.requests().len(), 2);
    let turn = fixture.last_turn("work");
    let errors = of_kind(&turn, "error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], "max_rounds");
    assert_eq!(turn.last().unwrap()["kind"], "turn_ended");
    assert_eq!(turn.last().unwrap()["status"], "max_rounds");
    // Both calls ran and were answered before the limit.
    assert_eq!(of_kind(&turn, "tool_result").len(), 2);
}

for_each_wire!(ctrl_c_cancels_a_turn_and_keeps_what_streamed);

/// Ctrl-C during a streaming answer cancels the turn: the connection to
/// the model is dropped, the text streamed so far is recorded, the turn
/// ends `cancelled`, and `send` fails saying so.
fn ctrl_c_cancels_a_turn_and_keeps_what_streamed(wire: Wire) {
    use std::io::Read;

    let fixture = Fixture::new(wire, "auto");
    fixture
        .model
        .push(exo_fake_model::Answer::opening("Thinking about it"));
    let mut command = fixture.env.command(&fixture.args(&[
        "conversation",
        "send",
        "coder",
        "work",
        "Take your time",
    ]));
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn exo");
    // Read stdout on a thread, so the test can see the partial answer.
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut pipe = child.stdout.take().unwrap();
    let reader = {
        let stdout = std::sync::Arc::clone(&stdout);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 256];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                stdout.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        })
    };
    let seen = |text: &str| contains(&stdout.lock().unwrap(), text.as_bytes());
    let deadline = Instant::now() + TIMEOUT;
    while !seen("Thinking about it") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "exo exited before the answer streamed"
        );
        assert!(Instant::now() < deadline, "the partial answer never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The answer stalls now. One Ctrl-C cancels the turn (a second would
    // leave at once).
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "exo did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("^C cancelling the turn (again to leave)\n"),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with("exo: turn cancelled"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&stdout.lock().unwrap()),
        "Thinking about it\n"
    );
    assert!(fixture.model.wait_for_disconnects(1, TIMEOUT));

    let turn = fixture.last_turn("work");
    assert_eq!(
        kinds(&turn),
        [
            "turn_started",
            "workspace_snapshot",
            "message",
            "message",
            "workspace_snapshot",
            "turn_ended"
        ]
    );
    assert_eq!(text_of(&turn[3]), "Thinking about it");
    assert_eq!(turn[5]["status"], "cancelled");
}

/// kill -9 of `conversation send`, which runs the turn in its own process,
/// kills the shell commands it started, a background grandchild included:
/// nothing goes on changing the workspace of a turn recorded as
/// interrupted.
#[test]
fn kill_9_of_send_kills_its_shell_commands() {
    use crate::util::{Ticker, TICKER};

    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    // On the host, where the ticker's pids are the test's
    // (tests/cli/sandbox.rs kills a sandboxed one).
    fixture.ok(&["agent", "set", "coder", "--sandbox", "none"]);
    fixture
        .model
        .push(Completion::text("Ticking. ").with_tool_call(
            "call_tick",
            "shell",
            json!({"command": TICKER}),
        ));
    let mut command =
        fixture
            .env
            .command(&fixture.args(&["conversation", "send", "coder", "work", "Tick."]));
    command
        .env(API_KEY_VAR, API_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn exo");
    let ticker = Ticker::started(&fixture.workspace);
    assert!(ticker.processes().len() >= 2, "the shell and its subshell");
    child.kill().unwrap();
    child.wait().unwrap();

    ticker.wait_until_still();
    crate::util::wait_until("no process of the command's group is left", || {
        ticker.processes().is_empty()
    });
    let turn = fixture.last_turn("work");
    assert_eq!(turn.last().unwrap()["kind"], "turn_ended", "{turn:#?}");
    assert_eq!(turn.last().unwrap()["status"], "interrupted");
}

for_each_wire!(a_compaction_replaces_the_history_before_it);

/// A compaction event pointing at a summary artifact: the next request
/// carries the summary instead of what came before, while the log keeps
/// everything.
fn a_compaction_replaces_the_history_before_it(wire: Wire) {
    let fixture = Fixture::new(wire, "auto");
    fixture.model.push(Completion::text("First answer."));
    fixture.send_ok("work", "First question");
    let summary = fixture.env.dir().join("summary.md");
    std::fs::write(&summary, "We discussed the first question.").unwrap();
    fixture.ok(&[
        "artifact",
        "put",
        "coder",
        "work",
        "summaries/1.md",
        summary.to_str().unwrap(),
    ]);
    let compaction = json!({"kind": "custom", "type": "exo.compaction", "payload": {"artifact": "summaries/1.md"}});
    let appended = fixture.run_with(
        &["conversation", "append", "coder", "work"],
        format!("{compaction}\n").as_bytes(),
    );
    assert_eq!(appended.code, 0, "{}", appended.stderr);
    fixture.model.push(Completion::text("Second answer."));
    fixture.send_ok("work", "Second question");
    assert_eq!(
        transcript(wire, &fixture.request(1).body),
        [
            "user: A summary of the conversation so far:\n\nWe discussed the first question.",
            "user: Second question",
        ]
    );
    let messages = of_kind(&fixture.events("work"), "message").len();
    assert_eq!(messages, 4, "the log keeps every message");
}
