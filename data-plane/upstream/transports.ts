/**
 * One MCP SDK client transport for a resolved server: Streamable HTTP, legacy SSE, or stdio.
 *
 * The headers the pool gives (the server's configured credential headers, or for a legacy SSE connection
 * opened for one credential identity, that call's own headers) go on the transport's `requestInit.headers`:
 * sent with every request the transport makes, including SSE's event-stream GET. Stdio servers get only their configured
 * environment on top of the SDK's small inherited base (HOME, LOGNAME, PATH, SHELL, TERM, USER on POSIX),
 * never the node's whole environment. It does not connect, retry or pool: that is `pool.ts`.
 */
import type { Readable } from 'node:stream';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike, Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { ResolvedServer } from '../config/runtime.js';

export interface TransportOptions {
  /** The pool's upstream fetch (see `http-client.ts`). */
  fetch: FetchLike;
  /** Headers sent on every request of this connection; default the server's configured headers. */
  headers?: Readonly<Record<string, string>>;
  /** Receives a stdio server's stderr output (the pool logs it, scrubbed). */
  onStderr?: (chunk: string) => void;
}

/** Throws if the server has no usable connection settings; callers check `server.unavailable` first. */
export function createTransport(server: ResolvedServer, options: TransportOptions): Transport {
  switch (server.connectionType) {
    case 'HTTP': {
      const url = requireUrl(server);
      return new StreamableHTTPClientTransport(url, {
        requestInit: { headers: { ...(options.headers ?? server.headers) } },
        fetch: options.fetch,
        // A pooled connection re-opens its optional GET stream a few times, then relies on the pool to
        // reconnect on the next failed call; the SDK's default would keep retrying a dead upstream.
        reconnectionOptions: { initialReconnectionDelay: 500, maxReconnectionDelay: 5_000, reconnectionDelayGrowFactor: 2, maxRetries: 2 },
      });
    }
    case 'SSE': {
      const url = requireUrl(server);
      return new SSEClientTransport(url, {
        requestInit: { headers: { ...(options.headers ?? server.headers) } },
        fetch: options.fetch,
      });
    }
    case 'STDIO': {
      const stdio = server.stdio;
      if (!stdio) throw new Error(`server '${server.name}' has no stdio command`);
      const transport = new StdioClientTransport({
        command: stdio.command,
        args: [...stdio.args],
        env: { ...stdio.env },
        stderr: 'pipe',
      });
      const stderr = transport.stderr as Readable | null;
      if (stderr) {
        stderr.setEncoding('utf8');
        // Always drained, so a chatty server never blocks on a full pipe.
        stderr.on('data', (chunk: string) => options.onStderr?.(chunk));
      }
      return transport;
    }
  }
}

function requireUrl(server: ResolvedServer): URL {
  if (!server.url) throw new Error(`server '${server.name}' has no URL`);
  return server.url;
}
