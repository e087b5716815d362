// Finding an exo root and reaching its daemon: the nearest `.exo` holding a
// store, the socket named by `<root>/daemon.lock`, and starting a daemon
// when none runs (spec/exoharness.md, Finding the root; spec/protocol.md,
// Transports).
//
// Key design ideas:
// - The lock file's existence means nothing (it stays after the daemon
//   exits): connecting to the socket it names is the test. A client cannot
//   take the file's shared `flock` from Node, so a daemon that holds the
//   lock but has not bound yet looks like none; `startDaemon` then fails
//   with "already running", which is taken as "wait for it".
// - A daemon started here is detached: it serves the root for every
//   client, the command line included, and outlives the editor, like one
//   started from a shell. `exo daemon --stdio` is the other way: it ties the
//   daemon (or a relay to the running one) to this process's pipes.
// - Every connection asks `daemon/status` first and refuses a daemon that
//   serves another root, as the spec asks of clients; then `initialize`,
//   whose `max_frame_bytes` can raise the connection's frame bound.
// - A daemon started here logs into this user's private state directory
//   (`$XDG_STATE_HOME/exo`, else `~/.local/state/exo`, mode 0700), never
//   a shared one where another user could plant a file or a symlink under
//   a name known in advance: a directory that is not the user's, or that
//   others can write, is refused, and the log is opened without following
//   a symlink. A log past 4 MiB is moved aside (to `.1`) before a start,
//   and only its tail is ever read back.

import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  renameSync,
  statSync,
} from "node:fs";
import { connect as netConnect } from "node:net";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";

import { Connection, ConnectionClosed } from "./rpc";
import type { DaemonStatus } from "./types";

/** A log larger than this is moved aside (to `.1`) before a daemon starts. */
export const LOG_ROTATE_BYTES = 4 * 1024 * 1024;
/** How much of the log's end a failed start reads back. */
const LOG_TAIL_BYTES = 2000;

/** How to find and start the daemon of one root. */
export interface DaemonOptions {
  /** The exo root: the `.exo` directory holding `exo.db`. */
  root: string;
  /** The `exo` program. */
  exo: string;
  /** The environment the daemon runs with (the caller's by default). */
  env?: NodeJS.ProcessEnv;
  /** Where diagnostics go, one line each. */
  log?: (line: string) => void;
  /**
   * The directory for the log of a daemon started here (by default
   * {@link stateDirectory}); it must be the user's, writable by no one else.
   */
  logDir?: string;
  /** How long a daemon has to answer the greeting (by default {@link GREETING_TIMEOUT_MS}). */
  greetingTimeoutMs?: number;
}

/** A connection to the root's daemon and what the daemon said of itself. */
export interface Reached {
  connection: Connection;
  status: DaemonStatus;
  /** `socket`, or `stdio` for `exo daemon --stdio`. */
  transport: "socket" | "stdio";
  /** The `exo daemon --stdio` process, for `stdio`. */
  process?: ChildProcess;
}

/**
 * The exo root for `start`, found as exo finds it: `override` (an `exo.root`
 * setting, or `EXO_ROOT`) when given, else the nearest `.exo` directory
 * holding an `exo.db` from `start` up, not moving up into a directory of
 * `EXO_CEILING_DIRECTORIES`. Undefined when there is none.
 */
export function findRoot(start: string, env: NodeJS.ProcessEnv = process.env, override?: string): string | undefined {
  const given = override !== undefined && override !== "" ? override : env["EXO_ROOT"];
  if (given !== undefined && given !== "") {
    const root = resolve(start, given);
    return existsSync(join(root, "exo.db")) ? canonical(root) : undefined;
  }
  const ceilings = (env["EXO_CEILING_DIRECTORIES"] ?? "")
    .split(":")
    .filter((entry) => isAbsolute(entry))
    .map((entry) => canonical(entry));
  let dir = canonical(resolve(start));
  for (;;) {
    const candidate = join(dir, ".exo");
    if (isDirectory(candidate) && existsSync(join(candidate, "exo.db"))) return canonical(candidate);
    const parent = dirname(dir);
    if (parent === dir || ceilings.includes(parent)) return undefined;
    dir = parent;
  }
}

/**
 * Connects to the root's running daemon: the socket `daemon.lock` names, else
 * `<root>/exo.sock`. Undefined when nobody answers there.
 */
