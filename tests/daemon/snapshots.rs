//! Workspace snapshots over JSON-RPC: the turn API snapshots at turn start
//! and end for every executor, the daemon's watcher makes later snapshots
//! incremental, and restore, rewind and resume work on real directories.

use serde_json::{json, Value};

use crate::support::Root;

fn kinds(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn turns_snapshot_the_workspace_at_start_and_end() {
    let root = Root::new();
    let workspace = root.dir.path().join("ws");
    std::fs::create_dir(&workspace).unwrap();
    std::fs::write(workspace.join("before.txt"), "before the turn").unwrap();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.ok("agent/create", json!({"name": "A", "slug": "a"}));
    let conv = conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "C", "slug": "c", "workspace": workspace}),
    );
    assert_eq!(
        conv["workspace"],
        std::fs::canonicalize(&workspace)
            .unwrap()
            .display()
            .to_string()
    );

    let begun = conn.ok(
        "turn/begin",
        json!({"agent": "a", "conversation": "c", "input": "edit the files"}),
    );
    assert_eq!(
        kinds(&begun["events"]),
        [
            "session_started",
            "turn_started",
            "workspace_snapshot",
            "message"
        ]
    );
    let start = &begun["events"][2];
    assert_eq!(start["reason"], "turn_start");
    assert_eq!(start["turn"], begun["turn"]);
    assert_eq!(start["added"], 1);

    // The "agent" changes files (as a shell command would).
    std::fs::write(workspace.join("made.txt"), "made during the turn").unwrap();
    std::fs::remove_file(workspace.join("before.txt")).unwrap();
    conn.ok(
        "turn/finish",
        json!({"turn": begun["turn"], "status": "completed"}),
    );
    let tail = conn.ok(
        "events/list",
        json!({"agent": "a", "conversation": "c", "desc": true, "limit": 2}),
    );
    assert_eq!(kinds(&tail["events"]), ["turn_ended", "workspace_snapshot"]);
    let end = &tail["events"][1];
    assert_eq!(end["reason"], "turn_end");
    assert_eq!(
        (end["added"].as_u64(), end["deleted"].as_u64()),
        (Some(1), Some(1))
    );

    // Rewinding to the turn's start puts the files back as they were.
    let rewound = conn.ok(
        "conversation/rewind",
        json!({"agent": "a", "conversation": "c", "to": begun["events"][3]["id"]}),
    );
    assert_eq!(rewound["files"]["snapshot"], start["commit"]);
    assert!(workspace.join("before.txt").exists() && !workspace.join("made.txt").exists());
    // A second finish records nothing more.
    let before = conn.ok("events/list", json!({"agent": "a", "conversation": "c"}))["events"]
        .as_array()
        .unwrap()
        .len();
    conn.ok(
        "turn/finish",
        json!({"turn": begun["turn"], "status": "failed"}),
    );
    let after = conn.ok("events/list", json!({"agent": "a", "conversation": "c"}))["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
}

#[test]
fn the_daemon_watcher_makes_snapshots_incremental_and_exact() {
    let root = Root::new();
    let workspace = root.dir.path().join("ws");
    std::fs::create_dir_all(workspace.join("src")).unwrap();
    for n in 0..200 {
        std::fs::write(
            workspace.join(format!("src/f{n}.rs")),
            format!("// file {n}\n"),
        )
        .unwrap();
    }
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.ok("agent/create", json!({"name": "A", "slug": "a"}));
    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "C", "slug": "c", "workspace": workspace}),
    );
    let first = conn.ok("snapshot/take", json!({"agent": "a", "conversation": "c"}));
    assert_eq!(first["full_scan"], true, "no watcher history yet");
    assert_eq!(first["event"]["added"], 200);
    std::fs::write(workspace.join("src/f7.rs"), "// changed\n").unwrap();
    std::fs::write(workspace.join("new.rs"), "// new\n").unwrap();
    let second = conn.ok("snapshot/take", json!({"agent": "a", "conversation": "c"}));
    assert_eq!(second["full_scan"], false, "the watcher said what changed");
    assert_eq!(
        (
            second["event"]["added"].as_u64(),
            second["event"]["modified"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // The incremental snapshot is exactly what a full scan sees: drift
    // (a full comparison with the disk) is empty.
    let resume = conn.ok("session/resume", json!({"agent": "a", "conversation": "c"}));
    assert_eq!(resume["drift"], json!([]));
    assert_eq!(resume["snapshot"]["commit"], second["event"]["commit"]);

    // Restore over RPC, with a dry run first.
    let first_commit = first["event"]["commit"].as_str().unwrap();
    let dry = conn.ok(
        "snapshot/restore",
        json!({"agent": "a", "conversation": "c", "snapshot": first_commit, "dry_run": true}),
    );
    assert_eq!(dry["written"], false);
    assert_eq!(dry["changes"].as_array().unwrap().len(), 2);
    assert!(workspace.join("new.rs").exists());
    let done = conn.ok(
        "snapshot/restore",
        json!({"agent": "a", "conversation": "c", "snapshot": first["event"]["id"]}),
    );
    assert_eq!(done["written"], true);
    assert_eq!(done["event"]["reason"], "restore");
    assert!(!workspace.join("new.rs").exists());
    assert_eq!(
        std::fs::read_to_string(workspace.join("src/f7.rs")).unwrap(),
        "// file 7\n"
    );

    // A conflict is an error with the paths.
    std::fs::write(workspace.join("src/f8.rs"), "// user edit\n").unwrap();
    let error = conn.err(
        "snapshot/restore",
        json!({"agent": "a", "conversation": "c", "snapshot": second["event"]["commit"]}),
    );
    assert_eq!(error["data"]["code"], "conflict");
    assert!(
        error["message"].as_str().unwrap().contains("src/f8.rs"),
        "{error}"
    );

    let diff = conn.ok(
        "snapshot/diff",
        json!({"agent": "a", "conversation": "c", "unified": true}),
    );
    assert!(
        diff["diff"].as_str().unwrap().contains("+// user edit"),
        "{diff}"
    );
    assert!(diff["to"].is_null());

    let error = conn.err(
        "snapshot/take",
        json!({"agent": "a", "conversation": "nope"}),
    );
    assert_eq!(error["code"], -32001);
    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "No Workspace", "slug": "nw"}),
    );
    let error = conn.err("snapshot/take", json!({"agent": "a", "conversation": "nw"}));
    assert_eq!(error["code"], -32602);
    assert!(error["message"].as_str().unwrap().contains("no workspace"));
}

