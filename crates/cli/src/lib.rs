//! The `exo` command line: argument parsing, one JSON-RPC call per step,
//! and output.
//!
//! Every command is a call to the service layer (`exo-service`): in-process
//! when no daemon runs on the root, over the daemon's socket when one does.
//! Text is rendered from the call's result, and `--json` prints the result
//! itself, so both paths print the same bytes.
//!
//! Exit status: 0 on success, 1 with a one-line `exo: ...` error on stderr
//! on failure, 2 on usage errors (from clap), 3 when a restore or rewind
//! was done but left some paths alone (listed on stdout, and counted in a
//! one-line `exo: ...` on stderr).

#![allow(clippy::print_stdout)]

mod acp;
mod args;
mod backend;
mod chat;
mod current;
mod doctor;
mod export;
mod files;
mod mcp;
mod render;
mod root;
mod run;
mod startup;
mod style;
mod tree;
mod watch;

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::FromArgMatches;
use exo_core::{EventData, Provider};
use exo_protocol::methods::*;
use exo_protocol::{Agent, Artifact, BindingEntry, Conversation, Event, Method, Secret};
use exo_store::OpenMode;
use serde_json::{json, Value};

use crate::args::{
    AgentCommand, ApprovalCommand, ArtifactCommand, BindingCommand, ChatCommand, Cli, Command,
    ConversationCommand, ConversationRef, DaemonArgs, DaemonCommand, ModelCommand, ScopeArgs,
    SecretCommand, SecretKindArg, SessionCommand, SnapshotCommand, TurnCommand, UseArgs,
};
use crate::backend::Backend;
use crate::render::{binding_line, event_line, table};
use exo_rpc::message::Json;

/// The most `conversation append` and `artifact put` read from stdin.
const MAX_STDIN_BYTES: u64 = 32 << 20;

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    // The egress forwarder, run inside a sandbox ahead of a command: it
    // needs nothing of exo's but its own code (spec/sandboxes.md).
    let mut argv = std::env::args_os().skip(1);
    let first = argv.next();
    if first.as_deref() == Some(exo_sandbox::egress::FORWARD_ARG.as_ref()) {
        let args: Vec<std::ffi::OsString> = argv.collect();
        let code = exo_sandbox::egress::forward(&args);
        return ExitCode::from(u8::try_from(code).unwrap_or(125));
    }
    // Likewise the local sandbox's limiter, which becomes the command.
    if first.as_deref() == Some(exo_sandbox::limits::LIMIT_ARG.as_ref()) {
        let args: Vec<std::ffi::OsString> = argv.collect();
        let code = exo_sandbox::limits::limit(&args);
        return ExitCode::from(u8::try_from(code).unwrap_or(125));
    }
    let cli = match Cli::from_arg_matches_mut(&mut args::command().get_matches()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    style::init(cli.color);
    // These need no root.
    match &cli.command {
        Command::Completions { shell } => return finish(completions(*shell)),
        Command::Hook { socket } => return finish(run::hook(socket)),
        Command::Man { dir } => {
            // Never into a store's root (as no output file goes there).
            let guarded = match (dir, root::resolve(cli.root.clone(), false)) {
                (Some(dir), Ok(root)) => {
                    files::refuse_inside_root(&root, dir, "the man pages' directory")
                }
                _ => Ok(()),
            };
            return finish(guarded.and_then(|()| man(dir.as_deref())));
        }
        _ => {}
    }
    // Before anything else (no thread runs yet): the commands that run
    // tools start again without secrets in their environment.
    let runs_tools = matches!(
        &cli.command,
        Command::Daemon(DaemonArgs { command: None, .. })
            | Command::Chat(ChatCommand::Repl { .. })
            | Command::Conversation(ConversationCommand::Send { .. })
            | Command::Run { .. }
            | Command::Acp { .. }
            | Command::Sandbox(crate::args::SandboxCommand::Exec { .. })
    );
    if let Err(err) = startup::isolate(runs_tools) {
        let message = format!("{err:#}").replace('\n', " ");
        let _ = writeln!(std::io::stderr(), "exo: {message}");
        return ExitCode::FAILURE;
    }
    let log_file = match &cli.command {
        Command::Daemon(DaemonArgs {
            command: None,
            log_file,
            ..
        }) => log_file.clone(),
        _ => None,
    };
    let result = root::resolve_for(cli.root.clone(), &cli.command).and_then(|root| {
        log_file
            .as_deref()
            .map_or(Ok(()), |path| {
                files::refuse_inside_root(&root, path, "the log file")
            })
            .and_then(|()| init_tracing(log_file.as_deref()))
            .and_then(|()| run(cli, &root))
    });
    finish(result)
}

/// The exit status of a command's outcome; a failure is one line on stderr.
fn finish(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<run::ChildExit>() => ExitCode::from(
            err.downcast_ref::<run::ChildExit>()
                .map_or(1, |exit| exit.0),
        ),
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "{} {}",
                style::Paint::Red.err("exo:"),
                one_line(&err)
            );
            if err.is::<PartialRestore>() {
                ExitCode::from(PARTIAL_RESTORE)
            } else if err.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `exo completions SHELL`.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = args::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "exo", &mut script);
    write_stdout(&script)
}

/// `exo man [--dir DIR]`.
fn man(dir: Option<&std::path::Path>) -> Result<()> {
    let command = args::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the man page")?;
            write_stdout(&page)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            println!("wrote man pages into {}", dir.display());
            Ok(())
        }
    }
}

/// Writes bytes to stdout; a closed pipe is not an error.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// An error and its causes as one line, `a: b: c`, leaving out a cause
/// whose words an outer message already carries (many errors put their
/// source in their own message and also return it as the source).
fn one_line(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message.replace('\n', " ")
}

/// A command line that does not say what it means (too few or too many
/// words, a word that is not an id): exit status 2, as clap's own usage
/// errors.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit status of a restore (or rewind) that left paths alone.
const PARTIAL_RESTORE: u8 = 3;

/// A restore or rewind happened, but left some paths alone: not a failure
/// (the result is printed, the conversation moved), but not a clean
/// success either, so scripts notice.
#[derive(Debug)]
struct PartialRestore(String);

impl std::fmt::Display for PartialRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PartialRestore {}

/// `Err(PartialRestore)` when a real restore left paths alone.
fn check_partial(result: &RestoreResult) -> Result<()> {
    if !result.written || (result.conflicts.is_empty() && result.skipped.is_empty()) {
        return Ok(());
    }
    const SHOWN: usize = 10;
    let mut paths: Vec<&str> = result
        .conflicts
        .iter()
        .map(|c| c.path.as_str())
        .chain(result.skipped.iter().map(|s| s.path.as_str()))
        .collect();
    paths.sort_unstable();
    let total = paths.len();
    let mut listed = paths[..total.min(SHOWN)].join(", ");
    if total > SHOWN {
        listed.push_str(&format!(" and {} more", total - SHOWN));
    }
    Err(PartialRestore(format!(
        "partial restore: {total} path{} left alone (changed during the restore, or something exo does not capture in the way): {listed}; everything else was restored",
        if total == 1 { "" } else { "s" }
    ))
    .into())
}

/// Logs go to stderr (never stdout, which may carry the protocol), or to a
/// file; filtered by `EXO_LOG` or `RUST_LOG` (default `warn`).
fn init_tracing(log_file: Option<&std::path::Path>) -> Result<()> {
    let filter = std::env::var("EXO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    let builder =
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter));
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
        None => {
            // Colours only for a terminal: a redirected stderr (a log
            // file, a pipe, a test) gets plain lines.
            let _ = builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
    Ok(())
}

/// Where output goes, and in which form.
struct Out {
    json: bool,
}

