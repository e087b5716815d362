//! `exo acp`: exo as an Agent Client Protocol agent (ACP v1) over stdio,
//! for editors that speak it (spec/acp.md).
//!
//! An ACP session is an exo conversation: its id is the conversation's id.
//! Each request becomes calls on exo's own JSON-RPC service (the daemon's,
//! when one runs, else one served in this process), so the CLI, watchers
//! and other clients see the same conversation live. A prompt is a
//! `turn/run` with the agent's harness; its text, thoughts, tool calls and
//! results stream back as `session/update`, and exo's approval questions
//! become `session/request_permission`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use exo_rpc::message::{ErrorObject, Json, Request};
use exo_rpc::peer::{Context, Handler, PeerHandle};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

use crate::chat::Conn;

/// ACP's protocol version this agent speaks.
const PROTOCOL_VERSION: u64 = 1;

const INVALID_PARAMS: i64 = -32602;
const INTERNAL: i64 = -32603;
const METHOD_NOT_FOUND: i64 = -32601;

/// `exo acp [--agent A]`.
pub fn run(root: &Path, agent: Option<String>) -> Result<()> {
    crate::chat::run_async(serve(root.to_path_buf(), agent))
}

/// What the handler shares with the exo connection's dispatcher.
struct State {
    root: PathBuf,
    agent: Option<String>,
    exo: PeerHandle,
    /// Sessions resolved so far: conversation id → agent id.
    agents: Mutex<HashMap<String, String>>,
    /// Turns running, by conversation: where their notifications go, and
    /// the turn's id once known.
    running: Mutex<HashMap<String, Running>>,
    /// Which conversation each running turn is in.
    turns: Mutex<HashMap<String, String>>,
}

struct Running {
    notes: mpsc::UnboundedSender<(String, Value)>,
    turn: Option<String>,
}

async fn serve(root: PathBuf, agent: Option<String>) -> Result<()> {
    let mut conn = Conn::open(&root).await?;
    let exo = conn.handle();
    let mut notes = conn.take_notifications();
    let state = Arc::new(State {
        root,
        agent,
        exo,
        agents: Mutex::default(),
        running: Mutex::default(),
        turns: Mutex::default(),
    });
    // exo's notifications, routed to the prompt whose turn they are about.
    let routing = Arc::clone(&state);
    tokio::spawn(async move {
        while let Some((method, params)) = notes.recv().await {
            let params = params
                .map(|params| params.to_value())
                .unwrap_or(Value::Null);
            let Some(turn) = params["turn"].as_str().map(str::to_owned) else {
                continue;
            };
            let mut turns = routing.turns.lock().await;
            let conversation = match turns.get(&turn) {
                Some(conversation) => Some(conversation.clone()),
                None => {
                    // A turn's first events are its beginning, recorded in
                    // its conversation.
                    let conversation = params["events"][0]["conversation"]
                        .as_str()
                        .map(str::to_owned);
                    // Remembered only while a prompt of this process runs
                    // there (forgotten when it ends).
                    if let Some(conversation) = &conversation {
                        if routing.running.lock().await.contains_key(conversation) {
                            turns.insert(turn.clone(), conversation.clone());
                        }
                    }
                    conversation
                }
            };
            drop(turns);
            let Some(conversation) = conversation else {
                continue;
            };
            let mut running = routing.running.lock().await;
            if let Some(run) = running.get_mut(&conversation) {
                run.turn.get_or_insert(turn);
                let _ = run.notes.send((method, params));
            }
        }
    });
    let handler = Arc::new(Acp {
        state: Arc::clone(&state),
    });
    crate::chat::serve_stdio(handler).await;
    conn.close().await;
    Ok(())
}

struct Acp {
    state: Arc<State>,
}

