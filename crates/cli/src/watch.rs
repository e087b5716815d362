//! Following a conversation live: `exo conversation watch` and
//! `exo conversation events --follow`.
//!
//! Both ask the root's daemon for `events/watch` (replay after a cursor,
//! then every commit as it happens); only a daemon sees every writer, so a
//! root without one gets one started, in the background, with a note on
//! stderr saying how to stop it. `watch` also prints the turn text as it
//! streams and the approval questions; `events --follow` prints events
//! only. A lagging watch resumes from its cursor by itself. Ctrl-C (or
//! SIGTERM, or a closed stdout) ends it cleanly, exit status 0.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use exo_core::{EventId, EventKind, SessionId, TurnId};
use exo_protocol::methods::*;
use exo_protocol::{Conversation, Event, Method};
use serde_json::{json, Value};

use crate::args::ConversationRef;
use crate::chat::{run_async, Conn};
use crate::render::event_line;
use crate::style::Paint;
use crate::Out;

/// Where the replay starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// After this event.
    After(EventId),
    /// From the first event.
    All,
    /// With this many of the latest events.
    Last(u32),
}

/// Which events are printed (all by default).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub kind: Option<EventKind>,
    pub session: Option<SessionId>,
    pub turn: Option<TurnId>,
}

impl Filter {
    fn admits(&self, event: &Value) -> bool {
        let field = |name: &str| event.get(name).and_then(Value::as_str);
        self.kind
            .is_none_or(|kind| field("kind") == Some(kind.as_str()))
            && self
                .session
                .is_none_or(|session| field("session") == Some(&session.to_string()))
            && self
                .turn
                .is_none_or(|turn| field("turn") == Some(&turn.to_string()))
    }
}

/// Follows the conversation until interrupted. `live_text` adds the
/// streamed turn text and approval questions to the events.
pub fn run(
    root: &Path,
    out: &Out,
    target: &ConversationRef,
    start: Start,
    filter: Filter,
    live_text: bool,
) -> Result<()> {
    // Refused before a daemon is started for it: a watch of nothing must
    // leave nothing running.
    if exo_daemon::daemon::running(root).is_none() {
        let mut backend = crate::backend::Backend::open(root, exo_store::OpenMode::Existing)?;
        backend.call(
            ConversationGet::NAME,
            json!({ "agent": target.agent, "conversation": target.conversation }),
        )?;
    }
    ensure_daemon(root)?;
    run_async(async {
        let mut conn = Conn::open(root).await?;
        let outcome = follow(&mut conn, out, target, start, &filter, live_text).await;
        conn.close().await;
        outcome
    })
}

