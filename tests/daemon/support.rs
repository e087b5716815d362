//! Test support: a real `exo daemon` process, clients that speak to it
//! over its socket or its stdio, in either framing, and what turns run
//! against a fake model API need.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn exo() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exo"));
    command
        .env_remove("EXO_ROOT")
        .env_remove("RUST_LOG")
        .env_remove("EXO_LOG")
        .env(
            "EXO_ENCRYPTION_KEY",
            "4444444444444444444444444444444444444444444444444444444444444444",
        );
    command
}

/// A temporary root.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join(".exo")
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("exo.sock")
    }

    /// Runs `exo --root ROOT ARGS` to completion.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        exo()
            .arg("--root")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run exo")
    }

    /// Runs `exo --root ROOT ARGS` with stdin.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut child = exo()
            .arg("--root")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exo");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Starts `exo daemon` and waits until its socket answers.
    pub fn daemon(&self) -> Daemon {
        self.daemon_with(&[], &[])
    }

    /// Starts `exo daemon ARGS` with extra environment variables and waits
    /// until its socket answers.
    pub fn daemon_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        let child = exo()
            .arg("--root")
            .arg(self.path())
            .arg("daemon")
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn exo daemon");
        let daemon = Daemon {
            child: Some(child),
            socket: self.socket(),
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(mut conn) = Conn::try_socket(&daemon.socket, Framing::Ndjson) {
                if conn.call("ping", json!({})).get("result").is_some() {
                    return daemon;
                }
            }
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A daemon process; killed (SIGKILL) if still running when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub socket: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn connect(&self) -> Conn {
        Conn::socket(&self.socket, Framing::Ndjson)
    }

    pub fn connect_lsp(&self) -> Conn {
        Conn::socket(&self.socket, Framing::ContentLength)
    }

    /// Sends a signal and waits for the exit status.
    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_with_timeout(&mut child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_with_timeout(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Ndjson,
    ContentLength,
}

/// A client connection: writes frames, reads frames (with a timeout).
pub struct Conn {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
    framing: Framing,
    next_id: u64,
    /// Notifications read while waiting for a response.
    pub notifications: std::collections::VecDeque<Value>,
    /// The socket, to change its read timeout.
    stream: Option<UnixStream>,
    _child: Option<Child>,
}

impl Conn {
    pub fn try_socket(socket: &Path, framing: Framing) -> std::io::Result<Conn> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut conn = Conn::new(
            Box::new(stream.try_clone()?),
            Box::new(stream.try_clone()?),
            framing,
            None,
        );
        conn.stream = Some(stream);
        Ok(conn)
    }

    /// How long a read waits before `try_recv` gives up (socket
    /// connections only). A read that times out part way through a message
    /// loses it: only shorten it while nothing is expected.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream
            .as_ref()
            .expect("a socket connection")
            .set_read_timeout(Some(timeout))
            .unwrap();
    }

    /// A client on an already connected stream.
    pub fn from_stream(stream: UnixStream, framing: Framing) -> Conn {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Conn::new(
            Box::new(stream.try_clone().unwrap()),
            Box::new(stream),
            framing,
            None,
        )
    }

    pub fn socket(socket: &Path, framing: Framing) -> Conn {
        Conn::try_socket(socket, framing).expect("connect to the daemon")
    }

    /// `exo daemon --stdio` on `root`, as an editor would spawn it.
    pub fn stdio(root: &Root, framing: Framing) -> Conn {
        Conn::stdio_with(root, framing, &[])
    }

    /// `exo daemon --stdio` on `root` with extra environment variables.
    pub fn stdio_with(root: &Root, framing: Framing, envs: &[(&str, &str)]) -> Conn {
        let mut child = exo()
            .arg("--root")
            .arg(root.path())
            .args(["daemon", "--stdio"])
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn exo daemon --stdio");
        let stdin: ChildStdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        Conn::new(Box::new(stdout), Box::new(stdin), framing, Some(child))
    }

    fn new(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        framing: Framing,
        child: Option<Child>,
    ) -> Conn {
        Conn {
            reader: BufReader::new(reader),
            writer,
            framing,
            next_id: 1,
            notifications: Default::default(),
            stream: None,
            _child: child,
        }
    }

    /// Closes the connection; for `exo daemon --stdio`, closes its stdin and
    /// waits for the process to exit.
    pub fn close(self) -> Option<std::process::ExitStatus> {
        let Conn { writer, _child, .. } = self;
        drop(writer);
        _child.map(|mut child| wait_with_timeout(&mut child))
    }

    /// Sends a message, reporting (rather than panicking on) a connection
    /// the daemon has dropped.
    pub fn try_send(&mut self, message: &Value) -> std::io::Result<()> {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        self.writer.write_all(&line)?;
        self.writer.flush()
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
        self.writer.flush().expect("flush");
    }

    /// Writes one frame in this connection's framing.
    pub fn send_frame(&mut self, payload: &[u8]) {
        match self.framing {
            Framing::Ndjson => {
                let mut line = payload.to_vec();
                line.push(b'\n');
                self.write_raw(&line);
            }
            Framing::ContentLength => {
                let mut frame = format!("Content-Length: {}\r\n\r\n", payload.len()).into_bytes();
                frame.extend_from_slice(payload);
                self.write_raw(&frame);
            }
        }
    }

    pub fn send(&mut self, message: &Value) {
        self.send_frame(message.to_string().as_bytes());
    }

    /// Reads one frame and parses it.
    pub fn recv(&mut self) -> Value {
        self.try_recv()
            .expect("the daemon closed the connection, or sent nothing for a long time")
    }

    /// Reads one frame, or `None` at end of stream.
    pub fn try_recv(&mut self) -> Option<Value> {
        let payload = match self.framing {
            Framing::Ndjson => {
                let mut line = Vec::new();
                if self.reader.read_until(b'\n', &mut line).ok()? == 0 {
                    return None;
                }
                line
            }
            Framing::ContentLength => {
                let mut length = None;
                loop {
                    let mut header = String::new();
                    if self.reader.read_line(&mut header).ok()? == 0 {
                        return None;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').expect("a header line");
                    assert!(
                        name.eq_ignore_ascii_case("content-length"),
                        "unexpected header {header:?}"
                    );
                    length = Some(value.trim().parse::<usize>().unwrap());
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                self.reader.read_exact(&mut body).ok()?;
                body
            }
        };
        Some(
            serde_json::from_slice(&payload)
                .unwrap_or_else(|err| panic!("not JSON ({err}): {payload:?}")),
        )
    }

    /// Sends a request and waits for its response, queueing notifications.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        self.response(&id)
    }

    /// Sends a request without waiting; returns its id.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        json!(id)
    }

    /// Reads messages (queued notifications first) until one satisfies
    /// `done`; returns them all, that one last.
    pub fn read_until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut read = Vec::new();
        loop {
            let message = match self.notifications.pop_front() {
                Some(queued) => queued,
                None => self.recv(),
            };
            let last = done(&message);
            read.push(message);
            if last {
                return read;
            }
        }
    }

    /// Waits for the response with this id, queueing notifications.
    pub fn response(&mut self, id: &Value) -> Value {
        loop {
            let message = self.recv();
            if message.get("id") == Some(id) {
                return message;
            }
            assert!(
                message.get("method").is_some(),
                "unexpected message {message}"
            );
            self.notifications.push_back(message);
        }
    }

    /// Calls and unwraps the result.
    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params.clone());
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} {params} failed: {response}"),
        }
    }

    /// Calls and unwraps the error.
    pub fn err(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params.clone());
        match response.get("error") {
            Some(error) => error.clone(),
            None => panic!("{method} {params} should have failed: {response}"),
        }
    }

    /// The next notification.
    pub fn notification(&mut self) -> Value {
        if let Some(queued) = self.notifications.pop_front() {
            return queued;
        }
        let message = self.recv();
        assert!(
            message.get("method").is_some(),
            "expected a notification, got {message}"
        );
        message
    }

    /// Creates agent `a` and conversation `c`.
    pub fn agent_and_conversation(&mut self) {
        self.ok("agent/create", json!({"name": "A", "slug": "a"}));
        self.ok(
            "conversation/create",
            json!({"agent": "a", "name": "C", "slug": "c"}),
        );
    }

    /// Reads watch notifications until `count` events have arrived for
    /// `watch`; returns their ids.
    pub fn watched_ids(&mut self, watch: u64, count: usize) -> Vec<String> {
        let mut ids = Vec::new();
        while ids.len() < count {
            let notification = self.notification();
            assert_eq!(notification["method"], "events/appended", "{notification}");
            assert_eq!(notification["params"]["watch"], watch);
            for event in notification["params"]["events"].as_array().unwrap() {
                ids.push(event["id"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(ids.len(), count, "more events than expected");
        ids
    }
}

/// Reads watch notifications until `count` events have arrived for
/// `watch`; returns the events.
pub fn watched_events(conn: &mut Conn, watch: u64, count: usize) -> Vec<Value> {
    watched(conn, watch, count).0
}

/// Reads watch notifications for `watch` until `count` events have
/// arrived; returns them, and the text of the `turn/delta` notifications
/// that came with them (a running turn's answer as it streamed).
pub fn watched(conn: &mut Conn, watch: u64, count: usize) -> (Vec<Value>, String) {
    let mut events = Vec::new();
    let mut text = String::new();
    while events.len() < count {
        let notification = conn.notification();
        assert_eq!(notification["params"]["watch"], watch, "{notification}");
        match notification["method"].as_str() {
            Some("turn/delta") => {
                text.push_str(notification["params"]["text"].as_str().unwrap_or(""))
            }
            Some("approval/request") => {}
            Some("events/appended") => {
                events.extend(notification["params"]["events"].as_array().unwrap().clone())
            }
            _ => panic!("unexpected notification {notification}"),
        }
    }
    assert_eq!(events.len(), count, "more events than expected");
    (events, text)
}

/// Reads watch notifications for `watch` until an event satisfies `done`;
/// returns the events up to and including it.
pub fn watched_until(conn: &mut Conn, watch: u64, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let notification = conn.notification();
        assert_eq!(notification["params"]["watch"], watch, "{notification}");
        if ["turn/delta", "approval/request"].contains(&notification["method"].as_str().unwrap()) {
            continue;
        }
        assert_eq!(notification["method"], "events/appended", "{notification}");
        for event in notification["params"]["events"].as_array().unwrap() {
            events.push(event.clone());
            if done(event) {
                return events;
            }
        }
    }
}

/// Waits until `done` holds, failing the test after [`TIMEOUT`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` runs (a zombie does not count).
pub fn alive(pid: u32) -> bool {
    let output = Command::new("ps")
        .args(["-o", "stat=", "-p", &pid.to_string()])
        .output()
        .expect("run ps");
    let state = String::from_utf8_lossy(&output.stdout);
    output.status.success() && !state.trim().is_empty() && !state.trim().starts_with('Z')
}

/// The ids of a conversation's whole history.
pub fn history_ids(conn: &mut Conn, agent: &str, conversation: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut params = json!({"agent": agent, "conversation": conversation, "limit": 10000});
        if let Some(after) = &after {
            params["after"] = json!(after);
        }
        let page = conn.ok("events/list", params);
        ids.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return ids,
        }
    }
}

