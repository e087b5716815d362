//! Talking to an agent: `exo conversation send` (one turn) and `exo chat
//! repl` (many). Both call `turn/run` over a JSON-RPC connection, to the
//! running daemon or to the service served in this process over an
//! in-memory pipe, so they behave the same either way, and follow the
//! turn's notifications: streamed text, recorded events, approval
//! questions.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use exo_core::{ContentPart, EventData, Role, TurnStatus};
use exo_protocol::methods::*;
use exo_protocol::{Conversation, Event, Method, Notification};
use exo_rpc::message::Json;
use exo_rpc::peer::{NotificationsOnly, Options, Outgoing, Peer, PeerHandle, RequestError};
use exo_store::OpenMode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::render::{event_line, one_line, short};
use crate::Out;

/// A JSON-RPC connection to the service: a peer of its own, to the
/// daemon's socket or to the service served in this process.
pub(crate) struct Conn {
    peer: Peer,
    handle: PeerHandle,
    pub(crate) notifications: mpsc::UnboundedReceiver<(String, Option<Json>)>,
    /// The in-process service, when no daemon runs.
    server: Option<JoinHandle<()>>,
    /// The root's in-process claim, kept until the connection is closed.
    _guard: Option<exo_daemon::daemon::InProcessGuard>,
}

impl Conn {
    /// Connects to the root's daemon if one runs, else serves the root's
    /// store in this process.
    pub(crate) async fn open(root: &Path) -> Result<Conn> {
        let guard = match exo_daemon::daemon::access(root, false)? {
            exo_daemon::daemon::Access::Daemon(_, stream) => {
                stream.set_nonblocking(true)?;
                let stream = tokio::net::UnixStream::from_std(stream)?;
                let (reader, writer) = stream.into_split();
                return Ok(Conn::over(reader, writer, None, None));
            }
            exo_daemon::daemon::Access::InProcess(guard) => guard,
        };
        let service =
            exo_service::Service::embedded(crate::backend::open_store(root, OpenMode::Existing)?);
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (server_reader, server_writer) = tokio::io::split(theirs);
        let server = tokio::spawn(exo_daemon::serve_connection(
            service,
            server_reader,
            server_writer,
        ));
        let (reader, writer) = tokio::io::split(ours);
        Ok(Conn::over(reader, writer, Some(server), Some(guard)))
    }

    fn over(
        reader: impl AsyncRead + Unpin + Send + 'static,
        writer: impl AsyncWrite + Unpin + Send + 'static,
        server: Option<JoinHandle<()>>,
        guard: Option<exo_daemon::daemon::InProcessGuard>,
    ) -> Conn {
        let (handler, notifications) = NotificationsOnly::new();
        let options = Options {
            framing: Some(exo_rpc::Framing::Ndjson),
            ..Options::default()
        };
        let peer = Peer::spawn(reader, writer, handler, options);
        Conn {
            handle: peer.handle(),
            peer,
            notifications,
            server,
            _guard: guard,
        }
    }

    /// Sends a request; await the returned request for its answer.
    pub(crate) async fn start(&mut self, method: &str, params: Value) -> Result<Outgoing> {
        self.handle
            .start(method, Json::from_value(&params))
            .await
            .map_err(|_| anyhow!("the connection to the service closed"))
    }

    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let outcome = self.start(method, params).await?.await;
        let result = answer(outcome)?;
        result
            .parse()
            .map_err(|err| anyhow!("unexpected result from {method}: {err}"))
    }

    pub(crate) async fn call_as<T: DeserializeOwned>(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<T> {
        let value = self.call(method, params).await?;
        serde_json::from_value(value)
            .map_err(|err| anyhow!("unexpected result from {method}: {err}"))
    }

    /// A handle that sends requests and notifications on this connection.
    pub(crate) fn handle(&self) -> PeerHandle {
        self.handle.clone()
    }

    /// Takes the notifications' receiver (for a dispatcher of one's own);
    /// `notifications` then receives nothing.
    pub(crate) fn take_notifications(&mut self) -> mpsc::UnboundedReceiver<(String, Option<Json>)> {
        let (_, empty) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.notifications, empty)
    }

    /// Whether the service has closed the connection (the daemon stopped).
    pub(crate) fn is_closed(&self) -> bool {
        self.handle.is_input_closed()
    }

    pub(crate) async fn notify(&mut self, method: &str, params: Value) -> Result<()> {
        self.handle
            .notify(method, Json::from_value(&params))
            .await
            .map_err(|_| anyhow!("the connection to the service closed"))
    }

    /// Closes the connection; an in-process service finishes what it was
    /// doing and closes the store.
    pub(crate) async fn close(self) {
        // Stopping our reading closes our writing side once what runs has
        // ended, so the service sees the end of input.
        self.peer.stop();
        self.peer.join().await;
        if let Some(server) = self.server {
            let _ = server.await;
        }
    }
}

