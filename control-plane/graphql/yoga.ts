/**
 * The control plane's GraphQL endpoint (graphql-yoga on `/graphql`, GraphiQL included): authentication in
 * the context factory, depth/cost/alias limits from graphql-armor, yoga's error masking kept on. The
 * returned instance is a node:http request listener and has `fetch` for in-process tests. It does not
 * listen on a port or publish snapshots (the caller's onConfigChanged does).
 */
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { createYoga, maskError, type GraphiQLOptions, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { adminAuthPlugin } from './admin-auth.js';
import { requestGuardPlugin } from './request-guard.js';
import { inputEchoPlugin } from './input-echo.js';
import { buildContext, type GraphQLContext, type GraphQLDeps, type GraphQLLogger } from './context.js';
import { schema } from './schema.js';

export type { GraphQLDeps, GraphQLLogger } from './context.js';

export const GRAPHQL_ENDPOINT = '/graphql';

/**
 * Limits sized for this schema. The deepest useful query (users → keys → grants → server → headers) has
 * depth 9. armor's cost multiplies by a literal `first`, so one full page of 100 servers with every field
 * costs about 13,000, while users(first: 100) { virtualKeys(first: 100) { … } } costs far over 50,000.
 * (A `first` passed as a variable is not multiplied; connections cap pages at 100 anyway.)
 */
export const QUERY_LIMITS = { maxDepth: 10, maxCost: 50_000, maxAliases: 15, maxTokens: 2000 } as const;

/**
 * An authenticated request's body is read up to this size (anonymous bodies are not read at all). The
 * largest legitimate body is an applyConfig document for a big deployment; a few MB covers thousands of
 * servers and users.
 */
export const MAX_REQUEST_BODY_BYTES = 8_000_000;

const noopLogger: GraphQLLogger = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * Headers of the GraphiQL page, a page an admin types a token into: never framed by another site (a
 * framed page can be overlaid and clicked through), no fetches to any other origin (a script that got in
 * could send the typed token away), no <base> or form retargeting, no referrer, no sniffing, no caching.
 * GraphiQL's scripts and styles are inline (the offline page), so script and style sources stay open.
 */
export const GRAPHIQL_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "frame-ancestors 'none'; connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

/** Puts GRAPHIQL_PAGE_HEADERS on every HTML answer of the endpoint (GraphiQL is its only one). */
function pageHeadersPlugin(): Plugin {
  return {
    onResponse({ response }) {
      if (!(response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/html')) return;
      for (const [name, value] of Object.entries(GRAPHIQL_PAGE_HEADERS)) response.headers.set(name, value);
    },
  };
}

// The context yoga itself provides per request; ours is built from it.
type ServerContext = Record<string, unknown>;

const graphiqlPages = new Map<string, string>();

/** The page is a few MB of inlined assets; render it once per option set, not per request. */
function offlineGraphiQL(options: GraphiQLOptions): string {
  const key = JSON.stringify(options);
  let page = graphiqlPages.get(key);
  if (page === undefined) {
    page = renderGraphiQL(options);
    graphiqlPages.set(key, page);
  }
  return page;
}

export function createGraphQL(deps: GraphQLDeps): YogaServerInstance<ServerContext, GraphQLContext> {
  const logger = deps.logger ?? noopLogger;
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_ENDPOINT,
    landingPage: false,
    // No CORS: yoga's default reflects any Origin with Allow-Credentials, letting any web page an admin
    // visits send requests here and read the answers. Automation scripts are not browsers and GraphiQL is
    // served from this origin, so nothing needs a cross-origin grant; without one, a browser refuses the
    // preflight an Authorization header needs and never shows another origin an answer.
    cors: false,
    // The schema takes no file uploads; a multipart POST gets the guard's 415 like any other unread type.
    multipart: false,
    maxRequestBodySize: MAX_REQUEST_BODY_BYTES,
    graphiql: {
      title: 'Gatehouse',
      headers: JSON.stringify({ Authorization: 'Bearer <admin token>' }),
    },
    // GraphiQL's scripts and styles from the installed package, inlined in the page: yoga's default loads
    // them from a public CDN, which leaves the page blank in an isolated network.
    renderGraphiQL: offlineGraphiQL,
    context: ({ request }) => buildContext(deps, logger, request),
    // Unexpected errors are logged once, through our logger, by maskError below (yoga's own console
    // logging would print them a second time, unstructured).
    logging: false,
    maskedErrors: {
      // Same masking as yoga's default, but never in "dev" mode (which would echo internal messages) and
      // with the original error logged, since the client only sees "Unexpected error.".
      maskError: (error, message) => {
        const masked = maskError(error, message, false);
        if (masked !== error) {
          const original = error instanceof Error && 'originalError' in error && error.originalError instanceof Error ? error.originalError : error;
          logger.error(
            { err: original instanceof Error ? { name: original.name, message: original.message, stack: original.stack } : String(original) },
            'GraphQL operation failed',
          );
        }
        return masked;
      },
    },
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: QUERY_LIMITS.maxDepth, ignoreIntrospection: true },
        costLimit: { maxCost: QUERY_LIMITS.maxCost, ignoreIntrospection: true },
        maxAliases: { n: QUERY_LIMITS.maxAliases },
        maxTokens: { n: QUERY_LIMITS.maxTokens },
        maxDirectives: { n: 50 },
        // Suggestions are masked by adminAuthPlugin for everyone but ADMIN tokens.
        blockFieldSuggestion: { enabled: false },
      }),
      // Order matters: authentication first (before the body is read), then the guard on what was sent.
      adminAuthPlugin(deps.db),
      requestGuardPlugin({ maxDepth: QUERY_LIMITS.maxDepth }),
      // Errors about bad input say where and why, never the value (it may hold a write-only secret).
      inputEchoPlugin(),
      pageHeadersPlugin(),
    ],
  });
}
