//! Files named on the command line: `artifact put FILE` reads at most the
//! artifact limit from anything (a device, a FIFO), `artifact get -o` and
//! `daemon --log-file` never write inside the exo root, and `-o` replaces
//! its file whole or not at all.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{assert_one_line_failure, to_run, Env, Run};

/// Longer than any of these commands takes; a command still running then
/// is stuck (reading forever, waiting on a FIFO, serving as a daemon).
const STUCK: Duration = Duration::from_secs(120);

/// Runs a command, killing it and failing the test if it is stuck.
fn run_unstuck(mut command: Command, what: &str) -> Run {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exo");
    let deadline = Instant::now() + STUCK;
    while child.try_wait().expect("wait for exo").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: exo was still running after {STUCK:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    to_run(child.wait_with_output().expect("exo's output"))
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

fn artifact_count(env: &Env) -> usize {
    env.json(&["artifact", "list", "a", "c"])["artifacts"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn an_endless_device_is_cut_at_the_artifact_limit() {
    let env = Env::new();
    env.agent_and_conversation();
    let before = env.events("a", "c").len();
    let args = ["artifact", "put", "a", "c", "zeros", "/dev/zero"];
    let run = run_unstuck(env.command(&args), "put /dev/zero");
    assert_one_line_failure(&run, &args);
    assert_eq!(
        run.stderr.trim_end(),
        "exo: /dev/zero is larger than the 32 MiB artifact limit"
    );
    assert_eq!(artifact_count(&env), 0);
    assert_eq!(env.events("a", "c").len(), before);
}

#[test]
fn a_fifo_that_nobody_writes_is_refused_not_waited_on() {
    let env = Env::new();
    env.agent_and_conversation();
    let fifo = env.dir().join("fifo");
    mkfifo(&fifo);
    let args = ["artifact", "put", "a", "c", "p", fifo.to_str().unwrap()];
    let run = run_unstuck(env.command(&args), "put FIFO without a writer");
    assert_one_line_failure(&run, &args);
    assert!(
        run.stderr
            .contains("is a FIFO that no process opened for writing within 5 s"),
        "{}",
        run.stderr
    );
    assert_eq!(artifact_count(&env), 0);
}

/// A FIFO with a writer is read (as process substitution, `<(cmd)`, is):
/// what the writer wrote becomes the artifact, and a writer that never
/// stops is cut at the limit.
#[test]
fn a_fifo_with_a_writer_is_read_up_to_the_limit() {
    let env = Env::new();
    env.agent_and_conversation();
    let fifo = env.dir().join("fifo");
    mkfifo(&fifo);
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        // Blocks until exo opens the FIFO for reading.
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all(b"from a pipe\n").unwrap();
    });
    let args = ["artifact", "put", "a", "c", "piped", fifo.to_str().unwrap()];
    let run = run_unstuck(env.command(&args), "put FIFO with a writer");
    assert_eq!(run.code, 0, "{}", run.stderr);
    writer.join().unwrap();
    let got = env.ok(&["artifact", "get", "a", "c", "piped"]);
    assert_eq!(got.stdout, "from a pipe\n");

    let path = fifo.clone();
    let endless = std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let chunk = vec![b'x'; 1 << 16];
        // Ends when exo stops reading and closes the FIFO.
        let mut written = 0u64;
        while file.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        written
    });
    let args = [
        "artifact",
        "put",
        "a",
        "c",
        "endless",
        fifo.to_str().unwrap(),
    ];
    let run = run_unstuck(env.command(&args), "put FIFO with an endless writer");
    assert_one_line_failure(&run, &args);
    assert!(
        run.stderr
            .contains("is larger than the 32 MiB artifact limit"),
        "{}",
        run.stderr
    );
    assert!(endless.join().unwrap() > 32 << 20);
    assert_eq!(artifact_count(&env), 1);
}

