//! Capture rules and round-trip fidelity: snapshot, mutate everything,
//! restore, and get the same tree and the same files back.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{disk_state, latin1_name, Fixture, Node};
use exo_snapshot::{Options, RestoreOptions, ScanHint, Shadow};

/// A workspace exercising every capture rule.
fn populate(fixture: &Fixture) {
    fixture.write("README.md", "hello\n");
    fixture.write("empty", "");
    fixture.write("bin/run.sh", "#!/bin/sh\necho hi\n");
    fixture.set_exec("bin/run.sh", true);
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    fixture.write("assets/blob.bin", &binary);
    fixture.write("deep/a/b/c/d/e.txt", "deep\n");
    fixture.write(Path::new("names").join(latin1_name()), "latin-1 name\n");
    fixture.write(".hidden/config", "hidden\n");
    fixture.symlink("README.md", "link-to-readme");
    fixture.symlink("does/not/exist", "dangling");
    fixture.symlink("/etc/passwd", "outside");
    fixture.symlink("../..", "deep/a/up");
    // Ignore rules.
    fixture.write(".gitignore", "*.log\n/build/\n");
    fixture.write("sub/.gitignore", "secret.txt\n!keep.log\n");
    fixture.write(".exoignore", "scratch/\n");
    fixture.write("app.log", "ignored\n");
    fixture.write("build/out.o", "ignored\n");
    fixture.write("sub/secret.txt", "ignored\n");
    fixture.write("sub/keep.log", "re-included\n");
    fixture.write("sub/visible.txt", "visible\n");
    fixture.write("scratch/tmp.txt", "ignored by .exoignore\n");
    // A nested repository: files captured, its .git not.
    fixture.write("vendor/lib/.git/HEAD", "ref: refs/heads/main\n");
    fixture.write("vendor/lib/.git/config", "[core]\n");
    fixture.write("vendor/lib/src.rs", "fn main() {}\n");
    // Over the size limit (set to 1 MiB below).
    fixture.write("huge.dat", vec![7u8; (1 << 20) + 1]);
    // An empty directory: not captured.
    fs::create_dir_all(fixture.path("empty-dir")).unwrap();
}

fn options() -> Options {
    Options {
        max_file_bytes: 1 << 20,
        ..Options::default()
    }
}

