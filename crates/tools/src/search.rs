//! `list_files` and `grep`: walking the workspace with ignore rules.
//!
//! Both walk with the `ignore` crate (ripgrep's walker): `.gitignore` at
//! every level (whether or not the workspace is a git repository), `.ignore`,
//! `.exoignore` and `.git/info/exclude` are respected, hidden files are
//! included, every `.git` is skipped, symlinks are not followed, and
//! entries come in path order (sorted by name within each directory, which
//! is the order of `Path`'s `Ord`), so stopping at the cap is deterministic.
//! The workspace's protected directories are skipped like `.git`, and a
//! scope inside one is refused.
//! No ignore rule from above the workspace root, and not the user's global
//! excludes file, applies (as in `exo-snapshot`).
//!
//! A walk scoped to a subdirectory starts there, so the ignore files of the
//! directories between the root and the scope are read separately and
//! applied below the scope. The scope itself is always walked, even when
//! ignored: a model that names `target/` wants to see it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{Walk, WalkBuilder};
use regex::bytes::{Regex, RegexBuilder};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::files::has_nul_near_start;
use crate::output::Failure;
use crate::workspace::{io_message, is_git_dir_name};
use crate::{Limits, Workspace};

/// Files larger than this are not searched by `grep`.
pub(crate) const MAX_GREP_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How many characters of a matching line `grep` returns.
pub(crate) const MAX_LINE_CHARS: usize = 500;

/// The custom ignore file exo reads, as `exo-snapshot` does.
const EXO_IGNORE: &str = ".exoignore";

/// `list_files {path?, pattern?}` → `{"files": [...], "truncated"}`.
pub(crate) fn list_files(
    workspace: &Workspace,
    path: Option<&str>,
    pattern: Option<&str>,
    limits: &Limits,
    cancel: &CancellationToken,
) -> Result<Value, Failure> {
    let scope = Scope::resolve(workspace, path)?;
    let pattern = pattern.map(Pattern::new).transpose()?;
    let mut files = Vec::new();
    let mut truncated = false;
    for entry in walk(workspace, &scope) {
        if cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }
        let Ok(entry) = entry else { continue };
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            continue;
        }
        // A symlink to a directory is a directory to whoever lists it; it is
        // not followed.
        if file_type.is_symlink() && fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if let Some(pattern) = &pattern {
            let relative = entry
                .path()
                .strip_prefix(&scope.path)
                .ok()
                .filter(|relative| !relative.as_os_str().is_empty())
                .unwrap_or_else(|| Path::new(entry.file_name()));
            if !pattern.matches(relative) {
                continue;
            }
        }
        if files.len() == limits.max_matches {
            truncated = true;
            break;
        }
        files.push(workspace.display(entry.path()));
    }
    Ok(json!({ "files": files, "truncated": truncated }))
}

/// `grep {pattern, path?}` → `{"matches": [{"path", "line", "text"}], "truncated"}`.
pub(crate) fn grep(
    workspace: &Workspace,
    pattern: &str,
    path: Option<&str>,
    limits: &Limits,
    cancel: &CancellationToken,
) -> Result<Value, Failure> {
    if pattern.is_empty() {
        return Err(Failure::Message("pattern must not be empty".to_owned()));
    }
    let regex = compile_regex(pattern)?;
    let scope = Scope::resolve(workspace, path)?;
    let mut matches = Vec::new();
    let mut truncated = false;
    'files: for entry in walk(workspace, &scope) {
        if cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }
        let Ok(entry) = entry else { continue };
        // Symlinks are not followed (their targets may lie outside), nor
        // special files read.
        if !entry
            .file_type()
            .is_some_and(|file_type| file_type.is_file())
        {
            continue;
        }
        if entry
            .metadata()
            .map_or(true, |metadata| metadata.len() > MAX_GREP_FILE_BYTES)
        {
            continue;
        }
        let Ok(bytes) = fs::read(entry.path()) else {
            continue;
        };
        if bytes.is_empty() || has_nul_near_start(&bytes) {
            continue;
        }
        let display = workspace.display(entry.path());
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        for (index, line) in body.split(|byte| *byte == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !regex.is_match(line) {
                continue;
            }
            if matches.len() == limits.max_matches {
                truncated = true;
                break 'files;
            }
            matches.push(json!({
                "path": display,
                "line": index + 1,
                "text": excerpt(line),
            }));
        }
    }
    Ok(json!({ "matches": matches, "truncated": truncated }))
}

/// Compiles a `grep` pattern; the regex crate's multi-line syntax errors
/// become one line.
fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern).build().map_err(|error| {
        let message = error.to_string();
        let last_line = message
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("invalid syntax");
        let reason = last_line.strip_prefix("error: ").unwrap_or(last_line);
        format!("invalid regex {pattern:?}: {reason}")
    })
}

