//! Workspace snapshots through the CLI, on real directories: changes made
//! by shell commands captured and rewound, the user's edits never
//! clobbered, redo, forks into new directories, the user's own repository
//! untouched, gc, and a snapshot killed half-way.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::{message, Env};

/// Every file under `dir` (not following links): path → (mode, content or
/// link target). Empty directories are left out, as git does.
fn tree(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                files.insert(
                    relative,
                    (0o120000, target.to_string_lossy().as_bytes().to_vec()),
                );
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                files.insert(
                    relative,
                    (
                        meta.permissions().mode() & 0o777,
                        std::fs::read(&path).unwrap(),
                    ),
                );
            }
        }
    }
    files
}

fn sh(dir: &Path, script: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

struct Setup {
    env: Env,
    workspace: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let env = Env::new();
        let workspace = env.dir().join("ws");
        std::fs::create_dir(&workspace).unwrap();
        env.ok(&["agent", "create", "A", "--slug", "a"]);
        env.ok(&[
            "conversation",
            "create",
            "a",
            "C",
            "--slug",
            "c",
            "--workspace",
            workspace.to_str().unwrap(),
        ]);
        Setup { env, workspace }
    }

    /// Takes a snapshot; returns the event's id and the commit.
    fn take(&self) -> (String, String) {
        let taken = self.env.json(&["snapshot", "take", "a", "c"]);
        (
            taken["event"]["id"].as_str().unwrap().to_string(),
            taken["event"]["commit"].as_str().unwrap().to_string(),
        )
    }
}

#[test]
fn shell_made_changes_are_captured_and_rewound_then_redone() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(
        ws,
        "mkdir -p src && echo 'fn main() {}' > src/main.rs && printf 'v1' > notes.txt",
    );
    let (first, _) = setup.take();
    let at_first = tree(ws);
    assert_eq!(
        env.append("a", "c", &[message("now change things")]).code,
        0
    );
    sh(ws, "echo 'changed' >> src/main.rs && rm notes.txt && printf '#!/bin/sh\\n' > run.sh && chmod +x run.sh && ln -s src/main.rs link && mkdir -p deep/er && : > deep/er/empty");
    let (second, _) = setup.take();
    let at_second = tree(ws);
    assert_ne!(at_first, at_second);
    let event = env.json(&["conversation", "event", "a", "c", &second]);
    assert_eq!(event["kind"], "workspace_snapshot");
    assert_eq!(event["reason"], "manual");
    assert_eq!(
        (
            event["added"].as_u64(),
            event["modified"].as_u64(),
            event["deleted"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );

    // Rewind to the first snapshot: the files follow the conversation.
    let rewound = env.json(&["conversation", "rewind", "a", "c", "--to", &first]);
    assert_eq!(tree(ws), at_first);
    assert_eq!(rewound["event"]["snapshot"], rewound["files"]["snapshot"]);
    assert!(rewound["files"]["changes"].as_array().unwrap().len() >= 5);
    // Redo: rewind forward to the abandoned snapshot.
    env.ok(&["conversation", "rewind", "a", "c", "--to", &second]);
    assert_eq!(tree(ws), at_second);
    // And undo once more: unlimited depth.
    env.ok(&["conversation", "rewind", "a", "c", "--to", &first]);
    assert_eq!(tree(ws), at_first);
}

#[test]
fn the_users_edits_are_never_clobbered() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(ws, "echo original > file.txt");
    let (first, _) = setup.take();
    sh(ws, "echo agent > file.txt");
    setup.take();
    // The user edits after the latest snapshot.
    sh(
        ws,
        "echo 'my own work' > mine.txt && echo 'user edit' >> file.txt",
    );
    // Looking at the edit (a diff against the disk snapshots it without
    // recording it) does not make it fair game.
    env.ok(&["snapshot", "diff", "a", "c", "--diff"]);
    let head_before = env.json(&["conversation", "show", "a", "c"])["head"].clone();
    let err = env.fails(&["conversation", "rewind", "a", "c", "--to", &first]);
    assert!(
        err.contains("file.txt") && err.contains("mine.txt") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        env.json(&["conversation", "show", "a", "c"])["head"],
        head_before,
        "nothing moved"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("mine.txt")).unwrap(),
        "my own work\n"
    );

    // A dry run says what would change, and what is in the way.
    let dry = env.json(&["snapshot", "restore", "a", "c", &first, "--dry-run"]);
    assert_eq!(dry["written"], false);
    assert!(dry["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["path"] == "mine.txt"));
    let with_diff = env
        .ok(&[
            "snapshot",
            "restore",
            "a",
            "c",
            &first,
            "--dry-run",
            "--diff",
        ])
        .stdout;
    assert!(
        with_diff.contains("-user edit") || with_diff.contains("+original"),
        "{with_diff}"
    );
    assert!(ws.join("mine.txt").exists(), "a dry run writes nothing");

    // --force goes ahead, after a safety snapshot that keeps the user's work.
    let forced = env.json(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--force",
    ]);
    assert_eq!(
        std::fs::read_to_string(ws.join("file.txt")).unwrap(),
        "original\n"
    );
    assert!(!ws.join("mine.txt").exists());
    // The safety snapshot is the last event of the timeline the rewind
    // left: redo (rewinding back to it) brings the user's work back.
    let safety = forced["files"]["safety"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        forced["event"]["from_event"].as_str(),
        Some(safety.as_str())
    );
    env.ok(&["conversation", "rewind", "a", "c", "--to", &safety]);
    assert_eq!(
        std::fs::read_to_string(ws.join("mine.txt")).unwrap(),
        "my own work\n"
    );
    assert!(std::fs::read_to_string(ws.join("file.txt"))
        .unwrap()
        .contains("user edit"));

    let resume = env.json(&["session", "resume", "a", "c"]);
    assert_eq!(resume["drift"], serde_json::json!([]));
    sh(ws, "echo later > later.txt");
    let resume = env.json(&["session", "resume", "a", "c"]);
    assert_eq!(resume["drift"][0]["path"], "later.txt");
    assert_eq!(resume["drift"][0]["change"], "added");
}

