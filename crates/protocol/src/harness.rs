//! The harness protocol: what exo and an out-of-process executor's runner
//! say to each other over the runner's stdin and stdout (spec/harness.md).
//!
//! Two tables: the methods the runner serves (exo asks: `initialize`,
//! `harness/turn`, `shutdown`) and the host capabilities exo serves to its
//! runner (`model/complete`, `tool/run`, `approval/ask`, `history/items`,
//! and the daemon's `turn/append`, `events/*` and `artifact/*` with the
//! agent, conversation and turn implied). The checked-in schema
//! `spec/harness.schema.json` is generated from them (`UPDATE_SCHEMA=1
//! cargo test -p exo-protocol`), and the TypeScript runtime's types
//! (`typescript/harness/src/protocol.ts`) are generated from that.
//!
//! Events, content parts and usage are the daemon protocol's own types:
//! a runner reads and writes the same shapes as every other client.

use exo_core::{AgentId, ContentPart, ConversationId, EventId, Role, SessionId, TurnId, Usage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::methods::{
    AppendResult, ArtifactContent, ArtifactList, CancelParams, Empty, EventPage, Method,
    Notification, ToolCallStart,
};
use crate::types::{Artifact, Event};

/// The harness protocol version this build speaks.
pub const HARNESS_PROTOCOL_VERSION: &str = "1";

// ------------------------------------------------------------ initialize

/// `initialize` params (exo to runner): load this module.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunnerInitializeParams {
    /// The harness protocol version exo speaks, `"1"`.
    pub protocol_version: String,
    /// The module to load: an absolute path (`.ts`, `.mts`, `.js`, `.mjs`).
    pub module: String,
    /// The agent whose turns the runner will run.
    pub agent: RunnerAgent,
    /// The conversation the runner serves.
    pub conversation: RunnerConversation,
}

/// The agent, as a runner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunnerAgent {
    /// Its id.
    pub id: AgentId,
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// The agent's own instructions (`config.instructions`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// The conversation, as a runner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunnerConversation {
    /// Its id.
    pub id: ConversationId,
    /// Its slug.
    pub slug: String,
    /// The workspace directory it is bound to, absolute, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// `initialize` result: the module loaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunnerInitializeResult {
    /// The harness protocol version the runner speaks, `"1"`.
    pub protocol_version: String,
    /// The runtime that loaded the module.
    pub runtime: RuntimeInfo,
    /// What the module declares.
    pub harness: HarnessInfo,
}

/// A runtime's name and version (`@exo/harness`, `0.1.0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RuntimeInfo {
    /// The runtime's name.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// What a harness module declares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HarnessInfo {
    /// The harness's name: the `<name>` of its `harness.<name>.*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The module's own tools, offered to its model beside exo's.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
}

/// A tool as a model sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolSpec {
    /// Its name, as the model calls it.
    pub name: String,
    /// What it does, written for a model.
    pub description: String,
    /// A JSON Schema (an object schema) for its arguments.
    pub parameters: Value,
}

// ----------------------------------------------------------- harness/turn

/// `harness/turn` params (exo to runner): run one turn, already begun.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HarnessTurnParams {
    /// The turn exo began.
    pub turn: TurnId,
    /// Its session.
    pub session: SessionId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The agent.
    pub agent: AgentId,
    /// The user's message, as recorded.
    pub input: Vec<ContentPart>,
    /// exo's preamble and the agent's instructions, as the built-in
    /// executor would send them.
    pub instructions: String,
    /// exo's tools for this conversation (none without a workspace).
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// The turn's round limit: the most recorded model calls it may make.
    pub max_rounds: u32,
    /// The conversation's history as `history/items` answers it when the
    /// turn begins (the user's message included), so that a harness that
    /// starts by reading it needs no round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryItems>,
}

/// How a runner's turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HarnessTurnStatus {
    /// The harness finished the turn.
    Completed,
    /// The harness stopped at the round limit.
    MaxRounds,
    /// The turn was cancelled.
    Cancelled,
}

/// `harness/turn` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HarnessTurnResult {
    /// How the turn ended.
    pub status: HarnessTurnStatus,
    /// The turn's answer, as the harness sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

// --------------------------------------------------------- model/complete

