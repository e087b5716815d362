//! A store holding events a newer exo wrote (a kind this exo does not know,
//! a known kind with a field it does not know) through a daemon: listed,
//! fetched and replayed to watchers byte for byte as stored, the same
//! through the CLI as embedded, and skipped by the prompt of a turn.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use exo_fake_model::{Completion, FakeModel, Wire};
use serde_json::{json, Value};

use crate::foreign_events::{
    assert_foreign_exact, body_of, marker, store_foreign, FOREIGN_FIELD, FOREIGN_KIND,
    FOREIGN_WORDS,
};
use crate::support::{agent_with_model, message, turn, watched_events, workspace, Root, TIMEOUT};

/// One request's response line, as the daemon wrote it.
fn response_line(socket: &std::path::Path, request: &Value) -> String {
    let stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

#[test]
fn events_a_newer_exo_stored_travel_exactly_as_stored() {
    let root = Root::new();
    for args in [
        &["agent", "create", "A", "--slug", "a"][..],
        &["conversation", "create", "a", "C", "--slug", "c"][..],
    ] {
        assert!(root.cli(args).status.success());
    }
    let lines: String = [message("before"), marker(0), marker(1), message("after")]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    let appended = root.cli_with_stdin(&["conversation", "append", "a", "c"], &lines);
    assert!(appended.status.success(), "{appended:?}");
    store_foreign(&root.path().join("exo.db"));
    let embedded = root.cli(&["--json", "conversation", "events", "a", "c"]);
    assert!(embedded.status.success(), "{embedded:?}");

    let daemon = root.daemon();
    let mut conn = daemon.connect();

    // `events/list`: on the wire, each stored body follows its envelope
    // byte for byte.
    let line = response_line(
        &daemon.socket,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "events/list",
                "params": {"agent": "a", "conversation": "c"}}),
    );
    assert!(line.contains(r#""result""#), "{line}");
    for body in [FOREIGN_KIND, FOREIGN_FIELD] {
        assert!(
            line.contains(&format!(r#"Z",{}"#, &body[1..])),
            "{body} not on the wire as stored: {line}"
        );
    }
    let listed = conn.ok("events/list", json!({"agent": "a", "conversation": "c"}));
    let events = listed["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 5);
    assert_foreign_exact(&events);

    // `events/get`.
    let id = events
        .iter()
        .find(|event| body_of(event) == FOREIGN_KIND)
        .unwrap()["id"]
        .clone();
    let one = conn.ok(
        "events/get",
        json!({"agent": "a", "conversation": "c", "event": id}),
    );
    assert_eq!(body_of(&one), FOREIGN_KIND);

    // `events/watch` replays them.
    let watch = conn.ok("events/watch", json!({"agent": "a", "conversation": "c"}))["watch"]
        .as_u64()
        .unwrap();
    let replayed = watched_events(&mut conn, watch, 5);
    assert_eq!(replayed, events);

    // The CLI through the daemon prints what it prints embedded.
    let through_daemon = root.cli(&["--json", "conversation", "events", "a", "c"]);
    assert!(through_daemon.status.success(), "{through_daemon:?}");
    assert_eq!(
        String::from_utf8_lossy(&through_daemon.stdout),
        String::from_utf8_lossy(&embedded.stdout)
    );
}

#[test]
fn a_turn_through_the_daemon_skips_events_it_does_not_know() {
    let root = Root::new();
    let workspace = workspace(&root);
    let model = FakeModel::start(Wire::OpenAi);
    model.push(Completion::text("Noted."));
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    agent_with_model(&mut conn, &model, None, "auto", &workspace);
    conn.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c",
               "events": [message("first question, teal-lynx"), marker(0), marker(1)]}),
    );
    store_foreign(&root.path().join("exo.db"));

    let seen = conn.run_turn(turn("second question"));
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["text"], "Noted.");
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let prompt = requests[0].body.to_string();
    assert!(prompt.contains("teal-lynx"), "{prompt}");
    assert!(prompt.contains("second question"), "{prompt}");
    for word in FOREIGN_WORDS {
        assert!(!prompt.contains(word), "{word} reached the model: {prompt}");
    }
    let listed = conn.ok("events/list", json!({"agent": "a", "conversation": "c"}));
    assert_foreign_exact(listed["events"].as_array().unwrap());
}
