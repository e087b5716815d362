//! A two-way JSON-RPC peer over any byte stream: the one implementation of
//! a JSON-RPC connection in exo, whichever side it is on.
//!
//! Either side may send requests and notifications and must answer the
//! requests it receives: the daemon serves clients and (later) asks them
//! things; exo drives an agent's runner, which asks exo for model calls
//! and tools; Codex's app-server and ACP clients ask their peer questions
//! in the middle of a turn. So a [`Peer`] is a client and a server at once:
//!
//! - **Outgoing requests** ([`PeerHandle::request`]) get ids of their own
//!   and are matched to their responses. Dropping the future before its
//!   answer sends `$/cancelRequest` (unless [`Options::cancel_on_drop`] is
//!   off, for peers that do not know it).
//! - **Incoming requests and notifications** go to a [`Handler`], which
//!   returns a future for the answer. The future is polled once where it
//!   arrived; only if it is not ready at once is it given a task of its
//!   own, so a request answered from memory costs no task and no hop.
//!   `$/cancelRequest` from the remote fires the request's
//!   [`Context::cancelled`] token; what to do about it is the handler's call
//!   (a write that has started should finish).
//! - **Order.** Everything sent goes through one bounded queue to one
//!   writer, so notifications a handler sends before answering arrive
//!   before the answer.
//!
//! # Bounds
//!
//! - Frames larger than [`Options::max_frame_bytes`] are answered with an
//!   error and discarded as they stream in; nesting is bounded by
//!   [`crate::message::MAX_DEPTH`].
//! - At most [`Options::max_in_flight`] incoming requests run at once, each
//!   item of a batch counting as one: past that the reader stops reading,
//!   and the remote's own buffer pushes back.
//! - The outgoing queue holds [`Options::outgoing_queue`] messages; a sender
//!   waits for room.
//!
//! # End of a connection
//!
//! When the remote sends nothing more (end of input, unreadable framing)
//! or [`Peer::stop`] is called, the peer stops reading, fails its own
//! requests still waiting with [`RequestError::Closed`], lets the incoming
//! requests already running finish and be answered, calls
//! [`Handler::closed`], then flushes and closes its writer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::codec::{Encoder, FramedRead};
use tokio_util::sync::CancellationToken;

use crate::message::{
    self, Dialect, ErrorObject, Incoming, Json, Parsed, Request, Response, INTERNAL_ERROR,
    INVALID_REQUEST, PARSE_ERROR,
};
use crate::{Frame, FrameCodec, Framing, DEFAULT_MAX_FRAME_BYTES};

/// The method that cancels a request in flight.
pub const CANCEL_METHOD: &str = "$/cancelRequest";

/// How a peer behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// With or without the `"jsonrpc"` member.
    pub dialect: Dialect,
    /// The largest frame read.
    pub max_frame_bytes: usize,
    /// Incoming requests (and batch items) running at once.
    pub max_in_flight: usize,
    /// Messages queued for the writer.
    pub outgoing_queue: usize,
    /// Bytes of requests read but not yet started (waiting for an
    /// in-flight place) before the peer stops reading.
    pub waiting_bytes: usize,
    /// The framing to write before anything was read. A peer that speaks
    /// first (a client) sets it; otherwise it is detected from the first
    /// bytes read, and NDJSON is written until then.
    pub framing: Option<Framing>,
    /// Whether dropping an outgoing request before its answer sends
    /// `$/cancelRequest`.
    pub cancel_on_drop: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dialect: Dialect::JsonRpc2,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_in_flight: 64,
            outgoing_queue: 256,
            waiting_bytes: 2 * DEFAULT_MAX_FRAME_BYTES,
            framing: None,
            cancel_on_drop: true,
        }
    }
}

