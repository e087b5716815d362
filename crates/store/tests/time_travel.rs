//! Fork and rewind: shared event ids, isolation of the two sides, the
//! `rewound` and `forked` markers, redo, values resolved as of the head, and
//! refused moves that leave the store unchanged.

mod common;

use common::{custom, history, key, message, new_conversation, new_store, AGENT};
use exo_core::{
    Binding, BindingKind, Event, EventData, EventId, EventKind, Role, Scope, SecretValue,
};
use exo_store::{Error, EventQuery, ForkOptions, Store};
use serde_json::json;

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

fn fork_at(
    store: &Store,
    source: &str,
    slug: &str,
    at: Option<EventId>,
) -> exo_store::Conversation {
    store
        .fork(
            AGENT,
            source,
            ForkOptions {
                at,
                name: Some(format!("Fork {slug}")),
                slug: Some(slug.to_string()),
                workspace: None,
            },
        )
        .unwrap()
}

fn append_n(store: &Store, conversation: &str, label: &str, n: usize) -> Vec<Event> {
    let events = (0..n)
        .map(|i| custom("step", json!({"label": label, "i": i})))
        .collect();
    store.append(AGENT, conversation, events, None).unwrap()
}

fn assert_not_found<T: std::fmt::Debug>(result: exo_store::Result<T>, what: &str) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected Error::NotFound, got {other:?}"),
    }
}

#[test]
fn fork_shares_events_with_their_ids_and_times() {
    let (_dir, store) = new_store();
    let source = new_conversation(&store, "a");
    append_n(&store, "a", "a", 4);
    let a = history(&store, AGENT, "a");

    let fork = fork_at(&store, "a", "b", None);
    let b = history(&store, AGENT, "b");
    assert_eq!(b.len(), a.len() + 1);
    // The shared prefix is the very same events: ids, times, data and the
    // conversation that recorded them.
    assert_eq!(&b[..a.len()], &a[..]);
    assert!(b[..a.len()].iter().all(|e| e.conversation == source.id));
    let marker = b.last().unwrap();
    assert_eq!(
        marker.data,
        EventData::Forked {
            from_conversation: source.id,
            from_event: a.last().unwrap().id
        }
    );
    assert_eq!(marker.conversation, fork.id);
    assert_eq!(fork.head, marker.id);
    assert_eq!(fork.length(), b.len() as u64);
    assert_eq!(fork.forked_from, Some((source.id, a.last().unwrap().id)));
    // Each shared event reads the same through either conversation.
    for event in &a {
        assert_eq!(&store.event(AGENT, "b", event.id).unwrap(), event);
    }

    // A fork at an earlier event shares only the prefix up to it.
    let at = a[2].id;
    let early = fork_at(&store, "a", "c", Some(at));
    let c = history(&store, AGENT, "c");
    assert_eq!(&c[..3], &a[..3]);
    assert_eq!(c.len(), 4);
    assert_eq!(
        c[3].data,
        EventData::Forked {
            from_conversation: source.id,
            from_event: at
        }
    );
    assert_eq!(early.forked_from, Some((source.id, at)));
    assert_not_found(
        store.event(AGENT, "c", a[3].id),
        "an event after the fork point",
    );

    // A fork of a fork shares through both.
    fork_at(&store, "b", "d", None);
    let d = history(&store, AGENT, "d");
    assert_eq!(&d[..b.len()], &b[..]);
    assert_eq!(
        d.last().unwrap().data,
        EventData::Forked {
            from_conversation: fork.id,
            from_event: fork.head
        }
    );

    // The default slug is derived and made unique.
    let auto = store.fork(AGENT, "a", ForkOptions::default()).unwrap();
    assert_eq!(auto.slug, "a-fork");
    let auto2 = store.fork(AGENT, "a", ForkOptions::default()).unwrap();
    assert_eq!(auto2.slug, "a-fork-2");
    let taken = store.fork(
        AGENT,
        "a",
        ForkOptions {
            slug: Some("b".into()),
            ..Default::default()
        },
    );
    assert!(
        matches!(taken, Err(Error::AlreadyExists { .. })),
        "{taken:?}"
    );
}

