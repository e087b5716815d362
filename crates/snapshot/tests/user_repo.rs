//! The user's own git repository is never touched: not a byte or mode bit
//! under `.git`, not the untracked files, not what `git status` says.

mod common;

use std::fs;

use common::{fingerprint, git, git_init, Fixture};
use exo_snapshot::{RestoreOptions, ScanHint};

#[test]
fn user_git_directory_is_never_touched() {
    let fixture = Fixture::new();
    let home = fixture.dir.path().join("home");
    git_init(&fixture.ws, &home);
    fixture.write("tracked.txt", "v1\n");
    fixture.write("src/lib.rs", "pub fn f() {}\n");
    git(&fixture.ws, &home, &["add", "tracked.txt", "src/lib.rs"]);
    git(&fixture.ws, &home, &["commit", "-q", "-m", "first"]);
    fixture.write("tracked.txt", "v2 stashed\n");
    git(&fixture.ws, &home, &["stash", "-q"]);
    fixture.write("untracked.txt", "untracked\n");
    fixture.write("tracked.txt", "v3 dirty\n");
    // Make sure git's own index is fresh before fingerprinting, so no git
    // command below has a reason to rewrite it.
    let status_before = git(&fixture.ws, &home, &["status", "--porcelain"]);
    let stash_before = git(&fixture.ws, &home, &["stash", "list"]);
    let head_before = git(&fixture.ws, &home, &["rev-parse", "HEAD"]);
    let git_before = fingerprint(&fixture.ws.join(".git"));

    let mut shadow = fixture.shadow();
    let first = shadow.snapshot(ScanHint::Full).unwrap();
    fixture.write("tracked.txt", "v4 agent edit\n");
    fixture.write("src/new.rs", "// new\n");
    fixture.remove("src/lib.rs");
    let second = shadow.snapshot(ScanHint::Full).unwrap();
    shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    shadow
        .restore(
            &second.commit,
            Some(&first.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    shadow
        .restore(
            &first.commit,
            Some(&second.commit),
            RestoreOptions::default(),
        )
        .unwrap();
    let out = fixture.dir.path().join("fork");
    shadow.materialize(&second.commit, &out).unwrap();
    assert!(!out.join(".git").exists());
    shadow.unified_diff(&first.commit, &second.commit).unwrap();
    shadow.gc(std::slice::from_ref(&first.commit)).unwrap();
    shadow.drift(&first.commit).unwrap();

    assert_eq!(fingerprint(&fixture.ws.join(".git")), git_before);
    assert_eq!(fixture.read("untracked.txt"), b"untracked\n");
    assert_eq!(fixture.read("tracked.txt"), b"v3 dirty\n");
    assert_eq!(
        git(&fixture.ws, &home, &["status", "--porcelain"]),
        status_before
    );
    assert_eq!(git(&fixture.ws, &home, &["stash", "list"]), stash_before);
    assert_eq!(git(&fixture.ws, &home, &["rev-parse", "HEAD"]), head_before);
    // git status may refresh its index's stat data; nothing else changed.
    let mut after = fingerprint(&fixture.ws.join(".git"));
    let mut before = git_before;
    after.remove(std::path::Path::new("index"));
    before.remove(std::path::Path::new("index"));
    assert_eq!(after, before);
    // The shadow is a separate bare repository.
    assert!(shadow.dir().join("HEAD").is_file());
    assert!(!shadow.dir().starts_with(&fixture.ws));
    assert!(fs::read_dir(shadow.dir().join("objects")).is_ok());
}
