//! `--harness claude-code`: a turn run by Claude Code (spec/agents.md).
//!
//! For each turn exo starts `claude -p` with stream-json in and out (and
//! partial messages, for live text), an exo-owned `CLAUDE_CONFIG_DIR`
//! inside exo's root, `ANTHROPIC_BASE_URL` at exo's gateway with a token
//! minted for the conversation as its key, and non-essential traffic off.
//! The conversation's history is written as a Claude Code transcript,
//! rebuilt from exo's log, which the turn resumes; the user's input goes
//! in on stdin. As the turn runs, answer text streams to exo's observer,
//! every assistant block and tool result is recorded as the exo event other
//! executors read, each transcript entry whole as `claude.entry` with its
//! uuid, and permission prompts (`can_use_tool`) go through exo's
//! approvals. A cancel sends an `interrupt` control request.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use exo_core::{AgentConfig, ContentPart, EventData, Harness, Role, TurnStatus, Usage};
use exo_executor::host::{blocking, finish, prepare};
use exo_executor::{
    Delta, Executor, HostParts, Observer, Outcome, Substrate, SubstrateError, ToolCall, TurnHost,
    TurnRequest,
};
use exo_model::ClientOptions;
use exo_tools::{Access, Limits};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Mutex};
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::process::{find_program, AgentProcess};
use crate::token::Token;

/// The custom event type of a Claude Code transcript entry.
pub const CLAUDE_ENTRY_TYPE: &str = "claude.entry";
/// The custom event type naming the session a turn ran in.
pub const CLAUDE_SESSION_TYPE: &str = "claude.session";
/// The custom event type of a turn's result, as Claude Code reported it.
pub const CLAUDE_RESULT_TYPE: &str = "claude.result";

/// How long an interrupted turn has to end before its process is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The longest line read from Claude Code.
const MAX_LINE: usize = 64 << 20;

/// The Claude Code harness.
#[derive(Clone)]
pub struct ClaudeCode {
    /// The `claude` program: `EXO_CLAUDE_BIN`, else `claude` on `PATH`.
    pub program: PathBuf,
    /// Retries and timeouts of model calls (for the host; Claude Code
    /// calls the model itself, through the gateway).
    pub client_options: ClientOptions,
}

impl Default for ClaudeCode {
    fn default() -> ClaudeCode {
        ClaudeCode {
            program: crate::process::configured_program("EXO_CLAUDE_BIN", "claude"),
            client_options: ClientOptions::default(),
        }
    }
}

