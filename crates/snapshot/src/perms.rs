//! Permission bits beyond the two file modes git stores.
//!
//! A git tree records a file as `100644` or `100755`, nothing finer, so a
//! private key (`0600`) would come back `0644` from a restore. A snapshot
//! therefore carries a **permissions note**: a blob listing every captured
//! regular file whose permission bits lack one of git's defaults (`0644`
//! for `100644`, `0755` for `100755`), with its exact bits.
//!
//! The note is an entry of the snapshot's root tree, a blob named `.git`
//! (mode `100644`). No workspace path can take that name, because every
//! entry named `.git` is left out of a capture at every depth, so it never
//! collides; and because it is part of the tree, it is reachable from the
//! commit like any file: `gc`, packs and any git tool keep it with the
//! snapshot, and two snapshots have the same tree only if their permissions
//! match too. A workspace whose files all have the default bits (or more)
//! gets no note, and its tree is exactly the tree git would write.
//!
//! # Format
//!
//! ```text
//! exo permissions 1\n
//! then, per file, sorted by path bytes:
//!   4 octal digits (the bits & 0777), one space, the path bytes, NUL
//! ```
//!
//! Paths are workspace-relative with `/` separators (any bytes but NUL).
//!
//! # Restoring
//!
//! A file the note lists gets exactly its recorded bits; any other file
//! gets git's default bits when it is created. A file rewritten in place
//! keeps its own bits when they include the default (and the target's
//! executable bit), else it gets the default or the recorded bits. So a
//! restored file is never more permissive than when it was captured.

use std::collections::BTreeMap;

use crate::index::{Entry, MODE_EXEC};

/// The root tree entry holding the note.
pub(crate) const NOTE_NAME: &[u8] = b".git";

const MAGIC: &[u8] = b"exo permissions 1\n";

/// Recorded permission bits by path.
pub(crate) type Perms = BTreeMap<Vec<u8>, u32>;

/// git's default permission bits for a file of git mode `git_mode`.
pub(crate) fn default_bits(git_mode: u32) -> u32 {
    if git_mode == MODE_EXEC {
        0o755
    } else {
        0o644
    }
}

/// The bits to record for a regular file with `st_mode` `mode` (and git
/// mode `git_mode`): `None` when it has every default bit.
pub(crate) fn to_record(mode: u32, git_mode: u32) -> Option<u32> {
    let bits = mode & 0o777;
    let default = default_bits(git_mode);
    (bits & default != default).then_some(bits)
}

/// The note for `entries` (empty when no file needs one).
pub(crate) fn encode(entries: &BTreeMap<Vec<u8>, Entry>) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, entry) in entries {
        if !entry.stat.is_file() {
            continue;
        }
        if let Some(bits) = to_record(entry.stat.mode, entry.git_mode()) {
            if out.is_empty() {
                out.extend_from_slice(MAGIC);
            }
            out.extend_from_slice(format!("{bits:04o} ").as_bytes());
            out.extend_from_slice(path);
            out.push(0);
        }
    }
    out
}

/// Reads a note; `None` if it is not one.
pub(crate) fn parse(bytes: &[u8]) -> Option<Perms> {
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut perms = Perms::new();
    while !rest.is_empty() {
        let end = rest.iter().position(|&byte| byte == 0)?;
        let (line, tail) = (&rest[..end], &rest[end + 1..]);
        rest = tail;
        if line.len() < 6 || line[4] != b' ' {
            return None;
        }
        let bits = std::str::from_utf8(&line[..4]).ok()?;
        let bits = u32::from_str_radix(bits, 8).ok()?;
        if bits > 0o777 {
            return None;
        }
        perms.insert(line[5..].to_vec(), bits);
    }
    Some(perms)
}

/// The bits a restore gives a file it creates.
pub(crate) fn for_new_file(git_mode: u32, recorded: Option<u32>) -> u32 {
    recorded.unwrap_or_else(|| default_bits(git_mode))
}

/// The bits a restore gives a file it rewrites in place, whose bits are now
/// `current`: the recorded bits if any; else its own bits, the executable
/// bits dropped for a non-executable target, when they include the
/// default; else the default.
pub(crate) fn for_rewrite(current: u32, git_mode: u32, recorded: Option<u32>) -> u32 {
    if let Some(bits) = recorded {
        return bits;
    }
    let default = default_bits(git_mode);
    let own = if git_mode == MODE_EXEC {
        current & 0o777
    } else {
        current & 0o666
    };
    if own & default == default {
        own
    } else {
        default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Stat, MODE_FILE};

    fn entry(mode: u32) -> Entry {
        Entry {
            stat: Stat {
                mode,
                size: 0,
                mtime_ns: 0,
                ctime_ns: 0,
                ino: 0,
            },
            racy: false,
            oid: git2::Oid::ZERO_SHA1,
        }
    }

    #[test]
    fn round_trip_records_only_narrower_files() {
        let mut entries = BTreeMap::new();
        entries.insert(b"a/key".to_vec(), entry(0o100600));
        entries.insert(b"plain".to_vec(), entry(0o100644));
        entries.insert(b"wide".to_vec(), entry(0o100666));
        entries.insert(b"run".to_vec(), entry(0o100700));
        entries.insert(b"x\xff y".to_vec(), entry(0o100640));
        entries.insert(b"link".to_vec(), entry(0o120777));
        let note = encode(&entries);
        let parsed = parse(&note).unwrap();
        assert_eq!(
            parsed.into_iter().collect::<Vec<_>>(),
            vec![
                (b"a/key".to_vec(), 0o600),
                (b"run".to_vec(), 0o700),
                (b"x\xff y".to_vec(), 0o640)
            ]
        );
        assert!(encode(&BTreeMap::from([(b"p".to_vec(), entry(0o100664))])).is_empty());
        assert!(parse(b"something else").is_none());
        assert!(parse(b"exo permissions 1\n0644 a").is_none());
    }

    #[test]
    fn restored_bits_are_never_wider_than_captured() {
        assert_eq!(for_new_file(MODE_FILE, Some(0o600)), 0o600);
        assert_eq!(for_new_file(MODE_EXEC, None), 0o755);
        assert_eq!(for_rewrite(0o664, MODE_FILE, None), 0o664);
        assert_eq!(for_rewrite(0o755, MODE_FILE, None), 0o644);
        assert_eq!(for_rewrite(0o775, MODE_FILE, None), 0o664);
        assert_eq!(for_rewrite(0o644, MODE_EXEC, None), 0o755);
        assert_eq!(for_rewrite(0o600, MODE_FILE, None), 0o644);
        assert_eq!(for_rewrite(0o666, MODE_FILE, Some(0o600)), 0o600);
    }
}
