//! The MCP servers a turn offers its model (spec/mcp.md, "Bound servers"):
//! exo's own over the conversation's history, served in-process, and the
//! servers of `binding mcp` entries, started on stdio or called over
//! Streamable HTTP by exo.
//!
//! A server's tools are offered as `mcp__SERVER__TOOL`. The secret of a
//! binding goes to the server at the boundary (a started server's
//! environment, an HTTP header) and nowhere else: not to the model, not
//! to the events, not to the agent's tools, not to an error message.
//! Servers live for one turn: started (or connected to) when it begins,
//! stopped when it ends, so every turn sees the bindings as they are then.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exo_rpc::message::{ErrorObject, Json, Request};
use exo_rpc::peer::{Context, Handler, Options, Peer, PeerHandle, RequestError};
use exo_rpc::Framing;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The MCP revision exo asks for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// How long a server has to start and answer `initialize` and
/// `tools/list`.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The most tools one server may offer.
const MAX_TOOLS: usize = 256;

/// The largest message read from a server.
const MAX_MESSAGE: usize = 16 << 20;

/// The variables of exo's environment a started server gets, beside its
/// binding's; API keys above all stay out.
const PASSED: [&str; 6] = ["PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER"];

/// A bound MCP server, its secret resolved.
#[derive(Clone)]
pub struct McpServer {
    /// Its name (tools are `mcp__NAME__TOOL`).
    pub name: String,
    /// How exo reaches it.
    pub transport: McpTransport,
}

/// How exo reaches a server.
#[derive(Clone)]
pub enum McpTransport {
    /// A program exo starts, speaking NDJSON on its stdin and stdout.
    Stdio {
        /// The program and its arguments.
        command: Vec<String>,
        /// Variables set for it (the secret's, if any).
        env: Vec<(String, String)>,
        /// Where it runs (the workspace, when there is one).
        cwd: Option<PathBuf>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        /// The endpoint.
        url: String,
        /// Headers sent with every request (the secret's, if any).
        headers: Vec<(String, String)>,
    },
}

/// Never shows a value of `env` or `headers`: they hold secrets.
impl fmt::Debug for McpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            McpTransport::Stdio { command, env, cwd } => f
                .debug_struct("McpServer")
                .field("name", &self.name)
                .field("command", command)
                .field("env", &env.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            McpTransport::Http { url, headers } => f
                .debug_struct("McpServer")
                .field("name", &self.name)
                .field("url", url)
                .field(
                    "headers",
                    &headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

impl McpServer {
    /// The values no message may show: the secrets it is handed.
    fn secrets(&self) -> Vec<String> {
        let values: Vec<String> = match &self.transport {
            McpTransport::Stdio { env, .. } => env.iter().map(|(_, v)| v.clone()).collect(),
            McpTransport::Http { headers, .. } => headers
                .iter()
                .map(|(_, v)| v.strip_prefix("Bearer ").unwrap_or(v).to_owned())
                .collect(),
        };
        values.into_iter().filter(|v| v.len() >= 4).collect()
    }
}

/// `text` with every secret replaced.
fn redact(text: String, secrets: &[String]) -> String {
    secrets.iter().fold(text, |text, secret| {
        if text.contains(secret.as_str()) {
            text.replace(secret.as_str(), "[redacted]")
        } else {
            text
        }
    })
}

/// `value` with every secret in its strings replaced: a server that echoes
/// its credential does not hand it to the model.
fn redact_value(value: Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return value;
    }
    match value {
        Value::String(text) => Value::String(redact(text, secrets)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| redact_value(item, secrets))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, item)| (redact(key, secrets), redact_value(item, secrets)))
                .collect(),
        ),
        other => other,
    }
}

