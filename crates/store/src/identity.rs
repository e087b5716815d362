//! Agents and conversations: creation, lookup by slug or id, fork, delete.
//!
//! Deletion is soft: the row is hidden and its slug freed, but events stay,
//! because forks of a deleted conversation still read them.

use exo_core::{
    slugify, validate_slug, AgentId, ConversationId, EventData, EventId, SessionId, Timestamp,
    TurnId,
};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::log::NewEvent;
use crate::{id_column, opt_id_column, Inner, Store};

/// An agent: a named configuration (model, instructions, policies) that owns
/// conversations.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its slug, unique among live agents.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Free-form configuration; `model` names a model binding.
    pub config: Map<String, Value>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Agent {
    /// The model binding the agent uses, if set.
    pub fn model(&self) -> Option<&str> {
        self.config.get("model").and_then(Value::as_str)
    }
}

/// A conversation: a history of events with a movable head.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// The agent that owns it.
    pub agent: AgentId,
    /// Its slug, unique among the agent's live conversations.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// The newest event of its history.
    pub head: EventId,
    /// The head's depth: the history holds `head_seq + 1` events.
    pub head_seq: i64,
    /// For a fork: the source conversation and the event forked at.
    pub forked_from: Option<(ConversationId, EventId)>,
    /// The workspace directory it is bound to (absolute), if any. A fork
    /// starts bound to its source's.
    pub workspace: Option<String>,
    /// The open session, if any.
    pub open_session: Option<SessionId>,
    /// The open turn, if any.
    pub open_turn: Option<TurnId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its current branch.
    pub(crate) branch: i64,
}

impl Conversation {
    /// How many events its history holds.
    pub fn length(&self) -> u64 {
        (self.head_seq + 1) as u64
    }
}

/// How to name and place a fork.
#[derive(Clone, Debug, Default)]
pub struct ForkOptions {
    /// The event to fork at; the source's head when `None`.
    pub at: Option<EventId>,
    /// The fork's name; `"<source name> (fork)"` when `None`.
    pub name: Option<String>,
    /// The fork's slug; derived from the name when `None` (with a numeric
    /// suffix when no name was given and the slug is taken).
    pub slug: Option<String>,
    /// The fork's workspace directory (which must exist); the source's
    /// when `None`.
    pub workspace: Option<std::path::PathBuf>,
}

const CONVERSATION_COLUMNS: &str =
    "id, agent, slug, name, branch, head_seq, head_event, forked_from, fork_event, \
                                    open_session, open_turn, created_at, workspace";

fn conversation_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    let forked_from = opt_id_column(row, 7, ConversationId::from_bytes)?;
    let fork_event = opt_id_column(row, 8, EventId::from_bytes)?;
    Ok(Conversation {
        id: id_column(row, 0, ConversationId::from_bytes)?,
        agent: id_column(row, 1, AgentId::from_bytes)?,
        slug: row.get(2)?,
        name: row.get(3)?,
        branch: row.get(4)?,
        head_seq: row.get(5)?,
        head: id_column(row, 6, EventId::from_bytes)?,
        forked_from: forked_from.zip(fork_event),
        open_session: opt_id_column(row, 9, SessionId::from_bytes)?,
        open_turn: opt_id_column(row, 10, TurnId::from_bytes)?,
        created_at: Timestamp(row.get(11)?),
        workspace: row.get(12)?,
    })
}

