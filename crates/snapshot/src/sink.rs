//! Where new objects go: loose files for a few, a pack for many.

use git2::{ObjectType, Odb, OdbLookupFlags, Oid};

use crate::error::Error;
use crate::pack::{self, PackBuffer};

/// Objects written by one thread during one operation.
#[derive(Default)]
pub(crate) struct Written {
    /// Loose objects written (to be fsynced before anyone relies on them).
    pub(crate) loose: Vec<Oid>,
    /// Objects waiting to be written as a pack (pack mode only).
    pub(crate) pack: PackBuffer,
}

/// Stores an object unless the store (or this batch) has it already;
/// returns its id. In pack mode the object is compressed into `written.pack`
/// (which is written out by itself when it grows past its budget); else it
/// is written loose through libgit2.
pub(crate) fn put(
    odb: &Odb<'_>,
    pack_dir: &std::path::Path,
    pack_mode: bool,
    written: &mut Written,
    kind: ObjectType,
    data: &[u8],
) -> Result<Oid, Error> {
    let oid = Oid::hash_object(kind, data)?;
    // No refresh: a miss must not rescan the pack directory each time.
    if written.pack.contains(oid) || odb.exists_ext(oid, OdbLookupFlags::NO_REFRESH) {
        return Ok(oid);
    }
    if pack_mode {
        written.pack.push(pack::pack_object(oid, kind, data)?);
        if written.pack.is_full() {
            written.pack.write(pack_dir)?;
            odb.refresh()?;
        }
    } else {
        odb.write(kind, data)?;
        written.loose.push(oid);
    }
    Ok(oid)
}
