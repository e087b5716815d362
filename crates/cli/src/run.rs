//! `exo run claude|codex [-- ARGS]`: Claude Code's or Codex's own
//! interactive UI with exo underneath (spec/agents.md, "exo run").
//!
//! The CLI is started in the terminal, in the conversation's workspace,
//! with a model-gateway token instead of a key and its history written
//! from exo's log as the session it resumes. The CLI's hooks (both speak
//! the same hook events) tell exo what happens: a prompt submitted begins
//! a turn (the turn-start snapshot), the answer's end finishes it with
//! what the CLI's transcript recorded since the prompt (messages, tool
//! calls, tool results; the turn-end snapshot). The gateway records every
//! model exchange in the open turn. The hooks reach this process through a
//! Unix socket, with `exo hook --socket PATH`, a hidden command.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use exo_core::{ConversationId, Event, EventData, EventId};
use exo_executor::{Begun, Setup, Substrate, SubstrateError};
use exo_store::OpenMode;
use serde_json::{json, Value};

use crate::backend::Backend;

/// The largest hook payload or transcript read.
const MAX_HOOK_BYTES: u64 = 16 << 20;
const MAX_TRANSCRIPT_BYTES: u64 = 256 << 20;

/// A child's exit status, passed on as exo's own (nothing printed).
#[derive(Debug)]
pub struct ChildExit(pub u8);

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the program exited with status {}", self.0)
    }
}

impl std::error::Error for ChildExit {}

/// What `exo run` was asked.
pub struct RunArgs {
    pub cli: String,
    pub agent: Option<String>,
    pub conversation: Option<String>,
    pub continue_last: bool,
    pub args: Vec<String>,
}

/// The agent CLI run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cli {
    Claude,
    Codex,
}

