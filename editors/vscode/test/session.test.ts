// The protocol client against a real daemon (the exo binary): finding the
// root, starting and reaching the daemon over its socket or stdio, watches
// across a daemon restart, turns with approvals (also while another
// conversation is selected), the rewind's dry run, what a redo can go back
// to, the snapshot a fork writes, and `snapshot/read`. Each test has its
// own scratch root and stops its daemons, whatever happens.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { connectToRunning, findRoot } from "../src/protocol/daemon";
import { History } from "../src/protocol/history";
import { RpcError } from "../src/protocol/rpc";
import { ExoSession, type SessionOptions, type SessionState } from "../src/protocol/session";
import { redoCandidates, snapshotInEffect } from "../src/protocol/travel";
import { TurnRunner, type TurnQuestion } from "../src/protocol/turns";
import type { ApprovalRequest, Event, TurnDelta } from "../src/protocol/types";
import { EXO, Scratch, waitFor } from "./support";

/** A scratch root with agent `a` and conversation `c` bound to the project. */
function scratch(t: TestContext): Scratch {
  const s = new Scratch();
  t.after(() => s.dispose());
  s.exo(["agent", "create", "A", "--slug", "a"]);
  s.exo(["conversation", "create", "a", "C", "--slug", "c", "--workspace", s.project]);
  return s;
}

function session(t: TestContext, s: Scratch, options: Partial<SessionOptions> = {}): ExoSession {
  const logs: string[] = [];
  const exo = new ExoSession({
    root: s.root,
    exo: EXO,
    env: s.env,
    logDir: s.dir,
    start: "socket",
    maxRetryMs: 300,
    log: (line) => logs.push(line),
    ...options,
  });
  t.after(() => {
    exo.dispose();
  });
  exo.start();
  return exo;
}

/** Every event a watch delivered, and how many times it reset. */
function collect(exo: ExoSession, agent = "a", conversation = "c") {
  const seen = { events: [] as Event[], resets: 0, deltas: [] as TurnDelta[], approvals: [] as ApprovalRequest[] };
  const watch = exo.watch(agent, conversation, {
    events: (events) => seen.events.push(...events),
    reset: () => {
      seen.resets += 1;
      seen.events = [];
    },
    delta: (delta) => seen.deltas.push(delta),
    approval: (request) => seen.approvals.push(request),
  });
  return { seen, watch };
}

function texts(events: Event[]): string[] {
  return events.flatMap((event) => {
    if (event.kind !== "message") return [];
    const content = (event as { content?: { type: string; text?: string }[] }).content ?? [];
    return content.flatMap((part) => (part.type === "text" && part.text !== undefined ? [part.text] : []));
  });
}

function unique(events: Event[]): boolean {
  return new Set(events.map((event) => event.id)).size === events.length;
}

test("the root is the nearest .exo holding a store, as exo finds it", (t) => {
  const s = scratch(t);
  const deep = join(s.project, "src", "deep");
  mkdirSync(deep, { recursive: true });
  assert.equal(findRoot(deep, s.env), s.root);
  assert.equal(findRoot(s.project, s.env), s.root);
  // Above the project there is none (the ceiling stops the search).
  assert.equal(findRoot(s.dir, s.env), undefined);
  // A .exo without a store is passed over.
  mkdirSync(join(deep, ".exo"));
  assert.equal(findRoot(deep, s.env), s.root);
  // EXO_ROOT, or a setting, names it outright.
  assert.equal(findRoot(s.dir, { ...s.env, EXO_ROOT: s.root }), s.root);
  assert.equal(findRoot(s.dir, s.env, s.root), s.root);
});

