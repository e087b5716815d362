//! Scopes, bindings and secret values.
//!
//! A binding connects a name the agent sees to configuration held by the
//! harness: an environment variable to a secret, an MCP server to a URL and
//! a secret, a model name to a provider, base URL and secret. Bindings and
//! secrets live at root, agent or conversation scope; when resolving for a
//! conversation the narrowest scope that has the name wins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, ConversationId};
use crate::{validate_name, ValidationError};

/// Where a secret or binding lives.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Scope {
    /// Visible to every agent and conversation in the store.
    Root,
    /// Visible to one agent's conversations.
    Agent(AgentId),
    /// Visible to one conversation, as of its head: it travels with forks
    /// and is undone by rewinds.
    Conversation(ConversationId),
}

impl Scope {
    /// A stable textual key: `root`, `agent:<uuid>` or `conversation:<uuid>`.
    /// Secrets bind their ciphertext to it.
    pub fn key(&self) -> String {
        match self {
            Scope::Root => "root".to_string(),
            Scope::Agent(id) => format!("agent:{id}"),
            Scope::Conversation(id) => format!("conversation:{id}"),
        }
    }

    /// The scope's kind as a word.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Scope::Root => "root",
            Scope::Agent(_) => "agent",
            Scope::Conversation(_) => "conversation",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A model API's wire format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum Provider {
    /// OpenAI Responses API.
    #[serde(rename = "openai")]
    OpenAi,
    /// OpenAI Chat Completions, also spoken by OpenRouter, Ollama, vLLM and
    /// llama.cpp servers.
    #[serde(rename = "openai-chat")]
    OpenAiChat,
    /// Anthropic Messages API.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// No network: replays a JSON script of responses, named by a
    /// `file://` base URL. For tests and the offline demo.
    #[serde(rename = "scripted")]
    Scripted,
}

impl Provider {
    /// The name as written on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::OpenAiChat => "openai-chat",
            Provider::Anthropic => "anthropic",
            Provider::Scripted => "scripted",
        }
    }

    /// The vendor's default base URL, following each vendor's SDK: the
    /// OpenAI kinds include `/v1`, Anthropic is the bare host. A scripted
    /// model has none: its base URL names its script.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi | Provider::OpenAiChat => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::Scripted => None,
        }
    }

    /// The context window, in tokens, assumed for a model of this provider
    /// whose binding gives none: the window of the vendor's current
    /// mainstream models, on the low side, since a window assumed too large
    /// means requests the provider refuses, and one too small only means
    /// compacting early. A scripted model has none: it replays a script by
    /// the history's length and never compacts unless told its window.
    pub fn default_context_window(self) -> Option<u64> {
        match self {
            Provider::OpenAi | Provider::OpenAiChat => Some(128_000),
            Provider::Anthropic => Some(200_000),
            Provider::Scripted => None,
        }
    }
}

/// The largest context window a model binding may give, in tokens.
pub const MAX_CONTEXT_WINDOW: u64 = 100_000_000;

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Provider::OpenAi),
            "openai-chat" => Ok(Provider::OpenAiChat),
            "anthropic" => Ok(Provider::Anthropic),
            "scripted" => Ok(Provider::Scripted),
            _ => Err(ValidationError::new(format!(
                "unknown provider {s:?}: expected openai, openai-chat, anthropic or scripted"
            ))),
        }
    }
}

/// The kinds of binding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    /// Environment variable to secret.
    Env,
    /// MCP server to URL and secret.
    Mcp,
    /// Model name to provider, base URL and secret.
    Model,
    /// HTTP host to a credential the egress proxy adds.
    Http,
}

impl BindingKind {
    /// The kind as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::Env => "env",
            BindingKind::Mcp => "mcp",
            BindingKind::Model => "model",
            BindingKind::Http => "http",
        }
    }
}

impl fmt::Display for BindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BindingKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "env" => Ok(BindingKind::Env),
            "mcp" => Ok(BindingKind::Mcp),
            "model" => Ok(BindingKind::Model),
            "http" => Ok(BindingKind::Http),
            _ => Err(ValidationError::new(format!(
                "unknown binding kind {s:?}: expected env, mcp, model or http"
            ))),
        }
    }
}