impl Executor for ClaudeCode {
    fn name(&self) -> &'static str {
        "claude-code"
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

/// What goes to Claude Code's stdin, one JSON line at a time.
type Writer = Arc<Mutex<Option<crate::process::Input>>>;

async fn write_line(writer: &Writer, value: &Value) -> bool {
    let mut line = value.to_string();
    line.push('\n');
    let mut writer = writer.lock().await;
    match writer.as_mut() {
        Some(stdin) => {
            stdin.write_all(line.as_bytes()).await.is_ok() && stdin.flush().await.is_ok()
        }
        None => false,
    }
}

impl ClaudeCode {
    /// Where the `claude` program is.
    fn locate(&self) -> Result<PathBuf, String> {
        find_program(&self.program).ok_or_else(|| {
            format!(
                "the claude CLI was not found (looked for {}): install @anthropic-ai/claude-code, or name the program in EXO_CLAUDE_BIN",
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
        let (agent, conversation) = (request.agent.clone(), request.conversation.clone());
        let setup = blocking(&substrate, move |s| s.setup(&agent, &conversation)).await?;
        if setup.harness != Harness::ClaudeCode {
            return Err(
                format!("the agent's harness is {}, not claude-code", setup.harness).into(),
            );
        }
        let program = self.locate()?;
        let workspace_dir = setup
            .workspace
            .clone()
            .ok_or("the claude-code harness needs a workspace: its agent works in a directory")?;
        if !workspace_dir.is_dir() {
            return Err(format!("the workspace {} is gone", workspace_dir.display()).into());
        }
        let (agent_id, conversation_id) = (setup.agent.clone(), setup.conversation);
        let access = blocking(&substrate, move |s| {
            s.gateway_token(&agent_id, conversation_id)
        })
        .await?;
        let mut token = Token::new(Arc::clone(&substrate), access, conversation_id);
        if token.access.api != "messages" {
            return Err(format!(
                "the claude-code harness speaks the Anthropic Messages API, and this agent's model speaks {}: bind a model with provider anthropic",
                token.access.api
            )
            .into());
        }
        let (client, workspace) = prepare(&setup, &self.client_options).await?;
        // With a docker sandbox, Claude Code itself runs in the
        // conversation's container (so do the commands it runs), its
        // configuration in the egress directory the container sees, the
        // gateway relayed to it.
        let container = workspace
            .as_ref()
            .and_then(|workspace| workspace.sandbox().container_shared());
        let config_dir = match container {
            Some(_) => setup
                .state_dir
                .join("egress")
                .join(exo_sandbox::egress::AGENT_HOME),
            None => setup.state_dir.join("claude"),
        };
        crate::process::create_private_dir(&config_dir)
            .map_err(|err| format!("cannot create {}: {err}", config_dir.display()))?;
        let relay = match &container {
            Some(_) => {
                let gateway = crate::codex::gateway_address(&token.access.anthropic_base_url)?;
                Some((
                    exo_sandbox::egress::Relay::start(
                        &setup
                            .state_dir
                            .join("egress")
                            .join(crate::codex::GATEWAY_SOCKET),
                        gateway,
                    )
                    .await
                    .map_err(|err| err.to_string())?,
                    gateway.port(),
                ))
            }
            None => None,
        };

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
            s.gateway_expect(conversation_id, Some(history.clone()));
            Ok((begun, history))
        })
        .await?;
        token.expecting = true;
        observer.recorded(begun.turn, &begun.events);
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

        let session = new_session_id();
        let written = write_transcript(
            &config_dir,
            &workspace_dir,
            &session,
            &setup.model.upstream,
            &history,
        )
        .map_err(|err| format!("cannot write the session's transcript: {err}"));
        let started = match written {
            Ok(resumed) => {
                let mut args = arguments(
                    &setup.model.upstream,
                    &session,
                    resumed,
                    setup.instructions.as_deref(),
                    request.max_rounds,
                );
                match (&container, &relay) {
                    (Some(docker), Some((_, port))) => {
                        start_claude_in_container(
                            Arc::clone(docker),
                            &args,
                            &workspace_dir,
                            &token,
                            *port,
                        )
                        .await
                    }
                    _ => {
                        // exo's MCP server over this conversation, so the
                        // agent can read its own history (spec/mcp.md).
                        if let Some(server) = crate::exo_mcp_server(&setup) {
                            let config = serde_json::json!({"mcpServers": {"exo": {
                                "command": server.command,
                                "args": server.args,
                            }}});
                            args.extend(["--mcp-config".into(), config.to_string().into()]);
                        }
                        start_claude(&program, &args, &config_dir, &workspace_dir, &token)
                    }
                }
            }
            Err(err) => Err(err),
        };
        let started = match started {
            Ok(started) => started,
            Err(err) => {
                let events = vec![EventData::Error {
                    message: err.clone(),
                    code: Some("claude-code".into()),
                }];
                host.record(events).await?;
                token.close().await?;
                return finish(&host, begun.session, TurnStatus::Failed, Some(err)).await;
            }
        };
        let process = started.process;
        let writer: Writer = Arc::new(Mutex::new(Some(started.stdin)));
        let (lines_tx, mut lines) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            let mut framed =
                FramedRead::new(started.stdout, LinesCodec::new_with_max_length(MAX_LINE));
            while let Some(line) = framed.next().await {
                let line = match line {
                    Ok(line) => line,
                    Err(err) => {
                        // Said as what it is, not as the process's end.
                        let _ = lines_tx
                            .send(json!({"type": "exo.unreadable", "error": err.to_string()}));
                        break;
                    }
                };
                // Claude Code writes an odd line that is not JSON; skip it.
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if lines_tx.send(value).is_err() {
                    break;
                }
            }
        });

