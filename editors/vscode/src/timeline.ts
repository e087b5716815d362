// The live timeline of the selected conversation: a watch that mirrors its
// history (src/protocol/history.ts), the webview panel that shows it
// (src/webview/timeline.ts), and the chat input's turns (`turn/run`).
//
// Key design ideas:
// - The watch follows the selection, whether or not the panel is open: the
//   status bar's running turn and the approval questions come from it too.
// - The webview is told only what changed; when it (re)loads it says
//   `ready` and gets everything again.
// - A turn's file changes are read once, with `snapshot/diff` between its
//   `turn_start` and `turn_end` snapshots, when its end snapshot arrives.
// - A turn sent from the chat input belongs to its conversation
//   (src/protocol/turns.ts): selecting another one mid-turn leaves it
//   running, its questions still asked (as notifications, since its card
//   is not shown), and the other conversation's input free.

import { randomBytes } from "node:crypto";

import * as vscode from "vscode";

import type { Ctx, Selected } from "./ctx";
import { History } from "./protocol/history";
import type { ConversationWatch } from "./protocol/session";
import { redoCandidates } from "./protocol/travel";
import type { TurnQuestion } from "./protocol/turns";
import type { ApprovalRequest, Event, PathChange } from "./protocol/types";
import { openDiff } from "./snapshots";
import { describeError } from "./text";
import type { FromWebview, ToWebview } from "./webview/messages";

interface TurnChanges {
  turn: string;
  from: string;
  to: string;
  changes: PathChange[];
}

/** The selected conversation's watch, history and panel; see the file's header. */
export class Timeline implements vscode.Disposable {
  readonly #ctx: Ctx;
  readonly #history = new History();
  readonly #changes = new Map<string, TurnChanges>();
  readonly #asked = new Set<string>();
  readonly #approvals = new Map<string, ApprovalRequest>();
  readonly #onRunning = new vscode.EventEmitter<string | undefined>();
  readonly #onApproval = new vscode.EventEmitter<{ request: ApprovalRequest; selected: Selected }>();
  readonly #disposables: { dispose(): unknown }[] = [];
  #selected: Selected | undefined;
  #watch: ConversationWatch | undefined;
  #panel: vscode.WebviewPanel | undefined;
  #ready = false;
  #running: string | undefined;
  /** The conversations turns were sent to from here, while they run: their questions name them. */
  readonly #sentTo = new Map<string, Selected>();
  #redo = false;
  #treeTimer: NodeJS.Timeout | undefined;

  /** The running turn of the selected conversation changed. */
  readonly onDidChangeRunning = this.#onRunning.event;
  /**
   * A question to put to the user: of the selected conversation's running
   * turn, or of a turn sent from here to another conversation.
   */
  readonly onApproval = this.#onApproval.event;

  constructor(ctx: Ctx) {
    this.#ctx = ctx;
    this.#disposables.push(
      this.#onRunning,
      this.#onApproval,
      ctx.onDidChangeSelection((selected) => {
        this.#follow(selected);
      }),
      ctx.onDidChangeState(() => {
        this.#postState();
      }),
      { dispose: ctx.turns.onDidChange((conversation) => {
        if (conversation === this.#selected?.conversation.id) this.#postState();
      }) },
      { dispose: ctx.turns.onQuestion((question) => {
        this.#question(question);
      }) },
    );
  }

  /** The selected conversation's history as delivered. */
  get history(): History {
    return this.#history;
  }

  /** The turn running in the selected conversation, if any. */
  get running(): string | undefined {
    return this.#running;
  }

  /** Whether a turn sent from here is on its way in the selected conversation. */
  get sending(): boolean {
    const selected = this.#selected;
    return selected !== undefined && this.#ctx.turns.isSending(selected.conversation.id);
  }

  /** Opens (or reveals) the panel. */
  show(): void {
    if (this.#panel) {
      this.#panel.reveal(undefined, false);
      return;
    }
    const media = vscode.Uri.joinPath(this.#ctx.extension.extensionUri, "media");
    const dist = vscode.Uri.joinPath(this.#ctx.extension.extensionUri, "dist");
    const panel = vscode.window.createWebviewPanel("exo.timeline", this.#title(), vscode.ViewColumn.One, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: [media, dist],
    });
    panel.iconPath = vscode.Uri.joinPath(media, "exo.svg");
    this.#panel = panel;
    this.#ready = false;
    const nonce = randomBytes(16).toString("base64");
    const webview = panel.webview;
    const script = webview.asWebviewUri(vscode.Uri.joinPath(dist, "webview.js"));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(media, "timeline.css"));
    webview.html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource}; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style.toString()}">
