//! The checked-in JSON Schema of the harness protocol
//! (spec/harness.schema.json) must match the Rust types, and every method,
//! notification and error code must be written up in spec/harness.md.
//! `UPDATE_SCHEMA=1 cargo test -p exo-protocol` rewrites the schema; the
//! TypeScript runtime's types are generated from it (`pnpm run generate` in
//! typescript/harness), and its own drift test fails until they are too.

use std::path::PathBuf;

use exo_protocol::harness;

fn spec_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../spec")
        .join(name)
}

#[test]
fn checked_in_harness_schema_matches_the_types() {
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(&harness::schema()).unwrap()
    );
    let path = spec_path("harness.schema.json");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "spec/harness.schema.json is out of date with crates/protocol/src/harness.rs; run `UPDATE_SCHEMA=1 cargo test -p exo-protocol`, then `pnpm -C typescript/harness run generate`, and commit the result"
    );
}

/// Whether spec/harness.md has a section heading naming `name` in
/// backquotes (one heading may name several methods).
fn has_heading(spec: &str, name: &str) -> bool {
    let quoted = format!("`{name}`");
    spec.lines()
        .any(|line| line.starts_with("### ") && line.contains(&quoted))
}

#[test]
fn every_harness_message_is_in_the_schema_and_the_spec() {
    let schema = harness::schema();
    let spec = std::fs::read_to_string(spec_path("harness.md")).unwrap();
    for (table, names) in [
        ("runner_methods", harness::RUNNER_METHOD_NAMES),
        ("host_methods", harness::HOST_METHOD_NAMES),
        ("runner_notifications", harness::RUNNER_NOTIFICATION_NAMES),
        ("host_notifications", harness::HOST_NOTIFICATION_NAMES),
    ] {
        for name in names {
            assert!(
                schema[table].get(*name).is_some(),
                "{name} missing from the schema's {table}"
            );
            assert!(
                has_heading(&spec, name),
                "spec/harness.md has no section for {name}"
            );
        }
    }
    for code in harness::HarnessErrorCode::ALL {
        assert_eq!(schema["error_codes"][code.name()], code.code());
        assert!(
            spec.contains(&format!("`{}`", code.code())) && spec.contains(code.name()),
            "spec/harness.md does not list error {} ({})",
            code.code(),
            code.name()
        );
    }
}

#[test]
fn the_harness_schema_shares_the_daemon_protocol_types() {
    // Events and content parts are one shape on both protocols: a $def of
    // the same name must be the same schema in both files, so that one set
    // of generated TypeScript types serves both.
    let harness = harness::schema();
    let daemon = exo_protocol::schema();
    let mut shared = 0;
    for (name, def) in harness["$defs"].as_object().unwrap() {
        if let Some(other) = daemon["$defs"].get(name) {
            assert_eq!(def, other, "$defs/{name} differs between the two schemas");
            shared += 1;
        }
    }
    for name in ["Event", "ContentPart", "Usage", "AppendResult", "EventPage"] {
        assert!(
            harness["$defs"].get(name).is_some(),
            "the harness schema does not reuse {name}"
        );
    }
    assert!(shared >= 5);
}
