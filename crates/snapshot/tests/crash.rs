//! Crash durability: a process killed at any moment (SIGKILL) never leaves
//! a snapshot it reported incomplete, nor a shadow that cannot be opened.
//!
//! The test re-executes its own binary as the child (selected by an
//! environment variable). The child snapshots a changing tree in a loop,
//! printing each commit id after `snapshot` returns, and every few rounds
//! runs gc keeping every commit reported so far (by it or by an earlier
//! child). The parent kills it at pseudo-random moments, then checks that
//! the shadow opens, that every object of every reported commit reads back
//! (libgit2 verifies each hash), and that the newest one materializes.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Fixture;
use exo_snapshot::{Options, ScanHint, Shadow};

const CHILD_ENV: &str = "EXO_SNAPSHOT_CRASH_CHILD";

/// The child: snapshot forever (until killed).
fn child(exo: &Path, ws: &Path) {
    let mut shadow = Shadow::open(exo, ws, Options::default()).unwrap();
    let stdout = std::io::stdout();
    // Commits earlier children reported: gc must keep them too.
    let mut printed: Vec<String> = std::fs::read_to_string(ws.with_file_name("reported.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let mut round: u64 = std::process::id() as u64 * 1000;
    loop {
        round += 1;
        for index in 0..40 {
            let file = (round * 7 + index) % 240;
            common::write(
                &ws.join(format!("d{}/f{file}.txt", file % 13)),
                format!("round {round} file {file}\n").repeat(64).as_bytes(),
            );
        }
        let snapshot = shadow.snapshot(ScanHint::Full).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "commit {}", snapshot.commit).unwrap();
        out.flush().unwrap();
        drop(out);
        printed.push(snapshot.commit);
        if round.is_multiple_of(4) {
            shadow.gc(&printed).unwrap();
        }
    }
}

/// Reads every object below a tree not in `seen` (libgit2 verifies each
/// one's hash as it reads it).
fn read_all(repo: &git2::Repository, tree: &git2::Tree<'_>, seen: &mut HashSet<git2::Oid>) {
    let odb = repo.odb().unwrap();
    for entry in tree.iter() {
        if !seen.insert(entry.id()) {
            continue;
        }
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                read_all(repo, &repo.find_tree(entry.id()).unwrap(), seen)
            }
            _ => {
                odb.read(entry.id()).unwrap();
            }
        }
    }
}

#[test]
fn killed_snapshots_are_complete_or_never_reported() {
    if let Some(paths) = std::env::var_os(CHILD_ENV) {
        let paths = PathBuf::from(paths);
        child(&paths.join("exo"), &paths.join("ws"));
        return;
    }
    let fixture = Fixture::new();
    for file in 0..240 {
        fixture.write(
            format!("d{}/f{file}.txt", file % 13),
            format!("initial {file}\n").repeat(64),
        );
    }
    for index in 0..2 {
        fixture.write(format!("big{index}.bin"), vec![index as u8; 1 << 20]);
    }
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut reported: Vec<String> = Vec::new();
    for iteration in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(100 + seed % 1200);
        std::fs::write(fixture.dir.path().join("reported.txt"), reported.join("\n")).unwrap();
        let mut process = Command::new(&exe)
            .args([
                "--exact",
                "killed_snapshots_are_complete_or_never_reported",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, fixture.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(commit) = line.strip_prefix("commit ") {
                    let _ = sender.send(commit.to_string());
                }
            }
        });
        std::thread::sleep(delay);
        process.kill().unwrap();
        let status = process.wait().unwrap();
        reader.join().unwrap();
        let new: Vec<String> = receiver.try_iter().collect();
        assert!(
            status.code().is_none(),
            "iteration {iteration}: the child exited on its own ({status:?}), it should loop until killed"
        );

        let shadow = Shadow::open_with_timeout(
            &fixture.exo,
            &fixture.ws,
            Options::default(),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|error| panic!("iteration {iteration}: reopening failed: {error}"));
        // The newest commit is materialized; every commit reported so far
        // (which a later gc may have repacked) is read object by object.
        if let Some(commit) = new.last() {
            let out = fixture.dir.path().join("check");
            shadow.materialize(commit, &out).unwrap_or_else(|error| {
                panic!("iteration {iteration}: {commit} is incomplete: {error}")
            });
            std::fs::remove_dir_all(&out).unwrap();
        }
        reported.extend(new);
        let repo = git2::Repository::open_bare(shadow.dir()).unwrap();
        let mut seen = HashSet::new();
        for commit in &reported {
            assert!(
                shadow.contains(commit),
                "iteration {iteration}: {commit} is missing"
            );
            let tree = repo
                .find_commit(git2::Oid::from_str(commit).unwrap())
                .unwrap()
                .tree()
                .unwrap();
            read_all(&repo, &tree, &mut seen);
        }
    }
    eprintln!("crash test: {} commits reported", reported.len());
    assert!(
        !reported.is_empty(),
        "no snapshot finished before a kill; lengthen the delays"
    );
    // After all that, the shadow still snapshots.
    let mut shadow = fixture.shadow();
    shadow.snapshot(ScanHint::Full).unwrap();
}

/// A process killed while creating the shadow repository (before HEAD was
/// written, with git's config lock held) does not leave it unopenable.
#[test]
fn a_shadow_whose_creation_was_killed_opens() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "a\n");
    let dir = fixture.shadow().dir().to_path_buf();
    // What a kill while `git init` writes the config leaves: no HEAD yet,
    // no config, its lock file taken.
    std::fs::remove_file(dir.join("HEAD")).unwrap();
    std::fs::rename(dir.join("config"), dir.join("config.lock")).unwrap();
    let mut shadow = fixture.shadow();
    let snapshot = shadow.snapshot(ScanHint::Full).unwrap();
    assert!(shadow.contains(&snapshot.commit));
}

/// A shadow store's workspace marker left empty (a process killed while an
/// older exo wrote it in place) names no workspace: the next open writes
/// it again and snapshots go on, while a marker naming another workspace
/// is still refused.
#[test]
fn an_empty_workspace_marker_is_written_again() {
    let fixture = Fixture::new();
    std::fs::write(fixture.ws.join("a.txt"), "a").unwrap();
    let dir = {
        let mut shadow = Shadow::open(&fixture.exo, &fixture.ws, Options::default()).unwrap();
        shadow.snapshot(ScanHint::Full).unwrap();
        shadow.dir().to_path_buf()
    };
    let marker = dir.join("exo-workspace");
    std::fs::write(&marker, "").unwrap();
    let mut shadow = Shadow::open(&fixture.exo, &fixture.ws, Options::default()).unwrap();
    shadow.snapshot(ScanHint::Full).unwrap();
    drop(shadow);
    let canonical = fixture.ws.canonicalize().unwrap();
    assert_eq!(
        std::fs::read(&marker).unwrap(),
        canonical.as_os_str().as_encoded_bytes()
    );
    std::fs::write(&marker, "/somewhere/else").unwrap();
    let refused = Shadow::open(&fixture.exo, &fixture.ws, Options::default()).err();
    assert!(refused.is_some_and(|err| err
        .to_string()
        .contains("belongs to workspace /somewhere/else")),);
}
