//! What a shell command the model runs on the host (`--sandbox none`) can
//! see of exo's own process: not the encryption key nor the API keys in
//! exo's environment, neither in
//! `/proc/PID/environ` nor in `/proc/PID/cmdline` of the exo process that
//! runs it or of any other exo process of the test, whether the turn runs
//! in `conversation send` itself or in a daemon, as root (which may read
//! any process's `environ`) and as an unprivileged user.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exo_fake_model::{Completion, FakeModel, Wire};
use serde_json::{json, Value};

use crate::util::{to_run, Run};

/// The unprivileged user the tests run exo as: `nobody`.
const NOBODY: u32 = 65534;

/// Who runs exo.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum As {
    Root,
    Unprivileged,
}

/// Where the turn runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Runs {
    InSend,
    InDaemon,
}

fn is_root() -> bool {
    current_uid() == 0
}

/// This process's real uid, from `/proc/self/status`.
fn current_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .expect("a Uid line")
}

/// A fresh value no other test uses, for a secret to look for.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::now_v7().simple(),
        uuid::Uuid::now_v7().simple()
    )
}

/// A temporary directory the user running exo owns, with a root, a
/// config directory and a workspace in it, and the secrets put in exo's
/// environment.
struct Setup {
    dir: tempfile::TempDir,
    user: Option<u32>,
    model: FakeModel,
    /// The master key, 64 hex digits.
    encryption_key: String,
    /// A provider key, in `EXO_ISOLATION_API_KEY`.
    api_key: String,
    /// Another secret, in `EXO_ISOLATION_TOKEN`.
    token: String,
}

