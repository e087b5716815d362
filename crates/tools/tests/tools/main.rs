//! Tests of exo-tools through its public API, on real temporary directories
//! and real processes.
//!
//! One binary, one module per concern:
//! - `schema`: specs, argument validation, access.
//! - `files`: read_file, write_file, edit_file.
//! - `confine`: paths that try to leave the workspace or write into `.git`.
//! - `protect`: protected directories (exo's state directory).
//! - `search`: list_files and grep.
//! - `shell`: exit codes, timeouts, process groups, output caps, cancellation.
//! - `env`: the shell's scrubbed environment (the only test that changes
//!   this process's environment).

mod confine;
mod env;
mod files;
mod protect;
mod schema;
mod search;
mod shell;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exo_tools::{parse, run, Limits, ToolOutput, Workspace};
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// A workspace directory and a sibling directory outside it, both fresh.
struct Fixture {
    _temp: TempDir,
    /// The workspace root (canonical).
    root: PathBuf,
    /// A directory beside the workspace, for escape attempts to aim at.
    outside: PathBuf,
    workspace: Workspace,
}

impl Fixture {
    fn new() -> Fixture {
        let temp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(temp.path()).unwrap();
        let root = base.join("workspace");
        let outside = base.join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        let workspace = Workspace::new(&root).unwrap();
        Fixture {
            _temp: temp,
            root,
            outside,
            workspace,
        }
    }

    /// Writes a file below the workspace root, creating its parents.
    fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.root.join(relative)).unwrap()
    }

    /// Parses and runs a call with the default limits.
    async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        self.call_with(name, arguments, &Limits::default()).await
    }

    /// Parses and runs a call with these limits.
    async fn call_with(&self, name: &str, arguments: Value, limits: &Limits) -> ToolOutput {
        let call = parse(name, &arguments).unwrap();
        run(
            &self.workspace,
            &call,
            limits,
            &[],
            &CancellationToken::new(),
        )
        .await
    }
}

/// The message of a failed call; fails the test if the call succeeded.
fn error_of(output: &ToolOutput) -> String {
    assert!(output.is_error, "expected an error, got {}", output.output);
    let message = output.output["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {}", output.output))
        .to_owned();
    assert!(!message.contains('\n'), "not one line: {message:?}");
    message
}

/// The output of a successful call; fails the test if it failed.
fn ok(output: ToolOutput) -> Value {
    assert!(!output.is_error, "expected success, got {}", output.output);
    output.output
}

/// Whether a process is still running (a zombie counts as gone: it has
/// exited and only waits to be reaped).
fn alive(pid: i32) -> bool {
    if Path::new("/proc/self/stat").exists() {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(stat) => {
                let state = stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.chars().next());
                !matches!(state, Some('Z' | 'X') | None)
            }
        }
    } else {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// Waits up to three seconds for a process to be gone.
fn gone_soon(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Reads a pid a test command wrote into a file in the workspace.
fn read_pid(path: &Path) -> i32 {
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}