impl Handler for Acp {
    fn handle(
        &self,
        request: Request,
        context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let params = request.params.map(|p| p.to_value()).unwrap_or(Value::Null);
            let result = match request.method.as_str() {
                "initialize" => Ok(initialize()),
                "authenticate" => Ok(json!({})),
                "session/new" => state.new_session(&params).await,
                "session/load" => state.load(&params, &context.peer).await,
                "session/resume" => state.resume(&params).await,
                "session/list" => state.list(&params).await,
                "session/close" => state.session_of(&params).await.map(|_| json!({})),
                "session/prompt" => state.prompt(&params, &context.peer).await,
                "session/cancel" => state.cancel(&params).await.map(|()| Value::Null),
                "session/fork" | "_exo/fork" => state.fork(&params).await,
                "_exo/rewind" => state.rewind(&params).await,
                "_exo/snapshots" => state.snapshots(&params).await,
                other => Err(ErrorObject::new(
                    METHOD_NOT_FOUND,
                    format!("exo's ACP agent has no method {other}"),
                )),
            }?;
            Ok(Json::from_value(&result))
        })
    }

    fn needs_slot(&self, request: &Request) -> bool {
        // A cancel is answered at once, even while prompts fill the places.
        request.method != "session/cancel"
    }
}

fn initialize() -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "agentCapabilities": {
            "loadSession": true,
            "promptCapabilities": {"image": true, "audio": false, "embeddedContext": true},
            "mcpCapabilities": {"http": false, "sse": false},
            "sessionCapabilities": {"list": {}, "resume": {}, "close": {}},
            "_meta": {"exo": {"fork": true, "rewind": true, "snapshots": true}},
        },
        "agentInfo": {"name": "exo", "title": "exo", "version": env!("CARGO_PKG_VERSION")},
        "authMethods": [],
    })
}

fn invalid(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(INVALID_PARAMS, message)
}

/// An exo error, as the ACP client gets it (its code and data kept).
fn exo_error(err: exo_rpc::peer::RequestError) -> ErrorObject {
    match err {
        exo_rpc::peer::RequestError::Rpc(error) => error,
        other => ErrorObject::new(INTERNAL, other.to_string()),
    }
}

fn text_of(blocks: &Value) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut parts = Vec::new();
    for block in blocks.as_array().into_iter().flatten() {
        match block["type"].as_str().unwrap_or_default() {
            "text" => {
                let piece = block["text"].as_str().unwrap_or_default();
                text.push_str(piece);
                parts.push(json!({"type": "text", "text": piece}));
            }
            "image" => parts.push(json!({
                "type": "image",
                "media_type": block["mimeType"],
                "data": block["data"],
            })),
            "resource_link" => {
                let piece = format!("@{}", block["uri"].as_str().unwrap_or_default());
                text.push_str(&piece);
                parts.push(json!({"type": "text", "text": piece}));
            }
            "resource" => {
                let resource = &block["resource"];
                let piece = match resource["text"].as_str() {
                    Some(body) => format!(
                        "\n<file uri=\"{}\">\n{body}\n</file>\n",
                        resource["uri"].as_str().unwrap_or_default()
                    ),
                    None => format!("@{}", resource["uri"].as_str().unwrap_or_default()),
                };
                text.push_str(&piece);
                parts.push(json!({"type": "text", "text": piece}));
            }
            _ => {}
        }
    }
    (text, parts)
}

/// What an exo tool is, for an editor's icon.
fn tool_kind(name: &str) -> &'static str {
    match name {
        "read_file" | "Read" => "read",
        "write_file" | "edit_file" | "apply_patch" | "Edit" | "Write" | "MultiEdit" | "write" => {
            "edit"
        }
        "list_files" | "grep" | "Glob" | "Grep" | "LS" => "search",
        "shell" | "exec_command" | "Bash" => "execute",
        _ => "other",
    }
}

/// A tool call's title: the tool and its main argument.
fn tool_title(name: &str, arguments: &Value) -> String {
    let main = ["command", "cmd", "path", "file_path", "pattern"]
        .iter()
        .find_map(|key| arguments[*key].as_str().map(str::to_owned));
    match main {
        Some(main) => format!("{name}: {}", main.chars().take(120).collect::<String>()),
        None => name.to_owned(),
    }
}

/// `path` made absolute against the workspace, as ACP wants its paths.
fn absolute(path: &str, workspace: Option<&str>) -> Option<String> {
    if Path::new(path).is_absolute() {
        return Some(path.to_owned());
    }
    workspace.map(|root| Path::new(root).join(path).display().to_string())
}

