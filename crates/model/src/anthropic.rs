//! The Anthropic Messages API: `POST {base}/v1/messages` with
//! `stream: true`.
//!
//! Request: `model`, `max_tokens` (required, [`DEFAULT_ANTHROPIC_MAX_TOKENS`]
//! unless the request sets one), `system` (the instructions and any system
//! messages, joined by blank lines), `messages` (user and assistant only,
//! consecutive same-role messages merged, tool calls as `tool_use` blocks in
//! the assistant's content and results as `tool_result` blocks, first, in
//! the user's), `tools` (`{name, description, input_schema}`), `stream`.
//! Events: `message_start`, `content_block_start`/`delta`/`stop` (text,
//! `tool_use` with `input_json_delta`, `thinking`), `message_delta`
//! (`stop_reason`, usage), `message_stop`, `ping`, `error`.
//!
//! [`DEFAULT_ANTHROPIC_MAX_TOKENS`]: crate::DEFAULT_ANTHROPIC_MAX_TOKENS

use serde_json::{json, Map, Value};

use crate::error::one_line;
use crate::http::Decoder;
use crate::sse::SseEvent;
use crate::{
    joined_text, parse_arguments, ContentPart, Delta, Error, Item, Partial, Request, Role, Stop,
    ToolCallOut, Usage, DEFAULT_ANTHROPIC_MAX_TOKENS,
};

/// The request body.
pub(crate) fn body(request: &Request) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert(
        "max_tokens".into(),
        json!(request
            .max_output_tokens
            .unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS)),
    );
    let system: Vec<String> = request
        .instructions
        .iter()
        .cloned()
        .chain(request.items.iter().filter_map(|item| match item {
            Item::Message {
                role: Role::System,
                content,
            } => Some(joined_text(content)),
            _ => None,
        }))
        .filter(|text| !text.is_empty())
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(messages(request)));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    body.insert("stream".into(), json!(true));
    Value::Object(body)
}

fn messages(request: &Request) -> Vec<Value> {
    messages_of(&request.items)
}

/// Items as the Messages API's `messages`: consecutive items of one side
/// merged into one message.
pub(crate) fn messages_of(items: &[Item]) -> Vec<Value> {
    // (role, blocks), merged as they are built.
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, blocks: Vec<Value>| {
        if blocks.is_empty() {
            return;
        }
        match messages.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    };
    for item in items {
        match item {
            Item::Message { role, content } => {
                let (role, user) = match role {
                    Role::System => continue,
                    Role::User => ("user", true),
                    Role::Assistant => ("assistant", false),
                };
                let blocks = content
                    .iter()
                    .filter_map(|part| match part {
                        // Anthropic refuses empty text blocks.
                        ContentPart::Text { text } if !text.is_empty() => {
                            Some(json!({"type": "text", "text": text}))
                        }
                        ContentPart::Image { media_type, data } if user => Some(json!({
                            "type": "image",
                            "source": {"type": "base64", "media_type": media_type, "data": data},
                        })),
                        _ => None,
                    })
                    .collect();
                push(role, blocks);
            }
            Item::ToolCall {
                call_id,
                name,
                arguments,
            } => {
                // `input` must be an object; anything else (a call whose
                // arguments did not parse) goes back empty.
                let input = if arguments.is_object() {
                    arguments.clone()
                } else {
                    json!({})
                };
                push(
                    "assistant",
                    vec![json!({"type": "tool_use", "id": call_id, "name": name, "input": input})],
                );
            }
            Item::ToolResult {
                call_id,
                output,
                is_error,
            } => push(
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": output,
                    "is_error": is_error,
                })],
            ),
        }
    }
    messages
        .into_iter()
        .map(|(role, mut blocks)| {
            // Tool results must open a user message; the sort is stable.
            if role == "user" {
                blocks.sort_by_key(|block| block["type"] != "tool_result");
            }
            json!({"role": role, "content": blocks})
        })
        .collect()
}

/// A content block being streamed.
#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    ToolUse {
        id: String,
        name: String,
        /// The `input` of `content_block_start`, used when no JSON deltas
        /// follow.
        start_input: Value,
        json: String,
        done: bool,
    },
    Other,
}

