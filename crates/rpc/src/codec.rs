//! Framing: newline-delimited JSON or `Content-Length` headers, detected
//! from a connection's first bytes.
//!
//! # Detection
//!
//! Leading whitespace is skipped. If what follows starts with
//! `Content-Length` (any case), the connection uses LSP base-protocol
//! framing; otherwise newline-delimited JSON.
//!
//! # Limits
//!
//! A frame larger than the limit is never buffered whole: the codec yields
//! [`Frame::TooLarge`] once and discards the rest of the frame as it
//! arrives (to the next newline, or the announced length), so a 100 MB line
//! costs at most the limit in memory and the connection stays usable.
//! Malformed `Content-Length` headers cannot be resynchronised, so they end
//! the connection ([`Frame::Malformed`]).

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The default largest frame: 48 MiB (a 32 MiB artifact in base64 fits).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 48 << 20;

/// The largest header block of a `Content-Length` frame.
const MAX_HEADER_BYTES: usize = 8 << 10;

const CONTENT_LENGTH: &[u8] = b"content-length";

/// How a connection frames its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One JSON text per line.
    Ndjson,
    /// LSP base protocol: `Content-Length: N\r\n\r\n` then N bytes.
    ContentLength,
}

impl Framing {
    /// The name used in capabilities.
    pub fn name(self) -> &'static str {
        match self {
            Framing::Ndjson => "ndjson",
            Framing::ContentLength => "content-length",
        }
    }
}

/// One decoded unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A frame's payload (not yet parsed).
    Message(Bytes),
    /// A frame over the limit, being discarded; answer with an error.
    TooLarge {
        /// How many bytes had arrived when it was refused (a lower bound of
        /// its size), or the announced length.
        bytes: usize,
    },
    /// Unrecoverable framing garbage; answer, then close.
    Malformed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Normal,
    /// Dropping the rest of an oversized NDJSON line.
    DiscardLine,
    /// Dropping this many more bytes of an oversized body.
    DiscardBody(usize),
    /// A malformed frame ended the stream.
    Failed,
}

/// The codec for one connection.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    framing: Option<Framing>,
    max_frame_bytes: usize,
    state: State,
    /// How much of the buffer is known to hold no newline, so a long line
    /// arriving in pieces is scanned once, not once per piece.
    scanned: usize,
}

