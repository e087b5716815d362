//! JSON-RPC 2.0 messages: parsing what arrives, shaping what leaves.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

pub use exo_core::json::{from_slice, from_str, nests_deeper_than, JsonError, MAX_DEPTH};

/// A JSON value kept as the text the peer wrote: ids are echoed exactly
/// (a number beyond 64 bits stays as written), and params and results are
/// read once, into their own types, rather than into a `Value` first.
#[derive(Clone, Debug)]
pub struct Json(Box<RawValue>);

impl Json {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// `null`.
    pub fn null() -> Json {
        Json(RawValue::from_string("null".to_string()).expect("valid JSON"))
    }

    /// JSON text as it is, once checked (see [`from_str`]).
    pub fn from_text(text: &str) -> Result<Json, JsonError> {
        from_str(text)
    }

    /// A value's text.
    pub fn from_value(value: &Value) -> Json {
        Json::to(value).expect("a Value always serializes")
    }

    /// Serializes `value`.
    pub fn to<T: Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Json)
    }

    /// Reads the value as `T` (see [`from_str`]).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, JsonError> {
        from_str(self.get())
    }

    /// The value as a `Value`.
    pub fn to_value(&self) -> Value {
        self.parse().unwrap_or(Value::Null)
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        self.get() == "null"
    }

    /// The value as a `u64`, if it is one written plainly.
    pub fn as_u64(&self) -> Option<u64> {
        self.get().parse().ok()
    }

    fn first_byte(&self) -> u8 {
        self.get().as_bytes().first().copied().unwrap_or(b' ')
    }
}

impl From<u64> for Json {
    fn from(number: u64) -> Json {
        Json(RawValue::from_string(number.to_string()).expect("valid JSON"))
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Json {}

impl std::hash::Hash for Json {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.get().hash(state)
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Json)
    }
}

/// Which JSON-RPC a peer speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// JSON-RPC 2.0 exactly: every message carries `"jsonrpc": "2.0"`, and
    /// one without it is invalid.
    #[default]
    JsonRpc2,
    /// The same messages without the `"jsonrpc"` member, as Codex's
    /// app-server writes them: it is not written, and not required (but
    /// must be `"2.0"` when present).
    Bare,
}

/// A request, or a notification when `id` is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// A string or number (or null), exactly as sent; `None` for a
    /// notification.
    pub id: Option<Json>,
    /// The method.
    pub method: String,
    /// The params: an object or an array, if given.
    pub params: Option<Json>,
}

impl Request {
    /// Whether no reply is expected.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }

    /// The params as `T`; absent params read as `{}`.
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, JsonError> {
        match &self.params {
            Some(params) => params.parse(),
            None => from_str("{}"),
        }
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
    /// The request's id, as it was sent; null when it could not be read.
    pub id: Json,
    /// The result or the error.
    pub outcome: Result<Json, ErrorObject>,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jsonrpc: Option<&'static str>,
    id: &'a Json,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorObject>,
}

impl Response {
    /// A success.
    pub fn ok(id: Json, result: Json) -> Self {
        Response {
            id,
            outcome: Ok(result),
        }
    }

    /// A failure.
    pub fn error(id: Json, error: ErrorObject) -> Self {
        Response {
            id,
            outcome: Err(error),
        }
    }

    fn wire(&self, dialect: Dialect) -> Wire<'_> {
        Wire {
            jsonrpc: version(dialect),
            id: &self.id,
            result: self.outcome.as_ref().ok(),
            error: self.outcome.as_ref().err(),
        }
    }

    /// The response as JSON text.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_in(Dialect::JsonRpc2)
    }

    /// The response as JSON text in `dialect`.
    pub fn to_bytes_in(&self, dialect: Dialect) -> Vec<u8> {
        serde_json::to_vec(&self.wire(dialect)).expect("a response always serializes")
    }

    /// A batch's responses as one JSON array.
    pub fn batch_to_bytes(responses: &[Response]) -> Vec<u8> {
        Response::batch_to_bytes_in(responses, Dialect::JsonRpc2)
    }

    /// A batch's responses as one JSON array, in `dialect`.
    pub fn batch_to_bytes_in(responses: &[Response], dialect: Dialect) -> Vec<u8> {
        let wires: Vec<Wire<'_>> = responses.iter().map(|r| r.wire(dialect)).collect();
        serde_json::to_vec(&wires).expect("a response always serializes")
    }

    /// The response as a JSON-RPC object.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self.wire(Dialect::JsonRpc2)).expect("a response always serializes")
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

fn version(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::JsonRpc2 => Some("2.0"),
        Dialect::Bare => None,
    }
}

#[derive(Serialize)]
struct OutRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    jsonrpc: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Json>,
}

/// A request as JSON text, its params given as JSON text.
pub fn request_bytes(id: u64, method: &str, params: &Json) -> Vec<u8> {
    request_bytes_in(Dialect::JsonRpc2, Some(id), method, Some(params))
}

