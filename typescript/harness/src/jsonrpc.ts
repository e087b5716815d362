// A JSON-RPC 2.0 peer over newline-delimited JSON (spec/harness.md,
// Transport): both sides send requests, responses and notifications, and
// `$/cancelRequest` cancels a request in either direction.
//
// Key design ideas:
// - Lines are split on raw bytes, so a frame over the limit is never held
//   whole: it is counted, dropped, and answered with -32600 (id null) once
//   its newline arrives, and reading goes on with the next frame.
// - Messages are handled in the order they arrive: a `model/delta`
//   notification is delivered before the response of the request it
//   belongs to.
// - Cancelling an outgoing request sends `$/cancelRequest` and keeps
//   waiting for the answer: the other side always answers (exo's
//   `model/complete` answers with what had streamed), so nothing is lost.
//   A request whose signal is already aborted is not sent at all.

import type { Readable } from "node:stream";

/** The largest frame either side reads: 48 MiB. */
export const MAX_FRAME_BYTES = 48 * 1024 * 1024;
/** The deepest nesting of arrays and objects a frame may have. */
export const MAX_NESTING = 256;

/** JSON-RPC error codes used here. */
export const ErrorCodes = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  requestCancelled: -32800,
} as const;

const CODE_NAMES: Record<number, string> = {
  [-32700]: "parse_error",
  [-32600]: "invalid_request",
  [-32601]: "method_not_found",
  [-32602]: "invalid_params",
  [-32603]: "internal",
  [-32800]: "request_cancelled",
};

/** A JSON-RPC request or notification id. */
export type Id = string | number | null;

/** An error answered by (or to) the other side. */
export class RpcError extends Error {
  override name = "RpcError";
  readonly code: number;
  readonly data: Record<string, unknown>;

  constructor(code: number, message: string, data?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.data = { code: CODE_NAMES[code] ?? "error", ...data };
  }

  /** The machine-readable `data.code`, e.g. `invalid_params`. */
  get codeName(): string {
    const name = this.data["code"];
    return typeof name === "string" ? name : "";
  }
}

/** What a request handler gets besides the params. */
export interface RequestContext {
  /** The request's id. */
  id: Id;
  /** Aborted when the other side sends `$/cancelRequest` for it. */
  signal: AbortSignal;
}

export type RequestHandler = (params: unknown, request: RequestContext) => unknown;
export type NotificationHandler = (params: unknown) => void;

/** An outgoing request in flight. */
export interface Pending<R> {
  /** The id it was sent with. */
  id: number;
  /** Its answer. */
  response: Promise<R>;
}

interface Waiting {
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
}

/** Options of a {@link Peer}. */
export interface PeerOptions {
  /** Where diagnostics go (one line each); nowhere by default. */
  log?: (line: string) => void;
  /** The frame limit, in bytes. */
  maxFrameBytes?: number;
}

/**
 * One end of a JSON-RPC connection: reads messages from `input` and writes
 * them, one line each, with `write`.
 */
export class Peer {
  readonly #write: (line: string) => void;
  readonly #log: (line: string) => void;
  readonly #maxFrameBytes: number;
  readonly #requests = new Map<string, RequestHandler>();
  readonly #notifications = new Map<string, NotificationHandler>();
  readonly #waiting = new Map<number, Waiting>();
  readonly #incoming = new Map<string, AbortController>();
  #nextId = 1;
  #closed = false;
  readonly closed: Promise<void>;

