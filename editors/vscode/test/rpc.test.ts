// The connection on its own, over an in-memory pair of streams: framing,
// ordering, the `onResult` hook, errors with id null, cancellation, close.

import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";

import { ConnectionClosed, Connection, RpcError } from "../src/protocol/rpc";

/** A connection and the daemon's side of it: what the client wrote, and a way to answer. */
function pair() {
  const fromDaemon = new PassThrough();
  const toDaemon = new PassThrough();
  const sent: Record<string, unknown>[] = [];
  let partial = "";
  toDaemon.setEncoding("utf8");
  toDaemon.on("data", (chunk: string) => {
    partial += chunk;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) sent.push(JSON.parse(line) as Record<string, unknown>);
  });
  const connection = new Connection(fromDaemon, toDaemon);
  const reply = (...messages: object[]) => {
    fromDaemon.write(messages.map((message) => `${JSON.stringify(message)}\n`).join(""));
  };
  return { connection, sent, reply, fromDaemon };
}

async function tick(): Promise<void> {
  await new Promise((done) => setImmediate(done));
}

test("requests are framed one per line and matched by id, in any order", async () => {
  const { connection, sent, reply } = pair();
  const first = connection.request("ping", {});
  const second = connection.request("agent/list", {});
  await tick();
  assert.deepEqual(sent.map((message) => [message["id"], message["method"]]), [[1, "ping"], [2, "agent/list"]]);
  reply({ jsonrpc: "2.0", id: 2, result: { agents: [] } }, { jsonrpc: "2.0", id: 1, result: {} });
  assert.deepEqual(await second, { agents: [] });
  assert.deepEqual(await first, {});
});

test("onResult runs before the notification right behind the response", async () => {
  const { connection, reply } = pair();
  const order: string[] = [];
  connection.onNotification((method) => order.push(method));
  const watched = connection.request(
    "events/watch",
    { agent: "a", conversation: "c" },
    { onResult: (result) => order.push(`watch ${String(result.watch)}`) },
  );
  await tick();
  // One chunk: the response, then the watch's first notification.
  reply(
    { jsonrpc: "2.0", id: 1, result: { watch: 1, conversation: "x" } },
    { jsonrpc: "2.0", method: "events/appended", params: { watch: 1, conversation: "x", events: [] } },
  );
  await watched;
  assert.deepEqual(order, ["watch 1", "events/appended"]);
});

test("errors carry code and data; an error with id null answers the only request outstanding", async () => {
  const { connection, reply } = pair();
  const missing = connection.request("agent/get", { agent: "nope" });
  await tick();
  reply({ jsonrpc: "2.0", id: 1, error: { code: -32001, message: "agent \"nope\" not found", data: { code: "not_found", what: "agent", key: "nope" } } });
  await assert.rejects(missing, (err: unknown) => err instanceof RpcError && err.kind === "not_found" && err.data.what === "agent");
  const unreadable = connection.request("ping", {});
  await tick();
  reply({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error", data: { code: "parse_error" } } });
  await assert.rejects(unreadable, (err: unknown) => err instanceof RpcError && err.code === -32700);
});

test("aborting sends $/cancelRequest and the daemon's answer settles the request", async () => {
  const { connection, sent, reply } = pair();
  const controller = new AbortController();
  const slow = connection.request("events/list", { agent: "a", conversation: "c" }, { signal: controller.signal });
  controller.abort();
  await tick();
  assert.deepEqual(sent[1], { jsonrpc: "2.0", method: "$/cancelRequest", params: { id: 1 } });
  reply({ jsonrpc: "2.0", id: 1, error: { code: -32800, message: "request cancelled", data: { code: "request_cancelled" } } });
  await assert.rejects(slow, (err: unknown) => err instanceof RpcError && err.kind === "request_cancelled");
});

test("the daemon closing rejects what is outstanding, and later requests at once", async () => {
  const { connection, fromDaemon } = pair();
  const reasons: string[] = [];
  connection.onClose((reason) => reasons.push(reason));
  const outstanding = connection.request("ping", {});
  fromDaemon.end();
  await assert.rejects(outstanding, ConnectionClosed);
  await assert.rejects(connection.request("ping", {}), ConnectionClosed);
  assert.equal(reasons.length, 1);
});
