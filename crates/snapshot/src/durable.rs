//! Making new objects durable before anyone may record their ids.
//!
//! libgit2 writes loose objects by rename without fsync. Before a snapshot
//! returns, every object written since the last sync point is flushed:
//! a few objects (up to [`PER_FILE_LIMIT`]) by fsyncing each object file, its
//! fan-out directory and `objects/` from parallel threads, which the file
//! system folds into one journal commit; more than that by one `syncfs` of
//! the shadow's file system, which is cheaper than thousands of fsyncs but
//! also flushes whatever else is dirty on that file system.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use git2::Oid;

use crate::error::{Error, IoContext};

/// Above this many new objects, one `syncfs` replaces per-file fsyncs.
pub(crate) const PER_FILE_LIMIT: usize = 48;

/// Most threads used to issue fsyncs at once.
const FSYNC_THREADS: usize = 16;

/// Makes every object in `pending` (and every file in `also`, which must be
/// on the same file system) durable.
pub(crate) fn sync_objects(
    objects_dir: &Path,
    pending: &HashSet<Oid>,
    also: &[&File],
) -> Result<(), Error> {
    if pending.is_empty() && also.is_empty() {
        return Ok(());
    }
    if pending.len() > PER_FILE_LIMIT {
        let dir = File::open(objects_dir).at(objects_dir)?;
        rustix::fs::syncfs(&dir).at(objects_dir)?;
        return Ok(());
    }
    let mut paths: Vec<PathBuf> = Vec::with_capacity(pending.len() * 2 + 1);
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for oid in pending {
        let hex = oid.to_string();
        let dir = objects_dir.join(&hex[..2]);
        let path = dir.join(&hex[2..]);
        // Objects that are not loose are in a pack, made durable by gc.
        if path.exists() {
            paths.push(path);
            dirs.insert(dir);
        }
    }
    if !paths.is_empty() {
        paths.extend(dirs);
        paths.push(objects_dir.to_path_buf());
    }
    fsync_parallel(&paths, also)
}

/// fsyncs every path (files or directories) and every open file, from up to
/// [`FSYNC_THREADS`] threads.
pub(crate) fn fsync_parallel(paths: &[PathBuf], files: &[&File]) -> Result<(), Error> {
    let total = paths.len() + files.len();
    if total == 0 {
        return Ok(());
    }
    if total == 1 {
        return match (paths.first(), files.first()) {
            (Some(path), _) => fsync_path(path),
            (None, Some(file)) => file.sync_all().at("staged metadata file"),
            (None, None) => Ok(()),
        };
    }
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..total.min(FSYNC_THREADS) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                let result = if index < paths.len() {
                    fsync_path(&paths[index])
                } else {
                    files[index - paths.len()]
                        .sync_all()
                        .at("staged metadata file")
                };
                if let Err(error) = result {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(error);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Opens and fsyncs one file or directory.
pub(crate) fn fsync_path(path: &Path) -> Result<(), Error> {
    let file = File::open(path).at(path)?;
    file.sync_all().at(path)
}
