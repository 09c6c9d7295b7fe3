/** Raw JSON-RPC over HTTP to a node's /mcp, for tests that look at statuses and error bodies directly. */
export interface RawResponse {
  status: number;
  body: unknown;
}

export async function postMcp(nodeUrl: string, key: string | null, message: Record<string, unknown>, path = '/mcp'): Promise<RawResponse> {
  const res = await fetch(`${nodeUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', ...message }),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (e.g. 202 with no body)
  }
  return { status: res.status, body };
}

export function errorType(response: RawResponse): string | null {
  const body = response.body as { type?: unknown } | null;
  return body && typeof body === 'object' && typeof body.type === 'string' ? body.type : null;
}
