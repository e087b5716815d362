//! Where commands go: the running daemon when one holds the root, else the
//! service in-process. Both answer the same JSON-RPC methods with the same
//! results and errors, so every command prints the same either way.

use std::path::Path;

use exo_rpc::client::{CallError, Client};
use exo_rpc::message::Json;
use exo_rpc::ErrorObject;
use exo_service::{ClientContext, Service};
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
        client: ClientContext,
        _claim: exo_daemon::daemon::InProcessGuard,
    },
    /// A running daemon, over its socket.
    Daemon(Client),
    /// No store at the root yet: lists are empty, anything else is
    /// refused as opening the store would refuse it.
    Absent(std::path::PathBuf),
}

impl Backend {
    /// As [`Backend::open`] for a command that only reads: a root without
    /// a store is [`Backend::Absent`], and nothing is created for it.
    pub fn open_reading(root: &Path) -> anyhow::Result<Backend> {
        // A root that is not a directory is refused as every command
        // refuses it; a directory (or nothing) without a store is empty.
        let is_file = root.exists() && !root.is_dir();
        if !is_file && !root.join(exo_store::DB_FILE).exists() {
            return Ok(Backend::Absent(root.to_path_buf()));
        }
        Backend::open(root, OpenMode::Existing)
    }

    /// Connects to the root's daemon if one runs, else opens the store
    /// in-process (`mode` says whether a missing store may be created).
    pub fn open(root: &Path, mode: OpenMode) -> anyhow::Result<Backend> {
        match exo_daemon::daemon::access(root, mode == OpenMode::Create)? {
            exo_daemon::daemon::Access::Daemon(info, stream) => {
                tracing::debug!(socket = %info.socket.display(), "using the running daemon");
                Ok(Backend::Daemon(Client::new(stream)?))
            }
            exo_daemon::daemon::Access::InProcess(claim) => Ok(Backend::Embedded {
                service: Service::embedded(open_store(root, mode)?),
                client: ClientContext::default(),
                _claim: claim,
            }),
        }
    }

    /// Calls a method.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        let result = self.call_json(method, &Json::from_value(&params))?;
        result
            .parse()
            .map_err(|err| Failure::Transport(format!("unexpected result from {method}: {err}")))
    }

    /// Calls a method with params and result as JSON text (a large request
    /// is never a tree of values). In-process, the call goes through the
    /// same JSON-RPC face as a daemon's, so the results and errors are the
    /// same word for word.
    pub fn call_json(&mut self, method: &str, params: &Json) -> Result<Json, Failure> {
        let outcome = match self {
            Backend::Embedded {
                service, client, ..
            } => exo_daemon::face::call(service, client, method, Some(params))
                .map_err(|error| Failure::Rpc(exo_daemon::face::to_rpc(&error))),
            Backend::Daemon(client) => client.call_raw(method, params).map_err(|err| match err {
                CallError::Rpc(error) => Failure::Rpc(error),
                other => Failure::Transport(other.to_string()),
            }),
            Backend::Absent(root) => {
                let empty = match method {
                    "agent/list" => r#"{"agents":[]}"#,
                    "secret/list" => r#"{"secrets":[]}"#,
                    "model/list" => r#"{"models":[]}"#,
                    "binding/list" => r#"{"bindings":[]}"#,
                    "approval/list" => r#"{"approvals":[]}"#,
                    "sandbox/list" => r#"{"sandboxes":[]}"#,
                    _ => {
                        let err = open_store(root, OpenMode::Existing).err().map_or_else(
                            || "the store appeared".to_string(),
                            |err| err.to_string(),
                        );
                        return Err(Failure::Transport(err));
                    }
                };
                return Json::from_text(empty).map_err(|err| Failure::Transport(err.to_string()));
            }
        };
        outcome.map_err(with_hint)
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

/// Adds what to do next to an error whose fix is a command: the service
/// says what is wrong; the command line knows its own commands.
fn with_hint(failure: Failure) -> Failure {
    let Failure::Rpc(mut error) = failure else {
        return failure;
    };
    let data = error.data.as_ref();
    let field = |name: &str| {
        data.and_then(|data| data.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let hint = match (
        field("code").as_deref(),
        field("what").as_deref(),
        field("key"),
    ) {
        (Some("not_found"), Some("model"), Some(key)) => {
            Some(format!("register it first with `exo model register {key}`"))
        }
        (Some("not_found"), Some("secret"), Some(key)) => Some(format!(
            "set it first with `exo secret set {key} --env VAR`"
        )),
        (Some("not_found"), Some("snapshot"), None) => {
            Some("take one with `exo snapshot take`".to_string())
        }
        (Some("invalid_params"), Some("workspace"), _) => {
            Some("create the conversation with --workspace DIR".to_string())
        }
        _ => None,
    };
    if let Some(hint) = hint {
        error.message = format!("{}; {hint}", error.message);
    }
    Failure::Rpc(error)
}
