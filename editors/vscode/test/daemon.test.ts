// The log of a daemon the extension starts: in this user's private state
// directory, never through a symlink, rotated when large, and only its
// tail read back when a start fails. Each test has its own scratch root
// (and HOME) and stops its daemons.

import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test, type TestContext } from "node:test";

import { connectToRunning, daemonLogFile, LOG_ROTATE_BYTES, startDaemon, stateDirectory, type DaemonOptions } from "../src/protocol/daemon";
import { EXO, Scratch } from "./support";

function scratch(t: TestContext): { s: Scratch; options: DaemonOptions } {
  const s = new Scratch();
  t.after(() => s.dispose());
  s.exo(["agent", "create", "A", "--slug", "a"]);
  const env = { ...s.env, XDG_STATE_HOME: join(s.dir, "state") };
  return { s, options: { root: s.root, exo: EXO, env } };
}

test("the log's directory is $XDG_STATE_HOME/exo, else ~/.local/state/exo", () => {
  assert.equal(stateDirectory({ XDG_STATE_HOME: "/x/state", HOME: "/home/u" }), "/x/state/exo");
  assert.equal(stateDirectory({ XDG_STATE_HOME: "relative", HOME: "/home/u" }), "/home/u/.local/state/exo");
  assert.equal(stateDirectory({ HOME: "/home/u" }), "/home/u/.local/state/exo");
});

test("a daemon started here logs into a private directory of this user", async (t) => {
  const { s, options } = scratch(t);
  const log = daemonLogFile(options);
  assert.equal(dirname(log), join(s.dir, "state", "exo"));
  const reached = await startDaemon(options);
  reached.connection.close();
  assert.equal(statSync(dirname(log)).mode & 0o777, 0o700);
  assert.equal(statSync(log).mode & 0o777, 0o600);
});

test("a log past 4 MiB is moved aside before a start", async (t) => {
  const { options } = scratch(t);
  const log = daemonLogFile(options);
  mkdirSync(dirname(log), { recursive: true, mode: 0o700 });
  const old = `${"old line\n".repeat(Math.ceil(LOG_ROTATE_BYTES / 9))}the last old line\n`;
  writeFileSync(log, old, { mode: 0o600 });
  const reached = await startDaemon(options);
  reached.connection.close();
  assert.equal(readFileSync(`${log}.1`, "utf8"), old);
  assert.ok(statSync(log).size < LOG_ROTATE_BYTES);
});

test("a log that is a symlink is refused, and what it points to is left alone", async (t) => {
  const { s, options } = scratch(t);
  const log = daemonLogFile(options);
  mkdirSync(dirname(log), { recursive: true, mode: 0o700 });
  const victim = join(s.dir, "victim.txt");
  writeFileSync(victim, "precious\n");
  symlinkSync(victim, log);
  await assert.rejects(startDaemon(options), /^Error: cannot open the daemon log .*: it is a symbolic link$/);
  assert.equal(readFileSync(victim, "utf8"), "precious\n");
  assert.equal(await connectToRunning(options), undefined, "no daemon was started");
});

test("a log directory others may write to is refused", async (t) => {
  const { options } = scratch(t);
  const dir = dirname(daemonLogFile(options));
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  await assert.rejects(startDaemon(options), /refusing the daemon log directory .*: others may write to it/);
  assert.equal(await connectToRunning(options), undefined, "no daemon was started");
});

const root = typeof process.getuid === "function" && process.getuid() === 0;

test("a log directory of another user is refused", { skip: root ? false : "needs root, to give a directory away" }, async (t) => {
  const { options } = scratch(t);
  const dir = dirname(daemonLogFile(options));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, 65534, 65534);
  await assert.rejects(startDaemon(options), /refusing the daemon log directory .*: it belongs to uid 65534/);
});

test("a daemon that fails to start is reported by its own last log line, not an earlier run's", async (t) => {
  const { s, options } = scratch(t);
  // A store exo cannot open: the daemon exits at once, saying why.
  const broken = join(s.dir, "broken", ".exo");
  mkdirSync(broken, { recursive: true });
  writeFileSync(join(broken, "exo.db"), "not a store\n");
  const failing = { ...options, root: broken };
  const log = daemonLogFile(failing);
  mkdirSync(dirname(log), { recursive: true, mode: 0o700 });
  writeFileSync(log, "an earlier run's last words\n", { mode: 0o600 });
  await assert.rejects(startDaemon(failing), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /^exo daemon exited \(status 1\): .*is not an exo store$/);
    return true;
  });
  assert.ok(existsSync(log));
});

test("a daemon that accepts connections but never answers is given up on, saying so", async (t) => {
  const { options } = scratch(t);
  const reached = await startDaemon(options);
  const pid = reached.status.pid;
  reached.connection.close();
  // Stopped as with Ctrl-Z: the kernel still accepts connections on its socket.
  process.kill(pid, "SIGSTOP");
  t.after(() => {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // Stopped already by the scratch root's clean-up.
    }
  });
  const started = Date.now();
  await assert.rejects(
    connectToRunning({ ...options, greetingTimeoutMs: 500 }),
    /^Error: the exo daemon accepted the connection but did not answer within 0.5 s$/,
  );
  assert.ok(Date.now() - started < 10_000);
  process.kill(pid, "SIGCONT");
  const again = await connectToRunning(options);
  assert.ok(again !== undefined, "the daemon answers again once continued");
  assert.equal(again.status.pid, pid);
  again.connection.close();
});
