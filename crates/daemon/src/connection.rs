//! One client's connection to the service, over any byte stream (a Unix
//! socket, stdio, an in-memory pipe): a [`exo_rpc::peer::Peer`] whose
//! [`Handler`] is this module's `Connection`.
//!
//! # What runs where
//!
//! - Methods that never touch the store (`MethodInfo::inline`) are
//!   answered where they arrive: each hop between threads costs more than
//!   they do.
//! - Every other call runs on tokio's blocking pool (the store is
//!   synchronous). A cancel abandons a read at once; a write is cancelled
//!   only if it has not started, and once started it finishes and its
//!   real result is returned, so a cancel never half-applies anything.
//! - `turn/run` runs on the connection's task, forwarding the turn's
//!   notices as notifications before its answer; `events/watch` answers,
//!   then streams.
//!
//! The bounds (requests in flight, batches, the frame limit, the outgoing
//! queue) are the peer's.
//!
//! # Watches
//!
//! `events/watch` replays stored events after the cursor page by page, then
//! reads the rest and subscribes in one step under the store's lock
//! ([`exo_store::Store::tail_and_subscribe`]); commits are published under
//! the same lock, so no event is missed or repeated across the switch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use exo_core::{ConversationId, EventId};
use exo_protocol::methods::*;
use exo_protocol::{ErrorCode, Method, Notification};
use exo_rpc::message::{ErrorObject, Json, Request};
use exo_rpc::peer::{Context, Handler, Options, Peer, PeerHandle};
use exo_service::hub::Published;
use exo_service::{ClientContext, Service, ServiceError, TurnNotice};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::face;

/// Requests one connection may have running at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Messages queued for one connection's writer.
pub const OUTGOING_QUEUE: usize = 256;
/// Events per `events/appended` notification.
const REPLAY_PAGE: usize = 1000;

type Watches = Arc<Mutex<HashMap<u64, tokio::task::JoinHandle<()>>>>;

/// One connection's state.
struct Connection {
    service: Service,
    client: Arc<ClientContext>,
    /// Watches streaming on this connection, by id.
    watches: Watches,
    next_watch: AtomicU64,
}

/// Serves one connection until the peer closes it, it sends unrecoverable
/// garbage, or the service shuts down. Requests already running are
/// finished and answered first.
pub async fn serve_connection<R, W>(service: Service, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    service.connection_opened();
    let connection = Arc::new(Connection {
        service: service.clone(),
        client: Arc::new(ClientContext::default()),
        watches: Watches::default(),
        next_watch: AtomicU64::new(1),
    });
    let options = Options {
        max_in_flight: MAX_IN_FLIGHT,
        outgoing_queue: OUTGOING_QUEUE,
        ..Options::default()
    };
    let peer = Peer::spawn(reader, writer, connection, options);
    let handle = peer.handle();
    tokio::select! {
        () = service.shutdown_requested() => peer.stop(),
        () = handle.input_closed() => {}
    }
    peer.join().await;
    service.connection_closed();
}

fn ready(outcome: Result<Json, ServiceError>) -> BoxFuture<'static, Result<Json, ErrorObject>> {
    let outcome = outcome.map_err(|error| face::to_rpc(&error));
    Box::pin(async move { outcome })
}

impl Handler for Connection {
    fn handle(
        &self,
        request: Request,
        context: Context,
    ) -> BoxFuture<'static, Result<Json, ErrorObject>> {
        let info = method_info(&request.method);
        if info.is_some_and(|info| info.inline) {
            // Answered right here: no store, no task, no thread hop.
            return ready(face::call(
                &self.service,
                &self.client,
                &request.method,
                request.params.as_ref(),
            ));
        }
        let service = self.service.clone();
        let client = Arc::clone(&self.client);
        match request.method.as_str() {
            EventsWatch::NAME => {
                let watch = self.next_watch.fetch_add(1, Ordering::Relaxed);
                let watches = Arc::clone(&self.watches);
                Box::pin(async move {
                    watch_start(service, watches, watch, request.params, context)
                        .await
                        .map_err(|error| face::to_rpc(&error))
                })
            }
            EventsUnwatch::NAME => ready(unwatch(&self.watches, request.params.as_ref())),
            TurnRun::NAME => Box::pin(async move {
                turn_run(service, request.params, context)
                    .await
                    .map_err(|error| face::to_rpc(&error))
            }),
            DaemonStop::NAME => {
                tracing::info!("daemon/stop requested");
                service.request_shutdown();
                ready(face::reply(&Empty {}))
            }
            _ => {
                let read_only = info.is_some_and(|info| info.read_only);
                Box::pin(async move {
                    run_blocking(service, client, request, context.cancelled, read_only)
                        .await
                        .map_err(|error| face::to_rpc(&error))
                })
            }
        }
    }

    fn needs_slot(&self, request: &Request) -> bool {
        // Store-free methods (`approval/respond`, `turn/cancel`, `ping`)
        // are answered at once even when every place is taken: a turn
        // waiting for an approval must be able to get it on the very
        // connection that runs it.
        !method_info(&request.method).is_some_and(|info| info.inline)
    }

    fn peer_error(&self, error: ErrorObject) -> ErrorObject {
        face::shape_peer_error(error)
    }

    fn closed(&self) -> BoxFuture<'static, ()> {
        let watches: Vec<_> = self
            .watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, watch)| watch)
            .collect();
        let service = self.service.clone();
        let client = Arc::clone(&self.client);
        Box::pin(async move {
            for watch in watches {
                watch.abort();
                // Awaited, so that no stream task outlives its connection.
                let _ = watch.await;
            }
            // Turns this connection began with `turn/begin` and left open.
            let _ = tokio::task::spawn_blocking(move || service.interrupt_turns(&client)).await;
        })
    }
}

