//! A runner: the process that runs one conversation's turns for an
//! out-of-process executor, and exo's side of its connection, which serves
//! it exo's model, tools and approvals (spec/harness.md, "Runner to exo").
//!
//! The connection is the runner's capability: every request acts on the
//! runner's conversation, and the turn-scoped ones on the turn in progress,
//! whatever the params say; params naming anything else are refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exo_core::{ContentPart, ConversationId, EventData};
use exo_executor::{Refusal, Substrate, SubstrateError, ToolCall, TurnHost};
use exo_protocol::harness::*;
use exo_protocol::methods::AppendResult;
use exo_protocol::{Method, Notification};
use exo_rpc::message::{ErrorObject, Json, Request};
use exo_rpc::peer::{Context, Handler, Options, Peer, PeerHandle};
use exo_rpc::Framing;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use crate::runtime::{start_error, Runtime, LOAD_TIMEOUT};

/// How long a runner may take to exit once told to.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Who the runner runs for.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub agent: exo_core::AgentId,
    pub agent_slug: String,
    pub agent_name: String,
    pub instructions: Option<String>,
    pub conversation: ConversationId,
    pub conversation_slug: String,
    pub workspace: Option<PathBuf>,
    /// Variables the runner gets beyond the allow-listed ones.
    pub env: RunnerEnv,
}

/// Variables for a runner's environment; their values never printed.
#[derive(Clone, Default)]
pub(crate) struct RunnerEnv(pub Vec<(std::ffi::OsString, std::ffi::OsString)>);

impl std::fmt::Debug for RunnerEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// A turn in progress on a runner.
pub(crate) struct Scope {
    pub host: Arc<TurnHost>,
    /// The substrate, for the requests that read the conversation. Held
    /// only during a turn: a warm runner keeps no handle on the service,
    /// so the service (and its store) can close.
    pub substrate: Arc<dyn Substrate>,
    /// Cancels what exo does for the turn (a model call, a shell command):
    /// the turn was cancelled, or the runner is gone.
    pub cancel: CancellationToken,
    /// The turn's round limit, which exo enforces whatever the runner
    /// counts: at most this many recorded `model/complete` calls, and as
    /// many unrecorded ones.
    pub max_rounds: u32,
    /// Recorded and unrecorded `model/complete` calls begun so far.
    pub calls: [std::sync::atomic::AtomicU32; 2],
}

impl Scope {
    /// Takes one model call of the turn's budget (recorded or not), or
    /// refuses it when the budget is spent.
    fn take_call(&self, record: bool) -> Result<(), ErrorObject> {
        let counter = &self.calls[usize::from(!record)];
        let taken = counter
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| (n < self.max_rounds).then_some(n + 1),
            )
            .is_ok();
        if taken {
            return Ok(());
        }
        let kind = if record { "recorded" } else { "unrecorded" };
        let n = self.max_rounds;
        Err(ErrorObject::new(
            HarnessErrorCode::MaxRounds.code(),
            format!(
                "stopped after {n} {kind} model call{}: the turn's round limit",
                if n == 1 { "" } else { "s" }
            ),
        )
        .with_data(serde_json::json!({
            "code": HarnessErrorCode::MaxRounds.name(),
            "max_rounds": n,
            "recorded": record,
        })))
    }
}

/// A running runner.
pub(crate) struct Runner {
    pub identity: Identity,
    pub module: PathBuf,
    child: Mutex<Option<tokio::process::Child>>,
    group: i32,
    peer: Peer,
    pub handle: PeerHandle,
    pub served: Arc<Served>,
    /// One turn at a time.
    pub busy: tokio::sync::Mutex<()>,
    last_used: Mutex<Instant>,
}

