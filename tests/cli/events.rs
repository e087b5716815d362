//! `conversation events` (paging, order, filters, shape) and
//! `conversation append` (atomic batches, line errors, conflicts).

use serde_json::{json, Value};

use crate::util::{custom, message, Env};

#[test]
fn event_json_has_the_documented_shape() {
    let env = Env::new();
    env.agent_and_conversation();
    let appended = env.append(
        "a",
        "c",
        &[
            message("hi"),
            json!({"kind":"custom","type":"ns.name","payload":{"x":[1,2]}}),
        ],
    );
    assert_eq!(appended.code, 0, "{}", appended.stderr);
    let appended = appended.json();
    let events = env.events("a", "c");
    assert_eq!(events.len(), 3);
    assert_eq!(appended["head"], events[2]["id"]);
    let message = &events[1];
    let keys: Vec<&str> = message
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "conversation",
            "session",
            "turn",
            "created_at",
            "kind",
            "role",
            "content"
        ]
    );
    assert_eq!(message["content"], json!([{"type": "text", "text": "hi"}]));
    assert!(message["session"].is_null() && message["turn"].is_null());
    let created_at = message["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == "2026-11-21T07:44:12.123456Z".len(),
        "{created_at}"
    );
    assert_eq!(events[2]["type"], "ns.name");
    assert_eq!(events[2]["payload"], json!({"x": [1, 2]}));
}

