//! A model-gateway token held for one turn of an agent CLI.

use std::sync::Arc;

use exo_executor::host::blocking;
use exo_executor::{GatewayAccess, Substrate, SubstrateError};

/// A gateway token, revoked (and the history the gateway expects
/// forgotten) when closed or dropped.
pub(crate) struct Token {
    substrate: Arc<dyn Substrate>,
    pub access: GatewayAccess,
    conversation: exo_core::ConversationId,
    closed: bool,
}

impl Token {
    pub fn new(
        substrate: Arc<dyn Substrate>,
        access: GatewayAccess,
        conversation: exo_core::ConversationId,
    ) -> Token {
        Token {
            substrate,
            access,
            conversation,
            closed: false,
        }
    }

    /// Revokes the token once the exchanges made with it are recorded (so
    /// they fall in the turn, checked against the history).
    pub async fn close(mut self) -> Result<(), SubstrateError> {
        self.closed = true;
        let (token, conversation) = (self.access.token.clone(), self.conversation);
        blocking(&self.substrate, move |s| {
            s.gateway_revoke(&token);
            s.gateway_expect(conversation, None);
            Ok(())
        })
        .await
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Off the async threads: revoking waits for exchanges in flight.
        let (substrate, token, conversation) = (
            Arc::clone(&self.substrate),
            self.access.token.clone(),
            self.conversation,
        );
        let revoke = move || {
            substrate.gateway_revoke(&token);
            substrate.gateway_expect(conversation, None);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(revoke)),
            Err(_) => revoke(),
        }
    }
}
