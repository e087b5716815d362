// Rewind here, Redo and Fork here. Each first shows what it would do to the
// files, and a rewind or redo is refused, with the paths, when it would
// lose the user's work: unsaved editors of files it would write, or edits
// on disk made since the latest snapshot (which exo itself refuses to
// overwrite without `force`).
//
// Key design ideas:
// - What a rewind would write comes from the daemon (`conversation/rewind`
//   with `dry_run`), with the same checks as the real one; the real one is
//   then sent with `expected_head`, so a conversation that moved in between
//   is refused instead of rewound from somewhere else.
// - A fork writes into a new folder and changes nothing here; what it
//   shows is how that folder will differ from this one (the snapshot at
//   the fork point, as the daemon has it, against the disk), then it
//   opens the folder in a new window, leaving that window a note of the
//   root and conversation.
// - An unsaved editor is any editor of an affected file: text, notebook,
//   custom or diff, opened by any path to it (src/dirty.ts).
// - Every name shown in a confirmation goes through `safeName`
//   (src/text.ts): a file name cannot fake lines of the list.

import { existsSync, readdirSync } from "node:fs";
import { basename, dirname, isAbsolute, join } from "node:path";

import * as vscode from "vscode";

import type { Ctx, Selected } from "./ctx";
import { dirtyAmong, dirtyFiles } from "./dirty";
import { RpcError } from "./protocol/rpc";
import { redoCandidates, snapshotInEffect } from "./protocol/travel";
import type { Event, PathChange, RestoreResult, TreeStep } from "./protocol/types";
import { pathLines, safeName } from "./text";
import type { Timeline } from "./timeline";

/** Where a command was invoked: an event of the timeline, or nothing (ask). */
export interface At {
  event?: string;
}

/** Rewinds the selected conversation to an event (asked for when not given). */
export async function rewindHere(ctx: Ctx, timeline: Timeline, at: At | undefined): Promise<void> {
  const selected = await ctx.refreshSelected();
  if (!selected) throw new Error("no conversation selected");
  const to = at?.event ?? (await pickStep(ctx, selected, "Rewind to…"));
  if (to === undefined) return;
  await moveHead(ctx, timeline, selected, to, "rewind", describeEvent(timeline, to));
}

/** Rewinds forward to a history a rewind left behind. */
export async function redo(ctx: Ctx, timeline: Timeline, target: Selected | undefined): Promise<void> {
  if (target?.conversation && target.conversation.id !== ctx.selected?.conversation.id) ctx.select(target);
  const selected = await ctx.refreshSelected();
  if (!selected) throw new Error("no conversation selected");
  const tree = await ctx.request("conversation/tree", { agent: selected.agent.id, conversation: selected.conversation.id });
  const left = redoCandidates(tree);
  if (left.length === 0) {
    void vscode.window.showInformationMessage(`exo: nothing to redo in ${safeName(selected.conversation.name)}`);
    return;
  }
  // The head the latest rewind left comes first: redo undoes that rewind.
  const current = tree.branches[0];
  const lastStep = current?.steps[current.steps.length - 1];
  const undoLast = lastStep?.kind === "rewound" ? lastStep.from_event : undefined;
  const items = left
    .map((branch) => {
      const step = branch.steps[branch.steps.length - 1];
      return {
        label: branch.head === undoLast ? `$(redo) ${stepLabel(step)}` : stepLabel(step),
        description: branch.head === undoLast ? "undo the last rewind" : `left at …${branch.head.slice(-8)}`,
        head: branch.head,
      };
    })
    .sort((a, b) => Number(b.head === undoLast) - Number(a.head === undoLast));
  const choice = items.length === 1 ? items[0] : await vscode.window.showQuickPick(items, { title: "Redo: back to…" });
  if (!choice) return;
  await moveHead(ctx, timeline, selected, choice.head, "redo", choice.label.replace(/^\$\(redo\) /, ""));
}

