//! Secrets and bindings at root, agent and conversation scope.
//!
//! Root and agent scope values live in their own tables and are replaced in
//! place. Conversation scope values are recorded as events
//! (`secret_set`, `binding_set`, ...), so they resolve as of the head: they
//! follow forks and are undone by rewinds. Resolution for a conversation
//! tries the conversation, then its agent, then the root: the narrowest
//! scope that has the name wins.
//!
//! Secret values are sealed with the master key (see `exo-secrets`). The
//! associated data binds each ciphertext to its secret id, scope and name.
//! The first secret written also stores a key check, so a wrong key is
//! refused before anything is written.

use exo_core::{
    validate_name, Binding, BindingKind, EventData, Scope, SecretId, SecretKind, SecretValue,
    Timestamp,
};
use exo_secrets::{Key, Sealed, NONCE_LEN};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::log::{binding_key, NewEvent};
use crate::{id_column, Inner, Store};

/// What is known about a secret without opening it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// Where it lives.
    pub scope: Scope,
    /// API key or OAuth pair.
    pub kind: SecretKind,
    /// When this value was set.
    pub created_at: Timestamp,
}

/// A binding and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingEntry {
    /// Where it lives.
    pub scope: Scope,
    /// The binding.
    pub binding: Binding,
    /// When it was set.
    pub created_at: Timestamp,
}

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_AD: &[u8] = b"exo-key-check-v1";
const KEY_CHECK_PLAINTEXT: &[u8] = b"exo";

/// Binds a sealed value to its row: a ciphertext copied to another id,
/// scope or name does not open. `scope` is a [`Scope::key`].
fn associated_data(id: SecretId, scope: &str, name: &str) -> Vec<u8> {
    format!("exo-secret-v1\0{id}\0{scope}\0{name}").into_bytes()
}

fn parse_kind(text: &str) -> Result<SecretKind> {
    match text {
        "api_key" => Ok(SecretKind::ApiKey),
        "oauth" => Ok(SecretKind::Oauth),
        other => Err(Error::Corrupt(format!("unknown secret kind {other:?}"))),
    }
}

