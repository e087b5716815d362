// A JSON-RPC 2.0 client connection to the exo daemon, over newline-delimited
// JSON on any pair of streams: a Unix socket, or `exo daemon --stdio`'s
// stdout and stdin (spec/protocol.md, Transports and JSON-RPC).
//
// Key design ideas:
// - Messages are handled in the order they arrive, synchronously: a
//   response's `onResult` hook runs before the next message is read, so a
//   caller that learns a watch id from a response is ready for the
//   `events/appended` right behind it (a promise would settle too late).
// - Only this client sends requests; the daemon sends responses and
//   notifications. Anything else it sends is logged and dropped.
// - An error with `id` null (a frame the daemon could not read) is taken as
//   the answer of the only request outstanding, as the spec asks; with
//   several outstanding it is only logged.
// - Closing rejects every outstanding request with `ConnectionClosed`;
//   nothing is retried here (the session above reconnects).
// - The bytes of a frame still arriving are kept as the chunks they came
//   in, and only each new chunk is searched for the newline: a frame of
//   tens of megabytes costs one pass and one decode, not a rescan and a
//   string copy per chunk. A frame longer than `maxFrameBytes` closes the
//   connection instead of growing memory without end. The bound is far
//   above the daemon's own (48 MiB, for what it reads), because its
//   responses are not bounded (a replay of several large events is one
//   frame): it is the longest string Node can make, which no legitimate
//   frame reaches and a longer one could not be decoded anyway.

import { constants } from "node:buffer";
import type { Readable, Writable } from "node:stream";

import type { ErrorData, Method, Notification, Notifications, ParamsOf, ResultOf } from "./types";

/** An error the daemon answered, with its machine-readable `data.code`. */
export class RpcError extends Error {
  override name = "RpcError";
  readonly code: number;
  readonly data: ErrorData;

  constructor(code: number, message: string, data?: ErrorData) {
    super(message);
    this.code = code;
    this.data = data ?? { code: "internal" };
  }

  /** `data.code`: `not_found`, `conflict`, `busy`, ... */
  get kind(): string {
    return this.data.code;
  }
}

/** The connection ended before the request was answered. */
export class ConnectionClosed extends Error {
  override name = "ConnectionClosed";
}

/** Options of one request. */
export interface RequestOptions<R> {
  /** Aborting sends `$/cancelRequest`; the daemon's answer still settles it. */
  signal?: AbortSignal;
  /** Runs with the result as soon as the response is read, before any later message. */
  onResult?: (result: R) => void;
}

interface Waiting {
  method: string;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  onResult?: ((result: unknown) => void) | undefined;
}

type NotificationHandler = <N extends Notification>(method: N, params: Notifications[N]) => void;

/**
 * The longest frame a connection reads unless told otherwise: 1 GiB, or the
 * longest string this Node can make when that is less (512 MiB on 64-bit).
 */
export const DEFAULT_MAX_FRAME_BYTES = Math.min(2 ** 30, constants.MAX_STRING_LENGTH);

/** Options of a connection. */
export interface ConnectionOptions {
  /** The longest frame read; a longer one closes the connection. */
  maxFrameBytes?: number;
}

/** One connection; see the file's header. */
export class Connection {
  readonly #input: Readable;
  readonly #output: Writable;
  readonly #log: (line: string) => void;
  readonly #waiting = new Map<number, Waiting>();
  readonly #notificationHandlers = new Set<NotificationHandler>();
  readonly #closeHandlers = new Set<(reason: string) => void>();
  /** The start of a frame still arriving, as the chunks it came in. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #maxFrameBytes: number;
  #nextId = 1;
  #closed: string | undefined;

  constructor(
    input: Readable,
    output: Writable,
    log: (line: string) => void = () => undefined,
    options: ConnectionOptions = {},
  ) {
    this.#input = input;
    this.#output = output;
    this.#log = log;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    input.on("data", (chunk: Buffer | string) => {
      if (this.#closed !== undefined) return;
      this.#read(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk);
    });
    input.on("end", () => {
      this.close("the daemon closed the connection");
    });
    input.on("close", () => {
      this.close("the daemon closed the connection");
    });
    input.on("error", (err) => {
      this.close(`connection error: ${err.message}`);
    });
    output.on("error", (err) => {
      this.close(`connection error: ${err.message}`);
    });
  }

  /** Whether the connection has ended (and why). */
  get closed(): string | undefined {
    return this.#closed;
  }