impl Out {
    /// Prints `json` (given as text) pretty-printed, or `text()` as text.
    fn emit_json(&self, json: &Json, text: impl FnOnce() -> String) -> Result<()> {
        if !self.json {
            return self.emit(&Value::Null, text);
        }
        let stdout = std::io::stdout();
        let mut writer = std::io::BufWriter::new(stdout.lock());
        let mut deserializer = serde_json::Deserializer::from_str(json.get());
        deserializer.disable_recursion_limit();
        let mut serializer = serde_json::Serializer::pretty(&mut writer);
        let written = serde_transcode::transcode(&mut deserializer, &mut serializer)
            .map_err(std::io::Error::other)
            .and_then(|()| writer.write_all(b"\n"))
            .and_then(|()| writer.flush());
        match written {
            // A closed pipe (`exo ... | head`) is not an error.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }

    /// Prints `value` as JSON, or `text()` as text.
    fn emit(&self, value: &Value, text: impl FnOnce() -> String) -> Result<()> {
        let output = if self.json {
            serde_json::to_string_pretty(value)?
        } else {
            text()
        };
        if output.is_empty() {
            return Ok(());
        }
        match writeln!(std::io::stdout().lock(), "{output}") {
            // A closed pipe (`exo ... | head`) is not an error.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }
}

/// Runs the command on `root`, found by [`root::resolve`].
fn run(cli: Cli, root: &std::path::Path) -> Result<()> {
    let out = Out { json: cli.json };
    let harness = cli.harness;
    if harness.is_some()
        && !matches!(
            cli.command,
            Command::Agent(AgentCommand::Create { .. } | AgentCommand::Set { .. })
        )
    {
        bail!("--harness is for `exo agent create` and `exo agent set`");
    }
    let mut command = cli.command;
    // AGENT CONV left out: the conversation in use.
    current::fill(&mut command, || current::read(root))?;
    let command = match command {
        Command::Daemon(args) => return daemon(root, &out, args),
        Command::Doctor => return doctor::run(root, &out),
        Command::Acp { agent } => return acp::run(root, agent),
        Command::Mcp {
            agent,
            conversation,
            allow_write,
        } => {
            let current = || crate::current::read(root).ok().flatten();
            let (agent, conversation) = match (agent, conversation) {
                (Some(agent), Some(conversation)) => (agent, conversation),
                (None, None) => match current() {
                    Some(current) => (current.agent, current.conversation),
                    None => {
                        return Err(UsageError(
                            "exo mcp needs --agent and --conversation (or a conversation in use: exo use)"
                                .into(),
                        )
                        .into())
                    }
                },
                _ => {
                    return Err(UsageError(
                        "exo mcp needs both --agent and --conversation".into(),
                    )
                    .into())
                }
            };
            return mcp::run(
                root,
                mcp::McpArgs {
                    agent,
                    conversation,
                    allow_write,
                },
            );
        }
        Command::Run {
            cli,
            agent,
            conversation,
            continue_last,
            args,
        } => {
            return run::run(
                root,
                run::RunArgs {
                    cli,
                    agent,
                    conversation,
                    continue_last,
                    args,
                },
            )
        }
        // These hold a connection to the daemon open, and follow.
        Command::Conversation(ConversationCommand::Watch {
            target,
            after,
            all,
            last,
        }) => {
            let start = match (after, all) {
                (Some(event), _) => watch::Start::After(event),
                (None, true) => watch::Start::All,
                (None, false) => watch::Start::Last(last),
            };
            return watch::run(root, &out, &target, start, watch::Filter::default(), true);
        }
        Command::Conversation(ConversationCommand::Events {
            target,
            kind,
            session,
            turn,
            after,
            follow: true,
            ..
        }) => {
            let start = after.map_or(watch::Start::All, watch::Start::After);
            let filter = watch::Filter {
                kind,
                session,
                turn,
            };
            return watch::run(root, &out, &target, start, filter, false);
        }
        // These hold a connection open for the turn's notifications.
        Command::Chat(ChatCommand::Repl { target, max_rounds }) => {
            return chat::repl(root, &target.agent, &target.conversation, max_rounds)
        }
        Command::Conversation(ConversationCommand::Send {
            target,
            prompt,
            max_rounds,
            ..
        }) => {
            return chat::send(
                root,
                &out,
                &target.agent,
                &target.conversation,
                prompt,
                max_rounds,
            )
        }
        command => command,
    };
    if let Command::Use(UseArgs { clear: true, .. }) = command {
        let cleared = current::clear(root)?;
        return out.emit(&json!({ "cleared": cleared }), || {
            if cleared {
                "no conversation in use now".to_string()
            } else {
                "no conversation was in use".to_string()
            }
        });
    }
    // Commands that only read never create a store.
    let mut backend = if root::creates_store(&command) {
        Backend::open(root, OpenMode::Create)?
    } else if root::empty_without_store(&command) {
        Backend::open_reading(root)?
    } else {
        Backend::open(root, OpenMode::Existing)?
    };
    let backend = &mut backend;
    match command {
        Command::Use(args) => use_conversation(backend, root, &out, args),
        Command::Turn(command) => turn(backend, &out, command),
        Command::Approval(command) => approval(backend, &out, command),
        Command::Agent(command) => agent(backend, &out, command, harness),
        Command::Conversation(command) => conversation(backend, root, &out, command),
        Command::Secret(command) => secret(backend, &out, command),
        Command::Model(command) => model(backend, &out, command),
        Command::Binding(command) => binding(backend, &out, command),
        Command::Artifact(command) => artifact(backend, root, &out, command),
        Command::Snapshot(command) => snapshot(backend, &out, command),
        Command::Sandbox(command) => sandbox(backend, &out, command),
        Command::Session(SessionCommand::Resume(target)) => resume(backend, &out, target),
        Command::Gc => {
            let (value, report) =
                style::progress("collecting unreachable snapshot objects", || {
                    backend.call_as::<GcResult>(Gc::NAME, json!({}))
                })?;
            out.emit(&value, || {
                format!(
                    "gc: {} workspaces, {} objects kept of {}, {} bytes freed, {} sandbox images removed",
                    report.workspaces,
                    report.objects_after,
                    report.objects_before,
                    report.bytes_freed,
                    report.sandbox_images
                )
            })
        }
        Command::Daemon(_)
        | Command::Chat(_)
        | Command::Doctor
        | Command::Acp { .. }
        | Command::Mcp { .. }
        | Command::Run { .. }
        | Command::Hook { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => unreachable!("handled above"),
    }
}

fn daemon(root: &std::path::Path, out: &Out, args: DaemonArgs) -> Result<()> {
    match args.command {
        None => {
            // The async side only moves bytes: one thread, so a request
            // never wakes a second core. Store work runs on a small,
            // bounded blocking pool (the store is serialised anyway).
            let runtime = tokio::runtime::Builder::new_current_thread()
                .max_blocking_threads(4)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let options = exo_daemon::daemon::Options {
                root: root.to_path_buf(),
                socket: args.socket,
                stdio: args.stdio,
            };
            let outcome = runtime.block_on(exo_daemon::daemon::run(options));
            // The store is closed by now; a blocking task stuck on a path a
            // user gave (it should not exist, but one must never keep the
            // daemon from exiting) is left behind.
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            Ok(outcome?)
        }
        Some(DaemonCommand::Status) => {
            let mut backend = running_daemon(root)?;
            let (value, status) =
                backend.call_as::<DaemonStatus>(DaemonStatusMethod::NAME, json!({}))?;
            out.emit(&value, || {
                format!(
                    "exo daemon running for {}\npid: {}\nsocket: {}\nversion: {} (protocol {})\nuptime: {}s\nconnections: {}",
                    status.root,
                    status.pid,
                    status.socket.as_deref().unwrap_or("-"),
                    status.version,
                    status.protocol_version,
                    status.uptime_seconds,
                    status.connections
                )
            })
        }
        Some(DaemonCommand::Stop) => {
            let mut backend = running_daemon(root)?;
            let info = exo_daemon::daemon::running(root);
            backend.call(DaemonStop::NAME, json!({}))?;
            // Wait until the daemon has let go of the root.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while exo_daemon::daemon::running(root).is_some() {
                if std::time::Instant::now() > deadline {
                    bail!("the daemon did not stop within 60 s");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let pid = info.map_or(0, |info| info.pid);
            out.emit(&json!({ "stopped": true, "pid": pid }), || {
                format!("stopped exo daemon (pid {pid})")
            })
        }
    }
}

fn running_daemon(root: &std::path::Path) -> Result<Backend> {
    if exo_daemon::daemon::running(root).is_none() {
        bail!("no exo daemon is running for {}", root.display());
    }
    Backend::open(root, OpenMode::Existing)
}

fn scope_params(scope: &ScopeArgs) -> Value {
    json!({ "agent": scope.agent, "conversation": scope.conversation })
}

/// Merges `extra` into a params object, leaving out nulls.
fn params(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra.into_iter().filter(|(_, v)| !v.is_null()));
    }
    if let Value::Object(object) = &mut base {
        object.retain(|_, v| !v.is_null());
    }
    base
}

fn agent(
    backend: &mut Backend,
    out: &Out,
    command: AgentCommand,
    harness: Option<crate::args::HarnessArg>,
) -> Result<()> {
    match command {
        AgentCommand::Create {
            name,
            model,
            instructions,
            approval,
            slug,
            module,
            sandbox,
            image,
            network,
            sandbox_fallback,
        } => {
            let module = module.map(|path| absolute_module(&path)).transpose()?;
            let request = params(
                json!({ "name": name, "approval": approval.map(|a| a.policy()) }),
                json!({ "model": model, "instructions": instructions, "slug": slug,
                        "harness": harness.map(|h| h.harness()), "module": module,
                        "sandbox": sandbox.map(|s| s.mode()), "image": image, "network": network.map(|n| n.on()),
                        "sandbox_fallback": sandbox_fallback.map(|f| f.on()) }),
            );
            let (value, agent) = backend.call_as::<Agent>(AgentCreate::NAME, request)?;
            out.emit(&value, || {
                format!(
                    "created agent {} ({}), harness {}",
                    agent.slug,
                    agent.id,
                    harness_of(&agent)
                )
            })
        }
        AgentCommand::Set {
            agent,
            model,
            instructions,
            approval,
            module,
            sandbox,
            image,
            network,
            sandbox_fallback,
            revoke,
        } => {
            let module = module.map(|path| absolute_module(&path)).transpose()?;
            let revoke = (!revoke.is_empty()).then_some(revoke);
            let request = params(
                json!({ "agent": agent }),
                json!({ "model": model, "instructions": instructions, "approval": approval.map(|a| a.policy()),
                        "harness": harness.map(|h| h.harness()), "module": module,
                        "sandbox": sandbox.map(|s| s.mode()), "image": image, "network": network.map(|n| n.on()),
                        "sandbox_fallback": sandbox_fallback.map(|f| f.on()),
                        "revoke": revoke }),
            );
            let (value, agent) = backend.call_as::<Agent>(AgentSet::NAME, request)?;
            out.emit(&value, || {
                let config = exo_core::AgentConfig::from_map(&agent.config).unwrap_or_default();
                let allowed = if config.allow.is_empty() {
                    String::new()
                } else {
                    format!("; allowed always: {}", config.allow.join(", "))
                };
                format!(
                    "agent {} now runs on harness {}{allowed}",
                    agent.slug,
                    harness_of(&agent)
                )
            })
        }
        AgentCommand::List => {
            let (value, list) = backend.call_as::<AgentList>(AgentListMethod::NAME, json!({}))?;
            out.emit(&value, || {
                let mut rows = vec![vec![
                    "SLUG".into(),
                    "NAME".into(),
                    "MODEL".into(),
                    "HARNESS".into(),
                    "ID".into(),
                ]];
                rows.extend(list.agents.iter().map(|a| {
                    let model = a.config.get("model").and_then(Value::as_str).unwrap_or("-");
                    vec![
                        a.slug.clone(),
                        a.name.clone(),
                        model.to_string(),
                        harness_of(a),
                        a.id.to_string(),
                    ]
                }));
                table(rows)
            })
        }
        AgentCommand::Show { agent } => {
            let (value, agent) =
                backend.call_as::<Agent>(AgentGet::NAME, json!({ "agent": agent }))?;
            out.emit(&value, || {
                let config = exo_core::AgentConfig::from_map(&agent.config).unwrap_or_default();
                let mut lines = vec![
                    format!("{} ({})", agent.slug, agent.id),
                    format!("name: {}", agent.name),
                    format!("harness: {}", harness_of(&agent)),
                ];
                if let Some(module) = &config.module {
                    lines.push(format!("module: {module}"));
                }
                lines.push(format!("model: {}", config.model.as_deref().unwrap_or("-")));
                lines.push(format!("approval: {}", config.approval));
                lines.push(format!(
                    "sandbox: {}{}, network {}{}",
                    config.sandbox.as_str(),
                    config
                        .image
                        .as_deref()
                        .map_or_else(String::new, |image| format!(" ({image})")),
                    if config.network { "on" } else { "off" },
                    if config.sandbox_fallback {
                        ", host where it cannot run"
                    } else {
                        ""
                    }
                ));
                if !config.allow.is_empty() {
                    lines.push(format!("allowed always: {}", config.allow.join(", ")));
                }
                if let Some(instructions) = &config.instructions {
                    lines.push(format!("instructions: {}", one_line_text(instructions)));
                }
                lines.push(format!("created: {}", agent.created_at));
                crate::render::printable(&lines.join("\n"))
            })
        }
        AgentCommand::Delete { agent } => {
            let (value, agent) =
                backend.call_as::<Agent>(AgentDelete::NAME, json!({ "agent": agent }))?;
            out.emit(&value, || format!("deleted agent {}", agent.slug))
        }
    }
}

/// An agent's harness, as shown.
fn harness_of(agent: &Agent) -> String {
    agent
        .config
        .get("harness")
        .and_then(Value::as_str)
        .unwrap_or("builtin")
        .to_string()
}

/// Instructions on one line, shortened.
fn one_line_text(text: &str) -> String {
    let line = text.replace('\n', " ");
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line
    }
}

/// A module's path as the service needs it: absolute (a daemon's working
/// directory is not ours).
fn absolute_module(path: &std::path::Path) -> Result<String> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("module {}", path.display()))?;
    Ok(absolute.display().to_string())
}

fn conversation(
    backend: &mut Backend,
    root: &std::path::Path,
    out: &Out,
    command: ConversationCommand,
) -> Result<()> {
    match command {
        ConversationCommand::Send { .. } | ConversationCommand::Watch { .. } => {
            unreachable!("handled in run")
        }
        ConversationCommand::Create {
            agent,
            name,
            slug,
            workspace,
        } => {
            // Resolved here: a daemon's working directory is not ours.
            let workspace = workspace
                .map(|dir| {
                    std::fs::canonicalize(&dir)
                        .with_context(|| format!("workspace {}", dir.display()))
                })
                .transpose()?;
            let request = params(
                json!({ "agent": agent, "name": name }),
                json!({ "slug": slug, "workspace": workspace.map(|w| w.display().to_string()) }),
            );
            let (value, conv) =
                backend.call_as::<Conversation>(ConversationCreate::NAME, request)?;
            out.emit(&value, || {
                format!("created conversation {} ({})", conv.slug, conv.id)
            })
        }
        ConversationCommand::List { agent } => {
            let (value, list) = backend.call_as::<ConversationList>(
                ConversationListMethod::NAME,
                json!({ "agent": agent }),
            )?;
            out.emit(&value, || {
                let mut rows = vec![vec![
                    "SLUG".into(),
                    "NAME".into(),
                    "EVENTS".into(),
                    "HEAD".into(),
                ]];
                rows.extend(list.conversations.iter().map(|c| {
                    vec![
                        c.slug.clone(),
                        c.name.clone(),
                        c.length.to_string(),
                        c.head.to_string(),
                    ]
                }));
                table(rows)
            })
        }
        ConversationCommand::Show(target) => {
            let request = json!({ "agent": target.agent, "conversation": target.conversation });
            let (value, conv) =
                backend.call_as::<Conversation>(ConversationGet::NAME, request.clone())?;
            // The heads rewinds left behind: what redo brings back.
            // Only a conversation that was ever rewound has them, and then
            // its current history holds a `rewound` event (the last rewind
            // appends one; later events follow it): one indexed look first,
            // the whole tree only then.
            let rewound = !out.json && {
                let (_, page) = backend.call_as::<EventPage>(
                    EventsList::NAME,
                    params(request.clone(), json!({ "kind": "rewound", "limit": 1 })),
                )?;
                !page.events.is_empty()
            };
            let abandoned: Vec<exo_core::EventId> = if !rewound {
                Vec::new()
            } else {
                let (_, tree) =
                    backend.call_as::<ConversationTree>(ConversationTreeMethod::NAME, request)?;
                tree.branches
                    .iter()
                    .filter(|branch| !branch.current)
                    .map(|branch| branch.head)
                    .collect()
            };
            out.emit(&value, || {
                let mut lines = vec![
                    format!("{} ({})", conv.slug, conv.id),
                    format!("name: {}", conv.name),
                    format!("events: {}", conv.length),
                    format!("head: {}", conv.head),
                ];
                if let Some(from) = &conv.forked_from {
                    lines.push(format!(
                        "forked from: {} at {}",
                        from.conversation, from.event
                    ));
                }
                if let Some(workspace) = &conv.workspace {
                    lines.push(format!("workspace: {workspace}"));
                }
                if let Some(turn) = conv.open_turn {
                    lines.push(format!("turn in progress: {turn}"));
                }
                if !abandoned.is_empty() {
                    lines.push(format!(
                        "abandoned heads (redo with `exo conversation rewind --at ID`): {}",
                        abandoned
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                lines.push(format!("created: {}", conv.created_at));
                crate::render::printable(&lines.join("\n"))
            })
        }
        ConversationCommand::Delete(target) => {
            let request = json!({ "agent": target.agent, "conversation": target.conversation });
            let (value, conv) =
                backend.call_as::<Conversation>(ConversationDelete::NAME, request)?;
            out.emit(&value, || format!("deleted conversation {}", conv.slug))
        }
        ConversationCommand::Events {
            target,
            kind,
            session,
            turn,
            after,
            before,
            desc,
            limit,
            ..
        } => {
            let mut request = params(
                json!({ "agent": target.agent, "conversation": target.conversation, "desc": desc }),
                json!({
                    "kind": kind.map(|k| k.as_str()),
                    "session": session,
                    "turn": turn,
                    "after": after,
                    "before": before,
                    "limit": limit.unwrap_or(exo_store::MAX_PAGE as u32),
                }),
            );
            let mut events: Vec<Value> = Vec::new();
            let next_cursor = loop {
                let page = backend.call(EventsList::NAME, request.clone())?;
                let Value::Object(mut page) = page else {
                    bail!("unexpected result from events/list")
                };
                if let Some(Value::Array(batch)) = page.remove("events") {
                    events.extend(batch);
                }
                match page.remove("next_cursor") {
                    // One page when a limit was given; every page otherwise.
                    Some(Value::String(cursor)) if limit.is_none() => {
                        request[if desc { "before" } else { "after" }] = json!(cursor);
                    }
                    cursor => break cursor.unwrap_or(Value::Null),
                }
            };
            let value = json!({ "events": events, "next_cursor": next_cursor });
            out.emit(&value, || {
                let mut lines: Vec<String> = events
                    .iter()
                    .filter_map(|event| serde_json::from_value::<Event>(event.clone()).ok())
                    .map(|event| event_line(&event))
                    .collect();
                if let Value::String(cursor) = &next_cursor {
                    lines.push(format!(
                        "(more: --{} {cursor})",
                        if desc { "before" } else { "after" }
                    ));
                }
                lines.join("\n")
            })
        }
        ConversationCommand::Event { target, event, .. } => {
            let request = json!({ "agent": target.agent, "conversation": target.conversation, "event": event });
            let value = backend.call(EventsGet::NAME, request)?;
            out.emit(&value, || {
                serde_json::to_string_pretty(&value).unwrap_or_default()
            })
        }
        ConversationCommand::Append {
            target,
            expected_head,
        } => {
            let input = read_stdin("events")?;
            let text =
                std::str::from_utf8(&input).map_err(|err| anyhow!("stdin is not UTF-8: {err}"))?;
            // The params are written as text around the lines as given, each
            // checked first (so an error names its line): a large batch is
            // never a tree of values here.
            let mut events = String::with_capacity(text.len() + 2);
            let mut count = 0usize;
            for (index, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let value: Value = exo_rpc::message::from_str(line)
                    .map_err(|err| anyhow!("line {}: invalid JSON: {err}", index + 1))?;
                EventData::from_input_json(value)
                    .map_err(|err| anyhow!("line {}: {err}", index + 1))?;
                events.push(if count == 0 { '[' } else { ',' });
                events.push_str(line);
                count += 1;
            }
            if count == 0 {
                bail!("no events on stdin: give one JSON object per line, e.g. {{\"kind\":\"message\",\"role\":\"user\",\"content\":\"hi\"}}");
            }
            events.push(']');
            drop(input);
            let mut request = serde_json::to_string(&json!({
                "agent": target.agent,
                "conversation": target.conversation,
                "expected_head": expected_head,
                // The events come back only for --json.
                "return_events": out.json,
            }))?;
            request.pop();
            request.push_str(",\"events\":");
            request.push_str(&events);
            request.push('}');
            drop(events);
            let request = Json::from_text(&request)?;
            let result = backend.call_json(ConversationAppend::NAME, &request)?;
            drop(request);
            #[derive(serde::Deserialize)]
            struct Appended {
                head: exo_core::EventId,
                count: Option<u64>,
            }
            let appended: Appended = result.parse().map_err(|err| {
                anyhow!("unexpected result from {}: {err}", ConversationAppend::NAME)
            })?;
            out.emit_json(&result, || {
                format!(
                    "appended {} events; head is {}",
                    appended.count.unwrap_or(count as u64),
                    appended.head
                )
            })
        }
        ConversationCommand::Fork {
            target,
            name,
            at,
            slug,
            workspace,
            ..
        } => {
            // Resolved here: a daemon's working directory is not ours.
            let workspace = workspace.map(|dir| absolute(&dir)).transpose()?;
            let request = params(
                json!({ "agent": target.agent, "conversation": target.conversation }),
                json!({ "at": at, "name": name, "slug": slug, "workspace": workspace }),
            );
            let (value, fork) = style::progress("forking", || {
                backend.call_as::<Conversation>(ConversationFork::NAME, request)
            })?;
            out.emit(&value, || {
                let at = fork
                    .forked_from
                    .as_ref()
                    .map(|from| from.event.to_string())
                    .unwrap_or_default();
                format!(
                    "forked {} at {at} into {} ({})",
                    target.conversation, fork.slug, fork.id
                )
            })
        }
        ConversationCommand::Tree { target } => {
            crate::tree::run(backend, out.json, &target.agent, &target.conversation)
        }
        ConversationCommand::Export {
            target,
            format,
            output,
        } => crate::export::run(
            backend,
            root,
            &target.agent,
            &target.conversation,
            format,
            output.as_deref(),
        ),
        ConversationCommand::Rewind {
            target,
            to,
            expected_head,
            no_files,
            force,
            dry_run,
        } => {
            let request = params(
                json!({ "agent": target.agent, "conversation": target.conversation, "to": to, "force": force, "dry_run": dry_run }),
                json!({ "expected_head": expected_head, "files": if no_files { Some(false) } else { None } }),
            );
            let (value, outcome) = style::progress("rewinding", || {
                backend.call_as::<RewindResult>(ConversationRewind::NAME, request)
            })?;
            out.emit(&value, || {
                let mut lines = vec![match &outcome.event {
                    Some(event) => format!(
                        "rewound {} to {to}; recorded {} (head)",
                        outcome.conversation.slug, event.id
                    ),
                    None if dry_run && outcome.conversation.head != to => format!(
                        "would rewind {} to {to} (nothing changed)",
                        outcome.conversation.slug
                    ),
                    None => format!("{} is already at {to}", outcome.conversation.slug),
                }];
                if let Some(files) = &outcome.files {
                    lines.push(restore_summary(files));
                }
                lines.join(
                    "
",
                )
            })?;
            match &outcome.files {
                Some(files) => check_partial(files),
                None => Ok(()),
            }
        }
    }
}

fn read_stdin(what: &str) -> Result<Vec<u8>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("expected {what} on stdin; pipe them in");
    }
    let mut input = Vec::new();
    stdin
        .lock()
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut input)
        .context("reading stdin")?;
    if input.len() as u64 > MAX_STDIN_BYTES {
        bail!(
            "stdin is larger than the {} MiB limit",
            MAX_STDIN_BYTES >> 20
        );
    }
    Ok(input)
}

/// Whether an `--env` argument looks like a secret value rather than the
/// name of a variable. Such an argument is refused and never echoed.
fn looks_like_secret(text: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "sk-",
        "sk_",
        "pk-",
        "rk-",
        "ghp_",
        "gho_",
        "ghs_",
        "github_pat_",
        "xox",
        "glpat-",
        "AKIA",
        "AIza",
        "hf_",
        "eyJ",
    ];
    let is_variable_name = !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    !is_variable_name || PREFIXES.iter().any(|prefix| text.starts_with(prefix)) || text.len() > 64
}

