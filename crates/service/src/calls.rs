//! The typed calls: one function per method, params in, result out, and
//! [`Call`], which ties each protocol method to its function, so every face
//! (JSON-RPC, the command line, ACP, MCP) calls the same code through
//! [`Service::call`](crate::Service::call). Synchronous: a face runs them
//! on a blocking pool.

use base64::Engine;
use exo_core::{Binding, BindingKind, EventData, Role, SecretValue};
use exo_protocol::methods::*;
use exo_protocol::{
    Agent, Artifact, BindingEntry, Conversation, ErrorCode, ErrorData, Method, Secret, Turn,
    PROTOCOL_VERSION,
};
use exo_store::EventQuery;
use serde_json::{json, Value};

use crate::convert;
use crate::error::{ServiceError, ServiceResult};
use crate::{ClientContext, Service};

/// A method the service answers as a plain call: params in, result out.
/// (Methods that need a connection that outlives the request, such as
/// `events/watch` or `turn/run`, are served by faces.)
pub trait Call: Method {
    /// Runs the call for `client`.
    fn call(
        service: &Service,
        client: &ClientContext,
        params: Self::Params,
    ) -> ServiceResult<Self::Result>;
}

/// The methods whose success may change which model, base URL or key a
/// conversation resolves to.
const CONFIGURES: &[&str] = &[
    AgentSet::NAME,
    AgentDelete::NAME,
    ConversationDelete::NAME,
    SecretSet::NAME,
    SecretDelete::NAME,
    ModelRegister::NAME,
    ModelDelete::NAME,
    BindingSet::NAME,
    BindingDelete::NAME,
];

macro_rules! calls {
    ($($method:ident => $function:ident),* $(,)?) => {
        $(
            impl Call for $method {
                fn call(
                    service: &Service,
                    client: &ClientContext,
                    params: Self::Params,
                ) -> ServiceResult<Self::Result> {
                    let result = service.$function(client, params);
                    // A change to what a conversation's model resolves to
                    // (its binding, its secret, the agent's model):
                    // resolutions cached by the gateway are stale.
                    if result.is_ok() && CONFIGURES.contains(&<$method as Method>::NAME) {
                        service.configuration_changed();
                    }
                    result
                }
            }
        )*
    };
}

calls! {
    Ping => ping,
    DaemonStatusMethod => daemon_status,
    AgentCreate => agent_create,
    AgentListMethod => agent_list,
    AgentGet => agent_get,
    AgentDelete => agent_delete,
    AgentSet => agent_set,
    ConversationCreate => conversation_create,
    ConversationListMethod => conversation_list,
    ConversationGet => conversation_get,
    ConversationDelete => conversation_delete,
    ConversationFork => conversation_fork,
    ConversationRewind => conversation_rewind,
    ConversationTreeMethod => conversation_tree,
    ConversationAppend => conversation_append,
    TurnBegin => turn_begin,
    TurnAppend => turn_append,
    TurnFinish => turn_finish,
    TurnGet => turn_get,
    TurnCancel => turn_cancel,
    ApprovalRespond => approval_respond,
    ApprovalListMethod => approval_list,
    GatewayTokenMethod => gateway_token_call,
    GatewayRevoke => gateway_revoke_call,
    SessionResume => session_resume,
    SnapshotTake => snapshot_take_call,
    SnapshotListMethod => snapshot_list_call,
    SnapshotDiffMethod => snapshot_diff_call,
    SnapshotRestore => snapshot_restore_call,
    SnapshotRead => snapshot_read_call,
    Gc => gc_call,
    SandboxListMethod => sandbox_list,
    SandboxRm => sandbox_rm,
    SandboxCreate => sandbox_create,
    SandboxStart => sandbox_start,
    SandboxStop => sandbox_stop,
    SandboxExec => sandbox_exec,
    SandboxSnapshot => sandbox_snapshot_call,
    EventsList => events_list,
    EventsGet => events_get,
    ArtifactPut => artifact_put,
    ArtifactGet => artifact_get,
    ArtifactListMethod => artifact_list,
    SecretSet => secret_set,
    SecretListMethod => secret_list,
    SecretGet => secret_get,
    SecretDelete => secret_delete,
    ModelRegister => model_register,
    ModelListMethod => model_list,
    ModelGet => model_get,
    ModelDelete => model_delete,
    BindingSet => binding_set,
    BindingListMethod => binding_list,
    BindingGet => binding_get,
    BindingDelete => binding_delete,
}

