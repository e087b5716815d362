//! The sandbox lifecycle outside turns (spec/sandboxes.md, "The
//! lifecycle"): `sandbox/create`, `start`, `stop`, `exec` and `snapshot`,
//! each recorded in the conversation's log as a `custom` event.

use exo_core::EventData;
use exo_protocol::methods::{
    SandboxExecParams, SandboxExecResult, SandboxInfo, SandboxSnapshotResult,
};
use exo_protocol::{ConversationRef, ErrorCode};
use serde_json::json;

use crate::convert::simple_error;
use crate::error::{ServiceError, ServiceResult};
use crate::{ClientContext, Service};

/// How long a lifecycle step may wait on Docker (making a container
/// included).
const DOCKER_STEP: std::time::Duration = std::time::Duration::from_secs(120);
/// How long a snapshot may take.
const SNAPSHOT_STEP: std::time::Duration = std::time::Duration::from_secs(600);
/// The most of an `exec`'s command kept in its event.
const MAX_RECORDED_COMMAND: usize = 4096;

/// A conversation's sandbox, as its next turn would make it.
struct Resolved {
    agent: String,
    conversation: String,
    workspace: exo_tools::Workspace,
    mode: exo_core::SandboxMode,
}

impl Resolved {
    fn docker(&self) -> Result<&exo_sandbox::docker::Docker, ServiceError> {
        self.workspace.sandbox().container().ok_or_else(|| {
            simple_error(
                ErrorCode::InvalidParams,
                format!(
                    "conversation {}'s agent runs commands in the {} sandbox: only a docker sandbox has a container",
                    self.conversation,
                    self.mode.as_str()
                ),
            )
        })
    }
}

/// A sandbox's failure: `busy` when another turn or step holds it.
pub(crate) fn sandbox_error(err: exo_sandbox::SandboxError) -> ServiceError {
    let code = match err {
        exo_sandbox::SandboxError::Busy(_) => ErrorCode::Busy,
        _ => ErrorCode::Internal,
    };
    simple_error(code, err.to_string())
}

fn docker_failed(err: impl std::fmt::Display) -> ServiceError {
    simple_error(ErrorCode::Internal, err.to_string())
}

/// Runs one Docker step from blocking code, for at most `limit`.
pub(crate) fn docker_step<T: Send>(
    limit: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, exo_sandbox::SandboxError>> + Send,
) -> ServiceResult<T> {
    exo_sandbox::docker::block_on(limit, work)
        .map_err(docker_failed)?
        .map_err(|_| took_too_long(limit))?
        .map_err(docker_failed)
}

/// `what` (`already_exists`, `not_found`) of the conversation's container.
fn container_error(code: ErrorCode, container: &str, message: String) -> ServiceError {
    crate::convert::rpc_error(
        code,
        message,
        exo_protocol::ErrorData {
            what: Some("sandbox".into()),
            key: Some(container.to_owned()),
            ..Default::default()
        },
    )
}

fn took_too_long(limit: std::time::Duration) -> ServiceError {
    simple_error(
        ErrorCode::Internal,
        format!(
            "the docker sandbox failed: the Docker daemon did not answer within {} s",
            limit.as_secs()
        ),
    )
}

