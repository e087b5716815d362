//! Fuzz regressions and properties of the framing layer.
//!
//! - Every input of the `framing` fuzz target's corpus
//!   (`fuzz/corpus/framing/`, see `fuzz/README.md`) and every crash it
//!   found (`crates/rpc/tests/fuzz-failures/`, if any) is replayed through
//!   [`exo_rpc::decode_all`] at several chunk sizes: it must not panic. The
//!   seeds also have expected decodings, the same at every chunk size.
//! - Properties: random bytes never panic; a stream of valid frames (NDJSON
//!   or `Content-Length`, oversized frames among them) decodes to the same
//!   messages however it is split, and an oversized frame yields one "too
//!   large" item without stopping the stream; garbage mixed in never panics
//!   and does not change how the frames before it decode.
//!
//! A fuzz input is the chunk size (its first byte, plus one) followed by
//! the stream, decoded with a 128-byte frame limit, as in
//! `fuzz/fuzz_targets/framing.rs`.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use exo_rpc::message::{self, Incoming, Parsed, Response};
use exo_rpc::{Frame, FrameCodec};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use tokio_util::codec::Decoder;

/// What [`exo_rpc::decode_all`] returns.
type Decoded = Vec<Result<Parsed, String>>;

/// The fuzz target's frame limit.
const FUZZ_MAX_FRAME_BYTES: usize = 128;

/// The frame limit of the properties: every generated valid message is
/// smaller, every generated oversized frame larger.
const LIMIT: usize = 512;

/// Chunk sizes every replayed input is decoded with.
const CHUNKS: &[usize] = &[1, 2, 3, 5, 8, 13, 64, 1000, usize::MAX];

fn too_large() -> Result<Parsed, String> {
    Err("too large".to_string())
}

// ------------------------------------------------------------ the corpus