/// Serves `handler` on this process's stdin and stdout (NDJSON) until the
/// input ends and every request has been answered: the faces exo speaks
/// to other programs' clients (`exo acp`, `exo mcp`).
pub(crate) async fn serve_stdio(handler: std::sync::Arc<dyn exo_rpc::peer::Handler>) {
    let peer = Peer::spawn(
        tokio::io::stdin(),
        tokio::io::stdout(),
        handler,
        Options {
            framing: Some(exo_rpc::Framing::Ndjson),
            ..Options::default()
        },
    );
    peer.handle().input_closed().await;
    peer.join().await;
}

/// A request's outcome as the command line reports it.
fn answer(outcome: Result<Json, RequestError>) -> Result<Json> {
    match outcome {
        Ok(result) => Ok(result),
        Err(RequestError::Rpc(error)) => Err(anyhow!(error.message)),
        Err(RequestError::Closed) => Err(anyhow!("the connection to the service closed")),
        Err(RequestError::Unexpected(why)) => Err(anyhow!("unexpected answer: {why}")),
    }
}

/// Lines typed on stdin, read on their own task so a turn can go on (and
/// be cancelled) while nothing is typed.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (lines, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if lines.send(line).await.is_err() {
                break;
            }
        }
    });
    receiver
}

/// Where streamed output goes: answer text to stdout, everything about
/// the turn (tool calls, results, approvals, errors) to stderr.
#[derive(Default)]
struct Screen {
    /// Whether stdout has text not yet ended by a newline.
    mid_line: bool,
    /// Tool calls recorded but not shown yet. A model may ask for several
    /// calls at once, and the executor runs them one after another: each
    /// is shown when the one before it has its result, so what follows a
    /// call's line (its approval, its result) is always about that call.
    waiting_calls: VecDeque<String>,
    /// Whether the last call shown still waits for its result.
    call_running: bool,
}

impl Screen {
    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        // On a terminal, the model's control characters are shown, not
        // obeyed; piped, its text goes out exactly as it came.
        let shown;
        let text = if std::io::stdout().is_terminal() {
            shown = crate::render::printable(text);
            shown.as_str()
        } else {
            text
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        self.mid_line = !text.ends_with('\n');
    }

    fn end_line(&mut self) {
        if self.mid_line {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(b"\n");
            let _ = stdout.flush();
            self.mid_line = false;
        }
    }

    fn note(&mut self, line: &str) {
        self.end_line();
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            crate::render::printable(line)
        );
    }

    fn ask(&mut self, question: &str) {
        self.end_line();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{}", crate::render::printable(question));
        let _ = stderr.flush();
    }

    fn events(&mut self, events: &[Event]) {
        for event in events {
            match &event.data {
                EventData::ToolCall {
                    name, arguments, ..
                } => self
                    .waiting_calls
                    .push_back(format!("• {}", call_summary(name, arguments))),
                EventData::ToolResult {
                    output, is_error, ..
                } => {
                    self.note(&format!("  {}", result_summary(output, *is_error)));
                    self.call_running = false;
                }
                _ => {}
            }
            if !self.call_running {
                if let Some(call) = self.waiting_calls.pop_front() {
                    self.note(&call);
                    self.call_running = true;
                }
            }
        }
    }
}

/// `shell: ls -la`, `write_file: src/main.rs`, ...
fn call_summary(name: &str, arguments: &Value) -> String {
    let main = match name {
        "shell" => arguments["command"].as_str(),
        "grep" => arguments["pattern"].as_str(),
        "list_files" => arguments["path"]
            .as_str()
            .or(arguments["pattern"].as_str())
            .or(Some(".")),
        _ => arguments["path"].as_str(),
    };
    match main {
        Some(main) => format!("{name}: {}", one_line(main, 100)),
        None => format!("{name} {}", one_line(&arguments.to_string(), 100)),
    }
}

