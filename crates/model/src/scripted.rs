//! The scripted model: no network, it replays a JSON script of responses.
//! It is for tests and the offline demo. Which response answers a call
//! depends only on the call's history (see "Choosing the response"), so a
//! replay is the same in every process, and after a rewind or a fork the
//! script carries on from that point of the history.
//!
//! # Format
//!
//! ```json
//! {
//!   "chunk_size": 8,
//!   "delay_ms": 0,
//!   "responses": [
//!     {"text": "Let me look.", "tool_calls": [{"name": "shell", "arguments": {"command": "ls"}}]},
//!     {"reasoning": "The listing shows...", "text": "There are two files.",
//!      "usage": {"input_tokens": 120, "output_tokens": 9}},
//!     {"error": {"status": 429, "message": "slow down"}}
//!   ]
//! }
//! ```
//!
//! Top level:
//!
//! - `responses` (required): the answers, in conversation order: the first
//!   answers the conversation's first model call, the second the call after
//!   one answer, and so on.
//! - `chunk_size` (optional): stream text and reasoning in deltas of this
//!   many characters; without it each is one delta.
//! - `delay_ms` (optional): a pause before each delta, so the offline demo
//!   looks alive; cancellation cuts it short.
//!
//! Each response:
//!
//! - `text`, `reasoning` (optional strings): streamed as [`Delta::Text`] and
//!   [`Delta::Reasoning`], reasoning first.
//! - `tool_calls` (optional): `{"name", "arguments"?, "call_id"?}`, each
//!   announced with [`Delta::ToolCall`] after the text. `arguments` is any
//!   JSON (default `{}`); `call_id` defaults to `call_<response>_<call>`,
//!   both counted from 1.
//! - `usage` (optional): `{"input_tokens", "output_tokens",
//!   "cached_input_tokens"?}`.
//! - `stop` (optional): `end_turn`, `tool_use`, `max_tokens` or any word;
//!   default `tool_use` when there are tool calls, else `end_turn`.
//! - `chunk_size`, `delay_ms` (optional): override the top level's.
//! - `error` (optional): `{"status"?, "kind"?, "message"}`: the call fails,
//!   with [`Error::Http`] when `status` is given, else [`Error::Provider`]
//!   (kind default `scripted`). Nothing streams.
//!
//! Unknown fields are refused, so a typo fails when the client is built.
//!
//! # Choosing the response
//!
//! A call is answered by response `N` (counted from 0), where `N` is the
//! number of model responses already in the request's
//! [`items`](crate::Request::items). A model response is a run of
//! consecutive assistant items: [`Item::Message`]s with [`Role::Assistant`]
//! and [`Item::ToolCall`]s. Any other item (a user or system message, a
//! tool result) ends a run. So the first call of a conversation gets the
//! first response, the call after one answered round of tool calls the
//! second, and so on.
//!
//! Nothing else of the request is read (not the model name, the tools or
//! the instructions), and the client keeps no state: the same request
//! always gets the same response, whichever process or [`crate::Client`]
//! sends it. That includes an error response, which a retry meets again;
//! the script moves on only when the history holds one more answer. A call
//! whose `N` is past the last response fails with
//! [`Error::ScriptExhausted`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    Delta, Error, Item, Partial, Request, Response, Role, ScriptSource, Stop, ToolCallOut, Usage,
};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Script {
    responses: Vec<ScriptedResponse>,
    #[serde(default)]
    chunk_size: Option<usize>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ScriptedResponse {
    #[serde(default)]
    text: String,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ScriptedCall>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    stop: Option<String>,
    #[serde(default)]
    chunk_size: Option<usize>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    error: Option<ScriptedError>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ScriptedCall {
    name: String,
    #[serde(default = "empty_object")]
    arguments: Value,
    #[serde(default)]
    call_id: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ScriptedError {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    kind: Option<String>,
    message: String,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The largest script file read.
pub const MAX_SCRIPT_BYTES: u64 = 16 << 20;

/// Reads a script file: a regular file (a FIFO or a device would block or
/// never end; it is opened without blocking and refused), at most
/// [`MAX_SCRIPT_BYTES`].
fn read_script(path: &std::path::Path) -> Result<String, Error> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot =
        |why: String| Error::Config(format!("cannot read script {}: {why}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|err| cannot(err.to_string()))?;
    let metadata = file.metadata().map_err(|err| cannot(err.to_string()))?;
    if !metadata.is_file() {
        return Err(cannot("not a regular file".to_string()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SCRIPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| cannot(err.to_string()))?;
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(cannot(format!(
            "larger than the {} MiB limit",
            MAX_SCRIPT_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|_| cannot("not UTF-8".to_string()))
}

/// A loaded script. It holds no place in the script: each call's history
/// says which response it gets.
#[derive(Clone, Debug)]
pub(crate) struct Player {
    script: Arc<Script>,
}

impl Player {
    /// Loads and checks a script.
    pub(crate) fn load(source: &ScriptSource) -> Result<Player, Error> {
        let script: Script = match source {
            ScriptSource::File(path) => {
                let text = read_script(path)?;
                serde_json::from_str(&text).map_err(|err| {
                    Error::Config(format!("invalid script {}: {err}", path.display()))
                })?
            }
            ScriptSource::Inline(value) => Script::deserialize(value)
                .map_err(|err| Error::Config(format!("invalid script: {err}")))?,
        };
        if script.chunk_size == Some(0) || script.responses.iter().any(|r| r.chunk_size == Some(0))
        {
            return Err(Error::Config(
                "invalid script: chunk_size must be at least 1".into(),
            ));
        }
        Ok(Player {
            script: Arc::new(script),
        })
    }

    /// How many responses the script has.
    pub(crate) fn len(&self) -> usize {
        self.script.responses.len()
    }

    /// Plays the response for `request`'s place in the conversation.
    pub(crate) async fn play(
        &self,
        request: &Request,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<Response, Error> {
        let index = model_responses(&request.items);
        let Some(response) = self.script.responses.get(index) else {
            return Err(Error::ScriptExhausted {
                wanted: index + 1,
                responses: self.len(),
            });
        };
        if let Some(error) = &response.error {
            return Err(match error.status {
                Some(status) => Error::Http {
                    status,
                    message: error.message.clone(),
                },
                None => Error::Provider {
                    kind: error.kind.clone().unwrap_or_else(|| "scripted".into()),
                    message: error.message.clone(),
                },
            });
        }
        let chunk_size = response.chunk_size.or(self.script.chunk_size);
        let delay = Duration::from_millis(response.delay_ms.or(self.script.delay_ms).unwrap_or(0));
        let mut partial = Partial::default();
        let mut deltas: Vec<Delta> = Vec::new();
        if let Some(reasoning) = &response.reasoning {
            deltas.extend(chunks(reasoning, chunk_size).map(Delta::Reasoning));
        }
        deltas.extend(chunks(&response.text, chunk_size).map(Delta::Text));
        let calls: Vec<ToolCallOut> = response
            .tool_calls
            .iter()
            .enumerate()
            .map(|(call_index, call)| ToolCallOut {
                call_id: call
                    .call_id
                    .clone()
                    .unwrap_or_else(|| format!("call_{}_{}", index + 1, call_index + 1)),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            })
            .collect();
        deltas.extend(calls.iter().map(|call| Delta::ToolCall {
            call_id: call.call_id.clone(),
            name: call.name.clone(),
        }));
        let mut announced = 0;
        for delta in deltas {
            if !delay.is_zero() {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            if cancel.is_cancelled() {
                partial.tool_calls = calls[..announced].to_vec();
                return Ok(partial.into_response(Stop::Cancelled));
            }
            match delta {
                Delta::Text(text) => partial.text(&text, on_delta),
                Delta::Reasoning(text) => partial.reasoning(&text, on_delta),
                call @ Delta::ToolCall { .. } => {
                    announced += 1;
                    on_delta(call);
                }
            }
        }
        partial.tool_calls = calls;
        partial.usage = response.usage.clone();
        let stop = match response.stop.as_deref() {
            None if partial.tool_calls.is_empty() => Stop::EndTurn,
            None => Stop::ToolUse,
            Some("end_turn") => Stop::EndTurn,
            Some("tool_use") => Stop::ToolUse,
            Some("max_tokens") => Stop::MaxTokens,
            Some(other) => Stop::Other(other.to_string()),
        };
        Ok(partial.into_response(stop))
    }
}

/// How many model responses `items` holds: the runs of consecutive
/// assistant messages and tool calls, which any other item ends.
fn model_responses(items: &[Item]) -> usize {
    let mut responses = 0;
    let mut in_response = false;
    for item in items {
        let from_model = matches!(
            item,
            Item::Message {
                role: Role::Assistant,
                ..
            } | Item::ToolCall { .. }
        );
        if from_model && !in_response {
            responses += 1;
        }
        in_response = from_model;
    }
    responses
}

/// `text` in pieces of `size` characters (never splitting one), or whole.
fn chunks(text: &str, size: Option<usize>) -> impl Iterator<Item = String> + '_ {
    let size = size.unwrap_or(usize::MAX).max(1);
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .char_indices()
            .nth(size)
            .map_or(rest.len(), |(at, _)| at);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_by_characters() {
        assert_eq!(
            chunks("héllo wörld", Some(4)).collect::<Vec<_>>(),
            ["héll", "o wö", "rld"]
        );
        assert_eq!(chunks("abc", None).collect::<Vec<_>>(), ["abc"]);
        assert_eq!(chunks("", Some(2)).count(), 0);
    }

    #[test]
    fn unknown_fields_and_zero_chunks_are_refused() {
        let typo = serde_json::json!({"responses": [{"txt": "hi"}]});
        let err = Player::load(&ScriptSource::Inline(typo)).unwrap_err();
        assert!(err.to_string().contains("unknown field `txt`"), "{err}");
        let zero = serde_json::json!({"chunk_size": 0, "responses": []});
        assert!(Player::load(&ScriptSource::Inline(zero)).is_err());
    }
}
