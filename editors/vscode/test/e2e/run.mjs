#!/usr/bin/env node
// The extension in a real editor: packages the .vsix, installs it into a
// fresh code-server (VS Code's workbench, served locally; temporary user
// data and extensions), drives Debian's chromium with playwright-core, and
// checks what a user sees and does, on a conversation recorded with the
// exo CLI:
//
//   1. the timeline shows the recorded turns;
//   2. an event appended by another process appears live (the latency
//      from the append returning to the event in the DOM is printed, not
//      asserted); after `exo daemon stop` the extension starts another
//      daemon and the timeline catches up (the time is printed too);
//   3. a turn's change opens in the diff editor, both sides shown;
//   4. a message sent from the chat input runs a turn whose write waits
//      for approval; a connection setting changed meanwhile restarts the
//      connection only once the turn has ended (said once); Allow on the
//      notification writes the file;
//   5. Rewind here removes that file and the timeline shows the rewind;
//      Redo brings both back; with an unsaved editor of that file, opened
//      through a symlink to the folder, Rewind here is refused, naming it;
//   6. with an edit on disk that no snapshot holds, Rewind here is
//      refused, naming the file, and nothing changes;
//   7. Fork here writes a new folder and opens it in a new window, which
//      shows the fork;
//   8. a turn whose shell command has three lines: the approval card shows
//      all of it, the notification says it is not shown whole and offers
//      Show Details… (all three lines) rather than Allow; with another
//      conversation selected mid-turn, that one's Send is free, and the
//      turn's next question is still asked; back on the turn's
//      conversation it shows running, and Allow finishes it.
//
// Needs what scripts/setup-code-server installs (EXO_CODE_SERVER, EXO_VSCE;
// found by running it when not set), /usr/bin/chromium
// (scripts/setup-chromium; EXO_CHROMIUM overrides), and the exo binary
// (EXO_BIN, else target/debug/exo). Screenshots and logs go to
// target/e2e/vscode/ (EXO_E2E_OUT overrides): one of the timeline with a
// turn's diff open on success, one per failure. Everything started here
// (code-server's process group, chromium, the exo daemon) is stopped at the
// end, whatever happens.
//
//   pnpm --dir editors/vscode test:e2e

import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = join(here, "../..");
const repo = join(packageDir, "../..");
const started = Date.now();
const out = process.env.EXO_E2E_OUT ?? join(repo, "target/e2e/vscode");
mkdirSync(out, { recursive: true });

const exo = process.env.EXO_BIN ?? join(repo, "target/debug/exo");
const chromiumPath = process.env.EXO_CHROMIUM ?? "/usr/bin/chromium";
const tools = toolsEnv();

/** Seconds since the start, for the progress lines. */
function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}

function step(text) {
  console.log(`[${elapsed()}] ${text}`);
}