/// What serves a peer's incoming messages.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request, or carries out a notification (`request.id` is
    /// `None`; its outcome is dropped). Called where the message was read:
    /// work that blocks belongs in the returned future, on a blocking pool.
    fn handle(
        &self,
        request: Request,
        context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>>;

    /// Whether a request takes one of the in-flight places. A request the
    /// handler answers from memory at once (a ping, an answer to a
    /// question the peer's own turn asked) does not: it is answered even
    /// while the places are all taken, so that a connection whose running
    /// requests wait for its later messages is never wedged.
    fn needs_slot(&self, _request: &Request) -> bool {
        true
    }

    /// Shapes an error the peer itself answers with (an invalid message, a
    /// frame over the limit), for instance to add machine-readable data.
    fn peer_error(&self, error: ErrorObject) -> ErrorObject {
        error
    }

    /// Called once the remote can send nothing more and every incoming
    /// request has been answered, before the writer closes.
    fn closed(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// A handler for a peer that serves nothing: every request is refused
/// with "method not found", notifications go to a channel.
pub struct NotificationsOnly {
    sender: mpsc::UnboundedSender<(String, Option<Json>)>,
}

impl NotificationsOnly {
    /// The handler, and where its notifications arrive.
    pub fn new() -> (
        Arc<NotificationsOnly>,
        mpsc::UnboundedReceiver<(String, Option<Json>)>,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Arc::new(NotificationsOnly { sender }), receiver)
    }
}

impl Handler for NotificationsOnly {
    fn handle(
        &self,
        request: Request,
        _context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        if request.is_notification() {
            let _ = self.sender.send((request.method, request.params));
            return Box::pin(async { Ok(Json::null()) });
        }
        let message = format!("method not found: {}", request.method);
        Box::pin(async move { Err(ErrorObject::new(message::METHOD_NOT_FOUND, message)) })
    }
}

/// What a handler gets with each incoming request.
#[derive(Clone)]
pub struct Context {
    /// The peer, to send notifications (before the answer) or requests.
    pub peer: PeerHandle,
    /// Fired by the remote's `$/cancelRequest` for this request, or when
    /// the peer stops.
    pub cancelled: CancellationToken,
    replied: Arc<Replied>,
}

#[derive(Default)]
struct Replied {
    done: AtomicBool,
    notify: Notify,
}

impl Context {
    /// Resolves once this request's answer has been queued (at once for a
    /// notification, which gets none): work that must follow the answer,
    /// such as a stream the answer announces, waits for it.
    pub async fn after_reply(&self) {
        loop {
            let notified = self.replied.notify.notified();
            if self.replied.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl Replied {
    fn mark(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

/// Why an outgoing request failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The remote answered with an error.
    #[error("{0}")]
    Rpc(ErrorObject),
    /// The connection closed before an answer came.
    #[error("the connection closed")]
    Closed,
    /// The answer could not be read as the expected type.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

type Answering = oneshot::Sender<Result<Json, ErrorObject>>;

struct Shared {
    outgoing: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<u64, Answering>>,
    next_id: AtomicU64,
    dialect: Dialect,
    cancel_on_drop: bool,
    /// The remote sends nothing more.
    input_closed: CancellationToken,
}

/// A handle on a peer: cheap to clone; sends requests and notifications.
#[derive(Clone)]
pub struct PeerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PeerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerHandle").finish_non_exhaustive()
    }
}

impl PeerHandle {
    /// Sends a request and waits for its answer. Dropping the future first
    /// cancels the request at the remote (`$/cancelRequest`).
    pub async fn request(&self, method: &str, params: Json) -> Result<Json, RequestError> {
        self.start(method, params).await?.await
    }

    /// Sends a request and returns it in flight: await it for the answer;
    /// [`Outgoing::cancel`] asks the remote to cancel it while its (then
    /// cancelled) answer is still awaited. Dropping it unanswered cancels
    /// it too.
    pub async fn start(&self, method: &str, params: Json) -> Result<Outgoing, RequestError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, answer);
        let mut outgoing = Outgoing {
            peer: self.clone(),
            id,
            answered,
            done: false,
        };
        if self.shared.input_closed.is_cancelled() {
            outgoing.done = true;
            self.forget(id);
            return Err(RequestError::Closed);
        }
        // Null params are left out: JSON-RPC allows only structures there.
        let params = (!params.is_null()).then_some(&params);
        let bytes = message::request_bytes_in(self.shared.dialect, Some(id), method, params);
        if self.shared.outgoing.send(Bytes::from(bytes)).await.is_err() {
            outgoing.done = true;
            self.forget(id);
            return Err(RequestError::Closed);
        }
        Ok(outgoing)
    }

    /// [`PeerHandle::request`] with typed params and result.
    pub async fn request_as<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, RequestError> {
        let params = Json::to(params).map_err(|err| RequestError::Unexpected(err.to_string()))?;
        let result = self.request(method, params).await?;
        result
            .parse()
            .map_err(|err| RequestError::Unexpected(format!("{method}: {err}")))
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Json) -> Result<(), RequestError> {
        let params = (!params.is_null()).then_some(&params);
        let bytes = message::request_bytes_in(self.shared.dialect, None, method, params);
        self.shared
            .outgoing
            .send(Bytes::from(bytes))
            .await
            .map_err(|_| RequestError::Closed)
    }

    /// [`PeerHandle::notify`] with typed params.
    pub async fn notify_as<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<(), RequestError> {
        let params = Json::to(params).map_err(|err| RequestError::Unexpected(err.to_string()))?;
        self.notify(method, params).await
    }

    /// Sends a message already serialized (a notification or a response
    /// built elsewhere). Waits for room in the queue.
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<(), RequestError> {
        self.shared
            .outgoing
            .send(Bytes::from(bytes))
            .await
            .map_err(|_| RequestError::Closed)
    }

    /// Resolves once the remote can send nothing more.
    pub async fn input_closed(&self) {
        self.shared.input_closed.cancelled().await
    }

    /// Whether the remote can send nothing more.
    pub fn is_input_closed(&self) -> bool {
        self.shared.input_closed.is_cancelled()
    }

    /// Resolves once nothing more can be written (the writer has stopped:
    /// the remote stopped reading, or the peer closed).
    pub async fn output_closed(&self) {
        self.shared.outgoing.closed().await
    }

    /// A token that fires when the remote can send nothing more.
    pub fn input_closed_token(&self) -> CancellationToken {
        self.shared.input_closed.clone()
    }

    /// The dialect this peer writes.
    pub fn dialect(&self) -> Dialect {
        self.shared.dialect
    }

    fn forget(&self, id: u64) -> bool {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .is_some()
    }

    /// Delivers an answer to the request waiting for it.
    fn answer(&self, id: u64, outcome: Result<Json, ErrorObject>) {
        let waiting = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(waiting) = waiting {
            let _ = waiting.send(outcome);
        }
    }

    /// Fails every request still waiting.
    fn fail_all(&self, error: Option<ErrorObject>) {
        let waiting: Vec<Answering> = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, waiting)| waiting)
            .collect();
        for waiting in waiting {
            match &error {
                Some(error) => {
                    let _ = waiting.send(Err(error.clone()));
                }
                // Dropping the sender reads as a closed connection.
                None => drop(waiting),
            }
        }
    }
}

