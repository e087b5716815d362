//! What every executor may ask of exo during a turn, in one place: call
//! the model (streaming to the turn's client, recording the answer), ask
//! whether a call may run (the agent's policy, its standing permissions,
//! the user), run one of exo's tools, record events.
//!
//! The built-in executor uses a [`TurnHost`] in-process; an out-of-process
//! executor's runner reaches the same functions through the harness
//! protocol (`model/complete`, `approval/ask`, `tool/run`, `turn/append`,
//! spec/harness.md), so every executor's turns are recorded the same way
//! and the model's key never leaves exo's process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use exo_core::{
    ApprovalDecision, ApprovalPolicy, ContentPart, ConversationId, Event, EventData, Role, TurnId,
};
use exo_model::{Client, ClientOptions, Delta, Request, Response, Stop};
use exo_tools::{Access, Limits, ToolOutput, Workspace};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::mcp::{CallFailure, McpTools, OfferedTool};
use crate::prompt::APPROVAL_TYPE;
use crate::{ApprovalAsk, Observer, Outcome, Setup, Substrate, SubstrateError};
use exo_core::TurnStatus;

/// Runs a substrate call on the blocking pool.
pub async fn blocking<T, F>(substrate: &Arc<dyn Substrate>, call: F) -> Result<T, SubstrateError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Substrate) -> Result<T, SubstrateError> + Send + 'static,
{
    let substrate = Arc::clone(substrate);
    tokio::task::spawn_blocking(move || call(substrate.as_ref()))
        .await
        .map_err(|err| -> SubstrateError { format!("internal error: {err}").into() })?
}

/// A model's answer, and what recording it wrote.
#[derive(Debug)]
pub struct Completion {
    /// The answer.
    pub response: Response,
    /// The assistant message and its tool calls, when recorded.
    pub events: Vec<Event>,
}

/// What was decided about a call, and by whom (`policy`, `user`,
/// `no_client`, `agent` for a standing permission, `turn` for one given
/// earlier in the turn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The decision.
    pub decision: ApprovalDecision,
    /// Who made it.
    pub by: &'static str,
}

/// A tool call's output, and whether it was allowed to run.
#[derive(Clone, Debug)]
pub struct ToolRun {
    /// What the tool said (or why it did not run).
    pub output: ToolOutput,
    /// Whether the approval let it run.
    pub approved: bool,
}

/// One call of a tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// Its id.
    pub call_id: String,
    /// The tool.
    pub name: String,
    /// Its arguments.
    pub arguments: Value,
}

/// A turn in progress, and what its executor may do in it.
pub struct TurnHost {
    substrate: Arc<dyn Substrate>,
    observer: Arc<dyn Observer>,
    turn: TurnId,
    conversation: ConversationId,
    agent: String,
    approval: ApprovalPolicy,
    /// Tools allowed without asking: the agent's standing permissions,
    /// and those allowed for the rest of this turn.
    allowed: Mutex<HashSet<String>>,
    client: Client,
    upstream: String,
    workspace: Option<Workspace>,
    limits: Limits,
    /// Every event recorded in the turn through this host, in order.
    recorded: Mutex<Vec<Event>>,
    /// exo's own tools over the history and the bound MCP servers'.
    mcp: McpTools,
}

/// What a [`TurnHost`] is made of.
pub struct HostParts {
    /// The substrate.
    pub substrate: Arc<dyn Substrate>,
    /// Who follows the turn.
    pub observer: Arc<dyn Observer>,
    /// The turn.
    pub turn: TurnId,
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its agent's id.
    pub agent: String,
    /// The agent's approval policy.
    pub approval: ApprovalPolicy,
    /// The agent's standing permissions.
    pub allow: Vec<String>,
    /// The model's client.
    pub client: Client,
    /// The model's name upstream.
    pub upstream: String,
    /// The workspace, if the conversation has one.
    pub workspace: Option<Workspace>,
    /// Bounds on tool calls.
    pub limits: Limits,
    /// What the turn recorded before the host existed (its beginning).
    pub recorded: Vec<Event>,
    /// The MCP tools offered beside exo's six ([`open_mcp`]).
    pub mcp: McpTools,
}

