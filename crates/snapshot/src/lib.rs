//! Git-backed workspace snapshots in a shadow object store.
//!
//! A conversation may be bound to a workspace directory. A **snapshot** is a
//! git tree and a parentless commit of the whole workspace as it is on disk,
//! whoever changed it, stored in a **shadow** repository inside the exo root,
//! one per workspace: `<exo_root>/snapshots/<id>.git` (bare; `<id>` is the
//! first 16 hex digits of the SHA-256 of the workspace's canonical path).
//! History lives in exo's event log, which records commit ids; the shadow
//! only stores objects.
//!
//! The user's own repository is never touched: not its HEAD, branches,
//! index, stash, config, hooks or untracked files. git is never run in the
//! workspace, and the workspace's `.git` is never used as a git directory.
//!
//! # What is captured
//!
//! See `spec/snapshots.md` for the full list. In short: `.gitignore` files
//! (nested too), `.git/info/exclude` and `.exoignore` files are respected;
//! hidden files are captured; every entry named `.git` is left out, but a
//! nested repository's files are captured as plain files; the exo root is
//! left out when it lies inside the workspace; files over
//! [`Options::max_file_bytes`] and special files (FIFOs, sockets, devices)
//! are skipped and reported; symlinks (never followed), the executable bit,
//! permission bits narrower than git's `644`/`755` (kept in a small note
//! blob beside the tree, see `src/perms.rs`), binary and empty files and
//! non-UTF-8 names survive a round trip. Empty directories are not captured
//! (git has no such thing). Directories named in [`Options::exclude`] (exo's
//! key file directory, say) are never captured, diffed, restored or
//! materialised.
//!
//! # Incremental snapshots
//!
//! A persistent stat cache (`<shadow>/exo-index`, format in `src/index.rs`)
//! lets a full scan re-hash only files whose stat changed. A [`Watcher`]
//! goes further: its [`ScanHint::Paths`] tell [`Shadow::snapshot`] which
//! paths to look at, so a snapshot after a one-file change walks only that
//! file's ancestors and rebuilds only their trees.
//!
//! Hint paths may be workspace-relative or absolute below the workspace's
//! canonical path (any other absolute path, or a `..`, makes the snapshot a
//! full scan). A hinted directory is re-walked entirely; a hinted
//! `.gitignore` or `.exoignore` re-walks its directory; a hinted `.git`,
//! `.git/info` or `.git/info/exclude` re-walks the repository's directory;
//! other paths inside a `.git` are ignored.
//!
//! # Durability
//!
//! [`Shadow::snapshot`] returns only after every object its commit needs is
//! on disk (fsynced), so the caller may record the commit id at once. Many
//! new objects are written as one pack, a few as loose objects; callers
//! should run [`Shadow::gc`] now and then to fold packs and drop what no
//! conversation refers to any more.

//! # Object ids
//!
//! [`Oid`] is a `String`: 40 lowercase hex digits, as git prints them, so
//! callers can store it as is. Functions taking an `Oid` accept either case
//! and fail with [`Error::Invalid`] on anything else.

#![deny(unsafe_code)]

mod checkout;
mod diff;
mod durable;
mod error;
mod index;
mod pack;
mod paths;
mod perms;
mod scan;
mod shadow;
mod sink;
mod tree;
mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use error::Error;
pub use shadow::{Materialized, Shadow, LOCK_TIMEOUT};
pub use watch::Watcher;

/// A git object id: 40 lowercase hex digits.
pub type Oid = String;

/// The default [`Options::max_file_bytes`]: 50 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 50 << 20;

/// How a shadow captures a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Files larger than this are not captured; snapshots report them in
    /// [`Snapshot::skipped`]. Default [`DEFAULT_MAX_FILE_BYTES`].
    pub max_file_bytes: u64,
    /// Directories left out of everything, like the exo root (which always
    /// is): never captured, never listed or shown by a diff, never written
    /// or removed by a restore, never materialised. Absolute paths (a
    /// relative one is taken from the current directory); symlinks in them
    /// are resolved as far as they exist, and they need not exist yet. Only
    /// those strictly inside the workspace matter; a workspace inside one
    /// is refused. Meant for secrets exo keeps outside its root, such as
    /// the key file's directory.
    pub exclude: Vec<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            exclude: Vec::new(),
        }
    }
}

