//! Command-line arguments: the one definition behind `--help` and parsing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use exo_core::{ApprovalPolicy, EventId, EventKind, Provider, SessionId, TurnId};

/// exo: durable agent sessions you can stop, resume, fork and rewind.
#[derive(Debug, Parser)]
#[command(name = "exo", version, about, max_term_width = 100)]
pub struct Cli {
    /// The exo root holding the store (default: the nearest `.exo` holding
    /// a store, from the current directory up; else `./.exo`).
    #[arg(long, global = true, env = "EXO_ROOT", value_name = "PATH")]
    pub root: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The executor that runs an agent's turns, for `agent create` and
    /// `agent set`: builtin (exo's own loop), typescript (a module of
    /// yours, with --module), and later codex, claude-code, cursor.
    #[arg(long, global = true, value_enum, value_name = "HARNESS")]
    pub harness: Option<HarnessArg>,
    #[command(subcommand)]
    pub command: Command,
}

/// The `--harness` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HarnessArg {
    /// exo's own coding loop.
    Builtin,
    /// A TypeScript module (`export default defineHarness(...)`), run by
    /// `@exo/harness`.
    Typescript,
    /// OpenAI's Codex CLI.
    Codex,
    /// Anthropic's Claude Code CLI.
    ClaudeCode,
    /// The Cursor SDK.
    Cursor,
}

