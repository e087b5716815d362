//! `exo doctor`: what works here, what does not, and the one command that
//! fixes each.
//!
//! The store and the key are exo's own: a store that does not open or a
//! key that is refused fails the run (exit status 1). The daemon and the
//! optional parts (Node and pnpm for TypeScript harnesses, the Codex and
//! Claude Code CLIs, Docker and bubblewrap for sandboxes) are reported
//! with how to get them; missing ones do not fail the run. Every probe of
//! a program is bounded in time, so a hanging one cannot hang the doctor.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::style::Paint;
use crate::Out;

/// How long a probed program may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// Works.
    Ok,
    /// Not there yet, or not running; fine until a feature needs it.
    Missing,
    /// Broken: exo cannot work like this.
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    /// What was found.
    detail: String,
    /// The one thing to do, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn missing(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Missing,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check and prints the report; fails when a required part is
/// broken.
pub fn run(root: &Path, out: &Out) -> Result<()> {
    let mut checks = vec![store(root)];
    checks.push(key(root));
    checks.push(daemon(root));
    checks.push(node());
    checks.push(program(
        "pnpm",
        "pnpm",
        &["--version"],
        "building TypeScript harnesses from source needs it: npm install -g pnpm@10",
    ));
    checks.push(harness_runtime());
    let codex = std::env::var("EXO_CODEX_BIN")
        .ok()
        .filter(|bin| !bin.is_empty())
        .unwrap_or_else(|| "codex".to_string());
    checks.push(program(
        "codex",
        &codex,
        &["--version"],
        "for --harness codex: scripts/setup-agents (or npm install -g @openai/codex@0.169.0, or name it in EXO_CODEX_BIN)",
    ));
    let claude = std::env::var("EXO_CLAUDE_BIN")
        .ok()
        .filter(|bin| !bin.is_empty())
        .unwrap_or_else(|| "claude".to_string());
    checks.push(program(
        "claude",
        &claude,
        &["--version"],
        "for --harness claude-code: scripts/setup-agents (or npm install -g @anthropic-ai/claude-code@2.1.332, or name it in EXO_CLAUDE_BIN)",
    ));
    checks.push(docker());
    checks.push(bubblewrap());
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let value = json!({ "ok": failed == 0, "checks": checks });
    out.emit(&value, || {
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        checks
            .iter()
            .map(|check| {
                let mark = match check.status {
                    Status::Ok => Paint::Green.out("ok  "),
                    Status::Missing => Paint::Yellow.out("--  "),
                    Status::Fail => Paint::Red.out("FAIL"),
                };
                let fix = check
                    .fix
                    .as_deref()
                    .map(|fix| format!("; {fix}"))
                    .unwrap_or_default();
                format!("{mark} {:<width$}  {}{fix}", check.name, check.detail)
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    if failed > 0 {
        anyhow::bail!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn store(root: &Path) -> Check {
    let db = root.join(exo_store::DB_FILE);
    if !db.exists() {
        return Check::missing(
            "store",
            format!("no store at {} yet", root.display()),
            "`exo agent create NAME` creates one",
        );
    }
    let listed = crate::backend::Backend::open_reading(root).and_then(|mut backend| {
        let (_, list) =
            backend.call_as::<exo_protocol::methods::AgentList>("agent/list", json!({}))?;
        Ok(list.agents.len())
    });
    match listed {
        Ok(agents) => Check::ok(
            "store",
            format!(
                "{} ({agents} agent{})",
                db.display(),
                if agents == 1 { "" } else { "s" }
            ),
        ),
        Err(err) => Check::fail(
            "store",
            format!("{} does not open: {}", db.display(), crate::one_line(&err)),
            "move it aside and restore a backup, or pass --root for another store",
        ),
    }
}

fn key(root: &Path) -> Check {
    let loaded = match exo_secrets::Key::load(false) {
        Ok(loaded) => loaded,
        Err(err) => {
            let fix = match &err {
                exo_secrets::Error::KeyFileTooOpen { path, .. } => {
                    format!("chmod 600 {}", path.display())
                }
                _ => {
                    "set EXO_ENCRYPTION_KEY to the store's key, or restore the key file".to_string()
                }
            };
            return Check::fail("key", err.to_string(), fix);
        }
    };
    let Some((key, source)) = loaded else {
        let path = exo_secrets::default_key_file()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "$XDG_CONFIG_HOME/exo/key".to_string());
        return Check::missing(
            "key",
            format!("no key yet ({path})"),
            "the first `exo secret set` creates it",
        );
    };
    let source = match source {
        exo_secrets::KeySource::Env => "EXO_ENCRYPTION_KEY".to_string(),
        exo_secrets::KeySource::File(path) | exo_secrets::KeySource::CreatedFile(path) => {
            path.display().to_string()
        }
    };
    // Whether it opens this store's secrets: checked in this process when
    // no daemon holds the store.
    if !root.join(exo_store::DB_FILE).exists() {
        return Check::ok("key", source);
    }
    match exo_daemon::daemon::access(root, false) {
        Ok(exo_daemon::daemon::Access::InProcess(_guard)) => {
            match exo_store::Store::open(root, exo_store::OpenMode::Existing)
                .and_then(|store| store.verify_key(&key))
            {
                Ok(()) => Check::ok("key", format!("{source}, opens this store's secrets")),
                Err(err) => Check::fail(
                    "key",
                    format!("{source}: {err}"),
                    "use the key this store's secrets were sealed with (EXO_ENCRYPTION_KEY or the key file)",
                ),
            }
        }
        _ => Check::ok("key", source),
    }
}

fn daemon(root: &Path) -> Check {
    match exo_daemon::daemon::running(root) {
        Some(info) => Check::ok(
            "daemon",
            format!(
                "running, pid {}, socket {}",
                info.pid,
                info.socket.display()
            ),
        ),
        None => Check::missing(
            "daemon",
            "not running (commands use the store directly)",
            "`exo daemon &` serves editors and live watchers",
        ),
    }
}

fn node() -> Check {
    const FIX: &str = "TypeScript harnesses need Node.js 20 or newer: install it from https://nodejs.org or your package manager";
    match probe("node", &["--version"]) {
        Ok(version) => {
            let major = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|major| major.parse::<u32>().ok());
            match major {
                Some(major) if major >= 20 => Check::ok("node", version),
                _ => Check::missing("node", format!("{version} is too old"), FIX),
            }
        }
        Err(why) => Check::missing("node", why, FIX),
    }
}

fn harness_runtime() -> Check {
    match exo_secrets::environment::var_os("EXO_HARNESS_RUNTIME") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            if dir.join("dist").is_dir() || dir.join("package.json").is_file() {
                Check::ok("harness", format!("EXO_HARNESS_RUNTIME={}", dir.display()))
            } else {
                Check::fail(
                    "harness",
                    format!(
                        "EXO_HARNESS_RUNTIME={} holds no @exo/harness",
                        dir.display()
                    ),
                    "build it (pnpm -r build in typescript/) or unset EXO_HARNESS_RUNTIME",
                )
            }
        }
        None => Check::missing(
            "harness",
            "EXO_HARNESS_RUNTIME not set: a TypeScript module finds @exo/harness next to it",
            "npm install @exo/harness beside your module",
        ),
    }
}

fn program(name: &'static str, program: &str, args: &[&str], fix: &str) -> Check {
    match probe(program, args) {
        Ok(version) => Check::ok(name, version),
        Err(why) => Check::missing(name, why, fix),
    }
}

fn docker() -> Check {
    const FIX: &str = "for --sandbox docker: sudo apt-get install docker.io, and add yourself to the docker group";
    let socket = std::env::var_os("DOCKER_HOST")
        .and_then(|host| host.into_string().ok())
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    if !Path::new(&socket).exists() {
        return Check::missing("docker", format!("no Docker socket at {socket}"), FIX);
    }
    match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(mut stream) => {
            use std::io::Write;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let mut answer = [0u8; 64];
            let read = stream
                .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                .and_then(|()| stream.read(&mut answer));
            match read {
                Ok(n)
                    if answer[..n].starts_with(b"HTTP/1.0 200")
                        || answer[..n].starts_with(b"HTTP/1.1 200") =>
                {
                    Check::ok("docker", format!("engine answers at {socket}"))
                }
                Ok(_) | Err(_) => Check::missing(
                    "docker",
                    format!("the engine at {socket} does not answer"),
                    "start it: sudo systemctl start docker (or dockerd &)",
                ),
            }
        }
        Err(err) => Check::missing(
            "docker",
            format!("cannot connect to {socket}: {err}"),
            "add yourself to the docker group (sudo usermod -aG docker $USER), or start dockerd",
        ),
    }
}

fn bubblewrap() -> Check {
    const FIX: &str = "for --sandbox local: sudo apt-get install bubblewrap";
    let version = match probe("bwrap", &["--version"]) {
        Ok(version) => version,
        Err(why) => return Check::missing("bubblewrap", why, FIX),
    };
    match probe(
        "bwrap",
        &[
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid", "--",
            "true",
        ],
    ) {
        Ok(_) => Check::ok("bubblewrap", format!("{version}, namespaces work")),
        Err(why) => Check::missing(
            "bubblewrap",
            format!("{version} is installed but cannot make a sandbox here: {why}"),
            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), or run where they are allowed",
        ),
    }
}

/// Runs `program args`, and gives the first line it printed, or why it did
/// not run.
fn probe(program: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => format!("{program} not found on PATH"),
            _ => format!("{program} does not start: {err}"),
        })?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(err) => return Err(format!("{program}: {err}")),
        }
    };
    let read = |pipe: Option<&mut dyn Read>| {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(64 * 1024).read_to_string(&mut text);
        }
        text
    };
    let stdout = read(child.stdout.as_mut().map(|pipe| pipe as &mut dyn Read));
    let stderr = read(child.stderr.as_mut().map(|pipe| pipe as &mut dyn Read));
    let first = |text: &str| text.lines().next().unwrap_or("").trim().to_string();
    if status.success() {
        Ok(first(&stdout))
    } else {
        let said = first(&stderr);
        Err(if said.is_empty() {
            format!("{program} failed ({status})")
        } else {
            format!("{program} failed: {said}")
        })
    }
}
