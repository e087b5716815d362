//! A fake model API server for exo's tests.
//!
//! [`MockServer`] is a real HTTP server on `127.0.0.1` that records every
//! request, answers each from a queue of canned responses, streams bodies
//! in timed chunks, and counts clients that went away before a body ended.
//!
//! A test says what the model answers ([`Answer`]: a [`Completion`] with
//! text, tool calls and usage, an opening that never ends, or an
//! [`HttpError`]) and a [`Wire`] turns it into the vendor's exact bytes, as
//! `spec/models.md` documents them. The modules [`openai`], [`openai_chat`]
//! and [`anthropic`] have the single events, for tests that need a stream
//! no answer describes.

mod answer;
pub mod anthropic;
pub mod openai;
pub mod openai_chat;
mod server;
mod wire;

pub use answer::{
    Answer, Completion, Finish, HttpError, ToolCall, DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS,
};
pub use axum::http::{HeaderMap, Method};
pub use server::{Chunk, MockResponse, MockServer, Recorded, CHUNK_PAUSE};
pub use wire::Wire;

/// An SSE event with a name: an `event: <name>` line and one `data:` line.
pub fn event(name: &str, data: serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An SSE event with only a `data:` line.
pub fn data(data: &str) -> String {
    format!("data: {data}\n\n")
}