impl HarnessArg {
    /// The harness it names.
    pub fn harness(self) -> exo_core::Harness {
        match self {
            HarnessArg::Builtin => exo_core::Harness::Builtin,
            HarnessArg::Typescript => exo_core::Harness::Typescript,
            HarnessArg::Codex => exo_core::Harness::Codex,
            HarnessArg::ClaudeCode => exo_core::Harness::ClaudeCode,
            HarnessArg::Cursor => exo_core::Harness::Cursor,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, show and delete agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Create, inspect, append to, fork and rewind conversations.
    #[command(subcommand, alias = "conv")]
    Conversation(ConversationCommand),
    /// Store encrypted secrets; values are never printed.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Register the models agents can use.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Bind environment variables and MCP servers to secrets.
    #[command(subcommand)]
    Binding(BindingCommand),
    /// Store and read versioned artifacts of a conversation.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Snapshot a conversation's workspace, compare snapshots, restore one.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Pick a conversation up: head, last turn, workspace drift.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Talk to an agent: an interactive session with its built-in executor.
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Remove snapshot objects no live conversation can reach.
    Gc,
    /// Run the daemon (JSON-RPC over a Unix socket, or stdio), or ask about
    /// a running one.
    Daemon(DaemonArgs),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot the conversation's workspace now.
    Take(ConversationRef),
    /// List the snapshots on the conversation's history, newest first.
    List {
        #[command(flatten)]
        target: ConversationRef,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show what changed: between two snapshots, or since one (the latest
    /// by default) on disk.
    Diff {
        #[command(flatten)]
        target: ConversationRef,
        /// A snapshot commit (or prefix) or its event id; the latest when
        /// absent.
        #[arg(long)]
        from: Option<String>,
        /// Likewise; the workspace on disk when absent.
        #[arg(long)]
        to: Option<String>,
        /// Print the unified diff, not just the paths.
        #[arg(long)]
        diff: bool,
    },
    /// Restore the workspace to a snapshot; only differing paths are
    /// written, after a safety snapshot.
    Restore {
        #[command(flatten)]
        target: ConversationRef,
        /// A snapshot commit (or prefix) or its event id.
        snapshot: String,
        /// Overwrite changes made since the latest snapshot (the safety
        /// snapshot keeps them).
        #[arg(long)]
        force: bool,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run, also print the unified diff.
        #[arg(long)]
        diff: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Read prompts (and /commands) line by line and run a turn for each,
    /// streaming the answer. Ctrl-C cancels a running turn; Ctrl-D or /quit
    /// leaves.
    Repl {
        #[command(flatten)]
        target: ConversationRef,
        /// The most model calls one turn may make.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        max_rounds: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Report the head, the last turn and its status, and the workspace
    /// drift since the last snapshot.
    Resume(ConversationRef),
}

/// `exo daemon`: runs the daemon in the foreground unless a subcommand
/// asks about a running one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub command: Option<DaemonCommand>,
    /// Serve one client on stdin/stdout (relaying to the running daemon if
    /// there is one).
    #[arg(long)]
    pub stdio: bool,
    /// The socket to listen on (default: <root>/exo.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Append logs to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Show the running daemon's pid, socket, uptime and connections.
    Status,
    /// Stop the running daemon gracefully.
    Stop,
}

/// Where a secret or binding lives: root (default), an agent, or a
/// conversation (as of its head).
#[derive(Debug, Args, Clone)]
pub struct ScopeArgs {
    /// Agent scope (slug or id).
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Conversation scope (slug or id); needs --agent.
    #[arg(long, value_name = "CONV", requires = "agent")]
    pub conversation: Option<String>,
}

/// An agent and one of its conversations, by slug or id.
#[derive(Debug, Args, Clone)]
pub struct ConversationRef {
    /// The agent (slug or id).
    pub agent: String,
    /// The conversation (slug or id).
    pub conversation: String,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent.
    Create {
        /// Display name; the slug derives from it.
        name: String,
        /// The model binding it uses (see `exo model register`).
        #[arg(long)]
        model: Option<String>,
        /// System instructions for its conversations.
        #[arg(long)]
        instructions: Option<String>,
        /// Before a shell command or a file write: run it (auto), ask an
        /// attached client (ask; denied when none can answer), or refuse
        /// (deny).
        /// [default: ask]
        #[arg(long, value_parser = parse_approval)]
        approval: Option<ApprovalPolicy>,
        /// Slug to use instead of the derived one.
        #[arg(long)]
        slug: Option<String>,
        /// With `--harness typescript`: the module that default-exports
        /// `defineHarness(...)`. It is loaded once to check it.
        #[arg(long, value_name = "FILE")]
        module: Option<PathBuf>,
    },
    /// Change an agent's harness (with --harness), module, model,
    /// instructions or approval policy. Its conversations go on under the
    /// new settings from their full history.
    Set {
        /// Slug or id.
        agent: String,
        /// Another model binding.
        #[arg(long)]
        model: Option<String>,
        /// Other system instructions.
        #[arg(long)]
        instructions: Option<String>,
        /// Another approval policy.
        #[arg(long, value_parser = parse_approval)]
        approval: Option<ApprovalPolicy>,
        /// Another module (the typescript harness).
        #[arg(long, value_name = "FILE")]
        module: Option<PathBuf>,
        /// Withdraw the standing permission ("always") of this tool: it is
        /// asked about again. Repeatable.
        #[arg(long, value_name = "TOOL")]
        revoke: Vec<String>,
    },
    /// List agents.
    List,
    /// Show one agent.
    Show {
        /// Slug or id.
        agent: String,
    },
    /// Delete an agent and its conversations.
    Delete {
        /// Slug or id.
        agent: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConversationCommand {
    /// Create a conversation.
    Create {
        /// The agent (slug or id).
        agent: String,
        /// Display name; the slug derives from it.
        name: String,
        /// Slug to use instead of the derived one.
        #[arg(long)]
        slug: Option<String>,
        /// Bind the conversation to this workspace directory.
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
    /// List an agent's conversations.
    List {
        /// The agent (slug or id).
        agent: String,
    },
    /// Show one conversation.
    Show(ConversationRef),
    /// Delete a conversation.
    Delete(ConversationRef),
    /// Print the conversation's history.
    Events {
        #[command(flatten)]
        target: ConversationRef,
        /// Only events of this kind.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<EventKind>,
        /// Only this session's events.
        #[arg(long)]
        session: Option<SessionId>,
        /// Only this turn's events.
        #[arg(long)]
        turn: Option<TurnId>,
        /// Only events after this one.
        #[arg(long, value_name = "EVENT_ID", conflicts_with = "before")]
        after: Option<EventId>,
        /// Only events before this one.
        #[arg(long, value_name = "EVENT_ID")]
        before: Option<EventId>,
        /// Newest first.
        #[arg(long)]
        desc: bool,
        /// At most this many events (one page); all when absent.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: Option<u32>,
    },
    /// Print one event the conversation can reach.
    Event {
        #[command(flatten)]
        target: ConversationRef,
        /// The event's id.
        event: EventId,
    },
    /// Append newline-delimited JSON events from stdin as one atomic batch.
    Append {
        #[command(flatten)]
        target: ConversationRef,
        /// Fail with a conflict unless the head is this event.
        #[arg(long, value_name = "EVENT_ID")]
        expected_head: Option<EventId>,
    },
    /// Fork a conversation at an event (its head by default).
    Fork {
        #[command(flatten)]
        target: ConversationRef,
        /// The fork's name.
        name: Option<String>,
        /// The event to fork at.
        #[arg(long, value_name = "EVENT_ID")]
        at: Option<EventId>,
        /// The fork's slug.
        #[arg(long)]
        slug: Option<String>,
        /// Materialise the fork point's snapshot into this new directory and
        /// bind the fork to it.
        #[arg(long, value_name = "NEW_DIR")]
        workspace: Option<PathBuf>,
    },
    /// Run one turn with the agent's built-in executor and print the answer
    /// (--json: the turn's result and events). Without a terminal to ask,
    /// calls the agent's policy would ask about are denied. Exits non-zero
    /// unless the turn completes.
    Send {
        #[command(flatten)]
        target: ConversationRef,
        /// The prompt; `-` reads it from stdin.
        prompt: String,
        /// The most model calls the turn may make.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        max_rounds: Option<u32>,
    },
    /// Move the conversation's head to an earlier event, or forward again to
    /// one it rewound away from.
    Rewind {
        #[command(flatten)]
        target: ConversationRef,
        /// The event to move the head to.
        #[arg(long, value_name = "EVENT_ID")]
        to: EventId,
        /// Fail with a conflict unless the head is this event.
        #[arg(long, value_name = "EVENT_ID")]
        expected_head: Option<EventId>,
        /// Rewind only the conversation; leave the workspace's files alone.
        #[arg(long)]
        no_files: bool,
        /// Overwrite workspace changes made since the latest snapshot (a
        /// safety snapshot keeps them).
        #[arg(long)]
        force: bool,
    },
}

fn parse_kind(text: &str) -> Result<EventKind, String> {
    text.parse::<EventKind>().map_err(|err| err.0)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SecretKindArg {
    /// One opaque key (the value as given).
    ApiKey,
    /// A JSON object {"access_token", "refresh_token"?, "expires_at"?}.
    Oauth,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret from an environment variable, --value, or stdin.
    Set {
        /// The secret's name.
        name: String,
        /// Catches a value typed as an argument, so that it is refused
        /// without being echoed.
        #[arg(hide = true)]
        stray: Option<String>,
        /// Read the value from this environment variable (its name, e.g.
        /// OPENAI_API_KEY).
        #[arg(long, value_name = "VAR", conflicts_with = "value")]
        env: Option<String>,
        /// The value itself (visible in your shell history; prefer --env or
        /// stdin).
        #[arg(long)]
        value: Option<String>,
        /// What kind of secret the value is.
        #[arg(long, value_enum, default_value = "api-key")]
        kind: SecretKindArg,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List secrets at a scope (names only).
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show a secret's metadata (never its value).
    Show {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a secret.
    Delete {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Register a model: a name agents use, bound to a provider, base URL,
    /// upstream model name and secret.
    Register {
        /// The name agents use.
        name: String,
        /// The API's wire format.
        #[arg(long, default_value = "openai", value_parser = parse_provider)]
        provider: Provider,
        /// The API's base URL (default: the provider's).
        #[arg(long)]
        base_url: Option<String>,
        /// The model's name at the provider (default: NAME).
        #[arg(long)]
        upstream: Option<String>,
        /// The secret holding the API key.
        #[arg(long)]
        secret: Option<String>,
        /// How many tokens the model takes in one request; the built-in
        /// executor compacts a history that approaches it (default: the
        /// provider's, see spec/models.md).
        #[arg(long, value_name = "TOKENS")]
        context_window: Option<u64>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List models registered at a scope.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show the model a name resolves to from a scope.
    Show {
        /// The model's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a model registered at a scope.
    Delete {
        /// The model's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

fn parse_approval(text: &str) -> Result<ApprovalPolicy, String> {
    text.parse::<ApprovalPolicy>().map_err(|err| err.0)
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    text.parse::<Provider>().map_err(|err| err.0)
}

#[derive(Debug, Subcommand)]
pub enum BindingCommand {
    /// Bind an environment variable to a secret.
    Env {
        /// The environment variable.
        var: String,
        /// The secret's name.
        #[arg(long)]
        secret: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Bind an MCP server to a URL and, optionally, a secret.
    Mcp {
        /// The server's name.
        name: String,
        /// Its URL.
        #[arg(long)]
        url: String,
        /// The secret sent as its bearer token.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List bindings at a scope.
    List {
        /// Only this kind (env, mcp, model).
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show the binding a name resolves to from a scope.
    Show {
        /// env, mcp or model.
        kind: String,
        /// The binding's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a binding at a scope.
    Delete {
        /// env, mcp or model.
        kind: String,
        /// The binding's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Store a new version of an artifact from FILE or stdin.
    Put {
        #[command(flatten)]
        target: ConversationRef,
        /// The artifact's path, e.g. notes/plan.md.
        path: String,
        /// The file to read; stdin when absent or "-".
        file: Option<PathBuf>,
        /// Its media type.
        #[arg(long)]
        media_type: Option<String>,
    },
    /// Write an artifact's bytes to stdout (or --output), as of the head.
    Get {
        #[command(flatten)]
        target: ConversationRef,
        /// The artifact's path.
        path: String,
        /// A specific version.
        #[arg(long)]
        version: Option<u64>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List current artifacts, or every version of one path.
    List {
        #[command(flatten)]
        target: ConversationRef,
        /// List every version of this path.
        #[arg(long)]
        path: Option<String>,
    },
}