#[test]
fn rewind_without_files_and_only_differing_paths_written() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(ws, "echo a > a && echo b > b && echo c > c");
    let (first, _) = setup.take();
    sh(ws, "echo changed > b");
    setup.take();
    // A rewind with files honours --expected-head (checked before any
    // file is touched) and still restores the files.
    let head = env.json(&["conversation", "show", "a", "c"])["head"]
        .as_str()
        .unwrap()
        .to_string();
    let err = env.fails(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--expected-head",
        &first,
    ]);
    assert!(err.contains("conflict"), "{err}");
    assert_eq!(
        std::fs::read_to_string(ws.join("b")).unwrap(),
        "changed\n",
        "a refused rewind touches no file"
    );
    env.ok(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--expected-head",
        &head,
    ]);
    assert_eq!(std::fs::read_to_string(ws.join("b")).unwrap(), "b\n");
    sh(ws, "echo changed > b");
    setup.take();
    let untouched = std::fs::metadata(ws.join("a")).unwrap();
    let before = tree(ws);
    env.ok(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--no-files",
    ]);
    assert_eq!(tree(ws), before, "--no-files leaves the files");
    let events = env.events("a", "c");
    assert!(events.last().unwrap()["snapshot"].is_null());

    let restored = env.json(&["snapshot", "restore", "a", "c", &first]);
    let paths: Vec<&str> = restored["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["b"], "only the differing path is written");
    let after = std::fs::metadata(ws.join("a")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (untouched.ino(), untouched.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
}

#[test]
fn fork_into_a_new_directory_goes_on_side_by_side() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(ws, "echo start > shared.txt");
    let (first, _) = setup.take();
    sh(ws, "echo later > shared.txt");
    setup.take();
    let other = env.dir().join("other-branch");
    let fork = env.json(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--at",
        &first,
        "--slug",
        "f",
        "--workspace",
        other.to_str().unwrap(),
    ]);
    assert_eq!(
        fork["workspace"],
        std::fs::canonicalize(&other).unwrap().display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(other.join("shared.txt")).unwrap(),
        "start\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("shared.txt")).unwrap(),
        "later\n",
        "the source is untouched"
    );
    let events = env.events("a", "f");
    assert_eq!(events.last().unwrap()["reason"], "fork");
    // Both go on independently.
    sh(&other, "echo fork-only > fork.txt");
    env.ok(&["snapshot", "take", "a", "f"]);
    assert!(!ws.join("fork.txt").exists());
    let err = env.fails(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--slug",
        "g",
        "--workspace",
        other.to_str().unwrap(),
    ]);
    assert!(err.contains("not empty") || err.contains("exists"), "{err}");
}