/// A call on the blocking pool. A cancel abandons a read at once, and a
/// write only before it starts.
async fn run_blocking(
    service: Service,
    client: Arc<ClientContext>,
    request: Request,
    cancelled: CancellationToken,
    read_only: bool,
) -> Result<Json, ServiceError> {
    let started = cancelled.clone();
    let mut work = tokio::task::spawn_blocking(move || {
        if started.is_cancelled() {
            return Err(request_cancelled());
        }
        face::call(&service, &client, &request.method, request.params.as_ref())
    });
    let joined = if read_only {
        tokio::select! {
            joined = &mut work => joined,
            () = cancelled.cancelled() => return Err(request_cancelled()),
        }
    } else {
        work.await
    };
    joined.unwrap_or_else(|err| {
        Err(ServiceError::internal(if err.is_panic() {
            "internal error: the handler panicked".to_string()
        } else {
            format!("internal error: {err}")
        }))
    })
}

fn request_cancelled() -> ServiceError {
    ServiceError::new(ErrorCode::RequestCancelled, "request cancelled")
}

/// `turn/run`: runs the turn on this task, forwarding its notices as
/// notifications; the answer is sent after the last of them.
async fn turn_run(
    service: Service,
    params: Option<Json>,
    context: Context,
) -> Result<Json, ServiceError> {
    let params: TurnRunParams = face::parse(TurnRun::NAME, params.as_ref())?;
    let (notify, mut notices) = mpsc::unbounded_channel::<TurnNotice>();
    // A client that has stopped sending cannot answer approvals, even if
    // it still reads; on shutdown the turn is cancelled instead.
    let gone = context.peer.input_closed_token().child_token();
    let reachable = gone.clone();
    let peer = context.peer.clone();
    let forwarder = tokio::spawn(async move {
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Some(notice) => {
                        if send_notice(&peer, notice, None).await.is_err() {
                            reachable.cancel();
                        }
                    }
                    None => return,
                },
                () = peer.output_closed() => {
                    // No one left to tell: approvals waiting on this client
                    // are denied rather than waited for. The turn itself
                    // goes on; it is the service's.
                    reachable.cancel();
                    while notices.recv().await.is_some() {}
                    return;
                }
            }
        }
    });
    let result = service
        .run_turn(params, notify, gone, context.cancelled.clone())
        .await;
    let _ = forwarder.await;
    face::reply(&result?)
}

/// A turn's notice as its notification (`watch` set for a watcher's copy).
async fn send_notice(
    peer: &PeerHandle,
    notice: TurnNotice,
    watch: Option<u64>,
) -> Result<(), exo_rpc::peer::RequestError> {
    match notice {
        TurnNotice::Delta(mut delta) => {
            delta.watch = watch;
            peer.notify_as(TurnDeltaNotification::NAME, &delta).await
        }
        TurnNotice::Events(events) => peer.notify_as(TurnEventsNotification::NAME, &events).await,
        TurnNotice::Approval(mut request) => {
            request.watch = watch;
            peer.notify_as(ApprovalRequestNotification::NAME, &request)
                .await
        }
    }
}

