//! The command line as a daily tool: help that teaches, possible values,
//! completions and the man page, the conversation in use, following a
//! conversation live, turns and approvals from any terminal, empty lists on
//! a fresh directory, colours, and `exo doctor`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{Fixture, TIMEOUT};
use crate::util::{message, wait_until, Env};

/// Words of exo's insides that have no place in its help.
const INTERNAL: [&str; 6] = [
    "exo-store",
    "exo-cli",
    "crate",
    "thin over",
    "argument parsing",
    "in-process",
];

/// Every command path, from `exo help`'s own listing, walked down.
fn command_paths(env: &Env) -> Vec<Vec<String>> {
    let mut paths = vec![Vec::new()];
    let mut all = Vec::new();
    while let Some(path) = paths.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = env.ok(&args);
        // Sub-commands are listed under "Commands:" (or the task headings
        // of `exo --help`) as "  name  about".
        let mut listing = false;
        for line in run.stdout.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                listing = !["Options:", "Arguments:", "Example:", "Examples:"].contains(&line)
                    && !line.starts_with("Usage");
                continue;
            }
            if !listing || !line.starts_with("  ") || line.starts_with("   ") {
                continue;
            }
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if name == "help" || name.starts_with('-') {
                continue;
            }
            let mut sub = path.clone();
            sub.push(name.to_string());
            paths.push(sub);
        }
        all.push(path);
    }
    all
}

#[test]
fn help_says_what_exo_is_lists_commands_by_task_and_every_command_has_an_example() {
    let env = Env::new();
    let top = env.ok(&["--help"]).stdout;
    assert!(
        top.starts_with("exo keeps coding agents' sessions"),
        "{top}"
    );
    for heading in [
        "Agents and their conversations:",
        "Run and follow turns:",
        "Files and history:",
        "Models and secrets:",
        "Upkeep:",
    ] {
        assert!(top.contains(heading), "{heading} missing from:\n{top}");
    }
    let paths = command_paths(&env);
    assert!(paths.len() > 50, "only {} commands found", paths.len());
    let mut without_example = Vec::new();
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = env.ok(&args).stdout;
        for word in INTERNAL {
            assert!(
                !help.to_lowercase().contains(word),
                "`exo {}` help says {word:?}:\n{help}",
                path.join(" ")
            );
        }
        // Every group of commands and every command a user types first
        // shows an example.
        if !help.contains("Example") {
            without_example.push(path.join(" "));
        }
    }
    assert!(
        without_example.is_empty(),
        "commands whose help has no example: {without_example:?}"
    );
}

#[test]
fn enumerations_list_their_possible_values_in_help_and_errors() {
    let env = Env::new();
    let cases: [(&[&str], &str); 5] = [
        (
            &["agent", "create", "X", "--approval", "maybe"],
            "[possible values: auto, ask, deny]",
        ),
        (
            &["model", "register", "m", "--provider", "gemini"],
            "[possible values: openai, openai-chat, anthropic, scripted]",
        ),
        (
            &["conversation", "events", "a", "c", "--kind", "nope"],
            "possible values: conversation_created, session_started",
        ),
        (
            &["binding", "list", "--kind", "ssh"],
            "[possible values: env, mcp, model, http]",
        ),
        (
            &[
                "approval",
                "respond",
                "0193d2d8-0d1c-7000-8000-000000000000",
                "c",
                "yes",
            ],
            "[possible values: allow-once, allow-turn, allow-always, deny]",
        ),
    ];
    for (args, values) in cases {
        let run = env.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(values), "{args:?}: {}", run.stderr);
    }
    // Nothing was created by refused commands.
    assert!(!env.root().exists());
    let help = env.ok(&["agent", "create", "--help"]).stdout;
    assert!(
        help.contains("Possible values:") && help.contains("- deny:"),
        "{help}"
    );
}

