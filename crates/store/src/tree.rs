//! The shape of a conversation's history, for drawing it: the current line,
//! the lines its rewinds left behind, where each one leaves another, and the
//! forks taken from any of their events.
//!
//! A line here is what a person sees as one branch: a run of events, oldest
//! first, each continuing the one before. It may span several stored
//! branches (the current line runs through every branch of the head's chain;
//! an abandoned line may continue through the branch of a redo that was
//! abandoned in turn). Lines are summarised into [`Step`]s, so a tree costs
//! its turns and markers, not its events:
//!
//! - a turn (the events carrying its id, with the `session_started` right
//!   before it and the `session_ended` right after it when they belong to
//!   its session) is one step;
//! - `conversation_created`, `rewound` and `forked` are steps of their own;
//! - the other events in a row are one step.
//!
//! A step never spans an event another line or a fork leaves from: it ends
//! there, so every such event is the `last` of a step.
//!
//! Cost: one index range scan per stored branch shown (events are read
//! without their bodies, but for the first text of messages and the fields
//! of markers), plus one chain walk per branch the conversation owns and one
//! pass over the conversations that are forks.

use std::collections::{BTreeMap, HashMap, HashSet};

use exo_core::{ConversationId, EventData, EventId, EventKind, SessionId, TurnId, TurnStatus};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::identity::Conversation;
use crate::{id_column, opt_id_column, Inner, Store};

/// The most characters of a prompt or message a step keeps (its first line).
pub const SUMMARY_CHARS: usize = 72;

/// A conversation's history as a tree of lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    /// The conversation.
    pub conversation: Conversation,
    /// Its agent's slug.
    pub agent: String,
    /// The lines: the current one first, then the abandoned ones in the
    /// order they were left behind.
    pub lines: Vec<Line>,
    /// Live conversations forked from an event of one of the lines, oldest
    /// first.
    pub forks: Vec<Fork>,
}

/// One line of the history.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Whether it is the current history (ending at the head).
    pub current: bool,
    /// Its newest event: the conversation's head, or for an abandoned line
    /// the event that rewinding to is redo.
    pub head: EventId,
    /// The event it continues from, on the line `parent`; `None` for the
    /// current line, which starts at `conversation_created`.
    pub from: Option<EventId>,
    /// The index of the line holding `from`.
    pub parent: Option<usize>,
    /// Its steps, oldest first. Never empty.
    pub steps: Vec<Step>,
}

/// A summary of consecutive events of a line.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Its first event.
    pub first: EventId,
    /// Its last event.
    pub last: EventId,
    /// How many events it covers.
    pub events: u64,
    /// What they are.
    pub kind: StepKind,
}

/// What a step covers.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// The conversation's first event.
    ConversationCreated,
    /// The `forked` event that starts a fork's own history.
    Forked {
        /// The source conversation.
        from: ConversationInfo,
        /// The event forked at.
        from_event: EventId,
    },
    /// A `rewound` event.
    Rewound {
        /// The head before the rewind.
        from_event: EventId,
        /// The event the head moved to.
        to_event: EventId,
    },
    /// A turn, or the part of it on this line.
    Turn {
        /// The turn.
        turn: TurnId,
        /// The first line of the user's message, truncated to
        /// [`SUMMARY_CHARS`].
        prompt: Option<String>,
        /// How it ended; `None` when its `turn_ended` is not in the step (it
        /// is running, or the line leaves it before its end).
        status: Option<TurnStatus>,
        /// How many tool calls it made.
        tool_calls: u64,
    },
    /// Other events in a row.
    Events {
        /// Their kinds, each once, in the order first seen.
        kinds: Vec<String>,
        /// The first line of the first message (a user's if there is one),
        /// truncated to [`SUMMARY_CHARS`].
        text: Option<String>,
    },
}

/// A conversation other than the one drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationInfo {
    /// Its id.
    pub id: ConversationId,
    /// Its agent's slug.
    pub agent: String,
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Whether it was deleted (its slug may have been taken since).
    pub deleted: bool,
}

/// A fork taken from an event of the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Fork {
    /// The fork.
    pub conversation: ConversationInfo,
    /// The event it was forked at.
    pub at: EventId,
    /// The index of the line holding `at`.
    pub line: usize,
}

