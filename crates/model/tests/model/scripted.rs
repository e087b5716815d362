//! The scripted model: replays a JSON script, offline.

use exo_model::{
    CancellationToken, Client, Delta, Endpoint, Error, ScriptSource, Stop, ToolCallOut, Usage,
};
use serde_json::json;

use crate::common::{call, hello_request, LIMIT};
use crate::support::within;

fn scripted(script: serde_json::Value) -> Client {
    Client::new(Endpoint::scripted(ScriptSource::Inline(script))).unwrap()
}

#[tokio::test]
async fn replays_responses_in_order_then_runs_out() {
    let client = scripted(json!({
        "chunk_size": 4,
        "responses": [
            {"text": "Let me look.", "tool_calls": [
                {"name": "shell", "arguments": {"command": "ls"}},
                {"name": "read", "call_id": "mine"},
            ]},
            {"reasoning": "Two files.", "text": "Done ✓", "chunk_size": 100,
             "usage": {"input_tokens": 120, "output_tokens": 9, "cached_input_tokens": 100}},
            {"text": "cut off", "stop": "max_tokens"},
        ],
    }));
    let cancel = CancellationToken::new();
    let request = hello_request();

    let (first, deltas) = call(&client, &request, &cancel).await;
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

    let (second, deltas) = call(&client, &request, &cancel).await;
    assert_eq!(
        deltas,
        vec![
            Delta::Reasoning("Two files.".into()),
            Delta::Text("Done ✓".into())
        ]
    );
    let second = second.unwrap();
    assert_eq!(second.reasoning.as_deref(), Some("Two files."));
    assert_eq!(second.stop, Stop::EndTurn);
    assert_eq!(
        second.usage,
        Some(Usage {
            input_tokens: 120,
            output_tokens: 9,
            cached_input_tokens: Some(100)
        })
    );

    // A clone shares the place in the script.
    let (third, _) = call(&client.clone(), &request, &cancel).await;
    assert_eq!(third.unwrap().stop, Stop::MaxTokens);

    let (fourth, deltas) = call(&client, &request, &cancel).await;
    let error = fourth.unwrap_err();
    assert_eq!(error, Error::ScriptExhausted { responses: 3 });
    assert_eq!(
        error.to_string(),
        "scripted model: the script has 3 responses and all are used"
    );
    assert_eq!(error.code(), "script_exhausted");
    assert!(deltas.is_empty());
}

#[tokio::test]
async fn scripted_errors() {
    let client = scripted(json!({"responses": [
        {"error": {"status": 429, "message": "slow down"}},
        {"error": {"kind": "overloaded_error", "message": "busy"}},
        {"text": "recovered"},
    ]}));
    let cancel = CancellationToken::new();
    let (result, _) = call(&client, &hello_request(), &cancel).await;
    assert_eq!(
        result.unwrap_err(),
        Error::Http {
            status: 429,
            message: "slow down".into()
        }
    );
    let (result, _) = call(&client, &hello_request(), &cancel).await;
    let error = result.unwrap_err();
    assert!(error.retryable());
    assert_eq!(error.to_string(), "model API error: overloaded_error: busy");
    let (result, _) = call(&client, &hello_request(), &cancel).await;
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
