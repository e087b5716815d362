//! Schema and migrations.
//!
//! `PRAGMA application_id` marks the file as an exo store; `PRAGMA
//! user_version` holds the schema version. A file without the application
//! id is refused untouched, whatever its version; a store whose version is
//! newer than [`MIGRATIONS`] knows is refused rather than misread.
//! Migrations run in one immediate transaction, so two processes opening a
//! store at once cannot both apply them. A new store is built complete
//! under a temporary name and linked into place ([`create`]).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

/// `exo1` in ASCII: marks the SQLite file as an exo store.
const APPLICATION_ID: i64 = 0x6578_6f31;

/// Each entry upgrades the schema by one version; entry `i` takes version
/// `i` to `i + 1`. Append only: never edit a migration that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
-- Key/value facts about the store itself (the secrets key check).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE agents (
    id         BLOB PRIMARY KEY,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT;
CREATE UNIQUE INDEX agents_live_slug ON agents(slug) WHERE deleted_at IS NULL;

-- A conversation's history is the chain of its current branch: the branch's
-- own events, then its parent's up to base_seq, and so on to the root.
-- head_seq is the depth of the head; head_event its id.
CREATE TABLE conversations (
    id            BLOB PRIMARY KEY,
    agent         BLOB NOT NULL REFERENCES agents(id),
    slug          TEXT NOT NULL,
    name          TEXT NOT NULL,
    branch        INTEGER NOT NULL,
    head_seq      INTEGER NOT NULL,
    head_event    BLOB NOT NULL,
    forked_from   BLOB,
    fork_event    BLOB,
    workspace     TEXT,
    open_session  BLOB,
    open_turn     BLOB,
    created_at    INTEGER NOT NULL,
    deleted_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX conversations_live_slug ON conversations(agent, slug) WHERE deleted_at IS NULL;

-- Branches never change once written. Events of a branch have seq
-- base_seq+1, base_seq+2, ...: an event's seq is its depth in every history
-- that contains it.
CREATE TABLE branches (
    id           INTEGER PRIMARY KEY,
    conversation BLOB NOT NULL,
    parent       INTEGER REFERENCES branches(id),
    base_seq     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX branches_by_conversation ON branches(conversation);

CREATE TABLE events (
    rowid      INTEGER PRIMARY KEY,
    id         BLOB NOT NULL UNIQUE,
    branch     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    session    BLOB,
    turn       BLOB,
    body       TEXT NOT NULL,
    UNIQUE (branch, seq)
) STRICT;
CREATE INDEX events_kind ON events(branch, kind, seq);
CREATE INDEX events_session ON events(session, branch, seq) WHERE session IS NOT NULL;
CREATE INDEX events_turn ON events(turn, branch, seq) WHERE turn IS NOT NULL;
-- The newest workspace snapshot recorded for a workspace, in commit order.
CREATE INDEX events_workspace_snapshots ON events(rowid) WHERE kind = 'workspace_snapshot';

-- Values that resolve as of a conversation's head (artifact versions,
-- conversation-scoped secrets and bindings): derived from the events that
-- set them, keyed by where those events sit.
CREATE TABLE history_values (
    ns      TEXT NOT NULL,
    key     TEXT NOT NULL,
    branch  INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    version INTEGER,
    value   TEXT,
    PRIMARY KEY (ns, key, branch, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX history_values_by_branch ON history_values(ns, branch, seq);

CREATE TABLE sessions (
    id           BLOB PRIMARY KEY,
    conversation BLOB NOT NULL,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    end_reason   TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE turns (
    id           BLOB PRIMARY KEY,
    conversation BLOB NOT NULL,
    session      BLOB NOT NULL,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    status       TEXT
) STRICT, WITHOUT ROWID;

-- Content-addressed artifact bytes: identical content is stored once.
CREATE TABLE blobs (
    sha256 BLOB PRIMARY KEY,
    size   INTEGER NOT NULL,
    data   BLOB NOT NULL
) STRICT;

-- Sealed secret values. Root and agent scope: one row per (scope, name),
-- replaced on set and removed on delete. Conversation scope: rows are
-- immutable and the history (history_values, ns 'secret') says which is
-- current as of the head.
CREATE TABLE secrets (
    id         BLOB PRIMARY KEY,
    scope      TEXT NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX secrets_live ON secrets(scope, name) WHERE scope NOT LIKE 'conversation:%';

-- Root and agent scope bindings; conversation scope ones live in the log.
CREATE TABLE bindings (
    scope      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, kind, name)
) STRICT;
"#,
    // 1 -> 2: compactions are indexed in history_values (ns 'compaction'), so
    // the newest one on a history is found without reading the history. The
    // rows of compactions recorded before are written here.
    r#"
INSERT OR IGNORE INTO history_values (ns, key, branch, seq, version, value)
SELECT 'compaction', 'exo.compaction', branch, seq, NULL, NULL FROM events
WHERE kind = 'custom' AND json_extract(body, '$.type') = 'exo.compaction';
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Refuses a database that is not an exo store, or one written by a newer
/// exo, before anything is written to it. The application id is checked
/// first: another application's file is "not an exo store" whatever its
/// `user_version` says.
pub(crate) fn check(conn: &Connection, path: &Path) -> Result<()> {
    let (application_id, version) = header(conn)?;
    if application_id != APPLICATION_ID {
        return Err(Error::NotAStore(path.to_path_buf()));
    }
    newer(version, path)
}

fn header(conn: &Connection) -> Result<(i64, i64)> {
    let application_id: i64 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    Ok((application_id, version))
}

fn newer(version: i64, path: &Path) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the exo store at `path` (already [`check`]ed) up to
/// [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    newer(version, path)?;
    apply(&tx, version)?;
    tx.commit()?;
    Ok(())
}

/// Runs the migrations after `version` and records the new version.
fn apply(tx: &rusqlite::Transaction<'_>, version: i64) -> Result<()> {
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tracing::info!(from = index, to = index + 1, "migrating store schema");
        tx.execute_batch(migration)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    Ok(())
}

/// Creates a new store at `path`: it is built complete under a temporary
/// name beside it, made durable, then hard-linked into place, which fails
/// rather than replace a store another process made meanwhile (that store
/// is then used). So `exo.db` is never an empty or half-built file, and an
/// empty `exo.db` can be refused as damaged.
pub(crate) fn create(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Unique to this process and call: handles in one process may create
    // the same store at once, too.
    static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.new-{}-{call}", std::process::id()));
    let remove = |temp: &Path| {
        for suffix in ["", "-journal"] {
            let mut file = temp.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    };
    // A file by this name is a leftover of a dead process with our pid.
    remove(&temp);
    let result = build(&temp).and_then(|()| match std::fs::hard_link(&temp, path) {
        Ok(()) => sync_dir(dir),
        // Another process created the store first: use it.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Error::io(format!("creating {}", path.display()), err)),
    });
    remove(&temp);
    result
}

/// Builds a complete, empty store in the new file `temp`.
fn build(temp: &Path) -> Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(temp, flags)?;
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
    apply(&tx, 0)?;
    tx.commit()?;
    conn.close().map_err(|(_, err)| Error::Sqlite(err))?;
    std::fs::File::open(temp)
        .and_then(|file| file.sync_all())
        .map_err(|err| Error::io(format!("syncing {}", temp.display()), err))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| Error::io(format!("syncing {}", dir.display()), err))
}

/// Names the file in SQLite's complaints about its contents, in one line:
/// a file that is not a database is "not an exo store", a damaged one is
/// a corrupt store.
pub(crate) fn file_error(err: Error, path: &Path) -> Error {
    match err {
        Error::Sqlite(rusqlite::Error::SqliteFailure(ref e, _)) => match e.code {
            rusqlite::ErrorCode::NotADatabase => Error::NotAStore(path.to_path_buf()),
            rusqlite::ErrorCode::DatabaseCorrupt => Error::Corrupt(format!(
                "{}: the database file is malformed",
                path.display()
            )),
            _ => err,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use exo_core::{EventData, COMPACTION_TYPE};
    use rusqlite::Connection;
    use serde_json::json;

    use crate::{OpenMode, Store};

    /// A store of schema version 1 holding a compaction, opened by this
    /// exo: the migration indexes the compaction, so it is found.
    #[test]
    fn migrating_from_version_1_indexes_the_compactions_already_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let store = Store::open(&root, OpenMode::Create).unwrap();
        store
            .create_agent("A", Some("a"), Default::default())
            .unwrap();
        store
            .create_conversation("a", "C", Some("c"), None)
            .unwrap();
        let compaction = EventData::Custom {
            custom_type: COMPACTION_TYPE.to_owned(),
            payload: json!({"summary": "so far"}),
        };
        let recorded = store.append("a", "c", vec![compaction], None).unwrap();
        drop(store);
        // Make it a version 1 store: no compaction rows.
        let conn = Connection::open(root.join(crate::DB_FILE)).unwrap();
        let removed = conn
            .execute("DELETE FROM history_values WHERE ns = 'compaction'", [])
            .unwrap();
        assert_eq!(removed, 1);
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        drop(conn);

        let store = Store::open(&root, OpenMode::Existing).unwrap();
        let found = store.latest_compaction("a", "c", None).unwrap();
        assert_eq!(found.map(|event| event.id), Some(recorded[0].id));
    }
}
