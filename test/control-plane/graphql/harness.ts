/**
 * In-process GraphQL harness (yoga.fetch, no socket): a migrated test database, a bootstrap ADMIN token,
 * a counter of onConfigChanged calls, and a record of every response body so a test can assert that a
 * secret never appeared in any of them.
 */
import { randomBytes } from 'node:crypto';
import { SecretBox } from '../../../control-plane/crypto/secret-box.js';
import type { Dialect } from '../../../control-plane/db/database.js';
import { GRAPHQL_ENDPOINT, createGraphQL } from '../../../control-plane/graphql/yoga.js';
import { ensureBootstrapAdminToken } from '../../../control-plane/repos/admin-tokens.js';
import { openTestDatabase, type TestDatabase } from '../../support/db.js';

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown>; path?: Array<string | number> }>;
}

export interface Harness {
  database: TestDatabase;
  box: SecretBox;
  adminToken: string;
  /** How many times the API asked for a snapshot publish. */
  configChanges: () => number;
  /** Every raw response body so far. */
  bodies: string[];
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<GraphQLResponse<T>>;
  fetch(init: RequestInit & { path?: string }): Promise<Response>;
  close(): Promise<void>;
}

export async function createHarness(dialect: Dialect): Promise<Harness> {
  const database = await openTestDatabase(dialect);
  const box = new SecretBox(randomBytes(32));
  let changes = 0;
  const yoga = createGraphQL({ db: database.db, box, onConfigChanged: () => void changes++ });
  const bootstrap = await ensureBootstrapAdminToken(database.db, undefined);
  if (!bootstrap.token) throw new Error('expected a generated bootstrap token');
  const adminToken = bootstrap.token;
  const bodies: string[] = [];

  const doFetch = async (init: RequestInit & { path?: string }) => {
    const response = await yoga.fetch(`http://gatehouse.test${init.path ?? GRAPHQL_ENDPOINT}`, init);
    return response;
  };

  return {
    database,
    box,
    adminToken,
    configChanges: () => changes,
    bodies,
    fetch: doFetch,
    async gql<T>(query: string, variables?: Record<string, unknown>, token: string | null = adminToken) {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const response = await doFetch({ method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const text = await response.text();
      bodies.push(text);
      const parsed = JSON.parse(text) as Omit<GraphQLResponse<T>, 'status'>;
      return { status: response.status, ...parsed };
    },
    close: () => database.close(),
  };
}

/** Fails the test with the whole response when a GraphQL call errored unexpectedly. */
export function dataOf<T>(response: GraphQLResponse<T>): T {
  if (response.errors?.length || !response.data) {
    throw new Error(`GraphQL call failed (HTTP ${response.status}): ${JSON.stringify(response.errors ?? response)}`);
  }
  return response.data;
}
