//! Every method: its name, params and result. See spec/protocol.md for
//! semantics and examples.

use exo_core::{
    ApprovalPolicy, Binding, BindingKind, ContentPart, ConversationId, EventId, EventKind,
    Provider, SessionId, TurnId, TurnStatus,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::types::{
    Agent, Artifact, BindingEntry, Conversation, ConversationRef, Event, ScopeParams, Secret, Turn,
};

/// A request method.
pub trait Method {
    /// The method's name on the wire.
    const NAME: &'static str;
    /// Its params.
    type Params: Serialize + DeserializeOwned + JsonSchema;
    /// Its result.
    type Result: Serialize + DeserializeOwned + JsonSchema;
    /// How it may be served.
    const INFO: MethodInfo;
}

/// How a method may be served: the one table every face reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodInfo {
    /// The method's name on the wire.
    pub name: &'static str,
    /// It changes nothing: a cancel may abandon it at once, wherever it is.
    /// (A method that writes is cancelled only before it starts, so it is
    /// never half done.)
    pub read_only: bool,
    /// It never touches the store or the disk: it may be answered on the
    /// connection's own task, without a hop to the blocking pool.
    pub inline: bool,
    /// It needs a connection that outlives the request (a stream of
    /// notifications, a watch): it is served by a face, not a plain call.
    pub connection: bool,
}

impl MethodInfo {
    /// Reads the flags of the table below.
    pub(crate) const fn new(name: &'static str, flags: &[&str]) -> MethodInfo {
        MethodInfo {
            name,
            read_only: has(flags, "read_only"),
            inline: has(flags, "inline"),
            connection: has(flags, "connection"),
        }
    }
}

const fn has(flags: &[&str], wanted: &str) -> bool {
    let mut i = 0;
    while i < flags.len() {
        if same(flags[i], wanted) {
            return true;
        }
        i += 1;
    }
    false
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// How `name` may be served, if it is a method of this protocol.
pub fn method_info(name: &str) -> Option<&'static MethodInfo> {
    METHODS.iter().find(|info| info.name == name)
}

/// A notification.
pub trait Notification {
    /// The notification's name on the wire.
    const NAME: &'static str;
    /// Its params.
    type Params: Serialize + DeserializeOwned + JsonSchema;
}

/// An empty params or result object, `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Empty {}

// ---------------------------------------------------------------- session

/// `initialize` params.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InitializeParams {
    /// The protocol versions the client speaks, most preferred first.
    /// Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_versions: Option<Vec<String>>,
    /// Who the client is, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientInfo>,
}

/// A client's or server's name and version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientInfo {
    /// The program's name.
    pub name: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `initialize` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InitializeResult {
    /// The version both sides will speak.
    pub protocol_version: String,
    /// The daemon.
    pub server: ClientInfo,
    /// What the daemon offers.
    pub capabilities: Capabilities,
}

/// What the daemon offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Capabilities {
    /// Every method it serves.
    pub methods: Vec<String>,
    /// Every notification it sends.
    pub notifications: Vec<String>,
    /// The framings it understands: `ndjson`, `content-length`.
    pub framings: Vec<String>,
    /// The largest frame it accepts, in bytes.
    pub max_frame_bytes: u64,
}

/// `daemon/status` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DaemonStatus {
    /// The daemon's process id.
    pub pid: u32,
    /// The exo root it serves.
    pub root: String,
    /// Its socket, if it listens on one.
    pub socket: Option<String>,
    /// exo's version.
    pub version: String,
    /// The protocol version.
    pub protocol_version: String,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// Connections open now.
    pub connections: u64,
    /// The model gateway's URL (`http://127.0.0.1:PORT`), once it has
    /// started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

// ---------------------------------------------------------------- gateway

/// `gateway/token` result: a token for one conversation's model, and where
/// to send it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayToken {
    /// The token: a client's API key for the gateway.
    pub token: String,
    /// The API the conversation's model speaks: `responses`,
    /// `chat_completions` or `messages`.
    pub api: String,
    /// The base URL an OpenAI client takes (`http://127.0.0.1:PORT/v1`).
    pub openai_base_url: String,
    /// The base URL an Anthropic client takes (`http://127.0.0.1:PORT`).
    pub anthropic_base_url: String,
}

/// `gateway/revoke` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayRevokeParams {
    /// The token.
    pub token: String,
}

/// `gateway/revoke` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayRevoked {
    /// Whether the token was live.
    pub revoked: bool,
}

// ---------------------------------------------------------------- agents

/// `agent/create` params.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentCreateParams {
    /// Display name; the slug derives from it.
    pub name: String,
    /// The model binding it uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// System instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// What the built-in executor does before a shell command or a file
    /// write (default `ask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    /// A slug instead of the derived one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Which executor runs its turns (default `builtin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<exo_core::Harness>,
    /// For the `typescript` harness: the module, an absolute path (the
    /// daemon's working directory is not the client's). Checked by loading
    /// it before the agent is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Where its commands run (default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<exo_core::SandboxMode>,
    /// The image of a `docker` sandbox (default exo's base image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Whether its sandboxed commands may reach the network (default
    /// false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// Whether, where the sandbox cannot run, commands run on the host
    /// instead (default false: they are refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_fallback: Option<bool>,
}

