//! The example scripts in `examples/`, run for real against a real daemon:
//! `python3 examples/python/watch.py ROOT` and `node examples/node/watch.mjs
//! ROOT` must each record a turn and print the watched events, in order.
//!
//! Python 3 and Node are required: when either is missing the test fails
//! and says so, rather than passing without having run anything.
//!
//! Self-contained on purpose (std, serde_json and tempfile only), so the
//! scripts are checked against the daemon as a newcomer would run them.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one script run may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// A daemon serving a fresh temporary root. Dropping it kills the process,
/// so a failing test never leaves one behind.
struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = File::create(dir.path().join("daemon.log")).expect("daemon log");
        let child = exo(dir.path())
            .args(["--root", &root_arg(dir.path()), "daemon"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning exo daemon");
        let mut daemon = Daemon {
            child: Some(child),
            dir,
        };
        let socket = daemon.root().join("exo.sock");
        let deadline = Instant::now() + START_TIMEOUT;
        while !socket.exists() {
            if let Ok(Some(status)) = daemon.child.as_mut().expect("running").try_wait() {
                panic!("exo daemon exited early ({status}):\n{}", daemon.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "exo daemon did not create {} within {START_TIMEOUT:?}:\n{}",
                    socket.display(),
                    daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join(".exo")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Stops the daemon the ordinary way, `exo daemon stop`, and checks
    /// that it exits cleanly.
    fn stop(mut self) {
        let output = exo(self.dir.path())
            .args(["--root", &root_arg(self.dir.path()), "daemon", "stop"])
            .output()
            .expect("running exo daemon stop");
        assert!(
            output.status.success(),
            "exo daemon stop failed: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        let mut child = self.child.take().expect("running");
        let status = wait_bounded(&mut child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("exo daemon did not exit after `daemon stop`"));
        assert!(
            status.success(),
            "exo daemon exited with {status}:\n{}",
            self.log()
        );
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

fn root_arg(dir: &Path) -> String {
    dir.join(".exo").display().to_string()
}

/// `exo` with a hermetic environment: no inherited exo variables, a private
/// config dir.
fn exo(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exo"));
    hermetic(&mut command, dir);
    command
}

fn hermetic(command: &mut Command, dir: &Path) {
    command
        .current_dir(dir)
        .env_remove("EXO_ROOT")
        .env_remove("EXO_ENCRYPTION_KEY")
        .env_remove("RUST_LOG")
        .env_remove("EXO_LOG")
        .env("XDG_CONFIG_HOME", dir.join("config"));
}

/// Waits for a child at most `limit`; `None` if it is still running.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct ScriptRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `interpreter script ROOT` from the daemon's temporary directory,
/// killing it if it outlives [`SCRIPT_TIMEOUT`].
fn run_script(daemon: &Daemon, interpreter: &str, script: &str) -> ScriptRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    assert!(script.is_file(), "{} is missing", script.display());
    let mut command = Command::new(interpreter);
    hermetic(&mut command, daemon.dir.path());
    let spawned = command
        .arg(&script)
        .arg(daemon.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{interpreter}` is not installed or not on PATH; the examples test runs \
             {} with it, so install {interpreter} to run the daemon tests",
            script.display()
        ),
        Err(err) => panic!("cannot run {interpreter}: {err}"),
    };
    // Read both pipes on threads, so a chatty script cannot block on a full
    // pipe while we wait for it.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let status = wait_bounded(&mut child, SCRIPT_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let run = ScriptRun {
        status: status.unwrap_or_else(|| child.wait().expect("reaping")),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        status.is_some(),
        "{interpreter} {} did not finish within {SCRIPT_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
        script.display(),
        run.stdout,
        run.stderr,
        daemon.log()
    );
    run
}

/// Checks a run: exit 0 and exactly one turn's events, in commit order.
fn assert_tour(daemon: &Daemon, what: &str, run: &ScriptRun) {
    let context = || {
        format!(
            "{what}: exit {}\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
            run.status,
            run.stdout,
            run.stderr,
            daemon.log()
        )
    };
    assert!(run.status.success(), "{}", context());
    let lines: Vec<(&str, &str)> = run
        .stdout
        .lines()
        .map(|line| {
            line.split_once('\t')
                .unwrap_or_else(|| panic!("{line:?} is not KIND<TAB>summary; {}", context()))
        })
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|(kind, _)| *kind).collect();
    // Exactly these, so an event delivered twice (say, across the switch
    // from replay to live) or missed fails too.
    assert_eq!(
        kinds,
        [
            "conversation_created",
            "session_started",
            "turn_started",
            "message",
            "message",
            "turn_ended",
        ],
        "{}",
        context()
    );
    assert!(lines[3].1.starts_with("user: "), "{}", context());
    assert!(lines[4].1.starts_with("assistant: "), "{}", context());
    assert!(lines[5].1.ends_with(" completed"), "{}", context());
    // turn_started and turn_ended name the same turn.
    let turn = lines[2].1.trim_start_matches("turn ");
    assert!(
        lines[5].1.starts_with(&format!("turn {turn} ")),
        "{}",
        context()
    );
}

#[test]
fn example_scripts_watch_a_turn() {
    let daemon = Daemon::start();

    let python = run_script(&daemon, "python3", "examples/python/watch.py");
    assert_tour(&daemon, "python3 examples/python/watch.py", &python);

    // The agent exists now: node reuses it through agent/get.
    let node = run_script(&daemon, "node", "examples/node/watch.mjs");
    assert_tour(&daemon, "node examples/node/watch.mjs", &node);

    // And python again, on the reuse path, in a conversation of its own.
    let again = run_script(&daemon, "python3", "examples/python/watch.py");
    assert_tour(&daemon, "python3 examples/python/watch.py (again)", &again);
    let conversation = |run: &ScriptRun| run.stdout.lines().next().map(str::to_owned);
    assert_ne!(conversation(&python), conversation(&again));

    daemon.stop();
}
