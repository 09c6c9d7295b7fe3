/**
 * GraphQL errors about bad input never repeat the input: graphql-js writes the offending value into the
 * message (`Variable "$input" got invalid value { …, value: "Bearer …" } at "input.headers[0]"; Field
 * "extra" is not defined…`, `Expected value of type "String!", found 123`, `String cannot represent a non
 * string value: 123`), and the value printed is often a whole input object whose secrets (header values,
 * API keys, stdio env) are write-only everywhere else. This yoga plugin rewrites those messages, before the
 * response is serialized, to say where the input is wrong and why, without the value. Other errors pass.
 */
import { GraphQLError } from 'graphql';
import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';

const VARIABLE = /^Variable "\$([A-Za-z_][A-Za-z0-9_]*)" got invalid value /;
const LITERAL = /^Expected value of type ("[^"]*"), found /;
/** Scalar coercion reasons end with the value: `String cannot represent a non string value: <value>`. */
const SCALAR_REASON = /^([A-Za-z_][A-Za-z0-9_]* cannot represent [^:]*)(:.*)?$/s;
const ENUM_REASON = /^(Enum "[^"]*" cannot represent non-enum value)(:.*)?$/s;

/** A coercion reason without the value at its end (scalar and enum reasons); others as they are. */
function reasonWithoutValue(reason: string): string {
  const scalar = SCALAR_REASON.exec(reason) ?? ENUM_REASON.exec(reason);
  return scalar ? `${scalar[1]}.`.replace(/\.\.$/, '.') : reason;
}

/** The message of an input error without the value it quoted; null when the message is not one of those. */
export function messageWithoutInput(message: string, reason: string | undefined): string | null {
  const variable = VARIABLE.exec(message);
  if (variable) {
    // `<prefix> <inspect(value)>[ at "<path>"]; <reason>`: the reason is the original error's message.
    const head = reason !== undefined && message.endsWith(`; ${reason}`) ? message.slice(0, -(reason.length + 2)) : message;
    const path = / at "([^"\\]*)"$/.exec(head)?.[1];
    const why = reason === undefined ? '' : `; ${reasonWithoutValue(reason)}`;
    return `Variable "$${variable[1]}" got an invalid value${path === undefined ? '' : ` at "${path}"`}${why}`;
  }
  const literal = LITERAL.exec(message);
  if (literal) {
    const rest = message.slice(literal[0].length);
    const at = rest.indexOf('; ');
    const why = reason !== undefined ? reasonWithoutValue(reason) : at === -1 ? '' : reasonWithoutValue(rest.slice(at + 2));
    return `Expected value of type ${literal[1]}${why === '' ? '.' : `; ${why}`}`;
  }
  const scalar = SCALAR_REASON.exec(message) ?? ENUM_REASON.exec(message);
  return scalar && scalar[2] !== undefined ? reasonWithoutValue(message) : null;
}

function withoutInput(error: GraphQLError): GraphQLError {
  const message = messageWithoutInput(error.message, error.originalError?.message);
  if (message === null) return error;
  return new GraphQLError(message, {
    ...(error.nodes ? { nodes: error.nodes } : {}),
    ...(error.source ? { source: error.source } : {}),
    ...(error.positions ? { positions: error.positions } : {}),
    ...(error.path ? { path: error.path } : {}),
    extensions: error.extensions,
  });
}

function rewrite(result: ExecutionResult): ExecutionResult {
  if (!result.errors?.length) return result;
  let changed = false;
  const errors = result.errors.map((error) => {
    const out = withoutInput(error);
    if (out !== error) changed = true;
    return out;
  });
  return changed ? { ...result, errors } : result;
}

export function inputEchoPlugin(): Plugin {
  return {
    onResultProcess({ result, setResult }) {
      if (Symbol.asyncIterator in result) return;
      setResult(Array.isArray(result) ? result.map(rewrite) : rewrite(result));
    },
  };
}
