//! Specs, argument validation and access.

use std::time::Duration;

use exo_tools::{
    access, parse, specs, specs_for, Access, Call, Limits, ToolError, ToolOutput, TOOL_NAMES,
};
use serde_json::{json, Value};

fn parse_error(name: &str, arguments: Value) -> String {
    let error = parse(name, &arguments).expect_err("expected a parse error");
    let message = error.to_string();
    assert!(!message.contains('\n'), "not one line: {message:?}");
    message
}

#[test]
fn specs_list_the_six_tools_in_a_stable_order() {
    let specs = specs();
    let names: Vec<&str> = specs.iter().map(|spec| spec.name).collect();
    assert_eq!(
        names,
        [
            "shell",
            "read_file",
            "write_file",
            "edit_file",
            "list_files",
            "grep"
        ]
    );
    assert_eq!(names, TOOL_NAMES);
    assert_eq!(specs, exo_tools::specs(), "specs are deterministic");
}

#[test]
fn spec_schemas_are_closed_objects_with_the_fixed_fields() {
    let expected: [(&str, &[&str], &[&str]); 6] = [
        ("shell", &["command", "timeout_ms"], &["command"]),
        ("read_file", &["path"], &["path"]),
        ("write_file", &["path", "content"], &["path", "content"]),
        (
            "edit_file",
            &["path", "old_string", "new_string"],
            &["path", "old_string", "new_string"],
        ),
        ("list_files", &["path", "pattern"], &[]),
        ("grep", &["pattern", "path"], &["pattern"]),
    ];
    for (spec, (name, properties, required)) in specs().iter().zip(expected) {
        assert_eq!(spec.name, name);
        assert!(spec.description.len() > 80, "{name}: description too thin");
        let schema = &spec.parameters;
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
        let keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, properties, "{name}");
        assert_eq!(schema["required"], json!(required), "{name}");
        for (property, property_schema) in schema["properties"].as_object().unwrap() {
            let kind = property_schema["type"].as_str().unwrap();
            assert!(
                kind == "string" || kind == "integer",
                "{name}.{property}: {kind}"
            );
            assert!(
                property_schema["description"].as_str().is_some(),
                "{name}.{property} has no description"
            );
        }
    }
}

#[test]
fn spec_descriptions_state_the_limits_in_use() {
    let limits = Limits {
        default_timeout: Duration::from_secs(30),
        max_timeout: Duration::from_secs(90),
        max_output_bytes: 8 * 1024,
        max_read_bytes: 2 * 1024 * 1024,
        max_matches: 42,
    };
    let custom = specs_for(&limits);
    assert!(custom[0]
        .description
        .contains("default 30000, at most 90000"));
    assert!(custom[0].description.contains("8 KiB"));
    assert!(custom[1].description.contains("2 MiB"));
    assert!(custom[4].description.contains("at most 42 files"));
    assert!(custom[5].description.contains("at most 42 matches"));
    let defaults = specs();
    assert!(defaults[0]
        .description
        .contains("default 120000, at most 600000"));
    assert!(defaults[0].description.contains("64 KiB"));
}

#[test]
fn parse_accepts_every_tool() {
    assert_eq!(
        parse("shell", &json!({"command": "ls", "timeout_ms": 5000})).unwrap(),
        Call::Shell {
            command: "ls".into(),
            timeout_ms: Some(5000)
        }
    );
    assert_eq!(
        parse("shell", &json!({"command": "ls"})).unwrap(),
        Call::Shell {
            command: "ls".into(),
            timeout_ms: None
        }
    );
    assert_eq!(
        parse("read_file", &json!({"path": "a.txt"})).unwrap(),
        Call::ReadFile {
            path: "a.txt".into()
        }
    );
    assert_eq!(
        parse("write_file", &json!({"path": "a.txt", "content": ""})).unwrap(),
        Call::WriteFile {
            path: "a.txt".into(),
            content: String::new()
        }
    );
    assert_eq!(
        parse(
            "edit_file",
            &json!({"path": "a.txt", "old_string": "x", "new_string": ""})
        )
        .unwrap(),
        Call::EditFile {
            path: "a.txt".into(),
            old_string: "x".into(),
            new_string: String::new()
        }
    );
    assert_eq!(
        parse("list_files", &json!({})).unwrap(),
        Call::ListFiles {
            path: None,
            pattern: None
        }
    );
    assert_eq!(
        parse("list_files", &json!({"path": "src", "pattern": "*.rs"})).unwrap(),
        Call::ListFiles {
            path: Some("src".into()),
            pattern: Some("*.rs".into())
        }
    );
    assert_eq!(
        parse("grep", &json!({"pattern": "fn main", "path": "src"})).unwrap(),
        Call::Grep {
            pattern: "fn main".into(),
            path: Some("src".into())
        }
    );
}

