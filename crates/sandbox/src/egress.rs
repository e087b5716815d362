//! Credentials at the boundary (spec/sandboxes.md): an HTTP proxy that
//! adds a bound secret to the requests for its host, and a forwarder that
//! brings the proxy into a sandbox.
//!
//! The proxy ([`Egress`]) runs in exo's process and listens on a Unix
//! socket in a directory of the conversation's, which the sandbox sees at
//! [`INSIDE_DIR`]. A command runs under the forwarder (exo's own binary,
//! seen at [`INSIDE_FORWARDER`], started as `exo __egress-forward --proxy
//! SOCKET -- PROGRAM ARGS`): it listens on a loopback port of the command's own
//! network (a closed sandbox has only its loopback), relays each
//! connection to the socket, and runs the command with `HTTP_PROXY` and
//! `HTTPS_PROXY` naming that port with the proxy's token.
//!
//! For a bound host, a plain-HTTP request (`http://HOST/PATH` through the
//! proxy) is sent on over the binding's scheme (https unless it says
//! otherwise) with the credential's header set; the command never sees the
//! secret. Any other host gets nothing added: its requests, and `CONNECT`
//! tunnels, pass when the sandbox's network is open and are refused when
//! it is closed. A `CONNECT` to a bound host ends at exo: the proxy speaks
//! TLS with a certificate for the host from the turn's own authority
//! (written, after the system's certificates, to the bundle the forwarder
//! points the command's TLS variables at) and sends each request read
//! from the tunnel on as above. Redirects are handed back, never followed, so a
//! credential only ever goes to its host. Every request is kept as an
//! [`Exchange`] (host, method, path, status; never a header) for the caller
//! to record.
//!
//! **Architecture Invariant:** a credential's value is sent upstream to its
//! own host and nowhere else: not in an answer, an error, an exchange or a
//! log line.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use futures_util::TryStreamExt;
use tokio_util::sync::CancellationToken;

use crate::SandboxError;

/// The proxy's socket, in its directory.
pub const SOCKET_NAME: &str = "proxy.sock";
/// Where a sandbox sees the proxy's directory.
pub const INSIDE_DIR: &str = "/run/exo-egress";
/// Where a sandbox sees the forwarder (exo's binary).
pub const INSIDE_FORWARDER: &str = "/run/exo-forward";
/// The directory, in the proxy's, of an agent CLI's home when it runs in
/// a container (bound read-write there; the rest is read-only): Codex's
/// `CODEX_HOME`, Claude Code's `CLAUDE_CONFIG_DIR`.
pub const AGENT_HOME: &str = "agent";
/// The forwarder's first argument.
pub const FORWARD_ARG: &str = "__egress-forward";
/// The variable the forwarder takes the proxy's token from (and does not
/// pass on).
pub const TOKEN_VARIABLE: &str = "EXO_EGRESS_TOKEN";
/// The longest path an exchange keeps.
const MAX_PATH_CHARS: usize = 1024;
/// The most connections one proxy serves at once; more wait in the
/// socket's backlog (a command cannot use up exo's file descriptors).
const MAX_CONNECTIONS: usize = 256;
/// The most exchanges kept between two drains; later ones are counted.
const MAX_KEPT: usize = 1_000;

/// A credential for one host.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The host, lowercase, as requested (`api.example.com`).
    pub host: String,
    /// Its port, when the binding names one; else the scheme's default.
    pub port: Option<u16>,
    /// The header the credential goes in (`authorization`).
    pub header: String,
    /// The header's whole value (`Bearer SECRET`).
    pub value: String,
    /// The secret itself, scrubbed from every answer of the host.
    pub secret: String,
    /// Whether exo calls the host over https (else plain http).
    pub tls: bool,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("header", &self.header)
            .field("value", &"[redacted]")
            .field("secret", &"[redacted]")
            .field("tls", &self.tls)
            .finish()
    }
}

impl Credential {
    /// Whether a request for `host` on `port` (none: the scheme's default)
    /// is for this credential.
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let requested = port.unwrap_or(80);
        let bound = self.port.unwrap_or(80);
        self.host.eq_ignore_ascii_case(host) && requested == bound
    }

    fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// The port a `CONNECT` for this host names: the binding's, else 443.
    fn tunnel_port(&self) -> Option<u16> {
        Some(self.port.unwrap_or(443))
    }

    /// Where a request for `path` goes upstream.
    fn url(&self, path: &str, query: &str) -> String {
        format!(
            "{}://{}{path}{query}",
            if self.tls { "https" } else { "http" },
            self.authority()
        )
    }
}

