// The connection on its own, over an in-memory pair of streams or a fake
// daemon on a local socket: framing (large frames, the frame bound, frames
// that are not JSON), ordering, the `onResult` hook, errors with id null,
// cancellation, close.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, type Writable } from "node:stream";
import { test } from "node:test";

import { ConnectionClosed, Connection, DEFAULT_MAX_FRAME_BYTES, RpcError } from "../src/protocol/rpc";

/** A connection and the daemon's side of it: what the client wrote, and a way to answer. */
function pair(options: { maxFrameBytes?: number; log?: (line: string) => void } = {}) {
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
  const connection = new Connection(fromDaemon, toDaemon, options.log, options);
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

/** Writes `bytes` to `stream` in pieces of `size`, waiting whenever it asks to. */
async function writeInPieces(stream: Writable, bytes: Buffer, size: number): Promise<void> {
  // Read through a function: a write can destroy the stream (the client hangs up).
  const gone = () => stream.destroyed;
  for (let at = 0; at < bytes.length && !gone(); at += size) {
    if (!stream.write(bytes.subarray(at, at + size)) && !gone()) {
      await new Promise((done) => stream.once("drain", done));
    }
  }
}

test("a frame of tens of megabytes, in pieces that split characters, is read whole", { timeout: 60_000 }, async () => {
  const { connection, fromDaemon } = pair();
  assert.equal(connection.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  // Three-byte characters, and pieces of a size that cuts them; more than
  // the daemon reads (48 MiB): its responses are not bounded by that.
  const text = "é€x".repeat(12_000_000);
  const answer = connection.request("ping", {});
  await tick();
  const frame = Buffer.from(`${JSON.stringify({ jsonrpc: "2.0", id: 1, result: { text } })}\n`);
  assert.ok(frame.length > 64 * 1024 * 1024, String(frame.length));
  await writeInPieces(fromDaemon, frame, 65_537);
  const result = (await answer) as unknown as { text: string };
  assert.equal(result.text.length, text.length);
  assert.ok(result.text === text, "the text came back changed");
  // The connection goes on after it.
  const next = connection.request("ping", {});
  await tick();
  fromDaemon.write(`${JSON.stringify({ jsonrpc: "2.0", id: 2, result: {} })}\n`);
  assert.deepEqual(await next, {});
});

test("a frame past the bound closes the connection with a clear error", { timeout: 60_000 }, async () => {
  const { connection, fromDaemon } = pair({ maxFrameBytes: 1024 * 1024 });
  const reasons: string[] = [];
  connection.onClose((reason) => reasons.push(reason));
  const answer = assert.rejects(connection.request("ping", {}), (err: unknown) => {
    assert.ok(err instanceof ConnectionClosed);
    assert.match(err.message, /^ping: the daemon sent a frame longer than 1 MiB, the most this client reads$/);
    return true;
  });
  await tick();
  // Two megabytes and no newline: a frame that would never end.
  await writeInPieces(fromDaemon, Buffer.alloc(2 * 1024 * 1024, "x"), 64 * 1024);
  await answer;
  assert.ok(fromDaemon.destroyed, "the client stops reading");
  assert.deepEqual(reasons, ["the daemon sent a frame longer than 1 MiB, the most this client reads"]);
  await assert.rejects(connection.request("ping", {}), ConnectionClosed);
});

test("a fake daemon on a socket sending a frame past the bound is cut off", { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "exo-rpc-test-"));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const path = join(dir, "fake.sock");
  let peer: Socket | undefined;
  const peerClosed = new Promise<void>((done) => {
    const server = createServer((socket) => {
      peer = socket;
      socket.on("error", () => undefined);
      socket.on("close", () => {
        server.close();
        done();
      });
      // Answers the first request with a frame that does not end.
      socket.once("data", () => {
        const piece = Buffer.alloc(1024 * 1024, "y");
        const flood = async () => {
          for (let sent = 0; sent <= 8 * 1024 * 1024 && !socket.destroyed; sent += piece.length) {
            if (!socket.write(piece)) await new Promise((resume) => socket.once("drain", resume));
          }
        };
        void flood().catch(() => undefined);
      });
    });
    server.listen(path);
  });
  await new Promise<void>((ready) => setImmediate(ready));
  const socket = connect(path);
  await new Promise((ready) => socket.once("connect", ready));
  const connection = new Connection(socket, socket, undefined, { maxFrameBytes: 8 * 1024 * 1024 });
  await assert.rejects(connection.request("ping", {}), (err: unknown) =>
    err instanceof ConnectionClosed && err.message.includes("a frame longer than 8 MiB"));
  // The client hung up: the peer's socket closes, not only ours.
  await peerClosed;
  assert.ok(peer?.destroyed);
});

test("a frame that is not JSON is logged as such and dropped; the next one is read", async () => {
  const logs: string[] = [];
  const { connection, fromDaemon, reply } = pair({ log: (line) => logs.push(line) });
  const answer = connection.request("ping", {});
  await tick();
  fromDaemon.write("this is not json\n");
  reply({ jsonrpc: "2.0", id: 1, result: {} });
  assert.deepEqual(await answer, {});
  assert.equal(logs.length, 1);
  assert.match(logs[0] ?? "", /^the daemon sent a frame that is not JSON \(16 bytes\): "this is not json"$/);
});
