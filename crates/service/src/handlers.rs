//! The request handlers: params in, store call, result out. Synchronous;
//! the daemon runs them on tokio's blocking pool.

use base64::Engine;
use exo_core::{Binding, BindingKind, EventData, Role, SecretValue};
use exo_protocol::methods::*;
use exo_protocol::{ErrorCode, ErrorData, Method, PROTOCOL_VERSION};
use exo_rpc::message::Json;
use exo_rpc::ErrorObject;
use exo_store::EventQuery;
use serde_json::{json, Value};

use crate::convert::{self, rpc_error, simple_error, store_error};
use crate::{ConnectionContext, Service};

type Handled = Result<Json, ErrorObject>;

/// Methods served only by a running daemon (they need a connection that
/// outlives the request).
pub const DAEMON_ONLY: &[&str] = &[EventsWatch::NAME, EventsUnwatch::NAME, DaemonStop::NAME];

/// Reads params as `T` (absent params read as `{}`).
pub(crate) fn parse_as<T: serde::de::DeserializeOwned>(
    method: &str,
    params: Option<&Json>,
) -> Result<T, ErrorObject> {
    let parsed = match params {
        Some(params) => params.parse(),
        None => exo_rpc::message::from_str("{}"),
    };
    parsed.map_err(|err| {
        simple_error(
            ErrorCode::InvalidParams,
            format!("invalid params for {method}: {err}"),
        )
    })
}

fn parse<M: Method>(params: Option<&Json>) -> Result<M::Params, ErrorObject> {
    parse_as(M::NAME, params)
}

pub(crate) fn reply<T: serde::Serialize>(result: T) -> Handled {
    Json::to(&result).map_err(|err| simple_error(ErrorCode::Internal, err.to_string()))
}

/// `conversation/append` and `turn/append` params, each event kept as text
/// until it is checked, so a large batch costs its text and its events,
/// not a tree of values per event. The same fields as
/// [`ConversationAppendParams`] and [`TurnAppendParams`].
#[derive(serde::Deserialize)]
struct AppendInput {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    conversation: String,
    #[serde(default)]
    turn: Option<exo_core::TurnId>,
    events: Vec<Json>,
    #[serde(default)]
    expected_head: Option<exo_core::EventId>,
    #[serde(default)]
    return_events: Option<bool>,
}

fn checked<T>(result: exo_store::Result<T>) -> Result<T, ErrorObject> {
    result.map_err(store_error)
}

fn invalid(message: impl Into<String>) -> ErrorObject {
    simple_error(ErrorCode::InvalidParams, message)
}

