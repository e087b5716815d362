//! OpenAI Chat Completions: `POST {base}/chat/completions` with
//! `stream: true` and `stream_options: {include_usage: true}`. Also spoken
//! by OpenRouter, Ollama, vLLM and llama.cpp servers, so the decoder is
//! tolerant: reasoning arrives as `reasoning_content` or `reasoning`, a
//! tool call without an id gets `call_<index>`, an error may arrive as an
//! `{"error": ...}` chunk, and a stream that closes after a `finish_reason`
//! but before `[DONE]` is complete.
//!
//! `max_output_tokens` goes out as `max_tokens`, which every compatible
//! server accepts (OpenAI's own reasoning models want
//! `max_completion_tokens`; use the `openai` kind for those).

use serde_json::{json, Map, Value};

use crate::error::one_line;
use crate::http::{json_error_message, Decoder};
use crate::sse::SseEvent;
use crate::{
    arguments_text, data_url, joined_text, parse_arguments, ContentPart, Delta, Error, Item,
    Partial, Request, Role, Stop, ToolCallOut, Usage,
};

/// The request body.
pub(crate) fn body(request: &Request) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(messages(request)));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(max) = request.max_output_tokens {
        body.insert("max_tokens".into(), json!(max));
    }
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    Value::Object(body)
}

fn messages(request: &Request) -> Vec<Value> {
    let mut messages = Vec::new();
    if let Some(instructions) = &request.instructions {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    for item in &request.items {
        match item {
            Item::Message { role, content } => {
                if let Some(message) = message(*role, content) {
                    messages.push(message);
                }
            }
            Item::ToolCall {
                call_id,
                name,
                arguments,
            } => {
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments_text(arguments)},
                });
                // Calls join the assistant message right before them.
                let last_is_assistant = messages
                    .last()
                    .is_some_and(|message: &Value| message["role"] == "assistant");
                if !last_is_assistant {
                    messages.push(json!({"role": "assistant", "content": null}));
                }
                let last = messages.last_mut().expect("an assistant message");
                match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    Some(calls) => calls.push(call),
                    None => last["tool_calls"] = json!([call]),
                }
            }
            Item::ToolResult {
                call_id, output, ..
            } => messages.push(json!({
                "role": "tool",
                "tool_call_id": call_id,
                "content": output,
            })),
        }
    }
    messages
}

fn message(role: Role, content: &[ContentPart]) -> Option<Value> {
    match role {
        Role::System | Role::Assistant => {
            let text = joined_text(content);
            if text.is_empty() {
                return None;
            }
            let role = if role == Role::System {
                "system"
            } else {
                "assistant"
            };
            Some(json!({"role": role, "content": text}))
        }
        Role::User => {
            let parts: Vec<Value> = content
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
                    ContentPart::Image { media_type, data } => Some(json!({
                        "type": "image_url",
                        "image_url": {"url": data_url(media_type, data)},
                    })),
                    ContentPart::Reasoning { .. } => None,
                })
                .collect();
            match parts.as_slice() {
                [] => None,
                // Plain text as a string: the form every server accepts.
                [only] if only["type"] == "text" => {
                    Some(json!({"role": "user", "content": only["text"]}))
                }
                _ => Some(json!({"role": "user", "content": parts})),
            }
        }
    }
}

/// A tool call being streamed, keyed by its `index`.
#[derive(Debug)]
struct Call {
    index: u64,
    id: String,
    name: String,
    arguments: String,
    announced: bool,
}

/// The stream decoder.
#[derive(Default, Debug)]
pub(crate) struct ChatDecoder {
    partial: Partial,
    calls: Vec<Call>,
    finish_reason: Option<String>,
}

impl ChatDecoder {
    fn tool_call_delta(&mut self, delta: &Value, on_delta: &mut (dyn FnMut(Delta) + Send)) {
        let index = delta["index"].as_u64().unwrap_or(self.calls.len() as u64);
        let position = match self.calls.iter().position(|call| call.index == index) {
            Some(position) => position,
            None => {
                self.calls.push(Call {
                    index,
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                    announced: false,
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[position];
        if let Some(id) = delta["id"].as_str().filter(|id| !id.is_empty()) {
            call.id = id.to_string();
        }
        if let Some(name) = delta.pointer("/function/name").and_then(Value::as_str) {
            // OpenAI sends the name once; some servers repeat it in every
            // chunk, which must not double it.
            if call.name != name {
                call.name.push_str(name);
            }
        }
        if let Some(arguments) = delta.pointer("/function/arguments").and_then(Value::as_str) {
            call.arguments.push_str(arguments);
        }
        if !call.announced && !call.name.is_empty() {
            call.announced = true;
            if call.id.is_empty() {
                call.id = format!("call_{index}");
            }
            on_delta(Delta::ToolCall {
                call_id: call.id.clone(),
                name: call.name.clone(),
            });
        }
    }

    fn stop(&self) -> Stop {
        match self.finish_reason.as_deref() {
            _ if !self.calls.is_empty() => Stop::ToolUse,
            Some("stop") | None => Stop::EndTurn,
            Some("length") => Stop::MaxTokens,
            Some("tool_calls" | "function_call") => Stop::ToolUse,
            Some(other) => Stop::Other(other.to_string()),
        }
    }
}

impl Decoder for ChatDecoder {
    fn event(
        &mut self,
        event: SseEvent,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<Option<Stop>, Error> {
        if event.data.trim() == "[DONE]" {
            return Ok(Some(self.stop()));
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|err| Error::Decode(format!("chunk is not JSON: {err}")))?;
        if let Some(error) = data.get("error").filter(|error| !error.is_null()) {
            let kind = error
                .get("code")
                .or_else(|| error.get("type"))
                .map(|kind| match kind {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "error".into());
            let message = json_error_message(&data).unwrap_or_else(|| error.to_string());
            return Err(Error::Provider {
                kind: one_line(&kind),
                message: one_line(&message),
            });
        }
        if let Some(usage) = data.get("usage").filter(|usage| usage.is_object()) {
            self.partial.usage = Some(Usage {
                input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
                output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
                cached_input_tokens: usage
                    .pointer("/prompt_tokens_details/cached_tokens")
                    .and_then(Value::as_u64),
            });
        }
        for choice in data["choices"].as_array().into_iter().flatten() {
            // exo asks for one choice; others would interleave.
            if choice["index"].as_u64().unwrap_or(0) != 0 {
                continue;
            }
            let delta = &choice["delta"];
            for key in ["reasoning_content", "reasoning"] {
                if let Some(text) = delta[key].as_str() {
                    self.partial.reasoning(text, on_delta);
                }
            }
            if let Some(text) = delta["content"].as_str() {
                self.partial.text(text, on_delta);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                self.tool_call_delta(call, on_delta);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
        Ok(None)
    }

    fn eof(&mut self) -> Result<Stop, Error> {
        if self.finish_reason.is_some() {
            Ok(self.stop())
        } else {
            Err(Error::Transport(
                "the stream ended before a finish_reason or [DONE]".into(),
            ))
        }
    }

    fn finish(self, cancelled: bool) -> Partial {
        let mut partial = self.partial;
        // Chat Completions never says a call's arguments are complete
        // before the choice finishes.
        if !cancelled || self.finish_reason.is_some() {
            partial.tool_calls = self
                .calls
                .into_iter()
                .map(|call| ToolCallOut {
                    call_id: if call.id.is_empty() {
                        format!("call_{}", call.index)
                    } else {
                        call.id
                    },
                    name: call.name,
                    arguments: parse_arguments(&call.arguments),
                })
                .collect();
        }
        partial
    }
}