impl Store {
    /// The tree of the conversation's history: its current line, the lines
    /// it rewound away from (and, for a fork, what it shares with its
    /// source), and the forks taken from them. Read-only but for closing a
    /// turn whose process died, as every open does.
    pub fn tree(&self, agent: &str, conversation: &str) -> Result<Tree> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.read(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            self.inner.tree(tx, conv)
        })
    }
}

/// A run of one stored branch's events: depths `start..=end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    branch: i64,
    start: i64,
    end: i64,
}

impl Run {
    fn holds(&self, (branch, seq): (i64, i64)) -> bool {
        self.branch == branch && (self.start..=self.end).contains(&seq)
    }
}

/// A line before it is read: its runs, oldest first, and where it leaves
/// its parent.
struct Layout {
    runs: Vec<Run>,
    from: Option<((i64, i64), usize)>,
}

/// A fork found before the lines are read: which, where, on which line.
struct ForkAt {
    fork: ConversationId,
    at: (i64, i64),
    line: usize,
}

impl Inner {
    fn tree(&self, conn: &Connection, conv: Conversation) -> Result<Tree> {
        let agent: String = conn
            .prepare_cached("SELECT slug FROM agents WHERE id = ?1")?
            .query_row([conv.agent.as_bytes()], |row| row.get(0))
            .optional()?
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "the agent of conversation {} is missing",
                    conv.slug
                ))
            })?;

        // Every event the conversation can reach lies on the chain of its
        // head or of one of its branches' tips. Each chain's segment of a
        // branch starts at the branch's base, so the union is, per branch,
        // base + 1 up to the furthest end.
        let current: Vec<Run> = self
            .chain(conn, conv.branch, conv.head_seq)?
            .into_iter()
            .rev()
            .map(|segment| Run {
                branch: segment.branch,
                start: segment.start,
                end: segment.end,
            })
            .collect();
        let mut reach: BTreeMap<i64, Run> = current.iter().map(|run| (run.branch, *run)).collect();
        let mut owned = conn.prepare_cached(
            "SELECT b.id, (SELECT max(seq) FROM events WHERE branch = b.id)
             FROM branches b WHERE b.conversation = ?1 ORDER BY b.id",
        )?;
        let tips: Vec<(i64, Option<i64>)> = owned
            .query_map([conv.id.as_bytes()], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (branch, tip) in tips {
            let Some(tip) = tip else { continue };
            for segment in self.chain(conn, branch, tip)? {
                reach
                    .entry(segment.branch)
                    .and_modify(|run| run.end = run.end.max(segment.end))
                    .or_insert(Run {
                        branch: segment.branch,
                        start: segment.start,
                        end: segment.end,
                    });
            }
        }

        // The current line, then what each branch holds beyond it, in the
        // order the branches were made (a parent before its children).
        let on_current: HashMap<i64, i64> =
            current.iter().map(|run| (run.branch, run.end)).collect();
        let mut lines = vec![Layout {
            runs: current,
            from: None,
        }];
        for (&branch, run) in &reach {
            let info = self.branch(conn, branch)?;
            let shown = on_current.get(&branch).copied().unwrap_or(info.base_seq);
            if shown >= run.end {
                continue;
            }
            let off = Run {
                branch,
                start: shown + 1,
                end: run.end,
            };
            // The event before the run's first: the branch's own, or where
            // the branch leaves its parent.
            let attach = if shown > info.base_seq {
                (branch, shown)
            } else {
                match info.parent {
                    Some(parent) => (parent, info.base_seq),
                    None => {
                        return Err(Error::Corrupt(format!(
                            "branch {branch} has no parent and does not start its conversation's history"
                        )))
                    }
                }
            };
            let Some(line) = lines
                .iter()
                .position(|line| line.runs.iter().any(|run| run.holds(attach)))
            else {
                return Err(Error::Corrupt(format!(
                    "branch {branch} continues an event no history of its conversation holds"
                )));
            };
            // A run that goes on from the newest event of an abandoned line
            // (a redo, abandoned in turn) is more of that line.
            let extends = line != 0
                && lines[line]
                    .runs
                    .last()
                    .is_some_and(|last| (last.branch, last.end) == attach);
            if extends {
                lines[line].runs.push(off);
            } else {
                lines.push(Layout {
                    runs: vec![off],
                    from: Some((attach, line)),
                });
            }
        }

        let forks = self.forks_of(conn, &conv, &reach, &lines)?;

        // Every event a line or a fork leaves from ends a step.
        let mut splits: HashMap<(i64, i64), Option<EventId>> = HashMap::new();
        for line in &lines {
            if let Some((at, _)) = line.from {
                splits.insert(at, None);
            }
        }
        for fork in &forks {
            splits.insert(fork.at, None);
        }

        let mut summarizer = Summarizer {
            inner: self,
            conn,
            splits: &mut splits,
            sources: HashMap::new(),
        };
        let mut steps = Vec::with_capacity(lines.len());
        for line in &lines {
            let mut line_steps = Vec::new();
            for run in &line.runs {
                summarizer.run(*run, &mut line_steps)?;
            }
            steps.push(line_steps);
        }

        let mut tree_lines = Vec::with_capacity(lines.len());
        for (index, (layout, steps)) in lines.iter().zip(steps).enumerate() {
            let Some(head) = steps.last().map(|step| step.last) else {
                return Err(Error::Corrupt(format!(
                    "a line of conversation {} holds no events",
                    conv.slug
                )));
            };
            let (from, parent) = match layout.from {
                Some((at, parent)) => (Some(split_id(&splits, at)?), Some(parent)),
                None => (None, None),
            };
            tree_lines.push(Line {
                current: index == 0,
                head,
                from,
                parent,
                steps,
            });
        }
        let mut tree_forks = Vec::with_capacity(forks.len());
        for fork in forks {
            tree_forks.push(Fork {
                conversation: self.conversation_info(conn, fork.fork)?,
                at: split_id(&splits, fork.at)?,
                line: fork.line,
            });
        }
        Ok(Tree {
            conversation: conv,
            agent,
            lines: tree_lines,
            forks: tree_forks,
        })
    }

    /// The live forks of the conversations whose events the tree shows,
    /// taken at one of those events, oldest first.
    fn forks_of(
        &self,
        conn: &Connection,
        conv: &Conversation,
        reach: &BTreeMap<i64, Run>,
        lines: &[Layout],
    ) -> Result<Vec<ForkAt>> {
        let mut owners = HashSet::new();
        for &branch in reach.keys() {
            owners.insert(self.branch(conn, branch)?.conversation);
        }
        // No index leads from an event to its forks; forks are few, and
        // every one is a conversations row, so they are read in one pass.
        let mut statement = conn.prepare_cached(
            "SELECT id, forked_from, fork_event FROM conversations
             WHERE forked_from IS NOT NULL AND deleted_at IS NULL ORDER BY id",
        )?;
        let candidates: Vec<(ConversationId, Option<ConversationId>, Option<EventId>)> = statement
            .query_map([], |row| {
                Ok((
                    id_column(row, 0, ConversationId::from_bytes)?,
                    opt_id_column(row, 1, ConversationId::from_bytes)?,
                    opt_id_column(row, 2, EventId::from_bytes)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut forks = Vec::new();
        for (fork, source, at) in candidates {
            let (Some(source), Some(at)) = (source, at) else {
                continue;
            };
            if fork == conv.id || !owners.contains(&source) {
                continue;
            }
            let Some(position) = self.locate(conn, at)? else {
                continue;
            };
            if !reach
                .get(&position.0)
                .is_some_and(|run| run.holds(position))
            {
                continue;
            }
            if let Some(line) = lines
                .iter()
                .position(|line| line.runs.iter().any(|run| run.holds(position)))
            {
                forks.push(ForkAt {
                    fork,
                    at: position,
                    line,
                });
            }
        }
        Ok(forks)
    }

    /// A conversation's names, deleted or not.
    fn conversation_info(&self, conn: &Connection, id: ConversationId) -> Result<ConversationInfo> {
        conn.prepare_cached(
            "SELECT c.slug, c.name, a.slug, c.deleted_at IS NOT NULL
             FROM conversations c JOIN agents a ON a.id = c.agent WHERE c.id = ?1",
        )?
        .query_row([id.as_bytes()], |row| {
            Ok(ConversationInfo {
                id,
                slug: row.get(0)?,
                name: row.get(1)?,
                agent: row.get(2)?,
                deleted: row.get(3)?,
            })
        })
        .optional()?
        .ok_or_else(|| Error::Corrupt(format!("conversation {id} is missing")))
    }
}

fn split_id(splits: &HashMap<(i64, i64), Option<EventId>>, at: (i64, i64)) -> Result<EventId> {
    splits
        .get(&at)
        .copied()
        .flatten()
        .ok_or_else(|| Error::Corrupt(format!("no event at branch {} seq {}", at.0, at.1)))
}

/// What the summary needs of an event: its place and kind, and the few
/// fields that show (read by SQLite, so bodies never reach this process).
struct Row {
    id: EventId,
    seq: i64,
    kind: String,
    session: Option<SessionId>,
    turn: Option<TurnId>,
    role: Option<String>,
    text: Option<String>,
    status: Option<String>,
    body: Option<String>,
}

/// The events' columns a summary reads; a message's text is cut before it
/// leaves SQLite, as only its first line shows.
const ROW_COLUMNS: &str = "id, seq, kind, session, turn,
    CASE WHEN kind = 'message' THEN json_extract(body, '$.role') END,
    CASE WHEN kind = 'message' AND json_extract(body, '$.content[0].type') = 'text'
         THEN substr(json_extract(body, '$.content[0].text'), 1, 1024) END,
    CASE WHEN kind = 'turn_ended' THEN json_extract(body, '$.status') END,
    CASE WHEN kind IN ('rewound', 'forked') THEN body END";

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: id_column(row, 0, EventId::from_bytes)?,
        seq: row.get(1)?,
        kind: row.get(2)?,
        session: opt_id_column(row, 3, SessionId::from_bytes)?,
        turn: opt_id_column(row, 4, TurnId::from_bytes)?,
        role: row.get(5)?,
        text: row.get(6)?,
        status: row.get(7)?,
        body: row.get(8)?,
    })
}

