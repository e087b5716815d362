//! `--harness codex`: a turn run by `codex app-server` (spec/agents.md).
//!
//! For each turn exo starts the app-server with an exo-owned `CODEX_HOME`
//! (inside exo's root), its model provider pointed at exo's gateway with a
//! token minted for the conversation, and no other credential in its
//! environment. It starts an ephemeral thread, hands it the conversation's
//! history as Responses items rebuilt from exo's log (`thread/inject_items`:
//! messages, structured tool calls and their outputs, no length cap), and
//! starts the turn. As the turn runs:
//!
//! - answer text streams to exo's observer (`item/agentMessage/delta`);
//! - every item the model produced or a tool returned is recorded as the
//!   exo event other executors read (`message`, `tool_call`,
//!   `tool_result`), from the raw Responses item;
//! - every completed thread item is recorded whole as a `codex.item`
//!   custom event with its native thread, turn and item ids;
//! - the usage of each model response is recorded as `codex.usage`;
//! - Codex's approval requests go through exo's approvals (the agent's
//!   policy, its standing permissions, the attached client);
//! - a cancel interrupts the turn (`turn/interrupt`), and a process that
//!   does not end it within [`CANCEL_GRACE`] is killed.
//!
//! The process ends with the turn; a process killed mid-turn leaves the
//! turn `interrupted` with what was recorded, and the next turn rebuilds
//! the thread from the log.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use exo_core::{AgentConfig, ContentPart, EventData, Harness, Role, TurnStatus, Usage};
use exo_executor::host::{blocking, finish, prepare};
use exo_executor::{
    Delta, Executor, GatewayAccess, HostParts, Observer, Outcome, Substrate, SubstrateError,
    ToolCall, TurnHost, TurnRequest,
};
use exo_model::ClientOptions;
use exo_rpc::message::{Dialect, ErrorObject, Json, Request};
use exo_rpc::peer::{Context, Handler, Options, Peer, PeerHandle};
use exo_rpc::Framing;
use exo_tools::{Access, Limits};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::process::{create_private_dir, find_program, AgentProcess};
use crate::token::Token;

/// The custom event type of a completed Codex thread item.
pub const CODEX_ITEM_TYPE: &str = "codex.item";
/// The custom event type naming the Codex thread a turn ran in.
pub const CODEX_THREAD_TYPE: &str = "codex.thread";
/// The custom event type of a model response's usage, as Codex saw it.
pub const CODEX_USAGE_TYPE: &str = "codex.usage";

/// How long the app-server has to start and answer a setup request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an interrupted turn has to end before its process is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The variable the app-server reads the gateway token from.
const TOKEN_VARIABLE: &str = "EXO_GATEWAY_TOKEN";

/// The Codex harness.
#[derive(Clone)]
pub struct Codex {
    /// The `codex` program: `EXO_CODEX_BIN`, else `codex` on `PATH`.
    pub program: PathBuf,
    /// Retries and timeouts of model calls (for the host; Codex calls the
    /// model itself, through the gateway).
    pub client_options: ClientOptions,
}

impl Default for Codex {
    fn default() -> Codex {
        Codex {
            program: crate::process::configured_program("EXO_CODEX_BIN", "codex"),
            client_options: ClientOptions::default(),
        }
    }
}

impl Executor for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn run_turn(
        &self,
        substrate: Arc<dyn Substrate>,
        request: TurnRequest,
        observer: Arc<dyn Observer>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Outcome, SubstrateError>> {
        let this = self.clone();
        Box::pin(async move { this.run(substrate, request, observer, cancel).await })
    }

    fn check(&self, _config: &AgentConfig) -> Result<(), String> {
        self.locate().map(|_| ())
    }
}

impl Codex {
    /// Where the `codex` program is.
    fn locate(&self) -> Result<PathBuf, String> {
        find_program(&self.program).ok_or_else(|| {
            format!(
                "the codex CLI was not found (looked for {}): install @openai/codex, or name the program in EXO_CODEX_BIN",
                self.program.display()
            )
        })
    }

