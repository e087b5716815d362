//! Workspace snapshots in the service: which shadow store serves a
//! conversation, watchers while the daemon runs, and the operations that
//! keep files and conversation in step: turn start/end snapshots, restore
//! (conflict-safe, undoable), rewind with files, fork into a new directory,
//! resume, gc.
//!
//! Every restore first checks that the workspace has not changed since the
//! latest snapshot exo knows of (someone else's work), then takes and
//! records a safety snapshot, then writes only the paths that differ,
//! leaving alone (and reporting) every path that changes on disk after the
//! safety snapshot, then records a `workspace_snapshot {reason: restore}`
//! naming the snapshot the files now match, with the paths left alone. So
//! every restore can itself be undone, and no edit made while it runs is
//! lost.
//!
//! exo's root and the key file's directory are never captured, diffed,
//! restored or materialised, even when a workspace contains them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use exo_core::{EventData, EventKind, PathConflict, SkippedFile, SnapshotReason};
use exo_protocol::methods::{PathChange, RestoreResult, SkippedPath};
use exo_protocol::{ErrorCode, ErrorData};

use exo_snapshot::{ChangeKind, RestoreOptions, ScanHint, Shadow, Watcher};
use exo_store::{Conversation, Store};

use crate::convert::{rpc_error, simple_error, store_error};

/// One workspace's shadow store, and its watcher in a daemon.
struct Entry {
    shadow: Shadow,
    watcher: Option<Watcher>,
}

/// The shadow stores this process has open.
pub(crate) struct Workspaces {
    root: PathBuf,
    /// Directories no snapshot may capture: the exo root and the key
    /// file's directory.
    exclude: Vec<PathBuf>,
    /// Whether to keep shadows (and their watchers) open between requests:
    /// true in the daemon, false in a one-shot CLI process.
    keep_open: bool,
    open: Mutex<HashMap<PathBuf, Arc<Mutex<Entry>>>>,
}

/// A resolved snapshot: its event's data.
pub(crate) struct SnapshotRef {
    pub commit: String,
    pub tree: String,
}

/// The largest file `snapshot/read` returns: 32 MiB, as `artifact/get`.
const MAX_READ_BYTES: u64 = 32 * 1024 * 1024;

