/**
 * Looking for a secret where it must not be: the answers a VIEWER admin token gets (a read-only token sees
 * every read an ADMIN does), and a whole snapshot as a node receives it (text and every base64url chunk
 * decoded, so a sealed value is told apart from one merely encoded).
 */
import { generateKeyPairSync } from 'node:crypto';
import type { JWK } from 'jose';
import type { Dialect } from '../../control-plane/db/database.js';
import { startTestControlPlane, type TestControlPlane } from './control-plane.js';
import { openTestDatabase, type TestDatabase } from './db.js';

export interface ViewerReads {
  /** Runs a query with a VIEWER token; the answer's body text. */
  read(query: string): Promise<string>;
  /** Every body `read` received. */
  responses: string[];
}

export async function viewerReads(cp: TestControlPlane): Promise<ViewerReads> {
  const token = (await cp.gql<{ createAdminToken: { token: string } }>('mutation { createAdminToken(input: {name: "reader", role: VIEWER}) { token } }')).createAdminToken.token;
  const responses: string[] = [];
  return {
    responses,
    async read(query) {
      const response = await fetch(`${cp.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query }),
      });
      const text = await response.text();
      responses.push(text);
      return text;
    },
  };
}

/** A whole snapshot for a throwaway node key: its text, and its base64url chunks decoded. */
export async function snapshotTexts(cp: TestControlPlane): Promise<{ text: string; decoded: string }> {
  const { publicKey } = generateKeyPairSync('x25519');
  const snapshot = await cp.cp.publisher.wholeSnapshot(publicKey.export({ format: 'jwk' }) as JWK);
  const text = snapshot.body.toString('utf8');
  const decoded = (text.match(/[A-Za-z0-9_-]{40,}/g) ?? []).map((chunk) => Buffer.from(chunk, 'base64url').toString('utf8')).join('\n');
  return { text, decoded };
}

/** A control plane on `dialect` (PostgreSQL: a schema of its own) and a VIEWER reader of it; close() ends both. */
export async function startSecretsControlPlane(dialect: Dialect): Promise<{ cp: TestControlPlane; viewer: ViewerReads; close(): Promise<void> }> {
  let testDb: TestDatabase | undefined;
  if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
  const cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
  return {
    cp,
    viewer: await viewerReads(cp),
    async close() {
      await cp.close();
      await testDb?.close();
    },
  };
}

/** Throws unless none of `secrets` is in any answer the control plane gave (ADMIN's and VIEWER's) or in its log. */
export function expectNoSecretIn(cp: TestControlPlane, viewer: ViewerReads, secrets: readonly string[]): void {
  const answers = [...cp.responses, ...viewer.responses];
  const logs = cp.logs.text();
  for (const secret of secrets) {
    const where = answers.some((body) => body.includes(secret)) ? 'an answer' : logs.includes(secret) ? 'the log' : null;
    if (where !== null) throw new Error(`a secret (${secret.slice(0, 4)}…) is in ${where}`);
  }
}
