//! What the fake model answers, independent of the wire: a complete answer,
//! the opening of one that never ends, or an HTTP error. [`Wire`](crate::Wire)
//! turns each into a vendor's exact bytes.

use serde_json::Value;

/// What the fake model answers to one request.
#[derive(Clone, PartialEq, Debug)]
pub enum Answer {
    /// A complete streamed answer.
    Complete(Completion),
    /// The start of an answer: the stream opens, these text deltas arrive,
    /// and then it stays open, sending nothing more, until the client goes
    /// away (cancellation, a killed process) or the server stops.
    Opening {
        /// The text streamed before the stream goes quiet, as deltas.
        text_deltas: Vec<String>,
    },
    /// An HTTP error with the vendor's error body.
    Error(HttpError),
}

impl Answer {
    /// A complete answer of this text and nothing else.
    pub fn text(text: &str) -> Answer {
        Answer::Complete(Completion::text(text))
    }

    /// An answer that streams this text (split into deltas as
    /// [`Completion::text`] does) and never ends.
    pub fn opening(text: &str) -> Answer {
        Answer::Opening {
            text_deltas: split_text(text),
        }
    }
}

impl From<Completion> for Answer {
    fn from(completion: Completion) -> Answer {
        Answer::Complete(completion)
    }
}

impl From<HttpError> for Answer {
    fn from(error: HttpError) -> Answer {
        Answer::Error(error)
    }
}

/// A complete answer: text, then tool calls, then usage and a stop reason.
#[derive(Clone, PartialEq, Debug)]
pub struct Completion {
    /// The text, as the deltas it is streamed in; empty for none.
    pub text_deltas: Vec<String>,
    /// The tool calls, after the text.
    pub tool_calls: Vec<ToolCall>,
    /// Prompt tokens reported in the usage.
    pub input_tokens: u64,
    /// Answer tokens reported in the usage.
    pub output_tokens: u64,
    /// How the answer ends.
    pub finish: Finish,
}

/// The usage a [`Completion`] reports unless told otherwise: prompt tokens.
pub const DEFAULT_INPUT_TOKENS: u64 = 5;
/// The usage a [`Completion`] reports unless told otherwise: answer tokens.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 2;

impl Default for Completion {
    fn default() -> Completion {
        Completion {
            text_deltas: Vec::new(),
            tool_calls: Vec::new(),
            input_tokens: DEFAULT_INPUT_TOKENS,
            output_tokens: DEFAULT_OUTPUT_TOKENS,
            finish: Finish::Natural,
        }
    }
}

impl Completion {
    /// An answer of this text, streamed as one delta per word (each with the
    /// whitespace after it), so `"It is done."` is `"It "`, `"is "`,
    /// `"done."`. Empty text streams no text at all.
    pub fn text(text: &str) -> Completion {
        Completion {
            text_deltas: split_text(text),
            ..Completion::default()
        }
    }

    /// An answer whose text is streamed in exactly these deltas.
    pub fn deltas<I, S>(deltas: I) -> Completion
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Completion {
            text_deltas: deltas.into_iter().map(Into::into).collect(),
            ..Completion::default()
        }
    }

    /// Adds a tool call after the text and any earlier calls. `arguments`
    /// is normally a JSON object; its JSON text is streamed in pieces.
    pub fn with_tool_call(mut self, call_id: &str, name: &str, arguments: Value) -> Completion {
        self.tool_calls.push(ToolCall {
            call_id: call_id.to_string(),
            name: name.to_string(),
            arguments,
            namespace: None,
        });
        self
    }

    /// Adds a call of a tool in a namespace (the Responses API's
    /// `namespace` of a `function_call`, as Codex offers MCP servers'
    /// tools); other wires ignore the namespace.
    pub fn with_namespaced_tool_call(
        mut self,
        call_id: &str,
        namespace: &str,
        name: &str,
        arguments: Value,
    ) -> Completion {
        self.tool_calls.push(ToolCall {
            call_id: call_id.to_string(),
            name: name.to_string(),
            arguments,
            namespace: Some(namespace.to_string()),
        });
        self
    }

    /// Sets the usage reported.
    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Completion {
        self.input_tokens = input_tokens;
        self.output_tokens = output_tokens;
        self
    }

    /// Sets how the answer ends.
    pub fn with_finish(mut self, finish: Finish) -> Completion {
        self.finish = finish;
        self
    }

    /// The whole text.
    pub fn full_text(&self) -> String {
        self.text_deltas.concat()
    }
}

/// One tool call of a [`Completion`].
#[derive(Clone, PartialEq, Debug)]
pub struct ToolCall {
    /// The call's id, which its result will refer to.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, normally a JSON object.
    pub arguments: Value,
    /// The tool's namespace (Responses API only).
    pub namespace: Option<String>,
}

impl ToolCall {
    /// The arguments as the model writes them: JSON text.
    pub fn arguments_text(&self) -> String {
        self.arguments.to_string()
    }
}

/// How a [`Completion`] ends, as each wire says it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Finish {
    /// The model is done: tool use when there are tool calls, else the end
    /// of its turn.
    #[default]
    Natural,
    /// The answer hit the output cap: OpenAI `response.incomplete` with
    /// `max_output_tokens`, Chat Completions `length`, Anthropic
    /// `max_tokens`.
    MaxTokens,
}

/// An HTTP error answer: a status, extra headers (e.g. `retry-after`), and
/// a JSON body in the vendor's error shape.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HttpError {
    /// The HTTP status.
    pub status: u16,
    /// The error's type in the body; `None` for what the vendor says for
    /// this status (see [`Wire::error_body`](crate::Wire::error_body)).
    pub kind: Option<String>,
    /// The error message in the body.
    pub message: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl HttpError {
    /// An error with this status and message.
    pub fn new(status: u16, message: &str) -> HttpError {
        HttpError {
            status,
            kind: None,
            message: message.to_string(),
            headers: Vec::new(),
        }
    }

    /// Sets the error's type in the body.
    pub fn with_kind(mut self, kind: &str) -> HttpError {
        self.kind = Some(kind.to_string());
        self
    }

    /// Adds a response header, e.g. `retry-after-ms`.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpError {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// One delta per word, each keeping the whitespace after it.
fn split_text(text: &str) -> Vec<String> {
    let mut deltas: Vec<String> = Vec::new();
    let mut after_space = false;
    for character in text.chars() {
        let space = character.is_whitespace();
        match deltas.last_mut() {
            Some(last) if space || !after_space => last.push(character),
            _ => deltas.push(character.to_string()),
        }
        after_space = space;
    }
    deltas
}

/// `text` in two pieces split near the middle (on a character boundary),
/// or one piece when it is too short: how argument JSON is streamed.
pub(crate) fn halves(text: &str) -> Vec<String> {
    let mut middle = text.len() / 2;
    while !text.is_char_boundary(middle) {
        middle += 1;
    }
    [&text[..middle], &text[middle..]]
        .into_iter()
        .filter(|piece| !piece.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_after_whitespace() {
        assert_eq!(
            split_text("It is  a cat ✓."),
            ["It ", "is  ", "a ", "cat ", "✓."]
        );
        assert_eq!(split_text(" lead"), [" ", "lead"]);
        assert_eq!(split_text("one"), ["one"]);
        assert!(split_text("").is_empty());
    }

    #[test]
    fn halves_split_on_a_character_boundary() {
        assert_eq!(halves("{\"a\":\"✓\"}"), ["{\"a\":", "\"✓\"}"]);
        assert_eq!(halves("{}"), ["{", "}"]);
        assert_eq!(halves("x"), ["x"]);
        assert!(halves("").is_empty());
    }
}