#[test]
fn gc_racing_snapshots_never_drops_a_recorded_one() {
    let root = Root::new();
    let workspace = root.dir.path().join("ws");
    std::fs::create_dir(&workspace).unwrap();
    let daemon = root.daemon();
    let mut setup = daemon.connect();
    setup.ok("agent/create", json!({"name": "A", "slug": "a"}));
    setup.ok(
        "conversation/create",
        json!({"agent": "a", "name": "C", "slug": "c", "workspace": workspace}),
    );
    let snapshots = {
        let mut conn = daemon.connect();
        let workspace = workspace.clone();
        std::thread::spawn(move || {
            for n in 0..30 {
                std::fs::write(workspace.join("file.txt"), format!("content {n}")).unwrap();
                conn.ok("snapshot/take", json!({"agent": "a", "conversation": "c"}));
            }
        })
    };
    let collector = {
        let mut conn = daemon.connect();
        std::thread::spawn(move || {
            for _ in 0..30 {
                conn.ok("gc", json!({}));
            }
        })
    };
    snapshots.join().unwrap();
    collector.join().unwrap();
    // Every snapshot an event names is still whole, and gc still succeeds.
    let listed = setup.ok(
        "snapshot/list",
        json!({"agent": "a", "conversation": "c", "limit": 100}),
    );
    for snapshot in listed["snapshots"].as_array().unwrap() {
        setup.ok(
            "snapshot/diff",
            json!({"agent": "a", "conversation": "c", "from": snapshot["commit"]}),
        );
    }
    setup.ok("gc", json!({}));
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
fn a_restore_never_destroys_edits_made_while_it_runs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let root = Root::new();
    let workspace = root.dir.path().join("ws");
    std::fs::create_dir(&workspace).unwrap();
    let daemon = root.daemon();
    let mut conn = daemon.connect();
    conn.ok("agent/create", json!({"name": "A", "slug": "a"}));
    conn.ok(
        "conversation/create",
        json!({"agent": "a", "name": "C", "slug": "c", "workspace": workspace}),
    );
    crate::race::make_a(&workspace);
    let a = conn.ok("snapshot/take", json!({"agent": "a", "conversation": "c"}));
    crate::race::make_b(&workspace);
    conn.ok("snapshot/take", json!({"agent": "a", "conversation": "c"}));

    let stop = Arc::new(AtomicBool::new(false));
    let racer = crate::race::start(
        workspace.clone(),
        root.dir.path().join("racer"),
        Arc::clone(&stop),
    );
    let result = conn.ok(
        "snapshot/restore",
        json!({"agent": "a", "conversation": "c", "snapshot": a["event"]["commit"]}),
    );
    stop.store(true, Ordering::SeqCst);
    assert!(racer.join().unwrap(), "the restore never began deleting");

    let conflicts = paths_of(&result["conflicts"]);
    let changed = paths_of(&result["changes"]);
    crate::race::check(&workspace, &conflicts, &changed);
    assert_eq!(result["written"], true);
    // The recorded event carries the conflicts and counts what was written.
    let event = &result["event"];
    assert_eq!(event["reason"], "restore");
    assert_eq!(paths_of(&event["conflicts"]), conflicts);
    let counted: u64 = ["added", "modified", "deleted"]
        .iter()
        .map(|kind| event[kind].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, changed.len());
    // A restore over what the racer left is refused (its work is newer
    // than the snapshot the files are said to match), naming it.
    if !conflicts.is_empty() {
        let error = conn.err(
            "snapshot/restore",
            json!({"agent": "a", "conversation": "c", "snapshot": a["event"]["commit"]}),
        );
        assert_eq!(error["data"]["code"], "conflict");
        let message = error["message"].as_str().unwrap();
        assert!(
            crate::race::raced()
                .iter()
                .any(|path| message.contains(path.as_str())),
            "{message}"
        );
    }
}
