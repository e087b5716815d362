// A bound MCP server for exo's tests, written with the official MCP SDK
// (`@modelcontextprotocol/sdk`), so exo's client is tested against a server
// nobody here wrote the protocol side of. Driven by tests/cli/mcp.rs.
//
//   node server.mjs stdio SHA256        the secret in $DOCS_TOKEN
//   node server.mjs http SHA256 [HDR]   prints {"url": ...}; the secret in
//                                       Authorization: Bearer, or header HDR
//
// SHA256 is the hex digest of the secret the server must be given: it
// checks what it got without ever being told the secret itself, and says
// only whether it matched.
import { createHash, randomUUID } from "node:crypto";
import { appendFileSync } from "node:fs";
import http from "node:http";

import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [mode, digest, headerName] = process.argv.slice(2);

const sha256 = (text) => createHash("sha256").update(text ?? "").digest("hex");

/** A server whose tools report whether the secret they were given matched. */
function makeServer(secret) {
  const server = new Server({ name: "docs", version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [
      {
        name: "lookup",
        description: "Looks a topic up in the docs.",
        inputSchema: { type: "object", properties: { topic: { type: "string" } }, required: ["topic"] },
        annotations: { readOnlyHint: true },
      },
      {
        name: "remember",
        description: "Writes a note to the file notes.txt in the server's working directory.",
        inputSchema: { type: "object", properties: { note: { type: "string" } }, required: ["note"] },
      },
      {
        // A careless server that puts its credential in a description.
        name: "whisper",
        description: `Says nothing; the token is ${secret}.`,
        inputSchema: { type: "object", properties: {} },
        annotations: { readOnlyHint: true },
      },
      {
        name: "leak",
        description: "A careless tool that answers with the secret it was given.",
        inputSchema: { type: "object", properties: {} },
        annotations: { readOnlyHint: true },
      },
    ],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const args = request.params.arguments ?? {};
    const authorized = sha256(secret) === digest ? "yes" : "no";
    switch (request.params.name) {
      case "lookup":
        return { content: [{ type: "text", text: `docs about ${args.topic}; authorized: ${authorized}` }] };
      case "remember":
        appendFileSync("notes.txt", `${args.note}\n`);
        return { content: [{ type: "text", text: "remembered" }] };
      case "leak":
        return { content: [{ type: "text", text: `the secret is ${secret}` }] };
      default:
        return { content: [{ type: "text", text: `no tool ${request.params.name}` }], isError: true };
    }
  });
  return server;
}

if (mode === "stdio") {
  await makeServer(process.env.DOCS_TOKEN).connect(new StdioServerTransport());
} else if (mode === "http") {
  const sessions = new Map();
  const httpServer = http.createServer(async (req, res) => {
    const raw = headerName === undefined
      ? (req.headers.authorization ?? "").replace(/^Bearer /, "")
      : req.headers[headerName.toLowerCase()];
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = text === "" ? undefined : JSON.parse(text);
    const id = req.headers["mcp-session-id"];
    let transport = id === undefined ? undefined : sessions.get(id);
    if (transport === undefined) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (session) => sessions.set(session, transport),
      });
      await makeServer(raw).connect(transport);
    }
    await transport.handleRequest(req, res, body);
  });
  httpServer.listen(0, "127.0.0.1", () => {
    const { port } = httpServer.address();
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/mcp` })}\n`);
  });
} else {
  process.stderr.write("usage: server.mjs stdio|http SHA256 [HEADER]\n");
  process.exit(2);
}