test("a session starts a daemon when none runs and reaches it over its socket", async (t) => {
  const s = scratch(t);
  assert.equal(await connectToRunning({ root: s.root, exo: EXO }), undefined);
  const exo = session(t, s);
  await exo.connected();
  const state = exo.state as Extract<SessionState, { kind: "connected" }>;
  assert.equal(state.kind, "connected");
  assert.equal(state.transport, "socket");
  assert.equal(state.status.root, s.root);
  const lock = JSON.parse(readFileSync(join(s.root, "daemon.lock"), "utf8")) as { pid: number; socket: string };
  assert.equal(lock.pid, state.status.pid);
  const { agents } = await exo.request("agent/list", {});
  assert.deepEqual(agents.map((agent) => agent.slug), ["a"]);
  // The command line goes through the same daemon.
  const status = s.json(["daemon", "status"]) as { pid: number };
  assert.equal(status.pid, state.status.pid);
});

test("errors carry the daemon's data.code", async (t) => {
  const s = scratch(t);
  const exo = session(t, s);
  await assert.rejects(exo.request("conversation/get", { agent: "a", conversation: "nope" }), (err: unknown) => {
    assert.ok(err instanceof RpcError);
    assert.equal(err.code, -32001);
    assert.equal(err.kind, "not_found");
    assert.equal(err.data.what, "conversation");
    return true;
  });
});

test("a watch replays, then streams what another process appends, once", async (t) => {
  const s = scratch(t);
  s.append("a", "c", [{ kind: "message", role: "user", content: "before" }]);
  const exo = session(t, s);
  const { seen, watch } = collect(exo);
  await watch.ready();
  await waitFor(() => texts(seen.events).includes("before"), 20_000, "the replay");
  assert.equal(seen.events[0]?.kind, "conversation_created");
  s.append("a", "c", [{ kind: "message", role: "user", content: "live" }]);
  await waitFor(() => texts(seen.events).includes("live"), 20_000, "the live event");
  assert.deepEqual(texts(seen.events), ["before", "live"]);
  assert.ok(unique(seen.events));
  assert.equal(watch.cursor, seen.events[seen.events.length - 1]?.id);
});

test("after the daemon restarts, the session reconnects and the watch goes on from its cursor", async (t) => {
  const s = scratch(t);
  const exo = session(t, s, { start: "never" });
  s.startDaemon();
  const { seen, watch } = collect(exo);
  await watch.ready();
  s.append("a", "c", [{ kind: "message", role: "user", content: "one" }]);
  await waitFor(() => texts(seen.events).includes("one"), 20_000, "event one");
  const firstPid = (exo.state as Extract<SessionState, { kind: "connected" }>).status.pid;

  const states: string[] = [];
  exo.onState((state) => states.push(state.kind));
  await s.stopDaemon();
  await waitFor(() => exo.state.kind === "disconnected", 20_000, "the session to notice");
  // Written while no daemon runs (the command line opens the store itself):
  // the replay after the reconnect brings it.
  s.append("a", "c", [{ kind: "message", role: "user", content: "two" }]);
  s.startDaemon();
  await exo.connected();
  await waitFor(() => texts(seen.events).includes("two"), 20_000, "event two, replayed");
  s.append("a", "c", [{ kind: "message", role: "user", content: "three" }]);
  await waitFor(() => texts(seen.events).includes("three"), 20_000, "event three, live");
  const state = exo.state as Extract<SessionState, { kind: "connected" }>;
  assert.notEqual(state.status.pid, firstPid);
  assert.deepEqual(texts(seen.events), ["one", "two", "three"]);
  assert.ok(unique(seen.events), "no event is delivered twice");
  assert.equal(seen.resets, 0);
  assert.ok(states.includes("disconnected") && states.includes("connected"), states.join(", "));
});

