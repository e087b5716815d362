// The timeline's webview: renders one conversation's history as the
// extension sends it (src/webview/messages.ts), grouped by turn, with the
// streamed text of a running turn, pending approvals, each turn's changed
// files, and a chat input. Runs in the browser; bundled by esbuild.
//
// Key design ideas:
// - The extension owns the history; this keeps a copy only to render it.
//   Appends render incrementally; a truncate or reset (rare: a rewind, a
//   reconnect) renders everything again from the copy and the side state
//   (deltas, approvals, changes), which is kept by turn.
// - Every piece of content goes in with `textContent`, never as HTML.
// - An approval card shows the whole call it asks about: a shell command
//   in full (up to 64 KiB, saying how much more there is), never only
//   its first line, since the user allows what runs, not a summary.
// - Stable hooks for tests and styles: `#exo-timeline`, `.exo-turn`,
//   `.exo-event[data-kind]`, `data-event`, `button[data-action]`.

import type { ApprovalRequest, Event, PathChange } from "../protocol/types";
import { commandShown } from "../text";
import type { FromWebview, ToWebview } from "./messages";

interface VsCodeApi {
  postMessage(message: FromWebview): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();

interface Changes {
  from: string;
  to: string;
  changes: PathChange[];
}

interface Stream {
  text: string;
  reasoning: string;
  tools: string[];
}

const state = {
  events: [] as Event[],
  streams: new Map<string, Stream>(),
  approvals: new Map<string, ApprovalRequest>(),
  changes: new Map<string, Changes>(),
  running: null as string | null,
  sending: false,
  connected: false,
};

const header = element("header", "exo-header");
const title = element("h1", "exo-title");
const status = element("span", "exo-status");
const redo = button("Redo", "redo", "Rewind forward to a history a rewind left behind");
header.append(title, status, redo);
const timeline = element("main", "exo-list");
timeline.id = "exo-timeline";
const footer = element("footer", "exo-chat");
const input = document.createElement("textarea");
input.id = "exo-input";
input.placeholder = "Ask the agent… (Enter sends, Shift+Enter for a new line)";
input.rows = 3;
const send = button("Send", "send", "Run a turn with this message");
send.id = "exo-send";
const cancel = button("Cancel", "cancel", "Cancel the running turn");
cancel.id = "exo-cancel";
footer.append(input, send, cancel);
document.body.append(header, timeline, footer);

redo.addEventListener("click", () => {
  vscode.postMessage({ type: "redo" });
});
send.addEventListener("click", submit);
cancel.addEventListener("click", () => {
  vscode.postMessage({ type: "cancel" });
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    submit();
  }
});
timeline.addEventListener("click", (event) => {
  const target = event.target;
  if (!(target instanceof HTMLElement)) return;
  const action = target.closest<HTMLElement>("[data-action]");
  if (!action) return;
  const data = action.dataset;
  switch (data["action"]) {
    case "rewind":
      if (data["event"]) vscode.postMessage({ type: "rewind", event: data["event"] });
      break;
    case "fork":
      if (data["event"]) vscode.postMessage({ type: "fork", event: data["event"] });
      break;
    case "diff":
    case "disk":
      if (data["turn"] && data["from"] && data["to"] && data["path"]) {
        vscode.postMessage({
          type: "diff",
          turn: data["turn"],
          from: data["from"],
          to: data["to"],
          path: data["path"],
          against: data["action"] === "disk" ? "disk" : "snapshot",
        });
      }
      break;
    case "approve":
      if (data["turn"] && data["call"] && data["decision"]) {
        vscode.postMessage({
          type: "approve",
          turn: data["turn"],
          callId: data["call"],
          decision: data["decision"] as "allow_once" | "allow_turn" | "deny",
        });
      }
      break;
    default:
      break;
  }
});

window.addEventListener("message", (message: MessageEvent<ToWebview>) => {
  receive(message.data);
});
vscode.postMessage({ type: "ready" });
renderState();

