//! Executors that drive the real agent CLIs (spec/agents.md).
//!
//! exo begins and finishes each turn itself, so the snapshots and the log
//! stay exo's; in between, the CLI runs its own agent loop in a process
//! exo starts for the turn and ends with it. The CLI never holds the
//! model's key: it is handed a model-gateway token for its conversation
//! (revoked when the turn ends) and reaches the model through exo's
//! gateway, which records every exchange. Its memory is exo's log: each
//! turn's thread is rebuilt from the conversation's current history, so a
//! rewind, a fork, a swap of executors or a killed process changes what
//! the model sees exactly as it changes the log, and the CLI's own session
//! files are never relied on.
//!
//! - [`Codex`]: `codex app-server` over stdio (JSON-RPC without the
//!   `"jsonrpc"` member).
//! - [`ClaudeCode`]: `claude -p` with stream-json in and out.

mod claude;
mod codex;
mod process;

pub use process::{create_private_dir, locate_program};
mod token;

pub use claude::{
    project_dir as claude_project_dir, write_transcript as write_claude_transcript, ClaudeCode,
    CLAUDE_ENTRY_TYPE, CLAUDE_RESULT_TYPE, CLAUDE_SESSION_TYPE,
};
pub use codex::{
    write_rollout as write_codex_rollout, Codex, CODEX_ITEM_TYPE, CODEX_THREAD_TYPE,
    CODEX_USAGE_TYPE,
};

/// How an agent CLI starts exo's MCP server over its conversation.
pub(crate) struct McpServer {
    pub command: String,
    pub args: Vec<String>,
}

/// `exo --root ROOT mcp --agent A --conversation C`, run by the agent CLI,
/// when this process is exo itself (not a test harness embedding it).
pub(crate) fn exo_mcp_server(setup: &exo_executor::Setup) -> Option<McpServer> {
    let exe = std::env::current_exe().ok()?;
    if exe.file_name()? != "exo" {
        return None;
    }
    // The state directory is ROOT/executors/CONVERSATION.
    let root = setup.state_dir.parent()?.parent()?;
    Some(McpServer {
        command: exe.to_string_lossy().into_owned(),
        args: vec![
            "--root".into(),
            root.to_string_lossy().into_owned(),
            "mcp".into(),
            "--agent".into(),
            setup.agent.clone(),
            "--conversation".into(),
            setup.conversation.to_string(),
        ],
    })
}

/// Puts a model response's usage on the last assistant message of its
/// events, or, for a response that made only tool calls, on an empty
/// assistant message before them (as the built-in executor records it).
pub(crate) fn attach_usage(
    events: &mut Vec<exo_core::EventData>,
    usage: exo_core::Usage,
    upstream: &str,
) {
    use exo_core::{EventData, Role};
    let slot = events.iter_mut().rev().find_map(|event| match event {
        EventData::Message {
            role: Role::Assistant,
            usage,
            ..
        } => Some(usage),
        _ => None,
    });
    match slot {
        Some(slot) => *slot = Some(usage),
        None => events.insert(
            0,
            EventData::Message {
                role: Role::Assistant,
                content: Vec::new(),
                usage: Some(usage),
                model: Some(upstream.to_owned()),
            },
        ),
    }
}

/// The answer text that streamed before a turn stopped, as the assistant
/// message the built-in executor keeps of a cancelled answer.
pub(crate) fn partial_answer(text: String, upstream: &str) -> exo_core::EventData {
    exo_core::EventData::Message {
        role: exo_core::Role::Assistant,
        content: vec![exo_core::ContentPart::Text { text }],
        usage: None,
        model: Some(upstream.to_owned()),
    }
}
