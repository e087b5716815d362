//! The JSON-RPC face of the typed service: a method's name to its typed
//! call, JSON text to params and results, and [`ServiceError`] to a
//! JSON-RPC error. This is the one place that knows the error numbers.
//!
//! Methods that need a connection that outlives the request
//! ([`MethodInfo::connection`](exo_protocol::methods::MethodInfo)) are
//! served by [`crate::connection`]; `initialize` is answered here, since it
//! is about the wire (framings, the frame limit), not the substrate.

use exo_protocol::methods::*;
use exo_protocol::{ErrorCode, Method};
use exo_rpc::message::Json;
use exo_rpc::ErrorObject;
use exo_service::{Call, ClientContext, Service, ServiceError};

/// A service error as a JSON-RPC error: the code's number, the message,
/// and `data` with `data.code`.
pub fn to_rpc(error: &ServiceError) -> ErrorObject {
    ErrorObject::new(error.code.code(), error.message.clone())
        .with_data(serde_json::to_value(error.wire_data()).unwrap_or_default())
}

/// Gives the framing layer's own errors (an invalid message, a frame over
/// the limit) the same `data.code` as exo's.
pub fn shape_peer_error(mut error: ErrorObject) -> ErrorObject {
    if error.data.is_none() {
        if let Some(code) = ErrorCode::from_code(error.code) {
            error.data = Some(serde_json::json!({ "code": code.name() }));
        }
    }
    error
}

/// Reads params as `T`; absent params read as `{}`.
pub fn parse<T: serde::de::DeserializeOwned>(
    method: &str,
    params: Option<&Json>,
) -> Result<T, ServiceError> {
    let parsed = match params {
        Some(params) => params.parse(),
        None => exo_rpc::message::from_str("{}"),
    };
    parsed.map_err(|err| ServiceError::invalid(format!("invalid params for {method}: {err}")))
}

/// A result as JSON text.
pub fn reply<T: serde::Serialize>(result: &T) -> Result<Json, ServiceError> {
    Json::to(result).map_err(|err| ServiceError::internal(err.to_string()))
}

fn typed<M: Call>(
    service: &Service,
    client: &ClientContext,
    params: Option<&Json>,
) -> Result<Json, ServiceError> {
    let params = parse::<M::Params>(M::NAME, params)?;
    reply(&service.call_for::<M>(client, params)?)
}

/// Runs `method` for `client`, params and result as JSON text.
///
/// An internal error is logged here, once: at `error` in a daemon, whose
/// log is its operator's; at `debug` in a process serving its own command
/// line, whose user sees the error itself (one line, not a log line and
/// then the same error).
pub fn call(
    service: &Service,
    client: &ClientContext,
    method: &str,
    params: Option<&Json>,
) -> Result<Json, ServiceError> {
    let result = route(service, client, method, params);
    if let Err(error) = &result {
        if error.code == ErrorCode::Internal {
            if service.is_daemon() {
                tracing::error!(method, error = %error.message, "internal error");
            } else {
                tracing::debug!(method, error = %error.message, "internal error");
            }
        }
    }
    result
}

macro_rules! routes {
    ($service:expr, $client:expr, $method:expr, $params:expr; $($call:ty),* $(,)?) => {
        match $method {
            $(<$call as Method>::NAME => typed::<$call>($service, $client, $params),)*
            _ => Err(unrouted($method)),
        }
    };
}

fn route(
    service: &Service,
    client: &ClientContext,
    method: &str,
    params: Option<&Json>,
) -> Result<Json, ServiceError> {
    match method {
        Initialize::NAME => initialize(service, parse(method, params)?),
        ConversationAppend::NAME => append(service, method, params),
        TurnAppend::NAME => append(service, method, params),
        _ => routes!(service, client, method, params;
            Ping, DaemonStatusMethod,
            AgentCreate, AgentListMethod, AgentGet, AgentDelete, AgentSet,
            ConversationCreate, ConversationListMethod, ConversationGet, ConversationDelete,
            ConversationFork, ConversationRewind, ConversationTreeMethod,
            TurnBegin, TurnFinish, TurnGet, TurnCancel, ApprovalRespond, ApprovalListMethod,
            GatewayTokenMethod, GatewayRevoke,
            SessionResume, SnapshotTake, SnapshotListMethod, SnapshotDiffMethod, SnapshotRestore,
            SnapshotRead, Gc,
            SandboxListMethod, SandboxRm, SandboxCreate, SandboxStart, SandboxStop, SandboxExec,
            SandboxSnapshot,
            EventsList, EventsGet,
            ArtifactPut, ArtifactGet, ArtifactListMethod,
            SecretSet, SecretListMethod, SecretGet, SecretDelete,
            ModelRegister, ModelListMethod, ModelGet, ModelDelete,
            BindingSet, BindingListMethod, BindingGet, BindingDelete,
        ),
    }
}