function submit(): void {
  const text = input.value.trim();
  if (text === "" || state.sending || state.running !== null) return;
  input.value = "";
  vscode.postMessage({ type: "send", text });
}

function receive(message: ToWebview): void {
  switch (message.type) {
    case "conversation":
      title.textContent = message.title;
      title.title = message.workspace ?? "no workspace";
      state.events = [];
      state.streams.clear();
      state.approvals.clear();
      state.changes.clear();
      renderAll();
      break;
    case "reset":
      state.events = [];
      renderAll();
      break;
    case "append": {
      const stick = nearBottom();
      for (const event of message.events) {
        state.events.push(event);
        settle(event);
        renderEvent(event);
      }
      if (stick) scrollToEnd();
      break;
    }
    case "truncate": {
      const at = state.events.findIndex((event) => event.id === message.after);
      if (at !== -1) state.events.splice(at + 1);
      renderAll();
      break;
    }
    case "delta": {
      const stick = nearBottom();
      const stream = state.streams.get(message.turn) ?? { text: "", reasoning: "", tools: [] };
      stream.text += message.text ?? "";
      stream.reasoning += message.reasoning ?? "";
      if (message.tool !== undefined) stream.tools.push(message.tool);
      state.streams.set(message.turn, stream);
      renderStream(message.turn);
      if (stick) scrollToEnd();
      break;
    }
    case "approval":
      state.approvals.set(approvalKey(message.request.turn, message.request.call_id), message.request);
      renderApprovals(message.request.turn);
      scrollToEnd();
      break;
    case "changes":
      state.changes.set(message.turn, { from: message.from, to: message.to, changes: message.changes });
      renderChanges(message.turn);
      break;
    case "state":
      state.running = message.running;
      state.sending = message.sending;
      state.connected = message.connected;
      redo.disabled = !message.redo;
      status.textContent = !message.connected
        ? `disconnected${message.error !== null ? `: ${message.error}` : ""}`
        : message.running !== null
          ? "turn running…"
          : "";
      renderState();
      break;
  }
}

/** Drops the side state an event settles: a finished answer, an answered approval. */
function settle(event: Event): void {
  const turn = event.turn;
  if (!turn) return;
  if (event.kind === "message" && (event as { role?: string }).role === "assistant") {
    state.streams.delete(turn);
    renderStream(turn);
  }
  if (event.kind === "custom" && (event as { type?: string }).type === "exo.approval") {
    const payload = (event as { payload?: { call_id?: string } }).payload;
    if (payload?.call_id !== undefined) {
      state.approvals.delete(approvalKey(turn, payload.call_id));
      renderApprovals(turn);
    }
  }
  if (event.kind === "tool_result") {
    state.approvals.delete(approvalKey(turn, (event as { call_id: string }).call_id));
    renderApprovals(turn);
  }
  if (event.kind === "turn_ended") {
    state.streams.delete(turn);
    for (const key of [...state.approvals.keys()]) if (key.startsWith(`${turn}/`)) state.approvals.delete(key);
    renderStream(turn);
    renderApprovals(turn);
  }
}

function renderAll(): void {
  timeline.replaceChildren();
  for (const event of state.events) renderEvent(event);
  for (const turn of state.changes.keys()) renderChanges(turn);
  for (const turn of state.streams.keys()) renderStream(turn);
  for (const request of state.approvals.values()) renderApprovals(request.turn);
  scrollToEnd();
}

function renderState(): void {
  const busy = state.running !== null || state.sending;
  send.disabled = busy || !state.connected;
  input.disabled = !state.connected;
  cancel.hidden = state.running === null;
  document.body.classList.toggle("exo-running", state.running !== null);
}

// ---------------------------------------------------------------------------
// Events