/** Forks the selected conversation at an event into a new folder, opened in a new window. */
export async function forkHere(ctx: Ctx, timeline: Timeline, at: At | Selected | undefined): Promise<void> {
  if (at && "conversation" in at && at.conversation.id !== ctx.selected?.conversation.id) ctx.select(at);
  const selected = await ctx.refreshSelected();
  if (!selected) throw new Error("no conversation selected");
  const given = at && "event" in at ? at.event : undefined;
  const event = given ?? (await pickStep(ctx, selected, "Fork at…"));
  if (event === undefined) return;
  const workspace = selected.conversation.workspace;
  if (typeof workspace !== "string") throw new Error(`${selected.conversation.name} has no workspace to fork into a new folder`);
  const slug = await vscode.window.showInputBox({
    title: `Fork ${safeName(selected.conversation.name)} at ${describeEvent(timeline, event)}`,
    prompt: "The fork's slug",
    value: uniqueSlug(selected.conversation.slug),
    validateInput: (value) => (/^[a-z0-9]+(-[a-z0-9]+)*$/.test(value) ? undefined : "lowercase letters, digits and single dashes"),
  });
  if (slug === undefined) return;
  const folder = await vscode.window.showInputBox({
    title: "Fork into a new folder",
    prompt: "An absolute path that does not exist or is empty; it opens in a new window",
    value: freshFolder(join(dirname(workspace), `${basename(workspace)}-${slug}`)),
    validateInput: (value) =>
      !isAbsolute(value) ? "an absolute path" : existsSync(value) && readdirSync(value).length > 0 ? "not empty" : undefined,
  });
  if (folder === undefined) return;
  // How the new folder will differ from this one: the snapshot in effect
  // at the fork point, against the disk.
  const detail = await forkPreview(ctx, selected, event, workspace);
  const go = await vscode.window.showInformationMessage(
    `Fork ${safeName(selected.conversation.name)} into ${safeName(folder)}?`,
    { modal: true, detail: `${detail}\n\nNothing changes here.` },
    "Fork",
  );
  if (go !== "Fork") return;
  const fork = await ctx.request("conversation/fork", {
    agent: selected.agent.id,
    conversation: selected.conversation.id,
    at: event,
    slug,
    workspace: folder,
  });
  if (ctx.root !== undefined) await ctx.rememberFork(folder, { root: ctx.root, agent: selected.agent.id, conversation: fork.id });
  ctx.output.info(`forked ${selected.conversation.slug} into ${fork.slug} at ${folder}`);
  await vscode.commands.executeCommand("exo.refresh");
  await vscode.commands.executeCommand("vscode.openFolder", vscode.Uri.file(folder), { forceNewWindow: true });
}

/** The dry run, the checks, the confirmation and the real move of the head. */
async function moveHead(
  ctx: Ctx,
  timeline: Timeline,
  selected: Selected,
  to: string,
  verb: "rewind" | "redo",
  label: string,
): Promise<void> {
  const { agent, conversation } = selected;
  const head = conversation.head;
  const Verb = verb === "rewind" ? "Rewind" : "Redo";
  // `dry_run` came with `snapshot/read`: a daemon without it would ignore
  // `dry_run` (unknown params are ignored) and rewind at once.
  const init = await ctx.request("initialize", {});
  if (!init.capabilities.methods.includes("snapshot/read")) {
    throw new Error(`${Verb} refused: this exo daemon cannot show which files would change first (no dry run); update exo. Nothing was changed.`);
  }
  const dry = await ctx.request("conversation/rewind", {
    agent: agent.id,
    conversation: conversation.id,
    to,
    expected_head: head,
    dry_run: true,
  });
  if (dry.conversation.head === to) {
    void vscode.window.showInformationMessage(`exo: ${conversation.name} is already there`);
    return;
  }
  const files: RestoreResult | null | undefined = dry.files;
  const changes = files?.changes ?? [];
  const conflicts = files?.conflicts ?? [];
  const unsaved = unsavedAmong(conversation.workspace ?? undefined, [...changes, ...conflicts]);
  if (conflicts.length > 0 || unsaved.length > 0) {
    const lines: string[] = [];
    if (unsaved.length > 0) lines.push(`Unsaved in an editor:\n${unsaved.map((path) => `  ${safeName(path)}`).join("\n")}`);
    if (conflicts.length > 0) lines.push(`Changed on disk since the latest snapshot:\n${pathLines(conflicts)}`);
    ctx.output.warn(`${verb} of ${conversation.slug} to ${to} refused: ${[...unsaved, ...conflicts.map((c) => c.path)].map(safeName).join(", ")}`);
    await vscode.window.showErrorMessage(
      `exo: ${Verb} refused: it would lose work that is in no snapshot.`,
      {
        modal: true,
        detail: `${lines.join("\n\n")}\n\nSave or snapshot your work first (exo snapshot take), or undo these edits. Nothing was changed.`,
      },
    );
    return;
  }
  const filesDetail = files === null || files === undefined
    ? "The files are left alone (no snapshot is in effect there)."
    : changes.length === 0
      ? "No file changes."
      : `These files will change:\n${pathLines(changes)}`;
  const go = await vscode.window.showInformationMessage(
    `${Verb} ${safeName(conversation.name)} to ${label}?`,
    { modal: true, detail: `${filesDetail}\n\nA safety snapshot is taken first: Redo brings this back.` },
    Verb,
  );
  if (go !== Verb) return;
  let result;
  try {
    result = await ctx.request("conversation/rewind", {
      agent: agent.id,
      conversation: conversation.id,
      to,
      expected_head: head,
    });
  } catch (err) {
    if (err instanceof RpcError && err.kind === "conflict") {
      throw new Error(`${Verb} refused: ${err.message}. Nothing was changed.`);
    }
    throw err;
  }
  const leftAlone = [...(result.files?.conflicts ?? []).map((c) => c.path), ...(result.files?.skipped ?? []).map((s) => s.path)];
  if (leftAlone.length > 0) {
    void vscode.window.showWarningMessage(`exo: ${verb} done, but these paths were left alone: ${leftAlone.map(safeName).join(", ")}`);
  }
  ctx.output.info(`${verb} of ${conversation.slug} to ${to}: ${String(result.files?.changes.length ?? 0)} paths written`);
  await ctx.refreshSelected();
  timeline.refreshRedo();
}

