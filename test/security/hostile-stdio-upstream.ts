/**
 * `hostile-upstream.ts`'s server over stdio, for the pooled routes. argv[2] is its label.
 * Run with: node --import tsx test/security/hostile-stdio-upstream.ts [label]
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { buildHostileServer } from './hostile-upstream.js';

await buildHostileServer(process.argv[2] ?? 'stdio').connect(new StdioServerTransport());
