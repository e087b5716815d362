//! The TypeScript harness through the daemon: a runner per conversation,
//! warm between turns; `turn/cancel` on a harness that ignores it; the
//! runner's end with the daemon's; `agent/set` over JSON-RPC.

use std::path::PathBuf;

use exo_fake_model::{Completion, FakeModel, Wire};
use serde_json::json;

use crate::support::{
    agent_with_model, alive, kinds, of_kind, turn, wait_until, workspace, Conn, Daemon, Root,
};

/// A module of the repository, as an absolute path.
fn module(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    assert!(path.is_file(), "{} is missing", path.display());
    path.display().to_string()
}

/// A daemon, a fake model and agent `a` (approval `auto`) with
/// conversation `c` on a workspace, its harness the TypeScript `module`.
struct Harnessed {
    model: FakeModel,
    daemon: Daemon,
    /// Dropped last (fields drop in order): the daemon runs in it.
    _root: Root,
}

impl Harnessed {
    fn new(path: &str) -> Harnessed {
        Harnessed::with_env(path, &[])
    }

    /// With extra environment variables for the daemon.
    fn with_env(path: &str, envs: &[(&str, &str)]) -> Harnessed {
        let runner = match std::env::var_os("EXO_HARNESS_RUNTIME") {
            Some(dir) => PathBuf::from(dir).join("dist/runner.js"),
            None => {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("typescript/harness/dist/runner.js")
            }
        };
        assert!(
            runner.is_file(),
            "the TypeScript harness runtime is not built: run scripts/setup-node"
        );
        let root = Root::new();
        let workspace = workspace(&root);
        let model = FakeModel::start(Wire::OpenAiChat);
        let daemon = root.daemon_with(&[], envs);
        let mut conn = daemon.connect();
        agent_with_model(&mut conn, &model, None, "auto", &workspace);
        conn.ok(
            "agent/set",
            json!({"agent": "a", "harness": "typescript", "module": module(path)}),
        );
        Harnessed {
            model,
            daemon,
            _root: root,
        }
    }

    /// The runners the daemon has started and that still run.
    fn runners(&self) -> Vec<u32> {
        runners_of(self.daemon.pid())
    }
}

/// The live `node .../runner.js` children of `parent`.
fn runners_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // A zombie is not running.
        if fields.first() == Some(&"Z") || fields.get(1) != Some(&parent.to_string().as_str()) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("runner.js") {
            found.push(pid);
        }
    }
    found
}

/// Every `node .../runner.js` process on the machine whose working
/// directory is under `dir` (found by cwd, so an orphan is found too).
fn runners_in(dir: &std::path::Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("runner.js") {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            if cwd.starts_with(dir) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}

#[test]
fn a_typescript_turn_streams_over_json_rpc_and_its_runner_stays_warm() {
    let harnessed = Harnessed::new("examples/typescript/basic-harness.ts");
    harnessed
        .model
        .push(Completion::text("Hello from TypeScript."));
    harnessed.model.push(Completion::text("Again."));
    let mut conn = harnessed.daemon.connect();
    let seen = conn.run_turn(turn("Hi"));
    let result = seen.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["text"], "Hello from TypeScript.");
    assert_eq!(seen.streamed_text(), "Hello from TypeScript.");
    assert_eq!(
        kinds(&seen.events()),
        [
            "session_started",
            "turn_started",
            "workspace_snapshot",
            "message",
            "message",
            "workspace_snapshot",
            "turn_ended"
        ]
    );
    let runners = harnessed.runners();
    assert_eq!(runners.len(), 1, "{runners:?}");

    // The second turn, from another client, uses the same runner.
    let mut other = harnessed.daemon.connect();
    let seen = other.run_turn(turn("Again"));
    assert_eq!(seen.result()["text"], "Again.");
    assert_eq!(harnessed.runners(), runners);
}