pub fn message(text: &str) -> Value {
    json!({"kind": "message", "role": "user", "content": text})
}

// ----------------------------------------------------------------- turns

/// A workspace directory next to the root, for conversations whose model
/// gets tools.
pub fn workspace(root: &Root) -> PathBuf {
    let workspace = root.dir.path().join("ws");
    std::fs::create_dir_all(&workspace).unwrap();
    workspace
}

/// Registers model `fake` served by `model` (its key in secret `fake-key`
/// when `key` is given), creates agent `a` using it with `approval`, and
/// conversation `c` bound to `workspace`.
pub fn agent_with_model(
    conn: &mut Conn,
    model: &exo_fake_model::FakeModel,
    key: Option<&str>,
    approval: &str,
    workspace: &Path,
) {
    let mut register = json!({
        "name": "fake",
        "provider": model.wire().name(),
        "base_url": model.base_url(),
        "upstream": "fake-upstream",
    });
    if let Some(key) = key {
        conn.ok("secret/set", json!({"name": "fake-key", "value": key}));
        register["secret"] = json!("fake-key");
    }
    conn.ok("model/register", register);
    // Commands on the host: these tests watch the processes a turn starts
    // by their pids (tests/cli/sandbox.rs covers the sandbox, daemon
    // included).
    conn.ok(
        "agent/create",
        json!({"name": "A", "slug": "a", "model": "fake", "approval": approval, "sandbox": "none"}),
    );
    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "C", "slug": "c", "workspace": workspace}),
    );
}