test("a daemon stopped on purpose stays stopped until the user asks for one", async (t) => {
  const s = scratch(t);
  const exo = session(t, s);
  await exo.connected();
  const firstPid = (exo.state as Extract<SessionState, { kind: "connected" }>).status.pid;
  await exo.request("daemon/stop", {});
  await waitFor(() => exo.state.kind === "disconnected", 20_000, "the session to notice");
  // Several reconnect attempts (maxRetryMs is 300) only knock on the socket.
  const knocks: string[] = [];
  exo.onState((state) => knocks.push(state.kind));
  await waitFor(() => knocks.filter((kind) => kind === "disconnected").length >= 3, 20_000, "three attempts");
  assert.equal(await connectToRunning({ root: s.root, exo: EXO }), undefined, "no daemon was started");
  const waiting: SessionState = exo.state;
  assert.ok(waiting.kind === "disconnected" && /no exo daemon is running/.test(waiting.reason), JSON.stringify(waiting));
  exo.allowStart();
  const { agents } = await exo.request("agent/list", {});
  assert.equal(agents.length, 1);
  const state: SessionState = exo.state;
  assert.ok(state.kind === "connected" && state.status.pid !== firstPid, JSON.stringify(state));
});

test("a watch whose cursor left the history (a rewind while away) starts over", async (t) => {
  const s = scratch(t);
  const exo = session(t, s, { start: "never" });
  s.startDaemon();
  s.append("a", "c", [
    { kind: "message", role: "user", content: "kept" },
    { kind: "message", role: "user", content: "dropped" },
  ]);
  const { seen, watch } = collect(exo);
  await watch.ready();
  await waitFor(() => texts(seen.events).includes("dropped"), 20_000, "the replay");
  const kept = seen.events.find((event) => texts([event]).includes("kept"));
  assert.ok(kept);
  await s.stopDaemon();
  await waitFor(() => exo.state.kind === "disconnected", 20_000, "the session to notice");
  s.exo(["conversation", "rewind", "a", "c", "--to", kept.id]);
  s.startDaemon();
  await waitFor(() => seen.resets === 1 && seen.events.some((event) => event.kind === "rewound"), 30_000, "the new replay");
  assert.deepEqual(texts(seen.events), ["kept"]);
  assert.equal(seen.events[seen.events.length - 1]?.kind, "rewound");
});

test("over exo daemon --stdio, the session's process is the daemon until it ends", async (t) => {
  const s = scratch(t);
  const exo = session(t, s, { start: "stdio" });
  await exo.connected();
  const state = exo.state as Extract<SessionState, { kind: "connected" }>;
  assert.equal(state.transport, "stdio");
  assert.equal(state.status.root, s.root);
  const { conversations } = await exo.request("conversation/list", { agent: "a" });
  assert.deepEqual(conversations.map((c) => c.slug), ["c"]);
  // Other clients reach it on the socket.
  const other = await connectToRunning({ root: s.root, exo: EXO });
  assert.ok(other);
  assert.equal(other.status.pid, state.status.pid);
  other.connection.close();
  exo.dispose();
  await waitFor(async () => (await connectToRunning({ root: s.root, exo: EXO })) === undefined, 30_000, "the daemon to stop");
});