/// One tool of a server, as offered to the model.
#[derive(Clone, Debug)]
pub struct OfferedTool {
    /// The name the model calls it by: `mcp__SERVER__TOOL`, made of the
    /// characters every model API takes.
    pub offered: String,
    /// The server.
    pub server: String,
    /// The tool's name at the server.
    pub tool: String,
    /// Its description.
    pub description: String,
    /// Its arguments' schema.
    pub parameters: Value,
    /// Whether it says it changes nothing (`readOnlyHint`): such calls
    /// run without asking, like exo's reading tools.
    pub read_only: bool,
}

/// The name a model sees: `mcp__SERVER__TOOL`, with characters model APIs
/// refuse replaced by `_`, at most 64 of them.
pub fn offered_name(server: &str, tool: &str) -> String {
    let name: String = format!("mcp__{server}__{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.chars().take(64).collect()
}

/// An MCP tool description as offered: its schema an object schema.
fn offered(server: &str, tool: &Value) -> Option<OfferedTool> {
    let name = tool["name"].as_str().filter(|n| !n.is_empty())?;
    let mut parameters = tool["inputSchema"].clone();
    if !parameters.is_object() {
        parameters = json!({"type": "object", "properties": {}});
    }
    if parameters.get("type").is_none() {
        parameters["type"] = json!("object");
    }
    let description = tool["description"]
        .as_str()
        .or(tool["title"].as_str())
        .unwrap_or_default()
        .chars()
        .take(4096)
        .collect();
    Some(OfferedTool {
        offered: offered_name(server, name),
        server: server.to_owned(),
        tool: name.to_owned(),
        description,
        parameters,
        read_only: tool["annotations"]["readOnlyHint"] == true,
    })
}

/// exo's own tools (read-only), as offered.
pub fn history_tools() -> Vec<OfferedTool> {
    crate::history::tools(false)
        .iter()
        .filter_map(|tool| offered(crate::history::SERVER, tool))
        .collect()
}

/// A connection to a server for one turn.
pub struct Connection {
    server: String,
    secrets: Vec<String>,
    link: Link,
}

enum Link {
    Stdio {
        peer: Peer,
        handle: PeerHandle,
        /// Killed when the connection goes.
        _process: StdioProcess,
    },
    Http(HttpLink),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// A started server's process group, killed when the connection goes.
struct StdioProcess {
    child: Mutex<Option<tokio::process::Child>>,
    group: i32,
}

impl Drop for StdioProcess {
    fn drop(&mut self) {
        if self.group > 0 {
            if let Some(group) = rustix::process::Pid::from_raw(self.group) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            exo_tools::reaper::release(self.group);
        }
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.start_kill();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = child.wait().await;
                });
            }
        }
    }
}

/// What exo answers a server's own requests with: `ping`, and nothing
/// else (exo offers no roots, sampling or elicitation).
struct ClientSide;

impl Handler for ClientSide {
    fn handle(
        &self,
        request: Request,
        _context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        Box::pin(async move {
            match request.method.as_str() {
                "ping" => Ok(Json::from_value(&json!({}))),
                other => Err(ErrorObject::new(
                    -32601,
                    format!("exo's MCP client has no method {other}"),
                )),
            }
        })
    }

    fn needs_slot(&self, _request: &Request) -> bool {
        false
    }
}

impl Connection {
    /// Starts or connects to `server` and initializes the session.
    pub async fn open(server: &McpServer) -> Result<Connection, String> {
        let secrets = server.secrets();
        let link = match tokio::time::timeout(START_TIMEOUT, Self::link(server)).await {
            Ok(link) => link.map_err(|err| redact(err, &secrets))?,
            Err(_) => {
                return Err(format!(
                    "MCP server {} did not answer within {} s",
                    server.name,
                    START_TIMEOUT.as_secs()
                ))
            }
        };
        Ok(Connection {
            server: server.name.clone(),
            secrets,
            link,
        })
    }

