//! The stat cache: what each captured file looked like when it was last
//! hashed, so an unchanged file is never read again.
//!
//! # Format of `<shadow>/exo-index`
//!
//! Little-endian throughout:
//!
//! ```text
//! magic      8 bytes  "EXOIDX\0\x02"
//! count      u64
//! count × entry:
//!   path_len u32, path bytes (workspace-relative, '/'-separated, any bytes but '/' and NUL in names)
//!   st_mode  u32      file type and permission bits
//!   size     u64
//!   mtime    i64      nanoseconds since the epoch
//!   ctime    i64      nanoseconds since the epoch
//!   ino      u64
//!   flags    u8       bit 0: racy (re-hash next time whatever the stat says)
//!   oid      20 bytes the blob's id
//! checksum   32 bytes SHA-256 of everything before it
//! ```
//!
//! Entries are sorted by path bytes. A file that is missing, truncated, has
//! another magic, or fails its checksum is ignored: the cost is a full
//! re-hash, never a wrong answer.
//!
//! **Invariant:** the index is only ever replaced (atomically, by rename)
//! after every object it names is durable, so a cached id always names an
//! object that exists. It may lag behind the workspace (it is rewritten
//! only after enough entries changed, and when the `Shadow` is dropped): a
//! stale entry's stat no longer matches its file, which is then re-hashed.
//!
//! The last snapshot's id lives apart, in `<shadow>/exo-last` (40 hex
//! digits and a newline, or empty), replaced by rename on every snapshot
//! and restore.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use git2::Oid;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext};

/// The file name of the stat cache inside the shadow directory.
pub(crate) const INDEX_FILE: &str = "exo-index";

const MAGIC: &[u8; 8] = b"EXOIDX\0\x02";

/// The file holding the last snapshot's id.
pub(crate) const LAST_FILE: &str = "exo-last";

/// Git's mode for a symlink blob.
pub(crate) const MODE_SYMLINK: u32 = 0o120000;
/// Git's mode for an executable file.
pub(crate) const MODE_EXEC: u32 = 0o100755;
/// Git's mode for a regular file.
pub(crate) const MODE_FILE: u32 = 0o100644;
/// Git's mode for a tree.
pub(crate) const MODE_TREE: u32 = 0o040000;

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

/// The parts of `lstat` that tell whether a file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    /// `st_mode`: file type and permission bits.
    pub(crate) mode: u32,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
    pub(crate) ino: u64,
}

impl Stat {
    /// From `std`'s metadata (taken with `symlink_metadata` or `fstat`).
    pub(crate) fn from_metadata(metadata: &fs::Metadata) -> Stat {
        Stat {
            mode: metadata.mode(),
            size: metadata.size(),
            mtime_ns: nanos(metadata.mtime(), metadata.mtime_nsec()),
            ctime_ns: nanos(metadata.ctime(), metadata.ctime_nsec()),
            ino: metadata.ino(),
        }
    }

