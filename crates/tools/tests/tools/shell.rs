//! The shell tool: exit codes, timeouts, process groups, output caps and
//! cancellation, with real processes.

use std::time::{Duration, Instant};

use exo_tools::{parse, run, Limits};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{gone_soon, ok, read_pid, Fixture};

#[tokio::test]
async fn shell_returns_exit_code_stdout_and_stderr() {
    let fixture = Fixture::new();
    let output = ok(fixture
        .call("shell", json!({"command": "echo out; echo err >&2"}))
        .await);
    assert_eq!(
        output,
        json!({
            "exit_code": 0,
            "stdout": "out\n",
            "stderr": "err\n",
            "timed_out": false,
            "cancelled": false,
            "truncated": false,
        })
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_an_error_with_the_usual_shape() {
    let fixture = Fixture::new();
    let output = fixture
        .call(
            "shell",
            json!({"command": "echo partial; echo oops >&2; exit 3"}),
        )
        .await;
    assert!(output.is_error);
    assert_eq!(output.output["exit_code"], 3);
    assert_eq!(output.output["stdout"], "partial\n");
    assert_eq!(output.output["stderr"], "oops\n");
    assert_eq!(output.output["timed_out"], false);
    // Killed by a signal: no exit code.
    let output = fixture
        .call("shell", json!({"command": "kill -9 $$"}))
        .await;
    assert!(output.is_error);
    assert_eq!(output.output["exit_code"], json!(null));
    assert_eq!(output.output["timed_out"], false);
    assert_eq!(output.output["cancelled"], false);
}

#[tokio::test]
async fn shell_runs_in_the_workspace_root_with_empty_stdin() {
    let fixture = Fixture::new();
    fixture.write("here.txt", "x");
    // `cat` would wait forever on an inherited terminal; stdin is empty.
    let output = ok(fixture
        .call("shell", json!({"command": "pwd; ls; cat"}))
        .await);
    assert_eq!(
        output["stdout"],
        format!("{}\nhere.txt\n", fixture.root.display())
    );
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let fixture = Fixture::new();
    let started = Instant::now();
    let output = fixture
        .call(
            "shell",
            json!({
                "command": "sleep 100 & echo $! > grandchild.pid; echo started; sleep 100",
                "timeout_ms": 300,
            }),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(output.is_error);
    assert_eq!(output.output["timed_out"], true);
    assert_eq!(output.output["cancelled"], false);
    assert_eq!(output.output["exit_code"], json!(null));
    assert_eq!(output.output["stdout"], "started\n");
    let grandchild = read_pid(&fixture.root.join("grandchild.pid"));
    assert!(
        gone_soon(grandchild),
        "background sleep {grandchild} survived"
    );
}

#[tokio::test]
async fn background_jobs_do_not_outlive_the_command() {
    let fixture = Fixture::new();
    let started = Instant::now();
    // The background job holds stdout open; the call must not wait for it.
    let output = ok(fixture
        .call(
            "shell",
            json!({"command": "sleep 100 & echo $! > grandchild.pid; echo done"}),
        )
        .await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output["stdout"], "done\n");
    let grandchild = read_pid(&fixture.root.join("grandchild.pid"));
    assert!(
        gone_soon(grandchild),
        "background sleep {grandchild} survived"
    );
}

#[tokio::test]
async fn timeout_ms_is_lowered_to_the_maximum() {
    let fixture = Fixture::new();
    let limits = Limits {
        max_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let started = Instant::now();
    let output = fixture
        .call_with(
            "shell",
            json!({"command": "sleep 100", "timeout_ms": 3_600_000}),
            &limits,
        )
        .await;
    assert_eq!(output.output["timed_out"], true);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // And the default applies without timeout_ms.
    let limits = Limits {
        default_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let output = fixture
        .call_with("shell", json!({"command": "sleep 100"}), &limits)
        .await;
    assert_eq!(output.output["timed_out"], true);
}

#[tokio::test]
async fn the_output_cap_keeps_head_and_tail() {
    let fixture = Fixture::new();
    let limits = Limits {
        max_output_bytes: 1000,
        ..Limits::default()
    };
    let command = "printf BEGIN; head -c 100000 /dev/zero | tr '\\0' x; printf END; \
                   printf 'short error' >&2";
    let output = ok(fixture
        .call_with("shell", json!({"command": command}), &limits)
        .await);
    assert_eq!(output["truncated"], true);
    assert_eq!(output["stderr"], "short error");
    let stdout = output["stdout"].as_str().unwrap();
    // 100 008 bytes in, 500 kept at each end.
    let expected = format!(
        "BEGIN{}\n[... 99008 bytes omitted ...]\n{}END",
        "x".repeat(495),
        "x".repeat(497)
    );
    assert_eq!(stdout, expected);
}

#[tokio::test]
async fn cancellation_kills_the_group_and_returns_partial_output() {
    let fixture = Fixture::new();
    let cancel = CancellationToken::new();
    let ready = fixture.root.join("ready");
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            while !ready.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            cancel.cancel();
        })
    };
    let call = parse(
        "shell",
        &json!({"command": "echo partial; echo $$ > shell.pid; touch ready; sleep 100"}),
    )
    .unwrap();
    let started = Instant::now();
    let output = run(&fixture.workspace, &call, &Limits::default(), &[], &cancel).await;
    canceller.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(output.is_error);
    assert_eq!(
        output.output,
        json!({
            "exit_code": null,
            "stdout": "partial\n",
            "stderr": "",
            "timed_out": false,
            "cancelled": true,
            "truncated": false,
        })
    );
    let shell = read_pid(&fixture.root.join("shell.pid"));
    assert!(gone_soon(shell), "shell {shell} survived");
    // Already cancelled: nothing runs.
    let call = parse("shell", &json!({"command": "touch ran"})).unwrap();
    let output = run(&fixture.workspace, &call, &Limits::default(), &[], &cancel).await;
    assert_eq!(
        output.output,
        json!({"error": "cancelled", "cancelled": true})
    );
    assert!(!fixture.root.join("ran").exists());
}

#[tokio::test]
async fn dropping_a_running_call_kills_its_process_group() {
    let fixture = Fixture::new();
    let call = parse(
        "shell",
        &json!({"command": "sleep 100 & echo $! > grandchild.pid; sleep 100"}),
    )
    .unwrap();
    let limits = Limits::default();
    let cancel = CancellationToken::new();
    let pid_file = fixture.root.join("grandchild.pid");
    let mut running = Box::pin(run(&fixture.workspace, &call, &limits, &[], &cancel));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pid_file.exists() || std::fs::read_to_string(&pid_file).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::select! {
            _ = &mut running => panic!("the command finished"),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    drop(running);
    let grandchild = read_pid(&pid_file);
    assert!(
        gone_soon(grandchild),
        "background sleep {grandchild} survived"
    );
}

#[tokio::test]
async fn a_process_that_left_the_group_does_not_hold_the_call() {
    let fixture = Fixture::new();
    let has_setsid = std::process::Command::new("sh")
        .args(["-c", "command -v setsid"])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        has_setsid,
        "this test needs setsid (util-linux, essential on Debian)"
    );
    let started = Instant::now();
    // The escaped process keeps stdout open; the call returns after the
    // drain grace anyway, with what was written.
    let output = ok(fixture
        .call(
            "shell",
            json!({"command": "setsid sleep 100 & echo $! > escaped.pid; echo done"}),
        )
        .await);
    let elapsed = started.elapsed();
    let escaped = read_pid(&fixture.root.join("escaped.pid"));
    if let Some(pid) = rustix::process::Pid::from_raw(escaped) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(output["stdout"], "done\n");
}
