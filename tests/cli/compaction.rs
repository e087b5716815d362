//! Automatic compaction end to end: `exo conversation send` with a model
//! registered with a small context window, against the fake model server,
//! once per wire. The summary request, the compaction recorded, the
//! requests after it, and a rewind to before it are checked in what the
//! server saw and in the log.

use exo_fake_model::{Completion, HttpError, Wire};
use serde_json::Value;

use crate::agent::{for_each_wire, instructions, kinds, of_kind, tool_names, transcript};
use crate::agent::{Fixture, INSTRUCTIONS, UPSTREAM};

/// The context window the model is registered with, in tokens.
const WINDOW: u64 = 20_000;

/// The start of what exo asks the model for a summary.
const SUMMARY_ASKED: &str = "user: The conversation so far is about to be replaced by a summary";

/// The summary the fake model writes.
const SUMMARY: &str = "SUMMARY: the first two questions were answered.";

/// A fixture whose model `m` has a context window of [`WINDOW`].
fn fixture(wire: Wire) -> Fixture {
    let fixture = Fixture::new(wire, "auto");
    let window = WINDOW.to_string();
    let registered = fixture.json(&[
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
        "--context-window",
        &window,
    ]);
    assert_eq!(registered["context_window"], WINDOW, "{registered}");
    fixture
}

/// Two turns, the second reporting a prompt of 17 000 tokens: past 80% of
/// the window once the next question is added.
fn two_turns(fixture: &Fixture) {
    fixture
        .model
        .push(Completion::text("First answer.").with_usage(100, 10));
    fixture.send_ok("work", "First question");
    fixture
        .model
        .push(Completion::text("Second answer.").with_usage(17_000, 20));
    fixture.send_ok("work", "Second question");
}

/// The answer cap a request sets, in its wire's field.
fn max_output(wire: Wire, body: &Value) -> Value {
    match wire {
        Wire::OpenAi => body["max_output_tokens"].clone(),
        Wire::OpenAiChat => body["max_tokens"].clone(),
        Wire::Anthropic => body["max_tokens"].clone(),
    }
}

for_each_wire!(
    a_long_history_is_summarised_before_the_turn,
    a_failed_summary_leaves_the_history_whole,
);

/// The third turn's request would approach the window: exo asks for a
/// summary of the history before the turn (the same instructions and
/// tools, the history, then the request for a summary), records it as a
/// compaction, and sends the turn's request with the summary in place of
/// that history. Later turns start from the summary; a rewind to before
/// the compaction sees the whole history again.
fn a_long_history_is_summarised_before_the_turn(wire: Wire) {
    let fixture = fixture(wire);
    two_turns(&fixture);
    assert_eq!(fixture.model.requests().len(), 2, "no compaction yet");

    fixture
        .model
        .push(Completion::text(SUMMARY).with_usage(17_100, 40));
    fixture
        .model
        .push(Completion::text("Third answer.").with_usage(300, 10));
    let run = fixture.send_ok("work", "Third question");
    // The summary is not the turn's answer: it is neither printed nor
    // recorded as a message.
    assert_eq!(run.stdout, "Third answer.\n");

    let asked = fixture.request(2).body;
    assert_eq!(
        instructions(wire, &asked),
        instructions(wire, &fixture.request(1).body)
    );
    assert!(instructions(wire, &asked).ends_with(INSTRUCTIONS));
    assert_eq!(tool_names(wire, &asked), crate::agent::TOOLS);
    assert_eq!(max_output(wire, &asked), WINDOW / 4);
    let lines = transcript(wire, &asked);
    assert_eq!(
        lines[..4],
        [
            "user: First question",
            "assistant: First answer.",
            "user: Second question",
            "assistant: Second answer.",
        ]
    );
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines[4].starts_with(SUMMARY_ASKED), "{}", lines[4]);

    let summary_line = format!("user: A summary of the conversation so far:\n\n{SUMMARY}");
    assert_eq!(
        transcript(wire, &fixture.request(3).body),
        [summary_line.as_str(), "user: Third question"]
    );

    let turn = fixture.last_turn("work");
    assert_eq!(
        kinds(&turn),
        [
            "turn_started",
            "workspace_snapshot",
            "message",
            "custom:exo.compaction",
            "message",
            "workspace_snapshot",
            "turn_ended"
        ]
    );
    let payload = &turn[3]["payload"];
    assert_eq!(payload["summary"], SUMMARY);
    // Through the last event before the turn's input: the turn is kept.
    assert_eq!(payload["through"], turn[1]["id"], "{payload}");
    assert_eq!(payload["usage"]["input_tokens"], 17_100);
    assert_eq!(payload["model"], UPSTREAM);
    assert_eq!(turn[6]["status"], "completed");
    let history = fixture.events("work");
    assert_eq!(of_kind(&history, "message").len(), 6, "the log keeps all");

    // The next turn starts from the compaction.
    fixture
        .model
        .push(Completion::text("Fourth answer.").with_usage(400, 10));
    fixture.send_ok("work", "Fourth question");
    assert_eq!(fixture.model.requests().len(), 5);
    assert_eq!(
        transcript(wire, &fixture.request(4).body),
        [
            summary_line.as_str(),
            "user: Third question",
            "assistant: Third answer.",
            "user: Fourth question"
        ]
    );

    // Rewound to the end of the first turn, before the compaction: the
    // whole history of that point again, and no summary.
    let first_end = history
        .iter()
        .find(|event| event["kind"] == "turn_ended")
        .unwrap()["id"]
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
    fixture
        .model
        .push(Completion::text("Fifth answer.").with_usage(200, 10));
    fixture.send_ok("work", "Fifth question");
    assert_eq!(
        transcript(wire, &fixture.request(5).body),
        [
            "user: First question",
            "assistant: First answer.",
            "user: Fifth question"
        ]
    );
    assert_eq!(fixture.model.queued(), 0);
}

