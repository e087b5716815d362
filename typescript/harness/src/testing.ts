// A fake exo for testing harness modules: it starts the real runner as a
// child process and plays exo's part over its stdin and stdout, with an
// in-memory conversation behind the host capabilities.
//
//     import { FakeHost } from "@exo/harness/testing";
//
//     const host = FakeHost.start();
//     await host.initialize("/abs/path/my-harness.ts");
//     host.scriptModel({ text: "Hello." });
//     const answer = await host.turn("Hi");   // {status: "completed", text: "Hello."}
//     await host.close();
//
// Every message the runner sends is kept in `host.received`; `waitFor`
// resolves when one matching a predicate arrives, so tests synchronise on
// messages, never on time. Each host method has a default handler (below)
// that `handle(method, fn)` replaces.

import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";

import { isEvent } from "./events.js";

import type {
  ApprovalAskParams,
  ApprovalAskResult,
  Artifact,
  ContentPart,
  Event,
  HarnessTurnParams,
  HistoryItems,
  HostEventsListParams,
  ModelCompleteParams,
  ModelCompleteResult,
  ModelItem,
  ToolRunParams,
  ToolRunResult,
  ToolSpec,
} from "./protocol.js";

/** A JSON-RPC message as it travels. */
export interface Message {
  jsonrpc?: string;
  id?: string | number | null;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: Record<string, unknown> };
}

/** A host method's handler: its value is the result; a thrown
 * {@link HostError} is answered as that error. */
export type HostHandler = (params: never, message: Message) => unknown;

/** An error a handler answers with. */
export class HostError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** One scripted model answer. */
export interface ScriptedAnswer {
  text?: string;
  reasoning?: string;
  tool_calls?: { call_id?: string; name: string; arguments?: unknown }[];
  /** Text deltas to stream first (the whole `text` in one delta when
   * absent). */
  deltas?: string[];
  stop?: string;
  usage?: { input_tokens: number; output_tokens: number };
}

/** Options of {@link FakeHost.start}. */
export interface StartOptions {
  /** The runner to start: a `dist/runner.js`; this package's by default. */
  runner?: string;
  /** Arguments for node before the runner (e.g. `--import tsx`). */
  nodeArgs?: string[];
  /** The runner's working directory. */
  cwd?: string;
  /** The runner's environment (exo's clean one by default: PATH, HOME). */
  env?: NodeJS.ProcessEnv;
}

/** The runtime's `dist/runner.js`, next to this file's package. */
export const RUNNER_PATH = fileURLToPath(new URL("../dist/runner.js", import.meta.url));

/** exo's six tools, as `harness/turn` offers them (descriptions short). */
export const EXO_TOOLS: ToolSpec[] = ["shell", "read_file", "write_file", "edit_file", "list_files", "grep"].map((name) => ({
  name,
  description: `exo's ${name} tool`,
  parameters: { type: "object", properties: {} },
}));

