//! Turns and sessions: what `begin_turn` records, busy conversations,
//! idempotent finish, and turns left open by a dropped store or a killed
//! process being closed as interrupted.

mod common;

use std::time::Duration;

use common::{
    child_role, history, message, new_conversation, new_store, reopen, say, spawn_self, AGENT,
};
use exo_core::{Event, EventData, EventKind, Role, SessionEndReason, TurnId, TurnStatus};
use exo_store::{Error, EventQuery, OpenMode, Store};

const CONV: &str = "chat";

/// Set (to the store's root) when this binary runs as the child of
/// [`turn_left_open_by_killed_process_is_interrupted`].
const CHILD_ENV: &str = "EXO_STORE_TEST_TURN_CHILD_ROOT";

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(Event::kind).collect()
}

fn assert_busy<T: std::fmt::Debug>(result: exo_store::Result<T>, what: &str) {
    match result {
        Err(Error::Busy(_)) => {}
        other => panic!("{what}: expected Error::Busy, got {other:?}"),
    }
}

#[test]
fn begin_turn_records_session_turn_and_input_at_once() {
    let (_dir, store) = new_store();
    let conv = new_conversation(&store, CONV);
    let input = message(Role::User, "hello");
    let handle = store.begin_turn(AGENT, CONV, input.clone()).unwrap();
    let (session, turn) = (handle.session(), handle.id());
    assert_eq!(handle.conversation(), conv.id);

    let started = handle.started_events();
    assert_eq!(
        kinds(started),
        [
            EventKind::SessionStarted,
            EventKind::TurnStarted,
            EventKind::Message
        ]
    );
    assert!(
        started.iter().all(|e| e.session == Some(session)),
        "all share the session: {started:?}"
    );
    assert_eq!(started[0].turn, None, "session_started belongs to no turn");
    assert_eq!(started[1].turn, Some(turn));
    assert_eq!(started[2].turn, Some(turn));
    assert_eq!(started[2].data, input);

    // They are what the log holds, right after conversation_created.
    let log = history(&store, AGENT, CONV);
    assert_eq!(
        kinds(&log),
        [
            EventKind::ConversationCreated,
            EventKind::SessionStarted,
            EventKind::TurnStarted,
            EventKind::Message
        ]
    );
    assert_eq!(&log[1..], started);
    let conv = store.conversation(AGENT, CONV).unwrap();
    assert_eq!(conv.open_turn, Some(turn));
    assert_eq!(conv.open_session, Some(session));
    assert_eq!(conv.head, started[2].id);
    assert_eq!(store.turn(turn).unwrap().status, None);

    // A turn's input must be a user message; nothing is written otherwise.
    let err = store
        .begin_turn(AGENT, CONV, message(Role::Assistant, "hi"))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");

    // A second turn while this one is open is refused and writes nothing.
    assert_busy(
        store.begin_turn(AGENT, CONV, message(Role::User, "again")),
        "second begin_turn",
    );
    assert_eq!(history(&store, AGENT, CONV).len(), 4);
    handle.finish(TurnStatus::Completed).unwrap();
}

