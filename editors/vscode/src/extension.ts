// The extension's entry point: builds the state (ctx.ts), the views, the
// timeline and the status bar, and registers the commands. Everything it
// says to the daemon goes through src/protocol, which knows nothing of
// VS Code.

import * as vscode from "vscode";

import { askForApprovals, respond, type Answer } from "./approvals";
import { ConversationsView } from "./conversations";
import { Ctx, type Selected } from "./ctx";
import { SCHEME, SnapshotContent, openDiff } from "./snapshots";
import { Status } from "./status";
import { describeError, safeName } from "./text";
import { forkHere, redo, rewindHere, type At } from "./timeTravel";
import { Timeline } from "./timeline";

export function activate(extension: vscode.ExtensionContext): void {
  const ctx = new Ctx(extension);
  const timeline = new Timeline(ctx);
  const conversations = new ConversationsView(ctx);
  extension.subscriptions.push(
    ctx,
    timeline,
    conversations,
    new Status(ctx, timeline),
    askForApprovals(ctx, timeline),
    vscode.workspace.registerTextDocumentContentProvider(SCHEME, new SnapshotContent(ctx)),
  );

  const command = (name: string, run: (...args: never[]) => Promise<unknown>) => {
    extension.subscriptions.push(
      vscode.commands.registerCommand(name, async (...args: never[]) => {
        // A command is the user asking: a daemon stopped meanwhile is started
        // again (a reconnect of the session's own never starts one).
        ctx.session?.allowStart();
        try {
          await run(...args);
        } catch (err) {
          // The log has it all; the notification says in one line what is wrong.
          ctx.output.error(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          void vscode.window.showErrorMessage(`exo: ${describeError(err)}`);
        }
      }),
    );
  };

  command("exo.showTimeline", async (target?: Selected) => {
    if (target?.conversation) ctx.select({ agent: target.agent, conversation: target.conversation });
    if (!ctx.selected && !(await pickConversation(ctx))) return;
    timeline.show();
  });
  command("exo.selectConversation", async () => {
    if (await pickConversation(ctx)) timeline.show();
  });
  command("exo.send", async (text?: string) => {
    if (!ctx.selected && !(await pickConversation(ctx))) return;
    const input = text ?? (await vscode.window.showInputBox({ prompt: `Message to ${ctx.selected?.agent.slug ?? "the agent"}` }));
    if (input === undefined || input.trim() === "") return;
    await timeline.send(input);
  });
  command("exo.cancelTurn", () => timeline.cancel());
  command("exo.respond", (answer: Answer) => respond(ctx, timeline, answer));
  command("exo.rewind", (at?: At) => rewindHere(ctx, timeline, at));
  command("exo.redo", (target?: Selected) => redo(ctx, timeline, target));
  command("exo.fork", (at?: At | Selected) => forkHere(ctx, timeline, at));
  command("exo.openTurnChanges", () => openTurnChanges(ctx, timeline));
  command("exo.refresh", () => {
    conversations.refresh();
    return Promise.resolve();
  });
  command("exo.reconnect", () => {
    if (ctx.session) ctx.session.reconnect();
    else ctx.restart();
    return Promise.resolve();
  });
  command("exo.showLog", () => {
    ctx.output.show();
    return Promise.resolve();
  });

  ctx.restart();
}

export function deactivate(): void {
  // Everything is in the extension's subscriptions.
}

/** Asks for a conversation and selects it; false when none was chosen. */
async function pickConversation(ctx: Ctx): Promise<boolean> {
  const { agents } = await ctx.request("agent/list", {});
  const items: (vscode.QuickPickItem & { selected: Selected })[] = [];
  for (const agent of agents) {
    const { conversations } = await ctx.request("conversation/list", { agent: agent.id });
    for (const conversation of conversations) {
      items.push({
        label: conversation.name,
        description: `${agent.slug}/${conversation.slug}`,
        detail: conversation.workspace ?? "no workspace",
        selected: { agent, conversation },
      });
    }
  }
  if (items.length === 0) {
    void vscode.window.showInformationMessage("exo: no conversations yet (exo conversation create AGENT NAME)");
    return false;
  }
  const choice = items.length === 1 ? items[0] : await vscode.window.showQuickPick(items, { title: "exo: show which conversation?", matchOnDescription: true });
  if (!choice) return false;
  ctx.select(choice.selected);
  return true;
}

/** Asks for a turn, then one of its changed files, and opens the diff. */
async function openTurnChanges(ctx: Ctx, timeline: Timeline): Promise<void> {
  const selected = ctx.selected;
  if (!selected) throw new Error("no conversation selected");
  const turns = [...timeline.history.turnSnapshots()]
    .filter(([, snapshots]) => snapshots.start && snapshots.end)
    .reverse();
  if (turns.length === 0) {
    void vscode.window.showInformationMessage("exo: no finished turn with snapshots in this conversation");
    return;
  }
  const turnChoice = await vscode.window.showQuickPick(
    turns.map(([turn, snapshots]) => ({
      label: `turn …${turn.slice(-8)}`,
      description: `+${String(snapshots.end?.added ?? 0)} ~${String(snapshots.end?.modified ?? 0)} −${String(snapshots.end?.deleted ?? 0)}`,
      turn,
      from: snapshots.start?.commit ?? "",
      to: snapshots.end?.commit ?? "",
    })),
    { title: "Open the changes of which turn?" },
  );
  if (!turnChoice) return;
  const diff = await ctx.request("snapshot/diff", {
    agent: selected.agent.id,
    conversation: selected.conversation.id,
    from: turnChoice.from,
    to: turnChoice.to,
  });
  if (diff.changes.length === 0) {
    void vscode.window.showInformationMessage("exo: that turn changed no files");
    return;
  }
  const fileChoice = diff.changes.length === 1
    ? diff.changes[0]
    : await vscode.window.showQuickPick(
      diff.changes.map((change) => ({ label: safeName(change.path), description: change.change, path: change.path, change: change.change })),
      { title: "Open which file?" },
    );
  if (!fileChoice) return;
  await openDiff({
    agent: selected.agent.id,
    conversation: selected.conversation.id,
    from: turnChoice.from,
    to: turnChoice.to,
    path: fileChoice.path,
    against: "snapshot",
    label: "turn",
  });
}
