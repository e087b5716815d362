// A session with one root's daemon that outlives connections: it connects
// (starting a daemon when none runs and the user asked for one), reconnects
// when the daemon comes back, and keeps conversation watches going across
// connections.
//
// Key design ideas:
// - One loop owns the connection: reach a daemon, serve until the
//   connection closes, wait, go again. Nothing else connects, so there is
//   never more than one connection, and the state is always one of
//   `connecting`, `connected`, `disconnected` or `disposed`.
// - A daemon is started only when the user asked for one: at `start()` and
//   after `allowStart()` (a command of the user's). A reconnect of the
//   loop's own only knocks on the socket, so a daemon stopped on purpose
//   (`exo daemon stop`) stays stopped, and `exo daemon stop && exo daemon`
//   is never raced.
// - A watch is a cursor, not a connection's watch id: each connection
//   watches again from the last event delivered, so no event is missed or
//   repeated across a reconnect. When the cursor has left the history (a
//   rewind while disconnected), the watch starts over from the first event
//   and tells its listener to `reset` first.
// - Watch ids are learnt in the `events/watch` response's `onResult` hook,
//   before the daemon's first `events/appended` is read.

import {
  connectToRunning,
  startDaemon,
  startStdio,
  type DaemonOptions,
  type Reached,
} from "./daemon";
import { ConnectionClosed, RpcError, type Connection, type RequestOptions } from "./rpc";
import type {
  ApprovalRequest,
  DaemonStatus,
  Event,
  Method,
  Notification,
  Notifications,
  ParamsOf,
  ResultOf,
  TurnDelta,
} from "./types";

/** How a session reaches its daemon. */
export interface SessionOptions extends DaemonOptions {
  /**
   * What to do when no daemon runs and the user asked for one: `socket`
   * starts `exo daemon` (detached) and connects to its socket, `stdio`
   * speaks to `exo daemon --stdio` over its pipes, `never` waits for
   * someone else to start one.
   */
  start: "socket" | "stdio" | "never";
  /** The longest pause between two attempts to reconnect. */
  maxRetryMs?: number;
}

/** Where the session stands. */
export type SessionState =
  | { kind: "connecting" }
  | { kind: "connected"; status: DaemonStatus; transport: "socket" | "stdio" }
  | { kind: "disconnected"; reason: string }
  | { kind: "disposed" };

/** What a conversation watch tells its listener. */
export interface WatchListener {
  /** Events in history order (a replay, then live commits). */
  events(events: Event[]): void;
  /** The watch starts over from the first event: forget what was delivered. */
  reset?(): void;
  /** A piece of a running turn's answer (not an event; never replayed). */
  delta?(delta: TurnDelta): void;
  /** A running turn asks for approval (never replayed). */
  approval?(request: ApprovalRequest): void;
  /** The watch cannot go on (the conversation is gone); it is ended. */
  failed?(error: Error): void;
}

/** A conversation watch that survives reconnects. */
export interface ConversationWatch {
  readonly agent: string;
  readonly conversation: string;
  /** The last event delivered, or undefined before the first. */
  readonly cursor: string | undefined;
  /** Resolves once the watch is established (again) on a connection. */
  ready(): Promise<void>;
  /** Ends the watch. */
  dispose(): void;
}

/** A notification handler of the session: `watch` is set for a watch's own. */
export type SessionNotificationHandler = <N extends Notification>(
  method: N,
  params: Notifications[N],
  watch: ConversationWatch | undefined,
) => void;

class Watch implements ConversationWatch {
  cursor: string | undefined;
  disposed = false;
  #readyWaiters: (() => void)[] = [];
  #established = false;

  constructor(
    readonly agent: string,
    readonly conversation: string,
    readonly listener: WatchListener,
    readonly session: ExoSession,
  ) {}

