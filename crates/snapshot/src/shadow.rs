//! [`Shadow`]: one workspace's shadow object store and stat cache.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{ObjectType, Oid as GitOid, Repository, RepositoryInitOptions, Tree};

use crate::checkout::{Drift, Expected, Outcome, Writer};
use crate::diff::{self, FileDelta};
use crate::durable;
use crate::error::{Error, IoContext};
use crate::index::{self, Entry, INDEX_FILE, LAST_FILE};
use crate::pack::{PackBuffer, PACK_MIN_OBJECTS};
use crate::paths;
use crate::perms::NOTE_NAME;
use crate::scan::{self, Cone, HashContext, Hashed, Job, Kind, Walker};
use crate::sink::{self, Written};
use crate::tree::TreeCache;
use crate::{
    Change, ChangeKind, GcReport, Oid, Options, RestoreOptions, RestoreReport, ScanHint, Skipped,
    Snapshot,
};

/// How long [`Shadow::open`] waits for another process's lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The file recording which workspace a shadow belongs to.
const WORKSPACE_FILE: &str = "exo-workspace";
/// The lock file.
const LOCK_FILE: &str = "lock";

/// The signature of every snapshot commit.
const AUTHOR: &str = "exo <exo@localhost>";
const MESSAGE: &str = "exo snapshot\n";

/// One workspace's shadow repository and its persistent stat cache.
///
/// A `Shadow` holds an exclusive `flock` on `<shadow>/lock` for as long as
/// it lives, so no two processes ever snapshot or restore the same
/// workspace at once. It is `Send` but not `Sync`: share it behind a mutex.
pub struct Shadow {
    workspace: PathBuf,
    dir: PathBuf,
    repo: Repository,
    options: Options,
    walker: Walker,
    /// The directories left out (the exo root and `options.exclude`),
    /// relative, those inside the workspace.
    excluded: Vec<Vec<u8>>,
    state: State,
    /// Held for the flock; closing it releases the lock.
    _lock: File,
}

/// What this `Shadow` knows about the workspace.
struct State {
    /// The stat cache: every captured file as of the last scan.
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Roughly how many entries changed since the index file was written.
    index_changes: usize,
    /// Files the last scan left out (too large, special, unreadable).
    skipped: BTreeMap<Vec<u8>, Skipped>,
    /// Whether `entries` and `skipped` describe the whole workspace as of a
    /// scan made by this `Shadow`, so a hint of what changed since may
    /// update them. False after `open` (the index may be from another
    /// process, long ago) and after gc dropped entries.
    trusted: bool,
    trees: TreeCache,
    /// The last snapshot taken or restored to.
    last: Option<GitOid>,
    /// Loose objects written since the last sync point.
    pending: HashSet<GitOid>,
    /// The current operation's objects, when it writes a pack (see
    /// [`crate::pack`]); written out by `flush_batch`.
    batch: Option<PackBuffer>,
    /// The permissions note of the last tree built (see [`crate::perms`]):
    /// its bytes and blob id, `None` when the tree has none.
    note: Option<(Vec<u8>, GitOid)>,
    /// When the last scan started, in nanoseconds since the epoch.
    scan_start_ns: i64,
}

/// Nanoseconds since the epoch, now.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as i64)
        .unwrap_or(0)
}

/// Parses a 40-hex object id.
fn parse_oid(oid: &str) -> Result<GitOid, Error> {
    if oid.len() != 40 || !oid.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "{oid:?} is not a 40-hex-digit commit id"
        )));
    }
    Ok(GitOid::from_str(oid)?)
}

impl Shadow {
    /// Opens (creating if needed) the shadow store for `workspace` under
    /// `exo_root`: `<exo_root>/snapshots/<id>.git`, `<id>` being the first 16
    /// hex digits of the SHA-256 of the workspace's canonical path.
    ///
    /// Takes an exclusive `flock` on `<shadow>/lock` for as long as the
    /// `Shadow` lives; a second opener (in any process) waits up to
    /// [`LOCK_TIMEOUT`] and then fails with [`Error::Busy`].
    pub fn open(exo_root: &Path, workspace: &Path, options: Options) -> Result<Shadow, Error> {
        Shadow::open_with_timeout(exo_root, workspace, options, LOCK_TIMEOUT)
    }