/// One request through the proxy, as it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The host asked for, with its port when one was given.
    pub host: String,
    /// The method (`CONNECT` for a tunnel).
    pub method: String,
    /// The path, without the query (empty for a tunnel).
    pub path: String,
    /// The status answered (the upstream's, or exo's own refusal).
    pub status: u16,
    /// Whether a credential was added.
    pub credential: bool,
    /// Why exo refused it, when it did.
    pub refused: Option<String>,
}

/// The proxy of one conversation's turn; it stops when dropped.
pub struct Egress {
    shared: Arc<Shared>,
    dir: PathBuf,
    token: String,
    exchanges: Arc<Mutex<Kept>>,
    stop: CancellationToken,
}

#[derive(Default)]
struct Kept {
    exchanges: Vec<Exchange>,
    dropped: usize,
}

struct Shared {
    /// Set when the turn's proxy stops: a connection still open adds no
    /// credential after that.
    stopped: std::sync::atomic::AtomicBool,
    token: String,
    /// The turn's certificate authority, for tunnels to bound hosts.
    authority: Option<Authority>,
    credentials: Vec<Credential>,
    network: bool,
    client: reqwest::Client,
    exchanges: Arc<Mutex<Kept>>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress").field("dir", &self.dir).finish()
    }
}

impl Egress {
    /// Starts a proxy listening in `dir` (made if missing, readable by its
    /// owner only) that adds `credentials` and lets other hosts through
    /// only when `network` is open.
    pub async fn start(
        dir: &Path,
        credentials: Vec<Credential>,
        network: bool,
    ) -> Result<Egress, SandboxError> {
        let failed = |what: &str, err: std::io::Error| {
            SandboxError::Egress(format!("{what} {}: {err}", dir.display()))
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|err| failed("cannot make the proxy's directory", err))?;
        }
        let socket = dir.join(SOCKET_NAME);
        // Left by an exo that died: nothing listens on it any more (a turn
        // runs in one process at a time).
        match std::fs::remove_file(&socket) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) if socket.is_dir() => std::fs::remove_dir_all(&socket)
                .map_err(|err| failed("cannot clear the proxy's socket in", err))?,
            Err(err) => return Err(failed("cannot clear the proxy's socket in", err)),
        }
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|err| failed("cannot listen on the proxy's socket in", err))?;
        let mut random = [0u8; 24];
        getrandom::getrandom(&mut random)
            .map_err(|err| SandboxError::Egress(format!("cannot make a token: {err}")))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let client = reqwest::Client::builder()
            // Never exo's own proxy settings; never a redirect followed
            // (the credential would go with it).
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| SandboxError::Egress(format!("cannot make an HTTP client: {err}")))?;
        let exchanges = Arc::new(Mutex::new(Kept::default()));
        // The turn's authority, and the bundle commands trust: the
        // system's certificates and its own.
        let authority = if credentials.is_empty() {
            None
        } else {
            let authority = Authority::new().map_err(|err| {
                SandboxError::Egress(format!("cannot make a certificate authority: {err}"))
            })?;
            let mut bundle = std::fs::read_to_string(SYSTEM_BUNDLE).unwrap_or_default();
            if !bundle.is_empty() && !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(&authority.issuer.pem());
            let path = dir.join(CA_BUNDLE_NAME);
            let part = dir.join(format!("{CA_BUNDLE_NAME}.part"));
            std::fs::write(&part, bundle)
                .and_then(|()| std::fs::rename(&part, &path))
                .map_err(|err| failed("cannot write the certificate bundle in", err))?;
            Some(authority)
        };
        let shared = Arc::new(Shared {
            stopped: std::sync::atomic::AtomicBool::new(false),
            authority,
            token: token.clone(),
            credentials,
            network,
            client,
            exchanges: Arc::clone(&exchanges),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let listener = Limited {
            inner: listener,
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        };
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
            if let Err(err) = served {
                tracing::warn!(%err, "the egress proxy stopped");
            }
        });
        Ok(Egress {
            shared,
            dir: dir.to_owned(),
            token,
            exchanges,
            stop,
        })
    }

    /// The directory the socket is in (bound into the sandbox).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The token a command presents (as the password of its proxy URL).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The requests since the last call, in order, and how many more were
    /// not kept.
    pub fn take_exchanges(&self) -> (Vec<Exchange>, usize) {
        let mut kept = self.exchanges.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = std::mem::take(&mut kept.dropped);
        (std::mem::take(&mut kept.exchanges), dropped)
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.stop.cancel();
        let _ = std::fs::remove_file(self.dir.join(SOCKET_NAME));
    }
}