/// Hashes every file under a `.git` directory: path, mode and content.
fn git_dir_hash(git: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    tree(git)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir.parent().unwrap())
        .env("GIT_AUTHOR_NAME", "User")
        .env("GIT_AUTHOR_EMAIL", "user@example.com")
        .env("GIT_COMMITTER_NAME", "User")
        .env("GIT_COMMITTER_EMAIL", "user@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_users_repository_is_never_touched() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    git(ws, &["init", "-q", "-b", "main"]);
    sh(
        ws,
        "echo tracked > tracked.txt && echo 'ignored.log' > .gitignore && echo noise > ignored.log",
    );
    git(ws, &["add", "tracked.txt", ".gitignore"]);
    git(ws, &["commit", "-q", "-m", "first"]);
    sh(ws, "echo stashed >> tracked.txt");
    git(ws, &["stash", "-q"]);
    sh(ws, "echo staged > staged.txt");
    git(ws, &["add", "staged.txt"]);
    sh(
        ws,
        "echo untracked > untracked.txt && mkdir -p .git/hooks && true",
    );
    let git_before = git_dir_hash(&ws.join(".git"));
    let status_before = git(ws, &["status", "--porcelain"]);

    let (first, _) = setup.take();
    let captured = env.json(&["conversation", "event", "a", "c", &first]);
    assert_eq!(captured["skipped"], Value::Null);
    sh(
        ws,
        "echo agent > tracked.txt && rm untracked.txt && echo more > new.txt",
    );
    let (second, _) = setup.take();
    env.ok(&["conversation", "rewind", "a", "c", "--to", &first]);
    env.ok(&["conversation", "rewind", "a", "c", "--to", &second]);
    env.ok(&["conversation", "rewind", "a", "c", "--to", &first]);
    env.ok(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--slug",
        "f",
        "--workspace",
        env.dir().join("copy").to_str().unwrap(),
    ]);

    assert_eq!(
        git_dir_hash(&ws.join(".git")),
        git_before,
        "the user's .git is byte-for-byte the same"
    );
    assert_eq!(git(ws, &["status", "--porcelain"]), status_before);
    assert_eq!(
        std::fs::read_to_string(ws.join("untracked.txt")).unwrap(),
        "untracked\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("ignored.log")).unwrap(),
        "noise\n",
        "ignored files are left alone"
    );
    // The fork got the files but no repository.
    let copy = env.dir().join("copy");
    assert!(
        copy.join("tracked.txt").exists()
            && !copy.join(".git").exists()
            && !copy.join("ignored.log").exists()
    );
}

