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
                "tools/list" => Ok(json!({"tools": tools(scope.allow_write)})),
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

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn tools(allow_write: bool) -> Vec<Value> {
    let mut tools = vec![
        json!({
            "name": "events",
            "title": "Read this conversation's events",
            "description": "Events of this conversation's current history, oldest first: messages, tool calls and results, turns, snapshots. Page with `after` (an event id); filter by `kind`, `turn`, or text `search` (case-insensitive, over each event's JSON).",
            "inputSchema": object(json!({
                "after": {"type": "string", "description": "Start after this event id."},
                "kind": {"type": "string", "description": "Only this kind (message, tool_call, tool_result, turn_started, ...)."},
                "turn": {"type": "string", "description": "Only this turn's events."},
                "search": {"type": "string", "description": "Only events whose JSON contains this text."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many (100)."},
                "newest_first": {"type": "boolean", "description": "Newest first."},
            }), &[]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "event",
            "title": "Read one event",
            "description": "One event of this conversation, by id.",
            "inputSchema": object(json!({"id": {"type": "string"}}), &["id"]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "artifacts",
            "title": "List artifacts",
            "description": "This conversation's artifacts (the newest version of each), or every version of `path`.",
            "inputSchema": object(json!({"path": {"type": "string"}}), &[]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "artifact",
            "title": "Read an artifact",
            "description": "An artifact's content (its newest version, or `version`), as text when it is UTF-8, else base64.",
            "inputSchema": object(json!({"path": {"type": "string"}, "version": {"type": "integer", "minimum": 1}}), &["path"]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "snapshots",
            "title": "List workspace snapshots",
            "description": "This conversation's workspace snapshots, newest first.",
            "inputSchema": object(json!({"limit": {"type": "integer", "minimum": 1, "maximum": 1000}}), &[]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "snapshot_diff",
            "title": "Diff snapshots",
            "description": "What changed between two snapshots (ids), or from one to the files on disk now (no `to`), or since the latest snapshot (neither).",
            "inputSchema": object(json!({"from": {"type": "string"}, "to": {"type": "string"}}), &[]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "tree",
            "title": "The conversation's branches",
            "description": "The history as a graph: the current line, branches left by rewinds (with their heads) and forks.",
            "inputSchema": object(json!({}), &[]),
            "annotations": {"readOnlyHint": true},
        }),
    ];
    if allow_write {
        tools.push(json!({
            "name": "put_artifact",
            "title": "Write an artifact",
            "description": "Stores a new version of an artifact of this conversation (text).",
            "inputSchema": object(json!({"path": {"type": "string"}, "content": {"type": "string"}, "media_type": {"type": "string"}}), &["path", "content"]),
            "annotations": {"readOnlyHint": false, "destructiveHint": false},
        }));
    }
    tools
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
    async fn exo(&self, method: &str, mut params: Value) -> Result<Value, String> {
        // Always this conversation, whatever was asked.
        params["agent"] = json!(self.agent);
        params["conversation"] = json!(self.conversation);
        self.exo
            .request(method, Json::from_value(&params))
            .await
            .map(|answer| answer.to_value())
            .map_err(|err| match err {
                exo_rpc::peer::RequestError::Rpc(error) => error.message,
                other => other.to_string(),
            })
    }

    async fn call_tool(&self, params: &Value) -> Value {
        let name = params["name"].as_str().unwrap_or_default();
        let args = if params["arguments"].is_object() {
            params["arguments"].clone()
        } else {
            json!({})
        };
        let text = |key: &str| args[key].as_str().map(str::to_owned);
        let outcome = match name {
            "events" => self.events(&args).await,
            "event" => match text("id") {
                Some(id) => self.exo("events/get", json!({"event": id})).await,
                None => Err("id is required".into()),
            },
            "artifacts" => {
                let mut query = json!({});
                if let Some(path) = text("path") {
                    query["path"] = json!(path);
                }
                self.exo("artifact/list", query).await
            }
            "artifact" => match text("path") {
                Some(path) => {
                    let mut query = json!({"path": path});
                    if let Some(version) = args["version"].as_u64() {
                        query["version"] = json!(version);
                    }
                    self.exo("artifact/get", query).await.map(decoded)
                }
                None => Err("path is required".into()),
            },
            "snapshots" => {
                let mut query = json!({});
                if let Some(limit) = args["limit"].as_u64() {
                    query["limit"] = json!(limit);
                }
                self.exo("snapshot/list", query).await
            }
            "snapshot_diff" => {
                let mut query = json!({"unified": true});
                for key in ["from", "to"] {
                    if let Some(value) = text(key) {
                        query[key] = json!(value);
                    }
                }
                self.exo("snapshot/diff", query).await
            }
            "tree" => self.exo("conversation/tree", json!({})).await,
            "put_artifact" if self.allow_write => match (text("path"), text("content")) {
                (Some(path), Some(content)) => {
                    use base64::Engine;
                    let mut put = json!({
                        "path": path,
                        "content_base64": base64::engine::general_purpose::STANDARD.encode(content),
                    });
                    if let Some(media_type) = text("media_type") {
                        put["media_type"] = json!(media_type);
                    }
                    self.exo("artifact/put", put).await
                }
                _ => Err("path and content are required".into()),
            },
            "put_artifact" => Err(
                "writing artifacts is not allowed: this server was started without --allow-write"
                    .into(),
            ),
            other => Err(format!("no tool {other:?}")),
        };
        match outcome {
            Ok(value) => answer(value),
            Err(message) => failed(message),
        }
    }

    async fn events(&self, args: &Value) -> Result<Value, String> {
        let limit = args["limit"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
        let search = args["search"].as_str().map(str::to_lowercase);
        let mut query = json!({"limit": if search.is_some() { 1000 } else { limit }});
        for key in ["after", "kind", "turn"] {
            if let Some(value) = args[key].as_str() {
                query[key] = json!(value);
            }
        }
        if args["newest_first"] == true {
            query["desc"] = json!(true);
        }
        let mut found = Vec::new();
        // A search reads pages until it has `limit` matches.
        let next = loop {
            let page = self.exo("events/list", query.clone()).await?;
            for event in page["events"].as_array().into_iter().flatten() {
                let hit = search
                    .as_ref()
                    .is_none_or(|needle| event.to_string().to_lowercase().contains(needle));
                if hit && found.len() < limit {
                    found.push(event.clone());
                }
            }
            let next = page["next_cursor"].as_str().map(str::to_owned);
            match &next {
                Some(cursor) if search.is_some() && found.len() < limit => {
                    query["after"] = json!(cursor);
                }
                _ => break next,
            }
        };
        Ok(json!({"events": found, "next_cursor": next}))
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

/// An artifact with its content as text when it is UTF-8.
fn decoded(mut content: Value) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content["content_base64"].as_str().unwrap_or_default())
        .unwrap_or_default();
    if let Ok(text) = String::from_utf8(bytes) {
        if let Some(object) = content.as_object_mut() {
            object.remove("content_base64");
            object.insert("text".into(), json!(text));
        }
    }
    content
}