/// The file, in the proxy's directory, of the turn's authority's
/// certificate together with the system's: what commands trust.
pub const CA_BUNDLE_NAME: &str = "ca-bundle.pem";

/// The system's trusted certificates, which the bundle begins with.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A certificate authority of one turn's own: its key lives in memory and
/// dies with the turn; only its certificate is written, for commands to
/// trust. It signs a certificate for each bound host a tunnel asks for.
struct Authority {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    configs: Mutex<std::collections::HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl Authority {
    fn new() -> Result<Authority, rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "exo egress proxy (one turn)");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)?;
        Ok(Authority {
            issuer,
            configs: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// A TLS server configuration with a certificate for `host`.
    fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = configs.get(host) {
            return Ok(Arc::clone(config));
        }
        let key = rcgen::KeyPair::generate().map_err(|err| err.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(|err| err.to_string())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        let leaf = params
            .signed_by(&key, &self.issuer)
            .map_err(|err| err.to_string())?;
        let chain = vec![leaf.der().clone(), self.issuer.der().clone()];
        let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| err.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|err| err.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        configs.insert(host.to_owned(), Arc::clone(&config));
        Ok(config)
    }
}

/// The proxy's listener: at most [`MAX_CONNECTIONS`] connections open at
/// once, each holding a permit until it closes.
struct Limited {
    inner: tokio::net::UnixListener,
    permits: Arc<tokio::sync::Semaphore>,
}

/// A connection and its permit.
struct Permitted {
    stream: tokio::net::UnixStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl axum::serve::Listener for Limited {
    type Io = Permitted;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // Never closed; should it be, wait for good.
                std::future::pending::<()>().await;
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    return (
                        Permitted {
                            stream,
                            _permit: permit,
                        },
                        addr,
                    )
                }
                Err(err) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::debug!(%err, "the egress proxy cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl tokio::io::AsyncRead for Permitted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Permitted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// `bytes` with every occurrence of `secret` masked, in place.
fn mask(bytes: &mut [u8], secret: &[u8]) {
    if secret.is_empty() || bytes.len() < secret.len() {
        return;
    }
    let mut at = 0;
    while at + secret.len() <= bytes.len() {
        if &bytes[at..at + secret.len()] == secret {
            bytes[at..at + secret.len()].fill(b'*');
            at += secret.len();
        } else {
            at += 1;
        }
    }
}

/// A body with `secret` masked wherever it occurs, across chunk
/// boundaries too (the same length, so `Content-Length` stays true).
fn masked_stream(
    upstream: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
    secret: Vec<u8>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    let keep = secret.len().saturating_sub(1);
    futures_util::stream::unfold(
        (Box::pin(upstream), Vec::<u8>::new(), false),
        move |(mut upstream, mut carry, done)| {
            let secret = secret.clone();
            async move {
                use futures_util::StreamExt;
                if done {
                    return None;
                }
                match upstream.next().await {
                    Some(Ok(chunk)) => {
                        carry.extend_from_slice(&chunk);
                        mask(&mut carry, &secret);
                        let ready = carry.len().saturating_sub(keep);
                        let out: Vec<u8> = carry.drain(..ready).collect();
                        Some((Ok(bytes::Bytes::from(out)), (upstream, carry, false)))
                    }
                    Some(Err(err)) => {
                        Some((Err(std::io::Error::other(err)), (upstream, carry, true)))
                    }
                    None => {
                        mask(&mut carry, &secret);
                        let rest = bytes::Bytes::from(std::mem::take(&mut carry));
                        Some((Ok(rest), (upstream, carry, true)))
                    }
                }
            }
        },
    )
}

/// How a command reaches its proxy: the proxy, and exo's binary as the
/// forwarder.
#[derive(Debug, Clone)]
pub struct EgressAccess {
    /// The proxy.
    pub proxy: Arc<Egress>,
    /// exo's binary, run as the forwarder.
    pub forwarder: PathBuf,
}

impl Shared {
    fn keep(&self, exchange: Exchange) {
        let mut kept = self.exchanges.lock().unwrap_or_else(|p| p.into_inner());
        if kept.exchanges.len() < MAX_KEPT {
            kept.exchanges.push(exchange);
        } else {
            kept.dropped += 1;
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::PROXY_AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .ok()
            })
        else {
            return false;
        };
        let password = match given.iter().position(|b| *b == b':') {
            Some(at) => &given[at + 1..],
            None => &given[..],
        };
        constant_time_eq(password, self.token.as_bytes())
    }

    fn credential(&self, host: &str, port: Option<u16>) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.matches(host, port))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(format!("exo: {message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        response.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"exo\""),
        );
    }
    response
}

