// Loading a harness module: the checks of spec/harness.md, `initialize`
// ("a module that does not exist, does not export a harness or does not
// compile is refused in one line"), TypeScript through tsx, and
// `@exo/harness` made resolvable for modules that do not depend on it.

import { spawnSync } from "node:child_process";
import { stat } from "node:fs/promises";
import Module, { createRequire, register } from "node:module";
import { basename, extname, resolve as resolvePath } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { isHarness, type Harness } from "./index.js";
import { oneLine, RpcError } from "./jsonrpc.js";

/** The `initialize` error about a module: -32001, `data.code` `module`. */
export function moduleError(message: string): RpcError {
  return new RpcError(-32001, message, { code: "module" });
}

/** A module loaded: its harness and the harness's name. */
export interface Loaded {
  harness: Harness;
  name: string;
}

let tsxLoaded = false;
let fallbackRegistered = false;

/** Loads `file` and checks that its default export is a harness. */
export async function loadHarness(file: string): Promise<Loaded> {
  const path = resolvePath(file);
  try {
    const info = await stat(path);
    if (!info.isFile()) throw moduleError(`module ${path} is not a file`);
  } catch (err) {
    if (err instanceof RpcError) throw err;
    const code = (err as { code?: unknown }).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw moduleError(`module ${path} does not exist`);
    throw moduleError(`cannot read module ${path}: ${oneLine(err)}`);
  }
  if (/\.[cm]?tsx?$/.test(path)) await loadTsx(path);
  ensureRuntimeResolves(path);
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (err) {
    throw moduleError(`cannot load module ${path}: ${describeLoadError(err, path)}`);
  }
  let value = module.default;
  // A module compiled to CommonJS (a .ts file outside an ES package) has
  // its default export one level down: module.exports.default.
  if (!isHarness(value) && typeof value === "object" && value !== null && isHarness((value as { default?: unknown }).default)) {
    value = (value as { default?: unknown }).default;
  }
  if (!isHarness(value)) {
    const how = "export default defineHarness({ runTurn(ctx) { ... } })";
    throw moduleError(
      value === undefined
        ? `module ${path} has no default export: ${how}`
        : `the default export of module ${path} was not made by defineHarness: ${how}`,
    );
  }
  return { harness: value, name: value.name ?? nameOf(path) };
}

/** A harness name from a file name: `basic-harness.ts` → `basic-harness`. */
export function nameOf(path: string): string {
  const name = basename(path, extname(path))
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
  return name === "" ? "module" : name;
}

/** Registers tsx (this package's dependency) unless it already is, as
 * `node --import tsx` would. */
async function loadTsx(path: string): Promise<void> {
  if (tsxLoaded) return;
  tsxLoaded = true;
  const given = [...process.execArgv, process.env["NODE_OPTIONS"] ?? ""].join(" ");
  if (/(^|[\s=/])tsx(\/|\s|$)|tsx\/dist\/loader/.test(given)) return;
  try {
    // tsx's entry point registers its loader when imported (it has no
    // types: a specifier in a variable keeps TypeScript from asking).
    const tsx = "tsx";
    await import(tsx);
  } catch (err) {
    tsxLoaded = false;
    throw moduleError(`cannot load TypeScript module ${path}: tsx could not be loaded beside @exo/harness: ${oneLine(err)}`);
  }
}

/** When the module's directory cannot resolve `@exo/harness`, resolves it
 * to this copy. */
function ensureRuntimeResolves(path: string): void {
  if (fallbackRegistered) return;
  try {
    createRequire(path).resolve("@exo/harness");
    return;
  } catch {
    // Not installed where the module is: fall back to this copy.
  }
  fallbackRegistered = true;
  // ES modules: a resolve hook (hooks.ts).
  register("./hooks.js", import.meta.url, { data: { dist: new URL("./", import.meta.url).href } });
  // CommonJS (tsx compiles a .ts module outside an ES package to it): the
  // resolver every require goes through.
  const cjs = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolveFilename = cjs._resolveFilename;
  const index = fileURLToPath(new URL("./index.js", import.meta.url));
  const subpaths: Record<string, string> = {
    "@exo/harness": index,
    "@exo/harness/testing": fileURLToPath(new URL("./testing.js", import.meta.url)),
    "@exo/harness/protocol": fileURLToPath(new URL("./protocol.js", import.meta.url)),
  };
  cjs._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    try {
      return resolveFilename.call(this, request, ...rest);
    } catch (err) {
      const fallback = subpaths[request];
      if (fallback !== undefined) return fallback;
      throw err;
    }
  };
}

/** A load error in one line. Node does not say where a JavaScript syntax
 * error is (it prints that only for an uncaught one), so for one in the
 * module itself `node --check` is asked for the line. */
function describeLoadError(err: unknown, path: string): string {
  const message = oneLine(err);
  if (err instanceof SyntaxError && /\.[cm]?js$/.test(path)) {
    const check = spawnSync(process.execPath, ["--check", path], { encoding: "utf8", timeout: 10_000 });
    const first = check.stderr.split("\n")[0] ?? "";
    const line = first.startsWith(`${path}:`) ? first.slice(path.length + 1) : "";
    if (/^\d+$/.test(line)) return `${message} (line ${line})`;
  }
  return message;
}
