//! Fuzzes exo's JSON-RPC framing and message parsing: the bytes a peer may
//! send on a socket or stdio, before any exo method sees them.
//!
//! The input's first byte is the chunk size (how many bytes arrive per
//! read, 1 to 256); the rest is the stream. The frame limit is small, so
//! the oversized-frame paths (discarding a long line or body) are reached
//! with small inputs. `decode_all` must never panic; it also asserts that
//! no message frame exceeds the limit.
//!
//! `crates/rpc/tests/fuzz_regressions.rs` replays this directory's corpus
//! and `crates/rpc/tests/fuzz-failures/` with the same split and limit.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// The frame limit: small, so that long frames are cheap to produce.
/// Keep in step with `crates/rpc/tests/fuzz_regressions.rs`.
const MAX_FRAME_BYTES: usize = 128;

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, data)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let _ = exo_rpc::decode_all(data, chunk, MAX_FRAME_BYTES);
});