/// The headers a proxy never passes on (RFC 9110, 7.6.1), and the proxy's
/// own.
fn hop_by_hop(name: &HeaderName, connection: &[String]) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    ) || connection.iter().any(|listed| listed == name.as_str())
}

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn clip(path: &str) -> String {
    path.chars().take(MAX_PATH_CHARS).collect()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = uri.port_u16();
    let shown_host = match port {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let path = if method == Method::CONNECT {
        String::new()
    } else {
        clip(uri.path())
    };
    let record = |status: StatusCode, credential: bool, refused: Option<&str>| {
        shared.keep(Exchange {
            host: shown_host.clone(),
            method: method.as_str().to_owned(),
            path: path.clone(),
            status: status.as_u16(),
            credential,
            refused: refused.map(str::to_owned),
        });
    };
    let refuse = |status: StatusCode, why: &str| {
        record(status, false, Some(why));
        refusal(status, why)
    };
    if !shared.authorized(request.headers()) {
        return refuse(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "the proxy's token is missing or wrong",
        );
    }
    if host.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a request through the proxy names its host (http://HOST/PATH)",
        );
    }
    if method == Method::CONNECT {
        let bound = shared
            .credentials
            .iter()
            .find(|c| c.host.eq_ignore_ascii_case(&host) && c.tunnel_port() == port)
            .cloned();
        if let Some(credential) = bound {
            // Answered here, with the credential: the tunnel ends at exo.
            let upgrade = hyper::upgrade::on(request);
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    intercept(shared, credential, upgraded, shown_host).await;
                }
            });
            return Response::new(Body::empty());
        }
        if !shared.network {
            return refuse(
                StatusCode::FORBIDDEN,
                &format!("the sandbox's network is closed: only bound hosts are reachable, and {host} is not one"),
            );
        }
        let Some(port) = port else {
            return refuse(StatusCode::BAD_REQUEST, "CONNECT names a port");
        };
        let upgrade = hyper::upgrade::on(request);
        let target = format!("{host}:{port}");
        let upstream = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(&target),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                record(StatusCode::BAD_GATEWAY, false, None);
                return refusal(
                    StatusCode::BAD_GATEWAY,
                    &format!("cannot reach {target}: {err}"),
                );
            }
            Err(_) => {
                record(StatusCode::GATEWAY_TIMEOUT, false, None);
                return refusal(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("{target} did not answer within 10 s"),
                );
            }
        };
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut client = hyper_util::rt::TokioIo::new(upgraded);
            let mut upstream = upstream;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        record(StatusCode::OK, false, None);
        return Response::new(Body::empty());
    }
    if uri.scheme_str() != Some("http") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the proxy forwards http:// requests (and CONNECT for https)",
        );
    }
    let credential = shared.credential(&host, port).cloned();
    if credential.is_none() && !shared.network {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!("the sandbox's network is closed: only bound hosts are reachable, and {shown_host} is not one"),
        );
    }
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = match &credential {
        Some(credential) => credential.url(uri.path(), &query),
        None => uri.to_string(),
    };
    let (parts, body) = request.into_parts();
    send_on(
        &shared,
        parts,
        body,
        &url,
        credential.as_ref(),
        &shown_host,
        &path,
    )
    .await
}