function renderEvent(event: Event): void {
  const row = element("div", "exo-event");
  row.dataset["kind"] = event.kind;
  row.dataset["event"] = event.id;
  row.title = `${event.kind} ${event.id}\n${event.created_at}`;
  fill(row, event);
  row.append(actions(event.id));
  if (event.turn) {
    const section = turnSection(event.turn, event);
    if (event.kind === "tool_result") {
      const call = section.querySelector<HTMLElement>(`.exo-event[data-call="${cssEscape((event as { call_id: string }).call_id)}"]`);
      if (call) {
        call.after(row);
        row.classList.add("exo-result");
        updateTurnHead(section, event);
        return;
      }
    }
    section.querySelector(".exo-turn-body")?.append(row);
    updateTurnHead(section, event);
  } else {
    timeline.append(row);
  }
}

function fill(row: HTMLElement, event: Event): void {
  const e = event as Record<string, unknown> & Event;
  switch (event.kind) {
    case "conversation_created":
      row.append(label("created"), text(`${str(e["name"])}${e["workspace"] ? ` · ${str(e["workspace"])}` : ""}`));
      break;
    case "session_started":
    case "session_ended":
      row.classList.add("exo-minor");
      row.append(label(event.kind === "session_started" ? "session started" : `session ended (${str(e["reason"])})`));
      break;
    case "turn_started":
      row.classList.add("exo-minor");
      row.append(label("turn started"), text(time(event.created_at)));
      break;
    case "turn_ended":
      row.classList.add("exo-minor", `exo-status-${str(e["status"])}`);
      row.append(label(`turn ${str(e["status"])}`), text(time(event.created_at)));
      break;
    case "message": {
      const role = str(e["role"]);
      row.classList.add(`exo-role-${role}`);
      row.append(label(role));
      const parts = Array.isArray(e["content"]) ? (e["content"] as Record<string, unknown>[]) : [];
      for (const part of parts) {
        if (part["type"] === "text") row.append(block(str(part["text"])));
        else if (part["type"] === "reasoning") row.append(details("reasoning", str(part["text"])));
        else row.append(text(`[${str(part["type"])}]`));
      }
      break;
    }
    case "tool_call": {
      row.dataset["call"] = str(e["call_id"]);
      row.append(label(`⚙ ${str(e["name"])}`), text(summary(e["arguments"])));
      row.append(details("arguments", json(e["arguments"])));
      break;
    }
    case "tool_result":
      if (e["is_error"] === true) row.classList.add("exo-error");
      row.append(label(e["is_error"] === true ? "✘ result" : "↳ result"), text(summary(e["output"])));
      row.append(details("output", typeof e["output"] === "string" ? e["output"] : json(e["output"])));
      break;
    case "workspace_snapshot": {
      row.classList.add("exo-snapshot");
      const counts = `+${str(e["added"])} ~${str(e["modified"])} −${str(e["deleted"])}`;
      row.append(label(`snapshot (${str(e["reason"])})`), text(`${counts} · ${str(e["commit"]).slice(0, 10)}`));
      break;
    }
    case "rewound":
      row.classList.add("exo-marker");
      row.append(
        label("⟲ rewound"),
        text(`to ${short(str(e["to_event"]))} from ${short(str(e["from_event"]))}${e["snapshot"] ? ` · files restored to ${str(e["snapshot"]).slice(0, 10)}` : ""}`),
      );
      break;
    case "forked":
      row.classList.add("exo-marker");
      row.append(label("⑂ forked"), text(`from ${short(str(e["from_conversation"]))} at ${short(str(e["from_event"]))}`));
      break;
    case "error":
      row.classList.add("exo-error");
      row.append(label("error"), text(`${str(e["message"])}${e["code"] ? ` (${str(e["code"])})` : ""}`));
      break;
    case "artifact_written":
      row.append(label("artifact"), text(`${str(e["path"])} v${str(e["version"])} (${str(e["size"])} bytes)`));
      break;
    case "custom": {
      const type = str(e["type"]);
      const payload = (e["payload"] ?? {}) as Record<string, unknown>;
      if (type === "exo.approval") {
        const approved = payload["approved"] === true;
        row.classList.add(approved ? "exo-approved" : "exo-denied");
        row.append(
          label(approved ? "✔ approved" : "✘ denied"),
          text(`${str(payload["tool"])} · ${str(payload["decision"] ?? "")} by ${str(payload["by"])}`),
        );
      } else {
        row.append(label(type), details("payload", json(payload)));
      }
      break;
    }
    default:
      row.append(label(event.kind), details("event", json(event)));
      break;
  }
}

