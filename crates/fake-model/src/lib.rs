//! A fake model API server for exo's tests.
//!
//! [`MockServer`] is a real HTTP server on `127.0.0.1` that records every
//! request, answers each from a queue of canned responses, streams bodies
//! in timed chunks, and counts clients that went away before a body ended.

mod server;

pub use axum::http::{HeaderMap, Method};
pub use server::{Chunk, MockResponse, MockServer, Recorded, CHUNK_PAUSE};

/// An SSE event with a name: an `event: <name>` line and one `data:` line.
pub fn event(name: &str, data: serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An SSE event with only a `data:` line.
pub fn data(data: &str) -> String {
    format!("data: {data}\n\n")
}
