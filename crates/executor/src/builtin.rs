//! The built-in executor: a coding-agent loop. See spec/executor.md.

mod compaction;

use std::sync::Arc;

use exo_core::{ApprovalPolicy, ContentPart, Event, EventData, Role, TurnId, TurnStatus};
use exo_model::{Client, ClientOptions, Delta, Item, Request, Response, Stop, ToolSpec};
use exo_tools::{Access, Limits, ToolOutput, Workspace};
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::prompt::{self, APPROVAL_TYPE};
use crate::{
    ApprovalAsk, Executor, Observer, Outcome, Setup, Substrate, SubstrateError, TurnRequest,
};

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

/// Runs a substrate call on the blocking pool.
async fn blocking<T, F>(substrate: &Arc<dyn Substrate>, call: F) -> Result<T, SubstrateError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Substrate) -> Result<T, SubstrateError> + Send + 'static,
{
    let substrate = Arc::clone(substrate);
    tokio::task::spawn_blocking(move || call(substrate.as_ref()))
        .await
        .map_err(|err| -> SubstrateError { format!("internal error: {err}").into() })?
}

/// A running turn: what it has recorded so far.
struct Turn {
    substrate: Arc<dyn Substrate>,
    observer: Arc<dyn Observer>,
    turn: TurnId,
    events: Vec<Event>,
}

impl Turn {
    async fn record(&mut self, data: Vec<EventData>) -> Result<(), SubstrateError> {
        let turn = self.turn;
        let appended = blocking(&self.substrate, move |s| s.append(turn, data)).await?;
        self.observer.recorded(turn, &appended);
        self.events.extend(appended);
        Ok(())
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
        // Building the client may read a script file, and the workspace is
        // resolved on disk: no file I/O on the async loop, which in a daemon
        // serves every connection.
        let client_options = self.client_options.clone();
        let endpoint = setup.model.endpoint.clone();
        let root = setup.workspace.clone();
        let protected = setup.protected.clone();
        let (client, workspace) = tokio::task::spawn_blocking(
            move || -> Result<(Client, Option<Workspace>), SubstrateError> {
                let client = Client::new(endpoint.with_options(client_options))?;
                let workspace = match &root {
                    Some(root) => {
                        let mut workspace = Workspace::new(root)?;
                        for path in &protected {
                            workspace = workspace.protect(path);
                        }
                        Some(workspace)
                    }
                    None => None,
                };
                Ok((client, workspace))
            },
        )
        .await
        .map_err(|err| -> SubstrateError { format!("internal error: {err}").into() })??;
        let conversation_id = setup.conversation;

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
        let mut turn = Turn {
            substrate: Arc::clone(&substrate),
            observer: Arc::clone(&observer),
            turn: begun.turn,
            events: begun.events,
        };

        let max_rounds = request.max_rounds.unwrap_or(DEFAULT_MAX_ROUNDS).max(1);
        let looped = async {
            // Read after the turn began, so the history ends with this
            // turn's input and nothing another writer added just before is
            // missed; read from the compaction in effect on, never the
            // whole of a long history.
            let input = turn
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
            self.rounds(
                &setup,
                &client,
                workspace.as_ref(),
                &mut turn,
                loaded.items,
                compactor,
                max_rounds,
                &cancel,
            )
            .await
        }
        .await;
        let ending = match looped {
            Ok(ending) => ending,
            Err(err) => {
                // The substrate failed mid-turn: close the turn if it still
                // can, and report the failure.
                let turn_id = turn.turn;
                let _ = blocking(&substrate, move |s| {
                    s.finish_turn(turn_id, TurnStatus::Failed)
                })
                .await;
                return Err(err);
            }
        };

        let turn_id = turn.turn;
        let status = blocking(&substrate, move |s| s.finish_turn(turn_id, ending.status)).await?;
        let last = turn.events.last().map(|event| event.id);
        let finished = blocking(&substrate, move |s| s.events(conversation_id, last)).await?;
        let finished: Vec<Event> = finished
            .into_iter()
            .filter(|event| event.turn == Some(turn_id))
            .collect();
        observer.recorded(turn_id, &finished);
        turn.events.extend(finished);
        let text = last_answer(&turn.events);
        Ok(Outcome {
            turn: turn_id,
            session: begun.session,
            status,
            text,
            error: ending.error,
            events: turn.events,
        })
    }

