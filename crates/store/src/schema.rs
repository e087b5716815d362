//! Schema and migrations.
//!
//! `PRAGMA user_version` holds the schema version; `PRAGMA application_id`
//! marks the file as an exo store. Migrations run in one immediate
//! transaction, so two processes opening a fresh store at once cannot both
//! apply them. A store whose version is newer than [`MIGRATIONS`] knows is
//! refused rather than misread.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// `exo1` in ASCII: marks the SQLite file as an exo store.
const APPLICATION_ID: i64 = 0x6578_6f31;

/// Each entry upgrades the schema by one version; entry `i` takes version
/// `i` to `i + 1`. Append only: never edit a migration that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database at `path` up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let not_a_store = |err: rusqlite::Error| match err {
        rusqlite::Error::SqliteFailure(ref e, _) if e.code == rusqlite::ErrorCode::NotADatabase => {
            Error::NotAStore(path.to_path_buf())
        }
        other => Error::Sqlite(other),
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(not_a_store)?;
    if version == SCHEMA_VERSION {
        return check_application_id(conn, path);
    }
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let tables: i64 =
            tx.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
        if tables != 0 {
            return Err(Error::NotAStore(path.to_path_buf()));
        }
        tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tracing::info!(from = index, to = index + 1, "migrating store schema");
        tx.execute_batch(migration)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    check_application_id(conn, path)
}

fn check_application_id(conn: &Connection, path: &Path) -> Result<()> {
    let id: i64 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    if id == APPLICATION_ID {
        Ok(())
    } else {
        Err(Error::NotAStore(path.to_path_buf()))
    }
}