impl TurnHost {
    /// A host for one turn.
    pub fn new(parts: HostParts) -> TurnHost {
        TurnHost {
            substrate: parts.substrate,
            observer: parts.observer,
            turn: parts.turn,
            conversation: parts.conversation,
            agent: parts.agent,
            approval: parts.approval,
            allowed: Mutex::new(parts.allow.into_iter().collect()),
            client: parts.client,
            upstream: parts.upstream,
            workspace: parts.workspace,
            limits: parts.limits,
            recorded: Mutex::new(parts.recorded),
            mcp: parts.mcp,
        }
    }

    /// The turn.
    pub fn turn(&self) -> TurnId {
        self.turn
    }

    /// The conversation.
    pub fn conversation(&self) -> ConversationId {
        self.conversation
    }

    /// The substrate.
    pub fn substrate(&self) -> &Arc<dyn Substrate> {
        &self.substrate
    }

    /// Who follows the turn.
    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.observer
    }

    /// The workspace, if the conversation has one.
    pub fn workspace(&self) -> Option<&Workspace> {
        self.workspace.as_ref()
    }

    /// The model's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The model's name upstream.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The tools offered to a model in this conversation: exo's six (none
    /// without a workspace), then exo's own over the history and the bound
    /// MCP servers' (`mcp__SERVER__TOOL`).
    pub fn tool_specs(&self) -> Vec<exo_model::ToolSpec> {
        let mut specs: Vec<exo_model::ToolSpec> = match &self.workspace {
            Some(_) => exo_tools::specs_for(&self.limits)
                .into_iter()
                .map(|spec| exo_model::ToolSpec {
                    name: spec.name.to_owned(),
                    description: spec.description,
                    parameters: spec.parameters,
                })
                .collect(),
            None => Vec::new(),
        };
        specs.extend(self.mcp.tools().iter().map(|tool| exo_model::ToolSpec {
            name: tool.offered.clone(),
            description: tool.description.clone(),
            parameters: tool.parameters.clone(),
        }));
        specs
    }

    /// Whether `name` is a tool this host runs.
    pub fn offers(&self, name: &str) -> bool {
        exo_tools::access(name).is_some() || self.mcp.find(name).is_some()
    }

    /// Records, as `error` events, why bound MCP servers are missing.
    pub async fn record_mcp_failures(&self, failures: Vec<String>) -> Result<(), SubstrateError> {
        if failures.is_empty() {
            return Ok(());
        }
        self.record(
            failures
                .into_iter()
                .map(|message| EventData::Error {
                    message,
                    code: Some("mcp_server".to_owned()),
                })
                .collect(),
        )
        .await
        .map(drop)
    }

    /// Every event recorded in the turn so far, in order.
    pub fn recorded(&self) -> Vec<Event> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a `tool_call` with this id was recorded in the turn.
    pub fn has_call(&self, call_id: &str) -> bool {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|event| {
                matches!(&event.data, EventData::ToolCall { call_id: id, .. } if id == call_id)
            })
    }

    /// Records events in the turn, as one batch, and tells the observer.
    pub async fn record(&self, data: Vec<EventData>) -> Result<Vec<Event>, SubstrateError> {
        let turn = self.turn;
        let appended = blocking(&self.substrate, move |s| s.append(turn, data)).await?;
        self.observer.recorded(turn, &appended);
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(appended.iter().cloned());
        Ok(appended)
    }

    /// Notes events recorded elsewhere in the turn (the turn's end).
    pub fn note_recorded(&self, events: &[Event]) {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(events.iter().cloned());
    }

    /// Calls the model. With `record`, text streams to the turn's client
    /// (and watchers) as it arrives, and the answer is recorded as the
    /// built-in executor records it: one batch with the assistant message
    /// (recorded even when empty, for its usage) and its tool calls (not
    /// those of a cancelled answer, which never run). `delta` sees every
    /// piece either way. A model failure is returned, recording nothing.
    pub async fn complete(
        &self,
        request: &Request,
        record: bool,
        cancel: &CancellationToken,
        delta: &mut (dyn FnMut(&Delta) + Send),
    ) -> Result<Result<Completion, exo_model::Error>, SubstrateError> {
        let observer = Arc::clone(&self.observer);
        let turn = self.turn;
        let mut on_delta = |piece: Delta| {
            if record {
                observer.delta(turn, &piece);
            }
            delta(&piece);
        };
        let response = match self.client.complete(request, cancel, &mut on_delta).await {
            Ok(response) => response,
            Err(err) => return Ok(Err(err)),
        };
        if !record {
            return Ok(Ok(Completion {
                response,
                events: Vec::new(),
            }));
        }
        let mut batch = vec![assistant_message(&response, &self.upstream)];
        if response.stop != Stop::Cancelled {
            for call in &response.tool_calls {
                batch.push(EventData::ToolCall {
                    call_id: call.call_id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                });
            }
        }
        let events = self.record(batch).await?;
        Ok(Ok(Completion { response, events }))
    }

    /// Decides whether a call may run: reads always; otherwise a standing
    /// permission, one given earlier in the turn, or the agent's policy,
    /// which may ask the user. The decision is recorded as `exo.approval`
    /// (reads are not). `None` when the turn was cancelled while it asked
    /// (nothing is recorded then).
    pub async fn approve(
        &self,
        call: &ToolCall,
        access: Access,
        cancel: &CancellationToken,
    ) -> Result<Option<Approval>, SubstrateError> {
        if access == Access::Read {
            return Ok(Some(Approval {
                decision: ApprovalDecision::AllowOnce,
                by: "policy",
            }));
        }
        let standing = self
            .allowed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&call.name);
        let approval = if standing {
            Approval {
                decision: ApprovalDecision::AllowOnce,
                by: "permission",
            }
        } else {
            match self.approval {
                ApprovalPolicy::Auto => Approval {
                    decision: ApprovalDecision::AllowOnce,
                    by: "policy",
                },
                ApprovalPolicy::Deny => Approval {
                    decision: ApprovalDecision::Deny,
                    by: "policy",
                },
                ApprovalPolicy::Ask => {
                    let ask = ApprovalAsk {
                        turn: self.turn,
                        call_id: call.call_id.clone(),
                        tool: call.name.clone(),
                        arguments: call.arguments.clone(),
                    };
                    let answer = tokio::select! {
                        answer = self.observer.approve(ask) => answer,
                        () = cancel.cancelled() => return Ok(None),
                    };
                    match answer {
                        Some(decision) => Approval {
                            decision,
                            by: "user",
                        },
                        None => Approval {
                            decision: ApprovalDecision::Deny,
                            by: "no_client",
                        },
                    }
                }
            }
        };
        match approval.decision {
            ApprovalDecision::AllowTurn => {
                self.allowed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(call.name.clone());
            }
            ApprovalDecision::AllowAlways => {
                self.allowed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(call.name.clone());
                let (agent, tool) = (self.agent.clone(), call.name.clone());
                blocking(&self.substrate, move |s| s.allow_always(&agent, &tool)).await?;
            }
            ApprovalDecision::AllowOnce | ApprovalDecision::Deny => {}
        }
        self.record(vec![EventData::Custom {
            custom_type: APPROVAL_TYPE.to_owned(),
            payload: json!({
                "call_id": call.call_id,
                "tool": call.name,
                "approved": approval.decision.allows(),
                "decision": approval.decision.as_str(),
                "by": approval.by,
            }),
        }])
        .await?;
        Ok(Some(approval))
    }

    /// Checks, approves and runs one of exo's tools; the result is for the
    /// caller to record. A tool that cannot run at all (the workspace is
    /// gone) comes back `broken`.
    pub async fn run_tool(
        &self,
        call: &ToolCall,
        cancel: &CancellationToken,
    ) -> Result<ToolOutput, SubstrateError> {
        Ok(self.run_tool_approved(call, cancel).await?.output)
    }

    /// [`TurnHost::run_tool`], saying whether the call was allowed to run.
    pub async fn run_tool_approved(
        &self,
        call: &ToolCall,
        cancel: &CancellationToken,
    ) -> Result<ToolRun, SubstrateError> {
        let refused = |output: ToolOutput| ToolRun {
            output,
            approved: false,
        };
        if let Some(tool) = self.mcp.find(&call.name).cloned() {
            return self.run_mcp(call, &tool, cancel).await;
        }
        let Some(workspace) = &self.workspace else {
            return Ok(refused(ToolOutput::error(
                "no workspace is bound to this conversation, so no tool can run",
            )));
        };
        if !workspace.root().is_dir() {
            return Ok(refused(ToolOutput::broken(format!(
                "the workspace {} is gone",
                workspace.root().display()
            ))));
        }
        let parsed = match exo_tools::parse(&call.name, &call.arguments) {
            Ok(parsed) => parsed,
            Err(err) => return Ok(refused(ToolOutput::error(err.to_string()))),
        };
        let Some(approval) = self.approve(call, parsed.access(), cancel).await? else {
            return Ok(refused(ToolOutput::error(
                "cancelled while waiting for approval",
            )));
        };
        if !approval.decision.allows() {
            return Ok(refused(denied(approval, false)));
        }
        let output = exo_tools::run(workspace, &parsed, &self.limits, &[], cancel).await;
        self.record_egress().await?;
        Ok(ToolRun {
            output,
            approved: true,
        })
    }

    /// Records the requests the conversation's commands made through the
    /// egress proxy since the last time, each a `custom` event of type
    /// `http.request` (host, method, path, status; never a header).
    pub async fn record_egress(&self) -> Result<(), SubstrateError> {
        let Some(access) = self.workspace.as_ref().and_then(|w| w.sandbox().egress()) else {
            return Ok(());
        };
        let (exchanges, dropped) = access.proxy.take_exchanges();
        let mut events: Vec<EventData> = exchanges
            .into_iter()
            .map(|exchange| {
                let mut payload = json!({
                    "host": exchange.host,
                    "method": exchange.method,
                    "path": exchange.path,
                    "status": exchange.status,
                    "credential": exchange.credential,
                });
                if let Some(refused) = exchange.refused {
                    payload["refused"] = json!(refused);
                }
                EventData::Custom {
                    custom_type: HTTP_REQUEST_TYPE.to_owned(),
                    payload,
                }
            })
            .collect();
        if dropped > 0 {
            events.push(EventData::Custom {
                custom_type: HTTP_REQUEST_TYPE.to_owned(),
                payload: json!({ "unrecorded": dropped }),
            });
        }
        if events.is_empty() {
            return Ok(());
        }
        self.record(events).await.map(drop)
    }

    /// Approves and runs an MCP tool: exo's own in-process, a bound
    /// server's at the server. Reads (exo's tools, and those a server
    /// says change nothing) need no approval.
    async fn run_mcp(
        &self,
        call: &ToolCall,
        tool: &OfferedTool,
        cancel: &CancellationToken,
    ) -> Result<ToolRun, SubstrateError> {
        let refused = |output: ToolOutput| ToolRun {
            output,
            approved: false,
        };
        if !call.arguments.is_object() {
            return Ok(refused(ToolOutput::error(format!(
                "invalid arguments for {}: expected a JSON object",
                call.name
            ))));
        }
        let access = if tool.read_only {
            Access::Read
        } else {
            Access::Write
        };
        let Some(approval) = self.approve(call, access, cancel).await? else {
            return Ok(refused(ToolOutput::error(
                "cancelled while waiting for approval",
            )));
        };
        if !approval.decision.allows() {
            return Ok(refused(denied(approval, true)));
        }
        let cap = self.limits.max_output_bytes;
        let output = if tool.server == crate::history::SERVER {
            let service = SubstrateService {
                substrate: Arc::clone(&self.substrate),
                conversation: self.conversation,
            };
            let run = crate::history::call(&service, &tool.tool, &call.arguments, false);
            tokio::select! {
                outcome = run => match outcome {
                    Ok(value) => capped(value, cap, false),
                    Err(message) => ToolOutput::error(message),
                },
                () = cancel.cancelled() => cancelled(),
            }
        } else {
            match self.mcp.connection(&tool.server) {
                None => ToolOutput::error(format!("MCP server {} is not connected", tool.server)),
                Some(connection) => {
                    match connection
                        .call_tool(
                            &tool.tool,
                            &call.arguments,
                            self.limits.default_timeout,
                            cancel,
                        )
                        .await
                    {
                        Ok(result) => {
                            let is_error = result["isError"] == true;
                            let mut result = result;
                            if let Some(object) = result.as_object_mut() {
                                object.remove("_meta");
                                object.remove("isError");
                            }
                            capped(result, cap, is_error)
                        }
                        Err(CallFailure::Cancelled) => cancelled(),
                        Err(CallFailure::Failed(message)) => ToolOutput::error(message),
                    }
                }
            }
        };
        Ok(ToolRun {
            output,
            approved: true,
        })
    }
}

