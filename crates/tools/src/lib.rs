//! The coding tools exo's built-in executor offers a model.
//!
//! Six tools with fixed names and arguments (models and scripts see them):
//!
//! | tool | arguments | needs |
//! |---|---|---|
//! | `shell` | `command`, `timeout_ms`? | [`Access::Shell`] |
//! | `read_file` | `path` | [`Access::Read`] |
//! | `write_file` | `path`, `content` | [`Access::Write`] |
//! | `edit_file` | `path`, `old_string`, `new_string` | [`Access::Write`] |
//! | `list_files` | `path`?, `pattern`? | [`Access::Read`] |
//! | `grep` | `pattern`, `path`? | [`Access::Read`] |
//!
//! An executor offers [`specs`] to the model, checks each call the model
//! makes with [`parse`] (a clear one-line error for a bad call, without
//! running anything), asks for approval according to [`access`] if it wants
//! to, and runs the call with [`run`]. Every failure of a call comes back as
//! a [`ToolOutput`] with `is_error` set and `{"error": "..."}` as its output,
//! so the model can read it and try again; [`run`] never panics on bad input.
//! The executor records each call and result as events; this crate does no
//! recording and knows nothing of the store.
//!
//! `spec/tools.md` is the contract: each tool's schema, output shape and
//! errors, and the rules below in full.
//!
//! # Confinement
//!
//! Every path is confined to a [`Workspace`]: relative paths are taken from
//! its root, absolute paths must lie inside it, a `..` that would leave it is
//! refused, and symlinks are resolved, so neither a symlink nor a symlinked
//! directory can lead a read or a write outside ("path escapes the
//! workspace"). Nothing is ever written inside a `.git` directory.
//!
//! exo's own state directory (its store, secrets, locks and snapshot
//! repositories) may lie inside the workspace; declared with
//! [`Workspace::protect`], it is out of bounds for every file tool:
//! `read_file`, `write_file` and `edit_file` refuse a path in it, directly or
//! through a symlink ("refusing to touch exo's state directory"), and
//! `list_files` and `grep` skip it.
//!
//! The `shell` tool is not confined this way: it runs in the workspace root,
//! on the host or in the [`Workspace`]'s sandbox ([`Workspace::with_sandbox`],
//! `exo_sandbox`), which decides what it can see.
//!
//! # Environment
//!
//! The shell starts from an empty environment plus a small allow-list taken
//! from exo's own (`PATH`, `HOME`, `LANG`, `LC_*`, `TERM`, `USER`, `SHELL`,
//! `TMPDIR`) and whatever the caller passes explicitly, so secrets such as
//! `EXO_ENCRYPTION_KEY` or `OPENAI_API_KEY` never reach the commands a model
//! runs.

#![deny(unsafe_code)]

mod call;
mod error;
mod files;
mod output;
pub mod reaper;
mod search;
mod shell;
mod spec;
mod workspace;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use call::{access, parse, Access, Call};
pub use error::ToolError;
use output::Failure;
pub use output::ToolOutput;
pub use spec::{specs, specs_for, ToolSpec};
pub use workspace::Workspace;

/// The tools' names, in the order [`specs`] lists them.
pub const TOOL_NAMES: [&str; 6] = [
    "shell",
    "read_file",
    "write_file",
    "edit_file",
    "list_files",
    "grep",
];

/// Bounds on what one call may take and return.
///
/// [`Limits::default`] gives the values `spec/tools.md` documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// How long a shell command runs when the call gives no `timeout_ms`
    /// (default 120 s).
    pub default_timeout: Duration,
    /// The longest a shell command may run, whatever `timeout_ms` asks for
    /// (default 10 min); a longer `timeout_ms` is lowered to this.
    pub max_timeout: Duration,
    /// The most a shell command's stdout, and separately its stderr, returns
    /// (default 64 KiB each). Longer output keeps its first and last halves
    /// with a marker between them saying how many bytes were left out.
    pub max_output_bytes: usize,
    /// The most `read_file` returns of a file (default 1 MiB); a longer file
    /// comes back cut, with `truncated` set.
    pub max_read_bytes: u64,
    /// The most paths `list_files` and matching lines `grep` return (default
    /// 500); beyond that `truncated` is set.
    pub max_matches: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            default_timeout: Duration::from_secs(120),
            max_timeout: Duration::from_secs(600),
            max_output_bytes: 64 * 1024,
            max_read_bytes: 1024 * 1024,
            max_matches: 500,
        }
    }
}

