//! Files the user names on the command line: read with a bound, written
//! whole or not at all, and never inside the exo root.
//!
//! Reading: a regular file over the limit is refused before it is read;
//! anything else (a device such as `/dev/zero`, a pipe from process
//! substitution `<(cmd)`, a named FIFO) is read up to the limit plus one
//! byte, and refused if that byte arrives. The file is opened with
//! `O_NONBLOCK`, so opening a FIFO never waits for a writer; a FIFO that no
//! process opens for writing within [`FIFO_WRITER_WAIT`] is refused rather
//! than read as empty or waited on forever.
//!
//! Writing: the bytes go to a temporary file beside the target, which is
//! synced and renamed over it, so a failure leaves the old file (or none).
//! A target that is not a regular file (`/dev/stdout`, a FIFO) is written
//! in place. Symlinks are followed: the file they lead to is replaced.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{FileType, Mode, OFlags};

/// How long a named FIFO may wait for a writer. A writer started beside
/// `exo` (`mkfifo f; cmd > f & exo artifact put ... f`) opens it well within
/// this; one that never comes is reported instead of waited for forever.
pub const FIFO_WRITER_WAIT: Duration = Duration::from_secs(5);

/// Reads the file at `path`, refusing more than `limit` bytes; `what`
/// names the limit in the error ("artifact").
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let context = || format!("reading {}", path.display());
    let too_large = || {
        anyhow!(
            "{} is larger than the {} MiB {what} limit",
            path.display(),
            limit >> 20
        )
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(context)?;
    let stat = rustix::fs::fstat(&fd)
        .map_err(std::io::Error::from)
        .with_context(context)?;
    let mut bytes = Vec::new();
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => bail!("{} is a directory", path.display()),
        FileType::RegularFile if stat.st_size as u64 > limit => bail!(
            "{} is {} bytes, more than the {} MiB {what} limit",
            path.display(),
            stat.st_size,
            limit >> 20
        ),
        FileType::Fifo => wait_for_writer(&fd, path, &mut bytes)?,
        _ => {}
    }
    let flags = rustix::fs::fcntl_getfl(&fd)
        .map_err(std::io::Error::from)
        .with_context(context)?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)
        .map_err(std::io::Error::from)
        .with_context(context)?;
    let file = std::fs::File::from(fd);
    let room = (limit + 1).saturating_sub(bytes.len() as u64);
    file.take(room)
        .read_to_end(&mut bytes)
        .with_context(context)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Waits until a FIFO opened without blocking has a writer. Bytes read
/// while finding out are added to `bytes`.
fn wait_for_writer(fd: &rustix::fd::OwnedFd, path: &Path, bytes: &mut Vec<u8>) -> Result<()> {
    // Until a writer has opened it, poll reports nothing on a FIFO opened
    // with O_NONBLOCK: it wakes when data arrives, or when a writer has
    // come and gone.
    let deadline = Instant::now() + FIFO_WRITER_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => {
                return Err(std::io::Error::from(err))
                    .with_context(|| format!("reading {}", path.display()))
            }
        }
    }
    // Nothing yet: a writer that is slow to write leaves the read empty
    // (EAGAIN); no writer at all reads as end of file.
    let mut buffer = [0u8; 4096];
    match rustix::io::read(fd, &mut buffer) {
        Ok(0) => bail!(
            "{} is a FIFO that no process opened for writing within {} s",
            path.display(),
            FIFO_WRITER_WAIT.as_secs()
        ),
        Ok(n) => {
            bytes.extend_from_slice(&buffer[..n]);
            Ok(())
        }
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(()),
        Err(err) => {
            Err(std::io::Error::from(err)).with_context(|| format!("reading {}", path.display()))
        }
    }
}

/// Refuses a path the user gave (`what` names its flag) when it lies in
/// the exo root, symlinks and `..` resolved: a file written there could
/// replace exo's own state (`-o <root>/exo.db`).
pub fn refuse_inside_root(root: &Path, path: &Path, what: &str) -> Result<()> {
    let inside = exo_store::is_inside_root(root, path)
        .with_context(|| format!("resolving {}", path.display()))?;
    if inside {
        bail!(
            "{what} {} is inside the exo root {}, which holds exo's own state; choose a path outside it",
            path.display(),
            root.display()
        );
    }
    // The encryption key's directory too: a file written over the key file
    // would make every stored secret unreadable.
    if let Some(key_dir) = exo_secrets::default_key_file()
        .ok()
        .and_then(|file| file.parent().map(Path::to_path_buf))
    {
        let inside = exo_store::is_inside_root(&key_dir, path)
            .with_context(|| format!("resolving {}", path.display()))?;
        if inside {
            bail!(
                "{what} {} is inside {}, which holds exo's encryption key; choose a path outside it",
                path.display(),
                key_dir.display()
            );
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` whole: through a synced temporary file renamed
/// over the target, which keeps the old file's permissions.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let context = || format!("writing {}", path.display());
    // Symlinks lead to the file that is replaced.
    let target = exo_store::resolve_path(path).with_context(context)?;
    let permissions = match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => bail!("{} is a directory", path.display()),
        Ok(meta) if !meta.is_file() => {
            // A device or FIFO cannot be replaced; it is written as is.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .with_context(context)?;
            return file.write_all(bytes).with_context(context);
        }
        Ok(meta) => Some(meta.permissions()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err).with_context(context),
    };
    let (dir, name) = match (target.parent(), target.file_name()) {
        (Some(dir), Some(name)) => (dir, name),
        _ => bail!("{} does not name a file", path.display()),
    };
    let temp = temp_name(dir, &name.to_string_lossy());
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.with_context(context)
}

/// A name beside `name` in `dir` that no other writer picks.
fn temp_name(dir: &Path, name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    dir.join(format!(".{name}.exo-{}-{nanos}", std::process::id()))
}
