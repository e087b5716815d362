// The JSON-RPC peer on in-memory streams: framing at chunk boundaries,
// requests in both directions, cancellation, limits.

import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";

import { nestingDepth, Peer, RpcError } from "../src/jsonrpc.js";

interface Wire {
  peer: Peer;
  input: PassThrough;
  sent: Record<string, unknown>[];
  next: () => Promise<Record<string, unknown>>;
}

function wire(options: { maxFrameBytes?: number } = {}): Wire {
  const input = new PassThrough();
  const sent: Record<string, unknown>[] = [];
  const waiting: ((m: Record<string, unknown>) => void)[] = [];
  let read = 0;
  const peer = new Peer(
    input,
    (line) => {
      assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"), "one message per line");
      sent.push(JSON.parse(line) as Record<string, unknown>);
      waiting.shift()?.(sent[read++] as Record<string, unknown>);
    },
    options,
  );
  const next = () =>
    read < sent.length ? Promise.resolve(sent[read++] as Record<string, unknown>) : new Promise<Record<string, unknown>>((resolve) => waiting.push(resolve));
  return { peer, input, sent, next };
}

test("reads messages split across chunks, CRLF endings, blank lines and a last line without newline", async () => {
  const { peer, input, next } = wire();
  peer.onRequest("echo", (params) => params);
  input.write('{"jsonrpc":"2.0","id":1,"met');
  input.write('hod":"echo","params":{"a":"é"}}\r\n\n  \n{"jsonrpc":"2.0","id":2,');
  input.end('"method":"echo","params":[1]}');
  assert.deepEqual(await next(), { jsonrpc: "2.0", id: 1, result: { a: "é" } });
  assert.deepEqual(await next(), { jsonrpc: "2.0", id: 2, result: [1] });
  await peer.closed;
});

test("answers unknown methods, invalid messages and batches", async () => {
  const { input, next } = wire();
  input.write('{"jsonrpc":"2.0","id":"x","method":"nope"}\n');
  input.write('{"jsonrpc":"1.0","id":3,"method":"nope"}\n');
  input.write("[]\n");
  input.write("42\n");
  assert.deepEqual(await next(), { jsonrpc: "2.0", id: "x", error: { code: -32601, message: "method not found: nope", data: { code: "method_not_found" } } });
  const codes = [(await next())["error"], (await next())["error"], (await next())["error"]].map((e) => (e as { code: number }).code);
  assert.deepEqual(codes, [-32600, -32600, -32600]);
});

test("a handler's RpcError is answered as it is, any other throw as internal", async () => {
  const { peer, input, next } = wire();
  peer.onRequest("bad", () => {
    throw new RpcError(-32602, "bad params", { what: "x" });
  });
  peer.onRequest("broken", () => Promise.reject(new Error("boom\nagain")));
  input.write('{"jsonrpc":"2.0","id":1,"method":"bad"}\n{"jsonrpc":"2.0","id":2,"method":"broken"}\n');
  assert.deepEqual((await next())["error"], { code: -32602, message: "bad params", data: { code: "invalid_params", what: "x" } });
  assert.deepEqual((await next())["error"], { code: -32603, message: "boom again", data: { code: "internal" } });
});

test("$/cancelRequest aborts the signal of the request it names, matched by exact id", async () => {
  const { peer, input, next } = wire();
  peer.onRequest("wait", (_params, { signal }) => new Promise((resolve) => {
    signal.addEventListener("abort", () => {
      resolve({ cancelled: true });
    });
  }));
  input.write('{"jsonrpc":"2.0","id":7,"method":"wait"}\n');
  input.write('{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"7"}}\n');
  input.write('{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":7}}\n');
  assert.deepEqual(await next(), { jsonrpc: "2.0", id: 7, result: { cancelled: true } });
});

test("outgoing requests: results, errors, and a cancel that still waits for the answer", async () => {
  const { peer, input, next, sent } = wire();
  const ok = peer.request("a", { x: 1 });
  const failing = peer.request("b", {});
  const controller = new AbortController();
  const cancelled = peer.request("c", {}, controller.signal);
  const [a, b, c] = [await next(), await next(), await next()];
  assert.deepEqual(a, { jsonrpc: "2.0", id: 1, method: "a", params: { x: 1 } });
  controller.abort();
  assert.deepEqual(await next(), { jsonrpc: "2.0", method: "$/cancelRequest", params: { id: c["id"] } });
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: b["id"], error: { code: -32010, message: "model down", data: { code: "model", kind: "http" } } })}\n`);
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: a["id"], result: { y: 2 } })}\n`);
  input.write(`${JSON.stringify({ jsonrpc: "2.0", id: c["id"], error: { code: -32800, message: "request cancelled", data: { code: "request_cancelled" } } })}\n`);
  assert.deepEqual(await ok, { y: 2 });
  await assert.rejects(failing, (err: RpcError) => err.code === -32010 && err.codeName === "model" && err.data["kind"] === "http");
  await assert.rejects(cancelled, { name: "AbortError" });
  const sentBefore = sent.length;
  await assert.rejects(peer.request("d", {}, AbortSignal.abort()), { name: "AbortError" });
  assert.equal(sent.length, sentBefore, "a request already aborted is not sent");
  input.end();
  await peer.closed;
  await assert.rejects(peer.request("e", {}), /the connection closed/);
});

test("a frame over the limit is dropped without being held, and reading goes on", async () => {
  const { peer, input, next } = wire({ maxFrameBytes: 64 });
  peer.onRequest("echo", (params) => params);
  const head = `{"jsonrpc":"2.0","id":1,"method":"echo","params":"${"x".repeat(40)}`;
  const tail = `${"y".repeat(40)}"}`;
  input.write(head);
  input.write(`${tail}\n{"jsonrpc":"2.0","id":2,"method":"echo","params":"ok"}\n`);
  const refused = await next();
  assert.equal(refused["id"], null);
  const bytes = head.length + tail.length;
  assert.deepEqual(refused["error"], { code: -32600, message: `request of ${String(bytes)} bytes is larger than the 64 bytes limit`, data: { code: "invalid_request" } });
  assert.deepEqual(await next(), { jsonrpc: "2.0", id: 2, result: "ok" });
  await assert.rejects(peer.request("big", "z".repeat(100)), /big request of \d+ bytes is larger than the 64 bytes limit/);
});

test("nesting depth ignores brackets inside strings", () => {
  assert.equal(nestingDepth(Buffer.from('{"a":[[1]],"b":"[[[[{{"}')), 3);
  assert.equal(nestingDepth(Buffer.from('"\\"[[[" ')), 0);
  assert.equal(nestingDepth(Buffer.from("[".repeat(300) + "]".repeat(300))), 300);
});
