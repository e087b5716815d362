//! The HTTP server: records every request, answers each from a queue of
//! canned responses, streams bodies in timed chunks, and counts clients that
//! went away before a body was finished.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The HTTP method, e.g. `POST`.
    pub method: Method,
    /// The path without the query, e.g. `/v1/responses`.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body parsed as JSON; `Null` when empty, and a JSON string of the
    /// raw text (lossily decoded) when it is not JSON.
    pub body: Value,
}

impl Recorded {
    /// A header's value, or "" when absent or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }
}

/// Part of a response body, sent after a pause.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// How long to wait before sending it.
    pub delay: Duration,
    /// What to send.
    pub bytes: String,
}

/// A canned response.
#[derive(Clone, Debug)]
pub struct MockResponse {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: Vec<(String, String)>,
    /// The body, in the pieces it is sent in.
    pub chunks: Vec<Chunk>,
    /// Whether the body, once its chunks are sent, stays open forever
    /// instead of ending.
    pub stalls: bool,
}

/// The pause before each streamed chunk: long enough that the client reads
/// them one by one, short enough to keep a suite quick.
pub const CHUNK_PAUSE: Duration = Duration::from_millis(5);

impl MockResponse {
    /// A 200 event stream of `events` (each a whole SSE event, blank line
    /// included): each is sent in two pieces split mid-event, so the
    /// client's parser must join them, with [`CHUNK_PAUSE`] before each.
    pub fn sse(events: &[String]) -> MockResponse {
        let mut chunks = Vec::new();
        for event in events {
            let mut middle = event.len() / 2;
            while !event.is_char_boundary(middle) {
                middle += 1;
            }
            for piece in [&event[..middle], &event[middle..]] {
                chunks.push(Chunk {
                    delay: CHUNK_PAUSE,
                    bytes: piece.to_string(),
                });
            }
        }
        MockResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks,
            stalls: false,
        }
    }

    /// A JSON response with a status, sent at once.
    pub fn json(status: u16, body: Value) -> MockResponse {
        MockResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![Chunk {
                delay: Duration::ZERO,
                bytes: body.to_string(),
            }],
            stalls: false,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> MockResponse {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Keeps the body open after its chunks, sending nothing more, until the
    /// client goes away or the server stops.
    pub fn then_stall(mut self) -> MockResponse {
        self.stalls = true;
        self
    }
}

/// What the server and its handles share.
struct Shared {
    state: Mutex<ServerState>,
    /// Wakes blocking waiters on every change of `state`.
    changed: Condvar,
    /// Wakes async waiters on every change of `state`.
    notify: Notify,
}

#[derive(Default)]
pub(crate) struct ServerState {
    requests: Vec<Recorded>,
    /// Answers still to give, one per request, in order.
    responses: VecDeque<MockResponse>,
    /// Requests that found `responses` empty.
    unanswered: usize,
    /// Bodies dropped before they were fully sent.
    disconnects: usize,
}

/// The queue, the record of requests and the disconnect count of one server,
/// shared by the async [`MockServer`] and the blocking
/// [`FakeModel`](crate::FakeModel).
#[derive(Clone)]
pub(crate) struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    fn new() -> Handle {
        Handle {
            shared: Arc::new(Shared {
                state: Mutex::new(ServerState::default()),
                changed: Condvar::new(),
                notify: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ServerState> {
        // A test that panicked while holding the lock must not hide the
        // state from the others.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update<T>(&self, change: impl FnOnce(&mut ServerState) -> T) -> T {
        let result = change(&mut self.lock());
        self.shared.changed.notify_all();
        self.shared.notify.notify_waiters();
        result
    }

    pub(crate) fn push(&self, response: MockResponse) {
        self.update(|state| state.responses.push_back(response));
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub(crate) fn unanswered(&self) -> usize {
        self.lock().unanswered
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock().responses.len()
    }

    pub(crate) fn disconnects(&self) -> usize {
        self.lock().disconnects
    }

    /// Waits, blocking the thread, until `done` holds; false if it did not
    /// within `limit`.
    pub(crate) fn wait_blocking(
        &self,
        limit: Duration,
        done: impl Fn(&ServerState) -> bool,
    ) -> bool {
        let state = self.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, limit, |state| !done(state))
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        done(&state)
    }

    /// Waits until `done` holds; false if it did not within `limit`.
    async fn wait(&self, limit: Duration, done: impl Fn(&ServerState) -> bool) -> bool {
        let until_done = async {
            loop {
                let notified = self.shared.notify.notified();
                tokio::pin!(notified);
                // Registered before the check, so a change between the
                // check and the await is not missed.
                notified.as_mut().enable();
                if done(&self.lock()) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, until_done).await.is_ok()
    }
}

pub(crate) fn at_least_requests(n: usize) -> impl Fn(&ServerState) -> bool {
    move |state| state.requests.len() >= n
}

pub(crate) fn at_least_disconnects(n: usize) -> impl Fn(&ServerState) -> bool {
    move |state| state.disconnects >= n
}

/// A server on `127.0.0.1:0`, run on the current tokio runtime, answering
/// each request with the next queued [`MockResponse`]. A request that finds
/// the queue empty gets a 500 whose body says so (with
/// `x-should-retry: false`, so exo does not retry it), and counts in
/// [`MockServer::unanswered`]. It stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Starts a server that answers with `responses` in order, one per
    /// request.
    pub async fn start(responses: Vec<MockResponse>) -> MockServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the listener's address");
        let handle = Handle::new();
        for response in responses {
            handle.push(response);
        }
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(handle.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the server runs");
        });
        MockServer { addr, handle, task }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a path.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues one more response.
    pub fn push(&self, response: MockResponse) {
        self.handle.push(response);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.handle.requests()
    }

    /// How many requests found the queue empty.
    pub fn unanswered(&self) -> usize {
        self.handle.unanswered()
    }

    /// How many queued responses no request has taken yet.
    pub fn queued(&self) -> usize {
        self.handle.queued()
    }

    /// How many response bodies their clients abandoned before the end
    /// (a stalled body always ends this way).
    pub fn disconnects(&self) -> usize {
        self.handle.disconnects()
    }

    /// Waits until at least `n` requests have arrived; false if they did not
    /// within `limit`.
    pub async fn wait_for_requests(&self, n: usize, limit: Duration) -> bool {
        self.handle.wait(limit, at_least_requests(n)).await
    }

    /// Waits until at least `n` response bodies were abandoned by their
    /// clients; false if that did not happen within `limit`.
    pub async fn wait_for_disconnects(&self, n: usize, limit: Duration) -> bool {
        self.handle.wait(limit, at_least_disconnects(n)).await
    }

    pub(crate) fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a body stream dropped before its end as a disconnect.
struct Guard {
    /// Taken when the body was sent in full.
    handle: Option<Handle>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.update(|state| state.disconnects += 1);
        }
    }
}

async fn answer(
    State(handle): State<Handle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let path = uri.path().to_string();
    let response = handle.update(|state| {
        state.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
        });
        let number = state.requests.len();
        state.responses.pop_front().unwrap_or_else(|| {
            state.unanswered += 1;
            queue_empty(number, &method, &path)
        })
    });
    let guard = Guard {
        handle: Some(handle),
    };
    let stalls = response.stalls;
    let chunks: VecDeque<Chunk> = response.chunks.into();
    let stream =
        futures_util::stream::unfold((chunks, guard), move |(mut chunks, mut guard)| async move {
            match chunks.pop_front() {
                Some(chunk) => {
                    tokio::time::sleep(chunk.delay).await;
                    Some((Ok::<_, Infallible>(chunk.bytes), (chunks, guard)))
                }
                None if stalls => std::future::pending().await,
                None => {
                    guard.handle.take();
                    None
                }
            }
        });
    let mut builder = axum::response::Response::builder().status(
        StatusCode::from_u16(response.status).expect("a canned response has a valid status"),
    );
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from_stream(stream))
        .expect("a canned response has valid headers")
}

/// The answer to a request that found the queue empty. The body has the
/// shape both vendors use (`error.type`, `error.message`), so exo shows the
/// message, and `x-should-retry: false` keeps exo from retrying it.
fn queue_empty(number: usize, method: &Method, path: &str) -> MockResponse {
    let message = format!(
        "exo-fake-model: no answer queued for request {number} ({method} {path}); push one before the request is made"
    );
    MockResponse::json(
        500,
        json!({"type": "error", "error": {"type": "fake_model_queue_empty", "message": message}}),
    )
    .header("x-should-retry", "false")
}