/// What a client saw of one `turn/run`: the notifications that came before
/// its response, and the response.
pub struct Seen {
    pub notifications: Vec<Value>,
    pub response: Value,
}

impl Seen {
    /// Splits what was read up to and including the response with `id`.
    pub fn new(mut read: Vec<Value>, id: &Value) -> Seen {
        let response = read.pop().expect("a response");
        assert_eq!(&response["id"], id, "{response}");
        for notification in &read {
            assert!(
                notification.get("method").is_some(),
                "a message before the response that is not a notification: {notification}"
            );
        }
        Seen {
            notifications: read,
            response,
        }
    }

    /// The result; panics on an error response.
    pub fn result(&self) -> &Value {
        match self.response.get("result") {
            Some(result) => result,
            None => panic!("turn/run failed: {}", self.response),
        }
    }

    /// The params of every notification with this method, in order.
    pub fn params(&self, method: &str) -> Vec<&Value> {
        self.notifications
            .iter()
            .filter(|n| n["method"] == method)
            .map(|n| &n["params"])
            .collect()
    }

    /// The streamed answer text, joined.
    pub fn streamed_text(&self) -> String {
        self.params("turn/delta")
            .iter()
            .filter_map(|params| params["text"].as_str())
            .collect()
    }

    /// The events of every `turn/events` notification, in order.
    pub fn events(&self) -> Vec<Value> {
        self.params("turn/events")
            .iter()
            .flat_map(|params| params["events"].as_array().unwrap().clone())
            .collect()
    }
}

