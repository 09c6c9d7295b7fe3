/**
 * `gatehouse apply -f FILE [--dry-run] [--prune]` and `gatehouse export [--format yaml|json] [-o FILE]`:
 * whole configurations as documents (JSON or YAML; the article's snake_case or Gatehouse's camelCase).
 * The control plane validates and plans; this module reads files, prints the plan, and prints the values
 * of keys that apply created, once.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ConfigChange, UserError } from '../../client.js';
import { clean } from '../../format.js';
import { EXIT_FAILED, EXIT_OK, printJson, printWarnings, UsageError, type Command } from '../command.js';
import { readDocumentFile } from '../input-file.js';

const SIGN: Record<ConfigChange['action'], string> = { CREATE: '+', UPDATE: '~', DELETE: '-', REVOKE: '!' };
const KIND: Record<ConfigChange['kind'], string> = { MCP_SERVER: 'mcp_server', USER: 'user', VIRTUAL_KEY: 'virtual_key', ACCESS_PROFILE: 'access_profile', PROVIDER: 'provider' };

/** `document.mcp_servers[0].name` → `mcp_servers[0].name`: paths are printed relative to the file. */
function inFile(field: string | null): string {
  return field === null || field === 'document' ? '(document)' : field.replace(/^document\./, '');
}

function changeText(c: ConfigChange): string {
  // Each line is cleaned on its own: names and values come from the document and the server.
  const lines = [clean(`${SIGN[c.action]} ${c.action.toLowerCase()} ${KIND[c.kind]} ${c.name}${c.path ? `  (${c.path})` : ''}`)];
  for (const f of c.fields) {
    const value = c.action === 'CREATE' ? (f.after ?? '-') : c.action === 'DELETE' ? (f.before ?? '-') : `${f.before ?? '-'} → ${f.after ?? '-'}`;
    lines.push(`    ${clean(`${f.field}: ${value}`)}`);
  }
  return `${lines.join('\n')}\n`;
}

function errorLines(file: string, errors: readonly UserError[]): string {
  return errors.map((e) => `${clean(file)}: ${clean(inFile(e.field))}: ${clean(e.message)} (${e.code})\n`).join('');
}

export const configCommands: readonly Command[] = [
  {
    group: null,
    action: 'apply',
    args: [],
    options: {
      file: { type: 'string', short: 'f', placeholder: 'FILE' },
      'dry-run': { type: 'boolean' },
      prune: { type: 'boolean' },
    },
    required: ['file'],
    synopsis: '--file FILE [--dry-run] [--prune]',
    summary: 'Make the configuration match FILE (JSON or YAML; "-" reads stdin); --dry-run prints the plan only',
    async run(ctx) {
      const file = ctx.string('file') ?? '';
      const document = await readDocumentFile(file, ctx.io);
      const dryRun = ctx.flag('dry-run');
      const payload = await ctx.client.applyConfig(document, { dryRun, prune: ctx.flag('prune') });
      const label = file === '-' ? 'stdin' : file;
      if (ctx.json) printJson(ctx, payload);
      if (payload.errors.length > 0) {
        ctx.err(errorLines(label, payload.errors));
        ctx.err(`${payload.errors.length} problem(s) in ${clean(label)}: nothing was applied\n`);
        return EXIT_FAILED;
      }
      printWarnings(ctx, payload.warnings.map((w) => ({ ...w, field: inFile(w.field) })));
      if (ctx.json) return EXIT_OK;
      for (const change of payload.changes) ctx.out(changeText(change));
      const n = payload.changes.length;
      if (n === 0) ctx.out(`no changes: the control plane already matches ${clean(label)}\n`);
      else if (dryRun) ctx.out(`${n} change(s) planned; dry run: nothing was applied\n`);
      else ctx.out(`${n} change(s) applied (config version ${payload.configVersion ?? '?'})\n`);
      if (payload.keys.length > 0) {
        ctx.out('\nNew virtual keys (shown only this once: store them now):\n');
        for (const k of payload.keys) ctx.out(`${clean(k.user)}/${clean(k.name)}  ${k.key}\n`);
      }
      return EXIT_OK;
    },
  },
  {
    group: null,
    action: 'export',
    args: [],
    options: {
      format: { type: 'string', placeholder: 'yaml|json' },
      output: { type: 'string', short: 'o', placeholder: 'FILE' },
    },
    synopsis: '[--format yaml|json] [--output FILE]',
    summary: 'Write the configuration as a document for apply (secrets as references only)',
    async run(ctx) {
      const format = ctx.json ? 'json' : (ctx.string('format') ?? 'yaml').toLowerCase();
      if (format !== 'yaml' && format !== 'json') throw new UsageError(`--format must be yaml or json, not ${JSON.stringify(format)}`);
      const document = await ctx.client.exportConfig();
      let text: string;
      if (format === 'json') text = `${JSON.stringify(document, null, 2)}\n`;
      else {
        const { stringify } = await import('yaml');
        text = stringify(document);
      }
      const output = ctx.string('output');
      if (output === undefined) {
        ctx.out(text);
        return EXIT_OK;
      }
      await writeFile(resolve(ctx.io.cwd ?? process.cwd(), output), text);
      ctx.err(`wrote ${clean(output)}\n`);
      return EXIT_OK;
    },
  },
];
