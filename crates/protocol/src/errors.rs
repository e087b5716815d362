//! Error codes. JSON-RPC's standard codes, plus exo's own in the
//! implementation-defined range, each with a machine-readable `data.code`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every error code the daemon sends, with its `data.code` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// -32700: the frame is not valid JSON (or not UTF-8).
    ParseError,
    /// -32600: valid JSON, but not a JSON-RPC 2.0 request, or too large.
    InvalidRequest,
    /// -32601: no such method.
    MethodNotFound,
    /// -32602: params missing, of the wrong type, or breaking a rule.
    InvalidParams,
    /// -32603: a fault on exo's side; nothing was changed.
    Internal,
    /// -32800: the request was cancelled by `$/cancelRequest`.
    RequestCancelled,
    /// -32001: an agent, conversation, event, turn, artifact, secret or
    /// binding is unknown.
    NotFound,
    /// -32002: the conversation's head is not the `expected_head` given.
    Conflict,
    /// -32003: a turn is in progress, or another process holds the
    /// conversation.
    Busy,
    /// -32004: the daemon's key does not open the store's secrets.
    WrongKey,
    /// -32005: the slug or name is taken.
    AlreadyExists,
    /// -32006: the client asked for a protocol version this daemon lacks.
    UnsupportedVersion,
}

impl ErrorCode {
    /// All codes, for documentation and tests.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::ParseError,
        ErrorCode::InvalidRequest,
        ErrorCode::MethodNotFound,
        ErrorCode::InvalidParams,
        ErrorCode::Internal,
        ErrorCode::RequestCancelled,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Busy,
        ErrorCode::WrongKey,
        ErrorCode::AlreadyExists,
        ErrorCode::UnsupportedVersion,
    ];

    /// The numeric JSON-RPC code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Internal => -32603,
            ErrorCode::RequestCancelled => -32800,
            ErrorCode::NotFound => -32001,
            ErrorCode::Conflict => -32002,
            ErrorCode::Busy => -32003,
            ErrorCode::WrongKey => -32004,
            ErrorCode::AlreadyExists => -32005,
            ErrorCode::UnsupportedVersion => -32006,
        }
    }

    /// The `data.code` name.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parse_error",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::MethodNotFound => "method_not_found",
            ErrorCode::InvalidParams => "invalid_params",
            ErrorCode::Internal => "internal",
            ErrorCode::RequestCancelled => "request_cancelled",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Busy => "busy",
            ErrorCode::WrongKey => "wrong_key",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::UnsupportedVersion => "unsupported_version",
        }
    }

    /// The code for a numeric value, if it is one of ours.
    pub fn from_code(code: i64) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// The `data` of every error exo sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorData {
    /// The machine-readable name of the error (see [`ErrorCode::name`]).
    pub code: String,
    /// For `not_found` and `already_exists`: what kind of thing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// For `not_found` and `already_exists`: the key looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For `conflict`: the head the caller expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_head: Option<String>,
    /// For `conflict`: the actual head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_head: Option<String>,
    /// For `unsupported_version`: the versions this daemon speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<Vec<String>>,
}