    async fn link(server: &McpServer) -> Result<Link, String> {
        let name = &server.name;
        let initialize = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "exo", "version": env!("CARGO_PKG_VERSION")},
        });
        match &server.transport {
            McpTransport::Stdio { command, env, cwd } => {
                let process = spawn(name, command, env, cwd.as_ref())?;
                let (child, stdin, stdout) = process;
                let group = child.id().map(|pid| pid as i32).unwrap_or_default();
                let process = StdioProcess {
                    child: Mutex::new(Some(child)),
                    group,
                };
                let options = Options {
                    framing: Some(Framing::Ndjson),
                    cancel_on_drop: false,
                    max_frame_bytes: MAX_MESSAGE,
                    ..Options::default()
                };
                let peer = Peer::spawn(stdout, stdin, Arc::new(ClientSide), options);
                let handle = peer.handle();
                let answer = handle
                    .request("initialize", Json::from_value(&initialize))
                    .await
                    .map_err(|err| failure(name, "initialize", err))?;
                check_initialized(name, &answer.to_value())?;
                handle
                    .notify("notifications/initialized", Json::from_value(&json!({})))
                    .await
                    .map_err(|err| failure(name, "initialize", err))?;
                Ok(Link::Stdio {
                    peer,
                    handle,
                    _process: process,
                })
            }
            McpTransport::Http { url, headers } => {
                let link = HttpLink::new(url, headers)?;
                let answer = link.request(name, "initialize", initialize, true).await?;
                check_initialized(name, &answer)?;
                link.notify(name, "notifications/initialized").await?;
                Ok(Link::Http(link))
            }
        }
    }

    /// The server's tools (every page of `tools/list`, at most 256).
    pub async fn tools(&self) -> Result<Vec<OfferedTool>, String> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let page = tokio::time::timeout(START_TIMEOUT, self.request("tools/list", params))
                .await
                .map_err(|_| {
                    format!("MCP server {} did not list its tools in time", self.server)
                })??;
            for tool in page["tools"].as_array().into_iter().flatten() {
                if tools.len() == MAX_TOOLS {
                    return Ok(tools);
                }
                // A server may put its secret anywhere, its tools' names
                // and descriptions included: none of it reaches the model.
                let tool = redact_value(tool.clone(), &self.secrets);
                if let Some(tool) = offered(&self.server, &tool) {
                    tools.push(tool);
                }
            }
            match page["nextCursor"].as_str() {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_owned()),
                _ => return Ok(tools),
            }
        }
    }

    /// Calls a tool: the `CallToolResult`, or why there is none. A call
    /// cancelled or out of time is cancelled at the server too.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: &Value,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Value, CallFailure> {
        let params = json!({"name": tool, "arguments": arguments});
        match &self.link {
            Link::Stdio { handle, .. } => {
                let outgoing = handle
                    .start("tools/call", Json::from_value(&params))
                    .await
                    .map_err(|err| CallFailure::Failed(self.failure("tools/call", err)))?;
                let id = outgoing.id();
                let outcome = tokio::select! {
                    answer = outgoing => Some(answer),
                    () = cancel.cancelled() => None,
                    () = tokio::time::sleep(timeout) => {
                        let _ = handle.notify("notifications/cancelled", Json::from_value(&json!({"requestId": id, "reason": "timed out"}))).await;
                        return Err(CallFailure::Failed(format!("MCP server {} did not answer within {} s", self.server, timeout.as_secs())));
                    }
                };
                match outcome {
                    Some(answer) => answer
                        .map(|json| redact_value(json.to_value(), &self.secrets))
                        .map_err(|err| CallFailure::Failed(self.failure("tools/call", err))),
                    None => {
                        let _ = handle
                            .notify(
                                "notifications/cancelled",
                                Json::from_value(&json!({"requestId": id, "reason": "cancelled"})),
                            )
                            .await;
                        Err(CallFailure::Cancelled)
                    }
                }
            }
            Link::Http(link) => {
                let call = link.request(&self.server, "tools/call", params, false);
                tokio::select! {
                    answer = call => answer
                        .map(|value| redact_value(value, &self.secrets))
                        .map_err(|err| CallFailure::Failed(redact(err, &self.secrets))),
                    () = cancel.cancelled() => Err(CallFailure::Cancelled),
                    () = tokio::time::sleep(timeout) => Err(CallFailure::Failed(format!("MCP server {} did not answer within {} s", self.server, timeout.as_secs()))),
                }
            }
        }
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        match &self.link {
            Link::Stdio { handle, .. } => handle
                .request(method, Json::from_value(&params))
                .await
                .map(|json| json.to_value())
                .map_err(|err| self.failure(method, err)),
            Link::Http(link) => link
                .request(&self.server, method, params, false)
                .await
                .map_err(|err| redact(err, &self.secrets)),
        }
    }

    fn failure(&self, method: &str, err: RequestError) -> String {
        redact(failure(&self.server, method, err), &self.secrets)
    }

    /// Ends the session: a started server is stopped (its stdin closed,
    /// then its process group killed).
    pub fn close(self) {
        if let Link::Stdio { peer, .. } = &self.link {
            peer.stop();
        }
    }
}

