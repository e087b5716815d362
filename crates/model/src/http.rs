//! The HTTP side shared by the three wire kinds: sending with retries,
//! reading the event stream with an idle timeout, cancellation, and turning
//! failures into one-line errors without the key.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{one_line, retryable_status};
use crate::sse::{SseEvent, SseParser};
use crate::{ApiKey, ClientOptions, Delta, Error, Partial, Response, Stop, TimeoutPhase};

/// The most of an error body kept, in bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Turns one wire API's event stream into a [`Response`].
pub(crate) trait Decoder: Send {
    /// Handles one event; returns the stop reason once the stream's
    /// terminal event has arrived.
    fn event(
        &mut self,
        event: SseEvent,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<Option<Stop>, Error>;

    /// The connection closed without a terminal event: the stop reason if
    /// what arrived is complete anyway, else an error.
    fn eof(&mut self) -> Result<Stop, Error>;

    /// What streamed. With `cancelled`, only tool calls whose arguments had
    /// fully arrived.
    fn finish(self, cancelled: bool) -> Partial;
}

/// One endpoint's HTTP client: URL, headers (with the key) and options.
pub(crate) struct Transport {
    http: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    options: ClientOptions,
    secret: Option<ApiKey>,
}

impl Transport {
    pub(crate) fn new(
        url: Url,
        headers: HeaderMap,
        options: ClientOptions,
        secret: Option<ApiKey>,
    ) -> Result<Transport, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("exo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")))?;
        Ok(Transport {
            http,
            url,
            headers,
            options,
            secret,
        })
    }

    /// The request URL, for `Debug`.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    fn scrub(&self, error: Error) -> Error {
        match &self.secret {
            Some(secret) => error.scrub(secret.expose()),
            None => error,
        }
    }

    /// Sends `body`, retrying as the options allow, and decodes the stream.
    pub(crate) async fn stream<D: Decoder>(
        &self,
        body: &Value,
        mut decoder: D,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<Response, Error> {
        let cancelled = |decoder: D| Ok(decoder.finish(true).into_response(Stop::Cancelled));
        let response = match self.send(body, cancel).await {
            Ok(Some(response)) => response,
            Ok(None) => return cancelled(decoder),
            Err(error) => return Err(self.scrub(error)),
        };
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if is_json {
            let body = read_limited(response).await;
            return Err(self.scrub(Error::Decode(format!(
                "expected an event stream, got JSON: {}",
                provider_message(&body, StatusCode::OK)
            ))));
        }
        let mut chunks = response.bytes_stream();
        let mut parser = SseParser::new();
        let idle = self.options.idle_timeout;
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return cancelled(decoder),
                next = tokio::time::timeout(idle, chunks.next()) => next,
            };
            let (events, ended) = match next {
                Err(_) => {
                    return Err(Error::Timeout {
                        phase: TimeoutPhase::Idle,
                        after: idle,
                    })
                }
                Ok(Some(Ok(chunk))) => (
                    parser
                        .push(&chunk)
                        .map_err(|message| self.scrub(Error::Decode(message)))?,
                    false,
                ),
                Ok(Some(Err(err))) => {
                    return Err(self.scrub(Error::Transport(format!(
                        "the stream from {} broke: {}",
                        self.shown_url(),
                        describe(err)
                    ))))
                }
                Ok(None) => (parser.finish().into_iter().collect(), true),
            };
            for event in events {
                if cancel.is_cancelled() {
                    return cancelled(decoder);
                }
                match decoder.event(event, on_delta) {
                    Ok(Some(stop)) => return Ok(decoder.finish(false).into_response(stop)),
                    Ok(None) => {}
                    Err(error) => return Err(self.scrub(error)),
                }
            }
            if ended {
                return match decoder.eof() {
                    Ok(stop) => Ok(decoder.finish(false).into_response(stop)),
                    Err(error) => Err(self.scrub(error)),
                };
            }
        }
    }

    /// Sends the request until it gets a 2xx response, a failure that is
    /// not worth retrying, or runs out of attempts. `None` when cancelled.
    async fn send(
        &self,
        body: &Value,
        cancel: &CancellationToken,
    ) -> Result<Option<reqwest::Response>, Error> {
        let body = serde_json::to_vec(body)
            .map_err(|err| Error::Config(format!("cannot encode the request: {err}")))?;
        let max_attempts = self.options.max_retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self
                .http
                .post(self.url.clone())
                .headers(self.headers.clone())
                .body(body.clone())
                .send();
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(None),
                outcome = tokio::time::timeout(self.options.response_timeout, request) => outcome,
            };
            let (error, retry, server_delay) = match outcome {
                Err(_) => (
                    Error::Timeout {
                        phase: TimeoutPhase::Response,
                        after: self.options.response_timeout,
                    },
                    true,
                    None,
                ),
                Ok(Err(err)) => {
                    let error = self.request_error(err);
                    let retry = error.retryable();
                    (error, retry, None)
                }
                Ok(Ok(response)) if response.status().is_success() => return Ok(Some(response)),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let server_delay = retry_after(response.headers(), SystemTime::now());
                    let retry = should_retry(response.headers())
                        .unwrap_or_else(|| retryable_status(status.as_u16()));
                    let body = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Ok(None),
                        body = tokio::time::timeout(
                            self.options.response_timeout,
                            read_limited(response),
                        ) => body.unwrap_or_default(),
                    };
                    let error = Error::Http {
                        status: status.as_u16(),
                        message: provider_message(&body, status),
                    };
                    (error, retry, server_delay)
                }
            };
            let error = self.scrub(error);
            if !retry || attempt >= max_attempts {
                return Err(error);
            }
            let delay = server_delay
                .filter(|delay| *delay <= self.options.max_retry_after)
                .unwrap_or_else(|| backoff(&self.options, attempt));
            tracing::warn!(
                attempt,
                max_attempts,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "model request failed; retrying"
            );
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(None),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn request_error(&self, err: reqwest::Error) -> Error {
        if err.is_connect() && err.is_timeout() {
            return Error::Timeout {
                phase: TimeoutPhase::Connect,
                after: self.options.connect_timeout,
            };
        }
        Error::Transport(format!("POST {}: {}", self.shown_url(), describe(err)))
    }

    /// The URL without any user or password in it.
    fn shown_url(&self) -> Url {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url
    }
}

