//! `shell`: one command in its own process group, with a timeout, capped
//! output and a scrubbed environment.
//!
//! The command runs as `/bin/sh -c COMMAND` in the workspace root, with
//! stdin from `/dev/null`, in a new process group. Both pipes are read
//! concurrently from the start, so a chatty command never blocks on a full
//! pipe, and each keeps only its first and last halves of
//! [`Limits::max_output_bytes`].
//!
//! When the shell exits, times out or is cancelled, the whole process group
//! is sent SIGKILL: a background job left running would otherwise keep the
//! pipes open (and the call waiting) and outlive the turn. A process that
//! left the group (`setsid`) is not killed; if it still holds a pipe, the
//! output is taken as it stands after [`DRAIN_GRACE`].
//!
//! While the command runs, its group is registered with this process's
//! reaper ([`crate::reaper`]), which kills it if exo dies first, even by
//! SIGKILL.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::workspace::io_message;
use crate::{reaper, Limits, ToolOutput, Workspace};

/// The shell commands run with.
const SHELL: &str = "/bin/sh";

/// Variables passed on from exo's environment, besides `LC_*`.
const PASSED_VARIABLES: [&str; 7] = ["PATH", "HOME", "LANG", "TERM", "USER", "SHELL", "TMPDIR"];

/// `PATH` when exo's environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long to keep reading the pipes after the process group was killed,
/// for output still in them or held by a process that left the group.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// How a command ended.
enum Ending {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// `shell {command, timeout_ms?}` → `{"exit_code", "stdout", "stderr",
/// "timed_out", "cancelled", "truncated"}`.
pub(crate) async fn run(
    workspace: &Workspace,
    command: &str,
    timeout_ms: Option<u64>,
    limits: &Limits,
    env: &[(String, String)],
    cancel: &CancellationToken,
) -> ToolOutput {
    if command.trim().is_empty() {
        return ToolOutput::error("command must not be empty");
    }
    if let Some((name, _)) = env.iter().find(|(name, _)| !valid_variable_name(name)) {
        return ToolOutput::broken(format!(
            "internal error: invalid environment variable name {name:?}"
        ));
    }
    let timeout = timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(limits.default_timeout)
        .min(limits.max_timeout);

    // Without a reaper, a command could outlive a killed exo: none is run.
    if let Err(error) = reaper::ready() {
        return ToolOutput::broken(format!(
            "cannot start the reaper that stops commands when exo dies: {}",
            io_message(&error)
        ));
    }
    let mut environment = allowed_environment();
    for (name, value) in env {
        environment.retain(|(passed, _)| passed.as_os_str() != name.as_str());
        environment.push((name.into(), value.into()));
    }
    if let Some(container) = workspace.sandbox().container() {
        return in_container(
            container,
            workspace,
            command,
            timeout,
            limits,
            &environment,
            cancel,
        )
        .await;
    }
    let mut shell = match workspace.sandbox().command(
        SHELL.as_ref(),
        &["-c".as_ref(), command.as_ref()],
        workspace.root(),
        &environment,
    ) {
        Ok(shell) => shell,
        Err(error) => return ToolOutput::broken(error.to_string()),
    };
    shell
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match shell.spawn() {
        Ok(child) => child,
        Err(error) => {
            return ToolOutput::broken(format!("cannot start {SHELL}: {}", io_message(&error)))
        }
    };
    let mut group = ProcessGroup::of(child.id());
    if let Err(error) = group.guard() {
        group.kill();
        let _ = child.start_kill();
        let _ = child.wait().await;
        return ToolOutput::broken(format!(
            "cannot register the command with the reaper that stops commands when exo dies: {}",
            io_message(&error)
        ));
    }

    let stop_reading = CancellationToken::new();
    let cap = limits.max_output_bytes;
    let stdout = child
        .stdout
        .take()
        .map(|pipe| tokio::spawn(capture(pipe, cap, stop_reading.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| tokio::spawn(capture(pipe, cap, stop_reading.clone())));

    let ending = tokio::select! {
        status = child.wait() => Ending::Exited(status),
        () = tokio::time::sleep(timeout) => Ending::TimedOut,
        () = cancel.cancelled() => Ending::Cancelled,
    };
    group.kill();
    let (exit_code, timed_out, cancelled) = match ending {
        Ending::Exited(status) => (status.ok().and_then(|status| status.code()), false, false),
        killed => {
            // The group kill reached the shell too; killing it by pid as
            // well means a failed group kill cannot leave this call waiting.
            // Its status is that of the kill, not of the command, so it is
            // not reported.
            let _ = child.start_kill();
            let _ = child.wait().await;
            let timed_out = matches!(killed, Ending::TimedOut);
            (None, timed_out, !timed_out)
        }
    };

    // Everything in the group is dead, so the pipes normally reach EOF at
    // once; a process that left the group may hold them open, so the
    // readers are told to stop after a grace period.
    let grace = {
        let stop_reading = stop_reading.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DRAIN_GRACE).await;
            stop_reading.cancel();
        })
    };
    let (stdout, stdout_truncated) = finish(stdout).await;
    let (stderr, stderr_truncated) = finish(stderr).await;
    grace.abort();

