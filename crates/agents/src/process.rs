//! An agent CLI's process: its own process group (killed with exo however
//! exo dies, by the reaper), an environment that carries nothing secret,
//! and the tail of what it wrote on stderr, for error messages.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use std::pin::Pin;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::process::Child;

/// The variables of exo's environment an agent CLI gets; everything else
/// (API keys above all) stays out of it.
const PASSED: [&str; 6] = ["PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER"];

/// How many of the last stderr lines are kept.
const STDERR_LINES: usize = 20;

/// The program named by `variable` in exo's environment, else `name`.
pub fn configured_program(variable: &str, name: &str) -> PathBuf {
    exo_secrets::environment::var_os(variable)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(name), PathBuf::from)
}

/// Where the program named by `variable`, else `name` on `PATH`, is: an
/// executable file, if any.
pub fn locate_program(variable: &str, name: &str) -> Option<PathBuf> {
    find_program(&configured_program(variable, name))
}

/// Creates `dir` (and its parents), owner-only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Where a program named on `PATH` (or by a path) is, if anywhere.
pub(crate) fn find_program(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return is_executable(name).then(|| name.to_path_buf());
    }
    let path = exo_secrets::environment::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A running agent CLI: a process of exo's, or a program in the
/// conversation's container.
pub(crate) struct AgentProcess {
    child: Mutex<Option<Child>>,
    group: i32,
    container: Option<(
        Arc<exo_sandbox::docker::Docker>,
        exo_sandbox::docker::ExecHandle,
    )>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// What a started process reads from.
pub(crate) type Input = Pin<Box<dyn AsyncWrite + Send>>;
/// What a started process writes to.
pub(crate) type Output = Pin<Box<dyn AsyncRead + Send>>;

/// A started process and its pipes.
pub(crate) struct Started {
    pub process: Arc<AgentProcess>,
    pub stdin: Input,
    pub stdout: Output,
}

/// The longest an agent CLI runs in a container (a turn's whole life).
const CONTAINER_LIMIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `word` quoted for `sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Keeps the last lines of `line`s as they come, for error messages.
fn keep_line(kept: &Mutex<VecDeque<String>>, label: &str, line: &str) {
    tracing::debug!(target: "exo::agent", agent = label, "{line}");
    let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
    if kept.len() == STDERR_LINES {
        kept.pop_front();
    }
    kept.push_back(line.chars().take(500).collect());
}

impl AgentProcess {
    /// Starts `program args` in `cwd` with only the passed variables and
    /// `env`.
    pub fn start(
        program: &Path,
        args: &[OsString],
        cwd: &Path,
        env: &[(OsString, OsString)],
        label: &'static str,
    ) -> Result<Started, String> {
        exo_tools::reaper::ready().map_err(|err| format!("cannot guard {label}: {err}"))?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(passed_environment())
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {label} ({}): {err}", program.display()))?;
        let group = child.id().map(|pid| pid as i32).unwrap_or_default();
        if let Err(err) = exo_tools::reaper::guard(group) {
            let _ = child.start_kill();
            return Err(format!("cannot guard {label}: {err}"));
        }
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let kept = Arc::clone(&tail);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                keep_line(&kept, label, &line);
            }
        });
        Ok(Started {
            process: Arc::new(AgentProcess {
                child: Mutex::new(Some(child)),
                group,
                container: None,
                stderr: tail,
            }),
            stdin: Box::pin(stdin),
            stdout: Box::pin(stdout),
        })
    }

    /// Starts `program args` in the conversation's container, in `cwd`
    /// (the workspace, at its own path there) with exactly `env` (the
    /// image's own PATH and HOME apply), each of `relays` loopback ports
    /// relayed to a socket of the egress directory; it is killed with the
    /// turn, and by its own time limit should exo die.
    pub async fn start_in_container(
        docker: Arc<exo_sandbox::docker::Docker>,
        program: &str,
        args: &[String],
        cwd: &Path,
        env: &[(OsString, OsString)],
        relays: &[(u16, String)],
        label: &'static str,
    ) -> Result<Started, String> {
        let line = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ");
        let attached = docker
            .spawn(&line, cwd, env, CONTAINER_LIMIT, relays)
            .await
            .map_err(|err| format!("cannot start {label} in the container: {err}"))?;
        let exo_sandbox::docker::Attached { exec, stdin } = attached;
        let handle = exec.handle.clone();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let kept = Arc::clone(&tail);
        // stdout to a pipe the peer reads; stderr's lines kept.
        let (mut writer, reader) = tokio::io::duplex(256 * 1024);
        let mut output = exec.output;
        tokio::spawn(async move {
            let mut partial = Vec::new();
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(exo_sandbox::docker::Chunk::Stdout(bytes)) => {
                        if writer.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Ok(exo_sandbox::docker::Chunk::Stderr(bytes)) => {
                        partial.extend_from_slice(&bytes);
                        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = partial.drain(..=end).collect();
                            keep_line(&kept, label, String::from_utf8_lossy(&line).trim_end());
                        }
                    }
                    Err(err) => {
                        keep_line(&kept, label, &err.to_string());
                        break;
                    }
                }
            }
            let _ = writer.shutdown().await;
        });
        Ok(Started {
            process: Arc::new(AgentProcess {
                child: Mutex::new(None),
                group: 0,
                container: Some((docker, handle)),
                stderr: tail,
            }),
            stdin,
            stdout: Box::pin(reader),
        })
    }

    /// The last line the process wrote on stderr that says something
    /// (an error, if it wrote one).
    pub fn last_error(&self) -> Option<String> {
        let kept = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter()
            .rev()
            .find(|line| line.contains("ERROR") || line.to_lowercase().contains("error"))
            .or_else(|| kept.back())
            .map(|line| strip_ansi(line))
    }

    /// Kills the process group now.
    pub fn kill(&self) {
        self.kill_in_container();
        if self.group > 0 {
            if let Some(group) = rustix::process::Pid::from_raw(self.group) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            exo_tools::reaper::release(self.group);
        }
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.start_kill();
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
    }
}

impl AgentProcess {
    /// Kills the process, and in a container waits until its processes
    /// there are gone.
    pub async fn kill_and_wait(&self) {
        match &self.container {
            Some((docker, handle)) => docker.kill(handle).await,
            None => self.kill(),
        }
    }

    /// In a container: kills the program and what it started there (its
    /// exec's process groups), in the background.
    fn kill_in_container(&self) {
        if let Some((docker, handle)) = &self.container {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (docker, handle) = (Arc::clone(docker), handle.clone());
                runtime.spawn(async move { docker.kill(&handle).await });
            }
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill_in_container();
        if self.group > 0 {
            if let Some(group) = rustix::process::Pid::from_raw(self.group) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            exo_tools::reaper::release(self.group);
        }
    }
}

fn passed_environment() -> Vec<(OsString, OsString)> {
    let mut passed: Vec<(OsString, OsString)> = PASSED
        .iter()
        .filter_map(|name| {
            exo_secrets::environment::var_os(name).map(|value| (OsString::from(name), value))
        })
        .collect();
    passed
        .extend(std::env::vars_os().filter(|(name, _)| name.to_string_lossy().starts_with("LC_")));
    passed
}

/// `text` without terminal colour sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_is_stripped_from_stderr_lines() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m boom"),
            "2026 ERROR boom"
        );
    }
}
