//! Calls: the typed form of a tool's arguments, and their validation.
//!
//! Validation is written out by hand rather than derived with serde, so each
//! mistake a model can make gets its own one-line message naming the tool
//! and the field.

use serde_json::{Map, Value};

use crate::ToolError;

/// What a call needs, so the executor can ask for approval before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reads files in the workspace: `read_file`, `list_files`, `grep`.
    Read,
    /// Creates or changes files in the workspace: `write_file`, `edit_file`.
    Write,
    /// Runs a command, which may do anything the user running exo can:
    /// `shell`.
    Shell,
}

/// What a call to the tool named `name` needs, or `None` for an unknown tool.
pub fn access(name: &str) -> Option<Access> {
    match name {
        "shell" => Some(Access::Shell),
        "read_file" | "list_files" | "grep" => Some(Access::Read),
        "write_file" | "edit_file" => Some(Access::Write),
        _ => None,
    }
}

/// A validated call: the tool and its arguments.
///
/// Made by [`parse`] from what a model sent, or directly by an executor.
/// [`run`](crate::run) checks what the schema cannot (paths, an empty
/// command) again, so a `Call` built by hand is safe to run too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `shell {command, timeout_ms?}`.
    Shell {
        /// The command line, run with `sh -c`.
        command: String,
        /// How long it may run, in milliseconds; `None` for
        /// [`Limits::default_timeout`](crate::Limits::default_timeout).
        timeout_ms: Option<u64>,
    },
    /// `read_file {path}`.
    ReadFile {
        /// The file, relative to the workspace root or absolute inside it.
        path: String,
    },
    /// `write_file {path, content}`.
    WriteFile {
        /// The file, relative to the workspace root or absolute inside it.
        path: String,
        /// The file's whole new content.
        content: String,
    },
    /// `edit_file {path, old_string, new_string}`.
    EditFile {
        /// The file, relative to the workspace root or absolute inside it.
        path: String,
        /// The text to replace; must occur exactly once.
        old_string: String,
        /// What replaces it.
        new_string: String,
    },
    /// `list_files {path?, pattern?}`.
    ListFiles {
        /// The directory to list; the workspace root when `None`.
        path: Option<String>,
        /// A glob the listed paths must match.
        pattern: Option<String>,
    },
    /// `grep {pattern, path?}`.
    Grep {
        /// A regular expression (the `regex` crate's syntax).
        pattern: String,
        /// The directory or file to search; the workspace root when `None`.
        path: Option<String>,
    },
}

impl Call {
    /// The tool's name, as in [`specs`](crate::specs).
    pub fn name(&self) -> &'static str {
        match self {
            Call::Shell { .. } => "shell",
            Call::ReadFile { .. } => "read_file",
            Call::WriteFile { .. } => "write_file",
            Call::EditFile { .. } => "edit_file",
            Call::ListFiles { .. } => "list_files",
            Call::Grep { .. } => "grep",
        }
    }

    /// What the call needs (see [`access`]).
    pub fn access(&self) -> Access {
        match self {
            Call::Shell { .. } => Access::Shell,
            Call::ReadFile { .. } | Call::ListFiles { .. } | Call::Grep { .. } => Access::Read,
            Call::WriteFile { .. } | Call::EditFile { .. } => Access::Write,
        }
    }
}

