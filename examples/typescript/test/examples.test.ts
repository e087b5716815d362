// The example harnesses, run by the real runner against a fake exo
// (@exo/harness/testing): a scripted model, exo's tools answered by the
// fake, and an in-memory log the harnesses read back.

import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";

import { FakeHost } from "@exo/harness/testing";

import { COMPACT_AT, type Policy } from "../evolving-harness.ts";

const BASIC = fileURLToPath(new URL("../basic-harness.ts", import.meta.url));
const EVOLVING = fileURLToPath(new URL("../evolving-harness.ts", import.meta.url));

async function start(t: TestContext, module: string): Promise<FakeHost> {
  const host = FakeHost.start();
  t.after(() => {
    host.kill();
  });
  const answer = await host.initialize(module);
  assert.equal(answer.error, undefined, JSON.stringify(answer.error));
  return host;
}

describe("basic-harness.ts", { timeout: 60_000 }, () => {
  test("runs the model's tool calls through exo and stops when it answers", async (t) => {
    const host = await start(t, BASIC);
    host.record({ kind: "message", role: "user", content: [{ type: "text", text: "earlier question" }] }, null);
    host.record({ kind: "message", role: "assistant", content: [{ type: "text", text: "earlier answer" }] }, null);
    host.scriptModel(
      { text: "Let me look.", tool_calls: [{ call_id: "c1", name: "list_files", arguments: { path: "." } }] },
      { text: "There are two files." },
    );
    assert.deepEqual(await host.turn("What is here?"), { status: "completed", text: "There are two files." });

    const [first, second] = host.modelCalls;
    assert.deepEqual(first?.items, [
      { type: "message", role: "user", content: [{ type: "text", text: "earlier question" }] },
      { type: "message", role: "assistant", content: [{ type: "text", text: "earlier answer" }] },
      { type: "message", role: "user", content: [{ type: "text", text: "What is here?" }] },
    ]);
    assert.deepEqual(first.tools?.map((tool) => tool.name), ["shell", "read_file", "write_file", "edit_file", "list_files", "grep"]);
    assert.deepEqual(second?.items.slice(3), [
      { type: "message", role: "assistant", content: "Let me look." },
      { type: "tool_call", call_id: "c1", name: "list_files", arguments: { path: "." } },
      { type: "tool_result", call_id: "c1", output: JSON.stringify({ ran: "list_files", arguments: { path: "." } }), is_error: false },
    ]);
    const runs = host.received.filter((m) => m.method === "tool/run").map((m) => m.params);
    assert.deepEqual(runs, [{ call_id: "c1", name: "list_files", arguments: { path: "." } }]);
  });

  test("stops at the round limit", async (t) => {
    const host = await start(t, BASIC);
    const again = { text: "Once more.", tool_calls: [{ name: "shell", arguments: { command: "make" } }] };
    host.scriptModel(again, again, again);
    assert.deepEqual(await host.turn("Build it.", { max_rounds: 2 }), { status: "max_rounds", text: "Once more." });
    assert.equal(host.modelCalls.length, 2);
  });
});

describe("evolving-harness.ts", { timeout: 60_000 }, () => {
  test("learns from denials and failures in its history, and records its policy", async (t) => {
    const host = await start(t, EVOLVING);
    for (const [id, tool, output] of [
      ["d1", "write_file", { error: "denied: the user declined this call" }],
      ["d2", "write_file", { error: "denied: the user declined this call" }],
      ["f1", "shell", { error: "exit 1" }],
      ["f2", "shell", { error: "exit 1" }],
      ["f3", "shell", { error: "exit 2" }],
    ] as const) {
      host.record({ kind: "tool_call", call_id: id, name: tool, arguments: {} }, null);
      host.record({ kind: "tool_result", call_id: id, output, is_error: true }, null);
    }
    host.scriptModel({ text: "Understood." });
    assert.deepEqual(await host.turn("Carry on."), { status: "completed", text: "Understood." });

    const call = host.modelCalls[0];
    assert.deepEqual(call?.tools?.map((tool) => tool.name), ["shell", "read_file", "edit_file", "list_files", "grep"], "write_file is no longer offered");
    assert.match(call.instructions ?? "", /^You are a coding agent\.\n\nLearnt from this conversation so far:\n/);
    assert.match(call.instructions ?? "", /The user denied write_file 2 times/);
    assert.match(call.instructions ?? "", /shell failed 3 times/);

    const policies = host.custom("harness.evolving.policy");
    assert.equal(policies.length, 1);
    const policy = (policies[0] as { payload: Policy }).payload;
    assert.deepEqual(policy.denials, { write_file: 2 });
    assert.deepEqual(policy.failures, { shell: 3 });
  });

  test("re-reads its policy each turn and learns only from what came after it", async (t) => {
    const host = await start(t, EVOLVING);
    host.scriptModel({ text: "x".repeat(2_000) }, { text: "Short." });
    await host.turn("Explain everything.");
    const firstPolicy = host.custom("harness.evolving.policy").at(-1) as { id: string; payload: Policy };
    assert.equal(firstPolicy.payload.answers, 0);
    assert.equal(host.modelCalls[0]?.instructions, "You are a coding agent.");

    const from = host.received.length;
    await host.turn("And now?");
    const reads = host.received.slice(from).filter((m) => m.method === "events/list").map((m) => m.params as { after?: string });
    assert.ok(reads.some((params) => params.after === firstPolicy.payload.cursor), "it read on from its cursor");
    const policy = (host.custom("harness.evolving.policy").at(-1) as { payload: Policy }).payload;
    assert.deepEqual([policy.answers, policy.answerChars], [1, 2_000]);
    assert.match(host.modelCalls[1]?.instructions ?? "", /Your answers here have been long: keep them short\./);
  });

  test("compacts a long history: an unrecorded summary, recorded as exo.compaction", async (t) => {
    const host = await start(t, EVOLVING);
    const long = "y".repeat(COMPACT_AT);
    host.record({ kind: "message", role: "user", content: [{ type: "text", text: long }] }, null);
    host.record({ kind: "message", role: "assistant", content: [{ type: "text", text: "Noted." }] }, null);
    host.scriptModel({ text: "The user pasted a long text; I noted it." }, { text: "Done." });
    assert.deepEqual(await host.turn("Now what?"), { status: "completed", text: "Done." });

    const [summaryCall, mainCall] = host.modelCalls;
    assert.equal(summaryCall?.record, false);
    assert.equal(summaryCall.items.length, 3);
    const compactions = host.custom("exo.compaction");
    assert.equal(compactions.length, 1);
    const summary = "The user pasted a long text; I noted it.\n\nThen the user wrote:\n\nNow what?";
    assert.deepEqual((compactions[0] as { payload: unknown }).payload, { summary });
    assert.deepEqual(mainCall?.items, [{ type: "message", role: "user", content: `A summary of the conversation so far:\n\n${summary}` }]);
    assert.equal(mainCall.record, true);

    // The next turn sees what exo shows from the compaction on: no second one.
    host.scriptModel({ text: "Still here." });
    await host.turn("Next?");
    assert.equal(host.custom("exo.compaction").length, 1);
    assert.match(JSON.stringify(host.modelCalls[2]?.items[0]), /A summary of the conversation so far/);
  });
});
