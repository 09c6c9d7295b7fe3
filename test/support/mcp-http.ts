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

/**
 * Opens a session on `/mcp/{server}` (initialize, then notifications/initialized) and its standalone GET
 * event stream: `ended` settles when the node ends the stream, `abort` closes it from this side.
 */
export async function openServerStream(serverUrl: string, key: string): Promise<{ ended: Promise<'ended'>; abort: () => void }> {
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(serverUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
  });
  const session = init.headers.get('mcp-session-id') ?? '';
  await init.text();
  if (session === '') throw new Error(`initialize on ${serverUrl} gave no Mcp-Session-Id (HTTP ${init.status})`);
  const sessionHeaders = { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' };
  await (await fetch(serverUrl, { method: 'POST', headers: sessionHeaders, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
  const controller = new AbortController();
  const stream = await fetch(serverUrl, { method: 'GET', headers: { ...sessionHeaders, accept: 'text/event-stream' }, signal: controller.signal });
  if (stream.status !== 200) throw new Error(`GET ${serverUrl}: HTTP ${stream.status}`);
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
  const ended = (async (): Promise<'ended'> => {
    try {
      for (;;) if ((await reader.read()).done) return 'ended';
    } catch {
      return 'ended';
    }
  })();
  return { ended, abort: () => controller.abort() };
}
