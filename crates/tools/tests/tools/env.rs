//! The shell's environment holds no secrets.
//!
//! This is the only test that changes the test process's environment; the
//! variables it sets are ones no other test reads.

use std::collections::BTreeMap;

use exo_tools::{parse, run, Limits};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{ok, Fixture};

#[tokio::test]
async fn the_shell_environment_is_scrubbed() {
    let secrets = [
        ("OPENAI_API_KEY", "sk-test-openai"),
        ("EXO_ENCRYPTION_KEY", "00112233445566778899aabbccddeeff"),
        ("GITHUB_TOKEN", "ghp_test"),
        ("AWS_SECRET_ACCESS_KEY", "aws-test"),
    ];
    for (name, value) in secrets {
        std::env::set_var(name, value);
    }
    std::env::set_var("LC_EXO_TOOLS_TEST", "passed-through");
    assert_eq!(std::env::var("OPENAI_API_KEY").unwrap(), "sk-test-openai");

    let fixture = Fixture::new();
    let call = parse("shell", &json!({"command": "env"})).unwrap();
    let explicit = [
        (
            "EXO_TOOLS_EXPLICIT".to_owned(),
            "given by the executor".to_owned(),
        ),
        ("HOME".to_owned(), "/nonexistent-home".to_owned()),
    ];
    let output = ok(run(
        &fixture.workspace,
        &call,
        &Limits::default(),
        &explicit,
        &CancellationToken::new(),
    )
    .await);
    let stdout = output["stdout"].as_str().unwrap();
    let variables: BTreeMap<&str, &str> = stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    for (name, value) in secrets {
        assert!(!variables.contains_key(name), "{name} leaked");
        assert!(!stdout.contains(value), "the value of {name} leaked");
    }
    assert_eq!(
        variables.get("EXO_TOOLS_EXPLICIT"),
        Some(&"given by the executor")
    );
    // Explicit variables override the allow-list.
    assert_eq!(variables.get("HOME"), Some(&"/nonexistent-home"));
    assert_eq!(variables.get("LC_EXO_TOOLS_TEST"), Some(&"passed-through"));
    assert!(variables.contains_key("PATH"));
    // Nothing beyond the allow-list, the explicit variables and what sh
    // sets itself.
    let allowed = [
        "PATH",
        "HOME",
        "LANG",
        "TERM",
        "USER",
        "SHELL",
        "TMPDIR",
        "EXO_TOOLS_EXPLICIT",
        // Set by sh.
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ];
    for name in variables.keys() {
        assert!(
            allowed.contains(name) || name.starts_with("LC_"),
            "unexpected variable {name}"
        );
    }
}