#[test]
fn a_harness_that_ignores_the_cancel_is_killed_after_the_grace() {
    let harnessed = Harnessed::new("tests/fixtures/harness/hangs.ts");
    let mut conn = harnessed.daemon.connect();
    let mut other = harnessed.daemon.connect();
    let id = conn.request("turn/run", turn("Hang"));
    let mut read = conn.until_streamed("hanging now");
    let turn_id = read
        .iter()
        .find(|m| m["method"] == "turn/delta")
        .expect("a delta")["params"]["turn"]
        .clone();
    let runner = harnessed.runners();
    assert_eq!(runner.len(), 1, "{runner:?}");
    assert_eq!(other.ok("turn/cancel", json!({"turn": turn_id})), json!({}));
    // The daemon answers others while it waits out the grace.
    assert!(other.call("ping", json!({})).get("result").is_some());
    read.extend(conn.read_until(|m| m.get("id") == Some(&id)));
    let response = read.last().unwrap();
    assert_eq!(response["result"]["status"], "cancelled", "{response}");
    wait_until("the runner is killed", || !alive(runner[0]));
    let events = conn.ok("events/list", json!({"agent": "a", "conversation": "c"}))["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(of_kind(&events, "turn_ended")[0]["status"], "cancelled");

    // The conversation goes on, under another harness.
    conn.ok(
        "agent/set",
        json!({"agent": "a", "module": module("examples/typescript/basic-harness.ts")}),
    );
    harnessed.model.push(Completion::text("Back."));
    let seen = conn.run_turn(turn("Again"));
    assert_eq!(seen.result()["status"], "completed");
}

#[test]
fn runners_end_with_the_daemon() {
    for signal in ["-TERM", "-KILL"] {
        let mut harnessed = Harnessed::new("examples/typescript/basic-harness.ts");
        harnessed.model.push(Completion::text("Hi."));
        let mut conn = harnessed.daemon.connect();
        assert_eq!(conn.run_turn(turn("Hi")).result()["status"], "completed");
        let runners = harnessed.runners();
        assert_eq!(runners.len(), 1, "{runners:?}");
        harnessed.daemon.signal(signal);
        // Its stdin closes with the daemon, whichever way the daemon ends.
        wait_until("the runner exits", || !alive(runners[0]));
        assert!(runners_in(harnessed._root.dir.path()).is_empty());
    }
}

#[test]
fn agent_set_refuses_a_module_that_is_not_a_harness_and_changes_nothing() {
    let harnessed = Harnessed::new("examples/typescript/basic-harness.ts");
    let mut conn: Conn = harnessed.daemon.connect();
    let before = conn.ok("agent/get", json!({"agent": "a"}));
    for (params, why) in [
        (
            json!({"agent": "a", "module": module("tests/fixtures/harness/not-a-harness.ts")}),
            "defineHarness",
        ),
        (
            json!({"agent": "a", "module": module("tests/fixtures/harness/broken.ts")}),
            "cannot load module",
        ),
        (
            json!({"agent": "a", "module": "/nonexistent/m.ts"}),
            "does not exist",
        ),
        (json!({"agent": "a", "module": "relative.ts"}), "absolute"),
        (
            json!({"agent": "a", "harness": "builtin", "module": module("examples/typescript/basic-harness.ts")}),
            "takes no module",
        ),
        (
            json!({"agent": "a", "harness": "teleport"}),
            "unknown variant `teleport`",
        ),
        (
            json!({"agent": "a", "harness": "cursor", "module": module("examples/typescript/basic-harness.ts")}),
            "takes no module",
        ),
    ] {
        let error = conn.err("agent/set", params.clone());
        assert_eq!(error["code"], -32602, "{params}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(why), "{params}: {message}");
        assert!(!message.contains('\n'), "{message}");
    }
    assert_eq!(conn.ok("agent/get", json!({"agent": "a"})), before);
    harnessed.model.push(Completion::text("Still fine."));
    assert_eq!(conn.run_turn(turn("Hi")).result()["status"], "completed");
}

#[test]
fn idle_runners_are_stopped_and_at_most_so_many_stay_warm() {
    let harnessed = Harnessed::with_env(
        "examples/typescript/basic-harness.ts",
        &[("EXO_HARNESS_IDLE_SECS", "2"), ("EXO_HARNESS_WARM", "2")],
    );
    let mut conn = harnessed.daemon.connect();
    for conversation in ["c2", "c3"] {
        let workspace = harnessed._root.dir.path().join(conversation);
        std::fs::create_dir(&workspace).unwrap();
        conn.ok(
            "conversation/create",
            json!({"agent": "a", "name": conversation, "slug": conversation, "workspace": workspace}),
        );
    }
    // Three conversations, two warm runners: the least recently used goes.
    let mut started = Vec::new();
    for conversation in ["c", "c2", "c3"] {
        harnessed.model.push(Completion::text("Hi."));
        let seen =
            conn.run_turn(json!({"agent": "a", "conversation": conversation, "input": "Hi"}));
        assert_eq!(seen.result()["status"], "completed");
        let now = harnessed.runners();
        for pid in &now {
            if !started.contains(pid) {
                started.push(*pid);
            }
        }
        assert!(now.len() <= 2, "{now:?}");
    }
    assert_eq!(started.len(), 3, "{started:?}");
    wait_until("the first runner is stopped", || !alive(started[0]));
    // Idle ones are stopped without another turn to notice.
    wait_until("idle runners are stopped", || {
        harnessed.runners().is_empty()
    });
    // And a conversation whose runner was stopped goes on.
    harnessed.model.push(Completion::text("Back."));
    assert_eq!(conn.run_turn(turn("Again")).result()["status"], "completed");
}

#[test]
fn a_rewind_or_a_delete_stops_the_runner_so_no_memory_outlives_the_log() {
    let harnessed = Harnessed::new("tests/fixtures/harness/counter.ts");
    let mut conn = harnessed.daemon.connect();
    let text = |conn: &mut Conn| conn.run_turn(turn("Count")).result()["text"].clone();
    assert_eq!(text(&mut conn), "turn 1 of this runner");
    let first_end = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "kind": "turn_ended"}),
    )["events"][0]["id"]
        .clone();
    assert_eq!(text(&mut conn), "turn 2 of this runner");
    let runner = harnessed.runners();
    assert_eq!(runner.len(), 1);

    // After a rewind the next turn runs in a new runner: what the old one
    // learnt on the abandoned branch is gone with it.
    conn.ok(
        "conversation/rewind",
        json!({"agent": "a", "conversation": "c", "to": first_end}),
    );
    wait_until("the runner is stopped", || !alive(runner[0]));
    assert_eq!(text(&mut conn), "turn 1 of this runner");

    let runner = harnessed.runners();
    assert_eq!(runner.len(), 1);
    conn.ok(
        "conversation/delete",
        json!({"agent": "a", "conversation": "c"}),
    );
    wait_until("the runner is stopped", || !alive(runner[0]));

    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "D", "slug": "d"}),
    );
    conn.run_turn(json!({"agent": "a", "conversation": "d", "input": "Count"}));
    let runner = harnessed.runners();
    assert_eq!(runner.len(), 1);
    conn.ok("agent/delete", json!({"agent": "a"}));
    wait_until("the runner is stopped", || !alive(runner[0]));
}

#[test]
fn another_client_cannot_record_in_or_finish_an_executors_turn() {
    let harnessed = Harnessed::new("tests/fixtures/harness/hangs.ts");
    let mut conn = harnessed.daemon.connect();
    let mut other = harnessed.daemon.connect();
    let id = conn.request("turn/run", turn("Hang"));
    let read = conn.until_streamed("hanging now");
    let turn_id = read
        .iter()
        .find(|m| m["method"] == "turn/delta")
        .expect("a delta")["params"]["turn"]
        .clone();
    let length = other.length("a", "c");
    for (method, params) in [
        (
            "turn/append",
            json!({"turn": turn_id, "events": [{"kind": "message", "role": "assistant", "content": "forged"}]}),
        ),
        (
            "turn/finish",
            json!({"turn": turn_id, "status": "completed"}),
        ),
    ] {
        let error = other.err(method, params);
        assert_eq!(error["code"], -32003, "{method}: {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("only it records in the turn"),
            "{error}"
        );
    }
    assert_eq!(other.length("a", "c"), length);
    other.ok("turn/cancel", json!({"turn": turn_id}));
    let response = conn.response(&id);
    assert_eq!(response["result"]["status"], "cancelled", "{response}");
}
