// The runner as exo sees it: each test starts dist/runner.js as a child
// process and plays exo over its stdin and stdout (FakeHost), waiting for
// messages, never for time.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";

import { isEvent } from "../src/events.js";
import { FakeHost, type Message, type StartOptions } from "../src/testing.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/harness.ts", import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));

/** A runner for one test, killed after it whatever happens. */
function start(t: TestContext, options?: StartOptions): FakeHost {
  const host = FakeHost.start(options);
  t.after(() => {
    host.kill();
  });
  return host;
}

async function startHost(t: TestContext): Promise<FakeHost> {
  const host = start(t);
  const answer = await host.initialize(FIXTURE);
  assert.equal(answer.error, undefined, `initialize failed: ${JSON.stringify(answer.error)}\n${host.stderr}`);
  return host;
}

function parse(text: string | undefined): Record<string, unknown> {
  assert.equal(typeof text, "string");
  return JSON.parse(text ?? "") as Record<string, unknown>;
}

/** The `turn/append` requests the runner made, their events flattened. */
function appended(host: FakeHost, from = 0): Record<string, unknown>[] {
  return host.received
    .slice(from)
    .filter((m) => m.method === "turn/append")
    .flatMap((m) => (m.params as { events: Record<string, unknown>[] }).events);
}

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "exo-harness-test-"));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const LIMIT = { timeout: 60_000 };

