// Files as a workspace snapshot holds them, for VS Code's diff editor: the
// read-only `exo-snapshot:` scheme, backed by `snapshot/read`, and the
// command that opens a turn's change (snapshot against snapshot, or
// against the file on disk).
//
// A URI names everything the read needs, so a diff tab restored after a
// reload reads again: `exo-snapshot:/<path>?agent=…&conversation=…&snapshot=<commit>`.

import { join } from "node:path";

import * as vscode from "vscode";

import type { Ctx } from "./ctx";

export const SCHEME = "exo-snapshot";

/** The URI of `path` in snapshot `snapshot` of a conversation. */
export function snapshotUri(agent: string, conversation: string, snapshot: string, path: string): vscode.Uri {
  const query = new URLSearchParams({ agent, conversation, snapshot }).toString();
  return vscode.Uri.from({ scheme: SCHEME, path: `/${path}`, query });
}

/** Serves `exo-snapshot:` documents. */
export class SnapshotContent implements vscode.TextDocumentContentProvider {
  readonly #ctx: Ctx;

  constructor(ctx: Ctx) {
    this.#ctx = ctx;
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const query = new URLSearchParams(uri.query);
    const agent = query.get("agent");
    const conversation = query.get("conversation");
    const snapshot = query.get("snapshot");
    if (agent === null || conversation === null || snapshot === null) {
      throw new Error(`not an exo snapshot URI: ${uri.toString()}`);
    }
    const path = uri.path.replace(/^\//, "");
    const file = await this.#ctx.request("snapshot/read", { agent, conversation, snapshot, path });
    if (file.content_base64 === null || file.content_base64 === undefined) return "";
    const bytes = Buffer.from(file.content_base64, "base64");
    if (bytes.includes(0)) return `(a binary file of ${String(file.size)} bytes in snapshot ${snapshot.slice(0, 10)})\n`;
    return bytes.toString("utf8");
  }
}

/** What the diff command needs. */
export interface DiffRequest {
  agent: string;
  conversation: string;
  /** The commit before (the turn's `turn_start` snapshot). */
  from: string;
  /** The commit after (the turn's `turn_end` snapshot). */
  to: string;
  path: string;
  /** Compare `to` with the file on disk instead of `from` with `to`. */
  against: "snapshot" | "disk";
  /** The conversation's workspace, for `disk`. */
  workspace?: string | undefined;
  /** How to name the change in the tab's title. */
  label?: string;
}

/** Opens a change in VS Code's diff editor. */
export async function openDiff(request: DiffRequest): Promise<void> {
  const { agent, conversation, from, to, path } = request;
  const after = snapshotUri(agent, conversation, to, path);
  if (request.against === "disk") {
    if (request.workspace === undefined) throw new Error("the conversation has no workspace");
    const disk = vscode.Uri.file(join(request.workspace, path));
    await vscode.commands.executeCommand("vscode.diff", after, disk, `${path} (${to.slice(0, 7)} ↔ disk)`, {
      preview: true,
      viewColumn: vscode.ViewColumn.Beside,
    });
    return;
  }
  const before = snapshotUri(agent, conversation, from, path);
  const label = request.label ?? `${from.slice(0, 7)} ↔ ${to.slice(0, 7)}`;
  await vscode.commands.executeCommand("vscode.diff", before, after, `${path} (${label})`, {
    preview: true,
    viewColumn: vscode.ViewColumn.Beside,
  });
}
