//! The OpenAI Responses API: `POST {base}/responses` with `stream: true`.
//!
//! Request: `model`, `instructions`, `input` (message, `function_call` and
//! `function_call_output` items), `tools` (`{"type": "function", ...,
//! "strict": false}`), `max_output_tokens`, `stream`, and `store: false`
//! (exo keeps the history; nothing is left on OpenAI's servers).
//! Events: `response.output_text.delta`, `response.reasoning_summary_text.delta`
//! and `response.reasoning_text.delta`, `response.output_item.added`/`done`
//! for function calls, `response.function_call_arguments.delta`, and the
//! terminal `response.completed`, `response.incomplete`, `response.failed`
//! or `error`. Events are told apart by their data's `type`, so servers
//! that omit the `event:` line work too.

use serde_json::{json, Map, Value};

use crate::http::{json_error_message, Decoder};
use crate::sse::SseEvent;
use crate::{
    arguments_text, data_url, parse_arguments, ContentPart, Delta, Error, Item, Partial, Request,
    Role, Stop, ToolCallOut, Usage,
};

/// The request body.
pub(crate) fn body(request: &Request) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    if let Some(instructions) = &request.instructions {
        body.insert("instructions".into(), json!(instructions));
    }
    body.insert(
        "input".into(),
        Value::Array(request.items.iter().filter_map(input_item).collect()),
    );
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                    "strict": false,
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(max) = request.max_output_tokens {
        body.insert("max_output_tokens".into(), json!(max));
    }
    body.insert("stream".into(), json!(true));
    body.insert("store".into(), json!(false));
    Value::Object(body)
}

pub(crate) fn input_item(item: &Item) -> Option<Value> {
    match item {
        Item::Message { role, content } => {
            let parts: Vec<Value> = content
                .iter()
                .filter_map(|part| match (role, part) {
                    (Role::Assistant, ContentPart::Text { text }) => {
                        Some(json!({"type": "output_text", "text": text}))
                    }
                    (_, ContentPart::Text { text }) => {
                        Some(json!({"type": "input_text", "text": text}))
                    }
                    (Role::User, ContentPart::Image { media_type, data }) => Some(json!({
                        "type": "input_image",
                        "image_url": data_url(media_type, data),
                        "detail": "auto",
                    })),
                    _ => None,
                })
                .collect();
            if parts.is_empty() {
                return None;
            }
            let role = match role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            Some(json!({"type": "message", "role": role, "content": parts}))
        }
        Item::ToolCall {
            call_id,
            name,
            arguments,
        } => Some(json!({
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": arguments_text(arguments),
        })),
        Item::ToolResult {
            call_id, output, ..
        } => Some(json!({
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
        })),
    }
}

/// A function call being streamed.
#[derive(Debug)]
struct Call {
    item_id: String,
    output_index: Option<u64>,
    call_id: String,
    name: String,
    arguments: String,
    done: bool,
}

/// The stream decoder.
#[derive(Default, Debug)]
pub(crate) struct ResponsesDecoder {
    partial: Partial,
    calls: Vec<Call>,
}

impl ResponsesDecoder {
    fn call_for(&mut self, data: &Value) -> Option<&mut Call> {
        let item_id = data.get("item_id").and_then(Value::as_str);
        let output_index = data.get("output_index").and_then(Value::as_u64);
        self.calls.iter_mut().find(|call| match item_id {
            Some(id) if !call.item_id.is_empty() => call.item_id == id,
            _ => output_index.is_some() && call.output_index == output_index,
        })
    }

    /// A function call item from `output_item.added`/`done` or from the
    /// final response's `output`.
    fn function_call_item(
        &mut self,
        item: &Value,
        output_index: Option<u64>,
        done: bool,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let item_id = text("id");
        let call_id = text("call_id");
        let existing = self.calls.iter_mut().find(|call| {
            (!item_id.is_empty() && call.item_id == item_id)
                || (!call_id.is_empty() && call.call_id == call_id)
        });
        let call = match existing {
            Some(call) => call,
            None => {
                let call = Call {
                    item_id: item_id.clone(),
                    output_index,
                    call_id: call_id.clone(),
                    name: text("name"),
                    arguments: String::new(),
                    done: false,
                };
                on_delta(Delta::ToolCall {
                    call_id: call.call_id.clone(),
                    name: call.name.clone(),
                });
                self.calls.push(call);
                self.calls.last_mut().expect("just pushed")
            }
        };
        if done {
            if let Some(arguments) = item.get("arguments").and_then(Value::as_str) {
                call.arguments = arguments.to_string();
            }
            call.done = true;
        }
    }