/// Runs a call in a workspace.
///
/// Never panics on bad input: every failure (a path outside the workspace,
/// a missing file, an ambiguous edit, a command that exits non-zero or times
/// out, ...) comes back as a [`ToolOutput`] with `is_error` set; all but the
/// shell's put a one-line message in `{"error": "..."}`.
///
/// `env` is added to the shell's scrubbed environment (and overrides the
/// allow-listed variables); the other tools ignore it.
///
/// Cancelling `cancel` kills a running shell command's whole process group
/// and returns its output so far with `"cancelled": true`; `list_files` and
/// `grep` stop walking and return `{"error": "cancelled", "cancelled":
/// true}`. A file write or edit, once started, is finished (it is short, and
/// must not be left half done): cancellation is only checked before it.
///
/// Dropping the returned future also kills a running shell command's process
/// group, and so does the death of this process, however it dies: the
/// group is registered with a reaper process started on the first shell
/// command (`spec/tools.md`, "When exo dies").
///
/// Must be polled inside a tokio runtime with the time and I/O drivers
/// enabled (the shell's pipes and child are tokio's; the file tools run on
/// its blocking pool).
pub async fn run(
    workspace: &Workspace,
    call: &Call,
    limits: &Limits,
    env: &[(String, String)],
    cancel: &CancellationToken,
) -> ToolOutput {
    if cancel.is_cancelled() {
        return ToolOutput::cancelled();
    }
    match call {
        Call::Shell {
            command,
            timeout_ms,
        } => shell::run(workspace, command, *timeout_ms, limits, env, cancel).await,
        _ => {
            let name = call.name();
            let workspace = workspace.clone();
            let owned_call = call.clone();
            let limits = limits.clone();
            let cancel = cancel.clone();
            let task = tokio::task::spawn_blocking(move || {
                run_blocking(&workspace, &owned_call, &limits, &cancel)
            });
            match task.await {
                Ok(output) => output,
                // Only a panic inside the tool gets here; the model still
                // gets an answer it can read.
                Err(join_error) => ToolOutput::broken(format!(
                    "internal error: the {name} tool {}",
                    if join_error.is_panic() {
                        "panicked"
                    } else {
                        "was stopped"
                    }
                )),
            }
        }
    }
}

/// Runs a tool that works on files, on a blocking thread.
fn run_blocking(
    workspace: &Workspace,
    call: &Call,
    limits: &Limits,
    cancel: &CancellationToken,
) -> ToolOutput {
    let result = match call {
        Call::Shell { .. } => Err(Failure::Message(
            "internal error: shell calls do not run on a blocking thread".to_owned(),
        )),
        Call::ReadFile { path } => files::read_file(workspace, path, limits).map_err(Into::into),
        Call::WriteFile { path, content } => {
            files::write_file(workspace, path, content).map_err(Into::into)
        }
        Call::EditFile {
            path,
            old_string,
            new_string,
        } => files::edit_file(workspace, path, old_string, new_string).map_err(Into::into),
        Call::ListFiles { path, pattern } => search::list_files(
            workspace,
            path.as_deref(),
            pattern.as_deref(),
            limits,
            cancel,
        ),
        Call::Grep { pattern, path } => {
            search::grep(workspace, pattern, path.as_deref(), limits, cancel)
        }
    };
    match result {
        Ok(output) => ToolOutput::success(output),
        Err(Failure::Message(message)) => ToolOutput::error(message),
        Err(Failure::Cancelled) => ToolOutput::cancelled(),
    }
}
