//! The tools as a model sees them: names, descriptions and JSON Schemas.
//!
//! The schemas keep to the subset every model API accepts: `type: object`,
//! `properties` with `type`, `description` and `minLength`/`minimum`,
//! `required`, and `additionalProperties: false`. [`parse`](crate::parse)
//! enforces exactly these schemas.

use serde_json::{json, Value};

use crate::Limits;

/// One tool as offered to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The tool's name, fixed (models and scripts see it).
    pub name: &'static str,
    /// What the tool does, written for a model.
    pub description: String,
    /// The arguments' JSON Schema (draft 2020-12): an object with
    /// `properties`, `required` and `additionalProperties: false`.
    pub parameters: Value,
}

/// The six tools, in a stable order (that of [`TOOL_NAMES`](crate::TOOL_NAMES)),
/// described with the default [`Limits`].
pub fn specs() -> Vec<ToolSpec> {
    specs_for(&Limits::default())
}

/// The six tools, described with the limits the executor will run them with
/// (the descriptions state timeouts and caps).
pub fn specs_for(limits: &Limits) -> Vec<ToolSpec> {
    let default_timeout_ms = limits.default_timeout.as_millis();
    let max_timeout_ms = limits.max_timeout.as_millis();
    let output_cap = bytes(limits.max_output_bytes as u64);
    let read_cap = bytes(limits.max_read_bytes);
    let max_matches = limits.max_matches;
    vec![
        ToolSpec {
            name: "shell",
            description: format!(
                "Run a shell command with `sh -c` in the workspace root and return its exit code, stdout and stderr. \
                 stdin is empty, and the environment holds only basic variables (PATH, HOME, LANG, ...): no credentials. \
                 The command is killed after timeout_ms milliseconds (default {default_timeout_ms}, at most {max_timeout_ms}). \
                 When it exits, times out or is cancelled, every process it started in its process group is killed, so background jobs (`cmd &`) do not outlive it. \
                 stdout and stderr each return at most {output_cap}; longer output keeps its beginning and end with a marker saying how much was left out, and truncated is true. \
                 A non-zero exit code, a timeout or a cancellation is an error. \
                 Prefer read_file, list_files and grep to look at files, and edit_file or write_file to change them."
            ),
            parameters: object(
                json!({
                    "command": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The command line, run as `sh -c COMMAND` in the workspace root. Pipes, redirections, `&&` and `;` work."
                    },
                    "timeout_ms": {
                        "type": "integer",
                        "minimum": 1,
                        "description": format!("How long the command may run, in milliseconds (default {default_timeout_ms}, at most {max_timeout_ms}; larger values are lowered).")
                    }
                }),
                &["command"],
            ),
        },
        ToolSpec {
            name: "read_file",
            description: format!(
                "Read a UTF-8 text file in the workspace. \
                 Returns {{path, content, truncated, binary, size}}: the whole content, or for a file over {read_cap} its first {read_cap} with truncated true (use grep, or shell with sed -n, for the rest). \
                 A file that is not UTF-8 text (binary) is not returned: content is null and binary is true. \
                 Paths outside the workspace are refused."
            ),
            parameters: object(
                json!({ "path": path_property("The file to read.") }),
                &["path"],
            ),
        },
        ToolSpec {
            name: "write_file",
            description: "Create a file, or replace an existing file's whole content, with `content`; missing parent directories are created. \
                 Returns {path, bytes_written, created}. \
                 To change part of an existing file prefer edit_file, which cannot lose the rest of it. \
                 Paths outside the workspace, and paths inside a .git directory, are refused."
                .to_owned(),
            parameters: object(
                json!({
                    "path": path_property("The file to write."),
                    "content": { "type": "string", "description": "The file's whole new content." }
                }),
                &["path", "content"],
            ),
        },
        ToolSpec {
            name: "edit_file",
            description: "Replace one occurrence of old_string with new_string in an existing UTF-8 text file. \
                 old_string must match the file exactly, including whitespace, indentation and line breaks, and must occur exactly once: \
                 if it is absent, or occurs more than once, the file is left unchanged and the error says so; include more surrounding lines to make it unique. \
                 To change several places, make one call per place. Returns {path, replacements}. \
                 Paths outside the workspace, and paths inside a .git directory, are refused."
                .to_owned(),
            parameters: object(
                json!({
                    "path": path_property("The file to edit."),
                    "old_string": { "type": "string", "minLength": 1, "description": "The exact text to replace; must occur exactly once in the file." },
                    "new_string": { "type": "string", "description": "The text to put in its place (may be empty, to delete old_string)." }
                }),
                &["path", "old_string", "new_string"],
            ),
        },
        ToolSpec {
            name: "list_files",
            description: format!(
                "List the files in the workspace, or below `path`, as paths relative to the workspace root, sorted. \
                 Files ignored by .gitignore (or .ignore, .exoignore, .git/info/exclude) are left out, and so is every .git directory; hidden files are listed; directories are not listed themselves. \
                 `pattern` is a glob: without a '/' it matches file names at any depth (`*.rs`, `Cargo.*`); with a '/' it matches the path relative to `path` (`src/**/*.rs`; `*` stays within one directory, `**` spans any number, `{{a,b}}` and `[abc]` work). \
                 Returns {{files, truncated}}: at most {max_matches} files; truncated true means there are more, so narrow path or pattern."
            ),
            parameters: object(
                json!({
                    "path": path_property("The directory to list (default: the workspace root)."),
                    "pattern": { "type": "string", "minLength": 1, "description": "A glob the files must match, e.g. `*.rs` or `src/**/*.rs`." }
                }),
                &[],
            ),
        },
        ToolSpec {
            name: "grep",
            description: format!(
                "Search the contents of files for a regular expression, line by line, in the workspace or below `path` (a directory or one file). \
                 The syntax is Rust's regex crate, as in ripgrep: `(?i)` for case-insensitive, `\\b` word boundaries, `^` and `$` match at each line's start and end; no look-around or backreferences. \
                 Searches the files list_files would list; binary files are skipped. \
                 Returns {{matches: [{{path, line, text}}], truncated}}: line is 1-based, in path order; at most {max_matches} matches, truncated true means there are more."
            ),
            parameters: object(
                json!({
                    "pattern": { "type": "string", "minLength": 1, "description": "The regular expression to search for." },
                    "path": path_property("The directory or file to search (default: the workspace root).")
                }),
                &["pattern"],
            ),
        },
    ]
}

/// The schema of a `path` property.
fn path_property(what: &str) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "description": format!("{what} Relative to the workspace root, or absolute inside it.")
    })
}

/// An object schema with these properties and required fields, and no others.
fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

/// A byte count for a description: `64 KiB`, `1 MiB`, `1000 bytes`.
fn bytes(count: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if count >= MIB && count.is_multiple_of(MIB) {
        format!("{} MiB", count / MIB)
    } else if count >= KIB && count.is_multiple_of(KIB) {
        format!("{} KiB", count / KIB)
    } else {
        format!("{count} bytes")
    }
}