/// The diff a file-writing call proposes (exo's `write_file` and
/// `edit_file`, Claude Code's `Write` and `Edit`), and where.
fn diff_of(name: &str, arguments: &Value, workspace: Option<&str>) -> Option<(Value, String)> {
    let path = arguments["path"]
        .as_str()
        .or(arguments["file_path"].as_str())?;
    let path = absolute(path, workspace)?;
    let diff = match name {
        "write_file" | "Write" => json!({
            "type": "diff",
            "path": path,
            "oldText": null,
            "newText": arguments["content"].as_str()?,
        }),
        "edit_file" | "Edit" => json!({
            "type": "diff",
            "path": path,
            "oldText": arguments["old_string"].as_str()?,
            "newText": arguments["new_string"].as_str()?,
        }),
        _ => return None,
    };
    Some((diff, path))
}

/// A plan an agent wrote with its planning tool (Claude Code's
/// `TodoWrite`, Codex's `update_plan`), as ACP's plan entries.
fn plan_of(name: &str, arguments: &Value) -> Option<Value> {
    let status = |status: &str| match status {
        "completed" => "completed",
        "in_progress" => "in_progress",
        _ => "pending",
    };
    let entries: Vec<Value> = match name {
        "TodoWrite" => arguments["todos"]
            .as_array()?
            .iter()
            .map(|todo| json!({"content": todo["content"].as_str().unwrap_or_default(), "priority": "medium", "status": status(todo["status"].as_str().unwrap_or_default())}))
            .collect(),
        "update_plan" => arguments["plan"]
            .as_array()?
            .iter()
            .map(|step| json!({"content": step["step"].as_str().unwrap_or_default(), "priority": "medium", "status": status(step["status"].as_str().unwrap_or_default())}))
            .collect(),
        _ => return None,
    };
    Some(json!({"sessionUpdate": "plan", "entries": entries}))
}

/// A tool result as text: a shell command's output as the terminal showed
/// it, anything else as its JSON.
fn result_text(output: &Value) -> String {
    if let (Some(stdout), Some(stderr)) = (output["stdout"].as_str(), output["stderr"].as_str()) {
        let mut text = String::new();
        text.push_str(stdout);
        if !stderr.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(stderr);
        }
        if let Some(code) = output["exit_code"].as_i64() {
            if code != 0 {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("(exit code {code})"));
            }
        }
        let fence = "`".repeat(3.max(longest_backtick_run(&text) + 1));
        return format!("{fence}\n{text}\n{fence}");
    }
    match output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// The `session/update`s that show an exo event, if it shows as any;
/// paths are made absolute against `workspace`.
fn updates_of(event: &Value, replay: bool, workspace: Option<&str>) -> Vec<Value> {
    let mut updates = Vec::new();
    match event["kind"].as_str().unwrap_or_default() {
        "message" => {
            let role = event["role"].as_str().unwrap_or_default();
            for part in event["content"].as_array().into_iter().flatten() {
                let (kind, content) = match (role, part["type"].as_str().unwrap_or_default()) {
                    ("user", "text") if replay => (
                        "user_message_chunk",
                        json!({"type": "text", "text": part["text"]}),
                    ),
                    ("user", "image") if replay => (
                        "user_message_chunk",
                        json!({"type": "image", "mimeType": part["media_type"], "data": part["data"]}),
                    ),
                    ("assistant", "text") if replay => (
                        "agent_message_chunk",
                        json!({"type": "text", "text": part["text"]}),
                    ),
                    ("assistant", "reasoning") if replay => (
                        "agent_thought_chunk",
                        json!({"type": "text", "text": part["text"]}),
                    ),
                    _ => continue,
                };
                updates.push(json!({
                    "sessionUpdate": kind,
                    "content": content,
                    "messageId": event["id"],
                }));
            }
        }
        "tool_call" => {
            let name = event["name"].as_str().unwrap_or_default();
            let arguments = &event["arguments"];
            let mut call = json!({
                "sessionUpdate": "tool_call",
                "toolCallId": event["call_id"],
                "title": tool_title(name, arguments),
                "kind": tool_kind(name),
                "status": "in_progress",
                "rawInput": arguments,
            });
            if let Some((diff, path)) = diff_of(name, arguments, workspace) {
                call["content"] = json!([diff]);
                call["locations"] = json!([{"path": path}]);
            } else if let Some(path) = ["path", "file_path"]
                .iter()
                .find_map(|key| arguments[*key].as_str())
                .and_then(|path| absolute(path, workspace))
            {
                call["locations"] = json!([{"path": path}]);
            }
            updates.push(call);
            if let Some(plan) = plan_of(name, arguments) {
                updates.push(plan);
            }
        }
        "tool_result" => {
            let output = result_text(&event["output"]);
            let failed = event["is_error"].as_bool().unwrap_or(false);
            updates.push(json!({
                "sessionUpdate": "tool_call_update",
                "toolCallId": event["call_id"],
                "status": if failed { "failed" } else { "completed" },
                "content": [{"type": "content", "content": {"type": "text", "text": output}}],
                "rawOutput": event["output"],
            }));
        }
        _ => {}
    }
    updates
}