/// A binding. Secrets are referred to by name and resolved, scope by scope,
/// only when used.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Binding {
    /// Sets environment variable `name` to the secret's value.
    Env {
        /// The environment variable.
        name: String,
        /// The secret's name.
        secret: String,
    },
    /// An MCP server: one exo calls over Streamable HTTP (`url`), or one
    /// it starts and speaks to on stdio (`command`). Exactly one of the two.
    Mcp {
        /// The server's name; its tools are offered as `mcp__NAME__TOOL`.
        name: String,
        /// Its Streamable HTTP endpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// The program and its arguments, for a server exo starts.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        command: Vec<String>,
        /// The secret handed to the server, if any: in `env` for a
        /// started server, else in `header` (by default as the bearer
        /// token of `Authorization`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// The environment variable a started server gets the secret in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
        /// The HTTP header the secret is sent in, as it is (without one,
        /// `Authorization: Bearer SECRET`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
    },
    /// A model.
    Model {
        /// The name agents use.
        name: String,
        /// The wire format.
        provider: Provider,
        /// The API's base URL.
        base_url: String,
        /// The model's name at the provider.
        upstream: String,
        /// The secret holding the API key, if the endpoint needs one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// How many tokens the model takes in one request, its prompt and
        /// its answer together; the provider's
        /// [default](Provider::default_context_window) when absent. The
        /// built-in executor compacts a history that approaches it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_window: Option<u64>,
    },
    /// A credential for an HTTP host, added at the boundary: the egress
    /// proxy a sandbox's commands go through sets it on their requests
    /// for this host, and never shows it to them.
    Http {
        /// The host as commands ask for it, `HOST` or `HOST:PORT`
        /// (lowercase).
        name: String,
        /// The secret holding the credential.
        secret: String,
        /// The header it goes in (default `Authorization`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        /// The word before it in the header's value (default `Bearer`
        /// for `Authorization`, none for another header).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
        /// exo calls the host over plain http rather than https (a
        /// service on the machine or a private network).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        plain_http: bool,
    },
}

impl Binding {
    /// The binding's kind.
    pub fn kind(&self) -> BindingKind {
        match self {
            Binding::Env { .. } => BindingKind::Env,
            Binding::Mcp { .. } => BindingKind::Mcp,
            Binding::Model { .. } => BindingKind::Model,
            Binding::Http { .. } => BindingKind::Http,
        }
    }

    /// The binding's name, unique per kind and scope.
    pub fn name(&self) -> &str {
        match self {
            Binding::Env { name, .. }
            | Binding::Mcp { name, .. }
            | Binding::Model { name, .. }
            | Binding::Http { name, .. } => name,
        }
    }

