//! Resource limits for the local sandbox's commands.
//!
//! bubblewrap sets none, and cgroups are not generally delegated to a
//! user, so a local command is bounded with resource limits instead, set
//! by exo's own binary run inside the sandbox just before the command
//! (`exo __sandbox-limits --processes N --data BYTES -- PROGRAM ARGS...`,
//! which then `exec`s it, leaving no process of its own):
//!
//! - `RLIMIT_NPROC`: set inside the sandbox's user namespace, it counts
//!   the processes of that namespace only (the kernel counts per user
//!   namespace), so a fork bomb stops at the limit without touching the
//!   user's other processes. The kernel does not apply it to processes of
//!   the real root user: when exo runs as root, only the command's timeout
//!   bounds them.
//! - `RLIMIT_DATA`: each process's heap and private writable memory; a
//!   process that grows beyond it gets allocation failures rather than the
//!   host's out-of-memory killer. It is per process, not for the sandbox
//!   as a whole.
//!
//! The hard limits are lowered too: with no capabilities inside, a command
//! cannot raise them again.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::process::CommandExt;

use rustix::process::{setrlimit, Resource, Rlimit};

/// The first argument that makes exo's binary the limiter.
pub const LIMIT_ARG: &str = "__sandbox-limits";

/// Where the limiter (exo's binary) is seen inside a local sandbox.
pub const INSIDE_LIMITER: &str = "/run/exo-limits";

/// What a local sandbox's commands may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Processes (and threads) at once in the sandbox.
    pub processes: u64,
    /// Bytes of data (heap, private writable mappings) per process.
    pub data_bytes: u64,
}

impl Limits {
    /// As a docker sandbox's: 1024 processes, 4 GiB.
    pub const DEFAULT: Limits = Limits {
        processes: 1024,
        data_bytes: 4 << 30,
    };

    /// The limiter's arguments for these limits, before `--`.
    pub(crate) fn args(&self) -> Vec<OsString> {
        vec![
            LIMIT_ARG.into(),
            "--processes".into(),
            self.processes.to_string().into(),
            "--data".into(),
            self.data_bytes.to_string().into(),
            "--".into(),
        ]
    }
}

/// Runs the limiter: sets the limits, then becomes the program. Returns
/// only on failure, with the exit status to use (125, as `env` does for
/// its own failures), having said why on stderr.
pub fn limit(args: &[OsString]) -> i32 {
    let failed = match limit_inner(args) {
        Ok(error) => error,
        Err(message) => message,
    };
    let _ = writeln!(std::io::stderr(), "exo: {failed}");
    125
}

fn limit_inner(args: &[OsString]) -> Result<String, String> {
    let usage = "usage: exo __sandbox-limits --processes N --data BYTES -- PROGRAM [ARGS...]";
    let mut processes: Option<u64> = None;
    let mut data: Option<u64> = None;
    let mut rest = args;
    loop {
        let (first, after) = rest.split_first().ok_or(usage)?;
        rest = after;
        let number = |value: Option<&OsString>| -> Result<u64, String> {
            value
                .and_then(|value| value.to_str())
                .and_then(|value| value.parse().ok())
                .ok_or_else(|| usage.to_owned())
        };
        match first.to_str() {
            Some("--") => break,
            Some("--processes") => {
                processes = Some(number(rest.first())?);
                rest = &rest[1..];
            }
            Some("--data") => {
                data = Some(number(rest.first())?);
                rest = &rest[1..];
            }
            _ => return Err(usage.to_owned()),
        }
    }
    let (program, program_args) = rest.split_first().ok_or(usage)?;
    let set = |resource: Resource, value: u64, what: &str| -> Result<(), String> {
        let limit = Rlimit {
            current: Some(value),
            maximum: Some(value),
        };
        setrlimit(resource, limit).map_err(|err| format!("cannot limit {what}: {err}"))
    };
    if let Some(processes) = processes {
        set(Resource::Nproc, processes, "the processes")?;
    }
    if let Some(data) = data {
        set(Resource::Data, data, "the memory")?;
    }
    let error = std::process::Command::new(program)
        .args(program_args)
        .exec();
    Ok(format!("cannot start {}: {error}", display(program)))
}

fn display(program: &OsStr) -> String {
    program.to_string_lossy().into_owned()
}
