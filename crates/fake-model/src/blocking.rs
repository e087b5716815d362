//! A blocking front end for synchronous tests, such as the end-to-end tests
//! that run the `exo` binary: the server runs on its own thread with its
//! own tokio runtime, and the test queues answers and inspects requests
//! from wherever it is.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::answer::Answer;
use crate::server::{at_least_disconnects, at_least_requests, Handle, MockResponse, Recorded};
use crate::wire::Wire;
use crate::MockServer;

/// A fake model API speaking one [`Wire`], on `127.0.0.1`, answering each
/// request with the next queued [`Answer`], in order.
///
/// A request that finds the queue empty gets a 500 whose body says so
/// (`exo-fake-model: no answer queued for request N ...`, with
/// `x-should-retry: false`, so exo fails at once instead of retrying) and
/// counts in [`FakeModel::unanswered`]. Dropping the handle stops the
/// server and closes every connection.
///
/// The waits block the calling thread. In async code whose own runtime
/// runs the client, use a multi-threaded runtime: blocking the only thread
/// of a current-thread runtime would keep the client from closing its
/// connection, and a wait for a disconnect would time out.
///
/// ```no_run
/// use exo_fake_model::{Completion, FakeModel, Wire};
/// use serde_json::json;
///
/// let model = FakeModel::start(Wire::Anthropic);
/// model.push(Completion::text("Let me look.").with_tool_call("call_1", "shell", json!({"command": "ls"})));
/// model.push(Completion::text("Two files."));
/// // Point exo at model.base_url(), run a turn, then:
/// assert!(model.wait_for_requests(2, std::time::Duration::from_secs(10)));
/// assert_eq!(model.requests()[0].path, "/v1/messages");
/// ```
pub struct FakeModel {
    wire: Wire,
    addr: SocketAddr,
    handle: Handle,
    /// Tells the server's thread to stop; taken on drop.
    shutdown: Option<oneshot::Sender<()>>,
    /// The server's thread; joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl FakeModel {
    /// Starts a server speaking `wire` with an empty queue.
    pub fn start(wire: Wire) -> FakeModel {
        let (started, on_start) = std::sync::mpsc::channel();
        let (shutdown, on_shutdown) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("fake-model-{}", wire.name()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for the fake model");
                runtime.block_on(async move {
                    let server = MockServer::start(Vec::new()).await;
                    // The test's thread waits for this, so it cannot fail.
                    let _ = started.send((server.addr(), server.handle()));
                    // Stops when told to, or when the handle is gone.
                    let _ = on_shutdown.await;
                    drop(server);
                });
                // Dropping the runtime here drops every connection's task.
            })
            .expect("spawn the fake model's thread");
        let (addr, handle) = on_start
            .recv()
            .expect("the fake model's server failed to start");
        FakeModel {
            wire,
            addr,
            handle,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The wire it speaks.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a path.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL to configure a client with: `http://127.0.0.1:<port>/v1`
    /// for the OpenAI kinds, `http://127.0.0.1:<port>` for Anthropic (see
    /// [`Wire::base_url`]).
    pub fn base_url(&self) -> String {
        self.wire.base_url(&self.url())
    }

    /// Queues an answer for the next request that finds none before it.
    pub fn push(&self, answer: impl Into<Answer>) {
        self.handle.push(self.wire.response(&answer.into()));
    }

    /// Queues a hand-made response, for streams no [`Answer`] describes.
    pub fn push_response(&self, response: MockResponse) {
        self.handle.push(response);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.handle.requests()
    }

    /// How many requests found the queue empty (and got a 500).
    pub fn unanswered(&self) -> usize {
        self.handle.unanswered()
    }

    /// How many queued answers no request has taken yet.
    pub fn queued(&self) -> usize {
        self.handle.queued()
    }

    /// How many answers their clients abandoned before the end (an
    /// [`Answer::Opening`] always ends this way).
    pub fn disconnects(&self) -> usize {
        self.handle.disconnects()
    }

    /// Blocks until at least `n` requests have arrived; false if they did
    /// not within `timeout`.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.handle.wait_blocking(timeout, at_least_requests(n))
    }

    /// Blocks until at least `n` answers were abandoned by their clients
    /// (a cancelled turn, a killed process); false if that did not happen
    /// within `timeout`.
    pub fn wait_for_disconnects(&self, n: usize, timeout: Duration) -> bool {
        self.handle.wait_blocking(timeout, at_least_disconnects(n))
    }
}

impl std::fmt::Debug for FakeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeModel")
            .field("wire", &self.wire)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server's thread was already reported there;
            // panicking again in a drop could abort the test binary.
            let _ = thread.join();
        }
    }
}
