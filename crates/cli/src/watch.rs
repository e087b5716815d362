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
            // The event before the last n: the (n+1)th newest.
            let page: EventPage = conn
                .call_as(
                    EventsList::NAME,
                    json!({ "agent": target.agent, "conversation": target.conversation,
                            "desc": true, "limit": n.saturating_add(1).min(10_000) }),
                )
                .await?;
            if page.events.len() as u64 > u64::from(n) {
                Ok(page.events.last().map(|event| event.id))
            } else {
                Ok(None)
            }
        }
    }
}

/// What a line of output is written to: stdout, until it is closed.
struct Printer {
    json: bool,
    /// Whether streamed text left the cursor mid-line.
    mid_line: bool,
}

impl Printer {
    /// Writes `text`; false once stdout is closed.
    fn write(&mut self, text: &str) -> bool {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok()
    }

    fn line(&mut self, text: &str) -> bool {
        let mut text = text.to_string();
        if self.mid_line {
            text.insert(0, '\n');
            self.mid_line = false;
        }
        text.push('\n');
        self.write(&text)
    }

    fn event(&mut self, event: &Value) -> bool {
        if self.json {
            return self.line(&event.to_string());
        }
        match serde_json::from_value::<Event>(event.clone()) {
            Ok(event) => {
                let line = event_line(&event);
                self.line(&paint_event(&line, event.data.kind_name()))
            }
            Err(_) => self.line(&event.to_string()),
        }
    }

    fn notification(&mut self, method: &str, params: &Value) -> bool {
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
                    self.mid_line = !text.ends_with('\n');
                    return self.write(text);
                }
                if let Some(call) = params.get("tool_call") {
                    let name = call.get("name").and_then(Value::as_str).unwrap_or("?");
                    return self.line(&Paint::Dim.out(&format!("… calling {name}")));
                }
                true
            }
            ApprovalRequestNotification::NAME => {
                let field = |name: &str| {
                    params
                        .get(name)
                        .map(|value| {
                            value
                                .as_str()
                                .map_or_else(|| value.to_string(), str::to_owned)
                        })
                        .unwrap_or_default()
                };
                let (turn, call) = (field("turn"), field("call_id"));
                let text = format!(
                    "approval needed: {} {} — answer with `exo approval respond {turn} {call} allow-once` (or deny)",
                    field("tool"),
                    crate::render::one_line(&field("arguments"), 120),
                );
                self.line(&Paint::Yellow.out(&text))
            }
            _ => true,
        }
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
    let mut interrupt = crate::chat::interrupts()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let mut printer = Printer {
        json: out.json,
        mid_line: false,
    };
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
                _ = interrupt.recv() => { finish(&mut printer); return Ok(()) }
                _ = terminate.recv() => { finish(&mut printer); return Ok(()) }
                notification = conn.notifications.recv() => match notification {
                    Some(notification) => notification,
                    None => {
                        finish(&mut printer);
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
            let open = match method.as_str() {
                EventsAppendedNotification::NAME => {
                    let mut open = true;
                    if let Some(Value::Array(events)) = params.get("events") {
                        for event in events {
                            if let Some(id) = event.get("id").and_then(Value::as_str) {
                                after = id.parse().ok();
                            }
                            if open && filter.admits(event) {
                                open = printer.event(event);
                            }
                        }
                    }
                    open
                }
                EventsLaggedNotification::NAME => {
                    break params
                        .get("cursor")
                        .and_then(Value::as_str)
                        .and_then(|cursor| cursor.parse().ok());
                }
                other if live_text => printer.notification(other, &params),
                _ => true,
            };
            // stdout closed (`exo ... watch | head`): done.
            if !open {
                return Ok(());
            }
        };
        if lagged.is_some() {
            after = lagged;
        }
    }
}

/// Ends a line streamed text left open.
fn finish(printer: &mut Printer) {
    if printer.mid_line {
        printer.write("\n");
        printer.mid_line = false;
    }
}