/// The stream decoder.
#[derive(Default, Debug)]
pub(crate) struct MessagesDecoder {
    partial: Partial,
    blocks: Vec<(u64, Block)>,
    stop_reason: Option<String>,
    input_tokens: u64,
    cache_read: Option<u64>,
    cache_creation: u64,
    output_tokens: u64,
}

impl MessagesDecoder {
    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, block)| block)
    }

    fn usage(&mut self, usage: &Value) {
        if !usage.is_object() {
            return;
        }
        if let Some(n) = usage["input_tokens"].as_u64() {
            self.input_tokens = n;
        }
        if let Some(n) = usage["cache_read_input_tokens"].as_u64() {
            self.cache_read = Some(n);
        }
        if let Some(n) = usage["cache_creation_input_tokens"].as_u64() {
            self.cache_creation = n;
        }
        if let Some(n) = usage["output_tokens"].as_u64() {
            self.output_tokens = n;
        }
        // Anthropic counts cached and cache-writing tokens apart from
        // `input_tokens`; exo's input is every prompt token.
        self.partial.usage = Some(Usage {
            input_tokens: self.input_tokens + self.cache_read.unwrap_or(0) + self.cache_creation,
            output_tokens: self.output_tokens,
            cached_input_tokens: self.cache_read,
        });
    }

    fn stop(&self) -> Stop {
        match self.stop_reason.as_deref() {
            Some("end_turn" | "stop_sequence") | None => Stop::EndTurn,
            Some("tool_use") => Stop::ToolUse,
            Some("max_tokens") => Stop::MaxTokens,
            Some(other) => Stop::Other(other.to_string()),
        }
    }
}

impl Decoder for MessagesDecoder {
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
            "message_start" => self.usage(&data["message"]["usage"]),
            "content_block_start" => {
                let index = data["index"].as_u64().unwrap_or(self.blocks.len() as u64);
                let block = &data["content_block"];
                let text = |key: &str| block[key].as_str().unwrap_or_default().to_string();
                let block = match block["type"].as_str() {
                    Some("text") => {
                        self.partial.text(&text("text"), on_delta);
                        Block::Text
                    }
                    Some("thinking") => {
                        self.partial.reasoning(&text("thinking"), on_delta);
                        Block::Thinking
                    }
                    Some("tool_use") => {
                        on_delta(Delta::ToolCall {
                            call_id: text("id"),
                            name: text("name"),
                        });
                        Block::ToolUse {
                            id: text("id"),
                            name: text("name"),
                            start_input: block["input"].clone(),
                            json: String::new(),
                            done: false,
                        }
                    }
                    _ => Block::Other,
                };
                self.blocks.push((index, block));
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap_or(0);
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        self.partial
                            .text(delta["text"].as_str().unwrap_or_default(), on_delta);
                    }
                    Some("thinking_delta") => {
                        self.partial
                            .reasoning(delta["thinking"].as_str().unwrap_or_default(), on_delta);
                    }
                    Some("input_json_delta") => {
                        if let Some(Block::ToolUse { json, .. }) = self.block(index) {
                            json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap_or(0);
                if let Some(Block::ToolUse { done, .. }) = self.block(index) {
                    *done = true;
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_string());
                }
                self.usage(&data["usage"]);
            }
            "message_stop" => return Ok(Some(self.stop())),
            "error" => {
                let error = &data["error"];
                return Err(Error::Provider {
                    kind: one_line(error["type"].as_str().unwrap_or("error")),
                    message: one_line(
                        error["message"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| data.to_string())
                            .as_str(),
                    ),
                });
            }
            _ => {}
        }
        Ok(None)
    }

    fn eof(&mut self) -> Result<Stop, Error> {
        if self.stop_reason.is_some() {
            Ok(self.stop())
        } else {
            Err(Error::Transport(
                "the stream ended before message_stop".into(),
            ))
        }
    }

    fn finish(self, cancelled: bool) -> Partial {
        let mut partial = self.partial;
        partial.tool_calls = self
            .blocks
            .into_iter()
            .filter_map(|(_, block)| match block {
                Block::ToolUse {
                    id,
                    name,
                    start_input,
                    json,
                    done,
                } if done || !cancelled => Some(ToolCallOut {
                    call_id: id,
                    name,
                    arguments: if json.is_empty() && start_input.is_object() {
                        start_input
                    } else {
                        parse_arguments(&json)
                    },
                }),
                _ => None,
            })
            .collect();
        partial
    }
}
