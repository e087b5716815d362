// The daemon protocol's types, as spec/protocol.schema.json defines them.
//
// They come from @exo/harness's src/protocol.ts, which
// typescript/harness/scripts/generate.mjs generates from the schema (its
// test fails when the two drift), so this client is typed from the schema
// without a second generator. Type-only: nothing of @exo/harness is
// bundled into the extension.

import type {
  DaemonMethods,
  DaemonNotifications,
  Event,
} from "@exo/harness/protocol";

export type {
  Agent,
  ApprovalDecision,
  ApprovalRequest,
  Conversation,
  ConversationTree,
  DaemonStatus,
  ErrorData,
  Event,
  EventsAppended,
  EventsLagged,
  PathChange,
  PendingApproval,
  RestoreResult,
  RewindResult,
  SnapshotDiff,
  TreeBranch,
  TreeStep,
  TurnDelta,
  TurnEvents,
  TurnRunResult,
} from "@exo/harness/protocol";

/** Every method the daemon serves, with its params and result. */
export type Methods = DaemonMethods;
/** A method's name. */
export type Method = keyof Methods;
/** A method's params. */
export type ParamsOf<M extends Method> = Methods[M]["params"];
/** A method's result. */
export type ResultOf<M extends Method> = Methods[M]["result"];

/** Every notification, with its params. */
export type Notifications = DaemonNotifications;
/** A notification's name. */
export type Notification = keyof Notifications;

/** The event of one known kind. */
export type EventOf<K extends string> = Extract<Event, { kind: K }>;

/** Whether `event` is of kind `kind` (and so has that kind's fields). */
export function isKind<K extends string>(event: Event, kind: K): event is EventOf<K> {
  return event.kind === kind;
}