        let first = json!({
            "type": "user",
            "message": {"role": "user", "content": user_content(&request.input)},
        });
        let mut turn = TurnState {
            host: Arc::clone(&host),
            upstream: setup.model.upstream.clone(),
            writer: Arc::clone(&writer),
            cancel: cancel.clone(),
            pending: Vec::new(),
            usage: Usage::default(),
            streamed: String::new(),
        };
        let (status, error) = if write_line(&writer, &first).await {
            turn.drive(&process, &mut lines, &cancel).await?
        } else {
            let why = process
                .last_error()
                .map(|line| format!(": {line}"))
                .unwrap_or_default();
            (
                TurnStatus::Failed,
                Some(format!("claude exited before it read the prompt{why}")),
            )
        };
        writer.lock().await.take();
        process.kill_and_wait().await;
        drop(relay);
        token.close().await?;
        if let Some(message) = &error {
            host.record(vec![EventData::Error {
                message: message.clone(),
                code: Some("claude-code".into()),
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
    writer: Writer,
    cancel: CancellationToken,
    /// Events of the assistant message being streamed, recorded when it
    /// ends (with its usage).
    pending: Vec<EventData>,
    /// The usage of the assistant message being streamed.
    usage: Usage,
    /// Answer text streamed and not yet recorded.
    streamed: String,
}

impl TurnState {
    async fn drive(
        &mut self,
        process: &AgentProcess,
        lines: &mut mpsc::UnboundedReceiver<Value>,
        cancel: &CancellationToken,
    ) -> Result<(TurnStatus, Option<String>), SubstrateError> {
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
                line = lines.recv() => {
                    let Some(line) = line else {
                        self.keep_partial().await?;
                        if interrupted_at.is_some() {
                            return Ok((TurnStatus::Cancelled, None));
                        }
                        let why = process.last_error().map(|line| format!(": {line}")).unwrap_or_default();
                        return Ok((TurnStatus::Interrupted, Some(format!("claude exited during the turn{why}"))));
                    };
                    if let Some(ended) = self.line(line).await? {
                        let ended = match (ended, interrupted_at) {
                            (_, Some(_)) => (TurnStatus::Cancelled, None),
                            (ended, None) => ended,
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
                    let interrupt = json!({
                        "type": "control_request",
                        "request_id": format!("exo-interrupt-{}", self.host.turn()),
                        "request": {"subtype": "interrupt"},
                    });
                    let writer = Arc::clone(&self.writer);
                    tokio::spawn(async move { write_line(&writer, &interrupt).await });
                }
                () = grace => {
                    process.kill();
                    self.keep_partial().await?;
                    return Ok((TurnStatus::Cancelled, None));
                }
            }
        }
    }

    /// Records the pending events of the assistant message streamed so far.
    async fn flush(&mut self) -> Result<(), SubstrateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.pending);
        let usage = std::mem::take(&mut self.usage);
        if usage != Usage::default() {
            crate::attach_usage(&mut batch, usage, &self.upstream);
        }
        self.host.record(batch).await?;
        Ok(())
    }

    /// Records answer text that streamed without its message completing.
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

    /// Handles one line; the turn's end when it is the result.
    async fn line(
        &mut self,
        line: Value,
    ) -> Result<Option<(TurnStatus, Option<String>)>, SubstrateError> {
        let turn = self.host.turn();
        let text =
            |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        match line.get("type").and_then(Value::as_str).unwrap_or_default() {
            "stream_event" => {
                let event = line.get("event").cloned().unwrap_or(Value::Null);
                match event
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                {
                    "content_block_delta" => {
                        let delta = event.get("delta").cloned().unwrap_or(Value::Null);
                        match delta.get("type").and_then(Value::as_str) {
                            Some("text_delta") => {
                                if let Some(piece) = text(&delta, "text") {
                                    self.streamed.push_str(&piece);
                                    self.host.observer().delta(turn, &Delta::Text(piece));
                                }
                            }
                            Some("thinking_delta") => {
                                if let Some(piece) = text(&delta, "thinking") {
                                    self.host.observer().delta(turn, &Delta::Reasoning(piece));
                                }
                            }
                            _ => {}
                        }
                    }
                    "message_start" => {
                        let usage = &event["message"]["usage"];
                        self.usage.input_tokens = usage["input_tokens"].as_u64().unwrap_or(0);
                        self.usage.cached_input_tokens =
                            usage["cache_read_input_tokens"].as_u64().filter(|n| *n > 0);
                    }
                    "message_delta" => {
                        if let Some(output) = event["usage"]["output_tokens"].as_u64() {
                            self.usage.output_tokens = output;
                        }
                    }
                    "message_stop" => self.flush().await?,
                    _ => {}
                }
            }
            "assistant" => {
                let message = line.get("message").cloned().unwrap_or(Value::Null);
                // Claude Code's own words (an API error it reports as an
                // answer) are not the model's: kept as its entry only, never
                // sent back as the model's message.
                let synthetic = message.get("model").and_then(Value::as_str) == Some("<synthetic>");
                for block in message["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|_| !synthetic)
                {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            self.streamed.clear();
                            self.pending.push(EventData::Message {
                                role: Role::Assistant,
                                content: vec![ContentPart::Text {
                                    text: text(block, "text").unwrap_or_default(),
                                }],
                                usage: None,
                                model: Some(self.upstream.clone()),
                            });
                        }
                        Some("tool_use") => {
                            let (call_id, name) = (
                                text(block, "id").unwrap_or_default(),
                                text(block, "name").unwrap_or_default(),
                            );
                            self.host.observer().delta(
                                turn,
                                &Delta::ToolCall {
                                    call_id: call_id.clone(),
                                    name: name.clone(),
                                },
                            );
                            self.pending.push(EventData::ToolCall {
                                call_id,
                                name,
                                arguments: block.get("input").cloned().unwrap_or(json!({})),
                            });
                        }
                        _ => {}
                    }
                }
                self.pending.push(entry_event(&line));
                // A message that never streamed (an error Claude Code made
                // up itself) has no message_stop to wait for.
                if message.get("model").and_then(Value::as_str) == Some("<synthetic>") {
                    self.flush().await?;
                }
            }
            "user" => {
                self.flush().await?;
                let mut events = Vec::new();
                for block in line["message"]["content"].as_array().into_iter().flatten() {
                    if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                        events.push(EventData::ToolResult {
                            call_id: text(block, "tool_use_id").unwrap_or_default(),
                            output: Value::String(result_text(block.get("content"))),
                            is_error: block
                                .get("is_error")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        });
                    }
                }
                events.push(entry_event(&line));
                self.host.record(events).await?;
            }
            "system" if line.get("subtype").and_then(Value::as_str) == Some("init") => {
                self.host
                    .record(vec![EventData::Custom {
                        custom_type: CLAUDE_SESSION_TYPE.into(),
                        payload: json!({
                            "session": line.get("session_id"),
                            "model": line.get("model"),
                            "cwd": line.get("cwd"),
                            "version": line.get("claude_code_version"),
                        }),
                    }])
                    .await?;
            }
            "control_request" => self.control(line),
            "exo.unreadable" => {
                let why = line["error"].as_str().unwrap_or("unreadable output");
                return Ok(Some((
                    TurnStatus::Failed,
                    Some(format!(
                        "claude wrote output exo cannot read ({why}; the limit is 64 MiB a line)"
                    )),
                )));
            }
            "result" => {
                self.flush().await?;
                self.host
                    .record(vec![EventData::Custom {
                        custom_type: CLAUDE_RESULT_TYPE.into(),
                        payload: json!({
                            "session": line.get("session_id"),
                            "subtype": line.get("subtype"),
                            "is_error": line.get("is_error"),
                            "num_turns": line.get("num_turns"),
                            "duration_ms": line.get("duration_ms"),
                            "usage": line.get("usage"),
                            "total_cost_usd": line.get("total_cost_usd"),
                        }),
                    }])
                    .await?;
                let subtype = line
                    .get("subtype")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let is_error = line
                    .get("is_error")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                return Ok(Some(match subtype {
                    "success" if !is_error => (TurnStatus::Completed, None),
                    "error_max_turns" => (TurnStatus::MaxRounds, None),
                    _ => (
                        TurnStatus::Failed,
                        Some(
                            text(&line, "result")
                                .filter(|result| !result.is_empty())
                                .unwrap_or_else(|| format!("claude ended the turn with {subtype}")),
                        ),
                    ),
                }));
            }
            _ => {}
        }
        Ok(None)
    }

