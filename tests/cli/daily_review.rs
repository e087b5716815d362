//! What a hostile review of the daily-use commands found, each pinned:
//! control characters from a model or a tool shown escaped, never obeyed;
//! `turn cancel` kept to the conversation it names; a refused turn not
//! changing the conversation in use; watches that end when their reader
//! goes, when they are told to even while their reader stalls, and when
//! their conversation is deleted; no daemon left behind by a refused
//! watch; `--last` exact at its bound; usage errors exiting 2.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{Fixture, TIMEOUT};
use crate::daily::StopsDaemon;
use crate::util::{message, wait_until, Env};

/// Stops the root's daemon when the test ends.
struct EnvDaemon<'a>(&'a Env);

impl Drop for EnvDaemon<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["daemon", "stop"]);
    }
}

/// Waits for `child` to exit, within the tests' bound; its exit code.
fn exits(child: &mut Child, what: &str) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        signal,
    )
    .unwrap();
}

const HOSTILE: &str = "Writing \u{1b}[31mRED\u{1b}[0m notes.\u{1b}]0;PWNED\u{7} \u{1b}[2J";

fn assert_escaped(text: &str, what: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{what} shows a raw control character: {text:?}"
    );
    assert!(text.contains("\\u{1b}"), "{what} lost the text: {text:?}");
}

#[test]
fn a_models_control_characters_are_shown_escaped_never_obeyed() {
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let _stops = StopsDaemon(&fixture);
    fixture.model.push(Completion::text(HOSTILE));
    fixture.send_ok("work", &format!("hello {HOSTILE}"));
    assert_escaped(&fixture.ok(&["turn", "show"]).stdout, "turn show");
    assert_escaped(
        &fixture
            .ok(&["conversation", "events", "coder", "work"])
            .stdout,
        "conversation events",
    );
    let mut command = fixture
        .env
        .command(&fixture.args(&["conversation", "watch", "--all"]));
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut watch = command.spawn().unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let line = loop {
        let line = lines.next().expect("the watch ended").unwrap();
        if line.contains("assistant") {
            break line;
        }
    };
    assert_escaped(&line, "conversation watch");
    signal(&watch, rustix::process::Signal::INT);
    assert_eq!(exits(&mut watch, "the watch"), 0);
}

#[test]
fn a_hostile_call_is_listed_escaped_and_cancel_keeps_to_its_conversation() {
    let fixture = Fixture::new(Wire::OpenAiChat, "ask");
    let daemon = fixture.daemon();
    fixture.model.push(Completion::text("").with_tool_call(
        "ok\u{1b}[8m",
        "shell",
        json!({"command": "echo hidden"}),
    ));
    fixture.model.push(Completion::text("Done."));
    fixture.ok(&[
        "conversation",
        "create",
        "coder",
        "Other",
        "--slug",
        "other",
    ]);
    let mut command = fixture
        .env
        .command(&fixture.args(&["chat", "repl", "coder", "work"]));
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut repl = command.spawn().unwrap();
    let mut input = repl.stdin.take().unwrap();
    input.write_all(b"Run it\n").unwrap();
    input.flush().unwrap();
    let mut listed = Value::Null;
    wait_until("the question", || {
        listed = fixture.json(&["approval", "list"]);
        !listed["approvals"].as_array().unwrap().is_empty()
    });
    let turn = listed["approvals"][0]["turn"].as_str().unwrap().to_string();
    let text = fixture.ok(&["approval", "list"]).stdout;
    assert_escaped(&text, "approval list");
    assert!(text.contains("echo hidden"), "{text}");
    // Another conversation's name with this turn: refused, the turn goes on.
    let run = fixture.run(&["turn", "cancel", "coder", "other", &turn]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("is not a turn of other"),
        "{}",
        run.stderr
    );
    let run = fixture.run(&["turn", "cancel", "nobody", "work", &turn]);
    assert_eq!(run.code, 1);
    assert_eq!(
        fixture.json(&["approval", "list"])["approvals"][0]["turn"],
        turn.as_str()
    );
    // Its own conversation's: cancelled.
    fixture.ok(&["turn", "cancel", "coder", "work", &turn]);
    drop(input);
    assert_eq!(exits(&mut repl, "the REPL"), 0);
    let shown = fixture.json(&["turn", "show", "coder", "work", &turn]);
    assert_eq!(shown["turn"]["status"], "cancelled");
    let run = fixture.run(&["turn", "cancel", "coder", "work", &turn]);
    assert!(
        run.stderr.contains("has already ended (cancelled)"),
        "{}",
        run.stderr
    );
    fixture.stop(daemon);
}

