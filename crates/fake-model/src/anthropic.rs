//! The Anthropic Messages API (`POST {base}/v1/messages`): named events
//! whose data carries the same `type`.
//!
//! A complete answer is `message_start` (with the input tokens), `ping`; for
//! text, a `text` block at index 0 (`content_block_start` with empty text,
//! one `text_delta` per delta, `content_block_stop`); for each tool call a
//! `tool_use` block (`content_block_start` with `input: {}`, an empty
//! `input_json_delta` then one per argument piece, `content_block_stop`);
//! `message_delta` with the `stop_reason` (`end_turn`, `tool_use`, or
//! `max_tokens` for [`Finish::MaxTokens`]) and the output tokens; and
//! `message_stop`.

use serde_json::{json, Value};

use crate::answer::{halves, Completion, Finish, HttpError};
use crate::event;

/// `message_start` with this usage.
pub fn message_start(usage: Value) -> String {
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "fake-model", "stop_reason": null, "stop_sequence": null, "usage": usage,
        }}),
    )
}

/// `ping`, which the API sends now and then.
pub fn ping() -> String {
    event("ping", json!({"type": "ping"}))
}

/// `content_block_start` of `block` at `index`.
pub fn block_start(index: usize, block: Value) -> String {
    event(
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

/// `content_block_delta` of `delta` at `index`.
pub fn block_delta(index: usize, delta: Value) -> String {
    event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

/// `content_block_stop` at `index`.
pub fn block_stop(index: usize) -> String {
    event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

/// `message_delta` with this stop reason and (cumulative) usage.
pub fn message_delta(stop_reason: &str, usage: Value) -> String {
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage}),
    )
}

/// `message_stop`, the end of the stream.
pub fn message_stop() -> String {
    event("message_stop", json!({"type": "message_stop"}))
}

/// The events up to the last text delta, leaving the text block open.
fn text_opening(input_tokens: u64, text_deltas: &[String]) -> Vec<String> {
    let mut events = vec![
        message_start(json!({"input_tokens": input_tokens, "output_tokens": 1})),
        ping(),
    ];
    if !text_deltas.concat().is_empty() {
        events.push(block_start(0, json!({"type": "text", "text": ""})));
        events.extend(
            text_deltas
                .iter()
                .map(|text| block_delta(0, json!({"type": "text_delta", "text": text}))),
        );
    }
    events
}

/// The events of a complete answer.
pub(crate) fn completion_events(completion: &Completion) -> Vec<String> {
    let mut events = text_opening(completion.input_tokens, &completion.text_deltas);
    let mut index = 0;
    if !completion.full_text().is_empty() {
        events.push(block_stop(0));
        index += 1;
    }
    for call in &completion.tool_calls {
        events.push(block_start(
            index,
            json!({"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}),
        ));
        let mut pieces = vec![String::new()];
        pieces.extend(halves(&call.arguments_text()));
        for piece in pieces {
            events.push(block_delta(
                index,
                json!({"type": "input_json_delta", "partial_json": piece}),
            ));
        }
        events.push(block_stop(index));
        index += 1;
    }
    let stop_reason = match completion.finish {
        Finish::MaxTokens => "max_tokens",
        Finish::Natural if completion.tool_calls.is_empty() => "end_turn",
        Finish::Natural => "tool_use",
    };
    events.push(message_delta(
        stop_reason,
        json!({"output_tokens": completion.output_tokens}),
    ));
    events.push(message_stop());
    events
}

/// The events of an answer that has started and not ended.
pub(crate) fn opening_events(text_deltas: &[String]) -> Vec<String> {
    text_opening(crate::answer::DEFAULT_INPUT_TOKENS, text_deltas)
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`.
pub(crate) fn error_body(error: &HttpError) -> Value {
    let kind = error.kind.as_deref().unwrap_or(match error.status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    });
    json!({"type": "error", "error": {"type": kind, "message": error.message}})
}
