// The history mirror on its own: appends, rewinds applied by the client,
// redo onto a branch it never held, the running turn and turn snapshots.

import assert from "node:assert/strict";
import { test } from "node:test";

import { History } from "../src/protocol/history";
import type { Event } from "../src/protocol/types";

let n = 0;
function event(kind: string, fields: Record<string, unknown> = {}, turn: string | null = null): Event {
  n += 1;
  const made: Event = { id: `e${String(n)}`, conversation: "c", session: null, turn, created_at: "2026-12-05T00:00:00.000000Z", kind };
  return Object.assign(made, fields);
}

test("appends in order, skipping what was delivered already", () => {
  const history = new History();
  const [a, b] = [event("conversation_created"), event("message")];
  assert.deepEqual(history.apply([a, b]), [{ op: "append", events: [a, b] }]);
  assert.deepEqual(history.apply([b]), []);
  assert.equal(history.head, b);
});

test("a rewound event drops what follows its target, then is appended", () => {
  const history = new History();
  const [a, b, c] = [event("conversation_created"), event("message"), event("message")];
  history.apply([a, b, c]);
  const rewound = event("rewound", { from_event: c.id, to_event: a.id });
  assert.deepEqual(history.apply([rewound]), [
    { op: "truncate", after: a.id },
    { op: "append", events: [rewound] },
  ]);
  assert.deepEqual(history.events.map((e) => e.id), [a.id, rewound.id]);
  assert.equal(history.has(b.id), false);
});

test("a rewound event to an event it never held asks for a reload", () => {
  const history = new History();
  const a = event("conversation_created");
  history.apply([a]);
  const redo = event("rewound", { from_event: a.id, to_event: "elsewhere" });
  assert.deepEqual(history.apply([redo]), [{ op: "reload" }]);
});

test("the running turn, each turn's snapshots and its last event", () => {
  const history = new History();
  const started = event("turn_started", {}, "t1");
  const start = event("workspace_snapshot", { reason: "turn_start", commit: "c1" }, "t1");
  const end = event("workspace_snapshot", { reason: "turn_end", commit: "c2" }, "t1");
  const ended = event("turn_ended", { status: "completed" }, "t1");
  history.apply([event("conversation_created"), started, start]);
  assert.equal(history.runningTurn(), "t1");
  history.apply([end, ended]);
  assert.equal(history.runningTurn(), undefined);
  const snapshots = history.turnSnapshots().get("t1");
  assert.ok(snapshots);
  assert.equal(snapshots.start, start);
  assert.equal(snapshots.end, end);
  assert.equal(history.lastOfTurn("t1"), ended);
});
