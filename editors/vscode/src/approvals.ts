// Approval questions as notifications: a running turn that waits on a
// shell command or a file write asks here, with Allow, Allow for This
// Turn and Deny; the timeline shows the same question with the same
// buttons, and the first answer counts.
//
// Key design ideas:
// - Nothing is allowed from a summary that is not the whole call: a
//   command of several lines, a long one, one holding invisible
//   characters, a name longer than a notification shows whole, or anything
//   holding link syntax (`[label](url)`, shown as the bare label) or icon
//   syntax (`$(name)`) is announced as such, with Show Details… (a dialog
//   with the whole text, and the answers) and Deny, never Allow.
// - A question is asked once while its notification is up, however many
//   ways it arrives (the watch, the turn's own connection, `approval/list`
//   after coming back to its conversation).

import * as vscode from "vscode";

import type { Ctx, Selected } from "./ctx";
import { RpcError } from "./protocol/rpc";
import type { ApprovalDecision, ApprovalRequest } from "./protocol/types";
import { commandShown, describeCall, describeError } from "./text";
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

const SHOW_DETAILS = "Show Details…";

/** Shows each question the timeline passes on as a notification. */
export function askForApprovals(ctx: Ctx, timeline: Timeline): vscode.Disposable {
  const asking = new Set<string>();
  return timeline.onApproval(async ({ request, selected }) => {
    const key = `${request.turn}/${request.call_id}`;
    if (asking.has(key)) return;
    asking.add(key);
    try {
      const decision = await ask(request, selected);
      if (decision === undefined) return; // dismissed: the timeline still asks
      await respond(ctx, timeline, { turn: request.turn, callId: request.call_id, decision });
    } catch (err) {
      ctx.output.error(`approval of ${key}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      void vscode.window.showErrorMessage(`exo: ${describeError(err)}`);
    } finally {
      asking.delete(key);
    }
  });
}

/** The user's answer to one question, or undefined when dismissed. */
async function ask(request: ApprovalRequest, selected: Selected): Promise<ApprovalDecision | undefined> {
  const who = `${selected.agent.slug}/${selected.conversation.slug}`;
  const call = describeCall(request);
  if (call.whole === undefined) {
    const choice = await vscode.window.showWarningMessage(
      `exo: ${who} asks to ${call.summary}`,
      ...CHOICES.map(([caption]) => caption),
    );
    return CHOICES.find(([caption]) => caption === choice)?.[1];
  }
  const first = await vscode.window.showWarningMessage(`exo: ${who} asks to ${call.summary}`, SHOW_DETAILS, "Deny");
  if (first === "Deny") return "deny";
  if (first !== SHOW_DETAILS) return undefined;
  const shown = commandShown(call.whole.text);
  const notes = shown.notes.length > 0 ? `\n\n(${shown.notes.join("; ")})` : "";
  const choice = await vscode.window.showWarningMessage(
    `exo: ${who} asks to ${call.whole.title}`,
    { modal: true, detail: `${shown.text}${notes}` },
    ...CHOICES.map(([caption]) => caption),
  );
  return CHOICES.find(([caption]) => caption === choice)?.[1];
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
