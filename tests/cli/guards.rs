//! What the built-in executor's tools may not touch, and a turn that loses
//! its workspace, through `exo conversation send` with a scripted model.

use serde_json::{json, Value};

use crate::util::Env;

/// Registers a scripted model replaying `script`, an agent with `auto`
/// approvals and a conversation `a/c` bound to `workspace`.
fn scripted_agent(env: &Env, script: Value, workspace: &str) {
    let path = env.dir().join("script.json");
    std::fs::write(&path, script.to_string()).unwrap();
    env.ok(&[
        "model",
        "register",
        "s",
        "--provider",
        "scripted",
        "--base-url",
        path.to_str().unwrap(),
    ]);
    env.ok(&["agent", "create", "A", "--model", "s", "--approval", "auto"]);
    env.ok(&["conversation", "create", "a", "C", "--workspace", workspace]);
}

fn results(env: &Env) -> Vec<Value> {
    let page = env.json(&["conversation", "events", "a", "c", "--kind", "tool_result"]);
    page["events"].as_array().unwrap().clone()
}

/// With the default root (`.exo`, relative to the current directory) and
/// the key file (`$XDG_CONFIG_HOME/exo/key`) both inside the workspace,
/// no file tool reads, writes or lists them.
#[test]
fn the_store_and_the_key_file_are_out_of_reach() {
    let env = Env::new();
    let secret = env.run_with(
        &["secret", "set", "k", "--env", "K"],
        b"",
        &[("K", "value-1234")],
    );
    assert_eq!(secret.code, 0, "{}", secret.stderr);
    assert!(env.config_dir().join("exo/key").exists());
    let key_path = "config/exo/key";
    scripted_agent(
        &env,
        json!({"responses": [
            {"tool_calls": [
                {"name": "read_file", "arguments": {"path": ".exo/exo.db"}},
                {"name": "read_file", "arguments": {"path": key_path}},
                {"name": "write_file", "arguments": {"path": key_path, "content": "x"}},
                {"name": "list_files", "arguments": {}}
            ]},
            {"text": "done"}
        ]}),
        ".",
    );
    env.ok(&["conversation", "send", "a", "c", "look around"]);
    let results = results(&env);
    assert_eq!(
        results[0]["output"]["error"],
        "refusing to touch exo's state directory: .exo/exo.db"
    );
    assert_eq!(
        results[1]["output"]["error"],
        format!("refusing to touch exo's state directory: {key_path}")
    );
    assert_eq!(results[2]["is_error"], true);
    let listed = results[3]["output"]["files"].to_string();
    assert!(listed.contains("script.json"), "{listed}");
    assert!(
        !listed.contains(".exo") && !listed.contains("config/exo"),
        "{listed}"
    );
    // The key is unchanged, and never reached the log.
    let key = std::fs::read(env.config_dir().join("exo/key")).unwrap();
    assert_ne!(key, b"x");
    let log = env
        .run(&["--json", "conversation", "events", "a", "c"])
        .stdout;
    assert!(!log.contains(String::from_utf8_lossy(&key).trim()));
}

/// A turn whose workspace disappears under it: the next tool cannot run,
/// which fails the turn (an `error` event, code `tool`); the turn-end
/// snapshot fails too (an `error` event, code `snapshot`), and the turn
/// still ends, so the conversation is not left busy.
#[test]
fn a_turn_that_loses_its_workspace_fails_and_ends() {
    let env = Env::new();
    let workspace = env.dir().join("ws");
    std::fs::create_dir(&workspace).unwrap();
    scripted_agent(
        &env,
        json!({"responses": [
            {"tool_calls": [{"name": "shell", "arguments": {"command": "cd .. && rm -rf ws && echo not-a-dir > ws"}}]},
            {"tool_calls": [
                {"name": "read_file", "arguments": {"path": "a.txt"}},
                {"name": "list_files", "arguments": {}}
            ]},
            {"text": "never asked for"}
        ]}),
        workspace.to_str().unwrap(),
    );
    // On the host: in a sandbox the workspace is a mount the command
    // cannot remove.
    env.ok(&["agent", "set", "a", "--sandbox", "none"]);
    let run = env.run(&["conversation", "send", "a", "c", "clean up"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let last = run.stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("exo: turn failed: the read_file tool could not run: the workspace ")
            && last.ends_with("/ws is gone"),
        "{}",
        run.stderr
    );
    let page = env.json(&["conversation", "events", "a", "c"]);
    let events = page["events"].as_array().unwrap();
    let codes: Vec<&str> = events
        .iter()
        .filter(|event| event["kind"] == "error")
        .map(|event| event["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["tool", "snapshot"]);
    // Both calls are answered: the one that could not run, and the one
    // after it, which did not.
    let results: Vec<&Value> = events
        .iter()
        .filter(|event| event["kind"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[2]["output"]["error"],
        "not run: an earlier tool failed"
    );
    let ended: Vec<&Value> = events
        .iter()
        .filter(|event| event["kind"] == "turn_ended")
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["status"], "failed");
    let conversation = env.json(&["conversation", "show", "a", "c"]);
    assert_eq!(conversation["open_turn"], Value::Null);
    // The next turn is refused cleanly (the workspace is gone), recording
    // nothing.
    let before = events.len();
    let next = env.run(&["conversation", "send", "a", "c", "again"]);
    assert_eq!(next.code, 1);
    assert_eq!(next.stderr.lines().count(), 1, "{}", next.stderr);
    let after = env.json(&["conversation", "events", "a", "c"]);
    assert_eq!(after["events"].as_array().unwrap().len(), before);
}
