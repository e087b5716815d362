//! `exo conversation export`: a conversation as Markdown, HTML or JSON lines.
//!
//! The export is a record a person can read or share: the history as of the
//! head (what `conversation events` lists), each turn's messages, tool calls
//! and results, approvals, errors, forks and rewinds, and each turn's file
//! changes as a unified diff (`snapshot/diff` between the turn's
//! `turn_start` and `turn_end` snapshots).
//!
//! - `jsonl`: each event exactly as `conversation events --json` holds it in
//!   its `"events"` array, one compact JSON object per line.
//! - `md`: Markdown. Messages are quoted as they were written (Markdown
//!   themselves), but for raw HTML, which is escaped outside code so that
//!   a renderer passing HTML through (pandoc) shows it as text; everything
//!   else exo shows literally is in fenced blocks whose fence is longer than
//!   any backtick run in the content, so no content closes its block. Names
//!   and notes are backslash-escaped.
//! - `html`: one page with its style inline, no script and no external
//!   resource, under a Content-Security-Policy that allows nothing else;
//!   every piece of content is escaped, so a message holding markup shows it
//!   as text.
//!
//! The output holds nothing that depends on when it was made (no export
//! time), so two exports of the same history are the same bytes.
//!
//! It streams: events are read a page at a time and written as they come,
//! and a turn's diff is asked for when its `turn_end` snapshot is reached
//! (by event id, one lookup each), so time and memory follow the history's
//! length and the largest page, never its square.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use exo_core::{ContentPart, EventData, Role, SnapshotReason, TurnStatus};
use exo_protocol::methods::{
    AgentGet, ConversationGet, EventsList, SnapshotDiff, SnapshotDiffMethod,
};
use exo_protocol::{Agent, Conversation, Event, Method};
use serde_json::{json, Value};

use crate::args::ExportFormat;
use crate::backend::Backend;
use crate::render::short;

