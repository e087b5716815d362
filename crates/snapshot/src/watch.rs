//! [`Watcher`]: which paths changed since the last snapshot.
//!
//! One inotify instance (through `notify`) watches, non-recursively, every
//! directory a snapshot would enter (ignored directories, `.git` internals
//! and the exo root are left out, so `node_modules` or `target` cost no
//! watches), plus each repository's `.git` and `.git/info` (whose `exclude`
//! changes what is captured), plus a sentinel directory inside the shadow
//! directory.
//!
//! **Completeness.** `take_hint` creates a new file in the sentinel
//! directory and waits for its event. inotify queues the events of one
//! instance in the order they happen, so once the sentinel's event has been
//! delivered every change made before `take_hint` was called has been too.
//! Directories that appear (created, moved in, or un-ignored by an edited
//! ignore file) get their watches during `take_hint`, before it returns; the
//! hint names them, so the snapshot that follows re-walks them after the
//! watches exist. Whenever events may have been lost (queue overflow, a
//! watcher error, a watch that could not be added, the sentinel not
//! arriving in time, or the first call), the hint is [`ScanHint::Full`].

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::{Error, IoContext};
use crate::paths;
use crate::scan::{self, Cone, Walker};
use crate::ScanHint;

/// How long `take_hint` waits for its sentinel event before giving up (and
/// answering [`ScanHint::Full`]).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Above this many distinct changed paths, a full scan is cheaper to
/// describe: the hint becomes [`ScanHint::Full`].
const MAX_PENDING_PATHS: usize = 100_000;

/// What the notify thread has collected since the last drain.
#[derive(Default)]
struct Pending {
    paths: HashSet<PathBuf>,
    /// Events may have been missed.
    rescan: bool,
    /// Sentinel file names seen.
    sentinels: HashSet<OsString>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    arrived: Condvar,
}

/// Watches a workspace and accumulates the paths that changed, so that
/// [`crate::Shadow::snapshot`] hashes only those.
///
/// Hints are relative to the workspace. Every hint must be passed to a
/// snapshot of the same `Shadow`: a hint covers the changes since the
/// previous `take_hint`, so dropping one loses changes.
///
/// Known blind spots (take an occasional [`ScanHint::Full`] snapshot if they
/// matter): writes through a shared `mmap` produce no inotify events, nor do
/// changes made by other machines on a network file system.
pub struct Watcher {
    workspace: PathBuf,
    sentinel_dir: PathBuf,
    walker: Walker,
    notify: RecommendedWatcher,
    shared: Arc<Shared>,
    /// Directories with a watch (relative; the root is `""`).
    watched: BTreeSet<Vec<u8>>,
    /// No `take_hint` yet: the next answer is `Full`.
    first: bool,
    /// A watch could not be added: hints cannot be complete.
    degraded: bool,
    flushes: u64,
}

impl Watcher {
    /// Starts watching `workspace`; the sentinel lives in
    /// `<exo_root>/snapshots/<id>.git/watch`.
    pub fn new(workspace: &Path, exo_root: &Path) -> Result<Watcher, Error> {
        Watcher::excluding(workspace, exo_root, &[])
    }

    /// [`Watcher::new`] that also leaves out the directories a shadow
    /// leaves out ([`crate::Options::exclude`]): no watch goes there.
    pub fn excluding(
        workspace: &Path,
        exo_root: &Path,
        exclude: &[PathBuf],
    ) -> Result<Watcher, Error> {
        let workspace = fs::canonicalize(workspace).at(workspace)?;
        let snapshots = exo_root.join("snapshots");
        fs::create_dir_all(&snapshots).at(&snapshots)?;
        let exo_root = fs::canonicalize(exo_root).at(exo_root)?;
        let sentinel_dir = paths::shadow_dir(&exo_root, &workspace).join("watch");
        fs::create_dir_all(&sentinel_dir).at(&sentinel_dir)?;
        let walker = Walker::new(workspace.clone(), &exo_root, exclude);
        let shared = Arc::new(Shared::default());
        let notify = start(&shared, &sentinel_dir)?;
        let mut watcher = Watcher {
            workspace,
            sentinel_dir,
            walker,
            notify,
            shared,
            watched: BTreeSet::new(),
            first: true,
            degraded: false,
            flushes: 0,
        };
        watcher.watch_all();
        Ok(watcher)
    }

