//! Bad input gets a one-line error, a non-zero exit, and an unchanged store.

use crate::util::Env;

#[test]
fn unknown_ids_and_slugs() {
    let env = Env::new();
    env.agent_and_conversation();
    let err = env.fails(&["agent", "show", "nope"]);
    assert_eq!(err.trim_end(), "exo: agent \"nope\" not found");
    let err = env.fails(&["conversation", "show", "a", "nope"]);
    assert_eq!(err.trim_end(), "exo: conversation \"a/nope\" not found");
    let err = env.fails(&["conversation", "events", "nope", "c"]);
    assert!(err.contains("agent \"nope\" not found"));
    // Addressing by id works wherever a slug does.
    let agent = env.json(&["agent", "show", "a"]);
    let conv = env.json(&["conversation", "show", "a", "c"]);
    let by_id = env.json(&[
        "conversation",
        "show",
        agent["id"].as_str().unwrap(),
        conv["id"].as_str().unwrap(),
    ]);
    assert_eq!(by_id["slug"], "c");
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    assert_eq!(env.run(&["frobnicate"]).code, 2);
    assert_eq!(env.run(&["conversation", "events", "a"]).code, 2);
    assert_eq!(
        env.run(&["conversation", "events", "a", "c", "--limit", "0"])
            .code,
        2
    );
    assert_eq!(
        env.run(&[
            "conversation",
            "events",
            "a",
            "c",
            "--after",
            "x",
            "--before",
            "y"
        ])
        .code,
        2
    );
}

#[test]
fn reading_without_a_store_creates_nothing() {
    let env = Env::new();
    let err = env.fails(&["agent", "show", "a"]);
    assert!(err.contains("no exo store found in"), "{err}");
    assert!(!env.root().exists());
    // A root given that holds no store: the same refusal, naming it.
    let err = env.fails(&["--root", ".exo", "conversation", "list", "a"]);
    assert!(err.contains("no exo store at .exo"), "{err}");
    assert!(!env.root().exists());
    // A list is empty there (spec/cli.md), and creates nothing either.
    assert_eq!(
        env.json(&["--root", ".exo", "agent", "list"]),
        serde_json::json!({ "agents": [] })
    );
    assert!(!env.root().exists());
}

