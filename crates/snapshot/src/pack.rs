//! Writing many new objects as one pack file rather than one file each.
//!
//! A loose object costs a file creation, a link and an unlink in the object
//! directory (and a directory creation for a new fan-out), which dominates
//! the cost of a first snapshot on most file systems; thousands of them also
//! make durability expensive. When an operation writes many objects
//! ([`PACK_MIN_OBJECTS`] or more), they are compressed in memory (in
//! parallel, by the hashing threads) and written as one pack plus its index,
//! in git's formats (pack version 2 without deltas, index version 2), so
//! libgit2 and git read them like any other pack.
//!
//! Durability: both files are written under temporary names and fsynced,
//! then renamed into place (the pack first: git and libgit2 only look at a
//! pack through its index), then the pack directory is fsynced. A crash
//! leaves at worst an unreferenced temporary file, which gc removes.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use git2::{ObjectType, Oid};
use sha1::{Digest, Sha1};

use crate::durable;
use crate::error::{Error, IoContext};

/// Operations writing at least this many objects write a pack.
pub(crate) const PACK_MIN_OBJECTS: usize = 32;

/// A buffer holding more than this many compressed bytes is written out as
/// a pack of its own, bounding memory for huge workspaces.
pub(crate) const PACK_MAX_BUFFER: usize = 64 << 20;

/// One object, ready to go into a pack.
pub(crate) struct PackedObject {
    oid: Oid,
    /// The pack entry: type-and-size header, then the zlib stream.
    entry: Vec<u8>,
}

/// Compresses an object into a pack entry.
pub(crate) fn pack_object(oid: Oid, kind: ObjectType, data: &[u8]) -> Result<PackedObject, Error> {
    let code: u8 = match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Blob => 3,
        ObjectType::Tag => 4,
        _ => {
            return Err(Error::Invalid(format!(
                "cannot pack an object of kind {kind}"
            )))
        }
    };
    let mut entry = Vec::with_capacity(data.len() / 2 + 32);
    let mut size = data.len() as u64;
    let mut byte = (code << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        entry.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    entry.push(byte);
    let mut encoder = ZlibEncoder::new(entry, Compression::fast());
    encoder.write_all(data).at("zlib")?;
    let entry = encoder.finish().at("zlib")?;
    Ok(PackedObject { oid, entry })
}

/// New objects waiting to be written as a pack.
#[derive(Default)]
pub(crate) struct PackBuffer {
    objects: Vec<PackedObject>,
    seen: HashSet<Oid>,
    bytes: usize,
}

impl PackBuffer {
    pub(crate) fn contains(&self, oid: Oid) -> bool {
        self.seen.contains(&oid)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the buffer should be written out before it grows further.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= PACK_MAX_BUFFER
    }

    /// Adds an object (a duplicate is dropped).
    pub(crate) fn push(&mut self, object: PackedObject) {
        if self.seen.insert(object.oid) {
            self.bytes += object.entry.len();
            self.objects.push(object);
        }
    }

    /// Moves every object of `other` into this buffer.
    pub(crate) fn absorb(&mut self, other: PackBuffer) {
        for object in other.objects {
            self.push(object);
        }
    }

