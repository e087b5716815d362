//! Behaviour every HTTP kind shares (retries, cancellation, timeouts, key
//! hygiene), run once per kind through [`common_tests!`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exo_fake_model::{Answer, Completion, MockResponse, MockServer, Wire};
use exo_model::{
    CancellationToken, Client, ClientOptions, ContentPart, Delta, Endpoint, Error, Item, Kind,
    Request, Response, Role, Stop, TimeoutPhase, ToolSpec,
};
use serde_json::json;

use crate::support::within;

/// The key every test uses; it must never show in an error or `Debug`.
pub const KEY: &str = "sk-test-0123456789-DO-NOT-LEAK";

/// A generous limit for one test.
pub const LIMIT: Duration = Duration::from_secs(10);

/// What the shared tests need to know about a kind.
pub struct Fixture {
    pub kind: Kind,
    /// The path exo must request.
    pub path: &'static str,
    /// The base URL for a server at `http://127.0.0.1:port`.
    pub base: fn(&str) -> String,
    /// The wire the fake server speaks to it.
    pub wire: Wire,
}

impl Fixture {
    /// A complete streamed answer with exactly these text deltas.
    pub fn text_answer(&self, deltas: &[&str]) -> MockResponse {
        let completion = Completion::deltas(deltas.iter().copied());
        self.wire.response(&Answer::Complete(completion))
    }

    /// The opening of an answer, up to one text delta, then the stream's
    /// end without the answer's end.
    pub fn truncated_answer(&self, text: &str) -> MockResponse {
        MockResponse::sse(&self.wire.opening_events(&[text]))
    }
}

/// Options with quick backoff, for tests that retry.
pub fn quick_options() -> ClientOptions {
    let mut options = ClientOptions::default();
    options.initial_backoff = Duration::from_millis(10);
    options.max_backoff = Duration::from_millis(50);
    options
}

/// A client for `fixture` against `server`, with the test key.
pub fn client(fixture: &Fixture, server: &MockServer, options: ClientOptions) -> Client {
    let endpoint = Endpoint::new(fixture.kind.clone(), (fixture.base)(&server.url()))
        .with_api_key(KEY)
        .with_options(options);
    Client::new(endpoint).unwrap()
}

/// Calls the client, collecting the deltas.
pub async fn call(
    client: &Client,
    request: &Request,
    cancel: &CancellationToken,
) -> (Result<Response, Error>, Vec<Delta>) {
    let mut deltas = Vec::new();
    let result = client
        .complete(request, cancel, &mut |delta| deltas.push(delta))
        .await;
    (result, deltas)
}

/// A plain one-message request.
pub fn hello_request() -> Request {
    Request {
        model: "test-model".into(),
        items: vec![Item::text(Role::User, "Say hello.")],
        ..Request::default()
    }
}

/// The tool every exact-request test offers.
pub fn shell_tool() -> ToolSpec {
    ToolSpec {
        name: "shell".into(),
        description: "Runs a shell command.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        }),
    }
}

/// A history with everything a mapping must handle: instructions, a
/// system message, text, an image, a dropped reasoning part, two rounds of
/// tool calls (the second failing), and a closing user message.
pub fn history_request() -> Request {
    Request {
        model: "test-model".into(),
        instructions: Some("You are exo.".into()),
        items: vec![
            Item::text(Role::System, "Be brief."),
            Item::text(Role::User, "List the files."),
            Item::Message {
                role: Role::Assistant,
                content: vec![
                    ContentPart::Reasoning {
                        text: "private thoughts".into(),
                    },
                    ContentPart::Text {
                        text: "Looking.".into(),
                    },
                ],
            },
            Item::ToolCall {
                call_id: "call_1".into(),
                name: "shell".into(),
                arguments: json!({"command": "ls"}),
            },
            Item::ToolResult {
                call_id: "call_1".into(),
                output: "a.txt\nb.txt".into(),
                is_error: false,
            },
            Item::ToolCall {
                call_id: "call_2".into(),
                name: "shell".into(),
                arguments: json!({"command": "cat c.txt"}),
            },
            Item::ToolResult {
                call_id: "call_2".into(),
                output: "cat: c.txt: No such file".into(),
                is_error: true,
            },
            Item::Message {
                role: Role::User,
                content: vec![
                    ContentPart::Text {
                        text: "What is in this picture?".into(),
                    },
                    ContentPart::Image {
                        media_type: "image/png".into(),
                        data: "iVBORw0KGgo=".into(),
                    },
                ],
            },
        ],
        tools: vec![shell_tool()],
        max_output_tokens: Some(1000),
    }
}