#[test]
fn appends_after_a_fork_stay_on_their_side() {
    let (_dir, store) = new_store();
    new_conversation(&store, "a");
    append_n(&store, "a", "shared", 3);
    fork_at(&store, "a", "b", None);
    let a_before = history(&store, AGENT, "a");
    let b_before = history(&store, AGENT, "b");

    let a_new = append_n(&store, "a", "a-only", 2);
    let b_new = append_n(&store, "b", "b-only", 3);
    let a = history(&store, AGENT, "a");
    let b = history(&store, AGENT, "b");
    assert_eq!(ids(&a), [ids(&a_before), ids(&a_new)].concat());
    assert_eq!(ids(&b), [ids(&b_before), ids(&b_new)].concat());
    // Both sides continue at the same depth with different events.
    assert_eq!(
        store.conversation(AGENT, "a").unwrap().head_seq,
        a.len() as i64 - 1
    );
    assert_eq!(
        store.conversation(AGENT, "b").unwrap().head_seq,
        b.len() as i64 - 1
    );

    // Neither side can reach the other's new events, by id, as a cursor, as
    // a fork point or as a rewind target.
    assert_not_found(store.event(AGENT, "b", a_new[0].id), "a's event from b");
    assert_not_found(store.event(AGENT, "a", b_new[0].id), "b's event from a");
    let cursor = EventQuery {
        after: Some(a_new[0].id),
        ..Default::default()
    };
    assert_not_found(store.events(AGENT, "b", &cursor), "a's event as b's cursor");
    let cursor = EventQuery {
        before: Some(b_new[0].id),
        ..Default::default()
    };
    assert_not_found(store.events(AGENT, "a", &cursor), "b's event as a's cursor");
    assert_not_found(
        store.fork(
            AGENT,
            "b",
            ForkOptions {
                at: Some(a_new[1].id),
                slug: Some("x".into()),
                ..Default::default()
            },
        ),
        "forking b at a's event",
    );
    assert_not_found(
        store.rewind(AGENT, "b", a_new[1].id, None),
        "rewinding b to a's event",
    );
    assert_not_found(
        store.rewind(AGENT, "a", b_new[1].id, None),
        "rewinding a to b's event",
    );
    assert_eq!(history(&store, AGENT, "a"), a);
    assert_eq!(history(&store, AGENT, "b"), b);
}

