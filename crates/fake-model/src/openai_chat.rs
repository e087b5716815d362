//! OpenAI Chat Completions (`POST {base}/chat/completions`): `data:`-only
//! events, each a `chat.completion.chunk`, ending with `data: [DONE]`.
//!
//! A complete answer is a first chunk with the role (`content: ""`, or
//! `null` when there is no text), one chunk per text delta, for each tool
//! call a chunk with its `index`, `id`, `type` and `function.name` (empty
//! arguments) then one per argument piece, a chunk with the
//! `finish_reason` (`stop`, `tool_calls`, or `length` for
//! [`Finish::MaxTokens`]), the usage chunk (`choices: []`, as
//! `stream_options.include_usage` asks) and `[DONE]`.

use serde_json::{json, Value};

use crate::answer::{halves, Completion, Finish, HttpError};
use crate::data;

/// A chunk with one choice: this `delta` and `finish_reason` (`null` while
/// streaming).
pub fn chunk(delta: Value, finish_reason: Value) -> String {
    data(
        &json!({
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
        .to_string(),
    )
}

/// The last chunk before `[DONE]`: no choices, this usage.
pub fn usage_chunk(usage: Value) -> String {
    data(
        &json!({
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "fake-model",
            "choices": [],
            "usage": usage,
        })
        .to_string(),
    )
}

/// `data: [DONE]`, the end of the stream.
pub fn done() -> String {
    data("[DONE]")
}

/// The role chunk and the text deltas.
fn text_opening(text_deltas: &[String]) -> Vec<String> {
    let content = if text_deltas.concat().is_empty() {
        Value::Null
    } else {
        json!("")
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": content}),
        Value::Null,
    )];
    events.extend(
        text_deltas
            .iter()
            .map(|text| chunk(json!({"content": text}), Value::Null)),
    );
    events
}

/// The events of a complete answer.
pub(crate) fn completion_events(completion: &Completion) -> Vec<String> {
    let mut events = text_opening(&completion.text_deltas);
    for (index, call) in completion.tool_calls.iter().enumerate() {
        events.push(chunk(
            json!({"tool_calls": [{"index": index, "id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in halves(&call.arguments_text()) {
            events.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    let finish_reason = match completion.finish {
        Finish::MaxTokens => "length",
        Finish::Natural if completion.tool_calls.is_empty() => "stop",
        Finish::Natural => "tool_calls",
    };
    events.push(chunk(json!({}), json!(finish_reason)));
    events.push(usage_chunk(json!({
        "prompt_tokens": completion.input_tokens,
        "completion_tokens": completion.output_tokens,
        "total_tokens": completion.input_tokens + completion.output_tokens,
    })));
    events.push(done());
    events
}

/// The events of an answer that has started and not ended.
pub(crate) fn opening_events(text_deltas: &[String]) -> Vec<String> {
    text_opening(text_deltas)
}

/// OpenAI's error body, which compatible servers copy:
/// `{"error": {"message", "type", "param", "code"}}`.
pub(crate) fn error_body(error: &HttpError) -> Value {
    crate::openai::error_body(error)
}
