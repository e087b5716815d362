//! The `local` sandbox (the default): a model's shell command runs under
//! real bubblewrap, sees the workspace and nothing of exo's secrets, other
//! processes or the network, and dies with the turn however it ends.
//! spec/sandboxes.md.

use std::process::Stdio;

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{Fixture, API_KEY, API_KEY_VAR};

/// Whether bubblewrap runs here; where it must (the test set-up installs
/// it), its absence fails the test instead.
pub(crate) fn bwrap_ready() -> bool {
    let works = std::process::Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--unshare-pid", "--", "/bin/true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !works {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "bubblewrap does not run: run scripts/setup-sandbox"
        );
        eprintln!("skipped: bubblewrap does not run here (scripts/setup-sandbox installs it)");
    }
    works
}

/// The stdout of the turn's one shell call.
pub(crate) fn shell_output(fixture: &Fixture) -> Value {
    fixture
        .last_turn("work")
        .into_iter()
        .find(|event| event["kind"] == "tool_result")
        .expect("a tool result")["output"]
        .clone()
}

/// Runs one turn whose model calls `shell` with `command`; the call's
/// output.
fn run_shell(fixture: &Fixture, command: &str) -> Value {
    fixture.model.push(Completion::text("").with_tool_call(
        "call",
        "shell",
        json!({"command": command}),
    ));
    fixture.model.push(Completion::text("ok"));
    fixture.send_ok("work", "run");
    shell_output(fixture)
}

/// What the spy prints, one `name: value` per line.
fn spy(fixture: &Fixture, port: u16) -> String {
    let key_file = fixture.env.config_dir().join("exo/key");
    let home = fixture.env.dir();
    format!(
        r#"exec 2>&1
echo "key: $(cat {key} 2>&1 | head -c 80)"
echo "root: $(ls -A {root} 2>&1 | tr '\n' ' ')"
echo "home: $(ls -A {home} | tr '\n' ' ')"
echo "processes: $(ls /proc | grep -c '^[0-9]')"
echo "environ: $(cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline | tr '\0' ' ')"
echo "network: $(bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo open' 2>/dev/null || echo closed)"
echo "system: $(touch /usr/exo-sandbox-probe 2>&1 || true)"
echo "sysctl: $( (echo core > /proc/sys/kernel/core_pattern) 2>&1 || true)"
echo "tmp: $(ls -A /tmp | tr '\n' ' ')"
echo written > inside.txt && echo "workspace: writable"
"#,
        key = key_file.display(),
        root = fixture.root.display(),
        home = home.display(),
    )
}

pub(crate) fn line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} line in {stdout}"))
}