/// `agent/set` params: what to change; what is absent stays.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentSetParams {
    /// Slug or id.
    pub agent: String,
    /// Another executor for its turns; its conversations go on under it
    /// from their full history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<exo_core::Harness>,
    /// Another module (the `typescript` harness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Another model binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Other instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Another approval policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    /// Another sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<exo_core::SandboxMode>,
    /// Another image for a `docker` sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Whether sandboxed commands may reach the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// Whether commands run on the host where the sandbox cannot run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_fallback: Option<bool>,
    /// Tools whose standing permission (`allow_always`) is withdrawn: they
    /// are asked about again. Each must be one the agent has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoke: Vec<String>,
}

/// Params naming one agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentParams {
    /// Slug or id.
    pub agent: String,
}

/// `agent/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentList {
    /// Live agents, oldest first.
    pub agents: Vec<Agent>,
}

// ---------------------------------------------------------- conversations

/// `conversation/create` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationCreateParams {
    /// The agent (slug or id).
    pub agent: String,
    /// Display name; the slug derives from it.
    pub name: String,
    /// A slug instead of the derived one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// A directory to bind the conversation to (absolute, or relative to
    /// the daemon's working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// `conversation/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationList {
    /// Live conversations, oldest first.
    pub conversations: Vec<Conversation>,
}

/// `conversation/fork` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationForkParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The source conversation (slug or id).
    pub conversation: String,
    /// The event to fork at; the head by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<EventId>,
    /// The fork's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The fork's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Materialise the fork point's workspace snapshot into this new (or
    /// empty) directory and bind the fork to it, so both branches can go on
    /// side by side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// `conversation/rewind` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationRewindParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The event to move the head to.
    pub to: EventId,
    /// Fail with `conflict` unless the head is this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_head: Option<EventId>,
    /// Restore the workspace to the snapshot in effect at `to` (default
    /// true; false rewinds only the conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<bool>,
    /// Overwrite workspace changes made since the latest snapshot (a safety
    /// snapshot keeps them).
    #[serde(default)]
    pub force: bool,
    /// Report what the rewind would do to the files (`files`, with
    /// `written: false`) after the same checks; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `conversation/rewind` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RewindResult {
    /// The conversation after the rewind.
    pub conversation: Conversation,
    /// The `rewound` event, or null when the head already was the target.
    pub event: Option<Event>,
    /// What happened to the workspace's files, when the conversation has a
    /// workspace and `files` was not false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<RestoreResult>,
}

/// `conversation/tree` result: a conversation's history as a tree, summarised
/// so that its size follows the turns, not the events.
///
/// # Format
///
/// `branches[0]` is the current history, from `conversation_created` (the
/// source's, for a fork) to the head. Every other branch is a line of
/// events this conversation rewound away from, which it can still reach:
/// it continues from the event `from` of the branch `parent` (an index into
/// `branches`), and its `head` is the event to rewind to for redo. Branches
/// come in the order they were left behind, so a `parent` always comes
/// before its children. `forks` are the live conversations forked at an
/// event of a branch.
///
/// Each branch's `steps` summarise its events, oldest first: a turn is one
/// step, `conversation_created`, `rewound` and `forked` are steps of their
/// own, and the other events in a row are one step. A step ends at every
/// event a branch or a fork leaves from, so `from` and `at` are always the
/// `last` of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationTree {
    /// The conversation.
    pub conversation: Conversation,
    /// Its agent's slug.
    pub agent: String,
    /// The current history first, then the branches left behind.
    pub branches: Vec<TreeBranch>,
    /// Live conversations forked at an event of one of the branches, oldest
    /// first.
    pub forks: Vec<TreeFork>,
}

/// A line of a conversation's history (see [`ConversationTree`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TreeBranch {
    /// Whether it is the current history.
    pub current: bool,
    /// Its newest event: the conversation's head for the current branch,
    /// else the event rewinding to is redo.
    pub head: EventId,
    /// The event it continues from, on branch `parent`; null for the
    /// current branch.
    pub from: Option<EventId>,
    /// The index of the branch holding `from`; null for the current branch.
    pub parent: Option<u32>,
    /// Its events summarised, oldest first; never empty.
    pub steps: Vec<TreeStep>,
}

