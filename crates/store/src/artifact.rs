//! Artifacts: immutable, versioned byte blobs addressed by path.
//!
//! Each write appends an `artifact_written` event; the version is one more
//! than the newest version of that path in the conversation's history, so
//! artifacts resolve as of the head: a fork sees the versions written before
//! its fork point, and a rewind makes the abandoned branch's versions not
//! current. The bytes are stored once per distinct SHA-256.

use exo_core::{EventData, EventId, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::log::{HistoryValue, NewEvent};
use crate::{Inner, Store};

/// The largest artifact accepted.
pub const MAX_ARTIFACT_BYTES: usize = 32 << 20;

/// One version of an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactVersion {
    /// The artifact's path.
    pub path: String,
    /// The version, from 1.
    pub version: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type, if given.
    pub media_type: Option<String>,
    /// The `artifact_written` event.
    pub event: EventId,
    /// When it was written.
    pub created_at: Timestamp,
}

/// Paths are relative, `/`-separated, without empty, `.` or `..` segments,
/// at most 1024 bytes, with no control characters.
fn validate_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 1024
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid artifact path {path:?}: use a relative path like \"notes/plan.md\" without empty, '.' or '..' segments"
        )))
    }
}

impl Inner {
    fn artifact_from_value(
        &self,
        conn: &Connection,
        value: &HistoryValue,
    ) -> Result<ArtifactVersion> {
        let event = self.event_at(conn, value.branch, value.seq)?;
        match event.data {
            EventData::ArtifactWritten {
                path,
                version,
                sha256,
                size,
                media_type,
            } => Ok(ArtifactVersion {
                path,
                version,
                sha256,
                size,
                media_type,
                event: event.id,
                created_at: event.created_at,
            }),
            other => Err(Error::Corrupt(format!(
                "artifact index points at a {} event",
                other.kind_name()
            ))),
        }
    }
}

impl Store {
    /// Writes a new version of the artifact at `path`.
    pub fn put_artifact(
        &self,
        agent: &str,
        conversation: &str,
        path: &str,
        bytes: &[u8],
        media_type: Option<&str>,
    ) -> Result<ArtifactVersion> {
        validate_path(path)?;
        if bytes.len() > MAX_ARTIFACT_BYTES {
            return Err(Error::Invalid(format!(
                "artifact is {} bytes, more than the {} MiB limit",
                bytes.len(),
                MAX_ARTIFACT_BYTES >> 20
            )));
        }
        if let Some(media_type) = media_type {
            if media_type.is_empty()
                || media_type.len() > 255
                || media_type
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(Error::Invalid(format!("invalid media type {media_type:?}")));
            }
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let sha256 = hex::encode(digest);
        let conv = self.conversation(agent, conversation)?;
        self.inner.write(|tx| {
            let mut conv = self.inner.load_conversation(tx, conv.id)?;
            let chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
            let previous = self.inner.history_value(tx, &chain, "artifact", path)?;
            let version = previous.and_then(|value| value.version).unwrap_or(0) as u64 + 1;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO blobs (sha256, size, data) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![digest, bytes.len() as i64, bytes])?;
            let data = EventData::ArtifactWritten {
                path: path.to_string(),
                version,
                sha256: sha256.clone(),
                size: bytes.len() as u64,
                media_type: media_type.map(str::to_string),
            };
            let event = self
                .inner
                .append(tx, &mut conv, [NewEvent::plain(data)])?
                .pop()
                .expect("one event appended");
            Ok(ArtifactVersion {
                path: path.to_string(),
                version,
                sha256: sha256.clone(),
                size: bytes.len() as u64,
                media_type: media_type.map(str::to_string),
                event: event.id,
                created_at: event.created_at,
            })
        })
    }

    /// Reads an artifact as of the conversation's head: the newest version,
    /// or the given one.
    pub fn get_artifact(
        &self,
        agent: &str,
        conversation: &str,
        path: &str,
        version: Option<u64>,
    ) -> Result<(ArtifactVersion, Vec<u8>)> {
        validate_path(path)?;
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            let chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
            let value = match version {
                None => self.inner.history_value(tx, &chain, "artifact", path)?,
                Some(wanted) => self
                    .inner
                    .history_values_of(tx, &chain, "artifact", path)?
                    .into_iter()
                    .find(|value| value.version == Some(wanted as i64)),
            };
            let not_found = || Error::NotFound {
                what: "artifact",
                key: match version {
                    Some(v) => format!("{path}@{v}"),
                    None => path.to_string(),
                },
            };
            let value = value.ok_or_else(not_found)?;
            let artifact = self.inner.artifact_from_value(tx, &value)?;
            let digest = hex::decode(&artifact.sha256)
                .map_err(|_| Error::Corrupt("bad artifact hash".into()))?;
            let bytes: Vec<u8> = tx
                .prepare_cached("SELECT data FROM blobs WHERE sha256 = ?1")?
                .query_row([digest], |row| row.get(0))
                .optional()?
                .ok_or_else(|| Error::Corrupt(format!("blob {} is missing", artifact.sha256)))?;
            Ok((artifact, bytes))
        })
    }

    /// The current version of every artifact as of the head, by path.
    pub fn list_artifacts(&self, agent: &str, conversation: &str) -> Result<Vec<ArtifactVersion>> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            let chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
            self.inner
                .current_values(tx, &chain, "artifact")?
                .iter()
                .map(|value| self.inner.artifact_from_value(tx, value))
                .collect()
        })
    }

    /// Every version of one artifact in the history, oldest first.
    pub fn artifact_versions(
        &self,
        agent: &str,
        conversation: &str,
        path: &str,
    ) -> Result<Vec<ArtifactVersion>> {
        validate_path(path)?;
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            let chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
            let values = self.inner.history_values_of(tx, &chain, "artifact", path)?;
            if values.is_empty() {
                return Err(Error::not_found("artifact", path));
            }
            values
                .iter()
                .map(|value| self.inner.artifact_from_value(tx, value))
                .collect()
        })
    }
}
