//! JSON-RPC 2.0 messages: parsing what arrives, shaping what leaves.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// -32700
pub const PARSE_ERROR: i64 = -32700;
/// -32600
pub const INVALID_REQUEST: i64 = -32600;
/// -32601
pub const METHOD_NOT_FOUND: i64 = -32601;
/// -32602
pub const INVALID_PARAMS: i64 = -32602;
/// -32603
pub const INTERNAL_ERROR: i64 = -32603;

/// A request, or a notification when `id` is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// A string or number (or null); `None` for a notification.
    pub id: Option<Value>,
    /// The method.
    pub method: String,
    /// The params: an object or an array, if given.
    pub params: Option<Value>,
}

impl Request {
    /// Whether no reply is expected.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// An error object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The code.
    pub code: i64,
    /// One line saying what is wrong.
    pub message: String,
    /// Machine-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error with `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl std::fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorObject {}

/// A response: to send (server) or received (client).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The request's id; null when it could not be read.
    pub id: Value,
    /// The result or the error.
    pub outcome: Result<Value, ErrorObject>,
}

impl Response {
    /// A success.
    pub fn ok(id: Value, result: Value) -> Self {
        Response {
            id,
            outcome: Ok(result),
        }
    }

    /// A failure.
    pub fn error(id: Value, error: ErrorObject) -> Self {
        Response {
            id,
            outcome: Err(error),
        }
    }

    /// The response as a JSON-RPC object.
    pub fn to_value(&self) -> Value {
        match &self.outcome {
            Ok(result) => json!({"jsonrpc": "2.0", "id": self.id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": self.id, "error": error}),
        }
    }
}

/// A notification as a JSON-RPC object.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A request as a JSON-RPC object.
pub fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// One message of a frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A request or notification.
    Request(Request),
    /// A response (what a client receives; a server ignores them).
    Response(Response),
    /// Not a valid message: the error response to send, unless it was a
    /// notification-shaped message (JSON-RPC still asks for a reply then,
    /// with a null id).
    Invalid(Response),
}

/// What one frame held.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// One message.
    Single(Incoming),
    /// A batch: the replies (if any) go back as one array.
    Batch(Vec<Incoming>),
    /// Not JSON, or an empty batch, or not an object: one error to send.
    Error(Response),
}

/// Parses one frame's payload.
pub fn parse(payload: &[u8]) -> Parsed {
    let value: Value = match std::str::from_utf8(payload) {
        Err(err) => {
            return Parsed::Error(Response::error(
                Value::Null,
                ErrorObject::new(
                    PARSE_ERROR,
                    format!("parse error: invalid UTF-8 at byte {}", err.valid_up_to()),
                ),
            ))
        }
        Ok(text) => match serde_json::from_str(text) {
            Ok(value) => value,
            Err(err) => {
                return Parsed::Error(Response::error(
                    Value::Null,
                    ErrorObject::new(PARSE_ERROR, format!("parse error: {err}")),
                ))
            }
        },
    };
    match value {
        Value::Array(items) if items.is_empty() => Parsed::Error(Response::error(
            Value::Null,
            ErrorObject::new(INVALID_REQUEST, "invalid request: empty batch"),
        )),
        Value::Array(items) => Parsed::Batch(items.into_iter().map(classify).collect()),
        other => Parsed::Single(classify(other)),
    }
}

fn invalid(id: Value, why: &str) -> Incoming {
    Incoming::Invalid(Response::error(
        id,
        ErrorObject::new(INVALID_REQUEST, format!("invalid request: {why}")),
    ))
}

/// Classifies one JSON value as a JSON-RPC message.
pub fn classify(value: Value) -> Incoming {
    let Value::Object(mut object) = value else {
        return invalid(Value::Null, "expected a JSON object");
    };
    let id = match object.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id),
        Some(_) => return invalid(Value::Null, "id must be a string, a number or null"),
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return invalid(reply_id, "\"jsonrpc\" must be \"2.0\"");
    }
    if let Some(method) = object.remove("method") {
        let Value::String(method) = method else {
            return invalid(reply_id, "method must be a string");
        };
        let params = match object.remove("params") {
            None => None,
            Some(params @ (Value::Object(_) | Value::Array(_))) => Some(params),
            Some(_) => return invalid(reply_id, "params must be an object or an array"),
        };
        return Incoming::Request(Request { id, method, params });
    }
    if let Some(result) = object.remove("result") {
        return Incoming::Response(Response::ok(reply_id, result));
    }
    if let Some(error) = object.remove("error") {
        return match serde_json::from_value::<ErrorObject>(error) {
            Ok(error) => Incoming::Response(Response::error(reply_id, error)),
            Err(_) => invalid(reply_id, "error must be {code, message, data?}"),
        };
    }
    invalid(reply_id, "no method, result or error")
}

/// Reads params as an object, treating absent params as `{}`.
pub fn params_object(params: Option<Value>) -> Result<Map<String, Value>, ErrorObject> {
    match params {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(ErrorObject::new(INVALID_PARAMS, "params must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_code(parsed: &Parsed) -> Option<i64> {
        match parsed {
            Parsed::Error(response) | Parsed::Single(Incoming::Invalid(response)) => {
                response.outcome.as_ref().err().map(|e| e.code)
            }
            _ => None,
        }
    }

    #[test]
    fn classifies() {
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#),
            Parsed::Single(Incoming::Request(Request {
                id: Some(json!(7)),
                method: "ping".into(),
                params: None
            }))
        );
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"note","params":[1]}"#),
            Parsed::Single(Incoming::Request(Request { id: None, .. }))
        ));
        assert_eq!(error_code(&parse(b"{nope")), Some(PARSE_ERROR));
        assert_eq!(error_code(&parse(b"\xff\xfe")), Some(PARSE_ERROR));
        assert_eq!(error_code(&parse(b"[]")), Some(INVALID_REQUEST));
        assert_eq!(error_code(&parse(b"42")), Some(INVALID_REQUEST));
        assert_eq!(
            error_code(&parse(br#"{"id":1,"method":"x"}"#)),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            error_code(&parse(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#)),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            error_code(&parse(
                br#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#
            )),
            Some(INVALID_REQUEST)
        );
        let Parsed::Batch(items) = parse(br#"[{"jsonrpc":"2.0","id":"a","method":"x"}, 1]"#) else {
            panic!("batch")
        };
        assert!(matches!(items[0], Incoming::Request(_)));
        assert!(matches!(items[1], Incoming::Invalid(_)));
    }

    #[test]
    fn invalid_request_keeps_a_readable_id() {
        let Parsed::Single(Incoming::Invalid(response)) =
            parse(br#"{"jsonrpc":"1.0","id":"abc","method":"x"}"#)
        else {
            panic!("invalid")
        };
        assert_eq!(response.id, json!("abc"));
    }
}
