/**
 * Text as both dialects store it. PostgreSQL refuses U+0000 in text (SQLSTATE 22021); the PostgreSQL pool
 * (database.ts) passes every string parameter through `withoutNul`, and code that derives stored columns
 * from a document kept verbatim (the audit chain) uses it too, so the column and its source agree.
 */
export function withoutNul(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\uFFFD') : text;
}
