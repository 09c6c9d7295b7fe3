/**
 * The fan-out simulator (issue 11): N lightweight verifying nodes in one process, each with a real SSE
 * stream to the control plane. Each verifies every snapshot's and delta's Ed25519 signature and the version
 * chain (a delta must start at the version the client holds), and records when it verified each version.
 * It builds no runtime and opens no secret: what is measured is the control plane's fan-out and the wire.
 *
 * Driven over IPC by bench/scale.ts: `ready` once every client holds a snapshot (with the lowest version
 * held); `expect {version}` answers `verified {version, firstAt, lastAt, chainErrors}` once all hold it.
 */
import { createParser } from 'eventsource-parser';
import { ed25519PublicKey, verifyFlattened } from '../../data-plane/snapshot/jws.js';
import { generateNodeKeyPair } from '../../data-plane/snapshot/seal.js';
import { DELTA_EVENT, NODE_ID_HEADER, NODE_KEY_HEADER, NODE_STREAM_PATH, SNAPSHOT_EVENT } from '../../data-plane/snapshot/stream-protocol.js';

const [url, token, countText] = process.argv.slice(2);
if (!url || !token || !countText) throw new Error('usage: fanout.ts URL NODE_TOKEN COUNT');
const count = Number(countText);
const epochMs = (): number => performance.timeOrigin + performance.now();

const jwks = (await (await fetch(`${url}/nodes/jwks`, { headers: { authorization: `Bearer ${token}`, [NODE_ID_HEADER]: 'fanout-jwks' } })).json()) as { keys: Array<{ kid: string; x: string }> };
const keys = new Map(jwks.keys.map((k) => [k.kid, ed25519PublicKey(k)]));
// One sealing key for all: the clients never open a secret, and wrapping per node is the control plane's cost.
const sealing = Buffer.from(JSON.stringify((await generateNodeKeyPair()).publicJwk)).toString('base64url');

interface Client {
  version: number | null;
}
const clients: Client[] = [];
const verified = new Map<number, number[]>();
let chainErrors = 0;
let expecting: number | null = null;

function verify(signed: { protected: string; payload: string; signature: string }): { version: number; baseVersion?: number } | null {
  const header = JSON.parse(Buffer.from(signed.protected, 'base64url').toString('utf8')) as { kid?: string };
  const key = header.kid ? keys.get(header.kid) : undefined;
  const payload = key ? verifyFlattened(signed, key) : null;
  if (!payload) return null;
  // Only the fields the chain needs: parse the head of the payload, not 100,000 keys.
  const text = payload.subarray(0, 400).toString('utf8');
  const version = Number(/"version":(\d+)/.exec(text)?.[1]);
  const base = /"baseVersion":(\d+)/.exec(text)?.[1];
  return { version, ...(base !== undefined ? { baseVersion: Number(base) } : {}) };
}

function record(client: Client, version: number): void {
  client.version = version;
  const list = verified.get(version) ?? [];
  list.push(epochMs());
  verified.set(version, list);
  check();
}

function check(): void {
  if (expecting === null) return;
  const list = verified.get(expecting) ?? [];
  if (list.length < count) return;
  process.send?.({ type: 'verified', version: expecting, firstAt: Math.min(...list), lastAt: Math.max(...list), chainErrors });
  expecting = null;
}

async function open(i: number): Promise<void> {
  const client: Client = { version: null };
  clients.push(client);
  const res = await fetch(`${url}${NODE_STREAM_PATH}`, {
    headers: { authorization: `Bearer ${token}`, [NODE_ID_HEADER]: `fanout-${i}`, [NODE_KEY_HEADER]: sealing, accept: 'text/event-stream' },
  });
  if (!res.ok || !res.body) throw new Error(`stream ${i}: HTTP ${res.status}`);
  const parser = createParser({
    onEvent: (event) => {
      const body = JSON.parse(event.data) as { snapshot?: never; delta?: never };
      const signed = event.event === SNAPSHOT_EVENT ? body.snapshot : event.event === DELTA_EVENT ? body.delta : undefined;
      if (!signed) return;
      const v = verify(signed);
      if (!v) {
        chainErrors++;
        return;
      }
      if (v.baseVersion !== undefined && v.baseVersion !== client.version) {
        chainErrors++; // a gap: a real node would reconnect
        return;
      }
      record(client, v.version);
    },
  });
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
  })().catch(() => undefined);
}

// Open in batches, so the control plane's accept queue is not the thing measured.
for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => open(i + j)));
const ready = setInterval(() => {
  if (clients.every((c) => c.version !== null)) {
    clearInterval(ready);
    process.send?.({ type: 'ready', minVersion: Math.min(...clients.map((c) => c.version ?? 0)) });
  }
}, 50);
process.on('message', (message: { type?: string; version?: number }) => {
  if (message.type === 'expect' && typeof message.version === 'number') {
    expecting = message.version;
    check();
  } else if (message.type === 'status') {
    process.send?.({ type: 'status', minVersion: Math.min(...clients.map((c) => c.version ?? 0)) });
  }
});
process.on('disconnect', () => process.exit(0));
