//! The prompt: what the model sees of a conversation, derived from its
//! events each time, so the log stays the only truth.

use std::collections::HashSet;
use std::path::Path;

use exo_core::{ConversationId, Event, EventData, EventId, Role};
use exo_model::Item;
use serde_json::Value;

use crate::{Substrate, SubstrateError};

/// How many bytes of what the model sees are taken for one token when
/// there is nothing better to go on: about right for English and code with
/// the vendors' tokenizers, and on the safe side for JSON.
pub const BYTES_PER_TOKEN: u64 = 4;

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
        None => "You are a coding agent. This conversation has no workspace, so there are \
                 no files to read or change and no commands to run: answer in text (the tools \
                 you have read this conversation's own history)."
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
/// A compaction (`custom` of type [`exo_core::COMPACTION_TYPE`]) puts its
/// summary in place of what it summarises: everything before it, or, when
/// its payload names the event it summarises `through` and that event is
/// earlier in `history`, everything up to that event (what follows it is
/// kept). `artifact(path, version)` reads a compaction's summary artifact;
/// a compaction whose summary cannot be read is skipped (the history
/// before it stays in the prompt).
///
/// A turn never reads the whole history: [`load`] reads from the
/// compaction in effect on, and must give these items.
#[cfg(test)]
pub fn items(
    history: &[Event],
    mut artifact: impl FnMut(&str, Option<u64>) -> Option<String>,
) -> Vec<Item> {
    let history: Vec<&Event> = history.iter().collect();
    items_of(&history, &mut artifact)
}

fn items_of(
    history: &[&Event],
    artifact: &mut dyn FnMut(&str, Option<u64>) -> Option<String>,
) -> Vec<Item> {
    // Each item with the index of the event it comes from, so that a
    // compaction can drop what it summarises.
    let mut items: Vec<(usize, Item)> = Vec::new();
    for (index, event) in history.iter().enumerate() {
        match &event.data {
            EventData::Message { role, content, .. } => items.push((
                index,
                Item::Message {
                    role: *role,
                    content: content.clone(),
                },
            )),
            EventData::ToolCall {
                call_id,
                name,
                arguments,
            } => items.push((
                index,
                Item::ToolCall {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
            )),
            EventData::ToolResult {
                call_id,
                output,
                is_error,
            } => items.push((
                index,
                Item::ToolResult {
                    call_id: call_id.clone(),
                    output: output_text(output),
                    is_error: *is_error,
                },
            )),
            EventData::Custom { payload, .. } if event.data.is_compaction() => {
                if let Some(summary) = summary_of(payload, artifact) {
                    let cut = through_of(payload).and_then(|through| {
                        history[..index]
                            .iter()
                            .rposition(|event| event.id == through)
                    });
                    match cut {
                        Some(cut) => items.retain(|(source, _)| *source > cut),
                        None => items.clear(),
                    }
                    items.insert(0, (index, summary_item(&summary)));
                }
            }
            _ => {}
        }
    }
    paired(items.into_iter().map(|(_, item)| item).collect())
}

/// The message that stands for a compaction's summary.
pub fn summary_item(summary: &str) -> Item {
    Item::text(
        Role::User,
        format!("A summary of the conversation so far:\n\n{summary}"),
    )
}

/// A compaction's summary: its inline text, or the artifact it names;
/// `None` when it has neither or the artifact cannot be read.
fn summary_of(
    payload: &Value,
    artifact: &mut dyn FnMut(&str, Option<u64>) -> Option<String>,
) -> Option<String> {
    match (payload.get("summary"), payload.get("artifact")) {
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
    }
}

/// The event a compaction says it summarises through, if it says.
fn through_of(payload: &Value) -> Option<EventId> {
    payload.get("through")?.as_str()?.parse().ok()
}

/// What a turn's prompt starts from: the history read from the compaction
/// in effect on, never the whole history when there is one.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The items: the compaction's summary, if one is in effect, then what
    /// it does not summarise.
    pub items: Vec<Item>,
    /// Whether `items[0]` is a compaction's summary.
    pub summarised: bool,
    /// Where the turn's input is in `items`: what precedes it came before
    /// the turn.
    pub turn_start: usize,
    /// The last event before the turn's input: a compaction through it
    /// summarises everything before the turn and keeps the turn.
    pub before_turn: Option<EventId>,
    /// The items' tokens as the model counted them: the usage of the last
    /// answer after the compaction in effect (its prompt and itself), plus
    /// what came after it at [`BYTES_PER_TOKEN`]. `None` when no answer
    /// since reports usage.
    pub counted_tokens: Option<u64>,
}

