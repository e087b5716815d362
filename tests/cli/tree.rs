//! `exo conversation tree`: the drawing and the `--json` structure of a
//! history with rewinds, a redo taken from the drawing itself, a fork and
//! real turns; unknown names; a closed stdout.

use std::collections::HashMap;
use std::process::Stdio;

use exo_fake_model::{Completion, HttpError, Wire};
use serde_json::{json, Value};

use crate::agent::Fixture;
use crate::util::{message, Env};

/// `text` with every id replaced: a known one by `<name>`, any other by
/// `<E1>`, `<E2>`, ... in the order they first appear.
fn placeholders(text: &str, names: &HashMap<String, String>) -> String {
    let mut others: HashMap<String, String> = HashMap::new();
    let mut out = String::new();
    let mut rest = text;
    while let Some((start, id)) = next_uuid(rest) {
        out.push_str(&rest[..start]);
        let name = match names.get(id) {
            Some(name) => name.clone(),
            None => {
                let n = others.len() + 1;
                others
                    .entry(id.to_owned())
                    .or_insert_with(|| format!("E{n}"))
                    .clone()
            }
        };
        out.push_str(&format!("<{name}>"));
        rest = &rest[start + id.len()..];
    }
    out.push_str(rest);
    out
}

/// The first hyphenated UUID in `text`, and where it starts.
fn next_uuid(text: &str) -> Option<(usize, &str)> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(35)).find_map(|start| {
        let candidate = &bytes[start..start + 36];
        let is_uuid = candidate.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
        is_uuid.then(|| (start, &text[start..start + 36]))
    })
}

/// The events of one `conversation append` of user messages, named after
/// their texts.
fn say(env: &Env, conv: &str, texts: &[&str], names: &mut HashMap<String, String>) -> Vec<String> {
    let lines: Vec<Value> = texts.iter().map(|text| message(text)).collect();
    let run = env.append("a", conv, &lines);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ids: Vec<String> = run.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    for (id, text) in ids.iter().zip(texts) {
        names.insert(id.clone(), text.to_string());
    }
    ids
}

/// `exo conversation rewind a c --to TO`, naming the `rewound` event.
fn rewind(env: &Env, args: &[&str], name: &str, names: &mut HashMap<String, String>) {
    let mut all = vec!["conversation", "rewind"];
    all.extend_from_slice(args);
    let result = env.json(&all);
    let id = result["event"]["id"].as_str().unwrap().to_owned();
    names.insert(id, name.to_owned());
}

/// The redo command the drawing gives for the abandoned branch whose head
/// is `head`.
fn redo_command(drawing: &str, head: &str) -> Vec<String> {
    let line = drawing
        .lines()
        .find(|line| line.contains(&format!("* {head} ")))
        .unwrap_or_else(|| panic!("no step {head} in\n{drawing}"));
    let (_, command) = line
        .split_once("abandoned head — redo: ")
        .unwrap_or_else(|| panic!("{head} is not drawn as an abandoned head: {line}"));
    let words: Vec<String> = command.split(' ').map(str::to_owned).collect();
    assert_eq!(words[0], "exo", "{line}");
    words[1..].to_vec()
}

