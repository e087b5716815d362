//! An agent's configuration, typed: which executor runs its turns (its
//! harness), the model it calls, how it asks before acting, and what it
//! was allowed for good. Stored as a JSON object; keys this exo does not
//! know are kept as they are.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ApprovalPolicy, ValidationError};

/// Which executor runs an agent's turns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Harness {
    /// exo's own coding loop, in exo's process.
    #[default]
    Builtin,
    /// A TypeScript module (`defineHarness`) run by `@exo/harness` in a
    /// runner process of its own.
    Typescript,
    /// OpenAI's Codex CLI, driven through its app-server.
    Codex,
    /// Anthropic's Claude Code CLI, driven through stream-json.
    ClaudeCode,
    /// The Cursor SDK, as a TypeScript harness.
    Cursor,
}

impl Harness {
    /// Every harness, in the order of `--help`.
    pub const ALL: [Harness; 5] = [
        Harness::Builtin,
        Harness::Typescript,
        Harness::Codex,
        Harness::ClaudeCode,
        Harness::Cursor,
    ];

    /// The name as written on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Harness::Builtin => "builtin",
            Harness::Typescript => "typescript",
            Harness::Codex => "codex",
            Harness::ClaudeCode => "claude-code",
            Harness::Cursor => "cursor",
        }
    }

    /// Whether it runs a module the agent names (`module`).
    pub fn takes_module(self) -> bool {
        matches!(self, Harness::Typescript)
    }
}

impl fmt::Display for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Harness {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Harness::ALL
            .into_iter()
            .find(|harness| harness.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(format!(
                    "unknown harness {s:?}: expected builtin, typescript, codex, claude-code or cursor"
                ))
            })
    }
}

/// What was decided about a call that needed approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Run this call.
    AllowOnce,
    /// Run this call, and calls of the same tool for the rest of the turn.
    AllowTurn,
    /// Run this call, and calls of the same tool in every later turn of
    /// the agent, without asking (stored in the agent's `allow`).
    AllowAlways,
    /// Refuse it.
    Deny,
}

impl ApprovalDecision {
    /// Whether the call may run.
    pub fn allows(self) -> bool {
        self != ApprovalDecision::Deny
    }

    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::AllowOnce => "allow_once",
            ApprovalDecision::AllowTurn => "allow_turn",
            ApprovalDecision::AllowAlways => "allow_always",
            ApprovalDecision::Deny => "deny",
        }
    }
}

/// Where an agent's commands run (spec/sandboxes.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// On the host, as the user running exo.
    None,
    /// In a bubblewrap sandbox: the workspace read-write, the rest of the
    /// system read-only, exo's secrets and the user's home out of sight,
    /// its own pid namespace, no network unless allowed.
    #[default]
    Local,
    /// In a container of its conversation's own, through the Docker
    /// Engine API: the workspace bind-mounted, no network unless allowed.
    Docker,
}

impl SandboxMode {
    /// The name as written on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::None => "none",
            SandboxMode::Local => "local",
            SandboxMode::Docker => "docker",
        }
    }
}

impl std::str::FromStr for SandboxMode {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(SandboxMode::None),
            "local" => Ok(SandboxMode::Local),
            "docker" => Ok(SandboxMode::Docker),
            _ => Err(ValidationError::new(format!(
                "unknown sandbox {s:?}: expected none, local or docker"
            ))),
        }
    }
}

/// An agent's configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentConfig {
    /// Which executor runs its turns.
    pub harness: Harness,
    /// The module a `typescript` harness runs (an absolute path).
    pub module: Option<String>,
    /// The model binding it calls.
    pub model: Option<String>,
    /// Its system instructions.
    pub instructions: Option<String>,
    /// What to do before a command or a write.
    pub approval: ApprovalPolicy,
    /// Tools allowed for good (`allow_always`), without asking.
    pub allow: Vec<String>,
    /// Where its commands run.
    pub sandbox: SandboxMode,
    /// Whether its sandboxed commands may reach the network.
    pub network: bool,
    /// The image a `docker` sandbox is created from (exo's base image when
    /// absent).
    pub image: Option<String>,
    /// Whether, where its sandbox cannot run, its commands run on the host
    /// instead (said once); otherwise they are refused.
    pub sandbox_fallback: bool,
    /// Keys this exo does not know, kept as they are.
    pub other: Map<String, Value>,
}

