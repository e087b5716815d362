//! Writing files into a workspace without ever following a symlink, and
//! without destroying what changed since a restore planned its writes.
//!
//! Every operation starts from a descriptor of the workspace root and walks
//! down one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`, so
//! a directory replaced by a symlink (to anywhere) is never written through:
//! the operation reports the path as blocked instead.
//!
//! **Guard.** A restore tells each operation what it expects at the path
//! (the stat and blob its scan saw, or nothing). Right before replacing or
//! removing anything, on the already-opened parent directory, the operation
//! checks that what is there is still that (same `lstat`; when the stat
//! differs or cannot vouch for the content because it was racy, same
//! type, permission bits and content); if not, it leaves the path as it is
//! and says how it drifted. The window between check and write is kept to
//! a few system calls, and is closed entirely against writers that replace
//! files by rename (as editors do):
//!
//! - a regular file with a single link is rewritten in place, as git's
//!   checkout does (a concurrent reader may see it half written): it is
//!   opened, and the *opened* file's `fstat` is checked, so a file renamed
//!   over the path before the open is seen, and one renamed over it after
//!   the open is not touched;
//! - anything else (a new file, a symlink, a file where a symlink was, a
//!   file with other hard links, which must not change under their other
//!   names) is written to a temporary name in its directory and put in
//!   place with `renameat2`: `RENAME_NOREPLACE` where nothing is expected
//!   (so a file created meanwhile is never replaced), `RENAME_EXCHANGE`
//!   where something is (the old one is checked after the swap, and swapped
//!   back if it is not what was expected);
//! - a removal checks the path, renames it to a temporary name, checks that
//!   what it moved is that same file, and only then unlinks it (else it is
//!   renamed back, never over something new).
//!
//! A writer that rewrites a file in place (truncate and write the same
//! inode) between the check and the write can still lose that write: that
//! window is a few microseconds.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid as GitOid};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, IoContext};
use crate::index::{Entry, Stat, MODE_SYMLINK};
use crate::paths;
use crate::perms;

/// The prefix of the temporary names restore writes through.
pub(crate) const TEMP_PREFIX: &str = ".exo-tmp-";

/// What a restore planned on finding at a path: the stat and blob its scan
/// saw there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected {
    pub(crate) stat: Stat,
    pub(crate) oid: GitOid,
    /// The stat was taken too close to a change to vouch for the content:
    /// compare the content too.
    pub(crate) racy: bool,
}

impl From<&Entry> for Expected {
    fn from(entry: &Entry) -> Expected {
        Expected {
            stat: entry.stat,
            oid: entry.oid,
            racy: entry.racy,
        }
    }
}

/// How a path differs from what was expected there.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Drift {
    /// Something is there where nothing was expected (its `lstat`).
    Appeared(Stat),
    /// Something else is there.
    Modified,
    /// Nothing is there any more.
    Vanished,
}

/// What happened to one path.
pub(crate) enum Outcome {
    /// Written; the stat of what is now there.
    Written(Stat),
    /// Removed, or already gone.
    Removed,
    /// Left alone, and why: something uncaptured is in the way.
    Blocked(String),
    /// Left alone: it is no longer what was expected.
    Changed(Drift),
    /// It was no longer what was expected, and could not be put back
    /// because something new took its name: what was there is kept under
    /// this temporary name (workspace-relative).
    Stranded(Vec<u8>),
}

/// Whether a stat matches what was expected without reading the content.
enum Check {
    Same,
    Different,
    /// Same type, bits and size, but the stat cannot vouch for the content.
    CompareContent,
}

fn check(now: &Stat, expected: &Expected) -> Check {
    if now.mode != expected.stat.mode || now.size != expected.stat.size {
        Check::Different
    } else if *now == expected.stat && !expected.racy {
        Check::Same
    } else {
        Check::CompareContent
    }
}