#[test]
fn rewind_records_the_move_and_redo_restores_the_abandoned_head() {
    let (_dir, store) = new_store();
    new_conversation(&store, "a");
    append_n(&store, "a", "first", 5);
    let original = history(&store, AGENT, "a");
    let old_head = original.last().unwrap().id;
    let target = original[2].id;

    let outcome = store.rewind(AGENT, "a", target, None).unwrap();
    let rewound = outcome.event.expect("a rewound event");
    assert_eq!(
        rewound.data,
        EventData::Rewound {
            from_event: old_head,
            to_event: target,
            snapshot: None,
        }
    );
    assert_eq!(outcome.conversation.head, rewound.id);
    let after = history(&store, AGENT, "a");
    assert_eq!(
        ids(&after),
        [ids(&original[..3]), vec![rewound.id]].concat()
    );
    assert_eq!(&after[..3], &original[..3]);
    let conv = store.conversation(AGENT, "a").unwrap();
    assert_eq!((conv.head, conv.length()), (rewound.id, 4));
    // Nothing was deleted: the abandoned events are still readable.
    for event in &original[3..] {
        assert_eq!(&store.event(AGENT, "a", event.id).unwrap(), event);
    }
    // But they are not on the history: not a cursor.
    let cursor = EventQuery {
        after: Some(original[4].id),
        ..Default::default()
    };
    assert_not_found(
        store.events(AGENT, "a", &cursor),
        "an abandoned event as a cursor",
    );

    // New appends continue the new history.
    let new = append_n(&store, "a", "second", 2);
    let second_head = new[1].id;

    // Redo: rewind forward to the abandoned head.
    let outcome = store.rewind(AGENT, "a", old_head, None).unwrap();
    let redo = outcome.event.unwrap();
    assert_eq!(
        redo.data,
        EventData::Rewound {
            from_event: second_head,
            to_event: old_head,
            snapshot: None,
        }
    );
    let redone = history(&store, AGENT, "a");
    assert_eq!(ids(&redone), [ids(&original), vec![redo.id]].concat());
    // And back again to the second branch's head.
    let outcome = store.rewind(AGENT, "a", second_head, None).unwrap();
    let back = history(&store, AGENT, "a");
    assert_eq!(
        ids(&back),
        [ids(&after), ids(&new), vec![outcome.event.unwrap().id]].concat()
    );

    // Rewinding to the head changes nothing and records nothing.
    let head = back.last().unwrap().id;
    let outcome = store.rewind(AGENT, "a", head, None).unwrap();
    assert!(outcome.event.is_none());
    assert_eq!(outcome.conversation.head, head);
    assert_eq!(history(&store, AGENT, "a"), back);

    // Rewinds are recorded and queryable by kind.
    let rewinds = store
        .events(
            AGENT,
            "a",
            &EventQuery {
                kind: Some(EventKind::Rewound),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        rewinds.events.len(),
        2,
        "the first rewind and the last one are on this history"
    );
}

#[test]
fn rewind_to_an_unknown_or_foreign_event_is_not_found() {
    let (_dir, store) = new_store();
    new_conversation(&store, "a");
    new_conversation(&store, "other");
    append_n(&store, "a", "a", 2);
    let foreign = append_n(&store, "other", "other", 2);
    let before = history(&store, AGENT, "a");
    assert_not_found(
        store.rewind(AGENT, "a", foreign[0].id, None),
        "an event of another conversation",
    );
    assert_not_found(
        store.rewind(AGENT, "a", EventId::new(), None),
        "an event that does not exist",
    );
    // The other conversation's creation event is not ours either.
    let other_first = history(&store, AGENT, "other")[0].id;
    assert_not_found(
        store.rewind(AGENT, "a", other_first, None),
        "another conversation's first event",
    );
    assert_eq!(history(&store, AGENT, "a"), before);

    // A fork may rewind to shared events before its fork point, but not to
    // its source's events after it.
    fork_at(&store, "a", "b", Some(before[1].id));
    let b = history(&store, AGENT, "b");
    store.rewind(AGENT, "b", before[0].id, None).unwrap();
    assert_not_found(
        store.rewind(AGENT, "b", before[2].id, None),
        "the source's event after the fork point",
    );
    // Redo to the fork's abandoned head still works.
    store
        .rewind(AGENT, "b", b.last().unwrap().id, None)
        .unwrap();
    assert_eq!(&history(&store, AGENT, "b")[..b.len()], &b[..]);
}

/// A fork's history once showed its source's events up to the fork point.
/// After the fork rewinds to before the fork point, those events are on
/// the history it rewound away from, so rewinding forward to them is redo
/// just as it is for the fork's own events.
#[test]
fn fork_can_redo_to_a_shared_event_it_rewound_away_from() {
    let (_dir, store) = new_store();
    new_conversation(&store, "a");
    append_n(&store, "a", "a", 4);
    let a = history(&store, AGENT, "a");
    fork_at(&store, "a", "b", None);
    let b = history(&store, AGENT, "b");
    assert_eq!(b[3].id, a[3].id, "b's history shows a[3]");
    store.rewind(AGENT, "b", a[1].id, None).unwrap();
    // a[3] was on b's history; the head moved away from it. Redo to it.
    let outcome = store.rewind(AGENT, "b", a[3].id, None);
    let outcome = outcome.expect("b rewinds forward to a shared event it left behind");
    assert_eq!(
        ids(&history(&store, AGENT, "b")),
        [ids(&a[..4]), vec![outcome.event.unwrap().id]].concat()
    );
}

#[test]
fn head_conflicts_leave_the_store_unchanged() {
    let (dir, store) = new_store();
    new_conversation(&store, "a");
    let first = append_n(&store, "a", "x", 2);
    let stale = first[0].id;
    let head = first[1].id;
    let before = history(&store, AGENT, "a");
    let db_changes = |store: &Store| store.conversation(AGENT, "a").unwrap();
    let conv_before = db_changes(&store);

    match store.append(AGENT, "a", vec![message(Role::User, "late")], Some(stale)) {
        Err(Error::HeadConflict { expected, actual }) => {
            assert_eq!((expected, actual), (stale, head))
        }
        other => panic!("append with a stale head: {other:?}"),
    }
    match store.rewind(AGENT, "a", before[0].id, Some(stale)) {
        Err(Error::HeadConflict { expected, actual }) => {
            assert_eq!((expected, actual), (stale, head))
        }
        other => panic!("rewind with a stale head: {other:?}"),
    }
    let handle = store
        .begin_turn(AGENT, "a", message(Role::User, "turn"))
        .unwrap();
    let turn_head = handle.started_events().last().unwrap().id;
    match handle.append(vec![message(Role::Assistant, "late")], Some(head)) {
        Err(Error::HeadConflict { expected, actual }) => {
            assert_eq!((expected, actual), (head, turn_head))
        }
        other => panic!("turn append with a stale head: {other:?}"),
    }
    let during_turn = history(&store, AGENT, "a");
    assert_eq!(&during_turn[..before.len()], &before[..]);
    assert_eq!(
        during_turn.len(),
        before.len() + 3,
        "only the turn's start was written"
    );
    handle
        .append(vec![message(Role::Assistant, "ok")], Some(turn_head))
        .unwrap();
    handle.finish(exo_core::TurnStatus::Completed).unwrap();
    drop(handle);

    // A conflict leaves everything as it was, also for a fresh handle on the
    // file (nothing half-committed).
    let current = history(&store, AGENT, "a");
    let head = current.last().unwrap().id;
    assert!(matches!(
        store.append(AGENT, "a", vec![message(Role::User, "x")], Some(stale)),
        Err(Error::HeadConflict { .. })
    ));
    assert!(matches!(
        store.rewind(AGENT, "a", stale, Some(stale)),
        Err(Error::HeadConflict { .. })
    ));
    let fresh = common::reopen(dir.path());
    assert_eq!(history(&fresh, AGENT, "a"), current);
    let conv = db_changes(&fresh);
    assert_eq!((conv.head, conv.head_seq), (head, current.len() as i64 - 1));
    assert_eq!(conv.id, conv_before.id);

    // The right expected head succeeds.
    store
        .append(AGENT, "a", vec![message(Role::User, "on time")], Some(head))
        .unwrap();
    store
        .rewind(
            AGENT,
            "a",
            stale,
            Some(store.conversation(AGENT, "a").unwrap().head),
        )
        .unwrap();
}

#[test]
fn artifacts_resolve_as_of_the_head_across_fork_and_rewind() {
    let (_dir, store) = new_store();
    new_conversation(&store, "a");
    let v1 = store
        .put_artifact(AGENT, "a", "notes/plan.md", b"one", Some("text/markdown"))
        .unwrap();
    let v2 = store
        .put_artifact(AGENT, "a", "notes/plan.md", b"two", None)
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    let other = store
        .put_artifact(AGENT, "a", "other.txt", b"other", None)
        .unwrap();

    // Fork after v2; the source then writes v3.
    fork_at(&store, "a", "b", None);
    let v3 = store
        .put_artifact(AGENT, "a", "notes/plan.md", b"three", None)
        .unwrap();
    assert_eq!(v3.version, 3);
    let (found, bytes) = store
        .get_artifact(AGENT, "b", "notes/plan.md", None)
        .unwrap();
    assert_eq!((found, bytes.as_slice()), (v2.clone(), &b"two"[..]));
    assert_not_found(
        store.get_artifact(AGENT, "b", "notes/plan.md", Some(3)),
        "a's v3 from the fork",
    );
    assert_eq!(
        store.list_artifacts(AGENT, "b").unwrap(),
        [v2.clone(), other.clone()]
    );
    assert_eq!(
        store.list_artifacts(AGENT, "a").unwrap(),
        [v3.clone(), other.clone()]
    );
    // The fork's own v3 is its own.
    let b3 = store
        .put_artifact(AGENT, "b", "notes/plan.md", b"b three", None)
        .unwrap();
    assert_eq!(b3.version, 3);
    assert_eq!(
        store
            .get_artifact(AGENT, "a", "notes/plan.md", None)
            .unwrap()
            .1,
        b"three"
    );
    assert_eq!(
        store
            .get_artifact(AGENT, "b", "notes/plan.md", None)
            .unwrap()
            .1,
        b"b three"
    );
    assert_eq!(
        store
            .get_artifact(AGENT, "b", "notes/plan.md", Some(1))
            .unwrap()
            .1,
        b"one"
    );

    // A fork at v1's event sees v1 only, and nothing of other.txt.
    fork_at(&store, "a", "c", Some(v1.event));
    assert_eq!(
        store.list_artifacts(AGENT, "c").unwrap(),
        std::slice::from_ref(&v1)
    );
    assert_not_found(
        store.get_artifact(AGENT, "c", "other.txt", None),
        "an artifact written after the fork point",
    );

    // Rewind a to v2: v3 is no longer current, and the next write is v3 again.
    let abandoned = store.conversation(AGENT, "a").unwrap().head;
    store.rewind(AGENT, "a", v2.event, None).unwrap();
    assert_eq!(
        store
            .get_artifact(AGENT, "a", "notes/plan.md", None)
            .unwrap(),
        (v2.clone(), b"two".to_vec())
    );
    assert_not_found(
        store.get_artifact(AGENT, "a", "notes/plan.md", Some(3)),
        "an abandoned version",
    );
    assert_not_found(
        store.get_artifact(AGENT, "a", "other.txt", None),
        "an artifact written after the target",
    );
    let versions: Vec<u64> = store
        .artifact_versions(AGENT, "a", "notes/plan.md")
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [1, 2]);
    let again = store
        .put_artifact(AGENT, "a", "notes/plan.md", b"three again", None)
        .unwrap();
    assert_eq!(again.version, 3);
    assert_eq!(
        store
            .get_artifact(AGENT, "a", "notes/plan.md", Some(3))
            .unwrap()
            .1,
        b"three again"
    );

    // Redo to the abandoned head brings the old v3 back.
    store.rewind(AGENT, "a", abandoned, None).unwrap();
    assert_eq!(
        store
            .get_artifact(AGENT, "a", "notes/plan.md", None)
            .unwrap(),
        (v3.clone(), b"three".to_vec())
    );
    assert_eq!(store.list_artifacts(AGENT, "a").unwrap(), [v3, other]);
}

