//! The daemon process: one per root.
//!
//! - **Lock.** `<root>/daemon.lock` is held with an exclusive `flock` for the
//!   daemon's life and holds `{"pid", "socket"}`; a second daemon finds it
//!   locked and names the first.
//! - **Socket.** `<root>/exo.sock`, created under umask 0177 (so mode 0600
//!   from the start) and chmodded again; a peer whose uid differs from the
//!   daemon's is refused.
//! - **stdio.** `exo daemon --stdio` serves one client on stdin/stdout. When
//!   another daemon already runs on the root, it relays the bytes to that
//!   daemon's socket instead, so an editor's stdio client shares live
//!   streams with every other client. Pipes are driven non-blocking
//!   (tokio's blocking-pool stdin adds tens of µs per message).
//! - **Shutdown.** SIGTERM, SIGINT or `daemon/stop`: stop accepting, stop
//!   reading, finish and answer the requests already running, then drop the
//!   store, which ends its sessions (an open turn as `interrupted`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use exo_store::{OpenMode, Store};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::task::TaskTracker;

use crate::server::serve_connection;
use crate::Service;

/// The socket's file name inside the root.
pub const SOCKET_FILE: &str = "exo.sock";
/// The lock file's name inside the root.
pub const LOCK_FILE: &str = "daemon.lock";
/// At most this many connections at once; more are closed on accept.
pub const MAX_CONNECTIONS: u64 = 1024;
/// How long a shutdown waits for running requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon holds the root.
    #[error("an exo daemon is already running for {root} (pid {pid}, socket {socket})")]
    AlreadyRunning {
        /// The root.
        root: String,
        /// Its pid.
        pid: u32,
        /// Its socket.
        socket: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] exo_store::Error),
    /// The socket path names a file that is not a socket.
    #[error("cannot listen on {0}: it exists and is not a socket")]
    NotASocket(PathBuf),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let context = context.into();
    move |source| DaemonError::Io { context, source }
}

/// What a running daemon writes into its lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Its pid.
    pub pid: u32,
    /// Its socket.
    pub socket: PathBuf,
}

/// How to run the daemon.
#[derive(Clone, Debug)]
pub struct Options {
    /// The exo root.
    pub root: PathBuf,
    /// The socket; `<root>/exo.sock` when `None`.
    pub socket: Option<PathBuf>,
    /// Serve stdin/stdout too (and stop when stdin closes).
    pub stdio: bool,
}

/// The default socket of a root.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join(SOCKET_FILE)
}

