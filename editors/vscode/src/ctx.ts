// The extension's state: the exo root of the open folder, the session with
// its daemon, the turns run from this window, and the conversation the
// user works with (the selection). Views, the timeline and the commands
// read it and listen to its events.
//
// Key design ideas:
// - The session is replaced only when what it connects with changes (a
//   connection setting, the folders that decide the root), and never
//   while a turn sent from this window runs: dropping the connection
//   would have the daemon deny that turn's approvals. The restart waits
//   for the turn to end, and the user is told once.

import { readFileSync } from "node:fs";
import { join } from "node:path";

import * as vscode from "vscode";

import { canonicalPath } from "./dirty";
import { findRoot } from "./protocol/daemon";
import { ExoSession, type SessionState } from "./protocol/session";
import { TurnRunner } from "./protocol/turns";
import type { Agent, Conversation, Method, ParamsOf, ResultOf } from "./protocol/types";

/** The settings a session is made from: a change of one restarts it. */
export const CONNECTION_SETTINGS = ["exo.path", "exo.root", "exo.daemon.start"];

/** A conversation with its agent. */
export interface Selected {
  agent: Agent;
  conversation: Conversation;
}

/** What a forking window leaves for the window it opens (see `rememberFork`). */
interface ForkNote {
  root: string;
  agent: string;
  conversation: string;
}

const FORKS_KEY = "exo.forks";

/** The extension's state; see the file's header. */
export class Ctx implements vscode.Disposable {
  readonly output: vscode.LogOutputChannel;
  readonly extension: vscode.ExtensionContext;
  /** The turns sent from this window, across sessions. */
  readonly turns: TurnRunner;
  #root: string | undefined;
  /** Why a restart waits for the running turns to end, when one does. */
  #deferredRestart: string | undefined;
  #session: ExoSession | undefined;
  #selected: Selected | undefined;
  readonly #onSession = new vscode.EventEmitter<ExoSession | undefined>();
  readonly #onState = new vscode.EventEmitter<SessionState>();
  readonly #onSelected = new vscode.EventEmitter<Selected | undefined>();
  readonly #disposables: { dispose(): unknown }[] = [];

  /** A new session (after a start, or a change of root or setting). */
  readonly onDidChangeSession = this.#onSession.event;
  /** The session's connection state changed. */
  readonly onDidChangeState = this.#onState.event;
  /** Another conversation was selected. */
  readonly onDidChangeSelection = this.#onSelected.event;

