//! Process start-up: keeping secrets where the commands a model runs
//! cannot read them.
//!
//! A shell command exo runs is exo's child, and `/proc/$PPID/environ`
//! shows the environment block exo was *started* with, for exo's whole
//! life (`unsetenv` does not change it). Two things keep what is in there
//! from the command:
//!
//! - **Non-dumpable.** Every exo process marks itself non-dumpable at once
//!   (`PR_SET_DUMPABLE` 0), so a process of the same user cannot read its
//!   `environ` or `mem`, nor attach to it; no core dump holds its secrets
//!   either. This does not stop root, which has `CAP_SYS_PTRACE`.
//! - **A clean start.** A command that runs tools (`exo daemon`, `exo
//!   conversation send`, `exo chat repl`) whose environment holds any
//!   variable outside [`ALLOWED`] starts itself again (`execve` of
//!   `/proc/self/exe`, same pid, same arguments) with only the allowed
//!   variables. The others are written to a memfd, which the new process
//!   inherits: its number is in [`HANDOVER_VAR`]; the new process reads
//!   it, closes it and keeps the variables in memory
//!   (`exo_secrets::environment`), where exo's own look-ups find them, and
//!   never puts them back into its environment. So even root, reading
//!   `/proc/PID/environ`, sees nothing but the allowed variables.
//!
//! The new process never starts itself again (it is recognised by
//! [`HANDOVER_VAR`]), and a start-up that cannot be done this way fails
//! with one line rather than run tools with secrets in reach.
//!
//! A memfd rather than a pipe: the variables must be written before the
//! `execve`, when nothing reads yet, and a pipe holds 64 KiB by default
//! while an environment may hold up to 2 MiB; a memfd never blocks and
//! never touches a disk.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;

use anyhow::{anyhow, bail, Context, Result};

/// The variable that tells a process started again by [`isolate`] which of
/// its file descriptors holds the variables handed over.
pub const HANDOVER_VAR: &str = "EXO_HANDOVER_FD";

/// The memfd's name, as `/proc/self/fd/N` shows it.
const MEMFD_NAME: &str = "exo-environment";

/// The first bytes of what is handed over.
const MAGIC: &[u8] = b"exo-environment-1\0";

/// Variables a process that runs tools keeps in its environment: what exo
/// itself reads from there (its root and log filter, the locale and the
/// terminal, where its files and temporary files go, HTTP proxies and
/// certificates, which the HTTP client reads), what the shell tool passes
/// on to commands (`PATH`, `HOME`, `LANG`, `LC_*`, `TERM`, `USER`,
/// `SHELL`, `TMPDIR`), and Rust's own. Besides these, every `LC_*` and
/// `XDG_*` variable.
pub const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "COLUMNS",
    "LINES",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "EXO_ROOT",
    "EXO_CEILING_DIRECTORIES",
    "EXO_LOG",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "LLVM_PROFILE_FILE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// Prefixes of allowed variables.
const ALLOWED_PREFIXES: &[&str] = &["LC_", "XDG_"];

/// Whether a process that runs tools keeps this variable in its
/// environment.
pub fn allowed(name: &OsStr) -> bool {
    name.to_str().is_some_and(|name| {
        ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
    })
}

/// Makes this process non-dumpable, takes over the variables a previous
/// start handed over, and, when `runs_tools` and the environment holds a
/// variable that is not [`allowed`], starts the process again without it
/// (this call then does not return).
pub fn isolate(runs_tools: bool) -> Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("cannot make this process non-dumpable")?;
    if let Some(fd) = std::env::var_os(HANDOVER_VAR) {
        // Not for the programs this process starts (an agent CLI, a
        // shell command, another exo): the descriptor is this process's.
        std::env::remove_var(HANDOVER_VAR);
        let variables = receive(&fd)?;
        exo_secrets::environment::hand_over(variables);
        restore_name();
        return Ok(());
    }
    if !runs_tools {
        return Ok(());
    }
    let (kept, moved): (Vec<_>, Vec<_>) = std::env::vars_os().partition(|(name, _)| allowed(name));
    if moved.is_empty() {
        return Ok(());
    }
    let error = restart(&kept, &moved);
    Err(anyhow!(
        "cannot restart without the secrets in this process's environment (so that the commands it runs cannot read them): {error:#}"
    ))
}

/// Starts this program again, with `kept` as its environment and `moved`
/// handed over; returns only on failure.
fn restart(kept: &[(OsString, OsString)], moved: &[(OsString, OsString)]) -> anyhow::Error {
    let handover = match write_handover(moved) {
        Ok(handover) => handover,
        Err(error) => return error,
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&handover);
    let mut arguments = std::env::args_os();
    let program_name = arguments.next().unwrap_or_else(|| "exo".into());
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(program_name)
        .args(arguments)
        .env_clear()
        .envs(kept.iter().map(|(name, value)| (name, value)))
        .env(HANDOVER_VAR, fd.to_string())
        .exec();
    anyhow!(error).context("starting /proc/self/exe")
}

