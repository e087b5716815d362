//! The daemon's transport loop for one connection, over any byte stream
//! (a Unix socket, stdio, an in-memory pipe in tests).
//!
//! # Shape
//!
//! A reader loop decodes frames ([`exo_rpc::FrameCodec`], which detects the
//! framing) and spawns one task per request, so a slow request never holds
//! up the next; a writer task owns the write half and encodes replies in the
//! detected framing. Between them is a bounded queue.
//!
//! # Bounds
//!
//! - At most [`MAX_IN_FLIGHT`] requests per connection, each item of a batch
//!   counting as one: past that the reader stops reading, and the client's
//!   own socket buffer pushes back. Other connections are unaffected.
//! - The outgoing queue holds [`OUTGOING_QUEUE`] messages. A watcher that
//!   does not read fills it, falls [`WATCH_BUFFER`](crate::hub::WATCH_BUFFER)
//!   commits behind, gets `events/lagged` and is dropped.
//!
//! # Watches
//!
//! `events/watch` replays stored events after the cursor page by page, then
//! reads the rest and subscribes in one step under the store's lock
//! ([`exo_store::Store::tail_and_subscribe`]); commits are published under
//! the same lock, so no event is missed or repeated across the switch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};
use exo_core::{ConversationId, EventId};
use exo_protocol::methods::*;
use exo_protocol::{ErrorCode, Method, Notification};
use exo_rpc::message::{self, Incoming, Json, Parsed, Request, Response};
use exo_rpc::{ErrorObject, Frame, FrameCodec, Framing};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio_util::codec::{Encoder, FramedRead};
use tokio_util::sync::CancellationToken;

use crate::convert::{self, simple_error, store_error};
use crate::hub::Published;
use crate::{ConnectionContext, Service};

/// Requests one connection may have running at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Messages queued for one connection's writer.
pub const OUTGOING_QUEUE: usize = 256;
/// Events per `events/appended` notification during a replay.
const REPLAY_PAGE: usize = 1000;

/// Methods that never touch the store, answered on the connection's own
/// task: each hop between threads costs more than these methods do.
const INLINE: &[&str] = &[
    Initialize::NAME,
    Ping::NAME,
    DaemonStatusMethod::NAME,
    TurnCancel::NAME,
    ApprovalRespond::NAME,
];

/// Methods without side effects: a cancel abandons them at once. A write
/// is cancelled only if it has not started; once started it finishes and
/// its real result is returned, so a cancel never half-applies anything.
const READ_ONLY: &[&str] = &[
    Initialize::NAME,
    Ping::NAME,
    DaemonStatusMethod::NAME,
    AgentListMethod::NAME,
    AgentGet::NAME,
    ConversationListMethod::NAME,
    ConversationGet::NAME,
    TurnGet::NAME,
    EventsList::NAME,
    EventsGet::NAME,
    ArtifactGet::NAME,
    ArtifactListMethod::NAME,
    SecretListMethod::NAME,
    SecretGet::NAME,
    ModelListMethod::NAME,
    ModelGet::NAME,
    BindingListMethod::NAME,
    BindingGet::NAME,
];

/// One connection's shared state.
struct Connection {
    service: Service,
    context: ConnectionContext,
    outgoing: mpsc::Sender<Bytes>,
    permits: Arc<Semaphore>,
    in_flight: Mutex<HashMap<String, CancellationToken>>,
    watches: Mutex<HashMap<u64, tokio::task::JoinHandle<()>>>,
    next_watch: AtomicU64,
    /// Fires when the peer can send nothing more (it closed the
    /// connection, or its bytes were unreadable): no answer to an approval
    /// question can come from it.
    peer_done: CancellationToken,
}