    /// Writes the buffered objects as `pack-<checksum>.{pack,idx}` in
    /// `pack_dir`, durably, and empties the buffer. Nothing to write, no
    /// files.
    pub(crate) fn write(&mut self, pack_dir: &Path) -> Result<(), Error> {
        if self.objects.is_empty() {
            return Ok(());
        }
        let objects = std::mem::take(&mut self.objects);
        self.seen.clear();
        self.bytes = 0;
        std::fs::create_dir_all(pack_dir).at(pack_dir)?;
        let unique = format!("{}-{}", std::process::id(), next_serial());
        let pack_temp = pack_dir.join(format!("tmp_pack_exo_{unique}"));
        let index_temp = pack_dir.join(format!("tmp_idx_exo_{unique}"));

        // The pack.
        let mut hasher = Sha1::new();
        let mut placed: Vec<(Oid, u32, u64)> = Vec::with_capacity(objects.len());
        let file = File::create(&pack_temp).at(&pack_temp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(&(objects.len() as u32).to_be_bytes());
        let mut offset = header.len() as u64;
        hasher.update(&header);
        out.write_all(&header).at(&pack_temp)?;
        for object in &objects {
            let crc = crc32(&object.entry);
            placed.push((object.oid, crc, offset));
            hasher.update(&object.entry);
            out.write_all(&object.entry).at(&pack_temp)?;
            offset += object.entry.len() as u64;
        }
        drop(objects);
        let checksum: [u8; 20] = hasher.finalize().into();
        out.write_all(&checksum).at(&pack_temp)?;
        let pack_file = out
            .into_inner()
            .map_err(|error| Error::io(&pack_temp, error.into_error()))?;

        // The index.
        placed.sort_by_key(|placed| placed.0);
        let index = encode_index(&placed, &checksum);
        let mut index_file = File::create(&index_temp).at(&index_temp)?;
        index_file.write_all(&index).at(&index_temp)?;

        durable::fsync_parallel(&[], &[&pack_file, &index_file])?;
        drop(pack_file);
        drop(index_file);
        let name = format!("pack-{}", hex::encode(checksum));
        let pack_path = pack_dir.join(format!("{name}.pack"));
        let index_path = pack_dir.join(format!("{name}.idx"));
        std::fs::rename(&pack_temp, &pack_path).at(&pack_path)?;
        std::fs::rename(&index_temp, &index_path).at(&index_path)?;
        durable::fsync_path(pack_dir)
    }
}

fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// A version 2 pack index for `placed` (sorted by id): (id, CRC-32 of the
/// entry, offset in the pack).
fn encode_index(placed: &[(Oid, u32, u64)], pack_checksum: &[u8; 20]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 1024 + placed.len() * 28 + 40);
    out.extend_from_slice(&[0xff, b't', b'O', b'c']);
    out.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (oid, _, _) in placed {
        fanout[usize::from(oid.as_bytes()[0])] += 1;
    }
    let mut running = 0;
    for count in fanout {
        running += count;
        out.extend_from_slice(&running.to_be_bytes());
    }
    for (oid, _, _) in placed {
        out.extend_from_slice(oid.as_bytes());
    }
    for (_, crc, _) in placed {
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large: Vec<u64> = Vec::new();
    for (_, _, offset) in placed {
        if *offset < 0x8000_0000 {
            out.extend_from_slice(&(*offset as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&(0x8000_0000 | large.len() as u32).to_be_bytes());
            large.push(*offset);
        }
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum);
    let index_checksum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&index_checksum);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libgit2_reads_what_we_pack() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let mut buffer = PackBuffer::default();
        let mut ids = Vec::new();
        for index in 0..100u32 {
            let data = format!("object {index}\n").repeat(index as usize * 37);
            let oid = Oid::hash_object(ObjectType::Blob, data.as_bytes()).unwrap();
            buffer.push(pack_object(oid, ObjectType::Blob, data.as_bytes()).unwrap());
            ids.push((oid, data));
        }
        // A duplicate is dropped.
        let (oid, data) = &ids[3];
        buffer.push(pack_object(*oid, ObjectType::Blob, data.as_bytes()).unwrap());
        assert_eq!(buffer.len(), 100);
        buffer.write(&dir.path().join("objects/pack")).unwrap();
        assert!(buffer.is_empty());
        let odb = repo.odb().unwrap();
        odb.refresh().unwrap();
        for (oid, data) in &ids {
            let object = odb.read(*oid).unwrap();
            assert_eq!(object.kind(), ObjectType::Blob);
            assert_eq!(object.data(), data.as_bytes());
        }
        let packs: Vec<_> = std::fs::read_dir(dir.path().join("objects/pack"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(packs.len(), 2, "{packs:?}");
    }
}
