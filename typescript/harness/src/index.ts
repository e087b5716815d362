// @exo/harness: write an exo executor in TypeScript.
//
// A harness module default-exports `defineHarness({ runTurn(ctx) { ... } })`.
// exo starts the runner (dist/runner.js) for it, one per conversation, and
// calls `runTurn` once per turn with a context (`TurnContext`) through which
// the harness reaches everything exo owns: the model (exo holds the key),
// exo's tools, approvals, the log and the artifacts. The protocol under it
// is spec/harness.md.
//
//     import { defineHarness, itemsOf, resultItem } from "@exo/harness";
//
//     export default defineHarness({
//       async runTurn(ctx) {
//         const { items } = await ctx.history();
//         const answer = await ctx.model.complete({ items, tools: ctx.tools.specs() });
//         ...
//         return answer.text;
//       },
//     });

import type {
  ApprovalAskResult,
  ApprovalKind,
  AppendResult,
  Artifact,
  ContentPart,
  Event,
  HarnessTurnStatus,
  HistoryItems,
  ModelCompleteParams,
  ModelCompleteResult,
  ModelItem,
  RunnerAgent,
  RunnerConversation,
  ToolCallStart,
  ToolRunResult,
  ToolSpec,
} from "./protocol.js";

export * from "./protocol.js";
export { isEvent, type EventOf } from "./events.js";
export { RpcError } from "./jsonrpc.js";

/** The symbol that marks what {@link defineHarness} made (shared by every
 * copy of this package, so a module and the runner may use different ones). */
export const HARNESS_BRAND: unique symbol = Symbol.for("exo.harness/v1");

/** A tool of the module's own, offered to its model beside exo's. It runs
 * in the runner, after `approval/ask`; its call and result are recorded. */
export interface HarnessTool<Args = Record<string, unknown>> {
  /** Its name, as the model calls it: 1-64 of `A-Z a-z 0-9 _ -`. */
  name: string;
  /** What it does, written for a model. */
  description: string;
  /** A JSON Schema (an object schema) for its arguments; any object when
   * absent. The runtime does not validate arguments against it. */
  parameters?: Record<string, unknown>;
  /** What it does, for the approval policy: `read` never asks; `run` (the
   * default) and `write` ask under the `ask` policy. */
  kind?: ApprovalKind;
  /** Runs a call. Its value (any JSON) is the result; a throw is an error
   * result the model sees. */
  run(args: Args, ctx: TurnContext): unknown;
}

/** What `runTurn` may return: the answer's text, or a status and text. */
// `void` too, so that `async runTurn(ctx) { ... }` without a return fits.
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type
export type TurnReturn = string | { status?: HarnessTurnStatus; text?: string } | undefined | void;

/** The argument of {@link defineHarness}. */
export interface HarnessOptions {
  /** The harness's name, the `<name>` of its `harness.<name>.*` events: one
   * segment of `a-z 0-9 _ -`. The module's file name when absent. */
  name?: string;
  /** The module's own tools. */
  tools?: readonly HarnessTool<never>[];
  /** Runs one turn. */
  runTurn(ctx: TurnContext): TurnReturn | Promise<TurnReturn>;
}

/** A harness: what a module default-exports. */
export interface Harness {
  readonly [HARNESS_BRAND]: true;
  readonly name: string | undefined;
  readonly tools: readonly HarnessTool[];
  runTurn(ctx: TurnContext): TurnReturn | Promise<TurnReturn>;
}

/** A piece of a model's answer, as it streams. */
export type ModelDeltaPart =
  | { type: "text"; text: string }
  | { type: "reasoning"; text: string }
  | ({ type: "tool_call" } & ToolCallStart);

/** A model call that streams: iterate it for the pieces, await `result`
 * for the whole answer (both may be used, or either). */
export interface ModelStream extends AsyncIterable<ModelDeltaPart> {
  readonly result: Promise<ModelCompleteResult>;
}

/** A model call: `model/complete`'s params. `instructions` defaults to
 * the turn's ({@link TurnContext.instructions}); pass `""` for none.
 * `record` defaults to true. */
export type ModelRequest = Omit<ModelCompleteParams, "stream">;

/** The model, through exo. */
export interface ModelAccess {
  /** Calls the model and streams its answer. */
  stream(request: ModelRequest): ModelStream;
  /** Calls the model and returns the whole answer. */
  complete(request: ModelRequest): Promise<ModelCompleteResult>;
  /** Recorded model calls made so far in this turn (the rounds). */
  readonly rounds: number;
}

/** A tool call to run: a model's `tool_calls` entry fits. */
export interface ToolCall {
  /** The call's id; generated when absent. */
  call_id?: string | undefined;
  /** The tool. */
  name: string;
  /** Its arguments (an object). */
  arguments?: unknown;
}