#[test]
fn a_refused_send_leaves_the_conversation_in_use_as_it_was() {
    let env = Env::new();
    env.agent_and_conversation();
    env.ok(&["agent", "create", "B", "--slug", "b"]);
    env.ok(&["conversation", "create", "b", "T", "--slug", "t"]);
    env.ok(&["use", "a", "c"]);
    let run = env.run(&["conversation", "send", "b", "t", "hi"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("has no model"), "{}", run.stderr);
    assert_eq!(env.json(&["use"])["conversation"]["slug"], "c");
}

#[test]
fn usage_errors_of_the_positional_forms_exit_2() {
    let env = Env::new();
    env.agent_and_conversation();
    for args in [
        &["conversation", "send", "a", "c"][..],
        &["artifact", "get", "a", "c"],
        &["turn", "show", "a"],
        &["conversation", "event", "a"],
    ] {
        let run = env.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
}

#[test]
fn a_watch_of_nothing_leaves_no_daemon_behind() {
    let env = Env::new();
    env.agent_and_conversation();
    let run = env.run(&["conversation", "watch", "a", "nope"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert_eq!(
        env.run(&["daemon", "status"]).code,
        1,
        "a daemon was started"
    );
}

/// `exo conversation watch a c ARGS` with its stdout piped.
fn watch(env: &Env, args: &[&str]) -> Child {
    let mut all = vec!["conversation", "watch", "a", "c"];
    all.extend_from_slice(args);
    let mut command = env.command(&all);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.spawn().unwrap()
}

#[test]
fn a_watch_ends_when_its_reader_goes_even_while_nothing_happens() {
    let env = Env::new();
    env.agent_and_conversation();
    let _daemon = EnvDaemon(&env);
    let mut child = watch(&env, &["--last", "1"]);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("conversation_created"), "{first}");
    drop(reader);
    assert_eq!(exits(&mut child, "a watch whose reader went"), 0);
}

#[test]
fn sigterm_ends_a_watch_whose_reader_stopped_reading() {
    let env = Env::new();
    env.agent_and_conversation();
    let _daemon = EnvDaemon(&env);
    let mut child = watch(&env, &["--json", "--last", "0"]);
    // Wait until it watches: its daemon answers, and it has subscribed.
    wait_until("the daemon", || env.run(&["daemon", "status"]).code == 0);
    // Far more than a pipe holds, with nobody reading.
    let big = "x".repeat(1000);
    let lines: String = (0..2000)
        .map(|n| format!("{}\n", message(&format!("{n} {big}"))))
        .collect();
    let run = env.run_with(&["conversation", "append", "a", "c"], lines.as_bytes(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, rustix::process::Signal::TERM);
    assert_eq!(exits(&mut child, "a stalled watch told to stop"), 0);
}

#[test]
fn deleting_the_conversation_ends_its_watch() {
    let env = Env::new();
    env.agent_and_conversation();
    let _daemon = EnvDaemon(&env);
    let mut child = watch(&env, &["--last", "1"]);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    env.ok(&["conversation", "delete", "a", "c"]);
    assert_eq!(exits(&mut child, "a watch of a deleted conversation"), 1);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("the watched conversation is gone"),
        "{stderr}"
    );
}

#[test]
fn last_replays_exactly_that_many_at_its_bound() {
    let env = Env::new();
    env.agent_and_conversation();
    let _daemon = EnvDaemon(&env);
    let lines: String = (0..10_005)
        .map(|n| format!("{}\n", message(&n.to_string())))
        .collect();
    let run = env.run_with(&["conversation", "append", "a", "c"], lines.as_bytes(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ids = env.event_ids("a", "c");
    let mut child = watch(&env, &["--json", "--last", "10000"]);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["id"], ids[ids.len() - 10_000].as_str());
    drop(reader);
    exits(&mut child, "the watch");
    assert_eq!(
        env.run(&["conversation", "watch", "--last", "10001"]).code,
        2
    );
}
