/**
 * The assembled GraphQL schema: imports each domain module (each registers its types on the builder)
 * and builds once. Exports the schema only; print-schema.ts writes it to control-plane/schema.graphql.
 */
import { builder } from './builder.js';
import './schema/common.js';
import './schema/mcp-servers.js';
import './schema/users.js';
import './schema/virtual-keys.js';
import './schema/admin-tokens.js';
import './schema/nodes.js';
import './schema/config.js';
import './schema/session-secrets.js';
import './schema/audit.js';
import './schema/oauth.js';
import './schema/access-profiles.js';
import './schema/providers.js';
import './schema/spend.js';
import './schema/tool-pricing.js';

export const schema = builder.toSchema();
