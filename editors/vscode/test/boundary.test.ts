// The protocol client is free of VS Code: nothing under src/protocol
// imports `vscode` (or the extension's modules that do), so it runs in
// plain Node, as these tests run it.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const PROTOCOL = fileURLToPath(new URL("../src/protocol/", import.meta.url));

test("src/protocol imports neither vscode nor the extension", () => {
  for (const name of readdirSync(PROTOCOL)) {
    const source = readFileSync(join(PROTOCOL, name), "utf8");
    const imports = [...source.matchAll(/from\s+"([^"]+)"/g)].map((match) => match[1] ?? "");
    for (const spec of imports) {
      assert.ok(spec !== "vscode", `${name} imports vscode`);
      assert.ok(!spec.startsWith("../"), `${name} imports ${spec}, outside src/protocol`);
    }
  }
});

test("the helpers tested on their own import no vscode", () => {
  for (const name of ["text.ts", "dirty.ts"]) {
    const source = readFileSync(fileURLToPath(new URL(`../src/${name}`, import.meta.url)), "utf8");
    const imports = [...source.matchAll(/from\s+"([^"]+)"/g)].map((match) => match[1] ?? "");
    assert.ok(!imports.includes("vscode"), `${name} imports vscode`);
    // The webview bundles text.ts: no Node APIs there.
    if (name === "text.ts") assert.ok(!imports.some((spec) => spec.startsWith("node:")), `${name} imports Node`);
  }
});
