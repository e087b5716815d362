//! Writing files into a workspace without ever following a symlink.
//!
//! Every operation starts from a descriptor of the workspace root and walks
//! down one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`, so
//! a directory replaced by a symlink (to anywhere) is never written through:
//! the operation reports the path as blocked instead.
//!
//! A regular file with a single link is rewritten in place, as git's
//! checkout does (a concurrent reader may see it half written, as with git).
//! Anything else (new files, symlinks, a file where a symlink was, a file
//! with other hard links, which must not change under their other names) is
//! written to a temporary name in its directory and renamed into place.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, IoContext};
use crate::index::{Stat, MODE_EXEC, MODE_SYMLINK};
use crate::paths;

/// The prefix of the temporary names restore writes through.
pub(crate) const TEMP_PREFIX: &str = ".exo-tmp-";

/// What happened to one path.
pub(crate) enum Outcome {
    /// Written; the stat of what is now there.
    Written(Stat),
    /// Left alone, and why.
    Blocked(String),
}

/// Writes below one root directory.
pub(crate) struct Writer {
    root: PathBuf,
    root_fd: OwnedFd,
    counter: u64,
    /// The directory last opened below the root (restores write files in
    /// path order, so consecutive files usually share it).
    cached: Option<(Vec<u8>, OwnedFd)>,
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
        })
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
            if cached_rel == dir_rel {
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
                        Ok(()) | Err(Errno::EXIST) => {}
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

    /// The `lstat` of `rel`, or `None` if nothing is there (or a parent is
    /// missing or not a directory).
    pub(crate) fn lstat(&mut self, rel: &[u8]) -> Result<Option<Stat>, Error> {
        let Ok(parent) = self.parent(rel, false)? else {
            return Ok(None);
        };
        match rustix::fs::statat(
            &parent,
            OsStr::from_bytes(paths::file_name(rel)),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => Ok(Some(Stat::from_rustix(&stat))),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(errno) => Err(self.error(rel, errno)),
        }
    }

    fn temp_name(&mut self) -> String {
        self.counter += 1;
        format!("{TEMP_PREFIX}{}-{}", std::process::id(), self.counter)
    }

    /// Writes a file (mode `100644`/`100755`) or a symlink (`120000`, the
    /// content being its target) at `rel`, replacing a file or symlink that
    /// is there, or an empty directory. Parents are created as needed.
    pub(crate) fn write(
        &mut self,
        rel: &[u8],
        mode: u32,
        content: &[u8],
    ) -> Result<Outcome, Error> {
        if !paths::is_safe_to_write(rel) {
            return Ok(Outcome::Blocked("not a plain workspace path".to_string()));
        }
        let temp = self.temp_name();
        let parent = match self.parent(rel, true)? {
            Ok(parent) => parent,
            Err(reason) => return Ok(Outcome::Blocked(reason)),
        };
        let name = OsStr::from_bytes(paths::file_name(rel));
        if mode != MODE_SYMLINK {
            if let Some(stat) = self.overwrite_in_place(&parent, name, rel, mode, content)? {
                return Ok(Outcome::Written(stat));
            }
        }
        if mode == MODE_SYMLINK {
            rustix::fs::symlinkat(OsStr::from_bytes(content), &parent, temp.as_str())
                .map_err(|errno| self.error(rel, errno))?;
        } else {
            let permissions = if mode == MODE_EXEC { 0o777 } else { 0o666 };
            let fd = rustix::fs::openat(
                &parent,
                temp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(permissions),
            )
            .map_err(|errno| self.error(rel, errno))?;
            let mut file = File::from(fd);
            if let Err(error) = file.write_all(content) {
                let _ = rustix::fs::unlinkat(&parent, temp.as_str(), AtFlags::empty());
                return Err(Error::io(paths::join(&self.root, rel), error));
            }
        }
        let renamed = match rustix::fs::renameat(&parent, temp.as_str(), &parent, name) {
            Ok(()) => Ok(()),
            // A directory is in the way: replace it only if it is empty.
            Err(Errno::ISDIR) | Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => {
                match rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR) {
                    Ok(()) => rustix::fs::renameat(&parent, temp.as_str(), &parent, name),
                    Err(_) => {
                        let _ = rustix::fs::unlinkat(&parent, temp.as_str(), AtFlags::empty());
                        return Ok(Outcome::Blocked(
                            "a directory with uncaptured files is in the way".to_string(),
                        ));
                    }
                }
            }
            Err(errno) => Err(errno),
        };
        if let Err(errno) = renamed {
            let _ = rustix::fs::unlinkat(&parent, temp.as_str(), AtFlags::empty());
            return Err(self.error(rel, errno));
        }
        let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|errno| self.error(rel, errno))?;
        Ok(Outcome::Written(Stat::from_rustix(&stat)))
    }

    /// Rewrites an existing regular file with a single link in place, as
    /// git's checkout does (cheaper than a new inode and a rename on most
    /// file systems); `None` if what is there is anything else (a symlink,
    /// a hard-linked file, a special file, nothing), which the caller then
    /// replaces by rename. Never opens anything but a regular file, and
    /// never follows a symlink.
    fn overwrite_in_place(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        rel: &[u8],
        mode: u32,
        content: &[u8],
    ) -> Result<Option<Stat>, Error> {
        let Ok(before) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return Ok(None);
        };
        let before = Stat::from_rustix(&before);
        if !before.is_file() {
            return Ok(None);
        }
        let flags =
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let Ok(fd) = rustix::fs::openat(parent, name, flags, Mode::empty()) else {
            return Ok(None);
        };
        let opened = rustix::fs::fstat(&fd).map_err(|errno| self.error(rel, errno))?;
        if Stat::from_rustix(&opened).ino != before.ino
            || !Stat::from_rustix(&opened).is_file()
            || opened.st_nlink != 1
        {
            return Ok(None);
        }
        rustix::fs::ftruncate(&fd, 0).map_err(|errno| self.error(rel, errno))?;
        let mut file = File::from(fd);
        file.write_all(content)
            .map_err(|error| Error::io(paths::join(&self.root, rel), error))?;
        let permissions = opened.st_mode & 0o7777;
        let wanted = if mode == MODE_EXEC {
            permissions | ((permissions & 0o444) >> 2)
        } else {
            permissions & !0o111
        };
        if wanted != permissions {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(wanted))
                .map_err(|errno| self.error(rel, errno))?;
        }
        let after = rustix::fs::fstat(&file).map_err(|errno| self.error(rel, errno))?;
        Ok(Some(Stat::from_rustix(&after)))
    }

    /// Removes the file or symlink at `rel`; `false` if nothing (or a
    /// directory) was there.
    pub(crate) fn remove(&mut self, rel: &[u8]) -> Result<bool, Error> {
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
            AtFlags::empty(),
        ) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) | Err(Errno::ISDIR) | Err(Errno::NOTDIR) => Ok(false),
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