<title>exo timeline</title>
</head>
<body>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
    panel.onDidDispose(() => {
      this.#panel = undefined;
      this.#ready = false;
    });
    webview.onDidReceiveMessage((message: FromWebview) => {
      void this.#receive(message);
    });
  }

  /** Runs a turn in the selected conversation with the agent's harness, answering approvals here. */
  async send(text: string): Promise<void> {
    const selected = this.#selected;
    if (!selected) throw new Error("no conversation selected");
    const session = this.#ctx.session;
    if (!session) throw new Error("no exo root: open a folder inside an exo project, or set exo.root");
    const id = selected.conversation.id;
    this.#sentTo.set(id, selected);
    try {
      const result = await this.#ctx.turns.run(session, selected.agent.id, id, text);
      if (result.status !== "completed") {
        const why = result.error ? `: ${describeError(result.error)}` : "";
        void vscode.window.showWarningMessage(`exo: the turn in ${selected.conversation.name} ended ${result.status}${why}`);
      }
    } finally {
      if (!this.#ctx.turns.isSending(id)) this.#sentTo.delete(id);
    }
  }

  /** Cancels the running turn. */
  async cancel(): Promise<void> {
    const turn = this.#running;
    if (turn === undefined) return;
    await this.#ctx.request("turn/cancel", { turn });
  }

  /** The approvals the selected conversation waits on. */
  pendingApprovals(): ApprovalRequest[] {
    return [...this.#approvals.values()];
  }

  /** Forgets a question once answered here. */
  answered(turn: string, callId: string): void {
    this.#approvals.delete(`${turn}/${callId}`);
  }

  /** Checks again whether a redo is possible (after a rewind, say). */
  refreshRedo(): void {
    if (this.#treeTimer) clearTimeout(this.#treeTimer);
    this.#treeTimer = setTimeout(() => {
      void this.#readRedo();
    }, 200);
  }

  #follow(selected: Selected | undefined): void {
    this.#watch?.dispose();
    this.#watch = undefined;
    this.#selected = selected;
    this.#history.reset();
    this.#changes.clear();
    this.#asked.clear();
    this.#approvals.clear();
    this.#redo = false;
    this.#setRunning(undefined);
    if (this.#panel) this.#panel.title = this.#title();
    this.#post(this.#conversationMessage());
    this.#postState();
    const session = this.#ctx.session;
    if (!selected || !session) return;
    this.#startWatch(selected);
    this.refreshRedo();
  }

  #startWatch(selected: Selected): void {
    const session = this.#ctx.session;
    if (!session) return;
    this.#watch = session.watch(selected.agent.id, selected.conversation.id, {
      events: (events) => {
        this.#onEvents(events);
      },
      reset: () => {
        this.#history.reset();
        this.#changes.clear();
        this.#asked.clear();
        this.#post({ type: "reset" });
      },
      delta: (delta) => {
        const message: ToWebview = { type: "delta", turn: delta.turn };
        if (typeof delta.text === "string") message.text = delta.text;
        if (typeof delta.reasoning === "string") message.reasoning = delta.reasoning;
        if (delta.tool_call) message.tool = delta.tool_call.name;
        this.#post(message);
      },
      approval: (request) => {
        this.#approval(request);
      },
      failed: (error) => {
        this.#ctx.output.error(`the watch of ${selected.conversation.slug} ended: ${error.message}`);
        void vscode.window.showErrorMessage(`exo: cannot follow ${selected.conversation.name}: ${describeError(error)}`);
      },
    });
    // Questions asked before this watch began are not replayed: ask for them.
    void this.#watch.ready().then(async () => {
      try {
        const { approvals } = await this.#ctx.request("approval/list", {
          agent: selected.agent.id,
          conversation: selected.conversation.id,
        });
        for (const pending of approvals) {
          this.#approval({ turn: pending.turn, call_id: pending.call_id, tool: pending.tool, arguments: pending.arguments });
        }
      } catch (err) {
        this.#ctx.output.warn(`approval/list: ${String(err)}`);
      }
    });
  }

  /** A question of a turn sent from here: on the card when its conversation is shown, else only asked. */
  #question(question: TurnQuestion): void {
    if (question.conversation === this.#selected?.conversation.id) {
      this.#approval(question.request);
      return;
    }
    const where = this.#sentTo.get(question.conversation);
    if (where) this.#onApproval.fire({ request: question.request, selected: where });
  }

  #approval(request: ApprovalRequest): void {
    const selected = this.#selected;
    if (!selected) return;
    const key = `${request.turn}/${request.call_id}`;
    if (this.#approvals.has(key)) return;
    this.#approvals.set(key, request);
    this.#post({ type: "approval", request });
    this.#onApproval.fire({ request, selected });
  }

  #onEvents(events: Event[]): void {
    for (const change of this.#history.apply(events)) {
      if (change.op === "reload") {
        // A redo onto a branch this mirror never held: watch it again whole.
        const selected = this.#selected;
        this.#watch?.dispose();
        this.#history.reset();
        this.#changes.clear();
        this.#asked.clear();
        this.#post({ type: "reset" });
        if (selected) this.#startWatch(selected);
        return;
      }
      this.#post(change.op === "append" ? { type: "append", events: change.events } : { type: "truncate", after: change.after });
    }
    for (const event of events) {
      if (event.kind === "custom" && (event as { type?: string }).type === "exo.approval" && event.turn) {
        const callId = (event as { payload?: { call_id?: string } }).payload?.call_id;
        if (callId !== undefined) this.#approvals.delete(`${event.turn}/${callId}`);
      }
      if (event.kind === "turn_ended" && event.turn) {
        for (const key of [...this.#approvals.keys()]) if (key.startsWith(`${event.turn}/`)) this.#approvals.delete(key);
      }
      if (event.kind === "rewound" || event.kind === "forked") this.refreshRedo();
    }
    this.#setRunning(this.#history.runningTurn());
    void this.#readChanges();
  }

  /** Reads the file changes of turns whose end snapshot arrived. */
  async #readChanges(): Promise<void> {
    const selected = this.#selected;
    if (!selected) return;
    for (const [turn, snapshots] of this.#history.turnSnapshots()) {
      const { start, end } = snapshots;
      if (!start || !end || this.#asked.has(turn)) continue;
      this.#asked.add(turn);
      let changes: PathChange[] = [];
      if (end.added + end.modified + end.deleted > 0) {
        try {
          const diff = await this.#ctx.request("snapshot/diff", {
            agent: selected.agent.id,
            conversation: selected.conversation.id,
            from: start.commit,
            to: end.commit,
          });
          changes = diff.changes;
        } catch (err) {
          this.#ctx.output.warn(`snapshot/diff of turn ${turn}: ${String(err)}`);
          this.#asked.delete(turn);
          continue;
        }
      }
      if (this.#selected !== selected) return;
      const entry = { turn, from: start.commit, to: end.commit, changes };
      this.#changes.set(turn, entry);
      this.#post({ type: "changes", ...entry });
    }
  }

  async #readRedo(): Promise<void> {
    const selected = this.#selected;
    if (!selected) return;
    try {
      const tree = await this.#ctx.request("conversation/tree", {
        agent: selected.agent.id,
        conversation: selected.conversation.id,
      });
      if (this.#selected !== selected) return;
      this.#redo = redoCandidates(tree).length > 0;
      this.#postState();
    } catch (err) {
      this.#ctx.output.warn(`conversation/tree: ${String(err)}`);
    }
  }

  async #receive(message: FromWebview): Promise<void> {
    try {
      switch (message.type) {
        case "ready":
          this.#ready = true;
          this.#resend();
          break;
        case "send":
          await this.send(message.text);
          break;
        case "cancel":
          await this.cancel();
          break;
        case "rewind":
          await vscode.commands.executeCommand("exo.rewind", { event: message.event });
          break;
        case "fork":
          await vscode.commands.executeCommand("exo.fork", { event: message.event });
          break;
        case "redo":
          await vscode.commands.executeCommand("exo.redo");
          break;
        case "diff": {
          const selected = this.#selected;
          if (!selected) return;
          await openDiff({
            agent: selected.agent.id,
            conversation: selected.conversation.id,
            from: message.from,
            to: message.to,
            path: message.path,
            against: message.against,
            workspace: selected.conversation.workspace ?? undefined,
            label: "turn",
          });
          break;
        }
        case "approve":
          await vscode.commands.executeCommand("exo.respond", {
            turn: message.turn,
            callId: message.callId,
            decision: message.decision,
          });
          break;
      }
    } catch (err) {
      this.#ctx.output.error(`${message.type}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      void vscode.window.showErrorMessage(`exo: ${describeError(err)}`);
    }
  }

  /** Everything again, for a webview that (re)loaded. */
  #resend(): void {
    this.#post(this.#conversationMessage());
    if (this.#history.events.length > 0) this.#post({ type: "append", events: [...this.#history.events] });
    for (const entry of this.#changes.values()) this.#post({ type: "changes", ...entry });
    for (const request of this.#approvals.values()) this.#post({ type: "approval", request });
    this.#postState();
  }

  #conversationMessage(): ToWebview {
    const selected = this.#selected;
    return {
      type: "conversation",
      title: selected ? `${selected.agent.slug} / ${selected.conversation.name}` : "no conversation selected",
      workspace: selected?.conversation.workspace ?? null,
    };
  }

  #postState(): void {
    const state = this.#ctx.session?.state;
    this.#post({
      type: "state",
      connected: state?.kind === "connected" && this.#selected !== undefined,
      running: this.#running ?? null,
      sending: this.sending,
      redo: this.#redo,
      error: state?.kind === "disconnected" ? describeError(state.reason) : null,
    });
  }

  #setRunning(turn: string | undefined): void {
    if (turn === this.#running) return;
    this.#running = turn;
    void vscode.commands.executeCommand("setContext", "exo.turnRunning", turn !== undefined);
    this.#onRunning.fire(turn);
    this.#postState();
  }

  #post(message: ToWebview): void {
    if (this.#panel && this.#ready) void this.#panel.webview.postMessage(message);
  }

  #title(): string {
    return this.#selected ? `exo: ${this.#selected.conversation.name}` : "exo timeline";
  }

  dispose(): void {
    this.#watch?.dispose();
    this.#panel?.dispose();
    if (this.#treeTimer) clearTimeout(this.#treeTimer);
    for (const disposable of this.#disposables) disposable.dispose();
  }
}
