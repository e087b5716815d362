//! Where exo runs an agent's commands (spec/sandboxes.md).
//!
//! A [`Sandbox`] turns "run this program in this directory with this
//! environment" into a [`tokio::process::Command`]: on the host as it is
//! ([`Sandbox::host`]), or inside a bubblewrap sandbox ([`Sandbox::local`])
//! that sees the workspace read-write, the rest of the system read-only,
//! and neither exo's root, the key's directory, the user's home, `/tmp`
//! nor `/run` of the host; that has its own pid namespace (no other
//! process's `/proc`), no capabilities, a session of its own, and no
//! network unless the policy allows it. The caller adds the pipes, the
//! process group and the timeouts, as it would for a host command; killing
//! bubblewrap (its group, or exo itself dying) takes every process of the
//! sandbox with it.
//!
//! Where bubblewrap cannot run, [`Sandbox::local`] says why, and the caller
//! decides: refuse commands ([`Sandbox::unavailable`]), or run them on the
//! host if the agent allows it.

#![deny(unsafe_code)]

pub mod docker;
pub mod egress;
pub mod limits;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Why a command cannot be made.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    /// The sandbox cannot run on this machine.
    #[error("the local sandbox cannot run: {0}")]
    Unavailable(String),
    /// The docker sandbox failed: Docker unreachable, the image missing,
    /// the container gone.
    #[error("the docker sandbox failed: {0}")]
    Docker(String),
    /// The command runs in a container, not as a process of exo's.
    #[error("internal error: a docker sandbox runs commands through its exec")]
    InContainer,
    /// The egress proxy cannot run.
    #[error("the egress proxy failed: {0}")]
    Egress(String),
    /// Someone else is using the sandbox now.
    #[error("the sandbox is busy: {0}")]
    Busy(String),
}

/// What a sandbox lets a command see and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The directory the command works in, read-write.
    pub workspace: PathBuf,
    /// Directories it must not see (exo's root, the key's directory),
    /// wherever they lie, the workspace included.
    pub hidden: Vec<PathBuf>,
    /// Whether it may reach the network.
    pub network: bool,
}

/// Where commands run.
#[derive(Debug, Clone)]
pub struct Sandbox {
    kind: Kind,
    /// The proxy commands reach the network through, when the
    /// conversation has HTTP bindings.
    egress: Option<egress::EgressAccess>,
    /// The container's lock, held while this sandbox is in use.
    lock: Option<Arc<std::fs::File>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Host,
    Local {
        bwrap: PathBuf,
        policy: Arc<Policy>,
        /// exo's binary, which sets the [`limits::Limits`] inside.
        limiter: Option<(PathBuf, limits::Limits)>,
    },
    Docker(Arc<docker::Docker>),
    Unavailable(String),
}

/// The variable that names the bubblewrap program (else `bwrap` on
/// `PATH`).
pub const BWRAP_VARIABLE: &str = "EXO_BWRAP";

impl Sandbox {
    /// Commands run on the host, as the user running exo.
    pub fn host() -> Sandbox {
        Sandbox {
            kind: Kind::Host,
            egress: None,
            lock: None,
        }
    }

    /// Commands run in a bubblewrap sandbox under `policy`; an error says
    /// why bubblewrap cannot run here (checked once per process).
    pub fn local(policy: Policy) -> Result<Sandbox, SandboxError> {
        let bwrap = probe().map_err(|why| SandboxError::Unavailable(why.clone()))?;
        Ok(Sandbox {
            kind: Kind::Local {
                bwrap: bwrap.clone(),
                policy: Arc::new(policy),
                limiter: None,
            },
            egress: None,
            lock: None,
        })
    }

    /// Commands run in the conversation's container (created on first use).
    pub fn docker(spec: docker::DockerSpec) -> Sandbox {
        Sandbox {
            kind: Kind::Docker(Arc::new(docker::Docker::new(spec))),
            egress: None,
            lock: None,
        }
    }

