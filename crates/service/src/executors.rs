//! Which executor runs an agent's turns: one per harness this exo offers,
//! chosen by the agent's configuration at each turn, so an agent switched
//! to another harness (`agent/set`) goes on under it from its full
//! history.

use std::collections::HashMap;
use std::sync::Arc;

use exo_core::{AgentConfig, Harness};
use exo_executor::Executor;
use exo_protocol::ErrorCode;

use crate::ServiceError;

/// The executors of a service, by harness.
pub struct Executors {
    by_harness: HashMap<Harness, Arc<dyn Executor>>,
}

impl Executors {
    /// The executors this exo offers.
    pub fn standard() -> Executors {
        let mut by_harness: HashMap<Harness, Arc<dyn Executor>> = HashMap::new();
        by_harness.insert(Harness::Builtin, Arc::new(exo_executor::Builtin::default()));
        // One TypeScript executor runs both module harnesses, so their
        // runners share one cap and idle policy.
        let typescript: Arc<dyn Executor> = Arc::new(exo_harness::TypeScript::default());
        by_harness.insert(Harness::Typescript, Arc::clone(&typescript));
        by_harness.insert(Harness::Cursor, typescript);
        by_harness.insert(Harness::Codex, Arc::new(exo_agents::Codex::default()));
        by_harness.insert(
            Harness::ClaudeCode,
            Arc::new(exo_agents::ClaudeCode::default()),
        );
        Executors { by_harness }
    }

    /// The executor of `harness`.
    pub fn get(&self, harness: Harness) -> Result<Arc<dyn Executor>, ServiceError> {
        self.by_harness.get(&harness).cloned().ok_or_else(|| {
            ServiceError::new(
                ErrorCode::InvalidParams,
                format!("the {harness} harness is not available in this version of exo"),
            )
        })
    }

    /// Checks a configuration with its harness's executor.
    pub fn check(&self, config: &AgentConfig) -> Result<(), ServiceError> {
        self.get(config.harness)?
            .check(config)
            .map_err(|message| ServiceError::new(ErrorCode::InvalidParams, message))
    }

    /// Drops what any executor keeps warm for `agent`.
    pub fn forget_agent(&self, agent: &str) {
        for executor in self.distinct() {
            executor.forget_agent(agent);
        }
    }

    /// Drops what any executor keeps warm for `conversation`.
    pub fn forget_conversation(&self, conversation: exo_core::ConversationId) {
        for executor in self.distinct() {
            executor.forget_conversation(conversation);
        }
    }

    /// Each executor once (one may serve several harnesses).
    fn distinct(&self) -> Vec<&Arc<dyn Executor>> {
        let mut seen: Vec<&Arc<dyn Executor>> = Vec::new();
        for executor in self.by_harness.values() {
            if !seen.iter().any(|known| Arc::ptr_eq(known, executor)) {
                seen.push(executor);
            }
        }
        seen
    }
}
