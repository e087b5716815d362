//! The model gateway: a local HTTP server through which agent CLIs reach
//! their model without ever holding its key (spec/gateway.md).
//!
//! A client presents a token the gateway minted for one conversation; the
//! gateway asks its [`Upstreams`] (the service) which model that
//! conversation uses now and with which key, rewrites the request's
//! `model`, forwards it with the real key, streams the answer back chunk by
//! chunk as it arrives, and hands the whole exchange to [`Upstreams::record`]
//! when it ends. Tokens live only in this process's memory.
//!
//! **Architecture Invariant:** the key goes upstream and nowhere else: it
//! is never in a response's headers, never in an error the gateway writes,
//! scrubbed from upstream error bodies before they are passed on and from
//! every recorded body.

mod api;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use exo_model::ApiKey;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use api::{usage_of, Api, ErrorKind, Usage};

/// The largest request body forwarded.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;
/// The most of an upstream error body read (and passed on, scrubbed).
const MAX_ERROR_BYTES: usize = 1 << 20;
/// The most of a response kept for the record.
pub const MAX_RECORDED_BYTES: usize = 32 << 20;
/// What a token starts with.
pub const TOKEN_PREFIX: &str = "exo-gw-";

/// What a token grants: one conversation's model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The agent's id.
    pub agent: String,
    /// The conversation's id.
    pub conversation: String,
}

/// Where a conversation's requests go now.
pub struct Upstream {
    /// The API the binding speaks.
    pub api: Api,
    /// The binding's base URL.
    pub base_url: String,
    /// The model's name upstream.
    pub model: String,
    /// The key, when the binding has one.
    pub key: Option<ApiKey>,
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with success, and the whole answer was passed
    /// on.
    Completed,
    /// The upstream answered with an error status.
    Error,
    /// The client went away before the answer ended.
    ClientClosed,
    /// The upstream could not be reached, or its answer broke off.
    UpstreamFailed,
}

impl Outcome {
    /// The name recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Error => "error",
            Outcome::ClientClosed => "client_closed",
            Outcome::UpstreamFailed => "upstream_failed",
        }
    }
}

/// One request and its answer, for the record. Bodies hold no key.
#[derive(Debug)]
pub struct Exchange {
    /// Unique, time-ordered.
    pub id: String,
    /// The API the client spoke.
    pub api: Api,
    /// What the client asked for.
    pub model: Option<String>,
    /// What was asked of the upstream.
    pub upstream_model: String,
    /// The upstream's status; none when it could not be reached.
    pub status: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// Tokens used, as the answer said.
    pub usage: Usage,
    /// Until the first byte of the answer's body reached the gateway.
    pub ttfb: Option<Duration>,
    /// Until the answer ended.
    pub duration: Duration,
    /// The body as forwarded.
    pub request: Bytes,
    /// The body as received (its first [`MAX_RECORDED_BYTES`]).
    pub response: Bytes,
    /// Whether `response` is cut short.
    pub truncated: bool,
}

/// What the gateway needs of exo: a conversation's model, and a place for
/// its exchanges.
pub trait Upstreams: Send + Sync + 'static {
    /// Where `grant`'s requests go now, or why they cannot go anywhere.
    fn resolve(&self, grant: &Grant) -> BoxFuture<'static, Result<Upstream, String>>;
    /// Records an exchange in `grant`'s conversation.
    fn record(&self, grant: &Grant, exchange: Exchange) -> BoxFuture<'static, ()>;
}

/// A running gateway. Dropping the last handle does not stop it;
/// [`Gateway::shutdown`] does.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    tokens: Mutex<HashMap<String, Grant>>,
    /// Exchanges under way (not yet recorded), by token.
    in_flight: Mutex<HashMap<String, usize>>,
    settled: std::sync::Condvar,
    upstreams: Arc<dyn Upstreams>,
    client: reqwest::Client,
    stop: CancellationToken,
}

