//! Fork and rewind through the CLI, with artifacts resolving as of the head.

use serde_json::Value;

use crate::util::{custom, message, Env};

fn ids(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["id"].as_str().unwrap()).collect()
}

#[test]
fn fork_shares_the_prefix_and_diverges() {
    let env = Env::new();
    env.agent_and_conversation();
    assert_eq!(
        env.append(
            "a",
            "c",
            &[message("one"), message("two"), message("three")]
        )
        .code,
        0
    );
    let source = env.events("a", "c");
    let at = source[2]["id"].as_str().unwrap();

    let fork = env.json(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--at",
        at,
        "--slug",
        "side",
        "Side Quest",
    ]);
    assert_eq!(fork["slug"], "side");
    assert_eq!(fork["name"], "Side Quest");
    assert_eq!(fork["forked_from"]["event"], at);

    let forked = env.events("a", "side");
    assert_eq!(forked.len(), 4);
    // The shared prefix is the same events: same ids, same timestamps, same
    // recording conversation.
    assert_eq!(&forked[..3], &source[..3]);
    assert_eq!(forked[3]["kind"], "forked");
    assert_eq!(forked[3]["from_event"], at);
    assert_eq!(forked[3]["from_conversation"], source[0]["conversation"]);

    assert_eq!(env.append("a", "side", &[message("fork only")]).code, 0);
    assert_eq!(env.append("a", "c", &[message("source only")]).code, 0);
    let source_after = env.events("a", "c");
    let fork_after = env.events("a", "side");
    assert!(!source_after
        .iter()
        .any(|e| e["content"][0]["text"] == "fork only"));
    assert!(!fork_after
        .iter()
        .any(|e| e["content"][0]["text"] == "source only"));
    assert!(!fork_after
        .iter()
        .any(|e| e["content"][0]["text"] == "three"));
}

#[test]
fn fork_names_and_slugs() {
    let env = Env::new();
    env.agent_and_conversation();
    let first = env.json(&["conversation", "fork", "a", "c"]);
    assert_eq!(first["slug"], "c-fork");
    assert_eq!(first["name"], "C (fork)");
    let second = env.json(&["conversation", "fork", "a", "c"]);
    assert_eq!(second["slug"], "c-fork-2");
    let named = env.json(&["conversation", "fork", "a", "c", "Named Branch"]);
    assert_eq!(named["slug"], "named-branch");
    let err = env.fails(&["conversation", "fork", "a", "c", "--slug", "c-fork"]);
    assert!(err.contains("already exists"), "{err}");
    // Fork of a fork.
    let deeper = env.json(&["conversation", "fork", "a", "c-fork", "--slug", "deeper"]);
    assert_eq!(env.events("a", "deeper").len(), 3);
    assert_eq!(deeper["length"], 3);
}

#[test]
fn rewind_then_redo() {
    let env = Env::new();
    env.agent_and_conversation();
    let lines: Vec<Value> = (0..5).map(custom).collect();
    assert_eq!(env.append("a", "c", &lines).code, 0);
    let original = env.events("a", "c");
    let old_head = original.last().unwrap()["id"].as_str().unwrap().to_string();
    let target = original[2]["id"].as_str().unwrap().to_string();

    let rewind = env.json(&["conversation", "rewind", "a", "c", "--to", &target]);
    assert_eq!(rewind["event"]["kind"], "rewound");
    assert_eq!(rewind["event"]["from_event"], old_head.as_str());
    assert_eq!(rewind["event"]["to_event"], target.as_str());
    let rewound = env.events("a", "c");
    assert_eq!(ids(&rewound[..3]), ids(&original[..3]));
    assert_eq!(rewound.len(), 4);
    assert_eq!(rewound[3]["kind"], "rewound");
    // The abandoned events are still there to read.
    let abandoned = env.json(&["conversation", "event", "a", "c", &old_head]);
    assert_eq!(abandoned["payload"]["n"], 4);

    // New work after the rewind starts a new branch.
    assert_eq!(env.append("a", "c", &[message("new branch")]).code, 0);

    // Redo: rewind forward to the abandoned head.
    let redo = env.json(&["conversation", "rewind", "a", "c", "--to", &old_head]);
    assert_eq!(redo["event"]["to_event"], old_head.as_str());
    let redone = env.events("a", "c");
    assert_eq!(ids(&redone[..original.len()]), ids(&original));
    assert_eq!(redone.len(), original.len() + 1);
    assert!(!redone
        .iter()
        .any(|e| e["content"][0]["text"] == "new branch"));

    // Rewinding to where the head already is changes nothing.
    let head = redone.last().unwrap()["id"].as_str().unwrap().to_string();
    let noop = env.json(&["conversation", "rewind", "a", "c", "--to", &head]);
    assert!(noop["event"].is_null());
    assert_eq!(env.events("a", "c").len(), redone.len());
}