fn agent_from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(AgentId, String, String, String, i64)> {
    Ok((
        id_column(row, 0, AgentId::from_bytes)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn make_agent(
    (id, slug, name, config, created_at): (AgentId, String, String, String, i64),
) -> Result<Agent> {
    let config = match serde_json::from_str(&config) {
        Ok(Value::Object(map)) => map,
        _ => return Err(Error::Corrupt(format!("agent {slug} has malformed config"))),
    };
    Ok(Agent {
        id,
        slug,
        name,
        config,
        created_at: Timestamp(created_at),
    })
}

/// The canonical absolute form of a workspace directory, as UTF-8. The
/// store's root (or a directory inside it) is refused: every snapshot
/// leaves the root out and the tools refuse to touch it, so every turn
/// there would fail. A workspace that contains the root is fine.
fn canonical_workspace(root: &Path, path: &Path) -> Result<String> {
    let canonical = std::fs::canonicalize(path)
        .map_err(|err| Error::Invalid(format!("workspace {}: {err}", path.display())))?;
    if !canonical.is_dir() {
        return Err(Error::Invalid(format!(
            "workspace {} is not a directory",
            path.display()
        )));
    }
    if crate::is_inside_root(root, &canonical)
        .map_err(|err| Error::io(format!("resolving {}", root.display()), err))?
    {
        return Err(Error::Invalid(format!(
            "workspace {} is exo's root directory or inside it, where exo keeps its own state",
            path.display()
        )));
    }
    canonical.into_os_string().into_string().map_err(|path| {
        Error::Invalid(format!(
            "workspace {} is not valid UTF-8",
            std::path::PathBuf::from(path).display()
        ))
    })
}

fn check_display_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{what} name must be 1-256 characters without control characters"
        )));
    }
    Ok(())
}

impl Inner {
    pub(crate) fn find_agent(&self, conn: &Connection, key: &str) -> Result<Agent> {
        let row = match key.parse::<AgentId>() {
            Ok(id) => conn
                .prepare_cached(
                    "SELECT id, slug, name, config, created_at FROM agents WHERE id = ?1 AND deleted_at IS NULL",
                )?
                .query_row([id.as_bytes()], agent_from_row)
                .optional()?,
            Err(_) => conn
                .prepare_cached(
                    "SELECT id, slug, name, config, created_at FROM agents WHERE slug = ?1 AND deleted_at IS NULL",
                )?
                .query_row([key], agent_from_row)
                .optional()?,
        };
        make_agent(row.ok_or_else(|| Error::not_found("agent", key))?)
    }