#[test]
fn completions_load_in_each_shell_and_the_man_page_renders() {
    let env = Env::new();
    let bash = env.ok(&["completions", "bash"]).stdout;
    let script = env.dir().join("exo.bash");
    std::fs::write(&script, &bash).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p exo", script.display()))
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        loaded.status.success() && said.contains("complete") && said.contains(" exo"),
        "{said} {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    // The subcommands are offered after `exo `.
    let offered = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(exo con); COMP_CWORD=1; _exo exo con exo; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .expect("bash");
    assert!(
        String::from_utf8_lossy(&offered.stdout).contains("conversation"),
        "{}{}",
        String::from_utf8_lossy(&offered.stdout),
        String::from_utf8_lossy(&offered.stderr)
    );
    for (shell, check) in [("zsh", "-n"), ("fish", "-n")] {
        let text = env.ok(&["completions", shell]).stdout;
        assert!(text.contains("exo"), "{shell}: {text}");
        let file = env.dir().join(format!("exo.{shell}"));
        std::fs::write(&file, &text).unwrap();
        match std::process::Command::new(shell)
            .arg(check)
            .arg(&file)
            .output()
        {
            Ok(output) => assert!(
                output.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(_) => eprintln!("skipped: {shell} is not installed, its script was not parsed"),
        }
    }
    let page = env.ok(&["man"]).stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH exo 1"),
        "{page}"
    );
    assert!(
        page.contains("conversation") && page.contains(".SH"),
        "{page}"
    );
    let dir = env.dir().join("man1");
    env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    for page in [
        "exo.1",
        "exo-conversation.1",
        "exo-conversation-watch.1",
        "exo-use.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} not written");
    }
    // A real man(1), when installed, formats it.
    if let Ok(output) = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.join("exo.1"))
        .env("MANWIDTH", "80")
        .output()
    {
        if output.status.success() {
            assert!(String::from_utf8_lossy(&output.stdout).contains("conversation"));
        } else {
            eprintln!("skipped: man(1) did not run");
        }
    }
}

#[test]
fn reading_commands_on_a_fresh_directory_print_empty_results_and_create_nothing() {
    let env = Env::new();
    for (args, key) in [
        (&["agent", "list"][..], "agents"),
        (&["secret", "list"][..], "secrets"),
        (&["model", "list"][..], "models"),
        (&["binding", "list"][..], "bindings"),
        (&["approval", "list"][..], "approvals"),
    ] {
        let value = env.json(args);
        assert_eq!(value, json!({ key: [] }), "{args:?}");
        assert_eq!(env.run(args).code, 0, "{args:?}");
    }
    assert_eq!(
        env.json(&["use"]),
        json!({ "agent": null, "conversation": null })
    );
    assert!(env.ok(&["use"]).stdout.contains("no conversation in use"));
    assert!(!env.root().exists(), "a reading command created the root");
    // Writing commands still create it.
    env.ok(&["agent", "create", "A", "--slug", "a"]);
    assert!(env.root().join("exo.db").exists());
    assert_eq!(
        env.json(&["agent", "list"])["agents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn use_makes_agent_and_conversation_optional_everywhere() {
    let env = Env::new();
    env.agent_and_conversation();
    env.ok(&["conversation", "create", "a", "Other", "--slug", "other"]);
    let failed = env.fails(&["conversation", "show"]);
    assert!(failed.contains("none in use"), "{failed}");

    let chosen = env.json(&["use", "a", "c"]);
    assert_eq!(chosen["conversation"]["slug"], "c");
    assert_eq!(chosen["agent"]["slug"], "a");
    assert!(env.ok(&["use"]).stdout.starts_with("using a/c ("));
    // A wrong choice is refused and leaves the choice as it was.
    assert!(env.fails(&["use", "a", "nope"]).contains("nope"));
    assert_eq!(env.json(&["use"])["conversation"]["slug"], "c");

    // Every kind of command, without AGENT CONV.
    assert_eq!(env.json(&["conversation", "show"])["slug"], "c");
    let run = env.run_with(
        &["--json", "conversation", "append"],
        format!("{}\n", message("hello")).as_bytes(),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let events = env.json(&["conversation", "events"])["events"].clone();
    let head = events.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.json(&["conversation", "event", &head])["id"], head);
    let run = env.run_with(&["artifact", "put", "notes.txt", "-"], b"noted", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.ok(&["artifact", "get", "notes.txt"]).stdout, "noted");
    let fork = env.json(&["conversation", "fork", "Side"]);
    assert_eq!(fork["name"], "Side");
    // Named ones still go where they are told: the positional order scripts
    // use is unchanged.
    assert_eq!(
        env.json(&["conversation", "show", "a", "other"])["slug"],
        "other"
    );
    let run = env.run_with(&["artifact", "put", "a", "other", "x.txt", "-"], b"x", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.ok(&["artifact", "get", "a", "other", "x.txt"]).stdout,
        "x"
    );
    assert!(env.run(&["artifact", "get", "x.txt"]).code != 0);
    // Half a name is a usage error, not a guess.
    assert_eq!(env.run(&["conversation", "show", "a"]).code, 2);

    // The choice follows a deleted conversation no further.
    env.ok(&["use", "a", "other"]);
    env.ok(&["conversation", "delete", "a", "other"]);
    let gone = env.fails(&["use"]);
    assert!(
        gone.contains("gone") && gone.contains("exo use --clear"),
        "{gone}"
    );
    assert_eq!(env.json(&["use", "--clear"]), json!({ "cleared": true }));
    // A FIFO where the choice is kept is refused at once, never waited on.
    let fifo = env.root().join("current.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let refused = env.fails(&["conversation", "show"]);
    assert!(refused.contains("not a regular file"), "{refused}");
    env.ok(&["use", "--clear"]);
    assert!(!fifo.exists());
    assert!(env
        .fails(&["conversation", "events"])
        .contains("none in use"));
}

#[test]
fn send_and_chat_make_their_conversation_the_one_in_use() {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.model.push(Completion::text("Hi."));
    fixture.model.push(Completion::text("Again."));
    fixture.send_ok("work", "hello");
    assert_eq!(fixture.json(&["use"])["conversation"]["slug"], "work");
    // Now the names may be left out, of send too.
    let run = fixture.run(&["conversation", "send", "and again"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "Again.\n");

    // `turn show` shows the last turn; `--json` has its record and events.
    let shown = fixture.json(&["turn", "show"]);
    assert_eq!(shown["turn"]["status"], "completed");
    let kinds: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"turn_started"));
    assert_eq!(kinds.last(), Some(&"turn_ended"));
    let turn = shown["turn"]["id"].as_str().unwrap().to_string();
    let text = fixture.ok(&["turn", "show", "coder", "work", &turn]).stdout;
    assert!(
        text.starts_with(&format!("turn {turn}  completed")),
        "{text}"
    );
    assert!(text.contains("assistant: Again."), "{text}");
    // A turn of another conversation is not shown as this one's.
    fixture.ok(&[
        "conversation",
        "create",
        "coder",
        "Other",
        "--slug",
        "other",
    ]);
    let run = fixture.run(&["turn", "show", "coder", "other", &turn]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("not on the conversation's current history"),
        "{}",
        run.stderr
    );
    // Nothing runs, so nothing to cancel.
    let run = fixture.run(&["turn", "cancel"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no turn is running in work"),
        "{}",
        run.stderr
    );
}

/// `exo conversation watch` in the background, its stdout read line by line.
/// Killed if the test ends without interrupting it.
pub struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// Stops the root's daemon (one a watch started) when the test ends,
/// however it ends.
pub struct StopsDaemon<'a>(pub &'a Fixture);

impl Drop for StopsDaemon<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["daemon", "stop"]);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watcher {
    pub fn start(fixture: &Fixture, args: &[&str]) -> Watcher {
        let mut command = fixture.env.command(&fixture.args(args));
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn exo watch");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// The next line, within the test's time bound.
    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("the watch printed nothing in time")
    }

    /// Lines until one satisfies `done`, which is returned.
    pub fn until(&self, mut done: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "the line never came");
            let line = self.next();
            if done(&line) {
                return line;
            }
        }
    }

    /// Ctrl-C, and the exit status.
    pub fn interrupt(mut self) -> (i32, String) {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(),
            rustix::process::Signal::INT,
        )
        .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the watch did not end on Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

