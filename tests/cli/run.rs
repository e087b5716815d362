//! `exo run claude`: Claude Code's own interactive interface, driven in a
//! real pseudo-terminal, with exo underneath. What the model received is
//! read at the fake server; what exo recorded from the conversation's log.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exo_fake_model::{Completion, Wire};
use serde_json::Value;

use crate::agent::{of_kind, Fixture, API_KEY, API_KEY_VAR, TIMEOUT};

/// A program running on a pseudo-terminal, its screen output collected.
struct Terminal {
    child: Child,
    master: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// Starts `program args` in a new session whose controlling terminal
    /// is a new pseudo-terminal (through util-linux's `setsid --ctty`),
    /// with `configure` applied to the command.
    fn start(program: &Path, args: &[&str], configure: impl FnOnce(&mut Command)) -> Terminal {
        let mut command = Command::new("setsid");
        command.arg("--ctty").arg(program).args(args);
        configure(&mut command);
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master: OwnedFd = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: 40,
                ws_col: 120,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let child = command.spawn().expect("start on the terminal");
        let master = std::fs::File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let mut answers = master.try_clone().unwrap();
        let collected = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    return;
                }
                let chunk = &buffer[..n];
                // Answer what a terminal is asked, as a terminal would: the
                // cursor's position, and what kind of terminal it is.
                if chunk.windows(4).any(|w| w == b"\x1b[6n") {
                    let _ = answers.write_all(b"\x1b[1;1R");
                }
                if chunk.windows(3).any(|w| w == b"\x1b[c") {
                    let _ = answers.write_all(b"\x1b[?62;22c");
                }
                collected.lock().unwrap().extend_from_slice(chunk);
            }
        });
        Terminal {
            child,
            master,
            output,
        }
    }

    /// The screen output so far, escape sequences removed.
    fn text(&self) -> String {
        let raw = String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                match chars.peek() {
                    Some('[') => {
                        chars.next();
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    Some(']') => {
                        // An OSC string ends at BEL, or at ESC \.
                        while let Some(c) = chars.next() {
                            if c == '\u{7}' {
                                break;
                            }
                            if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                                chars.next();
                                break;
                            }
                        }
                    }
                    _ => {
                        chars.next();
                    }
                }
                continue;
            }
            text.push(c);
        }
        text
    }

    /// Waits until `wanted` has shown, spaces aside (a terminal program
    /// may move the cursor instead of writing a space).
    fn wait_for(&self, wanted: &str) {
        let squeeze = |text: &str| text.split_whitespace().collect::<String>();
        let wanted = squeeze(wanted);
        let deadline = Instant::now() + TIMEOUT;
        while !squeeze(&self.text()).contains(&wanted) {
            assert!(
                Instant::now() < deadline,
                "{wanted:?} never showed; the screen: {}\nraw: {}",
                self.text(),
                String::from_utf8_lossy(&self.output.lock().unwrap()).escape_debug()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_line(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        self.master.write_all(b"\r").unwrap();
    }

    fn wait(mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "it did not exit: {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent CLI `name` (its variable `variable`), or `None` after saying
/// the test is skipped.
fn cli(name: &str, variable: &str) -> Option<PathBuf> {
    let found = std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| crate::export::find_in_path(name));
    if found.is_none() {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "the {name} CLI is required (EXO_REQUIRE_AGENTS=1): run scripts/setup-agents"
        );
        eprintln!("skipped: the {name} CLI is not installed (scripts/setup-agents installs it)");
    }
    found
}

fn claude() -> Option<PathBuf> {
    cli("claude", "EXO_CLAUDE_BIN")
}

fn run_claude(fixture: &Fixture, workspace: &Path) -> Terminal {
    run_cli(fixture, workspace, "claude")
}

/// `exo run CLI --agent coder --conversation work` on a terminal, in the
/// workspace.
fn run_cli(fixture: &Fixture, workspace: &Path, name: &str) -> Terminal {
    let args = fixture.args(&["run", name, "--agent", "coder", "--conversation", "work"]);
    // The environment `exo` gets in every test, then this one's.
    let template = fixture.env.command(&[]);
    Terminal::start(Path::new(env!("CARGO_BIN_EXE_exo")), &args, |command| {
        for (name, value) in template.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
            .current_dir(workspace)
            .env(API_KEY_VAR, API_KEY)
            .env("TERM", "xterm-256color");
    })
}

/// The text of a Messages request's conversation, Claude Code's reminders
/// left out.
fn said(body: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for message in body["messages"].as_array().unwrap() {
        if message["role"] == "system" {
            continue;
        }
        for block in message["content"].as_array().into_iter().flatten() {
            if let Some(text) = block["text"].as_str() {
                if !text.starts_with("<system-reminder>") {
                    lines.push(format!("{}: {text}", message["role"].as_str().unwrap()));
                }
            }
        }
    }
    lines
}

fn streamed_requests(fixture: &Fixture) -> Vec<Value> {
    fixture
        .model
        .requests()
        .into_iter()
        .filter(|request| request.body["stream"] == true)
        .map(|request| request.body)
        .collect()
}

#[test]
fn exo_run_claude_records_the_interactive_session_and_resumes_it_from_the_log() {
    if claude().is_none() {
        return;
    }
    let fixture = Fixture::new(Wire::Anthropic, "auto");
    let start = fixture.events("work")[0]["id"].as_str().unwrap().to_owned();

    // A session: one prompt, answered.
    fixture
        .model
        .push(Completion::text("first answer from the model"));
    let mut terminal = run_claude(&fixture, &fixture.workspace);
    terminal.wait_for("❯");
    terminal.type_line("first question");
    terminal.wait_for("first answer from the model");
    let deadline = Instant::now() + TIMEOUT;
    while of_kind(&fixture.events("work"), "turn_ended").is_empty() {
        assert!(Instant::now() < deadline, "the turn was never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    terminal.type_line("/exit");
    assert_eq!(terminal.wait(), 0);

    let events = fixture.events("work");
    let messages: Vec<String> = of_kind(&events, "message")
        .iter()
        .map(|event| crate::agent::text_of(event))
        .collect();
    assert_eq!(
        messages,
        ["first question", "first answer from the model"],
        "{events:#?}"
    );
    assert_eq!(of_kind(&events, "turn_ended")[0]["status"], "completed");
    assert_eq!(of_kind(&events, "session_ended")[0]["reason"], "closed");
    let kinds: Vec<String> = crate::agent::kinds(&events);
    assert!(
        kinds.contains(&"custom:exo.gateway.exchange".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"custom:claude.entry".to_string()),
        "{kinds:?}"
    );
    assert!(of_kind(&events, "workspace_snapshot").len() >= 2);
    // The key went upstream from the gateway, and nowhere else.
    for request in fixture.model.requests() {
        assert_eq!(request.header("x-api-key"), API_KEY);
    }
    assert!(!String::from_utf8_lossy(&fixture.root_bytes()).contains(API_KEY));

    // Rewound to before that turn, the next session starts from there.
    fixture.ok(&["conversation", "rewind", "coder", "work", "--at", &start]);
    fixture.model.push(Completion::text("second answer"));
    let mut terminal = run_claude(&fixture, &fixture.workspace);
    terminal.wait_for("❯");
    terminal.type_line("second question");
    terminal.wait_for("second answer");
    terminal.type_line("/exit");
    assert_eq!(terminal.wait(), 0);
    let last = streamed_requests(&fixture).last().unwrap().clone();
    assert_eq!(said(&last), ["user: second question"]);

    // Not rewound: the third session remembers the second.
    fixture.model.push(Completion::text("third answer"));
    let mut terminal = run_claude(&fixture, &fixture.workspace);
    terminal.wait_for("❯");
    terminal.type_line("third question");
    terminal.wait_for("third answer");
    terminal.type_line("/exit");
    assert_eq!(terminal.wait(), 0);
    let last = streamed_requests(&fixture).last().unwrap().clone();
    assert_eq!(
        said(&last),
        [
            "user: second question",
            "assistant: second answer",
            "user: third question"
        ]
    );
}

/// The conversation in a Responses request Codex sent, its own context
/// left out.
fn codex_said(body: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for item in body["input"].as_array().unwrap() {
        if item["type"] != "message" || item["role"] == "developer" {
            continue;
        }
        let text: String = item["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|part| part["text"].as_str())
            .collect();
        if !text.starts_with("<environment_context>") {
            lines.push(format!("{}: {text}", item["role"].as_str().unwrap()));
        }
    }
    lines
}

/// Codex's `/exit`: the command is picked, then run.
fn codex_exit(terminal: &mut Terminal) {
    terminal.type_line("/exit");
    std::thread::sleep(Duration::from_millis(500));
    let _ = terminal.master.write_all(b"\r");
}

/// The requests that were turns of the conversation (not Codex's own
/// title requests).
fn codex_turns(fixture: &Fixture) -> Vec<Value> {
    fixture
        .model
        .requests()
        .into_iter()
        .map(|request| request.body)
        .filter(|body| !body.to_string().contains("task title"))
        .collect()
}

#[test]
fn exo_run_codex_records_the_interactive_session_and_resumes_it_from_the_log() {
    if cli("codex", "EXO_CODEX_BIN").is_none() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let start = fixture.events("work")[0]["id"].as_str().unwrap().to_owned();

    fixture
        .model
        .push(Completion::text("first answer from codex"));
    let mut terminal = run_cli(&fixture, &fixture.workspace, "codex");
    terminal.wait_for("Ask Codex");
    terminal.type_line("first question");
    terminal.wait_for("first answer from codex");
    let deadline = Instant::now() + TIMEOUT;
    while of_kind(&fixture.events("work"), "turn_ended").is_empty() {
        assert!(Instant::now() < deadline, "the turn was never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    codex_exit(&mut terminal);
    assert_eq!(terminal.wait(), 0);

    let events = fixture.events("work");
    let turn: Vec<Value> = events
        .iter()
        .filter(|event| event["turn"] == of_kind(&events, "turn_started")[0]["turn"])
        .cloned()
        .collect();
    let messages: Vec<String> = of_kind(&turn, "message")
        .iter()
        .map(|event| crate::agent::text_of(event))
        .collect();
    assert_eq!(messages, ["first question", "first answer from codex"]);
    assert_eq!(of_kind(&turn, "turn_ended")[0]["status"], "completed");
    let kinds = crate::agent::kinds(&turn);
    assert!(
        kinds.contains(&"custom:exo.gateway.exchange".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"custom:codex.item".to_string()),
        "{kinds:?}"
    );
    assert_eq!(of_kind(&events, "session_ended")[0]["reason"], "closed");
    for request in fixture.model.requests() {
        assert_eq!(request.header("authorization"), format!("Bearer {API_KEY}"));
    }
    assert!(!String::from_utf8_lossy(&fixture.root_bytes()).contains(API_KEY));

    // Rewound to before that turn, the next session starts from there.
    fixture.ok(&["conversation", "rewind", "coder", "work", "--at", &start]);
    fixture.model.push(Completion::text("second answer"));
    let mut terminal = run_cli(&fixture, &fixture.workspace, "codex");
    terminal.wait_for("Ask Codex");
    terminal.type_line("second question");
    terminal.wait_for("second answer");
    codex_exit(&mut terminal);
    assert_eq!(terminal.wait(), 0);
    assert_eq!(
        codex_said(codex_turns(&fixture).last().unwrap()),
        ["user: second question"]
    );

    // Not rewound: the next session resumes with the second turn.
    fixture.model.push(Completion::text("third answer"));
    let mut terminal = run_cli(&fixture, &fixture.workspace, "codex");
    terminal.wait_for("Ask Codex");
    terminal.type_line("third question");
    terminal.wait_for("third answer");
    codex_exit(&mut terminal);
    assert_eq!(terminal.wait(), 0);
    assert_eq!(
        codex_said(codex_turns(&fixture).last().unwrap()),
        [
            "user: second question",
            "assistant: second answer",
            "user: third question"
        ]
    );
}

#[test]
fn exo_run_refuses_what_it_cannot_run() {
    let fixture = Fixture::new(Wire::Anthropic, "auto");
    let error = fixture.run(&["run", "vim"]);
    assert_eq!(error.code, 1);
    assert!(
        error.stderr.contains("exo run knows `claude`"),
        "{}",
        error.stderr
    );
    let error = fixture.run(&["run", "claude", "--conversation", "work", "--continue"]);
    assert_eq!(error.code, 2, "{}", error.stderr);
    if claude().is_none() {
        return;
    }
    let error = fixture.run(&["run", "claude", "--agent", "nobody"]);
    assert_eq!(error.code, 1);
    assert!(error.stderr.contains("nobody"), "{}", error.stderr);
    // An agent whose model is not Anthropic's.
    let openai = Fixture::new(Wire::OpenAi, "auto");
    let error = openai.run(&[
        "run",
        "claude",
        "--agent",
        "coder",
        "--conversation",
        "work",
    ]);
    assert_eq!(error.code, 1);
    assert!(error.stderr.contains("Anthropic model"), "{}", error.stderr);
}

#[test]
fn exo_run_hands_the_cli_a_clean_environment_and_leaves_nothing_when_refused() {
    let fixture = Fixture::new(Wire::Anthropic, "auto");
    // A stand-in CLI: what it sees, and whether exo works from inside it.
    let dir = fixture.env.dir().join("fake");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("claude");
    let seen = dir.join("seen.txt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > '{seen}'\n'{exo}' --root '{root}' agent list >> '{seen}' 2>&1\necho \"exit $?\" >> '{seen}'\n",
            seen = seen.display(),
            exo = env!("CARGO_BIN_EXE_exo"),
            root = fixture.root.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| {
        let mut command = fixture.env.command(&fixture.args(args));
        command
            .current_dir(&fixture.workspace)
            .env(API_KEY_VAR, API_KEY)
            .env("EXO_CLAUDE_BIN", &script)
            .env("EXO_CODEX_BIN", &script);
        command.output().unwrap()
    };
    for _ in 0..2 {
        let output = run(&["run", "claude", "--agent", "coder"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(!seen.contains("EXO_HANDOVER_FD"), "{seen}");
    assert!(!seen.contains(API_KEY), "{seen}");
    // The CLI holds a gateway token in the key's place.
    assert!(seen.contains("ANTHROPIC_API_KEY="), "{seen}");
    assert!(seen.contains("exit 0"), "{seen}");
    // Two runs without --continue: two conversations of their own.
    let listed = fixture.json(&["conversation", "list", "coder"]);
    let names: Vec<&str> = listed["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("claude ")).count(),
        2,
        "{names:?}"
    );
    // Refused (Codex needs an OpenAI model): no conversation is left.
    let output = run(&["run", "codex", "--agent", "coder"]);
    assert_eq!(output.status.code(), Some(1));
    let after = fixture.json(&["conversation", "list", "coder"]);
    assert_eq!(
        after["conversations"].as_array().unwrap().len(),
        listed["conversations"].as_array().unwrap().len()
    );
}
