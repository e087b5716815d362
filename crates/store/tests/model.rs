//! Model-based test of the event log: random sequences of appends, forks,
//! rewinds, redos, artifact writes, page queries and reopenings across
//! several conversations, checked after every step against a plain
//! in-memory model in which each conversation's history is a `Vec` of event
//! ids. A fork copies a prefix of the vector and adds its `forked` marker;
//! a rewind truncates it and adds a `rewound` marker; redo replaces it with
//! a history it abandoned, plus a marker.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{temp_dir, AGENT};
use exo_core::{ContentPart, ConversationId, Event, EventData, EventId, EventKind, Role};
use exo_store::{Error, EventQuery, ForkOptions, OpenMode, Store};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};
use sha2::{Digest, Sha256};

/// Conversations a case may grow to (forks beyond it are skipped).
const MAX_CONVERSATIONS: usize = 8;
const PATHS: [&str; 3] = ["notes.md", "dir/plan.txt", "a/b/c"];
const KIND_FILTERS: [Option<EventKind>; 7] = [
    None,
    Some(EventKind::Message),
    Some(EventKind::Custom),
    Some(EventKind::ArtifactWritten),
    Some(EventKind::Rewound),
    Some(EventKind::Forked),
    Some(EventKind::ConversationCreated),
];

#[derive(Clone, Debug)]
enum NewEvent {
    Message(u8),
    Custom(u8),
}

#[derive(Clone, Debug)]
enum ExpectedHead {
    Unchecked,
    Current,
    /// An older event of the history: the append must conflict.
    Stale(Index),
}

#[derive(Clone, Debug)]
enum ForkAt {
    /// `ForkOptions::at` left out.
    Head,
    /// An event of the source's history.
    History(Index),
    /// A head the source abandoned by rewinding.
    Abandoned(Index),
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        conv: Index,
        events: Vec<NewEvent>,
        expected: ExpectedHead,
    },
    Fork {
        conv: Index,
        at: ForkAt,
    },
    Rewind {
        conv: Index,
        to: Index,
    },
    Redo {
        conv: Index,
        which: Index,
    },
    PutArtifact {
        conv: Index,
        path: usize,
        content: u8,
    },
    Query {
        conv: Index,
        after: Option<Index>,
        before: Option<Index>,
        desc: bool,
        limit: usize,
        kind: usize,
    },
    /// A cursor that is an abandoned head, not on the history.
    QueryOffHistory {
        conv: Index,
        which: Index,
    },
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let new_event = prop_oneof![
        any::<u8>().prop_map(NewEvent::Message),
        any::<u8>().prop_map(NewEvent::Custom)
    ];
    let expected = prop_oneof![
        6 => Just(ExpectedHead::Unchecked),
        2 => Just(ExpectedHead::Current),
        1 => any::<Index>().prop_map(ExpectedHead::Stale),
    ];
    let fork_at = prop_oneof![
        Just(ForkAt::Head),
        any::<Index>().prop_map(ForkAt::History),
        any::<Index>().prop_map(ForkAt::Abandoned),
    ];
    prop_oneof![
        8 => (any::<Index>(), prop::collection::vec(new_event, 1..=5), expected)
            .prop_map(|(conv, events, expected)| Op::Append { conv, events, expected }),
        3 => (any::<Index>(), fork_at).prop_map(|(conv, at)| Op::Fork { conv, at }),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(conv, to)| Op::Rewind { conv, to }),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(conv, which)| Op::Redo { conv, which }),
        3 => (any::<Index>(), 0..PATHS.len(), 0u8..4)
            .prop_map(|(conv, path, content)| Op::PutArtifact { conv, path, content }),
        5 => (
            any::<Index>(),
            prop::option::weighted(0.4, any::<Index>()),
            prop::option::weighted(0.4, any::<Index>()),
            any::<bool>(),
            0usize..=6,
            0..KIND_FILTERS.len(),
        )
            .prop_map(|(conv, after, before, desc, limit, kind)| Op::Query { conv, after, before, desc, limit, kind }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(conv, which)| Op::QueryOffHistory { conv, which }),
        1 => Just(Op::Reopen),
    ]
}