/** A fake exo driving one runner. */
export class FakeHost {
  readonly process: ChildProcessWithoutNullStreams;
  /** Every message the runner sent, in order. */
  readonly received: Message[] = [];
  /** The conversation's events, as the fake records them. */
  readonly events: Event[] = [];
  /** What the runner wrote to stdout that was not a JSON-RPC message. */
  readonly garbage: string[] = [];
  /** The model calls the runner made (their params). */
  readonly modelCalls: ModelCompleteParams[] = [];
  /** The answers `model/complete` gives, in order. */
  readonly script: ScriptedAnswer[] = [];
  /** Decisions `approval/ask` gives, in order (then `allow_once`). */
  readonly approvals: ApprovalAskResult["decision"][] = [];
  /** The ids this fake uses. */
  readonly ids = {
    agent: randomUUID(),
    conversation: randomUUID(),
    session: randomUUID(),
    turn: randomUUID(),
  };
  /** Artifacts by path: every version's bytes. */
  readonly artifacts = new Map<string, { artifact: Artifact; bytes: Buffer }[]>();
  /** The workspace the fake says the conversation has. */
  workspace: string | undefined = "/tmp/exo-fake-workspace";
  stderr = "";

  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #handlers = new Map<string, HostHandler>();
  readonly #stderrWaiters: { text: string; resolve: () => void }[] = [];
  readonly #waiters: { predicate: (m: Message) => boolean; resolve: (m: Message) => void }[] = [];
  readonly #responses = new Map<string | number, (m: Message) => void>();
  #nextId = 1;
  #buffer = "";

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.process = child;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      this.#buffer += chunk;
      for (;;) {
        const newline = this.#buffer.indexOf("\n");
        if (newline < 0) break;
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        this.#receive(line);
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      this.stderr += chunk;
      for (let i = this.#stderrWaiters.length - 1; i >= 0; i--) {
        const waiter = this.#stderrWaiters[i];
        if (waiter !== undefined && this.stderr.includes(waiter.text)) {
          this.#stderrWaiters.splice(i, 1);
          waiter.resolve();
        }
      }
    });
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        resolve({ code, signal });
      });
    });
    this.#defaultHandlers();
  }

  /** Starts a runner. */
  static start(options: StartOptions = {}): FakeHost {
    const env = options.env ?? {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: process.env["HOME"] ?? "/tmp",
      EXO_HARNESS: "1",
    };
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.runner ?? RUNNER_PATH], {
      cwd: options.cwd ?? process.cwd(),
      env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    return new FakeHost(child);
  }

  // --------------------------------------------------------- messaging

  /** Writes a raw line to the runner's stdin. */
  writeLine(line: string): void {
    this.process.stdin.write(`${line}\n`);
  }

  /** Sends a message. */
  send(message: Message): void {
    this.writeLine(JSON.stringify({ jsonrpc: "2.0", ...message }));
  }

  /** Sends a request; resolves with the runner's response message. */
  request(method: string, params?: unknown): { id: number; response: Promise<Message> } {
    const id = this.#nextId++;
    const response = new Promise<Message>((resolve) => {
      this.#responses.set(id, resolve);
    });
    this.send({ id, method, params });
    return { id, response };
  }

  /** Sends a notification. */
  notify(method: string, params?: unknown): void {
    this.send({ method, params });
  }

  /** Resolves with the first message (received already, or later) that
   * matches; `after` skips the first `after` received messages. */
  waitFor(predicate: (message: Message) => boolean, after = 0): Promise<Message> {
    const found = this.received.slice(after).find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => {
      this.#waiters.push({ predicate, resolve });
    });
  }

  /** Resolves once the runner's stderr holds `text` (stderr and stdout
   * are separate pipes: what a turn logged may arrive after its answer). */
  waitForStderr(text: string): Promise<void> {
    if (this.stderr.includes(text)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#stderrWaiters.push({ text, resolve });
    });
  }

  /** Replaces the handler of a host method. */
  handle(method: string, handler: HostHandler): void {
    this.#handlers.set(method, handler);
  }

  /** Queues model answers. */
  scriptModel(...answers: ScriptedAnswer[]): void {
    this.script.push(...answers);
  }

  // -------------------------------------------------------- exo's part

  /** `initialize` with `module`; resolves with the response message. */
  initialize(module: string, overrides: Record<string, unknown> = {}): Promise<Message> {
    return this.request("initialize", {
      protocol_version: "1",
      module,
      agent: { id: this.ids.agent, slug: "agent", name: "Agent" },
      conversation: {
        id: this.ids.conversation,
        slug: "conversation",
        ...(this.workspace === undefined ? {} : { workspace: this.workspace }),
      },
      ...overrides,
    }).response;
  }

  /** Begins a turn as exo does (records `turn_started` and the input) and
   * sends `harness/turn`; `response` is the runner's answer message. */
  startTurn(input: string | ContentPart[], overrides: Partial<HarnessTurnParams> = {}): { id: number; turn: string; response: Promise<Message> } {
    const turn = randomUUID();
    this.ids.turn = turn;
    const parts: ContentPart[] = typeof input === "string" ? [{ type: "text", text: input }] : input;
    this.record({ kind: "turn_started" }, turn);
    this.record({ kind: "message", role: "user", content: parts }, turn);
    const params: HarnessTurnParams = {
      turn,
      session: this.ids.session,
      conversation: this.ids.conversation,
      agent: this.ids.agent,
      input: parts,
      instructions: "You are a coding agent.",
      tools: EXO_TOOLS,
      max_rounds: 32,
      history: historyItems(this.events),
      ...overrides,
    };
    const { id, response } = this.request("harness/turn", params);
    return {
      id,
      turn,
      response: response.then((message) => {
        const status = (message.result as { status?: string } | undefined)?.status;
        this.record({ kind: "turn_ended", status: status ?? "failed" }, turn);
        return message;
      }),
    };
  }

  /** Runs a turn; resolves with the `harness/turn` result, or rejects with
   * its error. */
  async turn(input: string | ContentPart[], overrides: Partial<HarnessTurnParams> = {}): Promise<{ status: string; text?: string }> {
    const message = await this.startTurn(input, overrides).response;
    if (message.error !== undefined) {
      throw new HostError(message.error.code, message.error.message, message.error.data);
    }
    return message.result as { status: string; text?: string };
  }

  /** Records an event in the fake conversation, as exo would. */
  record(body: Record<string, unknown>, turn: string | null = this.ids.turn): Event {
    const event = {
      id: randomUUID(),
      conversation: this.ids.conversation,
      session: this.ids.session,
      turn,
      created_at: new Date().toISOString(),
      ...body,
    } as Event;
    this.events.push(event);
    return event;
  }

  /** Custom events of a type, oldest first. */
  custom(type: string): Event[] {
    return this.events.filter((event) => isEvent(event, "custom") && event.type === type);
  }

  /** Closes the runner's stdin and waits for it to exit. */
  async close(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.process.stdin.end();
    return this.exited;
  }

  /** Kills the runner if it still runs (a test's clean-up). */
  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill("SIGKILL");
  }

  // --------------------------------------------------------- internals

  #receive(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.garbage.push(line);
      return;
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      this.garbage.push(line);
      return;
    }
    const message = parsed as Message;
    this.received.push(message);
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const waiter = this.#waiters[i];
      if (waiter !== undefined && waiter.predicate(message)) {
        this.#waiters.splice(i, 1);
        waiter.resolve(message);
      }
    }
    if (message.method === undefined) {
      if (message.id !== undefined && message.id !== null) this.#responses.get(message.id)?.(message);
      return;
    }
    if (message.id === undefined) return; // a notification: kept in `received`
    const id = message.id;
    const handler = this.#handlers.get(message.method);
    if (handler === undefined) {
      this.send({ id, error: { code: -32601, message: `method not found: ${message.method}`, data: { code: "method_not_found" } } });
      return;
    }
    new Promise((resolve) => { resolve(handler((message.params ?? {}) as never, message)); }).then(
      (result) => { this.send({ id, result: result ?? {} }); },
      (err: unknown) => {
        const error = err instanceof HostError
          ? { code: err.code, message: err.message, data: { code: "error", ...err.data } }
          : { code: -32603, message: err instanceof Error ? err.message : String(err), data: { code: "internal" } };
        this.send({ id, error });
      },
    );
  }

  #append(events: Record<string, unknown>[]): Event[] {
    return events.map((body) => {
      const { id: _id, created_at: _at, conversation: _c, session: _s, turn: _t, ...rest } = body;
      if (rest["kind"] === "message" && typeof rest["content"] === "string") {
        rest["content"] = [{ type: "text", text: rest["content"] }];
      }
      if (rest["kind"] === "tool_result" && rest["is_error"] === undefined) rest["is_error"] = false;
      return this.record(rest);
    });
  }

  #defaultHandlers(): void {
    this.handle("turn/append", (params: { events: Record<string, unknown>[] }) => {
      const events = this.#append(params.events);
      const last = events[events.length - 1];
      return { events, head: last?.id, first: events[0]?.id, count: events.length };
    });
    this.handle("events/list", (params: HostEventsListParams) => {
      let events = params.desc ? [...this.events].reverse() : [...this.events];
      const cursor = params.desc ? params.before : params.after;
      if (cursor !== undefined && cursor !== null) {
        const at = events.findIndex((event) => event.id === cursor);
        if (at < 0) throw new HostError(-32001, `event ${cursor} not found`, { code: "not_found", what: "event" });
        events = events.slice(at + 1);
      }
      if (params.kind !== undefined && params.kind !== null) events = events.filter((event) => event.kind === params.kind);
      if (params.turn !== undefined && params.turn !== null) events = events.filter((event) => event.turn === params.turn);
      const limit = params.limit ?? 100;
      const page = events.slice(0, limit);
      const more = events.length > limit;
      return { events: page, next_cursor: more ? (page[page.length - 1]?.id ?? null) : null };
    });
    this.handle("history/items", (): HistoryItems => historyItems(this.events));
    this.handle("model/complete", (params: ModelCompleteParams, message): ModelCompleteResult => {
      this.modelCalls.push(params);
      const answer = this.script.shift();
      if (answer === undefined) throw new HostError(-32010, "the scripted model has no answer left", { code: "model", kind: "script_exhausted" });
      const text = answer.text ?? "";
      const calls = (answer.tool_calls ?? []).map((call, index) => ({
        call_id: call.call_id ?? `call_${String(this.modelCalls.length)}_${String(index + 1)}`,
        name: call.name,
        arguments: call.arguments ?? {},
      }));
      if (params.stream !== false) {
        for (const piece of answer.deltas ?? (text === "" ? [] : [text])) {
          this.notify("model/delta", { request: message.id, text: piece });
        }
        for (const call of calls) this.notify("model/delta", { request: message.id, tool_call: { call_id: call.call_id, name: call.name } });
      }
      const events = params.record === false
        ? []
        : this.#append([
          {
            kind: "message",
            role: "assistant",
            content: [
              ...(answer.reasoning === undefined ? [] : [{ type: "reasoning", text: answer.reasoning }]),
              ...(text === "" ? [] : [{ type: "text", text }]),
            ],
            model: "fake",
            ...(answer.usage === undefined ? {} : { usage: answer.usage }),
          },
          ...calls.map((call) => ({ kind: "tool_call", ...call })),
        ]);
      return {
        text,
        ...(answer.reasoning === undefined ? {} : { reasoning: answer.reasoning }),
        tool_calls: calls,
        ...(answer.usage === undefined ? {} : { usage: answer.usage }),
        stop: answer.stop ?? (calls.length > 0 ? "tool_use" : "end_turn"),
        events,
      };
    });
    this.handle("approval/ask", (params: ApprovalAskParams): ApprovalAskResult => {
      const decision = this.approvals.shift() ?? "allow_once";
      this.#append([{
        kind: "custom",
        type: "exo.approval",
        payload: { call_id: params.call_id, tool: params.tool, approved: decision !== "deny", decision, by: "policy" },
      }]);
      return { decision, by: "policy" };
    });
    this.handle("tool/run", (params: ToolRunParams): ToolRunResult => {
      const callId = params.call_id ?? `call_${randomUUID()}`;
      const events: Event[] = [];
      if (!this.events.some((event) => isEvent(event, "tool_call") && event.call_id === callId)) {
        events.push(...this.#append([{ kind: "tool_call", call_id: callId, name: params.name, arguments: params.arguments }]));
      }
      const output = { ran: params.name, arguments: params.arguments };
      events.push(...this.#append([{ kind: "tool_result", call_id: callId, output, is_error: false }]));
      return { call_id: callId, output, is_error: false, approved: true, events };
    });
    this.handle("artifact/put", (params: { path: string; content_base64: string; media_type?: string }) => {
      const versions = this.artifacts.get(params.path) ?? [];
      const bytes = Buffer.from(params.content_base64, "base64");
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      const version = versions.length + 1;
      const event = this.record({ kind: "artifact_written", path: params.path, version, sha256, size: bytes.length });
      const artifact: Artifact = {
        path: params.path,
        version,
        sha256,
        size: bytes.length,
        media_type: params.media_type ?? null,
        event: event.id,
        created_at: new Date().toISOString(),
      };
      versions.push({ artifact, bytes });
      this.artifacts.set(params.path, versions);
      return artifact;
    });
    this.handle("artifact/get", (params: { path: string; version?: number }) => {
      const versions = this.artifacts.get(params.path) ?? [];
      const found = params.version === undefined ? versions[versions.length - 1] : versions[params.version - 1];
      if (found === undefined) throw new HostError(-32001, `artifact ${params.path} not found`, { code: "not_found", what: "artifact" });
      return { ...found.artifact, content_base64: found.bytes.toString("base64") };
    });
    this.handle("artifact/list", (params: { path?: string }) => ({
      artifacts: params.path === undefined
        ? [...this.artifacts.values()].map((versions) => versions[versions.length - 1]?.artifact)
        : (this.artifacts.get(params.path) ?? []).map((version) => version.artifact),
    }));
  }
}

/** The history as exo's `history/items` gives it: messages, calls and
 * results from the last `exo.compaction` on (a simplified copy of
 * crates/executor/src/prompt.rs: inline summaries only). */
export function historyItems(events: Event[]): HistoryItems {
  let items: ModelItem[] = [];
  let compaction: Event | undefined;
  for (const event of events) {
    if (isEvent(event, "message")) {
      items.push({ type: "message", role: event.role, content: event.content });
    } else if (isEvent(event, "tool_call")) {
      items.push({ type: "tool_call", call_id: event.call_id, name: event.name, arguments: event.arguments ?? {} });
    } else if (isEvent(event, "tool_result")) {
      items.push({
        type: "tool_result",
        call_id: event.call_id,
        output: typeof event.output === "string" ? event.output : JSON.stringify(event.output),
        is_error: event.is_error ?? false,
      });
    } else if (isEvent(event, "custom") && event.type === "exo.compaction") {
      const summary = (event.payload as { summary?: unknown } | null)?.summary;
      if (typeof summary === "string") {
        compaction = event;
        items = [{ type: "message", role: "user", content: `A summary of the conversation so far:\n\n${summary}` }];
      }
    }
  }
  return compaction === undefined ? { items } : { items, compaction };
}