fn model_port(fixture: &Fixture) -> u16 {
    let url = fixture.model.base_url();
    let after = url.split("127.0.0.1:").nth(1).expect("a local URL");
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// From a sandboxed command, whether in `send` or in a daemon: the key
/// file, exo's root and the home are out of sight, only the sandbox's own
/// processes exist (no `environ` of exo's holds the API key), the network
/// is closed, the system is read-only, `/tmp` is the sandbox's own, and
/// the workspace is writable.
#[test]
fn a_sandboxed_command_sees_the_workspace_and_nothing_of_exo() {
    if !bwrap_ready() {
        return;
    }
    // The second time with exo's root inside the workspace, as in a
    // project, and a daemon running the turn.
    for daemon in [false, true] {
        let root_at = if daemon {
            crate::agent::RootAt::InsideWorkspace
        } else {
            crate::agent::RootAt::Beside
        };
        let fixture = Fixture::with_root(Wire::OpenAiChat, "auto", root_at);
        // A file in the host's /tmp, which the sandbox's own /tmp lacks.
        let marker = tempfile::NamedTempFile::new_in("/tmp").unwrap();
        let marker_name = marker.path().file_name().unwrap().to_str().unwrap();
        let port = model_port(&fixture);
        fixture
            .model
            .push(Completion::text("Looking.").with_tool_call(
                "call_spy",
                "shell",
                json!({"command": spy(&fixture, port)}),
            ));
        fixture.model.push(Completion::text("Seen."));
        let running = daemon.then(|| fixture.daemon());
        fixture.send_ok("work", "look around");
        if let Some(running) = running {
            fixture.stop(running);
        }
        let output = shell_output(&fixture);
        let stdout = output["stdout"].as_str().unwrap();
        assert!(line(stdout, "key").contains("No such file"), "{stdout}");
        let root = line(stdout, "root");
        assert!(root.contains("No such file") || root.is_empty(), "{stdout}");
        // The home holds the workspace (bound back in) and nothing else.
        assert_eq!(line(stdout, "home").trim(), "ws", "{stdout}");
        if daemon {
            // exo's root shows as an empty directory where it is.
            assert!(fixture.root.join("exo.db").exists());
        }
        let processes: u32 = line(stdout, "processes").parse().unwrap();
        assert!(processes <= 8, "{stdout}");
        assert!(
            !stdout.contains(API_KEY),
            "the API key is visible: {stdout}"
        );
        assert!(!line(stdout, "environ").contains(API_KEY_VAR), "{stdout}");
        assert_eq!(line(stdout, "network"), "closed", "{stdout}");
        assert!(line(stdout, "system").contains("Read-only"), "{stdout}");
        // Even as root, no host sysctl (core_pattern runs a program as
        // root on the host).
        assert!(line(stdout, "sysctl").contains("Read-only"), "{stdout}");
        assert!(!line(stdout, "tmp").contains(marker_name), "{stdout}");
        assert_eq!(line(stdout, "workspace"), "writable");
        assert_eq!(
            std::fs::read_to_string(fixture.workspace.join("inside.txt")).unwrap(),
            "written\n"
        );
        assert!(!std::path::Path::new("/usr/exo-sandbox-probe").exists());
    }
}

/// `--network on` opens the network; `--sandbox none` runs on the host.
#[test]
fn the_network_and_the_host_are_the_agents_choice() {
    if !bwrap_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    let port = model_port(&fixture);
    let probe = format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo open' 2>/dev/null || echo closed; ls /proc | grep -c '^[0-9]'"
    );
    let run = |fixture: &Fixture| {
        fixture.model.push(Completion::text("").with_tool_call(
            "call_net",
            "shell",
            json!({"command": probe}),
        ));
        fixture.model.push(Completion::text("ok"));
        fixture.send_ok("work", "probe");
        shell_output(fixture)["stdout"].as_str().unwrap().to_owned()
    };
    fixture.ok(&["agent", "set", "coder", "--network", "on"]);
    let shown = fixture.ok(&["agent", "show", "coder"]).stdout;
    assert!(shown.contains("sandbox: local, network on"), "{shown}");
    let open = run(&fixture);
    assert!(open.starts_with("open\n"), "{open}");
    let sandboxed: u32 = open.lines().nth(1).unwrap().parse().unwrap();
    fixture.ok(&["agent", "set", "coder", "--sandbox", "none"]);
    let host = run(&fixture);
    let seen: u32 = host.lines().nth(1).unwrap().parse().unwrap();
    assert!(seen > sandboxed, "{host} vs {open}");
}

/// A local sandbox's commands run under limits: a process that grows past
/// 4 GiB of memory fails to allocate (the host's out-of-memory killer is
/// never reached) and, for a user other than root (the kernel exempts
/// root), a fork bomb stops at 1024 processes of the sandbox's own; the
/// turn goes on and the next command runs.
#[test]
fn a_local_sandbox_limits_memory_and_processes() {
    if !bwrap_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    let run = |command: &str| run_shell(&fixture, command);
    let limits =
        run("ulimit -p; ulimit -d; ulimit -H -d; ulimit -d unlimited 2>/dev/null || echo fixed");
    assert_eq!(
        limits["stdout"], "1024\n4194304\n4194304\nfixed\n",
        "{limits}"
    );
    let hog = run("head -c 6G /dev/zero | tail > /dev/null; echo \"status: $?\"");
    let said = hog["stdout"].as_str().unwrap();
    assert!(
        said.starts_with("status: ") && said != "status: 0\n" && said != "status: 137\n",
        "{hog}"
    );
    assert!(
        hog["stderr"].as_str().unwrap().contains("memory exhausted"),
        "{hog}"
    );
    let root = rustix::process::getuid().is_root();
    if root {
        eprintln!("skipped: the fork bomb (the kernel does not limit the processes of root)");
    } else {
        let bomb = run(
            "exec 2>&1; i=0; while [ $i -lt 1500 ]; do sleep 60 & i=$((i+1)); done; echo spawned",
        );
        let said = bomb["stdout"].as_str().unwrap().to_lowercase();
        assert!(said.contains("fork") || said.contains("resource"), "{bomb}");
    }
    let after = run("echo alive");
    assert_eq!(after["stdout"], "alive\n", "{after}");
    let ended: Vec<Value> = fixture
        .events("work")
        .into_iter()
        .filter(|event| event["kind"] == "turn_ended")
        .collect();
    assert!(
        ended.iter().all(|event| event["status"] == "completed"),
        "{ended:?}"
    );
}