#[test]
fn gc_frees_what_no_conversation_reaches() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    env.ok(&[
        "conversation",
        "create",
        "a",
        "Scratch",
        "--slug",
        "scratch",
        "--workspace",
        ws.to_str().unwrap(),
    ]);
    let mut kept = Vec::new();
    for n in 0..5 {
        std::fs::write(ws.join("data.bin"), vec![n as u8; 200_000]).unwrap();
        kept.push(setup.take().1);
    }
    for n in 0..5 {
        std::fs::write(ws.join("data.bin"), vec![100 + n as u8; 200_000]).unwrap();
        env.ok(&["snapshot", "take", "a", "scratch"]);
    }
    env.ok(&["conversation", "delete", "a", "scratch"]);
    let report = env.json(&["gc"]);
    assert!(report["bytes_freed"].as_u64().unwrap() > 0, "{report}");
    assert!(report["objects_after"].as_u64().unwrap() < report["objects_before"].as_u64().unwrap());
    // Everything the live conversation reaches is still there.
    for commit in &kept {
        let restored = env.json(&["snapshot", "restore", "a", "c", commit, "--dry-run"]);
        assert_eq!(restored["snapshot"], commit.as_str());
    }
    env.ok(&["snapshot", "restore", "a", "c", &kept[0], "--force"]);
    assert_eq!(
        std::fs::read(ws.join("data.bin")).unwrap(),
        vec![0u8; 200_000]
    );
    // Once what the restore wrote is packed too, gc has nothing left to
    // free: the store does not grow while the content does not change.
    env.json(&["gc"]);
    for _ in 0..3 {
        env.ok(&["snapshot", "take", "a", "c"]);
        env.json(&["gc"]);
    }
    let steady = env.json(&["gc"]);
    assert_eq!(steady["bytes_freed"], 0, "{steady}");
    // A workspace that is gone does not stop gc for the others.
    let gone = env.dir().join("gone");
    std::fs::create_dir(&gone).unwrap();
    env.ok(&[
        "conversation",
        "create",
        "a",
        "Gone",
        "--slug",
        "gone",
        "--workspace",
        gone.to_str().unwrap(),
    ]);
    std::fs::write(gone.join("x"), "x").unwrap();
    env.ok(&["snapshot", "take", "a", "gone"]);
    std::fs::remove_dir_all(&gone).unwrap();
    env.json(&["gc"]);
}

