//! The reaper: a small process that kills the shell commands an exo process
//! started when that process dies, however it dies (`kill -9` included).
//!
//! A command runs in its own process group, killed by [`crate::shell`] when
//! the call ends. But a process killed with SIGKILL runs no code, and
//! neither `PR_SET_PDEATHSIG` (tied to the spawning *thread*, which for a
//! tokio blocking-pool thread exits when idle, and not inherited by
//! grandchildren) nor the process group itself stops a command's
//! processes then: they would go on changing a workspace whose turn is
//! recorded as interrupted, or that has since been rewound.
//!
//! So each exo process starts, on its first shell command, one reaper:
//! `/bin/sh` running [`SCRIPT`] in a process group of its own (a Ctrl-C at
//! the terminal does not reach it, and it ignores SIGINT, SIGTERM, SIGHUP
//! and SIGQUIT besides), reading orders from a pipe whose write end only
//! this process holds (it is close-on-exec, so no command inherits it):
//! `+PGID` after a command's group was started, `-PGID` once it was
//! killed. The pipe reaches end-of-file only when this process is gone,
//! and then the reaper sends SIGKILL to every group still registered, and
//! exits. It uses only shell built-ins (`read`, `case`, `kill`), so it runs
//! with an empty environment.
//!
//! The window left is between a command's start and its registration
//! (the write of one short line): a process killed exactly then leaves
//! that command running.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

/// What the reaper runs: it keeps the registered groups in `groups`
/// (space-separated, with a space at each end so that ` PGID ` finds a
/// whole number) and kills them all at end-of-file.
const SCRIPT: &str = r#"trap '' INT TERM HUP QUIT PIPE
groups=' '
while read -r order; do
  case $order in
    +[0-9]*) groups="$groups${order#+} " ;;
    -[0-9]*)
      group=${order#-}
      case $groups in
        *" $group "*) groups="${groups%% $group *} ${groups#* $group }" ;;
      esac ;;
  esac
done
for group in $groups; do
  kill -s KILL -- "-$group" 2>/dev/null
done
"#;

/// The shell the reaper runs in.
const SHELL: &str = "/bin/sh";

/// This process's reaper, started on first use, and the groups it guards.
static REAPER: Mutex<Guarded> = Mutex::new(Guarded {
    reaper: None,
    groups: BTreeSet::new(),
});

struct Guarded {
    reaper: Option<Reaper>,
    /// Every registered group, so that a reaper started anew (the last one
    /// died) is told of them all.
    groups: BTreeSet<i32>,
}

struct Reaper {
    process: Child,
    /// The write end of the order pipe; close-on-exec.
    orders: ChildStdin,
}

fn guarded() -> MutexGuard<'static, Guarded> {
    REAPER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Guarded {
    /// A running reaper: the one there is, or a new one told of every
    /// registered group.
    fn reaper(&mut self) -> io::Result<&mut Reaper> {
        let running = match self.reaper.as_mut() {
            Some(reaper) => matches!(reaper.process.try_wait(), Ok(None)),
            None => false,
        };
        if !running {
            self.reaper = None;
            let mut reaper = Reaper::start()?;
            for group in &self.groups {
                writeln!(reaper.orders, "+{group}")?;
            }
            self.reaper = Some(reaper);
        }
        Ok(self.reaper.as_mut().expect("a reaper was just started"))
    }

    /// Sends one order, starting a new reaper once if the last one is gone
    /// (the write fails with a broken pipe).
    fn send(&mut self, order: &str) -> io::Result<()> {
        let sent = writeln!(self.reaper()?.orders, "{order}");
        match sent {
            Ok(()) => Ok(()),
            Err(_) => {
                if let Some(mut dead) = self.reaper.take() {
                    let _ = dead.process.kill();
                    let _ = dead.process.wait();
                }
                // The new reaper is told of every registered group, this
                // order's included.
                self.reaper().map(|_| ())
            }
        }
    }
}

impl Reaper {
    fn start() -> io::Result<Reaper> {
        let mut process = Command::new(SHELL)
            .arg("-c")
            .arg(SCRIPT)
            .arg("exo-reaper")
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let orders = process
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("the reaper has no stdin"))?;
        Ok(Reaper { process, orders })
    }
}

/// Makes sure a reaper runs, so that a command started next can be
/// guarded.
pub fn ready() -> io::Result<()> {
    guarded().reaper().map(|_| ())
}

/// Has process group `group` killed if this process dies before
/// [`release`].
pub fn guard(group: i32) -> io::Result<()> {
    let mut guarded = guarded();
    guarded.groups.insert(group);
    guarded.send(&format!("+{group}"))
}

/// Forgets process group `group`, which was killed.
pub fn release(group: i32) {
    let mut guarded = guarded();
    if guarded.groups.remove(&group) {
        // A reaper that is gone has nothing to forget.
        if let Some(reaper) = guarded.reaper.as_mut() {
            let _ = writeln!(reaper.orders, "-{group}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use super::*;

    /// `sleep 600` in a process group of its own.
    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn group(child: &Child) -> i32 {
        i32::try_from(child.id()).unwrap()
    }

    /// Waits for `child` to exit and says whether SIGKILL ended it.
    fn killed(child: &mut Child) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.signal() == Some(9);
            }
            assert!(Instant::now() < deadline, "{} still runs", child.id());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn at_end_of_file_the_registered_groups_are_killed_and_the_released_spared() {
        let mut reaper = Reaper::start().unwrap();
        let (mut first, mut released, mut last) = (sleeper(), sleeper(), sleeper());
        for order in [
            format!("+{}", group(&first)),
            format!("+{}", group(&released)),
            format!("+{}", group(&last)),
            format!("-{}", group(&released)),
        ] {
            writeln!(reaper.orders, "{order}").unwrap();
        }
        // The only write end goes, as when exo dies.
        let Reaper {
            mut process,
            orders,
        } = reaper;
        drop(orders);
        assert!(process.wait().unwrap().success());
        assert!(killed(&mut first));
        assert!(killed(&mut last));
        assert_eq!(released.try_wait().unwrap(), None, "released, so spared");
        released.kill().unwrap();
        released.wait().unwrap();
    }

    #[test]
    fn a_reaper_that_died_is_replaced_and_told_of_every_group() {
        let mut first = sleeper();
        guard(group(&first)).unwrap();
        {
            let mut guarded = guarded();
            let reaper = guarded.reaper.as_mut().unwrap();
            reaper.process.kill().unwrap();
            reaper.process.wait().unwrap();
        }
        let mut second = sleeper();
        guard(group(&second)).unwrap();
        let Reaper {
            mut process,
            orders,
        } = guarded().reaper.take().expect("a new reaper");
        drop(orders);
        assert!(process.wait().unwrap().success());
        assert!(killed(&mut first), "the new reaper knew the first group");
        assert!(killed(&mut second));
        release(group(&first));
        release(group(&second));
    }
}