fn secret(backend: &mut Backend, out: &Out, command: SecretCommand) -> Result<()> {
    match command {
        SecretCommand::Set {
            name,
            stray,
            env,
            value,
            kind,
            scope,
        } => {
            if stray.is_some() {
                bail!("secret values are not taken as arguments: use --env VAR, --value V or stdin; the argument was not stored or echoed");
            }
            if let Some(var) = &env {
                if looks_like_secret(var) {
                    bail!("--env takes the NAME of an environment variable (like OPENAI_API_KEY), and this argument looks like a secret value; it was not stored or echoed");
                }
            }
            let raw = zeroize::Zeroizing::new(match (env, value) {
                // Read through exo's own table: a variable moved out of
                // the process environment at start-up is found there.
                (Some(var), _) => match exo_secrets::environment::var_os(&var)
                    .map(std::ffi::OsString::into_string)
                {
                    Some(Ok(value)) if !value.is_empty() => value,
                    Some(Ok(_)) => bail!("environment variable {var} is empty"),
                    None => bail!("environment variable {var} is not set"),
                    Some(Err(_)) => bail!("environment variable {var} is not valid UTF-8"),
                },
                (None, Some(value)) => value,
                (None, None) => {
                    let bytes = zeroize::Zeroizing::new(read_stdin(
                        "the secret value (or use --env VAR / --value V)",
                    )?);
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|_| anyhow!("the secret on stdin is not UTF-8"))?;
                    text.trim_end_matches(['\n', '\r']).to_string()
                }
            });
            let kind = match kind {
                SecretKindArg::ApiKey => "api_key",
                SecretKindArg::Oauth => "oauth",
            };
            let request = params(
                json!({ "name": name, "value": raw.as_str(), "kind": kind }),
                scope_params(&scope),
            );
            let (value, info) = backend.call_as::<Secret>(SecretSet::NAME, request)?;
            out.emit(&value, || {
                format!("set secret {} ({})", info.name, info.scope)
            })
        }
        SecretCommand::List { scope } => {
            let (value, list) = backend.call_as::<SecretList>(
                SecretListMethod::NAME,
                params(json!({}), scope_params(&scope)),
            )?;
            out.emit(&value, || {
                let mut rows = vec![vec![
                    "NAME".into(),
                    "KIND".into(),
                    "SCOPE".into(),
                    "SET".into(),
                ]];
                rows.extend(list.secrets.iter().map(|s| {
                    vec![
                        s.name.clone(),
                        s.kind.as_str().to_string(),
                        s.scope.clone(),
                        s.created_at.clone(),
                    ]
                }));
                table(rows)
            })
        }
        SecretCommand::Show { name, scope } => {
            let request = params(json!({ "name": name }), scope_params(&scope));
            let (value, info) = backend.call_as::<Secret>(SecretGet::NAME, request)?;
            out.emit(&value, || {
                format!(
                    "{} ({}, {}), set {}; value hidden",
                    info.name,
                    info.kind.as_str(),
                    info.scope,
                    info.created_at
                )
            })
        }
        SecretCommand::Delete { name, scope } => {
            let request = params(json!({ "name": name }), scope_params(&scope));
            let (value, info) = backend.call_as::<Secret>(SecretDelete::NAME, request)?;
            out.emit(&value, || {
                format!("deleted secret {} ({})", info.name, info.scope)
            })
        }
    }
}