#[test]
fn watch_starts_a_daemon_and_shows_what_another_process_records_as_it_happens() {
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let _stops = StopsDaemon(&fixture);
    fixture.model.push(Completion::text("First answer."));
    fixture.send_ok("work", "first");
    let watch = Watcher::start(
        &fixture,
        &[
            "--json",
            "conversation",
            "watch",
            "coder",
            "work",
            "--last",
            "2",
        ],
    );
    // The last two events replayed first.
    let stored = fixture.events("work");
    for expected in &stored[stored.len() - 2..] {
        let replayed: Value = serde_json::from_str(&watch.next()).unwrap();
        assert_eq!(&replayed, expected);
    }
    // Another process appends (through the daemon the watch started).
    assert!(fixture.run(&["daemon", "status"]).code == 0);
    let run = fixture.run_with(
        &["conversation", "append", "coder", "work"],
        format!("{}\n", message("from elsewhere")).as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = watch.next();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["kind"], "message");
    assert_eq!(event["content"][0]["text"], "from elsewhere");
    // A turn run by another process streams its text to the watch.
    fixture.model.push(Completion::text("Streamed answer."));
    fixture.send_ok("work", "second");
    let delta = watch.until(|line| line.contains("\"turn/delta\""));
    let delta: Value = serde_json::from_str(&delta).unwrap();
    assert!(delta["params"]["text"].is_string(), "{delta}");
    watch.until(|line| line.contains("\"turn_ended\""));
    let (code, stderr) = watch.interrupt();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("started a daemon"), "{stderr}");
    // The daemon goes on until stopped.
    assert_eq!(fixture.run(&["daemon", "status"]).code, 0);
}

