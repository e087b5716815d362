//! Events: the append-only log's unit.
//!
//! # Format
//!
//! An event's JSON shape is flat: the envelope fields (`id`, `conversation`,
//! `session`, `turn`, `created_at`) sit beside `kind` and the kind's own
//! fields. [`EventData`] serializes exactly the `kind` and kind fields:
//!
//! ```json
//! {"kind": "message", "role": "user", "content": [{"type": "text", "text": "hi"}]}
//! {"kind": "custom", "type": "myexec.compaction", "payload": {"summary": "..."}}
//! ```
//!
//! On input, a message's `content` may also be a plain string, which becomes
//! one text part. Unknown fields are rejected so that a typo in a script is
//! an error rather than silently lost data.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::binding::{Binding, BindingKind};
use crate::ids::{AgentId, ConversationId, EventId, SecretId, SessionId, TurnId};
use crate::ValidationError;

/// Microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }
}

/// One recorded event: the envelope plus its kind-specific data.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event's id; the same in every history that contains it.
    pub id: EventId,
    /// The conversation the event was recorded in. A fork shows its source's
    /// events with the source conversation here: they are the same events.
    pub conversation: ConversationId,
    /// The session the event belongs to, if any.
    pub session: Option<SessionId>,
    /// The turn the event belongs to, if any.
    pub turn: Option<TurnId>,
    /// When the event was recorded.
    pub created_at: Timestamp,
    /// The kind and its fields.
    pub data: EventData,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        self.data.kind()
    }
}

/// How a turn ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// The executor finished normally.
    Completed,
    /// A model or tool failure ended the turn.
    Failed,
    /// Someone cancelled the turn.
    Cancelled,
    /// The process running the turn died; found and closed on next open.
    Interrupted,
    /// The executor hit its round limit.
    MaxRounds,
}

impl TurnStatus {
    /// The status as written in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Completed => "completed",
            TurnStatus::Failed => "failed",
            TurnStatus::Cancelled => "cancelled",
            TurnStatus::Interrupted => "interrupted",
            TurnStatus::MaxRounds => "max_rounds",
        }
    }
}

impl fmt::Display for TurnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TurnStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            ValidationError::new(format!(
                "unknown turn status {s:?}: expected completed, failed, cancelled, interrupted or max_rounds"
            ))
        })
    }
}

/// Why a session ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionEndReason {
    /// The owner closed it.
    Closed,
    /// The owner died; found and closed on next open.
    Interrupted,
}

/// Why a workspace snapshot was taken.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SnapshotReason {
    /// At the start of a turn.
    TurnStart,
    /// At the end of a turn.
    TurnEnd,
    /// Asked for (`exo snapshot take`, `snapshot/take`).
    Manual,
    /// Before a restore or rewind, so that it can be undone.
    Safety,
    /// After a restore or rewind: the files now match this snapshot.
    Restore,
    /// The first snapshot of a fork's new workspace.
    Fork,
}

/// A path a snapshot left out (too large, special, unreadable), or a path
/// of the snapshot a restore left alone (something uncaptured in the way).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SkippedFile {
    /// Its workspace-relative path (lossy UTF-8 for names that are not).
    pub path: String,
    /// Its size in bytes (0 when unknown or irrelevant).
    pub size: u64,
    /// Why, in a few words (absent in events recorded before exo said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A path a restore left alone because it changed on disk while the
/// restore ran, after the safety snapshot: work that is in no snapshot.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathConflict {
    /// Its workspace-relative path (lossy UTF-8 for names that are not).
    pub path: String,
    /// How the disk differs from the safety snapshot: `added`, `modified`,
    /// `deleted` or `mode_changed`.
    pub change: String,
}

/// Who speaks in a message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions from the harness.
    System,
    /// The person (or script) driving the agent.
    User,
    /// The model.
    Assistant,
}

/// One part of a message's content.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A model's visible reasoning summary.
    Reasoning {
        /// The text.
        text: String,
    },
    /// An image, inline as base64.
    Image {
        /// Its media type, e.g. `image/png`.
        media_type: String,
        /// The bytes, base64-encoded.
        data: String,
    },
}