test("turn/run asks for approval on the connection and the watch; Allow writes the file", async (t) => {
  const s = scratch(t);
  s.scriptedModel("scripted", [
    { text: "Writing it.", tool_calls: [{ name: "write_file", arguments: { path: "approved.txt", content: "approved\n" } }] },
    { text: "Done." },
  ]);
  s.exo(["agent", "create", "Asker", "--slug", "asker", "--model", "scripted", "--approval", "ask"]);
  s.exo(["conversation", "create", "asker", "Q", "--slug", "q", "--workspace", s.project]);
  const exo = session(t, s);
  const direct: ApprovalRequest[] = [];
  exo.onNotification((method, params, watch) => {
    if (method === "approval/request" && watch === undefined) direct.push(params as ApprovalRequest);
  });
  const { seen, watch } = collect(exo, "asker", "q");
  await watch.ready();
  const run = exo.request("turn/run", { agent: "asker", conversation: "q", input: "write approved.txt", approvals: true });
  const asked = await waitFor(() => seen.approvals[0], 30_000, "the approval question");
  assert.equal(asked.tool, "write_file");
  assert.deepEqual(asked.arguments, { path: "approved.txt", content: "approved\n" });
  await waitFor(() => direct.length > 0, 10_000, "the question on the runner's connection");
  assert.equal(existsSync(join(s.project, "approved.txt")), false);
  const pending = await exo.request("approval/list", { agent: "asker", conversation: "q" });
  assert.equal(pending.approvals.length, 1);
  await exo.request("approval/respond", { turn: asked.turn, call_id: asked.call_id, decision: "allow_once" });
  const result = await run;
  assert.equal(result.status, "completed");
  assert.equal(result.text, "Done.");
  assert.equal(readFileSync(join(s.project, "approved.txt"), "utf8"), "approved\n");
  // Streamed to the watch as deltas, recorded whole as events.
  assert.equal(
    seen.deltas.filter((delta) => delta.turn === result.turn).map((delta) => delta.text ?? "").join(""),
    "Writing it.Done.",
  );
  await waitFor(() => seen.events.some((event) => event.kind === "turn_ended"), 10_000, "turn_ended on the watch");
  const approval = seen.events.find((event) => event.kind === "custom" && (event as { type?: string }).type === "exo.approval");
  assert.ok(approval);
  assert.equal((approval as { payload?: { approved?: boolean; by?: string } }).payload?.by, "user");
});

test("a rewind's dry run shows the files and changes nothing; unsnapshotted edits are conflicts", async (t) => {
  const s = scratch(t);
  s.scriptedModel("scripted", [
    { text: "Writing.", tool_calls: [{ name: "write_file", arguments: { path: "notes.md", content: "first\n" } }] },
    { text: "Wrote notes.md." },
    { text: "Adding.", tool_calls: [{ name: "write_file", arguments: { path: "more.md", content: "more\n" } }] },
    { text: "Added more.md." },
  ]);
  s.exo(["agent", "create", "Coder", "--slug", "coder", "--model", "scripted", "--approval", "auto"]);
  s.exo(["conversation", "create", "coder", "Work", "--slug", "work", "--workspace", s.project]);
  s.exo(["conversation", "send", "coder", "work", "one"]);
  s.exo(["conversation", "send", "coder", "work", "two"]);
  const exo = session(t, s);
  const { events } = await exo.request("events/list", { agent: "coder", conversation: "work", limit: 1000 });
  const firstEnd = events.find((event) => event.kind === "turn_ended");
  assert.ok(firstEnd);
  const before = await exo.request("conversation/get", { agent: "coder", conversation: "work" });

  const dry = await exo.request("conversation/rewind", {
    agent: "coder",
    conversation: "work",
    to: firstEnd.id,
    expected_head: before.head,
    dry_run: true,
  });
  assert.equal(dry.event ?? null, null);
  assert.equal(dry.conversation.head, before.head);
  assert.ok(dry.files);
  assert.equal(dry.files.written, false);
  assert.deepEqual(dry.files.changes, [{ path: "more.md", change: "deleted" }]);
  assert.deepEqual(dry.files.conflicts ?? [], []);
  assert.ok(existsSync(join(s.project, "more.md")), "a dry run writes nothing");
  const after = await exo.request("conversation/get", { agent: "coder", conversation: "work" });
  assert.equal(after.head, before.head);

  // An edit exo has not snapshotted: listed, and a real rewind refuses.
  writeFileSync(join(s.project, "notes.md"), "my own edit\n");
  const refused = await exo.request("conversation/rewind", {
    agent: "coder",
    conversation: "work",
    to: firstEnd.id,
    dry_run: true,
  });
  assert.deepEqual(refused.files?.conflicts, [{ path: "notes.md", change: "modified" }]);
  await assert.rejects(
    exo.request("conversation/rewind", { agent: "coder", conversation: "work", to: firstEnd.id }),
    (err: unknown) => err instanceof RpcError && err.kind === "conflict" && err.message.includes("notes.md"),
  );
  assert.equal(readFileSync(join(s.project, "notes.md"), "utf8"), "my own edit\n");
  assert.ok(existsSync(join(s.project, "more.md")));
});

