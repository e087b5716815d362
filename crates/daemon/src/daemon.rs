//! The daemon process: one per root.
//!
//! - **Lock.** `<root>/daemon.lock` is held with an exclusive `flock` for the
//!   daemon's life and holds `{"pid", "socket"}` once the socket is bound; a
//!   second daemon finds it locked and names the first. Processes using the
//!   store in-process hold it shared ([`access`]); a starting daemon waits
//!   for them, so its watchers see every commit.
//! - **Socket.** `<root>/exo.sock`, created under umask 0177 (so mode 0600
//!   from the start) and chmodded again; a peer whose uid differs from the
//!   daemon's is refused. Only a stale socket (nobody answers) is ever
//!   removed to bind, and only our own at shutdown.
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
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use exo_store::{OpenMode, Store};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::task::TaskTracker;

use crate::connection::serve_connection;
use exo_service::Service;

/// The socket's file name inside the root.
pub const SOCKET_FILE: &str = "exo.sock";
/// The lock file's name inside the root.
pub const LOCK_FILE: &str = "daemon.lock";
/// At most this many connections at once; more are closed on accept.
pub const MAX_CONNECTIONS: u64 = 1024;
/// How long a shutdown waits for running requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a starting daemon waits for processes using the store in-process.
pub const IN_PROCESS_WAIT: Duration = Duration::from_secs(30);
/// How long a client waits for a daemon that holds the root to answer (it
/// may be starting).
const ANSWER_WAIT: Duration = Duration::from_secs(10);

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
    /// A daemon holds the root but its socket does not answer.
    #[error("a daemon (pid {pid}) holds {root} but its socket {socket} does not answer: {why}")]
    NotAnswering {
        /// The root.
        root: String,
        /// The daemon's pid (0 if unknown).
        pid: u32,
        /// Its socket.
        socket: String,
        /// What failed.
        why: String,
    },
    /// The socket named for a root is served by a daemon of another root.
    #[error("the daemon listening on {socket} serves {served}, not {root}")]
    WrongRoot {
        /// The socket.
        socket: String,
        /// The root it serves.
        served: String,
        /// The root asked for.
        root: String,
    },
    /// Processes using the store without a daemon did not finish in time.
    #[error("other processes still use the store at {root} without a daemon (waited {waited} s){holders}")]
    InUse {
        /// The root.
        root: String,
        /// Seconds waited.
        waited: u64,
        /// Which: `: pid 123 (exo chat repl a c)`, or nothing when unknown.
        holders: String,
    },
    /// Another daemon is starting on the root.
    #[error("another exo daemon is starting for {root}")]
    Starting {
        /// The root.
        root: String,
    },
    /// The socket path is taken by something this daemon must not remove.
    #[error("cannot listen on {path}: {why}")]
    SocketTaken {
        /// The socket path asked for.
        path: String,
        /// What is there: "it exists and is not a socket", "it is in use
        /// by another daemon".
        why: &'static str,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] exo_store::Error),
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

/// Which processes hold a lock on `path`, from `/proc/locks`: `: pid 123
/// (exo chat repl a c), pid 456 (...)`, or nothing when none can be told.
fn describe_holders(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return String::new();
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return String::new();
    };
    let inode = metadata.ino().to_string();
    let me = std::process::id().to_string();
    let mut holders: Vec<String> = locks
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `1: FLOCK  ADVISORY  READ  1234 08:01:567 0 EOF`
            let pid = fields.get(4)?;
            let file = fields.get(5)?;
            (file.rsplit(':').next() == Some(inode.as_str()) && *pid != me).then(|| pid.to_string())
        })
        .collect();
    holders.sort();
    holders.dedup();
    if holders.is_empty() {
        return String::new();
    }
    let described: Vec<String> = holders
        .iter()
        .map(|pid| {
            let command = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|bytes| {
                    bytes
                        .split(|&byte| byte == 0)
                        .filter(|part| !part.is_empty())
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let command: String = command.chars().take(80).collect();
            format!("pid {pid} ({command})")
        })
        .collect();
    format!(": {}", described.join(", "))
}

/// Who holds a root's daemon lock.
enum Holder {
    /// Nobody.
    Nobody,
    /// Processes using the store in-process (shared).
    InProcess,
    /// A daemon (exclusive); its details once it answers.
    Daemon(Option<DaemonInfo>),
}