    /// Everything that changed since the last call (workspace-relative
    /// paths), or [`ScanHint::Full`] when that cannot be known for sure.
    pub fn take_hint(&mut self) -> ScanHint {
        let flushed = self.flush();
        let drained = {
            let mut pending = lock(&self.shared.pending);
            pending.sentinels.clear();
            let rescan = std::mem::take(&mut pending.rescan);
            (std::mem::take(&mut pending.paths), rescan)
        };
        let (changed, rescan) = drained;
        if !flushed || rescan || self.degraded {
            tracing::debug!(
                flushed,
                rescan,
                degraded = self.degraded,
                "watcher: full rescan"
            );
            self.restart();
            self.first = false;
            return ScanHint::Full;
        }
        let mut hint = BTreeSet::new();
        let mut resync = BTreeSet::new();
        for path in changed {
            let Some(rel) = paths::relative(&self.workspace, &path) else {
                continue;
            };
            if let Some(root) = self.needs_resync(&path, &rel) {
                resync.insert(root);
            }
            hint.insert(paths::to_path(&rel));
        }
        if !resync.is_empty() {
            self.resync(resync);
        }
        if std::mem::take(&mut self.first) || self.degraded {
            return ScanHint::Full;
        }
        ScanHint::Paths(hint)
    }

    /// Whether a changed path calls for (re)adding watches, and below which
    /// directory.
    fn needs_resync(&self, path: &Path, rel: &[u8]) -> Option<Vec<u8>> {
        let components: Vec<&[u8]> = if rel.is_empty() {
            Vec::new()
        } else {
            rel.split(|&byte| byte == b'/').collect()
        };
        if let Some(git) = components
            .iter()
            .position(|name| paths::is_git_dir_name(name))
        {
            let tail = &components[git + 1..];
            return (tail.is_empty() || tail == [b"info"] || tail == [&b"info"[..], b"exclude"])
                .then(|| components[..git].join(&b'/'));
        }
        if matches!(
            components.last().copied(),
            Some(b".gitignore") | Some(b".exoignore")
        ) {
            return Some(paths::parent(rel).to_vec());
        }
        let start = paths::subtree_start(rel);
        let had_watches = self.watched.contains(rel)
            || self
                .watched
                .range(start.clone()..)
                .next()
                .is_some_and(|watched| watched.starts_with(&start));
        if had_watches {
            return Some(rel.to_vec());
        }
        let is_dir = fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir());
        is_dir.then(|| rel.to_vec())
    }

    /// Creates a sentinel file and waits until its event arrives.
    fn flush(&mut self) -> bool {
        self.flushes += 1;
        let name = format!("flush-{}-{}", std::process::id(), self.flushes);
        let path = self.sentinel_dir.join(&name);
        if let Err(error) = File::create(&path) {
            tracing::warn!(%error, path = %path.display(), "watcher: cannot create the sentinel");
            return false;
        }
        let name = OsString::from(name);
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let mut pending = lock(&self.shared.pending);
        let arrived = loop {
            if pending.sentinels.remove(&name) {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            pending = match self.shared.arrived.wait_timeout(pending, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poison) => poison.into_inner().0,
            };
        };
        drop(pending);
        let _ = fs::remove_file(&path);
        if !arrived {
            tracing::warn!("watcher: the sentinel event did not arrive in time");
        }
        arrived
    }

    /// Forgets the watches below each root and adds watches for every
    /// directory a snapshot would enter there.
    fn resync(&mut self, roots: BTreeSet<Vec<u8>>) {
        let roots = scan::collapse(roots);
        for root in &roots {
            self.watched
                .retain(|watched| !paths::is_within(watched, root));
        }
        if roots.contains(&Vec::new()) {
            self.watch_all();
            return;
        }
        let cone = Arc::new(Cone::new(roots));
        self.watch_walk(Some(cone));
    }

    /// Adds watches for every directory a snapshot would enter.
    fn watch_all(&mut self) {
        self.watch_walk(None);
    }

    fn watch_walk(&mut self, cone: Option<Arc<Cone>>) {
        let walker = self.walker.clone();
        walker.walk_dirs(cone, |abs, rel| {
            if self.watched.contains(rel) {
                return;
            }
            self.add_watch(abs, rel.to_vec());
            // A repository's `.git` and `.git/info`, for `info/exclude`.
            let git = abs.join(".git");
            if git
                .symlink_metadata()
                .is_ok_and(|metadata| metadata.is_dir())
            {
                self.add_watch(&git, paths::child(rel, b".git"));
                let info = git.join("info");
                if info
                    .symlink_metadata()
                    .is_ok_and(|metadata| metadata.is_dir())
                {
                    self.add_watch(&info, paths::child(rel, b".git/info"));
                }
            }
        });
    }

    fn add_watch(&mut self, abs: &Path, rel: Vec<u8>) {
        match self.notify.watch(abs, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(rel);
            }
            // Gone already: its parent's event puts it in a hint.
            Err(error) if matches!(error.kind, notify::ErrorKind::PathNotFound) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => {
                tracing::warn!(%error, path = %abs.display(), "watcher: cannot watch a directory; every snapshot will be a full scan");
                self.degraded = true;
            }
        }
    }

    /// Replaces the inotify instance and every watch (after lost events).
    fn restart(&mut self) {
        let _ = fs::create_dir_all(&self.sentinel_dir);
        let shared = Arc::new(Shared::default());
        match start(&shared, &self.sentinel_dir) {
            Ok(notify) => {
                self.notify = notify;
                self.shared = shared;
                self.watched.clear();
                self.degraded = false;
                self.watch_all();
            }
            Err(error) => {
                tracing::warn!(%error, "watcher: cannot restart");
                self.degraded = true;
            }
        }
    }
}