test("snapshot/read reads a file as a snapshot holds it; absent is null", async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.project, "hello.txt"), "hello\n");
  const taken = s.json(["snapshot", "take", "a", "c"]) as { event: { id: string; commit: string } };
  writeFileSync(join(s.project, "hello.txt"), "changed on disk\n");
  const exo = session(t, s);
  for (const snapshot of [taken.event.commit, taken.event.id]) {
    const file = await exo.request("snapshot/read", { agent: "a", conversation: "c", snapshot, path: "hello.txt" });
    assert.equal(file.snapshot, taken.event.commit);
    assert.equal(file.path, "hello.txt");
    assert.equal(Buffer.from(file.content_base64 ?? "", "base64").toString("utf8"), "hello\n");
    assert.equal(file.size, 6);
  }
  const absent = await exo.request("snapshot/read", {
    agent: "a",
    conversation: "c",
    snapshot: taken.event.commit,
    path: "nope.txt",
  });
  assert.equal(absent.content_base64, null);
});

test("a turn sent from here keeps asking and ends while another conversation is shown", async (t) => {
  const s = scratch(t);
  s.scriptedModel("scripted", [
    { text: "Writing it.", tool_calls: [{ name: "write_file", arguments: { path: "away.txt", content: "written\n" } }] },
    { text: "Done." },
  ]);
  s.exo(["agent", "create", "Asker", "--slug", "asker", "--model", "scripted", "--approval", "ask"]);
  s.exo(["conversation", "create", "asker", "Q", "--slug", "q", "--workspace", s.project]);
  const exo = session(t, s);
  const q = await exo.request("conversation/get", { agent: "asker", conversation: "q" });
  const c = await exo.request("conversation/get", { agent: "a", conversation: "c" });
  const runner = new TurnRunner();
  const questions: TurnQuestion[] = [];
  const changes: string[] = [];
  runner.onQuestion((question) => questions.push(question));
  runner.onDidChange((conversation) => changes.push(conversation));

  // Sent from q's chat input; the user then selects c before the question
  // comes, so nothing watches q when it is asked.
  const shownQ = collect(exo, "asker", "q");
  await shownQ.watch.ready();
  const run = runner.run(exo, q.agent, q.id, "write away.txt");
  shownQ.watch.dispose();
  const shownC = collect(exo, "a", "c");
  await shownC.watch.ready();
  assert.ok(runner.isSending(q.id), "q is sending");
  assert.equal(runner.isSending(c.id), false, "c's input is free");

  const asked = await waitFor(() => questions[0], 30_000, "the question, asked while c is shown");
  assert.equal(asked.conversation, q.id);
  assert.equal(asked.agent, q.agent);
  assert.equal(asked.request.tool, "write_file");
  assert.deepEqual(shownC.seen.approvals, [], "c's watch is not asked");

  // Back to q: its history shows the turn still running, the question pending.
  const history = new History();
  const back = exo.watch("asker", "q", { events: (events) => history.apply(events) });
  t.after(() => {
    back.dispose();
  });
  await back.ready();
  await waitFor(() => history.runningTurn() === asked.request.turn, 20_000, "the running turn in q's replay");
  const pending = await exo.request("approval/list", { agent: "asker", conversation: "q" });
  assert.deepEqual(pending.approvals.map((p) => p.call_id), [asked.request.call_id]);
  assert.ok(runner.isSending(q.id), "still sending");

  await exo.request("approval/respond", { turn: asked.request.turn, call_id: asked.request.call_id, decision: "allow_once" });
  const result = await run;
  assert.equal(result.status, "completed");
  assert.equal(readFileSync(join(s.project, "away.txt"), "utf8"), "written\n");
  assert.equal(runner.isSending(q.id), false);
  assert.equal(runner.busy, false);
  assert.deepEqual(changes, [q.id, q.id]);
  assert.equal(questions.length, 1, "asked once");
  // A second turn in the same conversation is refused while one runs from here.
  const first = runner.run(exo, q.agent, q.id, "again");
  await assert.rejects(runner.run(exo, q.agent, q.id, "twice"), /still running in this conversation/);
  await first;
});