#[test]
fn a_snapshot_killed_half_way_leaves_no_dangling_event() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    for dir in 0..20 {
        let dir = ws.join(format!("d{dir}"));
        std::fs::create_dir(&dir).unwrap();
        for file in 0..50 {
            std::fs::write(
                dir.join(format!("f{file}.txt")),
                format!("{dir:?} {file} {}", "x".repeat(2000)),
            )
            .unwrap();
        }
    }
    for round in 0..8u64 {
        std::fs::write(
            ws.join(format!("d{round}/f0.txt")),
            format!("round {round}"),
        )
        .unwrap();
        let mut child = env
            .command(&["snapshot", "take", "a", "c"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(round * 7 % 40));
        let _ = child.kill();
        let _ = child.wait();
    }
    // Every snapshot any event names is whole: materialising the last one
    // reads every object, and every recorded one can be diffed.
    let snapshots = env.json(&["snapshot", "list", "a", "c"]);
    for snapshot in snapshots["snapshots"].as_array().unwrap() {
        let commit = snapshot["commit"].as_str().unwrap();
        env.ok(&["snapshot", "diff", "a", "c", "--from", commit]);
    }
    let (last, _) = setup.take();
    let copy = env.dir().join("copy");
    env.ok(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--at",
        &last,
        "--slug",
        "f",
        "--workspace",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(tree(&copy), tree(ws));
}

fn paths_of(list: &Value) -> std::collections::BTreeSet<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item["path"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_rewind_never_destroys_edits_made_while_it_runs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    crate::race::make_a(ws);
    let (a, _) = setup.take();
    crate::race::make_b(ws);
    setup.take();

    let stop = Arc::new(AtomicBool::new(false));
    let racer = crate::race::start(ws.clone(), env.dir().join("racer"), Arc::clone(&stop));
    let rewind = env.run(&["--json", "conversation", "rewind", "a", "c", "--to", &a]);
    stop.store(true, Ordering::SeqCst);
    assert!(racer.join().unwrap(), "the restore never began deleting");

    let result = rewind.json();
    let files = &result["files"];
    let conflicts = paths_of(&files["conflicts"]);
    let changed = paths_of(&files["changes"]);
    crate::race::check(ws, &conflicts, &changed);
    // A partial restore says so: its own exit status, one line on stderr.
    if conflicts.is_empty() {
        assert_eq!(rewind.code, 0, "{}", rewind.stderr);
    } else {
        assert_eq!(rewind.code, 3, "{}", rewind.stderr);
        assert!(
            rewind.stderr.starts_with("exo: partial restore:")
                && rewind.stderr.trim_end().lines().count() == 1,
            "{}",
            rewind.stderr
        );
    }
    // The recorded event carries the conflicts, and counts only what was
    // written.
    let event = &files["event"];
    assert_eq!(event["reason"], "restore");
    assert_eq!(paths_of(&event["conflicts"]), conflicts);
    let counted = ["added", "modified", "deleted"]
        .iter()
        .map(|kind| event[kind].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(counted as usize, changed.len());
    let last = env.events("a", "c").last().unwrap().clone();
    assert_eq!(last["id"], event["id"]);
}

#[test]
fn paths_left_alone_are_reported_and_permissions_kept() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(
        ws,
        "printf private > id_key && chmod 600 id_key && printf 'run' > tool && chmod 700 tool \
         && printf data > data && printf 'captured log\\n' > notes.log",
    );
    let (a, _) = setup.take();
    // The key and the tool are deleted; a FIFO takes the place of `data`;
    // logs become ignored and the user keeps edits in the ignored log.
    sh(
        ws,
        "rm id_key tool data && mkfifo data && echo '*.log' > .gitignore \
         && printf 'my ignored edits\\n' > notes.log",
    );
    setup.take();

    let run = env.run(&["--json", "conversation", "rewind", "a", "c", "--to", &a]);
    assert_eq!(run.code, 3, "a partial restore: {}", run.stderr);
    assert!(
        run.stderr
            .starts_with("exo: partial restore: 2 paths left alone")
            && run.stderr.contains("data, notes.log")
            && run.stderr.trim_end().lines().count() == 1,
        "{}",
        run.stderr
    );
    let files = &run.json()["files"];
    let changed = paths_of(&files["changes"]);
    assert_eq!(
        changed,
        [".gitignore", "id_key", "tool"]
            .into_iter()
            .map(String::from)
            .collect(),
        "{files}"
    );
    assert_eq!(
        paths_of(&files["skipped"]),
        ["data", "notes.log"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert!(files["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("fifo"));
    // Left alone indeed.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(ws.join("data"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        std::fs::read_to_string(ws.join("notes.log")).unwrap(),
        "my ignored edits\n"
    );
    // Restored with the bits they had, never wider.
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ws.join("id_key")), 0o600);
    assert_eq!(mode(&ws.join("tool")), 0o700);
    // The recorded event says what was written and what was left alone.
    let event = &files["event"];
    assert_eq!(
        (
            event["added"].as_u64(),
            event["modified"].as_u64(),
            event["deleted"].as_u64()
        ),
        (Some(2), Some(0), Some(1))
    );
    assert_eq!(
        paths_of(&event["skipped"]),
        ["data", "notes.log"]
            .into_iter()
            .map(String::from)
            .collect()
    );

    // The text form: one line per path left alone.
    sh(ws, "rm data && printf again > data");
    setup.take();
    sh(ws, "rm data && mkfifo data");
    setup.take();
    let text = env.run(&["snapshot", "restore", "a", "c", &a]);
    assert_eq!(text.code, 3, "{}", text.stderr);
    assert!(
        text.stdout
            .lines()
            .any(|line| line.trim_start().starts_with("left alone") && line.contains("data:")),
        "{}",
        text.stdout
    );
    assert!(
        !text.stdout.contains("added        data"),
        "{}",
        text.stdout
    );

    // A fork materialises the key with its bits too.
    let copy = env.dir().join("copy");
    env.ok(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--at",
        &a,
        "--slug",
        "f",
        "--workspace",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(mode(&copy.join("id_key")), 0o600);
    assert_eq!(mode(&copy.join("tool")), 0o700);
}

/// Every object in the root's shadow stores, uncompressed.
fn shadow_objects(root: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(root.join("snapshots")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.extension().is_none_or(|ext| ext != "git") {
            continue;
        }
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(&dir)
            .args(["cat-file", "--batch-all-objects", "--batch"])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success());
        all.extend(output.stdout);
    }
    all
}

#[test]
fn the_key_file_is_never_snapshotted() {
    let env = Env::new();
    // The workspace is the home directory: it holds the key file's
    // directory (and the exo root).
    let home = env.dir().to_path_buf();
    env.ok(&["agent", "create", "A", "--slug", "a"]);
    env.ok(&[
        "conversation",
        "create",
        "a",
        "C",
        "--slug",
        "c",
        "--workspace",
        home.to_str().unwrap(),
    ]);
    std::fs::write(home.join("notes.txt"), "notes\n").unwrap();
    let first = env.json(&["snapshot", "take", "a", "c"]);
    let first = first["event"]["id"].as_str().unwrap().to_string();
    // The first secret creates the key file.
    env.ok(&["secret", "set", "token", "--value", "not-the-key"]);
    let key_file = env.config_dir().join("exo/key");
    let key = std::fs::read(&key_file).unwrap();
    let key_hex = String::from_utf8(key.clone()).unwrap();
    let key_hex = key_hex.trim();
    assert_eq!(key_hex.len(), 64);

    let diff = env.ok(&["snapshot", "diff", "a", "c", "--diff"]).stdout;
    assert!(!diff.contains(key_hex), "the key is in the diff:\n{diff}");
    assert!(!diff.contains("config/exo"), "{diff}");
    let listed = env.json(&["snapshot", "diff", "a", "c"]);
    assert_eq!(listed["changes"], serde_json::json!([]), "{listed}");
    env.ok(&["snapshot", "take", "a", "c"]);
    let objects = shadow_objects(&env.root());
    assert!(!objects.is_empty());
    assert!(
        !crate::util::contains(&objects, key_hex.as_bytes()),
        "the key is in the shadow store"
    );

    // Rewinding to before the key existed leaves it as it is.
    env.ok(&["conversation", "rewind", "a", "c", "--to", &first]);
    assert_eq!(std::fs::read(&key_file).unwrap(), key);
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    env.ok(&["secret", "show", "token"]);
}

#[test]
fn a_refused_fork_leaves_nothing_behind() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(
        ws,
        "mkdir -p src && echo hi > src/a.txt && echo top > b.txt",
    );
    setup.take();
    env.ok(&["conversation", "create", "a", "Taken", "--slug", "taken"]);
    let fork = |dir: &Path| {
        env.fails(&[
            "conversation",
            "fork",
            "a",
            "c",
            "--slug",
            "taken",
            "--workspace",
            dir.to_str().unwrap(),
        ])
    };

    // A directory exo made is removed again, with the parents it made.
    let fresh = env.dir().join("new-parent/fresh");
    let err = fork(&fresh);
    assert!(err.contains("taken"), "{err}");
    assert!(!env.dir().join("new-parent").exists());

    // A directory that was there stays, empty as it was.
    let existing = env.dir().join("existing");
    std::fs::create_dir(&existing).unwrap();
    fork(&existing);
    assert!(existing.is_dir());
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0);

    // No snapshot at the fork point: nothing is made.
    env.ok(&[
        "conversation",
        "create",
        "a",
        "Bare",
        "--slug",
        "bare",
        "--workspace",
        ws.to_str().unwrap(),
    ]);
    let none = env.dir().join("none");
    let err = env.fails(&[
        "conversation",
        "fork",
        "a",
        "bare",
        "--workspace",
        none.to_str().unwrap(),
    ]);
    assert!(err.contains("no workspace snapshot"), "{err}");
    assert!(!none.exists());

    // And a fork that is not refused still materialises.
    let good = env.dir().join("good");
    env.ok(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--slug",
        "good",
        "--workspace",
        good.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(good.join("src/a.txt")).unwrap(),
        "hi\n"
    );
}

