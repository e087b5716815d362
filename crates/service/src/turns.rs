//! `turn/run`: the built-in executor driven through the service. The
//! service is the executor's [`Substrate`] (the same begin, append and
//! finish as `turn/begin`, `turn/append`, `turn/finish`, plus the model's
//! key, which never leaves this process), and each running turn has an
//! [`Observer`] that turns deltas, recorded events and approval questions
//! into notifications to the client that asked for the turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use exo_core::{
    ApprovalDecision, BindingKind, ContentPart, ConversationId, Event, EventData, EventId,
    SecretValue, TurnId, TurnStatus,
};
use exo_executor::{
    ApprovalAsk, Begun, CancellationToken, Delta, ModelAccess, Observer, Setup, Substrate,
    SubstrateError, TurnRequest,
};
use exo_protocol::methods::*;
use exo_protocol::{ErrorCode, Method};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::convert::{self, simple_error, store_error};
use crate::Service;

/// A model binding resolved for a conversation, its key opened.
pub(crate) struct ResolvedModel {
    pub(crate) provider: exo_core::Provider,
    pub(crate) base_url: String,
    pub(crate) upstream: String,
    pub(crate) key: Option<exo_model::ApiKey>,
    pub(crate) context_window: Option<u64>,
}

/// The turns running in this process and the approvals they wait for.
#[derive(Default)]
pub(crate) struct Running {
    /// Turns that have begun, for `turn/cancel`.
    turns: Mutex<HashMap<TurnId, CancellationToken>>,
    approvals: Mutex<HashMap<(TurnId, String), Waiting>>,
    /// How many questions were asked, to list them in order.
    asked: std::sync::atomic::AtomicU64,
    /// Every `turn/run` in progress, begun or still setting up, for
    /// shutdown.
    runs: Mutex<Runs>,
}

/// A question a running turn waits on: who answers it, and what it asks.
struct Waiting {
    answer: oneshot::Sender<ApprovalDecision>,
    /// The order it was asked in.
    asked: u64,
    /// What it asks (always known once the turn has begun).
    question: Option<PendingApproval>,
}

#[derive(Default)]
struct Runs {
    stopping: bool,
    next: u64,
    tokens: HashMap<u64, CancellationToken>,
}

impl Running {
    /// Cancels every running turn and refuses new ones: the daemon is
    /// stopping.
    pub(crate) fn cancel_all(&self) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.stopping = true;
        for token in runs.tokens.values() {
            token.cancel();
        }
    }

    /// Registers a `turn/run`, unless the daemon is stopping; the guard
    /// unregisters it.
    fn register(&self, cancel: &CancellationToken) -> Result<RunGuard<'_>, crate::ServiceError> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if runs.stopping {
            return Err(simple_error(
                ErrorCode::Busy,
                "the daemon is stopping: no new turns",
            ));
        }
        let id = runs.next;
        runs.next += 1;
        runs.tokens.insert(id, cancel.clone());
        Ok(RunGuard { running: self, id })
    }
}

struct RunGuard<'a> {
    running: &'a Running,
    id: u64,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.running
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tokens
            .remove(&self.id);
    }
}

/// A substrate failure carried back as the service's own error.
fn to_substrate(error: crate::ServiceError) -> SubstrateError {
    Box::new(error)
}

/// Reads a substrate or setup failure as a JSON-RPC error: the service's
/// own errors keep their code, a bad model or workspace configuration is
/// invalid params.
fn from_substrate(error: SubstrateError) -> crate::ServiceError {
    match error.downcast::<crate::ServiceError>() {
        Ok(error) => *error,
        Err(other) => {
            let configuration =
                other.is::<exo_model::Error>() || other.is::<exo_tools::ToolError>();
            simple_error(
                if configuration {
                    ErrorCode::InvalidParams
                } else {
                    ErrorCode::Internal
                },
                other.to_string(),
            )
        }
    }
}

impl Substrate for Service {
    fn setup(&self, agent: &str, conversation: &str) -> Result<Setup, SubstrateError> {
        self.turn_setup(agent, conversation).map_err(to_substrate)
    }

