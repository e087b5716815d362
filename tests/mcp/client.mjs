// The client in exo's MCP tests: the official MCP SDK (@modelcontextprotocol/sdk)
// connected to a real `exo mcp` over stdio, running the steps it is given and
// printing their outcomes as one JSON object for tests/cli/mcp.rs.
//
//   node client.mjs EXO ROOT STEPS [-- EXO MCP ARGS...]
//
// STEPS is a JSON array of {"tool": NAME, "arguments": {...}},
// {"list": "tools"|"resources"} or {"read": URI}.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [exo, root, steps, separator, ...serverArgs] = process.argv.slice(2);
if (separator !== "--") throw new Error("usage: client.mjs EXO ROOT STEPS -- ARGS...");

const transport = new StdioClientTransport({
  command: exo,
  args: ["--root", root, "mcp", ...serverArgs],
  env: process.env,
  stderr: "inherit",
});
const client = new Client({ name: "exo-mcp-tests", version: "0.0.0" });
await client.connect(transport);
const outcomes = [];
for (const step of JSON.parse(steps)) {
  try {
    if (step.tool !== undefined) {
      outcomes.push({ result: await client.callTool({ name: step.tool, arguments: step.arguments ?? {} }) });
    } else if (step.list === "tools") {
      outcomes.push({ result: await client.listTools() });
    } else if (step.list === "resources") {
      outcomes.push({ result: await client.listResources() });
    } else if (step.read !== undefined) {
      outcomes.push({ result: await client.readResource({ uri: step.read }) });
    }
  } catch (err) {
    outcomes.push({ error: { code: err.code, message: err.message } });
  }
}
await client.close();
process.stdout.write(`${JSON.stringify({ server: client.getServerVersion(), outcomes })}\n`);