fn probe(root: &Path) -> Holder {
    let Ok(mut file) = File::open(root.join(LOCK_FILE)) else {
        return Holder::Nobody;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            // Another shared holder would make an exclusive attempt fail.
            match file.try_lock() {
                Ok(()) => Holder::Nobody,
                Err(_) => Holder::InProcess,
            }
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let info = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| serde_json::from_str(&text).ok());
            Holder::Daemon(info)
        }
        Err(TryLockError::Error(_)) => Holder::Nobody,
    }
}

/// The daemon running on `root`, if any: its lock is held and it has said
/// where it listens.
pub fn running(root: &Path) -> Option<DaemonInfo> {
    match probe(root) {
        Holder::Daemon(info) => info,
        _ => None,
    }
}

/// How a process reaches a root's store.
#[derive(Debug)]
pub enum Access {
    /// A daemon serves the root: a connection to it, checked to serve this
    /// root.
    Daemon(DaemonInfo, std::os::unix::net::UnixStream),
    /// No daemon runs: use the store in this process, and keep the guard
    /// until done with it, so that no daemon starts meanwhile (its watchers
    /// would miss this process's commits).
    InProcess(InProcessGuard),
}

/// A shared hold on a root's daemon lock; see [`Access::InProcess`].
#[derive(Debug)]
pub struct InProcessGuard {
    _lock: Option<File>,
}

