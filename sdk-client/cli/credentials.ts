/**
 * Where the CLI finds the control plane and its admin token: `GATEHOUSE_URL` / `GATEHOUSE_ADMIN_TOKEN`
 * from the environment first, then the file `gatehouse login` writes (`$GATEHOUSE_CONFIG`, else
 * `$XDG_CONFIG_HOME/gatehouse/credentials.json`, else `~/.config/gatehouse/credentials.json`), which is
 * created readable by its owner only and refused if anyone else can read it (as ssh does with keys).
 * The token is never a flag: flags show up in process lists and shell history.
 */
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { CliIO } from './command.js';

export const DEFAULT_URL = 'http://127.0.0.1:8090';

export interface Credentials {
  url: string;
  adminToken: string;
}

// Checked by hand: two string fields do not justify loading a schema library into every CLI start.
function isCredentials(value: unknown): value is Credentials {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.url === 'string' && typeof v.adminToken === 'string';
}

export function credentialsPath(io: CliIO): string {
  const explicit = io.env.GATEHOUSE_CONFIG?.trim();
  if (explicit) return explicit;
  const base = io.env.XDG_CONFIG_HOME?.trim() || join(io.home ?? homedir(), '.config');
  return join(base, 'gatehouse', 'credentials.json');
}

/** A problem with the credentials file, told to the person (never with the token in it). */
export class CredentialsError extends Error {}

export async function readCredentials(io: CliIO): Promise<Credentials | null> {
  const path = credentialsPath(io);
  let text: string;
  try {
    const info = await stat(path);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new CredentialsError(`${path} can be read by other users; run chmod 600 ${path} (or gatehouse login again)`);
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return null;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CredentialsError(`${path} is not valid JSON; run gatehouse login again`);
  }
  if (!isCredentials(parsed)) throw new CredentialsError(`${path} is not a Gatehouse credentials file; run gatehouse login again`);
  return parsed;
}

/** Writes the file owner-only: the directory 0700, a temp file 0600 renamed into place. */
export async function writeCredentials(io: CliIO, credentials: Credentials): Promise<string> {
  const path = credentialsPath(io);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFile is filtered by the umask; make sure, before the token is in place.
  await chmod(temp, 0o600);
  await rename(temp, path);
  return path;
}

export async function removeCredentials(io: CliIO): Promise<string | null> {
  const path = credentialsPath(io);
  try {
    await rm(path);
    return path;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return null;
    throw error;
  }
}

export interface Resolved {
  url: string;
  adminToken: string | null;
  /** Where each came from, for messages. */
  tokenSource: 'GATEHOUSE_ADMIN_TOKEN' | 'login' | null;
}

/** Environment first, then the login file, for each value on its own. */
export async function resolveCredentials(io: CliIO): Promise<Resolved> {
  const envUrl = io.env.GATEHOUSE_URL?.trim();
  const envToken = io.env.GATEHOUSE_ADMIN_TOKEN?.trim();
  const stored = envUrl && envToken ? null : await readCredentials(io);
  const url = envUrl || stored?.url || DEFAULT_URL;
  if (envToken) return { url, adminToken: envToken, tokenSource: 'GATEHOUSE_ADMIN_TOKEN' };
  if (stored) return { url, adminToken: stored.adminToken, tokenSource: 'login' };
  return { url, adminToken: null, tokenSource: null };
}