/// What a refused call answers.
fn denied(approval: Approval, mcp: bool) -> ToolOutput {
    ToolOutput::error(match approval.by {
        "policy" if mcp => {
            "denied: this agent's approval policy refuses MCP tools that may change things"
        }
        "policy" => "denied: this agent's approval policy refuses shell commands and file writes",
        "no_client" => "denied: approval was needed and no one was there to give it",
        _ => "denied: the user declined this call",
    })
}

fn cancelled() -> ToolOutput {
    ToolOutput {
        output: json!({"error": "cancelled", "cancelled": true}),
        is_error: true,
        broken: false,
    }
}

/// `value` as a tool's output; when its JSON is over `cap` bytes, its
/// first `cap` bytes as text, saying it was cut.
fn capped(value: Value, cap: usize, is_error: bool) -> ToolOutput {
    let text = value.to_string();
    let output = if text.len() <= cap {
        value
    } else {
        let mut cut = cap;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        json!({
            "truncated": true,
            "bytes": text.len(),
            "text": &text[..cut],
            "note": "the output was cut: ask for less (a limit, a cursor, a filter)",
        })
    };
    ToolOutput {
        output,
        is_error,
        broken: false,
    }
}

/// exo's methods for the conversation, through the substrate.
struct SubstrateService {
    substrate: Arc<dyn Substrate>,
    conversation: ConversationId,
}