    fn gateway_token(
        &self,
        agent: &str,
        conversation: ConversationId,
    ) -> Result<exo_executor::GatewayAccess, SubstrateError> {
        let minted = self
            .mint_gateway_token(agent, &conversation.to_string())
            .map_err(to_substrate)?;
        Ok(exo_executor::GatewayAccess {
            token: minted.token,
            api: minted.api,
            openai_base_url: minted.openai_base_url,
            anthropic_base_url: minted.anthropic_base_url,
        })
    }

    fn gateway_expect(&self, conversation: ConversationId, history: Option<Vec<exo_model::Item>>) {
        self.expect_history(conversation, history);
    }

    fn gateway_revoke(&self, token: &str) -> bool {
        let live = Service::gateway_revoke(self, token);
        self.gateway_settle(token, std::time::Duration::from_secs(5));
        live
    }

    fn events(
        &self,
        conversation: ConversationId,
        after: Option<EventId>,
    ) -> Result<Vec<Event>, SubstrateError> {
        let store = self.store();
        let record = store
            .conversation_by_id(conversation)
            .map_err(|err| to_substrate(store_error(err)))?;
        let (agent, conversation) = (record.agent.to_string(), record.id.to_string());
        let mut events = Vec::new();
        let mut cursor = after;
        loop {
            let query = exo_store::EventQuery {
                after: cursor,
                limit: 10_000,
                ..Default::default()
            };
            let page = store
                .events(&agent, &conversation, &query)
                .map_err(|err| to_substrate(store_error(err)))?;
            events.extend(page.events);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(events),
            }
        }
    }

    fn latest_compaction(
        &self,
        conversation: ConversationId,
        before: Option<EventId>,
    ) -> Result<Option<Event>, SubstrateError> {
        let store = self.store();
        store
            .conversation_by_id(conversation)
            .and_then(|record| {
                store.latest_compaction(&record.agent.to_string(), &record.id.to_string(), before)
            })
            .map_err(|err| to_substrate(store_error(err)))
    }

    fn begin_turn(
        &self,
        agent: &str,
        conversation: &str,
        input: EventData,
    ) -> Result<Begun, SubstrateError> {
        let handle = Service::begin_turn(self, agent, conversation, input).map_err(to_substrate)?;
        Ok(Begun {
            turn: handle.id(),
            session: handle.session(),
            events: handle.started_events().to_vec(),
        })
    }

    fn artifact(
        &self,
        conversation: ConversationId,
        path: &str,
        version: Option<u64>,
    ) -> Result<Vec<u8>, SubstrateError> {
        let store = self.store();
        let read = store.conversation_by_id(conversation).and_then(|record| {
            store.get_artifact(
                &record.agent.to_string(),
                &record.id.to_string(),
                path,
                version,
            )
        });
        read.map(|(_, bytes)| bytes)
            .map_err(|err| to_substrate(store_error(err)))
    }

    fn append(&self, turn: TurnId, events: Vec<EventData>) -> Result<Vec<Event>, SubstrateError> {
        self.store()
            .append_to_turn(turn, events, None)
            .map_err(|err| to_substrate(store_error(err)))
    }

    fn finish_turn(&self, turn: TurnId, status: TurnStatus) -> Result<TurnStatus, SubstrateError> {
        Service::finish_turn(self, turn, status).map_err(to_substrate)
    }

    fn scoped_call(
        &self,
        conversation: ConversationId,
        method: &str,
        mut params: Value,
    ) -> Result<Value, SubstrateError> {
        fn typed<M: crate::Call>(
            service: &Service,
            params: Value,
        ) -> Result<Value, crate::ServiceError> {
            let params: M::Params = serde_json::from_value(params).map_err(|err| {
                simple_error(
                    ErrorCode::InvalidParams,
                    format!("invalid params for {}: {err}", M::NAME),
                )
            })?;
            let result = service.call::<M>(params)?;
            serde_json::to_value(result)
                .map_err(|err| simple_error(ErrorCode::Internal, err.to_string()))
        }
        let refusal = |error: crate::ServiceError| -> SubstrateError {
            Box::new(exo_executor::Refusal {
                code: error.code.code(),
                name: error.code.name().to_string(),
                message: error.message,
            })
        };
        let record = self
            .store()
            .conversation_by_id(conversation)
            .map_err(|err| refusal(store_error(err)))?;
        let Value::Object(fields) = &mut params else {
            return Err(refusal(simple_error(
                ErrorCode::InvalidParams,
                format!("invalid params for {method}: expected an object"),
            )));
        };
        fields.insert("agent".into(), Value::from(record.agent.to_string()));
        fields.insert("conversation".into(), Value::from(record.id.to_string()));
        match method {
            EventsList::NAME => typed::<EventsList>(self, params),
            EventsGet::NAME => typed::<EventsGet>(self, params),
            ArtifactPut::NAME => typed::<ArtifactPut>(self, params),
            ArtifactGet::NAME => typed::<ArtifactGet>(self, params),
            ArtifactListMethod::NAME => typed::<ArtifactListMethod>(self, params),
            ConversationGet::NAME => typed::<ConversationGet>(self, params),
            ConversationTreeMethod::NAME => typed::<ConversationTreeMethod>(self, params),
            SnapshotListMethod::NAME => typed::<SnapshotListMethod>(self, params),
            SnapshotDiffMethod::NAME => typed::<SnapshotDiffMethod>(self, params),
            other => Err(simple_error(
                ErrorCode::MethodNotFound,
                format!("method not found: {other}"),
            )),
        }
        .map_err(refusal)
    }

    fn allow_always(&self, agent: &str, tool: &str) -> Result<(), SubstrateError> {
        self.store()
            .update_agent_config(agent, |mut config| {
                let mut allow: Vec<Value> = config
                    .get("allow")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !allow.iter().any(|known| known.as_str() == Some(tool)) {
                    allow.push(Value::from(tool));
                }
                config.insert("allow".into(), Value::Array(allow));
                Ok(config)
            })
            .map(|_| ())
            .map_err(|err| to_substrate(store_error(err)))
    }
}