/// What the model knows about one event.
#[derive(Clone, Debug)]
struct EventInfo {
    kind: EventKind,
    /// The conversation that recorded it.
    owner: ConversationId,
    /// The data, when the model can predict it exactly.
    data: Option<EventData>,
    /// `(path, version, sha256)` of an `artifact_written` event.
    artifact: Option<(String, u64, String)>,
}

#[derive(Debug)]
struct ConvModel {
    slug: String,
    id: ConversationId,
    history: Vec<EventId>,
    /// Histories this conversation rewound away from; each ends at the head
    /// it abandoned.
    abandoned: Vec<Vec<EventId>>,
}

impl ConvModel {
    fn head(&self) -> EventId {
        *self.history.last().expect("a history is never empty")
    }
}

#[derive(Default)]
struct Model {
    convs: Vec<ConvModel>,
    events: HashMap<EventId, EventInfo>,
    forks: usize,
}

impl Model {
    fn record(
        &mut self,
        event: &Event,
        data: Option<EventData>,
        artifact: Option<(String, u64, String)>,
    ) {
        let info = EventInfo {
            kind: event.kind(),
            owner: event.conversation,
            data,
            artifact,
        };
        assert!(
            self.events.insert(event.id, info).is_none(),
            "event id {} reused",
            event.id
        );
    }

    /// The current version of every artifact, as of the head, by path.
    fn artifacts(&self, conv: &ConvModel) -> Vec<(String, u64, String, EventId)> {
        let mut current: std::collections::BTreeMap<String, (u64, String, EventId)> =
            Default::default();
        for id in &conv.history {
            if let Some((path, version, sha)) = &self.events[id].artifact {
                current.insert(path.clone(), (*version, sha.clone(), *id));
            }
        }
        current
            .into_iter()
            .map(|(path, (version, sha, id))| (path, version, sha, id))
            .collect()
    }

    fn next_version(&self, conv: &ConvModel, path: &str) -> u64 {
        conv.history
            .iter()
            .rev()
            .find_map(|id| {
                self.events[id]
                    .artifact
                    .as_ref()
                    .filter(|a| a.0 == path)
                    .map(|a| a.1)
            })
            .unwrap_or(0)
            + 1
    }
}

fn event_data(new: &NewEvent, n: usize) -> EventData {
    match new {
        NewEvent::Message(byte) => EventData::Message {
            role: if byte % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            },
            content: vec![ContentPart::Text {
                text: format!("message {n} ({byte})"),
            }],
            usage: None,
            model: None,
        },
        NewEvent::Custom(byte) => EventData::Custom {
            custom_type: "test.model".into(),
            payload: serde_json::json!({"n": n, "byte": byte}),
        },
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir.join("root"), OpenMode::Existing).expect("reopening the store")
}

/// Reads every page of a query by following `next_cursor`.
fn all_pages(store: &Store, slug: &str, first: &EventQuery) -> Vec<EventId> {
    let mut query = first.clone();
    let mut ids = Vec::new();
    for _ in 0..10_000 {
        let page = store.events(AGENT, slug, &query).expect("a page");
        let limit = if query.limit == 0 { 100 } else { query.limit };
        assert!(page.events.len() <= limit);
        ids.extend(page.events.iter().map(|e| e.id));
        match page.next_cursor {
            None => return ids,
            Some(cursor) => {
                assert_eq!(
                    page.events.len(),
                    limit,
                    "a page with a next_cursor is full"
                );
                assert_eq!(
                    Some(cursor),
                    page.events.last().map(|e| e.id),
                    "next_cursor is the page's last event"
                );
                if query.desc {
                    query.before = Some(cursor);
                } else {
                    query.after = Some(cursor);
                }
            }
        }
    }
    panic!("paging never ended")
}