impl ContentPart {
    /// Checks the rules serde cannot express: an image's media type is
    /// `image/<subtype>` and its data standard base64 (with padding) of at
    /// least one byte.
    pub fn validate(&self) -> Result<(), ValidationError> {
        use base64::Engine;
        let ContentPart::Image { media_type, data } = self else {
            return Ok(());
        };
        if !is_image_media_type(media_type) {
            return Err(ValidationError::new(format!(
                "image media_type {media_type:?} is not an image type like \"image/png\""
            )));
        }
        if data.is_empty() {
            return Err(ValidationError::new("image data must not be empty"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .map_err(|err| {
                ValidationError::new(format!("image data is not standard base64: {err}"))
            })?;
        Ok(())
    }
}

/// `image/` and a subtype of RFC 6838's restricted name characters, at most
/// 127 of them: nothing that could break out of a `data:` URL.
fn is_image_media_type(media_type: &str) -> bool {
    let Some(subtype) = media_type.strip_prefix("image/") else {
        return false;
    };
    let mut bytes = subtype.bytes();
    subtype.len() <= 127
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

/// Token usage reported by a model for one message.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
}

fn content_from_string_or_parts<'de, D>(deserializer: D) -> Result<Vec<ContentPart>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Ok(vec![ContentPart::Text { text }]),
        parts @ serde_json::Value::Array(_) => serde_json::from_value(parts)
            .map_err(|err| serde::de::Error::custom(format!("invalid content part: {err}"))),
        _ => Err(serde::de::Error::custom(
            "content must be a string or an array of parts",
        )),
    }
}

/// The kind of an event, as a closed set. `custom` carries its own
/// namespaced type inside.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum EventKind {
    /// First event of every conversation.
    ConversationCreated,
    /// A session opened.
    SessionStarted,
    /// A session closed.
    SessionEnded,
    /// A turn began.
    TurnStarted,
    /// A turn ended, with a status.
    TurnEnded,
    /// A message from the user, the model or the system.
    Message,
    /// The model asked for a tool.
    ToolCall,
    /// A tool's answer.
    ToolResult,
    /// A new artifact version.
    ArtifactWritten,
    /// Something failed.
    Error,
    /// The conversation was forked from another one at this point.
    Forked,
    /// The conversation's head moved to an earlier (or abandoned) event.
    Rewound,
    /// A conversation-scoped secret was set.
    SecretSet,
    /// A conversation-scoped secret was removed.
    SecretDeleted,
    /// A conversation-scoped binding was set.
    BindingSet,
    /// A conversation-scoped binding was removed.
    BindingDeleted,
    /// The conversation's workspace was snapshotted (or restored).
    WorkspaceSnapshot,
    /// Anything an executor wants to record, under a namespaced type.
    Custom,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 18] = [
        EventKind::ConversationCreated,
        EventKind::SessionStarted,
        EventKind::SessionEnded,
        EventKind::TurnStarted,
        EventKind::TurnEnded,
        EventKind::Message,
        EventKind::ToolCall,
        EventKind::ToolResult,
        EventKind::ArtifactWritten,
        EventKind::Error,
        EventKind::Forked,
        EventKind::Rewound,
        EventKind::SecretSet,
        EventKind::SecretDeleted,
        EventKind::BindingSet,
        EventKind::BindingDeleted,
        EventKind::WorkspaceSnapshot,
        EventKind::Custom,
    ];

    /// The kind's name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConversationCreated => "conversation_created",
            EventKind::SessionStarted => "session_started",
            EventKind::SessionEnded => "session_ended",
            EventKind::TurnStarted => "turn_started",
            EventKind::TurnEnded => "turn_ended",
            EventKind::Message => "message",
            EventKind::ToolCall => "tool_call",
            EventKind::ToolResult => "tool_result",
            EventKind::ArtifactWritten => "artifact_written",
            EventKind::Error => "error",
            EventKind::Forked => "forked",
            EventKind::Rewound => "rewound",
            EventKind::SecretSet => "secret_set",
            EventKind::SecretDeleted => "secret_deleted",
            EventKind::BindingSet => "binding_set",
            EventKind::BindingDeleted => "binding_deleted",
            EventKind::WorkspaceSnapshot => "workspace_snapshot",
            EventKind::Custom => "custom",
        }
    }

    /// Whether callers may append this kind directly (with
    /// `exo conversation append` or a turn handle). The other kinds are
    /// recorded by exo itself as a side effect of an operation.
    pub fn is_appendable(self) -> bool {
        matches!(
            self,
            EventKind::Message
                | EventKind::ToolCall
                | EventKind::ToolResult
                | EventKind::Error
                | EventKind::Custom
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| ValidationError::new(format!("unknown event kind {s:?}")))
    }
}