impl Conn {
    /// Runs `turn/run` to its response, answering nothing.
    pub fn run_turn(&mut self, params: Value) -> Seen {
        let id = self.request("turn/run", params);
        let read = self.read_until(|message| message.get("id") == Some(&id));
        Seen::new(read, &id)
    }

    /// Reads a running `turn/run`'s notifications until the model has
    /// streamed `text`; returns what was read.
    pub fn until_streamed(&mut self, text: &str) -> Vec<Value> {
        let mut streamed = String::new();
        self.read_until(|message| {
            if message["method"] == "turn/delta" {
                streamed.push_str(message["params"]["text"].as_str().unwrap_or(""));
            }
            streamed == text
        })
    }

    /// The number of events in the conversation's history.
    pub fn length(&mut self, agent: &str, conversation: &str) -> u64 {
        self.ok(
            "conversation/get",
            json!({"agent": agent, "conversation": conversation}),
        )["length"]
            .as_u64()
            .unwrap()
    }
}

/// The events of `kind` among `events`.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The `kind` of each event.
pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A shell command for the model to call that writes its pid to
/// `sleeper.pid` in the workspace, then sleeps far longer than any wait in
/// these tests, so a turn that ends while it runs ended because of
/// something else.
pub const SLEEPER: &str = "echo $$ > sleeper.tmp && mv sleeper.tmp sleeper.pid && exec sleep 600";