/// Checks one conversation against the model: its row, its full history
/// (in pages of `page` events when given), and its artifacts.
fn check_conversation(store: &Store, model: &Model, conv: &ConvModel, page: Option<usize>) {
    let row = store
        .conversation(AGENT, &conv.slug)
        .expect("the conversation");
    assert_eq!(row.id, conv.id);
    assert_eq!(row.head, conv.head(), "{}: head", conv.slug);
    assert_eq!(
        row.length(),
        conv.history.len() as u64,
        "{}: length",
        conv.slug
    );

    let events = match page {
        Some(page) => {
            let ids = all_pages(
                store,
                &conv.slug,
                &EventQuery {
                    limit: page,
                    ..Default::default()
                },
            );
            assert_eq!(ids, conv.history, "{}: paged history", conv.slug);
            None
        }
        None => {
            let query = EventQuery {
                limit: exo_store::MAX_PAGE,
                ..Default::default()
            };
            Some(
                store
                    .events(AGENT, &conv.slug, &query)
                    .expect("the history"),
            )
        }
    };
    if let Some(page) = events {
        assert_eq!(page.next_cursor, None);
        let ids: Vec<EventId> = page.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, conv.history, "{}: history", conv.slug);
        for event in &page.events {
            let info = &model.events[&event.id];
            assert_eq!(
                event.kind(),
                info.kind,
                "{}: kind of {}",
                conv.slug,
                event.id
            );
            assert_eq!(
                event.conversation, info.owner,
                "{}: conversation of {}",
                conv.slug, event.id
            );
            if let Some(data) = &info.data {
                assert_eq!(&event.data, data, "{}: data of {}", conv.slug, event.id);
            }
        }
    }

    let artifacts: Vec<(String, u64, String, EventId)> = store
        .list_artifacts(AGENT, &conv.slug)
        .expect("the artifacts")
        .into_iter()
        .map(|a| (a.path, a.version, a.sha256, a.event))
        .collect();
    assert_eq!(
        artifacts,
        model.artifacts(conv),
        "{}: artifacts as of the head",
        conv.slug
    );
}

fn check_all(store: &Store, model: &Model, touched: Option<usize>, step: usize) {
    for (index, conv) in model.convs.iter().enumerate() {
        check_conversation(store, model, conv, None);
        if Some(index) == touched {
            check_conversation(store, model, conv, Some(1 + step % 7));
        }
    }
}

