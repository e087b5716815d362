//! The watch hub: one broadcast channel per watched conversation, fed by
//! the store's commit listener in commit order, and by running turns with
//! their streamed text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use exo_core::{ConversationId, Event};
use exo_protocol::methods::{ApprovalRequest, TurnDelta};
use tokio::sync::broadcast;

/// How many messages a watcher may fall behind before it is told it lagged.
pub const WATCH_BUFFER: usize = 1024;

/// What a watcher receives.
#[derive(Clone, Debug)]
pub enum Published {
    /// A batch of events of one conversation, as committed.
    Events(Arc<Vec<Event>>),
    /// A piece of a running turn's answer (not an event: never replayed).
    Delta(Arc<TurnDelta>),
    /// A running turn asks whether a call may run (never replayed).
    Approval(Arc<ApprovalRequest>),
}

/// The per-conversation channels.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<ConversationId, broadcast::Sender<Published>>>,
}

impl Hub {
    /// Subscribes to a conversation's future commits and deltas.
    pub fn subscribe(&self, conversation: ConversationId) -> broadcast::Receiver<Published> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(conversation)
            .or_insert_with(|| broadcast::channel(WATCH_BUFFER).0)
            .subscribe()
    }

    /// Publishes committed events. Called by the store's commit listener,
    /// under the store's lock: it must not block.
    pub fn publish(&self, mut events: Vec<Event>) {
        // Usually one conversation: the batch moves into the message whole.
        while let Some(first) = events.first() {
            let conversation = first.conversation;
            let end = events
                .iter()
                .position(|event| event.conversation != conversation)
                .unwrap_or(events.len());
            let rest = events.split_off(end);
            self.send(conversation, Published::Events(Arc::new(events)));
            events = rest;
        }
    }

    /// Whether anyone watches `conversation`.
    pub fn watched(&self, conversation: ConversationId) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .get(&conversation)
            .is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// Publishes a running turn's delta to the conversation's watchers.
    pub fn publish_delta(&self, conversation: ConversationId, delta: TurnDelta) {
        self.send(conversation, Published::Delta(Arc::new(delta)));
    }

    /// Publishes a running turn's approval question to the conversation's
    /// watchers.
    pub fn publish_approval(&self, conversation: ConversationId, request: ApprovalRequest) {
        self.send(conversation, Published::Approval(Arc::new(request)));
    }

    fn send(&self, conversation: ConversationId, message: Published) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(&conversation) {
            if sender.send(message).is_err() {
                // No receivers left: forget the channel.
                channels.remove(&conversation);
            }
        }
    }
}

impl exo_store::CommitListener for Hub {
    fn wants(&self, conversation: ConversationId) -> bool {
        self.watched(conversation)
    }

    fn committed(&self, events: Vec<Event>) {
        self.publish(events);
    }
}