impl AgentConfig {
    /// Reads a stored configuration; a value of the wrong type is an error
    /// naming the key.
    pub fn from_map(map: &Map<String, Value>) -> Result<AgentConfig, ValidationError> {
        let mut config = AgentConfig::default();
        for (key, value) in map {
            let text = || {
                value.as_str().map(str::to_owned).ok_or_else(|| {
                    ValidationError::new(format!("agent config {key} must be a string"))
                })
            };
            match key.as_str() {
                "harness" => config.harness = text()?.parse()?,
                "module" => config.module = Some(text()?),
                "model" => config.model = Some(text()?),
                "instructions" => config.instructions = Some(text()?),
                "approval" => {
                    config.approval = text()?.parse().map_err(|_| {
                        ValidationError::new(format!(
                            "invalid approval policy {value}: expected auto, ask or deny"
                        ))
                    })?
                }
                "allow" => {
                    config.allow = serde_json::from_value(value.clone()).map_err(|_| {
                        ValidationError::new("agent config allow must be a list of tool names")
                    })?
                }
                "sandbox" => config.sandbox = text()?.parse()?,
                "image" => config.image = Some(text()?),
                "network" | "sandbox_fallback" => {
                    let flag = value.as_bool().ok_or_else(|| {
                        ValidationError::new(format!("agent config {key} must be true or false"))
                    })?;
                    if key == "network" {
                        config.network = flag;
                    } else {
                        config.sandbox_fallback = flag;
                    }
                }
                _ => {
                    config.other.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(config)
    }

    /// The configuration as it is stored: only what is set, defaults left
    /// out.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.other.clone();
        if self.harness != Harness::Builtin {
            map.insert("harness".into(), self.harness.as_str().into());
        }
        for (key, value) in [
            ("module", &self.module),
            ("model", &self.model),
            ("instructions", &self.instructions),
            ("image", &self.image),
        ] {
            if let Some(value) = value {
                map.insert(key.into(), value.clone().into());
            }
        }
        if self.approval != ApprovalPolicy::default() {
            map.insert("approval".into(), self.approval.as_str().into());
        }
        if !self.allow.is_empty() {
            map.insert("allow".into(), self.allow.clone().into());
        }
        if self.sandbox != SandboxMode::default() {
            map.insert("sandbox".into(), self.sandbox.as_str().into());
        }
        if self.network {
            map.insert("network".into(), true.into());
        }
        if self.sandbox_fallback {
            map.insert("sandbox_fallback".into(), true.into());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_config_round_trips_and_keeps_what_it_does_not_know() {
        let stored = json!({
            "harness": "typescript", "module": "/m.ts", "model": "gpt",
            "approval": "auto", "allow": ["shell"], "future": {"x": 1},
            "sandbox": "none", "network": true, "sandbox_fallback": true
        });
        let config = AgentConfig::from_map(stored.as_object().unwrap()).unwrap();
        assert_eq!(config.harness, Harness::Typescript);
        assert_eq!(config.approval, ApprovalPolicy::Auto);
        assert_eq!(config.allow, vec!["shell".to_string()]);
        assert_eq!(Value::Object(config.to_map()), stored);
        // Defaults are left out.
        assert!(AgentConfig::default().to_map().is_empty());
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = json!({"harness": "nope"});
        let error = AgentConfig::from_map(bad.as_object().unwrap()).unwrap_err();
        assert!(error.to_string().contains("unknown harness"), "{error}");
        let bad = json!({"model": 3});
        let error = AgentConfig::from_map(bad.as_object().unwrap()).unwrap_err();
        assert!(error.to_string().contains("model"), "{error}");
    }
}
