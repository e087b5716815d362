//! Which exo root a command uses: `--root` or `EXO_ROOT` when given, else
//! the nearest one found from the current directory upwards, as git finds
//! `.git`, so a command (an editor, a harness, a wrapper) started anywhere
//! in a project reaches the project's store.
//!
//! A directory is an exo root when it is named `.exo`, is a directory (a
//! symlink to one counts; a file named `.exo` never does), and holds an
//! `exo.db`. A `.exo` without a store (another tool's, or an empty one) is
//! passed over, as git passes over a `.git` that is not a repository.
//! `EXO_CEILING_DIRECTORIES`, colon-separated absolute paths like git's
//! `GIT_CEILING_DIRECTORIES`, stops the search before it moves up into one
//! of them (the current directory itself is always looked at).
//!
//! When none is found, a command that creates a store uses `./.exo`, and
//! every other command fails in one line saying where it looked.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::args::{
    AgentCommand, ApprovalCommand, BindingCommand, Command, DaemonArgs, ModelCommand,
    SecretCommand, UseArgs,
};

/// The name of a root directory.
pub const ROOT_DIR: &str = ".exo";

/// The variable listing directories the search does not move up into.
pub const CEILING_VAR: &str = "EXO_CEILING_DIRECTORIES";

/// Whether `command` may create a store where there is none; every other
/// command refuses to run without one rather than create it.
pub fn creates_store(command: &Command) -> bool {
    matches!(
        command,
        Command::Agent(AgentCommand::Create { .. })
            | Command::Secret(SecretCommand::Set { .. })
            | Command::Model(ModelCommand::Register { .. })
            | Command::Binding(
                BindingCommand::Env { .. }
                    | BindingCommand::Mcp { .. }
                    | BindingCommand::Http { .. }
            )
            | Command::Daemon(DaemonArgs { command: None, .. })
    )
}

/// Whether `command` only reads and, where there is no store yet, answers
/// as an empty store would (an empty list) rather than fail: a fresh
/// directory has no agents, which is not an error.
pub fn empty_without_store(command: &Command) -> bool {
    match command {
        Command::Agent(AgentCommand::List)
        | Command::Sandbox(crate::args::SandboxCommand::List)
        | Command::Approval(ApprovalCommand::List { .. })
        | Command::Doctor => true,
        Command::Secret(SecretCommand::List { scope })
        | Command::Model(ModelCommand::List { scope })
        | Command::Binding(BindingCommand::List { scope, .. }) => scope.agent.is_none(),
        Command::Use(UseArgs { agent, .. }) => agent.is_none(),
        _ => false,
    }
}

/// The root for `command`: as [`resolve`], falling back to `./.exo` for a
/// command that creates a store or answers without one.
pub fn resolve_for(given: Option<PathBuf>, command: &Command) -> Result<PathBuf> {
    resolve(
        given,
        creates_store(command) || empty_without_store(command),
    )
}

/// The root to use: `given` (from `--root` or `EXO_ROOT`) as it is, else
/// the nearest root from the current directory up (`.exo` when it is the
/// current directory's, else its absolute path), else `.exo` for a command
/// that `creates` a store.
pub fn resolve(given: Option<PathBuf>, creates: bool) -> Result<PathBuf> {
    if let Some(root) = given {
        return Ok(root);
    }
    let current = std::env::current_dir().context("reading the current directory")?;
    let ceilings = ceilings(std::env::var_os(CEILING_VAR).as_deref());
    match discover(&current, &ceilings) {
        // Named as before when it is the current directory's own, so that
        // messages read `.exo/exo.db`; an ancestor's by its absolute path.
        Found::Root(root) if root.parent() == Some(current.as_path()) => {
            Ok(PathBuf::from(ROOT_DIR))
        }
        Found::Root(root) => Ok(root),
        Found::Nothing { .. } if creates => Ok(PathBuf::from(ROOT_DIR)),
        Found::Nothing { ceiling } => {
            let stopped = ceiling
                .map(|ceiling| format!(" below {} ({CEILING_VAR})", ceiling.display()))
                .unwrap_or_default();
            bail!(
                "no exo store found in {} or any parent{stopped} (looked for {ROOT_DIR}/{}); create one with `exo agent create`, or pass --root",
                current.display(),
                exo_store::DB_FILE
            )
        }
    }
}