/// Which paths may have changed since the last snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanHint {
    /// Anything may have changed: walk the whole workspace.
    Full,
    /// Only these paths (workspace-relative, or absolute below the
    /// workspace's canonical path) may have changed; a directory stands for
    /// its whole subtree.
    Paths(BTreeSet<PathBuf>),
}

/// The result of [`Shadow::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The commit, to be recorded in exo's log.
    pub commit: Oid,
    /// The commit's tree: equal trees mean equal workspaces.
    pub tree: Oid,
    /// Files added since [`Shadow::last`] (every file for the first).
    pub added: u64,
    /// Files whose content, type or executable bit changed since `last`.
    pub modified: u64,
    /// Files deleted since `last`.
    pub deleted: u64,
    /// Files not captured: too large, special, unreadable. Sorted by path.
    pub skipped: Vec<Skipped>,
    /// Whether the whole workspace was walked (no usable hint).
    pub full_scan: bool,
}

/// A path a snapshot or restore left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Workspace-relative (bytes preserved).
    pub path: PathBuf,
    /// Its size in bytes (0 when unknown or irrelevant).
    pub size: u64,
    /// Why, in a few words: `larger than the 50 MiB limit`, `special file
    /// (fifo)`, `unreadable: ...`, or for restore what was in the way.
    pub reason: String,
}

/// One path that differs between two states.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Workspace-relative (bytes preserved).
    pub path: PathBuf,
    /// How it differs.
    pub kind: ChangeKind,
}

/// How a path differs, going from the first state to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Content differs, or it changed between file and symlink.
    Modified,
    /// Only in the first.
    Deleted,
    /// Same content, permissions changed: the executable bit flipped, or
    /// permission bits narrower than git's `644`/`755` changed.
    ModeChanged,
}

/// How [`Shadow::restore`] behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Overwrite even if the workspace drifted from `expected`.
    pub force: bool,
    /// Write nothing; report what would change.
    pub dry_run: bool,
    /// Rather than refuse when the workspace drifted from `expected`, leave
    /// the drifted paths alone, restore the rest, and report the drifted
    /// ones in [`RestoreReport::conflicts`]. For a caller that has just
    /// recorded `expected` as a safety snapshot: whatever changed since is
    /// in no snapshot, and must not be overwritten. Ignored with `force`.
    pub keep_drifted: bool,
}

/// What [`Shadow::restore`] did (or, for a dry run, would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// Workspace → target changes made (for a dry run: planned), sorted by
    /// path. A path left alone is never listed here.
    pub changes: Vec<Change>,
    /// Whether anything was written (false for a dry run).
    pub written: bool,
    /// Paths of the target left alone because something uncaptured
    /// (ignored, too large, special) is in the way. Sorted by path.
    pub skipped: Vec<Skipped>,
    /// Paths left alone because they changed on disk after the restore
    /// planned them (or, with [`RestoreOptions::keep_drifted`], since
    /// `expected`); `kind` says how the disk differs from what was planned
    /// on (`Added`: something appeared; `Deleted`: it vanished). Their
    /// content on disk is whatever the other writer left. Sorted by path.
    pub conflicts: Vec<Change>,
}

impl RestoreReport {
    /// Whether some path of the target was left alone.
    pub fn is_partial(&self) -> bool {
        !self.skipped.is_empty() || !self.conflicts.is_empty()
    }
}

/// What [`Shadow::gc`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcReport {
    /// Objects in the store before (an object both loose and packed counts twice).
    pub objects_before: u64,
    /// Objects in the store after.
    pub objects_after: u64,
    /// How much smaller `objects/` became.
    pub bytes_freed: u64,
}