/// An event's kind and kind-specific fields. See the module docs for the
/// JSON shape.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventData {
    /// First event of every conversation.
    ConversationCreated {
        /// The owning agent.
        agent: AgentId,
        /// Display name at creation.
        name: String,
        /// Slug at creation.
        slug: String,
        /// The workspace directory the conversation is bound to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    /// A session opened.
    SessionStarted {},
    /// A session closed.
    SessionEnded {
        /// Why.
        reason: SessionEndReason,
    },
    /// A turn began; the user's input follows as a message event.
    TurnStarted {},
    /// A turn ended.
    TurnEnded {
        /// How.
        status: TurnStatus,
    },
    /// A message.
    Message {
        /// Who speaks.
        role: Role,
        /// What is said; on input a plain string is one text part.
        #[serde(deserialize_with = "content_from_string_or_parts")]
        content: Vec<ContentPart>,
        /// Token usage, on model messages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        /// The model that produced it, on model messages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// The model asked for a tool.
    ToolCall {
        /// Pairs the call with its result.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The tool's arguments, as JSON.
        #[serde(default)]
        arguments: serde_json::Value,
    },
    /// A tool's answer.
    ToolResult {
        /// The call this answers.
        call_id: String,
        /// The output, as JSON (often a string).
        output: serde_json::Value,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
    },
    /// A new artifact version was stored.
    ArtifactWritten {
        /// The artifact's path.
        path: String,
        /// Its version, from 1.
        version: u64,
        /// SHA-256 of the bytes, hex.
        sha256: String,
        /// Size in bytes.
        size: u64,
        /// Media type, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
    },
    /// Something failed.
    Error {
        /// One line saying what.
        message: String,
        /// A machine-readable code, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// This conversation was forked from another one.
    Forked {
        /// The source conversation.
        from_conversation: ConversationId,
        /// The event forked at: the last one the two histories share.
        from_event: EventId,
    },
    /// The head moved.
    Rewound {
        /// The head before.
        from_event: EventId,
        /// The event the head moved to; this event follows it.
        to_event: EventId,
        /// The workspace snapshot the files were restored to, when they
        /// were.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
    },
    /// A conversation-scoped secret was set. Never carries the value.
    SecretSet {
        /// The secret's name.
        name: String,
        /// The sealed value's id.
        secret_id: SecretId,
    },
    /// A conversation-scoped secret was removed.
    SecretDeleted {
        /// The secret's name.
        name: String,
    },
    /// A conversation-scoped binding was set.
    BindingSet {
        /// The binding.
        binding: Binding,
    },
    /// A conversation-scoped binding was removed.
    BindingDeleted {
        /// The binding's kind.
        binding_kind: BindingKind,
        /// The binding's name.
        name: String,
    },
    /// The conversation's workspace as it was on disk: a commit in the
    /// workspace's shadow store. Also recorded after a restore, naming the
    /// snapshot the files now match.
    WorkspaceSnapshot {
        /// The workspace directory.
        workspace: String,
        /// The snapshot's commit id.
        commit: String,
        /// Its tree id.
        tree: String,
        /// Why it was taken.
        reason: SnapshotReason,
        /// Paths added since the previous snapshot of this workspace (for
        /// a restore: paths the restore added).
        added: u64,
        /// Paths modified since then (for a restore: rewritten).
        modified: u64,
        /// Paths deleted since then (for a restore: removed).
        deleted: u64,
        /// Files left out of the snapshot; for a restore, paths of the
        /// snapshot left alone because something uncaptured is in the way.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<SkippedFile>,
        /// For a restore: paths left alone because they changed on disk
        /// while it ran (the files then do not all match `commit`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        conflicts: Vec<PathConflict>,
    },
    /// Anything else, under a namespaced type such as `myexec.compaction`.
    Custom {
        /// The namespaced type.
        #[serde(rename = "type")]
        custom_type: String,
        /// Free-form payload.
        #[serde(default)]
        payload: serde_json::Value,
    },
}

/// The `custom` event type of a compaction: a summary that stands, in
/// the prompt the built-in executor builds, for the history it summarises
/// (spec/executor.md). The store indexes these events, so the newest one
/// on a history is found without reading the history.
pub const COMPACTION_TYPE: &str = "exo.compaction";

impl EventData {
    /// Whether this is a compaction (`custom` of type [`COMPACTION_TYPE`]).
    pub fn is_compaction(&self) -> bool {
        matches!(self, EventData::Custom { custom_type, .. } if custom_type == COMPACTION_TYPE)
    }

    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            EventData::ConversationCreated { .. } => EventKind::ConversationCreated,
            EventData::SessionStarted {} => EventKind::SessionStarted,
            EventData::SessionEnded { .. } => EventKind::SessionEnded,
            EventData::TurnStarted {} => EventKind::TurnStarted,
            EventData::TurnEnded { .. } => EventKind::TurnEnded,
            EventData::Message { .. } => EventKind::Message,
            EventData::ToolCall { .. } => EventKind::ToolCall,
            EventData::ToolResult { .. } => EventKind::ToolResult,
            EventData::ArtifactWritten { .. } => EventKind::ArtifactWritten,
            EventData::Error { .. } => EventKind::Error,
            EventData::Forked { .. } => EventKind::Forked,
            EventData::Rewound { .. } => EventKind::Rewound,
            EventData::SecretSet { .. } => EventKind::SecretSet,
            EventData::SecretDeleted { .. } => EventKind::SecretDeleted,
            EventData::BindingSet { .. } => EventKind::BindingSet,
            EventData::BindingDeleted { .. } => EventKind::BindingDeleted,
            EventData::WorkspaceSnapshot { .. } => EventKind::WorkspaceSnapshot,
            EventData::Custom { .. } => EventKind::Custom,
        }
    }

    /// A user message with one text part.
    pub fn user_text(text: impl Into<String>) -> Self {
        EventData::Message {
            role: Role::User,
            content: vec![ContentPart::Text { text: text.into() }],
            usage: None,
            model: None,
        }
    }

    /// Parses one line of caller input (`exo conversation append`, the
    /// daemon's `conversation/append`) and checks it may be appended.
    ///
    /// Envelope fields that exo assigns itself (`id`, `created_at`,
    /// `conversation`, `session`, `turn`) are ignored, so that the output of
    /// `conversation events --json` can be fed back in.
    pub fn from_input_json(value: serde_json::Value) -> Result<Self, ValidationError> {
        if nesting(&value) > MAX_INPUT_NESTING {
            return Err(ValidationError::new(format!(
                "nested deeper than {MAX_INPUT_NESTING} levels"
            )));
        }
        let serde_json::Value::Object(mut object) = value else {
            return Err(ValidationError::new("expected a JSON object"));
        };
        for envelope in ["id", "created_at", "conversation", "session", "turn"] {
            object.remove(envelope);
        }
        let kind = match object.get("kind") {
            Some(serde_json::Value::String(kind)) => kind.parse::<EventKind>()?,
            Some(_) => return Err(ValidationError::new("\"kind\" must be a string")),
            None => return Err(ValidationError::new("missing \"kind\"")),
        };
        if !kind.is_appendable() {
            return Err(ValidationError::new(format!(
                "kind {kind:?} is recorded by exo itself and cannot be appended; appendable kinds are message, tool_call, tool_result, error and custom",
                kind = kind.as_str()
            )));
        }
        let data: EventData = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|err| ValidationError::new(err.to_string()))?;
        data.validate()?;
        Ok(data)
    }

    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            EventData::Custom { custom_type, .. } => validate_custom_type(custom_type),
            EventData::ToolCall { call_id, name, .. } => {
                non_empty("tool_call.call_id", call_id)?;
                non_empty("tool_call.name", name)
            }
            EventData::ToolResult { call_id, .. } => non_empty("tool_result.call_id", call_id),
            EventData::Error { message, .. } => non_empty("error.message", message),
            EventData::Message { content, .. } => {
                content.iter().enumerate().try_for_each(|(index, part)| {
                    part.validate().map_err(|err| {
                        ValidationError::new(format!("content part {}: {err}", index + 1))
                    })
                })
            }
            _ => Ok(()),
        }
    }
}