    pub(crate) fn find_conversation(
        &self,
        conn: &Connection,
        agent: &Agent,
        key: &str,
    ) -> Result<Conversation> {
        let found = match key.parse::<ConversationId>() {
            Ok(id) => conn
                .prepare_cached(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND agent = ?2 AND deleted_at IS NULL"
                ))?
                .query_row(params![id.as_bytes(), agent.id.as_bytes()], conversation_from_row)
                .optional()?,
            Err(_) => conn
                .prepare_cached(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE slug = ?1 AND agent = ?2 AND deleted_at IS NULL"
                ))?
                .query_row(params![key, agent.id.as_bytes()], conversation_from_row)
                .optional()?,
        };
        found.ok_or_else(|| Error::NotFound {
            what: "conversation",
            key: format!("{}/{key}", agent.slug),
        })
    }

    /// Loads a live conversation by id, inside the caller's transaction.
    pub(crate) fn load_conversation(
        &self,
        conn: &Connection,
        id: ConversationId,
    ) -> Result<Conversation> {
        conn.prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1 AND deleted_at IS NULL"
        ))?
        .query_row([id.as_bytes()], conversation_from_row)
        .optional()?
        .ok_or_else(|| Error::not_found("conversation", id))
    }

    fn slug_taken(&self, conn: &Connection, agent: AgentId, slug: &str) -> Result<bool> {
        Ok(conn
            .prepare_cached(
                "SELECT 1 FROM conversations WHERE agent = ?1 AND slug = ?2 AND deleted_at IS NULL",
            )?
            .exists(params![agent.as_bytes(), slug])?)
    }

    /// `<slug>-fork`, or `<slug>-fork-N` with N one more than the largest
    /// taken, found in one range scan of the agent's live slugs.
    fn next_fork_slug(&self, conn: &Connection, agent: AgentId, slug: &str) -> Result<String> {
        let base = format!("{slug}-fork");
        let mut statement = conn.prepare_cached(
            "SELECT slug FROM conversations
             WHERE agent = ?1 AND deleted_at IS NULL AND slug >= ?2 AND slug < ?3",
        )?;
        // The slugs in [base, base + ".") are the base itself and the base
        // followed by '-': '.' is the byte right after '-', and no other
        // slug character sorts below it.
        let upper = format!("{base}.");
        let mut largest: Option<u64> = None;
        let rows = statement.query_map(params![agent.as_bytes(), base, upper], |row| {
            row.get::<_, String>(0)
        })?;
        for taken in rows {
            let taken = taken?;
            let suffix = if taken == base {
                Some(1)
            } else {
                taken
                    .strip_prefix(&format!("{base}-"))
                    .and_then(|n| n.parse::<u64>().ok())
            };
            largest = largest.max(suffix);
        }
        Ok(match largest {
            None => base,
            Some(n) => format!("{base}-{}", n + 1),
        })
    }

    /// Inserts a conversation whose history continues `parent` after
    /// `base_seq` (or starts afresh), then appends `first` as its first
    /// event of its own.
    #[allow(clippy::too_many_arguments)]
    fn insert_conversation(
        &self,
        conn: &Connection,
        agent: AgentId,
        slug: &str,
        name: &str,
        parent: Option<(i64, i64, EventId)>,
        forked_from: Option<(ConversationId, EventId)>,
        workspace: Option<&str>,
        first: impl FnOnce(ConversationId) -> EventData,
    ) -> Result<Conversation> {
        let id = ConversationId::new();
        let (parent_branch, base_seq, head) = match parent {
            Some((branch, seq, event)) => (Some(branch), seq, event),
            // Placeholder head, replaced by the first append below.
            None => (None, -1, EventId::from_bytes([0; 16])),
        };
        let branch = self.create_branch(conn, id, parent_branch, base_seq)?;
        let created_at = Timestamp::now();
        conn.prepare_cached(
            "INSERT INTO conversations (id, agent, slug, name, branch, head_seq, head_event, forked_from, fork_event, created_at, workspace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            id.as_bytes(),
            agent.as_bytes(),
            slug,
            name,
            branch,
            base_seq,
            head.as_bytes(),
            forked_from.map(|(c, _)| *c.as_bytes()),
            forked_from.map(|(_, e)| *e.as_bytes()),
            created_at.as_micros(),
            workspace,
        ])?;
        let mut conversation = Conversation {
            id,
            agent,
            slug: slug.to_string(),
            name: name.to_string(),
            head,
            head_seq: base_seq,
            forked_from,
            workspace: workspace.map(str::to_string),
            open_session: None,
            open_turn: None,
            created_at,
            branch,
        };
        self.append(conn, &mut conversation, [NewEvent::plain(first(id))])?;
        Ok(conversation)
    }
}