/// The largest page of events a call returns.
const MAX_PAGE: u32 = 10_000;

/// The most bytes of events a page holds (at least one event): what one
/// `events/list` answer costs, whatever its events weigh.
pub const MAX_PAGE_BYTES: usize = 16 << 20;

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(message)
}

/// Caller events (`conversation append` lines) given as JSON text, read
/// one at a time as the store appends them, so a large batch is never
/// held twice.
pub(crate) fn input_events(
    values: Vec<Box<serde_json::value::RawValue>>,
) -> ServiceResult<impl Iterator<Item = exo_store::Result<EventData>>> {
    if values.is_empty() {
        return Err(invalid("events must not be empty"));
    }
    Ok(values.into_iter().enumerate().map(|(index, value)| {
        let value: Value = exo_core::json::from_str(value.get())
            .map_err(|err| exo_store::Error::Invalid(format!("event {}: {err}", index + 1)))?;
        EventData::from_input_json(value)
            .map_err(|err| exo_store::Error::Invalid(format!("event {}: {err}", index + 1)))
    }))
}

/// Caller events given as values (the typed calls).
fn value_events(
    values: Vec<Value>,
) -> ServiceResult<impl Iterator<Item = exo_store::Result<EventData>>> {
    if values.is_empty() {
        return Err(invalid("events must not be empty"));
    }
    Ok(values.into_iter().enumerate().map(|(index, value)| {
        EventData::from_input_json(value)
            .map_err(|err| exo_store::Error::Invalid(format!("event {}: {err}", index + 1)))
    }))
}

fn appended_result(appended: &exo_store::Appended) -> AppendResult {
    AppendResult {
        events: convert::events(&appended.events),
        head: appended.head,
        first: appended.first,
        count: Some(appended.count as u64),
    }
}

impl Service {
    fn scope(&self, scope: &exo_protocol::ScopeParams) -> ServiceResult<exo_core::Scope> {
        Ok(self
            .store()
            .scope(scope.agent.as_deref(), scope.conversation.as_deref())?)
    }

    pub(crate) fn key(&self) -> ServiceResult<exo_secrets::Key> {
        let mut cached = self.inner.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cached.as_ref() {
            return Ok(key.clone());
        }
        let (key, source) = exo_secrets::Key::load(true)
            .map_err(|err| ServiceError::internal(err.to_string()))?
            .ok_or_else(|| ServiceError::internal("no encryption key available"))?;
        if let exo_secrets::KeySource::CreatedFile(path) = &source {
            tracing::warn!(path = %path.display(), "created encryption key file");
        }
        *cached = Some(key.clone());
        Ok(key)
    }

    /// The protocol version check of `initialize`.
    pub fn check_protocol_versions(&self, versions: Option<&[String]>) -> ServiceResult<()> {
        match versions {
            Some(versions) if !versions.iter().any(|v| v == PROTOCOL_VERSION) => {
                Err(ServiceError::with_data(
                    ErrorCode::UnsupportedVersion,
                    format!("no common protocol version: this daemon speaks {PROTOCOL_VERSION}"),
                    ErrorData {
                        supported: Some(vec![PROTOCOL_VERSION.to_string()]),
                        ..ErrorData::default()
                    },
                ))
            }
            _ => Ok(()),
        }
    }

    fn ping(&self, _: &ClientContext, _: Empty) -> ServiceResult<Empty> {
        Ok(Empty {})
    }

