//! The Anthropic Messages API (`anthropic`).

use exo_fake_model::anthropic::{
    block_delta, block_start, block_stop, message_delta, message_start, message_stop, ping,
};
use exo_fake_model::{event, Completion, Finish, MockResponse, MockServer, Wire};
use exo_model::{
    CancellationToken, ContentPart, Delta, Error, Item, Kind, Role, Stop, ToolCallOut, Usage,
};
use serde_json::json;

use crate::common::{self, call, client, history_request, quick_options, Fixture, KEY, LIMIT};
use crate::support::within;

pub const FIXTURE: Fixture = Fixture {
    kind: Kind::Anthropic,
    path: "/v1/messages",
    base: base_url,
    wire: Wire::Anthropic,
};

fn base_url(server: &str) -> String {
    server.to_string()
}

crate::common_tests!(FIXTURE);

#[tokio::test]
async fn exact_request_and_streamed_response() {
    let events = vec![
        message_start(json!({
            "input_tokens": 176,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
            "output_tokens": 1,
        })),
        ping(),
        block_start(0, json!({"type": "thinking", "thinking": ""})),
        block_delta(
            0,
            json!({"type": "thinking_delta", "thinking": "Need a listing."}),
        ),
        block_delta(0, json!({"type": "signature_delta", "signature": "c2ln"})),
        block_stop(0),
        block_start(1, json!({"type": "text", "text": ""})),
        block_delta(1, json!({"type": "text_delta", "text": "It is "})),
        block_delta(1, json!({"type": "text_delta", "text": "a cat ✓."})),
        block_stop(1),
        block_start(
            2,
            json!({"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {}}),
        ),
        block_delta(2, json!({"type": "input_json_delta", "partial_json": ""})),
        block_delta(
            2,
            json!({"type": "input_json_delta", "partial_json": "{\"comm"}),
        ),
        block_delta(
            2,
            json!({"type": "input_json_delta", "partial_json": "and\": \"ls -la\"}"}),
        ),
        block_stop(2),
        block_start(
            3,
            json!({"type": "tool_use", "id": "toolu_2", "name": "pwd", "input": {}}),
        ),
        block_stop(3),
        message_delta("tool_use", json!({"output_tokens": 45})),
        message_stop(),
    ];
    let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, deltas) = within(
        LIMIT,
        call(&client, &history_request(), &CancellationToken::new()),
    )
    .await;

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), KEY);
    assert_eq!(sent.header("anthropic-version"), "2023-06-01");
    assert_eq!(sent.header("content-type"), "application/json");
    assert_eq!(sent.header("accept"), "text/event-stream");
    assert_eq!(sent.header("authorization"), "");
    assert_eq!(
        sent.body,
        json!({
            "model": "test-model",
            "max_tokens": 1000,
            "system": "You are exo.\n\nBe brief.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "List the files."}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "call_1", "name": "shell", "input": {"command": "ls"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt\nb.txt", "is_error": false},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_2", "name": "shell", "input": {"command": "cat c.txt"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "cat: c.txt: No such file", "is_error": true},
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                ]},
            ],
            "tools": [{
                "name": "shell",
                "description": "Runs a shell command.",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
            }],
            "stream": true,
        })
    );

    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning("Need a listing.".into()),
            Delta::Text("It is ".into()),
            Delta::Text("a cat ✓.".into()),
            Delta::ToolCall {
                call_id: "toolu_1".into(),
                name: "shell".into()
            },
            Delta::ToolCall {
                call_id: "toolu_2".into(),
                name: "pwd".into()
            },
        ]
    );
    let response = result.unwrap();
    assert_eq!(response.text, "It is a cat ✓.");
    assert_eq!(response.reasoning.as_deref(), Some("Need a listing."));
    assert_eq!(
        response.tool_calls,
        vec![
            ToolCallOut {
                call_id: "toolu_1".into(),
                name: "shell".into(),
                arguments: json!({"command": "ls -la"}),
            },
            ToolCallOut {
                call_id: "toolu_2".into(),
                name: "pwd".into(),
                arguments: json!({}),
            },
        ]
    );
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 1200,
            output_tokens: 45,
            cached_input_tokens: Some(1024),
        })
    );
    assert_eq!(response.stop, Stop::ToolUse);
}

#[tokio::test]
async fn default_max_tokens_and_merging() {
    // No cap, no instructions; a user message written before the tool
    // result it sits with still goes after it; empty text is dropped.
    let request = exo_model::Request {
        model: "claude-test".into(),
        items: vec![
            Item::text(Role::User, "Go."),
            Item::ToolCall {
                call_id: "toolu_1".into(),
                name: "shell".into(),
                arguments: json!("not json"),
            },
            Item::text(Role::User, "Also this."),
            Item::ToolResult {
                call_id: "toolu_1".into(),
                output: "done".into(),
                is_error: false,
            },
            Item::Message {
                role: Role::Assistant,
                content: vec![ContentPart::Text { text: "".into() }],
            },
        ],
        ..Default::default()
    };
    let server = MockServer::start(vec![FIXTURE.text_answer(&["ok"])]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(LIMIT, call(&client, &request, &CancellationToken::new())).await;
    assert_eq!(result.unwrap().text, "ok");
    assert_eq!(
        server.requests()[0].body,
        json!({
            "model": "claude-test",
            "max_tokens": 8192,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Go."}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done", "is_error": false},
                    {"type": "text", "text": "Also this."},
                ]},
            ],
            "stream": true,
        })
    );
}

#[tokio::test]
async fn an_error_event_is_a_provider_error() {
    let events = vec![
        message_start(json!({"input_tokens": 5, "output_tokens": 1})),
        event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ];
    let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(
        error,
        Error::Provider {
            kind: "overloaded_error".into(),
            message: "Overloaded".into()
        }
    );
    assert!(error.retryable());
    assert_eq!(error.code(), "provider");
}

#[tokio::test]
async fn max_tokens_stop() {
    let answer = Completion::deltas(["The answer is"])
        .with_usage(5, 16)
        .with_finish(Finish::MaxTokens);
    let server = MockServer::start(vec![FIXTURE.wire.response(&answer.into())]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let response = result.unwrap();
    assert_eq!(response.stop, Stop::MaxTokens);
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 5,
            output_tokens: 16,
            cached_input_tokens: None
        })
    );
}

#[tokio::test]
async fn cancelled_tool_call_without_its_end_is_left_out() {
    let events = vec![
        message_start(json!({"input_tokens": 5, "output_tokens": 1})),
        block_start(0, json!({"type": "text", "text": ""})),
        block_delta(0, json!({"type": "text_delta", "text": "Running."})),
        block_stop(0),
        block_start(
            1,
            json!({"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {}}),
        ),
        block_delta(
            1,
            json!({"type": "input_json_delta", "partial_json": "{\"comm"}),
        ),
    ];
    let server = MockServer::start(vec![MockResponse::sse(&events).then_stall()]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let mut on_delta = move |delta: Delta| {
        if matches!(delta, Delta::ToolCall { .. }) {
            // Let the partial arguments arrive, then cancel.
            let canceller = canceller.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                canceller.cancel();
            });
        }
    };
    let response = within(
        LIMIT,
        client.complete(&common::hello_request(), &cancel, &mut on_delta),
    )
    .await
    .unwrap();
    assert_eq!(response.stop, Stop::Cancelled);
    assert_eq!(response.text, "Running.");
    assert!(response.tool_calls.is_empty());
}