/// The result of trying to rewrite a file in place.
enum InPlace {
    Done(Stat),
    Changed(Drift),
    /// Not a single-link regular file that can be opened for writing:
    /// replace it by rename instead (which checks it again).
    Replace,
}

/// Writes below one root directory.
pub(crate) struct Writer {
    root: PathBuf,
    root_fd: OwnedFd,
    counter: u64,
    /// The directory last opened below the root (restores write files in
    /// path order, so consecutive files usually share it).
    cached: Option<(Vec<u8>, OwnedFd)>,
    /// Directories this writer created, in the order created.
    created_dirs: Vec<Vec<u8>>,
}

impl Writer {
    /// Opens the root (which must be a directory).
    pub(crate) fn open(root: &Path) -> Result<Writer, Error> {
        let root_fd = rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .at(root)?;
        Ok(Writer {
            root: root.to_path_buf(),
            root_fd,
            counter: 0,
            cached: None,
            created_dirs: Vec::new(),
        })
    }

    /// The directories this writer created (relative), oldest first.
    pub(crate) fn created_dirs(&self) -> &[Vec<u8>] {
        &self.created_dirs
    }

    fn error(&self, rel: &[u8], errno: Errno) -> Error {
        Error::io(paths::join(&self.root, rel), errno.into())
    }

