//! What a call returns to the model, and how failures become that.

use serde_json::{json, Value};

/// The result of one call: the JSON the model sees, and whether the call
/// failed.
///
/// The executor records it as the call's `tool_result` event (`output`,
/// `is_error`). Failures other than the shell's are `{"error": "..."}` with a
/// one-line message; a failed shell command keeps its usual shape (exit code,
/// output, flags) with `is_error` set. `spec/tools.md` lists each tool's
/// shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// What the model sees: a JSON object.
    pub output: Value,
    /// Whether the call failed (the model should read `output` and react).
    pub is_error: bool,
    /// Whether the tool could not run at all (it panicked, or the shell
    /// could not start, as when the workspace is gone): not something the
    /// model did wrong. An executor should end the turn as failed.
    pub broken: bool,
}

impl ToolOutput {
    /// A failure the model can read: `{"error": message}` with `is_error`
    /// set.
    ///
    /// Executors may use it for calls they refuse themselves (a parse error,
    /// a denied approval), so every failure has the same shape.
    pub fn error(message: impl Into<String>) -> ToolOutput {
        ToolOutput {
            output: json!({ "error": message.into() }),
            is_error: true,
            broken: false,
        }
    }

    /// A tool that could not run at all (see [`ToolOutput::broken`]), with
    /// the same shape as [`ToolOutput::error`].
    pub fn broken(message: impl Into<String>) -> ToolOutput {
        ToolOutput {
            broken: true,
            ..ToolOutput::error(message)
        }
    }

    /// A successful call's output.
    pub(crate) fn success(output: Value) -> ToolOutput {
        ToolOutput {
            output,
            is_error: false,
            broken: false,
        }
    }

    /// A call that was cancelled before it produced anything to show.
    pub(crate) fn cancelled() -> ToolOutput {
        ToolOutput {
            output: json!({ "error": "cancelled", "cancelled": true }),
            is_error: true,
            broken: false,
        }
    }
}

/// Why a file tool did not produce an output.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A one-line message for the model.
    Message(String),
    /// The call's cancellation token fired.
    Cancelled,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Message(message)
    }
}
