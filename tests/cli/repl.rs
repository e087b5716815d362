//! `exo chat repl` in line mode (stdin not a terminal), against a fake
//! model server: prompts, approval answers, slash commands. All input is
//! given up front; the REPL reads it line by line, in order, so an
//! approval question takes the line after the prompt that caused it.

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{for_each_wire, kinds, of_kind, text_of, transcript, Fixture};
use crate::util::Run;

/// Runs `exo chat repl coder CONV` with these input lines.
fn repl(fixture: &Fixture, conversation: &str, lines: &[&str]) -> Run {
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    fixture.run_with(&["chat", "repl", "coder", conversation], input.as_bytes())
}

for_each_wire!(
    approvals_are_answered_by_the_next_line,
    approvals_are_answered_through_a_daemon,
);

fn approvals_are_answered_by_the_next_line(wire: Wire) {
    approvals(wire, false);
}

/// With a daemon, `approval/request` and `approval/respond` cross its
/// socket; the REPL behaves the same.
fn approvals_are_answered_through_a_daemon(wire: Wire) {
    approvals(wire, true);
}

/// Under the default policy (ask), `y` lets a write run and `n` refuses
/// it; both decisions are recorded as the user's.
fn approvals(wire: Wire, with_daemon: bool) {
    let fixture = Fixture::new(wire, "ask");
    let daemon = with_daemon.then(|| fixture.daemon());
    let model = &fixture.model;
    model.push(Completion::text("Writing.").with_tool_call(
        "call_yes",
        "write_file",
        json!({"path": "yes.txt", "content": "allowed\n"}),
    ));
    model.push(Completion::text("Wrote yes.txt."));
    model.push(Completion::text("Writing.").with_tool_call(
        "call_no",
        "write_file",
        json!({"path": "no.txt", "content": "refused\n"}),
    ));
    model.push(Completion::text("I was told no."));
    let run = repl(
        &fixture,
        "work",
        &["Write yes.txt", "y", "Write no.txt", "n", "/quit"],
    );
    if let Some(daemon) = daemon {
        fixture.stop(daemon);
    }
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "Writing.\nWrote yes.txt.\nWriting.\nI was told no.\n"
    );
    assert!(
        run.stderr.contains(
            "• write_file: yes.txt\nallow write_file: yes.txt? [y]es, for this [t]urn, [a]lways, [N]o: y\n  ok\n\
             • write_file: no.txt\nallow write_file: no.txt? [y]es, for this [t]urn, [a]lways, [N]o: n\n  \
             error: denied: the user declined this call\n"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("yes.txt")).unwrap(),
        "allowed\n"
    );
    assert!(!fixture.workspace.join("no.txt").exists());

    let events = fixture.events("work");
    let approvals: Vec<_> = of_kind(&events, "custom")
        .into_iter()
        .map(|event| event["payload"].clone())
        .collect();
    assert_eq!(
        approvals,
        [
            json!({"call_id": "call_yes", "tool": "write_file", "approved": true, "decision": "allow_once", "by": "user"}),
            json!({"call_id": "call_no", "tool": "write_file", "approved": false, "decision": "deny", "by": "user"}),
        ]
    );
    let results = of_kind(&events, "tool_result");
    assert_eq!(results[0]["is_error"], false);
    assert_eq!(results[1]["is_error"], true);
    assert_eq!(
        results[1]["output"],
        json!({"error": "denied: the user declined this call"})
    );
    let statuses: Vec<_> = of_kind(&events, "turn_ended")
        .iter()
        .map(|event| event["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("completed"), json!("completed")]);
    // The answers were never taken for prompts.
    let prompts: Vec<String> = of_kind(&events, "message")
        .iter()
        .filter(|event| event["role"] == "user")
        .map(|event| text_of(event))
        .collect();
    assert_eq!(prompts, ["Write yes.txt", "Write no.txt"]);
    assert_eq!(fixture.model.requests().len(), 4);
}

/// The slash commands, in line mode: `/diff` and `/snapshot` around an
/// edit, an unknown command that leaves the REPL running, `/history`,
/// `/events`; then `/rewind` restoring files and `/fork` continuing in
/// the fork.
#[test]
fn slash_commands() {
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let model = &fixture.model;
    let ws = &fixture.workspace;
    model.push(Completion::text("Writing a.").with_tool_call(
        "call_a",
        "write_file",
        json!({"path": "a.txt", "content": "one\n"}),
    ));
    model.push(Completion::text("Wrote a.txt."));
    model.push(Completion::text("Writing b.").with_tool_call(
        "call_b",
        "write_file",
        json!({"path": "b.txt", "content": "two\n"}),
    ));
    model.push(Completion::text("Wrote b.txt."));
    let run = repl(&fixture, "work", &["Write a.txt", "Write b.txt", "/quit"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "Writing a.\nWrote a.txt.\nWriting b.\nWrote b.txt.\n"
    );
    // The user edits a file after the turns.
    std::fs::write(ws.join("a.txt"), "edited\n").unwrap();

    let run = repl(
        &fixture,
        "work",
        &[
            "/diff",
            "/snapshot",
            "/diff",
            "/bogus",
            "/history",
            "/events 3",
            "/quit",
            "never read",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let stderr = &run.stderr;
    let diff_at = stderr.find("-one\n+edited\n").expect(stderr);
    let snapshot_at = stderr.find("snapshot ").expect(stderr);
    assert!(diff_at < snapshot_at, "{stderr}");
    // The `/diff` before it compared against the disk without taking a
    // snapshot, so the snapshot still counts a.txt as modified.
    assert!(stderr.contains(" (+0 ~1 -0)\n"), "{stderr}");
    assert!(
        stderr[snapshot_at..].contains("no changes since the last snapshot\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: unknown command /bogus; /help lists them\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "you: Write a.txt\nagent: Writing a.\n  • write_file: a.txt\nagent: Wrote a.txt.\n\
             you: Write b.txt\nagent: Writing b.\n  • write_file: b.txt\nagent: Wrote b.txt.\n"
        ),
        "{stderr}"
    );
    // `/events 3`: the last three events, oldest first, with their ids.
    let events = fixture.events("work");
    let last_three: Vec<&str> = events[events.len() - 3..]
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    let listed: Vec<&str> = stderr
        .lines()
        .filter(|line| last_three.iter().any(|id| line.starts_with(id)))
        .collect();
    assert_eq!(listed.len(), 3, "{stderr}");
    for (line, id) in listed.iter().zip(&last_three) {
        assert!(line.starts_with(id), "{stderr}");
    }
    assert!(
        !stderr.contains("never read"),
        "nothing is read after /quit"
    );
    // The REPL ran no turn and changed no prompt.
    assert_eq!(fixture.model.requests().len(), 4);

    // Back to the end of the first turn: its files return (the edit was
    // kept by the snapshot), then a fork there takes the next prompt.
    let first_end = of_kind(&events, "turn_ended")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    model.push(Completion::text("In the fork."));
    let rewind = format!("/rewind {first_end}");
    let run = repl(
        &fixture,
        "work",
        &[&rewind, "/fork side", "Carry on", "/quit"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("rewound to {first_end}; workspace restored (")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("forked work as side; continuing in the fork\n"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "In the fork.\n");
    assert_eq!(std::fs::read_to_string(ws.join("a.txt")).unwrap(), "one\n");
    assert!(!ws.join("b.txt").exists());
    assert_eq!(
        transcript(Wire::OpenAi, &fixture.request(4).body),
        [
            "user: Write a.txt",
            "assistant: Writing a.",
            "call call_a write_file",
            "result call_a",
            "assistant: Wrote a.txt.",
            "user: Carry on",
        ]
    );
    let fork = fixture.events("side");
    assert_eq!(
        kinds(&fork[fork.len() - 3..]),
        ["workspace_snapshot", "turn_ended", "session_ended"]
    );
    assert!(fork
        .iter()
        .any(|event| event["kind"] == "message" && text_of(event) == "Carry on"));
    let source = fixture.events("work");
    assert!(!source
        .iter()
        .any(|event| event["kind"] == "message" && text_of(event) == "Carry on"));
}

/// A REPL whose daemon goes away says so and exits 1, rather than
/// reporting a broken pipe for every line that follows.
#[test]
fn the_repl_leaves_when_its_daemon_stops() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;

    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    let daemon = fixture.daemon();
    let mut child = fixture
        .env
        .command(&fixture.args(&["chat", "repl", "coder", "work"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // The REPL is connected once it has answered a command.
    stdin.write_all(b"/help\n").unwrap();
    let mut line = String::new();
    while !line.contains("/quit") {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "the REPL ended");
    }
    fixture.stop(daemon);
    stdin.write_all(b"/events\n/events\n/events\n").unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(
        rest.trim_end()
            .ends_with("exo: the connection to the service closed"),
        "{rest}"
    );
}

/// `a` answers "always": the tool runs without asking from then on, in
/// this REPL and in later commands, until `agent set --revoke` withdraws
/// it.
#[test]
fn always_is_remembered_until_revoked() {
    let fixture = Fixture::new(Wire::OpenAiChat, "ask");
    let write = |call: &str, path: &str| {
        Completion::text("").with_tool_call(
            call,
            "write_file",
            json!({"path": path, "content": "x\n"}),
        )
    };
    let model = &fixture.model;
    model.push(write("call_1", "one.txt"));
    model.push(Completion::text("One."));
    model.push(write("call_2", "two.txt"));
    model.push(Completion::text("Two."));
    let run = repl(&fixture, "work", &["First", "a", "Second", "/quit"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr.matches("[a]lways").count(), 1, "{}", run.stderr);
    assert!(fixture.workspace.join("two.txt").exists());
    let shown = fixture.ok(&["agent", "show", "coder"]).stdout;
    assert!(shown.contains("allowed always: write_file"), "{shown}");

    // A typo is refused with what there is to revoke.
    let run = fixture.run(&["agent", "set", "coder", "--revoke", "shell"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("no standing permission for \"shell\" (it has: write_file)"),
        "{}",
        run.stderr
    );
    let set = fixture.ok(&["agent", "set", "coder", "--revoke", "write_file"]);
    assert!(!set.stdout.contains("allowed always"), "{}", set.stdout);
    let shown = fixture.ok(&["agent", "show", "coder"]).stdout;
    assert!(!shown.contains("allowed always"), "{shown}");

    model.push(write("call_3", "three.txt"));
    model.push(Completion::text("Three."));
    let run = repl(&fixture, "work", &["Third", "n", "/quit"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr.matches("[a]lways").count(), 1, "{}", run.stderr);
    assert!(!fixture.workspace.join("three.txt").exists());
    let by: Vec<Value> = of_kind(&fixture.events("work"), "custom")
        .into_iter()
        .map(|event| event["payload"]["by"].clone())
        .collect();
    assert_eq!(by, [json!("user"), json!("permission"), json!("user")]);
}