/// Failures of the gateway itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listening socket.
    #[error("starting the model gateway: {0}")]
    Listen(#[source] std::io::Error),
    /// The HTTP client.
    #[error("starting the model gateway's client: {0}")]
    Client(#[source] reqwest::Error),
    /// Random bytes for a token.
    #[error("minting a gateway token: {0}")]
    Random(String),
}

impl Gateway {
    /// Starts a gateway on `127.0.0.1`, an ephemeral port, served on the
    /// runtime `runtime` names (callable from any thread).
    pub fn start(
        runtime: &tokio::runtime::Handle,
        upstreams: Arc<dyn Upstreams>,
    ) -> Result<Gateway, GatewayError> {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(GatewayError::Listen)?;
        listener
            .set_nonblocking(true)
            .map_err(GatewayError::Listen)?;
        let addr = listener.local_addr().map_err(GatewayError::Listen)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(GatewayError::Listen)?
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(600))
            .build()
            .map_err(GatewayError::Client)?;
        let inner = Arc::new(Inner {
            addr,
            tokens: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            settled: std::sync::Condvar::new(),
            upstreams,
            client,
            stop: CancellationToken::new(),
        });
        let route = |api: Api| {
            post(
                move |State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Body| {
                    handle(inner, api, uri, headers, body)
                },
            )
        };
        let router = Router::new()
            .route("/v1/responses", route(Api::Responses))
            .route("/v1/chat/completions", route(Api::ChatCompletions))
            .route("/v1/messages", route(Api::Messages))
            .fallback(|uri: Uri| async move {
                let body = serde_json::json!({ "error": { "message": format!("no model API at {}", uri.path()), "type": "invalid_request_error", "param": null, "code": "not_found" } });
                json_response(StatusCode::NOT_FOUND, &body)
            })
            .with_state(Arc::clone(&inner));
        let stop = inner.stop.clone();
        runtime.spawn(async move {
            // Each event goes out as it comes: no Nagle delay on the
            // client's socket (it would hold a small chunk back ~40 ms).
            let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
                let _ = stream.set_nodelay(true);
            });
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(err) = served {
                tracing::error!(%err, "the model gateway stopped");
            }
        });
        tracing::info!(%addr, "model gateway listening");
        Ok(Gateway { inner })
    }

    /// `http://127.0.0.1:PORT`: Anthropic clients' base URL; OpenAI
    /// clients add `/v1`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Mints a token granting `grant`.
    pub fn mint(&self, grant: Grant) -> Result<String, GatewayError> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|err| GatewayError::Random(err.to_string()))?;
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), grant);
        Ok(token)
    }

    /// Revokes a token; whether it was live.
    pub fn revoke(&self, token: &str) -> bool {
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token)
            .is_some()
    }

    /// Waits until every exchange made with `token` so far has been
    /// recorded, or `timeout` passed; whether they all were. Blocking: call
    /// it off the async threads.
    pub fn settle(&self, token: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            if in_flight.get(token).copied().unwrap_or(0) == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            in_flight = self
                .inner
                .settled
                .wait_timeout(in_flight, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// How many tokens are live.
    pub fn live_tokens(&self) -> usize {
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Stops listening; exchanges under way finish.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }
}

/// An error the gateway itself answers with, in `api`'s shape.
fn refuse(api: Api, status: StatusCode, kind: ErrorKind, message: &str) -> Response {
    json_response(status, &api.error_body(kind, message))
}

/// A JSON body with its status.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// The token a request presents.
fn token_of(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim);
    let api_key = headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    bearer.or(api_key).filter(|token| !token.is_empty())
}

/// Headers of the client's request passed on.
const PASSED_ON: [&str; 4] = [
    "accept",
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
];
/// Headers of the upstream's answer passed back.
const PASSED_BACK: [&str; 6] = [
    "content-type",
    "cache-control",
    "request-id",
    "x-request-id",
    "retry-after",
    "retry-after-ms",
];

/// An exchange under way with a token, from the moment its request is
/// accepted until it is recorded (or refused): [`Gateway::settle`] waits
/// for these.
struct InFlight {
    inner: Arc<Inner>,
    token: String,
}

