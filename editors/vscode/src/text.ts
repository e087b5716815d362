// What the extension writes into VS Code's notifications, dialogs and
// quick picks, and the timeline's approval card: file names, shell
// commands and errors, made safe to show.
//
// Key design ideas:
// - Those surfaces show plain text, where a file name holding a newline
//   or a control character could fake extra lines (a confirmation that
//   seems to list other files), and a bidi override could show a name or
//   a command other than it is. A name is shown as is when it is plain,
//   else quoted with JSON-style escapes; a command keeps its newlines and
//   tabs and shows anything else invisible as `⟨U+XXXX⟩`.
// - An approval's summary says so whenever it is not the whole command
//   (more than one line, long, or holding such characters); the whole
//   text is then one action away.
// - An error shown to the user is one line saying what is wrong: no
//   stack, no parser's message; the log has the rest.
// - Pure: no `vscode`, no Node APIs, so the webview bundles it too and
//   the tests run it in plain Node.

import type { ApprovalRequest, PathChange } from "./protocol/types";

/** Characters that do not show as themselves: controls, format and bidi characters, separators, lone surrogates. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;
const INVISIBLE_ALL = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu;

/**
 * What a notification would not show as written: VS Code renders
 * `[label](target)` in a notification's message as a link showing only
 * its label. `$(name)`, which other parts of VS Code (the status bar,
 * some labels) render as an icon, is kept out as well.
 */
