// src/protocol.ts is generated from the checked-in JSON Schemas
// (spec/protocol.schema.json and spec/harness.schema.json, themselves
// generated from crates/protocol): it must be what the generator writes
// today, so the TypeScript types never drift from the Rust ones.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { HARNESS_ERROR_CODES, HARNESS_PROTOCOL_VERSION, PROTOCOL_VERSION } from "../src/protocol.js";

const file = (path: string) => fileURLToPath(new URL(path, import.meta.url));

test("src/protocol.ts is up to date with the protocol schemas", () => {
  const generated = execFileSync(process.execPath, [file("../scripts/generate.mjs"), "--stdout"], { encoding: "utf8" });
  const committed = readFileSync(file("../src/protocol.ts"), "utf8");
  assert.ok(
    generated === committed,
    "src/protocol.ts is out of date with spec/*.schema.json: run `pnpm -C typescript/harness run generate` and commit the result",
  );
});

test("the generated constants are the schemas' own", () => {
  const harness = JSON.parse(readFileSync(file("../../../spec/harness.schema.json"), "utf8")) as { protocol_version: string; error_codes: Record<string, number> };
  const daemon = JSON.parse(readFileSync(file("../../../spec/protocol.schema.json"), "utf8")) as { protocol_version: string };
  assert.equal(HARNESS_PROTOCOL_VERSION, harness.protocol_version);
  assert.equal(PROTOCOL_VERSION, daemon.protocol_version);
  assert.deepEqual({ ...HARNESS_ERROR_CODES }, harness.error_codes);
});
