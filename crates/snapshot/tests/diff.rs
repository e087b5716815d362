//! Change lists and unified diffs between snapshots, and drift.

mod common;

use std::path::PathBuf;

use common::Fixture;
use exo_snapshot::{Change, ChangeKind, ScanHint};

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: PathBuf::from(path),
        kind,
    }
}

#[test]
fn diff_lists_every_kind_of_change() {
    let fixture = Fixture::new();
    fixture.write("kept.txt", "same\n");
    fixture.write("edit.txt", "one\ntwo\nthree\n");
    fixture.write("gone.txt", "bye\n");
    fixture.write("tool.sh", "#!/bin/sh\n");
    fixture.write("pic.bin", [0u8, 1, 2, 3]);
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    fixture.write("edit.txt", "one\n2\nthree\n");
    fixture.remove("gone.txt");
    fixture.set_exec("tool.sh", true);
    fixture.write("pic.bin", [0u8, 9, 9, 3]);
    fixture.write("new/file.txt", "hello\n");
    let second = shadow.snapshot(ScanHint::Full).unwrap();

    let changes = shadow.diff(&first.commit, &second.commit).unwrap();
    assert_eq!(
        changes,
        vec![
            change("edit.txt", ChangeKind::Modified),
            change("gone.txt", ChangeKind::Deleted),
            change("new/file.txt", ChangeKind::Added),
            change("pic.bin", ChangeKind::Modified),
            change("tool.sh", ChangeKind::ModeChanged),
        ]
    );
    assert!(shadow
        .diff(&second.commit, &second.commit)
        .unwrap()
        .is_empty());

    let text = shadow.unified_diff(&first.commit, &second.commit).unwrap();
    let expected = "\
diff --git a/edit.txt b/edit.txt
--- a/edit.txt
+++ b/edit.txt
@@ -1,3 +1,3 @@
 one
-two
+2
 three
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
--- a/gone.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/new/file.txt b/new/file.txt
new file mode 100644
--- /dev/null
+++ b/new/file.txt
@@ -0,0 +1 @@
+hello
diff --git a/pic.bin b/pic.bin
Binary files a/pic.bin and b/pic.bin differ
diff --git a/tool.sh b/tool.sh
old mode 100644
new mode 100755
";
    assert_eq!(text, expected);

    let limited = shadow
        .unified_diff_paths(&first.commit, &second.commit, &[PathBuf::from("new")])
        .unwrap();
    assert!(
        limited.starts_with("diff --git a/new/file.txt b/new/file.txt\n"),
        "{limited}"
    );
    assert_eq!(limited.matches("diff --git").count(), 1);
}

#[test]
fn drift_reports_without_recording() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "a\n");
    fixture.write("b.txt", "b\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    assert!(shadow.drift(&first.commit).unwrap().is_empty());
    fixture.write("a.txt", "changed\n");
    fixture.remove("b.txt");
    fixture.write("c.txt", "c\n");
    let drift = shadow.drift(&first.commit).unwrap();
    assert_eq!(
        drift,
        vec![
            change("a.txt", ChangeKind::Modified),
            change("b.txt", ChangeKind::Deleted),
            change("c.txt", ChangeKind::Added),
        ]
    );
    assert_eq!(shadow.last(), Some(first.commit.clone()));
    drop(shadow);
    assert_eq!(fixture.shadow().last(), Some(first.commit));
}

/// `peek` gives the disk as a commit to compare against without taking a
/// snapshot: the next snapshot still counts from the last one.
#[test]
fn peeking_does_not_move_the_last_snapshot() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "one\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(shadow.peek(ScanHint::Full).unwrap(), first.commit);
    fixture.write("a.txt", "two\n");
    let now = shadow.peek(ScanHint::Full).unwrap();
    assert_eq!(
        shadow.diff(&first.commit, &now).unwrap(),
        vec![change("a.txt", ChangeKind::Modified)]
    );
    assert_eq!(
        shadow.last().map(|oid| oid.to_string()),
        Some(first.commit.clone())
    );
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!((second.added, second.modified, second.deleted), (0, 1, 0));
}