#[test]
fn turn_appends_finish_idempotently_and_reuse_the_session() {
    let (_dir, store) = new_store();
    let conv = new_conversation(&store, CONV);
    let handle = store
        .begin_turn(AGENT, CONV, message(Role::User, "hello"))
        .unwrap();
    let (session, turn) = (handle.session(), handle.id());

    let appended = handle
        .append(
            vec![
                message(Role::Assistant, "thinking"),
                EventData::ToolCall {
                    call_id: "c1".into(),
                    name: "shell".into(),
                    arguments: serde_json::json!({"cmd": "ls"}),
                },
                EventData::ToolResult {
                    call_id: "c1".into(),
                    output: serde_json::json!("a b"),
                    is_error: false,
                },
            ],
            None,
        )
        .unwrap();
    assert_eq!(appended.len(), 3);
    assert!(appended
        .iter()
        .all(|e| e.session == Some(session) && e.turn == Some(turn)));
    // Events appended outside the turn belong to no turn.
    let outside = store
        .append(AGENT, CONV, vec![message(Role::System, "note")], None)
        .unwrap();
    assert_eq!((outside[0].session, outside[0].turn), (None, None));

    assert_eq!(
        handle.finish(TurnStatus::Completed).unwrap(),
        TurnStatus::Completed
    );
    // Finishing again, with another status, returns the first and writes nothing.
    let before = history(&store, AGENT, CONV);
    assert_eq!(
        handle.finish(TurnStatus::Failed).unwrap(),
        TurnStatus::Completed
    );
    assert_eq!(
        store.finish_turn(turn, TurnStatus::Cancelled).unwrap(),
        TurnStatus::Completed
    );
    assert_eq!(history(&store, AGENT, CONV), before);
    let ended: Vec<&Event> = before
        .iter()
        .filter(|e| e.kind() == EventKind::TurnEnded)
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        ended[0].data,
        EventData::TurnEnded {
            status: TurnStatus::Completed
        }
    );
    assert_eq!(
        (ended[0].session, ended[0].turn),
        (Some(session), Some(turn))
    );
    let info = store.turn(turn).unwrap();
    assert_eq!(info.status, Some(TurnStatus::Completed));
    assert!(info.ended_at.is_some());

    // An ended turn takes no more events.
    let err = handle
        .append(vec![message(Role::Assistant, "late")], None)
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");

    // The turn filter finds exactly the turn's events.
    let page = store
        .events(
            AGENT,
            CONV,
            &EventQuery {
                turn: Some(turn),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        kinds(&page.events),
        [
            EventKind::TurnStarted,
            EventKind::Message,
            EventKind::Message,
            EventKind::ToolCall,
            EventKind::ToolResult,
            EventKind::TurnEnded
        ]
    );

    // The next turn runs in the same session: no second session_started.
    let second = store
        .begin_turn(AGENT, CONV, message(Role::User, "more"))
        .unwrap();
    assert_eq!(second.session(), session);
    assert_ne!(second.id(), turn);
    assert_eq!(
        kinds(second.started_events()),
        [EventKind::TurnStarted, EventKind::Message]
    );
    // The session cannot end while its turn is open.
    assert_busy(store.end_session(conv.id), "end_session with an open turn");
    second.finish(TurnStatus::Cancelled).unwrap();
    assert!(store.end_session(conv.id).unwrap());
    let last = history(&store, AGENT, CONV).pop().unwrap();
    assert_eq!(
        last.data,
        EventData::SessionEnded {
            reason: SessionEndReason::Closed
        }
    );
    assert_eq!(last.session, Some(session));
    assert!(
        !store.end_session(conv.id).unwrap(),
        "no session left to end"
    );
}

/// The tail of the history after a turn was closed by someone other than
/// its owner: `turn_ended {interrupted}` then `session_ended`.
fn assert_closed_as_interrupted(store: &Store, turn: TurnId, reason: SessionEndReason) {
    let log = history(store, AGENT, CONV);
    let tail = &log[log.len() - 2..];
    assert_eq!(
        kinds(tail),
        [EventKind::TurnEnded, EventKind::SessionEnded],
        "{log:#?}"
    );
    assert_eq!(
        tail[0].data,
        EventData::TurnEnded {
            status: TurnStatus::Interrupted
        }
    );
    assert_eq!(tail[0].turn, Some(turn));
    let session = store.turn(turn).unwrap().session;
    assert_eq!(tail[0].session, Some(session));
    assert_eq!(tail[1].data, EventData::SessionEnded { reason });
    assert_eq!((tail[1].session, tail[1].turn), (Some(session), None));
    assert_eq!(
        log.iter()
            .filter(|e| e.kind() == EventKind::TurnEnded)
            .count(),
        1,
        "closed exactly once"
    );

    let info = store.turn(turn).unwrap();
    assert_eq!(info.status, Some(TurnStatus::Interrupted));
    assert!(info.ended_at.is_some());
    let conv = store.conversation(AGENT, CONV).unwrap();
    assert_eq!((conv.open_session, conv.open_turn), (None, None));
    let lock = store.root().join("locks").join(format!("{session}.lock"));
    assert!(!lock.exists(), "the dead session's lock file is removed");
}

#[test]
fn dropped_handle_and_store_record_an_interrupted_turn() {
    let (dir, store) = new_store();
    new_conversation(&store, CONV);
    let handle = store
        .begin_turn(AGENT, CONV, message(Role::User, "hello"))
        .unwrap();
    let turn = handle.id();
    drop(handle);
    // Dropping the handle alone leaves the turn open while the store lives.
    assert_eq!(
        store.conversation(AGENT, CONV).unwrap().open_turn,
        Some(turn)
    );
    assert_busy(
        store.begin_turn(AGENT, CONV, message(Role::User, "again")),
        "begin_turn after dropping the handle",
    );
    drop(store);

    let store = reopen(dir.path());
    // The owner closed the session when its store dropped; the turn was never
    // finished, so both end as interrupted.
    assert_closed_as_interrupted(&store, turn, SessionEndReason::Interrupted);
    let next = store
        .begin_turn(AGENT, CONV, message(Role::User, "again"))
        .unwrap();
    next.finish(TurnStatus::Completed).unwrap();
}

