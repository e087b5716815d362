//! The built-in executor: a coding-agent loop. See spec/executor.md.

mod compaction;

use std::sync::Arc;

use exo_core::{ContentPart, Event, EventData, Role, TurnStatus};
use exo_model::{ClientOptions, Item, Request, Stop};
use exo_tools::{Limits, ToolOutput};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::host::{blocking, finish, prepare, HostParts, ToolCall, TurnHost};
use crate::prompt;
use crate::{Executor, Observer, Outcome, Setup, Substrate, SubstrateError, TurnRequest};

/// The round limit when the request sets none: model calls per turn.
pub const DEFAULT_MAX_ROUNDS: u32 = 32;

/// exo's own executor.
#[derive(Clone, Debug, Default)]
pub struct Builtin {
    /// Bounds on each tool call.
    pub limits: Limits,
    /// Retries and timeouts of model calls.
    pub client_options: ClientOptions,
}

impl Executor for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
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
}

/// How the loop ended, before the turn is finished.
struct Ending {
    status: TurnStatus,
    error: Option<String>,
}

impl Ending {
    fn new(status: TurnStatus) -> Ending {
        Ending {
            status,
            error: None,
        }
    }
}

impl Builtin {
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
        let (client, workspace) = prepare(&setup, &self.client_options).await?;
        let conversation_id = setup.conversation;
        let (mcp, mcp_failures) = crate::host::open_mcp(&setup).await;

