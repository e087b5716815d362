//! [`Client`]: one endpoint, ready to call.

use std::fmt;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::http::Transport;
use crate::scripted::Player;
use crate::{anthropic, openai, openai_chat};
use crate::{Delta, Endpoint, Error, Kind, Request, Response};

/// The `anthropic-version` header exo sends.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A model client for one [`Endpoint`]. Cheap to clone; clones share the
/// connection pool (a scripted model has no state to share: each call's
/// history picks its response).
#[derive(Clone)]
pub struct Client {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Http(std::sync::Arc<Http>),
    Scripted(Player),
}

struct Http {
    wire: Wire,
    transport: Transport,
    has_key: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    OpenAi,
    OpenAiChat,
    Anthropic,
}

impl Client {
    /// Checks the endpoint and builds the client. Fails with
    /// [`Error::Config`] for a base URL that is not `http(s)`, a key that
    /// cannot go in a header, or a script that cannot be read or parsed.
    /// Nothing is sent.
    pub fn new(endpoint: Endpoint) -> Result<Client, Error> {
        let wire = match &endpoint.kind {
            Kind::Scripted(source) => {
                return Ok(Client {
                    backend: Backend::Scripted(Player::load(source)?),
                })
            }
            Kind::OpenAi => Wire::OpenAi,
            Kind::OpenAiChat => Wire::OpenAiChat,
            Kind::Anthropic => Wire::Anthropic,
        };
        let base = endpoint.base_url.trim().trim_end_matches('/');
        let path = match wire {
            Wire::OpenAi => "/responses",
            Wire::OpenAiChat => "/chat/completions",
            Wire::Anthropic => "/v1/messages",
        };
        let url = Url::parse(&format!("{base}{path}")).map_err(|err| {
            Error::Config(format!("invalid base URL {:?}: {err}", endpoint.base_url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "base URL {:?} is not http or https",
                endpoint.base_url
            )));
        }

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if wire == Wire::Anthropic {
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        let api_key = endpoint.api_key.filter(|key| !key.expose().is_empty());
        if let Some(key) = &api_key {
            let (name, value) = match wire {
                Wire::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    Zeroizing::new(key.expose().to_string()),
                ),
                Wire::OpenAi | Wire::OpenAiChat => (
                    AUTHORIZATION,
                    Zeroizing::new(format!("Bearer {}", key.expose())),
                ),
            };
            // The error would say nothing about the key, but be sure.
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                Error::Config("the API key has characters not allowed in an HTTP header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let has_key = api_key.is_some();
        let transport = Transport::new(url, headers, endpoint.options, api_key)?;
        Ok(Client {
            backend: Backend::Http(std::sync::Arc::new(Http {
                wire,
                transport,
                has_key,
            })),
        })
    }

    /// Sends one request and streams the answer: each [`Delta`] goes to
    /// `on_delta` as it arrives, and the whole [`Response`] is returned at
    /// the end.
    ///
    /// Cancelling `cancel` stops at once, drops the connection, and returns
    /// `Ok` with the text streamed so far and [`crate::Stop::Cancelled`].
    /// Errors are one line and never contain the API key; see
    /// [`Error::retryable`] for which may succeed later. Failures before the
    /// stream starts have already been retried as the endpoint's options
    /// allow.
    pub async fn complete(
        &self,
        request: &Request,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<Response, Error> {
        match &self.backend {
            Backend::Scripted(player) => player.play(request, cancel, on_delta).await,
            Backend::Http(http) => {
                let transport = &http.transport;
                match http.wire {
                    Wire::OpenAi => {
                        let body = openai::body(request);
                        let decoder = openai::ResponsesDecoder::default();
                        transport.stream(&body, decoder, cancel, on_delta).await
                    }
                    Wire::OpenAiChat => {
                        let body = openai_chat::body(request);
                        let decoder = openai_chat::ChatDecoder::default();
                        transport.stream(&body, decoder, cancel, on_delta).await
                    }
                    Wire::Anthropic => {
                        let body = anthropic::body(request);
                        let decoder = anthropic::MessagesDecoder::default();
                        transport.stream(&body, decoder, cancel, on_delta).await
                    }
                }
            }
        }
    }

    /// The wire kind's name: `openai`, `openai-chat`, `anthropic` or
    /// `scripted`.
    pub fn kind_name(&self) -> &'static str {
        match &self.backend {
            Backend::Scripted(_) => "scripted",
            Backend::Http(http) => match http.wire {
                Wire::OpenAi => "openai",
                Wire::OpenAiChat => "openai-chat",
                Wire::Anthropic => "anthropic",
            },
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Client");
        out.field("kind", &self.kind_name());
        match &self.backend {
            Backend::Scripted(player) => {
                out.field("responses", &player.len());
            }
            Backend::Http(http) => {
                out.field("url", &http.transport.url().as_str());
                out.field("api_key", &if http.has_key { "<redacted>" } else { "none" });
            }
        }
        out.finish()
    }
}