/// `exit 0`, `exit 1: <stderr>`, `ok`, `error: <message>`.
fn result_summary(output: &Value, is_error: bool) -> String {
    if let Some(exit) = output.get("exit_code") {
        let stderr = output["stderr"].as_str().unwrap_or("").trim();
        let status = match exit.as_i64() {
            Some(code) => format!("exit {code}"),
            None if output["timed_out"] == json!(true) => "timed out".to_owned(),
            None if output["cancelled"] == json!(true) => "cancelled".to_owned(),
            None => "killed".to_owned(),
        };
        return match (is_error, stderr.is_empty()) {
            (true, false) => format!("{status}: {}", one_line(stderr, 100)),
            _ => status,
        };
    }
    match (is_error, output["error"].as_str()) {
        (true, Some(error)) => format!("error: {}", one_line(error, 100)),
        (true, None) => format!("error: {}", one_line(&output.to_string(), 100)),
        (false, _) => "ok".to_owned(),
    }
}

/// Who answers approval questions during a turn.
enum Approver<'a> {
    /// No one: `turn/run` is told so, and such calls are denied.
    Nobody,
    /// The next line typed (y or yes approves).
    Lines(&'a mut mpsc::Receiver<String>),
}

/// Ctrl-C, as a stream: made once, so a press while nothing waits for it
/// is kept for the next wait, not lost.
pub(crate) fn interrupts() -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("listening for Ctrl-C")
}

/// Ctrl-C during a turn: the first cancels it; a second, if the turn has
/// still not ended, leaves at once (the turn is then closed as
/// interrupted, or, in a daemon, cancelled when it notices).
async fn interrupted(turn: &Outgoing, screen: &mut Screen, cancelling: &mut bool) {
    if *cancelling {
        screen.note("^C again: leaving");
        std::process::exit(130);
    }
    screen.note("^C cancelling the turn (again to leave)");
    *cancelling = true;
    turn.cancel().await;
}

/// An answer typed to an approval question: `y`/`yes` allows this call,
/// `t`/`turn` the tool for the rest of the turn, `a`/`always` for every
/// later turn of the agent; anything else refuses.
fn decision_of(line: Option<&str>) -> exo_core::ApprovalDecision {
    use exo_core::ApprovalDecision;
    match line.map(|line| line.trim().to_ascii_lowercase()).as_deref() {
        Some("y" | "yes") => ApprovalDecision::AllowOnce,
        Some("t" | "turn") => ApprovalDecision::AllowTurn,
        Some("a" | "always") => ApprovalDecision::AllowAlways,
        _ => ApprovalDecision::Deny,
    }
}

