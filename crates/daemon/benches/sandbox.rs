//! What the local sandbox adds to a shell call (spec/sandboxes.md), side by
//! side in one run, in alternation:
//!
//! | row | exo | reference | target |
//! |---|---|---|---|
//! | a `shell` call in a `local` sandbox | `exo_tools::run` of `shell {command: "true"}` in a workspace whose commands run under bubblewrap and the limiter (exo's binary, setting the resource limits) | the same call on the host | ≤ +20 ms at p50 |
//! | a `shell` call in a `local` sandbox with the egress proxy (`binding http`): each command under the forwarder | the same call in the sandbox without it | none (reported) |
//! | a `shell` call in a `docker` sandbox | the same call in a container made from `exo/base:bookworm` (made before the first counted call) | the same call on the host | ≤ +80 ms at p50 |
//!
//! Then, reported without a target: a docker sandbox's snapshot after 100
//! MB written outside the workspace (1 MB in the smoke run), and the
//! restore from it (the container made again from the snapshot and a first
//! command run in it).
//!
//! Both sides are the tool as the built-in executor runs it: the process
//! group, the reaper's guard, the pipes read to their end (in a container:
//! the exec, its output stream, its exit code, and the exec that kills
//! what it left). Where bubblewrap does not run, or no Docker daemon or
//! image is there, that row is reported as skipped.
//!
//! `cargo bench -p exo-daemon --bench sandbox` (`EXO_BENCH_QUICK=1` for a
//! short run); `cargo test --all-targets` runs it once as a smoke test.

#![allow(clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use common::{exo_binary, BenchResult, Mode, Report, Series, Target};
use exo_sandbox::docker::DockerSpec;
use exo_sandbox::{Policy, Sandbox};
use exo_tools::{Call, Limits, Workspace};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn calls(mode: &Mode) -> usize {
    match mode.name {
        "full" => 200,
        "quick" => 40,
        _ => 3,
    }
}

