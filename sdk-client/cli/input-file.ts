/**
 * Reading a document the CLI sends: a file (or `-` for stdin) holding JSON or YAML (`.json` files are read
 * as JSON for its sharper error messages; anything else with the `yaml` package, which reads JSON too).
 * Problems are usage errors naming the file and, for YAML, the line. It does not validate the content
 * (the control plane does, by JSON path).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError, type CliIO } from './command.js';

async function readText(file: string, io: CliIO): Promise<string> {
  if (file === '-') {
    const stdin = io.stdin ?? process.stdin;
    const chunks: string[] = [];
    const decoder = new TextDecoder();
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    chunks.push(decoder.decode());
    return chunks.join('');
  }
  try {
    return await readFile(resolve(io.cwd ?? process.cwd(), file), 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new UsageError(`cannot read ${file}: ${typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)}`);
  }
}

/** The parsed content of FILE. */
export async function readDocumentFile(file: string, io: CliIO): Promise<unknown> {
  const text = (await readText(file, io)).replace(/^\uFEFF/, '');
  const label = file === '-' ? 'stdin' : file;
  if (/\.json$/i.test(file)) {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new UsageError(`${label} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  // Loaded only for YAML, so commands that never read one do not pay for parsing the library.
  const { parse, YAMLParseError } = await import('yaml');
  try {
    return parse(text, { prettyErrors: true }) as unknown;
  } catch (error) {
    if (error instanceof YAMLParseError) throw new UsageError(`${label} is not valid YAML or JSON: ${error.message.split('\n')[0]}`);
    throw error;
  }
}

/** The content of FILE as one JSON object (an input type), or a usage error saying what it is instead. */
export async function readObjectFile(file: string, io: CliIO, what: string): Promise<Record<string, unknown>> {
  const value = await readDocumentFile(file, io);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${file === '-' ? 'stdin' : file} must hold one object (${what})`);
  }
  return value as Record<string, unknown>;
}