impl Service {
    /// Resolves what a turn needs: the agent's instructions and approval
    /// policy, the conversation's workspace, the model and its key.
    fn turn_setup(&self, agent: &str, conversation: &str) -> Result<Setup, crate::ServiceError> {
        let store = self.store();
        let agent_record = store.agent(agent).map_err(store_error)?;
        let record = store
            .conversation(agent, conversation)
            .map_err(store_error)?;
        if let Some(turn) = record.open_turn {
            return Err(store_error(exo_store::Error::Busy(format!(
                "turn {turn} is already in progress in conversation {}",
                record.slug
            ))));
        }
        let invalid = |message: String| simple_error(ErrorCode::InvalidParams, message);
        let config = exo_core::AgentConfig::from_map(&agent_record.config)
            .map_err(|err| invalid(format!("agent {}: {err}", agent_record.slug)))?;
        let model = config.model.as_deref().ok_or_else(|| {
            crate::convert::rpc_error(
                ErrorCode::InvalidParams,
                format!("agent {} has no model", agent_record.slug),
                exo_protocol::ErrorData {
                    what: Some("agent_model".into()),
                    key: Some(agent_record.slug.clone()),
                    ..Default::default()
                },
            )
        })?;
        let approval = config.approval;
        let instructions = config.instructions.clone();
        let resolved = self.resolve_model(agent, conversation, model)?;
        let ResolvedModel {
            provider,
            base_url,
            upstream,
            key,
            context_window,
        } = resolved;
        let mut endpoint = exo_model::Endpoint::for_binding(provider, &base_url);
        if let Some(key) = key {
            endpoint = endpoint.with_api_key(key);
        }
        // Started servers run in the conversation's executor directory,
        // never in the workspace, which the agent's commands can write
        // (and so plant what `npx` or a relative path would run).
        let mcp_servers = self.mcp_servers(
            agent_record.id,
            record.id,
            Some(
                store
                    .root()
                    .join("executors")
                    .join(record.id.to_string())
                    .join("mcp"),
            ),
        )?;
        let sandbox_snapshot = self.sandbox_snapshot(agent, conversation)?;
        let http_credentials = self.http_credentials(agent_record.id, record.id)?;
        Ok(Setup {
            http_credentials,
            sandbox_snapshot,
            root: protected_dirs(store.root()).swap_remove(0),
            mcp_servers,
            sandbox: config.sandbox,
            network: config.network,
            sandbox_fallback: config.sandbox_fallback,
            image: config.image.clone(),
            agent: agent_record.id.to_string(),
            harness: config.harness,
            module: config.module.map(Into::into),
            allow: config.allow,
            conversation: record.id,
            instructions,
            approval,
            workspace: record.workspace.map(Into::into),
            protected: protected_dirs(store.root()),
            state_dir: store.root().join("executors").join(record.id.to_string()),
            model: ModelAccess {
                upstream,
                endpoint,
                context_window: context_window.or(provider.default_context_window()),
            },
        })
    }