/// A request of ours in flight (see [`PeerHandle::start`]).
pub struct Outgoing {
    peer: PeerHandle,
    id: u64,
    answered: oneshot::Receiver<Result<Json, ErrorObject>>,
    done: bool,
}

impl Outgoing {
    /// The request's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Asks the remote to cancel the request; its answer (usually saying
    /// it was cancelled) is still awaited.
    pub async fn cancel(&self) {
        let _ = self
            .peer
            .notify(
                CANCEL_METHOD,
                Json::to(&serde_json::json!({ "id": self.id })).expect("a cancel serializes"),
            )
            .await;
    }
}

impl Future for Outgoing {
    type Output = Result<Json, RequestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let outcome = match Pin::new(&mut self.answered).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        self.done = true;
        Poll::Ready(match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(RequestError::Rpc(error)),
            Err(_) => Err(RequestError::Closed),
        })
    }
}

/// Cancels a request whose future was dropped before its answer.
impl Drop for Outgoing {
    fn drop(&mut self) {
        if self.done || !self.peer.forget(self.id) || !self.peer.shared.cancel_on_drop {
            return;
        }
        let cancel =
            Json::to(&serde_json::json!({ "id": self.id })).expect("a cancel always serializes");
        let bytes = Bytes::from(message::request_bytes_in(
            self.peer.shared.dialect,
            None,
            CANCEL_METHOD,
            Some(&cancel),
        ));
        match self.peer.shared.outgoing.try_send(bytes) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(bytes)) => {
                let outgoing = self.peer.shared.outgoing.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = outgoing.send(bytes).await;
                    });
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A running peer.
pub struct Peer {
    handle: PeerHandle,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    /// Starts a peer on `reader` and `writer`, serving incoming messages
    /// with `handler`. Must be called inside a tokio runtime.
    pub fn spawn<R, W>(reader: R, writer: W, handler: Arc<dyn Handler>, options: Options) -> Peer
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (outgoing, queue) = mpsc::channel(options.outgoing_queue.max(1));
        let shared = Arc::new(Shared {
            outgoing,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            dialect: options.dialect,
            cancel_on_drop: options.cancel_on_drop,
            input_closed: CancellationToken::new(),
        });
        let handle = PeerHandle { shared };
        let stop = CancellationToken::new();
        let framing = Arc::new(OnceLock::new());
        if let Some(known) = options.framing {
            let _ = framing.set(known);
        }
        let writer_closed = CancellationToken::new();
        let writer_task = tokio::spawn(write_loop(
            writer,
            queue,
            Arc::clone(&framing),
            options.max_frame_bytes,
            writer_closed.clone(),
        ));
        let (waiting, queue) = mpsc::unbounded_channel();
        let budget_kib = (options.waiting_bytes >> 10).clamp(1, u32::MAX as usize >> 3);
        let connection = Arc::new(Connection {
            handle: handle.clone(),
            handler,
            permits: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            max_in_flight: options.max_in_flight.max(1),
            in_flight: Mutex::new(HashMap::new()),
            dialect: options.dialect,
            stop: stop.clone(),
            waiting,
            waiting_budget: Arc::new(Semaphore::new(budget_kib)),
        });
        let dispatcher = tokio::spawn(dispatch(Arc::clone(&connection), queue));
        let task = tokio::spawn(run(
            connection,
            reader,
            options,
            framing,
            writer_task,
            writer_closed,
            dispatcher,
        ));
        Peer { handle, stop, task }
    }

    /// A handle to send requests and notifications.
    pub fn handle(&self) -> PeerHandle {
        self.handle.clone()
    }

    /// Stops reading; what is running finishes and is answered.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the connection has ended (see the module docs).
    pub async fn join(self) {
        let _ = self.task.await;
    }

    /// Whether the connection has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Two peers connected by an in-memory pipe, for tests.
