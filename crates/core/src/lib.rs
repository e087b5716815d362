//! exo's domain: identities, slugs, events and their kinds, turns, scopes,
//! bindings and secret values.
//!
//! This crate does no I/O. The serde shape of [`EventData`] is the event's
//! public JSON shape (`{"kind": "message", "role": "user", ...}`): the CLI
//! prints it, `exo conversation append` reads it, and the store keeps it.
//! It is pinned by tests, so change it only together with `spec/exoharness.md`.
//! Reading it is tolerant (kinds and fields this exo does not know become
//! [`EventData::Other`], kept exactly); input is strict
//! ([`EventData::from_input_json`]).

mod agent;
mod binding;
mod event;
mod ids;
pub mod json;
mod slug;

pub use agent::{AgentConfig, ApprovalDecision, Harness, SandboxMode};
pub use binding::{
    ApprovalPolicy, Binding, BindingKind, Provider, Scope, SecretKind, SecretValue,
    MAX_CONTEXT_WINDOW,
};
pub use event::{
    ContentPart, Event, EventData, EventKind, PathConflict, RawEvent, Role, SessionEndReason,
    SkippedFile, SnapshotReason, Timestamp, TurnStatus, Usage, COMPACTION_TYPE, ENVELOPE_FIELDS,
    MAX_INPUT_NESTING,
};
pub use ids::{AgentId, ConversationId, EventId, IdParseError, SecretId, SessionId, TurnId};
pub use slug::{slugify, validate_slug, SlugError};

/// A value failed a domain rule; the message says which, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ValidationError(message.into())
    }
}

/// Checks a name for secrets, models and bindings: 1 to 64 characters from
/// `A-Z a-z 0-9 _ . -`, starting with a letter or digit.
pub fn validate_name(what: &str, name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(format!(
            "invalid {what} name {name:?}: use 1-64 characters from A-Z a-z 0-9 _ . - starting with a letter or digit"
        )))
    }
}
