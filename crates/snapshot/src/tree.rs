//! Building git trees from the stat cache, bottom-up, rebuilding only the
//! directories that changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use git2::Oid;

use crate::error::Error;
use crate::index::{Entry, MODE_TREE};
use crate::paths;

/// Tree ids of the directories of the current entries, and which of them
/// are stale.
///
/// **Invariant:** `dirty` is closed upwards: when a directory is dirty, so
/// is every ancestor. A cached tree that is not dirty matches the entries
/// below it, and its object exists in the store.
#[derive(Default)]
pub(crate) struct TreeCache {
    trees: HashMap<Vec<u8>, Oid>,
    dirty: HashSet<Vec<u8>>,
    /// Nothing cached is trustworthy (a fresh shadow, or after gc).
    all_dirty: bool,
}

/// A tree entry: name, git mode, id.
type Child = (Vec<u8>, u32, Oid);

impl TreeCache {
    /// A cache that trusts nothing.
    pub(crate) fn empty() -> TreeCache {
        TreeCache {
            all_dirty: true,
            ..TreeCache::default()
        }
    }

    /// Forgets every cached tree.
    pub(crate) fn clear(&mut self) {
        self.trees.clear();
        self.dirty.clear();
        self.all_dirty = true;
    }

    /// Whether the next build may write many trees.
    pub(crate) fn rebuilds_many(&self) -> bool {
        self.all_dirty || self.dirty.len() >= crate::pack::PACK_MIN_OBJECTS
    }

    /// Records that the entry at `rel` was added, removed, or changed its
    /// blob or mode: every directory above it must be rebuilt.
    pub(crate) fn mark(&mut self, rel: &[u8]) {
        if self.all_dirty {
            return;
        }
        // Nearest ancestor first; stop at one already dirty (closed upwards).
        let ancestors: Vec<&[u8]> = paths::ancestors(rel).collect();
        for dir in ancestors.into_iter().rev() {
            if !self.dirty.insert(dir.to_vec()) {
                break;
            }
        }
    }

    /// Records that the root tree must be rebuilt (its extra entry, the
    /// permissions note, changed).
    pub(crate) fn mark_root(&mut self) {
        if !self.all_dirty {
            self.dirty.insert(Vec::new());
        }
    }

    /// Builds the root tree of `entries`, handing every tree to rebuild to
    /// `store` (which stores it unless it exists, and returns its id).
    /// `root_extra` is one more blob in the root tree (name, id): the
    /// permissions note. When it changes, call [`TreeCache::mark_root`].
    pub(crate) fn build(
        &mut self,
        store: &mut dyn FnMut(&[u8]) -> Result<Oid, Error>,
        entries: &BTreeMap<Vec<u8>, Entry>,
        root_extra: Option<(&[u8], Oid)>,
    ) -> Result<Oid, Error> {
        if self.all_dirty {
            self.trees.clear();
        }
        let extra = root_extra.map(|(name, oid)| (name.to_vec(), crate::index::MODE_FILE, oid));
        let root = self.build_dir(store, entries, &[], extra)?;
        self.dirty.clear();
        self.all_dirty = false;
        Ok(root)
    }

    fn build_dir(
        &mut self,
        store: &mut dyn FnMut(&[u8]) -> Result<Oid, Error>,
        entries: &BTreeMap<Vec<u8>, Entry>,
        dir: &[u8],
        extra: Option<Child>,
    ) -> Result<Oid, Error> {
        if !self.all_dirty && !self.dirty.contains(dir) {
            if let Some(&oid) = self.trees.get(dir) {
                return Ok(oid);
            }
        }
        let start = paths::subtree_start(dir);
        let mut children: Vec<Child> = extra.into_iter().collect();
        let mut cursor = Bound::Included(start.clone());
        while let Some((path, entry)) = entries.range((cursor, Bound::Unbounded)).next() {
            if !path.starts_with(&start) {
                break;
            }
            let rest = &path[start.len()..];
            match rest.iter().position(|&byte| byte == b'/') {
                Some(slash) => {
                    let subdir = path[..start.len() + slash].to_vec();
                    let oid = self.build_dir(store, entries, &subdir, None)?;
                    children.push((rest[..slash].to_vec(), MODE_TREE, oid));
                    cursor = Bound::Included(paths::subtree_end(&subdir));
                }
                None => {
                    children.push((rest.to_vec(), entry.git_mode(), entry.oid));
                    cursor = Bound::Excluded(path.clone());
                }
            }
        }
        let oid = write_tree(store, &mut children)?;
        self.trees.insert(dir.to_vec(), oid);
        Ok(oid)
    }
}

/// Git's tree order: names compared as bytes, a tree's name as if it ended
/// in `/`.
fn git_order(a: &Child, b: &Child) -> std::cmp::Ordering {
    let a_tail: &[u8] = if a.1 == MODE_TREE { b"/" } else { b"" };
    let b_tail: &[u8] = if b.1 == MODE_TREE { b"/" } else { b"" };
    a.0.iter().chain(a_tail).cmp(b.0.iter().chain(b_tail))
}

/// Serializes one tree and hands it to `store`.
fn write_tree(
    store: &mut dyn FnMut(&[u8]) -> Result<Oid, Error>,
    children: &mut [Child],
) -> Result<Oid, Error> {
    children.sort_by(git_order);
    let mut buffer = Vec::with_capacity(children.len() * 48);
    for (name, mode, oid) in children.iter() {
        buffer.extend_from_slice(format!("{mode:o}").as_bytes());
        buffer.push(b' ');
        buffer.extend_from_slice(name);
        buffer.push(0);
        buffer.extend_from_slice(oid.as_bytes());
    }
    store(&buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_puts_trees_after_dotted_files() {
        let oid = Oid::ZERO_SHA1;
        let mut children: Vec<Child> = vec![
            (b"a".to_vec(), MODE_TREE, oid),
            (b"a.b".to_vec(), 0o100644, oid),
            (b"a-".to_vec(), 0o100644, oid),
            (b"a0".to_vec(), 0o100644, oid),
        ];
        children.sort_by(git_order);
        let names: Vec<&[u8]> = children.iter().map(|child| &child.0[..]).collect();
        assert_eq!(names, vec![&b"a-"[..], b"a.b", b"a", b"a0"]);
    }
}
