//! The store's error type. Every message is one line and never contains a
//! secret value.

use std::path::PathBuf;

/// A store operation failed; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An agent, conversation, event, artifact, secret or binding is unknown.
    #[error("{what} {key:?} not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// The slug, id or name looked up.
        key: String,
    },
    /// A slug or name is already taken in its scope.
    #[error("{what} {key:?} already exists")]
    AlreadyExists {
        /// What kind of thing.
        what: &'static str,
        /// The slug or name.
        key: String,
    },
    /// Another writer moved the conversation's head.
    #[error("conflict: expected head {expected} but the head is {actual}")]
    HeadConflict {
        /// The head the caller expected.
        expected: exo_core::EventId,
        /// The actual head.
        actual: exo_core::EventId,
    },
    /// The operation cannot run now (a turn is in progress, another process
    /// holds the conversation).
    #[error("{0}")]
    Busy(String),
    /// The input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The master key does not open this store's secrets.
    #[error("cannot decrypt secrets: wrong key?")]
    WrongKey,
    /// There is no store at the root.
    #[error("no exo store at {0}")]
    NoStore(PathBuf),
    /// The file is not an exo store.
    #[error("{0} is not an exo store")]
    NotAStore(PathBuf),
    /// The database file is empty: most likely a store truncated by
    /// accident, so it is neither opened nor initialised.
    #[error("{0} is empty: not an exo store (left untouched)")]
    EmptyStore(PathBuf),
    /// The store was written by a newer exo.
    #[error("store {path} has schema version {found} but this exo supports up to {supported}; upgrade exo to open it")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// SQLite failed. (The message already says why, so the SQLite error
    /// is not also given as a source: a chain printed as `a: b: c` would
    /// say it twice.)
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A file operation failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause (in the message, so not a source either).
        cause: std::io::Error,
    },
    /// The store holds something this build cannot decode.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// Key handling failed.
    #[error(transparent)]
    Secrets(exo_secrets::Error),
}

impl Error {
    /// A stable, machine-readable code for the error's kind, used by the
    /// JSON-RPC layer and `--json` error output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::HeadConflict { .. } => "conflict",
            Error::Busy(_) => "busy",
            Error::Invalid(_) => "invalid",
            Error::WrongKey => "wrong_key",
            Error::NoStore(_) => "no_store",
            Error::NotAStore(_) | Error::EmptyStore(_) => "not_a_store",
            Error::NewerSchema { .. } => "newer_schema",
            Error::Sqlite(_) | Error::Io { .. } | Error::Corrupt(_) => "internal",
            Error::Secrets(_) => "secrets",
        }
    }

    pub(crate) fn not_found(what: &'static str, key: impl ToString) -> Self {
        Error::NotFound {
            what,
            key: key.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, cause: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Sqlite(err)
    }
}

impl From<exo_core::ValidationError> for Error {
    fn from(err: exo_core::ValidationError) -> Self {
        Error::Invalid(err.0)
    }
}

impl From<exo_core::SlugError> for Error {
    fn from(err: exo_core::SlugError) -> Self {
        Error::Invalid(err.to_string())
    }
}

impl From<exo_secrets::Error> for Error {
    fn from(err: exo_secrets::Error) -> Self {
        match err {
            exo_secrets::Error::Decrypt => Error::WrongKey,
            other => Error::Secrets(other),
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
