//! The workspace and path confinement.
//!
//! A path a model names goes through two steps. [`Workspace::name`] is
//! lexical: it turns the text into a path relative to the root with no `.`
//! or `..` left, refusing one that leaves the root. Then
//! [`Workspace::resolve_existing`] (for reading) or
//! [`Workspace::resolve_for_write`] resolves symlinks on disk and refuses a
//! path whose real location is outside the canonical root; for a file still
//! to be created, the nearest existing ancestor is resolved instead. Tools
//! only ever touch the resolved path, which has no symlink left in it.
//!
//! A workspace may also have protected directories ([`Workspace::protect`]):
//! exo's state directory, which often lies inside the workspace. Both
//! resolving steps refuse a path whose real location is inside one, so no
//! file tool reads or writes there, and the walks of `list_files` and `grep`
//! skip them.
//!
//! Checking then using a path leaves a window in which another process
//! could swap a directory for a symlink. The write path narrows it: the
//! final open refuses to follow a symlink (`O_NOFOLLOW`, `O_EXCL`), and the
//! file is replaced by a rename, which never follows one. A model that
//! wants to escape has the shell anyway; confinement keeps honest mistakes
//! and prompt-injected paths inside the workspace.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::ToolError;

/// A directory the tools work in; every path is confined to it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The root, canonical (absolute, no symlinks).
    root: PathBuf,
    /// The root as given, made absolute and normalized lexically: absolute
    /// paths under it are accepted too, for a root reached through a
    /// symlink (as `/tmp` is on macOS).
    given_root: PathBuf,
    /// Directories inside the root that no file tool may touch, canonical
    /// (or, for one that does not exist yet, its nearest existing ancestor
    /// canonical and the rest appended). Never the root itself.
    protected: Vec<PathBuf>,
    /// Where `shell` commands run: the host unless told otherwise.
    sandbox: exo_sandbox::Sandbox,
}