/// Sends a request on to `url`, less the hop-by-hop and proxy headers,
/// with `credential`'s header set in place of any the command sent, and
/// streams the answer back; records the exchange as `shown_host` and
/// `path`.
async fn send_on(
    shared: &Shared,
    parts: axum::http::request::Parts,
    body: Body,
    url: &str,
    credential: Option<&Credential>,
    shown_host: &str,
    path: &str,
) -> Response {
    // What is recorded is the path as it goes out (dot segments resolved).
    let sent_path = reqwest::Url::parse(url)
        .map(|url| clip(url.path()))
        .unwrap_or_else(|_| path.to_owned());
    let mut pending = Pending {
        shared,
        exchange: Some(Exchange {
            host: shown_host.to_owned(),
            method: parts.method.as_str().to_owned(),
            path: sent_path,
            status: 0,
            credential: credential.is_some(),
            refused: None,
        }),
    };
    if credential.is_some() {
        if shared.stopped.load(std::sync::atomic::Ordering::Acquire) {
            let why = "the turn has ended: its proxy adds no credential any more";
            pending.refuse(StatusCode::SERVICE_UNAVAILABLE, why);
            return refusal(StatusCode::SERVICE_UNAVAILABLE, why);
        }
        // Answered with the request itself: the credential would come back.
        if matches!(parts.method.as_str(), "TRACE" | "TRACK") {
            let why = "TRACE would send the credential back: it is not forwarded to a bound host";
            pending.refuse(StatusCode::METHOD_NOT_ALLOWED, why);
            return refusal(StatusCode::METHOD_NOT_ALLOWED, why);
        }
    }
    let listed = connection_listed(&parts.headers);
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !hop_by_hop(name, &listed) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(credential) = credential {
        let (Ok(name), Ok(mut value)) = (
            HeaderName::from_bytes(credential.header.as_bytes()),
            HeaderValue::from_str(&credential.value),
        ) else {
            // Checked when bound; a value that is no header cannot be sent.
            let why = format!(
                "the credential for {} is not a valid header value",
                credential.host
            );
            pending.refuse(StatusCode::BAD_GATEWAY, &why);
            return refusal(StatusCode::BAD_GATEWAY, &why);
        };
        value.set_sensitive(true);
        headers.remove(&name);
        headers.insert(name, value);
    }
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let sent = shared
        .client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(err) => {
            // reqwest's message names the URL, never a header.
            let status = if err.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            let cause = std::error::Error::source(&err)
                .map(|cause| format!(": {cause}"))
                .unwrap_or_default();
            let why = format!("cannot reach {shown_host}{cause}");
            pending.failed(status, &why);
            return refusal(status, &why);
        }
    };
    let status = upstream.status();
    pending.answered(status);
    let listed = connection_listed(upstream.headers());
    let mut response = Response::builder().status(status);
    // A bound host's answer never carries its secret back (an echo, a
    // debug page): masked in headers and body alike.
    let secret = credential.map(|c| c.secret.as_bytes().to_vec());
    for (name, value) in upstream.headers() {
        if hop_by_hop(name, &listed) {
            continue;
        }
        match &secret {
            Some(secret) => {
                let mut bytes = value.as_bytes().to_vec();
                mask(&mut bytes, secret);
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    response = response.header(name, value);
                }
            }
            None => response = response.header(name, value),
        }
    }
    let body = match secret {
        Some(secret) => Body::from_stream(masked_stream(upstream.bytes_stream(), secret)),
        None => Body::from_stream(upstream.bytes_stream().map_err(std::io::Error::other)),
    };
    response
        .body(body)
        .unwrap_or_else(|_| refusal(StatusCode::BAD_GATEWAY, "the answer could not be passed on"))
}

/// An exchange being made: recorded when its answer comes, when exo
/// refuses it, or, should the request be abandoned first (the command
/// gave up, the upstream never answered), with status 0 when dropped.
struct Pending<'a> {
    shared: &'a Shared,
    exchange: Option<Exchange>,
}

impl Pending<'_> {
    fn answered(&mut self, status: StatusCode) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.status = status.as_u16();
            self.shared.keep(exchange);
        }
    }

    /// Refused by exo before anything was sent: no credential went out.
    fn refuse(&mut self, status: StatusCode, why: &str) {
        if let Some(exchange) = self.exchange.as_mut() {
            exchange.credential = false;
        }
        self.failed(status, why);
    }

    /// Failed on the way (the upstream unreachable).
    fn failed(&mut self, status: StatusCode, why: &str) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.status = status.as_u16();
            exchange.refused = Some(why.to_owned());
            self.shared.keep(exchange);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.refused = Some("abandoned before an answer came".to_owned());
            self.shared.keep(exchange);
        }
    }
}