fn env_binding(secret: &str) -> Binding {
    Binding::Env {
        name: "TOKEN".into(),
        secret: secret.into(),
    }
}

#[test]
fn bindings_resolve_as_of_the_head_across_fork_and_rewind() {
    let (_dir, store) = new_store();
    let k = key(7);
    let conv = new_conversation(&store, "a");
    let value = |v: &str| SecretValue::ApiKey { value: v.into() };
    for name in ["root-tok", "first-tok", "second-tok"] {
        store
            .set_secret(Scope::Root, name, &value(name), &k)
            .unwrap();
    }
    store
        .set_binding(Scope::Root, env_binding("root-tok"))
        .unwrap();
    let resolve = |slug: &str| {
        let id = store.conversation(AGENT, slug).unwrap().id;
        store
            .resolve_binding(Scope::Conversation(id), BindingKind::Env, "TOKEN")
            .unwrap()
    };
    assert_eq!(resolve("a").scope, Scope::Root);

    let start = store.conversation(AGENT, "a").unwrap().head;
    store
        .set_binding(Scope::Conversation(conv.id), env_binding("first-tok"))
        .unwrap();
    let first_head = store.conversation(AGENT, "a").unwrap().head;
    let log = history(&store, AGENT, "a");
    assert_eq!(log.last().unwrap().kind(), EventKind::BindingSet);
    let fork = fork_at(&store, "a", "b", None);
    store
        .set_binding(Scope::Conversation(conv.id), env_binding("second-tok"))
        .unwrap();

    let a = resolve("a");
    assert_eq!(
        (a.scope, a.binding),
        (Scope::Conversation(conv.id), env_binding("second-tok"))
    );
    let b = resolve("b");
    assert_eq!(
        b.binding,
        env_binding("first-tok"),
        "the fork sees the binding as of its fork point"
    );
    assert_eq!(b.scope, Scope::Conversation(fork.id));
    assert_eq!(
        store
            .bindings(Scope::Conversation(fork.id), None)
            .unwrap()
            .len(),
        1
    );

    // Deleting in the fork does not touch the source.
    store
        .delete_binding(Scope::Conversation(fork.id), BindingKind::Env, "TOKEN")
        .unwrap();
    assert_eq!(resolve("b").scope, Scope::Root);
    assert_eq!(resolve("a").binding, env_binding("second-tok"));

    // Rewinding undoes: to the first binding, then to before any.
    let abandoned = store.conversation(AGENT, "a").unwrap().head;
    store.rewind(AGENT, "a", first_head, None).unwrap();
    assert_eq!(resolve("a").binding, env_binding("first-tok"));
    store.rewind(AGENT, "a", start, None).unwrap();
    assert_eq!(resolve("a").scope, Scope::Root);
    assert!(store
        .bindings(Scope::Conversation(conv.id), None)
        .unwrap()
        .is_empty());
    // Redo brings the newest back.
    store.rewind(AGENT, "a", abandoned, None).unwrap();
    assert_eq!(resolve("a").binding, env_binding("second-tok"));
}

