//! Command-line arguments: the one definition behind `--help` and parsing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use exo_core::{ApprovalPolicy, EventId, EventKind, Provider, SessionId, TurnId};

/// exo keeps coding agents' sessions (Codex, Claude Code, your own) in a
/// durable log, with the workspace's files, so you can stop, resume, fork
/// and rewind them without losing work.
#[derive(Debug, Parser)]
#[command(name = "exo", version, max_term_width = 100)]
pub struct Cli {
    /// The exo root holding the store (default: the nearest `.exo` holding
    /// a store, from the current directory up; else `./.exo`).
    #[arg(long, global = true, env = "EXO_ROOT", value_name = "PATH")]
    pub root: Option<PathBuf>,
    /// Print JSON instead of text: one document, or one object per line
    /// for commands that follow a conversation.
    #[arg(long, global = true)]
    pub json: bool,
    /// When to colour the output: auto (on a terminal, unless NO_COLOR is
    /// set), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    pub color: ColorChoice,
    /// The executor that runs an agent's turns, for `agent create` and
    /// `agent set`: builtin (exo's own loop), typescript (a module of
    /// yours, with --module), codex and claude-code (the real CLIs, with
    /// exo's gateway), cursor (the Cursor SDK).
    #[arg(long, global = true, value_enum, value_name = "HARNESS")]
    pub harness: Option<HarnessArg>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--color` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The `--harness` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HarnessArg {
    /// exo's own coding loop.
    Builtin,
    /// A TypeScript module (`export default defineHarness(...)`), run by
    /// `@exo/harness`.
    Typescript,
    /// OpenAI's Codex CLI (`codex app-server`); needs an OpenAI model.
    Codex,
    /// Anthropic's Claude Code CLI (`claude -p`); needs an Anthropic model.
    ClaudeCode,
    /// The Cursor SDK, as a TypeScript harness; the model's secret is the
    /// Cursor key.
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
    /// Create, list, show, change and delete agents.
    #[command(
        subcommand,
        after_help = "Examples:
  exo agent create Coder --model gpt-5.4 --approval ask
  exo agent list"
    )]
    Agent(AgentCommand),
    /// Create, inspect, follow, fork, rewind and export conversations.
    #[command(
        subcommand,
        alias = "conv",
        after_help = "Examples:
  exo conversation create coder main --workspace .
  exo conversation send coder main 'Add a test for parse()'
  exo conversation watch
  exo conversation tree"
    )]
    Conversation(ConversationCommand),
    /// Pick the conversation later commands use when AGENT CONV are left
    /// out; without arguments, show it.
    #[command(after_help = "Examples:
  exo use coder main
  exo conversation send 'Run the tests'   # goes to coder/main
  exo use --clear")]
    Use(UseArgs),
    /// Talk to an agent: an interactive session with its executor.
    #[command(
        subcommand,
        after_help = "Examples:
  exo chat repl coder main"
    )]
    Chat(ChatCommand),
    /// Show or cancel a turn.
    #[command(
        subcommand,
        after_help = "Examples:
  exo turn show
  exo turn cancel"
    )]
    Turn(TurnCommand),
    /// List the questions running turns wait on, and answer them.
    #[command(
        subcommand,
        after_help = "Examples:
  exo approval list
  exo approval respond 01a1fd96-...31e8 call_1 allow-once"
    )]
    Approval(ApprovalCommand),
    /// Snapshot a conversation's workspace, compare snapshots, restore one.
    #[command(
        subcommand,
        after_help = "Examples:
  exo snapshot list
  exo snapshot diff --diff
  exo snapshot restore 3f9c2a1 --dry-run"
    )]
    Snapshot(SnapshotCommand),
    /// See, start, stop, snapshot and remove the conversations' sandboxes,
    /// and run commands in them.
    #[command(
        subcommand,
        after_help = "Examples:
  exo sandbox list
  exo sandbox exec coder main -- apt-get install -y jq
  exo sandbox snapshot coder main
  exo sandbox rm coder main"
    )]
    Sandbox(SandboxCommand),
    /// Pick a conversation up: head, last turn, workspace drift.
    #[command(
        subcommand,
        after_help = "Examples:
  exo session resume coder main"
    )]
    Session(SessionCommand),
    /// Store and read versioned artifacts of a conversation.
    #[command(
        subcommand,
        after_help = "Examples:
  exo artifact put notes/plan.md plan.md
  exo artifact get notes/plan.md"
    )]
    Artifact(ArtifactCommand),
    /// Register the models agents can use.
    #[command(
        subcommand,
        after_help = "Examples:
  exo model register gpt-5.4 --secret openai
  exo model list"
    )]
    Model(ModelCommand),
    /// Store encrypted secrets; values are never printed.
    #[command(
        subcommand,
        after_help = "Examples:
  exo secret set openai --env OPENAI_API_KEY
  exo secret list"
    )]
    Secret(SecretCommand),
    /// Bind environment variables and MCP servers to secrets.
    #[command(
        subcommand,
        after_help = "Examples:
  exo binding env GITHUB_TOKEN --secret github
  exo binding list"
    )]
    Binding(BindingCommand),
    /// Run the daemon (JSON-RPC over a Unix socket, or stdio), or ask about
    /// a running one.
    #[command(after_help = "Examples:
  exo daemon &            # serve this root on .exo/exo.sock
  exo daemon status
  exo daemon stop")]
    Daemon(DaemonArgs),
    /// Run Claude Code's or Codex's own interface with exo underneath: the
    /// key stays in exo, each turn is recorded and snapshotted, and the
    /// session resumes from the conversation's log (after a rewind or fork
    /// too).
    #[command(after_help = "Examples:
  exo run claude                         # a new conversation for this directory
  exo run claude --continue              # the newest one here
  exo run codex --conversation fix-tests -- --model gpt-5.4")]
    Run {
        /// The agent CLI (`claude` or `codex`).
        #[arg(value_name = "CLI")]
        cli: String,
        /// The agent to run as (default: the conversation in use's, else
        /// the agent named as the CLI, `claude` or `codex`).
        #[arg(long)]
        agent: Option<String>,
        /// Continue this conversation.
        #[arg(long, value_name = "CONV")]
        conversation: Option<String>,
        /// Continue the agent's newest conversation in this directory.
        #[arg(long = "continue")]
        continue_last: bool,
        /// Arguments for the CLI itself, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Serve the Agent Client Protocol on stdio, for editors (Zed,
    /// JetBrains, Neovim, Emacs): each ACP session is an exo conversation.
    #[command(after_help = "Example:
  exo acp --agent coder   # what an editor starts (the README shows Zed's and CodeCompanion's settings)")]
    Acp {
        /// The agent new sessions belong to (default: the conversation in
        /// use's, else the only agent).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Serve one conversation's history to an agent over MCP (stdio): its
    /// events, artifacts, snapshots and branches, and nothing else.
    #[command(after_help = "Example:
  exo mcp --agent coder --conversation main   # what an MCP client starts")]
    Mcp {
        /// The agent (default: EXO_MCP_AGENT, else the conversation in use's).
        #[arg(long, env = "EXO_MCP_AGENT")]
        agent: Option<String>,
        /// The conversation (default: EXO_MCP_CONVERSATION, else the one in
        /// use).
        #[arg(long, env = "EXO_MCP_CONVERSATION")]
        conversation: Option<String>,
        /// Offer `put_artifact`, which stores artifacts in the conversation.
        #[arg(long)]
        allow_write: bool,
    },
    /// Hands an agent CLI hook's input to `exo run` (used by `exo run`).
    #[command(hide = true)]
    Hook {
        /// The socket `exo run` listens on.
        #[arg(long)]
        socket: PathBuf,
    },
    /// Remove snapshot objects no live conversation can reach.
    #[command(after_help = "Example:
  exo gc")]
    Gc,
    /// Check the store, the key, the daemon and the optional parts (Node,
    /// pnpm, the agent CLIs, Docker, bubblewrap), each with a fix.
    #[command(after_help = "Example:
  exo doctor")]
    Doctor,
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  exo completions bash > ~/.local/share/bash-completion/completions/exo
  exo completions zsh > ~/.zfunc/_exo
  exo completions fish > ~/.config/fish/completions/exo.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print exo's man page (roff), or write one page per command into a
    /// directory.
    #[command(after_help = "Examples:
  exo man > ~/.local/share/man/man1/exo.1
  exo man --dir ~/.local/share/man/man1   # exo.1, exo-agent.1, exo-agent-create.1, ...")]
    Man {
        /// Write a page for every command into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `exo use`.
#[derive(Debug, Args)]
pub struct UseArgs {
    /// The agent (slug or id).
    #[arg(requires = "conversation", conflicts_with = "clear")]
    pub agent: Option<String>,
    /// The conversation (slug or id).
    pub conversation: Option<String>,
    /// Forget the current conversation.
    #[arg(long)]
    pub clear: bool,
}

#[derive(Debug, Subcommand)]
pub enum TurnCommand {
    /// Show a turn (the conversation's last one by default): its status,
    /// times and events.
    #[command(
        override_usage = "exo turn show [OPTIONS] [AGENT CONV] [TURN]",
        after_help = "Examples:
  exo turn show                 # the current conversation's last turn
  exo turn show coder main 01a1fd29-...db19"
    )]
    Show {
        /// [AGENT CONV] [TURN]: the conversation (the current one when left
        /// out) and the turn's id.
        #[arg(value_name = "ARGS", num_args = 0..=3)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
        turn: Option<TurnId>,
    },
    /// Cancel a running turn (the conversation's open one by default).
    #[command(
        override_usage = "exo turn cancel [OPTIONS] [AGENT CONV] [TURN]",
        after_help = "Example:
  exo turn cancel               # the current conversation's running turn"
    )]
    Cancel {
        /// [AGENT CONV] [TURN]: the conversation (the current one when left
        /// out) and the turn's id.
        #[arg(value_name = "ARGS", num_args = 0..=3)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
        turn: Option<TurnId>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List the calls waiting for an answer (of one conversation with
    /// AGENT CONV; all by default).
    #[command(after_help = "Example:
  exo approval list")]
    List {
        /// The agent (slug or id).
        #[arg(requires = "conversation")]
        agent: Option<String>,
        /// The conversation (slug or id).
        conversation: Option<String>,
    },
    /// Answer a waiting call.
    #[command(after_help = "Examples:
  exo approval respond 01a1fd96-...31e8 call_1 allow-once
  exo approval respond 01a1fd96-...31e8 call_2 deny")]
    Respond {
        /// The turn (as `approval list` shows it).
        turn: TurnId,
        /// The call's id.
        call_id: String,
        /// The answer.
        #[arg(value_enum)]
        decision: DecisionArg,
    },
}

/// `approval respond` decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DecisionArg {
    /// Run this call.
    AllowOnce,
    /// Run this call and the same tool for the rest of the turn.
    AllowTurn,
    /// Run this call and the same tool in every later turn of the agent.
    AllowAlways,
    /// Refuse this call; the model is told the user declined it.
    Deny,
}

impl DecisionArg {
    /// The decision as the protocol names it.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionArg::AllowOnce => "allow_once",
            DecisionArg::AllowTurn => "allow_turn",
            DecisionArg::AllowAlways => "allow_always",
            DecisionArg::Deny => "deny",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// List this root's docker sandboxes: their conversation, image and
    /// state.
    #[command(after_help = "Example:
  exo sandbox list")]
    List,
    /// Remove a conversation's docker sandbox (what it changed since its
    /// last snapshot goes); its next command makes it again from the
    /// newest snapshot on the history.
    #[command(after_help = "Example:
  exo sandbox rm coder main")]
    Rm(ConversationRef),
    /// Make a conversation's docker sandbox now, from the newest snapshot
    /// on its history or its agent's image.
    #[command(after_help = "Example:
  exo sandbox create coder main")]
    Create(ConversationRef),
    /// Start a conversation's docker sandbox (made first when missing).
    #[command(after_help = "Example:
  exo sandbox start coder main")]
    Start(ConversationRef),
    /// Stop a conversation's docker sandbox, keeping its files; its next
    /// command starts it again.
    #[command(after_help = "Example:
  exo sandbox stop coder main")]
    Stop(ConversationRef),
    /// Run a command in a conversation's sandbox (whichever its agent
    /// uses), as the agent's shell tool would; the step is recorded.
    #[command(after_help = "Examples:
  exo sandbox exec coder main -- apt-get install -y jq
  exo sandbox exec -- 'ls /usr/local/bin | wc -l'   # the conversation in use")]
    Exec {
        #[command(flatten)]
        target: ConversationRef,
        /// Seconds before it is killed (default 120, at most 600).
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
        timeout: Option<u64>,
        /// The command, after `--`; its words are joined with spaces and
        /// run by `/bin/sh -c`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Snapshot a conversation's docker sandbox now (what it changed
    /// outside the workspace), recorded at the head of its history.
    #[command(after_help = "Example:
  exo sandbox snapshot coder main")]
    Snapshot(ConversationRef),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot the conversation's workspace now.
    #[command(after_help = "Example:
  exo snapshot take coder main")]
    Take(ConversationRef),
    /// List the snapshots on the conversation's history, newest first.
    #[command(after_help = "Example:
  exo snapshot list --limit 5")]
    List {
        #[command(flatten)]
        target: ConversationRef,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show what changed: between two snapshots, or since one (the latest
    /// by default) on disk.
    #[command(after_help = "Examples:
  exo snapshot diff --diff              # since the latest snapshot
  exo snapshot diff --from 3f9c2a1 --to 9d0e4b2")]
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
    #[command(
        override_usage = "exo snapshot restore [OPTIONS] [AGENT CONV] SNAPSHOT",
        after_help = "Examples:
  exo snapshot list
  exo snapshot restore 3f9c2a1 --dry-run --diff
  exo snapshot restore coder main 3f9c2a1"
    )]
    Restore {
        /// [AGENT CONV] SNAPSHOT: the conversation (the current one when
        /// left out) and a snapshot commit (or prefix) or its event id.
        #[arg(value_name = "ARGS", num_args = 1..=3, required = true)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
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
    /// Print one file as a snapshot holds it (its bytes, unchanged).
    #[command(
        override_usage = "exo snapshot show [OPTIONS] [AGENT CONV] SNAPSHOT PATH",
        after_help = "Examples:
  exo snapshot show 3f9c2a1 src/main.rs
  exo snapshot show coder main 01a1fd29-...2689 README.md > README.before.md"
    )]
    Show {
        /// [AGENT CONV] SNAPSHOT PATH: the conversation (the current one
        /// when left out), a snapshot commit (or prefix) or its event id,
        /// and the file's workspace-relative path.
        #[arg(value_name = "ARGS", num_args = 2..=4, required = true)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
        snapshot: String,
        #[arg(skip)]
        path: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Read prompts (and /commands) line by line and run a turn for each,
    /// streaming the answer. Ctrl-C cancels a running turn; Ctrl-D or /quit
    /// leaves.
    #[command(after_help = "Examples:
  exo chat repl coder main
  exo chat repl                         # the conversation in use")]
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
    #[command(after_help = "Example:
  exo session resume coder main")]
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
    #[command(after_help = "Example:
  exo daemon status --json")]
    Status,
    /// Stop the running daemon gracefully.
    #[command(after_help = "Example:
  exo daemon stop")]
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

/// An agent and one of its conversations, by slug or id; both left out
/// for the conversation in use (`exo use`). Empty until filled in by
/// [`crate::current`] when left out.
#[derive(Debug, Args, Clone, Default)]
pub struct ConversationRef {
    /// The agent (slug or id); leave out AGENT and CONV for the
    /// conversation in use (`exo use`).
    #[arg(
        value_name = "AGENT",
        default_value = "",
        hide_default_value = true,
        requires = "conversation"
    )]
    pub agent: String,
    /// The conversation (slug or id).
    #[arg(value_name = "CONV", default_value = "", hide_default_value = true)]
    pub conversation: String,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent.
    #[command(after_help = "Examples:
  exo agent create Coder --model gpt-5.4 --approval ask
  exo --harness typescript agent create 'TS Basic' --module examples/typescript/basic-harness.ts --model gpt-5.4")]
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
        #[arg(long, value_enum)]
        approval: Option<ApprovalArg>,
        /// Slug to use instead of the derived one.
        #[arg(long)]
        slug: Option<String>,
        /// With `--harness typescript`: the module that default-exports
        /// `defineHarness(...)`. It is loaded once to check it.
        #[arg(long, value_name = "FILE")]
        module: Option<PathBuf>,
        /// Where its shell commands run: in a bubblewrap sandbox (local),
        /// a container of the conversation's own (docker), or on the host
        /// (none).
        /// [default: local]
        #[arg(long, value_enum)]
        sandbox: Option<SandboxArg>,
        /// The image a docker sandbox is created from.
        /// [default: exo/base:bookworm]
        #[arg(long)]
        image: Option<String>,
        /// Whether its sandboxed commands may reach the network.
        /// [default: off]
        #[arg(long, value_enum)]
        network: Option<Switch>,
        /// Where the sandbox cannot run: run commands on the host instead
        /// (on), or refuse them (off).
        /// [default: off]
        #[arg(long, value_enum)]
        sandbox_fallback: Option<Switch>,
    },
    /// Change an agent's harness (with --harness), module, model,
    /// instructions or approval policy. Its conversations go on under the
    /// new settings from their full history.
    #[command(after_help = "Examples:
  exo agent set coder --approval auto
  exo agent set coder --sandbox local --network off
  exo agent set coder --revoke shell")]
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
        #[arg(long, value_enum)]
        approval: Option<ApprovalArg>,
        /// Another module (the typescript harness).
        #[arg(long, value_name = "FILE")]
        module: Option<PathBuf>,
        /// Where its shell commands run: in a bubblewrap sandbox (local),
        /// a container of the conversation's own (docker), or on the host
        /// (none).
        /// [default: local]
        #[arg(long, value_enum)]
        sandbox: Option<SandboxArg>,
        /// The image a docker sandbox is created from.
        /// [default: exo/base:bookworm]
        #[arg(long)]
        image: Option<String>,
        /// Whether its sandboxed commands may reach the network.
        /// [default: off]
        #[arg(long, value_enum)]
        network: Option<Switch>,
        /// Where the sandbox cannot run: run commands on the host instead
        /// (on), or refuse them (off).
        /// [default: off]
        #[arg(long, value_enum)]
        sandbox_fallback: Option<Switch>,
        /// Withdraw the standing permission ("always") of this tool: it is
        /// asked about again. Repeatable.
        #[arg(long, value_name = "TOOL")]
        revoke: Vec<String>,
    },
    /// List agents.
    #[command(after_help = "Example:
  exo agent list")]
    List,
    /// Show one agent.
    #[command(after_help = "Example:
  exo agent show coder")]
    Show {
        /// Slug or id.
        agent: String,
    },
    /// Delete an agent and its conversations.
    #[command(after_help = "Example:
  exo agent delete coder")]
    Delete {
        /// Slug or id.
        agent: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConversationCommand {
    /// Create a conversation.
    #[command(after_help = "Example:
  exo conversation create coder main --workspace .")]
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
    #[command(after_help = "Example:
  exo conversation list coder")]
    List {
        /// The agent (slug or id).
        agent: String,
    },
    /// Show one conversation.
    #[command(after_help = "Example:
  exo conversation show coder main")]
    Show(ConversationRef),
    /// Delete a conversation.
    #[command(after_help = "Example:
  exo conversation delete coder main")]
    Delete(ConversationRef),
    /// Print the conversation's history.
    #[command(after_help = "Examples:
  exo conversation events coder main --kind message
  exo conversation events --follow      # then new ones, live")]
    Events {
        #[command(flatten)]
        target: ConversationRef,
        /// Only events of this kind.
        #[arg(long, value_parser = event_kind_parser())]
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
        /// Then keep printing new events as they are recorded (through the
        /// daemon), until Ctrl-C.
        #[arg(long, short = 'f', conflicts_with_all = ["desc", "before", "limit"])]
        follow: bool,
    },
    /// Follow a conversation live: its last events, then new events and
    /// turn text as they happen (through the daemon), until Ctrl-C.
    #[command(after_help = "Examples:
  exo conversation watch                 # the conversation in use
  exo conversation watch coder main --all
  exo conversation watch --json | jq .kind")]
    Watch {
        #[command(flatten)]
        target: ConversationRef,
        /// Replay the events after this one first.
        #[arg(long, value_name = "EVENT_ID", conflicts_with_all = ["all", "last"])]
        after: Option<EventId>,
        /// Replay the whole history first.
        #[arg(long, conflicts_with = "last")]
        all: bool,
        /// Replay this many of the latest events first (at most 10000; --all
        /// for the whole history).
        #[arg(long, value_name = "N", default_value_t = 10,
              value_parser = clap::value_parser!(u32).range(0..=10_000))]
        last: u32,
    },
    /// Print one event the conversation can reach.
    #[command(override_usage = "exo conversation event [OPTIONS] [AGENT CONV] EVENT_ID")]
    #[command(after_help = "Example:
  exo conversation event coder main 01a1fd29-...2689")]
    Event {
        /// [AGENT CONV] EVENT_ID.
        #[arg(value_name = "ARGS", num_args = 1..=3, required = true)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
        event: Option<EventId>,
    },
    /// Append newline-delimited JSON events from stdin as one atomic batch.
    #[command(after_help = "Example:
  echo '{\"kind\":\"message\",\"role\":\"user\",\"content\":\"hi\"}' | exo conversation append coder main")]
    Append {
        #[command(flatten)]
        target: ConversationRef,
        /// Fail with a conflict unless the head is this event.
        #[arg(long, value_name = "EVENT_ID")]
        expected_head: Option<EventId>,
    },
    /// Fork a conversation at an event (its head by default).
    #[command(
        override_usage = "exo conversation fork [OPTIONS] [AGENT CONV] [NAME]",
        after_help = "Examples:
  exo conversation fork coder main 'try sqlite' --at 01a1fd29-...2689
  exo conversation fork --workspace ../try-sqlite   # the current conversation, files too"
    )]
    Fork {
        /// [AGENT CONV] [NAME]: the conversation (the current one when left
        /// out) and the fork's name.
        #[arg(value_name = "ARGS", num_args = 0..=3)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
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
    /// Run one turn with the agent's harness and print the answer (--json:
    /// the turn's result and events). Without a terminal to ask,
    /// calls the agent's policy would ask about are denied. Exits non-zero
    /// unless the turn completes.
    #[command(
        override_usage = "exo conversation send [OPTIONS] [AGENT CONV] PROMPT",
        after_help = "Examples:
  exo conversation send coder main 'Add a test for parse()'
  git diff | exo conversation send coder main -
  exo conversation send 'Now run it'   # the conversation in use"
    )]
    Send {
        /// [AGENT CONV] PROMPT: the conversation (the current one when left
        /// out) and the prompt (`-` reads it from stdin).
        #[arg(value_name = "ARGS", num_args = 1..=3, required = true)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
        prompt: String,
        /// The most model calls the turn may make.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        max_rounds: Option<u32>,
    },
    /// Draw the conversation's history as a graph: the current line, the
    /// branches rewinds left behind (with their heads, to redo), and the
    /// forks taken from it.
    #[command(after_help = "Examples:
  exo conversation tree coder main
  exo conversation tree --json")]
    Tree {
        #[command(flatten)]
        target: ConversationRef,
    },
    /// Write a self-contained record of the conversation (messages, tool
    /// calls and results, each turn's file changes) to stdout or a file.
    #[command(after_help = "Examples:
  exo conversation export coder main --format html -o session.html
  exo conversation export --format md > session.md")]
    Export {
        #[command(flatten)]
        target: ConversationRef,
        /// md (Markdown), html (one page, no server needed) or jsonl (one
        /// event per line).
        #[arg(long, value_enum, default_value = "md")]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Move the conversation's head to an earlier event, or forward again to
    /// one it rewound away from (redo); the workspace's files follow.
    #[command(after_help = "Examples:
  exo conversation rewind coder main --at 01a1fd29-...2689
  exo conversation rewind --at 01a1fd29-...2689 --dry-run   # the files it would write
  exo conversation tree    # shows the heads rewinds left behind, to redo")]
    Rewind {
        #[command(flatten)]
        target: ConversationRef,
        /// The event to move the head to.
        #[arg(long = "at", visible_alias = "to", value_name = "EVENT_ID")]
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
        /// Show which files the rewind would write, and whether it would be
        /// refused; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The `conversation export` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Markdown.
    Md,
    /// One HTML page, styles inline.
    Html,
    /// One JSON event per line, as `conversation events --json` holds them.
    Jsonl,
}

/// `--kind`: the event kinds, listed in `--help` and in errors.
fn event_kind_parser() -> impl clap::builder::TypedValueParser<Value = EventKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(EventKind::ALL.map(EventKind::as_str))
        .try_map(|text| text.parse::<EventKind>().map_err(|err| err.0))
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
    #[command(after_help = "Examples:
  exo secret set openai --env OPENAI_API_KEY
  pass show openai | exo secret set openai")]
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
    #[command(after_help = "Example:
  exo secret list --agent coder")]
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show a secret's metadata (never its value).
    #[command(after_help = "Example:
  exo secret show openai")]
    Show {
        /// The secret's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a secret.
    #[command(after_help = "Example:
  exo secret delete openai")]
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
    #[command(after_help = "Examples:
  exo model register gpt-5.4 --secret openai
  exo model register local --provider openai-chat --base-url http://localhost:11434/v1 --upstream qwen3")]
    Register {
        /// The name agents use.
        name: String,
        /// The API's wire format.
        #[arg(long, value_enum, default_value = "openai")]
        provider: ProviderArg,
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
    #[command(after_help = "Example:
  exo model list")]
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show the model a name resolves to from a scope.
    #[command(after_help = "Example:
  exo model show gpt-5.4 --agent coder")]
    Show {
        /// The model's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a model registered at a scope.
    #[command(after_help = "Example:
  exo model delete local")]
    Delete {
        /// The model's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

/// `--approval` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ApprovalArg {
    /// Run it.
    Auto,
    /// Ask an attached client; with none to ask, deny.
    Ask,
    /// Refuse it; the model is told so.
    Deny,
}

impl ApprovalArg {
    /// The policy it names.
    pub fn policy(self) -> ApprovalPolicy {
        match self {
            ApprovalArg::Auto => ApprovalPolicy::Auto,
            ApprovalArg::Ask => ApprovalPolicy::Ask,
            ApprovalArg::Deny => ApprovalPolicy::Deny,
        }
    }
}

/// `--sandbox` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SandboxArg {
    /// On the host, as you.
    None,
    /// In a bubblewrap sandbox: the workspace read-write, the rest of the
    /// system read-only, exo's root, the key and your home out of sight.
    Local,
    /// In a container of the conversation's own (Docker), the workspace
    /// bind-mounted.
    Docker,
}

impl SandboxArg {
    /// The mode it names.
    pub fn mode(self) -> exo_core::SandboxMode {
        match self {
            SandboxArg::None => exo_core::SandboxMode::None,
            SandboxArg::Local => exo_core::SandboxMode::Local,
            SandboxArg::Docker => exo_core::SandboxMode::Docker,
        }
    }
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Yes.
    On,
    /// No.
    Off,
}

impl Switch {
    /// Whether it is on.
    pub fn on(self) -> bool {
        self == Switch::On
    }
}

/// `--provider` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// OpenAI Responses API.
    Openai,
    /// OpenAI Chat Completions (also OpenRouter, Ollama, vLLM, llama.cpp).
    OpenaiChat,
    /// Anthropic Messages API.
    Anthropic,
    /// No network: replays a JSON script of responses (tests, the demo).
    Scripted,
}

impl ProviderArg {
    /// The provider it names.
    pub fn provider(self) -> Provider {
        match self {
            ProviderArg::Openai => Provider::OpenAi,
            ProviderArg::OpenaiChat => Provider::OpenAiChat,
            ProviderArg::Anthropic => Provider::Anthropic,
            ProviderArg::Scripted => Provider::Scripted,
        }
    }
}

/// Binding kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BindingKindArg {
    /// An environment variable bound to a secret.
    Env,
    /// An MCP server.
    Mcp,
    /// A model.
    Model,
    /// An HTTP host's credential.
    Http,
}

impl BindingKindArg {
    /// The kind as the protocol names it.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKindArg::Env => "env",
            BindingKindArg::Mcp => "mcp",
            BindingKindArg::Model => "model",
            BindingKindArg::Http => "http",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BindingCommand {
    /// Bind an environment variable to a secret.
    #[command(after_help = "Example:
  exo binding env GITHUB_TOKEN --secret github --agent coder")]
    Env {
        /// The environment variable.
        var: String,
        /// The secret's name.
        #[arg(long)]
        secret: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Bind an MCP server: one exo calls over HTTP, or one it starts; its
    /// tools are offered to the agent as mcp__NAME__TOOL.
    #[command(after_help = "Examples:
  exo binding mcp docs --url https://mcp.example.com/mcp --secret docs-token
  exo binding mcp issues --secret gh --env GITHUB_TOKEN -- node issues-server.mjs")]
    #[command(group(clap::ArgGroup::new("server").required(true).args(["url", "command"])))]
    Mcp {
        /// The server's name.
        name: String,
        /// Its Streamable HTTP endpoint.
        #[arg(long, conflicts_with = "env")]
        url: Option<String>,
        /// The secret handed to the server (never to the agent): the bearer
        /// token, the --header, or the --env variable.
        #[arg(long)]
        secret: Option<String>,
        /// With --url: send the secret in this header, as it is, instead of
        /// `Authorization: Bearer`.
        #[arg(long, requires = "url")]
        header: Option<String>,
        /// With a command: the environment variable the server gets the
        /// secret in.
        #[arg(long, requires = "secret")]
        env: Option<String>,
        /// The program and arguments exo starts, after `--`.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Bind a credential to an HTTP host: the egress proxy the agent's
    /// commands go through adds it to their requests for that host, and
    /// the agent never sees it.
    #[command(after_help = "Examples:
  exo binding http api.github.com --secret gh --scheme token
  exo binding http api.example.com --secret example --header X-Api-Key
  exo binding http 127.0.0.1:8080 --secret local --plain-http

A command then calls https://HOST/PATH or http://HOST/PATH (curl, or
anything that reads HTTPS_PROXY/HTTP_PROXY); exo adds the credential on
the way out.")]
    Http {
        /// The host, HOST or HOST:PORT, as commands ask for it.
        host: String,
        /// The secret holding the credential.
        #[arg(long)]
        secret: String,
        /// The header it goes in (default: Authorization).
        #[arg(long)]
        header: Option<String>,
        /// The word before the secret in the header (default: Bearer for
        /// Authorization, none for another header).
        #[arg(long)]
        scheme: Option<String>,
        /// Call the host over plain http, not https (a service on this
        /// machine or a private network).
        #[arg(long)]
        plain_http: bool,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List bindings at a scope.
    #[command(after_help = "Example:
  exo binding list --kind env")]
    List {
        /// Only this kind.
        #[arg(long, value_enum)]
        kind: Option<BindingKindArg>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show the binding a name resolves to from a scope.
    #[command(after_help = "Example:
  exo binding show env GITHUB_TOKEN --agent coder")]
    Show {
        /// The binding's kind.
        #[arg(value_enum)]
        kind: BindingKindArg,
        /// The binding's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a binding at a scope.
    #[command(after_help = "Example:
  exo binding delete mcp docs")]
    Delete {
        /// The binding's kind.
        #[arg(value_enum)]
        kind: BindingKindArg,
        /// The binding's name.
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Store a new version of an artifact from FILE or stdin.
    #[command(
        override_usage = "exo artifact put [OPTIONS] [AGENT CONV] PATH [FILE]",
        after_help = "Examples:
  exo artifact put coder main notes/plan.md plan.md
  echo done | exo artifact put status.txt   # the conversation in use, from stdin"
    )]
    Put {
        /// [AGENT CONV] PATH [FILE]: the conversation (the current one when
        /// left out), the artifact's path (e.g. notes/plan.md) and the file
        /// to read (stdin when absent or "-").
        #[arg(value_name = "ARGS", num_args = 1..=4, required = true)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
        path: String,
        #[arg(skip)]
        file: Option<PathBuf>,
        /// Its media type.
        #[arg(long)]
        media_type: Option<String>,
    },
    /// Write an artifact's bytes to stdout (or --output), as of the head.
    #[command(
        override_usage = "exo artifact get [OPTIONS] [AGENT CONV] PATH",
        after_help = "Example:
  exo artifact get coder main notes/plan.md -o plan.md"
    )]
    Get {
        /// [AGENT CONV] PATH: the conversation (the current one when left
        /// out) and the artifact's path.
        #[arg(value_name = "ARGS", num_args = 1..=3, required = true)]
        words: Vec<String>,
        #[arg(skip)]
        target: ConversationRef,
        #[arg(skip)]
        path: String,
        /// A specific version.
        #[arg(long)]
        version: Option<u64>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List current artifacts, or every version of one path.
    #[command(after_help = "Examples:
  exo artifact list coder main
  exo artifact list --path notes/plan.md   # every version")]
    List {
        #[command(flatten)]
        target: ConversationRef,
        /// List every version of this path.
        #[arg(long)]
        path: Option<String>,
    },
}

/// The commands of `exo --help`, by task. Every command is in one group
/// (a test checks it).
const GROUPS: &[(&str, &[&str])] = &[
    (
        "Agents and their conversations",
        &["agent", "conversation", "use"],
    ),
    (
        "Run and follow turns",
        &["chat", "run", "acp", "mcp", "turn", "approval"],
    ),
    (
        "Files and history",
        &["snapshot", "sandbox", "session", "artifact"],
    ),
    ("Models and secrets", &["model", "secret", "binding"]),
    ("Upkeep", &["daemon", "gc", "doctor", "completions", "man"]),
];

/// The command line's definition: the derived one, with `exo --help`
/// listing the commands by task. Parsing, completions and the man page all
/// come from it.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let command = Cli::command();
    let width = command
        .get_subcommands()
        .map(|sub| sub.get_name().len())
        .max()
        .unwrap_or(0);
    let mut listed = String::new();
    for (title, names) in GROUPS {
        listed.push_str(&format!("{title}:\n"));
        for name in *names {
            let about = command
                .find_subcommand(name)
                .and_then(|sub| sub.get_about())
                .map(|about| about.to_string())
                .unwrap_or_default();
            listed.push_str(&format!("  {name:<width$}  {about}\n"));
        }
        listed.push('\n');
    }
    // Braces in the listing would read as template tags.
    let listed = listed.replace('{', "(").replace('}', ")");
    command
        .help_template(format!(
            "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{listed}Options:\n{{options}}{{after-help}}"
        ))
        .after_help(
            "Examples:
  exo agent create Coder --model gpt-5.4
  exo conversation create coder main --workspace .
  exo use coder main
  exo chat repl                 # talk; Ctrl-C cancels a turn
  exo conversation watch        # in another terminal: follow it live
  exo conversation tree         # forks, rewinds and what redo brings back
  exo conversation rewind --at EVENT_ID

`exo COMMAND --help` shows each command's examples.",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_listed_by_task_once() {
        use clap::CommandFactory;
        let mut listed: Vec<&str> = GROUPS
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .collect();
        let mut defined: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .map(|sub| sub.get_name().to_string())
            .filter(|name| name != "help")
            .collect();
        listed.sort_unstable();
        defined.sort_unstable();
        assert_eq!(listed, defined);
    }

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }
}