    /// The secret it refers to, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Binding::Env { secret, .. } | Binding::Http { secret, .. } => Some(secret),
            Binding::Mcp { secret, .. } | Binding::Model { secret, .. } => secret.as_deref(),
        }
    }

    /// Checks names and URLs.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Binding::Env { name, secret } => {
                validate_env_name(name)?;
                validate_name("secret", secret)
            }
            Binding::Mcp {
                name,
                url,
                command,
                secret,
                env,
                header,
            } => {
                validate_name("MCP server", name)?;
                if name == "exo" {
                    return Err(ValidationError::new(
                        "the MCP server name \"exo\" is exo's own (the conversation's history)",
                    ));
                }
                if name.contains("__") {
                    return Err(ValidationError::new(format!(
                        "invalid MCP server name {name:?}: it may not contain \"__\", which separates it from its tools' names"
                    )));
                }
                match (url, command.is_empty()) {
                    (Some(url), true) => {
                        validate_url(url)?;
                        if env.is_some() {
                            return Err(ValidationError::new(
                                "an MCP server called over HTTP takes its secret in a header, not an environment variable",
                            ));
                        }
                        if let Some(header) = header {
                            validate_header_name(header)?;
                        }
                    }
                    (None, false) => {
                        validate_command(command)?;
                        if header.is_some() {
                            return Err(ValidationError::new(
                                "an MCP server exo starts takes its secret in an environment variable, not a header",
                            ));
                        }
                        if let Some(env) = env {
                            validate_env_name(env)?;
                        }
                        if secret.is_some() != env.is_some() {
                            return Err(ValidationError::new(
                                "an MCP server exo starts needs both a secret and the environment variable to put it in, or neither",
                            ));
                        }
                    }
                    (Some(_), false) => {
                        return Err(ValidationError::new(
                            "an MCP server has a URL or a command, not both",
                        ))
                    }
                    (None, true) => {
                        return Err(ValidationError::new(
                            "an MCP server needs a URL or a command",
                        ))
                    }
                }
                secret
                    .as_deref()
                    .map_or(Ok(()), |s| validate_name("secret", s))
            }
            Binding::Model {
                name,
                provider,
                base_url,
                upstream,
                secret,
                context_window,
            } => {
                validate_name("model", name)?;
                if let Some(tokens) = context_window {
                    if !(1..=MAX_CONTEXT_WINDOW).contains(tokens) {
                        return Err(ValidationError::new(format!(
                            "invalid context window {tokens}: expected 1 to {MAX_CONTEXT_WINDOW} tokens"
                        )));
                    }
                }
                match provider {
                    Provider::Scripted => validate_script_url(base_url)?,
                    _ => validate_url(base_url)?,
                }
                if upstream.is_empty() || upstream.len() > 256 {
                    return Err(ValidationError::new(
                        "upstream model name must be 1-256 characters",
                    ));
                }
                secret
                    .as_deref()
                    .map_or(Ok(()), |s| validate_name("secret", s))
            }
            Binding::Http {
                name,
                secret,
                header,
                scheme,
                plain_http: _,
            } => {
                validate_http_host(name)?;
                validate_name("secret", secret)?;
                if let Some(header) = header {
                    validate_header_name(header)?;
                    let lower = header.to_ascii_lowercase();
                    if [
                        "host",
                        "connection",
                        "content-length",
                        "transfer-encoding",
                        "proxy-authorization",
                        "proxy-authenticate",
                        "proxy-connection",
                        "keep-alive",
                        "trailer",
                        "te",
                        "upgrade",
                    ]
                    .contains(&lower.as_str())
                    {
                        return Err(ValidationError::new(format!(
                            "the header {header:?} is the connection's own; a credential goes in another (Authorization, X-Api-Key, ...)"
                        )));
                    }
                }
                if let Some(scheme) = scheme {
                    let ok = !scheme.is_empty()
                        && scheme.len() <= 64
                        && scheme
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
                    if !ok {
                        return Err(ValidationError::new(format!(
                            "invalid authorization scheme {scheme:?}: one word, such as Bearer or token"
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// For an HTTP binding: the header the credential goes in, and the
    /// header's value for `secret`.
    pub fn http_header(&self, secret: &str) -> Option<(String, String)> {
        let Binding::Http { header, scheme, .. } = self else {
            return None;
        };
        let header = header
            .as_deref()
            .unwrap_or("authorization")
            .to_ascii_lowercase();
        let scheme = match scheme {
            Some(scheme) => Some(scheme.as_str()),
            None if header == "authorization" => Some("Bearer"),
            None => None,
        };
        Some(match scheme {
            Some(scheme) => (header, format!("{scheme} {secret}")),
            None => (header, secret.to_owned()),
        })
    }
}

/// An HTTP binding's host: a lowercase DNS name or IPv4 address, with an
/// optional port.
fn validate_http_host(name: &str) -> Result<(), ValidationError> {
    let invalid = |why: &str| {
        ValidationError::new(format!(
            "invalid HTTP host {name:?}: {why} (expected HOST or HOST:PORT, such as api.example.com)"
        ))
    };
    if name.contains("://") || name.contains('/') {
        return Err(invalid("it is a host, not a URL"));
    }
    let (host, port) = match name.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (name, None),
    };
    if host.is_empty() || host.len() > 253 {
        return Err(invalid("the host must be 1-253 characters"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err(invalid(
            "a host is lowercase letters, digits, dots and hyphens",
        ));
    }
    if host.ends_with('.') {
        return Err(invalid("a host does not end with a dot"));
    }
    if host.starts_with(['.', '-']) || host.ends_with('-') || host.contains("..") {
        return Err(invalid("a label is empty or starts or ends with a hyphen"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(80 | 443) => {
                return Err(invalid(
                    "leave the default port out (the host alone stands for 80 and 443)",
                ))
            }
            Ok(number) if number > 0 && number.to_string() == port => {}
            _ => return Err(invalid("the port must be 1-65535")),
        }
    }
    Ok(())
}

fn validate_env_name(name: &str) -> Result<(), ValidationError> {
    let is_env_name = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_env_name {
        Ok(())
    } else {
        Err(ValidationError::new(format!(
            "invalid environment variable name {name:?}"
        )))
    }
}

/// An HTTP header name (RFC 9110 token characters).
fn validate_header_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(format!(
            "invalid HTTP header name {name:?}"
        )))
    }
}

/// A program and its arguments: 1 to 256 of them, none empty-named, no
/// NUL (which no argument can carry), each at most 4096 bytes.
fn validate_command(command: &[String]) -> Result<(), ValidationError> {
    if command.len() > 256 {
        return Err(ValidationError::new(
            "an MCP server's command may have at most 255 arguments",
        ));
    }
    if command[0].is_empty() {
        return Err(ValidationError::new("an MCP server's program is empty"));
    }
    for arg in command {
        if arg.contains('\0') || arg.len() > 4096 {
            return Err(ValidationError::new(
                "an MCP server's command has an argument with a NUL byte or over 4096 bytes",
            ));
        }
    }
    Ok(())
}

fn validate_url(url: &str) -> Result<(), ValidationError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(format!(
            "invalid URL {url:?}: expected http:// or https://"
        )))
    }
}

/// A scripted model's base URL: `file://` and an absolute path.
fn validate_script_url(url: &str) -> Result<(), ValidationError> {
    match url.strip_prefix("file://") {
        Some(path)
            if path.starts_with('/')
                && url.len() <= 4096
                && !url.chars().any(char::is_control) =>
        {
            Ok(())
        }
        _ => Err(ValidationError::new(format!(
            "invalid script URL {url:?}: a scripted model's base URL is file:// and an absolute path"
        ))),
    }
}

/// The kinds of secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// One opaque key.
    ApiKey,
    /// An OAuth access token, with its refresh token.
    Oauth,
}

