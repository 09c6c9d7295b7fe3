/**
 * Progress and log notifications during a `tools/call` on the aggregated `/mcp` (issue 9 item 3): the call's
 * answer stays one `application/json` response unless the upstream sends a notification before its result
 * and the client accepts `text/event-stream`; then the answer becomes an SSE stream (2025-11-25 transports
 * §sending messages: notifications related to the request, then the response) that carries each progress
 * and log notification as it arrives and ends with the response. Calls without notifications, the hot
 * path, cost nothing extra.
 *
 * Their display text (a progress message, a log message's string data and logger) passes the rule of the
 * upstream's lists (snapshot/tool-names.ts `servableServerMessage`): an ANSI escape there would rewrite the
 * terminal of a client that prints it. Only the upstream's notifications for this call reach it (the pool hands over what arrived on the call's
 * own stream, or progress matched by token), never another caller's. The pipeline delivers the request's
 * record when the answer starts, so for a streamed call the record is sent before the result is known.
 *
 * It does not call anything itself: `run` does the call, given where to send notifications, and answers the
 * reply already in its final shape (era, see `mcp/route.ts`), which goes out as JSON or as the last event alike.
 */
import { PassThrough } from 'node:stream';
import type { Answer } from '../http/respond.js';
import type { Logger } from '../log.js';
import { servableServerMessage } from '../snapshot/tool-names.js';

/** Notifications relayed to the caller during a call. */
const RELAYED = new Set(['notifications/progress', 'notifications/message']);

export type Notify = (message: Record<string, unknown>) => void;

/** Whether the caller can take an SSE answer (Streamable HTTP clients send both types in Accept). */
export function acceptsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('text/event-stream');
}

function event(message: unknown): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/**
 * Runs the call; resolves with a JSON answer when no notification came first, or with an SSE answer at the
 * first notification (the rest of the call then writes into that stream). A call that answered without
 * waiting (a refusal) is answered as JSON at once.
 */
export function relayDuringCall(
  run: (notify: Notify) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>,
  json: (status: number, body: unknown) => Answer,
  logger: Logger,
): Answer | Promise<Answer> {
  let stream: PassThrough | null = null;
  let early: ((answer: Answer) => void) | null = null;
  // Passed inline, not bound to a name: under tsx a named closure is also renamed (`Object.defineProperty`)
  // each time it is created, and this one is created for every tools/call.
  const running = run((message) => {
    if (typeof message.method !== 'string' || !RELAYED.has(message.method)) return;
    if (stream === null) {
      stream = new PassThrough();
      const answer: Answer = { kind: 'stream', status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }, body: stream };
      if (early !== null) early(answer);
    }
    // What the client shows a person (a progress message, a log line) passes the list rule (tool-names.ts).
    if (!stream.writableEnded) stream.write(event(servableServerMessage(message)));
  });
  if (!(running instanceof Promise)) return json(running.status, running.body);
  return new Promise<Answer>((resolve, reject) => {
    early = resolve;
    // A notification already relayed while `run` was still starting the call: its stream is the answer.
    if (stream !== null) resolve({ kind: 'stream', status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }, body: stream });
    running.then(
      (reply) => {
        if (stream === null) resolve(json(reply.status, reply.body));
        else if (!stream.writableEnded) stream.end(event(reply.body));
      },
      (error: unknown) => {
        if (stream === null) {
          reject(error);
          return;
        }
        logger.error({ err: error }, 'tools/call failed after its answer started streaming');
        stream.destroy();
      },
    );
  });
}