/// Consecutive events of a branch, summarised. Every step has `first` and
/// `last` (event ids) and `events` (how many it covers); `kind` says what
/// they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TreeStep {
    /// The conversation's first event.
    ConversationCreated {
        /// Its first event.
        first: EventId,
        /// Its last event.
        last: EventId,
        /// How many events it covers.
        events: u64,
    },
    /// A fork's `forked` event, where its own history starts.
    Forked {
        /// Its first event.
        first: EventId,
        /// Its last event.
        last: EventId,
        /// How many events it covers.
        events: u64,
        /// The conversation it was forked from.
        source: TreeConversation,
        /// The event it was forked at.
        from_event: EventId,
    },
    /// A `rewound` event: the head moved from `from_event` to `to_event`.
    Rewound {
        /// Its first event.
        first: EventId,
        /// Its last event.
        last: EventId,
        /// How many events it covers.
        events: u64,
        /// The head before.
        from_event: EventId,
        /// The event the head moved to.
        to_event: EventId,
    },
    /// A turn (with the `session_started` before it and the
    /// `session_ended` after it, when they belong to its session), or the
    /// part of it on this branch.
    Turn {
        /// Its first event.
        first: EventId,
        /// Its last event.
        last: EventId,
        /// How many events it covers.
        events: u64,
        /// The turn.
        turn: TurnId,
        /// The first line of the user's message, at most 72 characters
        /// (`…` marks a cut); null when the step holds none.
        prompt: Option<String>,
        /// How it ended; null when its `turn_ended` is not in the step (it
        /// is running, or the branch leaves it before its end).
        status: Option<TurnStatus>,
        /// How many tool calls it recorded.
        tool_calls: u64,
    },
    /// Other events in a row.
    Events {
        /// Its first event.
        first: EventId,
        /// Its last event.
        last: EventId,
        /// How many events it covers.
        events: u64,
        /// Their kinds, each once, in the order first seen.
        kinds: Vec<String>,
        /// The first line of the first message (a user's when there is
        /// one), at most 72 characters; null when there is none.
        text: Option<String>,
    },
}

impl TreeStep {
    /// Its first event.
    pub fn first(&self) -> EventId {
        match self {
            TreeStep::ConversationCreated { first, .. }
            | TreeStep::Forked { first, .. }
            | TreeStep::Rewound { first, .. }
            | TreeStep::Turn { first, .. }
            | TreeStep::Events { first, .. } => *first,
        }
    }

    /// Its last event.
    pub fn last(&self) -> EventId {
        match self {
            TreeStep::ConversationCreated { last, .. }
            | TreeStep::Forked { last, .. }
            | TreeStep::Rewound { last, .. }
            | TreeStep::Turn { last, .. }
            | TreeStep::Events { last, .. } => *last,
        }
    }

    /// How many events it covers.
    pub fn events(&self) -> u64 {
        match self {
            TreeStep::ConversationCreated { events, .. }
            | TreeStep::Forked { events, .. }
            | TreeStep::Rewound { events, .. }
            | TreeStep::Turn { events, .. }
            | TreeStep::Events { events, .. } => *events,
        }
    }
}

/// Another conversation a tree names: a fork, or a fork's source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TreeConversation {
    /// Its id.
    pub id: ConversationId,
    /// Its agent's slug.
    pub agent: String,
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Whether it was deleted (its slug may name another conversation
    /// since).
    pub deleted: bool,
}

/// A conversation forked at an event of a tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TreeFork {
    /// The fork.
    pub conversation: TreeConversation,
    /// The event it was forked at.
    pub at: EventId,
    /// The index of the branch holding `at`.
    pub branch: u32,
}

/// `conversation/append` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationAppendParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// Events as `conversation append` lines: `{"kind": "message", ...}`.
    /// One atomic batch.
    pub events: Vec<Value>,
    /// Fail with `conflict` unless the head is this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_head: Option<EventId>,
    /// Whether the result lists the appended events (default true); false
    /// keeps the answer to a large batch small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_events: Option<bool>,
}

/// `conversation/append` and `turn/append` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppendResult {
    /// The appended events; empty when `return_events` was false.
    pub events: Vec<Event>,
    /// The new head.
    pub head: EventId,
    /// The first appended event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<EventId>,
    /// How many events were appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

// ------------------------------------------------------------------ turns

/// A turn's input: text, or content parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TurnInput {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<ContentPart>),
}

/// `turn/begin` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnBeginParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The user's input.
    pub input: TurnInput,
}

/// `turn/begin` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnBeginResult {
    /// The new turn.
    pub turn: TurnId,
    /// Its session.
    pub session: SessionId,
    /// What was recorded: `session_started` (if a session opened),
    /// `turn_started`, the input message.
    pub events: Vec<Event>,
}

/// `turn/append` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnAppendParams {
    /// The turn.
    pub turn: TurnId,
    /// Events as `conversation append` lines. One atomic batch.
    pub events: Vec<Value>,
    /// Fail with `conflict` unless the head is this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_head: Option<EventId>,
    /// Whether the result lists the appended events (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_events: Option<bool>,
}

/// `turn/finish` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnFinishParams {
    /// The turn.
    pub turn: TurnId,
    /// How it ended.
    pub status: TurnStatus,
}

/// `turn/finish` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnFinishResult {
    /// The turn.
    pub turn: TurnId,
    /// The recorded status: the one given, or the earlier one if the turn
    /// had already ended.
    pub status: TurnStatus,
}

/// Params naming one turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnParams {
    /// The turn.
    pub turn: TurnId,
}