// Read by hand (`ModelItem::deserialize`, below) rather than derived: a
// derived internally tagged enum buffers every item, and its untagged
// content again, before reading it, and a whole history travels in every
// `model/complete`.
/// One entry of the conversation as a model sees it, in exo's
/// model-neutral form.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelItem {
    /// A message.
    Message {
        /// Who speaks: `user` or `assistant` (`system` only where the
        /// history recorded a system message).
        role: Role,
        /// What is said: text, or content parts.
        content: ModelContent,
    },
    /// A tool call the model made.
    ToolCall {
        /// Pairs the call with its result.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The arguments, a JSON object (a JSON string: the model's text
        /// that did not parse as JSON).
        arguments: Value,
    },
    /// The result of a tool call.
    ToolResult {
        /// The call it answers.
        call_id: String,
        /// The tool's output as text.
        output: String,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

/// A message's content: plain text, or content parts.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelContent {
    /// Plain text: one text part.
    Text(String),
    /// Content parts.
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for ModelContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ModelContent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ModelContent, E> {
                Ok(ModelContent::Text(text.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<ModelContent, E> {
                Ok(ModelContent::Text(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ModelContent, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
                while let Some(part) = seq.next_element::<ContentPart>()? {
                    parts.push(part);
                }
                Ok(ModelContent::Parts(parts))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for ModelItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Message,
            ToolCall,
            ToolResult,
        }
        /// Every field of every kind, read in one pass; unknown fields are
        /// ignored, as the derived form did.
        #[derive(Deserialize)]
        struct Flat {
            #[serde(rename = "type")]
            kind: Kind,
            role: Option<Role>,
            content: Option<ModelContent>,
            call_id: Option<String>,
            name: Option<String>,
            arguments: Option<Value>,
            output: Option<String>,
            #[serde(default)]
            is_error: bool,
        }
        let flat = Flat::deserialize(deserializer)?;
        Ok(match flat.kind {
            Kind::Message => ModelItem::Message {
                role: flat.role.ok_or_else(|| D::Error::missing_field("role"))?,
                content: flat
                    .content
                    .ok_or_else(|| D::Error::missing_field("content"))?,
            },
            Kind::ToolCall => ModelItem::ToolCall {
                call_id: flat
                    .call_id
                    .ok_or_else(|| D::Error::missing_field("call_id"))?,
                name: flat.name.ok_or_else(|| D::Error::missing_field("name"))?,
                arguments: flat
                    .arguments
                    .ok_or_else(|| D::Error::missing_field("arguments"))?,
            },
            Kind::ToolResult => ModelItem::ToolResult {
                call_id: flat
                    .call_id
                    .ok_or_else(|| D::Error::missing_field("call_id"))?,
                output: flat
                    .output
                    .ok_or_else(|| D::Error::missing_field("output"))?,
                is_error: flat.is_error,
            },
        })
    }
}

fn yes() -> bool {
    true
}

/// `model/complete` params (runner to exo): call a model through exo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelCompleteParams {
    /// The conversation as the model should see it, oldest first.
    pub items: Vec<ModelItem>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// A cap on the answer's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// A model binding visible from the conversation; the agent's model
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Record the answer in the turn (default true): the assistant message
    /// and its `tool_call` events, as the built-in executor does. A call
    /// for the harness's own use (a summary) passes false.
    #[serde(default = "yes")]
    pub record: bool,
    /// Send `model/delta` notifications while the answer streams (default
    /// true).
    #[serde(default = "yes")]
    pub stream: bool,
}

/// A tool call in a model's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelToolCall {
    /// The provider's id for the call.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The parsed arguments (`{}` when the model sent none; the raw text
    /// as a JSON string when it is not JSON).
    pub arguments: Value,
}

/// `model/complete` result: the whole answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelCompleteResult {
    /// The answer text.
    pub text: String,
    /// Reasoning text, when the model showed any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The tool calls, in the order the model made them.
    pub tool_calls: Vec<ModelToolCall>,
    /// Token usage, when the provider reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Why the model stopped: `end_turn`, `tool_use`, `max_tokens`,
    /// `cancelled`, or the provider's own word.
    pub stop: String,
    /// What was recorded (empty with `record: false`).
    pub events: Vec<Event>,
}

/// `model/delta` notification params (exo to runner): a piece of a
/// `model/complete` answer as it streams. One of `text`, `reasoning` and
/// `tool_call` is present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelDelta {
    /// The id of the `model/complete` request this belongs to.
    pub request: Value,
    /// More answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// More reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The model started a tool call; its arguments come with the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<ToolCallStart>,
}

// --------------------------------------------------------------- tool/run

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// `tool/run` params (runner to exo): run one of exo's tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolRunParams {
    /// The call's id, as the model gave it; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The tool: one of the `tools` of `harness/turn`.
    pub name: String,
    /// Its arguments.
    #[serde(default = "empty_object")]
    pub arguments: Value,
}

