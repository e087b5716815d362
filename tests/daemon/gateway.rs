//! The model gateway (spec/gateway.md) through a real daemon: a token
//! minted over JSON-RPC reaches the conversation's model with the real key,
//! over real HTTP, for each wire; the answer streams back; the exchange is
//! recorded; bad tokens get a 401 in each API's shape and nothing is
//! forwarded; upstream errors come back with the key scrubbed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use exo_fake_model::{Completion, FakeModel, HttpError, Wire};
use serde_json::{json, Value};

use crate::support::{agent_with_model, wait_until, workspace, Conn, Daemon, Root};

/// The provider key: only the upstream may ever see it.
const KEY: &str = "sk-gateway-real-7d41c9e08b3a5f62";

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

/// `POST url` with `headers` and `body`, HTTP/1.1, the connection closed
/// after: a client with nothing of exo in it.
fn post(url: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let authority = url.strip_prefix("http://").expect("an http URL");
    let mut stream = TcpStream::connect(authority).expect("connect to the gateway");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers: head.to_string(),
        body,
    }
}

/// A chunked body, joined.
fn unchunk(mut body: &str) -> String {
    let mut joined = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
        if size == 0 {
            return joined;
        }
        joined.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// A request body in `wire`'s format, streamed.
fn request_body(wire: Wire, text: &str) -> String {
    match wire {
        Wire::OpenAi => json!({"model": "gpt-from-cli", "input": [{"role": "user", "content": text}], "stream": true}),
        Wire::OpenAiChat => json!({"model": "gpt-from-cli", "messages": [{"role": "user", "content": text}], "stream": true, "stream_options": {"include_usage": true}}),
        Wire::Anthropic => json!({"model": "claude-from-cli", "max_tokens": 100, "messages": [{"role": "user", "content": text}], "stream": true}),
    }
    .to_string()
}

/// The header a client of `wire` sends its key in.
fn auth(wire: Wire, token: &str) -> (&'static str, String) {
    match wire {
        Wire::Anthropic => ("x-api-key", token.to_string()),
        Wire::OpenAi | Wire::OpenAiChat => ("authorization", format!("Bearer {token}")),
    }
}

/// A daemon, a fake model of `wire` and agent `a` with conversation `c`.
struct Gatewayed {
    model: FakeModel,
    daemon: Daemon,
    root: Root,
}

impl Gatewayed {
    fn new(wire: Wire) -> Gatewayed {
        let root = Root::new();
        let workspace = workspace(&root);
        let model = FakeModel::start(wire);
        let daemon = root.daemon();
        agent_with_model(&mut daemon.connect(), &model, Some(KEY), "auto", &workspace);
        Gatewayed {
            model,
            daemon,
            root,
        }
    }

    /// A token over `conn`.
    fn token(conn: &mut Conn) -> Value {
        conn.ok("gateway/token", json!({"agent": "a", "conversation": "c"}))
    }
}

/// The recorded exchanges of `c`.
fn exchanges(conn: &mut Conn) -> Vec<Value> {
    let page = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "kind": "custom"}),
    );
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "exo.gateway.exchange")
        .cloned()
        .collect()
}