    /// The MCP servers bound for a conversation (`binding mcp` at its
    /// scope, its agent's and the root; the narrowest of a name wins),
    /// their secrets opened.
    pub(crate) fn mcp_servers(
        &self,
        agent: exo_core::AgentId,
        conversation: ConversationId,
        cwd: Option<std::path::PathBuf>,
    ) -> Result<Vec<exo_executor::mcp::McpServer>, crate::ServiceError> {
        use exo_executor::mcp::{McpServer, McpTransport};
        let mut bound = self.narrowest_bindings(agent, conversation, BindingKind::Mcp)?;
        bound.sort_by(|a, b| a.name().cmp(b.name()));
        let mut servers = Vec::new();
        for binding in bound {
            let exo_core::Binding::Mcp {
                name,
                url,
                command,
                secret,
                env,
                header,
            } = binding
            else {
                continue;
            };
            let value = match &secret {
                Some(secret) => {
                    Some(self.open_secret(conversation, secret, &format!("MCP server {name}"))?)
                }
                None => None,
            };
            let transport = match url {
                Some(url) => McpTransport::Http {
                    url,
                    headers: match (value, header) {
                        (Some(value), Some(header)) => vec![(header, value)],
                        (Some(value), None) => {
                            vec![("authorization".to_owned(), format!("Bearer {value}"))]
                        }
                        (None, _) => Vec::new(),
                    },
                },
                None => McpTransport::Stdio {
                    command,
                    env: match (value, env) {
                        (Some(value), Some(env)) => vec![(env, value)],
                        _ => Vec::new(),
                    },
                    cwd: cwd.clone(),
                },
            };
            servers.push(McpServer { name, transport });
        }
        Ok(servers)
    }

    /// The newest sandbox snapshot on a conversation's history, which its
    /// container's state must be; a snapshot names one of exo's own
    /// images, or is not taken.
    pub(crate) fn sandbox_snapshot(
        &self,
        agent: &str,
        conversation: &str,
    ) -> Result<Option<String>, crate::ServiceError> {
        Ok(self
            .store()
            .latest_sandbox_snapshot(agent, conversation)
            .map_err(store_error)?
            .and_then(|event| match event.data {
                exo_core::EventData::Custom { payload, .. } => payload["image"]
                    .as_str()
                    .filter(|image| {
                        image.starts_with(&format!("{}:", exo_sandbox::docker::SNAPSHOT_REPOSITORY))
                    })
                    .map(str::to_owned),
                _ => None,
            }))
    }

    /// The bindings of `kind` a conversation sees: at its scope, its
    /// agent's and the root, the narrowest of a name winning.
    fn narrowest_bindings(
        &self,
        agent: exo_core::AgentId,
        conversation: ConversationId,
        kind: BindingKind,
    ) -> Result<Vec<exo_core::Binding>, crate::ServiceError> {
        use exo_core::Scope;
        let store = self.store();
        let mut bound: Vec<exo_core::Binding> = Vec::new();
        for scope in [
            Scope::Conversation(conversation),
            Scope::Agent(agent),
            Scope::Root,
        ] {
            for entry in store.bindings(scope, Some(kind)).map_err(store_error)? {
                if !bound.iter().any(|b| b.name() == entry.binding.name()) {
                    bound.push(entry.binding);
                }
            }
        }
        Ok(bound)
    }

