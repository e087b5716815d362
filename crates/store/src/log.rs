//! The event log: branches, appends, page queries, fork and rewind.
//!
//! See the crate docs for the branch model. The invariants this module keeps:
//!
//! - **Architecture Invariant:** a branch row never changes after it is
//!   written, and only its owning conversation appends to it, and only while
//!   it is that conversation's current branch. So a conversation's head is
//!   always the tip of its current branch (or the branch's base, before its
//!   first event).
//! - Events are never updated or deleted. Fork and rewind add a branch and
//!   one marker event; they copy nothing.
//! - `history_values` rows are derived from events in the same transaction
//!   that appends them ([`Inner::append`]), so they can never disagree.

use exo_core::{
    ConversationId, Event, EventData, EventId, EventKind, SessionId, Timestamp, TurnId,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::identity::Conversation;
use crate::{id_column, opt_id_column, Inner, Store};

/// How deeply a stored event may nest arrays and objects: well within
/// [`exo_core::json::MAX_DEPTH`], so an event is readable inside any
/// response that wraps it. Caller input is held to
/// [`exo_core::MAX_INPUT_NESTING`]; this bounds what executors record
/// (a model's tool arguments, say).
pub const MAX_EVENT_NESTING: usize = 200;

/// The largest page a query returns.
pub const MAX_PAGE: usize = 10_000;
/// The page size when a query gives no limit.
pub const DEFAULT_PAGE: usize = 100;
/// The largest event body accepted, serialized.
pub const MAX_EVENT_BODY_BYTES: usize = 8 << 20;

/// A branch row. Immutable once written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BranchInfo {
    pub conversation: ConversationId,
    pub parent: Option<i64>,
    pub base_seq: i64,
}

/// A run of one branch's events inside a history: depths `start..=end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub branch: i64,
    pub start: i64,
    pub end: i64,
}

/// An event to append, with its envelope.
pub(crate) struct NewEvent {
    pub data: EventData,
    pub session: Option<SessionId>,
    pub turn: Option<TurnId>,
}

impl NewEvent {
    pub fn plain(data: EventData) -> Self {
        NewEvent {
            data,
            session: None,
            turn: None,
        }
    }
}

/// Which events to read, and in what order.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Only events after this one (exclusive).
    pub after: Option<EventId>,
    /// Only events before this one (exclusive).
    pub before: Option<EventId>,
    /// Newest first.
    pub desc: bool,
    /// Page size; 0 means the default (100). At most [`MAX_PAGE`].
    pub limit: usize,
    /// Only this kind.
    pub kind: Option<EventKind>,
    /// Only this session's events.
    pub session: Option<SessionId>,
    /// Only this turn's events.
    pub turn: Option<TurnId>,
}

/// What an append wrote.
#[derive(Clone, Debug)]
pub struct Appended {
    /// The first event appended.
    pub first: Option<EventId>,
    /// How many were appended.
    pub count: usize,
    /// The conversation's head after the append.
    pub head: EventId,
    /// The events, when asked for.
    pub events: Vec<Event>,
}

/// One page of events.
#[derive(Clone, Debug)]
pub struct EventPage {
    /// The events, in the query's order.
    pub events: Vec<Event>,
    /// Set when more events may follow: pass it as `after` (ascending) or
    /// `before` (descending) to read the next page.
    pub next_cursor: Option<EventId>,
}

/// What a rewind did.
#[derive(Clone, Debug)]
pub struct RewindOutcome {
    /// The conversation after the rewind.
    pub conversation: Conversation,
    /// The `rewound` event recorded, or `None` when the head already was the
    /// target and nothing changed.
    pub event: Option<Event>,
}

const EVENT_COLUMNS: &str = "id, branch, seq, created_at, session, turn, body";

