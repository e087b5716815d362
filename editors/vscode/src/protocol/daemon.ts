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
//   serves another root, as the spec asks of clients.

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, realpathSync, statSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";

import { Connection } from "./rpc";
import type { DaemonStatus } from "./types";

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
  /** The directory for the log of a daemon started here (the system's temporary one by default). */
  logDir?: string;
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
    const status = await checkedStatus(connection, options.root);
    return { connection, status, transport: "socket" };
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
  const logFile = daemonLogFile(options.root, options.logDir ?? tmpdir());
  const logFd = openSync(logFile, "a");
  // Only what this daemon writes counts: the file keeps earlier runs' logs.
  const offset = fileSize(logFile);
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
    const status = await Promise.race([checkedStatus(connection, options.root), failed]);
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

async function checkedStatus(connection: Connection, root: string): Promise<DaemonStatus> {
  try {
    const status = await connection.request("daemon/status", {});
    if (canonical(status.root) !== canonical(root)) {
      throw new Error(`the daemon on ${status.socket ?? "stdio"} serves ${status.root}, not ${root}`);
    }
    return status;
  } catch (err) {
    connection.close("refused");
    throw err;
  }
}

/** Where a daemon started here logs: outside the root (exo refuses a log inside it). */
function daemonLogFile(root: string, dir: string): string {
  let hash = 0;
  for (const char of root) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  const uid = typeof process.getuid === "function" ? String(process.getuid()) : "user";
  return join(dir, `exo-vscode-daemon-${uid}-${hash.toString(16)}.log`);
}

function alreadyRunning(logFile: string, offset: number): boolean {
  return /already running/.test(tail(logFile, offset));
}

function lastLine(logFile: string, offset: number): string {
  const lines = tail(logFile, offset).trim().split("\n");
  return lines[lines.length - 1] ?? "";
}

/** What `file` holds after byte `offset`, at most its last 2000 bytes. */
function tail(file: string, offset: number): string {
  try {
    const bytes = readFileSync(file);
    return bytes.subarray(Math.max(offset, bytes.length - 2000)).toString("utf8");
  } catch {
    return "";
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
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
