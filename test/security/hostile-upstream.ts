/**
 * An MCP upstream (the SDK's own `McpServer`) that puts terminal escapes and bidi overrides into everything
 * it says about itself (server info, instructions) and lists: tool titles, annotation titles, descriptions and schema descriptions, prompt names, titles,
 * descriptions and argument names, resource and template URIs, names, titles, descriptions and MIME types.
 * Served over stateless Streamable HTTP (`startHostileHttpUpstream`) or stdio (`hostile-stdio-upstream.ts`).
 * Beside the hostile entries it lists ordinary ones (`echo`), so a test can tell a list was served at all.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { closeServer, listen } from '../support/upstreams.js';

/** Clears the screen and turns text red in a terminal that prints it. */
export const ANSI = '\u001b[2J\u001b[31m';
/** Right-to-left override: `exe.txt` reads as `txt.exe`. */
export const BIDI = '\u202E';
export const ZERO_WIDTH = '\u200B';

/** Entries whose identifying name, URI, argument name or schema key is hostile: each must be left out. */
export const DROPPED = {
  tools: [`bad${ANSI}name`, 'keyed'],
  prompts: [`greet${ANSI}`, 'argbad'],
  resources: [`mem://evil${BIDI}txt`, 'mem://badname'],
  resourceTemplates: [`mem://evil${ANSI}/{id}`],
} as const;

export function buildHostileServer(label: string, quiet = false): McpServer {
  const server = new McpServer(
    { name: `hostile-${label}${BIDI}`, version: `1.0${ANSI}` },
    { capabilities: { tools: {}, prompts: {}, resources: {} }, instructions: `Use these tools${ANSI}\nfirst${ZERO_WIDTH}` },
  );
  const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });
  server.registerTool('echo', { description: 'echoes', inputSchema: { text: z.string() } }, ({ text: t }) => text(`${label}:${t}`));
  server.registerTool(
    'poisoned',
    {
      title: `Title${ANSI}`,
      description: `line one\nline two${ANSI}\ttab ${BIDI}gnp.exe${ZERO_WIDTH}`,
      inputSchema: { path: z.string().describe(`Path${ANSI}\nmore`).optional() },
      outputSchema: { out: z.string().describe(`Out${ZERO_WIDTH}`) },
      annotations: { title: `Ann${BIDI}x`, readOnlyHint: true },
    },
    () => ({ ...text('ok'), structuredContent: { out: 'ok' } }),
  );
  // The SDK warns of the name on the console: in the test's own process (HTTP) that is only noise; over
  // stdio it goes to stderr, which the node logs (and must log without the escape).
  const warn = console.warn;
  if (quiet) console.warn = () => undefined;
  try {
    server.registerTool(DROPPED.tools[0], { description: 'a name with an escape' }, () => text('bad'));
  } finally {
    console.warn = warn;
  }
  // A parameter named with an escape: the client shows and sends that name, so the tool cannot be served.
  server.registerTool('keyed', { description: 'keyed', inputSchema: { [`a${ANSI}`]: z.string() } }, () => text('keyed'));

  const messages = (value: string) => ({ messages: [{ role: 'user' as const, content: { type: 'text' as const, text: value } }] });
  server.registerPrompt('welcome', { title: `Welcome${BIDI}`, description: `Says hi${ANSI}\nsecond`, argsSchema: { name: z.string().describe(`Name${ZERO_WIDTH}`) } }, ({ name }) =>
    messages(`hi ${name}`),
  );
  server.registerPrompt(DROPPED.prompts[0], { description: 'a name with an escape' }, () => messages('bad'));
  server.registerPrompt('argbad', { description: 'an argument named with an override', argsSchema: { [`n${BIDI}`]: z.string() } }, () => messages('bad'));

  const contents = (uri: URL) => ({ contents: [{ uri: uri.href, text: label }] });
  server.registerResource('note', 'mem://note', { title: `Note${ANSI}`, description: `A note${BIDI}\nsecond`, mimeType: `text/plain${ANSI}` }, contents);
  server.registerResource('evil', DROPPED.resources[0], { description: 'a URI with an override' }, contents);
  server.registerResource(`bad${ANSI}name`, DROPPED.resources[1], { description: 'a name with an escape' }, contents);
  server.registerResource('items', new ResourceTemplate('mem://items/{id}', { list: undefined }), { title: `Items${ZERO_WIDTH}`, description: `Items${ANSI}` }, contents);
  server.registerResource('evil-items', new ResourceTemplate(DROPPED.resourceTemplates[0], { list: undefined }), { description: 'a template with an escape' }, contents);
  return server;
}

export interface HostileUpstream {
  url: string;
  close(): Promise<void>;
}

/** Stateless Streamable HTTP at `/mcp` (a server and transport per request, as the SDK's stateless example). */
export async function startHostileHttpUpstream(label = 'http'): Promise<HostileUpstream> {
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const server = buildHostileServer(label, true);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => void server.close().catch(() => undefined));
      await server.connect(transport);
      await transport.handleRequest(req, res, JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  const port = await listen(http, 0);
  return { url: `http://127.0.0.1:${port}/mcp`, close: () => closeServer(http) };
}

const STDIO_ENTRY = fileURLToPath(new URL('./hostile-stdio-upstream.ts', import.meta.url));
const TSX_LOADER = fileURLToPath(new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url));

/** The command line of the same upstream over stdio. */
export function hostileStdioCommand(label = 'stdio'): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', new URL(`file://${TSX_LOADER}`).href, STDIO_ENTRY, label] };
}

/** Every string in `value` (keys too) that holds a character `pattern` finds, with where it is: what reached a client. */
export function offending(value: unknown, pattern: RegExp, at = '$'): string[] {
  if (typeof value === 'string') return pattern.test(value) ? [`${at}: ${JSON.stringify(value)}`] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => offending(item, pattern, `${at}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => [...(pattern.test(k) ? [`${at} key ${JSON.stringify(k)}`] : []), ...offending(v, pattern, `${at}.${k}`)]);
  }
  return [];
}