    /// The container, when commands run in one: they go through its
    /// [`exec`](docker::Docker::exec) rather than [`Sandbox::command`].
    pub fn container(&self) -> Option<&docker::Docker> {
        match &self.kind {
            Kind::Docker(docker) => Some(docker),
            _ => None,
        }
    }

    /// The container, shared: for a program that outlives one call (an
    /// agent CLI run in the container).
    pub fn container_shared(&self) -> Option<Arc<docker::Docker>> {
        match &self.kind {
            Kind::Docker(docker) => Some(Arc::clone(docker)),
            _ => None,
        }
    }

    /// Every command refused, saying `why`: a sandbox was asked for and
    /// cannot run, and the agent does not allow the host instead.
    pub fn unavailable(why: impl Into<String>) -> Sandbox {
        Sandbox {
            kind: Kind::Unavailable(why.into()),
            egress: None,
            lock: None,
        }
    }

    /// Commands reach the network through `access`'s proxy, which adds
    /// the conversation's HTTP credentials (spec/sandboxes.md).
    pub fn with_egress(mut self, access: egress::EgressAccess) -> Sandbox {
        self.egress = Some(access);
        self
    }

    /// A local sandbox's commands run under `limits`, set by `exe` (exo's
    /// own binary, which answers [`limits::LIMIT_ARG`]) inside the
    /// sandbox; other kinds are left as they are.
    pub fn with_limits(mut self, exe: PathBuf, limits: limits::Limits) -> Sandbox {
        if let Kind::Local { limiter, .. } = &mut self.kind {
            *limiter = Some((exe, limits));
        }
        self
    }

    /// Holds `lock` (from [`docker::lock`]) as long as this sandbox lives.
    pub fn with_lock(mut self, lock: std::fs::File) -> Sandbox {
        self.lock = Some(Arc::new(lock));
        self
    }

    /// The proxy commands go through, if any.
    pub fn egress(&self) -> Option<&egress::EgressAccess> {
        self.egress.as_ref()
    }

    /// `host`, `local`, `docker` or `unavailable`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Host => "host",
            Kind::Local { .. } => "local",
            Kind::Docker(_) => "docker",
            Kind::Unavailable(_) => "unavailable",
        }
    }

    /// A command that runs `program args` in `cwd` with exactly `env` as
    /// its environment (nothing of exo's own is inherited), here; under
    /// the forwarder when the sandbox has a proxy.
    pub fn command(
        &self,
        program: &OsStr,
        args: &[&OsStr],
        cwd: &Path,
        env: &[(OsString, OsString)],
    ) -> Result<tokio::process::Command, SandboxError> {
        let mut program = program.to_owned();
        let mut args: Vec<OsString> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let mut env = env.to_vec();
        if let Some(access) = &self.egress {
            let (forwarder, dir) = match self.kind {
                Kind::Local { .. } => (
                    PathBuf::from(egress::INSIDE_FORWARDER),
                    PathBuf::from(egress::INSIDE_DIR),
                ),
                _ => (access.forwarder.clone(), access.proxy.dir().to_owned()),
            };
            let mut wrapped: Vec<OsString> = vec![
                egress::FORWARD_ARG.into(),
                "--proxy".into(),
                dir.join(egress::SOCKET_NAME).into_os_string(),
                "--".into(),
                program,
            ];
            wrapped.append(&mut args);
            program = forwarder.into_os_string();
            args = wrapped;
            env.push((egress::TOKEN_VARIABLE.into(), access.proxy.token().into()));
        }
        match &self.kind {
            Kind::Host => {
                let mut command = tokio::process::Command::new(program);
                command
                    .args(args)
                    .current_dir(cwd)
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)));
                Ok(command)
            }
            Kind::Local {
                bwrap,
                policy,
                limiter,
            } => {
                if let Some((_, limits)) = limiter {
                    let mut limited = limits.args();
                    limited.push(program);
                    limited.append(&mut args);
                    program = limits::INSIDE_LIMITER.into();
                    args = limited;
                }
                let mut command = tokio::process::Command::new(bwrap);
                // bubblewrap's own process keeps the environment it was
                // started with and shows it as the sandbox's /proc/1/environ:
                // it gets only the command's.
                let path = env
                    .iter()
                    .find(|(name, _)| name == "PATH")
                    .map(|(_, value)| value.as_os_str());
                let limiter = limiter.as_ref().map(|(exe, _)| exe.as_path());
                command
                    .args(bwrap_args(policy, cwd, path, self.egress.as_ref(), limiter))
                    .arg("--")
                    .arg(program)
                    .args(args)
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .env("TMPDIR", "/tmp");
                Ok(command)
            }
            Kind::Docker(_) => Err(SandboxError::InContainer),
            Kind::Unavailable(why) => Err(SandboxError::Unavailable(why.clone())),
        }
    }
}