        let input = EventData::Message {
            role: Role::User,
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
        let host = TurnHost::new(HostParts {
            substrate: Arc::clone(&substrate),
            observer: Arc::clone(&observer),
            turn: begun.turn,
            conversation: conversation_id,
            agent: setup.agent.clone(),
            approval: setup.approval,
            allow: setup.allow.clone(),
            client,
            upstream: setup.model.upstream.clone(),
            workspace,
            limits: self.limits.clone(),
            recorded: begun.events.clone(),
            mcp,
        });
        host.record_mcp_failures(mcp_failures).await?;

        let max_rounds = request.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS).max(1);
        let looped = async {
            // Read after the turn began, so the history ends with this
            // turn's input and nothing another writer added just before is
            // missed; read from the compaction in effect on, never the
            // whole of a long history.
            let input = begun
                .events
                .iter()
                .rev()
                .find(|event| {
                    matches!(
                        event.data,
                        EventData::Message {
                            role: Role::User,
                            ..
                        }
                    )
                })
                .map(|event| event.id);
            let loaded =
                blocking(&substrate, move |s| prompt::load(s, conversation_id, input)).await?;
            let compactor = compaction::Compactor::new(setup.model.context_window, &loaded);
            self.rounds(&setup, &host, loaded.items, compactor, max_rounds, &cancel)
                .await
        }
        .await;
        let ending = match looped {
            Ok(ending) => ending,
            Err(err) => {
                // The substrate failed mid-turn: close the turn if it still
                // can, and report the failure.
                let turn_id = host.turn();
                let _ = blocking(&substrate, move |s| {
                    s.finish_turn(turn_id, TurnStatus::Failed)
                })
                .await;
                return Err(err);
            }
        };
        finish(&host, begun.session, ending.status, ending.error).await
    }

    /// Calls the model and runs its tool calls until it stops.
    async fn rounds(
        &self,
        setup: &Setup,
        host: &TurnHost,
        mut items: Vec<Item>,
        mut compactor: compaction::Compactor,
        max_rounds: u32,
        cancel: &CancellationToken,
    ) -> Result<Ending, SubstrateError> {
        let mut request = Request {
            model: setup.model.upstream.clone(),
            instructions: Some(prompt::instructions(
                setup.instructions.as_deref(),
                setup.workspace.as_deref(),
            )),
            items: Vec::new(),
            tools: host.tool_specs(),
            max_output_tokens: None,
        };
        for _ in 0..max_rounds {
            // A history approaching the model's context window is
            // summarised first (spec/executor.md, "Compaction").
            compaction::compact(&mut compactor, &request, &mut items, host, cancel).await?;
            if cancel.is_cancelled() {
                return Ok(Ending::new(TurnStatus::Cancelled));
            }
            request.items = items.clone();
            let completion = match host.complete(&request, true, cancel, &mut |_| {}).await? {
                Ok(completion) => completion,
                Err(err) => {
                    let message = err.to_string();
                    host.record(vec![EventData::Error {
                        message: message.clone(),
                        code: Some(err.code().to_owned()),
                    }])
                    .await?;
                    return Ok(Ending {
                        status: TurnStatus::Failed,
                        error: Some(message),
                    });
                }
            };
            let response = completion.response;
            // A cancelled answer keeps its text; its calls never run, so
            // they were not recorded.
            if response.stop == Stop::Cancelled {
                return Ok(Ending::new(TurnStatus::Cancelled));
            }
            let calls = response.tool_calls.clone();
            if let Some(EventData::Message { content, .. }) =
                completion.events.first().map(|event| &event.data)
            {
                items.push(Item::Message {
                    role: Role::Assistant,
                    content: content.clone(),
                });
            }
            if calls.is_empty() {
                // Also when the answer was cut short (`max_tokens`) or
                // refused: the model stopped, and its last message says how.
                return Ok(Ending::new(TurnStatus::Completed));
            }
            for call in &calls {
                items.push(Item::ToolCall {
                    call_id: call.call_id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                });
            }
            for (index, call) in calls.iter().enumerate() {
                let output = if cancel.is_cancelled() {
                    ToolOutput::error("cancelled before it ran")
                } else {
                    let call = ToolCall {
                        call_id: call.call_id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    };
                    host.run_tool(&call, cancel).await?
                };
                host.record(vec![EventData::ToolResult {
                    call_id: call.call_id.clone(),
                    output: output.output.clone(),
                    is_error: output.is_error,
                }])
                .await?;
                if output.broken {
                    // The tool could not run at all: not the model's doing,
                    // so the turn fails rather than going on.
                    let message = format!(
                        "the {} tool could not run: {}",
                        call.name,
                        output.output["error"].as_str().unwrap_or("unknown error")
                    );
                    let mut batch = not_run(&calls[index + 1..], "not run: an earlier tool failed");
                    batch.push(EventData::Error {
                        message: message.clone(),
                        code: Some("tool".to_owned()),
                    });
                    host.record(batch).await?;
                    return Ok(Ending {
                        status: TurnStatus::Failed,
                        error: Some(message),
                    });
                }
                items.push(Item::ToolResult {
                    call_id: call.call_id.clone(),
                    output: prompt::output_text(&output.output),
                    is_error: output.is_error,
                });
                if cancel.is_cancelled() {
                    // The rest of the calls answered as cancelled, so the
                    // history stays paired.
                    let rest = not_run(&calls[index + 1..], "cancelled before it ran");
                    if !rest.is_empty() {
                        host.record(rest).await?;
                    }
                    return Ok(Ending::new(TurnStatus::Cancelled));
                }
            }
        }
        let message = format!(
            "stopped after {max_rounds} model call{}: the turn's round limit",
            if max_rounds == 1 { "" } else { "s" }
        );
        host.record(vec![EventData::Error {
            message: message.clone(),
            code: Some("max_rounds".to_owned()),
        }])
        .await?;
        Ok(Ending {
            status: TurnStatus::MaxRounds,
            error: Some(message),
        })
    }
}

/// Results for calls that will not run, so the history stays paired.
fn not_run(calls: &[exo_model::ToolCallOut], why: &str) -> Vec<EventData> {
    calls
        .iter()
        .map(|call| EventData::ToolResult {
            call_id: call.call_id.clone(),
            output: ToolOutput::error(why).output,
            is_error: true,
        })
        .collect()
}

/// The text of the last assistant message that has any.
pub(crate) fn last_answer(events: &[Event]) -> String {
    events
        .iter()
        .rev()
        .find_map(|event| match &event.data {
            EventData::Message {
                role: Role::Assistant,
                content,
                ..
            } => {
                let text: Vec<&str> = content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                (!text.is_empty()).then(|| text.join("\n\n"))
            }
            _ => None,
        })
        .unwrap_or_default()
}
