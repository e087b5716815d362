//! Executors: the policy layer that decides what a turn does.
//!
//! The substrate (store, snapshots, secrets) records; an executor decides:
//! how the prompt is assembled, which model is called, which tools run and
//! whether to ask first. An executor may be killed at any moment without
//! losing anything, because everything it knows it reads from the
//! [`Substrate`] and everything it does it records there.
//!
//! - [`Substrate`] is what an executor may ask of exo: the in-process form
//!   of the JSON-RPC methods `turn/begin`, `turn/append`, `turn/finish` and
//!   `events/list` that out-of-process executors (a TypeScript harness, the
//!   Codex / Claude Code shims) use, plus the one thing only a trusted
//!   process may do, resolving a model binding with its key.
//! - [`Executor`] runs one turn against a substrate, telling an
//!   [`Observer`] what happens as it happens (streamed text, recorded
//!   events, approval questions).
//! - [`Builtin`] is exo's own executor: a coding-agent loop over
//!   `exo-model` and `exo-tools` (spec/executor.md).
//!
//! **Architecture Invariant:** this crate knows neither the store nor the
//! protocol; the service implements [`Substrate`] and [`Observer`].

mod builtin;
pub mod history;
pub mod host;
pub mod mcp;
mod prompt;

use std::path::PathBuf;
use std::sync::Arc;

use exo_core::{ApprovalPolicy, ContentPart, ConversationId, Event, EventData, SessionId, TurnId};
use exo_core::{EventId, TurnStatus};
use futures_util::future::BoxFuture;
use serde_json::Value;

pub use builtin::{Builtin, DEFAULT_MAX_ROUNDS};
pub use exo_core::COMPACTION_TYPE;
pub use exo_model::{CancellationToken, Delta};
pub use host::{Approval, Completion, HostParts, ToolCall, ToolRun, TurnHost};
pub use prompt::{instructions, output_text, APPROVAL_TYPE, INTERRUPTED_OUTPUT};

/// A substrate failure, as the substrate reported it (the service keeps
/// its JSON-RPC error inside, so codes survive the trip).
pub type SubstrateError = Box<dyn std::error::Error + Send + Sync>;

/// What a turn needs to know before it begins. Resolving it records
/// nothing, so a misconfigured agent fails cleanly.
#[derive(Debug)]
pub struct Setup {
    /// The agent's id.
    pub agent: String,
    /// The executor the agent's turns run on.
    pub harness: exo_core::Harness,
    /// The module of a `typescript` harness.
    pub module: Option<PathBuf>,
    /// Tools the agent was allowed for good (`allow_always`).
    pub allow: Vec<String>,
    /// The conversation.
    pub conversation: ConversationId,
    /// The agent's system instructions.
    pub instructions: Option<String>,
    /// What to do before shell commands and file writes.
    pub approval: ApprovalPolicy,
    /// The conversation's workspace; without one the model gets no tools.
    pub workspace: Option<PathBuf>,
    /// Directories inside the workspace no tool may touch (exo's own state).
    pub protected: Vec<PathBuf>,
    /// The model to call.
    pub model: ModelAccess,
    /// A directory inside exo's root for this conversation's executor
    /// state (an agent CLI's home, say), created on first use. Exo's
    /// tools never touch it.
    pub state_dir: PathBuf,
    /// The MCP servers bound for the conversation (`binding mcp`), their
    /// secrets resolved.
    pub mcp_servers: Vec<mcp::McpServer>,
    /// Where its commands run.
    pub sandbox: exo_core::SandboxMode,
    /// Whether sandboxed commands may reach the network.
    pub network: bool,
    /// Whether commands run on the host where the sandbox cannot run.
    pub sandbox_fallback: bool,
    /// The image of a `docker` sandbox, when the agent names one.
    pub image: Option<String>,
    /// The newest sandbox snapshot on the conversation's history
    /// (`exo-snapshot:TAG`), which its container's state must be: a
    /// container made from anything else is made again from it.
    pub sandbox_snapshot: Option<String>,
    /// exo's root (canonical), which labels the conversation's container
    /// and its snapshots.
    pub root: PathBuf,
    /// The credentials the egress proxy adds for the conversation's
    /// commands (`binding http`), their secrets opened; none, no proxy.
    pub http_credentials: Vec<exo_sandbox::egress::Credential>,
}

