//! read_file, write_file and edit_file.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use exo_tools::{run, Call, Limits};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{error_of, ok, Fixture};

#[tokio::test]
async fn read_file_returns_the_text() {
    let fixture = Fixture::new();
    fixture.write("src/main.rs", "fn main() {}\n");
    let output = ok(fixture
        .call("read_file", json!({"path": "src/main.rs"}))
        .await);
    assert_eq!(
        output,
        json!({
            "path": "src/main.rs",
            "content": "fn main() {}\n",
            "truncated": false,
            "binary": false,
            "size": 13,
        })
    );
}

#[tokio::test]
async fn read_file_takes_absolute_paths_inside_the_workspace() {
    let fixture = Fixture::new();
    let path = fixture.write("notes/a.txt", "hello");
    let output = ok(fixture
        .call("read_file", json!({"path": path.to_str().unwrap()}))
        .await);
    assert_eq!(output["path"], "notes/a.txt");
    assert_eq!(output["content"], "hello");
    // `.` and an inner `..` are resolved lexically.
    let output = ok(fixture
        .call("read_file", json!({"path": "./notes/../notes/./a.txt"}))
        .await);
    assert_eq!(output["path"], "notes/a.txt");
}

#[tokio::test]
async fn read_file_reports_a_missing_file_or_a_directory() {
    let fixture = Fixture::new();
    fs::create_dir(fixture.root.join("src")).unwrap();
    assert_eq!(
        error_of(&fixture.call("read_file", json!({"path": "nope.txt"})).await),
        "nope.txt does not exist"
    );
    assert_eq!(
        error_of(&fixture.call("read_file", json!({"path": "src"})).await),
        "src is a directory; use list_files to see what it holds"
    );
}

#[tokio::test]
async fn read_file_does_not_dump_binary_files() {
    let fixture = Fixture::new();
    fixture.write("logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    let output = ok(fixture.call("read_file", json!({"path": "logo.png"})).await);
    assert_eq!(
        output,
        json!({
            "path": "logo.png",
            "content": null,
            "truncated": false,
            "binary": true,
            "size": 16,
        })
    );
    // Not UTF-8 (Latin-1) counts as binary too.
    fixture.write("latin1.txt", b"caf\xe9\n");
    let output = ok(fixture
        .call("read_file", json!({"path": "latin1.txt"}))
        .await);
    assert_eq!(output["binary"], true);
    assert_eq!(output["content"], json!(null));
}

#[tokio::test]
async fn read_file_cuts_long_files_at_a_character_boundary() {
    let fixture = Fixture::new();
    // Ten bytes fit; the eleventh would split "é".
    fixture.write("long.txt", "123456789é and more");
    let limits = Limits {
        max_read_bytes: 10,
        ..Limits::default()
    };
    let output = ok(fixture
        .call_with("read_file", json!({"path": "long.txt"}), &limits)
        .await);
    assert_eq!(
        output,
        json!({
            "path": "long.txt",
            "content": "123456789",
            "truncated": true,
            "binary": false,
            "size": 20,
        })
    );
    // Exactly at the limit is not truncated.
    fixture.write("ten.txt", "0123456789");
    let output = ok(fixture
        .call_with("read_file", json!({"path": "ten.txt"}), &limits)
        .await);
    assert_eq!(output["truncated"], false);
    assert_eq!(output["content"], "0123456789");
}

#[tokio::test]
async fn write_file_creates_a_file_and_its_parents() {
    let fixture = Fixture::new();
    let output = ok(fixture
        .call(
            "write_file",
            json!({"path": "a/b/c.txt", "content": "héllo\n"}),
        )
        .await);
    assert_eq!(
        output,
        json!({"path": "a/b/c.txt", "bytes_written": 7, "created": true})
    );
    assert_eq!(fixture.read("a/b/c.txt"), "héllo\n");
    // Nothing else was left behind (no temporary file).
    let names: Vec<_> = fs::read_dir(fixture.root.join("a/b"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["c.txt"]);
}

#[tokio::test]
async fn write_file_overwrites_and_keeps_permissions() {
    let fixture = Fixture::new();
    let path = fixture.write("run.sh", "#!/bin/sh\necho old\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let output = ok(fixture
        .call(
            "write_file",
            json!({"path": "run.sh", "content": "#!/bin/sh\necho new\n"}),
        )
        .await);
    assert_eq!(
        output,
        json!({"path": "run.sh", "bytes_written": 19, "created": false})
    );
    assert_eq!(fixture.read("run.sh"), "#!/bin/sh\necho new\n");
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    // An empty content makes an empty file.
    ok(fixture
        .call("write_file", json!({"path": "run.sh", "content": ""}))
        .await);
    assert_eq!(fixture.read("run.sh"), "");
}

#[tokio::test]
async fn write_file_refuses_directories_and_file_parents() {
    let fixture = Fixture::new();
    fs::create_dir(fixture.root.join("src")).unwrap();
    fixture.write("plain.txt", "x");
    assert_eq!(
        error_of(
            &fixture
                .call("write_file", json!({"path": "src", "content": "x"}))
                .await
        ),
        "src is a directory"
    );
    assert_eq!(
        error_of(
            &fixture
                .call("write_file", json!({"path": ".", "content": "x"}))
                .await
        ),
        ". is a directory"
    );
    assert_eq!(
        error_of(
            &fixture
                .call(
                    "write_file",
                    json!({"path": "plain.txt/inner.txt", "content": "x"})
                )
                .await
        ),
        "plain.txt/inner.txt: a parent of it is a file, not a directory"
    );
    assert_eq!(fixture.read("plain.txt"), "x");
}

#[tokio::test]
async fn edit_file_replaces_the_one_occurrence() {
    let fixture = Fixture::new();
    fixture.write("src/lib.rs", "fn a() {\n    1\n}\n\nfn b() {\n    2\n}\n");
    let output = ok(fixture
        .call(
            "edit_file",
            json!({"path": "src/lib.rs", "old_string": "fn b() {\n    2", "new_string": "fn b() {\n    20"}),
        )
        .await);
    assert_eq!(output, json!({"path": "src/lib.rs", "replacements": 1}));
    assert_eq!(
        fixture.read("src/lib.rs"),
        "fn a() {\n    1\n}\n\nfn b() {\n    20\n}\n"
    );
    // An empty new_string deletes.
    ok(fixture
        .call(
            "edit_file",
            json!({"path": "src/lib.rs", "old_string": "\n\nfn b() {\n    20\n}", "new_string": ""}),
        )
        .await);
    assert_eq!(fixture.read("src/lib.rs"), "fn a() {\n    1\n}\n");
}

#[tokio::test]
async fn edit_file_fails_clearly_when_old_string_is_absent() {
    let fixture = Fixture::new();
    fixture.write("src/lib.rs", "fn a() {}\n");
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "src/lib.rs", "old_string": "fn z() {}", "new_string": "fn y() {}"}),
        )
        .await;
    assert_eq!(error_of(&output), "old_string not found in src/lib.rs");
    assert_eq!(fixture.read("src/lib.rs"), "fn a() {}\n");
}