pub fn memory_pair(a: Arc<dyn Handler>, b: Arc<dyn Handler>, options: Options) -> (Peer, Peer) {
    let (left, right) = tokio::io::duplex(1 << 20);
    let (left_read, left_write) = tokio::io::split(left);
    let (right_read, right_write) = tokio::io::split(right);
    let framed = Options {
        framing: Some(options.framing.unwrap_or(Framing::Ndjson)),
        ..options
    };
    (
        Peer::spawn(left_read, left_write, a, framed.clone()),
        Peer::spawn(right_read, right_write, b, framed),
    )
}

struct Connection {
    handle: PeerHandle,
    handler: Arc<dyn Handler>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    /// Incoming requests running or waiting, by the text of their id.
    in_flight: Mutex<HashMap<String, CancellationToken>>,
    dialect: Dialect,
    stop: CancellationToken,
    /// Requests waiting for an in-flight place, in order.
    waiting: mpsc::UnboundedSender<Waiting>,
    /// The bytes they may take, in KiB.
    waiting_budget: Arc<Semaphore>,
}

/// A request read and waiting for an in-flight place.
struct Waiting {
    request: Request,
    cancelled: CancellationToken,
    /// For a batch item: where its start goes.
    reply: Option<oneshot::Sender<Started>>,
    /// Its share of the waiting budget, given back once it starts.
    _bytes: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// One item of a batch, as it is read: answered already, started, or
/// waiting for an in-flight place.
enum Slot {
    Ready(Response),
    Started(Started),
    Waiting(oneshot::Receiver<Started>),
}

/// One item of a batch, once started.
enum Answer {
    Ready(Response),
    Running(tokio::task::JoinHandle<Option<Response>>),
}

/// The most bytes of answers one batch gets back; past it, the answers
/// that would not fit are replaced by an error saying so (send those
/// requests on their own), so a batch costs memory in proportion to this
/// bound, not to what its requests return.
pub const MAX_BATCH_ANSWER_BYTES: usize = 64 << 20;

/// A batch's answers, written as they come, within
/// [`MAX_BATCH_ANSWER_BYTES`].
struct BatchAnswers {
    dialect: Dialect,
    bytes: Vec<u8>,
    count: usize,
}

impl BatchAnswers {
    fn new(dialect: Dialect) -> BatchAnswers {
        BatchAnswers {
            dialect,
            bytes: vec![b'['],
            count: 0,
        }
    }