/// A token for the model gateway (spec/gateway.md): what an agent process
/// is given instead of the model's key.
#[derive(Clone, Debug)]
pub struct GatewayAccess {
    /// The token, sent as the API key.
    pub token: String,
    /// The API the conversation's model speaks (`responses`,
    /// `chat_completions`, `messages`).
    pub api: String,
    /// The base URL for OpenAI clients (ends in `/v1`).
    pub openai_base_url: String,
    /// The base URL for Anthropic clients.
    pub anthropic_base_url: String,
}

/// A resolved model binding.
#[derive(Debug)]
pub struct ModelAccess {
    /// The model's name at the provider.
    pub upstream: String,
    /// Where and how to call it, key included.
    pub endpoint: exo_model::Endpoint,
    /// How many tokens it takes in one request: the binding's, else its
    /// provider's default. `None` (a scripted model without one) never
    /// compacts.
    pub context_window: Option<u64>,
}

/// A turn begun: what `begin_turn` recorded.
#[derive(Debug)]
pub struct Begun {
    /// The turn.
    pub turn: TurnId,
    /// Its session.
    pub session: SessionId,
    /// `session_started` (when it opened one), `turn_started`, the
    /// turn-start snapshot and the input message.
    pub events: Vec<Event>,
}

/// What an executor may ask of exo. Every method is blocking (a store
/// transaction, a workspace snapshot); executors call them off the async
/// threads.
pub trait Substrate: Send + Sync {
    /// Resolves the agent, the conversation and the agent's model binding
    /// (revealing its key). Records nothing.
    fn setup(&self, agent: &str, conversation: &str) -> Result<Setup, SubstrateError>;
    /// The conversation's history (its current branch), after `after` or
    /// from the start.
    fn events(
        &self,
        conversation: ConversationId,
        after: Option<EventId>,
    ) -> Result<Vec<Event>, SubstrateError>;
    /// The newest compaction (`custom` of type [`COMPACTION_TYPE`]) on the
    /// conversation's current history before `before` (exclusive), or up
    /// to the head. A store answers from an index, without reading the
    /// history; this default reads the history, so it is right for any
    /// substrate but slow on a long one.
    fn latest_compaction(
        &self,
        conversation: ConversationId,
        before: Option<EventId>,
    ) -> Result<Option<Event>, SubstrateError> {
        let history = self.events(conversation, None)?;
        let end = match before {
            Some(before) => history
                .iter()
                .position(|event| event.id == before)
                .ok_or_else(|| format!("event {before} is not on the conversation's history"))?,
            None => history.len(),
        };
        Ok(history[..end]
            .iter()
            .rev()
            .find(|event| event.data.is_compaction())
            .cloned())
    }
    /// Begins a turn: session, turn-start snapshot, input message, in one
    /// transaction (as `turn/begin`).
    fn begin_turn(
        &self,
        agent: &str,
        conversation: &str,
        input: EventData,
    ) -> Result<Begun, SubstrateError>;
    /// An artifact's bytes as of the conversation's head (its latest
    /// version, or `version`).
    fn artifact(
        &self,
        conversation: ConversationId,
        path: &str,
        version: Option<u64>,
    ) -> Result<Vec<u8>, SubstrateError>;
    /// Appends events to the open turn, as one atomic batch.
    fn append(&self, turn: TurnId, events: Vec<EventData>) -> Result<Vec<Event>, SubstrateError>;
    /// Ends the turn with a turn-end snapshot (as `turn/finish`); returns
    /// the status recorded (an earlier one if it had already ended).
    fn finish_turn(&self, turn: TurnId, status: TurnStatus) -> Result<TurnStatus, SubstrateError>;
    /// Allows `tool` for every later turn of the agent without asking (an
    /// `allow_always` decision), in its configuration.
    fn allow_always(&self, agent: &str, tool: &str) -> Result<(), SubstrateError>;

    /// Mints a model-gateway token for the conversation's model, for an
    /// agent process to call it with; revoke it when the process ends.
    fn gateway_token(
        &self,
        agent: &str,
        conversation: ConversationId,
    ) -> Result<GatewayAccess, SubstrateError> {
        let _ = (agent, conversation);
        Err("this exo serves no model gateway".into())
    }

    /// Sets (or, with `None`, clears) what every model request of the
    /// conversation's agent process must begin with, after the CLI's own
    /// context: the conversation's history and the turn's input. The
    /// gateway records a request that does not as an `error` event.
    fn gateway_expect(&self, conversation: ConversationId, history: Option<Vec<exo_model::Item>>) {
        let _ = (conversation, history);
    }

