//! `exo mcp`: a Model Context Protocol server over stdio, scoped to one
//! conversation, so an agent can read its own history (spec/mcp.md).
//!
//! Every tool is a call on exo's own JSON-RPC service for that one
//! conversation: whatever a caller names, it reaches no other conversation
//! and no secret value. Writing an artifact is offered only with
//! `--allow-write`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use exo_rpc::message::{ErrorObject, Json, Request};
use exo_rpc::peer::{Context, Handler, PeerHandle};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::chat::Conn;
use exo_executor::history;

/// The MCP revision this server speaks (it answers with the client's when
/// it is one of these).
const PROTOCOL_VERSIONS: [&str; 3] = ["2025-06-18", "2025-03-26", "2024-11-05"];

const INVALID_PARAMS: i64 = -32602;
const METHOD_NOT_FOUND: i64 = -32601;

/// The longest text a tool returns; longer is cut, saying so.
const MAX_TEXT: usize = 256 << 10;

/// What `exo mcp` serves.
pub struct McpArgs {
    pub agent: String,
    pub conversation: String,
    pub allow_write: bool,
}

/// `exo mcp --agent A --conversation C [--allow-write]`.
pub fn run(root: &Path, args: McpArgs) -> Result<()> {
    crate::chat::run_async(serve(root.to_path_buf(), args))
}

async fn serve(root: std::path::PathBuf, args: McpArgs) -> Result<()> {
    let mut conn = Conn::open(&root).await?;
    // The conversation must exist, and is pinned by its ids from here on.
    let found = conn
        .call(
            "conversation/get",
            json!({"agent": args.agent, "conversation": args.conversation}),
        )
        .await?;
    let scope = Scope {
        agent: found["agent"].as_str().unwrap_or(&args.agent).to_owned(),
        conversation: found["id"]
            .as_str()
            .unwrap_or(&args.conversation)
            .to_owned(),
        name: found["name"].as_str().unwrap_or_default().to_owned(),
        allow_write: args.allow_write,
        exo: conn.handle(),
    };
    let handler = Arc::new(Mcp {
        scope: Arc::new(scope),
    });
    crate::chat::serve_stdio(handler).await;
    conn.close().await;
    Ok(())
}

struct Scope {
    agent: String,
    conversation: String,
    name: String,
    allow_write: bool,
    exo: PeerHandle,
}

impl history::Service for Scope {
    fn call(&self, method: &str, mut params: Value) -> BoxFuture<'static, Result<Value, String>> {
        // Always this conversation, whatever was asked.
        params["agent"] = json!(self.agent);
        params["conversation"] = json!(self.conversation);
        let (exo, method) = (self.exo.clone(), method.to_owned());
        Box::pin(async move {
            exo.request(&method, Json::from_value(&params))
                .await
                .map(|answer| answer.to_value())
                .map_err(|err| match err {
                    exo_rpc::peer::RequestError::Rpc(error) => error.message,
                    other => other.to_string(),
                })
        })
    }
}

struct Mcp {
    scope: Arc<Scope>,
}

impl Handler for Mcp {
    fn handle(
        &self,
        request: Request,
        _context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        let scope = Arc::clone(&self.scope);
        Box::pin(async move {
            let params = request.params.map(|p| p.to_value()).unwrap_or(Value::Null);
            let result = match request.method.as_str() {
                "initialize" => Ok(initialize(&params)),
                "notifications/initialized" | "notifications/cancelled" => Ok(Value::Null),
                "ping" => Ok(json!({})),
                "tools/list" => Ok(json!({"tools": history::tools(scope.allow_write)})),
                "tools/call" => Ok(scope.call_tool(&params).await),
                "resources/list" => scope.resources().await,
                "resources/read" => scope.read_resource(&params).await,
                other => Err(ErrorObject::new(
                    METHOD_NOT_FOUND,
                    format!("exo's MCP server has no method {other}"),
                )),
            }?;
            Ok(Json::from_value(&result))
        })
    }
}

fn initialize(params: &Value) -> Value {
    let asked = params["protocolVersion"].as_str().unwrap_or_default();
    let version = PROTOCOL_VERSIONS
        .iter()
        .find(|known| **known == asked)
        .copied()
        .unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}, "resources": {"listChanged": false, "subscribe": false}},
        "serverInfo": {"name": "exo", "title": "exo: this conversation's history", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Tools over the conversation you are in: its events (what was said, called and answered, and when), its artifacts, its workspace snapshots and its branches. Nothing here reaches another conversation or a secret.",
    })
}

/// A tool's answer: JSON pretty-printed as text (cut when too long), and
/// as structured content.
fn answer(value: Value) -> Value {
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n… (cut: ask for less, with limit, after or kind)");
    }
    json!({"content": [{"type": "text", "text": text}], "structuredContent": {"result": value}, "isError": false})
}

fn failed(message: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": message.into()}], "isError": true})
}

impl Scope {
    async fn exo(&self, method: &str, params: Value) -> Result<Value, String> {
        history::Service::call(self, method, params).await
    }

    async fn call_tool(&self, params: &Value) -> Value {
        let name = params["name"].as_str().unwrap_or_default();
        match history::call(self, name, &params["arguments"], self.allow_write).await {
            Ok(value) => answer(value),
            Err(message) => failed(message),
        }
    }

    async fn resources(&self) -> Result<Value, ErrorObject> {
        let mut resources = vec![json!({
            "uri": "exo://conversation",
            "name": "conversation",
            "title": format!("The conversation {}", self.name),
            "mimeType": "application/json",
        })];
        let listed = self
            .exo("artifact/list", json!({}))
            .await
            .map_err(|message| ErrorObject::new(INVALID_PARAMS, message))?;
        for artifact in listed["artifacts"].as_array().into_iter().flatten() {
            let path = artifact["path"].as_str().unwrap_or_default();
            resources.push(json!({
                "uri": format!("exo://artifact/{path}"),
                "name": path,
                "mimeType": artifact["media_type"].as_str().unwrap_or("application/octet-stream"),
            }));
        }
        Ok(json!({"resources": resources}))
    }

    async fn read_resource(&self, params: &Value) -> Result<Value, ErrorObject> {
        let uri = params["uri"]
            .as_str()
            .ok_or_else(|| ErrorObject::new(INVALID_PARAMS, "uri is required"))?;
        let refused = |message: String| ErrorObject::new(INVALID_PARAMS, message);
        if uri == "exo://conversation" {
            let conversation = self
                .exo("conversation/get", json!({}))
                .await
                .map_err(refused)?;
            return Ok(json!({"contents": [{
                "uri": uri,
                "mimeType": "application/json",
                "text": conversation.to_string(),
            }]}));
        }
        let Some(path) = uri.strip_prefix("exo://artifact/") else {
            return Err(refused(format!("no resource {uri}")));
        };
        let content = self
            .exo("artifact/get", json!({"path": path}))
            .await
            .map_err(refused)?;
        let bytes = content["content_base64"].as_str().unwrap_or_default();
        let mime = content["media_type"]
            .as_str()
            .unwrap_or("application/octet-stream");
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(bytes)
            .unwrap_or_default();
        Ok(match String::from_utf8(decoded) {
            Ok(text) => json!({"contents": [{"uri": uri, "mimeType": mime, "text": text}]}),
            Err(_) => json!({"contents": [{"uri": uri, "mimeType": mime, "blob": bytes}]}),
        })
    }
}
