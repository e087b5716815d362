// `--harness cursor`: the Cursor SDK (`@cursor/sdk`) as an exo harness
// (spec/agents.md, "--harness cursor").
//
// Cursor's agent loop runs on Cursor's servers; its tools run here, in the
// workspace. Each exo turn sends the user's message to the conversation's
// Cursor agent (created on the first turn, resumed after), streams its text
// to exo, and records every step the SDK reports: assistant text and tool
// calls as exo's `message` and `tool_call` events, finished tool calls as
// `tool_result`, and every SDK message whole as `harness.cursor.message`.
// The SDK's local state (agent, run and checkpoint documents) is kept in
// exo, as artifacts of the conversation under `cursor/`, so it follows the
// conversation: a fork starts with the state as of its fork point, and a
// rewind takes the documents back to what they were then.
//
// The Cursor API key necessarily reaches this process: the SDK sends it to
// Cursor itself. exo hands it over in CURSOR_API_KEY from the agent's model
// binding's secret (and the binding's upstream model in EXO_CURSOR_MODEL),
// to this runner only (never to another harness's), and keeps it out of the
// events.

import { defineHarness, type TurnContext } from "./index.js";
import { pathToFileURL } from "node:url";

/** The SDK's shapes this harness relies on (`@cursor/sdk` 1.0.32). */
interface SdkMessage {
  type: string;
  agent_id?: string;
  run_id?: string;
  message?: { role: string; content: Array<{ type: string; text?: string; id?: string; name?: string; input?: unknown }> };
  call_id?: string;
  name?: string;
  status?: string;
  args?: unknown;
  result?: unknown;
  text?: string;
  usage?: Record<string, number>;
}

interface SdkRun {
  readonly id: string;
  stream(): AsyncGenerator<SdkMessage, void>;
  wait(): Promise<{ status: "finished" | "error" | "cancelled"; result?: string; error?: { message: string } }>;
  cancel(): Promise<void>;
}

interface SdkAgent {
  readonly agentId: string;
  send(message: string, options?: { onDelta?: (args: { update: { type: string; text?: string } }) => void | Promise<void> }): Promise<SdkRun>;
  close(): void;
}

interface Sdk {
  Agent: {
    create(options: Record<string, unknown>): Promise<SdkAgent>;
    resume(agentId: string, options?: Record<string, unknown>): Promise<SdkAgent>;
  };
}

/** Where the SDK comes from: EXO_CURSOR_SDK (a path, for a stand-in or a
 * copy installed elsewhere), else the `@cursor/sdk` package. */
async function loadSdk(): Promise<Sdk> {
  const path = process.env["EXO_CURSOR_SDK"];
  const specifier = path !== undefined && path !== "" ? pathToFileURL(path).href : "@cursor/sdk";
  try {
    return (await import(specifier)) as Sdk;
  } catch (err) {
    throw new Error(
      `cannot load the Cursor SDK (${specifier}): install @cursor/sdk beside the runtime, or name it in EXO_CURSOR_SDK (${String(err)})`,
    );
  }
}

/** The artifact path of a store document. */
const documentPath = (kind: string, id: string): string => `cursor/${kind}/${encodeURIComponent(id)}.json`;