    /// The final `response` object: usage, and any output the stream did
    /// not deliver piecewise (some compatible servers send only this).
    fn completed(&mut self, response: &Value, on_delta: &mut (dyn FnMut(Delta) + Send)) {
        if let Some(usage) = response.get("usage").filter(|usage| usage.is_object()) {
            self.partial.usage = Some(Usage {
                input_tokens: usage["input_tokens"].as_u64().unwrap_or(0),
                output_tokens: usage["output_tokens"].as_u64().unwrap_or(0),
                cached_input_tokens: usage
                    .pointer("/input_tokens_details/cached_tokens")
                    .and_then(Value::as_u64),
            });
        }
        let output = response
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let had_text = !self.partial.text.is_empty();
        for (index, item) in output.iter().enumerate() {
            match item.get("type").and_then(Value::as_str) {
                Some("function_call") => {
                    self.function_call_item(item, Some(index as u64), true, on_delta)
                }
                Some("message") if !had_text => {
                    let text: String = item
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|part| part["type"] == "output_text")
                        .filter_map(|part| part["text"].as_str())
                        .collect();
                    self.partial.text(&text, on_delta);
                }
                _ => {}
            }
        }
    }

    fn stop(&self) -> Stop {
        if self.calls.is_empty() {
            Stop::EndTurn
        } else {
            Stop::ToolUse
        }
    }
}

fn failure(data: &Value) -> Error {
    let error = data
        .pointer("/response/error")
        .filter(|error| error.is_object())
        .unwrap_or(data);
    let kind = error
        .get("code")
        .or_else(|| error.get("type"))
        .and_then(Value::as_str)
        .filter(|kind| *kind != "error")
        .unwrap_or("error")
        .to_string();
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| json_error_message(data))
        .unwrap_or_else(|| data.to_string());
    Error::Provider {
        kind: crate::error::one_line(&kind),
        message: crate::error::one_line(&message),
    }
}

impl Decoder for ResponsesDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<Option<Stop>, Error> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|err| Error::Decode(format!("event {} is not JSON: {err}", event.event)))?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(&event.event);
        match kind {
            "response.output_text.delta" => {
                self.partial
                    .text(data["delta"].as_str().unwrap_or_default(), on_delta);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                self.partial
                    .reasoning(data["delta"].as_str().unwrap_or_default(), on_delta);
            }
            "response.output_item.added" | "response.output_item.done" => {
                let item = &data["item"];
                if item["type"] == "function_call" {
                    let done = kind == "response.output_item.done";
                    let index = data.get("output_index").and_then(Value::as_u64);
                    self.function_call_item(item, index, done, on_delta);
                }
            }
            "response.function_call_arguments.delta" => {
                let delta = data["delta"].as_str().unwrap_or_default().to_string();
                if let Some(call) = self.call_for(&data) {
                    call.arguments.push_str(&delta);
                }
            }
            "response.function_call_arguments.done" => {
                let arguments = data["arguments"].as_str().map(str::to_string);
                if let Some(call) = self.call_for(&data) {
                    if let Some(arguments) = arguments {
                        call.arguments = arguments;
                    }
                    call.done = true;
                }
            }
            "response.completed" => {
                self.completed(&data["response"], on_delta);
                return Ok(Some(self.stop()));
            }
            "response.incomplete" => {
                self.completed(&data["response"], on_delta);
                let reason = data
                    .pointer("/response/incomplete_details/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("incomplete");
                return Ok(Some(match reason {
                    "max_output_tokens" => Stop::MaxTokens,
                    other => Stop::Other(other.to_string()),
                }));
            }
            "response.failed" | "error" => return Err(failure(&data)),
            _ => {}
        }
        Ok(None)
    }

    fn eof(&mut self) -> Result<Stop, Error> {
        Err(Error::Transport(
            "the stream ended before response.completed".into(),
        ))
    }

    fn finish(self, cancelled: bool) -> Partial {
        let mut partial = self.partial;
        partial.tool_calls = self
            .calls
            .into_iter()
            .filter(|call| call.done || !cancelled)
            .map(|call| ToolCallOut {
                arguments: parse_arguments(&call.arguments),
                call_id: call.call_id,
                name: call.name,
            })
            .collect();
        partial
    }
}
