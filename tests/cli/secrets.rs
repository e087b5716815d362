//! Secrets, models and bindings through the CLI. No command ever prints a
//! secret value, and none is ever on disk in plaintext.

use crate::util::{contains, Env};

const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

#[test]
fn values_come_from_env_value_or_stdin_and_are_never_printed() {
    let env = Env::new();
    let secrets = [
        "from-env-value-1",
        "from-flag-value-2",
        "from-stdin-value-3",
    ];
    let key = [("EXO_ENCRYPTION_KEY", KEY_A), ("MY_VAR", secrets[0])];
    let mut outputs = String::new();
    let mut run = |args: &[&str], stdin: &[u8]| {
        let run = env.run_with(args, stdin, &key);
        assert_eq!(run.code, 0, "exo {args:?}: {}", run.stderr);
        outputs.push_str(&run.stdout);
        outputs.push_str(&run.stderr);
    };
    run(&["secret", "set", "one", "--env", "MY_VAR"], b"");
    run(&["secret", "set", "two", "--value", secrets[1]], b"");
    run(
        &["secret", "set", "three"],
        format!("{}\n", secrets[2]).as_bytes(),
    );
    run(&["secret", "list"], b"");
    run(&["--json", "secret", "list"], b"");
    run(&["secret", "show", "two"], b"");
    run(&["--json", "secret", "show", "two"], b"");
    let list = env.json(&["secret", "list"]);
    let names: Vec<&str> = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "three", "two"]);
    for secret in secrets {
        assert!(!outputs.contains(secret), "{secret} was printed");
        assert!(
            !contains(&env.root_bytes(), secret.as_bytes()),
            "{secret} is on disk in plaintext"
        );
    }
    assert!(
        !env.config_dir().join("exo/key").exists(),
        "EXO_ENCRYPTION_KEY was used, no key file made"
    );
}

#[test]
fn env_argument_that_looks_like_a_key_is_refused_without_echo() {
    let env = Env::new();
    for value in [
        "sk-proj-abcdef123456",
        "ghp_abcdefabcdef",
        "has spaces",
        "a=b",
    ] {
        let run = env.run_with(
            &["secret", "set", "openai", "--env", value],
            b"",
            &[("EXO_ENCRYPTION_KEY", KEY_A)],
        );
        crate::util::assert_one_line_failure(&run, &["secret", "set"]);
        assert!(
            !run.stderr.contains(value),
            "echoed {value}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("--env takes the NAME"),
            "{}",
            run.stderr
        );
    }
    // A value typed as an argument is refused, never echoed.
    let stray = env.run_with(
        &["secret", "set", "openai", "sk-live-typed-by-mistake"],
        b"",
        &[("EXO_ENCRYPTION_KEY", KEY_A)],
    );
    crate::util::assert_one_line_failure(&stray, &["secret", "set"]);
    assert!(
        !stray.stderr.contains("sk-live-typed-by-mistake"),
        "{}",
        stray.stderr
    );
    let unset = env.run_with(
        &["secret", "set", "openai", "--env", "NOT_SET_ANYWHERE"],
        b"",
        &[("EXO_ENCRYPTION_KEY", KEY_A)],
    );
    crate::util::assert_one_line_failure(&unset, &["secret", "set"]);
    assert!(
        unset.stderr.contains("NOT_SET_ANYWHERE is not set"),
        "{}",
        unset.stderr
    );
}