impl crate::history::Service for SubstrateService {
    fn call(
        &self,
        method: &str,
        params: Value,
    ) -> futures_util::future::BoxFuture<'static, Result<Value, String>> {
        let substrate = Arc::clone(&self.substrate);
        let (conversation, method) = (self.conversation, method.to_owned());
        Box::pin(async move {
            blocking(&substrate, move |s| {
                s.scoped_call(conversation, &method, params)
            })
            .await
            .map_err(|err| err.to_string())
        })
    }
}

/// exo's tools over the history and those of the conversation's bound
/// MCP servers, each started or connected to; why any server is missing,
/// for [`TurnHost::record_mcp_failures`].
pub async fn open_mcp(setup: &Setup) -> (McpTools, Vec<String>) {
    McpTools::open(&setup.mcp_servers, true).await
}

/// Builds the model's client and resolves the workspace, off the async
/// loop: building the client may read a script file, and the workspace is
/// resolved on disk (a daemon's async loop serves every connection).
pub async fn prepare(
    setup: &Setup,
    client_options: &ClientOptions,
) -> Result<(Client, Option<Workspace>), SubstrateError> {
    let client_options = client_options.clone();
    let endpoint = setup.model.endpoint.clone();
    let root = setup.workspace.clone();
    let protected = setup.protected.clone();
    let (mode, network, fallback) = (setup.sandbox, setup.network, setup.sandbox_fallback);
    // The egress proxy's directory, and exo's binary as the forwarder that
    // brings the proxy to a command (spec/sandboxes.md).
    let egress_dir = setup.state_dir.join("egress");
    let forwarder = std::env::current_exe().ok().filter(|exe| exe.is_file());
    let proxy = match (&root, setup.http_credentials.is_empty(), &forwarder) {
        (Some(_), false, Some(forwarder)) => {
            let proxy = exo_sandbox::egress::Egress::start(
                &egress_dir,
                setup.http_credentials.clone(),
                network,
            )
            .await
            .map_err(|err| -> SubstrateError { err.to_string().into() })?;
            Some(exo_sandbox::egress::EgressAccess {
                proxy: std::sync::Arc::new(proxy),
                forwarder: forwarder.clone(),
            })
        }
        (Some(_), false, None) => {
            return Err(
                "the egress proxy cannot run: exo's own binary is not found (was it replaced?)"
                    .into(),
            )
        }
        _ => None,
    };
    let docker_egress = docker_egress(mode, &setup.state_dir);
    // The container is the turn's until it ends: no `exo sandbox` step
    // (a snapshot, a removal) runs under it, nor one before it begins.
    let lock = match (mode, &root) {
        (exo_core::SandboxMode::Docker, Some(_)) => Some(
            exo_sandbox::docker::lock(&setup.state_dir)
                .map_err(|err| -> SubstrateError { err.to_string().into() })?,
        ),
        _ => None,
    };
    let docker = exo_sandbox::docker::DockerSpec {
        container: format!("exo-{}", setup.conversation),
        image: setup
            .sandbox_snapshot
            .clone()
            .or_else(|| setup.image.clone())
            .unwrap_or_else(|| default_image(setup.harness).to_owned()),
        workspace: std::path::PathBuf::new(),
        hidden: Vec::new(),
        network,
        conversation: setup.conversation.to_string(),
        root: setup.root.display().to_string(),
        egress: docker_egress,
    };
    tokio::task::spawn_blocking(
        move || -> Result<(Client, Option<Workspace>), SubstrateError> {
            let client = Client::new(endpoint.with_options(client_options))?;
            let workspace = match &root {
                Some(root) => {
                    let mut workspace = Workspace::new(root)?;
                    for path in &protected {
                        workspace = workspace.protect(path);
                    }
                    let mut sandbox =
                        sandbox(mode, network, fallback, workspace.root(), protected, docker);
                    if let Some(proxy) = proxy {
                        sandbox = sandbox.with_egress(proxy);
                    }
                    if let Some(lock) = lock {
                        sandbox = sandbox.with_lock(lock);
                    }
                    Some(workspace.with_sandbox(sandbox))
                }
                None => None,
            };
            Ok((client, workspace))
        },
    )
    .await
    .map_err(|err| -> SubstrateError { format!("internal error: {err}").into() })?
}

