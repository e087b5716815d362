//! The crate's one error type.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in `exo-snapshot`.
///
/// Messages are one line, without a trailing period, so callers can print
/// them as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `restore` refused: the workspace differs from the snapshot the caller
    /// expected it to be at. `paths` are workspace-relative and sorted.
    #[error("workspace changed since the last snapshot: {}; use --force to overwrite (a safety snapshot is taken first)", list_paths(paths))]
    Conflict {
        /// The paths that drifted, workspace-relative, sorted.
        paths: Vec<PathBuf>,
    },
    /// A commit, a workspace or another named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Another process holds the shadow store's lock.
    #[error("busy: {0}")]
    Busy(String),
    /// An argument was malformed (an object id that is not 40 hex digits, a
    /// target directory that is not empty, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// libgit2 failed on the shadow object store.
    #[error("shadow object store: {}", .0.message())]
    Git(#[from] git2::Error),
    /// The file system watcher failed to start or to watch a directory.
    #[error("file watcher: {0}")]
    Watch(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// `a.txt, b/c.rs`, shortened to the first ten paths and a count.
fn list_paths(paths: &[PathBuf]) -> String {
    const SHOWN: usize = 10;
    let mut out = String::new();
    for (index, path) in paths.iter().take(SHOWN).enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}", path.display());
    }
    if paths.len() > SHOWN {
        let _ = write!(out, " and {} more", paths.len() - SHOWN);
    }
    out
}

/// Extension for attaching a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] about `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, Error> {
        self.map_err(|source| Error::io(path, source))
    }
}

impl<T> IoContext<T> for Result<T, rustix::io::Errno> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, Error> {
        self.map_err(|errno| Error::io(path, io::Error::from(errno)))
    }
}
