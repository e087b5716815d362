#!/usr/bin/env node
// Builds the extension and packages it as a .vsix with @vscode/vsce:
// target/vscode/exo-<version>.vsix at the repository's root, path printed
// on stdout. vsce needs Node 22 or later and is not a pnpm dependency (its
// tree is large and runs install scripts): EXO_VSCE names it, else
// scripts/setup-code-server --vsce installs it (with Node 24) into the
// exo-dev cache and says where.
//
//   pnpm --dir editors/vscode package

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL("..", import.meta.url));
const repo = join(dir, "../..");
const { version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));

execFileSync(process.execPath, [join(dir, "scripts/build.mjs")], { stdio: "inherit" });

let vsce = process.env.EXO_VSCE;
if (!vsce) {
  const exports = execFileSync(join(repo, "scripts/setup-code-server"), ["--vsce", "--print-env"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = exports.split("\n").find((l) => l.startsWith("export EXO_VSCE="));
  if (!line) throw new Error("scripts/setup-code-server did not say where vsce is");
  vsce = line.slice("export EXO_VSCE=".length).replace(/^'(.*)'$/, "$1");
}

const out = join(repo, "target/vscode");
mkdirSync(out, { recursive: true });
const vsix = join(out, `exo-${version}.vsix`);
// The bundle holds every dependency, so vsce lists none (and never looks
// into pnpm's node_modules); .vscodeignore keeps only what runs.
execFileSync(
  vsce,
  ["package", "--no-dependencies", "--allow-missing-repository", "--skip-license", "--out", vsix],
  { cwd: dir, stdio: ["ignore", "inherit", "inherit"] },
);
process.stdout.write(`${vsix}\n`);
