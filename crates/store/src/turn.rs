//! Turns and sessions, and closing those a dead process left open.
//!
//! A session is one process's attachment to a conversation; a turn is one
//! user input and everything done in answer to it. At most one session and
//! one turn are open per conversation.
//!
//! # Liveness
//!
//! The process that opens a session holds an exclusive `flock` on
//! `<root>/locks/<session>.lock` for as long as the session lives. The kernel
//! drops the lock when the process dies, however it dies. Whoever next opens
//! the conversation and finds its open session's lock free knows the owner is
//! gone, and records `turn_ended {status: interrupted}` (when a turn was
//! open) and `session_ended {reason: interrupted}`.

use std::collections::HashMap;
use std::fs::{self, File, TryLockError};
use std::path::PathBuf;

use exo_core::{
    ConversationId, Event, EventData, EventId, Role, SessionEndReason, SessionId, Timestamp,
    TurnId, TurnStatus,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::identity::Conversation;
use crate::log::{check_appendable, check_head, check_recordable, NewEvent};
use crate::{id_column, Inner, Store};

/// A session this process opened, and the lock proving it is alive.
pub(crate) struct OwnedSession {
    pub id: SessionId,
    lock: File,
    lock_path: PathBuf,
}

impl OwnedSession {
    fn release(self) {
        drop(self.lock);
        if let Err(err) = fs::remove_file(&self.lock_path) {
            tracing::debug!(path = %self.lock_path.display(), %err, "removing session lock file");
        }
    }
}

/// A turn's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnInfo {
    /// The turn.
    pub id: TurnId,
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its session.
    pub session: SessionId,
    /// How it ended; `None` while open.
    pub status: Option<TurnStatus>,
    /// When it began.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
}

/// An open turn. Append to it, then finish it. Dropping a handle without
/// finishing leaves the turn open; it is closed as `interrupted` when this
/// process's store is dropped or, if the process dies, by the next process
/// to open the conversation.
#[derive(Debug)]
pub struct TurnHandle {
    store: Store,
    conversation: ConversationId,
    session: SessionId,
    turn: TurnId,
    started: Vec<Event>,
}

impl TurnHandle {
    /// The turn's id.
    pub fn id(&self) -> TurnId {
        self.turn
    }

    /// The session the turn runs in.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The conversation.
    pub fn conversation(&self) -> ConversationId {
        self.conversation
    }

    /// The events `begin_turn` recorded: `session_started` (when it opened
    /// the session), `turn_started` and the input message.
    pub fn started_events(&self) -> &[Event] {
        &self.started
    }

    /// Appends events to the turn, atomically. With `expected_head`, fails
    /// with a conflict if another writer moved the head.
    pub fn append(
        &self,
        events: Vec<EventData>,
        expected_head: Option<EventId>,
    ) -> Result<Vec<Event>> {
        self.store.append_to_turn(self.turn, events, expected_head)
    }

    /// Ends the turn. Idempotent: once ended, returns the recorded status.
    pub fn finish(&self, status: TurnStatus) -> Result<TurnStatus> {
        self.store.finish_turn(self.turn, status)
    }
}

impl Inner {
    fn lock_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    fn lock_path(&self, session: SessionId) -> PathBuf {
        self.lock_dir().join(format!("{session}.lock"))
    }