    async fn run(
        self,
        substrate: Arc<dyn Substrate>,
        request: TurnRequest,
        observer: Arc<dyn Observer>,
        cancel: CancellationToken,
    ) -> Result<Outcome, SubstrateError> {
        // Everything that can be wrong is found before the turn begins,
        // so that a failure records nothing.
        let (agent, conversation) = (request.agent.clone(), request.conversation.clone());
        let setup = blocking(&substrate, move |s| s.setup(&agent, &conversation)).await?;
        if setup.harness != Harness::Codex {
            return Err(format!("the agent's harness is {}, not codex", setup.harness).into());
        }
        let program = self.locate()?;
        let workspace_dir = setup
            .workspace
            .clone()
            .ok_or("the codex harness needs a workspace: its agent works in a directory")?;
        if !workspace_dir.is_dir() {
            return Err(format!("the workspace {} is gone", workspace_dir.display()).into());
        }
        let (agent_id, conversation_id) = (setup.agent.clone(), setup.conversation);
        let access = blocking(&substrate, move |s| {
            s.gateway_token(&agent_id, conversation_id)
        })
        .await?;
        let mut token = Token::new(Arc::clone(&substrate), access, conversation_id);
        if token.access.api != "responses" {
            return Err(format!(
                "the codex harness speaks the OpenAI Responses API, and this agent's model speaks {}: bind a model with provider openai",
                token.access.api
            )
            .into());
        }
        let (client, workspace) = prepare(&setup, &self.client_options).await?;
        let container = workspace
            .as_ref()
            .and_then(|workspace| workspace.sandbox().container_shared());
        // With a docker sandbox, Codex itself runs in the conversation's
        // container (so do the commands it runs), its home in the egress
        // directory the container sees, the gateway relayed to it.
        let mut relay = None;
        let started = match container {
            Some(docker) => {
                let egress = setup.state_dir.join("egress");
                let home = egress.join(exo_sandbox::egress::AGENT_HOME);
                create_private_dir(&home)
                    .map_err(|err| format!("cannot create {}: {err}", home.display()))?;
                let gateway = gateway_address(&token.access.openai_base_url)?;
                relay = Some(
                    exo_sandbox::egress::Relay::start(&egress.join(GATEWAY_SOCKET), gateway)
                        .await
                        .map_err(|err| err.to_string())?,
                );
                start_app_server_in_container(docker, &workspace_dir, &token.access, gateway.port())
                    .await?
            }
            None => {
                let home = setup.state_dir.join("codex");
                create_private_dir(&home)
                    .map_err(|err| format!("cannot create {}: {err}", home.display()))?;
                let mcp = crate::exo_mcp_server(&setup);
                start_app_server(&program, &home, &workspace_dir, &token.access, mcp.as_ref())?
            }
        };
        let process = started.process;
        let host_cell: Arc<OnceLock<Arc<TurnHost>>> = Arc::new(OnceLock::new());
        let (notes_tx, mut notes) = mpsc::unbounded_channel();
        let served = Arc::new(Served {
            host: Arc::clone(&host_cell),
            notes: notes_tx,
            cancel: cancel.clone(),
        });
        let peer = Peer::spawn(
            started.stdout,
            started.stdin,
            served as Arc<dyn Handler>,
            Options {
                dialect: Dialect::Bare,
                framing: Some(Framing::Ndjson),
                cancel_on_drop: false,
                ..Options::default()
            },
        );
        let handle = peer.handle();
        let failed_start = |what: &str, err: String| -> SubstrateError {
            process.kill();
            let why = process
                .last_error()
                .map(|line| format!(" ({line})"))
                .unwrap_or_default();
            format!("codex app-server: {what}: {err}{why}").into()
        };

        let initialize = json!({
            "clientInfo": {"name": "exo", "title": "exo", "version": env!("CARGO_PKG_VERSION")},
            "capabilities": {"experimentalApi": true},
        });
        setup_call(&handle, "initialize", initialize)
            .await
            .map_err(|err| failed_start("initialize", err))?;
        let _ = handle.notify("initialized", Json::null()).await;
        let mut thread_params = json!({
            "cwd": workspace_dir.display().to_string(),
            "model": setup.model.upstream,
            "modelProvider": "exo",
            // Every command and file change is put to exo, which applies
            // the agent's policy and asks its client.
            "approvalPolicy": "untrusted",
            "sandbox": "danger-full-access",
            "ephemeral": true,
            "experimentalRawEvents": true,
        });
        if let Some(instructions) = &setup.instructions {
            thread_params["developerInstructions"] = json!(instructions);
        }
        let thread = setup_call(&handle, "thread/start", thread_params)
            .await
            .map_err(|err| failed_start("thread/start", err))?;
        let thread_id = thread
            .get("thread")
            .and_then(|thread| thread.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| failed_start("thread/start", "its answer named no thread".into()))?;

        // The turn begins, and the history is read in the same trip.
        let input = EventData::Message {
            role: Role::User,
            content: request.input.clone(),
            usage: None,
            model: None,
        };
        let (agent, conversation) = (request.agent.clone(), request.conversation.clone());
        let (begun, mut history) = blocking(&substrate, move |s| {
            let begun = s.begin_turn(&agent, &conversation, input)?;
            let history = exo_executor::prompt_items(s, conversation_id)?;
            // Every request of the turn must carry this history, then
            // the input: the gateway checks.
            s.gateway_expect(conversation_id, Some(history.clone()));
            Ok((begun, history))
        })
        .await
        .inspect_err(|_| process.kill())?;
        token.expecting = true;
        observer.recorded(begun.turn, &begun.events);
        // The input is the turn's own; the thread gets it from turn/start.
        if matches!(
            history.last(),
            Some(exo_model::Item::Message {
                role: Role::User,
                ..
            })
        ) {
            history.pop();
        }
        let host = Arc::new(TurnHost::new(HostParts {
            substrate: Arc::clone(&substrate),
            observer: Arc::clone(&observer),
            turn: begun.turn,
            conversation: setup.conversation,
            agent: setup.agent.clone(),
            approval: setup.approval,
            allow: setup.allow.clone(),
            client,
            upstream: setup.model.upstream.clone(),
            workspace,
            limits: Limits::default(),
            recorded: begun.events.clone(),
            // The CLI gets exo's tools as its own MCP server (spec/mcp.md).
            mcp: exo_executor::mcp::McpTools::default(),
        }));
        let _ = host_cell.set(Arc::clone(&host));

        let mut turn = TurnState {
            host: Arc::clone(&host),
            upstream: setup.model.upstream.clone(),
            thread: thread_id.clone(),
            codex_turn: String::new(),
            pending: Vec::new(),
            streamed: String::new(),
        };
        let outcome = turn
            .drive(
                &handle,
                &process,
                &mut notes,
                &history,
                &request.input,
                &cancel,
            )
            .await;
        let (status, error) = match outcome {
            Ok(ended) => ended,
            Err(err) => {
                process.kill();
                // What failed is the substrate; the turn still ends.
                let _ = finish(
                    &host,
                    begun.session,
                    TurnStatus::Failed,
                    Some(err.to_string()),
                )
                .await;
                return Err(err);
            }
        };
        peer.stop();
        process.kill_and_wait().await;
        drop(relay);
        token.close().await?;
        if let Some(message) = &error {
            host.record(vec![EventData::Error {
                message: message.clone(),
                code: Some("codex".into()),
            }])
            .await?;
        }
        finish(&host, begun.session, status, error).await
    }
}

