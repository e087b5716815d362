#!/usr/bin/env node
// Bundles the extension with esbuild: src/extension.ts (and everything it
// imports) into dist/extension.js, CommonJS for VS Code's extension host,
// and the timeline's webview script into dist/webview.js, for the browser.
// esbuild does not type-check: `pnpm lint` runs tsc.
//
//   node scripts/build.mjs            a minified build with source maps
//   node scripts/build.mjs --dev      unminified

import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dev = process.argv.includes("--dev");

const common = {
  absWorkingDir: root,
  bundle: true,
  minify: !dev,
  sourcemap: true,
  target: "es2022",
  logLevel: "warning",
};

await Promise.all([
  build({
    ...common,
    entryPoints: ["src/extension.ts"],
    outfile: "dist/extension.js",
    platform: "node",
    format: "cjs",
    external: ["vscode"],
  }),
  build({
    ...common,
    entryPoints: ["src/webview/timeline.ts"],
    outfile: "dist/webview.js",
    platform: "browser",
    format: "iife",
  }),
]);
