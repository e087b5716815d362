#!/usr/bin/env node
// The runner: the process exo starts for a TypeScript harness
// (spec/harness.md). It speaks JSON-RPC on stdin and stdout, loads the
// module on `initialize`, runs `harness/turn` requests one at a time, and
// exits on `shutdown` or when stdin closes.
//
//     node <runtime>/dist/runner.js
//
// A `.ts` module is compiled by tsx, loaded here from this package's own
// dependencies (`node --import tsx` works too). stdout carries protocol
// only: console output and `process.stdout.write` of the module go to
// stderr, which exo writes to its log.

import { readFileSync } from "node:fs";

import { Turn, type DeltaRoutes, type RunnerScope } from "./context.js";
import type { Harness } from "./index.js";
import { ErrorCodes, oneLine, Peer, RpcError, type Id } from "./jsonrpc.js";
import { loadHarness } from "./load.js";
import type {
  HarnessTurnParams,
  HarnessTurnResult,
  HarnessTurnStatus,
  ModelDelta,
  RunnerInitializeParams,
  RunnerInitializeResult,
} from "./protocol.js";
import { HARNESS_PROTOCOL_VERSION } from "./protocol.js";
import { toolSpec } from "./index.js";

const RUNTIME_NAME = "@exo/harness";
const RUNTIME_VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

// stdout belongs to the protocol: keep its writer, and send everything else
// that would write there (console.log, process.stdout.write) to stderr.
const stdout = process.stdout;
const writeProtocol = stdout.write.bind(stdout);
const toStderr = process.stderr.write.bind(process.stderr);
stdout.write = toStderr;
for (const method of ["log", "info", "debug", "dir", "dirxml", "table"] as const) {
  console[method] = console.error.bind(console) as never;
}
stdout.on("error", () => {
  // exo closed its end: nobody is left to answer.
  process.exit(0);
});

const log = (line: string) => {
  toStderr(`exo-harness: ${line}\n`);
};
process.on("unhandledRejection", (reason) => {
  log(`unhandled rejection in the harness: ${reason instanceof Error && reason.stack !== undefined ? reason.stack : String(reason)}`);
});

const peer = new Peer(process.stdin, (line) => writeProtocol(line), { log });
const routes: DeltaRoutes = new Map();

let scope: RunnerScope | undefined;
let harness: Harness | undefined;
/** The `initialize` in progress: a turn sent before its answer waits. */
let loading: Promise<unknown> | undefined;
let running: { id: Id; controller: AbortController } | undefined;

peer.onNotification("model/delta", (params) => {
  const delta = params as ModelDelta;
  if (typeof delta.request === "number") routes.get(delta.request)?.(delta);
});

peer.onRequest("initialize", async (raw): Promise<RunnerInitializeResult> => {
  const params = raw as Partial<RunnerInitializeParams>;
  if (params.protocol_version !== HARNESS_PROTOCOL_VERSION) {
    throw new RpcError(
      ErrorCodes.invalidParams,
      `harness protocol version ${JSON.stringify(params.protocol_version ?? null)} is not supported: this runtime speaks ${HARNESS_PROTOCOL_VERSION}`,
    );
  }
  if (typeof params.module !== "string" || params.module === "") {
    throw new RpcError(ErrorCodes.invalidParams, "initialize needs module: the module's path");
  }
  if (typeof params.agent !== "object" || typeof params.conversation !== "object") {
    throw new RpcError(ErrorCodes.invalidParams, "initialize needs agent and conversation");
  }
  if (harness !== undefined || loading !== undefined) {
    throw new RpcError(ErrorCodes.invalidRequest, "a module is loaded already: a runner serves one module");
  }
  const { agent, conversation } = params;
  const load = loadHarness(params.module);
  loading = load.catch(() => undefined);
  try {
    const loaded = await load;
    harness = loaded.harness;
    scope = { agent, conversation, harnessName: loaded.name };
    return {
      protocol_version: HARNESS_PROTOCOL_VERSION,
      runtime: { name: RUNTIME_NAME, version: RUNTIME_VERSION },
      harness: { name: loaded.name, tools: loaded.harness.tools.map(toolSpec) },
    };
  } catch (err) {
    loading = undefined;
    throw err;
  }
});

peer.onRequest("harness/turn", async (raw, request): Promise<HarnessTurnResult> => {
  await loading;
  if (harness === undefined || scope === undefined) {
    throw new RpcError(ErrorCodes.invalidRequest, "no module is loaded: initialize first");
  }
  if (running !== undefined) {
    throw new RpcError(ErrorCodes.invalidRequest, "a turn is running already: a runner runs one turn at a time");
  }
  const params = raw as HarnessTurnParams;
  if (typeof params.turn !== "string" || !Array.isArray(params.input) || typeof params.max_rounds !== "number") {
    throw new RpcError(ErrorCodes.invalidParams, "harness/turn needs turn, session, conversation, agent, input, instructions, tools and max_rounds");
  }
  if (request.signal.aborted) return { status: "cancelled" };
  const controller = new AbortController();
  const cancel = () => {
    controller.abort(new DOMException("the turn was cancelled", "AbortError"));
  };
  request.signal.addEventListener("abort", cancel, { once: true });
  running = { id: request.id, controller };
  const ctx = new Turn(peer, routes, scope, harness, { ...params, tools: params.tools ?? [] }, controller.signal);
  try {
    let returned: unknown;
    try {
      returned = await harness.runTurn(ctx);
    } catch (err) {
      if (controller.signal.aborted) return { status: "cancelled" };
      if (err instanceof Error && err.name === "MaxRoundsError") return { status: "max_rounds" };
      const stack = err instanceof Error ? err.stack : undefined;
      throw new RpcError(-32011, oneLine(err), { code: "harness", ...(stack === undefined ? {} : { stack }) });
    }
    const result = turnResult(returned);
    return controller.signal.aborted ? { ...result, status: "cancelled" } : result;
  } finally {
    ctx.end();
    request.signal.removeEventListener("abort", cancel);
    running = undefined;
  }
});

peer.onRequest("shutdown", () => {
  running?.controller.abort(new DOMException("the runner is shutting down", "AbortError"));
  // Exit once the answer (written right after this returns) has gone out.
  setImmediate(() => {
    writeProtocol("", () => process.exit(0));
  });
  return {};
});

void peer.closed.then(() => {
  // exo is gone: nobody is left to answer.
  running?.controller.abort(new DOMException("exo closed the runner's stdin", "AbortError"));
  process.exit(0);
});

const STATUSES: readonly HarnessTurnStatus[] = ["completed", "max_rounds", "cancelled"];

/** What `runTurn` returned, as a `harness/turn` result. */
function turnResult(returned: unknown): HarnessTurnResult {
  if (returned === undefined || returned === null) return { status: "completed" };
  if (typeof returned === "string") return { status: "completed", text: returned };
  if (typeof returned !== "object") {
    throw new RpcError(-32011, `runTurn returned a ${typeof returned}: return a string, { status?, text? } or nothing`, { code: "harness" });
  }
  const { status = "completed", text } = returned as { status?: unknown; text?: unknown };
  if (!STATUSES.includes(status as HarnessTurnStatus)) {
    throw new RpcError(-32011, `runTurn returned the status ${JSON.stringify(status)}: use completed, max_rounds or cancelled`, { code: "harness" });
  }
  if (text !== undefined && typeof text !== "string") {
    throw new RpcError(-32011, "runTurn returned a text that is not a string", { code: "harness" });
  }
  return text === undefined ? { status: status as HarnessTurnStatus } : { status: status as HarnessTurnStatus, text };
}
