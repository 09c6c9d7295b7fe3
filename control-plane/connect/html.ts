/**
 * The connect pages' HTML: one plain layout (no JavaScript, no external assets), escaping for every value
 * put into it, and the headers every page carries (no caching, no framing, no referrer, a strict CSP).
 * It renders; it does not decide what a page says (pages.ts) or who may see it (routes).
 */
import type { ServerResponse } from 'node:http';

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** A value already escaped (or markup we wrote), so templates can tell the two apart. */
export interface Html {
  readonly html: string;
}

export function html(strings: TemplateStringsArray, ...values: Array<string | number | Html | Html[]>): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    if (Array.isArray(value)) out += value.map((v) => v.html).join('');
    else if (typeof value === 'object') out += value.html;
    else out += escapeHtml(String(value));
    out += strings[i + 1] ?? '';
  });
  return { html: out };
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}.error h1{color:#a10000}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input[type=text],input[type=password]{width:100%;padding:.4rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem}
.hint{color:#555;font-size:.9rem}`;

export function layout(title: string, body: Html, kind: 'ok' | 'error' = 'ok'): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)} · Gatehouse</title><style>${STYLE}</style></head><body class="${kind}"><main>${body.html}</main></body></html>`;
}

export function sendPage(res: ServerResponse, status: number, page: string, headers: Record<string, string> = {}): void {
  res
    .writeHead(status, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'",
      ...headers,
    })
    .end(page);
}

export function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', ...headers }).end();
}