/// What a search found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// This root.
    Root(PathBuf),
    /// None; `ceiling` when a ceiling directory stopped the search.
    Nothing { ceiling: Option<PathBuf> },
}

/// Looks for a root in `start` and its ancestors, nearest first, not
/// moving up into any of `ceilings`.
pub fn discover(start: &Path, ceilings: &[PathBuf]) -> Found {
    let mut directory = start;
    loop {
        let candidate = directory.join(ROOT_DIR);
        if is_root(&candidate) {
            return Found::Root(candidate);
        }
        let Some(parent) = directory.parent() else {
            return Found::Nothing { ceiling: None };
        };
        if let Some(ceiling) = ceilings.iter().find(|ceiling| ceiling.as_path() == parent) {
            return Found::Nothing {
                ceiling: Some(ceiling.clone()),
            };
        }
        directory = parent;
    }
}

/// Whether `path` is an exo root: a directory holding a store.
fn is_root(path: &Path) -> bool {
    path.is_dir() && std::fs::symlink_metadata(path.join(exo_store::DB_FILE)).is_ok()
}

/// The ceiling directories of `value`: absolute paths, symlinks resolved
/// where they exist; empty and relative entries are ignored, as git does.
fn ceilings(value: Option<&OsStr>) -> Vec<PathBuf> {
    let Some(value) = value else {
        return Vec::new();
    };
    std::env::split_paths(value)
        .filter(|path| path.is_absolute())
        .map(|path| std::fs::canonicalize(&path).unwrap_or(path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_at(dir: &Path) -> PathBuf {
        let root = dir.join(ROOT_DIR);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join(exo_store::DB_FILE), b"").unwrap();
        root
    }

    #[test]
    fn the_nearest_root_upwards_wins() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().canonicalize().unwrap();
        let nested = top.join("a/b/c");
        std::fs::create_dir_all(&nested).unwrap();
        let outer = store_at(&top);
        assert_eq!(discover(&nested, &[]), Found::Root(outer.clone()));
        let inner = store_at(&top.join("a"));
        assert_eq!(discover(&nested, &[]), Found::Root(inner.clone()));
        assert_eq!(discover(&top.join("a"), &[]), Found::Root(inner));
        assert_eq!(discover(&top, &[]), Found::Root(outer));
    }

    #[test]
    fn a_dot_exo_that_is_a_file_or_holds_no_store_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().canonicalize().unwrap();
        let nested = top.join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let root = store_at(&top);
        std::fs::write(nested.join(ROOT_DIR), b"not a directory").unwrap();
        std::fs::create_dir(top.join("a").join(ROOT_DIR)).unwrap();
        assert_eq!(discover(&nested, &[]), Found::Root(root));
    }

    #[test]
    fn the_search_does_not_move_up_into_a_ceiling() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().canonicalize().unwrap();
        let nested = top.join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let root = store_at(&top);
        let ceiling = vec![top.clone()];
        assert_eq!(
            discover(&nested, &ceiling),
            Found::Nothing {
                ceiling: Some(top.clone())
            }
        );
        // The starting directory is always looked at, even a ceiling.
        assert_eq!(discover(&top, &ceiling), Found::Root(root.clone()));
        // A ceiling below the start, or elsewhere, changes nothing.
        assert_eq!(
            discover(&nested, &[nested.join("x"), PathBuf::from("/elsewhere")]),
            Found::Root(root)
        );
    }

    #[test]
    fn ceilings_are_absolute_paths_separated_by_colons() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        let value = format!("relative::{}:/no/such/dir", real.display());
        assert_eq!(
            ceilings(Some(OsStr::new(&value))),
            [real, PathBuf::from("/no/such/dir")]
        );
        assert!(ceilings(None).is_empty());
    }
}