/// `tool/run` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolRunResult {
    /// The call's id.
    pub call_id: String,
    /// The tool's JSON output (spec/tools.md), or `{"error": "..."}`.
    pub output: Value,
    /// Whether the call failed (or was denied).
    pub is_error: bool,
    /// Whether the approval policy (or the user) let it run.
    pub approved: bool,
    /// What was recorded: the `tool_call` (when exo had not seen the call),
    /// `exo.approval` and the `tool_result`.
    pub events: Vec<Event>,
}

// ----------------------------------------------------------- approval/ask

/// What a call does, for the approval policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// Runs something (asks under `ask`). The default.
    Run,
    /// Changes files (asks under `ask`).
    Write,
    /// Only reads (never asks).
    Read,
}

/// `approval/ask` params (runner to exo): may this call run?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalAskParams {
    /// The call's id.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// The call's arguments, shown to the user.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// What the call does; `run` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ApprovalKind>,
}

/// An approval decision: exo's own (`allow_once`, `allow_turn`,
/// `allow_always`, `deny`).
pub use exo_core::ApprovalDecision;

/// Who decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalBy {
    /// The agent's approval policy.
    Policy,
    /// A person, through `approval/respond`.
    User,
    /// Nobody could be asked: denied.
    NoClient,
    /// An earlier `allow_turn` in this turn, or the agent's standing
    /// `allow_always`: allowed without asking.
    Permission,
}

/// `approval/ask` result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalAskResult {
    /// The decision.
    pub decision: ApprovalDecision,
    /// Who made it.
    pub by: ApprovalBy,
}

// ------------------------------------------------------ turn/delta, history

/// `turn/delta` notification params (runner to exo): text the runner
/// produces itself, streamed to the turn's client and watchers. Not
/// recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HarnessDelta {
    /// More answer text.
    pub text: String,
}

/// `history/items` result: the conversation as the built-in executor
/// would show it to a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryItems {
    /// From the last compaction on (its summary first), oldest first,
    /// calls left without a result marked interrupted.
    pub items: Vec<ModelItem>,
    /// The `exo.compaction` event the items start from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<Event>,
}

// ------------------------------------- daemon methods, scoped to the runner

/// `turn/append` params on a runner's connection: the turn is implied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostTurnAppendParams {
    /// The turn in progress; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnId>,
    /// Events as `conversation append` lines (`message`, `tool_call`,
    /// `tool_result`, `error`, and `custom` of type `harness.*` or
    /// `exo.compaction`). One atomic batch.
    pub events: Vec<Value>,
    /// Fail with `conflict` unless the head is this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_head: Option<EventId>,
    /// Whether the result lists the appended events (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_events: Option<bool>,
}

/// `events/list` params on a runner's connection: the conversation is
/// implied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostEventsListParams {
    /// The runner's agent; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The runner's conversation; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
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
    /// Only this kind (`message`, `custom`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only this session's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Only this turn's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnId>,
}

/// `events/get` params on a runner's connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostEventsGetParams {
    /// The runner's agent; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The runner's conversation; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// The event.
    pub event: EventId,
}

/// `artifact/put` params on a runner's connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostArtifactPutParams {
    /// The runner's agent; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The runner's conversation; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// The artifact's path.
    pub path: String,
    /// The bytes, base64.
    pub content_base64: String,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// `artifact/get` params on a runner's connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostArtifactGetParams {
    /// The runner's agent; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The runner's conversation; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// The artifact's path.
    pub path: String,
    /// A specific version; the current one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `artifact/list` params on a runner's connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostArtifactListParams {
    /// The runner's agent; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The runner's conversation; refused if it names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// List every version of this path instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

// ----------------------------------------------------------------- errors

/// The error codes of the harness protocol beyond JSON-RPC's own
/// (`-32700`, `-32600`, `-32601`, `-32602`, `-32603`, `-32800`) and, from
/// exo, the daemon's (spec/protocol.md, Errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HarnessErrorCode {
    /// -32001, from the runner: the module cannot be loaded.
    Module,
    /// -32010, from exo: the model call failed (`data.kind` says how).
    Model,
    /// -32011, from the runner: the harness failed the turn (it threw).
    Harness,
    /// -32012, from exo: a `model/complete` beyond the turn's round limit.
    MaxRounds,
}

