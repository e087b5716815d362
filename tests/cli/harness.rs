//! The TypeScript harness end to end: agents whose turns run in a runner
//! (`node` with `@exo/harness` and a module), through the real binary,
//! against a fake model server. What the model receives, what is recorded,
//! swapping executors on one conversation, killing the runner, modules
//! that fail, and the key, which the runner never holds.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use exo_fake_model::{Answer, Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{kinds, of_kind, Fixture, API_KEY, INSTRUCTIONS, TIMEOUT};

/// A module of the repository (`examples/typescript/...` or
/// `tests/fixtures/harness/...`), as an absolute path.
fn module(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    assert!(path.is_file(), "{} is missing", path.display());
    path.display().to_string()
}

/// The runtime must be built (scripts/setup-node, which scripts/test runs
/// first): without it these tests cannot run, and that is a failure, not a
/// skip.
fn require_runtime() {
    let runner = match std::env::var_os("EXO_HARNESS_RUNTIME") {
        Some(dir) => PathBuf::from(dir).join("dist/runner.js"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("typescript/harness/dist/runner.js"),
    };
    assert!(
        runner.is_file(),
        "the TypeScript harness runtime is not built ({}): run scripts/setup-node",
        runner.display()
    );
}

/// A fixture whose agent `coder` runs `module` with the typescript
/// harness.
pub(crate) fn typescript(wire: Wire, approval: &str, path: &str) -> Fixture {
    require_runtime();
    let fixture = Fixture::new(wire, approval);
    let module = module(path);
    fixture.ok(&[
        "--harness",
        "typescript",
        "agent",
        "set",
        "coder",
        "--module",
        &module,
    ]);
    fixture
}

/// The messages of a Chat Completions request, as (role, text) pairs.
fn chat_history(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| {
            let text = match &message["content"] {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|part| part["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                Value::Null => message["tool_calls"].to_string(),
                other => other.to_string(),
            };
            (message["role"].as_str().unwrap().to_string(), text)
        })
        .collect()
}

#[test]
fn a_typescript_harness_runs_a_coding_turn_recorded_as_exo_records_it() {
    let fixture = typescript(
        Wire::OpenAiChat,
        "auto",
        "examples/typescript/basic-harness.ts",
    );
    let shown = fixture.ok(&["agent", "show", "coder"]).stdout;
    assert!(shown.contains("harness: typescript"), "{shown}");
    fixture
        .model
        .push(Completion::text("Writing.").with_tool_call(
            "call_1",
            "write_file",
            json!({"path": "hello.txt", "content": "hi\n"}),
        ));
    fixture.model.push(Completion::text("Wrote hello.txt."));
    let run = fixture.send_ok("work", "Write hello.txt");
    assert_eq!(run.stdout, "Writing.\nWrote hello.txt.\n");
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("hello.txt")).unwrap(),
        "hi\n"
    );
    // The same events the built-in executor records.
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
            "workspace_snapshot",
            "turn_ended"
        ]
    );
    assert_eq!(of_kind(&turn, "turn_ended")[0]["status"], "completed");
    // The model got exo's instructions, exo's tools (its six and those
    // over the history) and the history, and the key only in its header.
    let first = fixture.request(0);
    assert!(first.body.to_string().contains(INSTRUCTIONS));
    let offered: Vec<&str> = first.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(offered, crate::agent::TOOLS);
    assert_eq!(first.header("authorization"), format!("Bearer {API_KEY}"));
    let second = chat_history(&fixture.request(1).body);
    assert_eq!(
        second[1],
        ("user".to_string(), "Write hello.txt".to_string())
    );
    assert_eq!(second.last().unwrap().0, "tool");
}

