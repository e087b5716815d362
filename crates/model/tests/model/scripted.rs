//! The scripted model: replays a JSON script, offline, answering each call
//! by its place in the conversation.

use exo_model::{
    CancellationToken, Client, Delta, Endpoint, Error, Item, Request, Role, ScriptSource, Stop,
    ToolCallOut, Usage,
};
use serde_json::json;

use crate::common::{call, hello_request, LIMIT};
use crate::support::within;

fn scripted(script: serde_json::Value) -> Client {
    Client::new(Endpoint::scripted(ScriptSource::Inline(script))).unwrap()
}

/// A request with these items.
fn request(items: Vec<Item>) -> Request {
    Request {
        model: "test-model".into(),
        items,
        ..Request::default()
    }
}

fn user(text: &str) -> Item {
    Item::text(Role::User, text)
}

fn system(text: &str) -> Item {
    Item::text(Role::System, text)
}

fn assistant(text: &str) -> Item {
    Item::text(Role::Assistant, text)
}

fn tool_call(call_id: &str) -> Item {
    Item::ToolCall {
        call_id: call_id.into(),
        name: "shell".into(),
        arguments: json!({"command": "ls"}),
    }
}

fn tool_result(call_id: &str) -> Item {
    Item::ToolResult {
        call_id: call_id.into(),
        output: "a.txt".into(),
        is_error: false,
    }
}

/// `hello_request` after `rounds` answered rounds of one tool call each.
fn after_rounds(rounds: usize) -> Request {
    let mut items = vec![user("Say hello.")];
    for round in 1..=rounds {
        let call_id = format!("call_{round}");
        items.push(assistant("Let me look."));
        items.push(tool_call(&call_id));
        items.push(tool_result(&call_id));
    }
    request(items)
}

#[tokio::test]
async fn answers_by_place_in_the_conversation() {
    let client = scripted(json!({
        "chunk_size": 4,
        "responses": [
            {"text": "Let me look.", "tool_calls": [
                {"name": "shell", "arguments": {"command": "ls"}},
                {"name": "read", "call_id": "mine"},
            ]},
            {"reasoning": "Two files.", "text": "Done ✓", "chunk_size": 100,
             "tool_calls": [{"name": "shell"}],
             "usage": {"input_tokens": 120, "output_tokens": 9, "cached_input_tokens": 100}},
            {"text": "cut off", "stop": "max_tokens"},
        ],
    }));
    let cancel = CancellationToken::new();

    // The first call of a conversation gets the first response, and the
    // same request again gets it again: the client keeps no place.
    for _ in 0..2 {
        let (first, deltas) = call(&client, &hello_request(), &cancel).await;
        assert_eq!(
            deltas,
            vec![
                Delta::Text("Let ".into()),
                Delta::Text("me l".into()),
                Delta::Text("ook.".into()),
                Delta::ToolCall {
                    call_id: "call_1_1".into(),
                    name: "shell".into()
                },
                Delta::ToolCall {
                    call_id: "mine".into(),
                    name: "read".into()
                },
            ]
        );
        let first = first.unwrap();
        assert_eq!(first.text, "Let me look.");
        assert_eq!(
            first.tool_calls,
            vec![
                ToolCallOut {
                    call_id: "call_1_1".into(),
                    name: "shell".into(),
                    arguments: json!({"command": "ls"}),
                },
                ToolCallOut {
                    call_id: "mine".into(),
                    name: "read".into(),
                    arguments: json!({}),
                },
            ]
        );
        assert_eq!(first.stop, Stop::ToolUse);
        assert_eq!(first.usage, None);
    }

    // After one answered round, the second; its default call ids count
    // from its own number.
    let (second, deltas) = call(&client, &after_rounds(1), &cancel).await;
    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning("Two files.".into()),
            Delta::Text("Done ✓".into()),
            Delta::ToolCall {
                call_id: "call_2_1".into(),
                name: "shell".into()
            },
        ]
    );
    let second = second.unwrap();
    assert_eq!(second.reasoning.as_deref(), Some("Two files."));
    assert_eq!(second.stop, Stop::ToolUse);
    assert_eq!(
        second.usage,
        Some(Usage {
            input_tokens: 120,
            output_tokens: 9,
            cached_input_tokens: Some(100)
        })
    );

    // After two, the third, from a fresh client as from a clone: a new
    // process replaying the conversation gets the same answer.
    for client in [
        client.clone(),
        scripted(json!({"responses": [{}, {}, {"stop": "max_tokens"}]})),
    ] {
        let (third, _) = call(&client, &after_rounds(2), &cancel).await;
        assert_eq!(third.unwrap().stop, Stop::MaxTokens);
    }

    // A rewind to an earlier point of the history picks up from there.
    let (again, _) = call(&client, &after_rounds(1), &cancel).await;
    assert_eq!(again.unwrap().text, "Done ✓");
}

