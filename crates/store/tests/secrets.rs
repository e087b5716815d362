//! Sealed secrets: scope resolution, wrong keys refused before anything is
//! written, ciphertexts bound to their row, and plaintext never reaching
//! the database file or the log.

mod common;

use std::path::Path;

use common::{history, key, new_conversation, new_store, AGENT};
use exo_core::{EventKind, Scope, SecretKind, SecretValue};
use exo_store::{Error, SecretInfo, Store, DB_FILE};

fn api_key(value: &str) -> SecretValue {
    SecretValue::ApiKey {
        value: value.to_string(),
    }
}

fn reveal(store: &Store, scope: Scope, name: &str) -> (Scope, SecretValue) {
    let (info, value) = store.reveal_secret(scope, name, &key(1)).unwrap();
    assert_eq!(info.name, name);
    (info.scope, value)
}

fn names(infos: &[SecretInfo]) -> Vec<&str> {
    infos.iter().map(|info| info.name.as_str()).collect()
}

fn raw_db(store: &Store) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(store.root().join(DB_FILE)).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn
}

/// A raw `secrets` row: id, scope, name, nonce, ciphertext.
type SecretRow = (Vec<u8>, String, String, Vec<u8>, Vec<u8>);

fn secret_rows(store: &Store) -> Vec<SecretRow> {
    let conn = raw_db(store);
    let mut statement = conn
        .prepare("SELECT id, scope, name, nonce, ciphertext FROM secrets ORDER BY scope, name, id")
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

#[test]
fn round_trip_at_every_scope_and_the_narrowest_wins() {
    let (_dir, store) = new_store();
    let k = key(1);
    let agent = store.agent(AGENT).unwrap();
    let conv = new_conversation(&store, "a");
    let plain = new_conversation(&store, "plain");
    let other_agent = store
        .create_agent("Other", Some("other"), Default::default())
        .unwrap();
    let elsewhere = store
        .create_conversation("other", "Elsewhere", Some("elsewhere"), None)
        .unwrap();
    let (root, agent_scope, conv_scope) = (
        Scope::Root,
        Scope::Agent(agent.id),
        Scope::Conversation(conv.id),
    );

    let info = store
        .set_secret(root, "api", &api_key("root-value"), &k)
        .unwrap();
    assert_eq!(
        (info.name.as_str(), info.scope, info.kind),
        ("api", root, SecretKind::ApiKey)
    );
    store
        .set_secret(agent_scope, "api", &api_key("agent-value"), &k)
        .unwrap();
    store
        .set_secret(conv_scope, "api", &api_key("conversation-value"), &k)
        .unwrap();
    let oauth = SecretValue::Oauth {
        access_token: "access".into(),
        refresh_token: Some("refresh".into()),
        expires_at: Some(1_900_000_000),
    };
    store.set_secret(root, "only-root", &oauth, &k).unwrap();

    assert_eq!(reveal(&store, root, "api"), (root, api_key("root-value")));
    assert_eq!(
        reveal(&store, agent_scope, "api"),
        (agent_scope, api_key("agent-value"))
    );
    assert_eq!(
        reveal(&store, conv_scope, "api"),
        (conv_scope, api_key("conversation-value"))
    );
    // A conversation without its own falls back to its agent, one of another
    // agent to the root.
    assert_eq!(
        reveal(&store, Scope::Conversation(plain.id), "api"),
        (agent_scope, api_key("agent-value"))
    );
    assert_eq!(
        reveal(&store, Scope::Conversation(elsewhere.id), "api"),
        (root, api_key("root-value"))
    );
    assert_eq!(
        reveal(&store, Scope::Agent(other_agent.id), "api"),
        (root, api_key("root-value"))
    );
    // A name set only at the root resolves everywhere, OAuth fields intact.
    assert_eq!(
        reveal(&store, conv_scope, "only-root"),
        (root, oauth.clone())
    );
    let missing = store.reveal_secret(conv_scope, "missing", &k);
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );

    // Listing shows exactly the scope's own names.
    assert_eq!(names(&store.secrets(root).unwrap()), ["api", "only-root"]);
    assert_eq!(names(&store.secrets(agent_scope).unwrap()), ["api"]);
    assert_eq!(names(&store.secrets(conv_scope).unwrap()), ["api"]);
    assert!(store
        .secrets(Scope::Conversation(plain.id))
        .unwrap()
        .is_empty());

    // Setting again replaces the value in place at root and agent scope.
    store
        .set_secret(root, "api", &api_key("root-value-2"), &k)
        .unwrap();
    assert_eq!(reveal(&store, root, "api").1, api_key("root-value-2"));
    let root_rows = secret_rows(&store)
        .into_iter()
        .filter(|row| row.1 == "root" && row.2 == "api")
        .count();
    assert_eq!(root_rows, 1, "one row per (scope, name) at root scope");
    store
        .set_secret(conv_scope, "api", &api_key("conversation-value-2"), &k)
        .unwrap();
    assert_eq!(
        reveal(&store, conv_scope, "api").1,
        api_key("conversation-value-2")
    );

    // Deleting the narrowest uncovers the next one out.
    store.delete_secret(conv_scope, "api").unwrap();
    assert_eq!(
        reveal(&store, conv_scope, "api"),
        (agent_scope, api_key("agent-value"))
    );
    store.delete_secret(agent_scope, "api").unwrap();
    assert_eq!(
        reveal(&store, conv_scope, "api"),
        (root, api_key("root-value-2"))
    );
    assert!(matches!(
        store.delete_secret(agent_scope, "api"),
        Err(Error::NotFound { .. })
    ));

    // Conversation secrets are recorded as events that carry no value.
    let kinds: Vec<EventKind> = history(&store, AGENT, "a")
        .iter()
        .map(|e| e.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::ConversationCreated,
            EventKind::SecretSet,
            EventKind::SecretSet,
            EventKind::SecretDeleted
        ]
    );
}

