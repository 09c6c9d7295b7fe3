/**
 * A node as seen from the wire, for tests of the node routes: its own identity and sealing keys, enrollment,
 * signed requests, and a snapshot stream whose events are collected as they arrive. No runtime, no
 * verification beyond what a test asks for: the point is to see exactly what the control plane sends.
 */
import { createParser } from 'eventsource-parser';
import { generateNodeIdentity, signNodeCredential, type NodeIdentityKey } from '../../data-plane/snapshot/node-credential.js';
import { generateNodeKeyPair, type NodeKeyPair } from '../../data-plane/snapshot/seal.js';
import { NODE_ENROLL_PATH, NODE_ID_HEADER, NODE_KEY_HEADER, NODE_STREAM_PATH } from '../../data-plane/snapshot/stream-protocol.js';

export interface StreamEvent {
  event: string;
  data: unknown;
}

export interface OpenStream {
  status: number;
  /** JSON error body when refused. */
  body: unknown;
  events: StreamEvent[];
  /** Resolves when the control plane ends the stream. */
  ended: Promise<void>;
  close(): void;
}

export interface RawNode {
  nodeId: string;
  identity: NodeIdentityKey;
  sealing: NodeKeyPair;
  enroll(token?: string): Promise<{ status: number; body: { status?: string; fingerprint?: string; type?: string } }>;
  headers(method: string, path: string): Promise<Record<string, string>>;
  stream(extraHeaders?: Record<string, string>): Promise<OpenStream>;
}

export async function rawNode(baseUrl: string, nodeId: string): Promise<RawNode> {
  const identity = await generateNodeIdentity();
  const sealing = await generateNodeKeyPair();
  const headers = async (method: string, path: string): Promise<Record<string, string>> => ({
    authorization: `Bearer ${await signNodeCredential(identity.privateJwk, { nodeId, method, path })}`,
    [NODE_ID_HEADER]: nodeId,
    [NODE_KEY_HEADER]: Buffer.from(JSON.stringify(sealing.publicJwk)).toString('base64url'),
  });
  return {
    nodeId,
    identity,
    sealing,
    headers,
    async enroll(token) {
      const res = await fetch(`${baseUrl}${NODE_ENROLL_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ nodeId, identityJwk: identity.publicJwk, sealingJwk: sealing.publicJwk }),
      });
      return { status: res.status, body: (await res.json()) as { status?: string; fingerprint?: string; type?: string } };
    },
    async stream(extraHeaders = {}) {
      const abort = new AbortController();
      const res = await fetch(`${baseUrl}${NODE_STREAM_PATH}`, { headers: { ...(await headers('GET', NODE_STREAM_PATH)), ...extraHeaders }, signal: abort.signal });
      const events: StreamEvent[] = [];
      if (!res.ok || !res.body) {
        return { status: res.status, body: await res.json().catch(() => null), events, ended: Promise.resolve(), close: () => undefined };
      }
      const parser = createParser({ onEvent: (e) => events.push({ event: e.event ?? 'message', data: JSON.parse(e.data) as unknown }) });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const ended = (async () => {
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) return;
            parser.feed(decoder.decode(value, { stream: true }));
          }
        } catch {
          // aborted
        }
      })();
      return { status: res.status, body: null, events, ended, close: () => abort.abort() };
    },
  };
}
