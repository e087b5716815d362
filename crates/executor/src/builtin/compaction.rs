//! Automatic compaction (spec/executor.md, "Compaction"): before each model
//! call, the built-in executor estimates the request's tokens, and when
//! they approach the model's context window it first asks the model for a
//! summary and records it as a compaction (`custom` `exo.compaction`
//! `{summary, through}`); the request, and every later prompt, starts from
//! that summary. The log keeps every event: a rewind or fork to before the
//! compaction sees the whole history again.

use exo_core::{Event, EventData, EventId, Role, COMPACTION_TYPE};
use exo_model::{Item, Request, Stop};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::host::TurnHost;
use crate::prompt::{self, item_bytes, Loaded, BYTES_PER_TOKEN};
use crate::SubstrateError;

/// A request estimated at this share of the context window, or more, is
/// compacted first: the rest is room for the answer and for the estimate's
/// error.
pub(crate) const THRESHOLD_PERCENT: u64 = 80;

/// The most the summary may take, in tokens (less for a small window: a
/// quarter of it).
const SUMMARY_MAX_TOKENS: u64 = 8_192;

/// What the model is asked, after the history it summarises.
pub(crate) const SUMMARY_REQUEST: &str = "The conversation so far is about to be replaced by a \
summary, to make room in your context window. Write that summary now, for yourself: you will \
see nothing of this conversation but the summary and what follows it. Keep the user's goals \
and instructions, the decisions taken and why, the state of the work (files read or changed, \
commands run and what they showed), anything still unresolved, and what remains to be done. \
Be complete but brief. Answer with the summary alone, in plain text, and call no tool.";

/// A running turn's view of its context window.
#[derive(Debug)]
pub(crate) struct Compactor {
    /// The model's context window; `None` never compacts.
    window: Option<u64>,
    /// Whether `items[0]` is a compaction's summary.
    summarised: bool,
    /// Where the turn's input is among the items.
    turn_start: usize,
    /// The event to summarise through so that the turn is kept, while the
    /// items before `turn_start` are what came before the turn.
    before_turn: Option<EventId>,
    /// The first `.0` items take `.1` tokens, as the model last counted
    /// them before the turn.
    counted: Option<(usize, u64)>,
    /// A summary was tried this turn and failed, or cannot help: no other
    /// is tried.
    given_up: bool,
}

/// How a compaction splits the items: those before `split` are
/// summarised, through the event `through`; the rest are kept.
#[derive(Debug, PartialEq)]
struct Plan {
    split: usize,
    through: EventId,
}

impl Compactor {
    pub(crate) fn new(window: Option<u64>, loaded: &Loaded) -> Compactor {
        Compactor {
            window,
            summarised: loaded.summarised,
            turn_start: loaded.turn_start,
            before_turn: loaded.before_turn,
            counted: loaded
                .counted_tokens
                .map(|tokens| (loaded.items.len(), tokens)),
            given_up: false,
        }
    }

    /// The tokens the request would take with `items`, estimated: this
    /// turn's newest answer's usage (its prompt and itself) plus what was
    /// recorded after it; else the history's count as loaded plus what the
    /// turn added; else every byte of the request at [`BYTES_PER_TOKEN`].
    /// `recorded` is what the turn has recorded, oldest first.
    pub(crate) fn estimate(&self, request: &Request, items: &[Item], recorded: &[Event]) -> u64 {
        for (index, event) in recorded.iter().enumerate().rev() {
            match &event.data {
                // A compaction this turn: the items were replaced.
                data if data.is_compaction() => break,
                EventData::Message {
                    role: Role::Assistant,
                    usage: Some(usage),
                    ..
                } => {
                    let after: u64 = recorded[index + 1..]
                        .iter()
                        .map(|event| prompt::event_bytes(&event.data))
                        .sum();
                    return usage.input_tokens
                        + usage.output_tokens
                        + after.div_ceil(BYTES_PER_TOKEN);
                }
                _ => {}
            }
        }
        if let Some((counted_items, tokens)) = self.counted {
            if counted_items <= items.len() {
                return tokens + tokens_of(&items[counted_items..]);
            }
        }
        overhead(request) + tokens_of(items)
    }

