//! Where and how to reach a model: the wire kind, base URL, key and options.

use std::path::PathBuf;
use std::time::Duration;

use exo_core::Provider;

use crate::ApiKey;

/// The `max_tokens` sent to Anthropic when the request sets no cap (the
/// Messages API requires one).
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 8192;

/// Which wire API a client speaks.
#[derive(Clone, PartialEq, Debug)]
pub enum Kind {
    /// OpenAI Responses API: `POST {base_url}/responses`.
    OpenAi,
    /// OpenAI Chat Completions: `POST {base_url}/chat/completions`.
    OpenAiChat,
    /// Anthropic Messages: `POST {base_url}/v1/messages`.
    Anthropic,
    /// No network: replays a script (see [`crate::scripted`]). The base URL
    /// and key are ignored.
    Scripted(ScriptSource),
}

impl Kind {
    /// The name as exo writes it: `openai`, `openai-chat`, `anthropic` or
    /// `scripted`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::OpenAiChat => "openai-chat",
            Kind::Anthropic => "anthropic",
            Kind::Scripted(_) => "scripted",
        }
    }
}

/// Where a scripted model's script comes from.
#[derive(Clone, PartialEq, Debug)]
pub enum ScriptSource {
    /// A JSON file, read when the client is built.
    File(PathBuf),
    /// The script itself.
    Inline(serde_json::Value),
}

/// Knobs for timeouts and retries. Build with `ClientOptions::default()`
/// and change fields.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long to wait for a TCP (and TLS) connection. Default 10 s.
    pub connect_timeout: Duration,
    /// How long to wait, per attempt, for the response's status and headers
    /// once the request is sent. Default 120 s.
    pub response_timeout: Duration,
    /// How long a streaming response may go without sending a byte.
    /// Default 300 s (reasoning models can think quietly for minutes).
    pub idle_timeout: Duration,
    /// Retries after the first attempt, for retryable failures before
    /// streaming starts. Default 4 (five attempts in all).
    pub max_retries: u32,
    /// The first backoff delay; it doubles with each retry, up to
    /// `max_backoff`, less up to 25% jitter. Default 1 s.
    pub initial_backoff: Duration,
    /// The longest computed backoff delay. Default 30 s.
    pub max_backoff: Duration,
    /// The longest `retry-after` honoured; a server asking for more gets
    /// the computed backoff instead (as the vendors' SDKs do). Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            max_retries: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Everything a [`crate::Client`] needs.
///
/// Base URLs follow each vendor's SDK: the OpenAI kinds include the API
/// version (`https://api.openai.com/v1`, `http://localhost:11434/v1`) and
/// exo appends `/responses` or `/chat/completions`; Anthropic is the bare
/// host (`https://api.anthropic.com`) and exo appends `/v1/messages`. A
/// trailing `/` is ignored.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The wire API.
    pub kind: Kind,
    /// The base URL, by the convention above.
    pub base_url: String,
    /// The key, if the server needs one (local servers often do not).
    /// OpenAI kinds send `Authorization: Bearer <key>`, Anthropic sends
    /// `x-api-key: <key>`; without a key neither header is sent.
    pub api_key: Option<ApiKey>,
    /// Timeouts and retries.
    pub options: ClientOptions,
}

impl Endpoint {
    /// An endpoint with default options and no key.
    pub fn new(kind: Kind, base_url: impl Into<String>) -> Endpoint {
        Endpoint {
            kind,
            base_url: base_url.into(),
            api_key: None,
            options: ClientOptions::default(),
        }
    }

    /// An endpoint for a provider at its vendor's default base URL (a
    /// scripted provider has none: its script is empty).
    pub fn for_provider(provider: Provider) -> Endpoint {
        Endpoint::for_binding(provider, provider.default_base_url().unwrap_or(""))
    }

    /// The endpoint a model binding names: the provider's wire API at
    /// `base_url`. For [`Provider::Scripted`] the base URL is `file://`
    /// and the script's absolute path.
    pub fn for_binding(provider: Provider, base_url: &str) -> Endpoint {
        let kind = match provider {
            Provider::OpenAi => Kind::OpenAi,
            Provider::OpenAiChat => Kind::OpenAiChat,
            Provider::Anthropic => Kind::Anthropic,
            Provider::Scripted => {
                let path = base_url.strip_prefix("file://").unwrap_or(base_url);
                return Endpoint::scripted(ScriptSource::File(PathBuf::from(path)));
            }
        };
        Endpoint::new(kind, base_url)
    }

    /// A scripted endpoint.
    pub fn scripted(source: ScriptSource) -> Endpoint {
        Endpoint::new(Kind::Scripted(source), "")
    }

    /// The same endpoint with a key.
    pub fn with_api_key(mut self, key: impl Into<ApiKey>) -> Endpoint {
        self.api_key = Some(key.into());
        self
    }

    /// The same endpoint with other options.
    pub fn with_options(mut self, options: ClientOptions) -> Endpoint {
        self.options = options;
        self
    }
}