/// Serves one connection until the peer closes it, it sends unrecoverable
/// garbage, or the daemon shuts down. Requests already running are
/// finished and answered first.
pub async fn serve_connection<R, W>(service: Service, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    service.connection_opened();
    let framing = Arc::new(OnceLock::new());
    let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
    let writer_task = tokio::spawn(write_loop(writer, queue, Arc::clone(&framing)));
    let connection = Arc::new(Connection {
        service: service.clone(),
        context: ConnectionContext::default(),
        outgoing,
        permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        in_flight: Mutex::new(HashMap::new()),
        watches: Mutex::new(HashMap::new()),
        next_watch: AtomicU64::new(1),
        peer_done: CancellationToken::new(),
    });
    let mut frames = FramedRead::new(reader, FrameCodec::new(exo_rpc::DEFAULT_MAX_FRAME_BYTES));
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            () = service.shutdown_requested() => break,
        };
        let frame = match frame {
            None => {
                connection.peer_done.cancel();
                break;
            }
            Some(Err(err)) => {
                tracing::debug!(%err, "connection read failed");
                connection.peer_done.cancel();
                break;
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(detected) = frames.decoder().framing() {
            let _ = framing.set(detected);
        }
        match frame {
            Frame::Message(payload) => connection.handle_payload(&payload).await,
            Frame::TooLarge { bytes } => {
                let error = simple_error(
                    ErrorCode::InvalidRequest,
                    format!(
                        "request of {bytes} bytes is larger than the {} MiB limit",
                        exo_rpc::DEFAULT_MAX_FRAME_BYTES >> 20
                    ),
                );
                connection
                    .respond(&Response::error(Json::null(), error))
                    .await;
            }
            Frame::Malformed(reason) => {
                let error =
                    simple_error(ErrorCode::ParseError, format!("malformed frame: {reason}"));
                connection
                    .respond(&Response::error(Json::null(), error))
                    .await;
                connection.peer_done.cancel();
                break;
            }
        }
    }
    // Let running requests finish and be answered, then close what this
    // connection owned.
    let _ = connection.permits.acquire_many(MAX_IN_FLIGHT as u32).await;
    let watches: Vec<_> = connection
        .watches
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .map(|(_, w)| w)
        .collect();
    for watch in watches {
        watch.abort();
        // Awaited, so that no stream task outlives its connection.
        let _ = watch.await;
    }
    let closer = Arc::clone(&connection);
    let _ =
        tokio::task::spawn_blocking(move || closer.service.interrupt_turns(&closer.context)).await;
    drop(connection);
    let _ = writer_task.await;
    service.connection_closed();
}