#[test]
fn parse_takes_null_for_absent_optional_fields_and_arguments() {
    assert_eq!(
        parse("list_files", &Value::Null).unwrap(),
        Call::ListFiles {
            path: None,
            pattern: None
        }
    );
    assert_eq!(
        parse("grep", &json!({"pattern": "x", "path": null})).unwrap(),
        Call::Grep {
            pattern: "x".into(),
            path: None
        }
    );
    assert_eq!(
        parse("shell", &json!({"command": "ls", "timeout_ms": null})).unwrap(),
        Call::Shell {
            command: "ls".into(),
            timeout_ms: None
        }
    );
    // Some models write integers as floats.
    assert_eq!(
        parse("shell", &json!({"command": "ls", "timeout_ms": 2500.0})).unwrap(),
        Call::Shell {
            command: "ls".into(),
            timeout_ms: Some(2500)
        }
    );
}

#[test]
fn parse_refuses_an_unknown_tool() {
    let error = parse("rm_rf", &json!({})).unwrap_err();
    assert!(matches!(error, ToolError::UnknownTool { ref name } if name == "rm_rf"));
    assert_eq!(
        error.to_string(),
        "unknown tool \"rm_rf\"; the tools are shell, read_file, write_file, edit_file, list_files, grep"
    );
}

#[test]
fn parse_refuses_a_missing_field() {
    assert_eq!(
        parse_error("read_file", json!({})),
        "read_file: missing required field \"path\""
    );
    assert_eq!(
        parse_error("edit_file", json!({"path": "a", "old_string": "x"})),
        "edit_file: missing required field \"new_string\""
    );
    assert_eq!(
        parse_error("grep", json!({"path": "src"})),
        "grep: missing required field \"pattern\""
    );
    assert_eq!(
        parse_error("shell", json!({"command": null})),
        "shell: missing required field \"command\""
    );
}

#[test]
fn parse_refuses_a_wrong_type() {
    assert_eq!(
        parse_error("shell", json!({"command": 5})),
        "shell: field \"command\" must be a string, not a number"
    );
    assert_eq!(
        parse_error("write_file", json!({"path": "a", "content": ["x"]})),
        "write_file: field \"content\" must be a string, not an array"
    );
    assert_eq!(
        parse_error("shell", json!({"command": "ls", "timeout_ms": "10"})),
        "shell: field \"timeout_ms\" must be a positive integer, not a string"
    );
    assert_eq!(
        parse_error("shell", json!({"command": "ls", "timeout_ms": -1})),
        "shell: field \"timeout_ms\" must be a positive integer, not -1"
    );
    assert_eq!(
        parse_error("shell", json!({"command": "ls", "timeout_ms": 0})),
        "shell: field \"timeout_ms\" must be a positive integer, not 0"
    );
    assert_eq!(
        parse_error("shell", json!({"command": "ls", "timeout_ms": 1.5})),
        "shell: field \"timeout_ms\" must be a positive integer, not 1.5"
    );
    assert_eq!(
        parse_error("list_files", json!({"pattern": true})),
        "list_files: field \"pattern\" must be a string, not a boolean"
    );
    assert_eq!(
        parse_error("shell", json!("ls -la")),
        "shell: arguments must be a JSON object, not a string"
    );
}

#[test]
fn parse_refuses_an_extra_field() {
    assert_eq!(
        parse_error("read_file", json!({"path": "a", "offset": 10})),
        "read_file: unknown field \"offset\"; the fields are path"
    );
    assert_eq!(
        parse_error("grep", json!({"pattern": "x", "glob": "*.rs"})),
        "grep: unknown field \"glob\"; the fields are pattern, path"
    );
}

#[test]
fn parse_refuses_empty_strings_where_the_schema_does() {
    assert_eq!(
        parse_error("read_file", json!({"path": ""})),
        "read_file: field \"path\" must not be empty"
    );
    assert_eq!(
        parse_error("shell", json!({"command": ""})),
        "shell: field \"command\" must not be empty"
    );
    assert_eq!(
        parse_error(
            "edit_file",
            json!({"path": "a", "old_string": "", "new_string": "x"})
        ),
        "edit_file: field \"old_string\" must not be empty"
    );
    assert_eq!(
        parse_error("list_files", json!({"path": ""})),
        "list_files: field \"path\" must not be empty"
    );
}

#[test]
fn access_says_what_each_tool_needs() {
    assert_eq!(access("shell"), Some(Access::Shell));
    assert_eq!(access("read_file"), Some(Access::Read));
    assert_eq!(access("list_files"), Some(Access::Read));
    assert_eq!(access("grep"), Some(Access::Read));
    assert_eq!(access("write_file"), Some(Access::Write));
    assert_eq!(access("edit_file"), Some(Access::Write));
    assert_eq!(access("delete_file"), None);
    for spec in specs() {
        let arguments = match spec.name {
            "shell" => json!({"command": "true"}),
            "read_file" => json!({"path": "a"}),
            "write_file" => json!({"path": "a", "content": "x"}),
            "edit_file" => json!({"path": "a", "old_string": "x", "new_string": "y"}),
            "list_files" => json!({}),
            _ => json!({"pattern": "x"}),
        };
        let call = parse(spec.name, &arguments).unwrap();
        assert_eq!(call.name(), spec.name);
        assert_eq!(Some(call.access()), access(spec.name));
    }
}

#[test]
fn tool_output_error_has_the_common_shape() {
    let output = ToolOutput::error("denied by the user");
    assert!(output.is_error);
    assert_eq!(output.output, json!({"error": "denied by the user"}));
}