/** EXO_CODE_SERVER and EXO_VSCE: from the environment, else from scripts/setup-code-server. */
function toolsEnv() {
  if (process.env.EXO_CODE_SERVER && process.env.EXO_VSCE) {
    return { codeServer: process.env.EXO_CODE_SERVER, vsce: process.env.EXO_VSCE };
  }
  const exports = execFileSync(join(repo, "scripts/setup-code-server"), ["--print-env"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const value = (name) => {
    const line = exports.split("\n").find((l) => l.startsWith(`export ${name}=`));
    if (!line) throw new Error(`scripts/setup-code-server did not print ${name}`);
    return line.slice(`export ${name}=`.length).replace(/^'(.*)'$/, "$1");
  };
  return { codeServer: value("EXO_CODE_SERVER"), vsce: value("EXO_VSCE") };
}

/** Polls `check` until it returns something truthy; fails after `timeoutMs`. */
async function poll(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${String(timeoutMs / 1000)} s waiting for ${what}${lastError ? ` (last error: ${lastError.message})` : ""}`);
    }
    await new Promise((done) => setTimeout(done, 50));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------
// The scratch project, recorded with the exo CLI

const scratch = realpathSync(mkdtempSync(join(tmpdir(), "exo-vscode-e2e-")));
const project = join(scratch, "project");
mkdirSync(project);
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("EXO_") && !name.startsWith("VSCODE_"))),
  HOME: join(scratch, "home"),
  XDG_CONFIG_HOME: join(scratch, "config"),
  XDG_CACHE_HOME: join(scratch, "cache"),
  XDG_DATA_HOME: join(scratch, "data"),
  TMPDIR: join(scratch, "tmp"),
  EXO_ENCRYPTION_KEY: "5a".repeat(32),
  EXO_CEILING_DIRECTORIES: dirname(scratch),
  NO_COLOR: "1",
};
for (const dir of [env.HOME, env.XDG_CONFIG_HOME, env.XDG_CACHE_HOME, env.XDG_DATA_HOME, env.TMPDIR]) {
  mkdirSync(dir, { recursive: true });
}

function run(args, input) {
  const result = spawnSync(exo, args, { cwd: project, env, input: input ?? "", encoding: "utf8", timeout: 120_000 });
  if (result.status !== 0) {
    throw new Error(`exo ${args.join(" ")} exited ${String(result.status)}: ${result.stderr}${result.error ? result.error.message : ""}`);
  }
  return result.stdout;
}

/** The fourth turn's command: its first line alone looks harmless. */
const SHELL_COMMAND = "echo checking\nrm -f notes.md approved.txt\necho done";

function record() {
  const script = join(scratch, "script.json");
  writeFileSync(
    script,
    JSON.stringify({
      chunk_size: 6,
      responses: [
        { text: "Writing notes.md.", tool_calls: [{ name: "write_file", arguments: { path: "notes.md", content: "first line\n" } }] },
        { text: "Wrote notes.md." },
        {
          text: "Adding a line.",
          tool_calls: [{ name: "write_file", arguments: { path: "notes.md", content: "first line\nsecond line\n" } }],
        },
        { text: "Added the second line." },
        { text: "Writing approved.txt.", tool_calls: [{ name: "write_file", arguments: { path: "approved.txt", content: "approved\n" } }] },
        { text: "Wrote approved.txt." },
        { text: "Running the checks.", tool_calls: [{ name: "shell", arguments: { command: SHELL_COMMAND } }] },
        { text: "Then a note.", tool_calls: [{ name: "write_file", arguments: { path: "after-switch.txt", content: "written while away\n" } }] },
        { text: "All done." },
      ],
    }),
  );
  run(["model", "register", "scripted", "--provider", "scripted", "--base-url", script]);
  run(["agent", "create", "Coder", "--slug", "coder", "--model", "scripted", "--approval", "auto"]);
  run(["conversation", "create", "coder", "Main", "--slug", "main", "--workspace", project]);
  run(["conversation", "send", "coder", "main", "Write notes.md"]);
  run(["conversation", "send", "coder", "main", "Add a second line"]);
  // From here on, writes wait for someone to allow them: the editor.
  run(["agent", "set", "coder", "--approval", "ask"]);
}

// ---------------------------------------------------------------------------
// code-server and the browser

let codeServer;
let browser;
let page;
const userData = join(scratch, "user-data");
const userSettings = {
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "update.mode": "none",
  "chat.disableAIFeatures": true,
  "git.enabled": false,
  "window.restoreWindows": "none",
  "files.autoSave": "off",
  // Both sides of a diff, however narrow the editor group.
  "diffEditor.renderSideBySide": true,
  "diffEditor.useInlineViewWhenSpaceIsLimited": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  // Text put into settings.json goes in as it is (see setUserSetting).
  "editor.autoClosingBrackets": "never",
  "editor.autoClosingQuotes": "never",
  "editor.autoIndent": "none",
  "editor.autoSurround": "never",
  // settings.json in an editor of the group, not a modal overlay (which a
  // click outside closes, and which View: Close Editor does not).
  "workbench.editor.useModal": "off",
};

/**
 * Sets a user setting as a user does, in the settings.json editor: the
 * workbench does not notice the file written behind its back.
 */
async function setUserSetting(name, value) {
  userSettings[name] = value;
  const file = join(userData, "User", "settings.json");
  const wanted = `"${name}": ${JSON.stringify(value)}`;
  const editor = page.locator('.editor-instance .monaco-editor[data-uri$="settings.json"]');
  // Keys typed while the editor is still opening can go astray: check each
  // stage, and go again when one did not take.
  await poll(async () => {
    if (!(await editor.isVisible())) await command("Preferences: Open User Settings (JSON)");
    await editor.waitFor({ timeout: 10_000 });
    await editor.locator(".view-lines").click();
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    await page.keyboard.insertText(JSON.stringify(userSettings, null, 2));
    const shown = (await editor.locator(".view-lines").innerText()).replace(/\u00a0/g, " ");
    if (!shown.includes(wanted)) return false;
    await page.keyboard.press("Control+S");
    await poll(() => readFileSync(file, "utf8").includes(wanted), 5_000, `settings.json to hold ${name}`);
    return true;
  }, 60_000, `${name} set in settings.json`);
  await command("View: Close Editor");
  // Saved and checked: whatever a stray key left unsaved is not wanted.
  const ask = page.locator(".monaco-dialog-box").filter({ hasText: "save the changes" });
  await poll(async () => {
    if (await ask.isVisible()) await ask.getByRole("button", { name: "Don't Save" }).click();
    return !(await editor.isVisible());
  }, 30_000, "the settings editor to close");
}

/** How many notifications (shown, or in the notification center) say `text`. */
async function notificationCount(text) {
  await command("Notifications: Show Notifications");
  const center = page.locator(".notifications-center");
  await center.waitFor({ timeout: 30_000 });
  const count = await center.locator(".notification-list-item").filter({ hasText: text }).count();
  await command("Notifications: Hide Notifications");
  return count;
}

/** Clicks `button` of the notification saying `text`: its toast, or in the center once the toast has hidden itself. */
async function answerNotification(text, button) {
  const toast = page.locator(".notification-toast").filter({ hasText: text });
  try {
    await toast.getByRole("button", { name: button, exact: true }).click({ timeout: 3_000 });
    return;
  } catch {
    // Hidden after its timeout: it waits in the notification center.
  }
  await command("Notifications: Show Notifications");
  const item = page.locator(".notifications-center .notification-list-item").filter({ hasText: text });
  await item.getByRole("button", { name: button, exact: true }).click({ timeout: 30_000 });
  await command("Notifications: Hide Notifications").catch(() => undefined);
}

/** Everything the extension logged (its output channel's files under code-server's logs). */
function extensionLog() {
  const found = [];
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".log") && /exo/i.test(path) && statSync(path).size < 16 * 1024 * 1024) {
        found.push(readFileSync(path, "utf8"));
      }
    }
  };
  walk(join(userData, "logs"));
  return found.join("\n");
}

async function startEditor(vsix) {
  const extensions = join(scratch, "extensions");
  const config = join(scratch, "code-server.yaml");
  writeFileSync(config, "");
  // exo.path is machine-scoped: code-server's extension host is remote, and
  // reads such settings from the machine's settings, not the user's.
  mkdirSync(join(userData, "Machine"), { recursive: true });
  writeFileSync(join(userData, "Machine", "settings.json"), JSON.stringify({ "exo.path": exo }));
  mkdirSync(join(userData, "User"), { recursive: true });
  writeFileSync(join(userData, "User", "settings.json"), JSON.stringify(userSettings, null, 2));
  const csArgs = ["--config", config, "--user-data-dir", userData, "--extensions-dir", extensions];
  const install = spawnSync(tools.codeServer, [...csArgs, "--install-extension", vsix], { env, encoding: "utf8", timeout: 120_000 });
  if (install.status !== 0) throw new Error(`installing the .vsix failed: ${install.stdout}${install.stderr}`);
  step(`installed ${vsix}`);

  const port = await freePort();
  const log = join(out, "code-server.log");
  writeFileSync(log, "");
  const fd = openSync(log, "a");
  // Its own process group (setsid), so that stopping it stops its children.
  codeServer = spawn(
    tools.codeServer,
    [
      ...csArgs,
      "--auth", "none",
      "--bind-addr", `127.0.0.1:${String(port)}`,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      project,
    ],
    { env, detached: true, stdio: ["ignore", fd, fd] },
  );
  const url = `http://127.0.0.1:${String(port)}`;
  await poll(async () => (await fetch(`${url}/healthz`)).ok, 60_000, "code-server to answer");
  step(`code-server on ${url} (log: ${log})`);

  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  page = await context.newPage();
  const consoleLog = [];
  page.on("console", (message) => consoleLog.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (err) => consoleLog.push(`pageerror: ${err.message}`));
  process.on("exit", () => {
    try {
      writeFileSync(join(out, "browser-console.log"), consoleLog.join("\n"));
    } catch {
      // Nothing to do at exit.
    }
  });
  await page.goto(`${url}/?folder=${encodeURIComponent(project)}`);
  await page.locator(".monaco-workbench").waitFor({ timeout: 120_000 });
  step("workbench loaded");
}

/** The timeline webview's inner frame. */
async function timelineFrame() {
  return poll(async () => {
    for (const frame of page.frames()) {
      if (frame.isDetached()) continue;
      try {
        if (await frame.$("#exo-timeline")) return frame;
      } catch {
        // A frame navigating away.
      }
    }
    return undefined;
  }, 60_000, "the timeline webview");
}

async function command(name) {
  await page.locator(".monaco-workbench").click({ position: { x: 800, y: 5 } }).catch(() => undefined);
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ timeout: 30_000 });
  await input.fill(`>${name}`);
  const item = page.locator(".quick-input-list .monaco-list-row").filter({ hasText: name }).first();
  await item.waitFor({ timeout: 30_000 });
  await input.press("Enter");
}

