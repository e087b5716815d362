//! The checked-in JSON Schema (spec/protocol.schema.json) must match the
//! Rust types. `UPDATE_SCHEMA=1 cargo test -p exo-protocol` rewrites it;
//! review the diff like any other API change.

use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/protocol.schema.json")
}

#[test]
fn checked_in_schema_matches_the_types() {
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(&exo_protocol::schema()).unwrap()
    );
    let path = schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "spec/protocol.schema.json is out of date with crates/protocol; run `UPDATE_SCHEMA=1 cargo test -p exo-protocol` and commit the result"
    );
}

#[test]
fn every_method_and_notification_is_in_the_schema_and_the_spec() {
    let schema = exo_protocol::schema();
    let spec = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/protocol.md"),
    )
    .unwrap();
    for name in exo_protocol::methods::METHOD_NAMES {
        assert!(
            schema["methods"].get(*name).is_some(),
            "{name} missing from the schema"
        );
        assert!(
            spec.contains(&format!("### `{name}`")),
            "spec/protocol.md has no section for {name}"
        );
    }
    for name in exo_protocol::methods::NOTIFICATION_NAMES {
        assert!(
            schema["notifications"].get(*name).is_some(),
            "{name} missing from the schema"
        );
        assert!(
            spec.contains(&format!("### `{name}`")),
            "spec/protocol.md has no section for {name}"
        );
    }
    for code in exo_protocol::ErrorCode::ALL {
        assert!(
            spec.contains(&code.code().to_string()),
            "spec/protocol.md does not list error {}",
            code.code()
        );
        assert!(
            spec.contains(code.name()),
            "spec/protocol.md does not name error {}",
            code.name()
        );
    }
}

#[test]
fn an_event_round_trips_through_its_wire_shape() {
    let wire = serde_json::json!({
        "id": "01a1fd25-dd69-709f-b817-0419790256d3",
        "conversation": "01a1fd25-dd70-710d-8eeb-937480e09d66",
        "session": null,
        "turn": null,
        "created_at": "2026-11-21T08:07:59.593707Z",
        "kind": "custom",
        "type": "ns.name",
        "payload": {"a": 1}
    });
    let event: exo_protocol::Event = serde_json::from_value(wire.clone()).unwrap();
    assert_eq!(serde_json::to_value(&event).unwrap(), wire);
}

#[test]
fn an_event_of_an_unknown_kind_travels_exactly_as_stored() {
    // As a newer exo or an executor may have stored it: a kind this exo
    // does not know, `kind` not first, fields in no particular order.
    let wire = r#"{"id":"01a1fd25-dd69-709f-b817-0419790256d3","conversation":"01a1fd25-dd70-710d-8eeb-937480e09d66","session":null,"turn":null,"created_at":"2026-11-21T08:07:59.593707Z","zeta":{"b":1,"a":[2,"x"]},"kind":"codex.item","alpha":true}"#;
    let event: exo_protocol::Event = serde_json::from_str(wire).unwrap();
    assert_eq!(event.data.kind_name(), "codex.item");
    assert!(matches!(event.data, exo_core::EventData::Other(_)));
    assert_eq!(serde_json::to_string(&event).unwrap(), wire);
}
