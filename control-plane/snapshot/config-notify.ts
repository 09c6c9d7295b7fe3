/**
 * Cross-replica change notification over PostgreSQL LISTEN/NOTIFY: a mutation committed through any
 * control-plane replica reaches the nodes connected to every replica at once (SPEC §3). SQLite has one
 * process by construction, so there this is a no-op. The publisher's poll covers a dropped listener.
 */
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import type { Database } from '../db/schema.js';
import type { Logger } from '../log.js';

const CHANNEL = 'gatehouse_config';

export async function notifyConfigChanged(db: Kysely<Database>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`select pg_notify(${CHANNEL}, '')`.execute(db);
}

export interface ConfigListener {
  close(): Promise<void>;
}

/** Listens on a dedicated connection (pool connections cannot LISTEN), reconnecting after errors. */
export function listenForConfigChanges(url: string, onChange: () => void, logger: Logger): ConfigListener {
  let client: pg.Client | null = null;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', () => onChange());
    c.on('error', (error) => {
      logger.warn({ err: error.message }, 'config LISTEN connection failed; reconnecting');
      void c.end().catch(() => undefined);
      if (client === c) client = null;
      schedule();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
      if (closed) {
        await c.end();
        return;
      }
      client = c;
      onChange(); // catch up on anything missed while disconnected
    } catch (error) {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'config LISTEN connect failed; retrying');
      void c.end().catch(() => undefined);
      schedule();
    }
  };
  const schedule = (): void => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = null;
      void connect();
    }, 1000);
    retry.unref();
  };
  void connect();

  return {
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
