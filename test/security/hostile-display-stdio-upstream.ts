/**
 * `hostile-display-upstream.ts`'s server over stdio, for the pooled routes.
 * Run with: node --import tsx test/security/hostile-display-stdio-upstream.ts
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { buildHostileDisplayServer } from './hostile-display-upstream.js';

await buildHostileDisplayServer(true).connect(new StdioServerTransport());
