//! Where commands go: the running daemon when one holds the root, else the
//! service in-process. Both answer the same JSON-RPC methods with the same
//! results and errors, so every command prints the same either way.

use std::os::unix::net::UnixStream;
use std::path::Path;

use exo_rpc::client::{CallError, Client};
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
    /// The service in this process.
    Embedded(Service),
    /// A running daemon, over its socket.
    Daemon(Client<UnixStream, UnixStream>),
}

impl Backend {
    /// Connects to the root's daemon if one runs, else opens the store
    /// in-process (`mode` says whether a missing store may be created).
    pub fn open(root: &Path, mode: OpenMode) -> anyhow::Result<Backend> {
        if let Some(info) = exo_service::daemon::running(root) {
            match UnixStream::connect(&info.socket)
                .and_then(|stream| Ok((stream.try_clone()?, stream)))
            {
                Ok((reader, writer)) => {
                    tracing::debug!(socket = %info.socket.display(), "using the running daemon");
                    return Ok(Backend::Daemon(Client::new(reader, writer)));
                }
                Err(err) => anyhow::bail!(
                    "a daemon (pid {}) holds {} but its socket {} does not answer: {err}",
                    info.pid,
                    root.display(),
                    info.socket.display()
                ),
            }
        }
        Ok(Backend::Embedded(Service::embedded(open_store(
            root, mode,
        )?)))
    }

    /// Calls a method.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        match self {
            Backend::Embedded(service) => service.call(method, Some(params)).map_err(Failure::Rpc),
            Backend::Daemon(client) => client.call(method, params).map_err(|err| match err {
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