#[test]
fn a_wrong_key_is_refused_and_nothing_is_written() {
    let (_dir, store) = new_store();
    let (right, wrong) = (key(1), key(2));
    let agent = store.agent(AGENT).unwrap();
    let conv = new_conversation(&store, "a");
    let scopes = [
        Scope::Root,
        Scope::Agent(agent.id),
        Scope::Conversation(conv.id),
    ];
    // Before any secret exists, no key is wrong.
    store.verify_key(&wrong).unwrap();
    for scope in scopes {
        store
            .set_secret(scope, "api", &api_key("right-value"), &right)
            .unwrap();
    }
    store.verify_key(&right).unwrap();

    let listed = |store: &Store| scopes.map(|scope| store.secrets(scope).unwrap());
    let before_lists = listed(&store);
    let before_rows = secret_rows(&store);
    let before_events = history(&store, AGENT, "a");

    for scope in scopes {
        for name in ["api", "new-name"] {
            let err = store
                .set_secret(scope, name, &api_key("wrong-value"), &wrong)
                .unwrap_err();
            assert!(matches!(err, Error::WrongKey), "{err:?}");
            assert_eq!(err.to_string(), "cannot decrypt secrets: wrong key?");
            assert_eq!(err.code(), "wrong_key");
        }
        let err = store.reveal_secret(scope, "api", &wrong).unwrap_err();
        assert!(matches!(err, Error::WrongKey), "{err:?}");
        assert_eq!(err.to_string(), "cannot decrypt secrets: wrong key?");
    }
    let err = store.verify_key(&wrong).unwrap_err();
    assert_eq!(err.to_string(), "cannot decrypt secrets: wrong key?");

    assert_eq!(listed(&store), before_lists, "secret lists unchanged");
    assert_eq!(secret_rows(&store), before_rows, "secret rows unchanged");
    assert_eq!(
        history(&store, AGENT, "a"),
        before_events,
        "no events written"
    );
    for scope in scopes {
        assert_eq!(
            store.reveal_secret(scope, "api", &right).unwrap().1,
            api_key("right-value")
        );
    }
}

