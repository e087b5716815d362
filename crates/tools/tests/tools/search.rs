//! list_files and grep.

use exo_tools::{parse, run, Limits};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{error_of, ok, Fixture};

/// A small project: sources, ignored build output and logs, a `.git`,
/// hidden files, a nested `.gitignore` with a negation.
fn project() -> Fixture {
    let fixture = Fixture::new();
    fixture.write(".gitignore", "target/\n*.log\n");
    fixture.write(".git/config", "[core]\nfn main() {}\n");
    fixture.write(".github/workflows/ci.yml", "on: push\n");
    fixture.write("README.md", "# Demo\nfn main is in src\n");
    fixture.write("a.txt", "alpha\n");
    fixture.write("a/b.txt", "beta\n");
    fixture.write("app.log", "fn main() {} in a log\n");
    fixture.write("src/main.rs", "fn main() {\n    helper();\n}\n");
    fixture.write("src/lib.rs", "pub fn helper() {}\n\npub fn Helper2() {}\n");
    fixture.write("src/nested/deep.rs", "fn deep() {}\n");
    fixture.write("target/debug/build.rs", "fn main() {}\n");
    fixture.write("target/debug/out.log", "fn main() {}\n");
    fixture.write("docs/.gitignore", "*.tmp\n!keep.tmp\n");
    fixture.write("docs/guide.md", "fn in docs\n");
    fixture.write("docs/scratch.tmp", "fn scratch\n");
    fixture.write("docs/keep.tmp", "fn keep\n");
    fixture
}