impl Inner {
    /// The branch's row, from the cache or the database.
    pub(crate) fn branch(&self, conn: &Connection, id: i64) -> Result<BranchInfo> {
        if let Some(info) = self
            .branches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(*info);
        }
        let info = conn
            .prepare_cached("SELECT conversation, parent, base_seq FROM branches WHERE id = ?1")?
            .query_row([id], |row| {
                Ok(BranchInfo {
                    conversation: id_column(row, 0, ConversationId::from_bytes)?,
                    parent: row.get(1)?,
                    base_seq: row.get(2)?,
                })
            })
            .optional()?
            .ok_or_else(|| Error::Corrupt(format!("branch {id} is missing")))?;
        self.branches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, info);
        Ok(info)
    }

    /// Creates a branch that continues `parent` after depth `base_seq`.
    pub(crate) fn create_branch(
        &self,
        conn: &Connection,
        conversation: ConversationId,
        parent: Option<i64>,
        base_seq: i64,
    ) -> Result<i64> {
        conn.prepare_cached(
            "INSERT INTO branches (conversation, parent, base_seq, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![conversation.as_bytes(), parent, base_seq, Timestamp::now().as_micros()])?;
        Ok(conn.last_insert_rowid())
    }

    /// The segments of the history ending at depth `head_seq` on `branch`,
    /// newest first. Empty segments are left out.
    pub(crate) fn chain(
        &self,
        conn: &Connection,
        branch: i64,
        head_seq: i64,
    ) -> Result<Vec<Segment>> {
        let mut segments = Vec::new();
        let mut current = Some(branch);
        let mut end = head_seq;
        while let Some(id) = current {
            let info = self.branch(conn, id)?;
            if info.base_seq < end {
                segments.push(Segment {
                    branch: id,
                    start: info.base_seq + 1,
                    end,
                });
            }
            end = end.min(info.base_seq);
            current = info.parent;
        }
        Ok(segments)
    }

    /// Where an event sits: its branch and depth.
    pub(crate) fn locate(&self, conn: &Connection, event: EventId) -> Result<Option<(i64, i64)>> {
        Ok(conn
            .prepare_cached("SELECT branch, seq FROM events WHERE id = ?1")?
            .query_row([event.as_bytes()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    /// The depth of `event` in the conversation's current history, or a
    /// not-found error naming the conversation.
    fn depth_in_history(
        &self,
        conn: &Connection,
        chain: &[Segment],
        conv: &Conversation,
        event: EventId,
    ) -> Result<i64> {
        match self.locate(conn, event)? {
            Some((branch, seq)) if in_chain(chain, branch, seq) => Ok(seq),
            _ => Err(not_in_history(conv, event)),
        }
    }

    /// Where `event` sits if the conversation can reach it: on its current
    /// history, or on the history of a branch it abandoned by rewinding (so
    /// that rewinding forward again is redo).
    pub(crate) fn reachable(
        &self,
        conn: &Connection,
        conv: &Conversation,
        event: EventId,
    ) -> Result<(i64, i64)> {
        let Some((branch, seq)) = self.locate(conn, event)? else {
            return Err(not_in_history(conv, event));
        };
        if self.branch(conn, branch)?.conversation == conv.id {
            return Ok((branch, seq));
        }
        let chain = self.chain(conn, conv.branch, conv.head_seq)?;
        if in_chain(&chain, branch, seq) {
            return Ok((branch, seq));
        }
        // An event of another conversation (a fork's source) that one of
        // this conversation's abandoned branches showed.
        let mut statement = conn.prepare_cached(
            "SELECT b.id, (SELECT max(seq) FROM events WHERE branch = b.id)
             FROM branches b WHERE b.conversation = ?1 AND b.id != ?2",
        )?;
        let owned: Vec<(i64, Option<i64>)> = statement
            .query_map(params![conv.id.as_bytes(), conv.branch], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (owned_branch, tip) in owned {
            let tip = tip.unwrap_or(self.branch(conn, owned_branch)?.base_seq);
            if in_chain(&self.chain(conn, owned_branch, tip)?, branch, seq) {
                return Ok((branch, seq));
            }
        }
        Err(not_in_history(conv, event))
    }

    /// Appends events at the conversation's head, keeping `conv` (and its
    /// row) up to date. The caller owns the transaction.
    pub(crate) fn append(
        &self,
        conn: &Connection,
        conv: &mut Conversation,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<Vec<Event>> {
        Ok(self
            .append_each(conn, conv, events.into_iter().map(Ok), true)?
            .events)
    }

    /// [`Inner::append`] of events made one at a time (so a large batch is
    /// never held twice); the first `Err` abandons the write. Without
    /// `keep`, the events are not returned (nor held, unless a listener
    /// wants them).
    pub(crate) fn append_each(
        &self,
        conn: &Connection,
        conv: &mut Conversation,
        events: impl IntoIterator<Item = Result<NewEvent>>,
        keep: bool,
    ) -> Result<Appended> {
        let wanted = self.wants(conv.id);
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (id, branch, seq, created_at, kind, session, turn, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut insert_value = conn.prepare_cached(
            "INSERT INTO history_values (ns, key, branch, seq, version, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let events = events.into_iter();
        let mut appended = Vec::with_capacity(if keep || wanted {
            events.size_hint().0
        } else {
            0
        });
        let mut first = None;
        let mut count = 0;
        for (index, new) in events.enumerate() {
            let new = new?;
            let body = serde_json::to_string(&new.data)
                .map_err(|err| Error::Invalid(format!("event {}: {err}", index + 1)))?;
            if exo_core::json::nests_deeper_than(body.as_bytes(), MAX_EVENT_NESTING) {
                return Err(Error::Invalid(format!(
                    "event {} nests deeper than {MAX_EVENT_NESTING} levels",
                    index + 1
                )));
            }
            if body.len() > MAX_EVENT_BODY_BYTES {
                return Err(Error::Invalid(format!(
                    "event {} is {} bytes, more than the {} MiB limit",
                    index + 1,
                    body.len(),
                    MAX_EVENT_BODY_BYTES >> 20
                )));
            }
            let id = EventId::new();
            let seq = conv.head_seq + 1;
            let created_at = Timestamp::now();
            insert.execute(params![
                id.as_bytes(),
                conv.branch,
                seq,
                created_at.as_micros(),
                new.data.kind_name(),
                new.session.as_ref().map(|s| s.as_bytes()),
                new.turn.as_ref().map(|t| t.as_bytes()),
                body,
            ])?;
            if let Some((ns, key, version, value)) = implied_history_value(&new.data) {
                insert_value.execute(params![ns, key, conv.branch, seq, version, value])?;
            }
            conv.head_seq = seq;
            conv.head = id;
            first.get_or_insert(id);
            count += 1;
            if !(keep || wanted) {
                continue;
            }
            appended.push(Event {
                id,
                conversation: conv.id,
                session: new.session,
                turn: new.turn,
                created_at,
                data: new.data,
            });
        }
        let appended = match (wanted, keep) {
            (true, true) => {
                self.note_appended(appended.clone());
                appended
            }
            (true, false) => {
                self.note_appended(appended);
                Vec::new()
            }
            (false, _) => appended,
        };
        conn.prepare_cached(
            "UPDATE conversations SET head_seq = ?2, head_event = ?3 WHERE id = ?1",
        )?
        .execute(params![
            conv.id.as_bytes(),
            conv.head_seq,
            conv.head.as_bytes()
        ])?;
        Ok(Appended {
            first,
            count,
            head: conv.head,
            events: appended,
        })
    }

    /// Reads one page of the conversation's history.
    pub(crate) fn query(
        &self,
        conn: &Connection,
        conv: &Conversation,
        query: &EventQuery,
    ) -> Result<EventPage> {
        let limit = match query.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let chain = self.chain(conn, conv.branch, conv.head_seq)?;
        let low = match query.after {
            Some(event) => self.depth_in_history(conn, &chain, conv, event)? + 1,
            None => 0,
        };
        let high = match query.before {
            Some(event) => self.depth_in_history(conn, &chain, conv, event)? - 1,
            None => conv.head_seq,
        };
        let mut sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE branch = ?1 AND seq BETWEEN ?2 AND ?3"
        );
        if query.kind.is_some() {
            sql.push_str(" AND kind = ?5");
        }
        if query.session.is_some() {
            sql.push_str(" AND session = ?6");
        }
        if query.turn.is_some() {
            sql.push_str(" AND turn = ?7");
        }
        sql.push_str(if query.desc {
            " ORDER BY seq DESC LIMIT ?4"
        } else {
            " ORDER BY seq ASC LIMIT ?4"
        });
        let mut statement = conn.prepare_cached(&sql)?;
        let mut events = Vec::new();
        // One more than the page, to know whether another page follows.
        let wanted = limit + 1;
        let ordered: Box<dyn Iterator<Item = &Segment>> = if query.desc {
            Box::new(chain.iter())
        } else {
            Box::new(chain.iter().rev())
        };
        for segment in ordered {
            let start = segment.start.max(low);
            let end = segment.end.min(high);
            if start > end {
                continue;
            }
            let conversation = self.branch(conn, segment.branch)?.conversation;
            let mut bound: Vec<(&str, &dyn rusqlite::ToSql)> = Vec::with_capacity(7);
            let remaining = (wanted - events.len()) as i64;
            bound.push(("?1", &segment.branch));
            bound.push(("?2", &start));
            bound.push(("?3", &end));
            bound.push(("?4", &remaining));
            let kind = query.kind.map(|k| k.as_str());
            if let Some(kind) = kind.as_ref() {
                bound.push(("?5", kind));
            }
            let session = query.session.map(|s| *s.as_bytes());
            if let Some(session) = session.as_ref() {
                bound.push(("?6", session));
            }
            let turn = query.turn.map(|t| *t.as_bytes());
            if let Some(turn) = turn.as_ref() {
                bound.push(("?7", turn));
            }
            let mut rows = statement.query(bound.as_slice())?;
            while let Some(row) = rows.next()? {
                events.push(event_from_row(row, conversation)?);
            }
            if events.len() >= wanted {
                break;
            }
        }
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|event| event.id)
        } else {
            None
        };
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    /// Reads one event the conversation can reach.
    pub(crate) fn event(
        &self,
        conn: &Connection,
        conv: &Conversation,
        id: EventId,
    ) -> Result<Event> {
        let (branch, seq) = self.reachable(conn, conv, id)?;
        self.event_at(conn, branch, seq)
    }

    /// Reads the event at a position known to exist.
    pub(crate) fn event_at(&self, conn: &Connection, branch: i64, seq: i64) -> Result<Event> {
        let conversation = self.branch(conn, branch)?.conversation;
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE branch = ?1 AND seq = ?2");
        conn.prepare_cached(&sql)?
            .query_row([branch, seq], |row| Ok(event_from_row(row, conversation)))
            .optional()?
            .ok_or_else(|| Error::Corrupt(format!("no event at branch {branch} seq {seq}")))?
    }

    /// Finds the newest value for `(ns, key)` in a history.
    pub(crate) fn history_value(
        &self,
        conn: &Connection,
        chain: &[Segment],
        ns: &str,
        key: &str,
    ) -> Result<Option<HistoryValue>> {
        let mut statement = conn.prepare_cached(
            "SELECT seq, version, value FROM history_values
             WHERE ns = ?1 AND key = ?2 AND branch = ?3 AND seq BETWEEN ?4 AND ?5
             ORDER BY seq DESC LIMIT 1",
        )?;
        for segment in chain {
            let found = statement
                .query_row(
                    params![ns, key, segment.branch, segment.start, segment.end],
                    |row| {
                        Ok(HistoryValue {
                            key: key.to_string(),
                            branch: segment.branch,
                            seq: row.get(0)?,
                            version: row.get(1)?,
                            value: row.get(2)?,
                        })
                    },
                )
                .optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Every value set for `(ns, key)` in a history, oldest first.
    pub(crate) fn history_values_of(
        &self,
        conn: &Connection,
        chain: &[Segment],
        ns: &str,
        key: &str,
    ) -> Result<Vec<HistoryValue>> {
        let mut statement = conn.prepare_cached(
            "SELECT seq, version, value FROM history_values
             WHERE ns = ?1 AND key = ?2 AND branch = ?3 AND seq BETWEEN ?4 AND ?5
             ORDER BY seq ASC",
        )?;
        let mut values = Vec::new();
        for segment in chain.iter().rev() {
            let rows = statement.query_map(
                params![ns, key, segment.branch, segment.start, segment.end],
                |row| {
                    Ok(HistoryValue {
                        key: key.to_string(),
                        branch: segment.branch,
                        seq: row.get(0)?,
                        version: row.get(1)?,
                        value: row.get(2)?,
                    })
                },
            )?;
            for value in rows {
                values.push(value?);
            }
        }
        Ok(values)
    }

    /// The newest value of every key in `ns` as of the history's head,
    /// deleted keys left out, sorted by key.
    pub(crate) fn current_values(
        &self,
        conn: &Connection,
        chain: &[Segment],
        ns: &str,
    ) -> Result<Vec<HistoryValue>> {
        let mut statement = conn.prepare_cached(
            "SELECT key, seq, version, value FROM history_values
             WHERE ns = ?1 AND branch = ?2 AND seq BETWEEN ?3 AND ?4",
        )?;
        let mut newest: std::collections::BTreeMap<String, HistoryValue> = Default::default();
        for segment in chain {
            let rows = statement.query_map(
                params![ns, segment.branch, segment.start, segment.end],
                |row| {
                    Ok(HistoryValue {
                        key: row.get(0)?,
                        branch: segment.branch,
                        seq: row.get(1)?,
                        version: row.get(2)?,
                        value: row.get(3)?,
                    })
                },
            )?;
            for value in rows {
                let value = value?;
                match newest.get(&value.key) {
                    Some(existing) if existing.seq >= value.seq => {}
                    _ => {
                        newest.insert(value.key.clone(), value);
                    }
                }
            }
        }
        Ok(newest
            .into_values()
            .filter(|value| value.value.is_some())
            .collect())
    }
}

/// A row of `history_values`.
#[derive(Clone, Debug)]
pub(crate) struct HistoryValue {
    pub key: String,
    pub branch: i64,
    pub seq: i64,
    pub version: Option<i64>,
    /// `None` records a deletion (or, for a compaction, means nothing:
    /// see [`COMPACTION_NS`]).
    pub value: Option<String>,
}

/// The `history_values` row an event implies, if any.
fn implied_history_value(
    data: &EventData,
) -> Option<(&'static str, String, Option<i64>, Option<String>)> {
    match data {
        EventData::ArtifactWritten {
            path,
            version,
            sha256,
            ..
        } => Some((
            "artifact",
            path.clone(),
            Some(*version as i64),
            Some(sha256.clone()),
        )),
        EventData::SecretSet { name, secret_id } => {
            Some(("secret", name.clone(), None, Some(secret_id.to_string())))
        }
        EventData::SecretDeleted { name } => Some(("secret", name.clone(), None, None)),
        EventData::BindingSet { binding } => Some((
            "binding",
            binding_key(binding.kind(), binding.name()),
            None,
            Some(serde_json::to_string(binding).expect("bindings serialize")),
        )),
        EventData::BindingDeleted { binding_kind, name } => {
            Some(("binding", binding_key(*binding_kind, name), None, None))
        }
        // Only where it sits matters: the event is read from there.
        data if data.is_compaction() => Some((
            COMPACTION_NS,
            exo_core::COMPACTION_TYPE.to_owned(),
            None,
            None,
        )),
        EventData::Custom { custom_type, .. } if custom_type == SANDBOX_SNAPSHOT_TYPE => {
            Some((SANDBOX_NS, SANDBOX_SNAPSHOT_TYPE.to_owned(), None, None))
        }
        _ => None,
    }
}

/// The `history_values` namespace that indexes compactions. Its rows carry
/// no value: the compaction is the event at their `(branch, seq)`.
pub(crate) const COMPACTION_NS: &str = "compaction";

/// The `custom` type of a docker sandbox's snapshot (spec/sandboxes.md).
pub const SANDBOX_SNAPSHOT_TYPE: &str = "sandbox.snapshotted";

/// The `history_values` namespace that indexes sandbox snapshots, as
/// [`COMPACTION_NS`] does compactions.
pub(crate) const SANDBOX_NS: &str = "sandbox";

/// The `history_values` key of a conversation-scoped binding.
pub(crate) fn binding_key(kind: exo_core::BindingKind, name: &str) -> String {
    format!("{kind}:{name}")
}

fn in_chain(chain: &[Segment], branch: i64, seq: i64) -> bool {
    chain
        .iter()
        .any(|segment| segment.branch == branch && (segment.start..=segment.end).contains(&seq))
}

fn not_in_history(conv: &Conversation, event: EventId) -> Error {
    Error::NotFound {
        what: "event",
        key: format!("{event} in conversation {}", conv.slug),
    }
}

fn event_from_row(row: &rusqlite::Row<'_>, conversation: ConversationId) -> Result<Event> {
    let id = id_column(row, 0, EventId::from_bytes)?;
    let body: String = row.get(6)?;
    // Tolerant: a kind or field this exo does not know (a newer exo's, an
    // executor's) is read raw, not as damage; only a body that is no
    // event at all is.
    let data = EventData::from_json(&body)
        .map_err(|err| Error::Corrupt(format!("event {id} cannot be decoded: {err}")))?;
    Ok(Event {
        id,
        conversation,
        session: opt_id_column(row, 4, SessionId::from_bytes)?,
        turn: opt_id_column(row, 5, TurnId::from_bytes)?,
        created_at: Timestamp(row.get(3)?),
        data,
    })
}

impl Store {
    /// Appends caller events (message, tool_call, tool_result, error,
    /// custom) as one atomic batch. With `expected_head`, fails with
    /// [`Error::HeadConflict`] if another writer moved the head.
    pub fn append(
        &self,
        agent: &str,
        conversation: &str,
        events: Vec<EventData>,
        expected_head: Option<EventId>,
    ) -> Result<Vec<Event>> {
        for (index, data) in events.iter().enumerate() {
            check_appendable(index, data)?;
        }
        Ok(self
            .append_each(
                agent,
                conversation,
                events.into_iter().map(Ok),
                expected_head,
                true,
            )?
            .events)
    }

    /// [`Store::append`] of events made one at a time, inside the write:
    /// a large batch read from a caller is never held twice (as input and
    /// as events). The first `Err` (or event that may not be appended)
    /// abandons the whole batch.
    pub fn append_each(
        &self,
        agent: &str,
        conversation: &str,
        events: impl IntoIterator<Item = Result<EventData>>,
        expected_head: Option<EventId>,
        keep: bool,
    ) -> Result<Appended> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.write(|tx| {
            let mut conv = self.inner.load_conversation(tx, conv.id)?;
            check_head(&conv, expected_head)?;
            let events = events.into_iter().enumerate().map(|(index, data)| {
                let data = data?;
                check_appendable(index, &data)?;
                Ok(NewEvent::plain(data))
            });
            let appended = self.inner.append_each(tx, &mut conv, events, keep)?;
            if appended.count == 0 {
                return Err(Error::Invalid("events must not be empty".to_string()));
            }
            Ok(appended)
        })
    }

    /// Reads a page of the conversation's history.
    pub fn events(&self, agent: &str, conversation: &str, query: &EventQuery) -> Result<EventPage> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            self.inner.query(tx, &conv, query)
        })
    }

    /// Reads the whole history after `after` (from the start when `None`)
    /// and calls `subscribe` before any later write of this handle can
    /// commit. With a [`CommitListener`](crate::CommitListener) that
    /// `subscribe` hooks into, a watcher sees every event exactly once: the
    /// ones returned here, then the ones the listener reports.
    pub fn tail_and_subscribe<T>(
        &self,
        conversation: ConversationId,
        after: Option<EventId>,
        subscribe: impl FnOnce() -> T,
    ) -> Result<(Vec<Event>, T)> {
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conversation)?;
            let mut events = Vec::new();
            let mut query = EventQuery {
                after,
                limit: MAX_PAGE,
                ..EventQuery::default()
            };
            loop {
                let page = self.inner.query(tx, &conv, &query)?;
                events.extend(page.events);
                match page.next_cursor {
                    Some(cursor) => query.after = Some(cursor),
                    None => break,
                }
            }
            Ok((events, subscribe()))
        })
    }

    /// The newest event of `kind` in the history that ends at `at` (the
    /// head when `None`): for `at` on an abandoned branch, that branch's
    /// history. "The workspace snapshot in effect at event E" is this with
    /// `kind = workspace_snapshot`.
    pub fn latest_at(
        &self,
        agent: &str,
        conversation: &str,
        at: Option<EventId>,
        kind: EventKind,
    ) -> Result<Option<Event>> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            let (branch, seq) = match at {
                Some(at) => self.inner.reachable(tx, &conv, at)?,
                None => (conv.branch, conv.head_seq),
            };
            let chain = self.inner.chain(tx, branch, seq)?;
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE branch = ?1 AND kind = ?2 AND seq BETWEEN ?3 AND ?4
                 ORDER BY seq DESC LIMIT 1"
            ))?;
            for segment in &chain {
                let conversation = self.inner.branch(tx, segment.branch)?.conversation;
                let found = statement
                    .query_row(
                        params![segment.branch, kind.as_str(), segment.start, segment.end],
                        |row| Ok(event_from_row(row, conversation)),
                    )
                    .optional()?;
                if let Some(event) = found {
                    return event.map(Some);
                }
            }
            Ok(None)
        })
    }

    /// The newest compaction (`custom` of type
    /// [`exo_core::COMPACTION_TYPE`]) on the conversation's current history,
    /// before the event `before` (exclusive) or up to the head. A compaction
    /// on a branch the conversation rewound away from is not on its history
    /// and is not found. Cost: one index lookup per history segment, however
    /// long the history.
    pub fn latest_compaction(
        &self,
        agent: &str,
        conversation: &str,
        before: Option<EventId>,
    ) -> Result<Option<Event>> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            let mut chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
            if let Some(before) = before {
                let below = self.inner.depth_in_history(tx, &chain, &conv, before)? - 1;
                chain.retain_mut(|segment| {
                    segment.end = segment.end.min(below);
                    segment.start <= segment.end
                });
            }
            let found =
                self.inner
                    .history_value(tx, &chain, COMPACTION_NS, exo_core::COMPACTION_TYPE)?;
            found
                .map(|value| self.inner.event_at(tx, value.branch, value.seq))
                .transpose()
        })
    }

    /// The newest sandbox snapshot (`custom` of type
    /// [`SANDBOX_SNAPSHOT_TYPE`]) on the conversation's current history,
    /// from the index: what its container is restored from.
    pub fn latest_sandbox_snapshot(
        &self,
        agent: &str,
        conversation: &str,
    ) -> Result<Option<Event>> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            let chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
            let found = self
                .inner
                .history_value(tx, &chain, SANDBOX_NS, SANDBOX_SNAPSHOT_TYPE)?;
            found
                .map(|value| self.inner.event_at(tx, value.branch, value.seq))
                .transpose()
        })
    }

    /// Records an event exo makes on the conversation's behalf outside a
    /// turn. Only `workspace_snapshot` is accepted: every other kind exo
    /// records has its own operation.
    pub fn record(&self, agent: &str, conversation: &str, data: EventData) -> Result<Event> {
        check_recordable(&data)?;
        let conv = self.conversation(agent, conversation)?;
        self.inner.write(|tx| {
            let mut conv = self.inner.load_conversation(tx, conv.id)?;
            let mut events = self.inner.append(tx, &mut conv, [NewEvent::plain(data)])?;
            Ok(events.pop().expect("one event appended"))
        })
    }

    /// The images of every sandbox snapshot a live conversation can still
    /// reach (on its branches and those their histories continue): what
    /// `exo gc` must keep.
    pub fn reachable_sandbox_images(&self) -> Result<Vec<String>> {
        self.inner.read(|tx| {
            let mut statement = tx.prepare_cached(
                "WITH RECURSIVE live(id) AS (
                     SELECT b.id FROM branches b JOIN conversations c ON c.id = b.conversation
                     WHERE c.deleted_at IS NULL
                     UNION
                     SELECT b.parent FROM branches b JOIN live ON b.id = live.id WHERE b.parent IS NOT NULL
                 )
                 SELECT e.body FROM history_values h
                 JOIN events e ON e.branch = h.branch AND e.seq = h.seq
                 WHERE h.ns = ?1 AND h.branch IN live",
            )?;
            let bodies = statement.query_map([SANDBOX_NS], |row| row.get::<_, String>(0))?;
            let mut found = Vec::new();
            for body in bodies {
                if let Ok(EventData::Custom { payload, .. }) = exo_core::json::from_str(&body?) {
                    if let Some(image) = payload["image"].as_str() {
                        found.push(image.to_owned());
                    }
                }
            }
            found.sort();
            found.dedup();
            Ok(found)
        })
    }

    /// Every workspace snapshot (workspace, commit) that a live
    /// conversation can still reach: on its branches and on the branches
    /// their histories continue. What `exo gc` must keep.
    pub fn reachable_snapshots(&self) -> Result<Vec<(String, String)>> {
        self.inner.read(|tx| {
            let mut statement = tx.prepare_cached(
                "WITH RECURSIVE live(id) AS (
                     SELECT b.id FROM branches b JOIN conversations c ON c.id = b.conversation
                     WHERE c.deleted_at IS NULL
                     UNION
                     SELECT b.parent FROM branches b JOIN live ON b.id = live.id WHERE b.parent IS NOT NULL
                 )
                 SELECT DISTINCT body FROM events WHERE kind = 'workspace_snapshot' AND branch IN live",
            )?;
            let bodies = statement.query_map([], |row| row.get::<_, String>(0))?;
            let mut found = Vec::new();
            for body in bodies {
                if let Ok(EventData::WorkspaceSnapshot { workspace, commit, .. }) = exo_core::json::from_str(&body?) {
                    found.push((workspace, commit));
                }
            }
            found.sort();
            found.dedup();
            Ok(found)
        })
    }

    /// The newest workspace snapshot whose commit starts with `prefix`
    /// (lowercase hex) among the events of the conversation's own branches,
    /// those a rewind left behind included: a snapshot the conversation
    /// took, wherever its history has moved since. Its `(commit, tree)`.
    pub fn snapshot_on_any_branch(
        &self,
        agent: &str,
        conversation: &str,
        prefix: &str,
    ) -> Result<Option<(String, String)>> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let mut statement = tx.prepare_cached(
                "SELECT e.body FROM events e JOIN branches b ON b.id = e.branch
                 WHERE b.conversation = ?1 AND e.kind = 'workspace_snapshot'
                 ORDER BY e.rowid DESC",
            )?;
            let bodies =
                statement.query_map([conv.id.as_bytes()], |row| row.get::<_, String>(0))?;
            for body in bodies {
                if let Ok(EventData::WorkspaceSnapshot { commit, tree, .. }) =
                    exo_core::json::from_str(&body?)
                {
                    if commit.starts_with(prefix) {
                        return Ok(Some((commit, tree)));
                    }
                }
            }
            Ok(None)
        })
    }

    /// The commit of the newest `workspace_snapshot` recorded for
    /// `workspace`, by any conversation, on any branch: what exo last knew
    /// the files to be. A restore refuses to overwrite anything that
    /// differs from it.
    pub fn latest_workspace_snapshot(&self, workspace: &str) -> Result<Option<String>> {
        self.inner.read(|tx| {
            let mut statement = tx.prepare_cached(
                "SELECT json_extract(body, '$.commit') FROM events
                 WHERE kind = 'workspace_snapshot' AND json_extract(body, '$.workspace') = ?1
                 ORDER BY rowid DESC LIMIT 1",
            )?;
            Ok(statement
                .query_row([workspace], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
    }

    /// Every workspace that has ever been snapshotted in this store.
    pub fn snapshot_workspaces(&self) -> Result<Vec<String>> {
        self.inner.read(|tx| {
            let mut statement =
                tx.prepare_cached("SELECT DISTINCT json_extract(body, '$.workspace') FROM events WHERE kind = 'workspace_snapshot'")?;
            let rows = statement.query_map([], |row| row.get::<_, Option<String>>(0))?;
            let mut workspaces: Vec<String> = rows.filter_map(|row| row.ok().flatten()).collect();
            workspaces.sort();
            Ok(workspaces)
        })
    }

    /// Reads one event the conversation can reach: on its history or on a
    /// branch it rewound away from.
    pub fn event(&self, agent: &str, conversation: &str, id: EventId) -> Result<Event> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            self.inner.event(tx, &conv, id)
        })
    }

    /// Moves the conversation's head to `to`, an event on its history or on
    /// a branch it rewound away from (redo). Nothing is deleted: later
    /// appends start a new branch, and a `rewound` event after `to` records
    /// the move. Refused while a turn is in progress.
    pub fn rewind(
        &self,
        agent: &str,
        conversation: &str,
        to: EventId,
        expected_head: Option<EventId>,
    ) -> Result<RewindOutcome> {
        self.rewind_with(agent, conversation, to, expected_head, None)
    }

    /// [`Store::rewind`], recording in the `rewound` event the workspace
    /// snapshot the files were restored to.
    pub fn rewind_with(
        &self,
        agent: &str,
        conversation: &str,
        to: EventId,
        expected_head: Option<EventId>,
        snapshot: Option<String>,
    ) -> Result<RewindOutcome> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.write(|tx| {
            let mut conv = self.inner.load_conversation(tx, conv.id)?;
            check_head(&conv, expected_head)?;
            if let Some(turn) = conv.open_turn {
                return Err(Error::Busy(format!(
                    "turn {turn} is in progress in conversation {}; finish it before rewinding",
                    conv.slug
                )));
            }
            let (branch, seq) = self.inner.reachable(tx, &conv, to)?;
            if to == conv.head {
                return Ok(RewindOutcome {
                    conversation: conv,
                    event: None,
                });
            }
            let from = conv.head;
            let new_branch = self.inner.create_branch(tx, conv.id, Some(branch), seq)?;
            conv.branch = new_branch;
            conv.head_seq = seq;
            conv.head = to;
            tx.prepare_cached("UPDATE conversations SET branch = ?2 WHERE id = ?1")?
                .execute(params![conv.id.as_bytes(), new_branch])?;
            let mut recorded = self.inner.append(
                tx,
                &mut conv,
                [NewEvent::plain(EventData::Rewound {
                    from_event: from,
                    to_event: to,
                    snapshot,
                })],
            )?;
            Ok(RewindOutcome {
                conversation: conv,
                event: recorded.pop(),
            })
        })
    }
}