/// A turn being driven.
struct TurnState {
    host: Arc<TurnHost>,
    upstream: String,
    thread: String,
    /// Codex's id for the turn, once started: notifications about other
    /// turns (the injected history is one) are not this turn's.
    codex_turn: String,
    /// Events of the model response being read, recorded when it ends.
    pending: Vec<EventData>,
    /// Answer text streamed and not yet recorded (its item has not
    /// completed): kept as a partial answer if the turn stops first.
    streamed: String,
}

impl TurnState {
    /// Hands the thread its history, starts the turn and follows it to its
    /// end: the status to record and why it did not complete.
    async fn drive(
        &mut self,
        handle: &PeerHandle,
        process: &AgentProcess,
        notes: &mut mpsc::UnboundedReceiver<(String, Value)>,
        history: &[exo_model::Item],
        input: &[ContentPart],
        cancel: &CancellationToken,
    ) -> Result<(TurnStatus, Option<String>), SubstrateError> {
        let failed = |what: &str, err: String| {
            let why = process
                .last_error()
                .map(|line| format!(" ({line})"))
                .unwrap_or_default();
            Ok((
                TurnStatus::Failed,
                Some(format!("codex app-server: {what}: {err}{why}")),
            ))
        };
        let items = exo_model::responses_input(history);
        if !items.is_empty() {
            let params = json!({"threadId": self.thread, "items": items});
            if let Err(err) = setup_call(handle, "thread/inject_items", params).await {
                return failed("thread/inject_items", err);
            }
        }
        let params = json!({"threadId": self.thread, "input": user_input(input)});
        let started = match setup_call(handle, "turn/start", params).await {
            Ok(started) => started,
            Err(err) => return failed("turn/start", err),
        };
        let codex_turn = started
            .get("turn")
            .and_then(|turn| turn.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.codex_turn = codex_turn.clone();
        self.host
            .record(vec![EventData::Custom {
                custom_type: CODEX_THREAD_TYPE.into(),
                payload: json!({"thread": self.thread, "turn": codex_turn}),
            }])
            .await?;

        let mut interrupted_at: Option<tokio::time::Instant> = None;
        loop {
            let grace = async {
                match interrupted_at {
                    Some(at) => tokio::time::sleep_until(at + CANCEL_GRACE).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                note = notes.recv() => {
                    let Some((method, params)) = note else {
                        return self.gone(process, interrupted_at.is_some()).await;
                    };
                    if let Some(ended) = self.note(&method, params).await? {
                        let ended = match (ended, interrupted_at) {
                            ((TurnStatus::Failed, error), Some(_)) => (TurnStatus::Cancelled, error),
                            ((TurnStatus::Completed, _), Some(_)) => (TurnStatus::Cancelled, None),
                            (ended, _) => ended,
                        };
                        if ended.0 == TurnStatus::Completed {
                            self.flush().await?;
                        } else {
                            self.keep_partial().await?;
                        }
                        return Ok(ended);
                    }
                }
                () = cancel.cancelled(), if interrupted_at.is_none() => {
                    interrupted_at = Some(tokio::time::Instant::now());
                    let params = json!({"threadId": self.thread, "turnId": codex_turn});
                    let handle = handle.clone();
                    // Not awaited here: the loop goes on reading what the
                    // turn says as it stops.
                    tokio::spawn(async move {
                        let _ = handle.request("turn/interrupt", Json::from_value(&params)).await;
                    });
                }
                () = grace => {
                    process.kill();
                    self.keep_partial().await?;
                    return Ok((TurnStatus::Cancelled, None));
                }
            }
        }
    }

    /// The process went away before the turn ended.
    async fn gone(
        &mut self,
        process: &AgentProcess,
        cancelled: bool,
    ) -> Result<(TurnStatus, Option<String>), SubstrateError> {
        self.keep_partial().await?;
        if cancelled {
            return Ok((TurnStatus::Cancelled, None));
        }
        let why = process
            .last_error()
            .map(|line| format!(": {line}"))
            .unwrap_or_default();
        Ok((
            TurnStatus::Interrupted,
            Some(format!("the codex app-server exited during the turn{why}")),
        ))
    }

    /// Records the answer text that streamed without its item completing
    /// (a turn stopped mid-answer), as the built-in executor keeps it.
    async fn keep_partial(&mut self) -> Result<(), SubstrateError> {
        self.flush().await?;
        if self.streamed.is_empty() {
            return Ok(());
        }
        let text = std::mem::take(&mut self.streamed);
        self.host
            .record(vec![crate::partial_answer(text, &self.upstream)])
            .await?;
        Ok(())
    }

    /// Records what pending events the response being read produced.
    async fn flush(&mut self) -> Result<(), SubstrateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.host.record(batch).await?;
        Ok(())
    }

    /// Handles one notification; the turn's end when it is one.
    async fn note(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<Option<(TurnStatus, Option<String>)>, SubstrateError> {
        let turn = self.host.turn();
        if let Some(other) = params.get("turnId").and_then(Value::as_str) {
            if other != self.codex_turn {
                return Ok(None);
            }
        }
        match method {
            "item/agentMessage/delta" => {
                if let Some(delta) = params.get("delta").and_then(Value::as_str) {
                    self.streamed.push_str(delta);
                    self.host
                        .observer()
                        .delta(turn, &Delta::Text(delta.to_owned()));
                }
            }
            "item/reasoning/summaryTextDelta" | "item/reasoning/textDelta" => {
                if let Some(delta) = params.get("delta").and_then(Value::as_str) {
                    self.host
                        .observer()
                        .delta(turn, &Delta::Reasoning(delta.to_owned()));
                }
            }
            "rawResponseItem/completed" => {
                let Some(item) = params.get("item") else {
                    return Ok(None);
                };
                let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
                // An output answers a call: the call's response is over.
                if kind.ends_with("_output") {
                    self.flush().await?;
                }
                if let Some(event) = event_of_item(item, &self.upstream) {
                    if matches!(event, EventData::Message { .. }) {
                        self.streamed.clear();
                    }
                    if let EventData::ToolCall { call_id, name, .. } = &event {
                        self.host.observer().delta(
                            turn,
                            &Delta::ToolCall {
                                call_id: call_id.clone(),
                                name: name.clone(),
                            },
                        );
                    }
                    self.pending.push(event);
                }
                if kind.ends_with("_output") {
                    self.flush().await?;
                }
            }
            "rawResponse/completed" => {
                let usage = params.get("usage").map(usage_of);
                // The usage goes on the response's last message; one that
                // made only tool calls gets an empty message for it, as the
                // built-in executor records it.
                if let Some(usage) = usage {
                    crate::attach_usage(&mut self.pending, usage, &self.upstream);
                }
                self.pending.push(EventData::Custom {
                    custom_type: CODEX_USAGE_TYPE.into(),
                    payload: json!({
                        "thread": params.get("threadId"),
                        "turn": params.get("turnId"),
                        "response": params.get("responseId"),
                        "usage": params.get("usage"),
                    }),
                });
                self.flush().await?;
            }
            "item/completed" => {
                let Some(item) = params.get("item") else {
                    return Ok(None);
                };
                // The raw items of a response come first; keep the order
                // they happened in.
                self.flush().await?;
                self.host
                    .record(vec![EventData::Custom {
                        custom_type: CODEX_ITEM_TYPE.into(),
                        payload: json!({
                            "thread": params.get("threadId"),
                            "turn": params.get("turnId"),
                            "item_id": item.get("id"),
                            "item_type": item.get("type"),
                            "item": item,
                        }),
                    }])
                    .await?;
            }
            "turn/completed" => {
                let turn = params.get("turn").cloned().unwrap_or(Value::Null);
                let error = turn
                    .get("error")
                    .and_then(|error| error.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let status = match turn.get("status").and_then(Value::as_str) {
                    Some("completed") => TurnStatus::Completed,
                    Some("interrupted") => TurnStatus::Cancelled,
                    _ => TurnStatus::Failed,
                };
                let error = match status {
                    TurnStatus::Failed => {
                        Some(error.unwrap_or_else(|| "the codex turn failed".to_owned()))
                    }
                    _ => None,
                };
                return Ok(Some((status, error)));
            }
            _ => {}
        }
        Ok(None)
    }
}

/// The exo event a raw Responses item is, if it is part of the
/// conversation (Codex's own context messages are not).
fn event_of_item(item: &Value, upstream: &str) -> Option<EventData> {
    let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
    match item.get("type").and_then(Value::as_str)? {
        "message" if item.get("role").and_then(Value::as_str) == Some("assistant") => {
            let content = item
                .get("content")
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|part| part.get("text").and_then(Value::as_str))
                        .map(|text| ContentPart::Text {
                            text: text.to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(EventData::Message {
                role: Role::Assistant,
                content,
                usage: None,
                model: Some(upstream.to_owned()),
            })
        }
        "function_call" => {
            let arguments = text("arguments").unwrap_or_default();
            // A tool in a namespace (an MCP server's) is named with it:
            // `mcp__exo__events`.
            let name = match text("namespace") {
                Some(namespace) => format!("{namespace}__{}", text("name")?),
                None => text("name")?,
            };
            Some(EventData::ToolCall {
                call_id: text("call_id")?,
                name,
                arguments: serde_json::from_str(&arguments).unwrap_or(Value::String(arguments)),
            })
        }
        "custom_tool_call" => Some(EventData::ToolCall {
            call_id: text("call_id")?,
            name: text("name")?,
            arguments: json!({"input": text("input").unwrap_or_default()}),
        }),
        "function_call_output" | "custom_tool_call_output" => Some(EventData::ToolResult {
            call_id: text("call_id")?,
            output: Value::String(output_text(item.get("output"))),
            is_error: false,
        }),
        _ => None,
    }
}

/// A tool output as text: a string, or the text parts of a list.
fn output_text(output: Option<&Value>) -> String {
    match output {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Object(object)) => object
            .get("content")
            .map(|content| output_text(Some(content)))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Codex's usage (camelCase) as exo's.
fn usage_of(usage: &Value) -> Usage {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    Usage {
        input_tokens: count("inputTokens").unwrap_or_default(),
        output_tokens: count("outputTokens").unwrap_or_default(),
        cached_input_tokens: count("cachedInputTokens").filter(|n| *n > 0),
    }
}

/// The user's input as Codex's `UserInput` list.
fn user_input(input: &[ContentPart]) -> Value {
    let parts: Vec<Value> = input
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => {
                Some(json!({"type": "text", "text": text, "text_elements": []}))
            }
            ContentPart::Image { media_type, data } => Some(json!({
                "type": "image",
                "url": format!("data:{media_type};base64,{data}"),
            })),
            _ => None,
        })
        .collect();
    Value::Array(parts)
}

/// A request made while setting a turn up, bounded in time.
async fn setup_call(handle: &PeerHandle, method: &str, params: Value) -> Result<Value, String> {
    match tokio::time::timeout(
        START_TIMEOUT,
        handle.request(method, Json::from_value(&params)),
    )
    .await
    {
        Ok(Ok(answer)) => Ok(answer.to_value()),
        Ok(Err(exo_rpc::peer::RequestError::Closed)) => Err("it exited".into()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {} s", START_TIMEOUT.as_secs())),
    }
}

/// The gateway's socket in the egress directory, relayed into a
/// container.
pub(crate) const GATEWAY_SOCKET: &str = "gateway.sock";

/// The gateway's address, from its base URL (`http://127.0.0.1:PORT/v1`).
pub(crate) fn gateway_address(base_url: &str) -> Result<std::net::SocketAddr, String> {
    base_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse().ok())
        .ok_or_else(|| format!("internal error: the gateway's URL {base_url} names no address"))
}

/// Starts `codex app-server` for one turn in the conversation's container
/// (the image's `codex`, `exo/codex:VERSION`), the gateway's port of its
/// loopback relayed to exo's gateway. exo's MCP server over the history is
/// not offered there (it would need exo's root).
async fn start_app_server_in_container(
    docker: Arc<exo_sandbox::docker::Docker>,
    cwd: &Path,
    access: &GatewayAccess,
    gateway_port: u16,
) -> Result<crate::process::Started, String> {
    let args: Vec<String> = app_server_args(access, None)
        .into_iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let home = format!(
        "{}/{}",
        exo_sandbox::egress::INSIDE_DIR,
        exo_sandbox::egress::AGENT_HOME
    );
    let env = [
        (OsString::from("CODEX_HOME"), OsString::from(home)),
        (
            OsString::from(TOKEN_VARIABLE),
            OsString::from(&access.token),
        ),
    ];
    crate::process::AgentProcess::start_in_container(
        docker,
        "codex",
        &args,
        cwd,
        &env,
        &[(gateway_port, GATEWAY_SOCKET.to_owned())],
        "codex app-server",
    )
    .await
}

/// Starts `codex app-server` for one turn.
fn start_app_server(
    program: &Path,
    home: &Path,
    cwd: &Path,
    access: &GatewayAccess,
    mcp: Option<&crate::McpServer>,
) -> Result<crate::process::Started, String> {
    let args = app_server_args(access, mcp);
    let env = [
        (OsString::from("CODEX_HOME"), home.as_os_str().to_owned()),
        (
            OsString::from(TOKEN_VARIABLE),
            OsString::from(&access.token),
        ),
    ];
    crate::process::AgentProcess::start(program, &args, cwd, &env, "codex app-server")
}

/// `codex app-server`'s arguments: its model provider pointed at the
/// gateway, nothing else reached, and exo's MCP server when given.
fn app_server_args(access: &GatewayAccess, mcp: Option<&crate::McpServer>) -> Vec<OsString> {
    let toml_string = |text: &str| Value::String(text.to_owned()).to_string();
    let settings = [
        format!("model_provider={}", toml_string("exo")),
        format!("model_providers.exo.name={}", toml_string("exo")),
        format!(
            "model_providers.exo.base_url={}",
            toml_string(&access.openai_base_url)
        ),
        format!("model_providers.exo.wire_api={}", toml_string("responses")),
        format!(
            "model_providers.exo.env_key={}",
            toml_string(TOKEN_VARIABLE)
        ),
        // Nothing but the model through the gateway: no update checks,
        // no telemetry, no web search.
        "check_for_update_on_startup=false".to_owned(),
        format!("web_search={}", toml_string("disabled")),
        "analytics.enabled=false".to_owned(),
    ];
    let mut settings = settings.to_vec();
    // exo's MCP server over this conversation, so the agent can read its
    // own history (spec/mcp.md); Codex offers its tools in the namespace
    // `mcp__exo`.
    if let Some(server) = mcp {
        settings.push(format!(
            "mcp_servers.exo.command={}",
            toml_string(&server.command)
        ));
        let args: Vec<Value> = server
            .args
            .iter()
            .map(|arg| Value::String(arg.clone()))
            .collect();
        settings.push(format!("mcp_servers.exo.args={}", Value::Array(args)));
    }
    let mut args: Vec<OsString> = vec!["app-server".into()];
    for setting in settings {
        args.push("-c".into());
        args.push(setting.into());
    }
    args
}

/// Writes `history` as the rollout of a Codex session `session` in
/// `home` (`CODEX_HOME`), for `codex resume SESSION` (nothing when the
/// history is empty); whether there is one to resume. Earlier sessions in
/// `home` are removed: they are caches of the log.
pub fn write_rollout(
    home: &Path,
    cwd: &Path,
    session: &str,
    history: &[exo_model::Item],
) -> std::io::Result<bool> {
    let sessions = home.join("sessions");
    if sessions.is_dir() {
        std::fs::remove_dir_all(&sessions)?;
    }
    let items = exo_model::responses_input(history);
    if items.is_empty() {
        return Ok(false);
    }
    // The session's date and time, as Codex names its files.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    let (date, time) = utc_date_time(now);
    let day = sessions.join(date.replace('-', "/"));
    create_private_dir(&day)?;
    let timestamp = format!("{date}T{time}.000Z");
    let mut lines = vec![json!({
        "timestamp": timestamp,
        "ordinal": 0,
        "type": "session_meta",
        "payload": {
            "session_id": session,
            "id": session,
            "timestamp": timestamp,
            "cwd": cwd.to_string_lossy(),
            "originator": "exo",
            "cli_version": "0.169.0",
            "source": "cli",
            "model_provider": "exo",
        },
    })];
    for (index, item) in items.into_iter().enumerate() {
        lines.push(json!({
            "timestamp": timestamp,
            "ordinal": index + 1,
            "type": "response_item",
            "payload": item,
        }));
    }
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let name = format!("rollout-{date}T{}-{session}.jsonl", time.replace(':', "-"));
    let partial = day.join(format!(".{name}.partial"));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, day.join(name))?;
    Ok(true)
}

/// `YYYY-MM-DD` and `HH:MM:SS` of a Unix time, in UTC.
fn utc_date_time(seconds: u64) -> (String, String) {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            rest / 3600,
            (rest % 3600) / 60,
            rest % 60
        ),
    )
}