/// Reads runs of events into steps.
struct Summarizer<'a> {
    inner: &'a Inner,
    conn: &'a Connection,
    /// The events steps end at, with their ids once read.
    splits: &'a mut HashMap<(i64, i64), Option<EventId>>,
    /// The conversations `forked` steps name, by id.
    sources: HashMap<ConversationId, ConversationInfo>,
}

/// A step being read.
struct Open {
    first: EventId,
    last: EventId,
    events: u64,
    kind: OpenKind,
}

enum OpenKind {
    Turn {
        turn: TurnId,
        session: Option<SessionId>,
        prompt: Option<String>,
        status: Option<TurnStatus>,
        tool_calls: u64,
    },
    Events {
        kinds: Vec<String>,
        user_text: Option<String>,
        any_text: Option<String>,
    },
}

impl Open {
    fn new(row: &Row, kind: OpenKind) -> Open {
        Open {
            first: row.id,
            last: row.id,
            events: 0,
            kind,
        }
    }

    fn events(row: &Row) -> Open {
        Open::new(
            row,
            OpenKind::Events {
                kinds: Vec::new(),
                user_text: None,
                any_text: None,
            },
        )
    }

    /// Counts `row` in.
    fn add(&mut self, row: &Row) {
        self.last = row.id;
        self.events += 1;
        let text = || row.text.as_deref().and_then(first_line);
        let by_user = row.role.as_deref() == Some("user");
        match &mut self.kind {
            OpenKind::Turn {
                prompt,
                status,
                tool_calls,
                ..
            } => {
                if by_user && prompt.is_none() {
                    *prompt = text();
                }
                if row.kind == EventKind::TurnEnded.as_str() {
                    *status = row.status.as_deref().and_then(|s| s.parse().ok());
                }
                if row.kind == EventKind::ToolCall.as_str() {
                    *tool_calls += 1;
                }
            }
            OpenKind::Events {
                kinds,
                user_text,
                any_text,
            } => {
                if !kinds.contains(&row.kind) {
                    kinds.push(row.kind.clone());
                }
                if row.kind == EventKind::Message.as_str() {
                    if by_user && user_text.is_none() {
                        *user_text = text();
                    }
                    if any_text.is_none() {
                        *any_text = text();
                    }
                }
            }
        }
    }