    fn push(&mut self, response: Response) {
        let mut encoded = response.to_bytes_in(self.dialect);
        if self.bytes.len() + encoded.len() > MAX_BATCH_ANSWER_BYTES {
            let error = ErrorObject::new(
                INTERNAL_ERROR,
                format!(
                    "the batch's answers exceed {} MiB: send this request on its own",
                    MAX_BATCH_ANSWER_BYTES >> 20
                ),
            );
            encoded = Response::error(response.id, error).to_bytes_in(self.dialect);
        }
        if self.count > 0 {
            self.bytes.push(b',');
        }
        self.bytes.extend_from_slice(&encoded);
        self.count += 1;
    }

    /// The array, unless it would be empty (a batch of notifications gets
    /// no answer).
    fn finish(mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        self.bytes.push(b']');
        Some(self.bytes)
    }
}

async fn run<R>(
    connection: Arc<Connection>,
    reader: R,
    options: Options,
    framing: Arc<OnceLock<Framing>>,
    writer_task: tokio::task::JoinHandle<()>,
    writer_closed: CancellationToken,
    dispatcher: tokio::task::JoinHandle<()>,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    let codec = match options.framing {
        Some(known) => FrameCodec::with_framing(known, options.max_frame_bytes),
        None => FrameCodec::new(options.max_frame_bytes),
    };
    let mut frames = FramedRead::new(reader, codec);
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            () = connection.stop.cancelled() => break,
        };
        let frame = match frame {
            None => break,
            Some(Err(err)) => {
                tracing::debug!(%err, "connection read failed");
                break;
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(detected) = frames.decoder().framing() {
            let _ = framing.set(detected);
        }
        match frame {
            Frame::Message(payload) => connection.payload(&payload).await,
            Frame::TooLarge { bytes } => {
                let error = ErrorObject::new(
                    INVALID_REQUEST,
                    format!(
                        "request of {bytes} bytes is larger than the {} MiB limit",
                        options.max_frame_bytes >> 20
                    ),
                );
                connection.peer_error(error).await;
            }
            Frame::Malformed(reason) => {
                let error = ErrorObject::new(PARSE_ERROR, format!("malformed frame: {reason}"));
                connection.peer_error(error).await;
                break;
            }
        }
    }
    // The remote can send nothing more: our own requests will get no
    // answer; the ones it sent are finished and answered.
    connection.handle.shared.input_closed.cancel();
    connection.handle.fail_all(None);
    // Requests still waiting for a place are started (they were sent
    // before the end), unless the peer was stopped; then everything that
    // runs finishes and is answered.
    let connection = {
        let _ = connection.waiting.send(Waiting::end());
        connection
    };
    let _ = dispatcher.await;
    let _ = connection
        .permits
        .acquire_many(connection.max_in_flight as u32)
        .await;
    connection.handler.closed().await;
    writer_closed.cancel();
    let _ = writer_task.await;
}

impl Waiting {
    /// The marker that tells the dispatcher no more will come.
    fn end() -> Waiting {
        Waiting {
            request: Request {
                id: None,
                method: String::new(),
                params: None,
            },
            cancelled: CancellationToken::new(),
            reply: None,
            _bytes: None,
        }
    }

