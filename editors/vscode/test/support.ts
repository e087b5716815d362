// Test support: a scratch exo root with its own HOME and key, the real
// `exo` binary (EXO_BIN, else target/debug/exo of this repository), and
// waiting by polling, never by sleeping a guessed time.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The exo binary under test. */
export const EXO = process.env["EXO_BIN"] ?? join(REPO, "target/debug/exo");
if (!existsSync(EXO)) {
  throw new Error(`these tests run the real exo binary, and ${EXO} is missing: cargo build -p exo --bin exo, or set EXO_BIN`);
}

/** A fixed key, so secrets (none here) and the daemon never touch ~/.config. */
const KEY = "5a".repeat(32);

/** A temporary project with an exo root in it; `dispose` stops its daemons. */
export class Scratch {
  readonly dir: string;
  /** The project directory: holds `.exo`, and is the conversations' workspace. */
  readonly project: string;
  readonly env: NodeJS.ProcessEnv;

  constructor() {
    this.dir = realpathSync(mkdtempSync(join(tmpdir(), "exo-vscode-test-")));
    this.project = join(this.dir, "project");
    mkdirSync(this.project);
    const env: NodeJS.ProcessEnv = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith("EXO_")),
    );
    Object.assign(env, {
      HOME: this.dir,
      XDG_CONFIG_HOME: join(this.dir, "config"),
      XDG_CACHE_HOME: join(this.dir, "cache"),
      XDG_DATA_HOME: join(this.dir, "data"),
      EXO_ENCRYPTION_KEY: KEY,
      EXO_CEILING_DIRECTORIES: dirname(this.dir),
      NO_COLOR: "1",
    });
    this.env = env;
  }

  /** The exo root (once an `exo` command made it). */
  get root(): string {
    return join(this.project, ".exo");
  }

  /** Runs `exo ARGS` in the project; returns stdout, throws on failure. */
  exo(args: string[], input?: string): string {
    const run = spawnSync(EXO, args, { cwd: this.project, env: this.env, input: input ?? "", encoding: "utf8" });
    if (run.error) throw run.error;
    if (run.status !== 0) {
      throw new Error(`exo ${args.join(" ")} exited ${String(run.status)}: ${run.stderr}`);
    }
    return run.stdout;
  }

  /** Runs `exo --json ARGS` and parses its output. */
  json(args: string[], input?: string): unknown {
    return JSON.parse(this.exo(["--json", ...args], input));
  }

  /** Appends events from another process (`exo conversation append`). */
  append(agent: string, conversation: string, events: object[]): void {
    this.exo(["conversation", "append", agent, conversation], events.map((event) => JSON.stringify(event)).join("\n"));
  }

  /** Registers a scripted model answering with `responses` (spec/models.md). */
  scriptedModel(name: string, responses: object[]): void {
    const script = join(this.dir, `${name}.json`);
    writeFileSync(script, JSON.stringify({ chunk_size: 4, responses }));
    this.exo(["model", "register", name, "--provider", "scripted", "--base-url", script]);
  }

  /** Starts `exo daemon` from outside the session under test (someone restarting it). */
  startDaemon(): void {
    const child = spawn(EXO, ["daemon"], { cwd: this.project, env: this.env, detached: true, stdio: "ignore" });
    child.unref();
  }

  /** The pid of the daemon `daemon.lock` names, if it still runs. */
  daemonPid(): number | undefined {
    try {
      const lock = JSON.parse(readFileSync(join(this.root, "daemon.lock"), "utf8")) as { pid?: number };
      if (typeof lock.pid !== "number") return undefined;
      process.kill(lock.pid, 0);
      return lock.pid;
    } catch {
      return undefined;
    }
  }

  /** Stops the root's daemon, if one runs, and waits for it to go. */
  async stopDaemon(): Promise<void> {
    const pid = this.daemonPid();
    if (pid === undefined) return;
    spawnSync(EXO, ["daemon", "stop"], { cwd: this.project, env: this.env, timeout: 30_000 });
    try {
      await waitFor(() => this.daemonPid() !== pid || undefined, 30_000, "the daemon to stop");
    } catch {
      process.kill(pid, "SIGKILL");
    }
  }

  async dispose(): Promise<void> {
    await this.stopDaemon();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Polls `check` every 20 ms until it returns something other than
 * `undefined` or `false`, and returns it; fails after `timeoutMs`.
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  what = "a condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 20));
  }
}