/// Connects to the daemon serving `root`, or claims the root for use in
/// this process when none runs. A daemon that holds the root but does not
/// answer yet (it is starting) is waited for, briefly. With `create`, a
/// missing root is created; without, a missing root is left to the store
/// to report.
pub fn access(root: &Path, create: bool) -> Result<Access, DaemonError> {
    if root.exists() && !root.is_dir() {
        return Err(DaemonError::Io {
            context: format!("the exo root {}", root.display()),
            source: std::io::Error::other("it is not a directory"),
        });
    }
    if !root.exists() {
        if !create {
            return Ok(Access::InProcess(InProcessGuard { _lock: None }));
        }
        exo_store::create_root(root)?;
    }
    let canonical =
        std::fs::canonicalize(root).map_err(io(format!("resolving {}", root.display())))?;
    let lock_path = canonical.join(LOCK_FILE);
    // No daemon can have run on a root whose store is missing (for a
    // command that may not create one) or empty: the store refuses it, and
    // the root is left exactly as it is.
    let store = std::fs::metadata(canonical.join(exo_store::DB_FILE));
    let refused = match &store {
        Ok(metadata) => metadata.len() == 0,
        Err(_) => !create,
    };
    if refused && !lock_path.exists() {
        return Ok(Access::InProcess(InProcessGuard { _lock: None }));
    }
    let deadline = std::time::Instant::now() + ANSWER_WAIT;
    let mut last_failure = None;
    loop {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
        {
            Ok(file) => file,
            // A root this user may read but not write: nothing can be
            // written there in-process either, and no daemon of ours runs.
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                return Ok(Access::InProcess(InProcessGuard { _lock: None }))
            }
            Err(err) => return Err(io(format!("opening {}", lock_path.display()))(err)),
        };
        match file.try_lock_shared() {
            Ok(()) => return Ok(Access::InProcess(InProcessGuard { _lock: Some(file) })),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) => {
                return Err(io(format!("locking {}", lock_path.display()))(err))
            }
        }
        drop(file);
        if let Holder::Daemon(Some(info)) = probe(&canonical) {
            match std::os::unix::net::UnixStream::connect(&info.socket) {
                Ok(stream) => {
                    check_serves(&info, &canonical)?;
                    return Ok(Access::Daemon(info, stream));
                }
                Err(err) => last_failure = Some((info, err)),
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(match last_failure {
                Some((info, err)) => DaemonError::NotAnswering {
                    root: canonical.display().to_string(),
                    pid: info.pid,
                    socket: info.socket.display().to_string(),
                    why: err.to_string(),
                },
                None => DaemonError::NotAnswering {
                    root: canonical.display().to_string(),
                    pid: 0,
                    socket: socket_path(&canonical).display().to_string(),
                    why: "it has not said where it listens".to_string(),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks the daemon at the other end which root it serves: a socket path
/// can name another root's daemon (taken over, or given by hand).
fn check_serves(info: &DaemonInfo, root: &Path) -> Result<(), DaemonError> {
    let failed = |why: String| DaemonError::NotAnswering {
        root: root.display().to_string(),
        pid: info.pid,
        socket: info.socket.display().to_string(),
        why,
    };
    let ask = || -> Result<serde_json::Value, String> {
        let stream =
            std::os::unix::net::UnixStream::connect(&info.socket).map_err(|err| err.to_string())?;
        let mut client = exo_rpc::client::Client::new(stream).map_err(|err| err.to_string())?;
        client.set_timeout(Some(ANSWER_WAIT));
        client
            .call(
                <exo_protocol::methods::DaemonStatusMethod as exo_protocol::Method>::NAME,
                serde_json::json!({}),
            )
            .map_err(|err| err.to_string())
    };
    // The blocking client runs a small runtime of its own, which may not
    // start inside the caller's: on a thread of its own, then.
    let status = std::thread::scope(|scope| {
        scope
            .spawn(ask)
            .join()
            .unwrap_or_else(|_| Err("the check panicked".to_string()))
    })
    .map_err(failed)?;
    let served = status
        .get("root")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if Path::new(served) != root {
        return Err(DaemonError::WrongRoot {
            socket: info.socket.display().to_string(),
            served: served.to_string(),
            root: root.display().to_string(),
        });
    }
    Ok(())
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
    // In-process users of the store (commands run while no daemon was up)
    // hold the lock shared: wait for them, so that every commit the
    // daemon's watchers are told about is one the daemon made.
    let waited_since = std::time::Instant::now();
    let mut said_waiting = false;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) => {
                return Err(io(format!("locking {}", lock_path.display()))(err))
            }
        }
        match probe(&options.root) {
            Holder::Daemon(Some(info)) => {
                if options.stdio {
                    tracing::info!(pid = info.pid, "relaying stdio to the running daemon");
                    return relay_stdio(&info.socket).await;
                }
                return Err(DaemonError::AlreadyRunning {
                    root: options.root.display().to_string(),
                    pid: info.pid,
                    socket: info.socket.display().to_string(),
                });
            }
            // Another daemon is starting: it will say where it listens.
            Holder::Daemon(None) if !options.stdio => {
                return Err(DaemonError::Starting {
                    root: options.root.display().to_string(),
                });
            }
            _ => {}
        }
        if waited_since.elapsed() > IN_PROCESS_WAIT {
            return Err(DaemonError::InUse {
                root: options.root.display().to_string(),
                waited: IN_PROCESS_WAIT.as_secs(),
                holders: describe_holders(&lock_path),
            });
        }
        if !said_waiting {
            tracing::info!(root = %options.root.display(), "waiting for processes using the store without a daemon");
            said_waiting = true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Stale details of an earlier daemon must not be read as ours; they
    // are written once the socket answers.
    lock.set_len(0).map_err(io("writing the lock file"))?;

    let store = Store::open(&options.root, OpenMode::Create)?;
    let service = Service::daemon(store, Some(socket.clone()));
    let (listener, socket_id) = bind(&socket)?;
    let info = DaemonInfo {
        pid: std::process::id(),
        socket: socket.clone(),
    };
    lock.write_all(serde_json::to_string(&info).expect("serializes").as_bytes())
        .and_then(|()| lock.sync_all())
        .map_err(io("writing the lock file"))?;
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
    let (mut failures, mut last_said) = (0u64, None);
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
                // Out of descriptors, most likely: said once a second at
                // most, and waited out rather than spun on.
                failures += 1;
                if last_said
                    .is_none_or(|at: std::time::Instant| at.elapsed() >= Duration::from_secs(1))
                {
                    tracing::warn!(%err, failures, "accept failed");
                    last_said = Some(std::time::Instant::now());
                    failures = 0;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
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
        if service.connections() >= MAX_CONNECTIONS {
            tracing::warn!("too many connections; refusing one");
            continue;
        }
        let (reader, writer) = stream.into_split();
        tracker.spawn(serve_connection(service.clone(), reader, writer));
    }
    drop(listener);
    // Only our own socket: the path may have been taken over since (the
    // file removed by hand and bound again by someone else).
    if std::fs::symlink_metadata(&socket).is_ok_and(|metadata| file_id(&metadata) == socket_id) {
        let _ = std::fs::remove_file(&socket);
    }
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

fn file_id(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

/// Binds the socket; returns the listener and the socket file's identity.
fn bind(socket: &Path) -> Result<(UnixListener, (u64, u64)), DaemonError> {
    // Holding our root's lock says nothing about this path: `--socket` may
    // name any file, or another root's live socket. Only a socket nobody
    // answers on is stale and may go.
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(socket) {
        Ok(metadata) if metadata.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(socket) {
                Ok(_) => {
                    return Err(DaemonError::SocketTaken {
                        path: socket.display().to_string(),
                        why: "it is in use by another daemon",
                    })
                }
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    match std::fs::remove_file(socket) {
                        Ok(()) => {
                            tracing::info!(socket = %socket.display(), "removed a stale socket")
                        }
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(io(format!("removing {}", socket.display()))(err)),
                    }
                }
                Err(err) => return Err(io(format!("checking {}", socket.display()))(err)),
            }
        }
        Ok(_) => {
            return Err(DaemonError::SocketTaken {
                path: socket.display().to_string(),
                why: "it exists and is not a socket",
            })
        }
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
    let metadata =
        std::fs::symlink_metadata(socket).map_err(io(format!("checking {}", socket.display())))?;
    Ok((listener, file_id(&metadata)))
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

/// stdin and stdout as non-blocking pipes or sockets when they are (an
/// editor's job control gives a socket pair), else through tokio's
/// blocking-pool wrappers. A blocked read on the pool cannot be
/// cancelled: it would hold the process up for the runtime's shutdown
/// timeout after the daemon stops, and its client would wait as long for
/// the end of the output.
fn stdio() -> (BoxedReader, BoxedWriter) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned();
    let reader: BoxedReader = match stdin {
        Ok(fd) if is_socket(&fd) => match socket(fd) {
            Ok(stream) => Box::new(stream),
            Err(_) => Box::new(tokio::io::stdin()),
        },
        Ok(fd) => match pipe::Receiver::from_file(File::from(fd)) {
            Ok(receiver) => Box::new(receiver),
            Err(_) => Box::new(tokio::io::stdin()),
        },
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let stdout = std::io::stdout().as_fd().try_clone_to_owned();
    let writer: BoxedWriter = match stdout {
        Ok(fd) if is_socket(&fd) => match socket(fd) {
            Ok(stream) => Box::new(stream),
            Err(_) => Box::new(tokio::io::stdout()),
        },
        Ok(fd) => match pipe::Sender::from_file(File::from(fd)) {
            Ok(sender) => Box::new(sender),
            Err(_) => Box::new(tokio::io::stdout()),
        },
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (reader, writer)
}

fn is_socket(fd: &std::os::fd::OwnedFd) -> bool {
    rustix::fs::fstat(fd)
        .is_ok_and(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_socket())
}

/// A Unix socket given as stdin or stdout, for tokio.
fn socket(fd: std::os::fd::OwnedFd) -> std::io::Result<UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
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
        let _ = tokio::io::AsyncWriteExt::flush(&mut stdout).await;
    };
    tokio::pin!(upstream, downstream);
    // The client closing its side lets the daemon answer what it sent
    // before the relay ends; the daemon closing its side (it stopped)
    // means nothing more can come, and the relay ends at once, so its
    // client sees the end of the output rather than waiting on its input.
    tokio::select! {
        () = &mut upstream => downstream.await,
        () = &mut downstream => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processes_holding_the_lock_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(LOCK_FILE);
        std::fs::write(&lock, "").unwrap();
        // Another process holds it shared, as an in-process command does.
        let mut holder = std::process::Command::new("flock")
            .args(["--shared", lock.to_str().unwrap(), "sleep", "30"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let described = loop {
            let described = describe_holders(&lock);
            if !described.is_empty() || std::time::Instant::now() > deadline {
                break described;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(described.starts_with(": pid "), "{described:?}");
        assert!(
            described.contains("sleep 30") || described.contains("flock"),
            "{described:?}"
        );
    }
}
