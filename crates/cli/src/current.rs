//! The conversation in use: `exo use AGENT CONV` stores it in the root,
//! and every command that takes AGENT CONV may then leave them out.
//!
//! It is stored as ids (a renamed slug still finds it) in
//! `<root>/current.json`, written to a temporary file and renamed, so a
//! reader sees the old choice or the new one, never half of one.
//!
//! Positional names stay where scripts expect them: when a command has
//! positionals of its own after AGENT CONV (`send AGENT CONV PROMPT`),
//! AGENT CONV are taken as given whenever enough words are given for them
//! (`send a c hi`), and are the current conversation otherwise (`send hi`).

use std::io::{Read, Write};
use std::ops::RangeInclusive;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::args::{
    ArtifactCommand, ChatCommand, Command, ConversationCommand, ConversationRef, SessionCommand,
    SnapshotCommand, TurnCommand,
};

/// The file in the root that holds the choice.
pub const FILE: &str = "current.json";

/// The most a choice file may hold.
const MAX_BYTES: u64 = 4096;

/// The conversation in use, by ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// The agent's id.
    pub agent: String,
    /// The conversation's id.
    pub conversation: String,
}

fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

/// The conversation in use in `root`, if one was chosen.
pub fn read(root: &Path) -> Result<Option<Current>> {
    let path = path(root);
    // Never waits on a FIFO put there: opened without blocking, and read
    // only if it is a regular file.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    if !file.metadata().is_ok_and(|meta| meta.is_file()) {
        bail!(
            "{} is not a regular file; `exo use --clear` removes it",
            path.display()
        );
    }
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_BYTES {
        bail!(
            "{} is not a conversation choice (too large); `exo use --clear` removes it",
            path.display()
        );
    }
    serde_json::from_str(&text).map(Some).map_err(|err| {
        anyhow!(
            "{} is damaged ({err}); `exo use --clear` removes it",
            path.display()
        )
    })
}