fn tree_paths(fixture: &Fixture, commit: &str) -> Vec<PathBuf> {
    // Materialize and list, so the test reads the snapshot independently.
    let out = fixture.dir.path().join(format!("list-{commit}"));
    let shadow = Shadow::open(&fixture.exo, &fixture.ws, options()).unwrap();
    shadow.materialize(&commit.to_string(), &out).unwrap();
    let state = disk_state(&out, &[]);
    fs::remove_dir_all(&out).unwrap();
    state
        .into_iter()
        .filter(|(_, node)| *node != Node::Dir)
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn capture_rules() {
    let fixture = Fixture::new();
    populate(&fixture);
    let snapshot = {
        let mut shadow = Shadow::open(&fixture.exo, &fixture.ws, options()).unwrap();
        shadow.snapshot(ScanHint::Full).unwrap()
    };
    let paths = tree_paths(&fixture, &snapshot.commit);
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let expected = [
        ".exoignore",
        ".gitignore",
        ".hidden/config",
        "README.md",
        "assets/blob.bin",
        "bin/run.sh",
        "dangling",
        "deep/a/b/c/d/e.txt",
        "deep/a/up",
        "empty",
        "link-to-readme",
        "names/caf\u{fffd}.txt",
        "outside",
        "sub/.gitignore",
        "sub/keep.log",
        "sub/visible.txt",
        "vendor/lib/src.rs",
    ];
    assert_eq!(names, expected);
    assert!(paths.contains(&Path::new("names").join(latin1_name())));
    assert_eq!(snapshot.added, expected.len() as u64);
    assert_eq!(snapshot.skipped.len(), 1, "{:?}", snapshot.skipped);
    assert_eq!(snapshot.skipped[0].path, Path::new("huge.dat"));
    assert_eq!(snapshot.skipped[0].size, (1 << 20) + 1);
    assert_eq!(snapshot.skipped[0].reason, "larger than the 1 MiB limit");
    assert!(snapshot.full_scan);
}

#[test]
fn round_trip_restores_everything() {
    let fixture = Fixture::new();
    populate(&fixture);
    let skip = [
        "app.log",
        "build",
        "sub/secret.txt",
        "scratch",
        "huge.dat",
        "empty-dir",
    ];
    let before = disk_state(&fixture.ws, &skip);
    let mut shadow = Shadow::open(&fixture.exo, &fixture.ws, options()).unwrap();
    let first = shadow.snapshot(ScanHint::Full).unwrap();

    // Mutate everything.
    fixture.write("README.md", "changed\n");
    fixture.remove("empty");
    fixture.write("empty/now-a-dir.txt", "x");
    fixture.set_exec("bin/run.sh", false);
    fixture.write("assets/blob.bin", [0u8, 1, 2]);
    fixture.remove("deep/a");
    fixture.remove(Path::new("names").join(latin1_name()));
    fixture.write(".hidden/config", "changed\n");
    fixture.remove("link-to-readme");
    fixture.write("link-to-readme", "now a file\n");
    fixture.remove("dangling");
    fixture.symlink("README.md", "dangling");
    fixture.remove("outside");
    fixture.write("sub/keep.log", "changed\n");
    fixture.write("vendor/lib/src.rs", "changed\n");
    fixture.write("new/file.txt", "new\n");
    fixture.symlink("new", "new-link");
    fixture.write("app.log", "ignored, changed\n");

    let mutated = shadow.snapshot(ScanHint::Full).unwrap();
    assert_ne!(mutated.tree, first.tree);

    let report = shadow
        .restore(
            &first.commit,
            Some(&mutated.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    assert!(report.written);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(shadow.last(), Some(first.commit.clone()));

    let after = disk_state(&fixture.ws, &skip);
    assert_eq!(after, before);
    // The ignored file was left alone, the over-size file and the empty
    // directory too.
    assert_eq!(fixture.read("app.log"), b"ignored, changed\n");
    assert_eq!(fixture.read("huge.dat").len(), (1 << 20) + 1);
    assert!(fixture.path("empty-dir").is_dir());
    // The restored executable really is executable.
    let mode = fs::metadata(fixture.path("bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o100, 0);

    // A snapshot right after the restore is the target's tree, with or
    // without a hint.
    let again = shadow
        .snapshot(ScanHint::Paths(Default::default()))
        .unwrap();
    assert_eq!(again.tree, first.tree);
    let full = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(full.tree, first.tree);

    // An independent shadow agrees.
    let other = Fixture::new();
    let mut other_shadow = Shadow::open(&other.exo, &fixture.ws, options()).unwrap();
    assert_eq!(
        other_shadow.snapshot(ScanHint::Full).unwrap().tree,
        first.tree
    );
}

#[test]
fn materialize_writes_an_identical_copy() {
    let fixture = Fixture::new();
    populate(&fixture);
    let mut shadow = Shadow::open(&fixture.exo, &fixture.ws, options()).unwrap();
    let snapshot = shadow.snapshot(ScanHint::Full).unwrap();
    let copy = fixture.dir.path().join("copy");
    shadow.materialize(&snapshot.commit, &copy).unwrap();

    let skip = [
        "app.log",
        "build",
        "sub/secret.txt",
        "scratch",
        "huge.dat",
        "empty-dir",
    ];
    let mut original = disk_state(&fixture.ws, &skip);
    // The nested repository's .git is not captured, so its directory holds
    // only the captured file in the copy.
    original.retain(|path, _| !path.starts_with("vendor/lib/.git"));
    assert_eq!(disk_state(&copy, &[]), original);

    // Materializing into a non-empty directory is refused.
    let error = shadow.materialize(&snapshot.commit, &copy).unwrap_err();
    assert!(error.to_string().contains("not empty"), "{error}");
}

#[test]
fn exo_root_inside_the_workspace_is_left_out() {
    let fixture = Fixture::with_exo_inside();
    fixture.write("a.txt", "a\n");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(first.added, 1);
    // Snapshots write into the exo root; the next snapshot sees no change.
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(second.commit, first.commit);
    assert_eq!((second.added, second.modified, second.deleted), (0, 0, 0));
    let paths = {
        let out = fixture.dir.path().join("out");
        shadow.materialize(&first.commit, &out).unwrap();
        disk_state(&out, &[])
    };
    assert_eq!(paths.keys().collect::<Vec<_>>(), [Path::new("a.txt")]);

    // Restoring never deletes the exo root.
    fixture.write("b.txt", "b\n");
    shadow
        .restore(&first.commit, None, RestoreOptions::default())
        .unwrap();
    assert!(!fixture.path("b.txt").exists());
    assert!(fixture.exo.join("snapshots").is_dir());
}

#[test]
fn special_files_are_skipped_and_reported() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "a\n");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fixture.path("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let mut shadow = fixture.shadow();
    let snapshot = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(snapshot.added, 1);
    assert_eq!(snapshot.skipped.len(), 1);
    assert_eq!(snapshot.skipped[0].path, Path::new("pipe"));
    assert_eq!(snapshot.skipped[0].reason, "special file (fifo)");
}

#[test]
fn counts_are_relative_to_the_last_snapshot() {
    let fixture = Fixture::new();
    fixture.write("a", "1");
    fixture.write("b", "1");
    fixture.write("c", "1");
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!((first.added, first.modified, first.deleted), (3, 0, 0));
    fixture.write("a", "2");
    fixture.set_exec("b", true);
    fixture.remove("c");
    fixture.write("d", "1");
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!((second.added, second.modified, second.deleted), (1, 2, 1));

    // `last` survives reopening.
    drop(shadow);
    let shadow = fixture.shadow();
    assert_eq!(shadow.last(), Some(second.commit.clone()));
    assert!(shadow.contains(&second.commit));
    assert!(!shadow.contains(&second.tree));
    assert!(!shadow.contains(&"0".repeat(40)));
    assert!(!shadow.contains(&"not an id".to_string()));
}

#[test]
fn an_empty_workspace_has_the_empty_tree() {
    let fixture = Fixture::new();
    fs::create_dir_all(fixture.path("only/empty/dirs")).unwrap();
    let mut shadow = fixture.shadow();
    let snapshot = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(snapshot.tree, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
    assert_eq!(snapshot.added, 0);
}

#[test]
fn damaged_stat_cache_means_a_rehash_not_a_wrong_answer() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "one\n");
    let first = fixture.shadow().snapshot(ScanHint::Full).unwrap();
    let index = exo_shadow_dir(&fixture).join("exo-index");
    let mut bytes = fs::read(&index).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&index, bytes).unwrap();
    let mut shadow = fixture.shadow();
    assert_eq!(shadow.last(), Some(first.commit.clone()));
    let again = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(again.tree, first.tree);
    drop(shadow);
    // A damaged record of the last snapshot means no last snapshot.
    fs::write(exo_shadow_dir(&fixture).join("exo-last"), "garbage").unwrap();
    assert_eq!(fixture.shadow().last(), None);
}

/// The one shadow directory under the fixture's exo root.
pub fn exo_shadow_dir(fixture: &Fixture) -> PathBuf {
    let snapshots = fixture.exo.join("snapshots");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&snapshots)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let dir = dirs.remove(0);
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.len(), 16 + 4, "{name}");
    assert!(name.ends_with(".git"));
    dir
}

