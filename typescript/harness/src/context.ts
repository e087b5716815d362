// The turn context: what `runTurn(ctx)` sees. Each method is one host
// capability of spec/harness.md ("Runner to exo"), called on the runner's
// connection with the turn's signal, plus what the runtime does itself:
// the round limit, the module's own tools, the namespace of custom events.

import { randomUUID } from "node:crypto";
import { format } from "node:util";

import {
  MaxRoundsError,
  textOf,
  toolSpec,
  type AppendableEvent,
  type Approval,
  type ApprovalQuestion,
  type ArtifactAccess,
  type ArtifactWithContent,
  type EventsQuery,
  type Harness,
  type HarnessTool,
  type ModelAccess,
  type ModelDeltaPart,
  type ModelRequest,
  type ModelStream,
  type ToolAccess,
  type ToolCall,
  type TurnContext,
} from "./index.js";
import { isEvent } from "./events.js";
import { oneLine, RpcError, type Peer } from "./jsonrpc.js";
import { HARNESS_ERROR_CODES } from "./protocol.js";
import type {
  AppendResult,
  ApprovalAskResult,
  Artifact,
  ArtifactContent,
  ArtifactList,
  ContentPart,
  Event,
  EventPage,
  HarnessTurnParams,
  HistoryItems,
  HostMethods,
  ModelCompleteResult,
  ModelDelta,
  RunnerAgent,
  RunnerConversation,
  ToolRunResult,
  ToolSpec,
} from "./protocol.js";

const CUSTOM_TYPE = /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/;

/** What the runner knows of its conversation (from `initialize`). */
export interface RunnerScope {
  agent: RunnerAgent;
  conversation: RunnerConversation;
  harnessName: string;
}

/** Routes `model/delta` notifications to the stream of their request. */
export type DeltaRoutes = Map<number, (delta: ModelDelta) => void>;

/** One turn's context; `end()` makes it refuse further use. */
export class Turn implements TurnContext {
  readonly input: ContentPart[];
  readonly text: string;
  readonly turn: string;
  readonly session: string;
  readonly conversation: string;
  readonly agent: string;
  readonly agentInfo: RunnerAgent;
  readonly conversationInfo: RunnerConversation;
  readonly workspace: string | undefined;
  readonly instructions: string;
  readonly maxRounds: number;
  readonly harness: string;
  readonly signal: AbortSignal;
  readonly model: ModelAccess;
  readonly tools: ToolAccess;
  readonly artifacts: ArtifactAccess;

  readonly #peer: Peer;
  readonly #routes: DeltaRoutes;
  readonly #exoTools: ToolSpec[];
  readonly #ownTools: Map<string, HarnessTool>;
  /** Call ids whose `tool_call` this turn has recorded. */
  readonly #recordedCalls = new Set<string>();
  #rounds = 0;
  #ended = false;
  /** The history exo sent with the turn, until the first host request
   * (after which it may be out of date) or its first use. */
  #history: HistoryItems | undefined;

