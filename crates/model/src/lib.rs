//! Streaming model clients for exo's built-in executor.
//!
//! One [`Client`] speaks one wire API, chosen by the [`Endpoint`]'s [`Kind`]:
//!
//! - [`Kind::OpenAi`]: the OpenAI Responses API (`POST {base}/responses`).
//! - [`Kind::OpenAiChat`]: OpenAI Chat Completions (`POST {base}/chat/completions`),
//!   also spoken by OpenRouter, Ollama, vLLM and llama.cpp servers.
//! - [`Kind::Anthropic`]: the Anthropic Messages API (`POST {base}/v1/messages`).
//! - [`Kind::Scripted`]: no network; replays a JSON script of responses, for
//!   tests and the offline demo, answering each call by how many model
//!   responses its history already holds (see [`scripted`]).
//!
//! A call takes the conversation as the model sees it ([`Request`]: a list
//! of [`Item`]s, the tools and the instructions), streams the answer over
//! server-sent events, hands text, reasoning and tool-call starts to a
//! callback as they arrive ([`Delta`]), and returns the whole [`Response`].
//!
//! # Retries, timeouts, cancellation
//!
//! Before the response starts streaming, a request that failed with HTTP
//! 408, 409, 429 or 5xx, a connection error or a timeout is retried with
//! exponential backoff and jitter, honouring `retry-after-ms`, `retry-after`
//! (seconds or an HTTP date) and `x-should-retry`, at most
//! [`ClientOptions::max_retries`] times. Once streaming has started nothing
//! is retried: deltas have already reached the caller.
//!
//! Cancelling the [`CancellationToken`] stops at once (the connection is
//! dropped) and returns `Ok` with what was streamed so far and
//! [`Stop::Cancelled`]; cancellation is never an error.
//!
//! # Secrets
//!
//! The API key ([`ApiKey`]) is given by the caller, is zeroized on drop,
//! shows as `<redacted>` in `Debug`, is marked sensitive in the HTTP header,
//! and is scrubbed from every error message (a provider that echoes it back
//! in an error body, as sent, encoded or cut short, cannot leak it through
//! exo). Nothing is logged but
//! retry decisions (status, attempt, delay).
//!
//! The wire mappings are specified in `spec/models.md`.

mod anthropic;
mod client;
mod endpoint;
mod error;
mod http;
mod openai;
mod openai_chat;
pub mod scripted;
mod scrub;
mod secret;
mod sse;

use serde_json::Value;

pub use client::Client;
pub use endpoint::{ClientOptions, Endpoint, Kind, ScriptSource, DEFAULT_ANTHROPIC_MAX_TOKENS};
pub use error::{Error, TimeoutPhase};
pub use exo_core::{ContentPart, Provider, Role, Usage};
pub use secret::ApiKey;
pub use tokio_util::sync::CancellationToken;

/// Items as the OpenAI Responses API takes them in a request's `input`
/// (spec/models.md): what an agent CLI speaking that API is handed when
/// its history is rebuilt from exo's log.
pub fn responses_input(items: &[Item]) -> Vec<Value> {
    items.iter().filter_map(openai::input_item).collect()
}

/// Items as the Anthropic Messages API takes them in a request's
/// `messages` (spec/models.md): consecutive items of one side merged, tool
/// results in user messages. System messages are left out.
pub fn messages_input(items: &[Item]) -> Vec<Value> {
    anthropic::messages_of(items)
}

/// One entry of the conversation as the model sees it.
#[derive(Clone, PartialEq, Debug)]
pub enum Item {
    /// A message. Reasoning parts are never sent back to a provider (none of
    /// the three accepts them without provider-private signatures), and
    /// images are sent only in user messages.
    Message {
        /// Who speaks.
        role: Role,
        /// What is said.
        content: Vec<ContentPart>,
    },
    /// A tool call the model made.
    ToolCall {
        /// The provider's id for the call; results refer to it.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The arguments, a JSON object. A JSON string here is the model's
        /// raw text that did not parse as JSON (see [`ToolCallOut`]).
        arguments: Value,
    },
    /// The result of running a tool call.
    ToolResult {
        /// The call it answers.
        call_id: String,
        /// The tool's output as text.
        output: String,
        /// Whether the tool failed. Only Anthropic has a wire field for
        /// this; for the OpenAI kinds the output text must say so.
        is_error: bool,
    },
}

impl Item {
    /// A message of plain text.
    pub fn text(role: Role, text: impl Into<String>) -> Item {
        Item::Message {
            role,
            content: vec![ContentPart::Text { text: text.into() }],
        }
    }
}