/// Serves a `CONNECT` tunnel to a bound host: TLS with a certificate for
/// the host from the turn's own authority (which the sandbox's commands
/// trust), and each request read from it sent on with the credential.
async fn intercept(
    shared: Arc<Shared>,
    credential: Credential,
    upgraded: hyper::upgrade::Upgraded,
    shown_host: String,
) {
    let Some(authority) = shared.authority.as_ref() else {
        return;
    };
    let config = match authority.server_config(&credential.host) {
        Ok(config) => config,
        Err(err) => {
            tracing::warn!(%err, host = %credential.host, "cannot make a certificate");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let Ok(Ok(tls)) = tokio::time::timeout(
        Duration::from_secs(10),
        acceptor.accept(hyper_util::rt::TokioIo::new(upgraded)),
    )
    .await
    else {
        return;
    };
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let (shared, credential, shown_host) =
                (Arc::clone(&shared), credential.clone(), shown_host.clone());
            async move {
                let (parts, body) = request.into_parts();
                let path = clip(parts.uri.path());
                let query = parts
                    .uri
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                let url = credential.url(parts.uri.path(), &query);
                let answer = send_on(
                    &shared,
                    parts,
                    Body::new(body),
                    &url,
                    Some(&credential),
                    &shown_host,
                    &path,
                )
                .await;
                Ok::<_, std::convert::Infallible>(answer)
            }
        });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await;
}

/// The forwarder: `exo __egress-forward [--proxy SOCKET] [--relay
/// PORT=SOCKET]... -- PROGRAM ARGS...`. For `--proxy`, listens on a
/// loopback port, relays each connection to the proxy's `SOCKET`, and runs
/// the program with the proxy variables naming that port; for each
/// `--relay`, relays loopback `PORT` to its `SOCKET` (nothing else set); returns the program's exit status (128 + the signal that killed
/// it).
pub fn forward(args: &[OsString]) -> i32 {
    match forward_inner(args) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "exo: {message}");
            125
        }
    }
}

fn forward_inner(args: &[OsString]) -> Result<i32, String> {
    let usage = "usage: exo __egress-forward [--proxy SOCKET] [--relay PORT=SOCKET]... -- PROGRAM [ARGS...]";
    let mut proxy_socket: Option<PathBuf> = None;
    let mut relays: Vec<(u16, PathBuf)> = Vec::new();
    let mut rest = args;
    loop {
        let (first, after) = rest.split_first().ok_or(usage)?;
        rest = after;
        match first.to_str() {
            Some("--") => break,
            Some("--proxy") => {
                let (socket, after) = rest.split_first().ok_or(usage)?;
                proxy_socket = Some(PathBuf::from(socket));
                rest = after;
            }
            Some("--relay") => {
                let (spec, after) = rest.split_first().ok_or(usage)?;
                let (port, socket) = spec
                    .to_str()
                    .and_then(|spec| spec.split_once('='))
                    .and_then(|(port, socket)| Some((port.parse::<u16>().ok()?, socket)))
                    .ok_or(usage)?;
                relays.push((port, PathBuf::from(socket)));
                rest = after;
            }
            _ => return Err(usage.to_owned()),
        }
    }
    let (program, program_args) = rest.split_first().ok_or(usage)?;
    let listen = |port: u16, socket: PathBuf| -> Result<u16, String> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|err| format!("cannot listen on 127.0.0.1:{port}: {err}"))?;
        let port = listener
            .local_addr()
            .map_err(|err| format!("cannot listen on the loopback: {err}"))?
            .port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let socket = socket.clone();
                std::thread::spawn(move || relay(client, &socket));
            }
        });
        Ok(port)
    };
    for (port, socket) in relays {
        listen(port, socket)?;
    }
    let mut child = std::process::Command::new(program);
    child.args(program_args).env_remove(TOKEN_VARIABLE);
    if let Some(socket) = proxy_socket {
        let token =
            std::env::var(TOKEN_VARIABLE).map_err(|_| format!("{TOKEN_VARIABLE} is not set"))?;
        // The turn's authority, beside the socket, for https to a bound
        // host: trusted together with the system's certificates.
        let bundle = socket.with_file_name(CA_BUNDLE_NAME);
        if bundle.is_file() {
            for name in [
                "SSL_CERT_FILE",
                "CURL_CA_BUNDLE",
                "REQUESTS_CA_BUNDLE",
                "GIT_SSL_CAINFO",
                "NODE_EXTRA_CA_CERTS",
            ] {
                child.env(name, &bundle);
            }
        }
        let port = listen(0, socket)?;
        let proxy = format!("http://exo:{token}@127.0.0.1:{port}");
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            child.env(name, &proxy);
        }
        for name in ["NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"] {
            child.env_remove(name);
        }
        // Node's own fetch reads the variables only when told to (Node 24).
        child.env("NODE_USE_ENV_PROXY", "1");
    }
    let status = child.status().map_err(|err| {
        format!(
            "cannot start {}: {err}",
            std::path::Path::new(program).display()
        )
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(125))
}

