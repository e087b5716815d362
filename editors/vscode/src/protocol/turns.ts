// The turns this client runs with `turn/run` (the chat input's), by
// conversation, and the approval questions they ask, wherever the user is
// looking meanwhile.
//
// Key design ideas:
// - A turn belongs to the conversation it was run in, not to the one
//   shown: selecting another conversation mid-turn must not lose its
//   questions (the daemon denies what nobody answers once the caller
//   goes) nor block the other conversation's input. So what is "sending"
//   is kept per conversation, and the questions are read from the
//   runner's own connection (`approval/request` without a watch id),
//   which gets them whether or not anything watches the conversation.
// - A question names only its turn: the turn's conversation is learnt
//   from the `turn/events` that come before it on the same connection
//   (their events carry the conversation's id).
// - One runner serves every session in turn (a settings change starts a
//   new one), so the extension can ask it whether a turn is on its way
//   before it replaces the session.

import type { ExoSession } from "./session";
import type { ApprovalRequest, Event, TurnRunResult } from "./types";

/** A question of a turn run here, with where the turn runs. */
export interface TurnQuestion {
  /** The agent and conversation the turn was run in, as given to {@link TurnRunner.run}. */
  agent: string;
  conversation: string;
  request: ApprovalRequest;
}

interface Run {
  agent: string;
  conversation: string;
  session: ExoSession;
  turn: string | undefined;
}

interface Listening {
  runs: number;
  dispose: () => void;
}

/** The turns run here; see the file's header. */
export class TurnRunner {
  /** By conversation id: at most one turn runs in a conversation. */
  readonly #runs = new Map<string, Run>();
  readonly #listening = new Map<ExoSession, Listening>();
  readonly #changeHandlers = new Set<(conversation: string) => void>();
  readonly #questionHandlers = new Set<(question: TurnQuestion) => void>();
  readonly #log: (line: string) => void;

  constructor(log: (line: string) => void = () => undefined) {
    this.#log = log;
  }

  /**
   * Runs a turn in `conversation` (an id: the events name it so) on
   * `session`, answering approvals here, and resolves with its result.
   * Refused while a turn run here is still on its way in that conversation.
   */
  async run(session: ExoSession, agent: string, conversation: string, input: string): Promise<TurnRunResult> {
    if (this.#runs.has(conversation)) throw new Error("a turn sent from here is still running in this conversation");
    const run: Run = { agent, conversation, session, turn: undefined };
    this.#runs.set(conversation, run);
    const stop = this.#listen(session);
    this.#changed(conversation);
    try {
      return await session.request("turn/run", { agent, conversation, input, approvals: true });
    } finally {
      this.#runs.delete(conversation);
      stop();
      this.#changed(conversation);
    }
  }

  /** Whether a turn run here is on its way in `conversation`. */
  isSending(conversation: string): boolean {
    return this.#runs.has(conversation);
  }

  /** Whether any turn run here is on its way. */
  get busy(): boolean {
    return this.#runs.size > 0;
  }

  /** Calls `handler` with a conversation whose sending state changed; returns a disposer. */
  onDidChange(handler: (conversation: string) => void): () => void {
    this.#changeHandlers.add(handler);
    return () => this.#changeHandlers.delete(handler);
  }

  /** Calls `handler` with every question a turn run here asks; returns a disposer. */
  onQuestion(handler: (question: TurnQuestion) => void): () => void {
    this.#questionHandlers.add(handler);
    return () => this.#questionHandlers.delete(handler);
  }

  /** Listens to `session` while at least one turn runs on it. */
  #listen(session: ExoSession): () => void {
    let listening = this.#listening.get(session);
    if (listening === undefined) {
      const dispose = session.onNotification((method, params, watch) => {
        // A watch's copies go to the watch's listener; ours come without one.
        if (watch !== undefined) return;
        if (method === "turn/events") this.#turnEvents(session, params as { turn: string; events: Event[] });
        if (method === "approval/request") this.#question(session, params as ApprovalRequest);
      });
      listening = { runs: 0, dispose };
      this.#listening.set(session, listening);
    }
    listening.runs += 1;
    const current = listening;
    return () => {
      current.runs -= 1;
      if (current.runs === 0) {
        current.dispose();
        this.#listening.delete(session);
      }
    };
  }

  #turnEvents(session: ExoSession, params: { turn: string; events: Event[] }): void {
    if (this.#byTurn(params.turn) !== undefined) return;
    for (const event of params.events) {
      const run = this.#runs.get(event.conversation);
      if (run !== undefined && run.session === session && run.turn === undefined && event.turn === params.turn) {
        run.turn = params.turn;
        return;
      }
    }
  }

  #question(session: ExoSession, request: ApprovalRequest): void {
    let run = this.#byTurn(request.turn);
    if (run === undefined) {
      // A run given a slug, not an id: when it is the only one on this
      // session still without a turn, the question is its.
      const unknown = [...this.#runs.values()].filter((r) => r.session === session && r.turn === undefined);
      if (unknown.length === 1) run = unknown[0];
    }
    if (run === undefined) {
      this.#log(`a question of turn ${request.turn}, which no turn run here is`);
      return;
    }
    run.turn ??= request.turn;
    const question: TurnQuestion = { agent: run.agent, conversation: run.conversation, request };
    for (const handler of this.#questionHandlers) {
      try {
        handler(question);
      } catch (err) {
        this.#log(`a question handler threw: ${String(err)}`);
      }
    }
  }

  #byTurn(turn: string): Run | undefined {
    for (const run of this.#runs.values()) if (run.turn === turn) return run;
    return undefined;
  }

  #changed(conversation: string): void {
    for (const handler of this.#changeHandlers) {
      try {
        handler(conversation);
      } catch (err) {
        this.#log(`a change handler threw: ${String(err)}`);
      }
    }
  }
}