#[test]
fn conversation_secrets_are_undone_by_rewind() {
    let (_dir, store) = new_store();
    let k = key(9);
    let conv = new_conversation(&store, "a");
    let scope = Scope::Conversation(conv.id);
    let value = |v: &str| SecretValue::ApiKey { value: v.into() };
    store
        .set_secret(Scope::Root, "api", &value("root-value"), &k)
        .unwrap();
    let start = store.conversation(AGENT, "a").unwrap().head;
    store.set_secret(scope, "api", &value("first"), &k).unwrap();
    let first_head = store.conversation(AGENT, "a").unwrap().head;
    store
        .set_secret(scope, "api", &value("second"), &k)
        .unwrap();
    assert_eq!(
        store.reveal_secret(scope, "api", &k).unwrap().1,
        value("second")
    );

    let abandoned = store.conversation(AGENT, "a").unwrap().head;
    store.rewind(AGENT, "a", first_head, None).unwrap();
    assert_eq!(
        store.reveal_secret(scope, "api", &k).unwrap().1,
        value("first")
    );
    store.rewind(AGENT, "a", start, None).unwrap();
    let (info, revealed) = store.reveal_secret(scope, "api", &k).unwrap();
    assert_eq!((info.scope, revealed), (Scope::Root, value("root-value")));
    assert!(store.secrets(scope).unwrap().is_empty());
    store.rewind(AGENT, "a", abandoned, None).unwrap();
    assert_eq!(
        store.reveal_secret(scope, "api", &k).unwrap().1,
        value("second")
    );
    assert_eq!(store.secrets(scope).unwrap().len(), 1);
}

