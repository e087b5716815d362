//! Paths that try to leave the workspace, or write into `.git`.

use std::fs;
use std::os::unix::fs::symlink;

use exo_tools::{ToolError, Workspace};
use serde_json::json;

use crate::{error_of, ok, Fixture};

const ESCAPES: &str = "path escapes the workspace";

#[tokio::test]
async fn parent_directories_that_leave_the_workspace_are_refused() {
    let fixture = Fixture::new();
    fs::write(fixture.outside.join("secret.txt"), "secret").unwrap();
    fs::create_dir(fixture.root.join("a")).unwrap();
    for path in ["../outside/secret.txt", "a/../../outside/secret.txt", ".."] {
        let output = fixture.call("read_file", json!({"path": path})).await;
        assert_eq!(error_of(&output), format!("{ESCAPES}: {path}"));
    }
    let output = fixture
        .call("write_file", json!({"path": "../x.txt", "content": "x"}))
        .await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: ../x.txt"));
    assert!(!fixture.outside.join("../x.txt").exists());
    let output = fixture.call("list_files", json!({"path": "a/../.."})).await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: a/../.."));
    let output = fixture
        .call("grep", json!({"pattern": "secret", "path": "../outside"}))
        .await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: ../outside"));
}

#[tokio::test]
async fn absolute_paths_outside_the_workspace_are_refused() {
    let fixture = Fixture::new();
    let output = fixture
        .call("read_file", json!({"path": "/etc/passwd"}))
        .await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: /etc/passwd"));
    let target = fixture.outside.join("planted.txt");
    let output = fixture
        .call(
            "write_file",
            json!({"path": target.to_str().unwrap(), "content": "x"}),
        )
        .await;
    assert!(error_of(&output).starts_with(ESCAPES));
    assert!(!target.exists());
    // A prefix of the root's name is not the root.
    let sibling = format!("{}-other/x.txt", fixture.root.display());
    let output = fixture.call("read_file", json!({"path": sibling})).await;
    assert!(error_of(&output).starts_with(ESCAPES));
    // An absolute path that climbs out and back in is inside.
    let back_in = format!("{}/../workspace/a.txt", fixture.root.display());
    fixture.write("a.txt", "in");
    let output = ok(fixture.call("read_file", json!({"path": back_in})).await);
    assert_eq!(output["content"], "in");
}