    /// Answers a control request from Claude Code: a permission prompt goes
    /// through exo's approvals, on its own task (the user may take a while).
    fn control(&self, line: Value) {
        let request_id = line.get("request_id").cloned().unwrap_or(Value::Null);
        let request = line.get("request").cloned().unwrap_or(Value::Null);
        let (host, writer, cancel) = (
            Arc::clone(&self.host),
            Arc::clone(&self.writer),
            self.cancel.clone(),
        );
        tokio::spawn(async move {
            let subtype = request
                .get("subtype")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let response = if subtype == "can_use_tool" {
                let tool = request
                    .get("tool_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let input = request.get("input").cloned().unwrap_or(json!({}));
                let (name, access) = exo_tool_of(tool);
                let call = ToolCall {
                    call_id: request
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    name,
                    arguments: input.clone(),
                };
                let behaviour = match host.approve(&call, access, &cancel).await {
                    Ok(Some(approval)) if approval.decision.allows() => {
                        json!({"behavior": "allow", "updatedInput": input})
                    }
                    Ok(Some(approval)) => json!({
                        "behavior": "deny",
                        "message": match approval.by {
                            "policy" => "denied: this agent's approval policy refuses it",
                            "no_client" => "denied: approval was needed and no one was there to give it",
                            _ => "denied: the user declined this call",
                        },
                    }),
                    Ok(None) => {
                        json!({"behavior": "deny", "message": "the turn was cancelled", "interrupt": true})
                    }
                    Err(err) => {
                        tracing::warn!(%err, "could not record an approval; denying the call");
                        json!({"behavior": "deny", "message": "exo could not record the approval"})
                    }
                };
                json!({"subtype": "success", "request_id": request_id, "response": behaviour})
            } else {
                json!({
                    "subtype": "error",
                    "request_id": request_id,
                    "error": format!("exo does not serve {subtype}"),
                })
            };
            write_line(
                &writer,
                &json!({"type": "control_response", "response": response}),
            )
            .await;
        });
    }
}

/// The exo tool a Claude Code tool is asked about as, and what it may do.
fn exo_tool_of(tool: &str) -> (String, Access) {
    match tool {
        "Bash" => ("shell".to_owned(), Access::Shell),
        "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => (tool.to_owned(), Access::Write),
        "Read" | "Glob" | "Grep" | "LS" | "TodoWrite" => (tool.to_owned(), Access::Read),
        // exo's own MCP server only reads the conversation it runs in.
        name if name.starts_with("mcp__exo__") && name != "mcp__exo__put_artifact" => {
            (tool.to_owned(), Access::Read)
        }
        _ => (tool.to_owned(), Access::Shell),
    }
}

/// A transcript entry as a `claude.entry` event.
fn entry_event(line: &Value) -> EventData {
    EventData::Custom {
        custom_type: CLAUDE_ENTRY_TYPE.into(),
        payload: json!({
            "session": line.get("session_id"),
            "uuid": line.get("uuid"),
            "entry_type": line.get("type"),
            "parent_tool_use_id": line.get("parent_tool_use_id"),
            "message": line.get("message"),
            "tool_use_result": line.get("tool_use_result"),
        }),
    }
}

/// A tool result's content as text.
fn result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The user's input as Messages API content blocks.
fn user_content(input: &[ContentPart]) -> Value {
    Value::Array(
        input
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
                ContentPart::Image { media_type, data } => Some(json!({
                    "type": "image",
                    "source": {"type": "base64", "media_type": media_type, "data": data},
                })),
                _ => None,
            })
            .collect(),
    )
}

