//! A fake model API for exo's tests: a real HTTP server on `127.0.0.1` that
//! speaks each vendor's exact wire format (the OpenAI Responses API, OpenAI
//! Chat Completions, the Anthropic Messages API), as `spec/models.md`
//! documents it and `exo-model` reads it.
//!
//! A test says *what the model answers*, an [`Answer`]: a [`Completion`]
//! (text streamed in deltas, tool calls with their arguments streamed in
//! pieces, usage, the stop reason), an opening that streams some text and
//! never ends (for cancellation and killed processes), or an [`HttpError`]
//! (a status, headers such as `retry-after`, the vendor's error body). A
//! [`Wire`] turns it into that vendor's server-sent events or error.
//!
//! Two front ends serve the answers, one per request, in order; a request
//! that finds none queued gets a 500 saying so. Both record every request
//! ([`Recorded`]) and count clients that left before an answer ended.
//!
//! - [`FakeModel`] is blocking, for synchronous tests such as the
//!   end-to-end tests of the `exo` binary: its server runs on its own
//!   thread and stops when the handle is dropped.
//! - [`MockServer`] runs on the caller's tokio runtime and serves any
//!   [`MockResponse`], for `exo-model`'s own tests, which also hand-write
//!   streams from the single events in [`openai`], [`openai_chat`] and
//!   [`anthropic`].
//!
//! Streamed bodies are sent in pieces split mid-event with a short pause
//! ([`CHUNK_PAUSE`]) before each, so a client's parser must join them.
//! This crate is for tests only and is never published.

mod answer;
pub mod anthropic;
mod blocking;
mod echo;
pub mod openai;
pub mod openai_chat;
mod server;
mod wire;

pub use answer::{
    Answer, Completion, Finish, HttpError, ToolCall, DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS,
};
pub use axum::http::{HeaderMap, Method};
pub use blocking::FakeModel;
pub use echo::{key_echoes, shows_echo};
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