fn unrouted(method: &str) -> ServiceError {
    // A name is echoed, but never a megabyte of one.
    let shown: String = method.chars().take(100).collect();
    let method = if shown.len() < method.len() {
        format!("{shown}…")
    } else {
        shown
    };
    let method = method.as_str();
    match method_info(method) {
        Some(info) if info.connection => ServiceError::new(
            ErrorCode::MethodNotFound,
            format!(
                "{method} needs a connection that outlives the request: a daemon's socket or stdio"
            ),
        ),
        _ => ServiceError::new(
            ErrorCode::MethodNotFound,
            format!("method not found: {method}"),
        ),
    }
}

fn initialize(service: &Service, params: InitializeParams) -> Result<Json, ServiceError> {
    service.check_protocol_versions(params.protocol_versions.as_deref())?;
    if let Some(client) = &params.client {
        tracing::info!(client = %client.name, version = ?client.version, "client initialized");
    }
    reply(&InitializeResult {
        protocol_version: exo_protocol::PROTOCOL_VERSION.to_string(),
        server: ClientInfo {
            name: "exo".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        },
        capabilities: Capabilities {
            methods: METHOD_NAMES.iter().map(|m| m.to_string()).collect(),
            notifications: NOTIFICATION_NAMES.iter().map(|m| m.to_string()).collect(),
            framings: vec!["ndjson".into(), "content-length".into()],
            max_frame_bytes: exo_rpc::DEFAULT_MAX_FRAME_BYTES as u64,
        },
    })
}

/// `conversation/append` and `turn/append` params with each event kept as
/// JSON text until it is stored, so a large batch costs its text and its
/// events, not a tree of values per event. The same fields as
/// [`ConversationAppendParams`] and [`TurnAppendParams`].
#[derive(serde::Deserialize)]
struct AppendText {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    conversation: Option<String>,
    #[serde(default)]
    turn: Option<exo_core::TurnId>,
    events: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    expected_head: Option<exo_core::EventId>,
    #[serde(default)]
    return_events: Option<bool>,
}

fn append(service: &Service, method: &str, params: Option<&Json>) -> Result<Json, ServiceError> {
    let params: AppendText = parse(method, params)?;
    let missing = |field: &str| {
        ServiceError::invalid(format!(
            "invalid params for {method}: missing field `{field}`"
        ))
    };
    let keep = params.return_events.unwrap_or(true);
    let appended = if method == TurnAppend::NAME {
        let turn = params.turn.ok_or_else(|| missing("turn"))?;
        service.turn_append_text(turn, params.events, params.expected_head, keep)?
    } else {
        let agent = params.agent.ok_or_else(|| missing("agent"))?;
        let conversation = params.conversation.ok_or_else(|| missing("conversation"))?;
        service.conversation_append_text(
            &agent,
            &conversation,
            params.events,
            params.expected_head,
            keep,
        )?
    };
    reply(&AppendReply {
        events: &appended.events,
        head: appended.head,
        first: appended.first,
        count: Some(appended.count as u64),
    })
}

/// [`AppendResult`] as it is written: each event is converted as it is
/// serialized, so a large batch is not held a second time in its wire form.
#[derive(serde::Serialize)]
struct AppendReply<'a> {
    #[serde(serialize_with = "wire_events")]
    events: &'a [exo_core::Event],
    head: exo_core::EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<exo_core::EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

fn wire_events<S: serde::Serializer>(
    events: &&[exo_core::Event],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(events.iter().map(exo_protocol::Event::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_core::EventData;

    #[test]
    fn an_append_reply_is_written_as_an_append_result() {
        let event = exo_core::Event {
            id: exo_core::EventId::new(),
            conversation: exo_core::ConversationId::new(),
            session: None,
            turn: None,
            created_at: exo_core::Timestamp::now(),
            data: EventData::Custom {
                custom_type: "test.probe".into(),
                payload: serde_json::json!({"a": [1, 2]}),
            },
        };
        let events = vec![event.clone(), event];
        let reply = AppendReply {
            events: &events,
            head: events[1].id,
            first: Some(events[0].id),
            count: Some(2),
        };
        let result = AppendResult {
            events: events.iter().map(exo_protocol::Event::from).collect(),
            head: events[1].id,
            first: Some(events[0].id),
            count: Some(2),
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            serde_json::to_string(&result).unwrap()
        );
    }

    #[test]
    fn every_method_is_routed_or_served_by_a_connection() {
        let root = tempfile::tempdir().unwrap();
        let store = exo_store::Store::open(root.path(), exo_store::OpenMode::Create).unwrap();
        let service = Service::embedded(store);
        let client = ClientContext::default();
        for info in METHODS {
            let outcome = call(&service, &client, info.name, None);
            if let Err(error) = outcome {
                assert_ne!(
                    (error.code, info.connection),
                    (ErrorCode::MethodNotFound, false),
                    "{} is not routed",
                    info.name
                );
            }
        }
    }
}
