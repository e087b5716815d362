//! exo's out-of-process executors (spec/harness.md).
//!
//! An agent whose harness is `typescript` runs its turns in a **runner**,
//! `node` running `@exo/harness`'s `dist/runner.js` with the agent's
//! module, one per conversation, kept warm between turns. exo begins and
//! finishes each turn itself (the snapshots and the log stay exo's); the
//! runner decides what happens in between and asks exo for everything it
//! needs: model calls (the key never leaves exo), exo's tools (confined to
//! the workspace, the approval policy applied), approvals, events and
//! artifacts of its own conversation, through the connection that is its
//! capability.
//!
//! # Failures
//!
//! - The runner answers the turn with an error (the module threw): an
//!   `error` event with code `harness`, the turn ends `failed`.
//! - The runner dies during the turn (killed, crashed): what exo was doing
//!   for it is cancelled, and the turn ends `interrupted`; the next turn
//!   starts a new runner, which reads the same history.
//! - A cancel is passed on as `$/cancelRequest`; a runner that has not
//!   answered 5 s later is killed, and the turn ends `cancelled`.
//! - exo dies: the runner's stdin closes and its process group is killed by
//!   the reaper (`exo_tools::reaper`); the turn is closed `interrupted` by
//!   the next process to open the conversation.

mod runner;
mod runtime;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exo_core::{AgentConfig, ConversationId, EventData, Harness, TurnStatus};
use exo_executor::host::{blocking, finish, prepare};
use exo_executor::{
    Executor, HostParts, Observer, Outcome, Substrate, SubstrateError, TurnHost, TurnRequest,
    DEFAULT_MAX_ROUNDS,
};
use exo_model::ClientOptions;
use exo_protocol::harness::{HarnessTurn, HarnessTurnResult, HarnessTurnStatus};
use exo_protocol::Method;
use exo_rpc::message::Json;
use exo_rpc::peer::RequestError;
use exo_tools::Limits;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use runtime::{check_module, Runtime};

use runner::{Identity, Runner, Scope};

/// The Cursor harness's module, in the runtime's `dist`.
pub const CURSOR_MODULE: &str = "cursor.js";

/// How long a runner stays warm without a turn.
pub const IDLE: Duration = Duration::from_secs(10 * 60);

/// How long a runner has to answer a cancelled turn before it is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// How many runners stay warm at once: starting one more stops the one
/// used least recently (that is not running a turn).
pub const MAX_WARM: usize = 8;

/// The TypeScript harness: an agent's module run by `@exo/harness`.
#[derive(Clone)]
pub struct TypeScript {
    /// Warm runners, by conversation.
    runners: Arc<Mutex<HashMap<ConversationId, Arc<Runner>>>>,
    /// Bounds on each tool call.
    pub limits: Limits,
    /// Retries and timeouts of model calls.
    pub client_options: ClientOptions,
    /// How long a runner stays warm without a turn ([`IDLE`], or
    /// `EXO_HARNESS_IDLE_SECS`).
    pub idle: Duration,
    /// How many runners stay warm at once ([`MAX_WARM`], or
    /// `EXO_HARNESS_WARM`).
    pub warm: usize,
}

impl Default for TypeScript {
    fn default() -> TypeScript {
        let setting = |name: &str| {
            exo_secrets::environment::var_os(name)
                .and_then(|value| value.to_str()?.trim().parse::<u64>().ok())
        };
        TypeScript {
            runners: Arc::default(),
            limits: Limits::default(),
            client_options: ClientOptions::default(),
            idle: setting("EXO_HARNESS_IDLE_SECS").map_or(IDLE, Duration::from_secs),
            warm: setting("EXO_HARNESS_WARM")
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(MAX_WARM),
        }
    }
}

impl Executor for TypeScript {
    fn name(&self) -> &'static str {
        "typescript"
    }

    fn run_turn(
        &self,
        substrate: Arc<dyn Substrate>,
        request: TurnRequest,
        observer: Arc<dyn Observer>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Outcome, SubstrateError>> {
        let this = self.clone();
        Box::pin(async move { this.run(substrate, request, observer, cancel).await })
    }

    fn check(&self, config: &AgentConfig) -> Result<(), String> {
        if config.harness == Harness::Cursor {
            if config.module.is_some() {
                return Err("the cursor harness takes no module: it is exo's own".to_string());
            }
            return Runtime::builtin(CURSOR_MODULE).map(|_| ());
        }
        let Some(module) = &config.module else {
            return Err("the typescript harness needs a module".to_string());
        };
        check_module(std::path::Path::new(module)).map(|_| ())
    }

    fn forget_agent(&self, agent: &str) {
        let stopped: Vec<Arc<Runner>> = {
            let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<ConversationId> = runners
                .iter()
                .filter(|(_, runner)| runner.identity.agent.to_string() == agent)
                .map(|(key, _)| *key)
                .collect();
            keys.iter().filter_map(|key| runners.remove(key)).collect()
        };
        for runner in stopped {
            runner.kill();
        }
    }

    fn forget_conversation(&self, conversation: ConversationId) {
        let stopped = self
            .runners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conversation);
        // A runner in a turn (one that began after the rewind) finishes
        // it; out of the map, it is not used again, and its process is
        // killed when the turn lets go of it.
        if let Some(runner) = stopped.filter(|runner| runner.busy.try_lock().is_ok()) {
            runner.kill();
        }
    }
}

