//! Where commands go: the running daemon when one holds the root, else the
//! service in-process. Both answer the same JSON-RPC methods with the same
//! results and errors, so every command prints the same either way.

use std::os::unix::net::UnixStream;
use std::path::Path;

use exo_rpc::client::{CallError, Client};
use exo_rpc::message::Json;
use exo_rpc::ErrorObject;
use exo_service::Service;
use exo_store::{OpenMode, Store};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A failed call: the service's error (with its JSON-RPC code), or a
/// transport failure.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The service refused.
    #[error("{}", .0.message)]
    Rpc(ErrorObject),
    /// Reaching the daemon failed.
    #[error("{0}")]
    Transport(String),
}

pub enum Backend {
    /// The service in this process, and the root's in-process claim, held
    /// until the service is gone (fields drop in order).
    Embedded {
        service: Service,
        _claim: exo_service::daemon::InProcessGuard,
    },
    /// A running daemon, over its socket.
    Daemon(Client<UnixStream, UnixStream>),
}

impl Backend {
    /// Connects to the root's daemon if one runs, else opens the store
    /// in-process (`mode` says whether a missing store may be created).
    pub fn open(root: &Path, mode: OpenMode) -> anyhow::Result<Backend> {
        match exo_service::daemon::access(root, mode == OpenMode::Create)? {
            exo_service::daemon::Access::Daemon(info, stream) => {
                tracing::debug!(socket = %info.socket.display(), "using the running daemon");
                let reader = stream.try_clone()?;
                Ok(Backend::Daemon(Client::new(reader, stream)))
            }
            exo_service::daemon::Access::InProcess(claim) => Ok(Backend::Embedded {
                service: Service::embedded(open_store(root, mode)?),
                _claim: claim,
            }),
        }
    }

    /// Calls a method.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        match self {
            Backend::Embedded { service, .. } => {
                service.call(method, Some(params)).map_err(Failure::Rpc)
            }
            Backend::Daemon(client) => client.call(method, params).map_err(|err| match err {
                CallError::Rpc(error) => Failure::Rpc(error),
                other => Failure::Transport(other.to_string()),
            }),
        }
    }

    /// Calls a method with params and result as JSON text (a large request
    /// is never a tree of values).
    pub fn call_json(&mut self, method: &str, params: &Json) -> Result<Json, Failure> {
        match self {
            Backend::Embedded { service, .. } => service
                .call_json(method, Some(params))
                .map_err(Failure::Rpc),
            Backend::Daemon(client) => client.call_raw(method, params).map_err(|err| match err {
                CallError::Rpc(error) => Failure::Rpc(error),
                other => Failure::Transport(other.to_string()),
            }),
        }
    }

    /// Calls a method and reads its result as `T`.
    pub fn call_as<T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: Value,
    ) -> anyhow::Result<(Value, T)> {
        let value = self.call(method, params)?;
        let typed = serde_json::from_value(value.clone())
            .map_err(|err| anyhow::anyhow!("unexpected result from {method}: {err}"))?;
        Ok((value, typed))
    }
}

/// Opens the store in this process; a missing store gets the command
/// line's hint.
pub fn open_store(root: &Path, mode: OpenMode) -> anyhow::Result<Store> {
    Store::open(root, mode).map_err(|err| match err {
        exo_store::Error::NoStore(_) => {
            anyhow::anyhow!("{err} (create an agent first, or pass --root)")
        }
        other => other.into(),
    })
}