fn artifact(conn: &mut Conn, path: &str) -> String {
    use base64::Engine;
    let got = conn.ok(
        "artifact/get",
        json!({"agent": "a", "conversation": "c", "path": path}),
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(got["content_base64"].as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn each_wire(test: fn(Wire)) {
    for wire in [Wire::OpenAi, Wire::OpenAiChat, Wire::Anthropic] {
        test(wire);
    }
}

#[test]
fn a_token_reaches_the_model_with_the_real_key_and_the_exchange_is_recorded() {
    each_wire(|wire| {
        let fixture = Gatewayed::new(wire);
        let mut conn = fixture.daemon.connect();
        let granted = Gatewayed::token(&mut conn);
        let token = granted["token"].as_str().unwrap().to_string();
        assert!(
            token.starts_with("exo-gw-") && token.len() > 40,
            "{granted}"
        );
        let expected_api = match wire {
            Wire::OpenAi => "responses",
            Wire::OpenAiChat => "chat_completions",
            Wire::Anthropic => "messages",
        };
        assert_eq!(granted["api"], expected_api);
        let status = conn.ok("daemon/status", json!({}));
        assert_eq!(status["gateway"], granted["anthropic_base_url"]);
        assert_eq!(
            granted["openai_base_url"],
            format!("{}/v1", granted["anthropic_base_url"].as_str().unwrap())
        );

        fixture.model.push(Completion::text("Hello from upstream."));
        let (header, value) = auth(wire, &token);
        let url = granted["anthropic_base_url"].as_str().unwrap();
        let answer = post(
            url,
            wire.path(),
            &[(header, &value), ("anthropic-version", "2023-06-01")],
            &request_body(wire, "Say hello."),
        );
        assert_eq!(answer.status, 200, "{wire:?}: {}", answer.body);
        assert!(
            answer.headers.to_lowercase().contains("text/event-stream"),
            "{}",
            answer.headers
        );
        assert!(
            answer.body.contains("Hello ") && answer.body.contains("upstream."),
            "{}",
            answer.body
        );
        assert!(!answer.body.contains(KEY) && !answer.headers.contains(KEY));

        // Upstream: the real key, the binding's model, never the token.
        let requests = fixture.model.requests();
        assert_eq!(requests.len(), 1);
        let upstream = &requests[0];
        assert_eq!(upstream.path, wire.path());
        match wire {
            Wire::Anthropic => {
                assert_eq!(upstream.header("x-api-key"), KEY);
                assert_eq!(upstream.header("anthropic-version"), "2023-06-01");
            }
            _ => assert_eq!(upstream.header("authorization"), format!("Bearer {KEY}")),
        }
        assert_eq!(upstream.body["model"], "fake-upstream");
        assert_eq!(upstream.body["stream"], true);
        for (name, value) in upstream.headers.iter() {
            assert!(
                !value.to_str().unwrap_or("").contains(&token),
                "the token went upstream in {name}"
            );
        }

        // Recorded when it ends, with usage and both bodies.
        let mut recorded = Vec::new();
        wait_until("the exchange to be recorded", || {
            recorded = exchanges(&mut conn);
            !recorded.is_empty()
        });
        let payload = &recorded[0]["payload"];
        assert_eq!(payload["api"], expected_api);
        assert_eq!(payload["status"], 200);
        assert_eq!(payload["outcome"], "completed");
        assert_eq!(payload["upstream_model"], "fake-upstream");
        assert!(payload["model"].as_str().unwrap().ends_with("-from-cli"));
        assert!(
            payload["usage"]["input_tokens"].as_u64().is_some(),
            "{payload}"
        );
        assert!(
            payload["usage"]["output_tokens"].as_u64().is_some(),
            "{payload}"
        );
        assert!(payload["ttfb_ms"].as_f64().unwrap() <= payload["duration_ms"].as_f64().unwrap());
        let request = artifact(&mut conn, payload["request"].as_str().unwrap());
        assert!(
            request.contains("\"fake-upstream\"") && request.contains("Say hello."),
            "{request}"
        );
        let response = artifact(&mut conn, payload["response"].as_str().unwrap());
        assert_eq!(
            response, answer.body,
            "the record holds the stream as passed on"
        );

        // The token is in nothing exo stored.
        drop(conn);
        let stored = bytes_under(&fixture.root.path());
        assert!(
            !stored
                .windows(token.len())
                .any(|window| window == token.as_bytes()),
            "{wire:?}: the token is stored"
        );
    });
}

#[test]
fn bad_tokens_get_a_401_in_each_apis_shape_and_nothing_is_forwarded() {
    each_wire(|wire| {
        let fixture = Gatewayed::new(wire);
        let mut minter = fixture.daemon.connect();
        let granted = Gatewayed::token(&mut minter);
        let url = granted["anthropic_base_url"].as_str().unwrap().to_string();
        let token = granted["token"].as_str().unwrap().to_string();
        let check = |headers: &[(&str, &str)], why: &str| {
            let answer = post(&url, wire.path(), headers, &request_body(wire, "hi"));
            assert_eq!(answer.status, 401, "{wire:?} {why}: {}", answer.body);
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            match wire {
                Wire::Anthropic => {
                    assert_eq!(body["type"], "error", "{body}");
                    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
                }
                _ => assert_eq!(body["error"]["code"], "invalid_api_key", "{body}"),
            }
        };
        check(&[], "no token");
        let (header, _) = auth(wire, "");
        let wrong = format!("exo-gw-{}", "A".repeat(43));
        let (_, value) = auth(wire, &wrong);
        check(&[(header, &value)], "an unknown token");
        let (_, value) = auth(wire, KEY);
        check(&[(header, &value)], "the real key itself");
        assert!(
            fixture.model.requests().is_empty(),
            "a refused request went upstream"
        );

        // Revoked by gateway/revoke.
        assert_eq!(
            minter.ok("gateway/revoke", json!({"token": token})),
            json!({"revoked": true})
        );
        assert_eq!(
            minter.ok("gateway/revoke", json!({"token": token})),
            json!({"revoked": false})
        );
        let (_, value) = auth(wire, &token);
        check(&[(header, &value)], "a revoked token");

        // Revoked when the connection that minted it ends.
        let second = Gatewayed::token(&mut minter);
        let second = second["token"].as_str().unwrap().to_string();
        let (_, value) = auth(wire, &second);
        fixture.model.push(Completion::text("Still live."));
        let live = post(
            &url,
            wire.path(),
            &[(header, &value)],
            &request_body(wire, "hi"),
        );
        assert_eq!(live.status, 200, "{}", live.body);
        drop(minter);
        // The daemon notices the connection's end on its own task, not at
        // once; a request in between still goes through.
        wait_until("the connection's token to be revoked", || {
            post(
                &url,
                wire.path(),
                &[(header, &value)],
                &request_body(wire, "hi"),
            )
            .status
                == 401
        });
        let forwarded = fixture.model.requests().len();
        check(&[(header, &value)], "the token of a connection that ended");
        assert_eq!(fixture.model.requests().len(), forwarded);
    });
}

#[test]
fn upstream_errors_come_back_in_their_shape_with_the_key_scrubbed() {
    let fixture = Gatewayed::new(Wire::OpenAi);
    let mut conn = fixture.daemon.connect();
    let granted = Gatewayed::token(&mut conn);
    let url = granted["anthropic_base_url"].as_str().unwrap();
    let bearer = format!("Bearer {}", granted["token"].as_str().unwrap());
    for (name, echo) in exo_fake_model::key_echoes(KEY) {
        fixture.model.push(HttpError::new(
            401,
            &format!("Incorrect API key provided: {echo}."),
        ));
        let answer = post(
            url,
            Wire::OpenAi.path(),
            &[("authorization", &bearer)],
            &request_body(Wire::OpenAi, "hi"),
        );
        assert_eq!(answer.status, 401, "{name}");
        assert!(
            answer.body.contains("<redacted>"),
            "{name}: {}",
            answer.body
        );
        assert!(
            !exo_fake_model::shows_echo(&answer.body, &echo),
            "{name}: {}",
            answer.body
        );
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Incorrect API key provided:"));
    }
    let mut recorded = Vec::new();
    wait_until("the errors to be recorded", || {
        recorded = exchanges(&mut conn);
        recorded.len() == exo_fake_model::key_echoes(KEY).len()
    });
    for exchange in &recorded {
        assert_eq!(exchange["payload"]["outcome"], "error");
        assert_eq!(exchange["payload"]["status"], 401);
        let response = artifact(&mut conn, exchange["payload"]["response"].as_str().unwrap());
        assert!(response.contains("<redacted>"), "{response}");
    }
}

#[test]
fn what_the_gateway_will_not_forward_is_refused_in_one_answer() {
    let fixture = Gatewayed::new(Wire::Anthropic);
    let mut conn = fixture.daemon.connect();
    let granted = Gatewayed::token(&mut conn);
    let url = granted["anthropic_base_url"].as_str().unwrap();
    let token = granted["token"].as_str().unwrap();
    // An OpenAI request for an Anthropic model: not translated.
    let bearer = format!("Bearer {token}");
    let answer = post(
        url,
        "/v1/responses",
        &[("authorization", &bearer)],
        &request_body(Wire::OpenAi, "hi"),
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("speaks the messages API"),
        "{}",
        answer.body
    );
    // Not JSON.
    let answer = post(url, "/v1/messages", &[("x-api-key", token)], "not json");
    assert_eq!(answer.status, 400, "{}", answer.body);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // No such API.
    let answer = post(url, "/v1/embeddings", &[("x-api-key", token)], "{}");
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(fixture.model.requests().is_empty());
    assert!(exchanges(&mut conn).is_empty());
    // A conversation that does not exist gets no token.
    let refused = conn.err(
        "gateway/token",
        json!({"agent": "a", "conversation": "nope"}),
    );
    assert_eq!(refused["data"]["code"], "not_found", "{refused}");
}

/// Every byte of every file under `dir`.
fn bytes_under(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(path),
                Ok(kind) if kind.is_file() => {
                    if let Ok(content) = std::fs::read(&path) {
                        bytes.extend_from_slice(&content);
                    }
                }
                _ => {}
            }
        }
    }
    bytes
}