impl Workspace {
    /// A workspace rooted at `root`, which must be an existing directory.
    ///
    /// The root is resolved to its canonical path; relative paths in calls
    /// are taken from it.
    pub fn new(root: &Path) -> Result<Workspace, ToolError> {
        let canonical = fs::canonicalize(root).map_err(|source| ToolError::Workspace {
            path: root.to_owned(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(ToolError::NotADirectory {
                path: root.to_owned(),
            });
        }
        let given_root = std::path::absolute(root)
            .map(|absolute| normalize_absolute(&absolute))
            .unwrap_or_else(|_| canonical.clone());
        Ok(Workspace {
            root: canonical,
            given_root,
            protected: Vec::new(),
            sandbox: exo_sandbox::Sandbox::host(),
        })
    }

    /// The same workspace with `directory` protected: `read_file`,
    /// `write_file` and `edit_file` refuse any path whose real location
    /// (symlinks resolved) is in it, with the one-line error
    /// `refusing to touch exo's state directory: <path>`, and `list_files`
    /// and `grep` neither walk it nor accept it, or anything in it, as their
    /// `path`. It is meant for exo's state directory (its store, secrets,
    /// locks and snapshot repositories), which the message names.
    ///
    /// `directory` should be absolute; a relative one is taken from the
    /// root. Symlinks in it are resolved now if it exists; it need not
    /// exist yet, and is protected once created. A directory that is not
    /// inside the root (outside it, the root itself, or one of its
    /// ancestors) is ignored: protecting it would either change nothing or
    /// leave nothing to work on. The `shell` tool is not confined, so it is
    /// not kept out either.
    pub fn protect(mut self, directory: &Path) -> Workspace {
        let absolute = normalize_absolute(&self.root.join(directory));
        let resolved = canonicalize_what_exists(&absolute);
        if resolved != self.root && resolved.starts_with(&self.root) {
            self.protected.push(resolved);
        }
        self
    }

    /// The same workspace with `shell` commands run in `sandbox`
    /// (spec/sandboxes.md) instead of on the host.
    pub fn with_sandbox(mut self, sandbox: exo_sandbox::Sandbox) -> Workspace {
        self.sandbox = sandbox;
        self
    }

    /// Where `shell` commands run.
    pub fn sandbox(&self) -> &exo_sandbox::Sandbox {
        &self.sandbox
    }

    /// The workspace root, canonical (absolute, symlinks resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks a path a model named, lexically, and makes it relative to the
    /// root.
    ///
    /// Accepts a relative path, or an absolute path inside the root (as
    /// given or canonical). `.` components are dropped and `..` removes the
    /// component before it; one that would climb above the root is refused.
    pub(crate) fn name(&self, raw: &str) -> Result<Named, String> {
        if raw.is_empty() {
            return Err("path must not be empty".to_owned());
        }
        if raw.contains('\0') {
            return Err("path must not contain a NUL character".to_owned());
        }
        let path = Path::new(raw);
        let relative = if path.is_absolute() {
            let normalized = normalize_absolute(path);
            let inside = normalized
                .strip_prefix(&self.root)
                .or_else(|_| normalized.strip_prefix(&self.given_root));
            match inside {
                Ok(inside) => inside.to_owned(),
                Err(_) => return Err(escapes(raw)),
            }
        } else {
            let mut relative = PathBuf::new();
            for component in path.components() {
                match component {
                    Component::CurDir => {}
                    Component::ParentDir => {
                        if !relative.pop() {
                            return Err(escapes(raw));
                        }
                    }
                    Component::Normal(name) => relative.push(name),
                    // A relative path has neither.
                    Component::RootDir | Component::Prefix(_) => return Err(escapes(raw)),
                }
            }
            relative
        };
        let display = display_relative(&relative);
        Ok(Named { relative, display })
    }

    /// Resolves an existing path for reading: its canonical form, which must
    /// lie inside the root and outside every protected directory.
    pub(crate) fn resolve_existing(&self, named: &Named) -> Result<PathBuf, String> {
        match fs::canonicalize(self.root.join(&named.relative)) {
            Ok(canonical) if !canonical.starts_with(&self.root) => Err(escapes(&named.display)),
            Ok(canonical) if self.is_protected(&canonical) => Err(protected(&named.display)),
            Ok(canonical) => Ok(canonical),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(format!("{} does not exist", named.display))
            }
            Err(error) => Err(format!("{}: {}", named.display, io_message(&error))),
        }
    }

    /// Resolves a path for writing a regular file, which may not exist yet.
    ///
    /// The nearest existing ancestor (or the path itself) is resolved and
    /// must lie inside the root; the missing components are appended to it.
    /// A dangling symlink on the way is refused (writing through it would
    /// create its target, wherever that is), and so is any path inside a
    /// protected or a `.git` directory, or naming one.
    pub(crate) fn resolve_for_write(&self, named: &Named) -> Result<WriteTarget, String> {
        let mut existing = self.root.join(&named.relative);
        let mut missing: Vec<OsString> = Vec::new();
        loop {
            match fs::symlink_metadata(&existing) {
                Ok(_) => break,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    // The root exists, so this stops at the latest there.
                    match existing.file_name() {
                        Some(name) if existing != self.root => {
                            missing.push(name.to_owned());
                            existing.pop();
                        }
                        _ => return Err(format!("{} does not exist", named.display)),
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
                    return Err(format!(
                        "{}: a parent of it is a file, not a directory",
                        named.display
                    ))
                }
                Err(error) => return Err(format!("{}: {}", named.display, io_message(&error))),
            }
        }
        let canonical = match fs::canonicalize(&existing) {
            Ok(canonical) => canonical,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let link = existing.strip_prefix(&self.root).unwrap_or(&existing);
                return Err(format!(
                    "{}: cannot write through {}, a symlink whose target does not exist",
                    named.display,
                    display_relative(link)
                ));
            }
            Err(error) => return Err(format!("{}: {}", named.display, io_message(&error))),
        };
        if !canonical.starts_with(&self.root) {
            return Err(escapes(&named.display));
        }
        let mut path = canonical.clone();
        for name in missing.iter().rev() {
            path.push(name);
        }
        if self.is_protected(&path) {
            return Err(protected(&named.display));
        }
        let inside = path.strip_prefix(&self.root).unwrap_or(Path::new(""));
        if inside
            .components()
            .any(|component| matches!(component, Component::Normal(name) if is_git_dir_name(name)))
        {
            return Err(format!(
                "refusing to write inside a .git directory: {}",
                named.display
            ));
        }
        if inside.as_os_str().is_empty() {
            return Err(format!("{} is a directory", named.display));
        }
        let exists = missing.is_empty();
        if exists {
            let metadata = fs::metadata(&path)
                .map_err(|error| format!("{}: {}", named.display, io_message(&error)))?;
            if metadata.is_dir() {
                return Err(format!("{} is a directory", named.display));
            }
            if !metadata.is_file() {
                return Err(format!("{} is not a regular file", named.display));
            }
        } else if !canonical.is_dir() {
            return Err(format!(
                "{}: a parent of it is a file, not a directory",
                named.display
            ));
        }
        Ok(WriteTarget { path, exists })
    }

