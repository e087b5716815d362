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
//!
//! # Reading is tolerant, input is strict
//!
//! A log outlives the exo that wrote it: a newer exo, or an executor, may
//! record kinds this one does not know, or known kinds with fields it does
//! not know. Such an event is read into [`EventData::Other`], which keeps
//! the stored object exactly (every field, in its stored order) and writes
//! it back the same, so nothing stored is lost when it is read and shown.
//! The rule: an event is one of the kinds below only when it decodes as that
//! kind exactly as this exo writes it (no unknown field, every field of the
//! right type); anything else with a string `kind` is [`RawEvent`]. That is
//! what [`EventData`]'s `Deserialize` does and what the store reads with
//! [`EventData::from_json`].
//!
//! Caller input stays strict: [`EventData::from_input_json`] refuses unknown
//! kinds and unknown fields, so raw events are never written, only read.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// A kind this exo does not know, or a known kind in a shape it cannot
    /// read ([`EventData::Other`]); [`EventData::kind_name`] has its name.
    /// Not in [`EventKind::ALL`]: it names no kind of its own.
    Other,
}

impl EventKind {
    /// Every kind this exo knows, in a fixed order.
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
            EventKind::Other => "other",
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
/// JSON shape, and for what is read into [`EventData::Other`].
///
/// `Serialize` and `Deserialize` are implemented by hand around serde's
/// derived code (`remote = "Self"` turns it into the inherent functions
/// `EventData::serialize` and `EventData::deserialize`, which know only
/// the kinds below and refuse unknown fields): the trait implementations
/// add [`EventData::Other`].
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schemars",
    schemars(rename = "EventData", transform = other_kinds_schema)
)]
#[serde(
    remote = "Self",
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields
)]
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
    /// An event this exo cannot read as one of the kinds above: a kind it
    /// does not know (`codex.item`, a newer exo's), or a known kind with
    /// fields it does not know or cannot read. Kept exactly as stored and
    /// written back the same; never accepted as input.
    #[serde(skip)]
    Other(RawEvent),
}

/// The envelope's field names, which an event's own fields never use (they
/// sit beside them in the event's JSON).
pub const ENVELOPE_FIELDS: [&str; 5] = ["id", "conversation", "session", "turn", "created_at"];

/// An event of a kind, or in a shape, this exo does not know: the stored
/// JSON object, `kind` included, with its fields in their stored order.
/// It serializes back to exactly that object.
#[derive(Clone, PartialEq, Debug)]
pub struct RawEvent(Map<String, Value>);

impl RawEvent {
    /// Wraps an event's object. It must have a string `kind` and no field
    /// named like an envelope field ([`ENVELOPE_FIELDS`]).
    pub fn new(fields: Map<String, Value>) -> Result<Self, ValidationError> {
        match fields.get("kind") {
            Some(Value::String(_)) => {}
            Some(_) => return Err(ValidationError::new("\"kind\" must be a string")),
            None => return Err(ValidationError::new("missing \"kind\"")),
        }
        if let Some(name) = ENVELOPE_FIELDS
            .iter()
            .find(|name| fields.contains_key(**name))
        {
            return Err(ValidationError::new(format!(
                "field {name:?} belongs to the envelope, not to the event's kind"
            )));
        }
        Ok(RawEvent(fields))
    }

    /// The event's kind, as stored.
    pub fn kind(&self) -> &str {
        match self.0.get("kind") {
            Some(Value::String(kind)) => kind,
            _ => unreachable!("RawEvent::new checks that kind is a string"),
        }
    }

    /// The event's fields, `kind` included, in their stored order.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The event's fields, `kind` included.
    pub fn into_fields(self) -> Map<String, Value> {
        self.0
    }
}

impl Serialize for RawEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawEvent::new(Map::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for EventData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EventData::Other(raw) => raw.serialize(serializer),
            // The derived code, for the kinds this exo knows.
            known => EventData::serialize(known, serializer),
        }
    }
}