#[test]
fn a_client_that_goes_away_stops_the_upstream_request_and_the_exchange_says_so() {
    let fixture = Gatewayed::new(Wire::OpenAiChat);
    let mut conn = fixture.daemon.connect();
    let granted = Gatewayed::token(&mut conn);
    let url = granted["anthropic_base_url"].as_str().unwrap();
    let authority = url.strip_prefix("http://").unwrap();
    // An answer that streams a little and never ends.
    fixture
        .model
        .push(exo_fake_model::Answer::opening("Thinking about it"));
    let body = request_body(Wire::OpenAiChat, "Go on forever.");
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n{body}",
        granted["token"].as_str().unwrap(),
        body.len()
    )
    .unwrap();
    // The first text arrives while the upstream still streams.
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Thinking") {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "the gateway ended the stream");
        seen.extend_from_slice(&buffer[..read]);
    }
    drop(stream);
    wait_until("the upstream request to be dropped", || {
        fixture.model.disconnects() == 1
    });
    let mut recorded = Vec::new();
    wait_until("the exchange to be recorded", || {
        recorded = exchanges(&mut conn);
        !recorded.is_empty()
    });
    assert_eq!(recorded[0]["payload"]["outcome"], "client_closed");
    assert_eq!(recorded[0]["payload"]["status"], 200);
}