/// How deeply an event given as input may nest arrays and objects (the
/// event's own object is level 1). One limit for every way in, so that
/// what one accepts every other can read back, inside any envelope.
pub const MAX_INPUT_NESTING: usize = 64;

/// The nesting depth of a value: 0 for a scalar, 1 for a flat array or
/// object. Iterative, so any depth is measured safely.
fn nesting(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

fn non_empty(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        Err(ValidationError::new(format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

/// A custom type is `namespace.name`: at least two dot-separated segments of
/// `a-z 0-9 _ -`, at most 128 characters, e.g. `myexec.compaction`.
fn validate_custom_type(custom_type: &str) -> Result<(), ValidationError> {
    let segments: Vec<&str> = custom_type.split('.').collect();
    let ok = custom_type.len() <= 128
        && segments.len() >= 2
        && segments.iter().all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(format!(
            "custom type {custom_type:?} must be namespaced like \"myexec.compaction\" (lowercase segments joined by dots)"
        )))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn input_nesting_is_bounded() {
        let nested = |levels: usize| {
            let mut payload = serde_json::json!(1);
            for _ in 0..levels {
                payload = serde_json::json!([payload]);
            }
            serde_json::json!({"kind": "custom", "type": "test.deep", "payload": payload})
        };
        // The event's object is level 1, its payload's arrays the rest.
        assert!(EventData::from_input_json(nested(MAX_INPUT_NESTING - 1)).is_ok());
        let error = EventData::from_input_json(nested(MAX_INPUT_NESTING)).unwrap_err();
        assert!(
            error.to_string().contains("nested deeper than 64"),
            "{error}"
        );
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn input_shapes_from_the_issue_are_accepted() {
        let message =
            EventData::from_input_json(json!({"kind":"message","role":"user","content":"hi"}))
                .unwrap();
        assert_eq!(message, EventData::user_text("hi"));
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            json!({"kind":"message","role":"user","content":[{"type":"text","text":"hi"}]})
        );
        let custom =
            EventData::from_input_json(json!({"kind":"custom","type":"ns.name","payload":{"a":1}}))
                .unwrap();
        assert_eq!(
            serde_json::to_value(&custom).unwrap(),
            json!({"kind":"custom","type":"ns.name","payload":{"a":1}})
        );
    }

    #[test]
    fn every_kind_name_round_trips() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let cases = [
            (json!([1]), "expected a JSON object"),
            (json!({"role":"user"}), "missing \"kind\""),
            (json!({"kind":"bogus"}), "unknown event kind"),
            (
                json!({"kind":"forked","from_conversation":"x","from_event":"y"}),
                "recorded by exo itself",
            ),
            (
                json!({"kind":"message","role":"user","content":"hi","extra":1}),
                "unknown field",
            ),
            (
                json!({"kind":"message","role":"robot","content":"hi"}),
                "unknown variant",
            ),
            (
                json!({"kind":"message","role":"user","content":5}),
                "content must be",
            ),
            (
                json!({"kind":"custom","type":"nonamespace","payload":{}}),
                "namespaced",
            ),
            (
                json!({"kind":"custom","type":"Bad.Type","payload":{}}),
                "namespaced",
            ),
            (
                json!({"kind":"tool_call","call_id":"","name":"shell"}),
                "call_id must not be empty",
            ),
            (
                json!({"kind":"message","role":"user","content":[
                    {"type":"text","text":"look"},
                    {"type":"image","media_type":"image/png","data":"not base64!"}
                ]}),
                "content part 2: image data is not standard base64",
            ),
            (
                json!({"kind":"message","role":"user","content":[
                    {"type":"image","media_type":"image/png","data":"aGk"}
                ]}),
                "content part 1: image data is not standard base64",
            ),
            (
                json!({"kind":"message","role":"user","content":[
                    {"type":"image","media_type":"image/png","data":""}
                ]}),
                "image data must not be empty",
            ),
            (
                json!({"kind":"message","role":"user","content":[
                    {"type":"image","media_type":"text/html","data":"aGk="}
                ]}),
                "is not an image type",
            ),
            (
                json!({"kind":"message","role":"user","content":[
                    {"type":"image","media_type":"image/png;base64,x","data":"aGk="}
                ]}),
                "is not an image type",
            ),
        ];
        for (input, expected) in cases {
            let err = EventData::from_input_json(input.clone()).unwrap_err();
            assert!(err.0.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn images_with_an_image_type_and_base64_are_accepted() {
        for media_type in [
            "image/png",
            "image/jpeg",
            "image/svg+xml",
            "image/vnd.ms-photo",
        ] {
            let input = json!({"kind":"message","role":"user","content":[
                {"type":"image","media_type":media_type,"data":"aGk="}
            ]});
            EventData::from_input_json(input).unwrap();
        }
    }

    #[test]
    fn envelope_fields_are_ignored_on_input() {
        let data = EventData::from_input_json(json!({
            "id": "whatever", "created_at": "then", "conversation": null, "session": null, "turn": null,
            "kind": "error", "message": "boom"
        }))
        .unwrap();
        assert_eq!(
            data,
            EventData::Error {
                message: "boom".into(),
                code: None
            }
        );
    }

    #[test]
    fn turn_status_names() {
        assert_eq!(
            "max_rounds".parse::<TurnStatus>().unwrap(),
            TurnStatus::MaxRounds
        );
        assert_eq!(TurnStatus::Interrupted.to_string(), "interrupted");
        assert!("done".parse::<TurnStatus>().is_err());
    }
}