impl Runner {
    /// Starts a runner for `module` and loads the module in it.
    pub async fn start(module: &Path, identity: Identity) -> Result<Arc<Runner>, String> {
        let runtime = Runtime::locate(module)?;
        let cwd = identity
            .workspace
            .clone()
            .filter(|dir| dir.is_dir())
            .or_else(|| module.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"));
        // A runner dies with exo, however exo dies: its group is the
        // reaper's to kill.
        exo_tools::reaper::ready().map_err(|err| format!("cannot guard the runner: {err}"))?;
        let mut command = tokio::process::Command::from(runtime.command(&cwd));
        command.envs(identity.env.0.iter().map(|(name, value)| (name, value)));
        command.kill_on_drop(true);
        let mut child = command.spawn().map_err(|err| start_error(&err))?;
        let group = child.id().map(|pid| pid as i32).unwrap_or_default();
        if let Err(err) = exo_tools::reaper::guard(group) {
            let _ = child.start_kill();
            return Err(format!("cannot guard the runner: {err}"));
        }
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let conversation = identity.conversation;
        tokio::spawn(async move {
            // What a module prints goes to exo's log, never to a terminal.
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "exo::runner", %conversation, "{line}");
            }
        });
        let served = Arc::new(Served {
            identity: identity.clone(),
            scope: Mutex::new(None),
        });
        let options = Options {
            framing: Some(Framing::Ndjson),
            ..Options::default()
        };
        let peer = Peer::spawn(
            stdout,
            stdin,
            Arc::clone(&served) as Arc<dyn Handler>,
            options,
        );
        let runner = Arc::new(Runner {
            identity: identity.clone(),
            module: module.to_path_buf(),
            child: Mutex::new(Some(child)),
            group,
            handle: peer.handle(),
            peer,
            served,
            busy: tokio::sync::Mutex::new(()),
            last_used: Mutex::new(Instant::now()),
        });
        let params = RunnerInitializeParams {
            protocol_version: HARNESS_PROTOCOL_VERSION.to_string(),
            module: module.display().to_string(),
            agent: RunnerAgent {
                id: identity.agent,
                slug: identity.agent_slug.clone(),
                name: identity.agent_name.clone(),
                instructions: identity.instructions.clone(),
            },
            conversation: RunnerConversation {
                id: identity.conversation,
                slug: identity.conversation_slug.clone(),
                workspace: identity.workspace.map(|dir| dir.display().to_string()),
            },
        };
        let initialized = tokio::time::timeout(
            LOAD_TIMEOUT,
            runner
                .handle
                .request_as::<_, RunnerInitializeResult>(RunnerInitialize::NAME, &params),
        )
        .await;
        match initialized {
            Ok(Ok(_)) => Ok(runner),
            Ok(Err(err)) => {
                runner.kill();
                Err(match err {
                    exo_rpc::peer::RequestError::Closed => {
                        "the runner exited while loading the module".to_string()
                    }
                    other => other.to_string(),
                })
            }
            Err(_) => {
                runner.kill();
                Err(format!(
                    "module {} did not load within {} s",
                    module.display(),
                    LOAD_TIMEOUT.as_secs()
                ))
            }
        }
    }

    /// Whether the runner has not been used for `idle`.
    pub fn idle_for(&self, idle: Duration) -> bool {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= idle
    }

    /// When it was last used.
    pub fn last_used(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a use.
    pub fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Whether the runner is gone (its output closed).
    pub fn is_gone(&self) -> bool {
        self.handle.is_input_closed()
    }

    /// Kills the runner's process group now.
    pub fn kill(&self) {
        if self.group > 0 {
            if let Some(group) = rustix::process::Pid::from_raw(self.group) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            exo_tools::reaper::release(self.group);
        }
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.start_kill();
            // Reaped in the background, so no zombie stays.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
    }

    /// Asks the runner to exit (its stdin closes), then kills it if it has
    /// not within a grace period.
    pub async fn stop(self: Arc<Self>) {
        self.peer.stop();
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        self.kill();
    }
}

/// exo's side of a runner's connection: the host capabilities.
pub(crate) struct Served {
    identity: Identity,
    scope: Mutex<Option<Arc<Scope>>>,
}