    /// Calls the model and runs its tool calls until it stops.
    #[allow(clippy::too_many_arguments)]
    async fn rounds(
        &self,
        setup: &Setup,
        client: &Client,
        workspace: Option<&Workspace>,
        turn: &mut Turn,
        mut items: Vec<Item>,
        mut compactor: compaction::Compactor,
        max_rounds: u32,
        cancel: &CancellationToken,
    ) -> Result<Ending, SubstrateError> {
        let tools: Vec<ToolSpec> = match workspace {
            Some(_) => exo_tools::specs_for(&self.limits)
                .into_iter()
                .map(|spec| ToolSpec {
                    name: spec.name.to_owned(),
                    description: spec.description,
                    parameters: spec.parameters,
                })
                .collect(),
            None => Vec::new(),
        };
        let mut request = Request {
            model: setup.model.upstream.clone(),
            instructions: Some(prompt::instructions(
                setup.instructions.as_deref(),
                setup.workspace.as_deref(),
            )),
            items: Vec::new(),
            tools,
            max_output_tokens: None,
        };
        for _ in 0..max_rounds {
            // A history approaching the model's context window is
            // summarised first (spec/executor.md, "Compaction").
            compaction::compact(&mut compactor, client, &request, &mut items, turn, cancel).await?;
            if cancel.is_cancelled() {
                return Ok(Ending::new(TurnStatus::Cancelled));
            }
            request.items = items.clone();
            let observer = Arc::clone(&turn.observer);
            let turn_id = turn.turn;
            let mut on_delta = move |delta: Delta| observer.delta(turn_id, &delta);
            let response = match client.complete(&request, cancel, &mut on_delta).await {
                Ok(response) => response,
                Err(err) => {
                    let message = err.to_string();
                    turn.record(vec![EventData::Error {
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
            let cancelled = response.stop == Stop::Cancelled;
            // A cancelled answer keeps its text; its calls never run, so
            // they are not recorded.
            let calls = if cancelled {
                Vec::new()
            } else {
                response.tool_calls.clone()
            };
            let message = assistant_message(&response, &setup.model.upstream);
            if let EventData::Message { content, .. } = &message {
                items.push(Item::Message {
                    role: Role::Assistant,
                    content: content.clone(),
                });
            }
            let mut batch = vec![message];
            for call in &calls {
                batch.push(EventData::ToolCall {
                    call_id: call.call_id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                });
            }
            turn.record(batch).await?;
            if cancelled {
                return Ok(Ending::new(TurnStatus::Cancelled));
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
                    self.tool(setup, workspace, turn, call, cancel).await?
                };
                turn.record(vec![EventData::ToolResult {
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
                    turn.record(batch).await?;
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
                        turn.record(rest).await?;
                    }
                    return Ok(Ending::new(TurnStatus::Cancelled));
                }
            }
        }
        let message = format!(
            "stopped after {max_rounds} model call{}: the turn's round limit",
            if max_rounds == 1 { "" } else { "s" }
        );
        turn.record(vec![EventData::Error {
            message: message.clone(),
            code: Some("max_rounds".to_owned()),
        }])
        .await?;
        Ok(Ending {
            status: TurnStatus::MaxRounds,
            error: Some(message),
        })
    }

    /// Checks, approves and runs one tool call.
    async fn tool(
        &self,
        setup: &Setup,
        workspace: Option<&Workspace>,
        turn: &mut Turn,
        call: &exo_model::ToolCallOut,
        cancel: &CancellationToken,
    ) -> Result<ToolOutput, SubstrateError> {
        let Some(workspace) = workspace else {
            return Ok(ToolOutput::error(
                "no workspace is bound to this conversation, so no tool can run",
            ));
        };
        if !workspace.root().is_dir() {
            return Ok(ToolOutput::broken(format!(
                "the workspace {} is gone",
                workspace.root().display()
            )));
        }
        let parsed = match exo_tools::parse(&call.name, &call.arguments) {
            Ok(parsed) => parsed,
            Err(err) => return Ok(ToolOutput::error(err.to_string())),
        };
        if parsed.access() != Access::Read {
            let (approved, by) = match setup.approval {
                ApprovalPolicy::Auto => (true, "policy"),
                ApprovalPolicy::Deny => (false, "policy"),
                ApprovalPolicy::Ask => {
                    let ask = ApprovalAsk {
                        turn: turn.turn,
                        call_id: call.call_id.clone(),
                        tool: call.name.clone(),
                        arguments: call.arguments.clone(),
                    };
                    let answer = tokio::select! {
                        answer = turn.observer.approve(ask) => answer,
                        () = cancel.cancelled() => return Ok(ToolOutput::error("cancelled while waiting for approval")),
                    };
                    match answer {
                        Some(approved) => (approved, "user"),
                        None => (false, "no_client"),
                    }
                }
            };
            turn.record(vec![EventData::Custom {
                custom_type: APPROVAL_TYPE.to_owned(),
                payload: json!({
                    "call_id": call.call_id,
                    "tool": call.name,
                    "approved": approved,
                    "by": by,
                }),
            }])
            .await?;
            if !approved {
                return Ok(ToolOutput::error(match by {
                    "policy" => "denied: this agent's approval policy refuses shell commands and file writes",
                    "no_client" => "denied: approval was needed and no one was there to give it",
                    _ => "denied: the user declined this call",
                }));
            }
        }
        Ok(exo_tools::run(workspace, &parsed, &self.limits, &[], cancel).await)
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

/// The assistant's message for a response: reasoning and text, with usage
/// and the model's name. Recorded even when empty, for its usage.
fn assistant_message(response: &Response, model: &str) -> EventData {
    let mut content = Vec::new();
    if let Some(reasoning) = &response.reasoning {
        content.push(ContentPart::Reasoning {
            text: reasoning.clone(),
        });
    }
    if !response.text.is_empty() {
        content.push(ContentPart::Text {
            text: response.text.clone(),
        });
    }
    EventData::Message {
        role: Role::Assistant,
        content,
        usage: response.usage.clone(),
        model: Some(model.to_owned()),
    }
}

/// The text of the last assistant message that has any.
fn last_answer(events: &[Event]) -> String {
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
