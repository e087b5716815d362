//! Incremental snapshots: a watcher-assisted snapshot always has the same
//! tree as a full scan of the same workspace by an independent shadow.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::Fixture;
use exo_snapshot::{Options, ScanHint, Shadow, Watcher};
use proptest::prelude::*;

/// A workspace with a watcher-assisted shadow (A) and, in a separate exo
/// root, a shadow that always scans everything (B).
struct Pair {
    fixture: Fixture,
    watcher: Watcher,
    incremental: Shadow,
    full: Shadow,
    steps: usize,
}

impl Pair {
    fn new(fixture: Fixture) -> Pair {
        let full_root = fixture.dir.path().join("exo-full");
        let mut watcher = Watcher::new(&fixture.ws, &fixture.exo).unwrap();
        let mut incremental = fixture.shadow();
        let full = Shadow::open(&full_root, &fixture.ws, Options::default()).unwrap();
        // The first hint is always Full.
        let hint = watcher.take_hint();
        assert_eq!(hint, ScanHint::Full);
        incremental.snapshot(hint).unwrap();
        Pair {
            fixture,
            watcher,
            incremental,
            full,
            steps: 0,
        }
    }

    /// Snapshots both ways and checks they agree; returns the hint used.
    fn check(&mut self) -> ScanHint {
        self.steps += 1;
        let hint = self.watcher.take_hint();
        // Nothing here can overflow inotify's queue: every hint after the
        // first names paths.
        assert!(
            matches!(hint, ScanHint::Paths(_)),
            "step {}: a Full hint",
            self.steps
        );
        let incremental = self.incremental.snapshot(hint.clone()).unwrap();
        let full = self.full.snapshot(ScanHint::Full).unwrap();
        assert_eq!(
            incremental.tree, full.tree,
            "step {}: hint {hint:?} gave another tree than a full scan",
            self.steps
        );
        assert_eq!(incremental.skipped, full.skipped);
        hint
    }
}

fn paths_of(hint: &ScanHint) -> BTreeSet<PathBuf> {
    match hint {
        ScanHint::Full => panic!("expected a hint with paths, got Full"),
        ScanHint::Paths(paths) => paths.clone(),
    }
}

#[test]
fn one_file_change_is_hinted_and_matches_a_full_scan() {
    let fixture = Fixture::new();
    for index in 0..50 {
        fixture.write(
            format!("src/m{}/f{index}.rs", index % 5),
            format!("// {index}\n"),
        );
    }
    let mut pair = Pair::new(fixture);
    pair.fixture.write("src/m3/f13.rs", "// changed\n");
    let hint = pair.check();
    assert!(
        paths_of(&hint).contains(Path::new("src/m3/f13.rs")),
        "{hint:?}"
    );
    assert!(paths_of(&hint).len() <= 2, "{hint:?}");

    // Nothing changed: an empty hint, the same commit.
    let before = pair.incremental.last();
    let hint = pair.check();
    assert!(paths_of(&hint).is_empty(), "{hint:?}");
    assert_eq!(pair.incremental.last(), before);
}