/// Where the host's own state is kept that a command must not see.
const HIDDEN_SYSTEM: [&str; 4] = ["/tmp", "/var/tmp", "/run", "/dev/shm"];

/// bubblewrap's arguments for `policy`, the command working in `cwd`
/// with `path` as its `PATH`.
fn bwrap_args(
    policy: &Policy,
    cwd: &Path,
    path: Option<&OsStr>,
    egress: Option<&egress::EgressAccess>,
    limiter: Option<&Path>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop",
        "ALL",
        "--hostname",
        "exo-sandbox",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        // Read-only: a command that is uid 0 (exo run as root) could
        // otherwise write the host's sysctls (kernel.core_pattern runs a
        // program as root) or its sysrq trigger, capabilities or not.
        "--remount-ro",
        "/proc",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    if !policy.network {
        args.push("--unshare-net".into());
    }
    let tmpfs = |args: &mut Vec<OsString>, dir: &Path| {
        args.push("--tmpfs".into());
        args.push(dir.as_os_str().to_owned());
    };
    for dir in HIDDEN_SYSTEM {
        if Path::new(dir).is_dir() {
            tmpfs(&mut args, Path::new(dir));
        }
    }
    // The user's home and every home: the workspace is bound back below.
    let mut homes: Vec<PathBuf> = vec!["/root".into(), "/home".into()];
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        if home.is_absolute() && home != Path::new("/") {
            homes.push(home);
        }
    }
    homes.retain(|home| home.is_dir());
    for home in &homes {
        tmpfs(&mut args, home);
    }
    // Programs the user put on PATH inside a home (~/.cargo/bin, say) stay
    // runnable, read-only; the rest of the home stays out of sight.
    let mut shown: Vec<PathBuf> = vec![policy.workspace.clone()];
    for dir in std::env::split_paths(path.unwrap_or_default()) {
        let inside_home = homes
            .iter()
            .any(|home| dir.starts_with(home) && dir != *home);
        if dir.is_absolute() && inside_home && dir.is_dir() && !shown.contains(&dir) {
            args.push("--ro-bind".into());
            args.push(dir.as_os_str().to_owned());
            args.push(dir.as_os_str().to_owned());
            shown.push(dir);
        }
    }
    args.push("--bind".into());
    args.push(policy.workspace.as_os_str().to_owned());
    args.push(policy.workspace.as_os_str().to_owned());
    // Last, so that no bind above shows them again; one already out of
    // sight (under a hidden home, not under anything bound back) is left
    // alone, which leaves no empty mount point behind to show it existed.
    let covered: Vec<PathBuf> = HIDDEN_SYSTEM
        .iter()
        .map(PathBuf::from)
        .chain(homes.iter().cloned())
        .collect();
    for dir in &policy.hidden {
        let out_of_sight = covered.iter().any(|c| dir.starts_with(c))
            && !shown
                .iter()
                .any(|s| dir.starts_with(s) || s.starts_with(dir));
        if dir.is_dir() && dir != Path::new("/") && !out_of_sight {
            tmpfs(&mut args, dir);
        }
    }
    // A Docker socket elsewhere than /run (DOCKER_HOST) is root on the
    // host: the sandbox sees /dev/null in its place.
    for socket in docker_sockets() {
        args.push("--ro-bind".into());
        args.push("/dev/null".into());
        args.push(socket.into_os_string());
    }
    // The proxy's socket and the forwarder, after the hidden directories
    // (the socket's lies in exo's root): nothing else of either shows.
    // Read-only: a command connects to the socket, and can neither
    // replace it nor fill exo's root.
    if let Some(access) = egress {
        args.push("--ro-bind".into());
        args.push(access.proxy.dir().as_os_str().to_owned());
        args.push(egress::INSIDE_DIR.into());
        args.push("--ro-bind".into());
        args.push(access.forwarder.as_os_str().to_owned());
        args.push(egress::INSIDE_FORWARDER.into());
    }
    if let Some(exe) = limiter {
        args.push("--ro-bind".into());
        args.push(exe.as_os_str().to_owned());
        args.push(limits::INSIDE_LIMITER.into());
    }
    args.push("--chdir".into());
    args.push(cwd.as_os_str().to_owned());
    args
}