/// 429 with `retry-after: 0`, then 429 with `retry-after: 1`, then success.
/// The computed backoff is a minute, so finishing in time proves the
/// header was honoured.
pub async fn retries_429_honouring_retry_after(fixture: &Fixture) {
    let rate_limited = || MockResponse::json(429, json!({"error": {"message": "slow down"}}));
    let server = MockServer::start(vec![
        rate_limited().header("retry-after", "0"),
        rate_limited().header("retry-after", "1"),
        fixture.text_answer(&["Hel", "lo"]),
    ])
    .await;
    let mut options = ClientOptions::default();
    options.initial_backoff = Duration::from_secs(60);
    options.max_retries = 3;
    let client = client(fixture, &server, options);
    let (result, deltas) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    let response = result.unwrap();
    assert_eq!(response.text, "Hello");
    assert_eq!(response.stop, Stop::EndTurn);
    assert_eq!(
        deltas,
        vec![Delta::Text("Hel".into()), Delta::Text("lo".into())]
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "two retries");
    assert!(requests.iter().all(|r| r.path == fixture.path));
    assert!(requests.iter().all(|r| r.body == requests[0].body));
}

/// `retry-after-ms` wins over `retry-after`.
pub async fn retry_after_ms_is_honoured(fixture: &Fixture) {
    let server = MockServer::start(vec![
        MockResponse::json(503, json!({"error": {"message": "busy"}}))
            .header("retry-after", "120")
            .header("retry-after-ms", "20"),
        fixture.text_answer(&["ok"]),
    ])
    .await;
    let mut options = ClientOptions::default();
    options.initial_backoff = Duration::from_secs(60);
    let client = client(fixture, &server, options);
    let (result, _) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    assert_eq!(result.unwrap().text, "ok");
    assert_eq!(server.requests().len(), 2);
}

/// 500 on every attempt: the error carries the status and the provider's
/// message, after exactly `max_retries` retries.
pub async fn server_errors_exhaust_retries(fixture: &Fixture) {
    let on_fire = MockResponse::json(
        500,
        json!({"error": {"message": "the server\nis on fire", "type": "server_error"}}),
    );
    let server = MockServer::start(vec![on_fire; 3]).await;
    let mut options = quick_options();
    options.max_retries = 2;
    let client = client(fixture, &server, options);
    let (result, deltas) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(
        error,
        Error::Http {
            status: 500,
            message: "server_error: the server is on fire".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "model API returned HTTP 500: server_error: the server is on fire"
    );
    assert!(error.retryable());
    assert_eq!(error.code(), "http");
    assert!(deltas.is_empty());
    assert_eq!(server.requests().len(), 3, "one attempt and two retries");
}

/// A 400 is the caller's mistake: no retry.
pub async fn client_errors_are_not_retried(fixture: &Fixture) {
    let server = MockServer::start(vec![MockResponse::json(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad tool schema"}}),
    )])
    .await;
    let client = client(fixture, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        "model API returned HTTP 400: invalid_request_error: bad tool schema"
    );
    assert!(!error.retryable());
    assert_eq!(server.requests().len(), 1);
}

/// `x-should-retry: false` stops retries even for a 503.
pub async fn should_retry_header_is_honoured(fixture: &Fixture) {
    let server = MockServer::start(vec![MockResponse::json(
        503,
        json!({"error": {"message": "down for maintenance"}}),
    )
    .header("x-should-retry", "false")])
    .await;
    let client = client(fixture, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    assert!(matches!(result, Err(Error::Http { status: 503, .. })));
    assert_eq!(server.requests().len(), 1);
}

/// Cancelling after the first delta returns the partial text, marked
/// cancelled, and drops the connection.
pub async fn cancellation_mid_stream(fixture: &Fixture) {
    let server = MockServer::start(vec![fixture.wire.response(&Answer::opening("Hel"))]).await;
    let client = client(fixture, &server, ClientOptions::default());
    let cancel = CancellationToken::new();
    let deltas = Arc::new(Mutex::new(Vec::new()));
    let result = {
        let cancel_in_callback = cancel.clone();
        let deltas = deltas.clone();
        let mut on_delta = move |delta: Delta| {
            deltas.lock().unwrap().push(delta);
            cancel_in_callback.cancel();
        };
        within(
            LIMIT,
            client.complete(&hello_request(), &cancel, &mut on_delta),
        )
        .await
    };
    let response = result.unwrap();
    assert_eq!(response.stop, Stop::Cancelled);
    assert_eq!(response.text, "Hel");
    assert!(response.tool_calls.is_empty());
    assert_eq!(*deltas.lock().unwrap(), vec![Delta::Text("Hel".into())]);
    assert!(
        server.wait_for_disconnects(1, LIMIT).await,
        "the server still streams to a cancelled client"
    );
}

/// Cancelling while waiting to retry returns at once, cancelled and empty.
pub async fn cancellation_during_backoff(fixture: &Fixture) {
    let server = MockServer::start(vec![MockResponse::json(
        429,
        json!({"error": {"message": "later"}}),
    )
    .header("retry-after", "30")])
    .await;
    let client = client(fixture, &server, ClientOptions::default());
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        canceller.cancel();
    });
    let (result, deltas) = within(LIMIT, call(&client, &hello_request(), &cancel)).await;
    let response = result.unwrap();
    assert_eq!(response.stop, Stop::Cancelled);
    assert_eq!(response.text, "");
    assert!(deltas.is_empty());
    assert_eq!(server.requests().len(), 1);
}