fn run(ops: &[Op]) {
    let dir = temp_dir();
    let mut store = Store::open(dir.path().join("root"), OpenMode::Create).unwrap();
    store
        .create_agent("Agent", Some(AGENT), Default::default())
        .unwrap();
    let mut model = Model::default();
    for slug in ["c0", "c1"] {
        let conv = store
            .create_conversation(AGENT, slug, Some(slug), None)
            .unwrap();
        let created = store
            .events(AGENT, slug, &EventQuery::default())
            .unwrap()
            .events;
        assert_eq!(created.len(), 1);
        model.record(&created[0], None, None);
        model.convs.push(ConvModel {
            slug: slug.into(),
            id: conv.id,
            history: vec![conv.head],
            abandoned: vec![],
        });
    }
    check_all(&store, &model, None, 0);

    let mut counter = 0;
    for (step, op) in ops.iter().enumerate() {
        let mut touched = None;
        match op {
            Op::Append {
                conv,
                events,
                expected,
            } => {
                let c = conv.index(model.convs.len());
                touched = Some(c);
                let data: Vec<EventData> = events
                    .iter()
                    .map(|new| {
                        counter += 1;
                        event_data(new, counter)
                    })
                    .collect();
                let conv = &model.convs[c];
                let head = conv.head();
                let stale = match expected {
                    ExpectedHead::Stale(index) if conv.history.len() > 1 => {
                        Some(conv.history[index.index(conv.history.len() - 1)])
                    }
                    _ => None,
                };
                if let Some(stale) = stale {
                    match store.append(AGENT, &conv.slug, data, Some(stale)) {
                        Err(Error::HeadConflict { expected, actual }) => {
                            assert_eq!((expected, actual), (stale, head))
                        }
                        other => panic!("append with a stale head: {other:?}"),
                    }
                } else {
                    let expected = matches!(expected, ExpectedHead::Current).then_some(head);
                    let appended = store
                        .append(AGENT, &conv.slug, data.clone(), expected)
                        .unwrap();
                    assert_eq!(appended.len(), data.len());
                    let id = conv.id;
                    for (event, data) in appended.iter().zip(data) {
                        assert_eq!(event.data, data);
                        assert_eq!(
                            (event.conversation, event.session, event.turn),
                            (id, None, None)
                        );
                        model.record(event, Some(data), None);
                        model.convs[c].history.push(event.id);
                    }
                }
            }
            Op::Fork { conv, at } => {
                if model.convs.len() >= MAX_CONVERSATIONS {
                    continue;
                }
                let c = conv.index(model.convs.len());
                let source = &model.convs[c];
                let (option, prefix) = match at {
                    ForkAt::History(index) => {
                        let index = index.index(source.history.len());
                        (
                            Some(source.history[index]),
                            source.history[..=index].to_vec(),
                        )
                    }
                    ForkAt::Abandoned(index) if !source.abandoned.is_empty() => {
                        let snapshot = &source.abandoned[index.index(source.abandoned.len())];
                        (Some(*snapshot.last().unwrap()), snapshot.clone())
                    }
                    _ => (None, source.history.clone()),
                };
                let at = *prefix.last().unwrap();
                model.forks += 1;
                let slug = format!("f{}", model.forks);
                let options = ForkOptions {
                    at: option,
                    name: Some(slug.clone()),
                    slug: Some(slug.clone()),
                    workspace: None,
                };
                let fork = store.fork(AGENT, &source.slug, options).unwrap();
                assert_eq!(fork.forked_from, Some((source.id, at)));
                assert_eq!(fork.length(), prefix.len() as u64 + 1);
                let marker = store.event(AGENT, &slug, fork.head).unwrap();
                let data = EventData::Forked {
                    from_conversation: source.id,
                    from_event: at,
                };
                assert_eq!(marker.data, data);
                assert_eq!(marker.conversation, fork.id);
                model.record(&marker, Some(data), None);
                let mut history = prefix;
                history.push(fork.head);
                model.convs.push(ConvModel {
                    slug,
                    id: fork.id,
                    history,
                    abandoned: vec![],
                });
                touched = Some(model.convs.len() - 1);
            }
            Op::Rewind { conv, to } => {
                let c = conv.index(model.convs.len());
                let index = to.index(model.convs[c].history.len());
                let snapshot = model.convs[c].history[..=index].to_vec();
                rewind(&store, &mut model, c, snapshot);
                touched = Some(c);
            }
            Op::Redo { conv, which } => {
                let Some(c) = with_abandoned(&model, conv) else {
                    continue;
                };
                let abandoned = &model.convs[c].abandoned;
                let snapshot = abandoned[which.index(abandoned.len())].clone();
                rewind(&store, &mut model, c, snapshot);
                touched = Some(c);
            }
            Op::PutArtifact {
                conv,
                path,
                content,
            } => {
                let c = conv.index(model.convs.len());
                let conv = &model.convs[c];
                let path = PATHS[*path];
                let bytes = format!("content {content} of some artifact").into_bytes();
                let version = model.next_version(conv, path);
                let sha = hex::encode(Sha256::digest(&bytes));
                let written = store
                    .put_artifact(AGENT, &conv.slug, path, &bytes, None)
                    .unwrap();
                assert_eq!(
                    (written.path.as_str(), written.version, &written.sha256),
                    (path, version, &sha)
                );
                assert_eq!(written.size, bytes.len() as u64);
                let event = store.event(AGENT, &conv.slug, written.event).unwrap();
                let (got, got_bytes) = store.get_artifact(AGENT, &conv.slug, path, None).unwrap();
                assert_eq!((got, got_bytes), (written.clone(), bytes));
                model.record(&event, None, Some((path.to_string(), version, sha)));
                model.convs[c].history.push(event.id);
                touched = Some(c);
            }
            Op::Query {
                conv,
                after,
                before,
                desc,
                limit,
                kind,
            } => {
                let conv = &model.convs[conv.index(model.convs.len())];
                let history = &conv.history;
                let after_index = after.map(|i| i.index(history.len()));
                let before_index = before.map(|i| i.index(history.len()));
                let query = EventQuery {
                    after: after_index.map(|i| history[i]),
                    before: before_index.map(|i| history[i]),
                    desc: *desc,
                    limit: *limit,
                    kind: KIND_FILTERS[*kind],
                    ..Default::default()
                };
                let low = after_index.map_or(0, |i| i + 1);
                let high = before_index.unwrap_or(history.len());
                let mut expected: Vec<EventId> = if low < high {
                    history[low..high].to_vec()
                } else {
                    vec![]
                };
                expected.retain(|id| query.kind.is_none_or(|kind| model.events[id].kind == kind));
                if *desc {
                    expected.reverse();
                }
                let page_size = if *limit == 0 { 100 } else { *limit };
                let page = store.events(AGENT, &conv.slug, &query).unwrap();
                let ids: Vec<EventId> = page.events.iter().map(|e| e.id).collect();
                let expected_page = &expected[..expected.len().min(page_size)];
                assert_eq!(ids, expected_page, "page of {query:?}");
                let expected_cursor =
                    (expected.len() > page_size).then(|| *expected_page.last().unwrap());
                assert_eq!(
                    page.next_cursor, expected_cursor,
                    "next_cursor of {query:?}"
                );
                assert_eq!(
                    all_pages(&store, &conv.slug, &query),
                    expected,
                    "all pages of {query:?}"
                );
            }
            Op::QueryOffHistory { conv, which } => {
                let Some(c) = with_abandoned(&model, conv) else {
                    continue;
                };
                let conv = &model.convs[c];
                let off: Vec<EventId> = conv
                    .abandoned
                    .iter()
                    .map(|snapshot| *snapshot.last().unwrap())
                    .filter(|id| !conv.history.contains(id))
                    .collect();
                if off.is_empty() {
                    continue;
                }
                let id = off[which.index(off.len())];
                // Readable (redo can reach it) but not a cursor of this history.
                assert_eq!(store.event(AGENT, &conv.slug, id).unwrap().id, id);
                for query in [
                    EventQuery {
                        after: Some(id),
                        ..Default::default()
                    },
                    EventQuery {
                        before: Some(id),
                        desc: true,
                        ..Default::default()
                    },
                ] {
                    match store.events(AGENT, &conv.slug, &query) {
                        Err(Error::NotFound { .. }) => {}
                        other => panic!("an abandoned event as a cursor: {other:?}"),
                    }
                }
            }
            Op::Reopen => {
                drop(store);
                store = open(dir.path());
            }
        }
        check_all(&store, &model, touched, step);
    }
}

