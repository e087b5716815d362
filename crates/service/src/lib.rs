//! exo's service layer: every capability of the substrate as a typed call,
//! one implementation behind every face.
//!
//! - [`Service::call`] runs one method (`Service::call::<AgentCreate>(params)`)
//!   synchronously and returns its typed result or a [`ServiceError`]. The
//!   JSON-RPC face (the `exo-daemon` crate) maps names, JSON and errors
//!   onto these calls; later faces (ACP, MCP, a model gateway) do the same.
//! - Running turns ([`Service::run_turn`]) stream what happens as
//!   [`TurnNotice`]s; the face that asked turns them into its own
//!   notifications.
//! - The watch hub ([`Hub`]) carries committed events, streamed text and
//!   approval questions, as domain values, to whoever watches a
//!   conversation.
//!
//! **Architecture Invariant:** this crate knows the store and the protocol's
//! types, but no wire: not JSON-RPC, not its error codes, not the command
//! line. Conversions between store and protocol types live in `convert.rs`.

mod calls;
mod convert;
mod error;
mod executors;
mod gateway;
pub mod hub;
mod sandboxes;
mod turns;
mod workspace;

pub use calls::Call;
pub use error::{ServiceError, ServiceResult};
pub use turns::TurnNotice;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use exo_core::TurnId;
use exo_store::Store;

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
    /// Runs `turn/run` turns, by the agent's harness.
    executors: executors::Executors,
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
    /// The model gateway, once a token has been minted.
    gateway: Mutex<Option<exo_gateway::Gateway>>,
    /// Bumped after each change to bindings, secrets or agents' models:
    /// the gateway's cached resolutions of older generations are stale.
    configuration: AtomicU64,
    /// What the history of a conversation's model requests must begin
    /// with while an agent CLI runs its turn (`gateway::Expected`).
    expected: Mutex<std::collections::HashMap<exo_core::ConversationId, gateway::Expected>>,
}

/// What one client (a connection, a command line) owns: the turns it
/// began with `turn/begin`, closed as `interrupted` if it goes away with
/// them still open ([`Service::interrupt_turns`]).
#[derive(Default)]
pub struct ClientContext {
    turns: Mutex<HashSet<TurnId>>,
    /// Model-gateway tokens it minted, revoked when it goes.
    tokens: Mutex<Vec<String>>,
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
                executors: executors::Executors::standard(),
                running: turns::Running::default(),
                key: Mutex::new(None),
                daemon: watch,
                socket,
                started: Instant::now(),
                connections: AtomicU64::new(0),
                shutdown: tokio::sync::watch::channel(false).0,
                gateway: Mutex::new(None),
                configuration: AtomicU64::new(0),
                expected: Mutex::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Runs method `M`, synchronously, for a client that owns nothing
    /// beyond the call.
    pub fn call<M: Call>(&self, params: M::Params) -> ServiceResult<M::Result> {
        M::call(self, &ClientContext::default(), params)
    }

    /// Runs method `M` for `client` (whose `turn/begin` turns it then owns).
    pub fn call_for<M: Call>(
        &self,
        client: &ClientContext,
        params: M::Params,
    ) -> ServiceResult<M::Result> {
        M::call(self, client, params)
    }

    /// Whether this service publishes commits to watchers (a daemon).
    pub fn is_daemon(&self) -> bool {
        self.inner.daemon
    }

    /// The watch hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
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

    /// Counts a connection, for `daemon/status`.
    pub fn connection_opened(&self) {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Uncounts a connection.
    pub fn connection_closed(&self) {
        self.inner.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.store.set_commit_listener(None);
    }
}
