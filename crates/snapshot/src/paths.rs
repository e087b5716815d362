//! Workspace-relative paths as bytes.
//!
//! Inside the crate a path is a `Vec<u8>`: the workspace-relative path with
//! `/` between components, no leading or trailing `/`, and the empty string
//! for the workspace root. Bytes, not `str`, so that file names that are not
//! UTF-8 survive (Unix only). Sorting these byte strings gives git's tree
//! order, because a name never contains `/`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// The shadow store's name for a workspace: the first 16 hex digits of the
/// SHA-256 of its canonical path.
pub(crate) fn workspace_id(canonical_workspace: &Path) -> String {
    let digest = Sha256::digest(canonical_workspace.as_os_str().as_bytes());
    hex::encode(&digest[..8])
}

/// `<exo_root>/snapshots/<id>.git`.
pub(crate) fn shadow_dir(canonical_exo_root: &Path, canonical_workspace: &Path) -> PathBuf {
    canonical_exo_root
        .join("snapshots")
        .join(format!("{}.git", workspace_id(canonical_workspace)))
}

/// A relative path's bytes as a `PathBuf`.
pub(crate) fn to_path(rel: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(rel))
}

/// `root/rel` as an absolute path.
pub(crate) fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// The relative path of `path` under `root`, if it is `root` or below it.
pub(crate) fn relative(root: &Path, path: &Path) -> Option<Vec<u8>> {
    let rest = path.strip_prefix(root).ok()?;
    normalize(rest)
}

/// A relative `Path` as bytes; `None` if it has `..`, a root or a prefix.
pub(crate) fn normalize(path: &Path) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name.as_bytes());
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// An absolute form of `path` with symlinks resolved as far as it exists:
/// the longest existing prefix canonicalised, the rest appended as written
/// (`.` dropped, `..` removing the component before it).
pub(crate) fn resolve_what_exists(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut lexical = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other.as_os_str()),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest: Vec<&OsStr> = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(existing) {
            let mut out = canonical;
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

/// Joins a directory's relative path and a name.
pub(crate) fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !dir.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// The parent directory of a relative path (`""` for top-level names).
pub(crate) fn parent(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&byte| byte == b'/') {
        Some(index) => &rel[..index],
        None => &[],
    }
}

/// The last component of a relative path.
pub(crate) fn file_name(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&byte| byte == b'/') {
        Some(index) => &rel[index + 1..],
        None => rel,
    }
}

/// Every proper ancestor directory of `rel`, nearest last: `""`, `a`, `a/b`
/// for `a/b/c`.
pub(crate) fn ancestors(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::once(&rel[..0]).chain(
        rel.iter()
            .enumerate()
            .filter(|&(_, &byte)| byte == b'/')
            .map(move |(index, _)| &rel[..index]),
    )
}

/// Whether `path` is `base` or lies below it (`base` = `""` contains all).
pub(crate) fn is_within(path: &[u8], base: &[u8]) -> bool {
    base.is_empty()
        || (path.starts_with(base) && (path.len() == base.len() || path[base.len()] == b'/'))
}

/// The smallest key after every path strictly below `dir` (`dir` + `0`, as
/// `0` follows `/`); the range `dir/..dir0` holds exactly `dir`'s subtree.
pub(crate) fn subtree_end(dir: &[u8]) -> Vec<u8> {
    let mut end = dir.to_vec();
    end.push(b'0');
    end
}

/// The start of `dir`'s subtree in key order (`dir/`, or `""` for the root).
pub(crate) fn subtree_start(dir: &[u8]) -> Vec<u8> {
    let mut start = dir.to_vec();
    if !dir.is_empty() {
        start.push(b'/');
    }
    start
}

/// Whether a component is one the crate never reads or writes: `.git`.
pub(crate) fn is_git_dir_name(name: &[u8]) -> bool {
    name == b".git"
}

/// Whether a relative path is safe to write below a workspace: every
/// component is a plain name, none is `.git`, `.` or `..`.
pub(crate) fn is_safe_to_write(rel: &[u8]) -> bool {
    !rel.is_empty()
        && rel.split(|&byte| byte == b'/').all(|name| {
            !name.is_empty()
                && name != b"."
                && name != b".."
                && !is_git_dir_name(name)
                && !name.contains(&0)
        })
}

/// Display form for messages: lossy UTF-8.
pub(crate) fn display(rel: &[u8]) -> String {
    String::from_utf8_lossy(rel).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_of_nested_path() {
        let got: Vec<&[u8]> = ancestors(b"a/b/c").collect();
        assert_eq!(got, vec![&b""[..], b"a", b"a/b"]);
        let got: Vec<&[u8]> = ancestors(b"a").collect();
        assert_eq!(got, vec![&b""[..]]);
    }

    #[test]
    fn within() {
        assert!(is_within(b"a/b", b"a"));
        assert!(is_within(b"a", b"a"));
        assert!(!is_within(b"ab", b"a"));
        assert!(is_within(b"ab", b""));
    }

    #[test]
    fn safety() {
        assert!(is_safe_to_write(b"a/b"));
        assert!(!is_safe_to_write(b"a/.git/b"));
        assert!(!is_safe_to_write(b"../b"));
        assert!(!is_safe_to_write(b""));
        assert!(!is_safe_to_write(b"a//b"));
    }

    #[test]
    fn normalize_rejects_parent() {
        assert_eq!(normalize(Path::new("./a/b")), Some(b"a/b".to_vec()));
        assert_eq!(normalize(Path::new("a/../b")), None);
    }
}