/** A conversation `coder/work` of two finished turns, each writing a file (approvals automatic). */
function twoTurns(s: Scratch): void {
  s.scriptedModel("scripted", [
    { text: "Writing.", tool_calls: [{ name: "write_file", arguments: { path: "notes.md", content: "first\n" } }] },
    { text: "Wrote notes.md." },
    { text: "Adding.", tool_calls: [{ name: "write_file", arguments: { path: "more.md", content: "more\n" } }] },
    { text: "Added more.md." },
  ]);
  s.exo(["agent", "create", "Coder", "--slug", "coder", "--model", "scripted", "--approval", "auto"]);
  s.exo(["conversation", "create", "coder", "Work", "--slug", "work", "--workspace", s.project]);
  s.exo(["conversation", "send", "coder", "work", "one"]);
  s.exo(["conversation", "send", "coder", "work", "two"]);
}

test("redo offers a branch a rewind left, not the markers a redo leaves", async (t) => {
  const s = scratch(t);
  twoTurns(s);
  const exo = session(t, s);
  const { events } = await exo.request("events/list", { agent: "coder", conversation: "work", limit: 1000 });
  const firstEnd = events.find((event) => event.kind === "turn_ended");
  assert.ok(firstEnd);
  await exo.request("conversation/rewind", { agent: "coder", conversation: "work", to: firstEnd.id });
  let tree = await exo.request("conversation/tree", { agent: "coder", conversation: "work" });
  const candidates = redoCandidates(tree);
  assert.equal(candidates.length, 1);
  const left = candidates[0];
  assert.ok(left);
  assert.ok(left.steps.some((step) => step.kind === "turn" && step.prompt === "two"));

  // The redo leaves the first rewind behind: a branch with nothing to redo.
  await exo.request("conversation/rewind", { agent: "coder", conversation: "work", to: left.head });
  tree = await exo.request("conversation/tree", { agent: "coder", conversation: "work" });
  assert.equal(tree.branches.filter((branch) => !branch.current).length, 1, "the rewind's marker is a branch");
  assert.deepEqual(redoCandidates(tree), []);
});

test("the snapshot a fork writes is the daemon's, at or before the event", async (t) => {
  const s = scratch(t);
  twoTurns(s);
  // A fresh session, no watch: nothing is mirrored.
  const exo = session(t, s);
  const { events } = await exo.request("events/list", { agent: "coder", conversation: "work", limit: 1000 });
  const snapshots = events.filter((event) => event.kind === "workspace_snapshot") as (Event & { commit: string; reason: string })[];
  assert.deepEqual(snapshots.map((snapshot) => snapshot.reason), ["turn_start", "turn_end", "turn_start", "turn_end"]);
  const [, firstTurnEnd, secondTurnStart] = snapshots;
  assert.ok(firstTurnEnd && secondTurnStart);
  const firstEnd = events.find((event) => event.kind === "turn_ended");
  const secondPrompt = events.find((event) => event.kind === "message" && texts([event]).includes("two"));
  assert.ok(firstEnd && secondPrompt);

  const at = (event: string) => snapshotInEffect(exo, "coder", "work", event);
  assert.equal((await at(firstEnd.id))?.commit, firstTurnEnd.commit);
  assert.equal((await at(secondPrompt.id))?.id, secondTurnStart.id);
  assert.equal((await at(secondTurnStart.id))?.id, secondTurnStart.id, "a snapshot is in effect at itself");
  const created = events[0];
  assert.ok(created?.kind === "conversation_created");
  assert.equal(await at(created.id), null);
  await assert.rejects(at("01a00000-0000-7000-8000-000000000000"), (err: unknown) => err instanceof RpcError && err.kind === "not_found");
});