/** The modal dialog showing now, with its text. */
async function dialog(timeoutMs = 60_000) {
  const box = page.locator(".monaco-dialog-box");
  await box.waitFor({ timeout: timeoutMs });
  return { box, text: await box.innerText() };
}

/** Selects a conversation with exo: Select Conversation…, by its `agent/slug`. */
async function pickConversation(which) {
  await command("exo: Select Conversation…");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ timeout: 30_000 });
  await input.fill(which);
  await page.locator(".quick-input-list .monaco-list-row").filter({ hasText: which }).first().waitFor({ timeout: 30_000 });
  await input.press("Enter");
}

async function screenshot(name) {
  const path = join(out, name);
  await page.screenshot({ path });
  return path;
}

function texts(frame, selector) {
  return frame.$$eval(selector, (nodes) => nodes.map((node) => node.textContent ?? ""));
}

// ---------------------------------------------------------------------------
// The checks

async function checks() {
  step("packaging the .vsix");
  const vsix = execFileSync(process.execPath, [join(packageDir, "scripts/package.mjs")], {
    encoding: "utf8",
    env: { ...process.env, EXO_VSCE: tools.vsce },
    stdio: ["ignore", "pipe", "inherit"],
  }).trim().split("\n").pop();
  step("recording a conversation with the exo CLI");
  record();
  await startEditor(vsix);

  // The extension activates, connects (starting the daemon) and selects
  // the conversation bound to the open folder.
  await page.locator(".statusbar-item").filter({ hasText: "exo: coder/main" }).first().waitFor({ timeout: 120_000 });
  step("the extension is connected; coder/main selected");

  // 1. The timeline shows the recorded turns.
  await command("exo: Show Timeline");
  let frame = await timelineFrame();
  await poll(async () => (await frame.$$(".exo-turn")).length === 2, 60_000, "two turns in the timeline");
  const messages = await texts(frame, '.exo-event[data-kind="message"]');
  for (const expected of ["Write notes.md", "Wrote notes.md.", "Add a second line", "Added the second line."]) {
    if (!messages.some((text) => text.includes(expected))) throw new Error(`the timeline lacks "${expected}": ${JSON.stringify(messages)}`);
  }
  for (const kind of ["tool_call", "tool_result", "workspace_snapshot", "turn_ended"]) {
    if ((await frame.$$(`.exo-event[data-kind="${kind}"]`)).length === 0) throw new Error(`the timeline shows no ${kind}`);
  }
  step("1. the timeline shows the recorded conversation");

  // 2. Live: an event appended by another process.
  const nonce = `live ping ${String(Date.now())}`;
  run(["conversation", "append", "coder", "main"], JSON.stringify({ kind: "message", role: "user", content: nonce }));
  const appendedAt = Date.now();
  await frame.waitForFunction(
    (text) => [...document.querySelectorAll('.exo-event[data-kind="message"]')].some((node) => node.textContent?.includes(text)),
    nonce,
    { polling: 5, timeout: 60_000 },
  );
  const latency = Date.now() - appendedAt;
  step(`2. the appended event appeared in the timeline ${String(latency)} ms after \`exo conversation append\` returned`);

  // The daemon stops: the extension waits (a daemon stopped on purpose stays
  // stopped) until the user asks, here by clicking its status bar item; then
  // the timeline goes on from where it was (what was appended meanwhile
  // comes in the replay).
  run(["daemon", "stop"]);
  const disconnected = page.locator(".statusbar-item").filter({ hasText: "exo: disconnected" }).first();
  await disconnected.waitFor({ timeout: 60_000 });
  const afterRestart = `after the restart ${String(Date.now())}`;
  run(["conversation", "append", "coder", "main"], JSON.stringify({ kind: "message", role: "user", content: afterRestart }));
  // Long enough for several of the extension's reconnect attempts.
  await new Promise((done) => setTimeout(done, 3_000));
  const status = spawnSync(exo, ["daemon", "status"], { cwd: project, env, encoding: "utf8", timeout: 60_000 });
  if (status.status === 0) throw new Error(`a daemon was started behind the user's back: ${status.stdout}`);
  const askedAt = Date.now();
  await disconnected.click();
  await page.locator(".statusbar-item").filter({ hasText: "exo: coder/main" }).first().waitFor({ timeout: 60_000 });
  await frame.waitForFunction(
    (text) => [...document.querySelectorAll('.exo-event[data-kind="message"]')].some((node) => node.textContent?.includes(text)),
    afterRestart,
    { timeout: 60_000 },
  );
  const reconnect = Date.now() - askedAt;
  const liveTexts = await texts(frame, '.exo-event[data-kind="message"]');
  if (liveTexts.filter((text) => text.includes(nonce)).length !== 1) throw new Error("the event before the restart is shown twice");
  step(`   the daemon stopped and stayed stopped; a click on the status bar started another and the timeline caught up in ${String(reconnect)} ms`);

  // 3. A turn's change in the diff editor.
  const secondTurn = frame.locator(".exo-turn").filter({ hasText: "Add a second line" });
  await secondTurn.locator(".exo-diff-link", { hasText: "notes.md" }).click({ timeout: 60_000 });
  const diff = page.locator(".monaco-diff-editor");
  await diff.waitFor({ timeout: 60_000 });
  await poll(async () => {
    // The editor renders spaces as no-break spaces.
    const original = (await diff.locator(".editor.original .view-lines").innerText()).replace(/\u00a0/g, " ");
    const modified = (await diff.locator(".editor.modified .view-lines").innerText()).replace(/\u00a0/g, " ");
    return original.includes("first line") && !original.includes("second line") && modified.includes("second line");
  }, 60_000, "both sides of the diff");
  step("3. the turn's change is open in the diff editor, both sides shown");
  const shot = await screenshot("timeline-and-turn-diff.png");
  step(`   screenshot: ${shot}`);

  // 4. A chat message whose write waits for approval. A connection setting
  // changes while it waits: restarting now would drop the connection, and
  // the daemon would deny the write for want of anyone to ask. Then Allow.
  frame = await timelineFrame();
  await frame.locator("#exo-input").fill("Write approved.txt");
  await frame.locator("#exo-send").click();
  const toast = page.locator(".notification-toast").filter({ hasText: "asks to write approved.txt" });
  await toast.waitFor({ timeout: 60_000 });
  if (existsSync(join(project, "approved.txt"))) throw new Error("approved.txt was written before it was allowed");
  const restartNote = "the connection restarts once the running turn ends";
  await setUserSetting("exo.daemon.start", "socket");
  await page.locator(".notification-toast").filter({ hasText: restartNote }).waitFor({ timeout: 60_000 });
  // A second change mid-turn is not said again. (`never`: the daemon runs on.)
  await setUserSetting("exo.daemon.start", "never");
  await poll(
    () => (extensionLog().match(/exo\.daemon\.start changed: the connection restarts once/g) ?? []).length === 2,
    30_000,
    "the second change to be logged",
  );
  if ((await notificationCount(restartNote)) !== 1) throw new Error("the deferred restart was announced more than once");
  step("4. a connection setting changed mid-turn: the restart waits for the turn, said once");
  // The settings editor opened over the timeline: its frame is another now.
  await command("exo: Show Timeline");
  frame = await timelineFrame();
  await answerNotification("asks to write approved.txt", "Allow");
  await poll(() => existsSync(join(project, "approved.txt")) && readFileSync(join(project, "approved.txt"), "utf8") === "approved\n", 60_000, "approved.txt to be written");
  await poll(
    async () => (await texts(frame, ".exo-event.exo-approved")).filter((text) => text.includes("by user")).length === 1,
    60_000,
    "the user's approval in the timeline",
  );
  await poll(async () => (await frame.$$('.exo-event[data-kind="turn_ended"]')).length === 3, 60_000, "the third turn to end");
  step("   Allow on the notification: approved.txt written, the approval shown");
  await poll(() => extensionLog().includes("the running turn ended: restarting"), 60_000, "the deferred restart");
  await page.locator(".statusbar-item").filter({ hasText: "exo: coder/main" }).first().waitFor({ timeout: 60_000 });
  await poll(async () => (await frame.$$('.exo-event[data-kind="turn_ended"]')).length === 3, 60_000, "the timeline after the restart");
  step("   the turn ended, then the connection restarted; coder/main shown again");

  // 5. Rewind to the end of the second turn: approved.txt goes.
  await frame.locator(".exo-turn").filter({ hasText: "Add a second line" }).locator(".exo-turn-rewind").click();
  let shown = await dialog();
  if (!shown.text.includes("approved.txt")) throw new Error(`the rewind's confirmation does not list approved.txt: ${shown.text}`);
  await shown.box.getByRole("button", { name: "Rewind", exact: true }).click();
  await poll(() => !existsSync(join(project, "approved.txt")), 60_000, "approved.txt to be removed");
  await poll(async () => (await frame.$$('.exo-event[data-kind="rewound"]')).length === 1, 60_000, "the rewind in the timeline");
  await poll(async () => (await frame.$$(".exo-turn")).length === 2, 60_000, "the third turn to leave the timeline");
  if (readFileSync(join(project, "notes.md"), "utf8") !== "first line\nsecond line\n") throw new Error("notes.md changed");
  step("5. Rewind here: approved.txt removed, the timeline shows the rewind");

  // Redo: back to the history the rewind left, approved.txt with it.
  await poll(async () => !(await frame.locator('button[data-action="redo"]').isDisabled()), 60_000, "Redo to be enabled");
  await frame.locator('button[data-action="redo"]').click();
  shown = await dialog();
  if (!shown.text.includes("approved.txt")) throw new Error(`the redo's confirmation does not list approved.txt: ${shown.text}`);
  await shown.box.getByRole("button", { name: "Redo", exact: true }).click();
  await poll(() => existsSync(join(project, "approved.txt")), 60_000, "approved.txt to come back");
  await poll(async () => (await frame.$$(".exo-turn")).length === 3, 60_000, "the third turn back in the timeline");
  // The history is the one the rewind left (its safety snapshot last),
  // then the redo's own `rewound`; the first rewind is on the branch left now.
  await poll(async () => (await frame.$$('.exo-event[data-kind="rewound"]')).length === 1, 60_000, "the redo in the timeline");
  const safety = await texts(frame, '.exo-event[data-kind="workspace_snapshot"]');
  if (!safety.some((text) => text.includes("(safety)"))) throw new Error("the timeline after the redo lacks the safety snapshot");
  step("   Redo: approved.txt back, the third turn back in the timeline");

  // An unsaved editor of a file the rewind would remove, opened through a
  // symlink to the folder: refused, naming it.
  const alias = join(scratch, "alias");
  symlinkSync(project, alias);
  // Quick Open takes an absolute path as it is (the Open File dialog
  // would resolve the symlink).
  await command("Go to File...");
  const openInput = page.locator(".quick-input-widget input");
  await openInput.waitFor({ timeout: 30_000 });
  const aliased = join(alias, "approved.txt");
  await openInput.fill(aliased);
  await page.locator(".quick-input-list .monaco-list-row").filter({ hasText: "approved.txt" }).first().waitFor({ timeout: 30_000 });
  await openInput.press("Enter");
  const editor = page.locator('.editor-instance .monaco-editor[data-uri$="alias/approved.txt"]');
  await editor.waitFor({ timeout: 30_000 });
  await editor.locator(".view-lines").click();
  await page.keyboard.type("unsaved words ");
  await page.locator(".tab.dirty").filter({ hasText: "approved.txt" }).waitFor({ timeout: 30_000 });
  await command("exo: Show Timeline"); // the file opened over it
  frame = await timelineFrame();
  await frame.locator(".exo-turn").filter({ hasText: "Add a second line" }).locator(".exo-turn-rewind").click();
  shown = await dialog();
  if (!shown.text.includes("refused") || !shown.text.includes("Unsaved") || !shown.text.includes("approved.txt")) {
    throw new Error(`expected a refusal naming the unsaved approved.txt, got: ${shown.text}`);
  }
  await shown.box.getByRole("button").first().click();
  await page.locator(".monaco-dialog-box").waitFor({ state: "detached", timeout: 30_000 });
  if (readFileSync(join(project, "approved.txt"), "utf8") !== "approved\n") throw new Error("the refused rewind touched approved.txt");
  await page.locator('.tab[data-resource-name="approved.txt"]').click();
  await command("File: Revert File");
  await page.locator(".tab.dirty").waitFor({ state: "detached", timeout: 30_000 });
  await command("exo: Show Timeline");
  frame = await timelineFrame();
  step("   Rewind here with an unsaved editor of approved.txt, opened through a symlink: refused, naming it; nothing changed");

  // 6. An edit no snapshot holds: the rewind is refused, naming it.
  writeFileSync(join(project, "notes.md"), "my own edit\n");
  const headBefore = JSON.parse(run(["--json", "conversation", "show", "coder", "main"])).head;
  await frame.locator(".exo-turn").filter({ hasText: "Write notes.md" }).locator(".exo-turn-rewind").click();
  shown = await dialog();
  if (!shown.text.includes("refused") || !shown.text.includes("notes.md")) {
    throw new Error(`expected a refusal naming notes.md, got: ${shown.text}`);
  }
  step(`6. the rewind was refused: ${shown.text.replace(/\s+/g, " ").slice(0, 160)}`);
  await shown.box.getByRole("button").first().click();
  await page.locator(".monaco-dialog-box").waitFor({ state: "detached", timeout: 30_000 });
  if (readFileSync(join(project, "notes.md"), "utf8") !== "my own edit\n") throw new Error("the refused rewind changed notes.md");
  const headAfter = JSON.parse(run(["--json", "conversation", "show", "coder", "main"])).head;
  if (headAfter !== headBefore) throw new Error("the refused rewind moved the head");
  if ((await frame.$$('.exo-event[data-kind="rewound"]')).length !== 1) throw new Error("the timeline shows another rewind");
  step("   nothing changed: notes.md keeps the edit, the head did not move");

  // 7. Fork here, into a new folder opened in a new window.
  const context = page.context();
  await frame.locator(".exo-turn").filter({ hasText: "Add a second line" }).locator(".exo-turn-fork").click();
  const slugInput = page.locator(".quick-input-widget input");
  await slugInput.waitFor({ timeout: 60_000 });
  const slug = "side";
  await slugInput.fill(slug);
  await slugInput.press("Enter");
  await poll(async () => (await slugInput.inputValue()).startsWith("/"), 30_000, "the folder's input box");
  const forkDir = await slugInput.inputValue();
  await slugInput.press("Enter");
  shown = await dialog();
  if (!shown.text.includes("notes.md")) throw new Error(`the fork's confirmation does not say notes.md differs: ${shown.text}`);
  const opened = context.waitForEvent("page", { timeout: 60_000 });
  await shown.box.getByRole("button", { name: "Fork", exact: true }).click();
  const forkPage = await opened;
  await poll(() => existsSync(join(forkDir, "notes.md")), 60_000, "the fork's folder");
  if (readFileSync(join(forkDir, "notes.md"), "utf8") !== "first line\nsecond line\n") throw new Error("the fork's notes.md is not the snapshot's");
  if (existsSync(join(forkDir, "approved.txt"))) throw new Error("the fork at the second turn holds approved.txt");
  await forkPage.locator(".monaco-workbench").waitFor({ timeout: 120_000 });
  await forkPage.locator(".statusbar-item").filter({ hasText: `exo: coder/${slug}` }).first().waitFor({ timeout: 120_000 });
  if (readFileSync(join(project, "notes.md"), "utf8") !== "my own edit\n") throw new Error("the fork changed this folder");
  step(`7. Fork here: ${forkDir} written and opened in a new window, showing coder/${slug}`);
  await forkPage.close();

  // 8. A command of three lines waits for approval.
  await command("exo: Show Timeline");
  frame = await timelineFrame();
  const endedBefore = (await frame.$$('.exo-event[data-kind="turn_ended"]')).length;
  await frame.locator("#exo-input").fill("Run the checks");
  await frame.locator("#exo-send").click();
  const shellToast = page.locator(".notification-toast").filter({ hasText: "asks to run a command of 3 lines, not shown whole here" });
  await shellToast.waitFor({ timeout: 60_000 });
  if ((await shellToast.getByRole("button", { name: "Allow", exact: true }).count()) !== 0) {
    throw new Error("the notification offers Allow for a command it does not show whole");
  }
  const card = frame.locator(".exo-approval .exo-command");
  await card.waitFor({ timeout: 60_000 });
  const onCard = await card.textContent();
  if (onCard !== SHELL_COMMAND) throw new Error(`the approval card does not show the whole command: ${JSON.stringify(onCard)}`);
  step("8. a 3-line command: the card shows all of it; the notification says so and offers Show Details…, not Allow");

  // Another conversation selected mid-turn: its Send is free.
  await pickConversation(`coder/${slug}`);
  await poll(async () => (await frame.locator(".exo-title").textContent())?.includes("(fork)"), 30_000, "the fork in the timeline");
  await frame.locator("#exo-input").fill("not sent");
  await poll(async () => !(await frame.locator("#exo-send").isDisabled()), 30_000, "the fork's Send to be enabled while coder/main's turn runs");
  await frame.locator("#exo-input").fill("");
  await answerNotification("asks to run a command of 3 lines", "Show Details…");
  shown = await dialog();
  for (const line of SHELL_COMMAND.split("\n")) {
    if (!shown.text.includes(line)) throw new Error(`Show Details… lacks "${line}": ${shown.text}`);
  }
  await shown.box.getByRole("button", { name: "Deny", exact: true }).click();
  await page.locator(".monaco-dialog-box").waitFor({ state: "detached", timeout: 30_000 });
  const writeQuestion = "coder/main asks to write after-switch.txt";
  await page.locator(".notification-toast").filter({ hasText: writeQuestion }).waitFor({ timeout: 60_000 });
  step(`   with coder/${slug} shown: its Send is enabled; Show Details… showed all 3 lines; Deny; the next question is still asked`);

  // Back to coder/main: the turn runs, its question on the card, asked once.
  await pickConversation("coder/main");
  await poll(async () => !(await frame.locator(".exo-title").textContent())?.includes("(fork)"), 30_000, "coder/main in the timeline");
  await frame.locator(".exo-approval").filter({ hasText: "approve write_file?" }).waitFor({ timeout: 60_000 });
  await poll(async () => (await frame.locator(".exo-status").textContent()) === "turn running…", 30_000, "the running turn's status");
  if (!(await frame.locator("#exo-send").isDisabled())) throw new Error("Send is enabled in the conversation whose turn runs");
  if ((await notificationCount(writeQuestion)) !== 1) throw new Error("the question was asked twice");
  await answerNotification(writeQuestion, "Allow");
  await poll(() => existsSync(join(project, "after-switch.txt")), 60_000, "after-switch.txt to be written");
  await poll(async () => (await frame.$$('.exo-event[data-kind="turn_ended"]')).length === endedBefore + 1, 60_000, "the fourth turn to end");
  if (!existsSync(join(project, "approved.txt"))) throw new Error("the denied command ran");
  if ((await frame.$$(".exo-event.exo-denied")).length !== 1) throw new Error("the timeline does not show the denial");
  step("   back on coder/main: the turn shown running with its question; Allow finished it; the denied command did not run");

  return { latency, shot, reconnect };
}