impl Service {
    /// The conversation's workspace with the sandbox its agent's commands
    /// run in (without the egress proxy, which only a turn starts); refused
    /// while a turn is open, since the turn owns the sandbox then.
    fn resolve_sandbox(&self, params: &ConversationRef) -> ServiceResult<Resolved> {
        let store = self.store();
        let agent = store.agent(&params.agent)?;
        let record = store.conversation(&params.agent, &params.conversation)?;
        if record.open_turn.is_some() {
            return Err(simple_error(
                ErrorCode::Busy,
                format!(
                    "a turn is running in conversation {}: its sandbox is the turn's until it ends",
                    record.slug
                ),
            ));
        }
        let config = exo_core::AgentConfig::from_map(&agent.config).map_err(|err| {
            simple_error(
                ErrorCode::InvalidParams,
                format!("agent {}: {err}", agent.slug),
            )
        })?;
        let Some(dir) = record.workspace.clone() else {
            return Err(simple_error(
                ErrorCode::InvalidParams,
                format!(
                    "conversation {} has no workspace, so its commands have nowhere to run",
                    record.slug
                ),
            ));
        };
        let protected = crate::turns::protected_dirs(store.root());
        let mut workspace = exo_tools::Workspace::new(std::path::Path::new(&dir))
            .map_err(|err| simple_error(ErrorCode::InvalidParams, err.to_string()))?;
        for path in &protected {
            workspace = workspace.protect(path);
        }
        let state_dir = store.root().join("executors").join(record.id.to_string());
        // One user of the container at a time: a turn, or this step.
        let lock = if config.sandbox == exo_core::SandboxMode::Docker {
            Some(exo_sandbox::docker::lock(&state_dir).map_err(sandbox_error)?)
        } else {
            None
        };
        let docker = exo_sandbox::docker::DockerSpec {
            container: format!("exo-{}", record.id),
            image: self
                .sandbox_snapshot(&params.agent, &params.conversation)?
                .or_else(|| config.image.clone())
                .unwrap_or_else(|| exo_executor::host::default_image(config.harness).to_owned()),
            workspace: std::path::PathBuf::new(),
            hidden: Vec::new(),
            network: config.network,
            conversation: record.id.to_string(),
            root: crate::turns::protected_dirs(store.root())
                .swap_remove(0)
                .display()
                .to_string(),
            egress: exo_executor::host::docker_egress(config.sandbox, &state_dir),
        };
        let mut sandbox = exo_executor::host::sandbox(
            config.sandbox,
            config.network,
            config.sandbox_fallback,
            workspace.root(),
            protected,
            docker,
        );
        if let Some(lock) = lock {
            sandbox = sandbox.with_lock(lock);
        }
        Ok(Resolved {
            agent: agent.id.to_string(),
            conversation: record.slug,
            workspace: workspace.with_sandbox(sandbox),
            mode: config.sandbox,
        })
    }

    /// Records `custom_type` with `payload` in the conversation.
    fn record_sandbox(
        &self,
        resolved: &Resolved,
        params: &ConversationRef,
        custom_type: &str,
        payload: serde_json::Value,
    ) -> ServiceResult<exo_core::EventId> {
        let appended = self.store().append(
            &params.agent,
            &params.conversation,
            vec![EventData::Custom {
                custom_type: custom_type.to_owned(),
                payload,
            }],
            None,
        )?;
        tracing::debug!(agent = %resolved.agent, conversation = %resolved.conversation, custom_type, "sandbox step recorded");
        appended.first().map(|event| event.id).ok_or_else(|| {
            simple_error(ErrorCode::Internal, "internal error: nothing was recorded")
        })
    }

    fn sandbox_info(&self, docker: &exo_sandbox::docker::Docker) -> ServiceResult<SandboxInfo> {
        let state = docker_step(DOCKER_STEP, docker.state())?;
        let (image, state) = state.unwrap_or_default();
        Ok(SandboxInfo {
            conversation: docker.spec().conversation.clone(),
            container: docker.spec().container.clone(),
            image,
            state,
        })
    }

    pub(crate) fn sandbox_create(
        &self,
        _: &ClientContext,
        params: ConversationRef,
    ) -> ServiceResult<SandboxInfo> {
        let resolved = self.resolve_sandbox(&params)?;
        let docker = resolved.docker()?;
        let made = docker_step(DOCKER_STEP, docker.create_new())?;
        if !made {
            return Err(container_error(
                ErrorCode::AlreadyExists,
                &docker.spec().container,
                format!(
                    "conversation {} already has its container {}",
                    resolved.conversation,
                    docker.spec().container
                ),
            ));
        }
        let info = self.sandbox_info(docker)?;
        self.record_sandbox(
            &resolved,
            &params,
            "sandbox.created",
            json!({ "container": info.container, "image": info.image }),
        )?;
        Ok(info)
    }

    pub(crate) fn sandbox_start(
        &self,
        _: &ClientContext,
        params: ConversationRef,
    ) -> ServiceResult<SandboxInfo> {
        let resolved = self.resolve_sandbox(&params)?;
        let docker = resolved.docker()?;
        let before = self.sandbox_info(docker)?;
        docker_step(DOCKER_STEP, docker.ensure())?;
        let info = self.sandbox_info(docker)?;
        // Already running as it was: nothing happened, nothing recorded.
        if before == info {
            return Ok(info);
        }
        self.record_sandbox(
            &resolved,
            &params,
            "sandbox.started",
            json!({ "container": info.container, "image": info.image }),
        )?;
        Ok(info)
    }