/// Stores `current` as the conversation in use.
pub fn write(root: &Path, current: &Current) -> Result<()> {
    let path = path(root);
    let temporary = root.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(serde_json::to_string(current)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(err).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// Forgets the conversation in use; whether one was chosen.
pub fn clear(root: &Path) -> Result<bool> {
    let path = path(root);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        // Something else was put there: an empty directory goes too.
        Err(_) if path.is_dir() => std::fs::remove_dir(&path)
            .map(|()| true)
            .with_context(|| format!("removing {} (a directory, not a choice)", path.display())),
        Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
    }
}

/// AGENT CONV when given, and the command's own words.
type Split = (Option<(String, String)>, Vec<String>);

/// Splits a command's positional `words` into AGENT CONV (when given) and
/// the command's own, of which it takes `own` many. `usage` names them all,
/// for the error.
fn split(words: &[String], own: RangeInclusive<usize>, usage: &str) -> Result<Split> {
    let n = words.len();
    if n >= 2 && own.contains(&(n - 2)) {
        return Ok((
            Some((words[0].clone(), words[1].clone())),
            words[2..].to_vec(),
        ));
    }
    if own.contains(&n) {
        return Ok((None, words.to_vec()));
    }
    Err(crate::UsageError(format!(
        "expected {usage}, got {n} argument{}",
        if n == 1 { "" } else { "s" }
    ))
    .into())
}

/// Fills in the names a command left out, from the words it was given and
/// the conversation in use. `load` reads the choice (only called when one
/// is needed).
pub fn fill(command: &mut Command, load: impl FnOnce() -> Result<Option<Current>>) -> Result<()> {
    let mut load = Some(load);
    let mut need = |target: &mut ConversationRef| -> Result<()> {
        if !target.agent.is_empty() || !target.conversation.is_empty() {
            return Ok(());
        }
        let current = load.take().map(|load| load()).transpose()?.flatten();
        let Some(current) = current else {
            bail!("no conversation given and none in use: name one (AGENT CONV), or choose one with `exo use AGENT CONV`")
        };
        target.agent = current.agent;
        target.conversation = current.conversation;
        Ok(())
    };
    match command {
        Command::Conversation(command) => match command {
            ConversationCommand::Create { .. } | ConversationCommand::List { .. } => {}
            ConversationCommand::Show(target)
            | ConversationCommand::Delete(target)
            | ConversationCommand::Events { target, .. }
            | ConversationCommand::Watch { target, .. }
            | ConversationCommand::Append { target, .. }
            | ConversationCommand::Rewind { target, .. }
            | ConversationCommand::Tree { target }
            | ConversationCommand::Export { target, .. } => need(target)?,
            ConversationCommand::Event {
                words,
                target,
                event,
            } => {
                let rest = given(target, words, 1..=1, "[AGENT CONV] EVENT_ID")?;
                *event = Some(parse_id(&rest[0], "event")?);
                need(target)?;
            }
            ConversationCommand::Fork {
                words,
                target,
                name,
                ..
            } => {
                let rest = given(target, words, 0..=1, "[AGENT CONV] [NAME]")?;
                *name = rest.into_iter().next();
                need(target)?;
            }
            ConversationCommand::Send {
                words,
                target,
                prompt,
                ..
            } => {
                let rest = given(target, words, 1..=1, "[AGENT CONV] PROMPT")?;
                *prompt = rest.into_iter().next().unwrap_or_default();
                need(target)?;
            }
        },
        Command::Chat(ChatCommand::Repl { target, .. })
        | Command::Session(SessionCommand::Resume(target))
        | Command::Sandbox(
            crate::args::SandboxCommand::Rm(target)
            | crate::args::SandboxCommand::Create(target)
            | crate::args::SandboxCommand::Start(target)
            | crate::args::SandboxCommand::Stop(target)
            | crate::args::SandboxCommand::Snapshot(target)
            | crate::args::SandboxCommand::Exec { target, .. },
        ) => need(target)?,
        Command::Snapshot(command) => match command {
            SnapshotCommand::Take(target)
            | SnapshotCommand::List { target, .. }
            | SnapshotCommand::Diff { target, .. } => need(target)?,
            SnapshotCommand::Restore {
                words,
                target,
                snapshot,
                ..
            } => {
                let rest = given(target, words, 1..=1, "[AGENT CONV] SNAPSHOT")?;
                *snapshot = rest.into_iter().next().unwrap_or_default();
                need(target)?;
            }
            SnapshotCommand::Show {
                words,
                target,
                snapshot,
                path,
            } => {
                let mut rest = given(target, words, 2..=2, "[AGENT CONV] SNAPSHOT PATH")?;
                *path = rest.pop().unwrap_or_default();
                *snapshot = rest.pop().unwrap_or_default();
                need(target)?;
            }
        },
        Command::Artifact(command) => match command {
            ArtifactCommand::Put {
                words,
                target,
                path,
                file,
                ..
            } => {
                let mut rest = given(target, words, 1..=2, "[AGENT CONV] PATH [FILE]")?.into_iter();
                *path = rest.next().unwrap_or_default();
                *file = rest.next().map(PathBuf::from);
                need(target)?;
            }
            ArtifactCommand::Get {
                words,
                target,
                path,
                ..
            } => {
                let rest = given(target, words, 1..=1, "[AGENT CONV] PATH")?;
                *path = rest.into_iter().next().unwrap_or_default();
                need(target)?;
            }
            ArtifactCommand::List { target, .. } => need(target)?,
        },
        Command::Turn(TurnCommand::Show {
            words,
            target,
            turn,
        })
        | Command::Turn(TurnCommand::Cancel {
            words,
            target,
            turn,
        }) => {
            let rest = given(target, words, 0..=1, "[AGENT CONV] [TURN]")?;
            *turn = rest
                .first()
                .map(|text| parse_id(text, "turn"))
                .transpose()?;
            need(target)?;
        }
        _ => {}
    }
    Ok(())
}

/// Takes AGENT CONV from `words` into `target` when given; the command's
/// own words.
fn given(
    target: &mut ConversationRef,
    words: &[String],
    own: RangeInclusive<usize>,
    usage: &str,
) -> Result<Vec<String>> {
    let (names, rest) = split(words, own, usage)?;
    if let Some((agent, conversation)) = names {
        target.agent = agent;
        target.conversation = conversation;
    }
    Ok(rest)
}

/// An id given as a word.
fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse::<T>().map_err(|_| {
        crate::UsageError(format!(
            "invalid {what} id {text:?}: expected a UUID (AGENT and CONV go together, before it)"
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn names_are_taken_as_given_whenever_they_fit() {
        let (names, rest) = split(&words(&["a", "c", "hi"]), 1..=1, "").unwrap();
        assert_eq!(names, Some(("a".into(), "c".into())));
        assert_eq!(rest, words(&["hi"]));
        let (names, rest) = split(&words(&["hi"]), 1..=1, "").unwrap();
        assert_eq!(names, None);
        assert_eq!(rest, words(&["hi"]));
        // An artifact's PATH FILE with the current conversation.
        let (names, rest) = split(&words(&["p", "f"]), 1..=2, "").unwrap();
        assert_eq!(names, None);
        assert_eq!(rest, words(&["p", "f"]));
        // A fork of a named conversation, no name.
        let (names, rest) = split(&words(&["a", "c"]), 0..=1, "").unwrap();
        assert_eq!(names, Some(("a".into(), "c".into())));
        assert!(rest.is_empty());
        let err = split(&words(&["a", "c"]), 1..=1, "[AGENT CONV] PROMPT").unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected [AGENT CONV] PROMPT, got 2 arguments"
        );
    }
}
