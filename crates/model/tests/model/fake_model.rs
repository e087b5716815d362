//! The fake model API (`exo-fake-model`) speaks each wire as exo-model
//! reads it: what a test says the model answers is what the client
//! decodes, for every kind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exo_fake_model::{
    Answer, Completion, FakeModel, Finish, HttpError, Wire, DEFAULT_INPUT_TOKENS,
    DEFAULT_OUTPUT_TOKENS,
};
use exo_model::{
    CancellationToken, Client, ClientOptions, Delta, Endpoint, Error, Kind, Stop, ToolCallOut,
    Usage,
};
use serde_json::json;

use crate::common::{call, hello_request, quick_options, LIMIT};
use crate::support::within;

/// exo-model's kind for a wire.
fn kind(wire: Wire) -> Kind {
    match wire {
        Wire::OpenAi => Kind::OpenAi,
        Wire::OpenAiChat => Kind::OpenAiChat,
        Wire::Anthropic => Kind::Anthropic,
    }
}

/// A client of `model`, without a key, as for a local server.
fn client(model: &FakeModel, options: ClientOptions) -> Client {
    let endpoint = Endpoint::new(kind(model.wire()), model.base_url()).with_options(options);
    Client::new(endpoint).unwrap()
}

#[tokio::test]
async fn text_and_tool_calls_decode_as_answered() {
    for wire in Wire::ALL {
        let model = FakeModel::start(wire);
        model.push(
            Completion::text("It is a cat ✓.")
                .with_tool_call(
                    "call_1",
                    "shell",
                    json!({"command": "ls -la", "timeout_ms": 500}),
                )
                .with_tool_call("call_2", "list_files", json!({}))
                .with_usage(1200, 45),
        );
        let client = client(&model, quick_options());
        let (result, deltas) = within(
            LIMIT,
            call(&client, &hello_request(), &CancellationToken::new()),
        )
        .await;
        let response = result.unwrap_or_else(|error| panic!("{wire:?}: {error}"));
        assert_eq!(
            deltas,
            vec![
                Delta::Text("It ".into()),
                Delta::Text("is ".into()),
                Delta::Text("a ".into()),
                Delta::Text("cat ".into()),
                Delta::Text("✓.".into()),
                Delta::ToolCall {
                    call_id: "call_1".into(),
                    name: "shell".into()
                },
                Delta::ToolCall {
                    call_id: "call_2".into(),
                    name: "list_files".into()
                },
            ],
            "{wire:?}"
        );
        assert_eq!(response.text, "It is a cat ✓.", "{wire:?}");
        assert_eq!(response.reasoning, None, "{wire:?}");
        assert_eq!(
            response.tool_calls,
            vec![
                ToolCallOut {
                    call_id: "call_1".into(),
                    name: "shell".into(),
                    arguments: json!({"command": "ls -la", "timeout_ms": 500}),
                },
                ToolCallOut {
                    call_id: "call_2".into(),
                    name: "list_files".into(),
                    arguments: json!({}),
                },
            ],
            "{wire:?}"
        );
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: 1200,
                output_tokens: 45,
                cached_input_tokens: None,
            }),
            "{wire:?}"
        );
        assert_eq!(response.stop, Stop::ToolUse, "{wire:?}");

        let requests = model.requests();
        assert_eq!(requests.len(), 1, "{wire:?}");
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, wire.path());
        assert_eq!(requests[0].body["model"], "test-model");
        assert_eq!(model.unanswered(), 0);
    }
}

#[tokio::test]
async fn text_alone_ends_the_turn_and_calls_alone_use_tools() {
    for wire in Wire::ALL {
        let model = FakeModel::start(wire);
        model.push(Answer::text("Hello there."));
        model.push(Completion::text("").with_tool_call("call_9", "grep", json!({"pattern": "x"})));
        let client = client(&model, quick_options());
        let cancel = CancellationToken::new();

        let response = within(LIMIT, call(&client, &hello_request(), &cancel))
            .await
            .0
            .unwrap_or_else(|error| panic!("{wire:?}: {error}"));
        assert_eq!(response.text, "Hello there.", "{wire:?}");
        assert!(response.tool_calls.is_empty(), "{wire:?}");
        assert_eq!(response.stop, Stop::EndTurn, "{wire:?}");
        assert_eq!(
            response.usage,
            Some(Usage {
                input_tokens: DEFAULT_INPUT_TOKENS,
                output_tokens: DEFAULT_OUTPUT_TOKENS,
                cached_input_tokens: None,
            }),
            "{wire:?}"
        );

        let (result, deltas) = within(LIMIT, call(&client, &hello_request(), &cancel)).await;
        let response = result.unwrap_or_else(|error| panic!("{wire:?}: {error}"));
        assert_eq!(
            deltas,
            vec![Delta::ToolCall {
                call_id: "call_9".into(),
                name: "grep".into()
            }],
            "{wire:?}"
        );
        assert_eq!(response.text, "", "{wire:?}");
        assert_eq!(response.tool_calls[0].arguments, json!({"pattern": "x"}));
        assert_eq!(response.stop, Stop::ToolUse, "{wire:?}");
    }
}