/// A memfd holding `variables`, read from its start, that a new program
/// inherits (not close-on-exec).
fn write_handover(variables: &[(OsString, OsString)]) -> Result<OwnedFd> {
    use rustix::fs::{memfd_create, MemfdFlags};
    use rustix::io::{fcntl_setfd, FdFlags};

    let fd = memfd_create(MEMFD_NAME, MemfdFlags::CLOEXEC).context("creating a memfd")?;
    let mut file = std::fs::File::from(fd);
    let mut data = zeroize::Zeroizing::new(MAGIC.to_vec());
    for (name, value) in variables {
        data.extend_from_slice(name.as_bytes());
        data.push(b'=');
        data.extend_from_slice(value.as_bytes());
        data.push(0);
    }
    file.write_all(&data)
        .and_then(|()| file.rewind())
        .context("writing to the memfd")?;
    let fd = OwnedFd::from(file);
    fcntl_setfd(&fd, FdFlags::empty()).context("letting the new program inherit the memfd")?;
    Ok(fd)
}

/// The variables handed over in file descriptor `fd` (the value of
/// [`HANDOVER_VAR`]), which is closed.
fn receive(fd: &OsStr) -> Result<Vec<(OsString, OsString)>> {
    let not_ours =
        || anyhow!("{HANDOVER_VAR} is for exo's own use, and does not name what exo handed over");
    let fd: i32 = fd
        .to_str()
        .and_then(|fd| fd.parse().ok())
        .filter(|fd| *fd > 2)
        .ok_or_else(not_ours)?;
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|_| not_ours())?;
    if !link
        .as_os_str()
        .as_bytes()
        .starts_with(format!("/memfd:{MEMFD_NAME}").as_bytes())
    {
        return Err(not_ours());
    }
    let mut file = std::fs::File::from(adopt(fd));
    let mut data = zeroize::Zeroizing::new(Vec::new());
    file.read_to_end(&mut data)
        .context("reading the variables handed over")?;
    drop(file);
    let Some(entries) = data.strip_prefix(MAGIC) else {
        bail!("{HANDOVER_VAR} names a file that does not hold what exo hands over");
    };
    Ok(entries
        .split(|byte| *byte == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let split = entry
                .iter()
                .position(|byte| *byte == b'=')
                .unwrap_or(entry.len());
            let value = entry.get(split + 1..).unwrap_or_default();
            (
                OsString::from_vec(entry[..split].to_vec()),
                OsString::from_vec(value.to_vec()),
            )
        })
        .collect())
}

/// Takes ownership of the memfd the previous program handed over, so that
/// it is closed once read and no command inherits it.
#[allow(unsafe_code)]
fn adopt(fd: i32) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` is open (its `/proc/self/fd` link was just read) and is
    // the memfd the program this process was before created and left open
    // across `execve` for this process alone: no code in this process
    // opened it, so nothing else owns it or will close it. This runs once,
    // at start-up, before any other thread exists.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Names the process after the program again: `execve` of
/// `/proc/self/exe` named it `exe` (what `ps -C`, `pgrep` and `top` show).
fn restore_name() {
    let Some(program) = std::env::args_os().next() else {
        return;
    };
    let name = std::path::Path::new(&program)
        .file_name()
        .map(|name| name.as_bytes().to_vec())
        .unwrap_or_default();
    // The kernel keeps 15 bytes.
    let mut name: Vec<u8> = name
        .into_iter()
        .filter(|byte| *byte != 0)
        .take(15)
        .collect();
    if name.is_empty() {
        return;
    }
    name.push(0);
    if let Ok(name) = std::ffi::CStr::from_bytes_with_nul(&name) {
        let _ = rustix::thread::set_name(name);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn what_stays_in_the_environment() {
        for name in [
            "PATH",
            "HOME",
            "LC_ALL",
            "XDG_CONFIG_HOME",
            "EXO_ROOT",
            "EXO_CEILING_DIRECTORIES",
            "TERM",
        ] {
            assert!(allowed(OsStr::new(name)), "{name}");
        }
        for name in [
            "EXO_ENCRYPTION_KEY",
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "path",
            "LC",
            "",
        ] {
            assert!(!allowed(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn a_handover_round_trip_keeps_every_byte() {
        let variables: Vec<(OsString, OsString)> = vec![
            ("EXO_ENCRYPTION_KEY".into(), "00ff".into()),
            ("WITH_EQUALS".into(), "a=b=c".into()),
            ("EMPTY".into(), "".into()),
            (
                "NOT_UTF8".into(),
                OsString::from_vec(vec![0xff, 0xfe, b'x']),
            ),
        ];
        let fd = write_handover(&variables).unwrap();
        let number = fd.as_raw_fd();
        // `receive` takes the descriptor over and closes it, as the new
        // program does.
        std::mem::forget(fd);
        let received = receive(OsStr::new(&number.to_string())).unwrap();
        assert_eq!(received, variables);
        assert!(
            std::fs::read_link(format!("/proc/self/fd/{number}"))
                .map_or(true, |link| !link.to_string_lossy().contains(MEMFD_NAME)),
            "the memfd was closed"
        );
    }
}