/// Starts a daemon for the root when none runs, and waits until it
/// answers.
fn ensure_daemon(root: &Path) -> Result<()> {
    if exo_daemon::daemon::running(root).is_some() {
        return Ok(());
    }
    if !root.join(exo_store::DB_FILE).exists() {
        // Opening the store says what is missing, as other commands do.
        crate::backend::open_store(root, exo_store::OpenMode::Existing)?;
    }
    let root = std::path::absolute(root).context("resolving the root")?;
    let exe = std::env::current_exe().context("finding the exo executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(&root)
        .arg("daemon")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Its own process group: Ctrl-C in this terminal stops the watch, not
    // the daemon.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().context("starting the daemon")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(info) = exo_daemon::daemon::running(&root) {
            let _ = writeln!(
                std::io::stderr(),
                "exo: started a daemon for {} (pid {}); `exo daemon stop` stops it",
                root.display(),
                info.pid
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("waiting for the daemon")? {
            bail!("the daemon did not start ({status}); run `exo daemon` to see why");
        }
        if Instant::now() > deadline {
            bail!("the daemon did not answer within 30 s; run `exo daemon` to see why");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cursor to replay after.
async fn cursor(
    conn: &mut Conn,
    target: &ConversationRef,
    start: Start,
) -> Result<Option<EventId>> {
    match start {
        Start::After(event) => Ok(Some(event)),
        Start::All => Ok(None),
        Start::Last(0) => {
            let conversation: Conversation = conn
                .call_as(
                    ConversationGet::NAME,
                    json!({ "agent": target.agent, "conversation": target.conversation }),
                )
                .await?;
            Ok(Some(conversation.head))
        }
        Start::Last(n) => {
            // The newest n, then the event just before the oldest of them:
            // the cursor the replay starts after.
            let page: EventPage = conn
                .call_as(
                    EventsList::NAME,
                    json!({ "agent": target.agent, "conversation": target.conversation,
                            "desc": true, "limit": n.clamp(1, 10_000) }),
                )
                .await?;
            let Some(oldest) = page.events.last() else {
                return Ok(None);
            };
            let before: EventPage = conn
                .call_as(
                    EventsList::NAME,
                    json!({ "agent": target.agent, "conversation": target.conversation,
                            "desc": true, "limit": 1, "before": oldest.id }),
                )
                .await?;
            Ok(before.events.first().map(|event| event.id))
        }
    }
}

/// What the watch prints, as text to write: the renderer keeps track of
/// streamed text left mid-line.
struct Printer {
    json: bool,
    /// Whether streamed text left the cursor mid-line.
    mid_line: bool,
    /// Whether stdout is a terminal (streamed text is then escaped).
    terminal: bool,
}

impl Printer {
    fn line(&mut self, text: &str) -> String {
        let mut line = String::with_capacity(text.len() + 2);
        if self.mid_line {
            line.push('\n');
            self.mid_line = false;
        }
        line.push_str(text);
        line.push('\n');
        line
    }

    fn event(&mut self, event: &Value) -> String {
        if self.json {
            return self.line(&event.to_string());
        }
        match serde_json::from_value::<Event>(event.clone()) {
            Ok(event) => {
                let line = event_line(&event);
                self.line(&paint_event(&line, event.data.kind_name()))
            }
            Err(_) => self.line(&crate::render::printable(&event.to_string())),
        }
    }

    fn notification(&mut self, method: &str, params: &Value) -> String {
        if self.json {
            let mut params = params.clone();
            if let Value::Object(object) = &mut params {
                object.remove("watch");
            }
            return self.line(&json!({ "method": method, "params": params }).to_string());
        }
        match method {
            TurnDeltaNotification::NAME => {
                if let Some(text) = params.get("text").and_then(Value::as_str) {
                    if text.is_empty() {
                        return String::new();
                    }
                    self.mid_line = !text.ends_with('\n');
                    // A model's control characters are shown, not obeyed,
                    // on a terminal.
                    return if self.terminal {
                        crate::render::printable(text)
                    } else {
                        text.to_string()
                    };
                }
                if let Some(call) = params.get("tool_call") {
                    let name = call.get("name").and_then(Value::as_str).unwrap_or("?");
                    let text = format!("… calling {}", crate::render::one_line(name, 60));
                    return self.line(&Paint::Dim.out(&text));
                }
                String::new()
            }
            ApprovalRequestNotification::NAME => {
                let field = |name: &str| {
                    let text = params
                        .get(name)
                        .map(|value| {
                            value
                                .as_str()
                                .map_or_else(|| value.to_string(), str::to_owned)
                        })
                        .unwrap_or_default();
                    crate::render::one_line(&text, 120)
                };
                let (turn, call) = (field("turn"), field("call_id"));
                let text = format!(
                    "approval needed: {} {} — answer with `exo approval respond {turn} {call} allow-once` (or deny)",
                    field("tool"),
                    field("arguments"),
                );
                self.line(&Paint::Yellow.out(&text))
            }
            _ => String::new(),
        }
    }
}

/// How a write to stdout went.
enum Written {
    Done,
    /// The reader went away (`watch | head`): the watch is over.
    Closed,
}

/// Writes `text` to stdout, while still listening for the signals that
/// end the watch: a reader that stopped reading cannot hold it.
async fn write(stdout: &mut tokio::io::Stdout, text: &str, stop: &mut Stop) -> Result<Written> {
    use tokio::io::AsyncWriteExt;
    if text.is_empty() {
        return Ok(Written::Done);
    }
    let written = tokio::select! {
        written = async {
            stdout.write_all(text.as_bytes()).await?;
            stdout.flush().await
        } => written,
        () = stop.signalled() => return Ok(Written::Closed),
    };
    match written {
        Ok(()) => Ok(Written::Done),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(Written::Closed),
        Err(err) => Err(anyhow!("writing the watch's output: {err}")),
    }
}

/// Ctrl-C and SIGTERM.
struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> Result<Stop> {
        Ok(Stop {
            interrupt: crate::chat::interrupts()?,
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?,
        })
    }

    async fn signalled(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Whether the reader of stdout has gone (a pipe whose other end closed):
/// noticed while the conversation is quiet, with nothing to write.
fn stdout_gone() -> bool {
    use rustix::event::{poll, PollFd, PollFlags};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => false,
    }
}

/// A text event line with its kind coloured.
fn paint_event(line: &str, kind: &str) -> String {
    let paint = match kind {
        "message" => Paint::Bold,
        "tool_call" | "tool_result" => Paint::Cyan,
        "error" => Paint::Red,
        "rewound" | "forked" => Paint::Magenta,
        "workspace_snapshot" => Paint::Blue,
        _ => return line.to_string(),
    };
    paint.out(line)
}

async fn follow(
    conn: &mut Conn,
    out: &Out,
    target: &ConversationRef,
    start: Start,
    filter: &Filter,
    live_text: bool,
) -> Result<()> {
    let mut after = cursor(conn, target, start).await?;
    let mut stop = Stop::new()?;
    let mut stdout = tokio::io::stdout();
    let mut printer = Printer {
        json: out.json,
        mid_line: false,
        terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    // While nothing happens: is the reader still there, the conversation
    // still alive?
    let mut quiet = tokio::time::interval(QUIET_CHECK);
    quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        let watch: WatchResult = conn
            .call_as(
                EventsWatch::NAME,
                json!({ "agent": target.agent, "conversation": target.conversation, "after": after }),
            )
            .await?;
        // Until the watch ends: lagged (resume from its cursor), the
        // daemon goes, or we are told to stop.
        let lagged = loop {
            let (method, params) = tokio::select! {
                () = stop.signalled() => {
                    let _ = write(&mut stdout, &finish(&mut printer), &mut stop).await;
                    return Ok(())
                }
                _ = quiet.tick() => {
                    if stdout_gone() {
                        return Ok(());
                    }
                    ticks += 1;
                    if ticks.is_multiple_of(CONVERSATION_CHECK_EVERY) {
                        let alive = conn
                            .call(
                                ConversationGet::NAME,
                                json!({ "agent": target.agent, "conversation": target.conversation }),
                            )
                            .await;
                        if let Err(err) = alive {
                            let _ = write(&mut stdout, &finish(&mut printer), &mut stop).await;
                            bail!("the watched conversation is gone: {err}");
                        }
                    }
                    continue;
                }
                notification = conn.notifications.recv() => match notification {
                    Some(notification) => notification,
                    None => {
                        let _ = write(&mut stdout, &finish(&mut printer), &mut stop).await;
                        bail!("the daemon closed the connection (it stopped?)")
                    }
                },
            };
            let params: Value = match params.map(|json| json.parse::<Value>()).transpose() {
                Ok(params) => params.unwrap_or(Value::Null),
                Err(err) => return Err(anyhow!("unreadable {method} notification: {err}")),
            };
            if params.get("watch").and_then(Value::as_u64) != Some(watch.watch) {
                continue;
            }
            let text = match method.as_str() {
                EventsAppendedNotification::NAME => {
                    let mut text = String::new();
                    if let Some(Value::Array(events)) = params.get("events") {
                        for event in events {
                            if let Some(id) = event.get("id").and_then(Value::as_str) {
                                after = id.parse().ok();
                            }
                            if filter.admits(event) {
                                text.push_str(&printer.event(event));
                            }
                        }
                    }
                    text
                }
                EventsLaggedNotification::NAME => {
                    break params
                        .get("cursor")
                        .and_then(Value::as_str)
                        .and_then(|cursor| cursor.parse().ok());
                }
                other if live_text => printer.notification(other, &params),
                _ => String::new(),
            };
            if let Written::Closed = write(&mut stdout, &text, &mut stop).await? {
                return Ok(());
            }
        };
        if lagged.is_some() {
            after = lagged;
        }
    }
}

/// How often a quiet watch checks that its reader is still there.
const QUIET_CHECK: Duration = Duration::from_secs(1);
/// Every how many quiet checks it also checks that the conversation still
/// exists (deleting one ends no watch on the daemon's side).
const CONVERSATION_CHECK_EVERY: u32 = 5;

/// What ends a line streamed text left open.
fn finish(printer: &mut Printer) -> String {
    if printer.mid_line {
        printer.mid_line = false;
        "\n".to_string()
    } else {
        String::new()
    }
}