    fn owned_session(&self, conversation: ConversationId) -> Option<SessionId> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&conversation)
            .map(|s| s.id)
    }

    /// Whether some process still holds the session's lock.
    fn session_alive(&self, conversation: ConversationId, session: SessionId) -> Result<bool> {
        if self.owned_session(conversation) == Some(session) {
            return Ok(true);
        }
        let path = self.lock_path(session);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(Error::io(format!("opening {}", path.display()), err)),
        };
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(err)) => {
                Err(Error::io(format!("locking {}", path.display()), err))
            }
        }
    }

    fn new_session_lock(&self) -> Result<OwnedSession> {
        let dir = self.lock_dir();
        fs::create_dir_all(&dir)
            .map_err(|err| Error::io(format!("creating {}", dir.display()), err))?;
        let id = SessionId::new();
        let lock_path = self.lock_path(id);
        let lock = File::create(&lock_path)
            .map_err(|err| Error::io(format!("creating {}", lock_path.display()), err))?;
        lock.try_lock().map_err(|err| {
            Error::io(
                format!("locking {}", lock_path.display()),
                std::io::Error::other(err.to_string()),
            )
        })?;
        Ok(OwnedSession {
            id,
            lock,
            lock_path,
        })
    }

    /// Records the end of an open turn.
    fn end_turn(
        &self,
        conn: &Connection,
        conv: &mut Conversation,
        turn: TurnId,
        status: TurnStatus,
    ) -> Result<Event> {
        let session = conv.open_session;
        let mut events = self.append(
            conn,
            conv,
            [NewEvent {
                data: EventData::TurnEnded { status },
                session,
                turn: Some(turn),
            }],
        )?;
        conn.prepare_cached("UPDATE turns SET status = ?2, ended_at = ?3 WHERE id = ?1")?
            .execute(params![
                turn.as_bytes(),
                status.as_str(),
                Timestamp::now().as_micros()
            ])?;
        conn.prepare_cached("UPDATE conversations SET open_turn = NULL WHERE id = ?1")?
            .execute([conv.id.as_bytes()])?;
        conv.open_turn = None;
        Ok(events.pop().expect("one event appended"))
    }

    /// Records the end of the open session (and of its turn, if open).
    fn end_session(
        &self,
        conn: &Connection,
        conv: &mut Conversation,
        reason: SessionEndReason,
    ) -> Result<()> {
        let Some(session) = conv.open_session else {
            return Ok(());
        };
        if let Some(turn) = conv.open_turn {
            self.end_turn(conn, conv, turn, TurnStatus::Interrupted)?;
        }
        self.append(
            conn,
            conv,
            [NewEvent {
                data: EventData::SessionEnded { reason },
                session: Some(session),
                turn: None,
            }],
        )?;
        let reason_text = match reason {
            SessionEndReason::Closed => "closed",
            SessionEndReason::Interrupted => "interrupted",
        };
        conn.prepare_cached("UPDATE sessions SET ended_at = ?2, end_reason = ?3 WHERE id = ?1")?
            .execute(params![
                session.as_bytes(),
                Timestamp::now().as_micros(),
                reason_text
            ])?;
        conn.prepare_cached("UPDATE conversations SET open_session = NULL WHERE id = ?1")?
            .execute([conv.id.as_bytes()])?;
        conv.open_session = None;
        Ok(())
    }

    fn turn_info(&self, conn: &Connection, turn: TurnId) -> Result<TurnInfo> {
        conn.prepare_cached(
            "SELECT id, conversation, session, status, started_at, ended_at FROM turns WHERE id = ?1",
        )?
        .query_row([turn.as_bytes()], |row| {
            let status: Option<String> = row.get(3)?;
            Ok((
                id_column(row, 0, TurnId::from_bytes)?,
                id_column(row, 1, ConversationId::from_bytes)?,
                id_column(row, 2, SessionId::from_bytes)?,
                status,
                row.get::<_, i64>(4)?,
                row.get::<_, Option<i64>>(5)?,
            ))
        })
        .optional()?
        .ok_or_else(|| Error::not_found("turn", turn))
        .and_then(|(id, conversation, session, status, started_at, ended_at)| {
            let status = status
                .map(|s| s.parse::<TurnStatus>().map_err(|err| Error::Corrupt(err.0)))
                .transpose()?;
            Ok(TurnInfo {
                id,
                conversation,
                session,
                status,
                started_at: Timestamp(started_at),
                ended_at: ended_at.map(Timestamp),
            })
        })
    }

    /// Ends every session this handle owns: `closed`, or `interrupted` for
    /// one whose turn was never finished. Runs when the last handle drops.
    fn close_owned_sessions(&mut self) {
        let owned: HashMap<ConversationId, OwnedSession> =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|p| p.into_inner()));
        for (conversation, session) in owned {
            let result = self.write(|tx| {
                let mut conv = self.load_conversation(tx, conversation)?;
                if conv.open_session == Some(session.id) {
                    // A turn still open here was abandoned by its handle.
                    let reason = match conv.open_turn {
                        Some(_) => SessionEndReason::Interrupted,
                        None => SessionEndReason::Closed,
                    };
                    self.end_session(tx, &mut conv, reason)?;
                }
                Ok(())
            });
            if let Err(err) = result {
                tracing::warn!(%conversation, %err, "could not close session; it will be closed on next open");
            }
            session.release();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close_owned_sessions();
    }
}

impl Store {
    /// Closes the conversation's open session if the process that owned it
    /// is gone, recording an interrupted turn when one was open.
    pub(crate) fn recover_abandoned(&self, conv: Conversation) -> Result<Conversation> {
        let Some(session) = conv.open_session else {
            return Ok(conv);
        };
        if self.inner.session_alive(conv.id, session)? {
            return Ok(conv);
        }
        let recovered = self.inner.write(|tx| {
            let mut conv = self.inner.load_conversation(tx, conv.id)?;
            // Re-check under the write lock: another process may have
            // recovered it already.
            if conv.open_session == Some(session) && !self.inner.session_alive(conv.id, session)? {
                tracing::info!(conversation = %conv.id, %session, turn = ?conv.open_turn, "closing session left open by a dead process");
                self.inner.end_session(tx, &mut conv, SessionEndReason::Interrupted)?;
            }
            Ok(conv)
        })?;
        let _ = fs::remove_file(self.inner.lock_path(session));
        Ok(recovered)
    }