fn files(output: Value) -> Vec<String> {
    output["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_files_is_sorted_and_respects_gitignore() {
    let fixture = project();
    let output = ok(fixture.call("list_files", json!({})).await);
    assert_eq!(output["truncated"], false);
    assert_eq!(
        files(output),
        [
            ".github/workflows/ci.yml",
            ".gitignore",
            "README.md",
            "a/b.txt",
            "a.txt",
            "docs/.gitignore",
            "docs/guide.md",
            "docs/keep.tmp",
            "src/lib.rs",
            "src/main.rs",
            "src/nested/deep.rs",
        ]
    );
}

#[tokio::test]
async fn list_files_matches_glob_patterns() {
    let fixture = project();
    // Without a '/', file names at any depth.
    let output = ok(fixture.call("list_files", json!({"pattern": "*.rs"})).await);
    assert_eq!(
        files(output),
        ["src/lib.rs", "src/main.rs", "src/nested/deep.rs"]
    );
    // With a '/', the path: `*` stays in one directory, `**` spans any.
    let output = ok(fixture
        .call("list_files", json!({"pattern": "src/*.rs"}))
        .await);
    assert_eq!(files(output), ["src/lib.rs", "src/main.rs"]);
    let output = ok(fixture
        .call("list_files", json!({"pattern": "src/**/*.rs"}))
        .await);
    assert_eq!(
        files(output),
        ["src/lib.rs", "src/main.rs", "src/nested/deep.rs"]
    );
    let output = ok(fixture
        .call("list_files", json!({"pattern": "**/*.{md,yml}"}))
        .await);
    assert_eq!(
        files(output),
        [".github/workflows/ci.yml", "README.md", "docs/guide.md"]
    );
    // With a path, the pattern is relative to it; outputs stay relative to
    // the root.
    let output = ok(fixture
        .call(
            "list_files",
            json!({"path": "src", "pattern": "nested/*.rs"}),
        )
        .await);
    assert_eq!(files(output), ["src/nested/deep.rs"]);
    let output = ok(fixture
        .call("list_files", json!({"pattern": "*.nothing"}))
        .await);
    assert_eq!(files(output), Vec::<String>::new());
}

#[tokio::test]
async fn list_files_scopes_to_a_path() {
    let fixture = project();
    let output = ok(fixture.call("list_files", json!({"path": "src/"})).await);
    assert_eq!(
        files(output),
        ["src/lib.rs", "src/main.rs", "src/nested/deep.rs"]
    );
    let output = ok(fixture.call("list_files", json!({"path": "a.txt"})).await);
    assert_eq!(files(output), ["a.txt"]);
    // The root's rules apply below a scope too, and a scope the rules
    // ignore is still listed when named.
    let output = ok(fixture.call("list_files", json!({"path": "target"})).await);
    assert_eq!(files(output), ["target/debug/build.rs"]);
    let output = ok(fixture.call("list_files", json!({"path": "docs"})).await);
    assert_eq!(
        files(output),
        ["docs/.gitignore", "docs/guide.md", "docs/keep.tmp"]
    );
}

#[tokio::test]
async fn list_files_applies_git_info_exclude_and_exoignore() {
    let fixture = Fixture::new();
    fixture.write(".git/info/exclude", "secret-notes.md\n");
    fixture.write(".exoignore", "generated/\n");
    fixture.write("secret-notes.md", "x");
    fixture.write("generated/out.rs", "x");
    fixture.write("sub/secret-notes.md", "x");
    fixture.write("sub/generated/out.rs", "x");
    fixture.write("sub/kept.rs", "x");
    let output = ok(fixture.call("list_files", json!({})).await);
    assert_eq!(files(output), [".exoignore", "sub/kept.rs"]);
    // Read from above the scope as well.
    let output = ok(fixture.call("list_files", json!({"path": "sub"})).await);
    assert_eq!(files(output), ["sub/kept.rs"]);
}

#[tokio::test]
async fn list_files_stops_at_the_cap() {
    let fixture = project();
    let limits = Limits {
        max_matches: 2,
        ..Limits::default()
    };
    let output = ok(fixture.call_with("list_files", json!({}), &limits).await);
    assert_eq!(output["truncated"], true);
    assert_eq!(files(output), [".github/workflows/ci.yml", ".gitignore"]);
    // Exactly at the cap is not truncated.
    let output = ok(fixture
        .call_with("list_files", json!({"path": "a"}), &limits)
        .await);
    assert_eq!(output["truncated"], false);
}

#[tokio::test]
async fn list_files_reports_bad_paths_and_patterns() {
    let fixture = project();
    assert_eq!(
        error_of(&fixture.call("list_files", json!({"path": "nope"})).await),
        "nope does not exist"
    );
    let message = error_of(
        &fixture
            .call("list_files", json!({"pattern": "src/[a"}))
            .await,
    );
    assert!(
        message.starts_with("invalid pattern \"src/[a\": "),
        "{message}"
    );
}

fn matches(output: &Value) -> Vec<(String, u64, String)> {
    output["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|found| {
            (
                found["path"].as_str().unwrap().to_owned(),
                found["line"].as_u64().unwrap(),
                found["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn found(path: &str, line: u64, text: &str) -> (String, u64, String) {
    (path.to_owned(), line, text.to_owned())
}

#[tokio::test]
async fn grep_finds_matching_lines_in_path_order() {
    let fixture = project();
    let output = ok(fixture.call("grep", json!({"pattern": r"fn \w+\("})).await);
    assert_eq!(output["truncated"], false);
    // Not in .git, target/ or *.log; in path order.
    assert_eq!(
        matches(&output),
        [
            found("src/lib.rs", 1, "pub fn helper() {}"),
            found("src/lib.rs", 3, "pub fn Helper2() {}"),
            found("src/main.rs", 1, "fn main() {"),
            found("src/nested/deep.rs", 1, "fn deep() {}"),
        ]
    );
}

#[tokio::test]
async fn grep_takes_regex_syntax() {
    let fixture = project();
    let output = ok(fixture
        .call(
            "grep",
            json!({"pattern": r"(?i)\bhelper\d?\b", "path": "src"}),
        )
        .await);
    assert_eq!(
        matches(&output),
        [
            found("src/lib.rs", 1, "pub fn helper() {}"),
            found("src/lib.rs", 3, "pub fn Helper2() {}"),
            found("src/main.rs", 2, "    helper();"),
        ]
    );
    // `^` and `$` match at each line's start and end.
    let output = ok(fixture.call("grep", json!({"pattern": "^}$"})).await);
    assert_eq!(matches(&output), [found("src/main.rs", 3, "}")]);
}

#[tokio::test]
async fn grep_scopes_to_a_directory_or_a_file() {
    let fixture = project();
    let output = ok(fixture
        .call("grep", json!({"pattern": "fn", "path": "src/nested"}))
        .await);
    assert_eq!(
        matches(&output),
        [found("src/nested/deep.rs", 1, "fn deep() {}")]
    );
    let output = ok(fixture
        .call("grep", json!({"pattern": "fn", "path": "docs"}))
        .await);
    assert_eq!(
        matches(&output),
        [
            found("docs/guide.md", 1, "fn in docs"),
            found("docs/keep.tmp", 1, "fn keep"),
        ]
    );
    // A named file is searched even when ignored.
    let output = ok(fixture
        .call("grep", json!({"pattern": "log", "path": "app.log"}))
        .await);
    assert_eq!(
        matches(&output),
        [found("app.log", 1, "fn main() {} in a log")]
    );
}

#[tokio::test]
async fn grep_skips_binary_files_and_handles_crlf() {
    let fixture = Fixture::new();
    fixture.write("blob.bin", b"needle\0\x01\x02needle");
    fixture.write("win.txt", "first\r\nneedle here\r\n");
    fixture.write("latin1.txt", b"needle caf\xe9\n");
    let output = ok(fixture.call("grep", json!({"pattern": "needle"})).await);
    assert_eq!(
        matches(&output),
        [
            found("latin1.txt", 1, "needle caf\u{fffd}"),
            found("win.txt", 2, "needle here"),
        ]
    );
}

#[tokio::test]
async fn grep_cuts_long_lines_and_stops_at_the_cap() {
    let fixture = Fixture::new();
    let long_line = format!("needle {}", "x".repeat(1000));
    fixture.write("long.txt", format!("{long_line}\n"));
    let output = ok(fixture.call("grep", json!({"pattern": "needle"})).await);
    let text = output["matches"][0]["text"].as_str().unwrap();
    assert_eq!(text.chars().count(), 501);
    assert!(text.ends_with('…'));
    fixture.write("many.txt", "hit\n".repeat(10));
    let limits = Limits {
        max_matches: 3,
        ..Limits::default()
    };
    let output = ok(fixture
        .call_with("grep", json!({"pattern": "^hit$"}), &limits)
        .await);
    assert_eq!(output["truncated"], true);
    assert_eq!(
        matches(&output),
        [
            found("many.txt", 1, "hit"),
            found("many.txt", 2, "hit"),
            found("many.txt", 3, "hit"),
        ]
    );
}

#[tokio::test]
async fn grep_reports_an_invalid_regex_on_one_line() {
    let fixture = project();
    assert_eq!(
        error_of(&fixture.call("grep", json!({"pattern": "fn (main"})).await),
        "invalid regex \"fn (main\": unclosed group"
    );
    assert_eq!(
        error_of(
            &fixture
                .call("grep", json!({"pattern": "x", "path": "nope"}))
                .await
        ),
        "nope does not exist"
    );
}

#[tokio::test]
async fn a_cancelled_walk_returns_cancelled() {
    let fixture = project();
    let cancel = CancellationToken::new();
    cancel.cancel();
    for (name, arguments) in [
        ("list_files", json!({})),
        ("grep", json!({"pattern": "fn"})),
    ] {
        let call = parse(name, &arguments).unwrap();
        let output = run(&fixture.workspace, &call, &Limits::default(), &[], &cancel).await;
        assert!(output.is_error);
        assert_eq!(
            output.output,
            json!({"error": "cancelled", "cancelled": true})
        );
    }
}
