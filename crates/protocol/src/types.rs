//! The entities as they travel: ids as UUID strings, times as RFC 3339 UTC
//! strings with microseconds, bytes as base64.

use exo_core::{
    AgentId, Binding, ConversationId, EventData, EventId, SecretKind, SessionId, Timestamp, TurnId,
    TurnStatus,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-21T07:44:12.123456Z`.
pub fn rfc3339(timestamp: Timestamp) -> String {
    let nanos = i128::from(timestamp.as_micros()) * 1000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(at) => {
            let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
            let (hour, minute, second) = (at.hour(), at.minute(), at.second());
            let micro = at.microsecond();
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micro:06}Z")
        }
        Err(_) => timestamp.as_micros().to_string(),
    }
}

/// An agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its slug, unique among live agents.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Its configuration: `model`, `instructions`, ...
    pub config: Map<String, Value>,
    /// When it was created.
    pub created_at: String,
}

/// Where a fork came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ForkedFrom {
    /// The source conversation.
    pub conversation: ConversationId,
    /// The event forked at.
    pub event: EventId,
}

/// A conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// The agent that owns it.
    pub agent: AgentId,
    /// Its slug, unique among the agent's live conversations.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// The newest event of its history.
    pub head: EventId,
    /// How many events its history holds.
    pub length: u64,
    /// For a fork: where it came from.
    pub forked_from: Option<ForkedFrom>,
    /// The workspace directory it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// The open session, if any.
    pub open_session: Option<SessionId>,
    /// The open turn, if any.
    pub open_turn: Option<TurnId>,
    /// When it was created.
    pub created_at: String,
}

/// An event: the envelope, then `kind` and the kind's own fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Its id, the same in every history that contains it.
    pub id: EventId,
    /// The conversation that recorded it.
    pub conversation: ConversationId,
    /// Its session, if any.
    pub session: Option<SessionId>,
    /// Its turn, if any.
    pub turn: Option<TurnId>,
    /// When it was recorded.
    pub created_at: String,
    /// `kind` and the kind's fields.
    #[serde(flatten)]
    pub data: EventData,
}

impl From<&exo_core::Event> for Event {
    fn from(event: &exo_core::Event) -> Self {
        Event {
            id: event.id,
            conversation: event.conversation,
            session: event.session,
            turn: event.turn,
            created_at: rfc3339(event.created_at),
            data: event.data.clone(),
        }
    }
}

/// A secret, never with its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Secret {
    /// Its name.
    pub name: String,
    /// `root`, `agent:<id>` or `conversation:<id>`.
    pub scope: String,
    /// `api_key` or `oauth`.
    pub kind: SecretKind,
    /// When this value was set.
    pub created_at: String,
}

/// A binding (model, env or MCP) and where it lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BindingEntry {
    /// The binding: `type` and its fields.
    #[serde(flatten)]
    pub binding: Binding,
    /// `root`, `agent:<id>` or `conversation:<id>`.
    pub scope: String,
    /// When it was set.
    pub created_at: String,
}

/// One version of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Artifact {
    /// Its path.
    pub path: String,
    /// Its version, from 1.
    pub version: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type, if given.
    pub media_type: Option<String>,
    /// The `artifact_written` event.
    pub event: EventId,
    /// When it was written.
    pub created_at: String,
}

/// A turn's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Turn {
    /// Its id.
    pub id: TurnId,
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its session.
    pub session: SessionId,
    /// How it ended; null while open.
    pub status: Option<TurnStatus>,
    /// When it began.
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
}

/// Names a scope: root when both are absent, an agent, or a conversation
/// (which needs its agent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScopeParams {
    /// Agent scope (slug or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Conversation scope (slug or id); needs `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
}

/// An agent and one of its conversations, each by slug or id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationRef {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
}