    fn daemon_status(&self, _: &ClientContext, _: Empty) -> ServiceResult<DaemonStatus> {
        Ok(DaemonStatus {
            pid: std::process::id(),
            root: self.store().root().display().to_string(),
            socket: self.inner.socket.as_ref().map(|s| s.display().to_string()),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: PROTOCOL_VERSION.into(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            connections: self
                .inner
                .connections
                .load(std::sync::atomic::Ordering::Relaxed),
            gateway: self.gateway_url(),
        })
    }

    fn agent_create(&self, _: &ClientContext, params: AgentCreateParams) -> ServiceResult<Agent> {
        let config = exo_core::AgentConfig {
            harness: params.harness.unwrap_or_default(),
            module: params.module,
            model: params.model,
            instructions: params.instructions,
            approval: params.approval.unwrap_or_default(),
            sandbox: params.sandbox.unwrap_or_default(),
            image: params.image,
            network: params.network.unwrap_or(false),
            sandbox_fallback: params.sandbox_fallback.unwrap_or(false),
            ..exo_core::AgentConfig::default()
        };
        let config = self.checked_config(config)?;
        let agent =
            self.store()
                .create_agent(&params.name, params.slug.as_deref(), config.to_map())?;
        Ok(convert::agent(&agent))
    }

    fn agent_set(&self, _: &ClientContext, params: AgentSetParams) -> ServiceResult<Agent> {
        let current = self.store().agent(&params.agent)?;
        let mut config = exo_core::AgentConfig::from_map(&current.config)
            .map_err(|err| invalid(format!("agent {}: {err}", current.slug)))?;
        if let Some(harness) = params.harness {
            config.harness = harness;
            if !harness.takes_module() && params.module.is_none() {
                config.module = None;
            }
        }
        if let Some(module) = params.module {
            config.module = Some(module);
        }
        if let Some(model) = params.model {
            config.model = Some(model);
        }
        if let Some(instructions) = params.instructions {
            config.instructions = Some(instructions);
        }
        if let Some(approval) = params.approval {
            config.approval = approval;
        }
        if let Some(sandbox) = params.sandbox {
            config.sandbox = sandbox;
        }
        if let Some(image) = params.image {
            config.image = Some(image);
        }
        if let Some(network) = params.network {
            config.network = network;
        }
        if let Some(fallback) = params.sandbox_fallback {
            config.sandbox_fallback = fallback;
        }
        // Checked (the module loaded) before anything is written.
        let config = self.checked_config(config)?;
        let slug = current.slug.clone();
        let agent = self
            .store()
            .update_agent_config(&current.id.to_string(), |mut stored| {
                // The standing permissions as they are now (another turn
                // may have added one meanwhile), less those revoked; what
                // this call sets wins.
                let mut allow: Vec<Value> = match stored.remove("allow") {
                    Some(Value::Array(allow)) => allow,
                    _ => Vec::new(),
                };
                let had: Vec<&str> = allow.iter().filter_map(Value::as_str).collect();
                if let Some(tool) = params.revoke.iter().find(|t| !had.contains(&t.as_str())) {
                    let had = if had.is_empty() {
                        "none".to_owned()
                    } else {
                        had.join(", ")
                    };
                    return Err(exo_store::Error::Invalid(format!(
                        "agent {slug} has no standing permission for {tool:?} (it has: {had})"
                    )));
                }
                allow.retain(|known| {
                    !known
                        .as_str()
                        .is_some_and(|known| params.revoke.iter().any(|tool| tool == known))
                });
                let mut map = config.to_map();
                map.remove("allow");
                if !allow.is_empty() {
                    map.insert("allow".into(), Value::Array(allow));
                }
                stored = map;
                Ok(stored)
            })?;
        self.inner.executors.forget_agent(&agent.id.to_string());
        Ok(convert::agent(&agent))
    }

    /// An agent's configuration, checked: a harness this exo runs, a module
    /// only for the harness that takes one (an absolute path, loaded once
    /// to see that it is a harness).
    fn checked_config(
        &self,
        config: exo_core::AgentConfig,
    ) -> ServiceResult<exo_core::AgentConfig> {
        let harness = config.harness;
        match (&config.module, harness.takes_module()) {
            (None, true) => {
                return Err(invalid(format!(
                    "the {harness} harness needs a module: the file that default-exports defineHarness(...)"
                )))
            }
            (Some(_), false) => {
                return Err(invalid(format!("the {harness} harness takes no module")))
            }
            _ => {}
        }
        if let Some(module) = &config.module {
            // Relative to what? Not to this process's directory, which is
            // not the client's.
            if !std::path::Path::new(module).is_absolute() {
                return Err(invalid(format!(
                    "module {module:?} is not an absolute path"
                )));
            }
        }
        self.inner.executors.check(&config)?;
        Ok(config)
    }

    fn agent_list(&self, _: &ClientContext, _: Empty) -> ServiceResult<AgentList> {
        Ok(AgentList {
            agents: self.store().agents()?.iter().map(convert::agent).collect(),
        })
    }

    fn agent_get(&self, _: &ClientContext, params: AgentParams) -> ServiceResult<Agent> {
        Ok(convert::agent(&self.store().agent(&params.agent)?))
    }

    fn agent_delete(&self, _: &ClientContext, params: AgentParams) -> ServiceResult<Agent> {
        let agent = self.store().delete_agent(&params.agent)?;
        self.inner.executors.forget_agent(&agent.id.to_string());
        Ok(convert::agent(&agent))
    }

    fn conversation_create(
        &self,
        _: &ClientContext,
        params: ConversationCreateParams,
    ) -> ServiceResult<Conversation> {
        let workspace = params.workspace.as_deref().map(std::path::Path::new);
        let conversation = self.store().create_conversation(
            &params.agent,
            &params.name,
            params.slug.as_deref(),
            workspace,
        )?;
        Ok(convert::conversation(&conversation))
    }

    fn conversation_list(
        &self,
        _: &ClientContext,
        params: AgentParams,
    ) -> ServiceResult<ConversationList> {
        let conversations = self.store().conversations(&params.agent)?;
        Ok(ConversationList {
            conversations: conversations.iter().map(convert::conversation).collect(),
        })
    }

    fn conversation_get(
        &self,
        _: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<Conversation> {
        Ok(convert::conversation(
            &self
                .store()
                .conversation(&params.agent, &params.conversation)?,
        ))
    }

    fn conversation_delete(
        &self,
        _: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<Conversation> {
        let conversation = self
            .store()
            .delete_conversation(&params.agent, &params.conversation)?;
        self.inner.executors.forget_conversation(conversation.id);
        // Its docker sandbox goes too (if Docker answers; gc then takes its
        // snapshots).
        let root = self.root_label();
        let id = conversation.id.to_string();
        let removal = exo_sandbox::docker::block_on(
            std::time::Duration::from_secs(5),
            exo_sandbox::docker::remove(&root, &id),
        );
        if !matches!(removal, Ok(Ok(Ok(_)))) {
            tracing::debug!("the conversation's sandbox was not removed: {removal:?}");
        }
        Ok(convert::conversation(&conversation))
    }

    fn conversation_fork(
        &self,
        _: &ClientContext,
        params: ConversationForkParams,
    ) -> ServiceResult<Conversation> {
        if let Some(dir) = &params.workspace {
            // Checked before the fork point's files are written there: exo
            // keeps its own state under the root.
            let inside = exo_store::is_inside_root(self.store().root(), std::path::Path::new(dir))
                .map_err(|err| invalid(format!("workspace {dir}: {err}")))?;
            if inside {
                return Err(invalid(format!(
                    "workspace {dir} is exo's root directory or inside it, where exo keeps its own state"
                )));
            }
        }
        self.fork(params)
    }

    fn conversation_rewind(
        &self,
        _: &ClientContext,
        params: ConversationRewindParams,
    ) -> ServiceResult<RewindResult> {
        let rewound = self.rewind(params)?;
        self.inner
            .executors
            .forget_conversation(rewound.conversation.id);
        Ok(rewound)
    }

    fn conversation_tree(
        &self,
        _: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<ConversationTree> {
        let tree = self.store().tree(&params.agent, &params.conversation)?;
        Ok(convert::tree(&tree))
    }

    fn conversation_append(
        &self,
        _: &ClientContext,
        params: ConversationAppendParams,
    ) -> ServiceResult<AppendResult> {
        let events = value_events(params.events)?;
        let appended = self.store().append_each(
            &params.agent,
            &params.conversation,
            events,
            params.expected_head,
            params.return_events.unwrap_or(true),
        )?;
        Ok(appended_result(&appended))
    }

    /// `conversation/append` with the events as JSON text, read one at a
    /// time as they are stored: what the JSON-RPC face uses, so a batch of
    /// a million small events is never a million trees of values.
    pub fn conversation_append_text(
        &self,
        agent: &str,
        conversation: &str,
        events: Vec<Box<serde_json::value::RawValue>>,
        expected_head: Option<exo_core::EventId>,
        return_events: bool,
    ) -> ServiceResult<exo_store::Appended> {
        let events = input_events(events)?;
        Ok(self
            .store()
            .append_each(agent, conversation, events, expected_head, return_events)?)
    }

    /// `turn/append` with the events as JSON text (see
    /// [`Service::conversation_append_text`]).
    pub fn turn_append_text(
        &self,
        turn: exo_core::TurnId,
        events: Vec<Box<serde_json::value::RawValue>>,
        expected_head: Option<exo_core::EventId>,
        return_events: bool,
    ) -> ServiceResult<exo_store::Appended> {
        self.not_an_executors_turn(turn)?;
        let events = input_events(events)?;
        Ok(self
            .store()
            .append_each_to_turn(turn, events, expected_head, return_events)?)
    }

    fn turn_begin(
        &self,
        client: &ClientContext,
        params: TurnBeginParams,
    ) -> ServiceResult<TurnBeginResult> {
        let input = EventData::Message {
            role: Role::User,
            content: crate::turns::content(params.input)?,
            usage: None,
            model: None,
        };
        let handle = self.begin_turn(&params.agent, &params.conversation, input)?;
        client
            .turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handle.id());
        Ok(TurnBeginResult {
            turn: handle.id(),
            session: handle.session(),
            events: convert::events(handle.started_events()),
        })
    }

    fn turn_append(
        &self,
        _: &ClientContext,
        params: TurnAppendParams,
    ) -> ServiceResult<AppendResult> {
        self.not_an_executors_turn(params.turn)?;
        let events = value_events(params.events)?;
        let appended = self.store().append_each_to_turn(
            params.turn,
            events,
            params.expected_head,
            params.return_events.unwrap_or(true),
        )?;
        Ok(appended_result(&appended))
    }

    fn turn_finish(
        &self,
        client: &ClientContext,
        params: TurnFinishParams,
    ) -> ServiceResult<TurnFinishResult> {
        self.not_an_executors_turn(params.turn)?;
        let status = self.finish_turn(params.turn, params.status)?;
        client
            .turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&params.turn);
        Ok(TurnFinishResult {
            turn: params.turn,
            status,
        })
    }

    fn turn_get(&self, _: &ClientContext, params: TurnParams) -> ServiceResult<Turn> {
        let store = self.store();
        let mut record = store.turn(params.turn)?;
        // A turn left open by a dead process is closed as interrupted when
        // its conversation is opened: open it, so that such a turn is not
        // reported as still running.
        if record.status.is_none() && store.conversation_by_id(record.conversation).is_ok() {
            record = store.turn(params.turn)?;
        }
        Ok(convert::turn(&record))
    }

    fn turn_cancel(&self, _: &ClientContext, params: TurnParams) -> ServiceResult<Empty> {
        self.cancel_turn(params.turn)
    }

    fn approval_respond(
        &self,
        _: &ClientContext,
        params: ApprovalRespondParams,
    ) -> ServiceResult<Empty> {
        self.respond_approval(params)
    }

    fn approval_list(
        &self,
        _: &ClientContext,
        params: ApprovalListParams,
    ) -> ServiceResult<ApprovalList> {
        self.list_approvals(params)
    }

    fn gateway_token_call(
        &self,
        client: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<GatewayToken> {
        self.gateway_token(client, params)
    }

    fn gateway_revoke_call(
        &self,
        _: &ClientContext,
        params: GatewayRevokeParams,
    ) -> ServiceResult<GatewayRevoked> {
        Ok(GatewayRevoked {
            revoked: self.gateway_revoke(&params.token),
        })
    }

    fn session_resume(
        &self,
        _: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<ResumeResult> {
        self.resume(params)
    }

    fn snapshot_take_call(
        &self,
        _: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<SnapshotResult> {
        self.snapshot_take(params)
    }

    fn snapshot_list_call(
        &self,
        _: &ClientContext,
        params: SnapshotListParams,
    ) -> ServiceResult<SnapshotList> {
        self.snapshot_list(params)
    }

    fn snapshot_diff_call(
        &self,
        _: &ClientContext,
        params: SnapshotDiffParams,
    ) -> ServiceResult<SnapshotDiff> {
        self.snapshot_diff(params)
    }

    fn snapshot_restore_call(
        &self,
        _: &ClientContext,
        params: SnapshotRestoreParams,
    ) -> ServiceResult<RestoreResult> {
        self.snapshot_restore(params)
    }

    fn snapshot_read_call(
        &self,
        _: &ClientContext,
        params: SnapshotReadParams,
    ) -> ServiceResult<SnapshotFile> {
        self.snapshot_read(params)
    }

    fn gc_call(&self, _: &ClientContext, _: Empty) -> ServiceResult<GcResult> {
        self.gc()
    }

    fn sandbox_list(&self, _: &ClientContext, _: Empty) -> ServiceResult<SandboxList> {
        let root = self.root_label();
        let listed =
            crate::sandboxes::docker_step(DOCKER_ANSWER, exo_sandbox::docker::containers(&root))?;
        Ok(SandboxList {
            sandboxes: listed
                .into_iter()
                .map(|container| SandboxInfo {
                    conversation: container.conversation,
                    container: container.name,
                    image: container.base,
                    state: container.state,
                })
                .collect(),
        })
    }

    fn sandbox_rm(
        &self,
        _: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<SandboxRemoved> {
        let conversation = self
            .store()
            .conversation(&params.agent, &params.conversation)?;
        if conversation.open_turn.is_some() {
            return Err(crate::convert::simple_error(
                ErrorCode::Busy,
                format!(
                    "a turn is running in conversation {}: its sandbox stays until it ends",
                    conversation.slug
                ),
            ));
        }
        // Not while a turn or another step uses it.
        let _lock = exo_sandbox::docker::lock(
            &self
                .store()
                .root()
                .join("executors")
                .join(conversation.id.to_string()),
        )
        .map_err(crate::sandboxes::sandbox_error)?;
        let root = self.root_label();
        let id = conversation.id.to_string();
        let removed =
            crate::sandboxes::docker_step(DOCKER_ANSWER, exo_sandbox::docker::remove(&root, &id))?;
        if removed {
            self.store().append(
                &params.agent,
                &params.conversation,
                vec![EventData::Custom {
                    custom_type: "sandbox.removed".to_owned(),
                    payload: json!({ "container": format!("exo-{id}") }),
                }],
                None,
            )?;
        }
        Ok(SandboxRemoved { removed })
    }

    /// exo's root as containers and snapshots are labelled with it.
    fn root_label(&self) -> String {
        crate::turns::protected_dirs(self.store().root())
            .swap_remove(0)
            .display()
            .to_string()
    }

    fn events_list(&self, _: &ClientContext, params: EventsListParams) -> ServiceResult<EventPage> {
        let limit = match params.limit {
            None => exo_store::DEFAULT_PAGE,
            Some(limit @ 1..=MAX_PAGE) => limit as usize,
            Some(_) => return Err(invalid(format!("limit must be between 1 and {MAX_PAGE}"))),
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
        let page = self
            .store()
            .events(&params.agent, &params.conversation, &query)?;
        // A page holds at most MAX_PAGE_BYTES of events (at least one): a
        // page of large events is cut short, and its cursor says where to
        // go on, so no answer grows with the events' size.
        let mut events = Vec::with_capacity(page.events.len());
        let mut bytes = 0;
        let mut cut = false;
        for event in &page.events {
            let event = exo_protocol::Event::from(event);
            let size = serde_json::to_vec(&event).map_or(0, |encoded| encoded.len());
            if !events.is_empty() && bytes + size > MAX_PAGE_BYTES {
                cut = true;
                break;
            }
            bytes += size;
            events.push(event);
        }
        let next_cursor = if cut {
            events.last().map(|event| event.id)
        } else {
            page.next_cursor
        };
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    fn events_get(
        &self,
        _: &ClientContext,
        params: EventsGetParams,
    ) -> ServiceResult<exo_protocol::Event> {
        let event = self
            .store()
            .event(&params.agent, &params.conversation, params.event)?;
        Ok(exo_protocol::Event::from(&event))
    }

    fn artifact_put(
        &self,
        _: &ClientContext,
        params: ArtifactPutParams,
    ) -> ServiceResult<Artifact> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(params.content_base64.as_bytes())
            .map_err(|err| invalid(format!("content_base64 is not base64: {err}")))?;
        let version = self.store().put_artifact(
            &params.agent,
            &params.conversation,
            &params.path,
            &bytes,
            params.media_type.as_deref(),
        )?;
        Ok(convert::artifact(&version))
    }

    fn artifact_get(
        &self,
        _: &ClientContext,
        params: ArtifactGetParams,
    ) -> ServiceResult<ArtifactContent> {
        let (artifact, bytes) = self.store().get_artifact(
            &params.agent,
            &params.conversation,
            &params.path,
            params.version,
        )?;
        Ok(ArtifactContent {
            artifact: convert::artifact(&artifact),
            content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }

    fn artifact_list(
        &self,
        _: &ClientContext,
        params: ArtifactListParams,
    ) -> ServiceResult<ArtifactList> {
        let store = self.store();
        let artifacts = match &params.path {
            Some(path) => store.artifact_versions(&params.agent, &params.conversation, path)?,
            None => store.list_artifacts(&params.agent, &params.conversation)?,
        };
        Ok(ArtifactList {
            artifacts: artifacts.iter().map(convert::artifact).collect(),
        })
    }

    fn secret_set(&self, _: &ClientContext, params: SecretSetParams) -> ServiceResult<Secret> {
        exo_core::validate_name("secret", &params.name).map_err(|err| invalid(err.0))?;
        let scope = self.scope(&params.scope)?;
        let value = match params.kind.unwrap_or(exo_core::SecretKind::ApiKey) {
            exo_core::SecretKind::ApiKey => SecretValue::ApiKey {
                value: params.value,
            },
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
        Ok(convert::secret(&self.store().set_secret(
            scope,
            &params.name,
            &value,
            &key,
        )?))
    }

    fn secret_list(
        &self,
        _: &ClientContext,
        params: exo_protocol::ScopeParams,
    ) -> ServiceResult<SecretList> {
        let secrets = self.store().secrets(self.scope(&params)?)?;
        Ok(SecretList {
            secrets: secrets.iter().map(convert::secret).collect(),
        })
    }

    fn secret_get(&self, _: &ClientContext, params: SecretParams) -> ServiceResult<Secret> {
        let info = self
            .store()
            .secrets(self.scope(&params.scope)?)?
            .into_iter()
            .find(|info| info.name == params.name)
            .ok_or_else(|| {
                ServiceError::from(exo_store::Error::NotFound {
                    what: "secret",
                    key: params.name.clone(),
                })
            })?;
        Ok(convert::secret(&info))
    }

    fn secret_delete(&self, _: &ClientContext, params: SecretParams) -> ServiceResult<Secret> {
        Ok(convert::secret(
            &self
                .store()
                .delete_secret(self.scope(&params.scope)?, &params.name)?,
        ))
    }

    fn model_register(
        &self,
        _: &ClientContext,
        params: ModelRegisterParams,
    ) -> ServiceResult<BindingEntry> {
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

    fn model_list(
        &self,
        _: &ClientContext,
        params: exo_protocol::ScopeParams,
    ) -> ServiceResult<ModelList> {
        let models = self
            .store()
            .bindings(self.scope(&params)?, Some(BindingKind::Model))?;
        Ok(ModelList {
            models: models.iter().map(convert::binding).collect(),
        })
    }

    fn model_get(&self, _: &ClientContext, params: ModelParams) -> ServiceResult<BindingEntry> {
        let entry = self.store().resolve_binding(
            self.scope(&params.scope)?,
            BindingKind::Model,
            &params.name,
        )?;
        Ok(convert::binding(&entry))
    }

    fn model_delete(&self, _: &ClientContext, params: ModelParams) -> ServiceResult<BindingEntry> {
        let entry = self.store().delete_binding(
            self.scope(&params.scope)?,
            BindingKind::Model,
            &params.name,
        )?;
        Ok(convert::binding(&entry))
    }

    fn binding_set(
        &self,
        _: &ClientContext,
        params: BindingSetParams,
    ) -> ServiceResult<BindingEntry> {
        self.set_binding(&params.scope, params.binding)
    }

    fn binding_list(
        &self,
        _: &ClientContext,
        params: BindingListParams,
    ) -> ServiceResult<BindingList> {
        let bindings = self
            .store()
            .bindings(self.scope(&params.scope)?, params.kind)?;
        Ok(BindingList {
            bindings: bindings.iter().map(convert::binding).collect(),
        })
    }

    fn binding_get(&self, _: &ClientContext, params: BindingParams) -> ServiceResult<BindingEntry> {
        let entry =
            self.store()
                .resolve_binding(self.scope(&params.scope)?, params.kind, &params.name)?;
        Ok(convert::binding(&entry))
    }

    fn binding_delete(
        &self,
        _: &ClientContext,
        params: BindingParams,
    ) -> ServiceResult<BindingEntry> {
        let entry =
            self.store()
                .delete_binding(self.scope(&params.scope)?, params.kind, &params.name)?;
        Ok(convert::binding(&entry))
    }

    fn set_binding(
        &self,
        scope: &exo_protocol::ScopeParams,
        binding: Binding,
    ) -> ServiceResult<BindingEntry> {
        let scope = self.scope(scope)?;
        Ok(convert::binding(&self.store().set_binding(scope, binding)?))
    }

    /// Begins a turn: the turn-start snapshot is recorded in the same
    /// transaction as `turn_started`, its objects durable before that
    /// commits.
    pub(crate) fn begin_turn(
        &self,
        agent: &str,
        conversation: &str,
        input: EventData,
    ) -> ServiceResult<exo_store::TurnHandle> {
        let store = self.store();
        let record = store.conversation(agent, conversation)?;
        if let Some(turn) = record.open_turn {
            return Err(exo_store::Error::Busy(format!(
                "turn {turn} is already in progress in conversation {}",
                record.slug
            ))
            .into());
        }
        self.with_turn_snapshot(&record, exo_core::SnapshotReason::TurnStart, |extra| {
            Ok(store.begin_turn_with(agent, conversation, input, extra)?)
        })
    }

    /// Ends a turn with its turn-end snapshot; idempotent (an ended turn
    /// keeps its status and records nothing).
    pub(crate) fn finish_turn(
        &self,
        turn: exo_core::TurnId,
        status: exo_core::TurnStatus,
    ) -> ServiceResult<exo_core::TurnStatus> {
        let store = self.store();
        let record = store.turn(turn)?;
        match record.status {
            Some(_) => Ok(store.finish_turn_with(turn, status, Vec::new())?),
            None => {
                let conversation = store.conversation_by_id(record.conversation)?;
                let snapshotted = self.with_turn_snapshot(
                    &conversation,
                    exo_core::SnapshotReason::TurnEnd,
                    |extra| Ok(store.finish_turn_with(turn, status, extra)?),
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
                        Ok(store.finish_turn_with(turn, status, Vec::new())?)
                    }
                }
            }
        }
    }

    /// Closes the turns a client began and left open, as interrupted, and
    /// revokes the gateway tokens it minted: the client is gone.
    pub fn interrupt_turns(&self, client: &ClientContext) {
        // Its gateway tokens go with it.
        let tokens: Vec<String> = client
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for token in tokens {
            self.gateway_revoke(&token);
        }
        let turns: Vec<_> = client
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

/// How long a sandbox method waits for Docker.
const DOCKER_ANSWER: std::time::Duration = std::time::Duration::from_secs(30);
