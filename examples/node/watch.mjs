#!/usr/bin/env node
// Watch a conversation live while recording one turn into it.
//
// A tour of exo's JSON-RPC protocol using only Node's standard library:
//
//     exo daemon &                       # in another terminal, or in the background
//     node examples/node/watch.mjs       # or: watch.mjs path/to/.exo
//
// It connects to the daemon's Unix socket, creates an agent and a fresh
// conversation, starts watching the conversation, then plays the part of an
// executor: it begins a turn with a user message, appends an assistant reply
// and finishes the turn. Every event the watch delivers is printed as one
// line, `KIND<TAB>summary`; the script exits 0 once it has seen its turn end.
//
// The wire format is newline-delimited JSON: one JSON-RPC 2.0 message per
// line. See spec/protocol.md for every method.

import net from "node:net";
import path from "node:path";
import readline from "node:readline";

const root = process.argv[2] ?? process.env.EXO_ROOT ?? ".exo";
const socketPath = path.join(root, "exo.sock");

// A JSON-RPC error response: {"code", "message", "data": {"code": ...}}.
// exo puts a stable name for the error in data.code ("not_found",
// "already_exists", ...); the numeric code is the JSON-RPC one.
class RpcError extends Error {
  constructor(method, error) {
    const name = error.data?.code ?? "";
    super(`${method} failed: ${error.message} (code ${error.code} ${name})`);
    this.error = error;
    this.code = name;
  }
}

// ---- the connection ------------------------------------------------------

const socket = net.createConnection(socketPath);
socket.on("error", (err) => {
  fail(`cannot talk to ${socketPath}: ${err.message}\n` +
    `(start the daemon first: exo --root ${root} daemon)`);
});
socket.on("close", () => fail("the daemon closed the connection"));

let nextId = 1;
const pending = new Map(); // request id -> {method, resolve, reject}

// Sends a request; the promise settles when the response with its id comes.
function request(method, params) {
  const id = nextId++;
  socket.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
  return new Promise((resolve, reject) => pending.set(id, { method, resolve, reject }));
}

// Every line from the daemon is a response (it has an "id") or a
// notification (it has a "method"); they can arrive in any order.
readline.createInterface({ input: socket }).on("line", (line) => {
  const message = JSON.parse(line);
  if (message.method) {
    onNotification(message);
  } else if (pending.has(message.id)) {
    const { method, resolve, reject } = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) reject(new RpcError(method, message.error));
    else resolve(message.result);
  }
});

// ---- what the watch delivers ----------------------------------------------

let where; // {agent, conversation}: set before the watch starts
let ourTurn = null; // the turn we begin; we stop when it ends
let cursor = null; // the last event seen, to watch again after a lag

// One readable line for an event (see spec/exoharness.md for every kind).
function summary(event) {
  switch (event.kind) {
    case "message":
      return `${event.role}: ` +
        event.content.map((part) => part.text ?? `[${part.type}]`).join(" ");
    case "conversation_created":
      return `${event.name} (${event.slug})`;
    case "session_started":
    case "session_ended":
      return `session ${event.session} ${event.reason ?? ""}`.trimEnd();
    case "turn_started":
      return `turn ${event.turn}`;
    case "turn_ended":
      return `turn ${event.turn} ${event.status}`;
    default:
      return `event ${event.id}`;
  }
}

function onNotification({ method, params }) {
  if (method === "events/appended") {
    // First the stored events after the watch's cursor, then new ones.
    for (const event of params.events) {
      console.log(`${event.kind}\t${summary(event)}`);
      cursor = event.id;
      if (event.kind === "turn_ended" && event.turn === ourTurn) {
        // Done: hang up, and Node exits once nothing is left to do.
        socket.removeAllListeners("close");
        socket.destroy();
      }
    }
  } else if (method === "events/lagged") {
    // We read too slowly and the daemon ended the watch: watch again from
    // the last event we saw.
    request("events/watch", cursor ? { ...where, after: cursor } : where).catch(fail);
  }
}

// ---- the tour ---------------------------------------------------------------

async function main() {
  // 1. Say hello; the daemon answers with its version and capabilities.
  const hello = await request("initialize", { client: { name: "watch.mjs" } });
  console.error(`connected to exo ${hello.server.version} (protocol ${hello.protocol_version})`);

  // 2. An agent: create it, or reuse it if an earlier run made it.
  let agent;
  try {
    agent = await request("agent/create", { name: "Watch Example" });
  } catch (err) {
    if (err.code !== "already_exists") throw err;
    agent = await request("agent/get", { agent: err.error.data.key });
  }

  // 3. A fresh conversation for this run (names must be unique per agent).
  const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
  const conversation = await request("conversation/create", {
    agent: agent.id,
    name: `Watch ${stamp} ${process.pid}`,
  });
  where = { agent: agent.id, conversation: conversation.id };

  // 4. Watch it. With no "after" cursor the daemon replays the whole
  //    history (here: conversation_created) and then streams new events.
  await request("events/watch", where);

  // 5. Record a turn, as an executor would: begin it with the user's input,
  //    append the assistant's reply, finish it.
  const turn = await request("turn/begin", { ...where, input: "What is 6 times 7?" });
  ourTurn = turn.turn;
  await request("turn/append", {
    turn: turn.turn,
    events: [{ kind: "message", role: "assistant", content: "42." }],
  });
  await request("turn/finish", { turn: turn.turn, status: "completed" });

  // 6. Nothing more to send: onNotification hangs up once our turn_ended
  //    arrives (it may come before or after turn/finish's response).
}

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

main().catch((err) => fail(err.message));