/// A matching line for the model: lossy UTF-8, cut to [`MAX_LINE_CHARS`]
/// characters with `…` after.
fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    match text.char_indices().nth(MAX_LINE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.into_owned(),
    }
}

/// Where a walk starts: the workspace root, or a directory or file in it.
struct Scope {
    /// Canonical, inside the workspace.
    path: PathBuf,
}

impl Scope {
    fn resolve(workspace: &Workspace, path: Option<&str>) -> Result<Scope, String> {
        let path = match path {
            None => workspace.root().to_owned(),
            Some(path) => {
                let named = workspace.name(path)?;
                workspace.resolve_existing(&named)?
            }
        };
        // Fail here, with the path, rather than walk nothing.
        fs::metadata(&path)
            .map_err(|error| format!("{}: {}", workspace.display(&path), io_message(&error)))?;
        Ok(Scope { path })
    }
}

/// A walk of a scope with the ignore rules described in the module docs,
/// never entering a protected directory.
fn walk(workspace: &Workspace, scope: &Scope) -> Walk {
    let above = Arc::new(AncestorRules::read(workspace.root(), &scope.path));
    let workspace = workspace.clone();
    let mut builder = WalkBuilder::new(&scope.path);
    builder
        .hidden(false)
        .parents(false)
        .ignore(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .add_custom_ignore_filename(EXO_IGNORE)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |entry| {
            // The scope itself (depth 0) is never filtered.
            if is_git_dir_name(entry.file_name()) || workspace.is_protected(entry.path()) {
                return false;
            }
            let is_dir = entry
                .file_type()
                .is_some_and(|file_type| file_type.is_dir());
            !above.ignored(entry.path(), is_dir)
        });
    builder.build()
}

/// The ignore rules of the directories between the workspace root
/// (included) and a walk's scope (excluded), which the walker does not read
/// because it starts at the scope.
struct AncestorRules {
    /// In the `ignore` crate's precedence: by kind (`.exoignore`, `.ignore`,
    /// `.gitignore`, `.git/info/exclude`), and within a kind the deepest
    /// directory first.
    matchers: Vec<Gitignore>,
}

impl AncestorRules {
    fn read(root: &Path, scope: &Path) -> AncestorRules {
        let directories: Vec<&Path> = scope
            .ancestors()
            .skip(1)
            .take_while(|directory| directory.starts_with(root))
            .collect();
        let mut matchers = Vec::new();
        for name in [EXO_IGNORE, ".ignore", ".gitignore"] {
            for directory in &directories {
                matchers.extend(read_ignore_file(directory, &directory.join(name)));
            }
        }
        for directory in &directories {
            if directory.join(".git").is_dir() {
                let exclude = directory.join(".git").join("info").join("exclude");
                matchers.extend(read_ignore_file(directory, &exclude));
            }
        }
        AncestorRules { matchers }
    }

    /// Whether the first rule matching `path` ignores it. Only the path
    /// itself is matched: ignored directories are pruned as the walk
    /// reaches them.
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        for matcher in &self.matchers {
            let matched = matcher.matched(path, is_dir);
            if matched.is_ignore() {
                return true;
            }
            if matched.is_whitelist() {
                return false;
            }
        }
        false
    }
}

/// An ignore file's rules, relative to `directory`; `None` when the file
/// does not exist or cannot be read. Invalid lines are skipped, as git does.
fn read_ignore_file(directory: &Path, file: &Path) -> Option<Gitignore> {
    if !file.is_file() {
        return None;
    }
    let mut builder = GitignoreBuilder::new(directory);
    // A partial error still leaves the valid lines added.
    let _ = builder.add(file);
    builder.build().ok().filter(|matcher| !matcher.is_empty())
}

/// A `list_files` glob.
struct Pattern {
    matcher: GlobMatcher,
    /// A pattern without `/` matches file names at any depth.
    file_name_only: bool,
}

impl Pattern {
    fn new(text: &str) -> Result<Pattern, String> {
        let trimmed = text.strip_prefix("./").unwrap_or(text);
        let glob = GlobBuilder::new(trimmed)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|error| format!("invalid pattern {text:?}: {}", error.kind()))?;
        Ok(Pattern {
            matcher: glob.compile_matcher(),
            file_name_only: !trimmed.contains('/'),
        })
    }

    /// Whether a path relative to the scope matches.
    fn matches(&self, relative: &Path) -> bool {
        if self.file_name_only {
            relative
                .file_name()
                .is_some_and(|name| self.matcher.is_match(name))
        } else {
            self.matcher.is_match(relative)
        }
    }
}
