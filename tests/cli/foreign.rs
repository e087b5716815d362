//! A store holding events a newer exo wrote (a kind this exo does not know,
//! a known kind with a field it does not know) stays readable through the
//! command line: listed and shown exactly as stored, forked and rewound
//! across, skipped by the built-in executor's prompt; and such events are
//! still refused as input.

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::Fixture;
use crate::foreign_events::{
    assert_foreign_exact, body_of, marker, store_foreign, FOREIGN_FIELD, FOREIGN_KIND,
    FOREIGN_WORDS,
};
use crate::util::{message, Env};

/// `a/c`: a message, the two foreign events, a message.
fn env_with_foreign_events() -> Env {
    let env = Env::new();
    env.agent_and_conversation();
    let lines = [message("before"), marker(0), marker(1), message("after")];
    assert_eq!(env.append("a", "c", &lines).code, 0);
    store_foreign(&env.root().join("exo.db"));
    env
}

/// The id of the event whose body is `body`.
fn id_of(events: &[Value], body: &str) -> String {
    events
        .iter()
        .find(|event| body_of(event) == body)
        .unwrap_or_else(|| panic!("no event {body}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn events_a_newer_exo_stored_are_listed_exactly_as_stored() {
    let env = env_with_foreign_events();
    let events = env.events("a", "c");
    assert_eq!(events.len(), 5);
    assert_foreign_exact(&events);
    assert_eq!(events[1]["kind"], "message");
    assert_eq!(events[4]["content"][0]["text"], "after");

    // One by id, exactly as stored too.
    let id = id_of(&events, FOREIGN_KIND);
    let one = env.json(&["conversation", "event", "a", "c", &id]);
    assert_eq!(body_of(&one), FOREIGN_KIND);

    // The kind filter goes by the stored kind.
    let messages = env.json(&["conversation", "events", "a", "c", "--kind", "message"]);
    let bodies: Vec<String> = messages["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(body_of)
        .collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(bodies[1], FOREIGN_FIELD);

    // As text: the stored kind, and the fields beside it.
    let text = env.ok(&["conversation", "events", "a", "c"]).stdout;
    let line = text
        .lines()
        .find(|line| line.contains(&id))
        .expect("a line for the foreign event");
    assert!(
        line.contains(r#"codex.item           {"zeta":{"b":1,"a":[2,"x"]},"item":"#),
        "{line}"
    );
}

#[test]
fn fork_and_rewind_cross_events_a_newer_exo_stored() {
    let env = env_with_foreign_events();
    let events = env.events("a", "c");
    let unknown_kind = id_of(&events, FOREIGN_KIND);
    let unknown_field = id_of(&events, FOREIGN_FIELD);

    // A fork at the unknown kind holds it, exactly, and goes on.
    env.ok(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--at",
        &unknown_kind,
        "--slug",
        "f",
    ]);
    assert_eq!(env.append("a", "f", &[message("in the fork")]).code, 0);
    let forked = env.events("a", "f");
    assert_eq!(forked.len(), 5);
    assert_eq!(body_of(&forked[2]), FOREIGN_KIND);
    assert_eq!(forked[3]["kind"], "forked");
    assert_eq!(forked[3]["from_event"], unknown_kind.as_str());

    // A fork of the whole history holds both.
    env.ok(&["conversation", "fork", "a", "c", "--slug", "whole"]);
    assert_foreign_exact(&env.events("a", "whole"));

    // Rewind to the message with a field this exo does not know, then
    // forward again to the old head: both are still there, exactly.
    let head = events.last().unwrap()["id"].as_str().unwrap().to_owned();
    env.ok(&["conversation", "rewind", "a", "c", "--to", &unknown_field]);
    let rewound = env.events("a", "c");
    assert_eq!(rewound.len(), 5);
    assert_foreign_exact(&rewound[..4]);
    assert_eq!(rewound[4]["kind"], "rewound");
    env.ok(&["conversation", "rewind", "a", "c", "--to", &head]);
    let redone = env.events("a", "c");
    assert_foreign_exact(&redone);
    assert_eq!(redone[4]["content"][0]["text"], "after");
}

#[test]
fn a_turn_skips_events_a_newer_exo_stored() {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    let lines: String = [message("first question, teal-lynx"), marker(0), marker(1)]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    let appended = fixture.run_with(
        &["conversation", "append", "coder", "work"],
        lines.as_bytes(),
    );
    assert_eq!(appended.code, 0, "{}", appended.stderr);
    store_foreign(&fixture.root.join("exo.db"));
    fixture.model.push(Completion::text("Noted."));

    let sent = fixture.send_ok("work", "second question");
    assert!(sent.stdout.contains("Noted."), "{}", sent.stdout);
    let requests = fixture.model.requests();
    assert_eq!(requests.len(), 1);
    let prompt = requests[0].body.to_string();
    assert!(prompt.contains("teal-lynx"), "{prompt}");
    assert!(prompt.contains("second question"), "{prompt}");
    for word in FOREIGN_WORDS {
        assert!(!prompt.contains(word), "{word} reached the model: {prompt}");
    }
    // The history around the turn is intact.
    assert_foreign_exact(&fixture.events("work"));
}

#[test]
fn events_of_unknown_kinds_and_fields_are_still_refused_as_input() {
    let env = Env::new();
    env.agent_and_conversation();
    let before = env.events("a", "c");
    for (line, expected) in [
        (
            serde_json::from_str::<Value>(FOREIGN_KIND).unwrap(),
            r#"unknown event kind "codex.item""#,
        ),
        (
            serde_json::from_str::<Value>(FOREIGN_FIELD).unwrap(),
            "unknown field `phase`",
        ),
        (
            json!({"kind": "message", "role": "user", "content": "hi", "phase": "final"}),
            "unknown field `phase`",
        ),
    ] {
        let run = env.append("a", "c", std::slice::from_ref(&line));
        assert_eq!(run.code, 1, "{line}: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(expected), "{line}: {}", run.stderr);
    }
    assert_eq!(env.events("a", "c"), before);
}
