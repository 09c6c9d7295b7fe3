/**
 * The per-request GraphQL context, and authentication of the caller: `Authorization: Bearer <admin token>`
 * verified against admin_tokens before anything else runs (a missing or bad token is a 401 for every
 * operation, introspection included). Role checks happen later, in scope-auth (builder.ts).
 */
import type { Kysely } from 'kysely';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Database } from '../db/schema.js';
import { authenticateAdminToken, type AdminPrincipal } from '../repos/admin-tokens.js';
import { unauthenticated } from './errors.js';
import { createLoaders, type Loaders } from './loaders.js';

/** The logging the API needs; a pino logger fits. Never pass a secret value in `fields`. */
export interface GraphQLLogger {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

export interface GraphQLDeps {
  db: Kysely<Database>;
  box: SecretBox;
  /** Called after a committed mutation changed the config version, to publish a new snapshot. */
  onConfigChanged: () => void;
  logger?: GraphQLLogger;
}

export interface GraphQLContext {
  db: Kysely<Database>;
  box: SecretBox;
  principal: AdminPrincipal;
  loaders: Loaders;
  logger: GraphQLLogger;
  /** Wraps deps.onConfigChanged so a failing listener cannot fail a mutation that already committed. */
  configChanged(): void;
}

/** `Bearer <token>` → token (RFC 6750 §2.1); anything else → null. */
export function parseBearer(header: string | null): string | null {
  const match = header === null ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

export async function buildContext(deps: GraphQLDeps, logger: GraphQLLogger, request: Request): Promise<GraphQLContext> {
  const presented = parseBearer(request.headers.get('authorization'));
  if (presented === null) throw unauthenticated('an admin token is required: send Authorization: Bearer <token>');
  const principal = await authenticateAdminToken(deps.db, presented);
  if (!principal) throw unauthenticated('the admin token is not valid or has been revoked');
  return {
    db: deps.db,
    box: deps.box,
    principal,
    loaders: createLoaders(deps.db),
    logger,
    configChanged() {
      try {
        deps.onConfigChanged();
      } catch (error) {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'onConfigChanged listener failed');
      }
    },
  };
}