#[test]
fn a_ciphertext_copied_to_another_row_does_not_open() {
    let (_dir, store) = new_store();
    let k = key(1);
    let agent = store.agent(AGENT).unwrap();
    let conv = new_conversation(&store, "a");
    store
        .set_secret(Scope::Root, "alpha", &api_key("alpha-value"), &k)
        .unwrap();
    store
        .set_secret(Scope::Root, "beta", &api_key("beta-value"), &k)
        .unwrap();
    store
        .set_secret(Scope::Agent(agent.id), "alpha", &api_key("agent-alpha"), &k)
        .unwrap();
    store
        .set_secret(
            Scope::Conversation(conv.id),
            "alpha",
            &api_key("conv-alpha"),
            &k,
        )
        .unwrap();

    let copy = |from: (&str, &str), to: (&str, &str)| {
        let changed = raw_db(&store)
            .execute(
                "UPDATE secrets SET
                     nonce = (SELECT nonce FROM secrets WHERE scope = ?1 AND name = ?2),
                     ciphertext = (SELECT ciphertext FROM secrets WHERE scope = ?1 AND name = ?2)
                 WHERE scope = ?3 AND name = ?4",
                [from.0, from.1, to.0, to.1],
            )
            .unwrap();
        assert_eq!(changed, 1, "copied onto exactly one row");
    };
    let agent_key = Scope::Agent(agent.id).key();
    let conv_key = Scope::Conversation(conv.id).key();

    // Same scope, another name.
    copy(("root", "alpha"), ("root", "beta"));
    let err = store.reveal_secret(Scope::Root, "beta", &k).unwrap_err();
    assert!(matches!(err, Error::WrongKey), "{err:?}");
    assert_eq!(err.to_string(), "cannot decrypt secrets: wrong key?");
    // Same name, another scope.
    copy(("root", "alpha"), (&agent_key, "alpha"));
    let err = store
        .reveal_secret(Scope::Agent(agent.id), "alpha", &k)
        .unwrap_err();
    assert!(matches!(err, Error::WrongKey), "{err:?}");
    copy(("root", "alpha"), (&conv_key, "alpha"));
    let err = store
        .reveal_secret(Scope::Conversation(conv.id), "alpha", &k)
        .unwrap_err();
    assert!(matches!(err, Error::WrongKey), "{err:?}");

    // The source row still opens.
    assert_eq!(
        store.reveal_secret(Scope::Root, "alpha", &k).unwrap().1,
        api_key("alpha-value")
    );
}

fn file_contains(path: &Path, needle: &[u8]) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => bytes.windows(needle.len()).any(|window| window == needle),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => panic!("reading {}: {err}", path.display()),
    }
}

fn assert_not_in_files(root: &Path, needles: &[&str]) {
    let files: Vec<_> = ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| root.join(format!("{DB_FILE}{suffix}")))
        .collect();
    assert!(files[0].exists());
    for file in &files {
        for needle in needles {
            assert!(
                !file_contains(file, needle.as_bytes()),
                "{} contains the plaintext {needle:?}",
                file.display()
            );
        }
    }
}

#[test]
fn plaintext_never_reaches_the_database_or_the_log() {
    let (dir, store) = new_store();
    let k = key(1);
    let agent = store.agent(AGENT).unwrap();
    let conv = new_conversation(&store, "a");
    let needles = [
        "sk-live-ROOT-0123456789abcdef",
        "sk-live-AGENT-0123456789abcdef",
        "sk-live-CONV-0123456789abcdef",
        "oauth-ACCESS-0123456789abcdef",
        "oauth-REFRESH-0123456789abcdef",
    ];
    store
        .set_secret(Scope::Root, "root-key", &api_key(needles[0]), &k)
        .unwrap();
    store
        .set_secret(
            Scope::Agent(agent.id),
            "agent-key",
            &api_key(needles[1]),
            &k,
        )
        .unwrap();
    store
        .set_secret(
            Scope::Conversation(conv.id),
            "conv-key",
            &api_key(needles[2]),
            &k,
        )
        .unwrap();
    let oauth = SecretValue::Oauth {
        access_token: needles[3].into(),
        refresh_token: Some(needles[4].into()),
        expires_at: None,
    };
    let info = store
        .set_secret(Scope::Conversation(conv.id), "oauth", &oauth, &k)
        .unwrap();
    assert!(!format!("{info:?}").contains("0123456789abcdef"));
    // Sanity check of the search itself: the values are really stored
    // (sealed), and a string that is written plainly is found.
    assert_eq!(
        store
            .reveal_secret(Scope::Conversation(conv.id), "oauth", &k)
            .unwrap()
            .1,
        oauth
    );
    let db = store.root().join(DB_FILE);
    let wal = store.root().join(format!("{DB_FILE}-wal"));
    assert!(
        file_contains(&db, b"conv-key") || file_contains(&wal, b"conv-key"),
        "the secret's name is stored in plain text, so the search would find a plaintext value"
    );

    // While the store is open (the values sit in the write-ahead log) ...
    assert_not_in_files(store.root(), &needles);
    // ... in the events ...
    for event in history(&store, AGENT, "a") {
        let json = serde_json::to_string(&event.data).unwrap();
        let debug = format!("{event:?}");
        for needle in needles {
            assert!(
                !json.contains(needle) && !debug.contains(needle),
                "event {json} carries a secret value"
            );
        }
    }
    // ... and after the store is closed and the log checkpointed.
    let root = store.root().to_path_buf();
    drop(store);
    let conn = rusqlite::Connection::open(root.join(DB_FILE)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    assert_not_in_files(&root, &needles);
    let store = common::reopen(dir.path());
    assert_eq!(
        store.reveal_secret(Scope::Root, "root-key", &k).unwrap().1,
        api_key(needles[0])
    );
}