#[tokio::test]
async fn a_symlink_to_a_file_outside_is_neither_read_nor_written() {
    let fixture = Fixture::new();
    let secret = fixture.outside.join("secret.txt");
    fs::write(&secret, "secret").unwrap();
    symlink(&secret, fixture.root.join("link.txt")).unwrap();
    let output = fixture.call("read_file", json!({"path": "link.txt"})).await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: link.txt"));
    let output = fixture
        .call(
            "write_file",
            json!({"path": "link.txt", "content": "pwned"}),
        )
        .await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: link.txt"));
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "link.txt", "old_string": "secret", "new_string": "pwned"}),
        )
        .await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: link.txt"));
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret");
    assert!(fs::symlink_metadata(fixture.root.join("link.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    // grep does not follow it either.
    let output = ok(fixture.call("grep", json!({"pattern": "secret"})).await);
    assert_eq!(output["matches"], json!([]));
}

#[tokio::test]
async fn a_symlinked_directory_outside_is_refused() {
    let fixture = Fixture::new();
    fs::write(fixture.outside.join("secret.txt"), "secret").unwrap();
    symlink(&fixture.outside, fixture.root.join("dirlink")).unwrap();
    let output = fixture
        .call("read_file", json!({"path": "dirlink/secret.txt"}))
        .await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: dirlink/secret.txt"));
    let output = fixture
        .call(
            "write_file",
            json!({"path": "dirlink/new/planted.txt", "content": "x"}),
        )
        .await;
    assert_eq!(
        error_of(&output),
        format!("{ESCAPES}: dirlink/new/planted.txt")
    );
    assert!(!fixture.outside.join("new").exists());
    let output = fixture.call("list_files", json!({"path": "dirlink"})).await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: dirlink"));
    let output = fixture
        .call("grep", json!({"pattern": "secret", "path": "dirlink"}))
        .await;
    assert_eq!(error_of(&output), format!("{ESCAPES}: dirlink"));
    // Walking the root neither follows nor lists it.
    let output = ok(fixture.call("list_files", json!({})).await);
    assert_eq!(output["files"], json!([]));
    let output = ok(fixture.call("grep", json!({"pattern": "secret"})).await);
    assert_eq!(output["matches"], json!([]));
}

#[tokio::test]
async fn a_dangling_symlink_is_not_written_through() {
    let fixture = Fixture::new();
    let target = fixture.outside.join("not-yet.txt");
    symlink(&target, fixture.root.join("dangling.txt")).unwrap();
    let output = fixture
        .call(
            "write_file",
            json!({"path": "dangling.txt", "content": "x"}),
        )
        .await;
    assert_eq!(
        error_of(&output),
        "dangling.txt: cannot write through dangling.txt, a symlink whose target does not exist"
    );
    assert!(!target.exists());
    // Nor is a directory path through a dangling symlink.
    symlink(fixture.outside.join("no-dir"), fixture.root.join("gone")).unwrap();
    let output = fixture
        .call("write_file", json!({"path": "gone/x.txt", "content": "x"}))
        .await;
    assert!(error_of(&output).contains("a symlink whose target does not exist"));
    assert!(!fixture.outside.join("no-dir").exists());
    let output = fixture
        .call("read_file", json!({"path": "dangling.txt"}))
        .await;
    assert_eq!(error_of(&output), "dangling.txt does not exist");
}

#[tokio::test]
async fn symlinks_inside_the_workspace_are_followed() {
    let fixture = Fixture::new();
    fixture.write("real/file.txt", "one");
    symlink("real/file.txt", fixture.root.join("alias.txt")).unwrap();
    symlink("real", fixture.root.join("alias-dir")).unwrap();
    let output = ok(fixture
        .call("read_file", json!({"path": "alias.txt"}))
        .await);
    assert_eq!(output["content"], "one");
    assert_eq!(output["path"], "alias.txt");
    ok(fixture
        .call("write_file", json!({"path": "alias.txt", "content": "two"}))
        .await);
    assert_eq!(fixture.read("real/file.txt"), "two");
    assert!(fs::symlink_metadata(fixture.root.join("alias.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    ok(fixture
        .call(
            "write_file",
            json!({"path": "alias-dir/new.txt", "content": "three"}),
        )
        .await);
    assert_eq!(fixture.read("real/new.txt"), "three");
    // A scope through a symlink inside lists the real paths.
    let output = ok(fixture
        .call("list_files", json!({"path": "alias-dir"}))
        .await);
    assert_eq!(output["files"], json!(["real/file.txt", "real/new.txt"]));
}

#[tokio::test]
async fn nothing_is_written_inside_git_directories() {
    let fixture = Fixture::new();
    fixture.write(".git/config", "[core]\n");
    fixture.write("sub/.git/HEAD", "ref: refs/heads/main\n");
    symlink(".git", fixture.root.join("gitdir")).unwrap();
    let attempts = [
        ".git/config",
        ".git/hooks/pre-commit",
        "sub/.git/HEAD",
        "gitdir/config",
        ".git",
        "new/.git/config",
    ];
    for path in attempts {
        let output = fixture
            .call("write_file", json!({"path": path, "content": "x"}))
            .await;
        assert_eq!(
            error_of(&output),
            format!("refusing to write inside a .git directory: {path}"),
        );
    }
    let output = fixture
        .call(
            "edit_file",
            json!({"path": ".git/config", "old_string": "[core]", "new_string": "[x]"}),
        )
        .await;
    assert!(error_of(&output).starts_with("refusing to write inside a .git directory"));
    assert_eq!(fixture.read(".git/config"), "[core]\n");
    assert!(!fixture.root.join(".git/hooks").exists());
    assert!(!fixture.root.join("new").exists());
    // Reading is allowed.
    let output = ok(fixture
        .call("read_file", json!({"path": ".git/config"}))
        .await);
    assert_eq!(output["content"], "[core]\n");
}

#[test]
fn a_workspace_must_be_an_existing_directory() {
    let fixture = Fixture::new();
    let missing = Workspace::new(&fixture.root.join("missing")).unwrap_err();
    assert!(matches!(missing, ToolError::Workspace { .. }), "{missing}");
    let file = fixture.write("file.txt", "x");
    let not_a_directory = Workspace::new(&file).unwrap_err();
    assert!(
        matches!(not_a_directory, ToolError::NotADirectory { .. }),
        "{not_a_directory}"
    );
}

#[tokio::test]
async fn a_workspace_reached_through_a_symlink_is_canonical() {
    let fixture = Fixture::new();
    let link = fixture.outside.join("to-workspace");
    symlink(&fixture.root, &link).unwrap();
    let workspace = Workspace::new(&link).unwrap();
    assert_eq!(workspace.root(), fixture.root);
    fixture.write("a.txt", "x");
    // Absolute paths under the root as given are inside too.
    let call = exo_tools::parse(
        "read_file",
        &json!({"path": format!("{}/a.txt", link.display())}),
    )
    .unwrap();
    let output = exo_tools::run(
        &workspace,
        &call,
        &exo_tools::Limits::default(),
        &[],
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert_eq!(ok(output)["content"], "x");
}