/// The daemon running on `root`, if any: its lock is held.
pub fn running(root: &Path) -> Option<DaemonInfo> {
    let mut file = File::open(root.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            serde_json::from_str(&text).ok()
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// Runs the daemon until it is told to stop.
pub async fn run(options: Options) -> Result<(), DaemonError> {
    exo_store::create_root(&options.root)?;
    // Clients in other directories find the socket through the lock file,
    // so every path the daemon records is absolute.
    let root = std::fs::canonicalize(&options.root)
        .map_err(io(format!("resolving {}", options.root.display())))?;
    let options = Options { root, ..options };
    let socket = match &options.socket {
        Some(socket) => {
            std::path::absolute(socket).map_err(io(format!("resolving {}", socket.display())))?
        }
        None => socket_path(&options.root),
    };
    let lock_path = options.root.join(LOCK_FILE);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io(format!("opening {}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            if options.stdio {
                if let Some(info) = running(&options.root) {
                    tracing::info!(pid = info.pid, "relaying stdio to the running daemon");
                    return relay_stdio(&info.socket).await;
                }
            }
            let info = running(&options.root);
            return Err(DaemonError::AlreadyRunning {
                root: options.root.display().to_string(),
                pid: info.as_ref().map_or(0, |info| info.pid),
                socket: info.map_or_else(
                    || socket.display().to_string(),
                    |info| info.socket.display().to_string(),
                ),
            });
        }
        Err(TryLockError::Error(err)) => {
            return Err(io(format!("locking {}", lock_path.display()))(err))
        }
    }
    let info = DaemonInfo {
        pid: std::process::id(),
        socket: socket.clone(),
    };
    lock.set_len(0).map_err(io("writing the lock file"))?;
    lock.write_all(serde_json::to_string(&info).expect("serializes").as_bytes())
        .and_then(|()| lock.sync_all())
        .map_err(io("writing the lock file"))?;

    let store = Store::open(&options.root, OpenMode::Create)?;
    let service = Service::daemon(store, Some(socket.clone()));
    let listener = bind(&socket)?;
    tracing::info!(root = %options.root.display(), socket = %socket.display(), pid = info.pid, "exo daemon listening");

    let tracker = TaskTracker::new();
    // Awaited in the accept loop rather than in a task of its own, so that
    // nothing outlives the loop holding a handle on the service.
    let signal = wait_for_signal();
    tokio::pin!(signal);
    if options.stdio {
        let (reader, writer) = stdio();
        let service = service.clone();
        tracker.spawn(async move {
            serve_connection(service.clone(), reader, writer).await;
            // The stdio client is the daemon's reason to live.
            service.request_shutdown();
        });
    }
    let uid = rustix::process::getuid();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = service.shutdown_requested() => break,
            () = &mut signal => {
                tracing::info!("signal received; shutting down");
                service.request_shutdown();
                break;
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == uid.as_raw() => {}
            Ok(cred) => {
                tracing::warn!(
                    peer_uid = cred.uid(),
                    "refused a connection from another user"
                );
                continue;
            }
            Err(err) => {
                tracing::warn!(%err, "refused a connection without peer credentials");
                continue;
            }
        }
        if service
            .inner
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            >= MAX_CONNECTIONS
        {
            tracing::warn!("too many connections; refusing one");
            continue;
        }
        let (reader, writer) = stream.into_split();
        tracker.spawn(serve_connection(service.clone(), reader, writer));
    }
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    // Closing the service drops the store, which ends its sessions; the lock
    // goes last, so no new daemon (and no CLI) touches the root before that.
    service.close().await;
    drop(lock);
    tracing::info!("exo daemon stopped");
    Ok(())
}

fn bind(socket: &Path) -> Result<UnixListener, DaemonError> {
    // We hold the root's lock, so a socket file left here is stale. Any
    // other file is someone's (`--socket` may name any path): it is left
    // alone and the daemon does not start.
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => match std::fs::remove_file(socket) {
            Ok(()) => tracing::info!(socket = %socket.display(), "removed a stale socket"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io(format!("removing {}", socket.display()))(err)),
        },
        Ok(_) => return Err(DaemonError::NotASocket(socket.to_path_buf())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(format!("checking {}", socket.display()))(err)),
    }
    let length = socket.as_os_str().len();
    if length >= 108 {
        return Err(io(format!(
            "socket path {} is {length} bytes; Unix sockets allow 107",
            socket.display()
        ))(std::io::Error::from(
            std::io::ErrorKind::InvalidInput,
        )));
    }
    let previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(socket);
    rustix::process::umask(previous);
    let listener = bound.map_err(io(format!("binding {}", socket.display())))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod {}", socket.display())))?;
    Ok(listener)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}

type BoxedReader = Box<dyn AsyncRead + Unpin + Send>;
type BoxedWriter = Box<dyn AsyncWrite + Unpin + Send>;

/// stdin and stdout as non-blocking pipes when they are pipes, else
/// through tokio's blocking-pool wrappers.
fn stdio() -> (BoxedReader, BoxedWriter) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let reader: BoxedReader = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .and_then(pipe::Receiver::from_file)
    {
        Ok(receiver) => Box::new(receiver),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let writer: BoxedWriter = match std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .and_then(pipe::Sender::from_file)
    {
        Ok(sender) => Box::new(sender),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (reader, writer)
}

/// Copies stdin to the daemon's socket and the socket to stdout.
async fn relay_stdio(socket: &Path) -> Result<(), DaemonError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(io(format!("connecting to {}", socket.display())))?;
    let (mut from_daemon, mut to_daemon) = stream.into_split();
    let (mut stdin, mut stdout) = stdio();
    let upstream = async {
        let _ = tokio::io::copy(&mut stdin, &mut to_daemon).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut to_daemon).await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut from_daemon, &mut stdout).await;
    };
    tokio::join!(upstream, downstream);
    Ok(())
}