impl HarnessErrorCode {
    /// All codes, for documentation and tests.
    pub const ALL: [HarnessErrorCode; 4] = [
        HarnessErrorCode::Module,
        HarnessErrorCode::Model,
        HarnessErrorCode::Harness,
        HarnessErrorCode::MaxRounds,
    ];

    /// The numeric JSON-RPC code.
    pub fn code(self) -> i64 {
        match self {
            HarnessErrorCode::Module => -32001,
            HarnessErrorCode::Model => -32010,
            HarnessErrorCode::Harness => -32011,
            HarnessErrorCode::MaxRounds => -32012,
        }
    }

    /// The `data.code` name.
    pub fn name(self) -> &'static str {
        match self {
            HarnessErrorCode::Module => "module",
            HarnessErrorCode::Model => "model",
            HarnessErrorCode::Harness => "harness",
            HarnessErrorCode::MaxRounds => "max_rounds",
        }
    }
}

/// The `data` of a harness protocol error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HarnessErrorData {
    /// The machine-readable name: `module`, `model`, `harness`, or one of
    /// the daemon's (`invalid_params`, `request_cancelled`, ...).
    pub code: String,
    /// For `model`: `http`, `timeout`, `transport`, `decode` or
    /// `script_exhausted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For `harness`: the error's stack, when the runtime has one (for
    /// logs; exo records only the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

// ------------------------------------------------------------- the tables