/// Where bubblewrap cannot run, a sandboxed agent's commands are refused
/// (the turn fails, saying why, and nothing ran); with
/// `--sandbox-fallback on` they run on the host.
#[test]
fn without_bubblewrap_commands_are_refused_unless_the_agent_allows_the_host() {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    let no_bwrap = [("EXO_BWRAP", "/nonexistent/bwrap"), (API_KEY_VAR, API_KEY)];
    fixture.model.push(Completion::text("").with_tool_call(
        "call_1",
        "shell",
        json!({"command": "echo ran > ran.txt"}),
    ));
    let run = fixture.env.run_with(
        &fixture.args(&["conversation", "send", "coder", "work", "go"]),
        b"",
        &no_bwrap,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "the shell tool could not run: the local sandbox cannot run: bubblewrap (bwrap) is not installed"
        ),
        "{}",
        run.stderr
    );
    assert!(!fixture.workspace.join("ran.txt").exists());

    fixture.ok(&["agent", "set", "coder", "--sandbox-fallback", "on"]);
    fixture.model.push(Completion::text("").with_tool_call(
        "call_2",
        "shell",
        json!({"command": "echo ran > ran.txt"}),
    ));
    fixture.model.push(Completion::text("ran"));
    let run = fixture.env.run_with(
        &fixture.args(&["conversation", "send", "coder", "work", "go"]),
        b"",
        &no_bwrap,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("ran.txt")).unwrap(),
        "ran\n"
    );
}

