//! OpenAI Chat Completions (`openai-chat`).

use exo_fake_model::openai_chat::{chunk, done, usage_chunk};
use exo_fake_model::{data, MockResponse, MockServer, Wire};
use exo_model::{CancellationToken, Delta, Error, Kind, Stop, ToolCallOut, Usage};
use serde_json::{json, Value};

use crate::common::{self, call, client, history_request, quick_options, Fixture, KEY, LIMIT};
use crate::support::within;

pub const FIXTURE: Fixture = Fixture {
    kind: Kind::OpenAiChat,
    path: "/v1/chat/completions",
    base: base_url,
    wire: Wire::OpenAiChat,
};

fn base_url(server: &str) -> String {
    format!("{server}/v1")
}

crate::common_tests!(FIXTURE);

#[tokio::test]
async fn exact_request_and_streamed_response() {
    let events = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"reasoning_content": "Need a listing."}), Value::Null),
        chunk(json!({"content": "It is "}), Value::Null),
        chunk(json!({"content": "a cat ✓."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "shell", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"command\""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ": \"ls -la\"}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(json!({
            "prompt_tokens": 1200,
            "completion_tokens": 45,
            "total_tokens": 1245,
            "prompt_tokens_details": {"cached_tokens": 1024},
        })),
        done(),
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
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), format!("Bearer {KEY}"));
    assert_eq!(sent.header("content-type"), "application/json");
    assert_eq!(sent.header("accept"), "text/event-stream");
    assert_eq!(sent.header("x-api-key"), "");
    assert_eq!(
        sent.body,
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You are exo."},
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "List the files."},
                {"role": "assistant", "content": "Looking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":\"ls\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.txt\nb.txt"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_2", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":\"cat c.txt\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_2", "content": "cat: c.txt: No such file"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ]},
            ],
            "tools": [{
                "type": "function",
                "function": {
                    "name": "shell",
                    "description": "Runs a shell command.",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
                },
            }],
            "max_tokens": 1000,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );

    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning("Need a listing.".into()),
            Delta::Text("It is ".into()),
            Delta::Text("a cat ✓.".into()),
            Delta::ToolCall {
                call_id: "call_a".into(),
                name: "shell".into()
            },
            Delta::ToolCall {
                call_id: "call_b".into(),
                name: "read".into()
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
                call_id: "call_a".into(),
                name: "shell".into(),
                arguments: json!({"command": "ls -la"}),
            },
            ToolCallOut {
                call_id: "call_b".into(),
                name: "read".into(),
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
async fn local_server_quirks() {
    // No key, no ids on tool calls, `reasoning` instead of
    // `reasoning_content`, "stop" despite a tool call, no usage, and the
    // connection closed without [DONE]: what Ollama and llama.cpp may do.
    let events = vec![
        chunk(json!({"reasoning": "hmm"}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"name": "shell", "arguments": "{\"command\":\"ls\"}"}}]}),
            json!("stop"),
        ),
    ];
    let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
    let endpoint = exo_model::Endpoint::new(Kind::OpenAiChat, base_url(&server.url()));
    let client = exo_model::Client::new(endpoint).unwrap();
    let (result, deltas) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    assert_eq!(server.requests()[0].header("authorization"), "");
    let response = result.unwrap();
    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning("hmm".into()),
            Delta::ToolCall {
                call_id: "call_0".into(),
                name: "shell".into()
            }
        ]
    );
    assert_eq!(response.tool_calls[0].call_id, "call_0");
    assert_eq!(response.tool_calls[0].arguments, json!({"command": "ls"}));
    assert_eq!(response.stop, Stop::ToolUse);
    assert_eq!(response.usage, None);
}

#[tokio::test]
async fn length_is_max_tokens() {
    let events = vec![
        chunk(json!({"content": "The answer is"}), Value::Null),
        chunk(json!({}), json!("length")),
        done(),
    ];
    let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let response = result.unwrap();
    assert_eq!(response.text, "The answer is");
    assert_eq!(response.stop, Stop::MaxTokens);
}

#[tokio::test]
async fn an_error_chunk_is_a_provider_error() {
    // OpenRouter reports upstream failures mid-stream like this.
    let events = vec![
        chunk(json!({"content": "Hi"}), Value::Null),
        data(
            &json!({"error": {"code": 502, "message": "Upstream provider overloaded"}}).to_string(),
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
    assert!(matches!(error, Error::Provider { .. }));
    assert_eq!(
        error.to_string(),
        "model API error: 502: Upstream provider overloaded"
    );
}

#[tokio::test]
async fn a_json_answer_instead_of_a_stream_is_a_decode_error() {
    // A server that ignores `stream: true`.
    let server = MockServer::start(vec![MockResponse::json(
        200,
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]}),
    )])
    .await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "decode", "{error}");
    assert!(
        error.to_string().contains("expected an event stream"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn repeated_tool_names_are_not_doubled() {
    let events = vec![
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "shell", "arguments": "{\"command\""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"name": "shell", "arguments": ":\"ls\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        done(),
    ];
    let server = MockServer::start(vec![MockResponse::sse(&events)]).await;
    let client = client(&FIXTURE, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &common::hello_request(), &CancellationToken::new()),
    )
    .await;
    let response = result.unwrap();
    assert_eq!(
        response.tool_calls,
        vec![ToolCallOut {
            call_id: "call_x".into(),
            name: "shell".into(),
            arguments: json!({"command": "ls"}),
        }]
    );
}