impl FrameCodec {
    /// A codec that detects its framing from the first bytes it decodes.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameCodec {
            framing: None,
            max_frame_bytes,
            state: State::Normal,
            scanned: 0,
        }
    }

    /// A codec with a fixed framing (for clients).
    pub fn with_framing(framing: Framing, max_frame_bytes: usize) -> Self {
        FrameCodec {
            framing: Some(framing),
            max_frame_bytes,
            state: State::Normal,
            scanned: 0,
        }
    }

    /// The framing, once known.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    fn detect(&mut self, buffer: &mut BytesMut) -> Option<Framing> {
        if let Some(framing) = self.framing {
            return Some(framing);
        }
        let start = buffer.iter().position(|b| !b.is_ascii_whitespace())?;
        buffer.advance(start);
        let available = buffer.len().min(CONTENT_LENGTH.len());
        let prefix = &buffer[..available];
        if !prefix.eq_ignore_ascii_case(&CONTENT_LENGTH[..available]) {
            self.framing = Some(Framing::Ndjson);
        } else if available == CONTENT_LENGTH.len() {
            self.framing = Some(Framing::ContentLength);
        }
        // Otherwise: a prefix of "Content-Length"; wait for more bytes.
        self.framing
    }

    fn decode_line(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        loop {
            let newline = buffer[self.scanned.min(buffer.len())..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|offset| offset + self.scanned);
            self.scanned = match newline {
                Some(_) => 0,
                None => buffer.len(),
            };
            match (self.state, newline) {
                (State::DiscardLine, Some(at)) => {
                    buffer.advance(at + 1);
                    self.state = State::Normal;
                }
                (State::DiscardLine, None) => {
                    buffer.clear();
                    self.scanned = 0;
                    return None;
                }
                (_, Some(at)) => {
                    let mut line = buffer.split_to(at + 1);
                    line.truncate(at);
                    if line.last() == Some(&b'\r') {
                        line.truncate(at - 1);
                    }
                    // Length before blankness, as for a line still
                    // arriving: however the bytes are split, a line over the
                    // limit is too large.
                    if line.len() > self.max_frame_bytes {
                        return Some(Frame::TooLarge { bytes: line.len() });
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Frame::Message(line.freeze()));
                }
                // One byte of slack: the buffer may end with the `\r` of a
                // `\r\n` line of exactly the limit.
                (_, None) if buffer.len() > self.max_frame_bytes + 1 => {
                    let bytes = buffer.len();
                    buffer.clear();
                    self.scanned = 0;
                    self.state = State::DiscardLine;
                    return Some(Frame::TooLarge { bytes });
                }
                (_, None) => return None,
            }
        }
    }

    fn decode_content_length(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        if let State::DiscardBody(remaining) = self.state {
            let dropped = remaining.min(buffer.len());
            buffer.advance(dropped);
            if dropped < remaining {
                self.state = State::DiscardBody(remaining - dropped);
                return None;
            }
            self.state = State::Normal;
        }
        // Tolerate blank lines between frames.
        let start = buffer
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(buffer.len());
        buffer.advance(start);
        if buffer.is_empty() {
            return None;
        }
        // Only the first 8 KiB may hold the header block, whether it
        // arrived in one read or many.
        let searched = &buffer[..buffer.len().min(MAX_HEADER_BYTES + 4)];
        let header_end = match find(searched, b"\r\n\r\n") {
            Some(at) => at,
            None if buffer.len() > MAX_HEADER_BYTES => {
                return Some(self.fail("header block without an end (\\r\\n\\r\\n) in 8 KiB"));
            }
            None => return None,
        };
        let mut length = None;
        for line in buffer[..header_end].split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return Some(self.fail("a header line has no ':'"));
            };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(CONTENT_LENGTH) {
                let parsed = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
                match parsed {
                    Some(n) => length = Some(n),
                    None => return Some(self.fail("Content-Length is not a number")),
                }
            }
        }
        let Some(length) = length else {
            return Some(self.fail("a header block has no Content-Length"));
        };
        let body_start = header_end + 4;
        if length > self.max_frame_bytes {
            buffer.advance(body_start);
            let dropped = length.min(buffer.len());
            buffer.advance(dropped);
            if dropped < length {
                self.state = State::DiscardBody(length - dropped);
            }
            return Some(Frame::TooLarge { bytes: length });
        }
        if buffer.len() < body_start + length {
            buffer.reserve(body_start + length - buffer.len());
            return None;
        }
        buffer.advance(body_start);
        Some(Frame::Message(buffer.split_to(length).freeze()))
    }

    fn fail(&mut self, reason: &str) -> Frame {
        self.state = State::Failed;
        Frame::Malformed(reason.to_string())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if self.state == State::Failed {
            buffer.clear();
            return Ok(None);
        }
        Ok(match self.detect(buffer) {
            None => {
                if buffer.len() > MAX_HEADER_BYTES {
                    buffer.clear();
                }
                None
            }
            Some(Framing::Ndjson) => self.decode_line(buffer),
            Some(Framing::ContentLength) => self.decode_content_length(buffer),
        })
    }

    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(buffer)? {
            return Ok(Some(frame));
        }
        // A last NDJSON line without its newline still counts.
        if self.framing == Some(Framing::Ndjson)
            && self.state == State::Normal
            && !buffer.is_empty()
        {
            buffer.extend_from_slice(b"\n");
            return self.decode(buffer);
        }
        buffer.clear();
        Ok(None)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, payload: Bytes, out: &mut BytesMut) -> Result<(), Self::Error> {
        match self.framing.unwrap_or(Framing::Ndjson) {
            Framing::Ndjson => {
                out.reserve(payload.len() + 1);
                out.extend_from_slice(&payload);
                out.extend_from_slice(b"\n");
            }
            Framing::ContentLength => {
                let header = format!("Content-Length: {}\r\n\r\n", payload.len());
                out.reserve(header.len() + payload.len());
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(&payload);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(codec: &mut FrameCodec, input: &[u8]) -> Vec<Frame> {
        let mut buffer = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut buffer).unwrap() {
            out.push(frame);
        }
        while let Some(frame) = codec.decode_eof(&mut buffer).unwrap() {
            out.push(frame);
        }
        out
    }

    fn message(text: &str) -> Frame {
        Frame::Message(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn detects_ndjson() {
        let mut codec = FrameCodec::new(1024);
        let got = frames(&mut codec, b"\n  {\"a\":1}\r\n\n[2]\n{\"last\":true}");
        assert_eq!(codec.framing(), Some(Framing::Ndjson));
        assert_eq!(
            got,
            vec![
                message("{\"a\":1}"),
                message("[2]"),
                message("{\"last\":true}")
            ]
        );
    }

    #[test]
    fn detects_content_length_in_any_case() {
        let mut codec = FrameCodec::new(1024);
        let got = frames(
            &mut codec,
            b"content-length: 7\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{\"a\":1}Content-Length:2\r\n\r\n[]",
        );
        assert_eq!(codec.framing(), Some(Framing::ContentLength));
        assert_eq!(got, vec![message("{\"a\":1}"), message("[]")]);
    }

    #[test]
    fn split_anywhere_gives_the_same_frames() {
        let input = b"Content-Length: 13\r\n\r\n{\"id\":1,\"x\":2}Content-Length: 2\r\n\r\n{}";
        let whole = crate::decode_all(input, input.len(), 1024);
        for chunk in 1..input.len() {
            assert_eq!(
                format!("{:?}", crate::decode_all(input, chunk, 1024)),
                format!("{whole:?}"),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn oversized_lines_are_dropped_and_the_stream_goes_on() {
        let mut codec = FrameCodec::new(16);
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(b"{\"a\":\"");
        buffer.extend_from_slice(&[b'x'; 40]);
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(Frame::TooLarge { bytes: 46 })
        );
        assert!(buffer.is_empty(), "nothing of the big line is kept");
        buffer.extend_from_slice(&[b'y'; 100]);
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
        buffer.extend_from_slice(b"\"}\n{\"ok\":1}\n");
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(message("{\"ok\":1}"))
        );
    }

    #[test]
    fn oversized_bodies_are_skipped() {
        let mut codec = FrameCodec::new(8);
        let mut input = b"Content-Length: 20\r\n\r\n".to_vec();
        input.extend_from_slice(&[b'z'; 20]);
        input.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
        assert_eq!(
            frames(&mut codec, &input),
            vec![Frame::TooLarge { bytes: 20 }, message("{}")]
        );
    }

    #[test]
    fn malformed_headers_end_the_stream() {
        for input in [
            &b"Content-Length: nope\r\n\r\n{}"[..],
            b"Content-Length: 2\r\nbroken\r\n\r\n{}",
        ] {
            let mut codec = FrameCodec::new(1024);
            let got = frames(&mut codec, input);
            assert!(matches!(got.as_slice(), [Frame::Malformed(_)]), "{got:?}");
        }
    }

    #[test]
    fn encodes_in_the_detected_framing() {
        let mut codec = FrameCodec::new(1024);
        frames(&mut codec, b"Content-Length: 2\r\n\r\n{}");
        let mut out = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"{\"r\":1}"), &mut out)
            .unwrap();
        assert_eq!(&out[..], b"Content-Length: 7\r\n\r\n{\"r\":1}");
        let mut ndjson = FrameCodec::new(1024);
        let mut out = BytesMut::new();
        ndjson.encode(Bytes::from_static(b"{}"), &mut out).unwrap();
        assert_eq!(&out[..], b"{}\n");
    }
}