    /// What to summarise, if the request needs compacting: everything
    /// before the turn when the turn itself takes at most half the window,
    /// else everything. `None` when the request fits, or a summary cannot
    /// help.
    fn plan(&self, request: &Request, items: &[Item], recorded: &[Event]) -> Option<Plan> {
        let window = self.window?;
        if self.given_up || self.estimate(request, items, recorded) < threshold(window) {
            return None;
        }
        let before_turn = self.before_turn.filter(|_| {
            // Something besides an earlier summary precedes the turn.
            self.turn_start > usize::from(self.summarised)
                && self.turn_start <= items.len()
                && tokens_of(&items[self.turn_start..]) <= window / 2
        });
        match before_turn {
            Some(through) => Some(Plan {
                split: self.turn_start,
                through,
            }),
            None => Some(Plan {
                split: items.len(),
                through: recorded.last()?.id,
            }),
        }
    }
}

fn threshold(window: u64) -> u64 {
    window * THRESHOLD_PERCENT / 100
}

/// The tokens of these items, estimated from their bytes.
fn tokens_of(items: &[Item]) -> u64 {
    items
        .iter()
        .map(item_bytes)
        .sum::<u64>()
        .div_ceil(BYTES_PER_TOKEN)
}

/// The tokens of what every request carries besides the items: the
/// instructions and the tools.
fn overhead(request: &Request) -> u64 {
    let instructions = request.instructions.as_deref().map_or(0, str::len);
    let tools: usize = request
        .tools
        .iter()
        .map(|tool| tool.name.len() + tool.description.len() + tool.parameters.to_string().len())
        .sum();
    ((instructions + tools) as u64).div_ceil(BYTES_PER_TOKEN)
}

/// Before a model call: compacts `items` when the request would approach
/// the context window. On success the compaction is recorded and `items`
/// become its summary and what it keeps; when the summary call fails, an
/// `error` event (code `compaction`) says so and the turn goes on with the
/// items as they are (the provider then decides whether they fit). A
/// cancelled summary call records nothing.
pub(super) async fn compact(
    compactor: &mut Compactor,
    request: &Request,
    items: &mut Vec<Item>,
    host: &TurnHost,
    cancel: &CancellationToken,
) -> Result<(), SubstrateError> {
    let client = host.client();
    let (Some(window), Some(plan)) = (
        compactor.window,
        compactor.plan(request, items, &host.recorded()),
    ) else {
        return Ok(());
    };
    let max_output = SUMMARY_MAX_TOKENS.min(window / 4).max(1);
    let room = threshold(window)
        .saturating_sub(overhead(request))
        .saturating_sub(SUMMARY_REQUEST.len() as u64 / BYTES_PER_TOKEN)
        .saturating_sub(max_output);
    if room == 0 {
        // The instructions and tools alone fill the window: no summary
        // makes room.
        tracing::warn!(
            window,
            "the model's context window is too small for exo's instructions and tools; not compacting"
        );
        compactor.given_up = true;
        return Ok(());
    }
    let mut source = fit(&items[..plan.split], compactor.summarised, room);
    source.push(Item::text(Role::User, SUMMARY_REQUEST));
    let summary_request = Request {
        model: request.model.clone(),
        // The same instructions and tools as the turn's requests, so a
        // provider's prompt cache serves the history's prefix.
        instructions: request.instructions.clone(),
        items: source,
        tools: request.tools.clone(),
        max_output_tokens: Some(u32::try_from(max_output).unwrap_or(u32::MAX)),
    };
    let failed = match client.complete(&summary_request, cancel, &mut |_| {}).await {
        Ok(response) if response.stop == Stop::Cancelled => return Ok(()),
        Ok(response) if response.text.trim().is_empty() => {
            "the model answered with no summary".to_owned()
        }
        Ok(response) => {
            let summary = response.text.trim().to_owned();
            let mut payload = json!({
                "summary": summary,
                "through": plan.through,
                "model": request.model,
            });
            if let Some(usage) = &response.usage {
                payload["usage"] = json!(usage);
            }
            host.record(vec![EventData::Custom {
                custom_type: COMPACTION_TYPE.to_owned(),
                payload,
            }])
            .await?;
            let kept = items.split_off(plan.split);
            *items = std::iter::once(prompt::summary_item(&summary))
                .chain(kept)
                .collect();
            // The summary, then the turn (or nothing of it, when it was
            // summarised too). The turn is kept whole only once: a second
            // compaction in the same turn summarises everything.
            compactor.summarised = true;
            compactor.turn_start = 1;
            compactor.before_turn = None;
            compactor.counted = None;
            return Ok(());
        }
        Err(err) => err.to_string(),
    };
    compactor.given_up = true;
    host.record(vec![EventData::Error {
        message: format!(
            "automatic compaction failed: {failed}; the turn goes on with the whole history"
        ),
        code: Some("compaction".to_owned()),
    }])
    .await
    .map(|_| ())
}