/// Validates a call's arguments against the tool's fixed schema without
/// running it.
///
/// `arguments` must be a JSON object (`null` counts as `{}`). An unknown
/// tool, a missing required field, a field of the wrong type, an empty
/// string where one is not allowed, or a field the schema does not name each
/// give a one-line [`ToolError`]. An optional field given as `null` counts as
/// absent (as OpenAI's strict mode sends them).
pub fn parse(name: &str, arguments: &Value) -> Result<Call, ToolError> {
    let Some(tool) = crate::TOOL_NAMES.iter().copied().find(|tool| *tool == name) else {
        return Err(ToolError::UnknownTool {
            name: name.to_owned(),
        });
    };
    let empty = Map::new();
    let object = match arguments {
        Value::Object(object) => object,
        Value::Null => &empty,
        other => {
            return Err(invalid(
                tool,
                format!("arguments must be a JSON object, not {}", json_type(other)),
            ))
        }
    };
    let fields = fields(tool);
    if let Some(unknown) = object.keys().find(|key| !fields.contains(&key.as_str())) {
        return Err(invalid(
            tool,
            format!(
                "unknown field {unknown:?}; the fields are {}",
                fields.join(", ")
            ),
        ));
    }
    let arguments = Arguments { tool, object };
    Ok(match tool {
        "shell" => Call::Shell {
            command: arguments.string("command", NonEmpty::Yes)?,
            timeout_ms: arguments.optional_positive_integer("timeout_ms")?,
        },
        "read_file" => Call::ReadFile {
            path: arguments.string("path", NonEmpty::Yes)?,
        },
        "write_file" => Call::WriteFile {
            path: arguments.string("path", NonEmpty::Yes)?,
            content: arguments.string("content", NonEmpty::No)?,
        },
        "edit_file" => Call::EditFile {
            path: arguments.string("path", NonEmpty::Yes)?,
            old_string: arguments.string("old_string", NonEmpty::Yes)?,
            new_string: arguments.string("new_string", NonEmpty::No)?,
        },
        "list_files" => Call::ListFiles {
            path: arguments.optional_string("path")?,
            pattern: arguments.optional_string("pattern")?,
        },
        _ => Call::Grep {
            pattern: arguments.string("pattern", NonEmpty::Yes)?,
            path: arguments.optional_string("path")?,
        },
    })
}

/// Every field a tool's schema names, in schema order.
fn fields(tool: &str) -> &'static [&'static str] {
    match tool {
        "shell" => &["command", "timeout_ms"],
        "read_file" => &["path"],
        "write_file" => &["path", "content"],
        "edit_file" => &["path", "old_string", "new_string"],
        "list_files" => &["path", "pattern"],
        _ => &["pattern", "path"],
    }
}

/// Whether an empty string is refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NonEmpty {
    Yes,
    No,
}

/// A call's argument object, with the tool's name for messages.
struct Arguments<'a> {
    tool: &'static str,
    object: &'a Map<String, Value>,
}

impl Arguments<'_> {
    fn string(&self, field: &str, non_empty: NonEmpty) -> Result<String, ToolError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Err(invalid(
                self.tool,
                format!("missing required field {field:?}"),
            )),
            Some(value) => self.check_string(field, value, non_empty),
        }
    }

    fn optional_string(&self, field: &str) -> Result<Option<String>, ToolError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => self.check_string(field, value, NonEmpty::Yes).map(Some),
        }
    }

    fn check_string(
        &self,
        field: &str,
        value: &Value,
        non_empty: NonEmpty,
    ) -> Result<String, ToolError> {
        match value {
            Value::String(text) if text.is_empty() && non_empty == NonEmpty::Yes => Err(invalid(
                self.tool,
                format!("field {field:?} must not be empty"),
            )),
            Value::String(text) => Ok(text.clone()),
            other => Err(invalid(
                self.tool,
                format!("field {field:?} must be a string, not {}", json_type(other)),
            )),
        }
    }

    fn optional_positive_integer(&self, field: &str) -> Result<Option<u64>, ToolError> {
        let value = match self.object.get(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(value) => value,
        };
        let wrong = || {
            invalid(
                self.tool,
                format!(
                    "field {field:?} must be a positive integer, not {}",
                    describe(value)
                ),
            )
        };
        let Value::Number(number) = value else {
            return Err(wrong());
        };
        // Some models write integers as floats (`5000.0`); take those too.
        let integer = match number.as_u64() {
            Some(integer) => integer,
            None => match number.as_f64() {
                Some(float) if float.fract() == 0.0 && float >= 1.0 && float <= u64::MAX as f64 => {
                    float as u64
                }
                _ => return Err(wrong()),
            },
        };
        if integer == 0 {
            return Err(wrong());
        }
        Ok(Some(integer))
    }
}

fn invalid(tool: &'static str, message: String) -> ToolError {
    ToolError::InvalidArguments { tool, message }
}

/// A JSON value's type, as JSON Schema names it, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for a message: numbers as they are, other values by type, so a
/// message never repeats a long string.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(number) => number.to_string(),
        other => json_type(other).to_owned(),
    }
}