#[test]
fn pages_follow_the_cursor_both_ways() {
    let env = Env::new();
    env.agent_and_conversation();
    let lines: Vec<Value> = (0..25).map(custom).collect();
    assert_eq!(env.append("a", "c", &lines).code, 0);
    let all = env.event_ids("a", "c");
    assert_eq!(all.len(), 26);

    let mut collected = Vec::new();
    let mut args = vec!["conversation", "events", "a", "c", "--limit", "10"];
    let mut cursor: Option<String> = None;
    loop {
        let mut page_args = args.clone();
        if let Some(cursor) = &cursor {
            page_args.extend(["--after", cursor.as_str()]);
        }
        let page = env.json(&page_args);
        collected.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(collected, all);

    args.push("--desc");
    let newest = env.json(&args);
    let newest: Vec<&str> = newest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = all.iter().rev().take(10).map(String::as_str).collect();
    assert_eq!(newest, expected);

    let before = env.json(&["conversation", "events", "a", "c", "--before", &all[5]]);
    let before: Vec<&str> = before["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        before,
        all[..5].iter().map(String::as_str).collect::<Vec<_>>()
    );

    let desc_before = env.json(&[
        "conversation",
        "events",
        "a",
        "c",
        "--desc",
        "--before",
        &all[5],
        "--limit",
        "2",
    ]);
    let ids: Vec<&str> = desc_before["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [all[4].as_str(), all[3].as_str()]);
    assert_eq!(desc_before["next_cursor"], all[3].as_str());
}

#[test]
fn kind_filter() {
    let env = Env::new();
    env.agent_and_conversation();
    assert_eq!(
        env.append("a", "c", &[message("one"), custom(1), message("two")])
            .code,
        0
    );
    let messages = env.json(&["conversation", "events", "a", "c", "--kind", "message"]);
    let texts: Vec<&str> = messages["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two"]);
    let err = env.run(&["conversation", "events", "a", "c", "--kind", "nonsense"]);
    assert_eq!(err.code, 2, "an unknown kind is a usage error");
}

#[test]
fn a_bad_line_rejects_the_whole_batch() {
    let env = Env::new();
    env.agent_and_conversation();
    let before = env.event_ids("a", "c");
    let input = "{\"kind\":\"message\",\"role\":\"user\",\"content\":\"ok\"}\n\n{\"kind\":\"message\",\"role\":\"user\"}\n";
    let run = env.run_with(&["conversation", "append", "a", "c"], input.as_bytes(), &[]);
    crate::util::assert_one_line_failure(&run, &["append"]);
    assert!(run.stderr.contains("line 3:"), "{}", run.stderr);
    assert!(run.stderr.contains("content"), "{}", run.stderr);

    for (input, expected) in [
        ("not json\n", "line 1: invalid JSON"),
        ("{\"kind\":\"turn_started\"}\n", "recorded by exo itself"),
        (
            "{\"kind\":\"custom\",\"type\":\"flat\",\"payload\":{}}\n",
            "namespaced",
        ),
        ("\n\n", "no events on stdin"),
    ] {
        let run = env.run_with(&["conversation", "append", "a", "c"], input.as_bytes(), &[]);
        crate::util::assert_one_line_failure(&run, &["append"]);
        assert!(run.stderr.contains(expected), "{input:?}: {}", run.stderr);
    }
    let invalid_utf8 = env.run_with(
        &["conversation", "append", "a", "c"],
        b"{\"kind\":\xff}\n",
        &[],
    );
    assert_eq!(invalid_utf8.code, 1);
    assert_eq!(env.event_ids("a", "c"), before, "nothing was appended");
}

#[test]
fn oversized_event_is_refused() {
    let env = Env::new();
    env.agent_and_conversation();
    let big = "x".repeat(9 << 20);
    let run = env.append("a", "c", &[message("small"), message(&big)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("event 2") && run.stderr.contains("MiB"),
        "{}",
        run.stderr
    );
    assert_eq!(env.event_ids("a", "c").len(), 1);
}

#[test]
fn expected_head_conflict_changes_nothing() {
    let env = Env::new();
    env.agent_and_conversation();
    let head = env.event_ids("a", "c").pop().unwrap();
    assert_eq!(env.append("a", "c", &[message("first")]).code, 0);
    let ids = env.event_ids("a", "c");
    let run = env.run_with(
        &["conversation", "append", "a", "c", "--expected-head", &head],
        format!("{}\n", message("stale")).as_bytes(),
        &[],
    );
    crate::util::assert_one_line_failure(&run, &["append"]);
    assert!(run.stderr.contains("conflict"), "{}", run.stderr);
    assert_eq!(env.event_ids("a", "c"), ids);

    let current = ids.last().unwrap();
    let run = env.run_with(
        &[
            "conversation",
            "append",
            "a",
            "c",
            "--expected-head",
            current,
        ],
        format!("{}\n", message("fresh")).as_bytes(),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn exported_events_can_be_appended_again() {
    let env = Env::new();
    env.agent_and_conversation();
    env.ok(&["conversation", "create", "a", "Copy", "--slug", "copy"]);
    let lines = [
        message("question"),
        json!({"kind":"tool_call","call_id":"c1","name":"shell","arguments":{"command":"ls"}}),
        json!({"kind":"tool_result","call_id":"c1","output":"README.md","is_error":false}),
        json!({"kind":"message","role":"assistant","content":[{"type":"text","text":"done"}],"usage":{"input_tokens":3,"output_tokens":1}}),
        json!({"kind":"error","message":"boom","code":"E1"}),
    ];
    assert_eq!(env.append("a", "c", &lines).code, 0);
    let exported: Vec<Value> = env
        .events("a", "c")
        .into_iter()
        .filter(|e| e["kind"] != "conversation_created")
        .collect();
    assert_eq!(env.append("a", "copy", &exported).code, 0);
    let strip = |events: Vec<Value>| -> Vec<Value> {
        events
            .into_iter()
            .filter(|e| e["kind"] != "conversation_created")
            .map(|mut e| {
                let object = e.as_object_mut().unwrap();
                for field in ["id", "created_at", "conversation"] {
                    object.remove(field);
                }
                e
            })
            .collect()
    };
    assert_eq!(strip(env.events("a", "copy")), strip(env.events("a", "c")));
}

#[test]
fn one_event_by_id() {
    let env = Env::new();
    env.agent_and_conversation();
    let ids = env.event_ids("a", "c");
    let event = env.json(&["conversation", "event", "a", "c", &ids[0]]);
    assert_eq!(event["kind"], "conversation_created");
    let unknown = "01a1fd15-0000-7000-8000-000000000000";
    let err = env.fails(&["conversation", "event", "a", "c", unknown]);
    assert!(err.contains("not found"), "{err}");
}