impl Store {
    /// Creates an agent. The slug derives from the name unless given. A
    /// `model` in the config must name a registered model.
    pub fn create_agent(
        &self,
        name: &str,
        slug: Option<&str>,
        config: Map<String, Value>,
    ) -> Result<Agent> {
        check_display_name("agent", name)?;
        let slug = match slug {
            Some(slug) => {
                validate_slug(slug)?;
                slug.to_string()
            }
            None => slugify(name)?,
        };
        self.inner.write(|tx| {
            let taken = tx
                .prepare_cached("SELECT 1 FROM agents WHERE slug = ?1 AND deleted_at IS NULL")?
                .exists([&slug])?;
            if taken {
                return Err(Error::AlreadyExists { what: "agent", key: slug.clone() });
            }
            if let Some(model) = config.get("model") {
                let model = model.as_str().ok_or_else(|| Error::Invalid("config.model must be a string".into()))?;
                self.inner.require_model(tx, &exo_core::Scope::Root, model)?;
            }
            let agent = Agent {
                id: AgentId::new(),
                slug: slug.clone(),
                name: name.to_string(),
                config,
                created_at: Timestamp::now(),
            };
            tx.prepare_cached("INSERT INTO agents (id, slug, name, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![
                    agent.id.as_bytes(),
                    agent.slug,
                    agent.name,
                    Value::Object(agent.config.clone()).to_string(),
                    agent.created_at.as_micros()
                ])?;
            Ok(agent)
        })
    }

    /// Replaces an agent's configuration with what `update` makes of it,
    /// in one transaction (so two updates never lose each other's change).
    /// A `model` must name a registered model.
    pub fn update_agent_config(
        &self,
        key: &str,
        update: impl FnOnce(Map<String, Value>) -> Result<Map<String, Value>>,
    ) -> Result<Agent> {
        self.inner.write(|tx| {
            let mut agent = self.inner.find_agent(tx, key)?;
            let config = update(agent.config.clone())?;
            if let Some(model) = config.get("model") {
                let model = model
                    .as_str()
                    .ok_or_else(|| Error::Invalid("config.model must be a string".into()))?;
                self.inner
                    .require_model(tx, &exo_core::Scope::Root, model)?;
            }
            tx.prepare_cached("UPDATE agents SET config = ?2 WHERE id = ?1")?
                .execute(params![
                    agent.id.as_bytes(),
                    Value::Object(config.clone()).to_string()
                ])?;
            agent.config = config;
            Ok(agent)
        })
    }

    /// Every live agent, oldest first.
    pub fn agents(&self) -> Result<Vec<Agent>> {
        self.inner.read(|tx| {
            let mut statement = tx.prepare_cached(
                "SELECT id, slug, name, config, created_at FROM agents WHERE deleted_at IS NULL ORDER BY id",
            )?;
            let rows = statement.query_map([], agent_from_row)?;
            rows.map(|row| make_agent(row?)).collect()
        })
    }

    /// One agent, by slug or id.
    pub fn agent(&self, key: &str) -> Result<Agent> {
        self.inner.read(|tx| self.inner.find_agent(tx, key))
    }

    /// Deletes an agent and its conversations (soft: forks elsewhere keep
    /// reading shared events).
    ///
    /// Refused while a turn is in progress in any of its conversations.
    pub fn delete_agent(&self, key: &str) -> Result<Agent> {
        // Close turns whose owners died, so only live ones block.
        for conversation in self.conversations(key)? {
            self.recover_abandoned(conversation)?;
        }
        self.inner.write(|tx| {
            let agent = self.inner.find_agent(tx, key)?;
            let busy: Option<String> = tx
                .query_row(
                    "SELECT slug FROM conversations WHERE agent = ?1 AND deleted_at IS NULL AND open_turn IS NOT NULL",
                    [agent.id.as_bytes()],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(slug) = busy {
                return Err(Error::Busy(format!(
                    "a turn is in progress in conversation {slug} of agent {}; finish it before deleting the agent",
                    agent.slug
                )));
            }
            let now = Timestamp::now().as_micros();
            tx.execute(
                "UPDATE agents SET deleted_at = ?2 WHERE id = ?1",
                params![agent.id.as_bytes(), now],
            )?;
            tx.execute(
                "UPDATE conversations SET deleted_at = ?2 WHERE agent = ?1 AND deleted_at IS NULL",
                params![agent.id.as_bytes(), now],
            )?;
            Ok(agent)
        })
    }

    /// Creates a conversation; its history starts with
    /// `conversation_created`.
    ///
    /// A `workspace` must be an existing directory; it is stored as its
    /// canonical absolute path and recorded in `conversation_created`.
    pub fn create_conversation(
        &self,
        agent: &str,
        name: &str,
        slug: Option<&str>,
        workspace: Option<&Path>,
    ) -> Result<Conversation> {
        check_display_name("conversation", name)?;
        let workspace = workspace
            .map(|path| canonical_workspace(&self.inner.root, path))
            .transpose()?;
        let slug = match slug {
            Some(slug) => {
                validate_slug(slug)?;
                slug.to_string()
            }
            None => slugify(name)?,
        };
        self.inner.write(|tx| {
            let agent = self.inner.find_agent(tx, agent)?;
            if self.inner.slug_taken(tx, agent.id, &slug)? {
                return Err(Error::AlreadyExists {
                    what: "conversation",
                    key: format!("{}/{slug}", agent.slug),
                });
            }
            self.inner.insert_conversation(
                tx,
                agent.id,
                &slug,
                name,
                None,
                None,
                workspace.as_deref(),
                |_| EventData::ConversationCreated {
                    agent: agent.id,
                    name: name.to_string(),
                    slug: slug.clone(),
                    workspace: workspace.clone(),
                },
            )
        })
    }

    /// The agent's live conversations, oldest first.
    pub fn conversations(&self, agent: &str) -> Result<Vec<Conversation>> {
        self.inner.read(|tx| {
            let agent = self.inner.find_agent(tx, agent)?;
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE agent = ?1 AND deleted_at IS NULL ORDER BY id"
            ))?;
            let rows = statement.query_map([agent.id.as_bytes()], conversation_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Opens a conversation by agent and conversation slug or id. A turn left
    /// open by a process that has died is closed as `interrupted` first.
    pub fn conversation(&self, agent: &str, conversation: &str) -> Result<Conversation> {
        let found = self.inner.read(|tx| {
            let agent = self.inner.find_agent(tx, agent)?;
            self.inner.find_conversation(tx, &agent, conversation)
        })?;
        self.recover_abandoned(found)
    }

    /// Opens a conversation by id (with the same recovery as
    /// [`Store::conversation`]).
    pub fn conversation_by_id(&self, id: ConversationId) -> Result<Conversation> {
        let found = self.inner.read(|tx| self.inner.load_conversation(tx, id))?;
        self.recover_abandoned(found)
    }

    /// Deletes a conversation (soft). Refused while a live process runs a
    /// turn in it.
    pub fn delete_conversation(&self, agent: &str, conversation: &str) -> Result<Conversation> {
        let conv = self.conversation(agent, conversation)?;
        self.inner.write(|tx| {
            let conv = self.inner.load_conversation(tx, conv.id)?;
            if let Some(turn) = conv.open_turn {
                return Err(Error::Busy(format!(
                    "turn {turn} is in progress in conversation {}; finish it before deleting",
                    conv.slug
                )));
            }
            tx.execute(
                "UPDATE conversations SET deleted_at = ?2 WHERE id = ?1",
                params![conv.id.as_bytes(), Timestamp::now().as_micros()],
            )?;
            Ok(conv)
        })
    }

    /// Forks a conversation at an event (its head by default). The fork's
    /// history is the source's up to and including that event, then a
    /// `forked` event. O(1): nothing is copied, and appends to either side
    /// never show on the other.
    pub fn fork(
        &self,
        agent: &str,
        conversation: &str,
        options: ForkOptions,
    ) -> Result<Conversation> {
        if let Some(name) = &options.name {
            check_display_name("conversation", name)?;
        }
        if let Some(slug) = &options.slug {
            validate_slug(slug)?;
        }
        let workspace = options
            .workspace
            .as_deref()
            .map(|path| canonical_workspace(&self.inner.root, path))
            .transpose()?;
        let source = self.conversation(agent, conversation)?;
        self.inner.write(|tx| {
            let source = self.inner.load_conversation(tx, source.id)?;
            let at = options.at.unwrap_or(source.head);
            let (branch, seq) = self.inner.reachable(tx, &source, at)?;
            let name = options
                .name
                .clone()
                .unwrap_or_else(|| format!("{} (fork)", source.name));
            let slug = match (&options.slug, &options.name) {
                (Some(slug), _) => slug.clone(),
                (None, Some(name)) => slugify(name)?,
                (None, None) => self.inner.next_fork_slug(tx, source.agent, &source.slug)?,
            };
            if self.inner.slug_taken(tx, source.agent, &slug)? {
                return Err(Error::AlreadyExists {
                    what: "conversation",
                    key: slug,
                });
            }
            self.inner.insert_conversation(
                tx,
                source.agent,
                &slug,
                &name,
                Some((branch, seq, at)),
                Some((source.id, at)),
                workspace.as_deref().or(source.workspace.as_deref()),
                |_| EventData::Forked {
                    from_conversation: source.id,
                    from_event: at,
                },
            )
        })
    }
}
