//! A small server-sent events parser, fed the response body in whatever
//! chunks the network delivers.
//!
//! It follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (a
//! CRLF split across chunks is one line ending); a line starting with `:` is
//! a comment; `field: value` loses one space after the colon; a line with no
//! colon is a field with an empty value; `data` lines accumulate joined by
//! `\n`; an empty line dispatches the event, if it has data; `event` names
//! it (default `message`); `id`, `retry` and unknown fields are ignored; a
//! leading byte-order mark is dropped. Unlike a browser, an event left
//! without its final blank line when the stream ends is still dispatched by
//! [`SseParser::finish`]: some servers end with `data: [DONE]` and close.

/// One dispatched event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct SseEvent {
    /// The `event` field, or `message`.
    pub(crate) event: String,
    /// The `data` lines joined by `\n`.
    pub(crate) data: String,
}

/// The longest line or event accepted, in bytes: a provider sending more
/// without a line break is broken, and memory stays bounded.
pub(crate) const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Incremental parser state.
#[derive(Default, Debug)]
pub(crate) struct SseParser {
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    /// The last chunk ended in CR: a LF starting the next one belongs to it.
    skip_lf: bool,
    /// Whether the stream's first bytes were seen (for the BOM).
    started: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub(crate) fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds bytes; returns the events they complete, in order.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        let events = Vec::new();
        if !self.started && !chunk.is_empty() {
            // The BOM may itself be split; wait for three bytes.
            let mut head = std::mem::take(&mut self.line);
            head.extend_from_slice(chunk);
            if head.len() < 3 && b"\xEF\xBB\xBF".starts_with(&head) {
                self.line = head;
                return Ok(events);
            }
            self.started = true;
            let start = if head.starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            };
            return self.push_started(&head[start..], events);
        }
        if self.skip_lf && !chunk.is_empty() {
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
            self.skip_lf = false;
        }
        self.push_started(chunk, events)
    }

    fn push_started(
        &mut self,
        chunk: &[u8],
        mut events: Vec<SseEvent>,
    ) -> Result<Vec<SseEvent>, String> {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let terminator = rest[end];
            let line_bytes = if self.line.is_empty() {
                &rest[..end]
            } else {
                self.line.extend_from_slice(&rest[..end]);
                &self.line[..]
            };
            let line = String::from_utf8_lossy(line_bytes).into_owned();
            self.line.clear();
            rest = &rest[end + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if let Some(event) = self.line_done(&line)? {
                events.push(event);
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "an event-stream line is longer than {MAX_EVENT_BYTES} bytes"
            ));
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &str) -> Result<Option<SseEvent>, String> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > MAX_EVENT_BYTES {
                    return Err(format!(
                        "an event-stream event is longer than {MAX_EVENT_BYTES} bytes"
                    ));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
        })
    }

    /// The stream ended: dispatches an event still being built, whose last
    /// line or blank line never came.
    pub(crate) fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
            if self.started {
                // Errors here are only over-long data, already bounded by
                // the line check.
                let _ = self.line_done(&line);
            }
        }
        self.dispatch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.to_string(),
            data: data.to_string(),
        }
    }

    /// Parses a stream fed in one chunk, then byte by byte, then split at
    /// every position, and checks all agree.
    fn parse(input: &[u8]) -> Vec<SseEvent> {
        let whole = {
            let mut parser = SseParser::new();
            let mut out = parser.push(input).unwrap();
            out.extend(parser.finish());
            out
        };
        let bytewise = {
            let mut parser = SseParser::new();
            let mut out = Vec::new();
            for byte in input {
                out.extend(parser.push(std::slice::from_ref(byte)).unwrap());
            }
            out.extend(parser.finish());
            out
        };
        assert_eq!(whole, bytewise, "byte-by-byte feeding differs");
        for split in 0..=input.len() {
            let mut parser = SseParser::new();
            let mut out = parser.push(&input[..split]).unwrap();
            out.extend(parser.push(&input[split..]).unwrap());
            out.extend(parser.finish());
            assert_eq!(whole, out, "split at {split} differs");
        }
        whole
    }

    #[test]
    fn events_with_and_without_names() {
        assert_eq!(
            parse(b"event: ping\ndata: {}\n\ndata: hello\n\n"),
            vec![ev("ping", "{}"), ev("message", "hello")]
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_eq!(
            parse(b"data: one\ndata: two\ndata:\ndata: four\n\n"),
            vec![ev("message", "one\ntwo\n\nfour")]
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        assert_eq!(
            parse(b": keep-alive\n\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n:tail\n"),
            vec![ev("message", "x")]
        );
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        assert_eq!(
            parse(b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n"),
            vec![ev("a", "1"), ev("b", "2"), ev("message", "3")]
        );
    }

    #[test]
    fn only_one_space_after_the_colon_is_dropped() {
        assert_eq!(
            parse(b"data:no-space\n\ndata:  two spaces\n\n"),
            vec![ev("message", "no-space"), ev("message", " two spaces")]
        );
    }

    #[test]
    fn a_field_without_colon_has_an_empty_value() {
        assert_eq!(parse(b"data\n\n"), vec![ev("message", "")]);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_its_name_resets() {
        assert_eq!(
            parse(b"event: lonely\n\ndata: x\n\n"),
            vec![ev("message", "x")]
        );
    }

    #[test]
    fn a_leading_bom_is_dropped() {
        assert_eq!(parse(b"\xEF\xBB\xBFdata: x\n\n"), vec![ev("message", "x")]);
        // Only at the very start.
        assert_eq!(
            parse(b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"),
            vec![ev("message", "x")]
        );
    }

    #[test]
    fn an_unterminated_last_event_is_dispatched_at_the_end() {
        assert_eq!(
            parse(b"data: a\n\ndata: [DONE]"),
            vec![ev("message", "a"), ev("message", "[DONE]")]
        );
        assert_eq!(parse(b"data: b\n"), vec![ev("message", "b")]);
    }

    #[test]
    fn utf8_split_across_chunks_survives() {
        let input = "data: héllo ✓\n\n".as_bytes();
        assert_eq!(parse(input), vec![ev("message", "héllo ✓")]);
    }

    #[test]
    fn over_long_lines_are_refused() {
        let mut parser = SseParser::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(parser.push(&big).is_err());
    }
}
