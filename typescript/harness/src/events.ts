// Narrowing exo's events by kind. `Event` ends with a catch-all member
// (`{ kind: string }`: a kind a newer exo recorded, kept as it is), so a
// bare `event.kind === "tool_call"` does not narrow; `isEvent` does.

import type { Event } from "./protocol.js";

/** The event of one kind this runtime knows (`"message"`, `"tool_call"`, ...). */
export type EventOf<K extends string> = Extract<Event, { kind: K }>;

/** Whether `event` is of kind `kind`, as that kind's type. */
export function isEvent<K extends string>(event: Event, kind: K): event is EventOf<K> {
  return event.kind === kind;
}