/// Relays each connection to a Unix socket on to a TCP address: how a
/// container without a network reaches a service of exo's on the host
/// loopback (the model gateway), through the forwarder's `--relay`. It
/// stops when dropped.
pub struct Relay {
    socket: PathBuf,
    stop: CancellationToken,
}

impl Relay {
    /// Listens on `socket` (replacing a stale one) and relays to `target`.
    pub async fn start(socket: &Path, target: std::net::SocketAddr) -> Result<Relay, SandboxError> {
        let failed = |err: std::io::Error| {
            SandboxError::Egress(format!("cannot listen on {}: {err}", socket.display()))
        };
        match std::fs::remove_file(socket) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(failed(err)),
        }
        let listener = tokio::net::UnixListener::bind(socket).map_err(failed)?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = stopped.cancelled() => return,
                };
                let Ok((mut inside, _)) = accepted else {
                    continue;
                };
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let Ok(mut outside) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = outside.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inside, &mut outside) => {}
                        () = stopped.cancelled() => {}
                    }
                });
            }
        });
        Ok(Relay {
            socket: socket.to_owned(),
            stop,
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn relay(client: std::net::TcpStream, socket: &Path) {
    let Ok(proxy) = std::os::unix::net::UnixStream::connect(socket) else {
        return;
    };
    let (Ok(mut client_read), Ok(mut proxy_write)) = (client.try_clone(), proxy.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = copy(&mut client_read, &mut proxy_write);
        let _ = proxy_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut proxy_read, mut client_write) = (proxy, client);
    let _ = copy(&mut proxy_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(host: &str, port: Option<u16>) -> Credential {
        Credential {
            host: host.to_owned(),
            port,
            header: "authorization".to_owned(),
            value: "Bearer s3cret".to_owned(),
            secret: "s3cret".to_owned(),
            tls: true,
        }
    }

    #[test]
    fn a_credential_matches_its_host_and_port_only() {
        let bare = credential("api.example.com", None);
        assert!(bare.matches("api.example.com", None));
        assert!(bare.matches("API.example.com", Some(80)));
        assert!(!bare.matches("api.example.com", Some(8080)));
        assert!(!bare.matches("example.com", None));
        let ported = credential("127.0.0.1", Some(8123));
        assert!(ported.matches("127.0.0.1", Some(8123)));
        assert!(!ported.matches("127.0.0.1", None));
    }

    #[test]
    fn a_secret_is_masked_in_answers_even_across_chunks() {
        let mut bytes = b"a s3cret and s3cret.".to_vec();
        mask(&mut bytes, b"s3cret");
        assert_eq!(bytes, b"a ****** and ******.");
        let chunks: Vec<reqwest::Result<bytes::Bytes>> = ["xx s3", "cr", "et yy s3cret", "s3c"]
            .into_iter()
            .map(|c| Ok(bytes::Bytes::from(c)))
            .collect();
        let stream = masked_stream(futures_util::stream::iter(chunks), b"s3cret".to_vec());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let out: Vec<u8> = runtime.block_on(async {
            use futures_util::StreamExt;
            let parts: Vec<_> = stream.collect().await;
            parts
                .into_iter()
                .flat_map(|p| p.unwrap().to_vec())
                .collect()
        });
        assert_eq!(out, b"xx ****** yy ******s3c");
    }

    #[test]
    fn a_credential_never_shows_in_its_debug_form() {
        let shown = format!("{:?}", credential("api.example.com", None));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn proxy_headers_and_those_connection_lists_are_not_passed_on() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        let listed = connection_listed(&headers);
        assert!(hop_by_hop(&header::PROXY_AUTHORIZATION, &listed));
        assert!(hop_by_hop(&HeaderName::from_static("x-private"), &listed));
        assert!(!hop_by_hop(&header::ACCEPT, &listed));
    }
}