/// `turn/run` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnRunParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The user's input.
    pub input: TurnInput,
    /// The most model calls the turn may make (default 32); reaching it
    /// ends the turn `max_rounds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rounds: Option<u32>,
    /// Whether this caller answers `approval/request` notifications
    /// (default true). When false, a call the agent's policy would ask
    /// about is denied, and the model is told no one could approve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<bool>,
}

/// `turn/run` result: how the turn ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnRunResult {
    /// The turn.
    pub turn: TurnId,
    /// Its session.
    pub session: SessionId,
    /// How it ended.
    pub status: TurnStatus,
    /// The text of the model's last message: the answer.
    pub text: String,
    /// Why it failed or stopped, for `failed` and `max_rounds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every event the turn recorded, in order.
    pub events: Vec<Event>,
}

/// `approval/respond` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRespondParams {
    /// The turn that asked.
    pub turn: TurnId,
    /// The tool call asked about.
    pub call_id: String,
    /// Run it (true) or refuse it (false): `allow_once` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<bool>,
    /// The decision, when more than yes or no: `allow_turn` allows the
    /// same tool for the rest of the turn, `allow_always` for every later
    /// turn of the agent. Wins over `approve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<exo_core::ApprovalDecision>,
}

/// `approval/list` params: the questions of one conversation (agent and
/// conversation), or of every conversation (neither).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalListParams {
    /// The conversation's agent (slug or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The conversation (slug or id); needs `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
}

/// `approval/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalList {
    /// The calls waiting for an answer, oldest question first.
    pub approvals: Vec<PendingApproval>,
}

/// A tool call waiting for `approval/respond`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PendingApproval {
    /// The turn that asks.
    pub turn: TurnId,
    /// The turn's conversation.
    pub conversation: ConversationId,
    /// The tool call.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// Its arguments, as the model sent them.
    pub arguments: Value,
}

/// `turn/delta` notification params: a piece of the model's answer as it
/// streams, to the client running the turn and to the conversation's
/// watchers. Exactly one of `text`, `reasoning` and `tool_call` is present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnDelta {
    /// The turn.
    pub turn: TurnId,
    /// For a watcher of the turn's conversation (`events/watch`): the
    /// watch. Absent for the client that runs the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<u64>,
    /// More answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// More reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The model started a tool call (its arguments come with the
    /// `tool_call` event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<ToolCallStart>,
}

/// A tool call the model started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCallStart {
    /// The call's id.
    pub call_id: String,
    /// The tool.
    pub name: String,
}

/// `turn/events` notification params: events a running turn recorded,
/// as each batch commits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnEvents {
    /// The turn.
    pub turn: TurnId,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// `approval/request` notification params, to the client running the turn
/// and to the conversation's watchers: the turn waits until one of them
/// answers with `approval/respond` (or the turn is cancelled).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequest {
    /// The turn.
    pub turn: TurnId,
    /// For a watcher of the turn's conversation (`events/watch`): the
    /// watch. Absent for the client that runs the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<u64>,
    /// The tool call.
    pub call_id: String,
    /// The tool: `shell`, `write_file` or `edit_file`.
    pub tool: String,
    /// Its arguments, as the model sent them.
    pub arguments: Value,
}

// ----------------------------------------------------------------- events

/// `events/list` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsListParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// Only events after this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<EventId>,
    /// Only events before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<EventId>,
    /// Newest first.
    #[serde(default)]
    pub desc: bool,
    /// Page size, 1 to 10000; 100 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only this kind.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "kind_name")]
    #[schemars(with = "Option<String>")]
    pub kind: Option<EventKind>,
    /// Only this session's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Only this turn's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnId>,
}

mod kind_name {
    use exo_core::EventKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        kind: &Option<EventKind>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match kind {
            Some(kind) => serializer.serialize_str(kind.as_str()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<EventKind>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|name| {
                name.parse::<EventKind>()
                    .map_err(|err| serde::de::Error::custom(err.0))
            })
            .transpose()
    }
}

/// `events/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventPage {
    /// The events, in the query's order.
    pub events: Vec<Event>,
    /// Set when more may follow: pass it as `after` (ascending) or `before`
    /// (descending).
    pub next_cursor: Option<EventId>,
}

/// `events/get` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsGetParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The event.
    pub event: EventId,
}

/// `events/watch` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsWatchParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// Replay stored events after this one first; from the start when
    /// absent. To see only new events, pass the current head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<EventId>,
}

/// `events/watch` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchResult {
    /// Names this watch in notifications and in `events/unwatch`.
    pub watch: u64,
    /// The conversation's id.
    pub conversation: String,
}

/// `events/unwatch` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnwatchParams {
    /// The watch.
    pub watch: u64,
}

/// `events/appended` notification params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsAppended {
    /// The watch.
    pub watch: u64,
    /// The conversation's id.
    pub conversation: String,
    /// The events, in commit order.
    pub events: Vec<Event>,
}

/// `events/lagged` notification params: the watch fell behind and ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsLagged {
    /// The watch, now ended.
    pub watch: u64,
    /// The conversation's id.
    pub conversation: String,
    /// The last event delivered: watch again with `after` set to it. Null
    /// when none was delivered.
    pub cursor: Option<EventId>,
}

