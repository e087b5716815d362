//! exo's JSON-RPC face and daemon.
//!
//! - [`face`]: method names to the service's typed calls, JSON text to
//!   params and results, service errors to JSON-RPC errors (the one place
//!   that knows the numbers).
//! - [`connection`]: one client's connection on the two-way peer
//!   (`exo_rpc::peer`): what runs inline and what on the blocking pool,
//!   `turn/run` with its notifications, `events/watch` streams.
//! - [`daemon`]: the process around them: the root's lock, the Unix
//!   socket, stdio, signals; and [`daemon::access`], how a command line
//!   reaches a root's store (through its daemon, or in-process).
//!
//! **Architecture Invariant:** this crate holds no domain logic: every
//! method it serves is a typed call of `exo-service`, or a stream built on
//! one. A new face (ACP, MCP, a model gateway) sits beside it, not on it.

pub mod connection;
pub mod daemon;
pub mod face;

pub use connection::serve_connection;