fn model(backend: &mut Backend, out: &Out, command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Register {
            name,
            provider,
            base_url,
            upstream,
            secret,
            context_window,
            scope,
        } => {
            let provider = provider.provider();
            // A scripted model's base URL names its script: a plain path is
            // taken from the current directory.
            let base_url = match base_url {
                Some(path) if provider == Provider::Scripted && !path.contains("://") => {
                    let path = std::path::absolute(&path)
                        .with_context(|| format!("resolving the script path {path}"))?;
                    Some(format!("file://{}", path.display()))
                }
                other => other,
            };
            let request = params(
                json!({ "name": name, "provider": provider }),
                params(
                    json!({
                        "base_url": base_url,
                        "upstream": upstream,
                        "secret": secret,
                        "context_window": context_window,
                    }),
                    scope_params(&scope),
                ),
            );
            let (value, entry) = backend.call_as::<BindingEntry>(ModelRegister::NAME, request)?;
            out.emit(&value, || {
                format!("registered model {}", binding_line(&entry))
            })
        }
        ModelCommand::List { scope } => {
            let (value, list) = backend.call_as::<ModelList>(
                ModelListMethod::NAME,
                params(json!({}), scope_params(&scope)),
            )?;
            out.emit(&value, || {
                let mut rows = vec![vec![
                    "NAME".into(),
                    "PROVIDER".into(),
                    "UPSTREAM".into(),
                    "BASE URL".into(),
                    "SECRET".into(),
                    "WINDOW".into(),
                ]];
                rows.extend(list.models.iter().filter_map(|entry| match &entry.binding {
                    exo_core::Binding::Model {
                        name,
                        provider,
                        base_url,
                        upstream,
                        secret,
                        context_window,
                    } => Some(vec![
                        name.clone(),
                        provider.to_string(),
                        upstream.clone(),
                        base_url.clone(),
                        secret.clone().unwrap_or_else(|| "-".into()),
                        context_window.map_or_else(|| "-".into(), |tokens| tokens.to_string()),
                    ]),
                    _ => None,
                }));
                table(rows)
            })
        }
        ModelCommand::Show { name, scope } => {
            let request = params(json!({ "name": name }), scope_params(&scope));
            let (value, entry) = backend.call_as::<BindingEntry>(ModelGet::NAME, request)?;
            out.emit(&value, || binding_line(&entry))
        }
        ModelCommand::Delete { name, scope } => {
            let request = params(json!({ "name": name }), scope_params(&scope));
            let (value, entry) = backend.call_as::<BindingEntry>(ModelDelete::NAME, request)?;
            out.emit(&value, || {
                format!("deleted model {} ({})", entry.binding.name(), entry.scope)
            })
        }
    }
}