/// The image a docker sandbox is made from when the agent names none:
/// exo's base image, or for a Codex or Claude Code agent (which runs in
/// the container) the base image with that CLI (`containers/build`).
pub fn default_image(harness: exo_core::Harness) -> &'static str {
    match harness {
        exo_core::Harness::Codex => exo_sandbox::docker::CODEX_IMAGE,
        exo_core::Harness::ClaudeCode => exo_sandbox::docker::CLAUDE_IMAGE,
        _ => exo_sandbox::docker::DEFAULT_IMAGE,
    }
}

/// For a docker sandbox, what its container has bound in for the egress
/// proxy: the conversation's proxy directory under `state_dir` (made
/// here) and exo's binary as the forwarder. Every container gets them, so
/// a binding added later needs no new container.
pub fn docker_egress(
    mode: exo_core::SandboxMode,
    state_dir: &std::path::Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    if mode != exo_core::SandboxMode::Docker {
        return None;
    }
    let forwarder = std::env::current_exe().ok().filter(|exe| exe.is_file())?;
    let dir = state_dir.join("egress");
    let made = {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(exo_sandbox::egress::AGENT_HOME))
    };
    made.ok().map(|()| (dir, forwarder))
}

/// Where a conversation's commands run: its agent's sandbox over the
/// workspace, hiding exo's state; where a local sandbox cannot run, the
/// host if the agent allows it (said once per process), else nowhere.
pub fn sandbox(
    mode: exo_core::SandboxMode,
    network: bool,
    fallback: bool,
    root: &std::path::Path,
    hidden: Vec<std::path::PathBuf>,
    docker: exo_sandbox::docker::DockerSpec,
) -> exo_sandbox::Sandbox {
    use exo_sandbox::{Policy, Sandbox};
    match mode {
        exo_core::SandboxMode::None => Sandbox::host(),
        exo_core::SandboxMode::Docker => Sandbox::docker(exo_sandbox::docker::DockerSpec {
            workspace: root.to_path_buf(),
            hidden,
            ..docker
        }),
        exo_core::SandboxMode::Local => {
            let policy = Policy {
                workspace: root.to_path_buf(),
                hidden,
                network,
            };
            match Sandbox::local(policy) {
                // exo's own binary sets the limits inside; a binary that
                // is gone (replaced while exo runs) leaves them unset.
                Ok(sandbox) => match std::env::current_exe().ok().filter(|exe| exe.is_file()) {
                    Some(exe) => sandbox.with_limits(exe, exo_sandbox::limits::Limits::DEFAULT),
                    None => sandbox,
                },
                Err(err) if fallback => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        tracing::warn!("{err}; commands run on the host, as the agent allows");
                    });
                    Sandbox::host()
                }
                Err(exo_sandbox::SandboxError::Unavailable(why)) => Sandbox::unavailable(why),
                Err(other) => Sandbox::unavailable(other.to_string()),
            }
        }
    }
}