/// A tool the model may call.
#[derive(Clone, PartialEq, Debug)]
pub struct ToolSpec {
    /// Its name, as the model will call it.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// A JSON Schema for its arguments (an object schema).
    pub parameters: Value,
}

/// One model call.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Request {
    /// The model's name upstream, e.g. `gpt-5.4` or `claude-sonnet-4-5`.
    pub model: String,
    /// The system prompt.
    pub instructions: Option<String>,
    /// The conversation so far, oldest first.
    pub items: Vec<Item>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// A cap on the answer's length. Anthropic requires one and gets
    /// [`DEFAULT_ANTHROPIC_MAX_TOKENS`] when this is `None`.
    pub max_output_tokens: Option<u32>,
}

/// A piece of the answer, delivered while it streams.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Delta {
    /// More answer text.
    Text(String),
    /// More reasoning text (a summary or visible thinking).
    Reasoning(String),
    /// The model started a tool call; its arguments come with the
    /// [`Response`].
    ToolCall {
        /// The call's id.
        call_id: String,
        /// The tool's name.
        name: String,
    },
}

/// A tool call in a [`Response`].
#[derive(Clone, PartialEq, Debug)]
pub struct ToolCallOut {
    /// The provider's id for the call.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The parsed arguments (`{}` when the model sent none). When the model's
    /// text is not valid JSON this is that text as a JSON string, so the
    /// executor can report the mistake back to the model; sending it back
    /// in an [`Item::ToolCall`] restores the original text.
    pub arguments: Value,
}

/// Why the model stopped.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Stop {
    /// It finished its turn.
    EndTurn,
    /// It wants tool results.
    ToolUse,
    /// It hit the output-token cap.
    MaxTokens,
    /// The caller cancelled; the response holds what streamed before.
    Cancelled,
    /// Any other reason the provider gave (e.g. `content_filter`, `refusal`).
    Other(String),
}

impl Stop {
    /// A short stable name: `end_turn`, `tool_use`, `max_tokens`,
    /// `cancelled`, or the provider's own word.
    pub fn as_str(&self) -> &str {
        match self {
            Stop::EndTurn => "end_turn",
            Stop::ToolUse => "tool_use",
            Stop::MaxTokens => "max_tokens",
            Stop::Cancelled => "cancelled",
            Stop::Other(reason) => reason,
        }
    }
}

/// A whole answer.
#[derive(Clone, PartialEq, Debug)]
pub struct Response {
    /// The answer text (all text deltas, concatenated).
    pub text: String,
    /// Reasoning text, if the model showed any.
    pub reasoning: Option<String>,
    /// The tool calls, in the order the model made them. A cancelled
    /// response holds only the calls whose arguments had fully arrived.
    pub tool_calls: Vec<ToolCallOut>,
    /// Token usage, when the provider reported it.
    pub usage: Option<Usage>,
    /// Why the model stopped.
    pub stop: Stop,
}

/// Parses a tool call's argument text: empty is `{}`, text that is not JSON
/// is kept as a JSON string.
pub(crate) fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The inverse of [`parse_arguments`] for the OpenAI kinds, whose wire
/// carries arguments as a JSON string.
pub(crate) fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// What streamed so far; each wire decoder fills one.
#[derive(Default, Debug)]
pub(crate) struct Partial {
    pub(crate) text: String,
    pub(crate) reasoning: String,
    pub(crate) tool_calls: Vec<ToolCallOut>,
    pub(crate) usage: Option<Usage>,
}

impl Partial {
    pub(crate) fn text(&mut self, text: &str, on_delta: &mut (dyn FnMut(Delta) + Send)) {
        if text.is_empty() {
            return;
        }
        self.text.push_str(text);
        on_delta(Delta::Text(text.to_string()));
    }

    pub(crate) fn reasoning(&mut self, text: &str, on_delta: &mut (dyn FnMut(Delta) + Send)) {
        if text.is_empty() {
            return;
        }
        self.reasoning.push_str(text);
        on_delta(Delta::Reasoning(text.to_string()));
    }

    pub(crate) fn into_response(self, stop: Stop) -> Response {
        Response {
            text: self.text,
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
            tool_calls: self.tool_calls,
            usage: self.usage,
            stop,
        }
    }
}

/// A `data:` URL for an inline image.
pub(crate) fn data_url(media_type: &str, data: &str) -> String {
    format!("data:{media_type};base64,{data}")
}

/// The text parts of a message joined by blank lines, for wire fields that
/// take one string.
pub(crate) fn joined_text(content: &[ContentPart]) -> String {
    content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}