impl Inner {
    /// Checks `key` against the store's key check, writing one if the
    /// store has none yet (only when `init` is true).
    fn check_key(&self, conn: &Connection, key: &Key, init: bool) -> Result<()> {
        let stored: Option<Vec<u8>> = conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([KEY_CHECK], |row| row.get(0))
            .optional()?;
        match stored {
            Some(blob) => {
                let sealed = split_sealed(&blob)?;
                key.open(&sealed, KEY_CHECK_AD)
                    .map_err(|_| Error::WrongKey)?;
                Ok(())
            }
            None if init => {
                let sealed = key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AD)?;
                conn.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2)")?
                    .execute(params![KEY_CHECK, join_sealed(&sealed)])?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The scopes to try for `scope`, narrowest first.
    fn scope_chain(&self, conn: &Connection, scope: Scope) -> Result<Vec<Scope>> {
        Ok(match scope {
            Scope::Root => vec![Scope::Root],
            Scope::Agent(agent) => vec![Scope::Agent(agent), Scope::Root],
            Scope::Conversation(id) => {
                let conv = self.load_conversation(conn, id)?;
                vec![
                    Scope::Conversation(id),
                    Scope::Agent(conv.agent),
                    Scope::Root,
                ]
            }
        })
    }

    /// The secret row id and info set at exactly `scope`.
    fn secret_at(
        &self,
        conn: &Connection,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<(SecretId, SecretInfo)>> {
        let id = match scope {
            Scope::Conversation(conversation) => {
                let conv = self.load_conversation(conn, *conversation)?;
                let chain = self.chain(conn, conv.branch, conv.head_seq)?;
                match self
                    .history_value(conn, &chain, "secret", name)?
                    .and_then(|value| value.value)
                {
                    Some(id) => Some(
                        id.parse::<SecretId>()
                            .map_err(|err| Error::Corrupt(err.to_string()))?,
                    ),
                    None => return Ok(None),
                }
            }
            _ => None,
        };
        let row = match id {
            Some(id) => conn
                .prepare_cached("SELECT id, kind, created_at FROM secrets WHERE id = ?1")?
                .query_row([id.as_bytes()], |row| {
                    Ok((
                        id_column(row, 0, SecretId::from_bytes)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .optional()?,
            None => conn
                .prepare_cached(
                    "SELECT id, kind, created_at FROM secrets WHERE scope = ?1 AND name = ?2",
                )?
                .query_row(params![scope.key(), name], |row| {
                    Ok((
                        id_column(row, 0, SecretId::from_bytes)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .optional()?,
        };
        row.map(|(id, kind, created_at)| {
            Ok((
                id,
                SecretInfo {
                    name: name.to_string(),
                    scope: *scope,
                    kind: parse_kind(&kind)?,
                    created_at: Timestamp(created_at),
                },
            ))
        })
        .transpose()
    }

    /// Resolves a secret name from `scope` outwards.
    fn find_secret(
        &self,
        conn: &Connection,
        scope: Scope,
        name: &str,
    ) -> Result<Option<(SecretId, SecretInfo)>> {
        for candidate in self.scope_chain(conn, scope)? {
            if let Some(found) = self.secret_at(conn, &candidate, name)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn binding_at(
        &self,
        conn: &Connection,
        scope: &Scope,
        kind: BindingKind,
        name: &str,
    ) -> Result<Option<BindingEntry>> {
        match scope {
            Scope::Conversation(conversation) => {
                let conv = self.load_conversation(conn, *conversation)?;
                let chain = self.chain(conn, conv.branch, conv.head_seq)?;
                let Some(value) = self.history_value(conn, &chain, "binding", &binding_key(kind, name))? else {
                    return Ok(None);
                };
                let Some(config) = value.value else {
                    return Ok(None);
                };
                let created_at = self.event_at(conn, value.branch, value.seq)?.created_at;
                Ok(Some(BindingEntry { scope: *scope, binding: decode_binding(&config)?, created_at }))
            }
            _ => conn
                .prepare_cached("SELECT config, created_at FROM bindings WHERE scope = ?1 AND kind = ?2 AND name = ?3")?
                .query_row(params![scope.key(), kind.as_str(), name], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .optional()?
                .map(|(config, created_at)| {
                    Ok(BindingEntry { scope: *scope, binding: decode_binding(&config)?, created_at: Timestamp(created_at) })
                })
                .transpose(),
        }
    }

    fn find_binding(
        &self,
        conn: &Connection,
        scope: Scope,
        kind: BindingKind,
        name: &str,
    ) -> Result<Option<BindingEntry>> {
        for candidate in self.scope_chain(conn, scope)? {
            if let Some(found) = self.binding_at(conn, &candidate, kind, name)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Fails unless a model binding named `name` resolves from `scope`.
    pub(crate) fn require_model(
        &self,
        conn: &Connection,
        scope: &Scope,
        name: &str,
    ) -> Result<BindingEntry> {
        self.find_binding(conn, *scope, BindingKind::Model, name)?
            .ok_or_else(|| Error::not_found("model", name))
    }

    fn check_scope(&self, conn: &Connection, scope: &Scope) -> Result<()> {
        match scope {
            Scope::Root => Ok(()),
            Scope::Agent(agent) => self.find_agent(conn, &agent.to_string()).map(drop),
            Scope::Conversation(conversation) => {
                self.load_conversation(conn, *conversation).map(drop)
            }
        }
    }
}

fn decode_binding(config: &str) -> Result<Binding> {
    serde_json::from_str(config)
        .map_err(|err| Error::Corrupt(format!("binding cannot be decoded: {err}")))
}

fn join_sealed(sealed: &Sealed) -> Vec<u8> {
    let mut blob = Vec::with_capacity(NONCE_LEN + sealed.ciphertext.len());
    blob.extend_from_slice(&sealed.nonce);
    blob.extend_from_slice(&sealed.ciphertext);
    blob
}

fn split_sealed(blob: &[u8]) -> Result<Sealed> {
    if blob.len() < NONCE_LEN {
        return Err(Error::Corrupt("sealed value is too short".into()));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[..NONCE_LEN]);
    Ok(Sealed {
        nonce,
        ciphertext: blob[NONCE_LEN..].to_vec(),
    })
}

impl Store {
    /// The scope named by an optional agent and conversation (slug or id).
    pub fn scope(&self, agent: Option<&str>, conversation: Option<&str>) -> Result<Scope> {
        match (agent, conversation) {
            (None, None) => Ok(Scope::Root),
            (Some(agent), None) => Ok(Scope::Agent(self.agent(agent)?.id)),
            (Some(agent), Some(conversation)) => Ok(Scope::Conversation(
                self.conversation(agent, conversation)?.id,
            )),
            (None, Some(_)) => Err(Error::Invalid(
                "a conversation scope needs its agent too".into(),
            )),
        }
    }

    /// Checks that `key` opens this store's secrets.
    pub fn verify_key(&self, key: &Key) -> Result<()> {
        self.inner.read(|tx| self.inner.check_key(tx, key, false))
    }

    /// Seals and stores a secret at `scope`, replacing any value of that name
    /// there. Never logs or returns the value.
    pub fn set_secret(
        &self,
        scope: Scope,
        name: &str,
        value: &SecretValue,
        key: &Key,
    ) -> Result<SecretInfo> {
        validate_name("secret", name)?;
        value.validate()?;
        let plaintext = zeroize::Zeroizing::new(
            serde_json::to_vec(value)
                .map_err(|err| Error::Invalid(format!("secret value: {err}")))?,
        );
        self.inner.write(|tx| {
            self.inner.check_scope(tx, &scope)?;
            self.inner.check_key(tx, key, true)?;
            let id = SecretId::new();
            let sealed = key.seal(&plaintext, &associated_data(id, &scope.key(), name))?;
            let created_at = Timestamp::now();
            if !matches!(scope, Scope::Conversation(_)) {
                tx.prepare_cached("DELETE FROM secrets WHERE scope = ?1 AND name = ?2")?
                    .execute(params![scope.key(), name])?;
            }
            tx.prepare_cached(
                "INSERT INTO secrets (id, scope, name, kind, nonce, ciphertext, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id.as_bytes(),
                scope.key(),
                name,
                value.kind().as_str(),
                sealed.nonce,
                sealed.ciphertext,
                created_at.as_micros()
            ])?;
            if let Scope::Conversation(conversation) = scope {
                let mut conv = self.inner.load_conversation(tx, conversation)?;
                self.inner.append(
                    tx,
                    &mut conv,
                    [NewEvent::plain(EventData::SecretSet { name: name.to_string(), secret_id: id })],
                )?;
            }
            Ok(SecretInfo { name: name.to_string(), scope, kind: value.kind(), created_at })
        })
    }

    /// The secrets set at exactly `scope` (as of the head, for a
    /// conversation), by name. Values are never returned.
    pub fn secrets(&self, scope: Scope) -> Result<Vec<SecretInfo>> {
        self.inner.read(|tx| {
            self.inner.check_scope(tx, &scope)?;
            let names: Vec<String> = match scope {
                Scope::Conversation(conversation) => {
                    let conv = self.inner.load_conversation(tx, conversation)?;
                    let chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
                    self.inner
                        .current_values(tx, &chain, "secret")?
                        .into_iter()
                        .map(|value| value.key)
                        .collect()
                }
                _ => tx
                    .prepare_cached("SELECT name FROM secrets WHERE scope = ?1 ORDER BY name")?
                    .query_map([scope.key()], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?,
            };
            let mut infos = Vec::with_capacity(names.len());
            for name in names {
                if let Some((_, info)) = self.inner.secret_at(tx, &scope, &name)? {
                    infos.push(info);
                }
            }
            Ok(infos)
        })
    }

    /// Removes the secret set at exactly `scope`.
    pub fn delete_secret(&self, scope: Scope, name: &str) -> Result<SecretInfo> {
        self.inner.write(|tx| {
            self.inner.check_scope(tx, &scope)?;
            let (_, info) = self
                .inner
                .secret_at(tx, &scope, name)?
                .ok_or_else(|| Error::not_found("secret", name))?;
            match scope {
                Scope::Conversation(conversation) => {
                    let mut conv = self.inner.load_conversation(tx, conversation)?;
                    self.inner.append(
                        tx,
                        &mut conv,
                        [NewEvent::plain(EventData::SecretDeleted {
                            name: name.to_string(),
                        })],
                    )?;
                }
                _ => {
                    tx.prepare_cached("DELETE FROM secrets WHERE scope = ?1 AND name = ?2")?
                        .execute(params![scope.key(), name])?;
                }
            }
            Ok(info)
        })
    }

    /// Opens the secret `name` as seen from `scope` (narrowest scope wins).
    /// For the executor's use at call time; never print the result.
    pub fn reveal_secret(
        &self,
        scope: Scope,
        name: &str,
        key: &Key,
    ) -> Result<(SecretInfo, SecretValue)> {
        self.inner.read(|tx| {
            self.inner.check_key(tx, key, false)?;
            let (id, info) = self
                .inner
                .find_secret(tx, scope, name)?
                .ok_or_else(|| Error::not_found("secret", name))?;
            // The value was sealed under the scope that set it, which for a
            // conversation secret seen from a fork is the source
            // conversation, not the scope it was looked up from.
            let (sealed_scope, nonce, ciphertext): (String, Vec<u8>, Vec<u8>) = tx
                .prepare_cached("SELECT scope, nonce, ciphertext FROM secrets WHERE id = ?1")?
                .query_row([id.as_bytes()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            let nonce: [u8; NONCE_LEN] = nonce
                .try_into()
                .map_err(|_| Error::Corrupt("secret nonce has the wrong length".into()))?;
            let plaintext = key.open(
                &Sealed { nonce, ciphertext },
                &associated_data(id, &sealed_scope, name),
            )?;
            let value: SecretValue = serde_json::from_slice(&plaintext)
                .map_err(|_| Error::Corrupt(format!("secret {name} does not decode")))?;
            Ok((info, value))
        })
    }

    /// Sets a binding at `scope`, replacing one of the same kind and name.
    /// A secret it names must resolve from that scope.
    pub fn set_binding(&self, scope: Scope, binding: Binding) -> Result<BindingEntry> {
        binding.validate()?;
        self.inner.write(|tx| {
            self.inner.check_scope(tx, &scope)?;
            if let Some(secret) = binding.secret() {
                if self.inner.find_secret(tx, scope, secret)?.is_none() {
                    return Err(Error::NotFound { what: "secret", key: secret.to_string() });
                }
            }
            let created_at = Timestamp::now();
            match scope {
                Scope::Conversation(conversation) => {
                    let mut conv = self.inner.load_conversation(tx, conversation)?;
                    self.inner.append(tx, &mut conv, [NewEvent::plain(EventData::BindingSet { binding: binding.clone() })])?;
                }
                _ => {
                    let config = serde_json::to_string(&binding).expect("bindings serialize");
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO bindings (scope, kind, name, config, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![scope.key(), binding.kind().as_str(), binding.name(), config, created_at.as_micros()])?;
                }
            }
            Ok(BindingEntry { scope, binding, created_at })
        })
    }

    /// The bindings set at exactly `scope`, optionally of one kind, sorted by
    /// kind and name.
    pub fn bindings(&self, scope: Scope, kind: Option<BindingKind>) -> Result<Vec<BindingEntry>> {
        self.inner.read(|tx| {
            self.inner.check_scope(tx, &scope)?;
            let mut entries = Vec::new();
            match scope {
                Scope::Conversation(conversation) => {
                    let conv = self.inner.load_conversation(tx, conversation)?;
                    let chain = self.inner.chain(tx, conv.branch, conv.head_seq)?;
                    for value in self.inner.current_values(tx, &chain, "binding")? {
                        let binding = decode_binding(value.value.as_deref().unwrap_or_default())?;
                        let created_at = self.inner.event_at(tx, value.branch, value.seq)?.created_at;
                        entries.push(BindingEntry { scope, binding, created_at });
                    }
                }
                _ => {
                    let mut statement = tx.prepare_cached(
                        "SELECT config, created_at FROM bindings WHERE scope = ?1 ORDER BY kind, name",
                    )?;
                    let rows = statement.query_map([scope.key()], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
                    for row in rows {
                        let (config, created_at) = row?;
                        entries.push(BindingEntry { scope, binding: decode_binding(&config)?, created_at: Timestamp(created_at) });
                    }
                }
            }
            entries.retain(|entry| kind.is_none_or(|kind| entry.binding.kind() == kind));
            entries.sort_by(|a, b| (a.binding.kind().as_str(), a.binding.name()).cmp(&(b.binding.kind().as_str(), b.binding.name())));
            Ok(entries)
        })
    }

    /// Removes the binding set at exactly `scope`.
    pub fn delete_binding(
        &self,
        scope: Scope,
        kind: BindingKind,
        name: &str,
    ) -> Result<BindingEntry> {
        self.inner.write(|tx| {
            self.inner.check_scope(tx, &scope)?;
            let entry =
                self.inner
                    .binding_at(tx, &scope, kind, name)?
                    .ok_or_else(|| match kind {
                        BindingKind::Model => Error::not_found("model", name),
                        _ => Error::NotFound {
                            what: "binding",
                            key: format!("{kind} {name}"),
                        },
                    })?;
            match scope {
                Scope::Conversation(conversation) => {
                    let mut conv = self.inner.load_conversation(tx, conversation)?;
                    self.inner.append(
                        tx,
                        &mut conv,
                        [NewEvent::plain(EventData::BindingDeleted {
                            binding_kind: kind,
                            name: name.to_string(),
                        })],
                    )?;
                }
                _ => {
                    tx.prepare_cached(
                        "DELETE FROM bindings WHERE scope = ?1 AND kind = ?2 AND name = ?3",
                    )?
                    .execute(params![scope.key(), kind.as_str(), name])?;
                }
            }
            Ok(entry)
        })
    }

    /// Resolves a binding as seen from `scope`: the narrowest scope that has
    /// one of that kind and name wins.
    pub fn resolve_binding(
        &self,
        scope: Scope,
        kind: BindingKind,
        name: &str,
    ) -> Result<BindingEntry> {
        self.inner.read(|tx| {
            self.inner
                .find_binding(tx, scope, kind, name)?
                .ok_or_else(|| Error::NotFound {
                    what: if kind == BindingKind::Model {
                        "model"
                    } else {
                        "binding"
                    },
                    key: name.to_string(),
                })
        })
    }
}
