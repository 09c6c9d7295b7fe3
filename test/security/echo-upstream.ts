/**
 * A raw MCP upstream (node:http) for the echo probes: it answers `initialize` and `tools/list` (the given
 * tools) itself and hands each `tools/call` to the test with what the gateway injected (`echo`: the
 * request's Authorization and X-Api-Key), so the test writes the answer's bytes exactly as it means to.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { closeServer, listen } from '../support/upstreams.js';

export type EchoAnswer = (res: ServerResponse, tool: string, id: unknown, echo: string) => void;

export interface EchoUpstream {
  url: string;
  close(): Promise<void>;
}

export async function startEchoUpstream(answer: EchoAnswer, tools: readonly string[] = []): Promise<EchoUpstream> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const message = (text === '' ? {} : JSON.parse(text)) as { id?: unknown; method?: string; params?: { name?: string } };
      if (message.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      if (message.method !== 'tools/call') {
        const result =
          message.method === 'initialize'
            ? { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'echo', version: '1' } }
            : { tools: tools.map((name) => ({ name, inputSchema: { type: 'object' } })) };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
        return;
      }
      const echo = `authorization '${String(req.headers.authorization)}' key ${String(req.headers['x-api-key'])}`;
      answer(res, message.params?.name ?? '', message.id, echo);
    });
  });
  const port = await listen(server, 0);
  return { url: `http://127.0.0.1:${port}/mcp`, close: () => closeServer(server) };
}

/** Writes `parts` one write each, the next once the previous has left (so the node sees them apart). */
export function writeParts(res: ServerResponse, parts: readonly string[]): void {
  const next = (i: number): void => {
    if (i === parts.length) {
      res.end();
      return;
    }
    res.write(parts[i], () => setImmediate(() => next(i + 1)));
  };
  next(0);
}

export interface EchoNode {
  node: TestNode;
  snapshot: BuiltSnapshot;
  close(): Promise<void>;
}

/** A test node in front of an echo upstream `crm` configured with `Authorization: Bearer <token>` and `X-Api-Key` (both sealed), key `dev` granted every tool. */
export async function startEchoNode(answer: EchoAnswer, secrets: { token: string; apiKey: string }, tools: readonly string[] = []): Promise<EchoNode> {
  const upstream = await startEchoUpstream(answer, tools);
  const node = await startTestNode();
  const snapshot = await buildSnapshot({
    servers: [{ name: 'crm', url: upstream.url, headers: { Authorization: { secret: `Bearer ${secrets.token}` }, 'X-Api-Key': { secret: secrets.apiKey } } }],
    keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
  });
  node.apply(snapshot);
  return {
    node,
    snapshot,
    close: async () => {
      await node.close();
      await upstream.close();
    },
  };
}
