//! What running Codex and Claude Code under exo costs (spec/agents.md),
//! side by side in one run, in alternation, against the same fake model:
//!
//! | row | exo | reference | target |
//! |---|---|---|---|
//! | a Codex turn | `exo conversation send` to an agent with `--harness codex` (embedded: no daemon) | `codex exec` on the same prompt, straight at the fake model | ≤ 1.2× at p50 |
//! | a Claude Code turn | `exo conversation send` to an agent with `--harness claude-code` | `claude -p` on the same prompt, straight at the fake model | ≤ 1.2× at p50 |
//!
//! Each side is a whole command, as a user runs it: a process started, one
//! model request answered with one short text, the process gone. exo's side
//! adds what exo is for: the store opened, the turn recorded, the
//! workspace snapshotted at the turn's start and end, a gateway started and
//! a token minted, the CLI's history handed over, the CLI's items recorded
//! as they arrive, the exchange recorded and checked. Each exo turn is the
//! first of a fresh conversation (created untimed), as each bare run is a
//! fresh session; the workspaces hold the same 20 small files.
//!
//! The CLIs are `EXO_CODEX_BIN` and `EXO_CLAUDE_BIN` (else `codex` and
//! `claude` on `PATH`; `scripts/setup-agents` installs the pinned ones). A
//! CLI that is not there is reported as skipped, and its rows are left out.
//!
//! `cargo bench -p exo-daemon --bench agents` (`EXO_BENCH_QUICK=1` for a
//! short run); `cargo test --all-targets` runs it once as a smoke test.

#![allow(clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exo_binary, scratch_dir, BenchResult, Mode, Report, Series, Target};
use exo_fake_model::{Completion, FakeModel, Wire};
use serde_json::json;

/// The key the fake model must receive (from the gateway, or from a bare
/// CLI's environment).
const KEY: &str = "sk-bench-agents-5c1e";
/// A 64-character hex encryption key, for exo.
const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// What each turn asks, and what the model answers.
const PROMPT: &str = "Say the word ready.";
const ANSWER: &str = "ready";

/// Turns of each side counted, after one of each not counted.
fn turns(mode: &Mode) -> usize {
    match mode.name {
        "full" => 15,
        "quick" => 5,
        _ => 1,
    }
}

