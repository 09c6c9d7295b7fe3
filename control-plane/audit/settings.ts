/**
 * Audit settings per virtual key and per server: content logging (arguments/results stored or not) and
 * the secrets guardrail policy (off | redact | block). They reach nodes in whole snapshots
 * (`auditSettings`), so every write bumps the config version; a target must exist when it is set.
 * Resetting a target to the defaults (content on, guardrail off) deletes its row.
 */
import { GuardrailPolicySchema, type AuditSettingEntry, type GuardrailPolicy } from '../../data-plane/snapshot/schema.js';
import { bumpConfigVersion } from '../repos/config-state.js';
import { InputError } from '../repos/errors.js';
import { nowIso, type Db, type Trx } from '../repos/transaction.js';

export interface AuditSettingInput {
  scope: 'key' | 'server';
  /** Key id or server name. */
  target: string;
  contentLogging?: boolean | null | undefined;
  guardrail?: GuardrailPolicy | null | undefined;
}

export async function listAuditSettings(db: Db): Promise<AuditSettingEntry[]> {
  const rows = await db.selectFrom('audit_settings').select(['scope', 'target', 'content_logging', 'guardrail']).orderBy('scope').orderBy('target').execute();
  return rows.map((r) => ({ scope: r.scope, target: r.target, contentLogging: r.content_logging === 1, guardrail: GuardrailPolicySchema.catch('off').parse(r.guardrail) }));
}

/** Sets (merging with what is stored) one target's settings; returns the resulting entry. */
export async function setAuditSetting(trx: Trx, input: AuditSettingInput): Promise<AuditSettingEntry> {
  const exists =
    input.scope === 'key'
      ? await trx.selectFrom('virtual_keys').select('id').where('id', '=', input.target).executeTakeFirst()
      : ((await trx.selectFrom('mcp_servers').select('id').where('name', '=', input.target).executeTakeFirst()) ??
        // An LLM provider is a server for these settings too (its name, e.g. `anthropic`).
        (await trx.selectFrom('providers').select('id').where('name', '=', input.target).executeTakeFirst()));
  if (!exists) throw new InputError(input.scope === 'key' ? 'NOT_FOUND' : 'UNKNOWN_SERVER', 'target', `no ${input.scope === 'key' ? 'virtual key with id' : 'server named'} ${input.target.slice(0, 200)}`);
  await bumpConfigVersion(trx);
  const id = `${input.scope}:${input.target}`;
  const current = await trx.selectFrom('audit_settings').select(['content_logging', 'guardrail']).where('id', '=', id).executeTakeFirst();
  const entry: AuditSettingEntry = {
    scope: input.scope,
    target: input.target,
    contentLogging: input.contentLogging ?? (current ? current.content_logging === 1 : true),
    guardrail: input.guardrail ?? GuardrailPolicySchema.catch('off').parse(current?.guardrail ?? 'off'),
  };
  if (entry.contentLogging && entry.guardrail === 'off') {
    await trx.deleteFrom('audit_settings').where('id', '=', id).execute();
    return entry;
  }
  const values = { content_logging: entry.contentLogging ? 1 : 0, guardrail: entry.guardrail, updated_at: nowIso() };
  await trx
    .insertInto('audit_settings')
    .values({ id, scope: input.scope, target: input.target, ...values })
    .onConflict((oc) => oc.column('id').doUpdateSet(values))
    .execute();
  return entry;
}

/** Signature of a row for the publisher's change detection (`audit:<id>` in the server-signature map). */
export function auditSettingSignature(row: { target: string; content_logging: number; guardrail: string }): string {
  return `${row.target}|${row.content_logging}|${row.guardrail}`;
}