impl Cli {
    fn parse(name: &str) -> Result<Cli> {
        match name {
            "claude" => Ok(Cli::Claude),
            "codex" => Ok(Cli::Codex),
            other => bail!("exo run knows `claude` and `codex`, not {other:?}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Codex => "codex",
        }
    }

    /// The variable naming the program, and its npm package.
    fn program(self) -> Result<PathBuf> {
        let (variable, package) = match self {
            Cli::Claude => ("EXO_CLAUDE_BIN", "@anthropic-ai/claude-code"),
            Cli::Codex => ("EXO_CODEX_BIN", "@openai/codex"),
        };
        exo_agents::locate_program(variable, self.name()).ok_or_else(|| {
            anyhow!(
                "the {} CLI was not found: install {package} (scripts/setup-agents), or name it in {variable}",
                self.name()
            )
        })
    }

    /// The model API the CLI speaks, as the gateway names it, and in words.
    fn api(self) -> (&'static str, &'static str) {
        match self {
            Cli::Claude => ("messages", "an Anthropic model"),
            Cli::Codex => ("responses", "an OpenAI model"),
        }
    }

    /// The transcript entries' events of a turn.
    fn turn_events(self, path: &Path, open: &Open) -> Result<Vec<Value>> {
        match self {
            Cli::Claude => turn_events(path, open),
            Cli::Codex => codex_turn_events(path, open),
        }
    }

    /// The CLI's newest transcript, when no hook said which.
    fn newest_transcript(self, home: &Path, cwd: &Path) -> Option<PathBuf> {
        match self {
            Cli::Claude => newest_jsonl(&exo_agents::claude_project_dir(home, cwd)),
            Cli::Codex => newest_jsonl_under(&home.join("sessions")),
        }
    }
}

/// The turn the CLI is in, as exo recorded it.
struct Open {
    turn: String,
    prompt_id: Option<String>,
    /// The CLI's own id for the turn (Codex's).
    cli_turn: Option<String>,
    prompt: String,
}

/// What the hook thread shares with the main one.
struct Session {
    cli: Cli,
    /// The CLI's home (its config directory), canonical.
    home: PathBuf,
    backend: Mutex<Backend>,
    agent: String,
    conversation: String,
    open: Mutex<Option<Open>>,
    /// Set when the CLI has exited: the hook thread stops.
    stopping: std::sync::atomic::AtomicBool,
}

/// `exo run claude|codex ...`.
pub fn run(root: &Path, args: RunArgs) -> Result<()> {
    let cli = Cli::parse(&args.cli)?;
    if args.conversation.is_some() && args.continue_last {
        return Err(crate::UsageError(
            "--conversation and --continue cannot be used together".into(),
        )
        .into());
    }
    let program = cli.program()?;
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .context("reading the current directory")?;
    // The gateway runs on this runtime while the CLI runs.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let _entered = runtime.enter();
    let mut backend = Backend::open(root, OpenMode::Existing)?;

    let agent = pick_agent(&mut backend, root, cli, args.agent.as_deref())?;
    let (conversation, created) = pick_conversation(&mut backend, cli, &agent, &cwd, &args)?;
    let token = call(
        &mut backend,
        "gateway/token",
        json!({"agent": agent, "conversation": conversation}),
    );
    let (api, needed) = cli.api();
    let token = match token {
        Ok(token) if token["api"] == api => token,
        refused => {
            // Nothing is left behind by a run that cannot start.
            if created {
                let _ = call(
                    &mut backend,
                    "conversation/delete",
                    json!({"agent": agent, "conversation": conversation}),
                );
            }
            let token = refused?;
            bail!(
            "agent {agent}'s model speaks the {} API; {} needs {needed} (exo agent set {agent} --model MODEL)",
                token["api"].as_str().unwrap_or("?"),
                cli.name()
            );
        }
    };
    let token_value = token["token"].as_str().unwrap_or_default().to_owned();

    // The session the CLI resumes: the conversation's history from the log.
    let record = call(
        &mut backend,
        "conversation/get",
        json!({"agent": agent, "conversation": conversation}),
    )?;
    let conversation_id: ConversationId = record["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| anyhow!("the conversation has no id"))?;
    let home = root
        .join("executors")
        .join(conversation_id.to_string())
        .join(cli.name());
    exo_agents::create_private_dir(&home)
        .with_context(|| format!("creating {}", home.display()))?;
    let backend = Mutex::new(backend);
    let history = {
        let reader = LogReader::load(&backend, &agent, &conversation)?;
        exo_executor::prompt_items(&reader, conversation_id)
            .map_err(|err| anyhow!("reading the history: {err}"))?
    };
    let session = uuid::Uuid::now_v7().to_string();
    let resumed = match cli {
        Cli::Claude => exo_agents::write_claude_transcript(&home, &cwd, &session, "exo", &history),
        Cli::Codex => exo_agents::write_codex_rollout(&home, &cwd, &session, &history),
    }
    .context("writing the session's transcript")?;
    if cli == Cli::Claude {
        trust(&home, &cwd, &token_value)?;
    }

    let session_state = Arc::new(Session {
        cli,
        home: std::fs::canonicalize(&home).unwrap_or_else(|_| home.clone()),
        backend,
        agent: agent.clone(),
        conversation: conversation.clone(),
        open: Mutex::new(None),
        stopping: std::sync::atomic::AtomicBool::new(false),
    });
    // Owner-only: no other user reaches the hooks' socket.
    let socket_dir = tempfile::Builder::new()
        .prefix("exo-run-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("creating the hooks' socket directory")?;
    let socket = socket_dir.path().join("hooks.sock");
    let listener = UnixListener::bind(&socket).context("listening for Claude Code's hooks")?;
    let serving = Arc::clone(&session_state);
    let runtime_handle = runtime.handle().clone();
    let hooks = std::thread::spawn(move || {
        let _entered = runtime_handle.enter();
        for stream in listener.incoming() {
            if serving.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { break };
            // A hook says what it has to say at once: one that stalls is
            // dropped, and the next is served.
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(10)));
            if let Err(err) = serve_hook(&serving, stream) {
                tracing::warn!(%err, "a Claude Code hook could not be recorded");
            }
        }
    });

    let exe = std::env::current_exe().context("finding the exo binary")?;
    let hook = format!(
        "{} hook --socket {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(&socket.to_string_lossy())
    );
    let mut command = std::process::Command::new(&program);
    command.current_dir(&cwd);
    match cli {
        Cli::Claude => {
            let entry = json!([{"hooks": [{"type": "command", "command": hook}]}]);
            let settings = json!({"hooks": {
                "UserPromptSubmit": entry,
                "Stop": entry,
                "SessionEnd": entry,
            }});
            if resumed {
                command.args(["--resume", &session]);
            } else {
                command.args(["--session-id", &session]);
            }
            command
                .args(["--settings", &settings.to_string()])
                .env("CLAUDE_CONFIG_DIR", &home)
                .env(
                    "ANTHROPIC_BASE_URL",
                    token["anthropic_base_url"].as_str().unwrap_or_default(),
                )
                .env("ANTHROPIC_API_KEY", &token_value)
                .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                .env("DISABLE_AUTOUPDATER", "1")
                .env_remove("ANTHROPIC_AUTH_TOKEN");
        }
        Cli::Codex => {
            let toml = |text: &str| Value::String(text.to_owned()).to_string();
            let entry = format!("[{{hooks=[{{type=\"command\",command={}}}]}}]", toml(&hook));
            let here = cwd.to_string_lossy();
            let settings = [
                format!("model_provider={}", toml("exo")),
                format!("model_providers.exo.name={}", toml("exo")),
                format!(
                    "model_providers.exo.base_url={}",
                    toml(token["openai_base_url"].as_str().unwrap_or_default())
                ),
                format!("model_providers.exo.wire_api={}", toml("responses")),
                format!("model_providers.exo.env_key={}", toml("EXO_GATEWAY_TOKEN")),
                "check_for_update_on_startup=false".to_owned(),
                format!("projects.{}.trust_level={}", toml(&here), toml("trusted")),
                format!("hooks.UserPromptSubmit={entry}"),
                format!("hooks.Stop={entry}"),
                format!("hooks.SessionEnd={entry}"),
            ];
            // The hooks are exo's own, made here: trusted for this run.
            command.arg("--dangerously-bypass-hook-trust");
            for setting in settings {
                command.arg("-c").arg(setting);
            }
            if resumed {
                command.args(["resume", &session]);
            }
            command
                .env("CODEX_HOME", &home)
                .env("EXO_GATEWAY_TOKEN", &token_value)
                .env_remove("OPENAI_API_KEY")
                .env_remove("CODEX_API_KEY");
        }
    }
    command.args(&args.args);
    let status = command
        .status()
        .with_context(|| format!("starting {}", program.display()));
    // The hook thread ends (woken by one last connection), so that the
    // store, and the session it holds open, close as they should.
    session_state
        .stopping
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = UnixStream::connect(&socket);
    let _ = hooks.join();
    let status = status?;

    // A turn still open when the CLI ended (quit mid-answer) ends with
    // what its transcript holds.
    let open = session_state
        .open
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(open) = open {
        let transcript = cli.newest_transcript(&home, &cwd);
        finish_turn(&session_state, open, transcript.as_deref(), "cancelled")?;
    }
    drop(session_state);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(ChildExit(u8::try_from(code).unwrap_or(1)).into()),
        None => Err(ChildExit(1).into()),
    }
}