    /// The value of secret `name` as the conversation resolves it (an
    /// OAuth secret's access token); an error names `what` needs it.
    fn open_secret(
        &self,
        conversation: ConversationId,
        name: &str,
        what: &str,
    ) -> Result<String, crate::ServiceError> {
        let key = self.key()?;
        let (_, value) = self
            .store()
            .reveal_secret(exo_core::Scope::Conversation(conversation), name, &key)
            .map_err(|err| {
                simple_error(
                    ErrorCode::InvalidParams,
                    format!("{what}: {}", store_error(err).message),
                )
            })?;
        Ok(match value {
            SecretValue::ApiKey { value } => value,
            SecretValue::Oauth { access_token, .. } => access_token,
        })
    }

    /// The HTTP credentials bound for a conversation (`binding http` at
    /// its scope, its agent's and the root; the narrowest of a host wins),
    /// their secrets opened.
    pub(crate) fn http_credentials(
        &self,
        agent: exo_core::AgentId,
        conversation: ConversationId,
    ) -> Result<Vec<exo_sandbox::egress::Credential>, crate::ServiceError> {
        let bound = self.narrowest_bindings(agent, conversation, BindingKind::Http)?;
        let mut credentials = Vec::new();
        for binding in bound {
            let exo_core::Binding::Http {
                name,
                secret,
                plain_http,
                ..
            } = &binding
            else {
                continue;
            };
            let value = self.open_secret(conversation, secret, &format!("HTTP binding {name}"))?;
            if value.chars().any(|c| c.is_control()) {
                return Err(simple_error(
                    ErrorCode::InvalidParams,
                    format!("HTTP binding {name}: the secret {secret} holds a control character, which no header can carry"),
                ));
            }
            let Some((header, header_value)) = binding.http_header(&value) else {
                continue;
            };
            let (host, port) = match name.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().ok()),
                None => (name.clone(), None),
            };
            credentials.push(exo_sandbox::egress::Credential {
                host,
                port,
                header,
                value: header_value,
                secret: value,
                tls: !plain_http,
            });
        }
        Ok(credentials)
    }

    /// The model binding `model` names from the conversation's scope,
    /// with its key opened.
    pub(crate) fn resolve_model(
        &self,
        agent: &str,
        conversation: &str,
        model: &str,
    ) -> Result<ResolvedModel, crate::ServiceError> {
        let store = self.store();
        let scope = store
            .scope(Some(agent), Some(conversation))
            .map_err(store_error)?;
        let binding = match store.resolve_binding(scope, BindingKind::Model, model) {
            Err(exo_store::Error::NotFound { .. }) => {
                return Err(convert::rpc_error(
                    ErrorCode::NotFound,
                    format!("model {model:?} not found"),
                    exo_protocol::ErrorData {
                        what: Some("model".into()),
                        key: Some(model.to_owned()),
                        ..Default::default()
                    },
                ))
            }
            other => other.map_err(store_error)?,
        };
        let exo_core::Binding::Model {
            provider,
            base_url,
            upstream,
            secret,
            context_window,
            ..
        } = binding.binding
        else {
            return Err(simple_error(
                ErrorCode::Internal,
                "a model binding is not a model",
            ));
        };
        let key = match secret {
            Some(secret) => {
                let key = self.key()?;
                let (_, value) = store
                    .reveal_secret(scope, &secret, &key)
                    .map_err(store_error)?;
                Some(exo_model::ApiKey::from(match value {
                    SecretValue::ApiKey { value } => value,
                    SecretValue::Oauth { access_token, .. } => access_token,
                }))
            }
            None => None,
        };
        Ok(ResolvedModel {
            provider,
            base_url,
            upstream,
            key,
            context_window,
        })
    }

    /// Refuses to let a caller record in, or finish, a turn an executor of
    /// this process is running (`turn/run`): the turn is the executor's.
    pub(crate) fn not_an_executors_turn(&self, turn: TurnId) -> Result<(), crate::ServiceError> {
        let running = self
            .inner
            .running
            .turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&turn);
        if running {
            return Err(simple_error(
                ErrorCode::Busy,
                format!(
                    "turn {turn} is run by an executor here (turn/run): only it records in the turn; turn/cancel stops it"
                ),
            ));
        }
        Ok(())
    }

    /// `turn/cancel`: cancels a turn running here.
    pub(crate) fn cancel_turn(&self, turn: TurnId) -> Result<Empty, crate::ServiceError> {
        let running = self
            .inner
            .running
            .turns
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match running.get(&turn) {
            Some(token) => {
                token.cancel();
                Ok(Empty {})
            }
            None => Err(not_running("turn", turn.to_string())),
        }
    }

    /// `approval/list`: the questions running turns wait on, of one
    /// conversation or all, oldest first.
    pub(crate) fn list_approvals(
        &self,
        params: ApprovalListParams,
    ) -> Result<ApprovalList, crate::ServiceError> {
        let conversation = match (&params.agent, &params.conversation) {
            (Some(agent), Some(conversation)) => Some(
                self.store()
                    .conversation(agent, conversation)
                    .map_err(store_error)?
                    .id,
            ),
            (None, None) => None,
            _ => {
                return Err(simple_error(
                    ErrorCode::InvalidParams,
                    "approval/list takes both agent and conversation, or neither",
                ))
            }
        };
        let approvals = self
            .inner
            .running
            .approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut pending: Vec<(u64, PendingApproval)> = approvals
            .values()
            .filter_map(|waiting| Some((waiting.asked, waiting.question.clone()?)))
            .filter(|(_, question)| conversation.is_none_or(|c| question.conversation == c))
            .collect();
        drop(approvals);
        pending.sort_by_key(|(asked, _)| *asked);
        Ok(ApprovalList {
            approvals: pending.into_iter().map(|(_, question)| question).collect(),
        })
    }

    /// `approval/respond`: answers a question a running turn asked.
    pub(crate) fn respond_approval(
        &self,
        params: ApprovalRespondParams,
    ) -> Result<Empty, crate::ServiceError> {
        let decision = match (params.decision, params.approve) {
            (Some(decision), _) => decision,
            (None, Some(true)) => ApprovalDecision::AllowOnce,
            (None, Some(false)) => ApprovalDecision::Deny,
            (None, None) => {
                return Err(simple_error(
                    ErrorCode::InvalidParams,
                    "approval/respond needs a decision (or approve: true or false)",
                ))
            }
        };
        let waiting = self
            .inner
            .running
            .approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(params.turn, params.call_id.clone()));
        match waiting {
            Some(waiting) => {
                // The turn may have been cancelled meanwhile; then no one
                // is waiting, and that is fine.
                let _ = waiting.answer.send(decision);
                Ok(Empty {})
            }
            None => Err(not_running(
                "approval",
                format!("{}/{}", params.turn, params.call_id),
            )),
        }
    }

    /// Runs a turn with the agent's executor, telling `notify` what
    /// happens as it happens. Returns once every notice for the turn has
    /// been handed to `notify`'s receiver. `gone` fires when the client can
    /// answer no approval question any more; `cancel` cancels the turn.
    pub async fn run_turn(
        &self,
        params: TurnRunParams,
        notify: mpsc::UnboundedSender<TurnNotice>,
        gone: CancellationToken,
        cancel: CancellationToken,
    ) -> Result<TurnRunResult, crate::ServiceError> {
        if params.max_rounds == Some(0) {
            return Err(simple_error(
                ErrorCode::InvalidParams,
                "max_rounds must be at least 1",
            ));
        }
        let input = content(params.input)?;
        let empty = input.iter().all(|part| match part {
            ContentPart::Text { text } => text.trim().is_empty(),
            _ => false,
        });
        if empty {
            return Err(simple_error(
                ErrorCode::InvalidParams,
                "input must not be empty",
            ));
        }
        let _registered = self.inner.running.register(&cancel)?;
        let request = TurnRequest {
            agent: params.agent,
            conversation: params.conversation,
            input,
            max_rounds: params.max_rounds,
        };
        let observer = Arc::new(Notifier {
            service: self.clone(),
            notify,
            can_ask: params.approvals.unwrap_or(true),
            gone,
            cancel: cancel.clone(),
            turn: Mutex::new(None),
            conversation: Mutex::new(None),
        });
        // The agent's harness, read at each turn: an agent switched to
        // another one goes on under it.
        let service = self.clone();
        let agent = request.agent.clone();
        let harness = tokio::task::spawn_blocking(move || {
            service.store().agent(&agent).map(|agent| {
                exo_core::AgentConfig::from_map(&agent.config)
                    .map(|config| config.harness)
                    .unwrap_or_default()
            })
        })
        .await
        .map_err(|err| simple_error(ErrorCode::Internal, err.to_string()))?
        .map_err(store_error)?;
        let executor = self.inner.executors.get(harness)?;
        let substrate: Arc<dyn Substrate> = Arc::new(self.clone());
        let watched = Arc::clone(&observer);
        let run = executor.run_turn(substrate, request, observer, cancel);
        let outcome = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(outcome) => outcome.map_err(from_substrate)?,
            Err(_) => {
                // A bug in the executor must not leave the turn open (the
                // conversation would stay busy) nor the caller unanswered.
                let begun = *watched.turn.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(turn) = begun {
                    let service = self.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        service.finish_turn(turn, TurnStatus::Failed)
                    })
                    .await;
                }
                return Err(simple_error(
                    ErrorCode::Internal,
                    "internal error: the executor panicked; the turn was closed as failed",
                ));
            }
        };
        Ok(TurnRunResult {
            turn: outcome.turn,
            session: outcome.session,
            status: outcome.status,
            text: outcome.text,
            error: outcome.error,
            events: convert::events(&outcome.events),
        })
    }
}