    ToolOutput {
        is_error: exit_code != Some(0),
        broken: false,
        output: json!({
            "exit_code": exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "timed_out": timed_out,
            "cancelled": cancelled,
            "truncated": stdout_truncated || stderr_truncated,
        }),
    }
}

/// The variables a command inherits from exo's environment: the allow-list
/// and `LC_*`, nothing else; `PATH` always.
fn allowed_environment() -> Vec<(OsString, OsString)> {
    let mut passed: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str()
                .is_some_and(|name| PASSED_VARIABLES.contains(&name) || name.starts_with("LC_"))
        })
        .collect();
    if !passed.iter().any(|(name, _)| name == "PATH") {
        passed.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    passed
}

/// Whether a name can be set in an environment: not empty, no `=` or NUL.
fn valid_variable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// A command's process group, killed once: explicitly when the command
/// ends, or when the call is dropped before that.
struct ProcessGroup {
    /// `None` once killed (or when the child had already been reaped).
    leader: Option<Pid>,
    /// Whether the reaper knows the group.
    guarded: bool,
}

impl ProcessGroup {
    fn of(child_id: Option<u32>) -> ProcessGroup {
        let leader = child_id
            .and_then(|id| i32::try_from(id).ok())
            .filter(|id| *id > 1)
            .and_then(Pid::from_raw);
        ProcessGroup {
            leader,
            guarded: false,
        }
    }

    /// Registers the group with the reaper, so it dies with this process.
    fn guard(&mut self) -> std::io::Result<()> {
        let Some(leader) = self.leader else {
            return Ok(());
        };
        self.guarded = true;
        reaper::guard(leader.as_raw_nonzero().get())
    }

