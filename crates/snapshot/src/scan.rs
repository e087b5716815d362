//! Walking a workspace and hashing what changed.
//!
//! The walk is ripgrep's (`ignore`): `.gitignore` files at every level,
//! `.git/info/exclude`, and `.exoignore` files (gitignore syntax, taking
//! precedence over `.gitignore`), hidden files included, symlinks never
//! followed, every entry named `.git` and the exo root left out, nothing read
//! above the workspace root.
//!
//! A **cone** restricts a walk to some roots: the walk still enters every
//! ancestor of a root (so the ignore files along the way apply exactly as in
//! a full walk) but yields only the roots, their subtrees, and the ancestors
//! themselves. An incremental snapshot walks the cone of the paths a watcher
//! reported, so a full walk and a cone walk always agree on what is ignored.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use git2::{ObjectType, Repository};
use ignore::{ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};

use crate::error::{Error, IoContext};
use crate::index::{Entry, Stat};
use crate::paths;
use crate::sink::{self, Written};
use crate::Skipped;

/// The name of exo's own ignore files (gitignore syntax).
pub(crate) const EXOIGNORE: &str = ".exoignore";

/// Entries changed less than this long before the scan that hashed them
/// are re-hashed by the next scan whatever their stat says (racy clean),
/// when their timestamps have sub-second precision: the kernel stamps files
/// from a clock at most one tick (a few milliseconds) behind the time of
/// day, so a file rewritten after the scan read it gets timestamps no
/// earlier than the scan's start minus a tick.
pub(crate) const RACY_MARGIN_NS: i64 = 100_000_000;

/// The margin for timestamps without sub-second part (file systems with one-
/// or two-second timestamps).
pub(crate) const RACY_MARGIN_COARSE_NS: i64 = 2_100_000_000;

/// Whether an entry hashed by a scan that started at `scan_start_ns` must
/// be re-hashed next time even if its stat is unchanged.
pub(crate) fn is_racy(stat: &Stat, scan_start_ns: i64) -> bool {
    let newest = stat.newest_ns();
    let margin = if newest % 1_000_000_000 == 0 {
        RACY_MARGIN_COARSE_NS
    } else {
        RACY_MARGIN_NS
    };
    newest >= scan_start_ns - margin
}

/// How to walk one workspace.
#[derive(Clone)]
pub(crate) struct Walker {
    /// The canonical workspace root.
    root: PathBuf,
    /// Directories left out (the exo root, and the caller's excluded
    /// directories), those strictly inside the workspace, resolved.
    exclude: Arc<Vec<PathBuf>>,
    threads: usize,
}

/// The roots of a restricted walk (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Cone {
    roots: BTreeSet<Vec<u8>>,
}

impl Cone {
    /// A cone over `roots`, none of which may be `""` (that is a full walk)
    /// and none of which lies below another (the caller collapses them).
    pub(crate) fn new(roots: BTreeSet<Vec<u8>>) -> Cone {
        debug_assert!(!roots.contains(&Vec::new()));
        Cone { roots }
    }

    pub(crate) fn roots(&self) -> &BTreeSet<Vec<u8>> {
        &self.roots
    }

    /// Whether a walk should yield (and, for a directory, enter) `rel`.
    pub(crate) fn admits(&self, rel: &[u8]) -> bool {
        // `rel` is at or below a root.
        if self.roots.contains(rel) || paths::ancestors(rel).any(|dir| self.roots.contains(dir)) {
            return true;
        }
        // `rel` is an ancestor of a root: some root starts with `rel/`.
        let start = paths::subtree_start(rel);
        self.roots
            .range(start.clone()..)
            .next()
            .is_some_and(|root| root.starts_with(&start))
    }
}

/// Collapses a set of roots so none lies below another.
pub(crate) fn collapse(roots: BTreeSet<Vec<u8>>) -> BTreeSet<Vec<u8>> {
    let mut kept: BTreeSet<Vec<u8>> = BTreeSet::new();
    for root in roots {
        // Sorted order puts `a` before `a/b`; check the ancestors only.
        if root.is_empty() {
            return BTreeSet::from([Vec::new()]);
        }
        if paths::ancestors(&root).any(|dir| kept.contains(dir)) {
            continue;
        }
        kept.insert(root);
    }
    kept
}

/// What kind of non-directory a walk found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Symlink,
    /// A FIFO, socket or device: never captured.
    Special(&'static str),
}

