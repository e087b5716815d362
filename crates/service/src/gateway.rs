//! The model gateway's side in the service (spec/gateway.md): it starts
//! the gateway on first use, mints tokens for a conversation, resolves the
//! conversation's model (and opens its key) on each request, and records
//! each exchange in the conversation's log.

use std::sync::{Arc, Weak};

use exo_core::{ConversationId, EventData, Provider};
use exo_gateway::{Api, Exchange, Gateway, Grant, Upstream};
use exo_protocol::methods::GatewayToken;
use exo_protocol::ErrorCode;
use futures_util::future::BoxFuture;
use serde_json::json;

use crate::convert::{simple_error, store_error};
use crate::{ClientContext, Inner, Service, ServiceResult};

/// The custom event type of a recorded exchange.
pub const EXCHANGE_TYPE: &str = "exo.gateway.exchange";

/// The `error` code of a request whose history is not the log's.
pub const HISTORY_MISMATCH: &str = "history_mismatch";

/// What a conversation's model requests must begin with: its history as
/// lines (`user: TEXT`, `assistant: TEXT`, `call ID NAME`, `result ID`).
pub(crate) struct Expected {
    lines: Vec<String>,
}

/// A Responses API `input` as lines, each with whether it may be the
/// CLI's own context rather than conversation: a system or developer
/// message, or a user message that is one tag-wrapped block (Codex's
/// `<environment_context>`).
fn responses_lines(input: &[serde_json::Value]) -> Vec<(String, bool)> {
    use serde_json::Value;
    let text_of = |item: &Value| -> String {
        match item.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|part| match part.get("text").and_then(Value::as_str) {
                    Some(text) => text.to_owned(),
                    None => "[image]".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    };
    let field = |item: &Value, key: &str| -> String {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut lines = Vec::new();
    for item in input {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => {
                let role = field(item, "role");
                let text = text_of(item);
                let tagged = text.trim_start().starts_with('<') && text.trim_end().ends_with('>');
                let context = role == "system" || role == "developer" || (role == "user" && tagged);
                lines.push((format!("{role}: {text}"), context));
            }
            "function_call" | "custom_tool_call" => lines.push((
                format!("call {} {}", field(item, "call_id"), field(item, "name")),
                false,
            )),
            "function_call_output" | "custom_tool_call_output" => {
                lines.push((format!("result {}", field(item, "call_id")), false))
            }
            // Reasoning and other items are the CLI's own.
            _ => {}
        }
    }
    lines
}

/// A Messages API `messages` as lines, each with whether it may be the
/// CLI's own context: system-role messages are; text blocks that are
/// Claude Code's `<system-reminder>`s are left out altogether. A message's
/// text blocks make one line, in place among its calls and results.
fn messages_lines(messages: &[serde_json::Value]) -> Vec<(String, bool)> {
    use serde_json::Value;
    let mut lines = Vec::new();
    for message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if role == "system" {
            lines.push((format!("system: {message}"), true));
            continue;
        }
        let blocks = match message.get("content") {
            Some(Value::String(text)) => vec![serde_json::json!({"type": "text", "text": text})],
            Some(Value::Array(blocks)) => blocks.clone(),
            _ => Vec::new(),
        };
        let mut text: Option<String> = None;
        let flush = |text: &mut Option<String>, lines: &mut Vec<(String, bool)>| {
            if let Some(text) = text.take() {
                lines.push((format!("{role}: {text}"), false));
            }
        };
        for block in &blocks {
            let field = |key: &str| {
                block
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            match block
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "text" => {
                    let piece = field("text");
                    if !piece.starts_with("<system-reminder>") {
                        text.get_or_insert_with(String::new).push_str(&piece);
                    }
                }
                "image" => text.get_or_insert_with(String::new).push_str("[image]"),
                "tool_use" => {
                    flush(&mut text, &mut lines);
                    lines.push((format!("call {} {}", field("id"), field("name")), false));
                }
                "tool_result" => {
                    flush(&mut text, &mut lines);
                    lines.push((format!("result {}", field("tool_use_id")), false));
                }
                // Thinking and other blocks are the CLI's own.
                _ => {}
            }
        }
        flush(&mut text, &mut lines);
    }
    lines
}