pub(crate) fn check_head(conv: &Conversation, expected: Option<EventId>) -> Result<()> {
    match expected {
        Some(expected) if expected != conv.head => Err(Error::HeadConflict {
            expected,
            actual: conv.head,
        }),
        _ => Ok(()),
    }
}

/// Events exo records on a caller's behalf through [`Store::record`] and
/// the `_with` turn operations.
pub(crate) fn check_recordable(data: &EventData) -> Result<()> {
    match data {
        EventData::WorkspaceSnapshot { .. } => Ok(()),
        other => Err(Error::Invalid(format!(
            "kind {} cannot be recorded this way",
            other.kind_name()
        ))),
    }
}

pub(crate) fn check_appendable(index: usize, data: &EventData) -> Result<()> {
    if let EventData::Other(raw) = data {
        return Err(Error::Invalid(format!(
            "event {}: a {:?} event of a kind or shape this exo does not know cannot be appended",
            index + 1,
            raw.kind()
        )));
    }
    if !data.kind().is_appendable() {
        return Err(Error::Invalid(format!(
            "event {}: kind {} is recorded by exo itself and cannot be appended",
            index + 1,
            data.kind_name()
        )));
    }
    data.validate()
        .map_err(|err| Error::Invalid(format!("event {}: {err}", index + 1)))
}
