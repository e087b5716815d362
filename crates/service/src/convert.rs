//! Store types to wire types, and store errors to JSON-RPC errors: the one
//! place where the substrate meets the protocol.

use exo_protocol::types::rfc3339;
use exo_protocol::{
    Agent, Artifact, BindingEntry, Conversation, ErrorCode, ErrorData, ForkedFrom, Secret, Turn,
};
use exo_rpc::ErrorObject;

pub fn agent(agent: &exo_store::Agent) -> Agent {
    Agent {
        id: agent.id,
        slug: agent.slug.clone(),
        name: agent.name.clone(),
        config: agent.config.clone(),
        created_at: rfc3339(agent.created_at),
    }
}

pub fn conversation(conversation: &exo_store::Conversation) -> Conversation {
    Conversation {
        id: conversation.id,
        agent: conversation.agent,
        slug: conversation.slug.clone(),
        name: conversation.name.clone(),
        head: conversation.head,
        length: conversation.length(),
        forked_from: conversation
            .forked_from
            .map(|(conversation, event)| ForkedFrom {
                conversation,
                event,
            }),
        workspace: conversation.workspace.clone(),
        open_session: conversation.open_session,
        open_turn: conversation.open_turn,
        created_at: rfc3339(conversation.created_at),
    }
}

pub fn events(events: &[exo_core::Event]) -> Vec<exo_protocol::Event> {
    events.iter().map(exo_protocol::Event::from).collect()
}

pub fn secret(info: &exo_store::SecretInfo) -> Secret {
    Secret {
        name: info.name.clone(),
        scope: info.scope.key(),
        kind: info.kind,
        created_at: rfc3339(info.created_at),
    }
}

pub fn binding(entry: &exo_store::BindingEntry) -> BindingEntry {
    BindingEntry {
        binding: entry.binding.clone(),
        scope: entry.scope.key(),
        created_at: rfc3339(entry.created_at),
    }
}

pub fn artifact(artifact: &exo_store::ArtifactVersion) -> Artifact {
    Artifact {
        path: artifact.path.clone(),
        version: artifact.version,
        sha256: artifact.sha256.clone(),
        size: artifact.size,
        media_type: artifact.media_type.clone(),
        event: artifact.event,
        created_at: rfc3339(artifact.created_at),
    }
}

pub fn turn(turn: &exo_store::TurnInfo) -> Turn {
    Turn {
        id: turn.id,
        conversation: turn.conversation,
        session: turn.session,
        status: turn.status,
        started_at: rfc3339(turn.started_at),
        ended_at: turn.ended_at.map(rfc3339),
    }
}

/// A JSON-RPC error with exo's `data`.
pub fn rpc_error(code: ErrorCode, message: impl Into<String>, data: ErrorData) -> ErrorObject {
    let data = ErrorData {
        code: code.name().to_string(),
        ..data
    };
    ErrorObject::new(code.code(), message).with_data(serde_json::to_value(data).unwrap_or_default())
}

/// A JSON-RPC error with only `data.code`.
pub fn simple_error(code: ErrorCode, message: impl Into<String>) -> ErrorObject {
    rpc_error(code, message, ErrorData::default())
}

/// Maps a store error to its JSON-RPC error. The message is the store's own
/// one line, so the CLI prints the same words embedded or through a daemon.
pub fn store_error(err: exo_store::Error) -> ErrorObject {
    use exo_store::Error;
    let message = err.to_string();
    match err {
        Error::NotFound { what, key } => rpc_error(
            ErrorCode::NotFound,
            message,
            ErrorData {
                what: Some(what.to_string()),
                key: Some(key),
                ..ErrorData::default()
            },
        ),
        Error::AlreadyExists { what, key } => rpc_error(
            ErrorCode::AlreadyExists,
            message,
            ErrorData {
                what: Some(what.to_string()),
                key: Some(key),
                ..ErrorData::default()
            },
        ),
        Error::HeadConflict { expected, actual } => rpc_error(
            ErrorCode::Conflict,
            message,
            ErrorData {
                expected_head: Some(expected.to_string()),
                actual_head: Some(actual.to_string()),
                ..ErrorData::default()
            },
        ),
        Error::Busy(_) => simple_error(ErrorCode::Busy, message),
        Error::Invalid(_) => simple_error(ErrorCode::InvalidParams, message),
        Error::WrongKey => simple_error(ErrorCode::WrongKey, message),
        // Logged by `Service::dispatch`, where it is known whether anyone
        // but the caller reads the log.
        _ => simple_error(ErrorCode::Internal, message),
    }
}
