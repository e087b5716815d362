//! Who serves a root: a daemon never removes what is not its own stale
//! socket, the command line never talks to a daemon of another root, and
//! a daemon never starts while a command uses the store in-process (its
//! watchers would miss that command's commits).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{exo, wait_until, wait_with_timeout, Conn, Framing, Root};

/// Runs `exo --root ROOT daemon ARGS` expecting it to fail at once.
fn daemon_refused(root: &Root, args: &[&str]) -> std::process::Output {
    let mut child = exo()
        .arg("--root")
        .arg(root.path())
        .arg("daemon")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exo daemon");
    let status = wait_with_timeout(&mut child);
    let output = child.wait_with_output().unwrap();
    assert!(!status.success(), "the daemon started");
    output
}

fn one_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line of error: {stderr:?}");
    stderr
}

#[test]
fn socket_option_never_removes_a_file_that_is_not_a_socket() {
    let root = Root::new();
    let precious = root.dir.path().join("notes.txt");
    std::fs::write(&precious, "my notes\n").unwrap();
    let output = daemon_refused(&root, &["--socket", precious.to_str().unwrap()]);
    let stderr = one_line(&output);
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "my notes\n");
    // And the root is free for a daemon on its own socket.
    let daemon = root.daemon();
    daemon.connect().ok("ping", json!({}));
}

#[test]
fn a_daemon_cannot_take_over_another_roots_live_socket() {
    let a = Root::new();
    let b = Root::new();
    let daemon_a = a.daemon();
    daemon_a.connect().agent_and_conversation();

    let output = daemon_refused(&b, &["--socket", a.socket().to_str().unwrap()]);
    let stderr = one_line(&output);
    assert!(stderr.contains("in use"), "{stderr}");

    // A still answers on its socket, and the command line still reaches A.
    daemon_a.connect().ok("ping", json!({}));
    let listed = a.cli(&["--json", "agent", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    let agents: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1, "{agents}");
}

#[test]
fn the_command_line_refuses_a_daemon_that_serves_another_root() {
    let a = Root::new();
    let b = Root::new();
    let _daemon_a = a.daemon();
    // A's socket goes away by hand; B's daemon binds that very path. A's
    // lock still names the path, which now leads to B.
    std::fs::remove_file(a.socket()).unwrap();
    let mut daemon_b = exo()
        .arg("--root")
        .arg(b.path())
        .args(["daemon", "--socket"])
        .arg(a.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("B listens on A's socket path", || {
        Conn::try_socket(&a.socket(), Framing::Ndjson).is_ok()
    });
    let mut conn = Conn::socket(&a.socket(), Framing::Ndjson);
    conn.agent_and_conversation();

    // Neither read nor write of A goes to B's store.
    for args in [
        &["agent", "list"][..],
        &["agent", "create", "Only A"][..],
        &["conversation", "events", "a", "c"][..],
    ] {
        let output = a.cli(args);
        assert!(!output.status.success(), "{args:?} went to B: {output:?}");
        let stderr = one_line(&output);
        assert!(stderr.contains("serves"), "{stderr}");
    }
    let agents = conn.ok("agent/list", json!({}));
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1, "{agents}");
    let _ = daemon_b.kill();
    let _ = daemon_b.wait();
}

/// Whether process `pid` has `path` open.
fn has_open(pid: u32, path: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries
        .flatten()
        .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target == path))
}

#[test]
fn a_daemon_waits_for_a_command_using_the_store_in_process() {
    let root = Root::new();
    assert!(root
        .cli(&["agent", "create", "A", "--slug", "a"])
        .status
        .success());
    assert!(root
        .cli(&["conversation", "create", "a", "C", "--slug", "c"])
        .status
        .success());

    // An append without a daemon: it has the store open in-process and
    // waits for the rest of its input.
    let mut append = exo()
        .arg("--root")
        .arg(root.path())
        .args(["conversation", "append", "a", "c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = append.stdin.take().unwrap();
    let db = std::fs::canonicalize(root.path().join("exo.db")).unwrap();
    wait_until("the append has the store open", || {
        has_open(append.id(), &db)
    });
    let lines: String = (0..200)
        .map(|i| {
            format!(
                "{}\n",
                json!({"kind": "custom", "type": "test.line", "payload": {"i": i}})
            )
        })
        .collect();
    input.write_all(lines.as_bytes()).unwrap();

    // A daemon starts meanwhile; a watcher subscribes as soon as it answers.
    let daemon = Command::new(env!("CARGO_BIN_EXE_exo"))
        .env_remove("EXO_ROOT")
        .env(
            "EXO_ENCRYPTION_KEY",
            "4444444444444444444444444444444444444444444444444444444444444444",
        )
        .arg("--root")
        .arg(root.path())
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = crate::support::Daemon {
        child: Some(daemon),
        socket: root.socket(),
    };
    let socket = root.socket();
    let watcher = std::thread::spawn(move || {
        let mut conn = loop {
            if let Ok(mut conn) = Conn::try_socket(&socket, Framing::Ndjson) {
                if conn.call("ping", json!({})).get("result").is_some() {
                    break conn;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let watch = conn.ok("events/watch", json!({"agent": "a", "conversation": "c"}))["watch"]
            .as_u64()
            .unwrap();
        crate::support::watched_until(&mut conn, watch, |event| event["type"] == "test.sentinel")
    });
    // Give a daemon that does not wait every chance to be up before the
    // append commits.
    std::thread::sleep(Duration::from_millis(500));
    drop(input);
    let output = append.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");

    wait_until("the daemon answers", || {
        Conn::try_socket(&root.socket(), Framing::Ndjson).is_ok()
    });
    let mut writer = daemon.connect();
    writer.ok(
        "conversation/append",
        json!({"agent": "a", "conversation": "c",
               "events": [{"kind": "custom", "type": "test.sentinel", "payload": {}}]}),
    );
    let seen = watcher.join().unwrap();
    let lines = seen
        .iter()
        .filter(|event| event["type"] == "test.line")
        .count();
    assert_eq!(
        lines, 200,
        "the watcher saw {lines} of the in-process append's 200 events"
    );
}