describe("initialize", LIMIT, () => {
  test("loads a TypeScript module and reports its name and tools", async (t) => {
    const host = start(t);
    const answer = await host.initialize(FIXTURE);
    const result = answer.result as { protocol_version: string; runtime: { name: string; version: string }; harness: { name: string; tools: { name: string; description: string; parameters: unknown }[] } };
    assert.equal(result.protocol_version, "1");
    assert.equal(result.runtime.name, "@exo/harness");
    assert.match(result.runtime.version, /^\d+\.\d+\.\d+/);
    assert.equal(result.harness.name, "fixture");
    assert.deepEqual(result.harness.tools.map((tool) => tool.name), ["echo", "fail", "wait"]);
    assert.deepEqual(result.harness.tools[1]?.parameters, { type: "object", properties: {} });
    assert.deepEqual(result.harness.tools[0]?.parameters, { type: "object", properties: { text: { type: "string" } }, required: ["text"] });
    assert.deepEqual(await host.close(), { code: 0, signal: null });
  });

  const refusals: [string, string, string, RegExp][] = [
    ["a module that does not exist", "missing.ts", "", /^module \/.*missing\.ts does not exist$/],
    ["a module without a default export", "none.mjs", "export const x = 1;\n", /has no default export: export default defineHarness/],
    ["a default export not made by defineHarness", "plain.mjs", "export default { runTurn() { return 'x'; } };\n", /was not made by defineHarness/],
    ["a TypeScript syntax error", "broken.ts", "const x: number = ;\nexport default x;\n", /^cannot load module \/.*broken\.ts: .*broken\.ts:1:\d+: ERROR: /],
    ["a JavaScript syntax error", "broken.mjs", "export default {\n  runTurn() { return ) }\n};\n", /^cannot load module \/.*broken\.mjs: Unexpected token '\)' \(line 2\)$/],
    ["a module that throws on import", "throws.mjs", "throw new Error('no config\\nfound');\n", /^cannot load module \/.*throws\.mjs: no config found$/],
    ["a bad tool", "badtool.mjs", "import { defineHarness } from '@exo/harness';\nexport default defineHarness({ tools: [{ name: 'shell', description: 'x', run() {} }], runTurn() {} });\n", /defineHarness: tool 1: shell is the name of one of exo's tools/],
  ];
  for (const [what, file, source, message] of refusals) {
    test(`refuses ${what} in one line (-32001, module)`, async (t) => {
      const path = join(scratch, file);
      if (source !== "") await writeFile(path, source);
      const host = start(t);
      const answer = await host.initialize(path);
      assert.equal(answer.result, undefined);
      assert.equal(answer.error?.code, -32001);
      assert.equal(answer.error.data?.["code"], "module");
      assert.doesNotMatch(answer.error.message, /\n/);
      assert.match(answer.error.message, message);
      await host.close();
    });
  }

  test("loads a module outside any package: @exo/harness resolves to the runner's copy", async (t) => {
    const path = join(scratch, "standalone.ts");
    await writeFile(
      path,
      "import { defineHarness } from '@exo/harness';\nexport default defineHarness({ runTurn: (ctx) => `standalone: ${ctx.text}` });\n",
    );
    const host = start(t, { cwd: scratch });
    const answer = await host.initialize(path);
    assert.equal(answer.error, undefined, JSON.stringify(answer.error));
    assert.deepEqual((answer.result as { harness: unknown }).harness, { name: "standalone", tools: [] });
    assert.deepEqual(await host.turn("hi"), { status: "completed", text: "standalone: hi" });
    await host.close();
  });

  test("works the same when started as node --import tsx", async (t) => {
    const host = start(t, { nodeArgs: ["--import", "tsx"], cwd: PACKAGE_DIR });
    const answer = await host.initialize(FIXTURE);
    assert.equal(answer.error, undefined, JSON.stringify(answer.error));
    assert.deepEqual(await host.turn("delta"), { status: "completed", text: "done" });
    await host.close();
  });

  test("refuses a second initialize and a turn before any", async (t) => {
    const host = start(t);
    const early = await host.startTurn("context").response;
    assert.equal(early.error?.code, -32600);
    assert.match(early.error.message, /initialize first/);
    assert.equal((await host.initialize(FIXTURE)).error, undefined);
    const again = await host.initialize(FIXTURE);
    assert.equal(again.error?.code, -32600);
    await host.close();
  });
});

describe("a turn", LIMIT, () => {
  let host: FakeHost;
  before(async () => {
    host = FakeHost.start();
    const answer = await host.initialize(FIXTURE);
    assert.equal(answer.error, undefined, JSON.stringify(answer.error));
  });
  after(async () => {
    const exit = await host.close();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.deepEqual(host.garbage, [], "the runner wrote something that is not protocol to stdout");
  });

  test("sees the turn's ids, instructions, workspace and every tool", async () => {
    const result = await host.turn("context");
    const ctx = parse(result.text);
    assert.equal(ctx["turn"], host.ids.turn);
    assert.equal(ctx["conversation"], host.ids.conversation);
    assert.equal(ctx["agent"], host.ids.agent);
    assert.equal(ctx["session"], host.ids.session);
    assert.equal(ctx["slug"], "agent");
    assert.equal(ctx["workspace"], host.workspace);
    assert.equal(ctx["instructions"], "You are a coding agent.");
    assert.equal(ctx["maxRounds"], 32);
    assert.equal(ctx["harness"], "fixture");
    assert.deepEqual(ctx["tools"], ["shell", "read_file", "write_file", "edit_file", "list_files", "grep", "echo", "fail", "wait"]);
  });

  test("calls model/complete and streams its deltas, then the result", async () => {
    host.scriptModel({ text: "Hello there.", deltas: ["Hel", "lo ", "there."], tool_calls: [{ call_id: "m1", name: "echo", arguments: { text: "x" } }] });
    const result = await host.turn("stream");
    assert.equal(result.status, "completed");
    const out = parse(result.text) as { seen: unknown[]; answer: { text: string; events: unknown[] }; items: unknown[]; rounds: number };
    assert.deepEqual(out.seen, [
      { type: "text", text: "Hel" },
      { type: "text", text: "lo " },
      { type: "text", text: "there." },
      { type: "tool_call", call_id: "m1", name: "echo" },
    ]);
    assert.equal(out.answer.text, "Hello there.");
    assert.equal(out.answer.events.length, 2);
    assert.deepEqual(out.items, [
      { type: "message", role: "assistant", content: "Hello there." },
      { type: "tool_call", call_id: "m1", name: "echo", arguments: { text: "x" } },
    ]);
    assert.equal(out.rounds, 1);
    const call = host.modelCalls.at(-1);
    assert.equal(call?.instructions, "You are a coding agent.", "instructions default to the turn's");
    assert.equal(call.record, true);
    assert.equal(call.stream, true);
    assert.deepEqual(call.items, [{ type: "message", role: "user", content: "hi" }]);
    assert.equal(call.tools?.length, 9);
  });

  test("an unrecorded call does not count as a round and may send no instructions", async () => {
    host.scriptModel({ text: "A summary." });
    const out = parse((await host.turn("unrecorded")).text);
    assert.deepEqual(out, { text: "A summary.", rounds: 0 });
    const call = host.modelCalls.at(-1);
    assert.equal(call?.record, false);
    assert.equal(call.stream, false);
    assert.equal("instructions" in call, false);
  });

  test("a model error fails the turn with its message (-32011, harness)", async () => {
    await assert.rejects(host.turn("model error"), (err: { code: number; message: string; data: Record<string, unknown> }) => {
      assert.equal(err.code, -32011);
      assert.equal(err.data["code"], "harness");
      assert.equal(err.message, "the scripted model has no answer left");
      return true;
    });
  });

  test("runs exo's tools through tool/run", async () => {
    const from = host.received.length;
    const result = parse((await host.turn("exo tool")).text);
    const request = host.received.slice(from).find((m) => m.method === "tool/run");
    assert.deepEqual(request?.params, { call_id: "c1", name: "shell", arguments: { command: "ls" } });
    assert.deepEqual(result["output"], { ran: "shell", arguments: { command: "ls" } });
    assert.equal(result["approved"], true);
    assert.equal(appended(host, from).length, 0, "exo records exo's tool calls itself");
  });

  test("runs the module's own tool after approval/ask and records the call and its result", async () => {
    const from = host.received.length;
    const result = parse((await host.turn("own tool")).text);
    assert.deepEqual(result["output"], { echoed: "hi" });
    assert.equal(result["is_error"], false);
    assert.equal(result["approved"], true);
    const requests = host.received.slice(from).filter((m) => m.method === "turn/append" || m.method === "approval/ask");
    assert.deepEqual(requests.map((m) => m.method), ["turn/append", "approval/ask", "turn/append"]);
    assert.deepEqual(requests[1]?.params, { call_id: "c2", tool: "echo", arguments: { text: "hi" }, kind: "read" });
    assert.deepEqual(appended(host, from), [
      { kind: "tool_call", call_id: "c2", name: "echo", arguments: { text: "hi" } },
      { kind: "tool_result", call_id: "c2", output: { echoed: "hi" }, is_error: false },
    ]);
    const kinds = host.events.slice(-4).map((e) => (isEvent(e, "custom") ? e.type : e.kind));
    assert.deepEqual(kinds, ["tool_call", "exo.approval", "tool_result", "turn_ended"]);
  });

  test("does not record again a call the model's recorded answer holds", async () => {
    host.scriptModel({ tool_calls: [{ call_id: "m2", name: "echo", arguments: { text: "from the model" } }] });
    const from = host.received.length;
    const results = JSON.parse((await host.turn("model calls own tool")).text ?? "") as { output: unknown }[];
    assert.deepEqual(results.map((r) => r.output), [{ echoed: "from the model" }]);
    assert.deepEqual(appended(host, from), [{ kind: "tool_result", call_id: "m2", output: { echoed: "from the model" }, is_error: false }]);
  });

  test("a denied call does not run and its result says so", async () => {
    host.approvals.push("deny");
    const from = host.received.length;
    const result = parse((await host.turn("own tool")).text);
    assert.deepEqual(result["output"], { error: "denied: the approval policy refuses this call" });
    assert.equal(result["is_error"], true);
    assert.equal(result["approved"], false);
    assert.deepEqual(appended(host, from).at(-1), {
      kind: "tool_result",
      call_id: "c2",
      output: { error: "denied: the approval policy refuses this call" },
      is_error: true,
    });
  });

  test("a tool that throws gives an error result; an unknown tool too", async () => {
    const failed = parse((await host.turn("failing tool")).text);
    assert.deepEqual(failed["output"], { error: "the tool failed on two lines" });
    assert.equal(failed["is_error"], true);
    const from = host.received.length;
    const unknown = parse((await host.turn("unknown tool")).text);
    assert.deepEqual(unknown["output"], { error: "unknown tool nope" });
    assert.equal(host.received.slice(from).some((m) => m.method === "tool/run" || m.method === "approval/ask"), false);
    assert.deepEqual(appended(host, from).map((e) => e["kind"]), ["tool_call", "tool_result"]);
  });

  test("records custom events in the harness's namespace", async () => {
    const from = host.received.length;
    const out = parse((await host.turn("record")).text);
    assert.deepEqual(out, {
      note: "harness.fixture.note",
      summary: "custom",
      refused: "ctx.record: exo.approval is exo's own; a harness records exo.compaction or harness.* types",
    });
    assert.deepEqual(appended(host, from), [
      { kind: "custom", type: "harness.fixture.note", payload: { a: 1 } },
      { kind: "custom", type: "exo.compaction", payload: { summary: "so far" } },
    ]);
  });

  test("streams its own text with turn/delta", async () => {
    const from = host.received.length;
    assert.deepEqual(await host.turn("delta"), { status: "completed", text: "done" });
    const deltas = host.received.slice(from).filter((m) => m.method === "turn/delta");
    assert.deepEqual(deltas.map((m) => m.params), [{ text: "thinking... " }]);
    assert.equal(deltas[0]?.id, undefined, "turn/delta is a notification");
  });

  test("reads the history and pages through events", async () => {
    const out = parse((await host.turn("history")).text) as { items: { type: string }[]; kinds: string[]; newest: string[] };
    assert.ok(out.items.length > 0);
    assert.deepEqual(out.items.at(-1), { type: "message", role: "user", content: [{ type: "text", text: "history" }] });
    assert.deepEqual(out.kinds, host.events.slice(0, out.kinds.length).map((e) => e.kind));
    assert.equal(out.kinds.length, host.events.length - 1, "every event but turn_ended, which came after");
    const lists = host.received.filter((m) => m.method === "events/list").map((m) => m.params as { limit: number; after?: string });
    assert.ok(lists.filter((p) => p.limit === 2).length >= 2, "more than one page was read");
    const messages = host.events.filter((e) => e.kind === "message");
    assert.deepEqual(out.newest, messages.reverse().map((e) => e.id));
  });

  test("the history sent with the turn saves the first request, and only the first", async () => {
    host.script.push({ text: "an answer" });
    const from = host.received.length;
    const out = parse((await host.turn("history twice")).text) as { lengths: number[] };
    const [first, second, third] = out.lengths;
    assert.equal(second, first, "the second read sees the same history");
    assert.equal(third, (second ?? 0) + 1, "a read after a recorded answer sees it");
    const reads = host.received.slice(from).filter((m) => m.method === "history/items");
    assert.equal(reads.length, 2, "the first read was the history sent with the turn");
  });

  test("stores and reads artifacts", async () => {
    const out = parse((await host.turn("artifacts")).text);
    assert.deepEqual(out, { second: 2, current: "two", first: "one", versions: 2 });
    const put = host.received.filter((m) => m.method === "artifact/put").at(-1);
    assert.deepEqual(put?.params, { path: "notes/a.md", content_base64: Buffer.from("two").toString("base64"), media_type: "text/markdown" });
  });

  test("stops at the round limit with max_rounds", async () => {
    host.scriptModel({ text: "1" }, { text: "2" }, { text: "3" });
    const before = host.modelCalls.length;
    assert.deepEqual(await host.turn("rounds", { max_rounds: 2 }), { status: "max_rounds" });
    assert.equal(host.modelCalls.length - before, 2);
    host.script.length = 0;
  });

  test("returns the status and text runTurn gives, and refuses a bad status", async () => {
    assert.deepEqual(await host.turn("status"), { status: "max_rounds", text: "stopped" });
    await assert.rejects(host.turn("bad status"), /runTurn returned the status "finished"/);
  });

  test("a harness that throws fails the turn with its message in one line", async () => {
    await assert.rejects(host.turn("throw"), (err: { code: number; message: string; data: Record<string, unknown> }) => {
      assert.equal(err.code, -32011);
      assert.equal(err.message, "the harness broke badly");
      assert.equal(err.data["code"], "harness");
      assert.match(String(err.data["stack"]), /the harness broke/);
      return true;
    });
    assert.equal((await host.turn("delta")).status, "completed", "the runner goes on");
  });

  test("console output and process.stdout.write go to stderr, never to the protocol", async () => {
    assert.deepEqual(await host.turn("log"), { status: "completed", text: "logged" });
    assert.deepEqual(host.garbage, []);
    for (const line of ["fixture loading (console.log at import)", "console.log during a turn", "console.info during a turn", "process.stdout.write during a turn"]) {
      await host.waitForStderr(line);
    }
    assert.deepEqual(host.garbage, []);
  });

  test("a turn while one runs is refused", async () => {
    host.handle("model/complete", () => new Promise(() => undefined));
    const first = host.startTurn("cancel model");
    await host.waitFor((m) => m.method === "model/complete" && (m.params as { items: { content: string }[] }).items[0]?.content === "take your time");
    const second = await host.request("harness/turn", { turn: first.turn, session: host.ids.session, conversation: host.ids.conversation, agent: host.ids.agent, input: [], instructions: "", tools: [], max_rounds: 1 }).response;
    assert.equal(second.error?.code, -32600);
    assert.match(second.error.message, /a turn is running already/);
    host.notify("$/cancelRequest", { id: first.id });
    const cancel = await host.waitFor((m) => m.method === "$/cancelRequest");
    const call = host.received.find((m) => m.method === "model/complete" && m.id === (cancel.params as { id: number }).id);
    assert.ok(call);
    host.send({ id: call.id ?? null, error: { code: -32800, message: "request cancelled", data: { code: "request_cancelled" } } });
    assert.deepEqual((await first.response).result, { status: "cancelled" });
  });
});

describe("cancellation", LIMIT, () => {
  test("$/cancelRequest of harness/turn aborts the turn and cancels its model call in flight", async (t) => {
    const host = await startHost(t);
    let call: Message | undefined;
    host.handle("model/complete", (_params, message) => {
      call = message;
      host.notify("model/delta", { request: message.id, text: "partial" });
      // The answer waits for the runner's cancel, as exo's stream does.
      return host
        .waitFor((m) => m.method === "$/cancelRequest" && (m.params as { id: unknown }).id === message.id)
        .then(() => ({ text: "partial", tool_calls: [], stop: "cancelled", events: [] }));
    });
    const turn = host.startTurn("cancel model");
    await host.waitFor((m) => m.method === "model/complete");
    host.notify("$/cancelRequest", { id: turn.id });
    const answer = await turn.response;
    assert.deepEqual(answer.result, { status: "cancelled" });
    const cancels = host.received.filter((m) => m.method === "$/cancelRequest");
    assert.deepEqual(cancels.map((m) => m.params), [{ id: call?.id }]);
    assert.equal(host.received.filter((m) => m.method === "model/complete").length, 1, "no model call after the cancel");
    await host.close();
  });

  test("a module tool running when the turn is cancelled sees ctx.signal abort; its call gets a result", async (t) => {
    const host = await startHost(t);
    const turn = host.startTurn("cancel tool");
    // The tool says (turn/delta) when it runs; it then waits for the cancel.
    await host.waitFor((m) => m.method === "turn/delta");
    host.notify("$/cancelRequest", { id: turn.id });
    assert.deepEqual((await turn.response).result, { status: "cancelled" });
    assert.deepEqual(appended(host).map((e) => [e["kind"], e["output"]]), [
      ["tool_call", undefined],
      ["tool_result", { error: "cancelled while it ran" }],
    ]);
    await host.close();
  });
});

describe("the connection", LIMIT, () => {
  test("stdin closing ends the runner, even mid-turn", async (t) => {
    const host = await startHost(t);
    host.startTurn("hang");
    // The turn has started once the runner asked something of exo, or at
    // least once it answered a request sent after the turn's.
    const ping = await host.request("no/such/method").response;
    assert.equal(ping.error?.code, -32601);
    host.process.stdin.end();
    assert.deepEqual(await host.exited, { code: 0, signal: null });
  });

  test("shutdown answers {} and exits", async (t) => {
    const host = await startHost(t);
    const answer = await host.request("shutdown").response;
    assert.deepEqual(answer.result, {});
    assert.deepEqual(await host.exited, { code: 0, signal: null });
  });

  test("answers a frame over 48 MiB with -32600 and goes on reading", async (t) => {
    const host = start(t);
    const big = JSON.stringify({ jsonrpc: "2.0", id: 99, method: "initialize", params: { pad: "x".repeat(48 * 1024 * 1024) } });
    host.writeLine(big);
    const refused = await host.waitFor((m) => m.error !== undefined);
    assert.equal(refused.id, null);
    assert.equal(refused.error?.code, -32600);
    assert.equal(refused.error.message, `request of ${String(Buffer.byteLength(big))} bytes is larger than the 48 MiB limit`);
    const answer = await host.initialize(FIXTURE);
    assert.equal(answer.error, undefined);
    await host.close();
  });

  test("answers unreadable and too deeply nested frames with -32700", async (t) => {
    const host = start(t);
    host.writeLine("{not json");
    host.writeLine(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":${"[".repeat(300)}${"]".repeat(300)}}`);
    host.process.stdin.write(Buffer.from([0xff, 0xfe, 0x0a]));
    const errors: Message[] = [];
    for (let i = 0; i < 3; i++) errors.push(await host.waitFor((m) => m.error !== undefined && !errors.includes(m)));
    assert.deepEqual(errors.map((m) => [m.id, m.error?.code]), [[null, -32700], [null, -32700], [null, -32700]]);
    assert.match(errors[1]?.error?.message ?? "", /nested deeper than 256 levels/);
    assert.match(errors[2]?.error?.message ?? "", /not UTF-8/);
    await host.close();
  });
});