/// A conversation-scoped secret travels with a fork: the fork lists it and
/// bindings in the fork may name it, so revealing it from the fork must
/// give the value set before the fork point.
#[test]
fn conversation_secrets_follow_a_fork() {
    let (_dir, store) = new_store();
    let k = key(9);
    let conv = new_conversation(&store, "a");
    let value = |v: &str| SecretValue::ApiKey { value: v.into() };
    store
        .set_secret(
            Scope::Conversation(conv.id),
            "api",
            &value("before-fork"),
            &k,
        )
        .unwrap();
    let fork = fork_at(&store, "a", "b", None);
    store
        .set_secret(
            Scope::Conversation(conv.id),
            "api",
            &value("after-fork"),
            &k,
        )
        .unwrap();

    assert_eq!(
        store
            .reveal_secret(Scope::Conversation(conv.id), "api", &k)
            .unwrap()
            .1,
        value("after-fork")
    );
    let listed = store.secrets(Scope::Conversation(fork.id)).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["api"]
    );
    let (info, revealed) = store
        .reveal_secret(Scope::Conversation(fork.id), "api", &k)
        .expect("revealing a conversation secret inherited by a fork");
    assert_eq!(info.name, "api");
    assert_eq!(revealed, value("before-fork"));
}

/// Rewrites the body (and kind column) of the event `id` in place, the way
/// a newer exo would have written it.
fn store_as_a_newer_exo(store: &Store, id: EventId, kind: &str, body: &str) {
    let conn = rusqlite::Connection::open(store.root().join(exo_store::DB_FILE)).unwrap();
    let changed = conn
        .execute(
            "UPDATE events SET kind = ?1, body = ?2 WHERE id = ?3",
            rusqlite::params![kind, body, id.as_bytes()],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[test]
fn events_a_newer_exo_stored_are_read_raw_and_crossed_by_fork_and_rewind() {
    let (_dir, store) = new_store();
    new_conversation(&store, "a");
    let appended = store
        .append(
            AGENT,
            "a",
            vec![
                custom("marker", json!(0)),
                custom("marker", json!(1)),
                message(Role::User, "after"),
            ],
            None,
        )
        .unwrap();
    let unknown_kind = r#"{"item":{"id":"i1"},"kind":"codex.item"}"#;
    let unknown_field = r#"{"kind":"turn_ended","status":"completed","reason":"done"}"#;
    store_as_a_newer_exo(&store, appended[0].id, "codex.item", unknown_kind);
    store_as_a_newer_exo(&store, appended[1].id, "turn_ended", unknown_field);

    let events = history(&store, AGENT, "a");
    assert_eq!(events.len(), 4);
    for (event, (name, body)) in events[1..3]
        .iter()
        .zip([("codex.item", unknown_kind), ("turn_ended", unknown_field)])
    {
        assert!(matches!(event.data, EventData::Other(_)), "{event:?}");
        assert_eq!(event.kind(), EventKind::Other);
        assert_eq!(event.data.kind_name(), name);
        assert_eq!(serde_json::to_string(&event.data).unwrap(), body);
        assert_eq!(&store.event(AGENT, "a", event.id).unwrap(), event);
    }
    // The kind filter goes by the stored kind; `Other` names none.
    let ended = store
        .events(
            AGENT,
            "a",
            &EventQuery {
                kind: Some(EventKind::TurnEnded),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(ids(&ended.events), [events[2].id]);

    let fork = fork_at(&store, "a", "f", Some(events[1].id));
    let forked = history(&store, AGENT, &fork.slug);
    assert_eq!(&forked[..2], &events[..2]);
    store.rewind(AGENT, "a", events[2].id, None).unwrap();
    let rewound = history(&store, AGENT, "a");
    assert_eq!(&rewound[..3], &events[..3]);
    assert_eq!(rewound[3].kind(), EventKind::Rewound);

    // What was read raw is never written: not even through the library.
    let raw = events[1].data.clone();
    let before = history(&store, AGENT, "a");
    let err = store.append(AGENT, "a", vec![raw], None).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert!(err.to_string().contains("\"codex.item\""), "{err}");
    assert_eq!(history(&store, AGENT, "a"), before);
}

fn compaction(summary: &str) -> EventData {
    EventData::Custom {
        custom_type: exo_core::COMPACTION_TYPE.to_string(),
        payload: json!({ "summary": summary }),
    }
}

fn latest_compaction(store: &Store, conversation: &str, before: Option<EventId>) -> Option<String> {
    store
        .latest_compaction(AGENT, conversation, before)
        .unwrap()
        .map(|event| match event.data {
            EventData::Custom { payload, .. } => payload["summary"].as_str().unwrap().to_owned(),
            other => panic!("a compaction was expected, not {other:?}"),
        })
}

#[test]
fn the_newest_compaction_is_found_as_of_the_head_across_fork_and_rewind() {
    let (_dir, store) = new_store();
    new_conversation(&store, "a");
    assert_eq!(latest_compaction(&store, "a", None), None);
    append_n(&store, "a", "a", 3);
    // A custom event of another type is not a compaction.
    let first = store
        .append(
            AGENT,
            "a",
            vec![
                compaction("one"),
                custom("compaction", json!({"summary": "no"})),
            ],
            None,
        )
        .unwrap();
    append_n(&store, "a", "a", 3);
    let second = store
        .append(AGENT, "a", vec![compaction("two")], None)
        .unwrap();
    let after_second = append_n(&store, "a", "a", 2);
    assert_eq!(latest_compaction(&store, "a", None).as_deref(), Some("two"));
    // Before an event: the newest one strictly before it.
    assert_eq!(
        latest_compaction(&store, "a", Some(second[0].id)).as_deref(),
        Some("one")
    );
    assert_eq!(latest_compaction(&store, "a", Some(first[0].id)), None);
    assert_not_found(
        store.latest_compaction(AGENT, "a", Some(EventId::new())),
        "an event not on the history",
    );

    // A fork at or after a compaction sees it; one before it does not.
    fork_at(&store, "a", "after", Some(after_second[0].id));
    assert_eq!(
        latest_compaction(&store, "after", None).as_deref(),
        Some("two")
    );
    fork_at(&store, "a", "between", Some(first[1].id));
    assert_eq!(
        latest_compaction(&store, "between", None).as_deref(),
        Some("one")
    );

    // Rewound away, a compaction no longer applies; redo brings it back.
    let head = after_second[1].id;
    store.rewind(AGENT, "a", first[1].id, None).unwrap();
    assert_eq!(latest_compaction(&store, "a", None).as_deref(), Some("one"));
    append_n(&store, "a", "new", 2);
    assert_eq!(latest_compaction(&store, "a", None).as_deref(), Some("one"));
    store.rewind(AGENT, "a", first[0].id, None).unwrap();
    assert_eq!(latest_compaction(&store, "a", None).as_deref(), Some("one"));
    let history_before = history(&store, AGENT, "a");
    store
        .rewind(AGENT, "a", history_before[1].id, None)
        .unwrap();
    assert_eq!(latest_compaction(&store, "a", None), None);
    store.rewind(AGENT, "a", head, None).unwrap();
    assert_eq!(latest_compaction(&store, "a", None).as_deref(), Some("two"));
    // A compaction appended on the rewound branch is found on it alone.
    store.rewind(AGENT, "a", first[1].id, None).unwrap();
    store
        .append(AGENT, "a", vec![compaction("three")], None)
        .unwrap();
    assert_eq!(
        latest_compaction(&store, "a", None).as_deref(),
        Some("three")
    );
    assert_eq!(
        latest_compaction(&store, "after", None).as_deref(),
        Some("two")
    );
}
