//! A writer racing a restore, shared by the CLI and daemon tests.
//!
//! A workspace to restore from B back to A, big enough that a writer can
//! race the restore: `d/*` only in B (the restore deletes them, first),
//! `m/*` in both with other content (rewritten in place), `n/*` only in A
//! (created last).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DELETED: usize = 1000;
pub const MODIFIED: usize = 3000;
pub const ADDED: usize = 500;

fn body(tag: &str, rel: &str) -> String {
    format!("{tag} {rel}\n{}\n", "x".repeat(100))
}

fn write_all(ws: &Path, files: impl IntoIterator<Item = (String, String)>) {
    for (rel, content) in files {
        let path = ws.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// The files of state A.
pub fn state_a() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for i in 0..MODIFIED {
        let rel = format!("m/{i:04}");
        files.insert(rel.clone(), body("A", &rel));
    }
    for i in 0..ADDED {
        let rel = format!("n/{i:04}");
        files.insert(rel.clone(), body("A", &rel));
    }
    files
}

pub fn make_a(ws: &Path) {
    write_all(ws, state_a());
}

/// Turns A into B on disk.
pub fn make_b(ws: &Path) {
    std::fs::remove_dir_all(ws.join("n")).unwrap();
    write_all(
        ws,
        (0..MODIFIED).map(|i| {
            let rel = format!("m/{i:04}");
            let content = body("B", &rel);
            (rel, content)
        }),
    );
    write_all(
        ws,
        (0..DELETED).map(|i| {
            let rel = format!("d/{i:04}");
            let content = body("B", &rel);
            (rel, content)
        }),
    );
}

/// The paths the racer writes: the last ones the restore reaches,
/// latest first.
pub fn raced() -> Vec<String> {
    let mut paths = Vec::new();
    paths.extend(
        (MODIFIED - 300..MODIFIED)
            .rev()
            .map(|i| format!("m/{i:04}")),
    );
    paths.extend((ADDED - 100..ADDED).rev().map(|i| format!("n/{i:04}")));
    paths.extend((DELETED - 50..DELETED).rev().map(|i| format!("d/{i:04}")));
    paths
}

pub fn racer_content(rel: &str) -> String {
    format!("the racer's own edit of {rel}\n")
}

/// Starts a writer that waits until the restore has begun writing (the
/// first file it deletes, `d/0000`, is gone: the safety snapshot is
/// recorded by then) and then saves each raced path once, as an editor
/// does (write a temporary file, rename it over the path). Returns when
/// `stop` is set without the restore having begun.
pub fn start(
    ws: PathBuf,
    scratch: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<bool> {
    std::fs::create_dir_all(&scratch).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while ws.join("d/0000").exists() {
            if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        for (n, rel) in raced().iter().enumerate() {
            let temp = scratch.join(format!("t{n}"));
            std::fs::write(&temp, racer_content(rel)).unwrap();
            let path = ws.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::rename(&temp, &path).unwrap();
        }
        true
    })
}

/// What must hold after the race, whatever the timing: no byte the
/// racer wrote is lost (each raced path holds its content; those the
/// restore found changed are reported as conflicts, and only those),
/// and every other path is as in A.
pub fn check(ws: &Path, conflicts: &BTreeSet<String>, changed: &BTreeSet<String>) {
    let raced: BTreeSet<String> = raced().into_iter().collect();
    for rel in &raced {
        let on_disk = std::fs::read_to_string(ws.join(rel)).unwrap_or_default();
        assert_eq!(
            on_disk,
            racer_content(rel),
            "the racer's save of {rel} was lost (reported as a conflict: {})",
            conflicts.contains(rel)
        );
    }
    for rel in conflicts {
        assert!(raced.contains(rel), "{rel} reported as a conflict");
        assert!(!changed.contains(rel), "{rel} both restored and left alone");
    }
    let a = state_a();
    for (rel, content) in &a {
        if !raced.contains(rel) {
            assert_eq!(
                &std::fs::read_to_string(ws.join(rel)).unwrap(),
                content,
                "{rel}"
            );
        }
    }
    for i in 0..DELETED {
        let rel = format!("d/{i:04}");
        if !raced.contains(&rel) {
            assert!(!ws.join(&rel).exists(), "{rel} should be deleted");
        }
    }
}
