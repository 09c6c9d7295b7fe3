/**
 * `gatehouse login [--url URL]` and `gatehouse logout`: keep the control plane's URL and an admin token
 * in the user's owner-only credentials file (see credentials.ts), so later commands need no environment.
 * The token is read from stdin (typed without echo at a terminal), never from a flag; login checks it
 * against the control plane before saving it. `GATEHOUSE_URL` / `GATEHOUSE_ADMIN_TOKEN` still win.
 */
import { createGatehouseClient } from '../../client.js';
import { clean } from '../../format.js';
import { EXIT_OK, UsageError, type CliIO, type Command } from '../command.js';
import { DEFAULT_URL, readCredentials, removeCredentials, writeCredentials } from '../credentials.js';

/** A terminal's stdin, for reading the token without echoing it. */
interface TerminalInput {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

async function readHidden(input: TerminalInput, prompt: (text: string) => void): Promise<string> {
  prompt('Admin token (input hidden): ');
  input.setRawMode?.(true);
  input.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new UsageError('interrupted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = () => {
      input.off('data', onData);
      input.setRawMode?.(false);
      input.pause();
      prompt('\n');
    };
    input.on('data', onData);
  });
}

async function readToken(io: CliIO, prompt: (text: string) => void): Promise<string> {
  const stdin = io.stdin ?? process.stdin;
  if (stdin.isTTY && stdin === process.stdin) return (await readHidden(process.stdin, prompt)).trim();
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
  chunks.push(decoder.decode());
  return (chunks.join('').split(/\r?\n/)[0] ?? '').trim();
}

export const sessionCommands: readonly Command[] = [
  {
    group: null,
    action: 'login',
    args: [],
    options: { url: { type: 'string', placeholder: 'URL' } },
    synopsis: '[--url URL]',
    summary: 'Check an admin token (read from stdin, hidden at a terminal) and save it with the URL for later commands',
    offline: true,
    async run(ctx) {
      const url = ctx.string('url')?.trim() || ctx.io.env.GATEHOUSE_URL?.trim() || (await readCredentials(ctx.io))?.url || DEFAULT_URL;
      const token = await readToken(ctx.io, (text) => ctx.err(text));
      if (token === '') throw new UsageError('no admin token on stdin (e.g. echo "$TOKEN" | gatehouse login --url URL)');
      let client;
      try {
        client = createGatehouseClient({ url, adminToken: token, ...(ctx.io.fetch ? { fetch: ctx.io.fetch } : {}) });
      } catch (error) {
        throw new UsageError(`--url: ${error instanceof Error ? error.message : String(error)}`);
      }
      // Fails (UNAUTHENTICATED, NETWORK) before anything is saved.
      const viewer = await client.viewer();
      const path = await writeCredentials(ctx.io, { url: client.endpoint.replace(/\/graphql$/, ''), adminToken: token });
      ctx.out(`logged in to ${clean(url)} as ${clean(viewer.name)} (${viewer.role}); saved to ${clean(path)}\n`);
      if (ctx.io.env.GATEHOUSE_ADMIN_TOKEN?.trim()) ctx.err('note: GATEHOUSE_ADMIN_TOKEN is set in this environment and takes precedence over the saved token\n');
      return EXIT_OK;
    },
  },
  {
    group: null,
    action: 'logout',
    args: [],
    synopsis: '',
    summary: 'Remove the saved URL and admin token',
    offline: true,
    async run(ctx) {
      const removed = await removeCredentials(ctx.io);
      ctx.out(removed ? `removed ${clean(removed)}\n` : 'not logged in\n');
      return EXIT_OK;
    },
  },
];
