//! exo's durable store: one SQLite database (WAL, `synchronous=FULL`) under
//! the exo root holding agents, conversations, the append-only event log,
//! artifacts, bindings and sealed secrets.
//!
//! # Durability
//!
//! Every mutating call runs in one `BEGIN IMMEDIATE` transaction and returns
//! only after SQLite has committed it with `synchronous=FULL`, which fsyncs
//! the write-ahead log. What a call acknowledged survives `kill -9` and power
//! loss; what it did not is absent as a whole.
//!
//! # History as branches
//!
//! Events live on branches. A branch has a parent branch and a base depth;
//! its events continue the parent's history after that depth, so an event's
//! `seq` is its depth in every history that contains it. A conversation
//! points at one branch and a head depth. Forking and rewinding create a
//! branch: O(1), no event is copied, and events keep their ids. Queries walk
//! the chain of branch segments with index range scans, so their cost
//! follows the page, not the history.
//!
//! This crate knows nothing of JSON-RPC or of the command line.

mod artifact;
mod config;
mod error;
mod identity;
mod log;
mod schema;
mod tree;
mod turn;

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use artifact::{ArtifactVersion, MAX_ARTIFACT_BYTES};
pub use config::{BindingEntry, SecretInfo};
pub use error::{Error, Result};
pub use identity::{Agent, Conversation, ForkOptions};
pub use log::{
    Appended, EventPage, EventQuery, RewindOutcome, DEFAULT_PAGE, MAX_EVENT_BODY_BYTES,
    MAX_EVENT_NESTING, MAX_PAGE, SANDBOX_SNAPSHOT_TYPE,
};
pub use schema::SCHEMA_VERSION;
pub use tree::{ConversationInfo, Fork, Line, Step, StepKind, Tree, SUMMARY_CHARS};
pub use turn::{TurnHandle, TurnInfo};

use exo_core::{ConversationId, Event};

/// The database file's name inside the root.
pub const DB_FILE: &str = "exo.db";

/// Whether [`Store::open`] may create a missing store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the root directory and database if missing.
    Create,
    /// Fail with [`Error::NoStore`] if there is no store.
    Existing,
}

/// A handle to the store. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    conn: Mutex<Connection>,
    /// Branch rows never change once written, so they are cached forever.
    branches: Mutex<HashMap<i64, log::BranchInfo>>,
    /// Sessions this handle opened, with the lock that tells other
    /// processes their owner is alive.
    sessions: Mutex<HashMap<ConversationId, turn::OwnedSession>>,
    /// Told of every batch of events this handle commits.
    listener: Mutex<Option<Arc<dyn CommitListener>>>,
    /// Events appended by the open write transaction, for the listener.
    pending: Mutex<Vec<Event>>,
}

/// Told of the events of each committed write, in commit order, while no
/// other write of this handle can commit. Its methods must not block, and
/// must not call back into the store.
pub trait CommitListener: Send + Sync {
    /// Whether the events appended to `conversation` are wanted. Asked
    /// during the write, under the connection's lock (so the answer holds
    /// until the commit is reported): events nobody wants are not kept.
    fn wants(&self, conversation: ConversationId) -> bool;
    /// The wanted events of a committed write, in commit order.
    fn committed(&self, events: Vec<Event>);
}

impl Store {
    /// Opens (or, with [`OpenMode::Create`], creates) the store under `root`.
    ///
    /// An existing `exo.db` is opened only if it is an exo store: an empty
    /// file (most likely a store truncated by accident) and any other
    /// SQLite file are refused untouched. A new store is built under a
    /// temporary name and linked into place complete, so `exo.db` is never
    /// seen half-created.
    pub fn open(root: impl AsRef<Path>, mode: OpenMode) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        let db_path = root.join(DB_FILE);
        match std::fs::metadata(&db_path) {
            Ok(meta) if meta.is_dir() => return Err(Error::NotAStore(db_path)),
            Ok(meta) if meta.len() == 0 => return Err(Error::EmptyStore(db_path)),
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => match mode {
                OpenMode::Existing => return Err(Error::NoStore(root)),
                OpenMode::Create => {
                    create_root(&root)?;
                    schema::create(&db_path)?;
                }
            },
            Err(err) => return Err(Error::io(format!("reading {}", db_path.display()), err)),
        }
        // No SQLITE_OPEN_CREATE: a store removed since the check above is
        // not silently made again.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = (|| {
            let mut conn = Connection::open_with_flags(&db_path, flags)?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            // What is in the file is checked before anything is written to
            // it (setting WAL mode writes the header).
            schema::check(&conn, &db_path)?;
            configure(&conn)?;
            schema::migrate(&mut conn, &db_path)?;
            Ok(conn)
        })()
        .map_err(|err| schema::file_error(err, &db_path))?;
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                conn: Mutex::new(conn),
                branches: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                listener: Mutex::new(None),
                pending: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Sets the listener told of every event this handle commits. Writes
    /// made by other processes are not seen; a daemon that wants to see
    /// every write must be the only writer.
    pub fn set_commit_listener(&self, listener: Option<Arc<dyn CommitListener>>) {
        *lock(&self.inner.listener) = listener;
    }
}