    /// Sends SIGKILL to every process in the group, then tells the reaper
    /// to forget it at once, so that it never keeps a number a new group
    /// could take. An empty group (`ESRCH`) is fine: everything already
    /// exited.
    fn kill(&mut self) {
        if let Some(leader) = self.leader.take() {
            let _ = kill_process_group(leader, Signal::KILL);
            if std::mem::take(&mut self.guarded) {
                reaper::release(leader.as_raw_nonzero().get());
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `shell` in a docker sandbox: the same output shape, caps, timeout and
/// cancellation, through the container's exec.
async fn in_container(
    container: &exo_sandbox::docker::Docker,
    workspace: &Workspace,
    command: &str,
    timeout: Duration,
    limits: &Limits,
    environment: &[(OsString, OsString)],
    cancel: &CancellationToken,
) -> ToolOutput {
    use exo_sandbox::docker::Chunk;
    use futures_util::StreamExt;

    // A daemon that takes the connection and never answers must not hold
    // the call longer than a minute (making a container included).
    const DOCKER_ANSWER: Duration = Duration::from_secs(60);
    let started = tokio::select! {
        started = tokio::time::timeout(
            DOCKER_ANSWER,
            container.exec(
                command,
                workspace.root(),
                environment,
                timeout,
                workspace.sandbox().egress().map(|access| &*access.proxy),
            ),
        ) => match started {
            Ok(started) => started,
            Err(_) => {
                return ToolOutput::broken(format!(
                    "the docker sandbox failed: the Docker daemon did not answer within {} s",
                    DOCKER_ANSWER.as_secs()
                ))
            }
        },
        () = cancel.cancelled() => return ToolOutput::cancelled(),
    };
    let mut exec = match started {
        Ok(exec) => exec,
        Err(error) => return ToolOutput::broken(error.to_string()),
    };
    let cap = limits.max_output_bytes;
    let (mut stdout, mut stderr) = (HeadTail::new(cap), HeadTail::new(cap));
    let mut broken = None;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let ending = loop {
        tokio::select! {
            chunk = exec.output.next() => match chunk {
                Some(Ok(Chunk::Stdout(bytes))) => stdout.push(&bytes),
                Some(Ok(Chunk::Stderr(bytes))) => stderr.push(&bytes),
                Some(Err(error)) => {
                    broken = Some(error.to_string());
                    break None;
                }
                None => break None,
            },
            () = &mut deadline => break Some(Ending::TimedOut),
            () = cancel.cancelled() => break Some(Ending::Cancelled),
        }
    };
    let (exit_code, timed_out, cancelled) = match ending {
        None => (container.finish(&exec.handle).await, false, false),
        Some(killed) => {
            container.kill(&exec.handle).await;
            // What is still in the pipes, for a little while.
            let drain = async {
                while let Some(Ok(chunk)) = exec.output.next().await {
                    match chunk {
                        Chunk::Stdout(bytes) => stdout.push(&bytes),
                        Chunk::Stderr(bytes) => stderr.push(&bytes),
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_GRACE, drain).await;
            let _ = container.finish(&exec.handle).await;
            let timed_out = matches!(killed, Ending::TimedOut);
            (None, timed_out, !timed_out)
        }
    };
    if let Some(error) = broken {
        return ToolOutput::broken(error);
    }
    let exit_code = exit_code.and_then(|code| i32::try_from(code).ok());
    let (stdout, stdout_truncated) = stdout.render();
    let (mut stderr, stderr_truncated) = stderr.render();
    if timed_out || cancelled {
        // The wrapper's own word on the kill, not the command's.
        stderr = stderr
            .lines()
            .filter(|line| {
                !(*line == "Killed"
                    || line.starts_with("setsid: child ") && line.contains("did not exit normally"))
            })
            .map(|line| format!("{line}\n"))
            .collect();
    }
    ToolOutput {
        is_error: exit_code != Some(0),
        broken: false,
        output: json!({
            "exit_code": exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "timed_out": timed_out,
            "cancelled": cancelled,
            "truncated": stdout_truncated || stderr_truncated,
        }),
    }
}

/// Reads a pipe to its end, or until `stop`, keeping the head and tail.
async fn capture(
    mut pipe: impl AsyncRead + Unpin,
    cap: usize,
    stop: CancellationToken,
) -> HeadTail {
    let mut kept = HeadTail::new(cap);
    let mut chunk = vec![0; 16 * 1024];
    loop {
        tokio::select! {
            read = pipe.read(&mut chunk) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => kept.push(&chunk[..n]),
            },
            () = stop.cancelled() => break,
        }
    }
    kept
}

/// A reader task's text and whether it was cut.
async fn finish(reader: Option<tokio::task::JoinHandle<HeadTail>>) -> (String, bool) {
    match reader {
        Some(reader) => match reader.await {
            Ok(kept) => kept.render(),
            Err(_) => (String::new(), false),
        },
        None => (String::new(), false),
    }
}

/// The first and last bytes of a stream, at most `cap` in all, and how many
/// there were.
pub(crate) struct HeadTail {
    head: Vec<u8>,
    head_cap: usize,
    tail: std::collections::VecDeque<u8>,
    tail_cap: usize,
    total: u64,
}

impl HeadTail {
    /// Keeps `cap / 2` bytes of head and the rest of `cap` as tail.
    pub(crate) fn new(cap: usize) -> HeadTail {
        let head_cap = cap / 2;
        HeadTail {
            head: Vec::new(),
            head_cap,
            tail: std::collections::VecDeque::new(),
            tail_cap: cap - head_cap,
            total: 0,
        }
    }

    /// Takes in the next bytes of the stream.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let to_head = bytes.len().min(self.head_cap - self.head.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// The text kept, as lossy UTF-8, with a marker where bytes were left
    /// out; and whether any were.
    pub(crate) fn render(self) -> (String, bool) {
        let kept = self.head.len() as u64 + self.tail.len() as u64;
        let tail: Vec<u8> = self.tail.into_iter().collect();
        if self.total == kept {
            let mut all = self.head;
            all.extend_from_slice(&tail);
            return (String::from_utf8_lossy(&all).into_owned(), false);
        }
        // Cut at character boundaries where the bytes were split.
        let head = trim_partial_end(&self.head);
        let tail = trim_partial_start(&tail);
        let omitted = self.total - head.len() as u64 - tail.len() as u64;
        let text = format!(
            "{}\n[... {omitted} bytes omitted ...]\n{}",
            String::from_utf8_lossy(head),
            String::from_utf8_lossy(tail)
        );
        (text, true)
    }
}

/// Drops a UTF-8 sequence cut off at the end.
fn trim_partial_end(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Err(error) if error.error_len().is_none() => &bytes[..error.valid_up_to()],
        _ => bytes,
    }
}

/// Drops continuation bytes at the start (the rest of a character cut off
/// before it), at most three.
fn trim_partial_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take(3)
        .take_while(|byte| (0x80..0xC0).contains(*byte))
        .count();
    &bytes[skip..]
}

#[cfg(test)]
mod tests {
    use super::HeadTail;

    fn kept(cap: usize, chunks: &[&[u8]]) -> (String, bool) {
        let mut kept = HeadTail::new(cap);
        for chunk in chunks {
            kept.push(chunk);
        }
        kept.render()
    }

    #[test]
    fn short_output_is_whole() {
        assert_eq!(kept(10, &[b"abc", b"def"]), ("abcdef".to_owned(), false));
        assert_eq!(kept(6, &[b"abc", b"def"]), ("abcdef".to_owned(), false));
    }

    #[test]
    fn long_output_keeps_head_and_tail() {
        assert_eq!(
            kept(6, &[b"abcd", b"efgh", b"ij"]),
            ("abc\n[... 4 bytes omitted ...]\nhij".to_owned(), true)
        );
        assert_eq!(
            kept(4, &[b"0123456789"]),
            ("01\n[... 6 bytes omitted ...]\n89".to_owned(), true)
        );
        let many: Vec<&[u8]> = std::iter::repeat_n(&b"x"[..], 100).collect();
        let (text, truncated) = kept(10, &many);
        assert!(truncated);
        assert_eq!(text, "xxxxx\n[... 90 bytes omitted ...]\nxxxxx");
    }

    #[test]
    fn cut_characters_are_dropped_not_mangled() {
        // "é" is two bytes; these caps split the head and the tail inside
        // one, and the omitted count includes the pieces dropped.
        let (text, truncated) = kept(5, &["aééé".as_bytes()]);
        assert!(truncated);
        assert_eq!(text, "a\n[... 4 bytes omitted ...]\né");
        let (text, _) = kept(6, &["ééééé".as_bytes()]);
        assert_eq!(text, "é\n[... 6 bytes omitted ...]\né");
    }
}