/// Why a call gave no result.
#[derive(Debug)]
pub enum CallFailure {
    /// The turn was cancelled while it ran.
    Cancelled,
    /// The server failed, in one line.
    Failed(String),
}

fn failure(server: &str, method: &str, err: RequestError) -> String {
    match err {
        RequestError::Rpc(error) => {
            format!("MCP server {server} refused {method}: {}", error.message)
        }
        RequestError::Closed => {
            format!("MCP server {server} closed the connection during {method}")
        }
        RequestError::Unexpected(what) => format!("MCP server {server}: {what}"),
    }
}

fn check_initialized(server: &str, answer: &Value) -> Result<(), String> {
    if answer["protocolVersion"].is_string() {
        Ok(())
    } else {
        Err(format!(
            "MCP server {server} answered initialize without a protocolVersion"
        ))
    }
}

type Spawned = (
    tokio::process::Child,
    tokio::process::ChildStdin,
    tokio::process::ChildStdout,
);

/// Starts a server in its own process group, which the reaper kills with
/// exo however exo dies; stderr is dropped (it may echo the secret).
fn spawn(
    name: &str,
    command: &[String],
    env: &[(String, String)],
    cwd: Option<&PathBuf>,
) -> Result<Spawned, String> {
    let Some((program, args)) = command.split_first() else {
        return Err(format!("MCP server {name} has no command"));
    };
    exo_tools::reaper::ready().map_err(|err| format!("cannot guard MCP server {name}: {err}"))?;
    let mut process = tokio::process::Command::new(program);
    process
        .args(args)
        .env_clear()
        .envs(std::env::vars_os().filter(|(key, _)| {
            key.to_str()
                .is_some_and(|key| PASSED.contains(&key) || key.starts_with("LC_"))
        }))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(cwd) = cwd {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(cwd)
            .map_err(|err| format!("cannot make the directory of MCP server {name}: {err}"))?;
        process.current_dir(cwd);
    }
    let mut child = process
        .spawn()
        .map_err(|err| format!("cannot start MCP server {name} ({program}): {err}"))?;
    let group = child.id().map(|pid| pid as i32).unwrap_or_default();
    if let Err(err) = exo_tools::reaper::guard(group) {
        let _ = child.start_kill();
        return Err(format!("cannot guard MCP server {name}: {err}"));
    }
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    Ok((child, stdin, stdout))
}

/// A Streamable HTTP session: every message a POST, answered with JSON or
/// an event stream; the session id the server gives is sent back.
struct HttpLink {
    client: reqwest::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
    session: Mutex<Option<String>>,
    next_id: AtomicU64,
}