  /** The longest frame read; a longer one closes the connection. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  set maxFrameBytes(bytes: number) {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`not a frame bound: ${String(bytes)}`);
    this.#maxFrameBytes = bytes;
  }

  /** Sends `method` and resolves with its result, or rejects with {@link RpcError}. */
  request<M extends Method>(
    method: M,
    params: ParamsOf<M>,
    options: RequestOptions<ResultOf<M>> = {},
  ): Promise<ResultOf<M>> {
    if (this.#closed !== undefined) {
      return Promise.reject(new ConnectionClosed(this.#closed));
    }
    const { signal, onResult } = options;
    if (signal?.aborted) {
      return Promise.reject(new RpcError(-32800, "request cancelled", { code: "request_cancelled" }));
    }
    const id = this.#nextId++;
    const response = new Promise<ResultOf<M>>((resolve, reject) => {
      this.#waiting.set(id, {
        method,
        resolve: resolve as (result: unknown) => void,
        reject,
        onResult: onResult as ((result: unknown) => void) | undefined,
      });
    });
    if (signal) {
      const cancel = () => {
        if (this.#waiting.has(id)) this.#send({ jsonrpc: "2.0", method: "$/cancelRequest", params: { id } });
      };
      signal.addEventListener("abort", cancel, { once: true });
      const done = () => {
        signal.removeEventListener("abort", cancel);
      };
      response.then(done, done);
    }
    this.#send({ jsonrpc: "2.0", id, method, params });
    return response;
  }

  /** Calls `handler` with every notification the daemon sends; returns a disposer. */
  onNotification(handler: NotificationHandler): () => void {
    this.#notificationHandlers.add(handler);
    return () => this.#notificationHandlers.delete(handler);
  }

  /** Calls `handler` once when the connection ends. */
  onClose(handler: (reason: string) => void): () => void {
    if (this.#closed !== undefined) {
      handler(this.#closed);
      return () => undefined;
    }
    this.#closeHandlers.add(handler);
    return () => this.#closeHandlers.delete(handler);
  }

  /** Ends the connection; outstanding requests reject with {@link ConnectionClosed}. */
  close(reason = "closed by the client"): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    this.#pending = [];
    this.#pendingBytes = 0;
    for (const waiting of this.#waiting.values()) {
      waiting.reject(new ConnectionClosed(`${waiting.method}: ${reason}`));
    }
    this.#waiting.clear();
    this.#output.end();
    for (const handler of this.#closeHandlers) {
      try {
        handler(reason);
      } catch (err) {
        this.#log(`a close handler threw: ${String(err)}`);
      }
    }
    this.#closeHandlers.clear();
  }

  #send(message: Record<string, unknown>): void {
    this.#output.write(`${JSON.stringify(message)}\n`);
  }

  #read(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      const end = chunk.subarray(start, newline);
      start = newline + 1;
      const length = this.#pendingBytes + end.length;
      if (length > this.#maxFrameBytes) {
        this.#tooLong(length);
        return;
      }
      const frame = this.#pending.length === 0 ? end : Buffer.concat([...this.#pending, end], length);
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#receive(frame);
      if (this.#closed !== undefined) return;
    }
    if (start === chunk.length) return;
    const rest = chunk.subarray(start);
    if (this.#pendingBytes + rest.length > this.#maxFrameBytes) {
      this.#tooLong(this.#pendingBytes + rest.length);
      return;
    }
    this.#pending.push(rest);
    this.#pendingBytes += rest.length;
  }

  /** A frame past the bound: nothing more is read from this peer. */
  #tooLong(seen: number): void {
    const bound = this.#maxFrameBytes;
    this.#log(`a frame from the daemon reached ${String(seen)} bytes, past the bound of ${String(bound)}`);
    this.close(`the daemon sent a frame longer than ${describeBytes(bound)}, the most this client reads`);
    this.#input.destroy();
  }

  #receive(frame: Buffer): void {
    const line = frame.toString("utf8");
    if (line.trim() === "") return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.#log(`the daemon sent a frame that is not JSON (${String(frame.length)} bytes): ${JSON.stringify(line.slice(0, 200))}`);
      return;
    }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      this.#log(`unexpected message from the daemon: ${JSON.stringify(line.slice(0, 200))}`);
      return;
    }
    const msg = message as Record<string, unknown>;
    if (typeof msg["method"] === "string" && !("id" in msg)) {
      this.#notification(msg["method"] as Notification, msg["params"]);
    } else if ("result" in msg || "error" in msg) {
      this.#response(msg);
    } else {
      this.#log(`unexpected message from the daemon: ${JSON.stringify(line.slice(0, 200))}`);
    }
  }

  #notification(method: Notification, params: unknown): void {
    for (const handler of this.#notificationHandlers) {
      try {
        handler(method, params as Notifications[typeof method]);
      } catch (err) {
        this.#log(`the ${method} handler threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
  }

  #response(msg: Record<string, unknown>): void {
    let id = msg["id"];
    if (id === null && this.#waiting.size === 1) {
      id = this.#waiting.keys().next().value;
    }
    if (typeof id !== "number") {
      this.#log(`a response to no request of ours: ${JSON.stringify(msg).slice(0, 200)}`);
      return;
    }
    const waiting = this.#waiting.get(id);
    if (!waiting) return;
    this.#waiting.delete(id);
    const error = msg["error"] as { code?: unknown; message?: unknown; data?: unknown } | null | undefined;
    if (error !== undefined && error !== null) {
      const code = typeof error.code === "number" ? error.code : -32603;
      const text = typeof error.message === "string" ? error.message : "error";
      waiting.reject(new RpcError(code, text, error.data as ErrorData | undefined));
      return;
    }
    const result = msg["result"];
    if (waiting.onResult) {
      try {
        waiting.onResult(result);
      } catch (err) {
        this.#log(`the ${waiting.method} result hook threw: ${String(err)}`);
      }
    }
    waiting.resolve(result);
  }
}

/** "64 MiB", "1.5 KiB", "300 bytes". */
function describeBytes(bytes: number): string {
  for (const [unit, size] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (bytes >= size) return `${String(Math.round((bytes / size) * 10) / 10)} ${unit}`;
  }
  return `${String(bytes)} bytes`;
}
