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

/** One connection; see the file's header. */
export class Connection {
  readonly #output: Writable;
  readonly #log: (line: string) => void;
  readonly #waiting = new Map<number, Waiting>();
  readonly #notificationHandlers = new Set<NotificationHandler>();
  readonly #closeHandlers = new Set<(reason: string) => void>();
  #buffer = "";
  #nextId = 1;
  #closed: string | undefined;

  constructor(input: Readable, output: Writable, log: (line: string) => void = () => undefined) {
    this.#output = output;
    this.#log = log;
    input.setEncoding("utf8");
    input.on("data", (chunk: string) => {
      this.#read(chunk);
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

  #read(chunk: string): void {
    this.#buffer += chunk;
    let newline = this.#buffer.indexOf("\n");
    while (newline !== -1) {
      const line = this.#buffer.slice(0, newline);
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line.trim() !== "") this.#receive(line);
      if (this.#closed !== undefined) return;
      newline = this.#buffer.indexOf("\n");
    }
  }

  #receive(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.#log(`unreadable message from the daemon: ${line.slice(0, 200)}`);
      return;
    }
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      this.#log(`unexpected message from the daemon: ${line.slice(0, 200)}`);
      return;
    }
    const msg = message as Record<string, unknown>;
    if (typeof msg["method"] === "string" && !("id" in msg)) {
      this.#notification(msg["method"] as Notification, msg["params"]);
    } else if ("result" in msg || "error" in msg) {
      this.#response(msg);
    } else {
      this.#log(`unexpected message from the daemon: ${line.slice(0, 200)}`);
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