/// `exo hook --socket PATH`: hands a hook's JSON (stdin) to the `exo run`
/// that listens on PATH and waits until it is recorded.
pub fn hook(socket: &Path) -> Result<()> {
    let mut payload = String::new();
    std::io::stdin()
        .take(MAX_HOOK_BYTES)
        .read_to_string(&mut payload)
        .context("reading the hook's input")?;
    let value: Value = serde_json::from_str(&payload).context("the hook's input is not JSON")?;
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("reaching exo run at {}", socket.display()))?;
    let mut line = value.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream.take(4096)).read_line(&mut answer)?;
    Ok(())
}

/// Records what one hook says.
fn serve_hook(session: &Session, stream: UnixStream) -> Result<()> {
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_HOOK_BYTES)).read_line(&mut line)?;
    let payload: Value = serde_json::from_str(&line).context("a hook sent something not JSON")?;
    // Only a transcript in the CLI's own home is read.
    let transcript = payload["transcript_path"]
        .as_str()
        .and_then(|path| std::fs::canonicalize(path).ok())
        .filter(|path| path.starts_with(&session.home));
    let result = match payload["hook_event_name"].as_str().unwrap_or_default() {
        "UserPromptSubmit" => {
            let previous = session
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(previous) = previous {
                // Interrupted without a Stop: it ends here.
                finish_turn(session, previous, transcript.as_deref(), "cancelled")?;
            }
            let prompt = payload["prompt"].as_str().unwrap_or_default().to_owned();
            let begun = call(
                &mut session.backend.lock().unwrap_or_else(|p| p.into_inner()),
                "turn/begin",
                json!({"agent": session.agent, "conversation": session.conversation, "input": prompt}),
            )?;
            *session.open.lock().unwrap_or_else(|p| p.into_inner()) = Some(Open {
                turn: begun["turn"].as_str().unwrap_or_default().to_owned(),
                prompt_id: payload["prompt_id"].as_str().map(str::to_owned),
                cli_turn: payload["turn_id"].as_str().map(str::to_owned),
                prompt,
            });
            Ok(())
        }
        "Stop" | "SessionEnd" => {
            let open = session
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            match open {
                Some(open) => {
                    if payload["hook_event_name"] == "Stop" {
                        let last = payload["last_assistant_message"]
                            .as_str()
                            .unwrap_or_default();
                        finish_stopped(session, open, transcript.as_deref(), last)
                    } else {
                        finish_turn(session, open, transcript.as_deref(), "cancelled")
                    }
                }
                None => Ok(()),
            }
        }
        _ => Ok(()),
    };
    let mut writer = &stream;
    let _ = writer.write_all(b"{}\n");
    result
}

