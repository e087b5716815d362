//! Store types to protocol types: the one place where the substrate meets
//! the protocol.

use exo_protocol::methods::{ConversationTree, TreeBranch, TreeConversation, TreeFork, TreeStep};
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

/// A conversation's tree; its indexes fit `u32`, as a store holds far
/// fewer branches.
pub fn tree(tree: &exo_store::Tree) -> ConversationTree {
    let index = |index: usize| u32::try_from(index).unwrap_or(u32::MAX);
    ConversationTree {
        conversation: conversation(&tree.conversation),
        agent: tree.agent.clone(),
        branches: tree
            .lines
            .iter()
            .map(|line| TreeBranch {
                current: line.current,
                head: line.head,
                from: line.from,
                parent: line.parent.map(index),
                steps: line.steps.iter().map(tree_step).collect(),
            })
            .collect(),
        forks: tree
            .forks
            .iter()
            .map(|fork| TreeFork {
                conversation: tree_conversation(&fork.conversation),
                at: fork.at,
                branch: index(fork.line),
            })
            .collect(),
    }
}

fn tree_step(step: &exo_store::Step) -> TreeStep {
    let (first, last, events) = (step.first, step.last, step.events);
    match &step.kind {
        exo_store::StepKind::ConversationCreated => TreeStep::ConversationCreated {
            first,
            last,
            events,
        },
        exo_store::StepKind::Forked { from, from_event } => TreeStep::Forked {
            first,
            last,
            events,
            source: tree_conversation(from),
            from_event: *from_event,
        },
        exo_store::StepKind::Rewound {
            from_event,
            to_event,
        } => TreeStep::Rewound {
            first,
            last,
            events,
            from_event: *from_event,
            to_event: *to_event,
        },
        exo_store::StepKind::Turn {
            turn,
            prompt,
            status,
            tool_calls,
        } => TreeStep::Turn {
            first,
            last,
            events,
            turn: *turn,
            prompt: prompt.clone(),
            status: *status,
            tool_calls: *tool_calls,
        },
        exo_store::StepKind::Events { kinds, text } => TreeStep::Events {
            first,
            last,
            events,
            kinds: kinds.clone(),
            text: text.clone(),
        },
    }
}

fn tree_conversation(info: &exo_store::ConversationInfo) -> TreeConversation {
    TreeConversation {
        id: info.id,
        agent: info.agent.clone(),
        slug: info.slug.clone(),
        name: info.name.clone(),
        deleted: info.deleted,
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