/// Runs one turn, printing as it streams (unless `quiet`), cancelling it
/// on Ctrl-C. Returns the turn's result.
async fn run_turn(
    conn: &mut Conn,
    target: &Conversation,
    input: String,
    max_rounds: Option<u32>,
    mut approver: Approver<'_>,
    quiet: bool,
    ctrl_c: &mut tokio::signal::unix::Signal,
) -> Result<TurnRunResult> {
    let params = TurnRunParams {
        agent: target.agent.to_string(),
        conversation: target.id.to_string(),
        input: TurnInput::Text(input),
        max_rounds,
        approvals: Some(!matches!(approver, Approver::Nobody)),
    };
    let mut answered = conn
        .start(TurnRun::NAME, serde_json::to_value(params)?)
        .await?;
    let mut screen = Screen::default();
    let mut cancelling = false;
    let outcome = 'turn: loop {
        tokio::select! {
            outcome = &mut answered => break outcome,
            Some((method, params)) = conn.notifications.recv() => {
                let params = params.map(|params| params.to_value()).unwrap_or(Value::Null);
                if quiet && method != ApprovalRequestNotification::NAME {
                    continue;
                }
                match method.as_str() {
                    TurnDeltaNotification::NAME => {
                        if let Ok(delta) = serde_json::from_value::<TurnDelta>(params) {
                            screen.text(delta.text.as_deref().unwrap_or(""));
                        }
                    }
                    TurnEventsNotification::NAME => {
                        if let Ok(batch) = serde_json::from_value::<TurnEvents>(params) {
                            screen.events(&batch.events);
                        }
                    }
                    ApprovalRequestNotification::NAME => {
                        let request: ApprovalRequest = serde_json::from_value(params)?;
                        let decision = match &mut approver {
                            Approver::Nobody => exo_core::ApprovalDecision::Deny,
                            Approver::Lines(lines) => {
                                let terminal = std::io::stdin().is_terminal();
                                if terminal {
                                    // Lines typed before the question was
                                    // asked are not its answer.
                                    while lines.try_recv().is_ok() {}
                                }
                                screen.ask(&format!(
                                    "allow {}? [y]es, for this [t]urn, [a]lways, [N]o: ",
                                    call_summary(&request.tool, &request.arguments)
                                ));
                                tokio::select! {
                                    line = lines.recv() => {
                                        // A terminal echoes the answer as it is typed;
                                        // a line read from a pipe is not echoed, so
                                        // echo it to end the question's line.
                                        if !terminal {
                                            screen.note(line.as_deref().unwrap_or(""));
                                        }
                                        decision_of(line.as_deref())
                                    }
                                    // The turn ended while it asked (cancelled
                                    // elsewhere, or the daemon stopped).
                                    outcome = &mut answered => {
                                        screen.note("");
                                        break 'turn outcome;
                                    }
                                    _ = ctrl_c.recv() => {
                                        interrupted(&answered, &mut screen, &mut cancelling).await;
                                        exo_core::ApprovalDecision::Deny
                                    }
                                }
                            }
                        };
                        let answer = ApprovalRespondParams {
                            turn: request.turn,
                            call_id: request.call_id,
                            approve: None,
                            decision: Some(decision),
                        };
                        conn.notify(ApprovalRespond::NAME, serde_json::to_value(answer)?).await?;
                    }
                    _ => {}
                }
            }
            _ = ctrl_c.recv() => interrupted(&answered, &mut screen, &mut cancelling).await,
        }
    };
    screen.end_line();
    let result = match outcome {
        Err(RequestError::Closed) => bail!("the connection to the service closed during the turn"),
        other => answer(other)?,
    };
    Ok(result.parse()?)
}

/// Why a turn that did not complete ended, in one line.
fn turn_problem(result: &TurnRunResult) -> Option<String> {
    match result.status {
        TurnStatus::Completed => None,
        status => Some(match &result.error {
            Some(error) => format!("turn {status}: {error}"),
            None => format!("turn {status}"),
        }),
    }
}

/// `exo conversation send`.
pub(crate) fn send(
    root: &Path,
    out: &Out,
    agent: &str,
    conversation: &str,
    prompt: String,
    max_rounds: Option<u32>,
) -> Result<()> {
    // A prompt read from stdin leaves no terminal to answer approvals on.
    let from_stdin = prompt == "-";
    let prompt = if from_stdin {
        let bytes = crate::read_stdin("the prompt")?;
        String::from_utf8(bytes).context("the prompt on stdin is not UTF-8")?
    } else {
        prompt
    };
    if prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    let ask = !out.json && !from_stdin && std::io::stdin().is_terminal();
    run_async(async {
        let mut conn = Conn::open(root).await?;
        let outcome = async {
            let target: Conversation = conn
                .call_as(
                    ConversationGet::NAME,
                    json!({ "agent": agent, "conversation": conversation }),
                )
                .await?;
            let mut lines = ask.then(stdin_lines);
            let approver = match lines.as_mut() {
                Some(lines) => Approver::Lines(lines),
                None => Approver::Nobody,
            };
            let mut ctrl_c = interrupts()?;
            let ran = run_turn(
                &mut conn,
                &target,
                prompt,
                max_rounds,
                approver,
                out.json,
                &mut ctrl_c,
            )
            .await?;
            // The turn ran (whatever its end): this is the conversation in
            // use now. A refused one changes nothing.
            remember(root, &target)?;
            Ok::<_, anyhow::Error>(ran)
        }
        .await;
        conn.close().await;
        let result = outcome?;
        if out.json {
            out.emit(&serde_json::to_value(&result)?, String::new)?;
        }
        match turn_problem(&result) {
            Some(problem) => bail!(problem),
            None => Ok(()),
        }
    })
}