#[test]
fn the_runner_never_holds_the_key() {
    let fixture = typescript(Wire::OpenAiChat, "auto", "tests/fixtures/harness/spy.ts");
    fixture
        .model
        .push(Completion::text("Looking.").with_tool_call(
            "call_1",
            "shell",
            json!({"command": "env"}),
        ));
    fixture.model.push(Completion::text("Done."));
    // A variable of exo's environment that is not the runner's business.
    let canary = "canary-4b1d8e";
    let args = fixture.args(&["conversation", "send", "coder", "work", "Look around"]);
    let run = fixture.env.run_with(
        &args,
        b"",
        &[
            ("EXO_E2E_PROVIDER_KEY", API_KEY),
            ("SOME_SERVICE_TOKEN", canary),
            ("NODE_OPTIONS", "--max-old-space-size=300"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let turn = fixture.last_turn("work");
    let seen = turn
        .iter()
        .find(|event| event["type"] == "harness.spy.seen")
        .expect("the spy recorded what it saw")["payload"]
        .clone();
    let received = turn
        .iter()
        .find(|event| event["type"] == "harness.spy.received")
        .expect("the spy recorded what exo sent it")["payload"]
        .clone();
    // Not in its environment (as it reads it, and as /proc shows it), its
    // arguments, or anything exo sent it; its own commands do not see it
    // either.
    for (what, text) in [
        ("env", seen["env"].to_string()),
        ("environ", seen["environ"].to_string()),
        ("argv", seen["argv"].to_string()),
        ("traffic", received.to_string()),
    ] {
        assert!(!text.contains(API_KEY), "the key is in the runner's {what}");
    }
    assert!(!seen["env"]
        .as_object()
        .unwrap()
        .keys()
        .any(|name| name.starts_with("EXO_E2E") || name == "EXO_ENCRYPTION_KEY"));
    assert_eq!(seen["env"]["EXO_HARNESS"], "1");
    // Node's own settings are passed on.
    assert_eq!(seen["env"]["NODE_OPTIONS"], "--max-old-space-size=300");
    // Its environment is the short list exo passes, nothing else.
    let names: Vec<&String> = seen["env"].as_object().unwrap().keys().collect();
    for name in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "LANG",
                "TERM",
                "TMPDIR",
                "NODE_PATH",
                "NODE_OPTIONS",
                "EXO_HARNESS"
            ]
            .contains(&name.as_str())
                || name.starts_with("LC_"),
            "the runner got {name}: {names:?}"
        );
    }
    assert!(!seen["environ"].to_string().contains(canary));
    // It holds no file of exo's: not the store, not the key directory.
    let fds = seen["fds"].as_array().unwrap();
    assert!(fds.len() >= 3, "{fds:?}");
    for fd in fds {
        let target = fd.as_str().unwrap();
        assert!(
            !target.starts_with(fixture.root.to_str().unwrap())
                && !target.starts_with(fixture.env.config_dir().to_str().unwrap()),
            "the runner holds {target}: {fds:?}"
        );
    }
    // And not on disk under the root.
    assert!(!crate::util::contains(
        &fixture.root_bytes(),
        API_KEY.as_bytes()
    ));
}

#[test]
fn one_conversation_goes_from_builtin_to_typescript_and_back_keeping_its_history() {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    require_runtime();
    fixture.model.push(Completion::text("One."));
    fixture.model.push(Completion::text("Two."));
    fixture.model.push(Completion::text("Three."));
    fixture.send_ok("work", "first");
    let basic = module("examples/typescript/basic-harness.ts");
    fixture.ok(&[
        "--harness",
        "typescript",
        "agent",
        "set",
        "coder",
        "--module",
        &basic,
    ]);
    fixture.send_ok("work", "second");
    fixture.ok(&["--harness", "builtin", "agent", "set", "coder"]);
    let shown = fixture.ok(&["agent", "show", "coder"]).stdout;
    assert!(
        shown.contains("harness: builtin") && !shown.contains("module:"),
        "{shown}"
    );
    fixture.send_ok("work", "third");
    let expected = |turns: &[(&str, &str)]| -> Vec<(String, String)> {
        turns
            .iter()
            .map(|(role, text)| (role.to_string(), text.to_string()))
            .collect()
    };
    // Every executor sends the model the whole history, in its own turn.
    let history = |n: usize| chat_history(&fixture.request(n).body)[1..].to_vec();
    assert_eq!(history(0), expected(&[("user", "first")]));
    assert_eq!(
        history(1),
        expected(&[("user", "first"), ("assistant", "One."), ("user", "second")])
    );
    assert_eq!(
        history(2),
        expected(&[
            ("user", "first"),
            ("assistant", "One."),
            ("user", "second"),
            ("assistant", "Two."),
            ("user", "third")
        ])
    );
}

#[test]
fn a_harness_that_throws_fails_its_turn_with_an_error_event() {
    let fixture = typescript(Wire::OpenAiChat, "auto", "tests/fixtures/harness/throws.ts");
    let run = fixture.send("work", "go", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("the harness broke on purpose"),
        "{}",
        run.stderr
    );
    let turn = fixture.last_turn("work");
    let errors = of_kind(&turn, "error");
    assert_eq!(errors.len(), 1, "{turn:?}");
    assert_eq!(errors[0]["code"], "harness");
    assert_eq!(of_kind(&turn, "turn_ended")[0]["status"], "failed");
}

