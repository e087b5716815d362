//! The `docker` backend: a container per conversation, reached through the
//! Docker Engine API (bollard, on the daemon's Unix socket; never the
//! docker CLI), created from an image on first use, the workspace bind-
//! mounted at its own path so files and snapshots stay on the host.
//!
//! Each command is an exec of a small wrapper in a session of its own
//! (`setsid -w`), which runs the command under `timeout -s KILL` in a
//! process group of its own and kills that group once the command exits,
//! so nothing it left running goes on; on cancel or timeout a second exec
//! kills both groups; and `timeout` kills the command by itself should exo
//! die first.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptions,
    StartContainerOptions,
};
use futures_util::{Stream, StreamExt};

use crate::SandboxError;

/// The image a docker sandbox starts from when the agent names none
/// (`containers/build` makes it).
pub const DEFAULT_IMAGE: &str = "exo/base:bookworm";

/// The image a Codex agent's docker sandbox starts from when the agent
/// names none: exo's base image with the Codex CLI at the version exo's
/// Codex executor drives (scripts/setup-agents pins it; `containers/build`
/// makes the image from that install).
pub const CODEX_IMAGE: &str = "exo/codex:0.169.0";

/// The same for a Claude Code agent: exo's base image with Claude Code's
/// native build (`containers/build`).
pub const CLAUDE_IMAGE: &str = "exo/claude:2.1.332";

/// The most processes one sandbox may run at once.
pub const PIDS_LIMIT: i64 = 1024;

/// The most memory one sandbox may use (swap included), in bytes.
pub const MEMORY_LIMIT: i64 = 4 << 30;

/// The most CPU one sandbox may use: every core but one (at least one),
/// so a runaway command never starves the machine; and half the weight of
/// other work when the machine is busy.
fn cpu_limit() -> (i64, i64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let allowed = i64::try_from(cores.saturating_sub(1).max(1)).unwrap_or(1);
    (allowed * 1_000_000_000, 512)
}

/// How long one request to Docker may take, in seconds: longer than the
/// longest command (10 minutes).
const REQUEST_TIMEOUT_SECS: u64 = 15 * 60;

/// What a conversation's container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSpec {
    /// The container's name (`exo-CONVERSATION`).
    pub container: String,
    /// The image it is created from.
    pub image: String,
    /// The workspace, bound read-write at its own path.
    pub workspace: PathBuf,
    /// Directories inside the workspace hidden under an empty tmpfs.
    pub hidden: Vec<PathBuf>,
    /// Whether it may reach the network (a bridge), or has none.
    pub network: bool,
    /// The conversation, as a label.
    pub conversation: String,
    /// exo's root, as the label `exo.root` of the container and so of its
    /// snapshots: `exo gc` of one root never touches another's.
    pub root: String,
    /// The egress proxy's directory and the forwarder (exo's binary),
    /// bound into the container where commands find them
    /// ([`egress::INSIDE_DIR`](crate::egress::INSIDE_DIR),
    /// [`egress::INSIDE_FORWARDER`](crate::egress::INSIDE_FORWARDER)).
    pub egress: Option<(PathBuf, PathBuf)>,
}

/// A conversation's container.
pub struct Docker {
    client: Result<bollard::Docker, String>,
    spec: DockerSpec,
    ensure: tokio::sync::Mutex<()>,
    /// Whether the container was running at the last command: if so the
    /// next one goes straight to its exec (and, should that find it gone,
    /// makes sure of it then).
    running: std::sync::atomic::AtomicBool,
    /// Whether a command ran since the container was made or snapshotted.
    used: std::sync::atomic::AtomicBool,
    /// The image the container's state should be: the spec's, then each
    /// snapshot's as it is taken.
    base: std::sync::Mutex<String>,
    /// Whether the container has the egress proxy's mounts (one an older
    /// exo made has not).
    egress_mounted: std::sync::atomic::AtomicBool,
}