/// A request (or, without an id, a notification) as JSON text in `dialect`.
pub fn request_bytes_in(
    dialect: Dialect,
    id: Option<u64>,
    method: &str,
    params: Option<&Json>,
) -> Vec<u8> {
    serde_json::to_vec(&OutRequest {
        jsonrpc: version(dialect),
        id,
        method,
        params,
    })
    .expect("a request always serializes")
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

fn parse_error(message: String) -> Parsed {
    Parsed::Error(Response::error(
        Json::null(),
        ErrorObject::new(PARSE_ERROR, message),
    ))
}

/// Parses one frame's payload.
pub fn parse(payload: &[u8]) -> Parsed {
    parse_in(payload, Dialect::JsonRpc2)
}

/// Parses one frame's payload in `dialect`.
pub fn parse_in(payload: &[u8], dialect: Dialect) -> Parsed {
    if let Err(err) = std::str::from_utf8(payload) {
        return parse_error(format!(
            "parse error: invalid UTF-8 at byte {}",
            err.valid_up_to()
        ));
    }
    let first = payload
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .copied();
    if first == Some(b'[') {
        return match from_slice::<Vec<Json>>(payload) {
            Ok(items) if items.is_empty() => Parsed::Error(Response::error(
                Json::null(),
                ErrorObject::new(INVALID_REQUEST, "invalid request: empty batch"),
            )),
            Ok(items) => Parsed::Batch(
                items
                    .iter()
                    .map(|item| classify_in(item, dialect))
                    .collect(),
            ),
            Err(err) => parse_error(format!("parse error: {err}")),
        };
    }
    match from_slice::<Json>(payload) {
        Ok(item) => Parsed::Single(classify_in(&item, dialect)),
        Err(err) => parse_error(format!("parse error: {err}")),
    }
}

fn invalid(id: Json, why: &str) -> Incoming {
    Incoming::Invalid(Response::error(
        id,
        ErrorObject::new(INVALID_REQUEST, format!("invalid request: {why}")),
    ))
}

/// A present field's raw text; absent fields stay `None` (a `null` is
/// present).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "present")]
    jsonrpc: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    method: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Json>,
}

/// Classifies one JSON value as a JSON-RPC message.
pub fn classify(value: &Json) -> Incoming {
    classify_in(value, Dialect::JsonRpc2)
}

/// Classifies one JSON value as a message of `dialect`.
pub fn classify_in(value: &Json, dialect: Dialect) -> Incoming {
    if value.first_byte() != b'{' {
        return invalid(Json::null(), "expected a JSON object");
    }
    let envelope: Envelope = match value.parse() {
        Ok(envelope) => envelope,
        Err(err) => return invalid(Json::null(), &err.to_string()),
    };
    let id = match envelope.id {
        None => None,
        Some(id) if matches!(id.first_byte(), b'"' | b'-' | b'0'..=b'9' | b'n') => Some(id),
        Some(_) => return invalid(Json::null(), "id must be a string, a number or null"),
    };
    let reply_id = id.clone().unwrap_or_else(Json::null);
    let version: Option<String> = envelope.jsonrpc.as_ref().and_then(|raw| raw.parse().ok());
    let version_ok = match (dialect, &envelope.jsonrpc) {
        (Dialect::Bare, None) => true,
        _ => version.as_deref() == Some("2.0"),
    };
    if !version_ok {
        return invalid(reply_id, "\"jsonrpc\" must be \"2.0\"");
    }
    if let Some(method) = envelope.method {
        let Ok(method) = method.parse::<String>() else {
            return invalid(reply_id, "method must be a string");
        };
        let params = match envelope.params {
            None => None,
            Some(params) if matches!(params.first_byte(), b'{' | b'[') => Some(params),
            Some(_) => return invalid(reply_id, "params must be an object or an array"),
        };
        return Incoming::Request(Request { id, method, params });
    }
    if let Some(result) = envelope.result {
        return Incoming::Response(Response::ok(reply_id, result));
    }
    if let Some(error) = envelope.error {
        return match error.parse::<ErrorObject>() {
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
                id: Some(Json::from(7)),
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
        assert_eq!(response.id.get(), r#""abc""#);
    }

    #[test]
    fn ids_are_echoed_exactly_as_written() {
        let Parsed::Single(Incoming::Request(request)) =
            parse(br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"x"}"#)
        else {
            panic!("request")
        };
        let id = request.id.unwrap();
        assert_eq!(id.get(), "123456789012345678901234567890");
        let response = Response::ok(id, Json::null());
        assert_eq!(
            String::from_utf8(response.to_bytes()).unwrap(),
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":null}"#
        );
    }

    #[test]
    fn nesting_is_bounded_once_for_every_reader() {
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(from_str::<Value>(&deep(MAX_DEPTH)).is_ok());
        assert!(matches!(
            from_str::<Value>(&deep(MAX_DEPTH + 1)),
            Err(JsonError::TooDeep)
        ));
        // Brackets inside strings do not count.
        let quoted = format!(r#"["{}\"{}"]"#, "[".repeat(1000), "{".repeat(1000));
        assert!(from_str::<Value>(&quoted).is_ok());
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":{}}}}}"#,
            deep(MAX_DEPTH + 5)
        );
        assert_eq!(error_code(&parse(request.as_bytes())), Some(PARSE_ERROR));
    }
}