    fn is_end(&self) -> bool {
        self.request.method.is_empty()
    }
}

/// Starts waiting requests, in order, as in-flight places free up.
async fn dispatch(connection: Arc<Connection>, mut queue: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(waiting) = queue.recv().await {
        if waiting.is_end() {
            break;
        }
        let permit = tokio::select! {
            permit = Arc::clone(&connection.permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = connection.stop.cancelled() => return,
        };
        let Waiting {
            request,
            cancelled,
            reply,
            _bytes,
        } = waiting;
        let started = connection.launch(request, cancelled, Some(permit), reply.is_some());
        match reply {
            Some(reply) => {
                let _ = reply.send(started);
            }
            None => {
                if let Started::Done(response, replied) = started {
                    if let Some(response) = response {
                        connection
                            .send(response.to_bytes_in(connection.dialect))
                            .await;
                    }
                    replied.mark();
                }
            }
        }
    }
}

impl Connection {
    async fn send(&self, bytes: Vec<u8>) {
        // An error means the writer is gone: the remote stopped reading.
        let _ = self.handle.shared.outgoing.send(Bytes::from(bytes)).await;
    }

    async fn peer_error(&self, error: ErrorObject) {
        let error = self.handler.peer_error(error);
        self.send(Response::error(Json::null(), error).to_bytes_in(self.dialect))
            .await;
    }

    async fn payload(self: &Arc<Self>, payload: &[u8]) {
        match message::parse_in(payload, self.dialect) {
            Parsed::Error(response) | Parsed::Single(Incoming::Invalid(response)) => {
                let response = self.shaped(response);
                self.send(response.to_bytes_in(self.dialect)).await;
            }
            Parsed::Single(Incoming::Response(response)) => self.response(response),
            Parsed::Single(Incoming::Request(request)) if request.method == CANCEL_METHOD => {
                self.cancel(&request);
                // Sent as a request by mistake: answered, so no one waits.
                if let Some(id) = request.id {
                    self.send(Response::ok(id, Json::null()).to_bytes_in(self.dialect))
                        .await;
                }
            }
            Parsed::Single(Incoming::Request(request)) => {
                if !self.handler.needs_slot(&request) {
                    let cancelled = self.register(&request);
                    if let Started::Done(response, replied) =
                        self.launch(request, cancelled, None, false)
                    {
                        if let Some(response) = response {
                            self.send(response.to_bytes_in(self.dialect)).await;
                        }
                        replied.mark();
                    }
                    return;
                }
                let Some(bytes) = self.reserve(payload.len()).await else {
                    return;
                };
                let cancelled = self.register(&request);
                let _ = self.waiting.send(Waiting {
                    request,
                    cancelled,
                    reply: None,
                    _bytes: Some(bytes),
                });
            }
            Parsed::Batch(items) => {
                // The batch's bytes count against the waiting budget until
                // every item has started; its items wait for places in
                // order, like requests sent one by one, while the reader
                // goes on reading.
                let Some(bytes) = self.reserve(payload.len()).await else {
                    return;
                };
                let mut slots = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Incoming::Request(request) if request.method == CANCEL_METHOD => {
                            self.cancel(&request);
                            if let Some(id) = request.id {
                                slots.push(Slot::Ready(Response::ok(id, Json::null())));
                            }
                        }
                        Incoming::Request(request) if !self.handler.needs_slot(&request) => {
                            let cancelled = self.register(&request);
                            slots.push(Slot::Started(self.launch(request, cancelled, None, true)));
                        }
                        Incoming::Request(request) => {
                            let cancelled = self.register(&request);
                            let (reply, started) = oneshot::channel();
                            let _ = self.waiting.send(Waiting {
                                request,
                                cancelled,
                                reply: Some(reply),
                                _bytes: None,
                            });
                            slots.push(Slot::Waiting(started));
                        }
                        Incoming::Invalid(response) => {
                            slots.push(Slot::Ready(self.shaped(response)))
                        }
                        Incoming::Response(response) => self.response(response),
                    }
                }
                let connection = Arc::clone(self);
                tokio::spawn(async move {
                    let mut replies = Vec::new();
                    let mut running = Vec::with_capacity(slots.len());
                    for slot in slots {
                        let started = match slot {
                            Slot::Ready(response) => {
                                running.push(Answer::Ready(response));
                                continue;
                            }
                            Slot::Started(started) => started,
                            Slot::Waiting(started) => match started.await {
                                Ok(started) => started,
                                // The peer stopped before it started.
                                Err(_) => continue,
                            },
                        };
                        match started {
                            Started::Done(response, replied) => {
                                running.extend(response.map(Answer::Ready));
                                replies.push(replied);
                            }
                            Started::Running(task, replied) => {
                                running.push(Answer::Running(task));
                                replies.push(replied);
                            }
                            Started::Spawned => {}
                        }
                    }
                    drop(bytes);
                    let mut answers = BatchAnswers::new(connection.dialect);
                    for answer in running {
                        match answer {
                            Answer::Ready(response) => answers.push(response),
                            Answer::Running(task) => {
                                if let Ok(Some(response)) = task.await {
                                    answers.push(response);
                                }
                            }
                        }
                    }
                    if let Some(bytes) = answers.finish() {
                        connection.send(bytes).await;
                    }
                    for replied in replies {
                        replied.mark();
                    }
                });
            }
        }
    }