  constructor(input: Readable, write: (line: string) => void, options: PeerOptions = {}) {
    this.#write = write;
    this.#log = options.log ?? (() => undefined);
    this.#maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.closed = new Promise((resolve) => {
      const reader = new LineReader(this.#maxFrameBytes, (line) => {
        this.#receive(line);
      }, (bytes) => {
        this.#send({
          jsonrpc: "2.0",
          id: null,
          error: errorObject(
            new RpcError(
              ErrorCodes.invalidRequest,
              `request of ${String(bytes)} bytes is larger than the ${mib(this.#maxFrameBytes)} limit`,
            ),
          ),
        });
      });
      input.on("data", (chunk: Buffer) => {
        reader.push(chunk);
      });
      const end = () => {
        if (this.#closed) return;
        reader.end();
        this.#closed = true;
        for (const waiting of this.#waiting.values()) {
          waiting.reject(new RpcError(ErrorCodes.internal, "the connection closed"));
        }
        this.#waiting.clear();
        resolve();
      };
      input.on("end", end);
      input.on("close", end);
      input.on("error", end);
    });
  }

  /** Serves `method`: the handler's value (or promise) is the result; a
   * thrown {@link RpcError} is sent as it is, anything else as `internal`. */
  onRequest(method: string, handler: RequestHandler): void {
    this.#requests.set(method, handler);
  }

  /** Handles the notification `method`. */
  onNotification(method: string, handler: NotificationHandler): void {
    this.#notifications.set(method, handler);
  }

  /** Sends a request; see {@link Peer.start}. */
  request<R>(method: string, params: unknown, signal?: AbortSignal): Promise<R> {
    return this.start<R>(method, params, signal).response;
  }

  /**
   * Sends a request and returns its id with its answer. When `signal`
   * aborts, `$/cancelRequest` is sent and the answer is still awaited; an
   * answer of `request_cancelled` then rejects with the signal's reason.
   * A request whose signal has already aborted is not sent.
   */
  start<R>(method: string, params: unknown, signal?: AbortSignal): Pending<R> {
    const id = this.#nextId++;
    if (signal?.aborted) {
      return { id, response: Promise.reject(abortReason(signal)) };
    }
    if (this.#closed) {
      return {
        id,
        response: Promise.reject(new RpcError(ErrorCodes.internal, "the connection closed")),
      };
    }
    const response = new Promise<R>((resolve, reject) => {
      this.#waiting.set(id, {
        resolve: resolve as (result: unknown) => void,
        reject,
        signal,
      });
    });
    const line = frame({ jsonrpc: "2.0", id, method, params });
    if (Buffer.byteLength(line) > this.#maxFrameBytes) {
      const waiting = this.#waiting.get(id);
      this.#waiting.delete(id);
      waiting?.reject(
        new RpcError(
          ErrorCodes.invalidRequest,
          `${method} request of ${String(Buffer.byteLength(line))} bytes is larger than the ${mib(this.#maxFrameBytes)} limit`,
        ),
      );
      return { id, response };
    }
    if (signal) {
      const cancel = () => {
        if (this.#waiting.has(id)) this.notify("$/cancelRequest", { id });
      };
      signal.addEventListener("abort", cancel, { once: true });
      void response.then(
        () => { signal.removeEventListener("abort", cancel); },
        () => { signal.removeEventListener("abort", cancel); },
      );
    }
    this.#writeLine(line);
    return { id, response };
  }

  /** Sends a notification. */
  notify(method: string, params: unknown): void {
    const line = frame({ jsonrpc: "2.0", method, params });
    if (Buffer.byteLength(line) > this.#maxFrameBytes) {
      this.#log(`dropped a ${method} notification larger than the ${mib(this.#maxFrameBytes)} limit`);
      return;
    }
    this.#writeLine(line);
  }

  #send(message: Record<string, unknown>): void {
    this.#writeLine(frame(message));
  }

  #writeLine(line: string): void {
    this.#write(line);
  }

  #receive(bytes: Buffer): void {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      this.#parseError("parse error: the frame is not UTF-8");
      return;
    }
    if (text.trim() === "") return;
    if (nestingDepth(bytes) > MAX_NESTING) {
      this.#parseError(`parse error: nested deeper than ${String(MAX_NESTING)} levels`);
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (err) {
      this.#parseError(`parse error: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (Array.isArray(message)) {
      this.#invalid(null, "invalid request: batches are not used on this connection");
      return;
    }
    if (message === null || typeof message !== "object") {
      this.#invalid(null, "invalid request: expected a JSON object");
      return;
    }
    const msg = message as Record<string, unknown>;
    const id = msg["id"];
    if ("method" in msg) {
      if (typeof msg["method"] !== "string") {
        this.#invalid(isId(id) ? id : null, "invalid request: method is not a string");
        return;
      }
      if (msg["jsonrpc"] !== "2.0") {
        this.#invalid(isId(id) ? id : null, "invalid request: jsonrpc is not \"2.0\"");
        return;
      }
      if (!("id" in msg)) {
        this.#notification(msg["method"], msg["params"]);
        return;
      }
      if (!isId(id)) {
        this.#invalid(null, "invalid request: id is not a string, number or null");
        return;
      }
      this.#request(id, msg["method"], msg["params"]);
      return;
    }
    if ("result" in msg || "error" in msg) {
      this.#response(id, msg);
      return;
    }
    this.#invalid(isId(id) ? id : null, "invalid request: no method");
  }

  #parseError(message: string): void {
    this.#send({ jsonrpc: "2.0", id: null, error: errorObject(new RpcError(ErrorCodes.parseError, message)) });
  }

  #invalid(id: Id, message: string): void {
    this.#send({ jsonrpc: "2.0", id, error: errorObject(new RpcError(ErrorCodes.invalidRequest, message)) });
  }

  #notification(method: string, params: unknown): void {
    if (method === "$/cancelRequest") {
      const id = (params as { id?: unknown } | null)?.id;
      if (isId(id)) this.#incoming.get(idKey(id))?.abort();
      return;
    }
    const handler = this.#notifications.get(method);
    if (!handler) {
      this.#log(`ignored the unknown notification ${method}`);
      return;
    }
    try {
      handler(params);
    } catch (err) {
      this.#log(`the ${method} handler threw: ${oneLine(err)}`);
    }
  }

  #request(id: Id, method: string, params: unknown): void {
    const handler = this.#requests.get(method);
    if (!handler) {
      this.#send({
        jsonrpc: "2.0",
        id,
        error: errorObject(new RpcError(ErrorCodes.methodNotFound, `method not found: ${method}`)),
      });
      return;
    }
    const key = idKey(id);
    const controller = new AbortController();
    this.#incoming.set(key, controller);
    const answer = (message: Record<string, unknown>) => {
      if (this.#incoming.get(key) === controller) this.#incoming.delete(key);
      let line: string;
      try {
        line = frame(message);
      } catch (err) {
        line = frame({
          jsonrpc: "2.0",
          id,
          error: errorObject(new RpcError(ErrorCodes.internal, `the ${method} result is not JSON: ${oneLine(err)}`)),
        });
      }
      if (Buffer.byteLength(line) > this.#maxFrameBytes) {
        line = frame({
          jsonrpc: "2.0",
          id,
          error: errorObject(
            new RpcError(
              ErrorCodes.internal,
              `the ${method} result of ${String(Buffer.byteLength(line))} bytes is larger than the ${mib(this.#maxFrameBytes)} limit`,
            ),
          ),
        });
      }
      this.#writeLine(line);
    };
    new Promise((resolve) => { resolve(handler(params ?? {}, { id, signal: controller.signal })); }).then(
      (result) => { answer({ jsonrpc: "2.0", id, result: result ?? {} }); },
      (err: unknown) => {
        const error = err instanceof RpcError ? err : new RpcError(ErrorCodes.internal, oneLine(err));
        answer({ jsonrpc: "2.0", id, error: errorObject(error) });
      },
    );
  }

  #response(id: unknown, msg: Record<string, unknown>): void {
    if (typeof id !== "number") {
      // An error about a frame exo could not read carries id null: it can
      // only be about a request of ours, but not which; log it.
      const error = msg["error"] as { message?: unknown } | undefined;
      const message = typeof error?.message === "string" ? error.message : JSON.stringify(msg);
      this.#log(`the other side reported: ${message}`);
      return;
    }
    const waiting = this.#waiting.get(id);
    if (!waiting) return;
    this.#waiting.delete(id);
    if ("error" in msg && msg["error"] !== undefined && msg["error"] !== null) {
      const error = msg["error"] as { code?: unknown; message?: unknown; data?: unknown };
      const code = typeof error.code === "number" ? error.code : ErrorCodes.internal;
      if (code === ErrorCodes.requestCancelled && waiting.signal?.aborted) {
        waiting.reject(abortReason(waiting.signal));
        return;
      }
      const data = error.data !== null && typeof error.data === "object" ? (error.data as Record<string, unknown>) : {};
      waiting.reject(new RpcError(code, typeof error.message === "string" ? error.message : "error", data));
      return;
    }
    waiting.resolve(msg["result"]);
  }
}

