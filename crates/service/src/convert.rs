//! Store types to protocol types: the one place where the substrate meets
//! the protocol.

use exo_protocol::types::rfc3339;
use exo_protocol::{
    Agent, Artifact, BindingEntry, Conversation, ErrorCode, ErrorData, ForkedFrom, Secret, Turn,
};

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

/// An error with detail.
pub fn rpc_error(
    code: ErrorCode,
    message: impl Into<String>,
    data: ErrorData,
) -> crate::ServiceError {
    crate::ServiceError::with_data(code, message, data)
}

/// An error with only a kind and a message.
pub fn simple_error(code: ErrorCode, message: impl Into<String>) -> crate::ServiceError {
    crate::ServiceError::new(code, message)
}

/// A store error, its message kept.
pub fn store_error(err: exo_store::Error) -> crate::ServiceError {
    err.into()
}