/// What serves the app-server's requests to exo: approvals, through the
/// turn's host. Notifications go to the turn's loop, in order.
struct Served {
    host: Arc<OnceLock<Arc<TurnHost>>>,
    notes: mpsc::UnboundedSender<(String, Value)>,
    cancel: CancellationToken,
}

impl Handler for Served {
    fn handle(
        &self,
        request: Request,
        _context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        if request.is_notification() {
            let params = request.params.map(|p| p.to_value()).unwrap_or(Value::Null);
            let _ = self.notes.send((request.method, params));
            return Box::pin(async { Ok(Json::null()) });
        }
        let host = self.host.get().cloned();
        let cancel = self.cancel.clone();
        let params = request.params.map(|p| p.to_value()).unwrap_or(Value::Null);
        let method = request.method;
        Box::pin(async move {
            let (tool, arguments, decisions) = match method.as_str() {
                "item/commandExecution/requestApproval" => (
                    "shell",
                    json!({
                        "command": params.get("command"),
                        "cwd": params.get("cwd"),
                        "reason": params.get("reason"),
                    }),
                    true,
                ),
                "item/fileChange/requestApproval" => (
                    "apply_patch",
                    json!({
                        "reason": params.get("reason"),
                        "grant_root": params.get("grantRoot"),
                    }),
                    true,
                ),
                _ => ("", Value::Null, false),
            };
            let Some(host) = host.filter(|_| decisions) else {
                return Err(ErrorObject::new(
                    exo_rpc::message::METHOD_NOT_FOUND,
                    format!("exo does not serve {method}"),
                ));
            };
            let call = ToolCall {
                call_id: params
                    .get("itemId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                name: tool.to_owned(),
                arguments,
            };
            let access = if tool == "shell" {
                Access::Shell
            } else {
                Access::Write
            };
            let decision = match host.approve(&call, access, &cancel).await {
                Ok(Some(approval)) if approval.decision.allows() => "accept",
                Ok(Some(_)) => "decline",
                Ok(None) => "cancel",
                Err(err) => {
                    tracing::warn!(%err, "could not record an approval; declining the call");
                    "decline"
                }
            };
            Ok(Json::from_value(&json!({"decision": decision})))
        })
    }

    fn needs_slot(&self, _request: &Request) -> bool {
        false
    }
}

// How raw items, usage and dates read.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_context_messages_are_not_conversation() {
        let developer = json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "x"}]});
        let user = json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>"}]});
        assert!(event_of_item(&developer, "m").is_none());
        assert!(event_of_item(&user, "m").is_none());
    }

    #[test]
    fn calls_and_outputs_become_structured_events() {
        let call = json!({"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{\"cmd\": \"ls\"}"});
        assert_eq!(
            event_of_item(&call, "m"),
            Some(EventData::ToolCall {
                call_id: "c1".into(),
                name: "exec_command".into(),
                arguments: json!({"cmd": "ls"}),
            })
        );
        let output = json!({"type": "function_call_output", "call_id": "c1", "output": "a\nb"});
        assert_eq!(
            event_of_item(&output, "m"),
            Some(EventData::ToolResult {
                call_id: "c1".into(),
                output: json!("a\nb"),
                is_error: false,
            })
        );
        let answer = json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]});
        assert!(matches!(
            event_of_item(&answer, "m"),
            Some(EventData::Message {
                role: Role::Assistant,
                ..
            })
        ));
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(
            utc_date_time(0),
            ("1970-01-01".to_string(), "00:00:00".to_string())
        );
        assert_eq!(
            utc_date_time(1_796_449_739),
            ("2026-12-05".to_string(), "05:48:59".to_string())
        );
        assert_eq!(
            utc_date_time(951_782_400),
            ("2000-02-29".to_string(), "00:00:00".to_string())
        );
    }

    #[test]
    fn usage_reads_codex_field_names() {
        let usage =
            usage_of(&json!({"inputTokens": 10, "outputTokens": 5, "cachedInputTokens": 0}));
        assert_eq!(usage.input_tokens, 10);
        assert_eq!(usage.output_tokens, 5);
        assert_eq!(usage.cached_input_tokens, None);
    }
}