/// Finishes a turn Claude Code says it has answered: Claude Code may run
/// the hook before its transcript holds the answer, so the transcript is
/// read again (for up to 3 s) until the answer the hook names is in it;
/// if it never is, the answer is recorded from the hook.
fn finish_stopped(
    session: &Session,
    open: Open,
    transcript: Option<&Path>,
    last_answer: &str,
) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut events = Vec::new();
    if let Some(path) = transcript {
        loop {
            events = session.cli.turn_events(path, &open).unwrap_or_default();
            let answered = last_answer.is_empty()
                || events.iter().any(|event| {
                    event["kind"] == "message" && event["content"][0]["text"] == last_answer
                });
            if answered || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let recorded = events
        .iter()
        .any(|event| event["kind"] == "message" && event["content"][0]["text"] == last_answer);
    if !last_answer.is_empty() && !recorded {
        events.push(json!({
            "kind": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": last_answer}],
        }));
    }
    record_and_finish(session, &open, events, "completed")
}

/// Appends what the transcript recorded since the turn's prompt, then
/// finishes the turn.
fn finish_turn(
    session: &Session,
    open: Open,
    transcript: Option<&Path>,
    status: &str,
) -> Result<()> {
    let events = match transcript {
        Some(path) => session.cli.turn_events(path, &open).unwrap_or_else(|err| {
            tracing::warn!(%err, "could not read Claude Code's transcript");
            Vec::new()
        }),
        None => Vec::new(),
    };
    record_and_finish(session, &open, events, status)
}

/// Appends `events` to the turn, then finishes it.
fn record_and_finish(
    session: &Session,
    open: &Open,
    events: Vec<Value>,
    status: &str,
) -> Result<()> {
    let mut backend = session.backend.lock().unwrap_or_else(|p| p.into_inner());
    if !events.is_empty() {
        call(
            &mut backend,
            "turn/append",
            json!({"turn": open.turn, "events": events, "return_events": false}),
        )?;
    }
    call(
        &mut backend,
        "turn/finish",
        json!({"turn": open.turn, "status": status}),
    )?;
    Ok(())
}

/// The newest `.jsonl` file in `dir`.
fn newest_jsonl(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "jsonl"))
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .map(|entry| entry.path())
}

/// The newest `.jsonl` file anywhere under `dir` (Codex's dated folders).
fn newest_jsonl_under(dir: &Path) -> Option<PathBuf> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "jsonl") {
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                if newest.as_ref().is_none_or(|(at, _)| modified > *at) {
                    newest = Some((modified, path));
                }
            }
        }
    }
    newest.map(|(_, path)| path)
}

