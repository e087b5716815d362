//! Why a call failed: [`ServiceError`], the one error of the typed service.
//!
//! It carries the kind of failure ([`ErrorCode`]: not found, conflict,
//! busy, ...), one line for a person, and machine-readable detail
//! ([`ErrorData`]). Faces map it onto their own wire: the JSON-RPC face to
//! a code number and `data` (exo-daemon's `face.rs`, the one place that
//! knows the numbers), the command line to `exo: <message>` and an exit
//! status. Messages never carry command-line wording: hints such as which
//! command to run belong to the command line.

use exo_protocol::{ErrorCode, ErrorData};

/// A failed call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// One line saying what is wrong; never a secret.
    pub message: String,
    /// Machine-readable detail (`data.code` is filled from `code` on the
    /// wire). Boxed: most errors carry none, and results stay small.
    pub data: Box<ErrorData>,
}

impl ServiceError {
    /// An error with a kind and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ServiceError {
        ServiceError {
            code,
            message: message.into(),
            data: Box::default(),
        }
    }

    /// An error with detail.
    pub fn with_data(code: ErrorCode, message: impl Into<String>, data: ErrorData) -> ServiceError {
        ServiceError {
            code,
            message: message.into(),
            data: Box::new(data),
        }
    }

    /// `invalid_params`.
    pub fn invalid(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorCode::InvalidParams, message)
    }

    /// `not_found` for `what` named `key`.
    pub fn not_found(
        what: &str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ServiceError {
        ServiceError::with_data(
            ErrorCode::NotFound,
            message,
            ErrorData {
                what: Some(what.to_string()),
                key: Some(key.into()),
                ..ErrorData::default()
            },
        )
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorCode::Internal, message)
    }

    /// The detail with `code` filled in, as it travels.
    pub fn wire_data(&self) -> ErrorData {
        ErrorData {
            code: self.code.name().to_string(),
            ..ErrorData::clone(&self.data)
        }
    }
}

/// A store error keeps the store's one-line message, so the command line
/// prints the same words embedded or through a daemon.
impl From<exo_store::Error> for ServiceError {
    fn from(err: exo_store::Error) -> ServiceError {
        use exo_store::Error;
        let message = err.to_string();
        match err {
            Error::NotFound { what, key } => ServiceError::not_found(what, key, message),
            Error::AlreadyExists { what, key } => ServiceError::with_data(
                ErrorCode::AlreadyExists,
                message,
                ErrorData {
                    what: Some(what.to_string()),
                    key: Some(key),
                    ..ErrorData::default()
                },
            ),
            Error::HeadConflict { expected, actual } => ServiceError::with_data(
                ErrorCode::Conflict,
                message,
                ErrorData {
                    expected_head: Some(expected.to_string()),
                    actual_head: Some(actual.to_string()),
                    ..ErrorData::default()
                },
            ),
            Error::Busy(_) => ServiceError::new(ErrorCode::Busy, message),
            Error::Invalid(_) => ServiceError::new(ErrorCode::InvalidParams, message),
            Error::WrongKey => ServiceError::new(ErrorCode::WrongKey, message),
            // Logged by the face that serves the call, where it is known
            // whether anyone but the caller reads the log.
            _ => ServiceError::new(ErrorCode::Internal, message),
        }
    }
}

/// The result of a call.
pub type ServiceResult<T> = Result<T, ServiceError>;
