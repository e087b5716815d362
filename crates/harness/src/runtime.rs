//! Where a runner comes from: the `@exo/harness` runtime for a module, the
//! command that starts it with a clean environment, and the check made
//! when an agent is given a module (load it once, synchronously).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use exo_protocol::harness::{RunnerInitializeResult, HARNESS_PROTOCOL_VERSION};

/// The runner script inside a runtime directory.
const RUNNER: &str = "dist/runner.js";

/// How long a module may take to load before it is given up on.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Variables a runner gets from exo's environment (each only if set);
/// nothing else, so no key exo holds reaches it.
const PASSED: [&str; 7] = [
    "PATH",
    "HOME",
    "LANG",
    "TERM",
    "TMPDIR",
    "NODE_PATH",
    "NODE_OPTIONS",
];

/// The `@exo/harness` runtime that runs a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// Its `dist/runner.js`.
    pub runner: PathBuf,
}

impl Runtime {
    /// Finds the runtime for `module`: `EXO_HARNESS_RUNTIME` (a directory
    /// holding `dist/runner.js`), else `node_modules/@exo/harness` in the
    /// module's directory or the nearest parent that has one, else the
    /// copy in exo's source tree when exo runs from it (spec/harness.md,
    /// "Lifetime").
    pub fn locate(module: &Path) -> Result<Runtime, String> {
        if let Some(dir) = exo_secrets::environment::var_os("EXO_HARNESS_RUNTIME") {
            let dir = PathBuf::from(dir);
            let runner = dir.join(RUNNER);
            if runner.is_file() {
                return Ok(Runtime { runner });
            }
            return Err(format!(
                "EXO_HARNESS_RUNTIME is {}, which holds no {RUNNER} (build the runtime: pnpm -r build)",
                dir.display()
            ));
        }
        for dir in module.ancestors().skip(1) {
            let runner = dir.join("node_modules/@exo/harness").join(RUNNER);
            if runner.is_file() {
                return Ok(Runtime { runner });
            }
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../typescript/harness");
        let runner = source.join(RUNNER);
        if runner.is_file() {
            return Ok(Runtime {
                runner: std::fs::canonicalize(&runner).unwrap_or(runner),
            });
        }
        Err(format!(
            "the TypeScript harness runtime (@exo/harness) is not installed for {}: add it next to the module (npm install @exo/harness) or set EXO_HARNESS_RUNTIME",
            module.display()
        ))
    }

    /// A module of the runtime's own (`dist/NAME`), from the runtime found
    /// as for a module anywhere: `EXO_HARNESS_RUNTIME`, else exo's source
    /// tree.
    pub fn builtin(name: &str) -> Result<PathBuf, String> {
        let runtime = Runtime::locate(Path::new("/"))?;
        let module = runtime
            .runner
            .parent()
            .map(|dist| dist.join(name))
            .ok_or_else(|| format!("the runtime at {} has no dist", runtime.runner.display()))?;
        if !module.is_file() {
            return Err(format!(
                "the TypeScript harness runtime has no {name} (build it: pnpm -r build)"
            ));
        }
        Ok(module)
    }

    /// The command that starts a runner in `cwd`: `node dist/runner.js`,
    /// in a process group of its own, with a clean environment.
    pub fn command(&self, cwd: &Path) -> Command {
        let mut command = Command::new("node");
        command
            .arg(&self.runner)
            .current_dir(cwd)
            .env_clear()
            .envs(passed_environment())
            .env("EXO_HARNESS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }
}

/// The variables a runner gets.
pub(crate) fn passed_environment() -> Vec<(OsString, OsString)> {
    // A variable exo's start-up took out of its environment (NODE_OPTIONS,
    // NODE_PATH: not among those a process that runs tools keeps) is read
    // from what was handed over.
    let mut passed: Vec<(OsString, OsString)> = PASSED
        .iter()
        .filter_map(|name| {
            exo_secrets::environment::var_os(name).map(|value| (OsString::from(name), value))
        })
        .collect();
    passed
        .extend(std::env::vars_os().filter(|(name, _)| name.to_string_lossy().starts_with("LC_")));
    passed
}

/// A message about starting `node`.
pub(crate) fn start_error(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        "cannot start node: it is not on PATH (the TypeScript harness needs Node.js 20 or later)"
            .to_string()
    } else {
        format!("cannot start node: {error}")
    }
}

/// Loads `module` once in a runner of its own and checks that it is a
/// harness; the error is the runner's one line. Blocking: what
/// `agent/create` and `agent/set` run before anything is written.
pub fn check_module(module: &Path) -> Result<RunnerInitializeResult, String> {
    if !module.is_file() {
        return Err(format!("module {} does not exist", module.display()));
    }
    let runtime = Runtime::locate(module)?;
    let cwd = module.parent().unwrap_or(Path::new("/"));
    let mut child = runtime
        .command(cwd)
        .spawn()
        .map_err(|err| start_error(&err))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // The runner's stderr is drained, so a chatty module cannot block it.
    let drain = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if text.len() < 4096 {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocol_version": HARNESS_PROTOCOL_VERSION,
            "module": module.display().to_string(),
            "agent": {"id": uuid::Uuid::nil(), "slug": "check", "name": "check"},
            "conversation": {"id": uuid::Uuid::nil(), "slug": "check"},
        },
    });
    let answer = std::thread::spawn(move || -> Result<serde_json::Value, String> {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.trim().is_empty() => continue,
                Some(Ok(line)) => {
                    let message: serde_json::Value = serde_json::from_str(&line)
                        .map_err(|_| "the runner wrote something that is not JSON".to_string())?;
                    if message.get("id") == Some(&serde_json::json!(1)) {
                        return Ok(message);
                    }
                }
                _ => return Err("the runner exited without answering".to_string()),
            }
        }
    });
    let written = serde_json::to_vec(&request)
        .ok()
        .map(|mut line| {
            line.push(b'\n');
            stdin.write_all(&line).and_then(|()| stdin.flush())
        })
        .unwrap_or(Ok(()));
    let started = std::time::Instant::now();
    while !answer.is_finished() && started.elapsed() < LOAD_TIMEOUT {
        std::thread::sleep(Duration::from_millis(5));
    }
    let outcome = if answer.is_finished() {
        answer
            .join()
            .unwrap_or_else(|_| Err("the check panicked".to_string()))
    } else {
        Err(format!(
            "module {} did not load within {} s",
            module.display(),
            LOAD_TIMEOUT.as_secs()
        ))
    };
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let stderr = drain.join().unwrap_or_default();
    written.map_err(|err| format!("cannot talk to the runner: {err}"))?;
    let message = outcome.map_err(|why| match stderr.lines().last() {
        Some(last) => format!("{why}: {last}"),
        None => why,
    })?;
    if let Some(error) = message.get("error") {
        let text = error
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("the module could not be loaded");
        return Err(text.to_string());
    }
    serde_json::from_value(message.get("result").cloned().unwrap_or_default())
        .map_err(|err| format!("the runner answered initialize unexpectedly: {err}"))
}