/// What no tool may touch: exo's root (its store, locks and snapshots) and
/// the directory of the encryption key file, as absolute paths (a relative
/// root is relative to this process, not to the workspace).
pub(crate) fn protected_dirs(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![std::fs::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_path_buf())];
    if let Some(key_dir) = exo_secrets::default_key_file()
        .ok()
        .and_then(|file| file.parent().map(std::path::Path::to_path_buf))
    {
        // As given and as it really is: reached through a symlink, the
        // directory must be hidden where it lies.
        if let Ok(real) = std::fs::canonicalize(&key_dir) {
            if real != key_dir {
                dirs.push(real);
            }
        }
        dirs.push(key_dir);
    }
    dirs
}

fn not_running(what: &str, key: String) -> crate::ServiceError {
    convert::rpc_error(
        ErrorCode::NotFound,
        format!("{what} {key} is not waiting here: no turn/run in this process has it"),
        exo_protocol::ErrorData {
            what: Some(what.into()),
            key: Some(key),
            ..Default::default()
        },
    )
}

/// What a running turn tells the client that runs it, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnNotice {
    /// A piece of the model's answer.
    Delta(TurnDelta),
    /// Events the turn recorded.
    Events(TurnEvents),
    /// A question: may this call run? Answered with `approval/respond`.
    Approval(ApprovalRequest),
}