/// Reads the prompt's history for a turn whose input is the event `input`
/// (`None`: no turn):
/// the newest compaction on the conversation's history whose summary can
/// be read, then the events after the event it summarises through (or
/// after it). Cost: an index lookup per compaction tried, and the events
/// read, not the length of the history.
pub(crate) fn load(
    substrate: &dyn Substrate,
    conversation: ConversationId,
    input: Option<EventId>,
) -> Result<Loaded, SubstrateError> {
    let mut artifact = |path: &str, version: Option<u64>| {
        let bytes = substrate.artifact(conversation, path, version).ok()?;
        String::from_utf8(bytes).ok()
    };
    let mut before = None;
    loop {
        let Some(compaction) = substrate.latest_compaction(conversation, before)? else {
            let history = substrate.events(conversation, None)?;
            return Ok(Loaded::new(None, &history, input, &mut artifact));
        };
        let summary = match &compaction.data {
            EventData::Custom { payload, .. } => summary_of(payload, &mut artifact),
            _ => None,
        };
        let Some(summary) = summary else {
            // Skipped, as `items` skips it: the one before it, if any, is
            // in effect.
            before = Some(compaction.id);
            continue;
        };
        let through = match &compaction.data {
            EventData::Custom { payload, .. } => through_of(payload),
            _ => None,
        };
        // From the event it summarises through, when that is on the
        // history before it (what lies between is kept); else from the
        // compaction itself.
        let from_through = through.and_then(|through| {
            substrate
                .events(conversation, Some(through))
                .ok()
                .filter(|events| events.iter().any(|event| event.id == compaction.id))
        });
        let slice = match from_through {
            Some(slice) => slice,
            None => substrate.events(conversation, Some(compaction.id))?,
        };
        return Ok(Loaded::new(
            Some((compaction.id, summary)),
            &slice,
            input,
            &mut artifact,
        ));
    }
}

impl Loaded {
    /// `slice` is the history after what `compaction` summarises (which
    /// may hold the compaction itself), or the whole history without one.
    fn new(
        compaction: Option<(EventId, String)>,
        slice: &[Event],
        input: Option<EventId>,
        artifact: &mut dyn FnMut(&str, Option<u64>) -> Option<String>,
    ) -> Loaded {
        let compaction_at = compaction
            .as_ref()
            .and_then(|(id, _)| slice.iter().position(|event| event.id == *id));
        // The compaction in effect, and any before it, are behind the
        // summary: not shown again.
        let shown: Vec<&Event> = slice
            .iter()
            .enumerate()
            .filter(|(index, event)| {
                !(event.data.is_compaction() && compaction_at.is_some_and(|at| *index <= at))
            })
            .map(|(_, event)| event)
            .collect();
        let input_at = shown.iter().position(|event| Some(event.id) == input);
        let (before, from_input) = shown.split_at(input_at.unwrap_or(shown.len()));
        let mut items = Vec::new();
        let summarised = compaction.is_some();
        if let Some((_, summary)) = &compaction {
            items.push(summary_item(summary));
        }
        items.extend(items_of(before, artifact));
        let turn_start = items.len();
        items.extend(items_of(from_input, artifact));
        let before_turn = slice
            .iter()
            .position(|event| Some(event.id) == input)
            .filter(|at| *at > 0)
            .map(|at| slice[at - 1].id);
        // The newest answer with usage after the compaction in effect.
        let since = compaction_at.map_or(0, |at| at + 1);
        let counted_tokens = slice[since..]
            .iter()
            .rposition(|event| {
                matches!(
                    &event.data,
                    EventData::Message {
                        role: Role::Assistant,
                        usage: Some(_),
                        ..
                    }
                )
            })
            .map(|at| {
                let at = since + at;
                let EventData::Message {
                    usage: Some(usage), ..
                } = &slice[at].data
                else {
                    unreachable!("found as an answer with usage")
                };
                let after: u64 = slice[at + 1..]
                    .iter()
                    .map(|event| event_bytes(&event.data))
                    .sum();
                usage.input_tokens + usage.output_tokens + after.div_ceil(BYTES_PER_TOKEN)
            });
        Loaded {
            items,
            summarised,
            turn_start,
            before_turn,
            counted_tokens,
        }
    }
}

/// The bytes of an item the model is sent: its text, arguments or output.
pub(crate) fn item_bytes(item: &Item) -> u64 {
    match item {
        Item::Message { content, .. } => content.iter().map(part_bytes).sum(),
        Item::ToolCall {
            name, arguments, ..
        } => (name.len() + arguments.to_string().len()) as u64,
        Item::ToolResult { output, .. } => output.len() as u64,
    }
}

/// The bytes of what the model is sent of an event (nothing for the kinds
/// it is not shown).
pub(crate) fn event_bytes(data: &EventData) -> u64 {
    match data {
        EventData::Message { content, .. } => content.iter().map(part_bytes).sum(),
        EventData::ToolCall {
            name, arguments, ..
        } => (name.len() + arguments.to_string().len()) as u64,
        EventData::ToolResult { output, .. } => match output {
            Value::String(text) => text.len() as u64,
            other => other.to_string().len() as u64,
        },
        _ => 0,
    }
}