/// One non-directory the walk yielded.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) rel: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) stat: Stat,
}

/// Everything a walk yielded.
#[derive(Default)]
pub(crate) struct Walked {
    pub(crate) files: Vec<Found>,
    /// Directories entered (relative; the root is `""`).
    pub(crate) dirs: HashSet<Vec<u8>>,
    /// Directories that could not be read, with the reason.
    pub(crate) errors: Vec<(Vec<u8>, String)>,
}

impl Walker {
    /// A walker of `root` (canonical) leaving out `exo_root` (canonical)
    /// and `exclude` (any absolute paths) where they lie inside it.
    pub(crate) fn new(root: PathBuf, exo_root: &Path, exclude: &[PathBuf]) -> Walker {
        let mut excluded: Vec<PathBuf> = Vec::new();
        for dir in std::iter::once(exo_root.to_path_buf())
            .chain(exclude.iter().map(|dir| paths::resolve_what_exists(dir)))
        {
            if dir != root && dir.starts_with(&root) && !excluded.contains(&dir) {
                excluded.push(dir);
            }
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8);
        Walker {
            root,
            exclude: Arc::new(excluded),
            threads,
        }
    }

    /// The relative paths of the directories left out (the exo root and
    /// the caller's), those inside the workspace.
    pub(crate) fn excluded_rels(&self) -> Vec<Vec<u8>> {
        self.exclude
            .iter()
            .filter_map(|exclude| paths::relative(&self.root, exclude))
            .filter(|rel| !rel.is_empty())
            .collect()
    }

    fn builder(&self, cone: Option<Arc<Cone>>) -> WalkBuilder {
        let mut builder = WalkBuilder::new(&self.root);
        builder
            .hidden(false)
            .ignore(false)
            .git_ignore(true)
            .git_exclude(true)
            .git_global(false)
            .require_git(false)
            .parents(false)
            .follow_links(false)
            .same_file_system(false)
            .add_custom_ignore_filename(EXOIGNORE)
            .threads(self.threads);
        let root_len = self.root.as_os_str().len();
        let exclude = Arc::clone(&self.exclude);
        builder.filter_entry(move |entry| {
            if entry.depth() == 0 {
                return true;
            }
            if paths::is_git_dir_name(entry.file_name().as_bytes()) {
                return false;
            }
            if exclude.iter().any(|dir| dir == entry.path()) {
                return false;
            }
            match &cone {
                None => true,
                Some(cone) => cone.admits(rel_bytes(entry.path(), root_len)),
            }
        });
        builder
    }

    /// Walks the workspace (or a cone of it) on several threads, taking the
    /// `lstat` of every non-directory.
    pub(crate) fn walk(&self, cone: Option<Arc<Cone>>) -> Walked {
        let root_len = self.root.as_os_str().len();
        if cone.is_some() {
            // A cone is small: threads would cost more than they save.
            let mut collector = Collector {
                shared: None,
                root_len,
                local: Walked::default(),
            };
            for entry in self.builder(cone).build() {
                collector.visit(entry);
            }
            return std::mem::take(&mut collector.local);
        }
        let walk = self.builder(cone).build_parallel();
        let shared = Mutex::new(Walked::default());
        let mut builder = CollectorBuilder {
            shared: &shared,
            root_len: self.root.as_os_str().len(),
        };
        walk.visit(&mut builder);
        shared
            .into_inner()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Walks on this thread, calling `on_dir` with every directory (absolute
    /// and relative path) *before* the walk reads it, so a watch added in
    /// `on_dir` sees every entry created after the listing.
    pub(crate) fn walk_dirs(&self, cone: Option<Arc<Cone>>, mut on_dir: impl FnMut(&Path, &[u8])) {
        let root_len = self.root.as_os_str().len();
        for entry in self.builder(cone).build().flatten() {
            if entry.file_type().is_some_and(|kind| kind.is_dir()) {
                on_dir(entry.path(), rel_bytes(entry.path(), root_len));
            }
        }
    }
}

/// The bytes of `path` after the root and its `/`.
fn rel_bytes(path: &Path, root_len: usize) -> &[u8] {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() <= root_len {
        &[]
    } else {
        &bytes[root_len + 1..]
    }
}

struct CollectorBuilder<'a> {
    shared: &'a Mutex<Walked>,
    root_len: usize,
}

impl<'s> ParallelVisitorBuilder<'s> for CollectorBuilder<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Collector {
            shared: Some(self.shared),
            root_len: self.root_len,
            local: Walked::default(),
        })
    }
}

