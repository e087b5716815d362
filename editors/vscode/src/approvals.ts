// Approval questions as notifications: a running turn of the selected
// conversation that waits on a shell command or a file write asks here,
// with Allow, Allow for This Turn and Deny; the timeline shows the same
// question with the same buttons, and the first answer counts.

import * as vscode from "vscode";

import type { Ctx } from "./ctx";
import { RpcError } from "./protocol/rpc";
import type { ApprovalDecision, ApprovalRequest } from "./protocol/types";
import type { Timeline } from "./timeline";

/** An answer to one question. */
export interface Answer {
  turn: string;
  callId: string;
  decision: ApprovalDecision;
}

const CHOICES: [string, ApprovalDecision][] = [
  ["Allow", "allow_once"],
  ["Allow for This Turn", "allow_turn"],
  ["Deny", "deny"],
];

/** Shows each question of the timeline's conversation as a notification. */
export function askForApprovals(ctx: Ctx, timeline: Timeline): vscode.Disposable {
  return timeline.onApproval(async ({ request, selected }) => {
    const choice = await vscode.window.showWarningMessage(
      `exo: ${selected.agent.slug}/${selected.conversation.slug} asks to ${describeCall(request)}`,
      ...CHOICES.map(([caption]) => caption),
    );
    const decision = CHOICES.find(([caption]) => caption === choice)?.[1];
    if (decision === undefined) return; // dismissed: the timeline still asks
    await respond(ctx, timeline, { turn: request.turn, callId: request.call_id, decision });
  });
}

/** Sends an answer; one given elsewhere first is reported, not an error. */
export async function respond(ctx: Ctx, timeline: Timeline, answer: Answer): Promise<void> {
  try {
    await ctx.request("approval/respond", { turn: answer.turn, call_id: answer.callId, decision: answer.decision });
    timeline.answered(answer.turn, answer.callId);
  } catch (err) {
    if (err instanceof RpcError && err.kind === "not_found") {
      void vscode.window.showInformationMessage("exo: that question was answered already, or its turn ended");
      return;
    }
    throw err;
  }
}

/** "write notes.md", "run `make test`", ... */
export function describeCall(request: ApprovalRequest): string {
  const args = (request.arguments ?? {}) as Record<string, unknown>;
  const path = typeof args["path"] === "string" ? args["path"] : undefined;
  switch (request.tool) {
    case "shell":
      return `run \`${typeof args["command"] === "string" ? args["command"] : JSON.stringify(args)}\``;
    case "write_file":
      return `write ${path ?? "a file"}`;
    case "edit_file":
      return `edit ${path ?? "a file"}`;
    default:
      return `use ${request.tool}`;
  }
}