#[test]
fn a_module_that_is_not_a_harness_is_refused_and_nothing_changes() {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    require_runtime();
    let before = fixture.json(&["agent", "list"]);
    for (path, why) in [
        (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/harness/nope.ts"),
            "does not exist",
        ),
        (
            PathBuf::from(module("tests/fixtures/harness/not-a-harness.ts")),
            "defineHarness",
        ),
        (
            PathBuf::from(module("tests/fixtures/harness/broken.ts")),
            "cannot load module",
        ),
    ] {
        let path = path.display().to_string();
        for args in [
            vec![
                "--harness",
                "typescript",
                "agent",
                "create",
                "Other",
                "--module",
                &path,
                "--model",
                "m",
            ],
            vec![
                "--harness",
                "typescript",
                "agent",
                "set",
                "coder",
                "--module",
                &path,
            ],
        ] {
            let run = fixture.run(&args);
            assert_eq!(run.code, 1, "{args:?} was accepted");
            assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
            assert!(run.stderr.contains(why), "{path}: {}", run.stderr);
        }
    }
    // A typescript harness needs a module; a builtin one takes none.
    let run = fixture.run(&["--harness", "typescript", "agent", "set", "coder"]);
    assert!(run.stderr.contains("needs a module"), "{}", run.stderr);
    let basic = module("examples/typescript/basic-harness.ts");
    let run = fixture.run(&["agent", "set", "coder", "--module", &basic]);
    assert!(run.stderr.contains("takes no module"), "{}", run.stderr);
    assert_eq!(fixture.json(&["agent", "list"]), before);
}