function actions(eventId: string): HTMLElement {
  const box = element("span", "exo-actions");
  box.append(actionButton("⟲", "rewind", eventId, "Rewind here: the history (and the files) as they were at this event"));
  box.append(actionButton("⑂", "fork", eventId, "Fork here into a new folder"));
  return box;
}

// ---------------------------------------------------------------------------
// Turns

function turnSection(turn: string, first: Event): HTMLElement {
  const existing = timeline.querySelector<HTMLElement>(`.exo-turn[data-turn="${cssEscape(turn)}"]`);
  if (existing) return existing;
  const section = element("section", "exo-turn");
  section.dataset["turn"] = turn;
  const head = element("div", "exo-turn-head");
  const name = element("span", "exo-turn-title");
  name.textContent = "Turn";
  const badge = element("span", "exo-turn-status");
  const rewind = actionButton("Rewind here", "rewind", first.id, "Rewind to the end of this turn: later turns are undone, files included");
  rewind.classList.add("exo-turn-rewind");
  const fork = actionButton("Fork here", "fork", first.id, "Fork at the end of this turn into a new folder");
  fork.classList.add("exo-turn-fork");
  head.append(name, badge, rewind, fork);
  const body = element("div", "exo-turn-body");
  const changes = element("div", "exo-changes");
  const approvals = element("div", "exo-approvals");
  const stream = element("div", "exo-stream");
  section.append(head, body, approvals, stream, changes);
  timeline.append(section);
  return section;
}

function updateTurnHead(section: HTMLElement, event: Event): void {
  for (const button of Array.from(section.querySelectorAll<HTMLElement>(".exo-turn-head [data-action]"))) {
    button.dataset["event"] = event.id;
  }
  const e = event as Record<string, unknown> & Event;
  if (event.kind === "message" && e["role"] === "user") {
    const name = section.querySelector(".exo-turn-title");
    const parts = Array.isArray(e["content"]) ? (e["content"] as Record<string, unknown>[]) : [];
    const first = parts.find((part) => part["type"] === "text");
    if (name && first && name.textContent === "Turn") name.textContent = `Turn: ${firstLine(str(first["text"]))}`;
  }
  if (event.kind === "turn_ended") {
    const badge = section.querySelector(".exo-turn-status");
    if (badge) {
      badge.textContent = str(e["status"]);
      badge.className = `exo-turn-status exo-status-${str(e["status"])}`;
    }
  }
}

function renderStream(turn: string): void {
  const box = timeline.querySelector<HTMLElement>(`.exo-turn[data-turn="${cssEscape(turn)}"] .exo-stream`);
  if (!box) return;
  const stream = state.streams.get(turn);
  box.replaceChildren();
  if (!stream) return;
  if (stream.reasoning !== "") box.append(details("reasoning", stream.reasoning));
  if (stream.text !== "") box.append(block(stream.text));
  for (const tool of stream.tools) box.append(text(`⚙ ${tool}…`));
}