/** The tools: exo's (from `harness/turn`) and the module's own. */
export interface ToolAccess {
  /** Every tool the model may be offered: exo's, then the module's. */
  specs(): ToolSpec[];
  /** Whether a tool of that name exists (exo's or the module's). */
  has(name: string): boolean;
  /** Runs a call: exo's tools through exo (`tool/run`), the module's own
   * here (after `approval/ask`, recorded with `turn/append`). A tool that
   * exists nowhere gets an error result, recorded, as a bad call does. */
  run(call: ToolCall): Promise<ToolRunResult>;
}

/** An artifact version with its bytes. */
export type ArtifactWithContent = Artifact & {
  /** The bytes. */
  content: Uint8Array;
  /** The bytes as UTF-8 text. */
  text(): string;
};

/** The conversation's artifacts (as of its head). */
export interface ArtifactAccess {
  /** Stores a new version of `path`. */
  put(path: string, content: string | Uint8Array, options?: { media_type?: string }): Promise<Artifact>;
  /** Reads the current version of `path`, or `version`. */
  get(path: string, options?: { version?: number }): Promise<ArtifactWithContent>;
  /** The current version of every artifact, or every version of `path`. */
  list(options?: { path?: string }): Promise<Artifact[]>;
}

/** An events query: `events/list`'s filters; pages are followed for you. */
export interface EventsQuery {
  after?: string;
  before?: string;
  desc?: boolean;
  /** Page size (1-10000); the iterator reads every page either way. */
  limit?: number;
  kind?: string;
  session?: string;
  turn?: string;
}

/** A call to ask about. */
export interface ApprovalQuestion {
  call_id: string;
  /** The tool's name (`name` is accepted too, as on a model's tool call). */
  tool?: string;
  name?: string;
  arguments?: unknown;
  kind?: ApprovalKind;
}

/** An approval decision, and whether it lets the call run. */
export type Approval = ApprovalAskResult & { allowed: boolean };

/** An event as `turn/append` takes it: `{"kind": "message", ...}`. */
export type AppendableEvent = Record<string, unknown> & { kind: string };

/** What a turn can see and do. */
export interface TurnContext {
  /** The user's message, as recorded. */
  readonly input: ContentPart[];
  /** The text of the user's message (its text parts, joined). */
  readonly text: string;
  /** The turn's id. */
  readonly turn: string;
  /** Its session's id. */
  readonly session: string;
  /** The conversation's id. */
  readonly conversation: string;
  /** The agent's id. */
  readonly agent: string;
  /** The agent: id, slug, name, instructions. */
  readonly agentInfo: RunnerAgent;
  /** The conversation: id, slug, workspace. */
  readonly conversationInfo: RunnerConversation;
  /** The conversation's workspace directory, if it has one. */
  readonly workspace: string | undefined;
  /** exo's preamble and the agent's instructions: the system prompt the
   * built-in executor would use. */
  readonly instructions: string;
  /** The turn's round limit: the most recorded model calls it may make.
   * `ctx.model` refuses the next one with {@link MaxRoundsError}. */
  readonly maxRounds: number;
  /** The harness's name (the `<name>` of `harness.<name>.*`). */
  readonly harness: string;
  /** Aborted when exo cancels the turn; host calls in flight are
   * cancelled, and new ones fail at once. */
  readonly signal: AbortSignal;
  /** The model, through exo. */
  readonly model: ModelAccess;
  /** exo's tools and the module's own. */
  readonly tools: ToolAccess;
  /** The conversation's artifacts. */
  readonly artifacts: ArtifactAccess;
  /** The history as the built-in executor would show it to a model: from
   * the last `exo.compaction` on, this turn's input included. */
  history(): Promise<HistoryItems>;
  /** The conversation's events, oldest first (or newest, with `desc`),
   * read a page at a time. */
  events(query?: EventsQuery): AsyncIterableIterator<Event>;
  /** Records a custom event. A `type` without the `harness.` prefix is
   * put in this harness's namespace (`policy` → `harness.<name>.policy`);
   * `exo.compaction` is recorded as it is. */
  record(type: string, payload?: unknown): Promise<Event>;
  /** Appends events to the turn as one batch (`turn/append`). */
  append(events: AppendableEvent[]): Promise<AppendResult>;
  /** Asks whether a call may run (`approval/ask`). */
  approve(call: ApprovalQuestion): Promise<Approval>;
  /** Streams text of the harness's own to the user (`turn/delta`); not
   * recorded. */
  delta(text: string): void;
  /** Writes a line to exo's log (the runner's stderr). */
  log(...values: unknown[]): void;
}