/// A new session id (a UUID, as Claude Code wants them).
fn new_session_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The directory Claude Code keeps a working directory's sessions in:
/// every UTF-16 code unit but ASCII letters and digits becomes `-`.
pub fn project_dir(config_dir: &Path, cwd: &Path) -> PathBuf {
    // Per UTF-16 code unit, as Claude Code (JavaScript) counts characters:
    // a character outside the BMP becomes two dashes.
    let mangled: String = cwd
        .to_string_lossy()
        .encode_utf16()
        .map(|unit| match char::from_u32(u32::from(unit)) {
            Some(c) if c.is_ascii_alphanumeric() => c,
            _ => '-',
        })
        .collect();
    config_dir.join("projects").join(mangled)
}

/// Writes `history` as the transcript of session `session` (nothing when
/// it is empty); whether there is one to resume. Earlier transcripts of
/// this directory are removed: they are caches of the log.
pub fn write_transcript(
    config_dir: &Path,
    cwd: &Path,
    session: &str,
    model: &str,
    history: &[exo_model::Item],
) -> std::io::Result<bool> {
    let dir = project_dir(config_dir, cwd);
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "jsonl") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let messages = exo_model::messages_input(history);
    if messages.is_empty() {
        return Ok(false);
    }
    crate::process::create_private_dir(&dir)?;
    let mut text = String::new();
    let mut parent: Option<String> = None;
    let timestamp = "1970-01-01T00:00:00.000Z";
    for (index, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or("user");
        let uuid = uuid::Uuid::now_v7().to_string();
        let body = if role == "assistant" {
            let has_call = message["content"]
                .as_array()
                .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_use"));
            json!({
                "id": format!("msg_exo_{index}"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": message["content"],
                "stop_reason": if has_call { "tool_use" } else { "end_turn" },
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            })
        } else {
            json!({"role": "user", "content": message["content"]})
        };
        let entry = json!({
            "parentUuid": parent,
            "isSidechain": false,
            "userType": "external",
            "cwd": cwd.to_string_lossy(),
            "sessionId": session,
            "type": role,
            "message": body,
            "uuid": uuid,
            "timestamp": timestamp,
        });
        text.push_str(&entry.to_string());
        text.push('\n');
        parent = Some(uuid);
    }
    let path = dir.join(format!("{session}.jsonl"));
    let partial = dir.join(format!(".{session}.jsonl.partial"));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, &path)?;
    Ok(true)
}