/// Makes `conversation` the one in use (`exo use`).
fn remember(root: &Path, conversation: &Conversation) -> Result<()> {
    crate::current::write(
        root,
        &crate::current::Current {
            agent: conversation.agent.to_string(),
            conversation: conversation.id.to_string(),
        },
    )
}

/// Runs the command on a runtime of its own. The runtime is then left
/// without waiting for its blocking threads: one may be stuck reading a
/// terminal that will never send another line.
pub(crate) fn run_async<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(work);
    runtime.shutdown_background();
    outcome
}

const HELP: &str = "\
Type a prompt to run a turn; Ctrl-C cancels a running turn.
  /history          the conversation so far
  /events [N]       the last N events (20), with their ids
  /rewind EVENT     move the conversation (and its files) back to EVENT
  /fork [NAME]      fork the conversation here and continue in the fork
  /snapshot         snapshot the workspace now
  /diff             what changed in the workspace since the last snapshot
  /quit             leave (also Ctrl-D)";

/// `exo chat repl`.
pub(crate) fn repl(
    root: &Path,
    agent: &str,
    conversation: &str,
    max_rounds: Option<u32>,
) -> Result<()> {
    let terminal = std::io::stdin().is_terminal();
    run_async(async {
        let mut conn = Conn::open(root).await?;
        let outcome = repl_loop(&mut conn, root, agent, conversation, max_rounds, terminal).await;
        conn.close().await;
        outcome
    })
}

async fn repl_loop(
    conn: &mut Conn,
    root: &Path,
    agent: &str,
    conversation: &str,
    max_rounds: Option<u32>,
    terminal: bool,
) -> Result<()> {
    let mut target: Conversation = conn
        .call_as(
            ConversationGet::NAME,
            json!({ "agent": agent, "conversation": conversation }),
        )
        .await?;
    let mut screen = Screen::default();
    // Made the conversation in use by the first turn that runs.
    let mut remembered = false;
    if terminal {
        screen.note(&format!(
            "exo chat: {agent} / {}{}. /help lists commands.",
            target.slug,
            target
                .workspace
                .as_deref()
                .map(|w| format!(" in {w}"))
                .unwrap_or_default()
        ));
    }
    let mut lines = stdin_lines();
    let mut ctrl_c = interrupts()?;
    loop {
        if conn.is_closed() {
            bail!("the connection to the service closed");
        }
        if terminal {
            screen.ask("› ");
        }
        let line = tokio::select! {
            line = lines.recv() => line,
            _ = ctrl_c.recv() => None,
        };
        let Some(line) = line else { break };
        let line = line.trim().to_owned();
        if line.is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix('/') {
            let before = target.id;
            match slash(conn, &mut target, command).await {
                Ok(Some(text)) => screen.note(&text),
                Ok(None) => break,
                Err(err) => screen.note(&format!("error: {err:#}")),
            }
            // A fork continues in the fork: it is the conversation in use.
            if target.id != before {
                if let Err(err) = remember(root, &target) {
                    screen.note(&format!("error: {err:#}"));
                }
            }
            continue;
        }
        match run_turn(
            conn,
            &target,
            line,
            max_rounds,
            Approver::Lines(&mut lines),
            false,
            &mut ctrl_c,
        )
        .await
        {
            Ok(result) => {
                if !remembered {
                    remembered = true;
                    if let Err(err) = remember(root, &target) {
                        screen.note(&format!("error: {err:#}"));
                    }
                }
                if let Some(problem) = turn_problem(&result) {
                    screen.note(&problem);
                }
            }
            // The REPL goes on: a refused turn (busy, misconfigured) is
            // reported and the next prompt may work.
            Err(err) => screen.note(&format!("error: {err:#}")),
        }
    }
    Ok(())
}