/** Thrown by `ctx.model` when a turn would exceed its round limit; a turn
 * that ends with it answers `{"status": "max_rounds"}`. */
export class MaxRoundsError extends Error {
  override name = "MaxRoundsError";
  constructor(readonly maxRounds: number) {
    super(`stopped after ${String(maxRounds)} model call${maxRounds === 1 ? "" : "s"}: the turn's round limit`);
  }
}

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const HARNESS_NAME = /^[a-z0-9_-]{1,64}$/;

/** exo's own tools: a module's tool may not take one of these names. */
export const EXO_TOOL_NAMES: readonly string[] = [
  "shell",
  "read_file",
  "write_file",
  "edit_file",
  "list_files",
  "grep",
];

/**
 * Makes a harness of `options`; a module's default export must be one.
 * Checks the name and the tools (throws a TypeError naming the problem).
 */
export function defineHarness(options: HarnessOptions): Harness {
  if (typeof options !== "object" || typeof options.runTurn !== "function") {
    throw new TypeError("defineHarness: runTurn(ctx) is required");
  }
  if (options.name !== undefined && !HARNESS_NAME.test(options.name)) {
    throw new TypeError(
      `defineHarness: the name ${JSON.stringify(options.name)} must be 1-64 characters of a-z 0-9 _ -`,
    );
  }
  const tools = (options.tools ?? []) as readonly HarnessTool[];
  const seen = new Set<string>();
  tools.forEach((tool, index) => {
    const what = `defineHarness: tool ${String(index + 1)}`;
    if (typeof tool !== "object") throw new TypeError(`${what} is not an object`);
    if (typeof tool.name !== "string" || !TOOL_NAME.test(tool.name)) {
      throw new TypeError(`${what} needs a name of 1-64 characters of A-Z a-z 0-9 _ -`);
    }
    if (EXO_TOOL_NAMES.includes(tool.name)) {
      throw new TypeError(`${what}: ${tool.name} is the name of one of exo's tools`);
    }
    if (seen.has(tool.name)) throw new TypeError(`${what}: the name ${tool.name} is used twice`);
    seen.add(tool.name);
    if (typeof tool.description !== "string") throw new TypeError(`${what} (${tool.name}) needs a description`);
    if (typeof tool.run !== "function") throw new TypeError(`${what} (${tool.name}) needs run(args, ctx)`);
    if (tool.parameters !== undefined && (typeof tool.parameters !== "object" || Array.isArray(tool.parameters))) {
      throw new TypeError(`${what} (${tool.name}): parameters must be a JSON Schema object`);
    }
  });
  const runTurn = options.runTurn.bind(options);
  return Object.freeze({
    [HARNESS_BRAND]: true as const,
    name: options.name,
    tools: Object.freeze([...tools]),
    runTurn,
  });
}

/** Types a tool's arguments; returns the tool as it is. */
export function defineTool<Args = Record<string, unknown>>(tool: HarnessTool<Args>): HarnessTool<Args> {
  return tool;
}

/** Whether `value` was made by {@link defineHarness} (any copy of it). */
export function isHarness(value: unknown): value is Harness {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<symbol, unknown>)[HARNESS_BRAND] === true &&
    typeof (value as { runTurn?: unknown }).runTurn === "function"
  );
}

/** A tool's spec as a model sees it. */
export function toolSpec(tool: HarnessTool<never> | HarnessTool): ToolSpec {
  return {
    name: tool.name,
    description: tool.description,
    parameters: tool.parameters ?? { type: "object", properties: {} },
  };
}

/** The items a model's answer adds to the conversation: the assistant's
 * text (when there is any), then its tool calls. */
export function itemsOf(answer: ModelCompleteResult): ModelItem[] {
  const items: ModelItem[] = [];
  if (answer.text !== "") items.push({ type: "message", role: "assistant", content: answer.text });
  for (const call of answer.tool_calls) {
    items.push({ type: "tool_call", call_id: call.call_id, name: call.name, arguments: call.arguments });
  }
  return items;
}

/** The item a tool's result adds to the conversation. */
export function resultItem(result: ToolRunResult): ModelItem {
  return {
    type: "tool_result",
    call_id: result.call_id,
    output: typeof result.output === "string" ? result.output : JSON.stringify(result.output),
    is_error: result.is_error,
  };
}

/** The text of content parts (their text parts, joined). */
export function textOf(content: ContentPart[] | string): string {
  if (typeof content === "string") return content;
  return content
    .filter((part): part is Extract<ContentPart, { type: "text" }> => part.type === "text")
    .map((part) => part.text)
    .join("");
}