impl HttpLink {
    fn new(url: &str, headers: &[(String, String)]) -> Result<HttpLink, String> {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        let client = reqwest::Client::builder()
            // A redirect would carry the credential to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| format!("cannot build an HTTP client: {err}"))?;
        Ok(HttpLink {
            client,
            url: url.to_owned(),
            headers: map,
            session: Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    fn post(&self, body: &Value, initialized: bool) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if initialized {
            request = request.header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        if let Some(session) = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            request = request.header("mcp-session-id", session);
        }
        request
    }

    async fn notify(&self, server: &str, method: &str) -> Result<(), String> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let response = self
            .post(&body, true)
            .send()
            .await
            .map_err(|err| http_failure(server, method, &err))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "MCP server {server} answered {method} with HTTP {}",
                response.status().as_u16()
            ))
        }
    }

    async fn request(
        &self,
        server: &str,
        method: &str,
        params: Value,
        initializing: bool,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self
            .post(&body, !initializing)
            .send()
            .await
            .map_err(|err| http_failure(server, method, &err))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "MCP server {server} answered {method} with HTTP {}",
                status.as_u16()
            ));
        }
        if initializing {
            if let Some(session) = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session.to_owned());
            }
        }
        let event_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let message = if event_stream {
            read_events(server, method, id, response).await?
        } else {
            let bytes = read_capped(server, method, response).await?;
            serde_json::from_slice::<Value>(&bytes).map_err(|_| {
                format!("MCP server {server} answered {method} with something not JSON")
            })?
        };
        answer_of(server, method, id, message)
    }
}

/// The result of the response to `id`, or its error.
fn answer_of(server: &str, method: &str, id: u64, message: Value) -> Result<Value, String> {
    let message = match message {
        // A batch answer: the one for us.
        Value::Array(items) => items
            .into_iter()
            .find(|item| item["id"] == json!(id))
            .unwrap_or(Value::Null),
        other => other,
    };
    if let Some(error) = message.get("error") {
        return Err(format!(
            "MCP server {server} refused {method}: {}",
            error["message"].as_str().unwrap_or("no message")
        ));
    }
    match message.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(format!(
            "MCP server {server} answered {method} without a result"
        )),
    }
}

fn http_failure(server: &str, method: &str, err: &reqwest::Error) -> String {
    let why = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        // Without the URL: reqwest's message names it, and it may carry
        // a query the user counts as private.
        err.without_url_ref().to_string()
    };
    format!("MCP server {server}: {method}: {why}")
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(url) => text.replace(url.as_str(), "its URL"),
            None => text,
        }
    }
}

async fn read_capped(
    server: &str,
    method: &str,
    response: reqwest::Response,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| http_failure(server, method, &err))?;
        if body.len() + chunk.len() > MAX_MESSAGE {
            return Err(format!(
                "MCP server {server} answered {method} with more than {} MiB",
                MAX_MESSAGE >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads server-sent events until the response to `id`.
async fn read_events(
    server: &str,
    method: &str,
    id: u64,
    response: reqwest::Response,
) -> Result<Value, String> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut read = 0usize;
    let mut stream = response.bytes_stream();
    loop {
        // Whole events in the buffer first.
        while let Some(end) = event_end(&buffer) {
            let event: Vec<u8> = buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&event[..end.0]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            if data.is_empty() {
                continue;
            }
            if let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) {
                let ours = message["id"] == json!(id)
                    && (message.get("result").is_some() || message.get("error").is_some());
                if ours {
                    return Ok(message);
                }
            }
        }
        match stream.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(|err| http_failure(server, method, &err))?;
                read += chunk.len();
                if read > MAX_MESSAGE {
                    return Err(format!(
                        "MCP server {server} streamed more than {} MiB for {method}",
                        MAX_MESSAGE >> 20
                    ));
                }
                buffer.extend_from_slice(&chunk);
            }
            None => {
                return Err(format!(
                    "MCP server {server} ended its stream without answering {method}"
                ))
            }
        }
    }
}

/// Where the first event in `buffer` ends: its length and that of the
/// blank line after it.
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The MCP servers of one turn and their tools.
#[derive(Default)]
pub struct McpTools {
    tools: Vec<OfferedTool>,
    connections: HashMap<String, Arc<Connection>>,
}