pub(crate) fn snapshot_error(err: exo_snapshot::Error) -> crate::ServiceError {
    match err {
        exo_snapshot::Error::Conflict { ref paths } => rpc_error(
            ErrorCode::Conflict,
            err.to_string(),
            ErrorData {
                key: Some(
                    paths
                        .iter()
                        .map(|p| p.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                ..ErrorData::default()
            },
        ),
        exo_snapshot::Error::NotFound(_) => simple_error(ErrorCode::NotFound, err.to_string()),
        exo_snapshot::Error::Busy(_) => simple_error(ErrorCode::Busy, err.to_string()),
        other => simple_error(ErrorCode::Internal, other.to_string()),
    }
}

/// Paths a restore left alone, for the protocol.
fn skipped_paths(skipped: &[exo_snapshot::Skipped]) -> Vec<SkippedPath> {
    skipped
        .iter()
        .map(|skip| SkippedPath {
            path: skip.path.to_string_lossy().into_owned(),
            reason: skip.reason.clone(),
        })
        .collect()
}

pub(crate) fn changes(changes: &[exo_snapshot::Change]) -> Vec<PathChange> {
    changes
        .iter()
        .map(|change| PathChange {
            path: change.path.to_string_lossy().into_owned(),
            change: match change.kind {
                ChangeKind::Added => "added",
                ChangeKind::Modified => "modified",
                ChangeKind::Deleted => "deleted",
                ChangeKind::ModeChanged => "mode_changed",
            }
            .to_string(),
        })
        .collect()
}

impl Workspaces {
    pub fn new(root: PathBuf, keep_open: bool) -> Workspaces {
        Workspaces {
            exclude: crate::turns::protected_dirs(&root),
            root,
            keep_open,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn options(&self) -> exo_snapshot::Options {
        exo_snapshot::Options {
            exclude: self.exclude.clone(),
            ..exo_snapshot::Options::default()
        }
    }

    /// Runs `f` with the workspace's shadow (and watcher hint source).
    fn with<T>(
        &self,
        workspace: &Path,
        f: impl FnOnce(&mut Shadow, &mut Option<Watcher>) -> Result<T, crate::ServiceError>,
    ) -> Result<T, crate::ServiceError> {
        if !self.keep_open {
            let mut shadow =
                Shadow::open(&self.root, workspace, self.options()).map_err(snapshot_error)?;
            return f(&mut shadow, &mut None);
        }
        let entry = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            match open.get(workspace) {
                Some(entry) => Arc::clone(entry),
                None => {
                    let shadow = Shadow::open(&self.root, workspace, self.options())
                        .map_err(snapshot_error)?;
                    let watcher = match Watcher::excluding(workspace, &self.root, &self.exclude) {
                        Ok(watcher) => Some(watcher),
                        Err(err) => {
                            tracing::warn!(workspace = %workspace.display(), %err, "no watcher; every snapshot scans fully");
                            None
                        }
                    };
                    let entry = Arc::new(Mutex::new(Entry { shadow, watcher }));
                    open.insert(workspace.to_path_buf(), Arc::clone(&entry));
                    entry
                }
            }
        };
        let mut entry = entry.lock().unwrap_or_else(|p| p.into_inner());
        let Entry { shadow, watcher } = &mut *entry;
        f(shadow, watcher)
    }

    fn hint(watcher: &mut Option<Watcher>) -> ScanHint {
        match watcher {
            Some(watcher) => watcher.take_hint(),
            None => ScanHint::Full,
        }
    }

    /// Snapshots a workspace now and hands `record` the event to record
    /// (and whether every file was examined). `record` runs while the
    /// shadow is still locked, so `gc` (which reads what to keep under the
    /// same lock) can never drop a snapshot whose event is being recorded.
    /// The snapshot's objects are durable before `record` runs.
    pub fn take<T>(
        &self,
        workspace: &str,
        reason: SnapshotReason,
        record: impl FnOnce(EventData, bool) -> Result<T, crate::ServiceError>,
    ) -> Result<T, crate::ServiceError> {
        self.with(Path::new(workspace), |shadow, watcher| {
            let hint = Workspaces::hint(watcher);
            let snapshot = shadow.snapshot(hint).map_err(snapshot_error)?;
            let data = snapshot_event(
                workspace,
                &snapshot.commit,
                &snapshot.tree,
                reason,
                &snapshot,
            );
            record(data, snapshot.full_scan)
        })
    }

    /// Paths changed on disk since `base`.
    pub fn drift(
        &self,
        workspace: &str,
        base: &str,
    ) -> Result<Vec<PathChange>, crate::ServiceError> {
        self.with(Path::new(workspace), |shadow, _| {
            Ok(changes(
                &shadow.drift(&base.to_string()).map_err(snapshot_error)?,
            ))
        })
    }

    /// Changes between two snapshots (`to = None`: the workspace now), and
    /// optionally a unified diff.
    pub fn diff(
        &self,
        workspace: &str,
        from: &str,
        to: Option<&str>,
        unified: bool,
    ) -> Result<(Vec<PathChange>, Option<String>), crate::ServiceError> {
        self.with(Path::new(workspace), |shadow, watcher| {
            let from = from.to_string();
            match to {
                Some(to) => {
                    let to = to.to_string();
                    let listed = changes(&shadow.diff(&from, &to).map_err(snapshot_error)?);
                    let diff = if unified {
                        Some(shadow.unified_diff(&from, &to).map_err(snapshot_error)?)
                    } else {
                        None
                    };
                    Ok((listed, diff))
                }
                None if !unified => {
                    Ok((changes(&shadow.drift(&from).map_err(snapshot_error)?), None))
                }
                None => {
                    // A unified diff against the disk needs the disk as a
                    // commit, taken without moving the shadow's last
                    // snapshot (the next one's counts stay right).
                    let now = shadow
                        .peek(Workspaces::hint(watcher))
                        .map_err(snapshot_error)?;
                    let listed = changes(&shadow.diff(&from, &now).map_err(snapshot_error)?);
                    Ok((
                        listed,
                        Some(shadow.unified_diff(&from, &now).map_err(snapshot_error)?),
                    ))
                }
            }
        })
    }

    /// One file as snapshot `commit` holds it (see
    /// [`exo_snapshot::Shadow::read_file`]).
    pub fn read_file(
        &self,
        workspace: &str,
        commit: &str,
        path: &str,
    ) -> Result<Option<(Vec<u8>, bool)>, crate::ServiceError> {
        self.with(Path::new(workspace), |shadow, _| {
            shadow
                .read_file(&commit.to_string(), path, MAX_READ_BYTES)
                .map_err(|err| match err {
                    exo_snapshot::Error::Invalid(message) => {
                        simple_error(ErrorCode::InvalidParams, message)
                    }
                    other => snapshot_error(other),
                })
        })
    }

    /// Materialises a snapshot into a new directory; what it wrote can be
    /// taken back with [`exo_snapshot::Materialized::undo`].
    pub fn materialize(
        &self,
        workspace: &str,
        commit: &str,
        dir: &Path,
    ) -> Result<exo_snapshot::Materialized, crate::ServiceError> {
        self.with(Path::new(workspace), |shadow, _| {
            shadow
                .materialize(&commit.to_string(), dir)
                .map_err(snapshot_error)
        })
    }

    /// Removes what no live conversation reaches, shadow by shadow. What
    /// to keep is read under each shadow's lock, after any snapshot being
    /// taken there has been recorded.
    pub fn gc(
        &self,
        store: &Store,
    ) -> Result<exo_protocol::methods::GcResult, crate::ServiceError> {
        let workspaces = store.snapshot_workspaces().map_err(store_error)?;
        let mut result = exo_protocol::methods::GcResult {
            workspaces: 0,
            objects_before: 0,
            objects_after: 0,
            bytes_freed: 0,
            sandbox_images: 0,
        };
        for workspace in workspaces {
            if !Path::new(&workspace).is_dir() {
                tracing::warn!(%workspace, "workspace is gone; its snapshots are left as they are");
                continue;
            }
            let report = self.with(Path::new(&workspace), |shadow, _| {
                let reachable = store.reachable_snapshots().map_err(store_error)?;
                // Also the newest snapshot recorded for the workspace, even
                // by a deleted conversation: it is what exo last knew the
                // files to be, the baseline of every restore's conflict check.
                let latest = store
                    .latest_workspace_snapshot(&workspace)
                    .map_err(store_error)?;
                let keep: Vec<String> = reachable
                    .into_iter()
                    .filter(|(w, _)| *w == workspace)
                    .map(|(_, commit)| commit)
                    .chain(latest)
                    .filter(|commit| shadow.contains(commit))
                    .collect();
                shadow.gc(&keep).map_err(snapshot_error)
            })?;
            result.workspaces += 1;
            result.objects_before += report.objects_before;
            result.objects_after += report.objects_after;
            result.bytes_freed += report.bytes_freed;
        }
        Ok(result)
    }

    /// Restores `conversation`'s workspace to `target`: conflict check,
    /// safety snapshot (recorded), restore, and, with `record_restore`, a
    /// `restore` snapshot event naming `target`. A rewind passes false: its
    /// `rewound` event names the snapshot, and the safety snapshot stays the
    /// last event of the timeline it leaves, so redo brings it back. A dry
    /// run only reports.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &self,
        store: &Store,
        conversation: &Conversation,
        workspace: &str,
        target: &SnapshotRef,
        force: bool,
        dry_run: bool,
        unified: bool,
        record_restore: bool,
    ) -> Result<RestoreResult, crate::ServiceError> {
        let (agent, conv) = (conversation.agent.to_string(), conversation.id.to_string());
        // The newest snapshot recorded for this workspace is what exo last
        // knew the files to be; anything else on disk is someone else's
        // work. (Not the shadow's own last snapshot: a diff against the disk
        // snapshots it without recording anything.)
        let expected = store
            .latest_workspace_snapshot(workspace)
            .map_err(store_error)?;
        self.with(Path::new(workspace), |shadow, watcher| {
            let target_commit = target.commit.clone();
            // A real restore refuses (listing the paths) if the workspace
            // changed since the latest snapshot exo knows of, unless forced;
            // a dry run reports those paths instead.
            let planned = shadow
                .restore(
                    &target_commit,
                    expected.as_ref(),
                    RestoreOptions {
                        force: force || dry_run,
                        dry_run: true,
                        keep_drifted: false,
                    },
                )
                .map_err(snapshot_error)?;
            let conflicts = match (&expected, dry_run && !force) {
                (Some(expected), true) => changes(&shadow.drift(expected).map_err(snapshot_error)?),
                _ => Vec::new(),
            };
            let diff = if unified {
                let now = shadow
                    .peek(Workspaces::hint(watcher))
                    .map_err(snapshot_error)?;
                Some(
                    shadow
                        .unified_diff(&now, &target_commit)
                        .map_err(snapshot_error)?,
                )
            } else {
                None
            };
            if dry_run {
                return Ok(RestoreResult {
                    snapshot: target.commit.clone(),
                    changes: changes(&planned.changes),
                    written: false,
                    conflicts,
                    skipped: Vec::new(),
                    safety: None,
                    event: None,
                    diff,
                });
            }
            // The safety snapshot keeps whatever is on disk now, forced-over
            // changes included.
            let safety = shadow
                .snapshot(Workspaces::hint(watcher))
                .map_err(snapshot_error)?;
            let safety_event = store
                .record(
                    &agent,
                    &conv,
                    snapshot_event(
                        workspace,
                        &safety.commit,
                        &safety.tree,
                        SnapshotReason::Safety,
                        &safety,
                    ),
                )
                .map_err(store_error)?;
            // Whatever changes on disk from here on is in no snapshot: the
            // restore leaves it alone (what drifted since the safety
            // snapshot, and each path found changed right before it is
            // written) and reports it.
            let report = shadow
                .restore(
                    &target_commit,
                    Some(&safety.commit),
                    RestoreOptions {
                        keep_drifted: true,
                        ..RestoreOptions::default()
                    },
                )
                .map_err(snapshot_error)?;
            let mut result = RestoreResult {
                snapshot: target.commit.clone(),
                changes: changes(&report.changes),
                written: true,
                conflicts: changes(&report.conflicts),
                skipped: skipped_paths(&report.skipped),
                safety: Some(exo_protocol::Event::from(&safety_event)),
                event: None,
                diff,
            };
            if record_restore {
                let data = restore_event(workspace, target, &result);
                let event = store.record(&agent, &conv, data).map_err(store_error)?;
                result.event = Some(exo_protocol::Event::from(&event));
            }
            Ok(result)
        })
    }
}

/// Added, modified (content or mode) and deleted counts of listed changes.
fn counts(changes: &[PathChange]) -> (u64, u64, u64) {
    let count = |names: &[&str]| {
        changes
            .iter()
            .filter(|c| names.contains(&c.change.as_str()))
            .count() as u64
    };
    (
        count(&["added"]),
        count(&["modified", "mode_changed"]),
        count(&["deleted"]),
    )
}

/// The `workspace_snapshot {reason: restore}` recording what a restore
/// did: the snapshot the files now match, what was written, and the paths
/// left alone.
fn restore_event(workspace: &str, target: &SnapshotRef, result: &RestoreResult) -> EventData {
    let (added, modified, deleted) = counts(&result.changes);
    EventData::WorkspaceSnapshot {
        workspace: workspace.to_string(),
        commit: target.commit.clone(),
        tree: target.tree.clone(),
        reason: SnapshotReason::Restore,
        added,
        modified,
        deleted,
        skipped: result
            .skipped
            .iter()
            .map(|skip| SkippedFile {
                path: skip.path.clone(),
                size: 0,
                reason: Some(skip.reason.clone()),
            })
            .collect(),
        conflicts: result
            .conflicts
            .iter()
            .map(|conflict| PathConflict {
                path: conflict.path.clone(),
                change: conflict.change.clone(),
            })
            .collect(),
    }
}

fn snapshot_event(
    workspace: &str,
    commit: &str,
    tree: &str,
    reason: SnapshotReason,
    snapshot: &exo_snapshot::Snapshot,
) -> EventData {
    EventData::WorkspaceSnapshot {
        workspace: workspace.to_string(),
        commit: commit.to_string(),
        tree: tree.to_string(),
        reason,
        added: snapshot.added,
        modified: snapshot.modified,
        deleted: snapshot.deleted,
        skipped: snapshot
            .skipped
            .iter()
            .map(|skipped| SkippedFile {
                path: skipped.path.to_string_lossy().into_owned(),
                size: skipped.size,
                reason: Some(skipped.reason.clone()),
            })
            .collect(),
        conflicts: Vec::new(),
    }
}

/// Finds the snapshot a caller names: a commit id (or its prefix of at
/// least 7 characters) recorded on the conversation's history, or the id
/// of a `workspace_snapshot` event it can reach.
pub(crate) fn resolve_snapshot(
    store: &Store,
    agent: &str,
    conversation: &str,
    name: &str,
) -> Result<SnapshotRef, crate::ServiceError> {
    if let Ok(event_id) = name.parse::<exo_core::EventId>() {
        let event = store
            .event(agent, conversation, event_id)
            .map_err(store_error)?;
        return match event.data {
            EventData::WorkspaceSnapshot { commit, tree, .. } => Ok(SnapshotRef { commit, tree }),
            other => Err(simple_error(
                ErrorCode::InvalidParams,
                format!(
                    "event {event_id} is a {} event, not a workspace snapshot",
                    other.kind_name()
                ),
            )),
        };
    }
    if name.len() < 7 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(simple_error(
            ErrorCode::InvalidParams,
            format!("{name:?} is neither a snapshot commit nor an event id"),
        ));
    }
    let mut query = exo_store::EventQuery {
        desc: true,
        limit: exo_store::MAX_PAGE,
        kind: Some(EventKind::WorkspaceSnapshot),
        ..Default::default()
    };
    loop {
        let page = store
            .events(agent, conversation, &query)
            .map_err(store_error)?;
        for event in &page.events {
            if let EventData::WorkspaceSnapshot { commit, tree, .. } = &event.data {
                if commit.starts_with(&name.to_ascii_lowercase()) {
                    return Ok(SnapshotRef {
                        commit: commit.clone(),
                        tree: tree.clone(),
                    });
                }
            }
        }
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    // Not on the history: one the conversation took on a branch a rewind
    // left behind (a diff opened before the rewind, a redo's preview).
    if let Some((commit, tree)) = store
        .snapshot_on_any_branch(agent, conversation, &name.to_ascii_lowercase())
        .map_err(store_error)?
    {
        return Ok(SnapshotRef { commit, tree });
    }
    Err(rpc_error(
        ErrorCode::NotFound,
        format!("snapshot {name:?} not found in conversation {conversation}"),
        ErrorData {
            what: Some("snapshot".into()),
            key: Some(name.to_string()),
            ..ErrorData::default()
        },
    ))
}

/// What the store refuses a rewind for, checked first: a head other than
/// the one the caller expects, a turn in progress.
fn refuse_as_the_store_would(
    conv: &exo_store::Conversation,
    expected_head: Option<exo_core::EventId>,
) -> Result<(), crate::ServiceError> {
    if let Some(expected) = expected_head {
        if expected != conv.head {
            return Err(store_error(exo_store::Error::HeadConflict {
                expected,
                actual: conv.head,
            }));
        }
    }
    if let Some(turn) = conv.open_turn {
        return Err(store_error(exo_store::Error::Busy(format!(
            "turn {turn} is in progress in conversation {}; finish it before rewinding",
            conv.slug
        ))));
    }
    Ok(())
}

/// The snapshot in effect at `at` (the head when `None`).
pub(crate) fn snapshot_at(
    store: &Store,
    agent: &str,
    conversation: &str,
    at: Option<exo_core::EventId>,
) -> Result<Option<(exo_core::Event, SnapshotRef)>, crate::ServiceError> {
    let event = store
        .latest_at(agent, conversation, at, EventKind::WorkspaceSnapshot)
        .map_err(store_error)?;
    Ok(event.and_then(|event| match &event.data {
        EventData::WorkspaceSnapshot { commit, tree, .. } => {
            let found = SnapshotRef {
                commit: commit.clone(),
                tree: tree.clone(),
            };
            Some((event, found))
        }
        _ => None,
    }))
}

impl crate::Service {
    fn workspaces(&self) -> &Workspaces {
        &self.inner.workspaces
    }

    /// The conversation and its workspace, or `invalid_params` naming what
    /// is missing.
    fn with_workspace(
        &self,
        agent: &str,
        conversation: &str,
    ) -> Result<(Conversation, String), crate::ServiceError> {
        let conv = self
            .store()
            .conversation(agent, conversation)
            .map_err(store_error)?;
        match conv.workspace.clone() {
            Some(workspace) => Ok((conv, workspace)),
            None => Err(crate::convert::rpc_error(
                ErrorCode::InvalidParams,
                format!(
                    "conversation {} has no workspace (it is given when the conversation is created)",
                    conv.slug
                ),
                ErrorData {
                    what: Some("workspace".into()),
                    ..ErrorData::default()
                },
            )),
        }
    }

    /// The turn-start snapshot to record with `turn/begin`, if the
    /// conversation has a workspace.
    ///
    /// `record` gets the events to record with the turn (the snapshot, or
    /// nothing without a workspace) and runs while the shadow is locked.
    pub(crate) fn with_turn_snapshot<T>(
        &self,
        conversation: &Conversation,
        reason: SnapshotReason,
        record: impl FnOnce(Vec<EventData>) -> Result<T, crate::ServiceError>,
    ) -> Result<T, crate::ServiceError> {
        match &conversation.workspace {
            Some(workspace) => self
                .workspaces()
                .take(workspace, reason, |data, _| record(vec![data])),
            None => record(Vec::new()),
        }
    }

    pub(crate) fn snapshot_take(
        &self,
        params: exo_protocol::ConversationRef,
    ) -> Result<exo_protocol::methods::SnapshotResult, crate::ServiceError> {
        let (conv, workspace) = self.with_workspace(&params.agent, &params.conversation)?;
        let (event, full_scan) =
            self.workspaces()
                .take(&workspace, SnapshotReason::Manual, |data, full_scan| {
                    let event = self
                        .store()
                        .record(&conv.agent.to_string(), &conv.id.to_string(), data)
                        .map_err(store_error)?;
                    Ok((event, full_scan))
                })?;
        Ok(exo_protocol::methods::SnapshotResult {
            event: exo_protocol::Event::from(&event),
            full_scan,
        })
    }

    pub(crate) fn snapshot_list(
        &self,
        params: exo_protocol::methods::SnapshotListParams,
    ) -> Result<exo_protocol::methods::SnapshotList, crate::ServiceError> {
        let limit = match params.limit {
            None => exo_store::DEFAULT_PAGE,
            Some(limit @ 1..=10_000) => limit as usize,
            Some(_) => {
                return Err(simple_error(
                    ErrorCode::InvalidParams,
                    "limit must be between 1 and 10000",
                ))
            }
        };
        let query = exo_store::EventQuery {
            desc: true,
            limit,
            kind: Some(EventKind::WorkspaceSnapshot),
            ..Default::default()
        };
        let page = self
            .store()
            .events(&params.agent, &params.conversation, &query)
            .map_err(store_error)?;
        Ok(exo_protocol::methods::SnapshotList {
            snapshots: crate::convert::events(&page.events),
        })
    }

    pub(crate) fn snapshot_diff(
        &self,
        params: exo_protocol::methods::SnapshotDiffParams,
    ) -> Result<exo_protocol::methods::SnapshotDiff, crate::ServiceError> {
        let (_, workspace) = self.with_workspace(&params.agent, &params.conversation)?;
        let from = match &params.from {
            Some(name) => {
                resolve_snapshot(self.store(), &params.agent, &params.conversation, name)?.commit
            }
            None => snapshot_at(self.store(), &params.agent, &params.conversation, None)?
                .map(|(_, found)| found.commit)
                .ok_or_else(|| {
                    crate::convert::rpc_error(
                        ErrorCode::NotFound,
                        "the conversation has no snapshot yet",
                        ErrorData {
                            what: Some("snapshot".into()),
                            ..ErrorData::default()
                        },
                    )
                })?,
        };
        let to = match &params.to {
            Some(name) => Some(
                resolve_snapshot(self.store(), &params.agent, &params.conversation, name)?.commit,
            ),
            None => None,
        };
        let (changes, diff) =
            self.workspaces()
                .diff(&workspace, &from, to.as_deref(), params.unified)?;
        Ok(exo_protocol::methods::SnapshotDiff {
            from,
            to,
            changes,
            diff,
        })
    }

    pub(crate) fn snapshot_read(
        &self,
        params: exo_protocol::methods::SnapshotReadParams,
    ) -> Result<exo_protocol::methods::SnapshotFile, crate::ServiceError> {
        let (_, workspace) = self.with_workspace(&params.agent, &params.conversation)?;
        let target = resolve_snapshot(
            self.store(),
            &params.agent,
            &params.conversation,
            &params.snapshot,
        )?;
        let found = self
            .workspaces()
            .read_file(&workspace, &target.commit, &params.path)?;
        let (content_base64, size, executable) = match found {
            Some((bytes, executable)) => (
                Some(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    &bytes,
                )),
                bytes.len() as u64,
                executable,
            ),
            None => (None, 0, false),
        };
        Ok(exo_protocol::methods::SnapshotFile {
            snapshot: target.commit,
            path: params.path,
            content_base64,
            size,
            executable,
        })
    }

    pub(crate) fn snapshot_restore(
        &self,
        params: exo_protocol::methods::SnapshotRestoreParams,
    ) -> Result<exo_protocol::methods::RestoreResult, crate::ServiceError> {
        let (conv, workspace) = self.with_workspace(&params.agent, &params.conversation)?;
        if let Some(turn) = conv.open_turn {
            return Err(simple_error(
                ErrorCode::Busy,
                format!(
                    "turn {turn} is in progress in conversation {}; finish it before restoring",
                    conv.slug
                ),
            ));
        }
        let target = resolve_snapshot(
            self.store(),
            &params.agent,
            &params.conversation,
            &params.snapshot,
        )?;
        self.workspaces().restore(
            self.store(),
            &conv,
            &workspace,
            &target,
            params.force,
            params.dry_run,
            params.unified,
            true,
        )
    }

    /// `conversation/rewind`: restores the files to the snapshot in effect
    /// at the target first (unless `files: false`), then moves the head.
    pub(crate) fn rewind(
        &self,
        params: exo_protocol::methods::ConversationRewindParams,
    ) -> Result<exo_protocol::methods::RewindResult, crate::ServiceError> {
        let store = self.store();
        let conv = store
            .conversation(&params.agent, &params.conversation)
            .map_err(store_error)?;
        let mut files = None;
        let mut restored = None;
        let restores_files = conv.workspace.is_some() && params.files.unwrap_or(true);
        if restores_files || params.dry_run {
            // Refuse what the store would refuse before touching any file,
            // or answering a dry run.
            refuse_as_the_store_would(&conv, params.expected_head)?;
        }
        if let (Some(workspace), true) = (&conv.workspace, restores_files) {
            if params.to != conv.head {
                if let Some((_, target)) =
                    snapshot_at(store, &params.agent, &params.conversation, Some(params.to))?
                {
                    let result = self.workspaces().restore(
                        store,
                        &conv,
                        workspace,
                        &target,
                        params.force,
                        params.dry_run,
                        false,
                        false,
                    )?;
                    if params.dry_run {
                        return Ok(exo_protocol::methods::RewindResult {
                            conversation: crate::convert::conversation(&conv),
                            event: None,
                            files: Some(result),
                        });
                    }
                    restored = Some(target.commit.clone());
                    files = Some(result);
                }
            }
        }
        if params.dry_run {
            // No files to restore: the event must still be one to rewind to.
            store
                .event(&params.agent, &params.conversation, params.to)
                .map_err(store_error)?;
            return Ok(exo_protocol::methods::RewindResult {
                conversation: crate::convert::conversation(&conv),
                event: None,
                files: None,
            });
        }
        // The safety snapshot just recorded is the head now: the caller's
        // expected head was checked before any file was touched, and a
        // writer slipping in since still makes this a conflict.
        let expected_head = match files.as_ref().and_then(|result| result.safety.as_ref()) {
            Some(safety) => Some(safety.id),
            None => params.expected_head,
        };
        let outcome = store
            .rewind_with(
                &params.agent,
                &params.conversation,
                params.to,
                expected_head,
                restored.clone(),
            )
            .map_err(store_error)?;
        // After the `rewound` event, record what the files now match, so
        // the log and the next restore's conflict check both know it.
        if let (Some(workspace), Some(commit), Some(result)) =
            (&conv.workspace, &restored, files.as_mut())
        {
            let tree = snapshot_at(store, &params.agent, &params.conversation, Some(params.to))?
                .map(|(_, found)| found.tree)
                .unwrap_or_default();
            let target = SnapshotRef {
                commit: commit.clone(),
                tree,
            };
            let data = restore_event(workspace, &target, result);
            let event = store
                .record(&params.agent, &params.conversation, data)
                .map_err(store_error)?;
            result.event = Some(exo_protocol::Event::from(&event));
        }
        let outcome = match &restored {
            Some(_) => exo_store::RewindOutcome {
                conversation: store
                    .conversation_by_id(outcome.conversation.id)
                    .map_err(store_error)?,
                event: outcome.event,
            },
            None => outcome,
        };
        Ok(exo_protocol::methods::RewindResult {
            conversation: crate::convert::conversation(&outcome.conversation),
            event: outcome.event.as_ref().map(exo_protocol::Event::from),
            files,
        })
    }

    /// `conversation/fork`; with `workspace`, materialises the fork point's
    /// snapshot into that directory, binds the fork to it and records the
    /// fork's first snapshot there.
    pub(crate) fn fork(
        &self,
        params: exo_protocol::methods::ConversationForkParams,
    ) -> Result<exo_protocol::Conversation, crate::ServiceError> {
        let store = self.store();
        let mut options = exo_store::ForkOptions {
            at: params.at,
            name: params.name,
            slug: params.slug,
            workspace: None,
        };
        if let Some(dir) = &params.workspace {
            let (source, workspace) = self.with_workspace(&params.agent, &params.conversation)?;
            let at = params.at.unwrap_or(source.head);
            let (_, snapshot) = snapshot_at(store, &params.agent, &params.conversation, Some(at))?
                .ok_or_else(|| {
                    simple_error(
                        ErrorCode::NotFound,
                        "there is no workspace snapshot at the fork point to materialise",
                    )
                })?;
            let dir = PathBuf::from(dir);
            let materialized = self
                .workspaces()
                .materialize(&workspace, &snapshot.commit, &dir)?;
            options.workspace = Some(dir);
            // A refused fork takes back what it wrote (and the directory,
            // if it made it), and nothing else.
            return match store.fork(&params.agent, &params.conversation, options) {
                Ok(fork) => self.fork_workspace_snapshot(fork),
                Err(err) => {
                    if let Err(undo) = materialized.undo() {
                        tracing::warn!(%undo, "cannot remove the refused fork's files");
                    }
                    Err(store_error(err))
                }
            };
        }
        let fork = store
            .fork(&params.agent, &params.conversation, options)
            .map_err(store_error)?;
        Ok(crate::convert::conversation(&fork))
    }

    /// Records a fork's first snapshot, of the directory it was
    /// materialised into.
    fn fork_workspace_snapshot(
        &self,
        fork: exo_store::Conversation,
    ) -> Result<exo_protocol::Conversation, crate::ServiceError> {
        let store = self.store();
        if let Some(workspace) = &fork.workspace {
            self.workspaces()
                .take(workspace, SnapshotReason::Fork, |data, _| {
                    store
                        .record(&fork.agent.to_string(), &fork.id.to_string(), data)
                        .map_err(store_error)
                })?;
        }
        let fork = store.conversation_by_id(fork.id).map_err(store_error)?;
        Ok(crate::convert::conversation(&fork))
    }

    pub(crate) fn resume(
        &self,
        params: exo_protocol::ConversationRef,
    ) -> Result<exo_protocol::methods::ResumeResult, crate::ServiceError> {
        let store = self.store();
        let conv = store
            .conversation(&params.agent, &params.conversation)
            .map_err(store_error)?;
        let (agent, id) = (conv.agent.to_string(), conv.id.to_string());
        let head = store.event(&agent, &id, conv.head).map_err(store_error)?;
        let last_turn = match store
            .latest_at(&agent, &id, None, EventKind::TurnStarted)
            .map_err(store_error)?
        {
            Some(started) => match started.turn {
                Some(turn) => Some(crate::convert::turn(
                    &store.turn(turn).map_err(store_error)?,
                )),
                None => None,
            },
            None => None,
        };
        let snapshot = snapshot_at(store, &agent, &id, None)?;
        let drift = match (&conv.workspace, &snapshot) {
            (Some(workspace), Some((_, found))) => {
                Some(self.workspaces().drift(workspace, &found.commit)?)
            }
            _ => None,
        };
        Ok(exo_protocol::methods::ResumeResult {
            conversation: crate::convert::conversation(&conv),
            head: exo_protocol::Event::from(&head),
            last_turn,
            snapshot: snapshot.map(|(event, _)| exo_protocol::Event::from(&event)),
            drift,
        })
    }

    pub(crate) fn gc(&self) -> Result<exo_protocol::methods::GcResult, crate::ServiceError> {
        let mut result = self.workspaces().gc(self.store())?;
        result.sandbox_images = self.gc_sandbox_images()?;
        Ok(result)
    }

    /// Removes this root's docker sandbox snapshots that no live
    /// conversation reaches; nothing when no Docker daemon answers. On a
    /// thread of its own, with a runtime of its own: this is called from
    /// blocking code, inside or outside a runtime.
    fn gc_sandbox_images(&self) -> Result<u64, crate::ServiceError> {
        let keep = self
            .store()
            .reachable_sandbox_images()
            .map_err(store_error)?;
        let root = crate::turns::protected_dirs(self.store().root()).swap_remove(0);
        let root = root.display().to_string();
        let removed = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| err.to_string())?;
                    runtime
                        .block_on(exo_sandbox::docker::gc(&root, &keep))
                        .map_err(|err| err.to_string())
                })
                .join()
                .unwrap_or_else(|_| Err("internal error: the gc thread panicked".to_owned()))
        });
        match removed {
            Ok(removed) => Ok(removed),
            Err(why) => {
                tracing::warn!("sandbox images were not collected: {why}");
                Ok(0)
            }
        }
    }
}