/// A stream that goes quiet fails with an idle timeout, after delivering
/// what did arrive.
pub async fn idle_stream_times_out(fixture: &Fixture) {
    let server = MockServer::start(vec![fixture.wire.response(&Answer::opening("Hel"))]).await;
    let mut options = ClientOptions::default();
    options.idle_timeout = Duration::from_millis(300);
    let client = client(fixture, &server, options);
    let (result, deltas) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    assert_eq!(
        result.unwrap_err(),
        Error::Timeout {
            phase: TimeoutPhase::Idle,
            after: Duration::from_millis(300)
        }
    );
    assert_eq!(deltas, vec![Delta::Text("Hel".into())]);
    assert_eq!(server.requests().len(), 1, "a broken stream is not retried");
    assert!(server.wait_for_disconnects(1, LIMIT).await);
}

/// A stream that closes before its end is a retryable transport error.
pub async fn truncated_stream_is_an_error(fixture: &Fixture) {
    let server = MockServer::start(vec![fixture.truncated_answer("Hel")]).await;
    let client = client(fixture, &server, ClientOptions::default());
    let (result, _) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "transport", "{error}");
    assert!(error.to_string().contains("ended before"), "{error}");
    assert!(error.retryable());
}

/// The key shows nowhere: not in an error whose body echoes it, not in a
/// transport error, not in `Debug` of the endpoint or client.
pub async fn key_never_leaks(fixture: &Fixture) {
    let server = MockServer::start(vec![MockResponse::json(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}."), "type": "authentication_error"}}),
    )])
    .await;
    let client = client(fixture, &server, quick_options());
    let (result, _) = within(
        LIMIT,
        call(&client, &hello_request(), &CancellationToken::new()),
    )
    .await;
    let error = result.unwrap_err();
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains("DO-NOT-LEAK"), "{text}");
    }
    assert_eq!(
        error.to_string(),
        "model API returned HTTP 401: authentication_error: Incorrect API key provided: <redacted>."
    );
    let sent = &server.requests()[0];
    assert!(
        sent.header("authorization").contains(KEY) || sent.header("x-api-key") == KEY,
        "the key was sent"
    );

    let endpoint =
        Endpoint::new(fixture.kind.clone(), (fixture.base)(&server.url())).with_api_key(KEY);
    assert!(!format!("{endpoint:?}").contains(KEY));
    assert!(!format!("{client:?}").contains(KEY));
    assert!(format!("{client:?}").contains("<redacted>"));

    // Nothing listens on a port just released.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let endpoint = Endpoint::new(
        fixture.kind.clone(),
        (fixture.base)(&format!("http://{closed}")),
    )
    .with_api_key(KEY)
    .with_options({
        let mut options = quick_options();
        options.max_retries = 1;
        options
    });
    let unreachable = Client::new(endpoint).unwrap();
    let (result, _) = within(
        LIMIT,
        call(&unreachable, &hello_request(), &CancellationToken::new()),
    )
    .await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "transport", "{error}");
    assert!(error.to_string().contains(&closed.to_string()), "{error}");
    assert!(!error.to_string().contains('\n'));
    assert!(!format!("{error:?}").contains(KEY));
}

/// Generates one `#[tokio::test]` per shared behaviour for a fixture.
#[macro_export]
macro_rules! common_tests {
    ($fixture:expr) => {
        #[tokio::test]
        async fn retries_429_honouring_retry_after() {
            $crate::common::retries_429_honouring_retry_after(&$fixture).await;
        }
        #[tokio::test]
        async fn retry_after_ms_is_honoured() {
            $crate::common::retry_after_ms_is_honoured(&$fixture).await;
        }
        #[tokio::test]
        async fn server_errors_exhaust_retries() {
            $crate::common::server_errors_exhaust_retries(&$fixture).await;
        }
        #[tokio::test]
        async fn client_errors_are_not_retried() {
            $crate::common::client_errors_are_not_retried(&$fixture).await;
        }
        #[tokio::test]
        async fn should_retry_header_is_honoured() {
            $crate::common::should_retry_header_is_honoured(&$fixture).await;
        }
        #[tokio::test]
        async fn cancellation_mid_stream() {
            $crate::common::cancellation_mid_stream(&$fixture).await;
        }
        #[tokio::test]
        async fn cancellation_during_backoff() {
            $crate::common::cancellation_during_backoff(&$fixture).await;
        }
        #[tokio::test]
        async fn idle_stream_times_out() {
            $crate::common::idle_stream_times_out(&$fixture).await;
        }
        #[tokio::test]
        async fn truncated_stream_is_an_error() {
            $crate::common::truncated_stream_is_an_error(&$fixture).await;
        }
        #[tokio::test]
        async fn key_never_leaks() {
            $crate::common::key_never_leaks(&$fixture).await;
        }
    };
}