/// A running turn's observer: notices to the client that ran it.
struct Notifier {
    service: Service,
    notify: mpsc::UnboundedSender<TurnNotice>,
    can_ask: bool,
    /// Fires when the client can no longer be reached.
    gone: CancellationToken,
    cancel: CancellationToken,
    turn: Mutex<Option<TurnId>>,
    /// The conversation, once the turn has begun.
    conversation: Mutex<Option<ConversationId>>,
}

impl Notifier {
    fn send(&self, notice: TurnNotice) {
        // An error means the client's side of the turn is gone; the turn
        // goes on, it is the service's.
        let _ = self.notify.send(notice);
    }
}

impl Observer for Notifier {
    fn delta(&self, turn: TurnId, delta: &Delta) {
        let mut params = TurnDelta {
            turn,
            watch: None,
            text: None,
            reasoning: None,
            tool_call: None,
        };
        match delta {
            Delta::Text(text) => params.text = Some(text.clone()),
            Delta::Reasoning(text) => params.reasoning = Some(text.clone()),
            Delta::ToolCall { call_id, name } => {
                params.tool_call = Some(ToolCallStart {
                    call_id: call_id.clone(),
                    name: name.clone(),
                })
            }
        }
        if let Some(conversation) = *self.conversation.lock().unwrap_or_else(|p| p.into_inner()) {
            self.service
                .inner
                .hub
                .publish_delta(conversation, params.clone());
        }
        self.send(TurnNotice::Delta(params));
    }

