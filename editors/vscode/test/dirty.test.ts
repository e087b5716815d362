// Unsaved editors of the files a rewind would write (src/dirty.ts), on a
// real file system: paths compared with symlinks resolved on both sides,
// and every kind of editor (text, notebook, custom, diff) counted.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { canonicalPath, dirtyAmong, dirtyFiles } from "../src/dirty";

/** A workspace with `notes.md` and `src/a.ts`, and `alias`, a symlink to it, beside it. */
function tree(t: TestContext): { workspace: string; alias: string } {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "exo-dirty-test-")));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const workspace = join(dir, "workspace");
  mkdirSync(join(workspace, "src"), { recursive: true });
  writeFileSync(join(workspace, "notes.md"), "notes\n");
  writeFileSync(join(workspace, "src", "a.ts"), "a\n");
  const alias = join(dir, "alias");
  symlinkSync(workspace, alias);
  return { workspace, alias };
}

const file = (fsPath: string) => ({ scheme: "file", fsPath });

test("a canonical path resolves symlinks, as far as the path exists", (t) => {
  const { workspace, alias } = tree(t);
  assert.equal(canonicalPath(join(alias, "notes.md")), join(workspace, "notes.md"));
  // Not there (a file a rewind brings back): its parent's real path, then the rest.
  assert.equal(canonicalPath(join(alias, "gone", "deeper.md")), join(workspace, "gone", "deeper.md"));
  assert.equal(canonicalPath(join(alias, "src", "..", "notes.md")), join(workspace, "notes.md"));
});

test("an editor opened through a symlinked folder is of the file exo names", (t) => {
  const { workspace, alias } = tree(t);
  const paths = ["notes.md", "src/a.ts", "brought-back.md"];
  assert.deepEqual(dirtyAmong(workspace, paths, [join(alias, "notes.md")]), ["notes.md"]);
  // The workspace itself given through the symlink.
  assert.deepEqual(dirtyAmong(alias, paths, [join(workspace, "src", "a.ts")]), ["src/a.ts"]);
  // A file that does not exist now, under the symlink.
  assert.deepEqual(dirtyAmong(workspace, paths, [join(alias, "brought-back.md")]), ["brought-back.md"]);
  assert.deepEqual(dirtyAmong(workspace, paths, [join(alias, "other.md"), "/elsewhere/notes.md"]), []);
  // In exo's order, each once.
  assert.deepEqual(
    dirtyAmong(workspace, paths, [join(alias, "src/a.ts"), join(workspace, "notes.md"), join(alias, "notes.md")]),
    ["notes.md", "src/a.ts"],
  );
});

test("dirty text documents, notebooks and tabs of any editor count; clean and non-file ones do not", () => {
  const dirty = dirtyFiles({
    documents: [
      { isDirty: true, uri: file("/w/text.md") },
      { isDirty: false, uri: file("/w/clean.md") },
      { isDirty: true, uri: { scheme: "untitled", fsPath: "Untitled-1" } },
    ],
    notebooks: [{ isDirty: true, uri: file("/w/book.ipynb") }],
    tabs: [
      { isDirty: true, input: { uri: file("/w/custom.drawio"), viewType: "drawio" } },
      { isDirty: true, input: { original: { scheme: "exo-snapshot", fsPath: "/x" }, modified: file("/w/diffed.md") } },
      { isDirty: true, input: { viewType: "terminal" } },
      { isDirty: true, input: undefined },
      { isDirty: false, input: { uri: file("/w/clean-tab.md") } },
    ],
  });
  assert.deepEqual(dirty.sort(), ["/w/book.ipynb", "/w/custom.drawio", "/w/diffed.md", "/w/text.md"]);
});