    pub(crate) fn sandbox_stop(
        &self,
        _: &ClientContext,
        params: ConversationRef,
    ) -> ServiceResult<SandboxInfo> {
        let resolved = self.resolve_sandbox(&params)?;
        let docker = resolved.docker()?;
        let before = self.sandbox_info(docker)?;
        let stopped = docker_step(DOCKER_STEP, docker.stop())?;
        if !stopped {
            return Err(container_error(
                ErrorCode::NotFound,
                &docker.spec().container,
                format!(
                    "conversation {} has no container to stop",
                    resolved.conversation
                ),
            ));
        }
        let info = self.sandbox_info(docker)?;
        // Already stopped: nothing happened, nothing recorded.
        if before.state != "running" && before.state != "paused" {
            return Ok(info);
        }
        self.record_sandbox(
            &resolved,
            &params,
            "sandbox.stopped",
            json!({ "container": info.container, "image": info.image }),
        )?;
        Ok(info)
    }

    pub(crate) fn sandbox_exec(
        &self,
        _: &ClientContext,
        params: SandboxExecParams,
    ) -> ServiceResult<SandboxExecResult> {
        let target = ConversationRef {
            agent: params.agent.clone(),
            conversation: params.conversation.clone(),
        };
        let resolved = self.resolve_sandbox(&target)?;
        let call = exo_tools::parse(
            "shell",
            &json!({ "command": params.command, "timeout_ms": params.timeout_ms }),
        )
        .map_err(|err| simple_error(ErrorCode::InvalidParams, err.to_string()))?;
        let limits = exo_tools::Limits::default();
        let cancel = tokio_util::sync::CancellationToken::new();
        // The command's own timeout bounds it; Docker's answer gets its
        // minute inside the tool.
        let output = exo_sandbox::docker::block_on(
            limits.max_timeout + DOCKER_STEP,
            exo_tools::run(&resolved.workspace, &call, &limits, &[], &cancel),
        )
        .map_err(docker_failed)?
        .map_err(|_| took_too_long(limits.max_timeout + DOCKER_STEP))?;
        let command: String = params.command.chars().take(MAX_RECORDED_COMMAND).collect();
        let event = self.record_sandbox(
            &resolved,
            &target,
            "sandbox.exec",
            json!({
                "command": command,
                "sandbox": resolved.workspace.sandbox().name(),
                "exit_code": output.output.get("exit_code").cloned().unwrap_or(serde_json::Value::Null),
                "is_error": output.is_error,
            }),
        )?;
        Ok(SandboxExecResult {
            output: output.output,
            is_error: output.is_error,
            event,
        })
    }

    pub(crate) fn sandbox_snapshot_call(
        &self,
        _: &ClientContext,
        params: ConversationRef,
    ) -> ServiceResult<SandboxSnapshotResult> {
        let resolved = self.resolve_sandbox(&params)?;
        let docker = resolved.docker()?;
        if self.sandbox_info(docker)?.state.is_empty() {
            return Err(container_error(
                ErrorCode::NotFound,
                &docker.spec().container,
                format!(
                    "conversation {} has no container to snapshot",
                    resolved.conversation
                ),
            ));
        }
        // The tag is unique per snapshot: the conversation and the time.
        let tag = format!(
            "{}-{}",
            docker.spec().conversation,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let taken = docker_step(SNAPSHOT_STEP, docker.snapshot_now(&tag))?;
        let Some(snapshot) = taken else {
            return Ok(SandboxSnapshotResult {
                image: None,
                changes: 0,
                event: None,
            });
        };
        let event = self.record_sandbox(
            &resolved,
            &params,
            exo_store::SANDBOX_SNAPSHOT_TYPE,
            json!({
                "image": snapshot.image,
                "id": snapshot.id,
                "container": docker.spec().container,
                "changes": snapshot.changes,
            }),
        )?;
        Ok(SandboxSnapshotResult {
            image: Some(snapshot.image),
            changes: snapshot.changes as u64,
            event: Some(event),
        })
    }
}