    /// Takes `bytes` of the waiting budget, waiting (and so not reading)
    /// while it is spent. `None` when the peer stopped meanwhile.
    async fn reserve(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = (bytes >> 10).max(1) as u32;
        let budget = Arc::clone(&self.waiting_budget);
        let kib = kib.min(budget.available_permits().max(1) as u32).max(1);
        tokio::select! {
            permit = budget.acquire_many_owned(kib) => permit.ok(),
            () = self.stop.cancelled() => None,
        }
    }

    /// Makes a request cancellable by its id (notifications have none),
    /// before anything else happens to it.
    fn register(&self, request: &Request) -> CancellationToken {
        let cancelled = self.stop.child_token();
        if let Some(id) = &request.id {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.get().to_string(), cancelled.clone());
        }
        cancelled
    }

    fn shaped(&self, mut response: Response) -> Response {
        if let Err(error) = response.outcome {
            response.outcome = Err(self.handler.peer_error(error));
        }
        response
    }

    /// A response to one of our requests.
    fn response(&self, response: Response) {
        match response.id.as_u64() {
            Some(id) => self.handle.answer(id, response.outcome),
            // An error the remote could not tie to a request (it could not
            // read it) answers every request still waiting: one of them is
            // the one it could not read, and none must wait for ever.
            None if response.id.is_null() => {
                if let Err(error) = response.outcome {
                    self.handle.fail_all(Some(error));
                }
            }
            None => tracing::debug!(id = %response.id, "a response to no request of ours"),
        }
    }

    /// `$/cancelRequest {id}`: fires that request's token, if it runs.
    fn cancel(&self, request: &Request) {
        #[derive(serde::Deserialize)]
        struct Cancel {
            id: Json,
        }
        let Ok(cancel) = request.params_as::<Cancel>() else {
            return;
        };
        let token = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cancel.id.get())
            .cloned();
        if let Some(token) = token {
            token.cancel();
        }
    }

    /// Starts a request, with the in-flight place it holds (none for a
    /// request that needs none). A handler ready at once gives `Done` (the
    /// caller queues the answer, if any, then marks it replied); otherwise
    /// the request goes on in a task of its own, which queues its answer
    /// itself (`Spawned`) or, in a batch, hands it to the batch
    /// (`Running`).
    fn launch(
        self: &Arc<Self>,
        request: Request,
        cancelled: CancellationToken,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        in_batch: bool,
    ) -> Started {
        let id = request.id.clone();
        let key = id.as_ref().map(|id| id.get().to_string());
        let replied = Arc::new(Replied::default());
        let context = Context {
            peer: self.handle.clone(),
            cancelled,
            replied: Arc::clone(&replied),
        };
        let mut future = catch_panics(self.handler.handle(request, context));
        let finish = {
            let connection = Arc::clone(self);
            move |outcome: Result<Json, ErrorObject>| {
                if let Some(key) = &key {
                    connection
                        .in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(key);
                }
                id.map(|id| match outcome {
                    Ok(result) => Response::ok(id, result),
                    Err(error) => Response::error(id, error),
                })
            }
        };
        // Polled once here: a handler that answers from memory costs no
        // task and no hop between threads.
        let waker = futures_util::task::noop_waker();
        let mut poll_context = std::task::Context::from_waker(&waker);
        if let Poll::Ready(outcome) = future.as_mut().poll(&mut poll_context) {
            let response = finish(outcome);
            drop(permit);
            return Started::Done(response, replied);
        }
        let connection = Arc::clone(self);
        let answered = Arc::clone(&replied);
        let task = tokio::spawn(async move {
            let response = finish(future.await);
            drop(permit);
            if in_batch {
                return response;
            }
            if let Some(response) = response {
                connection
                    .send(response.to_bytes_in(connection.dialect))
                    .await;
            }
            answered.mark();
            None
        });
        if in_batch {
            Started::Running(task, replied)
        } else {
            Started::Spawned
        }
    }
}