impl TypeScript {
    /// The warm runner of the conversation, or a new one. A runner whose
    /// module changed, that is gone, or that idled too long is replaced.
    async fn runner(
        &self,
        module: &std::path::Path,
        identity: Identity,
    ) -> Result<Arc<Runner>, String> {
        let stale: Vec<Arc<Runner>> = {
            let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<ConversationId> = runners
                .iter()
                .filter(|(key, runner)| {
                    runner.is_gone()
                        || runner.idle_for(self.idle)
                        || (**key == identity.conversation && runner.module != module)
                })
                .map(|(key, _)| *key)
                .collect();
            keys.iter().filter_map(|key| runners.remove(key)).collect()
        };
        // Stopped in the background: a turn never waits for another
        // conversation's runner to exit.
        for runner in stale {
            tokio::spawn(runner.stop());
        }
        let warm = self
            .runners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&identity.conversation)
            .cloned();
        if let Some(runner) = warm {
            return Ok(runner);
        }
        let conversation = identity.conversation;
        let runner = Runner::start(module, identity).await?;
        let evicted = {
            let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
            runners.insert(conversation, Arc::clone(&runner));
            self.over_the_cap(&mut runners)
        };
        for runner in evicted {
            tokio::spawn(runner.stop());
        }
        self.stop_when_idle(&runner);
        Ok(runner)
    }

    /// Takes out of `runners` the least recently used ones beyond the cap
    /// ([`TypeScript::warm`]), passing over those running a turn.
    fn over_the_cap(&self, runners: &mut HashMap<ConversationId, Arc<Runner>>) -> Vec<Arc<Runner>> {
        let mut idle: Vec<(std::time::Instant, ConversationId)> = runners
            .iter()
            .filter(|(_, runner)| runner.busy.try_lock().is_ok())
            .map(|(key, runner)| (runner.last_used(), *key))
            .collect();
        idle.sort();
        let excess = runners.len().saturating_sub(self.warm);
        idle.into_iter()
            .take(excess)
            .filter_map(|(_, key)| runners.remove(&key))
            .collect()
    }

    /// Stops `runner` once it has been idle for [`TypeScript::idle`] (unless
    /// it is gone from the warm runners by then).
    fn stop_when_idle(&self, runner: &Arc<Runner>) {
        let (runners, weak, idle) = (
            Arc::downgrade(&self.runners),
            Arc::downgrade(runner),
            self.idle,
        );
        tokio::spawn(async move {
            loop {
                let Some(runner) = weak.upgrade() else { return };
                let since = runner.last_used().elapsed();
                if since < idle {
                    drop(runner);
                    tokio::time::sleep(idle - since).await;
                    continue;
                }
                if runner.busy.try_lock().is_err() {
                    drop(runner);
                    tokio::time::sleep(idle).await;
                    continue;
                }
                let Some(runners) = runners.upgrade() else {
                    return;
                };
                let removed = {
                    let mut runners = runners.lock().unwrap_or_else(|p| p.into_inner());
                    let key = runner.identity.conversation;
                    let ours = runners
                        .get(&key)
                        .is_some_and(|known| Arc::ptr_eq(known, &runner));
                    ours.then(|| runners.remove(&key)).flatten()
                };
                if let Some(runner) = removed {
                    tracing::debug!(conversation = %runner.identity.conversation, "stopping an idle runner");
                    runner.stop().await;
                }
                return;
            }
        });
    }

    fn discard(&self, runner: &Arc<Runner>) {
        let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
        if runners
            .get(&runner.identity.conversation)
            .is_some_and(|known| Arc::ptr_eq(known, runner))
        {
            runners.remove(&runner.identity.conversation);
        }
        runner.kill();
    }

    async fn run(
        self,
        substrate: Arc<dyn Substrate>,
        request: TurnRequest,
        observer: Arc<dyn Observer>,
        cancel: CancellationToken,
    ) -> Result<Outcome, SubstrateError> {
        // Everything that can be wrong with the configuration is found
        // before the turn begins, so a failure records nothing.
        let (agent, conversation) = (request.agent.clone(), request.conversation.clone());
        let setup = blocking(&substrate, move |s| s.setup(&agent, &conversation)).await?;
        // The Cursor harness is a module of the runtime's own, given the
        // Cursor key (the SDK sends it to Cursor itself: it cannot stay in
        // exo) and the binding's model.
        let (module, env): (PathBuf, Vec<(OsString, OsString)>) = match setup.harness {
            Harness::Typescript => (
                setup
                    .module
                    .clone()
                    .ok_or("the agent has the typescript harness but no module")?,
                Vec::new(),
            ),
            Harness::Cursor => {
                let key = setup.model.endpoint.api_key.as_ref().ok_or(
                    "the cursor harness needs the Cursor API key: bind the agent's model to a secret holding it",
                )?;
                let mut env: Vec<(OsString, OsString)> = vec![
                    ("CURSOR_API_KEY".into(), key.expose().into()),
                    (
                        "EXO_CURSOR_MODEL".into(),
                        setup.model.upstream.clone().into(),
                    ),
                ];
                // Another copy of the SDK (or a stand-in), when named.
                if let Some(sdk) = exo_secrets::environment::var_os("EXO_CURSOR_SDK") {
                    env.push(("EXO_CURSOR_SDK".into(), sdk));
                }
                (Runtime::builtin(CURSOR_MODULE)?, env)
            }
            other => {
                return Err(format!("the agent's harness is {other}, not typescript").into());
            }
        };
        let (client, workspace) = prepare(&setup, &self.client_options).await?;
        let (mcp, mcp_failures) = exo_executor::host::open_mcp(&setup).await;
        let agent_id: exo_core::AgentId = setup
            .agent
            .parse()
            .map_err(|_| format!("internal error: agent id {:?}", setup.agent))?;
        let (slugs_agent, slugs_conversation) =
            (request.agent.clone(), request.conversation.clone());
        let identity = Identity {
            agent: agent_id,
            agent_slug: slugs_agent,
            agent_name: request.agent.clone(),
            instructions: setup.instructions.clone(),
            conversation: setup.conversation,
            conversation_slug: slugs_conversation,
            workspace: setup.workspace.clone(),
            env: runner::RunnerEnv(env),
        };
        let runner = self
            .runner(&module, identity)
            .await
            .map_err(SubstrateError::from)?;
        let _busy = runner.busy.lock().await;
        runner.touch();

        let input = EventData::Message {
            role: exo_core::Role::User,
            content: request.input.clone(),
            usage: None,
            model: None,
        };
        let (agent, conversation) = (request.agent.clone(), request.conversation.clone());
        let conversation_id = setup.conversation;
        // The history the runner is sent is read in the same trip to the
        // blocking pool as the turn begins.
        let (begun, history) = blocking(&substrate, move |s| {
            let begun = s.begin_turn(&agent, &conversation, input)?;
            Ok((begun, runner::history_of(s, conversation_id)))
        })
        .await?;
        observer.recorded(begun.turn, &begun.events);
        let host = Arc::new(TurnHost::new(HostParts {
            substrate: Arc::clone(&substrate),
            observer: Arc::clone(&observer),
            turn: begun.turn,
            conversation: setup.conversation,
            agent: setup.agent.clone(),
            approval: setup.approval,
            allow: setup.allow.clone(),
            client,
            upstream: setup.model.upstream.clone(),
            workspace,
            limits: self.limits.clone(),
            recorded: begun.events.clone(),
            mcp,
        }));
        host.record_mcp_failures(mcp_failures).await?;
        let max_rounds = request.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS).max(1);
        let scope = Arc::new(Scope {
            host: Arc::clone(&host),
            substrate: Arc::clone(&substrate),
            cancel: cancel.child_token(),
            max_rounds,
            calls: Default::default(),
        });
        runner.served.enter(Arc::clone(&scope));
        let (status, error) = match history {
            Ok(history) => {
                let params = runner::turn_params(
                    &host,
                    begun.session,
                    agent_id,
                    request.input.clone(),
                    exo_executor::instructions(
                        setup.instructions.as_deref(),
                        setup.workspace.as_deref(),
                    ),
                    max_rounds,
                    history,
                );
                self.drive(&runner, &host, &params, &cancel)
                    .await
                    .unwrap_or_else(|err| (TurnStatus::Failed, Some(err.to_string())))
            }
            Err(err) => (TurnStatus::Failed, Some(err.to_string())),
        };
        runner.served.leave();
        runner.touch();
        if status == TurnStatus::Interrupted {
            self.discard(&runner);
        }
        finish(&host, begun.session, status, error).await
    }

    /// Sends the turn to the runner and waits for its answer, a cancel, or
    /// the runner's end. Returns how the turn ended.
    async fn drive(
        &self,
        runner: &Arc<Runner>,
        host: &TurnHost,
        params: &exo_protocol::harness::HarnessTurnParams,
        cancel: &CancellationToken,
    ) -> Result<(TurnStatus, Option<String>), SubstrateError> {
        let max_rounds = params.max_rounds;
        let params = Json::to(params).map_err(|err| err.to_string())?;
        let mut outgoing = match runner.handle.start(HarnessTurn::NAME, params).await {
            Ok(outgoing) => outgoing,
            Err(_) => return Ok(gone()),
        };
        let answer = tokio::select! {
            answer = &mut outgoing => answer,
            () = cancel.cancelled() => {
                outgoing.cancel().await;
                match tokio::time::timeout(CANCEL_GRACE, &mut outgoing).await {
                    Ok(Ok(_)) => return Ok((TurnStatus::Cancelled, None)),
                    Ok(answer) => answer,
                    Err(_) => {
                        tracing::warn!(conversation = %host.conversation(), "the runner did not answer a cancel; killing it");
                        self.discard(runner);
                        return Ok((TurnStatus::Cancelled, None));
                    }
                }
            }
        };
        match answer {
            Ok(result) => {
                let result: HarnessTurnResult = result
                    .parse()
                    .map_err(|err| format!("the runner answered the turn unexpectedly: {err}"))?;
                if result.status != HarnessTurnStatus::Cancelled {
                    last_word(host, result.text.as_deref()).await?;
                }
                Ok(match result.status {
                    HarnessTurnStatus::Completed => (TurnStatus::Completed, None),
                    HarnessTurnStatus::Cancelled => (TurnStatus::Cancelled, None),
                    HarnessTurnStatus::MaxRounds => {
                        let message = format!(
                            "stopped after {max_rounds} model call{}: the turn's round limit",
                            if max_rounds == 1 { "" } else { "s" }
                        );
                        host.record(vec![EventData::Error {
                            message: message.clone(),
                            code: Some("max_rounds".to_owned()),
                        }])
                        .await?;
                        (TurnStatus::MaxRounds, Some(message))
                    }
                })
            }
            Err(RequestError::Rpc(error)) => {
                let message = error.message.clone();
                host.record(vec![EventData::Error {
                    message: message.clone(),
                    code: Some("harness".to_owned()),
                }])
                .await?;
                Ok((TurnStatus::Failed, Some(message)))
            }
            Err(RequestError::Closed) => {
                if cancel.is_cancelled() {
                    Ok((TurnStatus::Cancelled, None))
                } else {
                    Ok(gone())
                }
            }
            Err(RequestError::Unexpected(why)) => Err(why.into()),
        }
    }
}