impl Inner {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable: any
        // open transaction was rolled back when it was dropped.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one immediate (write-locked) transaction and commits,
    /// then tells the listener what was appended, still holding the
    /// connection so that listeners see commits in order.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        // Events a panicking write left behind were rolled back with it:
        // they must never reach the listener.
        lock(&self.pending).clear();
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        let appended = std::mem::take(&mut *lock(&self.pending));
        if result.is_ok() && !appended.is_empty() {
            if let Some(listener) = lock(&self.listener).clone() {
                listener.committed(appended);
            }
        }
        result.map_err(|err| self.file_error(err))
    }

    /// Names the database file when SQLite finds it damaged.
    fn file_error(&self, err: Error) -> Error {
        schema::file_error(err, &self.root.join(DB_FILE))
    }

    /// Whether events appended to `conversation` must be kept for a
    /// listener.
    pub(crate) fn wants(&self, conversation: ConversationId) -> bool {
        lock(&self.listener)
            .as_ref()
            .is_some_and(|listener| listener.wants(conversation))
    }

    /// Keeps appended events for the listener, until the write ends.
    pub(crate) fn note_appended(&self, events: Vec<Event>) {
        let mut pending = lock(&self.pending);
        if pending.is_empty() {
            *pending = events;
        } else {
            pending.extend(events);
        }
    }

    /// Runs `f` in one read transaction: a consistent snapshot.
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            f(&tx)
        })()
        .map_err(|err| self.file_error(err))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .finish()
    }
}

/// Sets the connection up: WAL + synchronous=FULL, so each commit fsyncs
/// the log before it returns, and readers never block the writer.
fn configure(conn: &Connection) -> Result<()> {
    let journal: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(Error::Corrupt(format!(
            "cannot enable WAL (journal mode is {journal})"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Creates the root directory if it is missing, readable by its owner only:
/// it holds conversations and sealed secrets.
pub fn create_root(root: &Path) -> Result<()> {
    if root.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|err| Error::io(format!("creating {}", root.display()), err))
}

/// Whether `path` is `root` or lies inside it, once symlinks and `..` are
/// resolved in both. `path` need not exist: a missing tail is taken as
/// written. exo keeps its own state under the root, so no workspace or
/// output file may be there.
pub fn is_inside_root(root: &Path, path: &Path) -> std::io::Result<bool> {
    Ok(resolve_path(path)?.starts_with(resolve_path(root)?))
}

/// The absolute path `path` names once every symlink (dangling ones
/// included) and `..` is resolved, for a path that need not exist yet:
/// what a file created at `path` would really be.
pub fn resolve_path(path: &Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    /// Symlinks followed before giving up, as the kernel's `ELOOP` does.
    const MAX_LINKS: usize = 40;
    let mut resolved = PathBuf::from("/");
    // The components still to walk, last first.
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    let push = |rest: &mut Vec<std::ffi::OsString>, path: &Path| {
        rest.extend(path.components().rev().map(|c| c.as_os_str().to_owned()));
    };
    push(&mut rest, &std::path::absolute(path)?);
    let mut links = 0;
    while let Some(part) = rest.pop() {
        match Path::new(&part).components().next() {
            Some(Component::RootDir) => resolved = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                resolved.pop();
            }
            Some(Component::Normal(name)) => {
                let next = resolved.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(std::io::Error::other(format!(
                                "too many levels of symbolic links in {}",
                                path.display()
                            )));
                        }
                        // `resolved` holds no symlink, so the link's target
                        // is taken relative to it.
                        push(&mut rest, &std::fs::read_link(&next)?);
                    }
                    _ => resolved = next,
                }
            }
            Some(Component::CurDir | Component::Prefix(_)) | None => {}
        }
    }
    Ok(resolved)
}

/// Locks a mutex whose data stays valid even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads a 16-byte id column.
pub(crate) fn id_column<T>(
    row: &rusqlite::Row<'_>,
    index: usize,
    make: fn([u8; 16]) -> T,
) -> rusqlite::Result<T> {
    let bytes: [u8; 16] = row.get(index)?;
    Ok(make(bytes))
}

/// Reads a nullable 16-byte id column.
pub(crate) fn opt_id_column<T>(
    row: &rusqlite::Row<'_>,
    index: usize,
    make: fn([u8; 16]) -> T,
) -> rusqlite::Result<Option<T>> {
    let bytes: Option<[u8; 16]> = row.get(index)?;
    Ok(bytes.map(make))
}