/// `$/cancelRequest` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CancelParams {
    /// The id of the request to cancel.
    pub id: Value,
}

// -------------------------------------------------------------- artifacts

/// `artifact/put` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactPutParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The artifact's path.
    pub path: String,
    /// The bytes, base64.
    pub content_base64: String,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// `artifact/get` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactGetParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The artifact's path.
    pub path: String,
    /// A specific version; the current one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `artifact/get` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactContent {
    /// The version read.
    #[serde(flatten)]
    pub artifact: Artifact,
    /// The bytes, base64.
    pub content_base64: String,
}

/// `artifact/list` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactListParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// List every version of this path instead of every current artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `artifact/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactList {
    /// The versions.
    pub artifacts: Vec<Artifact>,
}

// ---------------------------------------------------------------- secrets

/// `secret/set` params. The value travels once, to the daemon, over the
/// owner-only socket; it is never sent back.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretSetParams {
    /// The secret's name.
    pub name: String,
    /// The value: an API key, or for `kind: "oauth"` a JSON object
    /// `{"access_token", "refresh_token"?, "expires_at"?}` as a string.
    pub value: String,
    /// `api_key` (default) or `oauth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<exo_core::SecretKind>,
    /// Where it lives.
    #[serde(flatten)]
    pub scope: ScopeParams,
}

impl std::fmt::Debug for SecretSetParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSetParams")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("kind", &self.kind)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Params naming a secret at a scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretParams {
    /// The secret's name.
    pub name: String,
    /// Where it lives.
    #[serde(flatten)]
    pub scope: ScopeParams,
}

/// `secret/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretList {
    /// Names, kinds and scopes; never values.
    pub secrets: Vec<Secret>,
}

// --------------------------------------------------------------- bindings

/// `model/register` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelRegisterParams {
    /// The name agents use.
    pub name: String,
    /// The wire format; `openai` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// The API's base URL; the provider's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model's name at the provider; `name` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The secret holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// How many tokens the model takes in one request (1 to 100 000 000);
    /// the provider's default when absent (spec/models.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Where it lives.
    #[serde(flatten)]
    pub scope: ScopeParams,
}

/// Params naming a model at a scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelParams {
    /// The model's name.
    pub name: String,
    /// The scope (for `model/get`: where resolution starts).
    #[serde(flatten)]
    pub scope: ScopeParams,
}

/// `model/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelList {
    /// Models registered at the scope.
    pub models: Vec<BindingEntry>,
}

/// `binding/set` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BindingSetParams {
    /// The binding: `{"type": "env" | "mcp" | "model", ...}`.
    pub binding: Binding,
    /// Where it lives.
    #[serde(flatten)]
    pub scope: ScopeParams,
}

/// Params naming a binding at a scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BindingParams {
    /// `env`, `mcp` or `model`.
    pub kind: BindingKind,
    /// The binding's name.
    pub name: String,
    /// The scope (for `binding/get`: where resolution starts).
    #[serde(flatten)]
    pub scope: ScopeParams,
}

/// `binding/list` params.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BindingListParams {
    /// Only this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<BindingKind>,
    /// The scope.
    #[serde(flatten)]
    pub scope: ScopeParams,
}

/// `binding/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BindingList {
    /// Bindings set at the scope.
    pub bindings: Vec<BindingEntry>,
}

// -------------------------------------------------------------- snapshots

/// A path that differs between two states of a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PathChange {
    /// Workspace-relative path (lossy UTF-8 for names that are not).
    pub path: String,
    /// `added`, `modified`, `deleted` or `mode_changed`.
    pub change: String,
}

/// A path a restore left alone, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedPath {
    /// Workspace-relative path (lossy UTF-8 for names that are not).
    pub path: String,
    /// Why, in a few words.
    pub reason: String,
}

/// `snapshot/take` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotResult {
    /// The `workspace_snapshot` event recorded.
    pub event: Event,
    /// Whether every file was examined (rather than only the ones a watcher
    /// saw change).
    pub full_scan: bool,
}

/// `snapshot/list` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotListParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// At most this many, newest first; 100 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `snapshot/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotList {
    /// `workspace_snapshot` events on the history, newest first.
    pub snapshots: Vec<Event>,
}

/// `snapshot/diff` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotDiffParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// A snapshot commit, or the id of a `workspace_snapshot` event; the
    /// latest snapshot on the history when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Likewise; the workspace as it is on disk now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Include a unified diff.
    #[serde(default)]
    pub unified: bool,
}

/// `snapshot/diff` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotDiff {
    /// The `from` commit.
    pub from: String,
    /// The `to` commit, or null for the workspace on disk.
    pub to: Option<String>,
    /// What differs.
    pub changes: Vec<PathChange>,
    /// The unified diff, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// `snapshot/read` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotReadParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// A snapshot commit, or the id of a `workspace_snapshot` event.
    pub snapshot: String,
    /// The file's workspace-relative path, `/`-separated.
    pub path: String,
}

