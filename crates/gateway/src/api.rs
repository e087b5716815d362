//! The three model APIs the gateway speaks: which path is which, how each
//! says an error, and where each reports usage.

use serde_json::{json, Value};

/// A model API, as a client speaks it to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI Responses: `POST /v1/responses`.
    Responses,
    /// OpenAI Chat Completions: `POST /v1/chat/completions`.
    ChatCompletions,
    /// Anthropic Messages: `POST /v1/messages`.
    Messages,
}

impl Api {
    /// The name recorded in an exchange.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Responses => "responses",
            Api::ChatCompletions => "chat_completions",
            Api::Messages => "messages",
        }
    }

    /// The upstream URL for a binding's base URL (OpenAI's include `/v1`,
    /// Anthropic's is the bare host), with the client's query string.
    pub fn upstream_url(self, base_url: &str, query: Option<&str>) -> String {
        let base = base_url.trim_end_matches('/');
        let path = match self {
            Api::Responses => "/responses",
            Api::ChatCompletions => "/chat/completions",
            Api::Messages => "/v1/messages",
        };
        match query {
            Some(query) if !query.is_empty() => format!("{base}{path}?{query}"),
            _ => format!("{base}{path}"),
        }
    }

    /// An error body in this API's own shape.
    pub fn error_body(self, kind: ErrorKind, message: &str) -> Value {
        match self {
            Api::Responses | Api::ChatCompletions => {
                let (kind, code) = match kind {
                    ErrorKind::Authentication => {
                        ("invalid_request_error", json!("invalid_api_key"))
                    }
                    ErrorKind::InvalidRequest => ("invalid_request_error", Value::Null),
                    ErrorKind::Upstream => ("server_error", json!("upstream_unreachable")),
                };
                json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
            }
            Api::Messages => {
                let kind = match kind {
                    ErrorKind::Authentication => "authentication_error",
                    ErrorKind::InvalidRequest => "invalid_request_error",
                    ErrorKind::Upstream => "api_error",
                };
                json!({ "type": "error", "error": { "type": kind, "message": message } })
            }
        }
    }
}

/// What went wrong, for an error the gateway itself gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No token, or not a live one (401).
    Authentication,
    /// A request the gateway will not forward (400, 413).
    InvalidRequest,
    /// The upstream could not be reached (502).
    Upstream,
}

/// Tokens an exchange used, as the answer reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens read (prompt).
    pub input_tokens: Option<u64>,
    /// Tokens written (completion).
    pub output_tokens: Option<u64>,
}

impl Usage {
    /// Whether the answer said anything.
    pub fn is_known(&self) -> bool {
        self.input_tokens.is_some() || self.output_tokens.is_some()
    }
}

/// The usage an answer reported: from a JSON body, or from the `data:`
/// lines of a stream of server-sent events. Each API puts it elsewhere
/// (`usage`, `response.usage` in `response.completed`, `message.usage` in
/// Anthropic's `message_start` and `usage` in its `message_delta`); the
/// last figure seen for each count wins.
pub fn usage_of(body: &[u8]) -> Usage {
    let mut usage = Usage::default();
    let text = String::from_utf8_lossy(body);
    let mut read = |value: &Value| {
        for found in [
            value.get("usage"),
            value.get("response").and_then(|r| r.get("usage")),
            value.get("message").and_then(|m| m.get("usage")),
        ]
        .into_iter()
        .flatten()
        {
            let count = |names: &[&str]| names.iter().find_map(|name| found.get(*name)?.as_u64());
            if let Some(input) = count(&["input_tokens", "prompt_tokens"]) {
                usage.input_tokens = Some(input);
            }
            if let Some(output) = count(&["output_tokens", "completion_tokens"]) {
                usage.output_tokens = Some(output);
            }
        }
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
            read(&value);
        }
        return usage;
    }
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data:") {
            if let Ok(value) = serde_json::from_str::<Value>(data.trim()) {
                read(&value);
            }
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_found_where_each_api_puts_it() {
        let responses = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}}\n\n";
        assert_eq!(
            usage_of(responses),
            Usage {
                input_tokens: Some(12),
                output_tokens: Some(3)
            }
        );
        let chat = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        assert_eq!(
            usage_of(chat),
            Usage {
                input_tokens: Some(7),
                output_tokens: Some(2)
            }
        );
        let messages = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n";
        assert_eq!(
            usage_of(messages),
            Usage {
                input_tokens: Some(20),
                output_tokens: Some(9)
            }
        );
        let whole = br#"{"id":"x","usage":{"input_tokens":5,"output_tokens":6}}"#;
        assert_eq!(
            usage_of(whole),
            Usage {
                input_tokens: Some(5),
                output_tokens: Some(6)
            }
        );
        assert!(!usage_of(b"not json at all").is_known());
    }

    #[test]
    fn upstream_urls_follow_each_providers_base() {
        assert_eq!(
            Api::Responses.upstream_url("https://api.openai.com/v1/", None),
            "https://api.openai.com/v1/responses"
        );
        assert_eq!(
            Api::Messages.upstream_url("https://api.anthropic.com", Some("beta=true")),
            "https://api.anthropic.com/v1/messages?beta=true"
        );
    }

    #[test]
    fn errors_have_each_apis_shape() {
        let openai = Api::Responses.error_body(ErrorKind::Authentication, "bad token");
        assert_eq!(openai["error"]["code"], "invalid_api_key");
        assert_eq!(openai["error"]["message"], "bad token");
        let anthropic = Api::Messages.error_body(ErrorKind::Authentication, "bad token");
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "authentication_error");
    }
}
