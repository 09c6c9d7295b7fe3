/**
 * A new SQLite database gets 16 KiB pages (cheaper audit appends), and one created earlier with another
 * page size keeps it and its data when the control plane opens it again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase, sqliteHandle } from '../../../control-plane/db/database.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('SQLite page size', () => {
  it('is 16 KiB for a new database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-pages-'));
    dirs.push(dir);
    const { db } = openDatabase(join(dir, 'new.db'));
    await migrateToLatest(db);
    expect(sqliteHandle(db)!.pragma('page_size', { simple: true })).toBe(16384);
    expect(sqliteHandle(db)!.pragma('journal_mode', { simple: true })).toBe('wal');
    await db.destroy();
  });

  it('stays what it was for a database created before, with its data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-pages-'));
    dirs.push(dir);
    const path = join(dir, 'old.db');
    const old = new SQLite(path);
    old.pragma('journal_mode = WAL');
    old.exec("create table kept (v text); insert into kept values ('still here')");
    old.close();
    const { db } = openDatabase(path);
    const sqlite = sqliteHandle(db)!;
    expect(sqlite.pragma('page_size', { simple: true })).toBe(4096);
    expect(sqlite.prepare('select v from kept').pluck().get()).toBe('still here');
    await migrateToLatest(db);
    expect(sqlite.pragma('page_size', { simple: true })).toBe(4096);
    await db.destroy();
  });
});
