//! Endpoint checks made before anything is sent.

use exo_model::{Client, Endpoint, Error, Kind, Provider, ScriptSource};

#[test]
fn base_urls_must_be_http() {
    for base in ["ftp://example.com/v1", "not a url", ""] {
        let error = Client::new(Endpoint::new(Kind::OpenAi, base)).unwrap_err();
        assert_eq!(error.code(), "config", "{base}: {error}");
    }
}

#[test]
fn keys_that_cannot_be_headers_are_refused_without_being_echoed() {
    let endpoint = Endpoint::new(Kind::Anthropic, "https://api.anthropic.com")
        .with_api_key("sk-bad\nkey-SECRET");
    let error = Client::new(endpoint).unwrap_err();
    assert!(matches!(error, Error::Config(_)));
    assert!(!error.to_string().contains("SECRET"), "{error}");
}

#[test]
fn provider_defaults_and_debug() {
    let client = Client::new(Endpoint::for_provider(Provider::OpenAi)).unwrap();
    assert_eq!(client.kind_name(), "openai");
    assert_eq!(
        format!("{client:?}"),
        r#"Client { kind: "openai", url: "https://api.openai.com/v1/responses", api_key: "none" }"#
    );
    let client =
        Client::new(Endpoint::for_provider(Provider::Anthropic).with_api_key("sk-ant-SECRET-1234"))
            .unwrap();
    assert_eq!(
        format!("{client:?}"),
        r#"Client { kind: "anthropic", url: "https://api.anthropic.com/v1/messages", api_key: "<redacted>" }"#
    );
    let client = Client::new(Endpoint::new(
        Kind::OpenAiChat,
        "http://localhost:11434/v1/",
    ))
    .unwrap();
    assert!(format!("{client:?}").contains("http://localhost:11434/v1/chat/completions"));
}

#[test]
fn a_missing_script_file_is_a_config_error() {
    let error = Client::new(Endpoint::scripted(ScriptSource::File(
        "/nonexistent/script.json".into(),
    )))
    .unwrap_err();
    assert_eq!(error.code(), "config");
    assert!(
        error.to_string().contains("/nonexistent/script.json"),
        "{error}"
    );
}

#[test]
fn complete_is_send_so_executors_can_spawn_it() {
    fn assert_send<T: Send>(_: &T) {}
    let client = Client::new(Endpoint::for_provider(Provider::OpenAiChat)).unwrap();
    let request = exo_model::Request::default();
    let cancel = exo_model::CancellationToken::new();
    let mut on_delta = |_delta: exo_model::Delta| {};
    let future = client.complete(&request, &cancel, &mut on_delta);
    assert_send(&future);
}