/// Writes the export of `conversation` to `output`, or stdout.
pub fn run(
    backend: &mut Backend,
    root: &Path,
    agent: &str,
    conversation: &str,
    format: ExportFormat,
    output: Option<&Path>,
) -> Result<()> {
    if let Some(path) = output {
        crate::files::refuse_inside_root(root, path, "the output file")?;
    }
    let (_, conversation) = backend.call_as::<Conversation>(
        ConversationGet::NAME,
        json!({ "agent": agent, "conversation": conversation }),
    )?;
    let (_, agent) =
        backend.call_as::<Agent>(AgentGet::NAME, json!({ "agent": conversation.agent }))?;
    let mut exporter = Exporter {
        backend,
        conversation: &conversation,
        agent: &agent,
    };
    match output {
        None => {
            let stdout = std::io::stdout();
            let mut writer = BufWriter::new(stdout.lock());
            let written = exporter
                .write(format, &mut writer)
                .and_then(|()| Ok(writer.flush()?));
            match written {
                // A reader that stopped reading (`| head`) is not a failure.
                Err(err) if is_broken_pipe(&err) => Ok(()),
                other => other,
            }
        }
        Some(path) => {
            let mut file = OutputFile::create(path)?;
            match exporter.write(format, file.writer()) {
                Ok(()) => file.commit(),
                Err(err) => {
                    file.discard();
                    Err(err)
                }
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The file `-o FILE` names, written whole: a temporary file beside it,
/// synced and renamed over it (keeping its permissions, and through a
/// symlink replacing the file it leads to), as `artifact get -o` does, but
/// streamed rather than built in memory first. A device or FIFO is written
/// in place.
struct OutputFile {
    path: PathBuf,
    /// The temporary file and the file it replaces; none for a device or
    /// FIFO.
    rename: Option<(PathBuf, PathBuf)>,
    writer: BufWriter<File>,
}

impl OutputFile {
    fn create(path: &Path) -> Result<OutputFile> {
        let context = || format!("writing {}", path.display());
        let target = exo_store::resolve_path(path).with_context(context)?;
        let permissions = match std::fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => bail!("{} is a directory", path.display()),
            Ok(meta) if !meta.is_file() => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .with_context(context)?;
                return Ok(OutputFile {
                    path: path.to_path_buf(),
                    rename: None,
                    writer: BufWriter::new(file),
                });
            }
            Ok(meta) => Some(meta.permissions()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err).with_context(context),
        };
        let (dir, name) = match (target.parent(), target.file_name()) {
            (Some(dir), Some(name)) => (dir, name),
            _ => bail!("{} does not name a file", path.display()),
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let temp = dir.join(format!(
            ".{}.exo-{}-{nanos}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(context)?;
        if let Some(permissions) = permissions {
            if let Err(err) = file.set_permissions(permissions) {
                let _ = std::fs::remove_file(&temp);
                return Err(err).with_context(context);
            }
        }
        Ok(OutputFile {
            path: path.to_path_buf(),
            rename: Some((temp, target)),
            writer: BufWriter::new(file),
        })
    }

    fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.writer
    }

    /// Syncs the temporary file and renames it over the target.
    fn commit(self) -> Result<()> {
        let context = || format!("writing {}", self.path.display());
        let file = self
            .writer
            .into_inner()
            .map_err(|err| err.into_error())
            .with_context(context);
        let done = file.and_then(|file| {
            if let Some((temp, target)) = &self.rename {
                file.sync_all().with_context(context)?;
                std::fs::rename(temp, target).with_context(context)?;
            }
            Ok(())
        });
        if done.is_err() {
            if let Some((temp, _)) = &self.rename {
                let _ = std::fs::remove_file(temp);
            }
        }
        done
    }

    /// Removes the temporary file, leaving the target as it was.
    fn discard(self) {
        if let Some((temp, _)) = &self.rename {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Reads a conversation's history and writes it in one format.
struct Exporter<'a> {
    backend: &'a mut Backend,
    conversation: &'a Conversation,
    agent: &'a Agent,
}

impl Exporter<'_> {
    fn write(&mut self, format: ExportFormat, out: &mut dyn Write) -> Result<()> {
        match format {
            ExportFormat::Jsonl => self.write_jsonl(out),
            ExportFormat::Md => self.write_document(&mut Markdown, out),
            ExportFormat::Html => self.write_document(&mut Html::default(), out),
        }
    }

    /// Calls `each` with every event of the history, oldest first, up to
    /// the head the conversation had when the export began (events
    /// appended meanwhile are left for the next export).
    fn for_each_event(
        &mut self,
        mut each: impl FnMut(&mut Backend, Value) -> Result<()>,
    ) -> Result<()> {
        let head = self.conversation.head.to_string();
        let mut request = json!({
            "agent": self.conversation.agent,
            "conversation": self.conversation.id,
            "limit": exo_store::MAX_PAGE,
        });
        loop {
            let page = self.backend.call(EventsList::NAME, request.clone())?;
            let Value::Object(mut page) = page else {
                bail!("unexpected result from events/list")
            };
            let Some(Value::Array(events)) = page.remove("events") else {
                bail!("unexpected result from events/list: no events")
            };
            for event in events {
                let at_head = event.get("id").and_then(Value::as_str) == Some(head.as_str());
                each(self.backend, event)?;
                if at_head {
                    return Ok(());
                }
            }
            match page.remove("next_cursor") {
                Some(Value::String(cursor)) => request["after"] = Value::String(cursor),
                _ => return Ok(()),
            }
        }
    }

    fn write_jsonl(&mut self, out: &mut dyn Write) -> Result<()> {
        self.for_each_event(|_, event| {
            // Encoded first, so a failed write is the io::Error itself (a
            // broken pipe is then recognised as one).
            let mut line = serde_json::to_vec(&event)?;
            line.push(b'\n');
            out.write_all(&line)?;
            Ok(())
        })
    }

    fn write_document(&mut self, format: &mut dyn Format, out: &mut dyn Write) -> Result<()> {
        format.header(out, self.conversation, self.agent)?;
        let mut turns = Turns::new(self.conversation);
        self.for_each_event(|backend, value| {
            let event: Event = serde_json::from_value(value)
                .map_err(|err| anyhow!("unexpected event from events/list: {err}"))?;
            for block in turns.blocks(backend, &event) {
                format.block(out, &block)?;
            }
            Ok(())
        })?;
        format.footer(out)?;
        Ok(())
    }
}

/// What a document shows, in order: the events turned into what a reader
/// wants to see, the same for every format.
enum Block<'a> {
    TurnStarted {
        number: u64,
        at: &'a str,
    },
    Message {
        role: Role,
        content: &'a [ContentPart],
        model: Option<&'a str>,
    },
    ToolCall {
        name: &'a str,
        call_id: &'a str,
        arguments: &'a Value,
    },
    ToolResult {
        /// The tool's name, from its call, when the call is in this turn.
        tool: Option<String>,
        call_id: &'a str,
        output: &'a Value,
        is_error: bool,
    },
    Approval {
        tool: String,
        approved: bool,
        decision: String,
        by: String,
    },
    Error {
        message: &'a str,
        code: Option<&'a str>,
    },
    /// One line about what happened (a fork, a rewind, a snapshot).
    Note(String),
    /// A line, then text shown as it is (a custom event's payload).
    Data {
        title: String,
        body: String,
    },
    /// A turn's file changes.
    Files(FileChanges),
    TurnEnded {
        status: TurnStatus,
    },
}

enum FileChanges {
    Diff(SnapshotDiff),
    /// The diff could not be had (a snapshot of another workspace, a
    /// conversation no longer bound to one): why, and the end snapshot's
    /// counts.
    Unavailable {
        why: String,
        added: u64,
        modified: u64,
        deleted: u64,
    },
}

/// Follows turns through the events: numbers them, pairs tool results with
/// their calls, and asks for each turn's diff when its end snapshot comes.
struct Turns {
    agent: String,
    conversation: String,
    bound: bool,
    turns_started: u64,
    /// The last `turn_start` snapshot: its event id and tree.
    turn_start: Option<(String, String)>,
    /// Tool names by call id, for the current turn.
    tool_names: HashMap<String, String>,
}

impl Turns {
    fn new(conversation: &Conversation) -> Turns {
        Turns {
            agent: conversation.agent.to_string(),
            conversation: conversation.id.to_string(),
            bound: conversation.workspace.is_some(),
            turns_started: 0,
            turn_start: None,
            tool_names: HashMap::new(),
        }
    }

    fn blocks<'e>(&mut self, backend: &mut Backend, event: &'e Event) -> Vec<Block<'e>> {
        let block = match &event.data {
            EventData::ConversationCreated { name, .. } => {
                Block::Note(format!("Conversation \u{201c}{name}\u{201d} created"))
            }
            EventData::SessionStarted {} | EventData::SessionEnded { .. } => return Vec::new(),
            EventData::TurnStarted {} => {
                self.turns_started += 1;
                self.turn_start = None;
                self.tool_names.clear();
                Block::TurnStarted {
                    number: self.turns_started,
                    at: &event.created_at,
                }
            }
            EventData::TurnEnded { status } => {
                self.turn_start = None;
                self.tool_names.clear();
                Block::TurnEnded { status: *status }
            }
            EventData::Message {
                role,
                content,
                model,
                ..
            } => Block::Message {
                role: *role,
                content,
                model: model.as_deref(),
            },
            EventData::ToolCall {
                call_id,
                name,
                arguments,
            } => {
                self.tool_names.insert(call_id.clone(), name.clone());
                Block::ToolCall {
                    name,
                    call_id,
                    arguments,
                }
            }
            EventData::ToolResult {
                call_id,
                output,
                is_error,
            } => Block::ToolResult {
                tool: self.tool_names.get(call_id).cloned(),
                call_id,
                output,
                is_error: *is_error,
            },
            EventData::ArtifactWritten {
                path,
                version,
                size,
                ..
            } => Block::Note(format!(
                "Artifact {path} version {version} written ({size} bytes)"
            )),
            EventData::Error { message, code } => Block::Error {
                message,
                code: code.as_deref(),
            },
            EventData::Forked {
                from_conversation,
                from_event,
            } => Block::Note(format!(
                "Forked from conversation {from_conversation} at event {from_event}"
            )),
            EventData::Rewound {
                from_event,
                to_event,
                snapshot,
            } => Block::Note(match snapshot {
                Some(snapshot) => format!(
                    "Rewound: the head moved from event {from_event} to event {to_event}, and the files back to snapshot {}",
                    short(snapshot)
                ),
                None => format!(
                    "Rewound: the head moved from event {from_event} to event {to_event}"
                ),
            }),
            EventData::SecretSet { name, .. } => {
                Block::Note(format!("Secret {name} set for this conversation"))
            }
            EventData::SecretDeleted { name } => {
                Block::Note(format!("Secret {name} deleted from this conversation"))
            }
            EventData::BindingSet { binding } => Block::Note(format!(
                "Binding {} {} set for this conversation",
                binding.kind(),
                binding.name()
            )),
            EventData::BindingDeleted { binding_kind, name } => Block::Note(format!(
                "Binding {binding_kind} {name} deleted from this conversation"
            )),
            EventData::WorkspaceSnapshot {
                commit,
                tree,
                reason,
                added,
                modified,
                deleted,
                ..
            } => {
                let counts = format!("+{added} ~{modified} -{deleted}");
                match reason {
                    SnapshotReason::TurnStart => {
                        self.turn_start = Some((event.id.to_string(), tree.clone()));
                        return Vec::new();
                    }
                    SnapshotReason::TurnEnd => match self.turn_start.take() {
                        Some((start, start_tree)) => Block::Files(self.diff(
                            backend,
                            &start,
                            &start_tree,
                            &event.id.to_string(),
                            tree,
                            (*added, *modified, *deleted),
                        )),
                        None => Block::Note(format!(
                            "Snapshot {} at the end of the turn: {counts}",
                            short(commit)
                        )),
                    },
                    SnapshotReason::Manual => {
                        Block::Note(format!("Snapshot {} taken: {counts}", short(commit)))
                    }
                    SnapshotReason::Safety => Block::Note(format!(
                        "Safety snapshot {} taken before restoring files: {counts}",
                        short(commit)
                    )),
                    SnapshotReason::Restore => Block::Note(format!(
                        "Files restored to snapshot {}: {added} added, {modified} rewritten, {deleted} removed",
                        short(commit)
                    )),
                    SnapshotReason::Fork => Block::Note(format!(
                        "Files of the fork's workspace written from snapshot {}",
                        short(commit)
                    )),
                }
            }
            EventData::Custom {
                custom_type,
                payload,
            } => custom_block(custom_type, payload),
            EventData::Other(raw) => {
                let fields: serde_json::Map<String, Value> = raw
                    .fields()
                    .iter()
                    .filter(|(name, _)| *name != "kind")
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                Block::Data {
                    title: format!(
                        "Event of kind {} (one this exo does not know)",
                        raw.kind()
                    ),
                    body: pretty(&Value::Object(fields)),
                }
            }
        };
        vec![block]
    }

    /// The changes between a turn's start and end snapshots.
    fn diff(
        &self,
        backend: &mut Backend,
        start: &str,
        start_tree: &str,
        end: &str,
        end_tree: &str,
        (added, modified, deleted): (u64, u64, u64),
    ) -> FileChanges {
        if start_tree == end_tree {
            // The same tree: nothing changed, and nothing to ask.
            return FileChanges::Diff(SnapshotDiff {
                from: start.to_owned(),
                to: Some(end.to_owned()),
                changes: Vec::new(),
                diff: Some(String::new()),
            });
        }
        let unavailable = |why: String| FileChanges::Unavailable {
            why,
            added,
            modified,
            deleted,
        };
        if !self.bound {
            return unavailable("the conversation is not bound to a workspace now".into());
        }
        let request = json!({
            "agent": self.agent,
            "conversation": self.conversation,
            "from": start,
            "to": end,
            "unified": true,
        });
        match backend.call_as::<SnapshotDiff>(SnapshotDiffMethod::NAME, request) {
            Ok((_, diff)) => FileChanges::Diff(diff),
            Err(err) => unavailable(format!("{err:#}")),
        }
    }
}

/// A `custom` event: approvals and compactions as exo means them, others
/// as their type and payload.
fn custom_block<'a>(custom_type: &str, payload: &Value) -> Block<'a> {
    let text = |name: &str| {
        payload
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    match custom_type {
        "exo.approval" => Block::Approval {
            tool: text("tool"),
            approved: payload.get("approved").and_then(Value::as_bool) == Some(true),
            decision: text("decision"),
            by: text("by"),
        },
        "exo.compaction" => match payload.get("summary").and_then(Value::as_str) {
            Some(summary) => Block::Data {
                title:
                    "History compacted; later turns see this summary in place of what came before"
                        .into(),
                body: summary.to_owned(),
            },
            None => Block::Note(format!(
                "History compacted; the summary is artifact {}",
                text("artifact")
            )),
        },
        _ => Block::Data {
            title: format!("Custom event {custom_type}"),
            body: pretty(payload),
        },
    }
}

/// JSON, indented.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A tool's output as a reader wants it: a string as it is; an object's
/// fields one per line, a multi-line string field (a command's stdout, a
/// file's content) as its lines, indented; anything else as indented JSON.
fn readable(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(fields) if !fields.is_empty() => {
            let mut out = String::new();
            for (name, field) in fields {
                match field {
                    Value::String(text) if text.contains('\n') => {
                        out.push_str(name);
                        out.push_str(":\n");
                        for line in text.lines() {
                            out.push_str("  ");
                            out.push_str(line);
                            out.push('\n');
                        }
                    }
                    other => {
                        out.push_str(name);
                        out.push_str(": ");
                        out.push_str(&other.to_string());
                        out.push('\n');
                    }
                }
            }
            out
        }
        other => pretty(other),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "System",
        Role::User => "User",
        Role::Assistant => "Assistant",
    }
}

fn status_text(status: TurnStatus) -> &'static str {
    match status {
        TurnStatus::Completed => "Turn completed",
        TurnStatus::Failed => "Turn failed",
        TurnStatus::Cancelled => "Turn cancelled",
        TurnStatus::Interrupted => "Turn interrupted (its process ended before it did)",
        TurnStatus::MaxRounds => "Turn stopped at its round limit",
    }
}

fn approval_text(approved: bool, decision: &str, by: &str) -> String {
    let verdict = if approved { "allowed" } else { "denied" };
    let by = match by {
        "policy" => "by the agent's policy",
        "user" => "by the user",
        "no_client" => "no one could be asked",
        "permission" => "by an earlier permission",
        other => other,
    };
    format!("{verdict} ({decision}, {by})")
}

/// An output format: a header, the blocks, a footer.
trait Format {
    fn header(
        &mut self,
        out: &mut dyn Write,
        conversation: &Conversation,
        agent: &Agent,
    ) -> std::io::Result<()>;
    fn block(&mut self, out: &mut dyn Write, block: &Block) -> std::io::Result<()>;
    fn footer(&mut self, out: &mut dyn Write) -> std::io::Result<()>;
}

/// Markdown (CommonMark).
struct Markdown;

impl Markdown {
    /// `body` in a fenced block whose fence is longer than any run of
    /// backticks in it, so nothing in it can end the block.
    fn fenced(out: &mut dyn Write, info: &str, body: &str) -> std::io::Result<()> {
        let fence = "`".repeat((longest_run(body, '`') + 1).max(3));
        writeln!(out, "{fence}{info}")?;
        out.write_all(body.as_bytes())?;
        if !body.is_empty() && !body.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        writeln!(out, "{fence}\n")
    }

    /// `text` as a block quote: every line quoted, so a fence opened in it
    /// ends with the quote.
    fn quoted(out: &mut dyn Write, prefix: &str, text: &str) -> std::io::Result<()> {
        for line in text.lines() {
            if line.is_empty() {
                writeln!(out, "{}", prefix.trim_end())?;
            } else {
                writeln!(out, "{prefix}{line}")?;
            }
        }
        Ok(())
    }
}

impl Format for Markdown {
    fn header(
        &mut self,
        out: &mut dyn Write,
        conversation: &Conversation,
        agent: &Agent,
    ) -> std::io::Result<()> {
        writeln!(out, "# {}\n", md_inline(&conversation.name))?;
        writeln!(
            out,
            "- Agent: {} ({})",
            md_inline(&agent.name),
            code_span(&agent.slug)
        )?;
        writeln!(
            out,
            "- Conversation: {} ({})",
            code_span(&conversation.slug),
            conversation.id
        )?;
        if let Some(workspace) = &conversation.workspace {
            writeln!(out, "- Workspace: {}", code_span(workspace))?;
        }
        if let Some(from) = &conversation.forked_from {
            writeln!(
                out,
                "- Forked from: conversation {} at event {}",
                from.conversation, from.event
            )?;
        }
        writeln!(out, "- Events: {}", conversation.length)?;
        writeln!(out, "- Created: {}\n", conversation.created_at)
    }

    fn block(&mut self, out: &mut dyn Write, block: &Block) -> std::io::Result<()> {
        match block {
            Block::TurnStarted { number, at } => writeln!(out, "## Turn {number}\n\n*{at}*\n"),
            Block::TurnEnded { status } => writeln!(out, "*{}.*\n", status_text(*status)),
            Block::Message {
                role,
                content,
                model,
            } => {
                match model {
                    Some(model) => {
                        writeln!(out, "**{}** ({})\n", role_name(*role), code_span(model))?
                    }
                    None => writeln!(out, "**{}**\n", role_name(*role))?,
                }
                if content.is_empty() {
                    writeln!(out, "> *(empty)*")?;
                }
                for (index, part) in content.iter().enumerate() {
                    if index > 0 {
                        writeln!(out, ">")?;
                    }
                    match part {
                        ContentPart::Text { text } => {
                            Self::quoted(out, "> ", &md_without_html(text))?
                        }
                        ContentPart::Reasoning { text } => {
                            writeln!(out, "> *Reasoning:*\n>")?;
                            Self::quoted(out, "> > ", &md_without_html(text))?;
                        }
                        ContentPart::Image { media_type, data } => writeln!(
                            out,
                            "> *[image: {}, {} bytes of base64]*",
                            md_inline(media_type),
                            data.len()
                        )?,
                    }
                }
                writeln!(out)
            }
            Block::ToolCall {
                name,
                call_id,
                arguments,
            } => {
                writeln!(
                    out,
                    "**Tool call** {} ({})\n",
                    code_span(name),
                    code_span(call_id)
                )?;
                Self::fenced(out, "json", &pretty(arguments))
            }
            Block::ToolResult {
                tool,
                call_id,
                output,
                is_error,
            } => {
                let what = if *is_error { "Error result" } else { "Result" };
                match tool {
                    Some(tool) => writeln!(
                        out,
                        "**{what}** of {} ({})\n",
                        code_span(tool),
                        code_span(call_id)
                    )?,
                    None => writeln!(out, "**{what}** ({})\n", code_span(call_id))?,
                }
                Self::fenced(out, "text", &readable(output))
            }
            Block::Approval {
                tool,
                approved,
                decision,
                by,
            } => writeln!(
                out,
                "*Approval:* {} {}\n",
                code_span(tool),
                md_inline(&approval_text(*approved, decision, by))
            ),
            Block::Error { message, code } => match code {
                Some(code) => writeln!(
                    out,
                    "**Error** ({}): {}\n",
                    code_span(code),
                    md_inline(message)
                ),
                None => writeln!(out, "**Error**: {}\n", md_inline(message)),
            },
            Block::Note(text) => writeln!(out, "*{}*\n", md_inline(text)),
            Block::Data { title, body } => {
                writeln!(out, "*{}:*\n", md_inline(title))?;
                Self::fenced(out, "text", body)
            }
            Block::Files(FileChanges::Diff(diff)) => {
                if diff.changes.is_empty() {
                    return writeln!(out, "*No file changes.*\n");
                }
                writeln!(out, "**File changes**\n")?;
                for change in &diff.changes {
                    writeln!(out, "- {} {}", change.change, code_span(&change.path))?;
                }
                writeln!(out)?;
                match &diff.diff {
                    Some(text) if !text.is_empty() => Self::fenced(out, "diff", text),
                    _ => Ok(()),
                }
            }
            Block::Files(FileChanges::Unavailable {
                why,
                added,
                modified,
                deleted,
            }) => writeln!(
                out,
                "*File changes: +{added} ~{modified} -{deleted} (no diff: {})*\n",
                md_inline(why)
            ),
        }
    }

    fn footer(&mut self, _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }
}

/// The longest run of `c` in `text`.
fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for ch in text.chars() {
        run = if ch == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// `text` as a Markdown code span: delimited by more backticks than any run
/// in it, padded when it starts or ends with one, on one line.
fn code_span(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
    let ticks = "`".repeat(longest_run(&text, '`') + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// `text` as Markdown inline text, shown literally: one line, every ASCII
/// punctuation character that could mean something escaped.
fn md_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '!' | '|' | '~' | '&' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Markdown `text` with its raw HTML made text: outside fenced code and
/// code spans, a `<` that could open a tag, a comment or a declaration is
/// backslash-escaped (CommonMark then shows it as `<`). Code is left as it
/// is, where `<` is shown literally anyway. A code span running over
/// several lines is taken as ended with its line (its `<` would then show
/// a backslash: text shown, never markup run).
fn md_without_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The fence character and length of the fenced code block we are in.
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let run = |c: char| trimmed.chars().take_while(|&ch| ch == c).count();
        if let Some((c, length)) = fence {
            out.push_str(line);
            if indent <= 3 && run(c) >= length && trimmed[run(c)..].trim().is_empty() {
                fence = None;
            }
            continue;
        }
        if indent <= 3 {
            let opens = ['`', '~']
                .into_iter()
                .find(|&c| run(c) >= 3 && !(c == '`' && trimmed[run(c)..].contains('`')));
            if let Some(c) = opens {
                fence = Some((c, run(c)));
                out.push_str(line);
                continue;
            }
        }
        escape_line_html(line, &mut out);
    }
    out
}

/// One line of Markdown onto `out`, its tag-opening `<` escaped outside
/// code spans. As in CommonMark, a backslash escapes the character after it
/// (so an escaped backtick opens no span) but not inside a span (a span
/// ends at the next run of exactly as many backticks, backslash or not).
/// O(n log n): the backtick runs are found once, and a span's end by binary
/// search among the runs of its length.
fn escape_line_html(line: &str, out: &mut String) {
    let chars: Vec<char> = line.chars().collect();
    let run_at = |index: usize| chars[index..].iter().take_while(|&&c| c == '`').count();
    // The starts of the line's backtick runs, by length, in order.
    let mut runs: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut index = 0;
    while index < chars.len() {
        if chars[index] == '`' {
            let length = run_at(index);
            runs.entry(length).or_default().push(index);
            index += length;
        } else {
            index += 1;
        }
    }
    let mut index = 0;
    while index < chars.len() {
        match chars[index] {
            // An escape pair stays as it is (`\<` is already text).
            '\\' => {
                out.extend(&chars[index..(index + 2).min(chars.len())]);
                index += 2;
            }
            '`' => {
                let length = run_at(index);
                let closing = runs.get(&length).and_then(|starts| {
                    let next = starts.partition_point(|&start| start < index + length);
                    starts.get(next).map(|&start| start + length)
                });
                let stop = closing.unwrap_or(index + length);
                out.extend(&chars[index..stop]);
                index = stop;
            }
            '<' if chars.get(index + 1).is_some_and(|&next| {
                next.is_ascii_alphabetic() || matches!(next, '/' | '!' | '?')
            }) =>
            {
                out.push_str("\\<");
                index += 1;
            }
            c => {
                out.push(c);
                index += 1;
            }
        }
    }
}

/// One HTML page: inline style, no script, nothing fetched.
#[derive(Default)]
struct Html {
    /// Whether a turn's `<section>` is open.
    in_turn: bool,
}

/// The page's style: readable on screen and on paper, light or dark.
const HTML_STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--box:#f6f8fa;--line:#d1d9e0;\
--add:#1a7f37;--add-bg:#dafbe1;--del:#cf222e;--del-bg:#ffebe9;--hunk:#0969da}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--box:#161b22;\
--line:#3d444d;--add:#3fb950;--add-bg:#12261e;--del:#f85149;--del-bg:#25171c;--hunk:#4493f8}}\
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif}\
main{max-width:60rem;margin:0 auto;padding:1.5rem}\
h1{margin:0 0 .5rem}h2{font-size:1.2rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}\
.meta{color:var(--muted);margin:0;padding:0;list-style:none}\
.turn{margin:2rem 0}.time{color:var(--muted);font-weight:normal;font-size:.85rem;margin-left:.5rem}\
.msg{border:1px solid var(--line);border-radius:6px;margin:.75rem 0;padding:.5rem .75rem}\
.msg.user{background:var(--box)}.role{font-weight:600;font-size:.85rem;color:var(--muted)}\
.text{white-space:pre-wrap;overflow-wrap:anywhere}\
.reasoning{color:var(--muted);font-style:italic}\
pre{background:var(--box);border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem;\
overflow-x:auto;margin:.25rem 0 .75rem;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
.label{font-size:.9rem;margin-top:.75rem}.error .label,.err{color:var(--del)}\
.note,.status{color:var(--muted);font-style:italic;margin:.5rem 0}\
.diff .add{color:var(--add);background:var(--add-bg)}.diff .del{color:var(--del);background:var(--del-bg)}\
.diff .hunk{color:var(--hunk)}.diff .head{font-weight:600}\
.diff span{display:inline-block;min-width:100%}";

/// The Content-Security-Policy: no script, no fetch of any kind, styles
/// only from the page itself.
const HTML_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

impl Html {
    fn close_turn(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.in_turn {
            self.in_turn = false;
            writeln!(out, "</section>")?;
        }
        Ok(())
    }

    fn pre(out: &mut dyn Write, body: &str) -> std::io::Result<()> {
        writeln!(out, "<pre>{}</pre>", escape(body))
    }
}

impl Format for Html {
    fn header(
        &mut self,
        out: &mut dyn Write,
        conversation: &Conversation,
        agent: &Agent,
    ) -> std::io::Result<()> {
        writeln!(out, "<!DOCTYPE html>")?;
        writeln!(out, "<html lang=\"en\">")?;
        writeln!(out, "<head>")?;
        writeln!(out, "<meta charset=\"utf-8\">")?;
        writeln!(
            out,
            "<meta http-equiv=\"Content-Security-Policy\" content=\"{HTML_POLICY}\">"
        )?;
        writeln!(out, "<meta name=\"referrer\" content=\"no-referrer\">")?;
        writeln!(
            out,
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        )?;
        writeln!(
            out,
            "<title>{} \u{2014} exo conversation</title>",
            escape(&conversation.name)
        )?;
        writeln!(out, "<style>{HTML_STYLE}</style>")?;
        writeln!(out, "</head>")?;
        writeln!(out, "<body>")?;
        writeln!(out, "<main>")?;
        writeln!(out, "<header>")?;
        writeln!(out, "<h1>{}</h1>", escape(&conversation.name))?;
        writeln!(out, "<ul class=\"meta\">")?;
        writeln!(
            out,
            "<li>Agent: {} (<code>{}</code>)</li>",
            escape(&agent.name),
            escape(&agent.slug)
        )?;
        writeln!(
            out,
            "<li>Conversation: <code>{}</code> ({})</li>",
            escape(&conversation.slug),
            conversation.id
        )?;
        if let Some(workspace) = &conversation.workspace {
            writeln!(
                out,
                "<li>Workspace: <code>{}</code></li>",
                escape(workspace)
            )?;
        }
        if let Some(from) = &conversation.forked_from {
            writeln!(
                out,
                "<li>Forked from: conversation {} at event {}</li>",
                from.conversation, from.event
            )?;
        }
        writeln!(out, "<li>Events: {}</li>", conversation.length)?;
        writeln!(
            out,
            "<li>Created: {}</li>",
            escape(&conversation.created_at)
        )?;
        writeln!(out, "</ul>")?;
        writeln!(out, "</header>")
    }

    fn block(&mut self, out: &mut dyn Write, block: &Block) -> std::io::Result<()> {
        match block {
            Block::TurnStarted { number, at } => {
                self.close_turn(out)?;
                self.in_turn = true;
                writeln!(
                    out,
                    "<section class=\"turn\">\n<h2>Turn {number}<span class=\"time\">{}</span></h2>",
                    escape(at)
                )
            }
            Block::TurnEnded { status } => {
                writeln!(
                    out,
                    "<p class=\"status {}\">{}.</p>",
                    status.as_str(),
                    status_text(*status)
                )?;
                self.close_turn(out)
            }
            Block::Message {
                role,
                content,
                model,
            } => {
                let class = match role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                writeln!(out, "<article class=\"msg {class}\">")?;
                match model {
                    Some(model) => writeln!(
                        out,
                        "<div class=\"role\">{} <code>{}</code></div>",
                        role_name(*role),
                        escape(model)
                    )?,
                    None => writeln!(out, "<div class=\"role\">{}</div>", role_name(*role))?,
                }
                for part in content.iter() {
                    match part {
                        ContentPart::Text { text } => {
                            writeln!(out, "<div class=\"text\">{}</div>", escape(text))?
                        }
                        ContentPart::Reasoning { text } => writeln!(
                            out,
                            "<div class=\"text reasoning\">Reasoning: {}</div>",
                            escape(text)
                        )?,
                        ContentPart::Image { media_type, data } => writeln!(
                            out,
                            "<div class=\"text reasoning\">[image: {}, {} bytes of base64]</div>",
                            escape(media_type),
                            data.len()
                        )?,
                    }
                }
                writeln!(out, "</article>")
            }
            Block::ToolCall {
                name,
                call_id,
                arguments,
            } => {
                writeln!(
                    out,
                    "<div class=\"label\">Tool call <code>{}</code> <span class=\"time\">{}</span></div>",
                    escape(name),
                    escape(call_id)
                )?;
                Self::pre(out, &pretty(arguments))
            }
            Block::ToolResult {
                tool,
                call_id,
                output,
                is_error,
            } => {
                let (class, what) = if *is_error {
                    ("label err", "Error result")
                } else {
                    ("label", "Result")
                };
                match tool {
                    Some(tool) => writeln!(
                        out,
                        "<div class=\"{class}\">{what} of <code>{}</code> <span class=\"time\">{}</span></div>",
                        escape(tool),
                        escape(call_id)
                    )?,
                    None => writeln!(
                        out,
                        "<div class=\"{class}\">{what} <span class=\"time\">{}</span></div>",
                        escape(call_id)
                    )?,
                }
                Self::pre(out, &readable(output))
            }
            Block::Approval {
                tool,
                approved,
                decision,
                by,
            } => writeln!(
                out,
                "<p class=\"note\">Approval: <code>{}</code> {}</p>",
                escape(tool),
                escape(&approval_text(*approved, decision, by))
            ),
            Block::Error { message, code } => {
                let code = code
                    .map(|code| format!(" (<code>{}</code>)", escape(code)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "<p class=\"err\"><b>Error</b>{code}: {}</p>",
                    escape(message)
                )
            }
            Block::Note(text) => writeln!(out, "<p class=\"note\">{}</p>", escape(text)),
            Block::Data { title, body } => {
                writeln!(out, "<p class=\"note\">{}:</p>", escape(title))?;
                Self::pre(out, body)
            }
            Block::Files(FileChanges::Diff(diff)) => {
                if diff.changes.is_empty() {
                    return writeln!(out, "<p class=\"note\">No file changes.</p>");
                }
                writeln!(out, "<div class=\"label\">File changes</div>\n<ul>")?;
                for change in &diff.changes {
                    writeln!(
                        out,
                        "<li>{} <code>{}</code></li>",
                        escape(&change.change),
                        escape(&change.path)
                    )?;
                }
                writeln!(out, "</ul>")?;
                let Some(text) = diff.diff.as_deref().filter(|text| !text.is_empty()) else {
                    return Ok(());
                };
                write!(out, "<pre class=\"diff\">")?;
                for line in text.lines() {
                    let class = diff_line_class(line);
                    writeln!(out, "<span class=\"{class}\">{}</span>", escape(line))?;
                }
                writeln!(out, "</pre>")
            }
            Block::Files(FileChanges::Unavailable {
                why,
                added,
                modified,
                deleted,
            }) => writeln!(
                out,
                "<p class=\"note\">File changes: +{added} ~{modified} -{deleted} (no diff: {})</p>",
                escape(why)
            ),
        }
    }

    fn footer(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        self.close_turn(out)?;
        writeln!(out, "</main>\n</body>\n</html>")
    }
}

/// The style of a unified diff's line.
fn diff_line_class(line: &str) -> &'static str {
    if line.starts_with("+++ ") || line.starts_with("--- ") || line.starts_with("diff --git ") {
        "head"
    } else if line.starts_with('+') {
        "add"
    } else if line.starts_with('-') {
        "del"
    } else if line.starts_with("@@") {
        "hunk"
    } else {
        "ctx"
    }
}

/// `text` as HTML text or attribute value: markup characters as entities,
/// control characters (but tab and newline) as U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(ch),
            '\r' => {}
            ch if ch.is_control() => out.push('\u{fffd}'),
            ch => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_longer_than_any_backtick_run() {
        let mut out = Vec::new();
        Markdown::fenced(&mut out, "text", "a ```` b\n```\n").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "`````text\na ```` b\n```\n`````\n\n");
    }

    #[test]
    fn code_spans_and_inline_text_show_literally() {
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(md_inline("<b>*x*</b>\nnext"), "\\<b\\>\\*x\\*\\</b\\> next");
    }

    #[test]
    fn raw_html_in_a_message_is_text_but_code_stays_code() {
        let text =
            "<script>x()</script> and `<b>` and \\<i>\n```html\n<div>\n```\n<!-- c --> a < b\n";
        assert_eq!(
            md_without_html(text),
            "\\<script>x()\\</script> and `<b>` and \\<i>\n```html\n<div>\n```\n\\<!-- c --> a < b\n"
        );
        // A backslash does not end a span: this span is `\`, and the
        // `<b>` after it is outside.
        assert_eq!(md_without_html("`\\` <b> `"), "`\\` \\<b> `");
        // An unclosed fence keeps the rest as code (the quote around the
        // message ends it).
        assert_eq!(md_without_html("```\n<b>"), "```\n<b>");
    }

    #[test]
    fn html_escapes_markup_and_control_characters() {
        assert_eq!(
            escape("<img src=x onerror='a()'>&\"\u{0}"),
            "&lt;img src=x onerror=&#39;a()&#39;&gt;&amp;&quot;\u{fffd}"
        );
    }

    #[test]
    fn readable_output_shows_multi_line_fields_as_lines() {
        let output = json!({"exit_code": 0, "stdout": "one\ntwo\n", "stderr": ""});
        assert_eq!(
            readable(&output),
            "exit_code: 0\nstdout:\n  one\n  two\nstderr: \"\"\n"
        );
        assert_eq!(readable(&json!("plain")), "plain");
    }
}