/// What starting a request gave.
enum Started {
    /// Answered at once (`None` for a notification).
    Done(Option<Response>, Arc<Replied>),
    /// Running on its own task, which answers by itself.
    Spawned,
    /// A batch item running on its own task, which yields its answer.
    Running(tokio::task::JoinHandle<Option<Response>>, Arc<Replied>),
}

/// A handler's future with panics turned into an internal error: one bad
/// request must not take the connection down.
fn catch_panics(
    future: BoxFuture<'static, Result<Json, ErrorObject>>,
) -> Pin<Box<dyn Future<Output = Result<Json, ErrorObject>> + Send>> {
    use futures_util::FutureExt;
    Box::pin(
        std::panic::AssertUnwindSafe(future)
            .catch_unwind()
            .map(|outcome| {
                outcome.unwrap_or_else(|_| {
                    Err(ErrorObject::new(
                        INTERNAL_ERROR,
                        "internal error: the handler panicked",
                    ))
                })
            }),
    )
}

async fn write_loop<W>(
    mut writer: W,
    mut queue: mpsc::Receiver<Bytes>,
    framing: Arc<OnceLock<Framing>>,
    max_frame_bytes: usize,
    closing: CancellationToken,
) where
    W: AsyncWrite + Unpin,
{
    let mut codec: Option<FrameCodec> = None;
    let mut buffer = BytesMut::new();
    loop {
        let payload = tokio::select! {
            biased;
            payload = queue.recv() => payload,
            () = closing.cancelled() => queue.try_recv().ok(),
        };
        let Some(payload) = payload else { break };
        let codec = codec.get_or_insert_with(|| {
            FrameCodec::with_framing(*framing.get().unwrap_or(&Framing::Ndjson), max_frame_bytes)
        });
        let _ = codec.encode(payload, &mut buffer);
        // Coalesce what is already queued into one write.
        while buffer.len() < 256 << 10 {
            match queue.try_recv() {
                Ok(payload) => {
                    let _ = codec.encode(payload, &mut buffer);
                }
                Err(_) => break,
            }
        }
        if writer.write_all(&buffer).await.is_err() || writer.flush().await.is_err() {
            tracing::debug!("the remote stopped reading; closing the writer");
            return;
        }
        buffer.clear();
    }
    let _ = writer.shutdown().await;
}