#[test]
fn duplicate_and_invalid_names() {
    let env = Env::new();
    env.agent_and_conversation();
    let err = env.fails(&["agent", "create", "A", "--slug", "a"]);
    assert!(err.contains("agent \"a\" already exists"), "{err}");
    let err = env.fails(&["agent", "create", "日本"]);
    assert!(err.contains("--slug"), "{err}");
    let err = env.fails(&["agent", "create", "X", "--slug", "Bad Slug"]);
    assert!(err.contains("invalid slug"), "{err}");
    let err = env.fails(&["conversation", "create", "a", "C", "--slug", "c"]);
    assert!(err.contains("already exists"), "{err}");
    let err = env.fails(&["secret", "set", "bad name", "--value", "v"]);
    assert!(err.contains("invalid secret name"), "{err}");
    assert!(
        !env.config_dir().join("exo/key").exists(),
        "a refused secret creates no key file"
    );
    // Deleting frees the slug; the same name can be used again.
    env.ok(&["conversation", "delete", "a", "c"]);
    env.ok(&["conversation", "create", "a", "C", "--slug", "c"]);
    env.ok(&["agent", "delete", "a"]);
    let err = env.fails(&["conversation", "show", "a", "c"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn newer_schema_is_refused_untouched() {
    let env = Env::new();
    env.agent_and_conversation();
    let db = env.root().join("exo.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let err = env.fails(&["agent", "list"]);
    assert!(
        err.contains("schema version 99") && err.contains("upgrade exo"),
        "{err}"
    );
    let err = env.fails(&["agent", "create", "New"]);
    assert!(err.contains("schema version 99"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let env = Env::new();
    std::fs::create_dir_all(env.root()).unwrap();
    let db = env.root().join("exo.db");
    std::fs::write(
        &db,
        b"this is not a database, just some text that is long enough to look like a header......",
    )
    .unwrap();
    let err = env.fails(&["agent", "list"]);
    assert!(err.contains("is not an exo store"), "{err}");
    // Another application's SQLite database is refused too.
    std::fs::remove_file(&db).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = env.fails(&["agent", "create", "X"]);
    assert!(err.contains("is not an exo store"), "{err}");
}

/// Overwrites page `page` (from 1) of the store's database with `fill`.
fn damage_page(db: &std::path::Path, page: u64, fill: u8) {
    use std::io::{Seek, SeekFrom, Write};
    let page_size: u64 = rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.seek(SeekFrom::Start((page - 1) * page_size)).unwrap();
    file.write_all(&vec![fill; page_size as usize]).unwrap();
}

/// An internal error met by a command running the service in-process is
/// one line on stderr, not a log line and then the same error.
#[test]
fn an_internal_error_is_one_line() {
    let env = Env::new();
    env.agent_and_conversation();
    let db = env.root().join("exo.db");
    // The agents table's first page, garbled: the store opens, listing
    // agents fails inside SQLite.
    let page: u64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'agents'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    damage_page(&db, page, 0xff);
    let run = env.run(&["agent", "list"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stderr,
        "exo: corrupt store: .exo/exo.db: the database file is malformed\n"
    );
}

/// A damaged database is refused in one line that names the file and says
/// it once.
#[test]
fn a_malformed_store_is_refused_in_one_clean_line() {
    let env = Env::new();
    env.agent_and_conversation();
    let db = env.root().join("exo.db");
    let page_size: u64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    let pages = std::fs::metadata(&db).unwrap().len() / page_size;
    for page in 2..=pages {
        damage_page(&db, page, 0x5a);
    }
    let before = std::fs::read(&db).unwrap();
    for args in [&["agent", "list"][..], &["agent", "create", "B"]] {
        let err = env.fails(args);
        assert_eq!(
            err.trim_end(),
            "exo: corrupt store: .exo/exo.db: the database file is malformed",
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

/// Another application's SQLite file is "not an exo store" whatever its
/// `user_version`; only an exo store with a newer schema asks for an
/// upgrade (`newer_schema_is_refused_untouched`).
#[test]
fn a_foreign_database_with_a_high_version_is_not_an_exo_store() {
    let env = Env::new();
    std::fs::create_dir_all(env.root()).unwrap();
    let db = env.root().join("exo.db");
    for setup in [
        "CREATE TABLE t (x); PRAGMA user_version = 99",
        "PRAGMA application_id = 1234; PRAGMA user_version = 99",
        "PRAGMA application_id = 1234; PRAGMA user_version = 1",
    ] {
        let _ = std::fs::remove_file(&db);
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(setup)
            .unwrap();
        let before = std::fs::read(&db).unwrap();
        for args in [&["agent", "list"][..], &["agent", "create", "X"]] {
            let err = env.fails(args);
            assert_eq!(
                err.trim_end(),
                "exo: .exo/exo.db is not an exo store",
                "{setup}: {args:?}"
            );
        }
        assert_eq!(std::fs::read(&db).unwrap(), before, "{setup}");
    }
}

/// An empty `exo.db` is most likely a store truncated by accident: neither
/// a read nor a write initialises it; it stays empty.
#[test]
fn an_empty_store_file_is_refused_and_left_empty() {
    let env = Env::new();
    std::fs::create_dir_all(env.root()).unwrap();
    let db = env.root().join("exo.db");
    std::fs::write(&db, b"").unwrap();
    for args in [&["agent", "list"][..], &["agent", "create", "X"]] {
        let err = env.fails(args);
        assert_eq!(
            err.trim_end(),
            "exo: .exo/exo.db is empty: not an exo store (left untouched)",
            "{args:?}"
        );
    }
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    let mut names: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["exo.db"]);
}

/// A workspace in exo's root could never be snapshotted or touched by a
/// tool; it is refused when the conversation is created or forked.
#[test]
fn a_workspace_inside_the_root_is_refused() {
    let env = Env::new();
    env.agent_and_conversation();
    let root = env.root();
    std::fs::create_dir(root.join("sub")).unwrap();
    let before = env.json(&["conversation", "list", "a"]);
    for workspace in [".exo", ".exo/sub", ".exo/sub/..", "./.exo/../.exo"] {
        let err = env.fails(&["conversation", "create", "a", "W", "--workspace", workspace]);
        assert!(
            err.contains("is exo's root directory or inside it"),
            "{workspace}: {err}"
        );
        assert!(!err.contains("--"), "{err}");
    }
    assert_eq!(env.json(&["conversation", "list", "a"]), before);
    // A workspace that contains the root is fine: snapshots leave it out.
    env.ok(&[
        "conversation",
        "create",
        "a",
        "W",
        "--slug",
        "w",
        "--workspace",
        ".",
    ]);
    std::fs::write(env.dir().join("file.txt"), "x").unwrap();
    env.ok(&["snapshot", "take", "a", "w"]);
    // A fork's new workspace may not be in the root either; nothing is
    // written there.
    let err = env.fails(&["conversation", "fork", "a", "w", "--workspace", ".exo/fork"]);
    assert!(
        err.contains("is exo's root directory or inside it"),
        "{err}"
    );
    assert!(!root.join("fork").exists());
    let after = env.json(&["conversation", "list", "a"]);
    assert_eq!(after["conversations"].as_array().unwrap().len(), 2);
}

/// An image content part must be an image type with base64 data.
#[test]
fn image_parts_are_checked_on_input() {
    let env = Env::new();
    env.agent_and_conversation();
    let before = env.events("a", "c");
    let image = |media_type: &str, data: &str| {
        serde_json::json!({"kind": "message", "role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "media_type": media_type, "data": data}
        ]})
    };
    for (line, expected) in [
        (
            image("image/png", "%%% not base64 %%%"),
            "content part 2: image data is not standard base64",
        ),
        (
            image("text/html", "aGk="),
            "content part 2: image media_type \"text/html\" is not an image type",
        ),
    ] {
        let run = env.append("a", "c", &[line]);
        crate::util::assert_one_line_failure(&run, &["conversation", "append"]);
        assert!(run.stderr.contains(expected), "{}", run.stderr);
    }
    assert_eq!(env.events("a", "c"), before);
    let run = env.append("a", "c", &[image("image/png", "aGk=")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// A root that is a file is named as such, in one line, whatever the
/// command.
#[test]
fn a_root_that_is_a_file_is_refused_in_one_line() {
    let env = Env::new();
    let file = env.dir().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for args in [&["agent", "list"][..], &["agent", "create", "X"]] {
        let mut full = vec!["--root", file.to_str().unwrap()];
        full.extend_from_slice(args);
        let err = env.fails(&full);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("is not a directory"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}