impl McpTools {
    /// exo's own tools and those of `servers`, each started or connected
    /// to. A server that cannot be reached is left out, with why (one
    /// line per server, no secret in it).
    pub async fn open(servers: &[McpServer], history: bool) -> (McpTools, Vec<String>) {
        let mut tools = McpTools::default();
        if history {
            tools.tools.extend(history_tools());
        }
        let opened = futures_util::future::join_all(servers.iter().map(|server| async move {
            // Starting, initializing and listing, all within the limit: a
            // server that pages its tools forever is cut off too.
            let start = async {
                let connection = Connection::open(server).await?;
                let listed = connection.tools().await;
                match listed {
                    Ok(list) => Ok((connection, list)),
                    Err(err) => {
                        connection.close();
                        Err(err)
                    }
                }
            };
            match tokio::time::timeout(START_TIMEOUT, start).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!(
                    "MCP server {} did not start and list its tools within {} s",
                    server.name,
                    START_TIMEOUT.as_secs()
                )),
            }
        }))
        .await;
        let mut failures = Vec::new();
        for outcome in opened {
            match outcome {
                Ok((connection, list)) => {
                    for tool in list {
                        if !tools.tools.iter().any(|t| t.offered == tool.offered) {
                            tools.tools.push(tool);
                        }
                    }
                    tools
                        .connections
                        .insert(connection.server.clone(), Arc::new(connection));
                }
                Err(err) => failures.push(err),
            }
        }
        (tools, failures)
    }

    /// The tools offered.
    pub fn tools(&self) -> &[OfferedTool] {
        &self.tools
    }

    /// The tool the model calls `offered`, if it is one of these.
    pub fn find(&self, offered: &str) -> Option<&OfferedTool> {
        self.tools.iter().find(|tool| tool.offered == offered)
    }

    /// The connection to a bound server.
    pub fn connection(&self, server: &str) -> Option<Arc<Connection>> {
        self.connections.get(server).cloned()
    }

    /// Stops the started servers.
    pub fn close(&mut self) {
        for (_, connection) in self.connections.drain() {
            if let Ok(connection) = Arc::try_unwrap(connection) {
                connection.close();
            }
        }
    }
}

impl Drop for McpTools {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_names_are_what_model_apis_take() {
        assert_eq!(offered_name("docs", "search"), "mcp__docs__search");
        assert_eq!(
            offered_name("my.docs", "find/all"),
            "mcp__my_docs__find_all"
        );
        assert_eq!(offered_name("a", &"x".repeat(100)).len(), 64);
    }

    #[test]
    fn secrets_are_redacted_and_never_debugged() {
        let server = McpServer {
            name: "docs".into(),
            transport: McpTransport::Http {
                url: "http://127.0.0.1:1/mcp".into(),
                headers: vec![("authorization".into(), "Bearer s3cret-value".into())],
            },
        };
        assert!(!format!("{server:?}").contains("s3cret"));
        assert_eq!(
            redact("echo s3cret-value!".into(), &server.secrets()),
            "echo [redacted]!"
        );
    }

    #[test]
    fn events_end_at_a_blank_line() {
        assert_eq!(event_end(b"data: 1\n\ndata: 2"), Some((7, 2)));
        assert_eq!(event_end(b"data: 1\r\n\r\n"), Some((7, 4)));
        assert_eq!(event_end(b"data: 1\n"), None);
    }

    #[test]
    fn a_schema_without_a_type_is_an_object() {
        let tool = offered(
            "s",
            &json!({"name": "t", "inputSchema": {"properties": {}}}),
        )
        .unwrap();
        assert_eq!(tool.parameters["type"], "object");
        assert!(!tool.read_only);
        let tool = offered(
            "s",
            &json!({"name": "t", "annotations": {"readOnlyHint": true}}),
        )
        .unwrap();
        assert_eq!(tool.parameters, json!({"type": "object", "properties": {}}));
        assert!(tool.read_only);
        assert!(offered("s", &json!({"description": "no name"})).is_none());
    }
}