    fn close(self) -> Step {
        let kind = match self.kind {
            OpenKind::Turn {
                turn,
                prompt,
                status,
                tool_calls,
                ..
            } => StepKind::Turn {
                turn,
                prompt,
                status,
                tool_calls,
            },
            OpenKind::Events {
                kinds,
                user_text,
                any_text,
            } => StepKind::Events {
                kinds,
                text: user_text.or(any_text),
            },
        };
        Step {
            first: self.first,
            last: self.last,
            events: self.events,
            kind,
        }
    }
}

impl Summarizer<'_> {
    /// Reads `run` in one index range scan and appends its steps. A step
    /// never continues from one run into the next.
    fn run(&mut self, run: Run, steps: &mut Vec<Step>) -> Result<()> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM events WHERE branch = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq"
        ))?;
        let mut rows = statement
            .query_map(params![run.branch, run.start, run.end], row)?
            .peekable();
        let mut open: Option<Open> = None;
        let close = |open: &mut Option<Open>, steps: &mut Vec<Step>| {
            if let Some(step) = open.take() {
                steps.push(step.close());
            }
        };
        while let Some(event) = rows.next() {
            let event = event?;
            let position = (run.branch, event.seq);
            let split = match self.splits.get_mut(&position) {
                Some(id) => {
                    *id = Some(event.id);
                    true
                }
                None => false,
            };
            if let Some(kind) = self.marker(&event)? {
                close(&mut open, steps);
                steps.push(Step {
                    first: event.id,
                    last: event.id,
                    events: 1,
                    kind,
                });
                continue;
            }
            let session_started =
                event.kind == EventKind::SessionStarted.as_str() && event.turn.is_none();
            let session_ended =
                event.kind == EventKind::SessionEnded.as_str() && event.turn.is_none();
            if let Some(turn) = event.turn {
                let same = matches!(&open, Some(Open { kind: OpenKind::Turn { turn: t, .. }, .. }) if *t == turn);
                if !same {
                    close(&mut open, steps);
                    open = Some(turn_step(&event, turn));
                }
            } else if session_started && !split {
                // It opens the turn that follows in its session, if one does.
                let next_turn = match rows.peek() {
                    Some(Ok(next)) if next.session == event.session => next.turn,
                    _ => None,
                };
                match next_turn {
                    Some(turn) => {
                        close(&mut open, steps);
                        open = Some(turn_step(&event, turn));
                    }
                    None => events_step(&mut open, steps, &event),
                }
            } else if session_ended
                && matches!(&open, Some(Open { kind: OpenKind::Turn { session, .. }, .. }) if *session == event.session)
            {
                // It closes the session of the turn before it.
                if let Some(step) = open.as_mut() {
                    step.add(&event);
                }
                close(&mut open, steps);
                continue;
            } else {
                events_step(&mut open, steps, &event);
            }
            if let Some(step) = open.as_mut() {
                step.add(&event);
            }
            if split {
                close(&mut open, steps);
            }
        }
        close(&mut open, steps);
        Ok(())
    }

    /// The step of a marker event (`conversation_created`, `rewound`,
    /// `forked`); `None` for any other event, or a marker this exo cannot
    /// read as one (it is then shown as an ordinary event).
    fn marker(&mut self, event: &Row) -> Result<Option<StepKind>> {
        if event.kind == EventKind::ConversationCreated.as_str() {
            return Ok(Some(StepKind::ConversationCreated));
        }
        let Some(body) = &event.body else {
            return Ok(None);
        };
        match EventData::from_json(body) {
            Ok(EventData::Rewound {
                from_event,
                to_event,
                ..
            }) => Ok(Some(StepKind::Rewound {
                from_event,
                to_event,
            })),
            Ok(EventData::Forked {
                from_conversation,
                from_event,
            }) => {
                let from = match self.sources.get(&from_conversation) {
                    Some(info) => info.clone(),
                    None => {
                        let info = self.inner.conversation_info(self.conn, from_conversation)?;
                        self.sources.insert(from_conversation, info.clone());
                        info
                    }
                };
                Ok(Some(StepKind::Forked { from, from_event }))
            }
            _ => Ok(None),
        }
    }
}

