//! The OpenAI Responses API (`openai`).

use exo_fake_model::openai::{completed, created, text_delta};
use exo_fake_model::{event, MockResponse, MockServer, Wire};
use exo_model::{CancellationToken, Delta, Error, Kind, Stop, ToolCallOut, Usage};
use serde_json::{json, Value};

use crate::common::{self, call, client, history_request, quick_options, Fixture, KEY, LIMIT};
use crate::support::within;

pub const FIXTURE: Fixture = Fixture {
    kind: Kind::OpenAi,
    path: "/v1/responses",
    base: base_url,
    wire: Wire::OpenAi,
};

fn base_url(server: &str) -> String {
    format!("{server}/v1/")
}

crate::common_tests!(FIXTURE);

#[tokio::test]
async fn exact_request_and_streamed_response() {
    let call_item = json!({"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "shell", "arguments": ""});
    let events = vec![
        created(),
        event(
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        ),
        event(
            "response.reasoning_summary_text.delta",
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Need a listing."}),
        ),
        event(
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
        ),
        text_delta("It is "),
        text_delta("a cat ✓."),
        event(
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 2, "item": call_item}),
        ),
        event(
            "response.function_call_arguments.delta",
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": "{\"comm"}),
        ),
        event(
            "response.function_call_arguments.delta",
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": "and\": \"ls -la\"}"}),
        ),
        event(
            "response.function_call_arguments.done",
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": "{\"command\": \"ls -la\"}"}),
        ),
        event(
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": 2, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "shell", "arguments": "{\"command\": \"ls -la\"}", "status": "completed"}}),
        ),
        completed(json!({
            "input_tokens": 1200,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 45,
            "output_tokens_details": {"reasoning_tokens": 20},
            "total_tokens": 1245,
        })),
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
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.header("authorization"), format!("Bearer {KEY}"));
    assert_eq!(sent.header("content-type"), "application/json");
    assert_eq!(sent.header("accept"), "text/event-stream");
    assert!(sent.header("user-agent").starts_with("exo/"));
    assert_eq!(sent.header("x-api-key"), "");
    assert_eq!(sent.header("anthropic-version"), "");
    assert_eq!(
        sent.body,
        json!({
            "model": "test-model",
            "instructions": "You are exo.",
            "input": [
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be brief."}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files."}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":\"ls\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt\nb.txt"},
                {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": "{\"command\":\"cat c.txt\"}"},
                {"type": "function_call_output", "call_id": "call_2", "output": "cat: c.txt: No such file"},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What is in this picture?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
                ]},
            ],
            "tools": [{
                "type": "function",
                "name": "shell",
                "description": "Runs a shell command.",
                "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
                "strict": false,
            }],
            "max_output_tokens": 1000,
            "stream": true,
            "store": false,
        })
    );

    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning("Need a listing.".into()),
            Delta::Text("It is ".into()),
            Delta::Text("a cat ✓.".into()),
            Delta::ToolCall {
                call_id: "call_9".into(),
                name: "shell".into()
            },
        ]
    );
    let response = result.unwrap();
    assert_eq!(response.text, "It is a cat ✓.");
    assert_eq!(response.reasoning.as_deref(), Some("Need a listing."));
    assert_eq!(
        response.tool_calls,
        vec![ToolCallOut {
            call_id: "call_9".into(),
            name: "shell".into(),
            arguments: json!({"command": "ls -la"}),
        }]
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
async fn incomplete_for_max_output_tokens() {
    let server = MockServer::start(vec![MockResponse::sse(&[
        created(),
        text_delta("The answer is"),
        event(
            "response.incomplete",
            json!({"type": "response.incomplete", "response": {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "usage": {"input_tokens": 3, "output_tokens": 16}}}),
        ),
    ])])
    .await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let response = result.unwrap();
    assert_eq!(response.text, "The answer is");
    assert_eq!(response.stop, Stop::MaxTokens);
    assert_eq!(response.usage.unwrap().output_tokens, 16);
}

#[tokio::test]
async fn failed_and_error_events_are_provider_errors() {
    let failed = event(
        "response.failed",
        json!({"type": "response.failed", "response": {"status": "failed", "error": {"code": "server_error", "message": "The model crashed."}}}),
    );
    let error = event(
        "error",
        json!({"type": "error", "code": "invalid_prompt", "message": "Your prompt was flagged.", "param": null}),
    );
    for (events, expected, retryable) in [
        (
            vec![created(), text_delta("Hi"), failed],
            "model API error: server_error: The model crashed.",
            true,
        ),
        (
            vec![created(), error],
            "model API error: invalid_prompt: Your prompt was flagged.",
            false,
        ),
    ] {
        let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
        let client = client(&FIXTURE, &server, quick_options());
        let (result, _) = within(
            LIMIT,
            call(&client, &common::hello_request(), &CancellationToken::new()),
        )
        .await;
        let error = result.unwrap_err();
        assert!(matches!(error, Error::Provider { .. }));
        assert_eq!(error.to_string(), expected);
        assert_eq!(error.retryable(), retryable);
        assert_eq!(
            server.requests().len(),
            1,
            "errors in a stream are not retried"
        );
    }
}

#[tokio::test]
async fn invalid_argument_json_is_kept_as_text_and_sent_back_verbatim() {
    let events = vec![
        created(),
        event(
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"command\": ls"}}),
        ),
        completed(json!({"input_tokens": 1, "output_tokens": 1})),
    ];
    let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, deltas) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let response = result.unwrap();
    assert_eq!(
        deltas,
        vec![Delta::ToolCall {
            call_id: "call_1".into(),
            name: "shell".into()
        }]
    );
    let call_out = &response.tool_calls[0];
    assert_eq!(call_out.arguments, json!("{\"command\": ls"));

    // Sent back, the model sees exactly what it wrote.
    let mut request = common::hello_request();
    request.items.push(exo_model::Item::ToolCall {
        call_id: call_out.call_id.clone(),
        name: call_out.name.clone(),
        arguments: call_out.arguments.clone(),
    });
    let body = serde_json::to_value(request_body_of(&request).await).unwrap();
    assert_eq!(body["input"][1]["arguments"], "{\"command\": ls");
}

/// The body exo sends for `request`, captured by a server that answers.
async fn request_body_of(request: &exo_model::Request) -> Value {
    let server = MockServer::start(vec![FIXTURE.text_answer(&["ok"])]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(LIMIT, call(&client, request, &CancellationToken::new())).await;
    result.unwrap();
    server.requests()[0].body.clone()
}

#[tokio::test]
async fn output_only_in_the_completed_event_is_used() {
    // Some compatible servers send the whole answer only at the end.
    let events = vec![event(
        "response.completed",
        json!({"type": "response.completed", "response": {
            "status": "completed",
            "output": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "All at once."}]},
                {"type": "function_call", "id": "fc_7", "call_id": "call_7", "name": "shell", "arguments": "{\"command\":\"pwd\"}"},
            ],
            "usage": {"input_tokens": 9, "output_tokens": 4},
        }}),
    )];
    let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, deltas) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let response = result.unwrap();
    assert_eq!(
        deltas,
        vec![
            Delta::Text("All at once.".into()),
            Delta::ToolCall {
                call_id: "call_7".into(),
                name: "shell".into()
            }
        ]
    );
    assert_eq!(response.text, "All at once.");
    assert_eq!(response.tool_calls[0].arguments, json!({"command": "pwd"}));
    assert_eq!(response.stop, Stop::ToolUse);
}