fn is_not_found(error: &notify::Error) -> bool {
    matches!(&error.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
}

fn lock(mutex: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// A notify watcher feeding `shared`, already watching the sentinel dir.
fn start(shared: &Arc<Shared>, sentinel_dir: &Path) -> Result<RecommendedWatcher, Error> {
    let handler_shared = Arc::clone(shared);
    let handler_sentinel = sentinel_dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        handle(&handler_shared, &handler_sentinel, result);
    })
    .map_err(|error| Error::Watch(error.to_string()))?;
    watcher
        .watch(sentinel_dir, RecursiveMode::NonRecursive)
        .map_err(|error| Error::Watch(format!("{}: {error}", sentinel_dir.display())))?;
    Ok(watcher)
}

/// Runs on notify's thread for every event.
fn handle(shared: &Shared, sentinel_dir: &Path, result: notify::Result<notify::Event>) {
    let mut pending = lock(&shared.pending);
    match result {
        Err(error) => {
            tracing::debug!(%error, "watcher error");
            pending.rescan = true;
        }
        Ok(event) => {
            if event.need_rescan() {
                pending.rescan = true;
            }
            // Opens, reads and closes change nothing (and a snapshot's own
            // reads must not feed the next hint).
            if !matches!(event.kind, EventKind::Access(_)) {
                for path in event.paths {
                    if path.parent() == Some(sentinel_dir) {
                        if let Some(name) = path.file_name() {
                            pending.sentinels.insert(name.to_owned());
                        }
                        continue;
                    }
                    if pending.paths.len() >= MAX_PENDING_PATHS {
                        pending.rescan = true;
                        pending.paths.clear();
                    }
                    if !pending.rescan {
                        pending.paths.insert(path);
                    }
                }
            }
        }
    }
    drop(pending);
    shared.arrived.notify_all();
}