  constructor(extension: vscode.ExtensionContext) {
    this.extension = extension;
    this.output = vscode.window.createOutputChannel("exo", { log: true });
    this.turns = new TurnRunner((line) => {
      this.output.info(line);
    });
    const stopFollowingTurns = this.turns.onDidChange(() => {
      if (this.#deferredRestart !== undefined && !this.turns.busy) {
        this.output.info(`the running turn ended: restarting (${this.#deferredRestart})`);
        this.#deferredRestart = undefined;
        this.restart();
      }
    });
    this.#disposables.push(
      this.output,
      this.#onSession,
      this.#onState,
      this.#onSelected,
      { dispose: stopFollowingTurns },
      vscode.workspace.onDidChangeConfiguration((change) => {
        const changed = CONNECTION_SETTINGS.filter((setting) => change.affectsConfiguration(setting));
        if (changed.length > 0) this.#restartWhenIdle(`${changed.join(", ")} changed`);
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        this.#restartWhenIdle("the workspace folders changed");
      }),
    );
  }

  /** The exo root in use, if one was found. */
  get root(): string | undefined {
    return this.#root;
  }

  get session(): ExoSession | undefined {
    return this.#session;
  }

  get selected(): Selected | undefined {
    return this.#selected;
  }

  /** The open folder (the first, in a multi-root window). */
  get folder(): string | undefined {
    return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  }

  /** Restarts now, or once the turns sent from this window have ended; see the file's header. */
  #restartWhenIdle(reason: string): void {
    if (!this.turns.busy) {
      this.output.info(`${reason}: restarting the connection`);
      this.restart();
      return;
    }
    const told = this.#deferredRestart !== undefined;
    this.#deferredRestart = reason;
    this.output.info(`${reason}: the connection restarts once the running turn ends`);
    if (!told) {
      void vscode.window.showInformationMessage(
        `exo: ${reason}; the connection restarts once the running turn ends, so its approvals are not lost.`,
      );
    }
  }

  /** Finds the root and starts a session with its daemon (again). */
  restart(): void {
    this.#deferredRestart = undefined;
    this.#session?.dispose();
    this.#session = undefined;
    this.#selected = undefined;
    const config = vscode.workspace.getConfiguration("exo");
    const folder = this.folder;
    const note = folder !== undefined ? this.#forkNote(folder) : undefined;
    const override = config.get<string>("root", "") || note?.root;
    this.#root = folder !== undefined || override ? findRoot(folder ?? process.cwd(), process.env, override) : undefined;
    void vscode.commands.executeCommand("setContext", "exo.hasRoot", this.#root !== undefined);
    if (this.#root === undefined) {
      this.output.info(`no exo root found from ${folder ?? "(no folder)"}`);
      this.#onSession.fire(undefined);
      this.#onSelected.fire(undefined);
      return;
    }
    const start = config.get<"socket" | "stdio" | "never">("daemon.start", "socket");
    const exo = config.get<string>("path", "exo") || "exo";
    this.output.info(`exo root ${this.#root}; program ${exo}; start ${start}`);
    const session = new ExoSession({
      root: this.#root,
      exo,
      start,
      log: (line) => {
        this.output.info(line);
      },
    });
    this.#session = session;
    session.onState((state) => {
      if (state.kind === "connected") {
        this.output.info(`connected to the exo daemon (pid ${state.status.pid}, ${state.transport})`);
        void this.#selectDefault(note);
      }
      this.#onState.fire(state);
    });
    session.start();
    this.#onSession.fire(session);
    this.#onSelected.fire(undefined);
  }

  /** Sends a request through the session; fails when there is no root. */
  async request<M extends Method>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    const session = this.#session;
    if (!session) throw new Error("no exo root: open a folder inside an exo project, or set exo.root");
    return session.request(method, params);
  }

  /** Selects a conversation (or none). */
  select(selected: Selected | undefined): void {
    const same = selected?.conversation.id === this.#selected?.conversation.id;
    this.#selected = selected;
    if (!same) this.#onSelected.fire(selected);
  }

  /** Reads the conversation again and keeps the selection up to date. */
  async refreshSelected(): Promise<Selected | undefined> {
    const selected = this.#selected;
    if (!selected) return undefined;
    const conversation = await this.request("conversation/get", {
      agent: selected.agent.id,
      conversation: selected.conversation.id,
    });
    if (this.#selected?.conversation.id === conversation.id) {
      this.#selected = { agent: selected.agent, conversation };
    }
    return this.#selected;
  }

  /** The conversation `exo use` picked (`<root>/current.json`), if any. */
  inUse(): { agent: string; conversation: string } | undefined {
    if (this.#root === undefined) return undefined;
    try {
      const current = JSON.parse(readFileSync(join(this.#root, "current.json"), "utf8")) as {
        agent?: unknown;
        conversation?: unknown;
      };
      if (typeof current.agent === "string" && typeof current.conversation === "string") {
        return { agent: current.agent, conversation: current.conversation };
      }
    } catch {
      // No conversation in use.
    }
    return undefined;
  }

  /**
   * Leaves a note for the window that will open `folder` (a fork's new
   * directory, which is not under the root): which root and conversation
   * to show there. Kept in the global state every window shares.
   */
  async rememberFork(folder: string, note: ForkNote): Promise<void> {
    const forks = this.extension.globalState.get<Record<string, ForkNote>>(FORKS_KEY, {});
    forks[folder] = note;
    await this.extension.globalState.update(FORKS_KEY, forks);
  }

  #forkNote(folder: string): ForkNote | undefined {
    const forks = this.extension.globalState.get<Record<string, ForkNote>>(FORKS_KEY, {});
    return forks[folder];
  }

  /**
   * Selects a conversation when none is: the one a fork note names, else
   * one bound to the open folder (the one in use first), else the one in
   * use.
   */
  async #selectDefault(note: ForkNote | undefined): Promise<void> {
    if (this.#selected) return;
    try {
      const { agents } = await this.request("agent/list", {});
      const folder = this.folder;
      const inUse = this.inUse();
      let bound: Selected | undefined;
      let used: Selected | undefined;
      for (const agent of agents) {
        const { conversations } = await this.request("conversation/list", { agent: agent.id });
        for (const conversation of conversations) {
          if (note && note.conversation === conversation.id) {
            this.select({ agent, conversation });
            return;
          }
          const isUsed = inUse?.conversation === conversation.id;
          if (isUsed) used = { agent, conversation };
          if (folder !== undefined && typeof conversation.workspace === "string" && sameDir(conversation.workspace, folder)) {
            if (!bound || isUsed) bound = { agent, conversation };
          }
        }
      }
      const choice = bound ?? used;
      if (choice && this.selected === undefined) this.select(choice);
    } catch (err) {
      this.output.warn(`cannot pick a conversation: ${String(err)}`);
    }
  }

  dispose(): void {
    this.#session?.dispose();
    for (const disposable of this.#disposables) disposable.dispose();
  }
}

/** Whether two paths name the same directory (symlinks resolved). */
export function sameDir(a: string, b: string): boolean {
  return canonicalPath(a) === canonicalPath(b);
}