  constructor(peer: Peer, routes: DeltaRoutes, scope: RunnerScope, harness: Harness, params: HarnessTurnParams, signal: AbortSignal) {
    this.#peer = peer;
    this.#routes = routes;
    this.input = params.input;
    this.text = textOf(params.input);
    this.turn = params.turn;
    this.session = params.session;
    this.conversation = params.conversation;
    this.agent = params.agent;
    this.agentInfo = scope.agent;
    this.conversationInfo = scope.conversation;
    this.workspace = scope.conversation.workspace ?? undefined;
    this.instructions = params.instructions;
    this.maxRounds = params.max_rounds;
    this.harness = scope.harnessName;
    this.signal = signal;
    this.#history = params.history ?? undefined;
    this.#exoTools = params.tools ?? [];
    this.#ownTools = new Map(harness.tools.map((tool) => [tool.name, tool]));

    const rounds = () => this.#rounds;
    this.model = {
      stream: (request) => this.#stream(request, true),
      complete: (request) => this.#stream(request, false).result,
      get rounds() {
        return rounds();
      },
    };
    this.tools = {
      specs: () => [...this.#exoTools, ...[...this.#ownTools.values()].map(toolSpec)],
      has: (name) => this.#ownTools.has(name) || this.#exoTools.some((tool) => tool.name === name),
      run: (call) => this.#runTool(call),
    };
    this.artifacts = {
      put: async (path, content, options) => {
        const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
        return this.#call("artifact/put", {
          path,
          content_base64: bytes.toString("base64"),
          ...(options?.media_type === undefined ? {} : { media_type: options.media_type }),
        }) as Promise<Artifact>;
      },
      get: async (path, options) => {
        const found = (await this.#call("artifact/get", {
          path,
          ...(options?.version === undefined ? {} : { version: options.version }),
        })) as ArtifactContent;
        const { content_base64, ...artifact } = found;
        const content = new Uint8Array(Buffer.from(content_base64, "base64"));
        const withContent: ArtifactWithContent = {
          ...artifact,
          content,
          text: () => Buffer.from(content).toString("utf8"),
        };
        return withContent;
      },
      list: async (options) => {
        const list = (await this.#call("artifact/list", options?.path === undefined ? {} : { path: options.path })) as ArtifactList;
        return list.artifacts;
      },
    };
  }

  /** Ends the turn: later calls on this context throw. */
  end(): void {
    this.#ended = true;
  }

  history(): Promise<HistoryItems> {
    const sent = this.#history;
    if (sent !== undefined) {
      // Handed over once: the caller may change it.
      this.#history = undefined;
      this.#usable();
      return Promise.resolve(sent);
    }
    return this.#call("history/items", {}) as Promise<HistoryItems>;
  }

  async *events(query: EventsQuery = {}): AsyncIterableIterator<Event> {
    const params: Record<string, unknown> = { ...query };
    for (;;) {
      const page = (await this.#call("events/list", params)) as EventPage;
      yield* page.events;
      if (page.next_cursor === null || page.next_cursor === undefined) return;
      if (query.desc === true) params["before"] = page.next_cursor;
      else params["after"] = page.next_cursor;
    }
  }

  async record(type: string, payload: unknown = {}): Promise<Event> {
    const full = this.#customType(type);
    const result = await this.append([{ kind: "custom", type: full, payload }]);
    const event = result.events[0];
    if (event === undefined) throw new Error(`exo recorded nothing for ${full}`);
    return event;
  }

  append(events: AppendableEvent[]): Promise<AppendResult> {
    return this.#call("turn/append", { events }) as Promise<AppendResult>;
  }

  async approve(call: ApprovalQuestion): Promise<Approval> {
    const tool = call.tool ?? call.name;
    if (typeof tool !== "string") throw new TypeError("ctx.approve: the call needs a tool (or name)");
    const answer = (await this.#call("approval/ask", {
      call_id: call.call_id,
      tool,
      arguments: call.arguments ?? {},
      ...(call.kind === undefined ? {} : { kind: call.kind }),
    })) as ApprovalAskResult;
    return { ...answer, allowed: answer.decision !== "deny" };
  }

  delta(text: string): void {
    this.#usable();
    if (this.signal.aborted || text === "") return;
    this.#peer.notify("turn/delta", { text });
  }

  log(...values: unknown[]): void {
    process.stderr.write(`${format(...values)}\n`);
  }

  // ------------------------------------------------------------ internals

  #usable(): void {
    if (this.#ended) throw new Error("this turn has ended: its context cannot be used any more");
  }

  /** One host request, cancelled with the turn. */
  #call(method: keyof HostMethods, params: unknown): Promise<unknown> {
    this.#usable();
    this.#history = undefined;
    return this.#peer.request(method, params, this.signal);
  }

  #customType(type: string): string {
    if (type === "exo.compaction" || type.startsWith("harness.")) {
      if (!CUSTOM_TYPE.test(type) || type.length > 128) throw new TypeError(`ctx.record: ${JSON.stringify(type)} is not a valid custom type`);
      return type;
    }
    if (type.startsWith("exo.")) {
      throw new TypeError(`ctx.record: ${type} is exo's own; a harness records exo.compaction or harness.* types`);
    }
    const full = `harness.${this.harness}.${type}`;
    if (!CUSTOM_TYPE.test(full) || full.length > 128) {
      throw new TypeError(
        `ctx.record: ${JSON.stringify(type)} is not a valid event type (dot-separated segments of a-z 0-9 _ -; ${full} would be over 128 characters or invalid)`,
      );
    }
    return full;
  }

  #stream(request: ModelRequest, stream: boolean): ModelStream {
    this.#usable();
    const record = request.record ?? true;
    const params = {
      ...request,
      instructions: request.instructions ?? this.instructions,
      record,
      stream,
    };
    if (params.instructions === "") delete (params as { instructions?: unknown }).instructions;
    const queue = new DeltaQueue();
    let result: Promise<ModelCompleteResult>;
    if (record && this.#rounds >= this.maxRounds) {
      result = Promise.reject(new MaxRoundsError(this.maxRounds));
    } else {
      if (record) this.#rounds++;
      this.#history = undefined;
      const pending = this.#peer.start<ModelCompleteResult>("model/complete", params, this.signal);
      if (stream) this.#routes.set(pending.id, (delta) => { queue.push(delta); });
      result = pending.response.catch((err: unknown) => {
        // exo's own count of the round limit, should it differ from ours.
        if (err instanceof RpcError && err.code === HARNESS_ERROR_CODES.max_rounds) throw new MaxRoundsError(this.maxRounds);
        throw err;
      }).then(
        (answer) => {
          for (const event of answer.events) {
            if (isEvent(event, "tool_call")) this.#recordedCalls.add(event.call_id);
          }
          return answer;
        },
      ).finally(() => {
        this.#routes.delete(pending.id);
      });
    }
    result.then(() => { queue.close(); }, (err: unknown) => { queue.fail(err); });
    // A stream nobody iterates must not report its failure twice: the
    // caller sees it through `result`.
    result.catch(() => undefined);
    return {
      result,
      [Symbol.asyncIterator]: () => queue.iterate(),
    };
  }

  async #runTool(call: ToolCall): Promise<ToolRunResult> {
    this.#usable();
    const own = this.#ownTools.get(call.name);
    if (own === undefined && this.#exoTools.some((tool) => tool.name === call.name)) {
      const result = (await this.#call("tool/run", {
        ...(call.call_id === undefined ? {} : { call_id: call.call_id }),
        name: call.name,
        arguments: call.arguments ?? {},
      })) as ToolRunResult;
      this.#recordedCalls.add(result.call_id);
      return result;
    }
    const callId = call.call_id ?? `call_${randomUUID()}`;
    const args: unknown = call.arguments ?? {};
    const events: Event[] = [];
    // The call is recorded before it runs, so a runner killed meanwhile
    // leaves a call the next turn sees as interrupted.
    if (!this.#recordedCalls.has(callId)) {
      const recorded = await this.append([{ kind: "tool_call", call_id: callId, name: call.name, arguments: args }]);
      events.push(...recorded.events);
      this.#recordedCalls.add(callId);
    }
    const finish = async (output: unknown, isError: boolean, approved: boolean): Promise<ToolRunResult> => {
      const recorded = await this.append([{ kind: "tool_result", call_id: callId, output: output ?? null, is_error: isError }]);
      events.push(...recorded.events);
      return { call_id: callId, output: output ?? null, is_error: isError, approved, events };
    };
    if (own === undefined) {
      return finish({ error: `unknown tool ${call.name}` }, true, false);
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      return finish({ error: `the arguments are not a JSON object: ${JSON.stringify(args)}` }, true, false);
    }
    const approval = await this.approve({
      call_id: callId,
      tool: own.name,
      arguments: args,
      ...(own.kind === undefined ? {} : { kind: own.kind }),
    });
    if (!approval.allowed) {
      const why = approval.by === "user" ? "the user declined this call" : approval.by === "no_client" ? "no one could approve this call" : "the approval policy refuses this call";
      return finish({ error: `denied: ${why}` }, true, false);
    }
    let output: unknown;
    let isError = false;
    try {
      this.signal.throwIfAborted();
      output = await own.run(args as Record<string, unknown>, this);
      output = JSON.parse(JSON.stringify(output ?? null)) as unknown;
    } catch (err) {
      if (this.signal.aborted) {
        // The turn is being cancelled: record why the call has no real
        // result (the turn is open until the runner answers), then unwind.
        this.#history = undefined;
        await this.#peer.request("turn/append", {
          events: [{ kind: "tool_result", call_id: callId, output: { error: "cancelled while it ran" }, is_error: true }],
        });
        throw err;
      }
      output = { error: oneLine(err) };
      isError = true;
    }
    return finish(output, isError, true);
  }
}

/** Deltas of one model call, for one iterator at a time. */
class DeltaQueue {
  #items: ModelDeltaPart[] = [];
  #done = false;
  #error: { err: unknown } | undefined;
  #wake: (() => void) | undefined;

  push(delta: ModelDelta): void {
    if (delta.text !== undefined && delta.text !== null) this.#items.push({ type: "text", text: delta.text });
    if (delta.reasoning !== undefined && delta.reasoning !== null) this.#items.push({ type: "reasoning", text: delta.reasoning });
    if (delta.tool_call !== undefined && delta.tool_call !== null) this.#items.push({ type: "tool_call", ...delta.tool_call });
    this.#notify();
  }

  close(): void {
    this.#done = true;
    this.#notify();
  }

  fail(err: unknown): void {
    this.#error = { err };
    this.#done = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *iterate(): AsyncGenerator<ModelDeltaPart> {
    for (;;) {
      const next = this.#items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#done) {
        if (this.#error !== undefined) throw this.#error.err;
        return;
      }
      await new Promise<void>((resolve) => { this.#wake = resolve; });
    }
  }
}
