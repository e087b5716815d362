//! `exo conversation tree`: a conversation's history drawn as a graph,
//! newest first, as `git log --graph` draws commits.
//!
//! The current history is the leftmost column, its newest step marked
//! `(HEAD)`. A branch a rewind left behind is drawn beside the line it left,
//! above the step it leaves from, and joins it with `|/`; its newest step
//! says how to go back to it (redo). A fork taken at a step is drawn the
//! same way, as one line naming the fork. Every id is printed whole: ids
//! made in the same millisecond share their first twelve digits, and each
//! one shown is a valid `--at` of `conversation rewind` or of
//! `conversation fork`. Nothing in the drawing depends on the clock.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use exo_core::EventId;
use exo_protocol::methods::{ConversationTree, ConversationTreeMethod, TreeStep};
use exo_protocol::Method;
use serde_json::json;

use crate::backend::Backend;

/// Prints the tree of `conversation` (already named by slug or id); JSON
/// when `json`.
pub fn run(backend: &mut Backend, json: bool, agent: &str, conversation: &str) -> Result<()> {
    let (value, tree) = backend.call_as::<ConversationTree>(
        ConversationTreeMethod::NAME,
        json!({ "agent": agent, "conversation": conversation }),
    )?;
    let output = if json {
        let mut text = serde_json::to_string_pretty(&value)?;
        text.push('\n');
        text
    } else {
        draw(&tree)
    };
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`exo conversation tree ... | head`) is not an error.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// What hangs off a step: a branch that leaves from its last event, or a
/// fork taken there.
enum Child {
    Branch(usize),
    Fork(usize),
}

/// The drawing of `tree`, one line per step, branch joint and fork, each
/// ending in a newline.
fn draw(tree: &ConversationTree) -> String {
    let mut children: HashMap<EventId, Vec<Child>> = HashMap::new();
    for (index, branch) in tree.branches.iter().enumerate() {
        if let Some(from) = branch.from {
            children.entry(from).or_default().push(Child::Branch(index));
        }
    }
    for (index, fork) in tree.forks.iter().enumerate() {
        children
            .entry(fork.at)
            .or_default()
            .push(Child::Fork(index));
    }
    let mut drawing = Drawing {
        tree,
        children,
        out: String::new(),
    };
    if !tree.branches.is_empty() {
        drawing.branch(0, 0);
    }
    drawing.out
}

struct Drawing<'a> {
    tree: &'a ConversationTree,
    children: HashMap<EventId, Vec<Child>>,
    out: String,
}

impl Drawing<'_> {
    /// Draws branch `index` in column `depth`, newest step first, each
    /// step below what hangs off it. Every column to the left goes on
    /// below, so it is drawn as `|`.
    fn branch(&mut self, index: usize, depth: usize) {
        let tree = self.tree;
        let branch = &tree.branches[index];
        let prefix = "| ".repeat(depth);
        for (position, step) in branch.steps.iter().enumerate().rev() {
            for child in self.children.remove(&step.last()).unwrap_or_default() {
                match child {
                    Child::Branch(child) => self.branch(child, depth + 1),
                    Child::Fork(fork) => {
                        let fork = &tree.forks[fork].conversation;
                        self.line(&format!(
                            "{prefix}| * forked into {}/{}",
                            fork.agent, fork.slug
                        ));
                    }
                }
                self.line(&format!("{prefix}|/"));
            }
            let mut line = format!("{prefix}* {}  {}", step.last(), summary(step));
            if position + 1 == branch.steps.len() {
                if branch.current {
                    line.push_str("  (HEAD)");
                } else {
                    line.push_str(&format!(
                        "  abandoned head — redo: exo conversation rewind {} {} --at {}",
                        tree.agent, tree.conversation.slug, branch.head
                    ));
                }
            }
            self.line(&line);
        }
    }

    fn line(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }
}

/// One step in words. Text from the history is quoted and escaped, so a
/// prompt cannot move the cursor or forge a line of the drawing.
fn summary(step: &TreeStep) -> String {
    match step {
        TreeStep::ConversationCreated { .. } => "conversation created".to_owned(),
        TreeStep::Forked {
            source, from_event, ..
        } => {
            let deleted = if source.deleted { " (deleted)" } else { "" };
            format!(
                "forked from {}/{}{deleted} at {from_event}",
                source.agent, source.slug
            )
        }
        TreeStep::Rewound {
            from_event,
            to_event,
            ..
        } => format!("rewound from {from_event} to {to_event}"),
        TreeStep::Turn {
            events,
            prompt,
            status,
            tool_calls,
            ..
        } => {
            let mut text = match prompt {
                Some(prompt) => format!("turn {prompt:?}: "),
                None => "turn: ".to_owned(),
            };
            text.push_str(status.map_or("unfinished", |status| status.as_str()));
            text.push_str(&format!(", {}", count(*events, "event")));
            if *tool_calls > 0 {
                text.push_str(&format!(", {}", count(*tool_calls, "tool call")));
            }
            text
        }
        TreeStep::Events {
            events,
            kinds,
            text,
            ..
        } => {
            let mut line = format!("{}: {}", count(*events, "event"), kinds.join(", "));
            if let Some(text) = text {
                line.push_str(&format!(" — {text:?}"));
            }
            line
        }
    }
}

/// `1 event`, `2 events`.
fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