macro_rules! harness_methods {
    ($names:ident, $schemas:ident: $($(#[$doc:meta])* $ty:ident = $name:literal ($params:ty) -> $result:ty;)*) => {
        $(
            $(#[$doc])*
            pub enum $ty {}
            impl Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
                const INFO: crate::methods::MethodInfo = crate::methods::MethodInfo::new($name, &[]);
            }
        )*
        /// The methods' names, in the order of spec/harness.md.
        pub const $names: &[&str] = &[$($name),*];

        fn $schemas(generator: &mut schemars::SchemaGenerator) -> Map<String, Value> {
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

macro_rules! harness_notifications {
    ($names:ident, $schemas:ident: $($(#[$doc:meta])* $ty:ident = $name:literal ($params:ty);)*) => {
        $(
            $(#[$doc])*
            pub enum $ty {}
            impl Notification for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
            }
        )*
        /// The notifications' names.
        pub const $names: &[&str] = &[$($name),*];

        fn $schemas(generator: &mut schemars::SchemaGenerator) -> Map<String, Value> {
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

harness_methods! { RUNNER_METHOD_NAMES, runner_method_schemas:
    /// exo to runner: load the module.
    RunnerInitialize = "initialize" (RunnerInitializeParams) -> RunnerInitializeResult;
    /// exo to runner: run one turn.
    HarnessTurn = "harness/turn" (HarnessTurnParams) -> HarnessTurnResult;
    /// exo to runner: answer `{}` and exit.
    RunnerShutdown = "shutdown" (Empty) -> Empty;
}

harness_methods! { HOST_METHOD_NAMES, host_method_schemas:
    /// Runner to exo: call a model (the key stays in exo).
    ModelComplete = "model/complete" (ModelCompleteParams) -> ModelCompleteResult;
    /// Runner to exo: run one of exo's tools, approval policy applied.
    ToolRun = "tool/run" (ToolRunParams) -> ToolRunResult;
    /// Runner to exo: may this call (of the runner's own tool) run?
    ApprovalAsk = "approval/ask" (ApprovalAskParams) -> ApprovalAskResult;
    /// Runner to exo: the history as the built-in executor shows it.
    HistoryItemsMethod = "history/items" (Empty) -> HistoryItems;
    /// Runner to exo: append to the turn in progress.
    HostTurnAppend = "turn/append" (HostTurnAppendParams) -> AppendResult;
    /// Runner to exo: read a page of the conversation's history.
    HostEventsList = "events/list" (HostEventsListParams) -> EventPage;
    /// Runner to exo: read one event.
    HostEventsGet = "events/get" (HostEventsGetParams) -> Event;
    /// Runner to exo: store an artifact version.
    HostArtifactPut = "artifact/put" (HostArtifactPutParams) -> Artifact;
    /// Runner to exo: read an artifact's bytes.
    HostArtifactGet = "artifact/get" (HostArtifactGetParams) -> ArtifactContent;
    /// Runner to exo: list artifacts.
    HostArtifactList = "artifact/list" (HostArtifactListParams) -> ArtifactList;
}

harness_notifications! { RUNNER_NOTIFICATION_NAMES, runner_notification_schemas:
    /// exo to runner: a piece of a `model/complete` answer.
    ModelDeltaNotification = "model/delta" (ModelDelta);
    /// exo to runner: cancel a request in flight (`harness/turn`).
    RunnerCancelRequest = "$/cancelRequest" (CancelParams);
}

harness_notifications! { HOST_NOTIFICATION_NAMES, host_notification_schemas:
    /// Runner to exo: text the runner streams itself.
    HarnessDeltaNotification = "turn/delta" (HarnessDelta);
    /// Runner to exo: cancel a request in flight.
    HostCancelRequest = "$/cancelRequest" (CancelParams);
}

/// The harness protocol's JSON Schema: `runner_methods` (served by the
/// runner), `host_methods` (served by exo to its runner), the
/// notifications each side receives, the error codes, `error_data`, and
/// the shared `$defs`.
pub fn schema() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let runner_methods = runner_method_schemas(&mut generator);
    let host_methods = host_method_schemas(&mut generator);
    let runner_notifications = runner_notification_schemas(&mut generator);
    let host_notifications = host_notification_schemas(&mut generator);
    let error_data = generator.subschema_for::<HarnessErrorData>();
    let definitions = generator.take_definitions(true);
    let error_codes: Map<String, Value> = HarnessErrorCode::ALL
        .iter()
        .map(|code| (code.name().to_string(), Value::from(code.code())))
        .collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "exo harness protocol",
        "protocol_version": HARNESS_PROTOCOL_VERSION,
        "runner_methods": runner_methods,
        "host_methods": host_methods,
        "runner_notifications": runner_notifications,
        "host_notifications": host_notifications,
        "error_codes": error_codes,
        "error_data": error_data,
        "$defs": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_complete_defaults_record_and_stream_to_true() {
        let params: ModelCompleteParams = serde_json::from_value(json!({
            "items": [{"type": "message", "role": "user", "content": "hi"}]
        }))
        .unwrap();
        assert!(params.record && params.stream);
        assert_eq!(
            params.items,
            vec![ModelItem::Message {
                role: Role::User,
                content: ModelContent::Text("hi".into())
            }]
        );
    }

    #[test]
    fn items_keep_their_wire_shape() {
        let wire = json!([
            {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"type": "tool_call", "call_id": "c1", "name": "shell", "arguments": {"command": "ls"}},
            {"type": "tool_result", "call_id": "c1", "output": "a\nb", "is_error": true},
            {"type": "tool_result", "call_id": "c2", "output": "fine"}
        ]);
        let items: Vec<ModelItem> = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(serde_json::to_value(&items).unwrap(), wire);
    }

    #[test]
    fn items_read_from_text_as_from_values_and_bad_ones_say_what_is_missing() {
        let text = r#"[{"type":"message","role":"user","content":"a \"quoted\" word","extra":1},
            {"type":"tool_call","call_id":"c","name":"n","arguments":"not json"}]"#;
        let items: Vec<ModelItem> = serde_json::from_str(text).unwrap();
        assert_eq!(
            items[0],
            ModelItem::Message {
                role: Role::User,
                content: ModelContent::Text("a \"quoted\" word".into())
            }
        );
        assert_eq!(
            items[1],
            ModelItem::ToolCall {
                call_id: "c".into(),
                name: "n".into(),
                arguments: json!("not json")
            }
        );
        for (bad, why) in [
            (
                r#"{"type":"message","role":"user"}"#,
                "missing field `content`",
            ),
            (
                r#"{"type":"tool_call","name":"n","arguments":{}}"#,
                "missing field `call_id`",
            ),
            (
                r#"{"type":"tool_result","call_id":"c"}"#,
                "missing field `output`",
            ),
            (r#"{"type":"picture"}"#, "unknown variant `picture`"),
            (r#"{"role":"user","content":"x"}"#, "missing field `type`"),
            (
                r#"{"type":"message","role":"user","content":7}"#,
                "a string or an array of content parts",
            ),
        ] {
            let error = serde_json::from_str::<ModelItem>(bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn approval_decisions_are_snake_case() {
        for (decision, name) in [
            (ApprovalDecision::AllowOnce, "allow_once"),
            (ApprovalDecision::AllowTurn, "allow_turn"),
            (ApprovalDecision::AllowAlways, "allow_always"),
            (ApprovalDecision::Deny, "deny"),
        ] {
            assert_eq!(serde_json::to_value(decision).unwrap(), json!(name));
            assert_eq!(decision.allows(), name != "deny");
        }
    }
}