/// The process a [`SLEEPER`] call started, killed on drop if it still runs
/// (when a test fails before it was stopped).
pub struct Sleeper {
    pub pid: u32,
}

impl Sleeper {
    /// Waits until the command in `workspace` has started.
    pub fn started(workspace: &Path) -> Sleeper {
        let file = workspace.join("sleeper.pid");
        wait_until("the shell command has started", || file.exists());
        let pid = std::fs::read_to_string(&file).unwrap();
        Sleeper {
            pid: pid.trim().parse().unwrap(),
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        if alive(self.pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// `turn/run` params for agent `a`, conversation `c`.
pub fn turn(input: &str) -> Value {
    json!({"agent": "a", "conversation": "c", "input": input})
}

/// Starts a watch on `a/c` from its head and returns once it is certainly
/// subscribed to live messages (deltas and approval questions are never
/// replayed, so a test of them needs this). Two marks are appended through
/// `writer`: the second is appended after the first was delivered, so it
/// comes from the read-and-subscribe step or live, never a replay page.
pub fn live_watch(writer: &mut Conn, watcher: &mut Conn) -> u64 {
    let head = history_ids(writer, "a", "c");
    let watch = watcher.ok(
        "events/watch",
        json!({"agent": "a", "conversation": "c", "after": head.last().unwrap()}),
    )["watch"]
        .as_u64()
        .unwrap();
    for mark in ["first", "second"] {
        writer.ok(
            "conversation/append",
            json!({"agent": "a", "conversation": "c", "events": [{"kind": "custom", "type": "test.mark", "payload": mark}]}),
        );
        assert_eq!(watched_events(watcher, watch, 1)[0]["payload"], mark);
    }
    watch
}

/// A shell command for the model to call that writes its process group
/// (the shell leads it) to `group` in the workspace, then keeps appending
/// to `ticks` from a background subshell (a grandchild of exo's, in the
/// same group) while the shell itself waits forever.
pub const TICKER: &str = "echo $$ > group.tmp; mv group.tmp group; \
    (while :; do date >> ticks; sleep 0.05; done) & while :; do sleep 1; done";

/// The process group a [`TICKER`] call started; every process still in it
/// is killed on drop (when a test fails with them running).
pub struct Ticker {
    pub group: u32,
    pub ticks: PathBuf,
}

impl Ticker {
    /// Waits until the command in `workspace` has started and `ticks` has
    /// grown.
    pub fn started(workspace: &Path) -> Ticker {
        let file = workspace.join("group");
        wait_until("the shell command has started", || file.exists());
        let group = std::fs::read_to_string(&file).unwrap();
        let ticker = Ticker {
            group: group.trim().parse().unwrap(),
            ticks: workspace.join("ticks"),
        };
        let size = ticker.size();
        wait_until("the command writes", || ticker.size() > size);
        ticker
    }

    /// The size of `ticks`.
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.ticks).map_or(0, |meta| meta.len())
    }

    /// Waits until `ticks` stops growing: two sizes read half a second
    /// apart (ten ticks) agree. Fails the test after [`TIMEOUT`].
    pub fn wait_until_still(&self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let before = self.size();
            std::thread::sleep(Duration::from_millis(500));
            if self.size() == before {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the command goes on writing to {}",
                self.ticks.display()
            );
        }
    }

    /// The processes of the group still running.
    pub fn processes(&self) -> Vec<u32> {
        processes_in_group(self.group)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if !self.processes().is_empty() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.group)])
                .status();
        }
    }
}

/// The processes in process group `group` that have not exited (zombies
/// do not count), from `/proc/*/stat`.
pub fn processes_in_group(group: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold anything, so the
        // fields are counted from the last parenthesis.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == group.to_string() && fields[0] != "Z" {
            found.push(pid);
        }
    }
    found
}