/// One walker thread's findings, merged into the shared result on drop.
struct Collector<'a> {
    /// Where to merge on drop (none when walking on one thread).
    shared: Option<&'a Mutex<Walked>>,
    root_len: usize,
    local: Walked,
}

impl ParallelVisitor for Collector<'_> {
    fn visit(&mut self, entry: Result<ignore::DirEntry, ignore::Error>) -> WalkState {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                if let Some((path, io_error)) = error_path(&error) {
                    if io_error.is_some_and(|kind| kind == io::ErrorKind::NotFound) {
                        return WalkState::Continue;
                    }
                    let rel = rel_bytes(&path, self.root_len).to_vec();
                    self.local.errors.push((rel, error.to_string()));
                } else {
                    tracing::warn!(%error, "snapshot walk");
                }
                return WalkState::Continue;
            }
        };
        let rel = rel_bytes(entry.path(), self.root_len).to_vec();
        let Some(file_type) = entry.file_type() else {
            return WalkState::Continue;
        };
        if file_type.is_dir() {
            self.local.dirs.insert(rel);
            return WalkState::Continue;
        }
        // `metadata` is an lstat: the walk never follows links.
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(_) => return WalkState::Continue, // vanished since the listing
        };
        let Some(kind) = classify(metadata.file_type()) else {
            // It became a directory since the listing; a later scan sees it.
            return WalkState::Continue;
        };
        self.local.files.push(Found {
            rel,
            kind,
            stat: Stat::from_metadata(&metadata),
        });
        WalkState::Continue
    }
}

impl Drop for Collector<'_> {
    fn drop(&mut self) {
        let Some(shared) = self.shared else { return };
        let local = std::mem::take(&mut self.local);
        let mut shared = shared.lock().unwrap_or_else(|poison| poison.into_inner());
        shared.files.extend(local.files);
        shared.dirs.extend(local.dirs);
        shared.errors.extend(local.errors);
    }
}

/// The kind of a non-directory; `None` for a directory.
pub(crate) fn classify(file_type: std::fs::FileType) -> Option<Kind> {
    Some(if file_type.is_dir() {
        return None;
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_fifo() {
        Kind::Special("fifo")
    } else if file_type.is_socket() {
        Kind::Special("socket")
    } else if file_type.is_block_device() {
        Kind::Special("block device")
    } else if file_type.is_char_device() {
        Kind::Special("character device")
    } else {
        Kind::Special("unknown file type")
    })
}

/// The path in a walk error, and the I/O error kind if there is one.
fn error_path(error: &ignore::Error) -> Option<(PathBuf, Option<io::ErrorKind>)> {
    match error {
        ignore::Error::WithPath { path, err } => Some((
            path.clone(),
            error_path(err).and_then(|(_, kind)| kind).or(io_kind(err)),
        )),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

fn io_kind(error: &ignore::Error) -> Option<io::ErrorKind> {
    match error {
        ignore::Error::Io(io_error) => Some(io_error.kind()),
        ignore::Error::WithPath { err, .. }
        | ignore::Error::WithDepth { err, .. }
        | ignore::Error::WithLineNumber { err, .. } => io_kind(err),
        _ => None,
    }
}

/// A file whose blob must be computed.
pub(crate) struct Job {
    pub(crate) rel: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) stat: Stat,
}

/// The outcome of hashing one file.
pub(crate) enum Hashed {
    Entry(Entry),
    Skipped(Skipped),
    /// It disappeared (or became a directory) since the walk.
    Gone,
}

/// What a scan needs to know to hash files.
pub(crate) struct HashContext<'a> {
    pub(crate) root: &'a Path,
    pub(crate) repo_dir: &'a Path,
    /// Whether new blobs go into packs (see [`crate::pack`]).
    pub(crate) pack_mode: bool,
    pub(crate) max_file_bytes: u64,
    /// When the scan started, in nanoseconds since the epoch.
    pub(crate) scan_start_ns: i64,
}

/// The skip record for a file over the size limit.
pub(crate) fn too_large(rel: &[u8], size: u64, max: u64) -> Skipped {
    Skipped {
        path: paths::to_path(rel),
        size,
        reason: format!("larger than the {} limit", human_bytes(max)),
    }
}

/// `50 MiB`, `1.5 KiB`, `12 B`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// Hashes (and stores as blobs) every job, on several threads when there is
/// enough work. Returns the outcomes in job order and what was written.
pub(crate) fn hash_all(
    context: &HashContext<'_>,
    repo: &Repository,
    jobs: &[Job],
) -> Result<(Vec<Hashed>, Written), Error> {
    let total: u64 = jobs.iter().map(|job| job.stat.size).sum();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(jobs.len());
    if threads <= 1 || (jobs.len() < 16 && total < 4 << 20) {
        let odb = repo.odb()?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut written = Written::default();
        for job in jobs {
            outcomes.push(hash_one(context, &odb, job, &mut written)?);
        }
        return Ok((outcomes, written));
    }

    // Largest first, so one big file does not finish last on its own.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(jobs[index].stat.size));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Hashed>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let written_all: Mutex<Written> = Mutex::new(Written::default());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let run = || -> Result<(), Error> {
                    let repo = Repository::open_bare(context.repo_dir)?;
                    let odb = repo.odb()?;
                    let mut written = Written::default();
                    loop {
                        if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                            break;
                        }
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = order.get(position) else {
                            break;
                        };
                        let outcome = hash_one(context, &odb, &jobs[index], &mut written)?;
                        if let Ok(mut results) = results.lock() {
                            results[index] = Some(outcome);
                        }
                    }
                    if let Ok(mut all) = written_all.lock() {
                        all.loose.extend(written.loose);
                        all.pack.absorb(written.pack);
                    }
                    Ok(())
                };
                if let Err(error) = run() {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(error);
                    }
                }
            });
        }
    });
    if let Some(error) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    let outcomes = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|outcome| outcome.unwrap_or(Hashed::Gone))
        .collect();
    let written = written_all.into_inner().unwrap_or_else(|p| p.into_inner());
    // Threads may have written packs of their own: let libgit2 see them.
    repo.odb()?.refresh()?;
    Ok((outcomes, written))
}