fn turn_step(event: &Row, turn: TurnId) -> Open {
    Open::new(
        event,
        OpenKind::Turn {
            turn,
            session: event.session,
            prompt: None,
            status: None,
            tool_calls: 0,
        },
    )
}

/// Makes sure the open step is one of other events, for `event`.
fn events_step(open: &mut Option<Open>, steps: &mut Vec<Step>, event: &Row) {
    if matches!(
        open,
        Some(Open {
            kind: OpenKind::Events { .. },
            ..
        })
    ) {
        return;
    }
    if let Some(step) = open.take() {
        steps.push(step.close());
    }
    *open = Some(Open::events(event));
}

/// The first non-blank line of `text`, trimmed and cut to
/// [`SUMMARY_CHARS`] characters (`…` marks a cut).
fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    let mut chars = line.chars();
    let mut cut: String = chars.by_ref().take(SUMMARY_CHARS).collect();
    if chars.next().is_some() {
        cut.push('…');
    }
    Some(cut)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use exo_core::{ContentPart, EventData, EventId, Role, TurnStatus};
    use serde_json::json;

    use super::{StepKind, Tree};
    use crate::{ForkOptions, OpenMode, Store};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("root"), OpenMode::Create).unwrap();
        store
            .create_agent("A", Some("a"), Default::default())
            .unwrap();
        store
            .create_conversation("a", "C", Some("c"), None)
            .unwrap();
        (dir, store)
    }

    fn text(role: Role, text: &str) -> EventData {
        EventData::Message {
            role,
            content: vec![ContentPart::Text {
                text: text.to_owned(),
            }],
            usage: None,
            model: None,
        }
    }

    /// Appends user messages to `a/CONV`, naming each event after its text.
    fn say(store: &Store, conv: &str, texts: &[&str], names: &mut Names) -> Vec<EventId> {
        let events = texts.iter().map(|t| text(Role::User, t)).collect();
        let appended = store.append("a", conv, events, None).unwrap();
        for (event, name) in appended.iter().zip(texts) {
            names.insert(event.id, name.to_string());
        }
        appended.iter().map(|event| event.id).collect()
    }

    fn rewind(store: &Store, conv: &str, to: EventId, name: &str, names: &mut Names) {
        let outcome = store.rewind("a", conv, to, None).unwrap();
        names.insert(outcome.event.unwrap().id, name.to_owned());
    }

    type Names = HashMap<EventId, String>;

    /// The tree, one line per step (newest line last), events named.
    fn describe(tree: &Tree, names: &Names) -> Vec<String> {
        let name = |id: &EventId| names.get(id).cloned().unwrap_or_else(|| "?".to_owned());
        let mut out = Vec::new();
        for (index, line) in tree.lines.iter().enumerate() {
            let from = match (line.from, line.parent) {
                (Some(from), Some(parent)) => format!(" from {} on {parent}", name(&from)),
                _ => String::new(),
            };
            out.push(format!(
                "line {index}{} head {}{from}",
                if line.current { " (current)" } else { "" },
                name(&line.head)
            ));
            for step in &line.steps {
                let what = match &step.kind {
                    StepKind::ConversationCreated => "created".to_owned(),
                    StepKind::Forked { from, from_event } => {
                        format!(
                            "forked from {}/{} at {}",
                            from.agent,
                            from.slug,
                            name(from_event)
                        )
                    }
                    StepKind::Rewound {
                        from_event,
                        to_event,
                    } => format!("rewound {} -> {}", name(from_event), name(to_event)),
                    StepKind::Turn {
                        prompt,
                        status,
                        tool_calls,
                        ..
                    } => format!("turn {prompt:?} {status:?} calls {tool_calls}"),
                    StepKind::Events { kinds, text } => {
                        format!("events {} {text:?}", kinds.join(","))
                    }
                };
                let span = if step.first == step.last {
                    name(&step.last)
                } else {
                    format!("{}..{}", name(&step.first), name(&step.last))
                };
                out.push(format!("  {span} ({}) {what}", step.events));
            }
        }
        for fork in &tree.forks {
            out.push(format!(
                "fork {}/{} at {} on {}",
                fork.conversation.agent,
                fork.conversation.slug,
                name(&fork.at),
                fork.line
            ));
        }
        out
    }

    fn created(store: &Store, conv: &str, names: &mut Names) {
        let first = store.events("a", conv, &Default::default()).unwrap().events[0].id;
        names.insert(first, format!("{conv}.created"));
    }

    /// Two rewinds, a redo and a fork: the lines left behind hang where
    /// they left, steps end where something leaves, and a redo that is
    /// on the current line is no line of its own.
    #[test]
    fn rewinds_redo_and_a_fork() {
        let (_dir, store) = store();
        let mut names = Names::new();
        created(&store, "c", &mut names);
        let m = say(&store, "c", &["m1", "m2", "m3"], &mut names);
        rewind(&store, "c", m[0], "rw1", &mut names);
        let x = say(&store, "c", &["x1", "x2"], &mut names);
        rewind(&store, "c", m[1], "rw2", &mut names);
        say(&store, "c", &["y1"], &mut names);
        rewind(&store, "c", x[1], "rw3", &mut names);
        say(&store, "c", &["z1"], &mut names);
        store
            .fork(
                "a",
                "c",
                ForkOptions {
                    at: Some(m[1]),
                    slug: Some("side".into()),
                    ..Default::default()
                },
            )
            .unwrap();

        let tree = store.tree("a", "c").unwrap();
        assert_eq!(tree.agent, "a");
        assert_eq!(
            describe(&tree, &names),
            [
                "line 0 (current) head z1",
                "  c.created (1) created",
                "  m1 (1) events message Some(\"m1\")",
                "  rw1 (1) rewound m3 -> m1",
                "  x1..x2 (2) events message Some(\"x1\")",
                "  rw3 (1) rewound y1 -> x2",
                "  z1 (1) events message Some(\"z1\")",
                "line 1 head m3 from m1 on 0",
                "  m2 (1) events message Some(\"m2\")",
                "  m3 (1) events message Some(\"m3\")",
                "line 2 head y1 from m2 on 1",
                "  rw2 (1) rewound x2 -> m2",
                "  y1 (1) events message Some(\"y1\")",
                "fork a/side at m2 on 1",
            ]
        );

        // The fork's own tree: what it shares with its source, then its
        // own history; the source's other lines are not its own.
        let fork = store.tree("a", "side").unwrap();
        let forked = fork.lines[0].steps.last().unwrap().last;
        names.insert(forked, "forked".into());
        assert_eq!(
            describe(&fork, &names),
            [
                "line 0 (current) head forked",
                "  c.created (1) created",
                "  m1..m2 (2) events message Some(\"m1\")",
                "  forked (1) forked from a/c at m2",
            ]
        );
    }

    /// A turn is one step, with the session markers around it; a rewind
    /// into a turn cuts it in two; other events between turns are one
    /// step.
    #[test]
    fn turns_are_steps_and_a_rewind_into_one_cuts_it() {
        let (_dir, store) = store();
        let mut names = Names::new();
        created(&store, "c", &mut names);
        let turn = store
            .begin_turn("a", "c", text(Role::User, "\n  fix the build\nthen test"))
            .unwrap();
        let started = turn.started_events().to_vec();
        names.insert(started[0].id, "s1.start".into());
        let recorded = turn
            .append(
                vec![
                    text(Role::Assistant, "Looking."),
                    EventData::ToolCall {
                        call_id: "c1".into(),
                        name: "shell".into(),
                        arguments: json!({"command": "make"}),
                    },
                    EventData::ToolResult {
                        call_id: "c1".into(),
                        output: json!("ok"),
                        is_error: false,
                    },
                ],
                None,
            )
            .unwrap();
        names.insert(recorded[1].id, "call".into());
        turn.finish(TurnStatus::Completed).unwrap();
        let between = say(&store, "c", &["a note"], &mut names);
        let long = "x".repeat(100);
        let second = store.begin_turn("a", "c", text(Role::User, &long)).unwrap();
        second.finish(TurnStatus::Failed).unwrap();
        let conversation = store.conversation("a", "c").unwrap();
        store.end_session(conversation.id).unwrap();
        let head = store.conversation("a", "c").unwrap().head;
        names.insert(head, "s1.end".into());

        let tree = store.tree("a", "c").unwrap();
        let cut = format!("{}…", "x".repeat(super::SUMMARY_CHARS));
        let second_turn = format!("  ?..s1.end (4) turn Some({cut:?}) Some(Failed) calls 0");
        assert_eq!(
            describe(&tree, &names),
            [
                "line 0 (current) head s1.end",
                "  c.created (1) created",
                "  s1.start..? (7) turn Some(\"fix the build\") Some(Completed) calls 1",
                "  a note (1) events message Some(\"a note\")",
                second_turn.as_str(),
            ]
        );

        // Back into the first turn, after its tool call.
        rewind(&store, "c", recorded[1].id, "back", &mut names);
        let tree = store.tree("a", "c").unwrap();
        let lines = describe(&tree, &names);
        assert_eq!(
            lines[..6],
            [
                "line 0 (current) head back",
                "  c.created (1) created",
                "  s1.start..call (5) turn Some(\"fix the build\") None calls 1",
                "  back (1) rewound s1.end -> call",
                "line 1 head s1.end from call on 0",
                "  ?..? (2) turn None Some(Completed) calls 0",
            ]
        );
        assert_eq!(lines[6], "  a note (1) events message Some(\"a note\")");
        assert_eq!(lines[7], second_turn);
        assert_eq!(tree.lines[1].from, Some(recorded[1].id));
        assert_eq!(between.len(), 1);
    }

    /// A redo abandoned in turn is more of the line it continues; a fork
    /// rewound to before its fork point shows what it left, shared events
    /// included, as a line of its own.
    #[test]
    fn abandoned_redo_continues_its_line_and_a_fork_can_leave_its_source() {
        let (_dir, store) = store();
        let mut names = Names::new();
        created(&store, "c", &mut names);
        let m = say(&store, "c", &["m1", "m2", "m3"], &mut names);
        rewind(&store, "c", m[0], "rw1", &mut names);
        say(&store, "c", &["x1"], &mut names);
        rewind(&store, "c", m[2], "rw2", &mut names);
        say(&store, "c", &["w1"], &mut names);
        rewind(&store, "c", m[0], "rw3", &mut names);
        say(&store, "c", &["v1"], &mut names);
        let tree = store.tree("a", "c").unwrap();
        assert_eq!(
            describe(&tree, &names),
            [
                "line 0 (current) head v1",
                "  c.created (1) created",
                "  m1 (1) events message Some(\"m1\")",
                "  rw3 (1) rewound w1 -> m1",
                "  v1 (1) events message Some(\"v1\")",
                "line 1 head w1 from m1 on 0",
                "  m2..m3 (2) events message Some(\"m2\")",
                "  rw2 (1) rewound x1 -> m3",
                "  w1 (1) events message Some(\"w1\")",
                "line 2 head x1 from m1 on 0",
                "  rw1 (1) rewound m3 -> m1",
                "  x1 (1) events message Some(\"x1\")",
            ]
        );

        let (_dir, store) = self::store();
        let mut names = Names::new();
        created(&store, "c", &mut names);
        let m = say(&store, "c", &["m1", "m2"], &mut names);
        store
            .fork(
                "a",
                "c",
                ForkOptions {
                    slug: Some("side".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let forked = store.conversation("a", "side").unwrap().head;
        names.insert(forked, "forked".into());
        say(&store, "side", &["s1"], &mut names);
        rewind(&store, "side", m[0], "back", &mut names);
        say(&store, "c", &["later"], &mut names);
        let tree = store.tree("a", "side").unwrap();
        assert_eq!(
            describe(&tree, &names),
            [
                "line 0 (current) head back",
                "  c.created (1) created",
                "  m1 (1) events message Some(\"m1\")",
                "  back (1) rewound s1 -> m1",
                "line 1 head s1 from m1 on 0",
                "  m2 (1) events message Some(\"m2\")",
                "  forked (1) forked from a/c at m2",
                "  s1 (1) events message Some(\"s1\")",
            ]
        );
        // The source shows the fork where it was taken.
        let source = store.tree("a", "c").unwrap();
        assert_eq!(
            describe(&source, &names)[3..],
            [
                "  later (1) events message Some(\"later\")",
                "fork a/side at m2 on 0"
            ]
        );
    }

    /// Unknown agents and conversations are not found.
    #[test]
    fn unknown_names_are_not_found() {
        let (_dir, store) = store();
        assert!(matches!(
            store.tree("nobody", "c"),
            Err(crate::Error::NotFound { what: "agent", .. })
        ));
        assert!(matches!(
            store.tree("a", "nothing"),
            Err(crate::Error::NotFound {
                what: "conversation",
                ..
            })
        ));
    }
}