/// The Docker sockets exo knows of outside the hidden places: the one
/// `DOCKER_HOST` names, when it is a `unix://` socket that exists.
fn docker_sockets() -> Vec<PathBuf> {
    let Some(host) = exo_secrets::environment::var_os("DOCKER_HOST") else {
        return Vec::new();
    };
    let host = host.to_string_lossy().into_owned();
    host.strip_prefix("unix://")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute() && path.exists())
        .into_iter()
        .collect()
}

/// Finds bubblewrap and checks once that it can make a sandbox here.
fn probe() -> Result<&'static PathBuf, &'static String> {
    static PROBED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBED
        .get_or_init(|| {
            let bwrap = locate().ok_or_else(|| {
                "bubblewrap (bwrap) is not installed: install Debian's bubblewrap package"
                    .to_owned()
            })?;
            let output = std::process::Command::new(&bwrap)
                .args([
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--unshare-pid",
                    "--unshare-net",
                    "--cap-drop",
                    "ALL",
                    "--",
                    "/bin/true",
                ])
                .env_clear()
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|err| format!("cannot start {}: {err}", bwrap.display()))?;
            if output.status.success() {
                Ok(bwrap)
            } else {
                let said = String::from_utf8_lossy(&output.stderr);
                let said = said.lines().next().unwrap_or("it failed").trim();
                Err(format!(
                    "{} cannot make a sandbox here ({said}); unprivileged user namespaces may be disabled",
                    bwrap.display()
                ))
            }
        })
        .as_ref()
}

fn locate() -> Option<PathBuf> {
    // exo's environment, which start-up may have taken out of the
    // process's own.
    let named = exo_secrets::environment::var_os(BWRAP_VARIABLE).filter(|v| !v.is_empty());
    if let Some(path) = named {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join("bwrap"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(workspace: &Path, hidden: Vec<PathBuf>, network: bool) -> Policy {
        Policy {
            workspace: workspace.to_owned(),
            hidden,
            network,
        }
    }

    #[test]
    fn hidden_directories_come_after_the_workspace_bind() {
        let dir = tempfile::tempdir().unwrap();
        let exo = dir.path().join(".exo");
        std::fs::create_dir(&exo).unwrap();
        let args = bwrap_args(
            &policy(dir.path(), vec![exo.clone()], false),
            dir.path(),
            None,
            None,
            None,
        );
        let at = |needle: &OsStr| args.iter().position(|a| a == needle).unwrap();
        let bind = at(OsStr::new("--bind"));
        let hidden = args.iter().rposition(|a| a == exo.as_os_str()).unwrap();
        assert!(hidden > bind, "{args:?}");
        assert!(args.iter().any(|a| a == "--unshare-net"));
        let open = bwrap_args(
            &policy(dir.path(), vec![], true),
            dir.path(),
            None,
            None,
            None,
        );
        assert!(!open.iter().any(|a| a == "--unshare-net"));
    }

    #[test]
    fn an_unavailable_sandbox_refuses_every_command() {
        let sandbox = Sandbox::unavailable("no bwrap");
        let refused = sandbox
            .command(OsStr::new("true"), &[], Path::new("/"), &[])
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the local sandbox cannot run: no bwrap"
        );
    }
}
