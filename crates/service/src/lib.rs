//! exo's service layer: every capability of the substrate as a JSON-RPC
//! method, one implementation behind both the daemon and the command line.
//!
//! - [`Service::call`] runs one request synchronously. The CLI calls it
//!   in-process when no daemon runs (embedded mode); the daemon calls it on
//!   tokio's blocking pool. Both therefore return the same results and the
//!   same errors, word for word.
//! - [`server`] is the daemon's transport loop: framing, batches,
//!   concurrency, cancellation, live `events/watch` streams.
//! - [`daemon`] is the process around it: the lock file, the Unix socket,
//!   stdio, signals.
//!
//! **Architecture Invariant:** this is the only crate that knows both the
//! store and the protocol; conversions live in `convert.rs`.

mod convert;
pub mod daemon;
mod handlers;
mod hub;
pub mod server;
mod turns;
mod workspace;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use exo_core::TurnId;
use exo_rpc::message::Json;
use exo_rpc::ErrorObject;
use exo_store::Store;
use serde_json::Value;

pub use hub::Hub;

/// The service: the store, the watch hub, and what the daemon reports
/// about itself.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Workspace shadow stores (and, in a daemon, their watchers).
    workspaces: workspace::Workspaces,
    hub: Arc<Hub>,
    /// Runs `turn/run` turns.
    executor: Arc<dyn exo_executor::Executor>,
    /// The turns running here, and the approvals they wait for.
    running: turns::Running,
    key: Mutex<Option<exo_secrets::Key>>,
    /// Whether this is a daemon's service (else it serves its own process's
    /// command line).
    daemon: bool,
    socket: Option<PathBuf>,
    started: Instant,
    connections: AtomicU64,
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// What one connection owns: the turns it began, closed as `interrupted`
/// if it goes away with them still open.
#[derive(Default)]
pub struct ConnectionContext {
    turns: Mutex<HashSet<TurnId>>,
}

impl Service {
    /// A service for in-process use: no live streams.
    pub fn embedded(store: Store) -> Service {
        Service::build(store, None, false)
    }

    /// A service for a daemon: every commit is published to watchers. The
    /// daemon must then be the store's only writer.
    pub fn daemon(store: Store, socket: Option<PathBuf>) -> Service {
        Service::build(store, socket, true)
    }

    fn build(store: Store, socket: Option<PathBuf>, watch: bool) -> Service {
        let hub = Arc::new(Hub::default());
        if watch {
            store.set_commit_listener(Some(Arc::clone(&hub) as Arc<dyn exo_store::CommitListener>));
        }
        let workspaces = workspace::Workspaces::new(store.root().to_path_buf(), watch);
        Service {
            inner: Arc::new(Inner {
                workspaces,
                store,
                hub,
                executor: Arc::new(exo_executor::Builtin::default()),
                running: turns::Running::default(),
                key: Mutex::new(None),
                daemon: watch,
                socket,
                started: Instant::now(),
                connections: AtomicU64::new(0),
                shutdown: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs one request to completion, synchronously.
    pub fn call(&self, method: &str, params: Option<Value>) -> Result<Value, ErrorObject> {
        let params = params.map(|params| Json::from_value(&params));
        self.call_json(method, params.as_ref())
            .map(|result| result.to_value())
    }

    /// [`Service::call`] with params and result as JSON text, read once
    /// into their own types: what the command line uses, so a large
    /// request is never a tree of values.
    pub fn call_json(&self, method: &str, params: Option<&Json>) -> Result<Json, ErrorObject> {
        self.dispatch(&ConnectionContext::default(), method, params)
    }

    /// Asks the daemon to stop, as SIGTERM does. Running turns are
    /// cancelled: they end `cancelled`, keeping what they did.
    pub fn request_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.running.cancel_all();
    }

    /// Resolves when a shutdown has been requested.
    pub async fn shutdown_requested(&self) {
        let mut receiver = self.inner.shutdown.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` holds it.
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Drops this handle once it is the last one (or after a bound wait),
    /// so that the store is closed, and its sessions ended, when this
    /// returns.
    pub async fn close(self) {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&self.inner) > 1 {
            if Instant::now() > deadline {
                tracing::warn!("service still in use at shutdown; closing anyway");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn connection_opened(&self) {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
    }

    fn connection_closed(&self) {
        self.inner.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.store.set_commit_listener(None);
    }
}