    /// Whether a path with no symlink left in it is a protected directory
    /// or lies inside one. Components compare without regard to ASCII case,
    /// as a case-insensitive file system would take them.
    pub(crate) fn is_protected(&self, path: &Path) -> bool {
        self.protected.iter().any(|directory| {
            let mut components = path.components();
            directory.components().all(|expected| {
                components.next().is_some_and(|found| {
                    found.as_os_str().eq_ignore_ascii_case(expected.as_os_str())
                })
            })
        })
    }

    /// A canonical path inside the root, as a model should see it: relative
    /// to the root, with `/` between components, `.` for the root itself.
    pub(crate) fn display(&self, canonical: &Path) -> String {
        display_relative(canonical.strip_prefix(&self.root).unwrap_or(canonical))
    }
}

/// A path a model named, relative to the root with no `.` or `..`; not yet
/// checked against the file system.
#[derive(Debug, Clone)]
pub(crate) struct Named {
    /// Relative to the root; empty for the root itself.
    pub(crate) relative: PathBuf,
    /// How messages and outputs name it.
    pub(crate) display: String,
}

/// Where a file may be written: inside the root, not in `.git`, with every
/// existing component resolved (no symlinks) and any missing ones appended.
#[derive(Debug, Clone)]
pub(crate) struct WriteTarget {
    /// The file to write.
    pub(crate) path: PathBuf,
    /// Whether it exists now (a regular file).
    pub(crate) exists: bool,
}

/// The message for a path that leaves the workspace.
fn escapes(path: &str) -> String {
    format!("path escapes the workspace: {path}")
}

/// The message for a path inside a protected directory.
fn protected(path: &str) -> String {
    format!("refusing to touch exo's state directory: {path}")
}

/// An absolute, normalized path with symlinks resolved as far as it exists:
/// its nearest existing ancestor canonical, the missing components appended.
fn canonicalize_what_exists(path: &Path) -> PathBuf {
    let mut existing = path.to_owned();
    let mut missing: Vec<OsString> = Vec::new();
    loop {
        if let Ok(canonical) = fs::canonicalize(&existing) {
            let mut resolved = canonical;
            for name in missing.iter().rev() {
                resolved.push(name);
            }
            return resolved;
        }
        match existing.file_name() {
            Some(name) => {
                missing.push(name.to_owned());
                existing.pop();
            }
            // Not even `/` resolves: keep the path as it is.
            None => return path.to_owned(),
        }
    }
}

/// Removes `.` and resolves `..` lexically in an absolute path (`..` at the
/// root stays at the root, as the kernel does).
fn normalize_absolute(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if normalized.parent().is_some() {
                    normalized.pop();
                }
            }
            other => normalized.push(other.as_os_str()),
        }
    }
    normalized
}

/// A relative path joined with `/`, or `.` when empty.
fn display_relative(relative: &Path) -> String {
    if relative.as_os_str().is_empty() {
        return ".".to_owned();
    }
    let parts: Vec<_> = relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// An I/O error as one line, without the `(os error N)` suffix.
pub(crate) fn io_message(error: &io::Error) -> String {
    let message = error.to_string();
    match message.find(" (os error ") {
        Some(end) => message[..end].to_owned(),
        None => message,
    }
}

/// Whether a file name is `.git`, in any case (as case-insensitive file
/// systems would take it).
pub(crate) fn is_git_dir_name(name: &OsStr) -> bool {
    name.eq_ignore_ascii_case(".git")
}