fn binding_kind(kind: crate::args::BindingKindArg) -> Result<exo_core::BindingKind> {
    kind.as_str()
        .parse()
        .map_err(|err: exo_core::ValidationError| anyhow!(err.0))
}

fn binding(backend: &mut Backend, out: &Out, command: BindingCommand) -> Result<()> {
    match command {
        BindingCommand::Env { var, secret, scope } => {
            let request = params(
                json!({ "binding": { "type": "env", "name": var, "secret": secret } }),
                scope_params(&scope),
            );
            let (value, entry) = backend.call_as::<BindingEntry>(BindingSet::NAME, request)?;
            out.emit(&value, || format!("bound {}", binding_line(&entry)))
        }
        BindingCommand::Mcp {
            name,
            url,
            secret,
            header,
            env,
            command,
            scope,
        } => {
            let binding = params(
                json!({ "type": "mcp", "name": name, "command": command }),
                json!({ "url": url, "secret": secret, "header": header, "env": env }),
            );
            let request = params(json!({ "binding": binding }), scope_params(&scope));
            let (value, entry) = backend.call_as::<BindingEntry>(BindingSet::NAME, request)?;
            out.emit(&value, || format!("bound {}", binding_line(&entry)))
        }
        BindingCommand::Http {
            host,
            secret,
            header,
            scheme,
            plain_http,
            scope,
        } => {
            let binding = params(
                json!({ "type": "http", "name": host.to_ascii_lowercase(), "secret": secret }),
                json!({ "header": header, "scheme": scheme, "plain_http": plain_http.then_some(true) }),
            );
            let request = params(json!({ "binding": binding }), scope_params(&scope));
            let (value, entry) = backend.call_as::<BindingEntry>(BindingSet::NAME, request)?;
            out.emit(&value, || format!("bound {}", binding_line(&entry)))
        }
        BindingCommand::List { kind, scope } => {
            let kind = kind.map(binding_kind).transpose()?;
            let request = params(json!({ "kind": kind }), scope_params(&scope));
            let (value, list) = backend.call_as::<BindingList>(BindingListMethod::NAME, request)?;
            out.emit(&value, || {
                list.bindings
                    .iter()
                    .map(binding_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        BindingCommand::Show { kind, name, scope } => {
            let request = params(
                json!({ "kind": binding_kind(kind)?, "name": name }),
                scope_params(&scope),
            );
            let (value, entry) = backend.call_as::<BindingEntry>(BindingGet::NAME, request)?;
            out.emit(&value, || binding_line(&entry))
        }
        BindingCommand::Delete { kind, name, scope } => {
            let request = params(
                json!({ "kind": binding_kind(kind)?, "name": name }),
                scope_params(&scope),
            );
            let (value, entry) = backend.call_as::<BindingEntry>(BindingDelete::NAME, request)?;
            out.emit(&value, || {
                format!(
                    "deleted {} {} ({})",
                    entry.binding.kind(),
                    entry.binding.name(),
                    entry.scope
                )
            })
        }
    }
}

fn artifact(
    backend: &mut Backend,
    root: &std::path::Path,
    out: &Out,
    command: ArtifactCommand,
) -> Result<()> {
    match command {
        ArtifactCommand::Put {
            target,
            path,
            file,
            media_type,
            ..
        } => {
            let bytes = match file {
                Some(file) if file.as_os_str() != "-" => {
                    files::read_bounded(&file, exo_store::MAX_ARTIFACT_BYTES as u64, "artifact")?
                }
                _ => read_stdin("the artifact's bytes")?,
            };
            let request = params(
                json!({
                    "agent": target.agent,
                    "conversation": target.conversation,
                    "path": path,
                    "content_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
                }),
                json!({ "media_type": media_type }),
            );
            let (value, version) = backend.call_as::<Artifact>(ArtifactPut::NAME, request)?;
            out.emit(&value, || {
                format!(
                    "wrote {} v{} ({} bytes, sha256 {})",
                    version.path, version.version, version.size, version.sha256
                )
            })
        }
        ArtifactCommand::Get {
            target,
            path,
            version,
            output,
            ..
        } => {
            if let Some(output) = &output {
                files::refuse_inside_root(root, output, "the output file")?;
            }
            let request = params(
                json!({ "agent": target.agent, "conversation": target.conversation, "path": path }),
                json!({ "version": version }),
            );
            let (value, content) =
                backend.call_as::<ArtifactContent>(ArtifactGet::NAME, request)?;
            if out.json {
                return out.emit(&value, String::new);
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.content_base64.as_bytes())
                .context("decoding the artifact")?;
            if let Some(output) = output {
                files::write_atomically(&output, &bytes)?;
                return out.emit(&value, || {
                    format!(
                        "wrote {} v{} to {}",
                        content.artifact.path,
                        content.artifact.version,
                        output.display()
                    )
                });
            }
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
        ArtifactCommand::List { target, path } => {
            let request = params(
                json!({ "agent": target.agent, "conversation": target.conversation }),
                json!({ "path": path }),
            );
            let (value, list) =
                backend.call_as::<ArtifactList>(ArtifactListMethod::NAME, request)?;
            out.emit(&value, || {
                let mut rows = vec![vec![
                    "PATH".into(),
                    "VERSION".into(),
                    "SIZE".into(),
                    "SHA256".into(),
                ]];
                rows.extend(list.artifacts.iter().map(|a| {
                    vec![
                        a.path.clone(),
                        a.version.to_string(),
                        a.size.to_string(),
                        a.sha256[..16].to_string(),
                    ]
                }));
                table(rows)
            })
        }
    }
}

/// An absolute form of a path the caller gave, for a daemon whose working
/// directory is not ours (the path need not exist yet).
fn absolute(path: &std::path::Path) -> Result<String> {
    Ok(std::path::absolute(path)
        .with_context(|| format!("resolving {}", path.display()))?
        .display()
        .to_string())
}

/// Text for what a restore did.
fn restore_summary(result: &RestoreResult) -> String {
    let verb = if result.written {
        "restored"
    } else {
        "would restore"
    };
    let mut lines = vec![format!(
        "{verb} files to snapshot {} ({} paths)",
        render::short(&result.snapshot),
        result.changes.len()
    )];
    lines.extend(
        result
            .changes
            .iter()
            .map(|change| format!("  {:<12} {}", change.change, change.path)),
    );
    if !result.written && !result.conflicts.is_empty() {
        lines.push(format!(
            "refused without --force: changed since the latest snapshot: {}",
            result
                .conflicts
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if result.written {
        // One line per path left alone: the user's own work, kept.
        lines.extend(result.conflicts.iter().map(|conflict| {
            format!(
                "  {:<12} {}: {} during the restore, kept as it is",
                "left alone", conflict.path, conflict.change
            )
        }));
    }
    lines.extend(
        result
            .skipped
            .iter()
            .map(|skip| format!("  {:<12} {}: {}", "left alone", skip.path, skip.reason)),
    );
    if let Some(safety) = &result.safety {
        if let exo_core::EventData::WorkspaceSnapshot { commit, .. } = &safety.data {
            lines.push(format!(
                "safety snapshot {} is event {}: restore it (after a rewind: rewind back to it) to undo",
                render::short(commit),
                safety.id
            ));
        }
    }
    // Paths are whatever the workspace holds: escaped. The diff is the
    // files' own content, shown as git shows it.
    let mut text = render::printable(&lines.join("\n"));
    if let Some(diff) = &result.diff {
        text.push('\n');
        text.push_str(&style::diff(diff.trim_end()));
    }
    text
}

fn sandbox(backend: &mut Backend, out: &Out, command: crate::args::SandboxCommand) -> Result<()> {
    match command {
        crate::args::SandboxCommand::List => {
            let (value, list) =
                backend.call_as::<SandboxList>(SandboxListMethod::NAME, json!({}))?;
            out.emit(&value, || {
                if list.sandboxes.is_empty() {
                    return "no sandboxes".to_owned();
                }
                let mut rows = vec![vec![
                    "CONVERSATION".into(),
                    "CONTAINER".into(),
                    "IMAGE".into(),
                    "STATE".into(),
                ]];
                rows.extend(list.sandboxes.iter().map(|s| {
                    vec![
                        s.conversation.clone(),
                        s.container.clone(),
                        s.image.clone(),
                        s.state.clone(),
                    ]
                }));
                table(rows)
            })
        }
        crate::args::SandboxCommand::Rm(target) => {
            let request = json!({ "agent": target.agent, "conversation": target.conversation });
            let (value, removed) = backend.call_as::<SandboxRemoved>(SandboxRm::NAME, request)?;
            out.emit(&value, || {
                if removed.removed {
                    "removed the sandbox".to_owned()
                } else {
                    "no sandbox to remove".to_owned()
                }
            })
        }
        crate::args::SandboxCommand::Create(ref target)
        | crate::args::SandboxCommand::Start(ref target)
        | crate::args::SandboxCommand::Stop(ref target) => {
            let (method, doing) = match command {
                crate::args::SandboxCommand::Create(_) => {
                    (SandboxCreate::NAME, "making the sandbox")
                }
                crate::args::SandboxCommand::Start(_) => {
                    (SandboxStart::NAME, "starting the sandbox")
                }
                _ => (SandboxStop::NAME, "stopping the sandbox"),
            };
            let request = json!({ "agent": target.agent, "conversation": target.conversation });
            let (value, info) =
                style::progress(doing, || backend.call_as::<SandboxInfo>(method, request))?;
            out.emit(&value, || {
                format!("{}  {}  {}", info.container, info.image, info.state)
            })
        }
        crate::args::SandboxCommand::Exec {
            target,
            timeout,
            command,
        } => {
            let request = params(
                json!({
                    "agent": target.agent,
                    "conversation": target.conversation,
                    "command": command.join(" "),
                }),
                json!({ "timeout_ms": timeout.map(|s| s.saturating_mul(1000)) }),
            );
            let (value, ran) = backend.call_as::<SandboxExecResult>(SandboxExec::NAME, request)?;
            if out.json {
                return out.emit(&value, String::new);
            }
            let output = &ran.output;
            if let Some(error) = output.get("error").and_then(Value::as_str) {
                bail!("the command could not run: {error}");
            }
            let text = |name: &str| output.get(name).and_then(Value::as_str).unwrap_or("");
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text("stdout").as_bytes())?;
            stdout.flush()?;
            let mut stderr = std::io::stderr().lock();
            stderr.write_all(text("stderr").as_bytes())?;
            if output.get("timed_out").and_then(Value::as_bool) == Some(true) {
                bail!("the command timed out and was killed");
            }
            if output.get("truncated").and_then(Value::as_bool) == Some(true) {
                // The shell tool keeps the head and the tail of what it
                // printed, as text; say so rather than pass it off as whole.
                writeln!(
                    stderr,
                    "{} the output was longer than the shell tool keeps: its middle is cut (marked in it)",
                    style::Paint::Yellow.err("exo:")
                )?;
            }
            match output.get("exit_code").and_then(Value::as_i64) {
                Some(0) => Ok(()),
                Some(code) => Err(run::ChildExit(u8::try_from(code).unwrap_or(1)).into()),
                None => bail!("the command was killed"),
            }
        }
        crate::args::SandboxCommand::Snapshot(target) => {
            let request = json!({ "agent": target.agent, "conversation": target.conversation });
            let (value, taken) = style::progress("snapshotting the sandbox", || {
                backend.call_as::<SandboxSnapshotResult>(SandboxSnapshot::NAME, request)
            })?;
            out.emit(&value, || match &taken.image {
                Some(image) => format!("{image}  {} changes", taken.changes),
                None => "nothing changed outside the workspace: no snapshot taken".to_owned(),
            })
        }
    }
}

fn snapshot(backend: &mut Backend, out: &Out, command: SnapshotCommand) -> Result<()> {
    match command {
        SnapshotCommand::Take(target) => {
            let request = json!({ "agent": target.agent, "conversation": target.conversation });
            let (value, taken) = style::progress("snapshotting the workspace", || {
                backend.call_as::<SnapshotResult>(SnapshotTake::NAME, request)
            })?;
            out.emit(&value, || {
                format!(
                    "{}  {}",
                    taken.event.id,
                    render::event_summary(&taken.event.data)
                )
            })
        }
        SnapshotCommand::List { target, limit } => {
            let request = params(
                json!({ "agent": target.agent, "conversation": target.conversation }),
                json!({ "limit": limit }),
            );
            let (value, list) =
                backend.call_as::<SnapshotList>(SnapshotListMethod::NAME, request)?;
            out.emit(&value, || {
                list.snapshots
                    .iter()
                    .map(event_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        SnapshotCommand::Diff {
            target,
            from,
            to,
            diff,
        } => {
            let request = params(
                json!({ "agent": target.agent, "conversation": target.conversation, "unified": diff }),
                json!({ "from": from, "to": to }),
            );
            let (value, result) =
                backend.call_as::<SnapshotDiff>(SnapshotDiffMethod::NAME, request)?;
            out.emit(&value, || {
                if let Some(diff) = &result.diff {
                    return style::diff(diff.trim_end());
                }
                result
                    .changes
                    .iter()
                    .map(|change| {
                        format!("{:<12} {}", change.change, render::printable(&change.path))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        SnapshotCommand::Restore {
            target,
            snapshot,
            force,
            dry_run,
            diff,
            ..
        } => {
            let request = json!({
                "agent": target.agent,
                "conversation": target.conversation,
                "snapshot": snapshot,
                "force": force,
                "dry_run": dry_run,
                "unified": diff,
            });
            let (value, result) = style::progress("restoring", || {
                backend.call_as::<RestoreResult>(SnapshotRestore::NAME, request)
            })?;
            out.emit(&value, || restore_summary(&result))?;
            check_partial(&result)
        }
        SnapshotCommand::Show {
            target,
            snapshot,
            path,
            ..
        } => {
            let request = json!({
                "agent": target.agent,
                "conversation": target.conversation,
                "snapshot": snapshot,
                "path": path,
            });
            let (value, file) = backend.call_as::<SnapshotFile>(SnapshotRead::NAME, request)?;
            if out.json {
                return out.emit(&value, String::new);
            }
            let Some(content) = &file.content_base64 else {
                bail!(
                    "snapshot {} has no file {}",
                    render::short(&file.snapshot),
                    file.path
                );
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .context("decoding the file")?;
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
    }
}

fn resume(backend: &mut Backend, out: &Out, target: ConversationRef) -> Result<()> {
    let request = json!({ "agent": target.agent, "conversation": target.conversation });
    let (value, resumed) = backend.call_as::<ResumeResult>(SessionResume::NAME, request)?;
    out.emit(&value, || {
        let conv = &resumed.conversation;
        let mut lines = vec![
            format!("{} ({}), {} events", conv.slug, conv.id, conv.length),
            format!("head: {}", event_line(&resumed.head)),
        ];
        match &resumed.last_turn {
            Some(turn) => lines.push(format!(
                "last turn: {} {}",
                turn.id,
                turn.status
                    .map_or("in progress".to_string(), |status| status.to_string())
            )),
            None => lines.push("last turn: none".to_string()),
        }
        if let Some(snapshot) = &resumed.snapshot {
            lines.push(format!(
                "snapshot: {}",
                render::event_summary(&snapshot.data)
            ));
        }
        match &resumed.drift {
            Some(drift) if drift.is_empty() => {
                lines.push("workspace: unchanged since the snapshot".to_string())
            }
            Some(drift) => {
                lines.push(format!(
                    "workspace: {} paths changed since the snapshot",
                    drift.len()
                ));
                lines.extend(
                    drift
                        .iter()
                        .map(|change| format!("  {:<12} {}", change.change, change.path)),
                );
            }
            None => {}
        }
        crate::render::printable(&lines.join("\n"))
    })
}

/// `exo use`: show, choose or (handled before) clear the conversation in
/// use.
fn use_conversation(
    backend: &mut Backend,
    root: &std::path::Path,
    out: &Out,
    args: UseArgs,
) -> Result<()> {
    let (agent, conversation, chosen) = match (args.agent, args.conversation) {
        (Some(agent), Some(conversation)) => (agent, conversation, true),
        _ => match current::read(root)? {
            Some(current) => (current.agent, current.conversation, false),
            None => {
                return out.emit(&json!({ "agent": null, "conversation": null }), || {
                    "no conversation in use; choose one with `exo use AGENT CONV`".to_string()
                })
            }
        },
    };
    let lookup = |backend: &mut Backend| -> Result<(Value, Agent, Value, Conversation)> {
        let (conversation_value, conversation) = backend.call_as::<Conversation>(
            ConversationGet::NAME,
            json!({ "agent": agent, "conversation": conversation }),
        )?;
        let (agent_value, agent) = backend.call_as::<Agent>(
            AgentGet::NAME,
            json!({ "agent": conversation.agent.to_string() }),
        )?;
        Ok((agent_value, agent, conversation_value, conversation))
    };
    let (agent_value, agent, conversation_value, conversation) = match lookup(backend) {
        Ok(found) => found,
        Err(err) if !chosen => {
            bail!("the conversation in use is gone ({err}); choose another with `exo use AGENT CONV`, or `exo use --clear`")
        }
        Err(err) => return Err(err),
    };
    if chosen {
        current::write(
            root,
            &current::Current {
                agent: agent.id.to_string(),
                conversation: conversation.id.to_string(),
            },
        )?;
    }
    let value = json!({ "agent": agent_value, "conversation": conversation_value });
    out.emit(&value, || {
        format!(
            "{} {}/{} ({})",
            if chosen { "now using" } else { "using" },
            agent.slug,
            conversation.slug,
            conversation.id
        )
    })
}

/// The id of the conversation's newest turn, if it has one.
fn last_turn(backend: &mut Backend, target: &ConversationRef) -> Result<Option<exo_core::TurnId>> {
    let (_, page) = backend.call_as::<EventPage>(
        EventsList::NAME,
        json!({ "agent": target.agent, "conversation": target.conversation,
                "kind": "turn_started", "desc": true, "limit": 1 }),
    )?;
    Ok(page.events.first().and_then(|event| event.turn))
}

fn turn(backend: &mut Backend, out: &Out, command: TurnCommand) -> Result<()> {
    match command {
        TurnCommand::Show { target, turn, .. } => {
            let turn = match turn {
                Some(turn) => turn,
                None => last_turn(backend, &target)?.ok_or_else(|| {
                    anyhow!("{}/{} has no turns yet", target.agent, target.conversation)
                })?,
            };
            let (record_value, record) =
                backend.call_as::<exo_protocol::Turn>(TurnGet::NAME, json!({ "turn": turn }))?;

            let mut events: Vec<Value> = Vec::new();
            let mut request = json!({ "agent": target.agent, "conversation": target.conversation,
                                      "turn": turn, "limit": exo_store::MAX_PAGE });
            loop {
                let (_, page) = backend.call_as::<Value>(EventsList::NAME, request.clone())?;
                if let Some(Value::Array(batch)) = page.get("events") {
                    events.extend(batch.iter().cloned());
                }
                match page.get("next_cursor") {
                    Some(Value::String(cursor)) => request["after"] = json!(cursor),
                    _ => break,
                }
            }
            // A turn of another conversation, or of a branch a rewind left.
            if events.is_empty() {
                bail!("turn {turn} is not on the conversation's current history");
            }
            let value = json!({ "turn": record_value, "events": events });
            out.emit(&value, || {
                let status = record
                    .status
                    .map_or_else(|| "running".to_string(), |status| status.to_string());
                let mut lines = vec![
                    format!("turn {}  {}", record.id, status_paint(&status)),
                    format!("session: {}", record.session),
                    format!("started: {}", record.started_at),
                ];
                if let Some(ended) = &record.ended_at {
                    lines.push(format!("ended: {ended}"));
                }
                lines.push(String::new());
                lines.extend(
                    events
                        .iter()
                        .filter_map(|event| serde_json::from_value::<Event>(event.clone()).ok())
                        .map(|event| event_line(&event)),
                );
                lines.join("\n")
            })
        }
        TurnCommand::Cancel { target, turn, .. } => {
            let (_, conversation) = backend.call_as::<Conversation>(
                ConversationGet::NAME,
                json!({ "agent": target.agent, "conversation": target.conversation }),
            )?;
            let turn = match turn {
                // Only a turn of this conversation: a running turn is always
                // its conversation's own (never inherited by a fork).
                Some(turn) => {
                    let (_, record) = backend
                        .call_as::<exo_protocol::Turn>(TurnGet::NAME, json!({ "turn": turn }))?;
                    if record.conversation != conversation.id {
                        bail!("turn {turn} is not a turn of {}", conversation.slug);
                    }
                    if let Some(status) = record.status {
                        bail!("turn {turn} has already ended ({status})");
                    }
                    turn
                }
                None => conversation
                    .open_turn
                    .ok_or_else(|| anyhow!("no turn is running in {}", conversation.slug))?,
            };
            let value = backend.call(TurnCancel::NAME, json!({ "turn": turn }))?;
            out.emit(&value, || format!("cancelling turn {turn}"))
        }
    }
}

/// A turn's status, coloured by how it ended.
fn status_paint(status: &str) -> String {
    let paint = match status {
        "completed" => style::Paint::Green,
        "running" => style::Paint::Yellow,
        _ => style::Paint::Red,
    };
    paint.out(status)
}

fn approval(backend: &mut Backend, out: &Out, command: ApprovalCommand) -> Result<()> {
    match command {
        ApprovalCommand::List {
            agent,
            conversation,
        } => {
            let request = params(
                json!({}),
                json!({ "agent": agent, "conversation": conversation }),
            );
            let (value, list) =
                backend.call_as::<ApprovalList>(ApprovalListMethod::NAME, request)?;
            out.emit(&value, || {
                if list.approvals.is_empty() {
                    return "no calls are waiting for an answer".to_string();
                }
                let mut rows = vec![vec![
                    "TURN".into(),
                    "CALL".into(),
                    "TOOL".into(),
                    "CONVERSATION".into(),
                    "ARGUMENTS".into(),
                ]];
                rows.extend(list.approvals.iter().map(|pending| {
                    vec![
                        pending.turn.to_string(),
                        pending.call_id.clone(),
                        pending.tool.clone(),
                        pending.conversation.to_string(),
                        one_line_text(&pending.arguments.to_string()),
                    ]
                }));
                table(rows)
            })
        }
        ApprovalCommand::Respond {
            turn,
            call_id,
            decision,
        } => {
            let value = backend.call(
                ApprovalRespond::NAME,
                json!({ "turn": turn, "call_id": call_id, "decision": decision.as_str() }),
            )?;
            out.emit(&value, || {
                format!("answered {call_id} of turn {turn}: {}", decision.as_str())
            })
        }
    }
}
