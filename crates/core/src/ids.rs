//! Identifiers. Every id is a UUIDv7, so ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A string that is not a UUID was given where an id was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid id (expected a UUID)")]
pub struct IdParseError(pub String);

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh UUIDv7 id.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                $name(uuid)
            }

            /// The id as a UUID.
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID, as the store keeps them.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Rebuilds an id from 16 bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(Uuid::from_bytes(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s.trim())
                    .map($name)
                    .map_err(|_| IdParseError(s.to_string()))
            }
        }
    };
}

define_id!(
    /// Identifies an agent.
    AgentId
);
define_id!(
    /// Identifies a conversation.
    ConversationId
);
define_id!(
    /// Identifies a session: one executor's attachment to a conversation.
    SessionId
);
define_id!(
    /// Identifies a turn: one user input and everything done in answer to it.
    TurnId
);
define_id!(
    /// Identifies an event. Stable across forks: a forked history shows the
    /// same event under the same id.
    EventId
);
define_id!(
    /// Identifies one sealed secret value.
    SecretId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = EventId::new();
        let b = EventId::new();
        assert!(a < b, "UUIDv7 ids sort by creation");
        assert_eq!(a.to_string().parse::<EventId>().unwrap(), a);
        assert_eq!(EventId::from_bytes(*a.as_bytes()), a);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!("sandbox-example".parse::<AgentId>().is_err());
    }
}