    /// From `rustix`'s stat.
    pub(crate) fn from_rustix(stat: &rustix::fs::Stat) -> Stat {
        Stat {
            mode: stat.st_mode,
            size: stat.st_size as u64,
            mtime_ns: nanos(stat.st_mtime, stat.st_mtime_nsec as i64),
            ctime_ns: nanos(stat.st_ctime, stat.st_ctime_nsec as i64),
            ino: stat.st_ino,
        }
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    pub(crate) fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// The git mode of a file with this stat: `120000` for a symlink,
    /// `100755` when the owner may execute it (as git decides), else `100644`.
    pub(crate) fn git_mode(&self) -> u32 {
        if self.is_symlink() {
            MODE_SYMLINK
        } else if self.mode & 0o100 != 0 {
            MODE_EXEC
        } else {
            MODE_FILE
        }
    }

    /// The later of mtime and ctime: ctime also moves on chmod, rename and
    /// `touch -d`, which mtime alone would miss.
    pub(crate) fn newest_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

fn nanos(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

/// One captured file: its stat when hashed and its blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stat: Stat,
    /// Re-hash next time even if the stat matches: the file was modified
    /// too close to the scan that hashed it (racy clean), or exo wrote it.
    pub(crate) racy: bool,
    pub(crate) oid: Oid,
}

impl Entry {
    /// The git mode this entry has in a tree.
    pub(crate) fn git_mode(&self) -> u32 {
        self.stat.git_mode()
    }

    /// Whether a file with stat `now` may reuse this entry's blob unread.
    pub(crate) fn still_valid(&self, now: &Stat) -> bool {
        !self.racy && self.stat == *now
    }
}

/// Reads `exo-last`; `None` when it is missing, empty or damaged.
pub(crate) fn load_last(shadow_dir: &Path) -> Option<Oid> {
    let text = fs::read_to_string(shadow_dir.join(LAST_FILE)).ok()?;
    let text = text.trim();
    if text.len() != 40 {
        return None;
    }
    Oid::from_str(text).ok()
}

/// The content of `exo-last`.
pub(crate) fn encode_last(last: Option<Oid>) -> Vec<u8> {
    match last {
        Some(oid) => format!("{oid}\n").into_bytes(),
        None => Vec::new(),
    }
}

/// Reads the index; `None` when it is missing or damaged in any way.
pub(crate) fn load(shadow_dir: &Path) -> Option<BTreeMap<Vec<u8>, Entry>> {
    let bytes = fs::read(shadow_dir.join(INDEX_FILE)).ok()?;
    let result = parse(&bytes);
    if result.is_none() {
        tracing::warn!(
            path = %shadow_dir.join(INDEX_FILE).display(),
            "ignoring a damaged snapshot stat cache; the next snapshot re-hashes everything"
        );
    }
    result
}

fn parse(bytes: &[u8]) -> Option<BTreeMap<Vec<u8>, Entry>> {
    if bytes.len() < MAGIC.len() + 8 + 32 {
        return None;
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != checksum {
        return None;
    }
    let mut reader = Reader { bytes: body };
    if reader.take(8)? != MAGIC {
        return None;
    }
    let count = reader.u64()?;
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        let path_len = reader.u32()? as usize;
        let path = reader.take(path_len)?.to_vec();
        let stat = Stat {
            mode: reader.u32()?,
            size: reader.u64()?,
            mtime_ns: reader.u64()? as i64,
            ctime_ns: reader.u64()? as i64,
            ino: reader.u64()?,
        };
        let flags = reader.take(1)?[0];
        let oid = Oid::from_bytes(reader.take(20)?).ok()?;
        if path.is_empty() || !crate::paths::is_safe_to_write(&path) {
            return None;
        }
        entries.insert(
            path,
            Entry {
                stat,
                racy: flags & 1 != 0,
                oid,
            },
        );
    }
    if !reader.bytes.is_empty() {
        return None;
    }
    Some(entries)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Serializes the index.
pub(crate) fn encode(entries: &BTreeMap<Vec<u8>, Entry>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 100);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, entry) in entries {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&entry.stat.mode.to_le_bytes());
        out.extend_from_slice(&entry.stat.size.to_le_bytes());
        out.extend_from_slice(&entry.stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&entry.stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&entry.stat.ino.to_le_bytes());
        out.push(u8::from(entry.racy));
        out.extend_from_slice(entry.oid.as_bytes());
    }
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    out
}

/// A new version of a small metadata file, written but not yet in place.
pub(crate) struct Staged {
    pub(crate) temp: std::path::PathBuf,
    pub(crate) target: std::path::PathBuf,
    pub(crate) file: File,
}

/// Writes `bytes` to a temporary file next to `target`; the caller syncs it
/// (or not) and then calls [`Staged::commit`].
pub(crate) fn stage(target: &Path, bytes: &[u8]) -> Result<Staged, Error> {
    let mut temp = target.as_os_str().to_owned();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = std::path::PathBuf::from(temp);
    let mut file = File::create(&temp).at(&temp)?;
    file.write_all(bytes).at(&temp)?;
    Ok(Staged {
        temp,
        target: target.to_path_buf(),
        file,
    })
}

impl Staged {
    /// Renames the staged file over its target.
    pub(crate) fn commit(self) -> Result<(), Error> {
        drop(self.file);
        fs::rename(&self.temp, &self.target).at(&self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<Vec<u8>, Entry> {
        let mut entries = BTreeMap::new();
        entries.insert(
            b"a/\xffb".to_vec(),
            Entry {
                stat: Stat {
                    mode: 0o100755,
                    size: 3,
                    mtime_ns: 1_700_000_000_123_456_789,
                    ctime_ns: -5,
                    ino: 42,
                },
                racy: true,
                oid: Oid::hash_object(git2::ObjectType::Blob, b"abc").unwrap(),
            },
        );
        entries
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample());
        assert_eq!(parse(&bytes).unwrap(), sample());
    }

    #[test]
    fn damage_is_detected() {
        let mut bytes = encode(&sample());
        for index in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            bytes[index] ^= 1;
            assert!(parse(&bytes).is_none());
            bytes[index] ^= 1;
        }
        assert!(parse(&bytes[..bytes.len() - 1]).is_none());
        assert!(parse(&bytes).is_some());
    }
}
