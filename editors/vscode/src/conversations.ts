// The Conversations view: the root's agents, each with its conversations;
// the selected conversation (the one the timeline shows) is marked, and so
// are the one `exo use` picked and the ones bound to the open folder.

import * as vscode from "vscode";

import { sameDir, type Ctx, type Selected } from "./ctx";
import type { Agent, Conversation } from "./protocol/types";
import { describeError } from "./text";

type Node =
  | { kind: "agent"; agent: Agent }
  | { kind: "conversation"; agent: Agent; conversation: Conversation }
  | { kind: "message"; text: string };

/** The tree of agents and conversations. */
export class ConversationsView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  readonly #ctx: Ctx;
  readonly #onChange = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.#onChange.event;
  readonly #disposables: { dispose(): unknown }[] = [];
  readonly view: vscode.TreeView<Node>;

  constructor(ctx: Ctx) {
    this.#ctx = ctx;
    this.view = vscode.window.createTreeView("exo.conversations", { treeDataProvider: this, showCollapseAll: true });
    this.#disposables.push(
      this.view,
      this.#onChange,
      ctx.onDidChangeState(() => {
        this.refresh();
      }),
      ctx.onDidChangeSession(() => {
        this.refresh();
      }),
      ctx.onDidChangeSelection(() => {
        this.refresh();
      }),
    );
  }

  refresh(): void {
    this.#onChange.fire(undefined);
  }

  async getChildren(node?: Node): Promise<Node[]> {
    const session = this.#ctx.session;
    if (!session) return []; // the welcome view says why
    if (node === undefined) {
      if (session.state.kind !== "connected") {
        const why = session.state.kind === "disconnected" ? `disconnected: ${describeError(session.state.reason)}` : "connecting…";
        return [{ kind: "message", text: why }];
      }
      try {
        const { agents } = await this.#ctx.request("agent/list", {});
        if (agents.length === 0) return [{ kind: "message", text: "no agents yet: exo agent create NAME" }];
        return agents.map((agent) => ({ kind: "agent", agent }));
      } catch (err) {
        return [{ kind: "message", text: errorText(err) }];
      }
    }
    if (node.kind === "agent") {
      try {
        const { conversations } = await this.#ctx.request("conversation/list", { agent: node.agent.id });
        return conversations.map((conversation) => ({ kind: "conversation", agent: node.agent, conversation }));
      } catch (err) {
        return [{ kind: "message", text: errorText(err) }];
      }
    }
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case "message": {
        const item = new vscode.TreeItem(node.text);
        item.iconPath = new vscode.ThemeIcon("info");
        return item;
      }
      case "agent": {
        const item = new vscode.TreeItem(node.agent.name, vscode.TreeItemCollapsibleState.Expanded);
        item.id = `agent:${node.agent.id}`;
        item.description = node.agent.slug;
        item.contextValue = "agent";
        item.iconPath = new vscode.ThemeIcon("hubot");
        const config = node.agent.config as Record<string, unknown>;
        const setting = (key: string, otherwise: string) => (typeof config[key] === "string" ? config[key] : otherwise);
        item.tooltip = `${node.agent.slug} · ${setting("harness", "builtin")} · model ${setting("model", "none")} · approval ${setting("approval", "ask")}`;
        return item;
      }
      case "conversation": {
        const { agent, conversation } = node;
        const item = new vscode.TreeItem(conversation.name, vscode.TreeItemCollapsibleState.None);
        item.id = `conversation:${conversation.id}`;
        const selected = this.#ctx.selected?.conversation.id === conversation.id;
        const inUse = this.#ctx.inUse()?.conversation === conversation.id;
        const folder = this.#ctx.folder;
        const here = folder !== undefined && typeof conversation.workspace === "string" && sameDir(conversation.workspace, folder);
        const marks = [conversation.slug];
        if (selected) marks.push("● shown");
        if (inUse) marks.push("in use");
        if (here) marks.push("this folder");
        if (conversation.open_turn) marks.push("turn running");
        item.description = marks.join(" · ");
        item.iconPath = new vscode.ThemeIcon(
          conversation.open_turn ? "loading~spin" : selected ? "eye" : conversation.forked_from ? "repo-forked" : "comment-discussion",
        );
        item.contextValue = selected ? "conversation.selected" : "conversation";
        item.tooltip = new vscode.MarkdownString(
          [
            `**${conversation.name}** (${agent.slug}/${conversation.slug})`,
            `${String(conversation.length)} events · created ${conversation.created_at}`,
            typeof conversation.workspace === "string" ? `workspace \`${conversation.workspace}\`` : "no workspace",
          ].join("\n\n"),
        );
        const arg: Selected = { agent, conversation };
        item.command = { command: "exo.showTimeline", title: "Show Timeline", arguments: [arg] };
        return item;
      }
    }
  }

  dispose(): void {
    for (const disposable of this.#disposables) disposable.dispose();
  }
}

function errorText(err: unknown): string {
  return describeError(err);
}
