//! Changes between trees, and unified diffs of them.

use std::fmt::Write as _;
use std::path::PathBuf;

use git2::{Delta, DiffOptions, ObjectType, Oid, Repository, Tree};
use similar::TextDiff;

use crate::error::Error;
use crate::index::{MODE_SYMLINK, MODE_TREE};
use crate::paths;
use crate::perms::{self, Perms, NOTE_NAME};
use crate::{Change, ChangeKind};

/// One path's change between two trees, with both sides' mode and blob.
#[derive(Clone, Debug)]
pub(crate) struct FileDelta {
    pub(crate) rel: Vec<u8>,
    pub(crate) kind: ChangeKind,
    /// `(mode, blob)` before; `None` when added.
    pub(crate) old: Option<(u32, Oid)>,
    /// `(mode, blob)` after; `None` when deleted.
    pub(crate) new: Option<(u32, Oid)>,
    /// Permission bits the first state's note records for the path.
    pub(crate) old_perm: Option<u32>,
    /// Permission bits the second state's note records for the path.
    pub(crate) new_perm: Option<u32>,
}

impl FileDelta {
    pub(crate) fn to_change(&self) -> Change {
        Change {
            path: paths::to_path(&self.rel),
            kind: self.kind,
        }
    }
}

/// The permissions note of a snapshot's root tree (empty without one, or
/// with one that cannot be read).
pub(crate) fn note(repo: &Repository, tree: Option<&Tree<'_>>) -> Result<Perms, Error> {
    let Some(entry) = tree.and_then(|tree| tree.get_name_bytes(NOTE_NAME)) else {
        return Ok(Perms::new());
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(Perms::new());
    }
    let blob = repo.find_blob(entry.id())?;
    Ok(perms::parse(blob.content()).unwrap_or_default())
}