impl State {
    async fn exo(&self, method: &str, params: Value) -> Result<Value, ErrorObject> {
        let answer = self
            .exo
            .request(method, Json::from_value(&params))
            .await
            .map_err(exo_error)?;
        Ok(answer.to_value())
    }

    /// The session's conversation and its agent.
    async fn session_of(&self, params: &Value) -> Result<(String, String), ErrorObject> {
        let id = params["sessionId"]
            .as_str()
            .ok_or_else(|| invalid("sessionId is required"))?
            .to_owned();
        if let Some(agent) = self.agents.lock().await.get(&id) {
            return Ok((agent.clone(), id));
        }
        let agents = self.exo("agent/list", json!({})).await?;
        for agent in agents["agents"].as_array().into_iter().flatten() {
            let agent_id = agent["id"].as_str().unwrap_or_default().to_owned();
            let found = self
                .exo(
                    "conversation/get",
                    json!({"agent": agent_id, "conversation": id}),
                )
                .await;
            if found.is_ok() {
                self.agents
                    .lock()
                    .await
                    .insert(id.clone(), agent_id.clone());
                return Ok((agent_id, id));
            }
        }
        Err(ErrorObject::new(
            exo_protocol::ErrorCode::NotFound.code(),
            format!("no session {id}"),
        ))
    }

    /// The agent new sessions belong to: `--agent`, else the conversation
    /// in use's, else the only agent.
    async fn default_agent(&self) -> Result<String, ErrorObject> {
        if let Some(agent) = &self.agent {
            return Ok(agent.clone());
        }
        if let Ok(Some(current)) = crate::current::read(&self.root) {
            return Ok(current.agent);
        }
        let agents = self.exo("agent/list", json!({})).await?;
        match agents["agents"].as_array().map(Vec::as_slice) {
            Some([only]) => Ok(only["id"].as_str().unwrap_or_default().to_owned()),
            Some([]) | None => Err(invalid(
                "exo has no agent: create one (exo agent create NAME --model MODEL)",
            )),
            Some(_) => Err(invalid(
                "exo has several agents: start exo acp with --agent AGENT",
            )),
        }
    }

