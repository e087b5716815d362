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

/// How long a runner stays warm without a turn.
pub const IDLE: Duration = Duration::from_secs(10 * 60);

/// How long a runner has to answer a cancelled turn before it is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The TypeScript harness: an agent's module run by `@exo/harness`.
#[derive(Clone, Default)]
pub struct TypeScript {
    /// Warm runners, by conversation.
    runners: Arc<Mutex<HashMap<ConversationId, Arc<Runner>>>>,
    /// Bounds on each tool call.
    pub limits: Limits,
    /// Retries and timeouts of model calls.
    pub client_options: ClientOptions,
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
                        || runner.idle_for(IDLE)
                        || (**key == identity.conversation && runner.module != module)
                })
                .map(|(key, _)| *key)
                .collect();
            keys.iter().filter_map(|key| runners.remove(key)).collect()
        };
        for runner in stale {
            runner.stop().await;
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
        self.runners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conversation, Arc::clone(&runner));
        Ok(runner)
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
        if setup.harness != Harness::Typescript {
            return Err(format!("the agent's harness is {}, not typescript", setup.harness).into());
        }
        let module: PathBuf = setup
            .module
            .clone()
            .ok_or("the agent has the typescript harness but no module")?;
        let (client, workspace) = prepare(&setup, &self.client_options).await?;
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
        let begun = blocking(&substrate, move |s| {
            s.begin_turn(&agent, &conversation, input)
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
        }));
        let scope = Arc::new(Scope {
            host: Arc::clone(&host),
            substrate: Arc::clone(&substrate),
            cancel: cancel.child_token(),
        });
        runner.served.enter(Arc::clone(&scope));
        let max_rounds = request.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS).max(1);
        let params = runner::turn_params(
            &host,
            begun.session,
            agent_id,
            request.input.clone(),
            exo_executor::instructions(setup.instructions.as_deref(), setup.workspace.as_deref()),
            max_rounds,
        );
        let (status, error) = self
            .drive(&runner, &host, &params, &cancel)
            .await
            .unwrap_or_else(|err| (TurnStatus::Failed, Some(err.to_string())));
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
                Ok(match result.status {
                    HarnessTurnStatus::Completed => (TurnStatus::Completed, None),
                    HarnessTurnStatus::Cancelled => (TurnStatus::Cancelled, None),
                    HarnessTurnStatus::MaxRounds => {
                        let message = format!(
                            "the harness stopped at the turn's round limit ({} model calls)",
                            params_rounds(runner, host)
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

/// How a turn ends when its runner is gone.
fn gone() -> (TurnStatus, Option<String>) {
    (
        TurnStatus::Interrupted,
        Some("the harness's runner exited during the turn".to_string()),
    )
}

/// The round limit, for the message (the runner enforces it).
fn params_rounds(_runner: &Runner, host: &TurnHost) -> usize {
    host.recorded()
        .iter()
        .filter(|event| {
            matches!(
                &event.data,
                EventData::Message {
                    role: exo_core::Role::Assistant,
                    ..
                }
            )
        })
        .count()
}