#[test]
fn a_directory_moved_away_during_a_restore_is_never_written_through() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    let files = 4000;
    let dir = ws.join("m");
    std::fs::create_dir(&dir).unwrap();
    let write = |tag: &str| {
        for i in 0..files {
            std::fs::write(dir.join(format!("{i:05}")), format!("{tag}-{i}")).unwrap();
        }
    };
    write("a");
    let (a, _) = setup.take();
    write("b");
    setup.take();

    // As soon as the restore has rewritten the directory's first file, the
    // user moves the directory away and makes a new, empty one.
    let mut rewind = env
        .command(&["--json", "conversation", "rewind", "a", "c", "--to", &a])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = dir.join("00000");
    let moved = ws.join("m.bak");
    let mut in_time = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if std::fs::read_to_string(&first).is_ok_and(|text| text == "a-0") {
            std::fs::rename(&dir, &moved).unwrap();
            std::fs::create_dir(&dir).unwrap();
            in_time = rewind.try_wait().unwrap().is_none();
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let output = rewind.wait_with_output().unwrap();
    assert!(moved.exists(), "the restore never rewrote the first file");
    if !in_time {
        eprintln!("inconclusive: the restore had ended before the directory was moved");
        return;
    }
    // The moved directory is the user's now: what the restore had not yet
    // written there when it moved is left as it was (B), never rewritten.
    let untouched = (0..files)
        .filter(|i| {
            std::fs::read_to_string(moved.join(format!("{i:05}"))).unwrap() == format!("b-{i}")
        })
        .count();
    assert!(
        untouched > 0,
        "every file of the moved directory was written through after the move: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // And the restore does not claim the workspace matches the snapshot.
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_rewind_dry_run_says_what_it_would_write_and_changes_nothing() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(ws, "printf 'one' > a.txt && printf 'keep' > b.txt");
    let (first, _) = setup.take();
    sh(ws, "printf 'two' > a.txt && printf 'new' > c.txt");
    let (second, _) = setup.take();
    let before = (tree(ws), env.events("a", "c"));

    // Back to the first snapshot: a.txt would be written, c.txt removed.
    let preview = env.json(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--dry-run",
    ]);
    assert_eq!(preview["event"], Value::Null);
    assert_eq!(preview["conversation"]["head"], second.as_str());
    assert_eq!(preview["files"]["written"], false);
    assert_eq!(
        paths_of(&preview["files"]["changes"]),
        ["a.txt", "c.txt"].map(String::from).into()
    );
    assert_eq!(preview["files"].get("conflicts"), None);
    assert_eq!((tree(ws), env.events("a", "c")), before);

    // An edit exo has not snapshotted: the preview names it, as the real
    // rewind's refusal does, and still nothing changes.
    sh(ws, "printf 'mine' > b.txt");
    let before = (tree(ws), env.events("a", "c"));
    let preview = env.json(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--dry-run",
    ]);
    assert_eq!(
        paths_of(&preview["files"]["conflicts"]),
        ["b.txt"].map(String::from).into()
    );
    let text = env.ok(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--dry-run",
    ]);
    assert!(text.stdout.contains("would rewind c to"), "{}", text.stdout);
    assert!(
        text.stdout.contains("refused without --force") && text.stdout.contains("b.txt"),
        "{}",
        text.stdout
    );
    assert_eq!((tree(ws), env.events("a", "c")), before);
    let refused = env.fails(&["conversation", "rewind", "a", "c", "--to", &first]);
    assert!(refused.contains("b.txt"), "{refused}");

    // The same checks as a real rewind: an unknown event, a wrong head.
    let unknown = "01a1fd29-0000-7000-8000-000000000000";
    let missing = env.fails(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        unknown,
        "--dry-run",
    ]);
    assert!(missing.contains("not found"), "{missing}");
    let moved = env.fails(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        &first,
        "--expected-head",
        &first,
        "--dry-run",
    ]);
    assert!(moved.contains("head"), "{moved}");
    assert_eq!((tree(ws), env.events("a", "c")), before);
}