/// Two rewinds, a redo run exactly as the drawing says, and a fork taken
/// on a branch left behind: the whole drawing, newest first, and the
/// structure under `--json`.
#[test]
fn rewinds_a_redo_and_a_fork() {
    let env = Env::new();
    env.agent_and_conversation();
    let mut names = HashMap::new();
    let created = env.event_ids("a", "c")[0].clone();
    names.insert(created.clone(), "created".to_owned());
    let m = say(&env, "c", &["m1", "m2", "m3"], &mut names);
    rewind(&env, &["a", "c", "--to", &m[0]], "rw1", &mut names);
    let x = say(&env, "c", &["x1", "x2"], &mut names);
    rewind(&env, &["a", "c", "--to", &m[1]], "rw2", &mut names);
    let y = say(&env, "c", &["y1"], &mut names);

    // Redo: back to the head of the branch the second rewind left, with
    // the command the drawing gives.
    let drawing = env.ok(&["conversation", "tree", "a", "c"]).stdout;
    let redo = redo_command(&drawing, &x[1]);
    assert_eq!(redo, ["conversation", "rewind", "a", "c", "--at", &x[1]]);
    let redo: Vec<&str> = redo.iter().map(String::as_str).collect();
    rewind(&env, &redo[2..], "rw3", &mut names);
    let z = say(&env, "c", &["z1"], &mut names);
    env.ok(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--at",
        &m[1],
        "--slug",
        "side",
    ]);

    let drawing = env.ok(&["conversation", "tree", "a", "c"]).stdout;
    assert_eq!(
        placeholders(&drawing, &names),
        "\
* <z1>  1 event: message — \"z1\"  (HEAD)
* <rw3>  rewound from <y1> to <x2>
* <x2>  2 events: message — \"x1\"
* <rw1>  rewound from <m3> to <m1>
| * <m3>  1 event: message — \"m3\"  abandoned head — redo: exo conversation rewind a c --at <m3>
| | * <y1>  1 event: message — \"y1\"  abandoned head — redo: exo conversation rewind a c --at <y1>
| | * <rw2>  rewound from <x2> to <m2>
| |/
| | * forked into a/side
| |/
| * <m2>  1 event: message — \"m2\"
|/
* <m1>  1 event: message — \"m1\"
* <created>  conversation created
"
    );

    // `conversation show` lists the heads to redo.
    let shown = env.ok(&["conversation", "show", "a", "c"]).stdout;
    let line = shown
        .lines()
        .find(|line| line.starts_with("abandoned heads"))
        .unwrap_or_else(|| panic!("no abandoned heads in:\n{shown}"));
    assert!(line.contains(&m[2]) && line.contains(&y[0]), "{line}");

    let tree = env.json(&["conversation", "tree", "a", "c"]);
    assert_eq!(tree["agent"], "a");
    assert_eq!(tree["conversation"]["slug"], "c");
    assert_eq!(tree["conversation"]["head"], z[0].as_str());
    let branches = tree["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 3, "{tree:#}");
    let kinds = |branch: &Value| -> Vec<String> {
        branch["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let current = &branches[0];
    assert_eq!(current["current"], true);
    assert_eq!(current["head"], z[0].as_str());
    assert_eq!(current["from"], Value::Null);
    assert_eq!(current["parent"], Value::Null);
    assert_eq!(
        kinds(current),
        [
            "conversation_created",
            "events",
            "rewound",
            "events",
            "rewound",
            "events"
        ]
    );
    assert_eq!(
        current["steps"][0],
        json!({"kind": "conversation_created", "first": created, "last": created, "events": 1})
    );
    assert_eq!(
        current["steps"][3],
        json!({
            "kind": "events", "first": x[0], "last": x[1], "events": 2,
            "kinds": ["message"], "text": "x1",
        })
    );
    let redone = &current["steps"][4];
    assert_eq!(redone["from_event"], y[0].as_str());
    assert_eq!(redone["to_event"], x[1].as_str());

    let left = &branches[1];
    assert_eq!(left["current"], false);
    assert_eq!(left["head"], m[2].as_str());
    assert_eq!(left["from"], m[0].as_str());
    assert_eq!(left["parent"], 0);
    assert_eq!(kinds(left), ["events", "events"]);
    assert_eq!(left["steps"][0]["last"], m[1].as_str());

    let nested = &branches[2];
    assert_eq!(nested["head"], y[0].as_str());
    assert_eq!(nested["from"], m[1].as_str());
    assert_eq!(nested["parent"], 1);
    assert_eq!(kinds(nested), ["rewound", "events"]);

    let side = env.json(&["conversation", "show", "a", "side"]);
    assert_eq!(
        tree["forks"],
        json!([{
            "conversation": {
                "id": side["id"], "agent": "a", "slug": "side", "name": "C (fork)", "deleted": false,
            },
            "at": m[1],
            "branch": 1,
        }])
    );

    // The fork's own tree: the history it shares with its source, then
    // its own; the source's other branches are not its own.
    let forked = env.event_ids("a", "side").last().unwrap().clone();
    names.insert(forked, "forked".to_owned());
    let drawing = env.ok(&["conversation", "tree", "a", "side"]).stdout;
    assert_eq!(
        placeholders(&drawing, &names),
        "\
* <forked>  forked from a/c at <m2>  (HEAD)
* <m2>  2 events: message — \"m1\"
* <created>  conversation created
"
    );
}

/// Real turns of the built-in executor show their prompt's first line,
/// status and tool calls; a turn's step runs from its session's start to
/// its end, so its `last` is where to rewind to for "after this turn".
#[test]
fn turns_show_their_prompts_and_statuses() {
    let fixture = Fixture::new(Wire::OpenAi, "auto");
    let model = &fixture.model;
    model.push(Completion::text("Writing it.").with_tool_call(
        "call_1",
        "write_file",
        json!({"path": "hello.txt", "content": "hi\n"}),
    ));
    model.push(Completion::text("Done."));
    fixture.send_ok("work", "Write a greeting\ninto hello.txt");
    model.push(HttpError::new(400, "bad request: no such model"));
    assert_eq!(fixture.send("work", "second prompt", &[]).code, 1);

    let tree = fixture.json(&["conversation", "tree", "coder", "work"]);
    let steps = tree["branches"][0]["steps"].as_array().unwrap().clone();
    assert_eq!(steps.len(), 3, "{tree:#}");
    let first_turn = &steps[1];
    assert_eq!(first_turn["kind"], "turn");
    assert_eq!(first_turn["prompt"], "Write a greeting");
    assert_eq!(first_turn["status"], "completed");
    assert_eq!(first_turn["tool_calls"], 1);
    let events = fixture.events("work");
    assert_eq!(first_turn["first"], events[1]["id"]);
    assert_eq!(events[1]["kind"], "session_started");
    let end = first_turn["last"].as_str().unwrap().to_owned();
    let ended = events.iter().position(|e| e["id"] == end.as_str()).unwrap();
    assert_eq!(events[ended]["kind"], "session_ended");
    assert_eq!(events[ended - 1]["kind"], "turn_ended");
    assert_eq!(first_turn["events"], ended as u64);
    assert_eq!(first_turn["turn"], events[ended - 1]["turn"]);
    assert_eq!(steps[2]["prompt"], "second prompt");
    assert_eq!(steps[2]["status"], "failed");
    assert_eq!(steps[2]["tool_calls"], 0);

    fixture.ok(&["conversation", "rewind", "coder", "work", "--to", &end]);
    model.push(Completion::text("Third answer."));
    fixture.send_ok("work", "third prompt");

    let drawing = fixture
        .ok(&["conversation", "tree", "coder", "work"])
        .stdout;
    let names = HashMap::from([(end.clone(), "end1".to_owned())]);
    assert_eq!(
        placeholders(&drawing, &names),
        format!(
            "\
* <E1>  turn \"third prompt\": completed, {third} events  (HEAD)
* <E2>  1 event: workspace_snapshot
* <E3>  rewound from <E4> to <end1>
| * <E4>  1 event: workspace_snapshot  abandoned head — redo: exo conversation rewind coder work --at <E4>
| * <E5>  turn \"second prompt\": failed, {second} events
|/
* <end1>  turn \"Write a greeting\": completed, {first} events, 1 tool call
* <E6>  conversation created
",
            first = first_turn["events"],
            second = steps[2]["events"],
            third = 8,
        )
    );
}

/// An unknown agent or conversation is one line on stderr and exit 1,
/// with and without `--json`.
#[test]
fn unknown_names_fail_in_one_line() {
    let env = Env::new();
    env.agent_and_conversation();
    let error = env.fails(&["conversation", "tree", "nobody", "c"]);
    assert!(error.contains("agent \"nobody\" not found"), "{error}");
    let error = env.fails(&["--json", "conversation", "tree", "a", "nothing"]);
    assert!(
        error.contains("conversation \"a/nothing\" not found"),
        "{error}"
    );
}

/// A reader that goes away (`exo conversation tree | head`) is no failure.
#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = Env::new();
    env.agent_and_conversation();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = env
        .command(&["conversation", "tree", "a", "c"])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
