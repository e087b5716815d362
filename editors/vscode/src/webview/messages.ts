// The messages between the timeline's webview (src/webview/timeline.ts,
// in the browser) and the extension (src/timeline.ts), both ways.
//
// The extension owns the history (src/protocol/history.ts) and sends the
// webview what changed; the webview renders it and sends back what the
// user asked for. Events travel as the daemon sent them.

import type { ApprovalRequest, Event, PathChange } from "../protocol/types";

/** The extension to the webview. */
export type ToWebview =
  /** Which conversation is shown; everything shown before is dropped. */
  | { type: "conversation"; title: string; workspace: string | null }
  /** The history starts over (a watch replays from the first event). */
  | { type: "reset" }
  /** Events follow the ones shown. */
  | { type: "append"; events: Event[] }
  /** Events after `after` left the history (a rewind). */
  | { type: "truncate"; after: string }
  /** More of a running turn's answer. */
  | { type: "delta"; turn: string; text?: string; reasoning?: string; tool?: string }
  /** A call waits for approval. */
  | { type: "approval"; request: ApprovalRequest }
  /** What a turn changed in the workspace: `from` and `to` are its snapshots' commits. */
  | { type: "changes"; turn: string; from: string; to: string; changes: PathChange[] }
  /** The connection, the running turn, and whether a redo is possible. */
  | { type: "state"; connected: boolean; running: string | null; sending: boolean; redo: boolean; error: string | null };

/** The webview to the extension. */
export type FromWebview =
  | { type: "ready" }
  | { type: "send"; text: string }
  | { type: "cancel" }
  | { type: "rewind"; event: string }
  | { type: "fork"; event: string }
  | { type: "redo" }
  | { type: "diff"; turn: string; from: string; to: string; path: string; against: "snapshot" | "disk" }
  | { type: "approve"; turn: string; callId: string; decision: "allow_once" | "allow_turn" | "deny" };