#[test]
fn a_harness_cannot_read_another_conversation() {
    let fixture = typescript(Wire::OpenAiChat, "auto", "tests/fixtures/harness/misuse.ts");
    fixture.ok(&[
        "conversation",
        "create",
        "coder",
        "Secret",
        "--slug",
        "secret",
    ]);
    let other = fixture.json(&["conversation", "show", "coder", "secret"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    for name in [other.as_str(), "secret"] {
        let run = fixture.send_ok("work", name);
        assert!(
            run.stdout
                .contains("refused: this runner serves conversation ")
                && !run.stdout.contains("read "),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("own events:"), "{}", run.stdout);
        // What the harness returned is the turn's answer, recorded.
        let turn = fixture.last_turn("work");
        let said = of_kind(&turn, "message");
        assert_eq!(said.len(), 2, "{turn:?}");
        assert_eq!(said[1]["role"], "assistant");
        assert_eq!(format!("{}\n", crate::agent::text_of(said[1])), run.stdout);
    }
    // No model was called.
    assert!(fixture.model.requests().is_empty());
}

/// The pid of the runner a conversation's process started (a `node`
/// process running `runner.js` whose parent is `parent`).
fn runner_of(parent: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == parent && String::from_utf8_lossy(&cmdline).contains("runner.js") {
            return Some(pid);
        }
    }
    None
}

/// Starts `conversation send` in the background, waits until the runner
/// is up and the model has been asked `requests` times, and kills the
/// runner with SIGKILL; returns the send's output.
fn kill_runner_during(
    fixture: &Fixture,
    prompt: &str,
    requests: usize,
    settle: impl Fn(),
) -> crate::util::Run {
    let args = fixture.args(&["conversation", "send", "coder", "work", prompt]);
    let child = fixture
        .env
        .command(&args)
        .env("EXO_E2E_PROVIDER_KEY", API_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        fixture.model.wait_for_requests(requests, TIMEOUT),
        "the model was not asked"
    );
    settle();
    let deadline = Instant::now() + TIMEOUT;
    let runner = loop {
        if let Some(runner) = runner_of(child.id()) {
            break runner;
        }
        assert!(Instant::now() < deadline, "no runner");
        std::thread::sleep(Duration::from_millis(10));
    };
    let killed = std::process::Command::new("kill")
        .args(["-9", &runner.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    crate::util::to_run(child.wait_with_output().unwrap())
}

#[test]
fn killing_the_runner_mid_stream_interrupts_the_turn_and_loses_nothing() {
    let fixture = typescript(
        Wire::OpenAiChat,
        "auto",
        "examples/typescript/basic-harness.ts",
    );
    fixture.model.push(Answer::opening("Half an ans"));
    let run = kill_runner_during(&fixture, "first", 1, || {});
    assert_eq!(run.code, 1, "{}", run.stderr);
    let turn = fixture.last_turn("work");
    assert_eq!(of_kind(&turn, "turn_ended")[0]["status"], "interrupted");
    // The next turn starts a new runner and sees the interrupted turn's
    // message.
    fixture.model.push(Completion::text("Fine."));
    fixture.send_ok("work", "second");
    let history = chat_history(&fixture.request(1).body);
    let users: Vec<&str> = history
        .iter()
        .filter(|(role, _)| role == "user")
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(users, ["first", "second"]);
}

#[test]
fn killing_the_runner_mid_tool_interrupts_the_turn_and_stops_the_command() {
    let fixture = typescript(
        Wire::OpenAiChat,
        "auto",
        "examples/typescript/basic-harness.ts",
    );
    let marker = fixture.workspace.join("started");
    fixture
        .model
        .push(Completion::text("Running.").with_tool_call(
            "call_1",
            "shell",
            json!({"command": "touch started; sleep 30; touch finished"}),
        ));
    let run = kill_runner_during(&fixture, "first", 1, || {
        let deadline = Instant::now() + TIMEOUT;
        while !marker.exists() {
            assert!(Instant::now() < deadline, "the command did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    assert_eq!(run.code, 1, "{}", run.stderr);
    let turn = fixture.last_turn("work");
    assert_eq!(of_kind(&turn, "turn_ended")[0]["status"], "interrupted");
    assert!(
        !fixture.workspace.join("finished").exists(),
        "the command outlived its turn"
    );
    // The call is in the history, with a result the next turn shows.
    fixture.model.push(Completion::text("Fine."));
    fixture.send_ok("work", "second");
    let history = fixture.request(1).body["messages"].clone();
    let tool = history
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["role"] == "tool")
        .expect("the call's result is in the next request")
        .clone();
    assert_eq!(tool["tool_call_id"], "call_1");
}

#[test]
fn exo_enforces_the_round_limit_whatever_the_harness_counts() {
    let fixture = typescript(Wire::OpenAiChat, "auto", "tests/fixtures/harness/greedy.ts");
    for _ in 0..10 {
        fixture.model.push(Completion::text("ok"));
    }
    let run = fixture.send("work", "go", &["--max-rounds", "3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "3 calls\n");
    let turn = fixture.last_turn("work");
    let calls = turn
        .iter()
        .find(|event| event["type"] == "harness.greedy.calls")
        .expect("the harness recorded its calls")["payload"]
        .clone();
    assert_eq!(calls["answered"], 3, "{calls}");
    assert_eq!(
        calls["refused"],
        "MaxRoundsError: stopped after 3 model calls: the turn's round limit"
    );
    assert_eq!(fixture.model.requests().len(), 3);
}

/// The README's "TypeScript harnesses" commands, run as written (in a
/// directory holding a copy of the example module, with `gpt-5.4`
/// registered against the fake model server).
#[test]
fn the_readme_typescript_section_runs_as_written() {
    require_runtime();
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = readme
        .split("### TypeScript harnesses")
        .nth(1)
        .expect("the README has a TypeScript harnesses section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let commands: Vec<Vec<String>> = block
        .lines()
        .map(|line| line.split(" # ").next().unwrap().trim())
        .filter(|line| !line.is_empty())
        .map(words)
        .collect();
    assert_eq!(commands.len(), 4, "{block}");
    assert!(commands[0]
        .join(" ")
        .contains("--harness typescript agent create"));

    let env = crate::util::Env::new();
    let examples = env.dir().join("examples/typescript");
    std::fs::create_dir_all(&examples).unwrap();
    std::fs::copy(
        module("examples/typescript/basic-harness.ts"),
        examples.join("basic-harness.ts"),
    )
    .unwrap();
    let model = exo_fake_model::FakeModel::start(Wire::OpenAiChat);
    model.push(Completion::text("Nothing but a module."));
    env.ok(&[
        "model",
        "register",
        "gpt-5.4",
        "--provider",
        "openai-chat",
        "--base-url",
        &model.base_url(),
    ]);
    for command in &commands {
        assert_eq!(command[0], "exo", "{command:?}");
        let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
        let run = env.run(&args);
        assert_eq!(run.code, 0, "{command:?}: {}", run.stderr);
        if args.contains(&"send") {
            assert_eq!(run.stdout, "Nothing but a module.\n");
        }
    }
    let shown = env.ok(&["agent", "show", "ts-basic"]).stdout;
    assert!(
        shown.contains("harness: builtin") && !shown.contains("module:"),
        "{shown}"
    );
    let events = env.events("ts-basic", "try");
    assert_eq!(of_kind(&events, "turn_ended")[0]["status"], "completed");
}

/// A command line split into words as a shell would, for the simple
/// quoting the README uses (double quotes, no escapes).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}
