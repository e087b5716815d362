//! Finding the root as git finds `.git`: from the current directory up,
//! the first `.exo` holding a store; `--root` and `EXO_ROOT` win; reading
//! commands that find none fail in one line saying where they looked, and
//! writing commands create `./.exo`. A daemon and the command line started
//! in different subdirectories of one project meet.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::Value;

use crate::util::{assert_one_line_failure, to_run, wait_until, Env, Run};

/// Runs `exo ARGS` in `dir`, with the environment of `env` plus `vars`.
fn run_in(env: &Env, dir: &Path, args: &[&str], vars: &[(&str, &Path)]) -> Run {
    let mut command = env.command(args);
    command.current_dir(dir);
    for (name, value) in vars {
        command.env(name, value);
    }
    to_run(command.output().expect("run exo"))
}

/// The slugs `exo --json agent list` prints, run in `dir`.
fn agents_in(env: &Env, dir: &Path, args: &[&str], vars: &[(&str, &Path)]) -> Vec<String> {
    let mut all = vec!["--json", "agent", "list"];
    all.extend_from_slice(args);
    let run = run_in(env, dir, &all, vars);
    assert_eq!(
        run.code,
        0,
        "exo {all:?} in {}: {}",
        dir.display(),
        run.stderr
    );
    let listed: Value = run.json();
    listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| agent["slug"].as_str().unwrap().to_owned())
        .collect()
}

/// `dir/path`, created, in its canonical form.
fn subdir(dir: &Path, path: &str) -> PathBuf {
    let sub = dir.join(path);
    std::fs::create_dir_all(&sub).unwrap();
    sub.canonicalize().unwrap()
}

#[test]
fn a_command_in_a_subdirectory_finds_the_root_above_it() {
    let env = Env::new();
    env.ok(&["agent", "create", "Top", "--slug", "top"]);
    let nested = subdir(env.dir(), "src/deep/er");
    assert_eq!(agents_in(&env, &nested, &[], &[]), ["top"]);
    // A writing command found it too: no store is made where it runs.
    let run = run_in(&env, &nested, &["agent", "create", "Second"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!nested.join(".exo").exists());
    assert_eq!(agents_in(&env, env.dir(), &[], &[]), ["top", "second"]);

    // A `.exo` that is a file, or a directory without a store, is passed
    // over; a nearer store wins.
    std::fs::write(nested.join(".exo"), "not a root").unwrap();
    std::fs::create_dir(env.dir().join("src/deep/.exo")).unwrap();
    assert_eq!(agents_in(&env, &nested, &[], &[]), ["top", "second"]);
    let inner = subdir(env.dir(), "src/inner");
    let run = run_in(
        &env,
        &inner,
        &["--root", ".exo", "agent", "create", "In"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let below_inner = subdir(&inner, "x/y");
    assert_eq!(agents_in(&env, &below_inner, &[], &[]), ["in"]);
}

#[test]
fn root_and_exo_root_win_over_the_search() {
    let env = Env::new();
    env.ok(&["agent", "create", "Here", "--slug", "here"]);
    let other = Env::new();
    other.ok(&["agent", "create", "There", "--slug", "there"]);
    let nested = subdir(env.dir(), "a/b");
    let there = other.root();
    assert_eq!(
        agents_in(&env, &nested, &["--root", there.to_str().unwrap()], &[]),
        ["there"]
    );
    assert_eq!(
        agents_in(&env, &nested, &[], &[("EXO_ROOT", &there)]),
        ["there"]
    );
    // --root over EXO_ROOT.
    assert_eq!(
        agents_in(
            &env,
            &nested,
            &["--root", env.root().to_str().unwrap()],
            &[("EXO_ROOT", &there)]
        ),
        ["here"]
    );
}

#[test]
fn a_reading_command_without_a_root_says_where_it_looked() {
    let env = Env::new();
    let nested = subdir(env.dir(), "a/b");
    let args = ["agent", "show", "a"];
    let run = run_in(&env, &nested, &args, &[]);
    assert_one_line_failure(&run, &args);
    assert_eq!(
        run.stderr,
        format!(
            "exo: no exo store found in {} or any parent below {} (EXO_CEILING_DIRECTORIES) \
             (looked for .exo/exo.db); create one with `exo agent create`, or pass --root\n",
            nested.display(),
            env.ceiling().display()
        )
    );
    // Nothing was created anywhere.
    assert!(!nested.join(".exo").exists());
    assert!(!env.root().exists());
    // The ceiling is where it stopped: a store above it is not found.
    let run = run_in(
        &env,
        &nested,
        &args,
        &[(
            "EXO_CEILING_DIRECTORIES",
            &env.dir().canonicalize().unwrap(),
        )],
    );
    assert_eq!(run.code, 1);
    env.ok(&["agent", "create", "Top"]);
    let run = run_in(
        &env,
        &nested,
        &args,
        &[("EXO_CEILING_DIRECTORIES", &subdir(env.dir(), "a"))],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains(&nested.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(agents_in(&env, &nested, &[], &[]), ["top"]);
    // Also for a command that runs tools, which starts itself again with
    // only the variables exo reads (ARCHITECTURE.md, "Secrets").
    let ceiling = subdir(env.dir(), "a");
    let args = ["conversation", "send", "top", "c", "hello"];
    let run = run_in(
        &env,
        &nested,
        &args,
        &[("EXO_CEILING_DIRECTORIES", &ceiling)],
    );
    assert_one_line_failure(&run, &args);
    assert!(
        run.stderr.starts_with(&format!(
            "exo: no exo store found in {} or any parent below {} (EXO_CEILING_DIRECTORIES)",
            nested.display(),
            ceiling.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_writing_command_without_a_root_creates_one_where_it_runs() {
    let env = Env::new();
    let project = subdir(env.dir(), "project");
    let run = run_in(&env, &project, &["agent", "create", "Mine"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(project.join(".exo/exo.db").is_file());
    assert!(!env.root().exists());
    assert_eq!(agents_in(&env, &project, &[], &[]), ["mine"]);
}

/// An `exo daemon` killed when the test ends without stopping it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_daemon_and_a_command_in_different_subdirectories_meet() {
    let env = Env::new();
    env.ok(&["agent", "create", "Top", "--slug", "top"]);
    let server_dir = subdir(env.dir(), "server/side");
    let client_dir = subdir(env.dir(), "client");
    let mut command = env.command(&["daemon"]);
    command
        .current_dir(&server_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut daemon = Daemon(command.spawn().expect("spawn exo daemon"));
    wait_until("the daemon answers in another subdirectory", || {
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "the daemon exited early"
        );
        run_in(&env, &client_dir, &["daemon", "status"], &[]).code == 0
    });
    let status = run_in(&env, &client_dir, &["--json", "daemon", "status"], &[]).json();
    assert_eq!(status["pid"], daemon.0.id());
    assert_eq!(
        status["root"].as_str().unwrap(),
        env.root().canonicalize().unwrap().to_str().unwrap()
    );
    assert!(!server_dir.join(".exo").exists());
    assert_eq!(agents_in(&env, &client_dir, &[], &[]), ["top"]);
    let stopped = run_in(&env, &client_dir, &["daemon", "stop"], &[]);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    let exited = daemon.0.wait().unwrap();
    assert!(exited.success(), "{exited}");
}
