//! Helpers shared by the store's integration tests.
//!
//! Every test works in its own temporary directory and never reads the
//! user's configuration or key file: secrets use explicit [`Key`] values.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use exo_core::{ContentPart, Event, EventData, Role};
use exo_secrets::Key;
use exo_store::{EventQuery, OpenMode, Store};
use tempfile::TempDir;

/// The agent every test creates.
pub const AGENT: &str = "agent";

/// A fresh temporary directory.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("exo-store-test-")
        .tempdir()
        .expect("creating a temporary directory")
}

/// A fresh store with one agent, in its own temporary directory.
pub fn new_store() -> (TempDir, Store) {
    let dir = temp_dir();
    let store = Store::open(dir.path().join("root"), OpenMode::Create).expect("creating the store");
    store
        .create_agent("Agent", Some(AGENT), Default::default())
        .expect("creating the agent");
    (dir, store)
}

/// Opens the existing store under `dir/root`.
pub fn reopen(dir: &Path) -> Store {
    Store::open(dir.join("root"), OpenMode::Existing).expect("opening the existing store")
}

/// A conversation of [`AGENT`] with the given slug.
pub fn new_conversation(store: &Store, slug: &str) -> exo_store::Conversation {
    store
        .create_conversation(AGENT, &format!("Conversation {slug}"), Some(slug), None)
        .expect("creating a conversation")
}

/// A message with one text part.
pub fn message(role: Role, text: &str) -> EventData {
    EventData::Message {
        role,
        content: vec![ContentPart::Text {
            text: text.to_string(),
        }],
        usage: None,
        model: None,
    }
}

/// A custom event of type `test.<name>`.
pub fn custom(name: &str, payload: serde_json::Value) -> EventData {
    EventData::Custom {
        custom_type: format!("test.{name}"),
        payload,
    }
}

/// The whole history of a conversation, read page by page with
/// `next_cursor`, oldest first.
pub fn history_paged(store: &Store, agent: &str, conversation: &str, page: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut after = None;
    for _ in 0..1_000_000 {
        let query = EventQuery {
            after,
            limit: page,
            ..Default::default()
        };
        let result = store
            .events(agent, conversation, &query)
            .expect("reading the history");
        assert!(
            result.events.len() <= page.max(1),
            "page larger than its limit"
        );
        events.extend(result.events);
        match result.next_cursor {
            Some(cursor) => {
                assert_eq!(
                    Some(cursor),
                    events.last().map(|e| e.id),
                    "next_cursor must be the page's last event"
                );
                after = Some(cursor);
            }
            None => return events,
        }
    }
    panic!("history paging never ended")
}

/// The whole history of a conversation, oldest first.
pub fn history(store: &Store, agent: &str, conversation: &str) -> Vec<Event> {
    history_paged(store, agent, conversation, exo_store::MAX_PAGE)
}

/// A master key made of one repeated byte.
pub fn key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

/// The value of `var` when this test binary was started as a child process
/// by [`spawn_self`], `None` in a normal test run.
pub fn child_role(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|value| !value.is_empty())
}

/// A child process running one test of this same test binary. Killed (and
/// reaped) when dropped, so a failing parent never leaves it behind.
pub struct SelfChild {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

/// Runs the test `test_name` of the current test binary in a child process
/// with the given environment. The child's stdout is piped to the parent.
pub fn spawn_self(test_name: &str, envs: &[(&str, String)]) -> SelfChild {
    let exe = std::env::current_exe().expect("locating the test binary");
    let mut command = Command::new(exe);
    command
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawning the child test process");
    let stdout = child.stdout.take().expect("piped stdout");
    SelfChild {
        child,
        lines: BufReader::new(stdout).lines(),
    }
}

impl SelfChild {
    /// The rest of the next line that contains `marker`, after the marker.
    /// Lines of the test harness are skipped. `None` once the child's stdout
    /// closes (it exited or died).
    pub fn next_marked(&mut self, marker: &str) -> Option<String> {
        for line in self.lines.by_ref() {
            let line = line.expect("reading the child's stdout");
            if let Some(at) = line.find(marker) {
                return Some(line[at + marker.len()..].trim().to_string());
            }
        }
        None
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill(&mut self) {
        // The child may have exited already; kill then fails harmlessly.
        let _ = self.child.kill();
        self.child.wait().expect("reaping the child");
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("polling the child").is_none()
    }
}

impl Drop for SelfChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes one line to the real stdout (not the harness's capture) and
/// flushes it, for the parent to read.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("writing to stdout");
    out.flush().expect("flushing stdout");
}

/// A small deterministic PRNG (SplitMix64) for seeded test choices.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}