/// Lines as the check compares them: consecutive user texts are one (a
/// CLI may send two user messages as one, as Claude Code does with a
/// compaction's summary and the next prompt), and the placeholder Claude
/// Code answers with for a history that ends with the user
/// ("No response requested.") is not the conversation's.
fn normalized(lines: Vec<(String, bool)>) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::with_capacity(lines.len());
    for (line, context) in lines {
        if line == "assistant: No response requested." {
            continue;
        }
        if let (Some(text), Some((last, false))) = (line.strip_prefix("user: "), out.last_mut()) {
            if !context && last.starts_with("user: ") {
                last.push_str(text);
                continue;
            }
        }
        out.push((line, context));
    }
    out
}

/// Where a request's history first departs from what was expected, if it
/// does. The expected history may follow the CLI's own context, and be
/// followed by anything (the turn's own items).
fn history_mismatch(expected: &Expected, api: Api, request: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(request).ok()?;
    let sent = match api {
        Api::Responses => responses_lines(body.get("input")?.as_array()?),
        Api::Messages => messages_lines(body.get("messages")?.as_array()?),
        Api::ChatCompletions => return None,
    };
    let sent = normalized(sent);
    let wanted = normalized(
        expected
            .lines
            .iter()
            .map(|line| (line.clone(), false))
            .collect(),
    );
    let expected = Expected {
        lines: wanted.into_iter().map(|(line, _)| line).collect(),
    };
    let matches_at = |start: usize| {
        expected.lines.len() <= sent.len() - start
            && expected
                .lines
                .iter()
                .zip(&sent[start..])
                .all(|(want, (got, _))| want == got)
    };
    let preamble = sent.iter().take_while(|(_, context)| *context).count();
    if (0..=preamble).any(matches_at) {
        return None;
    }
    let short = |line: &str| -> String { line.chars().take(80).collect() };
    let start = preamble;
    for (index, want) in expected.lines.iter().enumerate() {
        match sent.get(start + index) {
            Some((got, _)) if got == want => {}
            Some((got, _)) => {
                return Some(format!(
                    "the history sent to the model departs from the log at item {}: the log holds {:?}, the request {:?}",
                    index + 1,
                    short(want),
                    short(got)
                ))
            }
            None => break,
        }
    }
    Some(format!(
        "the history sent to the model stops after {} of the log's {} items",
        sent.len() - start,
        expected.lines.len()
    ))
}

/// The API a provider speaks, as the gateway names it.
fn api_of(provider: Provider) -> Option<Api> {
    match provider {
        Provider::OpenAi => Some(Api::Responses),
        Provider::OpenAiChat => Some(Api::ChatCompletions),
        Provider::Anthropic => Some(Api::Messages),
        Provider::Scripted => None,
    }
}

