//! The OpenAI Responses API (`POST {base}/responses`): its stream events,
//! named (`event:`) and typed (`type` in the data) alike.
//!
//! A complete answer is `response.created`, `response.in_progress`; for
//! text, a `message` item at output index 0 (`output_item.added`,
//! `content_part.added`, `output_text.delta` per delta, `output_text.done`,
//! `content_part.done`, `output_item.done`); for each tool call a
//! `function_call` item (`output_item.added` with empty arguments,
//! `function_call_arguments.delta` per piece, `function_call_arguments.done`,
//! `output_item.done`); and `response.completed` with the whole output and
//! the usage (`response.incomplete` with reason `max_output_tokens` for
//! [`Finish::MaxTokens`]).

use serde_json::{json, Value};

use crate::answer::{halves, Completion, Finish, HttpError};
use crate::event;

/// The response's id in every event.
const RESPONSE_ID: &str = "resp_1";
/// The text message's item id.
const MESSAGE_ID: &str = "msg_1";

/// `response.created`, opening the stream.
pub fn created() -> String {
    event(
        "response.created",
        json!({"type": "response.created", "response": response("in_progress", json!([]))}),
    )
}

fn in_progress() -> String {
    event(
        "response.in_progress",
        json!({"type": "response.in_progress", "response": response("in_progress", json!([]))}),
    )
}

/// A `response.output_text.delta` of the message at output index 0.
pub fn text_delta(text: &str) -> String {
    event(
        "response.output_text.delta",
        json!({"type": "response.output_text.delta", "item_id": MESSAGE_ID, "output_index": 0, "content_index": 0, "delta": text}),
    )
}

/// `response.completed` with this usage and no output (the output having
/// been streamed).
pub fn completed(usage: Value) -> String {
    let mut response = response("completed", json!([]));
    response["usage"] = usage;
    event(
        "response.completed",
        json!({"type": "response.completed", "response": response}),
    )
}

/// The `response` object of the lifecycle events.
fn response(status: &str, output: Value) -> Value {
    json!({"id": RESPONSE_ID, "object": "response", "status": status, "model": "fake-model", "output": output})
}

fn message_item(status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(text) => json!([{"type": "output_text", "text": text, "annotations": []}]),
        None => json!([]),
    };
    json!({"type": "message", "id": MESSAGE_ID, "status": status, "role": "assistant", "content": content})
}

fn output_item(kind: &str, output_index: usize, item: Value) -> String {
    event(
        kind,
        json!({"type": kind, "output_index": output_index, "item": item}),
    )
}

fn content_part(kind: &str, text: &str) -> String {
    event(
        kind,
        json!({"type": kind, "item_id": MESSAGE_ID, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
    )
}

/// The events of the message item up to its last text delta.
fn message_opening(text_deltas: &[String]) -> Vec<String> {
    let mut events = vec![
        output_item(
            "response.output_item.added",
            0,
            message_item("in_progress", None),
        ),
        content_part("response.content_part.added", ""),
    ];
    events.extend(text_deltas.iter().map(|text| text_delta(text)));
    events
}

/// The events of a complete answer.
pub(crate) fn completion_events(completion: &Completion) -> Vec<String> {
    let mut events = vec![created(), in_progress()];
    let mut output = Vec::new();
    let text = completion.full_text();
    if !text.is_empty() {
        events.extend(message_opening(&completion.text_deltas));
        events.push(event(
            "response.output_text.done",
            json!({"type": "response.output_text.done", "item_id": MESSAGE_ID, "output_index": 0, "content_index": 0, "text": text}),
        ));
        events.push(content_part("response.content_part.done", &text));
        let item = message_item("completed", Some(&text));
        events.push(output_item("response.output_item.done", 0, item.clone()));
        output.push(item);
    }
    for (number, call) in completion.tool_calls.iter().enumerate() {
        let output_index = output.len();
        let item_id = format!("fc_{}", number + 1);
        let arguments = call.arguments_text();
        let item = |status: &str, arguments: &str| {
            let mut item = json!({"type": "function_call", "id": item_id, "call_id": call.call_id, "name": call.name, "arguments": arguments, "status": status});
            if let Some(namespace) = &call.namespace {
                item["namespace"] = json!(namespace);
            }
            item
        };
        events.push(output_item(
            "response.output_item.added",
            output_index,
            item("in_progress", ""),
        ));
        for piece in halves(&arguments) {
            events.push(event(
                "response.function_call_arguments.delta",
                json!({"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": output_index, "delta": piece}),
            ));
        }
        events.push(event(
            "response.function_call_arguments.done",
            json!({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": output_index, "arguments": arguments}),
        ));
        let done = item("completed", &arguments);
        events.push(output_item(
            "response.output_item.done",
            output_index,
            done.clone(),
        ));
        output.push(done);
    }
    let usage = json!({
        "input_tokens": completion.input_tokens,
        "output_tokens": completion.output_tokens,
        "total_tokens": completion.input_tokens + completion.output_tokens,
    });
    let (kind, status) = match completion.finish {
        Finish::Natural => ("response.completed", "completed"),
        Finish::MaxTokens => ("response.incomplete", "incomplete"),
    };
    let mut response = response(status, Value::Array(output));
    response["usage"] = usage;
    if completion.finish == Finish::MaxTokens {
        response["incomplete_details"] = json!({"reason": "max_output_tokens"});
    }
    events.push(event(kind, json!({"type": kind, "response": response})));
    events
}

/// The events of an answer that has started and not ended.
pub(crate) fn opening_events(text_deltas: &[String]) -> Vec<String> {
    let mut events = vec![created(), in_progress()];
    events.extend(message_opening(text_deltas));
    events
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
pub(crate) fn error_body(error: &HttpError) -> Value {
    let kind = error.kind.as_deref().unwrap_or(match error.status {
        429 => "requests",
        500.. => "server_error",
        _ => "invalid_request_error",
    });
    json!({"error": {"message": error.message, "type": kind, "param": null, "code": null}})
}
