//! exo's own tools over one conversation's history: its events, artifacts,
//! snapshots and branches (spec/mcp.md, "Tools").
//!
//! The same tools are served two ways: by `exo mcp` to any MCP client (an
//! agent CLI, an editor), and in-process by the built-in executor and the
//! harnesses, which offer them to their model as `mcp__exo__TOOL`. Either
//! way each tool is one or a few calls of exo's JSON-RPC service, made
//! through a [`Service`] that pins the agent and conversation: whatever a
//! caller names, it reaches no other conversation, and none of the methods
//! returns a secret value.

use base64::Engine;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

/// The name exo's own server goes by (`mcp__exo__events`, ...).
pub const SERVER: &str = "exo";

/// Calls one of exo's JSON-RPC methods for the conversation: the agent
/// and conversation of the params are set by the implementation, whatever
/// they say. A refusal is its one-line message.
pub trait Service: Send + Sync {
    /// Calls `method` with `params`.
    fn call(&self, method: &str, params: Value) -> BoxFuture<'static, Result<Value, String>>;
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// The tools, as MCP describes them (`name`, `title`, `description`,
/// `inputSchema`, `annotations`); `put_artifact` only when writing is
/// allowed.
pub fn tools(allow_write: bool) -> Vec<Value> {
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
            "inputSchema": object(json!({"id": {"type": "string", "description": "The event's id."}}), &["id"]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "artifacts",
            "title": "List artifacts",
            "description": "This conversation's artifacts (the newest version of each), or every version of `path`.",
            "inputSchema": object(json!({"path": {"type": "string", "description": "Every version of this artifact."}}), &[]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "artifact",
            "title": "Read an artifact",
            "description": "An artifact's content (its newest version, or `version`), as text when it is UTF-8, else base64.",
            "inputSchema": object(json!({
                "path": {"type": "string", "description": "The artifact's path."},
                "version": {"type": "integer", "minimum": 1, "description": "This version (default: the newest)."}
            }), &["path"]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "snapshots",
            "title": "List workspace snapshots",
            "description": "This conversation's workspace snapshots, newest first.",
            "inputSchema": object(json!({"limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many."}}), &[]),
            "annotations": {"readOnlyHint": true},
        }),
        json!({
            "name": "snapshot_diff",
            "title": "Diff snapshots",
            "description": "What changed between two snapshots (ids), or from one to the files on disk now (no `to`), or since the latest snapshot (neither).",
            "inputSchema": object(json!({
                "from": {"type": "string", "description": "The older snapshot's id."},
                "to": {"type": "string", "description": "The newer snapshot's id (default: the files on disk)."}
            }), &[]),
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
            "inputSchema": object(json!({
                "path": {"type": "string", "description": "The artifact's path."},
                "content": {"type": "string", "description": "Its new content."},
                "media_type": {"type": "string", "description": "Its media type (default text/plain)."}
            }), &["path", "content"]),
            "annotations": {"readOnlyHint": false, "destructiveHint": false},
        }));
    }
    tools
}

/// Runs the tool `name` with `args`: the methods' result, or why not.
pub async fn call(
    exo: &dyn Service,
    name: &str,
    args: &Value,
    allow_write: bool,
) -> Result<Value, String> {
    let empty = json!({});
    let args = if args.is_object() { args } else { &empty };
    let text = |key: &str| args[key].as_str().map(str::to_owned);
    match name {
        "events" => events(exo, args).await,
        "event" => match text("id") {
            Some(id) => exo.call("events/get", json!({"event": id})).await,
            None => Err("id is required".into()),
        },
        "artifacts" => {
            let mut query = json!({});
            if let Some(path) = text("path") {
                query["path"] = json!(path);
            }
            exo.call("artifact/list", query).await
        }
        "artifact" => match text("path") {
            Some(path) => {
                let mut query = json!({"path": path});
                if let Some(version) = args["version"].as_u64() {
                    query["version"] = json!(version);
                }
                exo.call("artifact/get", query).await.map(decoded)
            }
            None => Err("path is required".into()),
        },
        "snapshots" => {
            let mut query = json!({});
            if let Some(limit) = args["limit"].as_u64() {
                query["limit"] = json!(limit);
            }
            exo.call("snapshot/list", query).await
        }
        "snapshot_diff" => {
            let mut query = json!({"unified": true});
            for key in ["from", "to"] {
                if let Some(value) = text(key) {
                    query[key] = json!(value);
                }
            }
            exo.call("snapshot/diff", query).await
        }
        "tree" => exo.call("conversation/tree", json!({})).await,
        "put_artifact" if allow_write => match (text("path"), text("content")) {
            (Some(path), Some(content)) => {
                let mut put = json!({
                    "path": path,
                    "content_base64": base64::engine::general_purpose::STANDARD.encode(content),
                });
                if let Some(media_type) = text("media_type") {
                    put["media_type"] = json!(media_type);
                }
                exo.call("artifact/put", put).await
            }
            _ => Err("path and content are required".into()),
        },
        "put_artifact" => Err(
            "writing artifacts is not allowed: this server was started without --allow-write"
                .into(),
        ),
        other => Err(format!("no tool {other:?}")),
    }
}

/// `events`: a page of `events/list`, or with `search`, pages read until
/// `limit` events match.
async fn events(exo: &dyn Service, args: &Value) -> Result<Value, String> {
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
    let next = loop {
        let page = exo.call("events/list", query.clone()).await?;
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

/// An artifact with its content as text when it is UTF-8.
pub fn decoded(mut content: Value) -> Value {
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