#[tokio::test]
async fn an_answer_cut_at_the_cap_stops_at_max_tokens() {
    for wire in Wire::ALL {
        let model = FakeModel::start(wire);
        model.push(
            Completion::text("The answer is")
                .with_usage(3, 16)
                .with_finish(Finish::MaxTokens),
        );
        let client = client(&model, quick_options());
        let response = within(
            LIMIT,
            call(&client, &hello_request(), &CancellationToken::new()),
        )
        .await
        .0
        .unwrap_or_else(|error| panic!("{wire:?}: {error}"));
        assert_eq!(response.text, "The answer is", "{wire:?}");
        assert_eq!(response.stop, Stop::MaxTokens, "{wire:?}");
        assert_eq!(response.usage.unwrap().output_tokens, 16, "{wire:?}");
    }
}

// Multi-threaded: the blocking wait below must not stop the runtime that
// runs the client's connection, which closes the socket.
#[tokio::test(flavor = "multi_thread")]
async fn an_opening_streams_then_waits_until_cancelled() {
    for wire in Wire::ALL {
        let model = FakeModel::start(wire);
        model.push(Answer::opening("Still thinking"));
        let client = client(&model, ClientOptions::default());
        let cancel = CancellationToken::new();
        let deltas = Arc::new(Mutex::new(Vec::new()));
        let response = {
            let canceller = cancel.clone();
            let deltas = deltas.clone();
            let mut on_delta = move |delta: Delta| {
                let mut deltas = deltas.lock().unwrap();
                deltas.push(delta);
                if deltas.len() == 2 {
                    canceller.cancel();
                }
            };
            within(
                LIMIT,
                client.complete(&hello_request(), &cancel, &mut on_delta),
            )
            .await
            .unwrap_or_else(|error| panic!("{wire:?}: {error}"))
        };
        assert_eq!(response.stop, Stop::Cancelled, "{wire:?}");
        assert_eq!(response.text, "Still thinking", "{wire:?}");
        assert_eq!(
            *deltas.lock().unwrap(),
            vec![Delta::Text("Still ".into()), Delta::Text("thinking".into())],
            "{wire:?}"
        );
        assert!(
            model.wait_for_disconnects(1, LIMIT),
            "{wire:?}: the fake did not see the client go away"
        );
    }
}

#[tokio::test]
async fn http_errors_come_in_each_vendors_shape_with_their_headers() {
    for wire in Wire::ALL {
        let model = FakeModel::start(wire);
        // The computed backoff is a minute, so finishing in time proves
        // the header was sent and honoured.
        model.push(
            HttpError::new(429, "Slow down.")
                .with_header("retry-after-ms", "10")
                .with_header("retry-after", "60"),
        );
        model.push(Answer::text("ok"));
        model.push(HttpError::new(400, "Bad tool schema."));
        let mut options = ClientOptions::default();
        options.initial_backoff = Duration::from_secs(60);
        let client = client(&model, options);
        let cancel = CancellationToken::new();

        let (result, _) = within(LIMIT, call(&client, &hello_request(), &cancel)).await;
        assert_eq!(result.unwrap().text, "ok", "{wire:?}");
        assert_eq!(model.requests().len(), 2, "{wire:?}");

        let (result, _) = within(LIMIT, call(&client, &hello_request(), &cancel)).await;
        assert_eq!(
            result.unwrap_err(),
            Error::Http {
                status: 400,
                message: "invalid_request_error: Bad tool schema.".into()
            },
            "{wire:?}"
        );
        assert_eq!(model.requests().len(), 3, "{wire:?}");
    }
}

#[tokio::test]
async fn a_request_without_a_queued_answer_fails_at_once_saying_so() {
    for wire in Wire::ALL {
        let model = FakeModel::start(wire);
        let client = client(&model, quick_options());
        let (result, _) = within(
            LIMIT,
            call(&client, &hello_request(), &CancellationToken::new()),
        )
        .await;
        assert_eq!(
            result.unwrap_err(),
            Error::Http {
                status: 500,
                message: format!(
                    "fake_model_queue_empty: exo-fake-model: no answer queued for request 1 (POST {}); push one before the request is made",
                    wire.path()
                )
            },
            "{wire:?}"
        );
        assert_eq!(model.requests().len(), 1, "{wire:?}: not retried");
        assert_eq!(model.unanswered(), 1, "{wire:?}");
    }
}