fn fuzz_inputs() -> Vec<PathBuf> {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = [
        package.join("../../fuzz/corpus/framing"),
        package.join("tests/fuzz-failures"),
    ];
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Splits a fuzz input as the fuzz target does.
fn split_fuzz_input(input: &[u8]) -> Option<(usize, &[u8])> {
    let (&chunk, data) = input.split_first()?;
    Some((usize::from(chunk) + 1, data))
}

#[test]
fn fuzz_corpus_and_failures_replay_without_panicking() {
    let files = fuzz_inputs();
    let seeds = files
        .iter()
        .filter(|path| file_name(path).starts_with("seed-"))
        .count();
    assert!(seeds >= 8, "fuzz/corpus/framing/seed-* missing: {files:?}");
    for path in &files {
        let input = std::fs::read(path).expect("a readable fuzz input");
        let Some((chunk, data)) = split_fuzz_input(&input) else {
            continue;
        };
        let replayed = std::panic::catch_unwind(|| {
            exo_rpc::decode_all(data, chunk, FUZZ_MAX_FRAME_BYTES);
            for &chunk in CHUNKS {
                exo_rpc::decode_all(data, chunk, FUZZ_MAX_FRAME_BYTES);
                exo_rpc::decode_all(data, chunk, exo_rpc::DEFAULT_MAX_FRAME_BYTES);
            }
        });
        assert!(replayed.is_ok(), "{} panics", path.display());
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One line per decoded item, for the expectations below.
fn render(decoded: &Decoded) -> String {
    fn incoming(item: &Incoming) -> String {
        match item {
            Incoming::Request(request) => match &request.id {
                Some(id) => format!("request {id} {}", request.method),
                None => format!("notification {}", request.method),
            },
            Incoming::Response(response) => format!("response {}", response.id),
            Incoming::Invalid(response) => format!("invalid {}", error(response)),
        }
    }
    fn error(response: &Response) -> String {
        match &response.outcome {
            Ok(result) => format!("{}: ok {result}", response.id),
            Err(error) => format!("{}: {} {}", response.id, error.code, error.message),
        }
    }
    let mut out = String::new();
    for item in decoded {
        let line = match item {
            Ok(Parsed::Single(item)) => incoming(item),
            Ok(Parsed::Batch(items)) => {
                let items: Vec<String> = items.iter().map(incoming).collect();
                format!("batch [{}]", items.join(", "))
            }
            Ok(Parsed::Error(response)) => format!("error {}", error(response)),
            Err(reason) => format!("frame error: {reason}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The seeds decode as written here, at every chunk size.
#[test]
fn fuzz_seeds_decode_the_same_at_every_chunk_size() {
    let expectations: &[(&str, &str)] = &[
        (
            "seed-batch",
            r#"batch [request 1 ping, notification n, invalid null: -32600 invalid request: expected a JSON object]
error null: -32600 invalid request: empty batch
"#,
        ),
        (
            "seed-content-length-oversized",
            "frame error: too large
error null: -32600 invalid request: empty batch
",
        ),
        (
            "seed-content-length-request",
            r#"request 1 ping
invalid null: -32600 invalid request: "jsonrpc" must be "2.0"
"#,
        ),
        (
            "seed-crlf-truncated",
            "request 2 ping
error null: -32700 parse error: EOF while parsing a string at line 1 column 34
",
        ),
        (
            "seed-garbage-header",
            "frame error: Content-Length is not a number
",
        ),
        (
            "seed-ndjson-garbage",
            "error null: -32700 parse error: invalid UTF-8 at byte 0
error null: -32700 parse error: expected value at line 1 column 1
invalid null: -32600 invalid request: id must be a string, a number or null
",
        ),
        (
            "seed-ndjson-oversized",
            "frame error: too large
request 2 ping
",
        ),
        (
            "seed-ndjson-request",
            r#"request 1 ping
request "b" initialize
"#,
        ),
    ];
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/framing");
    let mut failures = Vec::new();
    for (seed, expected) in expectations {
        let input = std::fs::read(corpus.join(seed)).expect("the seed exists");
        let (own_chunk, data) = split_fuzz_input(&input).expect("a seed is not empty");
        for chunk in CHUNKS.iter().copied().chain([own_chunk]) {
            let actual = render(&exo_rpc::decode_all(data, chunk, FUZZ_MAX_FRAME_BYTES));
            if actual != *expected {
                failures.push(format!(
                    "{seed} at chunk {chunk}:\n--- expected\n{expected}--- actual\n{actual}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ----------------------------------- chunking differences the fuzzer found

/// An NDJSON line of exactly the limit, ended by `\r\n`, is a message
/// however the reads split it (a read used to end between the line and its
/// `\n` and make it "too large").
#[test]
fn a_crlf_line_at_the_limit_is_a_message_however_split() {
    let line = br#"{"jsonrpc":"2.0","method":"ping"}"#;
    let limit = line.len();
    let mut input = line.to_vec();
    input.extend_from_slice(b"\r\n");
    let whole = exo_rpc::decode_all(&input, input.len(), limit);
    assert_eq!(whole, vec![Ok(message::parse(line))]);
    for chunk in 1..input.len() {
        assert_eq!(
            exo_rpc::decode_all(&input, chunk, limit),
            whole,
            "chunk {chunk}"
        );
    }
}

/// A blank line longer than the limit is "too large" however it arrives
/// (it used to be skipped when whole).
#[test]
fn a_long_blank_line_is_too_large_however_split() {
    let mut input = b"{}\n".to_vec();
    input.extend_from_slice(&[b' '; 40]);
    input.extend_from_slice(b"\n{}\n");
    let whole = exo_rpc::decode_all(&input, input.len(), 16);
    assert_eq!(whole.len(), 3, "{whole:?}");
    assert_eq!(whole[1], too_large());
    for chunk in [1, 4, 7, 16, 17] {
        assert_eq!(
            exo_rpc::decode_all(&input, chunk, 16),
            whole,
            "chunk {chunk}"
        );
    }
}

/// A `Content-Length` header block over 8 KiB ends the connection however
/// it arrives (it used to be accepted when whole).
#[test]
fn a_long_header_block_is_malformed_however_split() {
    let mut input = b"Content-Length: 2\r\nX-Padding: ".to_vec();
    input.extend_from_slice(&[b'a'; 9000]);
    input.extend_from_slice(b"\r\n\r\n{}");
    for chunk in [1000, 4096, input.len()] {
        let decoded = exo_rpc::decode_all(&input, chunk, 1024);
        assert!(
            matches!(decoded.as_slice(), [Err(reason)] if reason.contains("8 KiB")),
            "chunk {chunk}: {decoded:?}"
        );
    }
}

// ------------------------------------------------------------ properties

/// [`exo_rpc::decode_all`] with reads that end at the given offsets rather
/// than every `chunk` bytes.
fn decode_at(bytes: &[u8], cuts: &[usize], max_frame_bytes: usize) -> Decoded {
    let mut codec = FrameCodec::new(max_frame_bytes);
    let mut buffer = BytesMut::new();
    let mut out = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|&cut| cut.min(bytes.len())).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let item = |frame: Frame| match frame {
        Frame::Message(payload) => {
            assert!(payload.len() <= max_frame_bytes);
            (Ok(message::parse(&payload)), false)
        }
        Frame::TooLarge { .. } => (too_large(), false),
        Frame::Malformed(reason) => (Err(reason), true),
    };
    let mut start = 0;
    for cut in cuts {
        buffer.extend_from_slice(&bytes[start..cut]);
        start = cut;
        while let Some(frame) = codec.decode(&mut buffer).expect("decode never fails") {
            let (decoded, fatal) = item(frame);
            out.push(decoded);
            if fatal {
                return out;
            }
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buffer).expect("decode never fails") {
        let (decoded, fatal) = item(frame);
        out.push(decoded);
        if fatal {
            break;
        }
    }
    out
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(Value::from),
        "[a-z0-9-]{0,12}".prop_map(Value::from),
        Just(Value::Null),
    ]
}

/// One JSON-RPC message: a request, a notification or a response.
fn single_message() -> impl Strategy<Value = Value> {
    let params = prop_oneof![
        Just(None),
        "\\PC{0,24}".prop_map(|text| Some(json!({ "text": text }))),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|items| Some(json!(items))),
    ];
    let request = (prop::option::of(id()), "[a-z]{1,8}(/[a-z_]{1,10})?", params).prop_map(
        |(id, method, params)| {
            let mut request = json!({"jsonrpc": "2.0", "method": method});
            if let Some(id) = id {
                request["id"] = id;
            }
            if let Some(params) = params {
                request["params"] = params;
            }
            request
        },
    );
    let response = (id(), any::<bool>(), "\\PC{0,16}").prop_map(|(id, ok, text)| {
        if ok {
            json!({"jsonrpc": "2.0", "id": id, "result": {"text": text}})
        } else {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": text}})
        }
    });
    prop_oneof![4 => request, 1 => response]
}

/// A message or a batch of them, serialized compactly or pretty-printed.
fn payload() -> impl Strategy<Value = (Value, bool)> {
    let message = prop_oneof![
        4 => single_message(),
        1 => prop::collection::vec(single_message(), 1..4).prop_map(Value::Array),
    ];
    (message, any::<bool>())
}

/// One unit of a generated stream, with how it is laid out.
#[derive(Clone, Debug)]
enum Unit {
    /// A valid message, smaller than [`LIMIT`].
    Message {
        json: Value,
        pretty: bool,
        layout: u8,
    },
    /// A frame `LIMIT + 1 + extra` bytes long.
    Oversized { extra: usize, layout: u8 },
    /// Bytes that are no frame: for NDJSON a line (no `\n` or `\r`); for
    /// `Content-Length` whatever came.
    Garbage(Vec<u8>),
}

fn valid_unit() -> impl Strategy<Value = Unit> {
    prop_oneof![
        6 => (payload(), any::<u8>()).prop_map(|((json, pretty), layout)| Unit::Message {
            json,
            pretty,
            layout
        }),
        1 => (0usize..700, any::<u8>()).prop_map(|(extra, layout)| Unit::Oversized { extra, layout }),
    ]
}

fn garbage_unit() -> impl Strategy<Value = Unit> {
    prop::collection::vec(any::<u8>(), 1..100).prop_map(Unit::Garbage)
}

/// A stream in one framing, and the items it must decode to.
#[derive(Debug)]
struct Stream {
    bytes: Vec<u8>,
    expected: Decoded,
    /// The items expected before the first garbage unit, when the stream
    /// holds some (`Content-Length` garbage has no predictable decoding).
    expected_prefix: Option<usize>,
}

fn encode(units: &[Unit], content_length: bool, leading: u8) -> Stream {
    let mut stream = Stream {
        bytes: Vec::new(),
        expected: Vec::new(),
        expected_prefix: None,
    };
    // Whitespace before the first frame is skipped by detection.
    stream
        .bytes
        .extend_from_slice(&b"\n \r\n\t"[..usize::from(leading % 6)]);
    for (index, unit) in units.iter().enumerate() {
        let last = index + 1 == units.len();
        match unit {
            Unit::Message {
                json,
                pretty,
                layout,
            } => {
                let pretty = *pretty && content_length;
                let mut payload = if pretty {
                    serde_json::to_vec_pretty(json)
                } else {
                    serde_json::to_vec(json)
                }
                .expect("serializes");
                if payload.len() >= LIMIT {
                    // Too long for a valid unit: shrink it to a ping.
                    payload = br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#.to_vec();
                }
                stream.expected.push(Ok(message::parse(&payload)));
                if content_length {
                    frame_content_length(&mut stream.bytes, &payload, *layout, index == 0);
                } else {
                    frame_line(&mut stream.bytes, &payload, *layout, last);
                }
            }
            Unit::Oversized { extra, layout } => {
                let size = LIMIT + 1 + extra;
                stream.expected.push(too_large());
                if content_length {
                    // The body holds what looks like frames: it is skipped
                    // by count, not by content.
                    let body: Vec<u8> = b"Content-Length: 2\r\n\r\n{}\n"
                        .iter()
                        .copied()
                        .cycle()
                        .take(size)
                        .collect();
                    frame_content_length(&mut stream.bytes, &body, *layout, index == 0);
                } else {
                    let mut line =
                        br#"{"jsonrpc":"2.0","id":1,"method":"big","params":[""#.to_vec();
                    let tail = br#""]}"#;
                    line.resize(size - tail.len(), b'x');
                    line.extend_from_slice(tail);
                    frame_line(&mut stream.bytes, &line, *layout, last);
                }
            }
            Unit::Garbage(bytes) => {
                if content_length {
                    stream.expected_prefix.get_or_insert(stream.expected.len());
                    stream.bytes.extend_from_slice(bytes);
                } else {
                    let line: Vec<u8> = bytes
                        .iter()
                        .copied()
                        .filter(|&b| b != b'\n' && b != b'\r')
                        .collect();
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        stream.expected.push(Ok(message::parse(&line)));
                    }
                    stream.bytes.extend_from_slice(&line);
                    stream.bytes.push(b'\n');
                }
            }
        }
    }
    stream
}

/// An NDJSON line: `\n` or `\r\n`, maybe blank lines after it, maybe no
/// line ending at all at the end of the stream.
fn frame_line(out: &mut Vec<u8>, payload: &[u8], layout: u8, last: bool) {
    out.extend_from_slice(payload);
    if last && layout & 0b1000 != 0 {
        return;
    }
    out.extend_from_slice(if layout & 1 != 0 { b"\r\n" } else { b"\n" });
    match (layout >> 1) & 0b11 {
        0 => {}
        1 => out.extend_from_slice(b"\n"),
        2 => out.extend_from_slice(b"  \r\n"),
        _ => out.extend_from_slice(b"\t\n\n"),
    }
}

/// A `Content-Length` frame, its header in one of several spellings.
fn frame_content_length(out: &mut Vec<u8>, body: &[u8], layout: u8, first: bool) {
    let name = if layout & 1 != 0 {
        "content-length"
    } else {
        "Content-Length"
    };
    let space = if layout & 2 != 0 { " " } else { "" };
    let content_type = "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n";
    // Detection needs `Content-Length` first in the stream.
    if layout & 4 != 0 && !first {
        out.extend_from_slice(content_type.as_bytes());
    }
    out.extend_from_slice(format!("{name}:{space}{}\r\n", body.len()).as_bytes());
    if layout & 8 != 0 {
        out.extend_from_slice(content_type.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    if layout & 16 != 0 {
        out.extend_from_slice(b"\r\n");
    }
}

/// Bytes built from framing tokens and noise.
fn framing_noise() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"Content-Length: ".to_vec()),
        Just(b"content-length:".to_vec()),
        "[0-9]{1,4}".prop_map(String::into_bytes),
        Just(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec()),
        Just(b"[".to_vec()),
        Just(b"  ".to_vec()),
    ];
    prop::collection::vec(token, 0..64).prop_map(|tokens| tokens.concat())
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(16),
        Just(FUZZ_MAX_FRAME_BYTES),
        Just(LIMIT),
        Just(exo_rpc::DEFAULT_MAX_FRAME_BYTES),
    ]
}

fn cuts(len: usize, indices: &[Index]) -> Vec<usize> {
    indices.iter().map(|index| index.index(len + 1)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..300,
        limit in limit(),
    ) {
        exo_rpc::decode_all(&bytes, chunk, limit);
    }

    #[test]
    fn framing_noise_never_panics(
        bytes in framing_noise(),
        chunk in 1usize..64,
        indices in prop::collection::vec(any::<Index>(), 0..16),
        limit in limit(),
    ) {
        exo_rpc::decode_all(&bytes, chunk, limit);
        decode_at(&bytes, &cuts(bytes.len(), &indices), limit);
    }

    #[test]
    fn valid_streams_decode_the_same_however_split(
        units in prop::collection::vec(valid_unit(), 1..12),
        content_length in any::<bool>(),
        leading in any::<u8>(),
        chunk in 1usize..600,
        indices in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let stream = encode(&units, content_length, leading);
        let bytes = &stream.bytes;
        prop_assert_eq!(&exo_rpc::decode_all(bytes, bytes.len().max(1), LIMIT), &stream.expected);
        prop_assert_eq!(&exo_rpc::decode_all(bytes, chunk, LIMIT), &stream.expected);
        prop_assert_eq!(&exo_rpc::decode_all(bytes, 1, LIMIT), &stream.expected);
        prop_assert_eq!(&decode_at(bytes, &cuts(bytes.len(), &indices), LIMIT), &stream.expected);
    }

    #[test]
    fn oversized_frames_are_refused_and_the_stream_goes_on(
        before in prop::collection::vec(payload(), 0..4),
        extra in 0usize..5000,
        after in prop::collection::vec(payload(), 1..4),
        content_length in any::<bool>(),
        layout in any::<u8>(),
        chunk in 1usize..600,
    ) {
        let message = |(json, pretty): (Value, bool)| Unit::Message { json, pretty, layout };
        let mut units: Vec<Unit> = before.into_iter().map(message).collect();
        units.push(Unit::Oversized { extra, layout });
        units.extend(after.into_iter().map(message));
        let stream = encode(&units, content_length, 0);
        let decoded = exo_rpc::decode_all(&stream.bytes, chunk, LIMIT);
        let refused = decoded.iter().filter(|item| **item == too_large()).count();
        prop_assert_eq!(refused, 1);
        prop_assert_eq!(decoded, stream.expected);
    }

    #[test]
    fn garbage_lines_in_ndjson_decode_the_same_however_split(
        first in valid_unit(),
        rest in prop::collection::vec(prop_oneof![valid_unit(), garbage_unit()], 0..12),
        chunk in 1usize..600,
        indices in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        // A valid first frame: garbage could start with `Content-Length`.
        let units: Vec<Unit> = std::iter::once(first).chain(rest).collect();
        let stream = encode(&units, false, 0);
        let bytes = &stream.bytes;
        prop_assert_eq!(&exo_rpc::decode_all(bytes, bytes.len().max(1), LIMIT), &stream.expected);
        prop_assert_eq!(&exo_rpc::decode_all(bytes, chunk, LIMIT), &stream.expected);
        prop_assert_eq!(&decode_at(bytes, &cuts(bytes.len(), &indices), LIMIT), &stream.expected);
    }

    #[test]
    fn garbage_in_content_length_streams_never_panics(
        first in valid_unit(),
        rest in prop::collection::vec(prop_oneof![3 => valid_unit(), 1 => garbage_unit()], 0..12),
        chunk in 1usize..600,
        indices in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let units: Vec<Unit> = std::iter::once(first).chain(rest).collect();
        let stream = encode(&units, true, 0);
        let bytes = &stream.bytes;
        let whole = exo_rpc::decode_all(bytes, bytes.len().max(1), LIMIT);
        let prefix = stream.expected_prefix.unwrap_or(stream.expected.len());
        prop_assert_eq!(&whole[..prefix.min(whole.len())], &stream.expected[..prefix.min(whole.len())]);
        prop_assert!(whole.len() >= prefix, "frames before the garbage were lost: {:?}", whole);
        // A malformed frame, if any, is the last item.
        if let Some(at) = whole.iter().position(|item| matches!(item, Err(reason) if reason != "too large")) {
            prop_assert_eq!(at + 1, whole.len());
        }
        prop_assert_eq!(&exo_rpc::decode_all(bytes, chunk, LIMIT), &whole);
        prop_assert_eq!(&decode_at(bytes, &cuts(bytes.len(), &indices), LIMIT), &whole);
    }
}