#[tokio::test]
async fn edit_file_fails_clearly_when_old_string_is_ambiguous() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "x = 1;\ny = 1;\nz = 1;\n");
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "a.txt", "old_string": " = 1;", "new_string": " = 2;"}),
        )
        .await;
    assert_eq!(
        error_of(&output),
        "old_string occurs 3 times in a.txt; include more context to make it unique"
    );
    assert_eq!(fixture.read("a.txt"), "x = 1;\ny = 1;\nz = 1;\n");
    // Overlapping occurrences count: either could be meant.
    fixture.write("b.txt", "aaa");
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "b.txt", "old_string": "aa", "new_string": "b"}),
        )
        .await;
    assert_eq!(
        error_of(&output),
        "old_string occurs 2 times in b.txt; include more context to make it unique"
    );
}

#[tokio::test]
async fn edit_file_refuses_missing_files_and_pointless_edits() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "abc");
    assert_eq!(
        error_of(
            &fixture
                .call(
                    "edit_file",
                    json!({"path": "new.txt", "old_string": "a", "new_string": "b"})
                )
                .await
        ),
        "new.txt does not exist; use write_file to create it"
    );
    assert_eq!(
        error_of(
            &fixture
                .call(
                    "edit_file",
                    json!({"path": "a.txt", "old_string": "b", "new_string": "b"})
                )
                .await
        ),
        "old_string and new_string are identical; nothing would change"
    );
    // A call built by hand skips `parse`; `run` still refuses it.
    let call = Call::EditFile {
        path: "a.txt".into(),
        old_string: String::new(),
        new_string: "x".into(),
    };
    let output = run(
        &fixture.workspace,
        &call,
        &Limits::default(),
        &[],
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(
        error_of(&output),
        "old_string must not be empty; use write_file to create or overwrite a file"
    );
    fixture.write("blob.bin", b"\xff\xfe\x00abc");
    assert_eq!(
        error_of(
            &fixture
                .call(
                    "edit_file",
                    json!({"path": "blob.bin", "old_string": "abc", "new_string": "x"})
                )
                .await
        ),
        "blob.bin is not UTF-8 text; edit_file only edits text files"
    );
    assert_eq!(fixture.read("a.txt"), "abc");
}

#[tokio::test]
async fn edit_file_hints_at_crlf_line_endings_and_keeps_permissions() {
    let fixture = Fixture::new();
    let path = fixture.write("win.txt", "one\r\ntwo\r\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    let output = fixture
        .call(
            "edit_file",
            json!({"path": "win.txt", "old_string": "one\ntwo", "new_string": "1\n2"}),
        )
        .await;
    assert_eq!(
        error_of(&output),
        "old_string not found in win.txt (the file has CRLF line endings; old_string must have them too)"
    );
    ok(fixture
        .call(
            "edit_file",
            json!({"path": "win.txt", "old_string": "one\r\ntwo", "new_string": "1\r\n2"}),
        )
        .await);
    assert_eq!(fixture.read("win.txt"), "1\r\n2\r\n");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o700
    );
}