/// A snapshot of the container's filesystem outside the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The image, `exo-snapshot:TAG`.
    pub image: String,
    /// Its id (`sha256:...`).
    pub id: String,
    /// How many paths changed since the image the container was made from.
    pub changes: usize,
}

/// Where commands' pid files are kept inside the container (a tmpfs).
const EXEC_DIR: &str = "/run/exo";

/// The repository snapshots are committed to.
pub const SNAPSHOT_REPOSITORY: &str = "exo-snapshot";

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker").field("spec", &self.spec).finish()
    }
}

/// A piece of an exec's output.
#[derive(Debug)]
pub enum Chunk {
    /// From its stdout.
    Stdout(Vec<u8>),
    /// From its stderr.
    Stderr(Vec<u8>),
}

/// A command running in the container.
pub struct Exec {
    /// What names it, to kill it or read its exit code.
    pub handle: ExecHandle,
    /// Its output as it comes; ends when every process holding its pipes
    /// has exited.
    pub output: Pin<Box<dyn Stream<Item = Result<Chunk, SandboxError>> + Send>>,
}

/// A program's input, as Docker attached it.
pub type Input = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// A long-running program in the container, its input attached.
pub struct Attached {
    /// Its output, and what names it.
    pub exec: Exec,
    /// Its stdin.
    pub stdin: Input,
}

/// What a command runs under.
enum Forwarder {
    /// Nothing: the command as it is.
    None,
    /// The forwarder, with the egress proxy.
    Proxy,
    /// The forwarder, relaying loopback ports to sockets of the egress
    /// directory.
    Relays(Vec<(u16, String)>),
}

/// What names a running command.
#[derive(Debug, Clone)]
pub struct ExecHandle {
    id: String,
    tag: String,
}

fn failed(what: &str, err: impl std::fmt::Display) -> SandboxError {
    SandboxError::Docker(format!("{what}: {err}"))
}

fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

impl Docker {
    /// The container `spec` describes; nothing is asked of Docker until the
    /// first command.
    pub fn new(spec: DockerSpec) -> Docker {
        // DOCKER_HOST as exo was given it (start-up may have taken it out
        // of the process's own environment); a request may last as long as
        // the longest command.
        let host = exo_secrets::environment::var_os("DOCKER_HOST")
            .map(|host| host.to_string_lossy().into_owned())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let client = match host.strip_prefix("unix://") {
            Some(path) => bollard::Docker::connect_with_unix(
                path,
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(|err| format!("cannot reach the Docker daemon at {path}: {err}")),
            None => Err(format!(
                "DOCKER_HOST {host} is not a unix:// socket, the only kind exo speaks to"
            )),
        };
        let base = std::sync::Mutex::new(spec.image.clone());
        Docker {
            client,
            spec,
            ensure: tokio::sync::Mutex::new(()),
            running: std::sync::atomic::AtomicBool::new(false),
            used: std::sync::atomic::AtomicBool::new(false),
            base,
            egress_mounted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// What the container is.
    pub fn spec(&self) -> &DockerSpec {
        &self.spec
    }

    fn client(&self) -> Result<&bollard::Docker, SandboxError> {
        self.client
            .as_ref()
            .map_err(|why| SandboxError::Docker(why.clone()))
    }

    /// Makes sure the container exists and runs: created from the image
    /// when missing, started when stopped, made again when it cannot start.
    pub async fn ensure(&self) -> Result<(), SandboxError> {
        let _one_at_a_time = self.ensure.lock().await;
        let docker = self.client()?;
        let name = &self.spec.container;
        match docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let base = self.base();
                let made_from = info
                    .config
                    .as_ref()
                    .and_then(|config| config.labels.as_ref())
                    .and_then(|labels| labels.get("exo.base"))
                    .cloned();
                let has_egress = info
                    .config
                    .as_ref()
                    .and_then(|config| config.labels.as_ref())
                    .is_some_and(|labels| labels.contains_key("exo.egress"));
                self.egress_mounted
                    .store(has_egress, std::sync::atomic::Ordering::Release);
                if made_from.as_deref() != Some(base.as_str()) {
                    // Its state is not the one the log is at (a rewind, a
                    // redo): made again from the snapshot that is.
                    tracing::info!(container = %name, base = %base, "restoring the container from its snapshot");
                    self.remove().await;
                    return self.create().await;
                }
                let running = info
                    .state
                    .as_ref()
                    .and_then(|state| state.running)
                    .unwrap_or(false);
                if running {
                    return Ok(());
                }
                if docker
                    .start_container(name, None::<StartContainerOptions>)
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
                tracing::warn!(container = %name, "the container does not start; making it again");
                self.remove().await;
                self.create().await
            }
            Err(err) if status_of(&err) == Some(404) => self.create().await,
            Err(err) => Err(failed("cannot reach the Docker daemon", err)),
        }
    }

    /// The container's image label and Docker's word for its state, or
    /// `None` when there is no container.
    pub async fn state(&self) -> Result<Option<(String, String)>, SandboxError> {
        let docker = self.client()?;
        match docker
            .inspect_container(&self.spec.container, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let base = info
                    .config
                    .as_ref()
                    .and_then(|config| config.labels.as_ref())
                    .and_then(|labels| labels.get("exo.base"))
                    .cloned()
                    .unwrap_or_default();
                let state = info
                    .state
                    .and_then(|state| state.status)
                    .map(|status| status.to_string())
                    .unwrap_or_default();
                Ok(Some((base, state)))
            }
            Err(err) if status_of(&err) == Some(404) => Ok(None),
            Err(err) => Err(failed("cannot reach the Docker daemon", err)),
        }
    }