    /// Revokes a gateway token, then waits (a few seconds at most) until
    /// the exchanges made with it are recorded, so they are in the turn;
    /// whether it was live. Blocking.
    fn gateway_revoke(&self, token: &str) -> bool {
        let _ = token;
        false
    }

    /// Runs one of the service's reading or artifact methods
    /// (`events/list`, `events/get`, `artifact/put`, `artifact/get`,
    /// `artifact/list`) for `conversation`, params and result as JSON: what
    /// an out-of-process executor's runner may ask beyond its turn. The
    /// agent and conversation of the params are this conversation's,
    /// whatever they said. A refusal comes back as a [`Refusal`].
    fn scoped_call(
        &self,
        conversation: ConversationId,
        method: &str,
        params: Value,
    ) -> Result<Value, SubstrateError> {
        let _ = (conversation, params);
        Err(Box::new(Refusal {
            code: -32601,
            name: "method_not_found".into(),
            message: format!("{method} is not served here"),
        }))
    }
}

/// A substrate refusal that says what kind it is (a JSON-RPC code and its
/// `data.code` name), for faces that must tell: an out-of-process
/// executor's runner gets it as a JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The JSON-RPC code.
    pub code: i64,
    /// The machine-readable name (`not_found`, `invalid_params`, ...).
    pub name: String,
    /// One line.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// The conversation as the built-in executor's model sees it now: the
/// summary of the compaction in effect, then what followed it
/// (spec/executor.md, "Prompt"). What a turn's prompt starts from; read
/// from that compaction on, never the whole of a long history.
pub fn prompt_items(
    substrate: &dyn Substrate,
    conversation: ConversationId,
) -> Result<Vec<exo_model::Item>, SubstrateError> {
    Ok(prompt::load(substrate, conversation, None)?.items)
}

/// A tool call waiting for a client's approval.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalAsk {
    /// The turn.
    pub turn: TurnId,
    /// The call.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// Its arguments.
    pub arguments: Value,
}

/// Who follows a running turn. Calls come from the turn's task and must
/// not block.
pub trait Observer: Send + Sync {
    /// A piece of the model's answer, as it streams.
    fn delta(&self, turn: TurnId, delta: &Delta);
    /// Events the turn recorded, as each batch commits.
    fn recorded(&self, turn: TurnId, events: &[Event]);
    /// Asks whether a tool call may run. Resolves to `Some(decision)`, or
    /// `None` when there is no one to ask.
    fn approve(&self, ask: ApprovalAsk) -> BoxFuture<'static, Option<exo_core::ApprovalDecision>>;
}

/// One turn to run.
#[derive(Clone, Debug)]
pub struct TurnRequest {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The user's input.
    pub input: Vec<ContentPart>,
    /// The most model calls the turn may make.
    pub max_rounds: Option<u32>,
}

/// How a turn ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The turn.
    pub turn: TurnId,
    /// Its session.
    pub session: SessionId,
    /// The status recorded.
    pub status: TurnStatus,
    /// The text of the model's last message.
    pub text: String,
    /// Why it failed or stopped early.
    pub error: Option<String>,
    /// Every event the turn recorded.
    pub events: Vec<Event>,
}

/// Runs turns. The built-in executor is one; others (a harness module, a
/// shim around another agent) plug in here.
pub trait Executor: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Runs one turn to its end. Fails only when the substrate does (before
    /// the turn begins: nothing was recorded); model and tool failures end
    /// the turn `failed` and are in its events. Cancelling `cancel` ends
    /// the turn `cancelled`, keeping what streamed.
    fn run_turn(
        &self,
        substrate: Arc<dyn Substrate>,
        request: TurnRequest,
        observer: Arc<dyn Observer>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Outcome, SubstrateError>>;

    /// Checks an agent's configuration for this executor before it is
    /// stored (a module that loads, say); the error is one line. Blocking.
    fn check(&self, _config: &exo_core::AgentConfig) -> Result<(), String> {
        Ok(())
    }

    /// Drops what the executor keeps warm for an agent (its configuration
    /// changed, or it was deleted): the next turn starts afresh, from the
    /// log.
    fn forget_agent(&self, _agent: &str) {}

    /// Drops what the executor keeps warm for a conversation (it was
    /// rewound, so nothing learnt on the abandoned branch may carry over;
    /// or it was deleted).
    fn forget_conversation(&self, _conversation: exo_core::ConversationId) {}
}