#[test]
fn wrong_key_is_refused_and_changes_nothing() {
    let env = Env::new();
    let set = env.run_with(
        &["secret", "set", "openai", "--value", "v1-secret"],
        b"",
        &[("EXO_ENCRYPTION_KEY", KEY_A)],
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    let before = env.json(&["secret", "list"]);
    let wrong = env.run_with(
        &["secret", "set", "other", "--value", "v2-secret"],
        b"",
        &[("EXO_ENCRYPTION_KEY", KEY_B)],
    );
    crate::util::assert_one_line_failure(&wrong, &["secret", "set"]);
    assert_eq!(
        wrong.stderr.trim_end(),
        "exo: cannot decrypt secrets: wrong key?"
    );
    assert_eq!(env.json(&["secret", "list"]), before);

    let malformed = env.run_with(
        &["secret", "set", "x", "--value", "v"],
        b"",
        &[("EXO_ENCRYPTION_KEY", "short")],
    );
    crate::util::assert_one_line_failure(&malformed, &["secret", "set"]);
    assert!(
        malformed
            .stderr
            .contains("EXO_ENCRYPTION_KEY must be 32 bytes"),
        "{}",
        malformed.stderr
    );
    assert!(!malformed.stderr.contains("short"));
    // Base64 works as well as hex.
    let b64 = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let ok = env.run_with(
        &["secret", "set", "third", "--value", "v3"],
        b"",
        &[("EXO_ENCRYPTION_KEY", b64)],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
fn scopes_narrowest_wins_and_conversation_scope_travels_with_history() {
    let env = Env::new();
    env.agent_and_conversation();
    let key = [("EXO_ENCRYPTION_KEY", KEY_A)];
    let set = |args: &[&str]| assert_eq!(env.run_with(args, b"", &key).code, 0, "{args:?}");
    set(&["secret", "set", "openai", "--value", "root-value"]);
    set(&[
        "secret",
        "set",
        "openai",
        "--value",
        "agent-value",
        "--agent",
        "a",
    ]);
    set(&[
        "model",
        "register",
        "m",
        "--provider",
        "anthropic",
        "--secret",
        "openai",
    ]);
    set(&[
        "model",
        "register",
        "m",
        "--provider",
        "openai-chat",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--secret",
        "openai",
        "--agent",
        "a",
    ]);
    let root_model = env.json(&["model", "show", "m"]);
    assert_eq!(root_model["provider"], "anthropic");
    assert_eq!(root_model["base_url"], "https://api.anthropic.com");
    let agent_model = env.json(&["model", "show", "m", "--agent", "a"]);
    assert_eq!(agent_model["provider"], "openai-chat");
    assert_eq!(
        agent_model["scope"].as_str().unwrap().split(':').next(),
        Some("agent")
    );
    let from_conversation =
        env.json(&["model", "show", "m", "--agent", "a", "--conversation", "c"]);
    assert_eq!(from_conversation["provider"], "openai-chat");

    // A conversation-scoped binding is an event: it follows forks and is
    // undone by rewinds.
    let before_binding = env.event_ids("a", "c").pop().unwrap();
    set(&[
        "binding",
        "env",
        "OPENAI_API_KEY",
        "--secret",
        "openai",
        "--agent",
        "a",
        "--conversation",
        "c",
    ]);
    let events = env.events("a", "c");
    assert_eq!(events.last().unwrap()["kind"], "binding_set");
    let listed = env.json(&["binding", "list", "--agent", "a", "--conversation", "c"]);
    assert_eq!(listed["bindings"].as_array().unwrap().len(), 1);
    env.ok(&["conversation", "fork", "a", "c", "--slug", "f"]);
    let in_fork = env.json(&["binding", "list", "--agent", "a", "--conversation", "f"]);
    assert_eq!(in_fork["bindings"].as_array().unwrap().len(), 1);
    env.ok(&["conversation", "rewind", "a", "c", "--to", &before_binding]);
    let after_rewind = env.json(&["binding", "list", "--agent", "a", "--conversation", "c"]);
    assert!(after_rewind["bindings"].as_array().unwrap().is_empty());

    set(&[
        "secret",
        "set",
        "conv-only",
        "--value",
        "conv-value",
        "--agent",
        "a",
        "--conversation",
        "c",
    ]);
    let conv_secrets = env.json(&["secret", "list", "--agent", "a", "--conversation", "c"]);
    assert_eq!(conv_secrets["secrets"][0]["name"], "conv-only");
    let events = env.events("a", "c");
    let secret_event = events.last().unwrap();
    assert_eq!(secret_event["kind"], "secret_set");
    assert!(!secret_event.to_string().contains("conv-value"));
    env.ok(&[
        "secret",
        "delete",
        "conv-only",
        "--agent",
        "a",
        "--conversation",
        "c",
    ]);
    let conv_secrets = env.json(&["secret", "list", "--agent", "a", "--conversation", "c"]);
    assert!(conv_secrets["secrets"].as_array().unwrap().is_empty());
}

#[test]
fn references_must_resolve() {
    let env = Env::new();
    let err = env.fails(&["model", "register", "m", "--secret", "missing"]);
    assert!(err.contains("secret \"missing\" not found"), "{err}");
    let err = env.fails(&["agent", "create", "--model", "nope", "Agent"]);
    assert!(err.contains("model \"nope\" not found"), "{err}");
    let err = env.fails(&["model", "register", "m", "--base-url", "ftp://example"]);
    assert!(err.contains("invalid URL"), "{err}");
    let usage = env.run(&["model", "register", "m", "--provider", "gemini"]);
    assert_eq!(usage.code, 2);
    env.ok(&[
        "model",
        "register",
        "local",
        "--provider",
        "openai-chat",
        "--base-url",
        "http://127.0.0.1:11434/v1",
    ]);
    env.ok(&["model", "delete", "local"]);
    let err = env.fails(&["model", "show", "local"]);
    assert!(err.contains("not found"), "{err}");
}