#[tokio::test]
async fn a_model_response_is_a_run_of_assistant_items() {
    let client = scripted(json!({"responses": [
        {"text": "r1"}, {"text": "r2"}, {"text": "r3"}, {"text": "r4"},
    ]}));
    let cancel = CancellationToken::new();
    let cases: Vec<(&str, Vec<Item>, &str)> = vec![
        ("no items", vec![], "r1"),
        ("a user message", vec![user("hi")], "r1"),
        (
            "system and user messages",
            vec![system("Be brief."), user("hi"), system("Really.")],
            "r1",
        ),
        ("one answer", vec![user("hi"), assistant("hello")], "r2"),
        (
            "text and tool calls are one answer",
            vec![
                user("hi"),
                assistant("Looking."),
                tool_call("a"),
                tool_call("b"),
                tool_result("a"),
                tool_result("b"),
            ],
            "r2",
        ),
        (
            "consecutive assistant messages are one answer",
            vec![user("hi"), assistant("one"), assistant("two")],
            "r2",
        ),
        (
            "a user message between assistant messages",
            vec![
                user("hi"),
                assistant("hello"),
                user("and?"),
                assistant("and so"),
            ],
            "r3",
        ),
        (
            "tool results separate runs of tool calls",
            vec![
                user("hi"),
                tool_call("a"),
                tool_result("a"),
                tool_call("b"),
                tool_result("b"),
                tool_call("c"),
                tool_result("c"),
            ],
            "r4",
        ),
        (
            "a system message separates assistant messages",
            vec![assistant("one"), system("note"), assistant("two")],
            "r3",
        ),
    ];
    for (case, items, expected) in cases {
        let (result, _) = call(&client, &request(items), &cancel).await;
        assert_eq!(result.unwrap().text, expected, "{case}");
    }
}

#[tokio::test]
async fn runs_out_after_the_last_response() {
    let client = scripted(json!({"responses": [{"text": "one"}, {"text": "two"}]}));
    let cancel = CancellationToken::new();
    let (result, _) = call(&client, &after_rounds(1), &cancel).await;
    assert_eq!(result.unwrap().text, "two");

    let (result, deltas) = call(&client, &after_rounds(2), &cancel).await;
    let error = result.unwrap_err();
    assert_eq!(
        error,
        Error::ScriptExhausted {
            wanted: 3,
            responses: 2
        }
    );
    assert_eq!(
        error.to_string(),
        "scripted model: response 3 wanted, but the script has 2"
    );
    assert_eq!(error.code(), "script_exhausted");
    assert!(!error.retryable());
    assert!(deltas.is_empty());

    let (result, _) = call(&client, &after_rounds(5), &cancel).await;
    assert_eq!(
        result.unwrap_err(),
        Error::ScriptExhausted {
            wanted: 6,
            responses: 2
        }
    );

    let empty = scripted(json!({"responses": []}));
    let (result, _) = call(&empty, &hello_request(), &cancel).await;
    assert_eq!(
        result.unwrap_err(),
        Error::ScriptExhausted {
            wanted: 1,
            responses: 0
        }
    );
}

#[tokio::test]
async fn scripted_errors() {
    let client = scripted(json!({"responses": [
        {"error": {"status": 429, "message": "slow down"}},
        {"error": {"kind": "overloaded_error", "message": "busy"}},
        {"text": "recovered"},
    ]}));
    let cancel = CancellationToken::new();
    // An error answers its place every time: a retry of the same request
    // meets it again.
    for _ in 0..2 {
        let (result, deltas) = call(&client, &hello_request(), &cancel).await;
        assert_eq!(
            result.unwrap_err(),
            Error::Http {
                status: 429,
                message: "slow down".into()
            }
        );
        assert!(deltas.is_empty());
    }
    let (result, _) = call(&client, &after_rounds(1), &cancel).await;
    let error = result.unwrap_err();
    assert!(error.retryable());
    assert_eq!(error.to_string(), "model API error: overloaded_error: busy");
    let (result, _) = call(&client, &after_rounds(2), &cancel).await;
    assert_eq!(result.unwrap().text, "recovered");
}

#[tokio::test]
async fn cancellation_between_delayed_chunks() {
    let client = scripted(json!({"delay_ms": 20, "chunk_size": 1, "responses": [
        {"text": "abcdefghijklmnopqrstuvwxyz", "tool_calls": [{"name": "shell"}]},
    ]}));
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let mut seen = 0;
    let mut on_delta = move |_delta: Delta| {
        seen += 1;
        if seen == 3 {
            canceller.cancel();
        }
    };
    let response = within(
        LIMIT,
        client.complete(&hello_request(), &cancel, &mut on_delta),
    )
    .await
    .unwrap();
    assert_eq!(response.stop, Stop::Cancelled);
    assert_eq!(response.text, "abc");
    assert!(response.tool_calls.is_empty());
}

#[tokio::test]
async fn scripts_load_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.json");
    std::fs::write(&path, r#"{"responses": [{"text": "from a file"}]}"#).unwrap();
    let client = Client::new(Endpoint::scripted(ScriptSource::File(path.clone()))).unwrap();
    assert_eq!(
        format!("{client:?}"),
        r#"Client { kind: "scripted", responses: 1 }"#
    );
    let (result, _) = call(&client, &hello_request(), &CancellationToken::new()).await;
    assert_eq!(result.unwrap().text, "from a file");

    std::fs::write(&path, r#"{"responses": [{"text": 1}]}"#).unwrap();
    let error = Client::new(Endpoint::scripted(ScriptSource::File(path.clone()))).unwrap_err();
    assert_eq!(error.code(), "config");
    assert!(error.to_string().contains("script.json"), "{error}");
}
