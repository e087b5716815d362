//! The blocking front end and the shape of what it sends, seen through a
//! plain HTTP/1.1 client over a `TcpStream`. That `exo-model` decodes each
//! wire's answers is tested in `exo-model`'s own tests (`fake_model.rs`),
//! since this crate cannot depend on it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use exo_fake_model::{Answer, Completion, FakeModel, Finish, HttpError, Wire};
use serde_json::{json, Value};

/// A generous limit for anything a test waits for.
const LIMIT: Duration = Duration::from_secs(10);

/// A response as the test client read it.
struct Reply {
    status: u16,
    /// Header lines, lowercased names, as `name: value`.
    headers: Vec<String>,
    /// The body, de-chunked.
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.headers
            .iter()
            .find_map(|line| line.strip_prefix(&prefix))
    }
}

/// Sends a POST with a JSON body and `connection: close`.
fn send(addr: SocketAddr, path: &str, body: &Value) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nx-test: yes\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
}

/// Sends a POST and reads the whole response.
fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    let mut stream = send(addr, path, body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse(&raw).expect("a whole response")
}

/// Splits a response into status, headers and body, de-chunking what has
/// arrived of a chunked body; `None` while the headers are incomplete.
fn parse(raw: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<String> = lines
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            format!("{}: {value}", name.to_ascii_lowercase())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|line| line == "transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// The data of the complete chunks in `rest`.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        if size == 0 || after.len() < size + 2 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

/// Each SSE event of a body: its `event:` name ("" without one) and data.
fn events(body: &str) -> Vec<(String, String)> {
    body.split_terminator("\n\n")
        .map(|event| {
            let mut name = String::new();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_string();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = value.to_string();
                } else {
                    panic!("unexpected line {line:?} in {event:?}");
                }
            }
            (name, data)
        })
        .collect()
}

#[test]
fn base_urls_and_paths_follow_each_sdk() {
    let server = "http://127.0.0.1:4000";
    assert_eq!(Wire::OpenAi.base_url(server), "http://127.0.0.1:4000/v1");
    assert_eq!(
        Wire::OpenAiChat.base_url(server),
        "http://127.0.0.1:4000/v1"
    );
    assert_eq!(Wire::Anthropic.base_url(server), "http://127.0.0.1:4000");
    assert_eq!(Wire::OpenAi.path(), "/v1/responses");
    assert_eq!(Wire::OpenAiChat.path(), "/v1/chat/completions");
    assert_eq!(Wire::Anthropic.path(), "/v1/messages");
    let names: Vec<&str> = Wire::ALL.iter().map(|wire| wire.name()).collect();
    assert_eq!(names, ["openai", "openai-chat", "anthropic"]);
    for wire in Wire::ALL {
        let model = FakeModel::start(wire);
        assert_eq!(model.base_url(), wire.base_url(&model.url()));
        assert!(model.url().starts_with("http://127.0.0.1:"));
    }
}

#[test]
fn an_empty_queue_answers_500_saying_so() {
    let model = FakeModel::start(Wire::OpenAi);
    let reply = post(model.addr(), "/v1/responses", &json!({"model": "m"}));
    assert_eq!(reply.status, 500);
    assert_eq!(reply.header("x-should-retry"), Some("false"));
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"]["type"], "fake_model_queue_empty");
    assert_eq!(
        body["error"]["message"],
        "exo-fake-model: no answer queued for request 1 (POST /v1/responses); push one before the request is made"
    );
    assert_eq!(model.unanswered(), 1);
    assert_eq!(model.requests().len(), 1);
}

#[test]
fn answers_are_served_in_order_and_requests_recorded() {
    let model = FakeModel::start(Wire::Anthropic);
    model.push(Answer::text("First answer."));
    model.push(
        HttpError::new(429, "Slow down.")
            .with_header("retry-after-ms", "20")
            .with_header("retry-after", "1"),
    );
    assert_eq!(model.queued(), 2);

    let first = post(model.addr(), "/v1/messages", &json!({"n": 1}));
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("text/event-stream"));
    assert!(first.body.contains("\"text\":\"First \""), "{}", first.body);

    let second = post(model.addr(), "/v1/messages", &json!({"n": 2}));
    assert_eq!(second.status, 429);
    assert_eq!(second.header("retry-after-ms"), Some("20"));
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&second.body).unwrap(),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down."}})
    );

    assert_eq!(
        post(model.addr(), "/v1/messages", &json!({"n": 3})).status,
        500
    );
    assert_eq!(model.queued(), 0);
    assert_eq!(model.unanswered(), 1);
    assert!(model.wait_for_requests(3, LIMIT));
    let requests = model.requests();
    let bodies: Vec<&Value> = requests.iter().map(|request| &request.body).collect();
    assert_eq!(
        bodies,
        [&json!({"n": 1}), &json!({"n": 2}), &json!({"n": 3})]
    );
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].header("x-test"), "yes");
    assert_eq!(requests[0].header("x-absent"), "");
}