    fn recorded(&self, turn: TurnId, events: &[Event]) {
        let mut registered = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        if registered.is_none() {
            // The turn's events name its conversation: its watchers get
            // the deltas too.
            if let Some(event) = events.first() {
                *self.conversation.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(event.conversation);
            }
            // The turn has begun: from now on `turn/cancel` can reach it.
            *registered = Some(turn);
            self.service
                .inner
                .running
                .turns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(turn, self.cancel.clone());
        }
        if !events.is_empty() {
            self.send(TurnNotice::Events(TurnEvents {
                turn,
                events: convert::events(events),
            }));
        }
    }

    fn approve(&self, ask: ApprovalAsk) -> BoxFuture<'static, Option<ApprovalDecision>> {
        if !self.can_ask || self.gone.is_cancelled() {
            return Box::pin(async { None });
        }
        let (answer, answered) = oneshot::channel();
        let key = (ask.turn, ask.call_id.clone());
        let request = ApprovalRequest {
            turn: ask.turn,
            watch: None,
            call_id: ask.call_id,
            tool: ask.tool,
            arguments: ask.arguments,
        };
        let conversation = *self.conversation.lock().unwrap_or_else(|p| p.into_inner());
        let running = &self.service.inner.running;
        let waiting = Waiting {
            answer,
            asked: running
                .asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            question: conversation.map(|conversation| PendingApproval {
                turn: request.turn,
                conversation,
                call_id: request.call_id.clone(),
                tool: request.tool.clone(),
                arguments: request.arguments.clone(),
            }),
        };
        running
            .approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), waiting);
        // Watchers of the conversation (an editor showing it) may answer
        // too; the first answer counts.
        if let Some(conversation) = conversation {
            self.service
                .inner
                .hub
                .publish_approval(conversation, request.clone());
        }
        self.send(TurnNotice::Approval(request));
        let gone = self.gone.clone();
        let service = self.service.clone();
        Box::pin(async move {
            let answer = tokio::select! {
                answer = answered => answer.ok(),
                () = gone.cancelled() => None,
            };
            service
                .inner
                .running
                .approvals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            answer
        })
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let Some(turn) = *self.turn.lock().unwrap_or_else(|p| p.into_inner()) else {
            return;
        };
        let running = &self.service.inner.running;
        running
            .turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&turn);
        running
            .approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(waiting, _), _| *waiting != turn);
    }
}

/// The content of a turn's input, checked (an image must be an image type
/// with base64 data) before anything is done with it.
pub(crate) fn content(input: TurnInput) -> Result<Vec<ContentPart>, crate::ServiceError> {
    let parts = match input {
        TurnInput::Text(text) => vec![ContentPart::Text { text }],
        TurnInput::Parts(parts) => parts,
    };
    for (index, part) in parts.iter().enumerate() {
        part.validate().map_err(|err| {
            simple_error(
                ErrorCode::InvalidParams,
                format!("content part {}: {err}", index + 1),
            )
        })?;
    }
    Ok(parts)
}