/** The SDK's local agent store, kept as the conversation's artifacts. */
export function exoLocalAgentStore(ctx: TurnContext): unknown {
  const read = async (path: string): Promise<string | null> => {
    try {
      return (await ctx.artifacts.get(path)).text();
    } catch {
      return null;
    }
  };
  const readJson = async <T>(path: string): Promise<T | null> => {
    const text = await read(path);
    return text === null ? null : (JSON.parse(text) as T);
  };
  const write = async (path: string, value: unknown): Promise<void> => {
    await ctx.artifacts.put(path, JSON.stringify(value), { media_type: "application/json" });
  };
  const listOf = async <T>(kind: string): Promise<T[]> => {
    const artifacts = await ctx.artifacts.list();
    const out: T[] = [];
    for (const artifact of artifacts) {
      if (!artifact.path.startsWith(`cursor/${kind}/`)) continue;
      const value = await readJson<T>(artifact.path);
      if (value !== null) out.push(value);
    }
    return out;
  };
  const deleted = { deleted: true };
  type Doc = Record<string, unknown>;
  const live = (doc: Doc | null): doc is Doc => doc !== null && doc["deleted"] !== true;
  return {
    agents: {
      get: async ({ agentId }: { agentId: string }) => {
        const doc = await readJson<Doc>(documentPath("agents", agentId));
        return live(doc) ? doc : null;
      },
      create: async ({ agent }: { agent: Doc }) => (await write(documentPath("agents", String(agent["agentId"])), agent), agent),
      update: async ({ agent }: { agent: Doc }) => (await write(documentPath("agents", String(agent["agentId"])), agent), agent),
      delete: async ({ filter }: { filter: { agentIds?: string[] } }) => {
        for (const id of filter.agentIds ?? []) await write(documentPath("agents", id), deleted);
      },
      list: async () => ({ items: (await listOf<Doc>("agents")).filter(live) }),
    },
    runs: {
      get: async ({ runId }: { runId: string }) => {
        const doc = await readJson<Doc>(documentPath("runs", runId));
        return live(doc) ? doc : null;
      },
      create: async ({ run }: { run: Doc }) => (await write(documentPath("runs", String(run["runId"])), run), run),
      update: async ({ run }: { run: Doc }) => (await write(documentPath("runs", String(run["runId"])), run), run),
      delete: async ({ filter }: { filter: { runIds?: string[] } }) => {
        for (const id of filter.runIds ?? []) await write(documentPath("runs", id), deleted);
      },
      list: async ({ filter }: { filter?: { agentIds?: string[] } } = {}) => ({
        items: (await listOf<Doc>("runs"))
          .filter(live)
          .filter((run) => filter?.agentIds === undefined || filter.agentIds.includes(String(run["agentId"]))),
      }),
    },
    runEvents: {
      append: async (input: { runId: string; eventType: string; payload?: unknown; payloadRef?: string | null; idempotencyKey?: string | null }) => {
        const path = documentPath("run-events", input.runId);
        const events = (await readJson<Doc[]>(path)) ?? [];
        const event = {
          runId: input.runId,
          seq: events.length,
          offset: String(events.length),
          eventType: input.eventType,
          payload: input.payload ?? null,
          payloadRef: input.payloadRef ?? null,
          idempotencyKey: input.idempotencyKey ?? null,
          createdAt: Date.now(),
        };
        events.push(event);
        await write(path, events);
        return event;
      },
      list: async ({ runId, afterOffset }: { runId: string; afterOffset?: string | null }) => {
        const events = (await readJson<Doc[]>(documentPath("run-events", runId))) ?? [];
        const after = afterOffset === undefined || afterOffset === null ? -1 : Number(afterOffset);
        return { items: events.filter((event) => Number(event["seq"]) > after) };
      },
    },
    checkpoints: {
      get: async ({ agentId, blobId }: { agentId: string; blobId: string }) => {
        try {
          return (await ctx.artifacts.get(`cursor/checkpoints/${encodeURIComponent(agentId)}/${encodeURIComponent(blobId)}`)).content;
        } catch {
          return null;
        }
      },
      create: async ({ agentId, blobId, data }: { agentId: string; blobId: string; data: Uint8Array }) => {
        await ctx.artifacts.put(`cursor/checkpoints/${encodeURIComponent(agentId)}/${encodeURIComponent(blobId)}`, data);
      },
      update: async ({ agentId, blobId, data }: { agentId: string; blobId: string; data: Uint8Array }) => {
        await ctx.artifacts.put(`cursor/checkpoints/${encodeURIComponent(agentId)}/${encodeURIComponent(blobId)}`, data);
      },
      delete: async () => {
        // Checkpoints are kept: exo's artifacts are versioned, never lost.
      },
      list: async () => ({
        items: (await ctx.artifacts.list())
          .filter((artifact) => artifact.path.startsWith("cursor/checkpoints/"))
          .map((artifact) => decodeURIComponent(artifact.path.split("/").pop() ?? "")),
      }),
    },
  };
}