/// The turn's events, as `conversation append` lines, from the items a
/// Codex rollout recorded after the turn's prompt.
fn codex_turn_events(path: &Path, open: &Open) -> Result<Vec<Value>> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_TRANSCRIPT_BYTES)
        .read_to_string(&mut text)?;
    let items: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["type"] == "response_item")
        .map(|line| line["payload"].clone())
        .collect();
    let text_of = |item: &Value| -> String {
        item["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("")
    };
    let is_prompt = |item: &Value| {
        item["type"] == "message"
            && item["role"] == "user"
            && match &open.cli_turn {
                Some(turn)
                    if item["internal_chat_message_metadata_passthrough"]["turn_id"]
                        .is_string() =>
                {
                    item["internal_chat_message_metadata_passthrough"]["turn_id"] == **turn
                        && text_of(item) == open.prompt
                }
                _ => text_of(item) == open.prompt,
            }
    };
    let Some(start) = items.iter().rposition(is_prompt) else {
        return Ok(Vec::new());
    };
    let mut events = Vec::new();
    for item in &items[start + 1..] {
        let field = |key: &str| item[key].clone();
        let recorded = match item["type"].as_str().unwrap_or_default() {
            "message" if item["role"] == "assistant" => Some(json!({
                "kind": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": text_of(item)}],
            })),
            "function_call" => {
                let arguments = item["arguments"].as_str().unwrap_or_default();
                Some(json!({
                    "kind": "tool_call",
                    "call_id": field("call_id"),
                    "name": field("name"),
                    "arguments": serde_json::from_str::<Value>(arguments)
                        .unwrap_or_else(|_| Value::String(arguments.to_owned())),
                }))
            }
            "custom_tool_call" => Some(json!({
                "kind": "tool_call",
                "call_id": field("call_id"),
                "name": field("name"),
                "arguments": {"input": field("input")},
            })),
            "function_call_output" | "custom_tool_call_output" => Some(json!({
                "kind": "tool_result",
                "call_id": field("call_id"),
                "output": match &item["output"] {
                    Value::String(text) => text.clone(),
                    other => result_text(other),
                },
            })),
            _ => None,
        };
        if let Some(recorded) = recorded {
            events.push(recorded);
            events.push(json!({
                "kind": "custom",
                "type": exo_agents::CODEX_ITEM_TYPE,
                "payload": {"turn": open.cli_turn, "item_id": item["id"], "item": item},
            }));
        }
    }
    Ok(events)
}

/// The turn's events, as `conversation append` lines, from the transcript
/// entries after its prompt.
fn turn_events(path: &Path, open: &Open) -> Result<Vec<Value>> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_TRANSCRIPT_BYTES)
        .read_to_string(&mut text)?;
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let is_prompt = |entry: &Value| {
        entry["type"] == "user"
            && match &open.prompt_id {
                Some(id) if entry["promptId"].as_str().is_some() => entry["promptId"] == **id,
                _ => prompt_text(entry) == open.prompt,
            }
    };
    let Some(start) = entries.iter().rposition(is_prompt) else {
        return Ok(Vec::new());
    };
    let mut events = Vec::new();
    for entry in &entries[start + 1..] {
        if entry["isSidechain"] == true {
            continue;
        }
        let kind = entry["type"].as_str().unwrap_or_default();
        if kind != "assistant" && kind != "user" {
            continue;
        }
        // Claude Code's own words (an API error), not the model's.
        if entry["message"]["model"] == "<synthetic>" {
            continue;
        }
        for block in entry["message"]["content"].as_array().into_iter().flatten() {
            match (kind, block["type"].as_str().unwrap_or_default()) {
                ("assistant", "text") => events.push(json!({
                    "kind": "message",
                    "role": "assistant",
                    "content": [{"type": "text", "text": block["text"]}],
                })),
                ("assistant", "tool_use") => events.push(json!({
                    "kind": "tool_call",
                    "call_id": block["id"],
                    "name": block["name"],
                    "arguments": block["input"],
                })),
                ("user", "tool_result") => events.push(json!({
                    "kind": "tool_result",
                    "call_id": block["tool_use_id"],
                    "output": result_text(&block["content"]),
                    "is_error": block["is_error"].as_bool().unwrap_or(false),
                })),
                _ => {}
            }
        }
        events.push(json!({
            "kind": "custom",
            "type": exo_agents::CLAUDE_ENTRY_TYPE,
            "payload": {
                "session": entry["sessionId"],
                "uuid": entry["uuid"],
                "entry_type": kind,
                "message": entry["message"],
            },
        }));
    }
    Ok(events)
}