/// The items to summarise, within `room` tokens: the oldest are left out
/// (an earlier summary, first when `summarised`, is kept), with a note
/// saying how many; if what is left is still too large, every text is cut
/// to its share.
fn fit(items: &[Item], summarised: bool, room: u64) -> Vec<Item> {
    let room_bytes = room * BYTES_PER_TOKEN;
    let keep_first = usize::from(summarised && !items.is_empty());
    let mut start = keep_first;
    let mut total: u64 = items.iter().map(item_bytes).sum();
    while total > room_bytes && start + 1 < items.len() {
        total -= item_bytes(&items[start]);
        start += 1;
    }
    let mut fitted: Vec<Item> = items[..keep_first].to_vec();
    let left_out = start - keep_first;
    if left_out > 0 {
        fitted.push(Item::text(
            Role::User,
            format!(
                "[left out here: the {left_out} oldest {} of the conversation, which did not fit]",
                if left_out == 1 { "entry" } else { "entries" }
            ),
        ));
    }
    fitted.extend(items[start..].iter().cloned());
    let mut fitted = prompt::paired(fitted);
    if tokens_of(&fitted) > room {
        let share = (room_bytes / fitted.len() as u64).max(1) as usize;
        for item in &mut fitted {
            cut(item, share);
        }
    }
    fitted
}