impl Served {
    /// A turn begins on this runner.
    pub fn enter(&self, scope: Arc<Scope>) {
        *self.scope.lock().unwrap_or_else(|p| p.into_inner()) = Some(scope);
    }

    /// The turn has ended: turn-scoped requests are refused from now on.
    pub fn leave(&self) {
        if let Some(scope) = self.scope.lock().unwrap_or_else(|p| p.into_inner()).take() {
            scope.cancel.cancel();
        }
    }

    fn scope(&self) -> Result<Arc<Scope>, ErrorObject> {
        self.scope
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                error(
                    exo_rpc::message::INVALID_REQUEST,
                    "invalid_request",
                    "no turn is in progress",
                )
            })
    }

    /// Refuses params that name another agent or conversation than the
    /// runner's.
    fn check_names(&self, request: &Request) -> Result<(), ErrorObject> {
        // Only the two names are read; the rest of the params (a whole
        // history, for model/complete) is skipped, not built into values.
        #[derive(serde::Deserialize, Default)]
        struct Names {
            #[serde(default)]
            agent: Option<Value>,
            #[serde(default)]
            conversation: Option<Value>,
        }
        let names: Names = request.params_as().unwrap_or_default();
        let name = |value: Option<Value>| match value {
            Some(Value::String(name)) => Some(name),
            _ => None,
        };
        let id = &self.identity;
        if let Some(agent) = name(names.agent) {
            if agent != id.agent.to_string() && agent != id.agent_slug {
                return Err(invalid(format!(
                    "this runner serves agent {}, not {agent}",
                    id.agent_slug
                )));
            }
        }
        if let Some(conversation) = name(names.conversation) {
            if conversation != id.conversation.to_string() && conversation != id.conversation_slug {
                return Err(invalid(format!(
                    "this runner serves conversation {}, not {conversation}",
                    id.conversation_slug
                )));
            }
        }
        Ok(())
    }
}

fn error(code: i64, name: &str, message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(code, message).with_data(serde_json::json!({ "code": name }))
}

fn invalid(message: impl Into<String>) -> ErrorObject {
    error(exo_rpc::message::INVALID_PARAMS, "invalid_params", message)
}

fn internal(message: impl Into<String>) -> ErrorObject {
    error(exo_rpc::message::INTERNAL_ERROR, "internal", message)
}

