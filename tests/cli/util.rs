//! Test support: a temporary exo root and a way to run `exo` in it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A temporary directory holding an exo root and a private config dir.
pub struct Env {
    dir: tempfile::TempDir,
}

/// The result of one `exo` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", self.stdout))
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join(".exo")
    }

    /// The directory a search for a root does not move up into: the
    /// temporary directory's parent.
    pub fn ceiling(&self) -> PathBuf {
        let dir = self.dir.path().canonicalize().expect("canonical tempdir");
        dir.parent().expect("a tempdir has a parent").to_path_buf()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// A command for `exo` with a hermetic environment: the temporary
    /// directory as working directory, its own config dir, no inherited exo
    /// variables, and no looking for a root above the temporary directory
    /// (`EXO_CEILING_DIRECTORIES` is its parent).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_exo"));
        command.args(args);
        self.hermetic(command)
    }

    /// `sh -c SCRIPT exo ARGS` in the same environment: the script runs
    /// `exo ARGS` with `exec "$0" "$@"`, after setting limits, say.
    pub fn shell(&self, script: &str, args: &[&str]) -> Command {
        let mut command = Command::new("sh");
        command
            .args(["-c", script, env!("CARGO_BIN_EXE_exo")])
            .args(args);
        self.hermetic(command)
    }

    fn hermetic(&self, mut command: Command) -> Command {
        command
            .current_dir(self.dir.path())
            .env_remove("EXO_ROOT")
            .env_remove("EXO_ENCRYPTION_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("RUST_LOG")
            .env_remove("EXO_LOG")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("EXO_CEILING_DIRECTORIES", self.ceiling())
            .stdin(Stdio::null());
        command
    }

    /// Runs `exo ARGS` with `stdin` as input.
    pub fn run_with(&self, args: &[&str], stdin: &[u8], envs: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        command.envs(envs.iter().copied());
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn exo");
        {
            let mut input = child.stdin.take().expect("stdin");
            // The child may exit before reading everything; that is its
            // answer, not a test failure.
            let _ = input.write_all(stdin);
        }
        to_run(child.wait_with_output().expect("wait for exo"))
    }

    /// Runs `exo ARGS` with no input.
    pub fn run(&self, args: &[&str]) -> Run {
        to_run(self.command(args).output().expect("run exo"))
    }

    /// Runs `exo ARGS` and requires success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "exo {args:?} failed: {}", run.stderr);
        run
    }

    /// Runs `exo --json ARGS` and requires success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok(&all).json()
    }

    /// Runs `exo ARGS`, requires exit 1 and a one-line error, and returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_one_line_failure(&run, args);
        run.stderr
    }

    /// Pipes NDJSON lines to `exo conversation append AGENT CONV`.
    pub fn append(&self, agent: &str, conv: &str, lines: &[Value]) -> Run {
        let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
        self.run_with(
            &["--json", "conversation", "append", agent, conv],
            input.as_bytes(),
            &[],
        )
    }

    /// Creates agent `a` and conversation `c` (no model needed).
    pub fn agent_and_conversation(&self) {
        self.ok(&["agent", "create", "A", "--slug", "a"]);
        self.ok(&["conversation", "create", "a", "C", "--slug", "c"]);
    }

    /// The whole history of a conversation.
    pub fn events(&self, agent: &str, conv: &str) -> Vec<Value> {
        let page = self.json(&["conversation", "events", agent, conv]);
        assert!(page["next_cursor"].is_null());
        page["events"].as_array().expect("events").clone()
    }

    /// The ids of a conversation's history.
    pub fn event_ids(&self, agent: &str, conv: &str) -> Vec<String> {
        self.events(agent, conv)
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Every byte under the root (database, WAL, lock files), for
    /// "never on disk" checks.
    pub fn root_bytes(&self) -> Vec<u8> {
        bytes_under(&self.root())
    }
}

/// Every byte of every file under `dir`, concatenated.
pub fn bytes_under(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in walk(dir) {
        bytes.extend(std::fs::read(entry).unwrap_or_default());
    }
    bytes
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

pub fn to_run(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn assert_one_line_failure(run: &Run, args: &[&str]) {
    assert_eq!(
        run.code, 1,
        "exo {args:?} should fail with 1; stdout: {} stderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.starts_with("exo: "),
        "error should start with 'exo: ': {:?}",
        run.stderr
    );
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "error should be one line: {:?}",
        run.stderr
    );
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

pub fn message(text: &str) -> Value {
    serde_json::json!({"kind": "message", "role": "user", "content": text})
}

pub fn custom(n: usize) -> Value {
    serde_json::json!({"kind": "custom", "type": "test.n", "payload": {"n": n}})
}

/// How long a wait in these helpers may take before the test fails.
const WAIT: Duration = Duration::from_secs(60);

/// Waits until `done` holds, failing the test after a minute.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
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
    /// apart (ten ticks) agree. Fails the test after a minute.
    pub fn wait_until_still(&self) {
        let deadline = Instant::now() + WAIT;
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
            .and_then(|name| name.parse::<u32>().ok())
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