#[test]
fn events_follow_applies_its_filters_to_live_events_and_text_mode_reads_well() {
    let fixture = Fixture::new(Wire::Anthropic, "auto");
    let daemon = fixture.daemon();
    let follow = Watcher::start(
        &fixture,
        &[
            "conversation",
            "events",
            "coder",
            "work",
            "--follow",
            "--kind",
            "message",
        ],
    );
    let run = fixture.run_with(
        &["conversation", "append", "coder", "work"],
        format!(
            "{}\n{}\n",
            json!({"kind": "custom", "type": "t.x", "payload": {}}),
            message("only messages")
        )
        .as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = follow.next();
    assert!(
        line.contains("message") && line.contains("user: only messages"),
        "{line}"
    );
    let (code, stderr) = follow.interrupt();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("started a daemon"), "{stderr}");
    // Bad cursors and unknown conversations fail in one line.
    let run = fixture.run(&["conversation", "watch", "coder", "nope"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    fixture.stop(daemon);
}

#[test]
fn approvals_are_listed_and_answered_from_another_terminal() {
    let fixture = Fixture::new(Wire::OpenAi, "ask");
    let daemon = fixture.daemon();
    fixture
        .model
        .push(Completion::text("Writing.").with_tool_call(
            "call_w",
            "write_file",
            json!({"path": "w.txt", "content": "written\n"}),
        ));
    fixture.model.push(Completion::text("Done."));
    // A REPL runs the turn and waits on its question; nobody types.
    let mut command = fixture
        .env
        .command(&fixture.args(&["chat", "repl", "coder", "work"]));
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut repl = command.spawn().expect("spawn repl");
    let mut input = repl.stdin.take().unwrap();
    input.write_all(b"Write w.txt\n").unwrap();
    input.flush().unwrap();
    let mut pending = Value::Null;
    wait_until("the question to be listed", || {
        pending = fixture.json(&["approval", "list"]);
        !pending["approvals"].as_array().unwrap().is_empty()
    });
    let question = pending["approvals"][0].clone();
    assert_eq!(question["call_id"], "call_w");
    assert_eq!(question["tool"], "write_file");
    assert_eq!(question["arguments"]["path"], "w.txt");
    // Listed for its conversation, not for another.
    fixture.ok(&[
        "conversation",
        "create",
        "coder",
        "Other",
        "--slug",
        "other",
    ]);
    assert_eq!(
        fixture.json(&["approval", "list", "coder", "other"]),
        json!({ "approvals": [] })
    );
    assert_eq!(
        fixture.json(&["approval", "list", "coder", "work"])["approvals"][0]["call_id"],
        "call_w"
    );
    let turn = question["turn"].as_str().unwrap();
    let text = fixture.ok(&["approval", "list"]).stdout;
    assert!(text.contains(turn) && text.contains("call_w"), "{text}");
    fixture.ok(&["approval", "respond", turn, "call_w", "allow-once"]);
    wait_until("the write to run", || {
        fixture.workspace.join("w.txt").exists()
    });
    // Answered once: a second answer finds nothing waiting.
    let run = fixture.run(&["approval", "respond", turn, "call_w", "deny"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not waiting"), "{}", run.stderr);
    drop(input);
    let output = repl.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = fixture.events("work");
    let approval = events
        .iter()
        .find(|event| event["type"] == "exo.approval")
        .expect("the decision is recorded");
    assert_eq!(approval["payload"]["by"], "user");
    assert_eq!(approval["payload"]["decision"], "allow_once");
    fixture.stop(daemon);
}

#[test]
fn colour_follows_the_flag_and_no_color_and_never_reaches_a_pipe() {
    let env = Env::new();
    env.agent_and_conversation();
    let ws = env.dir().join("ws");
    std::fs::create_dir(&ws).unwrap();
    env.ok(&[
        "conversation",
        "create",
        "a",
        "W",
        "--slug",
        "w",
        "--workspace",
        ws.to_str().unwrap(),
    ]);
    env.ok(&["snapshot", "take", "a", "w"]);
    std::fs::write(ws.join("f.txt"), "new line\n").unwrap();
    let args = ["snapshot", "diff", "a", "w", "--diff"];
    let piped = env.ok(&args).stdout;
    assert!(
        piped.contains("+new line") && !piped.contains('\x1b'),
        "{piped}"
    );
    let mut always = vec!["--color", "always"];
    always.extend_from_slice(&args);
    let coloured = env.ok(&always).stdout;
    assert!(
        coloured.contains("\x1b[32m+new line\x1b[0m"),
        "{coloured:?}"
    );
    // Errors too: the `exo:` prefix.
    let run = env.run(&["--color", "always", "conversation", "show", "a", "nope"]);
    assert!(
        run.stderr.starts_with("\x1b[31mexo:\x1b[0m "),
        "{:?}",
        run.stderr
    );
    let run = env.run_with(
        &["--color", "never", "conversation", "show", "a", "nope"],
        b"",
        &[("NO_COLOR", "1")],
    );
    assert!(run.stderr.starts_with("exo: "), "{:?}", run.stderr);
    // A spinner never reaches a pipe: stderr of a long command stays empty.
    let run = env.run(&["snapshot", "take", "a", "w"]);
    assert_eq!(run.stderr, "");
    assert_eq!(env.run(&["gc"]).stderr, "");
    // On a terminal (script(1) gives it one), the long command says what it
    // does while it runs, then clears the line.
    let Ok(script) = which("script") else {
        eprintln!("skipped: script(1) is not installed, no terminal to draw on");
        return;
    };
    std::fs::write(ws.join("g.txt"), "more\n").unwrap();
    let output = env
        .shell(
            "exec \"$1\" -qec \"$0 snapshot take a w\" /dev/null",
            &[script.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("snapshotting the workspace"), "{screen:?}");
    assert!(screen.contains("manual"), "{screen:?}");
}

/// A PATH holding only these programs (links to the real ones).
fn path_with(env: &Env, name: &str, programs: &[&str]) -> String {
    let dir = env.dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for program in programs {
        if let Ok(found) = which(program) {
            std::os::unix::fs::symlink(found, dir.join(program)).unwrap();
        }
    }
    dir.display().to_string()
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or(())
}

#[test]
fn doctor_reports_each_part_with_a_fix_and_fails_only_on_exos_own() {
    let env = Env::new();
    // Nothing at all: a fresh directory, no programs.
    let bare = path_with(&env, "bare", &[]);
    let run = env.run_with(&["--json", "doctor"], b"", &[("PATH", &bare)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let check = |report: &Value, name: &str| -> Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|check| check["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {report}"))
            .clone()
    };
    for name in [
        "store",
        "key",
        "daemon",
        "node",
        "pnpm",
        "codex",
        "claude",
        "docker",
        "bubblewrap",
    ] {
        let found = check(&report, name);
        assert_ne!(found["status"], "fail", "{found}");
        if found["status"] == "missing" {
            assert!(
                found["fix"].as_str().is_some_and(|fix| !fix.is_empty()),
                "{found}"
            );
        }
    }
    assert_eq!(check(&report, "node")["status"], "missing");
    assert!(check(&report, "node")["detail"]
        .as_str()
        .unwrap()
        .contains("not found"));
    assert_eq!(check(&report, "store")["status"], "missing");
    assert!(!env.root().exists(), "doctor created the root");

    // With a store, a key and Node present.
    env.agent_and_conversation();
    let run = env.run_with(&["secret", "set", "s", "--value", "v"], b"", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let with_node = path_with(&env, "with-node", &["node"]);
    let run = env.run_with(&["--json", "doctor"], b"", &[("PATH", &with_node)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(check(&report, "store")["status"], "ok");
    assert_eq!(check(&report, "key")["status"], "ok");
    assert!(check(&report, "key")["detail"]
        .as_str()
        .unwrap()
        .contains("opens this store's secrets"));
    if which("node").is_ok() {
        assert_eq!(check(&report, "node")["status"], "ok", "{report}");
    }
    let text = env.run_with(&["doctor"], b"", &[("PATH", &bare)]).stdout;
    assert!(
        text.lines().any(|line| line.starts_with("ok   store")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("--   node") && line.contains("; ")),
        "{text}"
    );

    // A key others can read fails the run, saying how to fix it.
    let key = env.config_dir().join("exo").join("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let run = env.run_with(&["doctor"], b"", &[("PATH", &bare)]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("FAIL key") && run.stdout.contains("chmod 600"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "exo: 1 check failed\n");
    // A wrong key too.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let wrong = "11".repeat(32);
    let run = env.run_with(
        &["doctor"],
        b"",
        &[("PATH", &bare), ("EXO_ENCRYPTION_KEY", &wrong)],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("FAIL key"), "{}", run.stdout);
}