/// The result of an append: the new head, how many, and the events unless
/// the caller asked not to have them back.
fn appended_result(appended: &exo_store::Appended) -> Handled {
    reply(AppendReply {
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

/// Caller events (`conversation append` lines), read one at a time as the
/// store appends them, so a large batch is never held twice.
fn input_events(
    values: Vec<Json>,
) -> Result<impl Iterator<Item = exo_store::Result<EventData>>, ErrorObject> {
    if values.is_empty() {
        return Err(invalid("events must not be empty"));
    }
    Ok(values.into_iter().enumerate().map(|(index, value)| {
        let value: Value = value
            .parse()
            .map_err(|err| exo_store::Error::Invalid(format!("event {}: {err}", index + 1)))?;
        EventData::from_input_json(value)
            .map_err(|err| exo_store::Error::Invalid(format!("event {}: {err}", index + 1)))
    }))
}

impl Service {
    fn scope(&self, scope: &exo_protocol::ScopeParams) -> Result<exo_core::Scope, ErrorObject> {
        checked(
            self.store()
                .scope(scope.agent.as_deref(), scope.conversation.as_deref()),
        )
    }

    pub(crate) fn key(&self) -> Result<exo_secrets::Key, ErrorObject> {
        let mut cached = self.inner.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cached.as_ref() {
            return Ok(key.clone());
        }
        let (key, source) = exo_secrets::Key::load(true)
            .map_err(|err| simple_error(ErrorCode::Internal, err.to_string()))?
            .ok_or_else(|| simple_error(ErrorCode::Internal, "no encryption key available"))?;
        if let exo_secrets::KeySource::CreatedFile(path) = &source {
            tracing::warn!(path = %path.display(), "created encryption key file");
        }
        *cached = Some(key.clone());
        Ok(key)
    }

    /// Runs one request. `daemon/stop`, `events/watch` and `events/unwatch`
    /// are the server's (see `server.rs`).
    ///
    /// An internal error is logged here, once: at `error` in a daemon, whose
    /// log is its operator's; at `debug` in a process serving its own
    /// command line, whose user sees the error itself (one line, not a log
    /// line and then the same error).
    pub(crate) fn dispatch(
        &self,
        connection: &ConnectionContext,
        method: &str,
        params: Option<&Json>,
    ) -> Handled {
        let result = self.handle(connection, method, params);
        if let Err(error) = &result {
            if error.code == ErrorCode::Internal.code() {
                if self.inner.daemon {
                    tracing::error!(method, error = %error.message, "internal error");
                } else {
                    tracing::debug!(method, error = %error.message, "internal error");
                }
            }
        }
        result
    }

    fn handle(
        &self,
        connection: &ConnectionContext,
        method: &str,
        params: Option<&Json>,
    ) -> Handled {
        let store = self.store();
        match method {
            Initialize::NAME => {
                let params = parse::<Initialize>(params)?;
                if let Some(versions) = &params.protocol_versions {
                    if !versions.iter().any(|v| v == PROTOCOL_VERSION) {
                        return Err(rpc_error(
                            ErrorCode::UnsupportedVersion,
                            format!(
                                "no common protocol version: this daemon speaks {PROTOCOL_VERSION}"
                            ),
                            ErrorData {
                                supported: Some(vec![PROTOCOL_VERSION.to_string()]),
                                ..ErrorData::default()
                            },
                        ));
                    }
                }
                if let Some(client) = &params.client {
                    tracing::info!(client = %client.name, version = ?client.version, "client initialized");
                }
                reply(InitializeResult {
                    protocol_version: PROTOCOL_VERSION.to_string(),
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
            Ping::NAME => {
                parse::<Ping>(params)?;
                reply(Empty {})
            }
            DaemonStatusMethod::NAME => {
                parse::<DaemonStatusMethod>(params)?;
                reply(DaemonStatus {
                    pid: std::process::id(),
                    root: store.root().display().to_string(),
                    socket: self.inner.socket.as_ref().map(|s| s.display().to_string()),
                    version: env!("CARGO_PKG_VERSION").into(),
                    protocol_version: PROTOCOL_VERSION.into(),
                    uptime_seconds: self.inner.started.elapsed().as_secs(),
                    connections: self
                        .inner
                        .connections
                        .load(std::sync::atomic::Ordering::Relaxed),
                })
            }

            AgentCreate::NAME => {
                let params = parse::<AgentCreate>(params)?;
                let mut config = serde_json::Map::new();
                if let Some(model) = params.model {
                    config.insert("model".into(), json!(model));
                }
                if let Some(instructions) = params.instructions {
                    config.insert("instructions".into(), json!(instructions));
                }
                if let Some(approval) = params.approval {
                    config.insert("approval".into(), json!(approval));
                }
                match store.create_agent(&params.name, params.slug.as_deref(), config) {
                    Err(exo_store::Error::NotFound { what: "model", key }) => Err(rpc_error(
                        ErrorCode::NotFound,
                        format!("model {key:?} not found; register it first with `exo model register {key}`"),
                        ErrorData { what: Some("model".into()), key: Some(key), ..ErrorData::default() },
                    )),
                    other => reply(convert::agent(&checked(other)?)),
                }
            }
            AgentListMethod::NAME => {
                parse::<AgentListMethod>(params)?;
                reply(AgentList {
                    agents: checked(store.agents())?
                        .iter()
                        .map(convert::agent)
                        .collect(),
                })
            }
            AgentGet::NAME => reply(convert::agent(&checked(
                store.agent(&parse::<AgentGet>(params)?.agent),
            )?)),
            AgentDelete::NAME => reply(convert::agent(&checked(
                store.delete_agent(&parse::<AgentDelete>(params)?.agent),
            )?)),

            ConversationCreate::NAME => {
                let params = parse::<ConversationCreate>(params)?;
                let workspace = params.workspace.as_deref().map(std::path::Path::new);
                let conversation = checked(store.create_conversation(
                    &params.agent,
                    &params.name,
                    params.slug.as_deref(),
                    workspace,
                ))?;
                reply(convert::conversation(&conversation))
            }
            ConversationListMethod::NAME => {
                let params = parse::<ConversationListMethod>(params)?;
                let conversations = checked(store.conversations(&params.agent))?;
                reply(ConversationList {
                    conversations: conversations.iter().map(convert::conversation).collect(),
                })
            }
            ConversationGet::NAME => {
                let params = parse::<ConversationGet>(params)?;
                reply(convert::conversation(&checked(
                    store.conversation(&params.agent, &params.conversation),
                )?))
            }
            ConversationDelete::NAME => {
                let params = parse::<ConversationDelete>(params)?;
                reply(convert::conversation(&checked(
                    store.delete_conversation(&params.agent, &params.conversation),
                )?))
            }
            ConversationFork::NAME => {
                let params = parse::<ConversationFork>(params)?;
                if let Some(dir) = &params.workspace {
                    // Checked before the fork point's files are written
                    // there: exo keeps its own state under the root.
                    let inside = exo_store::is_inside_root(store.root(), std::path::Path::new(dir))
                        .map_err(|err| invalid(format!("workspace {dir}: {err}")))?;
                    if inside {
                        return Err(invalid(format!(
                            "workspace {dir} is exo's root directory or inside it, where exo keeps its own state"
                        )));
                    }
                }
                reply(self.fork(params)?)
            }
            ConversationRewind::NAME => reply(self.rewind(parse::<ConversationRewind>(params)?)?),
            ConversationAppend::NAME => {
                let params: AppendInput = parse_as(method, params)?;
                let events = input_events(params.events)?;
                let appended = checked(store.append_each(
                    &params.agent,
                    &params.conversation,
                    events,
                    params.expected_head,
                    params.return_events.unwrap_or(true),
                ))?;
                appended_result(&appended)
            }

            TurnBegin::NAME => {
                let params = parse::<TurnBegin>(params)?;
                let input = EventData::Message {
                    role: Role::User,
                    content: crate::turns::content(params.input)?,
                    usage: None,
                    model: None,
                };
                let handle = self.begin_turn(&params.agent, &params.conversation, input)?;
                connection
                    .turns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(handle.id());
                reply(TurnBeginResult {
                    turn: handle.id(),
                    session: handle.session(),
                    events: convert::events(handle.started_events()),
                })
            }
            TurnAppend::NAME => {
                let params: AppendInput = parse_as(method, params)?;
                let turn = params
                    .turn
                    .ok_or_else(|| invalid("invalid params for turn/append: missing field `turn`"))?;
                let events = input_events(params.events)?;
                let appended = checked(store.append_each_to_turn(
                    turn,
                    events,
                    params.expected_head,
                    params.return_events.unwrap_or(true),
                ))?;
                appended_result(&appended)
            }
            TurnFinish::NAME => {
                let params = parse::<TurnFinish>(params)?;
                let status = self.finish_turn(params.turn, params.status)?;
                connection
                    .turns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&params.turn);
                reply(TurnFinishResult {
                    turn: params.turn,
                    status,
                })
            }
            TurnRun::NAME => Err(simple_error(
                ErrorCode::MethodNotFound,
                "turn/run streams notifications, so it is served on a connection (the daemon's socket or stdio)",
            )),
            TurnCancel::NAME => self.cancel_turn(parse::<TurnCancel>(params)?.turn),
            ApprovalRespond::NAME => self.respond_approval(parse::<ApprovalRespond>(params)?),
            TurnGet::NAME => {
                let turn = parse::<TurnGet>(params)?.turn;
                let mut record = checked(store.turn(turn))?;
                // A turn left open by a dead process is closed as
                // interrupted when its conversation is opened: open it, so
                // that such a turn is not reported as still running.
                if record.status.is_none() && store.conversation_by_id(record.conversation).is_ok()
                {
                    record = checked(store.turn(turn))?;
                }
                reply(convert::turn(&record))
            }

            SessionResume::NAME => reply(self.resume(parse::<SessionResume>(params)?)?),
            SnapshotTake::NAME => reply(self.snapshot_take(parse::<SnapshotTake>(params)?)?),
            SnapshotListMethod::NAME => {
                reply(self.snapshot_list(parse::<SnapshotListMethod>(params)?)?)
            }
            SnapshotDiffMethod::NAME => {
                reply(self.snapshot_diff(parse::<SnapshotDiffMethod>(params)?)?)
            }
            SnapshotRestore::NAME => {
                reply(self.snapshot_restore(parse::<SnapshotRestore>(params)?)?)
            }
            Gc::NAME => {
                parse::<Gc>(params)?;
                reply(self.gc()?)
            }
            EventsList::NAME => {
                let params = parse::<EventsList>(params)?;
                let limit = match params.limit {
                    None => exo_store::DEFAULT_PAGE,
                    Some(limit @ 1..=10_000) => limit as usize,
                    Some(_) => return Err(invalid("limit must be between 1 and 10000")),
                };
                let query = EventQuery {
                    after: params.after,
                    before: params.before,
                    desc: params.desc,
                    limit,
                    kind: params.kind,
                    session: params.session,
                    turn: params.turn,
                };
                let page = checked(store.events(&params.agent, &params.conversation, &query))?;
                reply(EventPage {
                    events: convert::events(&page.events),
                    next_cursor: page.next_cursor,
                })
            }
            EventsGet::NAME => {
                let params = parse::<EventsGet>(params)?;
                let event =
                    checked(store.event(&params.agent, &params.conversation, params.event))?;
                reply(exo_protocol::Event::from(&event))
            }

            ArtifactPut::NAME => {
                let params = parse::<ArtifactPut>(params)?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(params.content_base64.as_bytes())
                    .map_err(|err| invalid(format!("content_base64 is not base64: {err}")))?;
                let version = checked(store.put_artifact(
                    &params.agent,
                    &params.conversation,
                    &params.path,
                    &bytes,
                    params.media_type.as_deref(),
                ))?;
                reply(convert::artifact(&version))
            }
            ArtifactGet::NAME => {
                let params = parse::<ArtifactGet>(params)?;
                let (artifact, bytes) = checked(store.get_artifact(
                    &params.agent,
                    &params.conversation,
                    &params.path,
                    params.version,
                ))?;
                reply(ArtifactContent {
                    artifact: convert::artifact(&artifact),
                    content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                })
            }
            ArtifactListMethod::NAME => {
                let params = parse::<ArtifactListMethod>(params)?;
                let artifacts = match &params.path {
                    Some(path) => {
                        checked(store.artifact_versions(&params.agent, &params.conversation, path))?
                    }
                    None => checked(store.list_artifacts(&params.agent, &params.conversation))?,
                };
                reply(ArtifactList {
                    artifacts: artifacts.iter().map(convert::artifact).collect(),
                })
            }

            SecretSet::NAME => {
                let params = parse::<SecretSet>(params)?;
                exo_core::validate_name("secret", &params.name).map_err(|err| invalid(err.0))?;
                let scope = self.scope(&params.scope)?;
                let value = match params.kind.unwrap_or(exo_core::SecretKind::ApiKey) {
                    exo_core::SecretKind::ApiKey => SecretValue::ApiKey { value: params.value },
                    exo_core::SecretKind::Oauth => serde_json::from_str::<Value>(&params.value)
                        .ok()
                        .and_then(|mut object| {
                            object.as_object_mut()?.insert("type".into(), json!("oauth"));
                            serde_json::from_value(object).ok()
                        })
                        .ok_or_else(|| {
                            invalid("an oauth secret must be a JSON object {\"access_token\", \"refresh_token\"?, \"expires_at\"?}")
                        })?,
                };
                value.validate().map_err(|err| invalid(err.0))?;
                let key = self.key()?;
                reply(convert::secret(&checked(store.set_secret(
                    scope,
                    &params.name,
                    &value,
                    &key,
                ))?))
            }
            SecretListMethod::NAME => {
                let params = parse::<SecretListMethod>(params)?;
                let secrets = checked(store.secrets(self.scope(&params)?))?;
                reply(SecretList {
                    secrets: secrets.iter().map(convert::secret).collect(),
                })
            }
            SecretGet::NAME => {
                let params = parse::<SecretGet>(params)?;
                let info = checked(store.secrets(self.scope(&params.scope)?))?
                    .into_iter()
                    .find(|info| info.name == params.name)
                    .ok_or_else(|| {
                        store_error(exo_store::Error::NotFound {
                            what: "secret",
                            key: params.name.clone(),
                        })
                    })?;
                reply(convert::secret(&info))
            }
            SecretDelete::NAME => {
                let params = parse::<SecretDelete>(params)?;
                reply(convert::secret(&checked(
                    store.delete_secret(self.scope(&params.scope)?, &params.name),
                )?))
            }

            ModelRegister::NAME => {
                let params = parse::<ModelRegister>(params)?;
                let provider = params.provider.unwrap_or(exo_core::Provider::OpenAi);
                let base_url = match (params.base_url, provider.default_base_url()) {
                    (Some(url), _) => url,
                    (None, Some(default)) => default.to_string(),
                    (None, None) => {
                        return Err(invalid(format!(
                            "a {provider} model needs a base URL: file:// and the script's absolute path"
                        )))
                    }
                };
                let binding = Binding::Model {
                    upstream: params.upstream.unwrap_or_else(|| params.name.clone()),
                    name: params.name,
                    provider,
                    base_url,
                    secret: params.secret,
                    context_window: params.context_window,
                };
                self.set_binding(&params.scope, binding)
            }
            ModelListMethod::NAME => {
                let params = parse::<ModelListMethod>(params)?;
                let models =
                    checked(store.bindings(self.scope(&params)?, Some(BindingKind::Model)))?;
                reply(ModelList {
                    models: models.iter().map(convert::binding).collect(),
                })
            }
            ModelGet::NAME => {
                let params = parse::<ModelGet>(params)?;
                let entry = checked(store.resolve_binding(
                    self.scope(&params.scope)?,
                    BindingKind::Model,
                    &params.name,
                ))?;
                reply(convert::binding(&entry))
            }
            ModelDelete::NAME => {
                let params = parse::<ModelDelete>(params)?;
                let entry = checked(store.delete_binding(
                    self.scope(&params.scope)?,
                    BindingKind::Model,
                    &params.name,
                ))?;
                reply(convert::binding(&entry))
            }
            BindingSet::NAME => {
                let params = parse::<BindingSet>(params)?;
                self.set_binding(&params.scope, params.binding)
            }
            BindingListMethod::NAME => {
                let params = parse::<BindingListMethod>(params)?;
                let bindings = checked(store.bindings(self.scope(&params.scope)?, params.kind))?;
                reply(BindingList {
                    bindings: bindings.iter().map(convert::binding).collect(),
                })
            }
            BindingGet::NAME => {
                let params = parse::<BindingGet>(params)?;
                let entry = checked(store.resolve_binding(
                    self.scope(&params.scope)?,
                    params.kind,
                    &params.name,
                ))?;
                reply(convert::binding(&entry))
            }
            BindingDelete::NAME => {
                let params = parse::<BindingDelete>(params)?;
                let entry = checked(store.delete_binding(
                    self.scope(&params.scope)?,
                    params.kind,
                    &params.name,
                ))?;
                reply(convert::binding(&entry))
            }

            method if DAEMON_ONLY.contains(&method) => Err(simple_error(
                ErrorCode::MethodNotFound,
                format!("{method} is served only by a running daemon (`exo daemon`)"),
            )),
            method => Err(simple_error(
                ErrorCode::MethodNotFound,
                format!("method not found: {method}"),
            )),
        }
    }

    fn set_binding(&self, scope: &exo_protocol::ScopeParams, binding: Binding) -> Handled {
        let scope = self.scope(scope)?;
        match self.store().set_binding(scope, binding) {
            Err(exo_store::Error::NotFound {
                what: "secret",
                key,
            }) => Err(rpc_error(
                ErrorCode::NotFound,
                format!(
                    "secret {key:?} not found; set it first with `exo secret set {key} --env VAR`"
                ),
                ErrorData {
                    what: Some("secret".into()),
                    key: Some(key),
                    ..ErrorData::default()
                },
            )),
            other => reply(convert::binding(&checked(other)?)),
        }
    }

    /// Begins a turn: the turn-start snapshot is recorded in the same
    /// transaction as `turn_started`, its objects durable before that
    /// commits.
    pub(crate) fn begin_turn(
        &self,
        agent: &str,
        conversation: &str,
        input: EventData,
    ) -> Result<exo_store::TurnHandle, ErrorObject> {
        let store = self.store();
        let record = checked(store.conversation(agent, conversation))?;
        if let Some(turn) = record.open_turn {
            return Err(store_error(exo_store::Error::Busy(format!(
                "turn {turn} is already in progress in conversation {}",
                record.slug
            ))));
        }
        self.with_turn_snapshot(&record, exo_core::SnapshotReason::TurnStart, |extra| {
            checked(store.begin_turn_with(agent, conversation, input, extra))
        })
    }

    /// Ends a turn with its turn-end snapshot; idempotent (an ended turn
    /// keeps its status and records nothing).
    pub(crate) fn finish_turn(
        &self,
        turn: exo_core::TurnId,
        status: exo_core::TurnStatus,
    ) -> Result<exo_core::TurnStatus, ErrorObject> {
        let store = self.store();
        let record = checked(store.turn(turn))?;
        match record.status {
            Some(_) => checked(store.finish_turn_with(turn, status, Vec::new())),
            None => {
                let conversation = checked(store.conversation_by_id(record.conversation))?;
                let snapshotted = self.with_turn_snapshot(
                    &conversation,
                    exo_core::SnapshotReason::TurnEnd,
                    |extra| checked(store.finish_turn_with(turn, status, extra)),
                );
                match snapshotted {
                    Ok(status) => Ok(status),
                    Err(error) => {
                        // The turn-end snapshot failed (the workspace is gone
                        // or unreadable): the turn still ends, saying why, or
                        // the conversation would stay busy. (When the finish
                        // itself failed, it fails again here, and that error
                        // is returned.)
                        tracing::warn!(%turn, error = %error.message, "turn-end snapshot failed");
                        let note = EventData::Error {
                            message: format!("turn-end snapshot failed: {}", error.message),
                            code: Some("snapshot".to_owned()),
                        };
                        let _ = store.append_to_turn(turn, vec![note], None);
                        checked(store.finish_turn_with(turn, status, Vec::new()))
                    }
                }
            }
        }
    }

    /// Closes the turns a connection began and left open, as interrupted.
    pub(crate) fn interrupt_turns(&self, connection: &ConnectionContext) {
        let turns: Vec<_> = connection
            .turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for turn in turns {
            match self
                .store()
                .finish_turn(turn, exo_core::TurnStatus::Interrupted)
            {
                Ok(status) => tracing::info!(%turn, %status, "client went away; turn closed"),
                Err(err) => tracing::warn!(%turn, %err, "could not close a departed client's turn"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                payload: json!({"a": [1, 2]}),
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
            events: convert::events(&events),
            head: events[1].id,
            first: Some(events[0].id),
            count: Some(2),
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            serde_json::to_string(&result).unwrap()
        );
    }
}