fn main() -> BenchResult<()> {
    let mode = Mode::from_env();
    let calls = calls(&mode);
    let dir = tempfile::tempdir()?;
    let exo_root = dir.path().join(".exo");
    std::fs::create_dir(&exo_root)?;
    let host = Workspace::new(dir.path())?;
    let policy = Policy {
        workspace: host.root().to_path_buf(),
        hidden: vec![exo_root],
        network: false,
    };
    // As exo runs it: each command under the limiter (exo's binary).
    let local = match Sandbox::local(policy) {
        Ok(sandbox) => host
            .clone()
            .with_sandbox(sandbox.with_limits(exo_binary()?, exo_sandbox::limits::Limits::DEFAULT)),
        Err(why) => {
            println!("skipped: {why}");
            return Ok(());
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let call = exo_tools::parse("shell", &json!({"command": "true"}))?;
    let limits = Limits::default();
    let cancel = CancellationToken::new();
    let once = |workspace: &Workspace, call: &Call| -> BenchResult<std::time::Duration> {
        let start = Instant::now();
        let output = runtime.block_on(exo_tools::run(workspace, call, &limits, &[], &cancel));
        let elapsed = start.elapsed();
        if output.is_error {
            return Err(format!("the shell call failed: {}", output.output).into());
        }
        Ok(elapsed)
    };
    let (mut sandboxed, mut bare) = (Series::new(1), Series::new(1));
    for _ in 0..=calls {
        sandboxed.push(once(&local, &call)?);
        bare.push(once(&host, &call)?);
    }
    let mut report = Report::with_differences();
    report.latency(
        "shell_local",
        "shell `true` in a local sandbox vs on the host",
        (sandboxed.stats(), bare.stats()),
        "host",
        Some(Target::AddedAtMost(20_000.0)),
    );

    // The egress proxy's cost: the same sandbox, each command under the
    // forwarder (exo's binary) with a proxy listening.
    let egress_dir = dir.path().join("egress");
    let proxy = runtime.block_on(exo_sandbox::egress::Egress::start(
        &egress_dir,
        vec![exo_sandbox::egress::Credential {
            host: "api.example.com".to_owned(),
            port: None,
            header: "authorization".to_owned(),
            value: "Bearer bench".to_owned(),
            secret: "bench".to_owned(),
            tls: true,
        }],
        false,
    ))?;
    let proxied = local
        .clone()
        .with_sandbox(
            local
                .sandbox()
                .clone()
                .with_egress(exo_sandbox::egress::EgressAccess {
                    proxy: std::sync::Arc::new(proxy),
                    forwarder: exo_binary()?,
                }),
        );
    let (mut forwarded, mut plain) = (Series::new(1), Series::new(1));
    for _ in 0..=calls {
        forwarded.push(once(&proxied, &call)?);
        plain.push(once(&local, &call)?);
    }
    report.latency(
        "shell_local_egress",
        "shell `true` in a local sandbox with the egress proxy vs without",
        (forwarded.stats(), plain.stats()),
        "local",
        None,
    );

    let name = format!("exo-bench-{}", std::process::id());
    let container = host.clone().with_sandbox(Sandbox::docker(DockerSpec {
        container: name.clone(),
        image: exo_sandbox::docker::DEFAULT_IMAGE.to_owned(),
        workspace: host.root().to_path_buf(),
        hidden: Vec::new(),
        network: false,
        conversation: "bench".to_owned(),
        root: dir.path().display().to_string(),
        egress: None,
    }));
    let first = runtime.block_on(exo_tools::run(&container, &call, &limits, &[], &cancel));
    if first.is_error {
        println!("skipped: the docker row: {}", first.output);
    } else {
        let (mut contained, mut bare) = (Series::new(1), Series::new(1));
        for _ in 0..=calls {
            contained.push(once(&container, &call)?);
            bare.push(once(&host, &call)?);
        }
        report.latency(
            "shell_docker",
            "shell `true` in a docker sandbox vs on the host",
            (contained.stats(), bare.stats()),
            "host",
            Some(Target::AddedAtMost(80_000.0)),
        );

        // A snapshot after 100 MB written outside the workspace, and the
        // restore from it (the container made again from the snapshot, and
        // a first command in it).
        let megabytes = if mode.name == "smoke" { 1 } else { 100 };
        let write = exo_tools::parse(
            "shell",
            &json!({"command": format!("head -c {megabytes}M /dev/urandom > /opt/blob")}),
        )?;
        let written = runtime.block_on(exo_tools::run(&container, &write, &limits, &[], &cancel));
        if written.is_error {
            return Err(format!("writing the blob failed: {}", written.output).into());
        }
        let docker = container.sandbox().container().expect("a docker sandbox");
        let start = Instant::now();
        let snapshot = runtime
            .block_on(docker.snapshot(&format!("bench-{}", std::process::id())))?
            .ok_or("the snapshot found no change")?;
        let snapshotted = start.elapsed();
        let restored_from = host.clone().with_sandbox(Sandbox::docker(DockerSpec {
            container: name.clone(),
            image: snapshot.image.clone(),
            workspace: host.root().to_path_buf(),
            hidden: Vec::new(),
            network: false,
            conversation: "bench".to_owned(),
            root: dir.path().display().to_string(),
            egress: None,
        }));
        // Made again from the snapshot: a container of another base first.
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &name])
            .output();
        let start = Instant::now();
        let first = runtime.block_on(exo_tools::run(&restored_from, &call, &limits, &[], &cancel));
        let restored = start.elapsed();
        if first.is_error {
            return Err(format!("the restored container failed: {}", first.output).into());
        }
        println!(
            "docker sandbox: snapshot after {megabytes} MB written outside the workspace {:.0} ms; restore from it and a first command {:.0} ms",
            snapshotted.as_secs_f64() * 1e3,
            restored.as_secs_f64() * 1e3
        );
        report.extra.insert(
            "docker_snapshot".to_owned(),
            json!({"megabytes": megabytes, "snapshot_ms": snapshotted.as_millis() as u64, "restore_ms": restored.as_millis() as u64}),
        );
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &name])
            .output();
        let _ = std::process::Command::new("docker")
            .args(["rmi", &snapshot.image])
            .output();
    }
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &name])
        .output();
    report.print_table("the sandboxes: what they add to a shell call");
    report.write_json(&mode, "sandbox", &exo_binary()?, json!({"calls": calls}))?;
    Ok(())
}
