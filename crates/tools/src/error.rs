//! The crate's error type, for what fails before a call runs.

use std::path::PathBuf;

/// A call that cannot run, or a workspace that cannot be used.
///
/// Messages are one line, start with the tool's name where there is one, and
/// never contain argument values beyond the names of fields and tools, so an
/// executor can hand them to the model as they are (see
/// [`ToolOutput::error`](crate::ToolOutput::error)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// No tool has this name.
    #[error("unknown tool {name:?}; the tools are {}", crate::TOOL_NAMES.join(", "))]
    UnknownTool {
        /// The name the call gave.
        name: String,
    },
    /// The arguments do not match the tool's schema: not an object, a
    /// required field missing, a field of the wrong type or an unknown field.
    #[error("{tool}: {message}")]
    InvalidArguments {
        /// The tool called.
        tool: &'static str,
        /// What is wrong, e.g. `missing required field "path"`.
        message: String,
    },
    /// The workspace root does not exist or cannot be resolved.
    #[error("workspace {}: {source}", path.display())]
    Workspace {
        /// The root as given.
        path: PathBuf,
        /// Why it cannot be resolved.
        source: std::io::Error,
    },
    /// The workspace root is not a directory.
    #[error("workspace {} is not a directory", path.display())]
    NotADirectory {
        /// The root as given.
        path: PathBuf,
    },
}
