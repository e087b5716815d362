//! The one error type of a model call.

use std::fmt;
use std::time::Duration;

/// A model call failed. Messages are one line, say what failed, carry the
/// HTTP status and the provider's own message (truncated), and never contain
/// the API key.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with a status other than 2xx (after any retries).
    #[error("model API returned HTTP {status}: {message}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The provider's error message, one line, truncated.
        message: String,
    },
    /// The request could not be sent or the connection broke, including a
    /// stream that ended before the response was complete.
    #[error("model API request failed: {0}")]
    Transport(String),
    /// Nothing arrived in time.
    #[error("model API timed out: {phase} within {}", human_duration(*.after))]
    Timeout {
        /// What was awaited.
        phase: TimeoutPhase,
        /// The limit that passed.
        after: Duration,
    },
    /// The response was not what the wire format promises.
    #[error("cannot decode model API response: {0}")]
    Decode(String),
    /// The provider reported an error inside the stream (OpenAI `error` or
    /// `response.failed`, Anthropic `error`, an OpenRouter `error` chunk).
    #[error("model API error: {kind}: {message}")]
    Provider {
        /// The provider's error type or code, e.g. `overloaded_error`.
        kind: String,
        /// Its message, one line, truncated.
        message: String,
    },
    /// The scripted model was asked for a response past its script's last:
    /// the request already holds as many model responses as the script has,
    /// or more.
    #[error("scripted model: response {wanted} wanted, but the script has {responses}")]
    ScriptExhausted {
        /// The response the call needed, counted from 1: one more than the
        /// model responses already in the request.
        wanted: usize,
        /// How many responses the script has.
        responses: usize,
    },
    /// The endpoint or script is unusable; nothing was sent.
    #[error("invalid model configuration: {0}")]
    Config(String),
}

/// What a [`Error::Timeout`] was waiting for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TimeoutPhase {
    /// A TCP (and TLS) connection.
    Connect,
    /// The response's status and headers.
    Response,
    /// The next bytes of a streaming response.
    Idle,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "no connection",
            TimeoutPhase::Response => "no response",
            TimeoutPhase::Idle => "the stream sent nothing",
        })
    }
}

/// Error types and codes providers use for transient trouble.
const RETRYABLE_KINDS: &[&str] = &[
    "overloaded_error",
    "api_error",
    "rate_limit_error",
    "rate_limit_exceeded",
    "server_error",
    "internal_error",
    "timeout_error",
];

impl Error {
    /// Whether trying the same call again later may succeed: HTTP 408, 409,
    /// 429 and 5xx, transport errors, timeouts, and provider errors of an
    /// overloaded, rate-limit or server kind.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Http { status, .. } => retryable_status(*status),
            Error::Transport(_) | Error::Timeout { .. } => true,
            Error::Provider { kind, .. } => RETRYABLE_KINDS.contains(&kind.as_str()),
            Error::Decode(_) | Error::ScriptExhausted { .. } | Error::Config(_) => false,
        }
    }

    /// A stable name for the error's kind: `http`, `transport`, `timeout`,
    /// `decode`, `provider`, `script_exhausted` or `config`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Http { .. } => "http",
            Error::Transport(_) => "transport",
            Error::Timeout { .. } => "timeout",
            Error::Decode(_) => "decode",
            Error::Provider { .. } => "provider",
            Error::ScriptExhausted { .. } => "script_exhausted",
            Error::Config(_) => "config",
        }
    }

    /// Replaces every run of `secret` in the error's text, in every form
    /// providers echo a key in (see `scrub.rs`), with `<redacted>`.
    pub(crate) fn scrub(self, secret: &str) -> Error {
        let clean = |text: String| crate::scrub::scrub(&text, secret).unwrap_or(text);
        match self {
            Error::Http { status, message } => Error::Http {
                status,
                message: clean(message),
            },
            Error::Transport(message) => Error::Transport(clean(message)),
            Error::Decode(message) => Error::Decode(clean(message)),
            Error::Provider { kind, message } => Error::Provider {
                kind: clean(kind),
                message: clean(message),
            },
            Error::Config(message) => Error::Config(clean(message)),
            other @ (Error::Timeout { .. } | Error::ScriptExhausted { .. }) => other,
        }
    }
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || (500..600).contains(&status)
}

/// The longest provider message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Makes provider text fit an error: one line, whitespace collapsed,
/// truncated with an ellipsis.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
            chars += 1;
        }
        for ch in word.chars() {
            if chars >= MAX_MESSAGE_CHARS {
                out.push('…');
                return out;
            }
            out.push(ch);
            chars += 1;
        }
    }
    out
}

/// `1.5s`, `300ms`, `2s`.
pub(crate) fn human_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_and_truncates() {
        assert_eq!(one_line("  a\n\tb  c \r\n"), "a b c");
        let long = "x".repeat(1000);
        let short = one_line(&long);
        assert_eq!(short.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn scrub_removes_the_secret_everywhere() {
        let error = Error::Http {
            status: 401,
            message: "bad key sk-abcdef, really sk-abcdef".into(),
        };
        assert_eq!(
            error.scrub("sk-abcdef").to_string(),
            "model API returned HTTP 401: bad key <redacted>, really <redacted>"
        );
    }

    #[test]
    fn retryable_and_codes() {
        let http = |status| Error::Http {
            status,
            message: String::new(),
        };
        assert!(http(429).retryable());
        assert!(http(503).retryable());
        assert!(http(408).retryable());
        assert!(!http(400).retryable());
        assert!(!http(401).retryable());
        assert_eq!(http(500).code(), "http");
        let timeout = Error::Timeout {
            phase: TimeoutPhase::Idle,
            after: Duration::from_millis(1500),
        };
        assert!(timeout.retryable());
        assert_eq!(
            timeout.to_string(),
            "model API timed out: the stream sent nothing within 1.5s"
        );
        assert!(!Error::ScriptExhausted {
            wanted: 3,
            responses: 2,
        }
        .retryable());
        assert_eq!(
            Error::ScriptExhausted {
                wanted: 3,
                responses: 2,
            }
            .code(),
            "script_exhausted"
        );
    }
}