/** The workspace-relative paths among `paths` that an editor of this window holds unsaved changes of. */
function unsavedAmong(workspace: string | undefined, paths: PathChange[]): string[] {
  if (workspace === undefined) return [];
  const dirty = dirtyFiles({
    documents: vscode.workspace.textDocuments,
    notebooks: vscode.workspace.notebookDocuments,
    tabs: vscode.window.tabGroups.all.flatMap((group) => group.tabs),
  });
  return dirtyAmong(workspace, paths.map((change) => change.path), dirty);
}

/** What a fork at `event` will write, against the workspace, as the daemon has it. */
async function forkPreview(ctx: Ctx, selected: Selected, event: string, workspace: string): Promise<string> {
  const agent = selected.agent.id;
  const conversation = selected.conversation.id;
  let snapshot;
  try {
    snapshot = await snapshotInEffect(ctx, agent, conversation, event);
  } catch (err) {
    if (err instanceof RpcError && err.kind === "not_found") {
      return "exo cannot show which files the new folder will hold: that point is no longer on the conversation's history.";
    }
    throw err;
  }
  if (snapshot === null) return "No snapshot is in effect at that point: exo refuses to fork it into a folder.";
  const diff = await ctx.request("snapshot/diff", { agent, conversation, from: snapshot.commit });
  return diff.changes.length === 0
    ? `The new folder will hold the same files as ${safeName(workspace)}.`
    : `The new folder will hold the snapshot at that point, which differs from ${safeName(workspace)} in:\n${pathLines(diff.changes)}`;
}

/** Asks for a point of the current history, turn by turn (newest first). */
async function pickStep(ctx: Ctx, selected: Selected, title: string): Promise<string | undefined> {
  const tree = await ctx.request("conversation/tree", { agent: selected.agent.id, conversation: selected.conversation.id });
  const steps = tree.branches[0]?.steps ?? [];
  const items = steps
    .map((step) => ({ label: stepLabel(step), description: `…${step.last.slice(-8)}`, event: step.last }))
    .reverse();
  const choice = await vscode.window.showQuickPick(items, { title, placeHolder: "the history as it was after…" });
  return choice?.event;
}

function stepLabel(step: TreeStep | undefined): string {
  if (!step) return "(empty)";
  switch (step.kind) {
    case "turn":
      return `turn: ${typeof step.prompt === "string" ? safeName(step.prompt) : "(no prompt)"} (${step.status ?? "running"})`;
    case "events":
      return `${step.kinds.join(", ")}${typeof step.text === "string" ? `: ${safeName(step.text)}` : ""}`;
    case "conversation_created":
      return "conversation created";
    default:
      return step.kind;
  }
}

/** How the timeline names an event, for a title. */
function describeEvent(timeline: Timeline, id: string): string {
  const event = timeline.history.get(id);
  if (!event) return `event …${id.slice(-8)}`;
  if (event.turn) {
    const prompt = firstPrompt(timeline.history.events, event.turn);
    const last = timeline.history.lastOfTurn(event.turn);
    const where = last?.id === id ? "the end of turn" : `${event.kind} in turn`;
    return prompt !== undefined ? `${where} “${prompt}”` : where;
  }
  return `${event.kind} …${id.slice(-8)}`;
}

function firstPrompt(events: readonly Event[], turn: string): string | undefined {
  for (const event of events) {
    if (event.turn !== turn || event.kind !== "message") continue;
    const e = event as Event & { role?: string; content?: { type: string; text?: string }[] };
    if (e.role !== "user") continue;
    const text = e.content?.find((part) => part.type === "text")?.text;
    if (text !== undefined) {
      const line = text.split("\n")[0] ?? "";
      return safeName(line.length > 60 ? `${line.slice(0, 59)}…` : line);
    }
  }
  return undefined;
}


function uniqueSlug(slug: string): string {
  const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(4, 12);
  return `${slug}-fork-${stamp}`;
}

function freshFolder(base: string): string {
  let candidate = base;
  for (let n = 2; existsSync(candidate) && readdirSync(candidate).length > 0; n++) candidate = `${base}-${String(n)}`;
  return candidate;
}