  ready(): Promise<void> {
    if (this.#established) return Promise.resolve();
    return new Promise((done) => this.#readyWaiters.push(done));
  }

  established(yes: boolean): void {
    this.#established = yes;
    if (yes) {
      for (const done of this.#readyWaiters.splice(0)) done();
    }
  }

  dispose(): void {
    this.session.unwatch(this);
  }
}

/** A session with one root's daemon; see the file's header. */
export class ExoSession {
  readonly options: SessionOptions;
  #state: SessionState = { kind: "connecting" };
  #reached: Reached | undefined;
  #stateHandlers = new Set<(state: SessionState) => void>();
  #notificationHandlers = new Set<SessionNotificationHandler>();
  #watches = new Set<Watch>();
  /** The current connection's watch ids. */
  #watchIds = new Map<number, Watch>();
  #wake: (() => void) | undefined;
  #running = false;
  /** Whether the next attempt may start a daemon (the user asked for one). */
  #mayStart = false;

  constructor(options: SessionOptions) {
    this.options = options;
  }

  /** Starts connecting (and reconnecting, until disposed); may start a daemon. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#mayStart = true;
    void this.#loop();
  }

  /**
   * The user asked for something: while disconnected, the next attempt may
   * start a daemon when none runs, and it is made now.
   */
  allowStart(): void {
    if (this.#state.kind === "connected" || this.#state.kind === "disposed") return;
    this.#mayStart = true;
    this.#wake?.();
  }

  get state(): SessionState {
    return this.#state;
  }

  /** The connection in use, if connected. */
  get connection(): Connection | undefined {
    return this.#state.kind === "connected" ? this.#reached?.connection : undefined;
  }

  /** Calls `handler` on every change of state; returns a disposer. */
  onState(handler: (state: SessionState) => void): () => void {
    this.#stateHandlers.add(handler);
    return () => this.#stateHandlers.delete(handler);
  }

  /** Calls `handler` with every notification of every connection. */
  onNotification(handler: SessionNotificationHandler): () => void {
    this.#notificationHandlers.add(handler);
    return () => this.#notificationHandlers.delete(handler);
  }

  /** Resolves once connected (rejects after `timeoutMs`, or when disposed). */
  async connected(timeoutMs = 30_000): Promise<Connection> {
    const now = this.connection;
    if (now) return now;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        dispose();
        const reason = this.#state.kind === "disconnected" ? `: ${this.#state.reason}` : "";
        reject(new Error(`not connected to the exo daemon${reason}`));
      }, timeoutMs);
      const dispose = this.onState((state) => {
        if (state.kind === "connected" && this.#reached) {
          clearTimeout(timer);
          dispose();
          resolve(this.#reached.connection);
        } else if (state.kind === "disposed") {
          clearTimeout(timer);
          dispose();
          reject(new Error("the exo session was closed"));
        }
      });
    });
  }

  /** Sends a request on the current connection, waiting for one first. */
  async request<M extends Method>(
    method: M,
    params: ParamsOf<M>,
    options?: RequestOptions<ResultOf<M>> & { waitMs?: number },
  ): Promise<ResultOf<M>> {
    const connection = await this.connected(options?.waitMs);
    return connection.request(method, params, options);
  }

  /** Watches a conversation from its first event (or after `after`), across reconnects. */
  watch(agent: string, conversation: string, listener: WatchListener, after?: string): ConversationWatch {
    const watch = new Watch(agent, conversation, listener, this);
    watch.cursor = after;
    this.#watches.add(watch);
    const connection = this.connection;
    if (connection) void this.#establish(connection, watch);
    return watch;
  }

  /** Ends a watch (also {@link ConversationWatch.dispose}). */
  unwatch(watch: ConversationWatch): void {
    const ours = [...this.#watches].find((w) => w === watch);
    if (!ours || ours.disposed) return;
    ours.disposed = true;
    this.#watches.delete(ours);
    for (const [id, w] of this.#watchIds) {
      if (w === ours) {
        this.#watchIds.delete(id);
        this.connection?.request("events/unwatch", { watch: id }).catch(() => undefined);
      }
    }
  }

  /** Ends the session: closes the connection and stops reconnecting. */
  dispose(): void {
    if (this.#state.kind === "disposed") return;
    this.#setState({ kind: "disposed" });
    for (const watch of this.#watches) watch.disposed = true;
    this.#watches.clear();
    this.#reached?.connection.close();
    if (this.#reached?.process && this.#reached.process.exitCode === null) {
      this.#reached.process.stdin?.end();
    }
    this.#wake?.();
  }

  /** Drops the connection now and reconnects (a daemon that hangs, say); may start a daemon. */
  reconnect(): void {
    this.#mayStart = true;
    this.#reached?.connection.close("reconnecting");
    this.#wake?.();
  }

  async #loop(): Promise<void> {
    const log = this.options.log ?? (() => undefined);
    let failures = 0;
    while (!this.#isDisposed()) {
      let reached: Reached | undefined;
      const mayStart = this.#mayStart;
      try {
        reached = await this.#reach(mayStart);
      } catch (err) {
        failures += 1;
        // A start that failed is not tried again until the user asks again.
        if (mayStart) this.#mayStart = false;
        const reason = err instanceof Error ? err.message : String(err);
        log(`cannot reach the exo daemon: ${reason}`);
        this.#setState({ kind: "disconnected", reason });
      }
      if (reached && this.#isDisposed()) {
        reached.connection.close();
        break;
      }
      if (reached) {
        failures = 0;
        this.#mayStart = false;
        const closed = new Promise<string>((done) => reached.connection.onClose(done));
        this.#attach(reached);
        const reason = await closed;
        this.#detach();
        if (this.#isDisposed()) break;
        log(`the connection to the exo daemon ended: ${reason}`);
        this.#setState({ kind: "disconnected", reason });
        await this.#pause(100);
        continue;
      }
      if (this.#isDisposed()) break;
      // The user asked for a daemon while this attempt only knocked: go again now.
      if (this.#mayStart && !mayStart) continue;
      await this.#pause(Math.min(200 * 2 ** Math.min(failures, 5), this.options.maxRetryMs ?? 3000));
    }
  }

  /**
   * A running daemon, or one started (as the options say) when none answers
   * and the user asked for one.
   */
  async #reach(mayStart: boolean): Promise<Reached | undefined> {
    if (this.#state.kind !== "disconnected") this.#setState({ kind: "connecting" });
    const running = await connectToRunning(this.options);
    if (running) return running;
    if (this.options.start === "never") {
      throw new Error("no exo daemon is running for this root");
    }
    if (!mayStart) {
      throw new Error("no exo daemon is running for this root (any exo command starts one)");
    }
    // Over stdio, the started process is this session's daemon (or a relay
    // to one started meanwhile).
    return this.options.start === "stdio" ? startStdio(this.options) : startDaemon(this.options);
  }

  #attach(reached: Reached): void {
    this.#reached = reached;
    this.#watchIds.clear();
    const connection = reached.connection;
    connection.onNotification((method, params) => {
      this.#notification(method, params);
    });
    this.#setState({ kind: "connected", status: reached.status, transport: reached.transport });
    for (const watch of this.#watches) void this.#establish(connection, watch);
  }

  #detach(): void {
    this.#watchIds.clear();
    for (const watch of this.#watches) watch.established(false);
  }

  async #establish(connection: Connection, watch: Watch): Promise<void> {
    for (;;) {
      if (watch.disposed || connection.closed !== undefined) return;
      try {
        await connection.request(
          "events/watch",
          { agent: watch.agent, conversation: watch.conversation, after: watch.cursor ?? null },
          {
            onResult: (result) => {
              if (watch.disposed) {
                connection.request("events/unwatch", { watch: result.watch }).catch(() => undefined);
                return;
              }
              this.#watchIds.set(result.watch, watch);
            },
          },
        );
        watch.established(true);
        return;
      } catch (err) {
        if (err instanceof ConnectionClosed) return;
        if (err instanceof RpcError && err.kind === "not_found" && watch.cursor !== undefined
          && err.data.what === "event") {
          // The cursor left the history (a rewind while we were away).
          watch.cursor = undefined;
          watch.listener.reset?.();
          continue;
        }
        this.unwatch(watch);
        watch.listener.failed?.(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
  }

  #notification<N extends Notification>(method: N, params: Notifications[N]): void {
    let watch: Watch | undefined;
    const watchId = (params as { watch?: unknown }).watch;
    if (typeof watchId === "number") {
      watch = this.#watchIds.get(watchId);
      if (watch === undefined) return; // a watch ended meanwhile
      switch (method) {
        case "events/appended": {
          const { events } = params as Notifications["events/appended"];
          const last = events[events.length - 1];
          if (last) watch.cursor = last.id;
          watch.listener.events(events);
          break;
        }
        case "events/lagged": {
          const { cursor } = params as Notifications["events/lagged"];
          this.#watchIds.delete(watchId);
          watch.cursor = cursor ?? watch.cursor;
          const connection = this.connection;
          if (connection) void this.#establish(connection, watch);
          break;
        }
        case "turn/delta":
          watch.listener.delta?.(params as TurnDelta);
          break;
        case "approval/request":
          watch.listener.approval?.(params as ApprovalRequest);
          break;
        default:
          break;
      }
    }
    for (const handler of this.#notificationHandlers) {
      try {
        handler(method, params, watch);
      } catch (err) {
        this.options.log?.(`a ${method} handler threw: ${String(err)}`);
      }
    }
  }

  /** Whether `dispose` was called (a method: the state changes across awaits). */
  #isDisposed(): boolean {
    return this.#state.kind === "disposed";
  }

  #setState(state: SessionState): void {
    if (this.#state.kind === "disposed") return;
    this.#state = state;
    for (const handler of this.#stateHandlers) {
      try {
        handler(state);
      } catch (err) {
        this.options.log?.(`a state handler threw: ${String(err)}`);
      }
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        done();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        done();
      };
    });
  }
}
