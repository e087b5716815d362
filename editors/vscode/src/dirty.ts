// Which of the files a rewind or a redo would write hold unsaved changes
// in an editor, so that it can be refused before it loses them.
//
// Key design ideas:
// - Paths are compared canonical, symlinks resolved on both sides: an
//   editor opened through a symlinked folder is of the same file as the
//   path exo names under the workspace. A file that does not exist (one a
//   rewind would bring back, one deleted under its editor) is its nearest
//   existing parent's real path plus the rest.
// - Every kind of editor counts: text documents, notebooks, and tabs
//   (which also cover custom editors and diffs). Their objects are taken
//   by shape (`uri`, `modified`, `original`), not by class, so this
//   module does not import `vscode` and is tested on its own.

import { realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

/** `path` absolute with every symlink resolved, as far as it exists; see the file's header. */
export function canonicalPath(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    const parent = dirname(absolute);
    if (parent === absolute) return absolute;
    return join(canonicalPath(parent), basename(absolute));
  }
}

/** A document or notebook, as VS Code has it. */
export interface EditedDocument {
  readonly isDirty: boolean;
  readonly uri: unknown;
}

/** A tab, as VS Code has it: its `input` is one of the `TabInput*` classes. */
export interface EditorTab {
  readonly isDirty: boolean;
  readonly input: unknown;
}

/** Every editor the window has open. */
export interface OpenEditors {
  documents: readonly EditedDocument[];
  notebooks: readonly EditedDocument[];
  tabs: readonly EditorTab[];
}

/** The files on disk (`file:` URIs' paths) that an editor holds unsaved changes of. */
export function dirtyFiles(editors: OpenEditors): string[] {
  const files = new Set<string>();
  const add = (uri: unknown) => {
    const path = filePath(uri);
    if (path !== undefined) files.add(path);
  };
  for (const document of [...editors.documents, ...editors.notebooks]) {
    if (document.isDirty) add(document.uri);
  }
  for (const tab of editors.tabs) {
    if (!tab.isDirty || typeof tab.input !== "object" || tab.input === null) continue;
    // Text, notebook and custom editors have `uri`; the diffs have both sides.
    const input = tab.input as Record<string, unknown>;
    for (const key of ["uri", "modified", "original"]) add(input[key]);
  }
  return [...files];
}

/**
 * The `paths` (relative to `workspace`, as exo names them) whose files are
 * among `dirty` (absolute), symlinks resolved on both sides; in the order
 * of `paths`.
 */
export function dirtyAmong(workspace: string, paths: readonly string[], dirty: readonly string[]): string[] {
  const wanted = new Map<string, string>();
  for (const path of paths) wanted.set(canonicalPath(join(workspace, path)), path);
  const found = new Set<string>();
  for (const file of dirty) {
    const path = wanted.get(canonicalPath(file));
    if (path !== undefined) found.add(path);
  }
  return paths.filter((path) => found.has(path)).filter((path, i, all) => all.indexOf(path) === i);
}

function filePath(uri: unknown): string | undefined {
  if (typeof uri !== "object" || uri === null) return undefined;
  const { scheme, fsPath } = uri as { scheme?: unknown; fsPath?: unknown };
  return scheme === "file" && typeof fsPath === "string" ? fsPath : undefined;
}