fn bits(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn narrow_permission_bits_survive_restore_materialize_and_gc() {
    let fixture = Fixture::new();
    fixture.write("id_key", "private\n");
    fs::set_permissions(fixture.path("id_key"), fs::Permissions::from_mode(0o600)).unwrap();
    fixture.write("tool", "#!/bin/sh\n");
    fs::set_permissions(fixture.path("tool"), fs::Permissions::from_mode(0o700)).unwrap();
    fixture.write("plain.txt", "plain\n");
    fs::set_permissions(fixture.path("plain.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();

    // A chmod alone is a change: a new snapshot, listed as mode_changed.
    fs::set_permissions(fixture.path("plain.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    assert_ne!(second.tree, first.tree);
    assert_eq!(second.modified, 1);
    let listed = shadow.diff(&first.commit, &second.commit).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].path, Path::new("plain.txt"));
    assert_eq!(listed[0].kind, exo_snapshot::ChangeKind::ModeChanged);
    let diff = shadow.unified_diff(&first.commit, &second.commit).unwrap();
    assert!(diff.contains("old mode 100644\nnew mode 100640"), "{diff}");
    assert!(!diff.contains("a/.git"), "{diff}");

    // Deleted and restored: the bits come back, never wider.
    fixture.remove("id_key");
    fixture.remove("tool");
    shadow.snapshot(ScanHint::Full).unwrap();
    let report = shadow
        .restore(&first.commit, None, RestoreOptions::default())
        .unwrap();
    assert!(!report.is_partial(), "{report:?}");
    assert_eq!(bits(&fixture.path("id_key")), 0o600);
    assert_eq!(bits(&fixture.path("tool")), 0o700);
    assert_eq!(bits(&fixture.path("plain.txt")), 0o644);
    assert_eq!(shadow.snapshot(ScanHint::Full).unwrap().tree, first.tree);

    // The note is no workspace path: nothing named .git is written.
    let copy = fixture.dir.path().join("copy");
    shadow.materialize(&first.commit, &copy).unwrap();
    assert_eq!(bits(&copy.join("id_key")), 0o600);
    assert_eq!(bits(&copy.join("tool")), 0o700);
    assert!(!copy.join(".git").exists());

    // It is reachable from the commit: gc keeps it.
    shadow.gc(std::slice::from_ref(&first.commit)).unwrap();
    drop(shadow);
    let shadow = fixture.shadow();
    let again = fixture.dir.path().join("again");
    shadow.materialize(&first.commit, &again).unwrap();
    assert_eq!(bits(&again.join("id_key")), 0o600);
}

#[test]
fn excluded_directories_are_never_captured_diffed_or_restored() {
    let fixture = Fixture::new();
    fixture.write("a.txt", "a\n");
    let mut shadow = fixture.shadow();
    // A snapshot taken without the exclusion holds the key.
    fixture.write(".config/exo/key", "the key\n");
    let old = shadow.snapshot(ScanHint::Full).unwrap();
    drop(shadow);
    let options = Options {
        exclude: vec![fixture.path(".config/exo")],
        ..Options::default()
    };
    let mut shadow = Shadow::open(&fixture.exo, &fixture.ws, options.clone()).unwrap();
    let new = shadow.snapshot(ScanHint::Full).unwrap();
    assert_eq!(new.deleted, 0, "the key is not listed as gone either");
    let copy = fixture.dir.path().join("copy");
    shadow.materialize(&new.commit, &copy).unwrap();
    assert!(!copy.join(".config").exists());
    let old_copy = fixture.dir.path().join("old-copy");
    shadow.materialize(&old.commit, &old_copy).unwrap();
    assert!(!old_copy.join(".config").exists());
    assert!(shadow.diff(&old.commit, &new.commit).unwrap().is_empty());
    assert!(!shadow
        .unified_diff(&old.commit, &new.commit)
        .unwrap()
        .contains("the key"));
    // Restoring a snapshot without the key does not delete it.
    fixture.write(".config/exo/key", "a new key\n");
    fixture.remove("a.txt");
    shadow
        .restore(&new.commit, None, RestoreOptions::default())
        .unwrap();
    assert_eq!(fixture.read(".config/exo/key"), b"a new key\n");
    // A workspace inside an excluded directory is refused.
    let inside = Shadow::open(&fixture.exo, &fixture.path(".config/exo"), options);
    assert!(inside.is_err());
}

#[test]
fn undoing_a_materialisation_removes_only_what_it_made() {
    let fixture = Fixture::new();
    fixture.write("src/a.rs", "a\n");
    fixture.write("src/deep/b.rs", "b\n");
    fixture.write("top.txt", "top\n");
    let mut shadow = fixture.shadow();
    let snapshot = shadow.snapshot(ScanHint::Full).unwrap();

    // Into a directory it creates, with a parent it creates: all gone.
    let parent = fixture.dir.path().join("new-parent");
    let made = shadow
        .materialize(&snapshot.commit, &parent.join("copy"))
        .unwrap();
    assert_eq!(made.dir(), parent.join("copy"));
    made.undo().unwrap();
    assert!(!parent.exists());

    // Into a directory that was there: it stays; what someone else put in
    // meanwhile stays, with the directories holding it.
    let existing = fixture.dir.path().join("existing");
    fs::create_dir(&existing).unwrap();
    let made = shadow.materialize(&snapshot.commit, &existing).unwrap();
    fs::write(existing.join("src/deep/mine.txt"), "mine\n").unwrap();
    // A file saved over one it wrote (by rename, as editors do).
    fs::write(fixture.dir.path().join("saved"), "saved by someone\n").unwrap();
    fs::rename(fixture.dir.path().join("saved"), existing.join("top.txt")).unwrap();
    made.undo().unwrap();
    assert_eq!(
        fs::read_to_string(existing.join("top.txt")).unwrap(),
        "saved by someone\n"
    );
    assert!(existing.is_dir());
    assert_eq!(
        fs::read_to_string(existing.join("src/deep/mine.txt")).unwrap(),
        "mine\n"
    );
    assert!(!existing.join("src/a.rs").exists());
    assert!(!existing.join("src/deep/b.rs").exists());
}
