//! The prompt: what the model sees of a conversation, derived from its
//! events each time, so the log stays the only truth.

use std::collections::HashSet;
use std::path::Path;

use exo_core::{Event, EventData, Role};
use exo_model::Item;
use serde_json::Value;

/// The `custom` event type of a compaction: the summary it points at
/// replaces everything before it in the prompt (the events stay). Its
/// payload is `{"summary": TEXT}`, or `{"artifact": PATH, "version"?: N}`
/// naming an artifact of the conversation that holds the summary.
pub const COMPACTION_TYPE: &str = "exo.compaction";

/// The `custom` event type recording an approval decision.
pub const APPROVAL_TYPE: &str = "exo.approval";

/// The result the model sees for a tool call whose result was never
/// recorded (the executor died while it ran).
pub const INTERRUPTED_OUTPUT: &str =
    r#"{"error":"interrupted: exo stopped before this call finished; it may or may not have run"}"#;

/// The system prompt: exo's preamble, then the agent's instructions.
pub fn instructions(agent: Option<&str>, workspace: Option<&Path>) -> String {
    let mut text = match workspace {
        Some(root) => format!(
            "You are a coding agent working in the directory {}. Use the tools to read, \
             search and change its files and to run commands there; relative paths are \
             taken from that directory. When the task is done, answer without calling a tool.",
            root.display()
        ),
        None => "You are a coding agent. This conversation has no workspace, so no tools \
                 are available: answer in text."
            .to_owned(),
    };
    if let Some(agent) = agent.map(str::trim).filter(|text| !text.is_empty()) {
        text.push_str("\n\n");
        text.push_str(agent);
    }
    text
}

/// The conversation as the model sees it: messages, tool calls and their
/// results, in order, from the last compaction on. A call without a
/// recorded result gets [`INTERRUPTED_OUTPUT`] right after its response,
/// and a result without its call is left out, since every provider
/// requires calls and results to pair.
///
/// `artifact(path, version)` reads a compaction's summary artifact; a
/// compaction whose summary cannot be read is skipped (the history before
/// it stays in the prompt).
pub fn items(
    history: &[Event],
    mut artifact: impl FnMut(&str, Option<u64>) -> Option<String>,
) -> Vec<Item> {
    let mut items = Vec::new();
    for event in history {
        match &event.data {
            EventData::Message { role, content, .. } => items.push(Item::Message {
                role: *role,
                content: content.clone(),
            }),
            EventData::ToolCall {
                call_id,
                name,
                arguments,
            } => items.push(Item::ToolCall {
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
            }),
            EventData::ToolResult {
                call_id,
                output,
                is_error,
            } => items.push(Item::ToolResult {
                call_id: call_id.clone(),
                output: output_text(output),
                is_error: *is_error,
            }),
            EventData::Custom {
                custom_type,
                payload,
            } if custom_type == COMPACTION_TYPE => {
                let summary = match (payload.get("summary"), payload.get("artifact")) {
                    (Some(Value::String(summary)), _) => Some(summary.clone()),
                    (_, Some(Value::String(path))) => {
                        let version = payload.get("version").and_then(Value::as_u64);
                        let read = artifact(path, version);
                        if read.is_none() {
                            tracing::warn!(%path, "compaction summary artifact unreadable; compaction skipped");
                        }
                        read
                    }
                    _ => None,
                };
                if let Some(summary) = summary {
                    items.clear();
                    items.push(Item::text(
                        Role::User,
                        format!("A summary of the conversation so far:\n\n{summary}"),
                    ));
                }
            }
            _ => {}
        }
    }
    paired(items)
}