#[test]
fn snapshot_show_prints_a_file_as_a_snapshot_holds_it() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(
        ws,
        "mkdir -p src && printf 'fn main() {}\\n' > src/main.rs && printf '\\000\\377bin' > blob && printf '#!/bin/sh\\n' > run.sh && chmod +x run.sh && ln -s src/main.rs link",
    );
    let (event, commit) = setup.take();
    sh(ws, "printf 'changed\\n' > src/main.rs && rm blob");

    // By event id and by commit prefix: the bytes as they were, raw.
    let shown = env
        .command(&["snapshot", "show", "a", "c", &event, "src/main.rs"])
        .output()
        .unwrap();
    assert_eq!(shown.status.code(), Some(0));
    assert_eq!(shown.stdout, b"fn main() {}\n");
    let shown = env
        .command(&["snapshot", "show", "a", "c", &commit[..10], "blob"])
        .output()
        .unwrap();
    assert_eq!(shown.stdout, b"\x00\xffbin");
    let json = env.json(&["snapshot", "show", "a", "c", &event, "run.sh"]);
    assert_eq!(json["snapshot"], commit.as_str());
    assert_eq!(json["executable"], true);
    assert_eq!(json["size"], 10);
    assert_eq!(json["content_base64"], "IyEvYmluL3NoCg==");

    // Absent at that snapshot: null in JSON, a one-line error as text.
    let absent = env.json(&["snapshot", "show", "a", "c", &event, "nope.txt"]);
    assert_eq!(absent["content_base64"], Value::Null);
    let error = env.fails(&["snapshot", "show", "a", "c", &event, "nope.txt"]);
    assert!(error.contains("has no file nope.txt"), "{error}");

    // Paths that are not plain workspace paths, directories and links
    // are refused; so is an unknown snapshot.
    for (path, says) in [
        ("../escape", "not a workspace-relative path"),
        ("/etc/passwd", "not a workspace-relative path"),
        ("src/./main.rs", "not a workspace-relative path"),
        ("", "not a workspace-relative path"),
        ("src", "is a directory"),
        ("link", "symbolic link"),
    ] {
        let error = env.fails(&["snapshot", "show", "a", "c", &event, path]);
        assert!(error.contains(says), "{path:?}: {error}");
    }
    let error = env.fails(&["snapshot", "show", "a", "c", "deadbeef00", "src/main.rs"]);
    assert!(
        error.contains("not found") || error.contains("no snapshot"),
        "{error}"
    );

    // Through a running daemon the answers are the same.
    let mut daemon = env
        .command(&["daemon"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::util::wait_until("the daemon answers", || {
        env.run(&["daemon", "status"]).code == 0
    });
    let shown = env
        .command(&["snapshot", "show", "a", "c", &event, "src/main.rs"])
        .output()
        .unwrap();
    assert_eq!(shown.stdout, b"fn main() {}\n");
    let error = env.fails(&["snapshot", "show", "a", "c", &event, "../escape"]);
    assert!(error.contains("not a workspace-relative path"), "{error}");
    env.ok(&["daemon", "stop"]);
    daemon.wait().unwrap();
}

/// A snapshot the conversation took stays readable by its commit after a
/// rewind leaves it on a branch (an editor's diff opened before the
/// rewind, a redo's preview); another conversation's is not.
#[test]
fn a_snapshot_left_behind_by_a_rewind_is_still_read_by_its_commit() {
    let setup = Setup::new();
    let (env, ws) = (&setup.env, &setup.workspace);
    sh(ws, "printf 'one' > a.txt");
    let (first, _) = setup.take();
    sh(ws, "printf 'two' > a.txt");
    let (_, second) = setup.take();
    env.ok(&["conversation", "rewind", "a", "c", "--to", &first]);
    let shown = env
        .command(&["snapshot", "show", "a", "c", &second[..12], "a.txt"])
        .output()
        .unwrap();
    assert_eq!(shown.stdout, b"two", "{:?}", shown);
    let diff = env.json(&[
        "snapshot", "diff", "a", "c", "--from", &second, "--to", &first,
    ]);
    assert_eq!(
        paths_of(&diff["changes"]),
        ["a.txt"].map(String::from).into()
    );
    // Another conversation of the same workspace did not take it.
    env.ok(&[
        "conversation",
        "create",
        "a",
        "Other",
        "--slug",
        "other",
        "--workspace",
        ws.to_str().unwrap(),
    ]);
    let error = env.fails(&["snapshot", "show", "a", "other", &second, "a.txt"]);
    assert!(error.contains("not found"), "{error}");
}