/** Splits a byte stream into lines, dropping (and reporting) lines over
 * the limit without holding them. */
class LineReader {
  readonly #max: number;
  readonly #line: (bytes: Buffer) => void;
  readonly #tooLarge: (bytes: number) => void;
  #chunks: Buffer[] = [];
  #size = 0;
  #dropping = false;

  constructor(max: number, line: (bytes: Buffer) => void, tooLarge: (bytes: number) => void) {
    this.#max = max;
    this.#line = line;
    this.#tooLarge = tooLarge;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      const piece = chunk.subarray(start, newline < 0 ? chunk.length : newline);
      this.#size += piece.length;
      if (!this.#dropping) {
        if (this.#size > this.#max) {
          this.#dropping = true;
          this.#chunks = [];
        } else {
          this.#chunks.push(piece);
        }
      }
      if (newline < 0) return;
      this.#finish();
      start = newline + 1;
    }
  }

  /** The input ended: a last line without its newline still counts. */
  end(): void {
    if (this.#size > 0) this.#finish();
  }

  #finish(): void {
    if (this.#dropping) {
      this.#tooLarge(this.#size);
    } else {
      let bytes = Buffer.concat(this.#chunks, this.#size);
      if (bytes.length > 0 && bytes[bytes.length - 1] === 13) bytes = bytes.subarray(0, bytes.length - 1);
      this.#line(bytes);
    }
    this.#chunks = [];
    this.#size = 0;
    this.#dropping = false;
  }
}

/** How deeply a JSON text nests arrays and objects (outside strings). */
export function nestingDepth(bytes: Uint8Array): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === 0x5c) i++; // backslash: skip the escaped byte
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) {
      inString = true;
    } else if (byte === 0x5b || byte === 0x7b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (byte === 0x5d || byte === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

function frame(message: Record<string, unknown>): string {
  return `${JSON.stringify(message)}\n`;
}

function errorObject(error: RpcError): Record<string, unknown> {
  return { code: error.code, message: error.message, data: error.data };
}

function isId(id: unknown): id is Id {
  return id === null || typeof id === "string" || typeof id === "number";
}

function idKey(id: Id): string {
  return JSON.stringify(id);
}

function mib(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${String(bytes / (1024 * 1024))} MiB` : `${String(bytes)} bytes`;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("This operation was aborted", "AbortError");
}

/** An error's message on one line (or the value, for a non-error). */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  return text.replace(/\s*\n\s*/g, " ").trim() || "error";
}