async fn write_loop<W>(
    mut writer: W,
    mut queue: mpsc::Receiver<Bytes>,
    framing: Arc<OnceLock<Framing>>,
) where
    W: AsyncWrite + Unpin,
{
    let mut codec: Option<FrameCodec> = None;
    let mut buffer = BytesMut::new();
    while let Some(payload) = queue.recv().await {
        let codec = codec.get_or_insert_with(|| {
            FrameCodec::with_framing(
                *framing.get().unwrap_or(&Framing::Ndjson),
                exo_rpc::DEFAULT_MAX_FRAME_BYTES,
            )
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
            tracing::debug!("peer stopped reading; closing the writer");
            return;
        }
        buffer.clear();
    }
    let _ = writer.shutdown().await;
}

/// A reply waiting to be sent, and what to do once it is queued.
struct Reply {
    response: Option<Response>,
    /// Starts a watch's stream after its reply is queued.
    then: Option<oneshot::Sender<()>>,
}

/// One item of a batch: answered already, or running.
enum Slot {
    Ready(Response),
    Running {
        task: tokio::task::JoinHandle<Reply>,
        notification: bool,
    },
}

impl Connection {
    async fn send(&self, message: Value) {
        match serde_json::to_vec(&message) {
            Ok(bytes) => self.send_bytes(bytes).await,
            Err(err) => tracing::error!(%err, "could not serialize a message"),
        }
    }

    async fn send_bytes(&self, bytes: Vec<u8>) {
        // An error means the writer is gone: the peer left.
        let _ = self.outgoing.send(Bytes::from(bytes)).await;
    }

    async fn respond(&self, response: &Response) {
        self.send_bytes(response.to_bytes()).await;
    }

    /// Answers a store-free method right here: no task, no thread hop.
    fn inline(&self, request: &Request) -> Response {
        let id = request.id.clone().unwrap_or_else(Json::null);
        match self
            .service
            .dispatch(&self.context, &request.method, request.params.as_ref())
        {
            Ok(result) => Response::ok(id, result),
            Err(error) => Response::error(id, error),
        }
    }

    /// Starts a request on a task of its own, once one of the connection's
    /// in-flight permits is free.
    async fn start(self: &Arc<Self>, request: Request) -> tokio::task::JoinHandle<Reply> {
        // Registered before the task starts, so a cancel sent right behind
        // the request finds it.
        let token = self.register(&request);
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let connection = Arc::clone(self);
        tokio::spawn(async move {
            let reply = connection.handle_request(request, token).await;
            drop(permit);
            reply
        })
    }

    async fn handle_payload(self: &Arc<Self>, payload: &[u8]) {
        match message::parse(payload) {
            Parsed::Error(response) | Parsed::Single(Incoming::Invalid(response)) => {
                self.respond(&with_error_data(response)).await;
            }
            Parsed::Single(Incoming::Response(response)) => {
                tracing::debug!(id = %response.id, "ignoring a response from the client");
            }
            Parsed::Single(Incoming::Request(request)) if request.method == CancelRequest::NAME => {
                self.cancel(&request);
            }
            Parsed::Single(Incoming::Request(request))
                if !request.is_notification() && INLINE.contains(&request.method.as_str()) =>
            {
                self.respond(&self.inline(&request)).await;
            }
            Parsed::Single(Incoming::Request(request)) => {
                let notification = request.is_notification();
                let task = self.start(request).await;
                let connection = Arc::clone(self);
                tokio::spawn(async move {
                    let Ok(reply) = task.await else { return };
                    // A notification is carried out, but never answered.
                    if let (Some(response), false) = (&reply.response, notification) {
                        connection.respond(response).await;
                    }
                    if let Some(start) = reply.then {
                        let _ = start.send(());
                    }
                });
            }
            Parsed::Batch(items) => {
                // Each item is a request like any other: it takes one of
                // the connection's in-flight permits (a batch cannot get
                // past the limit) and runs on its own; the answers go back
                // as one array, in the items' order.
                let mut slots = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Incoming::Request(request) if request.method == CancelRequest::NAME => {
                            self.cancel(&request);
                        }
                        Incoming::Request(request)
                            if !request.is_notification()
                                && INLINE.contains(&request.method.as_str()) =>
                        {
                            slots.push(Slot::Ready(self.inline(&request)));
                        }
                        Incoming::Request(request) => {
                            let notification = request.is_notification();
                            let task = self.start(request).await;
                            slots.push(Slot::Running { task, notification });
                        }
                        Incoming::Invalid(response) => {
                            slots.push(Slot::Ready(with_error_data(response)))
                        }
                        Incoming::Response(_) => {}
                    }
                }
                let connection = Arc::clone(self);
                tokio::spawn(async move {
                    let mut responses = Vec::with_capacity(slots.len());
                    let mut starts = Vec::new();
                    for slot in slots {
                        match slot {
                            Slot::Ready(response) => responses.push(response),
                            Slot::Running { task, notification } => {
                                let Ok(reply) = task.await else { continue };
                                if !notification {
                                    responses.extend(reply.response);
                                }
                                starts.extend(reply.then);
                            }
                        }
                    }
                    if !responses.is_empty() {
                        connection
                            .send_bytes(Response::batch_to_bytes(&responses))
                            .await;
                    }
                    for start in starts {
                        let _ = start.send(());
                    }
                });
            }
        }
    }

    /// `$/cancelRequest {id}`: cancels that request if it is still running.
    fn cancel(&self, request: &Request) {
        #[derive(serde::Deserialize)]
        struct Cancel {
            id: Json,
        }
        let id = request
            .params_as::<Cancel>()
            .ok()
            .map(|cancel| cancel.id.get().to_string());
        let token = id.and_then(|id| {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned()
        });
        if let Some(token) = token {
            token.cancel();
        }
    }

    /// Makes a request cancellable by its id (notifications have none).
    fn register(&self, request: &Request) -> CancellationToken {
        let token = CancellationToken::new();
        if let Some(id) = &request.id {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.get().to_string(), token.clone());
        }
        token
    }

    async fn handle_request(self: &Arc<Self>, request: Request, token: CancellationToken) -> Reply {
        let id = request.id.clone().unwrap_or_else(Json::null);
        let key = request.id.as_ref().map(|id| id.get().to_string());
        let mut then = None;
        let outcome = match request.method.as_str() {
            EventsWatch::NAME => match self.watch(request.params.as_ref()).await {
                Ok((result, start)) => {
                    then = Some(start);
                    Ok(result)
                }
                Err(err) => Err(err),
            },
            EventsUnwatch::NAME => self.unwatch(request.params.as_ref()),
            TurnRun::NAME => self.turn_run(request.params.as_ref(), &token).await,
            DaemonStop::NAME => {
                tracing::info!("daemon/stop requested");
                self.service.request_shutdown();
                Ok(Json::from_value(&json!({})))
            }
            _ => self.run_blocking(request, &token).await,
        };
        if let Some(key) = key {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
        let response = match outcome {
            Ok(result) => Response::ok(id, result),
            Err(error) => Response::error(id, error),
        };
        Reply {
            response: Some(response),
            then,
        }
    }

    async fn run_blocking(
        self: &Arc<Self>,
        request: Request,
        token: &CancellationToken,
    ) -> Result<Json, ErrorObject> {
        let read_only = READ_ONLY.contains(&request.method.as_str());
        let connection = Arc::clone(self);
        let started = token.clone();
        let mut work = tokio::task::spawn_blocking(move || {
            if started.is_cancelled() {
                return Err(cancelled());
            }
            // One bad request must not take the daemon down; a panic here
            // rolled back its transaction when the transaction dropped.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                connection.service.dispatch(
                    &connection.context,
                    &request.method,
                    request.params.as_ref(),
                )
            }))
            .unwrap_or_else(|_| {
                Err(simple_error(
                    ErrorCode::Internal,
                    "internal error: the handler panicked",
                ))
            })
        });
        let joined = if read_only {
            tokio::select! {
                joined = &mut work => joined,
                () = token.cancelled() => return Err(cancelled()),
            }
        } else {
            work.await
        };
        joined.unwrap_or_else(|err| {
            Err(simple_error(
                ErrorCode::Internal,
                format!("internal error: {err}"),
            ))
        })
    }

    /// `turn/run`: runs the turn on this task, forwarding its
    /// notifications in order; the reply is sent after the last of them.
    async fn turn_run(
        self: &Arc<Self>,
        params: Option<&Json>,
        token: &CancellationToken,
    ) -> Result<Json, ErrorObject> {
        let params: TurnRunParams = crate::handlers::parse_as(TurnRun::NAME, params)?;
        let (notify, mut notifications) = mpsc::unbounded_channel::<Value>();
        // A client that has stopped sending cannot answer approvals, even
        // if it still reads; on shutdown the turn is cancelled instead.
        let gone = self.peer_done.child_token();
        let connection = Arc::clone(self);
        let reachable = gone.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = notifications.recv() => match message {
                        Some(message) => connection.send(message).await,
                        None => return,
                    },
                    () = connection.outgoing.closed() => {
                        // No one left to tell: approvals waiting on this
                        // client are denied rather than waited for. The
                        // turn itself goes on; it is the daemon's.
                        reachable.cancel();
                        while notifications.recv().await.is_some() {}
                        return;
                    }
                }
            }
        });
        let result = self
            .service
            .run_turn(params, notify, gone, token.clone())
            .await;
        let _ = forwarder.await;
        result
    }

    fn unwatch(&self, params: Option<&Json>) -> Result<Json, ErrorObject> {
        let params: UnwatchParams = crate::handlers::parse_as(EventsUnwatch::NAME, params)?;
        match self
            .watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&params.watch)
        {
            Some(watch) => {
                watch.abort();
                Ok(Json::from_value(&json!({})))
            }
            None => Err(convert::rpc_error(
                ErrorCode::NotFound,
                format!("watch {} not found", params.watch),
                exo_protocol::ErrorData {
                    what: Some("watch".into()),
                    key: Some(params.watch.to_string()),
                    ..Default::default()
                },
            )),
        }
    }

    /// Starts a watch: checks its params, and spawns the stream, which
    /// waits for the reply to be queued before sending anything.
    async fn watch(
        self: &Arc<Self>,
        params: Option<&Json>,
    ) -> Result<(Json, oneshot::Sender<()>), ErrorObject> {
        let params: EventsWatchParams = crate::handlers::parse_as(EventsWatch::NAME, params)?;
        let service = self.service.clone();
        let checked = params.clone();
        let conversation = tokio::task::spawn_blocking(move || {
            let conversation = service
                .store()
                .conversation(&checked.agent, &checked.conversation)?;
            if let Some(after) = checked.after {
                // Fails with not_found unless the cursor is on the current
                // history: an event on an abandoned branch cannot be
                // replayed from.
                let probe = exo_store::EventQuery {
                    after: Some(after),
                    limit: 1,
                    ..Default::default()
                };
                service
                    .store()
                    .events(&checked.agent, &checked.conversation, &probe)?;
            }
            Ok::<_, exo_store::Error>(conversation)
        })
        .await
        .map_err(|err| simple_error(ErrorCode::Internal, err.to_string()))?
        .map_err(store_error)?;
        let watch = self.next_watch.fetch_add(1, Ordering::Relaxed);
        let (start, started) = oneshot::channel();
        let connection = Arc::clone(self);
        let stream = tokio::spawn(async move {
            if started.await.is_ok() {
                connection
                    .stream(
                        watch,
                        conversation.agent.to_string(),
                        conversation.id,
                        params.after,
                    )
                    .await;
            }
            connection
                .watches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&watch);
        });
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(watch, stream);
        let result = WatchResult {
            watch,
            conversation: conversation.id.to_string(),
        };
        Ok((crate::handlers::reply(result)?, start))
    }

    async fn notify_appended(
        &self,
        watch: u64,
        conversation: ConversationId,
        events: &[exo_core::Event],
    ) {
        let params = EventsAppended {
            watch,
            conversation: conversation.to_string(),
            events: convert::events(events),
        };
        self.send(message::notification(
            EventsAppendedNotification::NAME,
            serde_json::to_value(params).expect("serializes"),
        ))
        .await;
    }

    async fn stream(
        &self,
        watch: u64,
        agent: String,
        conversation: ConversationId,
        after: Option<EventId>,
    ) {
        let store = self.service.store().clone();
        let mut cursor = after;
        // Replay what is stored, a page at a time, without holding the store.
        loop {
            let (store_page, agent_key, cursor_now) = (store.clone(), agent.clone(), cursor);
            let page = tokio::task::spawn_blocking(move || {
                let query = exo_store::EventQuery {
                    after: cursor_now,
                    limit: REPLAY_PAGE,
                    ..Default::default()
                };
                store_page.events(&agent_key, &conversation.to_string(), &query)
            })
            .await;
            let page = match page {
                Ok(Ok(page)) => page,
                _ => return self.lagged(watch, conversation, cursor).await,
            };
            if let Some(last) = page.events.last() {
                cursor = Some(last.id);
                self.notify_appended(watch, conversation, &page.events)
                    .await;
            }
            if page.next_cursor.is_none() {
                break;
            }
        }
        // Read the rest and subscribe with no commit in between.
        let hub = Arc::clone(&self.service.inner.hub);
        let cursor_now = cursor;
        let switched = tokio::task::spawn_blocking(move || {
            store.tail_and_subscribe(conversation, cursor_now, || hub.subscribe(conversation))
        })
        .await;
        let (tail, mut receiver) = match switched {
            Ok(Ok(switched)) => switched,
            _ => return self.lagged(watch, conversation, cursor).await,
        };
        for chunk in tail.chunks(REPLAY_PAGE) {
            cursor = chunk.last().map(|event| event.id);
            self.notify_appended(watch, conversation, chunk).await;
        }
        loop {
            match receiver.recv().await {
                Ok(Published::Events(batch)) => {
                    // A large commit goes out in pages, as a replay does:
                    // no notification grows with the batch.
                    for chunk in batch.chunks(REPLAY_PAGE) {
                        cursor = chunk.last().map(|event| event.id).or(cursor);
                        self.notify_appended(watch, conversation, chunk).await;
                    }
                }
                Ok(Published::Delta(delta)) => {
                    let mut params = TurnDelta::clone(&delta);
                    params.watch = Some(watch);
                    self.send(message::notification(
                        TurnDeltaNotification::NAME,
                        serde_json::to_value(params).expect("serializes"),
                    ))
                    .await;
                }
                Ok(Published::Approval(request)) => {
                    let mut params = ApprovalRequest::clone(&request);
                    params.watch = Some(watch);
                    self.send(message::notification(
                        ApprovalRequestNotification::NAME,
                        serde_json::to_value(params).expect("serializes"),
                    ))
                    .await;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(watch, missed, "watcher fell behind");
                    return self.lagged(watch, conversation, cursor).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn lagged(&self, watch: u64, conversation: ConversationId, cursor: Option<EventId>) {
        let params = EventsLagged {
            watch,
            conversation: conversation.to_string(),
            cursor,
        };
        self.send(message::notification(
            EventsLaggedNotification::NAME,
            serde_json::to_value(params).expect("serializes"),
        ))
        .await;
    }
}

/// Gives the framing layer's errors the same `data.code` as exo's own.
fn with_error_data(mut response: Response) -> Response {
    if let Err(error) = &mut response.outcome {
        if error.data.is_none() {
            if let Some(code) = ErrorCode::from_code(error.code) {
                error.data = Some(json!({ "code": code.name() }));
            }
        }
    }
    response
}

fn cancelled() -> ErrorObject {
    simple_error(ErrorCode::RequestCancelled, "request cancelled")
}
