// What time travel asks the daemon before it moves anything: the branches
// a redo can go back to, and the snapshot in effect at an event (what a
// fork at that event writes into its new folder).
//
// Key design ideas:
// - A branch that holds only the markers of a rewind (its `rewound`
//   event, snapshots) has nothing to redo: a redo leaves one behind, the
//   rewind it undid, and going "back" there would only undo the redo.
// - The snapshot in effect is read from the daemon's history, never from
//   a client's mirror of it, which may still be replaying (or be of
//   another conversation) when the user asks: a preview must show what
//   the fork will write, or say it cannot.

import type { ConversationTree, EventOf, Method, ParamsOf, ResultOf, TreeBranch } from "./types";

/** Anything that sends requests to the daemon: a session, a connection. */
export interface Requester {
  request<M extends Method>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>>;
}

/** Whether a branch holds more than a rewind's markers: a turn, a message, any event of work. */
export function holdsWork(branch: TreeBranch): boolean {
  return branch.steps.some((step) => {
    switch (step.kind) {
      case "turn":
        return true;
      case "events":
        return step.kinds.some((kind) => kind !== "workspace_snapshot" && kind !== "rewound");
      default:
        return false;
    }
  });
}

/** The branches a redo can go back to: left behind and holding work, the most recently left first. */
export function redoCandidates(tree: ConversationTree): TreeBranch[] {
  return tree.branches.filter((branch) => !branch.current && holdsWork(branch)).reverse();
}

/**
 * The snapshot in effect at `event` on the conversation's current history,
 * as the daemon has it: the event itself when it is a snapshot, else the
 * newest one before it. Null when there is none (a fork there has no files
 * to write). Rejects with `not_found` when the event is not on the history.
 */
export async function snapshotInEffect(
  requester: Requester,
  agent: string,
  conversation: string,
  event: string,
): Promise<EventOf<"workspace_snapshot"> | null> {
  const at = await requester.request("events/get", { agent, conversation, event });
  if (at.kind === "workspace_snapshot") return at as EventOf<"workspace_snapshot">;
  const { events } = await requester.request("events/list", {
    agent,
    conversation,
    before: event,
    desc: true,
    kind: "workspace_snapshot",
    limit: 1,
  });
  const found = events[0];
  return found?.kind === "workspace_snapshot" ? (found as EventOf<"workspace_snapshot">) : null;
}
