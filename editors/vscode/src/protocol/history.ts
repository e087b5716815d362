// A client's mirror of one conversation's history, kept from a watch's
// events: what the timeline shows, which turn runs, and the snapshots
// each turn took.
//
// Key design ideas:
// - A watch never retracts events: a rewind arrives as its `rewound` event,
//   and the mirror applies it itself (the history goes on from `to_event`),
//   as spec/protocol.md ("What a watcher sees") asks of a client.
// - A `rewound` whose `to_event` the mirror does not hold (a redo to a
//   branch left behind) cannot be applied from what was delivered: the
//   mirror says `reload`, and the caller watches again from the first event.
// - Pure: no I/O and no `vscode`, so it is tested on its own.

import { isKind, type Event, type EventOf } from "./types";

/** What applying a batch did to the mirror, in order. */
export type HistoryChange =
  | { op: "append"; events: Event[] }
  | { op: "truncate"; after: string }
  | { op: "reload" };

type Snapshot = EventOf<"workspace_snapshot">;

/** The `turn_start` and `turn_end` snapshots of a turn, when taken. */
export interface TurnSnapshots {
  start?: Snapshot;
  end?: Snapshot;
}

/** One conversation's history as delivered; see the file's header. */
export class History {
  #events: Event[] = [];
  #index = new Map<string, number>();

  /** The events, oldest first. */
  get events(): readonly Event[] {
    return this.#events;
  }

  /** The head: the newest event, if any. */
  get head(): Event | undefined {
    return this.#events[this.#events.length - 1];
  }

  /** Forgets everything (the watch starts over). */
  reset(): void {
    this.#events = [];
    this.#index.clear();
  }

  /** Whether `id` is on the history. */
  has(id: string): boolean {
    return this.#index.has(id);
  }

  /** The event `id`, when on the history. */
  get(id: string): Event | undefined {
    const at = this.#index.get(id);
    return at === undefined ? undefined : this.#events[at];
  }

  /** Applies a batch of watched events; returns what changed. */
  apply(batch: readonly Event[]): HistoryChange[] {
    const changes: HistoryChange[] = [];
    let pending: Event[] = [];
    const flush = () => {
      if (pending.length > 0) changes.push({ op: "append", events: pending });
      pending = [];
    };
    for (const event of batch) {
      if (this.#index.has(event.id)) continue; // delivered already
      if (isKind(event, "rewound")) {
        flush();
        const at = this.#index.get(event.to_event);
        if (at === undefined) return [...changes, { op: "reload" }];
        if (at < this.#events.length - 1) {
          for (const dropped of this.#events.splice(at + 1)) this.#index.delete(dropped.id);
          changes.push({ op: "truncate", after: event.to_event });
        }
      }
      this.#index.set(event.id, this.#events.length);
      this.#events.push(event);
      pending.push(event);
    }
    flush();
    return changes;
  }

  /** The turn that has started and not ended on this history, if any. */
  runningTurn(): string | undefined {
    for (let i = this.#events.length - 1; i >= 0; i--) {
      const event = this.#events[i];
      if (!event) continue;
      if (event.kind === "turn_ended" || event.kind === "rewound") return undefined;
      if (event.kind === "turn_started") return event.turn ?? undefined;
    }
    return undefined;
  }

  /** Each turn's `turn_start` and `turn_end` snapshots, by turn id. */
  turnSnapshots(): Map<string, TurnSnapshots> {
    const turns = new Map<string, TurnSnapshots>();
    for (const event of this.#events) {
      if (!isKind(event, "workspace_snapshot") || !event.turn) continue;
      const entry = turns.get(event.turn) ?? {};
      if (event.reason === "turn_start") entry.start = event;
      if (event.reason === "turn_end") entry.end = event;
      turns.set(event.turn, entry);
    }
    return turns;
  }

  /** The last event of turn `turn` on this history (its `turn_ended`, mostly). */
  lastOfTurn(turn: string): Event | undefined {
    let last: Event | undefined;
    for (const event of this.#events) {
      if (event.turn === turn) last = event;
    }
    return last;
  }
}