impl InFlight {
    fn new(inner: &Arc<Inner>, token: &str) -> InFlight {
        *inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(token.to_owned())
            .or_insert(0) += 1;
        InFlight {
            inner: Arc::clone(inner),
            token: token.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = in_flight.get_mut(&self.token) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.token);
            }
        }
        self.inner.settled.notify_all();
    }
}

async fn handle(inner: Arc<Inner>, api: Api, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let granted = token_of(&headers).and_then(|token| {
        let grant = inner
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()?;
        Some((grant, InFlight::new(&inner, token)))
    });
    let Some((grant, in_flight)) = granted else {
        return refuse(
            api,
            StatusCode::UNAUTHORIZED,
            ErrorKind::Authentication,
            "exo's model gateway: no valid token (it was never minted, or it was revoked when its session ended)",
        );
    };
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return refuse(
                api,
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::InvalidRequest,
                &format!(
                    "the request body is larger than the gateway's {} MiB limit, or was cut off",
                    MAX_REQUEST_BYTES >> 20
                ),
            )
        }
    };
    let mut request: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(object)) => object,
        _ => {
            return refuse(
                api,
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidRequest,
                "the request body is not a JSON object",
            )
        }
    };
    drop(body);
    let upstream = match inner.upstreams.resolve(&grant).await {
        Ok(upstream) => upstream,
        Err(why) => {
            return refuse(
                api,
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Upstream,
                &format!("exo cannot reach this conversation's model: {why}"),
            )
        }
    };
    if upstream.api != api {
        return refuse(
            api,
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidRequest,
            &format!(
                "this conversation's model speaks the {} API, not {}: point the client at it (the gateway does not translate)",
                upstream.api.as_str(),
                api.as_str()
            ),
        );
    }
    let asked = request
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned);
    request.insert("model".into(), Value::String(upstream.model.clone()));
    let forwarded = match serde_json::to_vec(&request) {
        Ok(bytes) => Bytes::from(bytes),
        Err(err) => {
            return refuse(
                api,
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidRequest,
                &format!("the request body cannot be re-encoded: {err}"),
            )
        }
    };
    drop(request);

    let url = api.upstream_url(&upstream.base_url, uri.query());
    let mut outgoing = inner
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(forwarded.clone());
    for name in PASSED_ON {
        if let Some(value) = headers.get(name) {
            outgoing = outgoing.header(name, value.clone());
        }
    }
    if let Some(key) = &upstream.key {
        outgoing = match api {
            Api::Messages => outgoing.header("x-api-key", key.expose()),
            Api::Responses | Api::ChatCompletions => outgoing.bearer_auth(key.expose()),
        };
    }
    let mut exchange = Exchange {
        id: uuid::Uuid::now_v7().to_string(),
        api,
        model: asked,
        upstream_model: upstream.model.clone(),
        status: None,
        outcome: Outcome::UpstreamFailed,
        usage: Usage::default(),
        ttfb: None,
        duration: Duration::ZERO,
        request: forwarded,
        response: Bytes::new(),
        truncated: false,
    };
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(err) => {
            // reqwest's message names the URL, never a header.
            let message = format!(
                "the model at {} could not be reached: {}",
                upstream.base_url,
                without_url(&err)
            );
            exchange.duration = started.elapsed();
            inner.upstreams.record(&grant, exchange).await;
            return refuse(api, StatusCode::BAD_GATEWAY, ErrorKind::Upstream, &message);
        }
    };
    let status = answer.status();
    exchange.status = Some(status.as_u16());
    let mut back = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(value) = answer.headers().get(name) {
            back.insert(HeaderName::from_static(name), value.clone());
        }
    }
    if !status.is_success() {
        // Read whole (bounded), scrubbed, then passed on.
        let mut body = BytesMut::new();
        let mut stream = answer.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            if exchange.ttfb.is_none() {
                exchange.ttfb = Some(started.elapsed());
            }
            let room = MAX_ERROR_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BYTES {
                exchange.truncated = true;
                break;
            }
        }
        let key = upstream.key.clone();
        let body = body.freeze();
        let body = tokio::task::spawn_blocking(move || scrubbed(&key, body))
            .await
            .unwrap_or_else(|_| Bytes::from_static(b"{}"));
        exchange.outcome = Outcome::Error;
        exchange.response = body.clone();
        exchange.duration = started.elapsed();
        inner.upstreams.record(&grant, exchange).await;
        back.remove("content-length");
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = back;
        return response;
    }
    // Streamed: each chunk goes to the client as it comes, and into the
    // record; the client going away stops the upstream read.
    let (send, receive) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let upstreams = Arc::clone(&inner.upstreams);
    let key = upstream.key;
    tokio::spawn(async move {
        let mut stream = answer.bytes_stream();
        let mut kept = BytesMut::new();
        let outcome = loop {
            let chunk = tokio::select! {
                chunk = stream.next() => chunk,
                () = send.closed() => break Outcome::ClientClosed,
            };
            match chunk {
                Some(Ok(chunk)) => {
                    if exchange.ttfb.is_none() {
                        exchange.ttfb = Some(started.elapsed());
                    }
                    let room = MAX_RECORDED_BYTES.saturating_sub(kept.len());
                    if chunk.len() > room {
                        exchange.truncated = true;
                    }
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if send.send(Ok(chunk)).await.is_err() {
                        break Outcome::ClientClosed;
                    }
                }
                Some(Err(err)) => {
                    let _ = send
                        .send(Err(std::io::Error::other(without_url(&err))))
                        .await;
                    break Outcome::UpstreamFailed;
                }
                None => break Outcome::Completed,
            }
        };
        drop(send);
        exchange.outcome = outcome;
        exchange.duration = started.elapsed();
        // Reading the usage and scrubbing the copy take time in proportion
        // to the answer: off the async threads, which move other streams.
        let kept = kept.freeze();
        let exchange = tokio::task::spawn_blocking(move || {
            exchange.usage = usage_of(&kept);
            exchange.response = scrubbed(&key, kept);
            exchange
        })
        .await;
        match exchange {
            Ok(exchange) => upstreams.record(&grant, exchange).await,
            Err(err) => tracing::warn!(%err, "could not record a gateway exchange"),
        }
        drop(in_flight);
    });
    let body = Body::from_stream(futures_util::stream::unfold(receive, |mut receive| async {
        receive.recv().await.map(|item| (item, receive))
    }));
    back.remove("content-length");
    if !back.contains_key("content-type") {
        back.insert("content-type", HeaderValue::from_static("application/json"));
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = back;
    response
}

