//! Events "a newer exo" stored, shared by the CLI and daemon tests: a kind
//! this exo does not know, and a known kind with a field it does not know.
//! A test appends [`marker`]s through exo, then [`store_foreign`] rewrites
//! those rows in place, directly in SQLite, the way a newer exo (or an
//! executor writing through one) would have written them.

use std::path::Path;

use serde_json::{json, Map, Value};

/// An executor's item: a kind this exo does not know, `kind` not first,
/// fields in no particular order. Its words must never reach a model.
pub const FOREIGN_KIND: &str = r#"{"zeta":{"b":1,"a":[2,"x"]},"kind":"codex.item","item":{"id":"item_1","type":"reasoning","summary":["thinking about violet-heron"]},"alpha":true}"#;

/// A message with a field this exo does not know. Read raw too, so that
/// nothing stored is lost; its words never reach a model either.
pub const FOREIGN_FIELD: &str = r#"{"kind":"message","role":"user","content":[{"type":"text","text":"a newer message about amber-falcon"}],"phase":"final"}"#;

/// Both, with the `kind` column a newer exo writes for each.
pub const FOREIGN: [(&str, &str); 2] = [("codex.item", FOREIGN_KIND), ("message", FOREIGN_FIELD)];

/// Words of the foreign events that a prompt must not contain.
pub const FOREIGN_WORDS: [&str; 2] = ["violet-heron", "amber-falcon"];

/// The `n`th placeholder event, to be rewritten by [`store_foreign`].
pub fn marker(n: usize) -> Value {
    json!({"kind": "custom", "type": "test.marker", "payload": n})
}

/// Rewrites the rows of markers `0..FOREIGN.len()` into [`FOREIGN`], in
/// the store at `db`.
pub fn store_foreign(db: &Path) {
    let db = rusqlite::Connection::open(db).unwrap();
    for (n, (kind, body)) in FOREIGN.iter().enumerate() {
        let marker = marker(n).to_string();
        let changed = db
            .execute(
                "UPDATE events SET kind = ?1, body = ?2 WHERE kind = 'custom' AND body = ?3",
                [*kind, *body, marker.as_str()],
            )
            .unwrap();
        assert_eq!(changed, 1, "marker {marker} not found");
    }
}

/// An event as JSON text without its envelope: what the store holds.
pub fn body_of(event: &Value) -> String {
    let mut fields: Map<String, Value> = event.as_object().expect("an object").clone();
    // `retain` keeps the order (`remove` would not).
    fields.retain(|name, _| {
        !["id", "conversation", "session", "turn", "created_at"].contains(&name.as_str())
    });
    Value::Object(fields).to_string()
}

/// The events among `events` whose body is one of [`FOREIGN`]'s, as text:
/// both, in order, exactly as stored, or the test fails.
pub fn assert_foreign_exact(events: &[Value]) {
    let bodies: Vec<String> = events
        .iter()
        .map(body_of)
        .filter(|body| body.contains("violet-heron") || body.contains("amber-falcon"))
        .collect();
    assert_eq!(
        bodies,
        [FOREIGN_KIND, FOREIGN_FIELD],
        "the events a newer exo stored are not shown exactly as stored"
    );
}