impl SecretKind {
    /// The kind as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "api_key",
            SecretKind::Oauth => "oauth",
        }
    }
}

/// A secret's plaintext. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretValue {
    /// An API key.
    ApiKey {
        /// The key.
        value: String,
    },
    /// An OAuth token pair.
    Oauth {
        /// The access token.
        access_token: String,
        /// The refresh token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_token: Option<String>,
        /// When the access token expires, Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
}

impl SecretValue {
    /// The secret's kind.
    pub fn kind(&self) -> SecretKind {
        match self {
            SecretValue::ApiKey { .. } => SecretKind::ApiKey,
            SecretValue::Oauth { .. } => SecretKind::Oauth,
        }
    }

    /// The credential a client sends: the API key or the access token.
    pub fn credential(&self) -> &str {
        match self {
            SecretValue::ApiKey { value } => value,
            SecretValue::Oauth { access_token, .. } => access_token,
        }
    }

    /// Checks the value is usable.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.credential().is_empty() {
            return Err(ValidationError::new("secret value is empty"));
        }
        if self.credential().len() > 64 * 1024 {
            return Err(ValidationError::new("secret value is larger than 64 KiB"));
        }
        Ok(())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue::{}(<redacted>)", self.kind().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let secret = SecretValue::ApiKey {
            value: "sk-live-123".into(),
        };
        assert!(!format!("{secret:?}").contains("sk-live"));
    }

    #[test]
    fn binding_validation() {
        let model = Binding::Model {
            name: "gpt-5.4".into(),
            provider: Provider::OpenAi,
            base_url: "https://api.openai.com/v1".into(),
            upstream: "gpt-5.4".into(),
            secret: Some("openai".into()),
            context_window: Some(400_000),
        };
        model.validate().unwrap();
        let bad_env = Binding::Env {
            name: "1BAD".into(),
            secret: "x".into(),
        };
        assert!(bad_env.validate().is_err());
        let bad_url = mcp(Some("ftp://x"), &[], None, None, None);
        assert!(bad_url.validate().is_err());
    }

    fn http(name: &str, header: Option<&str>, scheme: Option<&str>) -> Binding {
        Binding::Http {
            name: name.into(),
            secret: "gh".into(),
            header: header.map(Into::into),
            scheme: scheme.map(Into::into),
            plain_http: false,
        }
    }

    #[test]
    fn http_bindings_name_a_host_and_a_header() {
        for good in [
            "api.github.com",
            "127.0.0.1:8123",
            "localhost",
            "a-b.example:8443",
        ] {
            http(good, None, None).validate().unwrap();
        }
        for bad in [
            "API.github.com",
            "https://api.github.com",
            "api.github.com/v3",
            "host:0",
            "host:080",
            "host:80",
            "api.example.com.",
            "http://x",
            "host:99999",
            "",
            ".example.com",
            "a..b",
        ] {
            assert!(http(bad, None, None).validate().is_err(), "{bad}");
        }
        assert!(http("h", Some("Proxy-Authorization"), None)
            .validate()
            .is_err());
        assert!(http("h", Some("Host"), None).validate().is_err());
        assert!(http("h", None, Some("two words")).validate().is_err());
        assert_eq!(
            http("h", None, None).http_header("s"),
            Some(("authorization".into(), "Bearer s".into()))
        );
        assert_eq!(
            http("h", Some("X-Api-Key"), None).http_header("s"),
            Some(("x-api-key".into(), "s".into()))
        );
        assert_eq!(
            http("h", None, Some("token")).http_header("s"),
            Some(("authorization".into(), "token s".into()))
        );
    }

    fn mcp(
        url: Option<&str>,
        command: &[&str],
        secret: Option<&str>,
        env: Option<&str>,
        header: Option<&str>,
    ) -> Binding {
        Binding::Mcp {
            name: "docs".into(),
            url: url.map(Into::into),
            command: command.iter().map(|s| s.to_string()).collect(),
            secret: secret.map(Into::into),
            env: env.map(Into::into),
            header: header.map(Into::into),
        }
    }

    #[test]
    fn an_mcp_server_is_called_over_http_or_started_never_both() {
        let http = "https://mcp.example.com/mcp";
        mcp(Some(http), &[], Some("tok"), None, None)
            .validate()
            .unwrap();
        mcp(Some(http), &[], Some("tok"), None, Some("X-Api-Key"))
            .validate()
            .unwrap();
        mcp(None, &["node", "server.mjs"], None, None, None)
            .validate()
            .unwrap();
        mcp(None, &["node"], Some("tok"), Some("DOCS_TOKEN"), None)
            .validate()
            .unwrap();
        let refused = |binding: Binding| binding.validate().unwrap_err().to_string();
        assert_eq!(
            refused(mcp(None, &[], None, None, None)),
            "an MCP server needs a URL or a command"
        );
        assert_eq!(
            refused(mcp(Some(http), &["x"], None, None, None)),
            "an MCP server has a URL or a command, not both"
        );
        assert!(refused(mcp(Some(http), &[], Some("t"), Some("V"), None)).contains("in a header"));
        assert!(
            refused(mcp(None, &["x"], Some("t"), None, Some("H"))).contains("environment variable")
        );
        // A started server without the variable would get no secret, and
        // a variable without a secret means nothing.
        assert!(refused(mcp(None, &["x"], Some("t"), None, None)).contains("or neither"));
        assert!(refused(mcp(None, &["x"], None, Some("V"), None)).contains("or neither"));
        assert!(
            refused(mcp(Some(http), &[], None, None, Some("Bad Header"))).contains("header name")
        );
        assert!(refused(mcp(None, &[""], None, None, None)).contains("program is empty"));
        assert!(refused(mcp(None, &["a\0b"], None, None, None)).contains("NUL"));
        let mut doubled = mcp(Some(http), &[], None, None, None);
        if let Binding::Mcp { name, .. } = &mut doubled {
            *name = "a__b".into();
        }
        assert!(refused(doubled).contains("__"));
        // Bindings stored before commands existed read the same.
        let old: Binding =
            serde_json::from_value(serde_json::json!({"type": "mcp", "name": "docs", "url": http}))
                .unwrap();
        assert_eq!(old, mcp(Some(http), &[], None, None, None));
    }

    fn model(provider: Provider, base_url: &str) -> Binding {
        Binding::Model {
            name: "demo".into(),
            provider,
            base_url: base_url.into(),
            upstream: "demo".into(),
            secret: None,
            context_window: None,
        }
    }

    #[test]
    fn a_context_window_is_at_least_one_token_and_at_most_the_limit() {
        let with = |tokens| Binding::Model {
            name: "demo".into(),
            provider: Provider::OpenAi,
            base_url: "https://api.example.com/v1".into(),
            upstream: "demo".into(),
            secret: None,
            context_window: Some(tokens),
        };
        with(1).validate().unwrap();
        with(MAX_CONTEXT_WINDOW).validate().unwrap();
        for tokens in [0, MAX_CONTEXT_WINDOW + 1] {
            assert_eq!(
                with(tokens).validate().unwrap_err().to_string(),
                format!(
                    "invalid context window {tokens}: expected 1 to {MAX_CONTEXT_WINDOW} tokens"
                )
            );
        }
        // Absent, it is not written, so bindings stored before it existed
        // read the same.
        let json = serde_json::to_value(model(Provider::OpenAi, "https://x.example/v1")).unwrap();
        assert!(json.get("context_window").is_none(), "{json}");
    }

    #[test]
    fn a_scripted_model_names_its_script_by_a_file_url() {
        // Only the form is checked: whether the script exists and parses is
        // for the model client to say when it is built. The path is taken
        // as written, not percent-decoded.
        for url in [
            "file:///tmp/demo.json",
            "file:///home/me/exo demo/script.json",
            "file:///",
        ] {
            model(Provider::Scripted, url)
                .validate()
                .unwrap_or_else(|err| panic!("{url}: {err}"));
        }
        let too_long = format!("file:///{}", "a".repeat(4096));
        for url in [
            "",
            "file://",
            "file://demo.json",
            "file://host/tmp/demo.json",
            "file:/tmp/demo.json",
            "/tmp/demo.json",
            "FILE:///tmp/demo.json",
            "https://example.com/demo.json",
            "file:///tmp/demo\n.json",
            too_long.as_str(),
        ] {
            let err = model(Provider::Scripted, url).validate().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid script URL {url:?}: a scripted model's base URL is file:// and an absolute path"
                ),
            );
        }
    }

    #[test]
    fn other_providers_still_need_an_http_url() {
        for provider in [Provider::OpenAi, Provider::OpenAiChat, Provider::Anthropic] {
            model(provider, "https://api.example.com/v1")
                .validate()
                .unwrap();
            model(provider, "http://localhost:11434/v1")
                .validate()
                .unwrap();
            let err = model(provider, "file:///tmp/demo.json")
                .validate()
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid URL \"file:///tmp/demo.json\": expected http:// or https://",
                "{provider}"
            );
        }
    }
}

/// What an agent's executor does before a tool call that runs a command or
/// writes a file (reads never ask). Set per agent (`approval` in its
/// configuration); `ask` when unset.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Run it.
    Auto,
    /// Ask an attached client; with none to ask, deny.
    #[default]
    Ask,
    /// Refuse it; the model is told so.
    Deny,
}

impl ApprovalPolicy {
    /// The name as written on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPolicy::Auto => "auto",
            ApprovalPolicy::Ask => "ask",
            ApprovalPolicy::Deny => "deny",
        }
    }
}

impl fmt::Display for ApprovalPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalPolicy {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ApprovalPolicy::Auto),
            "ask" => Ok(ApprovalPolicy::Ask),
            "deny" => Ok(ApprovalPolicy::Deny),
            _ => Err(ValidationError::new(format!(
                "unknown approval policy {s:?}: expected auto, ask or deny"
            ))),
        }
    }
}