#[test]
fn watcher_scenarios_match_full_scans() {
    let fixture = Fixture::new();
    fixture.write(".gitignore", "ignored/\n*.tmp\n");
    fixture.write("ignored/a.txt", "a\n");
    fixture.write("keep/a.txt", "a\n");
    let mut pair = Pair::new(fixture);
    let f = |pair: &Pair| pair.fixture.ws.clone();

    // A new directory tree, then a change deep inside it.
    pair.fixture.write("new/deep/er/file.txt", "1\n");
    pair.check();
    pair.fixture.write("new/deep/er/file.txt", "2\n");
    pair.fixture.write("new/deep/er/other.txt", "2\n");
    pair.check();

    // A renamed directory, then a change inside it under its new name.
    fs::rename(f(&pair).join("new"), f(&pair).join("renamed")).unwrap();
    pair.check();
    pair.fixture.write("renamed/deep/er/file.txt", "3\n");
    pair.check();

    // Un-ignoring a directory, then changing a file inside it.
    pair.fixture.write(".gitignore", "*.tmp\n");
    pair.check();
    pair.fixture
        .write("ignored/a.txt", "now captured and changed\n");
    pair.check();
    pair.fixture.write("ignored/sub/b.txt", "new inside\n");
    pair.check();

    // Ignoring it again.
    pair.fixture.write(".gitignore", "ignored/\n");
    pair.check();

    // A directory replaced by a file and back.
    pair.fixture.remove("keep");
    pair.fixture.write("keep", "file now\n");
    pair.check();
    pair.fixture.remove("keep");
    pair.fixture.write("keep/x/y.txt", "dir again\n");
    pair.check();

    // chmod, symlinks, an .exoignore and a nested repository's exclude.
    pair.fixture.set_exec("keep/x/y.txt", true);
    pair.check();
    pair.fixture.symlink("keep/x", "link");
    pair.check();
    pair.fixture.write(".exoignore", "keep/\n");
    pair.check();
    pair.fixture
        .write("nested/.git/info/exclude", "local.txt\n");
    pair.fixture.write("nested/local.txt", "excluded\n");
    pair.fixture.write("nested/shared.txt", "captured\n");
    pair.check();
    pair.fixture
        .write("nested/.git/info/exclude", "shared.txt\n");
    pair.check();
    // A directory moved out of the workspace and back in.
    let outside = pair.fixture.dir.path().join("parked");
    fs::rename(f(&pair).join("renamed"), &outside).unwrap();
    pair.check();
    fs::rename(&outside, f(&pair).join("back")).unwrap();
    pair.check();
    pair.fixture.write("back/deep/er/file.txt", "4\n");
    pair.check();
}

#[test]
fn a_fresh_shadow_does_not_trust_a_hint() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "1\n");
    fixture.write("b.txt", "1\n");
    let first = fixture.shadow().snapshot(ScanHint::Full).unwrap();
    fixture.write("b.txt", "2\n");
    // A hint naming only a.txt is not trusted by a shadow that has not
    // scanned yet in this process: it scans everything and sees b.txt.
    let mut shadow = fixture.shadow();
    let hint = ScanHint::Paths(BTreeSet::from([PathBuf::from("a.txt")]));
    let snapshot = shadow.snapshot(hint.clone()).unwrap();
    assert!(snapshot.full_scan);
    assert_eq!(snapshot.modified, 1);
    assert_ne!(snapshot.tree, first.tree);
    // Once it has scanned, it trusts hints (even absolute ones).
    fixture.write("a.txt", "2\n");
    let absolute = ScanHint::Paths(BTreeSet::from([fixture.path("a.txt")]));
    let next = shadow.snapshot(absolute).unwrap();
    assert!(!next.full_scan);
    assert_eq!(next.modified, 1);
}

/// One edit in the property test's small namespace.
#[derive(Clone, Debug)]
enum Op {
    Write { path: usize, content: u8 },
    Delete { path: usize },
    Chmod { path: usize },
    Rename { from: usize, to: usize },
    Mkdir { dir: usize },
    Rmdir { dir: usize },
    Symlink { path: usize, target: usize },
    Ignore { dir: usize, pattern: usize },
}

const DIRS: [&str; 6] = ["", "a", "a/b", "c", "n/e/w", "a/b/d"];
const NAMES: [&str; 4] = ["f0", "f1", "g.x", "h"];
const PATTERNS: [&str; 5] = ["f1", "b/", "*.x", "!f1", ""];

fn path_of(index: usize) -> PathBuf {
    let dir = DIRS[index % DIRS.len()];
    let name = NAMES[(index / DIRS.len()) % NAMES.len()];
    Path::new(dir).join(name)
}