/// A body with the key scrubbed from it, when it holds the key: in a JSON
/// body, from each string as it reads once decoded (a key escaped in JSON
/// is found there), then from the text as a whole (a key in a stream of
/// events, or in a body that is not JSON).
fn scrubbed(key: &Option<ApiKey>, body: Bytes) -> Bytes {
    let Some(key) = key else { return body };
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if let Ok(mut value) = serde_json::from_str::<Value>(&text) {
        if scrub_strings(key, &mut value) {
            text = value.to_string();
        }
    }
    match key.scrub(&text) {
        Some(clean) => Bytes::from(clean),
        None if text.as_bytes() != body.as_ref() => Bytes::from(text),
        None => body,
    }
}

/// Scrubs every string in `value`; whether one held the key.
fn scrub_strings(key: &ApiKey, value: &mut Value) -> bool {
    match value {
        Value::String(text) => match key.scrub(text) {
            Some(clean) => {
                *text = clean;
                true
            }
            None => false,
        },
        Value::Array(items) => {
            let mut found = false;
            for item in items {
                found |= scrub_strings(key, item);
            }
            found
        }
        Value::Object(fields) => {
            let mut found = false;
            for item in fields.values_mut() {
                found |= scrub_strings(key, item);
            }
            found
        }
        _ => false,
    }
}

/// A transport error's words and its causes' (they name the upstream URL,
/// never a header).
fn without_url(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
