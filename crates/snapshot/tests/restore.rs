//! Restore writes only what differs, refuses to overwrite drifted work
//! unless forced, writes nothing on a dry run, and never writes through a
//! symlink or over an uncaptured file.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::Fixture;
use exo_snapshot::{Change, ChangeKind, Error, RestoreOptions, ScanHint};

fn identity(fixture: &Fixture, rel: &str) -> (u64, i64, i64) {
    let metadata = fs::symlink_metadata(fixture.path(rel)).unwrap();
    (metadata.ino(), metadata.mtime(), metadata.mtime_nsec())
}

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: PathBuf::from(path),
        kind,
    }
}

#[test]
fn restore_writes_only_differing_paths() {
    let fixture = Fixture::new();
    for index in 0..20 {
        fixture.write(
            format!("dir{}/file{index}.txt", index % 3),
            format!("{index}\n"),
        );
    }
    fixture.write("exec.sh", "#!/bin/sh\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();

    fixture.write("dir0/file0.txt", "changed\n");
    fixture.remove("dir1/file1.txt");
    fixture.write("dir9/new.txt", "new\n");
    fixture.set_exec("exec.sh", true);
    let second = shadow.snapshot(ScanHint::Full).unwrap();

    let untouched: Vec<String> = (2..20)
        .map(|i| format!("dir{}/file{i}.txt", i % 3))
        .collect();
    let identities: Vec<_> = untouched
        .iter()
        .map(|rel| identity(&fixture, rel))
        .collect();

    let report = shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(
        report.changes,
        vec![
            change("dir0/file0.txt", ChangeKind::Modified),
            change("dir1/file1.txt", ChangeKind::Added),
            change("dir9/new.txt", ChangeKind::Deleted),
            change("exec.sh", ChangeKind::ModeChanged),
        ]
    );
    let after: Vec<_> = untouched
        .iter()
        .map(|rel| identity(&fixture, rel))
        .collect();
    assert_eq!(after, identities);
    assert_eq!(fixture.read("dir0/file0.txt"), b"0\n");
    assert_eq!(fixture.read("dir1/file1.txt"), b"1\n");
    // The directory only the second snapshot had is gone.
    assert!(!fixture.path("dir9").exists());
    assert_eq!(
        fs::metadata(fixture.path("exec.sh")).unwrap().mode() & 0o111,
        0
    );
    assert_eq!(shadow.snapshot(ScanHint::Full).unwrap().tree, first.tree);
}

#[test]
fn conflict_is_refused_then_forced() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "a1\n");
    fixture.write("b/c.rs", "c1\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    fixture.write("a.txt", "a2\n");
    let second = shadow.snapshot(ScanHint::Full).unwrap();

    // Someone edits after the last snapshot.
    fixture.write("a.txt", "a3 unsaved work\n");
    fixture.write("b/c.rs", "c3 unsaved work\n");
    let error = shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap_err();
    match &error {
        Error::Conflict { paths } => {
            assert_eq!(paths, &[PathBuf::from("a.txt"), PathBuf::from("b/c.rs")]);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(
        error.to_string(),
        "workspace changed since the last snapshot: a.txt, b/c.rs; use --force to overwrite (a safety snapshot is taken first)"
    );
    // Nothing was written, and last did not move.
    assert_eq!(fixture.read("a.txt"), b"a3 unsaved work\n");
    assert_eq!(shadow.last(), Some(second.commit.clone()));

    // A dry run refuses too.
    let dry = RestoreOptions {
        dry_run: true,
        ..RestoreOptions::default()
    };
    assert!(matches!(
        shadow.restore(&first.commit, Some(&second.commit), dry),
        Err(Error::Conflict { .. })
    ));

    let forced = RestoreOptions {
        force: true,
        ..RestoreOptions::default()
    };
    let report = shadow
        .restore(&first.commit, Some(&second.commit), forced)
        .unwrap();
    assert!(report.written);
    assert_eq!(fixture.read("a.txt"), b"a1\n");
    assert_eq!(fixture.read("b/c.rs"), b"c1\n");
    assert_eq!(shadow.last(), Some(first.commit.clone()));
}

#[test]
fn dry_run_writes_nothing() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "a1\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    fixture.write("a.txt", "a2\n");
    fixture.write("b.txt", "b\n");
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    let before = common::fingerprint(&fixture.ws);
    let report = shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions {
                dry_run: true,
                ..RestoreOptions::default()
            },
        )
        .unwrap();
    assert!(!report.written);
    assert_eq!(
        report.changes,
        vec![
            change("a.txt", ChangeKind::Modified),
            change("b.txt", ChangeKind::Deleted)
        ]
    );
    assert_eq!(common::fingerprint(&fixture.ws), before);
    assert_eq!(shadow.last(), Some(second.commit));
}