    /// Makes the container (and starts it); `false` when it already
    /// exists, untouched.
    pub async fn create_new(&self) -> Result<bool, SandboxError> {
        let _one_at_a_time = self.ensure.lock().await;
        if self.state().await?.is_some() {
            return Ok(false);
        }
        self.create().await?;
        Ok(true)
    }

    /// Stops the container, keeping its files; `false` when there is none.
    pub async fn stop(&self) -> Result<bool, SandboxError> {
        let _one_at_a_time = self.ensure.lock().await;
        let docker = self.client()?;
        self.running
            .store(false, std::sync::atomic::Ordering::Release);
        let options = bollard::query_parameters::StopContainerOptions {
            t: Some(2),
            ..Default::default()
        };
        match docker
            .stop_container(&self.spec.container, Some(options))
            .await
        {
            Ok(()) => Ok(true),
            Err(err) if status_of(&err) == Some(404) => Ok(false),
            // Already stopped.
            Err(err) if status_of(&err) == Some(304) => Ok(true),
            Err(err) => Err(failed("cannot stop the container", err)),
        }
    }

    fn base(&self) -> String {
        self.base.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn remove(&self) {
        if let Ok(docker) = self.client() {
            let _ = docker
                .remove_container(
                    &self.spec.container,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
        self.running
            .store(false, std::sync::atomic::Ordering::Release);
    }

    async fn create(&self) -> Result<(), SandboxError> {
        let docker = self.client()?;
        let spec = &self.spec;
        let base = self.base();
        match docker.inspect_image(&base).await {
            Ok(_) => {}
            Err(err) if status_of(&err) == Some(404) => {
                return Err(SandboxError::Docker(format!(
                    "the image {base} is not present"
                )))
            }
            Err(err) => return Err(failed("cannot reach the Docker daemon", err)),
        }
        let workspace = spec.workspace.display().to_string();
        let mut tmpfs: HashMap<String, String> = spec
            .hidden
            .iter()
            .filter(|dir| dir.starts_with(&spec.workspace) && **dir != spec.workspace)
            .map(|dir| {
                (
                    dir.display().to_string(),
                    "rw,size=64k,mode=0700".to_owned(),
                )
            })
            .collect();
        // The commands' pid files: outside the container's own layer, so
        // they are in no snapshot and count as no change.
        tmpfs.insert(EXEC_DIR.to_owned(), "rw,size=1m,mode=0777".to_owned());
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let bind = |source: &Path, target: &str, read_only: bool| bollard::models::Mount {
            target: Some(target.to_owned()),
            source: Some(source.display().to_string()),
            typ: Some(bollard::models::MountType::BIND),
            read_only: Some(read_only),
            ..Default::default()
        };
        // Typed, not `src:dst`: a path may hold a colon.
        let mut mounts = vec![bind(&spec.workspace, &workspace, false)];
        let mut labels = HashMap::from([
            ("exo.conversation".to_owned(), spec.conversation.clone()),
            ("exo.workspace".to_owned(), workspace.clone()),
            ("exo.base".to_owned(), base.clone()),
            ("exo.root".to_owned(), spec.root.clone()),
        ]);
        if let Some((dir, forwarder)) = &spec.egress {
            // Read-only (commands connect to its sockets, and can neither
            // replace them nor fill exo's root), but for the home of an
            // agent CLI run in the container.
            mounts.push(bind(dir, crate::egress::INSIDE_DIR, true));
            let home = dir.join(crate::egress::AGENT_HOME);
            if home.is_dir() {
                mounts.push(bind(
                    &home,
                    &format!(
                        "{}/{}",
                        crate::egress::INSIDE_DIR,
                        crate::egress::AGENT_HOME
                    ),
                    false,
                ));
            }
            mounts.push(bind(forwarder, crate::egress::INSIDE_FORWARDER, true));
            labels.insert("exo.egress".to_owned(), "1".to_owned());
        }
        let body = ContainerCreateBody {
            image: Some(base.clone()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            working_dir: Some(workspace.clone()),
            hostname: Some("exo-sandbox".into()),
            user: (uid != 0).then(|| format!("{uid}:{gid}")),
            labels: Some(labels),
            host_config: Some(HostConfig {
                // Typed, not `src:dst`: a path may hold a colon.
                mounts: Some(mounts),
                // No device nodes (a raw disk in the shared workspace).
                cap_drop: Some(vec!["MKNOD".into()]),
                tmpfs: Some(tmpfs),
                network_mode: Some(if spec.network { "bridge" } else { "none" }.into()),
                pids_limit: Some(PIDS_LIMIT),
                memory: Some(MEMORY_LIMIT),
                memory_swap: Some(MEMORY_LIMIT),
                nano_cpus: Some(cpu_limit().0),
                cpu_shares: Some(cpu_limit().1),
                init: Some(true),
                security_opt: Some(vec!["no-new-privileges".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.container)
            .build();
        self.egress_mounted
            .store(spec.egress.is_some(), std::sync::atomic::Ordering::Release);
        match docker.create_container(Some(options), body).await {
            Ok(_) => {}
            // Made meanwhile by another exo process.
            Err(err) if status_of(&err) == Some(409) => {}
            Err(err) => return Err(failed("cannot create the container", err)),
        }
        docker
            .start_container(&spec.container, None::<StartContainerOptions>)
            .await
            .map_err(|err| failed("cannot start the container", err))
    }

    /// Starts `command` in `cwd` with `env`, killed after `timeout` inside
    /// the container whatever happens to exo.
    pub async fn exec(
        &self,
        command: &str,
        cwd: &Path,
        env: &[(OsString, OsString)],
        timeout: Duration,
        egress: Option<&crate::egress::Egress>,
    ) -> Result<Exec, SandboxError> {
        let proxied;
        let env = match egress {
            Some(proxy) => {
                proxied = env
                    .iter()
                    .cloned()
                    .chain([(crate::egress::TOKEN_VARIABLE.into(), proxy.token().into())])
                    .collect::<Vec<_>>();
                &proxied[..]
            }
            None => env,
        };
        let forwarder = match egress {
            Some(_) => Forwarder::Proxy,
            None => Forwarder::None,
        };
        let (exec, _) = self
            .launch(command, cwd, env, timeout, &forwarder, false)
            .await?;
        Ok(exec)
    }

    /// Starts a long-running program (an agent CLI) in the container:
    /// `command` (a shell command line) in `cwd` with `env`, its stdin
    /// attached, each `relays` port of its loopback relayed to a socket in
    /// the egress directory (`(PORT, SOCKET_NAME)`), killed after
    /// `timeout` whatever happens to exo.
    pub async fn spawn(
        &self,
        command: &str,
        cwd: &Path,
        env: &[(OsString, OsString)],
        timeout: Duration,
        relays: &[(u16, String)],
    ) -> Result<Attached, SandboxError> {
        let forwarder = if relays.is_empty() {
            Forwarder::None
        } else {
            Forwarder::Relays(relays.to_vec())
        };
        let (exec, stdin) = self
            .launch(command, cwd, env, timeout, &forwarder, true)
            .await?;
        let stdin = stdin.ok_or_else(|| {
            SandboxError::Docker("the program's input could not be attached".to_owned())
        })?;
        Ok(Attached { exec, stdin })
    }

    async fn launch(
        &self,
        command: &str,
        cwd: &Path,
        env: &[(OsString, OsString)],
        timeout: Duration,
        forwarder: &Forwarder,
        stdin: bool,
    ) -> Result<(Exec, Option<Input>), SandboxError> {
        use std::sync::atomic::Ordering;
        if !self.running.load(Ordering::Acquire) {
            self.ensure().await?;
        }
        self.used.store(true, Ordering::Release);
        if !matches!(forwarder, Forwarder::None) && !self.egress_mounted.load(Ordering::Acquire) {
            return Err(SandboxError::Docker(format!(
                "the container {} was made by an older exo, without the mounts the egress proxy and the gateway need: remove it (a sandbox snapshot first keeps what it changed outside the workspace) and it is made again with them",
                self.spec.container
            )));
        }
        match self
            .start(command, cwd, env, timeout, forwarder, stdin)
            .await
        {
            Ok(started) => {
                self.running.store(true, Ordering::Release);
                Ok(started)
            }
            Err(_) if self.running.swap(false, Ordering::AcqRel) => {
                // It ran at the last command; it may have died since.
                self.ensure().await?;
                let started = self
                    .start(command, cwd, env, timeout, forwarder, stdin)
                    .await?;
                self.running.store(true, Ordering::Release);
                Ok(started)
            }
            Err(err) => Err(err),
        }
    }

    async fn start(
        &self,
        command: &str,
        cwd: &Path,
        env: &[(OsString, OsString)],
        timeout: Duration,
        forwarder: &Forwarder,
        stdin: bool,
    ) -> Result<(Exec, Option<Input>), SandboxError> {
        let docker = self.client()?;
        let tag = format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let seconds = timeout.as_secs().max(1) + 1;
        // The wrapper leads a session of its own; the command runs under
        // `timeout` in a process group of its own, which the wrapper kills
        // once the command has exited, so nothing it left running goes on.
        // Under the forwarder when there is a proxy or a relay to reach.
        let dir = crate::egress::INSIDE_DIR;
        let forwarder = match forwarder {
            Forwarder::None => String::new(),
            Forwarder::Proxy => format!(
                "{} {} --proxy {dir}/{} -- ",
                crate::egress::INSIDE_FORWARDER,
                crate::egress::FORWARD_ARG,
                crate::egress::SOCKET_NAME
            ),
            Forwarder::Relays(relays) => {
                let mut line = format!(
                    "{} {}",
                    crate::egress::INSIDE_FORWARDER,
                    crate::egress::FORWARD_ARG
                );
                for (port, socket) in relays {
                    line.push_str(&format!(" --relay {port}={dir}/{socket}"));
                }
                line + " -- "
            }
        };
        // An asynchronous list's stdin is /dev/null unless redirected: the
        // program's is the exec's own when attached.
        let input = if stdin { " 0<&3" } else { "" };
        let script = format!(
            "f=/run/exo/exec-$1; echo $$ > $f; exec 3<&0; \
             timeout -s KILL {seconds} {forwarder}/bin/sh -c \"$0\"{input} & t=$!; echo $t > $f.t; \
             exec 3<&-; wait $t; c=$?; kill -9 -$t 2>/dev/null; rm -f $f $f.t; exit $c"
        );
        let env: Vec<String> = env
            .iter()
            .filter(|(name, _)| {
                // The host's paths mean nothing in the image.
                !["PATH", "HOME", "TMPDIR", "SHELL", "USER"]
                    .iter()
                    .any(|host| name == host)
            })
            .map(|(name, value)| format!("{}={}", name.to_string_lossy(), value.to_string_lossy()))
            .collect();
        let created = docker
            .create_exec(
                &self.spec.container,
                CreateExecOptions {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(vec![
                        "setsid".to_owned(),
                        "-w".to_owned(),
                        "/bin/sh".to_owned(),
                        "-c".to_owned(),
                        script,
                        command.to_owned(),
                        tag.clone(),
                    ]),
                    env: Some(env),
                    working_dir: Some(cwd.display().to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| failed("cannot run the command in the container", err))?;
        let started = docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await
            .map_err(|err| failed("cannot run the command in the container", err))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(SandboxError::Docker(
                "the command started detached".to_owned(),
            ));
        };
        let output = output.filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) => Some(Ok(Chunk::Stdout(message.to_vec()))),
                Ok(LogOutput::StdErr { message }) => Some(Ok(Chunk::Stderr(message.to_vec()))),
                Ok(LogOutput::Console { message }) => Some(Ok(Chunk::Stdout(message.to_vec()))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(err) => Some(Err(failed("the container's output broke off", err))),
            }
        });
        let exec = Exec {
            handle: ExecHandle {
                id: created.id,
                tag,
            },
            output: Box::pin(output),
        };
        Ok((exec, stdin.then_some(input)))
    }

    /// Snapshots the container's filesystem outside the workspace, if a
    /// command ran since it was made or last snapshotted and something
    /// changed: committed as `exo-snapshot:TAG`, and the container made
    /// again from it, so that its state and the newest snapshot are one.
    pub async fn snapshot(&self, tag: &str) -> Result<Option<Snapshot>, SandboxError> {
        use std::sync::atomic::Ordering;
        if !self.used.swap(false, Ordering::AcqRel) {
            return Ok(None);
        }
        self.snapshot_now(tag).await
    }

    /// Snapshots the container now if its filesystem outside the workspace
    /// changed since the image it was made from, whether or not a command
    /// of this process ran in it (`exo sandbox snapshot`).
    pub async fn snapshot_now(&self, tag: &str) -> Result<Option<Snapshot>, SandboxError> {
        let docker = self.client()?;
        let name = &self.spec.container;
        // The mount points exo made (the workspace, the tmpfs over hidden
        // directories and pid files, Docker's init) and the directories above them show
        // as changes of every container: they are not the command's.
        let mut ours: Vec<PathBuf> = Vec::new();
        let targets = std::iter::once(self.spec.workspace.clone())
            .chain(self.spec.hidden.iter().cloned())
            .chain([
                PathBuf::from(EXEC_DIR),
                PathBuf::from("/usr/sbin/docker-init"),
                PathBuf::from(crate::egress::INSIDE_DIR),
                PathBuf::from(crate::egress::INSIDE_FORWARDER),
            ]);
        for target in targets {
            ours.extend(target.ancestors().map(Path::to_path_buf));
        }
        let changes = match docker.container_changes(name).await {
            Ok(changes) => changes.map_or(0, |list| {
                list.iter()
                    .filter(|change| !ours.contains(&PathBuf::from(&change.path)))
                    .count()
            }),
            Err(err) if status_of(&err) == Some(404) => return Ok(None),
            Err(err) => return Err(failed("cannot read the container's changes", err)),
        };
        if changes == 0 {
            return Ok(None);
        }
        let options = bollard::query_parameters::CommitContainerOptions {
            container: Some(name.clone()),
            repo: Some(SNAPSHOT_REPOSITORY.to_owned()),
            tag: Some(tag.to_owned()),
            comment: Some(format!(
                "exo sandbox of conversation {}",
                self.spec.conversation
            )),
            pause: true,
            ..Default::default()
        };
        let committed = docker
            .commit_container(options, bollard::models::ContainerConfig::default())
            .await
            .map_err(|err| failed("cannot snapshot the container", err))?;
        let image = format!("{SNAPSHOT_REPOSITORY}:{tag}");
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = image.clone();
        let _one_at_a_time = self.ensure.lock().await;
        self.remove().await;
        self.create().await?;
        Ok(Some(Snapshot {
            image,
            id: committed.id,
            changes,
        }))
    }

    /// Kills the command and everything it started (its process groups),
    /// and waits until that is done. (A command that exits by itself has
    /// what it left running killed by its wrapper.)
    pub async fn kill(&self, exec: &ExecHandle) {
        let Ok(docker) = self.client() else { return };
        // The pid files are the command's to tamper with (a FIFO would
        // block a plain `cat`): read under a timeout.
        let script = format!(
            "f=/run/exo/exec-{tag}; for g in $(timeout -s KILL 2 cat $f.t $f 2>/dev/null); do kill -9 -$g; done 2>/dev/null; rm -f $f $f.t",
            tag = exec.tag
        );
        let kill = async {
            let created = docker
                .create_exec(
                    &self.spec.container,
                    CreateExecOptions {
                        cmd: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), script]),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await;
            if let Ok(created) = created {
                if let Ok(StartExecResults::Attached { mut output, .. }) = docker
                    .start_exec(&created.id, None::<StartExecOptions>)
                    .await
                {
                    while output.next().await.is_some() {}
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), kill)
            .await
            .is_err()
        {
            tracing::warn!(container = %self.spec.container, "the kill of a command did not finish");
        }
    }

    /// The command's exit code, once it has exited.
    pub async fn finish(&self, exec: &ExecHandle) -> Option<i64> {
        tokio::time::timeout(Duration::from_secs(10), self.exit_code(exec))
            .await
            .ok()
            .flatten()
    }

    async fn exit_code(&self, exec: &ExecHandle) -> Option<i64> {
        let docker = self.client().ok()?;
        let mut code = None;
        for _ in 0..500 {
            match docker.inspect_exec(&exec.id).await {
                Ok(info) if info.running != Some(true) => {
                    code = info.exit_code;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(_) => break,
            }
        }
        code
    }
}

/// Removes the snapshot images of exo's root `root` that `keep` does not
/// name (those a container still uses stay); how many went. Nothing when
/// no Docker daemon answers.
pub async fn gc(root: &str, keep: &[String]) -> Result<u64, SandboxError> {
    // No Docker here (no socket, or nobody answering on it): nothing to
    // collect now; the images wait for the next gc with Docker up.
    let Ok(docker) = local_client() else {
        return Ok(0);
    };
    if docker.ping().await.is_err() {
        return Ok(0);
    }
    let filters = HashMap::from([
        (
            "reference".to_owned(),
            vec![format!("{SNAPSHOT_REPOSITORY}:*")],
        ),
        ("label".to_owned(), vec![format!("exo.root={root}")]),
    ]);
    let options = bollard::query_parameters::ListImagesOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let images = docker
        .list_images(Some(options))
        .await
        .map_err(|err| failed("cannot list the images", err))?;
    let mut removed = 0;
    for image in images {
        for tag in &image.repo_tags {
            if keep.contains(tag) {
                continue;
            }
            let gone = docker
                .remove_image(
                    tag,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
            match gone {
                Ok(_) => removed += 1,
                // Used by a container: kept until that goes.
                Err(err) if status_of(&err) == Some(409) => {}
                Err(err) => tracing::warn!(image = %tag, "cannot remove the image: {err}"),
            }
        }
    }
    Ok(removed)
}

/// A conversation's container, as `exo sandbox list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its name (`exo-CONVERSATION`).
    pub name: String,
    /// The conversation.
    pub conversation: String,
    /// The image it was made from (the agent's, or a snapshot).
    pub base: String,
    /// Docker's word for its state (`running`, `exited`, ...).
    pub state: String,
}

fn local_client() -> Result<bollard::Docker, SandboxError> {
    let path = exo_secrets::environment::var_os("DOCKER_HOST")
        .map(|host| host.to_string_lossy().replacen("unix://", "", 1))
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    bollard::Docker::connect_with_unix(&path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        .map_err(|err| failed("cannot reach the Docker daemon", err))
}

/// The containers of exo's root `root`, by conversation.
pub async fn containers(root: &str) -> Result<Vec<ContainerInfo>, SandboxError> {
    let docker = local_client()?;
    let filters = HashMap::from([("label".to_owned(), vec![format!("exo.root={root}")])]);
    let options = bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let listed = docker
        .list_containers(Some(options))
        .await
        .map_err(|err| failed("cannot reach the Docker daemon", err))?;
    let mut found: Vec<ContainerInfo> = listed
        .into_iter()
        .map(|summary| {
            let labels = summary.labels.unwrap_or_default();
            ContainerInfo {
                name: summary
                    .names
                    .and_then(|names| names.into_iter().next())
                    .map(|name| name.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                conversation: labels.get("exo.conversation").cloned().unwrap_or_default(),
                base: labels.get("exo.base").cloned().unwrap_or_default(),
                state: summary
                    .state
                    .map(|state| state.to_string())
                    .unwrap_or_default(),
            }
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Removes the container of `conversation` if exo's root `root` made it;
/// whether there was one.
pub async fn remove(root: &str, conversation: &str) -> Result<bool, SandboxError> {
    let ours = containers(root)
        .await?
        .into_iter()
        .find(|container| container.conversation == conversation);
    let Some(container) = ours else {
        return Ok(false);
    };
    let docker = local_client()?;
    docker
        .remove_container(
            &container.name,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|err| failed("cannot remove the container", err))?;
    Ok(true)
}

/// Takes the conversation's sandbox for one user (a turn, or one step of
/// `exo sandbox`), across exo's processes: a lock file in its executor
/// directory `state_dir`, held until the file is dropped. Another user
/// holding it is [`SandboxError::Busy`].
pub fn lock(state_dir: &Path) -> Result<std::fs::File, SandboxError> {
    let failed = |err: std::io::Error| {
        SandboxError::Docker(format!(
            "cannot lock the sandbox in {}: {err}",
            state_dir.display()
        ))
    };
    std::fs::create_dir_all(state_dir).map_err(failed)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join("sandbox.lock"))
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SandboxError::Busy(
            "another turn or sandbox step is using the conversation's container".to_owned(),
        )),
        Err(std::fs::TryLockError::Error(err)) => Err(failed(err)),
    }
}

/// Runs `work` from blocking code, inside a runtime or not (on a thread
/// of its own, with a runtime of its own), for at most `limit`.
pub fn block_on<T: Send>(
    limit: std::time::Duration,
    work: impl std::future::Future<Output = T> + Send,
) -> Result<Result<T, tokio::time::error::Elapsed>, SandboxError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|err| {
                        SandboxError::Docker(format!("cannot start a runtime: {err}"))
                    })?;
                // The timer is made inside the runtime: outside one it panics.
                Ok(runtime.block_on(async move { tokio::time::timeout(limit, work).await }))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(SandboxError::Docker(
                    "internal error: a thread panicked".to_owned(),
                ))
            })
    })
}
