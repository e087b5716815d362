// The editor in exo's ACP tests: the official ACP SDK (@agentclientprotocol/sdk)
// as a client of a real `exo acp`, one step per run, its outcome printed as
// one JSON object on stdout for tests/cli/acp.rs to check.
//
//   node client.mjs EXO ROOT new CWD
//   node client.mjs EXO ROOT prompt SESSION TEXT [allow_once|allow_always|reject_once]
//   node client.mjs EXO ROOT cancel SESSION TEXT      (cancels once text streams)
//   node client.mjs EXO ROOT load SESSION CWD
//   node client.mjs EXO ROOT list [CWD]
//   node client.mjs EXO ROOT resume SESSION CWD
//   node client.mjs EXO ROOT fork SESSION EVENT
//   node client.mjs EXO ROOT rewind SESSION EVENT
//   node client.mjs EXO ROOT raw LINE                 (a line as it is, then initialize)
//   node client.mjs EXO ROOT vanish SESSION TEXT      (exits when asked a permission)

import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";
import { client, ndJsonStream } from "@agentclientprotocol/sdk";

const [exo, root, step, ...args] = process.argv.slice(2);
const agent = spawn(exo, ["--root", root, "acp"], { stdio: ["pipe", "pipe", "inherit"] });

if (step === "raw") {
  // Malformed input first: the agent must answer it and stay up.
  agent.stdin.write(`${args[0]}\n`);
}

const updates = [];
const permissions = [];
let onUpdate = () => {};
const app = client({ name: "exo-acp-tests" })
  .onNotification("session/update", ({ params }) => {
    updates.push(params.update);
    onUpdate(params.update);
  })
  .onRequest("session/request_permission", ({ params }) => {
    permissions.push(params);
    if (step === "vanish") {
      // The editor goes away while exo waits for the user's answer.
      process.stdout.write(`${JSON.stringify({ vanished: true, updates, permissions })}\n`);
      process.exit(0);
    }
    const choice = args[2] ?? "allow_once";
    return { outcome: { outcome: "selected", optionId: choice } };
  });

const stream = ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));
const out = await app.connectWith(stream, async (cx) => {
  const init = await cx.request("initialize", { protocolVersion: 1, clientCapabilities: {} });
  const call = async (method, params) => {
    try {
      return { result: await cx.request(method, params) };
    } catch (err) {
      return { error: { code: err.code, message: err.message, data: err.data } };
    }
  };
  switch (step) {
    case "new":
      return call("session/new", { cwd: args[0], mcpServers: [] });
    case "prompt":
    case "vanish":
      return call("session/prompt", { sessionId: args[0], prompt: [{ type: "text", text: args[1] }] });
    case "cancel": {
      const prompt = call("session/prompt", { sessionId: args[0], prompt: [{ type: "text", text: args[1] }] });
      await new Promise((resolve) => {
        onUpdate = (update) => {
          if (update.sessionUpdate === "agent_message_chunk") resolve();
        };
      });
      await cx.notify("session/cancel", { sessionId: args[0] });
      return prompt;
    }
    case "load":
      return call("session/load", { sessionId: args[0], cwd: args[1], mcpServers: [] });
    case "list":
      return call("session/list", args[0] === undefined ? {} : { cwd: args[0] });
    case "resume":
      return call("session/resume", { sessionId: args[0], cwd: args[1] });
    case "fork":
      return call("_exo/fork", { sessionId: args[0], _meta: { exo: { at: args[1] } } });
    case "rewind":
      return call("_exo/rewind", { sessionId: args[0], at: args[1] });
    case "raw":
      return { result: init };
    default:
      throw new Error(`unknown step ${step}`);
  }
});

agent.stdin.end();
await new Promise((resolve) => agent.on("exit", resolve));
process.stdout.write(`${JSON.stringify({ ...out, updates, permissions })}\n`);