/** The Cursor key exo handed this runner, taken out of the environment
 * as the module loads, so that nothing the SDK starts (its local tools, a
 * shell) inherits it. */
const cursorKey = process.env["CURSOR_API_KEY"];
delete process.env["CURSOR_API_KEY"];

/** A tool call's result as text for the model's history. */
function resultText(result: unknown): string {
  if (typeof result === "string") return result;
  return JSON.stringify(result ?? null);
}

export default defineHarness({
  name: "cursor",
  async runTurn(ctx) {
    const apiKey = cursorKey;
    if (apiKey === undefined || apiKey === "") {
      throw new Error("no Cursor API key: bind the agent's model to a secret holding it");
    }
    // Never in what is recorded or said.
    const scrub = (text: string): string => text.split(apiKey).join("[redacted]");
    try {
      return await runCursorTurn(ctx, apiKey, scrub);
    } catch (err) {
      throw new Error(scrub(err instanceof Error ? err.message : String(err)));
    }
  },
});

/** One turn, the key in hand and out of the environment. */
async function runCursorTurn(
  ctx: TurnContext,
  apiKey: string,
  scrub: (text: string) => string,
): Promise<{ status: "completed" | "cancelled"; text: string }> {
  {
    const sdk = await loadSdk();
    const store = exoLocalAgentStore(ctx);
    const local = { cwd: ctx.workspace ?? process.cwd(), store };
    // The conversation's Cursor agent, once created.
    let agentId: string | undefined;
    for await (const event of ctx.events({ kind: "custom", desc: true })) {
      const data = event as unknown as { type?: string; payload?: { agent_id?: string } };
      if (data.type === "harness.cursor.agent" && typeof data.payload?.agent_id === "string") {
        agentId = data.payload.agent_id;
        break;
      }
    }
    const model = process.env["EXO_CURSOR_MODEL"];
    const options = { apiKey, ...(model === undefined || model === "" ? {} : { model: { id: model } }), local };
    const agent = agentId === undefined ? await sdk.Agent.create(options) : await sdk.Agent.resume(agentId, options);
    if (agentId === undefined) await ctx.record("agent", { agent_id: agent.agentId });
    const run = await agent.send(ctx.text, {
      onDelta: ({ update }) => {
        if (update.type === "text-delta" && typeof update.text === "string") ctx.delta(update.text);
      },
    });
    const cancel = (): void => void run.cancel().catch(() => undefined);
    ctx.signal.addEventListener("abort", cancel, { once: true });
    let text = "";
    try {
      for await (const message of run.stream()) {
        const events: Array<Record<string, unknown> & { kind: string }> = [];
        if (message.type === "assistant" && message.message !== undefined) {
          for (const block of message.message.content) {
            if (block.type === "text" && typeof block.text === "string") {
              text = block.text;
              events.push({ kind: "message", role: "assistant", content: [{ type: "text", text: block.text }] });
            } else if (block.type === "tool_use") {
              events.push({ kind: "tool_call", call_id: block.id, name: block.name, arguments: block.input ?? {} });
            }
          }
        } else if (message.type === "tool_call" && message.status !== "running") {
          events.push({
            kind: "tool_result",
            call_id: message.call_id,
            output: resultText(message.result),
            is_error: message.status === "error",
          });
        }
        if (events.length > 0) await ctx.append(JSON.parse(scrub(JSON.stringify(events))) as typeof events);
        await ctx.record("message", JSON.parse(scrub(JSON.stringify(message))) as unknown);
      }
    } finally {
      ctx.signal.removeEventListener("abort", cancel);
    }
    const result = await run.wait();
    agent.close();
    await ctx.record("result", JSON.parse(scrub(JSON.stringify({ run_id: run.id, status: result.status, error: result.error ?? null }))) as unknown);
    switch (result.status) {
      case "finished":
        return { status: "completed", text: scrub(result.result ?? text) };
      case "cancelled":
        return { status: "cancelled", text: scrub(text) };
      default:
        throw new Error(`the Cursor run failed: ${result.error?.message ?? "no reason given"}`);
    }
  }
}
