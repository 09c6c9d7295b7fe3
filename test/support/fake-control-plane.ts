/**
 * A hand-driven control plane for testing how a node treats what it receives: it speaks the real node
 * stream protocol (SSE + reports) but sends whatever envelopes the test hands it, including forged ones.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import type { DeltaEnvelope, SnapshotEnvelope } from '../../data-plane/snapshot/schema.js';
import { NODE_KEY_HEADER, type NodeReport } from '../../data-plane/snapshot/stream-protocol.js';

export interface FakeControlPlane {
  url: string;
  reports: NodeReport[];
  /** The X25519 public key of the most recently connected node (to wrap data keys for it). */
  nodeKey(): JWK | null;
  connected(): boolean;
  /** How many times a node has opened the stream. */
  connections(): number;
  push(envelope: SnapshotEnvelope | Record<string, unknown>): void;
  pushDelta(envelope: DeltaEnvelope): void;
  close(): Promise<void>;
}

export async function startFakeControlPlane(nodeToken: string): Promise<FakeControlPlane> {
  const reports: NodeReport[] = [];
  let stream: ServerResponse | null = null;
  let key: JWK | null = null;
  let connections = 0;
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${nodeToken}`) {
      res.writeHead(401).end();
      return;
    }
    if (req.url === '/nodes/stream') {
      key = JSON.parse(Buffer.from(String(req.headers[NODE_KEY_HEADER]), 'base64url').toString('utf8')) as JWK;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      stream = res;
      connections++;
      req.on('close', () => {
        if (stream === res) stream = null;
      });
      return;
    }
    if (req.url === '/nodes/report') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        reports.push(JSON.parse(body) as NodeReport);
        res.writeHead(204).end();
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    reports,
    nodeKey: () => key,
    connected: () => stream !== null,
    connections: () => connections,
    push(envelope) {
      if (!stream) throw new Error('no node connected');
      stream.write(`event: snapshot\ndata: ${JSON.stringify(envelope)}\n\n`);
    },
    pushDelta(envelope) {
      if (!stream) throw new Error('no node connected');
      stream.write(`event: delta\ndata: ${JSON.stringify(envelope)}\n\n`);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
