//! The watch hub: one broadcast channel per watched conversation, fed by
//! the store's commit listener in commit order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use exo_core::{ConversationId, Event};
use tokio::sync::broadcast;

/// How many commits a watcher may fall behind before it is told it lagged.
pub const WATCH_BUFFER: usize = 1024;

/// A batch of events of one conversation, as committed.
pub type Batch = Arc<Vec<Event>>;

/// The per-conversation channels.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<ConversationId, broadcast::Sender<Batch>>>,
}

impl Hub {
    /// Subscribes to a conversation's future commits.
    pub fn subscribe(&self, conversation: ConversationId) -> broadcast::Receiver<Batch> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(conversation)
            .or_insert_with(|| broadcast::channel(WATCH_BUFFER).0)
            .subscribe()
    }

    /// Publishes committed events. Called by the store's commit listener,
    /// under the store's lock: it must not block.
    pub fn publish(&self, events: &[Event]) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let mut start = 0;
        while start < events.len() {
            let conversation = events[start].conversation;
            let end = events[start..]
                .iter()
                .position(|event| event.conversation != conversation)
                .map_or(events.len(), |offset| start + offset);
            if let Some(sender) = channels.get(&conversation) {
                if sender.send(Arc::new(events[start..end].to_vec())).is_err() {
                    // No receivers left: forget the channel.
                    channels.remove(&conversation);
                }
            }
            start = end;
        }
    }
}