/// Cuts an item's text (or a result's output) to about `max` bytes.
fn cut(item: &mut Item, max: usize) {
    let shorten = |text: &mut String| {
        if text.len() > max {
            let mut end = max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(" [cut]");
        }
    };
    match item {
        Item::Message { content, .. } => {
            for part in content {
                if let exo_core::ContentPart::Text { text } = part {
                    shorten(text);
                }
            }
        }
        Item::ToolResult { output, .. } => shorten(output),
        Item::ToolCall { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_core::{ConversationId, Timestamp, Usage};

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

    fn text(role: Role, text: &str) -> Item {
        Item::text(role, text)
    }

    fn answer(text: &str, input_tokens: u64, output_tokens: u64) -> EventData {
        EventData::Message {
            role: Role::Assistant,
            content: vec![exo_core::ContentPart::Text { text: text.into() }],
            usage: Some(Usage {
                input_tokens,
                output_tokens,
                cached_input_tokens: None,
            }),
            model: None,
        }
    }

    fn request(instructions: &str) -> Request {
        Request {
            model: "m".into(),
            instructions: Some(instructions.into()),
            items: Vec::new(),
            tools: Vec::new(),
            max_output_tokens: None,
        }
    }

    fn compactor(window: Option<u64>, loaded: &Loaded) -> Compactor {
        Compactor::new(window, loaded)
    }

    fn loaded(items: Vec<Item>, turn_start: usize, counted_tokens: Option<u64>) -> Loaded {
        Loaded {
            items,
            summarised: false,
            turn_start,
            before_turn: Some(EventId::new()),
            counted_tokens,
        }
    }

    #[test]
    fn without_usage_the_estimate_is_every_byte_at_four_per_token() {
        // 8 bytes of instructions, 12 and 4 of text: 24 bytes, 6 tokens.
        let items = vec![
            text(Role::User, "abcdefghijkl"),
            text(Role::Assistant, "mnop"),
        ];
        let loaded = loaded(items.clone(), 1, None);
        let estimate = compactor(Some(100), &loaded).estimate(&request("12345678"), &items, &[]);
        assert_eq!(estimate, 6);
        // Partial tokens round up.
        let items = vec![text(Role::User, "a")];
        assert_eq!(
            compactor(Some(100), &loaded).estimate(&request(""), &items, &[]),
            1
        );
    }

    #[test]
    fn the_loaded_count_stands_for_the_loaded_items_and_bytes_for_the_rest() {
        let mut items = vec![text(Role::User, "old"), text(Role::User, "input")];
        let loaded = loaded(items.clone(), 1, Some(1_000));
        let compactor = compactor(Some(10_000), &loaded);
        // The instructions are inside the count: not added again.
        assert_eq!(
            compactor.estimate(&request("a long preamble"), &items, &[]),
            1_000
        );
        items.push(text(Role::Assistant, "12345678"));
        assert_eq!(compactor.estimate(&request(""), &items, &[]), 1_002);
    }

    #[test]
    fn this_turns_last_usage_wins_until_a_compaction_replaces_the_items() {
        let items = vec![text(Role::User, "input")];
        let loaded = loaded(items.clone(), 0, Some(50));
        let compactor = compactor(Some(10_000), &loaded);
        let mut recorded = vec![
            event(EventData::user_text("input")),
            event(answer("first", 300, 20)),
            event(EventData::ToolCall {
                call_id: "c".into(),
                name: "shell".into(),
                arguments: json!({"command": "ls"}),
            }),
            event(EventData::ToolResult {
                call_id: "c".into(),
                output: json!("12345678"),
                is_error: false,
            }),
        ];
        // shell + {"command":"ls"}: 5 + 16 bytes; the output 8: 29 bytes, 8 tokens.
        assert_eq!(compactor.estimate(&request(""), &items, &recorded), 328);
        recorded.push(event(answer("second", 900, 30)));
        assert_eq!(compactor.estimate(&request(""), &items, &recorded), 930);
        // After a compaction of this turn, its usage no longer counts.
        recorded.push(event(EventData::Custom {
            custom_type: COMPACTION_TYPE.into(),
            payload: json!({"summary": "s"}),
        }));
        let compacted = vec![text(Role::User, "12345678")];
        let mut after = Compactor::new(Some(10_000), &loaded);
        after.counted = None;
        assert_eq!(after.estimate(&request(""), &compacted, &recorded), 2);
    }

    #[test]
    fn a_request_under_the_threshold_is_not_compacted() {
        let items = vec![text(Role::User, "old"), text(Role::User, "input")];
        let loaded = loaded(items.clone(), 1, Some(79));
        assert_eq!(
            compactor(Some(100), &loaded).plan(
                &request(""),
                &items,
                &[event(EventData::user_text("x"))]
            ),
            None
        );
        let loaded_at = Loaded {
            counted_tokens: Some(80),
            ..loaded
        };
        assert!(compactor(Some(100), &loaded_at)
            .plan(&request(""), &items, &[event(EventData::user_text("x"))])
            .is_some());
        // Without a window, never.
        assert_eq!(
            compactor(None, &loaded_at).plan(
                &request(""),
                &items,
                &[event(EventData::user_text("x"))]
            ),
            None
        );
    }

    #[test]
    fn the_turn_is_kept_when_it_is_small_and_summarised_too_when_it_is_not() {
        let last = event(EventData::user_text("input"));
        let items = vec![
            text(Role::User, "old"),
            text(Role::Assistant, "old answer"),
            text(Role::User, "input"),
        ];
        let loaded = loaded(items.clone(), 2, Some(900));
        let before_turn = loaded.before_turn.unwrap();
        let plan = compactor(Some(1_000), &loaded)
            .plan(&request(""), &items, std::slice::from_ref(&last))
            .unwrap();
        assert_eq!(
            plan,
            Plan {
                split: 2,
                through: before_turn
            }
        );
        // A turn taking more than half the window is summarised with the
        // rest, through the newest event.
        let big = "x".repeat(2_100);
        let items = vec![text(Role::User, "old"), text(Role::User, &big)];
        let loaded = Loaded {
            items: items.clone(),
            turn_start: 1,
            ..loaded
        };
        let plan = compactor(Some(1_000), &loaded)
            .plan(&request(""), &items, std::slice::from_ref(&last))
            .unwrap();
        assert_eq!(
            plan,
            Plan {
                split: 2,
                through: last.id
            }
        );
        // Nothing but an earlier summary before the turn: everything.
        let items = vec![prompt::summary_item("s"), text(Role::User, "input")];
        let loaded = Loaded {
            items: items.clone(),
            summarised: true,
            turn_start: 1,
            before_turn: Some(EventId::new()),
            counted_tokens: Some(900),
        };
        let plan = compactor(Some(1_000), &loaded)
            .plan(&request(""), &items, std::slice::from_ref(&last))
            .unwrap();
        assert_eq!(plan.split, 2);
    }

    #[test]
    fn fitting_leaves_out_the_oldest_and_keeps_an_earlier_summary() {
        let items = vec![
            prompt::summary_item("before"),
            text(Role::User, &"a".repeat(400)),
            text(Role::Assistant, &"b".repeat(400)),
            text(Role::User, "recent"),
        ];
        let fitted = fit(&items, true, 60);
        assert_eq!(fitted[0], items[0]);
        assert_eq!(
            fitted[1],
            text(
                Role::User,
                "[left out here: the 2 oldest entries of the conversation, which did not fit]"
            )
        );
        assert_eq!(fitted[2], items[3]);
        assert_eq!(fitted.len(), 3);
        // What fits is left whole.
        assert_eq!(fit(&items, true, 10_000), items);
        // One item too large on its own is cut.
        let fitted = fit(&[text(Role::User, &"z".repeat(4_000))], false, 100);
        assert_eq!(fitted.len(), 1);
        assert!(tokens_of(&fitted) <= 102, "{fitted:?}");
    }
}
