//! The three wire APIs, and how an [`Answer`] becomes each one's bytes.

use serde_json::Value;

use crate::answer::{Answer, Completion, HttpError};
use crate::server::MockResponse;
use crate::{anthropic, openai, openai_chat};

/// A vendor's wire API, as exo's model kinds name them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Wire {
    /// The OpenAI Responses API (`openai`).
    OpenAi,
    /// OpenAI Chat Completions (`openai-chat`).
    OpenAiChat,
    /// The Anthropic Messages API (`anthropic`).
    Anthropic,
}

impl Wire {
    /// Every wire, for tests that run once per wire.
    pub const ALL: [Wire; 3] = [Wire::OpenAi, Wire::OpenAiChat, Wire::Anthropic];

    /// exo's name for the kind: `openai`, `openai-chat` or `anthropic`.
    pub fn name(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::OpenAiChat => "openai-chat",
            Wire::Anthropic => "anthropic",
        }
    }

    /// The path a client requests: `/v1/responses`, `/v1/chat/completions`
    /// or `/v1/messages`.
    pub fn path(self) -> &'static str {
        match self {
            Wire::OpenAi => "/v1/responses",
            Wire::OpenAiChat => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
        }
    }

    /// The base URL a client is configured with for a server at
    /// `server_url` (`http://127.0.0.1:PORT`), following each vendor's SDK:
    /// `{server_url}/v1` for the OpenAI kinds, `server_url` itself for
    /// Anthropic (whose client adds `/v1/messages`).
    pub fn base_url(self, server_url: &str) -> String {
        let server_url = server_url.trim_end_matches('/');
        match self {
            Wire::OpenAi | Wire::OpenAiChat => format!("{server_url}/v1"),
            Wire::Anthropic => server_url.to_string(),
        }
    }

    /// The SSE events of a complete answer, each a whole event.
    pub fn completion_events(self, completion: &Completion) -> Vec<String> {
        match self {
            Wire::OpenAi => openai::completion_events(completion),
            Wire::OpenAiChat => openai_chat::completion_events(completion),
            Wire::Anthropic => anthropic::completion_events(completion),
        }
    }

    /// The SSE events of an answer that started and has not ended: the
    /// stream's opening and these text deltas (which may be none).
    pub fn opening_events<S: AsRef<str>>(self, text_deltas: &[S]) -> Vec<String> {
        let text_deltas: Vec<String> = text_deltas
            .iter()
            .map(|delta| delta.as_ref().to_string())
            .collect();
        match self {
            Wire::OpenAi => openai::opening_events(&text_deltas),
            Wire::OpenAiChat => openai_chat::opening_events(&text_deltas),
            Wire::Anthropic => anthropic::opening_events(&text_deltas),
        }
    }

    /// The JSON body of an HTTP error in the vendor's shape. OpenAI and
    /// Chat Completions: `{"error": {"message", "type", "param": null,
    /// "code": null}}`, the type by default `requests` for 429,
    /// `server_error` for 5xx, else `invalid_request_error`. Anthropic:
    /// `{"type": "error", "error": {"type", "message"}}`, the type by
    /// default what the API says for the status (`rate_limit_error` for
    /// 429, `overloaded_error` for 529, `api_error` for 500, ...).
    pub fn error_body(self, error: &HttpError) -> Value {
        match self {
            Wire::OpenAi => openai::error_body(error),
            Wire::OpenAiChat => openai_chat::error_body(error),
            Wire::Anthropic => anthropic::error_body(error),
        }
    }

    /// The HTTP response that gives `answer`: a 200 event stream, one that
    /// stalls after its opening, or a JSON error with its headers.
    pub fn response(self, answer: &Answer) -> MockResponse {
        match answer {
            Answer::Complete(completion) => MockResponse::sse(&self.completion_events(completion)),
            Answer::Opening { text_deltas } => {
                MockResponse::sse(&self.opening_events(text_deltas)).then_stall()
            }
            Answer::Error(error) => {
                let mut response = MockResponse::json(error.status, self.error_body(error));
                for (name, value) in &error.headers {
                    response = response.header(name, value);
                }
                response
            }
        }
    }
}