/// A tool result as text for the model: a string as it is, anything else
/// as JSON.
pub(crate) fn output_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn paired(items: Vec<Item>) -> Vec<Item> {
    let mut called = HashSet::new();
    let mut answered = HashSet::new();
    for item in &items {
        match item {
            Item::ToolCall { call_id, .. } => {
                called.insert(call_id.clone());
            }
            Item::ToolResult { call_id, .. } => {
                answered.insert(call_id.clone());
            }
            Item::Message { .. } => {}
        }
    }
    let mut out = Vec::with_capacity(items.len());
    let mut pending: Vec<String> = Vec::new();
    let flush = |out: &mut Vec<Item>, pending: &mut Vec<String>| {
        for call_id in pending.drain(..) {
            out.push(Item::ToolResult {
                call_id,
                output: INTERRUPTED_OUTPUT.to_owned(),
                is_error: true,
            });
        }
    };
    for item in items {
        match &item {
            Item::ToolCall { call_id, .. } => {
                if !answered.contains(call_id) {
                    pending.push(call_id.clone());
                }
            }
            Item::ToolResult { call_id, .. } => {
                if !called.contains(call_id) {
                    continue;
                }
            }
            Item::Message { .. } => flush(&mut out, &mut pending),
        }
        out.push(item);
    }
    flush(&mut out, &mut pending);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_core::{ConversationId, EventId, Timestamp};
    use serde_json::json;

    fn event(data: EventData) -> Event {
        Event {
            id: EventId::new(),
            conversation: ConversationId::new(),
            session: None,
            turn: None,
            created_at: Timestamp::now(),
            data,
        }
    }

    fn text(role: Role, text: &str) -> Event {
        event(EventData::Message {
            role,
            content: vec![exo_core::ContentPart::Text { text: text.into() }],
            usage: None,
            model: None,
        })
    }

    fn call(id: &str) -> Event {
        event(EventData::ToolCall {
            call_id: id.into(),
            name: "shell".into(),
            arguments: json!({"command": "ls"}),
        })
    }

    fn result(id: &str) -> Event {
        event(EventData::ToolResult {
            call_id: id.into(),
            output: json!({"exit_code": 0}),
            is_error: false,
        })
    }

    #[test]
    fn a_dangling_call_is_answered_as_interrupted_before_the_next_message() {
        let history = [
            text(Role::User, "go"),
            call("a"),
            call("b"),
            result("a"),
            text(Role::User, "again"),
        ];
        let items = items(&history, |_, _| None);
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[4],
            Item::ToolResult {
                call_id: "b".into(),
                output: INTERRUPTED_OUTPUT.into(),
                is_error: true
            }
        );
        assert_eq!(items[5], Item::text(Role::User, "again"));
    }

    #[test]
    fn a_trailing_dangling_call_is_answered_too_and_orphan_results_dropped() {
        let history = [text(Role::User, "go"), result("zzz"), call("a")];
        let items = items(&history, |_, _| None);
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], Item::ToolCall { call_id, .. } if call_id == "a"));
        assert!(
            matches!(&items[2], Item::ToolResult { call_id, is_error: true, .. } if call_id == "a")
        );
    }

    #[test]
    fn a_compaction_replaces_what_came_before_it() {
        let history = [
            text(Role::User, "old"),
            text(Role::Assistant, "old answer"),
            event(EventData::Custom {
                custom_type: COMPACTION_TYPE.into(),
                payload: json!({"summary": "we talked"}),
            }),
            text(Role::User, "new"),
        ];
        let items = items(&history, |_, _| None);
        assert_eq!(
            items,
            vec![
                Item::text(
                    Role::User,
                    "A summary of the conversation so far:\n\nwe talked"
                ),
                Item::text(Role::User, "new"),
            ]
        );
    }

    #[test]
    fn a_compaction_may_point_at_an_artifact() {
        let compaction = |payload| {
            event(EventData::Custom {
                custom_type: COMPACTION_TYPE.into(),
                payload,
            })
        };
        let history = [
            text(Role::User, "old"),
            compaction(json!({"artifact": "notes/summary.md", "version": 2})),
            text(Role::User, "new"),
        ];
        let mut asked = Vec::new();
        let items = items(&history, |path, version| {
            asked.push((path.to_owned(), version));
            Some("the gist".to_owned())
        });
        assert_eq!(asked, [("notes/summary.md".to_owned(), Some(2))]);
        assert_eq!(
            items[0],
            Item::text(
                Role::User,
                "A summary of the conversation so far:\n\nthe gist"
            )
        );
        assert_eq!(items.len(), 2);
        // An unreadable summary leaves the history as it was.
        let kept = super::items(&history, |_, _| None);
        assert_eq!(kept[0], Item::text(Role::User, "old"));
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn other_events_are_not_shown_to_the_model() {
        let history = [
            event(EventData::TurnStarted {}),
            text(Role::User, "hi"),
            event(EventData::Error {
                message: "boom".into(),
                code: None,
            }),
            event(EventData::Custom {
                custom_type: APPROVAL_TYPE.into(),
                payload: json!({}),
            }),
        ];
        assert_eq!(
            items(&history, |_, _| None),
            vec![Item::text(Role::User, "hi")]
        );
    }

    #[test]
    fn instructions_put_the_agents_after_the_preamble() {
        let text = instructions(Some("Be brief."), Some(Path::new("/w")));
        assert!(text.starts_with("You are a coding agent working in the directory /w."));
        assert!(text.ends_with("\n\nBe brief."));
        assert!(instructions(None, None).contains("no tools"));
    }
}
