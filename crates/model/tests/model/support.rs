//! A real HTTP server on 127.0.0.1:0 that records every request and answers
//! from a queue of canned responses, streaming bodies in timed chunks, and
//! tells the test when a client went away before a body was finished.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;
use tokio::sync::mpsc;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or("")
    }
}

/// Part of a response body, sent after a pause.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub delay: Duration,
    pub bytes: String,
}

/// A canned response.
#[derive(Clone, Debug)]
pub struct MockResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub chunks: Vec<Chunk>,
}

/// The pause between streamed chunks: long enough that the client reads
/// them one by one, short enough to keep the suite quick.
const CHUNK_PAUSE: Duration = Duration::from_millis(5);

impl MockResponse {
    /// A 200 event stream: each event is sent in two pieces split mid-event
    /// (so the client's parser must join them), with a pause before each.
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
            headers: vec![("content-type", "text/event-stream".into())],
            chunks,
        }
    }

    /// A JSON response with a status.
    pub fn json(status: u16, body: Value) -> MockResponse {
        MockResponse {
            status,
            headers: vec![("content-type", "application/json".into())],
            chunks: vec![Chunk {
                delay: Duration::ZERO,
                bytes: body.to_string(),
            }],
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: &str) -> MockResponse {
        self.headers.push((name, value.to_string()));
        self
    }

    /// Then sends nothing for a long time (longer than any test runs).
    pub fn then_stall(mut self) -> MockResponse {
        self.chunks.push(Chunk {
            delay: Duration::from_secs(600),
            bytes: ": never sent\n\n".into(),
        });
        self
    }
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// Answers still to give; the last one repeats forever.
    responses: Mutex<VecDeque<MockResponse>>,
    disconnects: mpsc::UnboundedSender<()>,
}

/// The running server; stops when dropped.
pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    disconnects: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Starts a server answering with `responses` in order.
    pub async fn start(responses: Vec<MockResponse>) -> MockServer {
        assert!(!responses.is_empty());
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            responses: Mutex::new(responses.into()),
            disconnects: sender,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockServer {
            addr,
            shared,
            disconnects: tokio::sync::Mutex::new(receiver),
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until a response body was abandoned by its client before it
    /// was fully sent; false if that did not happen within `limit`.
    pub async fn client_went_away(&self, limit: Duration) -> bool {
        let mut receiver = self.disconnects.lock().await;
        tokio::time::timeout(limit, receiver.recv()).await.is_ok()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Signals when a body stream is dropped before its end.
struct Guard {
    /// Taken when the body was sent in full.
    disconnects: Option<mpsc::UnboundedSender<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(disconnects) = self.disconnects.take() {
            let _ = disconnects.send(());
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).expect("request body is JSON")
    };
    shared.requests.lock().unwrap().push(Recorded {
        method,
        path: uri.path().to_string(),
        headers,
        body,
    });
    let response = {
        let mut responses = shared.responses.lock().unwrap();
        if responses.len() > 1 {
            responses.pop_front().unwrap()
        } else {
            responses.front().unwrap().clone()
        }
    };
    let guard = Guard {
        disconnects: Some(shared.disconnects.clone()),
    };
    let chunks: VecDeque<Chunk> = response.chunks.into();
    let stream =
        futures_util::stream::unfold((chunks, guard), |(mut chunks, mut guard)| async move {
            match chunks.pop_front() {
                Some(chunk) => {
                    tokio::time::sleep(chunk.delay).await;
                    Some((Ok::<_, Infallible>(chunk.bytes), (chunks, guard)))
                }
                None => {
                    guard.disconnects.take();
                    None
                }
            }
        });
    let mut builder =
        axum::response::Response::builder().status(StatusCode::from_u16(response.status).unwrap());
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from_stream(stream)).unwrap()
}

/// An SSE event with a name: `event: <name>` and one `data:` line.
pub fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An SSE event with only data.
pub fn data(data: &str) -> String {
    format!("data: {data}\n\n")
}

/// Runs a future with a generous limit, so a hang fails the test instead of
/// the suite.
pub async fn within<T>(limit: Duration, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .expect("the test took too long")
}