/// A reqwest error and its causes on one line, without the URL (the caller
/// says which).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    one_line(&parts.join(": "))
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of a body; a read error ends it.
async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            body.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    body
}

/// The provider's error message from an error body, one line: OpenAI's
/// `{"error": {"message", "type", "code"}}`, Anthropic's
/// `{"type": "error", "error": {"type", "message"}}`, a bare
/// `{"error": "..."}`, `{"message"}` or `{"detail"}`, or the text itself.
pub(crate) fn provider_message(body: &[u8], status: StatusCode) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(value) => json_error_message(&value).unwrap_or_else(|| value.to_string()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text = one_line(&text);
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_string()
    } else {
        text
    }
}

/// `kind: message` from a JSON error object, if it has a message.
pub(crate) fn json_error_message(value: &Value) -> Option<String> {
    let error = value.get("error").unwrap_or(value);
    if let Some(text) = error.as_str() {
        return Some(text.to_string());
    }
    let message = error
        .get("message")
        .or_else(|| error.get("detail"))
        .and_then(Value::as_str)?;
    let kind = error
        .get("type")
        .and_then(Value::as_str)
        .filter(|kind| *kind != "error")
        .or_else(|| error.get("code").and_then(Value::as_str));
    Some(match kind {
        Some(kind) => format!("{kind}: {message}"),
        None => message.to_string(),
    })
}

/// `x-should-retry: true|false`, which both vendors send to override the
/// status's usual meaning.
fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The delay a server asks for: `retry-after-ms` (milliseconds), else
/// `retry-after` in seconds or as an HTTP date (relative to `now`).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(millis) = header("retry-after-ms").and_then(|value| value.parse::<f64>().ok()) {
        if let Ok(delay) = Duration::try_from_secs_f64(millis / 1000.0) {
            return Some(delay);
        }
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The computed delay before retry number `retry` (1-based): the initial
/// backoff doubled per retry, capped, less up to 25% jitter.
pub(crate) fn backoff(options: &ClientOptions, retry: u32) -> Duration {
    let doubled = options
        .initial_backoff
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let capped = doubled.min(options.max_backoff);
    capped.mul_f64(1.0 - 0.25 * random_unit())
}

/// A number in `[0, 1)` that differs between calls and processes; jitter
/// needs no better randomness.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 GMT
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")]), now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "3"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let options = ClientOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..ClientOptions::default()
        };
        for (retry, full) in [(1, 100), (2, 200), (3, 400), (4, 500), (40, 500)] {
            let delay = backoff(&options, retry);
            let full = Duration::from_millis(full);
            assert!(
                delay <= full && delay >= full.mul_f64(0.75),
                "{retry}: {delay:?}"
            );
        }
    }

    #[test]
    fn provider_messages() {
        let ok = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(
            provider_message(
                br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
                ok
            ),
            "requests: Rate limit reached"
        );
        assert_eq!(
            provider_message(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                ok
            ),
            "overloaded_error: Overloaded"
        );
        assert_eq!(
            provider_message(br#"{"error":"model not found"}"#, ok),
            "model not found"
        );
        assert_eq!(
            provider_message(b"<html>\n oops \n</html>", ok),
            "<html> oops </html>"
        );
        assert_eq!(provider_message(b"", ok), "Internal Server Error");
    }

    #[test]
    fn should_retry_header() {
        assert_eq!(
            should_retry(&headers(&[("x-should-retry", "true")])),
            Some(true)
        );
        assert_eq!(
            should_retry(&headers(&[("x-should-retry", "false")])),
            Some(false)
        );
        assert_eq!(should_retry(&HeaderMap::new()), None);
    }
}