#[test]
fn store_dropped_before_its_handle_closes_the_turn_when_the_handle_drops() {
    let (dir, store) = new_store();
    new_conversation(&store, CONV);
    let handle = store
        .begin_turn(AGENT, CONV, message(Role::User, "hello"))
        .unwrap();
    let turn = handle.id();
    drop(store);
    // The handle keeps the store alive: another handle on the same file sees
    // the turn open and its owner alive.
    let other = reopen(dir.path());
    assert_eq!(
        other.conversation(AGENT, CONV).unwrap().open_turn,
        Some(turn)
    );
    assert_busy(
        other.begin_turn(AGENT, CONV, message(Role::User, "mine")),
        "begin_turn from another handle",
    );
    handle
        .append(vec![message(Role::Assistant, "still here")], None)
        .unwrap();
    drop(handle);
    assert_closed_as_interrupted(&other, turn, SessionEndReason::Interrupted);
}

/// Not a test on its own: the child process of
/// [`turn_left_open_by_killed_process_is_interrupted`]. Begins a turn, says
/// so, and waits to be killed.
#[test]
fn child_holds_a_turn_open() {
    let Some(root) = child_role(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&root, OpenMode::Existing).unwrap();
    let handle = store
        .begin_turn(AGENT, CONV, message(Role::User, "from the child"))
        .unwrap();
    say(&format!("READY {}", handle.id()));
    // The parent kills us long before this ends; if it never does, exit
    // without closing anything so the parent's checks fail loudly.
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(3);
}

#[test]
fn turn_left_open_by_killed_process_is_interrupted() {
    let (dir, store) = new_store();
    new_conversation(&store, CONV);
    let root = store.root().to_path_buf();
    let mut child = spawn_self(
        "child_holds_a_turn_open",
        &[(CHILD_ENV, root.display().to_string())],
    );
    let turn: TurnId = child
        .next_marked("READY ")
        .expect("the child exited before beginning its turn")
        .parse()
        .expect("the child printed a turn id");
    let session = store.turn(turn).unwrap().session;

    // While the child lives, opening the conversation (from this handle or a
    // fresh one) must not close its turn.
    for handle in [store.clone(), reopen(dir.path())] {
        let conv = handle.conversation(AGENT, CONV).unwrap();
        assert_eq!(conv.open_turn, Some(turn));
        assert_eq!(conv.open_session, Some(session));
        let log = history(&handle, AGENT, CONV);
        assert_eq!(
            kinds(&log),
            [
                EventKind::ConversationCreated,
                EventKind::SessionStarted,
                EventKind::TurnStarted,
                EventKind::Message
            ]
        );
        assert_busy(
            handle.begin_turn(AGENT, CONV, message(Role::User, "parent")),
            "begin_turn while the child lives",
        );
        assert_busy(
            handle.rewind(AGENT, CONV, log[0].id, None),
            "rewind while the child's turn is open",
        );
        assert_busy(
            handle.finish_turn(turn, TurnStatus::Completed),
            "finishing another process's turn",
        );
        assert_busy(
            handle.append_to_turn(turn, vec![message(Role::Assistant, "x")], None),
            "appending to its turn",
        );
        assert_eq!(handle.turn(turn).unwrap().status, None);
    }
    assert!(
        child.is_running(),
        "the child must still be alive for the checks above to mean anything"
    );
    assert_eq!(
        history(&store, AGENT, CONV).len(),
        4,
        "nothing was written while the child lived"
    );

    child.kill();

    // The same handle that saw the turn alive now closes it.
    assert_closed_as_interrupted(&store, turn, SessionEndReason::Interrupted);
    let log = history(&store, AGENT, CONV);
    assert_eq!(log.len(), 6);
    // Finishing it now returns the recorded status.
    assert_eq!(
        store.finish_turn(turn, TurnStatus::Completed).unwrap(),
        TurnStatus::Interrupted
    );
    // And the conversation is free again, in a new session.
    let next = store
        .begin_turn(AGENT, CONV, message(Role::User, "parent"))
        .unwrap();
    assert_ne!(next.session(), session);
    assert_eq!(
        kinds(next.started_events()),
        [
            EventKind::SessionStarted,
            EventKind::TurnStarted,
            EventKind::Message
        ]
    );
    next.finish(TurnStatus::Completed).unwrap();
    assert_eq!(
        history(&store, AGENT, CONV)
            .iter()
            .filter(|e| e.kind() == EventKind::TurnEnded)
            .count(),
        2
    );
}