/// Ends a turn: the turn-end snapshot and `turn_ended` (as `turn/finish`),
/// then what the turn recorded, from its beginning to its end.
pub async fn finish(
    host: &TurnHost,
    session: exo_core::SessionId,
    status: TurnStatus,
    error: Option<String>,
) -> Result<Outcome, SubstrateError> {
    let substrate = host.substrate();
    let turn_id = host.turn();
    let conversation_id = host.conversation();
    host.record_egress().await?;
    snapshot_sandbox(host).await?;
    let status = blocking(substrate, move |s| s.finish_turn(turn_id, status)).await?;
    let last = host.recorded().last().map(|event| event.id);
    let finished = blocking(substrate, move |s| s.events(conversation_id, last)).await?;
    let finished: Vec<Event> = finished
        .into_iter()
        .filter(|event| event.turn == Some(turn_id))
        .collect();
    host.observer().recorded(turn_id, &finished);
    host.note_recorded(&finished);
    let events = host.recorded();
    let text = crate::builtin::last_answer(&events);
    Ok(Outcome {
        turn: turn_id,
        session,
        status,
        text,
        error,
        events,
    })
}

/// At a turn's end, a docker sandbox that ran commands and changed is
/// snapshotted, and the snapshot recorded in the turn as
/// `sandbox.snapshotted` (spec/sandboxes.md); a failure is an `error`
/// event, and the turn ends all the same.
async fn snapshot_sandbox(host: &TurnHost) -> Result<(), SubstrateError> {
    let Some(container) = host.workspace().and_then(|w| w.sandbox().container()) else {
        return Ok(());
    };
    let tag = format!("{}-{}", host.conversation(), host.turn());
    let taken = tokio::time::timeout(SNAPSHOT_LIMIT, container.snapshot(&tag))
        .await
        .unwrap_or_else(|_| {
            Err(exo_sandbox::SandboxError::Docker(format!(
                "the snapshot did not finish within {} s",
                SNAPSHOT_LIMIT.as_secs()
            )))
        });
    let event = match taken {
        Ok(None) => return Ok(()),
        Ok(Some(snapshot)) => EventData::Custom {
            custom_type: SANDBOX_SNAPSHOT_TYPE.to_owned(),
            payload: json!({
                "image": snapshot.image,
                "id": snapshot.id,
                "container": container.spec().container,
                "changes": snapshot.changes,
            }),
        },
        Err(err) => EventData::Error {
            message: err.to_string(),
            code: Some("sandbox".to_owned()),
        },
    };
    host.record(vec![event]).await.map(drop)
}

/// The longest a turn's end waits for its sandbox's snapshot.
const SNAPSHOT_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The `custom` type that records a request through the egress proxy.
pub const HTTP_REQUEST_TYPE: &str = "http.request";

/// The `custom` type that records a docker sandbox's snapshot.
pub const SANDBOX_SNAPSHOT_TYPE: &str = "sandbox.snapshotted";

/// The assistant's message for a response: reasoning and text, with usage
/// and the model's name. Recorded even when empty, for its usage.
pub(crate) fn assistant_message(response: &Response, model: &str) -> EventData {
    let mut content = Vec::new();
    if let Some(reasoning) = &response.reasoning {
        content.push(ContentPart::Reasoning {
            text: reasoning.clone(),
        });
    }
    if !response.text.is_empty() {
        content.push(ContentPart::Text {
            text: response.text.clone(),
        });
    }
    EventData::Message {
        role: Role::Assistant,
        content,
        usage: response.usage.clone(),
        model: Some(model.to_owned()),
    }
}
