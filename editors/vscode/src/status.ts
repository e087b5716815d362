// The status bar: the selected conversation and the connection (click:
// the timeline), and while a turn runs, a Cancel item.

import * as vscode from "vscode";

import type { Ctx } from "./ctx";
import type { Timeline } from "./timeline";

/** Keeps the two status bar items up to date. */
export class Status implements vscode.Disposable {
  readonly #ctx: Ctx;
  readonly #timeline: Timeline;
  readonly #main: vscode.StatusBarItem;
  readonly #cancel: vscode.StatusBarItem;
  readonly #disposables: { dispose(): unknown }[];

  constructor(ctx: Ctx, timeline: Timeline) {
    this.#ctx = ctx;
    this.#timeline = timeline;
    this.#main = vscode.window.createStatusBarItem("exo.status", vscode.StatusBarAlignment.Left, 50);
    this.#main.name = "exo";
    this.#cancel = vscode.window.createStatusBarItem("exo.cancel", vscode.StatusBarAlignment.Left, 49);
    this.#cancel.name = "exo: Cancel";
    this.#cancel.text = "$(debug-stop) Cancel";
    this.#cancel.tooltip = "Cancel the running turn";
    this.#cancel.command = "exo.cancelTurn";
    this.#disposables = [
      this.#main,
      this.#cancel,
      ctx.onDidChangeState(() => {
        this.update();
      }),
      ctx.onDidChangeSession(() => {
        this.update();
      }),
      ctx.onDidChangeSelection(() => {
        this.update();
      }),
      timeline.onDidChangeRunning(() => {
        this.update();
      }),
    ];
    this.update();
  }

  update(): void {
    const session = this.#ctx.session;
    if (!session) {
      this.#main.hide();
      this.#cancel.hide();
      return;
    }
    const state = session.state;
    const selected = this.#ctx.selected;
    const name = selected ? `${selected.agent.slug}/${selected.conversation.slug}` : "no conversation";
    const running = this.#timeline.running !== undefined;
    if (state.kind === "connected") {
      this.#main.text = running ? `$(loading~spin) exo: ${name}: turn running` : `$(comment-discussion) exo: ${name}`;
      this.#main.tooltip = `exo daemon pid ${String(state.status.pid)} (${state.transport}) serving ${state.status.root}\nClick to show the timeline`;
      this.#main.backgroundColor = undefined;
    } else if (state.kind === "disconnected") {
      this.#main.text = "$(debug-disconnect) exo: disconnected";
      this.#main.tooltip = `${state.reason}\nClick to reconnect (starting a daemon when none runs)`;
      this.#main.backgroundColor = new vscode.ThemeColor("statusBarItem.warningBackground");
    } else {
      this.#main.text = "$(sync~spin) exo: connecting";
      this.#main.tooltip = undefined;
      this.#main.backgroundColor = undefined;
    }
    this.#main.command = state.kind === "disconnected"
      ? "exo.reconnect"
      : selected ? "exo.showTimeline" : "exo.selectConversation";
    this.#main.show();
    if (running && state.kind === "connected") this.#cancel.show();
    else this.#cancel.hide();
  }

  dispose(): void {
    for (const disposable of this.#disposables) disposable.dispose();
  }
}