    async fn new_session(&self, params: &Value) -> Result<Value, ErrorObject> {
        let cwd = params["cwd"]
            .as_str()
            .ok_or_else(|| invalid("cwd is required"))?;
        if !Path::new(cwd).is_absolute() {
            return Err(invalid("cwd must be an absolute path"));
        }
        let agent = self.default_agent().await?;
        let name = format!(
            "acp {}",
            Path::new(cwd)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "session".into())
        );
        let created = self
            .exo(
                "conversation/create",
                json!({"agent": agent, "name": name, "workspace": cwd}),
            )
            .await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        let agent_id = created["agent"].as_str().map_or(agent, str::to_owned);
        self.agents.lock().await.insert(id.clone(), agent_id);
        Ok(json!({"sessionId": id}))
    }

    async fn events(&self, agent: &str, conversation: &str) -> Result<Vec<Value>, ErrorObject> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut params = json!({"agent": agent, "conversation": conversation, "limit": 10000});
            if let Some(after) = &after {
                params["after"] = json!(after);
            }
            let mut page = self.exo("events/list", params).await?;
            let next = page["next_cursor"].as_str().map(str::to_owned);
            if let Some(Value::Array(listed)) = page.get_mut("events").map(Value::take) {
                events.extend(listed);
            }
            match next {
                Some(next) => after = Some(next),
                None => return Ok(events),
            }
        }
    }

    async fn load(&self, params: &Value, client: &PeerHandle) -> Result<Value, ErrorObject> {
        let (agent, conversation) = self.session_of(params).await?;
        // The replay's notifications are written as they are made, in
        // pieces of a few hundred KiB: one serialisation each, no copies.
        let mut lines: Vec<u8> = Vec::new();
        let send = |lines: Vec<u8>| async move {
            client
                .send_raw(lines)
                .await
                .map_err(|err| ErrorObject::new(INTERNAL, err.to_string()))
        };
        let found = self
            .exo(
                "conversation/get",
                json!({"agent": agent, "conversation": conversation}),
            )
            .await?;
        let workspace = found["workspace"].as_str();
        for event in self.events(&agent, &conversation).await? {
            for update in updates_of(&event, true, workspace) {
                if !lines.is_empty() {
                    lines.push(b'\n');
                }
                let note = json!({
                    "jsonrpc": "2.0",
                    "method": "session/update",
                    "params": {"sessionId": conversation, "update": update},
                });
                serde_json::to_writer(&mut lines, &note)
                    .map_err(|err| ErrorObject::new(INTERNAL, err.to_string()))?;
                if lines.len() >= 256 << 10 {
                    send(std::mem::take(&mut lines)).await?;
                }
            }
        }
        if !lines.is_empty() {
            send(lines).await?;
        }
        Ok(json!({}))
    }

    async fn resume(&self, params: &Value) -> Result<Value, ErrorObject> {
        self.session_of(params).await?;
        Ok(json!({}))
    }

    async fn list(&self, params: &Value) -> Result<Value, ErrorObject> {
        let agents = match &self.agent {
            Some(agent) => vec![agent.clone()],
            None => self.exo("agent/list", json!({})).await?["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|agent| agent["id"].as_str().map(str::to_owned))
                .collect(),
        };
        let cwd = params["cwd"].as_str();
        let mut sessions = Vec::new();
        for agent in agents {
            let listed = self
                .exo("conversation/list", json!({"agent": agent}))
                .await?;
            for conversation in listed["conversations"].as_array().into_iter().flatten() {
                let Some(workspace) = conversation["workspace"].as_str() else {
                    continue;
                };
                if cwd.is_some_and(|cwd| cwd != workspace) {
                    continue;
                }
                sessions.push(json!({
                    "sessionId": conversation["id"],
                    "cwd": workspace,
                    "title": conversation["name"],
                    "updatedAt": conversation["updated_at"].as_str().or(conversation["created_at"].as_str()),
                }));
            }
        }
        Ok(json!({"sessions": sessions}))
    }

    async fn prompt(&self, params: &Value, client: &PeerHandle) -> Result<Value, ErrorObject> {
        let (agent, conversation) = self.session_of(params).await?;
        let (text, parts) = text_of(&params["prompt"]);
        if parts.is_empty() {
            return Err(invalid("the prompt is empty"));
        }
        let found = self
            .exo(
                "conversation/get",
                json!({"agent": agent, "conversation": conversation}),
            )
            .await?;
        let workspace = found["workspace"].as_str().map(str::to_owned);
        let (sender, mut notes) = mpsc::unbounded_channel();
        {
            let mut running = self.running.lock().await;
            if running.contains_key(&conversation) {
                return Err(invalid(
                    "a prompt is already running in this session; cancel it first",
                ));
            }
            running.insert(
                conversation.clone(),
                Running {
                    notes: sender,
                    turn: None,
                },
            );
        }
        let input = if parts.len() == 1 && parts[0]["type"] == "text" {
            json!(text)
        } else {
            json!(parts)
        };
        let params = json!({
            "agent": agent,
            "conversation": conversation,
            "input": input,
            "approvals": true,
        });
        let outcome = self
            .drive(
                &conversation,
                workspace.as_deref(),
                params,
                &mut notes,
                client,
            )
            .await;
        let ended = self.running.lock().await.remove(&conversation);
        if let Some(turn) = ended.and_then(|run| run.turn) {
            self.turns.lock().await.remove(&turn);
        }
        let result = outcome?;
        let stop = match result["status"].as_str().unwrap_or_default() {
            "completed" => "end_turn",
            "cancelled" => "cancelled",
            "max_rounds" => "max_turn_requests",
            _ => {
                return Err(ErrorObject::new(
                    INTERNAL,
                    result["error"]
                        .as_str()
                        .map_or_else(|| "the turn failed".to_owned(), str::to_owned),
                )
                .with_data(json!({"turn": result["turn"], "status": result["status"]})))
            }
        };
        Ok(json!({"stopReason": stop}))
    }

    /// Runs the turn, passing its notifications on, until its answer.
    async fn drive(
        &self,
        conversation: &str,
        workspace: Option<&str>,
        params: Value,
        notes: &mut mpsc::UnboundedReceiver<(String, Value)>,
        client: &PeerHandle,
    ) -> Result<Value, ErrorObject> {
        let mut answer = self
            .exo
            .start("turn/run", Json::from_value(&params))
            .await
            .map_err(exo_error)?;
        let update = |update: Value| {
            let note = json!({"sessionId": conversation, "update": update});
            let client = client.clone();
            async move {
                let _ = client
                    .notify("session/update", Json::from_value(&note))
                    .await;
            }
        };
        loop {
            tokio::select! {
                outcome = &mut answer => {
                    // What was already sent before the answer still shows.
                    while let Ok((method, params)) = notes.try_recv() {
                        self.pass_on(&method, params, conversation, workspace, client, &update).await;
                    }
                    return outcome.map(|json| json.to_value()).map_err(exo_error);
                }
                Some((method, params)) = notes.recv() => {
                    self.pass_on(&method, params, conversation, workspace, client, &update).await;
                }
            }
        }
    }

    async fn pass_on<F, Fut>(
        &self,
        method: &str,
        params: Value,
        conversation: &str,
        workspace: Option<&str>,
        client: &PeerHandle,
        update: &F,
    ) where
        F: Fn(Value) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        match method {
            "turn/delta" => {
                if let Some(text) = params["text"].as_str() {
                    update(json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}})).await;
                }
                if let Some(text) = params["reasoning"].as_str() {
                    update(json!({"sessionUpdate": "agent_thought_chunk", "content": {"type": "text", "text": text}})).await;
                }
            }
            "turn/events" => {
                for event in params["events"].as_array().into_iter().flatten() {
                    for each in updates_of(event, false, workspace) {
                        update(each).await;
                    }
                    if let Some(usage) = event["usage"].as_object() {
                        let used = usage
                            .get("input_tokens")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                            + usage
                                .get("output_tokens")
                                .and_then(Value::as_u64)
                                .unwrap_or(0);
                        update(json!({"sessionUpdate": "usage_update", "used": used, "size": 0}))
                            .await;
                    }
                }
            }
            "approval/request" => {
                let tool = params["tool"].as_str().unwrap_or_default();
                let question = json!({
                    "sessionId": conversation,
                    "toolCall": {
                        "toolCallId": params["call_id"],
                        "title": tool_title(tool, &params["arguments"]),
                        "kind": tool_kind(tool),
                        "status": "pending",
                        "rawInput": params["arguments"],
                    },
                    "options": [
                        {"optionId": "allow_once", "name": "Allow", "kind": "allow_once"},
                        {"optionId": "allow_always", "name": "Always allow", "kind": "allow_always"},
                        {"optionId": "reject_once", "name": "Reject", "kind": "reject_once"},
                    ],
                });
                let asked = client
                    .request("session/request_permission", Json::from_value(&question))
                    .await;
                let decision = match asked.map(|answer| answer.to_value()) {
                    Ok(answer) if answer["outcome"]["outcome"] == "selected" => {
                        match answer["outcome"]["optionId"].as_str() {
                            Some("allow_once") => "allow_once",
                            Some("allow_always") => "allow_always",
                            _ => "deny",
                        }
                    }
                    // Cancelled, refused, or the editor went away.
                    _ => "deny",
                };
                let respond = json!({
                    "turn": params["turn"],
                    "call_id": params["call_id"],
                    "decision": decision,
                });
                let _ = self
                    .exo
                    .notify("approval/respond", Json::from_value(&respond))
                    .await;
            }
            _ => {}
        }
    }

    async fn cancel(&self, params: &Value) -> Result<(), ErrorObject> {
        let Some(id) = params["sessionId"].as_str() else {
            return Ok(());
        };
        let turn = self
            .running
            .lock()
            .await
            .get(id)
            .and_then(|run| run.turn.clone());
        if let Some(turn) = turn {
            let _ = self.exo("turn/cancel", json!({"turn": turn})).await;
        }
        Ok(())
    }

    async fn fork(&self, params: &Value) -> Result<Value, ErrorObject> {
        let (agent, conversation) = self.session_of(params).await?;
        let mut fork = json!({
            "agent": agent,
            "conversation": conversation,
            "name": format!("fork of {conversation}"),
        });
        if let Some(at) = params["_meta"]["exo"]["at"].as_str() {
            fork["at"] = json!(at);
        }
        if let Some(cwd) = params["cwd"].as_str() {
            fork["workspace"] = json!(cwd);
        }
        let created = self.exo("conversation/fork", fork).await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        self.agents.lock().await.insert(id.clone(), agent);
        Ok(json!({"sessionId": id}))
    }

    async fn rewind(&self, params: &Value) -> Result<Value, ErrorObject> {
        let (agent, conversation) = self.session_of(params).await?;
        let at = params["at"]
            .as_str()
            .ok_or_else(|| invalid("at (an exo event id) is required"))?;
        let mut rewind = json!({"agent": agent, "conversation": conversation, "to": at});
        if params["files"] == false {
            rewind["files"] = json!(false);
        }
        self.exo("conversation/rewind", rewind).await
    }

    async fn snapshots(&self, params: &Value) -> Result<Value, ErrorObject> {
        let (agent, conversation) = self.session_of(params).await?;
        self.exo(
            "snapshot/list",
            json!({"agent": agent, "conversation": conversation}),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_result_shows_as_the_terminal_did() {
        let output =
            json!({"exit_code": 2, "stdout": "out\n", "stderr": "err", "timed_out": false});
        assert_eq!(result_text(&output), "```\nout\nerr\n(exit code 2)\n```");
        let fenced = json!({"exit_code": 0, "stdout": "```rust\nfn x() {}\n```", "stderr": ""});
        assert!(result_text(&fenced).starts_with("````\n"));
        assert_eq!(result_text(&json!({"path": "a"})), r#"{"path":"a"}"#);
    }

    #[test]
    fn planning_tools_show_as_plans() {
        let todo = json!({"todos": [
            {"content": "read", "status": "completed", "activeForm": "Reading"},
            {"content": "write", "status": "in_progress", "activeForm": "Writing"},
            {"content": "test", "status": "pending", "activeForm": "Testing"},
        ]});
        let plan = plan_of("TodoWrite", &todo).unwrap();
        assert_eq!(plan["sessionUpdate"], "plan");
        let statuses: Vec<&str> = plan["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["completed", "in_progress", "pending"]);
        let codex = json!({"plan": [{"step": "one", "status": "completed"}]});
        assert_eq!(
            plan_of("update_plan", &codex).unwrap()["entries"][0]["content"],
            "one"
        );
        assert!(plan_of("shell", &json!({})).is_none());
    }

    #[test]
    fn edits_show_as_diffs_at_absolute_paths() {
        let (diff, path) = diff_of(
            "edit_file",
            &json!({"path": "src/a.rs", "old_string": "a", "new_string": "b"}),
            Some("/w"),
        )
        .unwrap();
        assert_eq!(path, "/w/src/a.rs");
        assert_eq!(diff["oldText"], "a");
        // Without a workspace a relative path cannot be shown.
        assert!(diff_of("write_file", &json!({"path": "a", "content": ""}), None).is_none());
        let (diff, _) = diff_of(
            "Write",
            &json!({"file_path": "/abs/x", "content": "c"}),
            None,
        )
        .unwrap();
        assert_eq!(diff["newText"], "c");
    }
}
