//! The scripted provider through the CLI: a model that replays a script
//! file, offline. Which response a call gets depends on the history alone,
//! so each `send` (a new process) carries on where the conversation is,
//! and after a rewind the script replays from that point.

use serde_json::{json, Value};

use crate::agent::{kinds, of_kind};
use crate::util::Env;

fn ok(env: &Env, args: &[&str]) -> String {
    let run = env.run(args);
    assert_eq!(
        run.code, 0,
        "exo {args:?}:\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout
}

fn events(env: &Env) -> Vec<Value> {
    env.events("coder", "work")
}

fn id(event: &Value) -> String {
    event["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_script_replays_by_history_across_processes_and_rewinds() {
    let env = Env::new();
    let workspace = env.dir().join("ws");
    std::fs::create_dir(&workspace).unwrap();
    let script = env.dir().join("script.json");
    let responses = json!({"responses": [
        {"text": "Writing notes.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "notes.txt", "content": "first\n"}}
        ]},
        {"text": "Wrote notes.txt.", "usage": {"input_tokens": 40, "output_tokens": 4}},
        {"text": "Second answer."},
    ]});
    std::fs::write(&script, responses.to_string()).unwrap();
    // A plain path names the script.
    ok(
        &env,
        &[
            "model",
            "register",
            "scripted",
            "--provider",
            "scripted",
            "--base-url",
            script.to_str().unwrap(),
        ],
    );
    ok(
        &env,
        &[
            "agent",
            "create",
            "Coder",
            "--slug",
            "coder",
            "--model",
            "scripted",
            "--approval",
            "auto",
        ],
    );
    ok(
        &env,
        &[
            "conversation",
            "create",
            "coder",
            "Work",
            "--slug",
            "work",
            "--workspace",
            workspace.to_str().unwrap(),
        ],
    );
    let send = |prompt: &str| ok(&env, &["conversation", "send", "coder", "work", prompt]);

    // Turn 1 takes the first two responses: the write, then the answer.
    assert_eq!(send("one"), "Writing notes.\nWrote notes.txt.\n");
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes.txt")).unwrap(),
        "first\n"
    );
    let history = events(&env);
    let call = of_kind(&history, "tool_call")[0];
    assert_eq!(call["call_id"], "call_1_1");
    assert_eq!(call["name"], "write_file");
    let answer = of_kind(&history, "message").last().copied().unwrap();
    assert_eq!(answer["model"], "scripted");
    assert_eq!(answer["usage"]["input_tokens"], 40);
    let first_end = id(of_kind(&history, "turn_ended")[0]);

    // Turn 2 takes the third, in a new process.
    assert_eq!(send("two"), "Second answer.\n");

    // Back to the end of turn 1: the third response again.
    ok(
        &env,
        &[
            "conversation",
            "rewind",
            "coder",
            "work",
            "--to",
            &first_end,
        ],
    );
    assert_eq!(send("two, again"), "Second answer.\n");

    // Back to the start (before any snapshot, so the files stay): the
    // script starts over, and the write runs again.
    let created = id(&events(&env)[0]);
    ok(
        &env,
        &["conversation", "rewind", "coder", "work", "--to", &created],
    );
    std::fs::write(workspace.join("notes.txt"), "changed\n").unwrap();
    ok(&env, &["snapshot", "take", "coder", "work"]);
    assert_eq!(send("one, again"), "Writing notes.\nWrote notes.txt.\n");
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes.txt")).unwrap(),
        "first\n"
    );

    assert_eq!(send("three"), "Second answer.\n");

    // One turn more wants a fourth response: the turn fails, saying so.
    let run = env.run(&["conversation", "send", "coder", "work", "four"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .trim_end()
            .ends_with("exo: turn failed: scripted model: response 4 wanted, but the script has 3"),
        "{}",
        run.stderr
    );
    let history = events(&env);
    let error = of_kind(&history, "error").last().copied().unwrap().clone();
    assert_eq!(error["code"], "script_exhausted");
    assert_eq!(
        kinds(&history[history.len() - 3..]),
        ["workspace_snapshot", "turn_ended", "session_ended"]
    );
    assert_eq!(history[history.len() - 2]["status"], "failed");
}