/// The file-level changes from `old` to `new` (either may be absent: the
/// empty tree), sorted by path. Identical subtrees are skipped by id, so the
/// cost follows the size of the change. The permissions note is not a
/// path: a change of recorded bits shows as `ModeChanged` on its file.
/// Paths at or below an `excluded` one are left out.
pub(crate) fn tree_deltas(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
    excluded: &[Vec<u8>],
) -> Result<Vec<FileDelta>, Error> {
    let left_out =
        |rel: &[u8]| rel == NOTE_NAME || excluded.iter().any(|dir| paths::is_within(rel, dir));
    let mut options = DiffOptions::new();
    options
        .include_typechange(true)
        .skip_binary_check(true)
        .ignore_submodules(true);
    let diff = repo.diff_tree_to_tree(old, new, Some(&mut options))?;
    let mut out = Vec::with_capacity(diff.deltas().len());
    for delta in diff.deltas() {
        let old_file = delta.old_file();
        let new_file = delta.new_file();
        let old_side = (u32::from(old_file.mode()), old_file.id());
        let new_side = (u32::from(new_file.mode()), new_file.id());
        let (kind, old, new, rel) = match delta.status() {
            Delta::Added => (
                ChangeKind::Added,
                None,
                Some(new_side),
                new_file.path_bytes(),
            ),
            Delta::Deleted => (
                ChangeKind::Deleted,
                Some(old_side),
                None,
                old_file.path_bytes(),
            ),
            Delta::Modified | Delta::Typechange => {
                let kind = if old_side.1 == new_side.1
                    && old_side.0 != new_side.0
                    && delta.status() == Delta::Modified
                {
                    ChangeKind::ModeChanged
                } else {
                    ChangeKind::Modified
                };
                (kind, Some(old_side), Some(new_side), new_file.path_bytes())
            }
            // Tree-to-tree diffs without rename detection yield no others.
            _ => continue,
        };
        let Some(rel) = rel else { continue };
        if left_out(rel) {
            continue;
        }
        out.push(FileDelta {
            rel: rel.to_vec(),
            kind,
            old,
            new,
            old_perm: None,
            new_perm: None,
        });
    }
    let old_perms = note(repo, old)?;
    let new_perms = note(repo, new)?;
    if !old_perms.is_empty() || !new_perms.is_empty() {
        for delta in &mut out {
            delta.old_perm = old_perms.get(&delta.rel).copied();
            delta.new_perm = new_perms.get(&delta.rel).copied();
        }
    }
    if old_perms != new_perms {
        // Files whose content and git mode are the same but whose recorded
        // bits differ.
        let listed: std::collections::HashSet<Vec<u8>> =
            out.iter().map(|delta| delta.rel.clone()).collect();
        let mut candidates: Vec<&Vec<u8>> = old_perms.keys().chain(new_perms.keys()).collect();
        candidates.sort();
        candidates.dedup();
        for rel in candidates {
            let (old_perm, new_perm) = (old_perms.get(rel).copied(), new_perms.get(rel).copied());
            if old_perm == new_perm || listed.contains(rel) || left_out(rel) {
                continue;
            }
            let side = |tree: Option<&Tree<'_>>| -> Option<(u32, Oid)> {
                let entry = tree?.get_path(&paths::to_path(rel)).ok()?;
                (entry.kind() == Some(ObjectType::Blob))
                    .then(|| (entry.filemode() as u32, entry.id()))
            };
            let (Some(before), Some(after)) = (side(old), side(new)) else {
                continue;
            };
            if before != after {
                continue;
            }
            out.push(FileDelta {
                rel: rel.clone(),
                kind: ChangeKind::ModeChanged,
                old: Some(before),
                new: Some(after),
                old_perm,
                new_perm,
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The mode a file side shows in a unified diff: git's, with the recorded
/// permission bits when there are some.
fn shown_mode(mode: u32, perm: Option<u32>) -> u32 {
    if mode == MODE_SYMLINK || mode == MODE_TREE {
        return mode;
    }
    0o100000 | perm.unwrap_or_else(|| perms::default_bits(mode))
}

/// How many deltas count as added, modified (content, type or mode) and
/// deleted.
pub(crate) fn counts(deltas: &[FileDelta]) -> (u64, u64, u64) {
    let mut added = 0;
    let mut modified = 0;
    let mut deleted = 0;
    for delta in deltas {
        match delta.kind {
            ChangeKind::Added => added += 1,
            ChangeKind::Modified | ChangeKind::ModeChanged => modified += 1,
            ChangeKind::Deleted => deleted += 1,
        }
    }
    (added, modified, deleted)
}

/// Whether `bytes` look binary, as git decides: a NUL in the first 8000.
fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8000).any(|&byte| byte == 0)
}

fn blob_bytes(repo: &Repository, side: Option<(u32, Oid)>) -> Result<Vec<u8>, Error> {
    match side {
        None => Ok(Vec::new()),
        Some((mode, _)) if mode == MODE_TREE => Ok(Vec::new()),
        Some((_, oid)) => {
            let odb = repo.odb()?;
            let object = odb.read(oid)?;
            if object.kind() != ObjectType::Blob {
                return Ok(Vec::new());
            }
            Ok(object.data().to_vec())
        }
    }
}

/// Renders deltas as a git-style unified diff (three lines of context).
pub(crate) fn unified(
    repo: &Repository,
    deltas: &[FileDelta],
    limit: &[PathBuf],
) -> Result<String, Error> {
    let limit: Vec<Vec<u8>> = limit
        .iter()
        .filter_map(|path| paths::normalize(path))
        .collect();
    let mut out = String::new();
    for delta in deltas {
        if !limit.is_empty() && !limit.iter().any(|base| paths::is_within(&delta.rel, base)) {
            continue;
        }
        let name = paths::display(&delta.rel);
        let _ = writeln!(out, "diff --git a/{name} b/{name}");
        let old_mode = delta.old.map(|(mode, _)| shown_mode(mode, delta.old_perm));
        let new_mode = delta.new.map(|(mode, _)| shown_mode(mode, delta.new_perm));
        match (old_mode, new_mode) {
            (None, Some(mode)) => {
                let _ = writeln!(out, "new file mode {mode:o}");
            }
            (Some(mode), None) => {
                let _ = writeln!(out, "deleted file mode {mode:o}");
            }
            (Some(old_mode), Some(new_mode)) if old_mode != new_mode => {
                let _ = writeln!(out, "old mode {old_mode:o}");
                let _ = writeln!(out, "new mode {new_mode:o}");
            }
            _ => {}
        }
        if delta.kind == ChangeKind::ModeChanged {
            continue;
        }
        let old_bytes = blob_bytes(repo, delta.old)?;
        let new_bytes = blob_bytes(repo, delta.new)?;
        let old_label = if delta.old.is_some() {
            format!("a/{name}")
        } else {
            "/dev/null".to_string()
        };
        let new_label = if delta.new.is_some() {
            format!("b/{name}")
        } else {
            "/dev/null".to_string()
        };
        if is_binary(&old_bytes) || is_binary(&new_bytes) {
            let _ = writeln!(out, "Binary files {old_label} and {new_label} differ");
            continue;
        }
        let old_text = String::from_utf8_lossy(&old_bytes);
        let new_text = String::from_utf8_lossy(&new_bytes);
        let text_diff = TextDiff::from_lines(old_text.as_ref(), new_text.as_ref());
        let _ = write!(
            out,
            "{}",
            text_diff
                .unified_diff()
                .context_radius(3)
                .header(&old_label, &new_label)
        );
    }
    Ok(out)
}