/// A substrate failure as a JSON-RPC error, its kind kept when it says one.
fn from_substrate(error: SubstrateError) -> ErrorObject {
    match error.downcast::<Refusal>() {
        Ok(refusal) => ErrorObject::new(refusal.code, refusal.message)
            .with_data(serde_json::json!({ "code": refusal.name })),
        Err(other) => internal(other.to_string()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, ErrorObject> {
    request
        .params_as()
        .map_err(|err| invalid(format!("invalid params for {}: {err}", request.method)))
}

fn reply<T: serde::Serialize>(result: &T) -> Result<Json, ErrorObject> {
    Json::to(result).map_err(|err| internal(err.to_string()))
}

impl Handler for Served {
    fn handle(
        &self,
        request: Request,
        context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        if request.is_notification() {
            if request.method == HarnessDeltaNotification::NAME {
                if let (Ok(scope), Ok(delta)) = (self.scope(), request.params_as::<HarnessDelta>())
                {
                    let host = &scope.host;
                    host.observer()
                        .delta(host.turn(), &exo_model::Delta::Text(delta.text));
                }
            }
            return Box::pin(async { Ok(Json::null()) });
        }
        let scope = self.scope();
        let conversation = self.identity.conversation;
        let named = self.check_names(&request);
        Box::pin(async move {
            named?;
            match request.method.as_str() {
                ModelComplete::NAME => model_complete(scope?, &request, context).await,
                ToolRun::NAME => tool_run(scope?, &request).await,
                ApprovalAsk::NAME => approval_ask(scope?, &request).await,
                HostTurnAppend::NAME => turn_append(scope?, &request).await,
                HistoryItemsMethod::NAME => {
                    history_items(Arc::clone(&scope?.substrate), conversation).await
                }
                HostEventsList::NAME
                | HostEventsGet::NAME
                | HostArtifactPut::NAME
                | HostArtifactGet::NAME
                | HostArtifactList::NAME => {
                    let substrate = Arc::clone(&scope?.substrate);
                    let method = request.method.clone();
                    let mut params = request
                        .params
                        .as_ref()
                        .map(Json::to_value)
                        .unwrap_or(Value::Null);
                    if params.is_null() {
                        params = Value::Object(Default::default());
                    }
                    let result = tokio::task::spawn_blocking(move || {
                        substrate.scoped_call(conversation, &method, params)
                    })
                    .await
                    .map_err(|err| internal(err.to_string()))?
                    .map_err(from_substrate)?;
                    reply(&result)
                }
                other => Err(error(
                    exo_rpc::message::METHOD_NOT_FOUND,
                    "method_not_found",
                    format!("method not found: {other}"),
                )),
            }
        })
    }
}

/// A token cancelled when either the turn or the request is.
fn either(scope: &Scope, context: &Context) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = scope.cancel.child_token();
    let watch = {
        let token = token.clone();
        let request = context.cancelled.clone();
        tokio::spawn(async move {
            request.cancelled().await;
            token.cancel();
        })
    };
    (token, watch)
}

async fn model_complete(
    scope: Arc<Scope>,
    request: &Request,
    context: Context,
) -> Result<Json, ErrorObject> {
    let params: ModelCompleteParams = parse(request)?;
    if params.model.is_some() {
        return Err(invalid(
            "model/complete calls the agent's model: other model bindings are not offered to runners",
        ));
    }
    scope.take_call(params.record)?;
    let host = &scope.host;
    let model_request = exo_model::Request {
        model: host.upstream().to_string(),
        instructions: params.instructions.clone(),
        items: params.items.iter().map(to_model_item).collect(),
        tools: params
            .tools
            .iter()
            .map(|spec| exo_model::ToolSpec {
                name: spec.name.clone(),
                description: spec.description.clone(),
                parameters: spec.parameters.clone(),
            })
            .collect(),
        max_output_tokens: params.max_output_tokens,
    };
    // Deltas go to the runner in order, before the answer: through a
    // channel to one forwarder, which is waited for.
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<ModelDelta>();
    let id = request
        .id
        .as_ref()
        .map(Json::to_value)
        .unwrap_or(Value::Null);
    let peer = context.peer.clone();
    let forwarder = tokio::spawn(async move {
        while let Some(delta) = receiver.recv().await {
            let _ = peer.notify_as(ModelDeltaNotification::NAME, &delta).await;
        }
    });
    let (cancel, watch) = either(&scope, &context);
    let stream = params.stream;
    let mut on_delta = |delta: &exo_model::Delta| {
        if !stream {
            return;
        }
        let mut piece = ModelDelta {
            request: id.clone(),
            text: None,
            reasoning: None,
            tool_call: None,
        };
        match delta {
            exo_model::Delta::Text(text) => piece.text = Some(text.clone()),
            exo_model::Delta::Reasoning(text) => piece.reasoning = Some(text.clone()),
            exo_model::Delta::ToolCall { call_id, name } => {
                piece.tool_call = Some(exo_protocol::methods::ToolCallStart {
                    call_id: call_id.clone(),
                    name: name.clone(),
                })
            }
        }
        let _ = sender.send(piece);
    };
    let outcome = host
        .complete(&model_request, params.record, &cancel, &mut on_delta)
        .await;
    watch.abort();
    // The forwarder ends once the last delta is sent.
    drop(sender);
    let _ = forwarder.await;
    let completion = match outcome.map_err(from_substrate)? {
        Ok(completion) => completion,
        Err(err) => {
            return Err(ErrorObject::new(-32010, err.to_string())
                .with_data(serde_json::json!({ "code": "model", "kind": err.code() })))
        }
    };
    let response = completion.response;
    reply(&ModelCompleteResult {
        text: response.text.clone(),
        reasoning: response.reasoning.clone(),
        tool_calls: response
            .tool_calls
            .iter()
            .map(|call| ModelToolCall {
                call_id: call.call_id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            })
            .collect(),
        usage: response.usage.clone(),
        stop: response.stop.as_str().to_string(),
        events: completion
            .events
            .iter()
            .map(exo_protocol::Event::from)
            .collect(),
    })
}

async fn tool_run(scope: Arc<Scope>, request: &Request) -> Result<Json, ErrorObject> {
    let params: ToolRunParams = parse(request)?;
    let host = &scope.host;
    if !host.offers(&params.name) {
        return Err(invalid(format!(
            "unknown tool {:?}: exo's tools are read_file, write_file, edit_file, list_files, grep and shell, and the mcp__ tools of harness/turn",
            params.name
        )));
    }
    let call = ToolCall {
        call_id: params
            .call_id
            .clone()
            .unwrap_or_else(|| format!("call_{}", uuid::Uuid::now_v7().simple())),
        name: params.name.clone(),
        arguments: params.arguments.clone(),
    };
    let mut events = Vec::new();
    if !host.has_call(&call.call_id) {
        let recorded = host
            .record(vec![EventData::ToolCall {
                call_id: call.call_id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            }])
            .await
            .map_err(from_substrate)?;
        events.extend(recorded);
    }
    let before = host.recorded().len();
    let run = host
        .run_tool_approved(&call, &scope.cancel)
        .await
        .map_err(from_substrate)?;
    events.extend(host.recorded().into_iter().skip(before));
    let recorded = host
        .record(vec![EventData::ToolResult {
            call_id: call.call_id.clone(),
            output: run.output.output.clone(),
            is_error: run.output.is_error,
        }])
        .await
        .map_err(from_substrate)?;
    events.extend(recorded);
    reply(&ToolRunResult {
        call_id: call.call_id,
        output: run.output.output,
        is_error: run.output.is_error,
        approved: run.approved,
        events: events.iter().map(exo_protocol::Event::from).collect(),
    })
}

async fn approval_ask(scope: Arc<Scope>, request: &Request) -> Result<Json, ErrorObject> {
    let params: ApprovalAskParams = parse(request)?;
    let access = match params.kind.unwrap_or(ApprovalKind::Run) {
        ApprovalKind::Read => exo_tools::Access::Read,
        ApprovalKind::Write => exo_tools::Access::Write,
        ApprovalKind::Run => exo_tools::Access::Shell,
    };
    let call = ToolCall {
        call_id: params.call_id,
        name: params.tool,
        arguments: params.arguments,
    };
    let approval = scope
        .host
        .approve(&call, access, &scope.cancel)
        .await
        .map_err(from_substrate)?;
    let approval = approval.unwrap_or(exo_executor::Approval {
        decision: exo_core::ApprovalDecision::Deny,
        by: "no_client",
    });
    reply(&ApprovalAskResult {
        decision: approval.decision,
        by: match approval.by {
            "user" => ApprovalBy::User,
            "no_client" => ApprovalBy::NoClient,
            "permission" => ApprovalBy::Permission,
            _ => ApprovalBy::Policy,
        },
    })
}

async fn turn_append(scope: Arc<Scope>, request: &Request) -> Result<Json, ErrorObject> {
    let params: HostTurnAppendParams = parse(request)?;
    let host = &scope.host;
    if let Some(turn) = params.turn {
        if turn != host.turn() {
            return Err(invalid(format!(
                "this runner's turn is {}, not {turn}",
                host.turn()
            )));
        }
    }
    if params.events.is_empty() {
        return Err(invalid("events must not be empty"));
    }
    let mut data = Vec::with_capacity(params.events.len());
    for (index, value) in params.events.into_iter().enumerate() {
        let event = EventData::from_input_json(value)
            .map_err(|err| invalid(format!("event {}: {err}", index + 1)))?;
        if let EventData::Custom { custom_type, .. } = &event {
            let own = custom_type.starts_with("harness.") || event.is_compaction();
            if !own {
                return Err(invalid(format!(
                    "event {}: a runner records custom events of type harness.* or exo.compaction, not {custom_type}",
                    index + 1
                )));
            }
        }
        data.push(event);
    }
    let recorded = host.record(data).await.map_err(from_substrate)?;
    let head = recorded.last().map(|event| event.id).expect("not empty");
    reply(&AppendResult {
        events: recorded.iter().map(exo_protocol::Event::from).collect(),
        head,
        first: recorded.first().map(|event| event.id),
        count: Some(recorded.len() as u64),
    })
}

async fn history_items(
    substrate: Arc<dyn Substrate>,
    conversation: ConversationId,
) -> Result<Json, ErrorObject> {
    let history = history_now(substrate, conversation)
        .await
        .map_err(from_substrate)?;
    reply(&history)
}

/// The conversation's history as a model sees it, from the newest
/// compaction on: what `history/items` answers.
async fn history_now(
    substrate: Arc<dyn Substrate>,
    conversation: ConversationId,
) -> Result<HistoryItems, SubstrateError> {
    tokio::task::spawn_blocking(move || history_of(substrate.as_ref(), conversation))
        .await
        .map_err(|err| SubstrateError::from(err.to_string()))?
}

/// The same, on the caller's thread (which may block).
pub(crate) fn history_of(
    substrate: &dyn Substrate,
    conversation: ConversationId,
) -> Result<HistoryItems, SubstrateError> {
    let items = exo_executor::prompt_items(substrate, conversation)?;
    let compaction = substrate.latest_compaction(conversation, None)?;
    Ok(HistoryItems {
        items: items.iter().map(from_model_item).collect(),
        compaction: compaction.as_ref().map(exo_protocol::Event::from),
    })
}

/// A harness item as the model client's.
fn to_model_item(item: &ModelItem) -> exo_model::Item {
    match item {
        ModelItem::Message { role, content } => exo_model::Item::Message {
            role: *role,
            content: match content {
                ModelContent::Text(text) => vec![ContentPart::Text { text: text.clone() }],
                ModelContent::Parts(parts) => parts.clone(),
            },
        },
        ModelItem::ToolCall {
            call_id,
            name,
            arguments,
        } => exo_model::Item::ToolCall {
            call_id: call_id.clone(),
            name: name.clone(),
            arguments: arguments.clone(),
        },
        ModelItem::ToolResult {
            call_id,
            output,
            is_error,
        } => exo_model::Item::ToolResult {
            call_id: call_id.clone(),
            output: output.clone(),
            is_error: *is_error,
        },
    }
}

/// A model client's item as the harness protocol's.
fn from_model_item(item: &exo_model::Item) -> ModelItem {
    match item {
        exo_model::Item::Message { role, content } => ModelItem::Message {
            role: *role,
            content: ModelContent::Parts(content.clone()),
        },
        exo_model::Item::ToolCall {
            call_id,
            name,
            arguments,
        } => ModelItem::ToolCall {
            call_id: call_id.clone(),
            name: name.clone(),
            arguments: arguments.clone(),
        },
        exo_model::Item::ToolResult {
            call_id,
            output,
            is_error,
        } => ModelItem::ToolResult {
            call_id: call_id.clone(),
            output: output.clone(),
            is_error: *is_error,
        },
    }
}

/// The harness turn's params.
pub(crate) fn turn_params(
    host: &TurnHost,
    session: exo_core::SessionId,
    agent: exo_core::AgentId,
    input: Vec<ContentPart>,
    instructions: String,
    max_rounds: u32,
    history: HistoryItems,
) -> HarnessTurnParams {
    HarnessTurnParams {
        turn: host.turn(),
        session,
        conversation: host.conversation(),
        agent,
        input,
        instructions,
        tools: host
            .tool_specs()
            .into_iter()
            .map(|spec| ToolSpec {
                name: spec.name,
                description: spec.description,
                parameters: spec.parameters,
            })
            .collect(),
        max_rounds,
        history: Some(history),
    }
}
