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
        let store = self.store();
        let conversation = store
            .conversation(&params.agent, &params.conversation)
            .map_err(store_error)?;
        let agent = store.agent(&params.agent).map_err(store_error)?;
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
        client
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(token.clone());
        let url = gateway.url();
        Ok(GatewayToken {
            token,
            api: api.as_str().to_string(),
            openai_base_url: format!("{url}/v1"),
            anthropic_base_url: url,
        })
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
        if let Some(turn) = conversation.open_turn {
            match store.append_to_turn(turn, vec![event.clone()], None) {
                Ok(_) => return Ok(()),
                // The turn ended meanwhile: outside it, then.
                Err(err) => tracing::debug!(%err, "recording an exchange outside its turn"),
            }
        }
        store
            .append(&grant.agent, &grant.conversation, vec![event], None)
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