// ---------------------------------------------------------------------------
// Teardown

async function teardown() {
  if (browser) {
    const process_ = browser.process?.();
    await browser.close().catch(() => undefined);
    if (process_ && process_.exitCode === null) process_.kill("SIGKILL");
  }
  if (codeServer?.pid) {
    try {
      process.kill(-codeServer.pid, "SIGTERM");
    } catch {
      // Gone already.
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        process.kill(-codeServer.pid, 0);
      } catch {
        break;
      }
      await new Promise((done) => setTimeout(done, 100));
    }
    try {
      process.kill(-codeServer.pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
  // The daemon the extension started (detached, so not in code-server's group).
  const lock = join(project, ".exo", "daemon.lock");
  let pid;
  try {
    pid = JSON.parse(readFileSync(lock, "utf8")).pid;
  } catch {
    pid = undefined;
  }
  if (typeof pid === "number" && alive(pid)) {
    spawnSync(exo, ["daemon", "stop"], { cwd: project, env, timeout: 30_000 });
    const deadline = Date.now() + 30_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((done) => setTimeout(done, 100));
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let failed = false;
try {
  const { latency, shot, reconnect } = await checks();
  console.log("");
  console.log(`live event latency: ${String(latency)} ms (append returned → event in the timeline's DOM)`);
  console.log(`reconnect after \`exo daemon stop\` and a click on the status bar: ${String(reconnect)} ms (to the event appended meanwhile in the timeline)`);
  console.log(`screenshot: ${shot}`);
} catch (err) {
  failed = true;
  console.error(`\nFAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  if (page) {
    try {
      const shot = await screenshot(`failure-${String(Date.now())}.png`);
      console.error(`failure screenshot: ${shot}`);
    } catch (shotError) {
      console.error(`no failure screenshot: ${shotError.message}`);
    }
  }
  console.error(`code-server's log: ${join(out, "code-server.log")}; its user data (extension logs): ${join(scratch, "user-data/logs")}`);
} finally {
  await teardown();
}
if (failed) {
  console.error(`kept the scratch directory for inspection: ${scratch}`);
} else {
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`e2e ${failed ? "FAILED" : "passed"} in ${elapsed()}`);
process.exit(failed ? 1 : 0);