#[test]
fn output_files_are_never_written_inside_the_root() {
    let env = Env::new();
    env.agent_and_conversation();
    env.run_with(&["artifact", "put", "a", "c", "p"], b"artifact bytes", &[]);
    assert_eq!(artifact_count(&env), 1);
    let root = env.root();
    let db = root.join("exo.db");
    let before = std::fs::read(&db).unwrap();
    std::os::unix::fs::symlink(&db, env.dir().join("to-db")).unwrap();
    std::os::unix::fs::symlink(&root, env.dir().join("to-root")).unwrap();
    std::os::unix::fs::symlink(root.join("new-file"), env.dir().join("dangling")).unwrap();
    let through_parent = root.join("..").join(".exo").join("exo.db");
    let outputs = [
        db.to_str().unwrap().to_string(),
        ".exo/exo.db".to_string(),
        through_parent.to_str().unwrap().to_string(),
        "to-db".to_string(),
        "to-root/exo.db".to_string(),
        "to-root/new-file".to_string(),
        "dangling".to_string(),
        root.to_str().unwrap().to_string(),
    ];
    for output in &outputs {
        let err = env.fails(&["artifact", "get", "a", "c", "p", "-o", output]);
        assert!(
            err.contains(&format!("the output file {output} is inside the exo root")),
            "{output}: {err}"
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert!(!root.join("new-file").exists());
    // The store still works.
    assert_eq!(
        env.ok(&["artifact", "get", "a", "c", "p"]).stdout,
        "artifact bytes"
    );
    // Outside the root, through a symlink: the file it leads to is written
    // and the link stays a link.
    std::fs::create_dir(env.dir().join("out")).unwrap();
    std::os::unix::fs::symlink("out/real", env.dir().join("link")).unwrap();
    env.ok(&["artifact", "get", "a", "c", "p", "-o", "link"]);
    assert_eq!(
        std::fs::read(env.dir().join("out/real")).unwrap(),
        b"artifact bytes"
    );
    assert!(std::fs::symlink_metadata(env.dir().join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// `-o` replaces the file whole: a get that dies while writing (here the
/// file size limit kills it) leaves the old file as it was, and a finished
/// one keeps its permissions.
#[test]
fn output_files_are_replaced_whole() {
    let env = Env::new();
    env.agent_and_conversation();
    let big = vec![b'b'; 1 << 20];
    let put = env.run_with(&["artifact", "put", "a", "c", "big"], &big, &[]);
    assert_eq!(put.code, 0, "{}", put.stderr);
    let put = env.run_with(&["artifact", "put", "a", "c", "small"], b"small", &[]);
    assert_eq!(put.code, 0, "{}", put.stderr);
    let out = env.dir().join("out.txt");
    std::fs::write(&out, b"the old contents").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();

    // At most 128 blocks (64 or 128 KiB, by the shell's block size): far
    // less than the artifact, more than the store writes to open.
    let limited = env.shell(
        r#"ulimit -f 128 && exec "$0" "$@""#,
        &["artifact", "get", "a", "c", "big", "-o", "out.txt"],
    );
    let run = run_unstuck(limited, "get under a file size limit");
    assert_ne!(run.code, 0, "the get should have died: {}", run.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"the old contents");

    env.ok(&["artifact", "get", "a", "c", "small", "-o", "out.txt"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"small");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn the_daemon_log_file_is_never_inside_the_root() {
    let env = Env::new();
    env.agent_and_conversation();
    let db = env.root().join("exo.db");
    let before = std::fs::read(&db).unwrap();
    for log in [".exo/exo.db", ".exo/daemon.log"] {
        let args = ["daemon", "--log-file", log];
        let run = run_unstuck(env.command(&args), "daemon with a log file in the root");
        assert_one_line_failure(&run, &args);
        assert!(
            run.stderr
                .contains(&format!("the log file {log} is inside the exo root")),
            "{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert!(!env.root().join("daemon.log").exists());
}

/// The encryption key's directory is exo's too: a file written over the
/// key would make every secret unreadable.
#[test]
fn output_files_are_never_written_over_the_key() {
    let env = Env::new();
    env.agent_and_conversation();
    env.run_with(&["artifact", "put", "a", "c", "p"], b"artifact bytes", &[]);
    let key_dir = env.config_dir().join("exo");
    std::fs::create_dir_all(&key_dir).unwrap();
    let key = key_dir.join("key");
    std::fs::write(&key, "0123").unwrap();
    for output in [key.clone(), key_dir.join("other")] {
        let err = env.fails(&[
            "artifact",
            "get",
            "a",
            "c",
            "p",
            "-o",
            output.to_str().unwrap(),
        ]);
        assert!(err.contains("holds exo's encryption key"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "0123");
    assert!(!key_dir.join("other").exists());
}