/// A sandboxed command that outlives its timeout, with a background job,
/// is stopped with everything it started; so is one whose `exo` is
/// killed with SIGKILL.
#[test]
fn a_sandboxed_command_dies_with_its_call_and_with_exo() {
    if !bwrap_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    let ticker = "(while :; do date >> ticks; sleep 0.05; done) & sleep 100";
    fixture.model.push(Completion::text("").with_tool_call(
        "call_1",
        "shell",
        json!({"command": ticker, "timeout_ms": 1000}),
    ));
    fixture.model.push(Completion::text("stopped"));
    fixture.send_ok("work", "tick");
    let output = shell_output(&fixture);
    assert_eq!(output["timed_out"], true, "{output}");
    let ticks = fixture.workspace.join("ticks");
    still(&ticks);

    std::fs::remove_file(&ticks).unwrap();
    fixture.model.push(Completion::text("").with_tool_call(
        "call_2",
        "shell",
        json!({"command": ticker}),
    ));
    let mut command =
        fixture
            .env
            .command(&fixture.args(&["conversation", "send", "coder", "work", "tick"]));
    command
        .env(API_KEY_VAR, API_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    crate::util::wait_until("the command ticks", || {
        std::fs::metadata(&ticks).is_ok_and(|meta| meta.len() > 0)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    still(&ticks);
}

/// Waits until `file` stops growing (two sizes a second apart agree).
fn still(file: &std::path::Path) {
    let size = || std::fs::metadata(file).map_or(0, |meta| meta.len());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let before = size();
        std::thread::sleep(std::time::Duration::from_secs(1));
        if size() == before {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} goes on growing",
            file.display()
        );
    }
}

/// Whether a Docker daemon answers and exo's base image is there; where
/// they must be (the test set-up provides them), their absence fails the
/// test instead.
pub(crate) fn docker_ready() -> bool {
    let image = std::process::Command::new("docker")
        .args(["image", "inspect", "exo/base:bookworm"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !image {
        assert!(
            std::env::var("EXO_REQUIRE_AGENTS").as_deref() != Ok("1"),
            "no Docker daemon or no exo/base:bookworm image: run scripts/docker-up and containers/build"
        );
        eprintln!("skipped: no Docker daemon or no exo/base:bookworm image");
    }
    image
}

/// Waits (a minute at most) until the command has made `marker`.
fn wait_for(marker: &std::path::Path) {
    let begun = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            begun.elapsed() < std::time::Duration::from_secs(60),
            "the command never made {}",
            marker.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Removes the conversation's container, and the snapshot images made of
/// it, when the test ends (the test's root goes away; Docker's copies would
/// not).
pub(crate) struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let conversation = self.0.trim_start_matches("exo-");
        let images = std::process::Command::new("docker")
            .args(["images", "--quiet", "--filter"])
            .arg(format!("label=exo.conversation={conversation}"))
            .output();
        if let Ok(images) = images {
            let ids = String::from_utf8_lossy(&images.stdout).into_owned();
            let mut ids: Vec<&str> = ids.split_whitespace().collect();
            ids.dedup();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rmi", "--force"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

pub(crate) fn container_of(fixture: &Fixture) -> Container {
    let id = fixture.json(&["conversation", "show", "coder", "work"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Container(format!("exo-{id}"))
}

/// With `--sandbox docker`, commands run in a container of the
/// conversation's own, made from exo's base image on first use, through
/// the Engine API: the workspace is shared with the host (writes show on
/// disk), exo's root inside it and the key file are not there, there is no
/// network, what a turn installs outside the workspace stays for the next
/// turn, a timeout kills what the command started, and a container killed
/// behind exo's back is started again on next use.
#[test]
fn a_docker_sandbox_runs_commands_in_the_conversations_container() {
    if !docker_ready() {
        return;
    }
    let fixture = Fixture::with_root(
        Wire::OpenAiChat,
        "auto",
        crate::agent::RootAt::InsideWorkspace,
    );
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let container = container_of(&fixture);
    let port = model_port(&fixture);
    let key_file = fixture.env.config_dir().join("exo/key");
    let first = format!(
        r#"exec 2>&1
echo "container: $(test -e /.dockerenv && hostname)"
echo "root: $(ls -A {root} 2>&1 | tr '\n' ' ')"
echo "key: $(cat {key} 2>&1 | head -c 80)"
echo "network: $(bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo open' 2>/dev/null || echo closed)"
echo installed > /opt/exo-marker
echo written > inside.txt && echo "workspace: writable""#,
        root = fixture.root.display(),
        key = key_file.display(),
    );
    let run = |command: &str, timeout_ms: Option<u64>| {
        let mut arguments = json!({"command": command});
        if let Some(timeout_ms) = timeout_ms {
            arguments["timeout_ms"] = json!(timeout_ms);
        }
        fixture
            .model
            .push(Completion::text("").with_tool_call("call", "shell", arguments));
        fixture.model.push(Completion::text("ok"));
        fixture.send_ok("work", "run");
        shell_output(&fixture)
    };
    let output = run(&first, None);
    let stdout = output["stdout"].as_str().unwrap();
    assert_eq!(line(stdout, "container"), "exo-sandbox", "{stdout}");
    let root = line(stdout, "root");
    assert!(root.is_empty() || root.contains("No such file"), "{stdout}");
    assert!(line(stdout, "key").contains("No such file"), "{stdout}");
    assert_eq!(line(stdout, "network"), "closed", "{stdout}");
    assert_eq!(line(stdout, "workspace"), "writable", "{stdout}");
    assert_eq!(
        std::fs::read_to_string(fixture.workspace.join("inside.txt")).unwrap(),
        "written\n"
    );
    assert!(fixture.root.join("exo.db").exists());

    // The next turn finds what the first installed outside the workspace.
    let output = run("cat /opt/exo-marker", None);
    assert_eq!(output["stdout"], "installed\n", "{output}");

    // What a command leaves running in the background goes when it exits,
    // as on the host.
    run("(sleep 300 &); echo started", None);
    let output = run("grep -lx sleep /proc/[0-9]*/comm | wc -l", None);
    assert_eq!(
        output["stdout"], "1\n",
        "only the container's own: {output}"
    );

    // A timeout kills the command and its background job.
    let output = run(
        "(while :; do date >> ticks; sleep 0.05; done) & sleep 100",
        Some(1000),
    );
    assert_eq!(output["timed_out"], true, "{output}");
    assert_eq!(output["stderr"], "", "{output}");
    still(&fixture.workspace.join("ticks"));

    // Killed behind exo's back: started again, its files kept.
    let killed = std::process::Command::new("docker")
        .args(["kill", &container.0])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let output = run("cat /opt/exo-marker", None);
    assert_eq!(output["stdout"], "installed\n", "{output}");

    // Listed; removed, and made again from the newest snapshot (the
    // marker was snapshotted at its turn's end).
    let listed = fixture.json(&["sandbox", "list"]);
    let ours: Vec<&Value> = listed["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["container"] == container.0.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{listed}");
    assert_eq!(ours[0]["state"], "running", "{listed}");
    assert!(ours[0]["image"]
        .as_str()
        .unwrap()
        .starts_with("exo-snapshot:"));
    assert_eq!(
        fixture.json(&["sandbox", "rm", "coder", "work"])["removed"],
        true
    );
    assert_eq!(
        fixture.json(&["sandbox", "rm", "coder", "work"])["removed"],
        false
    );
    let output = run("cat /opt/exo-marker", None);
    assert_eq!(output["stdout"], "installed\n", "{output}");

    // Deleting the conversation removes its container, and gc its images.
    fixture.ok(&["conversation", "delete", "coder", "work"]);
    let gone = std::process::Command::new("docker")
        .args(["inspect", &container.0])
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "the container outlived its conversation"
    );
    let collected = fixture.json(&["gc"]);
    assert!(
        collected["sandbox_images"].as_u64().unwrap() >= 1,
        "{collected}"
    );
    drop(container);
}

/// A docker sandbox that cannot be had (no daemon at DOCKER_HOST, an image
/// that is not there) fails the turn saying why, and runs nothing.
#[test]
fn a_docker_sandbox_that_cannot_run_fails_the_turn_saying_why() {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let _container = container_of(&fixture);
    let attempt = |envs: &[(&str, &str)]| {
        fixture.model.push(Completion::text("").with_tool_call(
            "call",
            "shell",
            json!({"command": "echo ran > ran.txt"}),
        ));
        let mut all = vec![(API_KEY_VAR, API_KEY)];
        all.extend_from_slice(envs);
        fixture.env.run_with(
            &fixture.args(&["conversation", "send", "coder", "work", "go"]),
            b"",
            &all,
        )
    };
    let run = attempt(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the shell tool could not run: the docker sandbox failed: cannot reach the Docker daemon"),
        "{}",
        run.stderr
    );
    if docker_ready() {
        fixture.ok(&["agent", "set", "coder", "--image", "exo/no-such-image:1"]);
        let run = attempt(&[]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(
                "the docker sandbox failed: the image exo/no-such-image:1 is not present"
            ),
            "{}",
            run.stderr
        );
    }
    assert!(!fixture.workspace.join("ran.txt").exists());
}

/// A docker sandbox rewinds with the log: what a turn installs outside the
/// workspace is snapshotted at its end (`sandbox.snapshotted`), gone after
/// a rewind to before it, back after the redo; a fork gets a container of
/// its own, as of the fork point.
#[test]
fn a_docker_sandbox_rewinds_redoes_and_forks_with_the_log() {
    if !docker_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let container = container_of(&fixture);
    let run = |conversation: &str, command: &str| {
        fixture.model.push(Completion::text("").with_tool_call(
            "call",
            "shell",
            json!({"command": command}),
        ));
        fixture.model.push(Completion::text("ok"));
        fixture.send_ok(conversation, "run");
        fixture
            .last_turn(conversation)
            .into_iter()
            .find(|event| event["kind"] == "tool_result")
            .expect("a tool result")["output"]["stdout"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let probe = "for p in one two; do test -e /opt/$p && echo $p; done; true";
    let ends = |fixture: &Fixture| -> Vec<String> {
        fixture
            .events("work")
            .iter()
            .filter(|event| event["kind"] == "turn_ended")
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let start = fixture.events("work")[0]["id"].as_str().unwrap().to_owned();

    run("work", "echo 1 > /opt/one");
    let snapshots: Vec<Value> = fixture
        .last_turn("work")
        .into_iter()
        .filter(|event| event["type"] == "sandbox.snapshotted")
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert!(snapshots[0]["payload"]["image"]
        .as_str()
        .unwrap()
        .starts_with("exo-snapshot:"));
    run("work", "echo 2 > /opt/two");
    let second: Vec<Value> = fixture.last_turn("work");
    assert!(
        second
            .iter()
            .any(|event| event["type"] == "sandbox.snapshotted"),
        "{second:#?}"
    );
    let [first_end, second_end] = <[String; 2]>::try_from(ends(&fixture)).unwrap();
    assert_eq!(run("work", probe), "one\ntwo\n");
    // A turn that changed nothing outside the workspace takes no snapshot.
    assert!(fixture
        .last_turn("work")
        .iter()
        .all(|event| event["type"] != "sandbox.snapshotted"));

    fixture.ok(&[
        "conversation",
        "rewind",
        "coder",
        "work",
        "--to",
        &first_end,
    ]);
    assert_eq!(run("work", probe), "one\n");
    fixture.ok(&[
        "conversation",
        "rewind",
        "coder",
        "work",
        "--to",
        &second_end,
    ]);
    assert_eq!(run("work", probe), "one\ntwo\n");
    fixture.ok(&["conversation", "rewind", "coder", "work", "--to", &start]);
    assert_eq!(run("work", probe), "");

    // A fork at the first turn's end: a container of its own, with /opt/one.
    let fork = fixture.json(&[
        "conversation",
        "fork",
        "coder",
        "work",
        "--at",
        &first_end,
        "--slug",
        "side",
    ]);
    let fork_container = Container(format!("exo-{}", fork["id"].as_str().unwrap()));
    assert_eq!(run("side", probe), "one\n");

    // gc keeps every snapshot a live conversation reaches (the rewound
    // branch's too, for a redo), and removes them once none does.
    let root = fixture.root.canonicalize().unwrap();
    let images = || -> Vec<String> {
        let listed = std::process::Command::new("docker")
            .args(["images", "--filter"])
            .arg(format!("label=exo.root={}", root.display()))
            .args(["--format", "{{.Repository}}:{{.Tag}}", "exo-snapshot"])
            .output()
            .unwrap();
        let mut images: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        images.sort();
        images
    };
    let taken: Vec<Value> = ["work", "side"]
        .iter()
        .flat_map(|conversation| fixture.events(conversation))
        .filter(|event| event["type"] == "sandbox.snapshotted")
        .collect();
    assert_eq!(images().len(), 2, "{:?} {taken:#?}", images());
    let kept = fixture.json(&["gc"]);
    assert_eq!(kept["sandbox_images"], 0, "{kept}");
    assert_eq!(images().len(), 2);
    fixture.ok(&["conversation", "delete", "coder", "side"]);
    fixture.ok(&["conversation", "delete", "coder", "work"]);
    let collected = fixture.json(&["gc"]);
    assert_eq!(collected["sandbox_images"], 2, "{collected}");
    assert_eq!(images(), Vec::<String>::new());
    drop(fork_container);
    drop(container);
}

/// The lifecycle outside turns: `exo sandbox create`, `exec`, `stop`,
/// `start`, `snapshot` and `rm`, each recorded; a snapshot taken by hand
/// is what the container is made again from; wrong steps are refused in
/// one line; a local sandbox has no container, and `exec` runs in it.
#[test]
fn the_sandbox_lifecycle_is_in_the_log() {
    if !docker_ready() || !bwrap_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    // A local sandbox: no container to make; exec runs in bubblewrap.
    let refused = fixture.run(&["sandbox", "create", "coder", "work"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("runs commands in the local sandbox: only a docker sandbox has a container"),
        "{}",
        refused.stderr
    );
    let local = fixture.ok(&[
        "sandbox",
        "exec",
        "coder",
        "work",
        "--",
        "ls /proc | grep -c '^[0-9]'",
    ]);
    let processes: u32 = local.stdout.trim().parse().unwrap();
    assert!(processes <= 8, "{}", local.stdout);

    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let container = container_of(&fixture);
    let made = fixture.json(&["sandbox", "create", "coder", "work"]);
    assert_eq!(made["container"], container.0.as_str());
    assert_eq!(made["image"], "exo/base:bookworm");
    assert_eq!(made["state"], "running");
    let again = fixture.run(&["sandbox", "create", "coder", "work"]);
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("already has its container"),
        "{}",
        again.stderr
    );
    assert_eq!(again.stderr.trim().lines().count(), 1);

    // One user of the container at a time: while an exec runs, a snapshot
    // and another exec are refused as busy (the exec is not killed).
    let running = fixture
        .env
        .command(&fixture.args(&[
            "sandbox",
            "exec",
            "coder",
            "work",
            "--",
            "touch started; sleep 4; echo slept",
        ]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&fixture.workspace.join("started"));
    for step in [
        &["sandbox", "snapshot", "coder", "work"][..],
        &["sandbox", "exec", "coder", "work", "--", "true"][..],
    ] {
        let busy = fixture.run(step);
        assert_ne!(busy.code, 0, "{step:?}");
        assert!(
            busy.stderr.contains("the sandbox is busy"),
            "{step:?}: {}",
            busy.stderr
        );
    }
    let output = running.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "slept\n");

    // exec: output and exit status pass through; the step is an event.
    let ran = fixture.run(&[
        "sandbox",
        "exec",
        "coder",
        "work",
        "--",
        "echo installed > /opt/tool; echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(ran.stdout, "out\n");
    assert_eq!(ran.stderr, "err\n");
    let json = fixture.json(&[
        "sandbox",
        "exec",
        "coder",
        "work",
        "--json",
        "--",
        "cat /opt/tool",
    ]);
    assert_eq!(json["output"]["stdout"], "installed\n");

    let stopped = fixture.json(&["sandbox", "stop", "coder", "work"]);
    assert_eq!(stopped["state"], "exited");
    // A second stop changes nothing and records nothing.
    let again = fixture.json(&["sandbox", "stop", "coder", "work"]);
    assert_eq!(again["state"], "exited");
    let started = fixture.json(&["sandbox", "start", "coder", "work"]);
    assert_eq!(started["state"], "running");
    let again = fixture.json(&["sandbox", "start", "coder", "work"]);
    assert_eq!(again, started);
    let still = fixture.ok(&["sandbox", "exec", "coder", "work", "--", "cat /opt/tool"]);
    assert_eq!(still.stdout, "installed\n");

    let snapshot = fixture.json(&["sandbox", "snapshot", "coder", "work"]);
    let image = snapshot["image"].as_str().unwrap().to_owned();
    assert!(image.starts_with("exo-snapshot:"), "{snapshot}");
    let nothing = fixture.json(&["sandbox", "snapshot", "coder", "work"]);
    assert_eq!(nothing["image"], Value::Null, "{nothing}");
    // Removed, it comes back from the snapshot at its next step.
    fixture.ok(&["sandbox", "rm", "coder", "work"]);
    let back = fixture.ok(&["sandbox", "exec", "coder", "work", "--", "cat /opt/tool"]);
    assert_eq!(back.stdout, "installed\n");

    let types: Vec<String> = fixture
        .events("work")
        .iter()
        .filter(|event| event["kind"] == "custom")
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "sandbox.exec",
            "sandbox.created",
            "sandbox.exec",
            "sandbox.exec",
            "sandbox.exec",
            "sandbox.stopped",
            "sandbox.started",
            "sandbox.exec",
            "sandbox.snapshotted",
            "sandbox.removed",
            "sandbox.exec",
        ]
    );
    let exec = fixture
        .events("work")
        .into_iter()
        .find(|event| event["type"] == "sandbox.exec" && event["payload"]["exit_code"] == 3)
        .expect("the failed exec's event");
    assert_eq!(exec["payload"]["sandbox"], "docker");
    // Unknown conversations, and a stop with nothing to stop.
    fixture.ok(&["sandbox", "rm", "coder", "work"]);
    let none = fixture.run(&["sandbox", "stop", "coder", "work"]);
    assert!(
        none.stderr.contains("has no container to stop"),
        "{}",
        none.stderr
    );
    let unknown = fixture.run(&["sandbox", "start", "coder", "nope"]);
    assert_ne!(unknown.code, 0);
    assert_eq!(
        unknown.stderr.trim().lines().count(),
        1,
        "{}",
        unknown.stderr
    );
}

/// A command that forks past the sandbox's process limit, and one that
/// fills its memory, are stopped by the container's limits: the calls come
/// back with what happened, the turn completes, and the container goes on
/// serving (what the bomb left running is gone with its command).
#[test]
fn a_docker_sandbox_contains_a_fork_bomb_and_a_memory_hog() {
    if !docker_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let _container = container_of(&fixture);
    let run = |command: &str| run_shell(&fixture, command);
    let bomb =
        run("exec 2>&1; i=0; while [ $i -lt 1500 ]; do sleep 60 & i=$((i+1)); done; echo spawned");
    let said = bomb["stdout"].as_str().unwrap().to_lowercase();
    assert!(said.contains("fork"), "{bomb}");
    let hog = run("head -c 6G /dev/zero | tail > /dev/null; echo \"status: $?\"");
    assert_eq!(hog["stdout"], "status: 137\n", "{hog}");
    let after = run("echo alive; ls /proc | grep -c '^[0-9]'");
    let stdout = after["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("alive\n"), "{after}");
    let processes: u32 = stdout.lines().nth(1).unwrap().parse().unwrap();
    assert!(processes < 20, "the bomb's processes outlived it: {after}");
    let ended: Vec<Value> = fixture
        .events("work")
        .into_iter()
        .filter(|event| event["kind"] == "turn_ended")
        .collect();
    assert_eq!(ended.len(), 3);
    assert!(
        ended.iter().all(|event| event["status"] == "completed"),
        "{ended:?}"
    );
}

/// A container killed in the middle of a command: the call comes back
/// saying what happened, the turn ends visibly, the log stays whole, and
/// the next command gets its container again (started, with its files).
#[test]
fn a_container_killed_mid_command_ends_the_call_and_comes_back() {
    if !docker_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let container = container_of(&fixture);
    fixture.model.push(Completion::text("").with_tool_call(
        "call_1",
        "shell",
        json!({"command": "echo kept > /opt/kept; touch started; sleep 60; echo never"}),
    ));
    fixture.model.push(Completion::text("ok"));
    let marker = fixture.workspace.join("started");
    let name = container.0.clone();
    let killer = std::thread::spawn(move || {
        wait_for(&marker);
        let killed = std::process::Command::new("docker")
            .args(["kill", &name])
            .output()
            .unwrap();
        assert!(killed.status.success(), "{killed:?}");
    });
    let started = std::time::Instant::now();
    let run = fixture.send("work", "run", &[]);
    killer.join().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "the call waited for the killed command"
    );
    let turn = fixture.last_turn("work");
    let ended = turn.last().unwrap();
    assert_eq!(ended["kind"], "turn_ended", "{turn:#?}");
    let result = turn
        .iter()
        .find(|event| event["kind"] == "tool_result")
        .expect("the call's result");
    let output = result["output"].to_string();
    assert!(!output.contains("never"), "{output}");
    assert!(
        run.code != 0 || result["is_error"] == true || output.contains("137"),
        "the call did not say it was cut short: {output} / {}",
        run.stderr
    );
    // The next command: the container is started again, with its files.
    fixture.model.push(Completion::text("").with_tool_call(
        "call_2",
        "shell",
        json!({"command": "cat /opt/kept"}),
    ));
    fixture.model.push(Completion::text("ok"));
    fixture.send_ok("work", "again");
    assert_eq!(shell_output(&fixture)["stdout"], "kept\n");
}

/// A stand-in for the Docker daemon's socket that passes every
/// connection on to the real one, and can "restart": drop every
/// connection open through it at once.
struct DockerSocket {
    path: std::path::PathBuf,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl DockerSocket {
    fn start() -> DockerSocket {
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::<UnixStream>::new()));
        let kept = std::sync::Arc::clone(&open);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(daemon) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                {
                    let mut kept = kept.lock().unwrap();
                    kept.push(client.try_clone().unwrap());
                    kept.push(daemon.try_clone().unwrap());
                }
                let (mut from, mut to) = (client.try_clone().unwrap(), daemon.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
                let (mut from, mut to) = (daemon, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        DockerSocket {
            path,
            open,
            seen,
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// How many connections went through it (two streams each).
    fn connections(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every connection through it cut, as a daemon going away does.
    fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The Docker daemon going away under a running turn (its connections
/// cut and the container killed, as a restart does): the call ends at
/// once saying so, the turn ends, the log stays whole, and the next turn
/// gets the container back with its files.
#[test]
fn a_docker_daemon_restarted_under_a_running_turn_ends_it_visibly() {
    if !docker_ready() {
        return;
    }
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    fixture.ok(&["agent", "set", "coder", "--sandbox", "docker"]);
    let container = container_of(&fixture);
    let socket = DockerSocket::start();
    let host = socket.host();
    let env = [
        ("DOCKER_HOST", host.as_str()),
        (crate::agent::API_KEY_VAR, crate::agent::API_KEY),
    ];
    fixture.model.push(Completion::text("").with_tool_call(
        "call_1",
        "shell",
        json!({"command": "echo kept > /opt/kept; touch started; sleep 60; echo never"}),
    ));
    fixture.model.push(Completion::text("never asked"));
    let marker = fixture.workspace.join("started");
    let name = container.0.clone();
    let restarted = std::thread::scope(|scope| {
        let restart = scope.spawn(|| {
            wait_for(&marker);
            socket.cut();
            let killed = std::process::Command::new("docker")
                .args(["kill", &name])
                .output()
                .unwrap();
            assert!(killed.status.success(), "{killed:?}");
        });
        let run = fixture.env.run_with(
            &fixture.args(&["conversation", "send", "coder", "work", "run"]),
            b"",
            &env,
        );
        restart.join().unwrap();
        run
    });
    // exo spoke to Docker through the socket that went away.
    assert!(socket.connections() > 0);
    // The call came back at once with what happened (killed, or the
    // sandbox broken), and the turn ended, its log whole.
    let turn = fixture.last_turn("work");
    assert_eq!(turn.last().unwrap()["kind"], "turn_ended", "{turn:#?}");
    let result = turn
        .iter()
        .find(|event| event["kind"] == "tool_result")
        .expect("the call's result");
    let output = result["output"].to_string();
    assert!(!output.contains("never"), "{output}");
    assert!(
        result["output"]["exit_code"] == 137 || result["is_error"] == true,
        "{output} / {}",
        restarted.stderr
    );
    // The daemon is back: the next turn starts the container again.
    fixture.model.push(Completion::text("").with_tool_call(
        "call_2",
        "shell",
        json!({"command": "cat /opt/kept"}),
    ));
    fixture.model.push(Completion::text("ok"));
    let again = fixture.env.run_with(
        &fixture.args(&["conversation", "send", "coder", "work", "again"]),
        b"",
        &env,
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(shell_output(&fixture)["stdout"], "kept\n");
}