fn prompt_text(entry: &Value) -> String {
    match &entry["message"]["content"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn result_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The agent to run as: the one named, else the conversation in use's,
/// else the one with slug `claude`.
fn pick_agent(backend: &mut Backend, root: &Path, cli: Cli, named: Option<&str>) -> Result<String> {
    if let Some(agent) = named {
        call(backend, "agent/get", json!({"agent": agent}))?;
        return Ok(agent.to_owned());
    }
    if let Some(current) = crate::current::read(root)? {
        return Ok(current.agent);
    }
    let name = cli.name();
    let harness = match cli {
        Cli::Claude => "claude-code",
        Cli::Codex => "codex",
    };
    match call(backend, "agent/get", json!({"agent": name})) {
        Ok(_) => Ok(name.to_owned()),
        Err(_) => bail!(
            "no agent to run {name} as: pass --agent, or create one: exo agent create {name} --harness {harness} --model MODEL"
        ),
    }
}

/// The conversation: the one named, else (with --continue) the agent's
/// newest in this directory, else a new one bound to this directory.
fn pick_conversation(
    backend: &mut Backend,
    cli: Cli,
    agent: &str,
    cwd: &Path,
    args: &RunArgs,
) -> Result<(String, bool)> {
    if let Some(conversation) = &args.conversation {
        call(
            backend,
            "conversation/get",
            json!({"agent": agent, "conversation": conversation}),
        )?;
        return Ok((conversation.clone(), false));
    }
    if args.continue_last {
        let listed = call(backend, "conversation/list", json!({"agent": agent}))?;
        let here = cwd.to_string_lossy();
        let newest = listed["conversations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|conversation| conversation["workspace"].as_str() == Some(&here))
            .max_by(|a, b| {
                a["updated_at"]
                    .as_str()
                    .unwrap_or_default()
                    .cmp(b["updated_at"].as_str().unwrap_or_default())
                    .then_with(|| {
                        a["created_at"]
                            .as_str()
                            .unwrap_or_default()
                            .cmp(b["created_at"].as_str().unwrap_or_default())
                    })
            });
        return match newest {
            Some(conversation) => Ok((
                conversation["id"].as_str().unwrap_or_default().to_owned(),
                false,
            )),
            None => bail!(
                "agent {agent} has no conversation in {here} to continue; leave out --continue to start one"
            ),
        };
    }
    let name = format!(
        "{} {}",
        cli.name(),
        cwd.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "session".into())
    );
    // A new one each run: `name`, else `name 2`, `name 3`, ...
    let mut last = None;
    for n in 1..=100 {
        let named = if n == 1 {
            name.clone()
        } else {
            format!("{name} {n}")
        };
        match backend.call(
            "conversation/create",
            json!({"agent": agent, "name": named, "workspace": cwd}),
        ) {
            Ok(created) => {
                return Ok((created["id"].as_str().unwrap_or_default().to_owned(), true))
            }
            Err(crate::backend::Failure::Rpc(error))
                if error.message.contains("already exists") =>
            {
                last = Some(error.message);
            }
            Err(err) => return Err(anyhow!("{err}")),
        }
    }
    bail!(
        "{}",
        last.unwrap_or_else(|| "cannot name a new conversation".into())
    )
}

/// Marks the token's key approved and the directory trusted in Claude
/// Code's settings, so its first-run questions do not stand between the
/// user and the session.
fn trust(config_dir: &Path, cwd: &Path, token: &str) -> Result<()> {
    let path = config_dir.join(".claude.json");
    let mut settings: Value = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    settings["hasCompletedOnboarding"] = json!(true);
    let tail: String = token
        .chars()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if !settings["customApiKeyResponses"].is_object() {
        settings["customApiKeyResponses"] = json!({"approved": [], "rejected": []});
    }
    if !settings["customApiKeyResponses"]["approved"].is_array() {
        settings["customApiKeyResponses"]["approved"] = json!([]);
    }
    if let Some(approved) = settings["customApiKeyResponses"]["approved"].as_array_mut() {
        // Tokens are per session: keep only this one.
        approved.clear();
        approved.push(json!(tail));
    }
    if !settings["projects"].is_object() {
        settings["projects"] = json!({});
    }
    let here = cwd.to_string_lossy().into_owned();
    if !settings["projects"][&here].is_object() {
        settings["projects"][&here] = json!({});
    }
    settings["projects"][&here]["hasTrustDialogAccepted"] = json!(true);
    let partial = config_dir.join(".claude.json.exo-partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(&settings)?)?;
    std::fs::rename(&partial, &path)?;
    Ok(())
}

fn call(backend: &mut Backend, method: &str, params: Value) -> Result<Value> {
    backend.call(method, params).map_err(|err| anyhow!("{err}"))
}

/// `text` quoted for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The conversation's history, read once through the backend, as an
/// executor's [`Substrate`] sees it: enough for
/// [`exo_executor::prompt_items`].
struct LogReader<'a> {
    events: Vec<Event>,
    backend: &'a Mutex<Backend>,
    agent: String,
    conversation: String,
}

impl<'a> LogReader<'a> {
    fn load(shared: &'a Mutex<Backend>, agent: &str, conversation: &str) -> Result<LogReader<'a>> {
        let mut backend = shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut params = json!({"agent": agent, "conversation": conversation, "limit": 10000});
            if let Some(after) = &after {
                params["after"] = json!(after);
            }
            let page = call(&mut backend, "events/list", params)?;
            for event in page["events"].as_array().into_iter().flatten() {
                let parsed: exo_protocol::Event = serde_json::from_value(event.clone())
                    .context("reading the conversation's events")?;
                events.push(Event {
                    id: parsed.id,
                    conversation: parsed.conversation,
                    session: parsed.session,
                    turn: parsed.turn,
                    created_at: exo_core::Timestamp(0),
                    data: parsed.data,
                });
            }
            match page["next_cursor"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        drop(backend);
        Ok(LogReader {
            events,
            backend: shared,
            agent: agent.to_owned(),
            conversation: conversation.to_owned(),
        })
    }
}

fn refused(what: &str) -> SubstrateError {
    format!("{what} is not available while reading a history").into()
}

impl Substrate for LogReader<'_> {
    fn setup(&self, _agent: &str, _conversation: &str) -> Result<Setup, SubstrateError> {
        Err(refused("setup"))
    }

    fn events(
        &self,
        _conversation: ConversationId,
        after: Option<EventId>,
    ) -> Result<Vec<Event>, SubstrateError> {
        let start = match after {
            Some(after) => self
                .events
                .iter()
                .position(|event| event.id == after)
                .map_or(self.events.len(), |at| at + 1),
            None => 0,
        };
        Ok(self.events[start..].to_vec())
    }

    fn begin_turn(&self, _: &str, _: &str, _: EventData) -> Result<Begun, SubstrateError> {
        Err(refused("a turn"))
    }

    fn artifact(
        &self,
        _conversation: ConversationId,
        path: &str,
        version: Option<u64>,
    ) -> Result<Vec<u8>, SubstrateError> {
        let mut params =
            json!({"agent": self.agent, "conversation": self.conversation, "path": path});
        if let Some(version) = version {
            params["version"] = json!(version);
        }
        let answer = call(
            &mut self.backend.lock().unwrap_or_else(|p| p.into_inner()),
            "artifact/get",
            params,
        )
        .map_err(|err| -> SubstrateError { err.to_string().into() })?;
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(answer["content_base64"].as_str().unwrap_or_default())
            .map_err(|err| -> SubstrateError { err.to_string().into() })
    }

    fn append(
        &self,
        _turn: exo_core::TurnId,
        _events: Vec<EventData>,
    ) -> Result<Vec<Event>, SubstrateError> {
        Err(refused("appending"))
    }

    fn finish_turn(
        &self,
        _turn: exo_core::TurnId,
        _status: exo_core::TurnStatus,
    ) -> Result<exo_core::TurnStatus, SubstrateError> {
        Err(refused("a turn"))
    }

    fn allow_always(&self, _agent: &str, _tool: &str) -> Result<(), SubstrateError> {
        Err(refused("a permission"))
    }
}