export async function connectToRunning(options: DaemonOptions): Promise<Reached | undefined> {
  const log = options.log ?? (() => undefined);
  const sockets = new Set<string>();
  const named = lockedSocket(options.root);
  if (named !== undefined) sockets.add(named);
  sockets.add(join(options.root, "exo.sock"));
  for (const socket of sockets) {
    const connection = await connectSocket(socket, log);
    if (connection === undefined) continue;
    try {
      const status = await checkedStatus(connection, options.root, options.greetingTimeoutMs);
      return { connection, status, transport: "socket" };
    } catch (err) {
      // A daemon stopping as we greet it answers no more than none does.
      if (err instanceof ConnectionClosed) continue;
      throw err;
    }
  }
  return undefined;
}

/**
 * Starts `exo daemon` for the root, detached, and connects to it once its
 * socket answers (within `timeoutMs`). A daemon another client started
 * meanwhile is used as well.
 */
export async function startDaemon(options: DaemonOptions, timeoutMs = 20_000): Promise<Reached> {
  const log = options.log ?? (() => undefined);
  const logFile = daemonLogFile(options);
  const { fd: logFd, size: offset } = openLog(logFile);
  // Only what this daemon writes counts: the file keeps earlier runs' logs.
  let exited: { code: number | null; signal: string | null } | undefined;
  let spawnError: Error | undefined;
  try {
    log(`starting ${options.exo} daemon --root ${options.root} (log: ${logFile})`);
    const child = spawn(options.exo, ["daemon", "--root", options.root], {
      cwd: dirname(options.root),
      env: options.env ?? process.env,
      detached: true,
      stdio: ["ignore", logFd, logFd],
    });
    child.on("error", (err) => {
      spawnError = err;
    });
    child.on("exit", (code, signal) => {
      exited = { code, signal };
    });
    child.unref();
  } finally {
    closeSync(logFd);
  }
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  for (;;) {
    const reached = await connectToRunning(options);
    if (reached !== undefined) return reached;
    if (spawnError !== undefined) {
      throw new Error(`cannot start ${options.exo}: ${spawnError.message}`);
    }
    if (exited !== undefined && !alreadyRunning(logFile, offset)) {
      throw new Error(`exo daemon exited (${describeExit(exited)}): ${lastLine(logFile, offset)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `exo daemon did not answer on its socket within ${String(timeoutMs / 1000)} s: ${lastLine(logFile, offset)}`,
      );
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 500);
  }
}

/**
 * Starts `exo daemon --stdio` for the root and speaks to it over its pipes:
 * it becomes the root's daemon when none runs (and stops when this
 * connection ends), else relays to the running one.
 */
export async function startStdio(options: DaemonOptions): Promise<Reached> {
  const log = options.log ?? (() => undefined);
  const child = spawn(options.exo, ["daemon", "--stdio", "--root", options.root], {
    cwd: dirname(options.root),
    env: options.env ?? process.env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const failed = new Promise<never>((_, reject) => {
    child.on("error", (err) => {
      reject(new Error(`cannot start ${options.exo}: ${err.message}`));
    });
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
    for (const line of chunk.split("\n")) if (line.trim() !== "") log(`daemon: ${line}`);
  });
  const connection = new Connection(child.stdout, child.stdin, log);
  child.on("exit", () => {
    connection.close(`exo daemon --stdio exited: ${stderr.trim().split("\n").pop() ?? ""}`);
  });
  connection.onClose(() => {
    if (child.exitCode === null) child.stdin.end();
  });
  try {
    const status = await Promise.race([checkedStatus(connection, options.root, options.greetingTimeoutMs), failed]);
    return { connection, status, transport: "stdio", process: child };
  } catch (err) {
    child.kill();
    throw err;
  }
}

/** The socket the lock file names, if it names one. */
function lockedSocket(root: string): string | undefined {
  try {
    const text = readFileSync(join(root, "daemon.lock"), "utf8");
    if (text.trim() === "") return undefined;
    const lock = JSON.parse(text) as { socket?: unknown };
    return typeof lock.socket === "string" ? lock.socket : undefined;
  } catch {
    return undefined;
  }
}

function connectSocket(path: string, log: (line: string) => void): Promise<Connection | undefined> {
  return new Promise((resolvePromise) => {
    if (!existsSync(path)) {
      resolvePromise(undefined);
      return;
    }
    const socket = netConnect(path);
    const failed = () => {
      socket.destroy();
      resolvePromise(undefined);
    };
    socket.once("error", failed);
    socket.once("connect", () => {
      socket.off("error", failed);
      resolvePromise(new Connection(socket, socket, log));
    });
  });
}

/** How long a daemon has to answer the greeting before it counts as hung. */
export const GREETING_TIMEOUT_MS = 10_000;

/**
 * Greets the daemon (`daemon/status`) and checks it serves `root`. One that
 * accepts the connection but does not answer (stopped with Ctrl-Z, wedged)
 * is given up on after `timeoutMs`, with an error saying so.
 */
async function checkedStatus(connection: Connection, root: string, timeoutMs = GREETING_TIMEOUT_MS): Promise<DaemonStatus> {
  const greeting = { timedOut: false };
  const timer = setTimeout(() => {
    greeting.timedOut = true;
    connection.close("no answer to the greeting");
  }, timeoutMs);
  try {
    const status = await connection.request("daemon/status", {});
    if (canonical(status.root) !== canonical(root)) {
      throw new Error(`the daemon on ${status.socket ?? "stdio"} serves ${status.root}, not ${root}`);
    }
    return status;
  } catch (err) {
    connection.close("refused");
    if (greeting.timedOut) throw new Error(`the exo daemon accepted the connection but did not answer within ${String(timeoutMs / 1000)} s`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * This user's directory for the logs of daemons the extension starts:
 * `$XDG_STATE_HOME/exo` (an absolute one), else `~/.local/state/exo`.
 */
export function stateDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const state = env["XDG_STATE_HOME"];
  if (state !== undefined && isAbsolute(state)) return join(state, "exo");
  const home = env["HOME"] !== undefined && isAbsolute(env["HOME"]) ? env["HOME"] : homedir();
  return join(home, ".local", "state", "exo");
}

/** Where a daemon started for `options.root` logs: outside the root (exo refuses a log inside it). */
export function daemonLogFile(options: Pick<DaemonOptions, "root" | "logDir" | "env">): string {
  const dir = options.logDir ?? stateDirectory(options.env ?? process.env);
  const hash = createHash("sha256").update(options.root).digest("hex").slice(0, 16);
  return join(dir, `vscode-daemon-${hash}.log`);
}

/**
 * Opens the log for appending, in a private directory (made 0700 when
 * missing), moving a large one aside first; never through a symlink.
 * Returns the descriptor and the size the log had.
 */
function openLog(file: string): { fd: number; size: number } {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkPrivate(dir);
  try {
    const seen = lstatSync(file);
    if (seen.isFile() && seen.size > LOG_ROTATE_BYTES) renameSync(file, `${file}.1`);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ELOOP" ? "it is a symbolic link" : err instanceof Error ? err.message : String(err);
    throw new Error(`cannot open the daemon log ${file}: ${why}`);
  }
  const opened = fstatSync(fd);
  if (!opened.isFile()) {
    closeSync(fd);
    throw new Error(`cannot open the daemon log ${file}: not a regular file`);
  }
  return { fd, size: opened.size };
}

/** Refuses a log directory another user owns, or that others may write. */
function checkPrivate(dir: string): void {
  const found = statSync(dir);
  if (!found.isDirectory()) throw new Error(`the daemon log directory ${dir} is not a directory`);
  if (typeof process.getuid !== "function") return;
  const uid = process.getuid();
  if (found.uid !== uid) {
    throw new Error(`refusing the daemon log directory ${dir}: it belongs to uid ${String(found.uid)}, not to this user (uid ${String(uid)})`);
  }
  if ((found.mode & 0o022) !== 0) {
    throw new Error(`refusing the daemon log directory ${dir}: others may write to it (mode ${(found.mode & 0o777).toString(8)}); chmod 700 it`);
  }
}

function alreadyRunning(logFile: string, offset: number): boolean {
  return /already running/.test(tail(logFile, offset));
}

function lastLine(logFile: string, offset: number): string {
  const lines = tail(logFile, offset).trim().split("\n");
  return lines[lines.length - 1] ?? "";
}

/** What `file` holds after byte `offset`, at most its last {@link LOG_TAIL_BYTES}: only those are read. */
function tail(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return "";
  }
  try {
    const size = fstatSync(fd).size;
    const from = Math.max(offset, size - LOG_TAIL_BYTES, 0);
    const bytes = Buffer.alloc(Math.max(size - from, 0));
    let read = 0;
    while (read < bytes.length) {
      const n = readSync(fd, bytes, read, bytes.length - read, from + read);
      if (n === 0) break;
      read += n;
    }
    return bytes.subarray(0, read).toString("utf8");
  } catch {
    return "";
  } finally {
    closeSync(fd);
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

function describeExit(exit: { code: number | null; signal: string | null }): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `status ${String(exit.code)}`;
}

function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
