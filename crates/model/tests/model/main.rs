//! exo-model's integration tests. Each HTTP kind runs against a real local
//! server (`exo_fake_model::MockServer`) that speaks its exact wire format
//! and streams in timed chunks; the behaviour they share (retries,
//! cancellation, timeouts, key hygiene) lives in [`common`] and runs once
//! per kind.
//!
//! - `openai`, `openai_chat`, `anthropic`: one module per wire kind: the
//!   exact request, the streamed response, kind-specific stops and errors.
//! - `fake_model`: the fake server's answers, built once for every wire,
//!   decode as the test said.
//! - `scripted`: the offline replay model.
//! - `config`: endpoint checks made before anything is sent.

mod support;

#[macro_use]
mod common;

mod anthropic;
mod config;
mod fake_model;
mod openai;
mod openai_chat;
mod scripted;