    /// The directory holding `rel`, created when `create`; `Err(reason)`
    /// when something that is not a directory (or a symlink) is in the way.
    fn parent(&mut self, rel: &[u8], create: bool) -> Result<Result<OwnedFd, String>, Error> {
        let dir_rel = paths::parent(rel);
        if dir_rel.is_empty() {
            return Ok(Ok(self.root_fd.try_clone().at(&self.root)?));
        }
        if let Some((cached_rel, fd)) = &self.cached {
            // Reused only while the path still names that very directory:
            // one renamed away during a restore (and maybe replaced) must
            // not be written through.
            if cached_rel == dir_rel && still_at(&self.root_fd, dir_rel, fd) {
                return Ok(Ok(fd.try_clone().at(&self.root)?));
            }
        }
        let mut current = self.root_fd.try_clone().at(&self.root)?;
        let mut walked = 0;
        for name in dir_rel.split(|&byte| byte == b'/') {
            walked += name.len() + usize::from(walked > 0);
            let so_far = &dir_rel[..walked];
            let name = OsStr::from_bytes(name);
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let opened = match rustix::fs::openat(&current, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&current, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) => self.created_dirs.push(so_far.to_vec()),
                        Err(Errno::EXIST) => {}
                        Err(errno) => return Err(self.error(so_far, errno)),
                    }
                    match rustix::fs::openat(&current, name, flags, Mode::empty()) {
                        Ok(fd) => fd,
                        Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                            return Ok(Err(format!(
                                "{} is not a directory",
                                paths::display(so_far)
                            )))
                        }
                        Err(errno) => return Err(self.error(so_far, errno)),
                    }
                }
                Err(Errno::NOENT) => {
                    return Ok(Err(format!("{} does not exist", paths::display(so_far))))
                }
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    return Ok(Err(format!(
                        "{} is not a directory (an uncaptured file or symlink is in the way)",
                        paths::display(so_far)
                    )))
                }
                Err(errno) => return Err(self.error(so_far, errno)),
            };
            current = opened;
        }
        let result = current.try_clone().at(&self.root)?;
        self.cached = Some((dir_rel.to_vec(), current));
        Ok(Ok(result))
    }

    fn temp_name(&mut self) -> String {
        self.counter += 1;
        format!("{TEMP_PREFIX}{}-{}", std::process::id(), self.counter)
    }

    /// Writes a file (mode `100644`/`100755`, with the `recorded`
    /// permission bits if the snapshot has some, see [`crate::perms`]) or a
    /// symlink (`120000`, the content being its target) at `rel`, if what
    /// is there is still `expected` (`None`: nothing, or an empty
    /// directory). Parents are created as needed.
    pub(crate) fn write(
        &mut self,
        rel: &[u8],
        mode: u32,
        recorded: Option<u32>,
        content: &[u8],
        expected: Option<&Expected>,
    ) -> Result<Outcome, Error> {
        if !paths::is_safe_to_write(rel) {
            return Ok(Outcome::Blocked("not a plain workspace path".to_string()));
        }
        let parent = match self.parent(rel, true)? {
            Ok(parent) => parent,
            Err(reason) => return Ok(Outcome::Blocked(reason)),
        };
        let name = OsStr::from_bytes(paths::file_name(rel));
        if let Some(expected) = expected.filter(|expected| expected.stat.is_file()) {
            if mode != MODE_SYMLINK {
                match self
                    .overwrite_in_place(&parent, name, rel, mode, recorded, content, expected)?
                {
                    InPlace::Done(stat) => return Ok(Outcome::Written(stat)),
                    InPlace::Changed(drift) => return Ok(Outcome::Changed(drift)),
                    InPlace::Replace => {}
                }
            }
        }
        let temp = self.temp_name();
        let ours = self.create_temp(&parent, &temp, rel, mode, recorded, content)?;
        let placed = match expected {
            None => self.place_new(&parent, &temp, name, rel)?,
            Some(expected) => self.replace(&parent, &temp, name, rel, expected, ours)?,
        };
        if let Some(outcome) = placed {
            return Ok(outcome);
        }
        let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|errno| self.error(rel, errno))?;
        Ok(Outcome::Written(Stat::from_rustix(&stat)))
    }

    /// Writes the new file or symlink under the temporary name; returns its
    /// inode.
    fn create_temp(
        &self,
        parent: &OwnedFd,
        temp: &str,
        rel: &[u8],
        mode: u32,
        recorded: Option<u32>,
        content: &[u8],
    ) -> Result<u64, Error> {
        if mode == MODE_SYMLINK {
            rustix::fs::symlinkat(OsStr::from_bytes(content), parent, temp)
                .map_err(|errno| self.error(rel, errno))?;
            let stat = rustix::fs::statat(parent, temp, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|errno| self.error(rel, errno))?;
            return Ok(stat.st_ino);
        }
        let bits = perms::for_new_file(mode, recorded);
        let fd = rustix::fs::openat(
            parent,
            temp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(bits),
        )
        .map_err(|errno| self.error(rel, errno))?;
        let mut file = File::from(fd);
        let written = file
            .write_all(content)
            .map_err(|error| Error::io(paths::join(&self.root, rel), error))
            .and_then(|()| {
                // The umask may have narrowed the bits: the snapshot's are
                // what the file had, and never wider than the default.
                let stat = rustix::fs::fstat(&file).map_err(|errno| self.error(rel, errno))?;
                if stat.st_mode & 0o7777 != bits {
                    rustix::fs::fchmod(&file, Mode::from_raw_mode(bits))
                        .map_err(|errno| self.error(rel, errno))?;
                }
                Ok(stat.st_ino)
            });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
        }
        written
    }

    /// Renames `temp` to `name` where nothing is expected, never replacing
    /// anything but an empty directory. `None` when done.
    fn place_new(
        &self,
        parent: &OwnedFd,
        temp: &str,
        name: &OsStr,
        rel: &[u8],
    ) -> Result<Option<Outcome>, Error> {
        for _ in 0..3 {
            match rename_noreplace(parent, temp, name) {
                Ok(()) => return Ok(None),
                Err(Errno::EXIST) => {}
                Err(errno) => {
                    let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                    return Err(self.error(rel, errno));
                }
            }
            match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if Stat::from_rustix(&stat).is_dir() => {
                    // A directory is in the way: replace it only if empty.
                    if rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).is_err() {
                        let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                        return Ok(Some(Outcome::Blocked(
                            "a directory with uncaptured files is in the way".to_string(),
                        )));
                    }
                }
                Ok(stat) => {
                    let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                    return Ok(Some(Outcome::Changed(Drift::Appeared(Stat::from_rustix(
                        &stat,
                    )))));
                }
                // Gone again: try once more.
                Err(Errno::NOENT) => {}
                Err(errno) => {
                    let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                    return Err(self.error(rel, errno));
                }
            }
        }
        let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
        Ok(Some(Outcome::Changed(Drift::Modified)))
    }

    /// Swaps `temp` with `name` if what is at `name` is still `expected`.
    /// `None` when done.
    ///
    /// What is there is checked first; after the atomic swap, what came
    /// out must be that same file (a rename changes its ctime, so the
    /// identity is inode, type, bits, size and mtime), else it is swapped
    /// back.
    fn replace(
        &self,
        parent: &OwnedFd,
        temp: &str,
        name: &OsStr,
        rel: &[u8],
        expected: &Expected,
        ours: u64,
    ) -> Result<Option<Outcome>, Error> {
        let before = match verify_at(parent, name, expected)? {
            Ok(stat) => stat,
            Err(drift) => {
                let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                return Ok(Some(Outcome::Changed(drift)));
            }
        };
        match rustix::fs::renameat_with(parent, temp, parent, name, RenameFlags::EXCHANGE) {
            Ok(()) => {}
            Err(Errno::NOENT) => {
                let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                return Ok(Some(Outcome::Changed(Drift::Vanished)));
            }
            Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP) => {
                // No atomic exchange here: rename over what was checked.
                return match rustix::fs::renameat(parent, temp, parent, name) {
                    Ok(()) => Ok(None),
                    Err(errno) => {
                        let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                        Err(self.error(rel, errno))
                    }
                };
            }
            Err(errno) => {
                let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                return Err(self.error(rel, errno));
            }
        }
        // `temp` now names what was at `name`.
        let out = rustix::fs::statat(parent, temp, AtFlags::SYMLINK_NOFOLLOW)
            .map(|stat| Stat::from_rustix(&stat));
        if out.is_ok_and(|out| same_file(&out, &before)) {
            rustix::fs::unlinkat(parent, temp, AtFlags::empty())
                .map_err(|errno| self.error(rel, errno))?;
            return Ok(None);
        }
        // Swap back; then `temp` should be ours again.
        let kept = paths::child(paths::parent(rel), temp.as_bytes());
        if rustix::fs::renameat_with(parent, temp, parent, name, RenameFlags::EXCHANGE).is_err() {
            return Ok(Some(Outcome::Stranded(kept)));
        }
        match rustix::fs::statat(parent, temp, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if stat.st_ino == ours => {
                let _ = rustix::fs::unlinkat(parent, temp, AtFlags::empty());
                Ok(Some(Outcome::Changed(Drift::Modified)))
            }
            Ok(_) => Ok(Some(Outcome::Stranded(kept))),
            Err(_) => Ok(Some(Outcome::Changed(Drift::Modified))),
        }
    }

    /// Rewrites an existing regular file with a single link in place, as
    /// git's checkout does (cheaper than a new inode and a rename on most
    /// file systems), after checking the opened file is what was expected.
    /// Never opens anything but a regular file, and never follows a
    /// symlink.
    #[allow(clippy::too_many_arguments)]
    fn overwrite_in_place(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        rel: &[u8],
        mode: u32,
        recorded: Option<u32>,
        content: &[u8],
        expected: &Expected,
    ) -> Result<InPlace, Error> {
        let flags =
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(InPlace::Changed(Drift::Vanished)),
            // A symlink, a directory, a FIFO without a reader: not the file
            // that was expected.
            Err(Errno::LOOP) | Err(Errno::ISDIR) | Err(Errno::NXIO) => {
                return Ok(InPlace::Changed(Drift::Modified))
            }
            Err(_) => return Ok(InPlace::Replace),
        };
        let opened = rustix::fs::fstat(&fd).map_err(|errno| self.error(rel, errno))?;
        let stat = Stat::from_rustix(&opened);
        match check(&stat, expected) {
            Check::Same => {}
            Check::Different => return Ok(InPlace::Changed(Drift::Modified)),
            Check::CompareContent => {
                if !stat.is_file() || !same_content(&fd, expected)? {
                    return Ok(InPlace::Changed(Drift::Modified));
                }
            }
        }
        if opened.st_nlink != 1 {
            return Ok(InPlace::Replace);
        }
        rustix::fs::ftruncate(&fd, 0).map_err(|errno| self.error(rel, errno))?;
        let file = File::from(fd);
        file.write_all_at(content, 0)
            .map_err(|error| Error::io(paths::join(&self.root, rel), error))?;
        let permissions = opened.st_mode & 0o7777;
        let wanted = perms::for_rewrite(permissions, mode, recorded);
        if wanted != permissions {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(wanted))
                .map_err(|errno| self.error(rel, errno))?;
        }
        let after = rustix::fs::fstat(&file).map_err(|errno| self.error(rel, errno))?;
        Ok(InPlace::Done(Stat::from_rustix(&after)))
    }

    /// Removes the file or symlink at `rel` if it is still `expected`: it
    /// is checked, renamed aside, checked to be the same file, and only
    /// then unlinked; if it is not what was expected it is left, or renamed
    /// back (never over anything).
    pub(crate) fn remove(&mut self, rel: &[u8], expected: &Expected) -> Result<Outcome, Error> {
        if !paths::is_safe_to_write(rel) {
            return Ok(Outcome::Blocked("not a plain workspace path".to_string()));
        }
        let Ok(parent) = self.parent(rel, false)? else {
            return Ok(Outcome::Removed);
        };
        let name = OsStr::from_bytes(paths::file_name(rel));
        let before = match verify_at(&parent, name, expected)? {
            Ok(stat) => stat,
            Err(Drift::Vanished) => return Ok(Outcome::Removed),
            Err(drift) => return Ok(Outcome::Changed(drift)),
        };
        let temp = self.temp_name();
        match rustix::fs::renameat(&parent, name, &parent, temp.as_str()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(Outcome::Removed),
            Err(errno) => return Err(self.error(rel, errno)),
        }
        let out = rustix::fs::statat(&parent, temp.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map(|stat| Stat::from_rustix(&stat));
        if out.is_ok_and(|out| same_file(&out, &before)) {
            rustix::fs::unlinkat(&parent, temp.as_str(), AtFlags::empty())
                .map_err(|errno| self.error(rel, errno))?;
            return Ok(Outcome::Removed);
        }
        match rename_noreplace(&parent, &temp, name) {
            Ok(()) => Ok(Outcome::Changed(Drift::Modified)),
            Err(_) => Ok(Outcome::Stranded(paths::child(
                paths::parent(rel),
                temp.as_bytes(),
            ))),
        }
    }

    /// Removes the file or symlink at `rel` if it is still the inode
    /// `ino` (one this writer wrote); `false` if it is not there, or is
    /// something else now.
    pub(crate) fn remove_own(&mut self, rel: &[u8], ino: u64) -> Result<bool, Error> {
        if !paths::is_safe_to_write(rel) {
            return Ok(false);
        }
        let Ok(parent) = self.parent(rel, false)? else {
            return Ok(false);
        };
        let name = OsStr::from_bytes(paths::file_name(rel));
        match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if stat.st_ino == ino && !Stat::from_rustix(&stat).is_dir() => {}
            Ok(_) | Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(false),
            Err(errno) => return Err(self.error(rel, errno)),
        }
        match rustix::fs::unlinkat(&parent, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(errno) => Err(self.error(rel, errno)),
        }
    }

    /// Removes the directory `rel` if it is empty; `false` if it is not
    /// there, not a directory or not empty.
    pub(crate) fn remove_dir_if_empty(&mut self, rel: &[u8]) -> Result<bool, Error> {
        self.cached = None;
        if !paths::is_safe_to_write(rel) {
            return Ok(false);
        }
        let Ok(parent) = self.parent(rel, false)? else {
            return Ok(false);
        };
        match rustix::fs::unlinkat(
            &parent,
            OsStr::from_bytes(paths::file_name(rel)),
            AtFlags::REMOVEDIR,
        ) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) | Err(Errno::NOTEMPTY) | Err(Errno::EXIST) | Err(Errno::NOTDIR) => {
                Ok(false)
            }
            Err(Errno::BUSY) | Err(Errno::ACCESS) | Err(Errno::PERM) => Ok(false),
            Err(errno) => Err(self.error(rel, errno)),
        }
    }
}