/// `snapshot/read` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotFile {
    /// The snapshot's commit.
    pub snapshot: String,
    /// The path, as asked.
    pub path: String,
    /// The file's bytes, or null when the snapshot has no file at `path`.
    pub content_base64: Option<String>,
    /// The file's size in bytes (0 when absent).
    pub size: u64,
    /// Whether the file is executable, in the snapshot.
    pub executable: bool,
}

/// `snapshot/restore` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotRestoreParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// A snapshot commit, or the id of a `workspace_snapshot` event.
    pub snapshot: String,
    /// Overwrite changes made since the latest snapshot (a safety snapshot
    /// keeps them).
    #[serde(default)]
    pub force: bool,
    /// Report what would change; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Include a unified diff of what changes.
    #[serde(default)]
    pub unified: bool,
}

/// What a restore did (or would do).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RestoreResult {
    /// The snapshot restored to.
    pub snapshot: String,
    /// The paths written or removed (or, for a dry run, that would be);
    /// never a path left alone.
    pub changes: Vec<PathChange>,
    /// False for a dry run.
    pub written: bool,
    /// For a dry run without `force`: paths changed on disk since the
    /// latest snapshot, which a real restore would refuse to overwrite.
    /// For a real restore: paths left alone because they changed on disk
    /// while it ran (after the safety snapshot, so in no snapshot), with
    /// how the disk differs from the safety snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<PathChange>,
    /// Paths of the snapshot left alone because something exo does not
    /// capture is in the way (an ignored, special or over-size file, a
    /// symlink or a directory with such files), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedPath>,
    /// The safety snapshot taken first, so the restore can be undone.
    pub safety: Option<Event>,
    /// The `workspace_snapshot` event recording the restored state.
    pub event: Option<Event>,
    /// The unified diff, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// `session/resume` result: what a client needs to pick a conversation up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResumeResult {
    /// The conversation (an open turn whose process died is closed first).
    pub conversation: Conversation,
    /// Its head event.
    pub head: Event,
    /// The last turn and how it ended.
    pub last_turn: Option<Turn>,
    /// The snapshot in effect at the head.
    pub snapshot: Option<Event>,
    /// Paths changed in the workspace since that snapshot, while no agent
    /// was running (null when the conversation has no workspace).
    pub drift: Option<Vec<PathChange>>,
}

/// One conversation's docker sandbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxInfo {
    /// The conversation.
    pub conversation: String,
    /// The container's name (`exo-CONVERSATION`).
    pub container: String,
    /// The image it was made from: the agent's, or a snapshot.
    pub image: String,
    /// Docker's word for its state (`running`, `exited`, ...).
    pub state: String,
}

/// `sandbox/list` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxList {
    /// This root's containers, by name.
    pub sandboxes: Vec<SandboxInfo>,
}

/// `sandbox/exec` params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxExecParams {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
    /// The shell command, run with `/bin/sh -c` in the workspace.
    pub command: String,
    /// Milliseconds before it is killed (default and most as for the
    /// `shell` tool: 120000 and 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `sandbox/exec` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxExecResult {
    /// The `shell` tool's output object (spec/tools.md): `exit_code`,
    /// `stdout`, `stderr`, `timed_out`, ...; or `{"error": ...}`.
    pub output: serde_json::Value,
    /// Whether the command failed or could not run.
    pub is_error: bool,
    /// The `sandbox.exec` event recorded.
    pub event: EventId,
}

/// `sandbox/snapshot` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxSnapshotResult {
    /// The image (`exo-snapshot:TAG`), or null when nothing changed
    /// outside the workspace since the image the container was made from.
    pub image: Option<String>,
    /// How many paths changed.
    pub changes: u64,
    /// The `sandbox.snapshotted` event, when a snapshot was taken.
    pub event: Option<EventId>,
}

/// `sandbox/rm` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxRemoved {
    /// Whether there was a container to remove.
    pub removed: bool,
}

/// `gc` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GcResult {
    /// Shadow stores examined.
    pub workspaces: u64,
    /// Objects before.
    pub objects_before: u64,
    /// Objects after.
    pub objects_after: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Docker sandbox snapshot images removed (this root's, referenced by
    /// no live conversation).
    #[serde(default)]
    pub sandbox_images: u64,
}

// ------------------------------------------------------------ the table

