//! The daemon conformance suite: a real `exo daemon` process, spoken to
//! over its Unix socket and over stdio, in NDJSON and in `Content-Length`
//! framing, through raw bytes read back into plain JSON values.
//!
//! - `conformance`: JSON-RPC 2.0 rules, errors, framings, transports,
//!   hostile input, the socket's permissions, one daemon per root.
//! - `streams`: `events/watch` replay and live delivery, many clients,
//!   lagging watchers.
//! - `lifecycle`: SIGTERM, kill -9, restarts, the CLI through a daemon.
//! - `limits`: nesting, exact ids, batches and the in-flight limit,
//!   memory for large appends.
//! - `roots`: who serves a root: sockets a daemon must not take, a daemon
//!   of another root, a daemon starting while a command uses the store.
//! - `snapshots`: workspace snapshots over JSON-RPC, with the daemon's watcher.
//! - `examples`: the example scripts in `examples/`, run for real.
//! - `turns`: `turn/run` against a fake model API: streamed notifications,
//!   refusals that record nothing, where the API key goes, stdio.
//! - `approvals`: `approval/request` and `approval/respond` across
//!   connections; callers that cannot answer.
//! - `cancellation`: `turn/cancel` and `$/cancelRequest` while the model
//!   streams or a shell command runs.
//! - `turn_lifecycle`: kill -9 and SIGTERM with a turn running, and the
//!   turn after.
//! - `harness`: TypeScript harness turns: warm runners, a harness that
//!   ignores `turn/cancel`, runners ending with the daemon, `agent/set`.
//! - `foreign`: events a newer exo stored (kinds and fields this one does
//!   not know), listed, fetched, replayed and kept out of prompts.

#[path = "../shared/foreign.rs"]
mod foreign_events;
#[path = "../shared/race.rs"]
mod race;
mod support;

mod approvals;
mod cancellation;
mod conformance;
mod examples;
mod foreign;
mod gateway;
mod harness;
mod lifecycle;
mod limits;
mod roots;
mod snapshots;
mod streams;
mod turn_lifecycle;
mod turns;