const MARKUP = /\]\(|\$\(/;

/**
 * A name shown in a notification is at most this long: VS Code cuts a
 * notification's message at 1000 characters, and the end of a long path
 * is the part that matters.
 */
const SHORT_NAME = 200;

/** Whether a notification would show `text` as written (no link or icon syntax in it). */
export function showsAsWritten(text: string): boolean {
  return !MARKUP.test(text);
}

/** A command shown on one line of a notification is at most this long. */
const SHORT_COMMAND = 160;

/** The most of a command the approval card and dialog show: 64 KiB. */
export const COMMAND_SHOWN_BYTES = 64 * 1024;

/**
 * A file name (or any name) that cannot pass for something else: as is
 * when plain, else in quotes with JSON-style escapes (`\n`, `\u202e`, ...).
 */
export function safeName(name: string): string {
  if (name !== "" && !INVISIBLE.test(name) && !/["\\]/.test(name) && name.trim() === name) return name;
  let quoted = "";
  for (const char of name) {
    switch (char) {
      case "\"":
        quoted += "\\\"";
        break;
      case "\\":
        quoted += "\\\\";
        break;
      case "\n":
        quoted += "\\n";
        break;
      case "\r":
        quoted += "\\r";
        break;
      case "\t":
        quoted += "\\t";
        break;
      default:
        quoted += INVISIBLE.test(char) ? codeUnits(char) : char;
    }
  }
  return `"${quoted}"`;
}

/** The lines of a preview listing changed paths, at most `max` of them. */
export function pathLines(changes: readonly PathChange[], max = 30): string {
  const shown = changes.slice(0, max).map((change) => `  ${change.change.padEnd(9)} ${safeName(change.path)}`);
  if (changes.length > max) shown.push(`  … and ${String(changes.length - max)} more`);
  return shown.join("\n");
}

/** Text with its newlines and tabs, and anything else invisible shown as `⟨U+XXXX⟩`; how many were. */
export function visibleText(text: string): { text: string; replaced: number } {
  let replaced = 0;
  const shown = text.replace(INVISIBLE_ALL, (char) => {
    if (char === "\n" || char === "\t") return char;
    replaced += 1;
    const point = char.codePointAt(0) ?? 0;
    return `⟨U+${point.toString(16).toUpperCase().padStart(4, "0")}⟩`;
  });
  return { text: shown, replaced };
}

/** The first `maxBytes` of `text` in UTF-8 (never cutting a character), and how many bytes were left out. */
export function capBytes(text: string, maxBytes: number): { text: string; omittedBytes: number } {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return { text, omittedBytes: 0 };
  let cut = Math.max(maxBytes, 0);
  // Back to the start of the character the cut falls in.
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut -= 1;
  return { text: new TextDecoder().decode(bytes.subarray(0, cut)), omittedBytes: bytes.length - cut };
}

/** How a command is shown in full: capped, invisible characters made visible, with notes of what was changed. */
export function commandShown(command: string, maxBytes = COMMAND_SHOWN_BYTES): { text: string; notes: string[] } {
  const capped = capBytes(command, maxBytes);
  const visible = visibleText(capped.text);
  const notes: string[] = [];
  if (capped.omittedBytes > 0) notes.push(`… ${String(capped.omittedBytes)} more bytes not shown`);
  if (visible.replaced > 0) {
    notes.push(`${String(visible.replaced)} invisible or control character${visible.replaced === 1 ? " is" : "s are"} shown as ⟨U+XXXX⟩`);
  }
  return { text: visible.text, notes };
}

/** What an approval question asks, for a one-line notification. */
export interface CallDescription {
  /** "write notes.md", "run `make test`", ...: shown as written in a notification. */
  summary: string;
  /** The whole call, when the summary does not show it: what a dialog must show before Allow. */
  whole?: { title: string; text: string };
}

/** Describes a call waiting for approval; see {@link CallDescription}. */
export function describeCall(request: ApprovalRequest): CallDescription {
  const args = (request.arguments ?? {}) as Record<string, unknown>;
  switch (request.tool) {
    case "shell": {
      const command = args["command"];
      if (typeof command !== "string") {
        const shown = oneLine(JSON.stringify(args), 100);
        return showsAsWritten(shown)
          ? { summary: `run a shell command (${shown})` }
          : { summary: "run a shell command", whole: { title: "run a shell command with these arguments", text: JSON.stringify(args) } };
      }
      const lines = command.split("\n").length;
      const invisible = INVISIBLE.test(command.replace(/\t/g, " "));
      if (lines === 1 && command.length <= SHORT_COMMAND && !invisible && showsAsWritten(command)) {
        return { summary: `run \`${command}\`` };
      }
      const what = lines > 1
        ? `a command of ${String(lines)} lines`
        : invisible
          ? "a command with invisible characters"
          : command.length > SHORT_COMMAND
            ? `a command of ${String(command.length)} characters`
            : "a command holding link or icon syntax";
      const start = oneLine(visibleText(command.split("\n")[0] ?? "").text, 60);
      const starts = showsAsWritten(start) ? `; it starts \`${start}\`` : "";
      return { summary: `run ${what}, not shown whole here${starts}`, whole: { title: "run this command", text: command } };
    }
    case "write_file":
    case "edit_file": {
      const verb = request.tool === "write_file" ? "write" : "edit";
      const raw = args["path"];
      if (typeof raw !== "string") return { summary: `${verb} a file` };
      return named(verb, "file", safeName(raw));
    }
    default:
      return named("use", "tool", safeName(request.tool));
  }
}

/** "write notes.md", or, when the name would not show whole, a description and the dialog's text. */
function named(verb: string, noun: string, name: string): CallDescription {
  if (showsAsWritten(name) && name.length <= SHORT_NAME) return { summary: `${verb} ${name}` };
  const why = showsAsWritten(name) ? `a name of ${String(name.length)} characters` : "a name holding link or icon syntax";
  return { summary: `${verb} a ${noun} with ${why}, not shown whole here`, whole: { title: `${verb} this ${noun}`, text: name } };
}

/**
 * An error as one line for the user: its message's first line, cut short;
 * a parser's error says only that the data was not JSON.
 */
export function describeError(err: unknown): string {
  if (err instanceof SyntaxError) return "exo sent data that is not JSON (the exo log has it)";
  const message = err instanceof Error ? err.message : typeof err === "string" ? err : "an unexpected error";
  const lines = message.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== "" && !/^at /.test(line));
  const first = lines[0] ?? "an unexpected error";
  const shown = oneLine(visibleText(first).text, 300);
  return lines.length > 1 ? `${shown} (more in the exo log)` : shown;
}

/** `text` on one line, at most `max` characters (`…` marks a cut). */
function oneLine(text: string, max: number): string {
  const line = text.replace(/\s*\n\s*/g, " ");
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A character as JSON escapes its UTF-16 code units: `\u202e`. */
function codeUnits(char: string): string {
  let out = "";
  for (let i = 0; i < char.length; i++) out += `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}
