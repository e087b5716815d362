//! gc keeps what is reachable from `keep`, frees the rest, and keeps the
//! store's size bounded.

mod common;

use std::path::Path;

use common::{disk_state, Fixture};
use exo_snapshot::{RestoreOptions, ScanHint};

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let metadata = entry.metadata().unwrap();
        total += if metadata.is_dir() {
            dir_size(&entry.path())
        } else {
            metadata.len()
        };
    }
    total
}

#[test]
fn gc_frees_unreachable_objects_and_keeps_the_rest_usable() {
    let fixture = Fixture::new();
    for index in 0..30 {
        fixture.write(
            format!("d{}/f{index}.txt", index % 4),
            format!("{index}\n").repeat(200),
        );
    }
    let mut shadow = fixture.shadow();
    let mut commits = Vec::new();
    for round in 0..12 {
        for index in 0..5 {
            let file = (round * 5 + index) % 30;
            fixture.write(
                format!("d{}/f{file}.txt", file % 4),
                format!("round {round} file {file}\n").repeat(300),
            );
        }
        commits.push(shadow.snapshot(ScanHint::Full).unwrap());
    }
    let latest = commits.last().unwrap().clone();
    let report = shadow.gc(std::slice::from_ref(&latest.commit)).unwrap();
    assert!(report.bytes_freed > 0, "{report:?}");
    assert!(report.objects_after < report.objects_before, "{report:?}");
    // A commit, its tree, 4 subtrees and 30 blobs.
    assert_eq!(report.objects_after, 1 + 1 + 4 + 30, "{report:?}");
    for old in &commits[..commits.len() - 1] {
        assert!(!shadow.contains(&old.commit), "{} survived gc", old.commit);
    }
    assert!(shadow.contains(&latest.commit));
    assert_eq!(shadow.last(), Some(latest.commit.clone()));

    // The kept snapshot materializes and restores.
    let copy = fixture.dir.path().join("copy");
    shadow.materialize(&latest.commit, &copy).unwrap();
    assert_eq!(disk_state(&copy, &[]), disk_state(&fixture.ws, &[]));
    fixture.write("d0/f0.txt", "scribble\n");
    fixture.remove("d1");
    shadow
        .restore(
            &latest.commit,
            None,
            RestoreOptions {
                force: true,
                ..RestoreOptions::default()
            },
        )
        .unwrap();
    assert_eq!(disk_state(&fixture.ws, &[]), disk_state(&copy, &[]));

    // Snapshots go on working, after reopening too.
    assert_eq!(shadow.snapshot(ScanHint::Full).unwrap().tree, latest.tree);
    drop(shadow);
    let mut shadow = fixture.shadow();
    assert_eq!(shadow.last(), Some(latest.commit.clone()));
    assert_eq!(shadow.snapshot(ScanHint::Full).unwrap().tree, latest.tree);

    // Keeping nothing empties the store.
    let report = shadow.gc(&[]).unwrap();
    assert_eq!(report.objects_after, 0);
    assert_eq!(shadow.last(), None);
    let again = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(again.tree, latest.tree);
    assert_eq!(again.added, 30);
}

#[test]
fn repeated_snapshot_and_gc_stay_bounded() {
    let fixture = Fixture::new();
    for index in 0..40 {
        fixture.write(
            format!("f{index}.txt"),
            format!("content {index}\n").repeat(100),
        );
    }
    let mut shadow = fixture.shadow();
    let mut sizes = Vec::new();
    for round in 0..12 {
        // Alternate between two contents, so new commits are written and
        // old ones fall out of reach.
        fixture.write("flip.txt", if round % 2 == 0 { "even\n" } else { "odd\n" });
        let snapshot = shadow.snapshot(ScanHint::Full).unwrap();
        shadow.gc(std::slice::from_ref(&snapshot.commit)).unwrap();
        sizes.push(dir_size(shadow.dir()));
    }
    let steady = sizes[2];
    for (round, size) in sizes.iter().enumerate().skip(2) {
        assert!(
            *size <= steady + 4096,
            "round {round}: {size} bytes, up from {steady} ({sizes:?})"
        );
    }
}

#[test]
fn gc_refuses_unknown_commits() {
    let fixture = Fixture::new();
    fixture.write("a", "a");
    let mut shadow = fixture.shadow();
    let snapshot = shadow.snapshot(ScanHint::Full).unwrap();
    let error = shadow
        .gc(&[snapshot.commit.clone(), "2".repeat(40)])
        .unwrap_err();
    assert!(matches!(error, exo_snapshot::Error::NotFound(_)), "{error}");
    assert!(shadow.contains(&snapshot.commit));
}