#[test]
fn error_bodies_take_each_vendors_shape() {
    let rate_limited = HttpError::new(429, "Slow down.");
    assert_eq!(
        Wire::OpenAi.error_body(&rate_limited),
        json!({"error": {"message": "Slow down.", "type": "requests", "param": null, "code": null}})
    );
    assert_eq!(
        Wire::OpenAiChat.error_body(&HttpError::new(503, "Busy.")),
        json!({"error": {"message": "Busy.", "type": "server_error", "param": null, "code": null}})
    );
    assert_eq!(
        Wire::Anthropic.error_body(&HttpError::new(529, "Overloaded")),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert_eq!(
        Wire::Anthropic.error_body(&rate_limited.clone().with_kind("custom_error")),
        json!({"type": "error", "error": {"type": "custom_error", "message": "Slow down."}})
    );
}

#[test]
fn every_event_is_well_formed() {
    let completion = Completion::text("It is a cat ✓.")
        .with_tool_call("call_1", "shell", json!({"command": "ls -la"}))
        .with_tool_call("call_2", "read", json!({}))
        .with_usage(120, 9);
    for wire in Wire::ALL {
        let mut streams = vec![
            wire.completion_events(&completion),
            wire.completion_events(&Completion::text("")),
            wire.completion_events(&completion.clone().with_finish(Finish::MaxTokens)),
            wire.opening_events(&["Hel"]),
        ];
        streams.push(wire.opening_events::<&str>(&[]));
        for stream in streams {
            for event in &stream {
                assert!(event.ends_with("\n\n"), "{wire:?}: {event:?}");
                let parsed = events(event);
                assert_eq!(parsed.len(), 1, "{wire:?}: {event:?}");
                let (name, data) = &parsed[0];
                if data == "[DONE]" {
                    assert_eq!(wire, Wire::OpenAiChat);
                    continue;
                }
                let data: Value = serde_json::from_str(data).unwrap();
                if wire == Wire::OpenAiChat {
                    assert_eq!(name, "", "Chat Completions events have no name");
                    assert_eq!(data["object"], "chat.completion.chunk");
                } else {
                    assert_eq!(data["type"], name.as_str(), "{wire:?}: {event:?}");
                }
            }
        }
    }
}

#[test]
fn stop_reasons_follow_the_answer() {
    let text = Completion::text("Done.");
    let calls = Completion::text("").with_tool_call("call_1", "shell", json!({}));
    let capped = Completion::text("The answer is").with_finish(Finish::MaxTokens);
    let last = |wire: Wire, completion: &Completion, key: &str| -> String {
        wire.completion_events(completion)
            .iter()
            .rfind(|event| event.contains(key))
            .cloned()
            .unwrap_or_default()
    };
    let chat = Wire::OpenAiChat;
    assert!(last(chat, &text, "\"finish_reason\":\"").contains("\"finish_reason\":\"stop\""));
    assert!(last(chat, &calls, "\"finish_reason\":\"").contains("\"tool_calls\""));
    assert!(last(chat, &capped, "\"finish_reason\":\"").contains("\"length\""));
    let anthropic = Wire::Anthropic;
    assert!(last(anthropic, &text, "message_delta").contains("\"end_turn\""));
    assert!(last(anthropic, &calls, "message_delta").contains("\"tool_use\""));
    assert!(last(anthropic, &capped, "message_delta").contains("\"max_tokens\""));
    let openai = Wire::OpenAi;
    assert!(last(openai, &text, "response.completed").contains("\"status\":\"completed\""));
    assert!(last(openai, &capped, "response.incomplete").contains("\"max_output_tokens\""));
}

#[test]
fn an_opening_stays_open_until_the_client_leaves() {
    let model = FakeModel::start(Wire::Anthropic);
    model.push(Answer::opening("Hel"));
    let mut stream = send(model.addr(), "/v1/messages", &json!({}));
    let mut raw = Vec::new();
    let mut buffer = [0; 4096];
    let started = Instant::now();
    while !parse(&raw).is_some_and(|reply| reply.body.contains("\"text\":\"Hel\"")) {
        assert!(started.elapsed() < LIMIT, "the opening never arrived");
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buffer[..n]);
    }
    // It stays open: nothing more comes, and the server does not end it.
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let error = stream.read(&mut buffer).unwrap_err();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{error}"
    );
    assert_eq!(model.disconnects(), 0);
    assert!(!model.wait_for_disconnects(1, Duration::from_millis(50)));

    drop(stream);
    assert!(model.wait_for_disconnects(1, LIMIT), "the leaving was seen");
    assert_eq!(model.disconnects(), 1);
}

#[test]
fn waiting_for_requests_times_out_false() {
    let model = FakeModel::start(Wire::OpenAiChat);
    assert!(!model.wait_for_requests(1, Duration::from_millis(50)));
    assert!(model.requests().is_empty());
}

#[test]
fn dropping_the_handle_stops_the_server() {
    let model = FakeModel::start(Wire::OpenAi);
    model.push(Answer::opening("Hel"));
    let addr = model.addr();
    let mut stream = send(addr, "/v1/responses", &json!({}));
    assert!(model.wait_for_requests(1, LIMIT));
    drop(model);
    // The open answer's connection is closed with it (an end or a reset,
    // not the read timing out)...
    let mut rest = Vec::new();
    if let Err(error) = stream.read_to_end(&mut rest) {
        assert!(
            !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{error}"
        );
    }
    // ...and nothing listens any more.
    assert!(TcpStream::connect(addr).is_err());
}