    /// [`Shadow::open`] with another lock timeout (zero: do not wait).
    pub fn open_with_timeout(
        exo_root: &Path,
        workspace: &Path,
        options: Options,
        lock_timeout: Duration,
    ) -> Result<Shadow, Error> {
        let workspace = match fs::canonicalize(workspace) {
            Ok(path) => path,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "workspace {}",
                    workspace.display()
                )))
            }
            Err(error) => return Err(Error::io(workspace, error)),
        };
        if !workspace.is_dir() {
            return Err(Error::Invalid(format!(
                "workspace {} is not a directory",
                workspace.display()
            )));
        }
        let snapshots = exo_root.join("snapshots");
        fs::create_dir_all(&snapshots).at(&snapshots)?;
        let exo_root = fs::canonicalize(exo_root).at(exo_root)?;
        if workspace.starts_with(&exo_root) {
            return Err(Error::Invalid(format!(
                "workspace {} lies inside the exo root {}",
                workspace.display(),
                exo_root.display()
            )));
        }
        for dir in &options.exclude {
            let dir = paths::resolve_what_exists(dir);
            if workspace.starts_with(&dir) {
                return Err(Error::Invalid(format!(
                    "workspace {} lies inside {}, which is never captured",
                    workspace.display(),
                    dir.display()
                )));
            }
        }
        let dir = paths::shadow_dir(&exo_root, &workspace);
        fs::create_dir_all(&dir).at(&dir)?;

        let lock = lock(&dir.join(LOCK_FILE), lock_timeout)?;
        remove_stale_temp_files(&dir);

        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(&dir)?
        } else {
            // A process killed while initialising (before HEAD exists) may
            // have left git's lock files behind, which would refuse every
            // later attempt. We hold the shadow's lock: nobody else is
            // writing them.
            for stale in ["config.lock", "HEAD.lock"] {
                let _ = fs::remove_file(dir.join(stale));
            }
            let mut init = RepositoryInitOptions::new();
            init.bare(true).no_reinit(false).mkdir(true);
            let repo = Repository::init_opts(&dir, &init)?;
            let mut config = repo.config()?;
            config.set_i32("gc.auto", 0)?;
            repo
        };

        // The marker is written whole or not at all (staged, synced,
        // renamed); an empty one, left by a process killed while an older
        // exo wrote it in place, names no workspace and is written again.
        let marker = dir.join(WORKSPACE_FILE);
        match fs::read(&marker) {
            Ok(recorded)
                if !recorded.is_empty() && recorded != workspace.as_os_str().as_bytes() =>
            {
                return Err(Error::Invalid(format!(
                    "shadow store {} belongs to workspace {}, not {}",
                    dir.display(),
                    String::from_utf8_lossy(&recorded),
                    workspace.display()
                )));
            }
            Ok(recorded) if !recorded.is_empty() => {}
            _ => {
                let staged = index::stage(&marker, workspace.as_os_str().as_bytes())?;
                staged.file.sync_all().at(&staged.temp)?;
                staged.commit()?;
            }
        }

        let entries = index::load(&dir).unwrap_or_default();
        let odb = repo.odb()?;
        let last = index::load_last(&dir).filter(|oid| odb.exists(*oid));
        drop(odb);
        let walker = Walker::new(workspace.clone(), &exo_root, &options.exclude);
        let excluded = walker.excluded_rels();
        Ok(Shadow {
            workspace,
            dir,
            repo,
            options,
            walker,
            excluded,
            state: State {
                entries,
                index_changes: 0,
                skipped: BTreeMap::new(),
                trusted: false,
                trees: TreeCache::empty(),
                last,
                pending: HashSet::new(),
                batch: None,
                note: None,
                scan_start_ns: 0,
            },
            _lock: lock,
        })
    }

    /// The workspace's canonical path.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The shadow store's directory, `<exo_root>/snapshots/<id>.git`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last snapshot this shadow took or restored to (persisted across
    /// processes), if any.
    pub fn last(&self) -> Option<Oid> {
        self.state.last.map(|oid| oid.to_string())
    }

    /// Whether a commit exists in the store.
    pub fn contains(&self, commit: &Oid) -> bool {
        let Ok(oid) = parse_oid(commit) else {
            return false;
        };
        let Ok(odb) = self.repo.odb() else {
            return false;
        };
        matches!(odb.read_header(oid), Ok((_, ObjectType::Commit)))
    }

    /// Takes a snapshot: a parentless commit (author and committer
    /// `exo <exo@localhost>`) of the workspace's tree as it is on disk.
    ///
    /// `hint` says which paths may have changed since the last scan this
    /// `Shadow` made (from a [`crate::Watcher`]); a hint is only used when
    /// this `Shadow` has scanned the workspace itself before, otherwise (and
    /// for [`ScanHint::Full`]) the whole workspace is walked, re-hashing only
    /// files whose stat changed.
    ///
    /// When the tree equals the last snapshot's, the last commit is returned
    /// again. Returns only after every object the commit needs is durable.
    pub fn snapshot(&mut self, hint: ScanHint) -> Result<Snapshot, Error> {
        let started = Instant::now();
        let full_scan = self.scan(&hint)?;
        let tree = self.build_tree()?;
        let last_tree = self.last_tree_id();
        let (commit, deltas) = match (self.state.last, last_tree) {
            (Some(last), Some(last_tree)) if last_tree == tree => (last, Vec::new()),
            _ => {
                let commit = self.write_commit(tree)?;
                self.flush_batch()?;
                let deltas = self.deltas_between(last_tree, Some(tree))?;
                (commit, deltas)
            }
        };
        self.flush_batch()?;
        self.commit_state(Some(commit))?;
        let (added, modified, deleted) = diff::counts(&deltas);
        tracing::debug!(
            commit = %commit,
            full_scan,
            added,
            modified,
            deleted,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "snapshot"
        );
        Ok(Snapshot {
            commit: commit.to_string(),
            tree: tree.to_string(),
            added,
            modified,
            deleted,
            skipped: self.state.skipped.values().cloned().collect(),
            full_scan,
        })
    }

    /// A commit of the workspace as it is on disk, for comparing against,
    /// without taking a snapshot: [`Shadow::last`] does not move, so the
    /// next snapshot still counts its changes from the last one, and the
    /// commit is not made durable (nothing may record it).
    pub fn peek(&mut self, hint: ScanHint) -> Result<Oid, Error> {
        self.scan(&hint)?;
        let tree = self.build_tree()?;
        let commit = match (self.state.last, self.last_tree_id()) {
            (Some(last), Some(last_tree)) if last_tree == tree => last,
            _ => self.write_commit(tree)?,
        };
        self.flush_batch()?;
        Ok(commit.to_string())
    }

    /// Paths that differ between the workspace now and snapshot `base`,
    /// without recording a snapshot: blobs may be written, `last` does not
    /// move. Always walks the whole workspace (re-hashing only files whose
    /// stat changed).
    pub fn drift(&mut self, base: &Oid) -> Result<Vec<Change>, Error> {
        let base_tree = self.commit_tree(base)?;
        self.scan(&ScanHint::Full)?;
        let tree = self.build_tree()?;
        self.flush_batch()?;
        let deltas = self.deltas_between(Some(base_tree), Some(tree))?;
        Ok(deltas.iter().map(FileDelta::to_change).collect())
    }

    /// Changes from snapshot `from` to snapshot `to`, sorted by path.
    pub fn diff(&self, from: &Oid, to: &Oid) -> Result<Vec<Change>, Error> {
        let from = self.commit_tree(from)?;
        let to = self.commit_tree(to)?;
        let deltas = self.deltas_between(Some(from), Some(to))?;
        Ok(deltas.iter().map(FileDelta::to_change).collect())
    }

    /// A git-style unified diff from snapshot `from` to snapshot `to` (three
    /// lines of context; files with a NUL byte in their first 8000 bytes are
    /// reported as `Binary files a/x and b/x differ`).
    pub fn unified_diff(&self, from: &Oid, to: &Oid) -> Result<String, Error> {
        self.unified_diff_paths(from, to, &[])
    }

    /// [`Shadow::unified_diff`] limited to `paths` (workspace-relative
    /// files or directories) when `paths` is not empty.
    pub fn unified_diff_paths(
        &self,
        from: &Oid,
        to: &Oid,
        paths: &[PathBuf],
    ) -> Result<String, Error> {
        let from = self.commit_tree(from)?;
        let to = self.commit_tree(to)?;
        let deltas = self.deltas_between(Some(from), Some(to))?;
        diff::unified(&self.repo, &deltas, paths)
    }

    /// The file at `path` (workspace-relative, `/`-separated) in snapshot
    /// `commit`: its bytes and whether it is executable, or `None` when the
    /// snapshot has nothing at that path. A directory, a symlink or a file
    /// larger than `max_bytes` is refused with [`Error::Invalid`].
    pub fn read_file(
        &self,
        commit: &Oid,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, bool)>, Error> {
        let relative = Path::new(path);
        let plain = path
            .split('/')
            .all(|part| !matches!(part, "" | "." | "..") && !part.contains('\0'));
        if !plain {
            return Err(Error::Invalid(format!(
                "{path:?} is not a workspace-relative path"
            )));
        }
        let tree = self.repo.find_tree(self.commit_tree(commit)?)?;
        let entry = match tree.get_path(relative) {
            Ok(entry) => entry,
            Err(error) if error.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let executable = match entry.filemode() {
            0o100644 => false,
            0o100755 => true,
            0o040000 => {
                return Err(Error::Invalid(format!(
                    "{path} is a directory in the snapshot"
                )))
            }
            0o120000 => {
                return Err(Error::Invalid(format!(
                    "{path} is a symbolic link in the snapshot"
                )))
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "{path} is not a regular file in the snapshot"
                )))
            }
        };
        let (size, _) = self.repo.odb()?.read_header(entry.id())?;
        if size as u64 > max_bytes {
            return Err(Error::Invalid(format!(
                "{path} is {size} bytes, more than the {max_bytes} that can be read at once"
            )));
        }
        let blob = self.repo.find_blob(entry.id())?;
        Ok(Some((blob.content().to_vec(), executable)))
    }

    /// Restores the workspace to snapshot `target`, writing only the paths
    /// that differ (see the crate docs for what is never touched).
    ///
    /// When `expected` is given and the workspace differs from it, refuses
    /// with [`Error::Conflict`] unless `options.force` (a dry run refuses
    /// too, since the real run would), or, with `options.keep_drifted`,
    /// leaves the drifted paths alone. With `options.dry_run` nothing is
    /// written.
    ///
    /// Each path is checked right before it is replaced or removed: if it
    /// is no longer what the restore's own scan saw (another process wrote
    /// it meanwhile), it is left alone and reported in
    /// [`RestoreReport::conflicts`]; the rest is restored. After a real
    /// restore, `last()` is `target` and the stat cache reflects the
    /// written files.
    pub fn restore(
        &mut self,
        target: &Oid,
        expected: Option<&Oid>,
        options: RestoreOptions,
    ) -> Result<RestoreReport, Error> {
        let target_commit = parse_oid(target)?;
        let target_tree = self.commit_tree(target)?;
        let expected_tree = match expected {
            Some(expected) => Some(self.commit_tree(expected)?),
            None => None,
        };
        self.scan(&ScanHint::Full)?;
        let workspace_tree = self.build_tree()?;
        self.flush_batch()?;

        let mut conflicts: Vec<Change> = Vec::new();
        let mut drifted: HashSet<Vec<u8>> = HashSet::new();
        if let Some(expected_tree) = expected_tree {
            if expected_tree != workspace_tree && !options.force {
                let deltas = self.deltas_between(Some(expected_tree), Some(workspace_tree))?;
                if !options.keep_drifted {
                    return Err(Error::Conflict {
                        paths: deltas
                            .iter()
                            .map(|delta| paths::to_path(&delta.rel))
                            .collect(),
                    });
                }
                for delta in deltas {
                    conflicts.push(delta.to_change());
                    drifted.insert(delta.rel);
                }
            }
        }

        let deltas: Vec<FileDelta> = self
            .deltas_between(Some(workspace_tree), Some(target_tree))?
            .into_iter()
            .filter(|delta| !drifted.contains(&delta.rel))
            .collect();
        if options.dry_run {
            return Ok(RestoreReport {
                changes: deltas.iter().map(FileDelta::to_change).collect(),
                written: false,
                skipped: Vec::new(),
                conflicts,
            });
        }

        // As for a scan: a restore failing part way leaves a state that
        // hints must not build on.
        self.state.trusted = false;
        let applied = self.apply(&deltas, target_tree)?;
        conflicts.extend(applied.conflicts);
        conflicts.sort();
        let report = RestoreReport {
            changes: applied.done,
            written: true,
            skipped: applied.skipped,
            conflicts,
        };
        // Paths left alone keep their old stat cache entries; the next
        // scan must look at them again.
        self.state.trusted = !report.is_partial();
        self.state.index_changes += deltas.len();
        self.state.last = Some(target_commit);
        self.commit_state(Some(target_commit))?;
        Ok(report)
    }

    /// Writes snapshot `commit` into `dir`, which must not exist or be an
    /// empty directory (for example to fork a conversation into a new
    /// directory). Files get the permission bits they were captured with.
    ///
    /// On failure, what it created is removed again (and `dir` itself, if
    /// it created it). The returned [`Materialized`] can do the same later
    /// ([`Materialized::undo`]), for a caller whose next step fails.
    pub fn materialize(&self, commit: &Oid, dir: &Path) -> Result<Materialized, Error> {
        let tree = self.commit_tree(commit)?;
        let mut created = Materialized {
            dir: dir.to_path_buf(),
            created_ancestors: Vec::new(),
            files: Vec::new(),
            dirs: Vec::new(),
        };
        match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::Invalid(format!("{} is not empty", dir.display())));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                created.created_ancestors = create_dirs(dir)?;
            }
            Err(error) => return Err(Error::io(dir, error)),
        }
        let result = (|| {
            let mut writer = Writer::open(dir)?;
            let tree = self.repo.find_tree(tree)?;
            let odb = self.repo.odb()?;
            let perms = diff::note(&self.repo, Some(&tree))?;
            let written =
                self.materialize_tree(&odb, &mut writer, &tree, &[], &perms, &mut created.files);
            created.dirs = writer.created_dirs().to_vec();
            written
        })();
        match result {
            Ok(()) => Ok(created),
            Err(error) => {
                if let Err(undo_error) = created.undo() {
                    tracing::warn!(%undo_error, "cannot remove a half-materialised snapshot");
                }
                Err(error)
            }
        }
    }

    fn materialize_tree(
        &self,
        odb: &git2::Odb<'_>,
        writer: &mut Writer,
        tree: &Tree<'_>,
        prefix: &[u8],
        perms: &crate::perms::Perms,
        files: &mut Vec<(Vec<u8>, u64)>,
    ) -> Result<(), Error> {
        for entry in tree.iter() {
            let rel = paths::child(prefix, entry.name_bytes());
            if (prefix.is_empty() && entry.name_bytes() == NOTE_NAME) || self.is_excluded(&rel) {
                continue;
            }
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    let subtree = self.repo.find_tree(entry.id())?;
                    self.materialize_tree(odb, writer, &subtree, &rel, perms, files)?;
                }
                Some(ObjectType::Blob) => {
                    let object = odb.read(entry.id())?;
                    let mode = entry.filemode() as u32;
                    let recorded = perms.get(&rel).copied();
                    match writer.write(&rel, mode, recorded, object.data(), None)? {
                        Outcome::Written(stat) => files.push((rel, stat.ino)),
                        Outcome::Blocked(reason) => {
                            return Err(Error::Invalid(format!(
                                "cannot write {}: {reason}",
                                paths::display(&rel)
                            )))
                        }
                        _ => {
                            return Err(Error::Invalid(format!(
                                "cannot write {}: something else appeared there",
                                paths::display(&rel)
                            )))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes every object not reachable from the `keep` commits and packs
    /// what is kept; returns what it freed. Crash-safe: the new pack is
    /// durable before anything is deleted.
    pub fn gc(&mut self, keep: &[Oid]) -> Result<GcReport, Error> {
        let mut keep_ids = Vec::with_capacity(keep.len());
        for commit in keep {
            self.commit_tree(commit)?;
            keep_ids.push(parse_oid(commit)?);
        }
        let objects_dir = self.dir.join("objects");
        let pack_dir = objects_dir.join("pack");
        fs::create_dir_all(&pack_dir).at(&pack_dir)?;
        let objects_before = self.count_objects()?;
        let bytes_before = dir_size(&objects_dir);

        // Everything reachable from `keep`.
        let mut kept: HashSet<GitOid> = HashSet::new();
        for &commit in &keep_ids {
            kept.insert(commit);
            let tree = self.repo.find_commit(commit)?.tree_id();
            self.collect_tree(tree, &mut kept)?;
        }

        // 1. Pack what is kept, durably.
        let mut new_pack: Option<String> = None;
        if !keep_ids.is_empty() {
            let mut builder = self.repo.packbuilder()?;
            builder.set_threads(0);
            for &commit in &keep_ids {
                builder.insert_commit(commit)?;
            }
            builder.write(&pack_dir, 0o444)?;
            let name = builder
                .name()?
                .ok_or_else(|| Error::Invalid("pack builder produced no pack".to_string()))?
                .to_string();
            let stem = format!("pack-{name}");
            durable::fsync_parallel(
                &[
                    pack_dir.join(format!("{stem}.pack")),
                    pack_dir.join(format!("{stem}.idx")),
                ],
                &[],
            )?;
            durable::fsync_path(&pack_dir)?;
            new_pack = Some(stem);
        }

        // 2. Forget what is about to go, durably, before it goes.
        let before = self.state.entries.len();
        self.state
            .entries
            .retain(|_, entry| kept.contains(&entry.oid));
        if self.state.entries.len() != before {
            self.state.trusted = false;
        }
        self.state.trees.clear();
        self.state.note = None;
        self.state.pending.clear();
        self.state.batch = None;
        if !self.state.last.is_some_and(|last| keep_ids.contains(&last)) {
            self.state.last = None;
        }
        let staged = index::stage(
            &self.dir.join(INDEX_FILE),
            &index::encode(&self.state.entries),
        )?;
        let last_staged = index::stage(
            &self.dir.join(LAST_FILE),
            &index::encode_last(self.state.last),
        )?;
        durable::fsync_parallel(&[], &[&staged.file, &last_staged.file])?;
        staged.commit()?;
        last_staged.commit()?;
        durable::fsync_path(&self.dir)?;
        self.state.index_changes = 0;

        // 3. Delete loose objects and every other pack.
        for entry in fs::read_dir(&objects_dir).at(&objects_dir)? {
            let entry = entry.at(&objects_dir)?;
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.len() == 2 && name.iter().all(u8::is_ascii_hexdigit) {
                // Keep the fan-out directory: creating it again costs more
                // than keeping it empty.
                for object in fs::read_dir(entry.path()).at(entry.path())? {
                    let object = object.at(entry.path())?;
                    fs::remove_file(object.path()).at(object.path())?;
                }
            } else if entry.file_type().is_ok_and(|kind| kind.is_file()) {
                // libgit2's temporary files from an interrupted write.
                fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
        for entry in fs::read_dir(&pack_dir).at(&pack_dir)? {
            let entry = entry.at(&pack_dir)?;
            let name = entry.file_name();
            let keep_it = new_pack
                .as_ref()
                .is_some_and(|stem| name.as_bytes().starts_with(format!("{stem}.").as_bytes()));
            if !keep_it {
                fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
        // libgit2 caches pack handles: start afresh.
        self.repo = Repository::open_bare(&self.dir)?;

        let objects_after = self.count_objects()?;
        let bytes_after = dir_size(&objects_dir);
        Ok(GcReport {
            objects_before,
            objects_after,
            bytes_freed: bytes_before.saturating_sub(bytes_after),
        })
    }

    fn count_objects(&self) -> Result<u64, Error> {
        let odb = self.repo.odb()?;
        let mut count = 0u64;
        odb.foreach(|_| {
            count += 1;
            true
        })?;
        Ok(count)
    }

    fn collect_tree(&self, tree: GitOid, kept: &mut HashSet<GitOid>) -> Result<(), Error> {
        if !kept.insert(tree) {
            return Ok(());
        }
        let tree = self.repo.find_tree(tree)?;
        for entry in tree.iter() {
            match entry.kind() {
                Some(ObjectType::Tree) => self.collect_tree(entry.id(), kept)?,
                _ => {
                    kept.insert(entry.id());
                }
            }
        }
        Ok(())
    }

    // ---- scanning ----

    /// Brings `state.entries` up to date with the workspace; returns whether
    /// the whole workspace was walked.
    fn scan(&mut self, hint: &ScanHint) -> Result<bool, Error> {
        let scan_start_ns = now_ns();
        self.state.scan_start_ns = scan_start_ns;
        let cone = match hint {
            ScanHint::Paths(hinted) if self.state.trusted => {
                let roots = self.cone_roots(hinted);
                if roots.contains(&Vec::new()) {
                    None
                } else if roots.is_empty() {
                    // Nothing relevant changed.
                    return Ok(false);
                } else {
                    Some(Arc::new(Cone::new(roots)))
                }
            }
            _ => None,
        };
        let full = cone.is_none();
        // Until this scan completes, the state describes no moment of the
        // workspace: a failure part way must not let a later hint trust it.
        self.state.trusted = false;
        let walked = self.walker.walk(cone.clone());

        // Which recorded paths this walk speaks for: all of them for a full
        // walk; for a cone, each root's subtree, widened to the topmost
        // ancestor that is no longer a directory.
        let mut prefixes: Vec<Vec<u8>> = Vec::new();
        match &cone {
            None => prefixes.push(Vec::new()),
            Some(cone) => {
                for root in cone.roots() {
                    let missing = paths::ancestors(root)
                        .skip(1)
                        .find(|dir| !walked.dirs.contains(*dir))
                        .map(<[u8]>::to_vec);
                    prefixes.push(missing.unwrap_or_else(|| root.clone()));
                }
            }
        }
        let found: HashSet<&[u8]> = walked.files.iter().map(|file| &file.rel[..]).collect();
        let mut changes = 0;
        let State {
            entries,
            skipped,
            trees,
            ..
        } = &mut self.state;
        for prefix in &prefixes {
            let doomed: Vec<Vec<u8>> = if prefix.is_empty() {
                entries
                    .keys()
                    .filter(|path| !found.contains(&path[..]))
                    .cloned()
                    .collect()
            } else {
                entries
                    .range(prefix.clone()..paths::subtree_end(prefix))
                    .map(|(path, _)| path)
                    .filter(|path| paths::is_within(path, prefix) && !found.contains(&path[..]))
                    .cloned()
                    .collect()
            };
            changes += doomed.len();
            for path in doomed {
                entries.remove(&path);
                trees.mark(&path);
            }
            skipped.retain(|path, _| !paths::is_within(path, prefix) || found.contains(&path[..]));
        }
        // A directory where a file was.
        for dir in &walked.dirs {
            if entries.remove(dir).is_some() {
                trees.mark(dir);
                changes += 1;
            }
            skipped.remove(dir);
        }
        for (rel, reason) in &walked.errors {
            skipped.insert(
                rel.clone(),
                Skipped {
                    path: paths::to_path(rel),
                    size: 0,
                    reason: format!("unreadable: {reason}"),
                },
            );
        }

        // Reuse what the stat cache vouches for; hash the rest.
        let max = self.options.max_file_bytes;
        let mut jobs = Vec::new();
        for file in walked.files {
            match file.kind {
                Kind::Special(what) => {
                    if entries.remove(&file.rel).is_some() {
                        trees.mark(&file.rel);
                        changes += 1;
                    }
                    skipped.insert(
                        file.rel.clone(),
                        Skipped {
                            path: paths::to_path(&file.rel),
                            size: file.stat.size,
                            reason: format!("special file ({what})"),
                        },
                    );
                }
                Kind::File if file.stat.size > max => {
                    if entries.remove(&file.rel).is_some() {
                        trees.mark(&file.rel);
                        changes += 1;
                    }
                    skipped.insert(
                        file.rel.clone(),
                        scan::too_large(&file.rel, file.stat.size, max),
                    );
                }
                Kind::File | Kind::Symlink => {
                    if entries
                        .get(&file.rel)
                        .is_some_and(|entry| entry.still_valid(&file.stat))
                    {
                        skipped.remove(&file.rel);
                        continue;
                    }
                    jobs.push(Job {
                        rel: file.rel,
                        kind: file.kind,
                        stat: file.stat,
                    });
                }
            }
        }
        changes += jobs.len();
        let pack_mode = jobs.len() >= PACK_MIN_OBJECTS;
        let context = HashContext {
            root: &self.workspace,
            repo_dir: &self.dir,
            pack_mode,
            max_file_bytes: max,
            scan_start_ns,
        };
        let (outcomes, written) = scan::hash_all(&context, &self.repo, &jobs)?;
        self.state.pending.extend(written.loose);
        if pack_mode {
            self.state
                .batch
                .get_or_insert_with(PackBuffer::default)
                .absorb(written.pack);
        }
        let State {
            entries,
            skipped,
            trees,
            ..
        } = &mut self.state;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            match outcome {
                Hashed::Entry(entry) => {
                    skipped.remove(&job.rel);
                    let previous = entries.insert(job.rel.clone(), entry);
                    if previous.is_none_or(|old| {
                        old.oid != entry.oid || old.git_mode() != entry.git_mode()
                    }) {
                        trees.mark(&job.rel);
                    }
                }
                Hashed::Skipped(skip) => {
                    if entries.remove(&job.rel).is_some() {
                        trees.mark(&job.rel);
                    }
                    skipped.insert(job.rel, skip);
                }
                Hashed::Gone => {
                    if entries.remove(&job.rel).is_some() {
                        trees.mark(&job.rel);
                    }
                    skipped.remove(&job.rel);
                }
            }
        }
        self.state.trusted = true;
        self.state.index_changes += changes;
        Ok(full)
    }

    /// The roots to re-walk for hinted paths (see the crate docs on hints).
    fn cone_roots(&self, hinted: &BTreeSet<PathBuf>) -> BTreeSet<Vec<u8>> {
        let mut roots = BTreeSet::new();
        for path in hinted {
            let rel = if path.is_absolute() {
                match paths::relative(&self.workspace, path) {
                    Some(rel) => rel,
                    // Not below the canonical workspace: it may name a
                    // workspace path another way (through a symlink); be safe.
                    None => return BTreeSet::from([Vec::new()]),
                }
            } else {
                match paths::normalize(path) {
                    Some(rel) => rel,
                    // `..` in a hint: be safe.
                    None => return BTreeSet::from([Vec::new()]),
                }
            };
            let components: Vec<&[u8]> = if rel.is_empty() {
                Vec::new()
            } else {
                rel.split(|&byte| byte == b'/').collect()
            };
            let root = if let Some(git) = components
                .iter()
                .position(|name| paths::is_git_dir_name(name))
            {
                // Inside a `.git`: only the directory itself and
                // `info/exclude` change what is captured (the repository's
                // whole directory, then); the rest is git's business.
                let tail = &components[git + 1..];
                if tail.is_empty() || tail == [b"info"] || tail == [&b"info"[..], b"exclude"] {
                    components[..git].join(&b'/')
                } else {
                    continue;
                }
            } else if matches!(
                components.last().copied(),
                Some(b".gitignore") | Some(b".exoignore")
            ) {
                paths::parent(&rel).to_vec()
            } else {
                rel
            };
            if !root.is_empty() && self.is_excluded(&root) {
                continue;
            }
            roots.insert(root);
        }
        scan::collapse(roots)
    }

    fn build_tree(&mut self) -> Result<GitOid, Error> {
        if self.state.trees.rebuilds_many() {
            self.state.batch.get_or_insert_with(PackBuffer::default);
        }
        let odb = self.repo.odb()?;
        let pack_dir = self.dir.join("objects").join("pack");
        let pack_mode = self.state.batch.is_some();
        let mut written = Written {
            loose: Vec::new(),
            pack: self.state.batch.take().unwrap_or_default(),
        };
        // The permissions note (see `crate::perms`), rebuilt from the
        // entries; the root tree is rebuilt when it changed.
        let note_bytes = crate::perms::encode(&self.state.entries);
        let note = match &self.state.note {
            Some((bytes, oid)) if *bytes == note_bytes => Some(*oid),
            None if note_bytes.is_empty() => None,
            _ => {
                let oid = if note_bytes.is_empty() {
                    None
                } else {
                    let put = sink::put(
                        &odb,
                        &pack_dir,
                        pack_mode,
                        &mut written,
                        ObjectType::Blob,
                        &note_bytes,
                    );
                    match put {
                        Ok(oid) => Some(oid),
                        Err(error) => {
                            self.state.pending.extend(written.loose);
                            if pack_mode {
                                self.state.batch = Some(written.pack);
                            }
                            return Err(error);
                        }
                    }
                };
                self.state.trees.mark_root();
                self.state.note = oid.map(|oid| (note_bytes, oid));
                oid
            }
        };
        let State { trees, entries, .. } = &mut self.state;
        let tree = trees.build(
            &mut |data| {
                sink::put(
                    &odb,
                    &pack_dir,
                    pack_mode,
                    &mut written,
                    ObjectType::Tree,
                    data,
                )
            },
            entries,
            note.map(|oid| (NOTE_NAME, oid)),
        );
        self.state.pending.extend(written.loose);
        if pack_mode {
            self.state.batch = Some(written.pack);
        }
        tree
    }

    /// Writes the operation's pack, if it has one, durably.
    fn flush_batch(&mut self) -> Result<(), Error> {
        if let Some(mut batch) = self.state.batch.take() {
            if !batch.is_empty() {
                tracing::debug!(objects = batch.len(), "writing a pack");
                batch.write(&self.dir.join("objects").join("pack"))?;
                self.repo.odb()?.refresh()?;
            }
        }
        Ok(())
    }

    fn write_commit(&mut self, tree: GitOid) -> Result<GitOid, Error> {
        let seconds = now_ns().div_euclid(1_000_000_000);
        let buffer = format!(
            "tree {tree}\nauthor {AUTHOR} {seconds} +0000\ncommitter {AUTHOR} {seconds} +0000\n\n{MESSAGE}"
        );
        let odb = self.repo.odb()?;
        let pack_mode = self.state.batch.is_some();
        let mut written = Written {
            loose: Vec::new(),
            pack: self.state.batch.take().unwrap_or_default(),
        };
        let pack_dir = self.dir.join("objects").join("pack");
        let oid = sink::put(
            &odb,
            &pack_dir,
            pack_mode,
            &mut written,
            ObjectType::Commit,
            buffer.as_bytes(),
        )?;
        self.state.pending.extend(written.loose);
        if pack_mode {
            self.state.batch = Some(written.pack);
        }
        Ok(oid)
    }

    /// Makes pending objects durable, then records `last` (and, when
    /// enough entries changed, the stat cache). Neither file ever names an
    /// object that is not durable.
    fn commit_state(&mut self, last: Option<GitOid>) -> Result<(), Error> {
        self.state.last = last;
        let last_staged = index::stage(&self.dir.join(LAST_FILE), &index::encode_last(last))?;
        let rewrite_index = self.state.index_changes >= 64 + self.state.entries.len() / 16;
        let index_staged = if rewrite_index {
            Some(index::stage(
                &self.dir.join(INDEX_FILE),
                &index::encode(&self.state.entries),
            )?)
        } else {
            None
        };
        if !self.state.pending.is_empty() {
            let mut files = vec![&last_staged.file];
            files.extend(index_staged.as_ref().map(|staged| &staged.file));
            durable::sync_objects(&self.dir.join("objects"), &self.state.pending, &files)?;
            self.state.pending.clear();
        }
        last_staged.commit()?;
        if let Some(staged) = index_staged {
            staged.commit()?;
            self.state.index_changes = 0;
        }
        Ok(())
    }

    /// Writes the stat cache if it changed (after making what it names
    /// durable).
    fn save_index(&mut self) -> Result<(), Error> {
        if self.state.index_changes == 0 {
            return Ok(());
        }
        let staged = index::stage(
            &self.dir.join(INDEX_FILE),
            &index::encode(&self.state.entries),
        )?;
        if !self.state.pending.is_empty() {
            durable::sync_objects(&self.dir.join("objects"), &self.state.pending, &[])?;
            self.state.pending.clear();
        }
        staged.commit()?;
        self.state.index_changes = 0;
        Ok(())
    }

    // ---- restore ----

    /// Applies workspace → target deltas, each checked against what the
    /// scan saw right before it is written or removed.
    fn apply(&mut self, deltas: &[FileDelta], target_tree: GitOid) -> Result<Applied, Error> {
        let mut writer = Writer::open(&self.workspace)?;
        let odb = self.repo.odb()?;
        let target = self.repo.find_tree(target_tree)?;
        let scan_start_ns = self.state.scan_start_ns;
        let mut applied = Applied::default();

        // 1. Deletions.
        let mut emptied: BTreeSet<Vec<u8>> = BTreeSet::new();
        for delta in deltas
            .iter()
            .filter(|delta| delta.kind == ChangeKind::Deleted)
        {
            let Some(expected) = self.state.entries.get(&delta.rel).map(Expected::from) else {
                applied.conflict(&delta.rel, ChangeKind::Modified);
                continue;
            };
            match writer.remove(&delta.rel, &expected)? {
                Outcome::Removed | Outcome::Written(_) => {
                    if self.state.entries.remove(&delta.rel).is_some() {
                        self.state.trees.mark(&delta.rel);
                    }
                    for dir in paths::ancestors(&delta.rel).skip(1) {
                        emptied.insert(dir.to_vec());
                    }
                    applied.done.push(delta.to_change());
                }
                outcome => applied.left_alone(&delta.rel, outcome, None, scan_start_ns),
            }
        }
        // 2. Directories left empty that the target does not have, deepest first.
        for dir in emptied.iter().rev() {
            if target.get_path(&paths::to_path(dir)).is_ok() {
                continue;
            }
            writer.remove_dir_if_empty(dir)?;
        }
        // 3. Writes.
        for delta in deltas
            .iter()
            .filter(|delta| delta.kind != ChangeKind::Deleted)
        {
            let Some((mode, oid)) = delta.new else {
                continue;
            };
            let expected = match delta.kind {
                ChangeKind::Added => None,
                _ => self.state.entries.get(&delta.rel).map(Expected::from),
            };
            let object = odb.read(oid)?;
            let outcome = writer.write(
                &delta.rel,
                mode,
                delta.new_perm,
                object.data(),
                expected.as_ref(),
            )?;
            match outcome {
                Outcome::Written(stat) => {
                    self.state.skipped.remove(&delta.rel);
                    let entry = Entry {
                        stat,
                        racy: true,
                        oid,
                    };
                    let previous = self.state.entries.insert(delta.rel.clone(), entry);
                    if previous
                        .is_none_or(|old| old.oid != oid || old.git_mode() != entry.git_mode())
                    {
                        self.state.trees.mark(&delta.rel);
                    }
                    applied.done.push(delta.to_change());
                }
                outcome => {
                    let uncaptured = self.state.skipped.get(&delta.rel).map(|s| s.reason.clone());
                    applied.left_alone(&delta.rel, outcome, uncaptured, scan_start_ns);
                }
            }
        }
        applied.done.sort();
        applied.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(applied)
    }

    // ---- helpers ----

    /// The tree of a commit in the store.
    fn commit_tree(&self, commit: &Oid) -> Result<GitOid, Error> {
        let oid = parse_oid(commit)?;
        match self.repo.find_commit(oid) {
            Ok(commit) => Ok(commit.tree_id()),
            Err(error) if error.code() == git2::ErrorCode::NotFound => {
                Err(Error::NotFound(format!("snapshot {oid}")))
            }
            Err(error) => Err(error.into()),
        }
    }

    fn last_tree_id(&self) -> Option<GitOid> {
        let last = self.state.last?;
        self.repo
            .find_commit(last)
            .ok()
            .map(|commit| commit.tree_id())
    }

    fn deltas_between(
        &self,
        old: Option<GitOid>,
        new: Option<GitOid>,
    ) -> Result<Vec<FileDelta>, Error> {
        if old == new {
            return Ok(Vec::new());
        }
        let old = match old {
            Some(id) => Some(self.repo.find_tree(id)?),
            None => None,
        };
        let new = match new {
            Some(id) => Some(self.repo.find_tree(id)?),
            None => None,
        };
        diff::tree_deltas(&self.repo, old.as_ref(), new.as_ref(), &self.excluded)
    }

    /// Whether `rel` is at or below a directory left out.
    fn is_excluded(&self, rel: &[u8]) -> bool {
        self.excluded.iter().any(|dir| paths::is_within(rel, dir))
    }
}

/// What [`Shadow::apply`] did.
#[derive(Default)]
struct Applied {
    /// The changes made.
    done: Vec<Change>,
    /// Left alone: something uncaptured in the way.
    skipped: Vec<Skipped>,
    /// Left alone: changed since the scan.
    conflicts: Vec<Change>,
}

impl Applied {
    fn conflict(&mut self, rel: &[u8], kind: ChangeKind) {
        self.conflicts.push(Change {
            path: paths::to_path(rel),
            kind,
        });
    }

    fn skip(&mut self, rel: &[u8], reason: String) {
        self.skipped.push(Skipped {
            path: paths::to_path(rel),
            size: 0,
            reason,
        });
    }

    /// Records a path the writer left alone. `uncaptured` is the scan's
    /// reason for not capturing what is at the path, if it knew of it.
    fn left_alone(
        &mut self,
        rel: &[u8],
        outcome: Outcome,
        uncaptured: Option<String>,
        scan_start_ns: i64,
    ) {
        match outcome {
            Outcome::Blocked(reason) => self.skip(rel, reason),
            Outcome::Stranded(kept) => self.skip(
                rel,
                format!(
                    "changed during the restore and could not be put back: it is kept as {}",
                    paths::display(&kept)
                ),
            ),
            // Something appeared where the scan saw nothing: work done
            // since the scan began, or a file the scan does not capture
            // (ignored, special, too large) that was there all along.
            Outcome::Changed(Drift::Appeared(stat)) if stat.newest_ns() >= scan_start_ns => {
                self.conflict(rel, ChangeKind::Added)
            }
            Outcome::Changed(Drift::Appeared(_)) => self.skip(
                rel,
                match uncaptured {
                    Some(reason) => format!("an uncaptured file is in the way: {reason}"),
                    None => "an uncaptured file (ignored?) is in the way".to_string(),
                },
            ),
            Outcome::Changed(Drift::Modified) => self.conflict(rel, ChangeKind::Modified),
            Outcome::Changed(Drift::Vanished) => self.conflict(rel, ChangeKind::Deleted),
            Outcome::Written(_) | Outcome::Removed => {}
        }
    }
}

/// What [`Shadow::materialize`] wrote, so that it can be taken back.
#[derive(Debug)]
pub struct Materialized {
    dir: PathBuf,
    /// `dir` and the ancestors it created, nearest last.
    created_ancestors: Vec<PathBuf>,
    /// Files written (relative) and their inodes.
    files: Vec<(Vec<u8>, u64)>,
    /// Directories created below `dir` (relative), oldest first.
    dirs: Vec<Vec<u8>>,
}

impl Materialized {
    /// The directory written into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes what the materialisation created, and only that: each file
    /// it wrote if it is still the same file, then each directory it
    /// created if it is empty (deepest first), `dir` and the ancestors it
    /// created included. A directory that existed before, and anything
    /// someone else put there since, are kept.
    pub fn undo(self) -> Result<(), Error> {
        if let Ok(mut writer) = Writer::open(&self.dir) {
            for (rel, ino) in self.files.iter().rev() {
                writer.remove_own(rel, *ino)?;
            }
            let mut dirs = self.dirs.clone();
            dirs.sort();
            for dir in dirs.iter().rev() {
                writer.remove_dir_if_empty(dir)?;
            }
        }
        for dir in self.created_ancestors.iter().rev() {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                // Not empty: someone else's files are there now.
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Creates `dir` and its missing ancestors; returns those it created,
/// outermost first.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut missing: Vec<&Path> = Vec::new();
    for ancestor in dir.ancestors() {
        if ancestor.as_os_str().is_empty() || fs::symlink_metadata(ancestor).is_ok() {
            break;
        }
        missing.push(ancestor);
    }
    let mut created = Vec::new();
    for path in missing.into_iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => created.push(path.to_path_buf()),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(error) => {
                for made in created.iter().rev() {
                    let _ = fs::remove_dir(made);
                }
                return Err(Error::io(path, error));
            }
        }
    }
    Ok(created)
}

impl Drop for Shadow {
    /// Saves the stat cache if it changed since it was last written (best
    /// effort: a lost stat cache only costs a re-hash).
    fn drop(&mut self) {
        self.state.batch = None;
        if let Err(error) = self.save_index() {
            tracing::warn!(%error, "cannot save the snapshot stat cache");
        }
    }
}

/// Opens and flocks `path`, waiting up to `timeout`.
fn lock(path: &Path, timeout: Duration) -> Result<File, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)?;
    let deadline = Instant::now() + timeout;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                if Instant::now() >= deadline {
                    return Err(Error::Busy(format!(
                        "another process holds the snapshot lock {} (waited {} s)",
                        path.display(),
                        timeout.as_secs_f64()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(errno) => return Err(Error::io(path, errno.into())),
        }
    }
}

/// Removes temporary index files a killed process left behind (the caller
/// holds the lock, so none is in use).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.starts_with(format!("{INDEX_FILE}.tmp-").as_bytes())
            || name.starts_with(format!("{LAST_FILE}.tmp-").as_bytes())
            || name.starts_with(format!("{WORKSPACE_FILE}.tmp-").as_bytes())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The total size of the files below `dir`.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => total += dir_size(&entry.path()),
            Ok(_) => total += entry.metadata().map(|metadata| metadata.len()).unwrap_or(0),
            Err(_) => {}
        }
    }
    total
}