function renderApprovals(turn: string): void {
  const box = timeline.querySelector<HTMLElement>(`.exo-turn[data-turn="${cssEscape(turn)}"] .exo-approvals`);
  if (!box) return;
  box.replaceChildren();
  for (const request of state.approvals.values()) {
    if (request.turn !== turn) continue;
    const row = element("div", "exo-approval");
    row.append(label(`approve ${request.tool}?`));
    const args = request.arguments as Record<string, unknown> | null;
    const command = request.tool === "shell" && args !== null && typeof args === "object" ? args["command"] : undefined;
    if (typeof command === "string") {
      const shown = commandShown(command);
      const pre = element("pre", "exo-command");
      pre.textContent = shown.text;
      row.append(pre);
      for (const note of shown.notes) {
        const line = element("div", "exo-command-note");
        line.textContent = note;
        row.append(line);
      }
    } else {
      row.append(text(summary(request.arguments)));
    }
    for (const [caption, decision] of [["Allow", "allow_once"], ["Allow for this turn", "allow_turn"], ["Deny", "deny"]] as const) {
      const b = button(caption, "approve", "");
      b.dataset["turn"] = request.turn;
      b.dataset["call"] = request.call_id;
      b.dataset["decision"] = decision;
      row.append(b);
    }
    box.append(row);
  }
}

function renderChanges(turn: string): void {
  const box = timeline.querySelector<HTMLElement>(`.exo-turn[data-turn="${cssEscape(turn)}"] .exo-changes`);
  const changes = state.changes.get(turn);
  if (!box || !changes) return;
  box.replaceChildren();
  if (changes.changes.length === 0) return;
  box.append(label("changed files"));
  const list = element("ul", "exo-change-list");
  for (const change of changes.changes) {
    const item = element("li", "exo-change");
    const link = button(change.path, "diff", "Open the turn's change in the diff editor");
    link.classList.add("exo-diff-link");
    const disk = button("vs disk", "disk", "Compare the turn's result with the file on disk now");
    disk.classList.add("exo-disk-link");
    for (const b of [link, disk]) {
      b.dataset["turn"] = turn;
      b.dataset["from"] = changes.from;
      b.dataset["to"] = changes.to;
      b.dataset["path"] = change.path;
    }
    const kind = element("span", "exo-change-kind");
    kind.textContent = change.change;
    item.append(link, kind, disk);
    list.append(item);
  }
  box.append(list);
}

// ---------------------------------------------------------------------------
// Helpers

function element(tag: string, className: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

function button(caption: string, action: string, tooltip: string): HTMLButtonElement {
  const node = document.createElement("button");
  node.textContent = caption;
  node.dataset["action"] = action;
  if (tooltip !== "") node.title = tooltip;
  return node;
}

function actionButton(caption: string, action: string, eventId: string, tooltip: string): HTMLButtonElement {
  const node = button(caption, action, tooltip);
  node.dataset["event"] = eventId;
  return node;
}

function label(caption: string): HTMLElement {
  const node = element("span", "exo-label");
  node.textContent = caption;
  return node;
}

function text(content: string): HTMLElement {
  const node = element("span", "exo-text");
  node.textContent = content;
  return node;
}

function block(content: string): HTMLElement {
  const node = element("div", "exo-block");
  node.textContent = content;
  return node;
}

function details(caption: string, content: string): HTMLElement {
  const node = document.createElement("details");
  const head = document.createElement("summary");
  head.textContent = caption;
  const body = document.createElement("pre");
  body.textContent = content;
  node.append(head, body);
  return node;
}

function str(value: unknown): string {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** A call's or result's gist: a path or command when it has one, else its JSON cut short. */
function summary(value: unknown): string {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    for (const key of ["path", "command", "error", "stdout"]) {
      if (typeof record[key] === "string") return firstLine(record[key]);
    }
  }
  const whole = typeof value === "string" ? value : JSON.stringify(value);
  return firstLine(whole);
}

function firstLine(value: string): string {
  const line = value.split("\n")[0] ?? "";
  return line.length > 100 ? `${line.slice(0, 99)}…` : line;
}

function short(id: string): string {
  return id.length > 8 ? `…${id.slice(-8)}` : id;
}

function time(iso: string): string {
  return iso.slice(11, 19);
}

function approvalKey(turn: string, callId: string): string {
  return `${turn}/${callId}`;
}

function cssEscape(value: string): string {
  return CSS.escape(value);
}

function nearBottom(): boolean {
  return timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 80;
}

function scrollToEnd(): void {
  timeline.scrollTop = timeline.scrollHeight;
}