/// Hashes one file or symlink and writes its blob.
fn hash_one(
    context: &HashContext<'_>,
    odb: &git2::Odb<'_>,
    job: &Job,
    written: &mut Written,
) -> Result<Hashed, Error> {
    let pack_dir = context.repo_dir.join("objects").join("pack");
    let path = paths::join(context.root, &job.rel);
    let mut kind = job.kind;
    let mut stat = job.stat;
    // A file may turn into a symlink (or back) between the walk and now;
    // follow what is there, a couple of times at most.
    for _ in 0..3 {
        match kind {
            Kind::Special(what) => {
                return Ok(Hashed::Skipped(Skipped {
                    path: paths::to_path(&job.rel),
                    size: stat.size,
                    reason: format!("special file ({what})"),
                }))
            }
            Kind::Symlink => {
                let target = match std::fs::read_link(&path) {
                    Ok(target) => target,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        return Ok(Hashed::Gone)
                    }
                    Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
                        // Not a symlink any more.
                        match relstat(&path)? {
                            Some((new_kind, new_stat)) => {
                                kind = new_kind;
                                stat = new_stat;
                                continue;
                            }
                            None => return Ok(Hashed::Gone),
                        }
                    }
                    Err(error) => return Err(Error::io(&path, error)),
                };
                let oid = sink::put(
                    odb,
                    &pack_dir,
                    context.pack_mode,
                    written,
                    ObjectType::Blob,
                    target.as_os_str().as_bytes(),
                )?;
                return Ok(Hashed::Entry(Entry {
                    stat,
                    racy: is_racy(&stat, context.scan_start_ns),
                    oid,
                }));
            }
            Kind::File => {
                if stat.size > context.max_file_bytes {
                    return Ok(Hashed::Skipped(too_large(
                        &job.rel,
                        stat.size,
                        context.max_file_bytes,
                    )));
                }
                match read_file(&path, context.max_file_bytes)? {
                    ReadOutcome::Content {
                        stat: read_stat,
                        bytes,
                        stable,
                    } => {
                        let oid = sink::put(
                            odb,
                            &pack_dir,
                            context.pack_mode,
                            written,
                            ObjectType::Blob,
                            &bytes,
                        )?;
                        let racy = !stable || is_racy(&read_stat, context.scan_start_ns);
                        return Ok(Hashed::Entry(Entry {
                            stat: read_stat,
                            racy,
                            oid,
                        }));
                    }
                    ReadOutcome::TooLarge(size) => {
                        return Ok(Hashed::Skipped(too_large(
                            &job.rel,
                            size,
                            context.max_file_bytes,
                        )))
                    }
                    ReadOutcome::Unreadable(error) => {
                        return Ok(Hashed::Skipped(Skipped {
                            path: paths::to_path(&job.rel),
                            size: stat.size,
                            reason: format!("unreadable: {error}"),
                        }))
                    }
                    ReadOutcome::Gone => return Ok(Hashed::Gone),
                    ReadOutcome::NotAFile => match relstat(&path)? {
                        Some((new_kind, new_stat)) => {
                            kind = new_kind;
                            stat = new_stat;
                        }
                        None => return Ok(Hashed::Gone),
                    },
                }
            }
        }
    }
    Ok(Hashed::Gone)
}

