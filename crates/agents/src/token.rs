//! A model-gateway token held for one turn of an agent CLI.

use std::sync::Arc;

use exo_executor::host::blocking;
use exo_executor::{GatewayAccess, Substrate, SubstrateError};

/// A gateway token, revoked (and the history the gateway expects
/// forgotten, when this turn set it) when closed or dropped.
pub(crate) struct Token {
    substrate: Arc<dyn Substrate>,
    pub access: GatewayAccess,
    conversation: exo_core::ConversationId,
    closed: bool,
    /// Whether this turn began and set the history the gateway checks: a
    /// token of a turn that never began must not clear another's.
    pub expecting: bool,
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
            expecting: false,
        }
    }

    /// Revokes the token once the exchanges made with it are recorded (so
    /// they fall in the turn, checked against the history).
    pub async fn close(mut self) -> Result<(), SubstrateError> {
        self.closed = true;
        let (token, conversation, expecting) =
            (self.access.token.clone(), self.conversation, self.expecting);
        blocking(&self.substrate, move |s| {
            s.gateway_revoke(&token);
            if expecting {
                s.gateway_expect(conversation, None);
            }
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
        let (substrate, token, conversation, expecting) = (
            Arc::clone(&self.substrate),
            self.access.token.clone(),
            self.conversation,
            self.expecting,
        );
        let revoke = move || {
            substrate.gateway_revoke(&token);
            if expecting {
                substrate.gateway_expect(conversation, None);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(revoke)),
            Err(_) => revoke(),
        }
    }
}