/// The program named by `variable`, else `name` on `PATH`.
fn program(variable: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A directory with the same 20 small files as every other.
fn workspace(path: &Path) -> BenchResult<()> {
    std::fs::create_dir_all(path.join("src"))?;
    for n in 0..20 {
        std::fs::write(
            path.join("src").join(format!("file{n}.txt")),
            format!("line {n}\n").repeat(20),
        )?;
    }
    Ok(())
}

/// Runs `command`, requiring success and `ANSWER` on stdout; its time.
fn timed(mut command: Command, what: &str) -> BenchResult<Duration> {
    command.stdin(Stdio::null());
    let started = Instant::now();
    let output = command.output()?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains(ANSWER) {
        return Err(format!(
            "{what} failed ({}): {stdout} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(elapsed)
}

struct Exo {
    binary: PathBuf,
    root: PathBuf,
    dir: PathBuf,
}

impl Exo {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .env("EXO_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("EXO_BENCH_PROVIDER_KEY", KEY)
            .env_remove("EXO_LOG")
            .env_remove("RUST_LOG")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        command
    }

    fn ok(&self, args: &[&str]) -> BenchResult<()> {
        let output = self.command(args).output()?;
        if !output.status.success() {
            return Err(
                format!("exo {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into(),
            );
        }
        Ok(())
    }
}

/// One CLI's rows: `turns` alternations of an exo turn and a bare one,
/// after one of each not counted.
#[allow(clippy::too_many_arguments)]
fn compare(
    report: &mut Report,
    exo: &Exo,
    model: &FakeModel,
    agent: &str,
    label: &str,
    turns: usize,
    bare: &dyn Fn(&Path) -> Command,
) -> BenchResult<()> {
    let (mut under_exo, mut alone) = (Series::new(1), Series::new(1));
    for n in 0..=turns {
        let conversation = format!("{agent}{n}");
        let dir = exo.dir.join(&conversation);
        workspace(&dir)?;
        exo.ok(&[
            "conversation",
            "create",
            agent,
            &conversation,
            "--workspace",
            dir.to_str().unwrap(),
        ])?;
        model.push(Completion::text(ANSWER));
        under_exo.push(timed(
            exo.command(&["conversation", "send", agent, &conversation, PROMPT]),
            &format!("exo send ({label})"),
        )?);
        let bare_dir = exo.dir.join(format!("bare-{conversation}"));
        workspace(&bare_dir)?;
        model.push(Completion::text(ANSWER));
        alone.push(timed(bare(&bare_dir), &format!("bare {label}"))?);
    }
    for request in model.requests() {
        let key = request.header("authorization").to_owned() + request.header("x-api-key");
        if !key.contains(KEY) {
            return Err(format!("a request reached the model without the key: {key:?}").into());
        }
    }
    report.latency(
        agent,
        &format!("a {label} turn"),
        (under_exo.stats(), alone.stats()),
        "bare",
        Some(Target::AtMost(1.2)),
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let mode = Mode::from_env();
    let turns = turns(&mode);
    let binary = exo_binary()?;
    let scratch = scratch_dir("agents", "root/exo.sock")?;
    let exo = Exo {
        binary: binary.clone(),
        root: scratch.path().join("root"),
        dir: scratch.path().to_path_buf(),
    };
    exo.ok(&["secret", "set", "k", "--env", "EXO_BENCH_PROVIDER_KEY"])?;
    let mut report = Report::with_differences();
    let mut skipped = Vec::new();

    match program("EXO_CODEX_BIN", "codex") {
        Some(codex) => {
            let model = FakeModel::start(Wire::OpenAi);
            exo.ok(&[
                "model",
                "register",
                "gpt",
                "--provider",
                "openai",
                "--base-url",
                &model.base_url(),
                "--upstream",
                "fake-gpt",
                "--secret",
                "k",
            ])?;
            exo.ok(&[
                "agent",
                "create",
                "cx",
                "--harness",
                "codex",
                "--model",
                "gpt",
                "--approval",
                "auto",
            ])?;
            let home = scratch.path().join("codex-home");
            std::fs::create_dir_all(&home)?;
            let base_url = model.base_url();
            let bare = |dir: &Path| {
                let mut command = Command::new(&codex);
                command
                    .args(["exec", "--skip-git-repo-check", "-s", "danger-full-access"])
                    .args(["-c", "model_provider=\"bench\""])
                    .args(["-c", "model_providers.bench.name=\"bench\""])
                    .arg("-c")
                    .arg(format!(
                        "model_providers.bench.base_url={}",
                        json!(base_url)
                    ))
                    .args(["-c", "model_providers.bench.wire_api=\"responses\""])
                    .args(["-c", "model_providers.bench.env_key=\"BENCH_KEY\""])
                    .args(["-m", "fake-gpt", PROMPT])
                    .env("CODEX_HOME", &home)
                    .env("BENCH_KEY", KEY)
                    .current_dir(dir);
                command
            };
            compare(&mut report, &exo, &model, "cx", "Codex", turns, &bare)?;
        }
        None => skipped.push("codex"),
    }

    match program("EXO_CLAUDE_BIN", "claude") {
        Some(claude) => {
            let model = FakeModel::start(Wire::Anthropic);
            exo.ok(&[
                "model",
                "register",
                "sonnet",
                "--provider",
                "anthropic",
                "--base-url",
                &model.base_url(),
                "--upstream",
                "fake-claude",
                "--secret",
                "k",
            ])?;
            exo.ok(&[
                "agent",
                "create",
                "cc",
                "--harness",
                "claude-code",
                "--model",
                "sonnet",
                "--approval",
                "auto",
            ])?;
            let home = scratch.path().join("claude-home");
            std::fs::create_dir_all(&home)?;
            let base_url = model.url();
            let bare = |dir: &Path| {
                let mut command = Command::new(&claude);
                command
                    .args(["-p", PROMPT, "--model", "fake-claude"])
                    .env("CLAUDE_CONFIG_DIR", &home)
                    .env("ANTHROPIC_BASE_URL", &base_url)
                    .env("ANTHROPIC_API_KEY", KEY)
                    .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                    .current_dir(dir);
                command
            };
            compare(&mut report, &exo, &model, "cc", "Claude Code", turns, &bare)?;
        }
        None => skipped.push("claude"),
    }

    for name in &skipped {
        eprintln!("skipped: the {name} CLI is not installed (scripts/setup-agents installs it)");
    }
    report.print_table("agent CLIs under exo vs bare");
    report.write_json(
        &mode,
        "agents",
        &binary,
        json!({"turns": turns, "skipped": skipped}),
    )?;
    Ok(())
}
