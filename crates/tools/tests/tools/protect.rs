//! Protected directories: exo's state directory inside the workspace is out
//! of bounds for every file tool.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use exo_tools::Workspace;
use serde_json::json;

use crate::{error_of, ok, Fixture};

const REFUSED: &str = "refusing to touch exo's state directory";

/// A fixture whose workspace protects `.exo`, holding a store and a secret,
/// beside an ordinary file.
fn with_state() -> Fixture {
    let mut fixture = Fixture::new();
    fixture.write(".exo/store.sqlite", "needle in the store");
    fixture.write(".exo/secrets/sealed", "needle in a secret");
    fixture.write("notes.txt", "needle in the notes");
    fixture.workspace = Workspace::new(&fixture.root)
        .unwrap()
        .protect(&fixture.root.join(".exo"));
    fixture
}

/// The state files are as the fixture wrote them and nothing was added.
fn assert_state_untouched(fixture: &Fixture) {
    assert_eq!(fixture.read(".exo/store.sqlite"), "needle in the store");
    assert_eq!(fixture.read(".exo/secrets/sealed"), "needle in a secret");
    let mut names: Vec<_> = fs::read_dir(fixture.root.join(".exo"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["secrets", "store.sqlite"]);
}

#[tokio::test]
async fn read_write_and_edit_are_refused_inside_it() {
    let fixture = with_state();
    let absolute = format!("{}/.exo/store.sqlite", fixture.root.display());
    // Each path, and how the message shows it.
    let reads = [
        (".exo/store.sqlite", ".exo/store.sqlite"),
        (".exo/secrets/sealed", ".exo/secrets/sealed"),
        (".exo", ".exo"),
        ("./.exo/../.exo/store.sqlite", ".exo/store.sqlite"),
        (absolute.as_str(), ".exo/store.sqlite"),
    ];
    for (path, shown) in reads {
        let output = fixture.call("read_file", json!({"path": path})).await;
        assert_eq!(error_of(&output), format!("{REFUSED}: {shown}"));
    }
    let writes = [
        (".exo/store.sqlite", ".exo/store.sqlite"),
        (".exo/new.txt", ".exo/new.txt"),
        (".exo/new/deeper.txt", ".exo/new/deeper.txt"),
        (".exo", ".exo"),
        // Whatever the file system, a name in another letter case is taken
        // for the same directory.
        (".EXO/store.sqlite", ".EXO/store.sqlite"),
        (absolute.as_str(), ".exo/store.sqlite"),
    ];
    for (path, shown) in writes {
        let output = fixture
            .call("write_file", json!({"path": path, "content": "pwned"}))
            .await;
        assert_eq!(error_of(&output), format!("{REFUSED}: {shown}"));
    }
    let output = fixture
        .call(
            "edit_file",
            json!({"path": ".exo/store.sqlite", "old_string": "needle", "new_string": "pin"}),
        )
        .await;
    assert_eq!(error_of(&output), format!("{REFUSED}: .exo/store.sqlite"));
    assert_state_untouched(&fixture);
    assert!(!fixture.root.join(".EXO").exists());

    // Names that only begin like it are ordinary files.
    ok(fixture
        .call("write_file", json!({"path": ".exo-notes", "content": "x"}))
        .await);
    ok(fixture
        .call("write_file", json!({"path": ".exorc/x", "content": "x"}))
        .await);
    let output = ok(fixture
        .call("read_file", json!({"path": ".exo-notes"}))
        .await);
    assert_eq!(output["content"], "x");
}

#[tokio::test]
async fn a_symlink_into_it_is_refused() {
    let fixture = with_state();
    symlink(".exo/store.sqlite", fixture.root.join("store-link")).unwrap();
    symlink(".exo", fixture.root.join("state-link")).unwrap();
    symlink(
        fixture.root.join(".exo/secrets"),
        fixture.root.join("abs-link"),
    )
    .unwrap();

    for path in ["store-link", "state-link/store.sqlite", "abs-link/sealed"] {
        let output = fixture.call("read_file", json!({"path": path})).await;
        assert_eq!(error_of(&output), format!("{REFUSED}: {path}"));
    }
    for path in ["store-link", "state-link/new.txt", "abs-link/sealed"] {
        let output = fixture
            .call("write_file", json!({"path": path, "content": "pwned"}))
            .await;
        assert_eq!(error_of(&output), format!("{REFUSED}: {path}"));
    }
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "store-link", "old_string": "needle", "new_string": "pin"}),
        )
        .await;
    assert_eq!(error_of(&output), format!("{REFUSED}: store-link"));
    for tool in ["list_files", "grep"] {
        let output = fixture
            .call(tool, json!({"path": "state-link", "pattern": "needle"}))
            .await;
        assert_eq!(
            error_of(&output),
            format!("{REFUSED}: state-link"),
            "{tool}"
        );
    }
    assert_state_untouched(&fixture);
    assert!(fs::symlink_metadata(fixture.root.join("store-link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[tokio::test]
async fn walks_skip_it_silently() {
    let fixture = with_state();
    fixture.write("sub/.exo/kept.txt", "needle in a nested .exo");
    // A symlink into it is listed as the link it is, and not followed.
    symlink(".exo/store.sqlite", fixture.root.join("store-link")).unwrap();

    let output = ok(fixture.call("list_files", json!({})).await);
    assert_eq!(
        output["files"],
        json!(["notes.txt", "store-link", "sub/.exo/kept.txt"])
    );
    let output = ok(fixture
        .call("list_files", json!({"pattern": "*.sqlite"}))
        .await);
    assert_eq!(output["files"], json!([]));
    let output = ok(fixture.call("grep", json!({"pattern": "needle"})).await);
    let paths: Vec<_> = output["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|found| found["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["notes.txt", "sub/.exo/kept.txt"]);

    // Naming it, or something in it, as the scope is refused.
    for (tool, path) in [
        ("list_files", ".exo"),
        ("list_files", ".exo/secrets"),
        ("grep", ".exo"),
        ("grep", ".exo/store.sqlite"),
    ] {
        let output = fixture
            .call(tool, json!({"path": path, "pattern": "needle"}))
            .await;
        assert_eq!(error_of(&output), format!("{REFUSED}: {path}"), "{tool}");
    }
}

#[tokio::test]
async fn it_is_protected_before_it_exists() {
    let mut fixture = Fixture::new();
    fixture.workspace = Workspace::new(&fixture.root)
        .unwrap()
        .protect(&fixture.root.join(".exo/state"));
    let output = fixture
        .call(
            "write_file",
            json!({"path": ".exo/state/store.sqlite", "content": "x"}),
        )
        .await;
    assert_eq!(
        error_of(&output),
        format!("{REFUSED}: .exo/state/store.sqlite")
    );
    assert!(!fixture.root.join(".exo").exists());
    // Its parent is not protected.
    ok(fixture
        .call(
            "write_file",
            json!({"path": ".exo/other.txt", "content": "x"}),
        )
        .await);

    // Once exo creates it, it is out of bounds as if it had been there.
    fixture.write(".exo/state/store.sqlite", "needle");
    let output = fixture
        .call("read_file", json!({"path": ".exo/state/store.sqlite"}))
        .await;
    assert_eq!(
        error_of(&output),
        format!("{REFUSED}: .exo/state/store.sqlite")
    );
    let output = ok(fixture.call("list_files", json!({})).await);
    assert_eq!(output["files"], json!([".exo/other.txt"]));
}

#[tokio::test]
async fn it_may_be_named_relatively_or_through_symlinks() {
    let mut fixture = Fixture::new();
    fixture.write("state/store.sqlite", "x");
    fixture.write("other/store.sqlite", "x");
    symlink("state", fixture.root.join(".exo")).unwrap();
    let alias = fixture.outside.join("alias");
    symlink(&fixture.root, &alias).unwrap();
    // `.exo` is a symlink to `state`, and the root is named through another
    // symlink: what is protected is the real directory, `state`. A relative
    // path is taken from the root; several directories may be protected.
    fixture.workspace = Workspace::new(&alias)
        .unwrap()
        .protect(&alias.join(".exo"))
        .protect(Path::new("other"));
    for path in [
        "state/store.sqlite",
        ".exo/store.sqlite",
        "other/store.sqlite",
    ] {
        let output = fixture.call("read_file", json!({"path": path})).await;
        assert_eq!(error_of(&output), format!("{REFUSED}: {path}"));
    }
    let output = ok(fixture.call("list_files", json!({})).await);
    assert_eq!(output["files"], json!([]));
}

#[tokio::test]
async fn a_protected_directory_not_below_the_root_is_harmless() {
    let mut fixture = Fixture::new();
    fs::write(fixture.outside.join("secret.txt"), "secret").unwrap();
    fixture.workspace = Workspace::new(&fixture.root)
        .unwrap()
        .protect(&fixture.outside)
        .protect(&fixture.outside.join("not-yet"))
        .protect(&fixture.root)
        .protect(fixture.root.parent().unwrap())
        .protect(Path::new("/"))
        .protect(Path::new(".."));
    ok(fixture
        .call(
            "write_file",
            json!({"path": "a/b.txt", "content": "needle"}),
        )
        .await);
    let output = ok(fixture.call("read_file", json!({"path": "a/b.txt"})).await);
    assert_eq!(output["content"], "needle");
    ok(fixture
        .call(
            "edit_file",
            json!({"path": "a/b.txt", "old_string": "needle", "new_string": "pin"}),
        )
        .await);
    let output = ok(fixture.call("list_files", json!({})).await);
    assert_eq!(output["files"], json!(["a/b.txt"]));
    let output = ok(fixture.call("grep", json!({"pattern": "pin"})).await);
    assert_eq!(output["matches"][0]["path"], "a/b.txt");
    // Outside is still outside: the escape rule, not this one, refuses it.
    let output = fixture
        .call("read_file", json!({"path": "../outside/secret.txt"}))
        .await;
    assert_eq!(
        error_of(&output),
        "path escapes the workspace: ../outside/secret.txt"
    );
}