/// The text a harness returned is its turn's answer: unless the turn's
/// last assistant message already says it (a harness that returns its
/// model's answer), it is streamed to the turn's followers and recorded as
/// an assistant message, so a harness that answers without a model call is
/// seen and remembered like any other.
async fn last_word(host: &TurnHost, text: Option<&str>) -> Result<(), SubstrateError> {
    let Some(text) = text.filter(|text| !text.trim().is_empty()) else {
        return Ok(());
    };
    let said = host
        .recorded()
        .into_iter()
        .rev()
        .find_map(|event| match event.data {
            EventData::Message {
                role: exo_core::Role::Assistant,
                content,
                ..
            } => Some(
                content
                    .iter()
                    .filter_map(|part| match part {
                        exo_core::ContentPart::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<String>(),
            ),
            _ => None,
        });
    if said.as_deref().map(str::trim) == Some(text.trim()) {
        return Ok(());
    }
    host.observer()
        .delta(host.turn(), &exo_model::Delta::Text(text.to_owned()));
    host.record(vec![EventData::Message {
        role: exo_core::Role::Assistant,
        content: vec![exo_core::ContentPart::Text {
            text: text.to_owned(),
        }],
        usage: None,
        model: None,
    }])
    .await?;
    Ok(())
}

/// How a turn ends when its runner is gone.
fn gone() -> (TurnStatus, Option<String>) {
    (
        TurnStatus::Interrupted,
        Some("the harness's runner exited during the turn".to_string()),
    )
}
