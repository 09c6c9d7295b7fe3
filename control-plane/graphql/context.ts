/**
 * The per-request GraphQL context, and authentication of the caller: `Authorization: Bearer <admin token>`
 * verified against admin_tokens before anything else runs (a missing or bad token is a 401 for every
 * operation, introspection included). Role checks happen later, in scope-auth (builder.ts).
 */
import type { Kysely } from 'kysely';
import type { PublicJwk } from '../../data-plane/snapshot/schema.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Database } from '../db/schema.js';
import type { OAuthService } from '../oauth/service.js';
import type { AdminPrincipal } from '../repos/admin-tokens.js';
import { authenticateRequest } from './admin-auth.js';
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
  /** What verifyAuditChain checks checkpoints against (the signing keys the control plane trusts). */
  audit?: { trustedKeys: readonly PublicJwk[] };
  /** Upstream OAuth (startServerOAuth); absent in harnesses that do not exercise it. */
  oauth?: OAuthService;
}

export interface GraphQLContext {
  db: Kysely<Database>;
  box: SecretBox;
  principal: AdminPrincipal;
  loaders: Loaders;
  logger: GraphQLLogger;
  auditTrustedKeys: readonly PublicJwk[];
  oauth: OAuthService | null;
  /** Wraps deps.onConfigChanged so a failing listener cannot fail a mutation that already committed. */
  configChanged(): void;
}

export { parseBearer } from './admin-auth.js';

export async function buildContext(deps: GraphQLDeps, logger: GraphQLLogger, request: Request): Promise<GraphQLContext> {
  // Normally already verified by adminAuthPlugin (before parsing); this reuses its answer.
  const principal = await authenticateRequest(deps.db, request);
  return {
    db: deps.db,
    box: deps.box,
    principal,
    loaders: createLoaders(deps.db),
    logger,
    auditTrustedKeys: deps.audit?.trustedKeys ?? [],
    oauth: deps.oauth ?? null,
    configChanged() {
      try {
        deps.onConfigChanged();
      } catch (error) {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'onConfigChanged listener failed');
      }
    },
  };
}