fn op() -> impl Strategy<Value = Op> {
    let path = 0..DIRS.len() * NAMES.len();
    prop_oneof![
        4 => (path.clone(), any::<u8>()).prop_map(|(path, content)| Op::Write { path, content }),
        2 => path.clone().prop_map(|path| Op::Delete { path }),
        1 => path.clone().prop_map(|path| Op::Chmod { path }),
        2 => (0..DIRS.len() * NAMES.len() + DIRS.len(), 0..DIRS.len() * NAMES.len() + DIRS.len())
            .prop_map(|(from, to)| Op::Rename { from, to }),
        1 => (0..DIRS.len()).prop_map(|dir| Op::Mkdir { dir }),
        1 => (0..DIRS.len()).prop_map(|dir| Op::Rmdir { dir }),
        1 => (path.clone(), path).prop_map(|(path, target)| Op::Symlink { path, target }),
        1 => (0..DIRS.len(), 0..PATTERNS.len()).prop_map(|(dir, pattern)| Op::Ignore { dir, pattern }),
    ]
}

/// A file path for indexes below `DIRS × NAMES`, a directory above.
fn file_or_dir(index: usize) -> PathBuf {
    let files = DIRS.len() * NAMES.len();
    if index < files {
        path_of(index)
    } else {
        PathBuf::from(DIRS[(index - files) % DIRS.len()])
    }
}

/// Applies an edit; edits that make no sense right now (a parent is a
/// file, the source is missing) just fail quietly, like a user's would.
fn apply(ws: &Path, op: &Op) {
    match op {
        Op::Write { path, content } => {
            let path = ws.join(path_of(*path));
            if let Some(parent) = path.parent() {
                let _ = fs::create_dir_all(parent);
            }
            if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                let _ = fs::remove_file(&path);
            }
            let _ = fs::write(&path, vec![*content; usize::from(*content % 7)]);
        }
        Op::Delete { path } => {
            let _ = fs::remove_file(ws.join(path_of(*path)));
        }
        Op::Chmod { path } => {
            let path = ws.join(path_of(*path));
            if let Ok(metadata) = fs::symlink_metadata(&path) {
                if metadata.is_file() {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = metadata.permissions().mode() ^ 0o111;
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode));
                }
            }
        }
        Op::Rename { from, to } => {
            let from = ws.join(file_or_dir(*from));
            let to = ws.join(file_or_dir(*to));
            if from != ws && to != ws && !to.starts_with(&from) {
                let _ = fs::rename(from, to);
            }
        }
        Op::Mkdir { dir } => {
            let _ = fs::create_dir_all(ws.join(DIRS[*dir]));
        }
        Op::Rmdir { dir } => {
            if !DIRS[*dir].is_empty() {
                let _ = fs::remove_dir_all(ws.join(DIRS[*dir]));
            }
        }
        Op::Symlink { path, target } => {
            let link = ws.join(path_of(*path));
            let _ = fs::remove_file(&link);
            if let Some(parent) = link.parent() {
                let _ = fs::create_dir_all(parent);
            }
            let _ = std::os::unix::fs::symlink(path_of(*target), link);
        }
        Op::Ignore { dir, pattern } => {
            let dir = ws.join(DIRS[*dir]);
            let _ = fs::create_dir_all(&dir);
            let _ = fs::write(dir.join(".gitignore"), format!("{}\n", PATTERNS[*pattern]));
        }
    }
}

proptest! {
    // 32 cases by default; EXO_PROPTEST_CASES=1000 for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EXO_PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn watcher_assisted_snapshots_equal_full_scans(
        steps in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..8)
    ) {
        let fixture = Fixture::new();
        fixture.write("a/b/f0", "seed\n");
        fixture.write("c/h", "seed\n");
        let mut pair = Pair::new(fixture);
        for step in &steps {
            for op in step {
                apply(&pair.fixture.ws, op);
            }
            pair.check();
        }
    }
}