macro_rules! methods {
    ($($(#[$doc:meta])* $ty:ident = $name:literal ($params:ty) -> $result:ty $([$($flag:ident),*])?;)*) => {
        $(
            $(#[$doc])*
            pub enum $ty {}
            impl Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
                const INFO: MethodInfo = MethodInfo::new($name, &[$($(stringify!($flag)),*)?]);
            }
        )*
        /// Every method's name, in the order of spec/protocol.md.
        pub const METHOD_NAMES: &[&str] = &[$($name),*];

        /// How each method may be served, in the same order.
        pub const METHODS: &[MethodInfo] = &[$(<$ty as Method>::INFO),*];

        fn method_schemas(generator: &mut schemars::SchemaGenerator) -> Map<String, Value> {
            let mut methods = Map::new();
            $(
                methods.insert($name.to_string(), serde_json::json!({
                    "params": generator.subschema_for::<$params>(),
                    "result": generator.subschema_for::<$result>(),
                }));
            )*
            methods
        }
    };
}

macro_rules! notifications {
    ($($(#[$doc:meta])* $ty:ident = $name:literal ($params:ty);)*) => {
        $(
            $(#[$doc])*
            pub enum $ty {}
            impl Notification for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
            }
        )*
        /// Every notification's name.
        pub const NOTIFICATION_NAMES: &[&str] = &[$($name),*];

        fn notification_schemas(generator: &mut schemars::SchemaGenerator) -> Map<String, Value> {
            let mut notifications = Map::new();
            $(
                notifications.insert($name.to_string(), serde_json::json!({
                    "params": generator.subschema_for::<$params>(),
                }));
            )*
            notifications
        }
    };
}

methods! {
    /// Negotiates the protocol version; reports capabilities.
    Initialize = "initialize" (InitializeParams) -> InitializeResult [read_only, inline];
    /// Answers `{}`: a liveness check.
    Ping = "ping" (Empty) -> Empty [read_only, inline];
    /// The daemon's pid, root, socket, uptime and connections.
    DaemonStatusMethod = "daemon/status" (Empty) -> DaemonStatus [read_only, inline];
    /// Stops the daemon gracefully (as SIGTERM does).
    DaemonStop = "daemon/stop" (Empty) -> Empty [connection];
    /// Creates an agent.
    AgentCreate = "agent/create" (AgentCreateParams) -> Agent;
    /// Lists agents.
    AgentListMethod = "agent/list" (Empty) -> AgentList [read_only];
    /// Reads one agent.
    AgentGet = "agent/get" (AgentParams) -> Agent [read_only];
    /// Deletes an agent and its conversations.
    AgentDelete = "agent/delete" (AgentParams) -> Agent;
    /// Changes an agent's harness, module, model, instructions or policy.
    AgentSet = "agent/set" (AgentSetParams) -> Agent;
    /// Creates a conversation.
    ConversationCreate = "conversation/create" (ConversationCreateParams) -> Conversation;
    /// Lists an agent's conversations.
    ConversationListMethod = "conversation/list" (AgentParams) -> ConversationList [read_only];
    /// Reads one conversation.
    ConversationGet = "conversation/get" (ConversationRef) -> Conversation [read_only];
    /// Deletes a conversation.
    ConversationDelete = "conversation/delete" (ConversationRef) -> Conversation;
    /// Forks a conversation at an event.
    ConversationFork = "conversation/fork" (ConversationForkParams) -> Conversation;
    /// Moves a conversation's head.
    ConversationRewind = "conversation/rewind" (ConversationRewindParams) -> RewindResult;
    /// Summarises a conversation's history as a tree: its current line, the
    /// branches it rewound away from, and the forks taken from them.
    ConversationTreeMethod = "conversation/tree" (ConversationRef) -> ConversationTree [read_only];
    /// Mints a model-gateway token for a conversation, revoked when this
    /// connection ends.
    GatewayTokenMethod = "gateway/token" (ConversationRef) -> GatewayToken;
    /// Revokes a model-gateway token.
    GatewayRevoke = "gateway/revoke" (GatewayRevokeParams) -> GatewayRevoked [inline];
    /// Appends events as one atomic batch.
    ConversationAppend = "conversation/append" (ConversationAppendParams) -> AppendResult;
    /// Begins a turn.
    TurnBegin = "turn/begin" (TurnBeginParams) -> TurnBeginResult;
    /// Appends events to an open turn begun through this daemon.
    TurnAppend = "turn/append" (TurnAppendParams) -> AppendResult;
    /// Ends a turn; idempotent.
    TurnFinish = "turn/finish" (TurnFinishParams) -> TurnFinishResult;
    /// Reads a turn's record.
    TurnGet = "turn/get" (TurnParams) -> Turn [read_only];
    /// Runs a turn with the built-in executor; streams `turn/delta`,
    /// `turn/events` and `approval/request` to the caller.
    TurnRun = "turn/run" (TurnRunParams) -> TurnRunResult [connection];
    /// Cancels a running `turn/run` turn: it ends `cancelled`.
    TurnCancel = "turn/cancel" (TurnParams) -> Empty [inline];
    /// Answers an `approval/request`.
    ApprovalRespond = "approval/respond" (ApprovalRespondParams) -> Empty [inline];
    /// Lists the tool calls running turns wait to have answered.
    ApprovalListMethod = "approval/list" (ApprovalListParams) -> ApprovalList [read_only];
    /// Reports head, last turn and workspace drift, to pick a conversation up.
    SessionResume = "session/resume" (ConversationRef) -> ResumeResult;
    /// Snapshots the conversation's workspace now.
    SnapshotTake = "snapshot/take" (ConversationRef) -> SnapshotResult;
    /// Lists the workspace snapshots on the history.
    SnapshotListMethod = "snapshot/list" (SnapshotListParams) -> SnapshotList;
    /// Compares two snapshots, or a snapshot and the workspace.
    SnapshotDiffMethod = "snapshot/diff" (SnapshotDiffParams) -> SnapshotDiff;
    /// Restores the workspace to a snapshot, conflict-safe.
    SnapshotRestore = "snapshot/restore" (SnapshotRestoreParams) -> RestoreResult;
    /// Reads one file as a snapshot holds it.
    SnapshotRead = "snapshot/read" (SnapshotReadParams) -> SnapshotFile [read_only];
    /// Removes snapshot objects no live conversation can reach.
    Gc = "gc" (Empty) -> GcResult;
    /// Lists this root's docker sandboxes.
    SandboxListMethod = "sandbox/list" (Empty) -> SandboxList [read_only];
    /// Removes a conversation's docker sandbox; its next command makes it
    /// again from the newest snapshot on the history.
    SandboxRm = "sandbox/rm" (ConversationRef) -> SandboxRemoved;
    /// Makes a conversation's container, from the newest sandbox snapshot
    /// on its history or its agent's image.
    SandboxCreate = "sandbox/create" (ConversationRef) -> SandboxInfo;
    /// Starts a conversation's container (made first when missing).
    SandboxStart = "sandbox/start" (ConversationRef) -> SandboxInfo;
    /// Stops a conversation's container, keeping its files.
    SandboxStop = "sandbox/stop" (ConversationRef) -> SandboxInfo;
    /// Runs a command in a conversation's sandbox, as its agent's shell
    /// tool would.
    SandboxExec = "sandbox/exec" (SandboxExecParams) -> SandboxExecResult;
    /// Snapshots a conversation's container now.
    SandboxSnapshot = "sandbox/snapshot" (ConversationRef) -> SandboxSnapshotResult;
    /// Reads a page of a conversation's history.
    EventsList = "events/list" (EventsListParams) -> EventPage [read_only];
    /// Reads one event.
    EventsGet = "events/get" (EventsGetParams) -> Event [read_only];
    /// Replays events after a cursor, then streams new ones.
    EventsWatch = "events/watch" (EventsWatchParams) -> WatchResult [read_only, connection];
    /// Ends a watch.
    EventsUnwatch = "events/unwatch" (UnwatchParams) -> Empty [connection];
    /// Stores a new version of an artifact.
    ArtifactPut = "artifact/put" (ArtifactPutParams) -> Artifact;
    /// Reads an artifact's bytes.
    ArtifactGet = "artifact/get" (ArtifactGetParams) -> ArtifactContent [read_only];
    /// Lists artifacts.
    ArtifactListMethod = "artifact/list" (ArtifactListParams) -> ArtifactList [read_only];
    /// Seals and stores a secret.
    SecretSet = "secret/set" (SecretSetParams) -> Secret;
    /// Lists secrets at a scope.
    SecretListMethod = "secret/list" (ScopeParams) -> SecretList [read_only];
    /// Reads a secret's metadata.
    SecretGet = "secret/get" (SecretParams) -> Secret [read_only];
    /// Deletes a secret.
    SecretDelete = "secret/delete" (SecretParams) -> Secret;
    /// Registers a model.
    ModelRegister = "model/register" (ModelRegisterParams) -> BindingEntry;
    /// Lists models at a scope.
    ModelListMethod = "model/list" (ScopeParams) -> ModelList [read_only];
    /// Resolves a model name from a scope.
    ModelGet = "model/get" (ModelParams) -> BindingEntry [read_only];
    /// Deletes a model at a scope.
    ModelDelete = "model/delete" (ModelParams) -> BindingEntry;
    /// Sets a binding.
    BindingSet = "binding/set" (BindingSetParams) -> BindingEntry;
    /// Lists bindings at a scope.
    BindingListMethod = "binding/list" (BindingListParams) -> BindingList [read_only];
    /// Resolves a binding from a scope.
    BindingGet = "binding/get" (BindingParams) -> BindingEntry [read_only];
    /// Deletes a binding at a scope.
    BindingDelete = "binding/delete" (BindingParams) -> BindingEntry;
}

notifications! {
    /// Server to client: new events for a watch.
    EventsAppendedNotification = "events/appended" (EventsAppended);
    /// Server to client: a watch fell behind and ended.
    EventsLaggedNotification = "events/lagged" (EventsLagged);
    /// Server to client: a piece of a running turn's answer.
    TurnDeltaNotification = "turn/delta" (TurnDelta);
    /// Server to client: events a running turn recorded.
    TurnEventsNotification = "turn/events" (TurnEvents);
    /// Server to client: a turn asks whether a tool call may run.
    ApprovalRequestNotification = "approval/request" (ApprovalRequest);
    /// Client to server: cancel a request in flight.
    CancelRequest = "$/cancelRequest" (CancelParams);
}

/// The protocol's JSON Schema.
pub(crate) fn schema() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let methods = method_schemas(&mut generator);
    let notifications = notification_schemas(&mut generator);
    let error_data = generator.subschema_for::<crate::ErrorData>();
    let definitions = generator.take_definitions(true);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "exo JSON-RPC protocol",
        "protocol_version": crate::PROTOCOL_VERSION,
        "methods": methods,
        "notifications": notifications,
        "error_data": error_data,
        "$defs": definitions,
    })
}