/// A summary call that fails (a 400, not retried) is recorded as an
/// `error` with code `compaction`, and the turn goes on with the whole
/// history and completes.
fn a_failed_summary_leaves_the_history_whole(wire: Wire) {
    let fixture = fixture(wire);
    two_turns(&fixture);
    fixture
        .model
        .push(HttpError::new(400, "the prompt is too long"));
    fixture
        .model
        .push(Completion::text("Third answer.").with_usage(300, 10));
    let run = fixture.send_ok("work", "Third question");
    assert_eq!(run.stdout, "Third answer.\n");
    assert!(transcript(wire, &fixture.request(2).body)
        .last()
        .unwrap()
        .starts_with(SUMMARY_ASKED));
    assert_eq!(
        transcript(wire, &fixture.request(3).body),
        [
            "user: First question",
            "assistant: First answer.",
            "user: Second question",
            "assistant: Second answer.",
            "user: Third question"
        ]
    );
    let turn = fixture.last_turn("work");
    assert_eq!(
        kinds(&turn),
        [
            "turn_started",
            "workspace_snapshot",
            "message",
            "error",
            "message",
            "workspace_snapshot",
            "turn_ended"
        ]
    );
    assert_eq!(turn[3]["code"], "compaction");
    let message = turn[3]["message"].as_str().unwrap();
    assert!(
        message.starts_with("automatic compaction failed: model API returned HTTP 400")
            && message.ends_with("; the turn goes on with the whole history"),
        "{message}"
    );
    assert_eq!(turn[6]["status"], "completed");
    assert_eq!(fixture.model.queued(), 0);
}

/// The context window is part of the model binding: shown, listed, and
/// refused in one line when out of range, the binding left as it was.
#[test]
fn a_context_window_is_registered_with_the_model() {
    let fixture = fixture(Wire::OpenAiChat);
    let shown = fixture.json(&["model", "show", "m"]);
    assert_eq!(shown["context_window"], WINDOW);
    let line = fixture.ok(&["model", "show", "m"]).stdout;
    assert!(line.contains(&format!("window={WINDOW}")), "{line}");
    let listed = fixture.ok(&["model", "list"]).stdout;
    assert!(listed.contains("WINDOW"), "{listed}");
    assert!(listed.contains(&WINDOW.to_string()), "{listed}");

    for bad in ["0", "100000001"] {
        let run = fixture.run(&["model", "register", "m", "--context-window", bad]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert_eq!(
            run.stderr,
            format!("exo: invalid context window {bad}: expected 1 to 100000000 tokens\n")
        );
    }
    let run = fixture.run(&["model", "register", "m", "--context-window", "-5"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(fixture.json(&["model", "show", "m"]), shown);

    // Without one, none is stored: the provider's default applies.
    let plain = fixture.json(&["model", "register", "plain", "--provider", "anthropic"]);
    assert!(plain.get("context_window").is_none(), "{plain}");
}