fn part_bytes(part: &exo_core::ContentPart) -> u64 {
    match part {
        exo_core::ContentPart::Text { text } | exo_core::ContentPart::Reasoning { text } => {
            text.len() as u64
        }
        // An image costs the model about as much whatever its encoded size
        // (the vendors scale it down): counted as 1600 tokens, the most
        // one costs at Anthropic's default size.
        exo_core::ContentPart::Image { .. } => IMAGE_TOKENS * BYTES_PER_TOKEN,
    }
}

const IMAGE_TOKENS: u64 = 1_600;

/// A tool result as text for the model: a string as it is, anything else
/// as JSON.
pub fn output_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn paired(items: Vec<Item>) -> Vec<Item> {
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
    use exo_core::COMPACTION_TYPE;
    use exo_core::{Timestamp, TurnId, TurnStatus};
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
        assert!(instructions(None, None).contains("no files to read or change"));
    }

    /// A history in memory, recording which reads a load makes.
    struct Memory {
        history: Vec<Event>,
        reads: std::sync::Mutex<Vec<Option<EventId>>>,
    }

    impl Memory {
        fn new(history: Vec<Event>) -> Memory {
            Memory {
                history,
                reads: Default::default(),
            }
        }

        fn load(&self, input: EventId) -> Loaded {
            self.reads.lock().unwrap().clear();
            load(self, ConversationId::new(), Some(input)).unwrap()
        }

        /// The events read by the last load.
        fn read(&self) -> usize {
            let reads = self.reads.lock().unwrap();
            reads
                .iter()
                .map(|after| match after {
                    None => self.history.len(),
                    Some(after) => {
                        self.history.len()
                            - 1
                            - self.history.iter().position(|e| e.id == *after).unwrap()
                    }
                })
                .sum()
        }
    }

    impl Substrate for Memory {
        fn setup(&self, _: &str, _: &str) -> Result<crate::Setup, SubstrateError> {
            unreachable!("not used by a load")
        }
        fn events(
            &self,
            _: ConversationId,
            after: Option<EventId>,
        ) -> Result<Vec<Event>, SubstrateError> {
            self.reads.lock().unwrap().push(after);
            let start = match after {
                None => 0,
                Some(after) => {
                    self.history
                        .iter()
                        .position(|e| e.id == after)
                        .ok_or("not on the history")?
                        + 1
                }
            };
            Ok(self.history[start..].to_vec())
        }
        fn latest_compaction(
            &self,
            _: ConversationId,
            before: Option<EventId>,
        ) -> Result<Option<Event>, SubstrateError> {
            // As a store answers: from an index, reading no history.
            let end = before.map_or(self.history.len(), |before| {
                self.history.iter().position(|e| e.id == before).unwrap()
            });
            Ok(self.history[..end]
                .iter()
                .rev()
                .find(|e| e.data.is_compaction())
                .cloned())
        }
        fn begin_turn(
            &self,
            _: &str,
            _: &str,
            _: EventData,
        ) -> Result<crate::Begun, SubstrateError> {
            unreachable!("not used by a load")
        }
        fn artifact(
            &self,
            _: ConversationId,
            path: &str,
            _: Option<u64>,
        ) -> Result<Vec<u8>, SubstrateError> {
            match path {
                "summary.md" => Ok(b"from an artifact".to_vec()),
                _ => Err("no such artifact".into()),
            }
        }
        fn append(&self, _: TurnId, _: Vec<EventData>) -> Result<Vec<Event>, SubstrateError> {
            unreachable!("not used by a load")
        }
        fn finish_turn(&self, _: TurnId, _: TurnStatus) -> Result<TurnStatus, SubstrateError> {
            unreachable!("not used by a load")
        }

        fn allow_always(&self, _: &str, _: &str) -> Result<(), SubstrateError> {
            unreachable!("not used by a load")
        }
    }

    fn compaction(payload: Value) -> Event {
        event(EventData::Custom {
            custom_type: COMPACTION_TYPE.into(),
            payload,
        })
    }

    fn answer(text: &str, input_tokens: u64, output_tokens: u64) -> Event {
        event(EventData::Message {
            role: Role::Assistant,
            content: vec![exo_core::ContentPart::Text { text: text.into() }],
            usage: Some(exo_core::Usage {
                input_tokens,
                output_tokens,
                cached_input_tokens: None,
            }),
            model: None,
        })
    }

    /// A long history of turns, each `turn_started`, a question, a call
    /// and its result, and an answer.
    fn turns(n: usize) -> Vec<Event> {
        let mut history = Vec::new();
        for i in 0..n {
            history.push(event(EventData::TurnStarted {}));
            history.push(text(Role::User, &format!("question {i}")));
            history.push(call(&format!("c{i}")));
            history.push(result(&format!("c{i}")));
            history.push(answer(&format!("answer {i}"), 100 + i as u64, 10));
        }
        history
    }

    /// A turn's beginning: `turn_started` and its input.
    fn begin(history: &mut Vec<Event>, input: &str) -> EventId {
        history.push(event(EventData::TurnStarted {}));
        let input = text(Role::User, input);
        let id = input.id;
        history.push(input);
        id
    }

    #[test]
    fn a_load_without_a_compaction_reads_the_history_and_finds_the_turn() {
        let mut history = turns(3);
        let before_turn = history.last().unwrap().id;
        let input = begin(&mut history, "now");
        let memory = Memory::new(history.clone());
        let loaded = memory.load(input);
        assert_eq!(loaded.items, items(&history, |_, _| None));
        assert!(!loaded.summarised);
        assert_eq!(loaded.turn_start, 12);
        assert_eq!(loaded.items[12], Item::text(Role::User, "now"));
        // The last event before the input: turn_started.
        assert_eq!(loaded.before_turn, Some(history[history.len() - 2].id));
        assert_ne!(loaded.before_turn, Some(before_turn));
        // The last answer's usage (102 + 10), and "now" (3 bytes) after it.
        assert_eq!(loaded.counted_tokens, Some(112 + 1));
    }

    #[test]
    fn a_load_reads_only_from_the_compaction_and_gives_the_same_items() {
        let mut history = turns(1_000);
        history.push(compaction(json!({"summary": "a thousand turns"})));
        let after = turns(2);
        history.extend(after.clone());
        let input = begin(&mut history, "now");
        let memory = Memory::new(history.clone());
        let loaded = memory.load(input);
        assert_eq!(loaded.items, items(&history, |_, _| None));
        assert_eq!(loaded.items[0], summary_item("a thousand turns"));
        assert!(loaded.summarised);
        assert_eq!(loaded.turn_start, 1 + 8);
        // Only what follows the compaction was read.
        assert_eq!(memory.read(), after.len() + 2);
        // The count starts after the compaction: the last answer of `after`.
        assert_eq!(loaded.counted_tokens, Some(101 + 10 + 1));
    }

    #[test]
    fn a_compaction_through_an_earlier_event_keeps_what_follows_that_event() {
        let mut history = turns(50);
        let input = begin(&mut history, "now");
        let through = history[history.len() - 3].id;
        // Recorded after the input, as the executor records it: the input
        // and the turn stay in the prompt.
        history.push(answer("a first round", 5_000, 10));
        history.push(compaction(
            json!({"summary": "fifty turns", "through": through.to_string()}),
        ));
        let memory = Memory::new(history.clone());
        let loaded = memory.load(input);
        let expected = vec![
            summary_item("fifty turns"),
            Item::text(Role::User, "now"),
            Item::text(Role::Assistant, "a first round"),
        ];
        assert_eq!(loaded.items, expected);
        assert_eq!(items(&history, |_, _| None), expected);
        assert_eq!(loaded.turn_start, 1);
        assert_eq!(memory.read(), 4);
        // The answer before the compaction was counted on the history the
        // compaction replaced: it is not the count.
        assert_eq!(loaded.counted_tokens, None);
        // Read again on a later turn, the compaction is not shown twice.
        let input = begin(&mut history, "later");
        let memory = Memory::new(history.clone());
        let loaded = memory.load(input);
        assert_eq!(loaded.items, items(&history, |_, _| None));
        assert_eq!(loaded.items.len(), 4);
        assert_eq!(loaded.turn_start, 3);
    }

    #[test]
    fn an_unreadable_compaction_gives_way_to_the_one_before_it() {
        let mut history = turns(5);
        history.push(compaction(json!({"artifact": "summary.md"})));
        history.extend(turns(2));
        history.push(compaction(json!({"artifact": "missing.md"})));
        history.push(compaction(json!({"neither": true})));
        history.extend(turns(1));
        let input = begin(&mut history, "now");
        let memory = Memory::new(history.clone());
        let loaded = memory.load(input);
        assert_eq!(loaded.items[0], summary_item("from an artifact"));
        assert_eq!(
            loaded.items,
            items(&history, |path, _| {
                (path == "summary.md").then(|| "from an artifact".to_owned())
            })
        );
        // A through that is not on the history before it: read from the
        // compaction itself.
        history.push(compaction(
            json!({"summary": "s", "through": EventId::new().to_string()}),
        ));
        let input = begin(&mut history, "again");
        let loaded = Memory::new(history.clone()).load(input);
        assert_eq!(
            loaded.items,
            vec![summary_item("s"), Item::text(Role::User, "again")]
        );
    }
}