/// `renameat2(RENAME_NOREPLACE)` within one directory, or, where the file
/// system has no such flag, a check for the target and a plain rename.
fn rename_noreplace(dir: &OwnedFd, from: &str, to: &OsStr) -> Result<(), Errno> {
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP) => {
            match rustix::fs::statat(dir, to, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Err(Errno::EXIST),
                Err(Errno::NOENT) => rustix::fs::renameat(dir, from, dir, to),
                Err(errno) => Err(errno),
            }
        }
        other => other,
    }
}

/// Whether two stats are of the same file, unchanged but for its ctime
/// (which a rename moves).
fn same_file(a: &Stat, b: &Stat) -> bool {
    a.ino == b.ino && a.mode == b.mode && a.size == b.size && a.mtime_ns == b.mtime_ns
}

/// Whether `name` in `dir` is still what was expected: its stat if so, how
/// it drifted if not.
fn verify_at(
    dir: &OwnedFd,
    name: &OsStr,
    expected: &Expected,
) -> Result<Result<Stat, Drift>, Error> {
    let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Stat::from_rustix(&stat),
        Err(Errno::NOENT) => return Ok(Err(Drift::Vanished)),
        Err(errno) => return Err(Error::io(Path::new(name), errno.into())),
    };
    let same = match check(&stat, expected) {
        Check::Same => true,
        Check::Different => false,
        Check::CompareContent if stat.is_symlink() => rustix::fs::readlinkat(dir, name, Vec::new())
            .ok()
            .and_then(|target| GitOid::hash_object(ObjectType::Blob, target.as_bytes()).ok())
            .is_some_and(|oid| oid == expected.oid),
        Check::CompareContent if stat.is_file() => {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            match rustix::fs::openat(dir, name, flags, Mode::empty()) {
                Ok(fd) => {
                    let opened = rustix::fs::fstat(&fd)
                        .map_err(|errno| Error::io(Path::new(name), errno.into()))?;
                    same_file(&Stat::from_rustix(&opened), &stat) && same_content(&fd, expected)?
                }
                Err(_) => false,
            }
        }
        Check::CompareContent => false,
    };
    Ok(if same { Ok(stat) } else { Err(Drift::Modified) })
}

/// Whether the open regular file `fd` holds exactly the expected blob.
fn same_content(fd: &OwnedFd, expected: &Expected) -> Result<bool, Error> {
    let size = expected.stat.size as usize;
    let mut data = vec![0u8; size + 1];
    let mut filled = 0;
    loop {
        match rustix::io::pread(fd, &mut data[filled..], filled as u64) {
            Ok(0) => break,
            Ok(read) => {
                filled += read;
                if filled > size {
                    return Ok(false);
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => return Ok(false),
        }
    }
    data.truncate(filled);
    Ok(GitOid::hash_object(ObjectType::Blob, &data).is_ok_and(|oid| oid == expected.oid))
}

/// Whether `rel` (below `root`) still names the directory `fd` has open.
fn still_at(root: &OwnedFd, rel: &[u8], fd: &OwnedFd) -> bool {
    let here = rustix::fs::statat(root, OsStr::from_bytes(rel), AtFlags::SYMLINK_NOFOLLOW);
    let open = rustix::fs::fstat(fd);
    match (here, open) {
        (Ok(here), Ok(open)) => here.st_dev == open.st_dev && here.st_ino == open.st_ino,
        _ => false,
    }
}
