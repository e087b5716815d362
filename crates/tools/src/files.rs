//! `read_file`, `write_file` and `edit_file`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags};
use serde_json::{json, Value};

use crate::workspace::{io_message, WriteTarget};
use crate::{Limits, Workspace};

/// The largest file `edit_file` works on: it reads the whole file.
pub(crate) const MAX_EDIT_BYTES: u64 = 64 * 1024 * 1024;

/// How far into a file a NUL byte makes it binary (as git and ripgrep look).
pub(crate) const BINARY_PROBE_BYTES: usize = 8192;

/// Whether bytes look binary: a NUL byte near the start.
pub(crate) fn has_nul_near_start(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_PROBE_BYTES)].contains(&0)
}

/// `read_file {path}` → `{"path", "content", "truncated", "binary", "size"}`.
pub(crate) fn read_file(
    workspace: &Workspace,
    path: &str,
    limits: &Limits,
) -> Result<Value, String> {
    let named = workspace.name(path)?;
    let canonical = workspace.resolve_existing(&named)?;
    let display = &named.display;
    let metadata =
        fs::metadata(&canonical).map_err(|error| format!("{display}: {}", io_message(&error)))?;
    if metadata.is_dir() {
        return Err(format!(
            "{display} is a directory; use list_files to see what it holds"
        ));
    }
    if !metadata.is_file() {
        // A FIFO would block the read; a device could be endless.
        return Err(format!("{display} is not a regular file"));
    }
    let file =
        File::open(&canonical).map_err(|error| format!("{display}: {}", io_message(&error)))?;
    let cap = usize::try_from(limits.max_read_bytes).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    file.take(limits.max_read_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| format!("{display}: {}", io_message(&error)))?;
    let truncated = bytes.len() > cap;
    bytes.truncate(cap);
    // The file may have grown since the stat.
    let size = metadata.len().max(bytes.len() as u64);
    Ok(match decode_text(bytes, truncated) {
        Some(content) => json!({
            "path": display,
            "content": content,
            "truncated": truncated,
            "binary": false,
            "size": size,
        }),
        None => json!({
            "path": display,
            "content": null,
            "truncated": false,
            "binary": true,
            "size": size,
        }),
    })
}

/// The bytes as text, or `None` when they are binary: a NUL byte near the
/// start, or not UTF-8. A cut file may end inside a character, which is
/// dropped.
fn decode_text(bytes: Vec<u8>, truncated: bool) -> Option<String> {
    if has_nul_near_start(&bytes) {
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(error) if truncated && error.utf8_error().error_len().is_none() => {
            let valid = error.utf8_error().valid_up_to();
            let mut bytes = error.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).ok()
        }
        Err(_) => None,
    }
}

/// `write_file {path, content}` → `{"path", "bytes_written", "created"}`.
pub(crate) fn write_file(
    workspace: &Workspace,
    path: &str,
    content: &str,
) -> Result<Value, String> {
    let named = workspace.name(path)?;
    let target = workspace.resolve_for_write(&named)?;
    replace_file(&target, content.as_bytes())
        .map_err(|error| format!("{}: {}", named.display, io_message(&error)))?;
    Ok(json!({
        "path": named.display,
        "bytes_written": content.len(),
        "created": !target.exists,
    }))
}

/// `edit_file {path, old_string, new_string}` → `{"path", "replacements": 1}`.
pub(crate) fn edit_file(
    workspace: &Workspace,
    path: &str,
    old_string: &str,
    new_string: &str,
) -> Result<Value, String> {
    if old_string.is_empty() {
        return Err(
            "old_string must not be empty; use write_file to create or overwrite a file".to_owned(),
        );
    }
    if old_string == new_string {
        return Err("old_string and new_string are identical; nothing would change".to_owned());
    }
    let named = workspace.name(path)?;
    let display = &named.display;
    let target = workspace.resolve_for_write(&named)?;
    if !target.exists {
        return Err(format!(
            "{display} does not exist; use write_file to create it"
        ));
    }
    let size = fs::metadata(&target.path)
        .map_err(|error| format!("{display}: {}", io_message(&error)))?
        .len();
    if size > MAX_EDIT_BYTES {
        return Err(format!(
            "{display} is too large to edit ({size} bytes, the limit is {MAX_EDIT_BYTES})"
        ));
    }
    let bytes =
        fs::read(&target.path).map_err(|error| format!("{display}: {}", io_message(&error)))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{display} is not UTF-8 text; edit_file only edits text files"))?;
    match occurrences(&text, old_string) {
        0 => {
            let mut message = format!("old_string not found in {display}");
            if text.contains("\r\n") && old_string.contains('\n') && !old_string.contains("\r\n") {
                message
                    .push_str(" (the file has CRLF line endings; old_string must have them too)");
            }
            Err(message)
        }
        1 => {
            // `occurrences` found it, so `find` does too.
            let start = text.find(old_string).unwrap_or(0);
            let mut edited =
                String::with_capacity(text.len() - old_string.len() + new_string.len());
            edited.push_str(&text[..start]);
            edited.push_str(new_string);
            edited.push_str(&text[start + old_string.len()..]);
            replace_file(&target, edited.as_bytes())
                .map_err(|error| format!("{display}: {}", io_message(&error)))?;
            Ok(json!({ "path": display, "replacements": 1 }))
        }
        count => Err(format!(
            "old_string occurs {count} times in {display}; include more context to make it unique"
        )),
    }
}

/// How many times `needle` occurs in `text`, overlapping occurrences counted
/// (`aa` occurs twice in `aaa`: either could be meant).
fn occurrences(text: &str, needle: &str) -> usize {
    let mut count = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find(needle) {
        count += 1;
        let at = from + found;
        // Step one character: `needle` is not empty, so one starts at `at`.
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
    }
    count
}

/// Writes `bytes` as the whole content of the target file, atomically: into
/// a new temporary file beside it, then renamed over it, so the file is
/// never seen half written. An existing file keeps its permissions; missing
/// parent directories are created.
fn replace_file(target: &WriteTarget, bytes: &[u8]) -> io::Result<()> {
    let parent = target
        .path
        .parent()
        .ok_or_else(|| io::Error::other("the file has no parent directory"))?;
    fs::create_dir_all(parent)?;
    let permissions = if target.exists {
        Some(fs::metadata(&target.path)?.permissions())
    } else {
        None
    };
    let (temporary_path, mut file) = create_temporary(parent)?;
    let written = (|| {
        file.write_all(bytes)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary_path, &target.path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary_path);
    }
    written
}

/// Creates a new, empty file in `directory` with a name nothing else uses,
/// never following a symlink.
fn create_temporary(directory: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let name = format!(
            ".exo-write-{}-{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = directory.join(name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::open(&path, flags, Mode::from_bits_truncate(0o666)) {
            Ok(fd) => return Ok((path, File::from(fd))),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
}