#[test]
fn rewind_to_a_foreign_or_unknown_event_is_refused() {
    let env = Env::new();
    env.agent_and_conversation();
    env.ok(&["conversation", "create", "a", "Other", "--slug", "other"]);
    let foreign = env.event_ids("a", "other").pop().unwrap();
    let before = env.event_ids("a", "c");
    let err = env.fails(&["conversation", "rewind", "a", "c", "--to", &foreign]);
    assert!(err.contains("not found"), "{err}");
    let err = env.fails(&[
        "conversation",
        "rewind",
        "a",
        "c",
        "--to",
        "01a1fd15-0000-7000-8000-000000000000",
    ]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(env.event_ids("a", "c"), before);
    let err = env.run(&["conversation", "rewind", "a", "c", "--to", "not-an-id"]);
    assert_eq!(err.code, 2);
}

#[test]
fn artifacts_resolve_as_of_the_head() {
    let env = Env::new();
    env.agent_and_conversation();
    let put = |conv: &str, content: &str| {
        let run = env.run_with(
            &["--json", "artifact", "put", "a", conv, "notes/plan.md"],
            content.as_bytes(),
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()
    };
    let get = |conv: &str| {
        env.ok(&["artifact", "get", "a", conv, "notes/plan.md"])
            .stdout
    };

    let v1 = put("c", "plan one");
    assert_eq!(v1["version"], 1);
    let fork_point = env.event_ids("a", "c").pop().unwrap();
    let v2 = put("c", "plan two");
    assert_eq!(v2["version"], 2);
    assert_eq!(get("c"), "plan two");

    // A fork at the first version does not see the second.
    env.ok(&[
        "conversation",
        "fork",
        "a",
        "c",
        "--at",
        &fork_point,
        "--slug",
        "f",
    ]);
    assert_eq!(get("f"), "plan one");
    let fork_v2 = put("f", "fork plan");
    assert_eq!(
        fork_v2["version"], 2,
        "versions count along the fork's own history"
    );
    assert_eq!(get("c"), "plan two");

    // Rewind the source to before v2: v2 is no longer current.
    env.ok(&["conversation", "rewind", "a", "c", "--to", &fork_point]);
    assert_eq!(get("c"), "plan one");
    let listed = env.json(&["artifact", "list", "a", "c"]);
    assert_eq!(listed["artifacts"].as_array().unwrap().len(), 1);
    assert_eq!(listed["artifacts"][0]["version"], 1);
    let err = env.fails(&[
        "artifact",
        "get",
        "a",
        "c",
        "notes/plan.md",
        "--version",
        "2",
    ]);
    assert!(err.contains("not found"), "{err}");

    // Identical content is stored once but still makes a version.
    let same = put("c", "plan one");
    assert_eq!(same["version"], 2);
    assert_eq!(same["sha256"], v1["sha256"]);
    let versions = env.json(&["artifact", "list", "a", "c", "--path", "notes/plan.md"]);
    assert_eq!(versions["artifacts"].as_array().unwrap().len(), 2);

    let with_content = env.json(&[
        "artifact",
        "get",
        "a",
        "c",
        "notes/plan.md",
        "--version",
        "1",
    ]);
    assert_eq!(with_content["content_base64"], "cGxhbiBvbmU=");
    let err = env.fails(&["artifact", "put", "a", "c", "../escape", "/dev/null"]);
    assert!(err.contains("invalid artifact path"), "{err}");
}