/// Runs a slash command; `None` means leave.
async fn slash(
    conn: &mut Conn,
    target: &mut Conversation,
    command: &str,
) -> Result<Option<String>> {
    let (name, argument) = match command.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim()),
        None => (command, ""),
    };
    let here = json!({ "agent": target.agent.to_string(), "conversation": target.id.to_string() });
    let text = match name {
        "quit" | "exit" | "q" => return Ok(None),
        "help" | "?" => HELP.to_owned(),
        "history" => {
            let events = all_events(conn, &here).await?;
            let lines: Vec<String> = events.iter().filter_map(history_line).collect();
            if lines.is_empty() {
                "(no messages yet)".to_owned()
            } else {
                lines.join("\n")
            }
        }
        "events" => {
            let limit: u32 = if argument.is_empty() {
                20
            } else {
                argument
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| anyhow!("/events takes a count from 1 to 10000"))?
            };
            let mut params = here.clone();
            params["desc"] = json!(true);
            params["limit"] = json!(limit);
            let page: EventPage = conn.call_as(EventsList::NAME, params).await?;
            page.events
                .iter()
                .rev()
                .map(event_line)
                .collect::<Vec<_>>()
                .join("\n")
        }
        "rewind" => {
            if argument.is_empty() {
                bail!("/rewind takes an event id (see /events)");
            }
            let mut params = here.clone();
            params["to"] = json!(argument);
            let result: RewindResult = conn.call_as(ConversationRewind::NAME, params).await?;
            *target = result.conversation;
            let mut text = match &result.event {
                Some(_) => format!("rewound to {argument}"),
                None => format!("already at {argument}"),
            };
            if let Some(files) = &result.files {
                text.push_str(&format!(
                    "; workspace {} ({} files written)",
                    if files.written {
                        "restored"
                    } else {
                        "unchanged"
                    },
                    files.changes.len()
                ));
                for conflict in &files.conflicts {
                    text.push_str(&format!(
                        "\n  left alone {}: {} during the restore, kept as it is",
                        conflict.path, conflict.change
                    ));
                }
                for skip in &files.skipped {
                    text.push_str(&format!("\n  left alone {}: {}", skip.path, skip.reason));
                }
            }
            text
        }
        "fork" => {
            let mut params = here.clone();
            if !argument.is_empty() {
                params["name"] = json!(argument);
            }
            let fork: Conversation = conn.call_as(ConversationFork::NAME, params).await?;
            let text = format!(
                "forked {} as {}; continuing in the fork",
                target.slug, fork.slug
            );
            *target = fork;
            text
        }
        "snapshot" => {
            let result: SnapshotResult = conn.call_as(SnapshotTake::NAME, here).await?;
            match &result.event.data {
                EventData::WorkspaceSnapshot {
                    commit,
                    added,
                    modified,
                    deleted,
                    ..
                } => format!(
                    "snapshot {} (+{added} ~{modified} -{deleted})",
                    short(commit)
                ),
                _ => "snapshot taken".to_owned(),
            }
        }
        "diff" => {
            let mut params = here.clone();
            params["unified"] = json!(true);
            let diff: SnapshotDiff = conn.call_as(SnapshotDiffMethod::NAME, params).await?;
            match diff.diff.as_deref().map(str::trim_end) {
                Some(text) if !text.is_empty() => text.to_owned(),
                _ => "no changes since the last snapshot".to_owned(),
            }
        }
        other => bail!("unknown command /{other}; /help lists them"),
    };
    Ok(Some(text))
}

async fn all_events(conn: &mut Conn, here: &Value) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut after: Option<exo_core::EventId> = None;
    loop {
        let mut params = here.clone();
        params["limit"] = json!(10_000);
        if let Some(after) = after {
            params["after"] = json!(after);
        }
        let page: EventPage = conn.call_as(EventsList::NAME, params).await?;
        events.extend(page.events);
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => return Ok(events),
        }
    }
}

/// A message or tool call as one line of `/history`.
fn history_line(event: &Event) -> Option<String> {
    match &event.data {
        EventData::Message { role, content, .. } => {
            let text: Vec<&str> = content
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if text.is_empty() {
                return None;
            }
            let who = match role {
                Role::User => "you",
                Role::Assistant => "agent",
                Role::System => "system",
            };
            Some(format!("{who}: {}", text.join("\n\n")))
        }
        EventData::ToolCall {
            name, arguments, ..
        } => Some(format!("  • {}", call_summary(name, arguments))),
        EventData::TurnEnded { status } if *status != TurnStatus::Completed => {
            Some(format!("  (turn {status})"))
        }
        _ => None,
    }
}