fn unwatch(watches: &Watches, params: Option<&Json>) -> Result<Json, ServiceError> {
    let params: UnwatchParams = face::parse(EventsUnwatch::NAME, params)?;
    let removed = watches
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&params.watch);
    match removed {
        Some(watch) => {
            watch.abort();
            face::reply(&Empty {})
        }
        None => Err(ServiceError::not_found(
            "watch",
            params.watch.to_string(),
            format!("watch {} not found", params.watch),
        )),
    }
}

/// Starts a watch: checks its params, and spawns the stream, which waits
/// for the answer to be queued before sending anything.
async fn watch_start(
    service: Service,
    watches: Watches,
    watch: u64,
    params: Option<Json>,
    context: Context,
) -> Result<Json, ServiceError> {
    let params: EventsWatchParams = face::parse(EventsWatch::NAME, params.as_ref())?;
    let checked = params.clone();
    let store = service.store().clone();
    let conversation = tokio::task::spawn_blocking(move || {
        let conversation = store.conversation(&checked.agent, &checked.conversation)?;
        if let Some(after) = checked.after {
            // Fails with not_found unless the cursor is on the current
            // history: an event on an abandoned branch cannot be replayed
            // from.
            let probe = exo_store::EventQuery {
                after: Some(after),
                limit: 1,
                ..Default::default()
            };
            store.events(&checked.agent, &checked.conversation, &probe)?;
        }
        Ok::<_, exo_store::Error>(conversation)
    })
    .await
    .map_err(|err| ServiceError::internal(err.to_string()))??;
    let stream = {
        let watches = Arc::clone(&watches);
        let peer = context.peer.clone();
        let agent = conversation.agent.to_string();
        let id = conversation.id;
        tokio::spawn(async move {
            context.after_reply().await;
            Stream {
                service,
                peer,
                watch,
            }
            .run(agent, id, params.after)
            .await;
            watches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&watch);
        })
    };
    watches
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(watch, stream);
    face::reply(&WatchResult {
        watch,
        conversation: conversation.id.to_string(),
    })
}

/// One watch's stream of notifications.
struct Stream {
    service: Service,
    peer: PeerHandle,
    watch: u64,
}

impl Stream {
    async fn appended(&self, conversation: ConversationId, events: &[exo_core::Event]) {
        let params = EventsAppended {
            watch: self.watch,
            conversation: conversation.to_string(),
            events: events.iter().map(exo_protocol::Event::from).collect(),
        };
        let _ = self
            .peer
            .notify_as(EventsAppendedNotification::NAME, &params)
            .await;
    }

    async fn lagged(&self, conversation: ConversationId, cursor: Option<EventId>) {
        let params = EventsLagged {
            watch: self.watch,
            conversation: conversation.to_string(),
            cursor,
        };
        let _ = self
            .peer
            .notify_as(EventsLaggedNotification::NAME, &params)
            .await;
    }

    async fn run(&self, agent: String, conversation: ConversationId, after: Option<EventId>) {
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
                _ => return self.lagged(conversation, cursor).await,
            };
            if let Some(last) = page.events.last() {
                cursor = Some(last.id);
                self.appended(conversation, &page.events).await;
            }
            if page.next_cursor.is_none() {
                break;
            }
        }
        // Read the rest and subscribe with no commit in between.
        let hub = Arc::clone(self.service.hub());
        let cursor_now = cursor;
        let switched = tokio::task::spawn_blocking(move || {
            store.tail_and_subscribe(conversation, cursor_now, || hub.subscribe(conversation))
        })
        .await;
        let (tail, mut receiver) = match switched {
            Ok(Ok(switched)) => switched,
            _ => return self.lagged(conversation, cursor).await,
        };
        for chunk in tail.chunks(REPLAY_PAGE) {
            cursor = chunk.last().map(|event| event.id);
            self.appended(conversation, chunk).await;
        }
        loop {
            match receiver.recv().await {
                Ok(Published::Events(batch)) => {
                    // A large commit goes out in pages, as a replay does: no
                    // notification grows with the batch.
                    for chunk in batch.chunks(REPLAY_PAGE) {
                        cursor = chunk.last().map(|event| event.id).or(cursor);
                        self.appended(conversation, chunk).await;
                    }
                }
                Ok(Published::Delta(delta)) => {
                    let notice = TurnNotice::Delta(TurnDelta::clone(&delta));
                    let _ = send_notice(&self.peer, notice, Some(self.watch)).await;
                }
                Ok(Published::Approval(request)) => {
                    let notice = TurnNotice::Approval(ApprovalRequest::clone(&request));
                    let _ = send_notice(&self.peer, notice, Some(self.watch)).await;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(watch = self.watch, missed, "watcher fell behind");
                    return self.lagged(conversation, cursor).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