/// Claude Code's arguments for one turn.
fn arguments(
    model: &str,
    session: &str,
    resume: bool,
    instructions: Option<&str>,
    max_rounds: Option<u32>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--permission-prompt-tool",
        "stdio",
        "--model",
        model,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    if resume {
        args.extend(["--resume".into(), session.into()]);
    } else {
        args.extend(["--session-id".into(), session.into()]);
    }
    if let Some(instructions) = instructions {
        args.extend(["--append-system-prompt".into(), instructions.into()]);
    }
    if let Some(max) = max_rounds {
        args.extend(["--max-turns".into(), max.to_string().into()]);
    }
    args
}

/// The environment Claude Code runs with: its configuration directory,
/// the gateway as its API, the token as its key, and no traffic but the
/// model's.
fn claude_environment(config_dir: &str, token: &Token) -> Vec<(OsString, OsString)> {
    [
        ("CLAUDE_CONFIG_DIR", OsString::from(config_dir)),
        (
            "ANTHROPIC_BASE_URL",
            OsString::from(&token.access.anthropic_base_url),
        ),
        ("ANTHROPIC_API_KEY", OsString::from(&token.access.token)),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("DISABLE_ERROR_REPORTING", "1".into()),
    ]
    .into_iter()
    .map(|(name, value)| (OsString::from(name), value))
    .collect()
}