impl Service {
    /// Marks every cached resolution of a conversation's model stale.
    pub(crate) fn configuration_changed(&self) {
        self.inner
            .configuration
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn configuration(&self) -> u64 {
        self.inner
            .configuration
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The gateway, started on the current runtime the first time.
    pub fn gateway(&self) -> ServiceResult<Gateway> {
        let mut gateway = self.inner.gateway.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(gateway) = gateway.as_ref() {
            return Ok(gateway.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            simple_error(
                ErrorCode::InvalidParams,
                "the model gateway runs in a daemon, or in a process that keeps a connection open: not for a one-shot call",
            )
        })?;
        let upstreams = Arc::new(ServiceUpstreams {
            service: Arc::downgrade(&self.inner),
            resolved: Arc::new(std::sync::Mutex::new(std::collections::HashMap::new())),
        });
        let started = Gateway::start(&runtime, upstreams)
            .map_err(|err| simple_error(ErrorCode::Internal, err.to_string()))?;
        *gateway = Some(started.clone());
        Ok(started)
    }

    /// The gateway's URL, once started.
    pub fn gateway_url(&self) -> Option<String> {
        self.inner
            .gateway
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Gateway::url)
    }

    /// `gateway/token`: a token for the conversation's model, owned by
    /// `client` (revoked when it goes).
    pub(crate) fn gateway_token(
        &self,
        client: &ClientContext,
        params: exo_protocol::ConversationRef,
    ) -> ServiceResult<GatewayToken> {
        let minted = self.mint_gateway_token(&params.agent, &params.conversation)?;
        client
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(minted.token.clone());
        Ok(minted)
    }

    /// A token for the conversation's model, owned by the caller, who
    /// revokes it ([`Service::gateway_revoke`]).
    pub fn mint_gateway_token(
        &self,
        agent: &str,
        conversation: &str,
    ) -> ServiceResult<GatewayToken> {
        let store = self.store();
        let conversation = store
            .conversation(agent, conversation)
            .map_err(store_error)?;
        let agent = store.agent(agent).map_err(store_error)?;
        // The model must resolve now, so that a misconfigured agent is
        // refused here rather than at the CLI's first request.
        let resolved = self.model_of(&agent.id.to_string(), conversation.id)?;
        let api = api_of(resolved.provider).ok_or_else(|| {
            simple_error(
                ErrorCode::InvalidParams,
                format!(
                    "the model of agent {} is scripted: it has no HTTP API to serve through the gateway",
                    agent.slug
                ),
            )
        })?;
        let gateway = self.gateway()?;
        let token = gateway
            .mint(Grant {
                agent: agent.id.to_string(),
                conversation: conversation.id.to_string(),
            })
            .map_err(|err| simple_error(ErrorCode::Internal, err.to_string()))?;
        let url = gateway.url();
        Ok(GatewayToken {
            token,
            api: api.as_str().to_string(),
            openai_base_url: format!("{url}/v1"),
            anthropic_base_url: url,
        })
    }

    /// Waits until the exchanges made with `token` are recorded, or
    /// `timeout` passed. Blocking.
    pub fn gateway_settle(&self, token: &str, timeout: std::time::Duration) -> bool {
        let gateway = self
            .inner
            .gateway
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        gateway.is_none_or(|gateway| gateway.settle(token, timeout))
    }

    /// Sets or clears what the conversation's model requests must begin
    /// with.
    pub(crate) fn expect_history(
        &self,
        conversation: ConversationId,
        history: Option<Vec<exo_model::Item>>,
    ) {
        let mut expected = self
            .inner
            .expected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match history {
            Some(items) => {
                let input = exo_model::responses_input(&items);
                expected.insert(
                    conversation,
                    Expected {
                        lines: responses_lines(&input)
                            .into_iter()
                            .map(|(line, _)| line)
                            .collect(),
                    },
                );
            }
            None => {
                expected.remove(&conversation);
            }
        }
    }

    /// Revokes a token; whether it was live.
    pub fn gateway_revoke(&self, token: &str) -> bool {
        let gateway = self.inner.gateway.lock().unwrap_or_else(|p| p.into_inner());
        gateway
            .as_ref()
            .is_some_and(|gateway| gateway.revoke(token))
    }

    /// The conversation's model as its agent names it now.
    fn model_of(
        &self,
        agent: &str,
        conversation: ConversationId,
    ) -> ServiceResult<crate::turns::ResolvedModel> {
        let store = self.store();
        let record = store.agent(agent).map_err(store_error)?;
        let config = exo_core::AgentConfig::from_map(&record.config).map_err(|err| {
            simple_error(
                ErrorCode::InvalidParams,
                format!("agent {}: {err}", record.slug),
            )
        })?;
        let model = config.model.ok_or_else(|| {
            simple_error(
                ErrorCode::InvalidParams,
                format!("agent {} has no model", record.slug),
            )
        })?;
        self.resolve_model(agent, &conversation.to_string(), &model)
    }

    /// Records an exchange: its bodies as artifacts, then an
    /// `exo.gateway.exchange` event, in the open turn if there is one.
    fn record_exchange(&self, grant: &Grant, exchange: &Exchange) -> ServiceResult<()> {
        let store = self.store();
        let base = format!("gateway/{}", exchange.id);
        let request_path = format!("{base}/request.json");
        let response_path = format!("{base}/response");
        store
            .put_artifact(
                &grant.agent,
                &grant.conversation,
                &request_path,
                &exchange.request,
                Some("application/json"),
            )
            .map_err(store_error)?;
        store
            .put_artifact(
                &grant.agent,
                &grant.conversation,
                &response_path,
                &exchange.response,
                None,
            )
            .map_err(store_error)?;
        let millis = |duration: std::time::Duration| duration.as_secs_f64() * 1000.0;
        let usage = exchange.usage.is_known().then(|| {
            json!({
                "input_tokens": exchange.usage.input_tokens,
                "output_tokens": exchange.usage.output_tokens,
            })
        });
        let event = EventData::Custom {
            custom_type: EXCHANGE_TYPE.to_string(),
            payload: json!({
                "api": exchange.api.as_str(),
                "model": exchange.model,
                "upstream_model": exchange.upstream_model,
                "status": exchange.status,
                "outcome": exchange.outcome.as_str(),
                "usage": usage,
                "ttfb_ms": exchange.ttfb.map(millis),
                "duration_ms": millis(exchange.duration),
                "request": request_path,
                "response": response_path,
                "truncated": exchange.truncated,
            }),
        };
        let conversation = store
            .conversation(&grant.agent, &grant.conversation)
            .map_err(store_error)?;
        let mut events = vec![event];
        {
            let expected = self
                .inner
                .expected
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(mismatch) = expected
                .get(&conversation.id)
                .and_then(|expected| history_mismatch(expected, exchange.api, &exchange.request))
            {
                // Recorded in the conversation; not for the terminal of
                // whoever runs the turn.
                tracing::debug!(conversation = %conversation.id, "{mismatch}");
                events.push(EventData::Error {
                    message: mismatch,
                    code: Some(HISTORY_MISMATCH.to_string()),
                });
            }
        }
        if let Some(turn) = conversation.open_turn {
            match store.append_to_turn(turn, events.clone(), None) {
                Ok(_) => return Ok(()),
                // The turn ended meanwhile: outside it, then.
                Err(err) => tracing::debug!(%err, "recording an exchange outside its turn"),
            }
        }
        store
            .append(&grant.agent, &grant.conversation, events, None)
            .map(|_| ())
            .map_err(store_error)
    }
}

/// The gateway's view of the service. Weak: a gateway does not keep the
/// service (and its store) alive.
///
/// A conversation's model is resolved from the store once, then reused
/// until a call changes bindings, secrets or agents (the service's
/// configuration generation moves): a CLI's next request, sent the moment
/// its previous answer ends, must not wait behind that answer's recording
/// for a store read whose answer cannot have changed.
struct ServiceUpstreams {
    service: Weak<Inner>,
    resolved: Arc<ResolvedCache>,
}

/// Resolutions by grant, with the configuration generation they were made
/// at.
type ResolvedCache = std::sync::Mutex<std::collections::HashMap<Grant, (u64, Arc<Resolved>)>>;

/// A resolution, as the gateway needs it.
struct Resolved {
    api: Api,
    base_url: String,
    model: String,
    key: Option<exo_model::ApiKey>,
}

impl ServiceUpstreams {
    fn service(&self) -> Option<Service> {
        self.service.upgrade().map(|inner| Service { inner })
    }
}

impl exo_gateway::Upstreams for ServiceUpstreams {
    fn resolve(&self, grant: &Grant) -> BoxFuture<'static, Result<Upstream, String>> {
        let service = self.service();
        let grant = grant.clone();
        let cached = service.as_ref().and_then(|service| {
            let generation = service.configuration();
            self.resolved
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&grant)
                .filter(|(at, _)| *at == generation)
                .map(|(_, resolved)| Arc::clone(resolved))
        });
        let upstream = |resolved: &Resolved| Upstream {
            api: resolved.api,
            base_url: resolved.base_url.clone(),
            model: resolved.model.clone(),
            key: resolved.key.clone(),
        };
        if let Some(resolved) = cached {
            let upstream = upstream(&resolved);
            return Box::pin(async move { Ok(upstream) });
        }
        let cache = Arc::clone(&self.resolved);
        Box::pin(async move {
            let Some(service) = service else {
                return Err("exo is stopping".to_string());
            };
            // Read before resolving: a change committed meanwhile makes
            // this resolution stale at once.
            let generation = service.configuration();
            let key = grant.clone();
            let resolved = tokio::task::spawn_blocking(move || {
                let conversation: ConversationId = grant
                    .conversation
                    .parse()
                    .map_err(|_| "a token names no conversation".to_string())?;
                service
                    .model_of(&grant.agent, conversation)
                    .map_err(|err| err.message)
            })
            .await
            .map_err(|err| format!("resolving the model: {err}"))??;
            let api = api_of(resolved.provider).ok_or_else(|| {
                "the conversation's model is scripted: it has no HTTP API".to_string()
            })?;
            let resolved = Arc::new(Resolved {
                api,
                base_url: resolved.base_url,
                model: resolved.upstream,
                key: resolved.key,
            });
            let answer = upstream(&resolved);
            cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (generation, resolved));
            Ok(answer)
        })
    }

    fn record(&self, grant: &Grant, exchange: Exchange) -> BoxFuture<'static, ()> {
        let service = self.service();
        let grant = grant.clone();
        Box::pin(async move {
            let Some(service) = service else { return };
            let recorded =
                tokio::task::spawn_blocking(move || service.record_exchange(&grant, &exchange))
                    .await;
            match recorded {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err.message, "could not record a gateway exchange")
                }
                Err(err) => tracing::warn!(%err, "could not record a gateway exchange"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_core::{ContentPart, Role};
    use exo_model::Item;

    fn message(role: Role, text: &str) -> Item {
        Item::Message {
            role,
            content: vec![ContentPart::Text { text: text.into() }],
        }
    }

    fn expected(items: &[Item]) -> Expected {
        Expected {
            lines: responses_lines(&exo_model::responses_input(items))
                .into_iter()
                .map(|(line, _)| line)
                .collect(),
        }
    }

    fn request(input: serde_json::Value) -> Vec<u8> {
        json!({"model": "m", "input": input})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_request_that_carries_the_log_after_the_cli_context_matches() {
        let log = expected(&[
            message(Role::User, "<b>bold</b>"),
            Item::ToolCall {
                call_id: "c1".into(),
                name: "exec_command".into(),
                arguments: json!({"cmd": "ls"}),
            },
            Item::ToolResult {
                call_id: "c1".into(),
                output: "a".into(),
                is_error: false,
            },
            message(Role::Assistant, "done"),
        ]);
        let sent = request(json!([
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>x</environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<b>bold</b>"}]},
            {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{}"},
            {"type": "reasoning", "summary": []},
            {"type": "function_call_output", "call_id": "c1", "output": "a"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "more of the turn"}]},
        ]));
        assert_eq!(history_mismatch(&log, Api::Responses, &sent), None);
    }

    #[test]
    fn a_request_missing_or_changing_history_is_a_mismatch() {
        let log = expected(&[
            message(Role::User, "first"),
            message(Role::Assistant, "answer"),
            message(Role::User, "second"),
        ]);
        let rewound_away = request(json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "an old answer"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ]));
        let why = history_mismatch(&log, Api::Responses, &rewound_away).unwrap();
        assert!(
            why.contains("item 2") && why.contains("an old answer"),
            "{why}"
        );
        let cut = request(json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]},
        ]));
        let why = history_mismatch(&log, Api::Responses, &cut).unwrap();
        assert!(why.contains("stops after 1 of the log's 3"), "{why}");
        let stale_prefix = request(json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a turn rewound away"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "answer"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ]));
        assert!(history_mismatch(&log, Api::Responses, &stale_prefix).is_some());
    }

    #[test]
    fn a_messages_request_is_checked_without_claude_code_reminders() {
        let log = expected(&[
            message(Role::User, "first"),
            message(Role::Assistant, "looking"),
            Item::ToolCall {
                call_id: "t1".into(),
                name: "Bash".into(),
                arguments: json!({"command": "ls"}),
            },
            Item::ToolResult {
                call_id: "t1".into(),
                output: "a".into(),
                is_error: false,
            },
            message(Role::User, "second"),
        ]);
        let body = |last: &str| {
            json!({"messages": [
                {"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"}, {"type": "text", "text": "first"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "looking"}, {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a"}, {"type": "text", "text": last}]},
                {"role": "system", "content": "the environment"},
            ]})
            .to_string()
            .into_bytes()
        };
        assert_eq!(history_mismatch(&log, Api::Messages, &body("second")), None);
        let why = history_mismatch(&log, Api::Messages, &body("other")).unwrap();
        assert!(why.contains("item 5"), "{why}");
    }

    #[test]
    fn merged_user_messages_and_claude_codes_placeholder_are_not_mismatches() {
        let log = expected(&[
            message(Role::User, "A summary: we talked"),
            message(Role::User, "after compaction"),
        ]);
        let merged = json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "A summary: we talked"}, {"type": "text", "text": "after compaction"}]},
        ]})
        .to_string()
        .into_bytes();
        assert_eq!(history_mismatch(&log, Api::Messages, &merged), None);
        let log = expected(&[
            message(Role::User, "cancelled before any answer"),
            message(Role::User, "next"),
        ]);
        let placeholder = json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "cancelled before any answer"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "No response requested."}]},
            {"role": "user", "content": [{"type": "text", "text": "next"}]},
        ]})
        .to_string()
        .into_bytes();
        assert_eq!(history_mismatch(&log, Api::Messages, &placeholder), None);
    }
}
