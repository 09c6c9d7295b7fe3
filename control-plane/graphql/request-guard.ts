/**
 * What `/graphql` answers to requests that are not well-formed GraphQL over HTTP, as a yoga plugin that runs
 * after admin authentication (admin-auth.ts) and before anything is parsed by graphql-js:
 * - a POST whose Content-Type yoga has no parser for gets 415 with a JSON error naming the types it reads
 *   (yoga's own answer is an empty body);
 * - a request parser's failure (bad JSON in a body or in `variables` / `extensions` parameters) is a 400
 *   BAD_REQUEST with a fixed message: no parser internals, no echo of the caller's bytes, never a 500;
 * - a document whose brackets nest deeper than any query this schema needs is refused as too deep before
 *   graphql-js parses it, so its recursive-descent parser and validators never see pathological nesting
 *   (armor's token limit would also stop it, but with a message that does not say what is wrong);
 * - an Accept header that names no type yoga writes still gets a JSON body: the error the request earned
 *   (a 401 stays a 401), else a 406 naming the types it could have had (yoga's own answer is empty).
 */
import { GraphQLError } from 'graphql';
import { createGraphQLError, processRegularResult, type Plugin } from 'graphql-yoga';

/** The Content-Types yoga parses here (multipart is turned off: the schema takes no uploads). */
export const ACCEPTED_CONTENT_TYPES = ['application/json', 'application/graphql+json', 'application/graphql', 'application/x-www-form-urlencoded'] as const;

/**
 * Brackets (`{`, `[`, `(`) may nest this deep in a document. A query at the field depth limit nests one
 * `{` per field level; arguments add a few more (`(`, an input object, a list of input objects), so three
 * per field level is far more than any query within the depth limit needs.
 */
export function maxBracketNesting(maxFieldDepth: number): number {
  return maxFieldDepth * 3;
}

function badRequest(message: string, status = 400, code = 'BAD_REQUEST'): GraphQLError {
  return createGraphQLError(message, { extensions: { code, http: { status } } });
}

/**
 * Whether `source` nests `{ [ (` deeper than `limit`, reading it as the GraphQL lexer would (brackets inside
 * strings, block strings and comments do not count). Linear, no recursion, stops at the first excess.
 */
export function nestsDeeperThan(source: string, limit: number): boolean {
  let depth = 0;
  let i = 0;
  const n = source.length;
  while (i < n) {
    const c = source.charCodeAt(i);
    if (c === 0x23 /* # */) {
      while (i < n && source.charCodeAt(i) !== 0x0a && source.charCodeAt(i) !== 0x0d) i++;
      continue;
    }
    if (c === 0x22 /* " */) {
      if (source.startsWith('"""', i)) {
        // Block string: ends at the next unescaped """ (\""" is the only escape).
        i += 3;
        while (i < n && !source.startsWith('"""', i)) i += source.startsWith('\\"""', i) ? 4 : 1;
        i += 3;
      } else {
        i++;
        while (i < n && source.charCodeAt(i) !== 0x22 && source.charCodeAt(i) !== 0x0a) i += source.charCodeAt(i) === 0x5c ? 2 : 1;
        i++;
      }
      continue;
    }
    if (c === 0x7b || c === 0x5b || c === 0x28) {
      depth++;
      if (depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d || c === 0x29) {
      depth--;
    }
    i++;
  }
  return false;
}

/**
 * A parser's failure as a client error: yoga's own 4xx errors keep their message, status and code but lose
 * `originalError` (which echoes the JSON parser's message and part of the body); anything else (a
 * `JSON.parse` of a GET's `variables`, say) becomes one fixed 400.
 */
function readFailure(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) {
    const http = error.extensions.http as { status?: unknown } | undefined;
    const status = typeof http?.status === 'number' && http.status >= 400 && http.status < 500 ? http.status : 400;
    const code = typeof error.extensions.code === 'string' ? error.extensions.code : 'BAD_REQUEST';
    return badRequest(error.message, status, code);
  }
  return badRequest('the GraphQL request could not be read: its body, or its variables or extensions parameter, is not valid JSON');
}

export function requestGuardPlugin(options: { maxDepth: number }): Plugin {
  const nesting = maxBracketNesting(options.maxDepth);
  return {
    onRequestParse({ request, requestParser, setRequestParser }) {
      // Other methods get yoga's 405 (JSON, with Allow) from the method check that runs after this hook.
      if (request.method !== 'GET' && request.method !== 'POST') return;
      if (!requestParser) {
        const type = request.headers.get('content-type');
        throw badRequest(
          `${type ? `Content-Type ${JSON.stringify(type.slice(0, 100))} is not supported` : 'a POST needs a Content-Type'}: send the request as ${ACCEPTED_CONTENT_TYPES.join(', ')}`,
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        );
      }
      const parse = requestParser;
      setRequestParser(async (req) => {
        try {
          return await parse(req);
        } catch (error) {
          throw readFailure(error);
        }
      });
    },
    onResultProcess({ result, resultProcessor, acceptableMediaTypes, setResult, setResultProcessor }) {
      if (resultProcessor || Symbol.asyncIterator in result) return;
      const hasErrors = !Array.isArray(result) && (result.errors?.length ?? 0) > 0;
      if (!hasErrors) {
        const types = [...new Set(acceptableMediaTypes)].join(', ');
        setResult({ errors: [badRequest(`the Accept header names no media type this endpoint writes: accept one of ${types}`, 406, 'NOT_ACCEPTABLE')] });
      }
      setResultProcessor(processRegularResult, 'application/json');
    },
    onParams({ params }) {
      if (typeof params.query === 'string' && nestsDeeperThan(params.query, nesting)) {
        throw createGraphQLError(
          `Syntax Error: Query depth limit of ${options.maxDepth} exceeded: the document nests brackets more than ${nesting} levels deep.`,
          { extensions: { code: 'GRAPHQL_PARSE_FAILED', http: { status: 400 } } },
        );
      }
    },
  };
}
