//! End-to-end tests of the `exo` binary: each test runs the real binary in a
//! fresh temporary root and reads its output into its own types (JSON
//! values), so the CLI's wire format is tested apart from the code that
//! writes it.
//!
//! - `agent`: turns of the built-in executor (`conversation send`)
//!   against a fake model server, once per wire.
//! - `compaction`: automatic compaction of a history approaching the
//!   model's context window, against the fake model server.
//! - `roots`: finding the root from a subdirectory, as git finds `.git`.
//! - `repl`: `chat repl` in line mode: approvals and slash commands.
//! - `scripted`: the scripted provider, replaying by history.
//! - `quickstart`: the README's quickstart, exactly.
//! - `events`: `conversation events` and `conversation append`.
//! - `time_travel`: fork and rewind through the CLI, with artifacts.
//! - `secrets`: secrets, models and bindings; nothing ever printed.
//! - `errors`: bad input, unknown ids, schema checks, exit codes.
//! - `crash`: SIGKILLed writers and concurrent writers.
//! - `isolation`: what a shell command can read of exo's process (its
//!   environment, as root and as another user).
//! - `snapshots`: workspace snapshots, restore, rewind and fork with files.
//! - `files`: files named on the command line: bounded reads, FIFOs,
//!   output files kept out of the root and replaced whole.
//! - `harness`: agents whose turns run a TypeScript module in a runner:
//!   the turn it records, the key it never holds, swapping executors,
//!   modules that throw or do not load, and runners killed mid-turn.
//! - `tree`: `conversation tree`, the history drawn as a graph with the
//!   branches rewinds left and the forks taken.
//! - `export`: `conversation export` as Markdown, HTML (rendered in a
//!   real headless chromium) and JSON lines.
//! - `daily`: help, possible values, completions and man pages, the
//!   conversation in use, `watch` and `events --follow`, turns and
//!   approvals from another terminal, empty lists on a fresh directory,
//!   colours and spinners, `doctor`.
//! - `egress`: HTTP credentials added at the boundary by the egress
//!   proxy: a sandboxed command reaches its bound host with the secret it
//!   never sees, other hosts get nothing, every request is an event.
//! - `foreign`: events a newer exo stored (kinds and fields this one does
//!   not know): shown exactly, forked and rewound across, kept out of
//!   prompts, refused as input.

#[path = "../shared/foreign.rs"]
mod foreign_events;
#[path = "../shared/race.rs"]
mod race;
mod util;

mod acp;
mod agent;
mod claude;
mod codex;
mod compaction;
mod crash;
mod cursor;
mod daily;
mod daily_review;
mod egress;
mod errors;
mod events;
mod export;
mod files;
mod foreign;
mod guards;
mod harness;
mod isolation;
mod mcp;
mod quickstart;
mod repl;
mod roots;
mod run;
mod sandbox;
mod scripted;
mod secrets;
mod snapshots;
mod time_travel;
mod tree;
