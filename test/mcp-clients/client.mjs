// A real MCP client (the official TypeScript SDK) driving codingbrain over
// one transport with a bearer token, asserting what comes back:
//
//   node client.mjs http  http://127.0.0.1:8765/mcp     (Streamable HTTP)
//   node client.mjs sse   http://127.0.0.1:8765/sse     (legacy HTTP+SSE)
//   node client.mjs stdio /path/to/codingbrain [args…]  (spawns `codingbrain mcp`)
//
// The token is read from CODINGBRAIN_TOKEN; over stdio the spawned process
// reads it from the same variable. Prints one line per check and a total;
// exits 1 on the first failed check.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [kind, target, ...rest] = process.argv.slice(2);
const token = process.env.CODINGBRAIN_TOKEN;
if (!kind || !target || !token) {
  console.error("usage: CODINGBRAIN_TOKEN=… node client.mjs http|sse|stdio URL|BINARY [args…]");
  process.exit(2);
}

let transport;
const auth = { headers: { Authorization: `Bearer ${token}` } };
switch (kind) {
  case "http":
    transport = new StreamableHTTPClientTransport(new URL(target), { requestInit: auth });
    break;
  case "sse":
    transport = new SSEClientTransport(new URL(target), { requestInit: auth });
    break;
  case "stdio":
    transport = new StdioClientTransport({
      command: target,
      args: ["mcp", ...rest],
      env: { ...process.env, CODINGBRAIN_TOKEN: token },
      stderr: "inherit",
    });
    break;
  default:
    console.error(`unknown transport ${kind}: use http, sse or stdio`);
    process.exit(2);
}

let passed = 0;
function check(name, ok, got) {
  if (!ok) {
    console.log(`FAIL ${kind}: ${name}: got ${JSON.stringify(got)}`);
    process.exit(1);
  }
  passed++;
  console.log(`ok   ${kind}: ${name}`);
}

const client = new Client({ name: "ts-sdk-check", version: "1.0.0" });
await client.connect(transport);
const call = async (name, args) => client.callTool({ name, arguments: args });

const { tools } = await client.listTools();
const names = tools.map((t) => t.name);
for (const want of ["add_memories", "search_memory", "get_memory", "update_memory", "delete_memories", "list_memories"]) {
  check(`tools/list has ${want}`, names.includes(want), names);
}
check("tools carry output schemas", tools.find((t) => t.name === "get_memory")?.outputSchema?.type === "object", tools[0]);

const marker = `ts-${kind}-${process.pid}`;
const content = `The ${marker} service retries idempotent requests three times with jittered backoff.`;
let res = await call("add_memories", {
  memories: [{ content, category: "convention", entity: marker, evidence: ["ADR-7"] }],
});
const added = res.structuredContent?.results?.[0];
check("add_memories created", !res.isError && added?.status === "created" && typeof added.id === "string", res);
const id = added.id;

res = await call("search_memory", { query: `${marker} retries backoff` });
const hit = res.structuredContent?.results?.find((r) => r.id === id);
check("search_memory finds it", !res.isError && hit?.content === content && hit?.category === "convention", res.structuredContent);
check("search results are compact", hit && hit.evidence === undefined && hit.created_at === undefined, hit);

res = await call("get_memory", { id });
check("get_memory returns every field", !res.isError && res.structuredContent?.content === content &&
  res.structuredContent?.entity === marker && res.structuredContent?.evidence?.[0] === "ADR-7" &&
  res.structuredContent?.state === "active", res.structuredContent);

const read = await client.readResource({ uri: `memory://${id}` });
check("resources/read memory://id", JSON.parse(read.contents[0].text).content === content, read);

const prompt = await client.getPrompt({ name: "project_context", arguments: { entity: marker } });
check("prompt project_context lists it", prompt.messages[0].content.text.includes(content) &&
  prompt.messages[0].content.text.includes(`memory://${id}`), prompt.messages[0]);

const updated = `The ${marker} service retries idempotent requests five times with jittered backoff.`;
res = await call("update_memory", { id, content: updated });
check("update_memory returns the new content", !res.isError && res.structuredContent?.content === updated, res);

res = await call("get_memory", { id });
check("get_memory sees the update", res.structuredContent?.content === updated, res.structuredContent);

res = await call("delete_memories", { ids: [id] });
check("delete_memories deleted", !res.isError && res.structuredContent?.results?.[0]?.status === "deleted", res);

res = await call("get_memory", { id });
check("get_memory after delete is a tool error naming the id", res.isError === true && res.content[0].text.includes(id), res);

res = await call("update_memory", { id: "" });
check("a bad argument names the field", res.isError === true && res.content[0].text.includes('"id"'), res);

await client.close();
console.log(`${kind}: ${passed} passed, 0 failed`);