/// One of the conversations that have abandoned a history, if any.
fn with_abandoned(model: &Model, pick: &Index) -> Option<usize> {
    let candidates: Vec<usize> = (0..model.convs.len())
        .filter(|&c| !model.convs[c].abandoned.is_empty())
        .collect();
    (!candidates.is_empty()).then(|| candidates[pick.index(candidates.len())])
}

/// Rewinds conversation `c` to the last event of `snapshot`, the history
/// that ends there, and updates the model.
fn rewind(store: &Store, model: &mut Model, c: usize, snapshot: Vec<EventId>) {
    let conv = &model.convs[c];
    let from = conv.head();
    let to = *snapshot.last().unwrap();
    let outcome = store.rewind(AGENT, &conv.slug, to, None).unwrap();
    if to == from {
        assert!(
            outcome.event.is_none(),
            "rewinding to the head records nothing"
        );
        assert_eq!(outcome.conversation.head, from);
        return;
    }
    let marker = outcome.event.expect("a rewound event");
    let data = EventData::Rewound {
        from_event: from,
        to_event: to,
        snapshot: None,
    };
    assert_eq!(marker.data, data);
    assert_eq!(marker.conversation, conv.id);
    assert_eq!(outcome.conversation.head, marker.id);
    assert_eq!(outcome.conversation.length(), snapshot.len() as u64 + 1);
    model.record(&marker, Some(data), None);
    let conv = &mut model.convs[c];
    let old = std::mem::replace(&mut conv.history, snapshot);
    conv.history.push(marker.id);
    conv.abandoned.push(old);
}

proptest! {
    #![proptest_config(Config {
        cases: 64,
        rng_seed: RngSeed::Fixed(0x00E0_0DE1),
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    })]

    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op_strategy(), 1..=40)) {
        run(&ops);
    }
}