/// `lstat` as (kind, stat); `None` if it is gone or is a directory.
fn relstat(path: &Path) -> Result<Option<(Kind, Stat)>, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => {
            Ok(classify(metadata.file_type()).map(|kind| (kind, Stat::from_metadata(&metadata))))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::io(path, error)),
    }
}

enum ReadOutcome {
    Content {
        /// `fstat` of the file just before the read that produced `bytes`.
        stat: Stat,
        bytes: Vec<u8>,
        /// Whether the file looked the same before and after the read.
        stable: bool,
    },
    TooLarge(u64),
    Unreadable(io::Error),
    Gone,
    /// A symlink, directory or special file is there now.
    NotAFile,
}

/// Reads a regular file without following a symlink and without blocking on
/// a FIFO, re-reading (twice at most) while it changes under us.
fn read_file(path: &Path, max: u64) -> Result<ReadOutcome, Error> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
            return Ok(ReadOutcome::Gone)
        }
        Err(rustix::io::Errno::LOOP) => return Ok(ReadOutcome::NotAFile),
        Err(rustix::io::Errno::ACCESS) | Err(rustix::io::Errno::PERM) => {
            return Ok(ReadOutcome::Unreadable(io::Error::from(
                rustix::io::Errno::ACCESS,
            )))
        }
        Err(errno) => return Err(Error::io(path, errno.into())),
    };
    let mut file = File::from(fd);
    let mut attempt = 0;
    loop {
        let before = Stat::from_metadata(&file.metadata().at(path)?);
        if !before.is_file() {
            return Ok(ReadOutcome::NotAFile);
        }
        if before.size > max {
            return Ok(ReadOutcome::TooLarge(before.size));
        }
        let mut bytes = Vec::with_capacity(before.size as usize);
        if let Err(error) = (&mut file).take(max + 1).read_to_end(&mut bytes) {
            return Ok(ReadOutcome::Unreadable(error));
        }
        if bytes.len() as u64 > max {
            return Ok(ReadOutcome::TooLarge(bytes.len() as u64));
        }
        let after = Stat::from_metadata(&file.metadata().at(path)?);
        let stable = after == before && bytes.len() as u64 == before.size;
        attempt += 1;
        if stable || attempt >= 3 {
            return Ok(ReadOutcome::Content {
                stat: before,
                bytes,
                stable,
            });
        }
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0)).at(path)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cone(roots: &[&str]) -> Cone {
        Cone::new(roots.iter().map(|root| root.as_bytes().to_vec()).collect())
    }

    #[test]
    fn cone_admits_ancestors_roots_and_descendants() {
        let cone = cone(&["a/b", "c"]);
        for yes in ["a", "a/b", "a/b/x", "a/b/x/y", "c", "c/z"] {
            assert!(cone.admits(yes.as_bytes()), "{yes}");
        }
        for no in ["a/c", "ab", "a/bc", "b", "d", "a/b0"] {
            assert!(!cone.admits(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn collapse_keeps_outermost() {
        let roots: BTreeSet<Vec<u8>> = ["a/b", "a", "ab", "c/d", "c/d/e"]
            .iter()
            .map(|root| root.as_bytes().to_vec())
            .collect();
        let got: Vec<String> = collapse(roots)
            .into_iter()
            .map(|root| String::from_utf8(root).unwrap())
            .collect();
        assert_eq!(got, ["a", "ab", "c/d"]);
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(50 << 20), "50 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