/// Starts Claude Code for one turn in the conversation's container (the
/// image's `claude`, `exo/claude:VERSION`), the gateway's port of its
/// loopback relayed to exo's gateway. exo's MCP server over the history is
/// not offered there (it would need exo's root).
async fn start_claude_in_container(
    docker: Arc<exo_sandbox::docker::Docker>,
    args: &[OsString],
    cwd: &Path,
    token: &Token,
    gateway_port: u16,
) -> Result<crate::process::Started, String> {
    let args: Vec<String> = args
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let config_dir = format!(
        "{}/{}",
        exo_sandbox::egress::INSIDE_DIR,
        exo_sandbox::egress::AGENT_HOME
    );
    let env = claude_environment(&config_dir, token);
    AgentProcess::start_in_container(
        docker,
        "claude",
        &args,
        cwd,
        &env,
        &[(gateway_port, crate::codex::GATEWAY_SOCKET.to_owned())],
        "claude",
    )
    .await
}

/// Starts Claude Code for one turn.
fn start_claude(
    program: &Path,
    args: &[OsString],
    config_dir: &Path,
    cwd: &Path,
    token: &Token,
) -> Result<crate::process::Started, String> {
    let env = claude_environment(&config_dir.to_string_lossy(), token);
    AgentProcess::start(program, args, cwd, &env, "claude")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_directories_are_named_as_claude_code_names_them() {
        assert_eq!(
            project_dir(Path::new("/c"), Path::new("/tmp/cl/a.b_c d")),
            Path::new("/c/projects/-tmp-cl-a-b-c-d")
        );
        assert_eq!(
            project_dir(Path::new("/c"), Path::new("/tmp/ws-\u{1F600}")),
            Path::new("/c/projects/-tmp-ws---")
        );
    }

    #[test]
    fn a_transcript_chains_its_entries_and_groups_calls_with_their_message() {
        let dir = tempfile::tempdir().unwrap();
        let history = vec![
            exo_model::Item::Message {
                role: Role::User,
                content: vec![ContentPart::Text { text: "q".into() }],
            },
            exo_model::Item::Message {
                role: Role::Assistant,
                content: vec![ContentPart::Text {
                    text: "let me look".into(),
                }],
            },
            exo_model::Item::ToolCall {
                call_id: "t1".into(),
                name: "Bash".into(),
                arguments: json!({"command": "ls"}),
            },
            exo_model::Item::ToolResult {
                call_id: "t1".into(),
                output: "a".into(),
                is_error: false,
            },
        ];
        assert!(write_transcript(dir.path(), Path::new("/w"), "s1", "m", &history).unwrap());
        let text = std::fs::read_to_string(dir.path().join("projects/-w/s1.jsonl")).unwrap();
        let entries: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0]["parentUuid"], Value::Null);
        assert_eq!(entries[1]["parentUuid"], entries[0]["uuid"]);
        assert_eq!(entries[2]["parentUuid"], entries[1]["uuid"]);
        assert_eq!(
            entries[1]["message"]["content"].as_array().unwrap().len(),
            2
        );
        assert_eq!(entries[1]["message"]["stop_reason"], "tool_use");
        assert_eq!(entries[2]["message"]["content"][0]["type"], "tool_result");
        // An empty history writes nothing, and clears what was there.
        assert!(!write_transcript(dir.path(), Path::new("/w"), "s2", "m", &[]).unwrap());
        assert!(!dir.path().join("projects/-w/s1.jsonl").exists());
    }
}