    /// Begins a turn: records `session_started` (when this process has no
    /// session open on the conversation), `turn_started` and the user's
    /// input message in one durable transaction.
    pub fn begin_turn(
        &self,
        agent: &str,
        conversation: &str,
        input: EventData,
    ) -> Result<TurnHandle> {
        self.begin_turn_with(agent, conversation, input, Vec::new())
    }

    /// [`Store::begin_turn`], recording `extra` events (a turn-start
    /// `workspace_snapshot`) between `turn_started` and the input, in the
    /// same transaction.
    pub fn begin_turn_with(
        &self,
        agent: &str,
        conversation: &str,
        input: EventData,
        extra: Vec<EventData>,
    ) -> Result<TurnHandle> {
        for data in &extra {
            check_recordable(data)?;
        }
        match &input {
            EventData::Message {
                role: Role::User, ..
            } => {}
            _ => {
                return Err(Error::Invalid(
                    "a turn's input must be a user message".into(),
                ))
            }
        }
        input.validate()?;
        let conv = self.conversation(agent, conversation)?;
        let owned = self.inner.owned_session(conv.id);
        let mut new_lock = None;
        let result = self.inner.write(|tx| {
            let mut conv = self.inner.load_conversation(tx, conv.id)?;
            if let Some(turn) = conv.open_turn {
                return Err(Error::Busy(format!(
                    "turn {turn} is already in progress in conversation {}",
                    conv.slug
                )));
            }
            let mut events = Vec::with_capacity(3);
            let session = match conv.open_session {
                Some(open) if Some(open) == owned => open,
                Some(open) => {
                    return Err(Error::Busy(format!(
                        "conversation {} is in use by another process (session {open})",
                        conv.slug
                    )))
                }
                None => {
                    let lock = self.inner.new_session_lock()?;
                    let session = lock.id;
                    new_lock = Some(lock);
                    tx.prepare_cached(
                        "INSERT INTO sessions (id, conversation, started_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        session.as_bytes(),
                        conv.id.as_bytes(),
                        Timestamp::now().as_micros()
                    ])?;
                    tx.prepare_cached("UPDATE conversations SET open_session = ?2 WHERE id = ?1")?
                        .execute(params![conv.id.as_bytes(), session.as_bytes()])?;
                    conv.open_session = Some(session);
                    events.push(NewEvent {
                        data: EventData::SessionStarted {},
                        session: Some(session),
                        turn: None,
                    });
                    session
                }
            };
            let turn = TurnId::new();
            tx.prepare_cached(
                "INSERT INTO turns (id, conversation, session, started_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                turn.as_bytes(),
                conv.id.as_bytes(),
                session.as_bytes(),
                Timestamp::now().as_micros()
            ])?;
            tx.prepare_cached("UPDATE conversations SET open_turn = ?2 WHERE id = ?1")?
                .execute(params![conv.id.as_bytes(), turn.as_bytes()])?;
            events.push(NewEvent {
                data: EventData::TurnStarted {},
                session: Some(session),
                turn: Some(turn),
            });
            events.extend(extra.into_iter().map(|data| NewEvent {
                data,
                session: Some(session),
                turn: Some(turn),
            }));
            events.push(NewEvent {
                data: input,
                session: Some(session),
                turn: Some(turn),
            });
            let started = self.inner.append(tx, &mut conv, events)?;
            Ok((conv.id, session, turn, started))
        });
        match result {
            Ok((conversation, session, turn, started)) => {
                if let Some(lock) = new_lock {
                    let previous = self
                        .inner
                        .sessions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(conversation, lock);
                    if let Some(previous) = previous {
                        previous.release();
                    }
                }
                Ok(TurnHandle {
                    store: self.clone(),
                    conversation,
                    session,
                    turn,
                    started,
                })
            }
            Err(err) => {
                if let Some(lock) = new_lock {
                    lock.release();
                }
                Err(err)
            }
        }
    }

    /// Appends events to an open turn this process owns.
    pub fn append_to_turn(
        &self,
        turn: TurnId,
        events: Vec<EventData>,
        expected_head: Option<EventId>,
    ) -> Result<Vec<Event>> {
        for (index, data) in events.iter().enumerate() {
            check_appendable(index, data)?;
        }
        Ok(self
            .append_each_to_turn(turn, events.into_iter().map(Ok), expected_head, true)?
            .events)
    }

    /// [`Store::append_to_turn`] of events made one at a time, inside the
    /// write (see [`Store::append_each`]).
    pub fn append_each_to_turn(
        &self,
        turn: TurnId,
        events: impl IntoIterator<Item = Result<EventData>>,
        expected_head: Option<EventId>,
        keep: bool,
    ) -> Result<crate::Appended> {
        self.inner.write(|tx| {
            let info = self.inner.turn_info(tx, turn)?;
            let mut conv = self.inner.load_conversation(tx, info.conversation)?;
            if let Some(status) = info.status {
                return Err(Error::Invalid(format!("turn {turn} has ended ({status})")));
            }
            if self.inner.owned_session(conv.id) != Some(info.session) {
                return Err(Error::Busy(format!(
                    "turn {turn} belongs to another process"
                )));
            }
            check_head(&conv, expected_head)?;
            let session = Some(info.session);
            let events = events.into_iter().enumerate().map(|(index, data)| {
                let data = data?;
                check_appendable(index, &data)?;
                Ok(NewEvent {
                    data,
                    session,
                    turn: Some(turn),
                })
            });
            let appended = self.inner.append_each(tx, &mut conv, events, keep)?;
            if appended.count == 0 {
                return Err(Error::Invalid("events must not be empty".to_string()));
            }
            Ok(appended)
        })
    }

    /// Ends a turn with `status`. Idempotent: if the turn has already ended,
    /// nothing is written and the recorded status is returned.
    pub fn finish_turn(&self, turn: TurnId, status: TurnStatus) -> Result<TurnStatus> {
        self.finish_turn_with(turn, status, Vec::new())
    }

    /// [`Store::finish_turn`], recording `extra` events (a turn-end
    /// `workspace_snapshot`) just before `turn_ended`, in the same
    /// transaction. Nothing is recorded if the turn had already ended.
    pub fn finish_turn_with(
        &self,
        turn: TurnId,
        status: TurnStatus,
        extra: Vec<EventData>,
    ) -> Result<TurnStatus> {
        for data in &extra {
            check_recordable(data)?;
        }
        let info = self.inner.read(|tx| self.inner.turn_info(tx, turn))?;
        if let Some(recorded) = info.status {
            return Ok(recorded);
        }
        // A turn whose owner died is closed as interrupted by recovery.
        let conv = self
            .inner
            .read(|tx| self.inner.load_conversation(tx, info.conversation))?;
        self.recover_abandoned(conv)?;
        self.inner.write(|tx| {
            let info = self.inner.turn_info(tx, turn)?;
            if let Some(recorded) = info.status {
                return Ok(recorded);
            }
            let mut conv = self.inner.load_conversation(tx, info.conversation)?;
            if self.inner.owned_session(conv.id) != Some(info.session) {
                return Err(Error::Busy(format!(
                    "turn {turn} belongs to another process"
                )));
            }
            if conv.open_turn != Some(turn) {
                return Err(Error::Corrupt(format!(
                    "turn {turn} is open but not its conversation's open turn"
                )));
            }
            if !extra.is_empty() {
                let session = Some(info.session);
                self.inner.append(
                    tx,
                    &mut conv,
                    extra.into_iter().map(|data| NewEvent {
                        data,
                        session,
                        turn: Some(turn),
                    }),
                )?;
            }
            self.inner.end_turn(tx, &mut conv, turn, status)?;
            Ok(status)
        })
    }

    /// A turn's record.
    pub fn turn(&self, turn: TurnId) -> Result<TurnInfo> {
        self.inner.read(|tx| self.inner.turn_info(tx, turn))
    }

    /// Ends this process's session on the conversation. Refused while its
    /// turn is open. Returns false when this process had no session there.
    pub fn end_session(&self, conversation: ConversationId) -> Result<bool> {
        let Some(session) = self.inner.owned_session(conversation) else {
            return Ok(false);
        };
        self.inner.write(|tx| {
            let mut conv = self.inner.load_conversation(tx, conversation)?;
            if let Some(turn) = conv.open_turn {
                return Err(Error::Busy(format!(
                    "turn {turn} is still in progress; finish it first"
                )));
            }
            if conv.open_session == Some(session) {
                self.inner
                    .end_session(tx, &mut conv, SessionEndReason::Closed)?;
            }
            Ok(())
        })?;
        if let Some(owned) = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conversation)
        {
            owned.release();
        }
        Ok(true)
    }
}