#[test]
fn restore_never_writes_through_a_symlinked_directory() {
    let fixture = Fixture::new();
    let outside = fixture.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fixture.write("d/file.txt", "inside\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();

    // Replace the directory with a symlink to somewhere else.
    fixture.remove("d");
    fixture.symlink(&outside, "d");
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert!(fs::symlink_metadata(fixture.path("d")).unwrap().is_dir());
    assert_eq!(fixture.read("d/file.txt"), b"inside\n");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn uncaptured_files_in_the_way_are_left_alone_and_reported() {
    let fixture = Fixture::new();
    fixture.write("notes.log", "captured while not ignored\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    // Now logs are ignored, and the user's log differs.
    fixture.write(".gitignore", "*.log\n");
    fixture.write("notes.log", "the user's ignored log\n");
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    let report = shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert_eq!(report.skipped[0].path, Path::new("notes.log"));
    assert_eq!(fixture.read("notes.log"), b"the user's ignored log\n");
    assert!(!fixture.path(".gitignore").exists());
}

#[test]
fn file_and_directory_swap_places() {
    let fixture = Fixture::new();
    fixture.write("x", "file x\n");
    fixture.write("y/inner.txt", "dir y\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    fixture.remove("x");
    fixture.write("x/inner.txt", "dir x\n");
    fixture.remove("y");
    fixture.write("y", "file y\n");
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(fixture.read("x"), b"file x\n");
    assert_eq!(fixture.read("y/inner.txt"), b"dir y\n");
    shadow
        .restore(
            &second.commit,
            Some(&first.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(fixture.read("x/inner.txt"), b"dir x\n");
    assert_eq!(fixture.read("y"), b"file y\n");
}

#[test]
fn unknown_commits_are_not_found() {
    let fixture = Fixture::new();
    fixture.write("a", "a");
    let mut shadow = fixture.shadow();
    let missing = "1".repeat(40);
    assert!(matches!(
        shadow.restore(&missing, None, RestoreOptions::default()),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        shadow.restore(&"xyz".to_string(), None, RestoreOptions::default()),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn hard_links_are_replaced_not_written_through() {
    let fixture = Fixture::new();
    let outside = fixture.dir.path().join("outside.txt");
    fs::write(&outside, "outside v1\n").unwrap();
    fixture.write("plain.txt", "plain v1\n");
    let mut shadow = fixture.shadow();
    // Snapshot a workspace whose linked.txt says "mine".
    fixture.write("linked.txt", "mine\n");
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    // Now linked.txt is a hard link to a file outside the workspace.
    fixture.remove("linked.txt");
    fs::hard_link(&outside, fixture.path("linked.txt")).unwrap();
    fixture.write("plain.txt", "plain v2\n");
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    let plain_inode = identity(&fixture, "plain.txt").0;
    shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert_eq!(fixture.read("linked.txt"), b"mine\n");
    assert_eq!(fs::read(&outside).unwrap(), b"outside v1\n");
    // A file with one link is rewritten in place.
    assert_eq!(fixture.read("plain.txt"), b"plain v1\n");
    assert_eq!(identity(&fixture, "plain.txt").0, plain_inode);
}

#[test]
fn keep_drifted_restores_the_rest_and_reports_the_drifted_paths() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "a1\n");
    fixture.write("b.txt", "b1\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    fixture.write("a.txt", "a2\n");
    fixture.write("b.txt", "b2\n");
    let safety = shadow.snapshot(ScanHint::Full).unwrap();
    // Written after the safety snapshot: in no snapshot.
    fixture.write("b.txt", "b3 unsaved\n");
    fixture.write("c.txt", "c3 unsaved\n");
    let options = RestoreOptions {
        keep_drifted: true,
        ..RestoreOptions::default()
    };
    let report = shadow
        .restore(&first.commit, Some(&safety.commit), options)
        .unwrap();
    assert_eq!(report.changes, vec![change("a.txt", ChangeKind::Modified)]);
    assert_eq!(
        report.conflicts,
        vec![
            change("b.txt", ChangeKind::Modified),
            change("c.txt", ChangeKind::Added)
        ]
    );
    assert!(report.is_partial());
    assert_eq!(fixture.read("a.txt"), b"a1\n");
    assert_eq!(fixture.read("b.txt"), b"b3 unsaved\n");
    assert_eq!(fixture.read("c.txt"), b"c3 unsaved\n");
}

#[test]
fn a_path_left_alone_is_not_listed_as_restored() {
    let fixture = Fixture::new();
    fixture.write("data", "captured\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    fixture.remove("data");
    let status = std::process::Command::new("mkfifo")
        .arg(fixture.path("data"))
        .status()
        .unwrap();
    assert!(status.success());
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    let report = shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert!(report.changes.is_empty(), "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(
        report.skipped[0].reason.contains("fifo"),
        "{:?}",
        report.skipped
    );
    assert!(fs::symlink_metadata(fixture.path("data"))
        .unwrap()
        .file_type()
        .is_fifo());
}
