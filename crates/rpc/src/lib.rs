//! JSON-RPC 2.0 for exo, without any exo method.
//!
//! - [`codec`]: frames on a byte stream. Each connection's first bytes say
//!   whether the peer speaks newline-delimited JSON (ACP, MCP, the Codex
//!   app-server) or the LSP base protocol's `Content-Length` headers
//!   (Neovim's `vim.lsp.rpc`, VS Code's `vscode-jsonrpc`); replies use the
//!   same framing. Frames over the size limit are dropped without being
//!   buffered.
//! - [`message`]: requests, notifications, batches and responses, with the
//!   standard error codes for whatever is not a valid request.
//! - [`client`]: a small blocking client, for the command line.
//!
//! The transport loop (who reads, who writes, what runs where) belongs to
//! the service; this crate is pure and synchronous, which is what lets the
//! fuzz target (`fuzz/fuzz_targets/framing.rs`) drive it directly.

pub mod client;
pub mod codec;
pub mod message;
pub mod peer;

pub use codec::{Frame, FrameCodec, Framing, DEFAULT_MAX_FRAME_BYTES};
pub use message::{ErrorObject, Incoming, Parsed, Request, Response};

/// Decodes every frame in `bytes`, fed in `chunk`-sized pieces, and parses
/// each as JSON-RPC. Used by the fuzz target and its regression tests: it
/// must never panic, whatever the input.
pub fn decode_all(
    bytes: &[u8],
    chunk: usize,
    max_frame_bytes: usize,
) -> Vec<Result<Parsed, String>> {
    use tokio_util::codec::Decoder;
    let mut codec = FrameCodec::new(max_frame_bytes);
    let mut buffer = bytes::BytesMut::new();
    let mut out = Vec::new();
    let chunk = chunk.max(1);
    let handle = |frame: Frame, out: &mut Vec<Result<Parsed, String>>| match frame {
        Frame::Message(payload) => {
            assert!(
                payload.len() <= max_frame_bytes,
                "a message frame exceeds the limit"
            );
            out.push(Ok(message::parse(&payload)));
        }
        Frame::TooLarge { .. } => out.push(Err("too large".into())),
        Frame::Malformed(reason) => out.push(Err(reason)),
    };
    for piece in bytes.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    let fatal = matches!(frame, Frame::Malformed(_));
                    handle(frame, &mut out);
                    if fatal {
                        return out;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    out.push(Err(err.to_string()));
                    return out;
                }
            }
        }
    }
    while let Ok(Some(frame)) = codec.decode_eof(&mut buffer) {
        let fatal = matches!(frame, Frame::Malformed(_));
        handle(frame, &mut out);
        if fatal {
            break;
        }
    }
    out
}