impl<'de> Deserialize<'de> for EventData {
    /// Tolerant: what is not one of today's kinds exactly is
    /// [`EventData::Other`] (see the module docs). Only input that is not
    /// an object with a string `kind` fails.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::Object(Map::deserialize(deserializer)?);
        // The derived code: the kinds this exo knows, strictly.
        if let Ok(known) = EventData::deserialize(&value) {
            return Ok(known);
        }
        let Value::Object(fields) = value else {
            unreachable!("built as an object above")
        };
        RawEvent::new(fields)
            .map(EventData::Other)
            .map_err(serde::de::Error::custom)
    }
}

/// Today's kinds, strictly: the derived code behind a type that
/// `exo_core::json::from_slice` can read.
struct Known(EventData);

impl<'de> Deserialize<'de> for Known {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EventData::deserialize(deserializer).map(Known)
    }
}

/// The JSON Schema of an event's data: today's kinds, or any other kind
/// (which a reader must accept and keep, see the module docs).
#[cfg(feature = "schemars")]
fn other_kinds_schema(schema: &mut schemars::Schema) {
    let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    let other = serde_json::json!({
        "type": "object",
        "description": "An event of a kind this exo does not know (an executor's `codex.*`, a newer exo's `exo.*`), kept and shown exactly as it was stored; readers must accept it, and may ignore it. A known kind with fields this exo does not know is kept the same way.",
        "properties": {
            "kind": {"type": "string", "not": {"enum": known}}
        },
        "required": ["kind"]
    });
    if let Some(Value::Array(variants)) = schema.get_mut("oneOf") {
        variants.push(other);
    }
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
            EventData::Other(_) => EventKind::Other,
        }
    }

    /// The kind's name as written in JSON: [`EventKind::as_str`], or the
    /// stored name of an [`EventData::Other`].
    pub fn kind_name(&self) -> &str {
        match self {
            EventData::Other(raw) => raw.kind(),
            known => known.kind().as_str(),
        }
    }

    /// Reads an event's JSON (the store's encoding, `kind` and its fields)
    /// tolerantly, like `Deserialize`: what is not one of today's kinds
    /// exactly is [`EventData::Other`]. Fails only on text that is not an
    /// object with a string `kind`, or nests deeper than
    /// [`crate::json::MAX_DEPTH`].
    pub fn from_json(text: &str) -> Result<Self, crate::json::JsonError> {
        // Every event this exo wrote decodes on the first try, from the
        // text; only the others are parsed twice.
        match crate::json::from_str::<Known>(text) {
            Ok(Known(known)) => Ok(known),
            Err(crate::json::JsonError::TooDeep) => Err(crate::json::JsonError::TooDeep),
            Err(_) => {
                let fields: Map<String, Value> = crate::json::from_str(text)?;
                RawEvent::new(fields)
                    .map(EventData::Other)
                    .map_err(|err| crate::json::JsonError::Json(serde::de::Error::custom(err)))
            }
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
                "nested deeper than {MAX_INPUT_NESTING} levels (the event's own object counts as one)"
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
        // The derived code: today's kinds, unknown fields refused.
        let data = EventData::deserialize(serde_json::Value::Object(object))
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
        // `Other` names no kind: nothing parses to it.
        assert!(!EventKind::ALL.contains(&EventKind::Other));
        assert!("other".parse::<EventKind>().is_err());
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

    /// Bodies as a newer exo or an executor might have stored them: each
    /// is read into `Other` and written back byte for byte.
    const FOREIGN_BODIES: [&str; 6] = [
        // A kind this exo does not know.
        r#"{"kind":"codex.item","item":{"id":"item_1","type":"reasoning","summary":["z","a"]}}"#,
        // `kind` not first, and fields out of alphabetical order.
        r#"{"zeta":1,"kind":"harness.ts.note","alpha":[true,null,2.5],"mid":{"b":1,"a":2}}"#,
        // A known kind with a field this exo does not know.
        r#"{"kind":"message","role":"user","content":[{"type":"text","text":"hi"}],"phase":"final"}"#,
        // A known kind whose field has a type this exo cannot read.
        r#"{"kind":"turn_ended","status":{"code":"paused","until":"later"}}"#,
        // A known kind with a content part this exo does not know.
        r#"{"kind":"message","role":"assistant","content":[{"type":"audio","data":"aGk="}]}"#,
        // A bare kind.
        r#"{"kind":"sandbox.started"}"#,
    ];

    #[test]
    fn foreign_events_are_read_raw_and_written_back_exactly() {
        for body in FOREIGN_BODIES {
            let data = EventData::from_json(body).unwrap();
            let EventData::Other(raw) = &data else {
                panic!("{body} read as {data:?}");
            };
            assert_eq!(data.kind(), EventKind::Other);
            let stored: Map<String, Value> = serde_json::from_str(body).unwrap();
            assert_eq!(data.kind_name(), stored["kind"].as_str().unwrap());
            assert_eq!(raw.kind(), data.kind_name());
            assert_eq!(serde_json::to_string(&data).unwrap(), body);
            // The trait reads the same way (the wire, a client's decoding).
            let through_serde: EventData = serde_json::from_str(body).unwrap();
            assert_eq!(through_serde, data);
            assert_eq!(serde_json::to_string(&through_serde).unwrap(), body);
            // The field order survives a trip through a `Value` too.
            let value = serde_json::to_value(&data).unwrap();
            assert_eq!(serde_json::to_string(&value).unwrap(), body);
        }
    }

    #[test]
    fn events_this_exo_writes_are_read_as_their_kinds_and_written_back_exactly() {
        let agent = AgentId::new();
        let known = [
            EventData::ConversationCreated {
                agent,
                name: "n".into(),
                slug: "n".into(),
                workspace: Some("/w".into()),
            },
            EventData::TurnStarted {},
            EventData::TurnEnded {
                status: TurnStatus::MaxRounds,
            },
            EventData::user_text("hi"),
            EventData::ToolCall {
                call_id: "c".into(),
                name: "shell".into(),
                arguments: json!({"command": "ls", "a": [1, 2]}),
            },
            EventData::ToolResult {
                call_id: "c".into(),
                output: json!("ok"),
                is_error: false,
            },
            EventData::Custom {
                custom_type: "exo.compaction".into(),
                payload: json!({"summary": "s", "a": 1}),
            },
        ];
        for data in known {
            let body = serde_json::to_string(&data).unwrap();
            let read = EventData::from_json(&body).unwrap();
            assert_eq!(read, data, "{body}");
            assert_eq!(read.kind_name(), data.kind().as_str());
            assert_eq!(serde_json::to_string(&read).unwrap(), body);
            let through_serde: EventData = serde_json::from_str(&body).unwrap();
            assert_eq!(through_serde, data);
        }
    }

    #[test]
    fn what_is_not_an_event_at_all_is_refused() {
        for (body, expected) in [
            ("[1]", "invalid type"),
            ("\"message\"", "invalid type"),
            (r#"{"role":"user"}"#, "missing \"kind\""),
            (r#"{"kind":7}"#, "\"kind\" must be a string"),
            (
                r#"{"kind":"codex.item","id":"x"}"#,
                "field \"id\" belongs to the envelope",
            ),
            ("{\"kind\":", "EOF"),
        ] {
            let err = EventData::from_json(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
            let err = serde_json::from_str::<EventData>(body)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn raw_events_are_never_input() {
        for (input, expected) in [
            (
                json!({"kind":"codex.item","item":{"id":"x"}}),
                "unknown event kind \"codex.item\"",
            ),
            (
                json!({"kind":"message","role":"user","content":"hi","phase":"final"}),
                "unknown field `phase`",
            ),
            (
                json!({"kind":"message","role":"user","content":[{"type":"audio","data":"aGk="}]}),
                "unknown variant `audio`",
            ),
        ] {
            let err = EventData::from_input_json(input.clone()).unwrap_err();
            assert!(err.0.contains(expected), "{input}: {err}");
        }
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