impl Setup {
    fn new(user: Option<u32>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["config", "ws"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        if let Some(uid) = user {
            for path in [
                dir.path().to_path_buf(),
                dir.path().join("config"),
                dir.path().join("ws"),
            ] {
                chown(&path, Some(uid), Some(uid)).unwrap();
            }
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // Two UUIDs: 64 hex digits.
        let encryption_key = unique("");
        Setup {
            dir,
            user,
            model: FakeModel::start(Wire::OpenAiChat),
            encryption_key,
            api_key: unique("sk-isolation-"),
            token: unique("tok-"),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join(".exo")
    }

    fn workspace(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn secrets(&self) -> [(&'static str, &str); 3] {
        [
            ("EXO_ENCRYPTION_KEY", &self.encryption_key),
            ("EXO_ISOLATION_API_KEY", &self.api_key),
            ("EXO_ISOLATION_TOKEN", &self.token),
        ]
    }

    /// `exo --root ROOT ARGS` as the setup's user, with a small, fixed
    /// environment holding the secrets.
    fn command(&self, args: &[&str]) -> Command {
        let exo = env!("CARGO_BIN_EXE_exo");
        let mut command = match self.user {
            Some(uid) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .args(["--clear-groups", "--"])
                    .arg(exo);
                command
            }
            None => Command::new(exo),
        };
        command
            .arg("--root")
            .arg(self.root())
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .envs(self.secrets())
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        to_run(self.command(args).output().expect("run exo"))
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "exo {args:?} failed:\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run
    }

    /// Registers the fake model with the key from the environment, an
    /// agent using it and a conversation in the workspace.
    fn agent(&self) {
        self.ok(&[
            "secret",
            "set",
            "provider-key",
            "--env",
            "EXO_ISOLATION_API_KEY",
        ]);
        self.ok(&[
            "model",
            "register",
            "m",
            "--provider",
            Wire::OpenAiChat.name(),
            "--base-url",
            &self.model.base_url(),
            "--upstream",
            "fake",
            "--secret",
            "provider-key",
        ]);
        self.ok(&[
            "agent",
            "create",
            "A",
            "--slug",
            "a",
            "--model",
            "m",
            "--approval",
            "auto",
            // On the host: what these tests check is what a command there
            // can see of exo (tests/cli/sandbox.rs checks the sandbox).
            "--sandbox",
            "none",
        ]);
        self.ok(&[
            "conversation",
            "create",
            "a",
            "C",
            "--slug",
            "c",
            "--workspace",
            self.workspace().to_str().unwrap(),
        ]);
    }

    /// Starts `exo daemon` and waits until it answers.
    fn daemon(&self) -> Daemon {
        let child = self
            .command(&["daemon"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn exo daemon");
        let mut daemon = Daemon(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.run(&["daemon", "status"]).code != 0 {
            assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon exited");
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }
}

/// A running daemon, killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A shell script that prints `environ` and `cmdline` of every exo
/// process among its ancestors, and of every exo process of this test (its
/// command line names the test's root; this keeps other processes'
/// environments out of the test), each after a `== exo PID` line.
fn spy_script(root: &Path) -> String {
    let exo = env!("CARGO_BIN_EXE_exo");
    let root = root.to_str().unwrap();
    format!(
        r#"show() {{
  args=$(tr '\0' ' ' < /proc/$1/cmdline 2>/dev/null)
  case "$args" in
    "{exo} "*"{root}"*)
      echo "== exo $1 ($2)"
      tr '\0' '\n' < /proc/$1/environ
      echo "cmdline: $args" ;;
  esac
}}
p=$PPID
while [ "$p" -gt 1 ]; do
  show $p ancestor
  p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status)
done
for d in /proc/[0-9]*; do
  show ${{d#/proc/}} process
done
true"#
    )
}

/// One turn whose shell call runs [`spy_script`]; checks that the script
/// saw the exo processes and that no secret reached the command, the
/// recorded events, the model or the terminal.
fn secrets_stay_out_of_reach(who: As, runs: Runs) {
    let user = match who {
        As::Root if !is_root() => {
            eprintln!("skipped: the root variant needs the tests to run as root");
            return;
        }
        As::Root => None,
        As::Unprivileged if is_root() => Some(NOBODY),
        As::Unprivileged => None,
    };
    let setup = Setup::new(user);
    setup.agent();
    setup
        .model
        .push(Completion::text("Looking. ").with_tool_call(
            "call_spy",
            "shell",
            json!({"command": spy_script(&setup.root())}),
        ));
    setup.model.push(Completion::text("Seen."));
    let daemon = (runs == Runs::InDaemon).then(|| setup.daemon());
    let send = setup.ok(&["conversation", "send", "a", "c", "Look around."]);
    drop(daemon);

    let events = {
        let run = setup.ok(&["--json", "conversation", "events", "a", "c"]);
        run.json()["events"].as_array().unwrap().clone()
    };
    let result = events
        .iter()
        .find(|event| event["kind"] == "tool_result")
        .unwrap_or_else(|| panic!("no tool result: {events:#?}"));
    let stdout = result["output"]["stdout"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"));
    let stderr = result["output"]["stderr"].as_str().unwrap();

    // The script found the exo processes: the one running the command
    // among its ancestors, and with a daemon both it and `send`.
    assert_eq!(
        stdout.matches("(ancestor)").count(),
        1,
        "{stdout}\n{stderr}"
    );
    let expected = match runs {
        Runs::InSend => 1,
        Runs::InDaemon => 2,
    };
    assert_eq!(
        stdout.matches("(process)").count(),
        expected,
        "{stdout}\n{stderr}"
    );
    match who {
        // Root reads every environment, so what is there was read.
        As::Root => assert!(stdout.contains("\nPATH="), "{stdout}\n{stderr}"),
        // Non-dumpable: not even the same user reads it.
        As::Unprivileged => assert!(stderr.contains("Permission denied"), "{stdout}\n{stderr}"),
    }

    let requests: Vec<Value> = setup
        .model
        .requests()
        .iter()
        .map(|request| request.body.clone())
        .collect();
    assert_eq!(requests.len(), 2);
    // The key set with `--env` was opened with the master key from the
    // environment: both were found after the start-up moved them.
    assert_eq!(
        setup.model.requests()[0].header("authorization"),
        format!("Bearer {}", setup.api_key)
    );
    let everything = [
        stdout.to_owned(),
        stderr.to_owned(),
        Value::Array(events.clone()).to_string(),
        Value::Array(requests).to_string(),
        send.stdout,
        send.stderr,
    ]
    .join("\n");
    for (name, value) in setup.secrets() {
        assert!(
            !everything.contains(value),
            "{name}'s value reached the command:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn as_root_in_send() {
    secrets_stay_out_of_reach(As::Root, Runs::InSend);
}

#[test]
fn as_root_in_a_daemon() {
    secrets_stay_out_of_reach(As::Root, Runs::InDaemon);
}

#[test]
fn as_an_unprivileged_user_in_send() {
    secrets_stay_out_of_reach(As::Unprivileged, Runs::InSend);
}

#[test]
fn as_an_unprivileged_user_in_a_daemon() {
    secrets_stay_out_of_reach(As::Unprivileged, Runs::InDaemon);
}

/// `EXO_HANDOVER_FD` is exo's own: set by anyone else, exo refuses to
/// start, with one line, rather than read a descriptor it did not open.
#[test]
fn a_forged_handover_is_refused() {
    let env = crate::util::Env::new();
    for value in ["0", "1", "2", "3", "99", "not a number"] {
        let run = env.run_with(&["agent", "list"], b"", &[("EXO_HANDOVER_FD", value)]);
        crate::util::assert_one_line_failure(&run, &["agent", "list"]);
        assert!(
            run.stderr.contains(
                "EXO_HANDOVER_FD is for exo's own use, and does not name what exo handed over"
            ),
            "{value}: {}",
            run.stderr
        );
    }
    assert!(!env.root().exists(), "nothing was created");
}
