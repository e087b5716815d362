//! The README's quickstart, run exactly as written.

use std::os::unix::fs::PermissionsExt;

use crate::util::{contains, Env};

#[test]
fn quickstart_runs_as_written() {
    let env = Env::new();
    let key_value = "sk-quickstart-1234567890";
    let run = |args: &[&str]| {
        let run = env.run_with(args, b"", &[("OPENAI_API_KEY", key_value)]);
        assert_eq!(run.code, 0, "exo {args:?}: {}", run.stderr);
        assert!(!run.stdout.contains(key_value) && !run.stderr.contains(key_value));
        run
    };
    // The commands of the quickstart, with the default root (.exo in the
    // current directory). The REPL is left at once: no model is called.
    run(&["secret", "set", "openai", "--env", "OPENAI_API_KEY"]);
    run(&["model", "register", "gpt-5.4", "--secret", "openai"]);
    run(&["agent", "create", "--model", "gpt-5.4", "Sandbox Example"]);
    run(&[
        "conversation",
        "create",
        "sandbox-example",
        "Local Dev",
        "--workspace",
        ".",
    ]);
    let repl = env.run_with(
        &["chat", "repl", "sandbox-example", "local-dev"],
        b"/help\n/quit\n",
        &[],
    );
    assert_eq!(repl.code, 0, "{}", repl.stderr);
    assert!(repl.stderr.contains("/rewind EVENT"), "{}", repl.stderr);

    assert!(
        env.dir().join(".exo/exo.db").exists(),
        "state lives under ./.exo by default"
    );
    let agent = env.json(&["agent", "show", "sandbox-example"]);
    assert_eq!(agent["slug"], "sandbox-example");
    assert_eq!(agent["name"], "Sandbox Example");
    assert_eq!(agent["config"]["model"], "gpt-5.4");

    let model = env.json(&["model", "show", "gpt-5.4"]);
    assert_eq!(model["provider"], "openai");
    assert_eq!(model["base_url"], "https://api.openai.com/v1");
    assert_eq!(model["upstream"], "gpt-5.4");
    assert_eq!(model["secret"], "openai");

    let conv = env.json(&["conversation", "show", "sandbox-example", "local-dev"]);
    assert_eq!(conv["slug"], "local-dev");
    assert_eq!(conv["length"], 1);
    assert_eq!(
        conv["workspace"],
        std::fs::canonicalize(env.dir())
            .unwrap()
            .display()
            .to_string()
    );
    let events = env.events("sandbox-example", "local-dev");
    assert_eq!(events[0]["kind"], "conversation_created");
    assert_eq!(events[0]["name"], "Local Dev");

    // The key file was created private, and the secret is nowhere in
    // plaintext under the root.
    let key_file = env.config_dir().join("exo/key");
    let mode = std::fs::metadata(&key_file)
        .expect("key file created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!contains(&env.root_bytes(), key_value.as_bytes()));
}

#[test]
fn root_comes_from_flag_then_env() {
    let env = Env::new();
    let elsewhere = env.dir().join("elsewhere");
    let flag_root = elsewhere.to_str().unwrap();
    env.ok(&["--root", flag_root, "agent", "create", "Flagged"]);
    assert!(elsewhere.join("exo.db").exists());
    assert!(!env.root().exists(), "nothing written to the default root");

    let mut command = env.command(&["--json", "agent", "list"]);
    command.env("EXO_ROOT", flag_root);
    let output = command.output().unwrap();
    assert!(output.status.success());
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["agents"][0]["slug"], "flagged");
}

/// The README's main command, `scripts/demo`, run with this build's binary:
/// a scripted agent codes across three turns, then rewind, fork, and a
/// resumed turn under the TypeScript harness.
#[test]
fn the_demo_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo");
    let output = std::process::Command::new("bash")
        .arg(&demo)
        .env("EXO_BIN", env!("CARGO_BIN_EXE_exo"))
        .env("TMPDIR", scratch.path())
        .env_remove("EXO_ROOT")
        .env_remove("EXO_ENCRYPTION_KEY")
        .output()
        .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The three turns' answers, and the tools they ran.
    for answer in [
        "greet.sh is written: `sh greet.sh exo` prints \"Hello, exo.\"",
        "Done: it now prints \"HELLO, exo!\"",
        "README.md explains how to run it.",
    ] {
        assert!(stdout.contains(answer), "{answer:?} missing:\n{stdout}");
    }
    assert!(stderr.contains("• edit_file: greet.sh"), "{stderr}");
    // The rewind restored turn 1's files: the greeting is quiet again and
    // the README is gone; the redo brings it back.
    let after_rewind = stdout
        .split("== rewind to the end of turn 1")
        .nth(1)
        .unwrap();
    let rewound = after_rewind.split("== fork").next().unwrap();
    assert!(
        rewound.contains("echo \"Hello, ${1:-world}.\""),
        "{rewound}"
    );
    assert!(rewound.contains("README.md\n(absent)"), "{rewound}");
    // The fork holds turn 2's files and its resumed turn, run by the
    // TypeScript harness, wrote a README.
    let fork = after_rewind.split("== fork").nth(1).unwrap();
    let typescript = fork
        .split("== the agent switches to a TypeScript harness")
        .nth(1)
        .unwrap();
    assert!(typescript.contains("harness: typescript"), "{typescript}");
    assert!(
        typescript.contains("module: ")
            && typescript.contains("examples/typescript/basic-harness.ts"),
        "{typescript}"
    );
    assert!(
        typescript.contains("README.md explains how to run it."),
        "{typescript}"
    );
    assert!(fork.contains("shout/README.md\n# greet"), "{fork}");
}
