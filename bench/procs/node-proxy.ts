/**
 * Informational baseline: the least a Node.js proxy can do for one `/mcp` POST on this machine. node:http
 * server, body read whole, forwarded through an undici `Pool` (keep-alive, like the gateway's upstream
 * client) and the upstream's answer written back. No authentication, no JSON parsing, no MCP: the
 * distance between this and nginx is what the platform costs; the distance between this and Gatehouse is
 * what Gatehouse's own hot path costs.
 *
 * Usage: node --import tsx bench/procs/node-proxy.ts <upstream origin>. Prints `{"ready":true,"port":N}`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const upstream = process.argv[2];
if (!upstream) throw new Error('usage: node-proxy.ts <upstream origin>');
const pool = new Pool(upstream, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000 });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    pool
      .request({
        path: req.url ?? '/',
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks),
      })
      .then(async (up) => {
        const body = Buffer.from(await up.body.arrayBuffer());
        res.writeHead(up.statusCode, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
      });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: true, port: (server.address() as AddressInfo).port }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
